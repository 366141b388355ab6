/* SPDX-License-Identifier: MIT */
/*
 * test_snapshot_fail.c - the snapshot layer when an allocation or a system
 * call fails (issue 17 item 4): each test sweeps N over the calls an
 * operation makes (fail_inject.h) and checks, after each injected failure,
 * that it returned a clean error with nothing lost: a failed save leaves
 * the previous file byte for byte, no temporary file, and the dirty bits
 * it read; a failed lazy restore returns its error; and a lazy handler
 * that fails leaves no thread waiting on a fault (invariant 6 of
 * snapshot-internal.h). Part of the test_snapshot program (its main()
 * runs snapshot_fail_tests()).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "scratch_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <guestmem/snapshot.h>

#include "fail_inject.h"
#include "snapshot/snapshot-internal.h"

#define KiB  ((uint64_t)1 << 10)
#define MiB  ((uint64_t)1 << 20)
#define PAGE 4096u

int snapshot_fail_tests(void);

static char fdir[64];

/* Small, so that a sweep makes few calls: one region within a chunk, one across two. */
static const struct gm_range flayout[] = {
    {0, 256 * KiB},
    {4 * MiB, 2 * MiB + 8 * KiB},
};
#define FNR (sizeof(flayout) / sizeof(flayout[0]))

struct fguest {
	struct gm_memory *m;
	struct gm_dirty *d[FNR];
};

static uint64_t frng = 0x2545f4914f6cdd1du;

static uint64_t frnd(void)
{
	frng ^= frng << 13;
	frng ^= frng >> 7;
	frng ^= frng << 17;
	return frng;
}

/* Random bytes in @n random pages (never the region's last page: it stays zero). */
static void dirty_some(const struct gm_memory *m, unsigned n)
{
	uint64_t buf[PAGE / 8];

	for (unsigned k = 0; k < n; k++) {
		const struct gm_range *r = &flayout[k % FNR];

		for (size_t i = 0; i < PAGE / 8; i++)
			buf[i] = frnd();
		assert_int_equal(
		    gm_write(m, r->gpa + frnd() % (r->size / PAGE - 1) * PAGE, buf, PAGE), 0);
	}
}

static void fguest_new(struct fguest *g)
{
	struct gm_region_spec specs[FNR];
	struct gm_mapping *maps[FNR];

	memset(specs, 0, sizeof(specs));
	for (size_t i = 0; i < FNR; i++) {
		assert_int_equal(gm_mapping_new_anon((size_t)flayout[i].size, 0, &maps[i]), 0);
		assert_int_equal(gm_dirty_new(flayout[i].size, &g->d[i]), 0);
		gm_dirty_set_enabled(g->d[i], true);
		specs[i] = (struct gm_region_spec){.gpa = flayout[i].gpa,
						   .size = flayout[i].size,
						   .mapping = maps[i],
						   .dirty = g->d[i]};
	}
	assert_int_equal(gm_memory_new(specs, FNR, &g->m), 0);
	for (size_t i = 0; i < FNR; i++)
		gm_mapping_put(maps[i]);
	dirty_some(g->m, 24);
}

static void fguest_free(struct fguest *g)
{
	gm_memory_put(g->m);
	for (size_t i = 0; i < FNR; i++)
		gm_dirty_put(g->d[i]);
}

static char *fpath(const char *name)
{
	static char p[4][128];
	static int next;
	char *r = p[next++ & 3];

	snprintf(r, sizeof(p[0]), "%s/%s", fdir, name);
	return r;
}

/* The bytes of the file at @path (NULL and *@len 0 if there is none). */
static unsigned char *file_bytes(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	unsigned char *b;
	struct stat st;

	*len = 0;
	if (fd < 0)
		return NULL;
	assert_int_equal(fstat(fd, &st), 0);
	*len = (size_t)st.st_size;
	b = malloc(*len + 1);
	assert_non_null(b);
	assert_int_equal(pread(fd, b, *len, 0), (ssize_t)*len);
	close(fd);
	return b;
}

