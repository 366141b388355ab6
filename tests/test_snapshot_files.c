/* SPDX-License-Identifier: MIT */
/*
 * test_snapshot_files.c - gm_snapshot_open() on paths that are not regular
 * files (issue 17, "files that are not files").
 *
 * A FIFO with no writer blocks open(2) for reading, and a device can block
 * or act on being opened; a snapshot path and the base name a delta reads
 * from its header are data, so each must be refused promptly with -EINVAL.
 * Every open runs in a child process that SIGALRM kills after a few
 * seconds: a hang is a failure, not a stuck test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <guestmem/guestmem.h>

#include "snapshot/snapshot-internal.h"

#define MiB	((uint64_t)1 << 20)
#define TIMEOUT 5 /* seconds a child may take to open a file */

static char dir[64];

/* A path in the test's temporary directory. */
static const char *in_dir(const char *name)
{
	static char buf[4][128];
	static unsigned next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

/* gm_snapshot_open(@path, @flags) in a child killed after TIMEOUT s: its result, or INT_MIN. */
static int open_in_child(const char *path, unsigned flags)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct gm_snapshot *s = NULL;
		int ret;

		alarm(TIMEOUT);
		ret = gm_snapshot_open(path, flags, &s);
		gm_snapshot_close(s);
		_exit(ret <= 0 && ret > -255 ? -ret : 255);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "gm_snapshot_open(%s) still blocked after %d s (signal %d)\n", path,
			TIMEOUT, WTERMSIG(status));
		return -100000;
	}
	assert_true(WIFEXITED(status));
	return -WEXITSTATUS(status);
}

/* A full save at @base and a delta of it at @delta, of a 1 MiB guest. */
static void save_pair(const char *base, const char *delta)
{
	const struct gm_range r = {1 * MiB, 1 * MiB};
	struct gm_snapshot_opts opts = GM_OPTS(gm_snapshot_opts, .base = base);
	struct gm_memory *m;

	assert_int_equal(gm_memory_new_anon(&r, 1, &m), 0);
	assert_int_equal(gm_write_u64(m, 1 * MiB, 0x1234), 0);
	assert_int_equal(gm_snapshot_save(m, base, NULL), 0);
	assert_int_equal(gm_write_u64(m, 1 * MiB + 8192, 0x5678), 0);
	assert_int_equal(gm_snapshot_save(m, delta, &opts), 0);
	gm_memory_put(m);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/gm-snapfiles-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void snapshot_path_that_is_not_a_regular_file_is_refused_promptly(void **state)
{
	const char *fifo = in_dir("fifo.snap"), *sub = in_dir("dir.snap");
	const char *link = in_dir("link-to-fifo.snap");

	(void)state;
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_int_equal(symlink(fifo, link), 0);
	assert_int_equal(open_in_child(fifo, 0), -EINVAL);
	assert_int_equal(open_in_child(fifo, GM_SNAPSHOT_OPEN_NOBASE), -EINVAL);
	assert_int_equal(open_in_child(link, 0), -EINVAL);
	assert_int_equal(open_in_child(sub, 0), -EINVAL);
	assert_int_equal(open_in_child("/dev/null", 0), -EINVAL);
	assert_int_equal(unlink(link), 0);
	assert_int_equal(unlink(fifo), 0);
	assert_int_equal(rmdir(sub), 0);
}

/* Replace the base of a good delta by each kind of non-file: the delta stays readable alone. */
static void delta_whose_base_is_not_a_regular_file_is_refused_promptly(void **state)
{
	const char *base = in_dir("base.snap"), *delta = in_dir("delta.snap");

	(void)state;
	save_pair(base, delta);
	assert_int_equal(open_in_child(delta, 0), 0);

	assert_int_equal(unlink(base), 0);
	assert_int_equal(mkfifo(base, 0600), 0);
	assert_int_equal(open_in_child(delta, 0), -EINVAL);
	assert_int_equal(open_in_child(delta, GM_SNAPSHOT_OPEN_NOBASE), 0);

	assert_int_equal(unlink(base), 0);
	assert_int_equal(mkdir(base, 0700), 0);
	assert_int_equal(open_in_child(delta, 0), -EINVAL);

	assert_int_equal(rmdir(base), 0);
	assert_int_equal(symlink("/dev/null", base), 0);
	assert_int_equal(open_in_child(delta, 0), -EINVAL);

	assert_int_equal(unlink(base), 0);
	assert_int_equal(unlink(delta), 0);
}

/* A regular file still opens, and its descriptor is blocking again (O_NONBLOCK cleared). */
static void regular_snapshot_files_still_open(void **state)
{
	const char *base = in_dir("b.snap"), *delta = in_dir("d.snap");
	struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);
	struct gm_snapshot *s;
	struct snap_file f;
	uint64_t v = 0;

	(void)state;
	save_pair(base, delta);
	assert_int_equal(gm_snapshot_open(delta, 0, &s), 0);
	assert_int_equal(gm_snapshot_describe(s, &info), 0);
	assert_int_equal(info.chain_length, 2);
	assert_int_equal(gm_snapshot_verify(s, NULL, NULL), 0);
	assert_int_equal(gm_snapshot_read(s, 1 * MiB + 8192, &v, sizeof(v)), 0);
	assert_int_equal(v, 0x5678);
	gm_snapshot_close(s);
	assert_int_equal(gm__snap_file_open(delta, &f), 0);
	assert_int_equal(fcntl(f.fd, F_GETFL) & O_NONBLOCK, 0);
	assert_int_not_equal(fcntl(f.fd, F_GETFD) & FD_CLOEXEC, 0);
	gm__snap_file_close(&f);
	assert_int_equal(unlink(base), 0);
	assert_int_equal(unlink(delta), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(snapshot_path_that_is_not_a_regular_file_is_refused_promptly),
	    cmocka_unit_test(delta_whose_base_is_not_a_regular_file_is_refused_promptly),
	    cmocka_unit_test(regular_snapshot_files_still_open),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
