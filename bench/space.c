/* SPDX-License-Identifier: MIT */
/*
 * space.c - what the address-space layer costs a reader and an access routed to RAM or a device.
 *
 * 1. Lookup-and-read through the current view: per access, enter an RCU
 *    read section, take gm_space_memory(), gm_read_u64() at a random
 *    address of 16 MiB of RAM (eight 2 MiB windows), leave the section.
 *    Measured with no writer, then while a writer thread publishes a new
 *    view every millisecond (it flips the protection of a page of a ninth
 *    window the reader never touches, so every commit rebuilds the view and
 *    waits for a grace period). Target: within 1.2x of the quiet figure.
 *    The quiet figure is also shown beside a raw pointer load, and reads
 *    batched 64 to a read section beside gm_read_u64() on a held view.
 * 2. Dispatch: gm_space_read() of 8 bytes from a device whose read callback
 *    does nothing, beside calling that callback through a function pointer;
 *    and gm_space_read() of 8 bytes of RAM beside gm_read_u64() on the view.
 *
 * Each figure is the median of REPS runs (quiet and busy runs alternate):
 * ns per access.
 *
 *   gm-bench-space [--quick]
 */
#include <guestmem/guestmem.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define REGION	 (2u << 20)
#define NRAM	 8
#define REPS	 11
#define DEV_GPA	 0x80000000ull
#define SIDE_GPA 0x40000000ull

static size_t nops = 1u << 22;

static int noop_read(void *opaque, uint64_t offset, unsigned size, uint64_t *val)
{
	(void)opaque;
	(void)offset;
	(void)size;
	*val = 0;
	return 0;
}

struct writer {
	struct gm_space *s;
	struct gm_window *side;
	int stop;   /* atomic */
	int active; /* atomic: publish while set, only sleep while clear */
	unsigned long commits;
	int err;
};

/* Publish a new view every millisecond until told to stop. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct timespec next;
	bool ro = false;

	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
		next.tv_nsec += 1000000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
		if (!__atomic_load_n(&w->active, __ATOMIC_RELAXED))
			continue;
		ro = !ro;
		w->err = gm_space_protect(w->s, w->side, 0, GM_PAGE_SIZE,
					  ro ? GM_PROT_READ : GM_PROT_ALL);
		if (w->err)
			break;
		w->commits++;
	}
	return NULL;
}

static double view_reads(struct gm_space *s, const gm_gpa_t *gpa)
{
	double t0 = now_ns();
	uint64_t acc = 0, v = 0;
	size_t i;

	for (i = 0; i < nops; i++) {
		gm_rcu_read_lock();
		gm_read_u64(gm_space_memory(s), gpa[i], &v);
		gm_rcu_read_unlock();
		acc += v;
	}
	sink = acc;
	return (now_ns() - t0) / (double)nops;
}

/* The same, one read section per 64 accesses, as a device walking a ring would. */
static double view_reads_batched(struct gm_space *s, const gm_gpa_t *gpa)
{
	double t0 = now_ns();
	uint64_t acc = 0, v = 0;
	size_t i, j;

	for (i = 0; i < nops; i += 64) {
		struct gm_memory *m;

		gm_rcu_read_lock();
		m = gm_space_memory(s);
		for (j = i; j < i + 64 && j < nops; j++) {
			gm_read_u64(m, gpa[j], &v);
			acc += v;
		}
		gm_rcu_read_unlock();
	}
	sink = acc;
	return (now_ns() - t0) / (double)nops;
}

static double raw_reads(unsigned char *const *hp)
{
	double t0 = now_ns();
	uint64_t acc = 0;
	size_t i;

	for (i = 0; i < nops; i++)
		acc += __atomic_load_n((const uint64_t *)(const void *)hp[i], __ATOMIC_RELAXED);
	sink = acc;
	return (now_ns() - t0) / (double)nops;
}

static double routed_reads(struct gm_space *s, const gm_gpa_t *gpa, bool device)
{
	double t0 = now_ns();
	uint64_t acc = 0, v = 0;
	size_t i;

	for (i = 0; i < nops; i++) {
		gm_space_read(s, device ? DEV_GPA + (i & 0xff) * 8 : gpa[i], &v, 8);
		acc += v;
	}
	sink = acc;
	return (now_ns() - t0) / (double)nops;
}

/* The device callback alone, through a pointer the compiler cannot see through. */
static int (*volatile call_read)(void *, uint64_t, unsigned, uint64_t *) = noop_read;

static double direct_calls(void)
{
	double t0 = now_ns();
	uint64_t acc = 0, v = 0;
	size_t i;

	for (i = 0; i < nops; i++) {
		call_read(NULL, (i & 0xff) * 8, 8, &v);
		acc += v;
	}
	sink = acc;
	return (now_ns() - t0) / (double)nops;
}

