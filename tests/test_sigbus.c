/* SPDX-License-Identifier: MIT */
/*
 * test_sigbus.c - memory the peer can truncate (GM_MAP_PEER, mapping.h):
 * a file another process shrinks under a mapping turns the accesses past
 * its new end into -EFAULT instead of killing the process with SIGBUS; a
 * memfd sealed against shrinking is recorded and left alone; a SIGBUS
 * anywhere else still reaches the action that was there before.
 *
 * cmocka installs its own SIGBUS handler around each test and restores
 * the previous one after; the library installs its handler again each
 * time a peer mapping is made (mapping.c), so every test below makes its
 * peer mappings inside the test. The tests whose process is meant to die
 * run in a child (fork) with core dumps off.
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
#include <sys/wait.h>
#include <unistd.h>

#include <guestmem/guestmem.h>

#include "threads.h"

#define NPAGES	 16u
#define ANON_GPA 0x100000u /* the healthy region, after the peer's */

static size_t page;

/* A memfd of @size bytes; with @seal, sealed so it can never shrink. */
static int memfd_of(size_t size, bool seal)
{
	int fd = memfd_create("test-peer", MFD_CLOEXEC | (seal ? MFD_ALLOW_SEALING : 0));

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	if (seal)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK), 0);
	return fd;
}

/*
 * A view of two regions: the peer's @fd (NPAGES pages, GM_MAP_PEER) at
 * gpa 0, and anonymous memory at ANON_GPA. *@peer gets the peer mapping
 * (the view holds its own reference; the caller puts both).
 */
static struct gm_memory *view_of(int fd, struct gm_mapping **peer)
{
	struct gm_region_spec spec[2] = {{0}};
	struct gm_mapping *anon;
	struct gm_memory *m;

	assert_int_equal(gm_mapping_new_fd(fd, 0, NPAGES * page, GM_MAP_SHARED | GM_MAP_PEER, peer),
			 0);
	assert_int_equal(gm_mapping_new_anon(NPAGES * page, 0, &anon), 0);
	spec[0].gpa = 0;
	spec[0].size = NPAGES * page;
	spec[0].mapping = *peer;
	spec[1].gpa = ANON_GPA;
	spec[1].size = NPAGES * page;
	spec[1].mapping = anon;
	assert_int_equal(gm_memory_new(spec, 2, &m), 0);
	gm_mapping_put(anon);
	return m;
}

/* Run @fn in a child with core dumps off; returns its wait status. */
/*
 * Valgrind delivers the SIGBUS of a page past the end of a file itself, and
 * not as the kernel does: inside its own memset() the fault is reported at
 * the data written rather than at the page, and a child that exits from a
 * handler has its status replaced by valgrind's leak verdict. The tests that
 * depend on either say so and skip there.
 */
static void skip_under_valgrind(void)
{
	const char *pre = getenv("LD_PRELOAD");

	if (pre != NULL && strstr(pre, "vgpreload") != NULL) {
		print_message("skipped: running under valgrind, which delivers SIGBUS of a "
			      "truncated file mapping in its own way\n");
		skip();
	}
}

/*
 * Under qemu-user (the armhf run) a SIGBUS past a file's end is the
 * emulator's own: it does not reach the program's handler as the kernel's
 * does (qemu-user 7.2 dies of "uncaught target signal 7"), so no test that
 * faults in a peer mapping can run there.
 */
static void skip_under_emulator(void)
{
	const char *emu = getenv("GM_EMULATOR");

	if (emu != NULL && emu[0] != 0) {
		print_message("skipped: under qemu-user a SIGBUS past a file's end is the "
			      "emulator's, not the library's to contain\n");
		skip();
	}
}

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

/*
 * Under ThreadSanitizer an atomic on guest memory runs inside TSan's
 * runtime, which holds a lock of its own across the access; a SIGBUS
 * there runs the library's handler, whose first atomic waits for that
 * same lock forever. Not a bug of the library: TSan cannot take a fault
 * inside its own atomics.
 */
static void skip_atomics_under_tsan(void)
{
#ifdef UNDER_TSAN
	print_message("skipped: ThreadSanitizer deadlocks when an atomic access faults "
		      "(its runtime holds its slot lock across the access, and the SIGBUS "
		      "handler's own atomics wait for it)\n");
	skip();
#endif
}

