/* SPDX-License-Identifier: MIT */
/*
 * test_snapshot.c - snapshot files, the three restore modes and the
 * migration stream (<guestmem/snapshot.h>).
 *
 * Guests are small (a few MiB in three regions, one of them ending inside a
 * 2 MiB chunk) with a known pattern: a mix of zero and random pages. Every
 * round trip compares the restored memory byte for byte with the source.
 * The corruption tests flip every byte of a small file's header and layout,
 * and truncate the file at every page boundary; each must be refused with
 * -EBADMSG, and data damage must be caught by the chunk checksums.
 *
 * One program, one group per file: this file holds the two cases on a
 * gm_space and main(); test_snapshot_save.c (files: save, open, restore,
 * corruption, lazy restore), test_snapshot_migrate.c (the migration
 * stream) and test_snapshot_fail.c (injected failures) hold the rest;
 * snapshot_helpers.c what they share. test_snapshot_space.c, a program of
 * its own, has more on spaces and on shared or file-backed RAM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <guestmem/snapshot.h>
#include <guestmem/space.h>

#include "snapshot_helpers.h"

/* ---- on a gm_space ---- */

static struct gm_space *space_with_layout(void)
{
	struct gm_space *sp;
	struct gm_window *w;

	assert_int_equal(gm_space_new(GM_SPACE_MEMORY, &sp), 0);
	for (size_t i = 0; i < NREGIONS; i++)
		assert_int_equal(gm_space_add_ram(sp, layout[i].gpa, layout[i].size, 0, 0, &w), 0);
	return sp;
}

static void space_save_then_add_to_new_space_in_every_mode(void **state)
{
	const enum gm_restore_mode modes[] = {GM_RESTORE_COPY, GM_RESTORE_PRIVATE, GM_RESTORE_LAZY};
	struct gm_space *src = space_with_layout(), *dst;
	struct gm_memory *a, *b;
	struct gm_snapshot *s;
	const char *why;

	(void)state;
	assert_int_equal(gm_space_dirty_enable(src, true), 0);
	assert_int_equal(gm_space_memory_get(src, &a), 0);
	fill_guest(a, 30);
	assert_int_equal(gm_snapshot_save_space(src, path_of("space-base"), NULL), 0);
	/* A delta through the space's own dirty bitmaps. */
	put_page(a, 16 * MiB + 3 * PAGE, false);
	put_page(a, 64 * MiB, true);
	struct gm_snapshot_opts o = GM_OPTS(gm_snapshot_opts, .base = path_of("space-base"));
	assert_int_equal(gm_snapshot_save_space(src, path_of("space-delta"), &o), 0);
	assert_int_equal(gm_snapshot_open(path_of("space-delta"), 0, &s), 0);
	for (size_t i = 0; i < 3; i++) {
		if (modes[i] == GM_RESTORE_LAZY && !lazy_testable(&why))
			continue; /* reported by lazy_restore_* */
		assert_int_equal(gm_space_new(GM_SPACE_MEMORY, &dst), 0);
		assert_int_equal(gm_snapshot_add_to_space(s, dst, modes[i], NULL), 0);
		assert_int_equal(gm_space_memory_get(dst, &b), 0);
		assert_int_equal(gm_memory_region_count(b), NREGIONS);
		assert_same_memory(a, b);
		/* Adding the layout again overlaps every window: nothing changes. */
		assert_int_equal(gm_snapshot_add_to_space(s, dst, modes[i], NULL), -EEXIST);
		gm_memory_put(b);
		gm_space_free(dst);
	}
	/* Copy restore into an existing space with other contents. */
	dst = space_with_layout();
	assert_int_equal(gm_space_memory_get(dst, &b), 0);
	fill_guest(b, 50);
	assert_int_equal(gm_snapshot_restore_space(s, dst, NULL), 0);
	assert_same_memory(a, b);
	gm_memory_put(b);
	gm_space_free(dst);
	gm_snapshot_close(s);
	gm_memory_put(a);
	gm_space_free(src);
}

static int count_syncs(void *opaque)
{
	(*(int *)opaque)++;
	return 0;
}

static void space_migration_copies_everything_and_syncs_before_each_collect(void **state)
{
	struct gm_space *src = space_with_layout(), *dst = space_with_layout();
	struct gm_memory *a, *b;
	struct gm_migrate_stats st = GM_OPTS(gm_migrate_stats);
	struct recv_arg r;
	pthread_t th;
	int sv[2], syncs = 0;

	(void)state;
	assert_int_equal(gm_space_memory_get(src, &a), 0);
	assert_int_equal(gm_space_memory_get(dst, &b), 0);
	fill_guest(a, 50);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	r = (struct recv_arg){.m = b, .fd = sv[1], .st = GM_OPTS(gm_migrate_stats)};
	assert_int_equal(pthread_create(&th, NULL, recv_thread, &r), 0);
	struct gm_migrate_opts o =
	    GM_OPTS(gm_migrate_opts, .sync_dirty = count_syncs, .opaque = &syncs);
	int sent = gm_migrate_send_space(src, sv[0], &o, &st);

	close(sv[0]);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(sent, 0);
	assert_int_equal(r.ret, 0);
	/* Before round 1, before the convergence check, before the final round. */
	assert_int_equal(syncs, 3);
	assert_int_equal(st.rounds, 2);
	assert_same_memory(a, b);
	gm_memory_put(a);
	gm_memory_put(b);
	gm_space_free(src);
	gm_space_free(dst);
}

int snapshot_on_space_tests(void)
{
	const struct CMUnitTest snapshot_on_space[] = {
	    cmocka_unit_test(space_save_then_add_to_new_space_in_every_mode),
	    cmocka_unit_test(space_migration_copies_everything_and_syncs_before_each_collect),
	};

	return cmocka_run_group_tests(snapshot_on_space, setup_dir, remove_dir);
}

int main(void)
{
	int failed = 0;

	signal(SIGPIPE, SIG_IGN);
	failed += snapshot_save_tests();
	failed += snapshot_migrate_tests();
	failed += snapshot_on_space_tests();
	return failed + snapshot_fail_tests(); /* test_snapshot_fail.c */
}
