/* SPDX-License-Identifier: MIT */
/*
 * blk.c - virtio-blk requests (virtio 1.x, 5.2) on a raw image file.
 *
 * A request is a chain: device-readable bytes (a 16-byte header, then the
 * data of a write or the segments of a discard), then device-writable
 * bytes (the data of a read or of GET_ID, then one status byte). The
 * header and the segments may be split across descriptors anywhere, so
 * both directions are treated as byte streams over the buffers.
 *
 * A request is served in two steps, blk_start() and blk_end() (blk.h):
 * the synchronous path (blk_handle()) does the file I/O between them with
 * blocking calls, the io_uring path (blk-uring.c) submits it and ends the
 * request when its completion arrives.
 */
#include "blk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SECTOR 512u

enum {
	T_IN = 0,
	T_OUT = 1,
	T_FLUSH = 4,
	T_GET_ID = 8,
	T_DISCARD = 11,
	T_WRITE_ZEROES = 13,
};

enum { S_OK = 0, S_IOERR = 1, S_UNSUPP = 2 };

#define F_SEG_MAX      2
#define F_RO	       5
#define F_BLK_SIZE     6
#define F_FLUSH	       9
#define F_MQ	       12
#define F_DISCARD      13
#define F_WRITE_ZEROES 14

#define WZ_UNMAP 1u

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

/* A direction of a request: the buffers, and how many bytes they hold. */
struct stream {
	const struct gm_virtq_buf *b;
	size_t n;
	uint64_t len;
};

/*
 * Call @fn on each piece of [@off, @off + @len) of stream @s. Stops at the
 * first error. The caller checked off + len <= s->len.
 */
static int for_pieces(const struct stream *s, uint64_t off, uint64_t len,
		      int (*fn)(void *ctx, gm_gpa_t gpa, size_t len, uint64_t pos), void *ctx)
{
	uint64_t pos = 0;
	size_t i;
	int ret;

	for (i = 0; i < s->n && len > 0; i++) {
		uint64_t l = s->b[i].len, take;

		if (off >= l) {
			off -= l;
			continue;
		}
		take = l - off < len ? l - off : len;
		ret = fn(ctx, s->b[i].gpa + off, (size_t)take, pos);
		if (ret)
			return ret;
		pos += take;
		len -= take;
		off = 0;
	}
	return 0;
}

struct copy_ctx {
	const struct gm_memory *m;
	uint8_t *buf;
};

static int gather_piece(void *ctx, gm_gpa_t gpa, size_t len, uint64_t pos)
{
	struct copy_ctx *c = ctx;

	return gm_read(c->m, gpa, c->buf + pos, len);
}

static int scatter_piece(void *ctx, gm_gpa_t gpa, size_t len, uint64_t pos)
{
	struct copy_ctx *c = ctx;

	return gm_write(c->m, gpa, c->buf + pos, len);
}

struct io_ctx {
	const struct gm_memory *m;
	int fd;
	uint64_t off; /* file offset of the first byte */
	bool to_guest;
};

/*
 * Post-copy: write @len bytes of guest data at @gpa to the image through
 * the worker's bounce buffer @buf (@cap bytes), a chunk at a time. The
 * copy out of guest memory is a user-mode access, and the gate is checked
 * after it: data read from a page that was abandoned meanwhile (zeros)
 * never reaches the image (vu-postcopy.c, "A write's data").
 */
static int write_bounced(const struct io_ctx *c, gm_gpa_t gpa, size_t len, uint64_t pos,
			 uint8_t *buf, size_t cap)
{
	while (len > 0) {
		size_t n = len < cap ? len : cap, off = 0;
		int ret;

		vu_io_progress();
		ret = gm_read(c->m, gpa, buf, n);
		if (ret == 0)
			ret = vu_io_enter(); /* after the copy, not before */
		if (ret)
			return ret;
		while (off < n && ret == 0) {
			ssize_t w = pwrite(c->fd, buf + off, n - off, (off_t)(c->off + pos + off));

			if (w > 0)
				off += (size_t)w;
			else if (w == 0)
				ret = -EIO; /* no progress possible */
			else if (errno != EINTR)
				ret = -errno;
		}
		vu_io_leave();
		if (ret)
			return ret;
		gpa += n;
		pos += n;
		len -= n;
	}
	return 0;
}

