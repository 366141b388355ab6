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
 *
 * One program, one group per file: this file holds the inspection cases
 * (the dump, the window list, a NULL space) and main();
 * test_space_windows.c (creation and window edits), test_space_txn.c
 * (transactions and listeners) and test_space_dispatch.c (device access
 * and port I/O) hold the rest; space_helpers.c what they share.
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

#include <guestmem/space.h>

#include "space/space-internal.h"

#include "space_helpers.h"

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

int space_inspect_tests(void)
{
	const struct CMUnitTest space_inspect[] = {
	    cmocka_unit_test(dump_prints_the_table),
	    cmocka_unit_test(windows_lists_every_window_in_order),
	    cmocka_unit_test(null_space_is_einval_and_queries_are_zero),
	    cmocka_unit_test(dump_file_writes_the_dump_and_reports_eio),
	};

	return cmocka_run_group_tests(space_inspect, NULL, NULL);
}

int main(void)
{
	int rc = 0;

	gm_rcu_register_thread();
	rc += space_windows_tests();
	rc += space_txn_tests();
	rc += space_dispatch_tests();
	rc += space_inspect_tests();
	gm_rcu_unregister_thread();
	return rc;
}
