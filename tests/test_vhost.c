/* SPDX-License-Identifier: MIT */
/*
 * test_vhost.c - vhost-user memory tables (<guestmem/vhost.h>).
 *
 * Regions are memfds written through a second mapping (the "front end"),
 * so a passing read proves the table maps the right bytes of the right fd.
 * Every refusal is checked for its exact errno and for leaving the table
 * in force unchanged. After every table a test builds or replaces (and
 * every refused change), gm__vhost_invariants_ok() checks vhost.c's
 * numbered invariants.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <guestmem/vhost.h>

#include "memory/memory-internal.h"
#include "vhost-internal.h"

#include "threads.h"

#define MiB ((uint64_t)1 << 20)
#define UA  0x7f0000000000ull

/* A memfd of @size bytes whose byte i is (i / 4096 + @seed) & 0xff. */
static int pattern_memfd(size_t size, unsigned seed)
{
	int fd = memfd_create("test-vhost", MFD_CLOEXEC);
	unsigned char *p;
	size_t i;

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(p != MAP_FAILED);
	for (i = 0; i < size; i++)
		p[i] = (unsigned char)(i / 4096 + seed);
	munmap(p, size);
	return fd;
}

static struct gm_vhost_region region(gm_gpa_t gpa, uint64_t size, uint64_t uaddr, uint64_t off,
				     int fd)
{
	struct gm_vhost_region r = {gpa, size, uaddr, off, fd};
	return r;
}

static void table_reads_the_fd_bytes_at_guest_addresses(void **state)
{
	int fd = pattern_memfd(2 * MiB, 0);
	struct gm_vhost_region r[2] = {region(4 * MiB, MiB, UA + 8 * MiB, MiB, fd),
				       region(0, MiB, UA, 0, fd)};
	struct gm_vhost_table *t;
	struct gm_vhost_region out;
	uint8_t b;

	(void)state;
	assert_int_equal(gm_vhost_table_new(r, 2, 8, &t), 0);
	assert_true(gm__vhost_invariants_ok(t));
	close(fd); /* the table keeps its own duplicate */
	assert_int_equal(gm_vhost_table_region_count(t), 2);
	assert_int_equal(gm_read_u8(gm_vhost_table_memory(t), 4096 * 3, &b), 0);
	assert_int_equal(b, 3);
	/* gpa 4 MiB is file offset 1 MiB: page 256. */
	assert_int_equal(gm_read_u8(gm_vhost_table_memory(t), 4 * MiB + 4096, &b), 0);
	assert_int_equal(b, (256 + 1) & 0xff);
	assert_int_equal(gm_read_u8(gm_vhost_table_memory(t), 2 * MiB, &b), -EFAULT);
	assert_int_equal(gm_vhost_table_region(t, 1, &out), 0);
	assert_int_equal(out.gpa, 4 * MiB);
	assert_int_equal(out.uaddr, UA + 8 * MiB);
	assert_int_equal(out.mmap_offset, MiB);
	assert_true(out.fd >= 0);
	assert_int_equal(gm_vhost_table_region(t, 2, &out), -ENOENT);
	gm_vhost_table_put(t);
}

static void unaligned_mmap_offset_is_honoured(void **state)
{
	int fd = pattern_memfd(MiB, 0);
	struct gm_vhost_region r = region(0x10000, 8192, UA, 4096 * 5 + 100, fd);
	struct gm_vhost_table *t;
	uint8_t b;

	(void)state;
	assert_int_equal(gm_vhost_table_new(&r, 1, 8, &t), 0);
	assert_true(gm__vhost_invariants_ok(t));
	assert_int_equal(gm_read_u8(gm_vhost_table_memory(t), 0x10000, &b), 0);
	assert_int_equal(b, 5);
	assert_int_equal(gm_read_u8(gm_vhost_table_memory(t), 0x10000 + 4096 - 100, &b), 0);
	assert_int_equal(b, 6);
	gm_vhost_table_put(t);
	close(fd);
}

