/* SPDX-License-Identifier: MIT */
/*
 * fuzz/fuzz_memory.c - libFuzzer target for the memory layer's data path.
 *
 * The input first lays out up to 8 guest regions (bounded sizes, adjacent
 * or with holes, anywhere up to the top of the 64-bit space, some
 * read-only, some contiguous on the host) as windows of one anonymous
 * mapping, then runs up to 32 data-path calls at fuzzer-chosen addresses
 * and lengths. A small model of the layout, kept by this file, predicts
 * every result: which bytes are reachable, the errno, the bytes moved, the
 * host pointers and iovecs; any disagreement aborts. Guest bytes are
 * compared with a snapshot of the mapping, so a failing write that changed
 * memory is caught too. Every view built must pass the layer's own
 * invariant check (gm__memory_invariants_ok()). Built only with clang
 * (meson -Dfuzz=enabled); run with `make fuzz`.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <guestmem/guestmem.h>

#include "memory/memory-internal.h" /* gm__memory_invariants_ok() */

#define MAXREG 8
#define MAPSZ  ((size_t)256 * 1024) /* all regions are windows of one mapping */
#define MAXOPS 32

#define CHECK(c)                 \
	do {                     \
		if (!(c))        \
			abort(); \
	} while (0)

struct in {
	const uint8_t *p;
	size_t n;
};

static uint64_t get(struct in *in, unsigned bytes)
{
	uint64_t v = 0;

	while (bytes-- > 0 && in->n > 0) {
		v = v << 8 | *in->p++;
		in->n--;
	}
	return v;
}

struct reg {
	gm_gpa_t gpa, last;
	size_t hoff; /* offset of the window in the mapping */
	bool ro;
};

static struct reg reg[MAXREG];
static size_t nreg;
static unsigned char *base;				  /* the mapping */
static unsigned char snap[MAPSZ], buf[MAPSZ], tmp[MAPSZ]; /* scratch */

static const struct reg *model_find(gm_gpa_t gpa)
{
	size_t i;

	for (i = 0; i < nreg; i++)
		if (gpa >= reg[i].gpa && gpa <= reg[i].last)
			return &reg[i];
	return NULL;
}

static unsigned char *model_host(const struct reg *r, gm_gpa_t gpa)
{
	return base + r->hoff + (size_t)(gpa - r->gpa);
}

/*
 * Bytes from @gpa that can be accessed before the first that cannot;
 * *@why is then -EFAULT (hole, end of RAM, wrap) or -EACCES (read-only, @w).
 * Also counts the iovec pieces the accessible part needs (*@pieces).
 */
static size_t model_ok(gm_gpa_t gpa, size_t len, bool w, int *why, size_t *pieces)
{
	const unsigned char *prev_end = NULL;
	size_t done = 0, np = 0;

	*why = 0;
	while (done < len) {
		gm_gpa_t cur = gpa + done;
		const struct reg *r;
		size_t n;

		if (done > 0 && cur < gpa) {
			*why = -EFAULT;
			break;
		}
		r = model_find(cur);
		if (r == NULL) {
			*why = -EFAULT;
			break;
		}
		if (w && r->ro) {
			*why = -EACCES;
			break;
		}
		n = r->last - cur >= (uint64_t)(len - done - 1) ? len - done
								: (size_t)(r->last - cur + 1);
		if (model_host(r, cur) != prev_end)
			np++;
		prev_end = model_host(r, cur) + n;
		done += n;
	}
	if (pieces)
		*pieces = np;
	return done;
}

/* Copy guest bytes [gpa, gpa + len) (known accessible) out of / into @b via the model. */
static void model_copy(gm_gpa_t gpa, unsigned char *b, size_t len, bool to_guest)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char *h = model_host(model_find(gpa + i), gpa + i);

		if (to_guest)
			*h = b[i];
		else
			b[i] = *h;
	}
}

static void check_unchanged(void)
{
	CHECK(memcmp(base, snap, MAPSZ) == 0);
}

static gm_gpa_t pick_gpa(struct in *in)
{
	const struct reg *r;

	switch (get(in, 1) % 4) {
	case 0:
		return get(in, 8);
	case 1:
		r = &reg[get(in, 1) % nreg];
		return r->gpa + get(in, 2) - 0x8000;
	case 2:
		r = &reg[get(in, 1) % nreg];
		return r->last - get(in, 1) + 8;
	default:
		r = &reg[get(in, 1) % nreg];
		return r->gpa + get(in, 1);
	}
}

