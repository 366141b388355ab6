/* SPDX-License-Identifier: MIT */
/*
 * access.c - the data path between guest memory and caller buffers:
 * gm_read()/gm_write() and their partial forms, the fixed-width accessors
 * (host order and little-endian), gm_fill() and gm_copy().
 *
 * The exported fixed-width accessors repeat the inline fast path of
 * static/memory-inline.h and then handle what it leaves to them
 * (unaligned, crossing regions, errors). Ranges go through check_range()
 * before any byte moves (all-or-nothing), then through a second walk that
 * copies region by region. Fixed width falls back to gm_read()/gm_write(),
 * which is why they share this file.
 *
 * Every function that touches guest memory reads this thread's peer fault
 * count before and returns gm__peer_check() after (mapping-internal.h): an
 * access that hit memory a peer truncated completed on zeros, and the call
 * says -EFAULT instead of 0.
 */
#include <endian.h>
#include <string.h>

#include "../mapping-internal.h"
#include "memory-internal.h"

/* Copy @len checked bytes between guest @gpa and @buf, region by region. */
static void copy_checked(const struct gm_memory *m, gm_gpa_t gpa, void *buf, size_t len,
			 bool to_guest)
{
	unsigned char *b = buf;
	size_t done = 0, n = 0;

	while (done < len) {
		const struct gm_region_hot *r = piece(m, gpa + done, len - done, &n);

		if (to_guest) {
			memcpy(hva(r, gpa + done), b + done, n);
			mark(r, gpa + done, n);
		} else {
			memcpy(b + done, hva(r, gpa + done), n);
		}
		done += n;
	}
}

/* ---- read / write ---------------------------------------------------- */

int gm_read(const struct gm_memory *m, gm_gpa_t gpa, void *buf, size_t len)
{
	const struct gm_region_hot *r;
	size_t n, ok;
	unsigned faults;
	int err;

	if (len == 0)
		return 0;
	if (buf == NULL)
		return -EINVAL;
	faults = gm__peer_fault_count();
	/* Common case: one region, one memcpy. */
	r = piece(m, gpa, len, &n);
	if (r != NULL && n == len) {
		memcpy(buf, hva(r, gpa), len);
		return gm__peer_check(faults, 0);
	}
	err = check_range(m, gpa, len, false, &ok);
	if (err)
		return err;
	copy_checked(m, gpa, buf, len, false);
	return gm__peer_check(faults, 0);
}

int gm_write(const struct gm_memory *m, gm_gpa_t gpa, const void *buf, size_t len)
{
	const struct gm_region_hot *r;
	size_t n, ok;
	unsigned faults;
	int err;

	if (len == 0)
		return 0;
	if (buf == NULL)
		return -EINVAL;
	faults = gm__peer_fault_count();
	r = piece(m, gpa, len, &n);
	if (r != NULL && n == len && !(r->flags & GM_REGION_READONLY)) {
		memcpy(hva(r, gpa), buf, len);
		mark(r, gpa, len);
		return gm__peer_check(faults, 0);
	}
	err = check_range(m, gpa, len, true, &ok);
	if (err)
		return err;
	copy_checked(m, gpa, (void *)(uintptr_t)buf, len, true);
	return gm__peer_check(faults, 0);
}

int gm_read_partial(const struct gm_memory *m, gm_gpa_t gpa, void *buf, size_t len, size_t *done)
{
	size_t ok;
	unsigned faults;
	int err;

	if (done == NULL)
		return -EINVAL;
	*done = 0;
	if (buf == NULL && len > 0)
		return -EINVAL;
	faults = gm__peer_fault_count();
	err = check_range(m, gpa, len, false, &ok);
	copy_checked(m, gpa, buf, ok, false);
	if (gm__peer_check(faults, 0))
		return -EFAULT; /* which bytes were the peer's is unknown: none count */
	*done = ok;
	return err;
}

int gm_write_partial(const struct gm_memory *m, gm_gpa_t gpa, const void *buf, size_t len,
		     size_t *done)
{
	size_t ok;
	unsigned faults;
	int err;

	if (done == NULL)
		return -EINVAL;
	*done = 0;
	if (buf == NULL && len > 0)
		return -EINVAL;
	faults = gm__peer_fault_count();
	err = check_range(m, gpa, len, true, &ok);
	copy_checked(m, gpa, (void *)(uintptr_t)buf, ok, true);
	if (gm__peer_check(faults, 0))
		return -EFAULT;
	*done = ok;
	return err;
}

