/* SPDX-License-Identifier: MIT */
/*
 * space-internal.h - what the files of the space layer share: the state of
 * a space and its layouts, the lock order, the numbered invariants, and the
 * hidden helpers one file provides to another. Not exported from the
 * shared library; tests reach gm__space_invariants_ok() through it.
 *
 * A space is a sequence of immutable layouts. A layout is the sorted array
 * of placements (struct placement: where a window is, how big, and the
 * protection runs of RAM) plus what is derived from it: the view regions
 * with their ids and slots, and the gm_memory view built from them.
 * Editing never touches a published layout: gm_space_begin() clones the current one into
 * space->staging, edits change the clone, gm_space_commit() derives its
 * regions and view, asks the listeners, and publishes it as
 * space->current with a release store that RCU readers pair with. The old
 * layout goes on space->retired and is freed after a grace period.
 *
 * struct gm_window is the handle: what never changes about a window (its
 * kind, backing mapping, dirty bitmap, device). Every layout that contains
 * a window holds one reference on it, so a window lives until the last
 * layout showing it is freed: after the grace period for a published
 * layout, at once for a staged one that was never published.
 *
 *   layout.c   windows and layouts: build, clone, free, look up; invariants
 *   txn.c      transactions: begin/abort/commit/synchronize, an edit's
 *              start and end
 *   commit.c   commit: regions and their ids, the view, listeners, publish,
 *              reclaim
 *   space.c    the space object, its current view, its listeners
 *   edit.c     adding, removing, moving, resizing, protecting windows
 *   route.c    access routing: gm_space_read()/gm_space_write() to RAM, ROM
 *              and devices
 *   inspect.c  inspection, dirty tracking switch, dump
 *   discard.c  guest RAM's host memory given back
 *   prefault.c all RAM faulted in by several threads
 *   numa.c     a RAM window's NUMA policy
 *   plug.c     blocks of a RAM window plugged and unplugged (invariant 8)
 *
 * Invariants (gm__space_invariants_ok() checks them; code cites them):
 *  1. The placements of a layout are sorted by gpa and pairwise disjoint; in
 *     a port-I/O space every window lies below GM_PIO_LIMIT and is MMIO or
 *     reserved.
 *  2. The parts of a window tile [0, size) in order. A RAM window's
 *     adjacent parts have different protections (maximal runs), every part
 *     starts and ends on a page boundary, and every prot is an allowed one
 *     (prot_valid()). A ROM, MMIO or reserved window has exactly one part
 *     (prot R|X, R|W and NONE).
 *  3. A RAM or ROM window has a mapping, window->offset + capacity lies
 *     inside it, and size <= capacity; a RAM window's dirty bitmap covers
 *     capacity. MMIO and reserved windows have neither.
 *  4. A published layout's regions are exactly its RAM/ROM parts with a
 *     prot other than NONE, in gpa order, with distinct ids (all below
 *     space->next_id) and distinct slots; its view was built from exactly
 *     those regions.
 *  5. space->current is never NULL while the space lives. It changes only
 *     with space->lock and space->view_lock both held, and a layout that
 *     stops being current is freed only after a grace period that began
 *     after it stopped being current (gm__space_reclaim()).
 *  6. A window's refs is the number of layouts (current, staging, retired)
 *     that contain it. Window and layout reference counts change only under
 *     space->lock.
 *  7. space->owner is non-zero exactly while a thread has a transaction
 *     open, and that thread holds space->lock; staging is non-NULL exactly
 *     then. Only the owner writes owner, so a thread comparing it with its
 *     own token needs no lock.
 *  8. A placement with block != 0 is RAM; block is a power of two, a
 *     multiple of GM_PAGE_SIZE and of its mapping's page size, and divides
 *     the window's capacity; plugged has capacity / block bits (the bits
 *     past them in its last word are 0). A published layout's regions
 *     leave out every unplugged block (so the view has a hole there), and
 *     the host memory of a block unplugged in the current layout has been
 *     discarded (gm__plug_apply(), plug.c). With zero set (GM_BLOCKS_ZERO)
 *     the window has its zero mapping, and each unplugged run of a part
 *     with a protection is a region of its own instead of a hole: READONLY
 *     | ZERO, backed by the zero mapping at the run's window offset, no
 *     dirty bitmap.
 *
 * Transaction state (per space, under space->lock):
 *
 *   idle --gm_space_begin()--> open --edit fails--> doomed
 *   open --gm_space_commit()--> (listeners prepare --veto--> discard) --> publish --> idle
 *   doomed --gm_space_commit()/gm_space_abort()--> discard --> idle
 *   open --gm_space_abort()--> discard --> idle
 *
 * An edit with no transaction open runs begin, the edit, commit.
 */
