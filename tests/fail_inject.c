/* SPDX-License-Identifier: MIT */
/*
 * tests/fail_inject.c - failure injection by link-time wrapping.
 *
 * A test program that uses it is linked with -Wl,--wrap=<symbol> for every
 * symbol below (fail_inject_args in tests/meson.build). Tests link the
 * static library, so the linker sends every call the library's objects
 * (and the test's own) make to <symbol> to __wrap_<symbol> here, which
 * either fails it or passes it on to __real_<symbol>, the C library's.
 * The library carries no hook and pays nothing; calls made inside other
 * shared libraries (liburcu, libxxhash) are not seen.
 *
 * Disarmed, each wrapper is one load and a branch. fi_arm() picks which
 * calls count, from which threads, and which of them fails; a test sweeps
 * N = 1, 2, ... until a run ends with nothing injected, so every fallible
 * call of the operation fails once. To cover another call: add its
 * symbol to fail_inject_args and a wrapper and FI_ bit here. Large-file
 * builds (-D_FILE_OFFSET_BITS=64, also on 64-bit hosts) call the *64
 * names (open64, pread64, ...): wrap what `nm -u` shows the library calls.
 */
#include "fail_inject.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>
#include <xxhash.h>

static unsigned fi_mask; /* atomic: the calls that count; 0 = disarmed */
static enum fi_scope fi_who;
static pthread_t fi_thread;
static unsigned long fi_left; /* atomic: counted calls until the failure */
static bool fi_fired;	      /* atomic */
static const char *fi_name;   /* the call that failed; read after fi_fired */
static unsigned fi_saved;     /* the mask fi_suspend() took away */
static unsigned fi_depth;     /* fi_suspend() calls not yet resumed */

void fi_arm(unsigned calls, enum fi_scope scope, unsigned long nth)
{
	/* Atomic: a wrapper of an earlier arming may still be reading them. */
	__atomic_store_n(&fi_who, scope, __ATOMIC_RELAXED);
	__atomic_store_n(&fi_thread, pthread_self(), __ATOMIC_RELAXED);
	__atomic_store_n(&fi_left, nth, __ATOMIC_RELAXED);
	__atomic_store_n(&fi_fired, false, __ATOMIC_RELAXED);
	fi_depth = 0;
	/* Publishes the fields above to the wrappers' acquire load in fi_fail(). */
	__atomic_store_n(&fi_mask, calls, __ATOMIC_RELEASE);
}

bool fi_disarm(void)
{
	fi_depth = 0;
	__atomic_store_n(&fi_mask, 0, __ATOMIC_RELEASE);
	return __atomic_load_n(&fi_fired, __ATOMIC_ACQUIRE);
}

void fi_suspend(void)
{
	if (fi_depth++ == 0)
		fi_saved = __atomic_exchange_n(&fi_mask, 0, __ATOMIC_ACQ_REL);
}

void fi_resume(void)
{
	if (--fi_depth == 0)
		__atomic_store_n(&fi_mask, fi_saved, __ATOMIC_RELEASE);
}

const char *fi_failed_call(void)
{
	return __atomic_load_n(&fi_fired, __ATOMIC_ACQUIRE) ? fi_name : "none";
}

/* Whether this call of @call (to @name) is the one to fail; sets errno to @err if so. */
static bool fi_fail_call(unsigned call, int err, const char *name)
{
	if (!(__atomic_load_n(&fi_mask, __ATOMIC_ACQUIRE) & call))
		return false;
	if ((pthread_equal(pthread_self(), __atomic_load_n(&fi_thread, __ATOMIC_RELAXED)) != 0) !=
	    (__atomic_load_n(&fi_who, __ATOMIC_RELAXED) == FI_THIS_THREAD))
		return false;
	/* Only the count reaching 0 fails: later calls take it below 0 (wrapping). */
	if (__atomic_sub_fetch(&fi_left, 1, __ATOMIC_ACQ_REL) != 0)
		return false;
	fi_name = name;
	__atomic_store_n(&fi_fired, true, __ATOMIC_RELEASE);
	errno = err;
	return true;
}

#define fi_fail(call, err) fi_fail_call(call, err, __func__ + sizeof("__wrap_") - 1)

/* The wrappers: the real function's prototype with __wrap_ and __real_ names. */

