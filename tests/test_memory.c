/*
 * tests/test_memory.c - the memory layer: building views and the data path.
 *
 * Black-box tests written from the contract in include/guestmem/memory.h
 * (and the inline fast path of static/memory-inline.h), not from the
 * implementation: every expected errno below is the one the header
 * promises. Views are built from the test's own anonymous mappings, each
 * with a spare page after its window so that no two regions are ever
 * contiguous on the host by accident; the test then knows the host address
 * of every guest byte and checks placement there, independently of the
 * library's own lookup.
 *
 * The default include of <guestmem/memory.h> turns the fixed-width
 * accessors, the atomic loads and stores and gm_host_ptr() into the inline
 * fast path; writing the name in parentheses, `(gm_read_u64)(...)`, calls
 * the exported function instead. Both are exercised, and the last tests check they agree.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cmocka.h>

#include <guestmem/guestmem.h>

#define PAGE	 ((size_t)4096)
#define MAXR	 80
#define TOP_PAGE (UINT64_MAX - 4095) /* gpa of the last page of the 64-bit space */

/* ------------------------------------------------------------------------ */
/* A layout the test controls: one anonymous mapping per region.           */

struct world {
	struct gm_memory *m;
	size_t n;
	struct gm_mapping *mp[MAXR];
	gm_gpa_t gpa[MAXR];
	uint64_t size[MAXR];
	unsigned char *host[MAXR]; /* host address of gpa[i] */
};

/* A byte value that depends on the address, so misplaced bytes show. */
static unsigned char pat(gm_gpa_t gpa)
{
	return (unsigned char)((gpa * 0x9e3779b1u) >> 13 ^ gpa ^ 0x5a);
}

static struct gm_mapping *map_anon(size_t size)
{
	struct gm_mapping *mp = NULL;

	assert_int_equal(gm_mapping_new_anon(size, 0, &mp), 0);
	assert_non_null(mp);
	assert_non_null(gm_mapping_host(mp));
	return mp;
}

static struct gm_region_spec spec(gm_gpa_t gpa, uint64_t size, struct gm_mapping *mp, size_t off,
				  unsigned flags)
{
	struct gm_region_spec s;

	memset(&s, 0, sizeof(s));
	s.gpa = gpa;
	s.size = size;
	s.mapping = mp;
	s.offset = off;
	s.flags = flags;
	return s;
}

/*
 * Build @n regions at @r, region i with @flags[i] (@flags may be NULL) and
 * @dirty[i]/@doff[i] (may be NULL). Each region's mapping has one spare page
 * after the window. Every guest byte is set to pat(gpa).
 */
static void world_build_full(struct world *w, const struct gm_range *r, const unsigned *flags,
			     struct gm_dirty *const *dirty, const uint64_t *doff, size_t n)
{
	struct gm_region_spec s[MAXR];
	size_t i, j;

	assert_true(n <= MAXR);
	memset(w, 0, sizeof(*w));
	w->n = n;
	for (i = 0; i < n; i++) {
		size_t len = (size_t)r[i].size;

		assert_true(r[i].size == len);
		w->mp[i] = map_anon(len + PAGE);
		w->gpa[i] = r[i].gpa;
		w->size[i] = r[i].size;
		w->host[i] = gm_mapping_host(w->mp[i]);
		for (j = 0; j < len; j++)
			w->host[i][j] = pat(r[i].gpa + j);
		s[i] = spec(r[i].gpa, r[i].size, w->mp[i], 0, flags ? flags[i] : 0);
		if (dirty) {
			s[i].dirty = dirty[i];
			s[i].dirty_offset = doff ? doff[i] : 0;
		}
	}
	assert_int_equal(gm_memory_new(n ? s : NULL, n, &w->m), 0);
	assert_non_null(w->m);
}

static void world_build(struct world *w, const struct gm_range *r, size_t n)
{
	world_build_full(w, r, NULL, NULL, NULL, n);
}

static void world_free(struct world *w)
{
	size_t i;

	gm_memory_put(w->m);
	for (i = 0; i < w->n; i++)
		gm_mapping_put(w->mp[i]);
	memset(w, 0, sizeof(*w));
}

