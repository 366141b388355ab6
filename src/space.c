/*
 * space.c - the parts of the space layer not yet moved into src/space/
 * (space-internal.h lists the files and the invariants).
 */
#include "space/space-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
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

/*
 * Plan the next device access of an access at window offset @off with
 * @left bytes to go, in a window of @wsize bytes (struct gm_device_ops's
 * splitting rule). Sets *@base and *@size of the device access; it covers
 * bytes [@off, @off + min(@left, base + size - off)) of the access, and
 * is a read-modify-write when it does not coincide with them.
 * Returns 0 or -EOPNOTSUPP.
 */
static int plan_step(const struct gm_device_ops *ops, uint64_t wsize, uint64_t off, uint64_t left,
		     uint64_t *base, unsigned *size)
{
	bool unaligned = ops->flags & GM_DEVICE_UNALIGNED;
	unsigned sz;

	for (sz = 8; sz >= 1; sz >>= 1) {
		if (!(ops->sizes & sz) || sz > left)
			continue;
		if (unaligned || gm_is_aligned(off, sz)) {
			*base = off;
			*size = sz;
			return 0;
		}
	}
	if (!(ops->flags & GM_DEVICE_RMW))
		return -EOPNOTSUPP;
	for (sz = 1; !(ops->sizes & sz); sz <<= 1)
		;
	*base = unaligned ? off : gm_align_down(off, sz);
	if (*base > wsize || sz > wsize - *base)
		return -EOPNOTSUPP;
	*size = sz;
	return 0;
}

