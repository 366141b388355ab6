/* SPDX-License-Identifier: MIT */
/*
 * test_abi.c - the sized structs of guestmem/abi.h (issue 19): a program
 * built against an older, smaller struct keeps working, one built against
 * a newer, larger struct is refused only when it uses a field this library
 * does not know (-E2BIG), and a size too small to be a struct at all is
 * -EINVAL. Older structs are simulated by setting sz to the end of an
 * earlier field, newer ones by a wrapper struct with a field after the
 * library's. Checked at the helper (src/abi.c) and through every kind of
 * public user: options, callback tables, out-structs and the array of
 * gm_space_windows().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <guestmem/guestmem.h>

#include "abi-internal.h"
#include "scratch_dir.h"

#define PAGE  ((uint64_t)4096)
#define MiB   ((uint64_t)1 << 20)
#define POISE 0xa5 /* a byte the library must not write */

static char dir[64];

static const char *in_dir(const char *name)
{
	static char buf[4][128];
	static unsigned next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

static int dir_setup(void **state)
{
	(void)state;
	return scratch_dir_make(dir, sizeof(dir), "abi");
}

static int dir_teardown(void **state)
{
	(void)state;
	return scratch_dir_remove(dir);
}

/*
 * A struct that can grow must end without padding, so that a field a
 * later release adds lies past today's sizeof and a newer caller's use of
 * it is seen (-E2BIG) rather than copied silently as padding.
 */
#define ENDS_AT(type, last) (sizeof(struct type) == GM_OFFSETOFEND(type, last))
_Static_assert(ENDS_AT(gm_snapshot_opts, base), "gm_snapshot_opts has tail padding");
_Static_assert(ENDS_AT(gm_migrate_opts, sync_dirty), "gm_migrate_opts has tail padding");
_Static_assert(ENDS_AT(gm_device_ops, release), "gm_device_ops has tail padding");
_Static_assert(ENDS_AT(gm_space_listener_ops, commit), "listener ops have tail padding");
_Static_assert(ENDS_AT(gm_region_info, dirty_offset), "gm_region_info has tail padding");
_Static_assert(ENDS_AT(gm_window_info, plugged_size), "gm_window_info has tail padding");
_Static_assert(ENDS_AT(gm_hugepage_info, pool), "gm_hugepage_info has tail padding");
_Static_assert(ENDS_AT(gm_prefault_opts, opaque), "gm_prefault_opts has tail padding");
_Static_assert(ENDS_AT(gm_numa_policy, nodes), "gm_numa_policy has tail padding");
_Static_assert(ENDS_AT(gm_snapshot_info, created_ns), "gm_snapshot_info has tail padding");
_Static_assert(ENDS_AT(gm_snapshot_region, data_pages), "gm_snapshot_region has tail padding");
_Static_assert(ENDS_AT(gm_migrate_stats, final_pages), "gm_migrate_stats has tail padding");
_Static_assert(ENDS_AT(gm_kvm_slot, size), "gm_kvm_slot has tail padding");

/* ---- the helper ---- */

struct lib_v2 {
	size_t sz;
	uint32_t a;
	uint32_t b;
};

struct caller_v3 {
	struct lib_v2 v2;
	uint64_t c; /* a field this library does not know */
};

static void copy_in_takes_a_prefix_and_zeroes_the_rest(void **state)
{
	struct lib_v2 lib;
	struct lib_v2 old = {.sz = GM_OFFSETOFEND(lib_v2, a), .a = 7, .b = 9};

	(void)state;
	assert_int_equal(GM_ABI_COPY_IN(&lib, &old), 0);
	assert_int_equal(lib.sz, sizeof(lib));
	assert_int_equal(lib.a, 7);
	assert_int_equal(lib.b, 0); /* past the caller's sz: zero, whatever was there */
	assert_int_equal(GM_ABI_COPY_IN(&lib, NULL), 0);
	assert_int_equal(lib.sz, sizeof(lib));
	assert_int_equal(lib.a, 0);
}

static void copy_in_accepts_a_larger_struct_with_a_zero_tail_only(void **state)
{
	struct caller_v3 big = {.v2 = {.sz = sizeof(big), .a = 1, .b = 2}};
	struct lib_v2 lib;

	(void)state;
	assert_int_equal(GM_ABI_COPY_IN(&lib, &big), 0);
	assert_int_equal(lib.a, 1);
	assert_int_equal(lib.b, 2);
	big.c = 1;
	assert_int_equal(GM_ABI_COPY_IN(&lib, &big), -E2BIG);
	assert_int_equal(lib.a, 0); /* defaults on error */
}

static void copy_in_refuses_a_size_below_its_own_field(void **state)
{
	struct lib_v2 lib, bad = {.sz = 0, .a = 1};

	(void)state;
	assert_int_equal(GM_ABI_COPY_IN(&lib, &bad), -EINVAL);
	bad.sz = sizeof(size_t) - 1;
	assert_int_equal(GM_ABI_COPY_IN(&lib, &bad), -EINVAL);
	bad.sz = sizeof(size_t); /* nothing but sz: every field a default */
	assert_int_equal(GM_ABI_COPY_IN(&lib, &bad), 0);
	assert_int_equal(lib.a, 0);
}

static void copy_out_writes_at_most_the_caller_s_size(void **state)
{
	struct lib_v2 full = {.a = 3, .b = 4};
	struct lib_v2 old;
	struct caller_v3 big;

	(void)state;
	memset(&old, POISE, sizeof(old));
	old.sz = GM_OFFSETOFEND(lib_v2, a);
	assert_int_equal(GM_ABI_COPY_OUT(&old, &full), 0);
	assert_int_equal(old.sz, GM_OFFSETOFEND(lib_v2, a));
	assert_int_equal(old.a, 3);
	assert_int_equal(old.b, 0xa5a5a5a5u); /* not the caller's: untouched */
	memset(&big, POISE, sizeof(big));
	big.v2.sz = sizeof(big);
	assert_int_equal(GM_ABI_COPY_OUT(&big, &full), 0);
	assert_int_equal(big.v2.sz, sizeof(struct lib_v2)); /* what was written */
	assert_int_equal(big.v2.b, 4);
	assert_int_equal(big.c, 0xa5a5a5a5a5a5a5a5ull);
	old.sz = 1;
	assert_int_equal(GM_ABI_COPY_OUT(&old, &full), -EINVAL);
	assert_int_equal(old.sz, 1);
}

/* ---- out-structs ---- */

static struct gm_memory *two_regions(void)
{
	const struct gm_range r[] = {{.gpa = 0, .size = 64 * 1024}, {.gpa = MiB, .size = PAGE}};
	struct gm_memory *m = NULL;

	assert_int_equal(gm_memory_new_anon(r, 2, &m), 0);
	return m;
}

static void region_info_is_cut_to_an_older_caller_s_size(void **state)
{
	struct gm_memory *m = two_regions();
	struct gm_region_info ri;
	struct {
		struct gm_region_info ri;
		uint64_t later; /* a field of a newer release */
	} big;

	(void)state;
	memset(&ri, POISE, sizeof(ri));
	ri.sz = GM_OFFSETOFEND(gm_region_info, size);
	assert_int_equal(gm_memory_region(m, 1, &ri), 0);
	assert_int_equal(ri.sz, GM_OFFSETOFEND(gm_region_info, size));
	assert_int_equal(ri.gpa, MiB);
	assert_int_equal(ri.size, PAGE);
	assert_int_equal(ri.flags, 0xa5a5a5a5u); /* past the caller's sz */
	memset(&big, POISE, sizeof(big));
	big.ri.sz = sizeof(big);
	assert_int_equal(gm_memory_find(m, MiB + 8, &big.ri), 0);
	assert_int_equal(big.ri.sz, sizeof(struct gm_region_info));
	assert_int_equal(big.ri.dirty_offset, 0);
	assert_int_equal(big.later, 0xa5a5a5a5a5a5a5a5ull);
	ri.sz = 0; /* forgot GM_OPTS */
	assert_int_equal(gm_memory_region(m, 0, &ri), -EINVAL);
	assert_int_equal(gm_memory_find(m, 0, &ri), -EINVAL);
	gm_memory_put(m);
}

/* gm_space_windows() steps through the caller's array by out[0].sz. */
static void windows_array_uses_the_caller_s_element_size(void **state)
{
	struct gm_space *s = NULL;
	struct gm_window *w;
	struct newer {
		struct gm_window_info wi;
		uint64_t later;
	} big[3];
	unsigned char old[3][GM_OFFSETOFEND(gm_window_info, size)];
	struct gm_window_info one = GM_OPTS(gm_window_info);
	size_t n = 0;

	(void)state;
	assert_int_equal(gm_space_new(0, &s), 0);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 0, 0, &w), 0);
	assert_int_equal(gm_space_add_reserved(s, MiB, PAGE, "hole", &w), 0);
	memset(big, POISE, sizeof(big));
	big[0].wi.sz = sizeof(big[0]);
	assert_int_equal(gm_space_windows(s, &big[0].wi, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(big[1].wi.sz, sizeof(struct gm_window_info));
	assert_int_equal(big[1].wi.gpa, MiB);
	assert_string_equal(big[1].wi.name, "hole");
	assert_int_equal(big[0].later, 0xa5a5a5a5a5a5a5a5ull);
	assert_int_equal(big[1].later, 0xa5a5a5a5a5a5a5a5ull);
	assert_int_equal(big[2].wi.sz, 0xa5a5a5a5a5a5a5a5ull & SIZE_MAX); /* past @n */

	memset(old, POISE, sizeof(old));
	n = sizeof(old[0]); /* the sz of the first element, stored without a struct access */
	memcpy(old[0], &n, sizeof(n));
	assert_int_equal(gm_space_windows(s, (struct gm_window_info *)(void *)old, 3, &n), 0);
	for (size_t i = 0; i < 2; i++) {
		struct gm_window_info got;

		memcpy(&got, old[i], sizeof(old[i]));
		assert_int_equal(got.sz, sizeof(old[i]));
		assert_int_equal(got.gpa, i ? MiB : 0);
		assert_int_equal(got.size, PAGE);
	}
	assert_int_equal(old[2][0], POISE);

	one.sz = sizeof(one) + 1; /* no array has this stride */
	assert_int_equal(gm_space_windows(s, &one, 1, &n), -EINVAL);
	one.sz = 3;
	assert_int_equal(gm_space_windows(s, &one, 1, &n), -EINVAL);
	assert_int_equal(gm_space_find(s, 0, &one), -EINVAL);
	assert_int_equal(gm_space_window_info(s, w, &one), -EINVAL);
	gm_space_free(s);
}

/* ---- callback tables ---- */

struct calls {
	int reads, releases, prepares, commits;
};

static int dev_read(void *opaque, uint64_t offset, unsigned size, uint64_t *val)
{
	(void)offset;
	(void)size;
	((struct calls *)opaque)->reads++;
	*val = 0x5a;
	return 0;
}

static void dev_release(void *opaque)
{
	((struct calls *)opaque)->releases++;
}

/* A callback past an older caller's sz is never called: it is not there. */
static void device_callbacks_past_sz_are_null(void **state)
{
	struct gm_device_ops ops = GM_OPTS(gm_device_ops, .name = "old", .read = dev_read,
					   .sizes = GM_ACCESS_1, .release = dev_release);
	struct calls c = {0}, c2 = {0};
	struct gm_space *s = NULL;
	struct gm_window *w;
	uint8_t v = 0;

	(void)state;
	assert_int_equal(gm_space_new(0, &s), 0);
	ops.sz = GM_OFFSETOFEND(gm_device_ops, flags); /* a release that came later */
	assert_int_equal(gm_space_add_mmio(s, 0x1000, 0x10, &ops, &c, &w), 0);
	ops.sz = sizeof(ops);
	assert_int_equal(gm_space_add_mmio(s, 0x2000, 0x10, &ops, &c2, &w), 0);
	assert_int_equal(gm_space_read(s, 0x1000, &v, 1), 0);
	assert_int_equal(v, 0x5a);
	ops.sz = GM_OFFSETOFEND(gm_device_ops, write); /* no sizes: nothing accepted */
	assert_int_equal(gm_space_add_mmio(s, 0x3000, 0x10, &ops, &c, &w), -EINVAL);
	ops.sz = 0;
	assert_int_equal(gm_space_add_mmio(s, 0x3000, 0x10, &ops, &c, &w), -EINVAL);
	gm_space_free(s);
	assert_int_equal(c.reads, 1);
	assert_int_equal(c.releases, 0);
	assert_int_equal(c2.releases, 1);
}

static void device_ops_with_an_unknown_field_are_refused(void **state)
{
	struct {
		struct gm_device_ops ops;
		void (*later)(void *opaque);
	} big = {.ops = GM_OPTS(gm_device_ops, .read = dev_read, .sizes = GM_ACCESS_1)};
	struct gm_space *s = NULL;
	struct gm_window *w;

	(void)state;
	assert_int_equal(gm_space_new(0, &s), 0);
	big.ops.sz = sizeof(big);
	assert_int_equal(gm_space_add_mmio(s, 0x1000, 0x10, &big.ops, NULL, &w), 0);
	big.later = dev_release;
	assert_int_equal(gm_space_add_mmio(s, 0x2000, 0x10, &big.ops, NULL, &w), -E2BIG);
	gm_space_free(s);
}

static int on_prepare(void *opaque, struct gm_space *s, const struct gm_space_change *ch, size_t n)
{
	(void)s;
	(void)ch;
	(void)n;
	((struct calls *)opaque)->prepares++;
	return 0;
}

static void on_commit(void *opaque, struct gm_space *s, const struct gm_space_change *ch, size_t n)
{
	(void)s;
	(void)ch;
	(void)n;
	((struct calls *)opaque)->commits++;
}

static void listener_callbacks_past_sz_are_null(void **state)
{
	struct gm_space_listener_ops ops =
	    GM_OPTS(gm_space_listener_ops, .prepare = on_prepare, .commit = on_commit);
	struct {
		struct gm_space_listener_ops ops;
		uint64_t later;
	} big = {.ops = ops, .later = 1};
	struct calls c = {0};
	struct gm_space *s = NULL;
	struct gm_window *w;

	(void)state;
	assert_int_equal(gm_space_new(0, &s), 0);
	ops.sz = GM_OFFSETOFEND(gm_space_listener_ops, rollback);
	assert_int_equal(gm_space_listener_add(s, &ops, &c, NULL), 0);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 0, 0, &w), 0);
	assert_int_equal(c.prepares, 1);
	assert_int_equal(c.commits, 0);
	big.ops.sz = sizeof(big);
	assert_int_equal(gm_space_listener_add(s, &big.ops, &c, NULL), -E2BIG);
	ops.sz = sizeof(size_t) / 2;
	assert_int_equal(gm_space_listener_add(s, &ops, &c, NULL), -EINVAL);
	assert_int_equal(c.prepares, 1); /* neither was registered */
	gm_space_free(s);
}

