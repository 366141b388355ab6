/* SPDX-License-Identifier: MIT */
/*
 * tests/test_snapshot_save.c - snapshot files: full and delta saves and
 * their round trip in every restore mode, delta chains and stale bases,
 * zero pages as holes, ROMs and split RAM; every byte of a header and
 * layout corrupted, forged layouts, data damage caught by the chunk
 * checksums, truncation at every page boundary; a full disk and a failing
 * save; progress and cancel; lazy restore under concurrent first touches,
 * with a damaged chunk, and its memory use.
 * Part of the test_snapshot program (test_snapshot.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <guestmem/snapshot.h>

#include "snapshot/snapshot-internal.h"
#include "threads.h"

#include "snapshot_helpers.h"

/* ---- helpers ---- */

/* A copy of the guest's current RAM, as a fresh view (for later comparison). */
static struct gm_memory *clone_memory(const struct gm_memory *m)
{
	struct gm_memory *c;

	assert_int_equal(gm_memory_new_anon(layout, NREGIONS, &c), 0);
	for (size_t i = 0; i < NREGIONS; i++) {
		size_t len = (size_t)layout[i].size;
		unsigned char *x = malloc(len);

		assert_non_null(x);
		assert_int_equal(gm_read(m, layout[i].gpa, x, len), 0);
		assert_int_equal(gm_write(c, layout[i].gpa, x, len), 0);
		free(x);
	}
	return c;
}

/* Restore @path in every mode and compare with @want. */
static void assert_restores_to(const char *path, const struct gm_memory *want)
{
	const enum gm_restore_mode modes[] = {GM_RESTORE_COPY, GM_RESTORE_PRIVATE, GM_RESTORE_LAZY};
	struct gm_snapshot *s;
	struct gm_memory *m;
	const char *why;

	/* Mode 1 into an existing (dirty) view. */
	assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
	assert_int_equal(gm_memory_new_anon(layout, NREGIONS, &m), 0);
	fill_guest(m, 50);
	assert_int_equal(gm_snapshot_restore(s, m, NULL), 0);
	assert_same_memory(m, want);
	gm_memory_put(m);
	for (size_t i = 0; i < 3; i++) {
		if (modes[i] == GM_RESTORE_LAZY && !lazy_testable(&why))
			continue; /* reported by lazy_restore_* */
		assert_int_equal(gm_snapshot_restore_new(s, modes[i], NULL, &m), 0);
		assert_same_memory(m, want);
		gm_memory_put(m);
	}
	assert_int_equal(gm_snapshot_lazy_errors(s), 0);
	assert_true(gm__snapshot_invariants_ok(s));
	gm_snapshot_close(s);
}

static int count_tmp_files(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strstr(e->d_name, ".tmp-") != NULL;
	closedir(d);
	return n;
}

static void copy_file(const char *from, const char *to)
{
	struct stat st;
	int a = open(from, O_RDONLY), b = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	char buf[65536];
	ssize_t n;

	assert_true(a >= 0 && b >= 0);
	while ((n = read(a, buf, sizeof(buf))) > 0)
		assert_int_equal(write(b, buf, (size_t)n), n);
	assert_int_equal(fstat(a, &st), 0);
	assert_int_equal(ftruncate(b, st.st_size), 0);
	close(a);
	close(b);
}

/* ---- tests ---- */

static void full_save_round_trips_in_all_modes(void **state)
{
	struct guest g;
	struct gm_snapshot *s;
	struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);

	(void)state;
	guest_new(&g);
	fill_guest(g.m, 30);
	assert_int_equal(gm_snapshot_save(g.m, path_of("full"), NULL), 0);
	assert_int_equal(count_tmp_files(), 0);
	assert_int_equal(gm_snapshot_open(path_of("full"), 0, &s), 0);
	assert_int_equal(gm_snapshot_describe(s, &info), 0);
	assert_int_equal(info.nregions, NREGIONS);
	assert_int_equal(info.flags, 0);
	assert_int_equal(info.chain_length, 1);
	assert_int_equal(info.ram_size, 6 * MiB + 12 * KiB);
	assert_int_equal(info.defined_pages, info.ram_size / PAGE);
	assert_true(info.data_pages > 0 && info.data_pages < info.defined_pages);
	assert_int_equal(gm_snapshot_verify(s, NULL, NULL), 0);
	gm_snapshot_close(s);
	assert_restores_to(path_of("full"), g.m);
	guest_free(&g);
}

static void full_save_clears_dirty_bits(void **state)
{
	struct guest g;

	(void)state;
	guest_new(&g);
	fill_guest(g.m, 10);
	assert_true(gm_dirty_count(g.d[0]) > 0);
	assert_int_equal(gm_snapshot_save(g.m, path_of("clears"), NULL), 0);
	for (size_t i = 0; i < NREGIONS; i++)
		assert_int_equal(gm_dirty_count(g.d[i]), 0);
	guest_free(&g);
}

