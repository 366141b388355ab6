/* SPDX-License-Identifier: MIT */
/*
 * vu-postcopy.c - VHOST_USER_PROTOCOL_F_PAGEFAULT: the back end's part of a
 * post-copy migration (vhost-user.rst, "Migration").
 *
 * On the destination, guest pages arrive after the guest already runs
 * there. The back end opens a userfaultfd (POSTCOPY_ADVISE) and hands it to
 * the front end; after POSTCOPY_LISTEN every memory table is registered
 * with it in MISSING mode and answered with this process's address of each
 * region, so the front end knows where to place pages (UFFDIO_COPY through
 * the fd it holds) and whom to wake. A worker that touches a page not yet
 * placed - in user mode (ring reads, gm_read) or in kernel mode (pread or
 * pwrite of a request's buffer) - is put to sleep by the kernel until the
 * front end placed it: it never reads zeros and its request does not fail.
 * The back end only registers; resolving faults is the front end's job.
 * POSTCOPY_END unregisters and closes the fd.
 *
 * The userfaultfd is opened without UFFD_USER_MODE_ONLY: the device reads
 * and writes guest buffers with system calls, whose faults are kernel-mode
 * and would fail with EFAULT instead of waiting. Without the sysctl
 * vm.unprivileged_userfaultfd or CAP_SYS_PTRACE, /dev/userfaultfd (Linux
 * 6.1) is tried; if neither works, ADVISE is answered without an fd, which
 * the front end reads as a refusal.
 *
 * A page never placed. This process keeps its own reference to the
 * userfaultfd, so a worker waiting for a page stays asleep when the front
 * end goes away. When the connection ends while listening, or one access
 * of a worker stays blocked longer than the post-copy timeout,
 * vu_postcopy_abort() abandons it:
 *  - pc_dead is set first; every access to the image that a request's
 *    guest data decides goes through vu_io_enter(), which refuses once it
 *    is set, and vu_complete() completes nothing any more;
 *  - then each region's pages are replaced, in this process only, by a
 *    shared mapping of an empty memfd, and UFFDIO_WAKE wakes every fault
 *    on them. A kernel-mode fault (the copy in pread of a request's
 *    buffer) retries past the end of that file and fails: the syscall ends
 *    with EFAULT or a short count (a waiting fault is not interrupted by a
 *    signal: the kernel aborts a kernel-mode fault only for a fatal one).
 *    A user-mode fault (ring reads, the request header, the status byte, a
 *    write's data) retries into SIGBUS, which the library absorbs for
 *    GM_MAP_PEER memory (guestmem/mapping.h): private zeros in place of
 *    the page, and gm_read() of it fails with -EFAULT. Once one thread
 *    absorbed it, the page reads as zeros without a fault. The front end's
 *    memory is not written.
 *
 * A write's data while listening (pc_active) reaches the image only
 * through the worker's bounce buffer (vu_io_bounce(), VU_BOUNCE_BYTES at a
 * time): copied in user mode, then the gate is checked, then pwrite()
 * from the buffer. A zero-copy pwrite() of guest memory is not safe here:
 * a worker inside it past the gate, waiting for a page, may retry only
 * after another thread's user-mode fault on the same page was absorbed,
 * find the private zeros and copy them into the image. With the bounce,
 * zeros the copy read from an abandoned page were made after pc_dead was
 * set (abort sets it before it replaces anything), so the gate checked
 * after the copy refuses them. A read (pread into guest memory) needs
 * none of this: it takes nothing from guest memory to the image; at worst
 * it lands in private zeros of this process, and the request is not
 * completed. Outside post-copy a write stays zero-copy.
 *
 * While listening, workers serve without batches: an io_uring request's
 * copy runs in a kernel thread that no signal interrupts.
 *
 * The timeout bounds one access, not a worker's round: the worker stamps
 * its queue (access_ns) when its round starts, before each request, and
 * before each piece of guest data it moves (vu_io_progress()), and the
 * protocol thread compares the stamps with the clock (vu_postcopy_stuck())
 * between messages and while it waits for the queue locks to install a
 * memory table (vu_postcopy_table(): a worker waiting for a page holds
 * its queue's lock; once stuck, the table is refused and the connection
 * abandoned, which wakes that worker so it lets go of the lock).
 *
 * Limits: registration rounds each region out to 4 KiB pages (hugetlbfs
 * guest memory is not supported). The timeout is on the time between two
 * stamps, which may cover a few missing pages (a request's ring entries
 * and header): they count together (the default is generous).
 */
