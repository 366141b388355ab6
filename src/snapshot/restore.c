/* SPDX-License-Identifier: MIT */
/*
 * restore.c - restore modes 1 and 2: copying the chain's pages into
 * existing guest memory or into new anonymous mappings, and mapping the
 * full save's extents MAP_PRIVATE (copy-on-write, nothing read until
 * touched) with the deltas copied over them. Mode 3 is lazy.c.
 */
#include "snapshot-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int gm__check_restorable(const struct gm_memory *m, gm_gpa_t gpa, uint64_t size)
{
	while (size > 0) {
		struct gm_region_info ri = GM_OPTS(gm_region_info);
		uint64_t n;

		if (gm_memory_find(m, gpa, &ri))
			return -EFAULT;
		/* Read-only host memory (a ROM, a zero block's mapping) would fault. */
		if ((ri.flags & (GM_REGION_ROM | GM_REGION_ZERO)) ||
		    (gm_mapping_flags(ri.mapping) & GM_MAP_READONLY))
			return -EACCES;
		n = ri.size - (gpa - ri.gpa);
		if (n >= size)
			break;
		size -= n;
		gpa += n;
	}
	return 0;
}

static int check_covered(const struct gm_snapshot *s, const struct gm_memory *m)
{
	const struct snap_file *f = top_file(s);

	for (uint32_t i = 0; i < f->nregions; i++) {
		int ret = gm__check_restorable(m, f->regions[i].gpa, f->regions[i].size);

		if (ret)
			return ret;
	}
	return 0;
}

int gm__restore_bytes(const struct gm_memory *m, gm_gpa_t gpa, const unsigned char *buf, size_t len)
{
	gm_gpa_t start = gpa;
	size_t total = len;

	while (len > 0) {
		struct gm_region_info ri = GM_OPTS(gm_region_info);
		unsigned char *host;
		size_t n;

		if (gm_memory_find(m, gpa, &ri))
			return -EFAULT;
		n = ri.size - (gpa - ri.gpa) < len ? (size_t)(ri.size - (gpa - ri.gpa)) : len;
		host = (unsigned char *)ri.host + (size_t)(gpa - ri.gpa);
		if (buf) {
			memcpy(host, buf, n);
			buf += n;
		} else if (gm_mapping_fd(ri.mapping) >= 0 ||
			   (gm_mapping_flags(ri.mapping) & GM_MAP_SHARED) ||
			   ((uintptr_t)host & (SNAP_PAGE - 1)) != 0 || (n & (SNAP_PAGE - 1)) != 0 ||
			   madvise(host, n, MADV_DONTNEED) != 0) {
			memset(host, 0, n);
		}
		gpa += n;
		len -= n;
	}
	return gm_mark_dirty(m, start, total);
}

/*
 * gm__restore_bytes() of a resolved chunk, run by run: runs of zero pages are
 * zeroed (dropped, on private anonymous memory) rather than copied, so
 * pages the guest never touched are not faulted in just to hold zeros.
 */
static int restore_chunk(const struct gm_memory *m, gm_gpa_t gpa, const unsigned char *buf,
			 uint64_t npages)
{
	for (uint64_t p = 0; p < npages;) {
		bool zero;
		uint64_t q = gm__zero_run(buf, p, npages, &zero);
		int ret =
		    gm__restore_bytes(m, gpa + p * SNAP_PAGE, zero ? NULL : buf + p * SNAP_PAGE,
				      (size_t)((q - p) * SNAP_PAGE));

		if (ret)
			return ret;
		p = q;
	}
	return 0;
}

int gm_snapshot_restore(struct gm_snapshot *s, const struct gm_memory *m,
			const struct gm_snapshot_opts *opts)
{
	const struct snap_file *base;
	struct progress pr;
	struct chunk_buf cb;
	int ret;

	if (s == NULL || m == NULL || s->alone)
		return -EINVAL;
	ret = gm__progress_init(&pr, opts, gm__snapshot_ram_size(s));
	if (ret)
		return ret;
	ret = check_covered(s, m);
	if (ret)
		return ret;
	base = &s->files[0];
	ret = gm__chunk_buf_init(&cb);
	if (ret)
		return ret;
	for (uint32_t ri = 0; ri < base->nregions && ret == 0; ri++) {
		const struct snap_region *r = &base->regions[ri];

		for (uint64_t c = 0; c < r->nchunks; c++) {
			gm_gpa_t gpa = r->gpa + c * SNAP_CHUNK_BYTES;
			uint64_t npages = chunk_pages(r->npages, c);
			size_t len = (size_t)(npages * SNAP_PAGE);

			if (gm__chunk_is_zero(s, ri, c)) {
				ret = gm__restore_bytes(m, gpa, NULL, len);
			} else {
				ret = gm__resolve_chunk(s, ri, c, cb.buf, cb.state);
				if (ret == 0)
					ret = restore_chunk(m, gpa, cb.buf, npages);
			}
			if (ret == 0)
				ret = gm__progress_add(&pr, len);
			if (ret)
				break;
		}
	}
	gm__chunk_buf_free(&cb);
	return ret;
}

/* ---- new mappings: restore modes 1 and 2 here, 3 in lazy.c ---- */

