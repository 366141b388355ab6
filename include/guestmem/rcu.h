/* SPDX-License-Identifier: MIT */
/*
 * guestmem/rcu.h - the read side and grace periods of read-copy-update.
 *
 * Every layer that publishes an object which readers use without a lock
 * (the views of a gm_space, a vhost-user memory table) publishes it with
 * RCU, and this layer is its one door. Underneath is liburcu's "memb"
 * flavour (urcu/urcu-memb.h: membarrier(2) on the update side, no fence on
 * the read side); nothing else in guestmem names liburcu, so the flavour
 * can change here alone.
 *
 * Rules for a reader thread, as liburcu states them for its own flavours:
 *   1. Register before the first read section, with
 *      gm_rcu_register_thread(), and unregister before the thread exits.
 *      Registering twice, or unregistering inside a read section, is
 *      undefined.
 *   2. gm_rcu_read_lock() / gm_rcu_read_unlock() bracket a read section.
 *      Sections nest, take no lock and cost no atomic operation. An object
 *      loaded from an RCU-published pointer inside a section stays valid
 *      until the outermost unlock.
 *   3. A read section must not block for long: every grace period waits
 *      for the sections that began before it. Never wait for a grace
 *      period (gm_rcu_synchronize(), or a call documented to wait for one,
 *      such as gm_space_commit()) inside a read section: it would wait
 *      for itself. gm_rcu_read_ongoing() tells whether that is the case.
 *   4. Use these wrappers, not liburcu's calls directly: under
 *      ThreadSanitizer they add what tells TSan that a grace period
 *      orders a reader's accesses before the free that follows it.
 *
 * Threads: every function may be called from any thread, within the rules
 * above.
 */
#ifndef GUESTMEM_RCU_H
#define GUESTMEM_RCU_H

#include <guestmem/addr.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Register / unregister the calling thread as an RCU reader (rule 1). */
GM_API void gm_rcu_register_thread(void);
GM_API void gm_rcu_unregister_thread(void);

/*
 * Enter / leave a read section (rule 2). The calling thread must be
 * registered.
 */
GM_API void gm_rcu_read_lock(void);
GM_API void gm_rcu_read_unlock(void);

/*
 * True if the calling thread is inside a read section. A registered
 * thread only.
 */
GM_API bool gm_rcu_read_ongoing(void);

/*
 * Wait for a grace period: every read section that began before the call
 * has ended when it returns, so an object unpublished before the call may
 * be freed after it. Must not be called inside a read section (rule 3).
 * The calling thread need not be registered. Blocks.
 */
GM_API void gm_rcu_synchronize(void);

#ifdef __cplusplus
}
#endif

#endif
