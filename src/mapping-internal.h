/* SPDX-License-Identifier: MIT */
/*
 * mapping-internal.h - what the layers above need from mapping.c beyond
 * the public API: the calling thread's count of absorbed peer faults, read
 * around every non-inline access to guest memory. Hidden: not exported
 * from the shared library.
 *
 * The SIGBUS handler of mapping.c increments gm__peer_faults of the thread
 * whose access faulted inside a peer mapping (GM_MAP_PEER) and lets the
 * access complete on zero memory. A copy path reads the counter before and
 * after touching guest memory; a difference means some byte it moved came
 * from (or went to) memory the peer had truncated, and it fails with
 * -EFAULT. Reading the counter is one thread-local load and no fence
 * instruction, so the data path keeps its speed.
 *
 * Also the registry of peer mappings (mapping-peer.c) that mapping.c
 * fills, and the prefault engine (mapping-prefault.c), which the space
 * layer runs over all of a guest's RAM at once.
 */
#ifndef GUESTMEM_MAPPING_INTERNAL_H
#define GUESTMEM_MAPPING_INTERNAL_H

#include <guestmem/mapping.h>

#include <errno.h>

/*
 * initial-exec: a fixed offset from the thread pointer, so reading it is
 * one load and writing it from the signal handler allocates nothing
 * (a dynamic TLS block may be allocated on first use, which a signal
 * handler must not do).
 */
#define GM__PEER_TLS __attribute__((tls_model("initial-exec")))

/* Faults absorbed on this thread; written only by this thread's handler. */
extern _Thread_local unsigned gm__peer_faults GM__PEER_TLS;

/*
 * The calling thread's count now. The signal fences (compiler barriers, no
 * instruction) keep the compiler from moving guest accesses across the
 * read: the handler runs in this thread, between two of its instructions.
 */
static inline unsigned gm__peer_fault_count(void)
{
	unsigned n;

	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	n = __atomic_load_n(&gm__peer_faults, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return n;
}

/* -EFAULT if this thread absorbed a peer fault since it read @before, else @ret. */
static inline int gm__peer_check(unsigned before, int ret)
{
	return gm__peer_fault_count() != before ? -EFAULT : ret;
}

/* A peer mapping's slot in the registry of mapping-peer.c (opaque here). */
struct gm__peer_slot;

/*
 * List [@host, @host + @len) (pages of @page bytes, protection @prot) as
 * memory a peer may truncate: a fault there is absorbed and sets
 * *@truncated. Returns 0 and *@out, -ENOMEM or a sigaction() errno.
 */
int gm__peer_register(void *host, size_t len, size_t page, int prot, unsigned *truncated,
		      struct gm__peer_slot **out);

/* Take @s out of the registry; returns once no handler uses its range. */
void gm__peer_unregister(struct gm__peer_slot *s);

/* The range of @s may now also have protection @prot. */
void gm__peer_add_prot(struct gm__peer_slot *s, int prot);

/* One range for gm__prefault(): @len bytes at @host, a multiple of @page. */
struct gm__prefault_range {
	char *host;
	size_t len;
	size_t page; /* the backing's page size: one touch per page */
	bool write;  /* fault in writable (MADV_POPULATE_WRITE), else readable */
};

/*
 * Fault in every page of @ranges (@nranges may be 0) as gm_mapping_prefault()
 * describes, with @opts (NULL: defaults; a caller's sized struct, checked
 * here). The ranges must stay mapped until it returns.
 */
int gm__prefault(const struct gm__prefault_range *ranges, size_t nranges,
		 const struct gm_prefault_opts *opts);

#endif /* GUESTMEM_MAPPING_INTERNAL_H */
