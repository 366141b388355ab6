/* SPDX-License-Identifier: MIT */
/*
 * tests/test_vhost_blk_aio.c - many requests at once, and the io_uring
 * path (issue 21): one kick of many requests completed each as it ends,
 * reads marking the guest pages they fill dirty, and with liburing a ring
 * setup that fails (falling back to sync) and writes sent to the ring only
 * when they would block (the io_uring calls and pwritev2() wrapped,
 * tests/meson.build).
 * Part of the test_vhost_blk program (test_vhost_blk.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "test_vhost_blk.h"
#include "vhost_blk_frontend.h"

/* ---- tests: many requests at once, and the io_uring path (issue 21) ---- */

#ifdef GM_HAVE_LIBURING
#include <liburing.h>

/*
 * Ring setup fails while fail_ring_setup is set (a kernel without
 * io_uring); every submission records how many SQEs it carried.
 */
int __real_io_uring_queue_init_params(unsigned entries, struct io_uring *ring,
				      struct io_uring_params *p);
int __real_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr);
static int fail_ring_setup, ring_setups_failed;
static unsigned largest_submission;

int __wrap_io_uring_queue_init_params(unsigned entries, struct io_uring *ring,
				      struct io_uring_params *p)
{
	if (__atomic_load_n(&fail_ring_setup, __ATOMIC_ACQUIRE)) {
		__atomic_fetch_add(&ring_setups_failed, 1, __ATOMIC_RELAXED);
		return -ENOSYS;
	}
	return __real_io_uring_queue_init_params(entries, ring, p);
}

int __wrap_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr)
{
	unsigned n = io_uring_sq_ready(ring);

	if (n > __atomic_load_n(&largest_submission, __ATOMIC_RELAXED))
		__atomic_store_n(&largest_submission, n, __ATOMIC_RELAXED);
	return __real_io_uring_submit_and_wait(ring, wait_nr);
}
#endif

#define MANY 21u /* three descriptors each: 63 of the 64 */

/*
 * One kick offers MANY requests: 4 KiB reads, with a GET_ID every fourth.
 * Each comes back once, with its own length, status and data. With
 * io_uring the reads go to the kernel in one submission and the GET_IDs,
 * served at once, overtake them: the used ring is in completion order,
 * not in the order the requests were offered.
 */
static void many_requests_in_one_kick_complete_each_as_it_finishes(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct fe_queue *q = &f.q[0];
	bool seen[MANY] = {false}, in_order = true;
	struct blk_stats st;
	uint64_t one = 1;
	uint8_t *g;
	unsigned i, j;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
#ifdef GM_HAVE_LIBURING
	__atomic_store_n(&largest_submission, 0, __ATOMIC_RELAXED);
#endif
	g = gm_host_ptr(f.m, DATA, MANY * 4096);
	memset(g, 0xcc, MANY * 4096);
	for (i = 0; i < MANY; i++) {
		bool get_id = i % 4 == 3;
		gm_gpa_t hdr = q->hdr + 16ull * i;

		assert_int_equal(gm_write_le32(f.m, hdr, get_id ? T_GET_ID : T_IN), 0);
		assert_int_equal(gm_write_le32(f.m, hdr + 4, 0), 0);
		assert_int_equal(gm_write_le64(f.m, hdr + 8, 8ull * i), 0);
		assert_int_equal(gm_write_u8(f.m, q->status + i, 0xee), 0);
		put_desc(&f, q, 3 * i, hdr, 16, 1, (uint16_t)(3 * i + 1));
		put_desc(&f, q, 3 * i + 1, DATA + 4096ull * i, get_id ? 20 : 4096, 1 | 2,
			 (uint16_t)(3 * i + 2));
		put_desc(&f, q, 3 * i + 2, q->status + i, 1, 2, 0);
		assert_int_equal(gm_write_le16(f.m, q->avail + 4 + 2ull * i, (uint16_t)(3 * i)), 0);
	}
	/* All at once: one index store, one kick. */
	assert_int_equal(gm_write_le16(f.m, q->avail + 4 + 2ull * QSIZE, 0), 0);
	q->avail_idx = MANY;
	assert_int_equal(gm_atomic_store_u32(f.m, q->avail, MANY << 16, __ATOMIC_RELEASE), 0);
	assert_int_equal(write(q->kick, &one, 8), 8);
	for (j = 0; j < MANY; j++) {
		uint32_t id, len;
		uint8_t s;

		assert_true(wait_used(&f, q, &id, &len, 5000));
		assert_int_equal(id % 3, 0);
		i = id / 3;
		assert_true(i < MANY);
		assert_false(seen[i]);
		seen[i] = true;
		in_order &= i == j;
		assert_int_equal(gm_read_u8(f.m, q->status + i, &s), 0);
		assert_int_equal(s, 0);
		if (i % 4 == 3) {
			assert_int_equal(len, 21);
			assert_memory_equal(g + 4096 * i, strrchr(f.img_path, '/') + 1, 20);
		} else {
			assert_int_equal(len, 4097);
			assert_int_equal(g[4096 * i], img_byte(8 * 512 * i));
			assert_int_equal(g[4096 * i + 4095], img_byte(8 * 512 * i + 4095));
		}
	}
	blk_stats_take(&f.blk, &st, false);
	assert_int_equal(st.in, MANY - MANY / 4);
	assert_int_equal(st.get_id, MANY / 4);
	assert_int_equal(st.failed, 0);
	if (fe_aio == BLK_AIO_URING) {
		assert_int_equal(st.uring, MANY - MANY / 4);
		assert_false(in_order);
#ifdef GM_HAVE_LIBURING
		assert_int_equal(__atomic_load_n(&largest_submission, __ATOMIC_RELAXED),
				 MANY - MANY / 4);
#endif
	} else {
		assert_int_equal(st.uring, 0);
		assert_true(in_order);
	}
	fe_stop(&f);
	fe_fini(&f);
}

