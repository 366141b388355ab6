/* SPDX-License-Identifier: MIT */
/*
 * tests/memory/test_memory_construct.c - building views and asking them
 * about themselves: every rejection of gm_memory_new() and
 * gm_memory_new_anon(), references, the empty view, introspection, and a
 * view over a memfd seen through a second mapping.
 */
#include "memory-test.h"

/* ------------------------------------------------------------------------ */
/* Building a view: every rejection of gm_memory_new()                      */

static void new_rejects_zero_sized_region(void **state)
{
	struct gm_mapping *mp = map_anon(4 * PAGE);
	struct gm_region_spec s[2] = {spec(0, PAGE, mp, 0, 0), spec(0x10000, 0, mp, 0, 0)};

	(void)state;
	assert_int_equal(try_new(&s[1], 1), -EINVAL);
	assert_int_equal(try_new(s, 2), -EINVAL);
	gm_mapping_put(mp);
}

static void new_rejects_overlapping_regions(void **state)
{
	struct gm_mapping *mp = map_anon(4 * PAGE);
	struct gm_region_spec s[2];

	(void)state;
	/* identical */
	s[0] = spec(0x10000, PAGE, mp, 0, 0);
	s[1] = spec(0x10000, PAGE, mp, PAGE, 0);
	assert_int_equal(try_new(s, 2), -EEXIST);
	/* one shared byte: the last of the first, the first of the second */
	s[1] = spec(0x10000 + PAGE - 1, PAGE, mp, PAGE, 0);
	assert_int_equal(try_new(s, 2), -EEXIST);
	/* one inside the other, given in the other order */
	s[0] = spec(0x10000 + 16, 32, mp, 0, 0);
	s[1] = spec(0x10000, 2 * PAGE, mp, 0, 0);
	assert_int_equal(try_new(s, 2), -EEXIST);
	/* the second one starts below and ends inside the first */
	s[0] = spec(0x20000, 2 * PAGE, mp, 0, 0);
	s[1] = spec(0x1f000, 2 * PAGE, mp, 0, 0);
	assert_int_equal(try_new(s, 2), -EEXIST);
	/* overlap at the very top of the address space */
	s[0] = spec(TOP_PAGE, PAGE, mp, 0, 0);
	s[1] = spec(UINT64_MAX, 1, mp, 0, 0);
	assert_int_equal(try_new(s, 2), -EEXIST);
	gm_mapping_put(mp);
}

static void new_rejects_overlap_among_many_unsorted(void **state)
{
	struct gm_mapping *mp = map_anon(PAGE);
	struct gm_region_spec s[10];
	size_t i;

	(void)state;
	for (i = 0; i < 10; i++)
		s[i] = spec(0x100000 * (10 - i), PAGE, mp, 0, 0);
	assert_int_equal(try_new(s, 10), 0);
	/* the 3rd and the 8th overlap; they are not neighbours in the array */
	s[7].gpa = s[2].gpa + 100;
	assert_int_equal(try_new(s, 10), -EEXIST);
	gm_mapping_put(mp);
}

static void new_accepts_touching_regions(void **state)
{
	struct gm_mapping *mp = map_anon(4 * PAGE);
	struct gm_region_spec s[3] = {
	    spec(0x10000 + PAGE, PAGE, mp, PAGE, 0),
	    spec(0x10000, PAGE, mp, 0, 0),
	    spec(0x10000 + 2 * PAGE, 1, mp, 2 * PAGE, 0),
	};

	(void)state;
	assert_int_equal(try_new(s, 3), 0);
	gm_mapping_put(mp);
}

static void new_rejects_region_wrapping_past_2_64(void **state)
{
	struct gm_mapping *mp = map_anon(4 * PAGE);
	struct gm_region_spec s;

	(void)state;
	s = spec(TOP_PAGE, PAGE + 1, mp, 0, 0);
	assert_int_equal(try_new(&s, 1), -EOVERFLOW);
	s = spec(UINT64_MAX, 2, mp, 0, 0);
	assert_int_equal(try_new(&s, 1), -EOVERFLOW);
	s = spec(TOP_PAGE + 1, PAGE, mp, 0, 0);
	assert_int_equal(try_new(&s, 1), -EOVERFLOW);
	gm_mapping_put(mp);
}