static uint64_t bytes_to_val(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;
	unsigned i;

	for (i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void val_to_bytes(uint64_t v, unsigned char *p, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Whether an access of @len bytes at window offset @off can be split. */
static int device_check(const struct gm_window *w, uint64_t wsize, uint64_t off, uint64_t len,
			bool write)
{
	const struct gm_device_ops *ops = &w->ops;

	if (write ? !ops->write : !ops->read)
		return -EACCES;
	while (len) {
		uint64_t base, covered;
		unsigned size;
		int err = plan_step(ops, wsize, off, len, &base, &size);

		if (err)
			return err;
		covered = base + size - off;
		if (covered > len)
			covered = len;
		/* A partial write needs the read half of read-modify-write. */
		if (write && (base != off || covered != size) && !ops->read)
			return -EOPNOTSUPP;
		off += covered;
		len -= covered;
	}
	return 0;
}

/* Do the device accesses device_check() approved. */
static int device_access(const struct gm_window *w, uint64_t wsize, uint64_t off,
			 unsigned char *buf, uint64_t len, bool write)
{
	const struct gm_device_ops *ops = &w->ops;
	void *opaque = w->opaque;

	while (len) {
		uint64_t base, covered, val = 0;
		unsigned size, skip;
		unsigned char unit[8];
		int err = plan_step(ops, wsize, off, len, &base, &size);

		if (err)
			return err;
		skip = (unsigned)(off - base);
		covered = size - skip;
		if (covered > len)
			covered = len;
		if (!write || skip || covered != size) {
			err = ops->read(opaque, base, size, &val);
			if (err)
				return err;
		}
		val_to_bytes(val, unit, size);
		if (write) {
			memcpy(unit + skip, buf, (size_t)covered);
			err = ops->write(opaque, base, size, bytes_to_val(unit, size));
			if (err)
				return err;
		} else {
			memcpy(buf, unit + skip, (size_t)covered);
		}
		buf += covered;
		off += covered;
		len -= covered;
	}
	return 0;
}

/* Whether bytes [@off, @off + @len) of RAM/ROM placement @pl allow the access. */
static int memory_check(const struct placement *pl, uint64_t off, uint64_t len, bool write)
{
	unsigned need = write ? GM_PROT_WRITE : GM_PROT_READ;
	size_t i;

	for (i = 0; i < pl->nparts; i++) {
		const struct part *p = &pl->parts[i];

		if (p->offset + p->size <= off || p->offset >= off + len)
			continue;
		if (!(p->prot & need))
			return -EACCES;
	}
	return 0;
}

/*
 * Check (@doit false) or do (@doit true) the part of an access that falls in
 * placement @pl: @n bytes at window offset @off, at @buf. Inside a read section
 * on layout @l.
 */
static int dispatch_chunk(const struct layout *l, const struct placement *pl, uint64_t off,
			  unsigned char *buf, uint64_t n, bool write, bool doit)
{
	const struct gm_window *w = pl->w;

	switch (w->kind) {
	case GM_WINDOW_MMIO:
		return doit ? device_access(w, pl->size, off, buf, n, write)
			    : device_check(w, pl->size, off, n, write);
	case GM_WINDOW_RAM:
	case GM_WINDOW_ROM:
		if (!doit)
			return memory_check(pl, off, n, write);
		/* Writes go through the view so dirty pages are marked. Reads copy
		 * straight from the window: checked above, and the window's bytes lie
		 * in its mapping (invariant 3), which the view holds. */
		if (write)
			return gm_write(l->view, pl->gpa + off, buf, (size_t)n);
		memcpy(buf,
		       (const unsigned char *)gm_mapping_host(w->mapping) + w->offset + (size_t)off,
		       (size_t)n);
		return 0;
	default:
		return -EFAULT;
	}
}

/*
 * Walk [@gpa, @gpa + @len) window by window through layout @l, starting in
 * window @i: check only (@doit false) or move the bytes (@doit true).
 */
static int dispatch_walk(const struct layout *l, long i, gm_gpa_t gpa, unsigned char *buf,
			 size_t len, bool write, bool doit)
{
	gm_gpa_t last = gpa + (len - 1);

	while (true) {
		const struct placement *pl = &l->placements[i];
		gm_gpa_t chunk_last = pl->gpa + (pl->size - 1);
		uint64_t n;
		int err;

		if (chunk_last > last)
			chunk_last = last;
		n = chunk_last - gpa + 1;
		err = dispatch_chunk(l, pl, gpa - pl->gpa, buf, n, write, doit);
		if (err)
			return err;
		if (chunk_last == last)
			return 0;
		buf += n;
		gpa = chunk_last + 1;
		/* The next byte must be the first of the next window (invariant 1). */
		i++;
		if ((size_t)i >= l->nplacements || l->placements[i].gpa != gpa)
			return -EFAULT;
	}
}

static int dispatch(struct gm_space *s, gm_gpa_t gpa, unsigned char *buf, size_t len, bool write)
{
	const struct layout *l;
	const struct placement *pl;
	gm_gpa_t last;
	long i;
	int err;

	if (!s || (!buf && len))
		return -EINVAL;
	if (len == 0)
		return 0;
	if (gm_add_overflow_u64(gpa, (uint64_t)len - 1, &last))
		return -EFAULT;
	gm_rcu_read_lock();
	l = current_layout(s);
	i = placement_at(l, gpa);
	pl = i < 0 ? NULL : &l->placements[i];
	if (!pl) {
		err = -EFAULT;
	} else if (last - pl->gpa <= pl->size - 1) {
		/* The common case: one window, one lookup. */
		err = dispatch_chunk(l, pl, gpa - pl->gpa, buf, len, write, false);
		if (!err)
			err = dispatch_chunk(l, pl, gpa - pl->gpa, buf, len, write, true);
	} else {
		err = dispatch_walk(l, i, gpa, buf, len, write, false);
		if (!err)
			err = dispatch_walk(l, i, gpa, buf, len, write, true);
	}
	gm_rcu_read_unlock();
	return err;
}

int gm_space_read(struct gm_space *s, gm_gpa_t gpa, void *buf, size_t len)
{
	return dispatch(s, gpa, buf, len, false);
}

int gm_space_write(struct gm_space *s, gm_gpa_t gpa, const void *buf, size_t len)
{
	/* The walk only reads @buf when @write is true. */
	return dispatch(s, gpa, (unsigned char *)(uintptr_t)buf, len, true);
}

static void fill_info(const struct placement *pl, struct gm_window_info *out)
{
	const struct gm_window *w = pl->w;

	*out = (struct gm_window_info){
	    .window = pl->w,
	    .kind = w->kind,
	    .gpa = pl->gpa,
	    .size = pl->size,
	    .max_size = w->kind == GM_WINDOW_RAM ? w->capacity : pl->size,
	    .prot = pl->parts[0].prot,
	    .flags = region_flags(w->kind, pl->parts[0].prot),
	    .nparts = pl->nparts,
	    .dirty = w->dirty,
	    .name = w->name,
	};
	if (has_memory(w->kind)) {
		out->mapping = w->mapping;
		out->offset = w->offset;
		out->host = (unsigned char *)gm_mapping_host(w->mapping) + w->offset;
	}
	if (w->kind == GM_WINDOW_MMIO) {
		out->ops = &w->ops;
		out->opaque = w->opaque;
	}
}

int gm_space_windows(struct gm_space *s, struct gm_window_info *out, size_t max, size_t *n)
{
	const struct layout *l;
	size_t i;

	if (!s || !n || (!out && max))
		return -EINVAL;
	pthread_mutex_lock(&s->view_lock);
	l = s->current;
	for (i = 0; i < l->nplacements && i < max; i++)
		fill_info(&l->placements[i], &out[i]);
	*n = l->nplacements;
	pthread_mutex_unlock(&s->view_lock);
	return *n > max ? -ENOBUFS : 0;
}

int gm_space_window_info(struct gm_space *s, struct gm_window *w, struct gm_window_info *out)
{
	long i;

	if (!s || !w || !out)
		return -EINVAL;
	pthread_mutex_lock(&s->view_lock);
	i = find_placement(s->current, w);
	if (i >= 0)
		fill_info(&s->current->placements[i], out);
	pthread_mutex_unlock(&s->view_lock);
	return i >= 0 ? 0 : -ENOENT;
}

int gm_space_find(struct gm_space *s, gm_gpa_t gpa, struct gm_window_info *out)
{
	long i;

	if (!s || !out)
		return -EINVAL;
	pthread_mutex_lock(&s->view_lock);
	i = placement_at(s->current, gpa);
	if (i >= 0)
		fill_info(&s->current->placements[i], out);
	pthread_mutex_unlock(&s->view_lock);
	return i >= 0 ? 0 : -EFAULT;
}

int gm_space_regions(struct gm_space *s, struct gm_space_region *out, size_t max, size_t *n)
{
	const struct layout *l;
	size_t i;

	if (!s || !n || (!out && max))
		return -EINVAL;
	pthread_mutex_lock(&s->view_lock);
	l = s->current;
	for (i = 0; i < l->nregions && i < max; i++)
		out[i] = l->regions[i];
	*n = l->nregions;
	pthread_mutex_unlock(&s->view_lock);
	return *n > max ? -ENOBUFS : 0;
}

static void dirty_enable_layout(const struct layout *l, bool enabled)
{
	size_t i;

	for (i = 0; l && i < l->nplacements; i++)
		if (l->placements[i].w->dirty)
			gm_dirty_set_enabled(l->placements[i].w->dirty, enabled);
}

int gm_space_dirty_enable(struct gm_space *s, bool enabled)
{
	bool mine;

	if (!s)
		return -EINVAL;
	mine = owned_by_me(s);
	if (!mine)
		pthread_mutex_lock(&s->lock);
	__atomic_store_n(&s->dirty_enabled, enabled, __ATOMIC_RELAXED);
	dirty_enable_layout(s->current, enabled);
	dirty_enable_layout(s->staging, enabled);
	if (!mine)
		pthread_mutex_unlock(&s->lock);
	return 0;
}

bool gm_space_dirty_enabled(const struct gm_space *s)
{
	return s && __atomic_load_n(&s->dirty_enabled, __ATOMIC_RELAXED);
}

/* ---- dump ---- */

/* Where dump output goes: a bounded buffer (snprintf rules) or a FILE. */
struct sink {
	char *buf;
	size_t len;
	size_t pos; /* bytes produced so far (may exceed len) */
	FILE *f;
	int err;
};

__attribute__((format(printf, 2, 3))) static void emit(struct sink *k, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	if (k->f) {
		if (vfprintf(k->f, fmt, ap) < 0)
			k->err = -EIO;
	} else {
		char *at = k->pos < k->len ? k->buf + k->pos : NULL;

		n = vsnprintf(at, at ? k->len - k->pos : 0, fmt, ap);
		if (n < 0)
			k->err = -EIO;
		else
			k->pos += (size_t)n;
	}
	va_end(ap);
}

static void format_size(uint64_t size, char *out, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	unsigned u = 0;

	while (u < 6 && size >= 1024 && size % 1024 == 0) {
		size /= 1024;
		u++;
	}
	snprintf(out, len, "%" PRIu64 " %s", size, units[u]);
}

static const char *kind_name(enum gm_window_kind kind)
{
	switch (kind) {
	case GM_WINDOW_RAM:
		return "ram";
	case GM_WINDOW_ROM:
		return "rom";
	case GM_WINDOW_MMIO:
		return "mmio";
	default:
		return "reserved";
	}
}

static const char *backing_name(const struct gm_window *w)
{
	if (w->kind == GM_WINDOW_MMIO)
		return "device";
	if (!has_memory(w->kind))
		return "none";
	return gm_mapping_fd(w->mapping) >= 0 ? "fd" : "anon";
}

static void dump_layout(const struct layout *l, struct sink *k)
{
	size_t i, j;

	emit(k, "%-9s %-18s %-18s %-10s %-4s %-8s %s\n", "KIND", "FIRST", "LAST", "SIZE", "PROT",
	     "BACKING", "NAME");
	for (i = 0; i < l->nplacements; i++) {
		const struct placement *pl = &l->placements[i];

		for (j = 0; j < pl->nparts; j++) {
			const struct part *p = &pl->parts[j];
			char size[32], prot[4];

			format_size(p->size, size, sizeof(size));
			prot[0] = p->prot & GM_PROT_READ ? 'r' : '-';
			prot[1] = p->prot & GM_PROT_WRITE ? 'w' : '-';
			prot[2] = p->prot & GM_PROT_EXEC ? 'x' : '-';
			prot[3] = '\0';
			/* No trailing blanks when there is no name. */
			emit(k, "%-9s 0x%016" PRIx64 " 0x%016" PRIx64 " %-10s %-4s %-*s%s\n",
			     kind_name(pl->w->kind), pl->gpa + p->offset,
			     pl->gpa + p->offset + (p->size - 1), size, prot,
			     pl->w->name[0] ? 9 : 0, backing_name(pl->w), pl->w->name);
		}
	}
}

int gm_space_dump(struct gm_space *s, char *buf, size_t len, size_t *needed)
{
	struct sink k = {.buf = buf, .len = len};

	if (!s || (!buf && len))
		return -EINVAL;
	if (len)
		buf[0] = '\0';
	pthread_mutex_lock(&s->view_lock);
	dump_layout(s->current, &k);
	pthread_mutex_unlock(&s->view_lock);
	if (needed)
		*needed = k.pos;
	if (k.err)
		return k.err;
	return k.pos >= len ? -ENOBUFS : 0;
}

int gm_space_dump_file(struct gm_space *s, FILE *f)
{
	struct sink k = {.f = f};

	if (!s || !f)
		return -EINVAL;
	pthread_mutex_lock(&s->view_lock);
	dump_layout(s->current, &k);
	pthread_mutex_unlock(&s->view_lock);
	return k.err;
}
