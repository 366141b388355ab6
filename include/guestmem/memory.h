/* SPDX-License-Identifier: MIT */
/*
 * guestmem/memory.h - an immutable view of guest RAM, and the data path.
 *
 * A struct gm_memory is a view: an immutable, sorted set of guest regions,
 * each a window of a host mapping (mapping.h) placed at a guest-physical
 * address. "View" is the one word for this object in guestmem's headers,
 * sources and tests (the data path's @m). A view never changes after
 * gm_memory_new(): layout changes build a new view (the space layer does
 * this and publishes it with RCU). Because a view is immutable,
 * every data-path function below is safe from any number of threads at
 * once, without locks.
 *
 * The data path treats every guest address and length as hostile: ranges
 * are checked with overflow-safe arithmetic before any byte moves, a range
 * that touches a hole or leaves guest RAM is -EFAULT, and a write to a
 * region flagged GM_REGION_READONLY is -EACCES. All-or-nothing functions
 * check the whole range first, so a failing write changes no guest byte.
 *
 * Memory a peer truncated (regions of GM_MAP_PEER mappings, mapping.h):
 * every function below that copies, fills or accesses guest bytes out of
 * line returns -EFAULT when one of its accesses faulted past the end of
 * the peer's file (the access itself completed on zero memory, so a write
 * may have moved some bytes; a partial form then reports *@done = 0). The
 * inline fast path and host pointers are not checked (mapping.h says how
 * to notice).
 *
 * Lifetime: refcounted (gm_memory_get/gm_memory_put). A view holds a
 * reference on every mapping and dirty bitmap its regions use; host
 * pointers obtained from a view stay valid while a reference to it is held
 * (or, for a view published by a gm_space, inside an RCU read-side section).
 * gm_memory_get()/gm_memory_put() are safe from any thread.
 *
 * NULL: the view @m is never checked: a live, non-NULL view is a
 * precondition of every function below except gm_memory_put() (the data
 * path does not pay for the test). Buffers and out-pointers are checked
 * and a NULL one is -EINVAL where the function can return an errno.
 *
 * Fast path: with GCC or clang, the fixed-width accessors, the atomic
 * loads and stores, and gm_host_ptr() are inlined from
 * <guestmem/static/memory-inline.h> (which marks dirty pages through
 * <guestmem/static/dirty-inline.h>); that makes the hot part of a view's
 * layout, and of a dirty bitmap's, part of the ABI. Define GM_NO_INLINE
 * before including this header to call the library for everything instead.
 */
#ifndef GUESTMEM_MEMORY_H
#define GUESTMEM_MEMORY_H

#include <guestmem/abi.h>
#include <guestmem/addr.h>
#include <guestmem/dirty.h>
#include <guestmem/mapping.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gm_memory;

/* Region flags (struct gm_region_spec.flags, struct gm_region_info.flags). */
#define GM_REGION_READONLY  (1u << 0) /* the library refuses writes (-EACCES) */
#define GM_REGION_ROM	    (1u << 1) /* informational: the region is a ROM window */
#define GM_REGION_NOEXEC    (1u << 2) /* informational: the guest may not execute it */
#define GM_REGION_ZERO	    (1u << 3) /* zeros, not data: snapshots skip it (with READONLY) */
#define GM_REGION_ALL_FLAGS 0xfu

/*
 * One region of a view: @size bytes of guest memory at @gpa, backed by the
 * bytes of @mapping starting at @offset. @dirty, if not NULL, is the dirty
 * bitmap the data path marks, and @dirty_offset the byte offset of this
 * region's first byte in the bitmap's region (non-zero when a space splits
 * one RAM region into several view regions with different protection).
 */
struct gm_region_spec {
	gm_gpa_t gpa;
	uint64_t size;
	struct gm_mapping *mapping;
	size_t offset;
	unsigned flags;
	struct gm_dirty *dirty;
	uint64_t dirty_offset;
};

/* What gm_memory_region() and gm_memory_find() report. */
struct gm_region_info {
	size_t sz; /* set by the caller (GM_OPTS), then to the bytes filled: abi.h */
	gm_gpa_t gpa;
	uint64_t size;
	void *host;		    /* host address of @gpa */
	unsigned flags;		    /* GM_REGION_* */
	struct gm_mapping *mapping; /* borrowed: valid while the view is */
	size_t offset;		    /* of @host in @mapping */
	struct gm_dirty *dirty;	    /* borrowed, may be NULL */
	uint64_t dirty_offset;
};

