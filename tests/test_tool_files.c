/* SPDX-License-Identifier: MIT */
/*
 * test_tool_files.c - the tools on paths that are not regular files
 * (issue 17, "files that are not files"): gm-vhost-blk's --image and
 * gmsnap's FILE. A FIFO with no writer blocks open(2) for reading and a
 * device can block or act on being opened; each must be refused promptly
 * with a message that names the path and what it is, and a non-zero exit.
 *
 * argv[1] is the gm-vhost-blk program, argv[2] the gmsnap program. Each runs
 * in a child (through $GM_EMULATOR when the tests run under qemu-user) with
 * an alarm it inherits: a program still blocked after TIMEOUT seconds dies
 * of SIGALRM and the test fails. blk_open() is also called in-process.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <guestmem/guestmem.h>

#include "blk.h"

#define MiB	((uint64_t)1 << 20)
#define TIMEOUT 10 /* seconds a program may take to refuse a file */

static const char *vhost_blk_prog, *gmsnap_prog;
static char dir[64];

static const char *in_dir(const char *name)
{
	static char buf[4][128];
	static unsigned next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

/*
 * Run @argv with stdout discarded and stderr into @err (NUL-terminated).
 * Returns the exit status, or -signal when it was killed (-SIGALRM: it hung).
 */
static int run(const char *const *argv, char *err, size_t errlen)
{
	const char *emu = getenv("GM_EMULATOR"), *args[16];
	size_t n = 0, got = 0;
	int pfd[2], status;
	pid_t pid;

	if (emu != NULL && emu[0] != 0)
		args[n++] = emu;
	for (size_t i = 0; argv[i] != NULL && n < 15; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

		dup2(null, STDOUT_FILENO);
		dup2(pfd[1], STDERR_FILENO);
		alarm(TIMEOUT); /* survives exec */
		execvp(args[0], (char *const *)args);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t r = read(pfd[0], err + got, errlen - 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (got += (size_t)r) == errlen - 1)
			break;
	}
	err[got] = 0;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "%s: killed by signal %d (%s)\n", argv[0], WTERMSIG(status),
			WTERMSIG(status) == SIGALRM ? "still blocked" : "crashed");
		return -WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}

