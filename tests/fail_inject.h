/* SPDX-License-Identifier: MIT */
/*
 * tests/fail_inject.h - make the library's Nth allocation or system call
 * fail, for tests of the error paths (issue 17 item 4: every failing call
 * returns a clean error with nothing lost). The mechanism is described in
 * fail_inject.c; a test program using it is linked with fail_inject_args
 * (tests/meson.build).
 */
#ifndef GM_TESTS_FAIL_INJECT_H
#define GM_TESTS_FAIL_INJECT_H

#include <stdbool.h>

/* The wrapped calls, as a mask (FI_ALL: every one). */
enum {
	FI_MALLOC = 1u << 0, /* malloc, calloc, realloc, strdup */
	FI_XXH = 1u << 1,    /* XXH3_createState */
	FI_MMAP = 1u << 2,   /* mmap, mprotect */
	FI_OPEN = 1u << 3,   /* open, mkostemp, memfd_create, fcntl(F_DUPFD*) */
	FI_READ = 1u << 4,   /* read, pread, readv, preadv */
	FI_WRITE = 1u << 5,  /* write, pwrite, writev, pwritev, send */
	FI_FTRUNCATE = 1u << 6,
	FI_FSYNC = 1u << 7,
	FI_CLOSE = 1u << 8, /* the descriptor is closed, then -1/EIO */
	FI_RENAME = 1u << 9,
	FI_FSTAT = 1u << 10,
	FI_GETRANDOM = 1u << 11,
	FI_IOCTL = 1u << 12,
	FI_POLL = 1u << 13,
	FI_EVENTFD = 1u << 14,
	FI_THREAD = 1u << 15, /* pthread_create */
	FI_UFFD = 1u << 16,   /* syscall(SYS_userfaultfd); other system calls pass */
	FI_FALLOCATE = 1u << 17,
	FI_ALLOC = FI_MALLOC | FI_XXH | FI_MMAP,
	FI_ALL = (1u << 18) - 1,
};

/* Whose calls count: the thread that called fi_arm(), or every other thread. */
enum fi_scope { FI_THIS_THREAD, FI_OTHER_THREADS };

/*
 * From now on count the calls in @calls made by @scope's threads; the
 * @nth of them (1 = the next) fails as the real call fails (NULL,
 * MAP_FAILED or -1 with errno ENOMEM for allocations, mprotect, madvise, ioctl,
 * poll and eventfd, EMFILE for opens and userfaultfd, EIO for the others; EAGAIN returned by
 * pthread_create), and only that one.
 */
void fi_arm(unsigned calls, enum fi_scope scope, unsigned long nth);

/* Stop counting. Returns whether the failure was injected. */
bool fi_disarm(void);

/*
 * Stop counting for a while (a test's own bookkeeping between the calls it
 * tests), then go on where the count was. Nests; fi_arm() and fi_disarm()
 * end every suspension. This thread only.
 */
void fi_suspend(void);
void fi_resume(void);

/* The name of the call that failed since fi_arm() ("none" if none did). */
const char *fi_failed_call(void);

#endif /* GM_TESTS_FAIL_INJECT_H */