/* Host address of guest byte @gpa, found by the test itself. */
static unsigned char *hb(const struct world *w, gm_gpa_t gpa)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		if (gpa >= w->gpa[i] && gpa - w->gpa[i] < w->size[i])
			return w->host[i] + (size_t)(gpa - w->gpa[i]);
	fail_msg("test bug: gpa 0x%llx is not in the world", (unsigned long long)gpa);
	return NULL;
}

/* Assert guest bytes [gpa, gpa + len) still hold pat(). */
static void expect_pat(const struct world *w, gm_gpa_t gpa, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (*hb(w, gpa + i) != pat(gpa + i))
			fail_msg("guest byte 0x%llx changed: 0x%02x, expected 0x%02x",
				 (unsigned long long)(gpa + i), *hb(w, gpa + i), pat(gpa + i));
}

/* Assert guest bytes [gpa, gpa + len) equal @buf, checked through host memory. */
static void expect_bytes(const struct world *w, gm_gpa_t gpa, const void *buf, size_t len)
{
	const unsigned char *b = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (*hb(w, gpa + i) != b[i])
			fail_msg("guest byte 0x%llx is 0x%02x, expected 0x%02x",
				 (unsigned long long)(gpa + i), *hb(w, gpa + i), b[i]);
}

static void fill_buf(unsigned char *b, size_t len, unsigned seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		b[i] = (unsigned char)(seed + i * 7 + (i >> 8));
}

/* Try to build a view from @s; put it again on success. */
static int try_new(const struct gm_region_spec *s, size_t n)
{
	struct gm_memory *m = NULL;
	int rc = gm_memory_new(s, n, &m);

	if (rc == 0) {
		assert_non_null(m);
		gm_memory_put(m);
	}
	return rc;
}

static int try_new_anon(const struct gm_range *r, size_t n)
{
	struct gm_memory *m = NULL;
	int rc = gm_memory_new_anon(r, n, &m);

	if (rc == 0) {
		assert_non_null(m);
		gm_memory_put(m);
	}
	return rc;
}

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
	struct gm_region_info info;
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
	struct gm_region_info info;
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
	struct gm_region_info info;
	struct gm_memory *m = NULL;
	unsigned char *host = gm_mapping_host(mp);

	(void)state;
	assert_int_equal(gm_dirty_new(8 * PAGE, &d), 0);
	s[0] = spec(0x200000, PAGE, mp, 3 * PAGE, GM_REGION_READONLY | GM_REGION_ROM);
	s[1] = spec(0x100000, 2 * PAGE, mp, PAGE, GM_REGION_NOEXEC);
	s[1].dirty = d;
	s[1].dirty_offset = 4 * PAGE;
	assert_int_equal(gm_memory_new(s, 2, &m), 0);

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
	struct gm_region_info info;
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

/* RAM [0x10000, 0x12000), hole, RAM [0x14000, 0x16000). */
static const struct gm_range hole_layout[2] = {{0x10000, 2 * PAGE}, {0x14000, 2 * PAGE}};

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
	assert_int_equal(gm_memory_last_addr(empty, NULL), -EINVAL);
	gm_memory_put(empty);
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
/* Fixed-width and little-endian accessors                                  */

static const struct gm_range two_adjacent[2] = {{0x10000, PAGE}, {0x11000, PAGE}};

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

/* ------------------------------------------------------------------------ */
/* Translation: host pointers and iovecs                                    */

static void host_ptr_inside_one_region(void **state)
{
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	assert_ptr_equal(gm_host_ptr(w.m, 0x10000, 2 * PAGE), w.host[0]);
	assert_ptr_equal((gm_host_ptr)(w.m, 0x10000, 2 * PAGE), w.host[0]);
	assert_ptr_equal(gm_host_ptr(w.m, 0x10123, 77), w.host[0] + 0x123);
	assert_ptr_equal(gm_host_ptr(w.m, 0x12000 - 1, 1), w.host[0] + 2 * PAGE - 1);
	assert_ptr_equal((gm_host_ptr)(w.m, 0x12000 - 1, 1), w.host[0] + 2 * PAGE - 1);
	/* length 0: the byte's address inside RAM, NULL outside */
	assert_ptr_equal(gm_host_ptr(w.m, 0x14010, 0), w.host[1] + 0x10);
	assert_ptr_equal((gm_host_ptr)(w.m, 0x14010, 0), w.host[1] + 0x10);
	assert_null(gm_host_ptr(w.m, 0x13000, 0));
	assert_null((gm_host_ptr)(w.m, 0x13000, 0));
	assert_ptr_equal(gm_host_ptr_write(w.m, 0x14010, 10), w.host[1] + 0x10);
	/* too long, or outside */
	assert_null(gm_host_ptr(w.m, 0x10000, 2 * PAGE + 1));
	assert_null((gm_host_ptr)(w.m, 0x10000, 2 * PAGE + 1));
	assert_null(gm_host_ptr(w.m, 0x12000, 1));
	assert_null(gm_host_ptr(w.m, 0x10000, SIZE_MAX));
	assert_null(gm_host_ptr_write(w.m, 0x12000 - 1, 2));
	world_free(&w);
}

