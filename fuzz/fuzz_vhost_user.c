/* SPDX-License-Identifier: MIT */
/*
 * fuzz/fuzz_vhost_user.c - libFuzzer target for the vhost-user protocol
 * server of gm-vhost-blk (tools/gm-vhost-blk/vu*.c), with its block device
 * (blk.c) on a small memfd image.
 *
 * One input is one connection: first the guest memory contents (written
 * into a 64 KiB memfd the front end hands over as its RAM), then up to 48
 * messages, each a header the fuzzer chooses (request, flags, declared
 * size), as many payload bytes as it gives, and 0-3 (or 9: more than any
 * message may carry) file descriptors of a kind it picks: the guest RAM
 * memfd, a fresh eventfd, a fresh empty memfd, or a pipe. A sender thread
 * writes the messages into a socketpair and then reads (and closes) every
 * reply, while vu_serve() runs here as it does in the program.
 *
 * Checked for every input: no crash or sanitizer report; vu_serve() ends
 * with 0 or -EPROTO and a reason; no fd is leaked (the count of open fds
 * is the same before and after); and the same server then serves a fresh
 * connection correctly (features, queue count, config space).
 * Built only with clang (meson -Dfuzz=enabled); run with `make fuzz`.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "blk.h"
#include "vu.h"

#define GUEST_BYTES ((size_t)64 * 1024)
#define IMAGE_BYTES ((size_t)64 * 1024)
#define NQUEUES	    2u
#define MAXMSG	    48u
#define MAXFDS	    9u

#define CHECK(c)                                                                            \
	do {                                                                                \
		if (!(c)) {                                                                 \
			fprintf(stderr, "fuzz_vhost_user.c:%d: CHECK(%s)\n", __LINE__, #c); \
			abort();                                                            \
		}                                                                           \
	} while (0)

struct in {
	const uint8_t *p;
	size_t n;
};

static uint64_t get(struct in *in, unsigned bytes)
{
	uint64_t v = 0;
	unsigned i;

	for (i = 0; i < bytes && in->n > 0; i++, in->n--)
		v |= (uint64_t)*in->p++ << (8 * i);
	return v;
}

struct out_msg {
	uint8_t hdr[12];
	const uint8_t *payload;
	size_t len;
	int fds[MAXFDS];
	unsigned kinds[MAXFDS];
	size_t nfds;
};

struct conv {
	int fd;
	struct out_msg *msgs;
	size_t n;
	struct pollfd ev[MAXMSG * MAXFDS]; /* eventfds sent, when a kick was among them */
	nfds_t nev;
};

static int guest_fd = -1;
static struct blk_dev blk;
static struct vu_server *srv;

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	CHECK(d != NULL);
	while ((e = readdir(d)))
		n++;
	closedir(d);
	return n;
}

static void send_one(int fd, const struct out_msg *m, bool *dead)
{
	union {
		char b[CMSG_SPACE(MAXFDS * sizeof(int))];
		struct cmsghdr align;
	} ctl;
	struct iovec iov[2] = {{(void *)m->hdr, sizeof(m->hdr)}, {(void *)m->payload, m->len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = m->len ? 2 : 1};
	size_t want = sizeof(m->hdr) + m->len, off;
	ssize_t w;

	memset(&ctl, 0, sizeof(ctl));
	if (m->nfds) {
		struct cmsghdr *c;

		mh.msg_control = ctl.b;
		mh.msg_controllen = CMSG_SPACE(m->nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(m->nfds * sizeof(int));
		memcpy(CMSG_DATA(c), m->fds, m->nfds * sizeof(int));
	}
	do {
		w = sendmsg(fd, &mh, MSG_NOSIGNAL);
	} while (w < 0 && errno == EINTR);
	if (w < 0) {
		*dead = true; /* the server hung up on an earlier message */
		return;
	}
	/* The rest, if the socket took only part. */
	for (off = (size_t)w; off < want;) {
		const uint8_t *p =
		    off < sizeof(m->hdr) ? m->hdr + off : m->payload + (off - sizeof(m->hdr));
		size_t n = off < sizeof(m->hdr) ? sizeof(m->hdr) - off : want - off;

		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			*dead = true;
			return;
		}
		off += (size_t)w;
	}
}

/* Read replies until the server closes, closing every fd they carry. */
static void drain(int fd)
{
	for (;;) {
		union {
			char b[CMSG_SPACE(16 * sizeof(int))];
			struct cmsghdr align;
		} ctl;
		uint8_t buf[4096];
		struct iovec iov = {buf, sizeof(buf)};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = ctl.b,
				    .msg_controllen = sizeof(ctl.b)};
		struct cmsghdr *c;
		ssize_t r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int), i;

			for (i = 0; c->cmsg_type == SCM_RIGHTS && i < n; i++) {
				int f;

				memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				close(f);
			}
		}
	}
}

