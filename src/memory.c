/*
 * memory.c - immutable guest memory views and the data path.
 *
 * gm_memory_new() validates and sorts region specs, takes references on
 * their mappings and dirty bitmaps, and builds the lookup table described
 * in static/memory-inline.h. Everything after construction only reads the
 * view, which is why the data path needs no locks.
 *
 * The exported fixed-width accessors repeat the inline fast path and then
 * handle what it leaves to them (unaligned, crossing regions, errors).
 * Ranges go through check_range() before any byte moves (all-or-nothing),
 * then through a second walk that copies region by region.
 *
 * Invariants of a view (checked by gm__memory_invariants_ok()):
 *  1. regions[] is sorted by gpa and no two regions share a byte:
 *     regions[i].last < regions[i + 1].gpa.
 *  2. max_last is regions[n - 1].last (0 for an empty view, whose single
 *     dummy region {gpa 1, last 0} matches no address).
 *  3. slots[] and slot_first[] have nslots = (max_last >> shift) + 1
 *     entries; slot_first[i] is the index of the first region whose last
 *     byte is >= i << shift.
 *     So the walk in gm__region_of() starts at or before the region holding
 *     any address of slot i and stops at the last region at the latest
 *     (invariant 2).
 *  3a. slots[i] lacks GM__SLOT_SLOW only if the whole slot lies inside
 *     region slot_first[i], whose host address is then bias + gpa for every
 *     gpa of the slot (bias = slots[i] & ~GM__SLOT_FLAGS), and bias is
 *     8-byte aligned (so an aligned gpa is an aligned host address). Its
 *     READONLY/DIRTY flags are that region's.
 *  4. Every region's host range [host, host + size) lies inside its
 *     mapping, which the view holds a reference on; so does its dirty
 *     bitmap, which covers [dirty_offset, dirty_offset + size).
 */
#include <guestmem/memory.h>
#include <guestmem/static/memory-inline.h>

#include <endian.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dirty-internal.h"
#include "memory-internal.h"

/* A table larger than this gets a coarser shift (a few regions per slot). */
#define MAX_SLOTS (1u << 14)
/* iovecs handed to one readv/writev call in fd I/O. */
#define FD_IOV_BATCH 64

/* Per-region fields the data path does not need. */
struct gm_region_cold {
	struct gm_mapping *mapping;
	size_t offset;
};

struct gm_memory {
	struct gm_memory_hot hot; /* first: the inline path casts to it */
	struct gm_region_hot *regions;
	struct gm_region_cold *cold;
	uintptr_t *slots;
	uint32_t *slot_first;
	uint64_t total;
	unsigned long refs;
};

static const struct gm_region_hot empty_region = {.gpa = 1, .last = 0};
static const uintptr_t empty_slot = GM__SLOT_SLOW;
static const uint32_t empty_slot_first = 0;

/* ---- construction ---------------------------------------------------- */

