/*
 * kvm.c - the KVM binding: keeps a VM's memory slots equal to a gm_space's
 * view, merges KVM's dirty log into the regions' bitmaps, and completes
 * MMIO and port-I/O exits through the space's dispatch (see kvm.h).
 *
 * The binding is a listener of the memory space. Its prepare callback
 * applies a commit's changes to KVM at once (REMOVE: delete the slot;
 * FLAGS that flip read-only: delete and re-create; ADD: create), writing an
 * undo log as it goes; rollback (a later listener vetoed) or a failure in
 * prepare itself replays the undo log backwards; commit drops the
 * references the deleted slots held. KVM cannot change several slots
 * atomically, so between prepare and the publication of the new view the
 * guest may already see the new layout: a vCPU touching a region being
 * removed then gets an MMIO exit, which dispatch answers from the old view
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
 *     (slot_sync()), so a page the guest dirtied is never lost to a layout
 *     change.
 * kvm_invariants_ok() checks 1, 2 and 4 in debug builds.
 * All of k's mutable state is guarded by k->lock. Lock order: the space's
 * lock (held while listener callbacks run) before k->lock.
 */
#include <guestmem/kvm.h>
#include <guestmem/space.h>

#include <assert.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

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
	struct gm_space *mem;
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

/* ---------------------------------------------------------------------- */
/* KVM calls and the slot table. Called with k->lock held.                */
/* ---------------------------------------------------------------------- */

static uint32_t slot_flags(const struct gm_kvm *k, const struct kvm_slot *s)
{
	/*
	 * Read-only slots are not logged: the guest cannot write them, and the
	 * log would cost a bitmap and an ioctl per sync for nothing.
	 */
	if (s->region_flags & GM_REGION_READONLY)
		return KVM_MEM_READONLY;
	return k->logging ? KVM_MEM_LOG_DIRTY_PAGES : 0;
}

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

static int kvm_create(const struct gm_kvm *k, const struct kvm_slot *s)
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
static size_t slot_lower_bound(const struct gm_kvm *k, gm_gpa_t gpa)
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
	size_t i = slot_lower_bound(k, gpa);

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
	size_t i = slot_lower_bound(k, s->gpa);

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

/* Make sure k->logbuf holds two buffers of @nwords words each. */
static int logbuf_reserve(struct gm_kvm *k, size_t nwords)
{
	uint64_t *n;

	if (nwords <= k->logbuf_words)
		return 0;
	if (nwords > SIZE_MAX / 2 / sizeof(uint64_t))
		return -EOVERFLOW;
	n = realloc(k->logbuf, 2 * nwords * sizeof(uint64_t));
	if (n == NULL)
		return -ENOMEM;
	k->logbuf = n;
	k->logbuf_words = nwords;
	return 0;
}

/*
 * Read and clear KVM's log of logging slot @s, and OR it into the slot's
 * bitmap at the slot's page offset. KVM's log has bit i of word w for the
 * slot's page 64 * w + i; gm_dirty_merge() wants words aligned to 64 pages
 * of the bitmap, so a slot starting mid-word is shifted into place.
 */
