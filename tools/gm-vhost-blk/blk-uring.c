/* SPDX-License-Identifier: MIT */
/*
 * blk-uring.c - the io_uring path of the block device (--aio=io_uring):
 * the batch operations of vu.h on one io_uring ring per queue.
 *
 * A queue's worker opens its ring when it starts (the ring is the
 * worker's alone: SINGLE_ISSUER, DEFER_TASKRUN where the kernel has them)
 * with the image registered as fixed file 0. In a round, start() checks
 * each request with blk_start() and turns a read, write or flush into one
 * SQE (readv/writev over the host iovecs of all its buffers, fsync with
 * DATASYNC); finish() submits them all with one system call and reaps the
 * completions in the order the kernel posts them, ending each request
 * (dirty pages, status byte: blk_end()) before the server pushes its used
 * entry. The kernel's writes into guest memory come before its CQE, which
 * liburing reads with acquire; gm_virtq_push() publishes the used index
 * with release: a driver that sees the entry sees the data.
 *
 * start() serves at once, synchronously: requests without file data to
 * move (GET_ID, refusals), DISCARD and WRITE_ZEROES (fallocate), the rare
 * read or write whose buffers need more iovecs than a slot holds, and a
 * write that would otherwise only be punted to a kernel worker thread
 * (write_now(): on ext4, every buffered write).
 *
 * Built without liburing (meson found none), blk_uring_probe() says so and
 * main.c serves with --aio=sync.
 */
#include "blk.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#ifdef GM_HAVE_LIBURING

#include <liburing.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/uio.h>

#define URING_DEPTH 128u	       /* requests in flight per queue, at most */
#define URING_IOV   (BLK_SEG_MAX + 2u) /* iovecs of one request, at most */

/* One request in flight: what it is, and how far its data got. */
struct slot {
	struct blk_io io;
	uint16_t head;
	unsigned first, niov; /* the iovecs still to move: iov[first..niov) */
	uint64_t moved;	      /* data bytes moved so far */
	struct iovec iov[URING_IOV];
};

struct blk_uring {
	struct io_uring ring;
	struct blk_dev *b;
	unsigned inflight;    /* slots started and not ended */
	bool blocking_writes; /* the image's file system has no RWF_NOWAIT writes */
	unsigned nfree;	      /* free slots: free_slots[0..nfree) */
	unsigned free_slots[URING_DEPTH];
	struct slot slots[URING_DEPTH];
};

/*
 * A ring of @entries: the cheapest setup this kernel takes. SINGLE_ISSUER
 * and DEFER_TASKRUN (6.1) run completions in the worker only when it
 * waits; COOP_TASKRUN (5.19) at least spares it the interrupts.
 */
static int ring_setup(struct io_uring *ring, unsigned entries)
{
	static const unsigned flags[] = {
#if defined(IORING_SETUP_SINGLE_ISSUER) && defined(IORING_SETUP_DEFER_TASKRUN)
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
#endif
#ifdef IORING_SETUP_COOP_TASKRUN
		IORING_SETUP_COOP_TASKRUN,
#endif
		0,
	};
	size_t i;
	int ret = -EINVAL;

	for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		struct io_uring_params p;

		memset(&p, 0, sizeof(p));
		p.flags = flags[i];
		ret = io_uring_queue_init_params(entries, ring, &p);
		/* EINVAL: a flag this kernel does not know; anything else is final. */
		if (ret != -EINVAL)
			break;
	}
	return ret;
}

int blk_uring_probe(char *err, size_t errlen)
{
	struct io_uring ring;
	int ret = ring_setup(&ring, 4);

	if (ret) {
		snprintf(err, errlen, "io_uring setup failed: %s", strerror(-ret));
		return ret;
	}
	io_uring_queue_exit(&ring);
	return 0;
}