static int io_piece(void *ctx, gm_gpa_t gpa, size_t len, uint64_t pos)
{
	struct io_ctx *c = ctx;
	uint8_t *bounce;
	size_t done, cap;
	int ret;

	/*
	 * A read (to_guest) stays zero-copy in post-copy too: it moves
	 * nothing from guest memory to the image.
	 */
	if (!c->to_guest) {
		ret = vu_io_bounce(&bounce, &cap);
		if (ret)
			return ret;
		if (bounce)
			return write_bounced(c, gpa, len, pos, bounce, cap);
	}
	vu_io_progress();
	ret = vu_io_enter(); /* a post-copy page never placed: vu-postcopy.c */
	if (ret)
		return ret;
	if (c->to_guest)
		ret = gm_read_from_fd(c->m, gpa, c->fd, (int64_t)(c->off + pos), len, &done);
	else
		ret = gm_write_to_fd(c->m, gpa, c->fd, (int64_t)(c->off + pos), len, &done);
	vu_io_leave();
	if (ret)
		return ret;
	return done == len ? 0 : -EIO; /* the image shrank under us */
}

/* File offset of @sector if [sector * 512, + @len) lies in the image; else -EIO. */
static int image_range(const struct blk_dev *b, uint64_t sector, uint64_t len, uint64_t *off)
{
	if (gm_mul_overflow_u64(sector, SECTOR, off))
		return -EIO;
	/* b->size fits off_t (it came from fstat), so every offset inside does too. */
	if (!gm_range_contains(0, b->size, *off, len))
		return -EIO;
	return 0;
}

static int zero_range(const struct blk_dev *b, uint64_t off, uint64_t len, bool unmap)
{
	static const uint8_t zeros[65536];
	int mode = FALLOC_FL_KEEP_SIZE | (unmap ? FALLOC_FL_PUNCH_HOLE : FALLOC_FL_ZERO_RANGE);

	if (len == 0 || fallocate(b->fd, mode, (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return -errno;
	while (len > 0) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		ssize_t w = pwrite(b->fd, zeros, n, (off_t)off);

		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return -EIO;
		}
		off += (uint64_t)w;
		len -= (uint64_t)w;
	}
	return 0;
}

/* DISCARD and WRITE_ZEROES: @data bytes of 16-byte segments at offset 16 of @r. */
static uint8_t do_ranges(struct blk_dev *b, const struct gm_memory *m, const struct stream *r,
			 uint64_t data, bool discard)
{
	uint8_t seg[16];
	struct copy_ctx c = {m, seg};
	uint64_t i, sector, off, len;
	uint32_t nsec, flags;

	if (b->readonly || data == 0 || data % 16 || data / 16 > BLK_DISCARD_SEG_MAX)
		return S_IOERR;
	for (i = 0; i < data / 16; i++) {
		if (for_pieces(r, 16 + 16 * i, 16, gather_piece, &c))
			return S_IOERR;
		/* Read once: the guest may rewrite the segment behind us. */
		memcpy(&sector, seg, 8);
		memcpy(&nsec, seg + 8, 4);
		memcpy(&flags, seg + 12, 4);
		sector = le64toh(sector);
		nsec = le32toh(nsec);
		flags = le32toh(flags);
		if (flags & ~WZ_UNMAP)
			return S_UNSUPP;
		if (discard && flags)
			return S_UNSUPP; /* unmap is reserved for discard */
		len = (uint64_t)nsec * SECTOR;
		if (image_range(b, sector, len, &off) || vu_io_enter())
			return S_IOERR;
		if (discard) {
			/* A discard is a hint: a file system without hole punching is fine. */
			if (fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
				      (off_t)len) &&
			    errno != EOPNOTSUPP && errno != ENOSYS && len) {
				vu_io_leave();
				return S_IOERR;
			}
		} else if (zero_range(b, off, len, flags & WZ_UNMAP)) {
			vu_io_leave();
			return S_IOERR;
		}
		vu_io_leave();
	}
	return S_OK;
}

