/* SPDX-License-Identifier: MIT */
/*
 * datapath.c - the data path's cost beside its physical baseline.
 *
 * Guest memory is N anonymous 2 MiB regions laid out contiguously from gpa
 * 0 (N = 1, 8, 64, 512), each its own mapping, so the library really has N
 * regions to choose from. Every figure is the median of REPS runs, printed
 * beside the same work done through raw host pointers (or memcpy, or a
 * plain read()) on the same addresses, and their ratio (guestmem / raw:
 * 1.00 is "free"; for bulk copies and fd reads, guestmem's speed / the
 * baseline's): the median of the ratios of runs made in pairs, one right
 * after the other, which a loaded machine disturbs less than the ratio of
 * the two medians. Each line ends with its target (issues 12 and 21) and
 * "ABOVE TARGET" (or "BELOW TARGET" for a speed) when it misses it.
 *
 * "u64 read, cursor" is the same loop as "u64 read" through a struct
 * gm_cursor in a local. "fd read" is gm_read_from_fd() of 1 MiB from
 * /dev/zero at each 1 MiB of the guest in turn, beside read() of 1 MiB into
 * one plain anonymous mapping of the guest's size.
 *
 *   gm-bench-datapath [--quick] [--pin CPU]
 *
 * --pin runs the whole benchmark on CPU (sched_setaffinity): on a shared
 * machine, compare runs made on the same CPU.
 */
#include <guestmem/guestmem.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define REGION (2u << 20)
#define REPS   7

static size_t nops = 1u << 22;
static int quick;
static unsigned above; /* lines that miss their target */

struct setup {
	struct gm_memory *m;
	uint64_t size;	    /* guest bytes */
	gm_gpa_t *gpa;	    /* nops random addresses */
	unsigned char **hp; /* the same addresses as host pointers */
};

/* From READ_4K on, the baseline is memcpy(). 16 B: a virtio descriptor read through gm_read(). */
enum op {
	U64_READ,
	U64_READ_CURSOR,
	U64_WRITE,
	XLATE,
	ATOMIC_LOAD,
	ATOMIC_STORE,
	READ_4K,
	WRITE_4K,
	READ_16,
	WRITE_16
};

static const char *op_name[] = {"u64 read",    "u64 read, cursor", "u64 write",	 "translate",
				"atomic load", "atomic store",	   "4 KiB read", "4 KiB write",
				"16 B read",   "16 B write"};

/*
 * The target of each op's ratio at @nregions regions, 0 for none: issue 21
 * for u64 reads, issue 12 for the rest (1.5x at one region, 2x beyond;
 * copies at >= 0.9x memcpy speed, i.e. <= 1/0.9 of its time).
 */
static double op_target(enum op op, unsigned nregions)
{
	switch (op) {
	case U64_READ:
	case U64_READ_CURSOR:
		return 1.30;
	case U64_WRITE:
	case XLATE:
	case ATOMIC_LOAD:
	case ATOMIC_STORE:
		return nregions == 1 ? 1.5 : 2.0;
	case READ_4K:
	case WRITE_4K:
		return 1 / 0.9;
	default:
		return 0;
	}
}

static double run_gm(const struct setup *s, enum op op, size_t n, unsigned char *buf)
{
	/* Locals, as a device model would hold them: no reload through @s. */
	const struct gm_memory *m = s->m;
	const gm_gpa_t *gpa = s->gpa;
	double t0 = now_ns();
	uint64_t acc = 0, v;
	size_t i;

	switch (op) {
	case U64_READ:
		for (i = 0; i < n; i++) {
			gm_read_u64(m, gpa[i], &v);
			acc += v;
		}
		break;
	case U64_READ_CURSOR: {
#ifdef gm_cursor_read_u64
		struct gm_cursor c;

		gm_cursor_init(&c, m);
		for (i = 0; i < n; i++) {
			gm_cursor_read_u64(&c, gpa[i], &v);
			acc += v;
		}
#endif
		break;
	}
	case U64_WRITE:
		for (i = 0; i < n; i++)
			gm_write_u64(m, gpa[i], i);
		break;
	case XLATE:
		for (i = 0; i < n; i++)
			acc += (uintptr_t)gm_host_ptr(m, gpa[i], 8);
		break;
	case ATOMIC_LOAD:
		for (i = 0; i < n; i++) {
			gm_atomic_load_u64(m, gpa[i], &v, __ATOMIC_RELAXED);
			acc += v;
		}
		break;
	case ATOMIC_STORE:
		for (i = 0; i < n; i++)
			gm_atomic_store_u64(m, gpa[i], i, __ATOMIC_RELAXED);
		break;
	case READ_4K:
		for (i = 0; i < n; i++) {
			gm_read(m, gpa[i] & ~(gm_gpa_t)4095, buf, 4096);
			acc += buf[i & 4095];
		}
		break;
	case WRITE_4K:
		for (i = 0; i < n; i++)
			gm_write(m, gpa[i] & ~(gm_gpa_t)4095, buf, 4096);
		break;
	case READ_16:
		for (i = 0; i < n; i++) {
			gm_read(m, gpa[i] & ~(gm_gpa_t)15, buf, 16);
			acc += buf[i & 15];
		}
		break;
	case WRITE_16:
		for (i = 0; i < n; i++)
			gm_write(m, gpa[i] & ~(gm_gpa_t)15, buf, 16);
		break;
	}
	sink = acc;
	return (now_ns() - t0) / (double)n;
}

