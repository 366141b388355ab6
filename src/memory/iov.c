/* SPDX-License-Identifier: MIT */
/*
 * iov.c - the zero-copy side of the data path: guest ranges translated to
 * host pointers and iovecs, gm_mark_dirty() for the writes a caller makes
 * through them, and fd I/O (readv/writev and friends straight into guest
 * memory, built on the same iovecs).
 */
#include <limits.h>
#include <unistd.h>

#include "memory-internal.h"

/* iovecs handed to one readv/writev call in fd I/O. */
#define FD_IOV_BATCH 64

/* ---- translation ----------------------------------------------------- */

void *gm_host_ptr(const struct gm_memory *m, gm_gpa_t gpa, size_t len)
{
	const struct gm_region_hot *r = gm__region_of(m, gpa);

	/* len 0 inside a region is that byte's address; len - 1 would wrap. */
	if (r == NULL || (len != 0 && r->last - gpa < len - 1))
		return NULL;
	return hva(r, gpa);
}

void *gm_host_ptr_write(const struct gm_memory *m, gm_gpa_t gpa, size_t len)
{
	const struct gm_region_hot *r = gm__region_of(m, gpa);

	if (r == NULL || (r->flags & GM_REGION_READONLY) || (len != 0 && r->last - gpa < len - 1))
		return NULL;
	return hva(r, gpa);
}

/*
 * Fill up to @max iovecs for the checked range [@gpa, @gpa + @len), merging
 * host-contiguous neighbours. Sets *@used; returns the bytes covered.
 * With @needed not NULL, keeps counting the entries past @max it would need.
 */
static size_t fill_iov(const struct gm_memory *m, gm_gpa_t gpa, size_t len, struct iovec *iov,
		       size_t max, size_t *used, size_t *needed)
{
	size_t done = 0, k = 0, total = 0, covered = 0, n;
	unsigned char *prev_end = NULL;

	while (done < len) {
		const struct gm_region_hot *r = piece(m, gpa + done, len - done, &n);
		unsigned char *h = hva(r, gpa + done);

		if (total > 0 && h == prev_end) {
			if (total <= max)
				iov[total - 1].iov_len += n;
		} else {
			total++;
			if (total <= max) {
				iov[total - 1].iov_base = h;
				iov[total - 1].iov_len = n;
			}
		}
		if (total <= max) {
			k = total;
			covered = done + n;
		} else if (needed == NULL) {
			break;
		}
		prev_end = h + n;
		done += n;
	}
	*used = k;
	if (needed)
		*needed = total;
	return covered;
}

static int to_iovec(const struct gm_memory *m, gm_gpa_t gpa, size_t len, struct iovec *iov,
		    size_t max, size_t *n, bool write)
{
	size_t ok, used, needed;
	int err;

	if (n == NULL || (iov == NULL && max > 0))
		return -EINVAL;
	*n = 0;
	if (len == 0)
		return 0;
	err = check_range(m, gpa, len, write, &ok);
	if (err)
		return err;
	fill_iov(m, gpa, len, iov, max, &used, &needed);
	if (needed > max) {
		*n = needed;
		return -ENOBUFS;
	}
	*n = used;
	return 0;
}

int gm_to_iovec(const struct gm_memory *m, gm_gpa_t gpa, size_t len, struct iovec *iov, size_t max,
		size_t *n)
{
	return to_iovec(m, gpa, len, iov, max, n, false);
}

int gm_to_iovec_write(const struct gm_memory *m, gm_gpa_t gpa, size_t len, struct iovec *iov,
		      size_t max, size_t *n)
{
	return to_iovec(m, gpa, len, iov, max, n, true);
}

