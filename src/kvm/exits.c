/* SPDX-License-Identifier: MIT */
/*
 * exits.c - MMIO and port-I/O exits completed through the spaces: the
 * access a vCPU exited for is performed by gm_space_read()/gm_space_write()
 * on the memory or port space (a device, RAM or ROM) and its result written back into
 * struct kvm_run for the next KVM_RUN.
 *
 * Stateless: reads only k->space and k->io, which never change after
 * gm_kvm_new(), so no lock is taken. Every field of struct kvm_run is the
 * guest's (and the run page is shared with KVM): each is read once.
 */
#include "kvm-internal.h"

#include <errno.h>
#include <string.h>

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
		return gm_space_write(k->space, gpa, data, len);
	}
	ret = gm_space_read(k->space, gpa, data, len);
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
