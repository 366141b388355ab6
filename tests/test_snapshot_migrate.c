/* SPDX-License-Identifier: MIT */
/*
 * tests/test_snapshot_migrate.c - the migration stream: an idle guest,
 * over a pipe, from a file, iterations until convergence; a stream cut or
 * damaged on the way, misplaced page records, and a receiver without room.
 * Part of the test_snapshot program (test_snapshot.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <guestmem/snapshot.h>

#include "threads.h"

#include "snapshot_helpers.h"

/* ---- migration ---- */

static void migration_of_idle_guest_copies_everything(void **state)
{
	struct guest g;
	struct gm_memory *dst;
	struct gm_migrate_stats st = GM_OPTS(gm_migrate_stats);
	struct recv_arg r;
	pthread_t th;
	int sv[2];

	(void)state;
	guest_new(&g);
	fill_guest(g.m, 50);
	assert_int_equal(gm_memory_new_anon(layout, NREGIONS, &dst), 0);
	fill_guest(dst, 50);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	r = (struct recv_arg){.m = dst, .fd = sv[1], .st = GM_OPTS(gm_migrate_stats)};
	assert_int_equal(pthread_create(&th, NULL, recv_thread, &r), 0);
	/* The receiver runs on this frame: join it before asserting. */
	int sent = gm_migrate_send(g.m, sv[0], NULL, &st);

	close(sv[0]);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(sent, 0);
	assert_int_equal(r.ret, 0);
	assert_int_equal(st.rounds, 2); /* the full one and an empty final one */
	assert_int_equal(st.pages, (6 * MiB + 12 * KiB) / PAGE);
	assert_int_equal(st.final_pages, 0);
	assert_int_equal(r.st.pages, st.pages);
	assert_int_equal(r.st.bytes, st.bytes);
	assert_same_memory(dst, g.m);
	gm_memory_put(dst);
	guest_free(&g);
}

/*
 * A pipe has no way back for the end acknowledgement: the receiver must
 * not try to write one into its read end, and both sides succeed.
 */
