/* SPDX-License-Identifier: MIT */
/*
 * view.c - building and describing views (struct gm_memory).
 *
 * gm_memory_new() checks each region spec, sorts the regions, takes
 * references on their mappings and dirty bitmaps, and builds the slot
 * table of static/memory-inline.h (slots and their first regions). The
 * view never changes afterwards; the rest of the layer only reads it.
 * Also here: references (get/put), introspection, and the debug check of
 * the numbered invariants listed in memory-internal.h.
 */
#include <stdlib.h>

#include "../abi-internal.h"
#include "memory-internal.h"

/* A slot table larger than this gets a coarser shift (a few regions per slot). */
#define MAX_SLOTS (1u << 14)

static const struct gm_region_hot empty_region = {.gpa = 1, .last = 0};
static const uintptr_t empty_slot = GM__SLOT_SLOW;
static const struct gm_slot_dirty empty_slot_dirty = {NULL, 0};
static const uint32_t empty_slot_first = 0;

/* ---- construction ---------------------------------------------------- */

static int cmp_spec_gpa(const void *a, const void *b)
{
	const struct gm_region_spec *x = *(const struct gm_region_spec *const *)a;
	const struct gm_region_spec *y = *(const struct gm_region_spec *const *)b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/* Check one spec on its own. Returns 0 or the errno gm_memory_new() documents. */
static int check_spec(const struct gm_region_spec *s)
{
	gm_gpa_t last;
	size_t len, end;
	uint64_t dend;
	int err;

	if (s->mapping == NULL || (s->flags & ~GM_REGION_ALL_FLAGS) != 0)
		return -EINVAL;
	err = gm_range_last(s->gpa, s->size, &last);
	if (err)
		return err;
	if (gm_u64_to_size(s->size, &len))
		return -EOVERFLOW;
	if (gm_add_overflow_size(s->offset, len, &end) || end > gm_mapping_size(s->mapping))
		return -ERANGE;
	if (s->dirty != NULL && (gm_add_overflow_u64(s->dirty_offset, s->size, &dend) ||
				 dend > gm_dirty_npages(s->dirty) * GM_PAGE_SIZE))
		return -EINVAL;
	return 0;
}

/*
 * The coarsest power-of-two alignment shared by every region boundary,
 * raised until the slot table has at most MAX_SLOTS entries.
 */
static unsigned pick_shift(const struct gm_region_hot *r, uint32_t n, gm_gpa_t max_last)
{
	unsigned shift = 63;
	uint32_t i;

	for (i = 0; i < n; i++) {
		unsigned a;

		if (r[i].gpa != 0) {
			a = (unsigned)__builtin_ctzll(r[i].gpa);
			shift = a < shift ? a : shift;
		}
		if (r[i].last != UINT64_MAX) {
			a = (unsigned)__builtin_ctzll(r[i].last + 1);
			shift = a < shift ? a : shift;
		}
	}
	if (shift < GM_PAGE_SHIFT)
		shift = GM_PAGE_SHIFT;
	while ((max_last >> shift) >= MAX_SLOTS)
		shift++;
	return shift;
}

/*
 * The write entry of a slot of @r whose read entry is @e, before its flags
 * (invariant 3a): slow for a bitmap shared with another process (a
 * vhost-user log), whose inline mark could not count the pages it newly
 * sets; the library's mark does (src/dirty.c, invariant 5).
 */
static uintptr_t write_base(const struct gm_region_hot *r, uintptr_t e)
{
	if (r->dirty != NULL && gm__dirty_shared((const struct gm_dirty *)(const void *)r->dirty))
		return GM__SLOT_SLOW;
	return e;
}

/* Fill slots[] and slot_first[] (invariants 3 and 3a). */
static int build_slots(struct gm_memory *m)
{
	uint64_t nslots = (m->hot.max_last >> m->hot.shift) + 1, i;
	uint64_t span = ((uint64_t)1 << m->hot.shift) - 1;
	uint32_t j = 0;

	m->slots = calloc((size_t)nslots, sizeof(*m->slots));
	m->wslots = calloc((size_t)nslots, sizeof(*m->wslots));
	m->slot_dirty = calloc((size_t)nslots, sizeof(*m->slot_dirty));
	m->slot_first = calloc((size_t)nslots, sizeof(*m->slot_first));
	if (m->slots == NULL || m->wslots == NULL || m->slot_dirty == NULL || m->slot_first == NULL)
		return -ENOMEM;
	for (i = 0; i < nslots; i++) {
		gm_gpa_t start = i << m->hot.shift;
		const struct gm_region_hot *r;
		uintptr_t bias, e = GM__SLOT_SLOW, w;

		/* Stops at the last region: its last byte is max_last >= start. */
		while (m->regions[j].last < start)
			j++;
		r = &m->regions[j];
		m->slot_first[i] = j;
		bias = (uintptr_t)r->host - (uintptr_t)r->gpa;
		if (r->gpa <= start && r->last >= start + span && (bias & GM__SLOT_FLAGS) == 0)
			e = bias;
		w = write_base(r, e);
		if (r->flags & GM_REGION_READONLY)
			w |= GM__SLOT_READONLY;
		if (r->dirty != NULL)
			w |= GM__SLOT_DIRTY;
		m->slots[i] = e;
		m->wslots[i] = w;
		if ((w & (GM__SLOT_DIRTY | GM__SLOT_SLOW)) == GM__SLOT_DIRTY) {
			m->slot_dirty[i].dirty = r->dirty;
			m->slot_dirty[i].bias = r->dirty_offset - r->gpa; /* mod 2^64 */
		}
	}
	m->hot.slots = m->slots;
	m->hot.wslots = m->wslots;
	m->hot.slot_dirty = m->slot_dirty;
	m->hot.slot_first = m->slot_first;
	m->hot.nslots = nslots;
	return 0;
}

static void memory_free(struct gm_memory *m)
{
	uint32_t i;

	for (i = 0; i < m->hot.nregions; i++) {
		gm_mapping_put(m->cold[i].mapping);
		gm_dirty_put((struct gm_dirty *)m->regions[i].dirty);
	}
	free(m->regions);
	free(m->cold);
	free(m->slots);
	free(m->wslots);
	free(m->slot_dirty);
	free(m->slot_first);
	free(m);
}

static struct gm_memory *memory_alloc_empty(void)
{
	struct gm_memory *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->refs = 1;
	m->hot.regions = &empty_region;
	m->hot.slots = &empty_slot;
	m->hot.wslots = &empty_slot;
	m->hot.slot_dirty = &empty_slot_dirty;
	m->hot.slot_first = &empty_slot_first;
	m->hot.nslots = 1;
	m->hot.shift = GM_PAGE_SHIFT;
	return m;
}

int gm_memory_new(const struct gm_region_spec *specs, size_t n, struct gm_memory **out)
{
	const struct gm_region_spec **sorted = NULL;
	struct gm_memory *m;
	size_t i;
	int err;

	if (out == NULL || (specs == NULL && n > 0))
		return -EINVAL;
	if (n >= UINT32_MAX)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		err = check_spec(&specs[i]);
		if (err)
			return err;
	}
	m = memory_alloc_empty();
	if (m == NULL)
		return -ENOMEM;
	if (n == 0) {
		*out = m;
		return 0;
	}

	err = -ENOMEM;
	sorted = malloc(n * sizeof(*sorted));
	m->regions = calloc(n, sizeof(*m->regions));
	m->cold = calloc(n, sizeof(*m->cold));
	if (sorted == NULL || m->regions == NULL || m->cold == NULL)
		goto err_free;
	for (i = 0; i < n; i++)
		sorted[i] = &specs[i];
	qsort(sorted, n, sizeof(*sorted), cmp_spec_gpa);

	for (i = 0; i < n; i++) {
		const struct gm_region_spec *s = sorted[i];
		struct gm_region_hot *r = &m->regions[i];

		r->gpa = s->gpa;
		r->last = s->gpa + (s->size - 1); /* cannot wrap: check_spec() */
		if (i > 0 && r->gpa <= m->regions[i - 1].last) {
			err = -EEXIST; /* invariant 1 */
			goto err_free;
		}
		r->host = (unsigned char *)gm_mapping_host(s->mapping) + s->offset;
		r->flags = s->flags;
		r->dirty_offset = s->dirty_offset;
		/* References are taken last-to-first-free safe: nregions counts them. */
		r->dirty = s->dirty ? (struct gm_dirty_hot *)(void *)gm_dirty_get(s->dirty) : NULL;
		m->cold[i].mapping = gm_mapping_get(s->mapping);
		m->cold[i].offset = s->offset;
		m->hot.nregions = (uint32_t)i + 1;
		m->total += s->size;
	}
	m->hot.regions = m->regions;
	m->hot.max_last = m->regions[n - 1].last;
	m->hot.shift = pick_shift(m->regions, (uint32_t)n, m->hot.max_last);
	err = build_slots(m);
	if (err)
		goto err_free;
	free(sorted);
	*out = m;
	return 0;

err_free:
	free(sorted);
	memory_free(m);
	return err;
}

