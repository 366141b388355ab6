/* SPDX-License-Identifier: MIT */
/*
 * tests/snapshot_helpers.c - what the files of the test_snapshot program
 * share (declared in snapshot_helpers.h): the guest layout and a guest
 * with dirty tracking, random and zero pages, comparing two views, the
 * scratch directory and its paths, and whether lazy restore can run here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "scratch_dir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <guestmem/snapshot.h>

#include "snapshot_helpers.h"

char dir[64];

const struct gm_range layout[] = {
    {0, 1 * MiB},
    {16 * MiB, 2 * MiB + 12 * KiB}, /* ends inside a chunk */
    {64 * MiB, 3 * MiB},
};

/* A guest with @layout, each region with its own dirty bitmap (tracking on). */
void guest_new(struct guest *g)
{
	struct gm_region_spec specs[NREGIONS];
	struct gm_mapping *maps[NREGIONS];

	memset(specs, 0, sizeof(specs));
	for (size_t i = 0; i < NREGIONS; i++) {
		assert_int_equal(gm_mapping_new_anon((size_t)layout[i].size, 0, &maps[i]), 0);
		assert_int_equal(gm_dirty_new(layout[i].size, &g->d[i]), 0);
		gm_dirty_set_enabled(g->d[i], true);
		specs[i].gpa = layout[i].gpa;
		specs[i].size = layout[i].size;
		specs[i].mapping = maps[i];
		specs[i].dirty = g->d[i];
	}
	assert_int_equal(gm_memory_new(specs, NREGIONS, &g->m), 0);
	for (size_t i = 0; i < NREGIONS; i++)
		gm_mapping_put(maps[i]);
}

void guest_free(struct guest *g)
{
	gm_memory_put(g->m);
	for (size_t i = 0; i < NREGIONS; i++)
		gm_dirty_put(g->d[i]);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* Fill one page at @gpa with random bytes (or zeros when @zero). */
void put_page(const struct gm_memory *m, gm_gpa_t gpa, bool zero)
{
	uint64_t buf[PAGE / 8];

	for (size_t i = 0; i < PAGE / 8; i++)
		buf[i] = zero ? 0 : rnd();
	assert_int_equal(gm_write(m, gpa, buf, PAGE), 0);
}

/* Random data in about @percent % of the pages of every region. */
void fill_guest(const struct gm_memory *m, unsigned percent)
{
	for (size_t i = 0; i < NREGIONS; i++)
		for (uint64_t off = 0; off < layout[i].size; off += PAGE)
			if (rnd() % 100 < percent)
				put_page(m, layout[i].gpa + off, false);
}

/* Assert that @a and @b hold the same bytes in every region of @layout. */
void assert_same_memory(const struct gm_memory *a, const struct gm_memory *b)
{
	for (size_t i = 0; i < NREGIONS; i++) {
		size_t len = (size_t)layout[i].size;
		unsigned char *x = malloc(len), *y = malloc(len);

		assert_non_null(x);
		assert_non_null(y);
		assert_int_equal(gm_read(a, layout[i].gpa, x, len), 0);
		assert_int_equal(gm_read(b, layout[i].gpa, y, len), 0);
		assert_memory_equal(x, y, len);
		free(x);
		free(y);
	}
}

char *path_of(const char *name)
{
	static char p[4][128];
	static int next;
	char *r = p[next++ & 3];

	snprintf(r, sizeof(p[0]), "%s/%s", dir, name);
	return r;
}

/*
 * Whether lazy restore can be tested here; if not, *@why says why.
 * Under valgrind it cannot: valgrind runs one thread at a time, and a
 * thread stopped in a userfaultfd fault keeps the handler thread from
 * ever running.
 */
bool lazy_testable(const char **why)
{
	const char *pre = getenv("LD_PRELOAD");
	int err;

	if (pre != NULL && strstr(pre, "vgpreload") != NULL) {
		*why = "running under valgrind, which serializes threads";
		return false;
	}
	err = gm_snapshot_lazy_supported();
	*why = err ? strerror(-err) : "";
	return err == 0;
}

void put_le(unsigned char *p, unsigned width, uint64_t v)
{
	for (unsigned i = 0; i < width; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

int setup_dir(void **state)
{
	(void)state;
	return scratch_dir_make(dir, sizeof(dir), "snapshot");
}

int remove_dir(void **state)
{
	(void)state;
	return scratch_dir_remove(dir);
}

void *recv_thread(void *arg)
{
	struct recv_arg *r = arg;

	r->ret = gm_migrate_recv(r->m, r->fd, NULL, &r->st);
	close(r->fd);
	return NULL;
}
