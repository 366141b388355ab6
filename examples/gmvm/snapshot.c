/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c - --snapshot-at STEP FILE and --restore FILE.
 *
 * A snapshot is two files: FILE, guest RAM saved by guestmem's snapshot
 * layer (gm_snapshot_save()), and FILE.vcpu, written here: the machine's
 * shape (RAM sizes, text protection, the payload's code range), the
 * devices' state and counters, and the vCPU registers. The ROM is not
 * saved: gmvm builds it again.
 *
 * Saving happens at a step boundary, with the vCPU stopped at the
 * GMVM_PORT_STEP exit. That exit is completed first (KVM_RUN with
 * immediate_exit), so the saved instruction pointer is past the out and
 * the restored guest does not announce the step twice.
 *
 * Restoring builds the same layout, then fills RAM from FILE: copied into
 * the new RAM (copy), or by replacing each RAM window, in one transaction,
 * with a mapping the snapshot layer fills on first touch (lazy, through
 * userfaultfd): the gm_kvm binding moves the KVM slots to the new backing
 * in the same commit. FILE.vcpu is untrusted input: every field is checked.
 */
#include "gmvm.h"
#include "cpl3.h"

#include <guestmem/snapshot.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define VCPU_MAGIC   "GMVMVCPU"
#define VCPU_VERSION 1
#define MAX_WINDOWS  16

/* The numbers FILE.vcpu holds after its magic, in this order, as little-endian u64. */
enum {
	F_VERSION,
	F_REGS_SIZE,
	F_SREGS_SIZE,
	F_LOW_RAM,
	F_HIGH_RAM,
	F_PROTECT_TEXT,
	F_LOAD_GPA,
	F_TEXT_END,
	F_STEP,
	F_STEPS_SEEN,
	F_CHECKS,
	F_CHECKS_FAILED,
	F_ROM_REFUSED,
	F_TEXT_REFUSED,
	F_UNASSIGNED,
	F_DB_ADDR,
	F_DB_LEN,
	F_DB_RESULT,
	F_DB_STATUS,
	F_DB_RINGS,
	F_HP_PLUGS,
	F_HP_UNPLUGS,
	F_HP_STATUS,
	F_COUNT
};

struct vcpu_file {
	uint64_t f[F_COUNT];
	struct kvm_regs regs;
	struct kvm_sregs sregs;
};

static char *vcpu_path(const char *path)
{
	size_t n = strlen(path);
	char *p = malloc(n + sizeof(".vcpu"));

	if (p != NULL) {
		memcpy(p, path, n);
		memcpy(p + n, ".vcpu", sizeof(".vcpu"));
	}
	return p;
}

/* A view of the RAM windows only, one region per window: what FILE holds. */
static int ram_view(struct gmvm *vm, struct gm_memory **out)
{
	struct gm_window_info w[MAX_WINDOWS] = {GM_OPTS(gm_window_info)}; /* w[0].sz: the stride */
	struct gm_region_spec specs[MAX_WINDOWS];
	size_t n, nspecs = 0;
	int ret;

	ret = gm_space_windows(vm->mem_space, w, MAX_WINDOWS, &n);
	if (ret < 0)
		return ret;
	for (size_t i = 0; i < n; i++) {
		if (w[i].kind != GM_WINDOW_RAM)
			continue;
		specs[nspecs] = (struct gm_region_spec){
		    .gpa = w[i].gpa,
		    .size = w[i].size,
		    .mapping = w[i].mapping,
		    .offset = w[i].offset,
		};
		nspecs++;
	}
	return gm_memory_new(specs, nspecs, out);
}

static int write_vcpu_file(struct gmvm *vm, const char *path, const struct vcpu_file *v)
{
	unsigned char buf[8 + 8 * F_COUNT + sizeof(v->regs) + sizeof(v->sregs)];
	FILE *f;

	memcpy(buf, VCPU_MAGIC, 8);
	for (unsigned i = 0; i < F_COUNT; i++)
		for (unsigned b = 0; b < 8; b++)
			buf[8 + 8 * i + b] = (unsigned char)(v->f[i] >> (8 * b));
	memcpy(buf + 8 + 8 * F_COUNT, &v->regs, sizeof(v->regs));
	memcpy(buf + 8 + 8 * F_COUNT + sizeof(v->regs), &v->sregs, sizeof(v->sregs));
	(void)vm;
	f = fopen(path, "wb");
	if (f == NULL)
		return -errno;
	if (fwrite(buf, sizeof(buf), 1, f) != 1) {
		fclose(f);
		return -EIO;
	}
	return fclose(f) == 0 ? 0 : -errno;
}

int gmvm_snapshot_save(struct gmvm *vm)
{
	struct gm_memory *ram = NULL;
	struct vcpu_file v;
	char *vpath;
	int ret;

	/* Complete the step's port write, so RIP is past it (and nothing is pending). */
	vm->run->immediate_exit = 1;
	if (cpl3_kvm_run(vm->vcpu_fd) == 0 || errno != EINTR) {
		vm->run->immediate_exit = 0;
		return gmvm_fail(-EIO, "snapshot: could not complete the pending exit");
	}
	vm->run->immediate_exit = 0;

	memset(&v, 0, sizeof(v));
	if (ioctl(vm->vcpu_fd, KVM_GET_REGS, &v.regs) < 0 ||
	    ioctl(vm->vcpu_fd, KVM_GET_SREGS, &v.sregs) < 0)
		return gmvm_fail(-errno, "snapshot: vCPU registers: %s", strerror(errno));
	v.f[F_VERSION] = VCPU_VERSION;
	v.f[F_REGS_SIZE] = sizeof(v.regs);
	v.f[F_SREGS_SIZE] = sizeof(v.sregs);
	v.f[F_LOW_RAM] = vm->opts.low_ram;
	v.f[F_HIGH_RAM] = vm->opts.high_ram;
	v.f[F_PROTECT_TEXT] = vm->opts.protect_text;
	v.f[F_LOAD_GPA] = vm->payload.load_gpa;
	v.f[F_TEXT_END] = vm->payload.text_end_gpa;
	v.f[F_STEP] = vm->control.step;
	v.f[F_STEPS_SEEN] = vm->control.steps_seen;
	v.f[F_CHECKS] = vm->control.checks;
	v.f[F_CHECKS_FAILED] = vm->control.checks_failed;
	v.f[F_ROM_REFUSED] = vm->rom_refused;
	v.f[F_TEXT_REFUSED] = vm->text_refused;
	v.f[F_UNASSIGNED] = vm->unassigned;
	v.f[F_DB_ADDR] = vm->doorbell.addr;
	v.f[F_DB_LEN] = vm->doorbell.len;
	v.f[F_DB_RESULT] = vm->doorbell.result;
	v.f[F_DB_STATUS] = vm->doorbell.status;
	v.f[F_DB_RINGS] = vm->doorbell.rings;
	v.f[F_HP_PLUGS] = vm->hotplug.plugs;
	v.f[F_HP_UNPLUGS] = vm->hotplug.unplugs;
	v.f[F_HP_STATUS] = vm->hotplug.status;

	ret = ram_view(vm, &ram);
	if (ret == 0)
		ret = gm_snapshot_save(ram, vm->opts.snapshot, NULL);
	gm_memory_put(ram);
	if (ret < 0)
		return gmvm_fail(ret, "snapshot: saving RAM to %s: %s", vm->opts.snapshot,
				 strerror(-ret));
	vpath = vcpu_path(vm->opts.snapshot);
	ret = vpath ? write_vcpu_file(vm, vpath, &v) : -ENOMEM;
	if (ret < 0)
		gmvm_fail(ret, "snapshot: %s: %s", vpath ? vpath : "", strerror(-ret));
	else
		gmvm_say("snapshot: saved at step %u (%s): RAM in %s, vCPU and devices in %s",
			 vm->control.step, gmvm_step_name(vm->control.step), vm->opts.snapshot,
			 vpath);
	free(vpath);
	if (ret == 0)
		vm->control.snapshot_taken = true;
	return ret;
}

static struct vcpu_file saved; /* read by gmvm_snapshot_read_vcpu(), used by _restore() */

int gmvm_snapshot_read_vcpu(struct gmvm *vm, const char *path)
{
	unsigned char buf[8 + 8 * F_COUNT + sizeof(saved.regs) + sizeof(saved.sregs) + 1];
	char *vpath = vcpu_path(path);
	struct gmvm_opts *o = &vm->opts;
	size_t n = 0;
	FILE *f;

	if (vpath == NULL)
		return gmvm_fail(-ENOMEM, "--restore: out of memory");
	f = fopen(vpath, "rb");
	if (f != NULL) {
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
	}
	if (f == NULL) {
		int err = errno;

		gmvm_fail(-err, "--restore: %s: %s", vpath, strerror(err));
		free(vpath);
		return -err;
	}
	if (n != sizeof(buf) - 1 || memcmp(buf, VCPU_MAGIC, 8) != 0) {
		gmvm_fail(-EINVAL, "--restore: %s is not a gmvm vCPU file", vpath);
		free(vpath);
		return -EINVAL;
	}
	free(vpath);
	for (unsigned i = 0; i < F_COUNT; i++)
		saved.f[i] = gmvm_le64(buf + 8 + 8 * i);
	memcpy(&saved.regs, buf + 8 + 8 * F_COUNT, sizeof(saved.regs));
	memcpy(&saved.sregs, buf + 8 + 8 * F_COUNT + sizeof(saved.regs), sizeof(saved.sregs));

	/* Hostile input: every number is checked before it shapes the machine. */
	if (saved.f[F_VERSION] != VCPU_VERSION || saved.f[F_REGS_SIZE] != sizeof(saved.regs) ||
	    saved.f[F_SREGS_SIZE] != sizeof(saved.sregs) || saved.f[F_LOW_RAM] < GMVM_LOW_RAM_MIN ||
	    saved.f[F_LOW_RAM] > GMVM_LOW_RAM_MAX || saved.f[F_LOW_RAM] % (2u << 20) != 0 ||
	    saved.f[F_HIGH_RAM] < GMVM_HIGH_RAM_MIN || saved.f[F_HIGH_RAM] > (64ull << 30) ||
	    saved.f[F_HIGH_RAM] % (2u << 20) != 0 || saved.f[F_PROTECT_TEXT] > 1 ||
	    saved.f[F_LOAD_GPA] != GMVM_LOAD_GPA || saved.f[F_TEXT_END] <= GMVM_LOAD_GPA ||
	    saved.f[F_TEXT_END] > GMVM_RAM_SPLIT_GPA || saved.f[F_TEXT_END] % GM_PAGE_SIZE != 0 ||
	    saved.f[F_STEP] < GMVM_STEP_HELLO || saved.f[F_STEP] >= GMVM_STEP_DONE ||
	    saved.f[F_STEPS_SEEN] > saved.f[F_STEP]) {
		gmvm_fail(-EINVAL, "--restore: %s.vcpu: inconsistent contents", path);
		return -EINVAL;
	}
	o->low_ram = saved.f[F_LOW_RAM];
	o->high_ram = saved.f[F_HIGH_RAM];
	o->protect_text = saved.f[F_PROTECT_TEXT] != 0;
	vm->payload.load_gpa = saved.f[F_LOAD_GPA];
	vm->payload.text_end_gpa = saved.f[F_TEXT_END];
	vm->control.step = (unsigned)saved.f[F_STEP];
	vm->control.steps_seen = (unsigned)saved.f[F_STEPS_SEEN];
	vm->control.checks = (unsigned)saved.f[F_CHECKS];
	vm->control.checks_failed = (unsigned)saved.f[F_CHECKS_FAILED];
	vm->rom_refused = (unsigned)saved.f[F_ROM_REFUSED];
	vm->text_refused = (unsigned)saved.f[F_TEXT_REFUSED];
	vm->unassigned = (unsigned)saved.f[F_UNASSIGNED];
	vm->doorbell.addr = saved.f[F_DB_ADDR];
	vm->doorbell.len = saved.f[F_DB_LEN];
	vm->doorbell.result = saved.f[F_DB_RESULT];
	vm->doorbell.status = saved.f[F_DB_STATUS];
	vm->doorbell.rings = saved.f[F_DB_RINGS];
	vm->hotplug.plugs = (unsigned)saved.f[F_HP_PLUGS];
	vm->hotplug.unplugs = (unsigned)saved.f[F_HP_UNPLUGS];
	vm->hotplug.status = (uint32_t)saved.f[F_HP_STATUS];
	return 0;
}

/* Lazy: swap every RAM window for one backed by the snapshot, in one transaction. */
static int swap_in_lazy_ram(struct gmvm *vm)
{
	struct gm_window **windows[] = {&vm->ram_low0, &vm->ram_low1, &vm->ram_high};
	struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);
	int ret;

	ret = gm_snapshot_describe(vm->snap, &info);
	if (ret == 0 && info.nregions != sizeof(windows) / sizeof(windows[0]))
		ret = -ESTALE;
	gm_space_begin(vm->mem_space);
	for (uint32_t i = 0; ret == 0 && i < info.nregions; i++) {
		struct gm_snapshot_region r = GM_OPTS(gm_snapshot_region);
		struct gm_window_info w = GM_OPTS(gm_window_info);
		struct gm_mapping *m = NULL;
		size_t len;

		ret = gm_snapshot_region(vm->snap, i, &r);
		if (ret == 0)
			ret = gm_space_window_info(vm->mem_space, *windows[i], &w);
		if (ret == 0 && (w.gpa != r.gpa || w.size != r.size))
			ret = -ESTALE; /* the file's layout is not this machine's */
		if (ret == 0)
			ret = gm_u64_to_size(r.size, &len);
		if (ret == 0)
			ret = gm_snapshot_map_region(vm->snap, i, GM_RESTORE_LAZY, &m);
		if (ret == 0)
			ret = gm_space_remove(vm->mem_space, *windows[i]);
		if (ret == 0)
			ret = gm_space_add_ram_mapping(vm->mem_space, r.gpa, r.size, m, 0,
						       windows[i]);
		gm_mapping_put(m); /* the window holds its own reference */
	}
	/* All or nothing: a failed edit dooms the transaction and commit returns its error. */
	if (ret == 0)
		ret = gm_space_commit(vm->mem_space);
	else
		gm_space_abort(vm->mem_space);
	return ret;
}

