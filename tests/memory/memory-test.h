/* SPDX-License-Identifier: MIT */
/*
 * tests/memory/memory-test.h - what the files of the test_memory program
 * share: the layouts a test controls ("worlds": one anonymous mapping per
 * region, so the test knows the host address of every guest byte), byte
 * patterns and checks, pipe and file helpers, two common layouts, and the
 * group each file runs. The helpers live in test_memory.c.
 */
#ifndef GM_TESTS_MEMORY_TEST_H
#define GM_TESTS_MEMORY_TEST_H

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>
#include <cmocka.h>
#include <guestmem/guestmem.h>

#define PAGE	 ((size_t)4096)
#define MAXR	 80
#define TOP_PAGE (UINT64_MAX - 4095) /* gpa of the last page of the 64-bit space */

struct world {
	struct gm_memory *m;
	size_t n;
	struct gm_mapping *mp[MAXR];
	gm_gpa_t gpa[MAXR];
	uint64_t size[MAXR];
	unsigned char *host[MAXR]; /* host address of gpa[i] */
};

/* A byte value that depends on the address, so misplaced bytes show. */
unsigned char pat(gm_gpa_t gpa);
struct gm_mapping *map_anon(size_t size);
struct gm_region_spec spec(gm_gpa_t gpa, uint64_t size, struct gm_mapping *mp, size_t off,
			   unsigned flags);
/*
 * Build @n regions at @r, region i with @flags[i] (@flags may be NULL) and
 * @dirty[i]/@doff[i] (may be NULL). Each region's mapping has one spare page
 * after the window. Every guest byte is set to pat(gpa).
 */
void world_build_full(struct world *w, const struct gm_range *r, const unsigned *flags,
		      struct gm_dirty *const *dirty, const uint64_t *doff, size_t n);
void world_build(struct world *w, const struct gm_range *r, size_t n);
void world_free(struct world *w);
/* Host address of guest byte @gpa, found by the test itself. */
unsigned char *hb(const struct world *w, gm_gpa_t gpa);
/* Assert guest bytes [gpa, gpa + len) still hold pat(). */
void expect_pat(const struct world *w, gm_gpa_t gpa, size_t len);
/* Assert guest bytes [gpa, gpa + len) equal @buf, checked through host memory. */
void expect_bytes(const struct world *w, gm_gpa_t gpa, const void *buf, size_t len);
void fill_buf(unsigned char *b, size_t len, unsigned seed);
/* Try to build a view from @s; put it again on success. */
int try_new(const struct gm_region_spec *s, size_t n);
int try_new_anon(const struct gm_range *r, size_t n);
/* Assert the view's numbered invariants (src/memory/memory-internal.h). */
void expect_view_ok(const struct gm_memory *m);
void make_pipe(int p[2], int nonblock_read);
void close_pipe(int p[2]);
/* A fresh regular file holding @len bytes of fill_buf(seed), unlinked already. */
int tmp_file(size_t len, unsigned seed);

/* RAM [0x10000, 0x12000), hole, RAM [0x14000, 0x16000). */
extern const struct gm_range hole_layout[2];
/* Two one-page regions, adjacent in the guest, separate on the host. */
extern const struct gm_range two_adjacent[2];

/* The groups, one per file, in the order main() runs them. */
int memory_construct_tests(void);
int memory_datapath_tests(void);
int memory_fixed_tests(void);
int memory_io_tests(void);
int memory_dirty_tests(void);
int memory_fastpath_tests(void);

#endif
