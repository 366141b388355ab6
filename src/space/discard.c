/* SPDX-License-Identifier: MIT */
/*
 * discard.c - giving guest RAM's host memory back (a balloon inflating, a
 * block unplugged): gm_space_discard() checks that a guest range is RAM
 * on page boundaries of each backing, then has the mapping layer free it
 * (gm_mapping_discard() knows what frees for each backing) and marks the
 * pages dirty where tracking is on, since they now read as zeros.
 *
 * It reads the current layout under space->lock (or inside the caller's
 * own transaction), so no window can go while it works; it edits no
 * layout and publishes nothing.
 */
#include "space-internal.h"

#include <errno.h>

#include <guestmem/dirty.h>
#include <guestmem/mapping.h>

/* The byte of @p's mapping at guest address @gpa (inside @p). */
static size_t mapping_offset(const struct placement *p, gm_gpa_t gpa)
{
	/* window->offset + capacity lies inside the mapping (invariant 3). */
	return p->w->offset + (size_t)(gpa - p->gpa);
}

/*
 * Call @fn on each piece [gpa, gpa + len) of [@first, @end) that lies in one
 * placement of @l, in order. -EINVAL when a byte of the range is not RAM or
 * a piece is not aligned to its backing's page size (checked for every
 * piece before the first call only when @fn is NULL).
 */
static int for_each_ram_piece(const struct layout *l, gm_gpa_t first, gm_gpa_t end,
			      int (*fn)(const struct placement *p, gm_gpa_t gpa, uint64_t len,
					void *arg),
			      void *arg)
{
	gm_gpa_t cur = first;

	for (size_t i = 0; i < l->nplacements && cur < end; i++) {
		const struct placement *p = &l->placements[i];
		uint64_t p_end = p->gpa + p->size, len;
		size_t page;

		if (p_end <= cur)
			continue;
		if (p->gpa > cur || p->w->kind != GM_WINDOW_RAM)
			return -EINVAL; /* a hole, or not RAM */
		len = (p_end < end ? p_end : end) - cur;
		page = gm_mapping_page_size(p->w->mapping);
		if (!gm_is_aligned(mapping_offset(p, cur), page) || !gm_is_aligned(len, page))
			return -EINVAL;
		if (fn) {
			int err = fn(p, cur, len, arg);

			if (err)
				return err;
		}
		cur += len;
	}
	return cur == end ? 0 : -EINVAL;
}

struct discard_args {
	unsigned flags;
	uint64_t freed;
};

static int discard_piece(const struct placement *p, gm_gpa_t gpa, uint64_t len, void *arg)
{
	struct discard_args *a = arg;
	uint64_t freed = 0, from = gpa - p->gpa, end = from + len, first, run_end;
	int err = gm_mapping_discard(p->w->mapping, mapping_offset(p, gpa), (size_t)len, a->flags,
				     &freed);

	if (err)
		return err;
	a->freed += freed;
	if (!gm_dirty_enabled(p->w->dirty))
		return 0;
	/* An unplugged block has no dirty pages (invariant 8), hole or zeros. */
	for (; next_plugged_run(p, from, end, &first, &run_end); from = run_end)
		gm_dirty_mark(p->w->dirty, first, run_end - first);
	return 0;
}

int gm_space_discard(struct gm_space *s, gm_gpa_t gpa, uint64_t len, unsigned flags,
		     uint64_t *freed)
{
	struct discard_args args = {.flags = flags};
	gm_gpa_t end;
	bool mine;
	int err;

	if (!s || len == 0 || gm_add_overflow_u64(gpa, len, &end) || (flags & ~GM_DISCARD_LAZY))
		return -EINVAL;
	mine = owned_by_me(s);
	if (!mine)
		pthread_mutex_lock(&s->lock);
	/* Every piece is checked before the first is discarded. */
	err = for_each_ram_piece(s->current, gpa, end, NULL, NULL);
	if (!err)
		err = for_each_ram_piece(s->current, gpa, end, discard_piece, &args);
	if (!mine)
		pthread_mutex_unlock(&s->lock);
	if (!err && freed)
		*freed = args.freed;
	return err;
}
