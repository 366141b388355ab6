/* SPDX-License-Identifier: MIT */
/*
 * test_space.c - the address-space layer (<guestmem/space.h>).
 *
 * Every edit and each of its rejections with the exact errno; protection
 * splits and merges, seen in the view, in the listeners' events and in the
 * dump; transactions that fail leaving the space byte-for-byte as before
 * (compared through the dump, the generation and the region ids);
 * listeners' exact event lists, veto and rollback; access splitting
 * against devices with different access sizes; holes; the port-I/O space.
 * After each step gm__space_invariants_ok() checks the layer's numbered
 * invariants (src/space/space-internal.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <guestmem/space.h>

#include "space/space-internal.h"

#define KiB  ((uint64_t)1 << 10)
#define MiB  ((uint64_t)1 << 20)
#define GiB  ((uint64_t)1 << 30)
#define PAGE GM_PAGE_SIZE

/* ---- helpers ---- */

static struct gm_space *new_space(unsigned flags)
{
	struct gm_space *s = NULL;

	assert_int_equal(gm_space_new(flags, &s), 0);
	assert_non_null(s);
	return s;
}

static void check(struct gm_space *s)
{
	assert_true(gm__space_invariants_ok(s));
}

static struct gm_window *add_ram(struct gm_space *s, gm_gpa_t gpa, uint64_t size)
{
	struct gm_window *w = NULL;

	assert_int_equal(gm_space_add_ram(s, gpa, size, 0, 0, &w), 0);
	assert_non_null(w);
	return w;
}

static size_t region_count(struct gm_space *s)
{
	size_t n = 0;
	int err = gm_space_regions(s, NULL, 0, &n);

	assert_true(err == 0 || err == -ENOBUFS);
	return n;
}

static struct gm_space_region region_at(struct gm_space *s, size_t i)
{
	struct gm_space_region r[16];
	size_t n;

	assert_int_equal(gm_space_regions(s, r, 16, &n), 0);
	assert_true(i < n);
	return r[i];
}

/* The dump as a malloc'ed string. */
static char *dump(struct gm_space *s)
{
	size_t need = 0;
	char *buf;
	int err = gm_space_dump(s, NULL, 0, &need);

	assert_true(err == -ENOBUFS || err == 0);
	buf = malloc(need + 1);
	assert_non_null(buf);
	assert_int_equal(gm_space_dump(s, buf, need + 1, NULL), 0);
	return buf;
}

/* A device that records its calls and serves bytes from a 64-byte array. */
struct call {
	char op; /* 'r' or 'w' */
	uint64_t offset;
	unsigned size;
	uint64_t val;
};

struct dev {
	unsigned char mem[64];
	struct call calls[32];
	size_t ncalls;
	int fail; /* returned by every callback when non-zero */
	int released;
};

static int dev_read(void *opaque, uint64_t offset, unsigned size, uint64_t *val)
{
	struct dev *d = opaque;
	uint64_t v = 0;
	unsigned i;

	if (d->fail)
		return d->fail;
	for (i = 0; i < size; i++)
		v |= (uint64_t)d->mem[offset + i] << (8 * i);
	*val = v;
	d->calls[d->ncalls++] = (struct call){'r', offset, size, v};
	return 0;
}

static int dev_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	struct dev *d = opaque;
	unsigned i;

	if (d->fail)
		return d->fail;
	for (i = 0; i < size; i++)
		d->mem[offset + i] = (unsigned char)(val >> (8 * i));
	d->calls[d->ncalls++] = (struct call){'w', offset, size, val};
	return 0;
}

static void dev_release(void *opaque)
{
	((struct dev *)opaque)->released++;
}

static struct gm_device_ops dev_ops(unsigned sizes, unsigned flags)
{
	return GM_OPTS(gm_device_ops, .name = "testdev", .read = dev_read, .write = dev_write,
		       .sizes = sizes, .flags = flags, .release = dev_release);
}

static struct gm_window *add_dev(struct gm_space *s, gm_gpa_t gpa, uint64_t size, struct dev *d,
				 unsigned sizes, unsigned flags)
{
	struct gm_device_ops ops = dev_ops(sizes, flags);
	struct gm_window *w = NULL;

	assert_int_equal(gm_space_add_mmio(s, gpa, size, &ops, d, &w), 0);
	return w;
}

static void assert_call(const struct dev *d, size_t i, char op, uint64_t offset, unsigned size,
			uint64_t val)
{
	assert_true(i < d->ncalls);
	assert_int_equal(d->calls[i].op, op);
	assert_int_equal(d->calls[i].offset, offset);
	assert_int_equal(d->calls[i].size, size);
	assert_int_equal(d->calls[i].val, val);
}

/* A listener that records each phase's changes. */
struct rec {
	char log[64][48];
	size_t n;
	struct gm_space_change last[16];
	size_t nlast;
	int veto;	     /* prepare returns this */
	size_t view_regions; /* region count of the current view seen in commit */
	int edit_err;	     /* what an edit attempted in prepare returned */
	bool try_edit;
};

static void rec_log(struct rec *r, const char *phase, const struct gm_space_change *c, size_t n)
{
	size_t i;

	for (i = 0; i < n && r->n < 64; i++) {
		static const char *const kinds[] = {"?", "remove", "flags", "add"};

		snprintf(r->log[r->n++], sizeof(r->log[0]), "%s %s 0x%llx+0x%llx", phase,
			 kinds[c[i].kind], (unsigned long long)c[i].region.gpa,
			 (unsigned long long)c[i].region.size);
	}
	if (r->n < 64)
		snprintf(r->log[r->n++], sizeof(r->log[0]), "%s end", phase);
}

static int rec_prepare(void *opaque, struct gm_space *s, const struct gm_space_change *c, size_t n)
{
	struct rec *r = opaque;
	struct gm_window *w;

	rec_log(r, "prepare", c, n);
	memcpy(r->last, c, (n < 16 ? n : 16) * sizeof(*c));
	r->nlast = n;
	if (r->try_edit)
		r->edit_err = gm_space_add_reserved(s, 0xf0000000, PAGE, "x", &w);
	return r->veto;
}