static size_t pick_len(struct in *in)
{
	switch (get(in, 1) % 4) {
	case 0:
		return (size_t)get(in, 1);
	case 1:
		return (size_t)get(in, 2);
	case 2:
		return (size_t)get(in, 3) % (MAPSZ + 1);
	default:
		return (size_t)get(in, 8);
	}
}

/* Errors the model allows for an atomic on the @size-byte word at @gpa. */
static bool atomic_rc_ok(int rc, gm_gpa_t gpa, unsigned size, bool write)
{
	const struct reg *r = model_find(gpa);
	bool misaligned = (gpa & (size - 1)) != 0;
	bool fault = r == NULL;
	bool crosses = r && r->last - gpa < size - 1;
	bool host_mis = r && ((uintptr_t)model_host(r, gpa) & (size - 1)) != 0;
	bool ro = r && write && r->ro;

	if (!misaligned && !fault && !crosses && !host_mis && !ro)
		return rc == 0;
	return (rc == -EINVAL && (misaligned || crosses || host_mis)) || (rc == -EFAULT && fault) ||
	       (rc == -EACCES && ro);
}

/* All-or-nothing write result: 0 iff all reachable, else one of the errors present. */
static bool write_rc_ok(int rc, size_t ok, size_t len, int why, gm_gpa_t gpa)
{
	int why2;

	if (ok == len)
		return rc == 0;
	if (rc == why)
		return true;
	/* the first bad byte is read-only, a later one may be a hole: either errno */
	return rc == -EFAULT && why == -EACCES && model_ok(gpa, len, false, &why2, NULL) != len;
}

