/* SPDX-License-Identifier: MIT */
/*
 * vhost_blk_frontend.c - the fake vhost-user front end of the gm-vhost-blk
 * tests (see vhost_blk_frontend.h), the multi-queue workload, and the two
 * multi-queue scenarios the unit test and the stress soak share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vhost_blk_frontend.h"

/*
 * ---- failures ----
 *
 * A cmocka assertion longjmps out of the test function, so it may fire
 * only on the test's own thread and only when no thread of the test is
 * left running on its frame. The helpers a traffic thread (or the main
 * thread, while traffic threads run) uses therefore return what went
 * wrong as text (NULL: nothing) instead of asserting; the names without
 * _r assert on that text for the single-threaded tests.
 */
static _Thread_local char why_buf[192];

static const char *why(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why_buf, sizeof(why_buf), fmt, ap);
	va_end(ap);
	return why_buf;
}

static void check(const char *err)
{
	if (err)
		fail_msg("%s", err);
}

enum blk_aio fe_aio = BLK_AIO_SYNC;

/* The front end fe_init() set up and fe_fini() has not yet freed. */
static struct fe *fe_live;

int fe_teardown(void **state)
{
	(void)state;
	if (!fe_live)
		return 0;
	if (fe_live->sock >= 0)
		disconnect_fe(fe_live);
	fe_fini(fe_live);
	return 0;
}

/* ---- back end thread ---- */

struct serve_arg {
	struct fe *f;
	int fd;
};

static void *serve_thread(void *arg)
{
	struct serve_arg *a = arg;

	a->f->serve_ret = vu_serve(a->f->srv, a->fd, -1, &a->f->info);
	free(a);
	return NULL;
}

void connect_fe(struct fe *f)
{
	int sv[2], err;
	struct serve_arg *a = malloc(sizeof(*a));

	assert_non_null(a);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		free(a);
		fail_msg("socketpair: errno %d", errno);
	}
	a->f = f;
	a->fd = sv[1];
	err = pthread_create(&f->thread, NULL, serve_thread, a);
	if (err) {
		close(sv[0]);
		close(sv[1]);
		free(a);
		fail_msg("pthread_create: %d", err);
	}
	/* From here on fe_teardown() ends the connection if the test fails. */
	f->sock = sv[0];
	f->backend_sock = sv[1];
}

/* Close our end and wait for the back end to finish the connection. */
int disconnect_fe(struct fe *f)
{
	unsigned i;

	close(f->sock);
	f->sock = -1;
	pthread_join(f->thread, NULL);
	for (i = 0; i < MAX_Q; i++) {
		if (f->q[i].kick >= 0)
			close(f->q[i].kick);
		if (f->q[i].call >= 0)
			close(f->q[i].call);
		f->q[i].kick = f->q[i].call = -1;
	}
	return f->serve_ret;
}

/* Wait for the back end to end the connection by itself (malformed input). */
int wait_backend_closed(struct fe *f)
{
	struct pollfd p = {.fd = f->sock, .events = POLLIN};
	ssize_t n;
	char c;

	assert_int_equal(poll(&p, 1, 5000), 1);
	/* EOF, or a reset when the back end hung up with our bytes unread. */
	n = recv(f->sock, &c, 1, 0);
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
	return disconnect_fe(f);
}

int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n++;
	closedir(d);
	return n;
}

/* ---- messages ---- */

