/* SPDX-License-Identifier: MIT */
/*
 * mapping-numa.c - where on a NUMA host the pages of a mapping come from:
 * gm_mapping_set_policy() applies a memory policy to a range of a mapping
 * with the mbind() system call (raw: no libnuma), before the pages are
 * touched, so the kernel allocates each page on the policy's nodes when it
 * is first faulted in (by the guest, by gm_mapping_prefault() or by any
 * thread: the policy belongs to the memory, not to the thread).
 *
 * The node mask is a uint64_t in the API and an array of unsigned long for
 * the kernel (one word on 64-bit hosts, two on 32-bit ones). The kernel
 * reads maxnode - 1 bits of it (mbind(2)): we pass 65.
 */
#include <guestmem/mapping.h>

#include "abi-internal.h"

#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The kernel's MPOL_* values (linux/mempolicy.h), which the GM_NUMA_* flags equal. */
_Static_assert(GM_NUMA_DEFAULT == 0 && GM_NUMA_PREFERRED == 1 && GM_NUMA_BIND == 2 &&
		   GM_NUMA_INTERLEAVE == 3,
	       "GM_NUMA_* are the kernel's MPOL_* modes");

#define MASK_WORDS (64 / (8 * sizeof(unsigned long)))

static void to_kernel_mask(uint64_t nodes, unsigned long mask[MASK_WORDS])
{
	for (size_t i = 0; i < MASK_WORDS; i++)
		mask[i] = (unsigned long)(nodes >> (i * 8 * sizeof(unsigned long)));
}

/* Whether @p is a policy this library can apply (see mapping.h). */
static bool policy_valid(const struct gm_numa_policy *p)
{
	switch (p->mode) {
	case GM_NUMA_DEFAULT:
		return p->nodes == 0;
	case GM_NUMA_PREFERRED:
	case GM_NUMA_BIND:
	case GM_NUMA_INTERLEAVE:
		return p->nodes != 0;
	default:
		return false;
	}
}

GM_API int gm_mapping_set_policy(struct gm_mapping *m, size_t offset, size_t len,
				 const struct gm_numa_policy *policy)
{
	struct gm_numa_policy p;
	unsigned long mask[MASK_WORDS];
	size_t page, end, mapped;
	int err;

	if (!m || !policy || len == 0)
		return -EINVAL;
	err = GM_ABI_COPY_IN(&p, policy);
	if (err)
		return err;
	if (!policy_valid(&p))
		return -EINVAL;
	page = gm_mapping_page_size(m);
	mapped = gm_mapping_size(m) + (page - gm_mapping_size(m) % page) % page;
	if (!gm_is_aligned(offset, page) || !gm_is_aligned(len, page) ||
	    gm_add_overflow_size(offset, len, &end) || end > mapped)
		return -EINVAL;
	to_kernel_mask(p.nodes, mask);
	if (syscall(SYS_mbind, (char *)gm_mapping_host(m) + offset, len, (unsigned long)p.mode,
		    p.mode == GM_NUMA_DEFAULT ? NULL : mask, p.mode == GM_NUMA_DEFAULT ? 0ul : 65ul,
		    0u) < 0)
		return -errno;
	return 0;
}
