/* SPDX-License-Identifier: MIT */
/*
 * vu-msg.c - message I/O of the vhost-user server: reading one message
 * (header, payload, and the fds that came with it over SCM_RIGHTS) and
 * sending replies, with or without an fd.
 *
 * Fd accounting (vu-internal.h, invariant 3): vu_read_msg() puts every fd
 * that arrived into msg->fds, at most MAX_FDS, and closes any beyond that
 * or all of them if the message is malformed; a handler that keeps an fd
 * takes it out of msg->fds; vu_close_msg_fds() closes the rest after the
 * handler ran. Stateless: nothing here outlives one message.
 *
 * Bounded waits (struct vu_conn): the socket is only ever read and written
 * with MSG_DONTWAIT, and every wait for it is a poll() that also watches
 * the stop fd and ends at the message's deadline (c->stall_ms after the
 * message began). So a front end that stops mid-message, or never reads
 * its replies, ends its connection (STALLED) instead of holding the
 * server, and a stop request is seen at once (STOPPED).
 *
 * Fd types (invariant 6): vu_is_eventfd() is the check the handlers run on
 * every kick, call and err fd before they keep it.
 */
#include "vu-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void vu_close_msg_fds(struct msg *msg)
{
	size_t i;

	for (i = 0; i < msg->nfds; i++)
		close_fd(&msg->fds[i]);
	msg->nfds = 0;
}

bool vu_is_eventfd(int fd)
{
	char path[40], buf[512];
	struct stat st;
	ssize_t n;
	int info;

	/* Pipes, sockets, files and devices have a type; anonymous inodes none. */
	if (fstat(fd, &st) < 0 || (st.st_mode & S_IFMT) != 0)
		return false;
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	info = open(path, O_RDONLY | O_CLOEXEC);
	if (info < 0)
		return errno == ENOENT || errno == EACCES; /* no /proc: the type check above */
	n = read(info, buf, sizeof(buf) - 1);
	close(info);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "\neventfd-count:") != NULL;
}

/* The monotonic time @ms from now, in ms. */
static int64_t deadline_in(int ms)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 + ms;
}

/*
 * Wait until the socket has @events, the stop fd is readable, or
 * @deadline passes. Returns 0 (try the socket again), STOPPED or STALLED.
 */
static int wait_sock(const struct vu_conn *c, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = c->sock, .events = events},
				      {.fd = c->stop_fd, .events = POLLIN}};
		int64_t left = deadline - deadline_in(0);
		int n;

		if (left <= 0)
			return STALLED;
		n = poll(p, c->stop_fd >= 0 ? 2 : 1, left > 1000 ? 1000 : (int)left);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0 && c->stop_fd >= 0 && p[1].revents)
			return STOPPED;
		if (n > 0 && p[0].revents)
			return 0; /* ready, or hung up: the next call says which */
	}
}

/*
 * After a socket call on c->sock returned -1: 0 to make the call again
 * (interrupted, or the socket became ready for @events), else the error,
 * STOPPED or STALLED.
 */
static int again_or_fail(const struct vu_conn *c, short events, int64_t deadline)
{
	if (errno == EINTR)
		return 0;
	if (errno != EAGAIN && errno != EWOULDBLOCK)
		return -errno;
	return wait_sock(c, events, deadline);
}

/* Receive exactly @len bytes by @deadline. Returns 0, -ECONNRESET at EOF, STOPPED, STALLED, -errno.
 */
static int recv_full(const struct vu_conn *c, void *buf, size_t len, int64_t deadline)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = recv(c->sock, (char *)buf + got, len - got, MSG_DONTWAIT);
		int ret;

		if (r == 0)
			return -ECONNRESET;
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		ret = again_or_fail(c, POLLIN, deadline);
		if (ret)
			return ret;
	}
	return 0;
}