/* Files in the test directory whose name says they are a save's temporary. */
static int stray_files(void)
{
	DIR *d = opendir(fdir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strstr(e->d_name, ".tmp-") != NULL;
	closedir(d);
	return n;
}

/*
 * Save @g to @path with @opts, making its Nth call fail for N = 1, 2, ...
 * until a save makes no more calls than N. Each failed save must return a
 * negative errno and leave @path as it was, no temporary file, and the
 * dirty bits it read; then saving again must work. The one exception is
 * -EINPROGRESS (the directory's fsync, after the rename): @path is then the
 * new file, a valid snapshot, and the bits are given back all the same.
 */
static void sweep_save(struct fguest *g, const char *path, const struct gm_snapshot_opts *opts)
{
	unsigned long n;
	bool seen_inprogress = false;

	for (n = 1;; n++) {
		uint64_t dirty[FNR];
		size_t old_len, len;
		unsigned char *old, *now;
		bool fired;
		int ret;

		assert_true(n < 2000);
		dirty_some(g->m, 3);
		for (size_t i = 0; i < FNR; i++)
			dirty[i] = gm_dirty_count(g->d[i]);
		old = file_bytes(path, &old_len);
		fi_arm(FI_ALL, FI_THIS_THREAD, n);
		ret = gm_snapshot_save(g->m, path, opts);
		fired = fi_disarm();
		assert_int_equal(stray_files(), 0);
		if (!fired) {
			assert_int_equal(ret, 0);
			free(old);
			break;
		}
		if (ret == 0 && strcmp(fi_failed_call(), "close") == 0) {
			/* A descriptor only read from (the base, the directory): nothing lost. */
			struct gm_snapshot *s;

			assert_int_equal(gm_snapshot_open(path, GM_SNAPSHOT_OPEN_NOBASE, &s), 0);
			gm_snapshot_close(s);
			free(old);
			continue;
		}
		if (ret >= 0)
			fail_msg("call %lu (%s) failed, but the save returned %d", n,
				 fi_failed_call(), ret);
		now = file_bytes(path, &len);
		if (ret == -EINPROGRESS) {
			struct gm_snapshot *s;

			seen_inprogress = true;
			assert_true(len != old_len || memcmp(now, old, len) != 0);
			assert_int_equal(gm_snapshot_open(path, GM_SNAPSHOT_OPEN_NOBASE, &s), 0);
			gm_snapshot_close(s);
		} else if (len != old_len || (len > 0 && memcmp(now, old, len) != 0)) {
			fail_msg("call %lu failed (%s), and the save changed %s", n, strerror(-ret),
				 path);
		}
		for (size_t i = 0; i < FNR; i++)
			if (gm_dirty_count(g->d[i]) != dirty[i])
				fail_msg(
				    "call %lu failed (%s), and region %zu has %llu dirty pages, "
				    "not %llu",
				    n, strerror(-ret), i,
				    (unsigned long long)gm_dirty_count(g->d[i]),
				    (unsigned long long)dirty[i]);
		free(now);
		free(old);
		assert_int_equal(gm_snapshot_save(g->m, path, opts), 0);
	}
	assert_true(n > 10);
	/*
	 * The directory's fsync, the second fsync of a save, on its own: the
	 * sweep above meets it only when every save makes the same calls, and
	 * a delta's writes depend on which pages were dirtied.
	 */
	if (!seen_inprogress) {
		uint64_t dirty[FNR];
		struct gm_snapshot *s;
		int ret;

		dirty_some(g->m, 3);
		for (size_t i = 0; i < FNR; i++)
			dirty[i] = gm_dirty_count(g->d[i]);
		fi_arm(FI_FSYNC, FI_THIS_THREAD, 2);
		ret = gm_snapshot_save(g->m, path, opts);
		assert_true(fi_disarm());
		assert_int_equal(ret, -EINPROGRESS);
		assert_int_equal(stray_files(), 0);
		assert_int_equal(gm_snapshot_open(path, GM_SNAPSHOT_OPEN_NOBASE, &s), 0);
		gm_snapshot_close(s);
		for (size_t i = 0; i < FNR; i++)
			assert_int_equal(gm_dirty_count(g->d[i]), dirty[i]);
	}
}

static void full_save_failing_at_any_call_changes_nothing(void **state)
{
	struct fguest g;

	(void)state;
	fguest_new(&g);
	assert_int_equal(gm_snapshot_save(g.m, fpath("full"), NULL), 0);
	sweep_save(&g, fpath("full"), NULL);
	fguest_free(&g);
}

static void delta_save_failing_at_any_call_changes_nothing(void **state)
{
	struct gm_snapshot_opts o = GM_OPTS(gm_snapshot_opts, .base = fpath("base"));
	struct fguest g;

	(void)state;
	fguest_new(&g);
	assert_int_equal(gm_snapshot_save(g.m, fpath("base"), NULL), 0);
	dirty_some(g.m, 4);
	assert_int_equal(gm_snapshot_save(g.m, fpath("delta"), &o), 0);
	sweep_save(&g, fpath("delta"), &o);
	fguest_free(&g);
}

/* ---- lazy restore ---- */

static bool lazy_ok(const char **why)
{
	const char *pre = getenv("LD_PRELOAD");
	int err;

	if (pre != NULL && strstr(pre, "vgpreload") != NULL) {
		*why = "running under valgrind, which serializes threads";
		return false;
	}
	err = gm_snapshot_lazy_supported();
	*why = err ? strerror(-err) : "";
	return err == 0;
}

#define SKIP_UNLESS_LAZY()                                                                   \
	do {                                                                                 \
		const char *why_;                                                            \
		if (!lazy_ok(&why_)) {                                                       \
			print_message("skipped: lazy restore cannot run here (%s)\n", why_); \
			skip();                                                              \
		}                                                                            \
	} while (0)

/* A thread reading region @ri of @m whole, into @buf (allocated before it starts). */
struct toucher {
	const struct gm_memory *m;
	size_t ri;
	unsigned char *buf;
	int ret;
};

static void *touch_region(void *arg)
{
	struct toucher *t = arg;

	t->ret = gm_read(t->m, flayout[t->ri].gpa, t->buf, (size_t)flayout[t->ri].size);
	return NULL;
}

/*
 * Read region @ri of @m from another thread, which must be done within 10
 * seconds (a thread left waiting on a fault nobody serves never is).
 * Returns the bytes read (free them).
 */
static unsigned char *touch_in_time(const struct gm_memory *m, size_t ri)
{
	struct toucher t = {.m = m, .ri = ri, .buf = malloc((size_t)flayout[ri].size)};
	struct timespec until;
	pthread_t th;

	assert_non_null(t.buf);
	assert_int_equal(pthread_create(&th, NULL, touch_region, &t), 0);
	assert_int_equal(clock_gettime(CLOCK_REALTIME, &until), 0);
	until.tv_sec += 10;
	if (pthread_timedjoin_np(th, NULL, &until) != 0)
		fail_msg("a thread touching lazily restored region %zu still waits after 10 s", ri);
	assert_int_equal(t.ret, 0);
	return t.buf;
}

/* Whether region @ri of @m reads as @want does (NULL: as zero), from another thread. */
static bool region_reads_as(const struct gm_memory *m, size_t ri, const struct gm_memory *want)
{
	size_t len = (size_t)flayout[ri].size;
	unsigned char *got = touch_in_time(m, ri), *exp = calloc(1, len);
	bool same;

	assert_non_null(exp);
	if (want)
		assert_int_equal(gm_read(want, flayout[ri].gpa, exp, len), 0);
	same = memcmp(got, exp, len) == 0;
	free(got);
	free(exp);
	return same;
}

static void lazy_snapshot(struct fguest *g, const char *path)
{
	fguest_new(g);
	assert_int_equal(gm_snapshot_save(g->m, path, NULL), 0);
}

/* Every call a lazy restore makes in the calling thread fails once: each is its error. */
static void lazy_restore_failing_at_any_call_returns_the_error(void **state)
{
	const char *path = fpath("lazy-sweep");
	struct fguest g;
	unsigned long n;

	(void)state;
	SKIP_UNLESS_LAZY();
	lazy_snapshot(&g, path);
	for (n = 1;; n++) {
		struct gm_snapshot *s;
		struct gm_memory *m = NULL;
		bool fired;
		int ret;

		assert_true(n < 1000);
		assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
		fi_arm(FI_ALL, FI_THIS_THREAD, n);
		ret = gm_snapshot_restore_new(s, GM_RESTORE_LAZY, NULL, &m);
		fired = fi_disarm();
		/* A descriptor only read from may fail to close: nothing lost. */
		if (!fired || (ret == 0 && strcmp(fi_failed_call(), "close") == 0)) {
			assert_int_equal(ret, 0);
			for (size_t i = 0; i < FNR; i++)
				assert_true(region_reads_as(m, i, g.m));
			gm_snapshot_close(s);
			gm_memory_put(m);
			if (!fired)
				break;
			continue;
		}
		if (ret >= 0)
			fail_msg("call %lu (%s) failed, but the lazy restore returned %d", n,
				 fi_failed_call(), ret);
		assert_null(m);
		gm_snapshot_close(s); /* fills and stops what the failed restore began */
	}
	assert_true(n > 5);
	fguest_free(&g);
}

/*
 * The handler thread's allocations fail: the restore must have made them
 * before it returned 0 (a handler without its buffer used to serve no
 * fault, leaving the first touching thread waiting forever).
 */
static void lazy_restore_allocates_for_its_handler_before_returning(void **state)
{
	const char *path = fpath("lazy-alloc");
	struct gm_snapshot *s;
	struct gm_memory *m;
	struct fguest g;
	int ret;

	(void)state;
	SKIP_UNLESS_LAZY();
	lazy_snapshot(&g, path);
	assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
	/* Other threads' first allocation fails: the handler's, if it makes one. */
	fi_arm(FI_ALLOC, FI_OTHER_THREADS, 1);
	ret = gm_snapshot_restore_new(s, GM_RESTORE_LAZY, NULL, &m);
	assert_int_equal(ret, 0);
	for (size_t i = 0; i < FNR; i++)
		assert_true(region_reads_as(m, i, g.m));
	fi_disarm();
	assert_int_equal(gm_snapshot_lazy_errors(s), 0);
	gm_snapshot_close(s);
	gm_memory_put(m);
	fguest_free(&g);
}

/*
 * After a lazy restore, the handler's first @calls fail (its next poll, or
 * its next placing of pages), before or while it serves region 0: lazy
 * filling stops, and threads touching memory must not wait: region 0
 * reads as saved if it was filled (@region0 says whether it may be), and
 * region 1, never filled, reads as zero (the areas are unregistered,
 * invariant 6); the chunks not filled count as lazy errors, and
 * gm_snapshot_lazy_finish() returns the failure.
 */
static void lazy_handler_failing_leaves_nobody_waiting(unsigned calls, bool region0)
{
	const char *path = fpath("lazy-dead");
	struct gm_snapshot *s;
	struct gm_memory *m;
	struct gm_mapping *map = NULL;
	struct fguest g;

	lazy_snapshot(&g, path);
	assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
	assert_int_equal(gm_snapshot_restore_new(s, GM_RESTORE_LAZY, NULL, &m), 0);
	fi_arm(calls, FI_OTHER_THREADS, 1);
	if (!region_reads_as(m, 0, NULL))
		assert_true(region0 && region_reads_as(m, 0, g.m));
	/* The failure follows the fault on region 0 without another event. */
	for (int i = 0; i < 1000 && strcmp(fi_failed_call(), "none") == 0; i++)
		usleep(10000);
	assert_true(fi_disarm());
	assert_true(region_reads_as(m, 1, NULL));
	assert_true(gm_snapshot_lazy_errors(s) >= 2);
	assert_int_equal(gm_snapshot_lazy_finish(s, NULL), -ENOMEM);
	assert_true(gm__snapshot_invariants_ok(s));
	for (size_t i = 0; i < s->nareas; i++)
		for (uint64_t c = 0; c < s->files[0].regions[s->areas[i]->region].nchunks; c++)
			assert_int_equal(s->areas[i]->state[c], 2);
	/* A new lazy restore from @s is refused, not left unserved. */
	assert_int_equal(gm_snapshot_map_region(s, 0, GM_RESTORE_LAZY, &map), -ENOMEM);
	assert_null(map);
	gm_snapshot_close(s);
	gm_memory_put(m);
	fguest_free(&g);
}

static void lazy_handler_that_cannot_poll_leaves_nobody_waiting(void **state)
{
	(void)state;
	SKIP_UNLESS_LAZY();
	lazy_handler_failing_leaves_nobody_waiting(FI_POLL, true);
}

static void lazy_handler_that_cannot_place_a_page_leaves_nobody_waiting(void **state)
{
	(void)state;
	SKIP_UNLESS_LAZY();
	lazy_handler_failing_leaves_nobody_waiting(FI_IOCTL, false);
}

static int fsetup(void **state)
{
	(void)state;
	return scratch_dir_make(fdir, sizeof(fdir), "snapfail");
}

static int fteardown(void **state)
{
	(void)state;
	return scratch_dir_remove(fdir);
}

int snapshot_fail_tests(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(full_save_failing_at_any_call_changes_nothing),
	    cmocka_unit_test(delta_save_failing_at_any_call_changes_nothing),
	    cmocka_unit_test(lazy_restore_failing_at_any_call_returns_the_error),
	    cmocka_unit_test(lazy_restore_allocates_for_its_handler_before_returning),
	    cmocka_unit_test(lazy_handler_that_cannot_poll_leaves_nobody_waiting),
	    cmocka_unit_test(lazy_handler_that_cannot_place_a_page_leaves_nobody_waiting),
	};

	return cmocka_run_group_tests_name("snapshot_fail", tests, fsetup, fteardown);
}
