/* SPDX-License-Identifier: MIT */
/*
 * test_addr.c - the checked arithmetic of <guestmem/addr.h>.
 *
 * Every helper is exercised at its edges: 0, UINT64_MAX, ranges that end
 * exactly at UINT64_MAX, and ranges that wrap past 2^64. The 64-to-size_t
 * narrowing is checked for the host this runs on (32-bit: 4 GiB does not
 * fit; 64-bit: everything does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <guestmem/addr.h>

#define GiB ((uint64_t)1 << 30)

static void page_constants_are_4k(void **state)
{
	(void)state;
	assert_int_equal(GM_PAGE_SHIFT, 12);
	assert_true(GM_PAGE_SIZE == 4096);
	assert_int_equal(sizeof(gm_gpa_t), 8);
}

static void add_overflow_u64_at_edges(void **state)
{
	uint64_t s;

	(void)state;
	assert_false(gm_add_overflow_u64(0, 0, &s));
	assert_true(s == 0);
	assert_false(gm_add_overflow_u64(UINT64_MAX, 0, &s));
	assert_true(s == UINT64_MAX);
	assert_false(gm_add_overflow_u64(0, UINT64_MAX, &s));
	assert_true(s == UINT64_MAX);
	assert_false(gm_add_overflow_u64(UINT64_MAX - 5, 5, &s));
	assert_true(s == UINT64_MAX);
	assert_true(gm_add_overflow_u64(UINT64_MAX - 5, 6, &s));
	assert_true(gm_add_overflow_u64(UINT64_MAX, 1, &s));
	assert_true(gm_add_overflow_u64(1, UINT64_MAX, &s));
	assert_true(gm_add_overflow_u64(UINT64_MAX, UINT64_MAX, &s));
	assert_false(gm_add_overflow_u64(4 * GiB, 4 * GiB, &s));
	assert_true(s == 8 * GiB);
}

static void mul_overflow_u64_at_edges(void **state)
{
	uint64_t p;

	(void)state;
	assert_false(gm_mul_overflow_u64(0, UINT64_MAX, &p));
	assert_true(p == 0);
	assert_false(gm_mul_overflow_u64(UINT64_MAX, 0, &p));
	assert_true(p == 0);
	assert_false(gm_mul_overflow_u64(1, UINT64_MAX, &p));
	assert_true(p == UINT64_MAX);
	assert_false(gm_mul_overflow_u64(UINT64_MAX, 1, &p));
	assert_true(p == UINT64_MAX);
	assert_false(gm_mul_overflow_u64((uint64_t)1 << 32, ((uint64_t)1 << 32) - 1, &p));
	assert_true(p == UINT64_MAX - UINT32_MAX);
	assert_true(gm_mul_overflow_u64((uint64_t)1 << 32, (uint64_t)1 << 32, &p));
	assert_true(gm_mul_overflow_u64(UINT64_MAX, 2, &p));
	assert_true(gm_mul_overflow_u64(2, (uint64_t)1 << 63, &p));
	assert_false(gm_mul_overflow_u64(4096, 1 << 20, &p));
	assert_true(p == 4 * GiB);
}

static void add_overflow_size_at_edges(void **state)
{
	size_t s;

	(void)state;
	assert_false(gm_add_overflow_size(0, 0, &s));
	assert_true(s == 0);
	assert_false(gm_add_overflow_size(SIZE_MAX, 0, &s));
	assert_true(s == SIZE_MAX);
	assert_false(gm_add_overflow_size(SIZE_MAX - 1, 1, &s));
	assert_true(s == SIZE_MAX);
	assert_true(gm_add_overflow_size(SIZE_MAX, 1, &s));
	assert_true(gm_add_overflow_size(1, SIZE_MAX, &s));
	assert_true(gm_add_overflow_size(SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 1, &s));
}

static void u64_to_size_narrows_only_what_fits(void **state)
{
	size_t out = 7;

	(void)state;
	assert_int_equal(gm_u64_to_size(0, &out), 0);
	assert_true(out == 0);
	assert_int_equal(gm_u64_to_size(UINT32_MAX, &out), 0);
	assert_true(out == UINT32_MAX);
	assert_int_equal(gm_u64_to_size((uint64_t)SIZE_MAX, &out), 0);
	assert_true(out == SIZE_MAX);
#if SIZE_MAX == UINT32_MAX
	out = 7;
	assert_int_equal(gm_u64_to_size(4 * GiB, &out), -EOVERFLOW);
	assert_true(out == 7); /* untouched on failure */
	assert_int_equal(gm_u64_to_size((uint64_t)UINT32_MAX + 1, &out), -EOVERFLOW);
	assert_int_equal(gm_u64_to_size(UINT64_MAX, &out), -EOVERFLOW);
	assert_true(out == 7);
