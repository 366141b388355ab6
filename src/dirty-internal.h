/* SPDX-License-Identifier: MIT */
/*
 * dirty-internal.h - what the memory layer needs from dirty.c beyond the
 * public API, and the invariant check tests call. Hidden symbols: not
 * exported from the shared library.
 */
#ifndef GUESTMEM_DIRTY_INTERNAL_H
#define GUESTMEM_DIRTY_INTERNAL_H

#include <guestmem/dirty.h>

/* gm_dirty_mark(), but only while tracking is enabled (the data path's rule). */
void gm__dirty_mark_tracked(struct gm_dirty *d, uint64_t offset, uint64_t len);

/* Checks the numbered invariants 1 and 4 at the top of dirty.c (debug and tests). */
bool gm__dirty_invariants_ok(const struct gm_dirty *d);

#endif