/* Queue @sl's I/O (what is left of it) as one SQE. */
static void prep(struct blk_uring *u, struct slot *sl)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (!sqe) {
		/* Not reached: the SQ has URING_DEPTH entries, one per slot. */
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	switch (sl->io.op) {
	case BLK_OP_READ:
		io_uring_prep_readv(sqe, 0, sl->iov + sl->first, sl->niov - sl->first,
				    sl->io.off + sl->moved);
		break;
	case BLK_OP_WRITE:
		io_uring_prep_writev(sqe, 0, sl->iov + sl->first, sl->niov - sl->first,
				     sl->io.off + sl->moved);
		break;
	case BLK_OP_FLUSH:
		io_uring_prep_fsync(sqe, 0, IORING_FSYNC_DATASYNC);
		break;
	}
	sqe->flags |= IOSQE_FIXED_FILE; /* index 0: the image, registered at open */
	io_uring_sqe_set_data(sqe, sl);
}

static void *uring_open(void *opaque, unsigned qidx)
{
	struct blk_dev *b = opaque;
	struct blk_uring *u = calloc(1, sizeof(*u));
	const char *what = "setup";
	unsigned i;
	int ret = -ENOMEM;

	if (!u)
		goto err;
	ret = ring_setup(&u->ring, URING_DEPTH);
	if (ret)
		goto err_free;
	what = "registering the image";
	ret = io_uring_register_files(&u->ring, &b->fd, 1);
	if (ret)
		goto err_ring;
	u->b = b;
	u->nfree = URING_DEPTH;
	for (i = 0; i < URING_DEPTH; i++)
		u->free_slots[i] = URING_DEPTH - 1 - i;
	return u;
err_ring:
	io_uring_queue_exit(&u->ring);
err_free:
	free(u);
err:
	fprintf(stderr,
		"gm-vhost-blk: queue %u: io_uring %s failed (%s): serving it with --aio=sync\n",
		qidx, what, strerror(-ret));
	return NULL;
}

static void uring_close(void *ctx)
{
	struct blk_uring *u = ctx;

	io_uring_queue_exit(&u->ring);
	free(u);
}

/*
 * @n more bytes of @sl moved (0 < n <= what was left). Returns true if it
 * is whole; otherwise the iovecs now start where the data stopped.
 */
static bool advance(struct slot *sl, uint64_t n)
{
	sl->moved += n;
	if (sl->moved == sl->io.len)
		return true;
	/* Skip the iovecs that were moved whole, and the moved part of the next. */
	while (n >= sl->iov[sl->first].iov_len) {
		n -= sl->iov[sl->first].iov_len;
		sl->first++;
	}
	sl->iov[sl->first].iov_base = (uint8_t *)sl->iov[sl->first].iov_base + n;
	sl->iov[sl->first].iov_len -= (size_t)n;
	return false;
}

/*
 * The CQE of @sl said @res. Returns true if the request ended (*@err its
 * outcome), false if what is left of it was queued again: a short
 * transfer goes on where it stopped, EAGAIN/EINTR start over.
 */
static bool slot_result(struct blk_uring *u, struct slot *sl, int res, int *err)
{
	*err = 0;
	if (res == -EAGAIN || res == -EINTR) {
		prep(u, sl);
		return false;
	}
	if (res < 0) {
		*err = res;
		return true;
	}
	if (sl->io.op == BLK_OP_FLUSH)
		return true;
	if (res == 0 || (uint64_t)res > sl->io.len - sl->moved) {
		*err = -EIO; /* no progress: the image shrank under us */
		return true;
	}
	if (advance(sl, (uint64_t)res))
		return true;
	prep(u, sl);
	return false;
}

/*
 * Write @sl in this thread if that does not punt it to a kernel worker.
 * io_uring hands a buffered write that cannot be done without blocking to
 * an io-wq thread, and on a file system without non-blocking buffered
 * writes (ext4) that is every write: a thread switch per request, which
 * costs more CPU than the copy into the page cache itself. So a write is
 * first tried here with RWF_NOWAIT; if the file system cannot do that at
 * all (EOPNOTSUPP, remembered), writes are done here blocking, one
 * pwritev() per request, as the sync path does (which takes one per
 * buffer); if it only would block now (EAGAIN), it goes to the ring.
 * Returns true if the request ended (*@err its outcome).
 */
