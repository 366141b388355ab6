/*
 * edit.c - the edits of a space: adding RAM, ROM, MMIO and reserved
 * windows, and removing, moving, resizing and protecting them. Each edit
 * changes the staging layout of the calling thread's transaction, or of an
 * implicit one (txn.c), and keeps invariants 1-3 and 6 (space-internal.h).
 */
#include "space-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/*
 * Stage window @w (just built, no reference yet) at [@gpa, @gpa + @size).
 * On success *@out = @w and the device will be told when @w is freed; on
 * failure @w is destroyed without telling it.
 */
static int add_window(struct gm_space *s, struct gm_window *w, gm_gpa_t gpa, uint64_t size,
		      struct gm_window **out)
{
	bool implicit;
	int err;

	err = gm__space_edit_begin(s, &implicit);
	if (err) {
		gm__window_destroy(w);
		return err;
	}
	if (is_pio(s) && has_memory(w->kind))
		err = -EOPNOTSUPP;
	else
		err = gm__layout_check_place(s, s->staging, w->kind, gpa, size, -1);
	if (!err)
		err = gm__layout_insert(s->staging, w, gpa, size);
	if (err) {
		gm__window_destroy(w);
		return gm__space_edit_end(s, implicit, err);
	}
	/* From here on the device is told when the window goes, unless the
	 * add's own implicit commit fails (gm__space_commit_locked() disarms it then). */
	w->release_armed = true;
	if (implicit)
		s->implicit_add = w;
	err = gm__space_edit_end(s, implicit, 0);
	if (!err)
		*out = w;
	return err;
}

/*
 * An edit that fails before it joins the transaction (a bad argument, no
 * memory for its window) still dooms the calling thread's open one, as
 * every failing edit does (space.h, "Editing"). Returns @err.
 */
int gm__space_fail_early(struct gm_space *s, int err)
{
	if (s && owned_by_me(s) && !s->in_callback && !s->doom)
		s->doom = err;
	return err;
}

/* Check the arguments every add shares. */
static int check_add_args(const struct gm_space *s, uint64_t size, struct gm_window **out)
{
	if (!s || !out || size == 0)
		return -EINVAL;
	return 0;
}

/* A RAM window's dirty bitmap, enabled as the space says. */
static int new_dirty(const struct gm_space *s, uint64_t capacity, struct gm_dirty **out)
{
	int err = gm_dirty_new(capacity, out);

	if (!err)
		gm_dirty_set_enabled(*out, __atomic_load_n(&s->dirty_enabled, __ATOMIC_RELAXED));
	return err;
}

/* Validate place arguments a RAM/ROM add can check before allocating. */
static int check_mem_args(const struct gm_space *s, gm_gpa_t gpa, uint64_t size)
{
	gm_gpa_t last;
	int err;

	if (is_pio(s))
		return -EOPNOTSUPP;
	err = gm_range_last(gpa, size, &last);
	if (err)
		return err;
	if (!gm_is_aligned(gpa, GM_PAGE_SIZE) || !gm_is_aligned(size, GM_PAGE_SIZE))
		return -EINVAL;
	return 0;
}

int gm_space_add_ram(struct gm_space *s, gm_gpa_t gpa, uint64_t size, uint64_t max_size,
		     unsigned map_flags, struct gm_window **out)
{
	struct gm_window *w;
	size_t len;
	int err;

	err = check_add_args(s, size, out);
	if (err)
		return gm__space_fail_early(s, err);
	if (max_size == 0)
		max_size = size;
	err = check_mem_args(s, gpa, size);
	if (!err && (max_size < size || !gm_is_aligned(max_size, GM_PAGE_SIZE) ||
		     (map_flags & GM_MAP_READONLY)))
		err = -EINVAL;
	if (!err)
		err = gm_u64_to_size(max_size, &len);
	if (err)
		goto err_early;
	w = gm__window_alloc(GM_WINDOW_RAM, "");
	if (!w)
		return gm__space_fail_early(s, -ENOMEM);
	w->capacity = max_size;
	err = gm_mapping_new_anon(len, map_flags, &w->mapping);
	if (!err)
		err = new_dirty(s, max_size, &w->dirty);
	if (err) {
		gm__window_destroy(w);
		goto err_early;
	}
	return add_window(s, w, gpa, size, out);

err_early:
	return gm__space_fail_early(s, err);
}

