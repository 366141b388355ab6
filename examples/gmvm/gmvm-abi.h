/* SPDX-License-Identifier: MIT */
/*
 * gmvm-abi.h - the contract between gmvm and its guest payload.
 *
 * Included by both sides: by gmvm (a hosted C11 program, 64- or 32-bit) and
 * by the payload (freestanding, 64-bit, runs at CPL 3 inside the guest).
 * Everything here is a number the two must agree on: where things sit in
 * the guest-physical address space, which I/O ports and MMIO registers the
 * devices answer on, the payload's file header, the boot information gmvm
 * leaves in guest memory, and the checksum both sides compute.
 *
 * All multi-byte fields in guest memory are little-endian.
 */
#ifndef GMVM_ABI_H
#define GMVM_ABI_H

#ifndef __ASSEMBLER__
#include <stdint.h>
#endif

/* ---- Guest-physical layout (PC-like) ------------------------------------ */

#define GMVM_GDT_GPA	  0x1000u  /* GDT: null, kernel code/data, user data/code, TSS */
#define GMVM_BOOTINFO_GPA 0x2000u  /* struct gmvm_bootinfo */
#define GMVM_TSS_GPA	  0x3000u  /* 64-bit TSS + an all-ports-allowed I/O bitmap */
#define GMVM_PT_GPA	  0x10000u /* PML4, PDPT, then one PD per GiB mapped */
#define GMVM_PT_MAX_GPA	  0x100000u
#define GMVM_LOAD_GPA	  0x100000u /* the payload's first byte (its header) */

#define GMVM_RAM_SPLIT_GPA  0x1000000u	  /* low RAM is two regions: [0, 16M), [16M, end) */
#define GMVM_SCRATCH_GPA    0x1800000u	  /* 4 MiB of low RAM the payload uses freely */
#define GMVM_LOW_RAM_MIN    0x2000000ull  /* 32 MiB: payload, boundary, scratch */
#define GMVM_LOW_RAM_MAX    0xc0000000ull /* low RAM ends at or below 3 GiB */
#define GMVM_HOLE_GPA	    0xc0000000ull /* reserved (PCI-like) hole */
#define GMVM_HOLE_END	    0xfe000000ull
#define GMVM_MMIO_GPA	    0xfe000000ull /* the doorbell device's window */
#define GMVM_MMIO_SIZE	    0x1000ull
#define GMVM_BENCH_MMIO_GPA 0xfe001000ull /* the bench device's window (--bench-exits) */
#define GMVM_ROM_GPA	    0xffff0000ull /* 64 KiB ROM just below 4 GiB */
#define GMVM_ROM_SIZE	    0x10000ull
#define GMVM_HIGH_GPA	    0x100000000ull /* RAM above 4 GiB starts here */
#define GMVM_HIGH_RAM_MIN   0x200000ull	   /* 2 MiB: the payload uses the first and last MiB */
#define GMVM_HOTPLUG_SIZE   0x200000ull	   /* the region the guest asks to plug */

/* ---- Port I/O ------------------------------------------------------------ */

#define GMVM_PORT_CONSOLE 0x3f8 /* out8: one character of console output (a UART's THR) */
/*
 * out32: the guest-physical address of a struct gmvm_console_buf; the whole
 * text is printed in one exit (PVM emulates rep outsb one byte per exit).
 */
#define GMVM_PORT_CONSOLE_BUF 0x500
#define GMVM_CONSOLE_BUF_MAX  240 /* longest text gmvm accepts at once */

/* The control device: step boundaries, checks by gmvm, counters, exit. */
#define GMVM_PORT_STEP	       0x510 /* out32: a payload step starts (enum gmvm_step) */
#define GMVM_PORT_CHECK	       0x514 /* out32: gpa of a struct gmvm_check; in32: verdict */
#define GMVM_PORT_ROM_REFUSED  0x518 /* in32: writes to ROM refused so far */
#define GMVM_PORT_TEXT_REFUSED 0x51c /* in32: writes to protected payload text refused */
#define GMVM_PORT_EXIT	       0x520 /* out32: the payload's exit status; the VM stops */

