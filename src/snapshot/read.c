/* SPDX-License-Identifier: MIT */
/*
 * read.c - the chain's state of a chunk, the unit every restore reads:
 * each file's pages applied in turn from the full save up, checked
 * against the chunk checksums; and the two reads the API offers on it,
 * gm_snapshot_verify() and gm_snapshot_read().
 */
#include "snapshot-internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

int gm__apply_file_chunk(const struct snap_file *f, uint32_t ri, uint64_t c, unsigned char *dst,
			 XXH3_state_t *state, uint64_t *read_bytes)
{
	const struct snap_region *r = &f->regions[ri];
	uint64_t first = c * SNAP_CHUNK_PAGES, n = chunk_pages(r->npages, c), p = 0;
	struct snap_io io = {.fd = f->fd};
	int ret;

	/*
	 * One read per run of stored pages, never across a hole: a buffered
	 * read of a hole fills the page cache with zero pages (measured: 4x
	 * slower on a 4 GiB guest with 10 % data than reading runs only).
	 */
	XXH3_64bits_reset(state);
	while (p < n) {
		uint64_t q = p;

		if (!bit_test(r->defined, first + p)) {
			p++;
			continue;
		}
		if (!bit_test(r->data, first + p)) {
			memset(dst + p * SNAP_PAGE, 0, SNAP_PAGE);
			p++;
			continue;
		}
		while (q < n && bit_test(r->data, first + q))
			q++;
		/* Pages p..q-1 are stored contiguously in the extent. */
		io.off = r->file_offset + (first + p) * SNAP_PAGE;
		ret = gm__read_full(&io, dst + p * SNAP_PAGE, (size_t)((q - p) * SNAP_PAGE));
		if (ret)
			return ret;
		XXH3_64bits_update(state, dst + p * SNAP_PAGE, (size_t)((q - p) * SNAP_PAGE));
		if (read_bytes)
			*read_bytes += (q - p) * SNAP_PAGE;
		p = q;
	}
	return XXH3_64bits_digest(state) == r->csum[c] ? 0 : -EBADMSG;
}

bool gm__chunk_is_zero(const struct gm_snapshot *s, uint32_t ri, uint64_t c)
{
	const struct snap_region *r0 = &s->files[0].regions[ri];
	uint64_t first = c * SNAP_CHUNK_PAGES, n = chunk_pages(r0->npages, c);

	for (uint64_t p = first; p < first + n; p++) {
		/* The newest file that defines the page decides (the base defines all). */
		for (unsigned i = s->nfiles; i-- > 0;) {
			const struct snap_region *r = &s->files[i].regions[ri];

			if (bit_test(r->defined, p)) {
				if (bit_test(r->data, p))
					return false;
				break;
			}
		}
	}
	return true;
}

int gm__resolve_chunk(const struct gm_snapshot *s, uint32_t ri, uint64_t c, unsigned char *dst,
		      XXH3_state_t *state)
{
	for (unsigned i = 0; i < s->nfiles; i++) {
		int ret = gm__apply_file_chunk(&s->files[i], ri, c, dst, state, NULL);

		if (ret)
			return ret;
	}
	return 0;
}

int gm__chunk_buf_init(struct chunk_buf *cb)
{
	cb->buf = mmap(NULL, SNAP_CHUNK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (cb->buf == MAP_FAILED) {
		cb->buf = NULL;
		return -ENOMEM;
	}
	cb->state = XXH3_createState();
	if (cb->state == NULL) {
		munmap(cb->buf, SNAP_CHUNK_BYTES);
		cb->buf = NULL;
		return -ENOMEM;
	}
	return 0;
}

void gm__chunk_buf_free(struct chunk_buf *cb)
{
	if (cb->buf)
		munmap(cb->buf, SNAP_CHUNK_BYTES);
	if (cb->state)
		XXH3_freeState(cb->state);
	cb->buf = NULL;
	cb->state = NULL;
}

int gm_snapshot_verify(struct gm_snapshot *s, const struct gm_snapshot_opts *opts,
		       gm_gpa_t *bad_gpa)
{
	struct progress pr;
	struct chunk_buf cb;
	uint64_t total = 0;
	int ret;

	if (s == NULL)
		return -EINVAL;
	for (unsigned i = 0; i < s->nfiles; i++)
		for (uint32_t ri = 0; ri < s->files[i].nregions; ri++)
			total += s->files[i].regions[ri].data_pages * SNAP_PAGE;
	ret = gm__progress_init(&pr, opts, total);
	if (ret)
		return ret;
	ret = gm__chunk_buf_init(&cb);
	if (ret)
		return ret;
	for (unsigned i = 0; i < s->nfiles; i++) {
		const struct snap_file *f = &s->files[i];

		for (uint32_t ri = 0; ri < f->nregions; ri++) {
			const struct snap_region *r = &f->regions[ri];

			for (uint64_t c = 0; c < r->nchunks; c++) {
				uint64_t got = 0;

				ret = gm__apply_file_chunk(f, ri, c, cb.buf, cb.state, &got);
				if (ret == -EBADMSG && bad_gpa)
					*bad_gpa = r->gpa + c * SNAP_CHUNK_BYTES;
				if (ret == 0)
					ret = gm__progress_add(&pr, got);
				if (ret)
					goto out;
			}
		}
	}
	if (pr.fn && pr.total == 0 && pr.fn(pr.opaque, 0, 0))
		ret = -ECANCELED;
out:
	gm__chunk_buf_free(&cb);
	return ret;
}

/* Region index of @gpa in the chain, or -EFAULT when [gpa, gpa+len) is not inside one region. */
static int find_saved_region(const struct gm_snapshot *s, gm_gpa_t gpa, uint64_t len, uint32_t *ri)
{
	const struct snap_file *f = top_file(s);

	for (uint32_t i = 0; i < f->nregions; i++) {
		if (gm_range_contains(f->regions[i].gpa, f->regions[i].size, gpa, len) &&
		    gpa - f->regions[i].gpa < f->regions[i].size) {
			*ri = i;
			return 0;
		}
	}
	return -EFAULT;
}

int gm_snapshot_read(struct gm_snapshot *s, gm_gpa_t gpa, void *buf, size_t len)
{
	struct chunk_buf cb;
	uint32_t ri;
	int ret;

	if (s == NULL || (buf == NULL && len > 0) || s->alone)
		return -EINVAL;
	if (len == 0)
		return 0;
	ret = find_saved_region(s, gpa, len, &ri);
	if (ret)
		return ret;
	ret = gm__chunk_buf_init(&cb);
	if (ret)
		return ret;
	while (len > 0) {
		const struct snap_region *r = &s->files[0].regions[ri];
		uint64_t off = gpa - r->gpa, c = off / SNAP_CHUNK_BYTES;
		size_t in = (size_t)(off % SNAP_CHUNK_BYTES);
		size_t n = SNAP_CHUNK_BYTES - in < len ? SNAP_CHUNK_BYTES - in : len;

		ret = gm__resolve_chunk(s, ri, c, cb.buf, cb.state);
		if (ret)
			break;
		memcpy(buf, cb.buf + in, n);
		buf = (unsigned char *)buf + n;
		gpa += n;
		len -= n;
	}
	gm__chunk_buf_free(&cb);
	return ret;
}