static void rec_rollback(void *opaque, struct gm_space *s, const struct gm_space_change *c,
			 size_t n)
{
	(void)s;
	rec_log(opaque, "rollback", c, n);
}

static void rec_commit(void *opaque, struct gm_space *s, const struct gm_space_change *c, size_t n)
{
	struct rec *r = opaque;
	struct gm_memory *m;

	rec_log(r, "commit", c, n);
	assert_int_equal(gm_space_memory_get(s, &m), 0);
	r->view_regions = gm_memory_region_count(m);
	gm_memory_put(m);
}

static const struct gm_space_listener_ops rec_ops = GM_OPTS_INIT(
    gm_space_listener_ops, .prepare = rec_prepare, .rollback = rec_rollback, .commit = rec_commit);

static void assert_log(const struct rec *r, const char *const *want, size_t n)
{
	size_t i;

	for (i = 0; i < n && i < r->n; i++)
		assert_string_equal(r->log[i], want[i]);
	assert_int_equal(r->n, n);
}

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

/* ---- transactions ---- */

static void transaction_publishes_one_view(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a, *b;
	struct gm_memory *m;

	(void)state;
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 0, 0, &a), 0);
	assert_int_equal(gm_space_add_ram(s, 1 * MiB, PAGE, 0, 0, &b), 0);
	assert_int_equal(gm_space_protect(s, b, 0, PAGE, GM_PROT_READ), 0);
	check(s);
	/* Readers see nothing of it yet. */
	assert_int_equal(gm_space_memory_get(s, &m), 0);
	assert_int_equal(gm_memory_region_count(m), 0);
	gm_memory_put(m);
	assert_int_equal(gm_space_generation(s), 0);
	assert_int_equal(gm_space_commit(s), 0);
	assert_int_equal(gm_space_generation(s), 1);
	assert_int_equal(region_count(s), 2);
	assert_int_equal(region_at(s, 1).flags, GM_REGION_READONLY | GM_REGION_NOEXEC);
	check(s);

	/* A transaction that changes nothing publishes nothing. */
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_commit(s), 0);
	assert_int_equal(gm_space_generation(s), 1);
	assert_int_equal(gm_space_commit(s), -EPERM);
	assert_int_equal(gm_space_abort(s), -EPERM);
	gm_space_free(s);
}

static void failing_edit_in_a_transaction_leaves_the_space_as_before(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a = add_ram(s, 0, 4 * PAGE), *b, *c;
	struct gm_space_region before = region_at(s, 0), after;
	struct dev d = {0};
	char *d0, *d1;
	struct rec r = {0};

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, NULL), 0);
	r.n = 0;
	d0 = dump(s);
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_add_ram(s, 1 * MiB, PAGE, 0, 0, &b), 0);
	assert_int_equal(gm_space_protect(s, a, 0, PAGE, GM_PROT_READ), 0);
	b = NULL;
	c = add_dev(s, 2 * MiB, 8, &d, GM_ACCESS_4, 0);
	assert_int_equal(gm_space_move(s, a, 1 * MiB), -EEXIST); /* dooms it */
	assert_int_equal(gm_space_remove(s, c), -ECANCELED);
	assert_int_equal(gm_space_add_ram(s, 8 * MiB, PAGE, 0, 0, &b), -ECANCELED);
	assert_null(b);
	assert_int_equal(gm_space_commit(s), -EEXIST);
	d1 = dump(s);
	assert_string_equal(d0, d1);
	assert_int_equal(gm_space_generation(s), 1);
	after = region_at(s, 0);
	assert_int_equal(after.id, before.id);
	assert_int_equal(region_count(s), 1);
	assert_int_equal(r.n, 0); /* no listener was bothered */
	/* The device added in the discarded transaction was released. */
	assert_int_equal(d.released, 1);
	check(s);
	free(d0);
	free(d1);
	gm_space_free(s);
}

/* Edits with a bad argument, for bad_argument_dooms_the_open_transaction. */
static int bad_add_zero_size(struct gm_space *s, struct gm_window **w)
{
	return gm_space_add_ram(s, 1 * MiB, 0, 0, 0, w);
}

static int bad_add_null_out(struct gm_space *s, struct gm_window **w)
{
	(void)w;
	return gm_space_add_ram(s, 1 * MiB, PAGE, 0, 0, NULL);
}

static int bad_add_reserved_zero_size(struct gm_space *s, struct gm_window **w)
{
	return gm_space_add_reserved(s, 1 * MiB, 0, "x", w);
}

static int bad_remove_null(struct gm_space *s, struct gm_window **w)
{
	(void)w;
	return gm_space_remove(s, NULL);
}

static int bad_move_null(struct gm_space *s, struct gm_window **w)
{
	(void)w;
	return gm_space_move(s, NULL, 1 * MiB);
}

static int bad_resize_null(struct gm_space *s, struct gm_window **w)
{
	(void)w;
	return gm_space_resize(s, NULL, 2 * PAGE);
}

static int bad_protect_null(struct gm_space *s, struct gm_window **w)
{
	(void)w;
	return gm_space_protect(s, NULL, 0, PAGE, GM_PROT_READ);
}

/*
 * "An edit that fails inside a transaction dooms it" holds for every failure,
 * also an argument rejected before the edit looks at the layout.
 */
