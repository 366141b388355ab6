/* SPDX-License-Identifier: MIT */
/*
 * test_numa.c - NUMA placement: gm_mapping_set_policy() and
 * gm_space_set_policy() read back with get_mempolicy(MPOL_F_ADDR) at
 * addresses of the range (also in the part of a window a resize brings in,
 * and after another window is hot-plugged), pages found on the policy's
 * node with move_pages() (query only), bad policies refused, and the
 * policy shown by gm_space_window_info() and the dump. Tests that need two
 * nodes with memory skip on a one-node machine; all skip where the kernel
 * (or qemu-user) has no mbind().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <guestmem/space.h>

#define MiB ((size_t)1 << 20)

#define MPOL_F_ADDR (1 << 1)

static size_t page;

/* The nodes with memory, as a mask (nodes 0-63); 0 if the kernel does not say. */
static uint64_t memory_nodes(void)
{
	char buf[256], *p = buf;
	uint64_t mask = 0;
	FILE *f = fopen("/sys/devices/system/node/has_memory", "re");

	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	/* "0", "0-1", "0,2-3" */
	while (*p >= '0' && *p <= '9') {
		unsigned long a = strtoul(p, &p, 10), b = a;

		if (*p == '-')
			b = strtoul(p + 1, &p, 10);
		for (unsigned long n = a; n <= b && n < 64; n++)
			mask |= 1ull << n;
		if (*p == ',')
			p++;
	}
	return mask;
}

static unsigned lowest(uint64_t mask)
{
	return (unsigned)__builtin_ctzll(mask);
}

/* The policy at @addr: its mode, and its node mask in *@nodes (nodes 0-63). */
static int policy_at(void *addr, uint64_t *nodes)
{
	unsigned long mask[1024 / (8 * sizeof(unsigned long))] = {0};
	int mode = -1;

	assert_int_equal(syscall(SYS_get_mempolicy, &mode, mask, 1024ul, addr, MPOL_F_ADDR), 0);
	*nodes = 0;
	for (size_t bit = 0; bit < 64; bit++)
		if (mask[bit / (8 * sizeof(unsigned long))] >> (bit % (8 * sizeof(unsigned long))) &
		    1)
			*nodes |= 1ull << bit;
	return mode;
}

/* The node that holds the page at @addr (move_pages() without nodes: a query). */
static int node_of(void *addr)
{
	void *pages[1] = {addr};
	int status[1] = {-1};

	assert_int_equal(syscall(SYS_move_pages, 0, 1ul, pages, NULL, status, 0), 0);
	return status[0];
}

/* Skip unless mbind() works here; returns the nodes with memory. */
static uint64_t require_numa(void)
{
	struct gm_mapping *m;
	uint64_t nodes = memory_nodes();
	int err;

	if (nodes == 0) {
		print_message("skipped: /sys/devices/system/node/has_memory is missing: no NUMA\n");
		skip();
	}
	assert_int_equal(gm_mapping_new_anon(page, 0, &m), 0);
	err = gm_mapping_set_policy(m, 0, page,
				    &GM_OPTS(gm_numa_policy, .mode = GM_NUMA_BIND, .nodes = nodes));
	gm_mapping_put(m);
	if (err == -ENOSYS) {
		print_message("skipped: mbind() is not implemented here (a kernel without NUMA, "
			      "or qemu-user)\n");
		skip();
	}
	assert_int_equal(err, 0);
	return nodes;
}

static void mapping_policy_reads_back(void **state)
{
	uint64_t nodes = require_numa(), got;
	uint64_t first = 1ull << lowest(nodes);
	struct gm_mapping *m;
	char *p;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(8 * MiB, 0, &m), 0);
	p = gm_mapping_host(m);
	assert_int_equal(
	    gm_mapping_set_policy(m, 0, 4 * MiB,
				  &GM_OPTS(gm_numa_policy, .mode = GM_NUMA_BIND, .nodes = first)),
	    0);
	assert_int_equal(gm_mapping_set_policy(
			     m, 4 * MiB, 2 * MiB,
			     &GM_OPTS(gm_numa_policy, .mode = GM_NUMA_INTERLEAVE, .nodes = nodes)),
			 0);
	assert_int_equal(gm_mapping_set_policy(
			     m, 6 * MiB, 2 * MiB,
			     &GM_OPTS(gm_numa_policy, .mode = GM_NUMA_PREFERRED, .nodes = first)),
			 0);
	assert_int_equal(policy_at(p, &got), GM_NUMA_BIND);
	assert_int_equal(got, first);
	assert_int_equal(policy_at(p + 4 * MiB - page, &got), GM_NUMA_BIND);
	assert_int_equal(policy_at(p + 4 * MiB, &got), GM_NUMA_INTERLEAVE);
	assert_int_equal(got, nodes);
	assert_int_equal(policy_at(p + 6 * MiB, &got), GM_NUMA_PREFERRED);
	assert_int_equal(got, first);

	/* Faulted in after the policy: on the bound node. */
	p[0] = 1;
	assert_int_equal(node_of(p), (int)lowest(nodes));

	/* GM_NUMA_DEFAULT takes it off again. */
	assert_int_equal(
	    gm_mapping_set_policy(m, 0, 8 * MiB, &GM_OPTS(gm_numa_policy, .mode = GM_NUMA_DEFAULT)),
	    0);
	assert_int_equal(policy_at(p + 4 * MiB, &got), GM_NUMA_DEFAULT);
	gm_mapping_put(m);
}

