/* SPDX-License-Identifier: MIT */
/*
 * test_mapping.c - host mappings (<guestmem/mapping.h>).
 *
 * Each flag is checked by what the kernel reports for the mapping (the
 * VmFlags line of /proc/self/smaps, mincore() residency) or by what a
 * forked child suffers when it touches memory it may not (it must die of
 * SIGSEGV). Every rejection is checked for its exact errno, including sizes
 * near SIZE_MAX, which matter most in the 32-bit build. Under qemu-user
 * (the armhf run) the kernel's view is out of reach: those checks skip,
 * with the reason (require_kernel_view()).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <guestmem/mapping.h>

#include "kernel_probe.h"
#include "threads.h"

#define MiB ((size_t)1 << 20)

static size_t page;

/* ---- helpers ---- */

/* Reads a small integer from a /proc or /sys file; -1 if unreadable. */
static long read_long(const char *path)
{
	FILE *f = fopen(path, "re");
	long v = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/*
 * The VmFlags of the mapping (VMA) that holds @addr, as " rd wr mr ... "
 * (padded with spaces so a flag can be searched as " xx "), in @buf.
 * The VMA may start before @addr: the kernel merges a new mapping with a
 * neighbour that has the same flags. Returns false if nothing holds @addr.
 */
static bool vmflags_at(const void *addr, char *buf, size_t len)
{
	char line[512];
	bool in_vma = false, found = false;
	FILE *f = fopen("/proc/self/smaps", "re");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;

		/* A VMA's first line is "start-end perms ..."; no "Key: value" line parses so. */
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2) {
			in_vma = (uintptr_t)addr >= start && (uintptr_t)addr < end;
			continue;
		}
		if (in_vma && strncmp(line, "VmFlags:", 8) == 0) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(buf, len, "%s ", line + 8);
			found = true;
			break;
		}
	}
	fclose(f);
	return found;
}

/*
 * Skips the calling test unless the kernel's own view of this process's
 * memory can be checked here. Under an emulator such as qemu-user it
 * cannot: the emulator maps the program's memory at other host addresses,
 * so /proc/self/smaps describes the emulator's mappings, and it answers
 * madvise() itself (0, whatever the advice) and drops MAP_POPULATE, so
 * neither VmFlags nor mincore() residency say anything about what the
 * library asked for. Probed once: a page advised MADV_DONTDUMP must show
 * "dd" in smaps, and a MAP_POPULATE page must be resident.
 */
static void require_kernel_view(void)
{
	static int known = -1;

	if (known < 0) {
		char flags[600];
		unsigned char vec;
		void *p = mmap(NULL, page, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

		assert_true(p != MAP_FAILED);
		known = madvise(p, page, MADV_DONTDUMP) == 0 &&
			vmflags_at(p, flags, sizeof(flags)) && strstr(flags, " dd ") != NULL &&
			mincore(p, page, &vec) == 0 && (vec & 1);
		munmap(p, page);
	}
	if (!known) {
		print_message("skipped: the kernel's view of this process's memory is not "
			      "visible here (emulated mappings, e.g. qemu-user: /proc/self/smaps, "
			      "madvise() and MAP_POPULATE do not reach the kernel)\n");
		skip();
	}
}

static bool has_vmflag(const void *addr, const char *flag)
{
	char flags[600], want[8];

	require_kernel_view();
	assert_true(vmflags_at(addr, flags, sizeof(flags)));
	snprintf(want, sizeof(want), " %s ", flag);
	return strstr(flags, want) != NULL;
}

/* True if some mapping of this process holds @addr. */
static bool mapped_at(const void *addr)
{
	char flags[600];

	require_kernel_view();
	return vmflags_at(addr, flags, sizeof(flags));
}

/* How many pages of [@addr, @addr + @len) are resident. */
static size_t resident_pages(void *addr, size_t len)
{
	size_t n = (len + page - 1) / page, count = 0;
	unsigned char *vec;

	require_kernel_view();
	vec = calloc(n, 1);
	assert_non_null(vec);
	assert_int_equal(mincore(addr, len, vec), 0);
	for (size_t i = 0; i < n; i++)
		count += vec[i] & 1;
	free(vec);
	return count;
}

enum touch { TOUCH_READ, TOUCH_WRITE };

/*
 * Fork a child that reads or writes the byte at @addr; return the signal
 * it died of (0 if it exited normally).
 */
static int child_touch_signal(volatile char *addr, enum touch how)
{
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit no_core = {0, 0};

		/* Die the plain way: no core file, no sanitizer handler. */
		setrlimit(RLIMIT_CORE, &no_core);
		signal(SIGSEGV, SIG_DFL);
		if (how == TOUCH_WRITE)
			*addr = 1;
		else
			(void)*addr;
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		return WTERMSIG(status);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	return 0;
}

/* A temporary regular file of @len bytes, byte i = (i * 7 + 3) & 0xff; unlinked. */
static int temp_file(size_t len, int oflags)
{
	char path[] = "/tmp/gm-test-mapping-XXXXXX";
	unsigned char *buf = malloc(len);
	int fd = mkstemp(path);

	assert_non_null(buf);
	assert_true(fd >= 0);
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(i * 7 + 3);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	free(buf);
	if (oflags != O_RDWR) {
		int fd2 = open(path, oflags | O_CLOEXEC);

		assert_true(fd2 >= 0);
		close(fd);
		fd = fd2;
	}
	unlink(path);
	return fd;
}

static unsigned char file_byte(size_t i)
{
	return (unsigned char)(i * 7 + 3);
}

static bool is_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFD);

	assert_true(fl >= 0);
	return fl & FD_CLOEXEC;
}

/* ---- anonymous memory ---- */

static void anon_is_zeroed_private_and_writable(void **state)
{
	struct gm_mapping *m;
	unsigned char *p;
	size_t size = 3 * page + 1;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(size, 0, &m), 0);
	p = gm_mapping_host(m);
	assert_non_null(p);
	assert_true((uintptr_t)p % page == 0);
	assert_true(gm_mapping_size(m) == size);
	assert_int_equal(gm_mapping_fd(m), -1);
	assert_true(gm_mapping_fd_offset(m) == 0);
	assert_int_equal(gm_mapping_flags(m), 0);
	for (size_t i = 0; i < size; i++)
		assert_int_equal(p[i], 0);
	p[0] = 0xaa;
	p[size - 1] = 0x55;
	/* The rounding slack is usable memory too: no fault up to the page end. */
	p[4 * page - 1] = 1;
	assert_true(has_vmflag(p, "rd"));
	assert_true(has_vmflag(p, "wr"));
	assert_false(has_vmflag(p, "sh"));
	/* Private: a child's write stays in the child. */
	assert_int_equal(child_touch_signal((volatile char *)p + 1, TOUCH_WRITE), 0);
	assert_int_equal(p[1], 0);
	gm_mapping_put(m);
}

