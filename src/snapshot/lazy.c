/* SPDX-License-Identifier: MIT */
/*
 * lazy.c - restore mode 3: regions registered with userfaultfd as missing,
 * filled by a handler thread from the snapshot on first touch, a 2 MiB
 * chunk at a time (the touched page and its neighbours), so a restored
 * guest starts at once whatever its size. Invariants 4 and 5 of
 * snapshot-internal.h are this file's.
 *
 * Lifecycle of lazy restore:
 *   gm_snapshot_map_region(LAZY) -> gm__lazy_register(): the first area
 *     opens the userfaultfd, allocates the handler's buffer and starts the
 *     handler (everything that can fail, before the call returns 0)
 *   handler: fault event -> lazy_fill_chunk() -> UFFDIO_COPY/ZEROPAGE (wakes)
 *   gm_snapshot_lazy_finish(): lazy_fill_chunk() on every chunk still at 0
 *   any failure no fault can be served past (the handler cannot wait for
 *     events, a page cannot be placed) -> lazy_abandon(): unregister every
 *     area (waking its waiters), chunks at 0 -> 2, counted (invariant 6)
 *   gm_snapshot_close() -> gm__lazy_stop(): stop eventfd -> join handler ->
 *     fill what is left with the handler's buffer -> unregister areas ->
 *     close uffd
 */
