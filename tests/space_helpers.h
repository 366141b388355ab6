/* SPDX-License-Identifier: MIT */
/*
 * tests/space_helpers.h - what the files of the test_space program share:
 * spaces and windows made with every step asserted, the regions and the
 * dump of the current view, a device that records its calls (struct dev)
 * and a listener that records each phase's changes (struct rec). The
 * helpers live in space_helpers.c.
 */
#ifndef GM_TESTS_SPACE_HELPERS_H
#define GM_TESTS_SPACE_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <guestmem/space.h>

#define KiB  ((uint64_t)1 << 10)
#define MiB  ((uint64_t)1 << 20)
#define GiB  ((uint64_t)1 << 30)
#define PAGE GM_PAGE_SIZE

/* A device that records its calls and serves bytes from a 64-byte array. */
struct call {
	char op; /* 'r' or 'w' */
	uint64_t offset;
	unsigned size;
	uint64_t val;
};

struct dev {
	unsigned char mem[64];
	struct call calls[32];
	size_t ncalls;
	int fail; /* returned by every callback when non-zero */
	int released;
};

/* A listener that records each phase's changes. */
struct rec {
	char log[64][48];
	size_t n;
	struct gm_space_change last[16];
	size_t nlast;
	int veto;	     /* prepare returns this */
	size_t view_regions; /* region count of the current view seen in commit */
	int edit_err;	     /* what an edit attempted in prepare returned */
	bool try_edit;
};

/* A new space with @flags; asserts it was made. */
struct gm_space *new_space(unsigned flags);
/* Assert the space's numbered invariants (src/space/space-internal.h). */
void check(struct gm_space *s);
/* Add RAM [gpa, gpa + size); asserts it was added. */
struct gm_window *add_ram(struct gm_space *s, gm_gpa_t gpa, uint64_t size);
/* The number of regions of the current view. */
size_t region_count(struct gm_space *s);
/* Region @i of the current view (at most 16). */
struct gm_space_region region_at(struct gm_space *s, size_t i);
/* The dump as a malloc'ed string. */
char *dump(struct gm_space *s);
/* The ops of struct dev: access @sizes and @flags as in struct gm_device_ops. */
struct gm_device_ops dev_ops(unsigned sizes, unsigned flags);
/* Add @d as an MMIO window [gpa, gpa + size); asserts it was added. */
struct gm_window *add_dev(struct gm_space *s, gm_gpa_t gpa, uint64_t size, struct dev *d,
			  unsigned sizes, unsigned flags);

/* The listener ops of struct rec (its opaque). */
extern const struct gm_space_listener_ops rec_ops;

/* The groups, one per file, in the order main() runs them. */
int space_windows_tests(void);
int space_txn_tests(void);
int space_dispatch_tests(void);
int space_inspect_tests(void);

#endif
