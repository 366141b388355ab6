/* SPDX-License-Identifier: MIT */
/*
 * tests/test_dirty.c - the dirty layer: page-granular dirty bitmaps.
 *
 * Black-box tests of every function in include/guestmem/dirty.h, written
 * from its contract: rejections with their exact errno, collect as an
 * atomic read-and-clear, merge as an OR, next_run iteration, the pages at
 * a region's end, and concurrent marking from many threads losing no bit
 * (also with a collector clearing at the same time). After every call
 * that changes a bitmap, gm__dirty_invariants_ok() must hold. Marking by
 * the data path is tested in tests/memory/test_memory_dirty.c.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <guestmem/dirty.h>
#include <guestmem/mapping.h>

#include "dirty-internal.h"

#include "threads.h"

#define PAGE   ((uint64_t)4096)
#define BIT(n) ((uint64_t)1 << (n))

/* The numbered invariants of dirty.c hold (checked after every change). */
static void expect_ok(const struct gm_dirty *d)
{
	assert_true(gm__dirty_invariants_ok(d));
}

static struct gm_dirty *dnew(uint64_t size)
{
	struct gm_dirty *d = NULL;

	assert_int_equal(gm_dirty_new(size, &d), 0);
	assert_non_null(d);
	expect_ok(d);
	return d;
}

/* ------------------------------------------------------------------------ */
/* Construction and lifetime                                                */

static void new_rejects_null_out_and_zero_size(void **state)
{
	struct gm_dirty *d = NULL;

	(void)state;
	assert_int_equal(gm_dirty_new(PAGE, NULL), -EINVAL);
	assert_int_equal(gm_dirty_new(0, &d), -EINVAL);
	assert_null(d);
}

static void new_rejects_bitmap_too_big_for_32bit_process(void **state)
{
	struct gm_dirty *d = NULL;

	(void)state;
	if (SIZE_MAX >= UINT64_MAX) {
		print_message("skipped: a 64-bit size_t holds the bitmap of any region\n");
		skip();
	}
	/* 2^64 - 1 bytes: 2^52 pages, a 2^49-byte bitmap */
	assert_int_equal(gm_dirty_new(UINT64_MAX, &d), -EOVERFLOW);
	assert_null(d);
}

static void npages_rounds_size_up_to_whole_pages(void **state)
{
	static const uint64_t sizes[] = {1,	    PAGE - 1,	   PAGE,	   PAGE + 1,
					 64 * PAGE, 64 * PAGE + 1, 1000 * PAGE - 5};
	static const uint64_t pages[] = {1, 1, 1, 2, 64, 65, 1000};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		struct gm_dirty *d = dnew(sizes[i]);

		assert_int_equal(gm_dirty_npages(d), pages[i]);
		assert_int_equal(gm_dirty_count(d), 0);
		assert_false(gm_dirty_enabled(d));
		gm_dirty_put(d);
	}
}

static void get_returns_same_bitmap_and_put_ignores_null(void **state)
{
	struct gm_dirty *d = dnew(8 * PAGE);

	(void)state;
	assert_ptr_equal(gm_dirty_get(d), d);
	expect_ok(d);
	gm_dirty_mark(d, 0, 1);
	expect_ok(d);
	gm_dirty_put(d);
	expect_ok(d);
	/* one reference left: still usable */
	assert_true(gm_dirty_test(d, 0));
	assert_int_equal(gm_dirty_count(d), 1);
	gm_dirty_put(d);
	gm_dirty_put(NULL);
}

/* ------------------------------------------------------------------------ */
/* Enabling                                                                 */

