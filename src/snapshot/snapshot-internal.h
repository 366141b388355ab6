/* SPDX-License-Identifier: MIT */
/*
 * snapshot-internal.h - what the files of the snapshot layer share: the
 * format's constants, the state of an open snapshot, and the hidden
 * helpers one file provides to another. Not exported from the shared
 * library; tests reach gm__snapshot_invariants_ok() through it.
 *
 * The layer writes snapshot files of guest memory, restores them in three
 * modes, and runs the pre-copy migration stream. The file format is
 * docs/snapshot-format.md; the constants and offsets below are its fields.
 * A file is a header page, a metadata area (region table, two page bitmaps
 * and chunk checksums per region) and one extent per region, each at the
 * file offset where a MAP_PRIVATE mapping of the region starts. Data is
 * checked per chunk of 512 pages (2 MiB): the unit of checksum, of reads
 * during restore, and of lazy fills.
 *
 *   io.c       opening regular files, full reads and writes, guest copies, zero tests, progress
 *   format.c   header and metadata: encoding, checksums, validation
 *   view.c     the RAM regions of a gm_memory and their dirty bitmaps
 *   open.c     opening a chain of files, describing it, closing it
 *   read.c     a chunk's state in the chain; verify and read
 *   restore.c  restore modes 1 (copy) and 2 (private mapping)
 *   lazy.c     restore mode 3 (userfaultfd)
 *   save.c     full and incremental saves
 *   stream.c   the pre-copy migration stream
 *   space.c    the same operations on a gm_space
 *
 * Invariants of an open snapshot (struct gm_snapshot / struct snap_file),
 * checked by gm__snapshot_invariants_ok() (open.c):
 *  1. Every field of an opened file has been checked against the header and
 *     metadata checksums and against the rules of snap_parse_meta()
 *     (format.c) before any other code reads it; nothing later re-reads the
 *     metadata from disk.
 *  2. A file's data bitmap is a subset of its defined bitmap; a full save
 *     defines every page; bits past a region's last page are 0.
 *  3. The files of a chain have identical region tables (gpa, size), and
 *     each delta's base_id is the id of the file below it (snap->files[0]
 *     is the full save, snap->files[n - 1] the newest).
 *  4. A lazily restored chunk goes 0 (missing) -> 1 (being filled, by
 *     exactly one thread, the one whose compare-and-swap won) -> 2 (filled).
 *     No page of a chunk in state 0 has been placed by UFFDIO_COPY/ZEROPAGE.
 *  5. Every lazy area holds a reference on its mapping, so the registered
 *     range stays mapped until gm_snapshot_close() has filled and
 *     unregistered it.
 *  6. Once lazy_dead is set (lazy.c: lazy_abandon()), every lazy area is
 *     unregistered, no chunk is in state 0, and no area is added: no
 *     thread waits on a fault that nobody will serve. (Not checked by
 *     gm__snapshot_invariants_ok(): the lazy failure tests check it.)
 */
#ifndef GUESTMEM_SNAPSHOT_INTERNAL_H
#define GUESTMEM_SNAPSHOT_INTERNAL_H

#include "../abi-internal.h"

#include <guestmem/memory.h>
#include <guestmem/snapshot.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xxhash.h>

/* ---- format constants (docs/snapshot-format.md) ---- */

#define SNAP_VERSION	 1u
#define SNAP_HDR_SIZE	 4096u
#define SNAP_PAGE	 4096u
#define SNAP_CHUNK_PAGES 512u
#define SNAP_CHUNK_BYTES ((size_t)SNAP_CHUNK_PAGES * SNAP_PAGE)
#define SNAP_MAX_REGIONS 65536u
#define SNAP_MAX_META	 ((uint64_t)1 << 30)
#define SNAP_MAX_CHAIN	 64u
#define SNAP_REGION_REC	 64u
#define SNAP_FLAG_DELTA	 1u

static inline void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t get_le32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline bool bit_test(const uint64_t *bm, uint64_t i)
{
	return (bm[i >> 6] >> (i & 63)) & 1;
}

static inline void bit_set(uint64_t *bm, uint64_t i)
{
	bm[i >> 6] |= (uint64_t)1 << (i & 63);
}

static inline uint64_t div_round_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

/* Bitmap words of a region of @npages pages. */
static inline uint64_t bm_words(uint64_t npages)
{
	return div_round_up(npages, 64);
}

/* Pages in chunk @c of a region of @npages pages. */
static inline uint64_t chunk_pages(uint64_t npages, uint64_t c)
{
	uint64_t first = c * SNAP_CHUNK_PAGES;

	return npages - first < SNAP_CHUNK_PAGES ? npages - first : SNAP_CHUNK_PAGES;
}

/* ---- io.c ---- */

/*
 * Open @path (open(2) @flags, e.g. O_RDONLY) if it is a regular file, and
 * without blocking or side effects if it is not (a FIFO, a device, a
 * directory, a socket): every path the layer opens comes from a caller or
 * from a file's header. The fd is close-on-exec and blocking.
 * Returns the fd, -EINVAL (not a regular file), or -errno of open/fstat/fcntl.
 */
