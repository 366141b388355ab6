/* SPDX-License-Identifier: MIT */
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
 *
 * Memory the peer can truncate (GM_MAP_PEER). A file mapped from another
 * process's fd (a vhost-user front end's guest memory, its inflight
 * buffer) can be shrunk by that process at any moment, and touching a
 * page past the new end raises SIGBUS, which kills the process by
 * default. A mapping made with GM_MAP_PEER is safe against that. Whether
 * the fd is a memfd sealed with F_SEAL_SHRINK is recorded at map time
 * (gm_mapping_sealed(); a seal cannot be removed): such a file never
 * shrinks, but the peer may still have handed over one shorter than the
 * window it named, so a sealed mapping is covered the same way. For every
 * GM_MAP_PEER mapping:
 *  - the first one installs a SIGBUS handler for the process (SA_SIGINFO,
 *    SA_ONSTACK) and keeps the action that was there before;
 *  - an access that faults inside such a mapping completes on private
 *    anonymous zero memory that replaces the faulting page (a read sees
 *    zeros, a write is kept only in this process), the mapping reads as
 *    gm_mapping_truncated() from then on, and the calling thread's
 *    gm_mapping_fault_count() goes up by one;
 *  - the data path's non-inline calls (gm_read(), gm_write(), their
 *    partial forms, the exported fixed-width and atomic accessors,
 *    gm_fill(), gm_copy()) compare that count before and after and fail
 *    with -EFAULT when it moved; fd I/O gets -EFAULT (or a short count)
 *    from the kernel. The inline fast path (static/memory-inline.h) and
 *    accesses through gm_host_ptr() or iovecs are not checked: they
 *    complete on zeros; a caller that needs to know brackets them with
 *    gm_mapping_fault_count();
 *  - a SIGBUS anywhere else (or of another kind than BUS_ADRERR, such as a
 *    hardware memory error) goes to the previous action: its handler is
 *    called, or the default action (death, core) happens as before.
 * Rules that follow: a replaced page stays replaced (a second access to it
 * reads zeros without a fault), so once gm_mapping_truncated() says true
 * the mapping's contents are no longer the peer's: stop using it. A
 * program that installs its own SIGBUS handler replaces ours until the
 * next peer mapping is made (which installs ours again, chaining to it).
 * A thread that touches peer memory must not block SIGBUS: the kernel
 * kills the process on a blocked synchronous SIGBUS, whatever the handler.
 * Cost: nothing on the inline path; one thread-local load before and one
 * after each non-inline access (no fence instruction, no system call); a
 * fault costs a signal and one mmap() (microseconds), once per page.
 */
#ifndef GUESTMEM_MAPPING_H
#define GUESTMEM_MAPPING_H

#include <guestmem/abi.h>
#include <guestmem/addr.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gm_mapping;

/*
 * Progress of a long operation: @done of @total bytes (of guest memory, of
 * file data or of stream payload: each function says). Called from the
 * thread that runs the operation, at least once at the end with @done ==
 * @total when it succeeds. Return 0 to go on, anything else to stop: the
 * operation then fails with -ECANCELED (a save leaves no file behind).
 * Used by the snapshot functions and by gm_mapping_prefault().
 */
typedef int (*gm_progress_fn)(void *opaque, uint64_t done, uint64_t total);

/* Flags for the constructors. */
#define GM_MAP_SHARED	 (1u << 0) /* MAP_SHARED: writes reach the fd / other processes */
#define GM_MAP_READONLY	 (1u << 1) /* PROT_READ only */
#define GM_MAP_HUGETLB	 (1u << 2) /* explicit huge pages (needs reserved hugepages) */
#define GM_MAP_THP	 (1u << 3) /* madvise(MADV_HUGEPAGE); aligned to gm_mapping_thp_size() */
#define GM_MAP_POPULATE	 (1u << 4) /* prefault every page now (failure: -EFAULT, Linux 5.14+) */
#define GM_MAP_NORESERVE (1u << 5) /* MAP_NORESERVE: no commit reservation (not hugetlb) */
#define GM_MAP_DONTDUMP	 (1u << 6) /* madvise(MADV_DONTDUMP): keep guest RAM out of core dumps */
#define GM_MAP_MERGEABLE (1u << 7) /* madvise(MADV_MERGEABLE): allow KSM */
#define GM_MAP_GUARD	 (1u << 8) /* an inaccessible page just before and just after */
#define GM_MAP_PEER	 (1u << 9) /* gm_mapping_new_fd(): another process may shrink the fd */