static void enabled_toggles_and_disabling_keeps_bits(void **state)
{
	struct gm_dirty *d = dnew(8 * PAGE);

	(void)state;
	assert_false(gm_dirty_enabled(d));
	gm_dirty_set_enabled(d, true);
	expect_ok(d);
	assert_true(gm_dirty_enabled(d));
	gm_dirty_mark(d, 3 * PAGE, 1);
	expect_ok(d);
	gm_dirty_set_enabled(d, false);
	expect_ok(d);
	assert_false(gm_dirty_enabled(d));
	assert_true(gm_dirty_test(d, 3));
	assert_int_equal(gm_dirty_count(d), 1);
	gm_dirty_set_enabled(d, true);
	expect_ok(d);
	gm_dirty_set_enabled(d, true);
	expect_ok(d);
	assert_true(gm_dirty_enabled(d));
	assert_int_equal(gm_dirty_count(d), 1);
	gm_dirty_put(d);
}

/* ------------------------------------------------------------------------ */
/* Marking and testing                                                      */

static void mark_sets_pages_covering_the_byte_range(void **state)
{
	struct gm_dirty *d = dnew(200 * PAGE);
	uint64_t p;

	(void)state;
	/* works with tracking disabled */
	assert_false(gm_dirty_enabled(d));
	gm_dirty_mark(d, 5, 1);
	expect_ok(d);
	assert_true(gm_dirty_test(d, 0));
	assert_false(gm_dirty_test(d, 1));
	/* the last byte of page 9 and the first of page 10 */
	gm_dirty_mark(d, 10 * PAGE - 1, 2);
	expect_ok(d);
	assert_false(gm_dirty_test(d, 8));
	assert_true(gm_dirty_test(d, 9));
	assert_true(gm_dirty_test(d, 10));
	assert_false(gm_dirty_test(d, 11));
	/* exactly one page */
	gm_dirty_mark(d, 20 * PAGE, PAGE);
	expect_ok(d);
	assert_false(gm_dirty_test(d, 19));
	assert_true(gm_dirty_test(d, 20));
	assert_false(gm_dirty_test(d, 21));
	/* across several 64-bit words: pages 60..140 */
	gm_dirty_mark(d, 60 * PAGE + 100, 80 * PAGE);
	expect_ok(d);
	for (p = 60; p <= 140; p++)
		assert_true(gm_dirty_test(d, p));
	assert_false(gm_dirty_test(d, 59));
	assert_false(gm_dirty_test(d, 141));
	assert_int_equal(gm_dirty_count(d), 1 + 2 + 1 + 81);
	gm_dirty_put(d);
}

static void mark_of_zero_bytes_marks_nothing(void **state)
{
	struct gm_dirty *d = dnew(8 * PAGE);

	(void)state;
	gm_dirty_mark(d, 3 * PAGE, 0);
	expect_ok(d);
	gm_dirty_mark(d, 0, 0);
	expect_ok(d);
	assert_int_equal(gm_dirty_count(d), 0);
	gm_dirty_put(d);
}

static void mark_ignores_bytes_beyond_the_region(void **state)
{
	/* 100 pages and one byte: page 100 is the partial last page */
	struct gm_dirty *d = dnew(100 * PAGE + 1);

	(void)state;
	assert_int_equal(gm_dirty_npages(d), 101);
	gm_dirty_mark(d, 100 * PAGE, 1);
	expect_ok(d);
	assert_true(gm_dirty_test(d, 100));
	assert_int_equal(gm_dirty_count(d), 1);
	/* starts in the last page and runs far beyond */
	gm_dirty_mark(d, 99 * PAGE + 7, 1000 * PAGE);
	expect_ok(d);
	assert_true(gm_dirty_test(d, 99));
	assert_int_equal(gm_dirty_count(d), 2);
	/* wholly beyond, and ranges that would wrap 2^64 */
	gm_dirty_mark(d, 101 * PAGE, PAGE);
	expect_ok(d);
	gm_dirty_mark(d, UINT64_MAX, 1);
	expect_ok(d);
	gm_dirty_mark(d, UINT64_MAX - 10, 100);
	expect_ok(d);
	gm_dirty_mark(d, 98 * PAGE, UINT64_MAX);
	expect_ok(d);
	assert_true(gm_dirty_test(d, 98));
	assert_int_equal(gm_dirty_count(d), 3);
	assert_false(gm_dirty_test(d, 101));
	assert_false(gm_dirty_test(d, 128));
	assert_false(gm_dirty_test(d, UINT64_MAX));
	gm_dirty_put(d);
}