static void bad_argument_dooms_the_open_transaction(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a = add_ram(s, 0, PAGE), *w = NULL;
	struct dev d = {0};
	struct gm_device_ops ops = dev_ops(GM_ACCESS_1, 0);
	int (*const bad_edit[])(struct gm_space *, struct gm_window **) = {
	    bad_add_zero_size,
	    bad_add_null_out,
	    bad_remove_null,
	    bad_move_null,
	    bad_resize_null,
	    bad_protect_null,
	    bad_add_reserved_zero_size,
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_edit) / sizeof(bad_edit[0]); i++) {
		char *before = dump(s), *after;

		assert_int_equal(gm_space_begin(s), 0);
		assert_int_equal(gm_space_protect(s, a, 0, PAGE, GM_PROT_READ), 0);
		assert_int_equal(bad_edit[i](s, &w), -EINVAL);
		assert_int_equal(gm_space_add_mmio(s, 0x10000, 4, &ops, &d, &w), -ECANCELED);
		assert_int_equal(gm_space_commit(s), -EINVAL);
		after = dump(s);
		assert_string_equal(before, after);
		assert_int_equal(gm_space_generation(s), 1);
		free(before);
		free(after);
	}
	check(s);
	gm_space_free(s);
}

static void abort_discards_and_nested_transactions_commit_once(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a;

	(void)state;
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 0, 0, &a), 0);
	assert_int_equal(gm_space_abort(s), 0);
	assert_int_equal(region_count(s), 0);
	assert_int_equal(gm_space_remove(s, a), -ENOENT);

	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 0, 0, &a), 0);
	assert_int_equal(gm_space_commit(s), 0); /* inner */
	assert_int_equal(gm_space_generation(s), 0);
	assert_int_equal(gm_space_add_ram(s, PAGE, PAGE, 0, 0, &a), 0);
	assert_int_equal(gm_space_commit(s), 0); /* outer */
	assert_int_equal(gm_space_generation(s), 1);
	assert_int_equal(region_count(s), 2);

	/* An inner abort dooms the whole transaction. */
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_remove(s, a), 0);
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_abort(s), 0);
	assert_int_equal(gm_space_commit(s), -ECANCELED);
	assert_int_equal(region_count(s), 2);
	check(s);
	gm_space_free(s);
}

/* ---- listeners ---- */

static void listener_sees_exact_events_in_order(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a, *b;
	struct rec r = {0};
	uint64_t id_a;

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, NULL), 0);
	assert_int_equal(r.n, 0); /* empty space: no replay */

	a = add_ram(s, 1 * MiB, 4 * PAGE);
	{
		static const char *const want[] = {"prepare add 0x100000+0x4000", "prepare end",
						   "commit add 0x100000+0x4000", "commit end"};
		assert_log(&r, want, 4);
	}
	assert_int_equal(r.last[0].region.slot, 0);
	assert_int_equal(r.last[0].region.kind, GM_WINDOW_RAM);
	assert_ptr_equal(r.last[0].region.window, a);
	assert_non_null(r.last[0].region.dirty);
	assert_int_equal(r.view_regions, 1); /* commit ran after publication */
	id_a = r.last[0].region.id;
	assert_int_not_equal(id_a, 0);

	/* Whole-window protection change: the same region, new flags. */
	r.n = 0;
	assert_int_equal(gm_space_protect(s, a, 0, 4 * PAGE, GM_PROT_READ), 0);
	assert_int_equal(r.nlast, 1);
	assert_int_equal(r.last[0].kind, GM_CHANGE_FLAGS);
	assert_int_equal(r.last[0].region.id, id_a);
	assert_int_equal(r.last[0].old_flags, 0);
	assert_int_equal(r.last[0].old_prot, GM_PROT_ALL);
	assert_int_equal(r.last[0].region.flags, GM_REGION_READONLY | GM_REGION_NOEXEC);

	/* A split: remove, then the three runs added with new ids. */
	r.n = 0;
	assert_int_equal(gm_space_protect(s, a, PAGE, PAGE, GM_PROT_ALL), 0);
	{
		static const char *const want[] = {"prepare remove 0x100000+0x4000",
						   "prepare add 0x100000+0x1000",
						   "prepare add 0x101000+0x1000",
						   "prepare add 0x102000+0x2000",
						   "prepare end",
						   "commit remove 0x100000+0x4000",
						   "commit add 0x100000+0x1000",
						   "commit add 0x101000+0x1000",
						   "commit add 0x102000+0x2000",
						   "commit end"};
		assert_log(&r, want, 10);
	}
	/* The freed slot 0 is reused by the first add; ids are new. */
	assert_int_equal(r.last[1].region.slot, 0);
	assert_int_equal(r.last[2].region.slot, 1);
	assert_int_equal(r.last[3].region.slot, 2);
	assert_true(r.last[1].region.id > id_a);
	assert_int_equal(r.last[2].region.dirty_offset, PAGE);

	/* An unrelated add leaves the others' ids alone: only one event. */
	r.n = 0;
	b = add_ram(s, 0, PAGE);
	assert_int_equal(r.nlast, 1);
	assert_int_equal(r.last[0].kind, GM_CHANGE_ADD);
	assert_int_equal(r.last[0].region.slot, 3);

	/* Move: remove + add. MMIO windows produce no events. */
	r.n = 0;
	assert_int_equal(gm_space_move(s, b, 8 * MiB), 0);
	{
		static const char *const want[] = {
		    "prepare remove 0x0+0x1000", "prepare add 0x800000+0x1000", "prepare end",
		    "commit remove 0x0+0x1000",	 "commit add 0x800000+0x1000",	"commit end"};
		assert_log(&r, want, 6);
	}
	r.n = 0;
	{
		struct gm_window *rw;

		assert_int_equal(gm_space_add_reserved(s, 64 * MiB, PAGE, "r", &rw), 0);
	}
	assert_int_equal(r.n, 0);
	check(s);
	gm_space_free(s);
}

