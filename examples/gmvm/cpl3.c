/* SPDX-License-Identifier: MIT */
/*
 * cpl3.c - an x86 vCPU that starts in 64-bit mode at CPL 3 (see cpl3.h):
 * the page tables, GDT and TSS encoded into the caller's buffers, the
 * registers set through KVM_SET_SREGS / KVM_SET_REGS, and KVM_RUN with the
 * 32-bit work-around. Used by gmvm and by the KVM tests; no state.
 */
#include "cpl3.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>

/* Selectors: user data (GDT index 3) and user code (index 4) with RPL 3; TSS at index 5. */
#define SEL_USER_DATA 0x1b
#define SEL_USER_CODE 0x23
#define SEL_TSS	      0x28

/* Page-table entry bits: present, writable, user, accessed, dirty, 2 MiB page. */
#define PTE_P  0x001ull
#define PTE_RW 0x002ull
#define PTE_US 0x004ull
#define PTE_A  0x020ull
#define PTE_D  0x040ull
#define PTE_PS 0x080ull

/*
 * Accessed and dirty are set in advance so the CPU never writes a table
 * page: a dirty log then shows only what the guest itself wrote.
 */
#define PTE_TABLE (PTE_P | PTE_RW | PTE_US | PTE_A)
#define PTE_LARGE (PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D | PTE_PS)

static const uint64_t GIB = 1ull << 30;

/* x86 tables are little-endian whatever the host is. */
static void put_le64(unsigned char *p, uint64_t v)
{
	for (unsigned i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/*
 * What the guest may really write is decided by the memory slots, not by
 * these tables: every page is user-accessible and writable.
 */
void cpl3_build_page_tables(unsigned char *buf, const struct cpl3_layout *l)
{
	const uint64_t pdpt = l->pt_gpa + 4096, pd = pdpt + 4096;

	memset(buf, 0, CPL3_PT_SIZE(l->gibs));
	put_le64(buf, pdpt | PTE_TABLE);
	for (uint64_t g = 0; g < l->gibs; g++) {
		put_le64(buf + 4096 + 8 * g, (pd + 4096 * g) | PTE_TABLE);
		for (uint64_t i = 0; i < 512; i++)
			put_le64(buf + 2 * 4096 + 4096 * g + 8 * i,
				 (g * GIB + (i << 21)) | PTE_LARGE);
	}
}

/* Descriptors with their accessed bits set, so the CPU never writes the GDT. */
void cpl3_build_gdt(unsigned char *buf, const struct cpl3_layout *l)
{
	static const uint64_t flat[] = {
	    0,			   /* null */
	    0x00af9b000000ffffull, /* kernel code, 64-bit (unused) */
	    0x00cf93000000ffffull, /* kernel data (unused) */
	    0x00cff3000000ffffull, /* user data, DPL 3 */
	    0x00affb000000ffffull, /* user code, DPL 3, 64-bit */
	};
	const uint64_t tss = l->tss_gpa;

	for (unsigned i = 0; i < sizeof(flat) / sizeof(flat[0]); i++)
		put_le64(buf + 8 * i, flat[i]);
	/* A 64-bit busy TSS descriptor: base and limit spread over two words. */
	put_le64(buf + 8 * 5, (CPL3_TSS_LIMIT & 0xffffull) | ((tss & 0xffffffull) << 16) |
				  (0x8bull << 40) | ((uint64_t)(CPL3_TSS_LIMIT >> 16) << 48) |
				  (((tss >> 24) & 0xffull) << 56));
	put_le64(buf + 8 * 6, tss >> 32);
}

/*
 * The TSS body is zero; its I/O map base points just past it. KVM's PVM
 * flavour does not keep RFLAGS.IOPL at 3 for the guest (it reads back as
 * 0), so in/out - also with the port in DX, also string I/O - are checked
 * against this all-zero bitmap: every port allowed. The CPU wants a 0xff
 * byte after it.
 */
void cpl3_build_tss(unsigned char *buf)
{
	memset(buf, 0, CPL3_TSS_SIZE);
	buf[0x66] = (unsigned char)CPL3_TSS_IOMAP_OFF;
	buf[0x67] = (unsigned char)(CPL3_TSS_IOMAP_OFF >> 8);
	buf[CPL3_TSS_LIMIT] = 0xff;
}

static void user_segment(struct kvm_segment *s, uint16_t selector, uint8_t type, bool code64)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xffffffff;
	s->selector = selector;
	s->type = type;
	s->present = 1;
	s->dpl = 3;
	s->db = code64 ? 0 : 1;
	s->s = 1;
	s->l = code64;
	s->g = 1;
}

void cpl3_fill_sregs(struct kvm_sregs *sregs, const struct cpl3_layout *l)
{
	user_segment(&sregs->cs, SEL_USER_CODE, 0xb, true);
	user_segment(&sregs->ds, SEL_USER_DATA, 0x3, false);
	sregs->es = sregs->fs = sregs->gs = sregs->ss = sregs->ds;
	memset(&sregs->tr, 0, sizeof(sregs->tr));
	sregs->tr.base = l->tss_gpa;
	sregs->tr.limit = CPL3_TSS_LIMIT;
	sregs->tr.selector = SEL_TSS;
	sregs->tr.type = 0xb;
	sregs->tr.present = 1;
	memset(&sregs->ldt, 0, sizeof(sregs->ldt));
	sregs->ldt.unusable = 1;
	sregs->gdt.base = l->gdt_gpa;
	sregs->gdt.limit = CPL3_GDT_SIZE - 1;
	/* No IDT: any guest fault is a triple fault, which KVM reports as KVM_EXIT_SHUTDOWN. */
	sregs->idt.base = 0;
	sregs->idt.limit = 0;
	sregs->cr0 = 0x80050033; /* PG, WP, NE, ET, MP, PE */
	sregs->cr3 = l->pt_gpa;
	sregs->cr4 = 0x620;  /* OSXMMEXCPT, OSFXSR, PAE */
	sregs->efer = 0x500; /* LMA, LME */
}

int cpl3_set_sregs(int vcpu_fd, const struct cpl3_layout *l)
{
	struct kvm_sregs sregs;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	cpl3_fill_sregs(&sregs, l);
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	return 0;
}

int cpl3_set_regs(int vcpu_fd, uint64_t rip, uint64_t rsp)
{
	struct kvm_regs regs;

	memset(&regs, 0, sizeof(regs));
	regs.rip = rip;
	regs.rsp = rsp;
	regs.rflags = 0x3002; /* IOPL 3 (see cpl3_build_tss() for PVM), reserved bit 1 */
	if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

int cpl3_kvm_run(int vcpu_fd)
{
#if defined(__i386__)
	/*
	 * A 32-bit process on this machine's KVM (the PVM flavour) that
	 * returns from KVM_RUN through the fast system-call exit - sysenter,
	 * which glibc's ioctl() takes through __kernel_vsyscall - gets SIGBUS
	 * (a stack-segment fault) at its next stack access, as if the exit
	 * left a stale SS behind, after the guest ran natively at CPL 3.
	 * int $0x80 returns with iret, which loads SS afresh, and works (so
	 * does any run under strace, which forces that path). Measured on the
	 * 6.18 host of kvm-here.md.
	 */
	long ret;

	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "0"((long)SYS_ioctl), "b"((long)vcpu_fd), "c"((long)KVM_RUN), "d"(0L)
			 : "memory");
	if (ret < 0) {
		errno = (int)-ret;
		return -1;
	}
	return (int)ret;
#else
	return ioctl(vcpu_fd, KVM_RUN, 0);
#endif
}
