/* SPDX-License-Identifier: MIT */
/*
 * view.c - the RAM regions of a gm_memory as a save or a migration sees
 * them, and their dirty bitmaps, read and cleared all at once ("collected")
 * so a page written meanwhile is dirty again for the next round.
 */
#include "snapshot-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void gm__view_regions_free(struct view_regions *v)
{
	for (size_t i = 0; i < v->ndirty; i++)
		free(v->dirty[i].bits);
	free(v->dirty);
	free(v->dirty_of);
	free(v->r);
	memset(v, 0, sizeof(*v));
}

/* Whether view region @b continues @a in the guest, on the host and in the bitmap. */
static bool continues(const struct gm_region_info *a, const struct gm_region_info *b)
{
	return a->gpa + a->size == b->gpa && a->mapping == b->mapping &&
	       a->offset + a->size == b->offset && a->dirty == b->dirty &&
	       (a->dirty == NULL || a->dirty_offset + a->size == b->dirty_offset);
}

int gm__view_regions_get(const struct gm_memory *m, struct view_regions *v)
{
	size_t count;
	int ret;

	memset(v, 0, sizeof(*v));
	count = gm_memory_region_count(m);
	if (count == 0 || count > SNAP_MAX_REGIONS)
		return -EINVAL;
	v->r = calloc(count, sizeof(*v->r));
	v->dirty = calloc(count, sizeof(*v->dirty));
	v->dirty_of = calloc(count, sizeof(*v->dirty_of));
	if (v->r == NULL || v->dirty == NULL || v->dirty_of == NULL) {
		ret = -ENOMEM;
		goto err;
	}
	for (size_t i = 0; i < count; i++) {
		struct gm_region_info ri = GM_OPTS(gm_region_info);

		ret = gm_memory_region(m, i, &ri);
		if (ret)
			goto err;
		/* A ROM is the caller's; zeros of an unplugged block are no data. */
		if (ri.flags & (GM_REGION_ROM | GM_REGION_ZERO))
			continue;
		ri.flags &= ~GM_REGION_READONLY;
		if (v->n > 0 && continues(&v->r[v->n - 1], &ri))
			v->r[v->n - 1].size += ri.size;
		else
			v->r[v->n++] = ri;
	}
	ret = -EINVAL;
	if (v->n == 0)
		goto err;
	for (size_t i = 0; i < v->n; i++) {
		struct gm_region_info *r = &v->r[i];
		size_t len;

		ret = -EINVAL;
		if (!gm_is_aligned(r->gpa, SNAP_PAGE) || !gm_is_aligned(r->size, SNAP_PAGE) ||
		    ((uintptr_t)r->host & (SNAP_PAGE - 1)) != 0)
			goto err;
		ret = gm_u64_to_size(r->size, &len);
		if (ret)
			goto err;
		v->dirty_of[i] = SIZE_MAX;
		if (r->dirty == NULL)
			continue;
		for (size_t j = 0; j < v->ndirty; j++)
			if (v->dirty[j].d == r->dirty)
				v->dirty_of[i] = j;
		if (v->dirty_of[i] == SIZE_MAX) {
			v->dirty[v->ndirty].d = r->dirty;
			v->dirty_of[i] = v->ndirty++;
		}
	}
	return 0;
err:
	gm__view_regions_free(v);
	return ret;
}

int gm__view_collect_dirty(struct view_regions *v, bool accumulate)
{
	for (size_t i = 0; i < v->ndirty; i++) {
		uint64_t words = div_round_up(gm_dirty_npages(v->dirty[i].d), 64);
		uint64_t *tmp;
		size_t nw;

		if (gm_u64_to_size(words, &nw) || nw > SIZE_MAX / sizeof(uint64_t))
			return -EOVERFLOW;
		if (v->dirty[i].bits == NULL) {
			v->dirty[i].bits = calloc(nw ? nw : 1, sizeof(uint64_t));
			if (v->dirty[i].bits == NULL)
				return -ENOMEM;
			accumulate = false;
		}
		v->dirty[i].nwords = nw;
		if (!accumulate) {
			if (gm_dirty_collect(v->dirty[i].d, 0, v->dirty[i].bits, nw))
				return -EINVAL;
			continue;
		}
		tmp = calloc(nw ? nw : 1, sizeof(uint64_t));
		if (tmp == NULL)
			return -ENOMEM;
		if (gm_dirty_collect(v->dirty[i].d, 0, tmp, nw)) {
			free(tmp);
			return -EINVAL;
		}
		for (size_t w = 0; w < nw; w++)
			v->dirty[i].bits[w] |= tmp[w];
		free(tmp);
	}
	return 0;
}

void gm__view_return_dirty(struct view_regions *v)
{
	for (size_t i = 0; i < v->ndirty; i++)
		if (v->dirty[i].bits != NULL)
			gm_dirty_merge(v->dirty[i].d, 0, v->dirty[i].bits, v->dirty[i].nwords);
}

bool gm__view_page_dirty(const struct view_regions *v, size_t i, uint64_t page)
{
	const struct gm_region_info *r = &v->r[i];
	uint64_t first, last;

	if (v->dirty_of[i] == SIZE_MAX)
		return true;
	/* dirty_offset need not be page aligned: test every bitmap page the page touches. */
	first = (r->dirty_offset + page * SNAP_PAGE) >> GM_PAGE_SHIFT;
	last = (r->dirty_offset + page * SNAP_PAGE + SNAP_PAGE - 1) >> GM_PAGE_SHIFT;
	for (uint64_t b = first; b <= last; b++)
		if (b / 64 < v->dirty[v->dirty_of[i]].nwords &&
		    bit_test(v->dirty[v->dirty_of[i]].bits, b))
			return true;
	return false;
}
