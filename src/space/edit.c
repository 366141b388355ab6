/* SPDX-License-Identifier: MIT */
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
 * An edit in progress: the transaction it runs in (the calling thread's, or
 * its own implicit one) and, for an edit of an existing window, where that
 * window is in the staging layout.
 */
struct edit {
	struct gm_space *s;
	struct layout *l;     /* s->staging */
	bool implicit;	      /* the edit is its own transaction */
	struct placement *pl; /* edit_window(): the window's placement in l */
	size_t i;	      /* edit_window(): its index */
};

/*
 * An edit that fails before it joins the transaction (a bad argument, no
 * memory for its window) still dooms the calling thread's open one, as
 * every failing edit does (space.h, "Editing"). Returns @err.
 */
static int fail_early(struct gm_space *s, int err)
{
	if (s && owned_by_me(s) && !s->in_callback && !s->doom)
		s->doom = err;
	return err;
}

/* Start an edit of @s (txn.c). On error nothing is held. */
static int edit_open(struct gm_space *s, struct edit *e)
{
	int err = gm__space_edit_begin(s, &e->implicit);

	if (err)
		return err;
	e->s = s;
	e->l = s->staging;
	e->pl = NULL;
	e->i = 0;
	return 0;
}

/*
 * End edit @e with result @err: 0 means the staging layout changed. A
 * failure dooms an explicit transaction or discards the implicit one; a
 * success of an implicit edit commits it. Returns the edit's result or the
 * commit's.
 */
static int edit_done(struct edit *e, int err)
{
	return gm__space_edit_end(e->s, e->implicit, err);
}

/* End edit @e that changed nothing: an implicit transaction closes, nothing is published. */
static int edit_unchanged(struct edit *e)
{
	if (e->implicit)
		gm__space_txn_close(e->s);
	return 0;
}

/*
 * The prologue of every edit of an existing window (remove, move, resize,
 * protect): check @s and @w, start the edit, and find @w's placement in the
 * staging layout. Returns 0 with the edit open (end it with edit_done() or
 * edit_unchanged()), or an error with nothing held: -EINVAL if @s or @w is
 * NULL, -ENOENT if @w is not in the space (both doom the calling thread's
 * open transaction), or what gm__space_edit_begin() returned.
 */
static int edit_window(struct gm_space *s, struct gm_window *w, struct edit *e)
{
	long i;
	int err;

	if (!s || !w)
		return fail_early(s, -EINVAL);
	err = edit_open(s, e);
	if (err)
		return err;
	i = find_placement(e->l, w);
	if (i < 0)
		return edit_done(e, -ENOENT);
	e->i = (size_t)i;
	e->pl = &e->l->placements[i];
	return 0;
}

/*
 * Stage window @w (just built, no reference yet) at [@gpa, @gpa + @size).
 * On success *@out = @w and the device will be told when @w is freed; on
 * failure @w is destroyed without telling it.
 */
static int add_window(struct gm_space *s, struct gm_window *w, gm_gpa_t gpa, uint64_t size,
		      struct gm_window **out)
{
	struct edit e;
	int err;

	err = edit_open(s, &e);
	if (err) {
		gm__window_destroy(w);
		return err;
	}
	if (is_pio(s) && has_memory(w->kind))
		err = -EOPNOTSUPP;
	else
		err = gm__layout_check_place(s, e.l, w->kind, gpa, size, -1);
	if (!err)
		err = gm__layout_insert(e.l, w, gpa, size);
	if (err) {
		gm__window_destroy(w);
		return edit_done(&e, err);
	}
	/* From here on the device is told when the window goes, unless the add's
	 * own implicit commit fails (gm__space_commit_locked() disarms it then). */
	w->release_armed = true;
	if (e.implicit)
		s->implicit_add = w;
	err = edit_done(&e, 0);
	if (!err)
		*out = w;
	return err;
}

/*
 * Check the arguments every add shares. A failure dooms the calling
 * thread's open transaction (fail_early()). Returns 0 or -EINVAL.
 */
static int check_add_args(struct gm_space *s, uint64_t size, struct gm_window **out)
{
	if (!s || !out || size == 0)
		return fail_early(s, -EINVAL);
	return 0;
}

/*
 * A new window of @kind named @name in *@w, no reference yet: add_window()
 * stages or destroys it. Out of memory dooms the calling thread's open
 * transaction (fail_early()). Returns 0 or -ENOMEM.
 */
static int new_window(struct gm_space *s, enum gm_window_kind kind, const char *name,
		      struct gm_window **w)
{
	*w = gm__window_alloc(kind, name);
	return *w ? 0 : fail_early(s, -ENOMEM);
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
		return err;
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
	err = new_window(s, GM_WINDOW_RAM, "", &w);
	if (err)
		return err;
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
	return fail_early(s, err);
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
		return err;
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
	err = new_window(s, kind, "", &w);
	if (err)
		return err;
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
	return fail_early(s, err);
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
		return err;
	err = check_mem_args(s, gpa, size);
	if (!err && (len > size || (!data && len)))
		err = -EINVAL;
	if (!err)
		err = gm_u64_to_size(size, &msize);
	if (!err)
		err = gm_mapping_new_anon(msize, 0, &m);
	if (err)
		return fail_early(s, err);
	if (len)
		memcpy(gm_mapping_host(m), data, len);
	err = gm_mapping_protect(m, 0, msize, PROT_READ);
	if (!err)
		err = add_mapping_window(s, GM_WINDOW_ROM, gpa, size, m, 0, out);
	else
		fail_early(s, err);
	gm_mapping_put(m); /* the window holds its own reference */
	return err;
}