/* ---- options ---- */

static int count_progress(void *opaque, uint64_t done, uint64_t total)
{
	(void)done;
	(void)total;
	(*(int *)opaque)++;
	return 0;
}

/* An older gm_snapshot_opts, from before @base: a full save, whatever follows sz. */
static void snapshot_options_past_sz_read_as_zero(void **state)
{
	struct gm_memory *m = two_regions();
	struct gm_snapshot_opts o =
	    GM_OPTS(gm_snapshot_opts, .progress = count_progress, .base = "no-such-base");
	struct gm_snapshot_info info;
	struct gm_snapshot *s = NULL;
	int calls = 0;

	(void)state;
	o.opaque = &calls;
	o.sz = GM_OFFSETOFEND(gm_snapshot_opts, opaque);
	assert_int_equal(gm_snapshot_save(m, in_dir("old"), &o), 0);
	assert_true(calls > 0);
	o.sz = sizeof(size_t); /* nothing but sz: all defaults, no progress */
	calls = 0;
	assert_int_equal(gm_snapshot_save(m, in_dir("old"), &o), 0);
	assert_int_equal(calls, 0);
	o.sz = sizeof(o); /* now the base is read: it is not there */
	assert_int_equal(gm_snapshot_save(m, in_dir("old"), &o), -ENOENT);

	assert_int_equal(gm_snapshot_open(in_dir("old"), 0, &s), 0);
	memset(&info, POISE, sizeof(info));
	info.sz = GM_OFFSETOFEND(gm_snapshot_info, nregions);
	assert_int_equal(gm_snapshot_describe(s, &info), 0);
	assert_int_equal(info.sz, GM_OFFSETOFEND(gm_snapshot_info, nregions));
	assert_int_equal(info.nregions, 2);
	assert_int_equal(info.flags, 0xa5a5a5a5u);
	info.sz = 0;
	assert_int_equal(gm_snapshot_describe(s, &info), -EINVAL);
	o.sz = 0;
	assert_int_equal(gm_snapshot_verify(s, &o, NULL), -EINVAL);
	assert_int_equal(gm_snapshot_restore(s, m, &o), -EINVAL);
	gm_snapshot_close(s);
	gm_memory_put(m);
}

