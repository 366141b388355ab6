/* SPDX-License-Identifier: MIT */
/*
 * datapath.c - the data path's cost beside its physical baseline.
 *
 * Guest memory is N anonymous 2 MiB regions laid out contiguously from gpa
 * 0 (N = 1, 8, 64, 512), each its own mapping, so the library really has N
 * regions to choose from. Every figure is the median of REPS runs, printed
 * beside the same work done through raw host pointers (or memcpy) on the
 * same addresses, and their ratio (guestmem / raw: 1.00 is "free").
 *
 *   gm-bench-datapath [--quick]
 */
#include <guestmem/guestmem.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define REGION (2u << 20)
#define REPS   7

static size_t nops = 1u << 22;

struct setup {
	struct gm_memory *m;
	uint64_t size;	    /* guest bytes */
	gm_gpa_t *gpa;	    /* nops random addresses */
	unsigned char **hp; /* the same addresses as host pointers */
};

/* From READ_4K on, the baseline is memcpy(). 16 B: a virtio descriptor read through gm_read(). */
enum op {
	U64_READ,
	U64_WRITE,
	XLATE,
	ATOMIC_LOAD,
	ATOMIC_STORE,
	READ_4K,
	WRITE_4K,
	READ_16,
	WRITE_16
};

static const char *op_name[] = {"u64 read",    "u64 write",    "translate",
				"atomic load", "atomic store", "4 KiB read",
				"4 KiB write", "16 B read",    "16 B write"};

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

static void report(const char *what, unsigned n, double gm, double raw, const char *unit,
		   const char *base)
{
	printf("%-14s N=%-4u %9.2f %-5s  %-7s %9.2f %-5s  ratio %5.2fx\n", what, n, gm, unit, base,
	       raw, unit, gm / raw);
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
	report("u64 chain", nregions, median(g, REPS), median(r, REPS), "ns/op", "raw");
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

		for (rep = 0; rep < REPS; rep++) {
			/* Alternate so both see the same machine state. */
			g[rep] = run_gm(&s, (enum op)op, n, buf);
			r[rep] = run_raw(&s, (enum op)op, n, buf);
		}
		report(op_name[op], nregions, median(g, REPS), median(r, REPS), "ns/op",
		       op >= READ_4K ? "memcpy" : "raw");
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
	{
		double mib = (double)(len - 2048) / (1 << 20);
		double gc = median(g, REPS), rc = median(r, REPS);
		double gr = median(rd, REPS), rrd = median(rr, REPS);

		printf(
		    "%-14s N=%-4u %9.0f MiB/s  memcpy %9.0f MiB/s  ratio %5.2fx of memcpy speed\n",
		    "bulk copy", nregions, mib / (gc / 1e9), mib / (rc / 1e9), rc / gc);
		printf(
		    "%-14s N=%-4u %9.0f MiB/s  memcpy %9.0f MiB/s  ratio %5.2fx of memcpy speed\n",
		    "bulk read", nregions, mib / (gr / 1e9), mib / (rrd / 1e9), rrd / gr);
	}
	free(a);
	free(b);
	free(buf);
	free_setup(&s);
}

int main(int argc, char **argv)
{
	static const unsigned ns[] = {1, 8, 64, 512};
	size_t i;

	if (argc > 1 && strcmp(argv[1], "--quick") == 0)
		nops = 1u << 18;
	printf("guestmem data path: N regions of 2 MiB from gpa 0; median of %d runs;\n"
	       "ratio = guestmem / raw (ns/op) or guestmem speed / memcpy speed (bulk)\n\n",
	       REPS);
	for (i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		size_t saved = nops;

		bench_ops(ns[i]);
		bench_bulk(ns[i]);
		nops = saved;
		printf("\n");
	}
	return 0;
}
