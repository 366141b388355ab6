/* SPDX-License-Identifier: MIT */
/*
 * tests/test_space_windows.c - making a space and editing its windows:
 * adding RAM, ROM, MMIO and reserved windows (and each rejection with its
 * errno), remove, move and resize, protection (splits and merges of
 * regions, pages out of the view) and the dirty bitmap through edits.
 * Part of the test_space program (test_space.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <guestmem/space.h>

#include "space_helpers.h"

/* ---- creation ---- */

static void new_space_rejects_unknown_flags(void **state)
{
	struct gm_space *s = NULL;

	(void)state;
	assert_int_equal(gm_space_new(1u << 5, &s), -EINVAL);
	assert_null(s);
	assert_int_equal(gm_space_new(0, NULL), -EINVAL);
}

static void new_space_has_an_empty_view(void **state)
{
	struct gm_space *s = new_space(GM_SPACE_MEMORY);
	struct gm_memory *m;
	uint8_t b;

	(void)state;
	assert_int_equal(gm_space_generation(s), 0);
	gm_rcu_read_lock();
	m = gm_space_memory(s);
	assert_non_null(m);
	assert_int_equal(gm_memory_region_count(m), 0);
	assert_int_equal(gm_read(m, 0, &b, 1), -EFAULT);
	gm_rcu_read_unlock();
	assert_int_equal(gm_space_read(s, 0, &b, 1), -EFAULT);
	check(s);
	gm_space_free(s);
	gm_space_free(NULL);
}

/* ---- adding windows ---- */

static void add_ram_appears_in_the_view(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *w = add_ram(s, 1 * MiB, 2 * MiB);
	struct gm_window_info wi = GM_OPTS(gm_window_info);
	struct gm_region_info ri = GM_OPTS(gm_region_info);
	struct gm_memory *m;
	uint64_t v = 0;

	(void)state;
	assert_int_equal(gm_space_generation(s), 1);
	gm_rcu_read_lock();
	m = gm_space_memory(s);
	assert_int_equal(gm_memory_region_count(m), 1);
	assert_int_equal(gm_memory_region(m, 0, &ri), 0);
	assert_int_equal(ri.gpa, 1 * MiB);
	assert_int_equal(ri.size, 2 * MiB);
	assert_int_equal(ri.flags, 0);
	assert_int_equal(gm_write_u64(m, 1 * MiB + 8, 0x1122334455667788ull), 0);
	gm_rcu_read_unlock();
	assert_int_equal(gm_space_read(s, 1 * MiB + 8, &v, 8), 0);
	assert_int_equal(v, 0x1122334455667788ull);

	assert_int_equal(gm_space_window_info(s, w, &wi), 0);
	assert_int_equal(wi.kind, GM_WINDOW_RAM);
	assert_int_equal(wi.gpa, 1 * MiB);
	assert_int_equal(wi.size, 2 * MiB);
	assert_int_equal(wi.max_size, 2 * MiB);
	assert_ptr_equal(wi.host, ri.host);
	assert_int_equal(wi.prot, GM_PROT_ALL);
	assert_int_equal(wi.nparts, 1);
	assert_non_null(wi.dirty);
	assert_ptr_equal(wi.dirty, ri.dirty);
	assert_int_equal(gm_dirty_npages(wi.dirty), 2 * MiB / PAGE);
	check(s);
	gm_space_free(s);
}

static void add_rejects_bad_arguments(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *w = (struct gm_window *)&w;
	struct gm_window *orig = w;

	(void)state;
	assert_int_equal(gm_space_add_ram(NULL, 0, PAGE, 0, 0, &w), -EINVAL);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 0, 0, NULL), -EINVAL);
	assert_int_equal(gm_space_add_ram(s, 0, 0, 0, 0, &w), -EINVAL);
	assert_int_equal(gm_space_add_ram(s, 100, PAGE, 0, 0, &w), -EINVAL);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE + 1, 0, 0, &w), -EINVAL);
	assert_int_equal(gm_space_add_ram(s, 0, 2 * PAGE, PAGE, 0, &w), -EINVAL);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 2 * PAGE + 1, 0, &w), -EINVAL);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 0, GM_MAP_READONLY, &w), -EINVAL);
	assert_int_equal(gm_space_add_ram(s, UINT64_MAX - PAGE + 1, 2 * PAGE, 0, 0, &w),
			 -EOVERFLOW);
	assert_int_equal(gm_space_add_reserved(s, UINT64_MAX, 2, "x", &w), -EOVERFLOW);
	assert_int_equal(gm_space_add_reserved(s, 0, 0, "x", &w), -EINVAL);
	assert_ptr_equal(w, orig);
	assert_int_equal(gm_space_generation(s), 0);
	check(s);
	gm_space_free(s);
}

