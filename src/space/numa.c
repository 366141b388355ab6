/* SPDX-License-Identifier: MIT */
/*
 * numa.c - a RAM window's NUMA policy: gm_space_set_policy() applies it to
 * the window's whole capacity through gm_mapping_set_policy() (mbind), so
 * memory a later gm_space_resize() brings into use is already covered, and
 * records it on the window for gm_space_window_info() and the dump.
 *
 * The policy is a property of the window handle, not of a layout: it is
 * written under space->lock and space->view_lock (which the info and dump
 * readers take), and every layout showing the window shows the same policy,
 * so adding, moving or removing other windows leaves it as it was.
 */
#include "space-internal.h"

#include <errno.h>

#include <guestmem/mapping.h>

/* Whether @w is a window of @s the calling thread may edit: committed, or in its own transaction.
 */
static bool window_of(struct gm_space *s, const struct gm_window *w, bool mine)
{
	return find_placement(s->current, w) >= 0 ||
	       (mine && s->staging && find_placement(s->staging, w) >= 0);
}

int gm_space_set_policy(struct gm_space *s, struct gm_window *w,
			const struct gm_numa_policy *policy)
{
	struct gm_numa_policy p;
	size_t page, len;
	bool mine;
	int err;

	if (!s || !w || !policy)
		return -EINVAL;
	err = GM_ABI_COPY_IN(&p, policy);
	if (err)
		return err;
	mine = owned_by_me(s);
	if (!mine)
		pthread_mutex_lock(&s->lock);
	if (!window_of(s, w, mine)) {
		err = -ENOENT;
	} else if (w->kind != GM_WINDOW_RAM) {
		err = -EINVAL;
	} else {
		page = gm_mapping_page_size(w->mapping);
		/* capacity lies inside the mapping (invariant 3), so rounding up does too. */
		len = (size_t)w->capacity + (page - (size_t)w->capacity % page) % page;
		err = gm_mapping_set_policy(w->mapping, w->offset, len, &p);
	}
	if (!err) {
		pthread_mutex_lock(&s->view_lock);
		w->numa_mode = p.mode;
		w->numa_nodes = p.nodes;
		pthread_mutex_unlock(&s->view_lock);
	}
	if (!mine)
		pthread_mutex_unlock(&s->lock);
	return err;
}
