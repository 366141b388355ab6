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
 */
#include "vu-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void vu_close_msg_fds(struct msg *msg)
{
	size_t i;

	for (i = 0; i < msg->nfds; i++)
		close_fd(&msg->fds[i]);
	msg->nfds = 0;
}

/* Read exactly @len bytes. Returns 0, -ECONNRESET at EOF, -errno. */
static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = read(fd, (char *)buf + got, len - got);

		if (r == 0)
			return -ECONNRESET;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)r;
	}
	return 0;
}

int vu_read_msg(int fd, struct msg *msg)
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
	struct cmsghdr *c;
	ssize_t r;
	int ret;

	msg->nfds = 0;
	do {
		r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	} while (r < 0 && errno == EINTR);
	if (r == 0)
		return -ECONNRESET;
	if (r < 0)
		return -errno;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t n, i;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
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
		ret = read_full(fd, hdr + r, sizeof(hdr) - (size_t)r);
		if (ret)
			goto err;
	}
	msg->request = get32(hdr);
	msg->flags = get32(hdr + 4);
	msg->size = get32(hdr + 8);
	ret = DISCONNECT;
	if ((msg->flags & FLAG_VERSION_MASK) != FLAG_VERSION || msg->size > MAX_PAYLOAD)
		goto err;
	ret = read_full(fd, msg->p, msg->size);
	if (ret)
		goto err;
	return 0;
err:
	vu_close_msg_fds(msg);
	return ret == -ECONNRESET ? DISCONNECT : ret;
}

int vu_send_reply(int fd, const struct msg *msg, const void *payload, uint32_t size)
{
	uint8_t buf[HDR_SIZE + HDR_SIZE + VU_CONFIG_MAX];
	size_t len = HDR_SIZE + size, off = 0;

	put32(buf, msg->request);
	put32(buf + 4, FLAG_VERSION | FLAG_REPLY);
	put32(buf + 8, size);
	memcpy(buf + HDR_SIZE, payload, size);
	while (off < len) {
		ssize_t w = send(fd, buf + off, len - off, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)w;
	}
	return 0;
}

/* A reply carrying one file descriptor (GET_INFLIGHT_FD). */
int vu_send_reply_fd(int fd, const struct msg *msg, const void *payload, uint32_t size, int pass)
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
	struct cmsghdr *c;
	ssize_t w;

	memset(&ctl, 0, sizeof(ctl));
	put32(buf, msg->request);
	put32(buf + 4, FLAG_VERSION | FLAG_REPLY);
	put32(buf + 8, size);
	memcpy(buf + HDR_SIZE, payload, size);
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &pass, sizeof(int));
	do {
		w = sendmsg(fd, &mh, MSG_NOSIGNAL);
	} while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	return (size_t)w == HDR_SIZE + size ? 0 : -EIO;
}

int vu_reply_u64(int fd, const struct msg *msg, uint64_t v)
{
	uint8_t p[8];

	put64(p, v);
	return vu_send_reply(fd, msg, p, 8);
}