static int cmp_spec_gpa(const void *a, const void *b)
{
	const struct gm_region_spec *x = *(const struct gm_region_spec *const *)a;
	const struct gm_region_spec *y = *(const struct gm_region_spec *const *)b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/* Check one spec on its own. Returns 0 or the errno gm_memory_new() documents. */
static int check_spec(const struct gm_region_spec *s)
{
	gm_gpa_t last;
	size_t len, end;
	uint64_t dend;
	int err;

	if (s->mapping == NULL || (s->flags & ~GM_REGION_ALL_FLAGS) != 0)
		return -EINVAL;
	err = gm_range_last(s->gpa, s->size, &last);
	if (err)
		return err;
	if (gm_u64_to_size(s->size, &len))
		return -EOVERFLOW;
	if (gm_add_overflow_size(s->offset, len, &end) || end > gm_mapping_size(s->mapping))
		return -ERANGE;
	if (s->dirty != NULL && (gm_add_overflow_u64(s->dirty_offset, s->size, &dend) ||
				 dend > gm_dirty_npages(s->dirty) * GM_PAGE_SIZE))
		return -EINVAL;
	return 0;
}

/*
 * The coarsest power-of-two alignment shared by every region boundary,
 * raised until the table has at most MAX_SLOTS entries.
 */
static unsigned pick_shift(const struct gm_region_hot *r, uint32_t n, gm_gpa_t max_last)
{
	unsigned shift = 63;
	uint32_t i;

	for (i = 0; i < n; i++) {
		unsigned a;

		if (r[i].gpa != 0) {
			a = (unsigned)__builtin_ctzll(r[i].gpa);
			shift = a < shift ? a : shift;
		}
		if (r[i].last != UINT64_MAX) {
			a = (unsigned)__builtin_ctzll(r[i].last + 1);
			shift = a < shift ? a : shift;
		}
	}
	if (shift < GM_PAGE_SHIFT)
		shift = GM_PAGE_SHIFT;
	while ((max_last >> shift) >= MAX_SLOTS)
		shift++;
	return shift;
}

/* Fill slots[] and slot_first[] (invariants 3 and 3a). */
static int build_slots(struct gm_memory *m)
{
	uint64_t nslots = (m->hot.max_last >> m->hot.shift) + 1, i;
	uint64_t span = ((uint64_t)1 << m->hot.shift) - 1;
	uint32_t j = 0;

	m->slots = calloc((size_t)nslots, sizeof(*m->slots));
	m->slot_first = calloc((size_t)nslots, sizeof(*m->slot_first));
	if (m->slots == NULL || m->slot_first == NULL)
		return -ENOMEM;
	for (i = 0; i < nslots; i++) {
		gm_gpa_t start = i << m->hot.shift;
		const struct gm_region_hot *r;
		uintptr_t bias, e = GM__SLOT_SLOW;

		/* Stops at the last region: its last byte is max_last >= start. */
		while (m->regions[j].last < start)
			j++;
		r = &m->regions[j];
		m->slot_first[i] = j;
		bias = (uintptr_t)r->host - (uintptr_t)r->gpa;
		if (r->gpa <= start && r->last >= start + span && (bias & GM__SLOT_FLAGS) == 0)
			e = bias;
		if (r->flags & GM_REGION_READONLY)
			e |= GM__SLOT_READONLY;
		if (r->dirty != NULL)
			e |= GM__SLOT_DIRTY;
		m->slots[i] = e;
	}
	m->hot.slots = m->slots;
	m->hot.slot_first = m->slot_first;
	m->hot.nslots = nslots;
	return 0;
}

static void memory_free(struct gm_memory *m)
{
	uint32_t i;

	for (i = 0; i < m->hot.nregions; i++) {
		gm_mapping_put(m->cold[i].mapping);
		gm_dirty_put((struct gm_dirty *)m->regions[i].dirty);
	}
	free(m->regions);
	free(m->cold);
	free(m->slots);
	free(m->slot_first);
	free(m);
}

static struct gm_memory *memory_alloc_empty(void)
{
	struct gm_memory *m = calloc(1, sizeof(*m));

	if (m == NULL)
		return NULL;
	m->refs = 1;
	m->hot.regions = &empty_region;
	m->hot.slots = &empty_slot;
	m->hot.slot_first = &empty_slot_first;
	m->hot.nslots = 1;
	m->hot.shift = GM_PAGE_SHIFT;
	return m;
}

int gm_memory_new(const struct gm_region_spec *specs, size_t n, struct gm_memory **out)
{
	const struct gm_region_spec **sorted = NULL;
	struct gm_memory *m;
	size_t i;
	int err;

	if (out == NULL || (specs == NULL && n > 0))
		return -EINVAL;
	if (n >= UINT32_MAX)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		err = check_spec(&specs[i]);
		if (err)
			return err;
	}
	m = memory_alloc_empty();
	if (m == NULL)
		return -ENOMEM;
	if (n == 0) {
		*out = m;
		return 0;
	}

	err = -ENOMEM;
	sorted = malloc(n * sizeof(*sorted));
	m->regions = calloc(n, sizeof(*m->regions));
	m->cold = calloc(n, sizeof(*m->cold));
	if (sorted == NULL || m->regions == NULL || m->cold == NULL)
		goto err_free;
	for (i = 0; i < n; i++)
		sorted[i] = &specs[i];
	qsort(sorted, n, sizeof(*sorted), cmp_spec_gpa);

	for (i = 0; i < n; i++) {
		const struct gm_region_spec *s = sorted[i];
		struct gm_region_hot *r = &m->regions[i];

		r->gpa = s->gpa;
		r->last = s->gpa + (s->size - 1); /* cannot wrap: check_spec() */
		if (i > 0 && r->gpa <= m->regions[i - 1].last) {
			err = -EEXIST; /* invariant 1 */
			goto err_free;
		}
		r->host = (unsigned char *)gm_mapping_host(s->mapping) + s->offset;
		r->flags = s->flags;
		r->dirty_offset = s->dirty_offset;
		/* References are taken last-to-first-free safe: nregions counts them. */
		r->dirty = s->dirty ? (struct gm_dirty_hot *)(void *)gm_dirty_get(s->dirty) : NULL;
		m->cold[i].mapping = gm_mapping_get(s->mapping);
		m->cold[i].offset = s->offset;
		m->hot.nregions = (uint32_t)i + 1;
		m->total += s->size;
	}
	m->hot.regions = m->regions;
	m->hot.max_last = m->regions[n - 1].last;
	m->hot.shift = pick_shift(m->regions, (uint32_t)n, m->hot.max_last);
	err = build_slots(m);
	if (err)
		goto err_free;
	free(sorted);
	*out = m;
	return 0;

err_free:
	free(sorted);
	memory_free(m);
	return err;
}

