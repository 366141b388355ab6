/* SPDX-License-Identifier: MIT */
/*
 * density.c - what guest memory costs to bring in and to give back:
 * prefault of a whole mapping with one thread and with every CPU of the
 * affinity mask (gm_mapping_prefault(), MADV_POPULATE_WRITE and the touch
 * loop), beside the baseline of a plain memset() of the same fresh mapping
 * (what a VMM without prefault does, a page fault per 4 KiB). Each figure
 * is on a fresh private anonymous mapping of small pages.
 *
 * Then blocks: 1 GiB of RAM in 2 MiB blocks, written, unplugged block by
 * block (each its own commit) and all in one transaction, and plugged
 * back; figures are the time and the host memory returned (the process's
 * RSS), beside the baseline of gm_mapping_discard() of the same blocks
 * without any space (what the commit adds is views, listeners and a grace
 * period).
 *
 *   gm-bench-density [--quick] [GiB ...]
 *
 * Sizes default to 1 and 8 GiB (--quick: 256 MiB, blocks of 256 MiB of
 * RAM). Sizes must fit in free memory: a mapping is faulted in whole, then
 * unmapped.
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

/* This process's resident memory, bytes (/proc/self/statm). */
static uint64_t rss(void)
{
	unsigned long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f) {
		if (fscanf(f, "%lu %lu", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void check(int err, const char *what)
{
	if (err) {
		fprintf(stderr, "gm-bench-density: %s: %s\n", what, strerror(-err));
		exit(1);
	}
}

/* A space with @len bytes of RAM in @block blocks, all plugged and written. */
static struct gm_space *blocks_guest(size_t len, size_t block, struct gm_window **w)
{
	struct gm_space *s;
	struct gm_window_info info = GM_OPTS(gm_window_info);

	check(gm_space_new(0, &s), "space");
	check(gm_space_add_ram(s, 0, len, 0, 0, w), "add RAM");
	check(gm_space_set_blocks(s, *w, block, GM_BLOCKS_PLUGGED), "blocks");
	check(gm_space_window_info(s, *w, &info), "info");
	memset(info.host, 0x5a, len);
	return s;
}

static void plug_blocks(size_t len)
{
	const size_t block = 2 * MiB;
	size_t n = len / block;
	struct gm_space *s;
	struct gm_window *w;
	struct gm_mapping *m;
	uint64_t before, after;
	double t0, t;

	printf("blocks: %zu MiB of RAM in %zu blocks of 2 MiB, written, then given back\n",
	       len / MiB, n);

	/* Baseline: the discards alone. */
	check(gm_mapping_new_anon(len, 0, &m), "mapping");
	memset(gm_mapping_host(m), 0x5a, len);
	before = rss();
	t0 = now_ns();
	for (size_t i = 0; i < n; i++)
		check(gm_mapping_discard(m, i * block, block, 0, NULL), "discard");
	t = now_ns() - t0;
	after = rss();
	printf("  %-44s %9.1f ms %8.1f us/block  RSS -%zu MiB\n",
	       "gm_mapping_discard() per block (baseline)", t / 1e6, t / 1e3 / (double)n,
	       (size_t)((before - after) / MiB));
	gm_mapping_put(m);
	double base = t;

	s = blocks_guest(len, block, &w);
	before = rss();
	t0 = now_ns();
	for (size_t i = 0; i < n; i++)
		check(gm_space_unplug(s, w, i * block, block), "unplug");
	t = now_ns() - t0;
	after = rss();
	printf("  %-44s %9.1f ms %8.1f us/block  RSS -%zu MiB  %.1fx baseline\n",
	       "gm_space_unplug() per block, a commit each", t / 1e6, t / 1e3 / (double)n,
	       (size_t)((before - after) / MiB), t / base);
	t0 = now_ns();
	for (size_t i = 0; i < n; i++)
		check(gm_space_plug(s, w, i * block, block), "plug");
	t = now_ns() - t0;
	printf("  %-44s %9.1f ms %8.1f us/block\n", "gm_space_plug() per block, a commit each",
	       t / 1e6, t / 1e3 / (double)n);
	gm_space_free(s);

	s = blocks_guest(len, block, &w);
	before = rss();
	t0 = now_ns();
	check(gm_space_begin(s), "begin");
	for (size_t i = 0; i < n; i++)
		check(gm_space_unplug(s, w, i * block, block), "unplug");
	check(gm_space_commit(s), "commit");
	t = now_ns() - t0;
	after = rss();
	printf("  %-44s %9.1f ms %8.1f us/block  RSS -%zu MiB  %.1fx baseline\n",
	       "gm_space_unplug() of all, one transaction", t / 1e6, t / 1e3 / (double)n,
	       (size_t)((before - after) / MiB), t / base);
	gm_space_free(s);
}

int main(int argc, char **argv)
{
	size_t sizes[8];
	size_t blocks = 1024 * MiB;
	int n = 0, reps = 3;

	for (int i = 1; i < argc && n < 8; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			sizes[n++] = 256 * MiB;
			blocks = 256 * MiB;
		} else {
			sizes[n++] = (size_t)strtoul(argv[i], NULL, 10) << 30;
		}
	}
	if (n == 0) {
		sizes[n++] = 1024 * MiB;
		sizes[n++] = 8192 * MiB;
		reps = 3;
	}
	printf("CPUs online: %ld\n", sysconf(_SC_NPROCESSORS_ONLN));
	prefault_sizes(sizes, n, reps);
	plug_blocks(blocks);
	return 0;
}
