/* SPDX-License-Identifier: MIT */
/*
 * tests/test_vhost_blk_memory.c - what gm-vhost-blk does with the memory
 * the front end shares: the memory table replaced mid-stream while
 * several queues serve (the two multi-queue scenarios, small here; the
 * soak stress/stress_vhost_blk_mq.c runs them large), the inflight buffer
 * (INFLIGHT_SHMFD) kept in step, handed back and survived as garbage,
 * RESET_OWNER forgetting the table, and guest memory or an inflight buffer
 * the front end truncates (issue 17).
 * Part of the test_vhost_blk program (test_vhost_blk.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test_vhost_blk.h"
#include "vhost_blk_frontend.h"

/* ---- tests: memory table replaced mid-stream, several queues ---- */

#define MQ_ROUNDS 20
#define MQ_TABLES 6

static void memory_table_replaced_mid_stream(void **state)
{
	(void)state;
	scenario_memory_table_replaced_mid_stream();
}

static void several_queues_serve_in_parallel(void **state)
{
	(void)state;
	scenario_several_queues_serve_in_parallel(MQ_ROUNDS, MQ_TABLES);
}

/* ---- tests: inflight tracking (INFLIGHT_SHMFD) ---- */

static void inflight_buffer_is_created_and_kept_in_step(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	uint64_t size, counter;
	uint8_t *r;
	uint16_t v;
	int fd;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	fd = get_inflight(&f, &size);
	assert_int_equal(size, IF_QBYTES);
	r = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(r != MAP_FAILED);
	set_inflight(&f, fd, size);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	assert_int_equal(run1(&f, T_IN, 1, DATA, 512, true).status, 0);
	memcpy(&v, r + 8, 2);
	assert_int_equal(v, 1); /* version */
	memcpy(&v, r + 10, 2);
	assert_int_equal(v, QSIZE); /* desc_num */
	memcpy(&v, r + 14, 2);
	assert_int_equal(v, 2); /* used_idx */
	memcpy(&v, r + 12, 2);
	assert_int_equal(v, SLOT_DESCS); /* last_batch_head: the second request's head */
	assert_int_equal(r[16 + 16 * SLOT_DESCS], 0); /* not in flight any more */
	memcpy(&counter, r + 16 + 16 * SLOT_DESCS + 8, 8);
	assert_int_equal(counter, 2);
	fe_stop(&f);
	munmap(r, size);
	close(fd);
	fe_fini(&f);
}

/*
 * Found by fuzz/fuzz_vhost_user.c: an inflight fd shorter than the buffer
 * (mmap_size is only the front end's claim) mapped, and the first store
 * into it killed the back end with SIGBUS.
 */
static void inflight_fd_shorter_than_the_buffer_is_refused(void **state)
{
	uint64_t p[3] = {1ull << 20, 0, 1 | (uint64_t)QSIZE << 16};
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	int fd, before;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	before = count_fds();
	fd = memfd_create("test-inflight", MFD_CLOEXEC); /* 0 bytes */
	assert_true(fd >= 0);
	assert_int_equal(acked(&f, 32, p, 24, &fd, 1), 1);
	assert_int_equal(ftruncate(fd, IF_QBYTES - 1), 0);
	assert_int_equal(acked(&f, 32, p, 24, &fd, 1), 1);
	close(fd);
	assert_int_equal(count_fds(), before); /* the refused fds were closed */
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	fe_fini(&f);
}

/*
 * A previous back end took two writes of the same sector and died before
 * completing them: they are written again in the order it took them, then
 * the ring goes on with the next request.
 */
struct left_setup {
	uint16_t h0, h1, h2;
	int fd;
	uint8_t *r;
};

