/* SPDX-License-Identifier: MIT */
/*
 * stress_snapshot_migrate.c - pre-copy migration while writer threads keep
 * dirtying the sender's memory (<guestmem/snapshot.h>).
 *
 * Two writers store counters into a small hot set of pages and, for the
 * first 50 ms (whatever the build's speed, so a sanitizer build converges
 * too), also into random pages of an 8 MiB guest; the migration must converge
 * (a round finds few dirty pages) before its round limit, stop the writers
 * in before_final(), and leave the receiver byte-for-byte equal to the
 * sender. Bounded to about a second; run under ThreadSanitizer by
 * `make check`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <guestmem/snapshot.h>

#include "../threads.h"

#define MiB  ((uint64_t)1 << 20)
#define PAGE 4096u

static const struct gm_range layout[] = {
    {0, 2 * MiB},
    {4 * MiB, 2 * MiB},
    {1024 * MiB, 4 * MiB},
};
#define NREGIONS (sizeof(layout) / sizeof(layout[0]))

struct writer {
	const struct gm_memory *m;
	pthread_t th;
	uint64_t seed;
	unsigned long writes; /* atomic; word-sized for the 32-bit build */
	int stop;	      /* atomic */
	int failures;
};

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static struct timespec t0;

static bool warming_up(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec) < 50000000L;
}

/* A random aligned word: while warming up 1 in 16 anywhere, else in the hot set. */
static gm_gpa_t pick(uint64_t *s)
{
	uint64_t r = next(s);
	size_t i = (size_t)(r % NREGIONS);
	uint64_t pages =
	    (r >> 8) % 16 == 0 && warming_up() ? layout[i].size / PAGE : 32 / NREGIONS + 1;

	return layout[i].gpa + ((r >> 16) % pages) * PAGE + ((r >> 40) % (PAGE / 8)) * 8;
}

static void *write_loop(void *arg)
{
	struct writer *w = arg;

	while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
		unsigned long n = __atomic_load_n(&w->writes, __ATOMIC_RELAXED) + 1;

		if (gm_write_u64(w->m, pick(&w->seed), n) != 0)
			w->failures++;
		/* Atomic: the main thread waits for the writers to get going. */
		__atomic_store_n(&w->writes, n, __ATOMIC_RELAXED);
		/* A finite dirtying rate, as a guest has: one store every ~2 us. */
		if ((n & 63) == 0) {
			struct timespec ts = {0, 100000};

			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

struct recv_arg {
	const struct gm_memory *m;
	int fd, ret;
	struct gm_migrate_stats st;
};

static void *recv_thread(void *arg)
{
	struct recv_arg *r = arg;

	r->ret = gm_migrate_recv(r->m, r->fd, NULL, &r->st);
	return NULL;
}

static struct writer writers[2];
static bool writers_joined;

/* The final round's hook, and the test's own in case the send failed before it. */
static int stop_writers(void *opaque)
{
	(void)opaque;
	if (writers_joined)
		return 0;
	writers_joined = true;
	for (int i = 0; i < 2; i++)
		__atomic_store_n(&writers[i].stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++)
		pthread_join(writers[i].th, NULL);
	return 0;
}

static void migration_under_writers_converges_and_receiver_equals_sender(void **state)
{
	struct gm_region_spec specs[NREGIONS];
	struct gm_mapping *maps[NREGIONS];
	struct gm_dirty *d[NREGIONS];
	struct gm_memory *src, *dst;
	struct gm_migrate_stats st = GM_OPTS(gm_migrate_stats);
	struct recv_arg r;
	pthread_t th;
	int sv[2], sp_err, sent = 0, join_err = 0;

	(void)state;
	memset(specs, 0, sizeof(specs));
	for (size_t i = 0; i < NREGIONS; i++) {
		assert_int_equal(gm_mapping_new_anon((size_t)layout[i].size, 0, &maps[i]), 0);
		assert_int_equal(gm_dirty_new(layout[i].size, &d[i]), 0);
		specs[i] = (struct gm_region_spec){.gpa = layout[i].gpa,
						   .size = layout[i].size,
						   .mapping = maps[i],
						   .dirty = d[i]};
	}
	assert_int_equal(gm_memory_new(specs, NREGIONS, &src), 0);
	assert_int_equal(gm_memory_new_anon(layout, NREGIONS, &dst), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	writers_joined = false;
	for (int i = 0; i < 2; i++) {
		writers[i] = (struct writer){.m = src, .seed = 0x1234567 + (uint64_t)i * 77};
		start_thread(&writers[i].th, write_loop, &writers[i]);
	}
	/* On a loaded machine the writers may start late: migrate while they run. */
	for (int i = 0; i < 2; i++)
		while (__atomic_load_n(&writers[i].writes, __ATOMIC_RELAXED) < 256)
			sched_yield();
	struct gm_migrate_opts o = GM_OPTS(gm_migrate_opts, .max_rounds = 30, .stop_pages = 64,
					   .before_final = stop_writers);
	/* Writers and receiver run on this frame: no assertion until all are joined. */
	sp_err = socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	if (!sp_err) {
		r = (struct recv_arg){.m = dst, .fd = sv[1], .st = GM_OPTS(gm_migrate_stats)};
		start_thread(&th, recv_thread, &r);
		sent = gm_migrate_send(src, sv[0], &o, &st);
		if (sent)
			shutdown(sv[0], SHUT_RDWR); /* a receiver waiting for more gives up */
		join_err = pthread_join(th, NULL);
	}
	stop_writers(NULL);
	assert_int_equal(sp_err, 0);
	assert_int_equal(join_err, 0);
	assert_int_equal(sent, 0);
	assert_int_equal(r.ret, 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(writers[i].failures, 0);
		assert_true(writers[i].writes > 0);
	}
	print_message("rounds %u, pages %llu (final round %llu), bytes %llu, writes %llu\n",
		      st.rounds, (unsigned long long)st.pages, (unsigned long long)st.final_pages,
		      (unsigned long long)st.bytes,
		      (unsigned long long)(writers[0].writes + writers[1].writes));
	/* Converged by the dirty-set threshold, not by the round limit. */
	assert_true(st.rounds >= 2 && st.rounds < 32);
	assert_int_equal(r.st.pages, st.pages);
	for (size_t i = 0; i < NREGIONS; i++) {
		size_t len = (size_t)layout[i].size;
		unsigned char *x = malloc(len), *y = malloc(len);

		assert_int_equal(gm_read(src, layout[i].gpa, x, len), 0);
		assert_int_equal(gm_read(dst, layout[i].gpa, y, len), 0);
		assert_memory_equal(x, y, len);
		free(x);
		free(y);
	}
	close(sv[0]);
	close(sv[1]);
	gm_memory_put(src);
	gm_memory_put(dst);
	for (size_t i = 0; i < NREGIONS; i++) {
		gm_mapping_put(maps[i]);
		gm_dirty_put(d[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(migration_under_writers_converges_and_receiver_equals_sender),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