static void whole_region_mark_sets_every_page(void **state)
{
	struct gm_dirty *d = dnew(130 * PAGE - 1);
	uint64_t w[3] = {0, 0, 0};

	(void)state;
	gm_dirty_mark(d, 0, 130 * PAGE - 1);
	expect_ok(d);
	assert_int_equal(gm_dirty_count(d), 130);
	assert_int_equal(gm_dirty_collect(d, 0, w, 3), 0);
	expect_ok(d);
	assert_int_equal(w[0], UINT64_MAX);
	assert_int_equal(w[1], UINT64_MAX);
	assert_int_equal(w[2], BIT(0) | BIT(1)); /* pages 128, 129; no bit past the end */
	assert_int_equal(gm_dirty_count(d), 0);
	gm_dirty_put(d);
}

/* ------------------------------------------------------------------------ */
/* Collect                                                                  */

static void collect_returns_bits_and_clears_them(void **state)
{
	struct gm_dirty *d = dnew(128 * PAGE);
	uint64_t w[2] = {0xdead, 0xbeef};

	(void)state;
	gm_dirty_mark(d, 0, 1);
	expect_ok(d);
	gm_dirty_mark(d, 63 * PAGE, 1);
	expect_ok(d);
	gm_dirty_mark(d, 64 * PAGE, 1);
	expect_ok(d);
	gm_dirty_mark(d, 127 * PAGE, 1);
	expect_ok(d);
	assert_int_equal(gm_dirty_collect(d, 0, w, 2), 0);
	expect_ok(d);
	assert_int_equal(w[0], BIT(0) | BIT(63));
	assert_int_equal(w[1], BIT(0) | BIT(63));
	assert_int_equal(gm_dirty_count(d), 0);
	assert_false(gm_dirty_test(d, 0));
	assert_false(gm_dirty_test(d, 127));
	/* a second collect finds nothing */
	assert_int_equal(gm_dirty_collect(d, 0, w, 2), 0);
	expect_ok(d);
	assert_int_equal(w[0], 0);
	assert_int_equal(w[1], 0);
	gm_dirty_put(d);
}

static void collect_from_a_later_word_leaves_earlier_ones(void **state)
{
	struct gm_dirty *d = dnew(200 * PAGE);
	uint64_t w = 0;

	(void)state;
	gm_dirty_mark(d, 5 * PAGE, 1);
	expect_ok(d);
	gm_dirty_mark(d, 130 * PAGE, 1);
	expect_ok(d);
	assert_int_equal(gm_dirty_collect(d, 128, &w, 1), 0);
	expect_ok(d);
	assert_int_equal(w, BIT(2));
	assert_true(gm_dirty_test(d, 5));
	assert_int_equal(gm_dirty_count(d), 1);
	gm_dirty_put(d);
}

static void collect_reads_zero_past_the_last_page(void **state)
{
	/* 70 pages: word 1 has 6 real pages; words 2 and 3 are wholly past */
	struct gm_dirty *d = dnew(70 * PAGE);
	uint64_t w[4] = {1, 1, 1, 1};

	(void)state;
	gm_dirty_mark(d, 0, 70 * PAGE);
	expect_ok(d);
	assert_int_equal(gm_dirty_collect(d, 0, w, 4), 0);
	expect_ok(d);
	assert_int_equal(w[0], UINT64_MAX);
	assert_int_equal(w[1], BIT(6) - 1);
	assert_int_equal(w[2], 0);
	assert_int_equal(w[3], 0);
	gm_dirty_put(d);
}

