/*
 * save.c - full and incremental saves. Pages are read with relaxed loads
 * (the guest may run), zero pages are left as holes, and the file is
 * written under a temporary name, fsynced and renamed, so a crash or a
 * full disk never leaves something that looks like a valid snapshot.
 */
#include "snapshot-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

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

struct save_region {
	uint64_t npages, nchunks, words;
	uint64_t *defined, *data, *csum;
	uint64_t ndef, ndata;
};

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
				ret = pwrite_full(fd, cb->buf + run_start * SNAP_PAGE,
						  (size_t)((k - run_start) * SNAP_PAGE),
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
			ret = pwrite_full(fd, cb->buf + run_start * SNAP_PAGE,
					  (size_t)((k - run_start) * SNAP_PAGE),
					  file_off + run_page * SNAP_PAGE);
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

static int fsync_dir_of(const char *path)
{
	char *dir = gm__path_beside(path, ".");
	int fd, ret = 0;

	if (dir == NULL)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 && errno != EINVAL)
		ret = -errno;
	close(fd);
	return ret;
}

/* The file name part of @path. */
static const char *file_name(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

int gm_snapshot_save(const struct gm_memory *m, const char *path,
		     const struct gm_snapshot_opts *opts)
{
	struct gm_snapshot *base = NULL;
	struct view_regions v;
	struct save_region *sr = NULL;
	struct progress pr;
	struct chunk_buf cb = {0};
	unsigned char *hdr = NULL, *meta = NULL;
	uint64_t meta_size, tables_size = 0, data_off, file_size, file_off, pos;
	const char *base_name = NULL;
	char *tmp = NULL;
	bool delta = opts && opts->base;
	bool collected = false;
	struct snap_header h;
	size_t meta_len;
	int fd = -1, ret;

	if (m == NULL || path == NULL || path[0] == 0)
		return -EINVAL;
	ret = gm__view_regions_get(m, &v);
	if (ret)
		return ret;
	if (delta) {
		const struct snap_file *bf;

		base_name = file_name(opts->base);
		/* A delta saved under its base's name would replace the base it names. */
		if (strlen(base_name) >= 256 || base_name[0] == 0 ||
		    !strcmp(base_name, file_name(path))) {
			ret = -EINVAL;
			goto out;
		}
		ret = gm_snapshot_open(opts->base, GM_SNAPSHOT_OPEN_NOBASE, &base);
		if (ret)
			goto out;
		bf = top_file(base);
		ret = -ESTALE;
		if (bf->nregions != v.n)
			goto out;
		for (size_t i = 0; i < v.n; i++)
			if (bf->regions[i].gpa != v.r[i].gpa || bf->regions[i].size != v.r[i].size)
				goto out;
	}
	gm__progress_init(&pr, opts, 0);
	/* Layout: sizes of the tables, data offset, file size (all checked). */
	sr = calloc(v.n, sizeof(*sr));
	if (sr == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	file_size = 0;
	for (size_t i = 0; i < v.n; i++) {
		sr[i].npages = v.r[i].size / SNAP_PAGE;
		sr[i].nchunks = div_round_up(sr[i].npages, SNAP_CHUNK_PAGES);
		sr[i].words = bm_words(sr[i].npages);
		tables_size += (2 * sr[i].words + sr[i].nchunks) * 8;
		pr.total += v.r[i].size;
		file_size += v.r[i].size;
	}
	meta_size = (uint64_t)v.n * SNAP_REGION_REC + tables_size;
	ret = gm_align_up(meta_size, SNAP_PAGE, &meta_size);
	if (ret == 0 && meta_size > SNAP_MAX_META)
		ret = -EOVERFLOW;
	if (ret == 0)
		ret = gm_u64_to_size(meta_size, &meta_len);
	if (ret)
		goto out;
	data_off = SNAP_HDR_SIZE + meta_size;
	if (gm_add_overflow_u64(file_size, data_off, &file_size)) {
		ret = -EOVERFLOW;
		goto out;
	}
	meta = calloc(1, meta_len);
	hdr = calloc(1, SNAP_HDR_SIZE);
	if (meta == NULL || hdr == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	pos = (uint64_t)v.n * SNAP_REGION_REC;
	for (size_t i = 0; i < v.n; i++) {
		sr[i].defined = (uint64_t *)(void *)(meta + pos);
		sr[i].data = sr[i].defined + sr[i].words;
		sr[i].csum = sr[i].data + sr[i].words;
		pos += (2 * sr[i].words + sr[i].nchunks) * 8;
	}
	ret = gm__chunk_buf_init(&cb);
	if (ret)
		goto out;
	/* Temporary file beside @path, so the rename is atomic. */
	tmp = malloc(strlen(path) + sizeof(".tmp-XXXXXX"));
	if (tmp == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	strcpy(tmp, path);
	strcat(tmp, ".tmp-XXXXXX");
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		free(tmp);
		tmp = NULL;
		goto out;
	}
	/* Read-and-clear the dirty bits before reading any page (see the header). */
	ret = gm__view_collect_dirty(&v, false);
	collected = true;
	if (ret)
		goto out;
	pos = data_off;
	for (size_t i = 0; i < v.n; i++) {
		ret = save_region(&v, i, delta, fd, pos, &sr[i], &cb, &pr);
		if (ret)
			goto out;
		pos += v.r[i].size;
	}
	/* Metadata: region records, then the tables, converted to little endian. */
	pos = (uint64_t)v.n * SNAP_REGION_REC;
	file_off = data_off;
	for (size_t i = 0; i < v.n; i++) {
		uint64_t words = 2 * sr[i].words + sr[i].nchunks;

		gm__snap_encode_region(meta + i * SNAP_REGION_REC, &v.r[i], file_off, pos,
				       sr[i].ndef, sr[i].ndata);
		for (uint64_t w = 0; w < words; w++)
			put_le64((unsigned char *)&sr[i].defined[w], sr[i].defined[w]);
		pos += words * 8;
		file_off += v.r[i].size;
	}
	h = (struct snap_header){
	    .delta = delta,
	    .nregions = (uint32_t)v.n,
	    .file_size = file_size,
	    .meta_size = meta_size,
	    .meta_csum = XXH3_64bits(meta, meta_len),
	    .base_id = delta ? top_file(base)->id : NULL,
	    .base_name = base_name,
	};
	ret = gm__snap_encode_header(hdr, &h);
	if (ret)
		goto out;
	ret = pwrite_full(fd, meta, meta_len, SNAP_HDR_SIZE);
	if (ret == 0)
		ret = pwrite_full(fd, hdr, SNAP_HDR_SIZE, 0);
	/* Trailing zero pages are a hole: set the length the header promises. */
	if (ret == 0 && ftruncate(fd, (off_t)file_size) < 0)
		ret = -errno;
	if (ret == 0 && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	fd = -1;
	if (ret)
		goto out;
	if (rename(tmp, path) < 0) {
		ret = -errno;
		goto out;
	}
	free(tmp);
	tmp = NULL;
	ret = fsync_dir_of(path);
out:
	if (fd >= 0)
		close(fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	/* A failed save saved nothing: the collected pages are dirty again. */
	if (ret && collected)
		gm__view_return_dirty(&v);
	gm__chunk_buf_free(&cb);
	free(hdr);
	free(meta);
	free(sr);
	gm_snapshot_close(base);
	gm__view_regions_free(&v);
	return ret;
}
