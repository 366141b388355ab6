/* SPDX-License-Identifier: MIT */
/*
 * slots.c - the KVM binding's memory slots: the KVM calls that set and
 * delete a slot, the table of the slots the binding has set (sorted by
 * gpa, with the slot ids in use), and the space listener that applies each
 * commit of the memory space to KVM, with the undo log that takes a
 * vetoed or failed commit back.
 *
 * State, invariants 1-5 and the lock rule: kvm-internal.h. Everything
 * here runs with k->lock held; the listener callbacks take it.
 */
#include "kvm-internal.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* ---------------------------------------------------------------------- */
/* KVM calls and the slot table. Called with k->lock held.                */
/* ---------------------------------------------------------------------- */

static int kvm_set_slot(const struct gm_kvm *k, uint32_t id, uint32_t flags, gm_gpa_t gpa,
			uint64_t size, void *host)
{
	struct kvm_userspace_memory_region r;

	memset(&r, 0, sizeof(r));
	r.slot = id;
	r.flags = flags;
	r.guest_phys_addr = gpa;
	r.memory_size = size;
	r.userspace_addr = (uintptr_t)host;
	if (ioctl(k->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
		return -errno;
	return 0;
}

int gm__kvm_slot_create(const struct gm_kvm *k, const struct kvm_slot *s)
{
	return kvm_set_slot(k, s->id, slot_flags(k, s), s->gpa, s->size, s->host);
}

static int kvm_delete(const struct gm_kvm *k, uint32_t id)
{
	return kvm_set_slot(k, id, 0, 0, 0, NULL);
}

static void slot_put(struct kvm_slot *s)
{
	gm_mapping_put(s->mapping);
	gm_dirty_put(s->dirty);
	s->mapping = NULL;
	s->dirty = NULL;
}

/* Index of the first slot whose gpa is >= @gpa. */
size_t gm__kvm_slot_lower_bound(const struct gm_kvm *k, gm_gpa_t gpa)
{
	size_t lo = 0, hi = k->nslots;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (k->slots[mid].gpa < gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the slot starting at @gpa, or k->nslots. */
static size_t slot_index_at(const struct gm_kvm *k, gm_gpa_t gpa)
{
	size_t i = gm__kvm_slot_lower_bound(k, gpa);

	return i < k->nslots && k->slots[i].gpa == gpa ? i : k->nslots;
}

/* Make room for one more table entry, so that a later table_insert() cannot fail. */
static int table_reserve(struct gm_kvm *k)
{
	size_t cap = k->slots_cap ? 2 * k->slots_cap : 16;
	struct kvm_slot *n;

	if (k->nslots < k->slots_cap)
		return 0;
	n = realloc(k->slots, cap * sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	k->slots = n;
	k->slots_cap = cap;
	return 0;
}

/* Insert @s (its references move to the table). Room reserved by table_reserve(). */
static void table_insert(struct gm_kvm *k, const struct kvm_slot *s)
{
	size_t i = gm__kvm_slot_lower_bound(k, s->gpa);

	memmove(&k->slots[i + 1], &k->slots[i], (k->nslots - i) * sizeof(*s));
	k->slots[i] = *s;
	k->nslots++;
	k->id_used[s->id] = true;
}

/* Remove entry @i from the table (its references move to the caller). */
static void table_remove(struct gm_kvm *k, size_t i)
{
	uint32_t id = k->slots[i].id;

	memmove(&k->slots[i], &k->slots[i + 1], (k->nslots - i - 1) * sizeof(k->slots[0]));
	k->nslots--;
	k->id_used[id] = false;
	if (id < k->free_hint)
		k->free_hint = id;
}

/* The lowest free id below k->limit, or -ENOSPC. */
static int64_t id_alloc(struct gm_kvm *k)
{
	uint32_t id;

	for (id = k->free_hint; id < k->limit; id++)
		if (!k->id_used[id]) {
			k->free_hint = id + 1;
			return id;
		}
	return -ENOSPC;
}

/* Sync (if logging) and delete table entry @i; on success its references move to *@out. */
static int slot_delete(struct gm_kvm *k, size_t i, struct kvm_slot *out)
{
	struct kvm_slot s = k->slots[i];
	int ret;

	if (slot_flags(k, &s) & KVM_MEM_LOG_DIRTY_PAGES) {
		ret = gm__kvm_slot_sync(k, &s); /* (invariant 5) */
		if (ret)
			return ret;
	}
	ret = kvm_delete(k, s.id);
	if (ret)
		return ret;
	table_remove(k, i);
	*out = s;
	return 0;
}

/* Delete every slot and drop its references. Lock held. */
void gm__kvm_delete_all(struct gm_kvm *k)
{
	while (k->nslots > 0) {
		struct kvm_slot s = k->slots[k->nslots - 1];

		(void)kvm_delete(k, s.id);
		table_remove(k, k->nslots - 1);
		slot_put(&s);
	}
}

/*
 * Invariants 1 and 2 (and 4 when @settled: no commit in flight), checked
 * by assert() in debug builds after every change. Lock held.
 */
#ifndef NDEBUG
static bool kvm_invariants_ok(const struct gm_kvm *k, bool settled)
{
	size_t i, used = 0;
	uint32_t id;

	for (i = 0; i < k->nslots; i++) {
		const struct kvm_slot *s = &k->slots[i];

		if (s->id >= k->kvm_limit || !k->id_used[s->id] || s->mapping == NULL)
			return false;
		if (i > 0 && k->slots[i - 1].gpa + (k->slots[i - 1].size - 1) >= s->gpa)
			return false;
	}
	for (id = 0; id < k->kvm_limit; id++)
		used += k->id_used[id];
	return used == k->nslots && (!settled || k->nundo == 0);
}
#endif

/* ---------------------------------------------------------------------- */
/* Listener: prepare applies, rollback undoes, commit forgets the undo.   */
/* ---------------------------------------------------------------------- */

/* Make room for one more undo entry, so that recording what was done cannot fail. */
static int undo_reserve(struct gm_kvm *k)
{
	size_t cap = k->undo_cap ? 2 * k->undo_cap : 16;
	struct undo *n;

	if (k->nundo < k->undo_cap)
		return 0;
	n = realloc(k->undo, cap * sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	k->undo = n;
	k->undo_cap = cap;
	return 0;
}

static void undo_push(struct gm_kvm *k, enum undo_kind kind, const struct kvm_slot *s)
{
	k->undo[k->nundo].kind = kind;
	k->undo[k->nundo].slot = *s;
	k->nundo++;
}

/*
 * Undo everything in k->undo, last first, and empty it. KVM calls here
 * only put back what KVM accepted a moment ago, so they are not expected
 * to fail; one that does (the kernel short of memory for a moment) is
 * tried once more, as the alternative is KVM out of step with the space
 * (a region without a slot, or a slot without a region). If it fails
 * again there is no better state to go to, and the table keeps following
 * what KVM has (invariant 1).
 */
static void undo_all(struct gm_kvm *k)
{
	while (k->nundo > 0) {
		struct undo *u = &k->undo[--k->nundo];
		size_t i;

		if (u->kind == UNDO_CREATED) {
			i = slot_index_at(k, u->slot.gpa);
			if (i < k->nslots && (kvm_delete(k, k->slots[i].id) == 0 ||
					      kvm_delete(k, k->slots[i].id) == 0)) {
				struct kvm_slot s = k->slots[i];

				table_remove(k, i);
				slot_put(&s);
			}
		} else if (table_reserve(k) == 0 && (gm__kvm_slot_create(k, &u->slot) == 0 ||
						     gm__kvm_slot_create(k, &u->slot) == 0)) {
			/* Its id is free again: what was created after the delete is undone. */
			table_insert(k, &u->slot);
		} else {
			slot_put(&u->slot);
		}
	}
}

/* Forget the undo log after a commit: deleted slots' references go. */
static void undo_forget(struct gm_kvm *k)
{
	size_t i;

	for (i = 0; i < k->nundo; i++)
		if (k->undo[i].kind == UNDO_DELETED)
			slot_put(&k->undo[i].slot);
	k->nundo = 0;
}

static int apply_remove(struct gm_kvm *k, const struct gm_space_region *r)
{
	struct kvm_slot old;
	size_t i = slot_index_at(k, r->gpa);
	int ret;

	if (i == k->nslots)
		return 0; /* never had a slot (cannot happen with a consistent space) */
	ret = undo_reserve(k);
	if (ret)
		return ret;
	ret = slot_delete(k, i, &old);
	if (ret)
		return ret;
	undo_push(k, UNDO_DELETED, &old);
	return 0;
}

static int apply_add(struct gm_kvm *k, const struct gm_space_region *r)
{
	struct kvm_slot s;
	int64_t id;
	int ret;

	/* KVM wants page-aligned slots; the bitmap offset must be whole pages. */
	if (r->size == 0 || !gm_is_aligned(r->gpa | r->size | r->dirty_offset, GM_PAGE_SIZE) ||
	    !gm_is_aligned((uintptr_t)r->host, GM_PAGE_SIZE))
		return -ENOTSUP;
	if ((r->flags & GM_REGION_READONLY) && !k->readonly_ok)
		return -ENOTSUP;
	ret = undo_reserve(k);
	if (ret == 0)
		ret = table_reserve(k);
	if (ret)
		return ret;
	id = id_alloc(k);
	if (id < 0)
		return (int)id;
	memset(&s, 0, sizeof(s));
	s.id = (uint32_t)id;
	s.region_flags = r->flags;
	s.gpa = r->gpa;
	s.size = r->size;
	s.host = r->host;
	s.dirty_page = r->dirty_offset >> GM_PAGE_SHIFT;
	ret = gm__kvm_slot_create(k, &s);
	if (ret) {
		if (s.id < k->free_hint)
			k->free_hint = s.id;
		return ret;
	}
	s.mapping = gm_mapping_get(r->mapping);
	s.dirty = r->dirty != NULL ? gm_dirty_get(r->dirty) : NULL;
	table_insert(k, &s);
	undo_push(k, UNDO_CREATED, &s);
	return 0;
}

static int kvm_prepare(void *opaque, struct gm_space *space, const struct gm_space_change *changes,
		       size_t n)
{
	struct gm_kvm *k = opaque;
	size_t i;
	int ret = 0;

	(void)space;
	pthread_mutex_lock(&k->lock);
	for (i = 0; i < n && ret == 0; i++) {
		const struct gm_space_change *c = &changes[i];

		switch (c->kind) {
		case GM_CHANGE_REMOVE:
			ret = apply_remove(k, &c->region);
			break;
		case GM_CHANGE_FLAGS:
			/* KVM cannot flip KVM_MEM_READONLY in place: delete, create. */
			if ((c->old_flags ^ c->region.flags) & GM_REGION_READONLY) {
				ret = apply_remove(k, &c->region);
				if (ret == 0)
					ret = apply_add(k, &c->region);
			}
			break;
		case GM_CHANGE_ADD:
			ret = apply_add(k, &c->region);
			break;
		}
	}
	if (ret)
		undo_all(k);
	assert(kvm_invariants_ok(k, ret != 0));
	pthread_mutex_unlock(&k->lock);
	return ret;
}

static void kvm_rollback(void *opaque, struct gm_space *space,
			 const struct gm_space_change *changes, size_t n)
{
	struct gm_kvm *k = opaque;

	(void)space;
	(void)changes;
	(void)n;
	pthread_mutex_lock(&k->lock);
	undo_all(k);
	assert(kvm_invariants_ok(k, true));
	pthread_mutex_unlock(&k->lock);
}

static void kvm_commit(void *opaque, struct gm_space *space, const struct gm_space_change *changes,
		       size_t n)
{
	struct gm_kvm *k = opaque;

	(void)space;
	(void)changes;
	(void)n;
	pthread_mutex_lock(&k->lock);
	undo_forget(k);
	assert(kvm_invariants_ok(k, true));
	pthread_mutex_unlock(&k->lock);
}

const struct gm_space_listener_ops gm__kvm_listener_ops = {
    .sz = sizeof(struct gm_space_listener_ops),
    .prepare = kvm_prepare,
    .rollback = kvm_rollback,
    .commit = kvm_commit,
};
