/* SPDX-License-Identifier: MIT */
/*
 * tests/kvm_guest.h - a tiny KVM guest for the tests: a VM, one vCPU in
 * 64-bit mode at CPL 3, and a few hand-assembled instructions.
 *
 * Why CPL 3: on this project's machines /dev/kvm is KVM's PVM flavour,
 * which runs guest code at CPL 3 natively and emulates CPL 0 (slowly, and
 * not every instruction). So the vCPU is put straight into long mode from
 * the VMM side (KVM_SET_SREGS: paging, a user code segment with DPL 3, page
 * tables with the user bit) and never runs a CPL-0 instruction. Port I/O
 * at CPL 3 is allowed by RFLAGS.IOPL = 3 on hardware and, because PVM
 * drops IOPL (it reads back as 0), by an all-zero I/O permission bitmap in
 * the TSS as well; either way in/out exit to us as KVM_EXIT_IO. The same
 * set-up runs on VMX/SVM hardware.
 *
 * Guest layout the helper needs: KG_TABLES_SIZE bytes of guest RAM at a
 * page-aligned address for the page tables, GDT and TSS (kg_build_tables()
 * writes them through a host pointer). The page tables identity-map the
 * first KG_MAPPED_GIB GiB with 2 MiB user pages, accessed and dirty bits
 * preset so the CPU never writes the tables. KVM may still log a page the
 * guest only read or executed as dirty (shadow paging maps pages whose
 * guest entry is dirty writable at once): a dirty-log test checks that
 * written pages are set and untouched ones clear, not an exact set.
 *
 * Nothing here prints or exits: failures come back as -errno.
 */
#ifndef GUESTMEM_TESTS_KVM_GUEST_H
#define GUESTMEM_TESTS_KVM_GUEST_H

#include <stddef.h>
#include <stdint.h>

struct kvm_run;

#define KG_MAPPED_GIB	8u
#define KG_GDT_PAGE	(2u + KG_MAPPED_GIB) /* after PML4, PDPT and one PD per GiB */
#define KG_TSS_PAGE	(KG_GDT_PAGE + 1u)   /* TSS, I/O bitmap, end marker byte: 3 pages */
#define KG_TABLES_PAGES (KG_TSS_PAGE + 3u)
#define KG_TABLES_SIZE	((size_t)KG_TABLES_PAGES * 4096u)

struct kg_vm {
	int kvm_fd;
	int vm_fd;
	int vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
};

/*
 * Open /dev/kvm and create a VM. On failure returns -errno and writes why
 * KVM is not usable into @why (for the "skipped:" line).
 */
int kg_vm_open(struct kg_vm *vm, char *why, size_t why_len);

/* Close the vCPU (if any), its run mapping, the VM and /dev/kvm. */
void kg_vm_close(struct kg_vm *vm);

/* Write page tables, GDT and TSS for a guest at @gpa into @host (KG_TABLES_SIZE bytes). */
void kg_build_tables(void *host, uint64_t gpa);

/*
 * Create the vCPU in 64-bit mode at CPL 3, IOPL 3, with the tables built
 * at @tables_gpa, about to execute @rip with stack pointer @rsp.
 * Returns 0 or -errno.
 */
int kg_vcpu_create(struct kg_vm *vm, uint64_t tables_gpa, uint64_t rip, uint64_t rsp);

/* KVM_RUN once (retrying EINTR). Returns the exit reason (>= 0) or -errno. */
int kg_run(struct kg_vm *vm);

/* Read the vCPU's general registers: rax and rip. Returns 0 or -errno. */
int kg_get_rax_rip(struct kg_vm *vm, uint64_t *rax, uint64_t *rip);

/*
 * Tiny assembler: each appends one instruction at *@p and advances it.
 *   kg_mov_rax_imm    mov rax, imm64
 *   kg_store_rax      mov [abs64], rax
 *   kg_load_rax       mov rax, [abs64]
 *   kg_store_al       mov [abs64], al
 *   kg_out_al         out imm8, al      (mov al, imm8 first with kg_mov_rax_imm)
 *   kg_rep_outsb      mov rsi, src; mov rcx, count; mov dx, port; rep outsb
 */
void kg_mov_rax_imm(uint8_t **p, uint64_t imm);
void kg_store_rax(uint8_t **p, uint64_t addr);
void kg_load_rax(uint8_t **p, uint64_t addr);
void kg_store_al(uint8_t **p, uint64_t addr);
void kg_out_al(uint8_t **p, uint8_t port);
void kg_rep_outsb(uint8_t **p, uint64_t src, uint64_t count, uint16_t port);

#endif /* GUESTMEM_TESTS_KVM_GUEST_H */
