/*
 * tour.c - a first look at guestmem, for a new user.
 *
 * Builds a small guest memory (two adjacent RAM regions, a hole, a
 * read-only region and RAM above 4 GiB), prints its layout, moves a
 * string across a region boundary, translates guest addresses to host
 * pointers and iovecs, and shows what a hostile guest address gets back.
 * Every step is checked: the program exits 1 if guestmem does anything
 * other than what is printed.
 */
#include <guestmem/guestmem.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MiB (1024u * 1024u)

static int failures;

/* The errno names the tour meets, as a C programmer writes them. */
static const char *errname(int err)
{
	switch (-err) {
	case 0:
		return "0";
	case EFAULT:
		return "-EFAULT";
	case EACCES:
		return "-EACCES";
	case EINVAL:
		return "-EINVAL";
	case ENOBUFS:
		return "-ENOBUFS";
	default:
		return strerror(-err);
	}
}

/* Print one line of the tour and count a mismatch between expected and got. */
static void expect(const char *what, int got, int want)
{
	printf("  %-52s -> %-9s%s\n", what, errname(got), got == want ? "" : "   << UNEXPECTED");
	if (got != want)
		failures++;
}

static void print_layout(const struct gm_memory *m)
{
	struct gm_region_info ri;
	size_t i;

	printf("  %-4s %-21s %-21s %10s  %s\n", "#", "first gpa", "last gpa", "size", "flags");
	for (i = 0; gm_memory_region(m, i, &ri) == 0; i++)
		printf("  %-4zu 0x%016llx   0x%016llx   %7llu KiB  %s\n", i,
		       (unsigned long long)ri.gpa, (unsigned long long)(ri.gpa + ri.size - 1),
		       (unsigned long long)(ri.size / 1024),
		       ri.flags & GM_REGION_READONLY ? "read-only" : "read-write");
	printf("  %zu regions, %llu KiB of guest memory\n", gm_memory_region_count(m),
	       (unsigned long long)(gm_memory_total_size(m) / 1024));
}

int main(void)
{
	struct gm_mapping *low, *high, *rom, *top;
	struct gm_memory *m;
	const char msg[] = "guest bytes that straddle a region boundary";
	char back[sizeof(msg)];
	struct iovec iov[4];
	uint64_t word;
	size_t n, done;
	int err;

	printf("guestmem tour\n\n1. Build guest memory from host mappings\n");
	err = gm_mapping_new_anon(1 * MiB, 0, &low);
	err = err ? err : gm_mapping_new_anon(2 * MiB, GM_MAP_GUARD, &high);
	err = err ? err : gm_mapping_new_anon(64 * 1024, 0, &rom);
	err = err ? err : gm_mapping_new_anon(1 * MiB, GM_MAP_NORESERVE, &top);
	if (err) {
		fprintf(stderr, "tour: cannot map host memory: %s\n", strerror(-err));
		return 1;
	}
	/* A "firmware" image, written before the region is made read-only. */
	memcpy(gm_mapping_host(rom), "ROM v1.0", 8);
	{
		const struct gm_region_spec specs[] = {
		    {.gpa = 0x100000, .size = 2 * MiB, .mapping = high},
		    {.gpa = 0, .size = 1 * MiB, .mapping = low},
		    /* 0x300000 .. 0x3fffff is a hole: no region. */
		    {.gpa = 0x400000,
		     .size = 64 * 1024,
		     .mapping = rom,
		     .flags = GM_REGION_READONLY},
		    {.gpa = 0x100000000ull, .size = 1 * MiB, .mapping = top},
		};

		err = gm_memory_new(specs, sizeof(specs) / sizeof(specs[0]), &m);
	}
	/* The view holds its own references; the tour's are no longer needed. */
	gm_mapping_put(low);
	gm_mapping_put(high);
	gm_mapping_put(rom);
	gm_mapping_put(top);
	if (err) {
		fprintf(stderr, "tour: gm_memory_new: %s\n", strerror(-err));
		return 1;
	}
	print_layout(m);

	printf("\n2. A string written across the boundary at 0x100000, read back\n");
	expect("gm_write(0x0fffec, 44 bytes)", gm_write(m, 0x100000 - 20, msg, sizeof(msg)), 0);
	expect("gm_read(0x0fffec, 44 bytes)", gm_read(m, 0x100000 - 20, back, sizeof(back)), 0);
	printf("  read back: \"%s\"%s\n", back, strcmp(back, msg) ? "   << UNEXPECTED" : "");
	failures += strcmp(back, msg) != 0;
	expect("gm_write_le64(0x100000008, ...) above 4 GiB",
	       gm_write_le64(m, 0x100000008ull, 0x1122334455667788ull), 0);
	expect("gm_read_le64(0x100000008)", gm_read_le64(m, 0x100000008ull, &word), 0);
	printf("  value: 0x%016llx\n", (unsigned long long)word);

	printf("\n3. Translation to host memory (zero-copy I/O)\n");
	printf("  gm_host_ptr(0x1000, 16)            = %s\n",
	       gm_host_ptr(m, 0x1000, 16) ? "a host pointer" : "NULL");
	printf("  gm_host_ptr(0x0fffec, 44)          = %s (crosses two regions)\n",
	       gm_host_ptr(m, 0x100000 - 20, sizeof(msg)) ? "a host pointer" : "NULL");
	expect("gm_to_iovec(0x0fffec, 44, max 4)",
	       gm_to_iovec(m, 0x100000 - 20, sizeof(msg), iov, 4, &n), 0);
	for (size_t i = 0; i < n; i++)
		printf("    iov[%zu]: %zu bytes\n", i, iov[i].iov_len);
	expect("gm_to_iovec(0x0fffec, 44, max 1)",
	       gm_to_iovec(m, 0x100000 - 20, sizeof(msg), iov, 1, &n), -ENOBUFS);

	printf("\n4. What a hostile guest address gets\n");
	expect("gm_read(0x300000, 8): a hole", gm_read(m, 0x300000, &word, 8), -EFAULT);
	expect("gm_read(0x2ffffc, 8): runs into the hole", gm_read(m, 0x2ffffc, &word, 8), -EFAULT);
	expect("gm_read(0xfffffffffffffff8, 16): wraps 2^64",
	       gm_read(m, 0xfffffffffffffff8ull, back, 16), -EFAULT);
	expect("gm_write(0x400000, 8): read-only region", gm_write(m, 0x400000, msg, 8), -EACCES);
	expect("gm_atomic_load_u64(0x1004): misaligned",
	       gm_atomic_load_u64(m, 0x1004, &word, __ATOMIC_ACQUIRE), -EINVAL);
	expect("gm_read_partial(0x2ffff0, 32)", gm_read_partial(m, 0x2ffff0, back, 32, &done),
	       -EFAULT);
	printf("  ... copied %zu bytes before the hole\n", done);
	expect("gm_read(0x400000, 8): reading the ROM is fine", gm_read(m, 0x400000, back, 8), 0);
	printf("  ROM says \"%.8s\"\n", back);

	gm_memory_put(m);
	printf("\n%s\n", failures ? "tour: some steps did not do what they said"
				  : "tour: every step did what it said");
	return failures ? 1 : 0;
}
