/* SPDX-License-Identifier: MIT */
/*
 * cpu.c - put the vCPU straight into 64-bit mode at CPL 3.
 *
 * No firmware, no real mode, no CPL-0 code: gmvm writes the page tables,
 * the GDT and the TSS (encoded by cpl3.c, which the KVM tests share) into
 * guest RAM through guestmem's gm_write(), then loads the segment, control
 * and general registers with KVM_SET_SREGS / KVM_SET_REGS (cpl3.c again)
 * so that the first instruction the guest runs is the payload's, in user
 * mode. On KVM's PVM flavour (kvm-here.md) CPL-3 code runs natively while
 * CPL-0 code is emulated, and on hardware virtualization this works the
 * same way.
 *
 * Guest-physical layout used here (gmvm-abi.h): GDT at GMVM_GDT_GPA, TSS
 * with its I/O bitmap at GMVM_TSS_GPA, page tables from GMVM_PT_GPA.
 */
#include "gmvm.h"
#include "cpl3.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

static const uint64_t GIB = 1ull << 30;

/*
 * Where the tables go (gmvm-abi.h), with page tables that identity-map
 * [0, @top) in 2 MiB pages: a PML4, one PDPT, one PD per GiB, all below
 * GMVM_PT_MAX_GPA. Returns 0 or -E2BIG.
 */
static int tables_layout(uint64_t top, struct cpl3_layout *l)
{
	uint64_t gibs = (top + GIB - 1) / GIB;

	if (gibs == 0 || gibs > CPL3_PT_MAX_GIB ||
	    GMVM_PT_GPA + CPL3_PT_SIZE(gibs) > GMVM_PT_MAX_GPA)
		return -E2BIG;
	l->pt_gpa = GMVM_PT_GPA;
	l->gibs = (unsigned)gibs;
	l->gdt_gpa = GMVM_GDT_GPA;
	l->tss_gpa = GMVM_TSS_GPA;
	return 0;
}

/*
 * Encode the page tables, the GDT and the TSS (cpl3.c) and write each
 * whole into guest RAM. The table pages are fresh RAM, zero already; the
 * unused entries are written as zero all the same.
 */
static int write_tables(const struct gm_memory *mem, const struct cpl3_layout *l)
{
	unsigned char gdt[CPL3_GDT_SIZE], tss[CPL3_TSS_SIZE], *pt;
	int ret;

	pt = malloc(CPL3_PT_SIZE(l->gibs));
	if (pt == NULL)
		return -ENOMEM;
	cpl3_build_page_tables(pt, l);
	cpl3_build_gdt(gdt, l);
	cpl3_build_tss(tss);
	ret = gm_write(mem, l->pt_gpa, pt, CPL3_PT_SIZE(l->gibs));
	if (ret == 0)
		ret = gm_write(mem, l->gdt_gpa, gdt, sizeof(gdt));
	if (ret == 0)
		ret = gm_write(mem, l->tss_gpa, tss, sizeof(tss));
	free(pt);
	return ret;
}

/* KVM checks EFER.LME against the guest's CPUID: give it what KVM supports. */
static int set_cpuid(int kvm_fd, int vcpu_fd)
{
	const unsigned max = 256;
	struct kvm_cpuid2 *cpuid;
	int ret = 0;

	cpuid = calloc(1, sizeof(*cpuid) + max * sizeof(cpuid->entries[0]));
	if (cpuid == NULL)
		return -ENOMEM;
	cpuid->nent = max;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0 ||
	    ioctl(vcpu_fd, KVM_SET_CPUID2, cpuid) < 0)
		ret = -errno;
	free(cpuid);
	return ret;
}

int gmvm_cpu_setup(struct gmvm *vm, uint64_t map_top)
{
	struct cpl3_layout layout;
	struct gm_memory *mem;
	int ret;

	ret = tables_layout(map_top, &layout);
	if (ret < 0)
		return ret;
	ret = gm_space_memory_get(vm->mem_space, &mem);
	if (ret < 0)
		return ret;
	ret = write_tables(mem, &layout);
	gm_memory_put(mem);
	if (ret < 0)
		return ret;
	ret = set_cpuid(vm->kvm_fd, vm->vcpu_fd);
	if (ret == 0)
		ret = cpl3_set_sregs(vm->vcpu_fd, &layout);
	if (ret == 0)
		ret = cpl3_set_regs(vm->vcpu_fd, vm->payload.entry_gpa, vm->payload.stack_top_gpa);
	return ret;
}

int gmvm_cpu_restore(struct gmvm *vm, const struct kvm_regs *regs, const struct kvm_sregs *sregs)
{
	int ret = set_cpuid(vm->kvm_fd, vm->vcpu_fd);

	if (ret == 0 && ioctl(vm->vcpu_fd, KVM_SET_SREGS, sregs) < 0)
		ret = -errno;
	if (ret == 0 && ioctl(vm->vcpu_fd, KVM_SET_REGS, regs) < 0)
		ret = -errno;
	return ret;
}
