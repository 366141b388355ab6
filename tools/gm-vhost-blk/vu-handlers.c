/* SPDX-License-Identifier: MIT */
/*
 * vu-handlers.c - the requests the vhost-user server accepts, as a table:
 * one row per request with its payload size (or a rule that checks the
 * size against the payload), the file descriptors it must come with, and
 * its handler. vu_handle_message() is the only place that checks sizes and
 * fd counts (vu-internal.h, invariant 4): a handler runs only on a message
 * its row accepted, and checks the rest (index ranges, values).
 *
 * A new request is one row plus its handler. The subset is the one QEMU's
 * vhost-user-blk-pci uses (docs/interop/vhost-user.rst in QEMU).
 *
 * A handler returns 0, a -errno failure of a well-formed request (answered
 * in REPLY_ACK, or ending the connection if no reply was asked for), or
 * DISCONNECT for a malformed one. One that answers by itself sets
 * *replied. It runs on the protocol thread and takes a queue's lock for
 * every change to the queue (invariant 1).
 */
#include "vu-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

typedef int (*vu_handler)(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
			  bool *replied);

/* How many fds a request comes with. */
enum fds_rule {
	FDS_NONE,
	FDS_ONE,
	FDS_AT_MOST_ONE, /* REM_MEM_REG: old QEMU sends a stray fd */
	FDS_UNLESS_NOFD, /* SET_VRING_KICK/CALL/ERR: one unless VRING_NOFD is set */
	FDS_UNLESS_ACK,	 /* SET_MEM_TABLE: one per region (u32 count at offset 0), ADD_MEM_REG:
			    one; none in a post-copy ack (8 bytes) */
};

struct request_row {
	uint32_t request;
	uint32_t size;				/* exact payload size, if @size_ok is NULL */
	bool (*size_ok)(const struct msg *msg); /* otherwise this says */
	enum fds_rule fds;
	vu_handler handle;
};

/* ---- helpers ---- */

/* The queue a SET/GET_VRING_* message names, or NULL. */
static struct vu_queue *msg_queue(struct vu_server *s, uint32_t index)
{
	return index < s->nqueues ? &s->q[index] : NULL;
}

