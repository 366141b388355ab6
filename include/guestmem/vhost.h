/* SPDX-License-Identifier: MIT */
/*
 * guestmem/vhost.h - guest memory as a vhost-user back end receives it.
 *
 * A vhost-user front end (QEMU) shares the guest's RAM with a back end in
 * another process by sending a memory table: for each region a file
 * descriptor, the offset of the region in it, the region's guest-physical
 * address and size, and the address at which the front end itself maps it
 * (its "user address"; virtqueue addresses arrive in that form).
 *
 * struct gm_vhost_table is one such table mapped into this process: an
 * immutable gm_memory (memory.h) for the data path plus an index of user
 * addresses. struct gm_vhost_mem holds the table currently in force and
 * replaces it while device threads keep running: a new table is published
 * with RCU (rcu.h); a thread that took the old one keeps a
 * reference and finishes its requests on it; the old table is unmapped when
 * the grace period has passed and the last reference is gone.
 *
 * Every number in a table comes from the front end and is treated as
 * hostile: zero sizes, ranges that wrap, guest or user ranges that overlap,
 * too many regions and windows that leave the file are refused before
 * anything is mapped.
 *
 * Lifetime: gm_vhost_table is refcounted (get/put); gm_vhost_mem has one
 * owner (new/free).
 */
#ifndef GUESTMEM_VHOST_H
#define GUESTMEM_VHOST_H

#include <guestmem/memory.h>
#include <guestmem/rcu.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gm_vhost_table;
struct gm_vhost_mem;

/* The largest max_regions gm_vhost_mem_new() accepts. */
#define GM_VHOST_REGIONS_MAX 512u

/* One region of a vhost-user memory table (VhostUserMemoryRegion + its fd). */
struct gm_vhost_region {
	gm_gpa_t gpa;	      /* guest_phys_addr */
	uint64_t size;	      /* memory_size */
	uint64_t uaddr;	      /* userspace_addr: the front end's address of @gpa */
	uint64_t mmap_offset; /* offset of @gpa's byte in @fd */
	int fd;		      /* borrowed; the table keeps its own duplicate */
};

/*
 * Map @n regions and build a table. The fds are borrowed: the caller may
 * close them when this returns. @max_regions bounds @n.
 * Returns 0 and *@out holding one reference, or:
 * -EINVAL    @out NULL, @regions NULL with @n > 0, a zero size, fd < 0;
 * -E2BIG     @n > @max_regions;
 * -EOVERFLOW gpa + size, uaddr + size or mmap_offset + size wraps, or a
 *            region cannot be mapped by this process (size_t);
 * -EEXIST    two regions overlap in guest-physical or in user addresses;
 * -ERANGE    [mmap_offset, mmap_offset + size) of a regular file (memfd,
 *            tmpfs, hugetlbfs) reaches past its end;
 * -ENOMEM, or the errno of fstat() or mmap() (-EBADF, -EACCES, -ENODEV ...).
 * Each region is mapped with GM_MAP_PEER (mapping.h): a front end that
 * shrinks an fd it did not seal with F_SEAL_SHRINK makes the accesses
 * past the new end fail with -EFAULT instead of killing this process with
 * SIGBUS, and the table reads as gm_vhost_table_truncated().
 * Thread-safe.
 */
GM_API int gm_vhost_table_new(const struct gm_vhost_region *regions, size_t n, size_t max_regions,
			      struct gm_vhost_table **out);

/* Take a reference and return @t. */
GM_API struct gm_vhost_table *gm_vhost_table_get(struct gm_vhost_table *t);

/* Drop a reference; at zero the regions are unmapped. NULL ok. Thread-safe. */
GM_API void gm_vhost_table_put(struct gm_vhost_table *t);

/* The guest memory view of @t: borrowed, valid while @t is. */
GM_API const struct gm_memory *gm_vhost_table_memory(const struct gm_vhost_table *t);

/*
 * Whether the front end truncated the memory under one of @t's regions
 * and an access found it (gm_mapping_truncated()). Once true the table's
 * contents are no longer shared with the front end: a back end stops
 * using it until the front end sends a new table. Thread-safe.
 */
