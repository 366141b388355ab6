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
 * Lookup: a view keeps small slot tables indexed by gpa >> shift,
 * where shift is the coarsest alignment shared by every region boundary
 * (2 MiB-aligned regions give 2 MiB slots; 512 of them make a 4 KiB table),
 * so a slot normally lies wholly inside one region. Such a slot carries the
 * host address bias of its region: an aligned fixed-width access is then
 * one shift, one table load, two tests and the access itself - no search,
 * no comparison against region bounds. Reads and writes have a table each:
 * a read entry is the bare bias (no flag bits to mask off on the way to
 * the load), a write entry carries the region's read-only and dirty flags.
 * Slots that touch a hole or a region boundary send accesses to the
 * exported (slow) functions, which walk the sorted regions from the slot's
 * first candidate.
 *
 * A read through a view pointer loads the table pointer, size and shift
 * from the view each time: the compiler cannot keep them in registers
 * across a loop that also calls the slow path or stores anywhere. struct
 * gm_cursor (memory.h) is those three words copied into the caller's local,
 * for loops of many reads.
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
 * A write entry (wslots[]) is its region's host address bias with these
 * flags in the low bits (a fast slot's bias is 8-byte aligned, so they are
 * free): one word to load per access. A read entry (slots[]) is the same
 * bias with no flag, or just GM__SLOT_SLOW. An entry with GM__SLOT_SLOW
 * sends the access to the exported function, which is always correct: the
 * library also makes the write entries of a region slow when its dirty
 * bitmap is shared with another process (a vhost-user log), so that the
 * library's mark, which counts the pages it newly sets, does the marking.
 */
#define GM__SLOT_SLOW	  1u /* not wholly inside one region (or host misaligned): no fast path */
#define GM__SLOT_READONLY 2u /* the region refuses writes */
#define GM__SLOT_DIRTY	  4u /* the region has a dirty bitmap: writes may need marking */
#define GM__SLOT_FLAGS	  7u

/* Per slot: where a fast write with GM__SLOT_DIRTY marks its page. */
struct gm_slot_dirty {
	struct gm_dirty_hot *dirty; /* the region's bitmap; NULL without GM__SLOT_DIRTY */
	uint64_t bias;		    /* gpa + bias (mod 2^64): offset in the bitmap's region */
};

/* The head of every view (struct gm_memory). */
struct gm_memory_hot {
	/*
	 * slots[i] covers guest bytes [i << shift, (i + 1) << shift). Unless
	 * it is GM__SLOT_SLOW, every byte of it lies in one region, at host
	 * address slots[i] + gpa (modulo the pointer width: the bias may
	 * "wrap", the sum never does).
	 */
	const uintptr_t *slots;
	uint64_t nslots; /* (max_last >> shift) + 1 */
	unsigned shift;	 /* 12..63 */
	uint32_t nregions;
	const uint32_t *slot_first; /* per slot: first region whose last byte is >= its start */
	const struct gm_region_hot *regions;	/* sorted; a non-matching dummy when empty */
	gm_gpa_t max_last;			/* highest byte in any region (0 when empty) */
	const uintptr_t *wslots;		/* per slot: slots[i]'s bias | GM__SLOT_* flags */
	const struct gm_slot_dirty *slot_dirty; /* per slot */
};

/* The hot head of view @m. */
static inline const struct gm_memory_hot *gm__hot(const struct gm_memory *m)
{
	return (const struct gm_memory_hot *)(const void *)m;
}

