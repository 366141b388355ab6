/* SPDX-License-Identifier: MIT */
/*
 * vu.h - a vhost-user back end server: the protocol, queues and workers.
 *
 * Device-independent: it speaks the vhost-user protocol on one connected
 * Unix socket at a time, keeps the guest memory table in a gm_vhost_mem,
 * runs one worker thread per queue (epoll on the queue's kick eventfd),
 * walks the rings with gm_virtq and hands each request to the device's
 * handler. blk.c is the device; main.c the program around it, which
 * gives each connection a server of its own, so several front ends (a
 * migration's source and destination) are served at once.
 */
#ifndef GM_VHOST_BLK_VU_H
#define GM_VHOST_BLK_VU_H

#include <guestmem/vhost.h>
#include <guestmem/virtq.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

/* Virtio feature bits the server itself handles. */
#define VU_F_LOG_ALL	       26 /* VHOST_F_LOG_ALL: the dirty log is on */
#define VU_F_INDIRECT_DESC     28
#define VU_F_EVENT_IDX	       29
#define VU_F_PROTOCOL_FEATURES 30
#define VU_F_VERSION_1	       32

/* Protocol feature bits (vhost-user.rst). */
#define VU_PF_MQ		  0
#define VU_PF_LOG_SHMFD		  1
#define VU_PF_REPLY_ACK		  3
#define VU_PF_PAGEFAULT		  8 /* post-copy: POSTCOPY_ADVISE, LISTEN, END */
#define VU_PF_CONFIG		  9
#define VU_PF_INFLIGHT_SHMFD	  12
#define VU_PF_CONFIGURE_MEM_SLOTS 15

#define VU_CONFIG_MAX 256u /* largest config space a message may carry */
#define VU_MAX_QUEUES 64u

/* A request a batch finished (struct vu_batch_ops): its head and used length. */
typedef void (*vu_done_fn)(void *arg, uint16_t head, uint32_t used);

/*
 * Optional: serve a queue's requests in batches. A worker's round starts
 * each request it pops, then has the device submit them at once and
 * complete each as it finishes; every request a round started has
 * completed before the round ends, so none is in flight while the queue
 * is unlocked (vu-internal.h, invariant 1) and the round's memory table
 * outlives its I/O (invariant 2). All calls come from the queue's worker.
 * Requests re-served from the inflight buffer at ring start go through
 * handle(), one at a time, in the order they were first taken.
 */
struct vu_batch_ops {
	/* A context for queue @qidx, at its worker's start; NULL: serve it with handle(). */
	void *(*open)(void *opaque, unsigned qidx);
	void (*close)(void *ctx);
	unsigned depth; /* at most this many requests started between two finish() calls */
	/*
	 * Take request @head, buffers @bufs[0..n) (reused by the next pop).
	 * Returns 0 if it was served now (*@used: its used length), or 1 if
	 * it waits for finish().
	 */
	int (*start)(void *ctx, const struct gm_memory *m, uint16_t head,
		     const struct gm_virtq_buf *bufs, size_t n, uint32_t *used);
	/* Submit what start() left and wait for all of it, calling @done for each as it ends. */
	void (*finish)(void *ctx, const struct gm_memory *m, vu_done_fn done, void *arg);
};

struct vu_device {
	uint64_t features; /* device feature bits, without the four above */
	size_t max_bufs;   /* longest chain the device takes (seg_max + 2) */
	/* Fill @cfg (VU_CONFIG_MAX bytes, zeroed) with the config space. */
	void (*get_config)(void *opaque, unsigned nqueues, uint8_t *cfg);
	/*
	 * Serve one request whose buffers are @bufs[0..n) on queue @qidx.
	 * Returns the bytes written into device-writable buffers (used length).
	 * Called from the queue's worker thread.
	 */
	uint32_t (*handle)(void *opaque, unsigned qidx, const struct gm_memory *m,
			   const struct gm_virtq_buf *bufs, size_t n);
	/* A request gm_virtq_pop() refused as malformed (returned with length 0). */
	void (*bad_request)(void *opaque);
	struct vu_batch_ops batch; /* all zero: every request through handle() */
	void *opaque;
	/*
	 * Tests only (GM_VHOST_BLK_TEST_BREAK_LOG=1): ack VHOST_F_LOG_ALL but
	 * log nothing, to show that a migration's checks catch lost writes.
	 */
	bool break_log;
};

/* What a connection did; reset at each new connection. */
struct vu_conn_info {
	uint64_t features;	    /* acked virtio features */
	uint64_t protocol_features; /* acked protocol features */
	unsigned queues_started;    /* ring starts (kicks on a stopped ring) */
	size_t regions;		    /* regions of the last memory table */
	size_t max_regions_seen;    /* most regions in force at once */
	uint64_t tables;	    /* memory tables installed (set/add/remove) */
	uint64_t messages;
	uint64_t resubmitted;	  /* requests re-served from the inflight buffer */
	uint64_t log_bases;	  /* dirty logs attached (SET_LOG_BASE) */
	uint64_t log_pages;	  /* pages set in the log when the connection ended */
	uint64_t log_marked;	  /* pages this connection newly set in its logs (0 -> 1) */
	uint64_t uffd_registered; /* region registrations with the post-copy userfaultfd */
	unsigned fds_refused;	  /* kick/call/err fds not eventfds, inflight fds not files */
	const char *fd_refusal;	  /* static string: why the last one was refused */
	const char *end_reason;	  /* static string */
};