/* The shared part of adding a window of a caller's mapping. */
static int add_mapping_window(struct gm_space *s, enum gm_window_kind kind, gm_gpa_t gpa,
			      uint64_t size, struct gm_mapping *mapping, size_t offset,
			      struct gm_window **out)
{
	struct gm_window *w;
	size_t msize;
	int err;

	err = check_add_args(s, size, out);
	if (err)
		return gm__space_fail_early(s, err);
	err = check_mem_args(s, gpa, size);
	if (!err && (!mapping || !gm_is_aligned(offset, GM_PAGE_SIZE)))
		err = -EINVAL;
	if (!err && kind == GM_WINDOW_RAM && (gm_mapping_flags(mapping) & GM_MAP_READONLY))
		err = -EINVAL;
	if (!err) {
		msize = gm_mapping_size(mapping);
		if (offset > msize || size > msize - offset)
			err = -ERANGE;
	}
	if (err)
		goto err_early;
	w = gm__window_alloc(kind, "");
	if (!w)
		return gm__space_fail_early(s, -ENOMEM);
	w->mapping = gm_mapping_get(mapping);
	w->offset = offset;
	/* Whole pages only: the window grows by pages. */
	w->capacity = gm_align_down(msize - offset, GM_PAGE_SIZE);
	if (kind == GM_WINDOW_RAM) {
		err = new_dirty(s, w->capacity, &w->dirty);
		if (err) {
			gm__window_destroy(w);
			goto err_early;
		}
	} else {
		w->capacity = size;
	}
	return add_window(s, w, gpa, size, out);

err_early:
	return gm__space_fail_early(s, err);
}

int gm_space_add_ram_mapping(struct gm_space *s, gm_gpa_t gpa, uint64_t size,
			     struct gm_mapping *mapping, size_t offset, struct gm_window **out)
{
	return add_mapping_window(s, GM_WINDOW_RAM, gpa, size, mapping, offset, out);
}

int gm_space_add_rom_mapping(struct gm_space *s, gm_gpa_t gpa, uint64_t size,
			     struct gm_mapping *mapping, size_t offset, struct gm_window **out)
{
	return add_mapping_window(s, GM_WINDOW_ROM, gpa, size, mapping, offset, out);
}

int gm_space_add_rom(struct gm_space *s, gm_gpa_t gpa, uint64_t size, const void *data, size_t len,
		     struct gm_window **out)
{
	struct gm_mapping *m;
	size_t msize;
	int err;

	err = check_add_args(s, size, out);
	if (err)
		return gm__space_fail_early(s, err);
	err = check_mem_args(s, gpa, size);
	if (!err && (len > size || (!data && len)))
		err = -EINVAL;
	if (!err)
		err = gm_u64_to_size(size, &msize);
	if (!err)
		err = gm_mapping_new_anon(msize, 0, &m);
	if (err)
		return gm__space_fail_early(s, err);
	if (len)
		memcpy(gm_mapping_host(m), data, len);
	err = gm_mapping_protect(m, 0, msize, PROT_READ);
	if (!err)
		err = add_mapping_window(s, GM_WINDOW_ROM, gpa, size, m, 0, out);
	else
		gm__space_fail_early(s, err);
	gm_mapping_put(m); /* the window holds its own reference */
	return err;
}