static void anon_shared_is_seen_across_fork(void **state)
{
	struct gm_mapping *m;
	volatile char *p;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(page, GM_MAP_SHARED, &m), 0);
	assert_int_equal(gm_mapping_flags(m), GM_MAP_SHARED);
	p = gm_mapping_host(m);
	assert_true(has_vmflag((void *)p, "sh"));
	assert_int_equal(child_touch_signal(p + 5, TOUCH_WRITE), 0);
	assert_int_equal(p[5], 1);
	gm_mapping_put(m);
}

static void anon_readonly_faults_on_write(void **state)
{
	struct gm_mapping *m;
	volatile char *p;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(2 * page, GM_MAP_READONLY, &m), 0);
	p = gm_mapping_host(m);
	assert_int_equal(p[page], 0);
	assert_true(has_vmflag((void *)p, "rd"));
	assert_false(has_vmflag((void *)p, "wr"));
	assert_int_equal(child_touch_signal(p + page, TOUCH_WRITE), SIGSEGV);
	assert_int_equal(child_touch_signal(p + page, TOUCH_READ), 0);
	gm_mapping_put(m);
}

/* The kernel's PMD size, read here independently of the library; 0 if absent. */
static size_t pmd_size(void)
{
	long v = read_long("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size");

	return v > 0 ? (size_t)v : 0;
}

static void thp_size_is_the_kernels_pmd_size(void **state)
{
	(void)state;
	if (pmd_size() == 0) {
		assert_int_equal(gm_mapping_thp_size(), 2 * MiB);
		print_message("skipped: the kernel does not say its PMD size\n");
		skip();
	}
	assert_int_equal(gm_mapping_thp_size(), pmd_size());
}

static void thp_mapping_is_pmd_aligned_and_advised(void **state)
{
	struct gm_mapping *m;
	size_t pmd = pmd_size();
	char *p;

	(void)state;
	if (access("/sys/kernel/mm/transparent_hugepage", F_OK) != 0) {
		assert_int_equal(gm_mapping_new_anon(4 * MiB, GM_MAP_THP, &m), -EINVAL);
		print_message("skipped: kernel without transparent huge pages\n");
		skip();
	}
	for (int i = 0; i < 4; i++) {
		/* Different sizes land at different places; all must be aligned. */
		assert_int_equal(gm_mapping_new_anon(page * (size_t)(1 + 100 * i), GM_MAP_THP, &m),
				 0);
		p = gm_mapping_host(m);
		assert_true((uintptr_t)p % pmd == 0);
		assert_true(has_vmflag(p, "hg"));
		p[gm_mapping_size(m) - 1] = 1;
		gm_mapping_put(m);
	}
}

/*
 * Without GM_MAP_THP, memory of small pages that can hold a THP still
 * starts THP aligned (guard pages or not, anonymous or memfd), so a
 * system-wide THP policy of "always" can back all of it.
 */
static void large_mapping_is_thp_aligned_without_thp_flag(void **state)
{
	static const unsigned flags[] = {0, GM_MAP_GUARD, GM_MAP_SHARED | GM_MAP_GUARD,
					 GM_MAP_NORESERVE | GM_MAP_GUARD};
	size_t thp = gm_mapping_thp_size();
	struct gm_mapping *m;
	char *p;

	(void)state;
	for (int i = 0; i < 4; i++) {
		/* Sizes that are not whole THPs land anywhere unless aligned. */
		assert_int_equal(gm_mapping_new_anon(thp + page * (size_t)(100 * i), flags[i], &m),
				 0);
		p = gm_mapping_host(m);
		assert_true((uintptr_t)p % thp == 0);
		assert_false(has_vmflag(p, "hg"));
		p[gm_mapping_size(m) - 1] = 1;
		gm_mapping_put(m);
		assert_int_equal(
		    gm_mapping_new_memfd("gm-big", thp + thp / 2, flags[i] & GM_MAP_GUARD, &m), 0);
		assert_true((uintptr_t)gm_mapping_host(m) % thp == 0);
		gm_mapping_put(m);
	}
}

static void thp_memfd_is_pmd_aligned_and_advised(void **state)
{
	struct gm_mapping *m;
	char *p;

	(void)state;
	if (access("/sys/kernel/mm/transparent_hugepage", F_OK) != 0) {
		print_message("skipped: kernel without transparent huge pages\n");
		skip();
	}
	assert_int_equal(gm_mapping_new_memfd("gm-thp", 3 * MiB, GM_MAP_THP, &m), 0);
	p = gm_mapping_host(m);
	assert_true((uintptr_t)p % pmd_size() == 0);
	assert_true(has_vmflag(p, "hg"));
	gm_mapping_put(m);
}

static void populate_prefaults_every_page(void **state)
{
	struct gm_mapping *m;
	size_t size = 16 * page;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(size, 0, &m), 0);
	assert_int_equal(resident_pages(gm_mapping_host(m), size), 0);
	gm_mapping_put(m);

	assert_int_equal(gm_mapping_new_anon(size, GM_MAP_POPULATE, &m), 0);
	assert_int_equal(resident_pages(gm_mapping_host(m), size), 16);
	gm_mapping_put(m);

	assert_int_equal(gm_mapping_new_anon(size, GM_MAP_POPULATE | GM_MAP_SHARED, &m), 0);
	assert_int_equal(resident_pages(gm_mapping_host(m), size), 16);
	gm_mapping_put(m);

	/* Read-only memory is prefaulted for reading (the zero page). */
	assert_int_equal(gm_mapping_new_anon(size, GM_MAP_POPULATE | GM_MAP_READONLY, &m), 0);
	assert_int_equal(resident_pages(gm_mapping_host(m), size), 16);
	gm_mapping_put(m);
}

static void noreserve_sets_vm_noreserve(void **state)
{
	struct gm_mapping *m;

	(void)state;
	if (read_long("/proc/sys/vm/overcommit_memory") == 2) {
		print_message(
		    "skipped: overcommit_memory=2 makes the kernel ignore MAP_NORESERVE\n");
		skip();
	}
	assert_int_equal(gm_mapping_new_anon(page, 0, &m), 0);
	assert_false(has_vmflag(gm_mapping_host(m), "nr"));
	gm_mapping_put(m);
	assert_int_equal(gm_mapping_new_anon(page, GM_MAP_NORESERVE, &m), 0);
	assert_true(has_vmflag(gm_mapping_host(m), "nr"));
	gm_mapping_put(m);
}

static void dontdump_keeps_memory_out_of_core_dumps(void **state)
{
	struct gm_mapping *m;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(page, 0, &m), 0);
	assert_false(has_vmflag(gm_mapping_host(m), "dd"));
	gm_mapping_put(m);
	assert_int_equal(gm_mapping_new_anon(page, GM_MAP_DONTDUMP, &m), 0);
	assert_true(has_vmflag(gm_mapping_host(m), "dd"));
	gm_mapping_put(m);
}

static void mergeable_allows_ksm(void **state)
{
	struct gm_mapping *m;

	(void)state;
	if (access("/sys/kernel/mm/ksm", F_OK) != 0) {
		assert_int_equal(gm_mapping_new_anon(page, GM_MAP_MERGEABLE, &m), -EINVAL);
		print_message("skipped: kernel without KSM\n");
		skip();
	}
	assert_int_equal(gm_mapping_new_anon(page, GM_MAP_MERGEABLE, &m), 0);
	assert_true(has_vmflag(gm_mapping_host(m), "mg"));
	gm_mapping_put(m);
}

