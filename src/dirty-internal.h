/*
 * dirty-internal.h - what the memory layer needs from dirty.c beyond the
 * public API. Hidden symbols: not exported from the shared library.
 */
#ifndef GUESTMEM_DIRTY_INTERNAL_H
#define GUESTMEM_DIRTY_INTERNAL_H

#include <guestmem/dirty.h>

/* gm_dirty_mark(), but only while tracking is enabled (the data path's rule). */
void gm__dirty_mark_tracked(struct gm_dirty *d, uint64_t offset, uint64_t len);

#endif