#else
	/* A 64-bit host: every guest quantity fits. */
	assert_int_equal(gm_u64_to_size(4 * GiB, &out), 0);
	assert_true(out == 4 * GiB);
	assert_int_equal(gm_u64_to_size(UINT64_MAX, &out), 0);
	assert_true(out == UINT64_MAX);
#endif
}

static void range_last_reaches_uint64_max(void **state)
{
	gm_gpa_t last = 7;

	(void)state;
	assert_int_equal(gm_range_last(0, 1, &last), 0);
	assert_true(last == 0);
	assert_int_equal(gm_range_last(0x1000, 0x1000, &last), 0);
	assert_true(last == 0x1fff);
	assert_int_equal(gm_range_last(0, UINT64_MAX, &last), 0);
	assert_true(last == UINT64_MAX - 1);
	assert_int_equal(gm_range_last(1, UINT64_MAX, &last), 0);
	assert_true(last == UINT64_MAX);
	assert_int_equal(gm_range_last(UINT64_MAX, 1, &last), 0);
	assert_true(last == UINT64_MAX);
	assert_int_equal(gm_range_last(UINT64_MAX - 0xfff, 0x1000, &last), 0);
	assert_true(last == UINT64_MAX);
	assert_int_equal(gm_range_last(4 * GiB, 4 * GiB, &last), 0);
	assert_true(last == 8 * GiB - 1);
}

static void range_last_rejects_empty_and_wrapping(void **state)
{
	gm_gpa_t last;

	(void)state;
	assert_int_equal(gm_range_last(0, 0, &last), -EINVAL);
	assert_int_equal(gm_range_last(UINT64_MAX, 0, &last), -EINVAL);
	assert_int_equal(gm_range_last(UINT64_MAX, 2, &last), -EOVERFLOW);
	assert_int_equal(gm_range_last(2, UINT64_MAX, &last), -EOVERFLOW);
	assert_int_equal(gm_range_last(UINT64_MAX - 0xfff, 0x1001, &last), -EOVERFLOW);
	assert_int_equal(gm_range_last(UINT64_MAX, UINT64_MAX, &last), -EOVERFLOW);
}

static void is_pow2_excludes_zero(void **state)
{
	(void)state;
	assert_false(gm_is_pow2(0));
	assert_true(gm_is_pow2(1));
	assert_true(gm_is_pow2(2));
	assert_false(gm_is_pow2(3));
	assert_true(gm_is_pow2(4096));
	assert_false(gm_is_pow2(4097));
	assert_true(gm_is_pow2((uint64_t)1 << 63));
	assert_false(gm_is_pow2(((uint64_t)1 << 63) + 1));
	assert_false(gm_is_pow2(UINT64_MAX));
}

static void is_aligned_at_edges(void **state)
{
	(void)state;
	assert_true(gm_is_aligned(0, 4096));
	assert_true(gm_is_aligned(4096, 4096));
	assert_false(gm_is_aligned(4095, 4096));
	assert_false(gm_is_aligned(4097, 4096));
	assert_true(gm_is_aligned(UINT64_MAX, 1));
	assert_false(gm_is_aligned(UINT64_MAX, 2));
	assert_true(gm_is_aligned(UINT64_MAX - 4095, 4096));
	assert_true(gm_is_aligned((uint64_t)1 << 63, (uint64_t)1 << 63));
	assert_false(gm_is_aligned(((uint64_t)1 << 63) - 1, (uint64_t)1 << 63));
}

