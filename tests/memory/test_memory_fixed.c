/* SPDX-License-Identifier: MIT */
/*
 * tests/memory/test_memory_fixed.c - the fixed-width accessors (host order
 * and little-endian; aligned, unaligned, crossing regions) and the atomic
 * operations on guest words, called by their exported names and through
 * the default inline fast path.
 */
#include "memory-test.h"

/* ------------------------------------------------------------------------ */
/* Fixed-width and little-endian accessors                                  */

static void fixed_width_round_trip_in_host_order(void **state)
{
	uint8_t v8 = 0;
	uint16_t v16 = 0, h16;
	uint32_t v32 = 0, h32;
	uint64_t v64 = 0, h64;
	struct world w;

	(void)state;
	world_build(&w, two_adjacent, 2);
	assert_int_equal(gm_write_u8(w.m, 0x10001, 0xa5), 0);
	assert_int_equal(gm_write_u16(w.m, 0x10002, 0xbeef), 0);
	assert_int_equal(gm_write_u32(w.m, 0x10004, 0xdeadbeef), 0);
	assert_int_equal(gm_write_u64(w.m, 0x10008, 0x0123456789abcdefull), 0);
	assert_int_equal(*hb(&w, 0x10001), 0xa5);
	memcpy(&h16, hb(&w, 0x10002), 2);
	memcpy(&h32, hb(&w, 0x10004), 4);
	memcpy(&h64, hb(&w, 0x10008), 8);
	assert_int_equal(h16, 0xbeef);
	assert_int_equal(h32, 0xdeadbeef);
	assert_int_equal(h64, 0x0123456789abcdefull);
	expect_pat(&w, 0x10000, 1);
	expect_pat(&w, 0x10010, 16);
	assert_int_equal(gm_read_u8(w.m, 0x10001, &v8), 0);
	assert_int_equal(gm_read_u16(w.m, 0x10002, &v16), 0);
	assert_int_equal(gm_read_u32(w.m, 0x10004, &v32), 0);
	assert_int_equal(gm_read_u64(w.m, 0x10008, &v64), 0);
	assert_int_equal(v8, 0xa5);
	assert_int_equal(v16, 0xbeef);
	assert_int_equal(v32, 0xdeadbeef);
	assert_int_equal(v64, 0x0123456789abcdefull);
	/* and through the exported functions */
	assert_int_equal((gm_write_u16)(w.m, 0x10020, 0x1234), 0);
	assert_int_equal((gm_write_u32)(w.m, 0x10024, 0x89abcdef), 0);
	assert_int_equal((gm_write_u64)(w.m, 0x10028, 0xfedcba9876543210ull), 0);
	assert_int_equal((gm_write_u8)(w.m, 0x10030, 0x5c), 0);
	assert_int_equal((gm_read_u16)(w.m, 0x10020, &v16), 0);
	assert_int_equal((gm_read_u32)(w.m, 0x10024, &v32), 0);
	assert_int_equal((gm_read_u64)(w.m, 0x10028, &v64), 0);
	assert_int_equal((gm_read_u8)(w.m, 0x10030, &v8), 0);
	assert_int_equal(v16, 0x1234);
	assert_int_equal(v32, 0x89abcdef);
	assert_int_equal(v64, 0xfedcba9876543210ull);
	assert_int_equal(v8, 0x5c);
	world_free(&w);
}

