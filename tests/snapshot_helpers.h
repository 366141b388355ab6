/* SPDX-License-Identifier: MIT */
/*
 * tests/snapshot_helpers.h - what the files of the test_snapshot program
 * share: the guest layout (three regions, one ending inside a 2 MiB chunk)
 * and a guest with a dirty bitmap per region, random and zero pages,
 * comparing two views, the scratch directory (made and removed by each
 * group's setup and teardown) and its paths, whether lazy restore can run
 * here, and the receiving side of a migration as a thread. The helpers
 * live in snapshot_helpers.c.
 */
#ifndef GM_TESTS_SNAPSHOT_HELPERS_H
#define GM_TESTS_SNAPSHOT_HELPERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <guestmem/snapshot.h>

#define KiB  ((uint64_t)1 << 10)
#define MiB  ((uint64_t)1 << 20)
#define PAGE 4096u

/* The scratch directory of the running group (setup_dir()). */
extern char dir[64];

extern const struct gm_range layout[3];
#define NREGIONS (sizeof(layout) / sizeof(layout[0]))

struct guest {
	struct gm_memory *m;
	struct gm_dirty *d[NREGIONS];
};

/* A guest with @layout, each region with its own dirty bitmap (tracking on). */
void guest_new(struct guest *g);
void guest_free(struct guest *g);
/* The next number of the tests' one pseudo-random sequence. */
uint64_t rnd(void);
/* Fill one page at @gpa with random bytes (or zeros when @zero). */
void put_page(const struct gm_memory *m, gm_gpa_t gpa, bool zero);
/* Random data in about @percent % of the pages of every region. */
void fill_guest(const struct gm_memory *m, unsigned percent);
/* Assert that @a and @b hold the same bytes in every region of @layout. */
void assert_same_memory(const struct gm_memory *a, const struct gm_memory *b);
/* @name in the scratch directory (one of four static buffers, reused in turn). */
char *path_of(const char *name);
/*
 * Whether lazy restore can be tested here; if not, *@why says why.
 * Under valgrind it cannot: valgrind runs one thread at a time, and a
 * thread stopped in a userfaultfd fault keeps the handler thread from
 * ever running.
 */
bool lazy_testable(const char **why);
/* Store @v little-endian in the @width bytes at @p. */
void put_le(unsigned char *p, unsigned width, uint64_t v);
/* cmocka group setup and teardown: make and remove the scratch directory. */
int setup_dir(void **state);
int remove_dir(void **state);

/* What recv_thread() receives into, from where, and what it got. */
struct recv_arg {
	const struct gm_memory *m;
	int fd, ret;
	struct gm_migrate_stats st;
};
/* gm_migrate_recv() of a struct recv_arg, then close its fd. */
void *recv_thread(void *arg);

/* The groups, one per file, in the order main() runs them. */
int snapshot_save_tests(void);
int snapshot_migrate_tests(void);
int snapshot_on_space_tests(void);
int snapshot_fail_tests(void); /* test_snapshot_fail.c */

#endif