static void listener_added_late_gets_the_current_regions(void **state)
{
	struct gm_space *s = new_space(0);
	struct rec r = {0}, v = {.veto = -ENOSPC};
	struct gm_space_listener *l = NULL;
	struct gm_window *rom;

	(void)state;
	add_ram(s, 0, PAGE);
	assert_int_equal(gm_space_add_rom(s, 1 * MiB, PAGE, "x", 1, &rom), 0);
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, &l), 0);
	{
		static const char *const want[] = {
		    "prepare add 0x0+0x1000", "prepare add 0x100000+0x1000", "prepare end",
		    "commit add 0x0+0x1000",  "commit add 0x100000+0x1000",  "commit end"};
		assert_log(&r, want, 6);
	}
	assert_int_equal(r.last[1].region.kind, GM_WINDOW_ROM);
	assert_null(r.last[1].region.dirty);
	assert_int_equal(r.last[1].region.flags, GM_REGION_ROM | GM_REGION_READONLY);
	/* A veto at registration: not registered, no rollback. */
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &v, NULL), -ENOSPC);
	assert_int_equal(v.n, 3);
	r.n = 0;
	add_ram(s, 2 * MiB, PAGE);
	assert_int_equal(v.n, 3);
	assert_int_equal(r.n, 4);
	assert_int_equal(gm_space_listener_remove(s, l), 0);
	assert_int_equal(gm_space_listener_remove(s, l), -ENOENT);
	r.n = 0;
	add_ram(s, 3 * MiB, PAGE);
	assert_int_equal(r.n, 0);
	gm_space_free(s);
}

static void listener_veto_rolls_back_and_leaves_the_space_as_before(void **state)
{
	struct gm_space *s = new_space(0);
	struct rec a = {0}, b = {0}, c = {0};
	struct gm_window *w = add_ram(s, 0, 4 * PAGE), *x = NULL;
	struct gm_space_region before = region_at(s, 0);
	char *d0, *d1;

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &a, NULL), 0);
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &b, NULL), 0);
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &c, NULL), 0);
	a.n = b.n = c.n = 0;
	b.veto = -EBUSY;
	d0 = dump(s);
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_protect(s, w, 0, PAGE, GM_PROT_READ), 0);
	assert_int_equal(gm_space_add_ram(s, 1 * MiB, PAGE, 0, 0, &x), 0);
	assert_int_equal(gm_space_commit(s), -EBUSY);
	{
		static const char *const want_a[] = {"prepare remove 0x0+0x4000",
						     "prepare add 0x0+0x1000",
						     "prepare add 0x1000+0x3000",
						     "prepare add 0x100000+0x1000",
						     "prepare end",
						     "rollback remove 0x0+0x4000",
						     "rollback add 0x0+0x1000",
						     "rollback add 0x1000+0x3000",
						     "rollback add 0x100000+0x1000",
						     "rollback end"};
		assert_log(&a, want_a, 10);
	}
	assert_int_equal(b.n, 5); /* prepared, vetoed, not rolled back */
	assert_int_equal(c.n, 0); /* never asked */
	d1 = dump(s);
	assert_string_equal(d0, d1);
	assert_int_equal(gm_space_generation(s), 1);
	assert_int_equal(region_at(s, 0).id, before.id);
	check(s);

	/* The ids the failed commit handed out are not skipped. */
	b.veto = 0;
	assert_int_equal(gm_space_protect(s, w, 0, PAGE, GM_PROT_READ), 0);
	assert_int_equal(region_at(s, 0).id, before.id + 1);
	free(d0);
	free(d1);
	gm_space_free(s);
}

/* A device add that returned 0 is released once, when its transaction is discarded. */
static void vetoed_transaction_releases_its_devices_once(void **state)
{
	struct gm_space *s = new_space(0);
	struct rec v = {0};
	struct dev d = {0}, e = {0};
	struct gm_device_ops ops = dev_ops(GM_ACCESS_1, 0);
	struct gm_window *w = NULL;

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &v, NULL), 0);
	v.veto = -EPERM;
	/* A device changes no region of the view: no listener is asked. */
	assert_int_equal(gm_space_add_mmio(s, 0x10000, 4, &ops, &d, &w), 0);
	assert_non_null(w);
	assert_int_equal(v.n, 0);
	/* A device and RAM in one transaction, vetoed at commit. */
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_add_mmio(s, 0x20000, 4, &ops, &e, &w), 0);
	assert_int_equal(gm_space_add_ram(s, 1 * MiB, PAGE, 0, 0, &w), 0);
	assert_int_equal(gm_space_commit(s), -EPERM);
	assert_int_equal(e.released, 1);
	assert_int_equal(d.released, 0);
	assert_int_equal(gm_space_find(s, 0x20000, &GM_OPTS(gm_window_info)), -EFAULT);
	check(s);
	gm_space_free(s);
	assert_int_equal(d.released, 1);
	assert_int_equal(e.released, 1);
}

static void listener_cannot_edit_the_space(void **state)
{
	struct gm_space *s = new_space(0);
	struct rec r = {.try_edit = true};

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, NULL), 0);
	add_ram(s, 0, PAGE);
	assert_int_equal(r.edit_err, -EDEADLK);
	assert_int_equal(region_count(s), 1);
	check(s);
	gm_space_free(s);
}

/* A listener that tries to run transactions from inside its prepare. */
struct txn_try {
	int begin_err, commit_err, abort_err, remove_err;
	struct gm_space_listener *self;
};

static int txn_try_prepare(void *opaque, struct gm_space *s, const struct gm_space_change *c,
			   size_t n)
{
	struct txn_try *t = opaque;

	(void)c;
	(void)n;
	t->begin_err = gm_space_begin(s);
	t->commit_err = gm_space_commit(s);
	t->abort_err = gm_space_abort(s);
	t->remove_err = gm_space_listener_remove(s, t->self);
	return 0;
}

static void listener_cannot_begin_commit_abort_or_unregister(void **state)
{
	static const struct gm_space_listener_ops ops =
	    GM_OPTS_INIT(gm_space_listener_ops, .prepare = txn_try_prepare);
	struct gm_space *s = new_space(0);
	struct txn_try t = {0};

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &ops, &t, &t.self), 0);
	add_ram(s, 0, PAGE);
	assert_int_equal(t.begin_err, -EDEADLK);
	assert_int_equal(t.commit_err, -EPERM);
	assert_int_equal(t.abort_err, -EPERM);
	assert_int_equal(t.remove_err, -EDEADLK);
	assert_int_equal(region_count(s), 1);
	assert_int_equal(gm_space_generation(s), 1);
	check(s);
	gm_space_free(s);
}