/* Before the ring starts: the ring and the inflight buffer as a crash left them. */
static void left_in_flight(struct fe *f, void *arg)
{
	struct left_setup *ls = arg;
	struct fe_queue *q = &f->q[0];
	struct seg w0 = {DATA, 512, false}, w1 = {DATA + 512, 512, false},
		   rd = {DATA + 1024, 512, true};
	uint64_t c0 = 5, c1 = 3;
	uint16_t v = 1;

	ls->h0 = build(f, q, 0, T_OUT, 9, &w0, 1);
	ls->h1 = build(f, q, 1, T_OUT, 9, &w1, 1);
	ls->h2 = build(f, q, 2, T_IN, 9, &rd, 1);
	/* h1 was taken first, then h0; neither completed. */
	memcpy(ls->r + 8, &v, 2);
	ls->r[16 + 16 * ls->h0] = 1;
	memcpy(ls->r + 16 + 16 * ls->h0 + 8, &c0, 8);
	ls->r[16 + 16 * ls->h1] = 1;
	memcpy(ls->r + 16 + 16 * ls->h1 + 8, &c1, 8);
	/* The driver had made both available. */
	assert_int_equal(gm_write_le16(f->m, q->avail + 4, ls->h1), 0);
	assert_int_equal(gm_write_le16(f->m, q->avail + 6, ls->h0), 0);
	q->avail_idx = 2;
	assert_int_equal(gm_atomic_store_u32(f->m, q->avail, 2u << 16, __ATOMIC_RELEASE), 0);
	set_inflight(f, ls->fd, IF_QBYTES);
}

/*
 * A previous back end took two writes of the same sector and died before
 * completing them: they are written again in the order it took them, then
 * the ring goes on with the next request.
 */
static void requests_left_in_flight_are_served_again_in_order(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct left_setup ls;
	struct fe_queue *q = &f.q[0];
	uint32_t id, len;
	uint16_t v;
	uint8_t *g;

	(void)state;
	fe_init(&f, 1, false);
	g = gm_host_ptr(f.m, DATA, 1536);
	memset(g, 0xa0, 512);
	memset(g + 512, 0xa1, 512);
	ls.fd = memfd_create("inflight", MFD_CLOEXEC);
	assert_int_equal(ftruncate(ls.fd, IF_QBYTES), 0);
	ls.r = mmap(NULL, IF_QBYTES, PROT_READ | PROT_WRITE, MAP_SHARED, ls.fd, 0);
	assert_true(ls.r != MAP_FAILED);
	fe_start_with(&f, 0, left_in_flight, &ls);
	offer(&f, q, ls.h2);
	assert_true(wait_used(&f, q, &id, &len, 5000));
	assert_int_equal(id, ls.h1);
	assert_true(wait_used(&f, q, &id, &len, 5000));
	assert_int_equal(id, ls.h0);
	assert_true(wait_used(&f, q, &id, &len, 5000));
	assert_int_equal(id, ls.h2);
	assert_int_equal(len, 513);
	assert_int_equal(g[1024], 0xa0); /* h0's data, written last */
	assert_int_equal(g[1535], 0xa0);
	memcpy(&v, ls.r + 14, 2);
	assert_int_equal(v, 3);
	assert_int_equal(ls.r[16 + 16 * ls.h0] | ls.r[16 + 16 * ls.h1] | ls.r[16 + 16 * ls.h2], 0);
	fe_stop(&f);
	assert_int_equal(f.info.resubmitted, 2);
	munmap(ls.r, IF_QBYTES);
	close(ls.fd);
	fe_fini(&f);
}