static const char *send_msg_r(struct fe *f, uint32_t req, uint32_t flags, const void *p,
			      uint32_t size, const int *fds, size_t nfds)
{
	uint8_t buf[12 + 512];
	union {
		char b[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr a;
	} ctl;
	struct iovec iov = {buf, 12 + size};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	if (size > 512 || nfds > 16)
		return why("message %u: %u bytes and %zu fds is too large", req, size, nfds);
	memset(&ctl, 0, sizeof(ctl)); /* CMSG padding is sent too */
	memcpy(buf, &req, 4);
	memcpy(buf + 4, &flags, 4);
	memcpy(buf + 8, &size, 4);
	if (size)
		memcpy(buf + 12, p, size);
	if (nfds) {
		struct cmsghdr *c;

		mh.msg_control = ctl.b;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	n = sendmsg(f->sock, &mh, MSG_NOSIGNAL);
	if (n != (ssize_t)(12 + size))
		return why("message %u: sendmsg returned %zd (errno %d)", req, n, errno);
	return NULL;
}

void send_msg(struct fe *f, uint32_t req, uint32_t flags, const void *p, uint32_t size,
	      const int *fds, size_t nfds)
{
	check(send_msg_r(f, req, flags, p, size, fds, nfds));
}

/* Read a reply to @req into @p; *@size is its payload size. */
static const char *recv_reply_r(struct fe *f, uint32_t req, void *p, uint32_t max, uint32_t *size)
{
	struct pollfd pfd = {.fd = f->sock, .events = POLLIN};
	uint32_t h[3];

	if (poll(&pfd, 1, 5000) != 1)
		return why("reply to %u: none within 5 s", req);
	if (recv(f->sock, h, 12, MSG_WAITALL) != 12)
		return why("reply to %u: short header", req);
	if (h[0] != req || h[1] != (V1 | 0x4) || h[2] > max)
		return why("reply to %u: request %u, flags 0x%x, %u bytes (at most %u)", req, h[0],
			   h[1], h[2], max);
	if (h[2] && recv(f->sock, p, h[2], MSG_WAITALL) != (ssize_t)h[2])
		return why("reply to %u: short payload", req);
	*size = h[2];
	return NULL;
}

/* Read a reply to @req; returns its payload size. */
uint32_t recv_reply(struct fe *f, uint32_t req, void *p, uint32_t max)
{
	uint32_t n = 0;

	check(recv_reply_r(f, req, p, max, &n));
	return n;
}

uint32_t recv_reply_fd(struct fe *f, uint32_t req, void *p, uint32_t max, int *fd)
{
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr a;
	} ctl;
	struct pollfd pfd = {.fd = f->sock, .events = POLLIN};
	uint32_t h[3];
	struct iovec iov = {h, 12};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = ctl.b,
			    .msg_controllen = sizeof(ctl.b)};
	struct cmsghdr *c;

	*fd = -1;
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(recvmsg(f->sock, &mh, MSG_WAITALL | MSG_CMSG_CLOEXEC), 12);
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	assert_int_equal(h[0], req);
	assert_int_equal(h[1], V1 | 0x4);
	assert_true(h[2] <= max);
	if (h[2])
		assert_int_equal(recv(f->sock, p, h[2], MSG_WAITALL), (ssize_t)h[2]);
	return h[2];
}

uint64_t get_u64(struct fe *f, uint32_t req)
{
	uint64_t v;

	send_msg(f, req, V1, NULL, 0, NULL, 0);
	assert_int_equal(recv_reply(f, req, &v, 8), 8);
	return v;
}

void set_u64(struct fe *f, uint32_t req, uint64_t v)
{
	send_msg(f, req, V1, &v, 8, NULL, 0);
}

/* Send @req with NEED_REPLY; *@ack is the ack (0 success). */
static const char *acked_r(struct fe *f, uint32_t req, const void *p, uint32_t size, const int *fds,
			   size_t nfds, uint64_t *ack)
{
	const char *err = send_msg_r(f, req, V1 | NEED_REPLY, p, size, fds, nfds);
	uint32_t n = 0;

	if (!err)
		err = recv_reply_r(f, req, ack, 8, &n);
	if (!err && n != 8)
		err = why("reply to %u: %u bytes, not 8", req, n);
	return err;
}

/* Send @req with NEED_REPLY and return the ack (0 success). */
uint64_t acked(struct fe *f, uint32_t req, const void *p, uint32_t size, const int *fds,
	       size_t nfds)
{
	uint64_t v = 0;

	check(acked_r(f, req, p, size, fds, nfds, &v));
	return v;
}

void vring_state(struct fe *f, uint32_t req, uint32_t idx, uint32_t num)
{
	uint32_t p[2] = {idx, num};

	send_msg(f, req, V1, p, 8, NULL, 0);
}

/* A SET_MEM_TABLE payload for @n regions. */
uint32_t mem_table(uint8_t *p, const struct region_msg *r, uint32_t n)
{
	uint32_t pad = 0;

	memcpy(p, &n, 4);
	memcpy(p + 4, &pad, 4);
	memcpy(p + 8, r, 32 * n);
	return 8 + 32 * n;
}

/* SET_VRING_KICK/CALL/ERR for queue @idx with @fd (-1: the no-fd flag). */
void send_fd_msg(struct fe *f, uint32_t req, uint32_t idx, int fd)
{
	uint64_t v = idx | (fd < 0 ? 0x100u : 0);

	send_msg(f, req, V1, &v, 8, fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1);
}