static void user_addresses_translate_inside_one_region_only(void **state)
{
	int fd = pattern_memfd(2 * MiB, 0);
	struct gm_vhost_region r[2] = {region(0, MiB, UA, 0, fd),
				       region(16 * MiB, MiB, UA + MiB, MiB, fd)};
	struct gm_vhost_table *t;
	gm_gpa_t gpa;
	uint64_t ua;

	(void)state;
	assert_int_equal(gm_vhost_table_new(r, 2, 8, &t), 0);
	assert_true(gm__vhost_invariants_ok(t));
	assert_int_equal(gm_vhost_uaddr_to_gpa(t, UA + 100, 16, &gpa), 0);
	assert_int_equal(gpa, 100);
	assert_int_equal(gm_vhost_uaddr_to_gpa(t, UA + MiB + 8, 8, &gpa), 0);
	assert_int_equal(gpa, 16 * MiB + 8);
	/* Adjacent in user space, not in guest space: a range across is refused. */
	assert_int_equal(gm_vhost_uaddr_to_gpa(t, UA + MiB - 4, 8, &gpa), -EFAULT);
	assert_int_equal(gm_vhost_uaddr_to_gpa(t, UA - 1, 1, &gpa), -EFAULT);
	assert_int_equal(gm_vhost_uaddr_to_gpa(t, UA + 2 * MiB, 1, &gpa), -EFAULT);
	assert_int_equal(gm_vhost_uaddr_to_gpa(t, UINT64_MAX, 2, &gpa), -EFAULT);
	assert_int_equal(gm_vhost_uaddr_to_gpa(t, UA, 0, &gpa), -EINVAL);
	assert_int_equal(gm_vhost_gpa_to_uaddr(t, 16 * MiB + 5, 1, &ua), 0);
	assert_int_equal(ua, UA + MiB + 5);
	assert_int_equal(gm_vhost_gpa_to_uaddr(t, MiB, 1, &ua), -EFAULT);
	gm_vhost_table_put(t);
	close(fd);
}

static void bad_tables_are_refused_with_exact_errno(void **state)
{
	int fd = pattern_memfd(MiB, 0);
	struct gm_vhost_region r[9];
	struct gm_vhost_table *t = NULL;
	int i;

	(void)state;
	r[0] = region(0, 0, UA, 0, fd);
	assert_int_equal(gm_vhost_table_new(r, 1, 8, &t), -EINVAL);
	r[0] = region(0, 4096, UA, 0, -1);
	assert_int_equal(gm_vhost_table_new(r, 1, 8, &t), -EINVAL);
	r[0] = region(UINT64_MAX - 100, 4096, UA, 0, fd);
	assert_int_equal(gm_vhost_table_new(r, 1, 8, &t), -EOVERFLOW);
	r[0] = region(0, 4096, UINT64_MAX - 100, 0, fd);
	assert_int_equal(gm_vhost_table_new(r, 1, 8, &t), -EOVERFLOW);
	r[0] = region(0, 4096, UA, UINT64_MAX - 100, fd);
	assert_int_equal(gm_vhost_table_new(r, 1, 8, &t), -EOVERFLOW);
	/* Guest ranges overlap by one page. */
	r[0] = region(0, 8192, UA, 0, fd);
	r[1] = region(4096, 8192, UA + MiB, 0, fd);
	assert_int_equal(gm_vhost_table_new(r, 2, 8, &t), -EEXIST);
	/* User ranges overlap, guest ranges do not. */
	r[1] = region(MiB, 8192, UA + 4096, 0, fd);
	assert_int_equal(gm_vhost_table_new(r, 2, 8, &t), -EEXIST);
	for (i = 0; i < 9; i++)
		r[i] = region((uint64_t)i * MiB, 4096, UA + (uint64_t)i * MiB, 0, fd);
	assert_int_equal(gm_vhost_table_new(r, 9, 8, &t), -E2BIG);
	assert_int_equal(gm_vhost_table_new(NULL, 1, 8, &t), -EINVAL);
	assert_null(t);
	/* The window leaves a file that mmap cannot map: the kernel's errno. */
	r[0] = region(0, 4096, UA, 0, 12345);
	assert_int_equal(gm_vhost_table_new(r, 1, 8, &t), -EBADF);
	close(fd);
}

/*
 * Found by fuzz/fuzz_vhost_user.c: a region larger than its memfd mapped,
 * and gm-vhost-blk died of SIGBUS when a ring was placed past the end.
 */
