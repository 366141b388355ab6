/* SPDX-License-Identifier: MIT */
/*
 * save.c - full and incremental saves. Pages are read with relaxed loads
 * (the guest may run), zero pages are left as holes, and the file is
 * written under a temporary name, fsynced and renamed, so a crash or a
 * full disk never leaves something that looks like a valid snapshot.
 *
 * gm_snapshot_save() is three steps: save_layout() decides the file
 * (region table, metadata area, offsets and sizes), save_write() writes
 * it (extents, then the tables, checksums and header that describe them),
 * and save_commit() makes it the file at its path, or on failure removes
 * it and gives the collected dirty bits back. Nothing that can fail runs
 * after the rename but the directory's fsync (see gm_snapshot_save()).
 */
#include "snapshot-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- layout: what the file holds and where ---- */

/* A region's page and chunk counts, and its tables inside the metadata area. */
struct save_region {
	uint64_t npages, nchunks, words;
	uint64_t *defined, *data, *csum;
	uint64_t ndef, ndata;
};

/* What the layout step decides, and the metadata area the other steps fill. */
struct save_layout {
	bool delta;
	struct gm_snapshot *base; /* delta: the base file, opened alone */
	const char *base_name;	  /* delta: the base's file name, stored in the header */
	struct save_region *sr;	  /* per region: its tables inside @meta */
	unsigned char *meta;	  /* the metadata area (zeroed) */
	size_t meta_len;
	uint64_t meta_size, data_off, file_size, ram_size;
};

/* The file name part of @path. */
static const char *file_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* For a delta: open the base @opts names, which must have the layout of @v. */
static int save_open_base(const struct view_regions *v, const char *path,
			  const struct gm_snapshot_opts *opts, struct save_layout *sl)
{
	const struct snap_file *bf;
	int ret;

	sl->base_name = file_name(opts->base);
	/* A delta saved under its base's name would replace the base it names. */
	if (strlen(sl->base_name) >= 256 || sl->base_name[0] == 0 ||
	    !strcmp(sl->base_name, file_name(path)))
		return -EINVAL;
	ret = gm_snapshot_open(opts->base, GM_SNAPSHOT_OPEN_NOBASE, &sl->base);
	if (ret)
		return ret;
	bf = top_file(sl->base);
	if (bf->nregions != v->n)
		return -ESTALE;
	for (size_t i = 0; i < v->n; i++)
		if (bf->regions[i].gpa != v->r[i].gpa || bf->regions[i].size != v->r[i].size)
			return -ESTALE;
	return 0;
}

/*
 * Decide the file for the regions of @v: sizes of the tables, the data
 * offset and the file size (all checked), and allocate the metadata area
 * with each region's tables placed in it. Free @sl with save_layout_free()
 * whatever this returns.
 */
static int save_layout(const struct view_regions *v, const char *path,
		       const struct gm_snapshot_opts *opts, struct save_layout *sl)
{
	uint64_t tables_size = 0, pos;
	int ret;

	*sl = (struct save_layout){.delta = opts && opts->base};
	if (sl->delta) {
		ret = save_open_base(v, path, opts, sl);
		if (ret)
			return ret;
	}
	sl->sr = calloc(v->n, sizeof(*sl->sr));
	if (sl->sr == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < v->n; i++) {
		struct save_region *sr = &sl->sr[i];

		sr->npages = v->r[i].size / SNAP_PAGE;
		sr->nchunks = div_round_up(sr->npages, SNAP_CHUNK_PAGES);
		sr->words = bm_words(sr->npages);
		tables_size += (2 * sr->words + sr->nchunks) * 8;
		sl->ram_size += v->r[i].size;
	}
	sl->meta_size = (uint64_t)v->n * SNAP_REGION_REC + tables_size;
	ret = gm_align_up(sl->meta_size, SNAP_PAGE, &sl->meta_size);
	if (ret == 0 && sl->meta_size > SNAP_MAX_META)
		ret = -EOVERFLOW;
	if (ret == 0)
		ret = gm_u64_to_size(sl->meta_size, &sl->meta_len);
	if (ret)
		return ret;
	sl->data_off = SNAP_HDR_SIZE + sl->meta_size;
	if (gm_add_overflow_u64(sl->ram_size, sl->data_off, &sl->file_size))
		return -EOVERFLOW;
	sl->meta = calloc(1, sl->meta_len);
	if (sl->meta == NULL)
		return -ENOMEM;
	pos = (uint64_t)v->n * SNAP_REGION_REC;
	for (size_t i = 0; i < v->n; i++) {
		struct save_region *sr = &sl->sr[i];

		sr->defined = (uint64_t *)(void *)(sl->meta + pos);
		sr->data = sr->defined + sr->words;
		sr->csum = sr->data + sr->words;
		pos += (2 * sr->words + sr->nchunks) * 8;
	}
	return 0;
}

static void save_layout_free(struct save_layout *sl)
{
	free(sl->meta);
	free(sl->sr);
	gm_snapshot_close(sl->base);
}