static void host_ptr_crossing_regions_is_null(void **state)
{
	struct gm_mapping *mp = map_anon(2 * PAGE);
	/* two regions adjacent in the guest and on the host: still two regions */
	struct gm_region_spec s[2] = {spec(0x10000, PAGE, mp, 0, 0),
				      spec(0x11000, PAGE, mp, PAGE, 0)};
	struct gm_memory *m = NULL;
	struct world w;

	(void)state;
	assert_int_equal(gm_memory_new(s, 2, &m), 0);
	assert_null(gm_host_ptr(m, 0x10fff, 2));
	assert_null((gm_host_ptr)(m, 0x10fff, 2));
	assert_null(gm_host_ptr_write(m, 0x10fff, 2));
	assert_non_null(gm_host_ptr(m, 0x10fff, 1));
	gm_memory_put(m);
	gm_mapping_put(mp);

	world_build(&w, two_adjacent, 2);
	assert_null(gm_host_ptr(w.m, 0x10000, 2 * PAGE));
	assert_null((gm_host_ptr)(w.m, 0x10000, 2 * PAGE));
	world_free(&w);
}

static void to_iovec_gives_one_piece_per_separate_mapping(void **state)
{
	static const struct gm_range r[3] = {{0x10000, PAGE}, {0x11000, 16}, {0x11010, PAGE}};
	struct iovec iov[8];
	size_t n = 0;
	struct world w;

	(void)state;
	world_build(&w, r, 3);
	assert_int_equal(gm_to_iovec(w.m, 0x10ff0, 0x30, iov, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_ptr_equal(iov[0].iov_base, w.host[0] + PAGE - 16);
	assert_int_equal(iov[0].iov_len, 16);
	assert_ptr_equal(iov[1].iov_base, w.host[1]);
	assert_int_equal(iov[1].iov_len, 16);
	assert_ptr_equal(iov[2].iov_base, w.host[2]);
	assert_int_equal(iov[2].iov_len, 16);
	/* inside one region: one piece */
	assert_int_equal(gm_to_iovec(w.m, 0x10100, 0x100, iov, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_ptr_equal(iov[0].iov_base, w.host[0] + 0x100);
	assert_int_equal(iov[0].iov_len, 0x100);
	/* the write variant on RAM gives the same pieces */
	assert_int_equal(gm_to_iovec_write(w.m, 0x10ff0, 0x30, iov, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_ptr_equal(iov[2].iov_base, w.host[2]);
	world_free(&w);
}

static void to_iovec_merges_host_contiguous_neighbours(void **state)
{
	/* a has a spare fifth page, so b can never start right after a[3] */
	struct gm_mapping *a = map_anon(5 * PAGE), *b = map_anon(2 * PAGE);
	unsigned char *ha = gm_mapping_host(a), *hbb = gm_mapping_host(b);
	struct gm_region_spec s[4] = {
	    spec(0x10000, PAGE, a, 0, 0),	 /* a[0]        */
	    spec(0x11000, PAGE, a, PAGE, 0),	 /* a[1]: merges */
	    spec(0x12000, PAGE, a, 3 * PAGE, 0), /* a[3]: gap on the host */
	    spec(0x13000, PAGE, b, 0, 0),	 /* b: another mapping */
	};
	struct gm_memory *m = NULL;
	struct iovec iov[8];
	size_t n = 0;

	(void)state;
	assert_int_equal(gm_memory_new(s, 4, &m), 0);
	assert_int_equal(gm_to_iovec(m, 0x10800, 4 * PAGE - 0x1000, iov, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_ptr_equal(iov[0].iov_base, ha + 0x800);
	assert_int_equal(iov[0].iov_len, 2 * PAGE - 0x800);
	assert_ptr_equal(iov[1].iov_base, ha + 3 * PAGE);
	assert_int_equal(iov[1].iov_len, PAGE);
	assert_ptr_equal(iov[2].iov_base, hbb);
	assert_int_equal(iov[2].iov_len, 0x800);
	gm_memory_put(m);
	gm_mapping_put(a);
	gm_mapping_put(b);
}

static void to_iovec_keeps_same_mapping_out_of_order_apart(void **state)
{
	struct gm_mapping *a = map_anon(2 * PAGE);
	unsigned char *ha = gm_mapping_host(a);
	/* guest order is the reverse of host order */
	struct gm_region_spec s[2] = {spec(0x10000, PAGE, a, PAGE, 0),
				      spec(0x11000, PAGE, a, 0, 0)};
	struct gm_memory *m = NULL;
	struct iovec iov[4];
	size_t n = 0;

	(void)state;
	assert_int_equal(gm_memory_new(s, 2, &m), 0);
	assert_int_equal(gm_to_iovec(m, 0x10000, 2 * PAGE, iov, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_ptr_equal(iov[0].iov_base, ha + PAGE);
	assert_int_equal(iov[0].iov_len, PAGE);
	assert_ptr_equal(iov[1].iov_base, ha);
	assert_int_equal(iov[1].iov_len, PAGE);
	gm_memory_put(m);
	gm_mapping_put(a);
}

static void to_iovec_enobufs_reports_pieces_needed(void **state)
{
	struct gm_range r[10];
	struct iovec iov[4];
	size_t n = 0, i;
	struct world w;

	(void)state;
	for (i = 0; i < 10; i++)
		r[i] = (struct gm_range){0x100000 + i * PAGE, PAGE};
	world_build(&w, r, 10);
	memset(iov, 0, sizeof(iov));
	assert_int_equal(gm_to_iovec(w.m, 0x100000 + 10, 10 * PAGE - 20, iov, 4, &n), -ENOBUFS);
	assert_int_equal(n, 10);
	/* the first four are filled */
	assert_ptr_equal(iov[0].iov_base, w.host[0] + 10);
	assert_int_equal(iov[0].iov_len, PAGE - 10);
	for (i = 1; i < 4; i++) {
		assert_ptr_equal(iov[i].iov_base, w.host[i]);
		assert_int_equal(iov[i].iov_len, PAGE);
	}
	{
		struct iovec nine[9];

		assert_int_equal(gm_to_iovec_write(w.m, 0x100000, 10 * PAGE, nine, 9, &n),
				 -ENOBUFS);
		assert_int_equal(n, 10);
		assert_ptr_equal(nine[8].iov_base, w.host[8]);
	}
	assert_int_equal(gm_to_iovec(w.m, 0x100000, 10 * PAGE, iov, 0, &n), -ENOBUFS);
	assert_int_equal(n, 10);
	/* exactly enough */
	{
		struct iovec big[10];

		assert_int_equal(gm_to_iovec(w.m, 0x100000, 10 * PAGE, big, 10, &n), 0);
		assert_int_equal(n, 10);
		assert_ptr_equal(big[9].iov_base, w.host[9]);
	}
	world_free(&w);
}

static void to_iovec_faults_and_rejects_null(void **state)
{
	struct iovec iov[4];
	size_t n = 99;
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	assert_int_equal(gm_to_iovec(w.m, 0x12000 - 1, 2, iov, 4, &n), -EFAULT);
	assert_int_equal(gm_to_iovec(w.m, 0x10000, 6 * PAGE, iov, 4, &n), -EFAULT);
	assert_int_equal(gm_to_iovec_write(w.m, 0x13000, 1, iov, 4, &n), -EFAULT);
	assert_int_equal(gm_to_iovec(w.m, 0x10000, 1, iov, 4, NULL), -EINVAL);
	assert_int_equal(gm_to_iovec(w.m, 0x10000, 1, NULL, 4, &n), -EINVAL);
	n = 99;
	assert_int_equal(gm_to_iovec(w.m, 0x10000, 0, iov, 4, &n), 0);
	assert_int_equal(n, 0);
	world_free(&w);
}

/* ------------------------------------------------------------------------ */
/* fd I/O                                                                   */

static void make_pipe(int p[2], int nonblock_read)
{
	assert_int_equal(pipe(p), 0);
	if (nonblock_read)
		assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
}

static void close_pipe(int p[2])
{
	close(p[0]);
	close(p[1]);
}

/* A fresh regular file holding @len bytes of fill_buf(seed), unlinked already. */
static int tmp_file(size_t len, unsigned seed)
{
	char name[] = "/tmp/gm-test-memory-XXXXXX";
	unsigned char *b = malloc(len ? len : 1);
	int fd = mkstemp(name);

	assert_true(fd >= 0);
	assert_int_equal(unlink(name), 0);
	assert_non_null(b);
	fill_buf(b, len, seed);
	assert_int_equal(pwrite(fd, b, len, 0), (ssize_t)len);
	free(b);
	return fd;
}

/* Three separate mappings, adjacent in the guest, then a hole. */
static const struct gm_range fd_layout[3] = {{0x10000, PAGE}, {0x11000, 100}, {0x11064, PAGE}};

static void write_to_pipe_crossing_regions(void **state)
{
	unsigned char back[PAGE + 300];
	size_t done = 0, i;
	struct world w;
	int p[2];

	(void)state;
	world_build(&w, fd_layout, 3);
	make_pipe(p, 1);
	assert_int_equal(gm_write_to_fd(w.m, 0x11000 - 200, p[1], -1, PAGE + 300, &done), 0);
	assert_int_equal(done, PAGE + 300);
	assert_int_equal(read(p[0], back, sizeof(back)), (ssize_t)sizeof(back));
	for (i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], pat(0x11000 - 200 + i));
	assert_int_equal(read(p[0], back, 1), -1); /* nothing more */
	close_pipe(p);
	world_free(&w);
}

static void read_from_pipe_crossing_regions(void **state)
{
	unsigned char data[PAGE + 300];
	size_t done = 0;
	struct world w;
	int p[2];

	(void)state;
	world_build(&w, fd_layout, 3);
	make_pipe(p, 0);
	fill_buf(data, sizeof(data), 31);
	assert_int_equal(write(p[1], data, sizeof(data)), (ssize_t)sizeof(data));
	assert_int_equal(gm_read_from_fd(w.m, 0x11000 - 200, p[0], -1, sizeof(data), &done), 0);
	assert_int_equal(done, sizeof(data));
	expect_bytes(&w, 0x11000 - 200, data, sizeof(data));
	expect_pat(&w, 0x10000, PAGE - 200);
	expect_pat(&w, 0x11000 - 200 + sizeof(data),
		   0x11064 + PAGE - (0x11000 - 200 + sizeof(data)));
	close_pipe(p);
	world_free(&w);
}

static void read_from_pipe_eof_midway(void **state)
{
	unsigned char data[150];
	size_t done = 0;
	struct world w;
	int p[2];

	(void)state;
	world_build(&w, fd_layout, 3);
	make_pipe(p, 0);
	fill_buf(data, sizeof(data), 37);
	assert_int_equal(write(p[1], data, sizeof(data)), (ssize_t)sizeof(data));
	close(p[1]);
	/* crosses two boundaries; the pipe ends after 150 of 400 bytes */
	assert_int_equal(gm_read_from_fd(w.m, 0x11000 - 50, p[0], -1, 400, &done), 0);
	assert_int_equal(done, 150);
	expect_bytes(&w, 0x11000 - 50, data, 150);
	expect_pat(&w, 0x11000 + 100, 250);
	close(p[0]);
	world_free(&w);
}

static void read_from_nonblocking_pipe_reports_eagain_and_done(void **state)
{
	unsigned char data[10];
	size_t done = 0;
	struct world w;
	int p[2];

	(void)state;
	world_build(&w, fd_layout, 3);
	make_pipe(p, 1);
	fill_buf(data, sizeof(data), 41);
	assert_int_equal(write(p[1], data, sizeof(data)), (ssize_t)sizeof(data));
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, p[0], -1, 100, &done), -EAGAIN);
	assert_int_equal(done, 10);
	expect_bytes(&w, 0x10000, data, 10);
	expect_pat(&w, 0x1000a, 90);
	close_pipe(p);
	world_free(&w);
}

static void read_from_file_at_offset_keeps_position(void **state)
{
	unsigned char data[3 * PAGE];
	size_t done = 0;
	struct world w;
	int fd;

	(void)state;
	world_build(&w, fd_layout, 3);
	fd = tmp_file(sizeof(data), 43);
	fill_buf(data, sizeof(data), 43);
	assert_int_equal(lseek(fd, 17, SEEK_SET), 17);
	assert_int_equal(gm_read_from_fd(w.m, 0x11000 - 300, fd, 1000, 600, &done), 0);
	assert_int_equal(done, 600);
	expect_bytes(&w, 0x11000 - 300, data + 1000, 600);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 17);
	close(fd);
	world_free(&w);
}

static void read_from_file_eof_midway(void **state)
{
	unsigned char data[300];
	size_t done = 0;
	struct world w;
	int fd;

	(void)state;
	world_build(&w, fd_layout, 3);
	fd = tmp_file(sizeof(data), 47);
	fill_buf(data, sizeof(data), 47);
	assert_int_equal(gm_read_from_fd(w.m, 0x11000 - 40, fd, 200, 200, &done), 0);
	assert_int_equal(done, 100);
	expect_bytes(&w, 0x11000 - 40, data + 200, 100);
	expect_pat(&w, 0x11000 + 60, 100);
	/* starting at EOF reads nothing and is not an error */
	done = 99;
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, fd, 300, 10, &done), 0);
	assert_int_equal(done, 0);
	expect_pat(&w, 0x10000, 10);
	close(fd);
	world_free(&w);
}

static void read_from_fd_at_current_position_advances_it(void **state)
{
	unsigned char data[200];
	size_t done = 0;
	struct world w;
	int fd;

	(void)state;
	world_build(&w, fd_layout, 3);
	fd = tmp_file(sizeof(data), 53);
	fill_buf(data, sizeof(data), 53);
	assert_int_equal(lseek(fd, 20, SEEK_SET), 20);
	assert_int_equal(gm_read_from_fd(w.m, 0x11000 - 5, fd, -1, 50, &done), 0);
	assert_int_equal(done, 50);
	expect_bytes(&w, 0x11000 - 5, data + 20, 50);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 70);
	close(fd);
	world_free(&w);
}

static void write_to_file_at_offset_across_64_regions(void **state)
{
	struct gm_range r[65];
	const size_t len = 64 * PAGE + 1; /* last byte of region 0 to end of region 64 */
	unsigned char *back = malloc(len);
	size_t done = 0, i;
	struct world w;
	int fd;

	(void)state;
	assert_non_null(back);
	for (i = 0; i < 65; i++)
		r[i] = (struct gm_range){0x200000 + i * PAGE, PAGE};
	world_build(&w, r, 65);
	fd = tmp_file(0, 0);
	assert_int_equal(gm_write_to_fd(w.m, 0x200000 + PAGE - 1, fd, 100, len, &done), 0);
	assert_int_equal(done, len);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
	assert_int_equal(pread(fd, back, len, 100), (ssize_t)len);
	for (i = 0; i < len; i++)
		if (back[i] != pat(0x200000 + PAGE - 1 + i))
			fail_msg("file byte %zu differs", i);
	close(fd);
	free(back);
	world_free(&w);
}

static void fd_io_faults_before_moving_any_byte(void **state)
{
	unsigned char data[64], back[64];
	size_t done = 99;
	struct world w;
	int p[2], fd;

	(void)state;
	world_build(&w, hole_layout, 2);
	make_pipe(p, 1);
	fill_buf(data, sizeof(data), 59);
	assert_int_equal(write(p[1], data, sizeof(data)), (ssize_t)sizeof(data));
	/* the range runs into the hole: nothing may be read from the pipe */
	assert_int_equal(gm_read_from_fd(w.m, 0x12000 - 32, p[0], -1, 64, &done), -EFAULT);
	assert_int_equal(done, 0);
	expect_pat(&w, 0x10000, 2 * PAGE);
	assert_int_equal(read(p[0], back, sizeof(back)), (ssize_t)sizeof(back));
	assert_memory_equal(data, back, sizeof(back));
	/* and nothing written to it */
	done = 99;
	assert_int_equal(gm_write_to_fd(w.m, 0x12000 - 32, p[1], -1, 64, &done), -EFAULT);
	assert_int_equal(done, 0);
	assert_int_equal(read(p[0], back, 1), -1);
	close_pipe(p);
	/* same with a file and an offset */
	fd = tmp_file(256, 61);
	done = 99;
	assert_int_equal(gm_read_from_fd(w.m, 0x13000, fd, 0, 16, &done), -EFAULT);
	assert_int_equal(done, 0);
	done = 99;
	assert_int_equal(gm_write_to_fd(w.m, 0x16000 - 8, fd, 0, 16, &done), -EFAULT);
	assert_int_equal(done, 0);
	assert_int_equal(pread(fd, back, 16, 0), 16);
	fill_buf(data, 16, 61);
	assert_memory_equal(data, back, 16);
	close(fd);
	world_free(&w);
}

static void fd_io_rejects_bad_arguments(void **state)
{
	size_t done = 0;
	struct world w;
	int fd, closed;

	(void)state;
	world_build(&w, hole_layout, 2);
	fd = tmp_file(64, 67);
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, fd, 0, 16, NULL), -EINVAL);
	assert_int_equal(gm_write_to_fd(w.m, 0x10000, fd, 0, 16, NULL), -EINVAL);
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, -1, 0, 16, &done), -EINVAL);
	assert_int_equal(gm_write_to_fd(w.m, 0x10000, -5, -1, 16, &done), -EINVAL);
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, fd, -2, 16, &done), -EINVAL);
	assert_int_equal(gm_write_to_fd(w.m, 0x10000, fd, INT64_MIN, 16, &done), -EINVAL);
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, fd, INT64_MAX - 4, 16, &done), -EOVERFLOW);
	assert_int_equal(gm_write_to_fd(w.m, 0x10000, fd, INT64_MAX, 1, &done), -EOVERFLOW);
	expect_pat(&w, 0x10000, 16);
	/* an errno from the system call comes back negated */
	closed = dup(fd);
	assert_true(closed >= 0);
	close(closed);
	done = 99;
	assert_int_equal(gm_write_to_fd(w.m, 0x10000, closed, -1, 16, &done), -EBADF);
	assert_int_equal(done, 0);
	close(fd);
	world_free(&w);
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
	assert_int_equal(gm_memory_new(&sb, 1, &mb), 0);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
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
	    cmocka_unit_test(fill_sets_bytes_across_regions),
	    cmocka_unit_test(fill_touching_hole_faults_and_changes_nothing),
	    cmocka_unit_test(copy_overlapping_forward_within_region),
	    cmocka_unit_test(copy_overlapping_backward_within_region),
	    cmocka_unit_test(copy_overlapping_across_regions_both_directions),
	    cmocka_unit_test(copy_touching_hole_faults_and_changes_nothing),
	    cmocka_unit_test(host_ptr_inside_one_region),
	    cmocka_unit_test(host_ptr_crossing_regions_is_null),
	    cmocka_unit_test(to_iovec_gives_one_piece_per_separate_mapping),
	    cmocka_unit_test(to_iovec_merges_host_contiguous_neighbours),
	    cmocka_unit_test(to_iovec_keeps_same_mapping_out_of_order_apart),
	    cmocka_unit_test(to_iovec_enobufs_reports_pieces_needed),
	    cmocka_unit_test(to_iovec_faults_and_rejects_null),
	    cmocka_unit_test(write_to_pipe_crossing_regions),
	    cmocka_unit_test(read_from_pipe_crossing_regions),
	    cmocka_unit_test(read_from_pipe_eof_midway),
	    cmocka_unit_test(read_from_nonblocking_pipe_reports_eagain_and_done),
	    cmocka_unit_test(read_from_file_at_offset_keeps_position),
	    cmocka_unit_test(read_from_file_eof_midway),
	    cmocka_unit_test(read_from_fd_at_current_position_advances_it),
	    cmocka_unit_test(write_to_file_at_offset_across_64_regions),
	    cmocka_unit_test(fd_io_faults_before_moving_any_byte),
	    cmocka_unit_test(fd_io_rejects_bad_arguments),
	    cmocka_unit_test(memfd_region_is_seen_through_second_mapping),
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
	    cmocka_unit_test(inline_and_exported_reads_agree),
	    cmocka_unit_test(inline_and_exported_writes_agree),
	    cmocka_unit_test(inline_and_exported_atomics_agree),
	    cmocka_unit_test(inline_and_exported_host_ptr_agree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
