/* SPDX-License-Identifier: MIT */
/*
 * fuzz/fuzz_virtq.c - libFuzzer target for the split virtqueue walker
 * (include/guestmem/virtq.h, src/virtq.c).
 *
 * Guest memory is fixed: RAM at [0, 0x4000), a hole at [0x4000, 0x5000),
 * read-only RAM at [0x5000, 0x6000), RAM at [0x6000, 0x8000), nothing
 * above. The input gives the queue (size, ring addresses, features,
 * indices, the longest chain taken), a script of 16 operations (pop until
 * empty, push back, need_notify, enable_notify, pop_head, a driver store
 * into memory, set_base, set_layout again) and then the memory contents,
 * so rings, descriptors, indirect tables and indices all come from the
 * fuzzer.
 *
 * Besides "no crash", every answer is checked against the header's
 * contract with a model that reads the memory directly:
 *  - a popped chain is exactly the descriptors the driver linked (head,
 *    or one indirect table), no index twice, no more buffers than @max or
 *    than its table holds, device-readable buffers first;
 *  - a refused request is consumed (base + 1), has its head set and no
 *    buffers; -EAGAIN means the available index in memory equals the base;
 *  - pop never hands out a request beyond the available index it loaded,
 *    nor more than the queue size ahead of its base;
 *  - the device writes nothing outside its used ring, and nothing at all
 *    once the queue is broken, which it stays until set up again;
 *  - a push writes the element and index the spec says.
 * Built only with clang (meson -Dfuzz=enabled); run with `make fuzz`.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guestmem/guestmem.h>
#include <guestmem/virtq.h>

#define MAPSZ	((size_t)0x7000) /* host bytes behind the three regions */
#define RAM_END 0x8000u		 /* first guest address above RAM */
#define NOPS	16u
#define OPSZ	6u
#define HDRSZ	12u
#define MAXBUFS 24u
#define MAXHELD 1024u

/* A broken promise: say which one, then crash so libFuzzer keeps the input. */
#define CHECK(c)                                                                       \
	do {                                                                           \
		if (!(c)) {                                                            \
			fprintf(stderr, "fuzz_virtq.c:%d: CHECK(%s)\n", __LINE__, #c); \
			abort();                                                       \
		}                                                                      \
	} while (0)

static unsigned char *base; /* the mapping */
static unsigned char snap[MAPSZ];
static struct gm_memory *mem;
static unsigned cur_op; /* for the diagnostics */

/* Host offset of guest range [gpa, gpa + len) if it is all RAM (writable if @w), else -1. */
static long model_off(uint64_t gpa, uint64_t len, bool w)
{
	if (len == 0 || gpa >= RAM_END || len > RAM_END - gpa)
		return -1;
	if (gpa + len <= 0x4000)
		return (long)gpa;
	if (gpa >= (w ? 0x6000u : 0x5000u))
		return (long)(gpa - 0x1000);
	return -1;
}

static uint64_t le(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = v << 8 | p[n];
	return v;
}

struct mdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};

static bool model_desc(uint64_t table, uint32_t i, struct mdesc *d)
{
	long o = model_off(table + 16ull * i, 16, false);

	if (o < 0)
		return false;
	d->addr = le(base + o, 8);
	d->len = (uint32_t)le(base + o + 8, 4);
	d->flags = (uint16_t)le(base + o + 12, 2);
	d->next = (uint16_t)le(base + o + 14, 2);
	return true;
}

/* A successful pop: @bufs must be the chain the driver linked at @head. */
static void check_chain(uint32_t size, unsigned features, uint64_t desc, uint16_t head,
			const struct gm_virtq_buf *bufs, size_t n, size_t max)
{
	static bool seen[GM_VIRTQ_MAX_SIZE];
	uint64_t table = desc;
	uint32_t tsize = size, idx = head;
	bool wr = false;
	struct mdesc d;
	size_t i;

	CHECK(n >= 1 && n <= max && head < size);
	CHECK(model_desc(table, idx, &d));
	if (d.flags & 4) {
		CHECK(features & GM_VIRTQ_F_INDIRECT);
		CHECK(!(d.flags & 1) && d.len > 0 && d.len % 16 == 0 && d.addr % 16 == 0);
		table = d.addr;
		tsize = d.len / 16;
		idx = 0;
	}
	CHECK(n <= tsize);
	memset(seen, 0, sizeof(seen[0]) * (tsize < GM_VIRTQ_MAX_SIZE ? tsize : GM_VIRTQ_MAX_SIZE));
	for (i = 0; i < n; i++) {
		CHECK(idx < tsize && !seen[idx]);
		seen[idx] = true;
		CHECK(model_desc(table, idx, &d));
		CHECK(!(d.flags & 4));
		CHECK(bufs[i].gpa == d.addr && bufs[i].len == d.len);
		CHECK(bufs[i].writable == ((d.flags & 2) != 0));
		CHECK(!wr || bufs[i].writable); /* readable ones first */
		wr = bufs[i].writable;
		CHECK(((d.flags & 1) != 0) == (i + 1 < n));
		idx = d.next;
	}
}