static bool write_now(struct blk_uring *u, struct slot *sl, int *err)
{
	for (;;) {
		int flags = u->blocking_writes ? 0 : RWF_NOWAIT;
		ssize_t n = pwritev2(u->b->fd, sl->iov + sl->first, (int)(sl->niov - sl->first),
				     (off_t)(sl->io.off + sl->moved), flags);

		*err = n < 0 ? -errno : 0;
		if (*err == -EINTR)
			continue;
		if (*err == -EOPNOTSUPP && flags) {
			u->blocking_writes = true;
			continue;
		}
		if (*err == -EAGAIN && flags)
			return false;
		if (*err)
			return true;
		if (n == 0 || (uint64_t)n > sl->io.len - sl->moved) {
			*err = -EIO;
			return true;
		}
		if (advance(sl, (uint64_t)n))
			return true;
		if (flags)
			return false; /* the rest would block: to the ring */
	}
}

static int uring_start(void *ctx, const struct gm_memory *m, uint16_t head,
		       const struct gm_virtq_buf *bufs, size_t n, uint32_t *used)
{
	struct blk_uring *u = ctx;
	struct slot *sl;
	size_t niov = 0;
	int ret;

	if (u->nfree == 0) {
		/* Not reached: the server starts at most URING_DEPTH per batch. */
		struct blk_io io;

		if (blk_start(u->b, m, bufs, n, &io, used) == 1)
			*used = blk_end(u->b, m, &io, blk_io_sync(u->b, m, &io));
		return 0;
	}
	sl = &u->slots[u->free_slots[u->nfree - 1]];
	if (blk_start(u->b, m, bufs, n, &sl->io, used) == 0)
		return 0;
	if (sl->io.op != BLK_OP_FLUSH) {
		ret = blk_io_iovec(m, &sl->io, sl->iov, URING_IOV, &niov);
		if (ret == -ENOBUFS)
			ret = blk_io_sync(u->b, m, &sl->io); /* memory in too many pieces */
		if (ret || niov == 0) {
			*used = blk_end(u->b, m, &sl->io, ret);
			return 0;
		}
	}
	__atomic_fetch_add(&u->b->stats.uring, 1, __ATOMIC_RELAXED);
	sl->first = 0;
	sl->niov = (unsigned)niov;
	sl->moved = 0;
	if (sl->io.op == BLK_OP_WRITE && write_now(u, sl, &ret)) {
		*used = blk_end(u->b, m, &sl->io, ret);
		return 0;
	}
	u->nfree--;
	u->inflight++;
	sl->head = head;
	prep(u, sl);
	return 1;
}

static void uring_finish(void *ctx, const struct gm_memory *m, vu_done_fn done, void *arg)
{
	struct blk_uring *u = ctx;

	while (u->inflight > 0) {
		struct io_uring_cqe *cqe;
		int ret = io_uring_submit_and_wait(&u->ring, 1);

		/*
		 * An error submits nothing and leaves the SQEs queued: try again.
		 * Giving up is no option, the SQEs would go with a later batch.
		 */
		if (ret < 0 && ret != -EINTR)
			sched_yield();
		while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
			struct slot *sl = io_uring_cqe_get_data(cqe);
			int res = cqe->res, err;

			io_uring_cqe_seen(&u->ring, cqe);
			if (!slot_result(u, sl, res, &err))
				continue;
			/* The data is in guest memory (the CQE came after it): mark, then end. */
			blk_io_mark_dirty(m, &sl->io);
			done(arg, sl->head, blk_end(u->b, m, &sl->io, err));
			u->free_slots[u->nfree++] = (unsigned)(sl - u->slots);
			u->inflight--;
		}
	}
}

void blk_uring_ops(struct blk_dev *b, struct vu_device *dev)
{
	(void)b;
	dev->batch.open = uring_open;
	dev->batch.close = uring_close;
	dev->batch.depth = URING_DEPTH;
	dev->batch.start = uring_start;
	dev->batch.finish = uring_finish;
}

#else /* !GM_HAVE_LIBURING */

int blk_uring_probe(char *err, size_t errlen)
{
	snprintf(err, errlen, "built without liburing");
	return -ENOSYS;
}

void blk_uring_ops(struct blk_dev *b, struct vu_device *dev)
{
	(void)b;
	(void)dev; /* no batch operations: every queue serves synchronously */
}

#endif
