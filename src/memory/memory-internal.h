/* SPDX-License-Identifier: MIT */
/*
 * memory-internal.h - what the files of the memory layer share: the full
 * struct gm_memory behind the public head (static/memory-inline.h), the
 * range-walking helpers of the data path, and gm__memory_invariants_ok().
 * Not exported from the shared library; tests and the memory fuzz target
 * reach gm__memory_invariants_ok() through it.
 *
 * A struct gm_memory is a view: an immutable, sorted set of guest regions
 * (include/guestmem/memory.h). gm_memory_new() validates and sorts region
 * specs, takes references on their mappings and dirty bitmaps, and builds
 * the slot table described in static/memory-inline.h. Everything after
 * construction only reads the view, which is why the data path needs no
 * locks.
 *
 *   view.c     construction, slot table, introspection, invariant check
 *   access.c   gm_read/gm_write and their partial forms, fixed-width
 *              accessors, fill and copy
 *   atomics.c  atomic operations on guest words
 *   iov.c      translation to host pointers and iovecs, gm_mark_dirty(),
 *              fd I/O
 *
 * The helpers below are static inline on purpose: gm_read(), gm_write(),
 * fill, copy, iovecs and fd I/O all walk ranges with them, and they must
 * stay inlined there (no new out-of-line call on the data path).
 *
 * Invariants of a view (checked by gm__memory_invariants_ok(), view.c):
 *  1. regions[] is sorted by gpa and no two regions share a byte:
 *     regions[i].last < regions[i + 1].gpa.
 *  2. max_last is regions[n - 1].last (0 for an empty view, whose single
 *     dummy region {gpa 1, last 0} matches no address).
 *  3. slots[] and slot_first[] have nslots = (max_last >> shift) + 1
 *     entries; slot_first[i] is the index of the first region whose last
 *     byte is >= i << shift.
 *     So the walk in gm__region_of() starts at or before the region holding
 *     any address of slot i and stops at the last region at the latest
 *     (invariant 2).
 *  3a. slots[i] is GM__SLOT_SLOW unless the whole slot lies inside
 *     region slot_first[i], whose host address is then slots[i] + gpa for
 *     every gpa of the slot, and slots[i] is 8-byte aligned (so an aligned
 *     gpa is an aligned host address). wslots[i] is slots[i] with that
 *     region's READONLY and DIRTY flags or'ed in (GM__SLOT_SLOW too when
 *     slots[i] is slow, or when the region's bitmap is shared with another
 *     process, gm__dirty_shared(): the inline mark cannot count the pages
 *     it newly sets, the library's does). slot_dirty[i] is {the region's bitmap, its
 *     dirty_offset - gpa} when wslots[i] has GM__SLOT_DIRTY without
 *     GM__SLOT_SLOW, else {NULL, 0}.
 *  4. Every region's host range [host, host + size) lies inside its
 *     mapping, which the view holds a reference on; so does its dirty
 *     bitmap, which covers [dirty_offset, dirty_offset + size).
 */
#ifndef GUESTMEM_MEMORY_INTERNAL_H
#define GUESTMEM_MEMORY_INTERNAL_H

#include <guestmem/memory.h>
#include <guestmem/static/memory-inline.h>

#include "../dirty-internal.h"

/* Per-region fields the data path does not need. */
struct gm_region_cold {
	struct gm_mapping *mapping;
	size_t offset;
};

struct gm_memory {
	struct gm_memory_hot hot; /* first: the inline path casts to it */
	struct gm_region_hot *regions;
	struct gm_region_cold *cold;
	uintptr_t *slots;
	uintptr_t *wslots;
	struct gm_slot_dirty *slot_dirty;
	uint32_t *slot_first;
	uint64_t total;
	unsigned long refs;
};

/* Checks the numbered invariants above. */
bool gm__memory_invariants_ok(const struct gm_memory *m);

/* ---- range walking --------------------------------------------------- */

/*
 * The region holding @gpa and, in *@n, how many of the @len (> 0) bytes
 * from @gpa lie in it. NULL if @gpa is in no region.
 */
static inline const struct gm_region_hot *piece(const struct gm_memory *m, gm_gpa_t gpa, size_t len,
						size_t *n)
{
	const struct gm_region_hot *r = gm__region_of(m, gpa);

	if (r == NULL)
		return NULL;
	/* r->last - gpa is the count after @gpa; compare without adding 1. */
	*n = r->last - gpa >= (uint64_t)(len - 1) ? len : (size_t)(r->last - gpa + 1);
	return r;
}

/*
 * How far [@gpa, @gpa + @len) can be accessed: *@ok is the number of bytes
 * from @gpa that can (all of them on success). Returns 0, -EFAULT at a
 * hole, the end of RAM or 2^64, or -EACCES at a read-only byte if @write.
 */
static inline int check_range(const struct gm_memory *m, gm_gpa_t gpa, size_t len, bool write,
			      size_t *ok)
{
	size_t done = 0, n = 0;

	while (done < len) {
		const struct gm_region_hot *r;
		gm_gpa_t cur;

		if (gm_add_overflow_u64(gpa, done, &cur)) /* the range wraps past 2^64 */
			break;
		r = piece(m, cur, len - done, &n);
		if (r == NULL)
			break;
		if (write && (r->flags & GM_REGION_READONLY)) {
			*ok = done;
			return -EACCES;
		}
		done += n;
	}
	*ok = done;
	return done == len ? 0 : -EFAULT;
}

/* Mark [@gpa, @gpa + @n) of region @r dirty if it is tracked. */
static inline void mark(const struct gm_region_hot *r, gm_gpa_t gpa, size_t n)
{
	if (r->dirty != NULL)
		gm__dirty_mark_tracked((struct gm_dirty *)(void *)r->dirty,
				       gpa - r->gpa + r->dirty_offset, n);
}

/*
 * Mark the page of a just-written aligned word (<= 8 bytes) of region @r,
 * the library's slow paths. gm__mark_word() (inline, ABI) for a bitmap of
 * this process; a shared bitmap (a vhost-user front end's log) is marked
 * through the dirty layer, which counts the bits it newly sets.
 */
static inline void mark_word(const struct gm_region_hot *r, gm_gpa_t gpa)
{
	if (r->dirty != NULL && __atomic_load_n(&r->dirty->enabled, __ATOMIC_RELAXED) == 2)
		gm__dirty_mark_tracked((struct gm_dirty *)(void *)r->dirty,
				       gpa - r->gpa + r->dirty_offset, 1);
	else
		gm__mark_word(r, gpa);
}

/* The host address of @gpa in @r. */
static inline unsigned char *hva(const struct gm_region_hot *r, gm_gpa_t gpa)
{
	return r->host + (size_t)(gpa - r->gpa);
}

#endif /* GUESTMEM_MEMORY_INTERNAL_H */