static void migration_over_a_pipe_succeeds_on_both_sides(void **state)
{
	struct guest g;
	struct gm_memory *dst;
	struct gm_migrate_stats st = GM_OPTS(gm_migrate_stats);
	struct recv_arg r;
	pthread_t th;
	int p[2];

	(void)state;
	guest_new(&g);
	fill_guest(g.m, 30);
	assert_int_equal(gm_memory_new_anon(layout, NREGIONS, &dst), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	r = (struct recv_arg){.m = dst, .fd = p[0], .st = GM_OPTS(gm_migrate_stats)};
	assert_int_equal(pthread_create(&th, NULL, recv_thread, &r), 0);
	int sent = gm_migrate_send(g.m, p[1], NULL, &st);

	close(p[1]);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(sent, 0);
	assert_int_equal(r.ret, 0);
	assert_int_equal(st.rounds, 2);
	assert_int_equal(r.st.rounds, 2);
	assert_int_equal(r.st.pages, st.pages);
	assert_int_equal(r.st.bytes, st.bytes);
	assert_same_memory(dst, g.m);
	gm_memory_put(dst);
	guest_free(&g);
}

/*
 * The end acknowledgement goes back only over a socket: a stream received
 * from a file opened read-write (a recorded migration) must not get an
 * acknowledgement record written into it.
 */
static void migration_from_a_file_does_not_write_to_it(void **state)
{
	struct guest g;
	struct gm_memory *dst;
	struct gm_migrate_stats st = GM_OPTS(gm_migrate_stats), got = GM_OPTS(gm_migrate_stats);
	struct stat sb;
	int fd;

	(void)state;
	guest_new(&g);
	fill_guest(g.m, 30);
	assert_int_equal(gm_memory_new_anon(layout, NREGIONS, &dst), 0);
	fd = memfd_create("stream", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(gm_migrate_send(g.m, fd, NULL, &st), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(gm_migrate_recv(dst, fd, NULL, &got), 0);
	assert_int_equal(fstat(fd, &sb), 0);
	assert_int_equal((uint64_t)sb.st_size, st.bytes);
	assert_int_equal(got.bytes, st.bytes);
	assert_int_equal(got.pages, st.pages);
	assert_same_memory(dst, g.m);
	close(fd);
	gm_memory_put(dst);
	guest_free(&g);
}

/* sync_dirty for the test below: rewrites 100 pages on each of its first @busy calls. */
struct busy_writer {
	const struct gm_memory *m;
	unsigned calls, busy;
};

static int write_100_pages(void *opaque)
{
	struct busy_writer *w = opaque;

	if (w->calls++ < w->busy)
		for (uint64_t i = 0; i < 100; i++)
			put_page(w->m, layout[0].gpa + i * PAGE, false);
	return 0;
}

/*
 * max_rounds = UINT_MAX is "no limit": the sender keeps iterating while
 * rounds find more than stop_pages dirty pages (it used to compute
 * max_rounds + 1, which wraps to 0, and stopped after the first round).
 */
static void migration_without_round_limit_iterates_until_converged(void **state)
{
	struct guest g;
	struct gm_memory *dst;
	struct gm_migrate_stats st = GM_OPTS(gm_migrate_stats);
	struct busy_writer w;
	struct gm_migrate_opts o =
	    GM_OPTS(gm_migrate_opts, .max_rounds = UINT_MAX, .sync_dirty = write_100_pages);
	struct recv_arg r;
	pthread_t th;
	int sv[2];

	(void)state;
	guest_new(&g);
	fill_guest(g.m, 20);
	w = (struct busy_writer){.m = g.m, .busy = 4};
	o.opaque = &w;
	assert_int_equal(gm_memory_new_anon(layout, NREGIONS, &dst), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	r = (struct recv_arg){.m = dst, .fd = sv[1], .st = GM_OPTS(gm_migrate_stats)};
	assert_int_equal(pthread_create(&th, NULL, recv_thread, &r), 0);
	int sent = gm_migrate_send(g.m, sv[0], &o, &st);

	close(sv[0]);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(sent, 0);
	assert_int_equal(r.ret, 0);
	/* Syncs 2 to 4 dirty 100 pages each (rounds 2 to 4); sync 5 finds none; final round. */
	assert_int_equal(st.rounds, 5);
	assert_int_equal(w.calls, 6);
	assert_int_equal(st.final_pages, 0);
	assert_int_equal(r.st.rounds, 5);
	assert_same_memory(dst, g.m);
	gm_memory_put(dst);
	guest_free(&g);
}

struct relay {
	int in, out;
	uint64_t limit;
	uint64_t flip_at; /* 0: none, else flip the byte at this offset */
};

/* Copy @in to @out up to @limit bytes (or to the end), then cut both. */
static void *relay_thread(void *arg)
{
	struct relay *r = arg;
	uint64_t done = 0;
	char buf[8192];

	while (done < r->limit) {
		size_t want =
		    r->limit - done < sizeof(buf) ? (size_t)(r->limit - done) : sizeof(buf);
		ssize_t n = read(r->in, buf, want);

		if (n <= 0)
			break;
		if (r->flip_at && r->flip_at >= done && r->flip_at < done + (uint64_t)n)
			buf[r->flip_at - done] ^= 0x01;
		if (write(r->out, buf, (size_t)n) != n)
			break;
		done += (uint64_t)n;
	}
	shutdown(r->in, SHUT_RDWR);
	shutdown(r->out, SHUT_RDWR);
	return NULL;
}

/*
 * Send @g to @dst through a relay (sender <-> a <-> relay <-> b <-> receiver)
 * that cuts the forward stream after @limit bytes or flips one byte; the
 * receiver's acknowledgement travels back unharmed. Returns both results.
 */
static void relayed_migration(struct guest *g, struct gm_memory *dst, uint64_t limit,
			      uint64_t flip_at, int *send_ret, int *recv_ret)
{
	struct relay fwd, back;
	struct recv_arg r;
	pthread_t th_r, th_f, th_b;
	int a[2], b[2], join_err;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
	fwd = (struct relay){.in = a[1], .out = b[0], .limit = limit, .flip_at = flip_at};
	back = (struct relay){.in = b[0], .out = a[1], .limit = UINT64_MAX};
	r = (struct recv_arg){.m = dst, .fd = b[1], .st = GM_OPTS(gm_migrate_stats)};
	start_thread(&th_f, relay_thread, &fwd);
	start_thread(&th_b, relay_thread, &back);
	start_thread(&th_r, recv_thread, &r);
	*send_ret = gm_migrate_send(g->m, a[0], NULL, NULL);
	shutdown(a[0], SHUT_RDWR);
	join_err = pthread_join(th_r, NULL);
	join_err |= pthread_join(th_f, NULL);
	join_err |= pthread_join(th_b, NULL);
	assert_int_equal(join_err, 0);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	*recv_ret = r.ret;
}

static void cut_stream_fails_cleanly_on_both_sides(void **state)
{
	struct guest g;
	struct gm_memory *dst;
	int sret, rret;

	(void)state;
	guest_new(&g);
	fill_guest(g.m, 50);
	assert_int_equal(gm_memory_new_anon(layout, NREGIONS, &dst), 0);
	for (int i = 0; i < 24; i++) {
		/* Cut points inside the header, the hello, and page records. */
		uint64_t limit = i < 4 ? (uint64_t)i * 11 : rnd() % (2 * MiB);

		relayed_migration(&g, dst, limit, 0, &sret, &rret);
		if (rret != -EPIPE)
			fail_msg("cut at %llu: receiver returned %d", (unsigned long long)limit,
				 rret);
		if (sret != -EPIPE && sret != -ECONNRESET)
			fail_msg("cut at %llu: sender returned %d", (unsigned long long)limit,
				 sret);
	}
	gm_memory_put(dst);
	guest_free(&g);
}

static void damaged_stream_is_rejected_by_receiver(void **state)
{
	struct guest g;
	struct gm_memory *dst;
	int sret, rret;

	(void)state;
	guest_new(&g);
	fill_guest(g.m, 50);
	assert_int_equal(gm_memory_new_anon(layout, NREGIONS, &dst), 0);
	for (int i = 0; i < 16; i++) {
		uint64_t flip = 1 + rnd() % (2 * MiB);

		relayed_migration(&g, dst, UINT64_MAX, flip, &sret, &rret);
		if (rret != -EBADMSG)
			fail_msg("flip at %llu: receiver returned %d", (unsigned long long)flip,
				 rret);
		if (sret != 0 && sret != -EPIPE && sret != -ECONNRESET)
			fail_msg("flip at %llu: sender returned %d", (unsigned long long)flip,
				 sret);
	}
	gm_memory_put(dst);
	guest_free(&g);
}

static void receiver_without_room_refuses_before_any_page(void **state)
{
	struct guest g;
	struct gm_memory *dst;
	const struct gm_range r = {0, 1 * MiB};
	int sret, rret;
	uint64_t v = 0x1234;

	(void)state;
	guest_new(&g);
	fill_guest(g.m, 100);
	assert_int_equal(gm_memory_new_anon(&r, 1, &dst), 0);
	assert_int_equal(gm_write_u64(dst, 0, v), 0);
	relayed_migration(&g, dst, UINT64_MAX, 0, &sret, &rret);
	assert_int_equal(rret, -EFAULT);
	assert_int_equal(gm_read_u64(dst, 0, &v), 0);
	assert_int_equal(v, 0x1234);
	gm_memory_put(dst);
	guest_free(&g);
}

/* Append a migration record (header with its checksum, then @len payload bytes) to @fd. */
static void put_record(int fd, uint32_t type, uint32_t count, uint64_t arg, const void *payload,
		       uint32_t len)
{
	unsigned char h[32] = {0};
	XXH3_state_t *st = XXH3_createState();

	assert_non_null(st);
	put_le(h, 4, 0x524d4d47u);
	put_le(h + 4, 4, type);
	put_le(h + 8, 4, count);
	put_le(h + 12, 4, len);
	put_le(h + 16, 8, arg);
	XXH3_64bits_reset(st);
	XXH3_64bits_update(st, h, 24);
	if (len)
		XXH3_64bits_update(st, payload, len);
	put_le(h + 24, 8, XXH3_64bits_digest(st));
	XXH3_freeState(st);
	assert_int_equal(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
	if (len)
		assert_int_equal(write(fd, payload, len), (ssize_t)len);
}

/*
 * PAGES and ZERO records with valid checksums but a misaligned address or
 * one outside every announced region are -EBADMSG (they used to end the
 * receive with 0, as if the stream had ended well), and nothing is written.
 */
static void misplaced_page_records_are_rejected(void **state)
{
	const struct {
		uint32_t type;
		uint64_t gpa;
	} cases[] = {
	    {2, 8 * KiB + 8},	 /* PAGES, misaligned */
	    {3, 8 * KiB + 8},	 /* ZERO, misaligned */
	    {2, 8 * MiB},	 /* PAGES, between regions */
	    {3, 1 * MiB - PAGE}, /* ZERO of 2 pages, across a region's end */
	};
	static unsigned char page[2 * PAGE];
	unsigned char hello[16 + 16 * NREGIONS] = {0};
	struct gm_memory *dst;
	uint64_t v;

	(void)state;
	assert_int_equal(gm_memory_new_anon(layout, NREGIONS, &dst), 0);
	assert_int_equal(gm_write_u64(dst, 8 * KiB, 0x1234), 0);
	put_le(hello, 4, 1);
	put_le(hello + 4, 4, PAGE);
	put_le(hello + 8, 4, NREGIONS);
	for (size_t i = 0; i < NREGIONS; i++) {
		put_le(hello + 16 + 16 * i, 8, layout[i].gpa);
		put_le(hello + 24 + 16 * i, 8, layout[i].size);
	}
	memset(page, 0xa5, sizeof(page));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = memfd_create("stream", MFD_CLOEXEC), ret;

		assert_true(fd >= 0);
		put_record(fd, 1, 0, 0, hello, sizeof(hello));
		put_record(fd, cases[i].type, 2, cases[i].gpa, page,
			   cases[i].type == 2 ? 2 * PAGE : 0);
		put_record(fd, 5, 0, 2, NULL, 0);
		assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
		ret = gm_migrate_recv(dst, fd, NULL, NULL);
		if (ret != -EBADMSG)
			fail_msg("case %zu: receiver returned %d", i, ret);
		close(fd);
	}
	assert_int_equal(gm_read_u64(dst, 8 * KiB, &v), 0);
	assert_int_equal(v, 0x1234);
	gm_memory_put(dst);
}

int snapshot_migrate_tests(void)
{
	const struct CMUnitTest snapshot_migrate[] = {
	    cmocka_unit_test(migration_of_idle_guest_copies_everything),
	    cmocka_unit_test(migration_over_a_pipe_succeeds_on_both_sides),
	    cmocka_unit_test(migration_from_a_file_does_not_write_to_it),
	    cmocka_unit_test(migration_without_round_limit_iterates_until_converged),
	    cmocka_unit_test(cut_stream_fails_cleanly_on_both_sides),
	    cmocka_unit_test(damaged_stream_is_rejected_by_receiver),
	    cmocka_unit_test(misplaced_page_records_are_rejected),
	    cmocka_unit_test(receiver_without_room_refuses_before_any_page),
	};

	return cmocka_run_group_tests(snapshot_migrate, setup_dir, remove_dir);
}
