/* SPDX-License-Identifier: MIT */
/*
 * format.c - the snapshot file's header and metadata (docs/snapshot-format.md):
 * how a save encodes them, and how an open decodes and checks them, with
 * their checksums, before anything else reads the file (invariants 1 and 2
 * of snapshot-internal.h).
 */
#include "snapshot-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const unsigned char snap_magic[8] = {'G', 'M', 'S', 'N', 'A', 'P', 0, 0x1a};

/* Header field offsets. */
enum {
	H_MAGIC = 0,
	H_VERSION = 8,
	H_HDR_SIZE = 12,
	H_PAGE_SIZE = 16,
	H_FLAGS = 20,
	H_NREGIONS = 24,
	H_CHUNK_PAGES = 28,
	H_FILE_SIZE = 32,
	H_META_OFF = 40,
	H_META_SIZE = 48,
	H_DATA_OFF = 56,
	H_CREATED = 64,
	H_ID = 72,
	H_BASE_ID = 88,
	H_BASE_NAME = 104,
	H_META_CSUM = 360,
	H_HDR_CSUM = 368,
	H_END = 376,
};

/* Region record field offsets (SNAP_REGION_REC bytes each). */
enum {
	R_GPA = 0,
	R_SIZE = 8,
	R_FILE_OFF = 16,
	R_DEFINED = 24,
	R_DATA = 32,
	R_FLAGS = 40,
	R_TABLES = 48,
};

void gm__snap_file_close(struct snap_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->meta);
	free(f->regions);
	f->fd = -1;
	f->meta = NULL;
	f->regions = NULL;
}

static uint64_t checksum_header(const unsigned char *hdr)
{
	unsigned char copy[SNAP_HDR_SIZE];

	memcpy(copy, hdr, SNAP_HDR_SIZE);
	memset(copy + H_HDR_CSUM, 0, 8);
	return XXH3_64bits(copy, SNAP_HDR_SIZE);
}

/*
 * Check and decode the metadata area @meta of @size bytes (already matched
 * against its checksum) for a header announcing @nregions regions whose
 * data starts at @data_off (invariants 1 and 2).
 */
static int snap_parse_meta(struct snap_file *f, unsigned char *meta, uint64_t size,
			   uint64_t data_off)
{
	uint64_t table_end, pos, file_pos = data_off;
	gm_gpa_t prev_end = 0;

	/* nregions <= SNAP_MAX_REGIONS: no overflow. */
	table_end = (uint64_t)f->nregions * SNAP_REGION_REC;
	if (table_end > size)
		return -EBADMSG;
	f->regions = calloc(f->nregions, sizeof(*f->regions));
	if (f->regions == NULL)
		return -ENOMEM;
	pos = table_end;
	for (uint32_t i = 0; i < f->nregions; i++) {
		const unsigned char *rec = meta + (size_t)i * SNAP_REGION_REC;
		struct snap_region *r = &f->regions[i];
		uint64_t words, tables, last;

		r->gpa = get_le64(rec + R_GPA);
		r->size = get_le64(rec + R_SIZE);
		r->file_offset = get_le64(rec + R_FILE_OFF);
		r->defined_pages = get_le64(rec + R_DEFINED);
		r->data_pages = get_le64(rec + R_DATA);
		r->flags = get_le32(rec + R_FLAGS);
		if (r->size == 0 || !gm_is_aligned(r->gpa, SNAP_PAGE) ||
		    !gm_is_aligned(r->size, SNAP_PAGE) || gm_range_last(r->gpa, r->size, &last) ||
		    (r->flags & ~GM_REGION_ALL_FLAGS) != 0 || get_le32(rec + 44) != 0 ||
		    get_le64(rec + 56) != 0)
			return -EBADMSG;
		/* Sorted, not overlapping (invariant 1). */
		if (i > 0 && r->gpa < prev_end)
			return -EBADMSG;
		prev_end = last + 1; /* last < 2^64 - 1 or this is the top region */
		if (last == UINT64_MAX && i + 1 != f->nregions)
			return -EBADMSG;
		if (r->file_offset != file_pos || gm_add_overflow_u64(file_pos, r->size, &file_pos))
			return -EBADMSG;
		r->npages = r->size / SNAP_PAGE;
		r->nchunks = div_round_up(r->npages, SNAP_CHUNK_PAGES);
		words = bm_words(r->npages);
		/* 2 bitmaps + chunk sums, all bounded by size <= SNAP_MAX_META below. */
		if (words > size / 8 || r->nchunks > size / 8)
			return -EBADMSG;
		tables = (2 * words + r->nchunks) * 8;
		if (get_le64(rec + R_TABLES) != pos || tables > size - pos)
			return -EBADMSG;
		r->defined = (const uint64_t *)(const void *)(meta + pos);
		r->data = r->defined + words;
		r->csum = r->data + words;
		pos += tables;
	}
	/* Padding to the page boundary, and nothing else, follows. */
	if (size - pos >= SNAP_PAGE || !gm__buf_is_zero(meta + pos, (size_t)(size - pos)))
		return -EBADMSG;
	if (file_pos != f->file_size)
		return -EBADMSG;
	/* Decode the tables in place to host order, then check invariant 2. */
	for (uint64_t *w = (uint64_t *)(void *)(meta + table_end); (unsigned char *)w < meta + pos;
	     w++)
		*w = get_le64((const unsigned char *)w);
	for (uint32_t i = 0; i < f->nregions; i++) {
		struct snap_region *r = &f->regions[i];
		uint64_t words = bm_words(r->npages), ndef = 0, ndata = 0;

		for (uint64_t w = 0; w < words; w++) {
			uint64_t mask = UINT64_MAX;

			if (w == words - 1 && (r->npages & 63) != 0)
				mask = ((uint64_t)1 << (r->npages & 63)) - 1;
			if ((r->defined[w] & ~mask) || (r->data[w] & ~mask) ||
			    (r->data[w] & ~r->defined[w]))
				return -EBADMSG;
			if (!(f->flags & SNAP_FLAG_DELTA) && r->defined[w] != mask)
				return -EBADMSG;
			ndef += (uint64_t)__builtin_popcountll(r->defined[w]);
			ndata += (uint64_t)__builtin_popcountll(r->data[w]);
		}
		if (ndef != r->defined_pages || ndata != r->data_pages)
			return -EBADMSG;
	}
	return 0;
}