static void memfd_policy_is_the_files(void **state)
{
	uint64_t nodes = require_numa(), got;
	struct gm_mapping *m;

	(void)state;
	assert_int_equal(gm_mapping_new_memfd("numa", 4 * MiB, 0, &m), 0);
	assert_int_equal(gm_mapping_set_policy(
			     m, 0, 4 * MiB,
			     &GM_OPTS(gm_numa_policy, .mode = GM_NUMA_INTERLEAVE, .nodes = nodes)),
			 0);
	assert_int_equal(policy_at((char *)gm_mapping_host(m) + MiB, &got), GM_NUMA_INTERLEAVE);
	assert_int_equal(got, nodes);
	gm_mapping_put(m);
}

static void bad_policies_are_refused(void **state)
{
	uint64_t nodes = require_numa();
	struct gm_mapping *m;
	struct gm_numa_policy short_sz = {.sz = 2};

	(void)state;
	assert_int_equal(gm_mapping_new_anon(4 * MiB, 0, &m), 0);
#define SET(off, len, ...) gm_mapping_set_policy(m, off, len, &GM_OPTS(gm_numa_policy, __VA_ARGS__))
	assert_int_equal(SET(0, page, .mode = 7, .nodes = nodes), -EINVAL);
	assert_int_equal(SET(0, page, .mode = GM_NUMA_BIND), -EINVAL);
	assert_int_equal(SET(0, page, .mode = GM_NUMA_INTERLEAVE), -EINVAL);
	assert_int_equal(SET(0, page, .mode = GM_NUMA_DEFAULT, .nodes = nodes), -EINVAL);
	assert_int_equal(SET(1, page, .mode = GM_NUMA_BIND, .nodes = nodes), -EINVAL);
	assert_int_equal(SET(0, 0, .mode = GM_NUMA_BIND, .nodes = nodes), -EINVAL);
	assert_int_equal(SET(page, 4 * MiB, .mode = GM_NUMA_BIND, .nodes = nodes), -EINVAL);
	if (!(nodes >> 63))
		/* A node that does not exist: the kernel says so. */
		assert_int_equal(SET(0, page, .mode = GM_NUMA_BIND, .nodes = 1ull << 63), -EINVAL);
#undef SET
	assert_int_equal(gm_mapping_set_policy(m, 0, page, NULL), -EINVAL);
	assert_int_equal(gm_mapping_set_policy(m, 0, page, &short_sz), -EINVAL);
	gm_mapping_put(m);
}

