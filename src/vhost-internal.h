/* SPDX-License-Identifier: MIT */
/*
 * vhost-internal.h - what the files of the vhost layer share: the table
 * and holder structs (their invariants are numbered at the top of
 * vhost.c), and the hidden checks for tests and debug builds
 * (vhost-check.c). Not exported from the shared library.
 */
#ifndef GUESTMEM_VHOST_INTERNAL_H
#define GUESTMEM_VHOST_INTERNAL_H

#include <guestmem/vhost.h>

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vhost_entry {
	gm_gpa_t gpa;
	uint64_t size;
	uint64_t uaddr;
	uint64_t mmap_offset;
	struct gm_mapping *map; /* one reference; maps from the page holding mmap_offset */
	size_t delta;		/* offset of @gpa's byte in @map */
};

struct gm_vhost_table {
	unsigned long refs;    /* __atomic only */
	unsigned long *census; /* the holder's count of live tables, or NULL (invariant 5) */
	struct gm_dirty *log;  /* one reference, or NULL (invariant 5) */
	struct gm_memory *mem;
	size_t n;
	struct vhost_entry *by_gpa;	     /* invariant 3 */
	const struct vhost_entry **by_uaddr; /* invariant 3 */
};

struct gm_vhost_mem {
	pthread_mutex_t lock;	    /* serialises writers; never held by readers */
	struct gm_vhost_table *cur; /* invariant 4; __atomic load/exchange */
	size_t max;
	uint64_t generation; /* __atomic; written under @lock */
	/* Invariant 5; all under @lock. */
	unsigned long *census; /* live tables + 1 for vm; __atomic; freed at 0 */
	struct gm_dirty *log;  /* one reference, or NULL */
	uint64_t log_marked;   /* pages newly set in logs detached so far */
	bool logging;	       /* __atomic loads outside @lock */
};

/*
 * Whether the dirty log @log covers the guest pages of the @n entries at @e
 * (vhost.c; invariant 5).
 */
bool gm__vhost_fits_log(const struct gm_dirty *log, const struct vhost_entry *e, size_t n);

/*
 * Checks the numbered invariants at the top of vhost.c that can be seen in
 * one table: 2 (except the file size at build time, which may have changed
 * since), 3, and that @t is held (a reference count of at least 1).
 */
bool gm__vhost_invariants_ok(const struct gm_vhost_table *t);

/*
 * Checks @vm (invariant 4: the table in force is held and within
 * @vm's region limit) and the table in force with gm__vhost_invariants_ok().
 * Takes @vm's writer lock.
 */
bool gm__vhost_mem_invariants_ok(struct gm_vhost_mem *vm);

#endif
