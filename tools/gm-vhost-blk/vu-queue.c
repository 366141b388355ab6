/* SPDX-License-Identifier: MIT */
/*
 * vu-queue.c - the queues of the vhost-user server: one worker thread per
 * queue waits (epoll) on the queue's kick eventfd and its wake eventfd,
 * then serves a round of at most ROUND_BUDGET requests under the queue's
 * lock, on the memory table it took a reference on for that round
 * (vu-internal.h, invariants 1 and 2). The protocol thread configures the
 * queues (vu-handlers.c) and stops the workers (vu.c).
 *
 * Invariants (besides vu-internal.h's):
 *  1. The ring is walked only when it is started, enabled, has addresses
 *     and a size, and was placed (place_ring()) in the table of this round.
 *  2. A broken ring or one that cannot be placed signals err_fd and stops
 *     (started = false) until the front end kicks it again. So does a
 *     ring whose memory the front end truncated (the table's or the
 *     inflight buffer's, checked before and after each round): accesses
 *     there completed on private zeros and failed (GM_MAP_PEER,
 *     guestmem/mapping.h), and the ring stays broken until the front end
 *     sends memory that is whole again.
 *  3. A worker never reads a fd of the peer's (kicks are edge-triggered)
 *     and writes one (call, err) only after its round, outside the queue's
 *     lock, when poll() said the write will not block. The peer can still
 *     make its eventfd blocking and saturate it in the instant between
 *     poll() and write() (the open file, and so O_NONBLOCK, is shared;
 *     eventfds take no per-call RWF_NOWAIT on the kernels we run on), so
 *     each write runs under this worker's timer, which sends VU_SIGNAL
 *     every VU_WRITE_BOUND_MS until the write returned: a blocked write
 *     ends with EINTR and the wake-up is dropped (the peer's counter is
 *     full: it has one pending anyway). The protocol thread never waits
 *     for such a write: a call or err fd it replaces meanwhile is closed by
 *     the worker afterwards (vu_drop_signal_fd()).
 */
#include "vu-internal.h"

#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

/* Older glibc headers do not name the Linux field SIGEV_THREAD_ID uses. */
#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid
#endif

/* What a round asks the worker to signal once it dropped the lock. */
enum { RAISE_CALL = 1u << 0, RAISE_ERR = 1u << 1 };

static void interrupted(int sig)
{
	(void)sig; /* only there so that a blocked write returns EINTR */
}

static pthread_once_t signal_once = PTHREAD_ONCE_INIT;
static int signal_err;

static void install_handler(void)
{
	struct sigaction sa = {.sa_handler = interrupted}; /* no SA_RESTART */

	sigemptyset(&sa.sa_mask);
	if (sigaction(VU_SIGNAL, &sa, NULL) < 0)
		signal_err = -errno;
}

int vu_signal_setup(void)
{
	pthread_once(&signal_once, install_handler);
	return signal_err;
}

/*
 * A timer that sends VU_SIGNAL to the calling thread, unarmed, with the
 * signal unblocked in this thread. Returns 0 or -errno.
 */
static int thread_timer_new(timer_t *timer)
{
	struct sigevent sev = {.sigev_notify = SIGEV_THREAD_ID, .sigev_signo = VU_SIGNAL};
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, VU_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	sev.sigev_notify_thread_id = gettid();
	return timer_create(CLOCK_MONOTONIC, &sev, timer) < 0 ? -errno : 0;
}

/*
 * Signal the front end's call or err eventfd @fd (-1: none), in at most
 * about @bound_ms (VU_WRITE_BOUND_MS unless a test set another) whatever
 * the peer does to it (invariant 3).
 * Without a timer (@timer_ok false) nothing is written: an unbounded write
 * is worse than a lost interrupt. Called without q->lock.
 */