static void space_policy_covers_growth_and_survives_hotplug(void **state)
{
	uint64_t nodes = require_numa(), got;
	uint64_t first = 1ull << lowest(nodes);
	struct gm_space *s;
	struct gm_window *w, *other, *rom;
	struct gm_window_info info = GM_OPTS(gm_window_info);
	static const char fw[8] = "fw";
	char dump[2048], want[64];
	char *host;

	(void)state;
	assert_int_equal(gm_space_new(0, &s), 0);
	assert_int_equal(gm_space_add_ram(s, 0, 4 * MiB, 16 * MiB, GM_MAP_NORESERVE, &w), 0);
	assert_int_equal(gm_space_set_policy(
			     s, w, &GM_OPTS(gm_numa_policy, .mode = GM_NUMA_BIND, .nodes = first)),
			 0);
	assert_int_equal(gm_space_window_info(s, w, &info), 0);
	assert_int_equal(info.numa_mode, GM_NUMA_BIND);
	assert_int_equal(info.numa_nodes, first);
	host = info.host;

	/* Grown after the policy: the new part was covered from the start. */
	assert_int_equal(gm_space_resize(s, w, 16 * MiB), 0);
	assert_int_equal(policy_at(host + 16 * MiB - page, &got), GM_NUMA_BIND);
	assert_int_equal(got, first);
	assert_int_equal(gm_space_write(s, 12 * MiB, "x", 1), 0);
	assert_int_equal(node_of(host + 12 * MiB), (int)lowest(nodes));

	/* Another window plugged in and out: this one keeps its policy. */
	assert_int_equal(gm_space_add_ram(s, 64 * MiB, 4 * MiB, 0, 0, &other), 0);
	assert_int_equal(gm_space_add_rom(s, 128 * MiB, 64 * 1024, fw, sizeof(fw), &rom), 0);
	assert_int_equal(gm_space_remove(s, other), 0);
	assert_int_equal(gm_space_window_info(s, w, &info), 0);
	assert_int_equal(info.numa_mode, GM_NUMA_BIND);
	assert_int_equal(policy_at(host, &got), GM_NUMA_BIND);

	assert_int_equal(gm_space_dump(s, dump, sizeof(dump), NULL), 0);
	snprintf(want, sizeof(want), "anon      numa=bind:0x%llx\n", (unsigned long long)first);
	assert_non_null(strstr(dump, want));
	/* Only RAM windows of this space have a policy. */
	assert_int_equal(
	    gm_space_set_policy(s, rom,
				&GM_OPTS(gm_numa_policy, .mode = GM_NUMA_BIND, .nodes = first)),
	    -EINVAL);
	assert_int_equal(
	    gm_space_set_policy(s, other,
				&GM_OPTS(gm_numa_policy, .mode = GM_NUMA_BIND, .nodes = first)),
	    -ENOENT);
	assert_int_equal(gm_space_set_policy(s, w, &GM_OPTS(gm_numa_policy, .mode = 9)), -EINVAL);
	assert_int_equal(gm_space_set_policy(NULL, w, &GM_OPTS(gm_numa_policy)), -EINVAL);
	/* Removed again: the dump says nothing. */
	assert_int_equal(gm_space_set_policy(s, w, &GM_OPTS(gm_numa_policy)), 0);
	assert_int_equal(gm_space_dump(s, dump, sizeof(dump), NULL), 0);
	assert_null(strstr(dump, "numa="));
	gm_space_free(s);
}

static void interleave_spreads_pages_over_two_nodes(void **state)
{
	uint64_t nodes = require_numa();
	struct gm_mapping *m;
	int seen[64] = {0}, distinct = 0;
	char *p;

	(void)state;
	if (__builtin_popcountll(nodes) < 2) {
		print_message("skipped: this machine has one NUMA node with memory; "
			      "interleaving needs two\n");
		skip();
	}
	assert_int_equal(gm_mapping_new_anon(64 * page, 0, &m), 0);
	(void)madvise(gm_mapping_host(m), 64 * page, MADV_NOHUGEPAGE);
	assert_int_equal(gm_mapping_set_policy(
			     m, 0, 64 * page,
			     &GM_OPTS(gm_numa_policy, .mode = GM_NUMA_INTERLEAVE, .nodes = nodes)),
			 0);
	assert_int_equal(gm_mapping_prefault(m, 0, 64 * page, NULL), 0);
	p = gm_mapping_host(m);
	for (size_t i = 0; i < 64; i++) {
		int n = node_of(p + i * page);

		assert_true(n >= 0 && n < 64 && (nodes >> n & 1));
		distinct += !seen[n]++;
	}
	assert_int_equal(distinct, __builtin_popcountll(nodes));
	gm_mapping_put(m);
}

static void bind_to_the_second_node_places_pages_there(void **state)
{
	uint64_t nodes = require_numa();
	unsigned second;
	struct gm_mapping *m;
	char *p;

	(void)state;
	if (__builtin_popcountll(nodes) < 2) {
		print_message("skipped: this machine has one NUMA node with memory; binding "
			      "away from the local node needs two\n");
		skip();
	}
	second = lowest(nodes & (nodes - 1));
	assert_int_equal(gm_mapping_new_anon(16 * page, 0, &m), 0);
	assert_int_equal(gm_mapping_set_policy(m, 0, 16 * page,
					       &GM_OPTS(gm_numa_policy, .mode = GM_NUMA_BIND,
							.nodes = 1ull << second)),
			 0);
	assert_int_equal(gm_mapping_prefault(m, 0, 16 * page, NULL), 0);
	p = gm_mapping_host(m);
	for (size_t i = 0; i < 16; i++)
		assert_int_equal(node_of(p + i * page), (int)second);
	gm_mapping_put(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(mapping_policy_reads_back),
	    cmocka_unit_test(memfd_policy_is_the_files),
	    cmocka_unit_test(bad_policies_are_refused),
	    cmocka_unit_test(space_policy_covers_growth_and_survives_hotplug),
	    cmocka_unit_test(interleave_spreads_pages_over_two_nodes),
	    cmocka_unit_test(bind_to_the_second_node_places_pages_there),
	};

	page = (size_t)sysconf(_SC_PAGESIZE);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