static void region_past_the_end_of_its_file_is_erange(void **state)
{
	int fd = pattern_memfd(MiB, 0);
	struct gm_vhost_region r = region(0, MiB + 4096, UA, 0, fd);
	struct gm_vhost_table *t = NULL;
	uint8_t b;

	(void)state;
	assert_int_equal(gm_vhost_table_new(&r, 1, 8, &t), -ERANGE);
	r = region(0, 8192, UA, MiB - 4096, fd);
	assert_int_equal(gm_vhost_table_new(&r, 1, 8, &t), -ERANGE);
	r = region(0, 4096, UA, MiB + 4096, fd);
	assert_int_equal(gm_vhost_table_new(&r, 1, 8, &t), -ERANGE);
	r = region(0, 4096, UA, UINT64_MAX - 4095, fd); /* ends exactly at 2^64 */
	assert_int_equal(gm_vhost_table_new(&r, 1, 8, &t), -ERANGE);
	assert_null(t);
	/* Up to the last byte is fine. */
	r = region(0, 4096, UA, MiB - 4096, fd);
	assert_int_equal(gm_vhost_table_new(&r, 1, 8, &t), 0);
	assert_true(gm__vhost_invariants_ok(t));
	assert_int_equal(gm_read_u8(gm_vhost_table_memory(t), 4095, &b), 0);
	assert_int_equal(b, (MiB - 1) / 4096 & 0xff);
	gm_vhost_table_put(t);
	close(fd);
}

static void region_beyond_the_host_address_space_is_eoverflow(void **state)
{
	struct gm_vhost_region r = region(0, (uint64_t)1 << 33, UA, 0, 0);
	struct gm_vhost_table *t;

	(void)state;
	if (SIZE_MAX > UINT32_MAX) {
		printf("skipped: an 8 GiB region fits a 64-bit host; this checks 32-bit builds\n");
		skip();
	}
	assert_int_equal(gm_vhost_table_new(&r, 1, 8, &t), -EOVERFLOW);
}

static void add_and_remove_change_only_their_region(void **state)
{
	int fd = pattern_memfd(2 * MiB, 0);
	struct gm_vhost_region a = region(0, MiB, UA, 0, fd),
			       b = region(MiB, MiB, UA + MiB, MiB, fd);
	struct gm_vhost_mem *vm;
	struct gm_vhost_table *t;
	uint8_t v;

	(void)state;
	assert_int_equal(gm_vhost_mem_new(2, &vm), 0);
	assert_null(gm_vhost_mem_table(vm));
	assert_int_equal(gm_vhost_mem_add(vm, &a), 0);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	assert_int_equal(gm_vhost_mem_add(vm, &a), -EEXIST);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	assert_int_equal(gm_vhost_mem_add(vm, &b), 0);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	assert_int_equal(gm_vhost_mem_add(vm, &b), -E2BIG); /* full before it could overlap */
	assert_true(gm__vhost_mem_invariants_ok(vm));
	assert_int_equal(gm_vhost_mem_generation(vm), 2);
	t = gm_vhost_mem_table(vm);
	assert_int_equal(gm_vhost_table_region_count(t), 2);
	assert_int_equal(gm_read_u8(gm_vhost_table_memory(t), MiB + 4096, &v), 0);
	assert_int_equal(v, (256 + 1) & 0xff);
	gm_vhost_table_put(t);
	a.size = 4096; /* remove matches gpa, size and uaddr exactly */
	assert_int_equal(gm_vhost_mem_remove(vm, &a), -ENOENT);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	a.size = MiB;
	assert_int_equal(gm_vhost_mem_remove(vm, &a), 0);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	t = gm_vhost_mem_table(vm);
	assert_int_equal(gm_vhost_table_region_count(t), 1);
	assert_int_equal(gm_read_u8(gm_vhost_table_memory(t), 0, &v), -EFAULT);
	assert_int_equal(gm_read_u8(gm_vhost_table_memory(t), MiB, &v), 0);
	gm_vhost_table_put(t);
	assert_int_equal(gm_vhost_mem_generation(vm), 3);
	gm_vhost_mem_free(vm);
	close(fd);
}