/* Every flag above; any other bit is rejected with -EINVAL. */
#define GM_MAP_ALL_FLAGS 0x3ffu

/*
 * Map @size bytes of zeroed anonymous memory.
 * GM_MAP_SHARED makes it MAP_SHARED|MAP_ANONYMOUS (shared across fork()).
 * Memory of small pages of gm_mapping_thp_size() or more starts at a
 * multiple of it, GM_MAP_THP or not (as the kernel places large anonymous
 * mmap()s), so the system's THP policy can back it with huge pages;
 * gm_mapping_new_memfd() alike.
 * Returns 0 and *@out holding one reference, or:
 * -EINVAL   @out NULL, @size 0, unknown flag, GM_MAP_PEER, or a flag
 *           combination that makes no sense (GM_MAP_HUGETLB with GM_MAP_THP);
 * -EOVERFLOW @size plus guard pages / alignment does not fit size_t;
 * -ENOMEM   no address space or memory, or, with GM_MAP_HUGETLB, a huge
 *           page pool too small for @size (see below);
 * -EFAULT   GM_MAP_POPULATE could not fault a page in;
 * another negative errno from mmap()/madvise().
 * Hugetlb memory fails early: every huge page is reserved from the pool
 * when the mapping is made (GM_MAP_NORESERVE is ignored for it), so a
 * short pool is -ENOMEM here and never a SIGBUS on a later first touch.
 * The pool is the one of the default huge page size (gm_mapping_page_size()
 * of the result; gm_mapping_hugepage_info(0, ...) names it and counts its
 * free pages); it grows through /proc/sys/vm/nr_hugepages or the pool's
 * nr_hugepages file. One thing reservation cannot cover: a NUMA policy
 * that allows only nodes whose part of the pool is empty still faults.
 */
GM_API int gm_mapping_new_anon(size_t size, unsigned flags, struct gm_mapping **out);

/*
 * Map @size bytes of @fd starting at @offset (a regular file, a memfd,
 * shared memory, hugetlbfs). The mapping keeps its own duplicate of @fd
 * (close-on-exec), so the caller may close @fd at once.
 * Without GM_MAP_SHARED the mapping is MAP_PRIVATE: writes stay in this
 * process (copy-on-write), as for a snapshot restored "instantly".
 * GM_MAP_PEER: @fd comes from a process that may shrink it (or hand over a
 * file shorter than the window): accesses past its end are contained (see
 * the top of this file) instead of killing the process.
 * Returns 0 and *@out, or:
 * -EINVAL   @fd < 0, @out NULL, @size 0, @offset not page aligned (for a
 *           hugetlbfs fd: not huge page aligned), unknown flag, or
 *           GM_MAP_HUGETLB / GM_MAP_THP (the fd decides its page size);
 * -EOVERFLOW @offset + @size wraps, or does not fit off_t, or @size plus
 *           guard pages does not fit size_t;
 * -EFAULT   GM_MAP_POPULATE and the window runs past the end of the file;
 * -ENOMEM   no memory for the object or no address space;
 * -EBADF, -EACCES, -ENODEV ... from fcntl()/fstatfs()/mmap()/madvise(),
 *           or from sigaction() when installing the handler (GM_MAP_PEER).
 * A hugetlbfs fd is mapped with its pages reserved (GM_MAP_NORESERVE is
 * ignored): the pages of the window not yet allocated in the file come from
 * the pool now, and a short pool is -ENOMEM.
 * Without GM_MAP_POPULATE a window past the end of the file maps, and
 * touching a page wholly past it raises SIGBUS (the file may grow later);
 * with GM_MAP_PEER that access is contained like a truncation.
 */
GM_API int gm_mapping_new_fd(int fd, uint64_t offset, size_t size, unsigned flags,
			     struct gm_mapping **out);

/*
 * Create a memfd called @name (shown in /proc/PID/maps; may not be NULL),
 * size it to @size, and map it shared. gm_mapping_fd() gives the fd to hand
 * to another process (a vhost-user back end). GM_MAP_SHARED is implied.
 * GM_MAP_HUGETLB creates the memfd with MFD_HUGETLB; its huge pages are
 * reserved at creation as for gm_mapping_new_anon() (short pool: -ENOMEM).
 * Returns 0 and *@out, or the errors of gm_mapping_new_anon() (-EINVAL
 * also for a NULL @name and for GM_MAP_PEER; -EOVERFLOW also when @size rounded up to the
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
 * Whether @m was made with GM_MAP_PEER from a memfd sealed with
 * F_SEAL_SHRINK: its file can never shrink (accesses past the end of a
 * file that was short from the start are still contained). False for every
 * other mapping.
 */
