/* SPDX-License-Identifier: MIT */
/*
 * test_vhost_blk_bounded.c - gm-vhost-blk's server against front ends that
 * stall, never read, or play with the fds they handed over: every wait of
 * the server is bounded, and a stop request ends a connection at once.
 *
 * Each case runs vu_serve() in a thread on one end of a socketpair and
 * plays the front end on the other, with raw messages. A server that would
 * block forever is detected by a timed join; the test then hangs up its end
 * to free the thread and fails, so a regression fails instead of hanging.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vu.h"

#define REQ_GET_FEATURES     1
#define REQ_SET_OWNER	     3
#define REQ_SET_VRING_NUM    8
#define REQ_GET_VRING_BASE   11
#define REQ_SET_VRING_KICK   12
#define REQ_SET_VRING_ENABLE 18
#define HDR_SIZE	     12
#define FLAG_VERSION	     0x1u

struct server {
	struct vu_server *srv;
	int sv[2];   /* sv[0]: the server's end, sv[1]: the front end's */
	int stop_fd; /* eventfd the test writes to stop the server */
	int ret;
	struct vu_conn_info info;
	pthread_t thread;
	double took; /* seconds vu_serve() ran */
};

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint32_t no_request(void *opaque, unsigned qidx, const struct gm_memory *m,
			   const struct gm_virtq_buf *bufs, size_t n)
{
	(void)opaque;
	(void)qidx;
	(void)m;
	(void)bufs;
	(void)n;
	return 0;
}

static void no_config(void *opaque, unsigned nqueues, uint8_t *cfg)
{
	(void)opaque;
	(void)nqueues;
	(void)cfg;
}

static void no_bad_request(void *opaque)
{
	(void)opaque;
}

static void *serve(void *arg)
{
	struct server *s = arg;
	double t0 = now_s();

	s->ret = vu_serve(s->srv, s->sv[0], s->stop_fd, &s->info);
	s->took = now_s() - t0;
	return NULL;
}

static void server_new(struct server *s, int stall_ms)
{
	struct vu_device dev = {.features = 0,
				.max_bufs = 4,
				.get_config = no_config,
				.handle = no_request,
				.bad_request = no_bad_request};

	memset(s, 0, sizeof(*s));
	assert_int_equal(vu_server_new(&dev, 1, &s->srv), 0);
	vu_server_set_stall_timeout(s->srv, stall_ms);
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(s->stop_fd >= 0);
}

/* A connection: vu_serve() on a fresh socketpair in its own thread. */
static void connect_front_end(struct server *s)
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->sv), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

/*
 * Join the server thread within @seconds. If it does not end, hang up the
 * front end's side (which lets a server blocked on the socket go) and fail.
 */
static void join_within(struct server *s, int seconds)
{
	struct timespec dl;
	int err;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += seconds;
	err = pthread_timedjoin_np(s->thread, NULL, &dl);
	if (err == ETIMEDOUT) {
		shutdown(s->sv[1], SHUT_RDWR);
		close(s->sv[1]);
		s->sv[1] = -1;
		pthread_join(s->thread, NULL);
		fail_msg("vu_serve() did not end within %d s", seconds);
	}
	assert_int_equal(err, 0);
	if (s->sv[1] >= 0)
		close(s->sv[1]);
	s->sv[1] = -1;
}

static void server_free(struct server *s)
{
	vu_server_free(s->srv);
	close(s->stop_fd);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/* Send one message with @size payload bytes and at most one fd (-1: none). */
static void send_msg(int sock, uint32_t request, const void *payload, uint32_t size, int fd)
{
	uint8_t buf[HDR_SIZE + 64];
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {buf, HDR_SIZE + size};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	assert_true(size <= 64);
	put32(buf, request);
	put32(buf + 4, FLAG_VERSION);
	put32(buf + 8, size);
	if (size)
		memcpy(buf + HDR_SIZE, payload, size);
	if (fd >= 0) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.b;
		mh.msg_controllen = sizeof(ctl.b);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)(HDR_SIZE + size));
}