GM_API bool gm_vhost_table_truncated(const struct gm_vhost_table *t);

/* Number of regions of @t. */
GM_API size_t gm_vhost_table_region_count(const struct gm_vhost_table *t);

/*
 * Describe region @index of @t (sorted by guest address). out->fd is the
 * table's own duplicate: do not close it. Returns 0, -EINVAL (@out NULL),
 * -ENOENT (@index out of range).
 */
GM_API int gm_vhost_table_region(const struct gm_vhost_table *t, size_t index,
				 struct gm_vhost_region *out);

/*
 * Translate the front end's user address range [@uaddr, @uaddr + @size)
 * into a guest-physical address. The whole range must lie in one region.
 * Returns 0 and *@gpa, -EINVAL (@size 0 or @gpa NULL), -EFAULT (not
 * mapped, crosses a region's end, or wraps). Thread-safe.
 */
GM_API int gm_vhost_uaddr_to_gpa(const struct gm_vhost_table *t, uint64_t uaddr, uint64_t size,
				 gm_gpa_t *gpa);

/*
 * Translate a guest range [@gpa, @gpa + @size) in one region into the front
 * end's user address. Returns 0, -EINVAL, -EFAULT as above.
 */
GM_API int gm_vhost_gpa_to_uaddr(const struct gm_vhost_table *t, gm_gpa_t gpa, uint64_t size,
				 uint64_t *uaddr);

/*
 * A holder of the table in force, at most @max_regions regions (1 ..
 * GM_VHOST_REGIONS_MAX). It starts empty (no table).
 * Returns 0, -EINVAL, -ENOMEM.
 */
GM_API int gm_vhost_mem_new(size_t max_regions, struct gm_vhost_mem **out);

/*
 * Drop the table in force and free @vm. No thread may use @vm any more;
 * tables taken with gm_vhost_mem_table() stay valid until put. NULL ok.
 */
GM_API void gm_vhost_mem_free(struct gm_vhost_mem *vm);

/*
 * Replace the whole table (VHOST_USER_SET_MEM_TABLE). On error the table
 * in force is unchanged. Errors of gm_vhost_table_new().
 * The old table is released after an RCU grace period, so the caller must
 * not be inside an RCU read-side section. Writers are serialised inside;
 * safe against concurrent gm_vhost_mem_table() callers.
 */
GM_API int gm_vhost_mem_set(struct gm_vhost_mem *vm, const struct gm_vhost_region *regions,
			    size_t n);

/*
 * Add one region to the table in force (VHOST_USER_ADD_MEM_REG); with no
 * table, start one. Errors of gm_vhost_table_new() (-E2BIG when full,
 * -EEXIST on overlap with a region already there). Same rules as
 * gm_vhost_mem_set().
 */
GM_API int gm_vhost_mem_add(struct gm_vhost_mem *vm, const struct gm_vhost_region *region);

/*
 * Remove the region with exactly this guest address, size and user address
 * (VHOST_USER_REM_MEM_REG; fd and mmap_offset are ignored). Returns 0,
 * -ENOENT if no region matches, -EINVAL, -ENOMEM. Same rules as
 * gm_vhost_mem_set().
 */
GM_API int gm_vhost_mem_remove(struct gm_vhost_mem *vm, const struct gm_vhost_region *region);

/*
 * Drop the table in force, the log and logging (VHOST_USER_RESET_OWNER,
 * disconnect). Same rules.
 */
GM_API void gm_vhost_mem_clear(struct gm_vhost_mem *vm);

/*
 * A reference on the table in force, or NULL if there is none. The caller
 * puts it when its requests are done: a table replaced meanwhile stays
 * mapped until then. The calling thread must be registered as an RCU
 * reader (gm_rcu_register_thread(), rcu.h). Thread-safe, wait-free apart from the
 * reference count.
 */
GM_API struct gm_vhost_table *gm_vhost_mem_table(struct gm_vhost_mem *vm);

/* Number of table replacements so far (set, add, remove, clear): a generation. */
GM_API uint64_t gm_vhost_mem_generation(const struct gm_vhost_mem *vm);

