/* SPDX-License-Identifier: MIT */
/*
 * mapping-peer.c - the mapping layer's containment of memory a peer can
 * truncate (GM_MAP_PEER, guestmem/mapping.h): the registry of peer
 * mappings and the process's SIGBUS handler. mapping.c registers each peer
 * mapping after mapping it and unregisters it before unmapping it
 * (gm__peer_register()/gm__peer_unregister(), mapping-internal.h).
 *
 * Peer mappings (GM_MAP_PEER). Another process can shrink the file under
 * such a mapping; touching a page past the new end raises SIGBUS in
 * whichever thread touches it. The registry below lists the mappings that
 * can be shrunk (lock-free for the SIGBUS handler, a mutex for writers);
 * the handler, installed once, turns a fault inside a listed range into:
 * that page replaced by private anonymous zero memory (so the access
 * retries and completes), the mapping marked truncated, and the calling
 * thread's fault counter (gm__peer_faults, mapping-internal.h) bumped, which
 * the data path above compares around each access. A fault anywhere else
 * goes to the handler that was installed before ours (or kills the
 * process as if we had never been there). Each registration checks that
 * the handler is still in force and installs it again if not.
 *
 * Registry invariants:
 *   R1. A slot's range [start, end) is the usable range of a live mapping
 *       while its state is SLOT_LIVE; the fields are written only under
 *       peer_lock while the slot is SLOT_FREE.
 *   R2. The handler uses a slot only between incrementing its users and
 *       decrementing them, and only after seeing it SLOT_LIVE (with the
 *       address inside) once users was raised. gm__peer_unregister() sets
 *       SLOT_FREE, then waits for users to reach 0, and mapping.c unmaps
 *       only after it returns:
 *       so the handler never maps over a range that was unmapped (and
 *       perhaps reused by someone else). Both sides use seq_cst for the
 *       store-then-load pair (users/state), so one of them sees the other.
 *   R3. Chunks are never freed; a chunk's next pointer is set once.
 */
#include <guestmem/mapping.h>

#include "mapping-internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- the registry of peer mappings (invariants R1-R3) ---------------- */

enum { SLOT_FREE, SLOT_LIVE };

/* Slots per chunk: 64 peer mappings before the first allocation. */
#define PEER_CHUNK 64

struct gm__peer_slot {
	uintptr_t start, end; /* atomic (relaxed); R1 */
	uintptr_t page;	      /* atomic (relaxed): the mapping's page size */
	int prot;	      /* atomic: every protection the range had (gm_mapping_protect) */
	unsigned state;	      /* atomic: SLOT_FREE / SLOT_LIVE */
	unsigned users;	      /* atomic: handlers inside (R2) */
	unsigned *truncated;  /* atomic (relaxed): the mapping's truncated flag */
};

struct peer_chunk {
	struct gm__peer_slot slot[PEER_CHUNK];
	struct peer_chunk *next; /* atomic; set once (R3) */
};