static void *sender(void *arg)
{
	struct conv *c = arg;
	bool dead = false;
	size_t i;

	for (i = 0; i < c->n && !dead; i++)
		send_one(c->fd, &c->msgs[i], &dead);
	/*
	 * A started ring is served by a worker thread: give it a moment to
	 * signal one of the eventfds we sent (call, err) before hanging up,
	 * so that requests are served rather than lost to the disconnect.
	 */
	if (!dead && c->nev)
		poll(c->ev, c->nev, 5);
	shutdown(c->fd, SHUT_WR);
	drain(c->fd);
	return NULL;
}

static int new_fd(unsigned kind)
{
	int p[2], fd;

	switch (kind) {
	case 0:
		return dup(guest_fd);
	case 1:
		return eventfd(0, EFD_CLOEXEC);
	case 2:
		fd = memfd_create("fuzz-empty", MFD_CLOEXEC);
		if (fd >= 0 && ftruncate(fd, 4096) < 0) {
			close(fd);
			fd = -1;
		}
		return fd;
	default:
		if (pipe2(p, O_CLOEXEC) < 0)
			return -1;
		close(p[1]);
		return p[0];
	}
}

/* Serve one connection whose front end sends @msgs. */
static int serve(struct out_msg *msgs, size_t n, bool kicked, struct vu_conn_info *info)
{
	static struct conv c;
	pthread_t t;
	int sv[2], ret;
	size_t i, k;

	c.msgs = msgs;
	c.n = n;
	c.nev = 0;
	for (i = 0; kicked && i < n; i++)
		for (k = 0; k < msgs[i].nfds; k++)
			if (msgs[i].kinds[k] == 1)
				c.ev[c.nev++] =
				    (struct pollfd){.fd = msgs[i].fds[k], .events = POLLIN};

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	c.fd = sv[0];
	CHECK(pthread_create(&t, NULL, sender, &c) == 0);
	ret = vu_serve(srv, sv[1], -1, info); /* closes sv[1] */
	pthread_join(t, NULL);
	close(sv[0]);
	return ret;
}

static void msg_hdr(struct out_msg *m, uint32_t req, uint32_t flags, uint32_t size)
{
	memcpy(m->hdr, &req, 4);
	memcpy(m->hdr + 4, &flags, 4);
	memcpy(m->hdr + 8, &size, 4);
}

/* A fresh connection after the fuzzed one: the server must answer as new. */
static void check_fresh_connection(void)
{
	static const uint8_t ack_proto[8] = {1u << VU_PF_REPLY_ACK};
	static const uint8_t cfg_req[12 + 8] = {0, 0, 0, 0, 8};
	struct out_msg m[4] = {0};
	struct vu_conn_info info;
	int sv[2];
	uint8_t buf[256];
	uint64_t v;
	size_t got = 0;
	ssize_t r;
	unsigned i;

	msg_hdr(&m[0], 1, 1, 0);      /* GET_FEATURES */
	msg_hdr(&m[1], 17, 1, 0);     /* GET_QUEUE_NUM */
	msg_hdr(&m[2], 16, 1 | 8, 8); /* SET_PROTOCOL_FEATURES REPLY_ACK */
	m[2].payload = ack_proto;
	m[2].len = 8;
	msg_hdr(&m[3], 24, 1 | 8, sizeof(cfg_req)); /* GET_CONFIG, 8 bytes: capacity */
	m[3].payload = cfg_req;
	m[3].len = sizeof(cfg_req);
	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	for (i = 0; i < 4; i++) {
		bool dead = false;

		send_one(sv[0], &m[i], &dead);
		CHECK(!dead);
	}
	shutdown(sv[0], SHUT_WR);
	CHECK(vu_serve(srv, sv[1], -1, &info) == 0);
	CHECK(info.messages == 4 && info.regions == 0 && info.queues_started == 0);
	CHECK(strcmp(info.end_reason, "front end disconnected") == 0);
	while (got < sizeof(buf) && (r = read(sv[0], buf + got, sizeof(buf) - got)) > 0)
		got += (size_t)r;
	close(sv[0]);
	/*
	 * Two u64 replies (features, queues), none for SET_PROTOCOL_FEATURES
	 * (REPLY_ACK was not on when it arrived), then the config reply.
	 */
	CHECK(got == 2 * (12 + 8) + 12 + 12 + 8);
	memcpy(&v, buf + 12, 8);
	CHECK(v & (1ull << VU_F_PROTOCOL_FEATURES));
	memcpy(&v, buf + 20 + 12, 8);
	CHECK(v == NQUEUES);
	memcpy(&v, buf + 40 + 12 + 12, 8);
	CHECK(v == IMAGE_BYTES / 512);
}