/* Write @status and count the outcome. Returns @used, or 0 if the status had nowhere to go. */
static uint32_t finish(struct blk_dev *b, const struct gm_memory *m, gm_gpa_t status_gpa,
		       uint8_t status, uint32_t used)
{
	if (status == S_UNSUPP)
		count(&b->stats.unsupported, 1);
	else if (status != S_OK)
		count(&b->stats.failed, 1);
	if (status != S_OK)
		used = 1;
	if (gm_write_u8(m, status_gpa, status))
		return 0;
	return used;
}

/* Keep @s's buffers in @io: the queue's array is reused by the next pop. */
static void keep_stream(struct blk_io *io, const struct stream *s, uint64_t skip)
{
	io->nbufs = s->n;
	memcpy(io->bufs, s->b, s->n * sizeof(*s->b));
	io->skip = skip;
}

int blk_start(struct blk_dev *b, const struct gm_memory *m, const struct gm_virtq_buf *bufs,
	      size_t n, struct blk_io *io, uint32_t *used)
{
	struct stream r = {bufs, 0, 0}, w;
	uint8_t hdr[16], status = S_OK;
	struct copy_ctx hc = {m, hdr};
	uint32_t type;
	uint64_t sector, data;
	gm_gpa_t status_gpa;
	size_t i;

	*used = 1;
	/* gm_virtq_pop() guarantees: readable buffers first, then writable ones. */
	while (r.n < n && !bufs[r.n].writable)
		r.len += bufs[r.n++].len;
	w.b = bufs + r.n;
	w.n = n - r.n;
	w.len = 0;
	for (i = 0; i < w.n; i++)
		w.len += w.b[i].len;
	/* No writable last byte: there is nowhere to report a status. */
	if (w.n == 0 || w.b[w.n - 1].len == 0 ||
	    gm_add_overflow_u64(w.b[w.n - 1].gpa, w.b[w.n - 1].len - 1, &status_gpa)) {
		count(&b->stats.failed, 1);
		*used = 0;
		return 0;
	}
	if (r.len < sizeof(hdr) || for_pieces(&r, 0, sizeof(hdr), gather_piece, &hc)) {
		status = S_IOERR;
		goto out;
	}
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);
	type = le32toh(type);
	sector = le64toh(sector);
	io->status_gpa = status_gpa;
	switch (type) {
	case T_IN:
		count(&b->stats.in, 1);
		data = w.len - 1;
		/* Data in device-readable buffers would mean writing into them: refuse. */
		if (r.len != sizeof(hdr) || w.len > UINT32_MAX || data % SECTOR ||
		    image_range(b, sector, data, &io->off)) {
			status = S_IOERR;
			break;
		}
		io->op = BLK_OP_READ;
		io->len = data;
		keep_stream(io, &w, 0);
		return 1;
	case T_OUT:
		count(&b->stats.out, 1);
		data = r.len - sizeof(hdr);
		if (b->readonly || data % SECTOR || image_range(b, sector, data, &io->off)) {
			status = S_IOERR;
			break;
		}
		io->op = BLK_OP_WRITE;
		io->len = data;
		keep_stream(io, &r, sizeof(hdr));
		return 1;
	case T_FLUSH:
		count(&b->stats.flush, 1);
		if (b->readonly)
			break;
		io->op = BLK_OP_FLUSH;
		io->off = io->len = 0;
		io->nbufs = 0;
		io->skip = 0;
		return 1;
	case T_GET_ID: {
		struct copy_ctx c = {m, (uint8_t *)b->id};
		uint64_t k = w.len - 1 < BLK_ID_BYTES ? w.len - 1 : BLK_ID_BYTES;

		count(&b->stats.get_id, 1);
		if (for_pieces(&w, 0, k, scatter_piece, &c)) {
			status = S_IOERR;
			break;
		}
		*used = (uint32_t)k + 1;
		break;
	}
	case T_DISCARD:
	case T_WRITE_ZEROES:
		count(type == T_DISCARD ? &b->stats.discard : &b->stats.write_zeroes, 1);
		status = do_ranges(b, m, &r, r.len - sizeof(hdr), type == T_DISCARD);
		break;
	default:
		status = S_UNSUPP;
		break;
	}
out:
	*used = finish(b, m, status_gpa, status, *used);
	return 0;
}