static void add_overlapping_window_is_rejected(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *w;
	struct dev d = {0};
	struct gm_device_ops ops = dev_ops(GM_ACCESS_4, 0);

	(void)state;
	add_ram(s, 1 * MiB, 1 * MiB);
	assert_int_equal(gm_space_add_ram(s, 1 * MiB + 1 * MiB - PAGE, PAGE, 0, 0, &w), -EEXIST);
	assert_int_equal(gm_space_add_ram(s, 0, 1 * MiB + PAGE, 0, 0, &w), -EEXIST);
	assert_int_equal(gm_space_add_mmio(s, 2 * MiB - 1, 1, &ops, &d, &w), -EEXIST);
	assert_int_equal(gm_space_add_reserved(s, 0, 1 * MiB + 1, "hole", &w), -EEXIST);
	/* Touching is fine. */
	assert_int_equal(gm_space_add_mmio(s, 2 * MiB, 1, &ops, &d, &w), 0);
	assert_int_equal(gm_space_add_reserved(s, 1 * MiB - 16, 16, "r", &w), 0);
	assert_int_equal(gm_space_generation(s), 3);
	check(s);
	gm_space_free(s);
	assert_int_equal(d.released, 1);
}

static void huge_mmio_and_reserved_windows_are_allowed(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *w;
	struct dev d = {0};
	struct gm_device_ops ops = dev_ops(GM_ACCESS_4, 0);

	(void)state;
	/* A 64-bit BAR of 16 GiB, even in a 32-bit process. */
	assert_int_equal(gm_space_add_mmio(s, 64 * GiB, 16 * GiB, &ops, &d, &w), 0);
	assert_int_equal(gm_space_add_reserved(s, 128 * GiB, UINT64_MAX - 128 * GiB + 1, "top", &w),
			 0);
	check(s);
	gm_space_free(s);
}

static void ram_larger_than_the_host_can_map_is_eoverflow(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *w;

	(void)state;
	if (SIZE_MAX > UINT32_MAX) {
		gm_space_free(s);
		printf("skipped: a 64-bit process can map any RAM size a guest has\n");
		skip();
	}
	assert_int_equal(gm_space_add_ram(s, 0, 4 * GiB, 0, GM_MAP_NORESERVE, &w), -EOVERFLOW);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 8 * GiB, GM_MAP_NORESERVE, &w), -EOVERFLOW);
	gm_space_free(s);
}

static void ram_from_a_caller_mapping_shares_its_bytes(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_mapping *m;
	struct gm_window *w;
	struct gm_window_info wi = GM_OPTS(gm_window_info);
	unsigned char *host;
	uint32_t v = 0;

	(void)state;
	assert_int_equal(gm_mapping_new_memfd("test-space", 4 * PAGE, 0, &m), 0);
	host = gm_mapping_host(m);
	host[PAGE + 5] = 0xab;
	assert_int_equal(gm_space_add_ram_mapping(s, 0x100000, 2 * PAGE, m, PAGE, &w), 0);
	assert_int_equal(gm_space_read(s, 0x100005, &v, 1), 0);
	assert_int_equal(v, 0xab);
	assert_int_equal(gm_space_window_info(s, w, &wi), 0);
	assert_ptr_equal(wi.mapping, m);
	assert_int_equal(wi.offset, PAGE);
	assert_ptr_equal(wi.host, host + PAGE);
	assert_int_equal(wi.max_size, 3 * PAGE);
	assert_int_equal(gm_dirty_npages(wi.dirty), 3);
	check(s);
	gm_space_free(s);
	gm_mapping_put(m);
}

static void ram_mapping_rejections(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_mapping *m, *ro;
	struct gm_window *w;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(4 * PAGE, 0, &m), 0);
	assert_int_equal(gm_mapping_new_anon(4 * PAGE, GM_MAP_READONLY, &ro), 0);
	assert_int_equal(gm_space_add_ram_mapping(s, 0, PAGE, NULL, 0, &w), -EINVAL);
	assert_int_equal(gm_space_add_ram_mapping(s, 0, PAGE, m, 1, &w), -EINVAL);
	assert_int_equal(gm_space_add_ram_mapping(s, 0, 4 * PAGE, m, PAGE, &w), -ERANGE);
	assert_int_equal(gm_space_add_ram_mapping(s, 0, PAGE, m, 8 * PAGE, &w), -ERANGE);
	assert_int_equal(gm_space_add_ram_mapping(s, 0, PAGE, ro, 0, &w), -EINVAL);
	/* A read-only mapping makes a fine ROM. */
	assert_int_equal(gm_space_add_rom_mapping(s, 0, PAGE, ro, 0, &w), 0);
	check(s);
	gm_space_free(s);
	gm_mapping_put(m);
	gm_mapping_put(ro);
}