/* A round trip: every message sent before has been handled. */
void sync_fe(struct fe *f)
{
	assert_int_equal(get_u64(f, GET_QUEUE_NUM), f->nq);
}

/* ---- inflight tracking (INFLIGHT_SHMFD) ---- */

int get_inflight(struct fe *f, uint64_t *size)
{
	uint64_t p[3] = {0, 0, 1 | (uint64_t)QSIZE << 16};
	uint8_t out[24];
	int fd;

	send_msg(f, GET_INFLIGHT_FD, V1, p, 24, NULL, 0);
	assert_int_equal(recv_reply_fd(f, GET_INFLIGHT_FD, out, sizeof(out), &fd), 24);
	assert_true(fd >= 0);
	memcpy(size, out, 8);
	return fd;
}

void set_inflight(struct fe *f, int fd, uint64_t size)
{
	uint64_t p[3] = {size, 0, 1 | (uint64_t)QSIZE << 16};

	assert_int_equal(acked(f, SET_INFLIGHT_FD, p, 24, &fd, 1), 0);
}

/* ---- guest side ---- */

void fe_init(struct fe *f, unsigned nq, bool readonly)
{
	char err[256];
	struct vu_device dev;
	struct gm_region_spec spec = {0};
	uint8_t pat[4096];
	unsigned i;
	int fd;

	memset(f, 0, sizeof(*f));
	fe_live = f;
	f->sock = -1;
	for (i = 0; i < MAX_Q; i++)
		f->q[i].kick = f->q[i].call = -1;
	/* The image: byte i of sector s is (s * 7 + i) & 0xff. */
	snprintf(f->img_path, sizeof(f->img_path), "/tmp/gm-test-vhost-blk.XXXXXX");
	fd = mkstemp(f->img_path);
	assert_true(fd >= 0);
	for (i = 0; i < IMG_SIZE / 4096; i++) {
		unsigned j;

		for (j = 0; j < 4096; j++)
			pat[j] = (uint8_t)(((i * 8 + j / 512) * 7 + j % 512) & 0xff);
		assert_int_equal(pwrite(fd, pat, 4096, (off_t)i * 4096), 4096);
	}
	close(fd);
	assert_int_equal(blk_open(&f->blk, f->img_path, readonly, err, sizeof(err)), 0);
	f->blk.aio = fe_aio;
	blk_vu_device(&f->blk, &dev);
	assert_int_equal(vu_server_new(&dev, nq, &f->srv), 0);
	/* qemu-user: signal only writes that really block (vu_server_set_write_bound()). */
	if (getenv("GM_EMULATOR") && *getenv("GM_EMULATOR"))
		vu_server_set_write_bound(f->srv, 5000);
	assert_int_equal(gm_mapping_new_memfd("test-guest", RAM_SIZE, 0, &f->map), 0);
	spec.gpa = 0;
	spec.size = RAM_SIZE;
	spec.mapping = f->map;
	assert_int_equal(gm_memory_new(&spec, 1, &f->m), 0);
	f->nq = nq;
	for (i = 0; i < nq; i++) {
		struct fe_queue *q = &f->q[i];
		gm_gpa_t base = 0x10000 * (i + 1);

		q->desc = base;
		q->avail = base + 0x1000;
		q->used = base + 0x2000;
		q->hdr = base + 0x3000;
		q->status = base + 0x3800;
	}
}

void fe_fini(struct fe *f)
{
	fe_live = NULL;
	vu_server_free(f->srv);
	blk_close(&f->blk);
	unlink(f->img_path);
	gm_memory_put(f->m);
	gm_mapping_put(f->map);
}

uint8_t img_byte(uint64_t off)
{
	return (uint8_t)(((off / 512) * 7 + off % 512) & 0xff);
}

/*
 * Negotiate everything and start @f->nq rings over one memory region;
 * @before_kick (may be NULL) runs when the rings are placed but not started.
 */
/*
 * Connect and negotiate, then place the rings: fresh ones from index 0, or
 * (@base not NULL) the rings as they are in guest memory, from @base[i] on
 * (a destination taking over after GET_VRING_BASE).
 */