static void delta_chain_restores_state_of_last_delta(void **state)
{
	struct guest g;
	struct gm_memory *at1, *at2;
	struct gm_snapshot *s;
	struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);

	(void)state;
	guest_new(&g);
	fill_guest(g.m, 40);
	assert_int_equal(gm_snapshot_save(g.m, path_of("base"), NULL), 0);
	/* Delta 1: new data, and a page that becomes zero. */
	put_page(g.m, 16 * MiB + 2 * MiB + 8 * KiB, false);
	put_page(g.m, 4096, true);
	put_page(g.m, 64 * MiB + 5 * PAGE, false);
	struct gm_snapshot_opts o1 = GM_OPTS(gm_snapshot_opts, .base = path_of("base"));
	assert_int_equal(gm_snapshot_save(g.m, path_of("d1"), &o1), 0);
	at1 = clone_memory(g.m);
	/* Delta 2 on top of delta 1. */
	fill_guest(g.m, 5);
	put_page(g.m, 64 * MiB + 5 * PAGE, true);
	struct gm_snapshot_opts o2 = GM_OPTS(gm_snapshot_opts, .base = path_of("d1"));
	assert_int_equal(gm_snapshot_save(g.m, path_of("d2"), &o2), 0);
	at2 = clone_memory(g.m);

	assert_int_equal(gm_snapshot_open(path_of("d1"), 0, &s), 0);
	assert_int_equal(gm_snapshot_describe(s, &info), 0);
	assert_int_equal(info.flags, GM_SNAPSHOT_DELTA);
	assert_int_equal(info.chain_length, 2);
	assert_string_equal(info.base_name, "base");
	assert_int_equal(info.defined_pages, 3);
	assert_int_equal(info.data_pages, 2);
	gm_snapshot_close(s);
	assert_restores_to(path_of("d1"), at1);
	assert_restores_to(path_of("d2"), at2);
	assert_int_equal(gm_snapshot_open(path_of("d2"), 0, &s), 0);
	assert_int_equal(gm_snapshot_describe(s, &info), 0);
	assert_int_equal(info.chain_length, 3);
	assert_int_equal(gm_snapshot_verify(s, NULL, NULL), 0);
	gm_snapshot_close(s);
	gm_memory_put(at1);
	gm_memory_put(at2);
	guest_free(&g);
}

static void chunks_that_change_between_zero_and_data_across_a_chain_restore(void **state)
{
	const enum gm_restore_mode modes[] = {GM_RESTORE_COPY, GM_RESTORE_PRIVATE, GM_RESTORE_LAZY};
	struct gm_mapping *map;
	struct gm_dirty *d;
	struct gm_memory *m, *got;
	struct gm_snapshot *s;
	const char *why;
	unsigned char *want = malloc(16 * MiB), *have = malloc(16 * MiB);

	(void)state;
	assert_int_equal(gm_mapping_new_anon(16 * MiB, 0, &map), 0);
	assert_int_equal(gm_dirty_new(16 * MiB, &d), 0);
	gm_dirty_set_enabled(d, true);
	const struct gm_region_spec spec = {.gpa = 0, .size = 16 * MiB, .mapping = map, .dirty = d};
	assert_int_equal(gm_memory_new(&spec, 1, &m), 0);
	put_page(m, 5 * PAGE, false); /* chunk 0 */
	assert_int_equal(gm_snapshot_save(m, path_of("zc-base"), NULL), 0);
	put_page(m, 6 * MiB + PAGE, false); /* chunk 3, zero in the base */
	struct gm_snapshot_opts o1 = GM_OPTS(gm_snapshot_opts, .base = path_of("zc-base"));
	assert_int_equal(gm_snapshot_save(m, path_of("zc-d1"), &o1), 0);
	put_page(m, 5 * PAGE, true); /* chunk 0 becomes all zero */
	struct gm_snapshot_opts o2 = GM_OPTS(gm_snapshot_opts, .base = path_of("zc-d1"));
	assert_int_equal(gm_snapshot_save(m, path_of("zc-d2"), &o2), 0);
	assert_int_equal(gm_read(m, 0, want, 16 * MiB), 0);
	assert_int_equal(gm_snapshot_open(path_of("zc-d2"), 0, &s), 0);
	for (size_t i = 0; i < 3; i++) {
		if (modes[i] == GM_RESTORE_LAZY && !lazy_testable(&why))
			continue; /* reported by lazy_restore_* */
		assert_int_equal(gm_snapshot_restore_new(s, modes[i], NULL, &got), 0);
		assert_int_equal(gm_read(got, 0, have, 16 * MiB), 0);
		assert_memory_equal(have, want, 16 * MiB);
		gm_memory_put(got);
	}
	gm_snapshot_close(s);
	gm_memory_put(m);
	gm_mapping_put(map);
	gm_dirty_put(d);
	free(want);
	free(have);
}

