/*
 * space.c - the snapshot layer's operations on a gm_space: each runs on
 * the space's current view (gm_space_memory_get()), and
 * gm_snapshot_add_to_space() creates the saved RAM layout in one
 * transaction.
 */
#include <guestmem/space.h>

#include "snapshot-internal.h"

#include <errno.h>

int gm_snapshot_save_space(struct gm_space *space, const char *path,
			   const struct gm_snapshot_opts *opts)
{
	struct gm_memory *m;
	int ret;

	if (space == NULL)
		return -EINVAL;
	ret = gm_space_memory_get(space, &m);
	if (ret)
		return ret;
	ret = gm_snapshot_save(m, path, opts);
	gm_memory_put(m);
	return ret;
}

int gm_snapshot_restore_space(struct gm_snapshot *s, struct gm_space *space,
			      const struct gm_snapshot_opts *opts)
{
	struct gm_memory *m;
	int ret;

	if (space == NULL)
		return -EINVAL;
	ret = gm_space_memory_get(space, &m);
	if (ret)
		return ret;
	ret = gm_snapshot_restore(s, m, opts);
	gm_memory_put(m);
	return ret;
}

int gm_snapshot_add_to_space(struct gm_snapshot *s, struct gm_space *space,
			     enum gm_restore_mode mode, const struct gm_snapshot_opts *opts)
{
	struct progress pr;
	int ret;

	if (s == NULL || space == NULL || s->alone)
		return -EINVAL;
	gm__progress_init(&pr, opts, gm__snapshot_ram_size(s));
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

int gm_migrate_send_space(struct gm_space *space, int fd, const struct gm_migrate_opts *opts,
			  struct gm_migrate_stats *stats)
{
	struct gm_memory *m;
	int ret;

	if (space == NULL)
		return -EINVAL;
	ret = gm_space_memory_get(space, &m);
	if (ret)
		return ret;
	ret = gm_migrate_send(m, fd, opts, stats);
	gm_memory_put(m);
	return ret;
}

int gm_migrate_recv_space(struct gm_space *space, int fd, const struct gm_migrate_opts *opts,
			  struct gm_migrate_stats *stats)
{
	struct gm_memory *m;
	int ret;

	if (space == NULL)
		return -EINVAL;
	ret = gm_space_memory_get(space, &m);
	if (ret)
		return ret;
	ret = gm_migrate_recv(m, fd, opts, stats);
	gm_memory_put(m);
	return ret;
}
