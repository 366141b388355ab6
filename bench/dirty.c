/* SPDX-License-Identifier: MIT */
/*
 * dirty.c - what dirty tracking costs the data path, and what reading a
 * bitmap costs beside copying it.
 *
 *   1. Writes through a view of 64 MiB of RAM (faulted in first), as one
 *      region and as 512 regions of 128 KiB (each its own mapping, one
 *      bitmap for all), with tracking on, beside the same writes with
 *      tracking off: random naturally aligned u64 and u32 stores (the
 *      inline fast path) and 4 KiB gm_write()s at random pages. The
 *      bitmap is cleared before every run, so each page's first write
 *      really sets its bit. Target (issue 21): tracked <= 1.15x untracked
 *      for u64 stores.
 *   2. Read-and-clear (gm_dirty_collect() of the whole bitmap in one call)
 *      of a region of 1 GiB, 16 GiB and 64 GiB of guest RAM with 1% of its
 *      pages dirty, beside a plain memcpy() of a bitmap of the same size.
 *      The RAM is a GM_MAP_NORESERVE mapping nobody touches.
 *   3. If /dev/kvm works: gm_kvm_dirty_log_sync() of one RAM slot of the
 *      same sizes (KVM_GET_DIRTY_LOG, then the merge into the region's
 *      bitmap; nothing dirty, so this is the fixed cost a migration pays
 *      per pass), beside a memcpy() of the bitmap. Only where the library
 *      has the KVM binding (GM_BENCH_KVM, set by meson.build).
 * Every figure is the median of REPS runs, printed with its baseline and
 * the ratio (figure / baseline; for the writes, the median of the ratios
 * of tracked and untracked runs made in pairs).
 *
 *   gm-bench-dirty [--quick] [--pin CPU]
 */
#include <guestmem/guestmem.h>
#include <guestmem/kvm.h>
#include <guestmem/space.h>

#include <fcntl.h>
#ifdef GM_BENCH_KVM
#include <linux/kvm.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define REPS	7
#define RAM_MIB 64u

static size_t nops = 1u << 22;

static void report(const char *what, double fig, const char *unit, const char *base_name,
		   double base)
{
	printf("%-24s %10.2f %-6s  %-16s %10.2f %-6s  ratio %5.2fx\n", what, fig, unit, base_name,
	       base, unit, fig / base);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "gm-bench-dirty: %s: %s\n", what, strerror(-err));
	exit(1);
}

/*
 * A view of @nregions regions of @size / @nregions bytes of fresh
 * anonymous memory from gpa 0, each its own mapping, all tracked by one
 * bitmap @d. @maps gets the mappings.
 */
static void make_view(uint64_t size, unsigned nregions, unsigned map_flags,
		      struct gm_mapping **maps, struct gm_dirty **d, struct gm_memory **m)
{
	struct gm_region_spec *spec = calloc(nregions, sizeof(*spec));
	uint64_t each = size / nregions;
	size_t len;
	unsigned i;
	int err;

	if (spec == NULL)
		die("set-up", -ENOMEM);
	err = gm_u64_to_size(each, &len);
	if (err)
		die("region size", err);
	err = gm_dirty_new(size, d);
	if (err)
		die("dirty bitmap", err);
	for (i = 0; i < nregions; i++) {
		err = gm_mapping_new_anon(len, map_flags, &maps[i]);
		if (err)
			die("mapping", err);
		spec[i].gpa = (gm_gpa_t)i * each;
		spec[i].size = each;
		spec[i].mapping = maps[i];
		spec[i].dirty = *d;
		spec[i].dirty_offset = (uint64_t)i * each;
	}
	err = gm_memory_new(spec, nregions, m);
	if (err)
		die("view", err);
	free(spec);
}

static void put_view(unsigned nregions, struct gm_mapping **maps, struct gm_dirty *d,
		     struct gm_memory *m)
{
	unsigned i;

	gm_memory_put(m);
	gm_dirty_put(d);
	for (i = 0; i < nregions; i++)
		gm_mapping_put(maps[i]);
}

static void clear_bitmap(struct gm_dirty *d, uint64_t *scratch, size_t nwords)
{
	if (gm_dirty_collect(d, 0, scratch, nwords))
		exit(1);
}

enum wop { W_U64, W_U32, W_4K };