int gm_memory_new_anon(const struct gm_range *ranges, size_t n, struct gm_memory **out)
{
	struct gm_region_spec *specs;
	size_t i;
	int err = 0;

	if (out == NULL || (ranges == NULL && n > 0))
		return -EINVAL;
	specs = calloc(n ? n : 1, sizeof(*specs));
	if (specs == NULL)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		size_t len;

		specs[i].gpa = ranges[i].gpa;
		specs[i].size = ranges[i].size;
		if (ranges[i].size == 0) {
			err = -EINVAL;
			break;
		}
		if (gm_u64_to_size(ranges[i].size, &len)) {
			err = -EOVERFLOW;
			break;
		}
		err = gm_mapping_new_anon(len, GM_MAP_NORESERVE, &specs[i].mapping);
		if (err)
			break;
	}
	if (!err)
		err = gm_memory_new(specs, n, out);
	/* The view holds its own references; drop the constructors'. */
	for (i = 0; i < n; i++)
		gm_mapping_put(specs[i].mapping);
	free(specs);
	return err;
}

struct gm_memory *gm_memory_get(struct gm_memory *m)
{
	__atomic_fetch_add(&m->refs, 1, __ATOMIC_RELAXED);
	return m;
}

void gm_memory_put(struct gm_memory *m)
{
	if (m == NULL)
		return;
	/* ACQ_REL: the freeing thread sees every holder's last use. */
	if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
		memory_free(m);
}

bool gm__memory_invariants_ok(const struct gm_memory *m)
{
	uint64_t nslots, i;
	uint32_t k;

	if (m->hot.nregions == 0)
		return m->hot.max_last == 0 && m->hot.regions == &empty_region;
	for (k = 1; k < m->hot.nregions; k++)
		if (m->regions[k - 1].last >= m->regions[k].gpa) /* 1 */
			return false;
	if (m->hot.max_last != m->regions[m->hot.nregions - 1].last) /* 2 */
		return false;
	nslots = (m->hot.max_last >> m->hot.shift) + 1;
	if (m->hot.nslots != nslots)
		return false;
	for (i = 0; i < nslots; i++) {
		uint32_t first = m->slot_first[i];
		uintptr_t e = m->slots[i], bias = e & ~(uintptr_t)GM__SLOT_FLAGS;
		gm_gpa_t start = i << m->hot.shift;
		const struct gm_region_hot *r;

		if (first >= m->hot.nregions) /* 3 */
			return false;
		r = &m->regions[first];
		if (r->last < start || (first > 0 && m->regions[first - 1].last >= start))
			return false;
		if (!(e & GM__SLOT_SLOW) && /* 3a */
		    (r->gpa > start || r->last - start < ((uint64_t)1 << m->hot.shift) - 1 ||
		     (uintptr_t)r->host != bias + (uintptr_t)r->gpa))
			return false;
	}
	for (k = 0; k < m->hot.nregions; k++) { /* 4 */
		const struct gm_region_hot *r = &m->regions[k];
		uint64_t size = r->last - r->gpa + 1;

		if (m->cold[k].offset + size > gm_mapping_size(m->cold[k].mapping))
			return false;
		if (r->dirty && r->dirty_offset + size > r->dirty->npages * GM_PAGE_SIZE)
			return false;
	}
	return true;
}

/* ---- introspection --------------------------------------------------- */

size_t gm_memory_region_count(const struct gm_memory *m)
{
	return m->hot.nregions;
}