struct ended {
	uint16_t head;
	uint32_t used;
	unsigned n;
};

static void record_end(void *arg, uint16_t head, uint32_t used)
{
	struct ended *e = arg;

	e->head = head;
	e->used = used;
	e->n++;
}

/*
 * The device alone, on a view whose region tracks dirty pages: a read
 * marks the two guest pages it filled, and no other (the status byte's
 * page aside). The io_uring path marks them once the completion came, as
 * gm_read_from_fd() does on the synchronous path.
 */
static void reads_mark_the_guest_pages_they_fill_dirty(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	const gm_gpa_t hdr = 0x10000, status = 0x11000, data = DATA;
	const struct gm_virtq_buf bufs[3] = {
	    {hdr, 16, false}, {data, 8192, true}, {status, 1, true}};
	struct gm_region_spec spec = {0};
	struct gm_memory *m;
	struct gm_dirty *d;
	struct vu_device dev;
	struct ended e = {0, 0, 0};
	uint64_t bits[RAM_SIZE / 4096 / 64];
	uint32_t used = 0;
	uint8_t s;

	(void)state;
	fe_init(&f, 1, false);
	assert_int_equal(gm_dirty_new(RAM_SIZE, &d), 0);
	gm_dirty_set_enabled(d, true);
	spec.size = RAM_SIZE;
	spec.mapping = f.map;
	spec.dirty = d;
	assert_int_equal(gm_memory_new(&spec, 1, &m), 0);
	assert_int_equal(gm_write_le32(m, hdr, T_IN), 0);
	assert_int_equal(gm_write_le32(m, hdr + 4, 0), 0);
	assert_int_equal(gm_write_le64(m, hdr + 8, 16), 0);
	assert_int_equal(gm_dirty_collect(d, 0, bits, sizeof(bits) / sizeof(bits[0])), 0);
	assert_int_equal(gm_dirty_count(d), 0);
	blk_vu_device(&f.blk, &dev);
	if (fe_aio == BLK_AIO_URING) {
		void *ctx = dev.batch.open(dev.opaque, 0);

		assert_non_null(ctx);
		assert_int_equal(dev.batch.start(ctx, m, 7, bufs, 3, &used), 1);
		assert_int_equal(gm_dirty_count(d), 0); /* nothing arrived yet */
		dev.batch.finish(ctx, m, record_end, &e);
		dev.batch.close(ctx);
		assert_int_equal(e.n, 1);
		assert_int_equal(e.head, 7);
		used = e.used;
	} else {
		used = dev.handle(dev.opaque, 0, m, bufs, 3);
	}
	assert_int_equal(used, 8193);
	assert_int_equal(gm_read_u8(m, status, &s), 0);
	assert_int_equal(s, 0);
	assert_int_equal(((uint8_t *)gm_host_ptr(m, data + 8191, 1))[0], img_byte(16 * 512 + 8191));
	assert_true(gm_dirty_test(d, data / 4096));
	assert_true(gm_dirty_test(d, data / 4096 + 1));
	assert_true(gm_dirty_test(d, status / 4096));
	assert_int_equal(gm_dirty_count(d), 3);
	gm_memory_put(m);
	gm_dirty_put(d);
	fe_fini(&f);
}

