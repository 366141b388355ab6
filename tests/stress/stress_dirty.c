/* SPDX-License-Identifier: MIT */
/*
 * stress_dirty.c - read-and-clear of a dirty bitmap racing with writers
 * loses nothing.
 *
 * Writer threads write guest memory through a view (gm_write_u64 on the
 * inline fast path, and 16-byte gm_write()s that straddle two pages) while
 * a collector thread keeps read-and-clearing the region's bitmap with
 * gm_dirty_collect(). Collect number j is announced by storing j in @gen
 * (sequentially consistent) just before it starts; a writer reads @gen
 * before (g0) and after (g1) each write and logs both. Then:
 *   - the write started after collect g0 began, so it cannot be in an
 *     earlier collect's set;
 *   - it finished before collect g1 + 1 began, so the contract ("every
 *     write made before a collect is in that collect's set or the next
 *     one") puts each of its pages in some set j with g0 <= j <= g1 + 2.
 * The test checks that for every logged write, and that no page shows up
 * that nobody wrote, round after round (a round ends when the logs or the
 * collect budget run out) for about a second; at the end the bitmap must
 * still pass gm__dirty_invariants_ok().
 */
#include <guestmem/guestmem.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "dirty-internal.h"

#include "../threads.h"

#define NPAGES	     256u /* small: writers and the collector fight over few words */
#define NWORDS	     (NPAGES / 64u)
#define NWRITERS     3
#define MAX_WRITES   (1u << 17) /* per writer */
#define MAX_COLLECTS (1u << 14)
#define RUN_NS	     1000000000ll

struct write_rec {
	uint32_t page;	 /* first page written */
	uint32_t npages; /* 1 or 2 */
	uint32_t g0, g1; /* @gen before and after the write */
};

struct writer {
	pthread_t thread;
	unsigned id;
	unsigned seed;
	struct write_rec *log;
	size_t n;
};

static struct gm_memory *view;
static uint32_t gen;		 /* the collect in progress or last done; seq_cst accesses */
static int stop;		 /* set by the collector; relaxed */
static uint64_t (*sets)[NWORDS]; /* sets[j]: what collect j returned */
static size_t total_writes, total_collects;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	unsigned r = w->seed += 0x9e3779b9u; /* a new sequence each round */

	while (w->n < MAX_WRITES && !__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		struct write_rec *rec = &w->log[w->n];
		uint32_t page;
		uint8_t buf[16];
		int ret;

		r = r * 1103515245u + 12345u;
		rec->g0 = __atomic_load_n(&gen, __ATOMIC_SEQ_CST);
		/*
		 * Writers share pages (and bitmap words) but never bytes, so
		 * the only race is the one under test: writer @id owns the
		 * boundaries after pages with page % NWRITERS == id (16 bytes
		 * across each) and, away from every boundary, the words at
		 * 8 + 8 * (id + NWRITERS * k) in any page.
		 */
		if (r & 0x10) {
			page = (r >> 8) % NPAGES;
			rec->npages = 1;
			ret = gm_write_u64(view,
					   (uint64_t)page * GM_PAGE_SIZE + 8 +
					       8 * (w->id + NWRITERS * ((r >> 5) % 168)),
					   r);
		} else {
			page = ((r >> 8) % (NPAGES / NWRITERS - 1)) * NWRITERS + w->id;
			memset(buf, (int)r, sizeof(buf));
			rec->npages = 2;
			ret = gm_write(view, (uint64_t)(page + 1) * GM_PAGE_SIZE - 8, buf,
				       sizeof(buf));
		}
		rec->g1 = __atomic_load_n(&gen, __ATOMIC_SEQ_CST);
		rec->page = page;
		if (ret != 0)
			return (void *)(intptr_t)ret;
		w->n++;
	}
	return NULL;
}

static bool in_set(uint32_t j, uint32_t page)
{
	return (sets[j][page / 64] >> (page % 64)) & 1;
}

