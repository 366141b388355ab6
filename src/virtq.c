/* SPDX-License-Identifier: MIT */
/*
 * virtq.c - split virtqueues (virtio 1.x, 2.7) walked safely on guest memory.
 *
 * The device's state of a queue lives here; the rings live in guest memory
 * and are read through the memory layer, one field at a time into locals,
 * so a driver that rewrites a ring while we walk it can at worst make its
 * own request fail.
 *
 * Ring layout for size N:
 *   desc  16 * N bytes: le64 addr, le32 len, le16 flags, le16 next
 *   avail le16 flags, le16 idx, le16 ring[N], le16 used_event
 *   used  le16 flags, le16 idx, {le32 id, le32 len}[N], le16 avail_event
 *
 * Invariants:
 *  1. When q->size != 0 the three rings are aligned as the spec requires
 *     and none of them wraps past 2^64 (gm_virtq_set_layout).
 *  2. (u16)(q->avail_shadow - q->last_avail) <= q->size: we never consume
 *     more than the driver made available.
 *  3. Once q->broken is set, nothing is read from or written to the rings
 *     until the queue is set up again.
 */
#include <guestmem/virtq.h>

#include <stdlib.h>
#include <string.h>

#include "rcu-internal.h"

#define DESC_F_NEXT	     1u
#define DESC_F_WRITE	     2u
#define DESC_F_INDIRECT	     4u
#define AVAIL_F_NO_INTERRUPT 1u

struct gm_virtq {
	uint32_t size; /* 0: no layout */
	gm_gpa_t desc, avail, used;
	unsigned features;
	uint16_t last_avail;   /* next available entry to consume */
	uint16_t avail_shadow; /* avail->idx as last loaded (invariant 2) */
	uint16_t used_idx;     /* next used entry to fill */
	uint16_t signalled;    /* used_idx when we last decided about a notification */
	bool signalled_valid;
	bool broken; /* invariant 3 */
};

