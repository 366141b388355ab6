/* SPDX-License-Identifier: MIT */
/*
 * tests/memory/test_memory_datapath.c - gm_read()/gm_write() and their
 * partial forms across region boundaries, at the top of the 64-bit space
 * and above 4 GiB, at holes (all or nothing), on read-only regions (every
 * kind of write refused, every read allowed), and gm_fill()/gm_copy().
 */
#include "memory-test.h"

/* ------------------------------------------------------------------------ */
/* Accesses that cross region boundaries                                   */

/* Write @len bytes at @gpa, check placement on the host and read them back. */
static void roundtrip_at(const struct world *w, gm_gpa_t gpa, size_t len, unsigned seed)
{
	unsigned char *in = malloc(len), *out = malloc(len);

	assert_non_null(in);
	assert_non_null(out);
	fill_buf(in, len, seed);
	assert_int_equal(gm_write(w->m, gpa, in, len), 0);
	expect_bytes(w, gpa, in, len);
	memset(out, 0, len);
	assert_int_equal(gm_read(w->m, gpa, out, len), 0);
	assert_memory_equal(in, out, len);
	free(in);
	free(out);
}

static void read_write_crossing_one_boundary(void **state)
{
	static const struct gm_range r[2] = {{0x10000, PAGE}, {0x11000, PAGE}};
	struct world w;

	(void)state;
	world_build(&w, r, 2);
	roundtrip_at(&w, 0x11000 - 1, 2, 1);
	roundtrip_at(&w, 0x11000 - 100, 300, 2);
	expect_pat(&w, 0x10000, PAGE - 100);
	expect_pat(&w, 0x11000 + 200, PAGE - 200);
	roundtrip_at(&w, 0x10000, 2 * PAGE, 3);
	world_free(&w);
}

static void read_write_crossing_two_boundaries(void **state)
{
	/* the middle region is 3 bytes long: a u64-sized access spans all three */
	static const struct gm_range r[3] = {{0x10000, PAGE}, {0x11000, 3}, {0x11003, PAGE}};
	struct world w;

	(void)state;
	world_build(&w, r, 3);
	roundtrip_at(&w, 0x11000 - 2, 8, 4);
	expect_pat(&w, 0x10000, PAGE - 2);
	expect_pat(&w, 0x11006, PAGE - 3);
	roundtrip_at(&w, 0x10000, 2 * PAGE + 3, 5);
	world_free(&w);
}

static void read_write_crossing_64_boundaries(void **state)
{
	struct gm_range r[65];
	struct world w;
	size_t i;

	(void)state;
	for (i = 0; i < 65; i++)
		r[64 - i] = (struct gm_range){0x40000000 + i * PAGE, PAGE};
	world_build(&w, r, 65);
	/* from the middle of the first region to the middle of the last */
	roundtrip_at(&w, 0x40000000 + PAGE / 2, 64 * PAGE, 6);
	expect_pat(&w, 0x40000000, PAGE / 2);
	expect_pat(&w, 0x40000000 + 64 * PAGE + PAGE / 2, PAGE / 2);
	/* the whole of it */
	roundtrip_at(&w, 0x40000000, 65 * PAGE, 7);
	world_free(&w);
}

static void last_byte_of_last_region_and_one_past(void **state)
{
	static const struct gm_range r[2] = {{0, PAGE}, {0x10000, PAGE}};
	const gm_gpa_t last = 0x10000 + PAGE - 1;
	unsigned char buf[2] = {0xc3, 0x3c};
	uint8_t v = 0;
	struct world w;

	(void)state;
	world_build(&w, r, 2);
	assert_int_equal(gm_write(w.m, last, buf, 1), 0);
	assert_int_equal(*hb(&w, last), 0xc3);
	assert_int_equal(gm_read_u8(w.m, last, &v), 0);
	assert_int_equal(v, 0xc3);
	assert_int_equal(gm_write(w.m, last, buf + 1, 2), -EFAULT);
	assert_int_equal(*hb(&w, last), 0xc3);
	assert_int_equal(gm_read(w.m, last, buf, 2), -EFAULT);
	assert_int_equal(gm_read(w.m, last + 1, buf, 1), -EFAULT);
	assert_int_equal(gm_read_u8(w.m, last + 1, &v), -EFAULT);
	assert_int_equal(gm_write_u8(w.m, last + 1, 1), -EFAULT);
	assert_int_equal(gm_read(w.m, 0x10000, buf, 0), 0);
	world_free(&w);
}

/* ------------------------------------------------------------------------ */
/* The top of the 64-bit address space and addresses above 4 GiB           */

