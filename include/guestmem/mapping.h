/*
 * guestmem/mapping.h - host memory mappings that back guest memory.
 *
 * A struct gm_mapping is one mmap()ed range of this process: anonymous
 * memory, a memfd (so another process can map the same pages), or a window
 * of a caller's file or shared-memory fd. Guest memory views (memory.h)
 * point into mappings and hold references on them, so a mapping is unmapped
 * only when the last view using it is gone.
 *
 * Lifetime: refcounted. Constructors return a mapping holding one
 * reference; gm_mapping_get() adds one, gm_mapping_put() drops one and
 * unmaps at zero. Constructors, get/put and the accessors are safe from
 * any thread; gm_mapping_protect() may race only with accesses the caller
 * orders.
 * A constructor that fails leaves *out untouched and holds nothing.
 *
 * NULL: the functions that return an errno reject a NULL pointer argument
 * with -EINVAL. The accessors and gm_mapping_get() have no error to return:
 * for them a live, non-NULL @m is a precondition (not checked).
 *
 * Sizes are rounded up to the page size internally (the huge page size
 * for hugetlb memory); gm_mapping_size() still reports the size asked for.
 */
#ifndef GUESTMEM_MAPPING_H
#define GUESTMEM_MAPPING_H

#include <guestmem/addr.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gm_mapping;

/* Flags for the constructors. */
#define GM_MAP_SHARED	 (1u << 0) /* MAP_SHARED: writes reach the fd / other processes */
#define GM_MAP_READONLY	 (1u << 1) /* PROT_READ only */
#define GM_MAP_HUGETLB	 (1u << 2) /* explicit huge pages (needs reserved hugepages) */
#define GM_MAP_THP	 (1u << 3) /* madvise(MADV_HUGEPAGE); the mapping is 2 MiB aligned */
#define GM_MAP_POPULATE	 (1u << 4) /* prefault every page now (failure: -EFAULT, Linux 5.14+) */
#define GM_MAP_NORESERVE (1u << 5) /* MAP_NORESERVE: no swap/commit reservation */
#define GM_MAP_DONTDUMP	 (1u << 6) /* madvise(MADV_DONTDUMP): keep guest RAM out of core dumps */
#define GM_MAP_MERGEABLE (1u << 7) /* madvise(MADV_MERGEABLE): allow KSM */
#define GM_MAP_GUARD	 (1u << 8) /* an inaccessible page just before and just after */

/* Every flag above; any other bit is rejected with -EINVAL. */
#define GM_MAP_ALL_FLAGS 0x1ffu

/*
 * Map @size bytes of zeroed anonymous memory.
 * GM_MAP_SHARED makes it MAP_SHARED|MAP_ANONYMOUS (shared across fork()).
 * Returns 0 and *@out holding one reference, or:
 * -EINVAL   @out NULL, @size 0, unknown flag, or a flag combination that
 *           makes no sense (GM_MAP_HUGETLB with GM_MAP_THP);
 * -EOVERFLOW @size plus guard pages / alignment does not fit size_t;
 * -ENOMEM   no address space or memory (or, with GM_MAP_HUGETLB, no huge
 *           pages reserved: the kernel's own errno is passed through);
 * -EFAULT   GM_MAP_POPULATE could not fault a page in (hugetlb with
 *           GM_MAP_NORESERVE and no free huge page);
 * another negative errno from mmap()/madvise().
 * GM_MAP_HUGETLB with GM_MAP_NORESERVE reserves nothing: without
 * GM_MAP_POPULATE a missing huge page is a SIGBUS on first touch.
 */
GM_API int gm_mapping_new_anon(size_t size, unsigned flags, struct gm_mapping **out);

/*
 * Map @size bytes of @fd starting at @offset (a regular file, a memfd,
 * shared memory, hugetlbfs). The mapping keeps its own duplicate of @fd
 * (close-on-exec), so the caller may close @fd at once.
 * Without GM_MAP_SHARED the mapping is MAP_PRIVATE: writes stay in this
 * process (copy-on-write), as for a snapshot restored "instantly".
 * Returns 0 and *@out, or:
 * -EINVAL   @fd < 0, @out NULL, @size 0, @offset not page aligned (for a
 *           hugetlbfs fd: not huge page aligned), unknown flag, or
 *           GM_MAP_HUGETLB / GM_MAP_THP (the fd decides its page size);
 * -EOVERFLOW @offset + @size wraps, or does not fit off_t, or @size plus
 *           guard pages does not fit size_t;
 * -EFAULT   GM_MAP_POPULATE and the window runs past the end of the file;
 * -ENOMEM   no memory for the object or no address space;
 * -EBADF, -EACCES, -ENODEV ... from fcntl()/fstatfs()/mmap()/madvise().
 * Without GM_MAP_POPULATE a window past the end of the file maps, and
 * touching a page wholly past it raises SIGBUS (the file may grow later).
 */
GM_API int gm_mapping_new_fd(int fd, uint64_t offset, size_t size, unsigned flags,
			     struct gm_mapping **out);

/*
 * Create a memfd called @name (shown in /proc/PID/maps; may not be NULL),
 * size it to @size, and map it shared. gm_mapping_fd() gives the fd to hand
 * to another process (a vhost-user back end). GM_MAP_SHARED is implied.
 * GM_MAP_HUGETLB creates the memfd with MFD_HUGETLB.
 * Returns 0 and *@out, or the errors of gm_mapping_new_anon() (-EINVAL
 * also for a NULL @name; -EOVERFLOW also when @size rounded up to the
 * memfd's page size does not fit off_t) and those of memfd_create(),
 * fstatfs() and ftruncate() (-EMFILE, -ENOSPC, ...).
 */