/* ---- fixed width ----------------------------------------------------- */

/*
 * The host address of the naturally aligned @size-byte word at @gpa if it
 * lies inside one region and is aligned on the host too, else NULL; *@rp
 * is then its region. The slow-path twin of gm__word_slot().
 */
static void *word_ptr(const struct gm_memory *m, gm_gpa_t gpa, unsigned size,
		      const struct gm_region_hot **rp)
{
	const struct gm_region_hot *r = gm__region_of(m, gpa);
	unsigned char *p;

	if (r == NULL || r->last - gpa < size - 1)
		return NULL;
	p = hva(r, gpa);
	if ((uintptr_t)p & (size - 1))
		return NULL;
	*rp = r;
	return p;
}

/*
 * Read a @size-byte word: one relaxed atomic load when aligned inside one
 * region (no tearing, also for 8 bytes on 32-bit hosts), else bytewise.
 */
static int read_word(const struct gm_memory *m, gm_gpa_t gpa, void *out, unsigned size)
{
	const struct gm_region_hot *r;
	unsigned faults;
	void *p;

	if (out == NULL)
		return -EINVAL;
	p = word_ptr(m, gpa, size, &r);
	if (p == NULL)
		return gm_read(m, gpa, out, size);
	faults = gm__peer_fault_count();
	switch (size) {
	case 1:
		*(uint8_t *)out = __atomic_load_n((uint8_t *)p, __ATOMIC_RELAXED);
		break;
	case 2:
		*(uint16_t *)out = __atomic_load_n((uint16_t *)p, __ATOMIC_RELAXED);
		break;
	case 4:
		*(uint32_t *)out = __atomic_load_n((uint32_t *)p, __ATOMIC_RELAXED);
		break;
	default:
		*(uint64_t *)out = __atomic_load_n((uint64_t *)p, __ATOMIC_RELAXED);
		break;
	}
	return gm__peer_check(faults, 0);
}

/* The write counterpart of read_word(); @val points at a host-order word. */
static int write_word(const struct gm_memory *m, gm_gpa_t gpa, const void *val, unsigned size)
{
	const struct gm_region_hot *r;
	void *p = word_ptr(m, gpa, size, &r);
	unsigned faults;

	if (p == NULL || (r->flags & GM_REGION_READONLY))
		return gm_write(m, gpa, val, size);
	faults = gm__peer_fault_count();
	switch (size) {
	case 1:
		__atomic_store_n((uint8_t *)p, *(const uint8_t *)val, __ATOMIC_RELAXED);
		break;
	case 2:
		__atomic_store_n((uint16_t *)p, *(const uint16_t *)val, __ATOMIC_RELAXED);
		break;
	case 4:
		__atomic_store_n((uint32_t *)p, *(const uint32_t *)val, __ATOMIC_RELAXED);
		break;
	default:
		__atomic_store_n((uint64_t *)p, *(const uint64_t *)val, __ATOMIC_RELAXED);
		break;
	}
	mark_word(r, gpa);
	return gm__peer_check(faults, 0);
}

int gm_read_u8(const struct gm_memory *m, gm_gpa_t gpa, uint8_t *out)
{
	return read_word(m, gpa, out, 1);
}

int gm_read_u16(const struct gm_memory *m, gm_gpa_t gpa, uint16_t *out)
{
	return read_word(m, gpa, out, 2);
}

int gm_read_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t *out)
{
	return read_word(m, gpa, out, 4);
}

int gm_read_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t *out)
{
	return read_word(m, gpa, out, 8);
}

/* ---- read cursors (the inline path reads their table itself) ---- */

void gm_cursor_init(struct gm_cursor *c, const struct gm_memory *m)
{
	c->m = m;
	c->slots = m->hot.slots;
	c->nslots = m->hot.nslots;
	c->shift = m->hot.shift;
}

int gm_cursor_read_u8(const struct gm_cursor *c, gm_gpa_t gpa, uint8_t *out)
{
	return read_word(c->m, gpa, out, 1);
}

int gm_cursor_read_u16(const struct gm_cursor *c, gm_gpa_t gpa, uint16_t *out)
{
	return read_word(c->m, gpa, out, 2);
}

int gm_cursor_read_u32(const struct gm_cursor *c, gm_gpa_t gpa, uint32_t *out)
{
	return read_word(c->m, gpa, out, 4);
}

