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
 *     (started = false) until the front end kicks it again.
 *  3. A worker never reads a fd of the peer's (kicks are edge-triggered)
 *     and writes one (call, err) only when poll() says the write will not
 *     block. What remains is the instant between that poll() and the
 *     write: a peer that made its call eventfd blocking and saturates it
 *     exactly then can hold one write, and this queue's lock, until it
 *     reads the counter. Closing that needs a write that cannot block
 *     whatever the file's flags (a timer signal to the worker, or
 *     io_uring); it is left for the fd-hardening work of issue 17.
 */
#include "vu-internal.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

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
	t = gm_vhost_mem_table(s->tables);
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
		vu_inflight_resume(q, m);
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
		vu_inflight_begin(q, req.head);
		if (ret) {
			/* Malformed: give it back untouched; other requests go on. */
			s->dev.bad_request(s->dev.opaque);
			vu_complete(q, m, req.head, 0);
			continue;
		}
		vu_complete(q, m, req.head,
			    s->dev.handle(s->dev.opaque, q->index, m, q->bufs, req.nbufs));
	}
	/*
	 * The used ring is logged by the view at its guest address; a front
	 * end that names another address for it (log_guest_addr) has it
	 * logged there too. A ring whose log would leave the log is stopped.
	 */
	if ((done || notify_pending) && q->log_used && q->log_gpa != q->used_gpa &&
	    gm_vhost_mem_logging(s->tables) &&
	    gm_vhost_table_log(t, q->log_gpa, 8 + 8ull * q->num) == -ERANGE) {
		signal_fd(q->err_fd);
		q->started = false;
		more = false;
		goto out;
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

void *vu_worker(void *arg)
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
		if (n > 0 && ev.data.u32 == 1) {
			/*
			 * A kick. Its fd is the peer's and is never read (it is
			 * edge-triggered, vu-handlers.c): nothing the peer does
			 * to it can block this thread. One that hung up (a pipe
			 * whose writer is gone) is dropped until the front end
			 * sets a new one.
			 */
			if ((ev.events & (EPOLLHUP | EPOLLERR)) && q->kick_fd >= 0)
				epoll_ctl(q->epfd, EPOLL_CTL_DEL, q->kick_fd, NULL);
		} else if (n > 0) {
			/* Our own non-blocking eventfd: a stale event reads EAGAIN. */
			if (read(q->wake_fd, &v, sizeof(v)) < 0) {
			}
		}
		more = serve_round(q);
		pthread_mutex_unlock(&q->lock);
	}
	gm_rcu_unregister_thread();
	return NULL;
}

void vu_reset_queue(struct vu_queue *q)
{
	if (q->kick_fd >= 0)
		epoll_ctl(q->epfd, EPOLL_CTL_DEL, q->kick_fd, NULL);
	close_fd(&q->kick_fd);
	close_fd(&q->call_fd);
	close_fd(&q->err_fd);
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
