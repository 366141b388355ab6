/* SPDX-License-Identifier: MIT */
/*
 * consumer.c - a program built against the installed Debian packages only
 * (scripts/deb.sh compiles it outside the source tree with nothing but
 * `pkg-config --cflags --libs guestmem`), so a header, library or .pc file
 * that the packages miss fails here, not at a user's.
 *
 * It checks that the headers and the library it runs with are the same
 * version, then writes and reads guest memory through the shared library
 * and its inline fast path. Prints one line; exits 1 on any failure.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <guestmem/guestmem.h>

int main(void)
{
	const struct gm_range ram[] = {
	    {.gpa = 0, .size = 1 << 20},
	    {.gpa = (uint64_t)1 << 32, .size = 1 << 20},
	};
	struct gm_memory *mem;
	uint64_t word = 0;
	char text[6] = "";
	int err;

	if (strcmp(gm_version(), GM_VERSION_STRING) != 0 ||
	    gm_check_version(GM_VERSION_MAJOR, GM_VERSION_MINOR) != 0) {
		fprintf(stderr, "consumer: headers %s, library %s\n", GM_VERSION_STRING,
			gm_version());
		return 1;
	}
	err = gm_memory_new_anon(ram, 2, &mem);
	if (err) {
		fprintf(stderr, "consumer: gm_memory_new_anon: %s\n", strerror(-err));
		return 1;
	}
	err = gm_write(mem, ((uint64_t)1 << 32) + 8, "hello", 6);
	if (!err)
		err = gm_read(mem, ((uint64_t)1 << 32) + 8, text, 6);
	if (!err)
		err = gm_write_u64(mem, 64, 0x0123456789abcdefull);
	if (!err)
		err = gm_read_u64(mem, 64, &word);
	/* One byte past the first range: outside RAM. */
	if (!err && gm_read_u64(mem, (1 << 20) - 4, &word) != -EFAULT)
		err = -EINVAL;
	gm_memory_put(mem);
	if (err || strcmp(text, "hello") != 0 || word != 0x0123456789abcdefull) {
		fprintf(stderr, "consumer: data path: %s\n", err ? strerror(-err) : "wrong data");
		return 1;
	}
	printf("consumer: guestmem %s from the installed packages works\n", gm_version());
	return 0;
}