static void collect_rejects_bad_arguments(void **state)
{
	struct gm_dirty *d = dnew(100 * PAGE);
	uint64_t w = 0;

	(void)state;
	gm_dirty_mark(d, 0, 100 * PAGE);
	expect_ok(d);
	assert_int_equal(gm_dirty_collect(d, 0, NULL, 1), -EINVAL);
	expect_ok(d);
	assert_int_equal(gm_dirty_collect(d, 1, &w, 1), -EINVAL);
	expect_ok(d);
	assert_int_equal(gm_dirty_collect(d, 63, &w, 1), -EINVAL);
	expect_ok(d);
	assert_int_equal(gm_dirty_collect(d, 128, &w, 1), -EINVAL); /* beyond page 99 */
	assert_int_equal(gm_dirty_collect(d, UINT64_MAX - 63, &w, 1), -EINVAL);
	expect_ok(d);
	/* nothing was cleared by the failures */
	assert_int_equal(gm_dirty_count(d), 100);
	/* no words asked for: nothing to do, NULL allowed */
	assert_int_equal(gm_dirty_collect(d, 0, NULL, 0), 0);
	expect_ok(d);
	assert_int_equal(gm_dirty_count(d), 100);
	/* the last word that holds a page is fine */
	assert_int_equal(gm_dirty_collect(d, 64, &w, 1), 0);
	expect_ok(d);
	assert_int_equal(w, BIT(36) - 1);
	assert_int_equal(gm_dirty_count(d), 64);
	gm_dirty_put(d);
	/* a whole number of words: the first page past the end is rejected */
	d = dnew(128 * PAGE);
	assert_int_equal(gm_dirty_collect(d, 128, &w, 1), -EINVAL);
	expect_ok(d);
	assert_int_equal(gm_dirty_merge(d, 64, &w, 1), 0);
	expect_ok(d);
	gm_dirty_put(d);
}

/* ------------------------------------------------------------------------ */
/* Merge                                                                    */

static void merge_ors_external_bits_in(void **state)
{
	struct gm_dirty *d = dnew(256 * PAGE);
	uint64_t in[2] = {BIT(0) | BIT(5), BIT(63)};
	uint64_t w[4] = {0, 0, 0, 0};

	(void)state;
	gm_dirty_mark(d, 64 * PAGE + 1 * PAGE, 1); /* page 65 */
	gm_dirty_mark(d, 64 * PAGE + 5 * PAGE, 1); /* page 69, also in the merge */
	assert_int_equal(gm_dirty_merge(d, 64, in, 2), 0);
	expect_ok(d);
	assert_true(gm_dirty_test(d, 64));
	assert_true(gm_dirty_test(d, 65));
	assert_true(gm_dirty_test(d, 69));
	assert_true(gm_dirty_test(d, 191));
	assert_int_equal(gm_dirty_count(d), 4);
	assert_int_equal(gm_dirty_collect(d, 0, w, 4), 0);
	expect_ok(d);
	assert_int_equal(w[0], 0);
	assert_int_equal(w[1], BIT(0) | BIT(1) | BIT(5));
	assert_int_equal(w[2], BIT(63));
	assert_int_equal(w[3], 0);
	/* the caller's words are not changed */
	assert_int_equal(in[0], BIT(0) | BIT(5));
	assert_int_equal(in[1], BIT(63));
	gm_dirty_put(d);
}

static void merge_ignores_bits_past_the_last_page(void **state)
{
	struct gm_dirty *d = dnew(70 * PAGE);
	uint64_t in[3] = {0, UINT64_MAX, UINT64_MAX};
	uint64_t w[2] = {0, 0};

	(void)state;
	assert_int_equal(gm_dirty_merge(d, 0, in, 3), 0);
	expect_ok(d);
	assert_int_equal(gm_dirty_count(d), 6);
	assert_false(gm_dirty_test(d, 70));
	assert_int_equal(gm_dirty_collect(d, 0, w, 2), 0);
	expect_ok(d);
	assert_int_equal(w[0], 0);
	assert_int_equal(w[1], BIT(6) - 1);
	gm_dirty_put(d);
}

