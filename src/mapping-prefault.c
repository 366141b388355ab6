/* SPDX-License-Identifier: MIT */
/*
 * mapping-prefault.c - faulting host memory in ahead of the guest, with
 * several threads: gm_mapping_prefault() for one mapping, and the engine
 * gm__prefault() that the space layer also uses for all of a guest's RAM.
 *
 * The work is cut into chunks (PREFAULT_CHUNK, or one page where pages are
 * larger) numbered across all ranges; each thread takes the next number
 * with one atomic increment until none is left, so a thread that is slowed
 * down takes fewer chunks and no chunk is done twice. A chunk is
 * madvise(MADV_POPULATE_WRITE) (READ for read-only memory) where the kernel
 * has it (Linux 5.14+; it reports failure), otherwise a loop that touches
 * each page once: an atomic add of zero, which faults the page in writable
 * without changing a byte another thread may be writing.
 *
 * The calling thread works too and is the only one that calls the
 * progress callback (after each chunk it finishes, with the bytes all
 * threads have finished), so the callback needs no locking of its own. A
 * failure or a cancel sets `stop`; the others finish their current chunk
 * and take no more; every thread is joined before the function returns.
 */
#include "mapping-internal.h"

#include "abi-internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Work unit: small enough for progress and for balance, large enough to amortize. */
#define PREFAULT_CHUNK ((size_t)2 << 20)

/* More threads than this gain nothing: page faults contend on the mm's locks. */
#define PREFAULT_MAX_THREADS 256u

struct prefault_job {
	const struct gm__prefault_range *ranges;
	size_t nranges;
	size_t *first_chunk; /* per range: number of its first chunk */
	size_t nchunks;
	bool touch;    /* the loop, not MADV_POPULATE_* */
	size_t next;   /* atomic: the next chunk to take */
	uint64_t done; /* atomic: bytes finished */
	int err;       /* atomic: first error, 0 */
	bool stop;     /* atomic: take no more chunks */
};

static size_t chunk_of_range(const struct gm__prefault_range *r)
{
	return r->page > PREFAULT_CHUNK ? r->page : PREFAULT_CHUNK;
}

/*
 * Touch each page of [@p, @p + @len) once. Not instrumented by
 * AddressSanitizer: its check of each touch would fault in its shadow of
 * the whole range as well (an eighth more memory) and a prefault has
 * nothing for it to find.
 */
__attribute__((no_sanitize_address)) static void touch_pages(char *p, size_t len, size_t page,
							     bool write)
{
	for (size_t off = 0; off < len; off += page) {
		if (write)
			__atomic_fetch_add(p + off, 0, __ATOMIC_RELAXED);
		else
			(void)__atomic_load_n(p + off, __ATOMIC_RELAXED);
	}
}

/* Fault in chunk @idx of @job. Returns the bytes done, or -errno. */
static int64_t do_chunk(struct prefault_job *job, size_t idx)
{
	size_t i = 0;
	const struct gm__prefault_range *r;
	size_t chunk, off, len;

	while (i + 1 < job->nranges && job->first_chunk[i + 1] <= idx)
		i++;
	r = &job->ranges[i];
	chunk = chunk_of_range(r);
	off = (idx - job->first_chunk[i]) * chunk;
	len = r->len - off < chunk ? r->len - off : chunk;
	if (job->touch) {
		touch_pages(r->host + off, len, r->page, r->write);
		return (int64_t)len;
	}
#ifdef MADV_POPULATE_WRITE
	if (madvise(r->host + off, len, r->write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) < 0)
		return -errno;
#endif
	return (int64_t)len;
}

/* Take and do chunks until none is left or someone stopped. Returns true if it did one. */
static bool work_one(struct prefault_job *job)
{
	size_t idx;
	int64_t n;

	if (__atomic_load_n(&job->stop, __ATOMIC_RELAXED))
		return false;
	idx = __atomic_fetch_add(&job->next, 1, __ATOMIC_RELAXED);
	if (idx >= job->nchunks)
		return false;
	n = do_chunk(job, idx);
	if (n < 0) {
		int zero = 0;

		__atomic_compare_exchange_n(&job->err, &zero, (int)n, false, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED);
		__atomic_store_n(&job->stop, true, __ATOMIC_RELAXED);
		return false;
	}
	__atomic_fetch_add(&job->done, (uint64_t)n, __ATOMIC_RELAXED);
	return true;
}

