/* SPDX-License-Identifier: MIT */
/*
 * gmvm.h - what the files of gmvm share: the VM's state and each file's
 * entry points.
 *
 * gmvm is a small x86-64 KVM monitor whose guest memory, ROM, MMIO window
 * and port-I/O devices all live in guestmem: two gm_space objects (memory
 * and ports) hold every window, a gm_kvm binding keeps KVM's memory slots
 * in step with the memory space and dispatches the exits, and the devices
 * read guest memory only through guestmem's data path. main.c is the boot
 * path, one step after another; each device is one file.
 */
#ifndef GMVM_H
#define GMVM_H

#include <guestmem/guestmem.h>
#include <guestmem/kvm.h>
#include <guestmem/space.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "gmvm-abi.h"

struct kvm_run;
struct gm_snapshot;

/* Command-line options (main.c). */
struct gmvm_opts {
	const char *payload;	/* path of the flat payload binary */
	uint64_t low_ram;	/* bytes of RAM from 0 (at most 3 GiB) */
	uint64_t high_ram;	/* bytes of RAM from 4 GiB */
	bool protect_text;	/* --protect-text */
	bool dirty_stats;	/* --dirty-stats */
	unsigned snapshot_at;	/* --snapshot-at STEP FILE: 0 = off */
	const char *snapshot;	/* its FILE */
	const char *restore;	/* --restore FILE */
	bool restore_lazy;	/* --restore-mode lazy (default: copy) */
	const char *kvm_device; /* --kvm DEVICE (default /dev/kvm) */
	bool timing;		/* --timing: print how long the phases took */
	uint64_t bench_exits;	/* --bench-exits N: the payload only does exits */
	bool numa;		/* --numa: RAM on the nodes with memory, policies printed */
	bool balloon;		/* --balloon: high RAM in blocks, given back after the run */
};

/* The hot-plug device (hotplug.c). */
struct gmvm_hotplug {
	uint32_t pending;	  /* GMVM_HOTPLUG_* requested by the guest, 0 if none */
	uint32_t status;	  /* what the guest reads back: 0 or a positive errno */
	uint64_t gpa;		  /* where the region goes (after high RAM, 1 GiB aligned) */
	struct gm_window *window; /* the plugged RAM, NULL when unplugged */
	unsigned plugs, unplugs;
};

/* The doorbell device (doorbell.c). */
struct gmvm_doorbell {
	struct gmvm *vm;
	uint64_t addr, len, result, status, rings;
};

/* The bench device (bench.c): counts exits, takes the time at marks. */
struct gmvm_bench {
	uint64_t count, pio_count, mmio_count;
	uint64_t mark_ns[GMVM_BENCH_END + 1];
	bool done;
};

/* The console (console.c): characters are collected into lines. */
struct gmvm_console {
	char line[256];
	size_t len;
};

/* The control device (control.c): steps, checks, counters, exit. */
struct gmvm_control {
	struct gmvm *vm;
	uint32_t announced;  /* step written to GMVM_PORT_STEP ... */
	bool step_pending;   /* ... and not yet acted on */
	unsigned step;	     /* last step acted on */
	unsigned steps_seen; /* distinct steps announced, in order */
	uint32_t verdict;    /* of the last check */
	unsigned checks, checks_failed;
	bool exited;
	uint32_t exit_status;
	bool snapshot_taken; /* --snapshot-at: saved, the run stops */
	bool dirty_exact_checked, dirty_exact_ok;
};

struct gmvm {
	struct gmvm_opts opts;

	/* KVM */
	int kvm_fd, vm_fd, vcpu_fd;
	struct kvm_run *run;
	size_t run_size;

	/* guestmem */
	struct gm_space *mem_space; /* guest-physical memory */
	struct gm_space *io_space;  /* x86 ports */
	struct gm_kvm *kvm;	    /* slots + exit dispatch */
	struct gm_window *ram_low0, *ram_low1, *ram_high, *rom;
	struct gm_snapshot *snap; /* --restore: open while lazily restored RAM needs it */

