/* SPDX-License-Identifier: MIT */
/*
 * vhost-check.c - the invariant checkers of the vhost layer
 * (vhost-internal.h): one table on its own (invariants 2-3 of vhost.c) and
 * a gm_vhost_mem with the table in force and its dirty log (4-5). Used by
 * the tests and the failure sweep; never on the data path.
 */
#include <guestmem/vhost.h>

#include "vhost-internal.h"

#include <pthread.h>
#include <unistd.h>

/* One entry of a table on its own (invariant 2). */
static bool entry_ok(const struct vhost_entry *e)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), last;
	size_t len, total;

	if (e->size == 0 || !e->map || gm_add_overflow_u64(e->gpa, e->size - 1, &last) ||
	    gm_add_overflow_u64(e->uaddr, e->size - 1, &last) ||
	    gm_add_overflow_u64(e->mmap_offset, e->size - 1, &last) ||
	    gm_u64_to_size(e->size, &len))
		return false;
	/* The mapping covers the window, starting at the page holding mmap_offset. */
	return e->delta == e->mmap_offset % page &&
	       gm_mapping_fd_offset(e->map) == e->mmap_offset - e->delta &&
	       !gm_add_overflow_size(len, e->delta, &total) && total <= gm_mapping_size(e->map);
}

bool gm__vhost_invariants_ok(const struct gm_vhost_table *t)
{
	struct gm_region_info info = GM_OPTS(gm_region_info);
	size_t i, j, seen;

	if (!t || __atomic_load_n(&t->refs, __ATOMIC_RELAXED) == 0 || !t->mem ||
	    (t->n && (!t->by_gpa || !t->by_uaddr)) || gm_memory_region_count(t->mem) != t->n)
		return false;
	for (i = 0; i < t->n; i++) {
		const struct vhost_entry *e = &t->by_gpa[i], *u = t->by_uaddr[i];

		if (!entry_ok(e))
			return false;
		/* Invariant 3: by_uaddr points into by_gpa ... */
		if (u < t->by_gpa || u >= t->by_gpa + t->n)
			return false;
		/* ... both sorted, and neighbours apart, so no two regions overlap (2). */
		if (i > 0 && (t->by_gpa[i - 1].gpa + t->by_gpa[i - 1].size - 1 >= e->gpa ||
			      t->by_uaddr[i - 1]->uaddr + t->by_uaddr[i - 1]->size - 1 >= u->uaddr))
			return false;
		/* The data path's view is made of the same regions. */
		if (gm_memory_region(t->mem, i, &info) || info.gpa != e->gpa ||
		    info.size != e->size || info.mapping != e->map || info.offset != e->delta)
			return false;
		/* Invariant 5: every region marks the log at its guest-physical pages. */
		if (info.dirty != t->log || (t->log && info.dirty_offset != e->gpa))
			return false;
	}
	/* Each region exactly once in by_uaddr (invariant 3). */
	for (i = 0; i < t->n; i++) {
		for (j = 0, seen = 0; j < t->n; j++)
			seen += t->by_uaddr[j] == &t->by_gpa[i];
		if (seen != 1)
			return false;
	}
	return true;
}

bool gm__vhost_mem_invariants_ok(struct gm_vhost_mem *vm)
{
	const struct gm_vhost_table *t;
	bool ok;

	if (!vm || vm->max == 0 || vm->max > GM_VHOST_REGIONS_MAX)
		return false;
	pthread_mutex_lock(&vm->lock);
	t = vm->cur;
	ok = !t || (t->n <= vm->max && gm__vhost_invariants_ok(t));
	/* Invariant 5: the table in force carries the log and lies inside it. */
	if (t && vm->log)
		ok = ok && t->log == vm->log && gm__vhost_fits_log(vm->log, t->by_gpa, t->n);
	if (vm->logging)
		ok = ok && vm->log && gm_dirty_enabled(vm->log);
	ok = ok && __atomic_load_n(vm->census, __ATOMIC_RELAXED) >= 1 + (t != NULL);
	pthread_mutex_unlock(&vm->lock);
	return ok;
}