#ifndef GUESTMEM_SPACE_INTERNAL_H
#define GUESTMEM_SPACE_INTERNAL_H

#include "../abi-internal.h"

#include <guestmem/space.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One run of a window with one guest protection: bytes [offset, offset + size). */
struct part {
	uint64_t offset;
	uint64_t size;
	unsigned prot;
};

/* The handle: what never changes about a window (see above). */
struct gm_window {
	enum gm_window_kind kind;
	unsigned long refs;	    /* invariant 6 */
	struct gm_mapping *mapping; /* RAM/ROM */
	size_t offset;		    /* of the window's first byte in mapping */
	uint64_t capacity;	    /* RAM: max_size; others: 0 (unused) */
	struct gm_dirty *dirty;	    /* RAM */
	struct gm_device_ops ops;   /* MMIO; ops.name points at name */
	void *opaque;
	char *name;	    /* never NULL */
	bool release_armed; /* call ops.release when freed (the add succeeded) */
	/* RAM: the NUMA policy set on it (numa.c); under lock and view_lock. */
	unsigned numa_mode;
	uint64_t numa_nodes;
	/*
	 * RAM whose unplugged blocks read as zeros: an anonymous PROT_READ
	 * mapping of capacity bytes, never written, so reading it costs no
	 * memory (plug.c). Made by the first gm_space_set_blocks() asking for
	 * it, under space->lock, before any layout using it is published.
	 */
	struct gm_mapping *zero;
};

/* A window's place and protection in one layout. */
struct placement {
	struct gm_window *w;
	gm_gpa_t gpa;
	uint64_t size;
	struct part *parts;
	size_t nparts;
	/* RAM in blocks (invariant 8): the block size or 0, and one bit per block of capacity. */
	uint64_t block;
	uint64_t *plugged; /* bit b set: block b is plugged; NULL when block is 0 */
	bool zero;	   /* unplugged blocks read as zeros (GM_BLOCKS_ZERO) */
};

/* One arrangement of the space; immutable once published (see above). */
struct layout {
	struct placement *placements; /* sorted by gpa (invariant 1) */
	size_t nplacements;
	struct gm_space_region *regions; /* published layouts only (invariant 4) */
	size_t nregions;
	struct gm_memory *view; /* the immutable gm_memory; published layouts only */
	struct layout *next_retired;
};

/* A registered listener, in registration order (the order callbacks run in). */
struct gm_space_listener {
	struct gm_space_listener_ops ops;
	void *opaque;
	struct gm_space_listener *next;
};

/*
 * Lock order: lock, then view_lock. The RCU read side takes neither.
 */
struct gm_space {
	unsigned flags;
	pthread_mutex_t lock;	   /* editing; held for a whole transaction */
	pthread_mutex_t view_lock; /* swapping / referencing current */
	struct layout *current;	   /* RCU-published; invariant 5 */
	uint64_t generation;	   /* atomic: published views */
	bool dirty_enabled;	   /* atomic */

	/* Under lock. */
	struct layout *staging;
	struct layout *retired; /* replaced layouts waiting for a grace period */
	uintptr_t owner;	/* token of the thread with the open transaction (invariant 7) */
	unsigned depth;		/* nesting of begin in the owner */
	int doom;		/* first error of the open transaction, or 0 */
	bool changed;		/* the staging differs from current */
	bool in_callback;	/* a listener callback is running */
	struct gm_window *implicit_add; /* added by an implicit transaction being committed */
	uint64_t next_id;		/* next region id */
	struct gm_space_listener *listeners;
};

/* Each thread's token: the address of a thread-local byte is unique per thread. */

/* ---- helpers every file uses ---- */

/* Each thread's token: the address of a thread-local byte is unique per thread (txn.c). */
extern _Thread_local char gm__space_thread_token;

