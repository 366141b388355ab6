/* SPDX-License-Identifier: MIT */
/*
 * guestmem/virtq.h - the device side of a split virtqueue, on guest memory.
 *
 * Every virtio back end (in a VMM or in a vhost-user process) needs the
 * same hostile-input-proof walk of descriptor chains, so it lives here,
 * above memory.h, rather than in each device. A struct gm_virtq holds the
 * device's private state of one queue (ring addresses, size, the next
 * available index to consume, the next used index to publish); all ring
 * contents are read from and written to a gm_memory passed to each call,
 * so the caller may switch to a new memory view between calls (vhost.h).
 *
 * Every number the driver writes (ring indices, descriptor addresses,
 * lengths, flags, next fields, indirect tables) is read once into a local
 * and checked before use. Two kinds of failure:
 *  - the request is malformed (a chain that loops, is longer than the
 *    queue, has a bad next index, a bad indirect table, a device-readable
 *    descriptor after a device-writable one): gm_virtq_pop() consumes it
 *    and reports it, the device returns it with gm_virtq_push(), and other
 *    requests go on;
 *  - the ring itself is broken (the available index ran more than the
 *    queue size ahead, a head index out of range, ring memory not in RAM):
 *    the queue stops (-EIO from then on) until it is set up again; the
 *    device should report that it needs a reset.
 *
 * Memory ordering (virtio 1.x, 2.7.13): the available index is loaded with
 * acquire before the entries and descriptors it covers are read; the used
 * element is written before the used index is stored with release; a full
 * fence separates the used-index store (or the avail_event store) from the
 * read of the driver's notification suppression fields.
 *
 * Thread-safety: one thread at a time per queue (the caller serialises);
 * different queues are independent. Lifetime: single owner (new/free).
 */
#ifndef GUESTMEM_VIRTQ_H
#define GUESTMEM_VIRTQ_H

#include <guestmem/memory.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gm_virtq;

/* Largest queue size of a split virtqueue. */
#define GM_VIRTQ_MAX_SIZE 32768u

/* Features of a queue (gm_virtq_set_features). */
#define GM_VIRTQ_F_INDIRECT  (1u << 0) /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
#define GM_VIRTQ_F_EVENT_IDX (1u << 1) /* VIRTIO_RING_F_EVENT_IDX negotiated */

/* One buffer of a request: @len bytes at @gpa, which the device may write if @writable. */
struct gm_virtq_buf {
	gm_gpa_t gpa;
	uint32_t len;
	bool writable;
};

/* A request taken from the available ring. */
struct gm_virtq_req {
	uint16_t head; /* the id to give back to gm_virtq_push() */
	size_t nbufs;  /* buffers filled in by gm_virtq_pop() */
};

/* A queue with no layout yet (every pop returns -EIO). Returns 0, -EINVAL, -ENOMEM. */
GM_API int gm_virtq_new(struct gm_virtq **out);

/* Free @q. NULL ok. */
GM_API void gm_virtq_free(struct gm_virtq *q);

/*
 * Place the queue: @size entries (a power of two, 1..GM_VIRTQ_MAX_SIZE),
 * descriptor table at @desc (16-byte aligned), available ring at @avail
 * (2-byte aligned), used ring at @used (4-byte aligned). Clears the broken
 * state. Keeps the indices. Returns 0, -EINVAL (size or alignment),
 * -EOVERFLOW (a ring wraps past 2^64).
 */
GM_API int gm_virtq_set_layout(struct gm_virtq *q, uint32_t size, gm_gpa_t desc, gm_gpa_t avail,
			       gm_gpa_t used);

/* Set GM_VIRTQ_F_* flags. Returns 0, -EINVAL for an unknown flag. */
GM_API int gm_virtq_set_features(struct gm_virtq *q, unsigned features);

/*
 * Set the next available index to consume and the next used index to
 * publish to @idx (VHOST_USER_SET_VRING_BASE), and clear the broken state.
 */
GM_API void gm_virtq_set_base(struct gm_virtq *q, uint16_t idx);

/* The next available index to consume (VHOST_USER_GET_VRING_BASE). */
GM_API uint16_t gm_virtq_base(const struct gm_virtq *q);

/*
 * Set the next available index to consume and the next used index to
 * publish separately: after a back end restart, requests that an earlier
 * back end consumed but never completed (@avail - @used of them) are
 * re-served with gm_virtq_pop_head() rather than taken from the ring again.
 * Clears the broken state.
 */
GM_API void gm_virtq_set_indices(struct gm_virtq *q, uint16_t avail, uint16_t used);

/* The next used index to publish. */
GM_API uint16_t gm_virtq_used_index(const struct gm_virtq *q);

/* True once the ring was found broken (see above). */
GM_API bool gm_virtq_broken(const struct gm_virtq *q);

/*
 * Take the next request. Fills at most @max entries of @bufs, in chain
 * order (device-readable buffers first). Buffer addresses are not checked
 * against RAM here: the data path does it when the device moves bytes.
 * Returns:
 *  0        a request: *@req and @bufs[0 .. req->nbufs) filled;
 *  -EAGAIN  the ring is empty;
 *  -EINVAL  the request is malformed (see above), or indirect without
 *           GM_VIRTQ_F_INDIRECT; -EFAULT its indirect table is not in RAM;
 *           -ENOBUFS it has more than @max buffers. In these three cases
 *           the request is consumed, req->head is set and req->nbufs is 0:
 *           return it with gm_virtq_push(q, m, req->head, 0);
 *  -EIO     the ring is broken (nothing more is consumed).
 */
GM_API int gm_virtq_pop(struct gm_virtq *q, const struct gm_memory *m, struct gm_virtq_req *req,
			struct gm_virtq_buf *bufs, size_t max);

/*
 * Walk the chain at @head without consuming an available entry (a request
 * in flight when an earlier back end stopped). Answers as gm_virtq_pop(),
 * without -EAGAIN; -EINVAL also for @head >= the queue size (nothing to
 * give back then: req->head is not set).
 */
GM_API int gm_virtq_pop_head(struct gm_virtq *q, const struct gm_memory *m, uint16_t head,
			     struct gm_virtq_req *req, struct gm_virtq_buf *bufs, size_t max);

/*
 * Give request @head back with @len bytes written into its buffers: the
 * used element is written, then the used index published (release).
 * Returns 0, -EINVAL (@head >= size), -EIO (the used ring is not in
 * writable RAM; the queue is then broken).
 */
GM_API int gm_virtq_push(struct gm_virtq *q, const struct gm_memory *m, uint16_t head,
			 uint32_t len);

/*
 * After one or more pushes: should the driver be interrupted? Honours
 * VRING_AVAIL_F_NO_INTERRUPT, or used_event with GM_VIRTQ_F_EVENT_IDX.
 * Returns 0 and *@notify, -EIO (ring not in RAM; broken).
 */
GM_API int gm_virtq_need_notify(struct gm_virtq *q, const struct gm_memory *m, bool *notify);

/*
 * Before waiting for a kick: ask the driver for one when it adds a request
 * (writes avail_event with GM_VIRTQ_F_EVENT_IDX), then look again.
 * *@empty is false if requests arrived meanwhile: pop them before waiting.
 * Returns 0, -EIO (broken).
 */
GM_API int gm_virtq_enable_notify(struct gm_virtq *q, const struct gm_memory *m, bool *empty);

#ifdef __cplusplus
}
#endif

#endif /* GUESTMEM_VIRTQ_H */
