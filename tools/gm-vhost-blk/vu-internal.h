/* SPDX-License-Identifier: MIT */
/*
 * vu-internal.h - what the files of the vhost-user server share; vu.h is
 * its interface to main.c and blk.c.
 *
 *   vu.c          the server and one connection: vu_server_new/free(),
 *                 vu_serve()'s loop, stop_all() between connections.
 *   vu-msg.c      message I/O: reading a message with its fds, replies,
 *                 closing the fds nobody kept.
 *   vu-handlers.c the table of requests and their handlers.
 *   vu-inflight.c INFLIGHT_SHMFD: the shared buffer and resubmission.
 *   vu-postcopy.c PAGEFAULT: the userfaultfd of a post-copy migration.
 *   vu-queue.c    the queues: one worker thread each, serving rounds.
 *
 * Threads: the caller of vu_serve() (the "protocol thread") reads and
 * answers messages; one worker per queue waits on the queue's kick eventfd
 * and serves requests.
 *
 * Invariants:
 *  1. A queue's state (struct vu_queue) is under its mutex: the worker holds
 *     it for one bounded round of requests (ROUND_BUDGET), the protocol
 *     thread for each change, so GET_VRING_BASE sees the ring stopped
 *     between two rounds.
 *  2. The memory table is under no queue lock: gm_vhost_mem publishes it
 *     with RCU and a worker holds a reference on the table it started a
 *     round with, so a new table never waits for I/O and never pulls memory
 *     from under a request in flight.
 *  3. Every fd that arrives with a message is either kept (kick, call, err
 *     moved into the queue, the slot in msg->fds set to -1) or closed by
 *     vu_close_msg_fds() before the next message is read. Kept fds are
 *     closed when replaced or by vu_reset_queue(); a call or err fd the
 *     worker is writing at that moment (outside the lock) is closed by the
 *     worker once the write returned (vu_drop_signal_fd()).
 *  4. Every message is checked (version, payload size, fd count, index
 *     ranges) before it is acted on; a malformed one ends the connection.
 *  5. Connection state in struct vu_server (features, owner, inflight_map)
 *     is the protocol thread's alone.
 *  6. Kick, call and err fds are eventfds (checked when they arrive,
 *     vu_is_eventfd()); no lock is held across a write to one, and every
 *     such write is bounded (vu-queue.c).
 */
#ifndef GM_VHOST_BLK_VU_INTERNAL_H
#define GM_VHOST_BLK_VU_INTERNAL_H

#include "vu.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