static inline uintptr_t my_token(void)
{
	return (uintptr_t)&gm__space_thread_token;
}

static inline bool owned_by_me(const struct gm_space *s)
{
	/* Only this thread stores its token (invariant 7): relaxed is enough. */
	return __atomic_load_n(&s->owner, __ATOMIC_RELAXED) == my_token();
}

static inline bool is_pio(const struct gm_space *s)
{
	return (s->flags & GM_SPACE_PIO) != 0;
}

static inline bool has_memory(enum gm_window_kind kind)
{
	return kind == GM_WINDOW_RAM || kind == GM_WINDOW_ROM;
}

/* The view region flags of a part of @prot in a window of @kind. */
static inline unsigned region_flags(enum gm_window_kind kind, unsigned prot)
{
	unsigned flags = 0;

	if (kind == GM_WINDOW_ROM)
		return GM_REGION_ROM | GM_REGION_READONLY;
	if (kind != GM_WINDOW_RAM)
		return 0;
	if (!(prot & GM_PROT_WRITE))
		flags |= GM_REGION_READONLY;
	if (!(prot & GM_PROT_EXEC))
		flags |= GM_REGION_NOEXEC;
	return flags;
}

/* The protections a RAM part may have (invariant 2). */
static inline bool prot_valid(unsigned prot)
{
	return prot == GM_PROT_NONE || prot == GM_PROT_READ ||
	       prot == (GM_PROT_READ | GM_PROT_WRITE) || prot == (GM_PROT_READ | GM_PROT_EXEC) ||
	       prot == GM_PROT_ALL;
}

/* Pairs with the release store in publish() (commit.c). Inside a read section. */
static inline struct layout *current_layout(struct gm_space *s)
{
	return __atomic_load_n(&s->current, __ATOMIC_ACQUIRE);
}

