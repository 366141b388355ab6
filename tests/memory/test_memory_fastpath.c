/* SPDX-License-Identifier: MIT */
/*
 * tests/memory/test_memory_fastpath.c - the inline fast path of
 * static/memory-inline.h and the exported functions agree on every result,
 * byte and errno over a layout with every case the lookup must handle.
 */
#include "memory-test.h"

/* ------------------------------------------------------------------------ */
/* The inline fast path and the exported functions agree                    */

/*
 * A layout with everything the lookup must handle: a region at 0, a small
 * region whose end is not page aligned, a read-only region, holes, a region
 * above 4 GiB and one ending at UINT64_MAX.
 */
static const struct gm_range agree_layout[6] = {
    {0, 3 * PAGE},	 {3 * PAGE, 13},	 {3 * PAGE + 13, PAGE},
    {0x20000, 2 * PAGE}, {0x100000000ull, PAGE}, {TOP_PAGE, PAGE},
};
static const unsigned agree_flags[6] = {0, 0, 0, GM_REGION_READONLY, 0, 0};

static const gm_gpa_t agree_bases[] = {
    0,
    8,
    3 * PAGE - 8,
    3 * PAGE,
    3 * PAGE + 8,
    3 * PAGE + 13,
    4 * PAGE + 8,
    4 * PAGE + 13,
    0x10000,
    0x20000,
    0x20000 + 2 * PAGE - 8,
    0x20000 + 2 * PAGE,
    0x100000000ull - 8,
    0x100000000ull,
    0x100000000ull + PAGE - 8,
    0x100000000ull + PAGE,
    TOP_PAGE - 8,
    TOP_PAGE,
    UINT64_MAX - 15,
    UINT64_MAX - 7,
};

static void inline_and_exported_reads_agree(void **state)
{
	struct world w;
	size_t i;
	unsigned k;

	(void)state;
	world_build_full(&w, agree_layout, agree_flags, NULL, NULL, 6);
	for (i = 0; i < sizeof(agree_bases) / sizeof(agree_bases[0]); i++) {
		for (k = 0; k < 9; k++) {
			gm_gpa_t gpa = agree_bases[i] + k;
			uint8_t a8 = 0x11, b8 = 0x11;
			uint16_t a16 = 0x1111, b16 = 0x1111;
			uint32_t a32 = 0x11111111, b32 = 0x11111111;
			uint64_t a64 = 0x1111111111111111ull, b64 = a64;
			int ra, rb;

			ra = gm_read_u8(w.m, gpa, &a8);
			rb = (gm_read_u8)(w.m, gpa, &b8);
			assert_int_equal(ra, rb);
			assert_int_equal(a8, b8);
			ra = gm_read_u16(w.m, gpa, &a16);
			rb = (gm_read_u16)(w.m, gpa, &b16);
			assert_int_equal(ra, rb);
			assert_int_equal(a16, b16);
			ra = gm_read_u32(w.m, gpa, &a32);
			rb = (gm_read_u32)(w.m, gpa, &b32);
			assert_int_equal(ra, rb);
			assert_int_equal(a32, b32);
			ra = gm_read_u64(w.m, gpa, &a64);
			rb = (gm_read_u64)(w.m, gpa, &b64);
			assert_int_equal(ra, rb);
			assert_int_equal(a64, b64);
			ra = gm_read_le16(w.m, gpa, &a16);
			rb = (gm_read_le16)(w.m, gpa, &b16);
			assert_int_equal(ra, rb);
			assert_int_equal(a16, b16);
			ra = gm_read_le32(w.m, gpa, &a32);
			rb = (gm_read_le32)(w.m, gpa, &b32);
			assert_int_equal(ra, rb);
			assert_int_equal(a32, b32);
			ra = gm_read_le64(w.m, gpa, &a64);
			rb = (gm_read_le64)(w.m, gpa, &b64);
			assert_int_equal(ra, rb);
			assert_int_equal(a64, b64);
			/* and both agree with gm_read */
			{
				unsigned char buf[8];
				uint64_t c64;

				rb = gm_read(w.m, gpa, buf, 8);
				assert_int_equal(ra, rb);
				if (rb == 0) {
					memcpy(&c64, buf, 8);
					assert_int_equal(a64, c64);
				}
			}
			assert_int_equal(gm_read_u64(w.m, gpa, NULL),
					 (gm_read_u64)(w.m, gpa, NULL));
			assert_int_equal(gm_read_u8(w.m, gpa, NULL), (gm_read_u8)(w.m, gpa, NULL));
		}
	}
	world_free(&w);
}