int gm_space_add_mmio(struct gm_space *s, gm_gpa_t gpa, uint64_t size,
		      const struct gm_device_ops *ops, void *opaque, struct gm_window **out)
{
	struct gm_window *w;
	int err;

	err = check_add_args(s, size, out);
	if (err)
		return gm__space_fail_early(s, err);
	if (!ops || (!ops->read && !ops->write) || ops->sizes == 0 ||
	    (ops->sizes & ~GM_ACCESS_ALL) || (ops->flags & ~GM_DEVICE_ALL_FLAGS))
		return gm__space_fail_early(s, -EINVAL);
	w = gm__window_alloc(GM_WINDOW_MMIO, ops->name);
	if (!w)
		return gm__space_fail_early(s, -ENOMEM);
	w->ops = *ops;
	w->ops.name = w->name;
	w->opaque = opaque;
	return add_window(s, w, gpa, size, out);
}

int gm_space_add_reserved(struct gm_space *s, gm_gpa_t gpa, uint64_t size, const char *name,
			  struct gm_window **out)
{
	struct gm_window *w;
	int err;

	err = check_add_args(s, size, out);
	if (err)
		return gm__space_fail_early(s, err);
	w = gm__window_alloc(GM_WINDOW_RESERVED, name);
	if (!w)
		return gm__space_fail_early(s, -ENOMEM);
	return add_window(s, w, gpa, size, out);
}

/* ---- editing windows ---- */

int gm_space_remove(struct gm_space *s, struct gm_window *w)
{
	struct layout *l;
	bool implicit;
	long i;
	int err;

	if (!s || !w)
		return gm__space_fail_early(s, -EINVAL);
	err = gm__space_edit_begin(s, &implicit);
	if (err)
		return err;
	l = s->staging;
	i = find_placement(l, w);
	if (i < 0)
		return gm__space_edit_end(s, implicit, -ENOENT);
	gm__placement_free_parts(&l->placements[i]);
	memmove(&l->placements[i], &l->placements[i + 1],
		(l->nplacements - (size_t)i - 1) * sizeof(*l->placements));
	l->nplacements--;
	/* Freed now only if no published layout shows it (invariant 6). */
	gm__window_put(w);
	return gm__space_edit_end(s, implicit, 0);
}

int gm_space_move(struct gm_space *s, struct gm_window *w, gm_gpa_t new_gpa)
{
	struct layout *l;
	bool implicit;
	long i;
	int err;

	if (!s || !w)
		return gm__space_fail_early(s, -EINVAL);
	err = gm__space_edit_begin(s, &implicit);
	if (err)
		return err;
	l = s->staging;
	i = find_placement(l, w);
	if (i < 0)
		return gm__space_edit_end(s, implicit, -ENOENT);
	if (l->placements[i].gpa == new_gpa)
		goto no_change;
	err = gm__layout_check_place(s, l, w->kind, new_gpa, l->placements[i].size, i);
	if (err)
		return gm__space_edit_end(s, implicit, err);
	l->placements[i].gpa = new_gpa;
	gm__layout_resort(l, (size_t)i);
	return gm__space_edit_end(s, implicit, 0);

no_change:
	if (implicit)
		gm__space_txn_close(s);
	return 0;
}