int gm__snap_file_open(const char *path, struct snap_file *f)
{
	unsigned char hdr[SNAP_HDR_SIZE];
	uint64_t meta_off, meta_size, data_off;
	unsigned char *meta = NULL;
	struct snap_io io;
	struct stat st;
	size_t len;
	int ret;

	memset(f, 0, sizeof(*f));
	ret = gm__open_regular(path, O_RDONLY);
	if (ret < 0) {
		f->fd = -1;
		return ret;
	}
	f->fd = ret;
	if (fstat(f->fd, &st) < 0) {
		ret = -errno;
		goto err;
	}
	ret = -EBADMSG;
	if (!S_ISREG(st.st_mode) || st.st_size < (off_t)SNAP_HDR_SIZE)
		goto err;
	io = (struct snap_io){.fd = f->fd};
	ret = gm__read_full(&io, hdr, sizeof(hdr));
	if (ret)
		goto err;
	ret = -EBADMSG;
	if (memcmp(hdr + H_MAGIC, snap_magic, sizeof(snap_magic)) != 0 ||
	    get_le64(hdr + H_HDR_CSUM) != checksum_header(hdr))
		goto err;
	/* The header is what its writer wrote; now is it something we read? */
	ret = -ENOTSUP;
	if (get_le32(hdr + H_VERSION) != SNAP_VERSION || get_le32(hdr + H_PAGE_SIZE) != SNAP_PAGE ||
	    get_le32(hdr + H_CHUNK_PAGES) != SNAP_CHUNK_PAGES)
		goto err;
	ret = -EBADMSG;
	f->flags = get_le32(hdr + H_FLAGS);
	f->nregions = get_le32(hdr + H_NREGIONS);
	f->file_size = get_le64(hdr + H_FILE_SIZE);
	meta_off = get_le64(hdr + H_META_OFF);
	meta_size = get_le64(hdr + H_META_SIZE);
	data_off = get_le64(hdr + H_DATA_OFF);
	f->created_ns = get_le64(hdr + H_CREATED);
	memcpy(f->id, hdr + H_ID, 16);
	memcpy(f->base_id, hdr + H_BASE_ID, 16);
	memcpy(f->base_name, hdr + H_BASE_NAME, sizeof(f->base_name));
	if (get_le32(hdr + H_HDR_SIZE) != SNAP_HDR_SIZE || (f->flags & ~SNAP_FLAG_DELTA) ||
	    f->nregions == 0 || f->nregions > SNAP_MAX_REGIONS ||
	    f->file_size != (uint64_t)st.st_size || meta_off != SNAP_HDR_SIZE || meta_size == 0 ||
	    meta_size > SNAP_MAX_META || !gm_is_aligned(meta_size, SNAP_PAGE) ||
	    data_off != meta_off + meta_size || data_off > f->file_size ||
	    !gm__buf_is_zero(hdr + H_END, SNAP_HDR_SIZE - H_END))
		goto err;
	/* The base name is a NUL-terminated plain file name, present iff a delta. */
	if (memchr(f->base_name, 0, sizeof(f->base_name)) == NULL ||
	    strchr(f->base_name, '/') != NULL)
		goto err;
	if (f->flags & SNAP_FLAG_DELTA) {
		if (f->base_name[0] == 0 || !strcmp(f->base_name, ".") ||
		    !strcmp(f->base_name, ".."))
			goto err;
	} else if (f->base_name[0] != 0 || !gm__buf_is_zero(f->base_id, 16) ||
		   !gm__buf_is_zero(hdr + H_BASE_NAME, 256)) {
		goto err;
	}
	ret = gm_u64_to_size(meta_size, &len);
	if (ret)
		goto err;
	meta = malloc(len);
	if (meta == NULL) {
		ret = -ENOMEM;
		goto err;
	}
	io.off = meta_off;
	ret = gm__read_full(&io, meta, len);
	if (ret)
		goto err;
	if (XXH3_64bits(meta, len) != get_le64(hdr + H_META_CSUM)) {
		ret = -EBADMSG;
		goto err;
	}
	f->meta = (uint64_t *)(void *)meta;
	ret = snap_parse_meta(f, meta, meta_size, data_off);
	if (ret)
		goto err;
	return 0;
err:
	if (f->meta == NULL)
		free(meta);
	gm__snap_file_close(f);
	return ret;
}

