/* SPDX-License-Identifier: MIT */
/*
 * guestmem/snapshot.h - saving guest memory to files, restoring it, and a
 * pre-copy migration stream.
 *
 * The top layer. It works on guest memory views (memory.h) and their dirty
 * bitmaps (dirty.h), so it serves any VMM: one that keeps a gm_space passes
 * the space's current view; one that only builds views passes those.
 *
 * Files (format in docs/snapshot-format.md): a checksummed header and
 * layout, then one page-aligned extent per region in guest-address order,
 * each mappable directly. A full save stores every page, zero pages as
 * holes (the file is sparse); an incremental save stores only the pages
 * dirtied since the previous save and names that save as its base. A file
 * is written under a temporary name, fsync()ed and renamed over @path, so a
 * crash or a full disk never leaves a file that looks valid and never
 * damages the previous one.
 *
 * Restore, from a base and its chain of deltas: (1) copy into existing
 * memory, (2) "instant": map the file MAP_PRIVATE as the region's backing
 * (copy-on-write, nothing is read until touched), (3) lazy: anonymous
 * memory registered with userfaultfd, filled by a handler thread from the
 * file on first touch, 2 MiB around the touched page at a time.
 *
 * Every number read from a file or a stream is treated as hostile; a
 * truncated, corrupted or forged file is rejected with -EBADMSG before any
 * guest byte changes (data checksums are checked as pages are restored:
 * see gm_snapshot_restore()).
 *
 * Errors common to this header: -EBADMSG (not a snapshot, or a checksum,
 * size or layout check failed), -ENOTSUP (a valid file of a version or page
 * size this library does not read), -ECANCELED (the progress callback asked
 * to stop), and errno values from the system calls named.
 *
 * Options, infos and statistics are sized structs (abi.h): make them with
 * GM_OPTS(). Every function that takes one returns -EINVAL for an sz below
 * sizeof(size_t) and, for options, -E2BIG for an sz larger than this
 * library's struct with a non-zero byte past it, before doing anything
 * else; options past the caller's sz take their defaults, and an info or
 * statistics struct gets at most sz bytes, sz then set to the number
 * written.
 */
#ifndef GUESTMEM_SNAPSHOT_H
#define GUESTMEM_SNAPSHOT_H

#include <guestmem/memory.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gm_snapshot;

/* gm_progress_fn, the progress callback of long operations, is in mapping.h. */

/* Options of gm_snapshot_save() and the restore functions. NULL = all defaults (abi.h). */
struct gm_snapshot_opts {
	size_t sz;		 /* sizeof(struct gm_snapshot_opts): GM_OPTS(), abi.h */
	gm_progress_fn progress; /* may be NULL */
	void *opaque;		 /* passed to @progress */
	/*
	 * gm_snapshot_save(): NULL for a full save, or the path of the
	 * previous save (full or delta) for an incremental one. The delta
	 * records the base's identity and file name; the base must stay in
	 * the same directory under that name.
	 */
	const char *base;
};