static void access_at_uint64_max(void **state)
{
	static const struct gm_range r[1] = {{TOP_PAGE, PAGE}};
	unsigned char buf[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8];
	uint64_t v64 = 0;
	uint32_t v32 = 0;
	uint8_t v8 = 0;
	struct world w;

	(void)state;
	world_build(&w, r, 1);
	assert_int_equal(gm_write(w.m, UINT64_MAX, buf, 1), 0);
	assert_int_equal(*hb(&w, UINT64_MAX), 1);
	assert_int_equal(gm_read(w.m, UINT64_MAX, out, 1), 0);
	assert_int_equal(out[0], 1);
	assert_int_equal(gm_write(w.m, UINT64_MAX - 7, buf, 8), 0);
	assert_int_equal(gm_read(w.m, UINT64_MAX - 7, out, 8), 0);
	assert_memory_equal(buf, out, 8);
	assert_int_equal(gm_write_u8(w.m, UINT64_MAX, 0x99), 0);
	assert_int_equal(gm_read_u8(w.m, UINT64_MAX, &v8), 0);
	assert_int_equal(v8, 0x99);
	assert_int_equal(gm_write_u64(w.m, UINT64_MAX - 7, 0x0102030405060708ull), 0);
	assert_int_equal(gm_read_u64(w.m, UINT64_MAX - 7, &v64), 0);
	assert_int_equal(v64, 0x0102030405060708ull);
	assert_int_equal((gm_read_u64)(w.m, UINT64_MAX - 7, &v64), 0);
	assert_int_equal(v64, 0x0102030405060708ull);
	assert_int_equal(gm_atomic_fetch_add_u32(w.m, UINT64_MAX - 3, 1, &v32, __ATOMIC_SEQ_CST),
			 0);
	assert_int_equal(gm_fill(w.m, UINT64_MAX - 99, 0x42, 100), 0);
	assert_int_equal(*hb(&w, UINT64_MAX), 0x42);
	assert_int_equal(gm_copy(w.m, UINT64_MAX - 9, TOP_PAGE, 10), 0);
	assert_int_equal(*hb(&w, UINT64_MAX), pat(TOP_PAGE + 9));
	assert_ptr_equal(gm_host_ptr(w.m, UINT64_MAX, 1), hb(&w, UINT64_MAX));
	assert_ptr_equal((gm_host_ptr)(w.m, UINT64_MAX, 1), hb(&w, UINT64_MAX));
	assert_ptr_equal(gm_host_ptr(w.m, TOP_PAGE, PAGE), w.host[0]);
	world_free(&w);
}

static void range_wrapping_past_uint64_max_faults(void **state)
{
	/* RAM at 0 too: a wrapped range must not continue there */
	static const struct gm_range r[2] = {{0, PAGE}, {TOP_PAGE, PAGE}};
	unsigned char buf[16] = {0};
	struct iovec iov[4];
	uint64_t v64 = 0;
	uint32_t v32 = 0;
	size_t done = 99, n = 0;
	struct world w;

	(void)state;
	world_build(&w, r, 2);
	fill_buf(buf, sizeof(buf), 9);
	assert_int_equal(gm_write(w.m, UINT64_MAX, buf, 2), -EFAULT);
	assert_int_equal(gm_write(w.m, UINT64_MAX - 3, buf, 16), -EFAULT);
	assert_int_equal(gm_read(w.m, UINT64_MAX, buf, 2), -EFAULT);
	assert_int_equal(gm_read(w.m, TOP_PAGE, buf, SIZE_MAX), -EFAULT);
	assert_int_equal(gm_read_u64(w.m, UINT64_MAX - 3, &v64), -EFAULT);
	assert_int_equal((gm_read_u64)(w.m, UINT64_MAX - 3, &v64), -EFAULT);
	assert_int_equal(gm_write_u32(w.m, UINT64_MAX - 1, 5), -EFAULT);
	assert_int_equal((gm_write_u32)(w.m, UINT64_MAX - 1, 5), -EFAULT);
	assert_int_equal(gm_read_le32(w.m, UINT64_MAX, &v32), -EFAULT);
	assert_int_equal(gm_fill(w.m, UINT64_MAX, 0, 2), -EFAULT);
	assert_int_equal(gm_copy(w.m, 0, UINT64_MAX, 2), -EFAULT);
	assert_int_equal(gm_copy(w.m, UINT64_MAX, 0, 2), -EFAULT);
	assert_null(gm_host_ptr(w.m, UINT64_MAX, 2));
	assert_null((gm_host_ptr)(w.m, UINT64_MAX, 2));
	assert_null(gm_host_ptr(w.m, UINT64_MAX, SIZE_MAX));
	assert_int_equal(gm_to_iovec(w.m, UINT64_MAX, 2, iov, 4, &n), -EFAULT);
	assert_int_equal(gm_read_partial(w.m, UINT64_MAX - 3, buf, 8, &done), -EFAULT);
	assert_int_equal(done, 4);
	expect_pat(&w, 0, 16);
	expect_pat(&w, UINT64_MAX - 15, 16);
	world_free(&w);
}

