/*
 * vhost.c - vhost-user memory tables on top of the memory layer.
 *
 * A table maps every region the front end sent (one shared mapping of its
 * fd per region) and builds one gm_memory over them, so the data path of a
 * back end is the ordinary one. It also keeps the regions sorted by user
 * address to translate the ring addresses the front end gives in that form.
 *
 * gm_vhost_mem publishes the table in force. Readers take a reference in a
 * short RCU read-side section (load the pointer, increment the count), then
 * work on the table without RCU for as long as their requests last.
 * Writers swap the pointer, wait for a grace period (no reader can still be
 * between its load and its increment) and drop the holder's reference; the
 * last reader to put the table unmaps it.
 *
 * Invariants (gm__vhost_invariants_ok() in vhost-internal.h checks 2-4 of a
 * table; code cites them):
 *  1. A table is immutable after gm_vhost_table_new() / build_table().
 *  2. Within a table no two regions share a guest byte or a user byte, every
 *     region is non-empty and none of gpa + size, uaddr + size and
 *     mmap_offset + size wraps; a region of a regular file lies inside
 *     the file as it was when the table was built.
 *  3. by_gpa is sorted by gpa, by_uaddr is sorted by uaddr and holds each
 *     region exactly once.
 *  4. vm->cur holds one reference on the table it points to, or is NULL;
 *     a table that left vm->cur is put only after a grace period.
 */
#include <guestmem/vhost.h>

#include "vhost-internal.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct vhost_entry {
	gm_gpa_t gpa;
	uint64_t size;
	uint64_t uaddr;
	uint64_t mmap_offset;
	struct gm_mapping *map; /* one reference; maps from the page holding mmap_offset */
	size_t delta;		/* offset of @gpa's byte in @map */
};

struct gm_vhost_table {
	unsigned long refs; /* __atomic only */
	struct gm_memory *mem;
	size_t n;
	struct vhost_entry *by_gpa;	     /* invariant 3 */
	const struct vhost_entry **by_uaddr; /* invariant 3 */
};

struct gm_vhost_mem {
	pthread_mutex_t lock;	    /* serialises writers; never held by readers */
	struct gm_vhost_table *cur; /* invariant 4; __atomic load/exchange */
	size_t max;
	uint64_t generation; /* __atomic; written under @lock */
};

/*
 * Checks of one region that need no other region (invariant 2), all before
 * anything is mapped. The only check of a region's own numbers: every path
 * that maps one (gm_vhost_table_new(), gm_vhost_mem_add()) calls it first.
 */
static int check_region(const struct gm_vhost_region *r)
{
	uint64_t last;
	size_t len;

	if (r->size == 0 || r->fd < 0)
		return -EINVAL;
	if (gm_add_overflow_u64(r->gpa, r->size - 1, &last) ||
	    gm_add_overflow_u64(r->uaddr, r->size - 1, &last) ||
	    gm_add_overflow_u64(r->mmap_offset, r->size - 1, &last))
		return -EOVERFLOW;
	return gm_u64_to_size(r->size, &len);
}

/*
 * Map @r into *@e. The mapping starts at the page holding mmap_offset.
 * Called after check_region(@r) passed.
 */
static int map_region(const struct gm_vhost_region *r, struct vhost_entry *e)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t start = gm_align_down(r->mmap_offset, page);
	size_t delta = (size_t)(r->mmap_offset - start); /* < page */
	size_t len = (size_t)r->size;			 /* fits: check_region() */
	size_t total;
	struct stat st;

	if (gm_add_overflow_size(len, delta, &total))
		return -EOVERFLOW;
	/*
	 * A window past the end of a file maps, and the first access there
	 * raises SIGBUS in whichever thread touches it (invariant 2). The
	 * front end can still shrink the file later: GM_MAP_PEER contains
	 * that (mapping.h) unless the memfd is sealed against it.
	 */
	if (fstat(r->fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode) && (st.st_size < 0 || r->size > (uint64_t)st.st_size ||
				    r->mmap_offset > (uint64_t)st.st_size - r->size))
		return -ERANGE;
	e->gpa = r->gpa;
	e->size = r->size;
	e->uaddr = r->uaddr;
	e->mmap_offset = r->mmap_offset;
	e->delta = delta;
	return gm_mapping_new_fd(r->fd, start, total, GM_MAP_SHARED | GM_MAP_PEER, &e->map);
}

