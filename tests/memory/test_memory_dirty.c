/* SPDX-License-Identifier: MIT */
/*
 * tests/memory/test_memory_dirty.c - which data-path calls mark pages in a
 * region's dirty bitmap (every write, fill, copy destination, fd read,
 * gm_mark_dirty()) and which do not (reads, tracking disabled).
 */
#include "memory-test.h"

/* ------------------------------------------------------------------------ */
/* Dirty marking by the data path                                           */

/*
 * R0: gpa 0x10000, 4 pages, bitmap d0 (6 pages) at dirty offset 2 pages;
 * R1: gpa 0x14000, 2 pages, adjacent, bitmap d1 (2 pages) at offset 0;
 * R2: gpa 0x20000, 1 page, no bitmap.
 * Guest page k of R0 is bit k + 2 of d0.
 */
struct dfix {
	struct world w;
	struct gm_dirty *d0, *d1;
};

static int dfix_setup(void **state)
{
	static const struct gm_range r[3] = {
	    {0x10000, 4 * PAGE}, {0x14000, 2 * PAGE}, {0x20000, PAGE}};
	static const uint64_t doff[3] = {2 * PAGE, 0, 0};
	struct gm_dirty *dirty[3];
	struct dfix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(gm_dirty_new(6 * PAGE, &f->d0), 0);
	assert_int_equal(gm_dirty_new(2 * PAGE, &f->d1), 0);
	dirty[0] = f->d0;
	dirty[1] = f->d1;
	dirty[2] = NULL;
	world_build_full(&f->w, r, NULL, dirty, doff, 3);
	gm_dirty_set_enabled(f->d0, true);
	gm_dirty_set_enabled(f->d1, true);
	*state = f;
	return 0;
}

static int dfix_teardown(void **state)
{
	struct dfix *f = *state;

	world_free(&f->w);
	gm_dirty_put(f->d0);
	gm_dirty_put(f->d1);
	free(f);
	return 0;
}

/* Collect both bitmaps (clearing them) and compare with the expected bits. */
static void expect_dirty(struct dfix *f, uint64_t want0, uint64_t want1)
{
	uint64_t got0 = 0xdead, got1 = 0xdead;

	assert_int_equal(gm_dirty_collect(f->d0, 0, &got0, 1), 0);
	assert_int_equal(gm_dirty_collect(f->d1, 0, &got1, 1), 0);
	if (got0 != want0 || got1 != want1)
		fail_msg("dirty bits d0=%#llx d1=%#llx, expected d0=%#llx d1=%#llx",
			 (unsigned long long)got0, (unsigned long long)got1,
			 (unsigned long long)want0, (unsigned long long)want1);
}

#define BIT(n) ((uint64_t)1 << (n))

static void dirty_marked_by_gm_write(void **state)
{
	struct dfix *f = *state;
	unsigned char buf[2 * PAGE];

	fill_buf(buf, sizeof(buf), 73);
	expect_dirty(f, 0, 0);
	assert_int_equal(gm_write(f->w.m, 0x10000 + 5, buf, 10), 0);
	expect_dirty(f, BIT(2), 0);
	/* the last byte of R0 page 0 and the first of page 1 */
	assert_int_equal(gm_write(f->w.m, 0x11000 - 1, buf, 2), 0);
	expect_dirty(f, BIT(2) | BIT(3), 0);
	/* from R0's last page into R1 */
	assert_int_equal(gm_write(f->w.m, 0x14000 - 1, buf, PAGE + 1), 0);
	expect_dirty(f, BIT(5), BIT(0));
	assert_int_equal(gm_write(f->w.m, 0x14000 + PAGE, buf, 1), 0);
	expect_dirty(f, 0, BIT(1));
	/* a region without a bitmap: nothing to mark, nothing breaks */
	assert_int_equal(gm_write(f->w.m, 0x20000, buf, 16), 0);
	expect_dirty(f, 0, 0);
}

static void dirty_marked_by_write_partial(void **state)
{
	struct dfix *f = *state;
	unsigned char buf[PAGE];
	size_t done = 0;

	fill_buf(buf, sizeof(buf), 79);
	assert_int_equal(gm_write_partial(f->w.m, 0x16000 - 8, buf, 100, &done), -EFAULT);
	assert_int_equal(done, 8);
	expect_dirty(f, 0, BIT(1));
	assert_int_equal(gm_write_partial(f->w.m, 0x12000 + 100, buf, 200, &done), 0);
	expect_dirty(f, BIT(4), 0);
}