static void new_accepts_region_ending_at_uint64_max(void **state)
{
	struct gm_mapping *mp = map_anon(PAGE);
	struct gm_region_spec s = spec(TOP_PAGE, PAGE, mp, 0, 0);
	struct gm_region_spec one = spec(UINT64_MAX, 1, mp, 0, 0);

	(void)state;
	assert_int_equal(try_new(&s, 1), 0);
	assert_int_equal(try_new(&one, 1), 0);
	gm_mapping_put(mp);
}

static void new_rejects_window_outside_mapping(void **state)
{
	struct gm_mapping *mp = map_anon(4 * PAGE);
	struct gm_region_spec s;

	(void)state;
	/* one byte too long */
	s = spec(0, 4 * PAGE + 1, mp, 0, 0);
	assert_int_equal(try_new(&s, 1), -ERANGE);
	/* fits in size but starts too far in */
	s = spec(0, 2 * PAGE, mp, 2 * PAGE + 1, 0);
	assert_int_equal(try_new(&s, 1), -ERANGE);
	/* starts at the end */
	s = spec(0, 1, mp, 4 * PAGE, 0);
	assert_int_equal(try_new(&s, 1), -ERANGE);
	/* offset + size would wrap size_t: must not pass a wrapped check */
	s = spec(0, 2 * PAGE, mp, SIZE_MAX - PAGE + 1, 0);
	assert_int_equal(try_new(&s, 1), -ERANGE);
	s = spec(0, PAGE, mp, SIZE_MAX, 0);
	assert_int_equal(try_new(&s, 1), -ERANGE);
	gm_mapping_put(mp);
}

static void new_rejects_window_larger_than_mapping_on_64bit(void **state)
{
	struct gm_mapping *mp = map_anon(PAGE);
	struct gm_region_spec s = spec(0, (uint64_t)1 << 40, mp, 0, 0);

	(void)state;
	if (SIZE_MAX < UINT64_MAX) {
		/* 2^40 does not fit size_t: that is -EOVERFLOW, tested below */
		gm_mapping_put(mp);
		print_message(
		    "skipped: size_t is 32-bit here (see new_rejects_size_not_fitting_size_t)\n");
		skip();
	}
	assert_int_equal(try_new(&s, 1), -ERANGE);
	gm_mapping_put(mp);
}

static void new_accepts_window_ending_at_mapping_end(void **state)
{
	struct gm_mapping *mp = map_anon(4 * PAGE);
	struct gm_region_spec s = spec(0x5000, PAGE + 5, mp, 3 * PAGE - 5, 0);
	struct gm_memory *m = NULL;
	unsigned char *host = gm_mapping_host(mp);
	uint8_t v = 0;

	(void)state;
	host[4 * PAGE - 1] = 0xa7;
	assert_int_equal(gm_memory_new(&s, 1, &m), 0);
	expect_view_ok(m);
	assert_int_equal((gm_read_u8)(m, 0x5000 + PAGE + 4, &v), 0);
	assert_int_equal(v, 0xa7);
	assert_int_equal((gm_read_u8)(m, 0x5000 + PAGE + 5, &v), -EFAULT);
	gm_memory_put(m);
	gm_mapping_put(mp);
}

static void new_rejects_null_pointers(void **state)
{
	struct gm_mapping *mp = map_anon(PAGE);
	struct gm_region_spec s = spec(0, PAGE, mp, 0, 0);
	struct gm_region_spec nomap = spec(0, PAGE, NULL, 0, 0);
	struct gm_memory *m = NULL;

	(void)state;
	assert_int_equal(gm_memory_new(&s, 1, NULL), -EINVAL);
	assert_int_equal(gm_memory_new(NULL, 0, NULL), -EINVAL);
	assert_int_equal(gm_memory_new(NULL, 1, &m), -EINVAL);
	assert_int_equal(gm_memory_new(&nomap, 1, &m), -EINVAL);
	gm_mapping_put(mp);
}