static void start(struct fe *f, uint64_t features_off, void (*before_kick)(struct fe *f, void *arg),
		  void *arg, const uint32_t *base)
{
	struct region_msg r = {0, RAM_SIZE, UA, 0};
	uint8_t p[512];
	uint64_t feat, pf;
	int memfd = gm_mapping_fd(f->map);
	unsigned i;

	connect_fe(f);
	feat = get_u64(f, GET_FEATURES);
	assert_true(feat & (1ull << VU_F_PROTOCOL_FEATURES));
	/* LOG_ALL only once a log is attached (migration, test_vhost_blk_migrate.c). */
	assert_true(feat & (1ull << VU_F_LOG_ALL));
	set_u64(f, SET_FEATURES, feat & ~features_off & ~(1ull << VU_F_LOG_ALL));
	pf = get_u64(f, GET_PROTOCOL_FEATURES);
	assert_int_equal(pf, (1ull << VU_PF_MQ) | (1ull << VU_PF_REPLY_ACK) |
				 (1ull << VU_PF_CONFIG) | (1ull << VU_PF_CONFIGURE_MEM_SLOTS) |
				 (1ull << VU_PF_INFLIGHT_SHMFD) | (1ull << VU_PF_LOG_SHMFD) |
				 (1ull << VU_PF_PAGEFAULT));
	set_u64(f, SET_PROTOCOL_FEATURES, pf);
	assert_int_equal(get_u64(f, GET_QUEUE_NUM), f->nq);
	send_msg(f, SET_OWNER, V1, NULL, 0, NULL, 0);
	assert_int_equal(acked(f, SET_MEM_TABLE, p, mem_table(p, &r, 1), &memfd, 1), 0);
	for (i = 0; i < f->nq; i++) {
		struct fe_queue *q = &f->q[i];
		uint32_t a[10] = {i, 0};
		uint64_t ua[4] = {UA + q->desc, UA + q->used, UA + q->avail, 0};

		if (!base) {
			memset(gm_host_ptr(f->m, q->desc, 0x3000), 0, 0x3000);
			q->avail_idx = q->used_seen = 0;
		}
		vring_state(f, SET_VRING_NUM, i, QSIZE);
		memcpy(a + 2, ua, sizeof(ua));
		send_msg(f, SET_VRING_ADDR, V1, a, 40, NULL, 0);
		vring_state(f, SET_VRING_BASE, i, base ? base[i] : 0);
	}
	if (before_kick)
		before_kick(f, arg);
	for (i = 0; i < f->nq; i++) {
		struct fe_queue *q = &f->q[i];

		q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		q->kick = eventfd(0, EFD_CLOEXEC);
		send_fd_msg(f, SET_VRING_CALL, i, q->call);
		send_fd_msg(f, SET_VRING_KICK, i, q->kick);
		vring_state(f, SET_VRING_ENABLE, i, 1);
	}
	sync_fe(f);
}

void fe_start_with(struct fe *f, uint64_t features_off,
		   void (*before_kick)(struct fe *f, void *arg), void *arg)
{
	start(f, features_off, before_kick, arg, NULL);
}

void fe_start(struct fe *f, uint64_t features_off)
{
	fe_start_with(f, features_off, NULL, NULL);
}

void fe_resume(struct fe *f, const uint32_t *base)
{
	start(f, 0, NULL, NULL, base);
}

void fe_resume_with(struct fe *f, const uint32_t *base,
		    void (*before_kick)(struct fe *f, void *arg), void *arg)
{
	start(f, 0, before_kick, arg, base);
}

static const char *put_desc_r(struct fe *f, struct fe_queue *q, unsigned i, uint64_t addr,
			      uint32_t len, uint16_t flags, uint16_t next)
{
	gm_gpa_t d = q->desc + 16ull * i;

	if (gm_write_le64(f->m, d, addr) || gm_write_le32(f->m, d + 8, len) ||
	    gm_write_le16(f->m, d + 12, flags) || gm_write_le16(f->m, d + 14, next))
		return why("descriptor %u: guest write failed", i);
	return NULL;
}

void put_desc(struct fe *f, struct fe_queue *q, unsigned i, uint64_t addr, uint32_t len,
	      uint16_t flags, uint16_t next)
{
	check(put_desc_r(f, q, i, addr, len, flags, next));
}

