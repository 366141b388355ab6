/* SPDX-License-Identifier: MIT */
/*
 * atomics.c - atomic loads, stores and read-modify-writes on naturally
 * aligned guest words (virtio ring indices, flags shared with the guest).
 *
 * The inline fast path (static/memory-inline.h) handles aligned relaxed,
 * acquire and seq_cst loads and stores inside one slot; everything else,
 * including every invalid argument, comes here. A word must lie in one
 * region and be aligned on the host too; stores mark the page dirty.
 * A word in memory a peer truncated is accessed on zeros and reported as
 * -EFAULT (mapping-internal.h).
 */

#include "../mapping-internal.h"
#include "memory-internal.h"

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
	unsigned faults;
	void *p;
	int err;

	if (!load_order_ok(mo))
		return -EINVAL;
	err = atomic_ptr(m, gpa, size, false, &r, &p);
	if (err)
		return err;
	faults = gm__peer_fault_count();
	if (size == 4)
		*out = mo == __ATOMIC_RELAXED	? __atomic_load_n((uint32_t *)p, __ATOMIC_RELAXED)
		       : mo == __ATOMIC_SEQ_CST ? __atomic_load_n((uint32_t *)p, __ATOMIC_SEQ_CST)
						: __atomic_load_n((uint32_t *)p, __ATOMIC_ACQUIRE);
	else
		*out = mo == __ATOMIC_RELAXED	? __atomic_load_n((uint64_t *)p, __ATOMIC_RELAXED)
		       : mo == __ATOMIC_SEQ_CST ? __atomic_load_n((uint64_t *)p, __ATOMIC_SEQ_CST)
						: __atomic_load_n((uint64_t *)p, __ATOMIC_ACQUIRE);
	return gm__peer_check(faults, 0);
}

static int atomic_store(const struct gm_memory *m, gm_gpa_t gpa, unsigned size, uint64_t val,
			int mo)
{
	const struct gm_region_hot *r;
	unsigned faults;
	void *p;
	int err;

	if (!store_order_ok(mo))
		return -EINVAL;
	err = atomic_ptr(m, gpa, size, true, &r, &p);
	if (err)
		return err;
	faults = gm__peer_fault_count();
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
	mark_word(r, gpa);
	return gm__peer_check(faults, 0);
}

enum rmw_op { RMW_ADD, RMW_OR };

/* fetch_add / fetch_or on a 4- or 8-byte word; the previous value in *@old if not NULL. */
static int atomic_rmw(const struct gm_memory *m, gm_gpa_t gpa, unsigned size, enum rmw_op op,
		      uint64_t val, uint64_t *old, int mo)
{
	const struct gm_region_hot *r;
	uint64_t prev;
	unsigned faults;
	void *p;
	int err;

	if (!rmw_order_ok(mo))
		return -EINVAL;
	err = atomic_ptr(m, gpa, size, true, &r, &p);
	if (err)
		return err;
	faults = gm__peer_fault_count();
	if (size == 4)
		prev = op == RMW_ADD ? __atomic_fetch_add((uint32_t *)p, (uint32_t)val, mo)
				     : __atomic_fetch_or((uint32_t *)p, (uint32_t)val, mo);
	else
		prev = op == RMW_ADD ? __atomic_fetch_add((uint64_t *)p, val, mo)
				     : __atomic_fetch_or((uint64_t *)p, val, mo);
	mark_word(r, gpa);
	if (old)
		*old = prev;
	return gm__peer_check(faults, 0);
}

/* atomic_rmw() on a 4-byte word, the previous value narrowed into *@old. */
static int atomic_rmw_u32(const struct gm_memory *m, gm_gpa_t gpa, enum rmw_op op, uint32_t val,
			  uint32_t *old, int mo)
{
	uint64_t prev;
	int err = atomic_rmw(m, gpa, 4, op, val, &prev, mo);

	if (!err && old)
		*old = (uint32_t)prev;
	return err;
}

/* Compare-and-swap; 0 if swapped, -EAGAIN with *@expected updated if not. */
static int atomic_cmpxchg(const struct gm_memory *m, gm_gpa_t gpa, unsigned size,
			  uint64_t *expected, uint64_t desired, int mo)
{
	const struct gm_region_hot *r;
	bool swapped;
	unsigned faults;
	void *p;
	int err;

	if (!rmw_order_ok(mo))
		return -EINVAL;
	err = atomic_ptr(m, gpa, size, true, &r, &p);
	if (err)
		return err;
	faults = gm__peer_fault_count();
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
		return gm__peer_check(faults, -EAGAIN);
	mark_word(r, gpa);
	return gm__peer_check(faults, 0);
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
	return atomic_rmw_u32(m, gpa, RMW_ADD, val, old, memorder);
}

int gm_atomic_fetch_add_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val, uint64_t *old,
			    int memorder)
{
	return atomic_rmw(m, gpa, 8, RMW_ADD, val, old, memorder);
}

int gm_atomic_fetch_or_u32(const struct gm_memory *m, gm_gpa_t gpa, uint32_t val, uint32_t *old,
			   int memorder)
{
	return atomic_rmw_u32(m, gpa, RMW_OR, val, old, memorder);
}

int gm_atomic_fetch_or_u64(const struct gm_memory *m, gm_gpa_t gpa, uint64_t val, uint64_t *old,
			   int memorder)
{
	return atomic_rmw(m, gpa, 8, RMW_OR, val, old, memorder);
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
