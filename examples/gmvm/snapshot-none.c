/*
 * snapshot-none.c - stands in for snapshot.c in a tree whose library has
 * no snapshot layer yet (no <guestmem/snapshot.h>): --snapshot-at and
 * --restore then fail with a clear message. meson.build picks one file.
 */
#include "gmvm.h"

#include <errno.h>

static int unsupported(void)
{
	return gmvm_fail(-ENOTSUP, "snapshots: this build of guestmem has no snapshot layer");
}

int gmvm_snapshot_save(struct gmvm *vm)
{
	(void)vm;
	return unsupported();
}

int gmvm_snapshot_read_vcpu(struct gmvm *vm, const char *path)
{
	(void)vm;
	(void)path;
	return unsupported();
}

int gmvm_snapshot_restore(struct gmvm *vm)
{
	(void)vm;
	return unsupported();
}

void gmvm_snapshot_close(struct gmvm *vm)
{
	(void)vm;
}
