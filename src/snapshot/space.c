/* SPDX-License-Identifier: MIT */
/*
 * space.c - the snapshot layer's operations on a gm_space: each runs on
 * the space's current view (gm_space_memory_get(), through on_view()), and
 * gm_snapshot_add_to_space() creates the saved RAM layout in one
 * transaction.
 */
#include <guestmem/space.h>

#include "snapshot-internal.h"

#include <errno.h>

/* An operation on a gm_memory and its arguments, for on_view(). */
struct view_call {
	int (*fn)(const struct view_call *c, const struct gm_memory *m);
	const char *path;
	struct gm_snapshot *s;
	const struct gm_snapshot_opts *opts;
	int fd;
	const struct gm_migrate_opts *mopts;
	struct gm_migrate_stats *stats;
};

/* Run @c on @space's current view, holding a reference on it for the whole call. */
static int on_view(struct gm_space *space, const struct view_call *c)
{
	struct gm_memory *m;
	int ret;

	if (space == NULL)
		return -EINVAL;
	ret = gm_space_memory_get(space, &m);
	if (ret)
		return ret;
	ret = c->fn(c, m);
	gm_memory_put(m);
	return ret;
}

static int call_save(const struct view_call *c, const struct gm_memory *m)
{
	return gm_snapshot_save(m, c->path, c->opts);
}

static int call_restore(const struct view_call *c, const struct gm_memory *m)
{
	return gm_snapshot_restore(c->s, m, c->opts);
}

static int call_send(const struct view_call *c, const struct gm_memory *m)
{
	return gm_migrate_send(m, c->fd, c->mopts, c->stats);
}

static int call_recv(const struct view_call *c, const struct gm_memory *m)
{
	return gm_migrate_recv(m, c->fd, c->mopts, c->stats);
}

int gm_snapshot_save_space(struct gm_space *space, const char *path,
			   const struct gm_snapshot_opts *opts)
{
	return on_view(space, &(struct view_call){.fn = call_save, .path = path, .opts = opts});
}

int gm_snapshot_restore_space(struct gm_snapshot *s, struct gm_space *space,
			      const struct gm_snapshot_opts *opts)
{
	return on_view(space, &(struct view_call){.fn = call_restore, .s = s, .opts = opts});
}

int gm_migrate_send_space(struct gm_space *space, int fd, const struct gm_migrate_opts *opts,
			  struct gm_migrate_stats *stats)
{
	return on_view(
	    space, &(struct view_call){.fn = call_send, .fd = fd, .mopts = opts, .stats = stats});
}

int gm_migrate_recv_space(struct gm_space *space, int fd, const struct gm_migrate_opts *opts,
			  struct gm_migrate_stats *stats)
{
	return on_view(
	    space, &(struct view_call){.fn = call_recv, .fd = fd, .mopts = opts, .stats = stats});
}

int gm_snapshot_add_to_space(struct gm_snapshot *s, struct gm_space *space,
			     enum gm_restore_mode mode, const struct gm_snapshot_opts *opts)
{
	struct progress pr;
	int ret;

	if (s == NULL || space == NULL || s->alone)
		return -EINVAL;
	ret = gm__progress_init(&pr, opts, gm__snapshot_ram_size(s));
	if (ret)
		return ret;
	ret = gm_space_begin(space);
	if (ret)
		return ret;
	/* One transaction: a failure part-way leaves the space as it was. */
	for (uint32_t i = 0; i < s->files[0].nregions; i++) {
		const struct snap_region *r = &s->files[0].regions[i];
		struct gm_mapping *map;
		struct gm_window *w;

		ret = gm_snapshot_map_region(s, i, mode, &map);
		if (ret)
			goto err;
		ret = gm_space_add_ram_mapping(space, r->gpa, r->size, map, 0, &w);
		gm_mapping_put(map); /* the window holds its own reference */
		if (ret == 0 && mode == GM_RESTORE_COPY)
			ret = gm__progress_add(&pr, r->size);
		if (ret)
			goto err;
	}
	return gm_space_commit(space);
err:
	gm_space_abort(space);
	return ret;
}