static void listener_add_and_remove_refuse_an_open_transaction(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_space_listener *l = NULL;
	struct rec r = {0};

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, &l), 0);
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_listener_remove(s, l), -EDEADLK);
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, NULL), -EDEADLK);
	assert_int_equal(gm_space_commit(s), 0);
	assert_int_equal(gm_space_listener_remove(s, l), 0);
	assert_int_equal(gm_space_listener_remove(s, l), -ENOENT);
	assert_int_equal(r.n, 0);
	gm_space_free(s);
}

/* ---- dispatch ---- */

static void eight_bytes_to_a_four_byte_device_is_two_calls(void **state)
{
	struct gm_space *s = new_space(0);
	struct dev d = {.mem = {1, 2, 3, 4, 5, 6, 7, 8}};
	uint64_t v = 0;

	(void)state;
	add_dev(s, 0x10000, 16, &d, GM_ACCESS_4, 0);
	assert_int_equal(gm_space_read(s, 0x10000, &v, 8), 0);
	assert_int_equal(v, 0x0807060504030201ull);
	assert_int_equal(d.ncalls, 2);
	assert_call(&d, 0, 'r', 0, 4, 0x04030201);
	assert_call(&d, 1, 'r', 4, 4, 0x08070605);
	d.ncalls = 0;
	v = 0x1122334455667788ull;
	assert_int_equal(gm_space_write(s, 0x10008, &v, 8), 0);
	assert_int_equal(d.ncalls, 2);
	assert_call(&d, 0, 'w', 8, 4, 0x55667788);
	assert_call(&d, 1, 'w', 12, 4, 0x11223344);
	gm_space_free(s);
}

static void small_access_to_a_wide_device_is_refused_or_rmw(void **state)
{
	struct gm_space *s = new_space(0);
	struct dev d = {.mem = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}};
	struct dev e = d;
	uint16_t h = 0;

	(void)state;
	add_dev(s, 0x1000, 8, &d, GM_ACCESS_4, 0);
	assert_int_equal(gm_space_read(s, 0x1002, &h, 2), -EOPNOTSUPP);
	assert_int_equal(gm_space_write(s, 0x1002, &h, 2), -EOPNOTSUPP);
	assert_int_equal(d.ncalls, 0);

	add_dev(s, 0x2000, 8, &e, GM_ACCESS_4, GM_DEVICE_RMW);
	assert_int_equal(gm_space_read(s, 0x2002, &h, 2), 0);
	assert_int_equal(h, 0x4433);
	assert_int_equal(e.ncalls, 1);
	assert_call(&e, 0, 'r', 0, 4, 0x44332211);
	e.ncalls = 0;
	h = 0xbbaa;
	assert_int_equal(gm_space_write(s, 0x2002, &h, 2), 0);
	assert_int_equal(e.ncalls, 2);
	assert_call(&e, 0, 'r', 0, 4, 0x44332211);
	assert_call(&e, 1, 'w', 0, 4, 0xbbaa2211);
	/* Straddling two units: two read-modify-writes. */
	e.ncalls = 0;
	h = 0xddcc;
	assert_int_equal(gm_space_write(s, 0x2003, &h, 2), 0);
	assert_int_equal(e.ncalls, 4);
	assert_call(&e, 1, 'w', 0, 4, 0xccaa2211);
	assert_call(&e, 3, 'w', 4, 4, 0x887766dd);
	gm_space_free(s);
}

/*
 * Read-modify-write has limits: a unit reaching past the window's end is
 * -EOPNOTSUPP, and so is a partial write to a device with no read callback,
 * even one starting on a unit boundary. The device sees no call.
 */
static void rmw_past_the_window_end_or_without_read_is_refused(void **state)
{
	struct gm_space *s = new_space(0);
	struct dev d = {0}, e = {0};
	struct gm_device_ops wo = dev_ops(GM_ACCESS_4, GM_DEVICE_RMW);
	struct gm_window *w = NULL;
	uint32_t v = 0x12345678;
	uint8_t b = 0x5a;

	(void)state;
	/* Six bytes: the 4-byte unit at offset 4 would reach past the end. */
	add_dev(s, 0x1000, 6, &d, GM_ACCESS_4, GM_DEVICE_RMW);
	assert_int_equal(gm_space_write(s, 0x1005, &b, 1), -EOPNOTSUPP);
	assert_int_equal(gm_space_read(s, 0x1004, &b, 1), -EOPNOTSUPP);
	assert_int_equal(d.ncalls, 0);
	assert_int_equal(gm_space_write(s, 0x1001, &b, 1), 0); /* the unit at 0 fits */
	assert_int_equal(d.ncalls, 2);
	assert_call(&d, 1, 'w', 0, 4, 0x5a00);

	wo.read = NULL;
	assert_int_equal(gm_space_add_mmio(s, 0x2000, 8, &wo, &e, &w), 0);
	assert_int_equal(gm_space_write(s, 0x2000, &b, 1), -EOPNOTSUPP);
	assert_int_equal(gm_space_write(s, 0x2001, &b, 1), -EOPNOTSUPP);
	assert_int_equal(e.ncalls, 0);
	assert_int_equal(gm_space_write(s, 0x2004, &v, 4), 0); /* a whole unit needs no read */
	assert_int_equal(e.ncalls, 1);
	assert_call(&e, 0, 'w', 4, 4, 0x12345678);
	gm_space_free(s);
}