static double run_writes(const struct gm_memory *m, enum wop op, const gm_gpa_t *gpa, size_t n)
{
	static unsigned char buf[4096];
	double t0 = now_ns();
	size_t i;

	switch (op) {
	case W_U64:
		for (i = 0; i < n; i++)
			gm_write_u64(m, gpa[i], i);
		break;
	case W_U32:
		for (i = 0; i < n; i++)
			gm_write_u32(m, gpa[i], (uint32_t)i);
		break;
	case W_4K:
		for (i = 0; i < n; i++)
			gm_write(m, gpa[i] & ~(gm_gpa_t)4095, buf, sizeof(buf));
		break;
	}
	return (now_ns() - t0) / (double)n;
}

static void bench_writes(unsigned nregions)
{
	static const char *what[] = {"u64 write", "u32 write", "4 KiB write"};
	const uint64_t size = (uint64_t)RAM_MIB << 20;
	const size_t nwords = (size_t)(size / GM_PAGE_SIZE / 64);
	struct gm_mapping **maps = calloc(nregions, sizeof(*maps));
	uint64_t *scratch = malloc(nwords * sizeof(uint64_t));
	gm_gpa_t *gpa = malloc(nops * sizeof(*gpa));
	struct gm_dirty *d;
	struct gm_memory *m;
	size_t i;
	int op;

	if (maps == NULL || scratch == NULL || gpa == NULL)
		exit(1);
	make_view(size, nregions, 0, maps, &d, &m);
	if (gm_fill(m, 0, 1, (size_t)size)) /* fault every page in */
		exit(1);
	for (i = 0; i < nops; i++)
		gpa[i] = (rnd() % size) & ~(gm_gpa_t)7;

	for (op = W_U64; op <= W_4K; op++) {
		size_t n = op == W_4K ? nops / 64 : nops;
		double on[REPS], off[REPS], ratio;
		char label[48];
		int rep, tracked;

		for (rep = 0; rep < REPS; rep++) {
			/* Alternate on and off so both see the same machine state. */
			for (tracked = 1; tracked >= 0; tracked--) {
				gm_dirty_set_enabled(d, tracked);
				clear_bitmap(d, scratch, nwords);
				(tracked ? on : off)[rep] = run_writes(m, (enum wop)op, gpa, n);
			}
		}
		snprintf(label, sizeof(label), "%s, N=%u", what[op], nregions);
		ratio = median_ratio(on, off, REPS); /* before median() sorts them */
		printf("%-24s %10.2f %-6s  %-16s %10.2f %-6s  ratio %5.2fx", label,
		       median(on, REPS), "ns/op", "tracking off", median(off, REPS), "ns/op",
		       ratio);
		if (op == W_U64)
			printf("  (target <= 1.15x)%s", ratio > 1.15 ? "  ABOVE TARGET" : "");
		printf("\n");
	}
	gm_dirty_set_enabled(d, true);
	clear_bitmap(d, scratch, nwords);
	put_view(nregions, maps, d, m);
	free(maps);
	free(gpa);
	free(scratch);
}

static void bench_collect(unsigned gib)
{
	const uint64_t size = (uint64_t)gib << 30, npages = size / GM_PAGE_SIZE;
	const uint64_t ndirty = npages / 100;
	double col[REPS], cpy[REPS];
	struct gm_mapping *map;
	struct gm_dirty *d;
	struct gm_memory *m;
	uint64_t *out, *src, i;
	size_t nwords, len;
	char what[40];
	int rep;

	if (gm_u64_to_size(size, &len)) {
		printf("read-and-clear %2u GiB     skipped: this host cannot map it\n", gib);
		return;
	}
	nwords = (size_t)(npages / 64);
	make_view(size, 1, GM_MAP_NORESERVE, &map, &d, &m);
	out = malloc(nwords * sizeof(uint64_t));
	src = malloc(nwords * sizeof(uint64_t));
	if (out == NULL || src == NULL)
		exit(1);
	for (rep = 0; rep < REPS; rep++) {
		double t0;

		/* 1% of the pages, at random (a page picked twice counts once). */
		for (i = 0; i < ndirty; i++)
			gm_dirty_mark(d, (rnd() % npages) * GM_PAGE_SIZE, 1);
		memcpy(src, out, nwords * sizeof(uint64_t)); /* warm both buffers alike */
		t0 = now_ns();
		if (gm_dirty_collect(d, 0, out, nwords))
			exit(1);
		col[rep] = (now_ns() - t0) / 1e3;
		t0 = now_ns();
		memcpy(src, out, nwords * sizeof(uint64_t));
		cpy[rep] = (now_ns() - t0) / 1e3;
		sink = src[rnd() % nwords];
	}
	snprintf(what, sizeof(what), "read-and-clear %2u GiB", gib);
	report(what, median(col, REPS), "us", "memcpy of bitmap", median(cpy, REPS));
	put_view(1, &map, d, m);
	free(out);
	free(src);
}

