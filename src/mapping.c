/* SPDX-License-Identifier: MIT */
/*
 * mapping.c - host memory mappings that back guest memory.
 *
 * The mapping layer owns the mmap() calls of guestmem. Each constructor
 * follows the same recipe so that alignment, guard pages and flags behave
 * the same for anonymous memory, memfds and callers' fds:
 *
 *   1. reserve an inaccessible (PROT_NONE) range big enough for the guards
 *      and for moving the start to the alignment the memory needs (the
 *      kernel's PMD size for THP, gm_mapping_thp_size(); the huge page
 *      size for hugetlb, whose pages are always reserved here: a short
 *      pool fails the mmap() instead of a later fault);
 *   2. map the memory itself with MAP_FIXED at an aligned address inside
 *      that reservation;
 *   3. give back the slack before and after; what stays of the
 *      reservation on either side is the guard;
 *   4. apply the madvise() flags, then prefault if asked.
 *
 * The memory layer (src/memory/) points into mappings and holds references
 * on them; a mapping is unmapped only when its last reference is dropped.
 *
 * Invariants of a struct gm_mapping:
 *   1. [host, host + len) is mapped with the constructor's protection (or
 *      what gm_mapping_protect() set since), len = size rounded up to
 *      page; page is the host page size or the huge page size backing it.
 *   2. The whole address range this object owns is
 *      [host - guard, host + len + guard); guard is 0 or page, and the
 *      guard parts are PROT_NONE for the mapping's whole life.
 *   3. fd is -1 for anonymous memory, else a close-on-exec fd owned by
 *      the mapping and closed only by the final gm_mapping_put().
 *   4. refs counts the references; the object is freed when it drops to
 *      0 and never used again (a get on a dead mapping is the caller's bug).
 *   5. A GM_MAP_PEER mapping, sealed or not, has a registry slot (slot !=
 *      NULL) from the constructor until just before its munmap(); no
 *      other mapping has one. (A seal stops the file shrinking, not a
 *      peer handing over a file shorter than the window it names, nor a
 *      back end replacing what lies under its own mapping.)
 *
 * Peer mappings (GM_MAP_PEER) are listed in the registry of
 * mapping-peer.c, whose SIGBUS handler contains a peer's truncation.
 */
#include <guestmem/mapping.h>

#include "abi-internal.h"
#include "mapping-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef F_GET_SEALS
#define F_GET_SEALS   1034 /* F_LINUX_SPECIFIC_BASE + 10 */
#define F_SEAL_SHRINK 0x0002
#endif

/*
 * What to assume when the kernel does not say: the PMD size of x86-64 and
 * of arm64 with 4 KiB pages. Only a fallback; the real sizes are read.
 */
#define PMD_FALLBACK ((size_t)2 << 20)

struct gm_mapping {
	unsigned refs;		    /* atomic (invariant 4) */
	unsigned flags;		    /* GM_MAP_* given to the constructor */
	void *host;		    /* first usable byte */
	size_t size;		    /* usable size as asked for */
	size_t len;		    /* size rounded up to page (invariant 1) */
	size_t page;		    /* page size backing the memory */
	size_t guard;		    /* 0 or page (invariant 2) */
	int fd;			    /* -1 or owned (invariant 3) */
	uint64_t fd_offset;	    /* 0 without fd */
	bool sealed;		    /* GM_MAP_PEER and the fd had F_SEAL_SHRINK */
	unsigned truncated;	    /* atomic: set by the SIGBUS handler */
	struct gm__peer_slot *slot; /* invariant 5 */
};

/* How to call mmap() for the memory itself, decided by each constructor. */
struct map_request {
	int mmap_flags; /* MAP_SHARED or MAP_PRIVATE, MAP_ANONYMOUS, MAP_HUGETLB */
	off_t offset;	/* in m->fd */
	size_t align;	/* required alignment of the start, a power of two >= page */
};

static size_t host_page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * The default huge page size (what MAP_HUGETLB uses), from /proc/meminfo.
 * Falls back to 2 MiB if the kernel does not say; mmap() then reports
 * whatever is wrong.
 */
static size_t default_huge_page_size(void)
{
	char line[128];
	unsigned long kib;
	size_t size = PMD_FALLBACK;
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return size;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Hugepagesize: %lu kB", &kib) == 1) {
			size = (size_t)kib << 10;
			break;
		}
	}
	fclose(f);
	return size;
}