static void iovec_and_partial_reach_uint64_max(void **state)
{
	static const struct gm_range r[1] = {{TOP_PAGE, PAGE}};
	unsigned char buf[PAGE];
	struct iovec iov[2];
	size_t done = 0, n = 0;
	struct world w;

	(void)state;
	world_build(&w, r, 1);
	assert_int_equal(gm_to_iovec(w.m, TOP_PAGE, PAGE, iov, 2, &n), 0);
	assert_int_equal(n, 1);
	assert_ptr_equal(iov[0].iov_base, w.host[0]);
	assert_int_equal(iov[0].iov_len, PAGE);
	assert_int_equal(gm_write_partial(w.m, UINT64_MAX - 9, buf, 10, &done), 0);
	assert_int_equal(done, 10);
	assert_int_equal(gm_read_partial(w.m, TOP_PAGE, buf, PAGE, &done), 0);
	assert_int_equal(done, PAGE);
	world_free(&w);
}

static void region_above_4gib_is_reachable(void **state)
{
	/* the low 32 bits of these collide: truncation would alias them */
	static const struct gm_range r[3] = {
	    {0, PAGE}, {0x100000000ull, 2 * PAGE}, {0x7ff00000000ull, PAGE}};
	unsigned char in[64], out[64];
	uint64_t v = 0;
	struct world w;

	(void)state;
	world_build(&w, r, 3);
	assert_int_equal(gm_write_u64(w.m, 0x100000000ull, 0x1122334455667788ull), 0);
	assert_int_equal(gm_read_u64(w.m, 0x100000000ull, &v), 0);
	assert_int_equal(v, 0x1122334455667788ull);
	assert_int_equal((gm_read_u64)(w.m, 0x100000000ull, &v), 0);
	assert_int_equal(v, 0x1122334455667788ull);
	expect_pat(&w, 0, 8); /* gpa 0 untouched */
	assert_int_equal(gm_write_u64(w.m, 0x7ff00000000ull + 8, 0xabcdull), 0);
	expect_pat(&w, 8, 8);
	assert_int_equal(*hb(&w, 0x7ff00000000ull + 8), 0xcd);
	fill_buf(in, sizeof(in), 11);
	assert_int_equal(gm_write(w.m, 0x100000000ull + PAGE - 32, in, 64), 0);
	expect_bytes(&w, 0x100000000ull + PAGE - 32, in, 64);
	assert_int_equal(gm_read(w.m, 0x100000000ull + PAGE - 32, out, 64), 0);
	assert_memory_equal(in, out, 64);
	expect_pat(&w, PAGE - 32, 32);
	/* the holes above 4 GiB fault even where a 32-bit alias would be RAM */
	assert_int_equal(gm_read(w.m, 0x200000000ull, out, 8), -EFAULT);
	assert_int_equal(gm_read_u64(w.m, 0x200000000ull, &v), -EFAULT);
	assert_int_equal(gm_read_u64(w.m, 0x100000000ull + 2 * PAGE, &v), -EFAULT);
	assert_ptr_equal(gm_host_ptr(w.m, 0x100000000ull + 5, 10), w.host[1] + 5);
	assert_null(gm_host_ptr(w.m, 0x300000005ull, 10));
	world_free(&w);
}

/* ------------------------------------------------------------------------ */
/* Holes, all-or-nothing and partial accesses                               */

static void read_touching_hole_faults_and_leaves_buffer(void **state)
{
	unsigned char buf[3 * PAGE], ref[3 * PAGE];
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	memset(buf, 0xee, sizeof(buf));
	memcpy(ref, buf, sizeof(buf));
	assert_int_equal(gm_read(w.m, 0x12000 - 10, buf, 20), -EFAULT);
	assert_int_equal(gm_read(w.m, 0x14000 - 10, buf, 20), -EFAULT);
	assert_int_equal(gm_read(w.m, 0x12000 - 10, buf, 2 * PAGE + 20), -EFAULT);
	assert_int_equal(gm_read(w.m, 0x13000, buf, 1), -EFAULT);
	assert_int_equal(gm_read(w.m, 0x16000 - 1, buf, 2), -EFAULT);
	assert_int_equal(gm_read(w.m, 0x10000 - 1, buf, 2), -EFAULT);
	assert_memory_equal(buf, ref, sizeof(buf));
	world_free(&w);
}