/* The protection of the host page at @p, from /proc/self/maps ("r--p"...). */
static bool host_perms(const void *p, char perms[5])
{
	FILE *f = fopen("/proc/self/maps", "re");
	char line[512];
	bool found = false;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;

		if (sscanf(line, "%llx-%llx %4s", &lo, &hi, perms) == 3 && (uintptr_t)p >= lo &&
		    (uintptr_t)p < hi) {
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

static void rom_mapping_rejections(void **state)
{
	struct gm_space *s = new_space(0), *pio = new_space(GM_SPACE_PIO);
	struct gm_mapping *m;
	struct gm_window *w = (struct gm_window *)&w, *orig = w;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(4 * PAGE, 0, &m), 0);
	assert_int_equal(gm_space_add_rom_mapping(s, 0, PAGE, NULL, 0, &w), -EINVAL);
	assert_int_equal(gm_space_add_rom_mapping(s, 0, PAGE, m, 1, &w), -EINVAL);
	assert_int_equal(gm_space_add_rom_mapping(s, 100, PAGE, m, 0, &w), -EINVAL);
	assert_int_equal(gm_space_add_rom_mapping(s, 0, 0, m, 0, &w), -EINVAL);
	assert_int_equal(gm_space_add_rom_mapping(s, 0, PAGE, m, 0, NULL), -EINVAL);
	assert_int_equal(gm_space_add_rom_mapping(NULL, 0, PAGE, m, 0, &w), -EINVAL);
	assert_int_equal(gm_space_add_rom_mapping(s, 0, 4 * PAGE, m, PAGE, &w), -ERANGE);
	assert_int_equal(gm_space_add_rom_mapping(s, 0, PAGE, m, 8 * PAGE, &w), -ERANGE);
	assert_int_equal(gm_space_add_rom_mapping(s, UINT64_MAX - PAGE + 1, 2 * PAGE, m, 0, &w),
			 -EOVERFLOW);
	assert_int_equal(gm_space_add_rom_mapping(pio, 0, PAGE, m, 0, &w), -EOPNOTSUPP);
	assert_ptr_equal(w, orig);
	assert_int_equal(gm_space_generation(s), 0);
	check(s);
	gm_space_free(s);
	gm_space_free(pio);
	gm_mapping_put(m);
}

static void rom_holds_the_contents_and_refuses_writes(void **state)
{
	struct gm_space *s = new_space(0);
	static const char bios[] = "firmware image";
	struct gm_window *w;
	struct gm_window_info wi = GM_OPTS(gm_window_info);
	struct gm_region_info ri = GM_OPTS(gm_region_info);
	struct gm_memory *m;
	char buf[sizeof(bios)];
	char perms[5];
	uint8_t z = 0xff;

	(void)state;
	assert_int_equal(gm_space_add_rom(s, 4 * GiB - 2 * PAGE, 2 * PAGE, bios, sizeof(bios), &w),
			 0);
	assert_int_equal(gm_space_read(s, 4 * GiB - 2 * PAGE, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, bios, sizeof(bios));
	assert_int_equal(gm_space_read(s, 4 * GiB - 1, &z, 1), 0);
	assert_int_equal(z, 0);
	assert_int_equal(gm_space_write(s, 4 * GiB - 2 * PAGE, "x", 1), -EACCES);
	gm_rcu_read_lock();
	m = gm_space_memory(s);
	assert_int_equal(gm_memory_find(m, 4 * GiB - PAGE, &ri), 0);
	assert_int_equal(ri.flags, GM_REGION_ROM | GM_REGION_READONLY);
	assert_int_equal(gm_write_u8(m, 4 * GiB - PAGE, 1), -EACCES);
	gm_rcu_read_unlock();
	assert_int_equal(gm_space_window_info(s, w, &wi), 0);
	assert_int_equal(wi.prot, GM_PROT_READ | GM_PROT_EXEC);
	assert_null(wi.dirty);
	assert_true(host_perms(wi.host, perms));
	assert_string_equal(perms, "r--p");
	/* Protection cannot be changed on ROM. */
	assert_int_equal(gm_space_protect(s, w, 0, PAGE, GM_PROT_ALL), -EINVAL);
	assert_int_equal(gm_space_add_rom(s, 0, PAGE, bios, PAGE + 1, &w), -EINVAL);
	assert_int_equal(gm_space_add_rom(s, 0, PAGE, NULL, 1, &w), -EINVAL);
	check(s);
	gm_space_free(s);
}

static void mmio_add_rejects_bad_ops(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_device_ops ops = dev_ops(GM_ACCESS_4, 0);
	struct gm_window *w;
	struct dev d = {0};

	(void)state;
	assert_int_equal(gm_space_add_mmio(s, 0, 4, NULL, &d, &w), -EINVAL);
	ops.sizes = 0;
	assert_int_equal(gm_space_add_mmio(s, 0, 4, &ops, &d, &w), -EINVAL);
	ops.sizes = 1u << 4;
	assert_int_equal(gm_space_add_mmio(s, 0, 4, &ops, &d, &w), -EINVAL);
	ops = dev_ops(GM_ACCESS_4, 1u << 7);
	assert_int_equal(gm_space_add_mmio(s, 0, 4, &ops, &d, &w), -EINVAL);
	ops = dev_ops(GM_ACCESS_4, 0);
	ops.read = NULL;
	ops.write = NULL;
	assert_int_equal(gm_space_add_mmio(s, 0, 4, &ops, &d, &w), -EINVAL);
	gm_space_free(s);
	/* A failed add never tells the device it is released. */
	assert_int_equal(d.released, 0);
}

/* ---- remove, move, resize ---- */

static void remove_drops_the_window_once(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a = add_ram(s, 0, 1 * MiB);
	struct gm_window *b;
	struct dev d = {0};
	uint8_t x;

	(void)state;
	b = add_dev(s, 1 * MiB, 4, &d, GM_ACCESS_4, 0);
	assert_int_equal(gm_space_remove(s, a), 0);
	assert_int_equal(region_count(s), 0);
	assert_int_equal(gm_space_read(s, 0, &x, 1), -EFAULT);
	assert_int_equal(gm_space_remove(s, a), -ENOENT);
	assert_int_equal(gm_space_remove(s, NULL), -EINVAL);
	assert_int_equal(gm_space_remove(NULL, b), -EINVAL);
	assert_int_equal(gm_space_remove(s, b), 0);
	/* The commit was made outside a read section: it waited and released. */
	assert_int_equal(d.released, 1);
	check(s);
	gm_space_free(s);
	assert_int_equal(d.released, 1);
}

static void an_old_view_stays_readable_after_remove(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a = add_ram(s, 0, 1 * MiB);
	struct gm_memory *old;
	uint32_t v = 0;

	(void)state;
	assert_int_equal(gm_space_write(s, 64, "\x01\x02\x03\x04", 4), 0);
	assert_int_equal(gm_space_memory_get(s, &old), 0);
	assert_int_equal(gm_space_remove(s, a), 0);
	assert_int_equal(gm_read_u32(old, 64, &v), 0);
	assert_int_equal(v, 0x04030201);
	gm_memory_put(old);
	gm_space_free(s);
}

static void move_keeps_contents_dirty_and_device(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a = add_ram(s, 0, 2 * PAGE);
	struct gm_window *b = add_ram(s, 1 * MiB, PAGE);
	struct gm_window_info before = GM_OPTS(gm_window_info), after = GM_OPTS(gm_window_info);
	struct gm_window *dw;
	struct dev d = {.mem = {0x5a}};
	uint8_t x = 0;

	(void)state;
	assert_int_equal(gm_space_write(s, PAGE + 3, "q", 1), 0);
	assert_int_equal(gm_space_protect(s, a, PAGE, PAGE, GM_PROT_READ), 0);
	assert_int_equal(gm_space_window_info(s, a, &before), 0);
	assert_int_equal(gm_space_move(s, a, 16 * MiB), 0);
	assert_int_equal(gm_space_window_info(s, a, &after), 0);
	assert_int_equal(after.gpa, 16 * MiB);
	assert_ptr_equal(after.host, before.host);
	assert_ptr_equal(after.dirty, before.dirty);
	assert_int_equal(after.nparts, 2);
	assert_int_equal(gm_space_read(s, 16 * MiB + PAGE + 3, &x, 1), 0);
	assert_int_equal(x, 'q');
	assert_int_equal(gm_space_write(s, 16 * MiB + PAGE, "z", 1), -EACCES);
	assert_int_equal(gm_space_read(s, PAGE + 3, &x, 1), -EFAULT);
	/* Windows stay sorted after moving past another one. */
	assert_int_equal(gm_space_move(s, b, 32 * MiB), 0);
	check(s);

	assert_int_equal(gm_space_move(s, a, 32 * MiB - PAGE), -EEXIST);
	assert_int_equal(gm_space_move(s, a, 100), -EINVAL);
	assert_int_equal(gm_space_move(s, a, UINT64_MAX - PAGE + 1), -EOVERFLOW);
	assert_int_equal(gm_space_generation(s), 5);
	assert_int_equal(gm_space_move(s, a, 16 * MiB), 0); /* where it is */
	assert_int_equal(gm_space_generation(s), 5);

	dw = add_dev(s, 0x1000, 0x100, &d, GM_ACCESS_1, 0);
	assert_int_equal(gm_space_move(s, dw, 0x2003), 0); /* MMIO: any alignment */
	assert_int_equal(gm_space_read(s, 0x2003, &x, 1), 0);
	assert_int_equal(x, 0x5a);
	assert_int_equal(gm_space_read(s, 0x1000, &x, 1), -EFAULT);
	check(s);
	gm_space_free(s);
}

/*
 * Moving a window below another: the layout rule is only "no overlap with
 * another window" (its own old place does not count), so ending exactly
 * where the other begins is accepted and one byte more is -EEXIST; the
 * windows stay sorted (the move walks down past each one it passes).
 */
static void move_below_another_window_follows_the_layout_rules(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a = add_ram(s, 4 * MiB, 2 * PAGE);
	struct gm_window *b = add_ram(s, 8 * MiB, PAGE);
	struct dev d = {.mem = {0x5a}};
	struct gm_window *dw = add_dev(s, 16 * MiB, 0x100, &d, GM_ACCESS_1, 0);
	struct gm_window_info info = GM_OPTS(gm_window_info);
	uint64_t gen;
	uint8_t x = 0;

	(void)state;
	assert_int_equal(gm_space_write(s, 4 * MiB, "a", 1), 0);
	assert_int_equal(gm_space_write(s, 8 * MiB, "b", 1), 0);
	gen = gm_space_generation(s);
	/* The device one byte into a: refused, nothing changes. */
	assert_int_equal(gm_space_move(s, dw, 4 * MiB - 0xff), -EEXIST);
	assert_int_equal(gm_space_generation(s), gen);
	assert_int_equal(gm_space_window_info(s, dw, &info), 0);
	assert_int_equal(info.gpa, 16 * MiB);
	/* Ending exactly where a begins: accepted, and now below a. */
	assert_int_equal(gm_space_move(s, dw, 4 * MiB - 0x100), 0);
	check(s);
	assert_int_equal(gm_space_read(s, 4 * MiB - 0x100, &x, 1), 0);
	assert_int_equal(x, 0x5a);
	assert_int_equal(gm_space_read(s, 16 * MiB, &x, 1), -EFAULT);
	/* b down past both a and the device, ending one page below the device. */
	assert_int_equal(gm_space_move(s, b, 4 * MiB - 2 * PAGE), 0);
	check(s);
	assert_int_equal(gm_space_read(s, 4 * MiB - 2 * PAGE, &x, 1), 0);
	assert_int_equal(x, 'b');
	assert_int_equal(gm_space_read(s, 8 * MiB, &x, 1), -EFAULT);
	assert_int_equal(region_count(s), 2);
	assert_int_equal(region_at(s, 0).gpa, 4 * MiB - 2 * PAGE);
	assert_int_equal(region_at(s, 1).gpa, 4 * MiB);
	/* a (two pages) over b's page: refused; ending where b begins: accepted. */
	gen = gm_space_generation(s);
	assert_int_equal(gm_space_move(s, a, 4 * MiB - 3 * PAGE), -EEXIST);
	assert_int_equal(gm_space_generation(s), gen);
	assert_int_equal(gm_space_move(s, a, 4 * MiB - 4 * PAGE), 0);
	check(s);
	assert_int_equal(region_at(s, 0).gpa, 4 * MiB - 4 * PAGE);
	assert_int_equal(region_at(s, 1).gpa, 4 * MiB - 2 * PAGE);
	/* Below its own old place, overlapping it: only other windows count. */
	assert_int_equal(gm_space_move(s, a, 4 * MiB - 5 * PAGE), 0);
	check(s);
	assert_int_equal(gm_space_read(s, 4 * MiB - 5 * PAGE, &x, 1), 0);
	assert_int_equal(x, 'a');
	assert_int_equal(gm_space_read(s, 4 * MiB - 2 * PAGE, &x, 1), 0);
	assert_int_equal(x, 'b');
	assert_int_equal(gm_space_read(s, 4 * MiB - 0x100, &x, 1), 0);
	assert_int_equal(x, 0x5a);
	gm_space_free(s);
}

static void resize_grows_ram_in_place(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a, *rom;
	struct gm_window_info before = GM_OPTS(gm_window_info), after = GM_OPTS(gm_window_info);
	uint8_t x = 0xff;

	(void)state;
	assert_int_equal(gm_space_add_ram(s, 0, 2 * PAGE, 8 * PAGE, GM_MAP_NORESERVE, &a), 0);
	add_ram(s, 16 * PAGE, PAGE);
	assert_int_equal(gm_space_write(s, 5, "k", 1), 0);
	assert_int_equal(gm_space_window_info(s, a, &before), 0);
	assert_int_equal(before.max_size, 8 * PAGE);
	assert_int_equal(gm_dirty_npages(before.dirty), 8);
	assert_int_equal(gm_space_read(s, 2 * PAGE, &x, 1), -EFAULT);
	assert_int_equal(gm_space_resize(s, a, 6 * PAGE), 0);
	assert_int_equal(gm_space_window_info(s, a, &after), 0);
	assert_int_equal(after.size, 6 * PAGE);
	assert_ptr_equal(after.host, before.host);
	assert_ptr_equal(after.dirty, before.dirty);
	assert_int_equal(gm_space_read(s, 5, &x, 1), 0);
	assert_int_equal(x, 'k');
	assert_int_equal(gm_space_read(s, 6 * PAGE - 1, &x, 1), 0);
	assert_int_equal(x, 0);
	assert_int_equal(gm_space_resize(s, a, 6 * PAGE), 0);
	assert_int_equal(gm_space_resize(s, a, 4 * PAGE), -EINVAL);
	assert_int_equal(gm_space_resize(s, a, 7 * PAGE + 1), -EINVAL);
	assert_int_equal(gm_space_resize(s, a, 10 * PAGE), -ENOSPC);
	assert_int_equal(gm_space_add_rom(s, 7 * PAGE, PAGE, NULL, 0, &rom), 0);
	assert_int_equal(gm_space_resize(s, a, 8 * PAGE), -EEXIST);
	assert_int_equal(gm_space_resize(s, rom, 2 * PAGE), -EINVAL);
	/* Growing after a read-only tail adds a new read-write run. */
	assert_int_equal(gm_space_protect(s, a, 5 * PAGE, PAGE, GM_PROT_READ), 0);
	assert_int_equal(gm_space_remove(s, rom), 0);
	assert_int_equal(gm_space_resize(s, a, 8 * PAGE), 0);
	assert_int_equal(gm_space_window_info(s, a, &after), 0);
	assert_int_equal(after.nparts, 3);
	assert_int_equal(gm_space_write(s, 7 * PAGE, "w", 1), 0);
	check(s);
	gm_space_free(s);
}

static void resize_of_a_mapping_window_stops_at_its_end(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_mapping *m;
	struct gm_window *w;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(4 * PAGE, 0, &m), 0);
	assert_int_equal(gm_space_add_ram_mapping(s, 0, PAGE, m, PAGE, &w), 0);
	assert_int_equal(gm_space_resize(s, w, 3 * PAGE), 0);
	assert_int_equal(gm_space_resize(s, w, 4 * PAGE), -ENOSPC);
	gm_mapping_put(m);
	check(s);
	gm_space_free(s);
}

/* ---- protection ---- */

static void resize_that_wraps_past_2_64_is_eoverflow(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *w = NULL;

	(void)state;
	assert_int_equal(gm_space_add_ram(s, UINT64_MAX - PAGE + 1, PAGE, 2 * PAGE, 0, &w), 0);
	assert_int_equal(gm_space_resize(s, w, 2 * PAGE), -EOVERFLOW);
	assert_int_equal(gm_space_generation(s), 1);
	check(s);
	gm_space_free(s);
}

/* Handles of another space, or of a window not committed yet, are -ENOENT. */
static void edits_and_info_of_a_foreign_window_are_enoent(void **state)
{
	struct gm_space *s = new_space(0), *t = new_space(0);
	struct gm_window *foreign = add_ram(t, 0, PAGE), *staged = NULL;
	struct gm_window_info info = GM_OPTS(gm_window_info);

	(void)state;
	add_ram(s, 0, PAGE);
	assert_int_equal(gm_space_remove(s, foreign), -ENOENT);
	assert_int_equal(gm_space_move(s, foreign, 1 * MiB), -ENOENT);
	assert_int_equal(gm_space_resize(s, foreign, 2 * PAGE), -ENOENT);
	assert_int_equal(gm_space_protect(s, foreign, 0, PAGE, GM_PROT_READ), -ENOENT);
	assert_int_equal(gm_space_window_info(s, foreign, &info), -ENOENT);
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_add_reserved(s, 1 * MiB, PAGE, "x", &staged), 0);
	assert_int_equal(gm_space_window_info(s, staged, &info), -ENOENT);
	assert_int_equal(gm_space_commit(s), 0);
	assert_int_equal(gm_space_window_info(s, staged, &info), 0);
	assert_int_equal(info.kind, GM_WINDOW_RESERVED);
	assert_int_equal(gm_space_window_info(NULL, staged, &info), -EINVAL);
	assert_int_equal(gm_space_window_info(s, NULL, &info), -EINVAL);
	assert_int_equal(gm_space_window_info(s, staged, NULL), -EINVAL);
	assert_int_equal(gm_space_generation(t), 1);
	check(s);
	check(t);
	gm_space_free(s);
	gm_space_free(t);
}

