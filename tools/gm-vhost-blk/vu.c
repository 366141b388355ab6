/*
 * vu.c - the vhost-user protocol (docs/interop/vhost-user.rst in QEMU), the
 * subset QEMU's vhost-user-blk-pci uses, and the queue workers.
 *
 * Threads: the caller of vu_serve() reads and answers messages; one worker
 * per queue waits on the queue's kick eventfd and serves requests. A
 * queue's state is under its mutex: the worker holds it for one bounded
 * round of requests, the protocol thread for each change (so
 * GET_VRING_BASE sees the ring stopped between two rounds). The memory
 * table is not under any queue lock: it is published with RCU by
 * gm_vhost_mem, and a worker holds a reference on the table it started a
 * round with, so a new table never waits for I/O and never pulls memory
 * from under a request in flight.
 *
 * Every message is checked before it is acted on: version, exact payload
 * size, index ranges, the number of file descriptors that came with it.
 * Every received fd is either kept (kick, call, err) or closed before the
 * next message is read. A malformed message ends the connection; a
 * well-formed request that fails gets a failure in its REPLY_ACK, or ends
 * the connection if the front end asked for no reply.
 */
#include "vu.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
	REQ_GET_FEATURES = 1,
	REQ_SET_FEATURES = 2,
	REQ_SET_OWNER = 3,
	REQ_RESET_OWNER = 4,
	REQ_SET_MEM_TABLE = 5,
	REQ_SET_VRING_NUM = 8,
	REQ_SET_VRING_ADDR = 9,
	REQ_SET_VRING_BASE = 10,
	REQ_GET_VRING_BASE = 11,
	REQ_SET_VRING_KICK = 12,
	REQ_SET_VRING_CALL = 13,
	REQ_SET_VRING_ERR = 14,
	REQ_GET_PROTOCOL_FEATURES = 15,
	REQ_SET_PROTOCOL_FEATURES = 16,
	REQ_GET_QUEUE_NUM = 17,
	REQ_SET_VRING_ENABLE = 18,
	REQ_GET_CONFIG = 24,
	REQ_SET_CONFIG = 25,
	REQ_GET_INFLIGHT_FD = 31,
	REQ_SET_INFLIGHT_FD = 32,
	REQ_GET_MAX_MEM_SLOTS = 36,
	REQ_ADD_MEM_REG = 37,
	REQ_REM_MEM_REG = 38,
};

#define HDR_SIZE	  12u
#define FLAG_VERSION	  0x1u
#define FLAG_VERSION_MASK 0x3u
#define FLAG_REPLY	  0x4u
#define FLAG_NEED_REPLY	  0x8u
#define MAX_PAYLOAD	  4096u
#define MAX_FDS		  8u  /* VHOST_MEMORY_BASELINE_NREGIONS */
#define TABLE_REGIONS	  8u  /* regions SET_MEM_TABLE can carry */
#define MEM_SLOTS	  32u /* GET_MAX_MEM_SLOTS */
#define REGION_SIZE	  32u
#define VRING_NOFD	  0x100u
#define VRING_IDX_MASK	  0xffu
#define ROUND_BUDGET	  256u /* requests per round before the queue lock is dropped */

#define PROTOCOL_FEATURES                                                          \
	((1ull << VU_PF_MQ) | (1ull << VU_PF_REPLY_ACK) | (1ull << VU_PF_CONFIG) | \
	 (1ull << VU_PF_CONFIGURE_MEM_SLOTS) | (1ull << VU_PF_INFLIGHT_SHMFD))

/* Returned by a handler for a message that ends the connection. */
#define DISCONNECT (-EPROTO)

struct vu_queue {
	pthread_mutex_t lock; /* protects everything below */
	struct vu_server *s;
	unsigned index;
	struct gm_virtq *vq;
	uint32_t num; /* 0: not set */
	uint64_t desc_ua, avail_ua, used_ua;
	bool addr_set;
	bool layout_valid; /* vq placed at desc/avail/used_gpa below */
	gm_gpa_t desc_gpa, avail_gpa, used_gpa;
	int kick_fd, call_fd, err_fd;
	bool started; /* kicked, not stopped by GET_VRING_BASE */
	bool enabled;
	bool stop;   /* worker must exit */
	int wake_fd; /* eventfd: protocol thread -> worker */
	int epfd;
	pthread_t thread;
	bool thread_running;
	struct gm_virtq_buf *bufs;
	/* Inflight tracking (INFLIGHT_SHMFD): this queue's part of the shared buffer. */
	uint8_t *inflight;
	uint16_t inflight_qsize;
	uint64_t inflight_counter;
	bool inflight_check; /* re-serve what an earlier back end left in flight */
};

