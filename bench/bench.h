/* SPDX-License-Identifier: MIT */
/*
 * bench.h - what every benchmark in bench/ shares: a clock, medians and a
 * cheap deterministic random stream. Header-only; each benchmark is one
 * program.
 */
#ifndef GM_BENCH_H
#define GM_BENCH_H

#include <stdint.h>
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

/* xorshift64: the same addresses on every run. */
static uint64_t rng_state = 88172645463325252ull;
static inline uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

#endif
