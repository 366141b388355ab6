/* SPDX-License-Identifier: MIT */
/*
 * test_space_plug.c - blocks of a RAM window plugged and unplugged
 * (gm_space_set_blocks(), gm_space_plug(), gm_space_unplug()): every layer
 * agrees on which blocks exist. An unplugged block is a hole for the view
 * and for gm_space_read()/write() (-EFAULT), its host memory is gone
 * (mincore), it has no dirty pages, listeners see the region split (and a
 * vetoed commit changes nothing, memory included), the KVM binding's slots
 * follow where /dev/kvm works, a snapshot stores nothing for it and a
 * restore leaves it unplugged. Plugged again it reads zeros.
 *
 * With GM_BLOCKS_ZERO an unplugged block reads as zeros instead: a
 * read-only region of the window's zero mapping for the view, listeners
 * and KVM (a read-only slot), -EACCES for writes on every path, still no
 * host memory, no dirty pages, nothing saved and nothing restored there.
 *
 * Under qemu-user (the armhf run) mincore() describes the emulator's
 * memory: the checks that host memory went are skipped there (the rest
 * runs); the KVM part needs /dev/kvm and an x86 build.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <guestmem/guestmem.h>

#include "kernel_probe.h"
#include "scratch_dir.h"
#include "space/space-internal.h"

#define MiB ((uint64_t)1 << 20)

static size_t page;
static char dir[256];

static bool under_emulator(void)
{
	const char *emu = getenv("GM_EMULATOR");

	return emu != NULL && emu[0] != 0;
}

/* Bytes of [@p, @p + @len) resident now, or -1 where that cannot be seen (qemu-user). */
static int64_t resident(void *p, size_t len)
{
	unsigned char *vec;
	int64_t n = 0;

	if (under_emulator())
		return -1;
	vec = malloc(len / page);
	assert_non_null(vec);
	assert_int_equal(mincore(p, len, vec), 0);
	for (size_t i = 0; i < len / page; i++)
		n += vec[i] & 1;
	free(vec);
	return n * (int64_t)page;
}

/*
 * Kilobytes the kernel counts as resident in the mapping that starts at
 * @start (/proc/self/smaps' Rss: the shared zero page is not counted), or
 * -1 where that cannot be seen (qemu-user).
 */
static int64_t smaps_rss_kb(const void *start)
{
	char line[512];
	FILE *f;
	bool in = false;
	int64_t kb = -1;

	if (under_emulator())
		return -1;
	f = fopen("/proc/self/smaps", "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		long long n;

		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = lo == (unsigned long)(uintptr_t)start;
		else if (in && sscanf(line, "Rss: %lld kB", &n) == 1) {
			kb = n;
			break;
		}
	}
	fclose(f);
	assert_true(kb >= 0);
	return kb;
}

/* A space with 16 MiB of RAM at 0 in 2 MiB blocks, all plugged, filled with 0x5a. */
struct guest {
	struct gm_space *s;
	struct gm_window *w;
	unsigned char *host;
};

static void guest_new_flags(struct guest *g, uint64_t size, uint64_t capacity, unsigned flags)
{
	struct gm_window_info info = GM_OPTS(gm_window_info);
	unsigned char buf[4096];

	memset(buf, 0x5a, sizeof(buf));
	assert_int_equal(gm_space_new(0, &g->s), 0);
	assert_int_equal(gm_space_add_ram(g->s, 0, size, capacity, 0, &g->w), 0);
	assert_int_equal(gm_space_window_info(g->s, g->w, &info), 0);
	g->host = info.host;
	assert_int_equal(gm_space_set_blocks(g->s, g->w, 2 * MiB, flags), 0);
	for (uint64_t off = 0; off < size; off += sizeof(buf))
		assert_int_equal(gm_space_write(g->s, off, buf, sizeof(buf)), 0);
}

static void guest_new(struct guest *g, uint64_t size, uint64_t capacity)
{
	guest_new_flags(g, size, capacity, GM_BLOCKS_PLUGGED);
}

static size_t region_count(struct gm_space *s)
{
	struct gm_memory *m;
	size_t n;

	assert_int_equal(gm_space_memory_get(s, &m), 0);
	n = gm_memory_region_count(m);
	gm_memory_put(m);
	return n;
}

static int view_read(struct gm_space *s, gm_gpa_t gpa, void *buf, size_t len)
{
	struct gm_memory *m;
	int err;

	assert_int_equal(gm_space_memory_get(s, &m), 0);
	err = gm_read(m, gpa, buf, len);
	gm_memory_put(m);
	return err;
}

