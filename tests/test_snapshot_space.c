/* SPDX-License-Identifier: MIT */
/*
 * test_snapshot_space.c - the snapshot layer into a gm_space
 * (<guestmem/snapshot.h>: gm_migrate_recv_space(), gm_snapshot_restore_space(),
 * gm_snapshot_add_to_space()) and into RAM that is not private anonymous
 * memory.
 *
 * A restore or a migration "zeroes" a zero page of private anonymous memory
 * by dropping it (MADV_DONTNEED). In a memfd, MAP_SHARED anonymous memory or
 * a file mapping, dropping a page brings the old contents back (the file's,
 * or the shared object's), so there the page must be written with zeros.
 * Each destination here starts full of junk, in the mapping and in the file
 * behind it; after the restore every byte must be the source's, and a
 * shared file must hold them too (what a vhost-user back end sees).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "scratch_dir.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <guestmem/snapshot.h>
#include <guestmem/space.h>

#define KiB  ((uint64_t)1 << 10)
#define MiB  ((uint64_t)1 << 20)
#define PAGE 4096u
#define JUNK 0xa5

static char dir[64];

static const struct gm_range layout[] = {
    {0, 1 * MiB}, {8 * MiB, 2 * MiB + 12 * KiB}, /* ends inside a 2 MiB chunk */
};
#define NREGIONS (sizeof(layout) / sizeof(layout[0]))

/* How a destination window's RAM is backed. */
enum backing { ANON_PRIVATE, ANON_SHARED, MEMFD, FILE_SHARED, FILE_PRIVATE, NBACKINGS };
static const char *const backing_name[NBACKINGS] = {"private anonymous", "shared anonymous",
						    "memfd", "shared file", "private file"};

/* A destination: a space with @layout, each window backed as @b. */
struct dest {
	enum backing b;
	struct gm_space *sp;
	struct gm_mapping *map[NREGIONS];
};

/* ---- helpers ---- */

/* Page @p of region @r is zero in runs of three pages; other pages never hold a zero byte. */
static bool zero_page(size_t r, uint64_t p)
{
	return (p / 3 + r) % 2 == 1;
}

static uint8_t src_byte(size_t r, uint64_t off)
{
	return zero_page(r, off / PAGE) ? 0 : (uint8_t)(1 + (off * 7 + r) % 254);
}

static uint64_t count_zero_pages(void)
{
	uint64_t n = 0;

	for (size_t r = 0; r < NREGIONS; r++)
		for (uint64_t p = 0; p < layout[r].size / PAGE; p++)
			n += zero_page(r, p);
	return n;
}

/* The source: private anonymous RAM with @layout, filled by src_byte(). */
static struct gm_memory *source_new(void)
{
	struct gm_memory *m;

	assert_int_equal(gm_memory_new_anon(layout, NREGIONS, &m), 0);
	for (size_t r = 0; r < NREGIONS; r++) {
		size_t len = (size_t)layout[r].size;
		uint8_t *buf = malloc(len);

		assert_non_null(buf);
		for (size_t i = 0; i < len; i++)
			buf[i] = src_byte(r, i);
		assert_int_equal(gm_write(m, layout[r].gpa, buf, len), 0);
		free(buf);
	}
	return m;
}

/* A file of @len JUNK bytes in the test directory, already unlinked. */
static int junk_file(size_t len)
{
	char path[96];
	uint8_t buf[PAGE];
	int fd;

	snprintf(path, sizeof(path), "%s/ram-XXXXXX", dir);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(unlink(path), 0);
	memset(buf, JUNK, sizeof(buf));
	for (size_t off = 0; off < len; off += PAGE)
		assert_int_equal(pwrite(fd, buf, PAGE, (off_t)off), PAGE);
	return fd;
}

static void dest_new(struct dest *d, enum backing b)
{
	struct gm_window *w;

	d->b = b;
	assert_int_equal(gm_space_new(GM_SPACE_MEMORY, &d->sp), 0);
	for (size_t r = 0; r < NREGIONS; r++) {
		size_t len = (size_t)layout[r].size;
		int fd;

		switch (b) {
		case ANON_PRIVATE:
		case ANON_SHARED:
			assert_int_equal(gm_mapping_new_anon(
					     len, b == ANON_SHARED ? GM_MAP_SHARED : 0, &d->map[r]),
					 0);
			break;
		case MEMFD:
			assert_int_equal(
			    gm_mapping_new_memfd("test-snapshot-space", len, 0, &d->map[r]), 0);
			break;
		default:
			fd = junk_file(len);
			assert_int_equal(gm_mapping_new_fd(fd, 0, len,
							   b == FILE_SHARED ? GM_MAP_SHARED : 0,
							   &d->map[r]),
					 0);
			close(fd); /* the mapping keeps its own duplicate */
			break;
		}
		/* Junk in the mapping too (a private file's pages become private copies). */
		memset(gm_mapping_host(d->map[r]), JUNK, len);
		assert_int_equal(gm_space_add_ram_mapping(d->sp, layout[r].gpa, layout[r].size,
							  d->map[r], 0, &w),
				 0);
	}
}