void *__real_malloc(size_t len);
void *__real_calloc(size_t n, size_t len);
void *__real_realloc(void *p, size_t len);
char *__real_strdup(const char *s);
XXH3_state_t *__real_XXH3_createState(void);
void *__real_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_open64(const char *path, int flags, ...);
int __real_mkostemp64(char *tmpl, int flags);
ssize_t __real_read(int fd, void *buf, size_t len);
ssize_t __real_pread64(int fd, void *buf, size_t len, off_t off);
ssize_t __real_write(int fd, const void *buf, size_t len);
ssize_t __real_pwrite64(int fd, const void *buf, size_t len, off_t off);
int __real_ftruncate64(int fd, off_t len);
int __real_fsync(int fd);
int __real_close(int fd);
int __real_rename(const char *from, const char *to);
int __real_fstat64(int fd, struct stat *st);
ssize_t __real_getrandom(void *buf, size_t len, unsigned flags);
int __real_ioctl(int fd, unsigned long req, ...);
int __real_poll(struct pollfd *p, nfds_t n, int timeout);
int __real_eventfd(unsigned init, int flags);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int __real_mprotect(void *addr, size_t len, int prot);
int __real_madvise(void *addr, size_t len, int advice);
int __real_fallocate64(int fd, int mode, off_t off, off_t len);
int __real_memfd_create(const char *name, unsigned flags);
int __real_fcntl64(int fd, int cmd, ...);
ssize_t __real_readv(int fd, const struct iovec *iov, int n);
ssize_t __real_preadv64(int fd, const struct iovec *iov, int n, off_t off);
ssize_t __real_writev(int fd, const struct iovec *iov, int n);
ssize_t __real_pwritev64(int fd, const struct iovec *iov, int n, off_t off);
ssize_t __real_send(int fd, const void *buf, size_t len, int flags);
long __real_syscall(long nr, ...);

void *__wrap_malloc(size_t len);
void *__wrap_calloc(size_t n, size_t len);
void *__wrap_realloc(void *p, size_t len);
char *__wrap_strdup(const char *s);
XXH3_state_t *__wrap_XXH3_createState(void);
void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __wrap_open64(const char *path, int flags, ...);
int __wrap_mkostemp64(char *tmpl, int flags);
ssize_t __wrap_read(int fd, void *buf, size_t len);
ssize_t __wrap_pread64(int fd, void *buf, size_t len, off_t off);
ssize_t __wrap_write(int fd, const void *buf, size_t len);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t len, off_t off);
int __wrap_ftruncate64(int fd, off_t len);
int __wrap_fsync(int fd);
int __wrap_close(int fd);
int __wrap_rename(const char *from, const char *to);
int __wrap_fstat64(int fd, struct stat *st);
ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags);
int __wrap_ioctl(int fd, unsigned long req, ...);
int __wrap_poll(struct pollfd *p, nfds_t n, int timeout);
int __wrap_eventfd(unsigned init, int flags);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int __wrap_mprotect(void *addr, size_t len, int prot);
int __wrap_madvise(void *addr, size_t len, int advice);
int __wrap_fallocate64(int fd, int mode, off_t off, off_t len);
int __wrap_memfd_create(const char *name, unsigned flags);
int __wrap_fcntl64(int fd, int cmd, ...);
ssize_t __wrap_readv(int fd, const struct iovec *iov, int n);
ssize_t __wrap_preadv64(int fd, const struct iovec *iov, int n, off_t off);
ssize_t __wrap_writev(int fd, const struct iovec *iov, int n);
ssize_t __wrap_pwritev64(int fd, const struct iovec *iov, int n, off_t off);
ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags);
long __wrap_syscall(long nr, ...);

void *__wrap_malloc(size_t len)
{
	return fi_fail(FI_MALLOC, ENOMEM) ? NULL : __real_malloc(len);
}

void *__wrap_calloc(size_t n, size_t len)
{
	return fi_fail(FI_MALLOC, ENOMEM) ? NULL : __real_calloc(n, len);
}

void *__wrap_realloc(void *p, size_t len)
{
	return fi_fail(FI_MALLOC, ENOMEM) ? NULL : __real_realloc(p, len);
}

char *__wrap_strdup(const char *s)
{
	return fi_fail(FI_MALLOC, ENOMEM) ? NULL : __real_strdup(s);
}

XXH3_state_t *__wrap_XXH3_createState(void)
{
	return fi_fail(FI_XXH, ENOMEM) ? NULL : __real_XXH3_createState();
}

void *__wrap_mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return fi_fail(FI_MMAP, ENOMEM) ? MAP_FAILED
					: __real_mmap64(addr, len, prot, flags, fd, off);
}

int __wrap_open64(const char *path, int flags, ...)
{
	unsigned mode = 0;

	if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {
		va_list ap;

		va_start(ap, flags);
		mode = va_arg(ap, unsigned);
		va_end(ap);
	}
	return fi_fail(FI_OPEN, EMFILE) ? -1 : __real_open64(path, flags, mode);
}

int __wrap_mkostemp64(char *tmpl, int flags)
{
	return fi_fail(FI_OPEN, EMFILE) ? -1 : __real_mkostemp64(tmpl, flags);
}

ssize_t __wrap_read(int fd, void *buf, size_t len)
{
	return fi_fail(FI_READ, EIO) ? -1 : __real_read(fd, buf, len);
}

