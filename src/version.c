/* SPDX-License-Identifier: MIT */
/*
 * version.c - the version layer: which guestmem a program runs with
 * (version.h).
 *
 * The numbers come from the generated version.h, so they are those of the
 * headers this library was built with; a program compares them with the
 * ones it was compiled with.
 */
#include <guestmem/version.h>

const char *gm_version(void)
{
	return GM_VERSION_STRING;
}

int gm_check_version(unsigned int major, unsigned int minor)
{
	if (major != GM_VERSION_MAJOR || minor > GM_VERSION_MINOR)
		return -ENOTSUP;
	return 0;
}