int gm_space_resize(struct gm_space *s, struct gm_window *w, uint64_t new_size)
{
	struct layout *l;
	struct placement *pl;
	struct part *parts;
	bool implicit;
	long i;
	int err;

	if (!s || !w)
		return gm__space_fail_early(s, -EINVAL);
	err = gm__space_edit_begin(s, &implicit);
	if (err)
		return err;
	l = s->staging;
	i = find_placement(l, w);
	if (i < 0)
		return gm__space_edit_end(s, implicit, -ENOENT);
	pl = &l->placements[i];
	if (w->kind != GM_WINDOW_RAM || new_size < pl->size ||
	    !gm_is_aligned(new_size, GM_PAGE_SIZE))
		return gm__space_edit_end(s, implicit, -EINVAL);
	if (new_size == pl->size)
		goto no_change;
	if (new_size > w->capacity)
		return gm__space_edit_end(s, implicit, -ENOSPC);
	err = gm__layout_check_place(s, l, w->kind, pl->gpa, new_size, i);
	if (err)
		return gm__space_edit_end(s, implicit, err);
	/* The new part is GM_PROT_ALL: extend the last run or add one (invariant 2). */
	if (pl->parts[pl->nparts - 1].prot == GM_PROT_ALL) {
		pl->parts[pl->nparts - 1].size += new_size - pl->size;
	} else {
		parts = realloc(pl->parts, (pl->nparts + 1) * sizeof(*parts));
		if (!parts)
			return gm__space_edit_end(s, implicit, -ENOMEM);
		pl->parts = parts;
		parts[pl->nparts] = (struct part){
		    .offset = pl->size, .size = new_size - pl->size, .prot = GM_PROT_ALL};
		pl->nparts++;
	}
	pl->size = new_size;
	return gm__space_edit_end(s, implicit, 0);

no_change:
	if (implicit)
		gm__space_txn_close(s);
	return 0;
}

/*
 * The parts of @pl with [@offset, @offset + @size) set to @prot, merged into
 * maximal runs (invariant 2), in a new array. Returns 0 or -ENOMEM.
 */
static int reprotect(const struct placement *pl, uint64_t offset, uint64_t size, unsigned prot,
		     struct part **out, size_t *n)
{
	/* At most: the old parts, one of them split in three. */
	struct part *np = malloc((pl->nparts + 2) * sizeof(*np));
	uint64_t end = offset + size;
	size_t i, k = 0;

	if (!np)
		return -ENOMEM;
	for (i = 0; i < pl->nparts; i++) {
		const struct part *p = &pl->parts[i];
		uint64_t pend = p->offset + p->size;
		struct part pieces[3];
		size_t npieces = 0, j;

		if (pend <= offset || p->offset >= end) {
			pieces[npieces++] = *p;
		} else {
			if (p->offset < offset)
				pieces[npieces++] =
				    (struct part){p->offset, offset - p->offset, p->prot};
			pieces[npieces++] = (struct part){
			    p->offset > offset ? p->offset : offset,
			    (pend < end ? pend : end) - (p->offset > offset ? p->offset : offset),
			    prot};
			if (pend > end)
				pieces[npieces++] = (struct part){end, pend - end, p->prot};
		}
		for (j = 0; j < npieces; j++) {
			if (k && np[k - 1].prot == pieces[j].prot)
				np[k - 1].size += pieces[j].size;
			else
				np[k++] = pieces[j];
		}
	}
	*out = np;
	*n = k;
	return 0;
}

int gm_space_protect(struct gm_space *s, struct gm_window *w, uint64_t offset, uint64_t size,
		     unsigned prot)
{
	struct layout *l;
	struct placement *pl;
	struct part *np;
	size_t n;
	bool implicit;
	long i;
	int err;

	if (!s || !w)
		return gm__space_fail_early(s, -EINVAL);
	err = gm__space_edit_begin(s, &implicit);
	if (err)
		return err;
	l = s->staging;
	i = find_placement(l, w);
	if (i < 0)
		return gm__space_edit_end(s, implicit, -ENOENT);
	pl = &l->placements[i];
	if (w->kind != GM_WINDOW_RAM || size == 0 || !gm_is_aligned(offset, GM_PAGE_SIZE) ||
	    !gm_is_aligned(size, GM_PAGE_SIZE) || !prot_valid(prot))
		return gm__space_edit_end(s, implicit, -EINVAL);
	if (!gm_range_contains(0, pl->size, offset, size))
		return gm__space_edit_end(s, implicit, -ERANGE);
	err = reprotect(pl, offset, size, prot, &np, &n);
	if (err)
		return gm__space_edit_end(s, implicit, err);
	free(pl->parts);
	pl->parts = np;
	pl->nparts = n;
	return gm__space_edit_end(s, implicit, 0);
}