static int cmp_gpa(const void *a, const void *b)
{
	const struct vhost_entry *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

static int cmp_uaddr(const void *a, const void *b)
{
	const struct vhost_entry *x = *(const struct vhost_entry *const *)a;
	const struct vhost_entry *y = *(const struct vhost_entry *const *)b;

	return x->uaddr < y->uaddr ? -1 : x->uaddr > y->uaddr;
}

static void free_table(struct gm_vhost_table *t)
{
	size_t i;

	gm_memory_put(t->mem);
	for (i = 0; i < t->n; i++)
		gm_mapping_put(t->by_gpa[i].map);
	free(t->by_gpa);
	free(t->by_uaddr);
	free(t);
}

/*
 * Build a table from @n mapped entries, taking over their mapping
 * references whatever the outcome. Checks invariants 2 and 3 across regions.
 */
static int build_table(struct vhost_entry *entries, size_t n, size_t max,
		       struct gm_vhost_table **out)
{
	struct gm_region_spec *specs = NULL;
	struct gm_vhost_table *t;
	size_t i;
	int ret = -ENOMEM;

	t = calloc(1, sizeof(*t));
	if (!t)
		goto err_entries;
	t->refs = 1;
	t->n = n;
	t->by_gpa = entries;
	entries = NULL;
	if (n > max) {
		ret = -E2BIG;
		goto err_table;
	}
	t->by_uaddr = calloc(n ? n : 1, sizeof(*t->by_uaddr));
	specs = calloc(n ? n : 1, sizeof(*specs));
	if (!t->by_uaddr || !specs)
		goto err_table;
	if (n)
		qsort(t->by_gpa, n, sizeof(*t->by_gpa), cmp_gpa);
	for (i = 0; i < n; i++)
		t->by_uaddr[i] = &t->by_gpa[i];
	if (n)
		qsort(t->by_uaddr, n, sizeof(*t->by_uaddr), cmp_uaddr);
	ret = -EEXIST;
	for (i = 1; i < n; i++) {
		const struct vhost_entry *a = &t->by_gpa[i - 1], *b = &t->by_gpa[i];
		const struct vhost_entry *u = t->by_uaddr[i - 1], *v = t->by_uaddr[i];

		/* Sorted and non-wrapping (invariant 2): only neighbours can overlap. */
		if (gm_ranges_overlap(a->gpa, a->size, b->gpa, b->size) ||
		    gm_ranges_overlap(u->uaddr, u->size, v->uaddr, v->size))
			goto err_table;
	}
	for (i = 0; i < n; i++) {
		specs[i].gpa = t->by_gpa[i].gpa;
		specs[i].size = t->by_gpa[i].size;
		specs[i].mapping = t->by_gpa[i].map;
		specs[i].offset = t->by_gpa[i].delta;
	}
	ret = gm_memory_new(specs, n, &t->mem);
	if (ret)
		goto err_table;
	free(specs);
	assert(gm__vhost_invariants_ok(t));
	*out = t;
	return 0;

err_table:
	free(specs);
	free_table(t);
	return ret;
err_entries:
	for (i = 0; i < n; i++)
		gm_mapping_put(entries[i].map);
	free(entries);
	return ret;
}

int gm_vhost_table_new(const struct gm_vhost_region *regions, size_t n, size_t max_regions,
		       struct gm_vhost_table **out)
{
	struct vhost_entry *entries;
	size_t i;
	int ret;

	if (!out || (!regions && n > 0))
		return -EINVAL;
	if (n > max_regions)
		return -E2BIG;
	/* All cheap checks before the first mmap. */
	for (i = 0; i < n; i++) {
		ret = check_region(&regions[i]);
		if (ret)
			return ret;
	}
	entries = calloc(n ? n : 1, sizeof(*entries));
	if (!entries)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		ret = map_region(&regions[i], &entries[i]);
		if (ret)
			goto err_unmap;
	}
	return build_table(entries, n, max_regions, out);

err_unmap:
	while (i--)
		gm_mapping_put(entries[i].map);
	free(entries);
	return ret;
}

