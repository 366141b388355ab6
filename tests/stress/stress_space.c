/* SPDX-License-Identifier: MIT */
/*
 * tests/stress/stress_space.c - readers against a space that keeps changing.
 *
 * Reader threads read and write guest memory through the current view
 * (inside RCU read sections, and through a reference from
 * gm_space_memory_get()) and through gm_space_read()/gm_space_write(), while one writer thread
 * hot-plugs, grows and unplugs a RAM window, moves a device between two
 * addresses and re-protects pages of a RAM window the readers use, alone
 * and in transactions. It runs for a bounded time (GM_STRESS_SECONDS,
 * default 2). A reader that touched unmapped memory would crash (or ASan
 * would report it); every value read from the window that is never
 * unplugged must be the last one its reader wrote there; every other
 * access must give one of the errors the header allows.
 * Suite 'stress': `make check` also runs it under ThreadSanitizer.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <guestmem/guestmem.h>

#include "../threads.h"

#define PAGE	 GM_PAGE_SIZE
#define NREADERS 3
#define SLICE	 (4 * PAGE) /* each reader's part of the stable window */

#define STABLE_GPA  0x100000000ull /* above 4 GiB: 64-bit gpas on i386 too */
#define STABLE_SIZE (NREADERS * SLICE)
#define PLUG_GPA    0x40000000ull
#define DEV_GPA_A   0x80000000ull
#define DEV_GPA_B   0x80100000ull
#define DEV_VALUE   0x5eedf00dcafe1234ull

struct shared {
	struct gm_space *s;
	struct gm_window *stable;
	struct timespec deadline;
	int stop;	       /* atomic */
	uint64_t device_reads; /* atomic */
};

struct reader {
	struct shared *sh;
	unsigned id;
	uint64_t expected[SLICE / 8]; /* last value written to each word of the slice */
	unsigned seed;
	const char *failure; /* first failed expectation, or NULL */
	int failure_rc;
	unsigned long ops, checked;
};

