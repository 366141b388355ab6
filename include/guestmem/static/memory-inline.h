/*
 * guestmem/static/memory-inline.h - the inline fast path of the data path.
 *
 * ==========================================================================
 *  THE LAYOUT OF THE STRUCTS IN THIS FILE IS PART OF LIBGUESTMEM'S ABI.
 *  Programs compiled against this header read these fields directly; a
 *  change to them is an incompatible change (a new soname). Define
 *  GM_NO_INLINE before including <guestmem/memory.h> to opt out.
 * ==========================================================================
 *
 * Included by <guestmem/memory.h> with GCC or clang. It does what the
 * exported functions of the same names do for the common case - an aligned
 * access inside one region - and calls the exported function for
 * everything else (unaligned, crossing a region, outside RAM, NULL
 * pointers), so the two can never disagree about errors.
 *
 * Lookup: a view keeps a small table indexed by gpa >> shift, where shift
 * is the coarsest alignment shared by every region boundary (2 MiB-aligned
 * regions give 2 MiB slots), so a slot normally lies inside one region.
 * Each slot holds the index of the first region whose last byte is at or
 * after the slot's start; the lookup walks forward from there (normally
 * zero steps) and checks that the address is not in a hole. No branch
 * depends on a comparison against a region's start before the table load,
 * and the table for 512 2 MiB regions is 2 KiB.
 */
#ifndef GUESTMEM_STATIC_MEMORY_INLINE_H
#define GUESTMEM_STATIC_MEMORY_INLINE_H

#include <guestmem/addr.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The head of every struct gm_dirty: what a write must read to mark a page. */
struct gm_dirty_hot {
	uint64_t *bits;	 /* one bit per page, 64 pages per word */
	uint64_t npages; /* bits in use */
	int enabled;	 /* accessed only with __atomic builtins */
};

/* One region of a view, as the lookup sees it. */
struct gm_region_hot {
	gm_gpa_t gpa;		     /* first byte */
	gm_gpa_t last;		     /* last byte (inclusive: a region may end at 2^64 - 1) */
	unsigned char *host;	     /* host address of @gpa */
	struct gm_dirty_hot *dirty;  /* NULL: no dirty tracking for this region */
	uint64_t dirty_offset;	     /* offset of @gpa in the dirty bitmap's region */
	unsigned flags;		     /* GM_REGION_* */
};

/* The head of every struct gm_memory. */
struct gm_memory_hot {
	const struct gm_region_hot *regions; /* sorted; a non-matching dummy when empty */
	const uint32_t *slots;		     /* (max_last >> shift) + 1 region indexes */
	gm_gpa_t max_last;		     /* highest byte in any region (0 when empty) */
	unsigned shift;			     /* 12..63 */
	uint32_t nregions;
};

/* The region holding @gpa, or NULL. */
static inline const struct gm_region_hot *gm__region_of(const struct gm_memory *m, gm_gpa_t gpa)
{
	const struct gm_memory_hot *h = (const struct gm_memory_hot *)(const void *)m;
	const struct gm_region_hot *r;

	if (gpa > h->max_last)
		return 0;
	r = &h->regions[h->slots[gpa >> h->shift]];
	/* Terminates: the last region's @last is max_last >= gpa. */
	while (gpa > r->last)
		r++;
	return gpa >= r->gpa ? r : 0;
}

/*
 * The host address of the naturally aligned @size-byte word at @gpa if it
 * lies inside one region and is aligned on the host too, else NULL.
 * *@rp is set to the region when the result is not NULL.
 */
static inline void *gm__word_ptr(const struct gm_memory *m, gm_gpa_t gpa, unsigned size,
				 const struct gm_region_hot **rp)
{
	const struct gm_region_hot *r = gm__region_of(m, gpa);
	unsigned char *p;

	if (__builtin_expect(r == 0 || r->last - gpa < size - 1, 0))
		return 0;
	p = r->host + (size_t)(gpa - r->gpa);
	if (__builtin_expect(((uintptr_t)p & (size - 1)) != 0, 0))
		return 0;
	*rp = r;
	return p;
}

/*
 * Mark the page(s) of a just-written word dirty when the region is tracked.
 * Pairs with gm_dirty_collect(): the data store above is ordered before the
 * bit test by the signal fence here (compiler) and by the membarrier() that
 * collect issues after clearing (CPU); the fetch_or is RELEASE so a collector
 * that sees the bit (ACQUIRE exchange) also sees the data.
 */