int gm_cursor_read_u64(const struct gm_cursor *c, gm_gpa_t gpa, uint64_t *out)
{
	return read_word(c->m, gpa, out, 8);
}

int gm_write_u8(const struct gm_memory *m, gm_gpa_t gpa, uint8_t val)
{
	return write_word(m, gpa, &val, 1);
}

int gm_write_u16(const struct gm_memory *m, gm_gpa_t gpa, uint16_t val)
{
	return write_word(m, gpa, &val, 2);
}

int gm_write_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val)
{
	return write_word(m, gpa, &val, 4);
}

int gm_write_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val)
{
	return write_word(m, gpa, &val, 8);
}

int gm_read_le16(const struct gm_memory *m, gm_gpa_t gpa, uint16_t *out)
{
	uint16_t v;
	int err;

	if (out == NULL)
		return -EINVAL;
	err = read_word(m, gpa, &v, 2);
	if (!err)
		*out = le16toh(v);
	return err;
}

int gm_read_le32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t *out)
{
	uint32_t v;
	int err;

	if (out == NULL)
		return -EINVAL;
	err = read_word(m, gpa, &v, 4);
	if (!err)
		*out = le32toh(v);
	return err;
}

int gm_read_le64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t *out)
{
	uint64_t v;
	int err;

	if (out == NULL)
		return -EINVAL;
	err = read_word(m, gpa, &v, 8);
	if (!err)
		*out = le64toh(v);
	return err;
}

int gm_write_le16(const struct gm_memory *m, gm_gpa_t gpa, uint16_t val)
{
	uint16_t v = htole16(val);

	return write_word(m, gpa, &v, 2);
}

int gm_write_le32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val)
{
	uint32_t v = htole32(val);

	return write_word(m, gpa, &v, 4);
}

int gm_write_le64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val)
{
	uint64_t v = htole64(val);

	return write_word(m, gpa, &v, 8);
}

/* ---- fill, copy ------------------------------------------------------ */

int gm_fill(const struct gm_memory *m, gm_gpa_t gpa, int byte, size_t len)
{
	size_t done = 0, n = 0;
	unsigned faults;
	int err;

	if (len == 0)
		return 0;
	err = check_range(m, gpa, len, true, &n);
	if (err)
		return err;
	faults = gm__peer_fault_count();
	while (done < len) {
		const struct gm_region_hot *r = piece(m, gpa + done, len - done, &n);

		memset(hva(r, gpa + done), byte, n);
		mark(r, gpa + done, n);
		done += n;
	}
	return gm__peer_check(faults, 0);
}

/* Bytes that lie in @gpa's region at or before @gpa (at most @len). @gpa is in RAM. */
static size_t piece_back(const struct gm_memory *m, gm_gpa_t gpa, size_t len,
			 const struct gm_region_hot **rp)
{
	const struct gm_region_hot *r = gm__region_of(m, gpa);

	*rp = r;
	return gpa - r->gpa >= (uint64_t)(len - 1) ? len : (size_t)(gpa - r->gpa + 1);
}

int gm_copy(const struct gm_memory *m, gm_gpa_t dst, gm_gpa_t src, size_t len)
{
	const struct gm_region_hot *rs, *rd;
	size_t done = 0, ns = 0, nd = 0, n = 0;
	unsigned faults;
	int err;

	if (len == 0)
		return 0;
	err = check_range(m, src, len, false, &n);
	if (!err)
		err = check_range(m, dst, len, true, &n);
	if (err)
		return err;
	faults = gm__peer_fault_count();
	if (dst <= src || dst - src >= len) {
		/* Forward: no byte is written before it has been read. */
		while (done < len) {
			rs = piece(m, src + done, len - done, &ns);
			rd = piece(m, dst + done, len - done, &nd);
			n = ns < nd ? ns : nd;
			memmove(hva(rd, dst + done), hva(rs, src + done), n);
			mark(rd, dst + done, n);
			done += n;
		}
		return gm__peer_check(faults, 0);
	}
	/* dst overlaps the tail of src: copy from the end backwards. */
	while (done < len) {
		size_t left = len - done;

		ns = piece_back(m, src + left - 1, left, &rs);
		nd = piece_back(m, dst + left - 1, left, &rd);
		n = ns < nd ? ns : nd;
		memmove(hva(rd, dst + left - n), hva(rs, src + left - n), n);
		mark(rd, dst + left - n, n);
		done += n;
	}
	return gm__peer_check(faults, 0);
}