static void delta_opened_alone_gives_info_but_no_restore(void **state)
{
	struct guest g;
	struct gm_snapshot *s;
	struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);
	struct gm_mapping *map;
	unsigned char b;

	(void)state;
	guest_new(&g);
	assert_int_equal(gm_snapshot_save(g.m, path_of("a-base"), NULL), 0);
	put_page(g.m, 0, false);
	struct gm_snapshot_opts o = GM_OPTS(gm_snapshot_opts, .base = path_of("a-base"));
	assert_int_equal(gm_snapshot_save(g.m, path_of("a-delta"), &o), 0);
	assert_int_equal(gm_snapshot_open(path_of("a-delta"), GM_SNAPSHOT_OPEN_NOBASE, &s), 0);
	assert_int_equal(gm_snapshot_describe(s, &info), 0);
	assert_int_equal(info.chain_length, 1);
	assert_int_equal(info.defined_pages, 1);
	assert_int_equal(gm_snapshot_verify(s, NULL, NULL), 0);
	assert_int_equal(gm_snapshot_restore(s, g.m, NULL), -EINVAL);
	assert_int_equal(gm_snapshot_map_region(s, 0, GM_RESTORE_COPY, &map), -EINVAL);
	assert_int_equal(gm_snapshot_read(s, 0, &b, 1), -EINVAL);
	gm_snapshot_close(s);
	guest_free(&g);
}

static void delta_with_replaced_base_is_stale(void **state)
{
	struct guest g;
	struct gm_snapshot *s;

	(void)state;
	guest_new(&g);
	assert_int_equal(gm_snapshot_save(g.m, path_of("s-base"), NULL), 0);
	put_page(g.m, 0, false);
	struct gm_snapshot_opts o = GM_OPTS(gm_snapshot_opts, .base = path_of("s-base"));
	assert_int_equal(gm_snapshot_save(g.m, path_of("s-delta"), &o), 0);
	/* Another full save under the base's name: a different identity. */
	assert_int_equal(gm_snapshot_save(g.m, path_of("s-base"), NULL), 0);
	assert_int_equal(gm_snapshot_open(path_of("s-delta"), 0, &s), -ESTALE);
	assert_int_equal(unlink(path_of("s-base")), 0);
	assert_int_equal(gm_snapshot_open(path_of("s-delta"), 0, &s), -ENOENT);
	guest_free(&g);
}

static void delta_against_other_layout_is_refused(void **state)
{
	struct guest g;
	struct gm_memory *other;
	const struct gm_range r = {0, 2 * MiB};

	(void)state;
	guest_new(&g);
	assert_int_equal(gm_memory_new_anon(&r, 1, &other), 0);
	assert_int_equal(gm_snapshot_save(other, path_of("o-base"), NULL), 0);
	struct gm_snapshot_opts o = GM_OPTS(gm_snapshot_opts, .base = path_of("o-base"));
	assert_int_equal(gm_snapshot_save(g.m, path_of("o-delta"), &o), -ESTALE);
	/* Nor may a delta take its base's name (it would replace it). */
	assert_int_equal(gm_snapshot_save(other, path_of("o-base"), &o), -EINVAL);
	assert_int_equal(access(path_of("o-delta"), F_OK), -1);
	assert_int_equal(count_tmp_files(), 0);
	gm_memory_put(other);
	guest_free(&g);
}

static void zero_pages_are_holes(void **state)
{
	struct gm_memory *m;
	const struct gm_range r = {0, 16 * MiB};
	struct stat st;

	(void)state;
	assert_int_equal(gm_memory_new_anon(&r, 1, &m), 0);
	put_page(m, 5 * MiB, false);
	put_page(m, 9 * MiB, false);
	assert_int_equal(gm_snapshot_save(m, path_of("sparse"), NULL), 0);
	assert_int_equal(stat(path_of("sparse"), &st), 0);
	assert_int_equal(st.st_size, 2 * PAGE + 16 * MiB);
	/* Header + layout + two data pages; allow the filesystem a few blocks more. */
	assert_true((uint64_t)st.st_blocks * 512 <= 64 * KiB);
	gm_memory_put(m);
}

static void restore_into_memory_too_small_is_refused(void **state)
{
	struct guest g;
	struct gm_memory *small;
	struct gm_snapshot *s;
	const struct gm_range r = {0, 1 * MiB};

	(void)state;
	guest_new(&g);
	assert_int_equal(gm_snapshot_save(g.m, path_of("big"), NULL), 0);
	assert_int_equal(gm_memory_new_anon(&r, 1, &small), 0);
	assert_int_equal(gm_snapshot_open(path_of("big"), 0, &s), 0);
	assert_int_equal(gm_snapshot_restore(s, small, NULL), -EFAULT);
	gm_snapshot_close(s);
	gm_memory_put(small);
	guest_free(&g);
}