/*
 * Read one unsigned number from the file @path. Returns 0 and *@v, or
 * -errno of open()/read(), or -EINVAL if it does not hold a number.
 */
static int read_u64_file(const char *path, uint64_t *v)
{
	char buf[32];
	ssize_t n;
	char *end;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? -errno : -EINVAL;
	buf[n] = '\0';
	errno = 0;
	*v = strtoull(buf, &end, 10);
	if (end == buf || errno)
		return -EINVAL;
	return 0;
}

GM_API size_t gm_mapping_thp_size(void)
{
	/* Read once: the PMD size is fixed for the life of the kernel. */
	static size_t cached;
	size_t size = __atomic_load_n(&cached, __ATOMIC_RELAXED);
	uint64_t v;

	if (size)
		return size;
	if (read_u64_file("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", &v) == 0 &&
	    v >= host_page_size() && v <= SIZE_MAX / 2 && (v & (v - 1)) == 0)
		size = (size_t)v;
	else
		size = PMD_FALLBACK;
	__atomic_store_n(&cached, size, __ATOMIC_RELAXED);
	return size;
}

GM_API int gm_mapping_hugepage_info(size_t page_size, struct gm_hugepage_info *info)
{
	static const char *const names[] = {"nr_hugepages", "free_hugepages", "resv_hugepages",
					    "surplus_hugepages", "nr_overcommit_hugepages"};
	struct gm_hugepage_info out = {.sz = sizeof(out)};
	uint64_t *fields[] = {&out.total, &out.free, &out.reserved, &out.surplus, &out.overcommit};
	char path[160];
	int n, err;

	if (!info || gm__abi_check_out(info))
		return -EINVAL;
	if (page_size == 0)
		page_size = default_huge_page_size();
	if (page_size < 1024 || (page_size & (page_size - 1)))
		return -EINVAL;
	out.page_size = page_size;
	n = snprintf(out.pool, sizeof(out.pool), "/sys/kernel/mm/hugepages/hugepages-%zukB",
		     page_size >> 10);
	if (n < 0 || (size_t)n >= sizeof(out.pool))
		return -EINVAL;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", out.pool, names[i]);
		err = read_u64_file(path, fields[i]);
		if (err)
			return err; /* -ENOENT: no pool of that size */
	}
	return GM_ABI_COPY_OUT(info, &out);
}

/*
 * The page size of the memory behind @fd: the huge page size for hugetlbfs
 * (including MFD_HUGETLB memfds), else the host page size.
 * Returns 0 and *@page, or -errno of fstatfs().
 */
static int fd_page_size(int fd, size_t *page)
{
	struct statfs st;

	if (fstatfs(fd, &st) < 0)
		return -errno;
	if ((unsigned long)st.f_type == (unsigned long)HUGETLBFS_MAGIC && st.f_bsize > 0)
		*page = (size_t)st.f_bsize;
	else
		*page = host_page_size();
	return 0;
}

/*
 * Whether @v can be a file offset. off_t is 64 bits here
 * (_FILE_OFFSET_BITS=64), also on 32-bit hosts.
 */
static bool fits_off_t(uint64_t v)
{
	return v <= (uint64_t)INT64_MAX;
}

/* Round @v up to @align (a power of two). Returns 0 or -EOVERFLOW. */
static int round_up_size(size_t v, size_t align, size_t *out)
{
	size_t t;

	if (gm_add_overflow_size(v, align - 1, &t))
		return -EOVERFLOW;
	*out = t & ~(align - 1);
	return 0;
}

/*
 * Whether the kernel has MADV_POPULATE_READ/WRITE (Linux 5.14+), which,
 * unlike MAP_POPULATE, reports failure. An unknown advice is -EINVAL even
 * for an empty range, which makes the probe free.
 */
static int madvise_populate_works(void *page_aligned)
{
#ifdef MADV_POPULATE_WRITE
	return madvise(page_aligned, 0, MADV_POPULATE_WRITE) == 0;
#else
	(void)page_aligned;
	return 0;
#endif
}

