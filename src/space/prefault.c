/* SPDX-License-Identifier: MIT */
/*
 * prefault.c - gm_space_prefault(): all of a guest's RAM faulted in before
 * it runs, by the mapping layer's parallel engine (mapping-prefault.c).
 *
 * The RAM windows of the committed layout (their plugged blocks only: an
 * unplugged block must stay without memory) are collected under space->lock
 * with a reference on each mapping, and faulted in after the lock is
 * dropped, so edits and the data path are not held up by a prefault that
 * takes seconds, and the progress callback may do anything but free the
 * space.
 */
#include "space-internal.h"

#include "../mapping-internal.h"

#include <errno.h>
#include <stdlib.h>

#include <guestmem/mapping.h>

/*
 * The plugged runs of @l's RAM windows (each window's current size; a
 * window without blocks is one run), stored in @r and @maps (a reference on
 * each run's mapping) when they are not NULL. Returns how many there are.
 */
static size_t collect(const struct layout *l, struct gm__prefault_range *r,
		      struct gm_mapping **maps)
{
	size_t n = 0;

	for (size_t i = 0; i < l->nplacements; i++) {
		const struct placement *p = &l->placements[i];
		struct gm_mapping *m = p->w->mapping;
		uint64_t from = 0, first, end;
		size_t page;

		if (p->w->kind != GM_WINDOW_RAM)
			continue;
		page = gm_mapping_page_size(m);
		while (next_plugged_run(p, from, p->size, &first, &end)) {
			if (r) {
				size_t len = (size_t)(end - first);

				r[n].host =
				    (char *)gm_mapping_host(m) + p->w->offset + (size_t)first;
				/*
				 * Page aligned on the host; round to the backing's page,
				 * inside the mapping, which is rounded the same way.
				 */
				r[n].len = len + (page - len % page) % page;
				r[n].page = page;
				r[n].write = true;
				maps[n] = gm_mapping_get(m);
			}
			n++;
			from = end;
		}
	}
	return n;
}

int gm_space_prefault(struct gm_space *s, const struct gm_prefault_opts *opts)
{
	struct gm__prefault_range *ranges;
	struct gm_mapping **maps;
	size_t n = 0, max;
	bool mine;
	int err = 0;

	if (!s)
		return -EINVAL;
	mine = owned_by_me(s);
	if (!mine)
		pthread_mutex_lock(&s->lock);
	max = collect(s->current, NULL, NULL);
	ranges = calloc(max ? max : 1, sizeof(*ranges));
	maps = calloc(max ? max : 1, sizeof(*maps));
	if (!ranges || !maps)
		err = -ENOMEM;
	else
		n = collect(s->current, ranges, maps);
	if (!mine)
		pthread_mutex_unlock(&s->lock);

	if (!err)
		err = gm__prefault(ranges, n, opts);
	for (size_t i = 0; i < n; i++)
		gm_mapping_put(maps[i]);
	free(ranges);
	free(maps);
	return err;
}
