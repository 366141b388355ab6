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

/*
 * Whether @d is shared with another process (gm_dirty_new_mapped()): its
 * marks are always atomic ORs and are counted (dirty.c, invariant 5).
 */
bool gm__dirty_shared(const struct gm_dirty *d);

/*
 * Bits of mapped bitmap @d that this process's library marks found clear
 * and set, since it was made (0 for a bitmap of this process's own). Marks
 * inlined into callers are not counted: views route writes to a mapped
 * bitmap's regions through the library (src/memory/view.c).
 */
uint64_t gm__dirty_newly_set(const struct gm_dirty *d);

/* Checks the numbered invariants 1 and 4 at the top of dirty.c (debug and tests). */
bool gm__dirty_invariants_ok(const struct gm_dirty *d);

#endif