/*
 * Build a view from @n region specs, in any order (they are sorted).
 * @specs may be NULL when @n is 0 (an empty view: every access is -EFAULT).
 * The view takes its own references on the mappings and dirty bitmaps.
 * Returns 0 and *@out holding one reference, or:
 * -EINVAL    @out NULL, @specs NULL with @n > 0, a NULL mapping, a zero
 *            size, an unknown flag, or @dirty_offset + size beyond @dirty;
 * -EOVERFLOW gpa + size wraps past 2^64, or size does not fit size_t;
 * -ERANGE    the window [offset, offset + size) leaves its mapping;
 * -EEXIST    two regions overlap;
 * -ENOMEM.
 * Thread-safe.
 */
GM_API int gm_memory_new(const struct gm_region_spec *specs, size_t n, struct gm_memory **out);

/*
 * Build a view of plain anonymous RAM: one private anonymous mapping per
 * range in @ranges. Errors as gm_memory_new(), plus those of
 * gm_mapping_new_anon() (-EOVERFLOW when a range cannot be mapped by this
 * process, e.g. 4 GiB on a 32-bit host).
 */
GM_API int gm_memory_new_anon(const struct gm_range *ranges, size_t n, struct gm_memory **out);

/* Take a reference (the caller holds one already) and return @m. */
GM_API struct gm_memory *gm_memory_get(struct gm_memory *m);

/* Drop a reference; at zero the view is freed and its mapping references dropped. NULL ok. */
GM_API void gm_memory_put(struct gm_memory *m);

/* Number of regions. */
GM_API size_t gm_memory_region_count(const struct gm_memory *m);

/*
 * Describe region @index (regions are sorted by address). @out is a sized
 * struct (abi.h): set out->sz (GM_OPTS); at most that many bytes are
 * written, and out->sz is set to the number written.
 * Returns 0, -EINVAL if @out is NULL or out->sz is below sizeof(size_t),
 * -ENOENT if @index >= the count.
 */
GM_API int gm_memory_region(const struct gm_memory *m, size_t index, struct gm_region_info *out);

/*
 * Describe the region holding @gpa, as gm_memory_region().
 * Returns 0, -EINVAL (as gm_memory_region()), or -EFAULT (no region).
 */
GM_API int gm_memory_find(const struct gm_memory *m, gm_gpa_t gpa, struct gm_region_info *out);

/* Sum of all region sizes. */
GM_API uint64_t gm_memory_total_size(const struct gm_memory *m);

/*
 * *@last = the highest guest address in any region.
 * Returns 0, -ENOENT for an empty view, -EINVAL if @last is NULL.
 */
GM_API int gm_memory_last_addr(const struct gm_memory *m, gm_gpa_t *last);

/*
 * Copy @len bytes of guest memory at @gpa into @buf.
 * All or nothing: the whole range is checked before any byte moves; it may
 * cross from one region into an adjacent one. @len 0 is a no-op (@buf may
 * then be NULL).
 * Returns 0, -EFAULT if any byte is outside guest RAM (or the range wraps),
 * -EINVAL if @buf is NULL and @len is not 0.
 */
GM_API int gm_read(const struct gm_memory *m, gm_gpa_t gpa, void *buf, size_t len);

/*
 * Copy @len bytes from @buf into guest memory at @gpa. All or nothing: a
 * failing write changes no guest byte. Marks dirty pages where tracking is on.
 * Returns 0, -EFAULT (a byte outside guest RAM, or the range wraps), -EACCES
 * (a byte lies in a read-only region; when a range has both, the first bad
 * byte in address order decides), -EINVAL if @buf is NULL and @len is not 0.
 */
GM_API int gm_write(const struct gm_memory *m, gm_gpa_t gpa, const void *buf, size_t len);