static uint64_t offered_features(const struct vu_server *s)
{
	return s->dev.features | (1ull << VU_F_INDIRECT_DESC) | (1ull << VU_F_EVENT_IDX) |
	       (1ull << VU_F_PROTOCOL_FEATURES) | (1ull << VU_F_VERSION_1) | (1ull << VU_F_LOG_ALL);
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

static void note_table(struct vu_server *s)
{
	struct gm_vhost_table *t = gm_vhost_mem_table(s->tables);
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

/* ---- features, owner ---- */

static int get_features(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
			bool *replied)
{
	*replied = true;
	return vu_reply_u64(c, msg, offered_features(s));
}

static int get_protocol_features(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
				 bool *replied)
{
	(void)s;
	*replied = true;
	return vu_reply_u64(c, msg, PROTOCOL_FEATURES);
}

static int get_queue_num(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
			 bool *replied)
{
	*replied = true;
	return vu_reply_u64(c, msg, s->nqueues);
}

static int get_max_mem_slots(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
			     bool *replied)
{
	(void)s;
	*replied = true;
	return vu_reply_u64(c, msg, MEM_SLOTS);
}

static int set_features(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
			bool *replied)
{
	uint64_t v = get64(msg->p);
	bool log_all = (v & (1ull << VU_F_LOG_ALL)) != 0;
	int ret;

	(void)c;
	(void)replied;
	if (v & ~offered_features(s))
		return -EINVAL;
	/*
	 * The dirty log follows LOG_ALL, switched before the reply: once the
	 * front end is answered, every later write of every worker is logged
	 * (or not). Only with a log the last SET_LOG_BASE attached.
	 */
	if (log_all != gm_vhost_mem_logging(s->tables) && !s->dev.break_log) {
		if (log_all && !s->log_ok)
			return -EINVAL;
		ret = gm_vhost_mem_set_logging(s->tables, log_all);
		if (ret)
			return ret;
	}
	s->features = v;
	s->info->features = v;
	set_queue_features(s);
	return 0;
}

static int set_protocol_features(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
				 bool *replied)
{
	uint64_t v = get64(msg->p);

	(void)c;
	(void)replied;
	if (v & ~PROTOCOL_FEATURES)
		return -EINVAL;
	s->protocol_features = v;
	s->info->protocol_features = v;
	return 0;
}

static int set_owner(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied)
{
	(void)c;
	(void)msg;
	(void)replied;
	s->owner = true;
	return 0;
}

static int reset_owner(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied)
{
	unsigned i;

	(void)c;
	(void)msg;
	(void)replied;
	for (i = 0; i < s->nqueues; i++) {
		pthread_mutex_lock(&s->q[i].lock);
		vu_reset_queue(&s->q[i]);
		pthread_mutex_unlock(&s->q[i].lock);
	}
	gm_vhost_mem_clear(s->tables);
	s->features = 0;
	s->owner = false;
	return 0;
}

/* ---- memory table ---- */

/* SET_MEM_TABLE: u32 nregions, u32 padding, then nregions regions. */
static bool mem_table_size_ok(const struct msg *msg)
{
	uint32_t n;

	if (msg->size < 8)
		return false;
	n = get32(msg->p);
	return n <= TABLE_REGIONS && msg->size == 8 + REGION_SIZE * n;
}

/* The regions of a SET_MEM_TABLE being installed (vu_postcopy_table()). */
struct table_args {
	const struct gm_vhost_region *r;
	uint32_t n;
};

static int install_table(struct vu_server *s, void *arg)
{
	const struct table_args *a = arg;

	return gm_vhost_mem_set(s->tables, a->r, a->n);
}

static int install_region(struct vu_server *s, void *arg)
{
	return gm_vhost_mem_add(s->tables, arg);
}

/*
 * After a post-copy table was answered with our addresses, QEMU sends the
 * same request again with a u64 0 and no fd, its ack that it can now take
 * our faults. Nothing to do and nothing to answer.
 */
static bool is_postcopy_ack(const struct vu_server *s, const struct msg *msg)
{
	return s->listening && msg->size == 8 && msg->nfds == 0;
}

static int set_mem_table(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
			 bool *replied)
{
	struct gm_vhost_region r[TABLE_REGIONS];
	uint32_t n = get32(msg->p), i;
	int ret;

	if (is_postcopy_ack(s, msg)) {
		*replied = true;
		return get64(msg->p) == 0 ? 0 : DISCONNECT;
	}
	for (i = 0; i < n; i++) {
		parse_region(msg->p + 8 + REGION_SIZE * i, &r[i]);
		r[i].fd = msg->fds[i];
	}
	/* The table maps duplicates; our copies are closed with the message. */
	if (s->listening) {
		struct table_args a = {r, n};

		ret = vu_postcopy_table(s, c, msg, 8, n, install_table, &a, replied);
	} else {
		ret = gm_vhost_mem_set(s->tables, r, n);
	}
	if (ret == 0)
		note_table(s);
	return ret;
}

/* ADD_MEM_REG: u64 padding, then one region and its fd; or a post-copy ack (u64 0, no fd). */
static bool add_mem_reg_size_ok(const struct msg *msg)
{
	return msg->size == 8 + REGION_SIZE || msg->size == 8;
}

/* ADD_MEM_REG / REM_MEM_REG: u64 padding, then one region. */
static int add_mem_reg(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied)
{
	struct gm_vhost_region r;
	int ret;

	if (msg->size == 8) {
		if (!is_postcopy_ack(s, msg) || get64(msg->p) != 0)
			return DISCONNECT;
		*replied = true;
		return 0;
	}
	parse_region(msg->p + 8, &r);
	r.fd = msg->fds[0];
	if (s->listening)
		ret = vu_postcopy_table(s, c, msg, 8, 1, install_region, &r, replied);
	else
		ret = gm_vhost_mem_add(s->tables, &r);
	if (ret == 0)
		note_table(s);
	return ret;
}

static int rem_mem_reg(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied)
{
	struct gm_vhost_region r;
	int ret;

	(void)c;
	(void)replied;
	parse_region(msg->p + 8, &r);
	r.fd = -1;
	ret = gm_vhost_mem_remove(s->tables, &r);
	if (ret == 0)
		note_table(s);
	return ret;
}

/* ---- the dirty log (vhost-user.rst, "Migration") ---- */

/*
 * SET_LOG_BASE with LOG_SHMFD: u64 mmap size, u64 mmap offset, and the
 * log's fd. Answered with a u64 (0: taken) once the log is in place and no
 * worker writes through a table that does not mark it
 * (gm_vhost_mem_set_log()). A log that cannot be taken (too small for the
 * memory table, a bad window) is answered non-zero and LOG_ALL is refused
 * until a good one comes; if logging is on meanwhile, the log in use would
 * no longer be the front end's, so the connection ends instead.
 */
static int set_log_base(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
			bool *replied)
{
	int ret;

	if (!(s->protocol_features & (1ull << VU_PF_LOG_SHMFD)))
		return DISCONNECT; /* the payload would be a kernel-style address */
	ret = gm_vhost_mem_set_log(s->tables, msg->fds[0], get64(msg->p + 8), get64(msg->p));
	s->log_ok = ret == 0;
	if (ret && gm_vhost_mem_logging(s->tables))
		return DISCONNECT;
	if (ret == 0)
		s->info->log_bases++;
	*replied = true;
	return vu_reply_u64(c, msg, ret ? 1 : 0);
}

/*
 * SET_LOG_FD: an eventfd to tell the front end the log changed. Optional;
 * the front end reads the log on its own schedule, so the fd is not kept.
 */
static int set_log_fd(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied)
{
	(void)s;
	(void)c;
	(void)msg;
	(void)replied;
	return 0;
}

/* ---- vring state: u32 index, u32 num ---- */

/* The queue @msg names, locked, and its u32 argument; NULL if out of range. */
static struct vu_queue *lock_vring(struct vu_server *s, const struct msg *msg, uint32_t *num)
{
	struct vu_queue *q = msg_queue(s, get32(msg->p));

	*num = get32(msg->p + 4);
	if (q)
		pthread_mutex_lock(&q->lock);
	return q;
}

static int set_vring_num(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
			 bool *replied)
{
	struct vu_queue *q;
	uint32_t num;
	int ret = 0;

	(void)c;
	(void)replied;
	q = lock_vring(s, msg, &num);
	if (!q)
		return DISCONNECT;
	if (num == 0 || num > GM_VIRTQ_MAX_SIZE || (num & (num - 1)))
		ret = -EINVAL;
	else
		q->num = num;
	q->layout_valid = false;
	pthread_mutex_unlock(&q->lock);
	return ret;
}

static int set_vring_base(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
			  bool *replied)
{
	struct vu_queue *q;
	uint32_t num;
	int ret = 0;

	(void)c;
	(void)replied;
	q = lock_vring(s, msg, &num);
	if (!q)
		return DISCONNECT;
	if (num > UINT16_MAX)
		ret = -EINVAL;
	else
		gm_virtq_set_base(q->vq, (uint16_t)num);
	pthread_mutex_unlock(&q->lock);
	return ret;
}

static int set_vring_enable(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
			    bool *replied)
{
	struct vu_queue *q;
	uint32_t num;
	int ret = 0;

	(void)c;
	(void)replied;
	q = lock_vring(s, msg, &num);
	if (!q)
		return DISCONNECT;
	if (num > 1)
		ret = -EINVAL;
	else
		q->enabled = num == 1;
	if (q->enabled)
		wake_worker(q);
	pthread_mutex_unlock(&q->lock);
	return ret;
}

static int get_vring_base(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
			  bool *replied)
{
	struct vu_queue *q;
	uint8_t out[8];
	uint32_t num;

	q = lock_vring(s, msg, &num);
	if (!q)
		return DISCONNECT;
	/* Stop the ring: the worker is between rounds (we hold its lock). */
	q->started = false;
	if (q->kick_fd >= 0)
		epoll_ctl(q->epfd, EPOLL_CTL_DEL, q->kick_fd, NULL);
	close_fd(&q->kick_fd);
	put32(out, q->index);
	put32(out + 4, gm_virtq_base(q->vq));
	pthread_mutex_unlock(&q->lock);
	*replied = true;
	return vu_send_reply(c, msg, out, 8);
}

/* SET_VRING_ADDR: u32 index, u32 flags, u64 desc, used, avail, log. */
static int set_vring_addr(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
			  bool *replied)
{
	struct vu_queue *q = msg_queue(s, get32(msg->p));
	uint32_t flags = get32(msg->p + 4);

	(void)c;
	(void)replied;
	if (!q)
		return DISCONNECT;
	if (flags & ~VRING_F_LOG)
		return -ENOTSUP;
	pthread_mutex_lock(&q->lock);
	q->desc_ua = get64(msg->p + 8);
	q->used_ua = get64(msg->p + 16);
	q->avail_ua = get64(msg->p + 24);
	q->log_gpa = get64(msg->p + 32);
	q->log_used = (flags & VRING_F_LOG) != 0;
	q->addr_set = true;
	q->layout_valid = false;
	pthread_mutex_unlock(&q->lock);
	return 0;
}

/*
 * SET_VRING_KICK / CALL / ERR: u64 index | VRING_NOFD, and the fd unless
 * NOFD. The fd must be an eventfd (vu-internal.h, invariant 6); any other
 * is refused with -EBADF and the queue keeps the fd it had.
 */
static int set_vring_fd(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
			bool *replied)
{
	uint64_t v = get64(msg->p);
	struct vu_queue *q = msg_queue(s, (uint32_t)(v & VRING_IDX_MASK));
	int fd = -1, *slot;

	(void)c;
	(void)replied;
	if (!q || (v & ~(uint64_t)(VRING_IDX_MASK | VRING_NOFD)))
		return DISCONNECT;
	if (msg->nfds && !vu_is_eventfd(msg->fds[0])) {
		/* A pipe, socket, epoll fd...: refused; the message's fd is closed. */
		s->info->fds_refused++;
		s->info->fd_refusal =
		    msg->request == REQ_SET_VRING_KICK	 ? "kick fd is not an eventfd"
		    : msg->request == REQ_SET_VRING_CALL ? "call fd is not an eventfd"
							 : "err fd is not an eventfd";
		return -EBADF;
	}
	if (msg->nfds) {
		fd = msg->fds[0];
		msg->fds[0] = -1; /* kept (invariant 3) */
		msg->nfds = 0;
	}
	pthread_mutex_lock(&q->lock);
	slot = msg->request == REQ_SET_VRING_KICK   ? &q->kick_fd
	       : msg->request == REQ_SET_VRING_CALL ? &q->call_fd
						    : &q->err_fd;
	if (msg->request == REQ_SET_VRING_KICK && q->kick_fd >= 0)
		epoll_ctl(q->epfd, EPOLL_CTL_DEL, q->kick_fd, NULL);
	if (msg->request == REQ_SET_VRING_KICK)
		close_fd(slot);
	else
		vu_drop_signal_fd(q, slot); /* the worker may be writing it */
	*slot = fd;
	if (msg->request == REQ_SET_VRING_KICK) {
		/*
		 * Edge-triggered, and the worker never reads it: every write
		 * to an eventfd is a new edge, and a kick fd the peer made
		 * blocking, drained or filled cannot stall the worker.
		 */
		struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = 1};

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
		wake_worker(q); /* requests may already be waiting */
	}
	pthread_mutex_unlock(&q->lock);
	return 0;
}

/* ---- config space: u32 offset, u32 size, u32 flags, then size bytes ---- */

static bool config_size_ok(const struct msg *msg)
{
	uint32_t off, size;

	if (msg->size < 12)
		return false;
	off = get32(msg->p);
	size = get32(msg->p + 4);
	return size <= VU_CONFIG_MAX && off <= VU_CONFIG_MAX - size && msg->size == 12 + size;
}

static int get_config(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied)
{
	uint32_t off = get32(msg->p), size = get32(msg->p + 4);
	uint8_t out[HDR_SIZE + VU_CONFIG_MAX];
	uint8_t cfg[VU_CONFIG_MAX] = {0};

	s->dev.get_config(s->dev.opaque, s->nqueues, cfg);
	memcpy(out, msg->p, 12);
	memcpy(out + 12, cfg + off, size);
	*replied = true;
	return vu_send_reply(c, msg, out, 12 + size);
}

static int set_config(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied)
{
	(void)s;
	(void)c;
	(void)msg;
	(void)replied;
	return -EPERM; /* nothing in our config space is writable */
}

/* ---- the table ---- */

static const struct request_row requests[] = {
    {REQ_GET_FEATURES, 0, NULL, FDS_NONE, get_features},
    {REQ_SET_FEATURES, 8, NULL, FDS_NONE, set_features},
    {REQ_SET_OWNER, 0, NULL, FDS_NONE, set_owner},
    {REQ_RESET_OWNER, 0, NULL, FDS_NONE, reset_owner},
    {REQ_SET_MEM_TABLE, 0, mem_table_size_ok, FDS_UNLESS_ACK, set_mem_table},
    {REQ_SET_LOG_BASE, 16, NULL, FDS_ONE, set_log_base},
    {REQ_SET_LOG_FD, 0, NULL, FDS_ONE, set_log_fd},
    {REQ_SET_VRING_NUM, 8, NULL, FDS_NONE, set_vring_num},
    {REQ_SET_VRING_ADDR, 40, NULL, FDS_NONE, set_vring_addr},
    {REQ_SET_VRING_BASE, 8, NULL, FDS_NONE, set_vring_base},
    {REQ_GET_VRING_BASE, 8, NULL, FDS_NONE, get_vring_base},
    {REQ_SET_VRING_KICK, 8, NULL, FDS_UNLESS_NOFD, set_vring_fd},
    {REQ_SET_VRING_CALL, 8, NULL, FDS_UNLESS_NOFD, set_vring_fd},
    {REQ_SET_VRING_ERR, 8, NULL, FDS_UNLESS_NOFD, set_vring_fd},
    {REQ_GET_PROTOCOL_FEATURES, 0, NULL, FDS_NONE, get_protocol_features},
    {REQ_SET_PROTOCOL_FEATURES, 8, NULL, FDS_NONE, set_protocol_features},
    {REQ_GET_QUEUE_NUM, 0, NULL, FDS_NONE, get_queue_num},
    {REQ_SET_VRING_ENABLE, 8, NULL, FDS_NONE, set_vring_enable},
    {REQ_GET_CONFIG, 0, config_size_ok, FDS_NONE, get_config},
    {REQ_SET_CONFIG, 0, config_size_ok, FDS_NONE, set_config},
    {REQ_POSTCOPY_ADVISE, 0, NULL, FDS_NONE, vu_postcopy_advise},
    {REQ_POSTCOPY_LISTEN, 0, NULL, FDS_NONE, vu_postcopy_listen},
    {REQ_POSTCOPY_END, 0, NULL, FDS_NONE, vu_postcopy_end},
    {REQ_GET_INFLIGHT_FD, 24, NULL, FDS_NONE, vu_get_inflight_fd},
    {REQ_SET_INFLIGHT_FD, 24, NULL, FDS_ONE, vu_set_inflight_fd},
    {REQ_GET_MAX_MEM_SLOTS, 0, NULL, FDS_NONE, get_max_mem_slots},
    {REQ_ADD_MEM_REG, 0, add_mem_reg_size_ok, FDS_UNLESS_ACK, add_mem_reg},
    {REQ_REM_MEM_REG, 8 + REGION_SIZE, NULL, FDS_AT_MOST_ONE, rem_mem_reg},
};

/* Whether @msg came with the fds @row asks for. Called once its size is accepted. */
static bool fds_ok(const struct request_row *row, const struct msg *msg)
{
	switch (row->fds) {
	case FDS_NONE:
		return msg->nfds == 0;
	case FDS_ONE:
		return msg->nfds == 1;
	case FDS_AT_MOST_ONE:
		return msg->nfds <= 1;
	case FDS_UNLESS_NOFD:
		return msg->nfds == ((get64(msg->p) & VRING_NOFD) ? 0u : 1u);
	case FDS_UNLESS_ACK:
		if (msg->size == 8)
			return msg->nfds == 0;
		return msg->nfds == (msg->request == REQ_ADD_MEM_REG ? 1u : get32(msg->p));
	}
	return false;
}

int vu_handle_message(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied)
{
	size_t i;

	*replied = false;
	for (i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		const struct request_row *row = &requests[i];

		if (row->request != msg->request)
			continue;
		if (row->size_ok ? !row->size_ok(msg) : msg->size != row->size)
			return DISCONNECT;
		if (!fds_ok(row, msg))
			return DISCONNECT;
		return row->handle(s, c, msg, replied);
	}
	return -ENOSYS;
}