struct vu_server;

/*
 * The signal that bounds a worker's write to a front end's call or err
 * eventfd: a peer can make its eventfd blocking and fill it between the
 * worker's poll() and its write(), so each write runs under a per-thread
 * timer that sends this signal every VU_WRITE_BOUND_MS until the write
 * returned (EINTR if it was blocked). vu_server_new() installs its handler,
 * a no-op without SA_RESTART; the program must leave this signal alone.
 */
#define VU_SIGNAL	  SIGRTMIN
#define VU_WRITE_BOUND_MS 20

/*
 * A server for @nqueues (1..VU_MAX_QUEUES) queues of @dev. Installs
 * VU_SIGNAL's handler. Returns 0, -EINVAL, -ENOMEM, or -errno of sigaction().
 */
int vu_server_new(const struct vu_device *dev, unsigned nqueues, struct vu_server **out);
void vu_server_free(struct vu_server *s);

/* How long one message may take to arrive or leave once it began, by default. */
#define VU_STALL_MS 5000

/*
 * Set how long (ms; <= 0: VU_STALL_MS) a message may take to arrive, or a
 * reply to be taken, once it began; a front end slower than that has its
 * connection ended. Between connections only.
 */
void vu_server_set_stall_timeout(struct vu_server *s, int ms);

/*
 * Tests only: behave as if this kernel had no userfaultfd, so that
 * POSTCOPY_ADVISE is refused. Between connections only.
 */
void vu_server_set_no_userfaultfd(struct vu_server *s, bool none);

/*
 * Tests only: the period of the timer that bounds a call/err write (ms;
 * 0 or less: VU_WRITE_BOUND_MS). Under qemu-i386 every signal a thread
 * handles can leave it with another thread's TLS (qemu-user keeps one GDT
 * for all threads and sigreturn reloads %gs from it), so the emulated
 * test runs keep that signal for writes that really block. Between
 * connections only.
 */
void vu_server_set_write_bound(struct vu_server *s, int ms);

/* How long a post-copy page may stay missing under a worker, by default (ms). */
#define VU_POSTCOPY_TIMEOUT_MS 120000

/*
 * Set how long (ms; <= 0: VU_POSTCOPY_TIMEOUT_MS) one access of a worker
 * (one step of a request: see vu_io_progress()) may stay blocked while
 * post-copy is listening (a page the front end does not place) before the
 * connection is ended as if the front end had gone: the request fails
 * without touching the image and is not completed (vu-postcopy.c). Also
 * while the protocol thread waits for the queue locks to install a memory
 * table. Between connections only.
 */
void vu_server_set_postcopy_timeout(struct vu_server *s, int ms);

/*
 * The device's gate around one access to its backing store that a
 * request's guest data decides (reads and writes of guest buffers, the
 * ranges of DISCARD and WRITE_ZEROES). From a worker thread: returns 0 if
 * the connection is alive, and the caller then makes the access and calls
 * vu_io_leave(); or -ECONNABORTED if a post-copy connection was abandoned
 * (front end gone, page not placed in time): the caller fails the request
 * without touching the store, since what it read from guest memory may be
 * zeros. A guest buffer access in the gate that waits for a missing page
 * ends with -EFAULT when the connection is abandoned. From other threads
 * it always returns 0.
 */
int vu_io_enter(void);
void vu_io_leave(void);

/* The size of a worker's bounce buffer (vu_io_bounce()). */
#define VU_BOUNCE_BYTES 65536u

/*
 * Where a write request's guest data goes on its way to the backing store.
 * From a worker thread while post-copy is listening: sets *@buf to the
 * worker's own buffer of *@len (VU_BOUNCE_BYTES) bytes, allocated on its
 * first use and kept until the worker ends; the device then copies the
 * data into it with gm_read() (a user-mode access: an abandoned page
 * fails or reads zeros), calls vu_io_enter() only after that copy, and
 * writes the store from the buffer. Otherwise sets *@buf to NULL: the
 * device writes straight from guest memory. Returns 0, or -ENOMEM if the
 * buffer cannot be allocated (the request fails).
 */
int vu_io_bounce(uint8_t **buf, size_t *len);

/*
 * From a worker thread, before each step of a request that may wait for a
 * post-copy page (a piece of guest data moved, a bounce-buffer load): the
 * post-copy timeout (vu_server_set_postcopy_timeout()) counts from now.
 * Nothing outside post-copy.
 */
void vu_io_progress(void);

/*
 * Serve the front end on the connected socket @fd until it disconnects,
 * sends a malformed message, stalls mid-message (or does not take a reply)
 * for the stall timeout, or @stop_fd (may be -1) becomes readable: the
 * stop is seen at once, also mid-message, since every wait on @fd watches
 * @stop_fd too. @fd's own flags do not matter: it is only used with
 * MSG_DONTWAIT.
 * Closes @fd. Stops every queue and drops the memory table before it
 * returns, so the server is ready for the next connection. Fills *@info.
 * Returns 0 on a clean end (disconnect or stop), -EPROTO on a protocol
 * error, -ETIMEDOUT when the front end stalled, another -errno on a
 * system error.
 */
int vu_serve(struct vu_server *s, int fd, int stop_fd, struct vu_conn_info *info);

#endif
