/* SPDX-License-Identifier: MIT */
/*
 * abi-internal.h - how the library reads and writes the sized structs of
 * guestmem/abi.h. Every public function that takes such a struct passes
 * it through one of these at its entry, so nothing deeper ever sees a
 * caller's struct: options and callback tables are copied into the
 * library's own struct (fields past the caller's sz zero), and info
 * structs are filled in a local and copied out. Hidden symbols.
 */
#ifndef GUESTMEM_ABI_INTERNAL_H
#define GUESTMEM_ABI_INTERNAL_H

#include <guestmem/abi.h>
#include <stddef.h>

/*
 * Copy the caller's struct @user (may be NULL: all defaults) into the
 * library's @lib of @lib_sz bytes: the caller's first min(sz, @lib_sz)
 * bytes, the rest zero; lib's sz is set to @lib_sz.
 * Returns 0; -EINVAL if the caller's sz is below sizeof(size_t); -E2BIG
 * if it is above @lib_sz and a byte past @lib_sz is not zero (*@lib is
 * then all defaults, sz included).
 */
int gm__abi_copy_in(void *lib, size_t lib_sz, const void *user);

/* Returns 0, or -EINVAL if @user's sz is below sizeof(size_t). @user not NULL. */
int gm__abi_check_out(const void *user);

/*
 * Copy the library's filled struct @lib of @lib_sz bytes (its sz field
 * ignored) out to @user: min(user sz, @lib_sz) bytes, and user sz set to
 * that. Returns 0 or -EINVAL (gm__abi_check_out()); nothing is written on
 * error.
 */
int gm__abi_copy_out(void *user, const void *lib, size_t lib_sz);

/* The two copies for a library struct *@lib (a pointer to a complete type). */
#define GM_ABI_COPY_IN(lib, user)  gm__abi_copy_in((lib), sizeof(*(lib)), (user))
#define GM_ABI_COPY_OUT(user, lib) gm__abi_copy_out((user), (lib), sizeof(*(lib)))

/* sz of a caller's sized struct, read without assuming its alignment. */
size_t gm__abi_user_sz(const void *user);

#endif