/*
 * Like gm_read()/gm_write(), but copy up to the first byte that cannot be
 * accessed and set *@done to the bytes copied (always set, also on error).
 * Returns 0 if all @len bytes moved, else -EFAULT (hole or end of RAM) or
 * -EACCES (read-only region, writes only) for the byte at @gpa + *@done;
 * -EINVAL if @done is NULL or @buf is NULL with @len > 0; -EFAULT with
 * *@done = 0 if some byte lay in memory a peer truncated (see the top).
 */
GM_API int gm_read_partial(const struct gm_memory *m, gm_gpa_t gpa, void *buf, size_t len,
			   size_t *done);
GM_API int gm_write_partial(const struct gm_memory *m, gm_gpa_t gpa, const void *buf, size_t len,
			    size_t *done);

/*
 * Fixed-width accesses in host byte order, and little-endian ones (virtio).
 * A naturally aligned access is a single load or store: another thread or
 * the guest never sees half of it. An unaligned one, or one that crosses
 * into the next region, is copied bytewise (all or nothing).
 * Reads return 0, -EFAULT or -EINVAL (@out NULL; *@out untouched on error);
 * writes return 0, -EFAULT or -EACCES.
 */
GM_API int gm_read_u8(const struct gm_memory *m, gm_gpa_t gpa, uint8_t *out);
GM_API int gm_read_u16(const struct gm_memory *m, gm_gpa_t gpa, uint16_t *out);
GM_API int gm_read_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t *out);
GM_API int gm_read_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t *out);
GM_API int gm_write_u8(const struct gm_memory *m, gm_gpa_t gpa, uint8_t val);
GM_API int gm_write_u16(const struct gm_memory *m, gm_gpa_t gpa, uint16_t val);
GM_API int gm_write_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val);
GM_API int gm_write_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val);
GM_API int gm_read_le16(const struct gm_memory *m, gm_gpa_t gpa, uint16_t *out);
GM_API int gm_read_le32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t *out);
GM_API int gm_read_le64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t *out);
GM_API int gm_write_le16(const struct gm_memory *m, gm_gpa_t gpa, uint16_t val);
GM_API int gm_write_le32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val);
GM_API int gm_write_le64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val);

/* A read cursor (gm_cursor_init()); its fields are the library's. */
struct gm_cursor {
	const struct gm_memory *m;
	const uintptr_t *slots;
	uint64_t nslots;
	unsigned shift;
};

/*
 * A read cursor: the lookup table of view @m that a fixed-width read needs
 * (table, size, shift), copied into a struct the caller keeps in a local
 * variable. A read through a view pointer loads those words from the view
 * again after every call or store the compiler cannot see through (it
 * cannot know they did not change); in a loop of reads through a cursor
 * held in a local they stay in registers. For device loops that read many
 * words through one view (bench/datapath: "u64 read, cursor").
 *
 * gm_cursor_init() points @c at @m. The cursor holds no reference: it is
 * valid while the caller holds @m (a view never changes, so a cursor never
 * goes stale); a new view (gm_space_memory()) needs a new cursor. The fields
 * are the library's.
 * gm_cursor_read_u8() .. gm_cursor_read_u64() are gm_read_u8() ..
 * gm_read_u64() on the cursor's view: the same checks, results and
 * errors.
 */
GM_API void gm_cursor_init(struct gm_cursor *c, const struct gm_memory *m);
GM_API int gm_cursor_read_u8(const struct gm_cursor *c, gm_gpa_t gpa, uint8_t *out);
GM_API int gm_cursor_read_u16(const struct gm_cursor *c, gm_gpa_t gpa, uint16_t *out);
GM_API int gm_cursor_read_u32(const struct gm_cursor *c, gm_gpa_t gpa, uint32_t *out);
GM_API int gm_cursor_read_u64(const struct gm_cursor *c, gm_gpa_t gpa, uint64_t *out);

/*
 * Atomic operations on a naturally aligned guest word (virtio ring
 * indices, flags shared with the guest). @memorder is one of the
 * __ATOMIC_* constants and must be valid for the operation (a load cannot
 * be __ATOMIC_RELEASE, a store cannot be __ATOMIC_ACQUIRE).
 * Returns 0; -EINVAL for a misaligned @gpa or host address, a word that
 * crosses a region boundary, an invalid @memorder or a NULL out-pointer;
 * -EFAULT outside RAM; -EACCES for a store or read-modify-write on a
 * read-only region. fetch_add/fetch_or store the previous value in *@old
 * (@old may be NULL). cmpxchg returns 0 if it swapped, -EAGAIN if not,
 * with *@expected set to the value found; its failure ordering is the
 * strongest one valid for a load that @memorder allows.
 */