/*
 * Save the RAM of @m to @path.
 *
 * Regions flagged GM_REGION_ROM are left out (the VMM provides ROMs; they
 * are not guest state), and neighbouring regions that continue each other
 * in the guest, in one mapping and in one dirty bitmap (a window a space
 * split by guest protection) are saved as one region: a saved layout is
 * the RAM, whatever its guest protection. Every saved region must be page
 * aligned (gpa and size). A full save
 * (@opts->base NULL) stores every page; an incremental one stores the pages
 * whose dirty bit is set (regions without a dirty bitmap are stored in
 * full) and needs the base's layout to equal @m's. Either way the dirty
 * bitmaps of @m's regions are read and cleared first (gm_dirty_collect()),
 * so the next incremental save holds what was written after this one
 * started: enable tracking (gm_dirty_set_enabled()) before the first save,
 * and merge a hypervisor's log into the bitmaps before each save.
 *
 * Memory may change while it is saved (each page is copied, checked and
 * written from the copy); for a consistent image pause the writers.
 * Progress counts guest bytes scanned.
 *
 * Written to a temporary file in @path's directory, fsync()ed, renamed to
 * @path, and the directory fsync()ed; every step that can fail comes
 * before the rename except that last fsync. What the caller can rely on:
 *  - 0: @path is the new file, durably; the dirty bits read are consumed.
 *  - -EINPROGRESS: only the directory's fsync() failed, after the rename:
 *    @path is the new, complete file, but a crash may still bring back what
 *    was there before. The dirty bits read are given back, as on any error,
 *    so the next save (full, or incremental against @path) loses nothing.
 *  - any other error: nothing changed: a file already at @path is left
 *    byte for byte, no temporary file is left, and the dirty bits read are
 *    given back (merged into the bitmaps), so a retry finds those pages
 *    still dirty.
 * Returns 0, -EINPROGRESS, or -EINVAL (@m or @path NULL, an unaligned region, an empty
 * view, a base whose file name is @path's, a base that is not a regular
 * file: see gm_snapshot_open()), -EBADMSG/-ENOTSUP (the base), -ESTALE (the base's
 * layout differs from @m's), -EOVERFLOW, -ENOMEM, -ECANCELED, -ENOSPC, -EFBIG, -EIO and other errno
 * from open/write/fsync/rename. Thread-safety: concurrent saves of views sharing dirty bitmaps
 * split the dirty pages between them; do not do that.
 */
GM_API int gm_snapshot_save(const struct gm_memory *m, const char *path,
			    const struct gm_snapshot_opts *opts);

/* Flags of gm_snapshot_open(). */
#define GM_SNAPSHOT_OPEN_NOBASE (1u << 0) /* open a delta alone: info and verify only */

/*
 * Open and check the snapshot at @path: header, layout and page tables are
 * verified (checksums, sizes, the file's length), not the page data. A
 * delta opens its base (by the file name it records, in the delta's
 * directory, recursively up to 64 files) and checks that each base is the
 * one the delta was made from, unless GM_SNAPSHOT_OPEN_NOBASE.
 * Only regular files are opened: @path or a base that is a directory, a
 * FIFO, a device or a socket (after symbolic links) is refused with
 * -EINVAL, at once and without side effects (a FIFO with no writer is not
 * waited on, a device is not acted on).
 * Returns 0 and *@out (free with gm_snapshot_close()), or -EINVAL (NULL
 * argument, unknown flag, not a regular file), -EBADMSG, -ENOTSUP, -ESTALE
 * (a base is not the file the delta was made from, or the chain is longer
 * than 64), -ENOMEM, errno from open/read (-ENOENT: @path or a base is
 * missing).
 * The object is used by one thread at a time, except that lazily restored
 * memory may be touched from any thread.
 */
GM_API int gm_snapshot_open(const char *path, unsigned flags, struct gm_snapshot **out);

/*
 * Close @s. If memory was restored lazily from it, the handler thread is
 * stopped and every page not yet filled is filled (so the memory stays
 * correct after the file is gone), with the buffer allocated for the
 * handler: closing allocates nothing. A chunk that cannot be read, or
 * whose pages the kernel refuses to place, then reads as zero (as in
 * gm_snapshot_map_region()), and nobody can be told: call
 * gm_snapshot_lazy_finish() first to learn of such errors. NULL is ignored.
 */
GM_API void gm_snapshot_close(struct gm_snapshot *s);

/* gm_snapshot_info.flags */
#define GM_SNAPSHOT_DELTA                                                      \
	(1u << 0) /* an incremental save: pages absent here come from the base \
		   */

/* What gm_snapshot_describe() reports, about the newest file of the chain. */
struct gm_snapshot_info {
	size_t sz;		/* set by the caller (GM_OPTS), then to the bytes filled: abi.h */
	uint32_t version;	/* format version */
	uint32_t page_size;	/* 4096 */
	uint32_t nregions;	/* RAM regions */
	unsigned flags;		/* GM_SNAPSHOT_DELTA */
	unsigned chain_length;	/* files opened: 1 for a full save or a delta opened alone */
	uint8_t id[16];		/* random identity of this save */
	uint8_t base_id[16];	/* the base's identity (zero for a full save) */
	char base_name[256];	/* the base's file name (empty for a full save) */
	uint64_t file_size;	/* bytes, holes included */
	uint64_t ram_size;	/* sum of region sizes */
	uint64_t defined_pages; /* pages this file gives a value (all of them in a full save) */
	uint64_t data_pages;	/* of those, pages with stored data (not zero) */
	uint64_t created_ns;	/* CLOCK_REALTIME at save, nanoseconds */
};