enum {
	REQ_GET_FEATURES = 1,
	REQ_SET_FEATURES = 2,
	REQ_SET_OWNER = 3,
	REQ_RESET_OWNER = 4,
	REQ_SET_MEM_TABLE = 5,
	REQ_SET_LOG_BASE = 6,
	REQ_SET_LOG_FD = 7,
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
	REQ_POSTCOPY_ADVISE = 28,
	REQ_POSTCOPY_LISTEN = 29,
	REQ_POSTCOPY_END = 30,
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
#define VRING_F_LOG	  0x1u /* SET_VRING_ADDR flags: log the used ring at log_guest_addr */
#define VRING_IDX_MASK	  0xffu
#define ROUND_BUDGET	  256u /* requests per round before the queue lock is dropped */

#define PROTOCOL_FEATURES                                                          \
	((1ull << VU_PF_MQ) | (1ull << VU_PF_REPLY_ACK) | (1ull << VU_PF_CONFIG) | \
	 (1ull << VU_PF_CONFIGURE_MEM_SLOTS) | (1ull << VU_PF_INFLIGHT_SHMFD) |    \
	 (1ull << VU_PF_LOG_SHMFD) | (1ull << VU_PF_PAGEFAULT))

/* Returned by a handler for a message that ends the connection. */
#define DISCONNECT (-EPROTO)
/* Returned by message I/O when the stop fd became readable mid-message. */
#define STOPPED (-ECANCELED)
/* Returned by message I/O when the front end stalled mid-message. */
#define STALLED (-ETIMEDOUT)

/*
 * The connection the protocol thread serves: its socket, the fd that asks
 * it to stop, and how long one message may take to arrive or leave once
 * begun. Every wait on the socket watches @stop_fd and ends by the
 * deadline, so neither a stalled front end nor a full socket buffer can
 * hold the protocol thread (vu-msg.c).
 */
struct vu_conn {
	int sock;
	int stop_fd; /* -1: none */
	int stall_ms;
};

struct vu_queue {
	pthread_mutex_t lock; /* protects everything below (invariant 1) */
	struct vu_server *s;
	unsigned index;
	struct gm_virtq *vq;
	uint32_t num; /* 0: not set */
	uint64_t desc_ua, avail_ua, used_ua;
	uint64_t log_gpa; /* log_guest_addr of SET_VRING_ADDR, if log_used */
	bool log_used;	  /* VRING_F_LOG: the used ring is logged at log_gpa */
	bool addr_set;
	bool layout_valid; /* vq placed at desc/avail/used_gpa below */
	gm_gpa_t desc_gpa, avail_gpa, used_gpa;
	int kick_fd, call_fd, err_fd;
	/*
	 * The call and err fds the worker is writing outside the lock (-1:
	 * none), and those of them the protocol thread replaced meanwhile:
	 * the worker closes these once its write returned (invariant 3).
	 */
	int writing[2], retired[2];
	bool started; /* kicked, not stopped by GET_VRING_BASE */
	bool enabled;
	bool stop;   /* worker must exit */
	int wake_fd; /* eventfd: protocol thread -> worker */
	int epfd;
	pthread_t thread;
	bool thread_running;
	struct gm_virtq_buf *bufs;
	/* Inflight tracking (INFLIGHT_SHMFD): this queue's part of the shared buffer. */
	struct gm_mapping *inflight_map; /* the buffer's mapping (borrowed from s) or NULL */
	uint8_t *inflight;
	uint16_t inflight_qsize;
	uint64_t inflight_counter;
	bool inflight_check; /* re-serve what an earlier back end left in flight */
	/*
	 * Atomic: CLOCK_MONOTONIC ns when the worker began its current round
	 * or, while post-copy is listening, its latest step (a request, a
	 * piece of guest data: vu_io_progress()); 0: idle.
	 */
	uint64_t access_ns;
};

struct vu_server {
	struct vu_device dev;
	unsigned nqueues;
	struct vu_queue *q;
	struct gm_vhost_mem *tables; /* the memory table in force, swapped under RCU */
	uint64_t log_marked_base;    /* gm_vhost_mem_log_marked() when this connection began */
	/* Connection state: protocol thread only (invariant 5). */
	uint64_t features, protocol_features;
	bool owner;
	bool log_ok; /* the last SET_LOG_BASE was taken: LOG_ALL may be turned on */
	struct vu_conn_info *info;
	int stall_ms;			 /* struct vu_conn's, for each connection */
	struct gm_mapping *inflight_map; /* SET_INFLIGHT_FD mapping (GM_MAP_PEER), or NULL */
	/*
	 * Post-copy (vu-postcopy.c): the userfaultfd POSTCOPY_ADVISE opened
	 * (-1: none), and whether LISTEN came (memory tables are registered
	 * with it and answered with our addresses) and END did not.
	 */
	int uffd;
	bool listening;
	bool no_userfaultfd; /* tests: as if the kernel had none */
	int write_bound_ms;  /* a call/err write's timer period (vu_server_set_write_bound()) */
	/*
	 * Abandoning a post-copy connection (vu_postcopy_abort()). Atomics,
	 * shared with the workers: @pc_active while listening (workers serve
	 * without batches, so every guest buffer access is their own);
	 * @pc_dead once abandoned. @pc_timeout_ms: protocol thread only.
	 */
	unsigned pc_active, pc_dead;
	int pc_timeout_ms;
};

/* One message as read: header fields, payload, and the fds that came with it. */
struct msg {
	uint32_t request, flags, size;
	uint8_t p[MAX_PAYLOAD];
	int fds[MAX_FDS]; /* -1 once kept by a handler (invariant 3) */
	size_t nfds;
};

static inline uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8); /* vhost-user is in host byte order */
	return v;
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static inline void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* Wake queue @q's worker (its own non-blocking eventfd). */
static inline void wake_worker(struct vu_queue *q)
{
	uint64_t one = 1;

	if (write(q->wake_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is saturated, the worker will wake anyway. */
	}
}

static inline void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- vu-msg.c: message I/O ---- */

/*
 * Read one message and the fds that came with its header; the socket is
 * readable. Returns 0, -ECONNRESET on a clean EOF before a header,
 * DISCONNECT if malformed, STOPPED, STALLED (the rest of the message did
 * not come within c->stall_ms), or another -errno. On error no fd of the
 * message stays open.
 */
int vu_read_msg(const struct vu_conn *c, struct msg *msg);
/* Close every fd of @msg a handler did not keep (invariant 3). */
void vu_close_msg_fds(struct msg *msg);
/*
 * Whether @fd is an eventfd, what the protocol says kick, call and err fds
 * are (invariant 6). Reads /proc/self/fdinfo; without /proc, any anonymous
 * inode (eventfd, epoll, timerfd, signalfd) passes, and the rest (pipes,
 * sockets, files, devices) is still refused.
 */
bool vu_is_eventfd(int fd);
/*
 * Reply to @msg with @size (<= HDR_SIZE + VU_CONFIG_MAX) payload bytes.
 * Returns 0, STOPPED, STALLED (the front end did not take the reply within
 * c->stall_ms) or -errno.
 */
int vu_send_reply(const struct vu_conn *c, const struct msg *msg, const void *payload,
		  uint32_t size);
/* The same, passing fd @pass along (<= 32 payload bytes). */
int vu_send_reply_fd(const struct vu_conn *c, const struct msg *msg, const void *payload,
		     uint32_t size, int pass);
int vu_reply_u64(const struct vu_conn *c, const struct msg *msg, uint64_t v);

/* ---- vu-handlers.c ---- */

/*
 * Check one message against its row of the request table and run its
 * handler. Returns 0, a -errno failure of the request (-ENOSYS: unknown),
 * or DISCONNECT. *@replied is set if the handler sent its own reply.
 */
int vu_handle_message(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied);

/* ---- vu-postcopy.c: post-copy (vhost-user.rst, "Migration", PAGEFAULT) ---- */

/* POSTCOPY_ADVISE, POSTCOPY_LISTEN and POSTCOPY_END handlers (rows in vu-handlers.c). */
int vu_postcopy_advise(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
		       bool *replied);
int vu_postcopy_listen(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
		       bool *replied);
int vu_postcopy_end(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied);
/*
 * While listening: install a memory table by @install(@s, @arg) with every
 * queue locked, so no worker touches a page of the new table before it is
 * registered with the userfaultfd, register its regions, and answer @msg
 * with @msg's payload in which each region's userspace_addr (at
 * @first_region, @n regions of REGION_SIZE) is our address of it.
 */
int vu_postcopy_table(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
		      uint32_t first_region, uint32_t n, int (*install)(struct vu_server *, void *),
		      void *arg, bool *replied);
/* Unregister every region and close the userfaultfd. Protocol thread. */
void vu_postcopy_drop(struct vu_server *s);
/*
 * Abandon a listening post-copy connection (front end gone, or a page not
 * placed in time); nothing if not listening. Marks it dead (the image
 * gate refuses, vu_complete() skips), then replaces each region's pages in
 * this process by an empty file's and wakes every fault on them: a
 * kernel-mode copy fails with EFAULT, a user-mode access gets SIGBUS
 * (vu-postcopy.c). Protocol thread, workers still running.
 */
void vu_postcopy_abort(struct vu_server *s);
/*
 * Whether a worker's step (access_ns) has been running longer than the
 * post-copy timeout while listening. Protocol thread.
 */
bool vu_postcopy_stuck(struct vu_server *s);
/*
 * How often (ms) the protocol thread looks at vu_postcopy_stuck() while
 * it waits: a quarter of a short timeout, else every 250 ms.
 */
static inline int vu_postcopy_check_ms(const struct vu_server *s)
{
	return s->pc_timeout_ms < 1000 ? s->pc_timeout_ms / 4 + 1 : 250;
}
/*
 * The worker thread of queue @q: makes vu_io_enter(), vu_io_bounce() and
 * vu_io_progress() in this thread see @q. NULL when the worker ends: frees
 * its bounce buffer.
 */
void vu_postcopy_worker(struct vu_queue *q);
/* CLOCK_MONOTONIC in ns. */
uint64_t vu_now_ns(void);

/* ---- vu-queue.c: the queues and their workers ---- */

/* The worker thread of queue @arg (struct vu_queue *). */
void *vu_worker(void *arg);
/* Reset queue @q to its initial state, closing its fds. Called with q->lock held. */
void vu_reset_queue(struct vu_queue *q);
/*
 * Close the call or err fd in *@slot (one of q's), or leave it to the
 * worker if it is writing it right now; *@slot becomes -1. Called with
 * q->lock held.
 */
void vu_drop_signal_fd(struct vu_queue *q, int *slot);
/*
 * Interrupt a worker's write to a front end's fd: installs the no-op
 * handler of VU_SIGNAL (vu.h), once per process. Returns 0 or -errno.
 */
int vu_signal_setup(void);

/* ---- vu-inflight.c: inflight tracking (vhost-user.rst, "Inflight I/O tracking") ---- */

/*
 * The buffer the front end keeps across back-end restarts. Per queue, 64-byte
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

static inline uint16_t if_get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static inline void if_put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static inline uint8_t *if_entry(const struct vu_queue *q, unsigned head)
{
	return q->inflight + IF_HDR + (size_t)IF_ENTRY * head;
}

/* Request @head was taken from the ring. Called with q->lock held. */
static inline void vu_inflight_begin(struct vu_queue *q, uint16_t head)
{
	uint64_t c = ++q->inflight_counter;

	if (!q->inflight || head >= q->inflight_qsize)
		return;
	memcpy(if_entry(q, head) + 8, &c, 8);
	if_entry(q, head)[0] = 1;
}

/* Give @head back to the driver, keeping the inflight buffer in step. Called with q->lock held. */
static inline void vu_complete(struct vu_queue *q, const struct gm_memory *m, uint16_t head,
			       uint32_t len)
{
	bool track = q->inflight && head < q->inflight_qsize;

	if (__atomic_load_n(&q->s->pc_dead, __ATOMIC_SEQ_CST))
		return; /* abandoned: its data may be zeros the kernel made up */
	if (track)
		if_put16(q->inflight + 12, head); /* last_batch_head: see vu_inflight_resume() */
	if (gm_virtq_push(q->vq, m, head, len) == 0 && track) {
		if_entry(q, head)[0] = 0;
		if_put16(q->inflight + 14, gm_virtq_used_index(q->vq));
	}
}

/*
 * At ring start: serve again, in the order they were taken, the requests a
 * previous back end took and never completed. Called with q->lock held, the
 * ring placed.
 */
void vu_inflight_resume(struct vu_queue *q, const struct gm_memory *m);
/* Forget the inflight buffer. Protocol thread. */
void vu_drop_inflight(struct vu_server *s);
/* GET_INFLIGHT_FD and SET_INFLIGHT_FD handlers (rows in vu-handlers.c). */
int vu_get_inflight_fd(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
		       bool *replied);
int vu_set_inflight_fd(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
		       bool *replied);

#endif