static void signal_fd(int fd, int bound_ms, timer_t timer, bool timer_ok)
{
	const struct timespec period = {bound_ms / 1000, (long)(bound_ms % 1000) * 1000000L};
	/* Periodic: a signal that comes before write() blocks is followed by another. */
	const struct itimerspec arm = {.it_value = period, .it_interval = period};
	const struct itimerspec disarm = {{0, 0}, {0, 0}};
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	uint64_t one = 1;

	if (fd < 0 || !timer_ok || poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT))
		return;
	if (timer_settime(timer, 0, &arm, NULL) < 0)
		return;
	if (write(fd, &one, sizeof(one)) < 0) {
		/* EAGAIN or EINTR: saturated; the peer has a wake-up pending anyway. */
	}
	timer_settime(timer, 0, &disarm, NULL);
}

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
 * Whether the front end truncated memory this queue uses: the table's or
 * the inflight buffer's. Called with q->lock held.
 */
static bool peer_truncated(const struct vu_queue *q, const struct gm_vhost_table *t)
{
	return gm_vhost_table_truncated(t) ||
	       (q->inflight_map && gm_mapping_truncated(q->inflight_map));
}

/* A round's batch: where finish() gives its requests back. */
struct batch_round {
	struct vu_queue *q;
	const struct gm_memory *m;
};

static void batch_done(void *arg, uint16_t head, uint32_t used)
{
	struct batch_round *r = arg;

	vu_complete(r->q, r->m, head, used);
}

/*
 * Serve up to ROUND_BUDGET requests, through the device's batch
 * operations if @batch (their context) is not NULL. Returns true if
 * requests may remain; sets RAISE_* in *@raise for the fds the worker
 * signals after the round. Called with q->lock held.
 */
static bool serve_round(struct vu_queue *q, void *batch, unsigned *raise)
{
	struct vu_server *s = q->s;
	struct gm_vhost_table *t;
	const struct gm_memory *m;
	struct gm_virtq_req req;
	bool more = false, notify = false, empty, notify_pending = false;
	unsigned done = 0, started = 0;
	uint32_t used;
	int ret;

	if (!q->started || !q->enabled || !q->addr_set || q->num == 0)
		return false;
	t = gm_vhost_mem_table(s->tables);
	if (!t)
		return false;
	m = gm_vhost_table_memory(t);
	if (peer_truncated(q, t) || place_ring(q, t)) {
		*raise |= RAISE_ERR;
		q->started = false;
		goto out;
	}
	if (q->inflight_check && q->inflight) {
		q->inflight_check = false;
		vu_inflight_resume(q, m);
		notify_pending = true;
	}
	for (;;) {
		if (done == ROUND_BUDGET || (batch && started == s->dev.batch.depth)) {
			more = true;
			break;
		}
		vu_io_progress(); /* post-copy: the timeout is on one request's step */
		ret = gm_virtq_pop(q->vq, m, &req, q->bufs, s->dev.max_bufs);
		if (ret == -EAGAIN) {
			if (gm_virtq_enable_notify(q->vq, m, &empty) || empty)
				break;
			continue;
		}
		if (ret == -EIO)
			break;
		done++;
		vu_inflight_begin(q, req.head);
		if (ret) {
			/* Malformed: give it back untouched; other requests go on. */
			s->dev.bad_request(s->dev.opaque);
			vu_complete(q, m, req.head, 0);
			continue;
		}
		if (!batch) {
			vu_complete(q, m, req.head,
				    s->dev.handle(s->dev.opaque, q->index, m, q->bufs, req.nbufs));
		} else if (s->dev.batch.start(batch, m, req.head, q->bufs, req.nbufs, &used)) {
			started++;
		} else {
			vu_complete(q, m, req.head, used);
		}
	}
	if (started) {
		struct batch_round r = {q, m};

		/* Invariant 4: nothing stays in flight past the round (and the table t). */
		s->dev.batch.finish(batch, m, batch_done, &r);
	}
	/*
	 * The used ring is logged by the view at its guest address; a front
	 * end that names another address for it (log_guest_addr) has it
	 * logged there too. A ring whose log would leave the log is stopped.
	 */
	if ((done || notify_pending) && q->log_used && q->log_gpa != q->used_gpa &&
	    gm_vhost_mem_logging(s->tables) &&
	    gm_vhost_table_log(t, q->log_gpa, 8 + 8ull * q->num) == -ERANGE) {
		*raise |= RAISE_ERR;
		q->started = false;
		more = false;
		goto out;
	}
	if ((done || notify_pending) && gm_virtq_need_notify(q->vq, m, &notify) == 0 && notify)
		*raise |= RAISE_CALL;
	if (gm_virtq_broken(q->vq) || peer_truncated(q, t)) {
		/* The ring itself is corrupt: the device needs a reset (vring err). */
		*raise |= RAISE_ERR;
		q->started = false;
		more = false;
	}
out:
	gm_vhost_table_put(t);
	return more;
}