/* Fill *@out. Returns 0 or -EINVAL (NULL). */
GM_API int gm_snapshot_describe(const struct gm_snapshot *s, struct gm_snapshot_info *out);

/* One region of a snapshot, as gm_snapshot_region() reports it. */
struct gm_snapshot_region {
	size_t sz; /* set by the caller (GM_OPTS), then to the bytes filled: abi.h */
	gm_gpa_t gpa;
	uint64_t size;
	unsigned flags;		/* GM_REGION_* of the saved region */
	uint64_t file_offset;	/* of the region's first page in the newest file */
	uint64_t defined_pages; /* in the newest file */
	uint64_t data_pages;	/* in the newest file */
};

/* Describe region @index. Returns 0, -EINVAL (NULL), -ENOENT (@index too big). */
GM_API int gm_snapshot_region(const struct gm_snapshot *s, uint32_t index,
			      struct gm_snapshot_region *out);

/*
 * Read every stored page of every file in the chain and check the data
 * checksums. Progress counts stored bytes read.
 * Returns 0, -EBADMSG (with the first damaged region and guest address in
 * *@bad_gpa when @bad_gpa is not NULL), -ECANCELED, -EIO, -ENOMEM, -EINVAL.
 */
GM_API int gm_snapshot_verify(struct gm_snapshot *s, const struct gm_snapshot_opts *opts,
			      gm_gpa_t *bad_gpa);

/*
 * Copy @len bytes of the saved guest memory at @gpa (the state of the
 * newest file in the chain) into @buf, checking the data checksums of the
 * 2 MiB chunks read. For tools (gmsnap diff) and tests.
 * Returns 0, -EFAULT (the range is not inside one saved region), -EINVAL
 * (NULL, or a delta opened alone), -EBADMSG, -EIO, -ENOMEM.
 */
GM_API int gm_snapshot_read(struct gm_snapshot *s, gm_gpa_t gpa, void *buf, size_t len);

/*
 * Restore mode 1: copy the saved state into the existing memory @m. Each
 * saved region must lie in RAM of @m (not a ROM, not a read-only host
 * mapping; guest protection does not matter). Pages are written through
 * host pointers and marked dirty where tracking is on; zero pages of
 * private anonymous memory are dropped with madvise(MADV_DONTNEED).
 * Chunks are checked against their checksums before they are copied; a
 * damaged chunk stops the restore with -EBADMSG and leaves the earlier
 * chunks restored (call gm_snapshot_verify() first for all-or-nothing).
 * Progress counts guest bytes restored.
 * Returns 0, -EINVAL (NULL, a delta opened alone), -EFAULT (a saved region
 * not backed by @m), -EACCES (read-only there), -EBADMSG, -ECANCELED,
 * -EIO, -ENOMEM.
 */
GM_API int gm_snapshot_restore(struct gm_snapshot *s, const struct gm_memory *m,
			       const struct gm_snapshot_opts *opts);

/* How gm_snapshot_map_region() / gm_snapshot_restore_new() back a region. */
enum gm_restore_mode {
	GM_RESTORE_COPY = 0,	/* fresh anonymous memory, filled now */
	GM_RESTORE_PRIVATE = 1, /* MAP_PRIVATE mapping of the file; deltas copied over it */
	GM_RESTORE_LAZY = 2,	/* anonymous memory filled on first touch (userfaultfd) */
};