static void dirty_marked_by_fixed_width_writes(void **state)
{
	struct dfix *f = *state;

	assert_int_equal(gm_write_u8(f->w.m, 0x10000, 1), 0);
	expect_dirty(f, BIT(2), 0);
	assert_int_equal(gm_write_u16(f->w.m, 0x11000, 1), 0);
	expect_dirty(f, BIT(3), 0);
	assert_int_equal(gm_write_u32(f->w.m, 0x12000, 1), 0);
	expect_dirty(f, BIT(4), 0);
	assert_int_equal(gm_write_u64(f->w.m, 0x14008, 1), 0);
	expect_dirty(f, 0, BIT(0));
	/* unaligned, straddling a page inside R0, and crossing R0 -> R1 */
	assert_int_equal(gm_write_u64(f->w.m, 0x11000 - 3, 1), 0);
	expect_dirty(f, BIT(2) | BIT(3), 0);
	assert_int_equal(gm_write_u32(f->w.m, 0x14000 - 2, 1), 0);
	expect_dirty(f, BIT(5), BIT(0));
	/* the exported functions */
	assert_int_equal((gm_write_u8)(f->w.m, 0x13000, 1), 0);
	expect_dirty(f, BIT(5), 0);
	assert_int_equal((gm_write_u16)(f->w.m, 0x15000, 1), 0);
	expect_dirty(f, 0, BIT(1));
	assert_int_equal((gm_write_u32)(f->w.m, 0x10010, 1), 0);
	expect_dirty(f, BIT(2), 0);
	assert_int_equal((gm_write_u64)(f->w.m, 0x14000 - 4, 1), 0);
	expect_dirty(f, BIT(5), BIT(0));
}

static void dirty_marked_by_le_writes(void **state)
{
	struct dfix *f = *state;

	assert_int_equal(gm_write_le16(f->w.m, 0x10002, 1), 0);
	expect_dirty(f, BIT(2), 0);
	assert_int_equal(gm_write_le32(f->w.m, 0x11004, 1), 0);
	expect_dirty(f, BIT(3), 0);
	assert_int_equal(gm_write_le64(f->w.m, 0x15ff8, 1), 0);
	expect_dirty(f, 0, BIT(1));
	assert_int_equal((gm_write_le16)(f->w.m, 0x12fff, 1), 0);
	expect_dirty(f, BIT(4) | BIT(5), 0);
	assert_int_equal((gm_write_le32)(f->w.m, 0x14000, 1), 0);
	expect_dirty(f, 0, BIT(0));
	assert_int_equal((gm_write_le64)(f->w.m, 0x10008, 1), 0);
	expect_dirty(f, BIT(2), 0);
}