#ifdef GM_HAVE_LIBURING
/*
 * pwritev2() as the file system would answer a non-blocking write
 * (RWF_NOWAIT): as it does (PW_REAL), "cannot" (PW_NOWAIT_UNSUPPORTED:
 * ext4), "would block" (PW_WOULD_BLOCK), or with only the first 512
 * bytes (PW_SHORT). Blocking calls always go through. With 64-bit off_t
 * (the whole project: -D_FILE_OFFSET_BITS=64) glibc names it pwritev64v2.
 */
enum { PW_REAL, PW_NOWAIT_UNSUPPORTED, PW_WOULD_BLOCK, PW_SHORT };
ssize_t __real_pwritev64v2(int fd, const struct iovec *iov, int n, off_t off, int flags);
static int pwritev2_mode;
static unsigned pwritev2_nowait_calls, pwritev2_blocking_calls;

ssize_t __wrap_pwritev64v2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	int mode = __atomic_load_n(&pwritev2_mode, __ATOMIC_ACQUIRE);

	if (!(flags & RWF_NOWAIT)) {
		__atomic_fetch_add(&pwritev2_blocking_calls, 1, __ATOMIC_RELAXED);
		return __real_pwritev64v2(fd, iov, n, off, flags);
	}
	__atomic_fetch_add(&pwritev2_nowait_calls, 1, __ATOMIC_RELAXED);
	if (mode == PW_NOWAIT_UNSUPPORTED || mode == PW_WOULD_BLOCK) {
		errno = mode == PW_WOULD_BLOCK ? EAGAIN : EOPNOTSUPP;
		return -1;
	}
	if (mode == PW_SHORT && n > 0 && iov[0].iov_len > 512) {
		struct iovec first = {iov[0].iov_base, 512};

		/* Without RWF_NOWAIT: this file system (ext4) may not take it. */
		return __real_pwritev64v2(fd, &first, 1, off, flags & ~RWF_NOWAIT);
	}
	return __real_pwritev64v2(fd, iov, n, off, flags);
}

