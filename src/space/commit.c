/* SPDX-License-Identifier: MIT */
/*
 * commit.c - publishing a transaction's layout: derive its view regions
 * (invariant 4), give them ids and slots against the current ones, build
 * the gm_memory view, run the listeners' prepare (veto, rollback) and
 * commit phases, publish the layout with a release store (invariant 5) and
 * free replaced layouts after a grace period.
 */
#include "space-internal.h"

#include <errno.h>
#include <stdlib.h>

/*
 * The region of @pl's bytes [@first, @end) of part @p (a plugged run of it),
 * id and slot not yet assigned.
 */
static struct gm_space_region part_region(const struct placement *pl, const struct part *p,
					  uint64_t first, uint64_t end)
{
	struct gm_window *w = pl->w;

	/* Fits size_t: a RAM/ROM window's bytes lie in its mapping (invariant 3). */
	return (struct gm_space_region){
	    .gpa = pl->gpa + first,
	    .size = end - first,
	    .host = (unsigned char *)gm_mapping_host(w->mapping) + w->offset + (size_t)first,
	    .mapping = w->mapping,
	    .offset = w->offset + (size_t)first,
	    .flags = region_flags(w->kind, p->prot),
	    .prot = p->prot,
	    .dirty = w->dirty,
	    .dirty_offset = w->dirty ? first : 0,
	    .window = w,
	    .kind = w->kind,
	};
}

/*
 * The region of @pl's unplugged bytes [@first, @end) of part @p in a
 * window whose unplugged blocks read as zeros (invariant 8): its zero
 * mapping, read-only, with no dirty bitmap (nobody can write it).
 */
static struct gm_space_region zero_region(const struct placement *pl, const struct part *p,
					  uint64_t first, uint64_t end)
{
	struct gm_space_region r = part_region(pl, p, first, end);
	struct gm_window *w = pl->w;

	/* Fits size_t: the zero mapping is capacity bytes (invariant 8). */
	r.host = (unsigned char *)gm_mapping_host(w->zero) + (size_t)first;
	r.mapping = w->zero;
	r.offset = (size_t)first;
	r.prot = p->prot & ~GM_PROT_WRITE;
	r.flags = region_flags(w->kind, r.prot) | GM_REGION_ZERO;
	r.dirty = NULL;
	r.dirty_offset = 0;
	return r;
}

/*
 * Walk the regions of staging layout @l (invariants 4 and 8: each part
 * with a protection, cut at unplugged blocks, which are holes or zero
 * regions), storing them in @r when it is not NULL. Returns how many there
 * are.
 */
static size_t walk_regions(const struct layout *l, struct gm_space_region *r)
{
	size_t count = 0;

	for (size_t i = 0; i < l->nplacements; i++) {
		const struct placement *pl = &l->placements[i];

		if (!has_memory(pl->w->kind))
			continue;
		for (size_t j = 0; j < pl->nparts; j++) {
			const struct part *p = &pl->parts[j];
			uint64_t end = p->offset + p->size, run_end, from = p->offset;
			bool plugged;

			if (p->prot == GM_PROT_NONE)
				continue;
			for (; from < end; from = run_end) {
				run_end = block_run(pl, from, end, &plugged);
				if (!plugged && !pl->zero)
					continue;
				if (r)
					r[count] = plugged ? part_region(pl, p, from, run_end)
							   : zero_region(pl, p, from, run_end);
				count++;
			}
		}
	}
	return count;
}

/* The regions of staging layout @l, ids and slots not yet assigned (invariant 4). */
static int derive_regions(const struct layout *l, struct gm_space_region **out, size_t *n)
{
	struct gm_space_region *r = NULL;
	size_t count = walk_regions(l, NULL);

	if (count) {
		r = calloc(count, sizeof(*r));
		if (!r)
			return -ENOMEM;
		walk_regions(l, r);
	}
	*out = r;
	*n = count;
	return 0;
}

