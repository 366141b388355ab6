/* SPDX-License-Identifier: MIT */
/*
 * density.c - where gmvm's guest RAM lives and how much of it the host
 * really spends: --numa places every RAM window on the NUMA nodes with
 * memory (gm_space_set_policy(), before anything touches it) and prints
 * each window's policy; --balloon cuts high RAM into 2 MiB blocks, faults
 * all RAM in with every CPU (gm_space_prefault()) and, once the payload is
 * done, takes back the high RAM the guest no longer uses, as a balloon or
 * virtio-mem driver would give it: the blocks are unplugged
 * (gm_space_unplug(), one transaction; the KVM slot shrinks in the same
 * commit) and the host's RSS drop is printed.
 */
#include "gmvm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define MIB	      ((uint64_t)1 << 20)
#define BALLOON_BLOCK (2 * MIB)

/* The nodes with memory, as a mask of nodes 0-63 (0 if the kernel has no NUMA). */
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

/* This process's resident memory, bytes. */
static uint64_t rss_bytes(void)
{
	unsigned long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "re");

	if (f) {
		if (fscanf(f, "%lu %lu", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static const char *mode_name(unsigned mode)
{
	switch (mode) {
	case GM_NUMA_BIND:
		return "bind";
	case GM_NUMA_PREFERRED:
		return "preferred";
	case GM_NUMA_INTERLEAVE:
		return "interleave";
	default:
		return "default";
	}
}

static int set_numa(struct gmvm *vm)
{
	struct gm_window *ram[] = {vm->ram_low0, vm->ram_low1, vm->ram_high};
	uint64_t nodes = memory_nodes();
	/* One node: bind to it; several: spread the guest over them. */
	unsigned mode = nodes & (nodes - 1) ? GM_NUMA_INTERLEAVE : GM_NUMA_BIND;
	int ret;

	if (nodes == 0)
		return gmvm_fail(-ENOSYS, "--numa: this kernel shows no NUMA nodes");
	for (size_t i = 0; i < sizeof(ram) / sizeof(ram[0]); i++) {
		struct gm_window_info info = GM_OPTS(gm_window_info);

		ret = gm_space_set_policy(vm->mem_space, ram[i],
					  &GM_OPTS(gm_numa_policy, .mode = mode, .nodes = nodes));
		if (ret == 0)
			ret = gm_space_window_info(vm->mem_space, ram[i], &info);
		if (ret < 0)
			return gmvm_fail(ret, "--numa: %s", strerror(-ret));
		gmvm_say("numa: RAM 0x%llx-0x%llx (%llu MiB): %s over nodes 0x%llx",
			 (unsigned long long)info.gpa,
			 (unsigned long long)(info.gpa + info.max_size - 1),
			 (unsigned long long)(info.max_size / MIB), mode_name(info.numa_mode),
			 (unsigned long long)info.numa_nodes);
	}
	return 0;
}

static int prepare_balloon(struct gmvm *vm)
{
	uint64_t t0, before = rss_bytes();
	int ret =
	    gm_space_set_blocks(vm->mem_space, vm->ram_high, BALLOON_BLOCK, GM_BLOCKS_PLUGGED);

	if (ret < 0)
		return gmvm_fail(ret, "--balloon: blocks: %s", strerror(-ret));
	t0 = gmvm_now_ns();
	ret = gm_space_prefault(vm->mem_space, NULL);
	if (ret < 0)
		return gmvm_fail(ret, "--balloon: prefault: %s", strerror(-ret));
	gmvm_say("balloon: high RAM in %llu blocks of 2 MiB; all RAM faulted in by every CPU in "
		 "%.1f ms (host RSS %llu -> %llu MiB)",
		 (unsigned long long)(vm->opts.high_ram / BALLOON_BLOCK),
		 (gmvm_now_ns() - t0) / 1e6, (unsigned long long)(before / MIB),
		 (unsigned long long)(rss_bytes() / MIB));
	return 0;
}

int gmvm_density_setup(struct gmvm *vm)
{
	if (vm->opts.numa && set_numa(vm) < 0)
		return -1;
	if (vm->opts.balloon && prepare_balloon(vm) < 0)
		return -1;
	return 0;
}

int gmvm_balloon_step(struct gmvm *vm)
{
	/* The guest keeps its first block of high RAM and gives the rest back. */
	uint64_t give = vm->opts.high_ram - BALLOON_BLOCK, before, after;
	size_t slots_before = gm_kvm_slot_count(vm->kvm);
	int ret;

	if (give == 0) {
		gmvm_say("balloon: high RAM is one block: nothing to give back");
		return 0;
	}
	before = rss_bytes();
	ret = gm_space_unplug(vm->mem_space, vm->ram_high, BALLOON_BLOCK, give);
	if (ret < 0)
		return gmvm_fail(ret, "--balloon: unplug: %s", strerror(-ret));
	after = rss_bytes();
	gmvm_say("balloon: the guest gave back %llu blocks of 2 MiB above 4 GiB: host RSS %llu -> "
		 "%llu MiB (-%llu MiB); KVM slots %zu -> %zu",
		 (unsigned long long)(give / BALLOON_BLOCK), (unsigned long long)(before / MIB),
		 (unsigned long long)(after / MIB),
		 (unsigned long long)((before > after ? before - after : 0) / MIB), slots_before,
		 gm_kvm_slot_count(vm->kvm));
	return 0;
}