static void unplugged_block_is_a_hole_without_memory(void **state)
{
	struct guest g;
	struct gm_window_info info = GM_OPTS(gm_window_info);
	unsigned char b = 0;
	char dump[1024];

	(void)state;
	guest_new(&g, 16 * MiB, 0);
	assert_int_equal(region_count(g.s), 1);
	assert_true(resident(g.host + 2 * MiB, 2 * MiB) != 0);

	assert_int_equal(gm_space_unplug(g.s, g.w, 2 * MiB, 2 * MiB), 0);
	assert_int_equal(gm_space_plugged(g.s, g.w, 3 * MiB), 0);
	assert_int_equal(gm_space_plugged(g.s, g.w, 1 * MiB), 1);
	assert_int_equal(region_count(g.s), 2);
	/* A hole for every path into guest memory. */
	assert_int_equal(gm_space_read(g.s, 3 * MiB, &b, 1), -EFAULT);
	assert_int_equal(gm_space_write(g.s, 2 * MiB, &b, 1), -EFAULT);
	assert_int_equal(view_read(g.s, 2 * MiB, &b, 1), -EFAULT);
	/* An access that crosses into the hole fails whole. */
	assert_int_equal(gm_space_read(g.s, 2 * MiB - 1, &b, 2), -EFAULT);
	assert_int_equal(gm_space_read(g.s, 4 * MiB, &b, 1), 0);
	assert_int_equal(b, 0x5a);
	assert_int_equal(view_read(g.s, 2 * MiB - 1, &b, 1), 0);
	/* Its host memory went back; the neighbours' stayed. */
	if (resident(g.host, page) >= 0) {
		assert_int_equal(resident(g.host + 2 * MiB, 2 * MiB), 0);
		assert_int_equal(resident(g.host + 4 * MiB, 2 * MiB), 2 * MiB);
	}
	assert_int_equal(gm_space_window_info(g.s, g.w, &info), 0);
	assert_int_equal(info.block_size, 2 * MiB);
	assert_int_equal(info.plugged_size, 14 * MiB);
	assert_int_equal(gm_space_dump(g.s, dump, sizeof(dump), NULL), 0);
	assert_non_null(strstr(dump, " blocks=2 MiB plugged=7/8\n"));

	/* Plugged back: RAM again, reading zeros. */
	assert_int_equal(gm_space_plug(g.s, g.w, 2 * MiB, 2 * MiB), 0);
	assert_int_equal(region_count(g.s), 1);
	assert_int_equal(gm_space_read(g.s, 3 * MiB, &b, 1), 0);
	assert_int_equal(b, 0);
	gm_space_free(g.s);
}

struct recorder {
	struct gm_space_change ch[8];
	size_t n, prepares, commits;
	int veto;
};

static int rec_prepare(void *opaque, struct gm_space *s, const struct gm_space_change *ch, size_t n)
{
	struct recorder *r = opaque;

	(void)s;
	r->prepares++;
	if (r->veto)
		return r->veto;
	r->n = n < 8 ? n : 8;
	memcpy(r->ch, ch, r->n * sizeof(*ch));
	return 0;
}

static void rec_commit(void *opaque, struct gm_space *s, const struct gm_space_change *ch, size_t n)
{
	struct recorder *r = opaque;

	(void)s, (void)ch, (void)n;
	r->commits++;
}

static void plug_and_unplug_are_transactions_listeners_see(void **state)
{
	struct guest g;
	struct recorder r = {0};
	struct gm_space_listener *l;
	unsigned char b;

	(void)state;
	guest_new(&g, 16 * MiB, 0);
	assert_int_equal(
	    gm_space_listener_add(
		g.s, &GM_OPTS(gm_space_listener_ops, .prepare = rec_prepare, .commit = rec_commit),
		&r, &l),
	    0);
	r = (struct recorder){0}; /* the add announced the current regions */
	/* Two unplugs in one transaction: one commit, one announcement. */
	assert_int_equal(gm_space_begin(g.s), 0);
	assert_int_equal(gm_space_unplug(g.s, g.w, 4 * MiB, 2 * MiB), 0);
	assert_int_equal(gm_space_unplug(g.s, g.w, 10 * MiB, 4 * MiB), 0);
	/* Staged only: still RAM for the data path. */
	assert_int_equal(gm_space_plugged(g.s, g.w, 4 * MiB), 1);
	assert_int_equal(gm_space_commit(g.s), 0);
	assert_int_equal(r.prepares, 1);
	assert_int_equal(r.commits, 1);
	assert_int_equal(r.n, 4);
	assert_int_equal(r.ch[0].kind, GM_CHANGE_REMOVE);
	assert_int_equal(r.ch[0].region.size, 16 * MiB);
	for (size_t i = 1; i < 4; i++)
		assert_int_equal(r.ch[i].kind, GM_CHANGE_ADD);
	assert_int_equal(r.ch[1].region.gpa, 0);
	assert_int_equal(r.ch[1].region.size, 4 * MiB);
	assert_int_equal(r.ch[2].region.gpa, 6 * MiB);
	assert_int_equal(r.ch[2].region.size, 4 * MiB);
	assert_int_equal(r.ch[3].region.gpa, 14 * MiB);
	assert_int_equal(r.ch[3].region.size, 2 * MiB);

	/* A veto: nothing changes, not even the host memory. */
	r.veto = -EPERM;
	assert_int_equal(gm_space_unplug(g.s, g.w, 0, 2 * MiB), -EPERM);
	assert_int_equal(gm_space_plugged(g.s, g.w, 0), 1);
	assert_int_equal(gm_space_read(g.s, 1 * MiB, &b, 1), 0);
	assert_int_equal(b, 0x5a);
	if (resident(g.host, page) >= 0)
		assert_int_equal(resident(g.host, 2 * MiB), 2 * MiB);

	/* An aborted unplug: the same. */
	r.veto = 0;
	assert_int_equal(gm_space_begin(g.s), 0);
	assert_int_equal(gm_space_unplug(g.s, g.w, 0, 2 * MiB), 0);
	assert_int_equal(gm_space_abort(g.s), 0);
	assert_int_equal(gm_space_plugged(g.s, g.w, 0), 1);
	assert_int_equal(gm_space_read(g.s, 1 * MiB, &b, 1), 0);
	assert_int_equal(b, 0x5a);
	assert_true(gm__space_invariants_ok(g.s));
	gm_space_free(g.s);
}