/*
 * The bench device (only with gmvm --bench-exits N): writes to
 * GMVM_PORT_BENCH and to the GMVM_BENCH_MMIO_GPA window are counted and
 * nothing else, so their cost is the exit path itself; GMVM_PORT_BENCH_MARK
 * takes the time between the phases (GMVM_BENCH_*).
 */
#define GMVM_PORT_BENCH	      0x540
#define GMVM_PORT_BENCH_MARK  0x544
#define GMVM_BENCH_PIO_START  1
#define GMVM_BENCH_MMIO_START 2
#define GMVM_BENCH_END	      3

/* The hot-plug device: out32 a command, then in32 its status (0 or errno). */
#define GMVM_PORT_HOTPLUG   0x530
#define GMVM_HOTPLUG_PLUG   1
#define GMVM_HOTPLUG_UNPLUG 2

/* ---- The MMIO doorbell device (64-bit registers at GMVM_MMIO_GPA) -------- */
/*
 * The guest writes a buffer's address and length, then rings the doorbell;
 * gmvm checksums the buffer through gm_read() and leaves the result in
 * RESULT and 0 (or an errno) in STATUS.
 */
#define GMVM_DB_ADDR	 0x00
#define GMVM_DB_LEN	 0x08
#define GMVM_DB_DOORBELL 0x10 /* write anything: checksum [ADDR, ADDR + LEN) */
#define GMVM_DB_RESULT	 0x18
#define GMVM_DB_STATUS	 0x20
#define GMVM_DB_RINGS	 0x28 /* read: doorbells rung so far */
#define GMVM_DB_MAX_LEN	 0x1000000ull

#define GMVM_PAYLOAD_MAGIC   "GMVMPAYL"
#define GMVM_PAYLOAD_VERSION 1

#ifndef __ASSEMBLER__ /* the rest is C only (start.S needs the numbers above) */

/* ---- The payload's file header (at file offset 0, loaded at load_gpa) ---- */

struct gmvm_payload_header {
	char magic[8];		/* GMVM_PAYLOAD_MAGIC */
	uint32_t version;	/* GMVM_PAYLOAD_VERSION */
	uint32_t header_size;	/* sizeof(struct gmvm_payload_header) */
	uint64_t load_gpa;	/* where file byte 0 goes: GMVM_LOAD_GPA */
	uint64_t entry_gpa;	/* first instruction, inside the text */
	uint64_t text_end_gpa;	/* end of code (page aligned): [load, text_end) may be protected */
	uint64_t image_end_gpa; /* load_gpa + file size */
	uint64_t bss_end_gpa;	/* end of the zeroed memory after the image */
	uint64_t stack_top_gpa; /* initial stack pointer, inside [image_end, bss_end] */
};

/* ---- A console buffer (GMVM_PORT_CONSOLE_BUF) ---------------------------- */

struct gmvm_console_buf {
	uint32_t len; /* bytes of @text, at most GMVM_CONSOLE_BUF_MAX */
	uint32_t pad;
	char text[GMVM_CONSOLE_BUF_MAX];
};

/* ---- Boot information gmvm writes at GMVM_BOOTINFO_GPA ------------------- */

#define GMVM_BOOT_PROTECT_TEXT (1u << 0)
#define GMVM_BOOT_DIRTY_STATS  (1u << 1)
struct gmvm_bootinfo {
	uint64_t low_ram_end;	/* RAM is [0, low_ram_end) ... */
	uint64_t high_ram_size; /* ... and [GMVM_HIGH_GPA, + high_ram_size) */
	uint64_t hotplug_gpa;	/* where GMVM_HOTPLUG_PLUG puts GMVM_HOTPLUG_SIZE bytes */
	uint64_t scratch_gpa;	/* 4 MiB of low RAM the payload may use freely */
	uint32_t flags;		/* GMVM_BOOT_* */
	uint32_t pad;
	uint64_t bench_exits; /* not 0: only do that many port and MMIO exits, then stop */
};