/* Before the ring starts: a buffer of garbage with one stray head marked. */
static void garbage_in_flight(struct fe *f, void *arg)
{
	int fd = *(int *)arg, i;
	uint64_t small[3] = {64, 0, 1 | (uint64_t)QSIZE << 16};
	uint8_t *r = mmap(NULL, IF_QBYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	uint16_t v;

	assert_true(r != MAP_FAILED);
	for (i = 0; i < IF_QBYTES; i++)
		r[i] = (uint8_t)(i * 37 + 11);
	v = 1; /* version */
	memcpy(r + 8, &v, 2);
	v = 0xffff; /* last_batch_head out of range, used_idx not the ring's */
	memcpy(r + 12, &v, 2);
	memcpy(r + 14, &v, 2);
	for (i = 0; i < (int)QSIZE; i++)
		r[16 + 16 * i] = 0;
	r[16 + 16 * 3] = 1; /* one stray head, whose chain is all zeros */
	munmap(r, IF_QBYTES);
	/* The stray head came from the ring's first entry. */
	assert_int_equal(gm_write_le16(f->m, f->q[0].avail + 4, 3), 0);
	f->q[0].avail_idx = 1;
	assert_int_equal(gm_atomic_store_u32(f->m, f->q[0].avail, 1u << 16, __ATOMIC_RELEASE), 0);
	/* A buffer too small for the queue is refused. */
	assert_int_equal(acked(f, 32, small, 24, &fd, 1), 1);
	set_inflight(f, fd, IF_QBYTES);
}

static void garbage_inflight_buffer_is_survived(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct seg rd = {DATA, 512, true};
	uint32_t id, len;
	int fd;

	(void)state;
	fe_init(&f, 1, false);
	fd = memfd_create("inflight", MFD_CLOEXEC);
	assert_int_equal(ftruncate(fd, IF_QBYTES), 0);
	fe_start_with(&f, 0, garbage_in_flight, &fd);
	offer(&f, &f.q[0], build(&f, &f.q[0], 1, T_IN, 0, &rd, 1));
	/* The stray request is given back first, with nothing written. */
	assert_true(wait_used(&f, &f.q[0], &id, &len, 5000));
	assert_int_equal(id, 3);
	assert_int_equal(len, 0);
	assert_true(wait_used(&f, &f.q[0], &id, &len, 5000));
	assert_int_equal(id, SLOT_DESCS);
	assert_int_equal(len, 513);
	fe_stop(&f);
	assert_int_equal(f.info.resubmitted, 1);
	close(fd);
	fe_fini(&f);
}

/* ---- tests: RESET_OWNER ---- */

/*
 * Give @f's rings their addresses, sizes and fds again on the open
 * connection, as fe_start_with() does, but with neither SET_VRING_BASE
 * (RESET_OWNER put every ring back at index 0) nor a memory table.
 */
static void place_rings_again(struct fe *f)
{
	unsigned i;

	for (i = 0; i < f->nq; i++) {
		struct fe_queue *q = &f->q[i];
		uint32_t a[10] = {i, 0};
		uint64_t ua[4] = {UA + q->desc, UA + q->used, UA + q->avail, 0};

		memset(gm_host_ptr(f->m, q->desc, 0x3000), 0, 0x3000);
		q->avail_idx = q->used_seen = 0;
		vring_state(f, SET_VRING_NUM, i, QSIZE);
		memcpy(a + 2, ua, sizeof(ua));
		send_msg(f, SET_VRING_ADDR, V1, a, 40, NULL, 0);
		close(q->call);
		close(q->kick);
		q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		q->kick = eventfd(0, EFD_CLOEXEC);
		send_fd_msg(f, SET_VRING_CALL, i, q->call);
		send_fd_msg(f, SET_VRING_KICK, i, q->kick);
		vring_state(f, SET_VRING_ENABLE, i, 1);
	}
	sync_fe(f);
}

/*
 * RESET_OWNER (QEMU's device reset without RESET_DEVICE) stops every
 * ring, closes its fds, forgets the memory table and puts the rings back
 * at index 0; the same connection can then set the device up again.
 */
static void reset_owner_stops_the_rings_and_forgets_the_memory_table(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct region_msg r = {0, RAM_SIZE, UA, 0};
	uint8_t p[512];
	uint32_t id, len;
	uint64_t one = 1;
	uint8_t status;
	int memfd, fds;
	unsigned i;

	(void)state;
	fe_init(&f, 2, false);
	fe_start(&f, 0);
	memfd = gm_mapping_fd(f.map);
	for (i = 0; i < 2; i++)
		assert_int_equal(run(&f, i, T_IN, 5, &(struct seg){DATA, 512, true}, 1).status, 0);
	fds = count_fds();
	assert_int_equal(acked(&f, RESET_OWNER, NULL, 0, NULL, 0), 0);
	/*
	 * The back end closed its copy of each ring's kick and call fds; a
	 * call fd its worker was still signalling the last completion on is
	 * closed by the worker right after (vu-internal.h, invariant 3).
	 */
	for (i = 0; i < 100 && count_fds() > fds - 2 * 2; i++)
		usleep(10000);
	assert_true(count_fds() <= fds - 2 * 2);
	/* A request offered now is not served: the ring is stopped. */
	build(&f, &f.q[0], 0, T_IN, 6, &(struct seg){DATA, 512, true}, 1);
	offer(&f, &f.q[0], 0);
	assert_false(wait_used(&f, &f.q[0], &id, &len, 100));
	/* Set up again (features, owner, rings) but without a memory table. */
	set_u64(&f, SET_FEATURES, get_u64(&f, GET_FEATURES) & ~(1ull << VU_F_LOG_ALL));
	send_msg(&f, SET_OWNER, V1, NULL, 0, NULL, 0);
	place_rings_again(&f);
	/* The old table is gone: a request waits for the next one. */
	memset(gm_host_ptr(f.m, DATA, 512), 0, 512);
	offer(&f, &f.q[1], build(&f, &f.q[1], 0, T_IN, 9, &(struct seg){DATA, 512, true}, 1));
	assert_false(wait_used(&f, &f.q[1], &id, &len, 100));
	assert_int_equal(acked(&f, SET_MEM_TABLE, p, mem_table(p, &r, 1), &memfd, 1), 0);
	assert_int_equal(write(f.q[1].kick, &one, 8), 8);
	/* Served from index 0 of the ring (no SET_VRING_BASE was sent). */
	assert_true(wait_used(&f, &f.q[1], &id, &len, 2000));
	assert_int_equal(id, 0);
	assert_int_equal(len, 513);
	assert_int_equal(gm_read_u8(f.m, f.q[1].status, &status), 0);
	assert_int_equal(status, 0);
	assert_int_equal(((uint8_t *)gm_host_ptr(f.m, DATA, 1))[0], img_byte(9 * 512));
	assert_int_equal(run(&f, 0, T_IN, 7, &(struct seg){DATA, 512, true}, 1).status, 0);
	fe_stop(&f);
	fe_fini(&f);
}

/* ---- tests: memory the front end truncates (issue 17) ---- */

#define SET_VRING_ERR 14

/* Make @head available without a kick: the worker does not look until the next one. */
static void publish_quietly(struct fe *f, struct fe_queue *q, uint16_t head)
{
	assert_int_equal(gm_write_le16(f->m, q->avail + 4 + 2ull * (q->avail_idx % QSIZE), head),
			 0);
	q->avail_idx++;
	assert_int_equal(
	    gm_atomic_store_u32(f->m, q->avail, (uint32_t)q->avail_idx << 16, __ATOMIC_RELEASE), 0);
}

static bool signalled(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 1;
}

/*
 * The front end shrinks the guest's memfd to nothing after SET_MEM_TABLE
 * and kicks: the worker's first ring access faults. The ring breaks (err
 * fd), the back end answers the next message, and a new device is served.
 */
/*
 * Under qemu-user (the armhf run) a SIGBUS of a page past the end of a
 * file is the emulator's own: it does not reach the library's handler as
 * the kernel's does (qemu-user 7.2 dies of "uncaught target signal 7").
 */
static void skip_under_emulator_for_sigbus(void)
{
	const char *emu = getenv("GM_EMULATOR");

	if (emu != NULL && emu[0] != 0) {
		print_message("skipped: under qemu-user a SIGBUS past a file's end is the "
			      "emulator's, not the library's to contain\n");
		skip();
	}
}

static void guest_memory_truncated_by_the_front_end_breaks_the_ring_not_the_backend(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	int err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), memfd;
	uint64_t one = 1;

	(void)state;
	skip_under_emulator_for_sigbus();
	assert_true(err >= 0);
	fe_init(&f, 2, false);
	fe_start(&f, 0);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	send_fd_msg(&f, SET_VRING_ERR, 0, err);
	sync_fe(&f);
	publish_quietly(&f, &f.q[0],
			build(&f, &f.q[0], 0, T_IN, 3, &(struct seg){DATA, 512, true}, 1));
	/* From here the test touches none of the guest's memory: it is gone. */
	memfd = gm_mapping_fd(f.map);
	assert_int_equal(ftruncate(memfd, 0), 0);
	assert_int_equal(write(f.q[0].kick, &one, 8), 8);
	assert_true(signalled(err, 5000));
	assert_int_equal(get_u64(&f, GET_QUEUE_NUM), 2); /* the back end still answers */
	/* Zeros again for the front end's own mapping, then hang up. */
	assert_int_equal(ftruncate(memfd, RAM_SIZE), 0);
	fe_stop(&f);
	fe_fini(&f);
	close(err);

	fe_init(&f, 1, false);
	fe_start(&f, 0);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	fe_fini(&f);
}