int gm_memory_new_anon(const struct gm_range *ranges, size_t n, struct gm_memory **out)
{
	struct gm_region_spec *specs;
	size_t i;
	int err = 0;

	if (out == NULL || (ranges == NULL && n > 0))
		return -EINVAL;
	specs = calloc(n ? n : 1, sizeof(*specs));
	if (specs == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		size_t len;

		specs[i].gpa = ranges[i].gpa;
		specs[i].size = ranges[i].size;
		if (ranges[i].size == 0) {
			err = -EINVAL;
			break;
		}
		if (gm_u64_to_size(ranges[i].size, &len)) {
			err = -EOVERFLOW;
			break;
		}
		err = gm_mapping_new_anon(len, GM_MAP_NORESERVE, &specs[i].mapping);
		if (err)
			break;
	}
	if (!err)
		err = gm_memory_new(specs, n, out);
	/* The view holds its own references; drop the constructors'. */
	for (i = 0; i < n; i++)
		gm_mapping_put(specs[i].mapping);
	free(specs);
	return err;
}

struct gm_memory *gm_memory_get(struct gm_memory *m)
{
	__atomic_fetch_add(&m->refs, 1, __ATOMIC_RELAXED);
	return m;
}

void gm_memory_put(struct gm_memory *m)
{
	if (m == NULL)
		return;
	/* ACQ_REL: the freeing thread sees every holder's last use. */
	if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
		memory_free(m);
}