static void unaligned_access_splits_by_alignment_unless_allowed(void **state)
{
	struct gm_space *s = new_space(0);
	struct dev d = {0}, u = {0};
	uint32_t v = 0x44332211;

	(void)state;
	add_dev(s, 0x1000, 16, &d, GM_ACCESS_1 | GM_ACCESS_2 | GM_ACCESS_4, 0);
	assert_int_equal(gm_space_write(s, 0x1002 + 1, &v, 4), 0);
	/* offset 3: 1 byte, then offset 4: 2 bytes (only 3 left), then offset 6: 1. */
	assert_int_equal(d.ncalls, 3);
	assert_call(&d, 0, 'w', 3, 1, 0x11);
	assert_call(&d, 1, 'w', 4, 2, 0x3322);
	assert_call(&d, 2, 'w', 6, 1, 0x44);

	add_dev(s, 0x2000, 16, &u, GM_ACCESS_4, GM_DEVICE_UNALIGNED);
	assert_int_equal(gm_space_write(s, 0x2003, &v, 4), 0);
	assert_int_equal(u.ncalls, 1);
	assert_call(&u, 0, 'w', 3, 4, 0x44332211);
	gm_space_free(s);
}

static void device_errors_pass_through(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_device_ops wo = dev_ops(GM_ACCESS_1, 0);
	struct dev d = {.fail = -EIO}, w = {0};
	struct gm_window *win;
	uint8_t x;

	(void)state;
	add_dev(s, 0x1000, 4, &d, GM_ACCESS_1, 0);
	assert_int_equal(gm_space_read(s, 0x1000, &x, 1), -EIO);
	assert_int_equal(gm_space_write(s, 0x1000, &x, 1), -EIO);
	wo.read = NULL;
	assert_int_equal(gm_space_add_mmio(s, 0x2000, 4, &wo, &w, &win), 0);
	assert_int_equal(gm_space_read(s, 0x2000, &x, 1), -EACCES);
	assert_int_equal(gm_space_write(s, 0x2000, &x, 1), 0);
	gm_space_free(s);
}

static void dispatch_crosses_ram_into_a_device_and_refuses_holes(void **state)
{
	struct gm_space *s = new_space(0);
	struct dev d = {.mem = {0xaa, 0xbb}};
	struct gm_window *r;
	unsigned char buf[4] = {0};

	(void)state;
	add_ram(s, 0, PAGE);
	add_dev(s, PAGE, 2, &d, GM_ACCESS_1, 0);
	assert_int_equal(gm_space_write(s, PAGE - 2, "\x01\x02", 2), 0);
	assert_int_equal(gm_space_read(s, PAGE - 2, buf, 4), 0);
	assert_memory_equal(buf, "\x01\x02\xaa\xbb", 4);
	/* One byte past the device: a hole; nothing is called or copied. */
	d.ncalls = 0;
	assert_int_equal(gm_space_write(s, PAGE - 2, "zzzzz", 5), -EFAULT);
	assert_int_equal(d.ncalls, 0);
	assert_int_equal(gm_space_read(s, PAGE - 2, buf, 2), 0);
	assert_memory_equal(buf, "\x01\x02", 2);
	/* Reserved windows, wrapping ranges, NULL buffers. */
	assert_int_equal(gm_space_add_reserved(s, 1 * MiB, PAGE, "pci-hole", &r), 0);
	assert_int_equal(gm_space_read(s, 1 * MiB, buf, 1), -EFAULT);
	assert_int_equal(gm_space_read(s, UINT64_MAX, buf, 2), -EFAULT);
	assert_int_equal(gm_space_read(s, 0, NULL, 1), -EINVAL);
	assert_int_equal(gm_space_read(s, 0, NULL, 0), 0);
	assert_int_equal(gm_space_read(NULL, 0, buf, 1), -EINVAL);
	gm_space_free(s);
}

/* A device whose write moves its own window: an edit from inside a read section. */
struct mover {
	struct gm_space *s;
	struct gm_window *w;
	int err;
};

static int mover_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	struct mover *m = opaque;

	(void)offset;
	(void)size;
	m->err = gm_space_move(m->s, m->w, val);
	return 0;
}

static void device_callback_may_edit_the_space(void **state)
{
	struct gm_space *s = new_space(0);
	struct mover mv = {.s = s};
	struct gm_device_ops ops =
	    GM_OPTS(gm_device_ops, .name = "bar", .write = mover_write, .sizes = GM_ACCESS_8);
	uint64_t to = 0x200000;
	struct gm_window_info wi = GM_OPTS(gm_window_info);

	(void)state;
	assert_int_equal(gm_space_add_mmio(s, 0x100000, 8, &ops, &mv, &mv.w), 0);
	assert_int_equal(gm_space_write(s, 0x100000, &to, 8), 0);
	assert_int_equal(mv.err, 0);
	assert_int_equal(gm_space_window_info(s, mv.w, &wi), 0);
	assert_int_equal(wi.gpa, 0x200000);
	assert_int_equal(gm_space_synchronize(s), 0);
	gm_rcu_read_lock();
	assert_int_equal(gm_space_synchronize(s), -EDEADLK);
	gm_rcu_read_unlock();
	check(s);
	gm_space_free(s);
}

/* Invariant 5: a layout replaced inside a read section is freed only later. */
static void commit_inside_a_read_section_defers_the_release(void **state)
{
	struct gm_space *s = new_space(0);
	struct dev d = {0};
	struct gm_window *w = add_dev(s, 0x1000, 4, &d, GM_ACCESS_1, 0);
	struct rec r = {0};
	uint8_t x;

	(void)state;
	gm_rcu_read_lock();
	assert_int_equal(gm_space_remove(s, w), 0);
	/* This reader could still be inside the device. */
	assert_int_equal(d.released, 0);
	assert_int_equal(gm_space_read(s, 0x1000, &x, 1), -EFAULT);
	gm_rcu_read_unlock();
	assert_int_equal(gm_space_synchronize(s), 0);
	assert_int_equal(d.released, 1);
	assert_int_equal(gm_space_synchronize(NULL), -EINVAL);

	/* Registering a listener with a transaction open in this thread. */
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, NULL), -EDEADLK);
	assert_int_equal(gm_space_abort(s), 0);
	check(s);
	gm_space_free(s);
}