static int in_child(void (*fn)(void))
{
	struct rlimit no_core = {0, 0};
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setrlimit(RLIMIT_CORE, &no_core);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

/* A non-peer mapping one page longer than its file: touching that page is a plain SIGBUS. */
static volatile unsigned char *stray_page(void)
{
	struct gm_mapping *m;
	int fd = memfd_create("test-stray", MFD_CLOEXEC);

	if (fd < 0 || gm_mapping_new_fd(fd, 0, page, GM_MAP_SHARED, &m))
		_exit(3);
	close(fd);
	return gm_mapping_host(m); /* the file is empty: the page is past its end */
}

/* Install a peer mapping in the child, so our handler is SIGBUS's action. */
static void make_peer_mapping(void)
{
	struct gm_mapping *m;
	int fd = memfd_create("test-peer", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, (off_t)page) || gm_mapping_new_fd(fd, 0, page, GM_MAP_PEER, &m))
		_exit(3);
	close(fd);
}

static volatile unsigned char *stray;

static void exit_42_on_stray_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	_exit(sig == SIGBUS && si->si_code == BUS_ADRERR && si->si_addr == (void *)stray ? 42 : 43);
}

static void chained_child(void)
{
	struct sigaction sa = {0};

	sa.sa_sigaction = exit_42_on_stray_fault;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	stray = stray_page();
	make_peer_mapping();
	(void)stray[0];
}

static void exit_44_handler(int sig)
{
	_exit(sig == SIGBUS ? 44 : 45);
}

static void chained_plain_child(void)
{
	signal(SIGBUS, exit_44_handler);
	stray = stray_page();
	make_peer_mapping();
	(void)stray[0];
}

/*
 * A program installs its own handler after the first peer mapping: the
 * next peer mapping puts ours back in front and chains to it.
 */
static void replaced_child(void)
{
	struct sigaction sa = {0};
	struct gm_mapping *m;
	int fd = memfd_create("test-peer", MFD_CLOEXEC);

	make_peer_mapping();
	sa.sa_sigaction = exit_42_on_stray_fault;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	stray = stray_page();
	if (fd < 0 || ftruncate(fd, (off_t)page) ||
	    gm_mapping_new_fd(fd, 0, page, GM_MAP_SHARED | GM_MAP_PEER, &m) || ftruncate(fd, 0))
		_exit(3);
	((volatile unsigned char *)gm_mapping_host(m))[0] = 1; /* absorbed */
	if (!gm_mapping_truncated(m))
		_exit(4);
	(void)stray[0]; /* chained: exits 42 */
}

static void sigbus_outside_peer_mappings_reaches_the_previous_handler(void **state)
{
	int status;

	(void)state;
	skip_under_valgrind();
	skip_under_emulator();
	status = in_child(chained_child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 42);
	status = in_child(chained_plain_child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 44);
	status = in_child(replaced_child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 42);
}

static void default_child(void)
{
	signal(SIGBUS, SIG_DFL); /* whatever the sanitizers or cmocka put there */
	stray = stray_page();
	make_peer_mapping();
	(void)stray[0];
}

static void killed_child(void)
{
	signal(SIGBUS, SIG_DFL);
	make_peer_mapping();
	kill(getpid(), SIGBUS);
}

static void sigbus_outside_peer_mappings_still_kills_by_default(void **state)
{
	int status;

	(void)state;
	status = in_child(default_child);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGBUS);
	/* A SIGBUS sent by a process (not a fault) too. */
	status = in_child(killed_child);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGBUS);
}