/*
 * Signal the fds in @raise after a round, outside the lock (invariant 3).
 * Called with q->lock held; returns with it held.
 */
static void raise_fds(struct vu_queue *q, unsigned raise, timer_t timer, bool timer_ok)
{
	int call = (raise & RAISE_CALL) ? q->call_fd : -1;
	int err = (raise & RAISE_ERR) ? q->err_fd : -1;
	unsigned i;

	if (call < 0 && err < 0)
		return;
	q->writing[0] = call;
	q->writing[1] = err;
	pthread_mutex_unlock(&q->lock);
	signal_fd(call, q->s->write_bound_ms, timer, timer_ok);
	signal_fd(err, q->s->write_bound_ms, timer, timer_ok);
	pthread_mutex_lock(&q->lock);
	for (i = 0; i < 2; i++) {
		q->writing[i] = -1;
		close_fd(&q->retired[i]);
	}
}

void *vu_worker(void *arg)
{
	struct vu_queue *q = arg;
	const struct vu_batch_ops *ops = &q->s->dev.batch;
	struct epoll_event ev;
	timer_t timer;
	bool timer_ok, more = false;
	void *batch = NULL;
	uint64_t v;

	gm_rcu_register_thread();
	vu_postcopy_worker(q);
	timer_ok = thread_timer_new(&timer) == 0;
	/* The worker's own: a batch context is used by this thread only. */
	if (ops->open)
		batch = ops->open(q->s->dev.opaque, q->index);
	for (;;) {
		int n = epoll_wait(q->epfd, &ev, 1, more ? 0 : -1);
		unsigned raise = 0;

		if (n < 0 && errno != EINTR)
			break;
		pthread_mutex_lock(&q->lock);
		if (q->stop) {
			pthread_mutex_unlock(&q->lock);
			break;
		}
		/*
		 * A kick needs nothing more: its eventfd is the peer's and is
		 * never read (edge-triggered, vu-handlers.c), so nothing the
		 * peer does to it can block this thread. Our own wake eventfd
		 * is non-blocking: a stale event reads EAGAIN.
		 */
		if (n > 0 && ev.data.u32 != 1 && read(q->wake_fd, &v, sizeof(v)) < 0) {
		}
		/* Post-copy: one request at a time, in this thread (vu-postcopy.c). */
		__atomic_store_n(&q->access_ns, vu_now_ns(), __ATOMIC_RELEASE);
		more = serve_round(
		    q, __atomic_load_n(&q->s->pc_active, __ATOMIC_ACQUIRE) ? NULL : batch, &raise);
		__atomic_store_n(&q->access_ns, 0, __ATOMIC_RELEASE);
		raise_fds(q, raise, timer, timer_ok);
		pthread_mutex_unlock(&q->lock);
	}
	if (batch)
		ops->close(batch);
	vu_postcopy_worker(NULL);
	if (timer_ok)
		timer_delete(timer);
	gm_rcu_unregister_thread();
	return NULL;
}

void vu_drop_signal_fd(struct vu_queue *q, int *slot)
{
	unsigned i;

	for (i = 0; i < 2; i++) {
		if (*slot >= 0 && *slot == q->writing[i]) {
			q->retired[i] = *slot;
			*slot = -1;
		}
	}
	close_fd(slot);
}

void vu_reset_queue(struct vu_queue *q)
{
	if (q->kick_fd >= 0)
		epoll_ctl(q->epfd, EPOLL_CTL_DEL, q->kick_fd, NULL);
	close_fd(&q->kick_fd);
	vu_drop_signal_fd(q, &q->call_fd);
	vu_drop_signal_fd(q, &q->err_fd);
	q->num = 0;
	q->addr_set = false;
	q->log_used = false;
	q->log_gpa = 0;
	q->layout_valid = false;
	q->started = false;
	q->enabled = false;
	gm_virtq_set_base(q->vq, 0);
	q->inflight_counter = 0;
	q->inflight_check = false;
}
