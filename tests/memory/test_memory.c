/* SPDX-License-Identifier: MIT */
/*
 * tests/memory/test_memory.c - the memory layer: building views and the data path.
 *
 * Black-box tests written from the contract in include/guestmem/memory.h
 * (and the inline fast path of static/memory-inline.h), not from the
 * implementation: every expected errno below is the one the header
 * promises. Views are built from the test's own anonymous mappings, each
 * with a spare page after its window so that no two regions are ever
 * contiguous on the host by accident; the test then knows the host address
 * of every guest byte and checks placement there, independently of the
 * library's own lookup. Every view a test builds must also pass the
 * layer's own invariant check (gm__memory_invariants_ok()).
 *
 * The default include of <guestmem/memory.h> turns the fixed-width
 * accessors, the atomic loads and stores and gm_host_ptr() into the inline
 * fast path; writing the name in parentheses, `(gm_read_u64)(...)`, calls
 * the exported function instead. Both are exercised, and the last tests check they agree.
 *
 * One program, one group per file: this file holds the shared helpers
 * (memory-test.h) and main(); test_memory_construct.c, _datapath.c,
 * _fixed.c, _io.c, _dirty.c and _fastpath.c hold the cases.
 */
#include "memory-test.h"

#include "memory/memory-internal.h"

/* ------------------------------------------------------------------------ */
/* A layout the test controls: one anonymous mapping per region.           */

/* A byte value that depends on the address, so misplaced bytes show. */
unsigned char pat(gm_gpa_t gpa)
{
	return (unsigned char)((gpa * 0x9e3779b1u) >> 13 ^ gpa ^ 0x5a);
}

struct gm_mapping *map_anon(size_t size)
{
	struct gm_mapping *mp = NULL;

	assert_int_equal(gm_mapping_new_anon(size, 0, &mp), 0);
	assert_non_null(mp);
	assert_non_null(gm_mapping_host(mp));
	return mp;
}

struct gm_region_spec spec(gm_gpa_t gpa, uint64_t size, struct gm_mapping *mp, size_t off,
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
void world_build_full(struct world *w, const struct gm_range *r, const unsigned *flags,
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
	expect_view_ok(w->m);
}

void world_build(struct world *w, const struct gm_range *r, size_t n)
{
	world_build_full(w, r, NULL, NULL, NULL, n);
}

void world_free(struct world *w)
{
	size_t i;

	gm_memory_put(w->m);
	for (i = 0; i < w->n; i++)
		gm_mapping_put(w->mp[i]);
	memset(w, 0, sizeof(*w));
}

/* Host address of guest byte @gpa, found by the test itself. */
unsigned char *hb(const struct world *w, gm_gpa_t gpa)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		if (gpa >= w->gpa[i] && gpa - w->gpa[i] < w->size[i])
			return w->host[i] + (size_t)(gpa - w->gpa[i]);
	fail_msg("test bug: gpa 0x%llx is not in the world", (unsigned long long)gpa);
	return NULL;
}

/* Assert guest bytes [gpa, gpa + len) still hold pat(). */
void expect_pat(const struct world *w, gm_gpa_t gpa, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (*hb(w, gpa + i) != pat(gpa + i))
			fail_msg("guest byte 0x%llx changed: 0x%02x, expected 0x%02x",
				 (unsigned long long)(gpa + i), *hb(w, gpa + i), pat(gpa + i));
}

/* Assert guest bytes [gpa, gpa + len) equal @buf, checked through host memory. */
void expect_bytes(const struct world *w, gm_gpa_t gpa, const void *buf, size_t len)
{
	const unsigned char *b = buf;
	size_t i;

	for (i = 0; i < len; i++)
		if (*hb(w, gpa + i) != b[i])
			fail_msg("guest byte 0x%llx is 0x%02x, expected 0x%02x",
				 (unsigned long long)(gpa + i), *hb(w, gpa + i), b[i]);
}

void fill_buf(unsigned char *b, size_t len, unsigned seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		b[i] = (unsigned char)(seed + i * 7 + (i >> 8));
}

/* Try to build a view from @s; put it again on success. */
int try_new(const struct gm_region_spec *s, size_t n)
{
	struct gm_memory *m = NULL;
	int rc = gm_memory_new(s, n, &m);

	if (rc == 0) {
		assert_non_null(m);
		expect_view_ok(m);
		gm_memory_put(m);
	}
	return rc;
}

int try_new_anon(const struct gm_range *r, size_t n)
{
	struct gm_memory *m = NULL;
	int rc = gm_memory_new_anon(r, n, &m);

	if (rc == 0) {
		assert_non_null(m);
		expect_view_ok(m);
		gm_memory_put(m);
	}
	return rc;
}

void expect_view_ok(const struct gm_memory *m)
{
	assert_true(gm__memory_invariants_ok(m));
}

void make_pipe(int p[2], int nonblock_read)
{
	assert_int_equal(pipe(p), 0);
	if (nonblock_read)
		assert_int_equal(fcntl(p[0], F_SETFL, O_NONBLOCK), 0);
}

void close_pipe(int p[2])
{
	close(p[0]);
	close(p[1]);
}

/* A fresh regular file holding @len bytes of fill_buf(seed), unlinked already. */
int tmp_file(size_t len, unsigned seed)
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

/* RAM [0x10000, 0x12000), hole, RAM [0x14000, 0x16000). */
const struct gm_range hole_layout[2] = {{0x10000, 2 * PAGE}, {0x14000, 2 * PAGE}};

/* Two one-page regions, adjacent in the guest, separate on the host. */
const struct gm_range two_adjacent[2] = {{0x10000, PAGE}, {0x11000, PAGE}};

int main(void)
{
	int failed = 0;

	failed += memory_construct_tests();
	failed += memory_datapath_tests();
	failed += memory_fixed_tests();
	failed += memory_io_tests();
	failed += memory_dirty_tests();
	failed += memory_fastpath_tests();

	return failed;
}