static void roms_are_left_out_and_split_ram_is_one_region(void **state)
{
	struct gm_mapping *ram, *rom;
	struct gm_dirty *d;
	struct gm_memory *m, *got;
	struct gm_snapshot *s;
	struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);
	struct gm_snapshot_region sr = GM_OPTS(gm_snapshot_region);
	uint64_t v = 0;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(2 * MiB, 0, &ram), 0);
	assert_int_equal(gm_mapping_new_anon(64 * KiB, 0, &rom), 0);
	assert_int_equal(gm_dirty_new(2 * MiB, &d), 0);
	/* One RAM window split in three by guest protection, as a space does, and a ROM. */
	const struct gm_region_spec specs[] = {
	    {.gpa = 0, .size = 1 * MiB, .mapping = ram, .offset = 0, .dirty = d},
	    {.gpa = 1 * MiB,
	     .size = 256 * KiB,
	     .mapping = ram,
	     .offset = 1 * MiB,
	     .flags = GM_REGION_READONLY,
	     .dirty = d,
	     .dirty_offset = 1 * MiB},
	    {.gpa = 1 * MiB + 256 * KiB,
	     .size = 768 * KiB,
	     .mapping = ram,
	     .offset = 1 * MiB + 256 * KiB,
	     .dirty = d,
	     .dirty_offset = 1 * MiB + 256 * KiB},
	    {.gpa = 4 * MiB,
	     .size = 64 * KiB,
	     .mapping = rom,
	     .flags = GM_REGION_ROM | GM_REGION_READONLY},
	};
	assert_int_equal(gm_memory_new(specs, 4, &m), 0);
	*(uint64_t *)((char *)gm_mapping_host(ram) + 1 * MiB + 8) = 0xfeedface;
	assert_int_equal(gm_snapshot_save(m, path_of("split"), NULL), 0);
	assert_int_equal(gm_snapshot_open(path_of("split"), 0, &s), 0);
	assert_int_equal(gm_snapshot_describe(s, &info), 0);
	assert_int_equal(info.nregions, 1);
	assert_int_equal(gm_snapshot_region(s, 0, &sr), 0);
	assert_int_equal(sr.gpa, 0);
	assert_int_equal(sr.size, 2 * MiB);
	assert_int_equal(sr.flags, 0);
	assert_int_equal(gm_snapshot_region(s, 1, &sr), -ENOENT);
	/* Restoring into the same split view writes the guest-read-only part too. */
	*(uint64_t *)((char *)gm_mapping_host(ram) + 1 * MiB + 8) = 0;
	assert_int_equal(gm_snapshot_restore(s, m, NULL), 0);
	assert_int_equal(gm_read_u64(m, 1 * MiB + 8, &v), 0);
	assert_int_equal(v, 0xfeedface);
	assert_int_equal(gm_snapshot_restore_new(s, GM_RESTORE_PRIVATE, NULL, &got), 0);
	assert_int_equal(gm_memory_region_count(got), 1);
	assert_int_equal(gm_read_u64(got, 1 * MiB + 8, &v), 0);
	assert_int_equal(v, 0xfeedface);
	gm_memory_put(got);
	gm_snapshot_close(s);
	gm_memory_put(m);
	gm_mapping_put(ram);
	gm_mapping_put(rom);
	gm_dirty_put(d);
}

/* A small snapshot: 1 region of 64 KiB, so header + layout are 2 pages. */
static void small_snapshot(const char *path)
{
	struct gm_memory *m;
	const struct gm_range r = {1 * MiB, 64 * KiB};

	assert_int_equal(gm_memory_new_anon(&r, 1, &m), 0);
	put_page(m, 1 * MiB, false);
	put_page(m, 1 * MiB + 3 * PAGE, false);
	assert_int_equal(gm_snapshot_save(m, path, NULL), 0);
	gm_memory_put(m);
}

static void every_header_and_layout_byte_corruption_is_rejected(void **state)
{
	const char *path = path_of("corrupt");
	struct gm_snapshot *s;
	unsigned char orig;
	int fd;

	(void)state;
	small_snapshot(path);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	for (off_t off = 0; off < 2 * PAGE; off++) {
		for (unsigned x = 1; x < 256; x <<= 3) {
			unsigned char bad;

			assert_int_equal(pread(fd, &orig, 1, off), 1);
			bad = orig ^ (unsigned char)x;
			assert_int_equal(pwrite(fd, &bad, 1, off), 1);
			if (gm_snapshot_open(path, 0, &s) != -EBADMSG)
				fail_msg("byte %lld ^ 0x%x was not rejected", (long long)off, x);
			assert_int_equal(pwrite(fd, &orig, 1, off), 1);
		}
	}
	close(fd);
	assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
	gm_snapshot_close(s);
}

/*
 * Forged files: each edit below is made with valid checksums (recomputed),
 * so only the structural checks of gm_snapshot_open() can refuse it
 * (invariant 1, src/snapshot/snapshot-internal.h). The file has two
 * 64 KiB regions.
 */
struct forge {
	const char *what;
	size_t off; /* in the first 8 KiB: header page, then metadata page */
	unsigned width;
	uint64_t val;
	int want;
};