	/* the payload as loaded (loader.c) */
	struct gmvm_payload_header payload;
	uint64_t payload_size;

	/* devices */
	struct gmvm_console console;
	struct gmvm_control control;
	struct gmvm_doorbell doorbell;
	struct gmvm_hotplug hotplug;
	struct gmvm_bench bench;

	/* what the exit handlers saw */
	unsigned rom_refused, text_refused, unassigned;
	uint64_t exits;
	uint64_t first_exit_ns; /* CLOCK_MONOTONIC of the first exit (--timing) */
};

/*
 * density.c: --numa and --balloon before the payload runs (policies set
 * and printed; blocks, prefault), and the balloon step after it (blocks of
 * high RAM unplugged, the host RSS drop printed). Return 0 or -1 (said).
 */
int gmvm_density_setup(struct gmvm *vm);
int gmvm_balloon_step(struct gmvm *vm);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t gmvm_now_ns(void);

/* Print "gmvm: <message>" to stderr and return @err (a negative errno). */
int gmvm_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Print "gmvm: <message>" to stdout: the step-by-step report. */
void gmvm_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline uint32_t gmvm_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t gmvm_le64(const unsigned char *p)
{
	return (uint64_t)gmvm_le32(p) | (uint64_t)gmvm_le32(p + 4) << 32;
}

/* Checksum @size bytes of guest memory at @gpa through gm_read() (control.c). */
int gmvm_sum_guest(const struct gm_memory *mem, uint64_t gpa, uint64_t size, uint64_t *sum);

/* loader.c: check the payload at @path and copy it into guest RAM. */
int gmvm_payload_load(struct gmvm *vm, const char *path);

/* cpu.c: page tables covering [0, @map_top), GDT, TSS, registers: CPL 3 at the entry. */
int gmvm_cpu_setup(struct gmvm *vm, uint64_t map_top);
/* cpu.c: CPUID, then registers saved by a snapshot. */
struct kvm_regs;
struct kvm_sregs;
int gmvm_cpu_restore(struct gmvm *vm, const struct kvm_regs *regs, const struct kvm_sregs *sregs);

/* rom.c: the ROM image (GMVM_ROM_SIZE bytes) into @buf. */
void gmvm_rom_build(unsigned char *buf);

/* Devices: each adds its window to its space. */
int gmvm_console_add(struct gmvm *vm);
void gmvm_console_flush(struct gmvm *vm);
int gmvm_control_add(struct gmvm *vm);
/* Act on a step the guest announced (report, dirty stats, snapshot), after its exit. */
int gmvm_control_service(struct gmvm *vm);
int gmvm_doorbell_add(struct gmvm *vm);
int gmvm_hotplug_add(struct gmvm *vm);
int gmvm_bench_add(struct gmvm *vm);
void gmvm_bench_report(struct gmvm *vm);
/* Do what the guest asked the hot-plug device for (the vCPU is stopped at that exit). */
void gmvm_hotplug_service(struct gmvm *vm);

/* dirty.c: --dirty-stats: report (and collect) the pages dirtied since the last call. */
int gmvm_dirty_start(struct gmvm *vm);
int gmvm_dirty_report(struct gmvm *vm, unsigned step, bool check_exact);

/* snapshot.c: --snapshot-at / --restore. */
int gmvm_snapshot_save(struct gmvm *vm);
int gmvm_snapshot_read_vcpu(struct gmvm *vm, const char *path);
int gmvm_snapshot_restore(struct gmvm *vm);
void gmvm_snapshot_close(struct gmvm *vm);

/* run.c: run the vCPU until the payload exits or something goes wrong. */
int gmvm_run(struct gmvm *vm);

/* The step names, for the report. */
const char *gmvm_step_name(unsigned step);

#endif /* GMVM_H */