static const char *offer_r(struct fe *f, struct fe_queue *q, uint16_t head)
{
	uint64_t one = 1;

	if (gm_write_le16(f->m, q->avail + 4 + 2ull * (q->avail_idx % QSIZE), head))
		return why("avail entry %u: guest write failed", q->avail_idx);
	/* Ask for an interrupt on the next used entry (EVENT_IDX). */
	if (gm_write_le16(f->m, q->avail + 4 + 2ull * QSIZE, q->used_seen))
		return why("used_event: guest write failed");
	q->avail_idx++;
	/* avail->flags (0) and avail->idx: one aligned word, published with release. */
	if (gm_atomic_store_u32(f->m, q->avail, (uint32_t)q->avail_idx << 16, __ATOMIC_RELEASE))
		return why("avail idx: guest store failed");
	if (write(q->kick, &one, 8) != 8)
		return why("kick: write failed (errno %d)", errno);
	return NULL;
}

/* Make @head available, publish the index (release) and kick. */
void offer(struct fe *f, struct fe_queue *q, uint16_t head)
{
	check(offer_r(f, q, head));
}

/* Wait up to @ms for the next used entry; *@got is false on timeout. */
static const char *wait_used_r(struct fe *f, struct fe_queue *q, uint32_t *id, uint32_t *len,
			       int ms, bool *got)
{
	struct pollfd p = {.fd = q->call, .events = POLLIN};
	uint32_t w;
	uint64_t v;

	*got = false;
	for (;;) {
		if (gm_atomic_load_u32(f->m, q->used, &w, __ATOMIC_ACQUIRE))
			return why("used idx: guest load failed");
		if ((uint16_t)(w >> 16) != q->used_seen)
			break;
		if (ms <= 0)
			return NULL;
		/* Poll briefly: the device may have suppressed the interrupt. */
		if (poll(&p, 1, 10) > 0 && read(q->call, &v, 8) < 0) {
		}
		ms -= 10;
	}
	if (gm_read_le32(f->m, q->used + 4 + 8ull * (q->used_seen % QSIZE), id) ||
	    gm_read_le32(f->m, q->used + 8 + 8ull * (q->used_seen % QSIZE), len))
		return why("used entry %u: guest read failed", q->used_seen);
	q->used_seen++;
	*got = true;
	return NULL;
}

/* Wait up to @ms for the next used entry; returns false on timeout. */
bool wait_used(struct fe *f, struct fe_queue *q, uint32_t *id, uint32_t *len, int ms)
{
	bool got;

	check(wait_used_r(f, q, id, len, ms, &got));
	return got;
}

static const char *build_r(struct fe *f, struct fe_queue *q, unsigned slot, uint32_t type,
			   uint64_t sector, const struct seg *segs, size_t n, uint16_t *head)
{
	unsigned d0 = slot * SLOT_DESCS, i;
	gm_gpa_t hdr = q->hdr + 16ull * slot, st = q->status + slot;
	const char *err;

	if (n + 2 > SLOT_DESCS)
		return why("request with %zu segments: more than a slot holds", n);
	if (gm_write_le32(f->m, hdr, type) || gm_write_le32(f->m, hdr + 4, 0) ||
	    gm_write_le64(f->m, hdr + 8, sector) || gm_write_u8(f->m, st, 0xee))
		return why("request header in slot %u: guest write failed", slot);
	err = put_desc_r(f, q, d0, hdr, 16, 1, (uint16_t)(d0 + 1));
	for (i = 0; i < n && !err; i++)
		err = put_desc_r(f, q, d0 + 1 + i, segs[i].gpa, segs[i].len,
				 1 | (segs[i].write ? 2 : 0), (uint16_t)(d0 + 2 + i));
	if (!err)
		err = put_desc_r(f, q, d0 + 1 + (unsigned)n, st, 1, 2, 0);
	*head = (uint16_t)d0;
	return err;
}

/* Write request descriptors for @slot; returns the head. The status byte is q->status + slot. */
uint16_t build(struct fe *f, struct fe_queue *q, unsigned slot, uint32_t type, uint64_t sector,
	       const struct seg *segs, size_t n)
{
	uint16_t head = 0;

	check(build_r(f, q, slot, type, sector, segs, n, &head));
	return head;
}

