/* SPDX-License-Identifier: MIT */
/*
 * test_prefault.c - parallel prefault (gm_mapping_prefault(),
 * gm_space_prefault()): every page is faulted in, each exactly once
 * (the process's minor faults grow by the number of pages, not twice
 * that), with MADV_POPULATE_WRITE and with the touch loop; contents are
 * kept; progress ends at the total and a callback that says stop cancels
 * with the rest not faulted in.
 *
 * Under qemu-user (the armhf run) madvise() is answered by the emulator
 * and mincore()/getrusage() describe the emulator's memory, so the tests
 * that count pages skip there with the reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <guestmem/space.h>

#define MiB ((size_t)1 << 20)

static size_t page;

static bool under_emulator(void)
{
	const char *emu = getenv("GM_EMULATOR");

	return emu != NULL && emu[0] != 0;
}

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

static void require_kernel(void);

/* Faults can be counted per guest page: no emulator, no ThreadSanitizer, no valgrind. */
static void require_countable_faults(void)
{
	const char *pre = getenv("LD_PRELOAD");

#ifdef UNDER_TSAN
	print_message("skipped: ThreadSanitizer faults in shadow memory and thread state of its "
		      "own, so the process's faults are not one per guest page\n");
	skip();
#endif
	if (pre != NULL && strstr(pre, "vgpreload") != NULL) {
		print_message("skipped: valgrind faults in memory of its own, so the process's "
			      "faults are not one per guest page\n");
		skip();
	}
	require_kernel();
}

static void require_kernel(void)
{
	if (under_emulator()) {
		print_message(
		    "skipped: qemu-user answers madvise() itself and mincore()/getrusage() "
		    "describe the emulator, so faults cannot be counted under it\n");
		skip();
	}
}

/* Pages of [@p, @p + @len) resident now. */
static size_t resident_pages(void *p, size_t len)
{
	unsigned char *vec = malloc(len / page);
	size_t n = 0;

	assert_non_null(vec);
	assert_int_equal(mincore(p, len, vec), 0);
	for (size_t i = 0; i < len / page; i++)
		n += vec[i] & 1;
	free(vec);
	return n;
}

static long minor_faults(void)
{
	struct rusage ru;

	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return ru.ru_minflt;
}

/* A private anonymous mapping of @len bytes with THP off, so each 4 KiB page is one fault. */
static struct gm_mapping *small_pages(size_t len)
{
	struct gm_mapping *m;

	assert_int_equal(gm_mapping_new_anon(len, 0, &m), 0);
	/* Where THP is compiled out the advice is -EINVAL and pages are small anyway. */
	(void)madvise(gm_mapping_host(m), len, MADV_NOHUGEPAGE);
	return m;
}

/*
 * Prefault 64 MiB with @threads threads and @flags, and check that every
 * page came in and the process took one fault per page: a page done twice
 * would count twice. The slack covers the threads' own stacks and the
 * test's bookkeeping.
 */
static void check_once(unsigned threads, unsigned flags)
{
	size_t len = 64 * MiB, pages = len / page;
	struct gm_mapping *m = small_pages(len);
	long before, faults, slack = 64 + 32 * (long)(threads ? threads : 8);

	assert_int_equal(resident_pages(gm_mapping_host(m), len), 0);
	before = minor_faults();
	assert_int_equal(
	    gm_mapping_prefault(m, 0, len,
				&GM_OPTS(gm_prefault_opts, .threads = threads, .flags = flags)),
	    0);
	faults = minor_faults() - before;
	assert_int_equal(resident_pages(gm_mapping_host(m), len), pages);
	print_message("threads %u flags %u: %ld faults for %zu pages\n", threads, flags, faults,
		      pages);
	assert_true(faults >= (long)pages);
	assert_true(faults <= (long)pages + slack);
	/* Present pages cost no fault a second time. */
	before = minor_faults();
	assert_int_equal(gm_mapping_prefault(m, 0, len, NULL), 0);
	assert_true(minor_faults() - before <= slack);
	gm_mapping_put(m);
}

static void every_page_once_with_populate(void **state)
{
	(void)state;
	require_countable_faults();
	check_once(1, 0);
	check_once(4, 0);
	check_once(0, 0);
}

static void every_page_once_with_the_touch_loop(void **state)
{
	(void)state;
	require_countable_faults();
	check_once(1, GM_PREFAULT_TOUCH);
	check_once(4, GM_PREFAULT_TOUCH);
}