static struct peer_chunk peer_first;
/* Serialises registering, unregistering and installing; the handler never takes it. */
static pthread_mutex_t peer_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * SIGBUS's action before ours. Each time ours is found replaced and
 * installed again, a new one is published (release, paired with the
 * handler's acquire); the older ones are kept, never freed, so a handler
 * still reading one is safe.
 */
struct prev_action {
	struct sigaction sa;
	struct prev_action *older;
};
static struct prev_action *peer_prev; /* atomic */

_Thread_local unsigned gm__peer_faults GM__PEER_TLS;

/* ---- the SIGBUS handler and the registry ------------------------------ */

/*
 * Private anonymous zero memory at @addr with @prot, through the system
 * call itself: the one thing the handler asks of the kernel, and safe in
 * a signal handler (no libc state, no sanitizer interceptor).
 */
static bool zero_fill_page(void *addr, size_t len, int prot)
{
	int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE;
	long r;

#ifdef SYS_mmap2
	r = syscall(SYS_mmap2, addr, len, prot, flags, -1, 0L);
#else
	r = syscall(SYS_mmap, addr, len, prot, flags, -1, 0L);
#endif
	return r != -1;
}

static bool slot_holds(const struct gm__peer_slot *s, uintptr_t a)
{
	return a >= __atomic_load_n(&s->start, __ATOMIC_RELAXED) &&
	       a < __atomic_load_n(&s->end, __ATOMIC_RELAXED);
}

/*
 * Turn the page of @a in @s into zero memory, mark the mapping truncated
 * and count the fault on this thread. Called with s->users raised and the
 * slot seen live holding @a (R2).
 */
static bool absorb_in(struct gm__peer_slot *s, uintptr_t a)
{
	uintptr_t page = __atomic_load_n(&s->page, __ATOMIC_RELAXED);

	if (!zero_fill_page((void *)(a & ~(page - 1)), page,
			    __atomic_load_n(&s->prot, __ATOMIC_RELAXED)))
		return false;
	__atomic_store_n(__atomic_load_n(&s->truncated, __ATOMIC_RELAXED), 1, __ATOMIC_RELAXED);
	/* Only this thread writes its counter; readers are this thread too. */
	__atomic_store_n(&gm__peer_faults, gm__peer_faults + 1, __ATOMIC_RELAXED);
	return true;
}

/* Absorb a fault at @a if a live peer mapping holds it (R2, R3). */
static bool absorb(uintptr_t a)
{
	struct peer_chunk *c;
	unsigned i;

	/* Acquire: pairs with the release that linked the chunk (R3). */
	for (c = &peer_first; c; c = __atomic_load_n(&c->next, __ATOMIC_ACQUIRE)) {
		for (i = 0; i < PEER_CHUNK; i++) {
			struct gm__peer_slot *s = &c->slot[i];
			bool done = false;

			if (__atomic_load_n(&s->state, __ATOMIC_RELAXED) != SLOT_LIVE ||
			    !slot_holds(s, a))
				continue;
			/*
			 * seq_cst increment then seq_cst load of state; the pair of
			 * peer_unregister()'s store of state and load of users (R2).
			 * The load also acquires the fields peer_register() wrote.
			 */
			__atomic_fetch_add(&s->users, 1, __ATOMIC_SEQ_CST);
			if (__atomic_load_n(&s->state, __ATOMIC_SEQ_CST) == SLOT_LIVE &&
			    slot_holds(s, a))
				done = absorb_in(s, a);
			__atomic_fetch_sub(&s->users, 1, __ATOMIC_RELEASE);
			if (done)
				return true;
		}
	}
	return false;
}

/*
 * Not ours: hand the signal to the action installed before ours. With no
 * handler to call, restore the default action and raise the signal again:
 * it is blocked while we run, so it is delivered (and kills) as soon as
 * the handler returns, for a fault and for a signal sent with kill() alike.
 */
static void peer_chain(int sig, siginfo_t *si, void *uc)
{
	const struct prev_action *p = __atomic_load_n(&peer_prev, __ATOMIC_ACQUIRE);
	struct sigaction dfl;

	if (p && (p->sa.sa_flags & SA_SIGINFO)) {
		p->sa.sa_sigaction(sig, si, uc);
		return;
	}
	if (p && p->sa.sa_handler != SIG_DFL && p->sa.sa_handler != SIG_IGN) {
		p->sa.sa_handler(sig);
		return;
	}
	if (p && p->sa.sa_handler == SIG_IGN && si->si_code <= 0)
		return; /* sent by a process, and ignored before we came */
	dfl.sa_handler = SIG_DFL;
	dfl.sa_flags = 0;
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	raise(sig);
}

/*
 * The process's SIGBUS handler once a peer mapping exists. BUS_ADRERR is
 * what an access past the end of a file raises (memory errors come as
 * BUS_MCEERR_* and are not ours to hide).
 */
static void peer_sigbus(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	if (!(si->si_code == BUS_ADRERR && absorb((uintptr_t)si->si_addr)))
		peer_chain(sig, si, uc);
	errno = saved;
}

/*
 * Make sure our handler is SIGBUS's action: install it the first time, and
 * again if someone replaced it since (a test harness that swaps handlers
 * around each test, a program that installed its own); what was there is
 * what we chain to. Returns 0, -ENOMEM or the errno of sigaction().
 * Called with peer_lock held.
 */
static int peer_install(void)
{
	struct sigaction cur, sa;
	struct prev_action *p;

	if (sigaction(SIGBUS, NULL, &cur) < 0)
		return -errno;
	/* sa_handler and sa_sigaction share their storage: compare either. */
	if (cur.sa_sigaction == peer_sigbus && (cur.sa_flags & SA_SIGINFO))
		return 0;
	if (cur.sa_sigaction != peer_sigbus) {
		/* Published before ours is installed: a SIGBUS meanwhile finds it. */
		p = malloc(sizeof(*p));
		if (!p)
			return -ENOMEM;
		p->sa = cur;
		p->older = peer_prev;
		__atomic_store_n(&peer_prev, p, __ATOMIC_RELEASE);
	}
	/* else: ours, restored without SA_SIGINFO (signal()); keep the chain. */
	sa.sa_sigaction = peer_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) < 0)
		return -errno;
	return 0;
}

