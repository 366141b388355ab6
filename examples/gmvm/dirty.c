/* SPDX-License-Identifier: MIT */
/*
 * dirty.c - --dirty-stats: the pages the guest dirtied at each step.
 *
 * KVM logs guest writes per memory slot; gm_kvm_dirty_log_sync() merges
 * that log into the dirty bitmap of each RAM window (guestmem's dirty
 * layer), where the library's own writes are marked too. At each step
 * boundary gmvm syncs, then reads and clears every window's bitmap with
 * gm_dirty_collect(), and prints the dirty pages as guest address ranges.
 * For GMVM_STEP_DIRTY_EXACT, whose only stores go to the pages listed in
 * gmvm-abi.h, the set must be exactly those pages.
 */
#include "gmvm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_WINDOWS 16
#define MAX_PAGES   64 /* pages remembered for the exact check */

struct dirty_set {
	uint64_t count;		   /* all dirty pages */
	uint64_t pages[MAX_PAGES]; /* the first MAX_PAGES, ascending gpa */
	char ranges[512];	   /* "0x...-0x..., ..." for the report */
	size_t len;
	unsigned nranges;
};

static void add_range(struct dirty_set *d, uint64_t first, uint64_t last)
{
	int n;

	d->nranges++;
	if (d->nranges > 6) {
		if (d->nranges == 7 && d->len + 5 < sizeof(d->ranges))
			d->len += (size_t)snprintf(d->ranges + d->len, sizeof(d->ranges) - d->len,
						   ", ...");
		return;
	}
	n = snprintf(d->ranges + d->len, sizeof(d->ranges) - d->len, "%s0x%llx-0x%llx",
		     d->len ? ", " : "", (unsigned long long)first,
		     (unsigned long long)(last + GM_PAGE_SIZE - 1));
	if (n > 0 && (size_t)n < sizeof(d->ranges) - d->len)
		d->len += (size_t)n;
}

/* Read and clear one window's bitmap, adding its pages to @d. */
static int collect_window(const struct gm_window_info *w, struct dirty_set *d)
{
	uint64_t npages = gm_dirty_npages(w->dirty), run_first = 0, run_last = 0;
	size_t nwords = (size_t)((npages + 63) / 64);
	bool in_run = false;
	uint64_t *bits;
	int ret;

	bits = calloc(nwords, sizeof(*bits));
	if (bits == NULL)
		return -ENOMEM;
	ret = gm_dirty_collect(w->dirty, 0, bits, nwords);
	for (uint64_t p = 0; ret == 0 && p < npages; p++) {
		uint64_t gpa = w->gpa + p * GM_PAGE_SIZE;

		if (!(bits[p / 64] >> (p % 64) & 1)) {
			if (p % 64 == 0 && bits[p / 64] == 0)
				p += 63; /* skip a clean word */
			continue;
		}
		if (d->count < MAX_PAGES)
			d->pages[d->count] = gpa;
		d->count++;
		if (in_run && gpa == run_last + GM_PAGE_SIZE) {
			run_last = gpa;
			continue;
		}
		if (in_run)
			add_range(d, run_first, run_last);
		run_first = run_last = gpa;
		in_run = true;
	}
	if (in_run)
		add_range(d, run_first, run_last);
	free(bits);
	return ret;
}

static int collect_all(struct gmvm *vm, struct dirty_set *d)
{
	struct gm_window_info w[MAX_WINDOWS] = {GM_OPTS(gm_window_info)}; /* w[0].sz: the stride */
	size_t n;
	int ret;

	memset(d, 0, sizeof(*d));
	ret = gm_kvm_dirty_log_sync(vm->kvm);
	if (ret == 0)
		ret = gm_space_windows(vm->mem_space, w, MAX_WINDOWS, &n);
	for (size_t i = 0; ret == 0 && i < n; i++)
		if (w[i].kind == GM_WINDOW_RAM && w[i].dirty != NULL)
			ret = collect_window(&w[i], d);
	return ret;
}

/* Is @d exactly the pages the dirty-exact step writes? */
static bool is_exact(const struct gmvm *vm, const struct dirty_set *d)
{
	static const uint64_t low[] = GMVM_DIRTY_LOW_PAGES, high[] = GMVM_DIRTY_HIGH_PAGES;
	const size_t nlow = sizeof(low) / sizeof(low[0]), nhigh = sizeof(high) / sizeof(high[0]);
	uint64_t want[sizeof(low) / sizeof(low[0]) + sizeof(high) / sizeof(high[0])];
	const uint64_t high_base = GMVM_DIRTY_HIGH_BASE(vm->opts.high_ram);

	/* Low RAM sorts before high RAM and each list is ascending: @want is sorted. */
	for (size_t i = 0; i < nlow; i++)
		want[i] = GMVM_SCRATCH_GPA + low[i] * GM_PAGE_SIZE;
	for (size_t i = 0; i < nhigh; i++)
		want[nlow + i] = high_base + high[i] * GM_PAGE_SIZE;
	if (d->count != nlow + nhigh)
		return false;
	return memcmp(want, d->pages, sizeof(want)) == 0;
}

int gmvm_dirty_start(struct gmvm *vm)
{
	struct dirty_set d;
	int ret;

	ret = gm_space_dirty_enable(vm->mem_space, true);
	if (ret == 0)
		ret = gm_kvm_dirty_log_start(vm->kvm);
	/* Forget what gmvm itself wrote while loading: the report is about the guest. */
	if (ret == 0)
		ret = collect_all(vm, &d);
	return ret;
}

int gmvm_dirty_report(struct gmvm *vm, unsigned step, bool check_exact)
{
	struct dirty_set d;
	int ret;

	ret = collect_all(vm, &d);
	if (ret < 0)
		return gmvm_fail(ret, "dirty log: %s", strerror(-ret));
	gmvm_say("dirty: step %u (%s) dirtied %llu page(s)%s%s", step, gmvm_step_name(step),
		 (unsigned long long)d.count, d.count ? ": " : "", d.ranges);
	if (check_exact) {
		vm->control.dirty_exact_checked = true;
		vm->control.dirty_exact_ok = is_exact(vm, &d);
		gmvm_say("dirty: exactly the pages the payload wrote: %s",
			 vm->control.dirty_exact_ok ? "yes" : "NO");
	}
	return 0;
}
