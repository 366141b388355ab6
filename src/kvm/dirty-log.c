/* SPDX-License-Identifier: MIT */
/*
 * dirty-log.c - KVM's dirty log for the binding's slots: turning logging
 * on and off for every writable slot (invariant 3), and reading and
 * clearing KVM's log into the regions' gm_dirty bitmaps, at a sync and
 * before a logging slot is deleted (invariant 5).
 *
 * State, invariants and the lock rule: kvm-internal.h. Every helper here
 * runs with k->lock held; the gm_kvm_dirty_log_*() calls take it.
 */
#include "kvm-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* ---------------------------------------------------------------------- */
/* Reading KVM's log into the bitmaps                                     */
/* ---------------------------------------------------------------------- */

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
int gm__kvm_slot_sync(struct gm_kvm *k, const struct kvm_slot *s)
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

/* ---------------------------------------------------------------------- */
/* Starting, stopping and syncing the log                                 */
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
		ret = gm__kvm_slot_create(k, &k->slots[i]);
		if (ret)
			break;
	}
	if (ret == 0)
		return 0;
	k->logging = !k->logging;
	for (j = 0; j < i; j++)
		if (!(k->slots[j].region_flags & GM_REGION_READONLY))
			(void)gm__kvm_slot_create(k, &k->slots[j]);
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
		r = gm__kvm_slot_sync(k, &k->slots[i]);
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
	/*
	 * A slot whose log could not be read keeps it in KVM: logging stays
	 * on, so the pages it holds are not lost and a retry can stop.
	 */
	if (k->logging) {
		ret = sync_all(k);
		if (ret == 0) {
			k->logging = false;
			ret = reflag_all(k); /* on failure, logging is back on (invariant 3) */
		}
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