static void fill_info(const struct gm_memory *m, uint32_t i, struct gm_region_info *out)
{
	const struct gm_region_hot *r = &m->regions[i];

	out->gpa = r->gpa;
	out->size = r->last - r->gpa + 1;
	out->host = r->host;
	out->flags = r->flags;
	out->mapping = m->cold[i].mapping;
	out->offset = m->cold[i].offset;
	out->dirty = (struct gm_dirty *)(void *)r->dirty;
	out->dirty_offset = r->dirty_offset;
}

int gm_memory_region(const struct gm_memory *m, size_t index, struct gm_region_info *out)
{
	if (out == NULL)
		return -EINVAL;
	if (index >= m->hot.nregions)
		return -ENOENT;
	fill_info(m, (uint32_t)index, out);
	return 0;
}

int gm_memory_find(const struct gm_memory *m, gm_gpa_t gpa, struct gm_region_info *out)
{
	const struct gm_region_hot *r;

	if (out == NULL)
		return -EINVAL;
	r = gm__region_of(m, gpa);
	if (r == NULL)
		return -EFAULT;
	fill_info(m, (uint32_t)(r - m->regions), out);
	return 0;
}

uint64_t gm_memory_total_size(const struct gm_memory *m)
{
	return m->total;
}

int gm_memory_last_addr(const struct gm_memory *m, gm_gpa_t *last)
{
	if (last == NULL)
		return -EINVAL;
	if (m->hot.nregions == 0)
		return -ENOENT;
	*last = m->hot.max_last;
	return 0;
}

/* ---- range walking --------------------------------------------------- */

/*
 * The region holding @gpa and, in *@n, how many of the @len (> 0) bytes
 * from @gpa lie in it. NULL if @gpa is in no region.
 */
static const struct gm_region_hot *piece(const struct gm_memory *m, gm_gpa_t gpa, size_t len,
					 size_t *n)
{
	const struct gm_region_hot *r = gm__region_of(m, gpa);

	if (r == NULL)
		return NULL;
	/* r->last - gpa is the count after @gpa; compare without adding 1. */
	*n = r->last - gpa >= (uint64_t)(len - 1) ? len : (size_t)(r->last - gpa + 1);
	return r;
}

/*
 * How far [@gpa, @gpa + @len) can be accessed: *@ok is the number of bytes
 * from @gpa that can (all of them on success). Returns 0, -EFAULT at a
 * hole, the end of RAM or 2^64, or -EACCES at a read-only byte if @write.
 */
static int check_range(const struct gm_memory *m, gm_gpa_t gpa, size_t len, bool write, size_t *ok)
{
	size_t done = 0, n = 0;

	while (done < len) {
		const struct gm_region_hot *r;
		gm_gpa_t cur;

		if (gm_add_overflow_u64(gpa, done, &cur)) /* the range wraps past 2^64 */
			break;
		r = piece(m, cur, len - done, &n);
		if (r == NULL)
			break;
		if (write && (r->flags & GM_REGION_READONLY)) {
			*ok = done;
			return -EACCES;
		}
		done += n;
	}
	*ok = done;
	return done == len ? 0 : -EFAULT;
}

/* Mark [@gpa, @gpa + @n) of region @r dirty if it is tracked. */
static inline void mark(const struct gm_region_hot *r, gm_gpa_t gpa, size_t n)
{
	if (r->dirty != NULL)
		gm__dirty_mark_tracked((struct gm_dirty *)(void *)r->dirty,
				       gpa - r->gpa + r->dirty_offset, n);
}

/* The host address of @gpa in @r. */
static inline unsigned char *hva(const struct gm_region_hot *r, gm_gpa_t gpa)
{
	return r->host + (size_t)(gpa - r->gpa);
}

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
	int err;

	if (len == 0)
		return 0;
	if (buf == NULL)
		return -EINVAL;
	/* Common case: one region, one memcpy. */
	r = piece(m, gpa, len, &n);
	if (r != NULL && n == len) {
		memcpy(buf, hva(r, gpa), len);
		return 0;
	}
	err = check_range(m, gpa, len, false, &ok);
	if (err)
		return err;
	copy_checked(m, gpa, buf, len, false);
	return 0;
}

int gm_write(const struct gm_memory *m, gm_gpa_t gpa, const void *buf, size_t len)
{
	const struct gm_region_hot *r;
	size_t n, ok;
	int err;

	if (len == 0)
		return 0;
	if (buf == NULL)
		return -EINVAL;
	r = piece(m, gpa, len, &n);
	if (r != NULL && n == len && !(r->flags & GM_REGION_READONLY)) {
		memcpy(hva(r, gpa), buf, len);
		mark(r, gpa, len);
		return 0;
	}
	err = check_range(m, gpa, len, true, &ok);
	if (err)
		return err;
	copy_checked(m, gpa, (void *)(uintptr_t)buf, len, true);
	return 0;
}