struct gm_vhost_table *gm_vhost_table_get(struct gm_vhost_table *t)
{
	__atomic_fetch_add(&t->refs, 1, __ATOMIC_RELAXED);
	return t;
}

void gm_vhost_table_put(struct gm_vhost_table *t)
{
	/* ACQ_REL: the last put sees every other holder's accesses done. */
	if (t && __atomic_sub_fetch(&t->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free_table(t);
}

const struct gm_memory *gm_vhost_table_memory(const struct gm_vhost_table *t)
{
	return t->mem;
}

bool gm_vhost_table_truncated(const struct gm_vhost_table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (gm_mapping_truncated(t->by_gpa[i].map))
			return true;
	return false;
}

size_t gm_vhost_table_region_count(const struct gm_vhost_table *t)
{
	return t->n;
}

int gm_vhost_table_region(const struct gm_vhost_table *t, size_t index, struct gm_vhost_region *out)
{
	const struct vhost_entry *e;

	if (!out)
		return -EINVAL;
	if (index >= t->n)
		return -ENOENT;
	e = &t->by_gpa[index];
	out->gpa = e->gpa;
	out->size = e->size;
	out->uaddr = e->uaddr;
	out->mmap_offset = e->mmap_offset;
	out->fd = gm_mapping_fd(e->map);
	return 0;
}

/*
 * The region holding all of [@addr, @addr + @size) in user addresses
 * (@by_uaddr) or guest addresses, or NULL. Binary search for the last
 * region starting at or below @addr (invariant 3); regions do not overlap
 * (invariant 2), so only that one can hold @addr.
 */
static const struct vhost_entry *find_entry(const struct gm_vhost_table *t, bool by_uaddr,
					    uint64_t addr, uint64_t size)
{
	const struct vhost_entry *e;
	size_t lo = 0, hi = t->n;
	uint64_t start;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		e = by_uaddr ? t->by_uaddr[mid] : &t->by_gpa[mid];
		if ((by_uaddr ? e->uaddr : e->gpa) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return NULL;
	e = by_uaddr ? t->by_uaddr[lo - 1] : &t->by_gpa[lo - 1];
	start = by_uaddr ? e->uaddr : e->gpa;
	return gm_range_contains(start, e->size, addr, size) ? e : NULL;
}

int gm_vhost_uaddr_to_gpa(const struct gm_vhost_table *t, uint64_t uaddr, uint64_t size,
			  gm_gpa_t *gpa)
{
	const struct vhost_entry *e;

	if (size == 0 || !gpa)
		return -EINVAL;
	e = find_entry(t, true, uaddr, size);
	if (!e)
		return -EFAULT;
	*gpa = e->gpa + (uaddr - e->uaddr);
	return 0;
}

int gm_vhost_gpa_to_uaddr(const struct gm_vhost_table *t, gm_gpa_t gpa, uint64_t size,
			  uint64_t *uaddr)
{
	const struct vhost_entry *e;

	if (size == 0 || !uaddr)
		return -EINVAL;
	e = find_entry(t, false, gpa, size);
	if (!e)
		return -EFAULT;
	*uaddr = e->uaddr + (gpa - e->gpa);
	return 0;
}

int gm_vhost_mem_new(size_t max_regions, struct gm_vhost_mem **out)
{
	struct gm_vhost_mem *vm;

	if (!out || max_regions == 0 || max_regions > GM_VHOST_REGIONS_MAX)
		return -EINVAL;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	pthread_mutex_init(&vm->lock, NULL);
	vm->max = max_regions;
	*out = vm;
	return 0;
}

/* Publish @t (may be NULL) and release the old table. Called with vm->lock held. */
static void publish(struct gm_vhost_mem *vm, struct gm_vhost_table *t)
{
	struct gm_vhost_table *old;

	/*
	 * Release: the table's contents are visible before its pointer. Pairs
	 * with the acquire load in gm_vhost_mem_table().
	 */
	old = __atomic_exchange_n(&vm->cur, t, __ATOMIC_ACQ_REL);
	__atomic_store_n(&vm->generation, vm->generation + 1, __ATOMIC_RELAXED);
	if (old) {
		/* A reader may be between its load of @old and its increment (invariant 4). */
		gm_rcu_synchronize();
		gm_vhost_table_put(old);
	}
}

void gm_vhost_mem_free(struct gm_vhost_mem *vm)
{
	if (!vm)
		return;
	gm_vhost_mem_clear(vm);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

int gm_vhost_mem_set(struct gm_vhost_mem *vm, const struct gm_vhost_region *regions, size_t n)
{
	struct gm_vhost_table *t;
	int ret;

	if (!vm)
		return -EINVAL;
	ret = gm_vhost_table_new(regions, n, vm->max, &t);
	if (ret)
		return ret;
	pthread_mutex_lock(&vm->lock);
	publish(vm, t);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

/*
 * The entries of the table in force, each with a new mapping reference,
 * plus @extra free slots. Called with vm->lock held.
 */
static int copy_entries(const struct gm_vhost_mem *vm, size_t extra, struct vhost_entry **out,
			size_t *n)
{
	const struct gm_vhost_table *cur = vm->cur;
	size_t have = cur ? cur->n : 0, i;
	struct vhost_entry *e;

	e = calloc(have + extra ? have + extra : 1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (i = 0; i < have; i++) {
		e[i] = cur->by_gpa[i];
		gm_mapping_get(e[i].map);
	}
	*out = e;
	*n = have;
	return 0;
}

int gm_vhost_mem_add(struct gm_vhost_mem *vm, const struct gm_vhost_region *region)
{
	struct gm_vhost_table *t;
	struct vhost_entry *e;
	size_t n, i;
	int ret;

	if (!vm || !region)
		return -EINVAL;
	ret = check_region(region);
	if (ret)
		return ret;
	pthread_mutex_lock(&vm->lock);
	ret = copy_entries(vm, 1, &e, &n);
	if (ret)
		goto out;
	if (n + 1 > vm->max) {
		ret = -E2BIG;
		goto err_entries;
	}
	ret = map_region(region, &e[n]);
	if (ret)
		goto err_entries;
	ret = build_table(e, n + 1, vm->max, &t);
	if (ret)
		goto out;
	publish(vm, t);
	goto out;

err_entries:
	for (i = 0; i < n; i++)
		gm_mapping_put(e[i].map);
	free(e);
out:
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

int gm_vhost_mem_remove(struct gm_vhost_mem *vm, const struct gm_vhost_region *region)
{
	struct gm_vhost_table *t;
	struct vhost_entry *e;
	size_t n, i, hit = SIZE_MAX;
	int ret;

	if (!vm || !region)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	ret = copy_entries(vm, 0, &e, &n);
	if (ret)
		goto out;
	for (i = 0; i < n; i++)
		if (e[i].gpa == region->gpa && e[i].size == region->size &&
		    e[i].uaddr == region->uaddr)
			hit = i;
	if (hit == SIZE_MAX) {
		for (i = 0; i < n; i++)
			gm_mapping_put(e[i].map);
		free(e);
		ret = -ENOENT;
		goto out;
	}
	gm_mapping_put(e[hit].map);
	memmove(&e[hit], &e[hit + 1], (n - hit - 1) * sizeof(*e));
	ret = build_table(e, n - 1, vm->max, &t);
	if (!ret)
		publish(vm, t);
out:
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

void gm_vhost_mem_clear(struct gm_vhost_mem *vm)
{
	if (!vm)
		return;
	pthread_mutex_lock(&vm->lock);
	if (vm->cur)
		publish(vm, NULL);
	pthread_mutex_unlock(&vm->lock);
}

struct gm_vhost_table *gm_vhost_mem_table(struct gm_vhost_mem *vm)
{
	struct gm_vhost_table *t;

	gm_rcu_read_lock();
	/* Acquire: pairs with the exchange in publish(). */
	t = __atomic_load_n(&vm->cur, __ATOMIC_ACQUIRE);
	if (t)
		gm_vhost_table_get(t);
	gm_rcu_read_unlock();
	return t;
}

uint64_t gm_vhost_mem_generation(const struct gm_vhost_mem *vm)
{
	return __atomic_load_n(&vm->generation, __ATOMIC_RELAXED);
}

/* One entry of a table on its own (invariant 2). */
static bool entry_ok(const struct vhost_entry *e)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE), last;
	size_t len, total;

	if (e->size == 0 || !e->map || gm_add_overflow_u64(e->gpa, e->size - 1, &last) ||
	    gm_add_overflow_u64(e->uaddr, e->size - 1, &last) ||
	    gm_add_overflow_u64(e->mmap_offset, e->size - 1, &last) ||
	    gm_u64_to_size(e->size, &len))
		return false;
	/* The mapping covers the window, starting at the page holding mmap_offset. */
	return e->delta == e->mmap_offset % page &&
	       gm_mapping_fd_offset(e->map) == e->mmap_offset - e->delta &&
	       !gm_add_overflow_size(len, e->delta, &total) && total <= gm_mapping_size(e->map);
}

bool gm__vhost_invariants_ok(const struct gm_vhost_table *t)
{
	struct gm_region_info info = GM_OPTS(gm_region_info);
	size_t i, j, seen;

	if (!t || __atomic_load_n(&t->refs, __ATOMIC_RELAXED) == 0 || !t->mem ||
	    (t->n && (!t->by_gpa || !t->by_uaddr)) || gm_memory_region_count(t->mem) != t->n)
		return false;
	for (i = 0; i < t->n; i++) {
		const struct vhost_entry *e = &t->by_gpa[i], *u = t->by_uaddr[i];

		if (!entry_ok(e))
			return false;
		/* Invariant 3: by_uaddr points into by_gpa ... */
		if (u < t->by_gpa || u >= t->by_gpa + t->n)
			return false;
		/* ... both sorted, and neighbours apart, so no two regions overlap (2). */
		if (i > 0 && (t->by_gpa[i - 1].gpa + t->by_gpa[i - 1].size - 1 >= e->gpa ||
			      t->by_uaddr[i - 1]->uaddr + t->by_uaddr[i - 1]->size - 1 >= u->uaddr))
			return false;
		/* The data path's view is made of the same regions. */
		if (gm_memory_region(t->mem, i, &info) || info.gpa != e->gpa ||
		    info.size != e->size || info.mapping != e->map || info.offset != e->delta)
			return false;
	}
	/* Each region exactly once in by_uaddr (invariant 3). */
	for (i = 0; i < t->n; i++) {
		for (j = 0, seen = 0; j < t->n; j++)
			seen += t->by_uaddr[j] == &t->by_gpa[i];
		if (seen != 1)
			return false;
	}
	return true;
}

bool gm__vhost_mem_invariants_ok(struct gm_vhost_mem *vm)
{
	const struct gm_vhost_table *t;
	bool ok;

	if (!vm || vm->max == 0 || vm->max > GM_VHOST_REGIONS_MAX)
		return false;
	pthread_mutex_lock(&vm->lock);
	t = vm->cur;
	ok = !t || (t->n <= vm->max && gm__vhost_invariants_ok(t));
	pthread_mutex_unlock(&vm->lock);
	return ok;
}