static void dest_free(struct dest *d)
{
	gm_space_free(d->sp);
	for (size_t r = 0; r < NREGIONS; r++)
		gm_mapping_put(d->map[r]);
}

/* Assert that @d's RAM (and, when shared, the object behind it) holds the source's bytes. */
static void assert_dest_is_source(const struct dest *d)
{
	struct gm_memory *m;

	assert_int_equal(gm_space_memory_get(d->sp, &m), 0);
	for (size_t r = 0; r < NREGIONS; r++) {
		size_t len = (size_t)layout[r].size;
		uint8_t *buf = malloc(len);
		int fd = gm_mapping_fd(d->map[r]);

		assert_non_null(buf);
		assert_int_equal(gm_read(m, layout[r].gpa, buf, len), 0);
		for (size_t i = 0; i < len; i++)
			if (buf[i] != src_byte(r, i))
				fail_msg("%s: region %zu byte %#zx is %#x, not %#x",
					 backing_name[d->b], r, i, buf[i], src_byte(r, i));
		if (d->b == MEMFD || d->b == FILE_SHARED) {
			assert_int_equal(pread(fd, buf, len, 0), (ssize_t)len);
			for (size_t i = 0; i < len; i++)
				if (buf[i] != src_byte(r, i))
					fail_msg("%s: region %zu file byte %#zx is %#x, not %#x",
						 backing_name[d->b], r, i, buf[i], src_byte(r, i));
		}
		free(buf);
	}
	gm_memory_put(m);
}

struct send_arg {
	const struct gm_memory *m;
	int fd, ret;
	struct gm_migrate_stats st;
};

static void *send_thread(void *arg)
{
	struct send_arg *a = arg;

	a->ret = gm_migrate_send(a->m, a->fd, NULL, &a->st);
	close(a->fd);
	return NULL;
}

/* Migrate @src into @sp over a socketpair; returns the receiver's result. */
static int migrate_into(const struct gm_memory *src, struct gm_space *sp, struct send_arg *a,
			struct gm_migrate_stats *rx)
{
	pthread_t th;
	int sv[2], ret;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*a = (struct send_arg){.m = src, .fd = sv[0], .st = GM_OPTS(gm_migrate_stats)};
	assert_int_equal(pthread_create(&th, NULL, send_thread, a), 0);
	ret = gm_migrate_recv_space(sp, sv[1], NULL, rx);
	close(sv[1]);
	pthread_join(th, NULL);
	return ret;
}

/* ---- tests ---- */

static void migration_into_a_space_gives_the_sender_s_bytes_in_every_backing(void **state)
{
	struct gm_memory *src = source_new();
	struct gm_migrate_stats rx = GM_OPTS(gm_migrate_stats);
	struct send_arg a;
	struct dest d;

	(void)state;
	for (enum backing b = 0; b < NBACKINGS; b++) {
		dest_new(&d, b);
		assert_int_equal(migrate_into(src, d.sp, &a, &rx), 0);
		assert_int_equal(a.ret, 0);
		assert_int_equal(rx.pages, (3 * MiB + 12 * KiB) / PAGE);
		assert_int_equal(rx.zero_pages, count_zero_pages());
		assert_int_equal(rx.pages, a.st.pages);
		assert_int_equal(rx.bytes, a.st.bytes);
		assert_dest_is_source(&d);
		dest_free(&d);
	}
	gm_memory_put(src);
}

static void snapshot_restore_into_a_space_gives_the_saved_bytes_in_every_backing(void **state)
{
	struct gm_memory *src = source_new();
	struct gm_snapshot *s;
	char path[96];
	struct dest d;

	(void)state;
	snprintf(path, sizeof(path), "%s/full", dir);
	assert_int_equal(gm_snapshot_save(src, path, NULL), 0);
	assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
	for (enum backing b = 0; b < NBACKINGS; b++) {
		dest_new(&d, b);
		assert_int_equal(gm_snapshot_restore_space(s, d.sp, NULL), 0);
		assert_dest_is_source(&d);
		dest_free(&d);
	}
	gm_snapshot_close(s);
	gm_memory_put(src);
}