/*
 * List [@host, @host + @len) of a mapping backed by pages of @page bytes,
 * with protection @prot, in the registry (mapping.c invariant 5): the
 * handler sets *@truncated when it absorbs a fault there. Installs the
 * handler if it is not in force. Returns 0 and *@out, -ENOMEM, or the errno
 * of sigaction().
 */
int gm__peer_register(void *host, size_t len, size_t page, int prot, unsigned *truncated,
		      struct gm__peer_slot **out)
{
	struct peer_chunk *c, *last = &peer_first;
	struct gm__peer_slot *s = NULL;
	unsigned i;
	int err;

	pthread_mutex_lock(&peer_lock);
	err = peer_install();
	if (err) {
		pthread_mutex_unlock(&peer_lock);
		return err;
	}
	for (c = &peer_first; c && !s; c = __atomic_load_n(&c->next, __ATOMIC_RELAXED)) {
		last = c;
		for (i = 0; i < PEER_CHUNK && !s; i++)
			if (__atomic_load_n(&c->slot[i].state, __ATOMIC_RELAXED) == SLOT_FREE)
				s = &c->slot[i];
	}
	if (!s) {
		c = calloc(1, sizeof(*c));
		if (!c) {
			pthread_mutex_unlock(&peer_lock);
			return -ENOMEM;
		}
		/* Release: the zeroed chunk before its link; pairs with absorb(). */
		__atomic_store_n(&last->next, c, __ATOMIC_RELEASE);
		s = &c->slot[0];
	}
	__atomic_store_n(&s->start, (uintptr_t)host, __ATOMIC_RELAXED);
	__atomic_store_n(&s->end, (uintptr_t)host + len, __ATOMIC_RELAXED);
	__atomic_store_n(&s->page, (uintptr_t)page, __ATOMIC_RELAXED);
	__atomic_store_n(&s->prot, prot, __ATOMIC_RELAXED);
	__atomic_store_n(&s->truncated, truncated, __ATOMIC_RELAXED);
	/* Release: the fields before the state (R1); pairs with absorb()'s loads. */
	__atomic_store_n(&s->state, SLOT_LIVE, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&peer_lock);
	*out = s;
	return 0;
}

/* Take @s out of the registry; no handler uses its range afterwards (R2). */
void gm__peer_unregister(struct gm__peer_slot *s)
{
	pthread_mutex_lock(&peer_lock);
	__atomic_store_n(&s->state, SLOT_FREE, __ATOMIC_SEQ_CST);
	/* A handler inside is one mmap() from leaving. */
	while (__atomic_load_n(&s->users, __ATOMIC_SEQ_CST) != 0)
		sched_yield();
	pthread_mutex_unlock(&peer_lock);
}

/* The range of @s may now also have @prot (gm_mapping_protect()). */
void gm__peer_add_prot(struct gm__peer_slot *s, int prot)
{
	__atomic_fetch_or(&s->prot, prot, __ATOMIC_RELAXED);
}