static bool past(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

static void note_failure(struct reader *r, const char *what, int rc)
{
	if (!r->failure) {
		r->failure = what;
		r->failure_rc = rc;
	}
}

static int dev_read(void *opaque, uint64_t offset, unsigned size, uint64_t *val)
{
	struct shared *sh = opaque;

	(void)offset;
	(void)size;
	__atomic_fetch_add(&sh->device_reads, 1, __ATOMIC_RELAXED);
	*val = DEV_VALUE;
	return 0;
}

/* One random access; checks what it can. */
static void reader_step(struct reader *r)
{
	struct gm_space *s = r->sh->s;
	unsigned op = (unsigned)rand_r(&r->seed) % 8;
	unsigned word = (unsigned)rand_r(&r->seed) % (SLICE / 8);
	gm_gpa_t gpa = STABLE_GPA + r->id * SLICE + word * 8;
	uint64_t v = ((uint64_t)rand_r(&r->seed) << 32) | (unsigned)rand_r(&r->seed);
	/* A word of the hot-plugged window that only this reader writes. */
	gm_gpa_t plug = PLUG_GPA + (word - word % NREADERS + r->id) * 8;
	uint64_t got = 0;
	struct gm_memory *m;
	int rc;

	switch (op) {
	case 0: /* write through the view: refused only while the page is read-only */
		gm_rcu_read_lock();
		rc = gm_write_u64(gm_space_memory(s), gpa, v);
		gm_rcu_read_unlock();
		if (rc == 0)
			r->expected[word] = v;
		else if (rc != -EACCES)
			note_failure(r, "view write", rc);
		break;
	case 1: /* write by gm_space_write() */
		rc = gm_space_write(s, gpa, &v, 8);
		if (rc == 0)
			r->expected[word] = v;
		else if (rc != -EACCES)
			note_failure(r, "gm_space_write", rc);
		break;
	case 2: /* read through the view */
		gm_rcu_read_lock();
		rc = gm_read_u64(gm_space_memory(s), gpa, &got);
		gm_rcu_read_unlock();
		if (rc != 0 || got != r->expected[word])
			note_failure(r, "view read", rc);
		r->checked++;
		break;
	case 3: /* read by gm_space_read() */
		rc = gm_space_read(s, gpa, &got, 8);
		if (rc != 0 || got != r->expected[word])
			note_failure(r, "gm_space_read", rc);
		r->checked++;
		break;
	case 4: /* read through a referenced view, after the writer may have moved on */
		if (gm_space_memory_get(s, &m) != 0) {
			note_failure(r, "memory_get", -1);
			break;
		}
		rc = gm_read_u64(m, gpa, &got);
		if (rc != 0 || got != r->expected[word])
			note_failure(r, "referenced view read", rc);
		/* The hot-plugged window, if this view has it: must not crash. */
		rc = gm_write_u64(m, plug, v);
		if (rc != 0 && rc != -EFAULT)
			note_failure(r, "referenced plug write", rc);
		gm_memory_put(m);
		r->checked++;
		break;
	case 5: /* the hot-plugged window through the view, held over a few accesses */
		gm_rcu_read_lock();
		m = gm_space_memory(s);
		rc = gm_write_u64(m, plug, v);
		if (rc == 0) {
			rc = gm_read_u64(m, plug, &got);
			if (rc != 0 || got != v)
				note_failure(r, "plug read back", rc);
		} else if (rc != -EFAULT) {
			note_failure(r, "plug write", rc);
		}
		gm_rcu_read_unlock();
		break;
	case 6: /* the hot-plugged window by gm_space_read() (a grown part too) */
		rc = gm_space_read(s, PLUG_GPA + 8 * PAGE + word * 8, &got, 8);
		if (rc != 0 && rc != -EFAULT)
			note_failure(r, "plug gm_space_read", rc);
		break;
	default: /* the moving device */
		rc = gm_space_read(s, (word & 1) ? DEV_GPA_A : DEV_GPA_B, &got, 8);
		if (rc == 0 && got != DEV_VALUE)
			note_failure(r, "device value", 0);
		else if (rc != 0 && rc != -EFAULT)
			note_failure(r, "device read", rc);
		break;
	}
	r->ops++;
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	gm_rcu_register_thread();
	while (!__atomic_load_n(&r->sh->stop, __ATOMIC_RELAXED)) {
		unsigned i;

		for (i = 0; i < 64; i++)
			reader_step(r);
	}
	gm_rcu_unregister_thread();
	return NULL;
}

/* The writer's loop: returns the first unexpected error, or 0. */
static int writer_loop(struct shared *sh, unsigned long *rounds)
{
	static const unsigned prots[] = {GM_PROT_READ, GM_PROT_READ | GM_PROT_EXEC,
					 GM_PROT_READ | GM_PROT_WRITE, GM_PROT_ALL};
	const struct gm_device_ops ops =
	    GM_OPTS(gm_device_ops, .name = "mover", .read = dev_read, .sizes = GM_ACCESS_8);
	struct gm_space *s = sh->s;
	struct gm_window *dev, *plug;
	unsigned seed = 7;
	bool at_a = true;
	int rc;

	rc = gm_space_add_mmio(s, DEV_GPA_A, 0x1000, &ops, sh, &dev);
	while (!rc && !past(&sh->deadline)) {
		uint64_t page = (unsigned)rand_r(&seed) % (STABLE_SIZE / PAGE);
		uint64_t npages = 1 + (unsigned)rand_r(&seed) % 3;

		if (page + npages > STABLE_SIZE / PAGE)
			npages = STABLE_SIZE / PAGE - page;
		/* Hot-plug, grow, unplug. */
		rc = gm_space_add_ram(s, PLUG_GPA, 4 * PAGE, 16 * PAGE, 0, &plug);
		if (!rc)
			rc = gm_space_resize(s, plug, 16 * PAGE);
		/* Re-protect part of the stable window (reading stays allowed). */
		if (!rc)
			rc = gm_space_protect(s, sh->stable, page * PAGE, npages * PAGE,
					      prots[(unsigned)rand_r(&seed) % 4]);
		/* A transaction: move the device, unplug, restore write access. */
		if (!rc)
			rc = gm_space_begin(s);
		if (!rc) {
			rc = gm_space_move(s, dev, at_a ? DEV_GPA_B : DEV_GPA_A);
			at_a = !at_a;
			if (!rc)
				rc = gm_space_remove(s, plug);
			if (!rc && rand_r(&seed) % 2)
				rc = gm_space_protect(s, sh->stable, 0, STABLE_SIZE, GM_PROT_ALL);
			rc = rc ? rc : gm_space_commit(s);
		}
		(*rounds)++;
	}
	return rc;
}

static void readers_see_only_valid_memory_while_the_layout_changes(void **state)
{
	struct shared sh = {0};
	struct reader *readers;
	pthread_t tids[NREADERS];
	unsigned long rounds = 0, ops = 0, checked = 0;
	const char *env = getenv("GM_STRESS_SECONDS");
	long seconds = env ? atol(env) : 2;
	unsigned i;
	int rc;

	(void)state;
	if (seconds <= 0)
		seconds = 2;
	readers = calloc(NREADERS, sizeof(*readers));
	assert_non_null(readers);
	assert_int_equal(gm_space_new(0, &sh.s), 0);
	assert_int_equal(gm_space_add_ram(sh.s, STABLE_GPA, STABLE_SIZE, 0, 0, &sh.stable), 0);
	assert_int_equal(gm_space_dirty_enable(sh.s, true), 0);
	clock_gettime(CLOCK_MONOTONIC, &sh.deadline);
	sh.deadline.tv_sec += seconds;

	for (i = 0; i < NREADERS; i++) {
		readers[i].sh = &sh;
		readers[i].id = i;
		readers[i].seed = 1000 + i;
		start_thread(&tids[i], reader_main, &readers[i]);
	}
	rc = writer_loop(&sh, &rounds);
	__atomic_store_n(&sh.stop, 1, __ATOMIC_RELAXED);
	assert_int_equal(join_threads(tids, NREADERS), 0);
	assert_int_equal(rc, 0);

	/* Final check, by gm_space_read(), of every word each reader owns. */
	assert_int_equal(gm_space_protect(sh.s, sh.stable, 0, STABLE_SIZE, GM_PROT_ALL), 0);
	for (i = 0; i < NREADERS; i++) {
		unsigned w;

		if (readers[i].failure)
			fail_msg("reader %u: %s failed (rc %d)", i, readers[i].failure,
				 readers[i].failure_rc);
		for (w = 0; w < SLICE / 8; w++) {
			uint64_t got = 0;

			assert_int_equal(
			    gm_space_read(sh.s, STABLE_GPA + i * SLICE + w * 8, &got, 8), 0);
			assert_int_equal(got, readers[i].expected[w]);
		}
		ops += readers[i].ops;
		checked += readers[i].checked;
	}
	printf("stress_space: %lu writer rounds (%llu views), %lu reader ops, %lu values "
	       "checked, %llu device reads in %ld s\n",
	       rounds, (unsigned long long)gm_space_generation(sh.s), ops, checked,
	       (unsigned long long)sh.device_reads, seconds);
	assert_true(rounds > 0);
	assert_true(checked > 0);
	gm_space_free(sh.s);
	free(readers);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(readers_see_only_valid_memory_while_the_layout_changes),
	};
	int rc;

	gm_rcu_register_thread();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	gm_rcu_unregister_thread();
	return rc;
}
