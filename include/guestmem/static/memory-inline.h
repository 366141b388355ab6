/* SPDX-License-Identifier: MIT */
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
 * Lookup: a view keeps a small slot table indexed by gpa >> shift,
 * where shift is the coarsest alignment shared by every region boundary
 * (2 MiB-aligned regions give 2 MiB slots; 512 of them make a 8 KiB table),
 * so a slot normally lies wholly inside one region. Such a slot carries the
 * host address bias of its region: an aligned fixed-width access is then
 * one shift, one table load, two tests and the access itself - no search,
 * no comparison against region bounds. Slots that touch a hole or a region
 * boundary send accesses to the exported (slow) functions, which walk the
 * sorted regions from the slot's first candidate.
 */
#ifndef GUESTMEM_STATIC_MEMORY_INLINE_H
#define GUESTMEM_STATIC_MEMORY_INLINE_H

#include <guestmem/addr.h>
#include <guestmem/static/dirty-inline.h>

/* Included by <guestmem/memory.h> after its prototypes; not on its own. */
struct gm_memory;

#ifdef __cplusplus
extern "C" {
#endif

/* One region of a view, as the slow path and dirty marking see it. */
struct gm_region_hot {
	gm_gpa_t gpa;		    /* first byte */
	gm_gpa_t last;		    /* last byte (inclusive: a region may end at 2^64 - 1) */
	unsigned char *host;	    /* host address of @gpa */
	struct gm_dirty_hot *dirty; /* NULL: no dirty tracking for this region */
	uint64_t dirty_offset;	    /* offset of @gpa in the dirty bitmap's region */
	unsigned flags;		    /* GM_REGION_* */
};

/*
 * A slot entry is its region's host address bias with these flags in the
 * low bits (a fast slot's bias is 8-byte aligned, so they are free): one
 * word to load per access.
 */
#define GM__SLOT_SLOW	  1u /* not wholly inside one region (or host misaligned): no fast path */
#define GM__SLOT_READONLY 2u /* the region refuses writes */
#define GM__SLOT_DIRTY	  4u /* the region has a dirty bitmap: writes may need marking */
#define GM__SLOT_FLAGS	  7u

/* The head of every view (struct gm_memory). */
struct gm_memory_hot {
	/*
	 * slots[i] covers guest bytes [i << shift, (i + 1) << shift). Without
	 * GM__SLOT_SLOW, every byte of it lies in one region, at host address
	 * (slots[i] & ~GM__SLOT_FLAGS) + gpa (modulo the pointer width: the
	 * bias may "wrap", the sum never does).
	 */
	const uintptr_t *slots;
	uint64_t nslots; /* (max_last >> shift) + 1 */
	unsigned shift;	 /* 12..63 */
	uint32_t nregions;
	const uint32_t *slot_first; /* per slot: first region whose last byte is >= its start */
	const struct gm_region_hot *regions; /* sorted; a non-matching dummy when empty */
	gm_gpa_t max_last;		     /* highest byte in any region (0 when empty) */
};

/* The region holding @gpa, or NULL. */
static inline const struct gm_region_hot *gm__region_of(const struct gm_memory *m, gm_gpa_t gpa)
{
	const struct gm_memory_hot *h = (const struct gm_memory_hot *)(const void *)m;
	const struct gm_region_hot *r;

	if (gpa > h->max_last)
		return 0;
	r = &h->regions[h->slot_first[gpa >> h->shift]];
	/* Terminates: the last region's @last is max_last >= gpa. */
	while (gpa > r->last)
		r++;
	return gpa >= r->gpa ? r : 0;
}

/*
 * The slot entry for the naturally aligned @size-byte word at @gpa, with
 * GM__SLOT_SLOW set when the word needs the slow path. An aligned word of
 * at most 8 bytes never crosses a slot (slots are >= 4 KiB), so a fast slot
 * holds the whole word.
 */
static inline uintptr_t gm__word_slot(const struct gm_memory *m, gm_gpa_t gpa, unsigned size)
{
	const struct gm_memory_hot *h = (const struct gm_memory_hot *)(const void *)m;
	uint64_t idx = gpa >> h->shift;

	if (__builtin_expect(idx >= h->nslots || (gpa & (size - 1)) != 0, 0))
		return GM__SLOT_SLOW;
	return h->slots[idx];
}

/* The host address of @gpa through fast slot entry @e. */
static inline void *gm__slot_host(uintptr_t e, gm_gpa_t gpa)
{
	return (void *)((e & ~(uintptr_t)GM__SLOT_FLAGS) + (uintptr_t)gpa);
}

/* The region of the fast slot holding @gpa (for dirty marking). */
static inline const struct gm_region_hot *gm__slot_region(const struct gm_memory *m, gm_gpa_t gpa)
{
	const struct gm_memory_hot *h = (const struct gm_memory_hot *)(const void *)m;

	return &h->regions[h->slot_first[gpa >> h->shift]];
}

/*
 * Mark the page of a just-written naturally aligned word (<= 8 bytes, so
 * on one page) dirty when the region is tracked. The ordering against
 * gm_dirty_collect() is gm__dirty_mark_page()'s (static/dirty-inline.h).
 */
static inline void gm__mark_word(const struct gm_region_hot *r, gm_gpa_t gpa)
{
	if (r->dirty != 0)
		gm__dirty_mark_page(r->dirty, gpa - r->gpa + r->dirty_offset);
}

/*
 * The fast paths below fall back to the exported functions, called by name
 * in parentheses so the macros in memory.h do not expand here.
 */
#define GM__READ_FAST(m, gpa, out, type)                                                 \
	do {                                                                             \
		uintptr_t e_ = gm__word_slot((m), (gpa), sizeof(type));                  \
		if (__builtin_expect(!(e_ & GM__SLOT_SLOW) && (out) != 0, 1)) {          \
			*(out) = __atomic_load_n((const type *)gm__slot_host(e_, (gpa)), \
						 __ATOMIC_RELAXED);                      \
			return 0;                                                        \
		}                                                                        \
	} while (0)

#define GM__WRITE_FAST(m, gpa, val, type)                                               \
	do {                                                                            \
		uintptr_t e_ = gm__word_slot((m), (gpa), sizeof(type));                 \
		if (__builtin_expect(!(e_ & (GM__SLOT_SLOW | GM__SLOT_READONLY)), 1)) { \
			__atomic_store_n((type *)gm__slot_host(e_, (gpa)), (val),       \
					 __ATOMIC_RELAXED);                             \
			if (e_ & GM__SLOT_DIRTY)                                        \
				gm__mark_word(gm__slot_region((m), (gpa)), (gpa));      \
			return 0;                                                       \
		}                                                                       \
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

/*
 * Relaxed, acquire and seq_cst atomics inline; with a constant @mo the
 * order tests fold away. Anything else goes to the exported function,
 * which also rejects invalid orders.
 */
#define GM__ATOMIC_LOAD_FAST(m, gpa, out, mo, type)                              \
	do {                                                                     \
		uintptr_t e_ = gm__word_slot((m), (gpa), sizeof(type));          \
		if (__builtin_expect(!(e_ & GM__SLOT_SLOW) && (out) != 0, 1)) {  \
			const type *p_ = (const type *)gm__slot_host(e_, (gpa)); \
			if ((mo) == __ATOMIC_RELAXED) {                          \
				*(out) = __atomic_load_n(p_, __ATOMIC_RELAXED);  \
				return 0;                                        \
			}                                                        \
			if ((mo) == __ATOMIC_ACQUIRE) {                          \
				*(out) = __atomic_load_n(p_, __ATOMIC_ACQUIRE);  \
				return 0;                                        \
			}                                                        \
			if ((mo) == __ATOMIC_SEQ_CST) {                          \
				*(out) = __atomic_load_n(p_, __ATOMIC_SEQ_CST);  \
				return 0;                                        \
			}                                                        \
		}                                                                \
	} while (0)

#define GM__ATOMIC_STORE_FAST(m, gpa, val, mo, type)                                    \
	do {                                                                            \
		uintptr_t e_ = gm__word_slot((m), (gpa), sizeof(type));                 \
		if (__builtin_expect(!(e_ & (GM__SLOT_SLOW | GM__SLOT_READONLY)), 1) && \
		    ((mo) == __ATOMIC_RELAXED || (mo) == __ATOMIC_RELEASE ||            \
		     (mo) == __ATOMIC_SEQ_CST)) {                                       \
			type *p_ = (type *)gm__slot_host(e_, (gpa));                    \
			if ((mo) == __ATOMIC_RELAXED)                                   \
				__atomic_store_n(p_, (val), __ATOMIC_RELAXED);          \
			else if ((mo) == __ATOMIC_RELEASE)                              \
				__atomic_store_n(p_, (val), __ATOMIC_RELEASE);          \
			else                                                            \
				__atomic_store_n(p_, (val), __ATOMIC_SEQ_CST);          \
			if (e_ & GM__SLOT_DIRTY)                                        \
				gm__mark_word(gm__slot_region((m), (gpa)), (gpa));      \
			return 0;                                                       \
		}                                                                       \
	} while (0)

static inline int gm_inline_atomic_load_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t *out,
					    int memorder)
{
	GM__ATOMIC_LOAD_FAST(m, gpa, out, memorder, uint32_t);
	return (gm_atomic_load_u32)(m, gpa, out, memorder);
}

static inline int gm_inline_atomic_load_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t *out,
					    int memorder)
{
	GM__ATOMIC_LOAD_FAST(m, gpa, out, memorder, uint64_t);
	return (gm_atomic_load_u64)(m, gpa, out, memorder);
}