static double run_raw(const struct setup *s, enum op op, size_t n, unsigned char *buf)
{
	unsigned char *const *hp = s->hp;
	const gm_gpa_t *gpa = s->gpa;
	double t0 = now_ns();
	uint64_t acc = 0;
	size_t i;

	switch (op) {
	case U64_READ:
	case U64_READ_CURSOR:
	case ATOMIC_LOAD:
		for (i = 0; i < n; i++)
			acc += __atomic_load_n((uint64_t *)hp[i], __ATOMIC_RELAXED);
		break;
	case U64_WRITE:
	case ATOMIC_STORE:
		for (i = 0; i < n; i++)
			__atomic_store_n((uint64_t *)hp[i], i, __ATOMIC_RELAXED);
		break;
	case XLATE:
		/* A VMM with one flat mapping: base + offset, nothing checked. */
		for (i = 0; i < n; i++)
			acc += (uintptr_t)hp[0] + (uintptr_t)gpa[i];
		break;
	case READ_4K:
		for (i = 0; i < n; i++) {
			memcpy(buf, (void *)((uintptr_t)hp[i] & ~(uintptr_t)4095), 4096);
			acc += buf[i & 4095];
		}
		break;
	case WRITE_4K:
		for (i = 0; i < n; i++)
			memcpy((void *)((uintptr_t)hp[i] & ~(uintptr_t)4095), buf, 4096);
		break;
	case READ_16:
		for (i = 0; i < n; i++) {
			memcpy(buf, (void *)((uintptr_t)hp[i] & ~(uintptr_t)15), 16);
			acc += buf[i & 15];
		}
		break;
	case WRITE_16:
		for (i = 0; i < n; i++)
			memcpy((void *)((uintptr_t)hp[i] & ~(uintptr_t)15), buf, 16);
		break;
	}
	sink = acc;
	return (now_ns() - t0) / (double)n;
}

static int make_setup(unsigned nregions, struct setup *s)
{
	struct gm_range *r = calloc(nregions, sizeof(*r));
	size_t i;
	int err;

	if (r == NULL)
		return -ENOMEM;
	for (i = 0; i < nregions; i++) {
		r[i].gpa = (gm_gpa_t)i * REGION;
		r[i].size = REGION;
	}
	err = gm_memory_new_anon(r, nregions, &s->m);
	free(r);
	if (err)
		return err;
	s->size = (uint64_t)nregions * REGION;
	err = gm_fill(s->m, 0, 1, (size_t)s->size); /* fault every page in */
	if (err)
		return err;
	s->gpa = malloc(nops * sizeof(*s->gpa));
	s->hp = malloc(nops * sizeof(*s->hp));
	if (s->gpa == NULL || s->hp == NULL)
		return -ENOMEM;
	for (i = 0; i < nops; i++) {
		s->gpa[i] = (rnd() % s->size) & ~(gm_gpa_t)7;
		s->hp[i] = gm_host_ptr(s->m, s->gpa[i], 8);
	}
	return 0;
}

static void free_setup(struct setup *s)
{
	gm_memory_put(s->m);
	free(s->gpa);
	free(s->hp);
}

/*
 * One line: the medians of the figures @gm and baseline @raw (REPS runs
 * each, run in pairs), the median of their pairwise ratios and @target
 * (0: none). Sorts both arrays.
 */