GM_API bool gm_mapping_sealed(const struct gm_mapping *m);

/*
 * Whether an access to @m faulted past the end of its file and was
 * completed on zero memory (GM_MAP_PEER, unsealed). Once true, stays true:
 * the peer broke the mapping and its contents are no longer shared.
 * Thread-safe.
 */
GM_API bool gm_mapping_truncated(const struct gm_mapping *m);

/*
 * How many faults in GM_MAP_PEER mappings the calling thread has had
 * completed on zero memory (wraps at UINT_MAX). Compare it before and
 * after accesses the library does not check (the inline accessors,
 * pointers from gm_host_ptr(), iovecs): a change means some of them saw
 * truncated memory. Async-signal-safe; one thread-local load.
 */
GM_API unsigned gm_mapping_fault_count(void);

/*
 * mprotect() the part [@offset, @offset + @len) of @m to @prot (PROT_*).
 * Returns 0, or -EINVAL if @m is NULL, @offset or @len is not aligned to
 * the mapping's page size, @len is 0, the range leaves the mapping (its
 * size rounded up to the page size), or @prot has bits other than
 * PROT_READ|PROT_WRITE|PROT_EXEC; -EACCES to make a GM_MAP_READONLY
 * mapping writable, or (from the kernel) a shared mapping of an fd opened
 * read-only; other errno from mprotect(). Guard pages cannot be reached.
 * In a GM_MAP_PEER mapping, a page replaced after a truncation gets every
 * protection given to the mapping so far (its contents are private zeros).
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
 * frees 0 (and 0 too when the blocks cannot be counted after the hole is
 * punched: the discard is done, and reported as done). Reading a
 * discarded range of shared memory (a memfd, shared anonymous memory)
 * allocates zeroed pages again; reading private anonymous memory does not.
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

/* Flags of struct gm_prefault_opts. */
#define GM_PREFAULT_TOUCH (1u << 0) /* touch each page even where MADV_POPULATE_WRITE exists */

/* Options of gm_mapping_prefault() and gm_space_prefault(). NULL = all defaults (abi.h). */
struct gm_prefault_opts {
	size_t sz;		 /* sizeof(struct gm_prefault_opts): GM_OPTS(), abi.h */
	unsigned threads;	 /* threads to fault with, the caller's included; 0: one per
				    CPU this thread may run on (sched_getaffinity) */
	unsigned flags;		 /* GM_PREFAULT_* */
	gm_progress_fn progress; /* bytes faulted in so far of all; may be NULL */
	void *opaque;		 /* passed to @progress */
};

/*
 * Fault in bytes [@offset, @offset + @len) of @m now, with several threads,
 * so that the guest (or a latency-sensitive device) never waits on a first
 * touch, and so a backing that cannot supply its memory fails here.
 * Each page is faulted in once: writable (read-only for a GM_MAP_READONLY
 * mapping), with madvise(MADV_POPULATE_WRITE/READ) where the kernel has it
 * (Linux 5.14+), else by touching each page (an atomic add of zero: the
 * contents do not change, even under concurrent writers). The work is cut
 * into 2 MiB chunks (one huge page where pages are larger) which the
 * threads take in turn; the calling thread is one of them, and the only one
 * that calls @opts->progress (after each chunk it finishes, with the bytes
 * all threads finished, and once at the end). A NUMA policy set on the
 * memory (gm_mapping_set_policy()) decides where the pages land, whichever
 * CPU faults them. Already present pages cost a page-table walk.
 * Returns 0 when every page is in; -EINVAL (@m NULL, @len 0, @offset or
 * @len not a multiple of gm_mapping_page_size(), the range leaves the
 * mapping, an unknown flag), the sized-struct errors of abi.h, -ECANCELED
 * (@progress returned non-zero: the other threads finish the chunk they
 * hold and stop; what was faulted in stays), -ENOMEM, -EFAULT (a page
 * could not be faulted in: a file shorter than the mapping), another errno
 * of madvise(). Every thread it started has ended when it returns.
 * Without MADV_POPULATE_* a page that cannot be faulted in raises SIGBUS as
 * any access would (contained for GM_MAP_PEER). Thread-safe.
 */
