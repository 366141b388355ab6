/* SPDX-License-Identifier: MIT */
/*
 * dirty.c - page-granular dirty bitmaps shared by the data path and
 * migration.
 *
 * A gm_dirty is a plain array of 64-bit words, one bit per 4 KiB page,
 * behind the gm_dirty_hot head that inline writers read (static/
 * dirty-inline.h). Writers set bits; collectors exchange words with zero.
 *
 * Invariants:
 *  1. bits[] has ceil(npages / 64) words; bits past npages in the last
 *     word are never set (mark and merge clip to npages), so counts and
 *     collected words need no masking.
 *  2. A bit, once set, is cleared only by gm_dirty_collect(), which hands
 *     it to its caller: no set bit is ever dropped.
 *  3. Writers store guest data before they test-and-set the page's bit.
 *     collect() clears words and then runs membarrier() before returning,
 *     so a writer that saw the old (set) bit has its data visible to the
 *     collector by then (see gm_dirty_collect()).
 *  4. refs is at least 1 while anyone holds the bitmap, and hot.enabled is
 *     0, 1, or 2 for a mapped bitmap (written only by gm_dirty_set_enabled()).
 *  5. A mapped bitmap (map != NULL) is shared with another process that
 *     clears bits on its own: every mark is an atomic OR (hot.enabled == 2
 *     tells the inline path), and its bits lie inside map, which it holds.
 *     newly counts the bits this process's marks found clear and set
 *     (set_bits(); the OR returns the old word, so the count costs no
 *     extra locked op on a page already set, one relaxed add per word
 *     with new bits). The inline path cannot count (its code is ABI):
 *     views send writes to a mapped bitmap's regions to the library's
 *     slow path (src/memory/view.c), which counts.
 * gm__dirty_invariants_ok() checks 1 and 4 on the bitmap as it is now; 2
 * and 3 are orderings between threads, which tests/stress/stress_dirty.c
 * attacks.
 */
#include <guestmem/dirty.h>
#include <guestmem/static/dirty-inline.h>

#include <endian.h>
#include <linux/membarrier.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dirty-internal.h"
#include "rcu-internal.h"

struct gm_dirty {
	struct gm_dirty_hot hot; /* first: inline writers cast to it */
	size_t nwords;
	unsigned long refs;
	struct gm_mapping *map; /* gm_dirty_new_mapped(): holds the bits; else NULL */
	uint64_t newly;		/* mapped: bits marks found clear (invariant 5); __atomic */
};

/*
 * A full memory barrier on every thread of this process (membarrier(2),
 * private expedited), or, where the kernel lacks it, the slower global
 * flavour; a seq_cst fence alone where neither exists (then a writer's
 * store can in theory be late; documented in docs/design-notes.md).
 */
static void barrier_all_threads(void)
{
	static int mode; /* 0 unknown, 1 private expedited, 2 global, 3 none */
	int m = __atomic_load_n(&mode, __ATOMIC_ACQUIRE);

	if (m == 0) {
		if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
			m = 1;
		else if (syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0)
			m = 2;
		else
			m = 3;
		__atomic_store_n(&mode, m, __ATOMIC_RELEASE);
	}
	gm__full_fence();
	if (m == 1)
		syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	else if (m == 2)
		syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0);
}

int gm_dirty_new(uint64_t size, struct gm_dirty **out)
{
	struct gm_dirty *d;
	uint64_t npages, nwords;
	size_t nw;

	if (out == NULL || size == 0)
		return -EINVAL;
	npages = (size >> GM_PAGE_SHIFT) + ((size & (GM_PAGE_SIZE - 1)) != 0);
	nwords = (npages + 63) / 64;
	if (gm_u64_to_size(nwords, &nw) || nw > SIZE_MAX / sizeof(uint64_t))
		return -EOVERFLOW;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->hot.bits = calloc(nw, sizeof(uint64_t));
	if (d->hot.bits == NULL) {
		free(d);
		return -ENOMEM;
	}
	d->hot.npages = npages;
	d->nwords = nw;
	d->refs = 1;
	*out = d;
	return 0;
}