GM_API int gm_atomic_load_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t *out, int memorder);
GM_API int gm_atomic_load_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t *out, int memorder);
GM_API int gm_atomic_store_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val, int memorder);
GM_API int gm_atomic_store_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val, int memorder);
GM_API int gm_atomic_fetch_add_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val,
				   uint32_t *old, int memorder);
GM_API int gm_atomic_fetch_add_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val,
				   uint64_t *old, int memorder);
GM_API int gm_atomic_fetch_or_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val,
				  uint32_t *old, int memorder);
GM_API int gm_atomic_fetch_or_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val,
				  uint64_t *old, int memorder);
GM_API int gm_atomic_cmpxchg_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t *expected,
				 uint32_t desired, int memorder);
GM_API int gm_atomic_cmpxchg_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t *expected,
				 uint64_t desired, int memorder);

/*
 * Set @len bytes at @gpa to @byte (converted to unsigned char).
 * All or nothing. Returns 0, -EFAULT (a byte outside RAM, or the range
 * wraps) or -EACCES (a byte in a read-only region). @len 0 is 0.
 */
GM_API int gm_fill(const struct gm_memory *m, gm_gpa_t gpa, int byte, size_t len);

/*
 * Copy @len bytes of guest memory from @src to @dst, like memmove(): the
 * ranges may overlap. All or nothing. Returns 0, -EFAULT or -EACCES (@dst
 * touches a read-only region).
 */
GM_API int gm_copy(const struct gm_memory *m, gm_gpa_t dst, gm_gpa_t src, size_t len);

/*
 * The host address of guest @gpa if all of [@gpa, @gpa + @len) lies in one
 * region, else NULL (also for @len 0 outside RAM). The pointer is valid as
 * long as the view is. It does not check write permission: use
 * gm_host_ptr_write() for a pointer you will write through, and report the
 * bytes written with gm_mark_dirty().
 */
GM_API void *gm_host_ptr(const struct gm_memory *m, gm_gpa_t gpa, size_t len);

/* As gm_host_ptr(), but NULL if the region is read-only. */
GM_API void *gm_host_ptr_write(const struct gm_memory *m, gm_gpa_t gpa, size_t len);

/*
 * Split the guest range [@gpa, @gpa + @len) into host iovecs for zero-copy
 * I/O: one per region crossed, neighbours that are contiguous on the host
 * merged. Fills at most @max entries of @iov and sets *@n to the number used.
 * Returns 0; -EFAULT if a byte is outside RAM; -ENOBUFS if more than @max
 * entries are needed (*@n is then set to the number needed, @iov holds the
 * first @max); -EINVAL if @n is NULL, or @iov is NULL with @max > 0.
 * @len 0 gives *@n = 0.
 * gm_to_iovec_write() also fails with -EACCES if a byte is read-only; a
 * caller that writes through the iovecs reports it with gm_mark_dirty().
 */
GM_API int gm_to_iovec(const struct gm_memory *m, gm_gpa_t gpa, size_t len, struct iovec *iov,
		       size_t max, size_t *n);
GM_API int gm_to_iovec_write(const struct gm_memory *m, gm_gpa_t gpa, size_t len, struct iovec *iov,
			     size_t max, size_t *n);

/*
 * Report that the caller wrote [@gpa, @gpa + @len) through a host pointer
 * or iovec: marks the pages dirty in regions whose tracking is enabled.
 * Bytes outside RAM are ignored. Returns 0.
 */
GM_API int gm_mark_dirty(const struct gm_memory *m, gm_gpa_t gpa, size_t len);