static void report(const char *what, unsigned n, double *gm, double *raw, const char *unit,
		   const char *base, double target)
{
	double ratio = median_ratio(gm, raw, REPS);

	printf("%-16s N=%-4u %9.2f %-5s  %-7s %9.2f %-5s  ratio %5.2fx", what, n, median(gm, REPS),
	       unit, base, median(raw, REPS), unit, ratio);
	if (target > 0) {
		printf("  (target <= %.2fx)%s", target, ratio > target ? "  ABOVE TARGET" : "");
		above += ratio > target;
	}
	printf("\n");
}

/*
 * A speed line: @mib moved in times @gm (ns) and the baseline's @bt; ratio
 * = the median of guestmem's speed / the baseline's, @target its floor.
 */
static void report_speed(const char *what, unsigned n, double mib, double *gm, double *bt,
			 const char *base, double target)
{
	double ratio = median_ratio(bt, gm, REPS);

	printf("%-16s N=%-4u %9.0f MiB/s  %-7s %9.0f MiB/s  ratio %5.2fx of %s speed  (target >= "
	       "%.2fx)%s\n",
	       what, n, mib / (median(gm, REPS) / 1e9), base, mib / (median(bt, REPS) / 1e9), ratio,
	       base, target, ratio < target ? "  BELOW TARGET" : "");
	above += ratio < target;
}

/*
 * Dependent reads: each read's value is the index of the next address, as
 * when a device walks a descriptor chain. Latency, not throughput, bounds
 * this loop, which is how most device accesses behave.
 */
