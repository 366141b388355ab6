/* SPDX-License-Identifier: MIT */
/*
 * kvm.c - the KVM binding's life cycle and inspection: gm_kvm_new() reads
 * KVM's limits and registers the binding as a listener of the memory
 * space (which creates the slots of the current view), gm_kvm_free()
 * removes it and deletes every slot; the gm_kvm_slot*() calls describe
 * the slot table under the binding's lock.
 *
 * State, invariants and the lock rule: kvm-internal.h.
 */
#include "kvm-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/ioctl.h>

/* ---------------------------------------------------------------------- */
/* Life cycle                                                             */
/* ---------------------------------------------------------------------- */

int gm_kvm_new(int vm_fd, struct gm_space *space, struct gm_space *io, struct gm_kvm **out)
{
	struct gm_kvm *k;
	int ret;

	if (out == NULL || space == NULL || vm_fd < 0)
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return -ENOMEM;
	k->vm_fd = vm_fd;
	k->space = space;
	k->io = io;
	ret = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	if (ret <= 0) {
		ret = ret < 0 ? -errno : -ENOTSUP;
		goto err_free;
	}
	k->kvm_limit = k->limit = (uint32_t)ret;
	/* An error is not an answer: taken as "no", every later ROM would be refused. */
	ret = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM);
	if (ret < 0) {
		ret = -errno;
		goto err_free;
	}
	k->readonly_ok = ret > 0;
	k->id_used = calloc(k->kvm_limit, sizeof(bool));
	if (k->id_used == NULL) {
		ret = -ENOMEM;
		goto err_free;
	}
	ret = -pthread_mutex_init(&k->lock, NULL);
	if (ret)
		goto err_ids;
	/* Creates the slots of the current view through kvm_prepare(). */
	ret = gm_space_listener_add(space, &gm__kvm_listener_ops, k, &k->listener);
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
	(void)gm_space_listener_remove(k->space, k->listener);
	pthread_mutex_lock(&k->lock);
	gm__kvm_delete_all(k);
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

/* Describe @s into the caller's *@out, whose sz was checked (abi.h). */
static void describe(const struct gm_kvm *k, const struct kvm_slot *s, struct gm_kvm_slot *out)
{
	struct gm_kvm_slot info = {
	    .slot = s->id,
	    .flags = slot_flags(k, s),
	    .gpa = s->gpa,
	    .size = s->size,
	    .host = s->host,
	};

	(void)GM_ABI_COPY_OUT(out, &info);
}

int gm_kvm_slot(const struct gm_kvm *k, size_t index, struct gm_kvm_slot *out)
{
	int ret = -ENOENT;

	if (k == NULL || out == NULL || gm__abi_check_out(out))
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

	if (k == NULL || out == NULL || gm__abi_check_out(out))
		return -EINVAL;
	pthread_mutex_lock(lock_of(k));
	/* The candidate is the last slot starting at or below @gpa. */
	i = gm__kvm_slot_lower_bound(k, gpa);
	if (i < k->nslots && k->slots[i].gpa == gpa)
		i++;
	if (i > 0 && gpa - k->slots[i - 1].gpa < k->slots[i - 1].size) {
		describe(k, &k->slots[i - 1], out);
		ret = 0;
	}
	pthread_mutex_unlock(lock_of(k));
	return ret;
}
