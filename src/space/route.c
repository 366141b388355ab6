/* SPDX-License-Identifier: MIT */
/*
 * route.c - access routing: gm_space_read() and gm_space_write() find the
 * windows an access covers in the current layout, check the whole access,
 * then move the bytes: RAM and ROM by copy, devices by calling them, split
 * as struct gm_device_ops says. Runs inside an RCU read section; takes no
 * lock.
 */
#include "space-internal.h"

#include "../dirty-internal.h"

#include <errno.h>
#include <string.h>

/*
 * Plan the next device access of an access at window offset @off with
 * @left bytes to go, in a window of @wsize bytes (struct gm_device_ops's
 * splitting rule). Sets *@base and *@size of the device access; it covers
 * bytes [@off, @off + min(@left, base + size - off)) of the access, and
 * is a read-modify-write when it does not coincide with them.
 * Returns 0 or -EOPNOTSUPP.
 */
static int plan_step(const struct gm_device_ops *ops, uint64_t wsize, uint64_t off, uint64_t left,
		     uint64_t *base, unsigned *size)
{
	bool unaligned = ops->flags & GM_DEVICE_UNALIGNED;
	unsigned sz;

	for (sz = 8; sz >= 1; sz >>= 1) {
		if (!(ops->sizes & sz) || sz > left)
			continue;
		if (unaligned || gm_is_aligned(off, sz)) {
			*base = off;
			*size = sz;
			return 0;
		}
	}
	if (!(ops->flags & GM_DEVICE_RMW))
		return -EOPNOTSUPP;
	for (sz = 1; !(ops->sizes & sz); sz <<= 1)
		;
	*base = unaligned ? off : gm_align_down(off, sz);
	if (*base > wsize || sz > wsize - *base)
		return -EOPNOTSUPP;
	*size = sz;
	return 0;
}