static void new_rejects_unknown_region_flags(void **state)
{
	struct gm_mapping *mp = map_anon(PAGE);
	struct gm_region_spec s = spec(0, PAGE, mp, 0, GM_REGION_ALL_FLAGS + 1);

	(void)state;
	assert_int_equal(try_new(&s, 1), -EINVAL);
	s.flags = 1u << 31;
	assert_int_equal(try_new(&s, 1), -EINVAL);
	s.flags = GM_REGION_ALL_FLAGS;
	assert_int_equal(try_new(&s, 1), 0);
	gm_mapping_put(mp);
}

static void new_rejects_size_not_fitting_size_t(void **state)
{
	struct gm_mapping *mp;
	struct gm_region_spec s;

	(void)state;
	if (SIZE_MAX >= UINT64_MAX) {
		print_message("skipped: size_t is 64-bit here, every uint64_t size fits\n");
		skip();
	}
	mp = map_anon(PAGE);
	s = spec(0, (uint64_t)SIZE_MAX + 1, mp, 0, 0);
	assert_int_equal(try_new(&s, 1), -EOVERFLOW);
	s = spec((uint64_t)1 << 40, (uint64_t)1 << 33, mp, 0, 0);
	assert_int_equal(try_new(&s, 1), -EOVERFLOW);
	gm_mapping_put(mp);
}

static void new_rejects_dirty_window_beyond_bitmap(void **state)
{
	struct gm_mapping *mp = map_anon(2 * PAGE);
	struct gm_dirty *d = NULL;
	struct gm_region_spec s = spec(0, PAGE, mp, 0, 0);

	(void)state;
	assert_int_equal(gm_dirty_new(2 * PAGE, &d), 0);
	s.dirty = d;
	s.dirty_offset = PAGE;
	assert_int_equal(try_new(&s, 1), 0);
	s.dirty_offset = PAGE + 1;
	assert_int_equal(try_new(&s, 1), -EINVAL);
	s.dirty_offset = 2 * PAGE;
	assert_int_equal(try_new(&s, 1), -EINVAL);
	s.dirty_offset = UINT64_MAX - 10; /* offset + size wraps */
	assert_int_equal(try_new(&s, 1), -EINVAL);
	s.dirty_offset = 0;
	s.size = 2 * PAGE;
	assert_int_equal(try_new(&s, 1), 0);
	gm_dirty_put(d);
	gm_mapping_put(mp);
}

static void new_anon_rejects_bad_ranges(void **state)
{
	struct gm_range r[2] = {{0, PAGE}, {0x10000, PAGE}};
	struct gm_memory *m = NULL;

	(void)state;
	assert_int_equal(gm_memory_new_anon(r, 2, NULL), -EINVAL);
	assert_int_equal(gm_memory_new_anon(NULL, 1, &m), -EINVAL);
	r[1].size = 0;
	assert_int_equal(try_new_anon(r, 2), -EINVAL);
	r[1] = (struct gm_range){PAGE - 1, PAGE};
	assert_int_equal(try_new_anon(r, 2), -EEXIST);
	r[1] = (struct gm_range){TOP_PAGE, PAGE + 1};
	assert_int_equal(try_new_anon(r, 2), -EOVERFLOW);
	r[1] = (struct gm_range){PAGE, PAGE};
	assert_int_equal(try_new_anon(r, 2), 0);
}

static void new_anon_rejects_4gib_range_on_32bit(void **state)
{
	struct gm_range r = {0, (uint64_t)1 << 32};

	(void)state;
	if (SIZE_MAX >= UINT64_MAX) {
		print_message("skipped: a 64-bit process can map 4 GiB\n");
		skip();
	}
	assert_int_equal(try_new_anon(&r, 1), -EOVERFLOW);
}

static void new_sorts_unsorted_regions(void **state)
{
	static const struct gm_range r[5] = {
	    {0x50000, PAGE}, {0x10000, 2 * PAGE}, {0x40000, PAGE}, {0x12000, PAGE}, {0, PAGE},
	};
	static const gm_gpa_t sorted[5] = {0, 0x10000, 0x12000, 0x40000, 0x50000};
	struct gm_region_info info = GM_OPTS(gm_region_info);
	struct world w;
	unsigned char buf[3 * PAGE];
	size_t i;

	(void)state;
	world_build(&w, r, 5);
	assert_int_equal(gm_memory_region_count(w.m), 5);
	for (i = 0; i < 5; i++) {
		assert_int_equal(gm_memory_region(w.m, i, &info), 0);
		assert_int_equal(info.gpa, sorted[i]);
		assert_ptr_equal(info.host, hb(&w, sorted[i]));
	}
	/* 0x10000 and 0x12000 were given apart but are adjacent: one read */
	assert_int_equal(gm_read(w.m, 0x10000, buf, sizeof(buf)), 0);
	for (i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], pat(0x10000 + i));
	world_free(&w);
}

