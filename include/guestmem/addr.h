/* SPDX-License-Identifier: MIT */
/*
 * guestmem/addr.h - guest-physical addresses and overflow-checked arithmetic.
 *
 * The lowest layer. A guest-physical address, and every size or offset in
 * the guest's address space, is a gm_gpa_t / uint64_t on every host, even a
 * 32-bit one. Host lengths are size_t. The helpers below are the only way
 * the library turns one into the other or adds guest quantities together:
 * each reports overflow instead of wrapping, so a hostile guest number can
 * never become a small, plausible-looking one.
 *
 * Everything here is static inline, pure and thread-safe.
 */
#ifndef GUESTMEM_ADDR_H
#define GUESTMEM_ADDR_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks a function exported from libguestmem; everything else is hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define GM_API __attribute__((visibility("default")))
#else
#define GM_API
#endif

/* A guest-physical address: 64 bits on every host. */
typedef uint64_t gm_gpa_t;

/* A range of guest-physical addresses: @size bytes starting at @gpa. */
struct gm_range {
	gm_gpa_t gpa;
	uint64_t size;
};

/* The page size guestmem tracks guest memory in (dirty bits, snapshots). */
#define GM_PAGE_SHIFT 12
#define GM_PAGE_SIZE  ((uint64_t)1 << GM_PAGE_SHIFT)

/*
 * *@sum = @a + @b. Returns true, leaving *@sum undefined for the caller's
 * purposes, when the true sum does not fit in 64 bits.
 */
static inline bool gm_add_overflow_u64(uint64_t a, uint64_t b, uint64_t *sum)
{
	*sum = a + b;
	return *sum < a;
}

/* *@prod = @a * @b. Returns true when the true product does not fit. */
static inline bool gm_mul_overflow_u64(uint64_t a, uint64_t b, uint64_t *prod)
{
	*prod = a * b;
	return a != 0 && *prod / a != b;
}

/* *@sum = @a + @b for host lengths. Returns true on overflow of size_t. */
static inline bool gm_add_overflow_size(size_t a, size_t b, size_t *sum)
{
	*sum = a + b;
	return *sum < a;
}

/*
 * Narrow a guest quantity to a host length.
 * Returns 0, or -EOVERFLOW when @v does not fit in size_t (a 32-bit host
 * and a value of 4 GiB or more); *@out is untouched then.
 */
static inline int gm_u64_to_size(uint64_t v, size_t *out)
{
	if (v > (uint64_t)SIZE_MAX)
		return -EOVERFLOW;
	*out = (size_t)v;
	return 0;
}

/*
 * The last byte of the range [@gpa, @gpa + @size): *@last = @gpa + @size - 1.
 * Using the last byte rather than the end lets a range reach UINT64_MAX.
 * Returns 0, -EINVAL if @size is 0, -EOVERFLOW if the range wraps past 2^64.
 */
static inline int gm_range_last(gm_gpa_t gpa, uint64_t size, gm_gpa_t *last)
{
	if (size == 0)
		return -EINVAL;
	if (gm_add_overflow_u64(gpa, size - 1, last))
		return -EOVERFLOW;
	return 0;
}

/* True if @a is a power of two (0 is not). */
static inline bool gm_is_pow2(uint64_t a)
{
	return a != 0 && (a & (a - 1)) == 0;
}

/* True if @v is a multiple of @align, a power of two. */
static inline bool gm_is_aligned(uint64_t v, uint64_t align)
{
	return (v & (align - 1)) == 0;
}

/* @v rounded down to a multiple of @align, a power of two. Cannot fail. */
static inline uint64_t gm_align_down(uint64_t v, uint64_t align)
{
	return v & ~(align - 1);
}

/*
 * *@out = @v rounded up to a multiple of @align.
 * Returns 0, -EINVAL if @align is not a power of two, -EOVERFLOW if the
 * result does not fit in 64 bits.
 */
static inline int gm_align_up(uint64_t v, uint64_t align, uint64_t *out)
{
	uint64_t t;

	if (!gm_is_pow2(align))
		return -EINVAL;
	if (gm_add_overflow_u64(v, align - 1, &t))
		return -EOVERFLOW;
	*out = t & ~(align - 1);
	return 0;
}

/*
 * True if the ranges [@a, @a + @asize) and [@b, @b + @bsize) share a byte.
 * Both must be valid (non-empty, not wrapping: see gm_range_last()).
 */
static inline bool gm_ranges_overlap(gm_gpa_t a, uint64_t asize, gm_gpa_t b, uint64_t bsize)
{
	/* Compare last bytes so ranges that end at UINT64_MAX work. */
	return a <= b + (bsize - 1) && b <= a + (asize - 1);
}

/*
 * True if [@gpa, @gpa + @size) lies inside [@outer, @outer + @outer_size).
 * @size may be 0 (an empty range inside @outer, at or before its end).
 * The outer range must be valid; the inner one may be hostile: a wrapping
 * inner range is reported as not contained.
 */
static inline bool gm_range_contains(gm_gpa_t outer, uint64_t outer_size, gm_gpa_t gpa,
				     uint64_t size)
{
	uint64_t off;

	if (gpa < outer)
		return false;
	off = gpa - outer;
	/* off + size <= outer_size, written so that nothing can overflow. */
	return off <= outer_size && size <= outer_size - off;
}

#ifdef __cplusplus
}
#endif

#endif /* GUESTMEM_ADDR_H */
