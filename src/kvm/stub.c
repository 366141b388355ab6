/* SPDX-License-Identifier: MIT */
/*
 * stub.c - the KVM binding on a host without KVM (see kvm.h and
 * meson.build: built instead of the other files of src/kvm/ for hosts
 * other than x86, e.g. 32-bit ARM, where Linux has no KVM host support
 * since 5.7).
 *
 * gm_kvm_new() fails with -ENOSYS, so no struct gm_kvm ever exists; the
 * other functions can only be given a NULL binding and answer as kvm.h
 * says for one (-EINVAL, 0, false). The library exports the same symbols
 * on every host, so a VMM built for several hosts links everywhere and
 * learns at run time that KVM is out.
 *
 * No state, so no invariants.
 */
#include <guestmem/kvm.h>

#include <errno.h>

int gm_kvm_new(int vm_fd, struct gm_space *space, struct gm_space *io, struct gm_kvm **out)
{
	(void)io;
	if (out == NULL || space == NULL || vm_fd < 0)
		return -EINVAL;
	return -ENOSYS;
}

void gm_kvm_free(struct gm_kvm *k)
{
	(void)k;
}

uint32_t gm_kvm_slot_limit(const struct gm_kvm *k)
{
	(void)k;
	return 0;
}

int gm_kvm_set_slot_limit(struct gm_kvm *k, uint32_t limit)
{
	(void)k;
	(void)limit;
	return -EINVAL;
}

size_t gm_kvm_slot_count(const struct gm_kvm *k)
{
	(void)k;
	return 0;
}

int gm_kvm_slot(const struct gm_kvm *k, size_t index, struct gm_kvm_slot *out)
{
	(void)k;
	(void)index;
	(void)out;
	return -EINVAL;
}

int gm_kvm_slot_find(const struct gm_kvm *k, gm_gpa_t gpa, struct gm_kvm_slot *out)
{
	(void)k;
	(void)gpa;
	(void)out;
	return -EINVAL;
}

int gm_kvm_dirty_log_start(struct gm_kvm *k)
{
	(void)k;
	return -EINVAL;
}

int gm_kvm_dirty_log_stop(struct gm_kvm *k)
{
	(void)k;
	return -EINVAL;
}

bool gm_kvm_dirty_log_active(const struct gm_kvm *k)
{
	(void)k;
	return false;
}

int gm_kvm_dirty_log_sync(struct gm_kvm *k)
{
	(void)k;
	return -EINVAL;
}

int gm_kvm_handle_mmio(struct gm_kvm *k, struct kvm_run *run)
{
	(void)k;
	(void)run;
	return -EINVAL;
}

int gm_kvm_handle_io(struct gm_kvm *k, struct kvm_run *run, size_t run_size)
{
	(void)k;
	(void)run;
	(void)run_size;
	return -EINVAL;
}

int gm_kvm_handle_exit(struct gm_kvm *k, struct kvm_run *run, size_t run_size)
{
	(void)k;
	(void)run;
	(void)run_size;
	return -EINVAL;
}