static void view_keeps_its_mappings_alive(void **state)
{
	struct gm_mapping *mp = map_anon(2 * PAGE);
	struct gm_region_spec s = spec(0x1000, 2 * PAGE, mp, 0, 0);
	struct gm_memory *m = NULL;
	unsigned char buf[2 * PAGE], out[2 * PAGE];

	(void)state;
	assert_int_equal(gm_memory_new(&s, 1, &m), 0);
	expect_view_ok(m);
	gm_mapping_put(mp); /* the view holds its own reference */
	fill_buf(buf, sizeof(buf), 3);
	assert_int_equal(gm_write(m, 0x1000, buf, sizeof(buf)), 0);
	assert_int_equal(gm_read(m, 0x1000, out, sizeof(out)), 0);
	assert_memory_equal(buf, out, sizeof(buf));
	gm_memory_put(m);
}

static void get_returns_the_view_and_put_ignores_null(void **state)
{
	struct gm_range r = {0, PAGE};
	struct gm_memory *m = NULL;
	uint8_t v = 1;

	(void)state;
	assert_int_equal(gm_memory_new_anon(&r, 1, &m), 0);
	expect_view_ok(m);
	assert_ptr_equal(gm_memory_get(m), m);
	gm_memory_put(m);
	/* still alive: one reference left */
	assert_int_equal(gm_read_u8(m, 0, &v), 0);
	assert_int_equal(v, 0);
	gm_memory_put(m);
	gm_memory_put(NULL);
}

/* ------------------------------------------------------------------------ */
/* The empty view                                                           */