int gm_dirty_new_mapped(struct gm_mapping *map, size_t offset, uint64_t size, struct gm_dirty **out)
{
	struct gm_dirty *d;
	uint64_t npages;
	size_t end;

	if (map == NULL || out == NULL || offset % sizeof(uint64_t) != 0 || size < 8)
		return -EINVAL;
	if (__BYTE_ORDER != __LITTLE_ENDIAN)
		return -ENOTSUP; /* a word's bit i would not be byte i / 8's bit i % 8 */
	size -= size % 8;	 /* whole words only (invariant 1 without masking) */
	if (gm_u64_to_size(size, &end) || gm_add_overflow_size(end, offset, &end))
		return -ERANGE;
	if (end > gm_mapping_size(map))
		return -ERANGE;
	if (gm_mul_overflow_u64(size, 8, &npages))
		return -EOVERFLOW;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->hot.bits = (uint64_t *)(void *)((unsigned char *)gm_mapping_host(map) + offset);
	d->hot.npages = npages;
	d->nwords = (size_t)(size / 8);
	d->refs = 1;
	d->map = gm_mapping_get(map);
	*out = d;
	return 0;
}

struct gm_dirty *gm_dirty_get(struct gm_dirty *d)
{
	__atomic_fetch_add(&d->refs, 1, __ATOMIC_RELAXED);
	return d;
}

void gm_dirty_put(struct gm_dirty *d)
{
	if (d == NULL)
		return;
	/* ACQ_REL: the last put sees every other holder's writes before freeing. */
	if (__atomic_sub_fetch(&d->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (d->map != NULL)
		gm_mapping_put(d->map);
	else
		free(d->hot.bits);
	free(d);
}

uint64_t gm_dirty_npages(const struct gm_dirty *d)
{
	return d->hot.npages;
}

void gm_dirty_set_enabled(struct gm_dirty *d, bool enabled)
{
	/* Invariant 5: a mapped bitmap tells the inline path never to skip the OR. */
	__atomic_store_n(&d->hot.enabled, !enabled ? 0 : d->map ? 2 : 1, __ATOMIC_SEQ_CST);
	/* Every writer's next check of hot.enabled sees the new value. */
	barrier_all_threads();
}

bool gm_dirty_enabled(const struct gm_dirty *d)
{
	return __atomic_load_n(&d->hot.enabled, __ATOMIC_RELAXED) != 0;
}

/* Set bits [first, last] (pages, inclusive, last < npages). */
static void set_bits(struct gm_dirty *d, uint64_t first, uint64_t last)
{
	uint64_t w = first / 64, lw = last / 64;

	for (; w <= lw; w++) {
		uint64_t mask = ~(uint64_t)0;
		uint64_t *word = &d->hot.bits[w];

		if (w == first / 64)
			mask &= ~(uint64_t)0 << (first % 64);
		if (w == lw)
			mask &= ~(uint64_t)0 >> (63 - last % 64);
		/* Test first: pages already dirty cost a load, not a locked op
		 * (never for a mapped bitmap: invariant 5, which counts the bits
		 * the OR found clear).
		 * RELEASE pairs with the ACQUIRE exchange in gm_dirty_collect(). */
		if (d->map != NULL) {
			uint64_t fresh = mask & ~__atomic_fetch_or(word, mask, __ATOMIC_RELEASE);

			if (fresh != 0)
				__atomic_fetch_add(&d->newly, (uint64_t)__builtin_popcountll(fresh),
						   __ATOMIC_RELAXED);
		} else if ((__atomic_load_n(word, __ATOMIC_RELAXED) & mask) != mask) {
			__atomic_fetch_or(word, mask, __ATOMIC_RELEASE);
		}
	}
}

void gm_dirty_mark(struct gm_dirty *d, uint64_t offset, uint64_t len)
{
	uint64_t first, last, end;

	if (len == 0)
		return;
	first = offset >> GM_PAGE_SHIFT;
	if (first >= d->hot.npages)
		return;
	/* Clip to the region (invariant 1); offset + len may wrap if hostile. */
	if (gm_add_overflow_u64(offset, len - 1, &end))
		end = UINT64_MAX;
	last = end >> GM_PAGE_SHIFT;
	if (last >= d->hot.npages)
		last = d->hot.npages - 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	set_bits(d, first, last);
}

void gm__dirty_mark_tracked(struct gm_dirty *d, uint64_t offset, uint64_t len)
{
	if (__atomic_load_n(&d->hot.enabled, __ATOMIC_RELAXED))
		gm_dirty_mark(d, offset, len);
}

bool gm__dirty_shared(const struct gm_dirty *d)
{
	return d->map != NULL;
}

uint64_t gm__dirty_newly_set(const struct gm_dirty *d)
{
	return __atomic_load_n(&d->newly, __ATOMIC_RELAXED);
}

bool gm_dirty_test(const struct gm_dirty *d, uint64_t page)
{
	if (page >= d->hot.npages)
		return false;
	return (__atomic_load_n(&d->hot.bits[page / 64], __ATOMIC_RELAXED) >> (page % 64)) & 1;
}

uint64_t gm_dirty_count(const struct gm_dirty *d)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < d->nwords; i++)
		n += (uint64_t)__builtin_popcountll(
		    __atomic_load_n(&d->hot.bits[i], __ATOMIC_RELAXED));
	return n;
}