static bool same_region(const struct gm_space_region *a, const struct gm_space_region *b)
{
	/* The mapping too: a block plugged over its zero mapping is other memory. */
	return a->window == b->window && a->gpa == b->gpa && a->size == b->size &&
	       a->mapping == b->mapping && a->offset == b->offset;
}

/*
 * Give @nr new regions their ids and slots against the @no old ones (both
 * sorted by gpa), and list the changes in the documented order. A region
 * keeps its old id and slot when its window, gpa, size and offset are the
 * same. Advances *@next_id. Returns 0 or -ENOMEM.
 */
static int diff_regions(const struct gm_space_region *old, size_t no, struct gm_space_region *nr,
			size_t nn, uint64_t *next_id, struct gm_space_change **out, size_t *nout)
{
	struct gm_space_change *ch = NULL;
	bool *old_kept = NULL, *new_kept = NULL, *slot_used = NULL;
	size_t i = 0, j = 0, n = 0, slot = 0;
	int err = -ENOMEM;

	old_kept = calloc(no + 1, sizeof(bool));
	new_kept = calloc(nn + 1, sizeof(bool));
	slot_used = calloc(nn + 1, sizeof(bool));
	ch = calloc(no + nn + 1, sizeof(*ch));
	if (!old_kept || !new_kept || !slot_used || !ch)
		goto out;

	/* Match by gpa: within each list gpas are distinct (invariant 4). */
	while (i < no && j < nn) {
		if (old[i].gpa < nr[j].gpa) {
			i++;
		} else if (old[i].gpa > nr[j].gpa) {
			j++;
		} else {
			if (same_region(&old[i], &nr[j])) {
				old_kept[i] = new_kept[j] = true;
				nr[j].id = old[i].id;
				nr[j].slot = old[i].slot;
				/* Slots >= nn + 1 cannot collide with those handed out below. */
				if (old[i].slot <= nn)
					slot_used[old[i].slot] = true;
			}
			i++;
			j++;
		}
	}
	for (i = 0; i < no; i++)
		if (!old_kept[i])
			ch[n++] =
			    (struct gm_space_change){.kind = GM_CHANGE_REMOVE, .region = old[i]};
	for (i = 0, j = 0; j < nn; j++) {
		if (!new_kept[j])
			continue;
		while (old[i].id != nr[j].id)
			i++;
		if (old[i].flags != nr[j].flags)
			ch[n++] = (struct gm_space_change){.kind = GM_CHANGE_FLAGS,
							   .old_flags = old[i].flags,
							   .old_prot = old[i].prot,
							   .region = nr[j]};
	}
	for (j = 0; j < nn; j++) {
		if (new_kept[j])
			continue;
		while (slot_used[slot])
			slot++;
		slot_used[slot] = true;
		nr[j].slot = (uint32_t)slot;
		nr[j].id = (*next_id)++;
		ch[n++] = (struct gm_space_change){.kind = GM_CHANGE_ADD, .region = nr[j]};
	}
	*out = ch;
	*nout = n;
	ch = NULL;
	err = 0;
out:
	free(ch);
	free(slot_used);
	free(new_kept);
	free(old_kept);
	return err;
}