#include "snapshot-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int uffd_open(void)
{
	struct uffdio_api api = {.api = UFFD_API, .features = 0};
	int fd, err;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		err = -errno;
#ifdef USERFAULTFD_IOC_NEW
		/* Without the sysctl or CAP_SYS_PTRACE, /dev/userfaultfd may still be open to us.
		 */
		if (err == -EPERM || err == -ENOSYS) {
			int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

			if (dev >= 0) {
				fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
				if (fd < 0)
					err = -errno;
				close(dev);
			}
		}
#endif
		if (fd < 0)
			return err;
	}
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int gm_snapshot_lazy_supported(void)
{
	int fd = uffd_open();

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

/*
 * Place @len bytes at @dst of a registered range: copies of @src, or the
 * shared zero page when @src is NULL (no memory used until written). A
 * partial result (-EAGAIN: the address space changed meanwhile) goes on
 * after what was placed. Returns 0 or -errno of the ioctl (the range is
 * no longer registered, or the kernel is out of memory).
 */
static int uffd_place(int uffd, uintptr_t dst, const unsigned char *src, uint64_t len)
{
	while (len > 0) {
		int64_t done;

		if (src) {
			struct uffdio_copy cp = {.dst = dst, .src = (uintptr_t)src, .len = len};

			if (ioctl(uffd, UFFDIO_COPY, &cp) == 0)
				return 0;
			done = cp.copy;
		} else {
			struct uffdio_zeropage zp = {.range = {.start = dst, .len = len}};

			if (ioctl(uffd, UFFDIO_ZEROPAGE, &zp) == 0)
				return 0;
			done = zp.zeropage;
		}
		if (errno != EAGAIN)
			return -errno;
		if (done > 0) {
			dst += (uintptr_t)done;
			src = src ? src + done : NULL;
			len -= (uint64_t)done;
		} else {
			sched_yield(); /* no progress: let whoever changes the mm finish */
		}
	}
	return 0;
}

/*
 * Stop lazy filling after @err, a failure no fault can be served past
 * (invariant 6); the first caller does it, later ones return. Every chunk
 * nobody has taken is marked filled and counted as a lazy error (first:
 * a woken thread may look at the count), then every area is unregistered,
 * which wakes the threads blocked on a fault there (the kernel does so on
 * UFFDIO_UNREGISTER). Their access then finds the area's own anonymous
 * memory: filled chunks hold their data, the others read as zero, as a
 * damaged chunk does. Should the unregister fail, every missing page is
 * given the zero page instead (which wakes too).
 */
static void lazy_abandon(struct gm_snapshot *s, int err)
{
	int none = 0;

	if (!__atomic_compare_exchange_n(&s->lazy_dead, &none, err, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return;
	/* Under the lock: gm__lazy_register() adds no area once lazy_dead is set. */
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->nareas; i++) {
		struct lazy_area *a = s->areas[i];
		const struct snap_region *r = &s->files[0].regions[a->region];
		struct uffdio_range range = {.start = (uintptr_t)a->host, .len = a->size};

		for (uint64_t c = 0; c < r->nchunks; c++) {
			unsigned char expect = 0;

			/* A chunk at 1 is its filler's: its placing fails and counts. */
			if (__atomic_compare_exchange_n(&a->state[c], &expect, 2, false,
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				__atomic_fetch_add(&s->lazy_errors, 1, __ATOMIC_RELAXED);
		}
		if (ioctl(s->uffd, UFFDIO_UNREGISTER, &range) == 0)
			continue;
		/* Page by page: a page already placed refuses (EEXIST), the others get zero. */
		for (uint64_t off = 0; off < a->size; off += SNAP_PAGE)
			uffd_place(s->uffd, (uintptr_t)a->host + (uintptr_t)off, NULL, SNAP_PAGE);
		ioctl(s->uffd, UFFDIO_WAKE, &range);
	}
	pthread_mutex_unlock(&s->lock);
}

/*
 * Fill chunk @c of lazy area @a if nobody has (invariant 4). Called by the
 * handler thread and by lazy_finish; @cb is the caller's scratch. Zero runs
 * get the zero page, so a restored guest uses memory only for its data.
 * A chunk that cannot be read is served zeros and counted; one whose pages
 * cannot be placed is counted and ends lazy filling (lazy_abandon()), as
 * its waiters could otherwise never be served. Returns 0 or the placing
 * error.
 */
static int lazy_fill_chunk(struct gm_snapshot *s, struct lazy_area *a, uint64_t c,
			   struct chunk_buf *cb)
{
	const struct snap_region *r = &s->files[0].regions[a->region];
	uintptr_t dst = (uintptr_t)(a->host + c * SNAP_CHUNK_BYTES);
	unsigned char expect = 0;
	uint64_t npages = chunk_pages(r->npages, c), len = npages * SNAP_PAGE;
	bool damaged = false;
	int ret = 0;

	if (!__atomic_compare_exchange_n(&a->state[c], &expect, 1, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return 0;
	if (gm__chunk_is_zero(s, a->region, c)) {
		ret = uffd_place(s->uffd, dst, NULL, len);
	} else if (gm__resolve_chunk(s, a->region, c, cb->buf, cb->state) == 0) {
		for (uint64_t p = 0; p < npages && ret == 0;) {
			bool zero;
			uint64_t q = gm__zero_run(cb->buf, p, npages, &zero);

			ret =
			    uffd_place(s->uffd, dst + (uintptr_t)(p * SNAP_PAGE),
				       zero ? NULL : cb->buf + p * SNAP_PAGE, (q - p) * SNAP_PAGE);
			p = q;
		}
	} else {
		/*
		 * Damaged or unreadable: the fault must still be served. Counted
		 * first: the zeros wake the faulting thread, which may look.
		 */
		damaged = true;
		__atomic_fetch_add(&s->lazy_errors, 1, __ATOMIC_RELAXED);
		ret = uffd_place(s->uffd, dst, NULL, len);
	}
	/* Not placed: the chunk reads as zero once abandoned, and counts once. */
	if (ret && !damaged)
		__atomic_fetch_add(&s->lazy_errors, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&a->state[c], 2, __ATOMIC_RELEASE);
	if (ret)
		lazy_abandon(s, ret);
	return ret;
}

/*
 * The fault handler. Its buffer is allocated before it starts; a failure
 * it cannot go on after ends lazy filling (lazy_abandon()) and the thread,
 * so that no faulting thread is left waiting for it.
 */
static void *lazy_handler(void *arg)
{
	struct gm_snapshot *s = arg;

	while (__atomic_load_n(&s->lazy_dead, __ATOMIC_ACQUIRE) == 0) {
		struct pollfd p[2] = {{.fd = s->uffd, .events = POLLIN},
				      {.fd = s->stopfd, .events = POLLIN}};
		struct uffd_msg msg;
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			lazy_abandon(s, -errno);
			break;
		}
		if (p[1].revents)
			break;
		n = read(s->uffd, &msg, sizeof(msg));
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			lazy_abandon(s, -errno);
			break;
		}
		if (n != (ssize_t)sizeof(msg))
			continue; /* EAGAIN: another reader or a spurious wake-up */
		if (msg.event != UFFD_EVENT_PAGEFAULT)
			continue;
		{
			uintptr_t addr = (uintptr_t)msg.arg.pagefault.address;
			struct uffdio_range wr = {.start = addr & ~(uintptr_t)(SNAP_PAGE - 1),
						  .len = SNAP_PAGE};
			struct lazy_area *a = NULL;

			pthread_mutex_lock(&s->lock);
			for (size_t i = 0; i < s->nareas && a == NULL; i++)
				if (addr >= (uintptr_t)s->areas[i]->host &&
				    addr - (uintptr_t)s->areas[i]->host < s->areas[i]->size)
					a = s->areas[i];
			pthread_mutex_unlock(&s->lock);
			if (a == NULL)
				continue;
			/* Prefetch: the whole 2 MiB chunk around the touched page. */
			lazy_fill_chunk(s, a, (addr - (uintptr_t)a->host) / SNAP_CHUNK_BYTES,
					&s->hbuf);
			/*
			 * If another thread (lazy_finish) holds the chunk, its copy wakes
			 * the faulting thread; waking it again is harmless, and a thread
			 * woken before its page is there faults again.
			 */
			ioctl(s->uffd, UFFDIO_WAKE, &wr);
		}
	}
	return NULL;
}

/* Unregister area @a and release what it holds. */
static void lazy_area_drop(struct gm_snapshot *s, struct lazy_area *a)
{
	struct uffdio_range range = {.start = (uintptr_t)a->host, .len = a->size};

	ioctl(s->uffd, UFFDIO_UNREGISTER, &range);
	gm_mapping_put(a->mapping);
	free(a->state);
	free(a);
}

int gm__lazy_register(struct gm_snapshot *s, uint32_t ri, struct gm_mapping *map)
{
	const struct snap_region *r = &s->files[0].regions[ri];
	struct uffdio_register reg;
	struct lazy_area **areas, *a;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	ret = __atomic_load_n(&s->lazy_dead, __ATOMIC_ACQUIRE); /* invariant 6 */
	if (ret)
		goto out;
	if (s->uffd < 0) {
		s->uffd = uffd_open();
		if (s->uffd < 0) {
			ret = s->uffd;
			s->uffd = -1;
			goto out;
		}
		s->stopfd = eventfd(0, EFD_CLOEXEC);
		if (s->stopfd < 0) {
			ret = -errno;
			close(s->uffd); /* the next call starts again */
			s->uffd = -1;
			goto out;
		}
	}
	/* The handler's buffer: a handler that could not allocate would serve nobody. */
	if (!s->thread_started && s->hbuf.buf == NULL) {
		ret = gm__chunk_buf_init(&s->hbuf);
		if (ret)
			goto out;
	}
	areas = realloc(s->areas, (s->nareas + 1) * sizeof(*areas));
	if (areas == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	s->areas = areas;
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	a->host = gm_mapping_host(map);
	a->size = r->size;
	a->region = ri;
	a->state = calloc((size_t)r->nchunks, 1);
	if (a->state == NULL) {
		free(a);
		ret = -ENOMEM;
		goto out;
	}
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (uintptr_t)a->host;
	reg.range.len = r->size;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(s->uffd, UFFDIO_REGISTER, &reg) < 0) {
		ret = -errno;
		free(a->state);
		free(a);
		goto out;
	}
	areas[s->nareas] = a;
	a->mapping = gm_mapping_get(map); /* invariant 5 */
	s->nareas++;
	if (!s->thread_started) {
		/* Without the thread, a touch would wait until close() fills the area. */
		ret = -pthread_create(&s->thread, NULL, lazy_handler, s);
		if (ret == 0) {
			s->thread_started = true;
		} else {
			s->nareas--;
			lazy_area_drop(s, a);
		}
	}
out:
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/*
 * Fill every chunk of @s's lazy areas still unfilled, with @cb as scratch,
 * counting in @pr. Returns 0, the progress callback's -ECANCELED, the
 * error that stopped lazy filling, or -EBADMSG if a chunk was found
 * damaged meanwhile.
 */
static int lazy_fill_all(struct gm_snapshot *s, struct chunk_buf *cb, struct progress *pr)
{
	uint64_t errors_before = gm_snapshot_lazy_errors(s);
	size_t nareas;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	nareas = s->nareas;
	for (size_t i = 0; i < nareas; i++)
		pr->total += s->areas[i]->size;
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < nareas && ret == 0; i++) {
		struct lazy_area *a;
		const struct snap_region *r;

		/*
		 * An area stays where it is until the snapshot is closed, but the
		 * array of them moves when gm__lazy_register() grows it.
		 */
		pthread_mutex_lock(&s->lock);
		a = s->areas[i];
		pthread_mutex_unlock(&s->lock);
		r = &s->files[0].regions[a->region];

		for (uint64_t c = 0; c < r->nchunks && ret == 0; c++) {
			lazy_fill_chunk(s, a, c, cb);
			/* The handler may hold the chunk (state 1): wait for its copy. */
			while (__atomic_load_n(&a->state[c], __ATOMIC_ACQUIRE) != 2)
				sched_yield();
			ret = gm__progress_add(pr, chunk_pages(r->npages, c) * SNAP_PAGE);
		}
	}
	if (ret == 0)
		ret = __atomic_load_n(&s->lazy_dead, __ATOMIC_ACQUIRE);
	if (ret == 0 && gm_snapshot_lazy_errors(s) != errors_before)
		ret = -EBADMSG;
	return ret;
}

int gm_snapshot_lazy_finish(struct gm_snapshot *s, const struct gm_snapshot_opts *opts)
{
	struct progress pr;
	struct chunk_buf cb;
	int ret;

	if (s == NULL)
		return -EINVAL;
	ret = gm__progress_init(&pr, opts, 0); /* lazy_fill_all() counts the total */
	if (ret)
		return ret;
	ret = gm__chunk_buf_init(&cb);
	if (ret)
		return ret;
	ret = lazy_fill_all(s, &cb, &pr);
	gm__chunk_buf_free(&cb);
	return ret;
}

uint64_t gm_snapshot_lazy_errors(const struct gm_snapshot *s)
{
	return s ? __atomic_load_n(&s->lazy_errors, __ATOMIC_RELAXED) : 0;
}

/*
 * The handler is stopped first, so that its buffer (allocated before the
 * first area was registered) fills what is left: closing allocates
 * nothing, and cannot leave memory unfilled because an allocation failed.
 * A thread that faults meanwhile waits for that fill.
 */
void gm__lazy_stop(struct gm_snapshot *s)
{
	if (s->thread_started) {
		uint64_t one = 1;

		/*
		 * Adding 1 to an eventfd fails only on a signal (or a bad fd,
		 * a bug): try until it is done, or the join would wait forever.
		 */
		while (write(s->stopfd, &one, sizeof(one)) != sizeof(one) && errno != EBADF)
			;
		pthread_join(s->thread, NULL);
	}
	if (s->nareas > 0) {
		struct progress pr;

		(void)gm__progress_init(&pr, NULL, 0); /* no options: cannot fail */
		lazy_fill_all(s, &s->hbuf, &pr);
	}
	gm__chunk_buf_free(&s->hbuf);
	for (size_t i = 0; i < s->nareas; i++)
		lazy_area_drop(s, s->areas[i]);
	free(s->areas);
	if (s->uffd >= 0)
		close(s->uffd);
	if (s->stopfd >= 0)
		close(s->stopfd);
}
