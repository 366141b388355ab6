/* SPDX-License-Identifier: MIT */
/*
 * kernel_probe.h - what the running kernel does that a test's expected
 * figures depend on, found by trying it.
 */
#ifndef GM_TESTS_KERNEL_PROBE_H
#define GM_TESTS_KERNEL_PROBE_H

#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * Whether a read of untouched private anonymous memory gives the process a
 * page of its own. Linux usually maps the shared zero page there, which
 * /proc/self/pagemap does not show as mapped exclusively (bit 56); some
 * kernels (seen: 6.18.44-fc, a PVM guest's) allocate a page instead, which
 * then costs memory and is freed by a discard. False where it cannot be
 * told (no pagemap).
 */
static inline bool kernel_reads_allocate_anon_pages(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	volatile unsigned char *p =
	    mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t e = 0;
	bool own = false;
	int fd;

	if (p == MAP_FAILED)
		return false;
	(void)p[0];
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)p / (uintptr_t)pg * sizeof(e))) ==
		    (ssize_t)sizeof(e))
			own = (e >> 63 & 1) && (e >> 56 & 1);
		close(fd);
	}
	munmap((void *)p, (size_t)pg);
	return own;
}

#endif