static void align_down_at_edges(void **state)
{
	(void)state;
	assert_true(gm_align_down(0, 4096) == 0);
	assert_true(gm_align_down(4095, 4096) == 0);
	assert_true(gm_align_down(4096, 4096) == 4096);
	assert_true(gm_align_down(8191, 4096) == 4096);
	assert_true(gm_align_down(UINT64_MAX, 4096) == UINT64_MAX - 4095);
	assert_true(gm_align_down(UINT64_MAX, 1) == UINT64_MAX);
	assert_true(gm_align_down(UINT64_MAX, (uint64_t)1 << 63) == (uint64_t)1 << 63);
}

static void align_up_at_edges(void **state)
{
	uint64_t out = 7;

	(void)state;
	assert_int_equal(gm_align_up(0, 4096, &out), 0);
	assert_true(out == 0);
	assert_int_equal(gm_align_up(1, 4096, &out), 0);
	assert_true(out == 4096);
	assert_int_equal(gm_align_up(4096, 4096, &out), 0);
	assert_true(out == 4096);
	assert_int_equal(gm_align_up(4097, 4096, &out), 0);
	assert_true(out == 8192);
	assert_int_equal(gm_align_up(UINT64_MAX - 4095, 4096, &out), 0);
	assert_true(out == UINT64_MAX - 4095);
	assert_int_equal(gm_align_up(UINT64_MAX, 1, &out), 0);
	assert_true(out == UINT64_MAX);
	assert_int_equal(gm_align_up(5, 1, &out), 0);
	assert_true(out == 5);
	assert_int_equal(gm_align_up((uint64_t)1 << 63, (uint64_t)1 << 63, &out), 0);
	assert_true(out == (uint64_t)1 << 63);
}

static void align_up_rejects_overflow_and_bad_alignment(void **state)
{
	uint64_t out = 7;

	(void)state;
	assert_int_equal(gm_align_up(UINT64_MAX - 4094, 4096, &out), -EOVERFLOW);
	assert_int_equal(gm_align_up(UINT64_MAX, 4096, &out), -EOVERFLOW);
	assert_int_equal(gm_align_up(((uint64_t)1 << 63) + 1, (uint64_t)1 << 63, &out), -EOVERFLOW);
	assert_true(out == 7);
	assert_int_equal(gm_align_up(1, 0, &out), -EINVAL);
	assert_int_equal(gm_align_up(1, 3, &out), -EINVAL);
	assert_int_equal(gm_align_up(1, 4095, &out), -EINVAL);
	assert_int_equal(gm_align_up(1, UINT64_MAX, &out), -EINVAL);
	assert_true(out == 7);
}

static void ranges_overlap_by_one_byte_or_not(void **state)
{
	(void)state;
	assert_true(gm_ranges_overlap(0, 1, 0, 1));
	assert_false(gm_ranges_overlap(0, 0x1000, 0x1000, 0x1000));
	assert_false(gm_ranges_overlap(0x1000, 0x1000, 0, 0x1000));
	assert_true(gm_ranges_overlap(0, 0x1001, 0x1000, 0x1000));
	assert_true(gm_ranges_overlap(0x1000, 0x1000, 0, 0x1001));
	assert_true(gm_ranges_overlap(0, 0x3000, 0x1000, 0x1000)); /* one inside the other */
	assert_true(gm_ranges_overlap(0x1000, 0x1000, 0, 0x3000));
}

static void ranges_overlap_ending_at_uint64_max(void **state)
{
	(void)state;
	/* [UINT64_MAX - 0xfff, UINT64_MAX] and neighbours. */
	assert_true(gm_ranges_overlap(UINT64_MAX - 0xfff, 0x1000, UINT64_MAX, 1));
	assert_true(gm_ranges_overlap(UINT64_MAX, 1, UINT64_MAX - 0xfff, 0x1000));
	assert_false(gm_ranges_overlap(UINT64_MAX - 0xfff, 0x1000, UINT64_MAX - 0x1fff, 0x1000));
	assert_true(gm_ranges_overlap(UINT64_MAX - 0xfff, 0x1000, UINT64_MAX - 0x1fff, 0x1001));
	/* The whole space but its last byte, and the last byte. */
	assert_false(gm_ranges_overlap(0, UINT64_MAX, UINT64_MAX, 1));
	assert_true(gm_ranges_overlap(0, UINT64_MAX, UINT64_MAX - 1, 2));
	assert_true(gm_ranges_overlap(1, UINT64_MAX, 0x1000, 1));
	assert_false(gm_ranges_overlap(1, UINT64_MAX, 0, 1));
}