static void protect_splits_and_merges_regions(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a = add_ram(s, 1 * MiB, 8 * PAGE);
	struct gm_space_region r0, r1, r2;
	struct gm_window_info wi = GM_OPTS(gm_window_info);
	struct gm_memory *m;
	uint64_t v;

	(void)state;
	assert_int_equal(gm_space_protect(s, a, 2 * PAGE, 3 * PAGE, GM_PROT_READ | GM_PROT_EXEC),
			 0);
	assert_int_equal(region_count(s), 3);
	r0 = region_at(s, 0);
	r1 = region_at(s, 1);
	r2 = region_at(s, 2);
	assert_int_equal(r0.gpa, 1 * MiB);
	assert_int_equal(r0.size, 2 * PAGE);
	assert_int_equal(r0.flags, 0);
	assert_int_equal(r1.gpa, 1 * MiB + 2 * PAGE);
	assert_int_equal(r1.size, 3 * PAGE);
	assert_int_equal(r1.flags, GM_REGION_READONLY);
	assert_int_equal(r1.prot, GM_PROT_READ | GM_PROT_EXEC);
	assert_int_equal(r1.dirty_offset, 2 * PAGE);
	assert_ptr_equal(r1.dirty, r0.dirty);
	assert_ptr_equal((char *)r1.host, (char *)r0.host + 2 * PAGE);
	assert_int_equal(r1.offset, r0.offset + 2 * PAGE);
	assert_int_equal(r2.gpa, 1 * MiB + 5 * PAGE);
	assert_int_equal(r2.size, 3 * PAGE);
	assert_int_equal(r2.flags, 0);

	/* The write is refused through the view and through dispatch. */
	gm_rcu_read_lock();
	m = gm_space_memory(s);
	assert_int_equal(gm_write_u64(m, 1 * MiB + 3 * PAGE, 1), -EACCES);
	assert_int_equal(gm_write_u64(m, 1 * MiB + 5 * PAGE, 1), 0);
	gm_rcu_read_unlock();
	assert_int_equal(gm_space_write(s, 1 * MiB + 2 * PAGE - 4, "12345678", 8), -EACCES);
	assert_int_equal(gm_space_read(s, 1 * MiB + 5 * PAGE, &v, 8), 0);
	assert_int_equal(v, 1);

	/* Overlapping two runs: no-exec RW over the end of the RX run. */
	assert_int_equal(gm_space_protect(s, a, 4 * PAGE, 2 * PAGE, GM_PROT_READ | GM_PROT_WRITE),
			 0);
	assert_int_equal(region_count(s), 4);
	assert_int_equal(region_at(s, 2).gpa, 1 * MiB + 4 * PAGE);
	assert_int_equal(region_at(s, 2).flags, GM_REGION_NOEXEC);
	/* Back to RWX everywhere: one region again. */
	assert_int_equal(gm_space_protect(s, a, 0, 8 * PAGE, GM_PROT_ALL), 0);
	assert_int_equal(region_count(s), 1);
	assert_int_equal(gm_space_window_info(s, a, &wi), 0);
	assert_int_equal(wi.nparts, 1);
	check(s);
	gm_space_free(s);
}