static inline void gm__mark_word(const struct gm_region_hot *r, gm_gpa_t gpa, unsigned size)
{
	struct gm_dirty_hot *d = r->dirty;
	uint64_t first, last, page;

	if (d == 0 || !__atomic_load_n(&d->enabled, __ATOMIC_RELAXED))
		return;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	first = (gpa - r->gpa + r->dirty_offset) >> GM_PAGE_SHIFT;
	last = (gpa - r->gpa + r->dirty_offset + size - 1) >> GM_PAGE_SHIFT;
	for (page = first; page <= last; page++) {
		uint64_t *w = &d->bits[page >> 6];
		uint64_t bit = (uint64_t)1 << (page & 63);

		/* Test first: a page already dirty costs a load, not a locked op. */
		if (!(__atomic_load_n(w, __ATOMIC_RELAXED) & bit))
			__atomic_fetch_or(w, bit, __ATOMIC_RELEASE);
	}
}

/* The exported functions, called by name in parentheses so the macros in
 * memory.h do not expand here. */
#define GM__READ_FAST(m, gpa, out, type)                                                           \
	do {                                                                                       \
		const struct gm_region_hot *r_;                                                    \
		const type *p_ = (const type *)gm__word_ptr((m), (gpa), sizeof(type), &r_);        \
		if (__builtin_expect(p_ != 0 && (out) != 0, 1)) {                                  \
			*(out) = __atomic_load_n(p_, __ATOMIC_RELAXED);                            \
			return 0;                                                                  \
		}                                                                                  \
	} while (0)

#define GM__WRITE_FAST(m, gpa, val, type)                                                          \
	do {                                                                                       \
		const struct gm_region_hot *r_;                                                    \
		type *p_ = (type *)gm__word_ptr((m), (gpa), sizeof(type), &r_);                    \
		if (__builtin_expect(p_ != 0 && !(r_->flags & 1u /* GM_REGION_READONLY */), 1)) { \
			__atomic_store_n(p_, (val), __ATOMIC_RELAXED);                             \
			gm__mark_word(r_, (gpa), sizeof(type));                                    \
			return 0;                                                                  \
		}                                                                                  \
	} while (0)

static inline int gm_inline_read_u8(const struct gm_memory *m, gm_gpa_t gpa, uint8_t *out)
{
	GM__READ_FAST(m, gpa, out, uint8_t);
	return (gm_read_u8)(m, gpa, out);
}

static inline int gm_inline_read_u16(const struct gm_memory *m, gm_gpa_t gpa, uint16_t *out)
{
	GM__READ_FAST(m, gpa, out, uint16_t);
	return (gm_read_u16)(m, gpa, out);
}

static inline int gm_inline_read_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t *out)
{
	GM__READ_FAST(m, gpa, out, uint32_t);
	return (gm_read_u32)(m, gpa, out);
}

static inline int gm_inline_read_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t *out)
{
	GM__READ_FAST(m, gpa, out, uint64_t);
	return (gm_read_u64)(m, gpa, out);
}

static inline int gm_inline_write_u8(const struct gm_memory *m, gm_gpa_t gpa, uint8_t val)
{
	GM__WRITE_FAST(m, gpa, val, uint8_t);
	return (gm_write_u8)(m, gpa, val);
}

static inline int gm_inline_write_u16(const struct gm_memory *m, gm_gpa_t gpa, uint16_t val)
{
	GM__WRITE_FAST(m, gpa, val, uint16_t);
	return (gm_write_u16)(m, gpa, val);
}

static inline int gm_inline_write_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val)
{
	GM__WRITE_FAST(m, gpa, val, uint32_t);
	return (gm_write_u32)(m, gpa, val);
}

static inline int gm_inline_write_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val)
{
	GM__WRITE_FAST(m, gpa, val, uint64_t);
	return (gm_write_u64)(m, gpa, val);
}

static inline void *gm_inline_host_ptr(const struct gm_memory *m, gm_gpa_t gpa, size_t len)
{
	const struct gm_region_hot *r = gm__region_of(m, gpa);

	/* len 0 inside a region is that byte's address; len - 1 would wrap. */
	if (r == 0 || (len != 0 && r->last - gpa < len - 1))
		return 0;
	return r->host + (size_t)(gpa - r->gpa);
}

#undef GM__READ_FAST
#undef GM__WRITE_FAST

#ifdef __cplusplus
}
#endif

#endif /* GUESTMEM_STATIC_MEMORY_INLINE_H */
