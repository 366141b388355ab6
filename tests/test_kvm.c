/* SPDX-License-Identifier: MIT */
/*
 * test_kvm.c - the KVM binding against real VMs: slots that follow the
 * space, the dirty log, and MMIO / port-I/O exits, with a tiny guest at
 * CPL 3 (tests/kvm_guest.h) on a real vCPU.
 *
 * Without a usable /dev/kvm every test prints "skipped: /dev/kvm not
 * usable (<reason>)" and skips.
 *
 * Guest layout of the fixture:
 *   0x000000  RAM 2 MiB: page tables at TABLES, code at CODE, data at DATA
 *   0x200000  ROM 64 KiB, byte i = (uint8_t)(i * 7 + 1)
 *   0x300000  MMIO device, 4 KiB ("mmio": reads return mmio.value)
 *   0x400000  reserved 1 MiB
 *   4 GiB     RAM 1 MiB
 * Port I/O: a device at 0x3f8 (8 ports) logging the bytes written, one at
 * 0x80 doing the same, and the "done" port DONE_PORT the guest writes last.
 */
#include "kvm_guest.h"

#include <guestmem/guestmem.h>
#include <guestmem/kvm.h>
#include <guestmem/space.h>

#include <fcntl.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmocka.h>

#define TABLES	  0x1000ull
#define CODE	  0x10000ull
#define DATA	  0x20000ull
#define UNTOUCHED 0x40000ull
#define ROM_GPA	  0x200000ull
#define ROM_SIZE  0x10000ull
#define MMIO_GPA  0x300000ull
#define RSV_GPA	  0x400000ull
#define HIGH_GPA  0x100000000ull
#define HIGH_SIZE 0x100000ull
#define DONE_PORT 0xf4
#define MAX_EXITS 64

struct dev {
	uint64_t value; /* what reads return */
	char log[64];	/* low byte of every write */
	size_t nlog;
	unsigned reads;
};

struct fixture {
	struct kg_vm vm;
	struct gm_space *mem, *io;
	struct gm_kvm *k;
	struct gm_window *ram, *rom, *high;
	struct dev mmio, serial, post;
	int errs[MAX_EXITS]; /* gm_kvm_handle_exit() result of each exit */
	unsigned nexits;
};

static int dev_read(void *opaque, uint64_t offset, unsigned size, uint64_t *val)
{
	struct dev *d = opaque;

	(void)offset;
	(void)size;
	d->reads++;
	*val = d->value;
	return 0;
}

static int dev_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	struct dev *d = opaque;

	(void)offset;
	(void)size;
	if (d->nlog < sizeof(d->log))
		d->log[d->nlog++] = (char)val;
	return 0;
}

static const struct gm_device_ops dev_ops =
    GM_OPTS_INIT(gm_device_ops, .name = "test", .read = dev_read, .write = dev_write,
		 .sizes = GM_ACCESS_ALL, .flags = GM_DEVICE_UNALIGNED);