/* madvise() the usable range as @m's flags ask. Returns 0 or -errno. */
static int apply_advice(struct gm_mapping *m, int populate_by_madvise)
{
	if ((m->flags & GM_MAP_THP) && madvise(m->host, m->len, MADV_HUGEPAGE) < 0)
		return -errno;
	if ((m->flags & GM_MAP_DONTDUMP) && madvise(m->host, m->len, MADV_DONTDUMP) < 0)
		return -errno;
	if ((m->flags & GM_MAP_MERGEABLE) && madvise(m->host, m->len, MADV_MERGEABLE) < 0)
		return -errno;
#ifdef MADV_POPULATE_WRITE
	/* Last, so THP advice is in place when the pages are faulted in. */
	if ((m->flags & GM_MAP_POPULATE) && populate_by_madvise) {
		int advice =
		    (m->flags & GM_MAP_READONLY) ? MADV_POPULATE_READ : MADV_POPULATE_WRITE;

		if (madvise(m->host, m->len, advice) < 0)
			return -errno;
	}
#else
	(void)populate_by_madvise;
#endif
	return 0;
}

/*
 * Steps 1-4 of the file comment for @m, whose flags, size, page, guard and
 * fd fields are set. On failure nothing stays mapped.
 */
static int map_memory(struct gm_mapping *m, const struct map_request *req)
{
	/* The reservation is only host-page aligned, whatever page backs @m. */
	size_t slack = req->align - host_page_size();
	size_t total, head, tail;
	char *res, *host;
	int prot = (m->flags & GM_MAP_READONLY) ? PROT_READ : PROT_READ | PROT_WRITE;
	/*
	 * Hugetlb memory is always reserved, whatever GM_MAP_NORESERVE says:
	 * the kernel then takes the huge pages from the pool at mmap() time
	 * and a short pool fails here with -ENOMEM. Unreserved, a missing
	 * huge page is a SIGBUS on whichever access first touches it.
	 */
	bool noreserve = (m->flags & GM_MAP_NORESERVE) && m->page == host_page_size();
	int mmap_flags = req->mmap_flags | MAP_FIXED | (noreserve ? MAP_NORESERVE : 0);
	int populate_by_madvise = 0;
	int err;

	err = round_up_size(m->size, m->page, &m->len);
	if (err)
		return err;
	if (gm_add_overflow_size(m->len, m->guard, &total) ||
	    gm_add_overflow_size(total, m->guard, &total) ||
	    gm_add_overflow_size(total, slack, &total))
		return -EOVERFLOW;

	res = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return -errno;

	if (m->flags & GM_MAP_POPULATE) {
		populate_by_madvise = madvise_populate_works(res);
		if (!populate_by_madvise)
			mmap_flags |= MAP_POPULATE;
	}

	/* Rounding up moves the start by at most slack: it stays inside. */
	host =
	    (char *)(((uintptr_t)res + m->guard + req->align - 1) & ~(uintptr_t)(req->align - 1));
	if (mmap(host, m->len, prot, mmap_flags, m->fd, req->offset) == MAP_FAILED) {
		/*
		 * A failed MAP_FIXED may already have unmapped that part of
		 * the reservation (hugetlb accounting fails late). Unmapping
		 * the whole reservation is still right unless another thread
		 * mmap()s into that hole in the few instructions between; the
		 * same window every reserve-then-MAP_FIXED allocator has.
		 */
		err = -errno;
		goto err_unreserve;
	}

	head = (size_t)(host - m->guard - res);
	tail = total - head - m->guard - m->len - m->guard;
	if (head)
		munmap(res, head);
	if (tail)
		munmap(host + m->len + m->guard, tail);
	m->host = host;

	err = apply_advice(m, populate_by_madvise);
	if (err)
		goto err_unmap;
	return 0;

err_unmap:
	munmap(host - m->guard, m->len + 2 * m->guard);
	return err;
err_unreserve:
	munmap(res, total);
	return err;
}

/*
 * The last step of every constructor: map @m and hand it to @out. On
 * failure @m is released (its fd, if it has one, and itself).
 */
static int map_new(struct gm_mapping *m, const struct map_request *req, struct gm_mapping **out)
{
	int err = map_memory(m, req);

	if (!err && (m->flags & GM_MAP_PEER)) {
		err = gm__peer_register(m->host, m->len, m->page,
					(m->flags & GM_MAP_READONLY) ? PROT_READ
								     : PROT_READ | PROT_WRITE,
					&m->truncated, &m->slot);
		if (err)
			munmap((char *)m->host - m->guard, m->len + 2 * m->guard);
	}
	if (err) {
		if (m->fd >= 0)
			close(m->fd);
		free(m);
		return err;
	}
	*out = m;
	return 0;
}