static void unplugged_blocks_have_no_dirty_pages(void **state)
{
	struct guest g;
	struct gm_window_info info = GM_OPTS(gm_window_info);
	unsigned char buf[4096] = {1};
	uint64_t pages_per_block = 2 * MiB / GM_PAGE_SIZE;

	(void)state;
	guest_new(&g, 8 * MiB, 0);
	assert_int_equal(gm_space_dirty_enable(g.s, true), 0);
	for (uint64_t off = 0; off < 8 * MiB; off += sizeof(buf))
		assert_int_equal(gm_space_write(g.s, off, buf, sizeof(buf)), 0);
	assert_int_equal(gm_space_window_info(g.s, g.w, &info), 0);
	assert_int_equal(gm_dirty_count(info.dirty), 8 * MiB / GM_PAGE_SIZE);

	assert_int_equal(gm_space_unplug(g.s, g.w, 2 * MiB, 2 * MiB), 0);
	assert_int_equal(gm_dirty_count(info.dirty), 6 * MiB / GM_PAGE_SIZE);
	for (uint64_t p = pages_per_block; p < 2 * pages_per_block; p++)
		assert_false(gm_dirty_test(info.dirty, p));
	assert_true(gm_dirty_test(info.dirty, pages_per_block - 1));
	assert_true(gm_dirty_test(info.dirty, 2 * pages_per_block));

	/* Plugged back it reads zeros, which is a change to carry. */
	assert_int_equal(gm_space_plug(g.s, g.w, 2 * MiB, 2 * MiB), 0);
	assert_int_equal(gm_dirty_count(info.dirty), 8 * MiB / GM_PAGE_SIZE);
	gm_space_free(g.s);
}

static void blocks_start_unplugged_and_follow_a_resize(void **state)
{
	struct gm_space *s;
	struct gm_window *w;
	unsigned char b = 0;

	(void)state;
	assert_int_equal(gm_space_new(0, &s), 0);
	assert_int_equal(gm_space_add_ram(s, 0, 4 * MiB, 16 * MiB, GM_MAP_NORESERVE, &w), 0);
	assert_int_equal(gm_space_set_blocks(s, w, 2 * MiB, 0), 0);
	assert_int_equal(region_count(s), 0);
	assert_int_equal(gm_space_read(s, 0, &b, 1), -EFAULT);
	/* Plug past the current size: RAM only once a resize reaches it. */
	assert_int_equal(gm_space_plug(s, w, 2 * MiB, 6 * MiB), 0);
	assert_int_equal(region_count(s), 1);
	assert_int_equal(gm_space_read(s, 0, &b, 1), -EFAULT);
	assert_int_equal(gm_space_read(s, 3 * MiB, &b, 1), 0);
	assert_int_equal(gm_space_read(s, 5 * MiB, &b, 1), -EFAULT);
	assert_int_equal(gm_space_resize(s, w, 12 * MiB), 0);
	assert_int_equal(gm_space_read(s, 7 * MiB, &b, 1), 0);
	assert_int_equal(gm_space_read(s, 9 * MiB, &b, 1), -EFAULT);
	/* A protection run and the blocks cut the window together. */
	assert_int_equal(gm_space_protect(s, w, 4 * MiB, 2 * MiB, GM_PROT_NONE), 0);
	assert_int_equal(region_count(s), 2);
	assert_true(gm__space_invariants_ok(s));
	gm_space_free(s);
}

