/* SPDX-License-Identifier: MIT */
/*
 * test_dirty_space.c - dirty tracking seen through views and spaces, beyond
 * the bitmap itself (test_dirty.c): writes that cross region boundaries
 * mark the pages of both regions, and a region's bits survive every layout
 * change of the space (hot-plug, growth, move, re-protection, old views).
 */
#include <guestmem/guestmem.h>
#include <guestmem/space.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#define RSIZE 0x10000ull /* 16 pages per region */

struct two {
	struct gm_mapping *map;
	struct gm_dirty *a, *b;
	struct gm_memory *m;
};

/*
 * Two adjacent regions [0, RSIZE) and [RSIZE, 2 * RSIZE) of one mapping.
 * With @shared, both use one bitmap (b's part at offset RSIZE, as a space
 * does for a RAM window split by protection); else each has its own.
 */
static void two_regions(struct two *t, bool shared)
{
	struct gm_region_spec spec[2];

	memset(t, 0, sizeof(*t));
	memset(spec, 0, sizeof(spec));
	assert_int_equal(gm_mapping_new_anon(2 * RSIZE, 0, &t->map), 0);
	assert_int_equal(gm_dirty_new(shared ? 2 * RSIZE : RSIZE, &t->a), 0);
	t->b = shared ? gm_dirty_get(t->a) : NULL;
	if (!shared)
		assert_int_equal(gm_dirty_new(RSIZE, &t->b), 0);
	gm_dirty_set_enabled(t->a, true);
	gm_dirty_set_enabled(t->b, true);
	spec[0].gpa = 0;
	spec[0].size = RSIZE;
	spec[0].mapping = t->map;
	spec[0].dirty = t->a;
	spec[1].gpa = RSIZE;
	spec[1].size = RSIZE;
	spec[1].mapping = t->map;
	spec[1].offset = RSIZE;
	spec[1].dirty = t->b;
	spec[1].dirty_offset = shared ? RSIZE : 0;
	assert_int_equal(gm_memory_new(spec, 2, &t->m), 0);
}

static void two_free(struct two *t)
{
	gm_memory_put(t->m);
	gm_dirty_put(t->a);
	gm_dirty_put(t->b);
	gm_mapping_put(t->map);
}

static void expect_only_last_of_a_and_first_of_b(struct two *t)
{
	uint64_t w[1];

	assert_int_equal(gm_dirty_count(t->a), 1);
	assert_true(gm_dirty_test(t->a, RSIZE / GM_PAGE_SIZE - 1));
	assert_int_equal(gm_dirty_count(t->b), 1);
	assert_true(gm_dirty_test(t->b, 0));
	assert_int_equal(gm_dirty_collect(t->a, 0, w, 1), 0);
	assert_int_equal(gm_dirty_collect(t->b, 0, w, 1), 0);
}