int gm_space_add_mmio(struct gm_space *s, gm_gpa_t gpa, uint64_t size,
		      const struct gm_device_ops *ops, void *opaque, struct gm_window **out)
{
	struct gm_device_ops o;
	struct gm_window *w;
	int err;

	err = check_add_args(s, size, out);
	if (err)
		return err;
	if (!ops)
		return fail_early(s, -EINVAL);
	/* The library's own copy: callbacks past the caller's sz are NULL. */
	err = GM_ABI_COPY_IN(&o, ops);
	if (err)
		return fail_early(s, err);
	if ((!o.read && !o.write) || o.sizes == 0 || (o.sizes & ~GM_ACCESS_ALL) ||
	    (o.flags & ~GM_DEVICE_ALL_FLAGS))
		return fail_early(s, -EINVAL);
	err = new_window(s, GM_WINDOW_MMIO, o.name, &w);
	if (err)
		return err;
	w->ops = o;
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
		return err;
	err = new_window(s, GM_WINDOW_RESERVED, name, &w);
	if (err)
		return err;
	return add_window(s, w, gpa, size, out);
}

/* ---- editing windows ---- */

int gm_space_remove(struct gm_space *s, struct gm_window *w)
{
	struct edit e;
	int err;

	err = edit_window(s, w, &e);
	if (err)
		return err;
	gm__placement_free_parts(e.pl);
	memmove(e.pl, e.pl + 1, (e.l->nplacements - e.i - 1) * sizeof(*e.pl));
	e.l->nplacements--;
	/* Freed now only if no published layout shows it (invariant 6). */
	gm__window_put(w);
	return edit_done(&e, 0);
}

int gm_space_move(struct gm_space *s, struct gm_window *w, gm_gpa_t new_gpa)
{
	struct edit e;
	int err;

	err = edit_window(s, w, &e);
	if (err)
		return err;
	if (e.pl->gpa == new_gpa)
		return edit_unchanged(&e);
	err = gm__layout_check_place(s, e.l, w->kind, new_gpa, e.pl->size, (long)e.i);
	if (err)
		return edit_done(&e, err);
	e.pl->gpa = new_gpa;
	gm__layout_resort(e.l, e.i);
	return edit_done(&e, 0);
}

int gm_space_resize(struct gm_space *s, struct gm_window *w, uint64_t new_size)
{
	struct placement *pl;
	struct part *parts;
	struct edit e;
	int err;

	err = edit_window(s, w, &e);
	if (err)
		return err;
	pl = e.pl;
	if (w->kind != GM_WINDOW_RAM || new_size < pl->size ||
	    !gm_is_aligned(new_size, GM_PAGE_SIZE))
		return edit_done(&e, -EINVAL);
	if (new_size == pl->size)
		return edit_unchanged(&e);
	if (new_size > w->capacity)
		return edit_done(&e, -ENOSPC);
	err = gm__layout_check_place(s, e.l, w->kind, pl->gpa, new_size, (long)e.i);
	if (err)
		return edit_done(&e, err);
	/* The new part is GM_PROT_ALL: extend the last run or add one (invariant 2). */
	if (pl->parts[pl->nparts - 1].prot == GM_PROT_ALL) {
		pl->parts[pl->nparts - 1].size += new_size - pl->size;
	} else {
		parts = realloc(pl->parts, (pl->nparts + 1) * sizeof(*parts));
		if (!parts)
			return edit_done(&e, -ENOMEM);
		pl->parts = parts;
		parts[pl->nparts] = (struct part){
		    .offset = pl->size, .size = new_size - pl->size, .prot = GM_PROT_ALL};
		pl->nparts++;
	}
	pl->size = new_size;
	return edit_done(&e, 0);
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
	struct part *np;
	struct edit e;
	size_t n;
	int err;

	err = edit_window(s, w, &e);
	if (err)
		return err;
	if (w->kind != GM_WINDOW_RAM || size == 0 || !gm_is_aligned(offset, GM_PAGE_SIZE) ||
	    !gm_is_aligned(size, GM_PAGE_SIZE) || !prot_valid(prot))
		return edit_done(&e, -EINVAL);
	if (!gm_range_contains(0, e.pl->size, offset, size))
		return edit_done(&e, -ERANGE);
	err = reprotect(e.pl, offset, size, prot, &np, &n);
	if (err)
		return edit_done(&e, err);
	free(e.pl->parts);
	e.pl->parts = np;
	e.pl->nparts = n;
	return edit_done(&e, 0);
}