int gm_read_partial(const struct gm_memory *m, gm_gpa_t gpa, void *buf, size_t len, size_t *done)
{
	size_t ok;
	int err;

	if (done == NULL)
		return -EINVAL;
	*done = 0;
	if (buf == NULL && len > 0)
		return -EINVAL;
	err = check_range(m, gpa, len, false, &ok);
	copy_checked(m, gpa, buf, ok, false);
	*done = ok;
	return err;
}

int gm_write_partial(const struct gm_memory *m, gm_gpa_t gpa, const void *buf, size_t len,
		     size_t *done)
{
	size_t ok;
	int err;

	if (done == NULL)
		return -EINVAL;
	*done = 0;
	if (buf == NULL && len > 0)
		return -EINVAL;
	err = check_range(m, gpa, len, true, &ok);
	copy_checked(m, gpa, (void *)(uintptr_t)buf, ok, true);
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
	void *p;

	if (out == NULL)
		return -EINVAL;
	p = word_ptr(m, gpa, size, &r);
	if (p == NULL)
		return gm_read(m, gpa, out, size);
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
	return 0;
}

/* The write counterpart of read_word(); @val points at a host-order word. */
static int write_word(const struct gm_memory *m, gm_gpa_t gpa, const void *val, unsigned size)
{
	const struct gm_region_hot *r;
	void *p = word_ptr(m, gpa, size, &r);

	if (p == NULL || (r->flags & GM_REGION_READONLY))
		return gm_write(m, gpa, val, size);
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
	gm__mark_word(r, gpa);
	return 0;
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

/* ---- atomics --------------------------------------------------------- */

static bool load_order_ok(int mo)
{
	return mo == __ATOMIC_RELAXED || mo == __ATOMIC_CONSUME || mo == __ATOMIC_ACQUIRE ||
	       mo == __ATOMIC_SEQ_CST;
}

static bool store_order_ok(int mo)
{
	return mo == __ATOMIC_RELAXED || mo == __ATOMIC_RELEASE || mo == __ATOMIC_SEQ_CST;
}

static bool rmw_order_ok(int mo)
{
	return mo >= __ATOMIC_RELAXED && mo <= __ATOMIC_SEQ_CST;
}

/* The strongest load ordering @mo (a read-modify-write order) allows on failure. */
static int failure_order(int mo)
{
	if (mo == __ATOMIC_RELEASE)
		return __ATOMIC_RELAXED;
	if (mo == __ATOMIC_ACQ_REL)
		return __ATOMIC_ACQUIRE;
	return mo;
}

/*
 * The host address of the aligned @size-byte guest word at @gpa for an
 * atomic access, or the errno the header documents.
 */
static int atomic_ptr(const struct gm_memory *m, gm_gpa_t gpa, unsigned size, bool write,
		      const struct gm_region_hot **rp, void **p)
{
	const struct gm_region_hot *r;
	unsigned char *h;

	if (gpa & (size - 1))
		return -EINVAL;
	r = gm__region_of(m, gpa);
	if (r == NULL)
		return -EFAULT;
	if (r->last - gpa < size - 1)
		return -EINVAL; /* the word continues in another region */
	h = hva(r, gpa);
	if ((uintptr_t)h & (size - 1))
		return -EINVAL;
	if (write && (r->flags & GM_REGION_READONLY))
		return -EACCES;
	*rp = r;
	*p = h;
	return 0;
}

/*
 * The __atomic builtins take a run-time order (GCC and clang treat one as
 * seq_cst at worst); loads and stores switch to constants so relaxed and
 * acquire/release accesses stay as cheap as they should.
 */
static int atomic_load(const struct gm_memory *m, gm_gpa_t gpa, unsigned size, uint64_t *out,
		       int mo)
{
	const struct gm_region_hot *r;
	void *p;
	int err;

	if (!load_order_ok(mo))
		return -EINVAL;
	err = atomic_ptr(m, gpa, size, false, &r, &p);
	if (err)
		return err;
	if (size == 4)
		*out = mo == __ATOMIC_RELAXED	? __atomic_load_n((uint32_t *)p, __ATOMIC_RELAXED)
		       : mo == __ATOMIC_SEQ_CST ? __atomic_load_n((uint32_t *)p, __ATOMIC_SEQ_CST)
						: __atomic_load_n((uint32_t *)p, __ATOMIC_ACQUIRE);
	else
		*out = mo == __ATOMIC_RELAXED	? __atomic_load_n((uint64_t *)p, __ATOMIC_RELAXED)
		       : mo == __ATOMIC_SEQ_CST ? __atomic_load_n((uint64_t *)p, __ATOMIC_SEQ_CST)
						: __atomic_load_n((uint64_t *)p, __ATOMIC_ACQUIRE);
	return 0;
}

static int atomic_store(const struct gm_memory *m, gm_gpa_t gpa, unsigned size, uint64_t val,
			int mo)
{
	const struct gm_region_hot *r;
	void *p;
	int err;

	if (!store_order_ok(mo))
		return -EINVAL;
	err = atomic_ptr(m, gpa, size, true, &r, &p);
	if (err)
		return err;
	if (size == 4) {
		if (mo == __ATOMIC_RELAXED)
			__atomic_store_n((uint32_t *)p, (uint32_t)val, __ATOMIC_RELAXED);
		else if (mo == __ATOMIC_RELEASE)
			__atomic_store_n((uint32_t *)p, (uint32_t)val, __ATOMIC_RELEASE);
		else
			__atomic_store_n((uint32_t *)p, (uint32_t)val, __ATOMIC_SEQ_CST);
	} else {
		if (mo == __ATOMIC_RELAXED)
			__atomic_store_n((uint64_t *)p, val, __ATOMIC_RELAXED);
		else if (mo == __ATOMIC_RELEASE)
			__atomic_store_n((uint64_t *)p, val, __ATOMIC_RELEASE);
		else
			__atomic_store_n((uint64_t *)p, val, __ATOMIC_SEQ_CST);
	}
	gm__mark_word(r, gpa);
	return 0;
}

enum rmw_op { RMW_ADD, RMW_OR };

/* fetch_add / fetch_or on a 4- or 8-byte word; the previous value in *@old. */
static int atomic_rmw(const struct gm_memory *m, gm_gpa_t gpa, unsigned size, enum rmw_op op,
		      uint64_t val, uint64_t *old, int mo)
{
	const struct gm_region_hot *r;
	void *p;
	int err;

	if (!rmw_order_ok(mo))
		return -EINVAL;
	err = atomic_ptr(m, gpa, size, true, &r, &p);
	if (err)
		return err;
	if (size == 4)
		*old = op == RMW_ADD ? __atomic_fetch_add((uint32_t *)p, (uint32_t)val, mo)
				     : __atomic_fetch_or((uint32_t *)p, (uint32_t)val, mo);
	else
		*old = op == RMW_ADD ? __atomic_fetch_add((uint64_t *)p, val, mo)
				     : __atomic_fetch_or((uint64_t *)p, val, mo);
	gm__mark_word(r, gpa);
	return 0;
}

/* Compare-and-swap; 0 if swapped, -EAGAIN with *@expected updated if not. */
static int atomic_cmpxchg(const struct gm_memory *m, gm_gpa_t gpa, unsigned size,
			  uint64_t *expected, uint64_t desired, int mo)
{
	const struct gm_region_hot *r;
	bool swapped;
	void *p;
	int err;

	if (!rmw_order_ok(mo))
		return -EINVAL;
	err = atomic_ptr(m, gpa, size, true, &r, &p);
	if (err)
		return err;
	if (size == 4) {
		uint32_t e = (uint32_t)*expected;

		swapped = __atomic_compare_exchange_n((uint32_t *)p, &e, (uint32_t)desired, false,
						      mo, failure_order(mo));
		*expected = e;
	} else {
		swapped = __atomic_compare_exchange_n((uint64_t *)p, expected, desired, false, mo,
						      failure_order(mo));
	}
	if (!swapped)
		return -EAGAIN;
	gm__mark_word(r, gpa);
	return 0;
}

int gm_atomic_load_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t *out, int memorder)
{
	uint64_t v;
	int err;

	if (out == NULL)
		return -EINVAL;
	err = atomic_load(m, gpa, 4, &v, memorder);
	if (!err)
		*out = (uint32_t)v;
	return err;
}