/* The byte before and the byte after the page-rounded range fault. */
static void assert_guarded(struct gm_mapping *m)
{
	volatile char *p = gm_mapping_host(m);
	size_t len = (gm_mapping_size(m) + page - 1) / page * page;

	assert_int_equal(child_touch_signal(p - 1, TOUCH_READ), SIGSEGV);
	assert_int_equal(child_touch_signal(p + len, TOUCH_READ), SIGSEGV);
	assert_int_equal(child_touch_signal(p - 1, TOUCH_WRITE), SIGSEGV);
	assert_int_equal(child_touch_signal(p + len, TOUCH_WRITE), SIGSEGV);
	/* The first and last usable bytes do not. */
	assert_int_equal(child_touch_signal(p, TOUCH_WRITE), 0);
	assert_int_equal(child_touch_signal(p + len - 1, TOUCH_WRITE), 0);
	/* The guards are their own PROT_NONE mappings next to the memory. */
	assert_true(mapped_at((const char *)p - page));
	assert_false(has_vmflag((const char *)p - page, "rd"));
	assert_true(mapped_at((const char *)p + len));
	assert_false(has_vmflag((const char *)p + len, "rd"));
}

static void guard_pages_fault_around_anon(void **state)
{
	struct gm_mapping *m;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(5 * page + 10, GM_MAP_GUARD, &m), 0);
	assert_guarded(m);
	gm_mapping_put(m);
	assert_int_equal(gm_mapping_new_anon(page, GM_MAP_GUARD | GM_MAP_SHARED, &m), 0);
	assert_guarded(m);
	gm_mapping_put(m);
	assert_int_equal(gm_mapping_new_anon(3 * MiB, GM_MAP_GUARD | GM_MAP_THP, &m), 0);
	assert_true((uintptr_t)gm_mapping_host(m) % (2 * MiB) == 0);
	assert_guarded(m);
	gm_mapping_put(m);
}

static void guard_pages_fault_around_memfd_and_fd(void **state)
{
	struct gm_mapping *m;
	int fd = temp_file(4 * page, O_RDWR);

	(void)state;
	assert_int_equal(gm_mapping_new_memfd("gm-guard", 2 * page, GM_MAP_GUARD, &m), 0);
	assert_guarded(m);
	gm_mapping_put(m);
	assert_int_equal(gm_mapping_new_fd(fd, page, 2 * page, GM_MAP_GUARD, &m), 0);
	assert_guarded(m);
	gm_mapping_put(m);
	close(fd);
}

/* ---- memfd ---- */

static void memfd_memory_is_seen_through_a_second_mapping(void **state)
{
	struct gm_mapping *m;
	unsigned char *p, *q;
	size_t size = 3 * page;
	int fd;

	(void)state;
	assert_int_equal(gm_mapping_new_memfd("gm-test-memfd", size, 0, &m), 0);
	assert_int_equal(gm_mapping_flags(m), GM_MAP_SHARED);
	fd = gm_mapping_fd(m);
	assert_true(fd >= 0);
	assert_true(is_cloexec(fd));
	assert_true(gm_mapping_fd_offset(m) == 0);
	p = gm_mapping_host(m);
	for (size_t i = 0; i < size; i++)
		assert_int_equal(p[i], 0);
	for (size_t i = 0; i < size; i++)
		p[i] = (unsigned char)(i ^ 0x5a);

	q = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(q != MAP_FAILED);
	assert_memory_equal(p, q, size);
	q[size - 1] = 0x11;
	assert_int_equal(p[size - 1], 0x11);
	munmap(q, size);
	gm_mapping_put(m);
}

static void memfd_is_sized_in_whole_pages(void **state)
{
	struct gm_mapping *m;
	struct stat st;

	(void)state;
	assert_int_equal(gm_mapping_new_memfd("gm-odd", page + 1, 0, &m), 0);
	assert_true(gm_mapping_size(m) == page + 1);
	assert_int_equal(fstat(gm_mapping_fd(m), &st), 0);
	assert_true((size_t)st.st_size == 2 * page);
	gm_mapping_put(m);
}

static void memfd_readonly_faults_on_write(void **state)
{
	struct gm_mapping *m;

	(void)state;
	assert_int_equal(gm_mapping_new_memfd("gm-ro", page, GM_MAP_READONLY, &m), 0);
	assert_int_equal(gm_mapping_flags(m), GM_MAP_READONLY | GM_MAP_SHARED);
	assert_int_equal(child_touch_signal(gm_mapping_host(m), TOUCH_WRITE), SIGSEGV);
	gm_mapping_put(m);
}