static void truncated_peer_memory_fails_with_efault_and_the_rest_works(void **state)
{
	unsigned char pat[64], buf[64];
	struct gm_mapping *peer;
	struct gm_memory *m;
	unsigned before;
	int fd = memfd_of(NPAGES * page, false);

	(void)state;
	skip_under_emulator();
	m = view_of(fd, &peer);
	assert_false(gm_mapping_sealed(peer));
	memset(pat, 0x5a, sizeof(pat));
	assert_int_equal(gm_write(m, 0, pat, sizeof(pat)), 0);
	assert_int_equal(gm_write(m, ANON_GPA, pat, sizeof(pat)), 0);

	/* The peer keeps one page. */
	assert_int_equal(ftruncate(fd, (off_t)page), 0);
	before = gm_mapping_fault_count();
	assert_false(gm_mapping_truncated(peer));
	assert_int_equal(gm_read(m, 2 * page, buf, sizeof(buf)), -EFAULT);
	assert_true(gm_mapping_truncated(peer));
	assert_int_equal(gm_mapping_fault_count(), before + 1);
	assert_int_equal(gm_write(m, 3 * page, pat, sizeof(pat)), -EFAULT);
	/* A read that starts in the kept page and ends past it. */
	assert_int_equal(gm_read(m, page - 8, buf, 16), -EFAULT);
	assert_int_equal(gm_mapping_fault_count(), before + 3);

	/* What the peer kept, and the other region, still work. */
	memset(buf, 0, sizeof(buf));
	assert_int_equal(gm_read(m, 0, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, pat, sizeof(pat));
	memset(buf, 0, sizeof(buf));
	assert_int_equal(gm_read(m, ANON_GPA, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, pat, sizeof(pat));
	assert_int_equal(gm_write(m, ANON_GPA + page, pat, sizeof(pat)), 0);
	assert_int_equal(gm_mapping_fault_count(), before + 3);

	/* A replaced page reads as zeros from then on, without a fault (mapping.h). */
	memset(buf, 1, sizeof(buf));
	assert_int_equal(gm_read(m, 2 * page, buf, sizeof(buf)), 0);
	assert_int_equal(buf[0], 0);
	assert_int_equal(buf[63], 0);
	gm_memory_put(m);
	gm_mapping_put(peer);
	close(fd);
}

static void every_checked_accessor_reports_the_fault(void **state)
{
	struct gm_mapping *peer;
	struct gm_memory *m;
	unsigned char buf[32] = {0};
	uint64_t v64 = 0, exp64 = 0;
	uint32_t v32 = 0;
	size_t done = 99;
	int fd;

	(void)state;
	skip_under_valgrind();
	skip_under_emulator();
	skip_atomics_under_tsan();
	fd = memfd_of(NPAGES * page, false);
	m = view_of(fd, &peer);
	assert_int_equal(ftruncate(fd, 0), 0);
	/* One page each: a replaced page does not fault again. The exported, not the inline, forms.
	 */
	assert_int_equal((gm_read_u32)(m, 0 * page, &v32), -EFAULT);
	assert_int_equal((gm_write_u64)(m, 1 * page, 7), -EFAULT);
	assert_int_equal(gm_read_partial(m, 2 * page, buf, sizeof(buf), &done), -EFAULT);
	assert_int_equal(done, 0);
	done = 99;
	assert_int_equal(gm_write_partial(m, 3 * page, buf, sizeof(buf), &done), -EFAULT);
	assert_int_equal(done, 0);
	assert_int_equal(gm_fill(m, 4 * page, 0xff, 64), -EFAULT);
	assert_int_equal(gm_copy(m, ANON_GPA, 5 * page, 64), -EFAULT);
	assert_int_equal(gm_copy(m, 6 * page, ANON_GPA, 64), -EFAULT);
	assert_int_equal(gm_atomic_fetch_add_u32(m, 7 * page, 1, &v32, __ATOMIC_SEQ_CST), -EFAULT);
	assert_int_equal(gm_atomic_cmpxchg_u64(m, 8 * page, &exp64, 1, __ATOMIC_SEQ_CST), -EFAULT);
	assert_int_equal((gm_atomic_load_u64)(m, 9 * page, &v64, __ATOMIC_ACQUIRE), -EFAULT);
	assert_int_equal((gm_atomic_store_u32)(m, 10 * page, 1, __ATOMIC_RELEASE), -EFAULT);
	assert_int_equal((gm_read_le16)(m, 11 * page, (uint16_t *)(void *)buf), -EFAULT);
	assert_int_equal(gm_write(m, 12 * page, buf, sizeof(buf)), -EFAULT);
	assert_true(gm_mapping_truncated(peer));
	/* The kernel refuses fd I/O there by itself. */
	{
		int p[2];

		assert_int_equal(pipe(p), 0);
		assert_int_equal(write(p[1], buf, sizeof(buf)), (ssize_t)sizeof(buf));
		assert_int_equal(gm_read_from_fd(m, 13 * page, p[0], -1, sizeof(buf), &done),
				 -EFAULT);
		close(p[0]);
		close(p[1]);
	}
	gm_memory_put(m);
	gm_mapping_put(peer);
	close(fd);
}

/* The inline fast path completes on zeros; the fault count tells. */
static void inline_accesses_are_counted_not_checked(void **state)
{
	struct gm_mapping *peer;
	struct gm_memory *m;
	uint64_t v = 1;
	unsigned before;
	int fd = memfd_of(NPAGES * page, false);

	(void)state;
	skip_under_emulator();
	m = view_of(fd, &peer);
	assert_int_equal(ftruncate(fd, 0), 0);
	before = gm_mapping_fault_count();
	assert_int_equal(gm_read_u64(m, 0, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(gm_mapping_fault_count(), before + 1);
	assert_true(gm_mapping_truncated(peer));
	gm_memory_put(m);
	gm_mapping_put(peer);
	close(fd);
}

struct healthy_reader {
	const struct gm_memory *m;
	int err;
	unsigned faults_before, faults_after;
};

static void *read_healthy(void *arg)
{
	struct healthy_reader *h = arg;
	unsigned char buf[64];

	h->faults_before = gm_mapping_fault_count();
	h->err = gm_read(h->m, ANON_GPA, buf, sizeof(buf));
	h->faults_after = gm_mapping_fault_count();
	return NULL;
}

/* The count is the faulting thread's: another thread's accesses go on succeeding. */
static void a_fault_is_counted_on_its_own_thread(void **state)
{
	struct healthy_reader h = {0};
	struct gm_mapping *peer;
	struct gm_memory *m;
	unsigned char buf[8];
	pthread_t t;
	int fd = memfd_of(NPAGES * page, false);

	(void)state;
	skip_under_emulator();
	m = view_of(fd, &peer);
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(gm_read(m, 0, buf, sizeof(buf)), -EFAULT);
	h.m = m;
	start_thread(&t, read_healthy, &h);
	assert_int_equal(join_threads(&t, 1), 0);
	assert_int_equal(h.err, 0);
	assert_int_equal(h.faults_after, h.faults_before);
	gm_memory_put(m);
	gm_mapping_put(peer);
	close(fd);
}

static int sealed_fd;
static void *sealed_host;

static void touch_past_sealed_end(void)
{
	signal(SIGBUS, SIG_DFL);
	make_peer_mapping(); /* our handler is in force again */
	(void)((volatile unsigned char *)sealed_host)[3 * page];
}

static void sealed_memfd_shorter_than_its_window_is_contained_too(void **state)
{
	struct gm_mapping *peer;
	int status;

	(void)state;
	skip_under_valgrind();
	skip_under_emulator();
	sealed_fd = memfd_of(2 * page, true);
	/* A window longer than the file, so the child can touch past its end. */
	assert_int_equal(
	    gm_mapping_new_fd(sealed_fd, 0, 4 * page, GM_MAP_SHARED | GM_MAP_PEER, &peer), 0);
	assert_true(gm_mapping_sealed(peer));
	assert_int_equal(ftruncate(sealed_fd, (off_t)page), -1);
	assert_int_equal(errno, EPERM);
	/*
	 * Sealed, but shorter than the window the peer named: a touch past the
	 * end is contained all the same (the child lives and exits 0).
	 */
	sealed_host = gm_mapping_host(peer);
	status = in_child(touch_past_sealed_end);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_false(gm_mapping_truncated(peer)); /* the child's, not ours */
	gm_mapping_put(peer);
	close(sealed_fd);
}

static void peer_flag_is_for_fds_only(void **state)
{
	struct gm_mapping *m;
	int fd = memfd_of(page, false);

	(void)state;
	assert_int_equal(gm_mapping_new_anon(page, GM_MAP_PEER, &m), -EINVAL);
	assert_int_equal(gm_mapping_new_memfd("x", page, GM_MAP_PEER, &m), -EINVAL);
	/* A plain file has no seals: unsealed. */
	assert_int_equal(gm_mapping_new_fd(fd, 0, page, GM_MAP_PEER, &m), 0);
	assert_false(gm_mapping_sealed(m));
	assert_int_equal(gm_mapping_flags(m), GM_MAP_PEER);
	gm_mapping_put(m);
	/* Without the flag nothing is recorded. */
	assert_int_equal(gm_mapping_new_fd(fd, 0, page, 0, &m), 0);
	assert_false(gm_mapping_sealed(m));
	gm_mapping_put(m);
	close(fd);
}

/* A vhost-user table (whose regions are peer mappings) says it was truncated. */
static void vhost_table_of_a_truncated_fd_fails_and_says_so(void **state)
{
	struct gm_vhost_region r = {.gpa = 0, .size = NPAGES * page, .uaddr = 0x10000000};
	struct gm_vhost_table *t;
	unsigned char buf[16];
	int fd = memfd_of(NPAGES * page, false);

	(void)state;
	skip_under_emulator();
	r.fd = fd;
	assert_int_equal(gm_vhost_table_new(&r, 1, 1, &t), 0);
	assert_false(gm_vhost_table_truncated(t));
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(gm_read(gm_vhost_table_memory(t), page, buf, sizeof(buf)), -EFAULT);
	assert_true(gm_vhost_table_truncated(t));
	gm_vhost_table_put(t);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sigbus_outside_peer_mappings_reaches_the_previous_handler),
	    cmocka_unit_test(sigbus_outside_peer_mappings_still_kills_by_default),
	    cmocka_unit_test(truncated_peer_memory_fails_with_efault_and_the_rest_works),
	    cmocka_unit_test(every_checked_accessor_reports_the_fault),
	    cmocka_unit_test(inline_accesses_are_counted_not_checked),
	    cmocka_unit_test(a_fault_is_counted_on_its_own_thread),
	    cmocka_unit_test(sealed_memfd_shorter_than_its_window_is_contained_too),
	    cmocka_unit_test(peer_flag_is_for_fds_only),
	    cmocka_unit_test(vhost_table_of_a_truncated_fd_fails_and_says_so),
	};

	page = (size_t)sysconf(_SC_PAGESIZE);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