static void snapshot_options_with_an_unknown_field_make_no_file(void **state)
{
	struct gm_memory *m = two_regions();
	struct {
		struct gm_snapshot_opts o;
		uint64_t later;
	} big = {.o = GM_OPTS(gm_snapshot_opts)};
	struct stat st;

	(void)state;
	big.o.sz = sizeof(big);
	assert_int_equal(gm_snapshot_save(m, in_dir("new"), &big.o), 0);
	assert_int_equal(unlink(in_dir("new")), 0);
	big.later = 1;
	assert_int_equal(gm_snapshot_save(m, in_dir("new"), &big.o), -E2BIG);
	assert_int_equal(stat(in_dir("new"), &st), -1);
	big.o.sz = 1;
	big.later = 0;
	assert_int_equal(gm_snapshot_save(m, in_dir("new"), &big.o), -EINVAL);
	gm_memory_put(m);
}

static int stop_before_final(void *opaque)
{
	(*(int *)opaque)++;
	return 1; /* abort: -ECANCELED */
}

static void migrate_callbacks_past_sz_are_null(void **state)
{
	struct gm_memory *m = two_regions();
	int calls = 0;
	struct gm_migrate_opts o =
	    GM_OPTS(gm_migrate_opts, .opaque = &calls, .before_final = stop_before_final);
	struct gm_migrate_stats st;
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

	(void)state;
	assert_true(fd >= 0);
	memset(&st, POISE, sizeof(st));
	st.sz = GM_OFFSETOFEND(gm_migrate_stats, pages);
	o.sz = GM_OFFSETOFEND(gm_migrate_opts, stop_pages);
	assert_int_equal(gm_migrate_send(m, fd, &o, &st), 0);
	assert_int_equal(calls, 0);
	assert_int_equal(st.sz, GM_OFFSETOFEND(gm_migrate_stats, pages));
	assert_int_equal(st.pages, (64 * 1024 + PAGE) / PAGE);
	assert_int_equal(st.zero_pages, 0xa5a5a5a5a5a5a5a5ull);
	o.sz = sizeof(o);
	assert_int_equal(gm_migrate_send(m, fd, &o, NULL), -ECANCELED);
	assert_int_equal(calls, 1);
	st.sz = 2; /* checked before anything is sent */
	assert_int_equal(gm_migrate_send(m, fd, NULL, &st), -EINVAL);
	assert_int_equal(gm_migrate_recv(m, fd, NULL, &st), -EINVAL);
	o.sz = 0;
	assert_int_equal(gm_migrate_send(m, fd, &o, NULL), -EINVAL);
	assert_int_equal(gm_migrate_recv(m, fd, &o, NULL), -EINVAL);
	assert_int_equal(calls, 1);
	close(fd);
	gm_memory_put(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(copy_in_takes_a_prefix_and_zeroes_the_rest),
	    cmocka_unit_test(copy_in_accepts_a_larger_struct_with_a_zero_tail_only),
	    cmocka_unit_test(copy_in_refuses_a_size_below_its_own_field),
	    cmocka_unit_test(copy_out_writes_at_most_the_caller_s_size),
	    cmocka_unit_test(region_info_is_cut_to_an_older_caller_s_size),
	    cmocka_unit_test(windows_array_uses_the_caller_s_element_size),
	    cmocka_unit_test(device_callbacks_past_sz_are_null),
	    cmocka_unit_test(device_ops_with_an_unknown_field_are_refused),
	    cmocka_unit_test(listener_callbacks_past_sz_are_null),
	    cmocka_unit_test(snapshot_options_past_sz_read_as_zero),
	    cmocka_unit_test(snapshot_options_with_an_unknown_field_make_no_file),
	    cmocka_unit_test(migrate_callbacks_past_sz_are_null),
	};

	return cmocka_run_group_tests(tests, dir_setup, dir_teardown);
}