/* A counter the worker bumps; it finished the request we waited for. */
static unsigned counted(const unsigned *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Write 8 KiB over two buffers at sector @sector with pattern @fill; check it in the image. */
static void write_two_and_check(struct fe *f, uint64_t sector, uint8_t fill)
{
	struct seg two[2] = {{DATA, 4096, false}, {DATA + 3 * 4096, 4096, false}};
	uint8_t buf[8192];
	unsigned i;

	memset(gm_host_ptr(f->m, DATA, 4096), fill, 4096);
	memset(gm_host_ptr(f->m, DATA + 3 * 4096, 4096), fill + 1, 4096);
	__atomic_store_n(&largest_submission, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pwritev2_nowait_calls, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pwritev2_blocking_calls, 0, __ATOMIC_RELAXED);
	assert_int_equal(run(f, 0, T_OUT, sector, two, 2).status, 0);
	image_read(f, sector * 512, buf, sizeof(buf));
	for (i = 0; i < 8192; i++)
		assert_int_equal(buf[i], i < 4096 ? fill : fill + 1);
}

/*
 * A write is done at once in the worker when that cannot punt it to a
 * kernel thread: without blocking if the file system can (RWF_NOWAIT);
 * what would block goes to the ring, the rest of a short one too; and
 * once the file system said it cannot write without blocking, every
 * write is one blocking pwritev2() in the worker.
 */
static void writes_go_to_the_ring_only_when_they_would_block(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct blk_stats st;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	__atomic_store_n(&pwritev2_mode, PW_WOULD_BLOCK, __ATOMIC_RELEASE);
	write_two_and_check(&f, 50, 0x41);
	assert_int_equal(counted(&pwritev2_nowait_calls), 1);
	assert_int_equal(counted(&largest_submission), 1);
	__atomic_store_n(&pwritev2_mode, PW_SHORT, __ATOMIC_RELEASE);
	write_two_and_check(&f, 60, 0x51);
	assert_int_equal(counted(&pwritev2_nowait_calls), 1);
	assert_int_equal(counted(&largest_submission), 1); /* the 7.5 KiB left */
	__atomic_store_n(&pwritev2_mode, PW_NOWAIT_UNSUPPORTED, __ATOMIC_RELEASE);
	write_two_and_check(&f, 70, 0x61);
	assert_int_equal(counted(&pwritev2_nowait_calls), 1);
	assert_int_equal(counted(&pwritev2_blocking_calls), 1);
	assert_int_equal(counted(&largest_submission), 0);
	write_two_and_check(&f, 80, 0x71); /* remembered: no second try */
	assert_int_equal(counted(&pwritev2_nowait_calls), 0);
	assert_int_equal(counted(&pwritev2_blocking_calls), 1);
	assert_int_equal(counted(&largest_submission), 0);
	fe_stop(&f);
	blk_stats_take(&f.blk, &st, false);
	assert_int_equal(st.out, 4);
	assert_int_equal(st.uring, 4);
	assert_int_equal(st.bytes_written, 4 * 8192);
	assert_int_equal(st.failed, 0);
	fe_fini(&f);
}

static int teardown_pwritev2(void **state)
{
	__atomic_store_n(&pwritev2_mode, PW_REAL, __ATOMIC_RELEASE);
	return fe_teardown(state);
}
#endif

#ifdef GM_HAVE_LIBURING
static int teardown_ring_setup(void **state)
{
	__atomic_store_n(&fail_ring_setup, 0, __ATOMIC_RELEASE);
	return fe_teardown(state);
}

/*
 * A kernel without io_uring (ring setup fails with ENOSYS): each queue's
 * worker says so and serves its requests synchronously, all of them.
 */
static void io_uring_setup_failure_falls_back_to_sync(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct blk_stats st;
	uint8_t *g, buf[4096];
	unsigned i;

	(void)state;
	__atomic_store_n(&ring_setups_failed, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&fail_ring_setup, 1, __ATOMIC_RELEASE);
	fe_init(&f, 2, false);
	fe_start(&f, 0);
	g = gm_host_ptr(f.m, DATA, 4096);
	memset(g, 0x3c, 4096);
	assert_int_equal(run1(&f, T_OUT, 30, DATA, 4096, false).status, 0);
	assert_int_equal(run1(&f, T_FLUSH, 0, 0, 0, false).status, 0);
	memset(g, 0, 4096);
	assert_int_equal(run1(&f, T_IN, 30, DATA, 4096, true).len, 4097);
	for (i = 0; i < 4096; i++)
		assert_int_equal(g[i], 0x3c);
	assert_int_equal(run(&f, 1, T_IN, 2, &(struct seg){DATA + DATA_PER_Q, 512, true}, 1).status,
			 0);
	image_read(&f, 30 * 512, buf, sizeof(buf));
	assert_int_equal(buf[4095], 0x3c);
	fe_stop(&f);
	blk_stats_take(&f.blk, &st, false);
	assert_int_equal(st.uring, 0);
	assert_int_equal(st.in, 2);
	assert_int_equal(st.failed, 0);
	assert_int_equal(__atomic_load_n(&ring_setups_failed, __ATOMIC_RELAXED), 2);
	/* And the probe main.c runs says the same. */
	{
		char why_not[128];

		assert_int_equal(blk_uring_probe(why_not, sizeof(why_not)), -ENOSYS);
		assert_non_null(strstr(why_not, "io_uring setup failed"));
	}
	fe_fini(&f);
}
#endif

int vhost_blk_aio_requests_tests(const char *name)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(many_requests_in_one_kick_complete_each_as_it_finishes,
				      fe_teardown),
	    cmocka_unit_test_teardown(reads_mark_the_guest_pages_they_fill_dirty, fe_teardown),
	};

	return _cmocka_run_group_tests(name, tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
}

#ifdef GM_HAVE_LIBURING
int vhost_blk_aio_uring_only_tests(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(io_uring_setup_failure_falls_back_to_sync,
				      teardown_ring_setup),
	    cmocka_unit_test_teardown(writes_go_to_the_ring_only_when_they_would_block,
				      teardown_pwritev2),
	};

	return cmocka_run_group_tests_name("io_uring", tests, NULL, NULL);
}
#endif
