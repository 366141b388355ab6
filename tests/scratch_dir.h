/* SPDX-License-Identifier: MIT */
/*
 * scratch_dir.h - a test's scratch directory: made under /dev/shm when it
 * is writable (tmpfs: fsync() is free there and the files are small), else
 * under /tmp, and removed with everything in it. For cmocka group setup
 * and teardown functions.
 */
#ifndef GM_TESTS_SCRATCH_DIR_H
#define GM_TESTS_SCRATCH_DIR_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Make a new directory named after @name into @dir (@len bytes). Returns 0 or -1. */
static inline int scratch_dir_make(char *dir, size_t len, const char *name)
{
	snprintf(dir, len, "%s/gm-test-%s-XXXXXX",
		 access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", name);
	return mkdtemp(dir) ? 0 : -1;
}

/* Remove @dir and everything in it. Returns 0 or -1. */
static inline int scratch_dir_remove(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

#endif