/* @io's data as the stream for_pieces() walks. */
static struct stream io_stream(const struct blk_io *io)
{
	struct stream s = {io->bufs, io->nbufs, io->skip + io->len};

	return s;
}

int blk_io_sync(const struct blk_dev *b, const struct gm_memory *m, const struct blk_io *io)
{
	struct io_ctx c = {m, b->fd, io->off, io->op == BLK_OP_READ};
	struct stream s = io_stream(io);

	if (io->op == BLK_OP_FLUSH)
		return fdatasync(b->fd) ? -errno : 0;
	return for_pieces(&s, io->skip, io->len, io_piece, &c);
}

struct iov_ctx {
	const struct gm_memory *m;
	struct iovec *iov;
	size_t max, n;
	bool to_guest;
};

static int iov_piece(void *ctx, gm_gpa_t gpa, size_t len, uint64_t pos)
{
	struct iov_ctx *c = ctx;
	size_t got;
	int ret;

	(void)pos;
	if (c->n == c->max)
		return -ENOBUFS;
	ret = c->to_guest ? gm_to_iovec_write(c->m, gpa, len, c->iov + c->n, c->max - c->n, &got)
			  : gm_to_iovec(c->m, gpa, len, c->iov + c->n, c->max - c->n, &got);
	if (ret == 0)
		c->n += got;
	return ret;
}

int blk_io_iovec(const struct gm_memory *m, const struct blk_io *io, struct iovec *iov, size_t max,
		 size_t *niov)
{
	struct iov_ctx c = {m, iov, max, 0, io->op == BLK_OP_READ};
	struct stream s = io_stream(io);
	int ret = for_pieces(&s, io->skip, io->len, iov_piece, &c);

	*niov = c.n;
	return ret;
}

static int dirty_piece(void *ctx, gm_gpa_t gpa, size_t len, uint64_t pos)
{
	(void)pos;
	return gm_mark_dirty(ctx, gpa, len);
}

void blk_io_mark_dirty(const struct gm_memory *m, const struct blk_io *io)
{
	struct stream s = io_stream(io);

	if (io->op == BLK_OP_READ)
		for_pieces(&s, io->skip, io->len, dirty_piece, (void *)m);
}

uint32_t blk_end(struct blk_dev *b, const struct gm_memory *m, const struct blk_io *io, int err)
{
	uint32_t used = 1;

	if (err == 0 && io->op == BLK_OP_READ) {
		count(&b->stats.bytes_read, io->len);
		used = (uint32_t)io->len + 1; /* data + status: blk_start() checked it fits */
	} else if (err == 0 && io->op == BLK_OP_WRITE) {
		count(&b->stats.bytes_written, io->len);
	}
	return finish(b, m, io->status_gpa, err ? S_IOERR : S_OK, used);
}

static uint32_t blk_handle(void *opaque, unsigned qidx, const struct gm_memory *m,
			   const struct gm_virtq_buf *bufs, size_t n)
{
	struct blk_dev *b = opaque;
	struct blk_io io;
	uint32_t used;

	(void)qidx;
	if (blk_start(b, m, bufs, n, &io, &used) == 0)
		return used;
	return blk_end(b, m, &io, blk_io_sync(b, m, &io));
}

static void blk_get_config(void *opaque, unsigned nqueues, uint8_t *cfg)
{
	const struct blk_dev *b = opaque;
	uint64_t capacity = htole64(b->size / SECTOR);
	uint32_t v32;
	uint16_t v16;

	memcpy(cfg + 0, &capacity, 8);
	v32 = htole32(BLK_SEG_MAX);
	memcpy(cfg + 12, &v32, 4);
	v32 = htole32(SECTOR);
	memcpy(cfg + 20, &v32, 4); /* blk_size */
	v16 = htole16((uint16_t)nqueues);
	memcpy(cfg + 34, &v16, 2);
	v32 = htole32(0x400000); /* max_discard_sectors: 2 GiB */
	memcpy(cfg + 36, &v32, 4);
	v32 = htole32(BLK_DISCARD_SEG_MAX);
	memcpy(cfg + 40, &v32, 4);
	v32 = htole32(8); /* discard_sector_alignment: 4 KiB */
	memcpy(cfg + 44, &v32, 4);
	v32 = htole32(0x400000); /* max_write_zeroes_sectors */
	memcpy(cfg + 48, &v32, 4);
	v32 = htole32(BLK_DISCARD_SEG_MAX);
	memcpy(cfg + 52, &v32, 4);
	cfg[56] = 1; /* write_zeroes_may_unmap */
}