static void dirty_marked_by_atomic_writes(void **state)
{
	struct dfix *f = *state;
	uint64_t e64 = 0;
	uint32_t e32 = 0, v32 = 0;

	assert_int_equal(gm_atomic_store_u32(f->w.m, 0x10000, 1, __ATOMIC_SEQ_CST), 0);
	expect_dirty(f, BIT(2), 0);
	assert_int_equal(gm_atomic_store_u64(f->w.m, 0x11008, 1, __ATOMIC_RELEASE), 0);
	expect_dirty(f, BIT(3), 0);
	assert_int_equal(gm_atomic_fetch_add_u32(f->w.m, 0x12000, 1, NULL, __ATOMIC_SEQ_CST), 0);
	expect_dirty(f, BIT(4), 0);
	assert_int_equal(gm_atomic_fetch_add_u64(f->w.m, 0x13ff8, 1, NULL, __ATOMIC_SEQ_CST), 0);
	expect_dirty(f, BIT(5), 0);
	assert_int_equal(gm_atomic_fetch_or_u32(f->w.m, 0x14000, 1, NULL, __ATOMIC_SEQ_CST), 0);
	expect_dirty(f, 0, BIT(0));
	assert_int_equal(gm_atomic_fetch_or_u64(f->w.m, 0x15000, 1, NULL, __ATOMIC_SEQ_CST), 0);
	expect_dirty(f, 0, BIT(1));
	assert_int_equal(gm_atomic_load_u64(f->w.m, 0x10000, &e64, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(gm_atomic_cmpxchg_u64(f->w.m, 0x10000, &e64, e64 + 1, __ATOMIC_SEQ_CST),
			 0);
	expect_dirty(f, BIT(2), 0);
	assert_int_equal(gm_atomic_load_u32(f->w.m, 0x14100, &e32, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(gm_atomic_cmpxchg_u32(f->w.m, 0x14100, &e32, e32 + 1, __ATOMIC_SEQ_CST),
			 0);
	expect_dirty(f, 0, BIT(0));
	/* a load marks nothing */
	assert_int_equal(gm_atomic_load_u32(f->w.m, 0x14100, &v32, __ATOMIC_SEQ_CST), 0);
	expect_dirty(f, 0, 0);
}

static void dirty_marked_by_fill_and_copy_destination(void **state)
{
	struct dfix *f = *state;

	assert_int_equal(gm_fill(f->w.m, 0x13000 + 100, 0x55, PAGE), 0);
	expect_dirty(f, BIT(5), BIT(0));
	/* copy marks the destination's pages only */
	assert_int_equal(gm_copy(f->w.m, 0x15000 + 10, 0x10000, 64), 0);
	expect_dirty(f, 0, BIT(1));
	assert_int_equal(gm_copy(f->w.m, 0x11000 - 10, 0x20000, 20), 0);
	expect_dirty(f, BIT(2) | BIT(3), 0);
}

static void dirty_marked_by_read_from_fd_not_write_to_fd(void **state)
{
	struct dfix *f = *state;
	unsigned char data[100];
	size_t done = 0;
	int p[2];

	make_pipe(p, 0);
	fill_buf(data, sizeof(data), 83);
	assert_int_equal(write(p[1], data, sizeof(data)), (ssize_t)sizeof(data));
	assert_int_equal(gm_read_from_fd(f->w.m, 0x14000 - 50, p[0], -1, 100, &done), 0);
	assert_int_equal(done, 100);
	expect_dirty(f, BIT(5), BIT(0));
	assert_int_equal(gm_write_to_fd(f->w.m, 0x10000, p[1], -1, 100, &done), 0);
	expect_dirty(f, 0, 0);
	close_pipe(p);
}

static void dirty_marked_by_gm_mark_dirty(void **state)
{
	struct dfix *f = *state;

	assert_int_equal(gm_mark_dirty(f->w.m, 0x11fff, 2), 0);
	expect_dirty(f, BIT(3) | BIT(4), 0);
	/* bytes outside RAM are ignored, the rest is marked */
	assert_int_equal(gm_mark_dirty(f->w.m, 0x15fff, 0x10000), 0);
	expect_dirty(f, 0, BIT(1));
	assert_int_equal(gm_mark_dirty(f->w.m, 0x30000, 10), 0);
	expect_dirty(f, 0, 0);
	/* a range that starts in a hole still marks the RAM after it */
	assert_int_equal(gm_mark_dirty(f->w.m, 0xf000, 0x1001), 0);
	expect_dirty(f, BIT(2), 0);
	assert_int_equal(gm_mark_dirty(f->w.m, 0x16000 - 1, 0x20000 - 0x16000 + 1), 0);
	expect_dirty(f, 0, BIT(1));
}

static void dirty_not_marked_by_reads(void **state)
{
	struct dfix *f = *state;
	unsigned char buf[PAGE];
	struct iovec iov[4];
	uint64_t v64 = 0;
	size_t done = 0, n = 0;

	assert_int_equal(gm_read(f->w.m, 0x10000, buf, PAGE), 0);
	assert_int_equal(gm_read_partial(f->w.m, 0x14000, buf, PAGE, &done), 0);
	assert_int_equal(gm_read_u64(f->w.m, 0x11000, &v64), 0);
	assert_int_equal((gm_read_u64)(f->w.m, 0x11000, &v64), 0);
	assert_int_equal(gm_read_le64(f->w.m, 0x12000, &v64), 0);
	assert_non_null(gm_host_ptr(f->w.m, 0x10000, 10));
	assert_non_null(gm_host_ptr_write(f->w.m, 0x10000, 10));
	assert_int_equal(gm_to_iovec_write(f->w.m, 0x10000, PAGE, iov, 4, &n), 0);
	expect_dirty(f, 0, 0);
}

static void dirty_not_marked_while_disabled(void **state)
{
	struct dfix *f = *state;
	unsigned char buf[2 * PAGE];
	uint64_t e64 = 0;
	size_t done = 0;
	int p[2];

	gm_dirty_set_enabled(f->d0, false);
	gm_dirty_set_enabled(f->d1, false);
	fill_buf(buf, sizeof(buf), 89);
	assert_int_equal(gm_write(f->w.m, 0x10000, buf, 2 * PAGE), 0);
	assert_int_equal(gm_write(f->w.m, 0x14000 - 10, buf, 20), 0);
	assert_int_equal(gm_write_partial(f->w.m, 0x15000, buf, 10, &done), 0);
	assert_int_equal(gm_write_u8(f->w.m, 0x12000, 1), 0);
	assert_int_equal(gm_write_u64(f->w.m, 0x13000, 1), 0);
	assert_int_equal((gm_write_u32)(f->w.m, 0x14000, 1), 0);
	assert_int_equal(gm_write_u64(f->w.m, 0x14000 - 3, 1), 0);
	assert_int_equal(gm_write_le32(f->w.m, 0x15000, 1), 0);
	assert_int_equal((gm_write_le64)(f->w.m, 0x15008, 1), 0);
	assert_int_equal(gm_atomic_store_u64(f->w.m, 0x10000, 1, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(gm_atomic_fetch_add_u32(f->w.m, 0x11000, 1, NULL, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(gm_atomic_fetch_or_u64(f->w.m, 0x14000, 1, NULL, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(gm_atomic_load_u64(f->w.m, 0x12000, &e64, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(gm_atomic_cmpxchg_u64(f->w.m, 0x12000, &e64, e64 + 5, __ATOMIC_SEQ_CST),
			 0);
	assert_int_equal(gm_fill(f->w.m, 0x13000, 0, 2 * PAGE), 0);
	assert_int_equal(gm_copy(f->w.m, 0x15000, 0x10000, 100), 0);
	assert_int_equal(gm_mark_dirty(f->w.m, 0x10000, 6 * PAGE), 0);
	make_pipe(p, 0);
	assert_int_equal(write(p[1], buf, 64), 64);
	assert_int_equal(gm_read_from_fd(f->w.m, 0x14000 - 32, p[0], -1, 64, &done), 0);
	close_pipe(p);
	expect_dirty(f, 0, 0);
	/* and enabling again marks again */
	gm_dirty_set_enabled(f->d1, true);
	assert_int_equal(gm_write_u8(f->w.m, 0x15000, 1), 0);
	expect_dirty(f, 0, BIT(1));
}

int memory_dirty_tests(void)
{
	const struct CMUnitTest memory_dirty[] = {
	    cmocka_unit_test_setup_teardown(dirty_marked_by_gm_write, dfix_setup, dfix_teardown),
	    cmocka_unit_test_setup_teardown(dirty_marked_by_write_partial, dfix_setup,
					    dfix_teardown),
	    cmocka_unit_test_setup_teardown(dirty_marked_by_fixed_width_writes, dfix_setup,
					    dfix_teardown),
	    cmocka_unit_test_setup_teardown(dirty_marked_by_le_writes, dfix_setup, dfix_teardown),
	    cmocka_unit_test_setup_teardown(dirty_marked_by_atomic_writes, dfix_setup,
					    dfix_teardown),
	    cmocka_unit_test_setup_teardown(dirty_marked_by_fill_and_copy_destination, dfix_setup,
					    dfix_teardown),
	    cmocka_unit_test_setup_teardown(dirty_marked_by_read_from_fd_not_write_to_fd,
					    dfix_setup, dfix_teardown),
	    cmocka_unit_test_setup_teardown(dirty_marked_by_gm_mark_dirty, dfix_setup,
					    dfix_teardown),
	    cmocka_unit_test_setup_teardown(dirty_not_marked_by_reads, dfix_setup, dfix_teardown),
	    cmocka_unit_test_setup_teardown(dirty_not_marked_while_disabled, dfix_setup,
					    dfix_teardown),
	};

	return cmocka_run_group_tests(memory_dirty, NULL, NULL);
}