static void regions_reports_enobufs_with_the_count(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_space_region r[1];
	size_t n = 0;

	(void)state;
	add_ram(s, 0, PAGE);
	add_ram(s, 2 * PAGE, PAGE);
	assert_int_equal(gm_space_regions(s, r, 1, &n), -ENOBUFS);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].gpa, 0);
	assert_int_not_equal(r[0].slot, 2);
	assert_int_equal(gm_space_regions(s, NULL, 1, &n), -EINVAL);
	gm_space_free(s);
}

/* ---- port I/O ---- */

static void port_io_space_takes_devices_below_64k(void **state)
{
	struct gm_space *s = new_space(GM_SPACE_PIO);
	struct dev serial = {.mem = {'A'}};
	struct gm_device_ops ops = dev_ops(GM_ACCESS_1, 0);
	struct gm_mapping *m;
	struct gm_window *w;
	uint8_t x = 0;

	(void)state;
	assert_int_equal(gm_space_flags(s), GM_SPACE_PIO);
	assert_int_equal(gm_space_add_mmio(s, 0x3f8, 8, &ops, &serial, &w), 0);
	assert_int_equal(gm_space_read(s, 0x3f8, &x, 1), 0);
	assert_int_equal(x, 'A');
	assert_int_equal(gm_space_write(s, 0x3f9, "B", 1), 0);
	assert_int_equal(serial.mem[1], 'B');
	assert_int_equal(gm_space_read(s, 0x3f0, &x, 1), -EFAULT);
	assert_int_equal(gm_space_read(s, 0x10000, &x, 1), -EFAULT);
	assert_int_equal(gm_space_add_mmio(s, 0xfffc, 8, &ops, &serial, &w), -ERANGE);
	assert_int_equal(gm_space_add_mmio(s, 0xfff8, 8, &ops, &serial, &w), 0);
	assert_int_equal(gm_space_add_reserved(s, 0x10000, 1, "x", &w), -ERANGE);
	assert_int_equal(gm_space_move(s, w, 0xfffc), -ERANGE);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 0, 0, &w), -EOPNOTSUPP);
	assert_int_equal(gm_space_add_rom(s, 0, PAGE, NULL, 0, &w), -EOPNOTSUPP);
	assert_int_equal(gm_mapping_new_anon(PAGE, 0, &m), 0);
	assert_int_equal(gm_space_add_ram_mapping(s, 0, PAGE, m, 0, &w), -EOPNOTSUPP);
	gm_mapping_put(m);
	check(s);
	gm_space_free(s);
}

/* ---- inspection ---- */

static void dump_prints_the_table(void **state)
{
	struct gm_space *s = new_space(0);
	struct dev d = {0};
	struct gm_window *a, *r;
	char *text;
	char small[16];
	size_t need = 0;

	(void)state;
	a = add_ram(s, 0, 8 * PAGE);
	assert_int_equal(gm_space_protect(s, a, PAGE, PAGE, GM_PROT_READ), 0);
	assert_int_equal(gm_space_add_reserved(s, 3 * GiB, 512 * MiB, "pci-hole", &r), 0);
	add_dev(s, 0xfee00000, 0x1000, &d, GM_ACCESS_4, 0);
	text = dump(s);
	assert_string_equal(
	    text,
	    "KIND      FIRST              LAST               SIZE       PROT BACKING  NAME\n"
	    "ram       0x0000000000000000 0x0000000000000fff 4 KiB      rwx  anon\n"
	    "ram       0x0000000000001000 0x0000000000001fff 4 KiB      r--  anon\n"
	    "ram       0x0000000000002000 0x0000000000007fff 24 KiB     rwx  anon\n"
	    "reserved  0x00000000c0000000 0x00000000dfffffff 512 MiB    ---  none     pci-hole\n"
	    "mmio      0x00000000fee00000 0x00000000fee00fff 4 KiB      rw-  device   testdev\n");
	assert_int_equal(gm_space_dump(s, small, sizeof(small), &need), -ENOBUFS);
	assert_int_equal(need, strlen(text));
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_int_equal(strncmp(small, text, sizeof(small) - 1), 0);
	assert_int_equal(gm_space_dump(NULL, small, sizeof(small), &need), -EINVAL);
	assert_int_equal(gm_space_dump(s, NULL, 1, &need), -EINVAL);
	free(text);
	gm_space_free(s);
}

static void windows_lists_every_window_in_order(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window_info wi[4] = {GM_OPTS(gm_window_info)};
	struct dev d = {0};
	struct gm_window *r;
	size_t n = 0;

	(void)state;
	add_dev(s, 0xd0000000, 0x100, &d, GM_ACCESS_4, 0);
	add_ram(s, 0, PAGE);
	assert_int_equal(gm_space_add_reserved(s, 0xc0000000, PAGE, "hole", &r), 0);
	assert_int_equal(gm_space_windows(s, wi, 2, &n), -ENOBUFS);
	assert_int_equal(n, 3);
	assert_int_equal(gm_space_windows(s, wi, 4, &n), 0);
	assert_int_equal(wi[0].kind, GM_WINDOW_RAM);
	assert_int_equal(wi[1].kind, GM_WINDOW_RESERVED);
	assert_string_equal(wi[1].name, "hole");
	assert_null(wi[1].host);
	assert_int_equal(wi[2].kind, GM_WINDOW_MMIO);
	assert_ptr_equal(wi[2].opaque, &d);
	assert_string_equal(wi[2].ops->name, "testdev");
	wi[3] = GM_OPTS(gm_window_info); /* gm_space_windows() filled 3 */
	assert_int_equal(gm_space_find(s, 0xd00000ff, &wi[3]), 0);
	assert_int_equal(wi[3].gpa, 0xd0000000);
	assert_int_equal(gm_space_find(s, 0xd0000100, &wi[3]), -EFAULT);
	assert_int_equal(gm_space_windows(s, NULL, 1, &n), -EINVAL);
	gm_space_free(s);
}