/*
 * A new mapping holding the saved state of region @index, for the caller
 * to place at the region's guest address (gm_memory_new(), or adding RAM
 * to a space). GM_RESTORE_PRIVATE maps the base file's extent privately
 * (2 MiB chunks holding no data are anonymous memory instead, so reading
 * them fills no page cache) and copies the deltas' pages over it (so the
 * base file must not change
 * while mapped, and its data checksums are not checked: run
 * gm_snapshot_verify() first if the file is not trusted). GM_RESTORE_LAZY
 * starts, on first use, one handler thread per snapshot that fills 2 MiB
 * chunks on first touch after checking their checksums; a damaged chunk
 * is filled with zeros and counted (gm_snapshot_lazy_errors()); @s must
 * outlive the mapping's use, or gm_snapshot_lazy_finish() be called.
 * Everything the handler needs is allocated before this returns 0. Should
 * lazy filling later fail past serving a fault (the handler cannot wait
 * for faults, or the kernel refuses to place a page), it stops for all of
 * @s, and no thread is left waiting: every lazily restored range of @s is
 * unregistered from userfaultfd, which wakes the threads blocked on a
 * fault there; from then on pages already filled keep their data and the
 * others read as zero (plain anonymous memory), each such chunk counts in
 * gm_snapshot_lazy_errors(), gm_snapshot_lazy_finish() returns the
 * failure, and a new GM_RESTORE_LAZY from @s fails with it.
 * Returns 0 and *@out holding one reference, or -EINVAL (NULL, bad mode,
 * a delta opened alone), -ENOENT (@index), -EOVERFLOW (the region does not
 * fit this process), -ENOSYS/-EPERM (userfaultfd unavailable: see
 * gm_snapshot_lazy_supported()), -EBADMSG, -EIO, -ENOMEM, errno of mmap.
 */
GM_API int gm_snapshot_map_region(struct gm_snapshot *s, uint32_t index, enum gm_restore_mode mode,
				  struct gm_mapping **out);

/*
 * Build a new view with the saved layout, each region backed as
 * gm_snapshot_map_region() does with @mode (region flags as saved, no
 * dirty bitmaps). Progress (copy mode only) counts guest bytes restored.
 * Returns 0 and *@out holding one reference, or the errors of
 * gm_snapshot_map_region() and gm_memory_new(), -ECANCELED.
 */
GM_API int gm_snapshot_restore_new(struct gm_snapshot *s, enum gm_restore_mode mode,
				   const struct gm_snapshot_opts *opts, struct gm_memory **out);

/*
 * Whether lazy restore can work in this process: 0, or the reason it
 * cannot: -ENOSYS (no userfaultfd in this kernel), -EPERM (not permitted:
 * /proc/sys/vm/unprivileged_userfaultfd is 0 and /dev/userfaultfd is not
 * accessible), or another errno of userfaultfd(2)/UFFDIO_API.
 */
GM_API int gm_snapshot_lazy_supported(void);

/*
 * Fill, now, every page of lazily restored regions of @s that has not been
 * touched yet. Safe while other threads touch the memory. Progress counts
 * guest bytes filled. Returns 0, -ECANCELED, -EBADMSG (a damaged chunk was
 * found, filled with zeros), -EIO, -ENOMEM, or the error that stopped lazy
 * filling (gm_snapshot_map_region(): the pages not filled read as zero).
 */
GM_API int gm_snapshot_lazy_finish(struct gm_snapshot *s, const struct gm_snapshot_opts *opts);

/* Chunks of lazily restored memory found damaged and filled with zeros. */
GM_API uint64_t gm_snapshot_lazy_errors(const struct gm_snapshot *s);

/* Options of the migration stream. NULL = all defaults (abi.h). */
struct gm_migrate_opts {
	size_t sz;		 /* sizeof(struct gm_migrate_opts): GM_OPTS(), abi.h */
	gm_progress_fn progress; /* send: payload bytes of the current round; may be NULL */
	void *opaque;
	/* send: rounds after the first full one before the final round (default 0 = 8). */
	unsigned max_rounds;
	/* send: go to the final round once a round finds this few dirty pages (0 = 64). */
	uint64_t stop_pages;
	/*
	 * send: called before the final round, when the writers must stop
	 * (pause the vCPUs); a non-zero return aborts with -ECANCELED.
	 * May be NULL when nothing writes.
	 */
	int (*before_final)(void *opaque);
	/*
	 * send: called before every read of the dirty bitmaps, to merge a
	 * hypervisor's log into them (gm_kvm_dirty_log_sync()); a non-zero
	 * return aborts with that value if negative, else -ECANCELED.
	 * May be NULL when only the library writes guest memory.
	 */
	int (*sync_dirty)(void *opaque);
};

