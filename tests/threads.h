/* SPDX-License-Identifier: MIT */
/*
 * threads.h - starting and joining a test's worker threads so that no
 * cmocka assertion leaves a test while one of them runs.
 *
 * A failed cmocka assertion longjmps out of the test function (and fired
 * on another thread, into a frame that is not its own): a thread the test
 * started would go on running on, or waiting on a barrier in, a dead
 * frame. So worker threads never assert but record their failures; the
 * test joins every thread it started and only then asserts; and a thread
 * that cannot be started ends the program, not the test, because the ones
 * already started may be waiting for it.
 */
#ifndef GM_TESTS_THREADS_H
#define GM_TESTS_THREADS_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline void start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	int err = pthread_create(t, NULL, fn, arg);

	if (err) {
		fprintf(stderr, "pthread_create: %s; threads already started may wait for it\n",
			strerror(err));
		abort();
	}
}

/* Join all @n threads of @t; returns the first pthread_join error, 0 if none. */
static inline int join_threads(pthread_t *t, size_t n)
{
	int first = 0;

	for (size_t i = 0; i < n; i++) {
		int err = pthread_join(t[i], NULL);

		if (err && !first)
			first = err;
	}
	return first;
}

#endif