static void bad_blocks_are_refused(void **state)
{
	struct gm_space *s;
	struct gm_window *w, *rom, *priv;
	struct gm_mapping *m;
	char path[300];
	static const char fw[8] = "fw";
	int fd;

	(void)state;
	assert_int_equal(gm_space_new(0, &s), 0);
	assert_int_equal(gm_space_add_ram(s, 0, 12 * MiB, 0, 0, &w), 0);
	assert_int_equal(gm_space_add_rom(s, 64 * MiB, 64 * 1024, fw, sizeof(fw), &rom), 0);
	assert_int_equal(gm_space_set_blocks(s, w, 3 * MiB, GM_BLOCKS_PLUGGED),
			 -EINVAL); /* not a power of 2 */
	assert_int_equal(gm_space_set_blocks(s, w, 8 * MiB, GM_BLOCKS_PLUGGED),
			 -EINVAL); /* does not divide */
	assert_int_equal(gm_space_set_blocks(s, w, 1024, GM_BLOCKS_PLUGGED),
			 -EINVAL); /* below a page */
	assert_int_equal(gm_space_set_blocks(s, rom, 4096, GM_BLOCKS_PLUGGED),
			 -EINVAL);				      /* not RAM */
	assert_int_equal(gm_space_unplug(s, w, 0, 4 * MiB), -EINVAL); /* no blocks yet */
	assert_int_equal(gm_space_set_blocks(NULL, w, 4 * MiB, GM_BLOCKS_PLUGGED), -EINVAL);
	assert_int_equal(gm_space_set_blocks(s, w, 4 * MiB, GM_BLOCKS_PLUGGED), 0);
	assert_int_equal(gm_space_set_blocks(s, w, 4 * MiB, GM_BLOCKS_PLUGGED), -EBUSY);
	assert_int_equal(gm_space_unplug(s, w, 2 * MiB, 4 * MiB), -EINVAL);
	assert_int_equal(gm_space_unplug(s, w, 0, 2 * MiB), -EINVAL);
	assert_int_equal(gm_space_unplug(s, w, 0, 0), -EINVAL);
	assert_int_equal(gm_space_unplug(s, w, 8 * MiB, 8 * MiB), -EINVAL);
	assert_int_equal(gm_space_unplug(s, w, UINT64_MAX - 4 * MiB + 1, 8 * MiB), -EINVAL);
	assert_int_equal(gm_space_plugged(s, w, 12 * MiB), -EINVAL);
	assert_int_equal(gm_space_plugged(s, rom, 0), -EINVAL);
	assert_int_equal(gm_space_remove(s, w), 0);
	assert_int_equal(gm_space_add_ram(s, 0, 12 * MiB, 0, 0, &w), 0);
	assert_int_equal(gm_space_set_blocks(s, w, 4 * MiB, GM_BLOCKS_PLUGGED | (1u << 2)),
			 -EINVAL);
	assert_int_equal(gm_space_set_blocks(s, w, 4 * MiB, GM_BLOCKS_ZERO), 0);

	/* A private mapping of a file cannot give memory back. */
	snprintf(path, sizeof(path), "%s/ram", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4 * (off_t)MiB), 0);
	assert_int_equal(gm_mapping_new_fd(fd, 0, 4 * MiB, 0, &m), 0);
	close(fd);
	assert_int_equal(gm_space_add_ram_mapping(s, 32 * MiB, 4 * MiB, m, 0, &priv), 0);
	gm_mapping_put(m);
	assert_int_equal(gm_space_set_blocks(s, priv, 2 * MiB, GM_BLOCKS_PLUGGED), -EOPNOTSUPP);
	gm_space_free(s);
}

static void shared_memfd_block_is_punched(void **state)
{
	struct gm_space *s;
	struct gm_window *w;
	struct gm_mapping *m;
	struct stat st;
	unsigned char buf[4096];

	(void)state;
	memset(buf, 7, sizeof(buf));
	assert_int_equal(gm_space_new(0, &s), 0);
	assert_int_equal(gm_mapping_new_memfd("plug", 8 * MiB, 0, &m), 0);
	assert_int_equal(gm_space_add_ram_mapping(s, 0, 8 * MiB, m, 0, &w), 0);
	for (uint64_t off = 0; off < 8 * MiB; off += sizeof(buf))
		assert_int_equal(gm_space_write(s, off, buf, sizeof(buf)), 0);
	assert_int_equal(gm_space_set_blocks(s, w, 2 * MiB, GM_BLOCKS_PLUGGED), 0);
	assert_int_equal(gm_space_unplug(s, w, 4 * MiB, 4 * MiB), 0);
	assert_int_equal(fstat(gm_mapping_fd(m), &st), 0);
	assert_int_equal((uint64_t)st.st_blocks * 512u, 4 * MiB);
	/* Another process mapping the memfd sees zeros there too. */
	assert_int_equal(((unsigned char *)gm_mapping_host(m))[5 * MiB], 0);
	gm_mapping_put(m);
	gm_space_free(s);
}