static struct gm_mapping *mapping_alloc(size_t size, unsigned flags)
{
	struct gm_mapping *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->refs = 1;
	m->flags = flags;
	m->size = size;
	m->fd = -1;
	return m;
}

/* Reject what every constructor rejects. */
static int check_common(size_t size, unsigned flags, struct gm_mapping **out)
{
	if (!out || size == 0 || (flags & ~GM_MAP_ALL_FLAGS))
		return -EINVAL;
	if ((flags & GM_MAP_HUGETLB) && (flags & GM_MAP_THP))
		return -EINVAL;
	return 0;
}

/*
 * The alignment of the start for @m's flags and size. GM_MAP_THP needs a
 * THP's size (gm_mapping_thp_size()). Without it, memory of small pages
 * that can hold a THP starts THP aligned too, as the kernel places large
 * anonymous mmap()s:
 * THP under the system's "always" policy can then back all of it, where a
 * start off by one small page leaves every 2 MiB of it on small pages (and
 * the data path on TLB misses). Best effort: a size above half the address
 * space keeps page alignment, so the slack never overflows.
 */
static size_t start_align(const struct gm_mapping *m)
{
	size_t thp = gm_mapping_thp_size();

	if (thp <= m->page)
		return m->page;
	if ((m->flags & GM_MAP_THP) || (m->size >= thp && m->size <= SIZE_MAX / 2))
		return thp;
	return m->page;
}

GM_API int gm_mapping_new_anon(size_t size, unsigned flags, struct gm_mapping **out)
{
	struct map_request req = {.offset = 0};
	struct gm_mapping *m;
	int err;

	err = check_common(size, flags, out);
	if (err)
		return err;
	if (flags & GM_MAP_PEER)
		return -EINVAL; /* no other process has this memory */
	m = mapping_alloc(size, flags);
	if (!m)
		return -ENOMEM;
	m->page = (flags & GM_MAP_HUGETLB) ? default_huge_page_size() : host_page_size();
	m->guard = (flags & GM_MAP_GUARD) ? m->page : 0;

	req.mmap_flags = MAP_ANONYMOUS | ((flags & GM_MAP_SHARED) ? MAP_SHARED : MAP_PRIVATE);
	if (flags & GM_MAP_HUGETLB)
		req.mmap_flags |= MAP_HUGETLB;
	req.align = start_align(m);
	return map_new(m, &req, out);
}

GM_API int gm_mapping_new_fd(int fd, uint64_t offset, size_t size, unsigned flags,
			     struct gm_mapping **out)
{
	struct map_request req;
	struct gm_mapping *m;
	uint64_t end;
	int err;

	err = check_common(size, flags, out);
	if (err)
		return err;
	if (fd < 0 || (flags & (GM_MAP_HUGETLB | GM_MAP_THP)) ||
	    !gm_is_aligned(offset, host_page_size()))
		return -EINVAL;
	if (gm_add_overflow_u64(offset, size, &end) || !fits_off_t(end))
		return -EOVERFLOW;

	m = mapping_alloc(size, flags);
	if (!m)
		return -ENOMEM;
	m->fd_offset = offset;
	m->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (m->fd < 0) {
		err = -errno;
		goto err_free;
	}
	err = fd_page_size(m->fd, &m->page);
	if (err)
		goto err_close;
	if (flags & GM_MAP_PEER) {
		/* Not a memfd (-EINVAL): no seals, so the peer can shrink it. */
		int seals = fcntl(m->fd, F_GET_SEALS);

		m->sealed = seals >= 0 && (seals & F_SEAL_SHRINK);
	}
	/* A hugetlbfs fd can only be mapped at huge-page-aligned offsets. */
	if (!gm_is_aligned(offset, m->page)) {
		err = -EINVAL;
		goto err_close;
	}
	m->guard = (flags & GM_MAP_GUARD) ? m->page : 0;

	req.mmap_flags = (flags & GM_MAP_SHARED) ? MAP_SHARED : MAP_PRIVATE;
	req.offset = (off_t)offset;
	req.align = m->page;
	return map_new(m, &req, out);

err_close:
	close(m->fd);
err_free:
	free(m);
	return err;
}

GM_API int gm_mapping_new_memfd(const char *name, size_t size, unsigned flags,
				struct gm_mapping **out)
{
	struct map_request req = {.offset = 0};
	struct gm_mapping *m;
	size_t file_len;
	int err;

