/* SPDX-License-Identifier: MIT */
/*
 * layout.c - windows and layouts of the space layer: a window's handle
 * (alloc, destroy, references), the layout that places windows (clone,
 * free, insert, re-sort, the place check every edit makes), and the
 * checker of the numbered invariants that space-internal.h lists.
 */
#include "space-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static unsigned kind_prot(enum gm_window_kind kind)
{
	switch (kind) {
	case GM_WINDOW_RAM:
		return GM_PROT_ALL;
	case GM_WINDOW_ROM:
		return GM_PROT_READ | GM_PROT_EXEC;
	case GM_WINDOW_MMIO:
		return GM_PROT_READ | GM_PROT_WRITE;
	default:
		return GM_PROT_NONE;
	}
}

struct gm_window *gm__window_alloc(enum gm_window_kind kind, const char *name)
{
	struct gm_window *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->name = strdup(name ? name : "");
	if (!w->name) {
		free(w);
		return NULL;
	}
	w->kind = kind;
	w->ops.name = w->name;
	return w;
}

/* Free @w and what it owns; the device is told only if the add succeeded. */
void gm__window_destroy(struct gm_window *w)
{
	if (w->release_armed && w->ops.release)
		w->ops.release(w->opaque);
	gm_dirty_put(w->dirty);
	gm_mapping_put(w->mapping);
	gm_mapping_put(w->zero);
	free(w->name);
	free(w);
}

/* Called with space->lock held (invariant 6). */
void gm__window_put(struct gm_window *w)
{
	if (--w->refs == 0)
		gm__window_destroy(w);
}

void gm__placement_free_parts(struct placement *pl)
{
	free(pl->parts);
	pl->parts = NULL;
	pl->nparts = 0;
	free(pl->plugged);
	pl->plugged = NULL;
	pl->block = 0;
	pl->zero = false;
}

/* Called with space->lock held. NULL is ignored. */
void gm__layout_free(struct layout *l)
{
	size_t i;

	if (!l)
		return;
	for (i = 0; i < l->nplacements; i++) {
		gm__window_put(l->placements[i].w);
		gm__placement_free_parts(&l->placements[i]);
	}
	free(l->placements);
	free(l->regions);
	gm_memory_put(l->view);
	free(l);
}

/* A deep copy of @src's windows (not its regions or view). Called with space->lock held. */
int gm__layout_clone(const struct layout *src, struct layout **out)
{
	struct layout *l = calloc(1, sizeof(*l));
	size_t i;

	if (!l)
		return -ENOMEM;
	if (src->nplacements) {
		l->placements = calloc(src->nplacements, sizeof(*l->placements));
		if (!l->placements)
			goto err_free;
	}
	for (i = 0; i < src->nplacements; i++) {
		struct placement *pl = &l->placements[i];

		*pl = src->placements[i];
		pl->plugged = NULL;
		pl->parts = malloc(pl->nparts * sizeof(*pl->parts));
		if (!pl->parts)
			goto err_unwind;
		memcpy(pl->parts, src->placements[i].parts, pl->nparts * sizeof(*pl->parts));
		if (pl->block) {
			size_t bytes = gm__plug_words(pl) * sizeof(uint64_t);

			pl->plugged = malloc(bytes);
			if (!pl->plugged) {
				free(pl->parts);
				goto err_unwind;
			}
			memcpy(pl->plugged, src->placements[i].plugged, bytes);
		}
		pl->w->refs++;
		l->nplacements++;
	}
	*out = l;
	return 0;

err_unwind:
	l->placements[i].parts = NULL;
	gm__layout_free(l);
	return -ENOMEM;
err_free:
	free(l);
	return -ENOMEM;
}

/*
 * Check that [@gpa, @gpa + @size) is a valid place for a window of @kind in
 * @s and overlaps no window of @l other than the one at index @skip (-1:
 * none). Returns 0, -EINVAL, -EOVERFLOW, -ERANGE or -EEXIST.
 */
int gm__layout_check_place(const struct gm_space *s, const struct layout *l,
			   enum gm_window_kind kind, gm_gpa_t gpa, uint64_t size, long skip)
{
	gm_gpa_t last;
	size_t i;
	int err;

	err = gm_range_last(gpa, size, &last);
	if (err)
		return err;
	if (has_memory(kind) &&
	    (!gm_is_aligned(gpa, GM_PAGE_SIZE) || !gm_is_aligned(size, GM_PAGE_SIZE)))
		return -EINVAL;
	if (is_pio(s) && last >= GM_PIO_LIMIT)
		return -ERANGE;
	for (i = 0; i < l->nplacements; i++) {
		if ((long)i == skip)
			continue;
		if (gm_ranges_overlap(gpa, size, l->placements[i].gpa, l->placements[i].size))
			return -EEXIST;
	}
	return 0;
}

/* Insert window @w at [@gpa, @gpa + @size) into the staging layout; @w gets its reference. */
int gm__layout_insert(struct layout *l, struct gm_window *w, gm_gpa_t gpa, uint64_t size)
{
	struct placement *placements;
	struct part *part;
	size_t pos;

	part = malloc(sizeof(*part));
	if (!part)
		return -ENOMEM;
	placements = realloc(l->placements, (l->nplacements + 1) * sizeof(*placements));
	if (!placements) {
		free(part);
		return -ENOMEM;
	}
	l->placements = placements;
	for (pos = 0; pos < l->nplacements && l->placements[pos].gpa < gpa; pos++)
		;
	memmove(&placements[pos + 1], &placements[pos],
		(l->nplacements - pos) * sizeof(*placements));
	*part = (struct part){.offset = 0, .size = size, .prot = kind_prot(w->kind)};
	placements[pos] =
	    (struct placement){.w = w, .gpa = gpa, .size = size, .parts = part, .nparts = 1};
	l->nplacements++;
	w->refs++;
	return 0;
}