static void contents_are_kept(void **state)
{
	size_t len = 8 * MiB;
	struct gm_mapping *m = small_pages(len);
	unsigned char *p = gm_mapping_host(m);

	(void)state;
	for (size_t off = 0; off < len; off += 3 * page)
		p[off + 7] = (unsigned char)(off / page);
	assert_int_equal(gm_mapping_prefault(m, 0, len, &GM_OPTS(gm_prefault_opts, .threads = 3)),
			 0);
	assert_int_equal(
	    gm_mapping_prefault(
		m, 0, len, &GM_OPTS(gm_prefault_opts, .threads = 3, .flags = GM_PREFAULT_TOUCH)),
	    0);
	for (size_t off = 0; off < len; off += page)
		assert_int_equal(p[off + 7], off % (3 * page) ? 0 : (unsigned char)(off / page));
	gm_mapping_put(m);
}

static void shared_memfd_gets_its_blocks(void **state)
{
	struct gm_mapping *m;
	struct stat st;

	(void)state;
	require_kernel();
	assert_int_equal(gm_mapping_new_memfd("prefault", 16 * MiB, 0, &m), 0);
	assert_int_equal(gm_mapping_prefault(m, 4 * MiB, 8 * MiB, NULL), 0);
	assert_int_equal(fstat(gm_mapping_fd(m), &st), 0);
	assert_int_equal((uint64_t)st.st_blocks * 512u, 8 * MiB);
	assert_int_equal(resident_pages((char *)gm_mapping_host(m) + 4 * MiB, 8 * MiB),
			 8 * MiB / page);
	gm_mapping_put(m);
}

static void readonly_mapping_is_faulted_in_readable(void **state)
{
	struct gm_mapping *m;

	(void)state;
	require_kernel();
	assert_int_equal(gm_mapping_new_anon(4 * MiB, GM_MAP_READONLY, &m), 0);
	assert_int_equal(gm_mapping_prefault(m, 0, 4 * MiB, NULL), 0);
	assert_int_equal(gm_mapping_prefault(
			     m, 0, 4 * MiB, &GM_OPTS(gm_prefault_opts, .flags = GM_PREFAULT_TOUCH)),
			 0);
	gm_mapping_put(m);
}

struct progress {
	uint64_t last, total;
	unsigned calls, stop_at;
	bool went_back;
};

static int on_progress(void *opaque, uint64_t done, uint64_t total)
{
	struct progress *pr = opaque;

	if (done < pr->last)
		pr->went_back = true;
	pr->last = done;
	pr->total = total;
	pr->calls++;
	return pr->stop_at && pr->calls >= pr->stop_at;
}

static void progress_ends_at_the_total(void **state)
{
	size_t len = 16 * MiB;
	struct gm_mapping *m = small_pages(len);
	struct progress pr = {0};

	(void)state;
	/*
	 * Two threads: only the calling one reports, after each chunk it
	 * finishes, so how often depends on how the chunks fell (under a slow
	 * emulator the other thread may take all but one): at least once, at
	 * the total, never going back.
	 */
	assert_int_equal(gm_mapping_prefault(m, 0, len,
					     &GM_OPTS(gm_prefault_opts, .threads = 2,
						      .progress = on_progress, .opaque = &pr)),
			 0);
	assert_false(pr.went_back);
	assert_int_equal(pr.last, len);
	assert_int_equal(pr.total, len);
	assert_true(pr.calls >= 1);
	/* One thread does every chunk itself: a report after each of them. */
	memset(&pr, 0, sizeof(pr));
	assert_int_equal(gm_mapping_prefault(m, 0, len,
					     &GM_OPTS(gm_prefault_opts, .threads = 1,
						      .progress = on_progress, .opaque = &pr)),
			 0);
	assert_false(pr.went_back);
	assert_int_equal(pr.last, len);
	assert_true(pr.calls >= 2);
	gm_mapping_put(m);
}

static void a_callback_that_says_stop_cancels(void **state)
{
	size_t len = 32 * MiB;
	struct gm_mapping *m = small_pages(len);
	struct progress pr = {.stop_at = 1};

	(void)state;
	/* One thread: the first chunk (2 MiB) is done, the callback stops the rest. */
	assert_int_equal(gm_mapping_prefault(m, 0, len,
					     &GM_OPTS(gm_prefault_opts, .threads = 1,
						      .progress = on_progress, .opaque = &pr)),
			 -ECANCELED);
	assert_int_equal(pr.calls, 1);
	assert_int_equal(pr.last, 2 * MiB);
	if (!under_emulator())
		assert_int_equal(resident_pages(gm_mapping_host(m), len), 2 * MiB / page);
	/* Several threads: each finishes what it holds, then all stop and are joined. */
	pr = (struct progress){.stop_at = 1};
	assert_int_equal(gm_mapping_prefault(m, 0, len,
					     &GM_OPTS(gm_prefault_opts, .threads = 4,
						      .progress = on_progress, .opaque = &pr)),
			 -ECANCELED);
	assert_int_equal(pr.calls, 1);
	gm_mapping_put(m);
}

