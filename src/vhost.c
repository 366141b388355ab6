/* SPDX-License-Identifier: MIT */
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
 *  5. The dirty log (gm_vhost_mem_set_log()): while vm->log is set, every
 *     table vm publishes carries it (t->log, the view's regions marking
 *     into it at their guest-physical pages) and lies inside it; while
 *     vm->logging is on, vm->log is set and enabled. A table that does not
 *     fit the log is refused while logging is on; while it is off the
 *     (stale) log is detached instead. gm_vhost_mem_set_log() returns only
 *     when every table of vm other than the one in force is freed
 *     (vm->census counts the live ones), so no thread still writes through
 *     a table that marks no log, or an older one.
 *
 * The log and the dirty layer: the log is a gm_dirty (dirty.h) whose bits
 * are the front end's shared bytes (gm_dirty_new_mapped()), so marking is
 * the data path's own, through the view's regions (gm_region_spec.dirty,
 * dirty_offset = the region's guest address); only the bitmap's storage
 * and its always-OR rule differ from a space's tracking bitmaps.
 */
#include <guestmem/vhost.h>

#include "vhost-internal.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dirty-internal.h"

/* Drop one count of @census (a table freed, or the holder); free it at 0. */
static void census_put(unsigned long *census)
{
	if (census && __atomic_sub_fetch(census, 1, __ATOMIC_ACQ_REL) == 0)
		free(census);
}

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
	gm_dirty_put(t->log);
	census_put(t->census);
	free(t);
}

/* Whether @n entries lie inside the pages of @log (invariant 5). */
bool gm__vhost_fits_log(const struct gm_dirty *log, const struct vhost_entry *e, size_t n)
{
	uint64_t pages = gm_dirty_npages(log);
	size_t i;

	for (i = 0; i < n; i++)
		/* Non-wrapping (invariant 2): the last byte's page is in the log. */
		if (((e[i].gpa + e[i].size - 1) >> GM_PAGE_SHIFT) >= pages)
			return false;
	return true;
}

/*
 * Build a table from @n mapped entries, taking over their mapping
 * references whatever the outcome. Checks invariants 2 and 3 across
 * regions. @log (may be NULL) is the log its regions mark into (-ERANGE if
 * a region leaves it); @census (may be NULL) the holder's count of tables.
 */
static int build_table(struct vhost_entry *entries, size_t n, size_t max, struct gm_dirty *log,
		       unsigned long *census, struct gm_vhost_table **out)
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
	if (census) {
		__atomic_fetch_add(census, 1, __ATOMIC_RELAXED);
		t->census = census;
	}
	if (log) {
		t->log = gm_dirty_get(log);
		if (!gm__vhost_fits_log(log, t->by_gpa, n)) {
			ret = -ERANGE;
			goto err_table;
		}
	}
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
		/* Guest-physical pages of the log (invariant 5). */
		specs[i].dirty = log;
		specs[i].dirty_offset = t->by_gpa[i].gpa;
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

/* Check and map @n regions into *@out (a new array). */
static int map_entries(const struct gm_vhost_region *regions, size_t n, size_t max_regions,
		       struct vhost_entry **out)
{
	struct vhost_entry *entries;
	size_t i;
	int ret;

	if (!regions && n > 0)
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
	*out = entries;
	return 0;

err_unmap:
	while (i--)
		gm_mapping_put(entries[i].map);
	free(entries);
	return ret;
}

int gm_vhost_table_new(const struct gm_vhost_region *regions, size_t n, size_t max_regions,
		       struct gm_vhost_table **out)
{
	struct vhost_entry *entries;
	int ret;

	if (!out)
		return -EINVAL;
	ret = map_entries(regions, n, max_regions, &entries);
	if (ret)
		return ret;
	return build_table(entries, n, max_regions, NULL, NULL, out);
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
	vm->census = calloc(1, sizeof(*vm->census));
	if (!vm->census) {
		free(vm);
		return -ENOMEM;
	}
	*vm->census = 1; /* vm's own count */
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
	census_put(vm->census);
	free(vm);
}

/*
 * Build @vm's next table from @n entries (taking them over) with the log in
 * force, and publish it: invariant 5 (a table that leaves the log is
 * refused while logging is on, and detaches the stale log otherwise).
 * Called with vm->lock held.
 */
static int build_and_publish(struct gm_vhost_mem *vm, struct vhost_entry *e, size_t n)
{
	struct gm_dirty *log = vm->log;
	struct gm_vhost_table *t;
	int ret;

	if (log && !gm__vhost_fits_log(log, e, n)) {
		if (vm->logging) {
			size_t i;

			for (i = 0; i < n; i++)
				gm_mapping_put(e[i].map);
			free(e);
			return -ERANGE;
		}
		log = NULL;
	}
	ret = build_table(e, n, vm->max, log, vm->census, &t);
	if (ret)
		return ret;
	if (vm->log && !log) {
		vm->log_marked += gm__dirty_newly_set(vm->log);
		gm_dirty_put(vm->log);
		vm->log = NULL;
	}
	publish(vm, t);
	return 0;
}