int gm_atomic_load_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t *out, int memorder)
{
	if (out == NULL)
		return -EINVAL;
	return atomic_load(m, gpa, 8, out, memorder);
}

int gm_atomic_store_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val, int memorder)
{
	return atomic_store(m, gpa, 4, val, memorder);
}

int gm_atomic_store_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val, int memorder)
{
	return atomic_store(m, gpa, 8, val, memorder);
}

int gm_atomic_fetch_add_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val, uint32_t *old,
			    int memorder)
{
	uint64_t prev;
	int err = atomic_rmw(m, gpa, 4, RMW_ADD, val, &prev, memorder);

	if (!err && old)
		*old = (uint32_t)prev;
	return err;
}

int gm_atomic_fetch_add_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val, uint64_t *old,
			    int memorder)
{
	uint64_t prev;
	int err = atomic_rmw(m, gpa, 8, RMW_ADD, val, &prev, memorder);

	if (!err && old)
		*old = prev;
	return err;
}

int gm_atomic_fetch_or_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val, uint32_t *old,
			   int memorder)
{
	uint64_t prev;
	int err = atomic_rmw(m, gpa, 4, RMW_OR, val, &prev, memorder);

	if (!err && old)
		*old = (uint32_t)prev;
	return err;
}

int gm_atomic_fetch_or_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val, uint64_t *old,
			   int memorder)
{
	uint64_t prev;
	int err = atomic_rmw(m, gpa, 8, RMW_OR, val, &prev, memorder);

	if (!err && old)
		*old = prev;
	return err;
}