/* Copy the deltas' pages of region @ri over @host (the region's bytes). */
static int apply_deltas(const struct gm_snapshot *s, uint32_t ri, unsigned char *host)
{
	const struct snap_region *r0 = &s->files[0].regions[ri];
	struct chunk_buf cb;
	int ret = 0;

	if (s->nfiles == 1)
		return 0;
	ret = gm__chunk_buf_init(&cb);
	if (ret)
		return ret;
	for (uint64_t c = 0; c < r0->nchunks && ret == 0; c++) {
		size_t len = (size_t)(chunk_pages(r0->npages, c) * SNAP_PAGE);
		bool touched = false;

		for (unsigned i = 1; i < s->nfiles && !touched; i++) {
			const struct snap_region *r = &s->files[i].regions[ri];

			for (uint64_t w = c * SNAP_CHUNK_PAGES / 64;
			     w < div_round_up(c * SNAP_CHUNK_PAGES + chunk_pages(r->npages, c), 64);
			     w++)
				touched |= r->defined[w] != 0;
		}
		/* A chunk with no data is anonymous zero memory already (overlay_zero_chunks). */
		if (!touched || gm__chunk_is_zero(s, ri, c))
			continue;
		/* Build the chunk aside, then copy: only defined pages change. */
		memcpy(cb.buf, host + c * SNAP_CHUNK_BYTES, len);
		for (unsigned i = 1; i < s->nfiles && ret == 0; i++)
			ret = gm__apply_file_chunk(&s->files[i], ri, c, cb.buf, cb.state, NULL);
		if (ret == 0)
			memcpy(host + c * SNAP_CHUNK_BYTES, cb.buf, len);
	}
	gm__chunk_buf_free(&cb);
	return ret;
}

/*
 * Replace the file under runs of chunks that hold no data (in the chain's
 * final state) with anonymous memory: a read of a hole through a file
 * mapping puts a zero page in the page cache, so an empty 8 GiB guest
 * touched all over would cost 8 GiB of cache; anonymous memory maps the
 * shared zero page instead. Same contents, same copy-on-write behaviour.
 */
static int overlay_zero_chunks(const struct gm_snapshot *s, uint32_t ri, unsigned char *host)
{
	const struct snap_region *r = &s->files[0].regions[ri];

	for (uint64_t c = 0; c < r->nchunks;) {
		uint64_t d = c, len = 0;

		while (d < r->nchunks && gm__chunk_is_zero(s, ri, d))
			len += chunk_pages(r->npages, d++) * SNAP_PAGE;
		if (len > 0 &&
		    mmap(host + c * SNAP_CHUNK_BYTES, (size_t)len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
			return -errno;
		c = d + (d == c);
	}
	return 0;
}

int gm_snapshot_map_region(struct gm_snapshot *s, uint32_t index, enum gm_restore_mode mode,
			   struct gm_mapping **out)
{
	const struct snap_region *r;
	struct gm_mapping *map = NULL;
	size_t len;
	int ret;

	if (s == NULL || out == NULL || s->alone)
		return -EINVAL;
	if (index >= s->files[0].nregions)
		return -ENOENT;
	r = &s->files[0].regions[index];
	ret = gm_u64_to_size(r->size, &len);
	if (ret)
		return ret;
	switch (mode) {
	case GM_RESTORE_COPY: {
		struct chunk_buf cb;

		ret = gm_mapping_new_anon(len, GM_MAP_NORESERVE, &map);
		if (ret)
			return ret;
		ret = gm__chunk_buf_init(&cb);
		if (ret)
			goto err;
		for (uint64_t c = 0; c < r->nchunks && ret == 0; c++) {
			if (gm__chunk_is_zero(s, index, c))
				continue; /* fresh anonymous memory is zero */
			ret = gm__resolve_chunk(s, index, c, cb.buf, cb.state);
			if (ret == 0)
				memcpy((unsigned char *)gm_mapping_host(map) + c * SNAP_CHUNK_BYTES,
				       cb.buf, (size_t)(chunk_pages(r->npages, c) * SNAP_PAGE));
		}
		gm__chunk_buf_free(&cb);
		if (ret)
			goto err;
		break;
	}
	case GM_RESTORE_PRIVATE:
		ret = gm_mapping_new_fd(s->files[0].fd, r->file_offset, len, 0, &map);
		if (ret)
			return ret;
		ret = overlay_zero_chunks(s, index, gm_mapping_host(map));
		if (ret == 0)
			ret = apply_deltas(s, index, gm_mapping_host(map));
		if (ret)
			goto err;
		break;
	case GM_RESTORE_LAZY:
		ret = gm_snapshot_lazy_supported();
		if (ret)
			return ret;
		ret = gm_mapping_new_anon(len, GM_MAP_NORESERVE, &map);
		if (ret)
			return ret;
		ret = gm__lazy_register(s, index, map);
		if (ret)
			goto err;
		break;
	default:
		return -EINVAL;
	}
	*out = map;
	return 0;
err:
	gm_mapping_put(map);
	return ret;
}

int gm_snapshot_restore_new(struct gm_snapshot *s, enum gm_restore_mode mode,
			    const struct gm_snapshot_opts *opts, struct gm_memory **out)
{
	struct gm_region_spec *specs;
	struct progress pr;
	uint32_t n;
	int ret = 0;

	if (s == NULL || out == NULL || s->alone)
		return -EINVAL;
	ret = gm__progress_init(&pr, opts, gm__snapshot_ram_size(s));
	if (ret)
		return ret;
	n = s->files[0].nregions;
	specs = calloc(n, sizeof(*specs));
	if (specs == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const struct snap_region *r = &s->files[0].regions[i];

		ret = gm_snapshot_map_region(s, i, mode, &specs[i].mapping);
		if (ret == 0 && mode == GM_RESTORE_COPY)
			ret = gm__progress_add(&pr, r->size);
		if (ret)
			goto out;
		specs[i].gpa = r->gpa;
		specs[i].size = r->size;
		specs[i].flags = r->flags;
	}
	ret = gm_memory_new(specs, n, out);
out:
	/* The view holds its own references; NULL entries are ignored. */
	for (uint32_t i = 0; i < n; i++)
		gm_mapping_put(specs[i].mapping);
	free(specs);
	return ret;
}