static uint64_t bytes_to_val(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;
	unsigned i;

	for (i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void val_to_bytes(uint64_t v, unsigned char *p, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/* Whether an access of @len bytes at window offset @off can be split. */
static int device_check(const struct gm_window *w, uint64_t wsize, uint64_t off, uint64_t len,
			bool write)
{
	const struct gm_device_ops *ops = &w->ops;

	if (write ? !ops->write : !ops->read)
		return -EACCES;
	while (len) {
		uint64_t base, covered;
		unsigned size;
		int err = plan_step(ops, wsize, off, len, &base, &size);

		if (err)
			return err;
		covered = base + size - off;
		if (covered > len)
			covered = len;
		/* A partial write needs the read half of read-modify-write. */
		if (write && (base != off || covered != size) && !ops->read)
			return -EOPNOTSUPP;
		off += covered;
		len -= covered;
	}
	return 0;
}

/* Do the device accesses device_check() approved. */
static int device_access(const struct gm_window *w, uint64_t wsize, uint64_t off,
			 unsigned char *buf, uint64_t len, bool write)
{
	const struct gm_device_ops *ops = &w->ops;
	void *opaque = w->opaque;

	while (len) {
		uint64_t base, covered, val = 0;
		unsigned size, skip;
		unsigned char unit[8];
		int err = plan_step(ops, wsize, off, len, &base, &size);

		if (err)
			return err;
		skip = (unsigned)(off - base);
		covered = size - skip;
		if (covered > len)
			covered = len;
		if (!write || skip || covered != size) {
			err = ops->read(opaque, base, size, &val);
			if (err)
				return err;
		}
		val_to_bytes(val, unit, size);
		if (write) {
			memcpy(unit + skip, buf, (size_t)covered);
			err = ops->write(opaque, base, size, bytes_to_val(unit, size));
			if (err)
				return err;
		} else {
			memcpy(buf, unit + skip, (size_t)covered);
		}
		buf += covered;
		off += covered;
		len -= covered;
	}
	return 0;
}

/*
 * Whether bytes [@off, @off + @len) of RAM/ROM placement @pl allow the
 * access: -EFAULT if one lies in an unplugged block (a hole, as in the
 * view), -EACCES if a part's protection refuses it or it writes an
 * unplugged block that reads as zeros (read-only, as in the view).
 */
static int memory_check(const struct placement *pl, uint64_t off, uint64_t len, bool write)
{
	unsigned need = write ? GM_PROT_WRITE : GM_PROT_READ;
	uint64_t first, run_end;
	size_t i;

	if (pl->block && (!next_plugged_run(pl, off, off + len, &first, &run_end) || first != off ||
			  run_end != off + len)) {
		if (!pl->zero)
			return -EFAULT;
		if (write)
			return -EACCES;
	}

	for (i = 0; i < pl->nparts; i++) {
		const struct part *p = &pl->parts[i];

		if (p->offset + p->size <= off || p->offset >= off + len)
			continue;
		if (!(p->prot & need))
			return -EACCES;
	}
	return 0;
}

/*
 * Move @len bytes at window offset @off of RAM/ROM placement @pl, which
 * memory_check() approved, to (@write) or from @buf. Both directions copy
 * through the window's mapping, where its bytes lie (invariant 3), but for
 * a read of unplugged blocks that read as zeros: zeros, without touching
 * the window's discarded memory (faulting it in could allocate). A write
 * marks its pages in the window's dirty bitmap while tracking is on, with
 * the same dirty-layer call gm_write() makes through the view: a view
 * region's dirty_offset is its part's window offset (derive_regions(),
 * commit.c), so the pages are the same.
 */
static void memory_access(const struct placement *pl, uint64_t off, unsigned char *buf, size_t len,
			  bool write)
{
	const struct gm_window *w = pl->w;
	/* Fits size_t: @off lies inside the window, inside its mapping. */
	unsigned char *host =
	    (unsigned char *)gm_mapping_host(w->mapping) + w->offset + (size_t)off;

	if (!write) {
		uint64_t from = off, end = off + len, run_end;
		bool plugged;

		/* Only a zero window's unplugged blocks got past memory_check(). */
		for (; from < end; from = run_end) {
			size_t at = (size_t)(from - off);

			run_end = block_run(pl, from, end, &plugged);
			if (plugged)
				memcpy(buf + at, host + at, (size_t)(run_end - from));
			else
				memset(buf + at, 0, (size_t)(run_end - from));
		}
		return;
	}
	memcpy(host, buf, len);
	if (w->dirty)
		gm__dirty_mark_tracked(w->dirty, off, len);
}

/*
 * Check (@doit false) or do (@doit true) the part of an access that falls in
 * placement @pl: @n bytes at window offset @off, at @buf. Inside a read
 * section on the layout holding @pl.
 */
static int route_chunk(const struct placement *pl, uint64_t off, unsigned char *buf, uint64_t n,
		       bool write, bool doit)
{
	const struct gm_window *w = pl->w;

	switch (w->kind) {
	case GM_WINDOW_MMIO:
		return doit ? device_access(w, pl->size, off, buf, n, write)
			    : device_check(w, pl->size, off, n, write);
	case GM_WINDOW_RAM:
	case GM_WINDOW_ROM:
		if (!doit)
			return memory_check(pl, off, n, write);
		/* @n <= the access's len, a size_t. */
		memory_access(pl, off, buf, (size_t)n, write);
		return 0;
	default:
		return -EFAULT;
	}
}

/*
 * Walk [@gpa, @gpa + @len) window by window through layout @l, starting in
 * window @i: check only (@doit false) or move the bytes (@doit true).
 */
static int route_walk(const struct layout *l, long i, gm_gpa_t gpa, unsigned char *buf, size_t len,
		      bool write, bool doit)
{
	gm_gpa_t last = gpa + (len - 1);

	while (true) {
		const struct placement *pl = &l->placements[i];
		gm_gpa_t chunk_last = pl->gpa + (pl->size - 1);
		uint64_t n;
		int err;

		if (chunk_last > last)
			chunk_last = last;
		n = chunk_last - gpa + 1;
		err = route_chunk(pl, gpa - pl->gpa, buf, n, write, doit);
		if (err)
			return err;
		if (chunk_last == last)
			return 0;
		buf += n;
		gpa = chunk_last + 1;
		/* The next byte must be the first of the next window (invariant 1). */
		i++;
		if ((size_t)i >= l->nplacements || l->placements[i].gpa != gpa)
			return -EFAULT;
	}
}

/* gm_space_read() (@write false) and gm_space_write(): space.h states the contract. */
static int route_access(struct gm_space *s, gm_gpa_t gpa, unsigned char *buf, size_t len,
			bool write)
{
	const struct layout *l;
	const struct placement *pl;
	gm_gpa_t last;
	long i;
	int err;

	if (!s || (!buf && len))
		return -EINVAL;
	if (len == 0)
		return 0;
	if (gm_add_overflow_u64(gpa, (uint64_t)len - 1, &last))
		return -EFAULT;
	gm_rcu_read_lock();
	l = current_layout(s);
	i = placement_at(l, gpa);
	pl = i < 0 ? NULL : &l->placements[i];
	if (!pl) {
		err = -EFAULT;
	} else if (last - pl->gpa <= pl->size - 1) {
		/* The common case: one window, one lookup. */
		err = route_chunk(pl, gpa - pl->gpa, buf, len, write, false);
		if (!err)
			err = route_chunk(pl, gpa - pl->gpa, buf, len, write, true);
	} else {
		err = route_walk(l, i, gpa, buf, len, write, false);
		if (!err)
			err = route_walk(l, i, gpa, buf, len, write, true);
	}
	gm_rcu_read_unlock();
	return err;
}

int gm_space_read(struct gm_space *s, gm_gpa_t gpa, void *buf, size_t len)
{
	return route_access(s, gpa, buf, len, false);
}

int gm_space_write(struct gm_space *s, gm_gpa_t gpa, const void *buf, size_t len)
{
	/* The walk only reads @buf when @write is true. */
	return route_access(s, gpa, (unsigned char *)(uintptr_t)buf, len, true);
}