int gm_atomic_cmpxchg_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t *expected,
			  uint32_t desired, int memorder)
{
	uint64_t e;
	int err;

	if (expected == NULL)
		return -EINVAL;
	e = *expected;
	err = atomic_cmpxchg(m, gpa, 4, &e, desired, memorder);
	if (err == -EAGAIN)
		*expected = (uint32_t)e;
	return err;
}

int gm_atomic_cmpxchg_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t *expected,
			  uint64_t desired, int memorder)
{
	if (expected == NULL)
		return -EINVAL;
	return atomic_cmpxchg(m, gpa, 8, expected, desired, memorder);
}

/* ---- fill, copy ------------------------------------------------------ */

int gm_fill(const struct gm_memory *m, gm_gpa_t gpa, int byte, size_t len)
{
	size_t done = 0, n = 0;
	int err;

	if (len == 0)
		return 0;
	err = check_range(m, gpa, len, true, &n);
	if (err)
		return err;
	while (done < len) {
		const struct gm_region_hot *r = piece(m, gpa + done, len - done, &n);

		memset(hva(r, gpa + done), byte, n);
		mark(r, gpa + done, n);
		done += n;
	}
	return 0;
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
	int err;

	if (len == 0)
		return 0;
	err = check_range(m, src, len, false, &n);
	if (!err)
		err = check_range(m, dst, len, true, &n);
	if (err)
		return err;
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
		return 0;
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
	return 0;
}

/* ---- translation ----------------------------------------------------- */

void *gm_host_ptr(const struct gm_memory *m, gm_gpa_t gpa, size_t len)
{
	const struct gm_region_hot *r = gm__region_of(m, gpa);

	/* len 0 inside a region is that byte's address; len - 1 would wrap. */
	if (r == NULL || (len != 0 && r->last - gpa < len - 1))
		return NULL;
	return hva(r, gpa);
}

void *gm_host_ptr_write(const struct gm_memory *m, gm_gpa_t gpa, size_t len)
{
	const struct gm_region_hot *r = gm__region_of(m, gpa);

	if (r == NULL || (r->flags & GM_REGION_READONLY) || (len != 0 && r->last - gpa < len - 1))
		return NULL;
	return hva(r, gpa);
}

/*
 * Fill up to @max iovecs for the checked range [@gpa, @gpa + @len), merging
 * host-contiguous neighbours. Sets *@used; returns the bytes covered.
 * With @needed not NULL, keeps counting the entries past @max it would need.
 */
static size_t fill_iov(const struct gm_memory *m, gm_gpa_t gpa, size_t len, struct iovec *iov,
		       size_t max, size_t *used, size_t *needed)
{
	size_t done = 0, k = 0, total = 0, covered = 0, n;
	unsigned char *prev_end = NULL;

	while (done < len) {
		const struct gm_region_hot *r = piece(m, gpa + done, len - done, &n);
		unsigned char *h = hva(r, gpa + done);

		if (total > 0 && h == prev_end) {
			if (total <= max)
				iov[total - 1].iov_len += n;
		} else {
			total++;
			if (total <= max) {
				iov[total - 1].iov_base = h;
				iov[total - 1].iov_len = n;
			}
		}
		if (total <= max) {
			k = total;
			covered = done + n;
		} else if (needed == NULL) {
			break;
		}
		prev_end = h + n;
		done += n;
	}
	*used = k;
	if (needed)
		*needed = total;
	return covered;
}

