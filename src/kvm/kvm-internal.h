/* SPDX-License-Identifier: MIT */
/*
 * kvm-internal.h - what the files of the KVM binding share: the state of a
 * binding (struct gm_kvm, its slot table and undo log), its invariants and
 * lock rule, and the hidden helpers one file provides to another. Not
 * exported from the shared library.
 *
 * The binding keeps a VM's memory slots equal to a gm_space's view, merges
 * KVM's dirty log into the regions' bitmaps, and completes MMIO and
 * port-I/O exits through gm_space_read()/gm_space_write() (see kvm.h).
 *
 *   slots.c      KVM's slot calls, the slot table, and the space listener
 *                that applies a commit's changes to KVM
 *   kvm.c        life cycle (gm_kvm_new/free) and inspection of the slots
 *   dirty-log.c  KVM's dirty log: start, stop, sync into the bitmaps
 *   exits.c      MMIO and port-I/O exits completed through the spaces
 *   stub.c       the whole binding on a host without KVM (meson.build
 *                builds it instead of the four files above)
 *
 * The binding is a listener of the memory space. Its prepare callback
 * applies a commit's changes to KVM at once (REMOVE: delete the slot;
 * FLAGS that flip read-only: delete and re-create; ADD: create), writing an
 * undo log as it goes; rollback (a later listener vetoed) or a failure in
 * prepare itself replays the undo log backwards; commit drops the
 * references the deleted slots held. KVM cannot change several slots
 * atomically, so between prepare and the publication of the new view the
 * guest may already see the new layout: a vCPU touching a region being
 * removed then gets an MMIO exit, which gm_space_read()/gm_space_write() answer from the old view
 * (still current) or refuses.
 *
 * Invariants:
 *  1. k->slots[0 .. k->nslots) are exactly the slots set in KVM by the
 *     binding, sorted by gpa, non-overlapping; each holds a reference on
 *     its mapping and, if not NULL, on its dirty bitmap, so KVM never
 *     points at unmapped memory.
 *  2. k->id_used[i] is true iff slot id i is set in KVM by the binding
 *     (it is in k->slots); every id in use is below k->kvm_limit.
 *  3. A slot's KVM flags are KVM_MEM_READONLY iff its region is
 *     GM_REGION_READONLY, and KVM_MEM_LOG_DIRTY_PAGES iff k->logging and
 *     the slot is writable (slot_flags()).
 *  4. Between a successful prepare and the matching commit or rollback,
 *     k->undo[0 .. k->nundo) lists what prepare did, in order; each DELETED
 *     entry still owns the references of the slot it deleted. Outside that
 *     window k->nundo is 0.
 *  5. Before a logging slot is deleted its log is merged into its bitmap
 *     (gm__kvm_slot_sync()), so a page the guest dirtied is never lost to a
 *     layout change.
 * kvm_invariants_ok() (slots.c) checks 1, 2 and 4 in debug builds.
 * All of k's mutable state is guarded by k->lock. Lock order: the space's
 * lock (held while listener callbacks run) before k->lock.
 */
#ifndef GUESTMEM_KVM_INTERNAL_H
#define GUESTMEM_KVM_INTERNAL_H

#include "../abi-internal.h"

#include <guestmem/kvm.h>
#include <guestmem/space.h>

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm_slot {
	uint32_t id;
	unsigned region_flags; /* GM_REGION_* */
	gm_gpa_t gpa;
	uint64_t size;
	void *host;
	struct gm_mapping *mapping; /* reference */
	struct gm_dirty *dirty;	    /* reference, or NULL (ROM) */
	uint64_t dirty_page;	    /* the slot's first page in @dirty */
};

enum undo_kind {
	UNDO_CREATED, /* @slot.id was created: delete it */
	UNDO_DELETED, /* @slot was deleted: create it again (owns its references) */
};

struct undo {
	enum undo_kind kind;
	struct kvm_slot slot;
};

struct gm_kvm {
	int vm_fd;
	struct gm_space *space;
	struct gm_space *io;
	struct gm_space_listener *listener;
	pthread_mutex_t lock;
	uint32_t kvm_limit; /* KVM_CAP_NR_MEMSLOTS */
	uint32_t limit;	    /* ids below this may be used */
	uint32_t free_hint; /* no id below this is free */
	bool readonly_ok;   /* KVM_CAP_READONLY_MEM */
	bool logging;
	bool *id_used;
	struct kvm_slot *slots;
	size_t nslots, slots_cap;
	struct undo *undo;
	size_t nundo, undo_cap;
	uint64_t *logbuf; /* scratch for KVM_GET_DIRTY_LOG: two halves of logbuf_words */
	size_t logbuf_words;
};

/* The KVM flags slot @s has (invariant 3). Lock held. */
static inline uint32_t slot_flags(const struct gm_kvm *k, const struct kvm_slot *s)
{
	/*
	 * Read-only slots are not logged: the guest cannot write them, and the
	 * log would cost a bitmap and an ioctl per sync for nothing.
	 */
	if (s->region_flags & GM_REGION_READONLY)
		return KVM_MEM_READONLY;
	return k->logging ? KVM_MEM_LOG_DIRTY_PAGES : 0;
}

/* The lock is state, not part of what "const" promises the caller. */
static inline pthread_mutex_t *lock_of(const struct gm_kvm *k)
{
	return (pthread_mutex_t *)&k->lock;
}

/* ---- slots.c ---- */

/* The listener gm_kvm_new() adds to the memory space. */
extern const struct gm_space_listener_ops gm__kvm_listener_ops;

/* Set slot @s in KVM with the flags it should have now (invariant 3). Lock held. */
int gm__kvm_slot_create(const struct gm_kvm *k, const struct kvm_slot *s);

/* Index of the first slot whose gpa is >= @gpa. Lock held. */
size_t gm__kvm_slot_lower_bound(const struct gm_kvm *k, gm_gpa_t gpa);

/* Delete every slot and drop its references. Lock held. */
void gm__kvm_delete_all(struct gm_kvm *k);

/* ---- dirty-log.c ---- */

/*
 * Read and clear KVM's log of logging slot @s and OR it into the slot's
 * bitmap. Returns 0 or a negative errno. Lock held.
 */
int gm__kvm_slot_sync(struct gm_kvm *k, const struct kvm_slot *s);

#endif /* GUESTMEM_KVM_INTERNAL_H */