/* Write with @inl or exported, then compare the rc and the guest bytes. */
static void inline_and_exported_writes_agree(void **state)
{
	struct world w;
	size_t i;
	unsigned k;

	(void)state;
	world_build_full(&w, agree_layout, agree_flags, NULL, NULL, 6);
	for (i = 0; i < sizeof(agree_bases) / sizeof(agree_bases[0]); i++) {
		for (k = 0; k < 9; k++) {
			gm_gpa_t gpa = agree_bases[i] + k;
			unsigned char after_inline[8], after_export[8];
			int ra, rb, rr;

#define AGREE_WRITE(fn, val, width)                                                    \
	do {                                                                           \
		ra = fn(w.m, gpa, (val));                                              \
		rr = gm_read(w.m, gpa, after_inline, (width));                         \
		rb = (fn)(w.m, gpa, ~(val));                                           \
		assert_int_equal(ra, rb);                                              \
		if (ra == 0) {                                                         \
			__typeof__(val) x = (val), y = ~(val);                         \
			assert_int_equal(rr, 0);                                       \
			assert_memory_equal(after_inline, &x, (width));                \
			assert_int_equal(gm_read(w.m, gpa, after_export, (width)), 0); \
			assert_memory_equal(after_export, &y, (width));                \
		}                                                                      \
	} while (0)
			AGREE_WRITE(gm_write_u8, (uint8_t)(0xa0 + k), 1);
			AGREE_WRITE(gm_write_u16, (uint16_t)(0xa1b0 + k), 2);
			AGREE_WRITE(gm_write_u32, (uint32_t)(0xa1b2c3d0 + k), 4);
			AGREE_WRITE(gm_write_u64, (uint64_t)(0xa1b2c3d4e5f60710ull + k), 8);
			AGREE_WRITE(gm_write_le16, (uint16_t)(0xb1b0 + k), 2);
			AGREE_WRITE(gm_write_le32, (uint32_t)(0xb1b2c3d0 + k), 4);
			AGREE_WRITE(gm_write_le64, (uint64_t)(0xb1b2c3d4e5f60710ull + k), 8);
#undef AGREE_WRITE
		}
	}
	/* the read-only region was never written, by either path */
	expect_pat(&w, 0x20000, 2 * PAGE);
	world_free(&w);
}

static void inline_and_exported_atomics_agree(void **state)
{
	static const int orders[] = {__ATOMIC_RELAXED,
				     __ATOMIC_CONSUME,
				     __ATOMIC_ACQUIRE,
				     __ATOMIC_RELEASE,
				     __ATOMIC_ACQ_REL,
				     __ATOMIC_SEQ_CST,
				     6,
				     -1};
	struct world w;
	size_t i, j;
	unsigned k;

	(void)state;
	world_build_full(&w, agree_layout, agree_flags, NULL, NULL, 6);
	for (i = 0; i < sizeof(agree_bases) / sizeof(agree_bases[0]); i++)
		for (k = 0; k < 9; k++)
			for (j = 0; j < sizeof(orders) / sizeof(orders[0]); j++) {
				gm_gpa_t gpa = agree_bases[i] + k;
				int mo = orders[j];
				uint32_t a32 = 0x5555, b32 = 0x5555;
				uint64_t a64 = 0x5555, b64 = 0x5555;
				int ra, rb;

				ra = gm_atomic_load_u32(w.m, gpa, &a32, mo);
				rb = (gm_atomic_load_u32)(w.m, gpa, &b32, mo);
				assert_int_equal(ra, rb);
				assert_int_equal(a32, b32);
				ra = gm_atomic_load_u64(w.m, gpa, &a64, mo);
				rb = (gm_atomic_load_u64)(w.m, gpa, &b64, mo);
				assert_int_equal(ra, rb);
				assert_int_equal(a64, b64);
				assert_int_equal(gm_atomic_load_u64(w.m, gpa, NULL, mo),
						 (gm_atomic_load_u64)(w.m, gpa, NULL, mo));

				ra = gm_atomic_store_u32(w.m, gpa, 0xa0a0a0a0u + k, mo);
				rb = (gm_atomic_store_u32)(w.m, gpa, 0xb0b0b0b0u + k, mo);
				assert_int_equal(ra, rb);
				if (rb == 0) {
					assert_int_equal(gm_read_u32(w.m, gpa, &b32), 0);
					assert_int_equal(b32, 0xb0b0b0b0u + k);
				}
				ra = gm_atomic_store_u64(w.m, gpa, 0xa0a0a0a0a0a0ull + k, mo);
				rb = (gm_atomic_store_u64)(w.m, gpa, 0xb0b0b0b0b0b0ull + k, mo);
				assert_int_equal(ra, rb);
				if (rb == 0) {
					assert_int_equal(gm_read_u64(w.m, gpa, &b64), 0);
					assert_int_equal(b64, 0xb0b0b0b0b0b0ull + k);
				}
			}
	expect_pat(&w, 0x20000, 2 * PAGE);
	world_free(&w);
}