static void le_accessors_store_little_endian_bytes(void **state)
{
	static const unsigned char b16[2] = {0x34, 0x12};
	static const unsigned char b32[4] = {0x78, 0x56, 0x34, 0x12};
	static const unsigned char b64[8] = {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
	uint16_t v16 = 0;
	uint32_t v32 = 0;
	uint64_t v64 = 0;
	struct world w;

	(void)state;
	world_build(&w, two_adjacent, 2);
	assert_int_equal(gm_write_le16(w.m, 0x10000, 0x1234), 0);
	assert_int_equal(gm_write_le32(w.m, 0x10004, 0x12345678), 0);
	assert_int_equal(gm_write_le64(w.m, 0x10008, 0x1122334455667788ull), 0);
	expect_bytes(&w, 0x10000, b16, 2);
	expect_bytes(&w, 0x10004, b32, 4);
	expect_bytes(&w, 0x10008, b64, 8);
	assert_int_equal((gm_write_le16)(w.m, 0x10100, 0x1234), 0);
	assert_int_equal((gm_write_le32)(w.m, 0x10104, 0x12345678), 0);
	assert_int_equal((gm_write_le64)(w.m, 0x10108, 0x1122334455667788ull), 0);
	expect_bytes(&w, 0x10100, b16, 2);
	expect_bytes(&w, 0x10104, b32, 4);
	expect_bytes(&w, 0x10108, b64, 8);
	/* reading back bytes placed by hand, unaligned and across the boundary */
	memcpy(hb(&w, 0x10201), b32, 4);
	assert_int_equal(gm_read_le32(w.m, 0x10201, &v32), 0);
	assert_int_equal(v32, 0x12345678);
	assert_int_equal((gm_read_le32)(w.m, 0x10201, &v32), 0);
	assert_int_equal(v32, 0x12345678);
	memcpy(hb(&w, 0x10ffc), b64, 4);
	memcpy(hb(&w, 0x11000), b64 + 4, 4);
	assert_int_equal(gm_read_le64(w.m, 0x10ffc, &v64), 0);
	assert_int_equal(v64, 0x1122334455667788ull);
	assert_int_equal((gm_read_le64)(w.m, 0x10ffc, &v64), 0);
	assert_int_equal(v64, 0x1122334455667788ull);
	*hb(&w, 0x10fff) = b16[0];
	*hb(&w, 0x11000) = b16[1];
	assert_int_equal(gm_read_le16(w.m, 0x10fff, &v16), 0);
	assert_int_equal(v16, 0x1234);
	assert_int_equal((gm_read_le16)(w.m, 0x10fff, &v16), 0);
	assert_int_equal(v16, 0x1234);
	assert_int_equal(gm_write_le32(w.m, 0x10ffe, 0x12345678), 0);
	expect_bytes(&w, 0x10ffe, b32, 4);
	world_free(&w);
}

static void unaligned_fixed_width_access(void **state)
{
	uint64_t v64 = 0;
	uint32_t v32 = 0;
	uint16_t v16 = 0;
	uint64_t h64;
	gm_gpa_t gpa;
	struct world w;

	(void)state;
	world_build(&w, two_adjacent, 2);
	for (gpa = 0x10101; gpa < 0x10108; gpa++) {
		uint64_t val = 0x0102030405060708ull * (gpa & 0xff);

		assert_int_equal(gm_write_u64(w.m, gpa, val), 0);
		memcpy(&h64, hb(&w, gpa), 8);
		assert_int_equal(h64, val);
		assert_int_equal(gm_read_u64(w.m, gpa, &v64), 0);
		assert_int_equal(v64, val);
		assert_int_equal((gm_read_u64)(w.m, gpa, &v64), 0);
		assert_int_equal(v64, val);
	}
	assert_int_equal(gm_write_u32(w.m, 0x10203, 0xcafef00d), 0);
	assert_int_equal(gm_read_u32(w.m, 0x10203, &v32), 0);
	assert_int_equal(v32, 0xcafef00d);
	assert_int_equal((gm_write_u16)(w.m, 0x10301, 0xabcd), 0);
	assert_int_equal(gm_read_u16(w.m, 0x10301, &v16), 0);
	assert_int_equal(v16, 0xabcd);
	expect_pat(&w, 0x10300, 1);
	expect_pat(&w, 0x10303, 1);
	world_free(&w);
}

static void fixed_width_crossing_regions(void **state)
{
	uint64_t v64 = 0, h64;
	uint32_t v32 = 0, h32;
	uint16_t v16 = 0, h16;
	unsigned k;
	struct world w;

	(void)state;
	world_build(&w, two_adjacent, 2);
	for (k = 1; k < 8; k++) {
		gm_gpa_t gpa = 0x11000 - k;
		unsigned char tmp[8];
		uint64_t val = 0x8877665544332211ull + k;

		assert_int_equal(gm_write_u64(w.m, gpa, val), 0);
		memcpy(tmp, hb(&w, gpa), k);
		memcpy(tmp + k, w.host[1], 8 - k);
		memcpy(&h64, tmp, 8);
		assert_int_equal(h64, val);
		assert_int_equal(gm_read_u64(w.m, gpa, &v64), 0);
		assert_int_equal(v64, val);
		assert_int_equal((gm_read_u64)(w.m, gpa, &v64), 0);
		assert_int_equal(v64, val);
		assert_int_equal((gm_write_u64)(w.m, gpa, ~val), 0);
		assert_int_equal(gm_read_u64(w.m, gpa, &v64), 0);
		assert_int_equal(v64, ~val);
	}
	assert_int_equal(gm_write_u32(w.m, 0x11000 - 2, 0x44332211), 0);
	memcpy(&h16, hb(&w, 0x11000 - 2), 2);
	memcpy((unsigned char *)&h32, &h16, 2);
	memcpy((unsigned char *)&h32 + 2, w.host[1], 2);
	assert_int_equal(h32, 0x44332211);
	assert_int_equal(gm_read_u32(w.m, 0x11000 - 2, &v32), 0);
	assert_int_equal(v32, 0x44332211);
	assert_int_equal(gm_write_u16(w.m, 0x11000 - 1, 0xbbaa), 0);
	assert_int_equal(gm_read_u16(w.m, 0x11000 - 1, &v16), 0);
	assert_int_equal(v16, 0xbbaa);
	assert_int_equal((gm_read_u16)(w.m, 0x11000 - 1, &v16), 0);
	assert_int_equal(v16, 0xbbaa);
	world_free(&w);
}

static void fixed_width_read_errors_leave_out_untouched(void **state)
{
	uint8_t v8 = 0x11;
	uint16_t v16 = 0x2222;
	uint32_t v32 = 0x33333333;
	uint64_t v64 = 0x4444444444444444ull;
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	assert_int_equal(gm_read_u8(w.m, 0x12000, &v8), -EFAULT);
	assert_int_equal(gm_read_u16(w.m, 0x12000 - 1, &v16), -EFAULT);
	assert_int_equal(gm_read_u32(w.m, 0x12000 - 2, &v32), -EFAULT);
	assert_int_equal(gm_read_u64(w.m, 0x14000 - 4, &v64), -EFAULT);
	assert_int_equal((gm_read_u64)(w.m, 0x12000 - 8 + 1, &v64), -EFAULT);
	assert_int_equal(gm_read_le64(w.m, 0x12000 - 4, &v64), -EFAULT);
	assert_int_equal(gm_read_le32(w.m, 0x13000, &v32), -EFAULT);
	assert_int_equal(v8, 0x11);
	assert_int_equal(v16, 0x2222);
	assert_int_equal(v32, 0x33333333);
	assert_int_equal(v64, 0x4444444444444444ull);
	assert_int_equal(gm_read_u8(w.m, 0x10000, NULL), -EINVAL);
	assert_int_equal(gm_read_u16(w.m, 0x10000, NULL), -EINVAL);
	assert_int_equal(gm_read_u32(w.m, 0x10000, NULL), -EINVAL);
	assert_int_equal(gm_read_u64(w.m, 0x10000, NULL), -EINVAL);
	assert_int_equal((gm_read_u64)(w.m, 0x10000, NULL), -EINVAL);
	assert_int_equal((gm_read_le16)(w.m, 0x10000, NULL), -EINVAL);
	assert_int_equal(gm_read_le32(w.m, 0x10000, NULL), -EINVAL);
	world_free(&w);
}

static void fixed_width_writes_outside_ram_change_nothing(void **state)
{
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	assert_int_equal(gm_write_u8(w.m, 0x12000, 1), -EFAULT);
	assert_int_equal(gm_write_u16(w.m, 0x12000 - 1, 1), -EFAULT);
	assert_int_equal(gm_write_u32(w.m, 0x12000 - 2, 1), -EFAULT);
	assert_int_equal(gm_write_u64(w.m, 0x14000 - 4, 1), -EFAULT);
	assert_int_equal((gm_write_u64)(w.m, 0x12000 - 7, 1), -EFAULT);
	assert_int_equal(gm_write_le64(w.m, 0x16000 - 4, 1), -EFAULT);
	assert_int_equal((gm_write_le16)(w.m, 0x16000 - 1, 1), -EFAULT);
	expect_pat(&w, 0x10000, 2 * PAGE);
	expect_pat(&w, 0x14000, 2 * PAGE);
	world_free(&w);
}

static void le_accessors_outside_ram_fault_and_reject_null(void **state)
{
	uint16_t v16 = 0x2222;
	uint64_t v64 = 0x4444444444444444ull;
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	assert_int_equal(gm_read_le16(w.m, 0x12000, &v16), -EFAULT);
	assert_int_equal((gm_read_le16)(w.m, 0x12000 - 1, &v16), -EFAULT);
	assert_int_equal(v16, 0x2222);
	assert_int_equal((gm_read_le64)(w.m, 0x10000, NULL), -EINVAL);
	assert_int_equal(gm_read_le64(w.m, 0x10000, NULL), -EINVAL);
	assert_int_equal(gm_read_le16(w.m, 0x10000, NULL), -EINVAL);
	assert_int_equal(v64, 0x4444444444444444ull);
	assert_int_equal(gm_write_le32(w.m, 0x12000 - 2, 1), -EFAULT);
	assert_int_equal((gm_write_le32)(w.m, 0x13ffc, 1), -EFAULT);
	assert_int_equal(gm_write_le16(w.m, UINT64_MAX, 1), -EFAULT);
	expect_pat(&w, 0x10000, 2 * PAGE);
	expect_pat(&w, 0x14000, 2 * PAGE);
	world_free(&w);
}

/* ------------------------------------------------------------------------ */
/* Atomics                                                                  */

static void atomics_reject_misaligned_words(void **state)
{
	uint32_t v32 = 0, e32 = 0;
	uint64_t v64 = 0, e64 = 0;
	gm_gpa_t gpa;
	struct world w;

	(void)state;
	world_build(&w, two_adjacent, 2);
	for (gpa = 0x10101; gpa < 0x10108; gpa++) {
		assert_int_equal(gm_atomic_load_u64(w.m, gpa, &v64, __ATOMIC_SEQ_CST), -EINVAL);
		assert_int_equal(gm_atomic_store_u64(w.m, gpa, 1, __ATOMIC_SEQ_CST), -EINVAL);
		assert_int_equal(gm_atomic_fetch_add_u64(w.m, gpa, 1, &v64, __ATOMIC_SEQ_CST),
				 -EINVAL);
		assert_int_equal(gm_atomic_fetch_or_u64(w.m, gpa, 1, &v64, __ATOMIC_SEQ_CST),
				 -EINVAL);
		assert_int_equal(gm_atomic_cmpxchg_u64(w.m, gpa, &e64, 1, __ATOMIC_SEQ_CST),
				 -EINVAL);
		if (gpa % 4 == 0)
			continue;
		assert_int_equal(gm_atomic_load_u32(w.m, gpa, &v32, __ATOMIC_SEQ_CST), -EINVAL);
		assert_int_equal(gm_atomic_store_u32(w.m, gpa, 1, __ATOMIC_SEQ_CST), -EINVAL);
		assert_int_equal(gm_atomic_fetch_add_u32(w.m, gpa, 1, &v32, __ATOMIC_SEQ_CST),
				 -EINVAL);
		assert_int_equal(gm_atomic_fetch_or_u32(w.m, gpa, 1, &v32, __ATOMIC_SEQ_CST),
				 -EINVAL);
		assert_int_equal(gm_atomic_cmpxchg_u32(w.m, gpa, &e32, 1, __ATOMIC_SEQ_CST),
				 -EINVAL);
	}
	expect_pat(&w, 0x10100, 16);
	world_free(&w);
}

static void atomics_reject_words_crossing_regions(void **state)
{
	/* a boundary at 0x10004: the u64 at 0x10000 is aligned but straddles it */
	static const struct gm_range r[2] = {{0x10000, 4}, {0x10004, PAGE}};
	uint64_t v64 = 0, e64 = 0;
	uint32_t v32 = 0;
	struct world w;

	(void)state;
	world_build(&w, r, 2);
	assert_int_equal(gm_atomic_load_u64(w.m, 0x10000, &v64, __ATOMIC_SEQ_CST), -EINVAL);
	assert_int_equal(gm_atomic_store_u64(w.m, 0x10000, 1, __ATOMIC_SEQ_CST), -EINVAL);
	assert_int_equal(gm_atomic_fetch_add_u64(w.m, 0x10000, 1, NULL, __ATOMIC_SEQ_CST), -EINVAL);
	assert_int_equal(gm_atomic_fetch_or_u64(w.m, 0x10000, 1, NULL, __ATOMIC_SEQ_CST), -EINVAL);
	assert_int_equal(gm_atomic_cmpxchg_u64(w.m, 0x10000, &e64, 1, __ATOMIC_SEQ_CST), -EINVAL);
	expect_pat(&w, 0x10000, 8);
	/* the u32 words on either side are fine */
	assert_int_equal(gm_atomic_load_u32(w.m, 0x10000, &v32, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(gm_atomic_store_u32(w.m, 0x10004, 7, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(gm_atomic_load_u32(w.m, 0x10004, &v32, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(v32, 7);
	/* the u64 at 0x10008 has host address host[1] + 4: misaligned on the host */
	assert_int_equal(gm_atomic_load_u64(w.m, 0x10008, &v64, __ATOMIC_SEQ_CST), -EINVAL);
	world_free(&w);
}

static void atomics_reject_word_misaligned_on_host(void **state)
{
	struct gm_mapping *mp = map_anon(2 * PAGE);
	struct gm_region_spec s = spec(0x10000, PAGE, mp, 1, 0); /* host = base + 1 */
	struct gm_memory *m = NULL;
	uint64_t v64 = 0;
	uint32_t v32 = 0;

	(void)state;
	assert_int_equal(gm_memory_new(&s, 1, &m), 0);
	expect_view_ok(m);
	assert_int_equal(gm_atomic_load_u64(m, 0x10000, &v64, __ATOMIC_SEQ_CST), -EINVAL);
	assert_int_equal(gm_atomic_store_u32(m, 0x10004, 1, __ATOMIC_SEQ_CST), -EINVAL);
	assert_int_equal(gm_atomic_fetch_add_u32(m, 0x10008, 1, &v32, __ATOMIC_SEQ_CST), -EINVAL);
	/* ordinary accessors copy bytewise and still work */
	assert_int_equal(gm_write_u64(m, 0x10008, 0x1122334455667788ull), 0);
	assert_int_equal(gm_read_u64(m, 0x10008, &v64), 0);
	assert_int_equal(v64, 0x1122334455667788ull);
	assert_int_equal((gm_read_u64)(m, 0x10008, &v64), 0);
	assert_int_equal(v64, 0x1122334455667788ull);
	gm_memory_put(m);
	gm_mapping_put(mp);
}

static void atomics_reject_invalid_memorder(void **state)
{
	uint32_t v32 = 0, e32 = 0;
	uint64_t v64 = 0, e64 = 0;
	struct world w;

	(void)state;
	world_build(&w, two_adjacent, 2);
	/* a load cannot release */
	assert_int_equal(gm_atomic_load_u32(w.m, 0x10000, &v32, __ATOMIC_RELEASE), -EINVAL);
	assert_int_equal(gm_atomic_load_u64(w.m, 0x10000, &v64, __ATOMIC_ACQ_REL), -EINVAL);
	/* a store cannot acquire */
	assert_int_equal(gm_atomic_store_u32(w.m, 0x10000, 1, __ATOMIC_ACQUIRE), -EINVAL);
	assert_int_equal(gm_atomic_store_u64(w.m, 0x10000, 1, __ATOMIC_ACQ_REL), -EINVAL);
	assert_int_equal(gm_atomic_store_u64(w.m, 0x10000, 1, __ATOMIC_CONSUME), -EINVAL);
	/* not a memory order at all */
	assert_int_equal(gm_atomic_load_u64(w.m, 0x10000, &v64, 42), -EINVAL);
	assert_int_equal(gm_atomic_load_u64(w.m, 0x10000, &v64, -1), -EINVAL);
	assert_int_equal(gm_atomic_store_u32(w.m, 0x10000, 1, 6), -EINVAL);
	assert_int_equal(gm_atomic_fetch_add_u64(w.m, 0x10000, 1, NULL, 99), -EINVAL);
	assert_int_equal(gm_atomic_fetch_add_u32(w.m, 0x10000, 1, NULL, -7), -EINVAL);
	assert_int_equal(gm_atomic_fetch_or_u64(w.m, 0x10000, 1, NULL, 6), -EINVAL);
	assert_int_equal(gm_atomic_fetch_or_u32(w.m, 0x10000, 1, NULL, 1000), -EINVAL);
	assert_int_equal(gm_atomic_cmpxchg_u64(w.m, 0x10000, &e64, 1, 6), -EINVAL);
	assert_int_equal(gm_atomic_cmpxchg_u32(w.m, 0x10000, &e32, 1, -1), -EINVAL);
	expect_pat(&w, 0x10000, 8);
	world_free(&w);
}

/* The widths atomics_outside_ram_fault does not cover, each in a hole. */
static void atomics_of_the_other_widths_outside_ram_fault(void **state)
{
	uint64_t old64 = 5;
	uint32_t old32 = 6, e32 = 7;
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	assert_int_equal(gm_atomic_store_u32(w.m, 0x12000, 1, __ATOMIC_RELAXED), -EFAULT);
	assert_int_equal((gm_atomic_store_u32)(w.m, 0x12000, 1, __ATOMIC_RELAXED), -EFAULT);
	assert_int_equal(gm_atomic_fetch_add_u32(w.m, 0x13ffc, 1, &old32, __ATOMIC_SEQ_CST),
			 -EFAULT);
	assert_int_equal(gm_atomic_fetch_or_u64(w.m, 0x16000, 1, &old64, __ATOMIC_SEQ_CST),
			 -EFAULT);
	assert_int_equal(gm_atomic_cmpxchg_u32(w.m, 0x12000, &e32, 1, __ATOMIC_SEQ_CST), -EFAULT);
	assert_int_equal(old32, 6);
	assert_int_equal(old64, 5);
	assert_int_equal(e32, 7);
	expect_pat(&w, 0x10000, 2 * PAGE);
	expect_pat(&w, 0x14000, 2 * PAGE);
	world_free(&w);
}

static void atomics_reject_null_out_pointers(void **state)
{
	struct world w;

	(void)state;
	world_build(&w, two_adjacent, 2);
	assert_int_equal(gm_atomic_load_u32(w.m, 0x10000, NULL, __ATOMIC_SEQ_CST), -EINVAL);
	assert_int_equal(gm_atomic_load_u64(w.m, 0x10000, NULL, __ATOMIC_SEQ_CST), -EINVAL);
	assert_int_equal(gm_atomic_cmpxchg_u32(w.m, 0x10000, NULL, 1, __ATOMIC_SEQ_CST), -EINVAL);
	assert_int_equal(gm_atomic_cmpxchg_u64(w.m, 0x10000, NULL, 1, __ATOMIC_SEQ_CST), -EINVAL);
	expect_pat(&w, 0x10000, 8);
	world_free(&w);
}

static void atomics_outside_ram_fault(void **state)
{
	uint64_t v64 = 0, e64 = 0;
	uint32_t v32 = 0;
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	assert_int_equal(gm_atomic_load_u64(w.m, 0x12000, &v64, __ATOMIC_SEQ_CST), -EFAULT);
	assert_int_equal(gm_atomic_load_u32(w.m, 0x16000, &v32, __ATOMIC_SEQ_CST), -EFAULT);
	assert_int_equal(gm_atomic_store_u64(w.m, 0x13ff8, 1, __ATOMIC_SEQ_CST), -EFAULT);
	assert_int_equal(gm_atomic_fetch_add_u64(w.m, 0, 1, NULL, __ATOMIC_SEQ_CST), -EFAULT);
	assert_int_equal(gm_atomic_fetch_or_u32(w.m, 0x12000, 1, NULL, __ATOMIC_SEQ_CST), -EFAULT);
	assert_int_equal(gm_atomic_cmpxchg_u64(w.m, UINT64_MAX - 7, &e64, 1, __ATOMIC_SEQ_CST),
			 -EFAULT);
	world_free(&w);
}

static void atomic_load_store_round_trip_with_every_valid_order(void **state)
{
	static const int load_orders[] = {__ATOMIC_RELAXED, __ATOMIC_CONSUME, __ATOMIC_ACQUIRE,
					  __ATOMIC_SEQ_CST};
	static const int store_orders[] = {__ATOMIC_RELAXED, __ATOMIC_RELEASE, __ATOMIC_SEQ_CST};
	uint64_t v64 = 0, h64;
	uint32_t v32 = 0, h32;
	size_t i, j;
	struct world w;

	(void)state;
	world_build(&w, two_adjacent, 2);
	for (i = 0; i < 3; i++) {
		for (j = 0; j < 4; j++) {
			uint64_t val = 0x1000000000000001ull * (i * 4 + j + 1);

			assert_int_equal(gm_atomic_store_u64(w.m, 0x11ff8, val, store_orders[i]),
					 0);
			memcpy(&h64, hb(&w, 0x11ff8), 8);
			assert_int_equal(h64, val);
			assert_int_equal(gm_atomic_load_u64(w.m, 0x11ff8, &v64, load_orders[j]), 0);
			assert_int_equal(v64, val);
			assert_int_equal(
			    gm_atomic_store_u32(w.m, 0x10004, (uint32_t)val, store_orders[i]), 0);
			memcpy(&h32, hb(&w, 0x10004), 4);
			assert_int_equal(h32, (uint32_t)val);
			assert_int_equal(gm_atomic_load_u32(w.m, 0x10004, &v32, load_orders[j]), 0);
			assert_int_equal(v32, (uint32_t)val);
		}
	}
	expect_pat(&w, 0x10000, 4);
	expect_pat(&w, 0x10008, 8);
	world_free(&w);
}

static void cmpxchg_swaps_or_reports_value_found(void **state)
{
	uint64_t e64, v64 = 0;
	uint32_t e32, v32 = 0;
	struct world w;

	(void)state;
	world_build(&w, two_adjacent, 2);
	assert_int_equal(gm_atomic_store_u64(w.m, 0x10010, 100, __ATOMIC_SEQ_CST), 0);
	e64 = 100;
	assert_int_equal(gm_atomic_cmpxchg_u64(w.m, 0x10010, &e64, 200, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(e64, 100);
	assert_int_equal(gm_atomic_load_u64(w.m, 0x10010, &v64, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(v64, 200);
	e64 = 100;
	assert_int_equal(gm_atomic_cmpxchg_u64(w.m, 0x10010, &e64, 300, __ATOMIC_ACQ_REL), -EAGAIN);
	assert_int_equal(e64, 200);
	assert_int_equal(gm_atomic_load_u64(w.m, 0x10010, &v64, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(v64, 200);
	/* every order is valid for a read-modify-write */
	assert_int_equal(gm_atomic_cmpxchg_u64(w.m, 0x10010, &e64, 1, __ATOMIC_RELAXED), 0);
	e64 = 1;
	assert_int_equal(gm_atomic_cmpxchg_u64(w.m, 0x10010, &e64, 2, __ATOMIC_RELEASE), 0);
	e64 = 2;
	assert_int_equal(gm_atomic_cmpxchg_u64(w.m, 0x10010, &e64, 3, __ATOMIC_ACQUIRE), 0);
	e64 = 3;
	assert_int_equal(gm_atomic_cmpxchg_u64(w.m, 0x10010, &e64, 4, __ATOMIC_CONSUME), 0);

	assert_int_equal(gm_atomic_store_u32(w.m, 0x10020, 0xffffffff, __ATOMIC_SEQ_CST), 0);
	e32 = 0xffffffff;
	assert_int_equal(gm_atomic_cmpxchg_u32(w.m, 0x10020, &e32, 5, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(gm_atomic_load_u32(w.m, 0x10020, &v32, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(v32, 5);
	e32 = 6;
	assert_int_equal(gm_atomic_cmpxchg_u32(w.m, 0x10020, &e32, 7, __ATOMIC_RELEASE), -EAGAIN);
	assert_int_equal(e32, 5);
	assert_int_equal(gm_atomic_load_u32(w.m, 0x10020, &v32, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(v32, 5);
	expect_pat(&w, 0x10018, 8);
	expect_pat(&w, 0x10024, 4);
	world_free(&w);
}

static void fetch_add_and_fetch_or_return_old_value(void **state)
{
	uint64_t o64 = 0, v64 = 0;
	uint32_t o32 = 0, v32 = 0;
	struct world w;

	(void)state;
	world_build(&w, two_adjacent, 2);
	assert_int_equal(gm_atomic_store_u64(w.m, 0x10040, 40, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(gm_atomic_fetch_add_u64(w.m, 0x10040, 2, &o64, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(o64, 40);
	assert_int_equal(gm_atomic_fetch_add_u64(w.m, 0x10040, 8, NULL, __ATOMIC_RELAXED), 0);
	assert_int_equal(
	    gm_atomic_fetch_or_u64(w.m, 0x10040, 0x100000000ull, &o64, __ATOMIC_ACQ_REL), 0);
	assert_int_equal(o64, 50);
	assert_int_equal(gm_atomic_load_u64(w.m, 0x10040, &v64, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(v64, 0x100000000ull + 50);
	/* wraps modulo 2^64 */
	assert_int_equal(gm_atomic_fetch_add_u64(w.m, 0x10040, UINT64_MAX, &o64, __ATOMIC_SEQ_CST),
			 0);
	assert_int_equal(o64, 0x100000000ull + 50);
	assert_int_equal(gm_atomic_load_u64(w.m, 0x10040, &v64, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(v64, 0x100000000ull + 49);

	assert_int_equal(gm_atomic_store_u32(w.m, 0x10050, 0xfffffffe, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(gm_atomic_fetch_add_u32(w.m, 0x10050, 3, &o32, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(o32, 0xfffffffe);
	assert_int_equal(gm_atomic_fetch_or_u32(w.m, 0x10050, 0x80, &o32, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(o32, 1);
	assert_int_equal(gm_atomic_fetch_or_u32(w.m, 0x10050, 0x1, NULL, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(gm_atomic_load_u32(w.m, 0x10050, &v32, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(v32, 0x81);
	expect_pat(&w, 0x10048, 8);
	expect_pat(&w, 0x10054, 4);
	world_free(&w);
}

int memory_fixed_tests(void)
{
	const struct CMUnitTest memory_fixed[] = {
	    cmocka_unit_test(fixed_width_round_trip_in_host_order),
	    cmocka_unit_test(le_accessors_store_little_endian_bytes),
	    cmocka_unit_test(unaligned_fixed_width_access),
	    cmocka_unit_test(fixed_width_crossing_regions),
	    cmocka_unit_test(fixed_width_read_errors_leave_out_untouched),
	    cmocka_unit_test(fixed_width_writes_outside_ram_change_nothing),
	    cmocka_unit_test(le_accessors_outside_ram_fault_and_reject_null),
	    cmocka_unit_test(atomics_reject_misaligned_words),
	    cmocka_unit_test(atomics_reject_words_crossing_regions),
	    cmocka_unit_test(atomics_reject_word_misaligned_on_host),
	    cmocka_unit_test(atomics_reject_invalid_memorder),
	    cmocka_unit_test(atomics_reject_null_out_pointers),
	    cmocka_unit_test(atomics_outside_ram_fault),
	    cmocka_unit_test(atomics_of_the_other_widths_outside_ram_fault),
	    cmocka_unit_test(atomic_load_store_round_trip_with_every_valid_order),
	    cmocka_unit_test(cmpxchg_swaps_or_reports_value_found),
	    cmocka_unit_test(fetch_add_and_fetch_or_return_old_value),
	};

	return cmocka_run_group_tests(memory_fixed, NULL, NULL);
}