int gm_vhost_mem_set(struct gm_vhost_mem *vm, const struct gm_vhost_region *regions, size_t n)
{
	struct vhost_entry *e;
	int ret;

	if (!vm)
		return -EINVAL;
	ret = map_entries(regions, n, vm->max, &e);
	if (ret)
		return ret;
	pthread_mutex_lock(&vm->lock);
	ret = build_and_publish(vm, e, n);
	pthread_mutex_unlock(&vm->lock);
	return ret;
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
	ret = build_and_publish(vm, e, n + 1);
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
	ret = build_and_publish(vm, e, n - 1);
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
	if (vm->log) {
		gm_dirty_set_enabled(vm->log, false);
		vm->log_marked += gm__dirty_newly_set(vm->log);
		gm_dirty_put(vm->log);
		vm->log = NULL;
	}
	__atomic_store_n(&vm->logging, false, __ATOMIC_RELAXED);
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

/*
 * Wait until every table of @vm but the one in force is freed (invariant
 * 5): holders put them when their requests are done. Called with vm->lock
 * held, so no table is built meanwhile.
 */
static void drain(struct gm_vhost_mem *vm)
{
	unsigned long want = 1 + (vm->cur != NULL);
	const struct timespec nap = {0, 100 * 1000};

	while (__atomic_load_n(vm->census, __ATOMIC_ACQUIRE) > want)
		nanosleep(&nap, NULL);
}

/* Map the log's window and wrap it in a gm_dirty (gm_vhost_mem_set_log()'s checks). */
static int map_log(int fd, uint64_t mmap_offset, uint64_t size, struct gm_dirty **out)
{
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t start = gm_align_down(mmap_offset, page), last;
	size_t delta = (size_t)(mmap_offset - start), len, total;
	struct gm_mapping *map;
	struct stat st;
	int ret;

	if (fd < 0 || mmap_offset % 8 != 0 || size < 8)
		return -EINVAL;
	if (gm_add_overflow_u64(mmap_offset, size - 1, &last))
		return -EOVERFLOW;
	if (gm_u64_to_size(size, &len) || gm_add_overflow_size(len, delta, &total))
		return -EOVERFLOW;
	if (fstat(fd, &st) < 0)
		return -errno;
	/* A log past the end of its file would raise SIGBUS when marked. */
	if (S_ISREG(st.st_mode) && (st.st_size < 0 || size > (uint64_t)st.st_size ||
				    mmap_offset > (uint64_t)st.st_size - size))
		return -ERANGE;
	/*
	 * GM_MAP_PEER: a front end that shrinks its log file makes our marks
	 * land on private zero pages instead of killing the back end.
	 */
	ret = gm_mapping_new_fd(fd, start, total, GM_MAP_SHARED | GM_MAP_PEER, &map);
	if (ret)
		return ret;
	ret = gm_dirty_new_mapped(map, delta, size, out);
	gm_mapping_put(map); /* the bitmap holds its own reference */
	return ret;
}

int gm_vhost_mem_set_log(struct gm_vhost_mem *vm, int fd, uint64_t mmap_offset, uint64_t size)
{
	struct gm_vhost_table *t = NULL;
	struct gm_dirty *log, *old;
	struct vhost_entry *e;
	size_t n;
	int ret;

	if (!vm)
		return -EINVAL;
	ret = map_log(fd, mmap_offset, size, &log);
	if (ret)
		return ret;
	pthread_mutex_lock(&vm->lock);
	if (vm->logging)
		gm_dirty_set_enabled(log, true);
	if (vm->cur) {
		/* The table in force again, now marking into @log (invariant 5). */
		ret = copy_entries(vm, 0, &e, &n);
		if (ret)
			goto err_unlock;
		ret = build_table(e, n, vm->max, log, vm->census, &t);
		if (ret)
			goto err_unlock;
	}
	old = vm->log;
	vm->log = log;
	if (t)
		publish(vm, t);
	drain(vm);
	/* No table marks @old any more: its count is final. */
	if (old)
		vm->log_marked += gm__dirty_newly_set(old);
	pthread_mutex_unlock(&vm->lock);
	gm_dirty_put(old);
	return 0;

err_unlock:
	pthread_mutex_unlock(&vm->lock);
	gm_dirty_put(log);
	return ret;
}

int gm_vhost_mem_set_logging(struct gm_vhost_mem *vm, bool on)
{
	int ret = 0;

	if (!vm)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	if (on && !vm->log) {
		ret = -ENOENT;
	} else {
		/* Every table alive carries vm->log (invariant 5): one switch for all. */
		if (vm->log)
			gm_dirty_set_enabled(vm->log, on);
		__atomic_store_n(&vm->logging, on, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

bool gm_vhost_mem_logging(struct gm_vhost_mem *vm)
{
	return __atomic_load_n(&vm->logging, __ATOMIC_ACQUIRE);
}

uint64_t gm_vhost_mem_log_count(struct gm_vhost_mem *vm)
{
	uint64_t n;

	pthread_mutex_lock(&vm->lock);
	n = vm->log ? gm_dirty_count(vm->log) : 0;
	pthread_mutex_unlock(&vm->lock);
	return n;
}

uint64_t gm_vhost_mem_log_marked(struct gm_vhost_mem *vm)
{
	uint64_t n;

	if (!vm)
		return 0;
	pthread_mutex_lock(&vm->lock);
	n = vm->log_marked + (vm->log ? gm__dirty_newly_set(vm->log) : 0);
	pthread_mutex_unlock(&vm->lock);
	return n;
}

int gm_vhost_table_log(const struct gm_vhost_table *t, gm_gpa_t gpa, uint64_t len)
{
	uint64_t last;

	if (!t->log || len == 0)
		return 0;
	if (gm_add_overflow_u64(gpa, len - 1, &last) ||
	    (last >> GM_PAGE_SHIFT) >= gm_dirty_npages(t->log))
		return -ERANGE;
	gm__dirty_mark_tracked(t->log, gpa, len);
	return 0;
}