static void write_touching_hole_faults_and_changes_nothing(void **state)
{
	unsigned char buf[3 * PAGE];
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	fill_buf(buf, sizeof(buf), 13);
	assert_int_equal(gm_write(w.m, 0x12000 - 10, buf, 20), -EFAULT);
	assert_int_equal(gm_write(w.m, 0x14000 - 10, buf, 20), -EFAULT);
	assert_int_equal(gm_write(w.m, 0x12000 - 10, buf, 2 * PAGE + 20), -EFAULT);
	assert_int_equal(gm_write(w.m, 0x10000, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(gm_write(w.m, 0x16000 - 1, buf, 2), -EFAULT);
	assert_int_equal(gm_write(w.m, 0x10000 - 1, buf, 2), -EFAULT);
	expect_pat(&w, 0x10000, 2 * PAGE);
	expect_pat(&w, 0x14000, 2 * PAGE);
	world_free(&w);
}

static void read_partial_reports_bytes_before_hole(void **state)
{
	static const struct gm_range r[3] = {{0x10000, PAGE}, {0x11000, PAGE}, {0x14000, PAGE}};
	unsigned char buf[3 * PAGE];
	size_t done = 12345, i;
	struct world w;

	(void)state;
	world_build(&w, r, 3);
	memset(buf, 0, sizeof(buf));
	/* crosses an adjacent boundary, then stops at the hole */
	assert_int_equal(gm_read_partial(w.m, 0x10000 + 100, buf, 2 * PAGE, &done), -EFAULT);
	assert_int_equal(done, 2 * PAGE - 100);
	for (i = 0; i < done; i++)
		assert_int_equal(buf[i], pat(0x10000 + 100 + i));
	/* starts in the hole */
	done = 12345;
	assert_int_equal(gm_read_partial(w.m, 0x13fff, buf, 10, &done), -EFAULT);
	assert_int_equal(done, 0);
	/* all of it */
	assert_int_equal(gm_read_partial(w.m, 0x14000 + 10, buf, 100, &done), 0);
	assert_int_equal(done, 100);
	assert_int_equal(buf[99], pat(0x14000 + 109));
	/* runs off the end of RAM */
	assert_int_equal(gm_read_partial(w.m, 0x15000 - 3, buf, 100, &done), -EFAULT);
	assert_int_equal(done, 3);
	/* nothing to do */
	done = 12345;
	assert_int_equal(gm_read_partial(w.m, 0x13000, NULL, 0, &done), 0);
	assert_int_equal(done, 0);
	world_free(&w);
}

static void write_partial_reports_bytes_before_hole(void **state)
{
	unsigned char buf[PAGE];
	size_t done = 12345;
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	fill_buf(buf, sizeof(buf), 17);
	assert_int_equal(gm_write_partial(w.m, 0x12000 - 100, buf, 300, &done), -EFAULT);
	assert_int_equal(done, 100);
	expect_bytes(&w, 0x12000 - 100, buf, 100);
	expect_pat(&w, 0x10000, 2 * PAGE - 100);
	expect_pat(&w, 0x14000, 2 * PAGE);
	done = 12345;
	assert_int_equal(gm_write_partial(w.m, 0x13000, buf, 300, &done), -EFAULT);
	assert_int_equal(done, 0);
	expect_pat(&w, 0x14000, 2 * PAGE);
	assert_int_equal(gm_write_partial(w.m, 0x14000, buf, 300, &done), 0);
	assert_int_equal(done, 300);
	expect_bytes(&w, 0x14000, buf, 300);
	world_free(&w);
}

static void data_path_rejects_null_buffers(void **state)
{
	unsigned char buf[4];
	size_t done = 0;
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	assert_int_equal(gm_read(w.m, 0x10000, NULL, 4), -EINVAL);
	assert_int_equal(gm_write(w.m, 0x10000, NULL, 4), -EINVAL);
	assert_int_equal(gm_read_partial(w.m, 0x10000, buf, 4, NULL), -EINVAL);
	assert_int_equal(gm_write_partial(w.m, 0x10000, buf, 4, NULL), -EINVAL);
	assert_int_equal(gm_read_partial(w.m, 0x10000, NULL, 4, &done), -EINVAL);
	assert_int_equal(gm_write_partial(w.m, 0x10000, NULL, 4, &done), -EINVAL);
	/* length 0 is a no-op and may pass NULL */
	assert_int_equal(gm_read(w.m, 0x10000, NULL, 0), 0);
	assert_int_equal(gm_write(w.m, 0x10000, NULL, 0), 0);
	expect_pat(&w, 0x10000, 2 * PAGE);
	world_free(&w);
}

/* ------------------------------------------------------------------------ */
/* Read-only regions                                                        */

/* RW [0x10000, 0x11000), RO [0x11000, 0x13000) adjacent, RW [0x13000, 0x14000). */
static const struct gm_range ro_layout[3] = {{0x10000, PAGE}, {0x11000, 2 * PAGE}, {0x13000, PAGE}};
static const unsigned ro_flags[3] = {0, GM_REGION_READONLY, 0};

static void build_ro(struct world *w)
{
	world_build_full(w, ro_layout, ro_flags, NULL, NULL, 3);
}

static void expect_ro_untouched(const struct world *w)
{
	expect_pat(w, 0x10000, 4 * PAGE);
}

static void readonly_refuses_gm_write(void **state)
{
	unsigned char buf[3 * PAGE];
	struct world w;

	(void)state;
	build_ro(&w);
	fill_buf(buf, sizeof(buf), 19);
	assert_int_equal(gm_write(w.m, 0x11000, buf, 1), -EACCES);
	assert_int_equal(gm_write(w.m, 0x12fff, buf, 1), -EACCES);
	/* starts in RW, ends in RO: the RW part must not be written either */
	assert_int_equal(gm_write(w.m, 0x11000 - 8, buf, 16), -EACCES);
	/* RW - RO - RW */
	assert_int_equal(gm_write(w.m, 0x10000, buf, 3 * PAGE + 1), -EACCES);
	expect_ro_untouched(&w);
	world_free(&w);
}

static void readonly_write_partial_stops_before_it(void **state)
{
	unsigned char buf[64];
	size_t done = 0;
	struct world w;

	(void)state;
	build_ro(&w);
	fill_buf(buf, sizeof(buf), 23);
	assert_int_equal(gm_write_partial(w.m, 0x11000 - 8, buf, 16, &done), -EACCES);
	assert_int_equal(done, 8);
	expect_bytes(&w, 0x11000 - 8, buf, 8);
	expect_pat(&w, 0x11000, 3 * PAGE);
	world_free(&w);
}

static void readonly_refuses_fixed_width_writes(void **state)
{
	struct world w;

	(void)state;
	build_ro(&w);
	assert_int_equal(gm_write_u8(w.m, 0x11000, 1), -EACCES);
	assert_int_equal(gm_write_u16(w.m, 0x11002, 1), -EACCES);
	assert_int_equal(gm_write_u32(w.m, 0x11004, 1), -EACCES);
	assert_int_equal(gm_write_u64(w.m, 0x11008, 1), -EACCES);
	assert_int_equal((gm_write_u8)(w.m, 0x11000, 1), -EACCES);
	assert_int_equal((gm_write_u16)(w.m, 0x11002, 1), -EACCES);
	assert_int_equal((gm_write_u32)(w.m, 0x11004, 1), -EACCES);
	assert_int_equal((gm_write_u64)(w.m, 0x11008, 1), -EACCES);
	/* unaligned, and crossing from RW into RO */
	assert_int_equal(gm_write_u64(w.m, 0x11003, 1), -EACCES);
	assert_int_equal(gm_write_u64(w.m, 0x11000 - 4, 1), -EACCES);
	assert_int_equal((gm_write_u64)(w.m, 0x11000 - 4, 1), -EACCES);
	assert_int_equal(gm_write_u32(w.m, 0x13000 - 2, 1), -EACCES);
	expect_ro_untouched(&w);
	world_free(&w);
}

static void readonly_refuses_le_writes(void **state)
{
	struct world w;

	(void)state;
	build_ro(&w);
	assert_int_equal(gm_write_le16(w.m, 0x11010, 1), -EACCES);
	assert_int_equal(gm_write_le32(w.m, 0x11010, 1), -EACCES);
	assert_int_equal(gm_write_le64(w.m, 0x11010, 1), -EACCES);
	assert_int_equal((gm_write_le16)(w.m, 0x11010, 1), -EACCES);
	assert_int_equal((gm_write_le32)(w.m, 0x11010, 1), -EACCES);
	assert_int_equal((gm_write_le64)(w.m, 0x11010, 1), -EACCES);
	assert_int_equal(gm_write_le32(w.m, 0x11000 - 2, 1), -EACCES);
	expect_ro_untouched(&w);
	world_free(&w);
}

static void readonly_refuses_atomic_writes(void **state)
{
	uint32_t e32 = 0;
	uint64_t e64 = 0, o64 = 7;
	struct world w;

	(void)state;
	build_ro(&w);
	assert_int_equal(gm_atomic_store_u32(w.m, 0x11000, 1, __ATOMIC_SEQ_CST), -EACCES);
	assert_int_equal(gm_atomic_store_u64(w.m, 0x11008, 1, __ATOMIC_RELEASE), -EACCES);
	assert_int_equal(gm_atomic_fetch_add_u32(w.m, 0x11000, 1, NULL, __ATOMIC_SEQ_CST), -EACCES);
	assert_int_equal(gm_atomic_fetch_add_u64(w.m, 0x11008, 1, &o64, __ATOMIC_SEQ_CST), -EACCES);
	assert_int_equal(gm_atomic_fetch_or_u32(w.m, 0x11000, 1, NULL, __ATOMIC_RELAXED), -EACCES);
	assert_int_equal(gm_atomic_fetch_or_u64(w.m, 0x11008, 1, NULL, __ATOMIC_ACQ_REL), -EACCES);
	/* expected matches the current value: a swap would happen if allowed */
	memcpy(&e32, hb(&w, 0x11010), 4);
	memcpy(&e64, hb(&w, 0x11018), 8);
	assert_int_equal(gm_atomic_cmpxchg_u32(w.m, 0x11010, &e32, ~e32, __ATOMIC_SEQ_CST),
			 -EACCES);
	assert_int_equal(gm_atomic_cmpxchg_u64(w.m, 0x11018, &e64, ~e64, __ATOMIC_SEQ_CST),
			 -EACCES);
	expect_ro_untouched(&w);
	world_free(&w);
}

static void readonly_refuses_fill_and_copy_into_it(void **state)
{
	struct world w;

	(void)state;
	build_ro(&w);
	assert_int_equal(gm_fill(w.m, 0x11000, 0, 1), -EACCES);
	assert_int_equal(gm_fill(w.m, 0x10000, 0, 4 * PAGE), -EACCES);
	assert_int_equal(gm_fill(w.m, 0x13000 - 1, 0, 2), -EACCES);
	assert_int_equal(gm_copy(w.m, 0x11000, 0x10000, 16), -EACCES);
	assert_int_equal(gm_copy(w.m, 0x11000 - 8, 0x13000, 16), -EACCES);
	assert_int_equal(gm_copy(w.m, 0x11000, 0x11008, 16), -EACCES);
	expect_ro_untouched(&w);
	world_free(&w);
}

static void readonly_refuses_write_translation(void **state)
{
	struct iovec iov[4];
	size_t n = 0;
	struct world w;

	(void)state;
	build_ro(&w);
	assert_null(gm_host_ptr_write(w.m, 0x11000, 1));
	assert_null(gm_host_ptr_write(w.m, 0x11000, 0));
	assert_null(gm_host_ptr_write(w.m, 0x12000, PAGE));
	assert_ptr_equal(gm_host_ptr_write(w.m, 0x10000, PAGE), w.host[0]);
	assert_int_equal(gm_to_iovec_write(w.m, 0x11000, 8, iov, 4, &n), -EACCES);
	assert_int_equal(gm_to_iovec_write(w.m, 0x10000, 4 * PAGE, iov, 4, &n), -EACCES);
	assert_int_equal(gm_to_iovec_write(w.m, 0x10000, PAGE, iov, 4, &n), 0);
	assert_int_equal(n, 1);
	world_free(&w);
}

static void readonly_refuses_read_from_fd(void **state)
{
	unsigned char data[32], back[32];
	size_t done = 99;
	struct world w;
	int p[2];

	(void)state;
	build_ro(&w);
	fill_buf(data, sizeof(data), 29);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], data, sizeof(data)), (ssize_t)sizeof(data));
	assert_int_equal(gm_read_from_fd(w.m, 0x11000, p[0], -1, 32, &done), -EACCES);
	assert_int_equal(done, 0);
	assert_int_equal(gm_read_from_fd(w.m, 0x11000 - 16, p[0], -1, 32, &done), -EACCES);
	assert_int_equal(done, 0);
	/* the pipe was not read from */
	assert_int_equal(read(p[0], back, sizeof(back)), (ssize_t)sizeof(back));
	assert_memory_equal(data, back, sizeof(back));
	close(p[0]);
	close(p[1]);
	expect_ro_untouched(&w);
	world_free(&w);
}

