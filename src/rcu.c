/* SPDX-License-Identifier: MIT */
/*
 * rcu.c - the rcu layer: guestmem's only user of liburcu (rcu.h).
 *
 * The function-call read side of the memb flavour: nothing of liburcu's
 * LGPL inline code is compiled into our objects.
 */
#include <guestmem/rcu.h>

#include <urcu/urcu-memb.h>

#include "rcu-internal.h"

#ifdef GM_TSAN
#include <sanitizer/tsan_interface.h>
/*
 * ThreadSanitizer cannot see what a grace period orders: liburcu waits for
 * readers with membarrier() and loads TSan does not instrument. So every
 * read-side unlock releases this clock, and gm_rcu_synchronize() acquires
 * it after the grace period: a reader's accesses then happen before
 * whatever the updater frees next, in TSan's model as in reality.
 */
static char tsan_clock;
#define TSAN_RELEASE() __tsan_release(&tsan_clock)
#define TSAN_ACQUIRE() __tsan_acquire(&tsan_clock)
#else
#define TSAN_RELEASE() ((void)0)
#define TSAN_ACQUIRE() ((void)0)
#endif

void gm_rcu_register_thread(void)
{
	urcu_memb_register_thread();
}

void gm_rcu_unregister_thread(void)
{
	urcu_memb_unregister_thread();
}

void gm_rcu_read_lock(void)
{
	urcu_memb_read_lock();
}

void gm_rcu_read_unlock(void)
{
	TSAN_RELEASE();
	urcu_memb_read_unlock();
}

bool gm_rcu_read_ongoing(void)
{
	return urcu_memb_read_ongoing() != 0;
}

void gm_rcu_synchronize(void)
{
	urcu_memb_synchronize_rcu();
	TSAN_ACQUIRE();
}