static void init(void)
{
	struct vu_device dev;
	char path[64], err[256];
	int img = memfd_create("fuzz-image", MFD_CLOEXEC);

	CHECK(img >= 0 && ftruncate(img, IMAGE_BYTES) == 0);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", img);
	CHECK(blk_open(&blk, path, false, err, sizeof(err)) == 0);
	close(img);
	blk_vu_device(&blk, &dev);
	CHECK(vu_server_new(&dev, NQUEUES, &srv) == 0);
	guest_fd = memfd_create("fuzz-guest", MFD_CLOEXEC);
	CHECK(guest_fd >= 0 && ftruncate(guest_fd, GUEST_BYTES) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct out_msg msgs[MAXMSG];
	static uint8_t zero[GUEST_BYTES];
	struct in in = {data, size};
	struct vu_conn_info info;
	size_t n = 0, glen, i, k;
	bool kicked = false;
	int before, ret;

	if (!srv)
		init();
	before = count_fds();
	/* Guest RAM: zeroes, then the fuzzer's bytes at its start. */
	glen = (size_t)get(&in, 2) % 8192;
	if (glen > in.n)
		glen = in.n;
	CHECK(pwrite(guest_fd, zero, GUEST_BYTES, 0) == (ssize_t)GUEST_BYTES);
	if (glen)
		CHECK(pwrite(guest_fd, in.p, glen, 0) == (ssize_t)glen);
	in.p += glen;
	in.n -= glen;
	while (in.n > 0 && n < MAXMSG) {
		struct out_msg *m = &msgs[n++];
		unsigned rq = (unsigned)get(&in, 1), fl = (unsigned)get(&in, 1);
		unsigned fdspec = (unsigned)get(&in, 1), kinds = (unsigned)get(&in, 1);
		uint32_t req = rq == 0xff ? UINT32_MAX : rq % 40;
		uint32_t flags = (fl & 0x80) ? (fl & 0x7f) : (1u | (fl & 0xc));
		uint32_t dsize = (uint32_t)get(&in, 2) & 0x1fff;

		msg_hdr(m, req, flags, dsize);
		m->payload = in.p;
		m->len = dsize < in.n ? dsize : in.n;
		in.p += m->len;
		in.n -= m->len;
		m->nfds = (fdspec & 0x80) ? MAXFDS : (fdspec & 3);
		kicked |= req == 12 && m->nfds > 0;
		for (k = 0; k < m->nfds; k++) {
			m->kinds[k] = (kinds >> (2 * (k % 4))) & 3;
			m->fds[k] = new_fd(m->kinds[k]);
			CHECK(m->fds[k] >= 0);
		}
	}
	ret = serve(msgs, n, kicked, &info);
	if (getenv("FUZZ_VU_VERBOSE")) {
		struct blk_stats st;

		blk_stats_take(&blk, &st, true);
		fprintf(stderr,
			"%d %s: %llu messages, %zu regions, %u started; blk in %llu out %llu "
			"malformed %llu failed %llu\n",
			ret, info.end_reason, (unsigned long long)info.messages, info.regions,
			info.queues_started, (unsigned long long)st.in, (unsigned long long)st.out,
			(unsigned long long)st.malformed, (unsigned long long)st.failed);
	}
	CHECK(ret == 0 || ret == -EPROTO);
	CHECK(info.end_reason != NULL);
	for (i = 0; i < n; i++)
		for (k = 0; k < msgs[i].nfds; k++)
			close(msgs[i].fds[k]);
	CHECK(count_fds() == before);
	check_fresh_connection();
	CHECK(count_fds() == before);
	return 0;
}