static int slot_sync(struct gm_kvm *k, const struct kvm_slot *s)
{
	struct kvm_dirty_log log;
	uint64_t npages = s->size >> GM_PAGE_SHIFT, *bits, *shifted;
	unsigned sh;
	size_t nwords, w;
	int ret;

	/* +1: room for the word a shift spills into. */
	if (gm_u64_to_size((npages + 63) / 64 + 1, &nwords))
		return -EOVERFLOW;
	ret = logbuf_reserve(k, nwords);
	if (ret)
		return ret;
	nwords--;
	bits = k->logbuf;
	shifted = k->logbuf + k->logbuf_words;
	memset(bits, 0, nwords * sizeof(uint64_t));
	memset(&log, 0, sizeof(log));
	log.slot = s->id;
	log.dirty_bitmap = bits;
	if (ioctl(k->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
		return -errno;
	if (s->dirty == NULL)
		return 0;
	/* Bits past the slot's end would be another slot's pages of the same bitmap. */
	if (npages % 64)
		bits[nwords - 1] &= ((uint64_t)1 << (npages % 64)) - 1;
	sh = (unsigned)(s->dirty_page % 64);
	if (sh == 0)
		return gm_dirty_merge(s->dirty, s->dirty_page, bits, nwords);
	shifted[0] = bits[0] << sh;
	for (w = 1; w < nwords; w++)
		shifted[w] = bits[w] << sh | bits[w - 1] >> (64 - sh);
	shifted[nwords] = bits[nwords - 1] >> (64 - sh);
	return gm_dirty_merge(s->dirty, s->dirty_page - sh, shifted, nwords + 1);
}

/* Sync (if logging) and delete table entry @i; on success its references move to *@out. */
static int slot_delete(struct gm_kvm *k, size_t i, struct kvm_slot *out)
{
	struct kvm_slot s = k->slots[i];
	int ret;

	if (slot_flags(k, &s) & KVM_MEM_LOG_DIRTY_PAGES) {
		ret = slot_sync(k, &s); /* (invariant 5) */
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
 * to fail; if one does there is no better state to go to, and the table
 * keeps following what KVM has (invariant 1).
 */
static void undo_all(struct gm_kvm *k)
{
	while (k->nundo > 0) {
		struct undo *u = &k->undo[--k->nundo];
		size_t i;

		if (u->kind == UNDO_CREATED) {
			i = slot_index_at(k, u->slot.gpa);
			if (i < k->nslots && kvm_delete(k, k->slots[i].id) == 0) {
				struct kvm_slot s = k->slots[i];

				table_remove(k, i);
				slot_put(&s);
			}
		} else if (table_reserve(k) == 0 && kvm_create(k, &u->slot) == 0) {
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
	ret = kvm_create(k, &s);
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

static const struct gm_space_listener_ops kvm_listener_ops = {
    .prepare = kvm_prepare,
    .rollback = kvm_rollback,
    .commit = kvm_commit,
};

/* ---------------------------------------------------------------------- */
/* Life cycle                                                             */
/* ---------------------------------------------------------------------- */

/* Delete every slot and drop its references. Called with k->lock held. */
static void delete_all(struct gm_kvm *k)
{
	while (k->nslots > 0) {
		struct kvm_slot s = k->slots[k->nslots - 1];

		(void)kvm_delete(k, s.id);
		table_remove(k, k->nslots - 1);
		slot_put(&s);
	}
}

int gm_kvm_new(int vm_fd, struct gm_space *mem, struct gm_space *io, struct gm_kvm **out)
{
	struct gm_kvm *k;
	int ret;

	if (out == NULL || mem == NULL || vm_fd < 0)
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return -ENOMEM;
	k->vm_fd = vm_fd;
	k->mem = mem;
	k->io = io;
	ret = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	if (ret <= 0) {
		ret = ret < 0 ? -errno : -ENOTSUP;
		goto err_free;
	}
	k->kvm_limit = k->limit = (uint32_t)ret;
	k->readonly_ok = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) > 0;
	k->id_used = calloc(k->kvm_limit, sizeof(bool));
	if (k->id_used == NULL) {
		ret = -ENOMEM;
		goto err_free;
	}
	ret = -pthread_mutex_init(&k->lock, NULL);
	if (ret)
		goto err_ids;
	/* Creates the slots of the current view through kvm_prepare(). */
	ret = gm_space_listener_add(mem, &kvm_listener_ops, k, &k->listener);
	if (ret)
		goto err_lock;
	*out = k;
	return 0;

err_lock:
	/* The failed prepare undid its slots; what it allocated on the way stays. */
	free(k->logbuf);
	free(k->undo);
	free(k->slots);
	pthread_mutex_destroy(&k->lock);
err_ids:
	free(k->id_used);
err_free:
	free(k);
	return ret;
}

void gm_kvm_free(struct gm_kvm *k)
{
	if (k == NULL)
		return;
	(void)gm_space_listener_remove(k->mem, k->listener);
	pthread_mutex_lock(&k->lock);
	delete_all(k);
	pthread_mutex_unlock(&k->lock);
	pthread_mutex_destroy(&k->lock);
	free(k->logbuf);
	free(k->undo);
	free(k->slots);
	free(k->id_used);
	free(k);
}

/* ---------------------------------------------------------------------- */
/* Inspection                                                             */
/* ---------------------------------------------------------------------- */

/* The lock is state, not part of what "const" promises the caller. */
static pthread_mutex_t *lock_of(const struct gm_kvm *k)
{
	return (pthread_mutex_t *)&k->lock;
}

uint32_t gm_kvm_slot_limit(const struct gm_kvm *k)
{
	uint32_t limit;

	if (k == NULL)
		return 0;
	pthread_mutex_lock(lock_of(k));
	limit = k->limit;
	pthread_mutex_unlock(lock_of(k));
	return limit;
}

int gm_kvm_set_slot_limit(struct gm_kvm *k, uint32_t limit)
{
	uint32_t id;
	int ret = 0;

	if (k == NULL || limit == 0 || limit > k->kvm_limit)
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	for (id = limit; id < k->limit && ret == 0; id++)
		if (k->id_used[id])
			ret = -EBUSY;
	if (ret == 0)
		k->limit = limit;
	pthread_mutex_unlock(&k->lock);
	return ret;
}

size_t gm_kvm_slot_count(const struct gm_kvm *k)
{
	size_t n;

	if (k == NULL)
		return 0;
	pthread_mutex_lock(lock_of(k));
	n = k->nslots;
	pthread_mutex_unlock(lock_of(k));
	return n;
}

static void describe(const struct gm_kvm *k, const struct kvm_slot *s, struct gm_kvm_slot *out)
{
	out->slot = s->id;
	out->flags = slot_flags(k, s);
	out->gpa = s->gpa;
	out->size = s->size;
	out->host = s->host;
}

int gm_kvm_slot(const struct gm_kvm *k, size_t index, struct gm_kvm_slot *out)
{
	int ret = -ENOENT;

	if (k == NULL || out == NULL)
		return -EINVAL;
	pthread_mutex_lock(lock_of(k));
	if (index < k->nslots) {
		describe(k, &k->slots[index], out);
		ret = 0;
	}
	pthread_mutex_unlock(lock_of(k));
	return ret;
}

int gm_kvm_slot_find(const struct gm_kvm *k, gm_gpa_t gpa, struct gm_kvm_slot *out)
{
	int ret = -ENOENT;
	size_t i;

	if (k == NULL || out == NULL)
		return -EINVAL;
	pthread_mutex_lock(lock_of(k));
	/* The candidate is the last slot starting at or below @gpa. */
	i = slot_lower_bound(k, gpa);
	if (i < k->nslots && k->slots[i].gpa == gpa)
		i++;
	if (i > 0 && gpa - k->slots[i - 1].gpa < k->slots[i - 1].size) {
		describe(k, &k->slots[i - 1], out);
		ret = 0;
	}
	pthread_mutex_unlock(lock_of(k));
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Dirty log                                                              */
/* ---------------------------------------------------------------------- */

/*
 * Give every writable slot the flags k->logging asks for (invariant 3).
 * On failure put back the slots already changed, flip k->logging back and
 * return KVM's error. Lock held.
 */
static int reflag_all(struct gm_kvm *k)
{
	size_t i, j;
	int ret = 0;

	for (i = 0; i < k->nslots; i++) {
		if (k->slots[i].region_flags & GM_REGION_READONLY)
			continue;
		ret = kvm_create(k, &k->slots[i]);
		if (ret)
			break;
	}
	if (ret == 0)
		return 0;
	k->logging = !k->logging;
	for (j = 0; j < i; j++)
		if (!(k->slots[j].region_flags & GM_REGION_READONLY))
			(void)kvm_create(k, &k->slots[j]);
	return ret;
}

int gm_kvm_dirty_log_start(struct gm_kvm *k)
{
	int ret = 0;

	if (k == NULL)
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	if (!k->logging) {
		k->logging = true;
		ret = reflag_all(k);
	}
	pthread_mutex_unlock(&k->lock);
	return ret;
}

static int sync_all(struct gm_kvm *k)
{
	size_t i;
	int ret = 0, r;

	for (i = 0; i < k->nslots; i++) {
		if (!(slot_flags(k, &k->slots[i]) & KVM_MEM_LOG_DIRTY_PAGES))
			continue;
		r = slot_sync(k, &k->slots[i]);
		if (r && ret == 0)
			ret = r;
	}
	return ret;
}

int gm_kvm_dirty_log_stop(struct gm_kvm *k)
{
	int ret = 0;

	if (k == NULL)
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	if (k->logging) {
		int r;

		ret = sync_all(k);
		k->logging = false;
		r = reflag_all(k); /* on failure, logging is back on (invariant 3) */
		if (r)
			ret = r;
	}
	pthread_mutex_unlock(&k->lock);
	return ret;
}

bool gm_kvm_dirty_log_active(const struct gm_kvm *k)
{
	bool on;

	if (k == NULL)
		return false;
	pthread_mutex_lock(lock_of(k));
	on = k->logging;
	pthread_mutex_unlock(lock_of(k));
	return on;
}

int gm_kvm_dirty_log_sync(struct gm_kvm *k)
{
	int ret;

	if (k == NULL)
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	ret = sync_all(k);
	pthread_mutex_unlock(&k->lock);
	return ret;
}

/* ---------------------------------------------------------------------- */
/* Exits                                                                  */
/* ---------------------------------------------------------------------- */

int gm_kvm_handle_mmio(struct gm_kvm *k, struct kvm_run *run)
{
	uint8_t data[8];
	gm_gpa_t gpa;
	uint32_t len;
	bool is_write;
	int ret;

	if (k == NULL || run == NULL || run->exit_reason != KVM_EXIT_MMIO)
		return -EINVAL;
	/* Read each field once: the values are the guest's (invariant: no double fetch). */
	gpa = run->mmio.phys_addr;
	len = run->mmio.len;
	is_write = run->mmio.is_write != 0;
	if (len == 0 || len > sizeof(data))
		return -EINVAL;
	if (is_write) {
		memcpy(data, run->mmio.data, len);
		return gm_space_write(k->mem, gpa, data, len);
	}
	ret = gm_space_read(k->mem, gpa, data, len);
	if (ret)
		memset(data, 0xff, len);
	memcpy(run->mmio.data, data, len);
	return ret;
}

int gm_kvm_handle_io(struct gm_kvm *k, struct kvm_run *run, size_t run_size)
{
	uint64_t offset, total, end;
	uint32_t count, i;
	uint16_t port;
	uint8_t dir, size;
	unsigned char *data;
	int ret = 0, r;

	if (k == NULL || run == NULL || run->exit_reason != KVM_EXIT_IO)
		return -EINVAL;
	dir = run->io.direction;
	size = run->io.size;
	port = run->io.port;
	count = run->io.count;
	offset = run->io.data_offset;
	if ((dir != KVM_EXIT_IO_IN && dir != KVM_EXIT_IO_OUT) || count == 0 ||
	    (size != 1 && size != 2 && size != 4))
		return -EINVAL;
	if (k->io == NULL)
		return -ENODEV;
	/* size * count cannot overflow 64 bits (8-bit times 32-bit); the end can. */
	total = (uint64_t)size * count;
	if (offset < sizeof(struct kvm_run) || gm_add_overflow_u64(offset, total, &end) ||
	    end > run_size)
		return -ERANGE;
	data = (unsigned char *)run + (size_t)offset;
	for (i = 0; i < count; i++) {
		unsigned char *elem = data + (size_t)i * size;

		if (dir == KVM_EXIT_IO_OUT) {
			uint8_t buf[4];

			memcpy(buf, elem, size);
			r = gm_space_write(k->io, port, buf, size);
		} else {
			r = gm_space_read(k->io, port, elem, size);
			if (r)
				memset(elem, 0xff, size);
		}
		if (r && ret == 0)
			ret = r;
	}
	return ret;
}

int gm_kvm_handle_exit(struct gm_kvm *k, struct kvm_run *run, size_t run_size)
{
	if (k == NULL || run == NULL)
		return -EINVAL;
	switch (run->exit_reason) {
	case KVM_EXIT_MMIO:
		return gm_kvm_handle_mmio(k, run);
	case KVM_EXIT_IO:
		return gm_kvm_handle_io(k, run, run_size);
	default:
		return -ENOTSUP;
	}
}