/* One round: writers against the collector until the logs or the collect budget run out. */
static void run_round(struct gm_dirty *d, struct writer *writers, long long deadline)
{
	uint64_t written[NWORDS] = {0}, seen[NWORDS] = {0};
	uint32_t ncollects, j;
	size_t i, k;
	void *ret[NWRITERS];
	int t, collect_err = 0, join_err[NWRITERS];

	__atomic_store_n(&gen, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&stop, 0, __ATOMIC_RELAXED);
	for (t = 0; t < NWRITERS; t++) {
		writers[t].n = 0;
		start_thread(&writers[t].thread, writer_main, &writers[t]);
	}
	/* Collect while the writers run; keep the last two collects for after they stop. */
	for (j = 1; j <= MAX_COLLECTS - 2 && now_ns() < deadline && !collect_err; j++) {
		__atomic_store_n(&gen, j, __ATOMIC_SEQ_CST);
		collect_err = gm_dirty_collect(d, 0, sets[j], NWORDS);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (t = 0; t < NWRITERS; t++) {
		join_err[t] = pthread_join(writers[t].thread, &ret[t]);
	}
	/* The writers are joined: now an assertion may leave the test. */
	assert_int_equal(collect_err, 0);
	for (t = 0; t < NWRITERS; t++) {
		assert_int_equal(join_err[t], 0);
		assert_null(ret[t]);
	}
	for (k = 0; k < 2; k++, j++) {
		__atomic_store_n(&gen, j, __ATOMIC_SEQ_CST);
		assert_int_equal(gm_dirty_collect(d, 0, sets[j], NWORDS), 0);
	}
	ncollects = j - 1;

	for (t = 0; t < NWRITERS; t++) {
		for (i = 0; i < writers[t].n; i++) {
			const struct write_rec *rec = &writers[t].log[i];
			uint32_t p, last = rec->g1 + 2 < ncollects ? rec->g1 + 2 : ncollects;

			for (p = rec->page; p < rec->page + rec->npages; p++) {
				bool found = false;

				for (j = rec->g0 ? rec->g0 : 1; j <= last && !found; j++)
					found = in_set(j, p);
				if (!found)
					fail_msg(
					    "write %zu of writer %d to page %u (gen %u..%u) is in no "
					    "collect from %u to %u",
					    i, t, p, rec->g0, rec->g1, rec->g0, last);
				written[p / 64] |= (uint64_t)1 << (p % 64);
			}
		}
		total_writes += writers[t].n;
	}
	for (j = 1; j <= ncollects; j++)
		for (k = 0; k < NWORDS; k++)
			seen[k] |= sets[j][k];
	/* Nothing nobody wrote, and nothing left behind after the writers stopped. */
	assert_memory_equal(seen, written, sizeof(seen));
	assert_int_equal(gm_dirty_count(d), 0);
	total_collects += ncollects;
}

static void collect_racing_writers_loses_nothing(void **state)
{
	struct writer writers[NWRITERS];
	struct gm_mapping *map;
	struct gm_dirty *d;
	struct gm_region_spec spec;
	long long deadline = now_ns() + RUN_NS;
	unsigned rounds = 0;
	int t;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(NPAGES * GM_PAGE_SIZE, 0, &map), 0);
	assert_int_equal(gm_dirty_new(NPAGES * GM_PAGE_SIZE, &d), 0);
	gm_dirty_set_enabled(d, true);
	memset(&spec, 0, sizeof(spec));
	spec.gpa = 0;
	spec.size = NPAGES * GM_PAGE_SIZE;
	spec.mapping = map;
	spec.dirty = d;
	assert_int_equal(gm_memory_new(&spec, 1, &view), 0);
	sets = calloc(MAX_COLLECTS + 1, sizeof(*sets));
	assert_non_null(sets);
	for (t = 0; t < NWRITERS; t++) {
		writers[t].id = (unsigned)t;
		writers[t].seed = 12345u + 7919u * (unsigned)t;
		writers[t].log = calloc(MAX_WRITES, sizeof(struct write_rec));
		assert_non_null(writers[t].log);
	}

	do {
		run_round(d, writers, deadline);
		rounds++;
	} while (now_ns() < deadline);
	print_message("%u rounds, %zu writes, %zu collects\n", rounds, total_writes,
		      total_collects);
	assert_true(total_writes > 1000);
	assert_true(total_collects > 10);
	/* The bitmap's own invariants survived the fight (dirty.c). */
	assert_true(gm__dirty_invariants_ok(d));

	for (t = 0; t < NWRITERS; t++)
		free(writers[t].log);
	free(sets);
	gm_memory_put(view);
	gm_dirty_put(d);
	gm_mapping_put(map);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(collect_racing_writers_loses_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