static void snapshot_stores_nothing_for_unplugged_blocks(void **state)
{
	struct guest g, back;
	struct gm_snapshot *snap;
	struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);
	char path[300];
	unsigned char b;

	(void)state;
	guest_new(&g, 16 * MiB, 0);
	assert_int_equal(gm_space_unplug(g.s, g.w, 0, 12 * MiB), 0);
	snprintf(path, sizeof(path), "%s/plug.gms", dir);
	assert_int_equal(gm_snapshot_save_space(g.s, path, NULL), 0);
	assert_int_equal(gm_snapshot_open(path, 0, &snap), 0);
	assert_int_equal(gm_snapshot_describe(snap, &info), 0);
	assert_int_equal(info.nregions, 1);
	assert_int_equal(info.ram_size, 4 * MiB);
	assert_int_equal(info.data_pages, 4 * MiB / GM_PAGE_SIZE);

	/* Restored into a guest with the same blocks unplugged: they stay so. */
	guest_new(&back, 16 * MiB, 0);
	assert_int_equal(gm_space_unplug(back.s, back.w, 0, 12 * MiB), 0);
	memset(back.host + 12 * MiB, 0, 4 * MiB);
	assert_int_equal(gm_snapshot_restore_space(snap, back.s, NULL), 0);
	assert_int_equal(gm_space_read(back.s, 13 * MiB, &b, 1), 0);
	assert_int_equal(b, 0x5a);
	assert_int_equal(gm_space_plugged(back.s, back.w, 0), 0);
	if (resident(back.host, page) >= 0)
		assert_int_equal(resident(back.host, 12 * MiB), 0);
	gm_snapshot_close(snap);
	gm_space_free(back.s);
	gm_space_free(g.s);
}

static void kvm_slots_follow_the_blocks(void **state)
{
	struct guest g;
	struct gm_kvm *k;
	struct gm_kvm_slot slot = GM_OPTS(gm_kvm_slot);
	int kvm, vm, err;

	(void)state;
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		print_message("skipped: no /dev/kvm here\n");
		skip();
	}
	vm = ioctl(kvm, 0xAE01 /* KVM_CREATE_VM */, 0);
	if (vm < 0) {
		close(kvm);
		print_message(
		    "skipped: KVM_CREATE_VM failed here (no usable KVM, or qemu-user, which does not pass KVM ioctls on)\n");
		skip();
	}
	guest_new(&g, 16 * MiB, 0);
	err = gm_kvm_new(vm, g.s, NULL, &k);
	if (err == -ENOSYS) {
		gm_space_free(g.s);
		close(vm);
		close(kvm);
		print_message("skipped: this build has no KVM binding (not x86)\n");
		skip();
	}
	assert_int_equal(err, 0);
	assert_int_equal(gm_kvm_slot_count(k), 1);
	assert_int_equal(gm_space_unplug(g.s, g.w, 6 * MiB, 2 * MiB), 0);
	assert_int_equal(gm_kvm_slot_count(k), 2);
	assert_int_equal(gm_kvm_slot_find(k, 7 * MiB, &slot), -ENOENT);
	assert_int_equal(gm_kvm_slot_find(k, 9 * MiB, &slot), 0);
	assert_int_equal(slot.gpa, 8 * MiB);
	assert_int_equal(slot.size, 8 * MiB);
	assert_int_equal(gm_space_plug(g.s, g.w, 6 * MiB, 2 * MiB), 0);
	assert_int_equal(gm_kvm_slot_count(k), 1);
	gm_kvm_free(k);
	gm_space_free(g.s);
	close(vm);
	close(kvm);
}

/* The view's region holding @gpa. */
static void view_region(struct gm_space *s, gm_gpa_t gpa, struct gm_region_info *ri)
{
	struct gm_memory *m;

	assert_int_equal(gm_space_memory_get(s, &m), 0);
	assert_int_equal(gm_memory_find(m, gpa, ri), 0);
	gm_memory_put(m);
}