static void replaced_table_stays_mapped_for_its_holder(void **state)
{
	int fd1 = pattern_memfd(MiB, 1), fd2 = pattern_memfd(MiB, 2);
	struct gm_vhost_region r1 = region(0, MiB, UA, 0, fd1), r2 = region(0, MiB, UA, 0, fd2);
	struct gm_vhost_mem *vm;
	struct gm_vhost_table *old, *cur;
	uint8_t v;

	(void)state;
	assert_int_equal(gm_vhost_mem_new(8, &vm), 0);
	assert_int_equal(gm_vhost_mem_set(vm, &r1, 1), 0);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	old = gm_vhost_mem_table(vm);
	assert_int_equal(gm_vhost_mem_set(vm, &r2, 1), 0);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	/* A failing replacement leaves the table in force alone. */
	r2.size = 0;
	assert_int_equal(gm_vhost_mem_set(vm, &r2, 1), -EINVAL);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	close(fd1);
	close(fd2);
	cur = gm_vhost_mem_table(vm);
	assert_ptr_not_equal(old, cur);
	assert_true(gm__vhost_invariants_ok(old));
	assert_int_equal(gm_read_u8(gm_vhost_table_memory(old), 0, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(gm_read_u8(gm_vhost_table_memory(cur), 0, &v), 0);
	assert_int_equal(v, 2);
	gm_vhost_table_put(old);
	gm_vhost_mem_clear(vm);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	assert_null(gm_vhost_mem_table(vm));
	assert_int_equal(gm_read_u8(gm_vhost_table_memory(cur), 0, &v), 0);
	gm_vhost_table_put(cur);
	gm_vhost_mem_free(vm);
}

static void holder_arguments_are_checked(void **state)
{
	struct gm_vhost_mem *vm;

	(void)state;
	assert_int_equal(gm_vhost_mem_new(0, &vm), -EINVAL);
	assert_int_equal(gm_vhost_mem_new(GM_VHOST_REGIONS_MAX + 1, &vm), -EINVAL);
	assert_int_equal(gm_vhost_mem_new(1, NULL), -EINVAL);
	assert_int_equal(gm_vhost_mem_add(NULL, NULL), -EINVAL);
	gm_vhost_mem_free(NULL);
	gm_vhost_table_put(NULL);
}

/* ---- the dirty log ---- */

/* A zeroed memfd of @size bytes for a log, and a mapping of it to read bits. */
static int log_memfd(size_t size, unsigned char **bytes)
{
	int fd = memfd_create("test-vhost-log", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	*bytes = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(*bytes != MAP_FAILED);
	return fd;
}

static bool log_bit(const unsigned char *log, uint64_t page)
{
	return (__atomic_load_n(&log[page / 8], __ATOMIC_RELAXED) >> (page % 8)) & 1;
}

/* The pages whose bits are set in the first @bytes bytes of @log, as a count. */
static unsigned log_pages(const unsigned char *log, size_t bytes)
{
	unsigned n = 0;
	size_t i;

	for (i = 0; i < bytes; i++)
		n += (unsigned)__builtin_popcount(log[i]);
	return n;
}

/*
 * Two regions (gpa 0 and 4 MiB, 1 MiB each): with logging on, exactly the
 * guest-physical pages written are logged, whatever the write (bytes, a
 * word, a range crossing a page, reads from a file, an explicit mark); with
 * logging off nothing is.
 */
static void log_marks_exactly_the_guest_pages_written(void **state)
{
	int fd = pattern_memfd(2 * MiB, 0), data = pattern_memfd(8192, 7), lfd;
	struct gm_vhost_region r[2] = {region(0, MiB, UA, 0, fd),
				       region(4 * MiB, MiB, UA + 16 * MiB, MiB, fd)};
	struct gm_vhost_mem *vm;
	struct gm_vhost_table *t;
	const struct gm_memory *m;
	unsigned char *log, buf[8192] = {0};
	size_t done;

	(void)state;
	lfd = log_memfd(4096, &log);
	assert_int_equal(gm_vhost_mem_new(8, &vm), 0);
	assert_int_equal(gm_vhost_mem_set(vm, r, 2), 0);
	assert_int_equal(gm_vhost_mem_set_logging(vm, true), -ENOENT); /* no log yet */
	/* 5 MiB = 1280 pages = 160 bytes, at offset 8 of the fd. */
	assert_int_equal(gm_vhost_mem_set_log(vm, lfd, 8, 160), 0);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	t = gm_vhost_mem_table(vm);
	m = gm_vhost_table_memory(t);
	assert_int_equal(gm_write_u8(m, 0x3000, 1), 0);
	assert_int_equal(log_pages(log, 4096), 0); /* logging off */
	assert_int_equal(gm_vhost_mem_set_logging(vm, true), 0);
	assert_true(gm_vhost_mem_logging(vm));
	assert_true(gm__vhost_mem_invariants_ok(vm));
	assert_int_equal(gm_write_u8(m, 0x3000, 1), 0);				  /* page 3 */
	assert_int_equal(gm_write_le32(m, 4 * MiB + 0x10, 5), 0);		  /* page 1024 */
	assert_int_equal(gm_write(m, 4 * MiB + 0x1800 + 0x1000, buf, 0x1000), 0); /* 1026, 1027 */
	assert_int_equal(gm_read_from_fd(m, 0x20000, data, 0, 8192, &done), 0);	  /* 32, 33 */
	assert_int_equal(done, 8192);
	assert_int_equal(gm_vhost_table_log(t, 0x80000, 1), 0); /* 128 */
	assert_int_equal(gm_vhost_mem_log_count(vm), 7);
	assert_int_equal(log_pages(log, 4096), 7);
	assert_true(log_bit(log + 8, 3) && log_bit(log + 8, 1024) && log_bit(log + 8, 1026) &&
		    log_bit(log + 8, 1027) && log_bit(log + 8, 32) && log_bit(log + 8, 33) &&
		    log_bit(log + 8, 128));
	/* Reads mark nothing; a mark past the log is refused, nothing written. */
	assert_int_equal(gm_read(m, 0x5000, buf, 16), 0);
	assert_int_equal(gm_vhost_table_log(t, 1280 * 4096 - 1, 2), -ERANGE);
	assert_int_equal(gm_vhost_table_log(t, UINT64_MAX, 2), -ERANGE);
	assert_int_equal(log_pages(log, 4096), 7);
	/* The front end collects (clears) a page; the next write logs it again. */
	__atomic_store_n(&log[8 + 3 / 8], 0, __ATOMIC_RELAXED);
	assert_int_equal(gm_write_u8(m, 0x3001, 2), 0);
	assert_true(log_bit(log + 8, 3));
	/* Off again: writes log nothing more. */
	assert_int_equal(gm_vhost_mem_set_logging(vm, false), 0);
	memset(log, 0, 4096);
	assert_int_equal(gm_write_u8(m, 0x7000, 1), 0);
	assert_int_equal(gm_vhost_table_log(t, 0x7000, 1), 0);
	assert_int_equal(log_pages(log, 4096), 0);
	gm_vhost_table_put(t);
	gm_vhost_mem_free(vm);
	munmap(log, 4096);
	close(lfd);
	close(fd);
	close(data);
}

/*
 * gm_vhost_mem_log_marked() counts exactly the bits the back end set (0 ->
 * 1), whatever the write: the inline accessors (which take the library's
 * call while a log is attached), gm_write(), fd reads, atomics and explicit
 * marks. A page already set, by the back end or by the front end, counts
 * nothing; one the front end collected counts again; nothing counts while
 * logging is off; a replaced or dropped log's count is kept.
 */
static void log_marked_counts_the_pages_newly_set(void **state)
{
	int fd = pattern_memfd(2 * MiB, 0), data = pattern_memfd(8192, 7), lfd, lfd2;
	struct gm_vhost_region r[2] = {region(0, MiB, UA, 0, fd),
				       region(4 * MiB, MiB, UA + 16 * MiB, MiB, fd)};
	struct gm_vhost_mem *vm;
	struct gm_vhost_table *t;
	const struct gm_memory *m;
	unsigned char *log, *log2, buf[4 * 4096] = {0};
	size_t done;

	(void)state;
	lfd = log_memfd(4096, &log);
	lfd2 = log_memfd(4096, &log2);
	assert_int_equal(gm_vhost_mem_log_marked(NULL), 0);
	assert_int_equal(gm_vhost_mem_new(8, &vm), 0);
	assert_int_equal(gm_vhost_mem_set(vm, r, 2), 0);
	assert_int_equal(gm_vhost_mem_log_marked(vm), 0);
	assert_int_equal(gm_vhost_mem_set_log(vm, lfd, 0, 160), 0);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	t = gm_vhost_mem_table(vm);
	m = gm_vhost_table_memory(t);
	assert_true(gm__memory_invariants_ok(m));
	assert_int_equal(gm_write_u8(m, 0x3000, 1), 0); /* logging off */
	assert_int_equal(gm_vhost_mem_log_marked(vm), 0);
	assert_int_equal(gm_vhost_mem_set_logging(vm, true), 0);
	assert_int_equal(gm_write_u8(m, 0x3000, 1), 0);		  /* page 3: 1 */
	assert_int_equal(gm_write_u8(m, 0x3fff, 1), 0);		  /* page 3 again: 0 */
	assert_int_equal(gm_write_le32(m, 4 * MiB + 0x10, 5), 0); /* 1024: 1 */
	assert_int_equal(gm_atomic_store_u64(m, 0x9008, 9, __ATOMIC_RELEASE), 0); /* 9: 1 */
	assert_int_equal(gm_vhost_mem_log_marked(vm), 3);
	assert_int_equal(gm_write(m, 4 * MiB + 0x1800 + 0x1000, buf, 0x1000),
			 0);					  /* 1026, 1027: 2 */
	assert_int_equal(gm_write(m, 4 * MiB, buf, 4 * 4096), 0); /* 1024..1027: 1025 only */
	assert_int_equal(gm_read_from_fd(m, 0x20000, data, 0, 8192, &done), 0); /* 32, 33: 2 */
	assert_int_equal(done, 8192);
	assert_int_equal(gm_vhost_table_log(t, 0x80000, 1), 0); /* 128: 1 */
	assert_int_equal(gm_vhost_table_log(t, 0x80000, 1), 0); /* 128 again: 0 */
	assert_int_equal(gm_vhost_mem_log_marked(vm), 9);
	assert_int_equal(log_pages(log, 4096), 9);
	/* The front end set page 5 itself: the back end's write adds nothing. */
	__atomic_fetch_or(&log[0], 1u << 5, __ATOMIC_RELAXED);
	assert_int_equal(gm_write_u8(m, 0x5000, 1), 0);
	assert_int_equal(gm_vhost_mem_log_marked(vm), 9);
	/* The front end collects pages 0-7 (3 and 5 set): page 3 counts again. */
	__atomic_store_n(&log[0], 0, __ATOMIC_RELAXED);
	assert_int_equal(gm_write_u16(m, 0x3002, 2), 0);
	assert_int_equal(gm_vhost_mem_log_marked(vm), 10);
	gm_vhost_table_put(t);
	/* A new log: the old one's 10 are kept, the new one counts afresh. */
	assert_int_equal(gm_vhost_mem_set_log(vm, lfd2, 0, 160), 0);
	t = gm_vhost_mem_table(vm);
	m = gm_vhost_table_memory(t);
	assert_int_equal(gm_write_u8(m, 0x3000, 1), 0); /* page 3 in the new log: 1 */
	assert_int_equal(gm_vhost_mem_log_marked(vm), 11);
	assert_int_equal(log_pages(log2, 4096), 1);
	/* Off: nothing counts. Dropped: the count stays. */
	assert_int_equal(gm_vhost_mem_set_logging(vm, false), 0);
	assert_int_equal(gm_write_u8(m, 0x7000, 1), 0);
	assert_int_equal(gm_vhost_mem_log_marked(vm), 11);
	gm_vhost_table_put(t);
	gm_vhost_mem_clear(vm);
	assert_int_equal(gm_vhost_mem_log_marked(vm), 11);
	gm_vhost_mem_free(vm);
	munmap(log, 4096);
	munmap(log2, 4096);
	close(lfd);
	close(lfd2);
	close(fd);
	close(data);
}

/* A log that does not cover the guest is refused and never written past. */
static void log_too_small_for_the_guest_is_refused(void **state)
{
	int fd = pattern_memfd(2 * MiB, 0), lfd;
	struct gm_vhost_region r[2] = {region(0, MiB, UA, 0, fd),
				       region(4 * MiB, MiB, UA + 16 * MiB, MiB, fd)};
	struct gm_vhost_region big = region(8 * MiB, MiB, UA + 32 * MiB, 0, fd);
	struct gm_vhost_mem *vm;
	struct gm_vhost_table *t;
	unsigned char *log;

	(void)state;
	lfd = log_memfd(4096, &log);
	assert_int_equal(gm_vhost_mem_new(8, &vm), 0);
	assert_int_equal(gm_vhost_mem_set(vm, r, 2), 0);
	/* Argument checks. */
	assert_int_equal(gm_vhost_mem_set_log(NULL, lfd, 0, 160), -EINVAL);
	assert_int_equal(gm_vhost_mem_set_logging(NULL, true), -EINVAL);
	assert_int_equal(gm_vhost_mem_set_log(vm, -1, 0, 160), -EINVAL);
	assert_int_equal(gm_vhost_mem_set_log(vm, lfd, 4, 160), -EINVAL);
	assert_int_equal(gm_vhost_mem_set_log(vm, lfd, 0, 7), -EINVAL);
	assert_int_equal(gm_vhost_mem_set_log(vm, lfd, 4096 - 152, 160), -ERANGE); /* past EOF */
	assert_int_equal(gm_vhost_mem_set_log(vm, lfd, 8, UINT64_MAX - 7), -EOVERFLOW);
	/* 152 bytes = 1216 pages: the region at 4 MiB ends at page 1279. */
	assert_int_equal(gm_vhost_mem_set_log(vm, lfd, 0, 152), -ERANGE);
	assert_int_equal(gm_vhost_mem_set_logging(vm, true), -ENOENT); /* nothing attached */
	assert_true(gm__vhost_mem_invariants_ok(vm));
	assert_int_equal(gm_vhost_mem_set_log(vm, lfd, 0, 160), 0);
	assert_int_equal(gm_vhost_mem_set_logging(vm, true), 0);
	/* While logging, a region past the log is refused; the table stays. */
	assert_int_equal(gm_vhost_mem_add(vm, &big), -ERANGE);
	assert_int_equal(gm_vhost_mem_set(vm, &big, 1), -ERANGE);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	t = gm_vhost_mem_table(vm);
	assert_int_equal(gm_vhost_table_region_count(t), 2);
	assert_int_equal(gm_write_u8(gm_vhost_table_memory(t), 5 * MiB - 1, 1), 0);
	assert_true(log_bit(log, 1279));
	gm_vhost_table_put(t);
	/* Logging off: a bigger table is taken and the stale log dropped. */
	assert_int_equal(gm_vhost_mem_set_logging(vm, false), 0);
	assert_int_equal(gm_vhost_mem_add(vm, &big), 0);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	assert_int_equal(gm_vhost_mem_set_logging(vm, true), -ENOENT);
	memset(log, 0, 4096);
	t = gm_vhost_mem_table(vm);
	assert_int_equal(gm_write_u8(gm_vhost_table_memory(t), 9 * MiB - 1, 1), 0);
	assert_int_equal(gm_vhost_table_log(t, 0, 1), 0);
	assert_int_equal(log_pages(log, 4096), 0);
	gm_vhost_table_put(t);
	/* A log big enough for the new table is taken. */
	assert_int_equal(gm_vhost_mem_set_log(vm, lfd, 0, 288), 0);
	assert_int_equal(gm_vhost_mem_set_logging(vm, true), 0);
	assert_true(gm__vhost_mem_invariants_ok(vm));
	gm_vhost_mem_clear(vm);
	assert_false(gm_vhost_mem_logging(vm));
	assert_true(gm__vhost_mem_invariants_ok(vm));
	gm_vhost_mem_free(vm);
	munmap(log, 4096);
	close(lfd);
	close(fd);
}

struct set_log_arg {
	struct gm_vhost_mem *vm;
	int fd;
	int ret;
	int done; /* __atomic */
};

static void *set_log_thread(void *arg)
{
	struct set_log_arg *a = arg;

	a->ret = gm_vhost_mem_set_log(a->vm, a->fd, 0, 160);
	__atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * Attaching a log returns only when nobody holds a table that does not
 * mark into it: until then a writer could write an unlogged page after
 * the front end was told the log is in place.
 */
static void set_log_waits_for_tables_without_the_log(void **state)
{
	int fd = pattern_memfd(MiB, 0), lfd;
	struct gm_vhost_region r = region(0, MiB, UA, 0, fd);
	struct set_log_arg a = {0};
	struct gm_vhost_table *old, *cur;
	unsigned char *log;
	pthread_t th;
	int early;

	(void)state;
	lfd = log_memfd(4096, &log);
	assert_int_equal(gm_vhost_mem_new(8, &a.vm), 0);
	assert_int_equal(gm_vhost_mem_set(a.vm, &r, 1), 0);
	old = gm_vhost_mem_table(a.vm);
	assert_int_equal(gm_vhost_mem_set(a.vm, &r, 1), 0); /* an older table, still held */
	a.fd = lfd;
	start_thread(&th, set_log_thread, &a);
	usleep(100 * 1000);
	early = __atomic_load_n(&a.done, __ATOMIC_ACQUIRE);
	gm_vhost_table_put(old);
	assert_int_equal(join_threads(&th, 1), 0);
	assert_int_equal(early, 0);
	assert_int_equal(a.ret, 0);
	cur = gm_vhost_mem_table(a.vm);
	assert_int_equal(gm_vhost_mem_set_logging(a.vm, true), 0);
	assert_int_equal(gm_write_u8(gm_vhost_table_memory(cur), 0x2000, 1), 0);
	assert_true(log_bit(log, 2));
	gm_vhost_table_put(cur);
	gm_vhost_mem_free(a.vm);
	munmap(log, 4096);
	close(lfd);
	close(fd);
}

#define TOGGLES 40

struct toggle_writer {
	struct gm_vhost_mem *vm;
	int stop; /* __atomic */
	/*
	 * __atomic. Odd: the test is switching logging; 2k + 2: switch k is
	 * done and logging is on[k] until the phase moves again.
	 */
	unsigned phase;
	bool on[TOGGLES];
	unsigned long writes, logged_expected;
	uint64_t missed; /* a write inside an "on" phase whose bit was clear */
	const unsigned char *log;
};

/*
 * Write page after page (256 pages). A write that began and ended within
 * one phase with logging on (the switch to it had returned, the next had
 * not begun) must have its bit set when the write returns.
 */
static void *toggle_writer_thread(void *arg)
{
	struct toggle_writer *w = arg;
	unsigned long i = 0;

	gm_rcu_register_thread();
	while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
		struct gm_vhost_table *t = gm_vhost_mem_table(w->vm);
		uint64_t page = i++ % 256;
		unsigned p0 = __atomic_load_n(&w->phase, __ATOMIC_ACQUIRE), p1;
		int ret = gm_write_u8(gm_vhost_table_memory(t), page * 4096 + 1, (uint8_t)i);

		p1 = __atomic_load_n(&w->phase, __ATOMIC_ACQUIRE);
		if (ret == 0) {
			__atomic_fetch_add(&w->writes, 1, __ATOMIC_RELAXED);
			if (p0 == p1 && p0 % 2 == 0 && p0 > 0 && w->on[p0 / 2 - 1]) {
				w->logged_expected++;
				if (!((__atomic_load_n(&w->log[page / 8], __ATOMIC_ACQUIRE) >>
				       (page % 8)) &
				      1))
					w->missed++;
			}
		}
		gm_vhost_table_put(t);
	}
	gm_rcu_unregister_thread();
	return NULL;
}

/* Logging switched on and off while a thread writes: no write seen "on" goes unlogged. */
static void logging_toggled_under_writes_loses_no_page(void **state)
{
	int fd = pattern_memfd(MiB, 0), lfd, i;
	struct gm_vhost_region r = region(0, MiB, UA, 0, fd);
	struct toggle_writer w = {0};
	unsigned char *log;
	bool toggles_ok = true;
	pthread_t th;

	(void)state;
	lfd = log_memfd(4096, &log);
	w.log = log;
	assert_int_equal(gm_vhost_mem_new(8, &w.vm), 0);
	assert_int_equal(gm_vhost_mem_set(w.vm, &r, 1), 0);
	assert_int_equal(gm_vhost_mem_set_log(w.vm, lfd, 0, 32), 0);
	start_thread(&th, toggle_writer_thread, &w);
	for (i = 0; i < TOGGLES; i++) {
		unsigned long w0, n;

		__atomic_store_n(&w.phase, 2 * i + 1, __ATOMIC_RELEASE);
		toggles_ok &= gm_vhost_mem_set_logging(w.vm, i % 2 == 0) == 0;
		w.on[i] = i % 2 == 0;
		__atomic_store_n(&w.phase, 2 * i + 2, __ATOMIC_RELEASE);
		/* Some writes in every phase, however loaded the machine (5 s at most). */
		w0 = __atomic_load_n(&w.writes, __ATOMIC_RELAXED);
		for (n = 0; n < 2500 && __atomic_load_n(&w.writes, __ATOMIC_RELAXED) < w0 + 20; n++)
			usleep(2000);
		if (i % 5 == 0)
			toggles_ok &= gm_vhost_mem_set(w.vm, &r, 1) == 0; /* keeps the log */
	}
	__atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
	assert_int_equal(join_threads(&th, 1), 0);
	assert_true(toggles_ok);
	assert_true(w.logged_expected > 0);
	assert_true(w.writes > w.logged_expected);
	assert_int_equal(w.missed, 0);
	assert_true(gm__vhost_mem_invariants_ok(w.vm));
	gm_vhost_mem_free(w.vm);
	munmap(log, 4096);
	close(lfd);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(table_reads_the_fd_bytes_at_guest_addresses),
	    cmocka_unit_test(unaligned_mmap_offset_is_honoured),
	    cmocka_unit_test(user_addresses_translate_inside_one_region_only),
	    cmocka_unit_test(bad_tables_are_refused_with_exact_errno),
	    cmocka_unit_test(region_past_the_end_of_its_file_is_erange),
	    cmocka_unit_test(region_beyond_the_host_address_space_is_eoverflow),
	    cmocka_unit_test(add_and_remove_change_only_their_region),
	    cmocka_unit_test(replaced_table_stays_mapped_for_its_holder),
	    cmocka_unit_test(holder_arguments_are_checked),
	    cmocka_unit_test(log_marks_exactly_the_guest_pages_written),
	    cmocka_unit_test(log_marked_counts_the_pages_newly_set),
	    cmocka_unit_test(log_too_small_for_the_guest_is_refused),
	    cmocka_unit_test(set_log_waits_for_tables_without_the_log),
	    cmocka_unit_test(logging_toggled_under_writes_loses_no_page),
	};
	int ret;

	gm_rcu_register_thread();
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	gm_rcu_unregister_thread();
	return ret;
}
