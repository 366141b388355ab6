/*
 * io.c - the byte-level helpers of the snapshot layer: reads that do not
 * stop short, copies of guest memory that other threads may be writing,
 * tests for zero pages, and progress reports.
 */
#include "snapshot-internal.h"

#include <errno.h>
#include <unistd.h>

int gm__pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EBADMSG; /* the file shrank under us */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
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

void gm__progress_init(struct progress *p, const struct gm_snapshot_opts *opts, uint64_t total)
{
	*p = (struct progress){.total = total};
	if (opts) {
		p->fn = opts->progress;
		p->opaque = opts->opaque;
	}
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