static void bad_arguments_are_refused(void **state)
{
	struct gm_mapping *m = small_pages(4 * MiB);
	struct gm_prefault_opts bad = {.sz = 2};

	(void)state;
	assert_int_equal(gm_mapping_prefault(NULL, 0, page, NULL), -EINVAL);
	assert_int_equal(gm_mapping_prefault(m, 0, 0, NULL), -EINVAL);
	assert_int_equal(gm_mapping_prefault(m, 1, page, NULL), -EINVAL);
	assert_int_equal(gm_mapping_prefault(m, 0, page + 1, NULL), -EINVAL);
	assert_int_equal(gm_mapping_prefault(m, page, 4 * MiB, NULL), -EINVAL);
	assert_int_equal(gm_mapping_prefault(m, SIZE_MAX - page + 1, 2 * page, NULL), -EINVAL);
	assert_int_equal(
	    gm_mapping_prefault(m, 0, page, &GM_OPTS(gm_prefault_opts, .flags = 1u << 7)), -EINVAL);
	assert_int_equal(gm_mapping_prefault(m, 0, page, &bad), -EINVAL);
	gm_mapping_put(m);
}

static void space_prefault_covers_every_ram_window(void **state)
{
	struct gm_space *s;
	struct gm_window *a, *b, *rom;
	struct gm_window_info ia = GM_OPTS(gm_window_info), ib = GM_OPTS(gm_window_info);
	struct progress pr = {0};
	static const char fw[8] = "fw";

	(void)state;
	assert_int_equal(gm_space_new(0, &s), 0);
	/* Window a: 4 MiB used of 16 MiB capacity; only the used part is faulted in. */
	assert_int_equal(gm_space_add_ram(s, 0, 4 * MiB, 16 * MiB, GM_MAP_NORESERVE, &a), 0);
	assert_int_equal(gm_space_add_ram(s, 64 * MiB, 6 * MiB, 0, 0, &b), 0);
	assert_int_equal(gm_space_add_rom(s, 128 * MiB, 64 * 1024, fw, sizeof(fw), &rom), 0);
	/* A read-only run in window b is still host memory to fault in. */
	assert_int_equal(gm_space_protect(s, b, 0, 1 * MiB, GM_PROT_READ), 0);
	assert_int_equal(gm_space_window_info(s, a, &ia), 0);
	assert_int_equal(gm_space_window_info(s, b, &ib), 0);
	(void)madvise(gm_mapping_host(ia.mapping), 16 * MiB, MADV_NOHUGEPAGE);
	(void)madvise(gm_mapping_host(ib.mapping), 6 * MiB, MADV_NOHUGEPAGE);

	assert_int_equal(gm_space_prefault(s, &GM_OPTS(gm_prefault_opts, .threads = 2,
						       .progress = on_progress, .opaque = &pr)),
			 0);
	assert_int_equal(pr.total, 10 * MiB);
	assert_int_equal(pr.last, 10 * MiB);
	if (!under_emulator()) {
		assert_int_equal(resident_pages(gm_mapping_host(ia.mapping), 4 * MiB),
				 4 * MiB / page);
		assert_int_equal(
		    resident_pages((char *)gm_mapping_host(ia.mapping) + 4 * MiB, 12 * MiB), 0);
		assert_int_equal(resident_pages(gm_mapping_host(ib.mapping), 6 * MiB),
				 6 * MiB / page);
	}
	assert_int_equal(gm_space_prefault(NULL, NULL), -EINVAL);
	gm_space_free(s);
}

static void space_prefault_of_an_empty_space_succeeds(void **state)
{
	struct gm_space *s;
	struct progress pr = {0};

	(void)state;
	assert_int_equal(gm_space_new(0, &s), 0);
	assert_int_equal(gm_space_prefault(
			     s, &GM_OPTS(gm_prefault_opts, .progress = on_progress, .opaque = &pr)),
			 0);
	assert_int_equal(pr.calls, 1);
	assert_int_equal(pr.total, 0);
	gm_space_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_page_once_with_populate),
	    cmocka_unit_test(every_page_once_with_the_touch_loop),
	    cmocka_unit_test(contents_are_kept),
	    cmocka_unit_test(shared_memfd_gets_its_blocks),
	    cmocka_unit_test(readonly_mapping_is_faulted_in_readable),
	    cmocka_unit_test(progress_ends_at_the_total),
	    cmocka_unit_test(a_callback_that_says_stop_cancels),
	    cmocka_unit_test(bad_arguments_are_refused),
	    cmocka_unit_test(space_prefault_covers_every_ram_window),
	    cmocka_unit_test(space_prefault_of_an_empty_space_succeeds),
	};

	page = (size_t)sysconf(_SC_PAGESIZE);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