int gm__open_regular(const char *path, int flags);

/* A struct snap_io offset that says the fd is a stream (a socket, a pipe), not a file. */
#define SNAP_STREAM UINT64_MAX

/*
 * Where gm__read_full() and gm__write_full() move bytes: @fd at file offset
 * @off with pread()/pwrite() (@off advances by what moved), or, with
 * SNAP_STREAM, at the fd's own position: read(), and send(MSG_NOSIGNAL)
 * (a peer that went away is -EPIPE, not SIGPIPE) until the fd turns out
 * not to be a socket, then write().
 */
struct snap_io {
	int fd;
	uint64_t off;
	bool not_socket; /* learnt at the first ENOTSOCK */
	uint64_t bytes;	 /* every byte moved, also those of a call that then failed */
};

/*
 * Move exactly @len bytes, retrying on EINTR and on short transfers.
 * Returns 0 or -errno of the call; a file that ends first is -EBADMSG (it
 * is short), a stream that ends first -EPIPE (it was cut), a write that
 * moves nothing -EIO.
 */
int gm__read_full(struct snap_io *io, void *buf, size_t len);
int gm__write_full(struct snap_io *io, const void *buf, size_t len);

/*
 * Copy guest bytes with relaxed word loads: other threads may store to the
 * page meanwhile (a live save or migration), and word-sized atomic loads
 * make that a defined race. @src and @len are word aligned (whole pages).
 */
void gm__copy_from_guest(void *dst, const void *src, size_t len);

bool gm__buf_is_zero(const void *p, size_t len);

/*
 * The end of the run of pages starting at page @p of @buf (@n pages) that
 * are all zero or all not zero; *@zero says which.
 */
uint64_t gm__zero_run(const unsigned char *buf, uint64_t p, uint64_t n, bool *zero);

/* Calls @fn every 8 MiB of progress and at the end; -ECANCELED on request. */
struct progress {
	gm_progress_fn fn;
	void *opaque;
	uint64_t total, done, last;
};

/*
 * A progress of @total bytes reported to @opts' callback (@opts may be
 * NULL: no callback). @opts is the caller's sized struct (abi.h): returns
 * 0, or -EINVAL/-E2BIG for its sz, before anything else is done.
 */
int gm__progress_init(struct progress *p, const struct gm_snapshot_opts *opts, uint64_t total);
int gm__progress_add(struct progress *p, uint64_t n);

/* ---- format.c: an opened snapshot file ---- */

struct snap_region {
	gm_gpa_t gpa;
	uint64_t size, npages, nchunks, file_offset;
	uint64_t defined_pages, data_pages;
	unsigned flags;
	const uint64_t *defined, *data, *csum; /* point into the file's meta copy */
};

struct snap_file {
	int fd;
	unsigned flags;
	uint32_t nregions;
	uint64_t file_size, created_ns;
	uint8_t id[16], base_id[16];
	char base_name[256];
	uint64_t *meta; /* the metadata area, host-endian words after parsing */
	struct snap_region *regions;
};

/* Open one file and check everything but its page data (invariant 1). */
int gm__snap_file_open(const char *path, struct snap_file *f);
void gm__snap_file_close(struct snap_file *f);

/* What a save writes into a header, besides what the format fixes. */
struct snap_header {
	bool delta;
	uint32_t nregions;
	uint64_t file_size, meta_size, meta_csum;
	const uint8_t *base_id; /* delta only */
	const char *base_name;	/* delta only: a file name shorter than 256 bytes */
};

/*
 * Encode @h into the zeroed header page @hdr, with a new random id, the
 * creation time and the header checksum. Returns 0 or -errno of getrandom.
 */
int gm__snap_encode_header(unsigned char *hdr, const struct snap_header *h);

/*
 * Encode region record @rec (zeroed) of guest range @r, its extent at
 * @file_off, its tables at @tables_off of the metadata area.
 */
void gm__snap_encode_region(unsigned char *rec, const struct gm_region_info *r, uint64_t file_off,
			    uint64_t tables_off, uint64_t ndef, uint64_t ndata);

/* ---- view.c: the regions of a view and their dirty bitmaps ---- */

struct view_regions {
	size_t n;
	struct gm_region_info *r;
	/* One collected bitmap per distinct gm_dirty (NULL bits: not collected). */
	size_t ndirty;
	struct {
		struct gm_dirty *d;
		uint64_t *bits;
		size_t nwords;
	} * dirty;
	size_t *dirty_of; /* per region: index into @dirty, or SIZE_MAX */
};

/*
 * Read the RAM regions of @m: ROM windows are left out (the VMM provides
 * them, they are not guest state), and neighbours that differ only in
 * protection (a space splits a window that way) are merged back into one,
 * without GM_REGION_READONLY: the saved layout is the RAM, not its guest
 * protection. Each must be page aligned and fit this process.
 */
