/* SPDX-License-Identifier: MIT */
/*
 * test_rcu.c - the rcu layer (rcu.h): read sections nest and are seen by
 * gm_rcu_read_ongoing(), and a grace period waits for every read section
 * that began before it, and only for those.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <time.h>

#include <guestmem/rcu.h>

#include "threads.h"

static void read_ongoing_follows_nested_sections(void **state)
{
	(void)state;
	gm_rcu_register_thread();
	assert_false(gm_rcu_read_ongoing());
	gm_rcu_read_lock();
	assert_true(gm_rcu_read_ongoing());
	gm_rcu_read_lock();
	gm_rcu_read_unlock();
	assert_true(gm_rcu_read_ongoing()); /* the outer section is still open */
	gm_rcu_read_unlock();
	assert_false(gm_rcu_read_ongoing());
	gm_rcu_unregister_thread();
}

static void synchronize_with_no_reader_returns(void **state)
{
	(void)state;
	/* Neither registered nor reading: nothing to wait for. */
	gm_rcu_synchronize();
	gm_rcu_register_thread();
	gm_rcu_synchronize(); /* registered, outside a section */
	gm_rcu_unregister_thread();
}

/* A reader that holds a section open until told to leave it. */
struct reader {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int inside; /* the section is open */
	int leave;  /* asked to close it */
	int left;   /* closed it */
	int synced; /* the updater's grace period ended */
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;

	gm_rcu_register_thread();
	gm_rcu_read_lock();
	pthread_mutex_lock(&r->lock);
	r->inside = 1;
	pthread_cond_broadcast(&r->cond);
	while (!r->leave)
		pthread_cond_wait(&r->cond, &r->lock);
	/* The grace period cannot have ended while this section is open. */
	r->left = r->synced ? -1 : 1;
	pthread_mutex_unlock(&r->lock);
	gm_rcu_read_unlock();
	gm_rcu_unregister_thread();
	return NULL;
}

static void *updater_main(void *arg)
{
	struct reader *r = arg;

	gm_rcu_synchronize();
	pthread_mutex_lock(&r->lock);
	r->synced = 1;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void synchronize_waits_for_an_earlier_reader(void **state)
{
	struct reader r = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	struct timespec pause = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
	pthread_t reader, updater;
	int synced_early, join_err[2];

	(void)state;
	assert_int_equal(pthread_create(&reader, NULL, reader_main, &r), 0);
	pthread_mutex_lock(&r.lock);
	while (!r.inside)
		pthread_cond_wait(&r.cond, &r.lock);
	pthread_mutex_unlock(&r.lock);

	/* The reader waits on @r for us: nothing may leave the test until it is joined. */
	start_thread(&updater, updater_main, &r);
	nanosleep(&pause, NULL); /* give a broken grace period time to end early */
	pthread_mutex_lock(&r.lock);
	synced_early = r.synced;
	r.leave = 1;
	pthread_cond_broadcast(&r.cond);
	pthread_mutex_unlock(&r.lock);

	join_err[0] = pthread_join(updater, NULL);
	join_err[1] = pthread_join(reader, NULL);
	assert_int_equal(join_err[0], 0);
	assert_int_equal(join_err[1], 0);
	assert_int_equal(synced_early, 0);
	assert_int_equal(r.left, 1);
	assert_int_equal(r.synced, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(read_ongoing_follows_nested_sections),
	    cmocka_unit_test(synchronize_with_no_reader_returns),
	    cmocka_unit_test(synchronize_waits_for_an_earlier_reader),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
