/*
 * tests/kvm_guest.c - the tiny CPL-3 KVM guest of the tests (see kvm_guest.h).
 */
#include "kvm_guest.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* GDT selectors: user data (index 3) and user code (index 4) with RPL 3, TSS at index 5. */
#define SEL_USER_DATA 0x1b
#define SEL_USER_CODE 0x23
#define SEL_TSS	      0x28

/* Page-table entry bits: present, writable, user, accessed, dirty, 2 MiB page. */
#define PTE_P  0x001u
#define PTE_RW 0x002u
#define PTE_US 0x004u
#define PTE_A  0x020u
#define PTE_D  0x040u
#define PTE_PS 0x080u

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

static void put64(void *host, size_t off, uint64_t v)
{
	memcpy((unsigned char *)host + off, &v, sizeof(v));
}

void kg_build_tables(void *host, uint64_t gpa)
{
	const uint64_t pml4 = gpa, pdpt = gpa + 4096, pd = gpa + 2 * 4096;
	const size_t gdt_off = (size_t)KG_GDT_PAGE * 4096;
	const size_t tss_off = (size_t)KG_TSS_PAGE * 4096;
	const uint64_t tss = gpa + tss_off;
	unsigned i;

	memset(host, 0, KG_TABLES_SIZE);
	(void)pml4;
	put64(host, 0, pdpt | PTE_P | PTE_RW | PTE_US | PTE_A);
	for (i = 0; i < KG_MAPPED_GIB; i++)
		put64(host, 4096 + 8 * i,
		      (pd + 4096 * (uint64_t)i) | PTE_P | PTE_RW | PTE_US | PTE_A);
	for (i = 0; i < KG_MAPPED_GIB * 512; i++)
		put64(host, 2 * 4096 + 8 * (size_t)i,
		      ((uint64_t)i << 21) | PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D | PTE_PS);

	/* Descriptors with their accessed bits set, so the CPU never writes the GDT. */
	put64(host, gdt_off + 8 * 1, 0x00af9b000000ffffull); /* kernel code, 64-bit */
	put64(host, gdt_off + 8 * 2, 0x00cf93000000ffffull); /* kernel data */
	put64(host, gdt_off + 8 * 3, 0x00cff3000000ffffull); /* user data, DPL 3 */
	put64(host, gdt_off + 8 * 4, 0x00affb000000ffffull); /* user code, DPL 3, 64-bit */
	/* 64-bit busy TSS, limit 0x67, base split over the two descriptor words. */
	/* 64-bit busy TSS; base and limit split over the two descriptor words. */
	put64(host, gdt_off + 8 * 5,
	      (KG_TSS_LIMIT & 0xffffull) | ((tss & 0xffffffull) << 16) | (0x8bull << 40) |
		  (((uint64_t)KG_TSS_LIMIT >> 16) << 48) | (((tss >> 24) & 0xffull) << 56));
	put64(host, gdt_off + 8 * 6, tss >> 32);
	/*
	 * An I/O permission bitmap right after the TSS, all zero: every port
	 * allowed at CPL 3. PVM does not keep RFLAGS.IOPL = 3 for the guest
	 * (it reads back as 0), so in/out with the port in DX and string I/O
	 * are checked against this bitmap; the byte after it is the 0xff end
	 * marker the CPU requires.
	 */
	put64(host, tss_off + 0x60, (uint64_t)0x68 << 48);
	((unsigned char *)host)[tss_off + 0x68 + 8192] = 0xff;
}

static void user_segment(struct kvm_segment *s, uint16_t sel, uint8_t type, uint8_t l)
{
	memset(s, 0, sizeof(*s));
	s->base = 0;
	s->limit = 0xffffffff;
	s->selector = sel;
	s->type = type;
	s->present = 1;
	s->dpl = 3;
	s->db = l ? 0 : 1;
	s->s = 1;
	s->l = l;
	s->g = 1;
}

int kg_vcpu_create(struct kg_vm *vm, uint64_t tables_gpa, uint64_t rip, uint64_t rsp)
{
	const uint64_t gdt = tables_gpa + (uint64_t)KG_GDT_PAGE * 4096;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	int size;
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

	if (ioctl(vm->vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	user_segment(&sregs.cs, SEL_USER_CODE, 0xb, 1);
	user_segment(&sregs.ds, SEL_USER_DATA, 0x3, 0);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.base = tables_gpa + (uint64_t)KG_TSS_PAGE * 4096;
	sregs.tr.limit = KG_TSS_LIMIT;
	sregs.tr.selector = SEL_TSS;
	sregs.tr.type = 0xb;
	sregs.tr.present = 1;
	memset(&sregs.ldt, 0, sizeof(sregs.ldt));
	sregs.ldt.unusable = 1;
	sregs.gdt.base = gdt;
	sregs.gdt.limit = 7 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;	/* any fault is a triple fault: KVM_EXIT_SHUTDOWN */
	sregs.cr0 = 0x80050033; /* PG, WP, NE, ET, MP, PE */
	sregs.cr3 = tables_gpa;
	sregs.cr4 = 0x620;  /* OSXMMEXCPT, OSFXSR, PAE */
	sregs.efer = 0x500; /* LMA, LME */
	if (ioctl(vm->vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;

	memset(&regs, 0, sizeof(regs));
	regs.rip = rip;
	regs.rsp = rsp;
	regs.rflags = 0x3002; /* IOPL 3, reserved bit 1 */
	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/*
 * KVM_RUN. In a 32-bit process on PVM, returning from KVM_RUN through the
 * vDSO's sysenter path after the guest ran natively at CPL 3 raises a
 * stack-segment fault in __kernel_vsyscall (SIGBUS); the same ioctl made
 * with int $0x80 returns normally. So a 32-bit build enters the kernel
 * that way for this one call.
 */
static int kvm_run_ioctl(int fd)
{
#if defined(__i386__)
	int ret;

	/* ebx is the PIC register: swap it by hand instead of naming it. */
	__asm__ volatile("xchg %%ebx, %%edi\n\tint $0x80\n\txchg %%ebx, %%edi"
			 : "=a"(ret)
			 : "0"(54 /* __NR_ioctl */), "D"(fd), "c"(KVM_RUN), "d"(0)
			 : "memory");
	if (ret < 0 && ret > -4096) {
		errno = -ret;
		return -1;
	}
	return ret;
#else
	return ioctl(fd, KVM_RUN, 0);
#endif
}

int kg_run(struct kg_vm *vm)
{
	int ret;

	do
		ret = kvm_run_ioctl(vm->vcpu_fd);
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