	err = check_common(size, flags, out);
	if (err)
		return err;
	if (!name || (flags & GM_MAP_PEER))
		return -EINVAL; /* our own memfd: nobody else can shrink it yet */
	flags |= GM_MAP_SHARED;

	m = mapping_alloc(size, flags);
	if (!m)
		return -ENOMEM;
	m->fd = memfd_create(name, MFD_CLOEXEC | ((flags & GM_MAP_HUGETLB) ? MFD_HUGETLB : 0));
	if (m->fd < 0) {
		err = -errno;
		goto err_free;
	}
	err = fd_page_size(m->fd, &m->page);
	if (err)
		goto err_close;
	m->guard = (flags & GM_MAP_GUARD) ? m->page : 0;

	/* hugetlbfs files can only be sized in whole huge pages. */
	err = round_up_size(size, m->page, &file_len);
	if (err)
		goto err_close;
	if (!fits_off_t(file_len)) {
		err = -EOVERFLOW;
		goto err_close;
	}
	if (ftruncate(m->fd, (off_t)file_len) < 0) {
		err = -errno;
		goto err_close;
	}

	req.mmap_flags = MAP_SHARED;
	req.align = start_align(m);
	return map_new(m, &req, out);

err_close:
	close(m->fd);
err_free:
	free(m);
	return err;
}

GM_API struct gm_mapping *gm_mapping_get(struct gm_mapping *m)
{
	/* Relaxed: the caller already holds a reference, so @m cannot die here. */
	__atomic_fetch_add(&m->refs, 1, __ATOMIC_RELAXED);
	return m;
}

GM_API void gm_mapping_put(struct gm_mapping *m)
{
	if (!m)
		return;
	/*
	 * Release orders this thread's uses of the memory before the drop;
	 * acquire, on the final drop, orders every other thread's released
	 * uses before the munmap() below (invariant 4).
	 */
	if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (m->slot) {
		gm__peer_unregister(m->slot);
		m->slot = NULL;
	}
	munmap((char *)m->host - m->guard, m->len + 2 * m->guard);
	if (m->fd >= 0)
		close(m->fd);
	free(m);
}

GM_API void *gm_mapping_host(const struct gm_mapping *m)
{
	return m->host;
}

GM_API size_t gm_mapping_size(const struct gm_mapping *m)
{
	return m->size;
}

GM_API int gm_mapping_fd(const struct gm_mapping *m)
{
	return m->fd;
}

GM_API uint64_t gm_mapping_fd_offset(const struct gm_mapping *m)
{
	return m->fd_offset;
}

GM_API unsigned gm_mapping_flags(const struct gm_mapping *m)
{
	return m->flags;
}

GM_API bool gm_mapping_sealed(const struct gm_mapping *m)
{
	return m->sealed;
}

GM_API bool gm_mapping_truncated(const struct gm_mapping *m)
{
	return __atomic_load_n(&m->truncated, __ATOMIC_RELAXED) != 0;
}

GM_API unsigned gm_mapping_fault_count(void)
{
	return gm__peer_fault_count();
}

GM_API int gm_mapping_protect(struct gm_mapping *m, size_t offset, size_t len, int prot)
{
	if (!m || len == 0 || !gm_is_aligned(offset, m->page) || !gm_is_aligned(len, m->page))
		return -EINVAL;
	if (offset > m->len || len > m->len - offset)
		return -EINVAL;
	if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC))
		return -EINVAL;
	if ((m->flags & GM_MAP_READONLY) && (prot & PROT_WRITE))
		return -EACCES;
	/*
	 * A truncated page of a peer mapping comes back with every protection
	 * the range ever had, so an access that was allowed never turns into
	 * SIGSEGV; the page is private zero memory then, nobody else's.
	 */
	if (m->slot)
		gm__peer_add_prot(m->slot, prot);
	if (mprotect((char *)m->host + offset, len, prot) < 0)
		return -errno;
	return 0;
}

GM_API size_t gm_mapping_page_size(const struct gm_mapping *m)
{
	return m->page;
}

/*
 * Bytes of [@addr, @addr + @len) that hold memory of their own now: pages
 * present in /proc/self/pagemap that this process maps exclusively (bit
 * 56), which leaves out the shared zero page that reads of discarded
 * private memory map, and mincore() residency where the page is shared
 * (shared anonymous memory has no zero page: every present page is its
 * own). Read a chunk at a time so a large range costs little memory.
 * Returns 0 and *@bytes, or -ENOMEM / -errno of open()/pread()/mincore().
 */