struct fz {
	struct gm_virtq *q;
	uint32_t size;
	unsigned features;
	uint64_t desc, avail, used;
	size_t max;
	uint16_t held[MAXHELD];
	size_t nheld;
	/*
	 * The available index values in memory the device may have loaded
	 * since the base was last set (it loads only inside pop and
	 * enable_notify, so only values seen just before those). A request handed out at base b
	 * needs one of them, S, with 1 <= (u16)(S - b) <= size: the device
	 * never runs past what the driver published, nor a ring ahead.
	 */
	uint16_t seen[64];
	size_t nseen; /* > 64: too many to tell, the check is off until the next reset */
};

/*
 * Bytes a device may write: its used ring (wherever the writable parts of
 * it are). Everything else must stay as the driver left it.
 */
static void check_writes(const struct fz *f, bool none)
{
	size_t i;

	if (memcmp(base, snap, MAPSZ) == 0)
		return;
	for (i = 0; i < MAPSZ; i++) {
		uint64_t gpa = i < 0x4000 ? i : i + 0x1000;
		bool ok =
		    !none && f->size != 0 && gpa >= f->used && gpa - f->used < 6 + 8ull * f->size;

		if (base[i] == snap[i])
			continue;
		if (!ok)
			fprintf(stderr, "guest byte 0x%llx changed (op %u, size %u, used 0x%llx)\n",
				(unsigned long long)gpa, cur_op, f->size,
				(unsigned long long)f->used);
		CHECK(ok);
	}
	memcpy(snap, base, MAPSZ);
}

static void note_seen(struct fz *f, uint16_t v)
{
	size_t i;

	for (i = 0; i < f->nseen && i < 64; i++)
		if (f->seen[i] == v)
			return;
	if (f->nseen < 64)
		f->seen[f->nseen] = v;
	f->nseen++;
}

static bool published(const struct fz *f, uint16_t b)
{
	size_t i;

	if (f->nseen > 64)
		return true;
	for (i = 0; i < f->nseen; i++) {
		uint16_t ahead = (uint16_t)(f->seen[i] - b);

		if (ahead >= 1 && ahead <= f->size)
			return true;
	}
	return false;
}

static void do_pop(struct fz *f, unsigned rounds)
{
	struct gm_virtq_buf bufs[MAXBUFS];
	struct gm_virtq_req req;
	unsigned k;

	for (k = 0; k < rounds; k++) {
		bool was_broken = gm_virtq_broken(f->q);
		uint16_t b = gm_virtq_base(f->q), aidx;
		long ao = model_off(f->avail + 2, 2, false);
		int ret;

		if (ao >= 0)
			note_seen(f, (uint16_t)le(base + ao, 2));
		memset(&req, 0xa5, sizeof(req));
		ret = gm_virtq_pop(f->q, mem, &req, bufs, f->max);
		check_writes(f, true); /* pop never writes */
		if (was_broken)
			CHECK(ret == -EIO);
		switch (ret) {
		case 0:
			check_chain(f->size, f->features, f->desc, req.head, bufs, req.nbufs,
				    f->max);
			/* fall through */
		case -EINVAL:
		case -EFAULT:
		case -ENOBUFS:
			CHECK(!gm_virtq_broken(f->q));
			CHECK(gm_virtq_base(f->q) == (uint16_t)(b + 1));
			CHECK(req.head < f->size);
			CHECK(ret == 0 || req.nbufs == 0);
			CHECK(published(f, b));
			if (f->nheld < MAXHELD)
				f->held[f->nheld++] = req.head;
			break;
		case -EAGAIN:
			CHECK(!gm_virtq_broken(f->q) && gm_virtq_base(f->q) == b);
			CHECK(ao >= 0);
			aidx = (uint16_t)le(base + ao, 2);
			CHECK(aidx == b);
			return;
		case -EIO:
			CHECK(gm_virtq_broken(f->q) && gm_virtq_base(f->q) == b);
			return;
		default:
			CHECK(0);
		}
	}
}

