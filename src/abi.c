/* SPDX-License-Identifier: MIT */
/*
 * abi.c - the sized structs of guestmem/abi.h at the library's border:
 * checking a caller's sz, copying options and callback tables in, and
 * info structs out (abi-internal.h). The rule itself is in docs/abi.md.
 */
#include "abi-internal.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

size_t gm__abi_user_sz(const void *user)
{
	size_t sz;

	memcpy(&sz, user, sizeof(sz));
	return sz;
}

static bool all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != 0)
			return false;
	}
	return true;
}

int gm__abi_copy_in(void *lib, size_t lib_sz, const void *user)
{
	size_t user_sz;

	memset(lib, 0, lib_sz);
	memcpy(lib, &lib_sz, sizeof(lib_sz));
	if (user == NULL)
		return 0;
	user_sz = gm__abi_user_sz(user);
	if (user_sz < sizeof(size_t))
		return -EINVAL;
	/* A newer caller's fields this library does not know must be unused. */
	if (user_sz > lib_sz && !all_zero((const unsigned char *)user + lib_sz, user_sz - lib_sz))
		return -E2BIG;
	memcpy((unsigned char *)lib + sizeof(size_t), (const unsigned char *)user + sizeof(size_t),
	       (user_sz < lib_sz ? user_sz : lib_sz) - sizeof(size_t));
	return 0;
}

int gm__abi_check_out(const void *user)
{
	return gm__abi_user_sz(user) < sizeof(size_t) ? -EINVAL : 0;
}

int gm__abi_copy_out(void *user, const void *lib, size_t lib_sz)
{
	size_t n = gm__abi_user_sz(user);

	if (n < sizeof(size_t))
		return -EINVAL;
	if (n > lib_sz)
		n = lib_sz;
	memcpy((unsigned char *)user + sizeof(size_t), (const unsigned char *)lib + sizeof(size_t),
	       n - sizeof(size_t));
	memcpy(user, &n, sizeof(n));
	return 0;
}