/* Send exactly @len bytes by @deadline. Returns 0, STOPPED, STALLED, -errno. */
static int send_full(const struct vu_conn *c, const void *buf, size_t len, int64_t deadline)
{
	size_t off = 0;

	while (off < len) {
		ssize_t w =
		    send(c->sock, (const char *)buf + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
		int ret;

		if (w >= 0) {
			off += (size_t)w;
			continue;
		}
		ret = again_or_fail(c, POLLOUT, deadline);
		if (ret)
			return ret;
	}
	return 0;
}

int vu_read_msg(const struct vu_conn *c, struct msg *msg)
{
	union {
		char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	uint8_t hdr[HDR_SIZE];
	struct iovec iov = {.iov_base = hdr, .iov_len = sizeof(hdr)};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.buf,
			    .msg_controllen = sizeof(ctl.buf)};
	int64_t deadline = deadline_in(c->stall_ms);
	struct cmsghdr *cm;
	ssize_t r;
	int ret;

	msg->nfds = 0;
	while ((r = recvmsg(c->sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT)) < 0) {
		ret = again_or_fail(c, POLLIN, deadline);
		if (ret)
			return ret;
	}
	if (r == 0)
		return -ECONNRESET;
	for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		size_t n, i;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		n = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			int f;

			memcpy(&f, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (msg->nfds < MAX_FDS)
				msg->fds[msg->nfds++] = f;
			else
				close(f);
		}
	}
	if (mh.msg_flags & MSG_CTRUNC) {
		/* More fds than any message may carry: the kernel closed the rest. */
		vu_close_msg_fds(msg);
		return DISCONNECT;
	}
	if ((size_t)r < sizeof(hdr)) {
		ret = recv_full(c, hdr + r, sizeof(hdr) - (size_t)r, deadline);
		if (ret)
			goto err;
	}
	msg->request = get32(hdr);
	msg->flags = get32(hdr + 4);
	msg->size = get32(hdr + 8);
	ret = DISCONNECT;
	if ((msg->flags & FLAG_VERSION_MASK) != FLAG_VERSION || msg->size > MAX_PAYLOAD)
		goto err;
	ret = recv_full(c, msg->p, msg->size, deadline);
	if (ret)
		goto err;
	return 0;
err:
	vu_close_msg_fds(msg);
	return ret == -ECONNRESET ? DISCONNECT : ret;
}

int vu_send_reply(const struct vu_conn *c, const struct msg *msg, const void *payload,
		  uint32_t size)
{
	uint8_t buf[HDR_SIZE + HDR_SIZE + VU_CONFIG_MAX];

	put32(buf, msg->request);
	put32(buf + 4, FLAG_VERSION | FLAG_REPLY);
	put32(buf + 8, size);
	memcpy(buf + HDR_SIZE, payload, size);
	return send_full(c, buf, HDR_SIZE + size, deadline_in(c->stall_ms));
}

/* A reply carrying one file descriptor (GET_INFLIGHT_FD). */
int vu_send_reply_fd(const struct vu_conn *c, const struct msg *msg, const void *payload,
		     uint32_t size, int pass)
{
	uint8_t buf[HDR_SIZE + 32];
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov = {buf, HDR_SIZE + size};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.b,
			    .msg_controllen = sizeof(ctl.b)};
	int64_t deadline = deadline_in(c->stall_ms);
	struct cmsghdr *cm;
	ssize_t w;
	int ret;

	memset(&ctl, 0, sizeof(ctl));
	put32(buf, msg->request);
	put32(buf + 4, FLAG_VERSION | FLAG_REPLY);
	put32(buf + 8, size);
	memcpy(buf + HDR_SIZE, payload, size);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &pass, sizeof(int));
	while ((w = sendmsg(c->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL)) < 0) {
		ret = again_or_fail(c, POLLOUT, deadline);
		if (ret)
			return ret;
	}
	/* The fd went with the first byte; the rest of a short send goes alone. */
	return send_full(c, buf + w, HDR_SIZE + size - (size_t)w, deadline);
}

int vu_reply_u64(const struct vu_conn *c, const struct msg *msg, uint64_t v)
{
	uint8_t p[8];

	put64(p, v);
	return vu_send_reply(c, msg, p, 8);
}
