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
};

struct blk_dev {
	int fd;
	uint64_t size; /* bytes; a whole number of 512-byte sectors are served */
	bool readonly;
	char id[BLK_ID_BYTES]; /* GET_ID answer */
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

/* A vu_device serving @b. */
void blk_vu_device(struct blk_dev *b, struct vu_device *dev);

/* Copy of the counters, and reset of them. */
void blk_stats_take(struct blk_dev *b, struct blk_stats *out, bool reset);

#endif