/* The little-endian value of the @n guest bytes at @gpa, from pat(). */
static uint64_t pat_le(gm_gpa_t gpa, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)pat(gpa + i) << (8 * i);
	return v;
}

/*
 * The out-of-line typed reads (the inline ones fall back to them) return
 * the value, aligned or not: (gm_read_le32) names the function, not the
 * macro.
 */
static void out_of_line_le_reads_return_the_value(void **state)
{
	static const gm_gpa_t at[] = {0x11000, 0x11008, 0x11001, 0x11003, 0x11ffd};
	uint64_t v64;
	uint32_t v32;
	uint16_t v16;
	struct world w;

	(void)state;
	build_ro(&w);
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		v16 = 0;
		v32 = 0;
		v64 = 0;
		assert_int_equal((gm_read_le16)(w.m, at[i], &v16), 0);
		assert_int_equal(v16, pat_le(at[i], 2));
		assert_int_equal((gm_read_le32)(w.m, at[i], &v32), 0);
		assert_int_equal(v32, pat_le(at[i], 4));
		assert_int_equal((gm_read_le64)(w.m, at[i], &v64), 0);
		assert_int_equal(v64, pat_le(at[i], 8));
	}
	world_free(&w);
}

static void readonly_allows_every_read(void **state)
{
	unsigned char buf[3 * PAGE], back[16];
	struct iovec iov[4];
	uint64_t v64 = 0;
	uint32_t v32 = 0;
	size_t n = 0, done = 0, i;
	struct world w;
	int p[2];

	(void)state;
	build_ro(&w);
	assert_int_equal(gm_read(w.m, 0x10000, buf, 3 * PAGE), 0);
	for (i = 0; i < 3 * PAGE; i++)
		assert_int_equal(buf[i], pat(0x10000 + i));
	assert_int_equal(gm_read_u64(w.m, 0x11008, &v64), 0);
	assert_int_equal((gm_read_u32)(w.m, 0x11004, &v32), 0);
	assert_int_equal(gm_read_le32(w.m, 0x11004, &v32), 0);
	assert_int_equal(gm_atomic_load_u64(w.m, 0x11008, &v64, __ATOMIC_ACQUIRE), 0);
	assert_ptr_equal(gm_host_ptr(w.m, 0x11000, 2 * PAGE), w.host[1]);
	assert_int_equal(gm_to_iovec(w.m, 0x10000, 4 * PAGE, iov, 4, &n), 0);
	assert_int_equal(n, 3);
	/* copying out of a read-only region is fine */
	assert_int_equal(gm_copy(w.m, 0x13000, 0x11000, 16), 0);
	assert_int_equal(*hb(&w, 0x13000 + 15), pat(0x11000 + 15));
	assert_int_equal(pipe(p), 0);
	assert_int_equal(gm_write_to_fd(w.m, 0x11000, p[1], -1, 16, &done), 0);
	assert_int_equal(done, 16);
	assert_int_equal(read(p[0], back, 16), 16);
	assert_int_equal(back[15], pat(0x11000 + 15));
	close(p[0]);
	close(p[1]);
	world_free(&w);
}

