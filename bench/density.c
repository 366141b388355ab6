/*
 * density.c - what guest memory costs to bring in and to give back:
 * prefault of a whole mapping with one thread and with every CPU of the
 * affinity mask (gm_mapping_prefault(), MADV_POPULATE_WRITE and the touch
 * loop), beside the baseline of a plain memset() of the same fresh mapping
 * (what a VMM without prefault does, a page fault per 4 KiB). Each figure
 * is on a fresh private anonymous mapping of small pages.
 *
 *   gm-bench-density [--quick] [GiB ...]
 *
 * Sizes default to 1 and 8 GiB (--quick: 256 MiB). Sizes must fit in free
 * memory: a mapping is faulted in whole, then unmapped.
 */
#include "bench.h"

#include <guestmem/guestmem.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)

enum how { MEMSET, ONE, ALL, TOUCH_ONE, TOUCH_ALL };

static const char *const names[] = {
    [MEMSET] = "memset (baseline)",	     [ONE] = "prefault, 1 thread",
    [ALL] = "prefault, all threads",	     [TOUCH_ONE] = "touch loop, 1 thread",
    [TOUCH_ALL] = "touch loop, all threads",
};

/* Seconds to bring @len fresh bytes in by @how. */
static double run(size_t len, enum how how)
{
	struct gm_mapping *m;
	struct gm_prefault_opts o = GM_OPTS(gm_prefault_opts);
	double t0, t;
	int err;

	err = gm_mapping_new_anon(len, 0, &m);
	if (err) {
		fprintf(stderr, "gm-bench-density: %zu MiB: %s\n", len / MiB, strerror(-err));
		exit(1);
	}
	(void)madvise(gm_mapping_host(m), len, MADV_NOHUGEPAGE);
	o.threads = (how == ONE || how == TOUCH_ONE) ? 1 : 0;
	o.flags = (how == TOUCH_ONE || how == TOUCH_ALL) ? GM_PREFAULT_TOUCH : 0;
	t0 = now_ns();
	if (how == MEMSET)
		memset(gm_mapping_host(m), 0, len);
	else
		err = gm_mapping_prefault(m, 0, len, &o);
	t = (now_ns() - t0) / 1e9;
	if (err) {
		fprintf(stderr, "gm-bench-density: prefault: %s\n", strerror(-err));
		exit(1);
	}
	gm_mapping_put(m);
	return t;
}

static void prefault_sizes(const size_t *sizes, int n, int reps)
{
	printf("prefault of a fresh mapping (4 KiB pages), median of %d, seconds and GiB/s\n",
	       reps);
	for (int i = 0; i < n; i++) {
		double base = 0;

		for (enum how h = MEMSET; h <= TOUCH_ALL; h++) {
			double v[9];

			for (int r = 0; r < reps; r++)
				v[r] = run(sizes[i], h);
			double t = median(v, reps);

			if (h == MEMSET)
				base = t;
			printf("  %6zu MiB  %-24s %8.3f s %7.2f GiB/s  %5.2fx memset\n",
			       sizes[i] / MiB, names[h], t, (double)sizes[i] / (1 << 30) / t,
			       base / t);
		}
	}
}

int main(int argc, char **argv)
{
	size_t sizes[8];
	int n = 0, reps = 3;

	for (int i = 1; i < argc && n < 8; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			sizes[n++] = 256 * MiB;
		else
			sizes[n++] = (size_t)strtoul(argv[i], NULL, 10) << 30;
	}
	if (n == 0) {
		sizes[n++] = 1024 * MiB;
		sizes[n++] = 8192 * MiB;
		reps = 3;
	}
	printf("CPUs online: %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
	prefault_sizes(sizes, n, reps);
	return 0;
}
