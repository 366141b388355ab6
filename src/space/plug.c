/* SPDX-License-Identifier: MIT */
/*
 * plug.c - blocks of a RAM window plugged in and out, as virtio-mem does:
 * gm_space_set_blocks() cuts a window's capacity into blocks and says
 * which are plugged; gm_space_plug() and gm_space_unplug() are edits like
 * any other (staged in a transaction, published by its commit, announced
 * to listeners), which change a placement's plugged bitmap (invariant 8).
 *
 * Which memory exists is decided in one place: derive_regions() (commit.c)
 * leaves unplugged blocks out of the regions, the way it leaves out parts
 * with no protection. So the view has a hole there (the data path says
 * -EFAULT), gm_space_read()/write() refuse it (route.c), listeners such as
 * the KVM binding see the region removed and the plugged pieces added,
 * and a snapshot of the view stores nothing for it.
 *
 * Or, for a window set up with GM_BLOCKS_ZERO, its unplugged blocks read
 * as zeros: derive_regions() makes each unplugged run a read-only region
 * of the window's zero mapping. That is one anonymous PROT_READ mapping of
 * the window's capacity, made once, which nothing ever writes: a read
 * fault maps the kernel's shared zero page, so no host memory is spent
 * whatever the guest reads, and whatever the window's backing is. (The
 * window's own discarded memory mapped read-only would not do: a read of
 * a hole of a shared memfd allocates a page, and changing the protection
 * of pages of a mapping that KVM slots and old views still map, plugged
 * neighbours included, is a host-side edit no grace period orders.) A
 * write is refused by every path as for a ROM: the view's READONLY flag
 * (-EACCES), route.c (-EACCES), and the KVM binding's read-only slot (an
 * exit). Plugging the block again gives back the window's own memory,
 * discarded at unplug, so it reads zeros and is writable.
 *
 * The host memory follows at commit: gm__plug_delta() lists the blocks
 * whose state the commit changes before the listeners run (it can fail,
 * they can still veto), and gm__plug_apply() discards the unplugged ones
 * after the grace period and clears their dirty bits (an unplugged block
 * has no dirty pages), and marks newly plugged ones dirty where tracking
 * is on (they read zeros now).
 */
#include "space-internal.h"

#include <errno.h>
#include <stdlib.h>

#include <guestmem/dirty.h>
#include <guestmem/mapping.h>

size_t gm__plug_words(const struct placement *pl)
{
	uint64_t nblocks = pl->w->capacity / pl->block;

	return (size_t)((nblocks + 63) / 64);
}

/* ---- the commit's side ---- */

static int add_run(struct gm__plug_delta *d, size_t *cap, struct gm_window *w, uint64_t offset,
		   uint64_t size, bool plug)
{
	struct gm__plug_run *r = d->n ? &d->runs[d->n - 1] : NULL;

	if (r && r->w == w && r->plug == plug && r->offset + r->size == offset) {
		r->size += size;
		return 0;
	}
	if (d->n == *cap) {
		size_t ncap = *cap ? 2 * *cap : 8;
		struct gm__plug_run *runs = realloc(d->runs, ncap * sizeof(*runs));

		if (!runs)
			return -ENOMEM;
		d->runs = runs;
		*cap = ncap;
	}
	d->runs[d->n++] =
	    (struct gm__plug_run){.w = w, .offset = offset, .size = size, .plug = plug};
	return 0;
}

int gm__plug_delta(const struct layout *old, const struct layout *l, struct gm__plug_delta *d)
{
	size_t cap = 0;

	d->runs = NULL;
	d->n = 0;
	for (size_t i = 0; i < l->nplacements; i++) {
		const struct placement *pl = &l->placements[i];
		long j;
		const struct placement *was;

		if (!pl->block)
			continue;
		j = find_placement(old, pl->w);
		was = j < 0 ? NULL : &old->placements[j];
		for (uint64_t b = 0; b < pl->w->capacity / pl->block; b++) {
			/* A window new in this commit had all its (fresh) memory plugged. */
			bool before = !was || block_plugged(was, b), now = block_plugged(pl, b);
			int err;

			if (before == now)
				continue;
			err = add_run(d, &cap, pl->w, b * pl->block, pl->block, now);
			if (err) {
				free(d->runs);
				d->runs = NULL;
				d->n = 0;
				return err;
			}
		}
	}
	return 0;
}

/* Clear the dirty bits of pages [@first, @first + @n) of @d, keeping the others. */
static void clear_dirty(struct gm_dirty *d, uint64_t first, uint64_t n)
{
	uint64_t npages = gm_dirty_npages(d), end = first + n;

	if (end > npages)
		end = npages;
	for (uint64_t word = first / 64 * 64; word < end; word += 64) {
		uint64_t bits, keep = 0;

		if (gm_dirty_collect(d, word, &bits, 1))
			return;
		for (unsigned i = 0; i < 64; i++)
			if (word + i < first || word + i >= end)
				keep |= 1ull << i;
		bits &= keep;
		/* ORed back: a bit a writer sets meanwhile is kept, never lost. */
		if (bits)
			(void)gm_dirty_merge(d, word, &bits, 1);
	}
}

void gm__plug_apply(const struct gm__plug_delta *d)
{
	for (size_t i = 0; i < d->n; i++) {
		const struct gm__plug_run *r = &d->runs[i];
		struct gm_window *w = r->w;

		if (r->plug) {
			if (gm_dirty_enabled(w->dirty))
				gm_dirty_mark(w->dirty, r->offset, r->size);
			continue;
		}
		/* Checked when the blocks were set: aligned, inside the mapping, discardable. */
		(void)gm_mapping_discard(w->mapping, w->offset + (size_t)r->offset, (size_t)r->size,
					 0, NULL);
		clear_dirty(w->dirty, r->offset / GM_PAGE_SIZE, r->size / GM_PAGE_SIZE);
	}
}