GM_API int gm_mapping_new_memfd(const char *name, size_t size, unsigned flags,
				struct gm_mapping **out);

/* Take a reference on @m and return @m. @m must be a live mapping. */
GM_API struct gm_mapping *gm_mapping_get(struct gm_mapping *m);

/*
 * Drop a reference; at zero the memory is unmapped, the fd closed and @m
 * freed. NULL is accepted and ignored.
 */
GM_API void gm_mapping_put(struct gm_mapping *m);

/* The host address of the mapping's first byte. Valid while a reference is held. */
GM_API void *gm_mapping_host(const struct gm_mapping *m);

/* The usable size in bytes, as given to the constructor (guard pages excluded). */
GM_API size_t gm_mapping_size(const struct gm_mapping *m);

/*
 * The mapping's own fd (memfd or duplicate of the caller's fd), or -1 for
 * anonymous memory. Owned by the mapping: do not close it; dup() it to keep it.
 */
GM_API int gm_mapping_fd(const struct gm_mapping *m);

/* The offset in gm_mapping_fd() at which the mapping starts (0 without fd). */
GM_API uint64_t gm_mapping_fd_offset(const struct gm_mapping *m);

/* The GM_MAP_* flags the mapping was created with (memfd: with GM_MAP_SHARED). */
GM_API unsigned gm_mapping_flags(const struct gm_mapping *m);

/*
 * mprotect() the part [@offset, @offset + @len) of @m to @prot (PROT_*).
 * Returns 0, or -EINVAL if @m is NULL, @offset or @len is not aligned to
 * the mapping's page size, @len is 0, the range leaves the mapping (its
 * size rounded up to the page size), or @prot has bits other than
 * PROT_READ|PROT_WRITE|PROT_EXEC; -EACCES to make a GM_MAP_READONLY
 * mapping writable, or (from the kernel) a shared mapping of an fd opened
 * read-only; other errno from mprotect(). Guard pages cannot be reached.
 */
GM_API int gm_mapping_protect(struct gm_mapping *m, size_t offset, size_t len, int prot);

/*
 * The page size of the memory behind @m: the huge page size for hugetlb
 * memory (anonymous or hugetlbfs/MFD_HUGETLB fd), else the host page size.
 * Offsets and lengths given to gm_mapping_protect() and
 * gm_mapping_discard() are multiples of it.
 */
GM_API size_t gm_mapping_page_size(const struct gm_mapping *m);

/* Flags of gm_mapping_discard(). */
#define GM_DISCARD_LAZY (1u << 0) /* private anonymous memory only: MADV_FREE */

/*
 * Give the host memory behind bytes [@offset, @offset + @len) of @m back to
 * the host, as a balloon or a memory unplug needs, and report in *@freed
 * (may be NULL) how many bytes of host memory that released.
 *
 * How, by backing (what frees memory differs: MADV_DONTNEED frees nothing
 * of a shared memfd):
 *  - private anonymous: madvise(MADV_DONTNEED); the range reads as zeros.
 *    With GM_DISCARD_LAZY, madvise(MADV_FREE): the kernel takes the pages
 *    only when it needs memory, and until a page is written again it may
 *    read as zeros or as what it held;
 *  - shared anonymous: madvise(MADV_REMOVE); reads as zeros;
 *  - a shared fd (memfd, file, hugetlbfs): fallocate(FALLOC_FL_PUNCH_HOLE
 *    | FALLOC_FL_KEEP_SIZE) on the fd; every process mapping the fd then
 *    reads zeros there (a vhost-user back end too).
 * *@freed counts, for anonymous memory, the bytes of the range that held
 * pages of their own before (present and not the shared zero page:
 * /proc/self/pagemap, mincore() for shared memory), and for an fd the drop
 * of its allocated blocks (st_blocks), so a range that was a hole already
 * frees 0. Reading a discarded range of shared memory (a memfd, shared
 * anonymous memory) allocates zeroed pages again; reading private
 * anonymous memory does not.
 *
 * Returns 0, or:
 * -EINVAL   @m NULL, @len 0, @offset or @len not a multiple of
 *           gm_mapping_page_size() (a whole huge page for hugetlb memory),
 *           the range leaves the mapping (its size rounded up to the page
 *           size), an unknown flag, or GM_DISCARD_LAZY on memory that is not
 *           private anonymous;
 * -EACCES   a GM_MAP_READONLY mapping;
 * -EOPNOTSUPP a private (copy-on-write) mapping of an fd: its pages would
 *           read back as the file's contents, not zeros; or a file system
 *           that cannot punch holes;
 * -ENOMEM   no memory to count what is resident;
 * another negative errno from madvise()/fallocate()/fstat().
 * Nothing is discarded on an argument error. The caller makes sure nobody
 * still needs the data (guest memory given back by the guest).
 */
GM_API int gm_mapping_discard(struct gm_mapping *m, size_t offset, size_t len, unsigned flags,
			      uint64_t *freed);

#ifdef __cplusplus
}
#endif

#endif /* GUESTMEM_MAPPING_H */