static void merge_rejects_first_not_multiple_of_64(void **state)
{
	struct gm_dirty *d = dnew(256 * PAGE);
	uint64_t in = UINT64_MAX;

	(void)state;
	assert_int_equal(gm_dirty_merge(d, 1, &in, 1), -EINVAL);
	expect_ok(d);
	assert_int_equal(gm_dirty_merge(d, 65, &in, 1), -EINVAL);
	expect_ok(d);
	assert_int_equal(gm_dirty_count(d), 0);
	gm_dirty_put(d);
}

/* ------------------------------------------------------------------------ */
/* Runs                                                                     */

static void merge_rejects_null_bits_and_first_past_the_end(void **state)
{
	struct gm_dirty *d = dnew(100 * PAGE);
	uint64_t in = UINT64_MAX;

	(void)state;
	assert_int_equal(gm_dirty_merge(d, 0, NULL, 1), -EINVAL);
	expect_ok(d);
	assert_int_equal(gm_dirty_merge(d, 128, &in, 1), -EINVAL); /* pages end at 99 */
	assert_int_equal(gm_dirty_merge(d, UINT64_MAX - 63, &in, 1), -EINVAL);
	expect_ok(d);
	assert_int_equal(gm_dirty_count(d), 0);
	/* Nothing to merge: a NULL buffer is fine. */
	assert_int_equal(gm_dirty_merge(d, 0, NULL, 0), 0);
	expect_ok(d);
	assert_int_equal(gm_dirty_count(d), 0);
	gm_dirty_put(d);
}

static void next_run_rejects_null_out_pointers(void **state)
{
	struct gm_dirty *d = dnew(100 * PAGE);
	uint64_t first = 7, count = 9;

	(void)state;
	gm_dirty_mark(d, 3 * PAGE, PAGE);
	expect_ok(d);
	assert_int_equal(gm_dirty_next_run(d, 0, NULL, &count), -EINVAL);
	assert_int_equal(gm_dirty_next_run(d, 0, &first, NULL), -EINVAL);
	assert_int_equal(first, 7);
	assert_int_equal(count, 9);
	/* -ENOENT leaves both untouched too. */
	assert_int_equal(gm_dirty_next_run(d, 4, &first, &count), -ENOENT);
	assert_int_equal(first, 7);
	assert_int_equal(count, 9);
	assert_int_equal(gm_dirty_count(d), 1);
	gm_dirty_put(d);
}

static void next_run_walks_every_run_in_order(void **state)
{
	static const uint64_t want_first[] = {0, 5, 60, 130, 199};
	static const uint64_t want_count[] = {1, 3, 10, 64, 1};
	struct gm_dirty *d = dnew(200 * PAGE);
	uint64_t from = 0, first = 0, count = 0;
	size_t i = 0;

	(void)state;
	gm_dirty_mark(d, 0, 1);
	expect_ok(d);
	gm_dirty_mark(d, 5 * PAGE, 3 * PAGE);
	expect_ok(d);
	gm_dirty_mark(d, 60 * PAGE, 10 * PAGE);	 /* crosses a word boundary */
	gm_dirty_mark(d, 130 * PAGE, 64 * PAGE); /* a whole word's worth, unaligned */
	gm_dirty_mark(d, 199 * PAGE, 1);	 /* the last page */
	while (gm_dirty_next_run(d, from, &first, &count) == 0) {
		assert_true(i < 5);
		assert_int_equal(first, want_first[i]);
		assert_int_equal(count, want_count[i]);
		from = first + count;
		i++;
	}
	assert_int_equal(i, 5);
	assert_int_equal(gm_dirty_next_run(d, from, &first, &count), -ENOENT);
	/* it does not clear */
	assert_int_equal(gm_dirty_count(d), 1 + 3 + 10 + 64 + 1);
	gm_dirty_put(d);
}