static void protect_none_takes_pages_out_of_the_view(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a = add_ram(s, 0, 4 * PAGE);
	struct gm_memory *m;
	uint8_t x;

	(void)state;
	assert_int_equal(gm_space_protect(s, a, PAGE, PAGE, GM_PROT_NONE), 0);
	assert_int_equal(region_count(s), 2);
	gm_rcu_read_lock();
	m = gm_space_memory(s);
	assert_int_equal(gm_read_u8(m, PAGE, &x), -EFAULT);
	gm_rcu_read_unlock();
	assert_int_equal(gm_space_read(s, PAGE, &x, 1), -EACCES);
	assert_int_equal(gm_space_read(s, 0, &x, 1), 0);
	check(s);
	gm_space_free(s);
}

/*
 * A write that ends exactly where a read-only page begins is allowed; one
 * byte more is -EACCES and writes nothing, not even the writable part.
 */
static void write_up_to_a_read_only_page_and_not_one_byte_more(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a = add_ram(s, 0, 3 * PAGE);
	uint8_t buf[8], got[9];

	(void)state;
	memset(buf, 0x11, sizeof(buf));
	assert_int_equal(gm_space_write(s, PAGE - 8, buf, 8), 0);
	assert_int_equal(gm_space_protect(s, a, PAGE, PAGE, GM_PROT_READ), 0);
	memset(buf, 0x22, sizeof(buf));
	assert_int_equal(gm_space_write(s, PAGE - 8, buf, 8), 0);
	assert_int_equal(gm_space_read(s, PAGE - 8, got, 9), 0);
	assert_memory_equal(got, buf, 8);
	assert_int_equal(got[8], 0);
	memset(buf, 0x33, sizeof(buf));
	assert_int_equal(gm_space_write(s, PAGE - 7, buf, 8), -EACCES);
	assert_int_equal(gm_space_read(s, PAGE - 8, got, 9), 0);
	assert_int_equal(got[1], 0x22); /* nothing of the writable part either */
	assert_int_equal(got[7], 0x22);
	assert_int_equal(got[8], 0);
	/* The same from above: starting exactly where the read-only page ends. */
	assert_int_equal(gm_space_write(s, 2 * PAGE, buf, 8), 0);
	assert_int_equal(gm_space_write(s, 2 * PAGE - 1, buf, 8), -EACCES);
	assert_int_equal(gm_space_read(s, 2 * PAGE - 1, got, 9), 0);
	assert_int_equal(got[0], 0);
	assert_int_equal(got[1], 0x33);
	check(s);
	gm_space_free(s);
}