static double view_reads_plain(struct gm_memory *m, const gm_gpa_t *gpa)
{
	double t0 = now_ns();
	uint64_t acc = 0, v = 0;
	size_t i;

	for (i = 0; i < nops; i++) {
		gm_read_u64(m, gpa[i], &v);
		acc += v;
	}
	sink = acc;
	return (now_ns() - t0) / (double)nops;
}

static void report(const char *what, double fig, const char *base, double bfig)
{
	printf("%-32s %8.2f ns   %-26s %8.2f ns   ratio %5.2fx\n", what, fig, base, bfig,
	       fig / bfig);
}

int main(int argc, char **argv)
{
	const struct gm_device_ops ops =
	    GM_OPTS(gm_device_ops, .name = "noop", .read = noop_read, .sizes = GM_ACCESS_8);
	double quiet[REPS], busy[REPS], batch[REPS], raw[REPS], dev[REPS], call[REPS], dram[REPS],
	    vram[REPS];
	struct writer w = {0};
	struct gm_window *win;
	struct gm_memory *m;
	unsigned char **hp;
	gm_gpa_t *gpa;
	pthread_t tid;
	size_t i;
	int r, err = 0;

	if (argc > 1 && strcmp(argv[1], "--quick") == 0)
		nops = 1u << 18;
	gm_rcu_register_thread();
	err = gm_space_new(0, &w.s);
	for (i = 0; !err && i < NRAM; i++)
		err = gm_space_add_ram(w.s, (gm_gpa_t)i * REGION, REGION, 0, 0, &win);
	if (!err)
		err = gm_space_add_ram(w.s, SIDE_GPA, REGION, 0, 0, &w.side);
	if (!err)
		err = gm_space_add_mmio(w.s, DEV_GPA, 0x1000, &ops, NULL, &win);
	if (!err)
		err = gm_space_memory_get(w.s, &m);
	if (err) {
		fprintf(stderr, "gm-bench-space: setup: %s\n", strerror(-err));
		return 1;
	}
	gm_fill(m, 0, 1, (size_t)NRAM * REGION);
	gpa = malloc(nops * sizeof(*gpa));
	hp = malloc(nops * sizeof(*hp));
	if (!gpa || !hp)
		return 1;
	for (i = 0; i < nops; i++) {
		gpa[i] = (rnd() % ((uint64_t)NRAM * REGION)) & ~(gm_gpa_t)7;
		hp[i] = gm_host_ptr(m, gpa[i], 8);
	}

	/* The writer thread exists (asleep) for every quiet run as well, and quiet
	 * and busy runs alternate, so load from elsewhere on the machine falls
	 * on both alike. */
	if (pthread_create(&tid, NULL, writer_main, &w) != 0)
		return 1;
	for (r = 0; r < REPS; r++) {
		quiet[r] = view_reads(w.s, gpa);
		__atomic_store_n(&w.active, 1, __ATOMIC_RELAXED);
		busy[r] = view_reads(w.s, gpa);
		__atomic_store_n(&w.active, 0, __ATOMIC_RELAXED);
		batch[r] = view_reads_batched(w.s, gpa);
		raw[r] = raw_reads(hp);
		dev[r] = routed_reads(w.s, gpa, true);
		call[r] = direct_calls();
		dram[r] = routed_reads(w.s, gpa, false);
		vram[r] = view_reads_plain(m, gpa);
	}
	__atomic_store_n(&w.stop, 1, __ATOMIC_RELAXED);
	pthread_join(tid, NULL);
	if (w.err) {
		fprintf(stderr, "gm-bench-space: writer: %s\n", strerror(-w.err));
		return 1;
	}

	printf("gm-bench-space: %zu accesses per run, median of %d runs, 16 MiB of RAM in %d "
	       "windows\n",
	       nops, REPS, NRAM);
	report("view read, writer every 1 ms", median(busy, REPS), "view read, no writer",
	       median(quiet, REPS));
	report("view read, no writer", median(quiet, REPS), "raw pointer load", median(raw, REPS));
	report("view read, 64 per read section", median(batch, REPS), "gm_read_u64 on the view",
	       median(vram, REPS));
	report("gm_space_read 8 B from no-op MMIO", median(dev, REPS), "direct callback call",
	       median(call, REPS));
	report("gm_space_read 8 B from RAM", median(dram, REPS), "gm_read_u64 on the view",
	       median(vram, REPS));
	printf("writer published %lu views (%llu in all)\n", w.commits,
	       (unsigned long long)gm_space_generation(w.s));
	gm_memory_put(m);
	gm_space_free(w.s);
	free(gpa);
	free(hp);
	gm_rcu_unregister_thread();
	return 0;
}
