/*
 * snapshot-internal.h - hidden helpers of the snapshot layer for tests.
 * Not exported from the shared library.
 */
#ifndef GUESTMEM_SNAPSHOT_INTERNAL_H
#define GUESTMEM_SNAPSHOT_INTERNAL_H

#include <guestmem/snapshot.h>

/* Checks the numbered invariants at the top of snapshot.c (2 to 5). */
bool gm__snapshot_invariants_ok(struct gm_snapshot *s);

#endif