int gm__snap_encode_header(unsigned char *hdr, const struct snap_header *h)
{
	uint64_t data_off = SNAP_HDR_SIZE + h->meta_size;
	struct timespec now;

	memcpy(hdr + H_MAGIC, snap_magic, sizeof(snap_magic));
	put_le32(hdr + H_VERSION, SNAP_VERSION);
	put_le32(hdr + H_HDR_SIZE, SNAP_HDR_SIZE);
	put_le32(hdr + H_PAGE_SIZE, SNAP_PAGE);
	put_le32(hdr + H_FLAGS, h->delta ? SNAP_FLAG_DELTA : 0);
	put_le32(hdr + H_NREGIONS, h->nregions);
	put_le32(hdr + H_CHUNK_PAGES, SNAP_CHUNK_PAGES);
	put_le64(hdr + H_FILE_SIZE, h->file_size);
	put_le64(hdr + H_META_OFF, SNAP_HDR_SIZE);
	put_le64(hdr + H_META_SIZE, h->meta_size);
	put_le64(hdr + H_DATA_OFF, data_off);
	clock_gettime(CLOCK_REALTIME, &now);
	put_le64(hdr + H_CREATED, (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
	if (getrandom(hdr + H_ID, 16, 0) != 16)
		return -errno;
	if (h->delta) {
		memcpy(hdr + H_BASE_ID, h->base_id, 16);
		memcpy(hdr + H_BASE_NAME, h->base_name, strlen(h->base_name));
	}
	put_le64(hdr + H_META_CSUM, h->meta_csum);
	put_le64(hdr + H_HDR_CSUM, checksum_header(hdr));
	return 0;
}

void gm__snap_encode_region(unsigned char *rec, const struct gm_region_info *r, uint64_t file_off,
			    uint64_t tables_off, uint64_t ndef, uint64_t ndata)
{
	put_le64(rec + R_GPA, r->gpa);
	put_le64(rec + R_SIZE, r->size);
	put_le64(rec + R_FILE_OFF, file_off);
	put_le64(rec + R_DEFINED, ndef);
	put_le64(rec + R_DATA, ndata);
	put_le32(rec + R_FLAGS, r->flags & GM_REGION_ALL_FLAGS);
	put_le64(rec + R_TABLES, tables_off);
}