/*
 * The same with the inflight buffer: the next request's bookkeeping
 * stores past the end of the shrunk file. That request completes (its
 * ring and data are whole), then the ring breaks and serves nothing more.
 */
static void inflight_buffer_truncated_by_the_front_end_breaks_the_ring_not_the_backend(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	int err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), fd;
	uint32_t id, len;
	uint64_t size;

	(void)state;
	skip_under_emulator_for_sigbus();
	assert_true(err >= 0);
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	fd = get_inflight(&f, &size);
	set_inflight(&f, fd, size);
	send_fd_msg(&f, SET_VRING_ERR, 0, err);
	sync_fe(&f); /* the err fd is in place before the worker can need it */
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	assert_false(signalled(err, 0));
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(run1(&f, T_IN, 1, DATA, 512, true).status, 0);
	assert_true(signalled(err, 5000));
	offer(&f, &f.q[0], build(&f, &f.q[0], 0, T_IN, 2, &(struct seg){DATA, 512, true}, 1));
	assert_false(wait_used(&f, &f.q[0], &id, &len, 200));
	assert_int_equal(get_u64(&f, GET_QUEUE_NUM), 1);
	fe_stop(&f);
	fe_fini(&f);
	close(fd);
	close(err);
}

int vhost_blk_memory_protocol_tests(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(inflight_fd_shorter_than_the_buffer_is_refused, fe_teardown),
	};

	return cmocka_run_group_tests_name("protocol: memory", tests, NULL, NULL);
}

int vhost_blk_memory_requests_tests(const char *name)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(inflight_buffer_is_created_and_kept_in_step, fe_teardown),
	    cmocka_unit_test_teardown(requests_left_in_flight_are_served_again_in_order,
				      fe_teardown),
	    cmocka_unit_test_teardown(garbage_inflight_buffer_is_survived, fe_teardown),
	    cmocka_unit_test_teardown(memory_table_replaced_mid_stream, fe_teardown),
	    cmocka_unit_test_teardown(several_queues_serve_in_parallel, fe_teardown),
	    cmocka_unit_test_teardown(reset_owner_stops_the_rings_and_forgets_the_memory_table,
				      fe_teardown),
	    cmocka_unit_test_teardown(
		guest_memory_truncated_by_the_front_end_breaks_the_ring_not_the_backend,
		fe_teardown),
	    cmocka_unit_test_teardown(
		inflight_buffer_truncated_by_the_front_end_breaks_the_ring_not_the_backend,
		fe_teardown),
	};

	return _cmocka_run_group_tests(name, tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
}