int gm__view_regions_get(const struct gm_memory *m, struct view_regions *v);
void gm__view_regions_free(struct view_regions *v);

/*
 * Read and clear every dirty bitmap of @v into its collected bits:
 * replacing what an earlier collect found, or with @accumulate adding to it.
 */
int gm__view_collect_dirty(struct view_regions *v, bool accumulate);

/* Give collected bits back (an operation failed: the pages are still unsaved). */
void gm__view_return_dirty(struct view_regions *v);

/* Whether page @page of region @i was dirty at the last collect (no bitmap: yes). */
bool gm__view_page_dirty(const struct view_regions *v, size_t i, uint64_t page);

/* ---- open.c: an open chain ---- */

/* A chunk's bytes and a checksum state: the scratch of every chunk reader (read.c). */
struct chunk_buf {
	unsigned char *buf; /* SNAP_CHUNK_BYTES, page aligned */
	XXH3_state_t *state;
};

struct lazy_area {
	unsigned char *host;
	uint32_t region;
	uint64_t size;
	unsigned char *state; /* per chunk, invariant 4; atomic accesses only */
	struct gm_mapping *mapping;
};

struct gm_snapshot {
	unsigned nfiles;
	struct snap_file *files; /* invariant 3 */
	bool alone;		 /* a delta opened with GM_SNAPSHOT_OPEN_NOBASE */
	/* Lazy restore. @lock guards @areas/@nareas; the handler reads them under it. */
	pthread_mutex_t lock;
	int uffd, stopfd;
	bool thread_started;
	pthread_t thread;
	struct lazy_area **areas; /* append-only; each area stays where it is */
	size_t nareas;
	uint64_t lazy_errors;  /* atomic */
	struct chunk_buf hbuf; /* the handler's, allocated before it starts */
	int lazy_dead;	       /* atomic: 0, or the -errno that stopped lazy filling */
};

static inline const struct snap_file *top_file(const struct gm_snapshot *s)
{
	return &s->files[s->nfiles - 1];
}

/* @dir_of's directory joined with @name, in a new string (NULL: no memory). */
char *gm__path_beside(const char *dir_of, const char *name);

/* Bytes of guest RAM the chain restores (the sum of its region sizes). */
uint64_t gm__snapshot_ram_size(const struct gm_snapshot *s);

/* Checks the numbered invariants above (2 to 5). */
bool gm__snapshot_invariants_ok(struct gm_snapshot *s);

/* ---- read.c: chunks of the chain ---- */

int gm__chunk_buf_init(struct chunk_buf *cb);
void gm__chunk_buf_free(struct chunk_buf *cb);

/*
 * Apply file @f's pages of chunk @c of region @ri to @dst (the chunk's
 * bytes): defined pages with data are read from the file, defined pages
 * without data become zero, undefined pages are left alone. The data read
 * is checked against the chunk's checksum. @state is scratch; @read_bytes
 * (may be NULL) grows by the bytes read.
 * Returns 0, -EBADMSG, or errno of pread.
 */
int gm__apply_file_chunk(const struct snap_file *f, uint32_t ri, uint64_t c, unsigned char *dst,
			 XXH3_state_t *state, uint64_t *read_bytes);

/* Whether chunk @c of region @ri is all zero in the chain's final state. */
bool gm__chunk_is_zero(const struct gm_snapshot *s, uint32_t ri, uint64_t c);

/* The chain's final state of chunk @c of region @ri into @dst. */
int gm__resolve_chunk(const struct gm_snapshot *s, uint32_t ri, uint64_t c, unsigned char *dst,
		      XXH3_state_t *state);

/* ---- restore.c ---- */

/*
 * Whether [@gpa, @gpa + @size) lies in RAM of @m that a restore may write:
 * -EFAULT where a byte is not backed, -EACCES where it is a ROM or its
 * host mapping is read-only. Guest protection (GM_REGION_READONLY) does
 * not matter: restoring memory is not a guest write.
 */
int gm__check_restorable(const struct gm_memory *m, gm_gpa_t gpa, uint64_t size);

/*
 * Write @len bytes at @gpa of @m, checked by gm__check_restorable(),
 * through host pointers: copies @buf, or zeroes when @buf is NULL (dropping
 * whole pages of private anonymous memory, which then read as zero and
 * cost nothing). Marks the pages dirty where tracking is on.
 */
int gm__restore_bytes(const struct gm_memory *m, gm_gpa_t gpa, const unsigned char *buf,
		      size_t len);

/* ---- lazy.c ---- */

/* Register @map, the new mapping of region @ri, for lazy filling (invariant 5). */
int gm__lazy_register(struct gm_snapshot *s, uint32_t ri, struct gm_mapping *map);

/* Fill what is left, stop the handler, unregister every area. For gm_snapshot_close(). */
void gm__lazy_stop(struct gm_snapshot *s);

#endif /* GUESTMEM_SNAPSHOT_INTERNAL_H */
