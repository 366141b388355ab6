/* SPDX-License-Identifier: MIT */
/*
 * cpl3.h - an x86 vCPU that starts in 64-bit mode at CPL 3: the guest
 * tables it needs (identity page tables, a GDT, a TSS with an I/O
 * bitmap), its segment, control and general registers, and KVM_RUN.
 *
 * Why CPL 3: on this project's machines /dev/kvm is KVM's PVM flavour,
 * which runs guest code at CPL 3 natively and emulates CPL 0 (slowly, and
 * not every instruction; kvm-here.md). So the vCPU is put straight into
 * long mode from the VMM side and never runs a CPL-0 instruction. The
 * same set-up runs on VMX/SVM hardware.
 *
 * Shared by gmvm (cpu.c, run.c) and the KVM tests (tests/kvm_guest.c, which
 * tests/meson.build builds with this file): example and test support, not
 * part of the library. It only encodes tables into buffers and makes vCPU
 * ioctls; the caller puts the buffers into guest memory its own way.
 */
#ifndef GMVM_CPL3_H
#define GMVM_CPL3_H

#include <stddef.h>
#include <stdint.h>

struct kvm_sregs;

/* GDT: null, kernel code and data (unused), user data, user code, TSS (two entries). */
#define CPL3_GDT_ENTRIES 7u
#define CPL3_GDT_SIZE	 (CPL3_GDT_ENTRIES * 8u)
/* The TSS: 0x68 bytes, then an I/O bitmap with one bit per port (0: allowed), then 0xff. */
#define CPL3_TSS_IOMAP_OFF 0x68u
#define CPL3_TSS_LIMIT	   (CPL3_TSS_IOMAP_OFF + 65536u / 8u)
#define CPL3_TSS_SIZE	   (CPL3_TSS_LIMIT + 1u) /* with the end marker */
/* Page tables: a PML4, one PDPT, one PD per GiB mapped (at most 512). */
#define CPL3_PT_MAX_GIB	   512u
#define CPL3_PT_SIZE(gibs) ((2u + (size_t)(gibs)) * 4096u)

/* Where the tables are in guest-physical memory. */
struct cpl3_layout {
	uint64_t pt_gpa;  /* page-aligned; CPL3_PT_SIZE(gibs) bytes */
	unsigned gibs;	  /* identity-map [0, gibs GiB); 1 to CPL3_PT_MAX_GIB */
	uint64_t gdt_gpa; /* CPL3_GDT_SIZE bytes */
	uint64_t tss_gpa; /* CPL3_TSS_SIZE bytes */
};

/*
 * Encode the page tables into @buf (CPL3_PT_SIZE(l->gibs) bytes, every byte
 * written): [0, gibs GiB) identity-mapped with 2 MiB pages, user-accessible
 * and writable, accessed and dirty bits preset so the CPU (or KVM's shadow
 * page walker) never writes a table page.
 */
void cpl3_build_page_tables(unsigned char *buf, const struct cpl3_layout *l);

/* Encode the GDT into @buf (CPL3_GDT_SIZE bytes), its TSS descriptor for l->tss_gpa. */
void cpl3_build_gdt(unsigned char *buf, const struct cpl3_layout *l);

/* Encode the TSS and its all-ports-allowed I/O bitmap into @buf (CPL3_TSS_SIZE bytes). */
void cpl3_build_tss(unsigned char *buf);

/*
 * Fill @sregs for 64-bit mode at CPL 3 with the tables of @l: flat user
 * code and data segments, the TSS, no LDT, no IDT (any fault is a triple
 * fault: KVM_EXIT_SHUTDOWN), paging with PAE, long mode. Fields not named
 * here (e.g. the APIC base, cr2, cr8) keep what @sregs held.
 */
void cpl3_fill_sregs(struct kvm_sregs *sregs, const struct cpl3_layout *l);

/* KVM_GET_SREGS, cpl3_fill_sregs(), KVM_SET_SREGS. Returns 0 or -errno. */
int cpl3_set_sregs(int vcpu_fd, const struct cpl3_layout *l);

/* General registers: all zero but @rip, @rsp and RFLAGS (IOPL 3). Returns 0 or -errno. */
int cpl3_set_regs(int vcpu_fd, uint64_t rip, uint64_t rsp);

/*
 * KVM_RUN once, as ioctl() would: returns its result, errno set on -1.
 * A 32-bit build enters the kernel through int $0x80 (see cpl3.c).
 */
int cpl3_kvm_run(int vcpu_fd);

#endif /* GMVM_CPL3_H */