ssize_t __wrap_pread64(int fd, void *buf, size_t len, off_t off)
{
	return fi_fail(FI_READ, EIO) ? -1 : __real_pread64(fd, buf, len, off);
}

ssize_t __wrap_write(int fd, const void *buf, size_t len)
{
	return fi_fail(FI_WRITE, EIO) ? -1 : __real_write(fd, buf, len);
}

ssize_t __wrap_pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	return fi_fail(FI_WRITE, EIO) ? -1 : __real_pwrite64(fd, buf, len, off);
}

int __wrap_ftruncate64(int fd, off_t len)
{
	return fi_fail(FI_FTRUNCATE, EIO) ? -1 : __real_ftruncate64(fd, len);
}

int __wrap_fsync(int fd)
{
	return fi_fail(FI_FSYNC, EIO) ? -1 : __real_fsync(fd);
}

int __wrap_close(int fd)
{
	/* As Linux does: the descriptor is released even when close() fails. */
	int ret = __real_close(fd);

	return fi_fail(FI_CLOSE, EIO) ? -1 : ret;
}

int __wrap_rename(const char *from, const char *to)
{
	return fi_fail(FI_RENAME, EIO) ? -1 : __real_rename(from, to);
}

int __wrap_fstat64(int fd, struct stat *st)
{
	return fi_fail(FI_FSTAT, EIO) ? -1 : __real_fstat64(fd, st);
}

ssize_t __wrap_getrandom(void *buf, size_t len, unsigned flags)
{
	return fi_fail(FI_GETRANDOM, EIO) ? -1 : __real_getrandom(buf, len, flags);
}

int __wrap_ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	return fi_fail(FI_IOCTL, ENOMEM) ? -1 : __real_ioctl(fd, req, arg);
}

int __wrap_poll(struct pollfd *p, nfds_t n, int timeout)
{
	return fi_fail(FI_POLL, ENOMEM) ? -1 : __real_poll(p, n, timeout);
}

int __wrap_eventfd(unsigned init, int flags)
{
	return fi_fail(FI_EVENTFD, ENOMEM) ? -1 : __real_eventfd(init, flags);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	return fi_fail(FI_THREAD, 0) ? EAGAIN : __real_pthread_create(t, attr, fn, arg);
}

int __wrap_mprotect(void *addr, size_t len, int prot)
{
	return fi_fail(FI_MMAP, ENOMEM) ? -1 : __real_mprotect(addr, len, prot);
}

int __wrap_madvise(void *addr, size_t len, int advice)
{
	return fi_fail(FI_MMAP, ENOMEM) ? -1 : __real_madvise(addr, len, advice);
}

int __wrap_fallocate64(int fd, int mode, off_t off, off_t len)
{
	return fi_fail(FI_FALLOCATE, EIO) ? -1 : __real_fallocate64(fd, mode, off, len);
}

int __wrap_memfd_create(const char *name, unsigned flags)
{
	return fi_fail(FI_OPEN, EMFILE) ? -1 : __real_memfd_create(name, flags);
}

/* Only the commands that make a descriptor count (the others cannot run out of anything). */
int __wrap_fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, cmd);
	arg = va_arg(ap, void *);
	va_end(ap);
	if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && fi_fail(FI_OPEN, EMFILE))
		return -1;
	return __real_fcntl64(fd, cmd, arg);
}

ssize_t __wrap_readv(int fd, const struct iovec *iov, int n)
{
	return fi_fail(FI_READ, EIO) ? -1 : __real_readv(fd, iov, n);
}

ssize_t __wrap_preadv64(int fd, const struct iovec *iov, int n, off_t off)
{
	return fi_fail(FI_READ, EIO) ? -1 : __real_preadv64(fd, iov, n, off);
}

ssize_t __wrap_writev(int fd, const struct iovec *iov, int n)
{
	return fi_fail(FI_WRITE, EIO) ? -1 : __real_writev(fd, iov, n);
}

ssize_t __wrap_pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
	return fi_fail(FI_WRITE, EIO) ? -1 : __real_pwritev64(fd, iov, n, off);
}

ssize_t __wrap_send(int fd, const void *buf, size_t len, int flags)
{
	return fi_fail(FI_WRITE, EIO) ? -1 : __real_send(fd, buf, len, flags);
}

/*
 * Only userfaultfd counts (glibc has no wrapper for it, so the library
 * calls syscall()); membarrier and the rest pass. Every system call takes
 * at most six word-sized arguments, so passing six on is exact.
 */
long __wrap_syscall(long nr, ...)
{
	long a[6];
	va_list ap;

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (nr == SYS_userfaultfd && fi_fail_call(FI_UFFD, EMFILE, "userfaultfd"))
		return -1;
	return __real_syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