static void empty_view_faults_everywhere(void **state)
{
	struct gm_memory *m = NULL;
	struct gm_region_info info = GM_OPTS(gm_region_info);
	struct iovec iov[2];
	unsigned char buf[16] = {0};
	uint8_t v8 = 0;
	uint16_t v16 = 0;
	uint32_t v32 = 0;
	uint64_t v64 = 0, last = 0;
	size_t done = 99, n = 99;
	int p[2];

	(void)state;
	assert_int_equal(gm_memory_new(NULL, 0, &m), 0);
	expect_view_ok(m);
	assert_non_null(m);
	assert_int_equal(gm_memory_region_count(m), 0);
	assert_int_equal(gm_memory_total_size(m), 0);
	assert_int_equal(gm_memory_last_addr(m, &last), -ENOENT);
	assert_int_equal(gm_memory_region(m, 0, &info), -ENOENT);
	assert_int_equal(gm_memory_find(m, 0, &info), -EFAULT);
	assert_int_equal(gm_read(m, 0, buf, 1), -EFAULT);
	assert_int_equal(gm_write(m, 0, buf, 1), -EFAULT);
	assert_int_equal(gm_read_partial(m, 0, buf, 4, &done), -EFAULT);
	assert_int_equal(done, 0);
	done = 99;
	assert_int_equal(gm_write_partial(m, 0, buf, 4, &done), -EFAULT);
	assert_int_equal(done, 0);
	assert_int_equal(gm_read_u8(m, 0, &v8), -EFAULT);
	assert_int_equal(gm_read_u16(m, 0, &v16), -EFAULT);
	assert_int_equal(gm_read_u32(m, 0, &v32), -EFAULT);
	assert_int_equal(gm_read_u64(m, 0, &v64), -EFAULT);
	assert_int_equal((gm_read_u64)(m, 0, &v64), -EFAULT);
	assert_int_equal(gm_read_u64(m, UINT64_MAX - 7, &v64), -EFAULT);
	assert_int_equal(gm_write_u8(m, 0, 1), -EFAULT);
	assert_int_equal(gm_write_u16(m, 0, 1), -EFAULT);
	assert_int_equal(gm_write_u32(m, 0, 1), -EFAULT);
	assert_int_equal(gm_write_u64(m, 0, 1), -EFAULT);
	assert_int_equal((gm_write_u64)(m, 0, 1), -EFAULT);
	assert_int_equal(gm_read_le32(m, 0, &v32), -EFAULT);
	assert_int_equal((gm_read_le16)(m, 0, &v16), -EFAULT);
	assert_int_equal(gm_write_le64(m, 0, 1), -EFAULT);
	assert_int_equal((gm_write_le32)(m, 0, 1), -EFAULT);
	assert_int_equal(gm_atomic_load_u64(m, 0, &v64, __ATOMIC_SEQ_CST), -EFAULT);
	assert_int_equal(gm_atomic_store_u32(m, 0, 1, __ATOMIC_SEQ_CST), -EFAULT);
	assert_int_equal(gm_atomic_fetch_add_u64(m, 0, 1, NULL, __ATOMIC_SEQ_CST), -EFAULT);
	assert_int_equal(gm_atomic_fetch_or_u32(m, 0, 1, NULL, __ATOMIC_SEQ_CST), -EFAULT);
	assert_int_equal(gm_atomic_cmpxchg_u64(m, 0, &v64, 1, __ATOMIC_SEQ_CST), -EFAULT);
	assert_int_equal(gm_fill(m, 0, 0, 1), -EFAULT);
	assert_int_equal(gm_copy(m, 0, 8, 1), -EFAULT);
	assert_null(gm_host_ptr(m, 0, 1));
	assert_null((gm_host_ptr)(m, 0, 1));
	assert_null(gm_host_ptr(m, 0, 0));
	assert_null(gm_host_ptr_write(m, 0, 1));
	assert_int_equal(gm_to_iovec(m, 0, 1, iov, 2, &n), -EFAULT);
	assert_int_equal(gm_to_iovec_write(m, 0, 1, iov, 2, &n), -EFAULT);
	assert_int_equal(gm_mark_dirty(m, 0, 1), 0);
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "abcd", 4), 4);
	done = 99;
	assert_int_equal(gm_read_from_fd(m, 0, p[0], -1, 4, &done), -EFAULT);
	assert_int_equal(done, 0);
	done = 99;
	assert_int_equal(gm_write_to_fd(m, 0, p[1], -1, 4, &done), -EFAULT);
	assert_int_equal(done, 0);
	close(p[0]);
	close(p[1]);
	gm_memory_put(m);
}

/* ------------------------------------------------------------------------ */
/* Introspection                                                            */

static void region_by_index_reports_its_spec(void **state)
{
	struct gm_mapping *mp = map_anon(4 * PAGE);
	struct gm_dirty *d = NULL;
	struct gm_region_spec s[2];
	struct gm_region_info info = GM_OPTS(gm_region_info);
	struct gm_memory *m = NULL;
	unsigned char *host = gm_mapping_host(mp);

	(void)state;
	assert_int_equal(gm_dirty_new(8 * PAGE, &d), 0);
	s[0] = spec(0x200000, PAGE, mp, 3 * PAGE, GM_REGION_READONLY | GM_REGION_ROM);
	s[1] = spec(0x100000, 2 * PAGE, mp, PAGE, GM_REGION_NOEXEC);
	s[1].dirty = d;
	s[1].dirty_offset = 4 * PAGE;
	assert_int_equal(gm_memory_new(s, 2, &m), 0);
	expect_view_ok(m);

	assert_int_equal(gm_memory_region(m, 0, &info), 0);
	assert_int_equal(info.gpa, 0x100000);
	assert_int_equal(info.size, 2 * PAGE);
	assert_ptr_equal(info.host, host + PAGE);
	assert_int_equal(info.flags, GM_REGION_NOEXEC);
	assert_ptr_equal(info.mapping, mp);
	assert_int_equal(info.offset, PAGE);
	assert_ptr_equal(info.dirty, d);
	assert_int_equal(info.dirty_offset, 4 * PAGE);

	assert_int_equal(gm_memory_region(m, 1, &info), 0);
	assert_int_equal(info.gpa, 0x200000);
	assert_int_equal(info.size, PAGE);
	assert_ptr_equal(info.host, host + 3 * PAGE);
	assert_int_equal(info.flags, GM_REGION_READONLY | GM_REGION_ROM);
	assert_ptr_equal(info.mapping, mp);
	assert_int_equal(info.offset, 3 * PAGE);
	assert_null(info.dirty);

	assert_int_equal(gm_memory_region(m, 2, &info), -ENOENT);
	assert_int_equal(gm_memory_region(m, SIZE_MAX, &info), -ENOENT);
	assert_int_equal(gm_memory_region(m, 0, NULL), -EINVAL);
	gm_memory_put(m);
	gm_dirty_put(d);
	gm_mapping_put(mp);
}