static void protect_rejections(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a = add_ram(s, 0, 4 * PAGE), *r;
	struct dev d = {0};

	(void)state;
	assert_int_equal(gm_space_protect(s, a, 0, PAGE, GM_PROT_WRITE), -EINVAL);
	assert_int_equal(gm_space_protect(s, a, 0, PAGE, GM_PROT_EXEC), -EINVAL);
	assert_int_equal(gm_space_protect(s, a, 0, PAGE, GM_PROT_WRITE | GM_PROT_EXEC), -EINVAL);
	assert_int_equal(gm_space_protect(s, a, 0, PAGE, 8), -EINVAL);
	assert_int_equal(gm_space_protect(s, a, 1, PAGE, GM_PROT_READ), -EINVAL);
	assert_int_equal(gm_space_protect(s, a, 0, PAGE - 1, GM_PROT_READ), -EINVAL);
	assert_int_equal(gm_space_protect(s, a, 0, 0, GM_PROT_READ), -EINVAL);
	assert_int_equal(gm_space_protect(s, a, 3 * PAGE, 2 * PAGE, GM_PROT_READ), -ERANGE);
	assert_int_equal(gm_space_protect(s, a, UINT64_MAX & ~(PAGE - 1), PAGE, GM_PROT_READ),
			 -ERANGE);
	r = add_dev(s, 1 * MiB, 4, &d, GM_ACCESS_4, 0);
	assert_int_equal(gm_space_protect(s, r, 0, PAGE, GM_PROT_READ), -EINVAL);
	assert_int_equal(gm_space_generation(s), 2);
	check(s);
	gm_space_free(s);
}