/* The region holding @gpa, or NULL. */
static inline const struct gm_region_hot *gm__region_of(const struct gm_memory *m, gm_gpa_t gpa)
{
	const struct gm_memory_hot *h = gm__hot(m);
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
 * The read entry for the naturally aligned @size-byte word at @gpa in a
 * table of @nslots @slots of 1 << @shift bytes, or GM__SLOT_SLOW when the
 * word needs the slow path. An aligned word of at most 8 bytes never
 * crosses a slot (slots are >= 4 KiB), so a fast slot holds the whole word.
 */
static inline uintptr_t gm__read_slot(const uintptr_t *slots, uint64_t nslots, unsigned shift,
				      gm_gpa_t gpa, unsigned size)
{
	uint64_t idx = gpa >> shift;

	if (__builtin_expect(idx >= nslots || (gpa & (size - 1)) != 0, 0))
		return GM__SLOT_SLOW;
	return slots[idx];
}

/* The host address of @gpa through fast read entry @e. */
static inline void *gm__read_host(uintptr_t e, gm_gpa_t gpa)
{
	return (void *)(e + (uintptr_t)gpa);
}

/*
 * Mark the page of a just-written naturally aligned word (<= 8 bytes, so
 * on one page) dirty when the region is tracked. The ordering against
 * gm_dirty_collect() is gm__dirty_mark_page()'s (static/dirty-inline.h).
 * For the library's slow paths, which know the region.
 */
static inline void gm__mark_word(const struct gm_region_hot *r, gm_gpa_t gpa)
{
	if (r->dirty != 0)
		gm__dirty_mark_page(r->dirty, gpa - r->gpa + r->dirty_offset);
}

/*
 * The fast paths below fall back to the exported functions, called by name
 * in parentheses so the macros in memory.h do not expand here.
 *
 * A read: return from the caller with the word in *@out if the fast path
 * serves it.
 */
#define GM__READ_FAST(slots, nslots, shift, gpa, out, type)                                    \
	do {                                                                                   \
		uintptr_t e_ = gm__read_slot((slots), (nslots), (shift), (gpa), sizeof(type)); \
		if (__builtin_expect(!(e_ & GM__SLOT_SLOW) && (out) != 0, 1)) {                \
			*(out) = __atomic_load_n((const type *)gm__read_host(e_, (gpa)),       \
						 __ATOMIC_RELAXED);                            \
			return 0;                                                              \
		}                                                                              \
	} while (0)

/*
 * The slow path of a read, returning from the caller. The exported
 * function reads into *@out itself: reading into a local of its own would
 * let the caller's variable stay in a register, but would leave it unset
 * on the error path, which compilers then warn about in every caller that
 * ignores the result. A loop that wants its variables in registers reads
 * through a struct gm_cursor.
 */
#define GM__READ_SLOW(fn, m, gpa, out) return (fn)((m), (gpa), (out))

/*
 * A store of @val with memory order @mo (a constant) through the write
 * entry of an aligned word, then its dirty mark through slot_dirty[];
 * returns from the caller if the fast path serves it.
 */
#define GM__WRITE_FAST(m, gpa, val, type, mo)                                                      \
	do {                                                                                       \
		const struct gm_memory_hot *h_ = gm__hot(m);                                       \
		uint64_t idx_ = (gpa) >> h_->shift;                                                \
		if (__builtin_expect(idx_ < h_->nslots && ((gpa) & (sizeof(type) - 1)) == 0, 1)) { \
			uintptr_t e_ = h_->wslots[idx_];                                           \
			if (__builtin_expect(!(e_ & (GM__SLOT_SLOW | GM__SLOT_READONLY)), 1)) {    \
				__atomic_store_n((type *)((e_ & ~(uintptr_t)GM__SLOT_FLAGS) +      \
							  (uintptr_t)(gpa)),                       \
						 (val), (mo));                                     \
				if (e_ & GM__SLOT_DIRTY) {                                         \
					const struct gm_slot_dirty *sd_ = &h_->slot_dirty[idx_];   \
					gm__dirty_mark_page(sd_->dirty, (gpa) + sd_->bias);        \
				}                                                                  \
				return 0;                                                          \
			}                                                                          \
		}                                                                                  \
	} while (0)

static inline int gm_inline_read_u8(const struct gm_memory *m, gm_gpa_t gpa, uint8_t *out)
{
	const struct gm_memory_hot *h = gm__hot(m);

	GM__READ_FAST(h->slots, h->nslots, h->shift, gpa, out, uint8_t);
	GM__READ_SLOW(gm_read_u8, m, gpa, out);
}

static inline int gm_inline_read_u16(const struct gm_memory *m, gm_gpa_t gpa, uint16_t *out)
{
	const struct gm_memory_hot *h = gm__hot(m);

	GM__READ_FAST(h->slots, h->nslots, h->shift, gpa, out, uint16_t);
	GM__READ_SLOW(gm_read_u16, m, gpa, out);
}

static inline int gm_inline_read_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t *out)
{
	const struct gm_memory_hot *h = gm__hot(m);

	GM__READ_FAST(h->slots, h->nslots, h->shift, gpa, out, uint32_t);
	GM__READ_SLOW(gm_read_u32, m, gpa, out);
}

static inline int gm_inline_read_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t *out)
{
	const struct gm_memory_hot *h = gm__hot(m);

	GM__READ_FAST(h->slots, h->nslots, h->shift, gpa, out, uint64_t);
	GM__READ_SLOW(gm_read_u64, m, gpa, out);
}

static inline int gm_inline_write_u8(const struct gm_memory *m, gm_gpa_t gpa, uint8_t val)
{
	GM__WRITE_FAST(m, gpa, val, uint8_t, __ATOMIC_RELAXED);
	return (gm_write_u8)(m, gpa, val);
}

static inline int gm_inline_write_u16(const struct gm_memory *m, gm_gpa_t gpa, uint16_t val)
{
	GM__WRITE_FAST(m, gpa, val, uint16_t, __ATOMIC_RELAXED);
	return (gm_write_u16)(m, gpa, val);
}

static inline int gm_inline_write_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val)
{
	GM__WRITE_FAST(m, gpa, val, uint32_t, __ATOMIC_RELAXED);
	return (gm_write_u32)(m, gpa, val);
}

