/* SPDX-License-Identifier: MIT */
/*
 * tests/kvm_guest.c - the tiny CPL-3 KVM guest of the tests (see kvm_guest.h).
 * The tables and registers of a CPL-3 vCPU and KVM_RUN are gmvm's
 * (examples/gmvm/cpl3.c, built into test_kvm by tests/meson.build).
 */
#include "kvm_guest.h"

#include "../examples/gmvm/cpl3.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

int kg_vm_open(struct kg_vm *vm, char *why, size_t why_len)
{
	int ret;

	memset(vm, 0, sizeof(*vm));
	vm->vm_fd = -1;
	vm->vcpu_fd = -1;
	vm->kvm_fd = -1;
	/* A user-mode emulator runs this process's instructions, not a kernel
	 * ABI for KVM: it has no vCPU to hand back (tests/meson.build). */
	if (getenv("GM_EMULATOR") != NULL) {
		snprintf(why, why_len, "this test runs under %s, which cannot drive KVM",
			 getenv("GM_EMULATOR"));
		return -ENOSYS;
	}
	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		ret = -errno;
		snprintf(why, why_len, "open /dev/kvm: %s", strerror(-ret));
		return ret;
	}
	ret = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ret < 0) {
		ret = -errno;
		snprintf(why, why_len, "KVM_GET_API_VERSION: %s", strerror(-ret));
		goto err_kvm;
	}
	if (ret != KVM_API_VERSION) {
		snprintf(why, why_len, "KVM API version %d, not %d", ret, KVM_API_VERSION);
		ret = -ENOTSUP;
		goto err_kvm;
	}
	ret = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM);
	if (ret <= 0) {
		snprintf(why, why_len, "KVM lacks KVM_CAP_READONLY_MEM");
		ret = -ENOTSUP;
		goto err_kvm;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = -errno;
		snprintf(why, why_len, "KVM_CREATE_VM: %s", strerror(-ret));
		goto err_kvm;
	}
	return 0;

err_kvm:
	close(vm->kvm_fd);
	vm->kvm_fd = -1;
	return ret;
}

void kg_vm_close(struct kg_vm *vm)
{
	if (vm->run != NULL)
		munmap(vm->run, vm->run_size);
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->vcpu_fd = -1;
}

_Static_assert(CPL3_GDT_SIZE <= 4096, "the GDT fits its page");
_Static_assert((size_t)KG_TSS_PAGE * 4096 + CPL3_TSS_SIZE <= KG_TABLES_SIZE,
	       "the TSS and its I/O bitmap fit the tables");

/* The tables' place in the KG_TABLES_SIZE bytes at @gpa (kvm_guest.h). */
static struct cpl3_layout tables_layout(uint64_t gpa)
{
	const struct cpl3_layout l = {
	    .pt_gpa = gpa,
	    .gibs = KG_MAPPED_GIB,
	    .gdt_gpa = gpa + (uint64_t)KG_GDT_PAGE * 4096,
	    .tss_gpa = gpa + (uint64_t)KG_TSS_PAGE * 4096,
	};

	return l;
}

void kg_build_tables(void *host, uint64_t gpa)
{
	const struct cpl3_layout l = tables_layout(gpa);
	unsigned char *p = host;

	memset(host, 0, KG_TABLES_SIZE);
	cpl3_build_page_tables(p, &l);
	cpl3_build_gdt(p + (size_t)KG_GDT_PAGE * 4096, &l);
	cpl3_build_tss(p + (size_t)KG_TSS_PAGE * 4096);
}

int kg_vcpu_create(struct kg_vm *vm, uint64_t tables_gpa, uint64_t rip, uint64_t rsp)
{
	const struct cpl3_layout l = tables_layout(tables_gpa);
	int size, ret;
	void *run;

	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0)
		return -errno;
	size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size <= 0)
		return size < 0 ? -errno : -EIO;
	run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
	if (run == MAP_FAILED)
		return -errno;
	vm->run = run;
	vm->run_size = (size_t)size;

	ret = cpl3_set_sregs(vm->vcpu_fd, &l);
	if (ret == 0)
		ret = cpl3_set_regs(vm->vcpu_fd, rip, rsp);
	return ret;
}

int kg_run(struct kg_vm *vm)
{
	int ret;

	do
		ret = cpl3_kvm_run(vm->vcpu_fd);
	while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	return (int)vm->run->exit_reason;
}

int kg_get_rax_rip(struct kg_vm *vm, uint64_t *rax, uint64_t *rip)
{
	struct kvm_regs regs;

	if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &regs) < 0)
		return -errno;
	*rax = regs.rax;
	*rip = regs.rip;
	return 0;
}

static void emit(uint8_t **p, const void *bytes, size_t n)
{
	memcpy(*p, bytes, n);
	*p += n;
}

static void emit_op_imm64(uint8_t **p, const uint8_t *op, size_t n, uint64_t imm)
{
	emit(p, op, n);
	emit(p, &imm, sizeof(imm)); /* x86 is little-endian, and so is the host */
}

void kg_mov_rax_imm(uint8_t **p, uint64_t imm)
{
	static const uint8_t op[] = {0x48, 0xb8};
	emit_op_imm64(p, op, sizeof(op), imm);
}

void kg_store_rax(uint8_t **p, uint64_t addr)
{
	static const uint8_t op[] = {0x48, 0xa3};
	emit_op_imm64(p, op, sizeof(op), addr);
}

void kg_load_rax(uint8_t **p, uint64_t addr)
{
	static const uint8_t op[] = {0x48, 0xa1};
	emit_op_imm64(p, op, sizeof(op), addr);
}

void kg_store_al(uint8_t **p, uint64_t addr)
{
	static const uint8_t op[] = {0xa2};
	emit_op_imm64(p, op, sizeof(op), addr);
}

void kg_out_al(uint8_t **p, uint8_t port)
{
	const uint8_t op[] = {0xe6, port};
	emit(p, op, sizeof(op));
}

void kg_rep_outsb(uint8_t **p, uint64_t src, uint64_t count, uint16_t port)
{
	static const uint8_t mov_rsi[] = {0x48, 0xbe}, mov_rcx[] = {0x48, 0xb9};
	const uint8_t mov_dx[] = {0x66, 0xba, (uint8_t)port, (uint8_t)(port >> 8)};
	static const uint8_t rep_outsb[] = {0xf3, 0x6e};

	emit_op_imm64(p, mov_rsi, sizeof(mov_rsi), src);
	emit_op_imm64(p, mov_rcx, sizeof(mov_rcx), count);
	emit(p, mov_dx, sizeof(mov_dx));
	emit(p, rep_outsb, sizeof(rep_outsb));
}