/* ---- the edits ---- */

/*
 * An edit that fails on its arguments dooms the calling thread's open
 * transaction, as every failing edit does (edit.c's fail_early()).
 */
static int refuse(struct gm_space *s, int err)
{
	if (s && owned_by_me(s) && !s->in_callback && !s->doom)
		s->doom = err;
	return err;
}

/* Open an edit of @w: *@pl is its placement in the staging layout. */
static int plug_edit_open(struct gm_space *s, struct gm_window *w, bool *implicit,
			  struct placement **pl)
{
	long i;
	int err;

	if (!s || !w)
		return refuse(s, -EINVAL);
	err = gm__space_edit_begin(s, implicit);
	if (err)
		return err;
	i = find_placement(s->staging, w);
	if (i < 0)
		return gm__space_edit_end(s, *implicit, -ENOENT);
	*pl = &s->staging->placements[i];
	return 0;
}

/* Whether a discard can free @m's memory (gm_mapping_discard()'s backings). */
static int discardable(const struct gm_mapping *m)
{
	unsigned flags = gm_mapping_flags(m);

	if (flags & GM_MAP_READONLY)
		return -EACCES;
	if (gm_mapping_fd(m) >= 0 && !(flags & GM_MAP_SHARED))
		return -EOPNOTSUPP; /* a private file mapping reads back as the file */
	return 0;
}

/* A zero mapping for @w's unplugged blocks (invariant 8), if it has none. Under space->lock. */
static int make_zero_mapping(struct gm_window *w)
{
	/* Fits size_t: the window's mapping holds capacity bytes (invariant 3). */
	if (w->zero)
		return 0;
	return gm_mapping_new_anon((size_t)w->capacity, GM_MAP_READONLY | GM_MAP_NORESERVE,
				   &w->zero);
}

int gm_space_set_blocks(struct gm_space *s, struct gm_window *w, uint64_t block_size,
			unsigned flags)
{
	struct placement *pl = NULL;
	size_t page, words;
	bool implicit;
	int err;

	err = plug_edit_open(s, w, &implicit, &pl);
	if (err)
		return err;
	if (w->kind != GM_WINDOW_RAM || (flags & ~(GM_BLOCKS_PLUGGED | GM_BLOCKS_ZERO)))
		return gm__space_edit_end(s, implicit, -EINVAL);
	page = gm_mapping_page_size(w->mapping);
	if (block_size < GM_PAGE_SIZE || (block_size & (block_size - 1)) ||
	    !gm_is_aligned(block_size, page) || w->capacity % block_size ||
	    !gm_is_aligned(w->offset, page))
		return gm__space_edit_end(s, implicit, -EINVAL);
	if (pl->block)
		return gm__space_edit_end(s, implicit, -EBUSY);
	err = discardable(w->mapping);
	if (!err && (flags & GM_BLOCKS_ZERO))
		err = make_zero_mapping(w);
	if (err)
		return gm__space_edit_end(s, implicit, err);
	pl->block = block_size;
	words = gm__plug_words(pl);
	pl->plugged = calloc(words, sizeof(uint64_t));
	if (!pl->plugged) {
		pl->block = 0;
		return gm__space_edit_end(s, implicit, -ENOMEM);
	}
	pl->zero = flags & GM_BLOCKS_ZERO;
	if (flags & GM_BLOCKS_PLUGGED) {
		uint64_t nblocks = w->capacity / block_size;

		for (size_t i = 0; i < words; i++)
			pl->plugged[i] = ~0ull;
		if (nblocks % 64)
			pl->plugged[words - 1] = (1ull << (nblocks % 64)) - 1;
	}
	return gm__space_edit_end(s, implicit, 0);
}

/* gm_space_plug() (@plug true) and gm_space_unplug(). */
static int set_plugged(struct gm_space *s, struct gm_window *w, uint64_t offset, uint64_t size,
		       bool plug)
{
	struct placement *pl;
	uint64_t end;
	bool implicit;
	int err;

	err = plug_edit_open(s, w, &implicit, &pl);
	if (err)
		return err;
	if (!pl->block || size == 0 || offset % pl->block || size % pl->block ||
	    gm_add_overflow_u64(offset, size, &end) || end > w->capacity)
		return gm__space_edit_end(s, implicit, -EINVAL);
	for (uint64_t b = offset / pl->block; b < end / pl->block; b++) {
		if (plug)
			pl->plugged[b / 64] |= 1ull << (b % 64);
		else
			pl->plugged[b / 64] &= ~(1ull << (b % 64));
	}
	return gm__space_edit_end(s, implicit, 0);
}

int gm_space_plug(struct gm_space *s, struct gm_window *w, uint64_t offset, uint64_t size)
{
	return set_plugged(s, w, offset, size, true);
}

int gm_space_unplug(struct gm_space *s, struct gm_window *w, uint64_t offset, uint64_t size)
{
	return set_plugged(s, w, offset, size, false);
}

int gm_space_plugged(struct gm_space *s, struct gm_window *w, uint64_t offset)
{
	const struct placement *pl;
	long i;
	int ret;

	if (!s || !w)
		return -EINVAL;
	pthread_mutex_lock(&s->view_lock);
	i = find_placement(s->current, w);
	if (i < 0) {
		ret = -ENOENT;
	} else {
		pl = &s->current->placements[i];
		if (pl->w->kind != GM_WINDOW_RAM || offset >= pl->w->capacity)
			ret = -EINVAL;
		else
			ret = block_plugged(pl, pl->block ? offset / pl->block : 0);
	}
	pthread_mutex_unlock(&s->view_lock);
	return ret;
}