/* Every function with an errno says -EINVAL for a NULL space; the queries 0 / false. */
static void null_space_is_einval_and_queries_are_zero(void **state)
{
	static const struct gm_space_listener_ops ops = GM_OPTS_INIT(gm_space_listener_ops);
	struct gm_space *s = new_space(0);
	struct gm_space_listener *l = NULL;
	struct gm_window_info info = GM_OPTS(gm_window_info);
	struct gm_memory *m = NULL;
	struct gm_window *w = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(gm_space_new(0, NULL), -EINVAL);
	assert_int_equal(gm_space_begin(NULL), -EINVAL);
	assert_int_equal(gm_space_commit(NULL), -EINVAL);
	assert_int_equal(gm_space_abort(NULL), -EINVAL);
	assert_int_equal(gm_space_synchronize(NULL), -EINVAL);
	assert_int_equal(gm_space_memory_get(NULL, &m), -EINVAL);
	assert_int_equal(gm_space_memory_get(s, NULL), -EINVAL);
	assert_null(m);
	assert_int_equal(gm_space_read(NULL, 0, &n, 1), -EINVAL);
	assert_int_equal(gm_space_write(NULL, 0, &n, 1), -EINVAL);
	assert_int_equal(gm_space_write(s, 0, NULL, 1), -EINVAL);
	assert_int_equal(gm_space_listener_add(NULL, &ops, NULL, &l), -EINVAL);
	assert_int_equal(gm_space_listener_add(s, NULL, NULL, &l), -EINVAL);
	assert_null(l);
	assert_int_equal(gm_space_listener_remove(NULL, l), -EINVAL);
	assert_int_equal(gm_space_listener_remove(s, NULL), -EINVAL);
	assert_int_equal(gm_space_windows(NULL, NULL, 0, &n), -EINVAL);
	assert_int_equal(gm_space_windows(s, NULL, 0, NULL), -EINVAL);
	assert_int_equal(gm_space_regions(NULL, NULL, 0, &n), -EINVAL);
	assert_int_equal(gm_space_regions(s, NULL, 1, &n), -EINVAL);
	assert_int_equal(gm_space_find(NULL, 0, &info), -EINVAL);
	assert_int_equal(gm_space_find(s, 0, NULL), -EINVAL);
	assert_int_equal(gm_space_dirty_enable(NULL, true), -EINVAL);
	assert_int_equal(gm_space_dump_file(NULL, stdout), -EINVAL);
	assert_int_equal(gm_space_dump_file(s, NULL), -EINVAL);
	assert_int_equal(gm_space_remove(NULL, w), -EINVAL);
	assert_int_equal(gm_space_flags(NULL), 0);
	assert_int_equal(gm_space_generation(NULL), 0);
	assert_false(gm_space_dirty_enabled(NULL));
	gm_space_free(NULL);
	assert_int_equal(gm_space_generation(s), 0);
	gm_space_free(s);
}

static void dump_file_writes_the_dump_and_reports_eio(void **state)
{
	struct gm_space *s = new_space(0);
	char *text, *got = NULL;
	size_t got_len = 0;
	FILE *f;

	(void)state;
	add_ram(s, 0, 2 * PAGE);
	assert_int_equal(gm_space_add_reserved(s, 1 * MiB, PAGE, "hole", NULL), -EINVAL);
	assert_int_equal(gm_space_add_reserved(s, 1 * MiB, PAGE, "hole", &(struct gm_window *){0}),
			 0);
	text = dump(s);
	f = open_memstream(&got, &got_len);
	assert_non_null(f);
	assert_int_equal(gm_space_dump_file(s, f), 0);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(got, text);
	assert_int_equal(got_len, strlen(text));
	/* A stream that cannot be written. */
	f = fopen("/dev/null", "r");
	assert_non_null(f);
	assert_int_equal(gm_space_dump_file(s, f), -EIO);
	fclose(f);
	free(got);
	free(text);
	gm_space_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
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
	    cmocka_unit_test(transaction_publishes_one_view),
	    cmocka_unit_test(failing_edit_in_a_transaction_leaves_the_space_as_before),
	    cmocka_unit_test(bad_argument_dooms_the_open_transaction),
	    cmocka_unit_test(abort_discards_and_nested_transactions_commit_once),
	    cmocka_unit_test(listener_sees_exact_events_in_order),
	    cmocka_unit_test(listener_added_late_gets_the_current_regions),
	    cmocka_unit_test(listener_veto_rolls_back_and_leaves_the_space_as_before),
	    cmocka_unit_test(vetoed_transaction_releases_its_devices_once),
	    cmocka_unit_test(listener_cannot_edit_the_space),
	    cmocka_unit_test(listener_cannot_begin_commit_abort_or_unregister),
	    cmocka_unit_test(listener_add_and_remove_refuse_an_open_transaction),
	    cmocka_unit_test(eight_bytes_to_a_four_byte_device_is_two_calls),
	    cmocka_unit_test(small_access_to_a_wide_device_is_refused_or_rmw),
	    cmocka_unit_test(rmw_past_the_window_end_or_without_read_is_refused),
	    cmocka_unit_test(unaligned_access_splits_by_alignment_unless_allowed),
	    cmocka_unit_test(device_errors_pass_through),
	    cmocka_unit_test(dispatch_crosses_ram_into_a_device_and_refuses_holes),
	    cmocka_unit_test(device_callback_may_edit_the_space),
	    cmocka_unit_test(commit_inside_a_read_section_defers_the_release),
	    cmocka_unit_test(regions_reports_enobufs_with_the_count),
	    cmocka_unit_test(port_io_space_takes_devices_below_64k),
	    cmocka_unit_test(dump_prints_the_table),
	    cmocka_unit_test(windows_lists_every_window_in_order),
	    cmocka_unit_test(null_space_is_einval_and_queries_are_zero),
	    cmocka_unit_test(dump_file_writes_the_dump_and_reports_eio),
	};
	int rc;

	gm_rcu_register_thread();
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	gm_rcu_unregister_thread();
	return rc;
}
