/* SPDX-License-Identifier: MIT */
/*
 * guestmem/static/dirty-inline.h - the inline head of a dirty bitmap.
 *
 * ==========================================================================
 *  THE LAYOUT OF THE STRUCT IN THIS FILE IS PART OF LIBGUESTMEM'S ABI.
 *  Programs compiled against <guestmem/memory.h> mark pages through it
 *  from inlined writes; a change to it is an incompatible change (a new
 *  soname).
 * ==========================================================================
 *
 * Not API: nothing here is for callers. It owns the head of every struct
 * gm_dirty (dirty.c) and the one-page marking step of an inlined write;
 * <guestmem/static/memory-inline.h> includes it so the fast path can mark
 * pages without a call, and dirty.c includes it so the dirty layer defines
 * its own head without reaching up into the memory layer's headers.
 */
#ifndef GUESTMEM_STATIC_DIRTY_INLINE_H
#define GUESTMEM_STATIC_DIRTY_INLINE_H

#include <guestmem/addr.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The head of every struct gm_dirty: what a write must read to mark a page. */
struct gm_dirty_hot {
	uint64_t *bits;	 /* one bit per page, 64 pages per word */
	uint64_t npages; /* bits in use */
	int enabled;	 /* 0 off, 1 on, 2 on and shared; __atomic builtins only */
};

/*
 * Mark the page holding byte @offset of the bitmap's region dirty, if
 * tracking is enabled. @offset must lie in the region (page < npages): the
 * caller's view guarantees it (invariant 4 in src/memory/memory-internal.h).
 * Called after the data store it reports. Pairs with gm_dirty_collect():
 * the store is ordered before the bit test by the signal fence here
 * (compiler) and by the membarrier() that collect issues after clearing
 * (CPU); the fetch_or is RELEASE so a collector that sees the bit (ACQUIRE
 * exchange) also sees the data (dirty.c, invariant 3).
 */
static inline void gm__dirty_mark_page(struct gm_dirty_hot *d, uint64_t offset)
{
	uint64_t page, *w, bit;
	int e = __atomic_load_n(&d->enabled, __ATOMIC_RELAXED);

	if (!e)
		return;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	page = offset >> GM_PAGE_SHIFT;
	w = &d->bits[page >> 6];
	bit = (uint64_t)1 << (page & 63);
	/*
	 * Test first: a page already dirty costs a load, not a locked op. Not
	 * for a bitmap another process clears (e == 2, gm_dirty_new_mapped()):
	 * no membarrier reaches that collector, so every mark is the atomic
	 * OR, which also orders the data store before the bit.
	 */
	if (e == 1 && (__atomic_load_n(w, __ATOMIC_RELAXED) & bit))
		return;
	__atomic_fetch_or(w, bit, __ATOMIC_RELEASE);
}

#ifdef __cplusplus
}
#endif

#endif /* GUESTMEM_STATIC_DIRTY_INLINE_H */
