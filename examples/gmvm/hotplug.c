/* SPDX-License-Identifier: MIT */
/*
 * hotplug.c - the hot-plug device: the guest asks, through a port, for a
 * RAM region to be added to or removed from its address space.
 *
 * The port write only records the request. The run loop calls
 * gmvm_hotplug_service() right after the exit, with the vCPU stopped and
 * outside any RCU read section: the space commits the change there, the
 * gm_kvm listener creates or deletes the KVM slot in the same commit, and
 * the guest, when it runs again, reads the status and uses (or no longer
 * has) the memory.
 */
#include "gmvm.h"

#include <errno.h>

static int hotplug_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	struct gmvm *vm = opaque;

	(void)offset;
	(void)size;
	vm->hotplug.pending = (uint32_t)val;
	return 0;
}

static int hotplug_read(void *opaque, uint64_t offset, unsigned size, uint64_t *val)
{
	struct gmvm *vm = opaque;

	(void)offset;
	(void)size;
	*val = vm->hotplug.status;
	return 0;
}

void gmvm_hotplug_service(struct gmvm *vm)
{
	struct gmvm_hotplug *h = &vm->hotplug;
	const uint64_t gpa = h->gpa;
	uint32_t cmd = h->pending;
	int ret;

	if (cmd == 0)
		return;
	h->pending = 0;
	if (cmd == GMVM_HOTPLUG_PLUG && h->window == NULL) {
		ret = gm_space_add_ram(vm->mem_space, gpa, GMVM_HOTPLUG_SIZE, 0, 0, &h->window);
		if (ret == 0)
			h->plugs++;
		gmvm_say("hotplug: plugged %llu KiB of RAM at 0x%llx: %s",
			 (unsigned long long)(GMVM_HOTPLUG_SIZE >> 10), (unsigned long long)gpa,
			 ret == 0 ? "ok" : strerror(-ret));
	} else if (cmd == GMVM_HOTPLUG_UNPLUG && h->window != NULL) {
		ret = gm_space_remove(vm->mem_space, h->window);
		if (ret == 0) {
			h->window = NULL;
			h->unplugs++;
		}
		gmvm_say("hotplug: unplugged the RAM at 0x%llx: %s", (unsigned long long)gpa,
			 ret == 0 ? "ok" : strerror(-ret));
	} else {
		ret = -EINVAL;
		gmvm_say("hotplug: refused request %u (nothing to do in this state)", cmd);
	}
	h->status = (uint32_t)-ret;
}

int gmvm_hotplug_add(struct gmvm *vm)
{
	static const struct gm_device_ops ops =
	    GM_OPTS_INIT(gm_device_ops, .name = "hotplug", .read = hotplug_read,
			 .write = hotplug_write, .sizes = GM_ACCESS_4, .flags = 0);
	struct gm_window *w; /* the handle is not needed later */

	return gm_space_add_mmio(vm->io_space, GMVM_PORT_HOTPLUG, 4, &ops, vm, &w);
}
