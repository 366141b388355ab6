/* SPDX-License-Identifier: MIT */
/*
 * run.c - the vCPU loop: KVM_RUN, then hand the exit to guestmem.
 *
 * Port I/O and MMIO exits go to gm_kvm_handle_exit(), which performs the
 * access through the port or memory space's dispatch - to a device, or to
 * RAM/ROM - and completes it in the kvm_run structure. gmvm only looks at
 * the result: a write refused with -EACCES is a guest write to ROM or to
 * write-protected payload text (counted, reported, and the guest goes on:
 * KVM drops the write), -EFAULT an access where nothing is mapped (reads
 * as all ones). After each exit the devices that asked for work the vCPU
 * must be stopped for (a step, a hot-plug) get it.
 */
#include "gmvm.h"
#include "cpl3.h"

#include <errno.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

/* A write refused by the space: to ROM, or to protected text? Count and report it. */
static void refused_write(struct gmvm *vm, uint64_t gpa, unsigned len)
{
	struct gm_window_info w = GM_OPTS(gm_window_info);

	if (gm_space_find(vm->mem_space, gpa, &w) == 0 && w.kind == GM_WINDOW_ROM) {
		vm->rom_refused++;
		gmvm_say("refused a guest write of %u byte(s) to ROM at 0x%llx (%u so far); "
			 "ROM unchanged",
			 len, (unsigned long long)gpa, vm->rom_refused);
	} else if (gpa >= vm->payload.load_gpa && gpa < vm->payload.text_end_gpa) {
		vm->text_refused++;
		gmvm_say("refused a guest write of %u byte(s) to its protected code at 0x%llx "
			 "(%u so far)",
			 len, (unsigned long long)gpa, vm->text_refused);
	} else {
		gmvm_say("refused a guest write of %u byte(s) to read-only memory at 0x%llx", len,
			 (unsigned long long)gpa);
	}
}

static int handle_mmio(struct gmvm *vm)
{
	struct kvm_run *run = vm->run;
	/* Copied before the handler: for a read it overwrites run->mmio.data. */
	uint64_t gpa = run->mmio.phys_addr;
	unsigned len = run->mmio.len;
	bool write = run->mmio.is_write;
	int ret;

	ret = gm_kvm_handle_mmio(vm->kvm, run);
	if (ret == -EACCES && write) {
		refused_write(vm, gpa, len);
	} else if (ret == -EFAULT) {
		vm->unassigned++;
		gmvm_say("guest %s of %u byte(s) at 0x%llx: nothing there (%s)",
			 write ? "write" : "read", len, (unsigned long long)gpa,
			 write ? "dropped" : "reads as all ones");
	} else if (ret < 0) {
		return gmvm_fail(ret, "MMIO %s at 0x%llx: %s", write ? "write" : "read",
				 (unsigned long long)gpa, strerror(-ret));
	}
	return 0;
}

static int handle_io(struct gmvm *vm)
{
	struct kvm_run *run = vm->run;
	unsigned port = run->io.port;
	int ret;

	ret = gm_kvm_handle_io(vm->kvm, run, vm->run_size);
	if (ret == -EFAULT) {
		vm->unassigned++;
		gmvm_say("guest %s port 0x%x: no device there",
			 run->io.direction ? "wrote" : "read", port);
		return 0;
	}
	if (ret < 0)
		return gmvm_fail(ret, "port I/O at 0x%x: %s", port, strerror(-ret));
	/* Work the vCPU must be stopped for, now that the exit is complete. */
	gmvm_hotplug_service(vm);
	return gmvm_control_service(vm);
}

static int guest_stopped(struct gmvm *vm, const char *why)
{
	struct kvm_regs regs;

	gmvm_console_flush(vm);
	if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &regs) == 0)
		return gmvm_fail(-EIO, "guest stopped: %s at rip 0x%llx (last step %u)", why,
				 (unsigned long long)regs.rip, vm->control.step);
	return gmvm_fail(-EIO, "guest stopped: %s (last step %u)", why, vm->control.step);
}

int gmvm_run(struct gmvm *vm)
{
	int ret;

	for (;;) {
		if (cpl3_kvm_run(vm->vcpu_fd) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return gmvm_fail(-errno, "KVM_RUN: %s", strerror(errno));
		}
		if (vm->exits++ == 0)
			vm->first_exit_ns = gmvm_now_ns();
		switch (vm->run->exit_reason) {
		case KVM_EXIT_IO:
			ret = handle_io(vm);
			break;
		case KVM_EXIT_MMIO:
			ret = handle_mmio(vm);
			break;
		case KVM_EXIT_SHUTDOWN:
			return guest_stopped(vm, "triple fault (KVM_EXIT_SHUTDOWN)");
		case KVM_EXIT_HLT:
			return guest_stopped(vm, "hlt");
		case KVM_EXIT_INTERNAL_ERROR:
			return guest_stopped(vm, "KVM internal error (emulation failure?)");
		case KVM_EXIT_FAIL_ENTRY:
			return guest_stopped(vm, "KVM could not enter the guest");
		default:
			gmvm_fail(-EIO, "unexpected KVM exit reason %u", vm->run->exit_reason);
			return guest_stopped(vm, "unexpected exit");
		}
		if (ret < 0)
			return ret;
		if (vm->control.exited || vm->control.snapshot_taken)
			return 0;
	}
}