bool gm__memory_invariants_ok(const struct gm_memory *m)
{
	uint64_t nslots, i;
	uint32_t k;

	if (m->hot.nregions == 0)
		return m->hot.max_last == 0 && m->hot.regions == &empty_region;
	for (k = 1; k < m->hot.nregions; k++)
		if (m->regions[k - 1].last >= m->regions[k].gpa) /* 1 */
			return false;
	if (m->hot.max_last != m->regions[m->hot.nregions - 1].last) /* 2 */
		return false;
	nslots = (m->hot.max_last >> m->hot.shift) + 1;
	if (m->hot.nslots != nslots)
		return false;
	for (i = 0; i < nslots; i++) {
		uint32_t first = m->slot_first[i];
		uintptr_t e = m->slots[i], w = m->wslots[i];
		const struct gm_slot_dirty *sd = &m->slot_dirty[i];
		gm_gpa_t start = i << m->hot.shift;
		const struct gm_region_hot *r;

		if (first >= m->hot.nregions) /* 3 */
			return false;
		r = &m->regions[first];
		if (r->last < start || (first > 0 && m->regions[first - 1].last >= start))
			return false;
		if (e != GM__SLOT_SLOW && /* 3a */
		    ((e & GM__SLOT_FLAGS) != 0 || r->gpa > start ||
		     r->last - start < ((uint64_t)1 << m->hot.shift) - 1 ||
		     (uintptr_t)r->host != e + (uintptr_t)r->gpa))
			return false;
		if (w !=
		    (write_base(r, e) | ((r->flags & GM_REGION_READONLY) ? GM__SLOT_READONLY : 0) |
		     (r->dirty != NULL ? GM__SLOT_DIRTY : 0)))
			return false;
		if ((w & (GM__SLOT_DIRTY | GM__SLOT_SLOW)) == GM__SLOT_DIRTY
			? sd->dirty != r->dirty || sd->bias != r->dirty_offset - r->gpa
			: sd->dirty != NULL || sd->bias != 0)
			return false;
	}
	for (k = 0; k < m->hot.nregions; k++) { /* 4 */
		const struct gm_region_hot *r = &m->regions[k];
		uint64_t size = r->last - r->gpa + 1;

		if (m->cold[k].offset + size > gm_mapping_size(m->cold[k].mapping))
			return false;
		if (r->dirty && r->dirty_offset + size > r->dirty->npages * GM_PAGE_SIZE)
			return false;
	}
	return true;
}

/* ---- introspection --------------------------------------------------- */

size_t gm_memory_region_count(const struct gm_memory *m)
{
	return m->hot.nregions;
}

/* Describe region @i into the caller's *@out (a sized struct: abi.h). */
static int fill_info(const struct gm_memory *m, uint32_t i, struct gm_region_info *out)
{
	const struct gm_region_hot *r = &m->regions[i];
	struct gm_region_info info = {
	    .gpa = r->gpa,
	    .size = r->last - r->gpa + 1,
	    .host = r->host,
	    .flags = r->flags,
	    .mapping = m->cold[i].mapping,
	    .offset = m->cold[i].offset,
	    .dirty = (struct gm_dirty *)(void *)r->dirty,
	    .dirty_offset = r->dirty_offset,
	};

	return GM_ABI_COPY_OUT(out, &info);
}

int gm_memory_region(const struct gm_memory *m, size_t index, struct gm_region_info *out)
{
	if (out == NULL || gm__abi_check_out(out))
		return -EINVAL;
	if (index >= m->hot.nregions)
		return -ENOENT;
	return fill_info(m, (uint32_t)index, out);
}

int gm_memory_find(const struct gm_memory *m, gm_gpa_t gpa, struct gm_region_info *out)
{
	const struct gm_region_hot *r;

	if (out == NULL || gm__abi_check_out(out))
		return -EINVAL;
	r = gm__region_of(m, gpa);
	if (r == NULL)
		return -EFAULT;
	return fill_info(m, (uint32_t)(r - m->regions), out);
}

uint64_t gm_memory_total_size(const struct gm_memory *m)
{
	return m->total;
}

int gm_memory_last_addr(const struct gm_memory *m, gm_gpa_t *last)
{
	if (last == NULL)
		return -EINVAL;
	if (m->hot.nregions == 0)
		return -ENOENT;
	*last = m->hot.max_last;
	return 0;
}