static void do_push(struct fz *f, uint32_t len, bool reverse)
{
	size_t i;

	for (i = 0; i < f->nheld; i++) {
		uint16_t head = f->held[reverse ? f->nheld - 1 - i : i];
		uint16_t u = gm_virtq_used_index(f->q);
		bool was_broken = gm_virtq_broken(f->q);
		int ret = gm_virtq_push(f->q, mem, head, len);
		long eo, io;

		if (was_broken) {
			CHECK(ret == -EIO);
			check_writes(f, true);
			continue;
		}
		if (ret == 0) {
			eo = model_off(f->used + 4 + 8ull * (u & (f->size - 1)), 8, true);
			io = model_off(f->used, 4, true);
			CHECK(eo >= 0 && io >= 0);
			CHECK(le(base + eo, 4) == head && le(base + eo + 4, 4) == len);
			CHECK(le(base + io, 2) == 0 && le(base + io + 2, 2) == (uint16_t)(u + 1));
			CHECK(gm_virtq_used_index(f->q) == (uint16_t)(u + 1));
		} else {
			CHECK(ret == -EIO && gm_virtq_broken(f->q));
		}
		check_writes(f, false);
	}
	f->nheld = 0;
}

static void run_op(struct fz *f, const unsigned char *op)
{
	uint16_t a = (uint16_t)le(op + 1, 2), b = (uint16_t)le(op + 3, 2);
	bool was_broken = gm_virtq_broken(f->q), flag;
	int ret;

	switch (op[0] % 9) {
	case 0:
		do_pop(f, 1 + (unsigned)op[5] % 64);
		break;
	case 1:
		do_pop(f, 2 * f->size + 2); /* until empty or broken */
		break;
	case 2:
		if ((op[5] & 2) && f->size != 0 && f->size + a % 4 <= UINT16_MAX) {
			/* An id the queue never gave out. */
			ret = gm_virtq_push(f->q, mem, (uint16_t)(f->size + a % 4), b);
			CHECK(ret == (was_broken ? -EIO : -EINVAL));
			check_writes(f, true);
			break;
		}
		do_push(f, (uint32_t)a << 16 | b, op[5] & 1);
		break;
	case 3:
		ret = gm_virtq_need_notify(f->q, mem, &flag);
		CHECK(ret == 0 || ret == -EIO);
		CHECK((ret == -EIO) == gm_virtq_broken(f->q));
		CHECK(!was_broken || ret == -EIO);
		check_writes(f, true);
		break;
	case 4:
		/* It may load the available index too. */
		if (f->size != 0 && model_off(f->avail + 2, 2, false) >= 0)
			note_seen(f, (uint16_t)le(base + model_off(f->avail + 2, 2, false), 2));
		ret = gm_virtq_enable_notify(f->q, mem, &flag);
		CHECK(ret == 0 || ret == -EIO);
		CHECK((ret == -EIO) == gm_virtq_broken(f->q));
		check_writes(f, was_broken);
		break;
	case 5: {
		/* The driver stores a 16-bit value anywhere in RAM (read-only too). */
		uint64_t gpa = (uint64_t)(a % (RAM_END / 2)) * 2;
		long o = model_off(gpa, 2, false);

		if (o < 0)
			break;
		base[o] = (unsigned char)b;
		base[o + 1] = (unsigned char)(b >> 8);
		memcpy(snap, base, MAPSZ);
		break;
	}
	case 6: {
		struct gm_virtq_buf bufs[MAXBUFS];
		struct gm_virtq_req req;

		ret = gm_virtq_pop_head(f->q, mem, a, &req, bufs, f->max);
		check_writes(f, true);
		if (was_broken)
			CHECK(ret == -EIO);
		else if (f->size != 0 && a >= f->size)
			CHECK(ret == -EINVAL);
		else if (ret == 0)
			check_chain(f->size, f->features, f->desc, req.head, bufs, req.nbufs,
				    f->max);
		else
			CHECK(ret == -EINVAL || ret == -EFAULT || ret == -ENOBUFS ||
			      (ret == -EIO && gm_virtq_broken(f->q)));
		if (ret != -EIO && ret != 0 && a < f->size) /* else req is not set */
			CHECK(req.head == a && req.nbufs == 0);
		break;
	}
	case 7:
		if (op[5] & 1)
			gm_virtq_set_indices(f->q, a, b);
		else
			gm_virtq_set_base(f->q, a);
		CHECK(gm_virtq_base(f->q) == a);
		CHECK(gm_virtq_used_index(f->q) == ((op[5] & 1) ? b : a));
		CHECK(gm_virtq_broken(f->q) == (f->size == 0));
		f->nseen = 0;
		f->nheld = 0;
		break;
	case 8:
		if (f->size != 0) {
			CHECK(gm_virtq_set_layout(f->q, f->size, f->desc, f->avail, f->used) == 0);
			CHECK(!gm_virtq_broken(f->q));
		}
		f->features = op[5] & 3;
		CHECK(gm_virtq_set_features(f->q, f->features) == 0);
		break;
	}
}