/* Open a VM or skip the test; build the layout above and bind it. */
static void fixture_open(struct fixture *f)
{
	static uint8_t rom[ROM_SIZE];
	static uint8_t tables[KG_TABLES_SIZE];
	struct gm_window *w;
	char why[160];
	size_t i;

	memset(f, 0, sizeof(*f));
	if (kg_vm_open(&f->vm, why, sizeof(why)) != 0) {
		print_message("skipped: /dev/kvm not usable (%s)\n", why);
		skip();
	}
	for (i = 0; i < sizeof(rom); i++)
		rom[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(gm_space_new(GM_SPACE_MEMORY, &f->mem), 0);
	assert_int_equal(gm_space_new(GM_SPACE_PIO, &f->io), 0);
	assert_int_equal(gm_space_add_ram(f->mem, 0, 2u << 20, 0, 0, &f->ram), 0);
	assert_int_equal(gm_space_add_rom(f->mem, ROM_GPA, ROM_SIZE, rom, sizeof(rom), &f->rom), 0);
	assert_int_equal(gm_space_add_mmio(f->mem, MMIO_GPA, 0x1000, &dev_ops, &f->mmio, &w), 0);
	assert_int_equal(gm_space_add_reserved(f->mem, RSV_GPA, 1u << 20, "hole", &w), 0);
	assert_int_equal(gm_space_add_ram(f->mem, HIGH_GPA, HIGH_SIZE, 0, 0, &f->high), 0);
	assert_int_equal(gm_space_add_mmio(f->io, 0x3f8, 8, &dev_ops, &f->serial, &w), 0);
	assert_int_equal(gm_space_add_mmio(f->io, 0x80, 1, &dev_ops, &f->post, &w), 0);
	kg_build_tables(tables, TABLES);
	assert_int_equal(gm_space_write(f->mem, TABLES, tables, sizeof(tables)), 0);
	assert_int_equal(gm_kvm_new(f->vm.vm_fd, f->mem, f->io, &f->k), 0);
}

static void fixture_close(struct fixture *f)
{
	gm_kvm_free(f->k);
	kg_vm_close(&f->vm);
	gm_space_free(f->io);
	gm_space_free(f->mem);
}

/* Put @len bytes of code at CODE (ending in "out DONE_PORT, al") and make the vCPU. */
static void load_guest(struct fixture *f, uint8_t *code, uint8_t *end)
{
	kg_out_al(&end, DONE_PORT);
	assert_int_equal(gm_space_write(f->mem, CODE, code, (size_t)(end - code)), 0);
	assert_int_equal(kg_vcpu_create(&f->vm, TABLES, CODE, 0), 0);
}

/* Run until the guest writes DONE_PORT, completing every other exit through the binding. */
static void run_guest(struct fixture *f)
{
	struct kvm_run *run = f->vm.run;
	int reason;

	for (;;) {
		reason = kg_run(&f->vm);
		assert_true(reason >= 0);
		if (reason == KVM_EXIT_IO && run->io.port == DONE_PORT)
			return;
		if (reason != KVM_EXIT_IO && reason != KVM_EXIT_MMIO)
			fail_msg("unexpected exit reason %d", reason);
		assert_true(f->nexits < MAX_EXITS);
		f->errs[f->nexits++] = gm_kvm_handle_exit(f->k, run, f->vm.run_size);
	}
}

static struct gm_dirty *dirty_of(struct fixture *f, struct gm_window *w)
{
	struct gm_window_info info = GM_OPTS(gm_window_info);

	assert_int_equal(gm_space_window_info(f->mem, w, &info), 0);
	assert_non_null(info.dirty);
	return info.dirty;
}

/* KVM_GET_DIRTY_LOG on slot @id: 0 or -errno. */
static int get_dirty_log(struct fixture *f, uint32_t id)
{
	static uint64_t bits[1024];
	struct kvm_dirty_log log;

	memset(&log, 0, sizeof(log));
	log.slot = id;
	log.dirty_bitmap = bits;
	return ioctl(f->vm.vm_fd, KVM_GET_DIRTY_LOG, &log) < 0 ? -errno : 0;
}

static void every_ram_and_rom_region_gets_a_slot(void **state)
{
	struct fixture f;
	struct gm_kvm_slot s = GM_OPTS(gm_kvm_slot);
	size_t i;

	(void)state;
	fixture_open(&f);
	assert_int_equal(gm_kvm_slot_count(f.k), 3); /* RAM, ROM, high RAM; no MMIO, no hole */
	assert_int_equal(gm_kvm_slot(f.k, 0, &s), 0);
	assert_int_equal(s.gpa, 0);
	assert_int_equal(s.size, 2u << 20);
	assert_int_equal(s.flags, 0);
	assert_int_equal(gm_kvm_slot(f.k, 1, &s), 0);
	assert_int_equal(s.gpa, ROM_GPA);
	assert_int_equal(s.size, ROM_SIZE);
	assert_int_equal(s.flags, KVM_MEM_READONLY);
	assert_int_equal(gm_kvm_slot(f.k, 2, &s), 0);
	assert_int_equal(s.gpa, HIGH_GPA);
	assert_int_equal(s.size, HIGH_SIZE);
	assert_int_equal(s.flags, 0);
	assert_int_equal(gm_kvm_slot(f.k, 3, &s), -ENOENT);
	assert_int_equal(gm_kvm_slot_find(f.k, MMIO_GPA, &s), -ENOENT);
	assert_int_equal(gm_kvm_slot_find(f.k, HIGH_GPA + HIGH_SIZE - 1, &s), 0);
	assert_int_equal(s.gpa, HIGH_GPA);

	/* KVM has them: every writable slot answers KVM_GET_DIRTY_LOG once logging. */
	assert_int_equal(gm_kvm_dirty_log_start(f.k), 0);
	assert_true(gm_kvm_dirty_log_active(f.k));
	for (i = 0; i < 3; i++) {
		assert_int_equal(gm_kvm_slot(f.k, i, &s), 0);
		if (s.gpa == ROM_GPA) {
			/* Read-only slots are not logged: the guest cannot dirty them. */
			assert_int_equal(s.flags, KVM_MEM_READONLY);
			assert_int_equal(get_dirty_log(&f, s.slot), -ENOENT);
			continue;
		}
		assert_int_equal(s.flags, KVM_MEM_LOG_DIRTY_PAGES);
		assert_int_equal(get_dirty_log(&f, s.slot), 0);
	}
	fixture_close(&f);
}

static void read_only_part_of_ram_becomes_its_own_read_only_slot(void **state)
{
	struct fixture f;
	struct gm_kvm_slot s = GM_OPTS(gm_kvm_slot);

	(void)state;
	fixture_open(&f);
	assert_int_equal(gm_space_protect(f.mem, f.ram, 0x100000, 0x10000, GM_PROT_READ), 0);
	assert_int_equal(gm_kvm_slot_count(f.k), 5);
	assert_int_equal(gm_kvm_slot_find(f.k, 0x100000, &s), 0);
	assert_int_equal(s.gpa, 0x100000);
	assert_int_equal(s.size, 0x10000);
	assert_int_equal(s.flags, KVM_MEM_READONLY);
	assert_int_equal(gm_kvm_slot_find(f.k, 0x110000, &s), 0);
	assert_int_equal(s.gpa, 0x110000);
	assert_int_equal(s.flags, 0);
	/* Writable again: the three pieces merge back into one slot. */
	assert_int_equal(gm_space_protect(f.mem, f.ram, 0x100000, 0x10000, GM_PROT_ALL), 0);
	assert_int_equal(gm_kvm_slot_count(f.k), 3);
	assert_int_equal(gm_kvm_slot_find(f.k, 0x100000, &s), 0);
	assert_int_equal(s.gpa, 0);
	assert_int_equal(s.size, 2u << 20);
	fixture_close(&f);
}

static void guest_write_shows_in_dirty_bitmap(void **state)
{
	uint8_t code[256], *p = code;
	struct fixture f;
	struct gm_dirty *low, *high;
	uint64_t v, bits[8];

	(void)state;
	fixture_open(&f);
	low = dirty_of(&f, f.ram);
	high = dirty_of(&f, f.high);
	assert_int_equal(gm_kvm_dirty_log_start(f.k), 0);
	kg_mov_rax_imm(&p, 0x1122334455667788ull);
	kg_store_rax(&p, DATA + 8);
	kg_store_rax(&p, HIGH_GPA + 0x3000);
	load_guest(&f, code, p);
	run_guest(&f);
	assert_int_equal(f.nexits, 0);
	assert_int_equal(gm_space_read(f.mem, DATA + 8, &v, sizeof(v)), 0);
	assert_int_equal(v, 0x1122334455667788ull);

	assert_int_equal(gm_kvm_dirty_log_sync(f.k), 0);
	assert_true(gm_dirty_test(low, DATA / GM_PAGE_SIZE));
	assert_false(gm_dirty_test(low, UNTOUCHED / GM_PAGE_SIZE));
	assert_true(gm_dirty_test(high, 3));
	assert_int_equal(gm_dirty_count(high), 1);
	/* Read and clear: gone from the bitmap, and KVM's log was cleared by the sync. */
	assert_int_equal(gm_dirty_collect(high, 0, bits, 4), 0);
	assert_int_equal(bits[0], 1u << 3);
	assert_int_equal(gm_kvm_dirty_log_sync(f.k), 0);
	assert_int_equal(gm_dirty_count(high), 0);
	assert_int_equal(gm_kvm_dirty_log_stop(f.k), 0);
	assert_false(gm_kvm_dirty_log_active(f.k));
	fixture_close(&f);
}

static void stopping_the_log_keeps_what_the_guest_dirtied(void **state)
{
	uint8_t code[256], *p = code;
	struct fixture f;
	struct gm_kvm_slot s = GM_OPTS(gm_kvm_slot);
	struct gm_dirty *d;

	(void)state;
	fixture_open(&f);
	d = dirty_of(&f, f.high);
	assert_int_equal(gm_kvm_dirty_log_stop(f.k), 0); /* not logging: nothing to do */
	assert_int_equal(gm_kvm_dirty_log_start(f.k), 0);
	assert_int_equal(gm_kvm_dirty_log_start(f.k), 0); /* already logging */
	kg_mov_rax_imm(&p, 1);
	kg_store_rax(&p, HIGH_GPA + 0x9000);
	load_guest(&f, code, p);
	run_guest(&f);
	/* No sync: stop fetches the log before KVM drops it with the flag. */
	assert_int_equal(gm_kvm_dirty_log_stop(f.k), 0);
	assert_true(gm_dirty_test(d, 9));
	assert_int_equal(gm_dirty_count(d), 1);
	assert_int_equal(gm_kvm_slot_find(f.k, HIGH_GPA, &s), 0);
	assert_int_equal(s.flags, 0);
	assert_int_equal(get_dirty_log(&f, s.slot), -ENOENT);
	assert_int_equal(gm_kvm_dirty_log_sync(f.k), 0); /* not logging: nothing to do */
	fixture_close(&f);
}

static void guest_write_to_rom_exits_and_is_refused(void **state)
{
	uint8_t code[256], *p = code, b;
	struct fixture f;

	(void)state;
	fixture_open(&f);
	kg_mov_rax_imm(&p, 0x99);
	kg_store_al(&p, ROM_GPA + 0x10);
	load_guest(&f, code, p);
	run_guest(&f);
	assert_int_equal(f.nexits, 1);
	assert_int_equal(f.errs[0], -EACCES);
	assert_int_equal(gm_space_read(f.mem, ROM_GPA + 0x10, &b, 1), 0);
	assert_int_equal(b, (uint8_t)(0x10 * 7 + 1));
	fixture_close(&f);
}

/*
 * High RAM in 64 KiB blocks whose unplugged ones read as zeros
 * (GM_BLOCKS_ZERO): the guest reads zeros from an unplugged block and its
 * write there exits and is refused, as for a ROM; the block stays zero.
 */
static void guest_reads_zeros_from_a_zero_block_and_its_write_is_refused(void **state)
{
	uint8_t code[256], *p = code, b = 0x11;
	struct fixture f;
	struct gm_kvm_slot s = GM_OPTS(gm_kvm_slot);
	uint64_t v = 0x1111, block = HIGH_GPA + 0x10000;

	(void)state;
	fixture_open(&f);
	assert_int_equal(gm_space_write(f.mem, DATA, &v, sizeof(v)), 0);
	assert_int_equal(gm_space_write(f.mem, block + 0x10, &b, 1), 0);
	assert_int_equal(
	    gm_space_set_blocks(f.mem, f.high, 0x10000, GM_BLOCKS_PLUGGED | GM_BLOCKS_ZERO), 0);
	assert_int_equal(gm_space_unplug(f.mem, f.high, 0x10000, 0x10000), 0);
	assert_int_equal(gm_kvm_slot_find(f.k, block, &s), 0);
	assert_int_equal(s.flags, KVM_MEM_READONLY);
	kg_load_rax(&p, block + 0x10);
	kg_store_rax(&p, DATA);
	kg_mov_rax_imm(&p, 0x99);
	kg_store_al(&p, block + 0x20);
	load_guest(&f, code, p);
	run_guest(&f);
	assert_int_equal(f.nexits, 1);
	assert_int_equal(f.errs[0], -EACCES);
	assert_int_equal(gm_space_read(f.mem, DATA, &v, sizeof(v)), 0);
	assert_int_equal(v, 0);
	assert_int_equal(gm_space_read(f.mem, block + 0x20, &b, 1), 0);
	assert_int_equal(b, 0);
	fixture_close(&f);
}

static void guest_mmio_read_is_answered_by_device(void **state)
{
	uint8_t code[256], *p = code;
	struct fixture f;
	uint64_t v;

	(void)state;
	fixture_open(&f);
	f.mmio.value = 0x0123456789abcdefull;
	kg_load_rax(&p, MMIO_GPA + 0x40);
	kg_store_rax(&p, DATA);
	load_guest(&f, code, p);
	run_guest(&f);
	assert_int_equal(f.nexits, 1);
	assert_int_equal(f.errs[0], 0);
	assert_int_equal(f.mmio.reads, 1);
	assert_int_equal(gm_space_read(f.mem, DATA, &v, sizeof(v)), 0);
	assert_int_equal(v, 0x0123456789abcdefull);
	fixture_close(&f);
}

static void guest_port_out_and_rep_outsb_reach_devices(void **state)
{
	uint8_t code[256], *p = code;
	struct fixture f;

	(void)state;
	fixture_open(&f);
	assert_int_equal(gm_space_write(f.mem, DATA, "hello", 5), 0);
	kg_mov_rax_imm(&p, 'P');
	kg_out_al(&p, 0x80);
	kg_rep_outsb(&p, DATA, 5, 0x3f8);
	load_guest(&f, code, p);
	run_guest(&f);
	assert_int_equal(f.post.nlog, 1);
	assert_int_equal(f.post.log[0], 'P');
	assert_int_equal(f.serial.nlog, 5);
	assert_memory_equal(f.serial.log, "hello", 5);
	while (f.nexits > 0)
		assert_int_equal(f.errs[--f.nexits], 0);
	fixture_close(&f);
}

static void removing_a_region_removes_its_slot_and_frees_the_id(void **state)
{
	struct fixture f;
	struct gm_window *w;
	struct gm_kvm_slot s = GM_OPTS(gm_kvm_slot);
	uint32_t id;

	(void)state;
	fixture_open(&f);
	assert_int_equal(gm_kvm_dirty_log_start(f.k), 0);
	assert_int_equal(gm_space_add_ram(f.mem, 0x800000, 0x100000, 0, 0, &w), 0);
	assert_int_equal(gm_kvm_slot_count(f.k), 4);
	assert_int_equal(gm_kvm_slot_find(f.k, 0x800000, &s), 0);
	id = s.slot;
	assert_int_equal(get_dirty_log(&f, id), 0);
	assert_int_equal(gm_space_remove(f.mem, w), 0);
	assert_int_equal(gm_kvm_slot_count(f.k), 3);
	assert_int_equal(gm_kvm_slot_find(f.k, 0x800000, &s), -ENOENT);
	assert_int_equal(get_dirty_log(&f, id), -ENOENT);
	/* The next region gets the freed id. */
	assert_int_equal(gm_space_add_ram(f.mem, 0xa00000, 0x100000, 0, 0, &w), 0);
	assert_int_equal(gm_kvm_slot_find(f.k, 0xa00000, &s), 0);
	assert_int_equal(s.slot, id);
	fixture_close(&f);
}

static void moved_region_gets_a_new_slot_and_keeps_guest_dirty_bits(void **state)
{
	uint8_t code[256], *p = code;
	struct fixture f;
	struct gm_kvm_slot s = GM_OPTS(gm_kvm_slot);
	struct gm_dirty *d;

	(void)state;
	fixture_open(&f);
	d = dirty_of(&f, f.high);
	assert_int_equal(gm_kvm_dirty_log_start(f.k), 0);
	kg_mov_rax_imm(&p, 7);
	kg_store_rax(&p, HIGH_GPA + 0x5000);
	load_guest(&f, code, p);
	run_guest(&f);
	/* No sync: the move itself must fetch the log before deleting the slot. */
	assert_int_equal(gm_space_move(f.mem, f.high, 2 * HIGH_GPA), 0);
	assert_int_equal(gm_kvm_slot_find(f.k, HIGH_GPA, &s), -ENOENT);
	assert_int_equal(gm_kvm_slot_find(f.k, 2 * HIGH_GPA, &s), 0);
	assert_int_equal(s.size, HIGH_SIZE);
	assert_int_equal(s.flags, KVM_MEM_LOG_DIRTY_PAGES);
	assert_true(gm_dirty_test(d, 5));
	assert_int_equal(gm_dirty_count(d), 1);
	fixture_close(&f);
}

static void slot_limit_refuses_the_commit_with_enospc(void **state)
{
	struct fixture f;
	struct gm_window *w;
	struct gm_window_info info = GM_OPTS(gm_window_info);
	struct gm_kvm_slot s = GM_OPTS(gm_kvm_slot);

	(void)state;
	fixture_open(&f);
	/* The default is what KVM says it has. */
	assert_int_equal(gm_kvm_slot_limit(f.k),
			 ioctl(f.vm.vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS));
	assert_int_equal(gm_kvm_set_slot_limit(f.k, 0), -EINVAL);
	assert_int_equal(gm_kvm_set_slot_limit(f.k, gm_kvm_slot_limit(f.k) + 1), -EINVAL);
	assert_int_equal(gm_kvm_set_slot_limit(f.k, 2), -EBUSY); /* id 2 is in use */
	assert_int_equal(gm_kvm_set_slot_limit(f.k, 4), 0);
	assert_int_equal(gm_kvm_slot_limit(f.k), 4);
	assert_int_equal(gm_space_add_ram(f.mem, 0x800000, 0x100000, 0, 0, &w), 0);
	assert_int_equal(gm_kvm_slot_count(f.k), 4);
	assert_int_equal(gm_space_add_ram(f.mem, 0xa00000, 0x100000, 0, 0, &w), -ENOSPC);
	assert_int_equal(gm_space_find(f.mem, 0xa00000, &info), -EFAULT);
	assert_int_equal(gm_kvm_slot_count(f.k), 4);
	assert_int_equal(gm_kvm_slot_find(f.k, 0xa00000, &s), -ENOENT);
	fixture_close(&f);
}

static void kvm_refusal_fails_the_commit_and_undoes_earlier_slots(void **state)
{
	struct fixture f;
	struct gm_window *w;
	struct gm_window_info info = GM_OPTS(gm_window_info);
	struct gm_kvm_slot s = GM_OPTS(gm_kvm_slot);
	struct kvm_userspace_memory_region own;
	static uint8_t own_mem[0x10000] __attribute__((aligned(4096)));

	(void)state;
	fixture_open(&f);
	/* The VMM keeps id 9 for a slot of its own at 0x900000, which guestmem does not know. */
	assert_int_equal(gm_kvm_set_slot_limit(f.k, 9), 0);
	memset(&own, 0, sizeof(own));
	own.slot = 9;
	own.guest_phys_addr = 0x900000;
	own.memory_size = sizeof(own_mem);
	own.userspace_addr = (uintptr_t)own_mem;
	assert_int_equal(ioctl(f.vm.vm_fd, KVM_SET_USER_MEMORY_REGION, &own), 0);

	/* One commit: a fine region, then one KVM refuses (it overlaps slot 9). */
	assert_int_equal(gm_space_begin(f.mem), 0);
	assert_int_equal(gm_space_add_ram(f.mem, 0x800000, 0x100000, 0, 0, &w), 0);
	assert_int_equal(gm_space_add_ram(f.mem, 0x900000, 0x100000, 0, 0, &w), 0);
	assert_int_equal(gm_space_commit(f.mem), -EEXIST);
	assert_int_equal(gm_space_find(f.mem, 0x800000, &info), -EFAULT);
	assert_int_equal(gm_kvm_slot_count(f.k), 3);
	assert_int_equal(gm_kvm_slot_find(f.k, 0x800000, &s), -ENOENT);
	/* The slot made for 0x800000 really is gone from KVM: its id is free to use. */
	assert_int_equal(gm_space_add_ram(f.mem, 0x800000, 0x100000, 0, 0, &w), 0);
	assert_int_equal(gm_kvm_slot_find(f.k, 0x800000, &s), 0);
	assert_int_equal(s.slot, 3);
	fixture_close(&f);
}

static int veto_prepare(void *opaque, struct gm_space *s, const struct gm_space_change *changes,
			size_t n)
{
	(void)s;
	(void)changes;
	(void)n;
	return *(int *)opaque;
}

static void later_listener_veto_puts_the_slots_back(void **state)
{
	static const struct gm_space_listener_ops veto_ops =
	    GM_OPTS_INIT(gm_space_listener_ops, .prepare = veto_prepare);
	struct fixture f;
	struct gm_window *w;
	struct gm_kvm_slot before = GM_OPTS(gm_kvm_slot), after = GM_OPTS(gm_kvm_slot);
	int veto = 0;

	(void)state;
	fixture_open(&f);
	assert_int_equal(gm_space_listener_add(f.mem, &veto_ops, &veto, NULL), 0);
	assert_int_equal(gm_kvm_dirty_log_start(f.k), 0);
	assert_int_equal(gm_kvm_slot_find(f.k, HIGH_GPA, &before), 0);
	veto = -EPERM;
	assert_int_equal(gm_space_add_ram(f.mem, 0x800000, 0x100000, 0, 0, &w), -EPERM);
	assert_int_equal(gm_kvm_slot_count(f.k), 3);
	assert_int_equal(gm_space_remove(f.mem, f.high), -EPERM);
	assert_int_equal(gm_space_protect(f.mem, f.ram, 0, 0x10000, GM_PROT_READ), -EPERM);
	assert_int_equal(gm_kvm_slot_count(f.k), 3);
	/* The high slot was deleted and created again, with the same id, logging, in KVM. */
	assert_int_equal(gm_kvm_slot_find(f.k, HIGH_GPA, &after), 0);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(get_dirty_log(&f, after.slot), 0);
	assert_int_equal(gm_kvm_slot_find(f.k, 0, &after), 0);
	assert_int_equal(after.size, 2u << 20);
	assert_int_equal(after.flags, KVM_MEM_LOG_DIRTY_PAGES);
	veto = 0;
	assert_int_equal(gm_space_remove(f.mem, f.high), 0);
	assert_int_equal(gm_kvm_slot_count(f.k), 2);
	fixture_close(&f);
}

/* ---------------------------------------------------------------------- */
/* Exit handlers fed hand-made kvm_run structures (no vCPU)               */
/* ---------------------------------------------------------------------- */

#define RUN_SIZE 8192u

static struct kvm_run *io_run(uint8_t dir, uint8_t size, uint16_t port, uint32_t count,
			      uint64_t offset)
{
	static union {
		struct kvm_run run;
		unsigned char bytes[RUN_SIZE];
	} u;

	memset(&u, 0, sizeof(u));
	u.run.exit_reason = KVM_EXIT_IO;
	u.run.io.direction = dir;
	u.run.io.size = size;
	u.run.io.port = port;
	u.run.io.count = count;
	u.run.io.data_offset = offset;
	return &u.run;
}

static void string_port_io_handles_every_element(void **state)
{
	struct fixture f;
	struct kvm_run *run;
	unsigned char *data;

	(void)state;
	fixture_open(&f);
	run = io_run(KVM_EXIT_IO_OUT, 1, 0x3f8, 5, 4096);
	memcpy((unsigned char *)run + 4096, "world", 5);
	assert_int_equal(gm_kvm_handle_exit(f.k, run, RUN_SIZE), 0);
	assert_int_equal(f.serial.nlog, 5);
	assert_memory_equal(f.serial.log, "world", 5);

	f.serial.value = 0xabcd;
	run = io_run(KVM_EXIT_IO_IN, 2, 0x3f8, 3, 4096);
	assert_int_equal(gm_kvm_handle_io(f.k, run, RUN_SIZE), 0);
	data = (unsigned char *)run + 4096;
	assert_int_equal(f.serial.reads, 3);
	assert_memory_equal(data, "\xcd\xab\xcd\xab\xcd\xab", 6);
	fixture_close(&f);
}

static void port_io_data_outside_the_run_mapping_is_refused(void **state)
{
	struct fixture f;

	(void)state;
	fixture_open(&f);
	/* Ends one byte past the mapping. */
	assert_int_equal(
	    gm_kvm_handle_io(f.k, io_run(KVM_EXIT_IO_OUT, 4, 0x3f8, 1025, 4096), RUN_SIZE),
	    -ERANGE);
	assert_int_equal(
	    gm_kvm_handle_io(f.k, io_run(KVM_EXIT_IO_OUT, 1, 0x3f8, 1, RUN_SIZE), RUN_SIZE),
	    -ERANGE);
	/* An offset that wraps when the data length is added. */
	assert_int_equal(
	    gm_kvm_handle_io(f.k, io_run(KVM_EXIT_IO_OUT, 4, 0x3f8, 2, UINT64_MAX - 3), RUN_SIZE),
	    -ERANGE);
	/* Inside the kvm_run header itself. */
	assert_int_equal(gm_kvm_handle_io(f.k, io_run(KVM_EXIT_IO_OUT, 1, 0x3f8, 1, 8), RUN_SIZE),
			 -ERANGE);
	assert_int_equal(f.serial.nlog, 0);
	/* Exactly up to the end is fine. */
	assert_int_equal(
	    gm_kvm_handle_io(f.k, io_run(KVM_EXIT_IO_OUT, 4, 0x3f8, 1024, 4096), RUN_SIZE), 0);
	assert_int_equal(f.serial.nlog, 64); /* the device's log is full */
	fixture_close(&f);
}

static void malformed_exits_are_refused(void **state)
{
	struct fixture f;
	struct kvm_run *run;
	struct gm_kvm *noio;

	(void)state;
	fixture_open(&f);
	assert_int_equal(
	    gm_kvm_handle_io(f.k, io_run(KVM_EXIT_IO_OUT, 3, 0x3f8, 1, 4096), RUN_SIZE), -EINVAL);
	assert_int_equal(
	    gm_kvm_handle_io(f.k, io_run(KVM_EXIT_IO_OUT, 8, 0x3f8, 1, 4096), RUN_SIZE), -EINVAL);
	assert_int_equal(
	    gm_kvm_handle_io(f.k, io_run(KVM_EXIT_IO_OUT, 1, 0x3f8, 0, 4096), RUN_SIZE), -EINVAL);
	assert_int_equal(gm_kvm_handle_io(f.k, io_run(2, 1, 0x3f8, 1, 4096), RUN_SIZE), -EINVAL);
	run = io_run(KVM_EXIT_IO_OUT, 1, 0x3f8, 1, 4096);
	run->exit_reason = KVM_EXIT_HLT;
	assert_int_equal(gm_kvm_handle_exit(f.k, run, RUN_SIZE), -ENOTSUP);
	assert_int_equal(gm_kvm_handle_io(f.k, run, RUN_SIZE), -EINVAL);
	assert_int_equal(gm_kvm_handle_mmio(f.k, run), -EINVAL);

	run->exit_reason = KVM_EXIT_MMIO;
	run->mmio.phys_addr = MMIO_GPA;
	run->mmio.len = 0;
	assert_int_equal(gm_kvm_handle_mmio(f.k, run), -EINVAL);
	run->mmio.len = 9;
	assert_int_equal(gm_kvm_handle_mmio(f.k, run), -EINVAL);
	assert_int_equal(f.mmio.reads, 0);

	/* A read of a hole fails and reads as all-ones, so the guest can go on. */
	run->mmio.phys_addr = RSV_GPA;
	run->mmio.len = 4;
	assert_int_equal(gm_kvm_handle_mmio(f.k, run), -EFAULT);
	assert_memory_equal(run->mmio.data, "\xff\xff\xff\xff", 4);
	/* No device at the port: -EFAULT, all-ones. */
	run = io_run(KVM_EXIT_IO_IN, 1, 0x60, 1, 4096);
	assert_int_equal(gm_kvm_handle_io(f.k, run, RUN_SIZE), -EFAULT);
	assert_int_equal(((unsigned char *)run)[4096], 0xff);

	/* A binding without a port-I/O space. */
	gm_kvm_free(f.k);
	assert_int_equal(gm_kvm_new(f.vm.vm_fd, f.mem, NULL, &noio), 0);
	f.k = noio;
	assert_int_equal(
	    gm_kvm_handle_io(f.k, io_run(KVM_EXIT_IO_OUT, 1, 0x3f8, 1, 4096), RUN_SIZE), -ENODEV);
	fixture_close(&f);
}

static void bad_arguments_to_new_are_refused(void **state)
{
	struct fixture f;
	struct gm_kvm *k;
	int null_fd;

	(void)state;
	fixture_open(&f);
	assert_int_equal(gm_kvm_new(f.vm.vm_fd, f.mem, f.io, NULL), -EINVAL);
	assert_int_equal(gm_kvm_new(f.vm.vm_fd, NULL, f.io, &k), -EINVAL);
	assert_int_equal(gm_kvm_new(-1, f.mem, f.io, &k), -EINVAL);
	/* /dev/kvm itself is not a VM: KVM refuses the first slot (-EINVAL from its ioctl). */
	assert_int_equal(gm_kvm_new(f.vm.kvm_fd, f.mem, f.io, &k), -EINVAL);
	/* Not KVM at all. */
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(null_fd >= 0);
	assert_int_equal(gm_kvm_new(null_fd, f.mem, f.io, &k), -ENOTTY);
	close(null_fd);
	fixture_close(&f);
}

/* Needs no /dev/kvm: a NULL binding is -EINVAL, or 0 / false for the queries. */
static void null_binding_is_einval_and_queries_are_zero(void **state)
{
	struct gm_kvm_slot slot = GM_OPTS(gm_kvm_slot, .slot = 77);
	uint8_t run[4096] = {0};

	(void)state;
	assert_int_equal(gm_kvm_set_slot_limit(NULL, 1), -EINVAL);
	assert_int_equal(gm_kvm_slot(NULL, 0, &slot), -EINVAL);
	assert_int_equal(gm_kvm_slot_find(NULL, 0, &slot), -EINVAL);
	assert_int_equal(slot.slot, 77);
	assert_int_equal(gm_kvm_dirty_log_start(NULL), -EINVAL);
	assert_int_equal(gm_kvm_dirty_log_stop(NULL), -EINVAL);
	assert_int_equal(gm_kvm_dirty_log_sync(NULL), -EINVAL);
	assert_int_equal(gm_kvm_handle_mmio(NULL, (struct kvm_run *)(void *)run), -EINVAL);
	assert_int_equal(gm_kvm_handle_io(NULL, (struct kvm_run *)(void *)run, sizeof(run)),
			 -EINVAL);
	assert_int_equal(gm_kvm_handle_exit(NULL, (struct kvm_run *)(void *)run, sizeof(run)),
			 -EINVAL);
	assert_int_equal(gm_kvm_slot_limit(NULL), 0);
	assert_int_equal(gm_kvm_slot_count(NULL), 0);
	assert_false(gm_kvm_dirty_log_active(NULL));
	gm_kvm_free(NULL);
}

static void slot_queries_and_exits_reject_null_pointers(void **state)
{
	struct fixture f;

	(void)state;
	fixture_open(&f);
	assert_int_equal(gm_kvm_slot(f.k, 0, NULL), -EINVAL);
	assert_int_equal(gm_kvm_slot_find(f.k, 0, NULL), -EINVAL);
	assert_int_equal(gm_kvm_handle_mmio(f.k, NULL), -EINVAL);
	assert_int_equal(gm_kvm_handle_io(f.k, NULL, RUN_SIZE), -EINVAL);
	assert_int_equal(gm_kvm_handle_exit(f.k, NULL, RUN_SIZE), -EINVAL);
	assert_int_equal(f.mmio.reads, 0);
	fixture_close(&f);
}

/* The binding registers a listener, which an open transaction of this thread forbids. */
static void new_with_a_transaction_open_is_edeadlk(void **state)
{
	struct fixture f;
	struct gm_kvm *k = NULL;
	size_t before;

	(void)state;
	fixture_open(&f);
	before = gm_kvm_slot_count(f.k);
	assert_int_equal(gm_space_begin(f.mem), 0);
	assert_int_equal(gm_kvm_new(f.vm.vm_fd, f.mem, f.io, &k), -EDEADLK);
	assert_null(k);
	assert_int_equal(gm_space_commit(f.mem), 0);
	assert_int_equal(gm_kvm_slot_count(f.k), before);
	fixture_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_ram_and_rom_region_gets_a_slot),
	    cmocka_unit_test(read_only_part_of_ram_becomes_its_own_read_only_slot),
	    cmocka_unit_test(guest_write_shows_in_dirty_bitmap),
	    cmocka_unit_test(stopping_the_log_keeps_what_the_guest_dirtied),
	    cmocka_unit_test(guest_write_to_rom_exits_and_is_refused),
	    cmocka_unit_test(guest_reads_zeros_from_a_zero_block_and_its_write_is_refused),
	    cmocka_unit_test(guest_mmio_read_is_answered_by_device),
	    cmocka_unit_test(guest_port_out_and_rep_outsb_reach_devices),
	    cmocka_unit_test(removing_a_region_removes_its_slot_and_frees_the_id),
	    cmocka_unit_test(moved_region_gets_a_new_slot_and_keeps_guest_dirty_bits),
	    cmocka_unit_test(slot_limit_refuses_the_commit_with_enospc),
	    cmocka_unit_test(kvm_refusal_fails_the_commit_and_undoes_earlier_slots),
	    cmocka_unit_test(later_listener_veto_puts_the_slots_back),
	    cmocka_unit_test(string_port_io_handles_every_element),
	    cmocka_unit_test(port_io_data_outside_the_run_mapping_is_refused),
	    cmocka_unit_test(malformed_exits_are_refused),
	    cmocka_unit_test(bad_arguments_to_new_are_refused),
	    cmocka_unit_test(null_binding_is_einval_and_queries_are_zero),
	    cmocka_unit_test(slot_queries_and_exits_reject_null_pointers),
	    cmocka_unit_test(new_with_a_transaction_open_is_edeadlk),
	};
	int ret;

	gm_rcu_register_thread();
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	gm_rcu_unregister_thread();
	return ret;
}