#ifdef GM_BENCH_KVM
/* A VM fd, or -1 with the reason printed. */
static int open_vm(int *kvm_fd)
{
	int vm;

	*kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (*kvm_fd < 0) {
		printf("KVM dirty-log sync        skipped: /dev/kvm not usable (%s)\n",
		       strerror(errno));
		return -1;
	}
	vm = ioctl(*kvm_fd, KVM_CREATE_VM, 0);
	if (vm < 0) {
		printf("KVM dirty-log sync        skipped: KVM_CREATE_VM: %s\n", strerror(errno));
		close(*kvm_fd);
	}
	return vm;
}

static void bench_kvm_sync(unsigned gib)
{
	const uint64_t size = (uint64_t)gib << 30;
	double syn[REPS], cpy[REPS];
	struct gm_space *space;
	struct gm_window *w;
	struct gm_kvm *k;
	uint64_t *a, *b;
	size_t nwords = (size_t)(size / GM_PAGE_SIZE / 64), len;
	char what[40];
	int kvm_fd, vm, rep, err;

	if (gm_u64_to_size(size, &len)) {
		printf("KVM sync %2u GiB           skipped: this host cannot map it\n", gib);
		return;
	}
	vm = open_vm(&kvm_fd);
	if (vm < 0)
		return;
	err = gm_space_new(GM_SPACE_MEMORY, &space);
	if (!err)
		err = gm_space_add_ram(space, 0, size, 0, GM_MAP_NORESERVE, &w);
	if (!err)
		err = gm_kvm_new(vm, space, NULL, &k);
	if (!err)
		err = gm_kvm_dirty_log_start(k);
	if (err)
		die("KVM set-up", err);
	a = calloc(nwords, sizeof(uint64_t));
	b = calloc(nwords, sizeof(uint64_t));
	if (a == NULL || b == NULL)
		exit(1);
	for (rep = 0; rep < REPS; rep++) {
		double t0 = now_ns();

		if (gm_kvm_dirty_log_sync(k))
			exit(1);
		syn[rep] = (now_ns() - t0) / 1e3;
		t0 = now_ns();
		memcpy(b, a, nwords * sizeof(uint64_t));
		cpy[rep] = (now_ns() - t0) / 1e3;
		sink = b[rnd() % nwords];
	}
	snprintf(what, sizeof(what), "KVM sync %2u GiB, clean", gib);
	report(what, median(syn, REPS), "us", "memcpy of bitmap", median(cpy, REPS));
	free(a);
	free(b);
	gm_kvm_free(k);
	gm_space_free(space);
	close(vm);
	close(kvm_fd);
}
#else
static void bench_kvm_sync(unsigned gib)
{
	printf("KVM sync %2u GiB           skipped: no KVM on this host\n", gib);
}
#endif

int main(int argc, char **argv)
{
	int a;

	for (a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--quick") == 0)
			nops = 1u << 18;
		else if (strcmp(argv[a], "--pin") == 0 && a + 1 < argc)
			bench_pin("gm-bench-dirty", argv[++a]);
		else {
			fprintf(stderr, "usage: gm-bench-dirty [--quick] [--pin CPU]\n");
			return 2;
		}
	}
	printf("guestmem dirty tracking: median of %d runs; ratio = figure / baseline\n", REPS);
	printf("writes: %u MiB of RAM as 1 region and as 512, bitmap cleared before each run\n",
	       RAM_MIB);
	bench_writes(1);
	bench_writes(512);
	printf("read-and-clear: whole bitmap in one gm_dirty_collect(), 1%% of pages dirty\n");
	bench_collect(1);
	bench_collect(16);
	bench_collect(64);
	printf("KVM dirty log: gm_kvm_dirty_log_sync() of one slot, logging on\n");
	bench_kvm_sync(1);
	bench_kvm_sync(16);
	bench_kvm_sync(64);
	return 0;
}