/* ---- the data writer ---- */

/* Whether the guest page at @src reads as zero (relaxed word loads, as gm__copy_from_guest()). */
static bool guest_page_is_zero(const void *src)
{
	const unsigned long *s = src;
	unsigned long acc = 0;

	for (size_t i = 0; i < SNAP_PAGE / sizeof(*s); i += 8) {
		for (size_t j = 0; j < 8; j++)
			acc |= __atomic_load_n(&s[i + j], __ATOMIC_RELAXED);
		if (acc)
			return false;
	}
	return true;
}

/* Write the pages [@from, @to) of @cb's buffer to @fd at @off. */
static int write_run(int fd, const struct chunk_buf *cb, uint64_t from, uint64_t to, uint64_t off)
{
	struct snap_io io = {.fd = fd, .off = off};

	return gm__write_full(&io, cb->buf + from * SNAP_PAGE, (size_t)((to - from) * SNAP_PAGE));
}

/* Write region @i of @v to @fd at @file_off; fills @sr's tables. */
static int save_region(struct view_regions *v, size_t i, bool delta, int fd, uint64_t file_off,
		       struct save_region *sr, struct chunk_buf *cb, struct progress *pr)
{
	const unsigned char *host = v->r[i].host;
	int ret;

	for (uint64_t c = 0; c < sr->nchunks; c++) {
		uint64_t first = c * SNAP_CHUNK_PAGES, n = chunk_pages(sr->npages, c);
		uint64_t k = 0, run_start = 0; /* k: pages in cb->buf, the current run */
		uint64_t run_page = 0;

		XXH3_64bits_reset(cb->state);
		for (uint64_t p = first; p < first + n; p++) {
			const unsigned char *src = host + p * SNAP_PAGE;
			unsigned char *dst;

			if (delta && !gm__view_page_dirty(v, i, p))
				continue;
			bit_set(sr->defined, p);
			sr->ndef++;
			if (guest_page_is_zero(src))
				continue;
			dst = cb->buf + k * SNAP_PAGE;
			gm__copy_from_guest(dst, src, SNAP_PAGE);
			/* The page may have become zero between the test and the copy. */
			if (gm__buf_is_zero(dst, SNAP_PAGE))
				continue;
			/* A run is pages both contiguous in the guest and in the buffer. */
			if (k > run_start && p != run_page + (k - run_start)) {
				ret = write_run(fd, cb, run_start, k,
						file_off + run_page * SNAP_PAGE);
				if (ret)
					return ret;
				run_start = k;
			}
			if (k == run_start)
				run_page = p;
			bit_set(sr->data, p);
			sr->ndata++;
			XXH3_64bits_update(cb->state, dst, SNAP_PAGE);
			k++;
		}
		if (k > run_start) {
			ret = write_run(fd, cb, run_start, k, file_off + run_page * SNAP_PAGE);
			if (ret)
				return ret;
		}
		sr->csum[c] = XXH3_64bits_digest(cb->state);
		ret = gm__progress_add(pr, n * SNAP_PAGE);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Write the metadata area (region records, then the tables the data writer
 * filled, in little endian) and then the header whose checksum covers it.
 */
static int save_write_meta(const struct view_regions *v, struct save_layout *sl, int fd)
{
	unsigned char hdr[SNAP_HDR_SIZE] = {0};
	struct snap_io io = {.fd = fd, .off = SNAP_HDR_SIZE};
	uint64_t pos = (uint64_t)v->n * SNAP_REGION_REC, file_off = sl->data_off;
	struct snap_header h;
	int ret;

	for (size_t i = 0; i < v->n; i++) {
		const struct save_region *sr = &sl->sr[i];
		uint64_t words = 2 * sr->words + sr->nchunks;

		gm__snap_encode_region(sl->meta + i * SNAP_REGION_REC, &v->r[i], file_off, pos,
				       sr->ndef, sr->ndata);
		for (uint64_t w = 0; w < words; w++)
			put_le64((unsigned char *)&sr->defined[w], sr->defined[w]);
		pos += words * 8;
		file_off += v->r[i].size;
	}
	h = (struct snap_header){
	    .delta = sl->delta,
	    .nregions = (uint32_t)v->n,
	    .file_size = sl->file_size,
	    .meta_size = sl->meta_size,
	    .meta_csum = XXH3_64bits(sl->meta, sl->meta_len),
	    .base_id = sl->delta ? top_file(sl->base)->id : NULL,
	    .base_name = sl->base_name,
	};
	ret = gm__snap_encode_header(hdr, &h);
	if (ret)
		return ret;
	ret = gm__write_full(&io, sl->meta, sl->meta_len);
	io.off = 0;
	if (ret == 0)
		ret = gm__write_full(&io, hdr, SNAP_HDR_SIZE);
	return ret;
}

/* The file a save writes: a temporary name beside its path, so the rename is atomic. */
struct save_file {
	char *tmp;	/* NULL: none (any more) */
	int fd;		/* -1: closed */
	bool collected; /* the dirty bits were read and cleared */
};

static int save_file_create(const char *path, struct save_file *sf)
{
	sf->tmp = malloc(strlen(path) + sizeof(".tmp-XXXXXX"));
	if (sf->tmp == NULL)
		return -ENOMEM;
	strcpy(sf->tmp, path);
	strcat(sf->tmp, ".tmp-XXXXXX");
	sf->fd = mkostemp(sf->tmp, O_CLOEXEC);
	if (sf->fd < 0) {
		int ret = -errno;

		free(sf->tmp);
		sf->tmp = NULL;
		return ret;
	}
	return 0;
}

/*
 * The data writer: in a new temporary file beside @path, the extents of
 * the regions of @v (zero pages are holes), the metadata and header that
 * describe them, and the length the header promises.
 */
static int save_write(struct view_regions *v, struct save_layout *sl, const char *path,
		      const struct gm_snapshot_opts *opts, struct save_file *sf)
{
	struct chunk_buf cb = {0};
	struct progress pr;
	uint64_t pos = sl->data_off;
	int ret;

	(void)gm__progress_init(&pr, opts, sl->ram_size); /* @opts: gm_snapshot_save()'s own copy */
	ret = gm__chunk_buf_init(&cb);
	if (ret == 0)
		ret = save_file_create(path, sf);
	if (ret)
		goto out;
	/* Read-and-clear the dirty bits before reading any page (see the header). */
	ret = gm__view_collect_dirty(v, false);
	sf->collected = true;
	for (size_t i = 0; i < v->n && ret == 0; i++) {
		ret = save_region(v, i, sl->delta, sf->fd, pos, &sl->sr[i], &cb, &pr);
		pos += v->r[i].size;
	}
	if (ret == 0)
		ret = save_write_meta(v, sl, sf->fd);
	/* Trailing zero pages are a hole: set the length the header promises. */
	if (ret == 0 && ftruncate(sf->fd, (off_t)sl->file_size) < 0)
		ret = -errno;
out:
	gm__chunk_buf_free(&cb);
	return ret;
}

/* ---- commit ---- */

/* Open @path's directory, for the fsync that makes a rename in it durable. */
static int open_dir_of(const char *path, int *dirfd)
{
	char *dir = gm__path_beside(path, ".");

	if (dir == NULL)
		return -ENOMEM;
	*dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	return *dirfd < 0 ? -errno : 0;
}

/*
 * Finish @sf after the steps before returned @ret. On success make it the
 * file at @path, durably: fsync, close, open the directory, rename, fsync
 * of the directory. Every step that can fail comes before the rename but
 * the last, so any failure but that one leaves @path as it was: close and
 * remove the temporary file, and give the dirty bits it collected back to
 * @v (a failed save saved nothing). A failing fsync of the directory,
 * after the rename, is -EINPROGRESS: @path is the new file, but a crash may
 * still undo the rename; the bits are given back too (gm_snapshot_save()).
 * Returns @ret or the first failure here.
 */
static int save_commit(struct save_file *sf, const char *path, struct view_regions *v, int ret)
{
	int dirfd = -1;

	if (sf->fd >= 0) {
		if (ret == 0 && fsync(sf->fd) < 0)
			ret = -errno;
		if (close(sf->fd) < 0 && ret == 0)
			ret = -errno;
		sf->fd = -1;
	}
	if (ret == 0)
		ret = open_dir_of(path, &dirfd);
	if (ret == 0 && rename(sf->tmp, path) < 0)
		ret = -errno;
	if (ret == 0) {
		/* From here on nothing may fail but the fsync, which says so. */
		free(sf->tmp);
		sf->tmp = NULL;
		if (fsync(dirfd) < 0 && errno != EINVAL)
			ret = -EINPROGRESS;
	}
	if (dirfd >= 0)
		close(dirfd);
	if (sf->tmp) {
		unlink(sf->tmp);
		free(sf->tmp);
		sf->tmp = NULL;
	}
	if (ret && sf->collected)
		gm__view_return_dirty(v);
	return ret;
}

int gm_snapshot_save(const struct gm_memory *m, const char *path,
		     const struct gm_snapshot_opts *opts)
{
	struct save_file sf = {.fd = -1};
	struct gm_snapshot_opts o;
	struct save_layout sl;
	struct view_regions v;
	int ret;

	if (m == NULL || path == NULL || path[0] == 0)
		return -EINVAL;
	ret = GM_ABI_COPY_IN(&o, opts);
	if (ret)
		return ret;
	ret = gm__view_regions_get(m, &v);
	if (ret)
		return ret;
	ret = save_layout(&v, path, &o, &sl);
	if (ret == 0)
		ret = save_write(&v, &sl, path, &o, &sf);
	ret = save_commit(&sf, path, &v, ret);
	save_layout_free(&sl);
	gm__view_regions_free(&v);
	return ret;
}
