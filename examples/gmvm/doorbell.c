/* SPDX-License-Identifier: MIT */
/*
 * doorbell.c - the MMIO device: a doorbell that checksums a guest buffer.
 *
 * Registers (64-bit, at GMVM_MMIO_GPA, see gmvm-abi.h): the guest writes a
 * buffer's guest-physical address and length, then writes the doorbell;
 * the device reads the buffer through gm_read() - the same data path any
 * device uses - and leaves the checksum in RESULT and 0 or a positive
 * errno in STATUS. The guest computed the same checksum itself, so the two
 * agree only if both see the same bytes of guest memory.
 *
 * The callbacks run inside the dispatch's RCU read section (space.h rule
 * 2), so the current view from gm_space_memory() is valid throughout.
 */
#include "gmvm.h"

#include <errno.h>

static int doorbell_ring(struct gmvm_doorbell *d)
{
	const struct gm_memory *mem = gm_space_memory(d->vm->mem_space);
	uint64_t sum;
	int ret;

	/* The registers are guest-controlled: copy them, then check them. */
	uint64_t addr = d->addr, len = d->len;

	d->rings++;
	if (len == 0 || len > GMVM_DB_MAX_LEN || len % 8 != 0)
		ret = -EINVAL;
	else
		ret = gmvm_sum_guest(mem, addr, len, &sum);
	d->result = ret == 0 ? sum : 0;
	d->status = (uint64_t)-ret;
	gmvm_say("doorbell: checksum of 0x%llx-0x%llx through gm_read: %s 0x%016llx",
		 (unsigned long long)addr, (unsigned long long)(addr + len - 1),
		 ret == 0 ? "ok" : "failed", (unsigned long long)d->result);
	return 0;
}

static int doorbell_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	struct gmvm_doorbell *d = opaque;

	(void)size;
	switch (offset) {
	case GMVM_DB_ADDR:
		d->addr = val;
		return 0;
	case GMVM_DB_LEN:
		d->len = val;
		return 0;
	case GMVM_DB_DOORBELL:
		return doorbell_ring(d);
	default:
		return 0; /* read-only or unused registers ignore writes */
	}
}

static int doorbell_read(void *opaque, uint64_t offset, unsigned size, uint64_t *val)
{
	struct gmvm_doorbell *d = opaque;

	(void)size;
	switch (offset) {
	case GMVM_DB_ADDR:
		*val = d->addr;
		break;
	case GMVM_DB_LEN:
		*val = d->len;
		break;
	case GMVM_DB_RESULT:
		*val = d->result;
		break;
	case GMVM_DB_STATUS:
		*val = d->status;
		break;
	case GMVM_DB_RINGS:
		*val = d->rings;
		break;
	default:
		*val = 0;
	}
	return 0;
}

int gmvm_doorbell_add(struct gmvm *vm)
{
	static const struct gm_device_ops ops =
	    GM_OPTS_INIT(gm_device_ops, .name = "doorbell", .read = doorbell_read,
			 .write = doorbell_write, .sizes = GM_ACCESS_8, .flags = 0);
	struct gm_window *w; /* the handle is not needed later */

	vm->doorbell.vm = vm;
	return gm_space_add_mmio(vm->mem_space, GMVM_MMIO_GPA, GMVM_MMIO_SIZE, &ops, &vm->doorbell,
				 &w);
}
