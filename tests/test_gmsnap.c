/* SPDX-License-Identifier: MIT */
/*
 * test_gmsnap.c - the gmsnap tool run as a program on snapshot files this
 * test saves through the library: what `info`, `verify` and `diff` print
 * and the exit status each gives (0 fine or identical, 1 damaged or
 * different, 2 usage or I/O error), for full and incremental saves, a
 * damaged file, two states that differ in known pages and two layouts that
 * differ.
 *
 * argv[1] is the gmsnap program; it runs in a child (through $GM_EMULATOR
 * when the tests run under qemu-user) with an alarm it inherits, so a hang
 * fails the test instead of stalling the suite.
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
#include <sys/wait.h>
#include <unistd.h>

#include <guestmem/guestmem.h>

#include "scratch_dir.h"

#define MiB	((uint64_t)1 << 20)
#define PAGE	4096u
#define TIMEOUT 30 /* seconds gmsnap may take on these small files */

static const char *gmsnap_prog;
static char dir[64];
static char out[16384]; /* stdout and stderr of the last run */

static const char *in_dir(const char *name)
{
	static char buf[4][128];
	static unsigned next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

/*
 * Run gmsnap with @args (NULL-terminated), its stdout and stderr into out[].
 * Returns the exit status, or -signal when it was killed.
 */
static int gmsnap(const char *const *args)
{
	const char *emu = getenv("GM_EMULATOR"), *argv[16];
	size_t n = 0, got = 0;
	int pfd[2], status;
	pid_t pid;

	if (emu != NULL && emu[0] != 0)
		argv[n++] = emu;
	argv[n++] = gmsnap_prog;
	for (size_t i = 0; args[i] != NULL && n < 15; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		dup2(pfd[1], STDERR_FILENO);
		close(pfd[0]);
		alarm(TIMEOUT); /* survives exec */
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t r = read(pfd[0], out + got, sizeof(out) - 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || (got += (size_t)r) == sizeof(out) - 1)
			break;
	}
	out[got] = 0;
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "gmsnap killed by signal %d; it printed:\n%s\n", WTERMSIG(status),
			out);
		return -WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}

/* The last run printed @want; show what it printed otherwise. */
static void expect_out(const char *want)
{
	if (strstr(out, want) == NULL)
		fail_msg("expected \"%s\" in gmsnap's output:\n%s", want, out);
}

/* The last run did not print @unwanted. */
static void expect_not_out(const char *unwanted)
{
	if (strstr(out, unwanted) != NULL)
		fail_msg("did not expect \"%s\" in gmsnap's output:\n%s", unwanted, out);
}

/* ---- a small guest: @n regions of @sizes bytes at 0, 16 MiB, 32 MiB ---- */

struct guest {
	struct gm_memory *m;
	struct gm_dirty *d[2];
	size_t n;
};

static void guest_new(struct guest *g, size_t n, const uint64_t *sizes)
{
	struct gm_region_spec specs[2];

	assert_true(n <= 2);
	memset(specs, 0, sizeof(specs));
	g->n = n;
	for (size_t i = 0; i < n; i++) {
		struct gm_mapping *map;

		assert_int_equal(gm_mapping_new_anon((size_t)sizes[i], 0, &map), 0);
		assert_int_equal(gm_dirty_new(sizes[i], &g->d[i]), 0);
		gm_dirty_set_enabled(g->d[i], true);
		specs[i].gpa = i * 16 * MiB;
		specs[i].size = sizes[i];
		specs[i].mapping = map;
		specs[i].dirty = g->d[i];
	}
	assert_int_equal(gm_memory_new(specs, n, &g->m), 0);
	for (size_t i = 0; i < n; i++)
		gm_mapping_put(specs[i].mapping);
}

static void guest_free(struct guest *g)
{
	gm_memory_put(g->m);
	for (size_t i = 0; i < g->n; i++)
		gm_dirty_put(g->d[i]);
}

/* Write @count pages of byte @val from @gpa. */
static void put_pages(const struct guest *g, uint64_t gpa, unsigned count, int val)
{
	unsigned char page[PAGE];

	memset(page, val, sizeof(page));
	for (unsigned i = 0; i < count; i++)
		assert_int_equal(gm_write(g->m, gpa + (uint64_t)i * PAGE, page, PAGE), 0);
}

static const uint64_t two_sizes[] = {1 * MiB, 2 * MiB};

/* ---- info ---- */