static const char *run_r(struct fe *f, unsigned qi, uint32_t type, uint64_t sector,
			 const struct seg *segs, size_t n, struct res *r)
{
	struct fe_queue *q = &f->q[qi];
	unsigned slot = q->avail_idx % (QSIZE / SLOT_DESCS);
	gm_gpa_t st = q->status + slot;
	const char *err;
	uint16_t d0;
	uint32_t id;
	bool got;

	err = build_r(f, q, slot, type, sector, segs, n, &d0);
	if (!err)
		err = offer_r(f, q, d0);
	if (!err)
		err = wait_used_r(f, q, &id, &r->len, 5000, &got);
	if (err)
		return err;
	if (!got)
		return why("queue %u, type %u: no used entry within 5 s", qi, type);
	if (id != d0)
		return why("queue %u: used id %u, not the head %u", qi, id, d0);
	if (gm_read_u8(f->m, st, &r->status))
		return why("queue %u: status byte: guest read failed", qi);
	return NULL;
}

/* Run one request with @n data segments between header and status. */
struct res run(struct fe *f, unsigned qi, uint32_t type, uint64_t sector, const struct seg *segs,
	       size_t n)
{
	struct res r = {0, 0};

	check(run_r(f, qi, type, sector, segs, n, &r));
	return r;
}

struct res run1(struct fe *f, uint32_t type, uint64_t sector, gm_gpa_t gpa, uint32_t len,
		bool write)
{
	struct seg s = {gpa, len, write};

	return run(f, 0, type, sector, &s, len ? 1 : 0);
}