static void run_op(struct gm_memory *m, struct gm_dirty *d, struct in *in)
{
	unsigned op = (unsigned)get(in, 1) % 12;
	gm_gpa_t gpa = pick_gpa(in), src;
	size_t len = pick_len(in), ok, done = 0, pieces, n = 0, i;
	int why, why2, rc;

	switch (op) {
	case 0: /* gm_read */
		ok = model_ok(gpa, len, false, &why, NULL);
		rc = gm_read(m, gpa, buf, len);
		CHECK(rc == (ok == len ? 0 : -EFAULT));
		if (rc == 0) {
			model_copy(gpa, tmp, len, false);
			CHECK(memcmp(buf, tmp, len) == 0);
		}
		break;
	case 1: /* gm_write */
		ok = model_ok(gpa, len, true, &why, NULL);
		memcpy(snap, base, MAPSZ);
		for (i = 0; i < len && i < MAPSZ; i++)
			buf[i] = (unsigned char)(i * 31 + op);
		rc = gm_write(m, gpa, buf, len);
		CHECK(write_rc_ok(rc, ok, len, why, gpa));
		if (rc != 0) {
			check_unchanged();
			break;
		}
		model_copy(gpa, tmp, len, false);
		CHECK(memcmp(buf, tmp, len) == 0);
		/* every page written is dirty (tracking is on) */
		for (i = 0; i < len; i += 1 + (len - i > 4096 ? 4095 : 0)) {
			const struct reg *r = model_find(gpa + i);

			CHECK(gm_dirty_test(d, (r->hoff + (gpa + i - r->gpa)) >> GM_PAGE_SHIFT));
		}
		break;
	case 2: /* partial read / write */
		ok = model_ok(gpa, len, false, &why, NULL);
		rc = gm_read_partial(m, gpa, buf, len, &done);
		CHECK(rc == why && done == ok);
		ok = model_ok(gpa, len, true, &why, NULL);
		memcpy(snap, base, MAPSZ);
		rc = gm_write_partial(m, gpa, buf, len, &done);
		CHECK(rc == why && done == ok);
		model_copy(gpa, tmp, done, false);
		CHECK(memcmp(buf, tmp, done) == 0);
		break;
	case 3: { /* fixed width: inline and exported agree with the model */
		uint64_t a = 1, b = 2;
		uint32_t a32 = 1, b32 = 2;
		int ra, rb;

		ok = model_ok(gpa, 8, false, &why, NULL);
		ra = gm_read_u64(m, gpa, &a);
		rb = (gm_read_u64)(m, gpa, &b);
		CHECK(ra == rb && ra == (ok == 8 ? 0 : -EFAULT));
		CHECK(ra != 0 || a == b);
		ok = model_ok(gpa, 4, false, &why, NULL);
		ra = gm_read_le32(m, gpa, &a32);
		rb = (gm_read_le32)(m, gpa, &b32);
		CHECK(ra == rb && ra == (ok == 4 ? 0 : -EFAULT));
		CHECK(ra != 0 || a32 == b32);
		ok = model_ok(gpa, 8, true, &why, NULL);
		memcpy(snap, base, MAPSZ);
		ra = gm_write_u64(m, gpa, 0x0102030405060708ull);
		CHECK(write_rc_ok(ra, ok, 8, why, gpa));
		rb = (gm_write_u64)(m, gpa, 0x0102030405060708ull);
		CHECK(ra == rb);
		if (ra != 0)
			check_unchanged();
		ok = model_ok(gpa, 2, true, &why, NULL);
		ra = gm_write_le16(m, gpa, 0xabcd);
		CHECK(write_rc_ok(ra, ok, 2, why, gpa));
		CHECK(ra != 0 || (*model_host(model_find(gpa), gpa) == 0xcd &&
				  *model_host(model_find(gpa + 1), gpa + 1) == 0xab));
		break;
	}
	case 4: { /* atomics */
		uint64_t old = 0, e;
		uint32_t v32 = 0;

		memcpy(snap, base, MAPSZ);
		rc = gm_atomic_fetch_add_u64(m, gpa, 1, &old, __ATOMIC_SEQ_CST);
		CHECK(atomic_rc_ok(rc, gpa, 8, true));
		if (rc != 0)
			check_unchanged();
		rc = gm_atomic_load_u32(m, gpa, &v32, __ATOMIC_ACQUIRE);
		CHECK(atomic_rc_ok(rc, gpa, 4, false));
		CHECK(rc == (gm_atomic_load_u32)(m, gpa, &v32, __ATOMIC_ACQUIRE));
		e = old + 1;
		rc = gm_atomic_cmpxchg_u64(m, gpa, &e, 7, __ATOMIC_ACQ_REL);
		CHECK(rc == -EAGAIN || atomic_rc_ok(rc, gpa, 8, true));
		rc = gm_atomic_store_u32(m, gpa, 5, (int)(get(in, 1) % 7));
		CHECK(rc == -EINVAL || atomic_rc_ok(rc, gpa, 4, true));
		break;
	}
	case 5: /* fill */
		ok = model_ok(gpa, len, true, &why, NULL);
		memcpy(snap, base, MAPSZ);
		rc = gm_fill(m, gpa, 0x5a, len);
		CHECK(len == 0 ? rc == 0 : write_rc_ok(rc, ok, len, why, gpa));
		if (rc != 0)
			check_unchanged();
		else
			for (i = 0; i < len; i++)
				CHECK(*model_host(model_find(gpa + i), gpa + i) == 0x5a);
		break;
	case 6: /* copy, overlap allowed */
		src = pick_gpa(in);
		ok = model_ok(src, len, false, &why2, NULL);
		memcpy(snap, base, MAPSZ);
		if (ok == len)
			model_copy(src, tmp, len, false);
		rc = gm_copy(m, gpa, src, len);
		if (len == 0) {
			CHECK(rc == 0);
			break;
		}
		if (ok != len) {
			CHECK(rc == -EFAULT || rc == -EACCES);
			check_unchanged();
			break;
		}
		ok = model_ok(gpa, len, true, &why, NULL);
		CHECK(write_rc_ok(rc, ok, len, why, gpa));
		if (rc != 0) {
			check_unchanged();
			break;
		}
		model_copy(gpa, buf, len, false);
		CHECK(memcmp(buf, tmp, len) == 0);
		break;
	case 7: { /* host pointers */
		const struct reg *r = model_find(gpa);
		void *want = NULL;

		if (r && (len == 0 || r->last - gpa >= (uint64_t)(len - 1)))
			want = model_host(r, gpa);
		CHECK(gm_host_ptr(m, gpa, len) == want);
		CHECK((gm_host_ptr)(m, gpa, len) == want);
		CHECK(gm_host_ptr_write(m, gpa, len) == (r && r->ro ? NULL : want));
		break;
	}
	case 8: { /* iovecs */
		struct iovec iov[MAXREG + 1];
		size_t max = (size_t)get(in, 1) % (MAXREG + 2), covered = 0;

		ok = model_ok(gpa, len, false, &why, &pieces);
		rc = gm_to_iovec(m, gpa, len, iov, max, &n);
		if (len == 0) {
			CHECK(rc == 0 && n == 0);
			break;
		}
		if (ok != len) {
			CHECK(rc == -EFAULT);
			break;
		}
		CHECK(n == pieces);
		CHECK(rc == (pieces > max ? -ENOBUFS : 0));
		for (i = 0; i < n && i < max; i++) {
			CHECK(iov[i].iov_base ==
			      model_host(model_find(gpa + covered), gpa + covered));
			covered += iov[i].iov_len;
		}
		CHECK(rc != 0 || covered == len);
		break;
	}
	case 9: { /* find and mark_dirty never fail on guest input */
		struct gm_region_info info = GM_OPTS(gm_region_info);
		const struct reg *r = model_find(gpa);

		rc = gm_memory_find(m, gpa, &info);
		CHECK(r ? rc == 0 && info.gpa == r->gpa && info.host == base + r->hoff
			: rc == -EFAULT);
		CHECK(gm_mark_dirty(m, gpa, len) == 0);
		break;
	}
	case 10: { /* collect: consumes the bits, never more than npages */
		uint64_t w[MAPSZ / 4096 / 64];

		CHECK(gm_dirty_collect(d, 0, w, sizeof(w) / sizeof(w[0])) == 0);
		CHECK(gm_dirty_count(d) <= gm_dirty_npages(d));
		break;
	}
	default: /* le64 via the exported path on top of an unaligned read */
		ok = model_ok(gpa, 8, false, &why, NULL);
		{
			uint64_t v = 0;

			rc = (gm_read_le64)(m, gpa, &v);
			CHECK(rc == (ok == 8 ? 0 : -EFAULT));
		}
		break;
	}
}