static inline int gm_inline_write_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val)
{
	GM__WRITE_FAST(m, gpa, val, uint64_t, __ATOMIC_RELAXED);
	return (gm_write_u64)(m, gpa, val);
}

/* A read cursor (memory.h): the view's read table, copied. */
static inline void gm_inline_cursor_init(struct gm_cursor *c, const struct gm_memory *m)
{
	const struct gm_memory_hot *h = gm__hot(m);

	c->m = m;
	c->slots = h->slots;
	c->nslots = h->nslots;
	c->shift = h->shift;
}

static inline int gm_inline_cursor_read_u8(const struct gm_cursor *c, gm_gpa_t gpa, uint8_t *out)
{
	GM__READ_FAST(c->slots, c->nslots, c->shift, gpa, out, uint8_t);
	GM__READ_SLOW(gm_read_u8, c->m, gpa, out);
}

static inline int gm_inline_cursor_read_u16(const struct gm_cursor *c, gm_gpa_t gpa, uint16_t *out)
{
	GM__READ_FAST(c->slots, c->nslots, c->shift, gpa, out, uint16_t);
	GM__READ_SLOW(gm_read_u16, c->m, gpa, out);
}

static inline int gm_inline_cursor_read_u32(const struct gm_cursor *c, gm_gpa_t gpa, uint32_t *out)
{
	GM__READ_FAST(c->slots, c->nslots, c->shift, gpa, out, uint32_t);
	GM__READ_SLOW(gm_read_u32, c->m, gpa, out);
}

static inline int gm_inline_cursor_read_u64(const struct gm_cursor *c, gm_gpa_t gpa, uint64_t *out)
{
	GM__READ_FAST(c->slots, c->nslots, c->shift, gpa, out, uint64_t);
	GM__READ_SLOW(gm_read_u64, c->m, gpa, out);
}

/*
 * Relaxed, acquire and seq_cst atomics inline; with a constant @mo the
 * order tests fold away. Anything else goes to the exported function,
 * which also rejects invalid orders.
 */
#define GM__ATOMIC_LOAD_FAST(m, gpa, out, mo, type)                                       \
	do {                                                                              \
		const struct gm_memory_hot *h_ = gm__hot(m);                              \
		uintptr_t e_ =                                                            \
		    gm__read_slot(h_->slots, h_->nslots, h_->shift, (gpa), sizeof(type)); \
		if (__builtin_expect(!(e_ & GM__SLOT_SLOW) && (out) != 0, 1)) {           \
			const type *p_ = (const type *)gm__read_host(e_, (gpa));          \
			if ((mo) == __ATOMIC_RELAXED) {                                   \
				*(out) = __atomic_load_n(p_, __ATOMIC_RELAXED);           \
				return 0;                                                 \
			}                                                                 \
			if ((mo) == __ATOMIC_ACQUIRE) {                                   \
				*(out) = __atomic_load_n(p_, __ATOMIC_ACQUIRE);           \
				return 0;                                                 \
			}                                                                 \
			if ((mo) == __ATOMIC_SEQ_CST) {                                   \
				*(out) = __atomic_load_n(p_, __ATOMIC_SEQ_CST);           \
				return 0;                                                 \
			}                                                                 \
		}                                                                         \
	} while (0)

/* The order tests fold away for a constant @mo; GM__WRITE_FAST needs a constant order. */
#define GM__ATOMIC_STORE_FAST(m, gpa, val, mo, type)                         \
	do {                                                                 \
		if ((mo) == __ATOMIC_RELAXED)                                \
			GM__WRITE_FAST(m, gpa, val, type, __ATOMIC_RELAXED); \
		else if ((mo) == __ATOMIC_RELEASE)                           \
			GM__WRITE_FAST(m, gpa, val, type, __ATOMIC_RELEASE); \
		else if ((mo) == __ATOMIC_SEQ_CST)                           \
			GM__WRITE_FAST(m, gpa, val, type, __ATOMIC_SEQ_CST); \
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
	const struct gm_memory_hot *h = gm__hot(m);
	uint64_t span = (uint64_t)1 << h->shift, idx = gpa >> h->shift;
	uintptr_t e;

	/* Fast: the range ends inside its slot, and the slot lies inside one region. */
	if (__builtin_expect(idx < h->nslots && len <= span - (gpa & (span - 1)), 1)) {
		e = h->slots[idx];
		if (__builtin_expect(!(e & GM__SLOT_SLOW), 1))
			return gm__read_host(e, gpa);
	}
	return (gm_host_ptr)(m, gpa, len);
}

#undef GM__READ_FAST
#undef GM__READ_SLOW
#undef GM__ATOMIC_LOAD_FAST
#undef GM__ATOMIC_STORE_FAST
#undef GM__WRITE_FAST

#ifdef __cplusplus
}
#endif

#endif /* GUESTMEM_STATIC_MEMORY_INLINE_H */