static void inline_and_exported_host_ptr_agree(void **state)
{
	static const size_t lens[] = {0, 1, 2, 8, 13, PAGE, 3 * PAGE, SIZE_MAX};
	struct world w;
	size_t i, j;
	unsigned k;

	(void)state;
	world_build_full(&w, agree_layout, agree_flags, NULL, NULL, 6);
	for (i = 0; i < sizeof(agree_bases) / sizeof(agree_bases[0]); i++)
		for (k = 0; k < 9; k++)
			for (j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
				gm_gpa_t gpa = agree_bases[i] + k;
				void *a = gm_host_ptr(w.m, gpa, lens[j]);
				void *b = (gm_host_ptr)(w.m, gpa, lens[j]);

				if (a != b)
					fail_msg("gm_host_ptr(0x%llx, %zu): inline %p, exported %p",
						 (unsigned long long)gpa, lens[j], a, b);
			}
	world_free(&w);
}

/* Read through cursor @c inline and exported, and through its view; all agree. */
#define CURSOR_AGREE(c, m, gpa, type, fn, cfn)                                                    \
	do {                                                                                      \
		type a_ = (type)0x1111111111111111ull, b_ = a_, v_ = a_;                          \
		int ra_ = cfn(c, gpa, &a_), rb_ = (cfn)(c, gpa, &b_);                             \
		int rv_ = (fn)(m, gpa, &v_);                                                      \
		if (ra_ != rv_ || rb_ != rv_ || a_ != v_ || b_ != v_)                             \
			fail_msg(#cfn "(0x%llx): %d/%d, view %d", (unsigned long long)(gpa), ra_, \
				 rb_, rv_);                                                       \
		assert_int_equal(cfn(c, gpa, NULL), (fn)(m, gpa, NULL));                          \
		assert_int_equal((cfn)(c, gpa, NULL), (fn)(m, gpa, NULL));                        \
	} while (0)

/*
 * A read cursor (inline and exported) reads what its view reads, with the
 * same errors, over every case of the lookup; a cursor of the empty view
 * faults everywhere.
 */
static void cursor_reads_agree_with_view_reads(void **state)
{
	struct gm_cursor c, ce;
	struct gm_memory *empty;
	struct world w;
	size_t i;
	unsigned k;

	(void)state;
	world_build_full(&w, agree_layout, agree_flags, NULL, NULL, 6);
	memset(&c, 0, sizeof(c)); /* padding, for the comparison below */
	memset(&ce, 0, sizeof(ce));
	gm_cursor_init(&c, w.m);
	for (i = 0; i < sizeof(agree_bases) / sizeof(agree_bases[0]); i++) {
		for (k = 0; k < 9; k++) {
			gm_gpa_t gpa = agree_bases[i] + k;

			CURSOR_AGREE(&c, w.m, gpa, uint8_t, gm_read_u8, gm_cursor_read_u8);
			CURSOR_AGREE(&c, w.m, gpa, uint16_t, gm_read_u16, gm_cursor_read_u16);
			CURSOR_AGREE(&c, w.m, gpa, uint32_t, gm_read_u32, gm_cursor_read_u32);
			CURSOR_AGREE(&c, w.m, gpa, uint64_t, gm_read_u64, gm_cursor_read_u64);
		}
	}
	/* The exported init fills the same cursor. */
	(gm_cursor_init)(&ce, w.m);
	assert_memory_equal(&ce, &c, sizeof(c));
	world_free(&w);

	assert_int_equal(gm_memory_new(NULL, 0, &empty), 0);
	gm_cursor_init(&c, empty);
	for (i = 0; i < sizeof(agree_bases) / sizeof(agree_bases[0]); i++) {
		uint64_t v = 7;

		assert_int_equal(gm_cursor_read_u64(&c, agree_bases[i], &v), -EFAULT);
		assert_int_equal((gm_cursor_read_u64)(&c, agree_bases[i], &v), -EFAULT);
		assert_int_equal(v, 7);
	}
	gm_memory_put(empty);
}

int memory_fastpath_tests(void)
{
	const struct CMUnitTest memory_fastpath[] = {
	    cmocka_unit_test(inline_and_exported_reads_agree),
	    cmocka_unit_test(inline_and_exported_writes_agree),
	    cmocka_unit_test(inline_and_exported_atomics_agree),
	    cmocka_unit_test(inline_and_exported_host_ptr_agree),
	    cmocka_unit_test(cursor_reads_agree_with_view_reads),
	};

	return cmocka_run_group_tests(memory_fastpath, NULL, NULL);
}