static uint64_t ring_addr(uint16_t v, unsigned align)
{
	/* Mostly in or near RAM, sometimes misaligned, sometimes at the top of the space. */
	if ((v >> 14) == 3)
		return UINT64_MAX - 0xfff + (uint64_t)(v & 0xff) * align;
	return (uint64_t)(v % (0x9000 / align)) * align + ((v >> 14) == 2 ? 1 : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gm_mapping *mp;
	struct fz f = {0};
	unsigned char hdr[HDRSZ + NOPS * OPSZ] = {0};
	size_t i, nmem;
	int ret;

	if (mp == NULL) {
		struct gm_region_spec s[3] = {
		    {.gpa = 0, .size = 0x4000, .offset = 0},
		    {.gpa = 0x5000, .size = 0x1000, .offset = 0x4000, .flags = GM_REGION_READONLY},
		    {.gpa = 0x6000, .size = 0x2000, .offset = 0x5000},
		};

		CHECK(gm_mapping_new_anon(MAPSZ, 0, &mp) == 0);
		for (i = 0; i < 3; i++)
			s[i].mapping = mp;
		CHECK(gm_memory_new(s, 3, &mem) == 0);
		base = gm_mapping_host(mp);
	}
	memcpy(hdr, data, size < sizeof(hdr) ? size : sizeof(hdr));
	nmem = size > sizeof(hdr) ? size - sizeof(hdr) : 0;
	if (nmem > MAPSZ)
		nmem = MAPSZ;
	memset(base, 0, MAPSZ);
	if (nmem)
		memcpy(base, data + sizeof(hdr), nmem);
	memcpy(snap, base, MAPSZ);

	f.features = hdr[0] & 3;
	f.size = 1u << ((hdr[0] >> 2) % 9);
	f.desc = ring_addr((uint16_t)le(hdr + 1, 2), 16);
	f.avail = ring_addr((uint16_t)le(hdr + 3, 2), 2);
	f.used = ring_addr((uint16_t)le(hdr + 5, 2), 4);
	f.max = 1 + hdr[11] % MAXBUFS;
	CHECK(gm_virtq_new(&f.q) == 0);
	CHECK(gm_virtq_broken(f.q));
	CHECK(gm_virtq_set_features(f.q, f.features) == 0);
	ret = gm_virtq_set_layout(f.q, f.size, f.desc, f.avail, f.used);
	if (f.desc % 16 || f.avail % 2 || f.used % 4) {
		CHECK(ret == -EINVAL);
		f.size = 0;
	} else if (ret) {
		CHECK(ret == -EOVERFLOW);
		f.size = 0;
	}
	CHECK(gm_virtq_broken(f.q) == (f.size == 0));
	if (hdr[0] & 0x80)
		gm_virtq_set_indices(f.q, (uint16_t)le(hdr + 7, 2), (uint16_t)le(hdr + 9, 2));
	else
		gm_virtq_set_base(f.q, (uint16_t)le(hdr + 7, 2));
	for (i = 0; i < NOPS; i++) {
		cur_op = (unsigned)i << 8 | hdr[HDRSZ + i * OPSZ] % 9;
		run_op(&f, hdr + HDRSZ + i * OPSZ);
	}
	gm_virtq_free(f.q);
	return 0;
}