static inline int gm_inline_atomic_store_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val,
					     int memorder)
{
	GM__ATOMIC_STORE_FAST(m, gpa, val, memorder, uint32_t);
	return (gm_atomic_store_u32)(m, gpa, val, memorder);
}

static inline int gm_inline_atomic_store_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val,
					     int memorder)
{
	GM__ATOMIC_STORE_FAST(m, gpa, val, memorder, uint64_t);
	return (gm_atomic_store_u64)(m, gpa, val, memorder);
}

static inline void *gm_inline_host_ptr(const struct gm_memory *m, gm_gpa_t gpa, size_t len)
{
	const struct gm_memory_hot *h = (const struct gm_memory_hot *)(const void *)m;
	uint64_t idx = gpa >> h->shift, in_slot = gpa & (((uint64_t)1 << h->shift) - 1);
	uintptr_t e;

	/* Fast: the range ends inside a slot wholly inside one region. */
	if (__builtin_expect(idx < h->nslots, 1)) {
		e = h->slots[idx];
		if (__builtin_expect(
			!(e & GM__SLOT_SLOW) && len <= ((uint64_t)1 << h->shift) - in_slot, 1))
			return gm__slot_host(e, gpa);
	}
	return (gm_host_ptr)(m, gpa, len);
}

#undef GM__READ_FAST
#undef GM__ATOMIC_LOAD_FAST
#undef GM__ATOMIC_STORE_FAST
#undef GM__WRITE_FAST

#ifdef __cplusplus
}
#endif

#endif /* GUESTMEM_STATIC_MEMORY_INLINE_H */