int gm_mark_dirty(const struct gm_memory *m, gm_gpa_t gpa, size_t len)
{
	size_t done = 0, n = 0;

	while (done < len) {
		const struct gm_region_hot *r;
		gm_gpa_t cur;

		if (gm_add_overflow_u64(gpa, done, &cur))
			break;
		r = piece(m, cur, len - done, &n);
		if (r == NULL) {
			/* Skip the hole: continue at the next region, if any. */
			const struct gm_region_hot *h = &m->regions[0];
			uint32_t i;
			uint64_t skip = 0;

			for (i = 0; i < m->hot.nregions; i++, h++) {
				if (h->gpa > cur) {
					skip = h->gpa - cur;
					break;
				}
			}
			if (skip == 0 || skip >= len - done)
				break;
			done += (size_t)skip;
			continue;
		}
		mark(r, cur, n);
		done += n;
	}
	return 0;
}

/* ---- fd I/O ---------------------------------------------------------- */

/*
 * One system call for a batch of one iovec: read()/pread() and
 * write()/pwrite(), which move exactly what readv() of the same iovec
 * would. They are not always as fast: /dev/zero's read() clears the
 * buffer directly while its readv() goes through the iov_iter path, 8-10%
 * slower for 1 MiB reads into guest memory (perf: read_iter_zero and
 * iov_iter_zero in place of read_zero). @done is the offset into the
 * transfer, for a positioned call (@offset >= 0).
 */
static ssize_t fd_io_one(int fd, const struct iovec *iov, int64_t offset, size_t done,
			 bool to_guest)
{
	if (to_guest)
		return offset >= 0
			   ? pread(fd, iov->iov_base, iov->iov_len, (off_t)(offset + (int64_t)done))
			   : read(fd, iov->iov_base, iov->iov_len);
	return offset >= 0
		   ? pwrite(fd, iov->iov_base, iov->iov_len, (off_t)(offset + (int64_t)done))
		   : write(fd, iov->iov_base, iov->iov_len);
}

/* The same for a batch of @n iovecs: one readv() (or its kin) for all. */
static ssize_t fd_io_vec(int fd, const struct iovec *iov, size_t n, int64_t offset, size_t done,
			 bool to_guest)
{
	if (to_guest)
		return offset >= 0 ? preadv(fd, iov, (int)n, (off_t)(offset + (int64_t)done))
				   : readv(fd, iov, (int)n);
	return offset >= 0 ? pwritev(fd, iov, (int)n, (off_t)(offset + (int64_t)done))
			   : writev(fd, iov, (int)n);
}

static int fd_io(const struct gm_memory *m, gm_gpa_t gpa, int fd, int64_t offset, size_t len,
		 size_t *done, bool to_guest)
{
	struct iovec iov[FD_IOV_BATCH];
	size_t ok;
	int err;

	if (done == NULL)
		return -EINVAL;
	*done = 0;
	if (fd < 0 || offset < -1)
		return -EINVAL;
	if (offset >= 0 && (uint64_t)len > (uint64_t)INT64_MAX - (uint64_t)offset)
		return -EOVERFLOW;
	err = check_range(m, gpa, len, to_guest, &ok);
	if (err)
		return err;
	while (*done < len) {
		size_t used, chunk = len - *done;
		ssize_t r;

		/* One call moves at most SSIZE_MAX bytes (a 32-bit host's limit). */
		if (chunk > (size_t)SSIZE_MAX)
			chunk = (size_t)SSIZE_MAX;
		chunk = fill_iov(m, gpa + *done, chunk, iov, FD_IOV_BATCH, &used, NULL);
		r = used == 1 ? fd_io_one(fd, iov, offset, *done, to_guest)
			      : fd_io_vec(fd, iov, used, offset, *done, to_guest);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		if (r == 0) {
			if (!to_guest)
				return -EIO; /* a write that moves nothing cannot progress */
			break;		     /* end of file */
		}
		if (to_guest)
			gm_mark_dirty(m, gpa + *done, (size_t)r);
		*done += (size_t)r;
	}
	return 0;
}

int gm_read_from_fd(const struct gm_memory *m, gm_gpa_t gpa, int fd, int64_t offset, size_t len,
		    size_t *done)
{
	return fd_io(m, gpa, fd, offset, len, done, true);
}

int gm_write_to_fd(const struct gm_memory *m, gm_gpa_t gpa, int fd, int64_t offset, size_t len,
		   size_t *done)
{
	return fd_io(m, gpa, fd, offset, len, done, false);
}
