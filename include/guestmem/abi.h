/* SPDX-License-Identifier: MIT */
/*
 * guestmem/abi.h - structs that can grow without breaking old programs.
 *
 * Every options struct and callback table a caller fills
 * (gm_snapshot_opts, gm_migrate_opts, gm_device_ops,
 * gm_space_listener_ops) and every struct the library fills for a caller
 * (gm_region_info, gm_window_info, gm_snapshot_info, gm_snapshot_region,
 * gm_migrate_stats, gm_kvm_slot) starts with `size_t sz`: the size of the
 * struct as the caller's program was compiled. A later release may add
 * fields at the end; sz tells each side how much the other knows.
 *
 * In (options, callback tables): the library reads the first sz bytes and
 * takes every field past them as zero (so a callback past them as NULL).
 * sz below sizeof(size_t) is -EINVAL; sz beyond the library's own struct
 * is accepted only if every byte past the library's struct is zero, else
 * -E2BIG (the caller asked for something this library cannot do). A NULL
 * options pointer still means all defaults.
 *
 * Out (info structs): the caller sets sz; the library writes at most sz
 * bytes (never past its own struct) and sets sz to the number of bytes it
 * wrote, so a caller built against a newer header learns which of its
 * fields were filled (GM_OFFSETOFEND(type, field) <= sz). sz below
 * sizeof(size_t) is -EINVAL.
 *
 * docs/abi.md gives the whole rule, and the library's versioning.
 * Everything here is a macro: no code, no layer below it.
 */
#ifndef GUESTMEM_ABI_H
#define GUESTMEM_ABI_H

#include <stddef.h>

/*
 * A struct of type `struct @type` with sz set and the named fields given,
 * every other field zero: an expression (a C99 compound literal), e.g.
 *   struct gm_snapshot_opts o = GM_OPTS(gm_snapshot_opts, .base = prev);
 *   gm_snapshot_save(m, path, &GM_OPTS(gm_snapshot_opts, .progress = fn));
 *   struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);
 * A struct filled by hand (and in C++, which has no compound literals)
 * must be memset() to zero first and then have sz set to sizeof the
 * struct.
 * (GM_OPTS(type, ...): the type is the first argument; the extra empty
 * argument lets GM_OPTS(type) alone be ISO C11, which wants at least one
 * argument for a macro's "...".)
 */
#define GM_OPTS(...)	    GM__OPTS(__VA_ARGS__, )
#define GM__OPTS(type, ...) ((struct type){.sz = sizeof(struct type), __VA_ARGS__})

/*
 * The same as a brace-enclosed initializer, for a static or file-scope
 * object (a compound literal is not a constant expression), e.g.
 *   static const struct gm_device_ops uart_ops =
 *	GM_OPTS_INIT(gm_device_ops, .read = uart_read, .sizes = GM_ACCESS_1);
 */
#define GM_OPTS_INIT(...) GM__OPTS_INIT(__VA_ARGS__, )
#define GM__OPTS_INIT(type, ...)                       \
	{                                              \
		.sz = sizeof(struct type), __VA_ARGS__ \
	}

/* The offset of the first byte after @field of `struct @type`. */
#define GM_OFFSETOFEND(type, field) \
	(offsetof(struct type, field) + sizeof(((struct type *)0)->field))

#endif /* GUESTMEM_ABI_H */