/* ---- dirty tracking ---- */

static void dirty_bitmap_is_marked_through_dispatch_and_survives_edits(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a;
	struct gm_window_info wi = GM_OPTS(gm_window_info);

	(void)state;
	assert_false(gm_space_dirty_enabled(s));
	assert_int_equal(gm_space_add_ram(s, 0, 4 * PAGE, 8 * PAGE, 0, &a), 0);
	assert_int_equal(gm_space_window_info(s, a, &wi), 0);
	assert_false(gm_dirty_enabled(wi.dirty));
	assert_int_equal(gm_space_write(s, 0, "a", 1), 0);
	assert_int_equal(gm_dirty_count(wi.dirty), 0);
	assert_int_equal(gm_space_dirty_enable(s, true), 0);
	assert_true(gm_space_dirty_enabled(s));
	assert_true(gm_dirty_enabled(wi.dirty));
	assert_int_equal(gm_space_protect(s, a, 0, PAGE, GM_PROT_READ), 0);
	assert_int_equal(gm_space_move(s, a, 1 * MiB), 0);
	assert_int_equal(gm_space_resize(s, a, 8 * PAGE), 0);
	/* Page 2 of the window, after a split at page 1: dirty_offset at work. */
	assert_int_equal(gm_space_write(s, 1 * MiB + 2 * PAGE + 10, "b", 1), 0);
	assert_int_equal(gm_space_write(s, 1 * MiB + 7 * PAGE, "c", 1), 0);
	assert_int_equal(gm_dirty_count(wi.dirty), 2);
	assert_true(gm_dirty_test(wi.dirty, 2));
	assert_true(gm_dirty_test(wi.dirty, 7));
	/* A window added later starts enabled. */
	{
		struct gm_window *b = add_ram(s, 0, PAGE);
		struct gm_window_info bi = GM_OPTS(gm_window_info);

		assert_int_equal(gm_space_window_info(s, b, &bi), 0);
		assert_true(gm_dirty_enabled(bi.dirty));
	}
	assert_int_equal(gm_space_dirty_enable(s, false), 0);
	assert_false(gm_dirty_enabled(wi.dirty));
	assert_int_equal(gm_space_dirty_enable(NULL, true), -EINVAL);
	check(s);
	gm_space_free(s);
}