static void zero_block_reads_zeros_refuses_writes_and_costs_nothing(void **state)
{
	static unsigned char block[2 * MiB];
	struct guest g;
	struct gm_region_info ri = GM_OPTS(gm_region_info);
	struct gm_window_info info = GM_OPTS(gm_window_info);
	struct gm_memory *m;
	unsigned char b = 1, two[2] = {9, 9};
	uint64_t v = 1;
	char dump[1024];

	(void)state;
	guest_new_flags(&g, 16 * MiB, 0, GM_BLOCKS_PLUGGED | GM_BLOCKS_ZERO);
	assert_int_equal(gm_space_unplug(g.s, g.w, 2 * MiB, 2 * MiB), 0);
	assert_int_equal(gm_space_plugged(g.s, g.w, 3 * MiB), 0);
	assert_int_equal(region_count(g.s), 3);
	assert_true(gm__space_invariants_ok(g.s));

	/* gm_space_read()/write(): zeros, and -EACCES for every write touching it. */
	assert_int_equal(gm_space_read(g.s, 3 * MiB, &b, 1), 0);
	assert_int_equal(b, 0);
	assert_int_equal(gm_space_read(g.s, 2 * MiB - 1, two, 2), 0);
	assert_int_equal(two[0], 0x5a);
	assert_int_equal(two[1], 0);
	assert_int_equal(gm_space_write(g.s, 3 * MiB, &b, 1), -EACCES);
	two[0] = two[1] = 7;
	assert_int_equal(gm_space_write(g.s, 2 * MiB - 1, two, 2), -EACCES);
	assert_int_equal(gm_space_read(g.s, 2 * MiB - 1, &b, 1), 0);
	assert_int_equal(b, 0x5a); /* all or nothing */

	/* The view: a read-only zero region with no bitmap, on a read-only mapping. */
	view_region(g.s, 3 * MiB, &ri);
	assert_int_equal(ri.gpa, 2 * MiB);
	assert_int_equal(ri.size, 2 * MiB);
	assert_int_equal(ri.flags, GM_REGION_READONLY | GM_REGION_ZERO);
	assert_null(ri.dirty);
	assert_true(gm_mapping_flags(ri.mapping) & GM_MAP_READONLY);
	assert_ptr_not_equal(ri.host, g.host + 2 * MiB);
	assert_int_equal(gm_space_memory_get(g.s, &m), 0);
	memset(block, 1, sizeof(block));
	assert_int_equal(gm_read(m, 2 * MiB, block, sizeof(block)), 0);
	for (size_t i = 0; i < sizeof(block); i++)
		if (block[i])
			fail_msg("byte %zu of the zero block reads %u", i, block[i]);
	assert_int_equal(gm_read_u64(m, 3 * MiB, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(gm_write(m, 3 * MiB, &b, 1), -EACCES);
	assert_int_equal(gm_write_u64(m, 3 * MiB, 5), -EACCES);
	gm_memory_put(m);

	/*
	 * None of that read touched the window's own (discarded) memory, nor
	 * cost any: the zero block's reads map the shared zero page, except
	 * where the kernel gives a read of untouched anonymous memory a page
	 * of its own (kernel_probe.h), and there exactly the 2 MiB read.
	 */
	if (resident(g.host, page) >= 0) {
		assert_int_equal(smaps_rss_kb(gm_mapping_host(ri.mapping)),
				 kernel_reads_allocate_anon_pages() ? 2048 : 0);
		assert_int_equal(resident(g.host + 2 * MiB, 2 * MiB), 0);
		assert_int_equal(resident(g.host + 4 * MiB, 2 * MiB), 2 * MiB);
	}
	assert_int_equal(gm_space_window_info(g.s, g.w, &info), 0);
	assert_int_equal(info.plugged_size, 14 * MiB);
	assert_int_equal(gm_space_dump(g.s, dump, sizeof(dump), NULL), 0);
	assert_non_null(strstr(dump, " blocks=2 MiB plugged=7/8 unplugged=zero\n"));

	/* Plugged back: the window's memory again, zeroed and writable. */
	assert_int_equal(gm_space_plug(g.s, g.w, 2 * MiB, 2 * MiB), 0);
	assert_int_equal(region_count(g.s), 1);
	view_region(g.s, 3 * MiB, &ri);
	assert_int_equal(ri.flags, 0);
	assert_ptr_equal(ri.host, g.host);
	assert_int_equal(gm_space_read(g.s, 3 * MiB, &b, 1), 0);
	assert_int_equal(b, 0);
	b = 0x33;
	assert_int_equal(gm_space_write(g.s, 3 * MiB, &b, 1), 0);
	b = 0;
	assert_int_equal(view_read(g.s, 3 * MiB, &b, 1), 0);
	assert_int_equal(b, 0x33);
	assert_int_equal(g.host[3 * MiB], 0x33);
	assert_true(gm__space_invariants_ok(g.s));
	gm_space_free(g.s);
}

static void listeners_see_a_read_only_zero_region(void **state)
{
	struct guest g;
	struct recorder r = {0};
	struct gm_space_listener *l;

	(void)state;
	guest_new_flags(&g, 16 * MiB, 0, GM_BLOCKS_PLUGGED | GM_BLOCKS_ZERO);
	assert_int_equal(
	    gm_space_listener_add(
		g.s, &GM_OPTS(gm_space_listener_ops, .prepare = rec_prepare, .commit = rec_commit),
		&r, &l),
	    0);
	r = (struct recorder){0};
	assert_int_equal(gm_space_unplug(g.s, g.w, 4 * MiB, 2 * MiB), 0);
	assert_int_equal(r.n, 4);
	assert_int_equal(r.ch[0].kind, GM_CHANGE_REMOVE);
	assert_int_equal(r.ch[2].kind, GM_CHANGE_ADD);
	assert_int_equal(r.ch[2].region.gpa, 4 * MiB);
	assert_int_equal(r.ch[2].region.size, 2 * MiB);
	assert_int_equal(r.ch[2].region.flags, GM_REGION_READONLY | GM_REGION_ZERO);
	assert_int_equal(r.ch[2].region.prot, GM_PROT_READ | GM_PROT_EXEC);
	assert_null(r.ch[2].region.dirty);
	assert_int_equal(r.ch[1].region.flags, 0);
	assert_int_equal(r.ch[3].region.flags, 0);

	/* Plugged: the zero region goes, the window's memory comes, one region again. */
	r = (struct recorder){0};
	assert_int_equal(gm_space_plug(g.s, g.w, 4 * MiB, 2 * MiB), 0);
	assert_int_equal(r.n, 4);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(r.ch[i].kind, GM_CHANGE_REMOVE);
	assert_int_equal(r.ch[3].kind, GM_CHANGE_ADD);
	assert_int_equal(r.ch[3].region.size, 16 * MiB);
	assert_int_equal(r.ch[3].region.flags, 0);
	gm_space_free(g.s);
}

static void zero_block_has_no_dirty_pages(void **state)
{
	struct guest g;
	uint64_t bits[8 * MiB / GM_PAGE_SIZE / 64];
	struct gm_window_info info = GM_OPTS(gm_window_info);
	unsigned char b = 1;

	(void)state;
	guest_new_flags(&g, 8 * MiB, 0, GM_BLOCKS_PLUGGED | GM_BLOCKS_ZERO);
	assert_int_equal(gm_space_dirty_enable(g.s, true), 0);
	assert_int_equal(gm_space_window_info(g.s, g.w, &info), 0);
	for (uint64_t off = 0; off < 8 * MiB; off += GM_PAGE_SIZE)
		assert_int_equal(gm_space_write(g.s, off, &b, 1), 0);
	assert_int_equal(gm_space_unplug(g.s, g.w, 2 * MiB, 2 * MiB), 0);
	assert_int_equal(gm_dirty_count(info.dirty), 6 * MiB / GM_PAGE_SIZE);
	/* Refused writes and reads mark nothing. */
	assert_int_equal(gm_space_write(g.s, 3 * MiB, &b, 1), -EACCES);
	assert_int_equal(gm_space_read(g.s, 3 * MiB, &b, 1), 0);
	assert_int_equal(view_read(g.s, 3 * MiB, &b, 1), 0);
	assert_int_equal(gm_dirty_count(info.dirty), 6 * MiB / GM_PAGE_SIZE);
	for (uint64_t p = 2 * MiB / GM_PAGE_SIZE; p < 4 * MiB / GM_PAGE_SIZE; p++)
		assert_false(gm_dirty_test(info.dirty, p));
	/* A discard over the whole window marks its plugged pages only. */
	assert_int_equal(gm_dirty_collect(info.dirty, 0, bits, 8 * MiB / GM_PAGE_SIZE / 64), 0);
	assert_int_equal(gm_dirty_count(info.dirty), 0);
	assert_int_equal(gm_space_discard(g.s, 0, 8 * MiB, 0, NULL), 0);
	assert_int_equal(gm_dirty_count(info.dirty), 6 * MiB / GM_PAGE_SIZE);
	assert_false(gm_dirty_test(info.dirty, 3 * MiB / GM_PAGE_SIZE));
	assert_int_equal(gm_space_plug(g.s, g.w, 2 * MiB, 2 * MiB), 0);
	assert_int_equal(gm_dirty_count(info.dirty), 8 * MiB / GM_PAGE_SIZE);
	gm_space_free(g.s);
}

static void snapshot_neither_saves_nor_restores_zero_blocks(void **state)
{
	struct guest g, back;
	struct gm_snapshot *snap, *full;
	struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);
	char path[300], full_path[300];
	unsigned char b;

	(void)state;
	guest_new_flags(&g, 16 * MiB, 0, GM_BLOCKS_PLUGGED | GM_BLOCKS_ZERO);
	snprintf(full_path, sizeof(full_path), "%s/full.gms", dir);
	assert_int_equal(gm_snapshot_save_space(g.s, full_path, NULL), 0);
	assert_int_equal(gm_space_unplug(g.s, g.w, 0, 12 * MiB), 0);
	snprintf(path, sizeof(path), "%s/zero.gms", dir);
	assert_int_equal(gm_snapshot_save_space(g.s, path, NULL), 0);
	assert_int_equal(gm_snapshot_open(path, 0, &snap), 0);
	assert_int_equal(gm_snapshot_describe(snap, &info), 0);
	assert_int_equal(info.nregions, 1);
	assert_int_equal(info.ram_size, 4 * MiB);
	assert_int_equal(info.data_pages, 4 * MiB / GM_PAGE_SIZE);

	/* Into a guest with the same zero blocks: they stay unplugged, zero, without memory. */
	guest_new_flags(&back, 16 * MiB, 0, GM_BLOCKS_PLUGGED | GM_BLOCKS_ZERO);
	assert_int_equal(gm_space_unplug(back.s, back.w, 0, 12 * MiB), 0);
	memset(back.host + 12 * MiB, 0, 4 * MiB);
	assert_int_equal(gm_snapshot_restore_space(snap, back.s, NULL), 0);
	assert_int_equal(gm_space_read(back.s, 13 * MiB, &b, 1), 0);
	assert_int_equal(b, 0x5a);
	assert_int_equal(gm_space_read(back.s, 5 * MiB, &b, 1), 0);
	assert_int_equal(b, 0);
	assert_int_equal(gm_space_plugged(back.s, back.w, 0), 0);
	if (resident(back.host, page) >= 0)
		assert_int_equal(resident(back.host, 12 * MiB), 0);

	/* A file with data where the target reads zeros: refused before any byte moves. */
	assert_int_equal(gm_snapshot_open(full_path, 0, &full), 0);
	memset(back.host + 12 * MiB, 0, 4 * MiB);
	assert_int_equal(gm_snapshot_restore_space(full, back.s, NULL), -EACCES);
	assert_int_equal(gm_space_read(back.s, 13 * MiB, &b, 1), 0);
	assert_int_equal(b, 0);
	assert_int_equal(gm_space_read(back.s, 5 * MiB, &b, 1), 0);
	assert_int_equal(b, 0);
	gm_snapshot_close(full);
	gm_snapshot_close(snap);
	gm_space_free(back.s);
	gm_space_free(g.s);
}

static void kvm_slot_of_a_zero_block_is_read_only(void **state)
{
	struct guest g;
	struct gm_kvm *k;
	struct gm_kvm_slot slot = GM_OPTS(gm_kvm_slot);
	int kvm, vm, err;

	(void)state;
	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		print_message("skipped: no /dev/kvm here\n");
		skip();
	}
	vm = ioctl(kvm, 0xAE01 /* KVM_CREATE_VM */, 0);
	if (vm < 0) {
		close(kvm);
		print_message(
		    "skipped: KVM_CREATE_VM failed here (no usable KVM, or qemu-user, which does not pass KVM ioctls on)\n");
		skip();
	}
	guest_new_flags(&g, 16 * MiB, 0, GM_BLOCKS_PLUGGED | GM_BLOCKS_ZERO);
	err = gm_kvm_new(vm, g.s, NULL, &k);
	if (err == -ENOSYS) {
		gm_space_free(g.s);
		close(vm);
		close(kvm);
		print_message("skipped: this build has no KVM binding (not x86)\n");
		skip();
	}
	assert_int_equal(err, 0);
	assert_int_equal(gm_space_unplug(g.s, g.w, 6 * MiB, 2 * MiB), 0);
	assert_int_equal(gm_kvm_slot_count(k), 3);
	assert_int_equal(gm_kvm_slot_find(k, 7 * MiB, &slot), 0);
	assert_int_equal(slot.gpa, 6 * MiB);
	assert_int_equal(slot.size, 2 * MiB);
	assert_int_equal(slot.flags, 1u << 1 /* KVM_MEM_READONLY */);
	assert_ptr_not_equal(slot.host, g.host + 6 * MiB);
	assert_int_equal(gm_space_plug(g.s, g.w, 6 * MiB, 2 * MiB), 0);
	assert_int_equal(gm_kvm_slot_count(k), 1);
	assert_int_equal(gm_kvm_slot_find(k, 7 * MiB, &slot), 0);
	assert_int_equal(slot.flags, 0);
	assert_ptr_equal(slot.host, g.host);
	gm_kvm_free(k);
	gm_space_free(g.s);
	close(vm);
	close(kvm);
}

