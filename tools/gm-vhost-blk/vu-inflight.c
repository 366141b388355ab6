/* SPDX-License-Identifier: MIT */
/*
 * vu-inflight.c - inflight I/O tracking (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD,
 * vhost-user.rst "Inflight I/O tracking"): the buffer the front end keeps
 * across back-end restarts, so requests a crashed back end took and never
 * completed are served again by the next one.
 *
 * GET_INFLIGHT_FD makes the buffer (a memfd the front end keeps);
 * SET_INFLIGHT_FD hands it (back) to us and we map it, one part per queue.
 * The layout and the per-request bookkeeping on the data path
 * (vu_inflight_begin(), vu_complete()) are in vu-internal.h; here is the
 * rest: the two handlers, dropping the mapping, and resubmission at ring
 * start (vu_inflight_resume()).
 *
 * Invariants:
 *  1. s->inflight_map is NULL or the buffer's mapping, and each
 *     q->inflight is NULL or points into it (q->inflight_qsize entries),
 *     with q->inflight_map == s->inflight_map; both set and cleared under
 *     q->lock by the protocol thread.
 *  2. Nothing read from the buffer is trusted: heads are checked against
 *     the queue size and the ring's own size before they are used.
 *  3. The front end can shrink the buffer's file at any time: it is mapped
 *     with GM_MAP_PEER, so a store past the new end lands in private zero
 *     memory instead of raising SIGBUS, and the queue's worker, seeing
 *     gm_mapping_truncated(), breaks the ring (vu-queue.c).
 */
#include "vu-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t inflight_queue_bytes(uint16_t qsize)
{
	return ((size_t)IF_HDR + (size_t)IF_ENTRY * qsize + IF_ALIGN - 1) / IF_ALIGN * IF_ALIGN;
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

/* ... and continue the ring after them. */
void vu_inflight_resume(struct vu_queue *q, const struct gm_memory *m)
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
			vu_complete(q, m, list[i].head, 0);
			continue;
		}
		vu_complete(q, m, req.head,
			    s->dev.handle(s->dev.opaque, q->index, m, q->bufs, req.nbufs));
	}
	free(list);
}

void vu_drop_inflight(struct vu_server *s)
{
	unsigned i;

	for (i = 0; i < s->nqueues; i++) {
		pthread_mutex_lock(&s->q[i].lock);
		s->q[i].inflight = NULL;
		s->q[i].inflight_map = NULL;
		s->q[i].inflight_qsize = 0;
		pthread_mutex_unlock(&s->q[i].lock);
	}
	gm_mapping_put(s->inflight_map);
	s->inflight_map = NULL;
}

/*
 * GET_INFLIGHT_FD / SET_INFLIGHT_FD: u64 mmap_size, u64 mmap_offset,
 * u16 num_queues, u16 queue_size (24 bytes with the struct's padding).
 * The row in vu-handlers.c checked the size and the fd count. Returns 0 or
 * -EINVAL with the buffer's per-queue bytes and total size.
 */
static int parse_inflight(const struct vu_server *s, const struct msg *msg, uint16_t *nq,
			  uint16_t *qsize, size_t *per, size_t *total)
{
	memcpy(nq, msg->p + 16, 2);
	memcpy(qsize, msg->p + 18, 2);
	if (*nq == 0 || *nq > s->nqueues || *qsize == 0 || (*qsize & (*qsize - 1)))
		return -EINVAL;
	*per = inflight_queue_bytes(*qsize);
	*total = *per * *nq; /* at most 64 queues of 512 KiB */
	return 0;
}

int vu_get_inflight_fd(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied)
{
	uint8_t out[24] = {0};
	uint16_t nq, qsize;
	size_t per, total;
	int fd, ret;

	ret = parse_inflight(s, msg, &nq, &qsize, &per, &total);
	if (ret)
		return ret;
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
	ret = vu_send_reply_fd(c, msg, out, sizeof(out), fd);
	close(fd); /* the front end keeps it and gives it back with SET_INFLIGHT_FD */
	return ret;
}

int vu_set_inflight_fd(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied)
{
	uint64_t size = get64(msg->p), off = get64(msg->p + 8);
	uint16_t nq, qsize;
	size_t per, total;
	struct gm_mapping *map;
	struct stat st;
	unsigned i;
	int ret;

	(void)c;
	(void)replied;
	ret = parse_inflight(s, msg, &nq, &qsize, &per, &total);
	if (ret)
		return ret;
	if (size < total || off % (uint64_t)sysconf(_SC_PAGESIZE) || off > (uint64_t)INT64_MAX)
		return -EINVAL;
	/*
	 * mmap_size is only the front end's word: a file shorter than the
	 * window is refused. One that shrinks later is contained
	 * (invariant 3).
	 */
	if (fstat(msg->fds[0], &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode)) {
		/* A memfd is a regular file; a pipe, socket or device cannot be the buffer. */
		s->info->fds_refused++;
		s->info->fd_refusal = "inflight fd is not a regular file or memfd";
		return -EBADF;
	}
	if ((uint64_t)st.st_size < off + total)
		return -EINVAL;
	ret = gm_mapping_new_fd(msg->fds[0], off, total, GM_MAP_SHARED | GM_MAP_PEER, &map);
	if (ret)
		return ret;
	vu_drop_inflight(s);
	s->inflight_map = map;
	for (i = 0; i < nq; i++) {
		struct vu_queue *q = &s->q[i];

		pthread_mutex_lock(&q->lock);
		q->inflight_map = map;
		q->inflight = (uint8_t *)gm_mapping_host(map) + per * i;
		q->inflight_qsize = qsize;
		if_put16(q->inflight + 10, qsize); /* desc_num */
		q->inflight_check = true;
		pthread_mutex_unlock(&q->lock);
	}
	return 0;
}