/* Lay out the regions; returns the view or NULL when the input is too short to make one. */
static struct gm_memory *build(struct in *in, struct gm_mapping *mp, struct gm_dirty *d)
{
	static const gm_gpa_t bases[8] = {0,
					  0x1000,
					  0xfffff000,
					  0x100000000ull,
					  0x7ffffffffffff000ull,
					  UINT64_MAX - 0xffff,
					  UINT64_MAX - 0x1fff,
					  0x3};
	struct gm_region_spec s[MAXREG];
	struct gm_memory *m = NULL;
	gm_gpa_t cur = bases[get(in, 1) % 8];
	size_t hoff = 0, want = 1 + (size_t)get(in, 1) % MAXREG, i;
	bool at_top = false, wrapped = false;

	nreg = 0;
	while (nreg < want && in->n > 0) {
		uint64_t gap = 0, size = 1 + get(in, 2) % 0x8000;
		unsigned g = (unsigned)get(in, 1);
		gm_gpa_t gpa = cur, last;

		switch (g % 4) {
		case 1:
			gap = get(in, 2) + 1;
			break;
		case 2:
			gap = get(in, 2) << 12;
			break;
		case 3:
			gap = get(in, 4) << 20;
			break;
		}
		if (nreg > 0 && (at_top || gm_add_overflow_u64(cur, gap, &gpa))) {
			/* past 2^64: go on from address 0, below the first region */
			if (wrapped)
				break;
			wrapped = true;
			gpa = gap;
		}
		/* a region that would wrap is cut to end at 2^64 - 1 exactly */
		if (gm_range_last(gpa, size, &last)) {
			size = 0 - gpa;
			last = UINT64_MAX;
		}
		if (wrapped && last >= reg[0].gpa)
			break;
		/* on the host: right after the last window (contiguous) or further on */
		hoff += (g >> 2) % 4 == 0 ? 0 : (size_t)((g >> 4) * 97 % 8192);
		if (hoff + size > MAPSZ)
			break;
		s[nreg] = (struct gm_region_spec){
		    gpa, size, mp, hoff, (g & 0x80) ? GM_REGION_READONLY : 0, d, hoff};
		reg[nreg] = (struct reg){gpa, last, hoff, (g & 0x80) != 0};
		nreg++;
		hoff += (size_t)size;
		at_top = last == UINT64_MAX;
		cur = last + 1;
	}
	if (nreg == 0)
		return NULL;
	CHECK(gm_memory_new(s, nreg, &m) == 0);
	CHECK(gm__memory_invariants_ok(m));
	CHECK(gm_memory_region_count(m) == nreg);
	for (i = 0; i < MAPSZ; i++)
		base[i] = (unsigned char)(i * 7 + (i >> 9));
	return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct gm_mapping *mp;
	struct in in = {data, size};
	struct gm_dirty *d = NULL;
	struct gm_memory *m;
	unsigned k;

	if (mp == NULL) {
		CHECK(gm_mapping_new_anon(MAPSZ, 0, &mp) == 0);
		base = gm_mapping_host(mp);
	}
	CHECK(gm_dirty_new(MAPSZ, &d) == 0);
	gm_dirty_set_enabled(d, true);
	m = build(&in, mp, d);
	for (k = 0; m != NULL && k < MAXOPS && in.n > 0; k++)
		run_op(m, d, &in);
	gm_memory_put(m);
	gm_dirty_put(d);
	return 0;
}