/*
 * A receiving space without one of the sender's regions refuses the stream
 * before any page is applied; the sender sees its receiver go away.
 */
static void migration_into_a_space_missing_a_region_changes_nothing(void **state)
{
	struct gm_memory *src = source_new(), *m;
	struct gm_migrate_stats rx = GM_OPTS(gm_migrate_stats);
	struct gm_mapping *map;
	struct gm_space *sp;
	struct gm_window *w;
	struct send_arg a;
	uint8_t *host;

	(void)state;
	assert_int_equal(
	    gm_mapping_new_memfd("test-snapshot-space", (size_t)layout[0].size, 0, &map), 0);
	host = gm_mapping_host(map);
	memset(host, JUNK, (size_t)layout[0].size);
	assert_int_equal(gm_space_new(GM_SPACE_MEMORY, &sp), 0);
	assert_int_equal(gm_space_add_ram_mapping(sp, 0, layout[0].size, map, 0, &w), 0);
	assert_int_equal(migrate_into(src, sp, &a, &rx), -EFAULT);
	assert_true(a.ret < 0);
	for (size_t i = 0; i < layout[0].size; i++)
		if (host[i] != JUNK)
			fail_msg("byte %#zx was written", i);
	assert_int_equal(gm_space_memory_get(sp, &m), 0);
	assert_int_equal(gm_memory_region_count(m), 1);
	gm_memory_put(m);
	gm_space_free(sp);
	gm_mapping_put(map);
	gm_memory_put(src);
}

static void space_operations_refuse_a_null_space(void **state)
{
	struct gm_migrate_stats st = GM_OPTS(gm_migrate_stats);
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(gm_migrate_recv_space(NULL, sv[0], NULL, &st), -EINVAL);
	assert_int_equal(gm_migrate_send_space(NULL, sv[0], NULL, &st), -EINVAL);
	assert_int_equal(gm_snapshot_save_space(NULL, "unused", NULL), -EINVAL);
	close(sv[0]);
	close(sv[1]);
}

static int cancel_at_end(void *opaque, uint64_t done, uint64_t total)
{
	(*(int *)opaque)++;
	return done == total;
}

/*
 * gm_snapshot_add_to_space() is one transaction: cancelled by its progress
 * callback at the last region, it leaves the space without any window.
 */
static void cancelled_add_to_space_adds_no_window(void **state)
{
	struct gm_memory *src = source_new(), *m;
	struct gm_snapshot *s;
	struct gm_space *sp;
	char path[96];
	int calls = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/cancel", dir);
	assert_int_equal(gm_snapshot_save(src, path, NULL), 0);
	assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
	assert_int_equal(gm_space_new(GM_SPACE_MEMORY, &sp), 0);
	struct gm_snapshot_opts o =
	    GM_OPTS(gm_snapshot_opts, .progress = cancel_at_end, .opaque = &calls);
	assert_int_equal(gm_snapshot_add_to_space(s, sp, GM_RESTORE_COPY, &o), -ECANCELED);
	assert_int_equal(calls, 1);
	assert_int_equal(gm_space_memory_get(sp, &m), 0);
	assert_int_equal(gm_memory_region_count(m), 0);
	gm_memory_put(m);
	/* The space is usable: the same add without the callback succeeds. */
	assert_int_equal(gm_snapshot_add_to_space(s, sp, GM_RESTORE_COPY, NULL), 0);
	assert_int_equal(gm_space_memory_get(sp, &m), 0);
	assert_int_equal(gm_memory_region_count(m), NREGIONS);
	gm_memory_put(m);
	gm_space_free(sp);
	gm_snapshot_close(s);
	gm_memory_put(src);
}

static int setup_dir(void **state)
{
	(void)state;
	return scratch_dir_make(dir, sizeof(dir), "snapshot-space");
}

static int remove_dir(void **state)
{
	(void)state;
	return scratch_dir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(migration_into_a_space_gives_the_sender_s_bytes_in_every_backing),
	    cmocka_unit_test(snapshot_restore_into_a_space_gives_the_saved_bytes_in_every_backing),
	    cmocka_unit_test(migration_into_a_space_missing_a_region_changes_nothing),
	    cmocka_unit_test(space_operations_refuse_a_null_space),
	    cmocka_unit_test(cancelled_add_to_space_adds_no_window),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
