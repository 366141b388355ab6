/* SPDX-License-Identifier: MIT */
/*
 * vu.c - the vhost-user back end server (docs/interop/vhost-user.rst in
 * QEMU, the subset QEMU's vhost-user-blk-pci uses): its lifetime and its
 * connection loop. vu_serve() starts one worker per queue (vu-queue.c),
 * reads each message (vu-msg.c), has vu_handle_message() (vu-handlers.c)
 * check and act on it, closes the fds the handler did not keep, and
 * answers REPLY_ACK; at the end it stops the workers and forgets the
 * connection so the server is ready for the next one.
 *
 * A malformed message ends the connection; a well-formed request that
 * fails gets a failure in its REPLY_ACK, or ends the connection if the
 * front end asked for no reply. Threads, locks and fd ownership: the
 * invariants in vu-internal.h.
 */
#include "vu-internal.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

int vu_server_new(const struct vu_device *dev, unsigned nqueues, struct vu_server **out)
{
	struct vu_server *s;
	unsigned i;
	int ret = -ENOMEM;

	if (!dev || !out || nqueues == 0 || nqueues > VU_MAX_QUEUES || dev->max_bufs == 0)
		return -EINVAL;
	ret = vu_signal_setup();
	if (ret)
		return ret;
	ret = -ENOMEM;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dev = *dev;
	s->nqueues = nqueues;
	s->stall_ms = VU_STALL_MS;
	s->uffd = -1;
	s->pc_timeout_ms = VU_POSTCOPY_TIMEOUT_MS;
	s->write_bound_ms = VU_WRITE_BOUND_MS;
	s->q = calloc(nqueues, sizeof(*s->q));
	if (!s->q)
		goto err;
	ret = gm_vhost_mem_new(MEM_SLOTS, &s->tables);
	if (ret)
		goto err;
	for (i = 0; i < nqueues; i++) {
		struct vu_queue *q = &s->q[i];
		struct epoll_event ev = {.events = EPOLLIN};

		q->s = s;
		q->index = i;
		q->kick_fd = q->call_fd = q->err_fd = q->wake_fd = q->epfd = -1;
		q->writing[0] = q->writing[1] = q->retired[0] = q->retired[1] = -1;
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
	gm_vhost_mem_free(s->tables);
	free(s);
}

/* Stop every worker and forget the connection. Protocol thread, between connections. */
static void stop_all(struct vu_server *s)
{
	unsigned i;

	for (i = 0; i < s->nqueues; i++) {
		struct vu_queue *q = &s->q[i];

		pthread_mutex_lock(&q->lock);
		q->stop = true;
		wake_worker(q);
		pthread_mutex_unlock(&q->lock);
		if (q->thread_running)
			pthread_join(q->thread, NULL);
		q->thread_running = false;
		pthread_mutex_lock(&q->lock);
		q->stop = false;
		vu_reset_queue(q);
		pthread_mutex_unlock(&q->lock);
	}
	vu_drop_inflight(s);
	vu_postcopy_drop(s);
	/* Workers stopped: the count of pages newly logged is exact. */
	if (s->info) {
		s->info->log_pages = gm_vhost_mem_log_count(s->tables);
		s->info->log_marked = gm_vhost_mem_log_marked(s->tables) - s->log_marked_base;
	}
	gm_vhost_mem_clear(s->tables);
	s->log_marked_base = gm_vhost_mem_log_marked(s->tables);
	s->log_ok = false;
	s->features = 0;
	s->protocol_features = 0;
	s->owner = false;
}

void vu_server_set_stall_timeout(struct vu_server *s, int ms)
{
	s->stall_ms = ms > 0 ? ms : VU_STALL_MS;
}

void vu_server_set_no_userfaultfd(struct vu_server *s, bool none)
{
	s->no_userfaultfd = none;
}

void vu_server_set_write_bound(struct vu_server *s, int ms)
{
	s->write_bound_ms = ms > 0 ? ms : VU_WRITE_BOUND_MS;
}

void vu_server_set_postcopy_timeout(struct vu_server *s, int ms)
{
	s->pc_timeout_ms = ms > 0 ? ms : VU_POSTCOPY_TIMEOUT_MS;
}

/*
 * Why a connection ends when message I/O failed with @ret (not 0), and
 * what vu_serve() returns for it (*@ret: a stop is a clean end).
 */
static const char *io_end(int *ret, const char *otherwise)
{
	if (*ret == STOPPED) {
		*ret = 0;
		return "stopped";
	}
	if (*ret == STALLED)
		return "front end stalled mid-message";
	return otherwise;
}

int vu_serve(struct vu_server *s, int fd, int stop_fd, struct vu_conn_info *info)
{
	const struct vu_conn c = {.sock = fd, .stop_fd = stop_fd, .stall_ms = s->stall_ms};
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
		if (pthread_create(&s->q[i].thread, NULL, vu_worker, &s->q[i])) {
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

		/* While listening, look at the workers' rounds now and then. */
		int wait = s->listening ? vu_postcopy_check_ms(s) : -1;
		int np = poll(pfd, stop_fd >= 0 ? 2 : 1, wait);

		if (np < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			info->end_reason = "poll failed";
			break;
		}
		if (vu_postcopy_stuck(s)) {
			ret = -ETIMEDOUT;
			info->end_reason = "post-copy: a page was not placed in time";
			break;
		}
		if (np == 0)
			continue;
		if (stop_fd >= 0 && pfd[1].revents) {
			info->end_reason = "stopped";
			ret = 0;
			break;
		}
		ret = vu_read_msg(&c, msg);
		if (ret == -ECONNRESET) {
			ret = 0;
			info->end_reason = "front end disconnected";
			break;
		}
		if (ret) {
			info->end_reason = io_end(&ret, "malformed message");
			break;
		}
		info->messages++;
		need_reply = (msg->flags & FLAG_NEED_REPLY) &&
			     (s->protocol_features & (1ull << VU_PF_REPLY_ACK));
		ret = vu_handle_message(s, &c, msg, &replied);
		vu_close_msg_fds(msg); /* every fd the handler did not keep */
		if (__atomic_load_n(&s->pc_dead, __ATOMIC_SEQ_CST)) {
			/* vu_postcopy_table() gave up on a worker waiting for a page. */
			ret = -ETIMEDOUT;
			info->end_reason = "post-copy: a page was not placed in time";
			break;
		}
		if (ret == DISCONNECT) {
			info->end_reason = "malformed message";
			break;
		}
		if (replied) {
			if (ret < 0) {
				info->end_reason = io_end(&ret, "cannot reply");
				break;
			}
			continue;
		}
		if (need_reply) {
			/* REPLY_ACK: 0 success, non-zero failure; the connection goes on. */
			ret = vu_reply_u64(&c, msg, ret ? 1 : 0);
			if (ret < 0) {
				info->end_reason = io_end(&ret, "cannot reply");
				break;
			}
			continue;
		}
		if (ret) {
			/* No way to tell the front end: do not go on with a state it does not know.
			 */
			info->end_reason = ret == -ENOSYS ? "unsupported request"
					   : ret == -EBADF && info->fd_refusal ? info->fd_refusal
									       : "request failed";
			ret = DISCONNECT;
			break;
		}
	}
out:
	vu_postcopy_abort(s); /* a page never placed: fail what waits for it */
	stop_all(s);
	free(msg);
	close(fd);
	s->info = NULL;
	return ret;
}