static void blk_bad_request(void *opaque)
{
	struct blk_dev *b = opaque;

	count(&b->stats.malformed, 1);
}

void blk_vu_device(struct blk_dev *b, struct vu_device *dev)
{
	memset(dev, 0, sizeof(*dev));
	dev->features = (1ull << F_SEG_MAX) | (1ull << F_BLK_SIZE) | (1ull << F_FLUSH) |
			(1ull << F_MQ) | (1ull << F_DISCARD) | (1ull << F_WRITE_ZEROES) |
			(b->readonly ? 1ull << F_RO : 0);
	dev->max_bufs = BLK_SEG_MAX + 2;
	dev->get_config = blk_get_config;
	dev->handle = blk_handle;
	dev->bad_request = blk_bad_request;
	dev->opaque = b;
	if (b->aio == BLK_AIO_URING)
		blk_uring_ops(b, dev);
}

/* What a file of mode @mode is, for a message that refuses it. */
static const char *file_kind(mode_t mode)
{
	return S_ISDIR(mode)	? "a directory"
	       : S_ISFIFO(mode) ? "a FIFO"
	       : S_ISCHR(mode)	? "a character device"
	       : S_ISBLK(mode)	? "a block device"
	       : S_ISSOCK(mode) ? "a socket"
				: "a special file";
}

int blk_open(struct blk_dev *b, const char *path, bool readonly, char *err, size_t errlen)
{
	struct stat st;
	const char *base;
	int ret, fl;

	memset(b, 0, sizeof(*b));
	/*
	 * O_NONBLOCK: a FIFO without a writer would block open() for reading,
	 * and a device may block or act on an open; O_NOCTTY: a terminal
	 * never becomes ours. Only a regular file is served (below).
	 */
	b->fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (b->fd < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot open image %s%s: %s", path,
			 readonly ? " read-only" : " read-write", strerror(errno));
		return ret;
	}
	if (fstat(b->fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot stat image %s: %s", path, strerror(errno));
		goto err;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		snprintf(err, errlen, "image %s is %s, not a regular file", path,
			 file_kind(st.st_mode));
		goto err;
	}
	/* Blocking again: requests are served with plain pread/pwrite. */
	fl = fcntl(b->fd, F_GETFL);
	if (fl < 0 || fcntl(b->fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		ret = -errno;
		snprintf(err, errlen, "cannot set up image %s: %s", path, strerror(errno));
		goto err;
	}
	if ((uint64_t)st.st_size < SECTOR) {
		ret = -EINVAL;
		snprintf(err, errlen, "image %s is smaller than one 512-byte sector (%lld bytes)",
			 path, (long long)st.st_size);
		goto err;
	}
	/* Serve whole sectors only, so no request can reach a partial tail. */
	b->size = (uint64_t)st.st_size / SECTOR * SECTOR;
	b->readonly = readonly;
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	/* GET_ID: up to 20 bytes, NUL-padded, not terminated when 20 bytes long. */
	memcpy(b->id, base, strlen(base) < sizeof(b->id) ? strlen(base) : sizeof(b->id));
	return 0;
err:
	close(b->fd);
	b->fd = -1;
	return ret;
}

void blk_close(struct blk_dev *b)
{
	if (b->fd < 0)
		return;
	/* What the guest wrote without a flush reaches the disk before we go. */
	if (!b->readonly && fsync(b->fd) < 0)
		fprintf(stderr, "gm-vhost-blk: fsync of the image: %s\n", strerror(errno));
	close(b->fd);
	b->fd = -1;
}

void blk_stats_take(struct blk_dev *b, struct blk_stats *out, bool reset)
{
	uint64_t *src = (uint64_t *)&b->stats, *dst = (uint64_t *)out;
	size_t i;

	for (i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		dst[i] = reset ? __atomic_exchange_n(&src[i], 0, __ATOMIC_RELAXED)
			       : __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