static int build_view(const struct gm_space_region *r, size_t n, struct gm_memory **out)
{
	struct gm_region_spec *specs = NULL;
	size_t i;
	int err;

	if (n) {
		specs = calloc(n, sizeof(*specs));
		if (!specs)
			return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		specs[i] = (struct gm_region_spec){.gpa = r[i].gpa,
						   .size = r[i].size,
						   .mapping = r[i].mapping,
						   .offset = r[i].offset,
						   .flags = r[i].flags,
						   .dirty = r[i].dirty,
						   .dirty_offset = r[i].dirty_offset};
	err = gm_memory_new(specs, n, out);
	free(specs);
	return err;
}

/*
 * Run the prepare phase. On a veto, roll back the listeners already
 * prepared (last first) and return the veto. Called with space->lock held.
 */
static int listeners_prepare(struct gm_space *s, const struct gm_space_change *ch, size_t n)
{
	struct gm_space_listener *l, *failed = NULL;
	int err = 0;

	s->in_callback = true;
	for (l = s->listeners; l; l = l->next) {
		if (!l->ops.prepare)
			continue;
		err = l->ops.prepare(l->opaque, s, ch, n);
		if (err) {
			failed = l;
			break;
		}
	}
	if (failed) {
		/* Reverse order over a singly linked list: walk to each predecessor. */
		struct gm_space_listener *stop = failed;

		while (stop != s->listeners) {
			struct gm_space_listener *prev = s->listeners;

			while (prev->next != stop)
				prev = prev->next;
			if (prev->ops.rollback)
				prev->ops.rollback(prev->opaque, s, ch, n);
			stop = prev;
		}
		/* A positive return is still a veto; keep errors negative. */
		if (err > 0)
			err = -err;
	}
	s->in_callback = false;
	return err;
}

static void listeners_commit(struct gm_space *s, const struct gm_space_change *ch, size_t n)
{
	struct gm_space_listener *l;

	s->in_callback = true;
	for (l = s->listeners; l; l = l->next)
		if (l->ops.commit)
			l->ops.commit(l->opaque, s, ch, n);
	s->in_callback = false;
}

/*
 * Free the retired layouts after a grace period. Called with space->lock
 * held, outside any read section of this thread (invariant 5).
 */
void gm__space_reclaim(struct gm_space *s)
{
	struct layout *l = s->retired;

	if (!l)
		return;
	s->retired = NULL;
	gm_rcu_synchronize();
	while (l) {
		struct layout *next = l->next_retired;

		gm__layout_free(l);
		l = next;
	}
}

/*
 * Replace space->current by @l (invariant 5). The release store orders the
 * layout's and the view's initialization before the pointer; it pairs with
 * the acquire load in current_layout().
 */
static void publish(struct gm_space *s, struct layout *l)
{
	struct layout *old;

	pthread_mutex_lock(&s->view_lock);
	old = s->current;
	__atomic_store_n(&s->current, l, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->view_lock);
	__atomic_fetch_add(&s->generation, 1, __ATOMIC_RELAXED);
	old->next_retired = s->retired;
	s->retired = old;
}

/* Commit the outermost transaction; called by its owner with space->lock held. Closes it. */
int gm__space_commit_locked(struct gm_space *s)
{
	struct layout *l = s->staging;
	struct gm_space_change *ch = NULL;
	struct gm__plug_delta delta = {0};
	size_t nch = 0;
	uint64_t next_id = s->next_id;
	int err = s->doom;

	if (err || !s->changed)
		goto out;
	err = derive_regions(l, &l->regions, &l->nregions);
	if (err)
		goto out;
	err = diff_regions(s->current->regions, s->current->nregions, l->regions, l->nregions,
			   &next_id, &ch, &nch);
	if (err)
		goto out;
	err = build_view(l->regions, l->nregions, &l->view);
	if (err)
		goto out;
	err = gm__plug_delta(s->current, l, &delta);
	if (err)
		goto out;
	if (nch) {
		err = listeners_prepare(s, ch, nch);
		if (err)
			goto out;
	}
	s->next_id = next_id;
	s->staging = NULL;
	publish(s, l);
	if (nch)
		listeners_commit(s, ch, nch);
	/* A device callback that edits the space commits inside its read
	 * section: waiting for a grace period there would wait for itself. */
	if (!gm_rcu_read_ongoing())
		gm__space_reclaim(s);
	/*
	 * After the grace period, so no reader of the old view still writes
	 * into a block being discarded (inside a read section: at once; a
	 * device writing into memory its guest unplugged is the guest's race).
	 */
	gm__plug_apply(&delta);
out:
	free(delta.runs);
	/* An add whose own commit fails has failed: its device is not told. */
	if (err && s->implicit_add)
		s->implicit_add->release_armed = false;
	s->implicit_add = NULL;
	free(ch);
	gm__space_txn_close(s);
	return err;
}