static void memfd_rejects_bad_arguments(void **state)
{
	struct gm_mapping *m = (struct gm_mapping *)&m;

	(void)state;
	assert_int_equal(gm_mapping_new_memfd(NULL, page, 0, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_memfd("x", 0, 0, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_memfd("x", page, 0, NULL), -EINVAL);
	assert_int_equal(gm_mapping_new_memfd("x", page, GM_MAP_ALL_FLAGS + 1, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_memfd("x", page, GM_MAP_HUGETLB | GM_MAP_THP, &m), -EINVAL);
	assert_ptr_equal(m, (struct gm_mapping *)&m);
}

/* ---- fd ---- */

static void fd_mapping_sees_the_file_at_its_offset(void **state)
{
	struct gm_mapping *m;
	unsigned char *p;
	int fd = temp_file(4 * page, O_RDWR);

	(void)state;
	assert_int_equal(gm_mapping_new_fd(fd, 2 * page, page + 100, 0, &m), 0);
	/* The mapping has its own fd: the caller's may go at once. */
	assert_true(gm_mapping_fd(m) >= 0);
	assert_int_not_equal(gm_mapping_fd(m), fd);
	assert_true(is_cloexec(gm_mapping_fd(m)));
	close(fd);
	assert_true(gm_mapping_fd_offset(m) == 2 * page);
	assert_true(gm_mapping_size(m) == page + 100);
	p = gm_mapping_host(m);
	for (size_t i = 0; i < page + 100; i++)
		assert_int_equal(p[i], file_byte(2 * page + i));
	gm_mapping_put(m);
}

static void fd_private_mapping_does_not_write_the_file(void **state)
{
	struct gm_mapping *m;
	unsigned char *p, b;
	int fd = temp_file(2 * page, O_RDWR);

	(void)state;
	assert_int_equal(gm_mapping_new_fd(fd, 0, 2 * page, 0, &m), 0);
	assert_false(has_vmflag(gm_mapping_host(m), "sh"));
	p = gm_mapping_host(m);
	p[10] = (unsigned char)~file_byte(10);
	assert_int_equal(p[10], (unsigned char)~file_byte(10));
	assert_int_equal(pread(fd, &b, 1, 10), 1);
	assert_int_equal(b, file_byte(10));
	gm_mapping_put(m);
	assert_int_equal(pread(fd, &b, 1, 10), 1);
	assert_int_equal(b, file_byte(10));
	close(fd);
}

static void fd_shared_mapping_writes_the_file(void **state)
{
	struct gm_mapping *m;
	unsigned char *p, b;
	int fd = temp_file(2 * page, O_RDWR);

	(void)state;
	assert_int_equal(gm_mapping_new_fd(fd, page, page, GM_MAP_SHARED, &m), 0);
	p = gm_mapping_host(m);
	p[10] = 0xee;
	assert_int_equal(pread(fd, &b, 1, (off_t)page + 10), 1);
	assert_int_equal(b, 0xee);
	gm_mapping_put(m);
	close(fd);
}

static void fd_shared_writable_mapping_of_readonly_fd_is_refused(void **state)
{
	struct gm_mapping *m;
	int fd = temp_file(page, O_RDONLY);

	(void)state;
	assert_int_equal(gm_mapping_new_fd(fd, 0, page, GM_MAP_SHARED, &m), -EACCES);
	assert_int_equal(gm_mapping_new_fd(fd, 0, page, GM_MAP_SHARED | GM_MAP_READONLY, &m), 0);
	assert_int_equal(gm_mapping_protect(m, 0, page, PROT_READ | PROT_WRITE), -EACCES);
	gm_mapping_put(m);
	close(fd);
}

static void fd_populate_past_end_of_file_fails_with_efault(void **state)
{
	struct gm_mapping *m = (struct gm_mapping *)&m;
	int fd = temp_file(page, O_RDWR);

	(void)state;
	/* The window maps; only touching the second page would SIGBUS. */
	assert_int_equal(gm_mapping_new_fd(fd, 0, 2 * page, 0, &m), 0);
	assert_int_equal(((unsigned char *)gm_mapping_host(m))[page - 1], file_byte(page - 1));
	gm_mapping_put(m);
	m = (struct gm_mapping *)&m;
	require_kernel_view(); /* prefaulting must reach the kernel to fail */
	assert_int_equal(gm_mapping_new_fd(fd, 0, 2 * page, GM_MAP_POPULATE, &m), -EFAULT);
	assert_int_equal(gm_mapping_new_fd(fd, 0, 2 * page, GM_MAP_POPULATE | GM_MAP_SHARED, &m),
			 -EFAULT);
	assert_ptr_equal(m, (struct gm_mapping *)&m);
	/* Within the file, populate works for private and shared windows. */
	assert_int_equal(gm_mapping_new_fd(fd, 0, page, GM_MAP_POPULATE, &m), 0);
	assert_int_equal(resident_pages(gm_mapping_host(m), page), 1);
	gm_mapping_put(m);
	assert_int_equal(gm_mapping_new_fd(fd, 0, page, GM_MAP_POPULATE | GM_MAP_SHARED, &m), 0);
	assert_int_equal(resident_pages(gm_mapping_host(m), page), 1);
	gm_mapping_put(m);
	close(fd);
}

static void fd_mapping_of_a_memfd_shares_its_pages(void **state)
{
	struct gm_mapping *owner, *peer;
	unsigned char *a, *b;

	(void)state;
	/* What a vhost-user back end does with the fd it is sent. */
	assert_int_equal(gm_mapping_new_memfd("gm-peer", 4 * page, 0, &owner), 0);
	assert_int_equal(
	    gm_mapping_new_fd(gm_mapping_fd(owner), page, 2 * page, GM_MAP_SHARED, &peer), 0);
	a = gm_mapping_host(owner);
	b = gm_mapping_host(peer);
	a[page + 3] = 0x42;
	assert_int_equal(b[3], 0x42);
	b[2 * page - 1] = 0x24;
	assert_int_equal(a[3 * page - 1], 0x24);
	/* The peer keeps the memory alive on its own. */
	gm_mapping_put(owner);
	assert_int_equal(b[3], 0x42);
	gm_mapping_put(peer);
}

static void fd_rejects_bad_arguments(void **state)
{
	struct gm_mapping *m = (struct gm_mapping *)&m;
	int fd = temp_file(page, O_RDWR), closed;

	(void)state;
	assert_int_equal(gm_mapping_new_fd(-1, 0, page, 0, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_fd(fd, 0, page, 0, NULL), -EINVAL);
	assert_int_equal(gm_mapping_new_fd(fd, 0, 0, 0, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_fd(fd, 1, page, 0, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_fd(fd, page - 1, page, 0, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_fd(fd, 0, page, GM_MAP_ALL_FLAGS + 1, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_fd(fd, 0, page, 0x80000000u, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_fd(fd, 0, page, GM_MAP_HUGETLB, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_fd(fd, 0, page, GM_MAP_THP, &m), -EINVAL);
	/* offset + size wraps past 2^64, or passes the largest off_t. */
	assert_int_equal(gm_mapping_new_fd(fd, UINT64_MAX - page + 1, page, 0, &m), -EOVERFLOW);
	assert_int_equal(gm_mapping_new_fd(fd, UINT64_MAX - page + 1, 2 * page, 0, &m), -EOVERFLOW);
	assert_int_equal(gm_mapping_new_fd(fd, (uint64_t)INT64_MAX + 1, page, 0, &m), -EOVERFLOW);
	assert_int_equal(gm_mapping_new_fd(fd, (uint64_t)INT64_MAX - page + 1, page, 0, &m),
			 -EOVERFLOW);
	/* A number that is not an open fd. */
	closed = dup(fd);
	assert_true(closed >= 0);
	close(closed);
	assert_int_equal(gm_mapping_new_fd(closed, 0, page, 0, &m), -EBADF);
	assert_ptr_equal(m, (struct gm_mapping *)&m);
	close(fd);
}

/* ---- anonymous rejections and sizes near SIZE_MAX ---- */

/*
 * The errno a plain mmap() of @len bytes fails with: ENOMEM from Linux,
 * EINVAL under valgrind, which refuses such sizes itself. The library
 * must pass it through unchanged.
 */
static int raw_mmap_error(size_t len)
{
	void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	assert_true(p == MAP_FAILED);
	return -errno;
}

static void anon_rejects_bad_arguments(void **state)
{
	struct gm_mapping *m = (struct gm_mapping *)&m;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(0, 0, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_anon(page, 0, NULL), -EINVAL);
	assert_int_equal(gm_mapping_new_anon(page, GM_MAP_ALL_FLAGS + 1, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_anon(page, 1u << 31, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_anon(page, GM_MAP_HUGETLB | GM_MAP_THP, &m), -EINVAL);
	assert_ptr_equal(m, (struct gm_mapping *)&m);
}

static void sizes_near_size_max_fail_cleanly(void **state)
{
	struct gm_mapping *m = (struct gm_mapping *)&m;
	size_t top = SIZE_MAX & ~(page - 1); /* the largest page-aligned size */
	int fd = temp_file(page, O_RDWR), rc, nomem;

	(void)state;
	/* Rounding up to a page overflows. */
	assert_int_equal(gm_mapping_new_anon(SIZE_MAX, 0, &m), -EOVERFLOW);
	assert_int_equal(gm_mapping_new_anon(top + 1, 0, &m), -EOVERFLOW);
	assert_int_equal(gm_mapping_new_memfd("big", SIZE_MAX, 0, &m), -EOVERFLOW);
	/* The memory fits size_t but no address space can hold it. */
	nomem = raw_mmap_error(top);
	assert_true(nomem == -ENOMEM || nomem == -EINVAL);
	assert_int_equal(gm_mapping_new_anon(top, 0, &m), nomem);
	assert_int_equal(gm_mapping_new_anon(top, GM_MAP_SHARED | GM_MAP_POPULATE, &m), nomem);
	/* Guard pages or THP alignment slack push it past SIZE_MAX. */
	assert_int_equal(gm_mapping_new_anon(top, GM_MAP_GUARD, &m), -EOVERFLOW);
	assert_int_equal(gm_mapping_new_anon(top - page, GM_MAP_GUARD, &m), -EOVERFLOW);
	assert_int_equal(gm_mapping_new_anon(top, GM_MAP_THP, &m), -EOVERFLOW);
	assert_int_equal(gm_mapping_new_anon(top - 2 * MiB, GM_MAP_THP | GM_MAP_GUARD, &m),
			 -EOVERFLOW);
	/* memfd: too big for off_t on 64-bit hosts, for the address space on 32-bit ones. */
	rc = gm_mapping_new_memfd("big", top, 0, &m);
	assert_true(rc == -EOVERFLOW || rc == nomem);
	if (sizeof(size_t) == 8)
		assert_int_equal(rc, -EOVERFLOW);
	rc = gm_mapping_new_fd(fd, 0, top, 0, &m);
	assert_true(rc == -EOVERFLOW || rc == nomem);
	if (sizeof(size_t) == 8)
		assert_int_equal(rc, -EOVERFLOW);
	if (sizeof(size_t) == 4) {
		/* 3.5 GiB cannot fit beside this program in a 4 GiB address space. */
		assert_int_equal(gm_mapping_new_anon((size_t)7 << 29, 0, &m),
				 raw_mmap_error((size_t)7 << 29));
	}
	assert_ptr_equal(m, (struct gm_mapping *)&m);
	close(fd);
}

/* The lowest free fd number: equal before and after a call that leaks none. */
static int lowest_free_fd(void)
{
	int fd = dup(0);

	assert_true(fd >= 0);
	close(fd);
	return fd;
}

/*
 * An fd window whose size, rounded to pages or with its guard pages, passes
 * SIZE_MAX is -EOVERFLOW (64-bit hosts already refuse it as an off_t), and
 * the duplicate fd taken on the way is closed again.
 */
static void fd_size_past_size_max_with_guards_is_eoverflow(void **state)
{
	struct gm_mapping *m = (struct gm_mapping *)&m;
	size_t top = SIZE_MAX & ~(page - 1);
	int fd = temp_file(page, O_RDWR), before;

	(void)state;
	before = lowest_free_fd();
	assert_int_equal(gm_mapping_new_fd(fd, 0, SIZE_MAX, 0, &m), -EOVERFLOW);
	assert_int_equal(gm_mapping_new_fd(fd, 0, top, GM_MAP_GUARD, &m), -EOVERFLOW);
	assert_int_equal(gm_mapping_new_fd(fd, 0, top - page, GM_MAP_GUARD, &m), -EOVERFLOW);
	assert_int_equal(lowest_free_fd(), before);
	assert_ptr_equal(m, (struct gm_mapping *)&m);
	close(fd);
}

/* ---- hugetlb ---- */

static void hugetlb_short_pool_fails_at_creation(void **state)
{
	struct gm_mapping *m = (struct gm_mapping *)&m;

	(void)state;
	if (read_long("/proc/sys/vm/nr_hugepages") != 0 ||
	    read_long("/proc/sys/vm/nr_overcommit_hugepages") > 0) {
		print_message("skipped: hugepages are reserved here\n");
		skip();
	}
	require_kernel_view(); /* qemu-user refuses MAP_HUGETLB itself (EINVAL) */
	assert_int_equal(gm_mapping_new_anon(2 * MiB, GM_MAP_HUGETLB, &m), -ENOMEM);
	assert_int_equal(gm_mapping_new_anon(2 * MiB, GM_MAP_HUGETLB | GM_MAP_GUARD, &m), -ENOMEM);
	assert_int_equal(gm_mapping_new_memfd("huge", 2 * MiB, GM_MAP_HUGETLB, &m), -ENOMEM);
	/*
	 * GM_MAP_NORESERVE does not make hugetlb memory lazy: without the
	 * reservation these would map and die of SIGBUS on the first touch.
	 */
	assert_int_equal(gm_mapping_new_anon(2 * MiB, GM_MAP_HUGETLB | GM_MAP_NORESERVE, &m),
			 -ENOMEM);
	assert_int_equal(
	    gm_mapping_new_anon(2 * MiB, GM_MAP_HUGETLB | GM_MAP_NORESERVE | GM_MAP_POPULATE, &m),
	    -ENOMEM);
	assert_int_equal(
	    gm_mapping_new_anon(2 * MiB, GM_MAP_HUGETLB | GM_MAP_NORESERVE | GM_MAP_SHARED, &m),
	    -ENOMEM);
	assert_int_equal(
	    gm_mapping_new_memfd("huge", 2 * MiB, GM_MAP_HUGETLB | GM_MAP_NORESERVE, &m), -ENOMEM);
	assert_ptr_equal(m, (struct gm_mapping *)&m);
}

static void hugepage_info_names_the_pool(void **state)
{
	struct gm_hugepage_info info = GM_OPTS(gm_hugepage_info);
	struct gm_hugepage_info small = {.sz = GM_OFFSETOFEND(gm_hugepage_info, total)};
	long hp_kib = -1;
	char line[128], want[64];
	FILE *f = fopen("/proc/meminfo", "re");

	(void)state;
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Hugepagesize: %ld kB", &hp_kib) == 1)
			break;
	fclose(f);
	if (hp_kib <= 0) {
		assert_int_equal(gm_mapping_hugepage_info(0, &info), -ENOENT);
		print_message("skipped: kernel without hugetlb pages\n");
		skip();
	}
	assert_int_equal(gm_mapping_hugepage_info(0, &info), 0);
	assert_int_equal(info.sz, sizeof(info));
	assert_int_equal(info.page_size, (size_t)hp_kib << 10);
	/* The default size's pool is the one /proc/sys/vm/nr_hugepages sizes. */
	assert_int_equal(info.total, read_long("/proc/sys/vm/nr_hugepages"));
	assert_int_equal(info.overcommit, read_long("/proc/sys/vm/nr_overcommit_hugepages"));
	assert_true(info.free <= info.total + info.surplus);
	snprintf(want, sizeof(want), "/sys/kernel/mm/hugepages/hugepages-%ldkB", hp_kib);
	assert_string_equal(info.pool, want);
	assert_int_equal(gm_mapping_hugepage_info(info.page_size, &info), 0);
	assert_int_equal(info.page_size, (size_t)hp_kib << 10);

	/* A short struct gets its sz of bytes, nothing past. */
	small.free = 12345;
	assert_int_equal(gm_mapping_hugepage_info(0, &small), 0);
	assert_int_equal(small.sz, GM_OFFSETOFEND(gm_hugepage_info, total));
	assert_int_equal(small.total, info.total);
	assert_int_equal(small.free, 12345);

	/* No pool of 8 KiB pages anywhere; bad sizes and structs. */
	assert_int_equal(gm_mapping_hugepage_info(8192, &info), -ENOENT);
	assert_int_equal(gm_mapping_hugepage_info(3000, &info), -EINVAL);
	assert_int_equal(gm_mapping_hugepage_info(512, &info), -EINVAL);
	assert_int_equal(gm_mapping_hugepage_info(0, NULL), -EINVAL);
	info.sz = 2;
	assert_int_equal(gm_mapping_hugepage_info(0, &info), -EINVAL);
}

static void hugetlb_maps_huge_pages_with_huge_guards(void **state)
{
	struct gm_mapping *m;
	char *p;
	long hp;

	(void)state;
	if (read_long("/proc/sys/vm/nr_hugepages") <= 0) {
		print_message("skipped: no hugepages reserved\n");
		skip();
	}
	require_kernel_view(); /* qemu-user refuses MAP_HUGETLB itself (EINVAL) */
	hp = 2 * (long)MiB;    /* the default on x86; checked through the alignment below */
	assert_int_equal(gm_mapping_new_anon(100, GM_MAP_HUGETLB | GM_MAP_GUARD, &m), 0);
	p = gm_mapping_host(m);
	assert_true((uintptr_t)p % (uintptr_t)hp == 0);
	assert_true(has_vmflag(p, "ht"));
	p[hp - 1] = 1;
	assert_true(mapped_at(p - hp));
	assert_true(mapped_at(p + hp));
	assert_int_equal(child_touch_signal(p - 1, TOUCH_READ), SIGSEGV);
	assert_int_equal(child_touch_signal(p + hp, TOUCH_READ), SIGSEGV);
	gm_mapping_put(m);

	assert_int_equal(gm_mapping_new_memfd("huge", 100, GM_MAP_HUGETLB, &m), 0);
	assert_true((uintptr_t)gm_mapping_host(m) % (uintptr_t)hp == 0);
	gm_mapping_put(m);
}

/* ---- discard ---- */

/* Bytes of [@p, @p + @len) resident now (mincore): the range's Rss. */
static uint64_t rss_of(void *p, size_t len)
{
	unsigned char *vec = malloc(len / page);
	uint64_t n = 0;

	assert_non_null(vec);
	assert_int_equal(mincore(p, len, vec), 0);
	for (size_t i = 0; i < len / page; i++)
		n += vec[i] & 1;
	free(vec);
	return n * page;
}

/* Bytes allocated to @fd's file (st_blocks). */
static uint64_t blocks_of(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512u;
}

static bool all_zero(const unsigned char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/* Fill all of @m, discard its middle @len bytes at @off, check what remains. */
static uint64_t fill_and_discard(struct gm_mapping *m, size_t off, size_t len, unsigned flags)
{
	unsigned char *p = gm_mapping_host(m);
	size_t size = gm_mapping_size(m);
	uint64_t freed = 0;

	memset(p, 0xa5, size);
	assert_int_equal(rss_of(p + off, len), len);
	assert_int_equal(gm_mapping_discard(m, off, len, flags, &freed), 0);
	if (!(flags & GM_DISCARD_LAZY)) {
		assert_int_equal(rss_of(p + off, len), 0); /* the memory went */
		assert_true(all_zero(p + off, len));	   /* and reads as zero */
	}
	assert_int_equal(p[off - 1], 0xa5); /* the rest is untouched */
	assert_int_equal(p[off + len], 0xa5);
	return freed;
}

static void discard_frees_private_anonymous_memory(void **state)
{
	struct gm_mapping *m;

	(void)state;
	require_kernel_view();
	assert_int_equal(gm_mapping_new_anon(4 * MiB, 0, &m), 0);
	assert_int_equal(gm_mapping_page_size(m), page);
	assert_int_equal(fill_and_discard(m, 1 * MiB, 2 * MiB, 0), 2 * MiB);
	/*
	 * fill_and_discard() read the range back: where the kernel gives such
	 * a read a page of its own rather than the zero page, the next discard
	 * frees those. Discarded again with no access since, nothing is left.
	 */
	uint64_t freed = 1;
	assert_int_equal(gm_mapping_discard(m, 1 * MiB, 2 * MiB, 0, &freed), 0);
	assert_int_equal(freed, kernel_reads_allocate_anon_pages() ? 2 * MiB : 0);
	freed = 1;
	assert_int_equal(gm_mapping_discard(m, 1 * MiB, 2 * MiB, 0, &freed), 0);
	assert_int_equal(freed, 0);
	/* Lazy: the kernel takes the pages when it needs them; writes still work. */
	assert_int_equal(fill_and_discard(m, 1 * MiB, 2 * MiB, GM_DISCARD_LAZY), 2 * MiB);
	((unsigned char *)gm_mapping_host(m))[1 * MiB] = 7;
	assert_int_equal(((unsigned char *)gm_mapping_host(m))[1 * MiB], 7);
	gm_mapping_put(m);
}

static void discard_frees_shared_anonymous_memory(void **state)
{
	struct gm_mapping *m;

	(void)state;
	require_kernel_view();
	assert_int_equal(gm_mapping_new_anon(4 * MiB, GM_MAP_SHARED, &m), 0);
	assert_int_equal(fill_and_discard(m, 1 * MiB, 2 * MiB, 0), 2 * MiB);
	assert_int_equal(gm_mapping_discard(m, 0, page, GM_DISCARD_LAZY, NULL), -EINVAL);
	gm_mapping_put(m);
}

static void discard_punches_a_memfd_for_every_process(void **state)
{
	struct gm_mapping *m, *other;
	uint64_t before;
	unsigned char *q;

	(void)state;
	require_kernel_view();
	assert_int_equal(gm_mapping_new_memfd("discard", 4 * MiB, 0, &m), 0);
	/* A second mapping of the same fd: another process, a vhost-user back end. */
	assert_int_equal(gm_mapping_new_fd(gm_mapping_fd(m), 0, 4 * MiB, GM_MAP_SHARED, &other), 0);
	q = gm_mapping_host(other);
	memset(gm_mapping_host(m), 0xa5, 4 * MiB);
	before = blocks_of(gm_mapping_fd(m));
	assert_true(before >= 4 * MiB);
	/* MADV_DONTNEED would free nothing here; the hole punch frees the pages. */
	uint64_t punched = 0;
	assert_int_equal(gm_mapping_discard(m, 1 * MiB, 2 * MiB, 0, &punched), 0);
	assert_int_equal(punched, 2 * MiB);
	assert_int_equal(blocks_of(gm_mapping_fd(m)), before - 2 * MiB);
	assert_int_equal(rss_of(q + 1 * MiB, 2 * MiB), 0);
	/* Both mappings read zeros (reading a hole of shared memory allocates again). */
	assert_true(all_zero(q + 1 * MiB, 2 * MiB));
	assert_int_equal(q[1 * MiB - 1], 0xa5);
	assert_int_equal(fill_and_discard(m, 1 * MiB, 2 * MiB, 0), 2 * MiB);
	/* Through the other mapping of the fd: the same file, already a hole. */
	assert_int_equal(gm_mapping_discard(m, 1 * MiB, 2 * MiB, 0, NULL), 0);
	uint64_t freed = 1;
	assert_int_equal(gm_mapping_discard(other, 1 * MiB, 2 * MiB, 0, &freed), 0);
	assert_int_equal(freed, 0);
	assert_int_equal(gm_mapping_discard(m, 0, page, GM_DISCARD_LAZY, NULL), -EINVAL);
	gm_mapping_put(other);
	gm_mapping_put(m);
}

static void discard_frees_whole_huge_pages_only(void **state)
{
	struct gm_mapping *m;
	size_t hp;

	(void)state;
	if (read_long("/proc/sys/vm/nr_hugepages") < 4) {
		print_message("skipped: fewer than 4 hugepages reserved\n");
		skip();
	}
	require_kernel_view();
	assert_int_equal(gm_mapping_new_memfd("huge-discard", 4 * 2 * MiB, GM_MAP_HUGETLB, &m), 0);
	hp = gm_mapping_page_size(m);
	assert_true(hp > page);
	assert_int_equal(gm_mapping_discard(m, page, hp, 0, NULL), -EINVAL);
	assert_int_equal(gm_mapping_discard(m, hp, page, 0, NULL), -EINVAL);
	assert_int_equal(fill_and_discard(m, hp, hp, 0), hp);
	gm_mapping_put(m);
}

static void discard_refuses_what_it_cannot_free(void **state)
{
	struct gm_mapping *m, *priv, *ro;
	unsigned char *p;
	uint64_t freed = 42;

	(void)state;
	assert_int_equal(gm_mapping_new_memfd("discard-bad", 4 * MiB, 0, &m), 0);
	p = gm_mapping_host(m);
	memset(p, 0x5a, 4 * MiB);
	assert_int_equal(gm_mapping_discard(NULL, 0, page, 0, &freed), -EINVAL);
	assert_int_equal(gm_mapping_discard(m, 0, 0, 0, &freed), -EINVAL);
	assert_int_equal(gm_mapping_discard(m, 1, page, 0, &freed), -EINVAL);
	assert_int_equal(gm_mapping_discard(m, 0, page + 1, 0, &freed), -EINVAL);
	assert_int_equal(gm_mapping_discard(m, 4 * MiB, page, 0, &freed), -EINVAL);
	assert_int_equal(gm_mapping_discard(m, page, 4 * MiB, 0, &freed), -EINVAL);
	assert_int_equal(gm_mapping_discard(m, page, SIZE_MAX - page + 1, 0, &freed), -EINVAL);
	assert_int_equal(gm_mapping_discard(m, 0, page, 1u << 5, &freed), -EINVAL);
	/* Copy-on-write of a file: the pages would read back as the file. */
	assert_int_equal(gm_mapping_new_fd(gm_mapping_fd(m), 0, 4 * MiB, 0, &priv), 0);
	assert_int_equal(gm_mapping_discard(priv, 0, page, 0, &freed), -EOPNOTSUPP);
	assert_int_equal(
	    gm_mapping_new_fd(gm_mapping_fd(m), 0, 4 * MiB, GM_MAP_SHARED | GM_MAP_READONLY, &ro),
	    0);
	assert_int_equal(gm_mapping_discard(ro, 0, page, 0, &freed), -EACCES);
	/* Nothing was discarded and *freed untouched. */
	assert_int_equal(freed, 42);
	for (size_t i = 0; i < 4 * MiB; i += page)
		assert_int_equal(p[i], 0x5a);
	gm_mapping_put(ro);
	gm_mapping_put(priv);
	gm_mapping_put(m);
}

/* ---- protect ---- */

static void protect_readonly_then_write_faults(void **state)
{
	struct gm_mapping *m;
	volatile char *p;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(4 * page, 0, &m), 0);
	p = gm_mapping_host(m);
	p[page] = 7;
	assert_int_equal(gm_mapping_protect(m, page, 2 * page, PROT_READ), 0);
	assert_int_equal(child_touch_signal(p + page, TOUCH_WRITE), SIGSEGV);
	assert_int_equal(child_touch_signal(p + 3 * page - 1, TOUCH_WRITE), SIGSEGV);
	assert_int_equal(child_touch_signal(p + page, TOUCH_READ), 0);
	assert_int_equal(p[page], 7);
	/* Outside the protected part nothing changed. */
	assert_int_equal(child_touch_signal(p, TOUCH_WRITE), 0);
	assert_int_equal(child_touch_signal(p + 3 * page, TOUCH_WRITE), 0);

	assert_int_equal(gm_mapping_protect(m, 0, 4 * page, PROT_NONE), 0);
	assert_int_equal(child_touch_signal(p, TOUCH_READ), SIGSEGV);
	assert_int_equal(gm_mapping_protect(m, 0, 4 * page, PROT_READ | PROT_WRITE), 0);
	p[page] = 8;
	assert_int_equal(p[page], 8);
	gm_mapping_put(m);
}

static void protect_rejects_bad_ranges(void **state)
{
	struct gm_mapping *m;
	size_t size = 3 * page + 1; /* rounds to 4 pages */

	(void)state;
	assert_int_equal(gm_mapping_new_anon(size, 0, &m), 0);
	assert_int_equal(gm_mapping_protect(NULL, 0, page, PROT_READ), -EINVAL);
	assert_int_equal(gm_mapping_protect(m, 0, 0, PROT_READ), -EINVAL);
	assert_int_equal(gm_mapping_protect(m, 1, page, PROT_READ), -EINVAL);
	assert_int_equal(gm_mapping_protect(m, 0, page + 1, PROT_READ), -EINVAL);
	assert_int_equal(gm_mapping_protect(m, 0, 5 * page, PROT_READ), -EINVAL);
	assert_int_equal(gm_mapping_protect(m, 4 * page, page, PROT_READ), -EINVAL);
	assert_int_equal(gm_mapping_protect(m, 3 * page, 2 * page, PROT_READ), -EINVAL);
	assert_int_equal(gm_mapping_protect(m, 5 * page, page, PROT_READ), -EINVAL);
	/* offset + len wraps size_t: must not wrap back inside. */
	assert_int_equal(gm_mapping_protect(m, page, SIZE_MAX & ~(page - 1), PROT_READ), -EINVAL);
	assert_int_equal(gm_mapping_protect(m, SIZE_MAX & ~(page - 1), 2 * page, PROT_READ),
			 -EINVAL);
	assert_int_equal(gm_mapping_protect(m, 0, page, PROT_READ | 0x10), -EINVAL);
	assert_int_equal(gm_mapping_protect(m, 0, page, -1), -EINVAL);
	/* The whole rounded range is fine. */
	assert_int_equal(gm_mapping_protect(m, 0, 4 * page, PROT_READ), 0);
	gm_mapping_put(m);
}

static void protect_refuses_write_on_readonly_mapping(void **state)
{
	struct gm_mapping *m;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(page, GM_MAP_READONLY, &m), 0);
	assert_int_equal(gm_mapping_protect(m, 0, page, PROT_READ | PROT_WRITE), -EACCES);
	assert_int_equal(gm_mapping_protect(m, 0, page, PROT_NONE), 0);
	assert_int_equal(gm_mapping_protect(m, 0, page, PROT_READ), 0);
	gm_mapping_put(m);
}

/* ---- references ---- */

static void last_put_unmaps_and_closes(void **state)
{
	struct gm_mapping *m;
	char *p;
	int fd;

	(void)state;
	assert_int_equal(gm_mapping_new_memfd("gm-refs", page, 0, &m), 0);
	p = gm_mapping_host(m);
	fd = gm_mapping_fd(m);
	assert_ptr_equal(gm_mapping_get(m), m);
	assert_ptr_equal(gm_mapping_get(m), m);
	gm_mapping_put(m);
	gm_mapping_put(m);
	/* One reference left: still mapped and open. */
	p[0] = 1;
	assert_true(mapped_at(p));
	assert_true(fcntl(fd, F_GETFD) >= 0);
	gm_mapping_put(m);
	assert_false(mapped_at(p));
	assert_int_equal(fcntl(fd, F_GETFD), -1);
	assert_int_equal(errno, EBADF);
}

static void last_put_unmaps_guards_too(void **state)
{
	struct gm_mapping *m;
	char *p;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(page, GM_MAP_GUARD, &m), 0);
	p = gm_mapping_host(m);
	assert_true(mapped_at(p - page));
	gm_mapping_put(m);
	assert_false(mapped_at(p - page));
	assert_false(mapped_at(p));
	assert_false(mapped_at(p + page));
}

#define REF_THREADS 4
#define REF_ROUNDS  20000

static void *get_put_loop(void *arg)
{
	struct gm_mapping *m = arg;

	for (int i = 0; i < REF_ROUNDS; i++) {
		gm_mapping_put(gm_mapping_get(m));
		((volatile char *)gm_mapping_host(m))[0];
	}
	gm_mapping_put(m); /* the reference main() took for this thread */
	return NULL;
}

static void references_from_many_threads_balance(void **state)
{
	pthread_t t[REF_THREADS];
	struct gm_mapping *m;
	char *p;

	(void)state;
	assert_int_equal(gm_mapping_new_anon(page, 0, &m), 0);
	p = gm_mapping_host(m);
	for (int i = 0; i < REF_THREADS; i++)
		start_thread(&t[i], get_put_loop, gm_mapping_get(m));
	assert_int_equal(join_threads(t, REF_THREADS), 0);
	/* Exactly the constructor's reference is left. */
	assert_true(mapped_at(p));
	gm_mapping_put(m);
	assert_false(mapped_at(p));
}

static void put_null_is_ignored(void **state)
{
	(void)state;
	gm_mapping_put(NULL);
}

static void every_flag_at_once_works(void **state)
{
	struct gm_mapping *m;
	unsigned flags = GM_MAP_ALL_FLAGS & ~(GM_MAP_HUGETLB | GM_MAP_READONLY | GM_MAP_PEER);
	char *p;

	(void)state;
	if (access("/sys/kernel/mm/ksm", F_OK) != 0)
		flags &= ~GM_MAP_MERGEABLE;
	assert_int_equal(gm_mapping_new_anon(3 * MiB, flags, &m), 0);
	assert_int_equal(gm_mapping_flags(m), flags);
	p = gm_mapping_host(m);
	assert_true((uintptr_t)p % (2 * MiB) == 0);
	assert_true(has_vmflag(p, "dd"));
	assert_true(has_vmflag(p, "hg"));
	assert_true(has_vmflag(p, "sh"));
	assert_int_equal(resident_pages(p, 3 * MiB), 3 * MiB / page);
	assert_guarded(m);
	gm_mapping_put(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(anon_is_zeroed_private_and_writable),
	    cmocka_unit_test(anon_shared_is_seen_across_fork),
	    cmocka_unit_test(anon_readonly_faults_on_write),
	    cmocka_unit_test(thp_size_is_the_kernels_pmd_size),
	    cmocka_unit_test(thp_mapping_is_pmd_aligned_and_advised),
	    cmocka_unit_test(thp_memfd_is_pmd_aligned_and_advised),
	    cmocka_unit_test(large_mapping_is_thp_aligned_without_thp_flag),
	    cmocka_unit_test(populate_prefaults_every_page),
	    cmocka_unit_test(noreserve_sets_vm_noreserve),
	    cmocka_unit_test(dontdump_keeps_memory_out_of_core_dumps),
	    cmocka_unit_test(mergeable_allows_ksm),
	    cmocka_unit_test(guard_pages_fault_around_anon),
	    cmocka_unit_test(guard_pages_fault_around_memfd_and_fd),
	    cmocka_unit_test(memfd_memory_is_seen_through_a_second_mapping),
	    cmocka_unit_test(memfd_is_sized_in_whole_pages),
	    cmocka_unit_test(memfd_readonly_faults_on_write),
	    cmocka_unit_test(memfd_rejects_bad_arguments),
	    cmocka_unit_test(fd_mapping_sees_the_file_at_its_offset),
	    cmocka_unit_test(fd_private_mapping_does_not_write_the_file),
	    cmocka_unit_test(fd_shared_mapping_writes_the_file),
	    cmocka_unit_test(fd_shared_writable_mapping_of_readonly_fd_is_refused),
	    cmocka_unit_test(fd_populate_past_end_of_file_fails_with_efault),
	    cmocka_unit_test(fd_mapping_of_a_memfd_shares_its_pages),
	    cmocka_unit_test(fd_rejects_bad_arguments),
	    cmocka_unit_test(anon_rejects_bad_arguments),
	    cmocka_unit_test(sizes_near_size_max_fail_cleanly),
	    cmocka_unit_test(fd_size_past_size_max_with_guards_is_eoverflow),
	    cmocka_unit_test(hugetlb_short_pool_fails_at_creation),
	    cmocka_unit_test(hugepage_info_names_the_pool),
	    cmocka_unit_test(hugetlb_maps_huge_pages_with_huge_guards),
	    cmocka_unit_test(protect_readonly_then_write_faults),
	    cmocka_unit_test(protect_rejects_bad_ranges),
	    cmocka_unit_test(protect_refuses_write_on_readonly_mapping),
	    cmocka_unit_test(last_put_unmaps_and_closes),
	    cmocka_unit_test(last_put_unmaps_guards_too),
	    cmocka_unit_test(references_from_many_threads_balance),
	    cmocka_unit_test(put_null_is_ignored),
	    cmocka_unit_test(every_flag_at_once_works),
	    cmocka_unit_test(discard_frees_private_anonymous_memory),
	    cmocka_unit_test(discard_frees_shared_anonymous_memory),
	    cmocka_unit_test(discard_punches_a_memfd_for_every_process),
	    cmocka_unit_test(discard_frees_whole_huge_pages_only),
	    cmocka_unit_test(discard_refuses_what_it_cannot_free),
	};

	page = (size_t)sysconf(_SC_PAGESIZE);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
