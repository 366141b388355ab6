/* SPDX-License-Identifier: MIT */
/*
 * rcu-internal.h - what the library's own ordering code needs from the
 * rcu layer: whether this is a ThreadSanitizer build (the one place that
 * decides it), and a full memory fence TSan understands.
 *
 * TSan models no fences (gcc refuses to build __atomic_thread_fence under
 * -fsanitize=thread), so under TSan a seq_cst read-modify-write on a
 * private word stands in: a full barrier on every host we build for, and
 * an ordering TSan does see.
 */
#ifndef GUESTMEM_RCU_INTERNAL_H
#define GUESTMEM_RCU_INTERNAL_H

#if defined(__SANITIZE_THREAD__)
#define GM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GM_TSAN 1
#endif
#endif

static inline void gm__full_fence(void)
{
#ifdef GM_TSAN
	static unsigned long order_word;

	__atomic_fetch_add(&order_word, 0, __ATOMIC_SEQ_CST);
#else
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

#endif