static void range_contains_at_edges(void **state)
{
	(void)state;
	assert_true(gm_range_contains(0x1000, 0x1000, 0x1000, 0x1000));
	assert_true(gm_range_contains(0x1000, 0x1000, 0x1fff, 1));
	assert_false(gm_range_contains(0x1000, 0x1000, 0x1fff, 2));
	assert_false(gm_range_contains(0x1000, 0x1000, 0xfff, 1));
	assert_false(gm_range_contains(0x1000, 0x1000, 0x2000, 1));
	/* Empty ranges: inside at or before the end, outside after it. */
	assert_true(gm_range_contains(0x1000, 0x1000, 0x1000, 0));
	assert_true(gm_range_contains(0x1000, 0x1000, 0x2000, 0));
	assert_false(gm_range_contains(0x1000, 0x1000, 0x2001, 0));
	assert_false(gm_range_contains(0x1000, 0x1000, 0xfff, 0));
}

static void range_contains_ending_at_uint64_max(void **state)
{
	(void)state;
	/* Outer [UINT64_MAX - 0xfff, UINT64_MAX]: its size is 0x1000 and it does not wrap. */
	assert_true(gm_range_contains(UINT64_MAX - 0xfff, 0x1000, UINT64_MAX, 1));
	assert_true(gm_range_contains(UINT64_MAX - 0xfff, 0x1000, UINT64_MAX - 0xfff, 0x1000));
	assert_false(gm_range_contains(UINT64_MAX - 0xfff, 0x1000, UINT64_MAX, 2));
	assert_false(gm_range_contains(UINT64_MAX - 0xfff, 0x1000, UINT64_MAX - 0x1000, 1));
	/* Outer [1, UINT64_MAX]. */
	assert_true(gm_range_contains(1, UINT64_MAX, 1, UINT64_MAX));
	assert_true(gm_range_contains(1, UINT64_MAX, UINT64_MAX, 1));
	assert_false(gm_range_contains(1, UINT64_MAX, 0, 1));
}

static void range_contains_rejects_wrapping_inner(void **state)
{
	(void)state;
	/* A hostile inner range whose end wraps past 2^64 back into the outer one. */
	assert_false(gm_range_contains(0, UINT64_MAX, 0x1000, UINT64_MAX));
	assert_false(gm_range_contains(0x1000, 0x1000, 0x1800, UINT64_MAX));
	assert_false(gm_range_contains(0x1000, 0x1000, 0x1800, UINT64_MAX - 0x7ff));
	assert_false(gm_range_contains(UINT64_MAX - 0xfff, 0x1000, UINT64_MAX, UINT64_MAX));
	assert_false(gm_range_contains(0x1000, 0x1000, UINT64_MAX, 0x1002));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(page_constants_are_4k),
	    cmocka_unit_test(add_overflow_u64_at_edges),
	    cmocka_unit_test(mul_overflow_u64_at_edges),
	    cmocka_unit_test(add_overflow_size_at_edges),
	    cmocka_unit_test(u64_to_size_narrows_only_what_fits),
	    cmocka_unit_test(range_last_reaches_uint64_max),
	    cmocka_unit_test(range_last_rejects_empty_and_wrapping),
	    cmocka_unit_test(is_pow2_excludes_zero),
	    cmocka_unit_test(is_aligned_at_edges),
	    cmocka_unit_test(align_down_at_edges),
	    cmocka_unit_test(align_up_at_edges),
	    cmocka_unit_test(align_up_rejects_overflow_and_bad_alignment),
	    cmocka_unit_test(ranges_overlap_by_one_byte_or_not),
	    cmocka_unit_test(ranges_overlap_ending_at_uint64_max),
	    cmocka_unit_test(range_contains_at_edges),
	    cmocka_unit_test(range_contains_ending_at_uint64_max),
	    cmocka_unit_test(range_contains_rejects_wrapping_inner),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