static void forged_layouts_with_valid_checksums_are_rejected(void **state)
{
	const size_t M = 4096; /* metadata page */
	const struct forge cases[] = {
	    {"version 2", 8, 4, 2, -ENOTSUP},
	    {"page size 8 KiB", 16, 4, 8192, -ENOTSUP},
	    {"chunk of 256 pages", 28, 4, 256, -ENOTSUP},
	    {"header size", 12, 4, 8192, -EBADMSG},
	    {"unknown flag", 20, 4, 2, -EBADMSG},
	    {"no region", 24, 4, 0, -EBADMSG},
	    {"one region more", 24, 4, 3, -EBADMSG},
	    {"file size", 32, 8, 2 * PAGE + 128 * KiB + PAGE, -EBADMSG},
	    {"meta offset", 40, 8, 0, -EBADMSG},
	    {"meta size", 48, 8, 2 * PAGE, -EBADMSG},
	    {"meta size huge", 48, 8, (uint64_t)1 << 40, -EBADMSG},
	    {"data offset", 56, 8, 4 * PAGE, -EBADMSG},
	    {"base name in a full save", 104, 1, 'x', -EBADMSG},
	    {"base id in a full save", 88, 1, 1, -EBADMSG},
	    {"delta without base name", 20, 4, 1, -EBADMSG},
	    {"reserved header byte", 400, 1, 1, -EBADMSG},
	    {"region size 0", M + 8, 8, 0, -EBADMSG},
	    {"region size huge", M + 64 + 8, 8, (uint64_t)1 << 63, -EBADMSG},
	    {"unaligned gpa", M + 0, 8, 1 * MiB + 1, -EBADMSG},
	    {"overlapping regions", M + 64, 8, 1 * MiB + 32 * KiB, -EBADMSG},
	    {"unsorted regions", M + 64, 8, 0, -EBADMSG},
	    {"region wraps 2^64", M + 64, 8, UINT64_MAX - 32 * KiB + 1, -EBADMSG},
	    {"extent offset", M + 16, 8, 2 * PAGE + PAGE, -EBADMSG},
	    {"second extent offset", M + 64 + 16, 8, 2 * PAGE, -EBADMSG},
	    {"defined count", M + 24, 8, 15, -EBADMSG},
	    {"data count", M + 32, 8, 3, -EBADMSG},
	    {"unknown region flag", M + 40, 4, 0x80, -EBADMSG},
	    {"reserved region field", M + 44, 4, 1, -EBADMSG},
	    {"tables offset", M + 48, 8, 136, -EBADMSG},
	    {"second tables offset", M + 64 + 48, 8, 128, -EBADMSG},
	    {"page undefined in a full save", M + 128, 8, 0xfffe, -EBADMSG},
	    {"bit past the last page", M + 128, 8, 0x1ffff, -EBADMSG},
	    {"data bits not counted", M + 160, 8, 0xffff, -EBADMSG},
	    {"padding byte", M + 4000, 1, 1, -EBADMSG},
	};
	const char *path = path_of("forged"), *copy = path_of("forged-edit");
	struct gm_memory *m;
	struct gm_snapshot *s;
	const struct gm_range r[] = {{1 * MiB, 64 * KiB}, {2 * MiB, 64 * KiB}};

	(void)state;
	assert_int_equal(gm_memory_new_anon(r, 2, &m), 0);
	put_page(m, 1 * MiB, false);
	put_page(m, 2 * MiB + 3 * PAGE, false);
	assert_int_equal(gm_snapshot_save(m, path, NULL), 0);
	gm_memory_put(m);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		unsigned char f[2 * PAGE];
		int fd, ret;

		copy_file(path, copy);
		fd = open(copy, O_RDWR);
		assert_int_equal(pread(fd, f, sizeof(f), 0), (ssize_t)sizeof(f));
		put_le(f + cases[i].off, cases[i].width, cases[i].val);
		put_le(f + 360, 8, XXH3_64bits(f + PAGE, PAGE));
		memset(f + 368, 0, 8);
		put_le(f + 368, 8, XXH3_64bits(f, PAGE));
		assert_int_equal(pwrite(fd, f, sizeof(f), 0), (ssize_t)sizeof(f));
		close(fd);
		ret = gm_snapshot_open(copy, GM_SNAPSHOT_OPEN_NOBASE, &s);
		if (ret == 0)
			gm_snapshot_close(s);
		if (ret != cases[i].want)
			fail_msg("%s: got %d, want %d", cases[i].what, ret, cases[i].want);
	}
	/* The unedited file, rewritten the same way, still opens. */
	assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
	gm_snapshot_close(s);
}

static void data_corruption_is_caught_by_chunk_checksums(void **state)
{
	const char *path = path_of("datacorrupt");
	struct gm_snapshot *s;
	struct gm_memory *m;
	gm_gpa_t bad = 0;
	unsigned char byte, buf[PAGE];
	int fd;

	(void)state;
	small_snapshot(path);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	/* Third byte of the page at guest 1 MiB + 3 pages (data starts at 2 pages). */
	assert_int_equal(pread(fd, &byte, 1, 2 * PAGE + 3 * PAGE + 2), 1);
	byte ^= 0x10;
	assert_int_equal(pwrite(fd, &byte, 1, 2 * PAGE + 3 * PAGE + 2), 1);
	close(fd);
	assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
	assert_int_equal(gm_snapshot_verify(s, NULL, &bad), -EBADMSG);
	assert_int_equal(bad, 1 * MiB);
	assert_int_equal(gm_snapshot_read(s, 1 * MiB, buf, PAGE), -EBADMSG);
	assert_int_equal(gm_snapshot_restore_new(s, GM_RESTORE_COPY, NULL, &m), -EBADMSG);
	gm_snapshot_close(s);
	/* A hole where data should be (a zeroed page) is caught the same way. */
	small_snapshot(path);
	fd = open(path, O_RDWR);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(pwrite(fd, buf, PAGE, 2 * PAGE), PAGE);
	close(fd);
	assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
	assert_int_equal(gm_snapshot_verify(s, NULL, NULL), -EBADMSG);
	gm_snapshot_close(s);
}

