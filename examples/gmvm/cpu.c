/*
 * cpu.c - put the vCPU straight into 64-bit mode at CPL 3.
 *
 * No firmware, no real mode, no CPL-0 code: gmvm writes the page tables,
 * the GDT and the TSS into guest RAM through guestmem's little-endian
 * accessors, then loads the segment, control and general registers with
 * KVM_SET_SREGS / KVM_SET_REGS so that the first instruction the guest runs
 * is the payload's, in user mode. On KVM's PVM flavour (kvm-here.md) CPL-3
 * code runs natively while CPL-0 code is emulated, and on hardware
 * virtualization this works the same way.
 *
 * Guest-physical layout used here (gmvm-abi.h): GDT at GMVM_GDT_GPA, TSS
 * with its I/O bitmap at GMVM_TSS_GPA, page tables from GMVM_PT_GPA.
 */
#include "gmvm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

/* Selectors: user data (GDT index 3) and user code (index 4) with RPL 3; TSS at index 5. */
#define SEL_USER_DATA 0x1b
#define SEL_USER_CODE 0x23
#define SEL_TSS	      0x28
#define GDT_ENTRIES   7 /* the TSS descriptor takes two */

/* Page-table entry bits: present, writable, user, accessed, dirty, 2 MiB page. */
#define PTE_P  0x001ull
#define PTE_RW 0x002ull
#define PTE_US 0x004ull
#define PTE_A  0x020ull
#define PTE_D  0x040ull
#define PTE_PS 0x080ull

/*
 * Accessed and dirty are set in advance so the CPU (or KVM's shadow-page
 * walker) never writes a page-table page: the dirty log then shows only
 * what the payload itself wrote (--dirty-stats checks that exactly).
 */
#define PTE_TABLE (PTE_P | PTE_RW | PTE_US | PTE_A)
#define PTE_LARGE (PTE_P | PTE_RW | PTE_US | PTE_A | PTE_D | PTE_PS)

/* The TSS: 0x68 bytes, then an I/O bitmap with one bit per port (0: allowed), then 0xff. */
#define TSS_IOMAP_OFF 0x68u
#define TSS_LIMIT     (TSS_IOMAP_OFF + 65536u / 8u)

static const uint64_t GIB = 1ull << 30;

/*
 * Identity-map [0, @top) with 2 MiB pages (a PML4, one PDPT, one PD per
 * GiB), user-accessible and writable: what the guest may really write is
 * decided by the memory slots, not by these tables.
 */
static int write_page_tables(const struct gm_memory *mem, uint64_t top)
{
	const uint64_t pml4 = GMVM_PT_GPA, pdpt = pml4 + 4096, pd = pdpt + 4096;
	uint64_t gibs = (top + GIB - 1) / GIB;
	int ret;

	if (gibs == 0 || gibs > 512 || pd + gibs * 4096 > GMVM_PT_MAX_GPA)
		return -E2BIG;
	ret = gm_write_le64(mem, pml4, pdpt | PTE_TABLE);
	for (uint64_t g = 0; ret == 0 && g < gibs; g++) {
		ret = gm_write_le64(mem, pdpt + 8 * g, (pd + 4096 * g) | PTE_TABLE);
		for (uint64_t i = 0; ret == 0 && i < 512; i++)
			ret = gm_write_le64(mem, pd + 4096 * g + 8 * i,
					    (g * GIB + (i << 21)) | PTE_LARGE);
	}
	return ret;
}