/* Keep l->placements sorted after placements[i].gpa changed (invariant 1). */
void gm__layout_resort(struct layout *l, size_t i)
{
	struct placement pl = l->placements[i];

	while (i > 0 && l->placements[i - 1].gpa > pl.gpa) {
		l->placements[i] = l->placements[i - 1];
		i--;
	}
	while (i + 1 < l->nplacements && l->placements[i + 1].gpa < pl.gpa) {
		l->placements[i] = l->placements[i + 1];
		i++;
	}
	l->placements[i] = pl;
}

/* ---- invariants ---- */

static bool layout_ok(const struct gm_space *s, const struct layout *l, bool published)
{
	size_t i, j, k = 0;

	for (i = 0; i < l->nplacements; i++) {
		const struct placement *pl = &l->placements[i];
		const struct gm_window *w = pl->w;
		uint64_t at = 0;

		/* 1 */
		if (i && l->placements[i - 1].gpa + (l->placements[i - 1].size - 1) >= pl->gpa)
			return false;
		if (is_pio(s) && (has_memory(w->kind) || pl->gpa + (pl->size - 1) >= GM_PIO_LIMIT))
			return false;
		/* 2 */
		if (pl->nparts == 0 || (w->kind != GM_WINDOW_RAM && pl->nparts != 1))
			return false;
		for (j = 0; j < pl->nparts; j++) {
			const struct part *p = &pl->parts[j];

			if (p->offset != at || p->size == 0 || !prot_valid(p->prot))
				return false;
			if (w->kind != GM_WINDOW_RAM && p->prot != kind_prot(w->kind))
				return false;
			if (w->kind == GM_WINDOW_RAM &&
			    ((j && pl->parts[j - 1].prot == p->prot) ||
			     !gm_is_aligned(p->offset | p->size, GM_PAGE_SIZE)))
				return false;
			at += p->size;
		}
		if (at != pl->size)
			return false;
		/* 3 */
		if (has_memory(w->kind)) {
			if (!w->mapping || pl->size > w->capacity ||
			    w->offset > gm_mapping_size(w->mapping) ||
			    w->capacity > gm_mapping_size(w->mapping) - w->offset)
				return false;
			if (w->kind == GM_WINDOW_RAM &&
			    (!w->dirty || gm_dirty_npages(w->dirty) < w->capacity / GM_PAGE_SIZE))
				return false;
		} else if (w->mapping || w->dirty) {
			return false;
		}
		/* 6: each layout holds one reference. */
		if (w->refs == 0)
			return false;
		/* 8 */
		if (pl->block) {
			uint64_t nblocks = w->capacity / pl->block;

			if (w->kind != GM_WINDOW_RAM || !pl->plugged ||
			    (pl->block & (pl->block - 1)) || pl->block % GM_PAGE_SIZE ||
			    pl->block % gm_mapping_page_size(w->mapping) || w->capacity % pl->block)
				return false;
			if (nblocks % 64 && pl->plugged[nblocks / 64] >> (nblocks % 64))
				return false;
			if (pl->zero && (!w->zero || gm_mapping_size(w->zero) < w->capacity))
				return false;
		} else if (pl->plugged || pl->zero) {
			return false;
		}
		/* 4, and 8: a part's regions are its plugged runs (and zero runs). */
		if (published && has_memory(w->kind)) {
			for (j = 0; j < pl->nparts; j++) {
				const struct part *p = &pl->parts[j];
				uint64_t from = p->offset, end = p->offset + p->size, run_end;
				bool plugged;

				if (p->prot == GM_PROT_NONE)
					continue;
				for (; from < end; from = run_end) {
					const struct gm_space_region *r;
					unsigned prot = p->prot;

					run_end = block_run(pl, from, end, &plugged);
					if (!plugged && !pl->zero)
						continue;
					if (!plugged)
						prot &= ~GM_PROT_WRITE;
					if (k >= l->nregions)
						return false;
					r = &l->regions[k++];
					if (r->window != w || r->gpa != pl->gpa + from ||
					    r->size != run_end - from || r->prot != prot ||
					    r->id == 0 || r->id >= s->next_id ||
					    (r->mapping == w->zero) == plugged ||
					    !(r->flags & GM_REGION_ZERO) != plugged)
						return false;
				}
			}
		}
	}
	if (!published)
		return true;
	if (k != l->nregions || !l->view || gm_memory_region_count(l->view) != l->nregions)
		return false;
	for (i = 0; i < l->nregions; i++)
		for (j = i + 1; j < l->nregions; j++)
			if (l->regions[i].id == l->regions[j].id ||
			    l->regions[i].slot == l->regions[j].slot)
				return false;
	return true;
}

bool gm__space_invariants_ok(struct gm_space *s)
{
	bool mine = owned_by_me(s), ok;

	if (!mine)
		pthread_mutex_lock(&s->lock);
	/* 5, 7 */
	ok = s->current != NULL && (s->staging != NULL) == mine;
	ok = ok && layout_ok(s, s->current, true);
	if (ok && s->staging)
		ok = layout_ok(s, s->staging, false);
	if (!mine)
		pthread_mutex_unlock(&s->lock);
	return ok;
}
