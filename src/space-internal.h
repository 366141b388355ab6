/*
 * space-internal.h - checks of the space layer that tests reach through the
 * static library. Not installed, not exported.
 */
#ifndef GUESTMEM_SPACE_INTERNAL_H
#define GUESTMEM_SPACE_INTERNAL_H

#include <guestmem/space.h>

/*
 * Check the numbered invariants of space.c on the committed layout (and on
 * the staged one when the calling thread has a transaction open). Returns
 * true if they all hold. Takes space->lock unless the caller owns it.
 */
bool gm__space_invariants_ok(struct gm_space *s);

#endif /* GUESTMEM_SPACE_INTERNAL_H */