static void *worker(void *arg)
{
	struct prefault_job *job = arg;

	while (work_one(job))
		;
	return NULL;
}

/* The CPUs this thread may run on (at least 1). */
static unsigned affinity_cpus(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		n = CPU_COUNT(&set);
		if (n > 0)
			return (unsigned)n;
	}
	n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/* Whether this kernel has MADV_POPULATE_WRITE: an unknown advice is -EINVAL even for 0 bytes. */
static bool populate_works(const struct gm__prefault_range *r)
{
#ifdef MADV_POPULATE_WRITE
	return madvise(r->host, 0, MADV_POPULATE_WRITE) == 0;
#else
	(void)r;
	return false;
#endif
}

int gm__prefault(const struct gm__prefault_range *ranges, size_t nranges,
		 const struct gm_prefault_opts *user)
{
	struct gm_prefault_opts o;
	struct prefault_job job = {.ranges = ranges, .nranges = nranges};
	pthread_t *tids = NULL;
	unsigned nthreads, started = 0;
	uint64_t total = 0;
	bool canceled = false;
	int err;

	err = GM_ABI_COPY_IN(&o, user);
	if (err)
		return err;
	if (o.flags & ~GM_PREFAULT_TOUCH)
		return -EINVAL;
	job.first_chunk = calloc(nranges ? nranges : 1, sizeof(*job.first_chunk));
	if (!job.first_chunk)
		return -ENOMEM;
	for (size_t i = 0; i < nranges; i++) {
		size_t chunk = chunk_of_range(&ranges[i]);

		job.first_chunk[i] = job.nchunks;
		job.nchunks += ranges[i].len / chunk + (ranges[i].len % chunk != 0);
		total += ranges[i].len;
	}
	job.touch = (o.flags & GM_PREFAULT_TOUCH) || nranges == 0 || !populate_works(&ranges[0]);

	nthreads = o.threads ? o.threads : affinity_cpus();
	if (nthreads > PREFAULT_MAX_THREADS)
		nthreads = PREFAULT_MAX_THREADS;
	if (nthreads > job.nchunks)
		nthreads = job.nchunks ? (unsigned)job.nchunks : 1;
	if (nthreads > 1)
		tids = calloc(nthreads - 1, sizeof(*tids));
	/* Fewer threads than asked (no memory, no thread) is slower, not wrong. */
	for (unsigned i = 0; tids && i < nthreads - 1; i++) {
		if (pthread_create(&tids[i], NULL, worker, &job) != 0)
			break;
		started++;
	}

	while (work_one(&job)) {
		if (o.progress &&
		    o.progress(o.opaque, __atomic_load_n(&job.done, __ATOMIC_RELAXED), total)) {
			canceled = true;
			__atomic_store_n(&job.stop, true, __ATOMIC_RELAXED);
		}
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	free(tids);
	free(job.first_chunk);

	if (job.err)
		return job.err;
	if (canceled)
		return -ECANCELED;
	if (o.progress && o.progress(o.opaque, total, total))
		return -ECANCELED;
	return 0;
}

GM_API int gm_mapping_prefault(struct gm_mapping *m, size_t offset, size_t len,
			       const struct gm_prefault_opts *opts)
{
	struct gm__prefault_range r;
	size_t page, end, mapped;

	if (!m || len == 0)
		return -EINVAL;
	page = gm_mapping_page_size(m);
	/* The mapping's size rounded up to its page: it is mapped, so this fits. */
	mapped = gm_mapping_size(m) + (page - gm_mapping_size(m) % page) % page;
	if (!gm_is_aligned(offset, page) || !gm_is_aligned(len, page) ||
	    gm_add_overflow_size(offset, len, &end) || end > mapped)
		return -EINVAL;
	r.host = (char *)gm_mapping_host(m) + offset;
	r.len = len;
	r.page = page;
	r.write = !(gm_mapping_flags(m) & GM_MAP_READONLY);
	return gm__prefault(&r, 1, opts);
}
