/*
 * memory-internal.h - hidden helpers of the memory layer for tests and the
 * layers above. Not exported from the shared library.
 */
#ifndef GUESTMEM_MEMORY_INTERNAL_H
#define GUESTMEM_MEMORY_INTERNAL_H

#include <guestmem/memory.h>

/* Checks the numbered invariants at the top of memory.c. */
bool gm__memory_invariants_ok(const struct gm_memory *m);

#endif