static void find_reports_the_region_holding_an_address(void **state)
{
	static const struct gm_range r[3] = {{0x1000, PAGE}, {0x2000, 3}, {0x10000, 2 * PAGE}};
	struct gm_region_info info = GM_OPTS(gm_region_info);
	struct world w;

	(void)state;
	world_build(&w, r, 3);
	assert_int_equal(gm_memory_find(w.m, 0x1000, &info), 0);
	assert_int_equal(info.gpa, 0x1000);
	assert_int_equal(info.size, PAGE);
	assert_ptr_equal(info.host, w.host[0]);
	assert_int_equal(gm_memory_find(w.m, 0x1fff, &info), 0);
	assert_int_equal(info.gpa, 0x1000);
	assert_int_equal(gm_memory_find(w.m, 0x2002, &info), 0);
	assert_int_equal(info.gpa, 0x2000);
	assert_int_equal(info.size, 3);
	assert_ptr_equal(info.host, w.host[1]);
	assert_int_equal(gm_memory_find(w.m, 0x10000 + 2 * PAGE - 1, &info), 0);
	assert_int_equal(info.gpa, 0x10000);
	assert_ptr_equal(info.mapping, w.mp[2]);

	assert_int_equal(gm_memory_find(w.m, 0xfff, &info), -EFAULT);
	assert_int_equal(gm_memory_find(w.m, 0x2003, &info), -EFAULT);
	assert_int_equal(gm_memory_find(w.m, 0x10000 + 2 * PAGE, &info), -EFAULT);
	assert_int_equal(gm_memory_find(w.m, UINT64_MAX, &info), -EFAULT);
	assert_int_equal(gm_memory_find(w.m, 0x1000, NULL), -EINVAL);
	world_free(&w);
}

static void total_size_and_last_addr(void **state)
{
	static const struct gm_range r[3] = {{0x10000, PAGE}, {0, 3}, {0x100000000ull, 2 * PAGE}};
	static const struct gm_range top[2] = {{0, PAGE}, {TOP_PAGE, PAGE}};
	gm_gpa_t last = 0;
	struct world w;

	(void)state;
	world_build(&w, r, 3);
	assert_int_equal(gm_memory_total_size(w.m), 3 * PAGE + 3);
	assert_int_equal(gm_memory_last_addr(w.m, &last), 0);
	assert_int_equal(last, 0x100000000ull + 2 * PAGE - 1);
	world_free(&w);

	world_build(&w, top, 2);
	assert_int_equal(gm_memory_total_size(w.m), 2 * PAGE);
	assert_int_equal(gm_memory_last_addr(w.m, &last), 0);
	assert_int_equal(last, UINT64_MAX);
	world_free(&w);
}

static void last_addr_rejects_null_out(void **state)
{
	static const struct gm_range r[1] = {{0x10000, PAGE}};
	struct gm_memory *empty = NULL;
	struct world w;

	(void)state;
	world_build(&w, r, 1);
	assert_int_equal(gm_memory_last_addr(w.m, NULL), -EINVAL);
	world_free(&w);
	/* The NULL check comes first, also in an empty view. */
	assert_int_equal(gm_memory_new(NULL, 0, &empty), 0);
	expect_view_ok(empty);
	assert_int_equal(gm_memory_last_addr(empty, NULL), -EINVAL);
	gm_memory_put(empty);
}

/* ------------------------------------------------------------------------ */
/* memfd                                                                    */