static void junk_in_a_zero_page_of_the_file_is_never_restored(void **state)
{
	const char *path = path_of("junk");
	unsigned char junk[PAGE], got[PAGE], zero[PAGE] = {0};
	struct gm_snapshot *s;
	struct gm_memory *m;
	int fd;

	(void)state;
	/* Pages 0 and 3 hold data; pages 1 and 2 are zero (holes), not checksummed. */
	small_snapshot(path);
	memset(junk, 0xa5, sizeof(junk));
	fd = open(path, O_RDWR);
	assert_int_equal(pwrite(fd, junk, PAGE, 2 * PAGE + 1 * PAGE), PAGE);
	close(fd);
	assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
	assert_int_equal(gm_snapshot_verify(s, NULL, NULL), 0);
	assert_int_equal(gm_snapshot_read(s, 1 * MiB + PAGE, got, PAGE), 0);
	assert_memory_equal(got, zero, PAGE);
	assert_int_equal(gm_snapshot_restore_new(s, GM_RESTORE_COPY, NULL, &m), 0);
	assert_int_equal(gm_read(m, 1 * MiB + PAGE, got, PAGE), 0);
	assert_memory_equal(got, zero, PAGE);
	gm_memory_put(m);
	gm_snapshot_close(s);
}

static void truncation_at_every_page_boundary_is_rejected(void **state)
{
	const char *path = path_of("trunc"), *cut = path_of("trunc-cut");
	struct gm_snapshot *s;
	struct stat st;

	(void)state;
	small_snapshot(path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 2 * PAGE + 64 * KiB);
	for (off_t len = 0; len < st.st_size; len += PAGE) {
		copy_file(path, cut);
		assert_int_equal(truncate(cut, len), 0);
		if (gm_snapshot_open(cut, 0, &s) != -EBADMSG)
			fail_msg("file cut at %lld bytes was not rejected", (long long)len);
	}
	/* And one byte too many. */
	copy_file(path, cut);
	assert_int_equal(truncate(cut, st.st_size + 1), 0);
	assert_int_equal(gm_snapshot_open(cut, 0, &s), -EBADMSG);
}

static void full_disk_during_save_keeps_previous_snapshot(void **state)
{
	const char *path = path_of("nospace");
	struct gm_memory *m, *before;
	struct gm_snapshot *s;
	struct rlimit old, lim;
	const struct gm_range r = {0, 4 * MiB};
	void (*oldsig)(int);
	int ret;

	(void)state;
	assert_int_equal(gm_memory_new_anon(&r, 1, &m), 0);
	put_page(m, 0, false);
	assert_int_equal(gm_snapshot_save(m, path, NULL), 0);
	assert_int_equal(gm_memory_new_anon(&r, 1, &before), 0);
	put_page(m, 0, false); /* clobbers nothing in @before: compare by restore */
	assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
	assert_int_equal(gm_snapshot_restore(s, before, NULL), 0);
	gm_snapshot_close(s);
	for (uint64_t off = 0; off < r.size; off += PAGE)
		put_page(m, off, false);
	/* Files may not grow past 1 MiB: the save's writes fail with EFBIG. */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1 * MiB;
	oldsig = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ret = gm_snapshot_save(m, path, NULL);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	assert_int_equal(ret, -EFBIG);
	assert_int_equal(count_tmp_files(), 0);
	/* The old file is still the old state, and the pages are still dirty-unsaved. */
	assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
	assert_int_equal(gm_snapshot_verify(s, NULL, NULL), 0);
	{
		struct gm_memory *got;

		assert_int_equal(gm_snapshot_restore_new(s, GM_RESTORE_COPY, NULL, &got), 0);
		const struct gm_range one = r;
		(void)one;
		size_t len = (size_t)r.size;
		unsigned char *x = malloc(len), *y = malloc(len);
		assert_int_equal(gm_read(got, 0, x, len), 0);
		assert_int_equal(gm_read(before, 0, y, len), 0);
		assert_memory_equal(x, y, len);
		free(x);
		free(y);
		gm_memory_put(got);
	}
	gm_snapshot_close(s);
	gm_memory_put(before);
	gm_memory_put(m);
}

/* Open file descriptors of this process. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/*
 * A save that fails at its last write, the file's length (the trailing
 * zero pages would pass the size limit), closes its temporary file (it
 * used to leak the descriptor) and removes it.
 */