static void info_describes_a_full_and_a_delta_save(void **state)
{
	struct guest g;

	(void)state;
	guest_new(&g, 2, two_sizes);
	put_pages(&g, 0, 3, 0x11);
	assert_int_equal(gm_snapshot_save(g.m, in_dir("info-full"), NULL), 0);
	put_pages(&g, 16 * MiB + 5 * PAGE, 2, 0x22);
	struct gm_snapshot_opts opts = GM_OPTS(gm_snapshot_opts, .base = in_dir("info-full"));
	assert_int_equal(gm_snapshot_save(g.m, in_dir("info-delta"), &opts), 0);

	assert_int_equal(gmsnap((const char *[]){"info", in_dir("info-full"), NULL}), 0);
	expect_out("kind        full");
	expect_out("chain       1 file(s)");
	expect_out("RAM         3145728 bytes in 2 region(s)");
	expect_out("pages       768 defined here, 3 stored");
	expect_out("region 0   gpa 0x0000000000000000 size 0x100000");
	expect_out("region 1   gpa 0x0000000001000000 size 0x200000");
	expect_not_out("base ");

	assert_int_equal(gmsnap((const char *[]){"info", in_dir("info-delta"), NULL}), 0);
	expect_out("kind        delta");
	expect_out("base        info-full (id ");
	expect_out("chain       2 file(s)");
	expect_out("2 stored (the rest zero or from the base)");

	/* --alone: the delta read without its base still describes itself. */
	assert_int_equal(gmsnap((const char *[]){"info", in_dir("info-delta"), "--alone", NULL}),
			 0);
	expect_out("kind        delta");
	expect_out("chain       1 file(s)");
	guest_free(&g);
}

static void info_refuses_what_is_not_a_snapshot(void **state)
{
	int fd;

	(void)state;
	fd = open(in_dir("not-a-snapshot"), O_CREAT | O_TRUNC | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello, not a snapshot\n", 22), 22);
	close(fd);
	assert_int_equal(gmsnap((const char *[]){"info", in_dir("not-a-snapshot"), NULL}), 1);
	expect_out("not a guestmem snapshot, or damaged");
	assert_int_equal(gmsnap((const char *[]){"info", in_dir("absent"), NULL}), 2);
	expect_out("No such file or directory");
}

/* ---- verify ---- */

static void verify_passes_a_good_file_and_names_a_damaged_chunk(void **state)
{
	struct gm_snapshot_region r = {.sz = sizeof(r)};
	struct gm_snapshot *s;
	struct guest g;
	unsigned char byte;
	int fd;

	(void)state;
	guest_new(&g, 2, two_sizes);
	put_pages(&g, 16 * MiB, 512, 0x5a); /* region 1 stored in full */
	assert_int_equal(gm_snapshot_save(g.m, in_dir("verify"), NULL), 0);
	guest_free(&g);
	assert_int_equal(gmsnap((const char *[]){"verify", in_dir("verify"), NULL}), 0);
	expect_out("verify: OK");
	expect_out("verifying: 100%");

	/* Flip one bit of the first stored page of region 1. */
	assert_int_equal(gm_snapshot_open(in_dir("verify"), 0, &s), 0);
	assert_int_equal(gm_snapshot_region(s, 1, &r), 0);
	gm_snapshot_close(s);
	assert_int_equal(r.data_pages, 512);
	fd = open(in_dir("verify"), O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, (off_t)r.file_offset + 100), 1);
	assert_int_equal(byte, 0x5a);
	byte ^= 0x01;
	assert_int_equal(pwrite(fd, &byte, 1, (off_t)r.file_offset + 100), 1);
	close(fd);
	assert_int_equal(gmsnap((const char *[]){"verify", in_dir("verify"), NULL}), 1);
	expect_out("DAMAGED: the 2 MiB chunk at guest 0x1000000 fails its checksum");
	expect_not_out(": OK");
}

/* ---- diff ---- */

static void diff_of_identical_states_is_zero(void **state)
{
	struct guest g;

	(void)state;
	guest_new(&g, 2, two_sizes);
	put_pages(&g, 4 * PAGE, 4, 0x33);
	assert_int_equal(gm_snapshot_save(g.m, in_dir("same-a"), NULL), 0);
	assert_int_equal(gm_snapshot_save(g.m, in_dir("same-b"), NULL), 0);
	guest_free(&g);
	assert_int_equal(gmsnap((const char *[]){"diff", in_dir("same-a"), in_dir("same-b"), NULL}),
			 0);
	expect_out("0 of 768 pages differ");
	expect_not_out("differ: 0x");
}