int space_windows_tests(void)
{
	const struct CMUnitTest space_windows[] = {
	    cmocka_unit_test(new_space_rejects_unknown_flags),
	    cmocka_unit_test(new_space_has_an_empty_view),
	    cmocka_unit_test(add_ram_appears_in_the_view),
	    cmocka_unit_test(add_rejects_bad_arguments),
	    cmocka_unit_test(add_overlapping_window_is_rejected),
	    cmocka_unit_test(huge_mmio_and_reserved_windows_are_allowed),
	    cmocka_unit_test(ram_larger_than_the_host_can_map_is_eoverflow),
	    cmocka_unit_test(ram_from_a_caller_mapping_shares_its_bytes),
	    cmocka_unit_test(ram_mapping_rejections),
	    cmocka_unit_test(rom_mapping_rejections),
	    cmocka_unit_test(rom_holds_the_contents_and_refuses_writes),
	    cmocka_unit_test(mmio_add_rejects_bad_ops),
	    cmocka_unit_test(remove_drops_the_window_once),
	    cmocka_unit_test(an_old_view_stays_readable_after_remove),
	    cmocka_unit_test(move_keeps_contents_dirty_and_device),
	    cmocka_unit_test(move_below_another_window_follows_the_layout_rules),
	    cmocka_unit_test(resize_grows_ram_in_place),
	    cmocka_unit_test(resize_of_a_mapping_window_stops_at_its_end),
	    cmocka_unit_test(resize_that_wraps_past_2_64_is_eoverflow),
	    cmocka_unit_test(edits_and_info_of_a_foreign_window_are_enoent),
	    cmocka_unit_test(protect_splits_and_merges_regions),
	    cmocka_unit_test(protect_none_takes_pages_out_of_the_view),
	    cmocka_unit_test(protect_rejections),
	    cmocka_unit_test(write_up_to_a_read_only_page_and_not_one_byte_more),
	    cmocka_unit_test(dirty_bitmap_is_marked_through_dispatch_and_survives_edits),
	};

	return cmocka_run_group_tests(space_windows, NULL, NULL);
}