static void save_failing_at_its_length_closes_the_file(void **state)
{
	const struct gm_range r = {0, 4 * MiB};
	struct rlimit old, lim;
	struct gm_memory *m;
	void (*oldsig)(int);
	int fds, ret;

	(void)state;
	assert_int_equal(gm_memory_new_anon(&r, 1, &m), 0);
	put_page(m, 0, false);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1 * MiB;
	oldsig = signal(SIGXFSZ, SIG_IGN);
	fds = count_fds();
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	ret = gm_snapshot_save(m, path_of("nolength"), NULL);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	assert_int_equal(ret, -EFBIG);
	assert_int_equal(count_fds(), fds);
	assert_int_equal(count_tmp_files(), 0);
	gm_memory_put(m);
}

static void failed_save_gives_dirty_bits_back(void **state)
{
	struct guest g;
	uint64_t before;
	char bad[128];

	(void)state;
	guest_new(&g);
	fill_guest(g.m, 10);
	before = gm_dirty_count(g.d[2]);
	assert_true(before > 0);
	snprintf(bad, sizeof(bad), "%s/no-such-dir/x", dir);
	assert_int_equal(gm_snapshot_save(g.m, bad, NULL), -ENOENT);
	assert_int_equal(gm_dirty_count(g.d[2]), before);
	guest_free(&g);
}

struct prog {
	uint64_t calls, last_done, last_total;
	uint64_t cancel_after;
};

static int on_progress(void *opaque, uint64_t done, uint64_t total)
{
	struct prog *p = opaque;

	assert_true(done <= total);
	assert_true(done >= p->last_done);
	p->calls++;
	p->last_done = done;
	p->last_total = total;
	return p->cancel_after && p->calls >= p->cancel_after;
}

static void progress_reaches_total_and_can_cancel(void **state)
{
	struct guest g;
	struct prog p = {0};
	struct gm_snapshot *s;

	(void)state;
	guest_new(&g);
	struct gm_snapshot_opts o =
	    GM_OPTS(gm_snapshot_opts, .progress = on_progress, .opaque = &p);
	assert_int_equal(gm_snapshot_save(g.m, path_of("prog"), &o), 0);
	assert_true(p.calls >= 1);
	assert_int_equal(p.last_done, 6 * MiB + 12 * KiB);
	assert_int_equal(p.last_total, 6 * MiB + 12 * KiB);
	memset(&p, 0, sizeof(p));
	assert_int_equal(gm_snapshot_open(path_of("prog"), 0, &s), 0);
	assert_int_equal(gm_snapshot_restore(s, g.m, &o), 0);
	assert_int_equal(p.last_done, p.last_total);
	gm_snapshot_close(s);
	memset(&p, 0, sizeof(p));
	p.cancel_after = 1;
	assert_int_equal(gm_snapshot_save(g.m, path_of("prog-cancel"), &o), -ECANCELED);
	assert_int_equal(access(path_of("prog-cancel"), F_OK), -1);
	assert_int_equal(count_tmp_files(), 0);
	guest_free(&g);
}

struct toucher {
	const struct gm_memory *m, *want;
	unsigned id, nthreads;
	int failures;
};

/* Read every page, starting at a different place in each thread. */
static void *touch_pages(void *arg)
{
	struct toucher *t = arg;
	unsigned char a[PAGE], b[PAGE];

	for (size_t i = 0; i < NREGIONS; i++) {
		uint64_t n = layout[i].size / PAGE;

		for (uint64_t k = 0; k < n; k++) {
			uint64_t p = (k + t->id * n / t->nthreads) % n;
			gm_gpa_t gpa = layout[i].gpa + p * PAGE;

			if (gm_read(t->m, gpa, a, PAGE) || gm_read(t->want, gpa, b, PAGE) ||
			    memcmp(a, b, PAGE) != 0)
				t->failures++;
		}
	}
	return NULL;
}

/* Attacks invariant 4 (snapshot-internal.h): one fill per chunk, whoever touches it. */
static void lazy_restore_serves_concurrent_first_touches(void **state)
{
	struct guest g;
	struct gm_snapshot *s;
	struct gm_memory *m;
	struct toucher t[4];
	pthread_t th[4];
	const char *why;

	(void)state;
	if (!lazy_testable(&why)) {
		print_message("skipped: lazy restore cannot run here (%s)\n", why);
		skip();
	}
	guest_new(&g);
	fill_guest(g.m, 60);
	assert_int_equal(gm_snapshot_save(g.m, path_of("lazy"), NULL), 0);
	assert_int_equal(gm_snapshot_open(path_of("lazy"), 0, &s), 0);
	assert_int_equal(gm_snapshot_restore_new(s, GM_RESTORE_LAZY, NULL, &m), 0);
	for (unsigned i = 0; i < 4; i++) {
		t[i] = (struct toucher){.m = m, .want = g.m, .id = i, .nthreads = 4};
		start_thread(&th[i], touch_pages, &t[i]);
	}
	assert_int_equal(join_threads(th, 4), 0);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(t[i].failures, 0);
	assert_int_equal(gm_snapshot_lazy_errors(s), 0);
	assert_int_equal(gm_snapshot_lazy_finish(s, NULL), 0);
	assert_true(gm__snapshot_invariants_ok(s));
	/* After close the memory stays valid: every page was filled. */
	gm_snapshot_close(s);
	assert_same_memory(m, g.m);
	gm_memory_put(m);
	guest_free(&g);
}

