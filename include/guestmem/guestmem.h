/* SPDX-License-Identifier: MIT */
/*
 * guestmem/guestmem.h - the whole public API of libguestmem.
 *
 * Layers, lowest first (each uses only those before it):
 *   abi.h      sized structs that can grow (GM_OPTS), beside addr.h
 *   addr.h     guest addresses, checked arithmetic
 *   mapping.h  host memory mappings (anonymous, memfd, fd)
 *   version.h  the version compiled against and the one running (generated)
 *   rcu.h      the RCU read side and grace periods (liburcu behind it)
 *   dirty.h    page-granular dirty bitmaps
 *   memory.h   immutable guest memory views and the data path
 *   space.h    the editable address space: RAM/ROM/MMIO windows, RCU views, access routing
 *   virtq.h    split virtqueues walked safely on a memory view
 *   vhost.h    vhost-user memory tables, replaced under RCU
 *   kvm.h      KVM memory slots, dirty log and exits following a gm_space
 *   snapshot.h snapshot files, restore and the migration stream
 */
#ifndef GUESTMEM_GUESTMEM_H
#define GUESTMEM_GUESTMEM_H

#include <guestmem/abi.h>
#include <guestmem/addr.h>
#include <guestmem/mapping.h>
#include <guestmem/version.h>
#include <guestmem/rcu.h>
#include <guestmem/dirty.h>
#include <guestmem/memory.h>
#include <guestmem/space.h>
#include <guestmem/virtq.h>
#include <guestmem/vhost.h>
#include <guestmem/kvm.h>
#include <guestmem/snapshot.h>

#endif /* GUESTMEM_GUESTMEM_H */
