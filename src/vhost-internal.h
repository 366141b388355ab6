/* SPDX-License-Identifier: MIT */
/*
 * vhost-internal.h - hidden checks of the vhost layer (src/vhost.c) for
 * tests and debug builds. Not exported from the shared library.
 */
#ifndef GUESTMEM_VHOST_INTERNAL_H
#define GUESTMEM_VHOST_INTERNAL_H

#include <guestmem/vhost.h>

#include <stdbool.h>

/*
 * Checks the numbered invariants at the top of vhost.c that can be seen in
 * one table: 2 (except the file size at build time, which may have changed
 * since), 3, and that @t is held (a reference count of at least 1).
 */
bool gm__vhost_invariants_ok(const struct gm_vhost_table *t);

/*
 * Checks @vm (invariant 4: the table in force is held and within
 * @vm's region limit) and the table in force with gm__vhost_invariants_ok().
 * Takes @vm's writer lock.
 */
bool gm__vhost_mem_invariants_ok(struct gm_vhost_mem *vm);

#endif