static int dir_setup(void **state)
{
	(void)state;
	return scratch_dir_make(dir, sizeof(dir), "plug");
}

static int dir_teardown(void **state)
{
	(void)state;
	return scratch_dir_remove(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(unplugged_block_is_a_hole_without_memory),
	    cmocka_unit_test(plug_and_unplug_are_transactions_listeners_see),
	    cmocka_unit_test(unplugged_blocks_have_no_dirty_pages),
	    cmocka_unit_test(blocks_start_unplugged_and_follow_a_resize),
	    cmocka_unit_test(bad_blocks_are_refused),
	    cmocka_unit_test(shared_memfd_block_is_punched),
	    cmocka_unit_test(snapshot_stores_nothing_for_unplugged_blocks),
	    cmocka_unit_test(kvm_slots_follow_the_blocks),
	    cmocka_unit_test(zero_block_reads_zeros_refuses_writes_and_costs_nothing),
	    cmocka_unit_test(listeners_see_a_read_only_zero_region),
	    cmocka_unit_test(zero_block_has_no_dirty_pages),
	    cmocka_unit_test(snapshot_neither_saves_nor_restores_zero_blocks),
	    cmocka_unit_test(kvm_slot_of_a_zero_block_is_read_only),
	};

	page = (size_t)sysconf(_SC_PAGESIZE);
	return cmocka_run_group_tests(tests, dir_setup, dir_teardown);
}