GM_API int gm_mapping_prefault(struct gm_mapping *m, size_t offset, size_t len,
			       const struct gm_prefault_opts *opts);

/* Modes of struct gm_numa_policy: the kernel's MPOL_* values. */
#define GM_NUMA_DEFAULT	   0u /* the process's policy (usually: the faulting CPU's node) */
#define GM_NUMA_PREFERRED  1u /* the first node of @nodes, others when it is full */
#define GM_NUMA_BIND	   2u /* only the nodes of @nodes; none free: the fault fails */
#define GM_NUMA_INTERLEAVE 3u /* page by page round the nodes of @nodes */

/* A NUMA memory policy. A sized struct (abi.h): make it with GM_OPTS(). */
struct gm_numa_policy {
	size_t sz;	/* sizeof(struct gm_numa_policy): GM_OPTS(), abi.h */
	unsigned mode;	/* GM_NUMA_* */
	uint64_t nodes; /* bit n: node n (nodes 0-63); 0 for GM_NUMA_DEFAULT only */
};

/*
 * Set the NUMA policy of bytes [@offset, @offset + @len) of @m with mbind()
 * (the system call; no libnuma): each page is then allocated on the
 * policy's nodes when it is first faulted in, by any thread (the guest's
 * vCPUs, gm_mapping_prefault()'s threads). Call it before the memory is
 * touched: pages already present stay where they are. For a memfd or
 * another shared fd the policy is the file's, seen by every process
 * mapping it. A policy lasts as long as the mapping (a later call on the
 * same range replaces it; GM_NUMA_DEFAULT with nodes 0 removes it).
 * Returns 0, or -EINVAL (@m or @policy NULL, @len 0, an unknown mode,
 * nodes 0 with a mode other than GM_NUMA_DEFAULT or nodes with it, the
 * range not on gm_mapping_page_size() boundaries or leaving the mapping;
 * from the kernel: a node that does not exist or is not allowed by the
 * cpuset), the sized-struct errors of abi.h, -ENOSYS (a kernel without
 * NUMA), -EPERM, -ENOMEM, another errno of mbind(). Thread-safe.
 */
GM_API int gm_mapping_set_policy(struct gm_mapping *m, size_t offset, size_t len,
				 const struct gm_numa_policy *policy);

/*
 * The size of a transparent huge page on this host: the kernel's PMD size
 * (/sys/kernel/mm/transparent_hugepage/hpage_pmd_size; 2 MiB on x86-64, 512
 * MiB on arm64 with 64 KiB pages), 2 MiB if the kernel does not say.
 * GM_MAP_THP mappings start at a multiple of it. Thread-safe.
 */
GM_API size_t gm_mapping_thp_size(void);

/* One hugetlb page pool, as gm_mapping_hugepage_info() reads it. A sized struct (abi.h). */
struct gm_hugepage_info {
	size_t sz;	     /* sizeof(struct gm_hugepage_info): GM_OPTS(), abi.h */
	size_t page_size;    /* the pool's huge page size, bytes */
	uint64_t total;	     /* pages in the pool (nr_hugepages) */
	uint64_t free;	     /* pages not in use (free_hugepages), reserved ones included */
	uint64_t reserved;   /* free pages promised to mappings (resv_hugepages) */
	uint64_t surplus;    /* pages above total, from overcommit (surplus_hugepages) */
	uint64_t overcommit; /* how many surplus pages may exist (nr_overcommit_hugepages) */
	char pool[64];	     /* the pool's sysfs directory; its nr_hugepages resizes it */
};

/*
 * Read the pool of huge pages of @page_size bytes (0: the default huge page
 * size, the one GM_MAP_HUGETLB uses) into *@info, so a caller whose hugetlb
 * mapping failed with -ENOMEM can say which pool was short and by how much:
 * a mapping of N pages needs N <= free - reserved + overcommit - surplus.
 * The pool of the default size is also /proc/sys/vm/nr_hugepages.
 * Returns 0, or -EINVAL (@info NULL or its sz below sizeof(size_t), a
 * @page_size that is not a power of two of at least 1 KiB), -ENOENT (the
 * kernel has no pool of that size, or no hugetlb at all), or another errno
 * of reading sysfs. *@info gets at most its sz bytes (abi.h). Thread-safe.
 */
GM_API int gm_mapping_hugepage_info(size_t page_size, struct gm_hugepage_info *info);

#ifdef __cplusplus
}
#endif

#endif /* GUESTMEM_MAPPING_H */