static void diff_lists_each_run_of_differing_pages(void **state)
{
	struct gm_snapshot_opts opts = GM_OPTS(gm_snapshot_opts);
	struct guest g;

	(void)state;
	guest_new(&g, 2, two_sizes);
	put_pages(&g, 0, 8, 0x44);
	assert_int_equal(gm_snapshot_save(g.m, in_dir("run-a"), NULL), 0);
	put_pages(&g, 2 * PAGE, 3, 0x45);		    /* pages 2-4 of region 0 */
	put_pages(&g, 1 * MiB - PAGE, 1, 0x46);		    /* its last page */
	put_pages(&g, 16 * MiB + 2 * MiB - 2 * PAGE, 2, 7); /* the last two of region 1 */
	/* Incremental: the diff reads through the delta to its base. */
	opts.base = in_dir("run-a");
	assert_int_equal(gm_snapshot_save(g.m, in_dir("run-b"), &opts), 0);
	guest_free(&g);

	assert_int_equal(gmsnap((const char *[]){"diff", in_dir("run-a"), in_dir("run-b"), NULL}),
			 1);
	expect_out("differ: 0x0000000000002000..0x0000000000004fff (3 page(s))");
	/* A run that reaches the end of a region ends there, not in the next. */
	expect_out("differ: 0x00000000000ff000..0x00000000000fffff (1 page(s))");
	expect_out("differ: 0x00000000011fe000..0x00000000011fffff (2 page(s))");
	expect_out("6 of 768 pages differ");
}

static void diff_of_different_layouts_says_where(void **state)
{
	static const uint64_t other_sizes[] = {1 * MiB, 4 * MiB};
	static const uint64_t one_size[] = {1 * MiB};
	struct guest g;

	(void)state;
	guest_new(&g, 2, two_sizes);
	assert_int_equal(gm_snapshot_save(g.m, in_dir("layout-a"), NULL), 0);
	guest_free(&g);
	guest_new(&g, 2, other_sizes);
	assert_int_equal(gm_snapshot_save(g.m, in_dir("layout-b"), NULL), 0);
	guest_free(&g);
	guest_new(&g, 1, one_size);
	assert_int_equal(gm_snapshot_save(g.m, in_dir("layout-c"), NULL), 0);
	guest_free(&g);

	assert_int_equal(
	    gmsnap((const char *[]){"diff", in_dir("layout-a"), in_dir("layout-b"), NULL}), 1);
	expect_out("layouts differ at region 1");
	/* Fewer regions on either side is a layout difference too. */
	assert_int_equal(
	    gmsnap((const char *[]){"diff", in_dir("layout-c"), in_dir("layout-a"), NULL}), 1);
	expect_out("layouts differ at region 1");
	assert_int_equal(
	    gmsnap((const char *[]){"diff", in_dir("layout-a"), in_dir("layout-c"), NULL}), 1);
	expect_out("layouts differ at region 1");
}

static void diff_reports_a_file_it_cannot_read(void **state)
{
	struct guest g;

	(void)state;
	guest_new(&g, 1, two_sizes);
	assert_int_equal(gm_snapshot_save(g.m, in_dir("ok"), NULL), 0);
	guest_free(&g);
	/* Either side missing: an I/O error (2), naming the file. */
	assert_int_equal(gmsnap((const char *[]){"diff", in_dir("missing"), in_dir("ok"), NULL}),
			 2);
	expect_out("missing: No such file or directory");
	assert_int_equal(gmsnap((const char *[]){"diff", in_dir("ok"), in_dir("missing"), NULL}),
			 2);
	expect_out("missing: No such file or directory");
}

static void bad_command_lines_are_usage_errors(void **state)
{
	(void)state;
	assert_int_equal(gmsnap((const char *[]){NULL}), 2);
	expect_out("gmsnap: a command is required");
	expect_out("Try 'gmsnap --help'");
	assert_int_equal(gmsnap((const char *[]){"frobnicate", "x", NULL}), 2);
	expect_out("gmsnap: unknown command 'frobnicate'");
	assert_int_equal(gmsnap((const char *[]){"diff", in_dir("ok"), NULL}), 2);
	expect_out("gmsnap: diff wants two files");
}

static int group_setup(void **state)
{
	(void)state;
	return scratch_dir_make(dir, sizeof(dir), "gmsnap");
}

static int group_teardown(void **state)
{
	(void)state;
	return scratch_dir_remove(dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(info_describes_a_full_and_a_delta_save),
	    cmocka_unit_test(info_refuses_what_is_not_a_snapshot),
	    cmocka_unit_test(verify_passes_a_good_file_and_names_a_damaged_chunk),
	    cmocka_unit_test(diff_of_identical_states_is_zero),
	    cmocka_unit_test(diff_lists_each_run_of_differing_pages),
	    cmocka_unit_test(diff_of_different_layouts_says_where),
	    cmocka_unit_test(diff_reports_a_file_it_cannot_read),
	    cmocka_unit_test(bad_command_lines_are_usage_errors),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s GMSNAP-PROGRAM\n", argv[0]);
		return 2;
	}
	gmsnap_prog = argv[1];
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