static int to_iovec(const struct gm_memory *m, gm_gpa_t gpa, size_t len, struct iovec *iov,
		    size_t max, size_t *n, bool write)
{
	size_t ok, used, needed;
	int err;

	if (n == NULL || (iov == NULL && max > 0))
		return -EINVAL;
	*n = 0;
	if (len == 0)
		return 0;
	err = check_range(m, gpa, len, write, &ok);
	if (err)
		return err;
	fill_iov(m, gpa, len, iov, max, &used, &needed);
	if (needed > max) {
		*n = needed;
		return -ENOBUFS;
	}
	*n = used;
	return 0;
}

int gm_to_iovec(const struct gm_memory *m, gm_gpa_t gpa, size_t len, struct iovec *iov, size_t max,
		size_t *n)
{
	return to_iovec(m, gpa, len, iov, max, n, false);
}

int gm_to_iovec_write(const struct gm_memory *m, gm_gpa_t gpa, size_t len, struct iovec *iov,
		      size_t max, size_t *n)
{
	return to_iovec(m, gpa, len, iov, max, n, true);
}

int gm_mark_dirty(const struct gm_memory *m, gm_gpa_t gpa, size_t len)
{
	size_t done = 0, n = 0;

	while (done < len) {
		const struct gm_region_hot *r;
		gm_gpa_t cur;

		if (gm_add_overflow_u64(gpa, done, &cur))
			break;
		r = piece(m, cur, len - done, &n);
		if (r == NULL) {
			/* Skip the hole: continue at the next region, if any. */
			const struct gm_region_hot *h = &m->regions[0];
			uint32_t i;
			uint64_t skip = 0;

			for (i = 0; i < m->hot.nregions; i++, h++) {
				if (h->gpa > cur) {
					skip = h->gpa - cur;
					break;
				}
			}
			if (skip == 0 || skip >= len - done)
				break;
			done += (size_t)skip;
			continue;
		}
		mark(r, cur, n);
		done += n;
	}
	return 0;
}

/* ---- fd I/O ---------------------------------------------------------- */

static int fd_io(const struct gm_memory *m, gm_gpa_t gpa, int fd, int64_t offset, size_t len,
		 size_t *done, bool to_guest)
{
	struct iovec iov[FD_IOV_BATCH];
	size_t ok;
	int err;

	if (done == NULL)
		return -EINVAL;
	*done = 0;
	if (fd < 0 || offset < -1)
		return -EINVAL;
	if (offset >= 0 && (uint64_t)len > (uint64_t)INT64_MAX - (uint64_t)offset)
		return -EOVERFLOW;
	err = check_range(m, gpa, len, to_guest, &ok);
	if (err)
		return err;
	while (*done < len) {
		size_t used, chunk = len - *done;
		ssize_t r;

		/* One call moves at most SSIZE_MAX bytes (a 32-bit host's limit). */
		if (chunk > (size_t)SSIZE_MAX)
			chunk = (size_t)SSIZE_MAX;
		chunk = fill_iov(m, gpa + *done, chunk, iov, FD_IOV_BATCH, &used, NULL);
		if (to_guest)
			r = offset >= 0
				? preadv(fd, iov, (int)used, (off_t)(offset + (int64_t)*done))
				: readv(fd, iov, (int)used);
		else
			r = offset >= 0
				? pwritev(fd, iov, (int)used, (off_t)(offset + (int64_t)*done))
				: writev(fd, iov, (int)used);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		if (r == 0) {
			if (!to_guest)
				return -EIO; /* a write that moves nothing cannot progress */
			break;		     /* end of file */
		}
		if (to_guest)
			gm_mark_dirty(m, gpa + *done, (size_t)r);
		*done += (size_t)r;
	}
	return 0;
}

int gm_read_from_fd(const struct gm_memory *m, gm_gpa_t gpa, int fd, int64_t offset, size_t len,
		    size_t *done)
{
	return fd_io(m, gpa, fd, offset, len, done, true);
}

int gm_write_to_fd(const struct gm_memory *m, gm_gpa_t gpa, int fd, int64_t offset, size_t len,
		   size_t *done)
{
	return fd_io(m, gpa, fd, offset, len, done, false);
}
