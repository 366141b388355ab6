/* SPDX-License-Identifier: MIT */
/*
 * test_space_discard.c - gm_space_discard(): guest RAM given back to the
 * host. The host memory must really go (pagemap/mincore residency of the
 * window's mapping, st_blocks of a memfd), the range must read as zeros
 * through the space and through another mapping of the same memfd, the
 * dirty bitmap must say what changed, and a range that is not all RAM, or
 * not aligned to its backing, must be refused with nothing discarded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <guestmem/space.h>

#define KiB  ((uint64_t)1 << 10)
#define MiB  ((uint64_t)1 << 20)
#define PAGE 4096u

/* The guest: RAM at 0 (anonymous, 4 MiB), RAM at 4 MiB (a memfd, 4 MiB), a hole, ROM, reserved. */
struct guest {
	struct gm_space *s;
	struct gm_mapping *memfd;
	struct gm_window *anon, *shared, *rom, *reserved;
};

static void guest_new(struct guest *g)
{
	static const char rom[16] = "firmware";

	assert_int_equal(gm_space_new(0, &g->s), 0);
	assert_int_equal(gm_space_add_ram(g->s, 0, 4 * MiB, 0, 0, &g->anon), 0);
	assert_int_equal(gm_mapping_new_memfd("discard-guest", 4 * MiB, 0, &g->memfd), 0);
	assert_int_equal(gm_space_add_ram_mapping(g->s, 4 * MiB, 4 * MiB, g->memfd, 0, &g->shared),
			 0);
	assert_int_equal(gm_space_add_rom(g->s, 16 * MiB, 64 * KiB, rom, sizeof(rom), &g->rom), 0);
	assert_int_equal(gm_space_add_reserved(g->s, 17 * MiB, 1 * MiB, "hole", &g->reserved), 0);
}

static void guest_free(struct guest *g)
{
	gm_space_free(g->s);
	gm_mapping_put(g->memfd);
}

/* Fill guest [@gpa, @gpa + @len) with byte @v through the space. */
static void fill(struct guest *g, gm_gpa_t gpa, uint64_t len, int v)
{
	unsigned char buf[64 * 1024];

	memset(buf, v, sizeof(buf));
	for (uint64_t off = 0; off < len; off += sizeof(buf))
		assert_int_equal(gm_space_write(g->s, gpa + off, buf, sizeof(buf)), 0);
}

/* Every byte of guest [@gpa, @gpa + @len) is @v. */
static bool all_are(struct guest *g, gm_gpa_t gpa, uint64_t len, int v)
{
	unsigned char buf[64 * 1024];

	for (uint64_t off = 0; off < len; off += sizeof(buf)) {
		assert_int_equal(gm_space_read(g->s, gpa + off, buf, sizeof(buf)), 0);
		for (size_t i = 0; i < sizeof(buf); i++)
			if (buf[i] != v)
				return false;
	}
	return true;
}

static uint64_t blocks_of(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512u;
}

/* Bytes of [@p, @p + @len) present now (mincore). */
static uint64_t resident(void *p, size_t len)
{
	unsigned char vec[1024];
	uint64_t n = 0;

	assert_true(len / PAGE <= sizeof(vec));
	assert_int_equal(mincore(p, len, vec), 0);
	for (size_t i = 0; i < len / PAGE; i++)
		n += vec[i] & 1;
	return n * PAGE;
}

/*
 * Under qemu-user (the armhf run) the emulator answers madvise() itself
 * and /proc/self/pagemap describes its own address space: what a discard
 * of anonymous memory did cannot be seen there.
 */
static bool under_emulator(void)
{
	const char *emu = getenv("GM_EMULATOR");

	return emu != NULL && emu[0] != 0;
}

static void require_kernel(void)
{
	if (under_emulator()) {
		print_message("skipped: qemu-user answers madvise() itself, so a discard of "
			      "anonymous memory cannot be seen under it\n");
		skip();
	}
}

static void discard_across_two_windows_frees_both_backings(void **state)
{
	struct guest g;
	uint64_t before, freed = 0;
	unsigned char *anon_host;
	struct gm_window_info info = {.sz = sizeof(info)};

	(void)state;
	require_kernel();
	guest_new(&g);
	fill(&g, 0, 8 * MiB, 0x77);
	assert_int_equal(gm_space_window_info(g.s, g.anon, &info), 0);
	anon_host = gm_mapping_host(info.mapping);
	before = blocks_of(gm_mapping_fd(g.memfd));
	assert_true(before >= 4 * MiB);
	assert_int_equal(resident(anon_host + 3 * MiB, 1 * MiB), 1 * MiB);

	/* The last MiB of the anonymous window and the first 2 MiB of the memfd one. */
	assert_int_equal(gm_space_discard(g.s, 3 * MiB, 3 * MiB, 0, &freed), 0);
	assert_int_equal(freed, 3 * MiB);
	assert_int_equal(resident(anon_host + 3 * MiB, 1 * MiB), 0);
	assert_int_equal(blocks_of(gm_mapping_fd(g.memfd)), before - 2 * MiB);
	/* Zeros through the space and through the memfd's own mapping; the rest kept. */
	assert_true(all_are(&g, 3 * MiB, 3 * MiB, 0));
	assert_true(all_are(&g, 0, 3 * MiB, 0x77));
	assert_true(all_are(&g, 6 * MiB, 2 * MiB, 0x77));
	assert_int_equal(((unsigned char *)gm_mapping_host(g.memfd))[1 * MiB], 0);
	guest_free(&g);
}