static void bench_chain(const struct setup *s, unsigned nregions)
{
	size_t k = (size_t)(s->size / 64), i, n = nops;
	uint32_t *perm = malloc(k * sizeof(*perm));
	gm_gpa_t *cg = malloc(k * sizeof(*cg));
	uint64_t **ch = malloc(k * sizeof(*ch));
	double g[REPS], r[REPS];
	int rep;

	if (perm == NULL || cg == NULL || ch == NULL)
		exit(1);
	for (i = 0; i < k; i++)
		perm[i] = (uint32_t)i;
	for (i = k - 1; i > 0; i--) { /* Fisher-Yates: one cycle over every cache line */
		size_t j = (size_t)(rnd() % (i + 1));
		uint32_t t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	for (i = 0; i < k; i++) {
		cg[i] = (gm_gpa_t)perm[i] * 64;
		ch[i] = gm_host_ptr(s->m, cg[i], 8);
	}
	for (i = 0; i < k; i++)
		*ch[i] = (i + 1) % k;
	for (rep = 0; rep < REPS; rep++) {
		uint64_t v = 0, idx = 0;
		double t0 = now_ns();

		for (i = 0; i < n; i++) {
			gm_read_u64(s->m, cg[idx], &v);
			idx = v;
		}
		g[rep] = (now_ns() - t0) / (double)n;
		sink = idx;
		idx = 0;
		t0 = now_ns();
		for (i = 0; i < n; i++)
			idx = __atomic_load_n(ch[idx], __ATOMIC_RELAXED);
		r[rep] = (now_ns() - t0) / (double)n;
		sink += idx;
	}
	report("u64 chain", nregions, g, r, "ns/op", "raw", 0);
	free(perm);
	free(cg);
	free(ch);
}

static void bench_ops(unsigned nregions)
{
	static unsigned char buf[4096];
	struct setup s = {0};
	int op, rep;

	if (make_setup(nregions, &s)) {
		fprintf(stderr, "set-up of %u regions failed\n", nregions);
		exit(1);
	}
	for (op = U64_READ; op <= WRITE_16; op++) {
		double g[REPS], r[REPS];
		size_t n = op >= READ_4K ? nops / 16 : nops;

#ifndef gm_cursor_read_u64
		if (op == U64_READ_CURSOR) {
			printf("%-16s N=%-4u skipped: this build has no inline struct gm_cursor\n",
			       op_name[op], nregions);
			continue;
		}
#endif
		for (rep = 0; rep < REPS; rep++) {
			/* Alternate so both see the same machine state. */
			g[rep] = run_gm(&s, (enum op)op, n, buf);
			r[rep] = run_raw(&s, (enum op)op, n, buf);
		}
		report(op_name[op], nregions, g, r, "ns/op", op >= READ_4K ? "memcpy" : "raw",
		       op_target((enum op)op, nregions));
	}
	bench_chain(&s, nregions);
	free_setup(&s);
}

/* 64 MiB (or half the guest, if smaller) copied across region boundaries. */
static void bench_bulk(unsigned nregions)
{
	struct setup s = {0};
	size_t len;
	unsigned char *a, *b, *buf;
	double g[REPS], r[REPS], rd[REPS], rr[REPS];
	int rep;

	nops = 16;
	if (make_setup(nregions, &s))
		exit(1);
	len = (size_t)(s.size / 2 < (64u << 20) ? s.size / 2 : (64u << 20));
	a = malloc(len);
	b = malloc(len);
	buf = malloc(len);
	if (a == NULL || b == NULL || buf == NULL)
		exit(1);
	memset(a, 1, len);
	memset(b, 2, len);
	memset(buf, 3, len);
	for (rep = 0; rep < REPS; rep++) {
		double t0 = now_ns();

		/* Starts 1 KiB into a region so every region boundary is crossed mid-copy. */
		gm_copy(s.m, len + 1024 <= s.size - len ? len + 1024 : len, 1024, len - 2048);
		g[rep] = now_ns() - t0;
		t0 = now_ns();
		memcpy(b, a, len - 2048);
		r[rep] = now_ns() - t0;
		t0 = now_ns();
		gm_read(s.m, 1024, buf, len - 2048);
		rd[rep] = now_ns() - t0;
		t0 = now_ns();
		memcpy(buf, a, len - 2048);
		rr[rep] = now_ns() - t0;
	}
	sink = buf[len / 2] + b[len / 2];
	report_speed("bulk copy", nregions, (double)(len - 2048) / (1 << 20), g, r, "memcpy", 0.9);
	report_speed("bulk read", nregions, (double)(len - 2048) / (1 << 20), rd, rr, "memcpy",
		     0.9);
	free(a);
	free(b);
	free(buf);
	free_setup(&s);
}

/*
 * fd I/O: 1 MiB gm_read_from_fd()s from /dev/zero at each 1 MiB of the
 * guest in turn, beside read()s into one plain anonymous mapping of the
 * same size at the same offsets. The two alternate, so each starts with
 * the other's memory in the caches.
 */
static void bench_fd(unsigned nregions)
{
	const size_t chunk = 1u << 20, per_rep = (quick ? 64u : 256u) << 20;
	struct setup s = {0};
	unsigned char *raw;
	double g[REPS], r[REPS];
	size_t pos = 0, done;
	int fd, rep;

	nops = 16;
	if (make_setup(nregions, &s))
		exit(1);
	raw =
	    mmap(NULL, (size_t)s.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (raw == MAP_FAILED || fd < 0)
		exit(1);
	memset(raw, 1, (size_t)s.size);
	for (rep = 0; rep < REPS; rep++) {
		double t0 = now_ns();
		size_t k;

		for (k = 0; k < per_rep; k += chunk)
			if (gm_read_from_fd(s.m, (pos + k) % s.size, fd, -1, chunk, &done) ||
			    done != chunk)
				exit(1);
		g[rep] = now_ns() - t0;
		t0 = now_ns();
		for (k = 0; k < per_rep; k += chunk)
			if (read(fd, raw + (pos + k) % s.size, chunk) != (ssize_t)chunk)
				exit(1);
		r[rep] = now_ns() - t0;
		pos += per_rep;
	}
	report_speed("fd read 1 MiB", nregions, (double)per_rep / (1 << 20), g, r, "read()", 0.95);
	close(fd);
	munmap(raw, (size_t)s.size);
	free_setup(&s);
}

int main(int argc, char **argv)
{
	static const unsigned ns[] = {1, 8, 64, 512};
	size_t i;
	int a;

	for (a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--quick") == 0) {
			quick = 1;
			nops = 1u << 18;
		} else if (strcmp(argv[a], "--pin") == 0 && a + 1 < argc) {
			bench_pin("gm-bench-datapath", argv[++a]);
		} else {
			fprintf(stderr, "usage: gm-bench-datapath [--quick] [--pin CPU]\n");
			return 2;
		}
	}
	printf("guestmem data path: N regions of 2 MiB from gpa 0; median of %d runs;\n"
	       "ratio = guestmem / raw (ns/op) or guestmem speed / baseline speed (MiB/s)\n\n",
	       REPS);
	for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		size_t saved = nops;

		bench_ops(ns[i]);
		bench_bulk(ns[i]);
		bench_fd(ns[i]);
		nops = saved;
		printf("\n");
	}
	printf("%u line(s) miss their target\n", above);
	return 0;
}