static void next_run_from_inside_a_run_starts_there(void **state)
{
	struct gm_dirty *d = dnew(200 * PAGE);
	uint64_t first = 0, count = 0;

	(void)state;
	gm_dirty_mark(d, 60 * PAGE, 10 * PAGE);
	expect_ok(d);
	assert_int_equal(gm_dirty_next_run(d, 65, &first, &count), 0);
	assert_int_equal(first, 65);
	assert_int_equal(count, 5);
	assert_int_equal(gm_dirty_next_run(d, 69, &first, &count), 0);
	assert_int_equal(first, 69);
	assert_int_equal(count, 1);
	assert_int_equal(gm_dirty_next_run(d, 70, &first, &count), -ENOENT);
	gm_dirty_put(d);
}

static void next_run_is_enoent_when_clean_or_past_the_end(void **state)
{
	struct gm_dirty *d = dnew(100 * PAGE);
	uint64_t first = 0, count = 0;

	(void)state;
	assert_int_equal(gm_dirty_next_run(d, 0, &first, &count), -ENOENT);
	gm_dirty_mark(d, 0, 100 * PAGE);
	expect_ok(d);
	assert_int_equal(gm_dirty_next_run(d, 100, &first, &count), -ENOENT);
	assert_int_equal(gm_dirty_next_run(d, 1000, &first, &count), -ENOENT);
	assert_int_equal(gm_dirty_next_run(d, UINT64_MAX, &first, &count), -ENOENT);
	/* a run ending at the last page is cut there */
	assert_int_equal(gm_dirty_next_run(d, 0, &first, &count), 0);
	assert_int_equal(first, 0);
	assert_int_equal(count, 100);
	assert_int_equal(gm_dirty_next_run(d, 99, &first, &count), 0);
	assert_int_equal(first, 99);
	assert_int_equal(count, 1);
	gm_dirty_put(d);
}

static void count_and_test_track_single_pages(void **state)
{
	struct gm_dirty *d = dnew(1000 * PAGE);
	uint64_t p;

	(void)state;
	for (p = 0; p < 1000; p += 7)
		gm_dirty_mark(d, p * PAGE + 11, 1);
	expect_ok(d);
	assert_int_equal(gm_dirty_count(d), (1000 + 6) / 7);
	for (p = 0; p < 1000; p++)
		assert_int_equal(gm_dirty_test(d, p), p % 7 == 0);
	gm_dirty_put(d);
}

/* ------------------------------------------------------------------------ */
/* Many threads                                                             */

#define NTHREADS 8
#define NPAGES	 (64 * 64) /* 4096 pages: 64 words, every word shared by every thread */

struct marker {
	struct gm_dirty *d;
	unsigned id;
	pthread_barrier_t *go;
};

/* Thread @id marks pages id, id + NTHREADS, ...: neighbours in every word. */
static void *mark_interleaved(void *arg)
{
	struct marker *mk = arg;
	uint64_t p;

	pthread_barrier_wait(mk->go);
	for (p = mk->id; p < NPAGES; p += NTHREADS)
		gm_dirty_mark(mk->d, p * PAGE, 1);
	return NULL;
}

