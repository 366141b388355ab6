/* SPDX-License-Identifier: MIT */
/*
 * tests/test_vhost_blk_fds.c - the fds a front end hands gm-vhost-blk:
 * kick, call, err and inflight fds of every wrong kind refused, semaphore
 * eventfds, a saturated blocking call eventfd (the poll/write race forced
 * with a wrapped poll(), -Wl,--wrap=poll), and features without
 * EVENT_IDX and INDIRECT.
 * Part of the test_vhost_blk program (test_vhost_blk.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "test_vhost_blk.h"
#include "vhost_blk_frontend.h"

/* ---- tests: the fds the front end hands over ---- */

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/*
 * The fd kinds a front end may hand over where the protocol asks for an
 * eventfd (kick, call, err) or a file (inflight): each test makes one.
 */
enum fd_kind {
	K_PIPE_READ,
	K_PIPE_WRITE_HUNG_UP, /* forever readable and hung up for a poller */
	K_SOCKET,
	K_OWN_CONNECTION,     /* the front end's end of this very connection */
	K_BACKEND_CONNECTION, /* the back end's end of it (same process here) */
	K_EPOLL,
	K_LISTENING,
	K_MEMFD,
	K_KINDS,
};

/* A new fd of @kind for a test on @f; the caller closes it. */
static int fd_of_kind(struct fe *f, enum fd_kind kind)
{
	int p[2], fd = -1;

	switch (kind) {
	case K_PIPE_READ:
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		close(p[1]);
		fd = p[0];
		break;
	case K_PIPE_WRITE_HUNG_UP:
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		close(p[0]);
		fd = p[1];
		break;
	case K_SOCKET:
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), 0);
		close(p[1]);
		fd = p[0];
		break;
	case K_OWN_CONNECTION:
		fd = dup(f->sock);
		break;
	case K_BACKEND_CONNECTION:
		fd = dup(f->backend_sock);
		break;
	case K_EPOLL:
		fd = epoll_create1(EPOLL_CLOEXEC);
		break;
	case K_LISTENING:
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fd >= 0);
		/* A bare family is autobind: a fresh abstract address. */
		assert_int_equal(
		    bind(fd, (struct sockaddr *)&(struct sockaddr_un){.sun_family = AF_UNIX},
			 sizeof(sa_family_t)),
		    0);
		assert_int_equal(listen(fd, 1), 0);
		break;
	case K_MEMFD:
		fd = memfd_create("test-not-an-eventfd", MFD_CLOEXEC);
		break;
	case K_KINDS:
		break;
	}
	assert_true(fd >= 0);
	return fd;
}

/*
 * Kick, call and err fds must be eventfds: every other kind is refused
 * (a failed REPLY_ACK), closed, and the queue keeps the eventfds it had.
 */
static void kick_call_err_fds_that_are_not_eventfds_are_refused(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	static const uint32_t reqs[] = {SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR};
	unsigned k, r;
	int before;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	before = count_fds();
	for (k = 0; k < K_KINDS; k++) {
		for (r = 0; r < 3; r++) {
			uint64_t idx = 0;
			int fd = fd_of_kind(&f, (enum fd_kind)k);

			if (acked(&f, reqs[r], &idx, 8, &fd, 1) == 0)
				fail_msg("fd kind %u accepted by request %u", k, reqs[r]);
			close(fd);
		}
	}
	assert_int_equal(count_fds(), before); /* every refused fd was closed */
	/* The queue still kicks and calls through its eventfds. */
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	assert_int_equal(f.info.fds_refused, 3 * K_KINDS);
	assert_string_equal(f.info.fd_refusal, "err fd is not an eventfd");
	fe_fini(&f);
}

/* Without REPLY_ACK the refusal cannot be told: the connection ends, and says why. */
static void call_fd_that_is_a_pipe_without_reply_ack_ends_the_connection(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	int fd;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	fd = fd_of_kind(&f, K_PIPE_READ);
	send_fd_msg(&f, SET_VRING_CALL, 0, fd);
	close(fd);
	assert_int_equal(wait_backend_closed(&f), -EPROTO);
	assert_string_equal(f.info.end_reason, "call fd is not an eventfd");
	fe_fini(&f);
}

/* Semaphore eventfds are eventfds: they work as kick and call fds. */
static void semaphore_eventfds_work_as_kick_and_call(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct fe_queue *q = &f.q[0];

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	close(q->kick);
	close(q->call);
	q->kick = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
	q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
	assert_true(q->kick >= 0 && q->call >= 0);
	assert_int_equal(acked(&f, SET_VRING_CALL, &(uint64_t){0}, 8, &q->call, 1), 0);
	assert_int_equal(acked(&f, SET_VRING_KICK, &(uint64_t){0}, 8, &q->kick, 1), 0);
	assert_int_equal(run1(&f, T_IN, 1, DATA, 512, true).status, 0);
	assert_int_equal(run1(&f, T_IN, 2, DATA, 512, true).status, 0);
	fe_stop(&f);
	assert_int_equal(f.info.fds_refused, 0);
	fe_fini(&f);
}

/* The inflight buffer must be a file (a memfd is one): no pipe, socket, epoll fd. */
static void inflight_fd_that_is_not_a_file_is_refused(void **state)
{
	static const enum fd_kind kinds[] = {K_PIPE_READ, K_SOCKET, K_OWN_CONNECTION, K_EPOLL,
					     K_LISTENING};
	uint64_t p[3] = {IF_QBYTES, 0, 1 | (uint64_t)QSIZE << 16};
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	unsigned i;
	int before;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	before = count_fds();
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		int fd = fd_of_kind(&f, kinds[i]);

		assert_int_equal(acked(&f, 32, p, 24, &fd, 1), 1);
		close(fd);
	}
	assert_int_equal(count_fds(), before);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	assert_int_equal(f.info.fds_refused, sizeof(kinds) / sizeof(kinds[0]));
	assert_string_equal(f.info.fd_refusal, "inflight fd is not a regular file or memfd");
	fe_fini(&f);
}

