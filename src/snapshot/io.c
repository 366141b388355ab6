/* SPDX-License-Identifier: MIT */
/*
 * io.c - the byte-level helpers of the snapshot layer: opening a file
 * named by data without blocking, reads and writes that do not stop short
 * (files and streams alike), copies of guest memory that other threads may
 * be writing, tests for zero pages, and progress reports.
 */
#include "snapshot-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int gm__open_regular(const char *path, int flags)
{
	struct stat st;
	int fd, ret;

	/*
	 * O_NONBLOCK: a FIFO without a writer would block open() for reading,
	 * and a device may block or act on an open; O_NOCTTY: a terminal
	 * never becomes ours. Neither matters to a regular file.
	 */
	fd = open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto err;
	}
	ret = -EINVAL;
	if (!S_ISREG(st.st_mode))
		goto err;
	/* Blocking again, so reads of the file behave as everywhere else. */
	ret = fcntl(fd, F_GETFL);
	if (ret < 0 || fcntl(fd, F_SETFL, ret & ~O_NONBLOCK) < 0) {
		ret = -errno;
		goto err;
	}
	return fd;
err:
	close(fd);
	return ret;
}

/*
 * One read into, or (@write) one write from, @buf of at most @len bytes at
 * @io's position, as struct snap_io describes. Returns what the call did.
 */
static ssize_t io_once(struct snap_io *io, bool write_, unsigned char *buf, size_t len)
{
	ssize_t n;

	if (io->off != SNAP_STREAM)
		return write_ ? pwrite(io->fd, buf, len, (off_t)io->off)
			      : pread(io->fd, buf, len, (off_t)io->off);
	if (!write_)
		return read(io->fd, buf, len);
	if (!io->not_socket) {
		n = send(io->fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0 || errno != ENOTSOCK)
			return n;
		io->not_socket = true;
	}
	return write(io->fd, buf, len);
}

/* The loop of gm__read_full() and (@write) gm__write_full(). */
static int io_full(struct snap_io *io, bool write_, unsigned char *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = io_once(io, write_, buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) /* a file that shrank, a stream that was cut, a write that stalled */
			return write_ ? -EIO : io->off == SNAP_STREAM ? -EPIPE : -EBADMSG;
		done += (size_t)n;
		io->bytes += (uint64_t)n;
		if (io->off != SNAP_STREAM)
			io->off += (uint64_t)n;
	}
	return 0;
}

int gm__read_full(struct snap_io *io, void *buf, size_t len)
{
	return io_full(io, false, buf, len);
}

int gm__write_full(struct snap_io *io, const void *buf, size_t len)
{
	/* Only read from: io_once() passes it to write calls alone. */
	return io_full(io, true, (unsigned char *)(uintptr_t)buf, len);
}

void gm__copy_from_guest(void *dst, const void *src, size_t len)
{
	const unsigned long *s = src;
	unsigned long *d = dst;

	for (size_t i = 0; i < len / sizeof(*s); i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

bool gm__buf_is_zero(const void *p, size_t len)
{
	const unsigned long *s = p;
	unsigned long acc = 0;

	for (size_t i = 0; i < len / sizeof(*s); i++)
		acc |= s[i];
	return acc == 0;
}

uint64_t gm__zero_run(const unsigned char *buf, uint64_t p, uint64_t n, bool *zero)
{
	uint64_t q = p + 1;

	*zero = gm__buf_is_zero(buf + p * SNAP_PAGE, SNAP_PAGE);
	while (q < n && gm__buf_is_zero(buf + q * SNAP_PAGE, SNAP_PAGE) == *zero)
		q++;
	return q;
}

int gm__progress_init(struct progress *p, const struct gm_snapshot_opts *opts, uint64_t total)
{
	struct gm_snapshot_opts o;
	int ret = GM_ABI_COPY_IN(&o, opts);

	*p = (struct progress){.total = total, .fn = o.progress, .opaque = o.opaque};
	return ret;
}

int gm__progress_add(struct progress *p, uint64_t n)
{
	p->done += n;
	if (p->fn == NULL)
		return 0;
	if (p->done - p->last < ((uint64_t)8 << 20) && p->done != p->total)
		return 0;
	p->last = p->done;
	return p->fn(p->opaque, p->done, p->total) ? -ECANCELED : 0;
}
