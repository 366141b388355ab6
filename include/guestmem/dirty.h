/* SPDX-License-Identifier: MIT */
/*
 * guestmem/dirty.h - page-granular dirty bitmaps.
 *
 * One struct gm_dirty per guest RAM region: one bit per 4 KiB page of the
 * region, set when a write through guestmem touches the page while
 * tracking is enabled, read-and-cleared by migration and snapshot code,
 * and merged with the hypervisor's own log (KVM_GET_DIRTY_LOG).
 *
 * This sits below the memory layer (see docs/design-notes.md): the data
 * path marks pages, so the bitmap must be something a view can point at.
 * The bitmap belongs to a region of the address space, not to a view, and
 * survives every view change; views hold references on it.
 *
 * Lifetime: refcounted (gm_dirty_get/gm_dirty_put).
 * Threads: every function may be called from any number of threads at
 * once. Marking uses atomic bit operations; gm_dirty_collect() clears with
 * atomic exchanges and then forces a barrier on every thread of the
 * process (membarrier(2)), so a page written before collect() returns is
 * either in the returned set or stays set for the next collect (no write
 * is ever lost between "read" and "clear").
 * NULL: @d is never checked; a live, non-NULL bitmap is a precondition of
 * every function but gm_dirty_put(). The other pointer arguments are
 * checked, and a NULL one where the contract needs it is -EINVAL.
 */
#ifndef GUESTMEM_DIRTY_H
#define GUESTMEM_DIRTY_H

#include <guestmem/addr.h>
#include <guestmem/mapping.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gm_dirty;

/*
 * A bitmap for a region of @size bytes: ceil(@size / 4 KiB) pages, all
 * clean, tracking disabled.
 * Returns 0 and *@out holding one reference, -EINVAL if @out is NULL or
 * @size is 0, -EOVERFLOW if the bitmap would not fit this process,
 * -ENOMEM.
 */
GM_API int gm_dirty_new(uint64_t size, struct gm_dirty **out);

/*
 * A bitmap kept in @size bytes of a shared mapping, from byte @offset of
 * @map: a log another process reads and clears (a vhost-user front end's
 * dirty log, vhost.h). Bit i of the little-endian 64-bit word w is page
 * 64 * w + i, which on a little-endian host is bit i % 8 of byte i / 8, the
 * vhost-user layout. It covers (@size / 8) * 64 pages (whole words: a
 * trailing part word is never touched). Every mark is an atomic OR, never
 * skipped because the bit looked set (the other process clears bits
 * without this process's membarrier). The bitmap holds a reference on @map;
 * the bytes are not cleared. Tracking starts disabled.
 * Returns 0 and *@out holding one reference, or -EINVAL (@map or @out
 * NULL, @offset not 8-byte aligned, @size < 8), -ERANGE ([@offset,
 * @offset + @size) leaves the mapping), -ENOTSUP (a big-endian host, where
 * the word and byte layouts differ), -EOVERFLOW, -ENOMEM.
 */
GM_API int gm_dirty_new_mapped(struct gm_mapping *map, size_t offset, uint64_t size,
			       struct gm_dirty **out);

/* Take a reference on @d (the caller holds one already) and return it. */
GM_API struct gm_dirty *gm_dirty_get(struct gm_dirty *d);

/* Drop a reference; frees at zero. NULL is ignored. */
GM_API void gm_dirty_put(struct gm_dirty *d);

/* Number of pages (bits) in @d. */
GM_API uint64_t gm_dirty_npages(const struct gm_dirty *d);

/*
 * Turn marking by the data path on or off. When this returns, every
 * thread's later writes see the new state (membarrier). Turning tracking
 * off keeps the bits already set.
 */
GM_API void gm_dirty_set_enabled(struct gm_dirty *d, bool enabled);

/* Whether the data path marks pages of @d now. */
GM_API bool gm_dirty_enabled(const struct gm_dirty *d);

/*
 * Mark the pages covering bytes [@offset, @offset + @len) of the region
 * dirty, whether or not tracking is enabled (for zero-copy writers and
 * hypervisor logs). Bytes beyond the region are ignored.
 */
GM_API void gm_dirty_mark(struct gm_dirty *d, uint64_t offset, uint64_t len);

/* Whether page @page is dirty now (false beyond the end). */
GM_API bool gm_dirty_test(const struct gm_dirty *d, uint64_t page);

/* Number of dirty pages now (a snapshot: writers may add more meanwhile). */
GM_API uint64_t gm_dirty_count(const struct gm_dirty *d);

/*
 * Read and clear, in one step, the bits of pages [@first, @first + 64 *
 * @nwords) into @out (bit i of out[w] is page @first + 64 * w + i; bits past
 * the last page read as 0). @first must be a multiple of 64.
 * Returns 0, or -EINVAL if @out is NULL with @nwords > 0, or @first is not
 * a multiple of 64 or is at or beyond the number of pages.
 */
GM_API int gm_dirty_collect(struct gm_dirty *d, uint64_t first, uint64_t *out, size_t nwords);

/*
 * OR @nwords words of an external bitmap into @d, bit i of @bits[w] being
 * page @first + 64 * w + i (the layout of KVM's dirty log). @first must be
 * a multiple of 64; bits past the last page are ignored.
 * Returns 0, or -EINVAL (nothing merged) if @bits is NULL with @nwords > 0,
 * or @first is not a multiple of 64 or is at or beyond the number of pages.
 */
GM_API int gm_dirty_merge(struct gm_dirty *d, uint64_t first, const uint64_t *bits, size_t nwords);

/*
 * Find the next run of dirty pages at or after page @from without
 * clearing it: *@first is its first page and *@count its length.
 * Returns 0, or -ENOENT if no page at or after @from is dirty (*@first and
 * *@count untouched), -EINVAL if @first or @count is NULL.
 * The run is a snapshot: concurrent writers may extend it meanwhile.
 */
GM_API int gm_dirty_next_run(const struct gm_dirty *d, uint64_t from, uint64_t *first,
			     uint64_t *count);

#ifdef __cplusplus
}
#endif

#endif /* GUESTMEM_DIRTY_H */