/* Index of the placement holding @gpa in @l, or -1 (binary search, invariant 1). */
static inline long placement_at(const struct layout *l, gm_gpa_t gpa)
{
	size_t lo = 0, hi = l->nplacements;

	/* Find the last placement whose gpa <= @gpa. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (l->placements[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return -1;
	lo--;
	if (gpa - l->placements[lo].gpa > l->placements[lo].size - 1)
		return -1;
	return (long)lo;
}

/* Whether block @b of @pl is plugged (a placement without blocks: all are). */
static inline bool block_plugged(const struct placement *pl, uint64_t b)
{
	return !pl->block || (pl->plugged[b / 64] >> (b % 64) & 1);
}

/*
 * The end of the run of blocks of @pl in one state (plugged or not) that
 * starts at window offset @from, clipped to @end (> @from); *@plugged gets
 * the state. A placement without blocks is one plugged run.
 */
static inline uint64_t block_run(const struct placement *pl, uint64_t from, uint64_t end,
				 bool *plugged)
{
	uint64_t b;

	*plugged = block_plugged(pl, pl->block ? from / pl->block : 0);
	if (!pl->block)
		return end;
	b = from / pl->block + 1;
	while (b * pl->block < end && block_plugged(pl, b) == *plugged)
		b++;
	return b * pl->block < end ? b * pl->block : end;
}

/*
 * The first run of plugged bytes of @pl at or after window offset @from and
 * before @end: true and [*@first, *@last_end) clipped to [@from, @end), or
 * false if there is none.
 */
static inline bool next_plugged_run(const struct placement *pl, uint64_t from, uint64_t end,
				    uint64_t *first, uint64_t *run_end)
{
	uint64_t b;

	if (from >= end)
		return false;
	if (!pl->block) {
		*first = from;
		*run_end = end;
		return true;
	}
	b = from / pl->block;
	while (b * pl->block < end && !block_plugged(pl, b))
		b++;
	if (b * pl->block >= end)
		return false;
	*first = b * pl->block > from ? b * pl->block : from;
	while (b * pl->block < end && block_plugged(pl, b))
		b++;
	*run_end = b * pl->block < end ? b * pl->block : end;
	return true;
}

/* Index of @w in @l, or -1. Compares pointers only: @w may be stale. */
static inline long find_placement(const struct layout *l, const struct gm_window *w)
{
	size_t i;

	for (i = 0; i < l->nplacements; i++)
		if (l->placements[i].w == w)
			return (long)i;
	return -1;
}

/* ---- layout.c: windows and layouts ---- */

/* A new window of @kind named @name (NULL: ""), no reference yet; NULL if out of memory. */
struct gm_window *gm__window_alloc(enum gm_window_kind kind, const char *name);
/* Free @w and what it owns; the device is told only if the add succeeded. */
void gm__window_destroy(struct gm_window *w);
/* Drop one layout's reference (invariant 6). Called with space->lock held. */
void gm__window_put(struct gm_window *w);
void gm__placement_free_parts(struct placement *pl);
/* Called with space->lock held. NULL is ignored. */
void gm__layout_free(struct layout *l);
/* A deep copy of @src's placements (not its regions or view). Called with space->lock held. */
int gm__layout_clone(const struct layout *src, struct layout **out);
/*
 * Check that [@gpa, @gpa + @size) is a valid place for a window of @kind in
 * @s and overlaps no placement of @l other than the one at index @skip (-1:
 * none). Returns 0, -EINVAL, -EOVERFLOW, -ERANGE or -EEXIST.
 */
int gm__layout_check_place(const struct gm_space *s, const struct layout *l,
			   enum gm_window_kind kind, gm_gpa_t gpa, uint64_t size, long skip);
/* Insert window @w at [@gpa, @gpa + @size) into staging layout @l; @w gets its reference. */
int gm__layout_insert(struct layout *l, struct gm_window *w, gm_gpa_t gpa, uint64_t size);
/* Keep l->placements sorted after placements[i].gpa changed (invariant 1). */
void gm__layout_resort(struct layout *l, size_t i);

/*
 * Check the numbered invariants above on the committed layout (and on the
 * staged one when the calling thread has a transaction open). Returns true
 * if they all hold. Takes space->lock unless the caller owns it.
 */
bool gm__space_invariants_ok(struct gm_space *s);

/* ---- txn.c: transactions and edits ---- */

/* Close the transaction and release space->lock. */
void gm__space_txn_close(struct gm_space *s);
/*
 * Start an edit: join the calling thread's open transaction, or open an
 * implicit one. *@implicit tells gm__space_edit_end() which. On error
 * nothing is held.
 */
int gm__space_edit_begin(struct gm_space *s, bool *implicit);
/*
 * Finish an edit whose result is @err: a failure dooms an explicit
 * transaction, and discards an implicit one; a success of an implicit
 * edit is committed. Returns the edit's result or the commit's.
 */
int gm__space_edit_end(struct gm_space *s, bool implicit, int err);

/* ---- commit.c: commit and reclaim ---- */

/* Commit the outermost transaction; called by its owner with space->lock held. Closes it. */
int gm__space_commit_locked(struct gm_space *s);

/* ---- plug.c: blocks of RAM windows ---- */

/* The plugged bitmap's size in 64-bit words for @pl (block != 0). */
size_t gm__plug_words(const struct placement *pl);

/* Blocks whose state a commit changes: runs of one window, all plugged or all unplugged. */
struct gm__plug_run {
	struct gm_window *w;
	uint64_t offset, size; /* window bytes */
	bool plug;
};
struct gm__plug_delta {
	struct gm__plug_run *runs;
	size_t n;
};

/*
 * What committing @l over @old changes in blocks: the runs unplugged in @l
 * that were plugged in @old (or whose window or blocks are new), and the
 * runs plugged in @l that were unplugged in @old. Returns 0 or -ENOMEM.
 * Called with space->lock held, before the listeners run.
 */
int gm__plug_delta(const struct layout *old, const struct layout *l, struct gm__plug_delta *d);
/*
 * Do to host memory what @d says, once @l is published: an unplugged run
 * is discarded (gm_mapping_discard()) and its dirty bits cleared; a
 * plugged one is marked dirty where tracking is on (it now reads zeros).
 * Cannot fail (a discard that fails leaves memory in use, nothing else).
 * The windows are those of the current layout, with space->lock held.
 */
void gm__plug_apply(const struct gm__plug_delta *d);
/*
 * Free the retired layouts after a grace period. Called with space->lock
 * held, outside any read section of this thread (invariant 5).
 */
void gm__space_reclaim(struct gm_space *s);

#endif /* GUESTMEM_SPACE_INTERNAL_H */