/* Descriptors with their accessed bits set, so the CPU never writes the GDT. */
static int write_gdt_tss(const struct gm_memory *mem)
{
	static const uint64_t flat[] = {
	    0,			   /* null */
	    0x00af9b000000ffffull, /* kernel code, 64-bit (unused) */
	    0x00cf93000000ffffull, /* kernel data (unused) */
	    0x00cff3000000ffffull, /* user data, DPL 3 */
	    0x00affb000000ffffull, /* user code, DPL 3, 64-bit */
	};
	const uint64_t tss = GMVM_TSS_GPA;
	int ret = 0;

	for (unsigned i = 0; ret == 0 && i < sizeof(flat) / sizeof(flat[0]); i++)
		ret = gm_write_le64(mem, GMVM_GDT_GPA + 8 * i, flat[i]);
	/* A 64-bit busy TSS descriptor: base and limit spread over two words. */
	if (ret == 0)
		ret = gm_write_le64(mem, GMVM_GDT_GPA + 8 * 5,
				    (TSS_LIMIT & 0xffffull) | ((tss & 0xffffffull) << 16) |
					(0x8bull << 40) | ((uint64_t)(TSS_LIMIT >> 16) << 48) |
					(((tss >> 24) & 0xffull) << 56));
	if (ret == 0)
		ret = gm_write_le64(mem, GMVM_GDT_GPA + 8 * 6, tss >> 32);
	/*
	 * The TSS body is zero (fresh RAM, cleared here anyway); its I/O map
	 * base points just past it. KVM's PVM flavour does not keep RFLAGS.IOPL
	 * at 3 for the guest, so in/out are checked against this all-zero
	 * bitmap: every port allowed. The CPU wants a 0xff byte after it.
	 */
	if (ret == 0)
		ret = gm_fill(mem, tss, 0, TSS_LIMIT);
	if (ret == 0)
		ret = gm_write_le16(mem, tss + 0x66, TSS_IOMAP_OFF);
	if (ret == 0)
		ret = gm_write_u8(mem, tss + TSS_LIMIT, 0xff);
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

static int set_sregs(int vcpu_fd)
{
	struct kvm_sregs sregs;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	user_segment(&sregs.cs, SEL_USER_CODE, 0xb, true);
	user_segment(&sregs.ds, SEL_USER_DATA, 0x3, false);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	memset(&sregs.tr, 0, sizeof(sregs.tr));
	sregs.tr.base = GMVM_TSS_GPA;
	sregs.tr.limit = TSS_LIMIT;
	sregs.tr.selector = SEL_TSS;
	sregs.tr.type = 0xb;
	sregs.tr.present = 1;
	memset(&sregs.ldt, 0, sizeof(sregs.ldt));
	sregs.ldt.unusable = 1;
	sregs.gdt.base = GMVM_GDT_GPA;
	sregs.gdt.limit = GDT_ENTRIES * 8 - 1;
	/* No IDT: any guest fault is a triple fault, which KVM reports as KVM_EXIT_SHUTDOWN. */
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = 0x80050033; /* PG, WP, NE, ET, MP, PE */
	sregs.cr3 = GMVM_PT_GPA;
	sregs.cr4 = 0x620;  /* OSXMMEXCPT, OSFXSR, PAE */
	sregs.efer = 0x500; /* LMA, LME */
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	return 0;
}

int gmvm_cpu_setup(struct gmvm *vm, uint64_t map_top)
{
	struct gm_memory *mem;
	struct kvm_regs regs;
	int ret;

	ret = gm_space_memory_get(vm->mem_space, &mem);
	if (ret < 0)
		return ret;
	ret = write_page_tables(mem, map_top);
	if (ret == 0)
		ret = write_gdt_tss(mem);
	gm_memory_put(mem);
	if (ret < 0)
		return ret;
	ret = set_cpuid(vm->kvm_fd, vm->vcpu_fd);
	if (ret == 0)
		ret = set_sregs(vm->vcpu_fd);
	if (ret < 0)
		return ret;

	memset(&regs, 0, sizeof(regs));
	regs.rip = vm->payload.entry_gpa;
	regs.rsp = vm->payload.stack_top_gpa;
	regs.rflags = 0x3002; /* IOPL 3 (see write_gdt_tss() for PVM), reserved bit 1 */
	if (ioctl(vm->vcpu_fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
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