/* ------------------------------------------------------------------------ */
/* Fill and copy                                                            */

static void fill_sets_bytes_across_regions(void **state)
{
	static const struct gm_range r[3] = {{0x10000, PAGE}, {0x11000, 5}, {0x11005, PAGE}};
	unsigned char ff[100 + 5 + 200]; /* ends 200 bytes into the third region */
	struct world w;

	(void)state;
	world_build(&w, r, 3);
	memset(ff, 0x7e, sizeof(ff));
	assert_int_equal(gm_fill(w.m, 0x11000 - 100, 0x7e, sizeof(ff)), 0);
	expect_bytes(&w, 0x11000 - 100, ff, sizeof(ff));
	expect_pat(&w, 0x10000, PAGE - 100);
	/* the byte is converted to unsigned char */
	memset(ff, 0xff, 4);
	assert_int_equal(gm_fill(w.m, 0x10010, -1, 2), 0);
	assert_int_equal(gm_fill(w.m, 0x10012, 0x1ff, 2), 0);
	expect_bytes(&w, 0x10010, ff, 4);
	expect_pat(&w, 0x10014, 1);
	assert_int_equal(gm_fill(w.m, 0x10000, 0, 0), 0);
	expect_pat(&w, 0x10000, 1);
	world_free(&w);
}