static void write_across_region_boundary_marks_a_page_of_each(void **state)
{
	static const uint8_t buf[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	struct two t;

	(void)state;
	two_regions(&t, false);
	assert_int_equal(gm_write(t.m, RSIZE - 8, buf, sizeof(buf)), 0);
	expect_only_last_of_a_and_first_of_b(&t);
	assert_int_equal(gm_fill(t.m, RSIZE - 1, 0xaa, 2), 0);
	expect_only_last_of_a_and_first_of_b(&t);
	/* An unaligned u64 straddling the boundary takes the bytewise path. */
	assert_int_equal(gm_write_u64(t.m, RSIZE - 4, 0x1122334455667788ull), 0);
	expect_only_last_of_a_and_first_of_b(&t);
	/* gm_copy marks its destination only. */
	assert_int_equal(gm_copy(t.m, RSIZE - 2, 0, 4), 0);
	expect_only_last_of_a_and_first_of_b(&t);
	/* A failing write marks nothing. */
	assert_int_equal(gm_write(t.m, 2 * RSIZE - 8, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(gm_dirty_count(t.a) + gm_dirty_count(t.b), 0);
	two_free(&t);
}

static void write_across_split_of_one_bitmap_marks_both_pages(void **state)
{
	static const uint8_t buf[16];
	struct two t;

	(void)state;
	two_regions(&t, true);
	assert_int_equal(gm_write(t.m, RSIZE - 8, buf, sizeof(buf)), 0);
	assert_int_equal(gm_dirty_count(t.a), 2);
	assert_true(gm_dirty_test(t.a, RSIZE / GM_PAGE_SIZE - 1));
	assert_true(gm_dirty_test(t.a, RSIZE / GM_PAGE_SIZE));
	two_free(&t);
}

static struct gm_dirty *bitmap_of(struct gm_space *s, struct gm_window *w)
{
	struct gm_window_info info = GM_OPTS(gm_window_info);

	assert_int_equal(gm_space_window_info(s, w, &info), 0);
	assert_non_null(info.dirty);
	return info.dirty;
}

static void bits_survive_hot_plug_growth_move_and_protection(void **state)
{
	struct gm_space *s;
	struct gm_window *a, *b;
	struct gm_dirty *da, *db;
	struct gm_memory *old;
	uint64_t v = 42;

	(void)state;
	assert_int_equal(gm_space_new(GM_SPACE_MEMORY, &s), 0);
	assert_int_equal(gm_space_add_ram(s, 0, RSIZE, 4 * RSIZE, GM_MAP_NORESERVE, &a), 0);
	assert_int_equal(gm_space_dirty_enable(s, true), 0);
	da = bitmap_of(s, a);
	assert_int_equal(gm_space_write(s, 3 * GM_PAGE_SIZE, &v, sizeof(v)), 0);
	assert_int_equal(gm_space_memory_get(s, &old), 0);

	/* Hot-plug another region: a's bit is still there, b has its own bitmap. */
	assert_int_equal(gm_space_add_ram(s, 0x100000, RSIZE, 0, 0, &b), 0);
	db = gm_dirty_get(bitmap_of(s, b));
	assert_ptr_equal(bitmap_of(s, a), da);
	assert_true(gm_dirty_test(da, 3));
	assert_true(gm_dirty_enabled(db));
	assert_int_equal(gm_space_write(s, 0x100000 + GM_PAGE_SIZE, &v, sizeof(v)), 0);
	assert_true(gm_dirty_test(db, 1));
	assert_int_equal(gm_dirty_count(da), 1);

	/* Grow, re-protect, move: same bitmap, same bits. */
	assert_int_equal(gm_space_resize(s, a, 2 * RSIZE), 0);
	assert_int_equal(gm_space_protect(s, a, 0, GM_PAGE_SIZE, GM_PROT_READ), 0);
	assert_int_equal(gm_space_move(s, a, 0x200000), 0);
	assert_ptr_equal(bitmap_of(s, a), da);
	assert_true(gm_dirty_test(da, 3));
	/* The grown part is tracked at its offset in the window. */
	assert_int_equal(gm_space_write(s, 0x200000 + RSIZE, &v, sizeof(v)), 0);
	assert_true(gm_dirty_test(da, RSIZE / GM_PAGE_SIZE));
	assert_int_equal(gm_dirty_count(da), 2);

	/* A writer still holding the first view marks the same bitmap. */
	assert_int_equal(gm_write_u64(old, 5 * GM_PAGE_SIZE, v), 0);
	assert_true(gm_dirty_test(da, 5));
	gm_memory_put(old);

	/* Unplugged: whoever kept a reference still reads what was dirtied. */
	assert_int_equal(gm_space_remove(s, b), 0);
	assert_true(gm_dirty_test(db, 1));
	gm_dirty_put(db);
	gm_space_free(s);
}

/*
 * gm_space_write() moves RAM bytes and marks pages the way gm_write() does
 * through the view: every page it touches, across the runs of a window
 * split by protection, in the window's one bitmap.
 */
static void space_write_across_runs_marks_every_page_it_touches(void **state)
{
	static unsigned char buf[2 * GM_PAGE_SIZE + 16], back[sizeof(buf)];
	struct gm_space *s;
	struct gm_window *a;
	struct gm_dirty *d;
	struct gm_memory *m;

	(void)state;
	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(gm_space_new(GM_SPACE_MEMORY, &s), 0);
	assert_int_equal(gm_space_add_ram(s, 0, 4 * GM_PAGE_SIZE, 0, 0, &a), 0);
	/* Runs: page 0 RWX, pages 1-2 RW, page 3 RWX. */
	assert_int_equal(
	    gm_space_protect(s, a, GM_PAGE_SIZE, 2 * GM_PAGE_SIZE, GM_PROT_READ | GM_PROT_WRITE),
	    0);
	assert_int_equal(gm_space_dirty_enable(s, true), 0);
	d = bitmap_of(s, a);
	assert_int_equal(gm_space_write(s, GM_PAGE_SIZE - 8, buf, sizeof(buf)), 0);
	assert_int_equal(gm_dirty_count(d), 4);
	assert_true(gm_dirty_test(d, 0));
	assert_true(gm_dirty_test(d, 1));
	assert_true(gm_dirty_test(d, 2));
	assert_true(gm_dirty_test(d, 3));
	/* The bytes are where the view reads them. */
	assert_int_equal(gm_space_memory_get(s, &m), 0);
	assert_int_equal(gm_read(m, GM_PAGE_SIZE - 8, back, sizeof(back)), 0);
	assert_memory_equal(back, buf, sizeof(buf));
	gm_memory_put(m);
	gm_space_free(s);
}

/* A window of a caller's mapping at an offset: bits count from the window's first page. */
static void space_write_to_a_mapping_window_marks_the_window_page(void **state)
{
	struct gm_space *s;
	struct gm_mapping *map;
	struct gm_window *a;
	struct gm_dirty *d;
	unsigned char *host;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(4 * GM_PAGE_SIZE, 0, &map), 0);
	host = gm_mapping_host(map);
	assert_int_equal(gm_space_new(GM_SPACE_MEMORY, &s), 0);
	assert_int_equal(
	    gm_space_add_ram_mapping(s, 0x100000, 2 * GM_PAGE_SIZE, map, GM_PAGE_SIZE, &a), 0);
	assert_int_equal(gm_space_dirty_enable(s, true), 0);
	d = bitmap_of(s, a);
	assert_int_equal(gm_space_write(s, 0x100000 + GM_PAGE_SIZE + 3, "m", 1), 0);
	assert_int_equal(host[2 * GM_PAGE_SIZE + 3], 'm');
	assert_int_equal(gm_dirty_count(d), 1);
	assert_true(gm_dirty_test(d, 1));
	gm_space_free(s);
	gm_mapping_put(map);
}

/* A refused write moves no byte and marks no page: not of RAM, not of ROM. */
static void refused_space_write_marks_nothing(void **state)
{
	static const unsigned char zero[8];
	struct gm_space *s;
	struct gm_window *a, *rom;
	struct gm_dirty *d;
	unsigned char back[8];

	(void)state;
	assert_int_equal(gm_space_new(GM_SPACE_MEMORY, &s), 0);
	assert_int_equal(gm_space_add_ram(s, 0, 2 * GM_PAGE_SIZE, 0, 0, &a), 0);
	assert_int_equal(gm_space_add_rom(s, 2 * GM_PAGE_SIZE, GM_PAGE_SIZE, NULL, 0, &rom), 0);
	assert_int_equal(gm_space_protect(s, a, GM_PAGE_SIZE, GM_PAGE_SIZE, GM_PROT_READ), 0);
	assert_int_equal(gm_space_dirty_enable(s, true), 0);
	d = bitmap_of(s, a);
	/* Page 0 is writable, page 1 is not: all or nothing. */
	assert_int_equal(gm_space_write(s, GM_PAGE_SIZE - 4, "abcdefgh", 8), -EACCES);
	assert_int_equal(gm_space_read(s, GM_PAGE_SIZE - 4, back, 8), 0);
	assert_memory_equal(back, zero, 8);
	/* ROM refuses, and has no bitmap to mark. */
	assert_int_equal(gm_space_write(s, 2 * GM_PAGE_SIZE, "x", 1), -EACCES);
	assert_int_equal(gm_space_read(s, 2 * GM_PAGE_SIZE, back, 1), 0);
	assert_int_equal(back[0], 0);
	assert_int_equal(gm_dirty_count(d), 0);
	gm_space_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(write_across_region_boundary_marks_a_page_of_each),
	    cmocka_unit_test(write_across_split_of_one_bitmap_marks_both_pages),
	    cmocka_unit_test(bits_survive_hot_plug_growth_move_and_protection),
	    cmocka_unit_test(space_write_across_runs_marks_every_page_it_touches),
	    cmocka_unit_test(space_write_to_a_mapping_window_marks_the_window_page),
	    cmocka_unit_test(refused_space_write_marks_nothing),
	};
	int ret;

	gm_rcu_register_thread();
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	gm_rcu_unregister_thread();
	return ret;
}