/* ---- Steps, each announced on GMVM_PORT_STEP ----------------------------- */

enum gmvm_step {
	GMVM_STEP_HELLO = 1,
	GMVM_STEP_ROM_READ,
	GMVM_STEP_ROM_WRITE,
	GMVM_STEP_DOORBELL,
	GMVM_STEP_FILL_BOUNDARY,
	GMVM_STEP_FILL_HIGH,
	GMVM_STEP_DIRTY_EXACT,
	GMVM_STEP_HOTPLUG,
	GMVM_STEP_PROTECT_TEXT,
	GMVM_STEP_DONE,
	GMVM_STEP_COUNT = GMVM_STEP_DONE
};

/*
 * The pages GMVM_STEP_DIRTY_EXACT writes, and nothing else: page offsets
 * from scratch_gpa (low RAM), and from the last 1 MiB of high RAM.
 */
#define GMVM_DIRTY_LOW_PAGES \
	{                    \
		0, 3, 4, 9   \
	}
#define GMVM_DIRTY_HIGH_PAGES \
	{                     \
		1, 200        \
	}
#define GMVM_DIRTY_HIGH_BASE(high_size) (GMVM_HIGH_GPA + (high_size)-0x100000ull)

/* ---- Checks: the payload asks gmvm to verify guest memory ---------------- */

#define GMVM_CHECK_PATTERN 1 /* [gpa, gpa + size) holds gmvm_pattern(seed) */
#define GMVM_CHECK_ROM	   2 /* [gpa, gpa + size) is the ROM gmvm built */
struct gmvm_check {
	uint32_t kind; /* GMVM_CHECK_* */
	uint32_t pad;
	uint64_t gpa;
	uint64_t size;	    /* a multiple of 8 */
	uint64_t seed;	    /* GMVM_CHECK_PATTERN */
	uint64_t guest_sum; /* gmvm_sum over the range, as the guest computed it */
};
/* Verdicts read back from GMVM_PORT_CHECK. */
#define GMVM_CHECK_OK	       0
#define GMVM_CHECK_BAD_BLOCK   1 /* the block itself could not be read or is invalid */
#define GMVM_CHECK_FAULT       2 /* the range is not all guest RAM / ROM */
#define GMVM_CHECK_MISMATCH    3 /* gmvm's sum differs from the guest's */
#define GMVM_CHECK_PATTERN_BAD 4 /* memory agrees with the guest but not with the pattern */

/* ---- The checksum and the fill pattern, identical on both sides --------- */

#define GMVM_SUM_INIT 0xcbf29ce484222325ull

/* Fold one little-endian 64-bit word into a running sum (FNV-1a on words). */
static inline uint64_t gmvm_sum_word(uint64_t sum, uint64_t word)
{
	return (sum ^ word) * 0x100000001b3ull;
}

/* The word the fill pattern puts at guest address @gpa (8-byte aligned). */
static inline uint64_t gmvm_pattern(uint64_t gpa, uint64_t seed)
{
	return (gpa * 0x9e3779b97f4a7c15ull) ^ seed;
}

/* The ROM's content: a magic word, then words derived from their offset. */
#define GMVM_ROM_MAGIC 0x4d4f522d4d564d47ull /* "GMVM-ROM" little-endian */
static inline uint64_t gmvm_rom_word(uint64_t offset)
{
	return offset == 0 ? GMVM_ROM_MAGIC : gmvm_pattern(offset, 0x524f4d);
}

#endif /* !__ASSEMBLER__ */
#endif /* GMVM_ABI_H */