static void fill_touching_hole_faults_and_changes_nothing(void **state)
{
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	assert_int_equal(gm_fill(w.m, 0x12000 - 10, 0, 20), -EFAULT);
	assert_int_equal(gm_fill(w.m, 0x10000, 0, 6 * PAGE), -EFAULT);
	assert_int_equal(gm_fill(w.m, 0x16000 - 1, 0, 2), -EFAULT);
	assert_int_equal(gm_fill(w.m, 0x13000, 0, 1), -EFAULT);
	expect_pat(&w, 0x10000, 2 * PAGE);
	expect_pat(&w, 0x14000, 2 * PAGE);
	world_free(&w);
}

/* Copy with gm_copy and with memmove on a shadow of the guest bytes; compare. */
static void copy_like_memmove(const struct world *w, gm_gpa_t base, size_t span, gm_gpa_t dst,
			      gm_gpa_t src, size_t len)
{
	unsigned char *shadow = malloc(span);
	size_t i;

	assert_non_null(shadow);
	for (i = 0; i < span; i++)
		shadow[i] = *hb(w, base + i);
	memmove(shadow + (dst - base), shadow + (src - base), len);
	assert_int_equal(gm_copy(w->m, dst, src, len), 0);
	expect_bytes(w, base, shadow, span);
	free(shadow);
}

static void copy_overlapping_forward_within_region(void **state)
{
	static const struct gm_range r[1] = {{0x10000, 2 * PAGE}};
	struct world w;

	(void)state;
	world_build(&w, r, 1);
	/* dst above src: a naive forward copy would smear */
	copy_like_memmove(&w, 0x10000, 2 * PAGE, 0x10010, 0x10000, PAGE);
	copy_like_memmove(&w, 0x10000, 2 * PAGE, 0x10001, 0x10000, 100);
	world_free(&w);
}

static void copy_overlapping_backward_within_region(void **state)
{
	static const struct gm_range r[1] = {{0x10000, 2 * PAGE}};
	struct world w;

	(void)state;
	world_build(&w, r, 1);
	copy_like_memmove(&w, 0x10000, 2 * PAGE, 0x10000, 0x10010, PAGE);
	copy_like_memmove(&w, 0x10000, 2 * PAGE, 0x10100, 0x10101, 100);
	copy_like_memmove(&w, 0x10000, 2 * PAGE, 0x10200, 0x10200, 100); /* onto itself */
	world_free(&w);
}