static int resident_bytes(char *addr, size_t len, bool shared, uint64_t *bytes)
{
	const size_t host_page = host_page_size();
	const size_t chunk = 4096; /* pages per call: 16 MiB of 4 KiB pages */
	uint64_t *entries = malloc(chunk * sizeof(*entries));
	unsigned char *vec = (unsigned char *)entries;
	uint64_t pages = 0;
	int fd = -1, err = 0;

	if (!entries)
		return -ENOMEM;
	if (!shared && (fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) < 0) {
		err = -errno;
		goto out;
	}
	for (size_t done = 0; done < len;) {
		size_t n = (len - done) / host_page < chunk ? (len - done) / host_page : chunk;
		uint64_t first = ((uintptr_t)addr + done) / host_page;

		if (shared) {
			if (mincore(addr + done, n * host_page, vec) < 0) {
				err = -errno;
				goto out;
			}
			for (size_t i = 0; i < n; i++)
				pages += vec[i] & 1;
		} else {
			ssize_t got = pread(fd, entries, n * sizeof(*entries),
					    (off_t)(first * sizeof(*entries)));

			if (got != (ssize_t)(n * sizeof(*entries))) {
				err = got < 0 ? -errno : -EIO;
				goto out;
			}
			for (size_t i = 0; i < n; i++)
				pages += (entries[i] >> 63) & (entries[i] >> 56) & 1;
		}
		done += n * host_page;
	}
	*bytes = pages * host_page;
out:
	if (fd >= 0)
		close(fd);
	free(entries);
	return err;
}

/* The bytes of @fd's file allocated on disk or in memory (st_blocks). */
static int allocated_bytes(int fd, uint64_t *bytes)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	*bytes = (uint64_t)st.st_blocks * 512u;
	return 0;
}

/* Punch [@offset, @offset + @len) of @m out of its fd; *@freed: the blocks it released. */
static int discard_fd(struct gm_mapping *m, size_t offset, size_t len, uint64_t *freed)
{
	uint64_t before = 0, after = 0;
	int err = allocated_bytes(m->fd, &before);

	if (err)
		return err;
	/* m->fd_offset + offset + len fits off_t: the constructor checked the window. */
	if (fallocate(m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)(m->fd_offset + offset), (off_t)len) < 0)
		return errno == ENOTSUP ? -EOPNOTSUPP : -errno;
	/*
	 * The hole is punched: the discard happened, and an error now would
	 * tell the caller the memory is as it was. Without a second count
	 * the bytes freed are not known: say none.
	 */
	if (allocated_bytes(m->fd, &after) < 0)
		after = before;
	*freed = before > after ? before - after : 0;
	return 0;
}

GM_API int gm_mapping_discard(struct gm_mapping *m, size_t offset, size_t len, unsigned flags,
			      uint64_t *freed)
{
	char *addr;
	uint64_t bytes = 0;
	int advice, err;

	if (!m || len == 0 || (flags & ~GM_DISCARD_LAZY))
		return -EINVAL;
	if (!gm_is_aligned(offset, m->page) || !gm_is_aligned(len, m->page) || offset > m->len ||
	    len > m->len - offset)
		return -EINVAL;
	if ((flags & GM_DISCARD_LAZY) && (m->fd >= 0 || (m->flags & GM_MAP_SHARED)))
		return -EINVAL;
	if (m->flags & GM_MAP_READONLY)
		return -EACCES;
	addr = (char *)m->host + offset;
	if (m->fd >= 0) {
		if (!(m->flags & GM_MAP_SHARED))
			return -EOPNOTSUPP;
		err = discard_fd(m, offset, len, &bytes);
	} else {
		advice = (m->flags & GM_MAP_SHARED)  ? MADV_REMOVE
			 : (flags & GM_DISCARD_LAZY) ? MADV_FREE
						     : MADV_DONTNEED;
		/* Counting reads pagemap: only for a caller who asks. */
		err =
		    freed ? resident_bytes(addr, len, (m->flags & GM_MAP_SHARED) != 0, &bytes) : 0;
		if (!err && madvise(addr, len, advice) < 0)
			err = -errno;
	}
	if (!err && freed)
		*freed = bytes;
	return err;
}