void image_read(struct fe *f, uint64_t off, void *buf, size_t len)
{
	int fd = open(f->img_path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

void fe_stop(struct fe *f)
{
	assert_int_equal(disconnect_fe(f), 0);
}
/* ---- multi-queue workload ---- */

static void traffic_failed(struct traffic *t, const char *fmt, ...)
{
	va_list ap;

	if (t->failures++)
		return;
	va_start(ap, fmt);
	vsnprintf(t->first, sizeof(t->first), fmt, ap);
	va_end(ap);
}

/* Per round: write a pattern to this queue's sectors, read it back, compare. */
void *traffic_thread(void *arg)
{
	struct traffic *t = arg;
	struct fe *f = t->f;
	gm_gpa_t buf = DATA + DATA_PER_Q * t->qi;
	uint64_t sector = 64 + 64 * t->qi;
	uint8_t *g = gm_host_ptr(f->m, buf, 2 * 8192);
	unsigned r, i;

	for (r = 0; r < t->rounds; r++) {
		struct seg w = {buf, 8192, false}, rd = {buf + 8192, 8192, true};
		struct res wr = {0, 0}, rr = {0, 0};
		const char *err;

		for (i = 0; i < 8192; i++)
			g[i] = (uint8_t)(i * 31 + r + t->qi);
		err = run_r(f, t->qi, T_OUT, sector, &w, 1, &wr);
		if (!err)
			err = run_r(f, t->qi, T_IN, sector, &rd, 1, &rr);
		if (err) {
			/* The ring is in an unknown state: stop this queue's traffic. */
			traffic_failed(t, "round %u: %s", r, err);
			break;
		}
		if (wr.status != 0 || rr.status != 0 || memcmp(g, g + 8192, 8192))
			traffic_failed(t, "round %u: write status %u, read status %u, data %s", r,
				       wr.status, rr.status,
				       memcmp(g, g + 8192, 8192) ? "differs" : "matches");
	}
	return NULL;
}

void traffic_assert_ok(const struct traffic *t)
{
	if (t->failures)
		print_error("queue %u: %u failed rounds, the first: %s\n", t->qi, t->failures,
			    t->first);
	assert_int_equal(t->failures, 0);
}

const char *replace_tables(struct fe *f, unsigned n)
{
	int memfd = gm_mapping_fd(f->map), fds[2] = {memfd, memfd};
	/* Same bytes, same user addresses, split in two at 2 MiB. */
	struct region_msg whole = {0, RAM_SIZE, UA, 0};
	struct region_msg half[2] = {{0, 2 * MiB, UA, 0},
				     {2 * MiB, 2 * MiB, UA + 2 * MiB, 2 * MiB}};
	struct region_msg extra = {64 * MiB, 4096, UA + 64 * MiB, 0};
	uint8_t p[512] = {0};
	const char *err = NULL;
	uint64_t ack = 0, ack2 = 0;
	unsigned i;

	for (i = 0; i < n && !err && !ack && !ack2; i++) {
		switch (i % 3) {
		case 0:
			err = acked_r(f, SET_MEM_TABLE, p, mem_table(p, half, 2), fds, 2, &ack);
			break;
		case 1:
			/* Add a region no request uses, then remove it again. */
			memcpy(p + 8, &extra, 32);
			err = acked_r(f, ADD_MEM_REG, p, 40, &memfd, 1, &ack);
			if (!err && !ack)
				err = acked_r(f, REM_MEM_REG, p, 40, NULL, 0, &ack2);
			break;
		default:
			err = acked_r(f, SET_MEM_TABLE, p, mem_table(p, &whole, 1), fds, 1, &ack);
			break;
		}
	}
	if (!err && (ack || ack2))
		err = why("table %u: acked %llu, %llu (0 is success)", i - 1,
			  (unsigned long long)ack, (unsigned long long)ack2);
	return err;
}

/* ---- multi-queue scenarios ---- */

/*
 * The front end is static, not on the test's frame: a failed assertion
 * leaves the test while the back end's threads still use it, until
 * fe_teardown() ends the connection. No assertion fires while a traffic
 * thread runs: each records its failures, the main thread joins them all
 * and then asserts.
 */
void scenario_memory_table_replaced_mid_stream(void)
{
	static struct fe f;
	static struct traffic t;
	pthread_t th;
	uint8_t p[512] = {0};
	struct region_msg half[2] = {{0, 2 * MiB, UA, 0},
				     {2 * MiB, 2 * MiB, UA + 2 * MiB, 2 * MiB}};
	const char *err;
	char table_err[192] = "";
	int memfd, fds[2];

	fe_init(&f, 1, false);
	fe_start(&f, 0);
	memfd = fds[0] = fds[1] = gm_mapping_fd(f.map);
	t = (struct traffic){.f = &f, .qi = 0, .rounds = 40};
	assert_int_equal(pthread_create(&th, NULL, traffic_thread, &t), 0);
	err = replace_tables(&f, 30);
	if (err)
		snprintf(table_err, sizeof(table_err), "%s", err);
	assert_int_equal(pthread_join(th, NULL), 0);
	if (table_err[0])
		fail_msg("replacing tables: %s", table_err);
	traffic_assert_ok(&t);
	/* Without the region holding the data, I/O fails; with it back, it works. */
	assert_int_equal(acked(&f, SET_MEM_TABLE, p, mem_table(p, half, 2), fds, 2), 0);
	memcpy(p + 8, &half[1], 32);
	assert_int_equal(acked(&f, REM_MEM_REG, p, 40, NULL, 0), 0);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 1);
	assert_int_equal(acked(&f, ADD_MEM_REG, p, 40, &memfd, 1), 0);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	assert_true(f.info.tables >= 30);
	assert_int_equal(f.info.max_regions_seen, 3);
	fe_fini(&f);
}

void scenario_several_queues_serve_in_parallel(unsigned rounds, unsigned tables)
{
	static struct fe f;
	static struct traffic t[MAX_Q];
	pthread_t th[MAX_Q];
	struct blk_stats st;
	const char *err = NULL;
	char table_err[192] = "";
	int create_err = 0, join_err = 0;
	unsigned i, started;

	fe_init(&f, MAX_Q, false);
	fe_start(&f, 0);
	for (started = 0; started < MAX_Q; started++) {
		t[started] = (struct traffic){.f = &f, .qi = started, .rounds = rounds};
		create_err = pthread_create(&th[started], NULL, traffic_thread, &t[started]);
		if (create_err)
			break;
	}
	if (!create_err)
		err = replace_tables(&f, tables);
	if (err)
		snprintf(table_err, sizeof(table_err), "%s", err);
	for (i = 0; i < started; i++)
		join_err |= pthread_join(th[i], NULL);
	/* Every traffic thread has ended: now a failure may leave the test. */
	assert_int_equal(create_err, 0);
	assert_int_equal(join_err, 0);
	if (table_err[0])
		fail_msg("replacing tables: %s", table_err);
	for (i = 0; i < MAX_Q; i++)
		traffic_assert_ok(&t[i]);
	blk_stats_take(&f.blk, &st, false);
	assert_int_equal(st.in, MAX_Q * rounds);
	assert_int_equal(st.out, MAX_Q * rounds);
	assert_int_equal(st.bytes_read, MAX_Q * rounds * 8192ull);
	/* With io_uring, each queue's worker served its queue through its own ring. */
	assert_int_equal(st.uring, fe_aio == BLK_AIO_URING ? 2ull * MAX_Q * rounds : 0);
	fe_stop(&f);
	assert_int_equal(f.info.queues_started, MAX_Q);
	fe_fini(&f);
}