int gmvm_snapshot_restore(struct gmvm *vm)
{
	const char *path = vm->opts.restore;
	const bool lazy = vm->opts.restore_lazy;
	struct gm_memory *ram = NULL;
	int ret;

	ret = gm_snapshot_open(path, 0, &vm->snap);
	if (ret < 0)
		return gmvm_fail(ret, "--restore: %s: %s", path, strerror(-ret));
	if (lazy) {
		ret = gm_snapshot_lazy_supported();
		if (ret == 0)
			ret = swap_in_lazy_ram(vm);
	} else {
		ret = ram_view(vm, &ram);
		if (ret == 0)
			ret = gm_snapshot_restore(vm->snap, ram, NULL);
		gm_memory_put(ram);
	}
	if (ret < 0)
		return gmvm_fail(ret, "--restore: %s (%s): %s", path, lazy ? "lazy" : "copy",
				 strerror(-ret));
	ret = gmvm_cpu_restore(vm, &saved.regs, &saved.sregs);
	if (ret < 0)
		return gmvm_fail(ret, "--restore: vCPU registers: %s", strerror(-ret));
	gmvm_say("restore: RAM from %s (%s), vCPU and devices at step %u (%s)", path,
		 lazy ? "lazily, on first touch" : "copied", vm->control.step,
		 gmvm_step_name(vm->control.step));
	return 0;
}

void gmvm_snapshot_close(struct gmvm *vm)
{
	gm_snapshot_close(vm->snap);
	vm->snap = NULL;
}
