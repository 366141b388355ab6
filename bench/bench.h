/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what every benchmark in bench/ shares: a clock, medians and a
 * cheap deterministic random stream. Header-only; each benchmark is one
 * program.
 */
#ifndef GM_BENCH_H
#define GM_BENCH_H

#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Written by every timed loop so the compiler cannot drop its work. */
static volatile uint64_t sink;

static inline double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The median of @n figures (sorts @v). */
static inline double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

/*
 * The median of @a[i] / @b[i] over @n (<= 64) pairs of runs made one
 * right after the other: each pair saw the same machine, so on a loaded
 * machine this is steadier than the ratio of the two medians.
 */
static inline double median_ratio(const double *a, const double *b, int n)
{
	double r[64];
	int i;

	for (i = 0; i < n && i < 64; i++)
		r[i] = a[i] / b[i];
	return median(r, i);
}

/* xorshift64: the same addresses on every run. */
static uint64_t rng_state = 88172645463325252ull;
static inline uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/*
 * --pin CPU: run the calling process on CPU @arg only (sched_setaffinity),
 * so before/after runs on a shared machine can be compared on one CPU.
 * Exits with a message naming @prog if @arg is not a CPU this process may use.
 */
static inline void bench_pin(const char *prog, const char *arg)
{
	char *end;
	long cpu = strtol(arg, &end, 10);
	cpu_set_t set;

	if (*arg == '\0' || *end != '\0' || cpu < 0 || cpu >= CPU_SETSIZE) {
		fprintf(stderr, "%s: --pin wants a CPU number, not '%s'\n", prog, arg);
		exit(2);
	}
	CPU_ZERO(&set);
	CPU_SET((int)cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0) {
		fprintf(stderr, "%s: cannot run on CPU %ld\n", prog, cpu);
		exit(1);
	}
	printf("pinned to CPU %ld\n", cpu);
}

#endif