/*
 * The peer that fills its eventfd between the worker's poll() and write():
 * while lie_pollout is set, a poll() of one fd for POLLOUT that does not
 * wait (the worker's check before it signals) says the fd is writable.
 */
int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
static volatile int lie_pollout;

int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (__atomic_load_n(&lie_pollout, __ATOMIC_ACQUIRE) && n == 1 && timeout == 0 &&
	    fds[0].events == POLLOUT) {
		fds[0].revents = POLLOUT;
		return 1;
	}
	return __real_poll(fds, n, timeout);
}

/*
 * Queue 0's call fd is a blocking eventfd at its highest count, and the
 * worker is told it is writable: its write would block for good. It is cut
 * short, so the worker goes on serving, the protocol thread gets the
 * queue's lock (GET_VRING_BASE), queue 1 is served, the connection ends at
 * once, and the next one is served.
 */
static void saturated_blocking_call_eventfd_does_not_hold_the_worker(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	uint64_t full = 0xfffffffffffffffeull, v = 0;
	uint32_t base[2] = {0, 0}, id, len;
	struct pollfd p;
	bool answered, served;
	struct res other;
	double t0;
	int call;

	(void)state;
	if (getenv("GM_EMULATOR") && strstr(getenv("GM_EMULATOR"), "i386")) {
		/*
		 * qemu-i386 7.2 keeps one GDT for all threads of the process and
		 * sigreturn reloads %gs from it: a thread that handled a signal
		 * runs on with the TLS of the thread created last (a 20-line
		 * program shows it). This test needs the worker to handle one.
		 */
		printf("skipped: under qemu-i386 a thread that handles a signal is left with "
		       "another thread's TLS (qemu-user's shared GDT), and this test needs one\n");
		skip();
	}
	fe_init(&f, 2, false);
	vu_server_set_write_bound(f.srv, 0); /* the real bound, emulated or not */
	fe_start(&f, 0);
	call = eventfd(0, EFD_CLOEXEC); /* blocking */
	assert_true(call >= 0);
	assert_int_equal(write(call, &full, 8), 8);
	assert_int_equal(acked(&f, SET_VRING_CALL, &(uint64_t){0}, 8, &call, 1), 0);
	__atomic_store_n(&lie_pollout, 1, __ATOMIC_RELEASE);
	/* Completions are in the used ring whatever the interrupt does. */
	assert_int_equal(run1(&f, T_IN, 1, DATA, 512, true).status, 0);
	/* Nothing may assert until a stuck worker is freed: the teardown joins it. */
	offer(&f, &f.q[0], build(&f, &f.q[0], 1, T_IN, 2, &(struct seg){DATA, 512, true}, 1));
	served = wait_used(&f, &f.q[0], &id, &len, 2000);
	other = run(&f, 1, T_IN, 3, &(struct seg){DATA + DATA_PER_Q, 512, true}, 1);
	/* GET_VRING_BASE takes queue 0's lock. */
	send_msg(&f, GET_VRING_BASE, V1, base, 8, NULL, 0);
	p = (struct pollfd){.fd = f.sock, .events = POLLIN};
	answered = poll(&p, 1, 2000) == 1;
	__atomic_store_n(&lie_pollout, 0, __ATOMIC_RELEASE);
	if (!answered && read(call, &v, 8) == 8) {
		/* Free the stuck worker so that the teardown can join it. */
	}
	assert_true(served);
	assert_int_equal(other.status, 0);
	assert_true(answered);
	assert_int_equal(recv_reply(&f, GET_VRING_BASE, base, 8), 8);
	t0 = now_s();
	fe_stop(&f);
	assert_true(now_s() - t0 < 1.0);
	/* The count is still full: no write went through. */
	assert_int_equal(read(call, &v, 8), 8);
	assert_int_equal(v, full);
	close(call);
	/* The next connection is served as usual. */
	fe_start(&f, 0);
	assert_int_equal(run1(&f, T_IN, 4, DATA, 512, true).status, 0);
	fe_stop(&f);
	fe_fini(&f);
}

static void features_without_event_idx_and_indirect_still_work(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, (1ull << VU_F_EVENT_IDX) | (1ull << VU_F_INDIRECT_DESC));
	assert_int_equal(run1(&f, T_IN, 7, DATA, 512, true).status, 0);
	assert_int_equal(((uint8_t *)gm_host_ptr(f.m, DATA, 1))[0], img_byte(7 * 512));
	fe_stop(&f);
	fe_fini(&f);
}

int vhost_blk_fds_protocol_tests(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(kick_call_err_fds_that_are_not_eventfds_are_refused,
				      fe_teardown),
	    cmocka_unit_test_teardown(call_fd_that_is_a_pipe_without_reply_ack_ends_the_connection,
				      fe_teardown),
	    cmocka_unit_test_teardown(inflight_fd_that_is_not_a_file_is_refused, fe_teardown),
	};

	return cmocka_run_group_tests_name("protocol: fds", tests, NULL, NULL);
}

int vhost_blk_fds_requests_tests(const char *name)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(features_without_event_idx_and_indirect_still_work,
				      fe_teardown),
	    cmocka_unit_test_teardown(semaphore_eventfds_work_as_kick_and_call, fe_teardown),
	    cmocka_unit_test_teardown(saturated_blocking_call_eventfd_does_not_hold_the_worker,
				      fe_teardown),
	};

	return _cmocka_run_group_tests(name, tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
}