static void lazy_restore_of_damaged_chunk_reads_zero_and_counts(void **state)
{
	const char *path = path_of("lazybad");
	struct gm_snapshot *s;
	struct gm_memory *m;
	unsigned char byte = 0x77;
	uint64_t v = 1;
	const char *why;
	int fd;

	(void)state;
	if (!lazy_testable(&why)) {
		print_message("skipped: lazy restore cannot run here (%s)\n", why);
		skip();
	}
	small_snapshot(path);
	fd = open(path, O_RDWR);
	assert_int_equal(pwrite(fd, &byte, 1, 2 * PAGE + 5), 1);
	close(fd);
	assert_int_equal(gm_snapshot_open(path, 0, &s), 0);
	assert_int_equal(gm_snapshot_restore_new(s, GM_RESTORE_LAZY, NULL, &m), 0);
	assert_int_equal(gm_read_u64(m, 1 * MiB, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(gm_snapshot_lazy_errors(s), 1);
	gm_snapshot_close(s);
	gm_memory_put(m);
}

/*
 * Resident bytes of the mapping holding @addr (its "Rss" in
 * /proc/self/smaps): a sanitizer's shadow memory does not count.
 */
static uint64_t resident_bytes(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false;
	unsigned long long kb = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;

		if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2)
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		else if (in && sscanf(line, "Rss: %llu kB", &kb) == 1)
			break;
	}
	fclose(f);
	return (uint64_t)kb * 1024;
}

static void lazy_restore_spends_memory_only_on_data(void **state)
{
	const struct gm_range r = {0, 32 * MiB};
	struct gm_memory *m, *got;
	struct gm_snapshot *s;
	struct gm_region_info ri = GM_OPTS(gm_region_info);
	uint64_t v, sum = 0;
	const char *why;

	(void)state;
	if (!lazy_testable(&why)) {
		print_message("skipped: lazy restore cannot run here (%s)\n", why);
		skip();
	}
	/* One data page per 2 MiB chunk: every chunk is filled, almost all zero. */
	assert_int_equal(gm_memory_new_anon(&r, 1, &m), 0);
	for (uint64_t gpa = 0; gpa < r.size; gpa += 2 * MiB)
		put_page(m, gpa + 5 * PAGE, false);
	assert_int_equal(gm_snapshot_save(m, path_of("lazy-sparse"), NULL), 0);
	gm_memory_put(m);
	assert_int_equal(gm_snapshot_open(path_of("lazy-sparse"), 0, &s), 0);
	assert_int_equal(gm_snapshot_restore_new(s, GM_RESTORE_LAZY, NULL, &got), 0);
	for (uint64_t gpa = 0; gpa < r.size; gpa += PAGE) {
		assert_int_equal(gm_read_u64(got, gpa, &v), 0);
		sum += v != 0;
	}
	assert_int_equal(sum, 16);
	/* 16 data pages (zero pages are the shared zero page), not 32 MiB. */
	assert_int_equal(gm_memory_region(got, 0, &ri), 0);
	assert_int_equal(resident_bytes(ri.host), 16 * PAGE);
	gm_memory_put(got);
	gm_snapshot_close(s);
}

int snapshot_save_tests(void)
{
	const struct CMUnitTest snapshot_save[] = {
	    cmocka_unit_test(full_save_round_trips_in_all_modes),
	    cmocka_unit_test(full_save_clears_dirty_bits),
	    cmocka_unit_test(delta_chain_restores_state_of_last_delta),
	    cmocka_unit_test(chunks_that_change_between_zero_and_data_across_a_chain_restore),
	    cmocka_unit_test(delta_opened_alone_gives_info_but_no_restore),
	    cmocka_unit_test(delta_with_replaced_base_is_stale),
	    cmocka_unit_test(delta_against_other_layout_is_refused),
	    cmocka_unit_test(zero_pages_are_holes),
	    cmocka_unit_test(restore_into_memory_too_small_is_refused),
	    cmocka_unit_test(roms_are_left_out_and_split_ram_is_one_region),
	    cmocka_unit_test(every_header_and_layout_byte_corruption_is_rejected),
	    cmocka_unit_test(forged_layouts_with_valid_checksums_are_rejected),
	    cmocka_unit_test(data_corruption_is_caught_by_chunk_checksums),
	    cmocka_unit_test(junk_in_a_zero_page_of_the_file_is_never_restored),
	    cmocka_unit_test(truncation_at_every_page_boundary_is_rejected),
	    cmocka_unit_test(full_disk_during_save_keeps_previous_snapshot),
	    cmocka_unit_test(failed_save_gives_dirty_bits_back),
	    cmocka_unit_test(save_failing_at_its_length_closes_the_file),
	    cmocka_unit_test(progress_reaches_total_and_can_cancel),
	    cmocka_unit_test(lazy_restore_serves_concurrent_first_touches),
	    cmocka_unit_test(lazy_restore_of_damaged_chunk_reads_zero_and_counts),
	    cmocka_unit_test(lazy_restore_spends_memory_only_on_data),
	};

	return cmocka_run_group_tests(snapshot_save, setup_dir, remove_dir);
}
