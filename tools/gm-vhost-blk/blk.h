/* SPDX-License-Identifier: MIT */
/*
 * blk.h - a virtio-blk device on a raw image file, served through vu.h.
 *
 * Requests move data between the image and guest buffers with guestmem's
 * fd I/O (no bounce buffer). Every field of a request is read once from
 * guest memory into a local and checked: sector arithmetic cannot wrap, a
 * request never reaches past the image's end, data is only ever written
 * into device-writable buffers. A request that fails any check completes
 * with VIRTIO_BLK_S_IOERR (or UNSUPP for an unknown type).
 */
#ifndef GM_VHOST_BLK_BLK_H
#define GM_VHOST_BLK_BLK_H

#include "vu.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define BLK_SEG_MAX	    126u /* data segments per request we announce */
#define BLK_DISCARD_SEG_MAX 32u
#define BLK_ID_BYTES	    20u

/* Counters, updated with relaxed atomics by the queue workers. */
struct blk_stats {
	uint64_t in, out, flush, get_id, discard, write_zeroes;
	uint64_t unsupported; /* unknown type: VIRTIO_BLK_S_UNSUPP */
	uint64_t failed;      /* completed with VIRTIO_BLK_S_IOERR */
	uint64_t malformed;   /* chain refused by the virtqueue walk */
	uint64_t bytes_read, bytes_written;
	uint64_t uring; /* reads, writes, flushes served on the io_uring path (blk-uring.c) */
};

/* How requests move data (--aio). */
enum blk_aio {
	BLK_AIO_SYNC,  /* blocking preadv/pwritev/fdatasync, one request at a time */
	BLK_AIO_URING, /* io_uring: each round's requests submitted at once (blk-uring.c) */
};

struct blk_dev {
	int fd;
	uint64_t size; /* bytes; a whole number of 512-byte sectors are served */
	bool readonly;
	char id[BLK_ID_BYTES]; /* GET_ID answer */
	enum blk_aio aio;      /* BLK_AIO_SYNC after blk_open(); set before blk_vu_device() */
	struct blk_stats stats;
};

/*
 * Open @path as the image. On failure returns -errno and writes a message
 * for the user into @err: -EINVAL for a file that is not a regular file (a
 * FIFO, a device, a directory), refused without blocking on it.
 */
int blk_open(struct blk_dev *b, const char *path, bool readonly, char *err, size_t errlen);
/* Close the image, syncing it first when it was open read-write. */
void blk_close(struct blk_dev *b);

/*
 * A vu_device serving @b. With b->aio == BLK_AIO_URING it also has the
 * batch operations of blk-uring.c; a queue whose ring cannot be set up
 * serves its requests synchronously.
 */
void blk_vu_device(struct blk_dev *b, struct vu_device *dev);

/* Copy of the counters, and reset of them. */
void blk_stats_take(struct blk_dev *b, struct blk_stats *out, bool reset);

/*
 * ---- A request in two steps, for the io_uring path (blk-uring.c) ----
 *
 * blk_start() reads and checks a request exactly as the synchronous path
 * does and serves at once what needs no file I/O (GET_ID, DISCARD,
 * WRITE_ZEROES, every refusal). A read, write or flush it leaves to the
 * caller in a struct blk_io, with a copy of the data's buffers (the
 * queue's array is reused by the next pop). The caller moves the data and
 * then calls blk_end(), which writes the status byte: the used entry may
 * be pushed only after that.
 */
enum blk_op { BLK_OP_READ, BLK_OP_WRITE, BLK_OP_FLUSH };

struct blk_io {
	enum blk_op op;
	uint64_t off;	     /* image offset of the data (READ, WRITE) */
	uint64_t len;	     /* data bytes: whole sectors, inside the image */
	uint64_t skip;	     /* bytes of bufs before the data (WRITE's header) */
	gm_gpa_t status_gpa; /* the status byte, device-writable */
	size_t nbufs;	     /* the data's direction: READ writable, WRITE readable */
	struct gm_virtq_buf bufs[BLK_SEG_MAX + 2];
};

/*
 * Start request @bufs[0..@n) (n <= BLK_SEG_MAX + 2). Returns 1 with *@io
 * filled if the caller is to do its I/O, or 0 if it was served (or
 * refused) here: *@used is then its used length, status written.
 */
int blk_start(struct blk_dev *b, const struct gm_memory *m, const struct gm_virtq_buf *bufs,
	      size_t n, struct blk_io *io, uint32_t *used);
/*
 * The host iovecs of @io's data, in order, in @iov[0..*@niov). Returns 0,
 * -EFAULT (a byte outside RAM), -EACCES (READ into read-only memory),
 * -ENOBUFS (more than @max iovecs needed). Valid while @m is.
 */
int blk_io_iovec(const struct gm_memory *m, const struct blk_io *io, struct iovec *iov, size_t max,
		 size_t *niov);
/* Do @io with blocking system calls. Returns 0 or -errno. */
int blk_io_sync(const struct blk_dev *b, const struct gm_memory *m, const struct blk_io *io);
/* A READ's data arrived in guest memory through the iovecs: mark its pages dirty. */
void blk_io_mark_dirty(const struct gm_memory *m, const struct blk_io *io);
/*
 * Finish @io, whose I/O ended with @err (0 or -errno): counters, status
 * byte. Returns the used length (0 if the status byte could not be written).
 */
uint32_t blk_end(struct blk_dev *b, const struct gm_memory *m, const struct blk_io *io, int err);

/* ---- blk-uring.c ---- */

/*
 * Whether an io_uring ring can be set up here (built with liburing, a
 * kernel that allows it). Returns 0 or -errno (-ENOSYS: not built in) and
 * a message for the user in @err.
 */
int blk_uring_probe(char *err, size_t errlen);
/* Fill @dev's batch operations (vu.h) for @b. */
void blk_uring_ops(struct blk_dev *b, struct vu_device *dev);

#endif