struct vu_server {
	struct vu_device dev;
	unsigned nqueues;
	struct vu_queue *q;
	struct gm_vhost_mem *mem;
	/* Connection state: protocol thread only. */
	uint64_t features, protocol_features;
	bool owner;
	struct vu_conn_info *info;
	void *inflight_map; /* SET_INFLIGHT_FD mapping, or NULL */
	size_t inflight_len;
};

struct msg {
	uint32_t request, flags, size;
	uint8_t p[MAX_PAYLOAD];
	int fds[MAX_FDS];
	size_t nfds;
};

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8); /* vhost-user is in host byte order */
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void signal_fd(int fd)
{
	uint64_t one = 1;

	if (fd >= 0 && write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, the peer will wake anyway. */
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/*
 * ---- inflight tracking (vhost-user.rst, "Inflight I/O tracking") ----
 *
 * A buffer the front end keeps across back-end restarts. Per queue, 64-byte
 * aligned: u64 features, u16 version, u16 desc_num, u16 last_batch_head,
 * u16 used_idx, then one 16-byte entry per descriptor head: u8 inflight,
 * 5 bytes padding, u16 next, u64 counter (the order heads were taken in).
 * Its contents may come from a back end that crashed: every head read
 * from it is checked against the queue size.
 */
#define IF_HDR	   16u
#define IF_ENTRY   16u
#define IF_ALIGN   64u
#define IF_VERSION 1u

static size_t inflight_queue_bytes(uint16_t qsize)
{
	return ((size_t)IF_HDR + (size_t)IF_ENTRY * qsize + IF_ALIGN - 1) / IF_ALIGN * IF_ALIGN;
}

static uint16_t if_get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static void if_put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static uint8_t *if_entry(const struct vu_queue *q, unsigned head)
{
	return q->inflight + IF_HDR + (size_t)IF_ENTRY * head;
}

/* Request @head was taken from the ring. Called with q->lock held. */
static void inflight_begin(struct vu_queue *q, uint16_t head)
{
	uint64_t c = ++q->inflight_counter;

	if (!q->inflight || head >= q->inflight_qsize)
		return;
	memcpy(if_entry(q, head) + 8, &c, 8);
	if_entry(q, head)[0] = 1;
}

/* Give @head back to the driver, keeping the inflight buffer in step. */
static void complete(struct vu_queue *q, const struct gm_memory *m, uint16_t head, uint32_t len)
{
	bool track = q->inflight && head < q->inflight_qsize;

	if (track)
		if_put16(q->inflight + 12, head); /* last_batch_head: see inflight_resume() */
	if (gm_virtq_push(q->vq, m, head, len) == 0 && track) {
		if_entry(q, head)[0] = 0;
		if_put16(q->inflight + 14, gm_virtq_used_index(q->vq));
	}
}

struct if_req {
	uint64_t counter;
	uint16_t head;
};

static int cmp_counter(const void *a, const void *b)
{
	const struct if_req *x = a, *y = b;

	return x->counter < y->counter ? -1 : x->counter > y->counter;
}

/*
 * At ring start: serve again, in the order they were taken, the requests a
 * previous back end took and never completed, and continue the ring after
 * them. Called with q->lock held, the ring placed.
 */
static void inflight_resume(struct vu_queue *q, const struct gm_memory *m)
{
	struct vu_server *s = q->s;
	uint8_t *r = q->inflight;
	unsigned limit = q->inflight_qsize < q->num ? q->inflight_qsize : q->num, i, n = 0;
	struct gm_virtq_req req;
	struct if_req *list;
	uint16_t used, lb;

	if (gm_read_le16(m, q->used_gpa + 2, &used))
		return; /* the first pop finds the ring broken */
	if (if_get16(r + 8) != IF_VERSION) {
		/* A fresh buffer: nothing was in flight. */
		memset(r + IF_HDR, 0, (size_t)IF_ENTRY * q->inflight_qsize);
		if_put16(r + 8, IF_VERSION);
		if_put16(r + 14, used);
		return;
	}
	/* Stopped between publishing a used entry and clearing its flag. */
	if (if_get16(r + 14) != used) {
		lb = if_get16(r + 12);
		if (lb < q->inflight_qsize)
			if_entry(q, lb)[0] = 0;
		if_put16(r + 14, used);
	}
	list = calloc(limit ? limit : 1, sizeof(*list));
	if (!list)
		return;
	for (i = 0; i < limit; i++) {
		if (if_entry(q, i)[0] != 1)
			continue;
		memcpy(&list[n].counter, if_entry(q, i) + 8, 8);
		list[n++].head = (uint16_t)i;
		if (list[n - 1].counter > q->inflight_counter)
			q->inflight_counter = list[n - 1].counter;
	}
	qsort(list, n, sizeof(*list), cmp_counter);
	/* They were taken from the ring just after the last used entry. */
	gm_virtq_set_indices(q->vq, (uint16_t)(used + n), used);
	s->info->resubmitted += n;
	for (i = 0; i < n; i++) {
		int ret = gm_virtq_pop_head(q->vq, m, list[i].head, &req, q->bufs, s->dev.max_bufs);

		if (ret == -EIO)
			break;
		if (ret) {
			s->dev.bad_request(s->dev.opaque);
			complete(q, m, list[i].head, 0);
			continue;
		}
		complete(q, m, req.head,
			 s->dev.handle(s->dev.opaque, q->index, m, q->bufs, req.nbufs));
	}
	free(list);
}

/* ---- workers ---- */

/* Place the ring in the table @t. Called with q->lock held. */
static int place_ring(struct vu_queue *q, const struct gm_vhost_table *t)
{
	gm_gpa_t d, a, u;

	if (gm_vhost_uaddr_to_gpa(t, q->desc_ua, 16ull * q->num, &d) ||
	    gm_vhost_uaddr_to_gpa(t, q->avail_ua, 6 + 2ull * q->num, &a) ||
	    gm_vhost_uaddr_to_gpa(t, q->used_ua, 6 + 8ull * q->num, &u))
		return -EFAULT;
	if (q->layout_valid && d == q->desc_gpa && a == q->avail_gpa && u == q->used_gpa)
		return 0;
	if (gm_virtq_set_layout(q->vq, q->num, d, a, u))
		return -EINVAL;
	q->desc_gpa = d;
	q->avail_gpa = a;
	q->used_gpa = u;
	q->layout_valid = true;
	return 0;
}

/*
 * Serve up to ROUND_BUDGET requests. Returns true if requests may remain.
 * Called with q->lock held.
 */
static bool serve_round(struct vu_queue *q)
{
	struct vu_server *s = q->s;
	struct gm_vhost_table *t;
	const struct gm_memory *m;
	struct gm_virtq_req req;
	bool more = false, notify = false, empty, notify_pending = false;
	unsigned done = 0;
	int ret;

	if (!q->started || !q->enabled || !q->addr_set || q->num == 0)
		return false;
	t = gm_vhost_mem_table(s->mem);
	if (!t)
		return false;
	m = gm_vhost_table_memory(t);
	if (place_ring(q, t)) {
		signal_fd(q->err_fd);
		q->started = false;
		goto out;
	}
	if (q->inflight_check && q->inflight) {
		q->inflight_check = false;
		inflight_resume(q, m);
		notify_pending = true;
	}
	for (;;) {
		if (done == ROUND_BUDGET) {
			more = true;
			break;
		}
		ret = gm_virtq_pop(q->vq, m, &req, q->bufs, s->dev.max_bufs);
		if (ret == -EAGAIN) {
			if (gm_virtq_enable_notify(q->vq, m, &empty) || empty)
				break;
			continue;
		}
		if (ret == -EIO)
			break;
		done++;
		inflight_begin(q, req.head);
		if (ret) {
			/* Malformed: give it back untouched; other requests go on. */
			s->dev.bad_request(s->dev.opaque);
			complete(q, m, req.head, 0);
			continue;
		}
		complete(q, m, req.head,
			 s->dev.handle(s->dev.opaque, q->index, m, q->bufs, req.nbufs));
	}
	if ((done || notify_pending) && gm_virtq_need_notify(q->vq, m, &notify) == 0 && notify)
		signal_fd(q->call_fd);
	if (gm_virtq_broken(q->vq)) {
		/* The ring itself is corrupt: the device needs a reset (vring err). */
		signal_fd(q->err_fd);
		q->started = false;
		more = false;
	}
out:
	gm_vhost_table_put(t);
	return more;
}

static void *worker(void *arg)
{
	struct vu_queue *q = arg;
	struct epoll_event ev;
	uint64_t v;
	bool more = false;

	gm_rcu_register_thread();
	for (;;) {
		int n = epoll_wait(q->epfd, &ev, 1, more ? 0 : -1);

		if (n < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&q->lock);
		if (q->stop) {
			pthread_mutex_unlock(&q->lock);
			break;
		}
		if (n > 0 && ev.data.u32 == 1 && (ev.events & (EPOLLHUP | EPOLLERR)) &&
		    q->kick_fd >= 0) {
			/*
			 * A kick fd that hung up (a pipe whose writer is gone)
			 * would wake us forever, level-triggered: stop listening
			 * to it until the front end sets a new one.
			 */
			epoll_ctl(q->epfd, EPOLL_CTL_DEL, q->kick_fd, NULL);
		} else if (n > 0) {
			/* Both fds are non-blocking: a stale event reads EAGAIN. */
			if (read(q->wake_fd, &v, sizeof(v)) < 0) {
			}
			if (q->kick_fd >= 0 && read(q->kick_fd, &v, sizeof(v)) < 0) {
			}
		}
		more = serve_round(q);
		pthread_mutex_unlock(&q->lock);
	}
	gm_rcu_unregister_thread();
	return NULL;
}

/* Reset queue @q to its initial state, closing its fds. Called with q->lock held. */
static void reset_queue(struct vu_queue *q)
{
	if (q->kick_fd >= 0)
		epoll_ctl(q->epfd, EPOLL_CTL_DEL, q->kick_fd, NULL);
	close_fd(&q->kick_fd);
	close_fd(&q->call_fd);
	close_fd(&q->err_fd);
	q->num = 0;
	q->addr_set = false;
	q->layout_valid = false;
	q->started = false;
	q->enabled = false;
	gm_virtq_set_base(q->vq, 0);
	q->inflight_counter = 0;
	q->inflight_check = false;
}

int vu_server_new(const struct vu_device *dev, unsigned nqueues, struct vu_server **out)
{
	struct vu_server *s;
	unsigned i;
	int ret = -ENOMEM;

	if (!dev || !out || nqueues == 0 || nqueues > VU_MAX_QUEUES || dev->max_bufs == 0)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dev = *dev;
	s->nqueues = nqueues;
	s->q = calloc(nqueues, sizeof(*s->q));
	if (!s->q)
		goto err;
	ret = gm_vhost_mem_new(MEM_SLOTS, &s->mem);
	if (ret)
		goto err;
	for (i = 0; i < nqueues; i++) {
		struct vu_queue *q = &s->q[i];
		struct epoll_event ev = {.events = EPOLLIN};

		q->s = s;
		q->index = i;
		q->kick_fd = q->call_fd = q->err_fd = q->wake_fd = q->epfd = -1;
		pthread_mutex_init(&q->lock, NULL);
		ret = gm_virtq_new(&q->vq);
		if (ret)
			goto err;
		q->bufs = calloc(dev->max_bufs, sizeof(*q->bufs));
		q->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		q->epfd = epoll_create1(EPOLL_CLOEXEC);
		ret = -ENOMEM;
		if (!q->bufs)
			goto err;
		ret = -errno;
		if (q->wake_fd < 0 || q->epfd < 0 ||
		    epoll_ctl(q->epfd, EPOLL_CTL_ADD, q->wake_fd, &ev) < 0)
			goto err;
	}
	*out = s;
	return 0;
err:
	vu_server_free(s);
	return ret;
}

void vu_server_free(struct vu_server *s)
{
	unsigned i;

	if (!s)
		return;
	for (i = 0; s->q && i < s->nqueues; i++) {
		struct vu_queue *q = &s->q[i];

		gm_virtq_free(q->vq);
		free(q->bufs);
		close_fd(&q->wake_fd);
		close_fd(&q->epfd);
		pthread_mutex_destroy(&q->lock);
	}
	free(s->q);
	gm_vhost_mem_free(s->mem);
	free(s);
}

/* ---- messages ---- */

static void close_msg_fds(struct msg *msg)
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

/*
 * Read one message and the fds that came with its header. Returns 0,
 * -ECONNRESET on a clean EOF before a header, DISCONNECT if malformed.
 */
static int read_msg(int fd, struct msg *msg)
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
		close_msg_fds(msg);
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
	close_msg_fds(msg);
	return ret == -ECONNRESET ? DISCONNECT : ret;
}

static int send_reply(int fd, const struct msg *msg, const void *payload, uint32_t size)
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
static int send_reply_fd(int fd, const struct msg *msg, const void *payload, uint32_t size,
			 int pass)
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

static int reply_u64(int fd, const struct msg *msg, uint64_t v)
{
	uint8_t p[8];

	put64(p, v);
	return send_reply(fd, msg, p, 8);
}

/* The queue a SET/GET_VRING_* message names, or NULL. */
static struct vu_queue *msg_queue(struct vu_server *s, uint32_t index)
{
	return index < s->nqueues ? &s->q[index] : NULL;
}

static void note_table(struct vu_server *s)
{
	struct gm_vhost_table *t = gm_vhost_mem_table(s->mem);
	size_t n = t ? gm_vhost_table_region_count(t) : 0;

	gm_vhost_table_put(t);
	s->info->regions = n;
	if (n > s->info->max_regions_seen)
		s->info->max_regions_seen = n;
	s->info->tables++;
}

static void parse_region(const uint8_t *p, struct gm_vhost_region *r)
{
	r->gpa = get64(p);
	r->size = get64(p + 8);
	r->uaddr = get64(p + 16);
	r->mmap_offset = get64(p + 24);
}

static int do_set_mem_table(struct vu_server *s, struct msg *msg)
{
	struct gm_vhost_region r[TABLE_REGIONS];
	uint32_t n, i;
	int ret;

	if (msg->size < 8)
		return DISCONNECT;
	n = get32(msg->p);
	if (n > TABLE_REGIONS || msg->size != 8 + REGION_SIZE * n || msg->nfds != n)
		return DISCONNECT;
	for (i = 0; i < n; i++) {
		parse_region(msg->p + 8 + REGION_SIZE * i, &r[i]);
		r[i].fd = msg->fds[i];
	}
	/* The table maps duplicates; our copies are closed with the message. */
	ret = gm_vhost_mem_set(s->mem, r, n);
	if (ret == 0)
		note_table(s);
	return ret;
}

static int do_mem_reg(struct vu_server *s, struct msg *msg, bool add)
{
	struct gm_vhost_region r;
	int ret;

	/* u64 padding, then one region. REM_MEM_REG may carry a stray fd (old QEMU). */
	if (msg->size != 8 + REGION_SIZE || (add && msg->nfds != 1) || (!add && msg->nfds > 1))
		return DISCONNECT;
	parse_region(msg->p + 8, &r);
	r.fd = add ? msg->fds[0] : -1;
	ret = add ? gm_vhost_mem_add(s->mem, &r) : gm_vhost_mem_remove(s->mem, &r);
	if (ret == 0)
		note_table(s);
	return ret;
}

/* Forget the inflight buffer. Protocol thread. */
static void drop_inflight(struct vu_server *s)
{
	unsigned i;

	for (i = 0; i < s->nqueues; i++) {
		pthread_mutex_lock(&s->q[i].lock);
		s->q[i].inflight = NULL;
		s->q[i].inflight_qsize = 0;
		pthread_mutex_unlock(&s->q[i].lock);
	}
	if (s->inflight_map)
		munmap(s->inflight_map, s->inflight_len);
	s->inflight_map = NULL;
	s->inflight_len = 0;
}

/*
 * GET_INFLIGHT_FD / SET_INFLIGHT_FD: u64 mmap_size, u64 mmap_offset,
 * u16 num_queues, u16 queue_size (24 bytes with the struct's padding).
 */
static int do_inflight(struct vu_server *s, int sock, struct msg *msg, bool *replied)
{
	uint64_t size, off;
	uint16_t nq, qsize;
	size_t per, total;
	uint8_t out[24] = {0};
	struct stat st;
	void *map;
	unsigned i;
	int fd, ret;

	if (msg->size != 24 || msg->nfds != (msg->request == REQ_SET_INFLIGHT_FD ? 1u : 0u))
		return DISCONNECT;
	size = get64(msg->p);
	off = get64(msg->p + 8);
	memcpy(&nq, msg->p + 16, 2);
	memcpy(&qsize, msg->p + 18, 2);
	if (nq == 0 || nq > s->nqueues || qsize == 0 || (qsize & (qsize - 1)))
		return -EINVAL;
	per = inflight_queue_bytes(qsize);
	total = per * nq; /* at most 64 queues of 512 KiB */
	if (msg->request == REQ_GET_INFLIGHT_FD) {
		fd = memfd_create("gm-vhost-blk-inflight", MFD_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (ftruncate(fd, (off_t)total) < 0) {
			ret = -errno;
			close(fd);
			return ret;
		}
		put64(out, total);
		memcpy(out + 16, msg->p + 16, 4);
		*replied = true;
		ret = send_reply_fd(sock, msg, out, sizeof(out), fd);
		close(fd); /* the front end keeps it and gives it back with SET_INFLIGHT_FD */
		return ret;
	}
	if (size < total || off % (uint64_t)sysconf(_SC_PAGESIZE) || off > (uint64_t)INT64_MAX)
		return -EINVAL;
	/*
	 * mmap_size is only the front end's word: a file shorter than the
	 * window maps, and the first store past its end raises SIGBUS.
	 */
	if (fstat(msg->fds[0], &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < off + total)
		return -EINVAL;
	map = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, msg->fds[0], (off_t)off);
	if (map == MAP_FAILED)
		return -errno;
	drop_inflight(s);
	s->inflight_map = map;
	s->inflight_len = total;
	for (i = 0; i < nq; i++) {
		struct vu_queue *q = &s->q[i];

		pthread_mutex_lock(&q->lock);
		q->inflight = (uint8_t *)map + per * i;
		q->inflight_qsize = qsize;
		if_put16(q->inflight + 10, qsize); /* desc_num */
		q->inflight_check = true;
		pthread_mutex_unlock(&q->lock);
	}
	return 0;
}

static void set_queue_features(struct vu_server *s)
{
	unsigned f = 0, i;

	if (s->features & (1ull << VU_F_INDIRECT_DESC))
		f |= GM_VIRTQ_F_INDIRECT;
	if (s->features & (1ull << VU_F_EVENT_IDX))
		f |= GM_VIRTQ_F_EVENT_IDX;
	for (i = 0; i < s->nqueues; i++) {
		pthread_mutex_lock(&s->q[i].lock);
		gm_virtq_set_features(s->q[i].vq, f);
		pthread_mutex_unlock(&s->q[i].lock);
	}
}

static uint64_t offered_features(const struct vu_server *s)
{
	return s->dev.features | (1ull << VU_F_INDIRECT_DESC) | (1ull << VU_F_EVENT_IDX) |
	       (1ull << VU_F_PROTOCOL_FEATURES) | (1ull << VU_F_VERSION_1);
}

/* SET_VRING_KICK / CALL / ERR. */
static int do_vring_fd(struct vu_server *s, struct msg *msg)
{
	struct vu_queue *q;
	uint64_t v;
	int fd = -1, *slot;

	if (msg->size != 8)
		return DISCONNECT;
	v = get64(msg->p);
	q = msg_queue(s, (uint32_t)(v & VRING_IDX_MASK));
	if (!q || (v & ~(uint64_t)(VRING_IDX_MASK | VRING_NOFD)))
		return DISCONNECT;
	if (msg->nfds != ((v & VRING_NOFD) ? 0u : 1u))
		return DISCONNECT;
	if (msg->nfds) {
		fd = msg->fds[0];
		msg->fds[0] = -1; /* kept */
		msg->nfds = 0;
	}
	/* The worker drains the kick fd after epoll: it must never block there. */
	if (fd >= 0 && msg->request == REQ_SET_VRING_KICK) {
		int fl = fcntl(fd, F_GETFL);

		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
			int ret = -errno;

			close(fd);
			return ret;
		}
	}
	pthread_mutex_lock(&q->lock);
	slot = msg->request == REQ_SET_VRING_KICK   ? &q->kick_fd
	       : msg->request == REQ_SET_VRING_CALL ? &q->call_fd
						    : &q->err_fd;
	if (msg->request == REQ_SET_VRING_KICK && q->kick_fd >= 0)
		epoll_ctl(q->epfd, EPOLL_CTL_DEL, q->kick_fd, NULL);
	close_fd(slot);
	*slot = fd;
	if (msg->request == REQ_SET_VRING_KICK) {
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 1};

		if (fd >= 0 && epoll_ctl(q->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			pthread_mutex_unlock(&q->lock);
			return -errno;
		}
		/* The kick starts the ring (vhost-user.rst, "Starting and stopping rings"). */
		if (!q->started) {
			s->info->queues_started++;
			q->inflight_check = true;
		}
		q->started = true;
		if (!(s->features & (1ull << VU_F_PROTOCOL_FEATURES)))
			q->enabled = true;
		signal_fd(q->wake_fd); /* requests may already be waiting */
	}
	pthread_mutex_unlock(&q->lock);
	return 0;
}

/*
 * Handle one well-formed-looking message. Returns 0, a -errno failure of
 * the request, or DISCONNECT. *@replied is set if it sent its own reply.
 */
static int dispatch(struct vu_server *s, int fd, struct msg *msg, bool *replied)
{
	uint8_t out[HDR_SIZE + VU_CONFIG_MAX];
	struct vu_queue *q;
	uint64_t v;
	uint32_t idx, num;
	int ret = 0;

	*replied = false;
	switch (msg->request) {
	case REQ_GET_FEATURES:
	case REQ_GET_PROTOCOL_FEATURES:
	case REQ_GET_QUEUE_NUM:
	case REQ_GET_MAX_MEM_SLOTS:
		if (msg->size != 0 || msg->nfds)
			return DISCONNECT;
		v = msg->request == REQ_GET_FEATURES		? offered_features(s)
		    : msg->request == REQ_GET_PROTOCOL_FEATURES ? PROTOCOL_FEATURES
		    : msg->request == REQ_GET_QUEUE_NUM		? s->nqueues
								: MEM_SLOTS;
		*replied = true;
		return reply_u64(fd, msg, v);
	case REQ_SET_FEATURES:
	case REQ_SET_PROTOCOL_FEATURES:
		if (msg->size != 8 || msg->nfds)
			return DISCONNECT;
		v = get64(msg->p);
		if (msg->request == REQ_SET_FEATURES) {
			if (v & ~offered_features(s))
				return -EINVAL;
			s->features = v;
			s->info->features = v;
			set_queue_features(s);
		} else {
			if (v & ~PROTOCOL_FEATURES)
				return -EINVAL;
			s->protocol_features = v;
			s->info->protocol_features = v;
		}
		return 0;
	case REQ_SET_OWNER:
	case REQ_RESET_OWNER:
		if (msg->size != 0 || msg->nfds)
			return DISCONNECT;
		if (msg->request == REQ_SET_OWNER) {
			s->owner = true;
			return 0;
		}
		for (idx = 0; idx < s->nqueues; idx++) {
			pthread_mutex_lock(&s->q[idx].lock);
			reset_queue(&s->q[idx]);
			pthread_mutex_unlock(&s->q[idx].lock);
		}
		gm_vhost_mem_clear(s->mem);
		s->features = 0;
		s->owner = false;
		return 0;
	case REQ_SET_MEM_TABLE:
		return do_set_mem_table(s, msg);
	case REQ_GET_INFLIGHT_FD:
	case REQ_SET_INFLIGHT_FD:
		return do_inflight(s, fd, msg, replied);
	case REQ_ADD_MEM_REG:
	case REQ_REM_MEM_REG:
		return do_mem_reg(s, msg, msg->request == REQ_ADD_MEM_REG);
	case REQ_SET_VRING_NUM:
	case REQ_SET_VRING_BASE:
	case REQ_SET_VRING_ENABLE:
	case REQ_GET_VRING_BASE:
		if (msg->size != 8 || msg->nfds)
			return DISCONNECT;
		idx = get32(msg->p);
		num = get32(msg->p + 4);
		q = msg_queue(s, idx);
		if (!q)
			return DISCONNECT;
		pthread_mutex_lock(&q->lock);
		if (msg->request == REQ_SET_VRING_NUM) {
			if (num == 0 || num > GM_VIRTQ_MAX_SIZE || (num & (num - 1)))
				ret = -EINVAL;
			else
				q->num = num;
			q->layout_valid = false;
		} else if (msg->request == REQ_SET_VRING_BASE) {
			if (num > UINT16_MAX)
				ret = -EINVAL;
			else
				gm_virtq_set_base(q->vq, (uint16_t)num);
		} else if (msg->request == REQ_SET_VRING_ENABLE) {
			if (num > 1)
				ret = -EINVAL;
			else
				q->enabled = num == 1;
			if (q->enabled)
				signal_fd(q->wake_fd);
		} else {
			/* Stop the ring: the worker is between rounds (we hold its lock). */
			q->started = false;
			if (q->kick_fd >= 0)
				epoll_ctl(q->epfd, EPOLL_CTL_DEL, q->kick_fd, NULL);
			close_fd(&q->kick_fd);
			put32(out, idx);
			put32(out + 4, gm_virtq_base(q->vq));
		}
		pthread_mutex_unlock(&q->lock);
		if (msg->request == REQ_GET_VRING_BASE) {
			*replied = true;
			return send_reply(fd, msg, out, 8);
		}
		return ret;
	case REQ_SET_VRING_ADDR:
		if (msg->size != 40 || msg->nfds)
			return DISCONNECT;
		q = msg_queue(s, get32(msg->p));
		if (!q)
			return DISCONNECT;
		if (get32(msg->p + 4) != 0)
			return -ENOTSUP; /* VHOST_VRING_F_LOG: no dirty logging */
		pthread_mutex_lock(&q->lock);
		q->desc_ua = get64(msg->p + 8);
		q->used_ua = get64(msg->p + 16);
		q->avail_ua = get64(msg->p + 24);
		q->addr_set = true;
		q->layout_valid = false;
		pthread_mutex_unlock(&q->lock);
		return 0;
	case REQ_SET_VRING_KICK:
	case REQ_SET_VRING_CALL:
	case REQ_SET_VRING_ERR:
		return do_vring_fd(s, msg);
	case REQ_GET_CONFIG:
	case REQ_SET_CONFIG: {
		uint32_t off, size;
		uint8_t cfg[VU_CONFIG_MAX] = {0};

		if (msg->size < 12 || msg->nfds)
			return DISCONNECT;
		off = get32(msg->p);
		size = get32(msg->p + 4);
		if (size > VU_CONFIG_MAX || off > VU_CONFIG_MAX - size || msg->size != 12 + size)
			return DISCONNECT;
		if (msg->request == REQ_SET_CONFIG)
			return -EPERM; /* nothing in our config space is writable */
		s->dev.get_config(s->dev.opaque, s->nqueues, cfg);
		memcpy(out, msg->p, 12);
		memcpy(out + 12, cfg + off, size);
		*replied = true;
		return send_reply(fd, msg, out, 12 + size);
	}
	default:
		return -ENOSYS;
	}
}

static void stop_all(struct vu_server *s)
{
	unsigned i;

	for (i = 0; i < s->nqueues; i++) {
		struct vu_queue *q = &s->q[i];

		pthread_mutex_lock(&q->lock);
		q->stop = true;
		signal_fd(q->wake_fd);
		pthread_mutex_unlock(&q->lock);
		if (q->thread_running)
			pthread_join(q->thread, NULL);
		q->thread_running = false;
		pthread_mutex_lock(&q->lock);
		q->stop = false;
		reset_queue(q);
		pthread_mutex_unlock(&q->lock);
	}
	drop_inflight(s);
	gm_vhost_mem_clear(s->mem);
	s->features = 0;
	s->protocol_features = 0;
	s->owner = false;
}

int vu_serve(struct vu_server *s, int fd, int stop_fd, struct vu_conn_info *info)
{
	struct msg *msg;
	unsigned i;
	int ret = 0;

	memset(info, 0, sizeof(*info));
	s->info = info;
	msg = malloc(sizeof(*msg));
	if (!msg) {
		close(fd);
		return -ENOMEM;
	}
	for (i = 0; i < s->nqueues; i++) {
		if (pthread_create(&s->q[i].thread, NULL, worker, &s->q[i])) {
			ret = -EAGAIN;
			info->end_reason = "cannot start worker thread";
			goto out;
		}
		s->q[i].thread_running = true;
	}
	for (;;) {
		struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN},
					{.fd = stop_fd, .events = POLLIN}};
		bool replied, need_reply;

		if (poll(pfd, stop_fd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			info->end_reason = "poll failed";
			break;
		}
		if (stop_fd >= 0 && pfd[1].revents) {
			info->end_reason = "stopped";
			ret = 0;
			break;
		}
		ret = read_msg(fd, msg);
		if (ret == -ECONNRESET) {
			ret = 0;
			info->end_reason = "front end disconnected";
			break;
		}
		if (ret) {
			info->end_reason = "malformed message";
			break;
		}
		info->messages++;
		need_reply = (msg->flags & FLAG_NEED_REPLY) &&
			     (s->protocol_features & (1ull << VU_PF_REPLY_ACK));
		ret = dispatch(s, fd, msg, &replied);
		close_msg_fds(msg); /* every fd the handler did not keep */
		if (ret == DISCONNECT) {
			info->end_reason = "malformed message";
			break;
		}
		if (replied) {
			if (ret < 0) {
				info->end_reason = "cannot reply";
				break;
			}
			continue;
		}
		if (need_reply) {
			/* REPLY_ACK: 0 success, non-zero failure; the connection goes on. */
			ret = reply_u64(fd, msg, ret ? 1 : 0);
			if (ret < 0) {
				info->end_reason = "cannot reply";
				break;
			}
			continue;
		}
		if (ret) {
			/* No way to tell the front end: do not go on with a state it does not know.
			 */
			info->end_reason =
			    ret == -ENOSYS ? "unsupported request" : "request failed";
			ret = DISCONNECT;
			break;
		}
	}
out:
	stop_all(s);
	free(msg);
	close(fd);
	s->info = NULL;
	return ret;
}