int gm_virtq_new(struct gm_virtq **out)
{
	if (!out)
		return -EINVAL;
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void gm_virtq_free(struct gm_virtq *q)
{
	free(q);
}

int gm_virtq_set_layout(struct gm_virtq *q, uint32_t size, gm_gpa_t desc, gm_gpa_t avail,
			gm_gpa_t used)
{
	gm_gpa_t last;

	if (!q || !gm_is_pow2(size) || size > GM_VIRTQ_MAX_SIZE || !gm_is_aligned(desc, 16) ||
	    !gm_is_aligned(avail, 2) || !gm_is_aligned(used, 4))
		return -EINVAL;
	if (gm_range_last(desc, 16ull * size, &last) ||
	    gm_range_last(avail, 6 + 2ull * size, &last) ||
	    gm_range_last(used, 6 + 8ull * size, &last))
		return -EOVERFLOW;
	q->size = size;
	q->desc = desc;
	q->avail = avail;
	q->used = used;
	q->broken = false;
	q->signalled_valid = false;
	return 0;
}

int gm_virtq_set_features(struct gm_virtq *q, unsigned features)
{
	if (!q || (features & ~(GM_VIRTQ_F_INDIRECT | GM_VIRTQ_F_EVENT_IDX)))
		return -EINVAL;
	q->features = features;
	return 0;
}

void gm_virtq_set_base(struct gm_virtq *q, uint16_t idx)
{
	q->last_avail = idx;
	q->avail_shadow = idx;
	q->used_idx = idx;
	q->signalled_valid = false;
	q->broken = false;
}

uint16_t gm_virtq_base(const struct gm_virtq *q)
{
	return q->last_avail;
}

void gm_virtq_set_indices(struct gm_virtq *q, uint16_t avail, uint16_t used)
{
	gm_virtq_set_base(q, used);
	q->last_avail = avail;
	q->avail_shadow = avail;
}

uint16_t gm_virtq_used_index(const struct gm_virtq *q)
{
	return q->used_idx;
}

bool gm_virtq_broken(const struct gm_virtq *q)
{
	return q->broken || q->size == 0;
}

static int broken(struct gm_virtq *q)
{
	q->broken = true;
	return -EIO;
}

/*
 * Load avail->idx with acquire ordering: the ring entries and descriptors
 * read afterwards are at least as new as the index (pairs with the
 * driver's write barrier before it stores idx). guestmem's atomics work on
 * aligned 32-bit words, so load the one holding the 16-bit index; the
 * avail ring is 2-byte aligned, so the index never straddles two words.
 */
static int load_avail_idx(struct gm_virtq *q, const struct gm_memory *m, uint16_t *idx)
{
	gm_gpa_t word = gm_align_down(q->avail + 2, 4);
	unsigned shift = (unsigned)(q->avail + 2 - word);
	unsigned char b[4];
	uint32_t v;

	if (gm_atomic_load_u32(m, word, &v, __ATOMIC_ACQUIRE))
		return -EIO;
	memcpy(b, &v, 4); /* guest byte order, whatever the host's */
	*idx = (uint16_t)(b[shift] | b[shift + 1] << 8);
	return 0;
}

/* Reload avail->idx and check invariant 2. */
static int refresh_avail(struct gm_virtq *q, const struct gm_memory *m)
{
	uint16_t idx;

	if (load_avail_idx(q, m, &idx))
		return broken(q);
	/* The driver can never be more than a whole ring ahead of us. */
	if ((uint16_t)(idx - q->last_avail) > q->size)
		return broken(q);
	q->avail_shadow = idx;
	return 0;
}

struct desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* Read descriptor @i of the table at @table once, into a local. */
static int read_desc(const struct gm_memory *m, gm_gpa_t table, uint32_t i, struct desc *d)
{
	unsigned char b[16];
	int ret;

	ret = gm_read(m, table + 16ull * i, b, sizeof(b));
	if (ret)
		return ret;
	d->addr = (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 |
		  (uint64_t)b[3] << 24 | (uint64_t)b[4] << 32 | (uint64_t)b[5] << 40 |
		  (uint64_t)b[6] << 48 | (uint64_t)b[7] << 56;
	d->len =
	    (uint32_t)b[8] | (uint32_t)b[9] << 8 | (uint32_t)b[10] << 16 | (uint32_t)b[11] << 24;
	d->flags = (uint16_t)(b[12] | b[13] << 8);
	d->next = (uint16_t)(b[14] | b[15] << 8);
	return 0;
}

/* Walk the chain at @head. Returns 0 or the per-request errno (see the header). -EIO: broken. */
static int walk_chain(struct gm_virtq *q, const struct gm_memory *m, uint16_t head,
		      struct gm_virtq_buf *bufs, size_t max, size_t *nbufs)
{
	gm_gpa_t table = q->desc;
	uint32_t tsize = q->size, idx = head, count = 0;
	bool indirect = false, seen_write = false;
	size_t n = 0;
	struct desc d;

	for (;;) {
		/* A chain of distinct descriptors cannot be longer than its table. */
		if (count == tsize)
			return -EINVAL;
		if (read_desc(m, table, idx, &d))
			return indirect ? -EFAULT : broken(q);
		count++;
		if (d.flags & DESC_F_INDIRECT) {
			gm_gpa_t last;

			/* Only a head, only one level, never with NEXT (virtio 2.7.5.3.1). */
			if (!(q->features & GM_VIRTQ_F_INDIRECT) || indirect || n > 0 ||
			    (d.flags & DESC_F_NEXT))
				return -EINVAL;
			if (d.len == 0 || d.len % 16 || d.len / 16 > GM_VIRTQ_MAX_SIZE ||
			    !gm_is_aligned(d.addr, 16) || gm_range_last(d.addr, d.len, &last))
				return -EINVAL;
			table = d.addr;
			tsize = d.len / 16;
			idx = 0;
			count = 0;
			indirect = true;
			continue;
		}
		if (d.flags & DESC_F_WRITE)
			seen_write = true;
		else if (seen_write)
			return -EINVAL; /* device-readable after device-writable */
		if (n == max)
			return -ENOBUFS;
		bufs[n].gpa = d.addr;
		bufs[n].len = d.len;
		bufs[n].writable = (d.flags & DESC_F_WRITE) != 0;
		n++;
		if (!(d.flags & DESC_F_NEXT))
			break;
		if (d.next >= tsize)
			return -EINVAL;
		idx = d.next;
	}
	*nbufs = n;
	return 0;
}

int gm_virtq_pop(struct gm_virtq *q, const struct gm_memory *m, struct gm_virtq_req *req,
		 struct gm_virtq_buf *bufs, size_t max)
{
	uint16_t head;
	size_t n = 0;
	int ret;

	if (q->broken || q->size == 0)
		return -EIO;
	if (q->avail_shadow == q->last_avail) {
		ret = refresh_avail(q, m);
		if (ret)
			return ret;
		if (q->avail_shadow == q->last_avail)
			return -EAGAIN;
	}
	if (gm_read_le16(m, q->avail + 4 + 2ull * (q->last_avail & (q->size - 1)), &head))
		return broken(q);
	if (head >= q->size)
		return broken(q); /* no id we could give back */
	req->head = head;
	req->nbufs = 0;
	ret = walk_chain(q, m, head, bufs, max, &n);
	/* A descriptor table not in RAM breaks the ring: the entry stays unconsumed. */
	if (ret == -EIO)
		return ret;
	q->last_avail++;
	if (ret)
		return ret;
	req->nbufs = n;
	return 0;
}

int gm_virtq_pop_head(struct gm_virtq *q, const struct gm_memory *m, uint16_t head,
		      struct gm_virtq_req *req, struct gm_virtq_buf *bufs, size_t max)
{
	size_t n = 0;
	int ret;

	if (q->broken || q->size == 0)
		return -EIO;
	if (head >= q->size)
		return -EINVAL;
	req->head = head;
	req->nbufs = 0;
	ret = walk_chain(q, m, head, bufs, max, &n);
	if (ret)
		return ret;
	req->nbufs = n;
	return 0;
}

int gm_virtq_push(struct gm_virtq *q, const struct gm_memory *m, uint16_t head, uint32_t len)
{
	gm_gpa_t elem;
	unsigned char b[4];
	uint32_t word;

	if (q->broken || q->size == 0)
		return -EIO;
	if (head >= q->size)
		return -EINVAL;
	elem = q->used + 4 + 8ull * (q->used_idx & (q->size - 1));
	if (gm_write_le32(m, elem, head) || gm_write_le32(m, elem + 4, len))
		return broken(q);
	q->used_idx++;
	/*
	 * used->flags and used->idx form one aligned word that only the device
	 * writes (we never set VRING_USED_F_NO_NOTIFY: flags stay 0). Release:
	 * the element above is visible before the index; pairs with the
	 * driver's read barrier after it loads used->idx.
	 */
	b[0] = 0;
	b[1] = 0;
	b[2] = (unsigned char)q->used_idx;
	b[3] = (unsigned char)(q->used_idx >> 8);
	memcpy(&word, b, 4);
	if (gm_atomic_store_u32(m, q->used, word, __ATOMIC_RELEASE))
		return broken(q);
	return 0;
}

int gm_virtq_need_notify(struct gm_virtq *q, const struct gm_memory *m, bool *notify)
{
	uint16_t v, old = q->signalled;
	bool valid = q->signalled_valid;

	if (q->broken || q->size == 0)
		return -EIO;
	/*
	 * Full fence: our used->idx store is globally visible before we read
	 * the driver's suppression field, and the driver orders its field
	 * write before its used->idx read the same way (virtio 2.7.10), so
	 * one of us sees the other and no interrupt is lost.
	 */
	gm__full_fence();
	q->signalled = q->used_idx;
	q->signalled_valid = true;
	if (q->features & GM_VIRTQ_F_EVENT_IDX) {
		if (gm_read_le16(m, q->avail + 4 + 2ull * q->size, &v))
			return broken(q);
		/* vring_need_event(): did used_idx step over used_event + 1? */
		*notify = !valid || (uint16_t)(q->used_idx - v - 1) < (uint16_t)(q->used_idx - old);
		return 0;
	}
	if (gm_read_le16(m, q->avail, &v))
		return broken(q);
	*notify = !(v & AVAIL_F_NO_INTERRUPT) && (!valid || old != q->used_idx);
	return 0;
}

int gm_virtq_enable_notify(struct gm_virtq *q, const struct gm_memory *m, bool *empty)
{
	int ret;

	if (q->broken || q->size == 0)
		return -EIO;
	if ((q->features & GM_VIRTQ_F_EVENT_IDX) &&
	    gm_write_le16(m, q->used + 4 + 8ull * q->size, q->last_avail))
		return broken(q);
	/*
	 * Full fence: avail_event is visible before we look at avail->idx
	 * again; the driver stores avail->idx before reading avail_event, so a
	 * request added meanwhile is either seen here or gets a kick.
	 */
	gm__full_fence();
	if (q->avail_shadow == q->last_avail) {
		ret = refresh_avail(q, m);
		if (ret)
			return ret;
	}
	*empty = q->avail_shadow == q->last_avail;
	return 0;
}
