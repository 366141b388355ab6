/* SPDX-License-Identifier: MIT */
/*
 * test_version.c - the version layer (<guestmem/version.h>): the generated
 * macros agree with meson.build's project version, and the run-time calls
 * agree with the macros.
 *
 * GM_TEST_PROJECT_VERSION is meson.project_version(), passed by
 * tests/meson.build, so a header generated from stale numbers fails here.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <guestmem/guestmem.h>

static void macros_are_the_project_version(void **state)
{
	char joined[32];

	(void)state;
	assert_string_equal(GM_VERSION_STRING, GM_TEST_PROJECT_VERSION);
	snprintf(joined, sizeof(joined), "%d.%d.%d", GM_VERSION_MAJOR, GM_VERSION_MINOR,
		 GM_VERSION_PATCH);
	assert_string_equal(joined, GM_VERSION_STRING);
}

static void version_number_packs_the_three_parts(void **state)
{
	(void)state;
	assert_true(GM_VERSION_NUMBER ==
		    ((unsigned long)GM_VERSION_MAJOR << 16 | (unsigned long)GM_VERSION_MINOR << 8 |
		     (unsigned long)GM_VERSION_PATCH));
	assert_true(GM_VERSION_ENCODE(0, 2, 0) > GM_VERSION_ENCODE(0, 1, 255));
	assert_true(GM_VERSION_ENCODE(1, 0, 0) > GM_VERSION_ENCODE(0, 255, 255));
}

static void run_time_version_is_the_compiled_one(void **state)
{
	(void)state;
	assert_non_null(gm_version());
	assert_string_equal(gm_version(), GM_VERSION_STRING);
	/* A static string: the same pointer every time. */
	assert_ptr_equal(gm_version(), gm_version());
}

static void check_version_accepts_this_and_older_minors(void **state)
{
	(void)state;
	assert_int_equal(gm_check_version(GM_VERSION_MAJOR, GM_VERSION_MINOR), 0);
	assert_int_equal(gm_check_version(GM_VERSION_MAJOR, 0), 0);
}

static void check_version_refuses_a_newer_minor(void **state)
{
	(void)state;
	assert_int_equal(gm_check_version(GM_VERSION_MAJOR, GM_VERSION_MINOR + 1), -ENOTSUP);
	assert_int_equal(gm_check_version(GM_VERSION_MAJOR, UINT_MAX), -ENOTSUP);
}

static void check_version_refuses_another_major(void **state)
{
	(void)state;
	assert_int_equal(gm_check_version(GM_VERSION_MAJOR + 1, 0), -ENOTSUP);
	assert_int_equal(gm_check_version(GM_VERSION_MAJOR + 1, GM_VERSION_MINOR), -ENOTSUP);
	if (GM_VERSION_MAJOR > 0)
		assert_int_equal(gm_check_version(GM_VERSION_MAJOR - 1, GM_VERSION_MINOR),
				 -ENOTSUP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(macros_are_the_project_version),
	    cmocka_unit_test(version_number_packs_the_three_parts),
	    cmocka_unit_test(run_time_version_is_the_compiled_one),
	    cmocka_unit_test(check_version_accepts_this_and_older_minors),
	    cmocka_unit_test(check_version_refuses_a_newer_minor),
	    cmocka_unit_test(check_version_refuses_another_major),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
