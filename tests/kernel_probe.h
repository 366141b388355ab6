/* SPDX-License-Identifier: MIT */
/*
 * kernel_probe.h - what the running kernel does that a test's expected
 * figures depend on, found by trying it.
 */
#ifndef GM_TESTS_KERNEL_PROBE_H
#define GM_TESTS_KERNEL_PROBE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

/*
 * Whether a read of untouched private anonymous memory gives the process a
 * page of its own. Linux usually maps the shared zero page there, which
 * /proc/self/smaps does not count in Rss; some kernels (seen: 6.18.44-fc,
 * a PVM guest's) allocate a page instead, which then costs memory and is
 * freed by a discard. Tried on one page made a mapping of its own (between
 * two PROT_NONE guards) so that its smaps entry is its alone. False where
 * it cannot be told (no smaps).
 */
static inline bool kernel_reads_allocate_anon_pages(void)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char *g = mmap(NULL, 3 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	volatile unsigned char *p;
	char line[512];
	bool in = false, own = false;
	FILE *f;

	if (g == MAP_FAILED)
		return false;
	p = g + pg;
	if (mprotect((void *)p, pg, PROT_READ) == 0) {
		(void)p[0];
		f = fopen("/proc/self/smaps", "r");
		while (f && fgets(line, sizeof(line), f)) {
			unsigned long lo, hi, kb;

			if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
				in = lo == (unsigned long)(uintptr_t)p;
			else if (in && sscanf(line, "Rss: %lu kB", &kb) == 1) {
				own = kb > 0;
				break;
			}
		}
		if (f)
			fclose(f);
	}
	munmap(g, 3 * pg);
	return own;
}

#endif