static void concurrent_marking_loses_no_bit(void **state)
{
	struct gm_dirty *d = dnew(NPAGES * PAGE);
	struct marker mk[NTHREADS];
	pthread_t t[NTHREADS];
	pthread_barrier_t go;
	uint64_t w[NPAGES / 64], first = 0, count = 0;
	unsigned i, round;

	(void)state;
	for (round = 0; round < 10; round++) {
		assert_int_equal(pthread_barrier_init(&go, NULL, NTHREADS), 0);
		for (i = 0; i < NTHREADS; i++) {
			mk[i] = (struct marker){d, i, &go};
			start_thread(&t[i], mark_interleaved, &mk[i]);
		}
		assert_int_equal(join_threads(t, NTHREADS), 0);
		expect_ok(d);
		pthread_barrier_destroy(&go);
		assert_int_equal(gm_dirty_count(d), NPAGES);
		assert_int_equal(gm_dirty_next_run(d, 0, &first, &count), 0);
		assert_int_equal(first, 0);
		assert_int_equal(count, NPAGES);
		assert_int_equal(gm_dirty_collect(d, 0, w, NPAGES / 64), 0);
		expect_ok(d);
		for (i = 0; i < NPAGES / 64; i++)
			assert_int_equal(w[i], UINT64_MAX);
		assert_int_equal(gm_dirty_count(d), 0);
	}
	gm_dirty_put(d);
}

/*
 * Markers mark each page exactly once while a collector keeps collecting:
 * every page must show up in exactly one collected set (a bit read by one
 * collect and cleared by it is never seen again; none is lost between the
 * read and the clear).
 */
struct collector {
	struct gm_dirty *d;
	int *stop;
	unsigned char *seen; /* times each page was collected */
	int failed;
};

static void *collect_loop(void *arg)
{
	struct collector *c = arg;
	uint64_t w[NPAGES / 64];
	unsigned i, b;
	int last = 0;

	while (!last) {
		last = __atomic_load_n(c->stop, __ATOMIC_ACQUIRE);
		if (gm_dirty_collect(c->d, 0, w, NPAGES / 64) != 0) {
			c->failed = 1;
			return NULL;
		}
		for (i = 0; i < NPAGES / 64; i++)
			for (b = 0; b < 64; b++)
				if (w[i] & BIT(b))
					c->seen[i * 64 + b]++;
	}
	return NULL;
}

static void collect_during_marking_sees_each_page_once(void **state)
{
	struct gm_dirty *d = dnew(NPAGES * PAGE);
	struct marker mk[NTHREADS];
	struct collector c;
	pthread_t t[NTHREADS], ct;
	pthread_barrier_t go;
	int stop = 0, join_err;
	unsigned i;

	(void)state;
	c.d = d;
	c.stop = &stop;
	c.seen = calloc(NPAGES, 1);
	c.failed = 0;
	assert_non_null(c.seen);
	assert_int_equal(pthread_barrier_init(&go, NULL, NTHREADS), 0);
	start_thread(&ct, collect_loop, &c);
	for (i = 0; i < NTHREADS; i++) {
		mk[i] = (struct marker){d, i, &go};
		start_thread(&t[i], mark_interleaved, &mk[i]);
	}
	join_err = join_threads(t, NTHREADS);
	/* the collector does one more full pass after it sees stop */
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(pthread_join(ct, NULL), 0);
	assert_int_equal(join_err, 0);
	expect_ok(d);
	pthread_barrier_destroy(&go);
	assert_int_equal(c.failed, 0);
	for (i = 0; i < NPAGES; i++)
		if (c.seen[i] != 1)
			fail_msg("page %u collected %u times", i, c.seen[i]);
	assert_int_equal(gm_dirty_count(d), 0);
	free(c.seen);
	gm_dirty_put(d);
}

/*
 * A bitmap in a shared mapping (a vhost-user log): the vhost-user layout
 * (page p is bit p % 8 of byte p / 8), whole words only, nothing written
 * outside its bytes, and the mapping kept alive by the bitmap.
 */