/*
 * Backwards across page-sized regions, src and dst one byte past a region
 * start: the last piece is exactly what is left, not one byte more (the
 * byte before dst is not the destination's).
 */
static void copy_backward_from_region_starts_stays_in_the_destination(void **state)
{
	static const struct gm_range r[3] = {{0x10000, PAGE}, {0x11000, PAGE}, {0x12000, PAGE}};
	struct world w;

	(void)state;
	world_build(&w, r, 3);
	copy_like_memmove(&w, 0x10000, 3 * PAGE, 0x11001, 0x10001, PAGE + PAGE / 2);
	world_free(&w);
}

static void copy_overlapping_across_regions_both_directions(void **state)
{
	static const struct gm_range r[4] = {
	    {0x10000, PAGE}, {0x11000, 7}, {0x11007, PAGE}, {0x12007, PAGE}};
	const size_t span = 3 * PAGE + 7;
	struct world w;

	(void)state;
	world_build(&w, r, 4);
	copy_like_memmove(&w, 0x10000, span, 0x10f00 + 50, 0x10f00, 2 * PAGE);
	copy_like_memmove(&w, 0x10000, span, 0x10f00, 0x10f00 + 50, 2 * PAGE);
	copy_like_memmove(&w, 0x10000, span, 0x10ffe, 0x10ffc, 20);
	copy_like_memmove(&w, 0x10000, span, 0x10ffc, 0x10ffe, 20);
	/* far apart, not overlapping, crossing boundaries on both sides */
	copy_like_memmove(&w, 0x10000, span, 0x12000, 0x10ff0, 0x30);
	world_free(&w);
}

static void copy_touching_hole_faults_and_changes_nothing(void **state)
{
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	assert_int_equal(gm_copy(w.m, 0x14000, 0x12000 - 10, 20), -EFAULT); /* src */
	assert_int_equal(gm_copy(w.m, 0x12000 - 10, 0x14000, 20), -EFAULT); /* dst */
	assert_int_equal(gm_copy(w.m, 0x10000, 0x13000, 1), -EFAULT);
	assert_int_equal(gm_copy(w.m, 0x13000, 0x10000, 1), -EFAULT);
	assert_int_equal(gm_copy(w.m, 0x14000, 0x10000, 2 * PAGE + 1), -EFAULT);
	expect_pat(&w, 0x10000, 2 * PAGE);
	expect_pat(&w, 0x14000, 2 * PAGE);
	assert_int_equal(gm_copy(w.m, 0x14000, 0x10000, 0), 0);
	expect_pat(&w, 0x14000, 1);
	world_free(&w);
}

int memory_datapath_tests(void)
{
	const struct CMUnitTest memory_datapath[] = {
	    cmocka_unit_test(read_write_crossing_one_boundary),
	    cmocka_unit_test(read_write_crossing_two_boundaries),
	    cmocka_unit_test(read_write_crossing_64_boundaries),
	    cmocka_unit_test(last_byte_of_last_region_and_one_past),
	    cmocka_unit_test(access_at_uint64_max),
	    cmocka_unit_test(range_wrapping_past_uint64_max_faults),
	    cmocka_unit_test(iovec_and_partial_reach_uint64_max),
	    cmocka_unit_test(region_above_4gib_is_reachable),
	    cmocka_unit_test(read_touching_hole_faults_and_leaves_buffer),
	    cmocka_unit_test(write_touching_hole_faults_and_changes_nothing),
	    cmocka_unit_test(read_partial_reports_bytes_before_hole),
	    cmocka_unit_test(write_partial_reports_bytes_before_hole),
	    cmocka_unit_test(data_path_rejects_null_buffers),
	    cmocka_unit_test(readonly_refuses_gm_write),
	    cmocka_unit_test(readonly_write_partial_stops_before_it),
	    cmocka_unit_test(readonly_refuses_fixed_width_writes),
	    cmocka_unit_test(readonly_refuses_le_writes),
	    cmocka_unit_test(readonly_refuses_atomic_writes),
	    cmocka_unit_test(readonly_refuses_fill_and_copy_into_it),
	    cmocka_unit_test(readonly_refuses_write_translation),
	    cmocka_unit_test(readonly_refuses_read_from_fd),
	    cmocka_unit_test(readonly_allows_every_read),
	    cmocka_unit_test(out_of_line_le_reads_return_the_value),
	    cmocka_unit_test(fill_sets_bytes_across_regions),
	    cmocka_unit_test(fill_touching_hole_faults_and_changes_nothing),
	    cmocka_unit_test(copy_overlapping_forward_within_region),
	    cmocka_unit_test(copy_overlapping_backward_within_region),
	    cmocka_unit_test(copy_backward_from_region_starts_stays_in_the_destination),
	    cmocka_unit_test(copy_overlapping_across_regions_both_directions),
	    cmocka_unit_test(copy_touching_hole_faults_and_changes_nothing),
	};

	return cmocka_run_group_tests(memory_datapath, NULL, NULL);
}