static void memfd_region_is_seen_through_second_mapping(void **state)
{
	struct gm_mapping *a = NULL, *b = NULL;
	struct gm_region_spec sa, sb;
	struct gm_memory *ma = NULL, *mb = NULL;
	unsigned char in[64], out[64];
	uint64_t v = 0;
	unsigned char *raw;
	int fd;

	(void)state;
	assert_int_equal(gm_mapping_new_memfd("gm-test-memory", 4 * PAGE, 0, &a), 0);
	fd = gm_mapping_fd(a);
	assert_true(fd >= 0);
	assert_int_equal(gm_mapping_new_fd(fd, 0, 4 * PAGE, GM_MAP_SHARED, &b), 0);
	assert_ptr_not_equal(gm_mapping_host(a), gm_mapping_host(b));
	/* the same pages at different guest addresses in two views */
	sa = spec(0x10000, 4 * PAGE, a, 0, 0);
	sb = spec(0x100000000ull, 2 * PAGE, b, 2 * PAGE, 0);
	assert_int_equal(gm_memory_new(&sa, 1, &ma), 0);
	expect_view_ok(ma);
	assert_int_equal(gm_memory_new(&sb, 1, &mb), 0);
	expect_view_ok(mb);
	fill_buf(in, sizeof(in), 71);
	assert_int_equal(gm_write(ma, 0x10000 + 3 * PAGE - 32, in, 64), 0);
	assert_int_equal(gm_read(mb, 0x100000000ull + PAGE - 32, out, 64), 0);
	assert_memory_equal(in, out, 64);
	assert_int_equal(gm_write_u64(mb, 0x100000000ull + 8, 0xfeedfacecafebeefull), 0);
	assert_int_equal(gm_read_u64(ma, 0x10000 + 2 * PAGE + 8, &v), 0);
	assert_int_equal(v, 0xfeedfacecafebeefull);
	/* and through a plain mmap of the fd, as another process would */
	raw = mmap(NULL, 4 * PAGE, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(raw != MAP_FAILED);
	assert_memory_equal(raw + 3 * PAGE - 32, in, 64);
	assert_int_equal(munmap(raw, 4 * PAGE), 0);
	gm_memory_put(ma);
	gm_memory_put(mb);
	gm_mapping_put(a);
	gm_mapping_put(b);
}

int memory_construct_tests(void)
{
	const struct CMUnitTest memory_construct[] = {
	    cmocka_unit_test(new_rejects_zero_sized_region),
	    cmocka_unit_test(new_rejects_overlapping_regions),
	    cmocka_unit_test(new_rejects_overlap_among_many_unsorted),
	    cmocka_unit_test(new_accepts_touching_regions),
	    cmocka_unit_test(new_rejects_region_wrapping_past_2_64),
	    cmocka_unit_test(new_accepts_region_ending_at_uint64_max),
	    cmocka_unit_test(new_rejects_window_outside_mapping),
	    cmocka_unit_test(new_rejects_window_larger_than_mapping_on_64bit),
	    cmocka_unit_test(new_accepts_window_ending_at_mapping_end),
	    cmocka_unit_test(new_rejects_null_pointers),
	    cmocka_unit_test(new_rejects_unknown_region_flags),
	    cmocka_unit_test(new_rejects_size_not_fitting_size_t),
	    cmocka_unit_test(new_rejects_dirty_window_beyond_bitmap),
	    cmocka_unit_test(new_anon_rejects_bad_ranges),
	    cmocka_unit_test(new_anon_rejects_4gib_range_on_32bit),
	    cmocka_unit_test(new_sorts_unsorted_regions),
	    cmocka_unit_test(view_keeps_its_mappings_alive),
	    cmocka_unit_test(get_returns_the_view_and_put_ignores_null),
	    cmocka_unit_test(empty_view_faults_everywhere),
	    cmocka_unit_test(region_by_index_reports_its_spec),
	    cmocka_unit_test(find_reports_the_region_holding_an_address),
	    cmocka_unit_test(total_size_and_last_addr),
	    cmocka_unit_test(last_addr_rejects_null_out),
	    cmocka_unit_test(memfd_region_is_seen_through_second_mapping),
	};

	return cmocka_run_group_tests(memory_construct, NULL, NULL);
}