int gm_dirty_collect(struct gm_dirty *d, uint64_t first, uint64_t *out, size_t nwords)
{
	uint64_t w0;
	size_t i;

	if ((out == NULL && nwords > 0) || first % 64 != 0 || first >= d->hot.npages)
		return -EINVAL;
	w0 = first / 64;
	for (i = 0; i < nwords; i++) {
		/* Words past the end read as 0 (the caller's buffer may be larger). */
		if (w0 + i >= d->nwords) {
			out[i] = 0;
			continue;
		}
		/* Cheap skip for clean words; a racing set is caught next time. */
		if (__atomic_load_n(&d->hot.bits[w0 + i], __ATOMIC_RELAXED) == 0) {
			out[i] = 0;
			continue;
		}
		/* ACQUIRE pairs with the writers' RELEASE fetch_or (invariant 2). */
		out[i] = __atomic_exchange_n(&d->hot.bits[w0 + i], 0, __ATOMIC_ACQUIRE);
	}
	/*
	 * Invariant 3: a writer that stored data and then found its bit
	 * already set (so did not set it again) may still hold that store in
	 * its CPU's store buffer. After this barrier every such store is
	 * visible, so the caller reading the pages it was given sees it.
	 */
	barrier_all_threads();
	return 0;
}

int gm_dirty_merge(struct gm_dirty *d, uint64_t first, const uint64_t *bits, size_t nwords)
{
	uint64_t w0;
	size_t i;

	if ((bits == NULL && nwords > 0) || first % 64 != 0 || first >= d->hot.npages)
		return -EINVAL;
	w0 = first / 64;
	for (i = 0; i < nwords && w0 + i < d->nwords; i++) {
		uint64_t v = bits[i];

		/* Invariant 1: nothing beyond npages. */
		if (w0 + i == d->nwords - 1 && d->hot.npages % 64 != 0)
			v &= ~(uint64_t)0 >> (64 - d->hot.npages % 64);
		if (v != 0)
			__atomic_fetch_or(&d->hot.bits[w0 + i], v, __ATOMIC_RELEASE);
	}
	return 0;
}

int gm_dirty_next_run(const struct gm_dirty *d, uint64_t from, uint64_t *first, uint64_t *count)
{
	uint64_t p = from, start;

	if (first == NULL || count == NULL)
		return -EINVAL;
	/* Find a set bit, skipping clean words whole. */
	while (p < d->hot.npages) {
		uint64_t w = __atomic_load_n(&d->hot.bits[p / 64], __ATOMIC_RELAXED) >> (p % 64);

		if (w != 0) {
			p += (uint64_t)__builtin_ctzll(w);
			break;
		}
		p = (p / 64 + 1) * 64;
	}
	if (p >= d->hot.npages)
		return -ENOENT;
	start = p;
	/* Extend over set bits, whole words at a time where they are full. */
	while (p < d->hot.npages) {
		uint64_t w = ~__atomic_load_n(&d->hot.bits[p / 64], __ATOMIC_RELAXED) >> (p % 64);

		if (w != 0) {
			p += (uint64_t)__builtin_ctzll(w);
			break;
		}
		p = (p / 64 + 1) * 64;
	}
	if (p > d->hot.npages)
		p = d->hot.npages;
	*first = start;
	*count = p - start;
	return 0;
}

bool gm__dirty_invariants_ok(const struct gm_dirty *d)
{
	uint64_t last;
	int enabled = __atomic_load_n(&d->hot.enabled, __ATOMIC_RELAXED);

	if (d->hot.bits == NULL || d->hot.npages == 0 || d->nwords != (d->hot.npages + 63) / 64)
		return false; /* 1 */
	last = __atomic_load_n(&d->hot.bits[d->nwords - 1], __ATOMIC_RELAXED);
	if (d->hot.npages % 64 != 0 && (last >> (d->hot.npages % 64)) != 0)
		return false; /* 1: no bit past npages */
	if (d->map != NULL &&
	    ((unsigned char *)d->hot.bits < (unsigned char *)gm_mapping_host(d->map) ||
	     (unsigned char *)(d->hot.bits + d->nwords) >
		 (unsigned char *)gm_mapping_host(d->map) + gm_mapping_size(d->map)))
		return false; /* 5 */
	return __atomic_load_n(&d->refs, __ATOMIC_RELAXED) >= 1 &&
	       (enabled == 0 || enabled == 1 || (enabled == 2 && d->map != NULL)); /* 4, 5 */
}
