/* SPDX-License-Identifier: MIT */
/*
 * tests/stress/stress_memory_atomics.c - guest-memory atomics under contention.
 *
 * Several threads hammer gm_atomic_fetch_add_u64 and _u32 on one guest word
 * each (and cmpxchg increments on a third) for a bounded number of
 * operations; the final counts must be exact, and every value fetch_add_u64
 * returned must have been returned exactly once (no two threads saw the
 * same old value). The words sit in the last page of one region next to a
 * tracked, enabled dirty bitmap, so marking races with the increments too.
 * Suite 'stress': `make check` also runs it under ThreadSanitizer.
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

#include <guestmem/guestmem.h>

#include "../threads.h"

#define NTHREADS 4
#define OPS	 100000 /* per thread and word: about a second under TSan */

#define GPA_BASE 0x100000000ull /* above 4 GiB: exercises the 64-bit gpa on i386 */
#define PAGE	 ((uint64_t)4096)
#define W64	 (GPA_BASE + 3 * PAGE + 0xff8) /* last word of the region */
#define W32	 (GPA_BASE + 3 * PAGE + 0x40)
#define WCAS	 (GPA_BASE + 2 * PAGE)

struct ctx {
	const struct gm_memory *m;
	pthread_barrier_t *go;
	uint64_t *olds; /* this thread's fetch_add_u64 results */
	int failed;	/* first non-zero return code */
};

static void note(struct ctx *c, int rc)
{
	if (rc != 0 && c->failed == 0)
		c->failed = rc;
}

static void *hammer(void *arg)
{
	struct ctx *c = arg;
	unsigned i;

	pthread_barrier_wait(c->go);
	for (i = 0; i < OPS; i++) {
		uint64_t old = 0, e;
		uint32_t o32 = 0;
		int rc;

		note(c, gm_atomic_fetch_add_u64(c->m, W64, 1, &old, __ATOMIC_SEQ_CST));
		c->olds[i] = old;
		note(c, gm_atomic_fetch_add_u32(c->m, W32, 1, &o32,
						i & 1 ? __ATOMIC_RELAXED : __ATOMIC_ACQ_REL));
		note(c, gm_atomic_load_u64(c->m, WCAS, &e, __ATOMIC_ACQUIRE));
		do
			rc = gm_atomic_cmpxchg_u64(c->m, WCAS, &e, e + 1, __ATOMIC_ACQ_REL);
		while (rc == -EAGAIN);
		note(c, rc);
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void fetch_add_from_many_threads_counts_exactly(void **state)
{
	const struct gm_range r = {GPA_BASE, 4 * PAGE};
	struct gm_mapping *mp = NULL;
	struct gm_dirty *d = NULL;
	struct gm_region_spec s;
	struct gm_memory *m = NULL;
	struct ctx c[NTHREADS];
	pthread_t t[NTHREADS];
	pthread_barrier_t go;
	uint64_t *olds, v64 = 0, bits = 0;
	uint32_t v32 = 0;
	unsigned i;

	(void)state;
	assert_int_equal(gm_mapping_new_anon((size_t)r.size, 0, &mp), 0);
	assert_int_equal(gm_dirty_new(r.size, &d), 0);
	gm_dirty_set_enabled(d, true);
	memset(&s, 0, sizeof(s));
	s.gpa = r.gpa;
	s.size = r.size;
	s.mapping = mp;
	s.dirty = d;
	assert_int_equal(gm_memory_new(&s, 1, &m), 0);
	olds = calloc((size_t)NTHREADS * OPS, sizeof(*olds));
	assert_non_null(olds);

	assert_int_equal(pthread_barrier_init(&go, NULL, NTHREADS), 0);
	for (i = 0; i < NTHREADS; i++) {
		c[i] = (struct ctx){m, &go, olds + (size_t)i * OPS, 0};
		start_thread(&t[i], hammer, &c[i]);
	}
	assert_int_equal(join_threads(t, NTHREADS), 0);
	pthread_barrier_destroy(&go);
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(c[i].failed, 0);

	assert_int_equal(gm_atomic_load_u64(m, W64, &v64, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(v64, (uint64_t)NTHREADS * OPS);
	assert_int_equal(gm_atomic_load_u32(m, W32, &v32, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(v32, (uint32_t)NTHREADS * OPS);
	assert_int_equal(gm_atomic_load_u64(m, WCAS, &v64, __ATOMIC_SEQ_CST), 0);
	assert_int_equal(v64, (uint64_t)NTHREADS * OPS);
	/* every old value 0 .. N-1 was handed out exactly once */
	qsort(olds, (size_t)NTHREADS * OPS, sizeof(*olds), cmp_u64);
	for (i = 0; i < NTHREADS * OPS; i++)
		if (olds[i] != i)
			fail_msg("fetch_add returned %llu at rank %u", (unsigned long long)olds[i],
				 i);
	/* exactly the two pages written are dirty */
	assert_int_equal(gm_dirty_collect(d, 0, &bits, 1), 0);
	assert_int_equal(bits, ((uint64_t)1 << 2) | ((uint64_t)1 << 3));

	free(olds);
	gm_memory_put(m);
	gm_dirty_put(d);
	gm_mapping_put(mp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fetch_add_from_many_threads_counts_exactly),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