static void discarded_pages_are_dirty_only_where_tracking_is_on(void **state)
{
	struct gm_window_info info = {.sz = sizeof(info)};
	struct guest g;

	(void)state;
	guest_new(&g);
	fill(&g, 0, 8 * MiB, 1);
	/* Tracking off: nothing marked. */
	assert_int_equal(gm_space_discard(g.s, 1 * MiB, 64 * KiB, 0, NULL), 0);
	assert_int_equal(gm_space_window_info(g.s, g.anon, &info), 0);
	assert_int_equal(gm_dirty_count(info.dirty), 0);
	/* On: exactly the discarded pages, in each window's own bitmap. */
	assert_int_equal(gm_space_dirty_enable(g.s, true), 0);
	assert_int_equal(gm_space_discard(g.s, 4 * MiB - 2 * PAGE, 5 * PAGE, 0, NULL), 0);
	assert_int_equal(gm_dirty_count(info.dirty), 2);
	assert_true(gm_dirty_test(info.dirty, (4 * MiB - 2 * PAGE) / PAGE));
	assert_true(gm_dirty_test(info.dirty, (4 * MiB - PAGE) / PAGE));
	assert_int_equal(gm_space_window_info(g.s, g.shared, &info), 0);
	assert_int_equal(gm_dirty_count(info.dirty), 3);
	assert_true(gm_dirty_test(info.dirty, 0));
	assert_true(gm_dirty_test(info.dirty, 2));
	assert_false(gm_dirty_test(info.dirty, 3));
	guest_free(&g);
}

static void range_that_is_not_all_ram_is_refused_whole(void **state)
{
	struct guest g;
	uint64_t freed = 42;

	(void)state;
	guest_new(&g);
	fill(&g, 0, 8 * MiB, 0x33);
	/* RAM then a hole (8-16 MiB): nothing is discarded, not even the RAM part. */
	assert_int_equal(gm_space_discard(g.s, 7 * MiB, 2 * MiB, 0, &freed), -EINVAL);
	/* ROM, reserved, a hole alone. */
	assert_int_equal(gm_space_discard(g.s, 16 * MiB, PAGE, 0, &freed), -EINVAL);
	assert_int_equal(gm_space_discard(g.s, 17 * MiB, PAGE, 0, &freed), -EINVAL);
	assert_int_equal(gm_space_discard(g.s, 12 * MiB, PAGE, 0, &freed), -EINVAL);
	/* Not page aligned, empty, wrapping, unknown flag, NULL. */
	assert_int_equal(gm_space_discard(g.s, 100, PAGE, 0, &freed), -EINVAL);
	assert_int_equal(gm_space_discard(g.s, 0, PAGE + 1, 0, &freed), -EINVAL);
	assert_int_equal(gm_space_discard(g.s, 0, 0, 0, &freed), -EINVAL);
	assert_int_equal(gm_space_discard(g.s, UINT64_MAX - PAGE + 1, 2 * PAGE, 0, &freed),
			 -EINVAL);
	assert_int_equal(gm_space_discard(g.s, 0, PAGE, 1u << 7, &freed), -EINVAL);
	assert_int_equal(gm_space_discard(NULL, 0, PAGE, 0, &freed), -EINVAL);
	/* Lazy is for private anonymous RAM: the memfd window refuses it. */
	assert_int_equal(gm_space_discard(g.s, 4 * MiB, PAGE, GM_DISCARD_LAZY, &freed), -EINVAL);
	assert_int_equal(freed, 42);
	assert_true(all_are(&g, 0, 8 * MiB, 0x33));
	assert_int_equal(gm_space_discard(g.s, 0, PAGE, GM_DISCARD_LAZY, &freed), 0);
	if (!under_emulator())
		assert_int_equal(freed, PAGE);
	guest_free(&g);
}

static void discard_inside_an_open_transaction_uses_the_committed_layout(void **state)
{
	struct gm_window *w;
	struct guest g;

	(void)state;
	require_kernel();
	guest_new(&g);
	fill(&g, 0, 4 * MiB, 0x44);
	assert_int_equal(gm_space_begin(g.s), 0);
	/* Staged, not committed: not RAM yet for a discard. */
	assert_int_equal(gm_space_add_ram(g.s, 32 * MiB, 1 * MiB, 0, 0, &w), 0);
	assert_int_equal(gm_space_discard(g.s, 32 * MiB, PAGE, 0, NULL), -EINVAL);
	assert_int_equal(gm_space_discard(g.s, 0, 1 * MiB, 0, NULL), 0);
	assert_int_equal(gm_space_commit(g.s), 0);
	assert_true(all_are(&g, 0, 1 * MiB, 0));
	assert_true(all_are(&g, 1 * MiB, 3 * MiB, 0x44));
	assert_int_equal(gm_space_discard(g.s, 32 * MiB, PAGE, 0, NULL), 0);
	guest_free(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(discard_across_two_windows_frees_both_backings),
	    cmocka_unit_test(discarded_pages_are_dirty_only_where_tracking_is_on),
	    cmocka_unit_test(range_that_is_not_all_ram_is_refused_whole),
	    cmocka_unit_test(discard_inside_an_open_transaction_uses_the_committed_layout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