/* @err says @want; print what it says otherwise. */
static void expect_in(const char *err, const char *want)
{
	if (strstr(err, want) == NULL) {
		fprintf(stderr, "expected \"%s\" in:\n%s\n", want, err);
		fail();
	}
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/gm-toolfiles-XXXXXX");
	if (mkdtemp(dir) == NULL || mkfifo(in_dir("fifo"), 0600) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* blk_open() in a child killed after TIMEOUT s; exit 0 = refused with the message. */
static void blk_open_refuses(const char *path, bool readonly, const char *what)
{
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct blk_dev b;
		char err[512];
		int ret;

		alarm(TIMEOUT);
		ret = blk_open(&b, path, readonly, err, sizeof(err));
		if (ret == 0) {
			blk_close(&b);
			_exit(1);
		}
		if (ret != -EINVAL || strstr(err, path) == NULL || strstr(err, what) == NULL) {
			fprintf(stderr, "blk_open(%s): %d, \"%s\"\n", path, ret, err);
			_exit(2);
		}
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		fprintf(stderr, "blk_open(%s): killed by signal %d\n", path, WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void blk_open_refuses_fifo_and_device_promptly(void **state)
{
	(void)state;
	blk_open_refuses(in_dir("fifo"), true, "is a FIFO, not a regular file");
	blk_open_refuses(in_dir("fifo"), false, "is a FIFO, not a regular file");
	blk_open_refuses("/dev/null", true, "is a character device, not a regular file");
	blk_open_refuses("/dev/null", false, "is a character device, not a regular file");
	blk_open_refuses(dir, true, "is a directory, not a regular file");
}

static void vhost_blk_refuses_image_that_is_not_a_regular_file(void **state)
{
	const char *sock = in_dir("sock");
	struct {
		const char *image, *what;
		bool readonly;
	} cases[] = {
	    {in_dir("fifo"), "is a FIFO, not a regular file", true},
	    {in_dir("fifo"), "is a FIFO, not a regular file", false},
	    {"/dev/null", "is a character device, not a regular file", true},
	    {"/dev/null", "is a character device, not a regular file", false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *argv[] = {vhost_blk_prog,
				      "--socket",
				      sock,
				      "--image",
				      cases[i].image,
				      cases[i].readonly ? "--readonly" : NULL,
				      NULL};
		char err[1024];

		assert_int_equal(run(argv, err, sizeof(err)), 1);
		expect_in(err, cases[i].image);
		expect_in(err, cases[i].what);
		assert_int_equal(access(sock, F_OK), -1); /* refused before it listened */
	}
}

static void gmsnap_refuses_fifo_promptly(void **state)
{
	const char *fifo = in_dir("fifo");
	const char *info[] = {gmsnap_prog, "info", fifo, NULL};
	const char *alone[] = {gmsnap_prog, "info", fifo, "--alone", NULL};
	const char *verify[] = {gmsnap_prog, "verify", fifo, NULL};
	const char *null[] = {gmsnap_prog, "info", "/dev/null", NULL};
	char err[1024];

	(void)state;
	assert_int_equal(run(info, err, sizeof(err)), 2);
	expect_in(err, fifo);
	expect_in(err, "is a FIFO, not a regular file");
	assert_int_equal(run(alone, err, sizeof(err)), 2);
	expect_in(err, "is a FIFO, not a regular file");
	assert_int_equal(run(verify, err, sizeof(err)), 2);
	expect_in(err, "is a FIFO, not a regular file");
	assert_int_equal(run(null, err, sizeof(err)), 2);
	expect_in(err, "/dev/null is a character device, not a regular file");
}

/* A good delta whose base name now names a FIFO: the message names the base. */
static void gmsnap_names_a_base_that_is_not_a_regular_file(void **state)
{
	const struct gm_range r = {1 * MiB, 1 * MiB};
	const char *base = in_dir("base.snap"), *delta = in_dir("delta.snap");
	struct gm_snapshot_opts opts = GM_OPTS(gm_snapshot_opts, .base = base);
	const char *info[] = {gmsnap_prog, "info", delta, NULL};
	const char *alone[] = {gmsnap_prog, "info", delta, "--alone", NULL};
	struct gm_memory *m;
	char err[1024];

	(void)state;
	assert_int_equal(gm_memory_new_anon(&r, 1, &m), 0);
	assert_int_equal(gm_snapshot_save(m, base, NULL), 0);
	assert_int_equal(gm_write_u64(m, 1 * MiB, 1), 0);
	assert_int_equal(gm_snapshot_save(m, delta, &opts), 0);
	gm_memory_put(m);
	assert_int_equal(unlink(base), 0);
	assert_int_equal(mkfifo(base, 0600), 0);
	assert_int_equal(run(info, err, sizeof(err)), 2);
	expect_in(err, delta);
	expect_in(err, "its base");
	expect_in(err, base);
	expect_in(err, "is a FIFO, not a regular file");
	assert_int_equal(run(alone, err, sizeof(err)), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(blk_open_refuses_fifo_and_device_promptly),
	    cmocka_unit_test(vhost_blk_refuses_image_that_is_not_a_regular_file),
	    cmocka_unit_test(gmsnap_refuses_fifo_promptly),
	    cmocka_unit_test(gmsnap_names_a_base_that_is_not_a_regular_file),
	};

	if (argc != 3) {
		fprintf(stderr, "usage: %s GM-VHOST-BLK GMSNAP\n", argv[0]);
		return 2;
	}
	vhost_blk_prog = argv[1];
	gmsnap_prog = argv[2];
	return cmocka_run_group_tests(tests, setup, teardown);
}