/*
 * The dirty log (live migration, vhost-user.rst "Migration").
 *
 * The front end shares a log: one bit per 4 KiB guest-physical page, page
 * p being bit p % 8 of byte p / 8. While logging is on, every byte the back
 * end writes into guest memory through a table's view is logged: the view's
 * regions mark into the log (a gm_dirty over the shared bytes, dirty.h,
 * gm_dirty_new_mapped()), so gm_write(), gm_read_from_fd(), gm_mark_dirty()
 * and the virtqueue's used-ring stores all log by guest-physical address,
 * whatever address form the front end used. Each mark is an atomic OR done
 * after the data store and before the call returns, so a later release
 * store (the used index) cannot become visible before the page's bit.
 *
 * Rules kept by the holder (vhost.c, invariant 5): while a log is attached,
 * every table published carries it and lies inside it; a table that does
 * not fit is refused while logging is on, and detaches the (stale) log
 * while logging is off.
 */

/*
 * Attach the front end's log (VHOST_USER_SET_LOG_BASE): @size bytes of @fd
 * from @mmap_offset, covering (@size / 8) * 64 pages. The fd is borrowed.
 * The table in force is rebuilt to mark into it and published; this returns
 * only when no table of @vm that marks an older log, or none, is still held
 * by anyone (so the front end may drop the old log once answered). It waits
 * for holders to put their tables: callers must not hold one.
 * Logging on or off is kept.
 * Returns 0, or -EINVAL (@vm NULL, @fd < 0, @mmap_offset not 8-byte aligned,
 * @size < 8), -ERANGE (the log does not cover every region of the table in
 * force, or the window leaves @fd's file), -ENOTSUP (big-endian host),
 * -EOVERFLOW, -ENOMEM, or mmap()'s errno. On error nothing changed.
 */
GM_API int gm_vhost_mem_set_log(struct gm_vhost_mem *vm, int fd, uint64_t mmap_offset,
				uint64_t size);

/*
 * Turn logging on or off (VHOST_F_LOG_ALL in VHOST_USER_SET_FEATURES), also
 * while other threads write. When this returns every thread's later write
 * through a table of @vm sees the new state (gm_dirty_set_enabled()).
 * Returns 0, -EINVAL (@vm NULL), -ENOENT (on without a log attached).
 */
GM_API int gm_vhost_mem_set_logging(struct gm_vhost_mem *vm, bool on);

/* Whether logging is on. */
GM_API bool gm_vhost_mem_logging(struct gm_vhost_mem *vm);

/*
 * Pages of the attached log set now (0 without a log): bits the front end
 * has not collected yet, whoever set them. Takes @vm's writer lock.
 */
GM_API uint64_t gm_vhost_mem_log_count(struct gm_vhost_mem *vm);

/*
 * Pages this process newly logged for @vm since gm_vhost_mem_new(): bits
 * of the attached logs that a mark found clear and set (0 -> 1), summed
 * over every log attached, the detached ones included. A page written
 * again before the front end collected its bit counts once; written again
 * after, once more. Bits the front end set itself are not counted. Marks
 * made after gm_vhost_mem_clear() by a table still held are not counted;
 * a caller that stops its users first (as gm-vhost-blk does) gets the exact
 * count. Returns 0 for @vm NULL. Takes @vm's writer lock.
 *
 * Cost while a log is attached: writes to guest memory through an inline
 * accessor (gm_write_u8() and the like) take the library's call instead
 * of the inline store, and each mark adds a relaxed atomic add per
 * 64-page word in which it set a bit (the OR was atomic already). Without
 * a log nothing changes.
 */
GM_API uint64_t gm_vhost_mem_log_marked(struct gm_vhost_mem *vm);

/*
 * Log [@gpa, @gpa + @len) in @t's log explicitly, if logging is on: for
 * writes the view does not see (a used ring logged at the front end's
 * log_guest_addr, VHOST_VRING_F_LOG). Returns 0 (also when logging is off
 * or @t has no log, or @len is 0), -ERANGE (nothing marked) if the range
 * wraps or reaches past the log.
 */
GM_API int gm_vhost_table_log(const struct gm_vhost_table *t, gm_gpa_t gpa, uint64_t len);

#ifdef __cplusplus
}
#endif

#endif /* GUESTMEM_VHOST_H */