/* Whether a reply of @len bytes arrives within @ms. */
static bool reply_within(int sock, size_t len, int ms)
{
	uint8_t buf[HDR_SIZE + 64];
	size_t got = 0;
	double end = now_s() + ms / 1e3;

	while (got < len) {
		struct pollfd p = {.fd = sock, .events = POLLIN};
		int left = (int)((end - now_s()) * 1e3);
		ssize_t r;

		if (left <= 0 || poll(&p, 1, left) != 1)
			return false;
		r = recv(sock, buf + got, len - got, 0);
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

static void stalled_mid_message_ends_at_once_when_stopped(void **state)
{
	struct server s;
	uint8_t partial[6] = {REQ_GET_FEATURES, 0, 0, 0, FLAG_VERSION, 0};
	uint64_t one = 1;

	(void)state;
	server_new(&s, 60000); /* the stall timeout is not what ends it */
	connect_front_end(&s);
	assert_int_equal(send(s.sv[1], partial, sizeof(partial), MSG_NOSIGNAL), 6);
	usleep(200 * 1000); /* the server is now waiting for the rest */
	assert_int_equal(write(s.stop_fd, &one, sizeof(one)), 8);
	join_within(&s, 2);
	assert_int_equal(s.ret, 0);
	assert_string_equal(s.info.end_reason, "stopped");
	assert_true(s.took < 1.2); /* 0.2 s of stall, then at once */
	server_free(&s);
}

static void stalled_mid_message_times_out_and_the_next_connection_is_served(void **state)
{
	struct server s;
	uint8_t partial[HDR_SIZE + 4];
	uint64_t features;
	bool answered;

	(void)state;
	server_new(&s, 300);
	connect_front_end(&s);
	/* A whole header announcing 8 payload bytes, then only 4 of them. */
	put32(partial, REQ_GET_FEATURES);
	put32(partial + 4, FLAG_VERSION);
	put32(partial + 8, 8);
	memset(partial + HDR_SIZE, 0, 4);
	assert_int_equal(send(s.sv[1], partial, sizeof(partial), MSG_NOSIGNAL),
			 (ssize_t)sizeof(partial));
	join_within(&s, 3);
	assert_int_equal(s.ret, -ETIMEDOUT);
	assert_string_equal(s.info.end_reason, "front end stalled mid-message");
	assert_true(s.took >= 0.25 && s.took < 2.0);

	/* The same server serves the next front end. */
	connect_front_end(&s);
	send_msg(s.sv[1], REQ_GET_FEATURES, NULL, 0, -1);
	answered = reply_within(s.sv[1], HDR_SIZE + sizeof(features), 2000);
	shutdown(s.sv[1], SHUT_WR);
	join_within(&s, 2); /* before any assertion can leave the test */
	assert_true(answered);
	assert_int_equal(s.ret, 0);
	assert_string_equal(s.info.end_reason, "front end disconnected");
	server_free(&s);
}

static void front_end_that_never_reads_replies_is_dropped(void **state)
{
	uint8_t req[HDR_SIZE];
	struct server s;
	int small = 4096;
	size_t sent = 0;

	(void)state;
	server_new(&s, 300);
	connect_front_end(&s);
	assert_int_equal(setsockopt(s.sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	put32(req, REQ_GET_FEATURES);
	put32(req + 4, FLAG_VERSION);
	put32(req + 8, 0);
	/* Ask and ask, never reading a reply, until our own sends would block. */
	for (;;) {
		ssize_t w = send(s.sv[1], req, sizeof(req), MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0) {
			struct pollfd p = {.fd = s.sv[1], .events = POLLOUT};

			assert_true(errno == EAGAIN || errno == EWOULDBLOCK || errno == EPIPE ||
				    errno == ECONNRESET);
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				break; /* the server already hung up */
			if (poll(&p, 1, 1000) != 1)
				break; /* nothing moves any more: the server is stuck or gone */
			continue;
		}
		assert_int_equal(w, (ssize_t)sizeof(req));
		sent++;
	}
	assert_true(sent > 0);
	join_within(&s, 5);
	assert_int_equal(s.ret, -ETIMEDOUT);
	assert_string_equal(s.info.end_reason, "front end stalled mid-message");
	server_free(&s);
}

static void kick_fd_made_blocking_by_the_front_end_does_not_stall_the_queue(void **state)
{
	struct server s;
	uint64_t one = 1;
	uint8_t p[8];
	bool answered;
	int kick, fl;

	(void)state;
	server_new(&s, 2000);
	connect_front_end(&s);
	send_msg(s.sv[1], REQ_SET_OWNER, NULL, 0, -1);
	put32(p, 0);
	put32(p + 4, 16);
	send_msg(s.sv[1], REQ_SET_VRING_NUM, p, 8, -1);
	/* An empty non-blocking eventfd as the kick fd; the open file (and its flags) stays shared.
	 */
	kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(kick >= 0);
	put64(p, 0);
	send_msg(s.sv[1], REQ_SET_VRING_KICK, p, 8, kick);
	usleep(100 * 1000);
	/* Make it blocking behind the server's back, then wake the worker. */
	fl = fcntl(kick, F_GETFL);
	assert_true(fl >= 0);
	assert_int_equal(fcntl(kick, F_SETFL, fl & ~O_NONBLOCK), 0);
	put32(p, 0);
	put32(p + 4, 1);
	send_msg(s.sv[1], REQ_SET_VRING_ENABLE, p, 8, -1);
	usleep(100 * 1000);
	/* GET_VRING_BASE takes the queue's lock: it answers only if the worker is free. */
	put32(p, 0);
	put32(p + 4, 0);
	send_msg(s.sv[1], REQ_GET_VRING_BASE, p, 8, -1);
	answered = reply_within(s.sv[1], HDR_SIZE + 8, 2000);
	/* A kick: wakes the worker; it also frees a worker stuck reading the eventfd. */
	assert_int_equal(write(kick, &one, 8), 8);
	shutdown(s.sv[1], SHUT_WR);
	join_within(&s, 2); /* before any assertion can leave the test */
	assert_true(answered);
	assert_int_equal(s.ret, 0);
	assert_string_equal(s.info.end_reason, "front end disconnected");
	close(kick);
	server_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(stalled_mid_message_ends_at_once_when_stopped),
	    cmocka_unit_test(stalled_mid_message_times_out_and_the_next_connection_is_served),
	    cmocka_unit_test(front_end_that_never_reads_replies_is_dropped),
	    cmocka_unit_test(kick_fd_made_blocking_by_the_front_end_does_not_stall_the_queue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