/*
 * Move data between a file, pipe or socket and guest memory without a
 * bounce buffer. gm_read_from_fd() reads from @fd into guest memory;
 * gm_write_to_fd() writes guest memory to @fd. With @offset >= 0 the file
 * position is @offset (preadv/pwritev, the fd's offset is not moved); with
 * @offset == -1 the fd's current position is used and advanced
 * (readv/writev: pipes and sockets). EINTR is retried.
 * The guest range is checked first (-EFAULT; -EACCES for reading into a
 * read-only region). *@done is always set to the bytes moved: less than
 * @len means end of file (read) or an error. Returns 0 if the transfer
 * ended normally (all bytes, or EOF), -EAGAIN if a non-blocking fd would
 * block after *@done bytes, another negative errno from the system call
 * (e.g. -EBADF, -ENOSPC, -EPIPE with SIGPIPE ignored), -EIO if gm_write_to_fd()'s system call
 * reports 0 bytes written (no progress possible), -EINVAL for a NULL @done,
 * @fd < 0 or @offset < -1, -EOVERFLOW if @offset + @len overflows a file
 * offset. Guest pages read into are marked dirty.
 */
GM_API int gm_read_from_fd(const struct gm_memory *m, gm_gpa_t gpa, int fd, int64_t offset,
			   size_t len, size_t *done);
GM_API int gm_write_to_fd(const struct gm_memory *m, gm_gpa_t gpa, int fd, int64_t offset,
			  size_t len, size_t *done);

#ifdef __cplusplus
}
#endif

#if !defined(GM_NO_INLINE) && !defined(GM_BUILDING_LIBRARY) && \
    (defined(__GNUC__) || defined(__clang__))
#include <guestmem/static/memory-inline.h>
#define gm_read_u8(m, gpa, out)		     gm_inline_read_u8((m), (gpa), (out))
#define gm_read_u16(m, gpa, out)	     gm_inline_read_u16((m), (gpa), (out))
#define gm_read_u32(m, gpa, out)	     gm_inline_read_u32((m), (gpa), (out))
#define gm_read_u64(m, gpa, out)	     gm_inline_read_u64((m), (gpa), (out))
#define gm_write_u8(m, gpa, val)	     gm_inline_write_u8((m), (gpa), (val))
#define gm_write_u16(m, gpa, val)	     gm_inline_write_u16((m), (gpa), (val))
#define gm_write_u32(m, gpa, val)	     gm_inline_write_u32((m), (gpa), (val))
#define gm_write_u64(m, gpa, val)	     gm_inline_write_u64((m), (gpa), (val))
#define gm_host_ptr(m, gpa, len)	     gm_inline_host_ptr((m), (gpa), (len))
#define gm_cursor_init(c, m)		     gm_inline_cursor_init((c), (m))
#define gm_cursor_read_u8(c, gpa, out)	     gm_inline_cursor_read_u8((c), (gpa), (out))
#define gm_cursor_read_u16(c, gpa, out)	     gm_inline_cursor_read_u16((c), (gpa), (out))
#define gm_cursor_read_u32(c, gpa, out)	     gm_inline_cursor_read_u32((c), (gpa), (out))
#define gm_cursor_read_u64(c, gpa, out)	     gm_inline_cursor_read_u64((c), (gpa), (out))
#define gm_atomic_load_u32(m, gpa, out, mo)  gm_inline_atomic_load_u32((m), (gpa), (out), (mo))
#define gm_atomic_load_u64(m, gpa, out, mo)  gm_inline_atomic_load_u64((m), (gpa), (out), (mo))
#define gm_atomic_store_u32(m, gpa, val, mo) gm_inline_atomic_store_u32((m), (gpa), (val), (mo))
#define gm_atomic_store_u64(m, gpa, val, mo) gm_inline_atomic_store_u64((m), (gpa), (val), (mo))
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
/* Little-endian hosts: a guest little-endian field is a native one. */
#define gm_read_le16(m, gpa, out)  gm_inline_read_u16((m), (gpa), (out))
#define gm_read_le32(m, gpa, out)  gm_inline_read_u32((m), (gpa), (out))
#define gm_read_le64(m, gpa, out)  gm_inline_read_u64((m), (gpa), (out))
#define gm_write_le16(m, gpa, val) gm_inline_write_u16((m), (gpa), (val))
#define gm_write_le32(m, gpa, val) gm_inline_write_u32((m), (gpa), (val))
#define gm_write_le64(m, gpa, val) gm_inline_write_u64((m), (gpa), (val))
#endif
#endif

#endif /* GUESTMEM_MEMORY_H */