#include "vu-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define UFFD_PAGE 4096u

/* A userfaultfd with the API handshake done, or -errno. */
static int uffd_open(void)
{
	struct uffdio_api api = {.api = UFFD_API, .features = 0};
	int fd = -1, err = -ENOSYS;

#ifdef SYS_userfaultfd
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		err = -errno;
#endif
#ifdef USERFAULTFD_IOC_NEW
	if (fd < 0 && (err == -EPERM || err == -ENOSYS)) {
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
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* [*start, *start + *len): @host's @size bytes rounded out to whole pages. */
static int page_range(const void *host, uint64_t size, uint64_t *start, uint64_t *len)
{
	uint64_t a = (uint64_t)(uintptr_t)host, end;

	if (size == 0 || __builtin_add_overflow(a, size, &end) ||
	    __builtin_add_overflow(end, UFFD_PAGE - 1, &end))
		return -EOVERFLOW;
	*start = a & ~(uint64_t)(UFFD_PAGE - 1);
	*len = (end & ~(uint64_t)(UFFD_PAGE - 1)) - *start;
	return 0;
}

enum table_op { OP_UNREGISTER, OP_REGISTER, OP_ABANDON };

/*
 * Abandon [start, start + len): private zero memory in place of the front
 * end's pages, then wake whoever waits for a page there. Returns 0 or -errno.
 */
static int abandon_range(int uffd, uint64_t start, uint64_t len)
{
	struct uffdio_range ur = {.start = start, .len = len};
	int efd = memfd_create("gm-abandoned", MFD_CLOEXEC);
	void *p = efd < 0 ? MAP_FAILED
			  : mmap((void *)(uintptr_t)start, (size_t)len, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_FIXED, efd, 0);

	if (efd >= 0)
		close(efd);
	if (p == MAP_FAILED)
		return -errno;
	return ioctl(uffd, UFFDIO_WAKE, &ur) < 0 ? -errno : 0;
}

/* Register, unregister or abandon every region of the table in force. */
static int table_uffd(struct vu_server *s, enum table_op op)
{
	bool reg = op == OP_REGISTER;
	struct gm_vhost_table *t = gm_vhost_mem_table(s->tables);
	size_t i, n = t ? gm_vhost_table_region_count(t) : 0, done = 0;
	int ret = 0, err;

	for (i = 0; i < n && (ret == 0 || op == OP_ABANDON); i++) {
		struct gm_vhost_region r;
		uint64_t start, len;
		void *host;

		gm_vhost_table_region(t, i, &r);
		host = gm_host_ptr(gm_vhost_table_memory(t), r.gpa, (size_t)r.size);
		err = host ? page_range(host, r.size, &start, &len) : -EFAULT;
		if (err) {
			ret = ret ? ret : err;
			break;
		}
		if (op == OP_ABANDON) {
			err = abandon_range(s->uffd, start, len);
			if (err && ret == 0)
				ret = err;
		} else if (reg) {
			struct uffdio_register ur = {.range = {.start = start, .len = len},
						     .mode = UFFDIO_REGISTER_MODE_MISSING};

			if (ioctl(s->uffd, UFFDIO_REGISTER, &ur) < 0)
				ret = -errno;
			else
				done++;
		} else {
			struct uffdio_range ur = {.start = start, .len = len};

			/* Wakes nobody who waits for a page: END comes once all are placed. */
			if (ioctl(s->uffd, UFFDIO_UNREGISTER, &ur) < 0 && ret == 0)
				ret = -errno;
		}
	}
	gm_vhost_table_put(t);
	if (reg && s->info)
		s->info->uffd_registered += done;
	return ret;
}

void vu_postcopy_drop(struct vu_server *s)
{
	if (s->uffd >= 0 && s->listening)
		table_uffd(s, OP_UNREGISTER);
	close_fd(&s->uffd);
	s->listening = false;
	__atomic_store_n(&s->pc_active, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&s->pc_dead, 0, __ATOMIC_SEQ_CST);
}

static __thread struct vu_queue *io_queue; /* the worker's queue, or NULL */
static __thread uint8_t *io_bounce;	   /* its bounce buffer, once needed */

void vu_postcopy_worker(struct vu_queue *q)
{
	io_queue = q;
	if (!q) {
		free(io_bounce);
		io_bounce = NULL;
	}
}

int vu_io_enter(void)
{
	struct vu_queue *q = io_queue;

	return q && __atomic_load_n(&q->s->pc_dead, __ATOMIC_SEQ_CST) ? -ECONNABORTED : 0;
}

void vu_io_leave(void)
{
	/* Nothing yet: the pair marks where the image is touched. */
}

int vu_io_bounce(uint8_t **buf, size_t *len)
{
	struct vu_queue *q = io_queue;

	*buf = NULL;
	*len = 0;
	if (!q || !__atomic_load_n(&q->s->pc_active, __ATOMIC_ACQUIRE))
		return 0;
	/* Once per worker thread, freed when it ends: no allocation per request. */
	if (!io_bounce)
		io_bounce = malloc(VU_BOUNCE_BYTES);
	if (!io_bounce)
		return -ENOMEM;
	*buf = io_bounce;
	*len = VU_BOUNCE_BYTES;
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void vu_io_progress(void)
{
	struct vu_queue *q = io_queue;

	if (q && __atomic_load_n(&q->s->pc_active, __ATOMIC_RELAXED))
		__atomic_store_n(&q->access_ns, now_ns(), __ATOMIC_RELEASE);
}

void vu_postcopy_abort(struct vu_server *s)
{
	/* Once: a second pass would replace the pages absorbed since. */
	if (s->uffd < 0 || !s->listening || __atomic_load_n(&s->pc_dead, __ATOMIC_SEQ_CST))
		return;
	__atomic_store_n(&s->pc_dead, 1, __ATOMIC_SEQ_CST);
	table_uffd(s, OP_ABANDON);
}

bool vu_postcopy_stuck(struct vu_server *s)
{
	uint64_t now = now_ns(), limit = (uint64_t)s->pc_timeout_ms * 1000000u;
	unsigned i;

	if (!s->listening)
		return false;
	for (i = 0; i < s->nqueues; i++) {
		uint64_t t = __atomic_load_n(&s->q[i].access_ns, __ATOMIC_ACQUIRE);

		if (t && now > t && now - t > limit)
			return true;
	}
	return false;
}

uint64_t vu_now_ns(void)
{
	return now_ns();
}

/*
 * POSTCOPY_ADVISE: no payload; the reply has none either and carries the
 * userfaultfd. A refusal (PAGEFAULT not negotiated, no userfaultfd here) is
 * the same reply without an fd.
 */
int vu_postcopy_advise(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied)
{
	static const uint8_t none[1];
	int fd = -ENOTSUP;

	*replied = true;
	if (!(s->protocol_features & (1ull << VU_PF_PAGEFAULT)))
		return vu_send_reply(c, msg, none, 0);
	vu_postcopy_drop(s); /* a second ADVISE starts over */
	if (!s->no_userfaultfd)
		fd = uffd_open();
	if (fd < 0)
		return vu_send_reply(c, msg, none, 0);
	s->uffd = fd;
	return vu_send_reply_fd(c, msg, none, 0, fd);
}

/*
 * POSTCOPY_LISTEN: from now on memory tables arrive in post-copy mode. The
 * table already in force (if any) is registered too: a page of it the
 * front end discards must not be filled with zeros by our access.
 */
int vu_postcopy_listen(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied)
{
	(void)c;
	(void)msg;
	(void)replied;
	if (!(s->protocol_features & (1ull << VU_PF_PAGEFAULT)) || s->uffd < 0)
		return -EINVAL;
	if (s->listening)
		return 0;
	s->listening = true;
	__atomic_store_n(&s->pc_active, 1, __ATOMIC_RELEASE);
	return table_uffd(s, OP_REGISTER);
}

/* POSTCOPY_END: every page is placed; unregister, close, answer u64 0. */
int vu_postcopy_end(struct vu_server *s, const struct vu_conn *c, struct msg *msg, bool *replied)
{
	*replied = true;
	if (!(s->protocol_features & (1ull << VU_PF_PAGEFAULT)) || s->uffd < 0)
		return vu_reply_u64(c, msg, 1);
	vu_postcopy_drop(s);
	return vu_reply_u64(c, msg, 0);
}

/*
 * Take every queue's lock. A worker that holds one may be waiting for a
 * page that never comes, so the wait is in slices with the post-copy clock
 * looked at between them: once a worker is stuck, the connection is
 * abandoned (vu_postcopy_abort() wakes that worker, whose access fails,
 * so it ends its round and lets go) and the remaining locks are taken.
 * Returns 0, or -ETIMEDOUT if the connection was abandoned (all locks are
 * held either way). Protocol thread.
 */
static int lock_queues(struct vu_server *s)
{
	const long slice_ns = (long)vu_postcopy_check_ms(s) * 1000000L;
	bool abandoned = false;
	unsigned i;

	for (i = 0; i < s->nqueues; i++) {
		for (;;) {
			struct timespec until;

			/* timedlock counts on CLOCK_REALTIME: a jump only makes a slice odd. */
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += slice_ns / 1000000000L;
			until.tv_nsec += slice_ns % 1000000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			if (pthread_mutex_timedlock(&s->q[i].lock, &until) == 0)
				break;
			if (!abandoned && vu_postcopy_stuck(s)) {
				vu_postcopy_abort(s);
				abandoned = true;
			}
		}
	}
	return abandoned ? -ETIMEDOUT : 0;
}

int vu_postcopy_table(struct vu_server *s, const struct vu_conn *c, struct msg *msg,
		      uint32_t first_region, uint32_t n, int (*install)(struct vu_server *, void *),
		      void *arg, bool *replied)
{
	struct gm_vhost_table *t;
	uint8_t out[HDR_SIZE + VU_CONFIG_MAX];
	uint32_t i;
	int ret;

	if (msg->size > sizeof(out))
		return -E2BIG;
	/*
	 * Workers take the table at the start of a round, under their
	 * queue's lock: with every lock held, none can touch (and so fill
	 * with zeros) a missing page of the new table before it is
	 * registered.
	 */
	ret = lock_queues(s);
	if (ret == 0)
		ret = install(s, arg);
	if (ret == 0)
		ret = table_uffd(s, OP_REGISTER);
	for (i = s->nqueues; i-- > 0;)
		pthread_mutex_unlock(&s->q[i].lock);
	if (ret)
		return ret;
	memcpy(out, msg->p, msg->size);
	t = gm_vhost_mem_table(s->tables);
	for (i = 0; i < n; i++) {
		uint8_t *p = out + first_region + REGION_SIZE * i;
		void *host = t ? gm_host_ptr(gm_vhost_table_memory(t), get64(p), 1) : NULL;

		if (!host) {
			gm_vhost_table_put(t);
			return -EFAULT;
		}
		put64(p + 16, (uint64_t)(uintptr_t)host);
	}
	gm_vhost_table_put(t);
	*replied = true;
	return vu_send_reply(c, msg, out, msg->size);
}