/* What a migration moved. */
struct gm_migrate_stats {
	size_t sz;	      /* set by the caller (GM_OPTS), then to the bytes filled: abi.h */
	unsigned rounds;      /* including the first full one and the final one */
	uint64_t pages;	      /* page records sent or applied, zero pages included */
	uint64_t zero_pages;  /* of those, sent as "zero" without data */
	uint64_t bytes;	      /* stream bytes written or read */
	uint64_t final_pages; /* pages in the final round (the downtime's share) */
};

/*
 * Pre-copy migration of @m's RAM to a receiver over @fd (a socket, a pipe;
 * blocking). Turns dirty tracking on for every region that has a bitmap
 * (regions without one are sent once, in the first round), sends every
 * page, then rounds of the pages dirtied meanwhile until a round finds at
 * most @stop_pages or @max_rounds is reached, calls @before_final, and
 * sends a final round. Tracking stays on. Each record carries a checksum.
 * On a socket SIGPIPE is avoided (MSG_NOSIGNAL); on a pipe the caller
 * should ignore SIGPIPE. *@stats (may be NULL) is filled on success and
 * failure alike.
 * Returns 0, -EINVAL (NULL @m, @fd < 0, an unaligned region), -EPIPE or
 * -ECONNRESET (the receiver went away), -ECANCELED, -ENOMEM, other errno.
 */
GM_API int gm_migrate_send(const struct gm_memory *m, int fd, const struct gm_migrate_opts *opts,
			   struct gm_migrate_stats *stats);

/*
 * Receive a stream from gm_migrate_send() into @m, whose RAM must cover
 * every region the sender announces, as for gm_snapshot_restore() (checked
 * before any page is applied). The sender leaves ROMs out, as a save does. Returns 0 after the
 * sender's end record; -EPIPE if the stream ends early; -EBADMSG for a damaged or malformed record;
 * -ENOTSUP for a stream version or page size this library does not read; -EFAULT/-EACCES when @m
 * does not cover the sender's layout; -EINVAL; other errno of read(). Pages applied before a
 * failure stay applied.
 */
GM_API int gm_migrate_recv(const struct gm_memory *m, int fd, const struct gm_migrate_opts *opts,
			   struct gm_migrate_stats *stats);

/*
 * The same operations on a gm_space (space.h). Each takes a reference on
 * the space's current view (gm_space_memory_get()) for its whole run, so a
 * layout change meanwhile is not seen: pause hot-plug while saving or
 * migrating. No RCU registration is needed. Thread-safety and errors are
 * those of the function each wraps, plus -EINVAL for a NULL @space.
 */
struct gm_space;

/* gm_snapshot_save() of @space's current RAM. */
GM_API int gm_snapshot_save_space(struct gm_space *space, const char *path,
				  const struct gm_snapshot_opts *opts);

/* gm_snapshot_restore() (mode 1, copy) into @space's current RAM. */
GM_API int gm_snapshot_restore_space(struct gm_snapshot *s, struct gm_space *space,
				     const struct gm_snapshot_opts *opts);

/*
 * Create the saved RAM layout in @space: one RAM window per saved region
 * (gm_space_add_ram_mapping()), backed by gm_snapshot_map_region() with
 * @mode, all added in one transaction: either every window is added or
 * none. Each window gets its own dirty bitmap (space.h); its guest
 * protection is GM_PROT_ALL. Progress (copy mode) counts guest bytes.
 * Returns 0, the errors of gm_snapshot_map_region(), those of the space's
 * add and commit (-EEXIST: a window is already there), -ECANCELED.
 */
GM_API int gm_snapshot_add_to_space(struct gm_snapshot *s, struct gm_space *space,
				    enum gm_restore_mode mode, const struct gm_snapshot_opts *opts);

/* gm_migrate_send() / gm_migrate_recv() with @space's current view. */
GM_API int gm_migrate_send_space(struct gm_space *space, int fd, const struct gm_migrate_opts *opts,
				 struct gm_migrate_stats *stats);
GM_API int gm_migrate_recv_space(struct gm_space *space, int fd, const struct gm_migrate_opts *opts,
				 struct gm_migrate_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* GUESTMEM_SNAPSHOT_H */