static void mapped_bitmap_uses_the_byte_layout_and_stays_inside(void **state)
{
	struct gm_mapping *map = NULL;
	struct gm_dirty *d = NULL;
	unsigned char *b;
	size_t i;

	(void)state;
	assert_int_equal(gm_mapping_new_memfd("log", 4096, 0, &map), 0);
	b = gm_mapping_host(map);
	assert_int_equal(gm_dirty_new_mapped(NULL, 0, 64, &d), -EINVAL);
	assert_int_equal(gm_dirty_new_mapped(map, 0, 64, NULL), -EINVAL);
	assert_int_equal(gm_dirty_new_mapped(map, 4, 64, &d), -EINVAL);
	assert_int_equal(gm_dirty_new_mapped(map, 8, 7, &d), -EINVAL);
	assert_int_equal(gm_dirty_new_mapped(map, 8, 4096, &d), -ERANGE);
	assert_int_equal(gm_dirty_new_mapped(map, 4096, 8, &d), -ERANGE);
	assert_int_equal(gm_dirty_new_mapped(map, 8, UINT64_MAX, &d), -ERANGE);
	/* 20 bytes: two whole words, 128 pages; bytes 24..27 are never touched. */
	assert_int_equal(gm_dirty_new_mapped(map, 8, 20, &d), 0);
	gm_mapping_put(map); /* the bitmap keeps it */
	expect_ok(d);
	assert_int_equal(gm_dirty_npages(d), 128);
	assert_false(gm_dirty_enabled(d));
	gm_dirty_set_enabled(d, true);
	assert_true(gm_dirty_enabled(d));
	expect_ok(d);
	gm_dirty_mark(d, 9 * PAGE, 1);
	gm_dirty_mark(d, 127 * PAGE, 10 * PAGE); /* clipped at the last page */
	assert_int_equal(b[8 + 1], 1u << 1);
	assert_int_equal(b[8 + 15], 1u << 7);
	for (i = 0; i < 4096; i++)
		if (i != 9 && i != 23)
			assert_int_equal(b[i], 0);
	/* The other process clears a bit; the next mark sets it again. */
	__atomic_store_n(&b[9], 0, __ATOMIC_RELAXED);
	gm_dirty_mark(d, 9 * PAGE, 1);
	assert_int_equal(b[9], 1u << 1);
	assert_int_equal(gm_dirty_count(d), 2);
	gm_dirty_set_enabled(d, false);
	assert_false(gm_dirty_enabled(d));
	expect_ok(d);
	gm_dirty_put(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(new_rejects_null_out_and_zero_size),
	    cmocka_unit_test(new_rejects_bitmap_too_big_for_32bit_process),
	    cmocka_unit_test(npages_rounds_size_up_to_whole_pages),
	    cmocka_unit_test(get_returns_same_bitmap_and_put_ignores_null),
	    cmocka_unit_test(enabled_toggles_and_disabling_keeps_bits),
	    cmocka_unit_test(mark_sets_pages_covering_the_byte_range),
	    cmocka_unit_test(mark_of_zero_bytes_marks_nothing),
	    cmocka_unit_test(mark_ignores_bytes_beyond_the_region),
	    cmocka_unit_test(whole_region_mark_sets_every_page),
	    cmocka_unit_test(collect_returns_bits_and_clears_them),
	    cmocka_unit_test(collect_from_a_later_word_leaves_earlier_ones),
	    cmocka_unit_test(collect_reads_zero_past_the_last_page),
	    cmocka_unit_test(collect_rejects_bad_arguments),
	    cmocka_unit_test(merge_ors_external_bits_in),
	    cmocka_unit_test(merge_ignores_bits_past_the_last_page),
	    cmocka_unit_test(merge_rejects_first_not_multiple_of_64),
	    cmocka_unit_test(merge_rejects_null_bits_and_first_past_the_end),
	    cmocka_unit_test(next_run_rejects_null_out_pointers),
	    cmocka_unit_test(next_run_walks_every_run_in_order),
	    cmocka_unit_test(next_run_from_inside_a_run_starts_there),
	    cmocka_unit_test(next_run_is_enoent_when_clean_or_past_the_end),
	    cmocka_unit_test(count_and_test_track_single_pages),
	    cmocka_unit_test(concurrent_marking_loses_no_bit),
	    cmocka_unit_test(collect_during_marking_sees_each_page_once),
	    cmocka_unit_test(mapped_bitmap_uses_the_byte_layout_and_stays_inside),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
