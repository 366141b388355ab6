/* SPDX-License-Identifier: MIT */
/*
 * tests/memory/test_memory_io.c - translation of guest ranges to host
 * pointers and iovecs, and fd I/O straight into and out of guest memory
 * (pipes, files, offsets, EOF, EAGAIN, bad arguments).
 */
#include "memory-test.h"

#include "../fail_inject.h"

/* ------------------------------------------------------------------------ */
/* Translation: host pointers and iovecs                                    */

static void host_ptr_inside_one_region(void **state)
{
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	assert_ptr_equal(gm_host_ptr(w.m, 0x10000, 2 * PAGE), w.host[0]);
	assert_ptr_equal((gm_host_ptr)(w.m, 0x10000, 2 * PAGE), w.host[0]);
	assert_ptr_equal(gm_host_ptr(w.m, 0x10123, 77), w.host[0] + 0x123);
	assert_ptr_equal(gm_host_ptr(w.m, 0x12000 - 1, 1), w.host[0] + 2 * PAGE - 1);
	assert_ptr_equal((gm_host_ptr)(w.m, 0x12000 - 1, 1), w.host[0] + 2 * PAGE - 1);
	/* length 0: the byte's address inside RAM, NULL outside */
	assert_ptr_equal(gm_host_ptr(w.m, 0x14010, 0), w.host[1] + 0x10);
	assert_ptr_equal((gm_host_ptr)(w.m, 0x14010, 0), w.host[1] + 0x10);
	assert_null(gm_host_ptr(w.m, 0x13000, 0));
	assert_null((gm_host_ptr)(w.m, 0x13000, 0));
	assert_ptr_equal(gm_host_ptr_write(w.m, 0x14010, 10), w.host[1] + 0x10);
	/* too long, or outside */
	assert_null(gm_host_ptr(w.m, 0x10000, 2 * PAGE + 1));
	assert_null((gm_host_ptr)(w.m, 0x10000, 2 * PAGE + 1));
	assert_null(gm_host_ptr(w.m, 0x12000, 1));
	assert_null(gm_host_ptr(w.m, 0x10000, SIZE_MAX));
	assert_null(gm_host_ptr_write(w.m, 0x12000 - 1, 2));
	world_free(&w);
}

static void host_ptr_crossing_regions_is_null(void **state)
{
	struct gm_mapping *mp = map_anon(2 * PAGE);
	/* two regions adjacent in the guest and on the host: still two regions */
	struct gm_region_spec s[2] = {spec(0x10000, PAGE, mp, 0, 0),
				      spec(0x11000, PAGE, mp, PAGE, 0)};
	struct gm_memory *m = NULL;
	struct world w;

	(void)state;
	assert_int_equal(gm_memory_new(s, 2, &m), 0);
	expect_view_ok(m);
	assert_null(gm_host_ptr(m, 0x10fff, 2));
	assert_null((gm_host_ptr)(m, 0x10fff, 2));
	assert_null(gm_host_ptr_write(m, 0x10fff, 2));
	assert_non_null(gm_host_ptr(m, 0x10fff, 1));
	gm_memory_put(m);
	gm_mapping_put(mp);

	world_build(&w, two_adjacent, 2);
	assert_null(gm_host_ptr(w.m, 0x10000, 2 * PAGE));
	assert_null((gm_host_ptr)(w.m, 0x10000, 2 * PAGE));
	world_free(&w);
}

static void to_iovec_gives_one_piece_per_separate_mapping(void **state)
{
	static const struct gm_range r[3] = {{0x10000, PAGE}, {0x11000, 16}, {0x11010, PAGE}};
	struct iovec iov[8];
	size_t n = 0;
	struct world w;

	(void)state;
	world_build(&w, r, 3);
	assert_int_equal(gm_to_iovec(w.m, 0x10ff0, 0x30, iov, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_ptr_equal(iov[0].iov_base, w.host[0] + PAGE - 16);
	assert_int_equal(iov[0].iov_len, 16);
	assert_ptr_equal(iov[1].iov_base, w.host[1]);
	assert_int_equal(iov[1].iov_len, 16);
	assert_ptr_equal(iov[2].iov_base, w.host[2]);
	assert_int_equal(iov[2].iov_len, 16);
	/* inside one region: one piece */
	assert_int_equal(gm_to_iovec(w.m, 0x10100, 0x100, iov, 8, &n), 0);
	assert_int_equal(n, 1);
	assert_ptr_equal(iov[0].iov_base, w.host[0] + 0x100);
	assert_int_equal(iov[0].iov_len, 0x100);
	/* the write variant on RAM gives the same pieces */
	assert_int_equal(gm_to_iovec_write(w.m, 0x10ff0, 0x30, iov, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_ptr_equal(iov[2].iov_base, w.host[2]);
	world_free(&w);
}

static void to_iovec_merges_host_contiguous_neighbours(void **state)
{
	/* a has a spare fifth page, so b can never start right after a[3] */
	struct gm_mapping *a = map_anon(5 * PAGE), *b = map_anon(2 * PAGE);
	unsigned char *ha = gm_mapping_host(a), *hbb = gm_mapping_host(b);
	struct gm_region_spec s[4] = {
	    spec(0x10000, PAGE, a, 0, 0),	 /* a[0]        */
	    spec(0x11000, PAGE, a, PAGE, 0),	 /* a[1]: merges */
	    spec(0x12000, PAGE, a, 3 * PAGE, 0), /* a[3]: gap on the host */
	    spec(0x13000, PAGE, b, 0, 0),	 /* b: another mapping */
	};
	struct gm_memory *m = NULL;
	struct iovec iov[8];
	size_t n = 0;

	(void)state;
	assert_int_equal(gm_memory_new(s, 4, &m), 0);
	expect_view_ok(m);
	assert_int_equal(gm_to_iovec(m, 0x10800, 4 * PAGE - 0x1000, iov, 8, &n), 0);
	assert_int_equal(n, 3);
	assert_ptr_equal(iov[0].iov_base, ha + 0x800);
	assert_int_equal(iov[0].iov_len, 2 * PAGE - 0x800);
	assert_ptr_equal(iov[1].iov_base, ha + 3 * PAGE);
	assert_int_equal(iov[1].iov_len, PAGE);
	assert_ptr_equal(iov[2].iov_base, hbb);
	assert_int_equal(iov[2].iov_len, 0x800);
	gm_memory_put(m);
	gm_mapping_put(a);
	gm_mapping_put(b);
}

static void to_iovec_keeps_same_mapping_out_of_order_apart(void **state)
{
	struct gm_mapping *a = map_anon(2 * PAGE);
	unsigned char *ha = gm_mapping_host(a);
	/* guest order is the reverse of host order */
	struct gm_region_spec s[2] = {spec(0x10000, PAGE, a, PAGE, 0),
				      spec(0x11000, PAGE, a, 0, 0)};
	struct gm_memory *m = NULL;
	struct iovec iov[4];
	size_t n = 0;

	(void)state;
	assert_int_equal(gm_memory_new(s, 2, &m), 0);
	expect_view_ok(m);
	assert_int_equal(gm_to_iovec(m, 0x10000, 2 * PAGE, iov, 4, &n), 0);
	assert_int_equal(n, 2);
	assert_ptr_equal(iov[0].iov_base, ha + PAGE);
	assert_int_equal(iov[0].iov_len, PAGE);
	assert_ptr_equal(iov[1].iov_base, ha);
	assert_int_equal(iov[1].iov_len, PAGE);
	gm_memory_put(m);
	gm_mapping_put(a);
}

static void to_iovec_enobufs_reports_pieces_needed(void **state)
{
	struct gm_range r[10];
	struct iovec iov[4];
	size_t n = 0, i;
	struct world w;

	(void)state;
	for (i = 0; i < 10; i++)
		r[i] = (struct gm_range){0x100000 + i * PAGE, PAGE};
	world_build(&w, r, 10);
	memset(iov, 0, sizeof(iov));
	assert_int_equal(gm_to_iovec(w.m, 0x100000 + 10, 10 * PAGE - 20, iov, 4, &n), -ENOBUFS);
	assert_int_equal(n, 10);
	/* the first four are filled */
	assert_ptr_equal(iov[0].iov_base, w.host[0] + 10);
	assert_int_equal(iov[0].iov_len, PAGE - 10);
	for (i = 1; i < 4; i++) {
		assert_ptr_equal(iov[i].iov_base, w.host[i]);
		assert_int_equal(iov[i].iov_len, PAGE);
	}
	{
		struct iovec nine[9];

		assert_int_equal(gm_to_iovec_write(w.m, 0x100000, 10 * PAGE, nine, 9, &n),
				 -ENOBUFS);
		assert_int_equal(n, 10);
		assert_ptr_equal(nine[8].iov_base, w.host[8]);
	}
	assert_int_equal(gm_to_iovec(w.m, 0x100000, 10 * PAGE, iov, 0, &n), -ENOBUFS);
	assert_int_equal(n, 10);
	/* exactly enough */
	{
		struct iovec big[10];

		assert_int_equal(gm_to_iovec(w.m, 0x100000, 10 * PAGE, big, 10, &n), 0);
		assert_int_equal(n, 10);
		assert_ptr_equal(big[9].iov_base, w.host[9]);
	}
	world_free(&w);
}

static void to_iovec_faults_and_rejects_null(void **state)
{
	struct iovec iov[4];
	size_t n = 99;
	struct world w;

	(void)state;
	world_build(&w, hole_layout, 2);
	assert_int_equal(gm_to_iovec(w.m, 0x12000 - 1, 2, iov, 4, &n), -EFAULT);
	assert_int_equal(gm_to_iovec(w.m, 0x10000, 6 * PAGE, iov, 4, &n), -EFAULT);
	assert_int_equal(gm_to_iovec_write(w.m, 0x13000, 1, iov, 4, &n), -EFAULT);
	assert_int_equal(gm_to_iovec(w.m, 0x10000, 1, iov, 4, NULL), -EINVAL);
	assert_int_equal(gm_to_iovec(w.m, 0x10000, 1, NULL, 4, &n), -EINVAL);
	n = 99;
	assert_int_equal(gm_to_iovec(w.m, 0x10000, 0, iov, 4, &n), 0);
	assert_int_equal(n, 0);
	world_free(&w);
}

/* ------------------------------------------------------------------------ */
/* fd I/O                                                                   */

/* Three separate mappings, adjacent in the guest, then a hole. */
static const struct gm_range fd_layout[3] = {{0x10000, PAGE}, {0x11000, 100}, {0x11064, PAGE}};

static void write_to_pipe_crossing_regions(void **state)
{
	unsigned char back[PAGE + 300];
	size_t done = 0, i;
	struct world w;
	int p[2];

	(void)state;
	world_build(&w, fd_layout, 3);
	make_pipe(p, 1);
	assert_int_equal(gm_write_to_fd(w.m, 0x11000 - 200, p[1], -1, PAGE + 300, &done), 0);
	assert_int_equal(done, PAGE + 300);
	assert_int_equal(read(p[0], back, sizeof(back)), (ssize_t)sizeof(back));
	for (i = 0; i < sizeof(back); i++)
		assert_int_equal(back[i], pat(0x11000 - 200 + i));
	assert_int_equal(read(p[0], back, 1), -1); /* nothing more */
	close_pipe(p);
	world_free(&w);
}

static void read_from_pipe_crossing_regions(void **state)
{
	unsigned char data[PAGE + 300];
	size_t done = 0;
	struct world w;
	int p[2];

	(void)state;
	world_build(&w, fd_layout, 3);
	make_pipe(p, 0);
	fill_buf(data, sizeof(data), 31);
	assert_int_equal(write(p[1], data, sizeof(data)), (ssize_t)sizeof(data));
	assert_int_equal(gm_read_from_fd(w.m, 0x11000 - 200, p[0], -1, sizeof(data), &done), 0);
	assert_int_equal(done, sizeof(data));
	expect_bytes(&w, 0x11000 - 200, data, sizeof(data));
	expect_pat(&w, 0x10000, PAGE - 200);
	expect_pat(&w, 0x11000 - 200 + sizeof(data),
		   0x11064 + PAGE - (0x11000 - 200 + sizeof(data)));
	close_pipe(p);
	world_free(&w);
}

static void read_from_pipe_eof_midway(void **state)
{
	unsigned char data[150];
	size_t done = 0;
	struct world w;
	int p[2];

	(void)state;
	world_build(&w, fd_layout, 3);
	make_pipe(p, 0);
	fill_buf(data, sizeof(data), 37);
	assert_int_equal(write(p[1], data, sizeof(data)), (ssize_t)sizeof(data));
	close(p[1]);
	/* crosses two boundaries; the pipe ends after 150 of 400 bytes */
	assert_int_equal(gm_read_from_fd(w.m, 0x11000 - 50, p[0], -1, 400, &done), 0);
	assert_int_equal(done, 150);
	expect_bytes(&w, 0x11000 - 50, data, 150);
	expect_pat(&w, 0x11000 + 100, 250);
	close(p[0]);
	world_free(&w);
}

static void read_from_nonblocking_pipe_reports_eagain_and_done(void **state)
{
	unsigned char data[10];
	size_t done = 0;
	struct world w;
	int p[2];

	(void)state;
	world_build(&w, fd_layout, 3);
	make_pipe(p, 1);
	fill_buf(data, sizeof(data), 41);
	assert_int_equal(write(p[1], data, sizeof(data)), (ssize_t)sizeof(data));
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, p[0], -1, 100, &done), -EAGAIN);
	assert_int_equal(done, 10);
	expect_bytes(&w, 0x10000, data, 10);
	expect_pat(&w, 0x1000a, 90);
	close_pipe(p);
	world_free(&w);
}

static void read_from_file_at_offset_keeps_position(void **state)
{
	unsigned char data[3 * PAGE];
	size_t done = 0;
	struct world w;
	int fd;

	(void)state;
	world_build(&w, fd_layout, 3);
	fd = tmp_file(sizeof(data), 43);
	fill_buf(data, sizeof(data), 43);
	assert_int_equal(lseek(fd, 17, SEEK_SET), 17);
	assert_int_equal(gm_read_from_fd(w.m, 0x11000 - 300, fd, 1000, 600, &done), 0);
	assert_int_equal(done, 600);
	expect_bytes(&w, 0x11000 - 300, data + 1000, 600);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 17);
	close(fd);
	world_free(&w);
}

static void read_from_file_eof_midway(void **state)
{
	unsigned char data[300];
	size_t done = 0;
	struct world w;
	int fd;

	(void)state;
	world_build(&w, fd_layout, 3);
	fd = tmp_file(sizeof(data), 47);
	fill_buf(data, sizeof(data), 47);
	assert_int_equal(gm_read_from_fd(w.m, 0x11000 - 40, fd, 200, 200, &done), 0);
	assert_int_equal(done, 100);
	expect_bytes(&w, 0x11000 - 40, data + 200, 100);
	expect_pat(&w, 0x11000 + 60, 100);
	/* starting at EOF reads nothing and is not an error */
	done = 99;
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, fd, 300, 10, &done), 0);
	assert_int_equal(done, 0);
	expect_pat(&w, 0x10000, 10);
	close(fd);
	world_free(&w);
}

static void read_from_fd_at_current_position_advances_it(void **state)
{
	unsigned char data[200];
	size_t done = 0;
	struct world w;
	int fd;

	(void)state;
	world_build(&w, fd_layout, 3);
	fd = tmp_file(sizeof(data), 53);
	fill_buf(data, sizeof(data), 53);
	assert_int_equal(lseek(fd, 20, SEEK_SET), 20);
	assert_int_equal(gm_read_from_fd(w.m, 0x11000 - 5, fd, -1, 50, &done), 0);
	assert_int_equal(done, 50);
	expect_bytes(&w, 0x11000 - 5, data + 20, 50);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 70);
	close(fd);
	world_free(&w);
}

static void write_to_file_at_offset_across_64_regions(void **state)
{
	struct gm_range r[65];
	const size_t len = 64 * PAGE + 1; /* last byte of region 0 to end of region 64 */
	unsigned char *back = malloc(len);
	size_t done = 0, i;
	struct world w;
	int fd;

	(void)state;
	assert_non_null(back);
	for (i = 0; i < 65; i++)
		r[i] = (struct gm_range){0x200000 + i * PAGE, PAGE};
	world_build(&w, r, 65);
	fd = tmp_file(0, 0);
	assert_int_equal(gm_write_to_fd(w.m, 0x200000 + PAGE - 1, fd, 100, len, &done), 0);
	assert_int_equal(done, len);
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 0);
	assert_int_equal(pread(fd, back, len, 100), (ssize_t)len);
	for (i = 0; i < len; i++)
		if (back[i] != pat(0x200000 + PAGE - 1 + i))
			fail_msg("file byte %zu differs", i);
	close(fd);
	free(back);
	world_free(&w);
}

static void fd_io_faults_before_moving_any_byte(void **state)
{
	unsigned char data[64], back[64];
	size_t done = 99;
	struct world w;
	int p[2], fd;

	(void)state;
	world_build(&w, hole_layout, 2);
	make_pipe(p, 1);
	fill_buf(data, sizeof(data), 59);
	assert_int_equal(write(p[1], data, sizeof(data)), (ssize_t)sizeof(data));
	/* the range runs into the hole: nothing may be read from the pipe */
	assert_int_equal(gm_read_from_fd(w.m, 0x12000 - 32, p[0], -1, 64, &done), -EFAULT);
	assert_int_equal(done, 0);
	expect_pat(&w, 0x10000, 2 * PAGE);
	assert_int_equal(read(p[0], back, sizeof(back)), (ssize_t)sizeof(back));
	assert_memory_equal(data, back, sizeof(back));
	/* and nothing written to it */
	done = 99;
	assert_int_equal(gm_write_to_fd(w.m, 0x12000 - 32, p[1], -1, 64, &done), -EFAULT);
	assert_int_equal(done, 0);
	assert_int_equal(read(p[0], back, 1), -1);
	close_pipe(p);
	/* same with a file and an offset */
	fd = tmp_file(256, 61);
	done = 99;
	assert_int_equal(gm_read_from_fd(w.m, 0x13000, fd, 0, 16, &done), -EFAULT);
	assert_int_equal(done, 0);
	done = 99;
	assert_int_equal(gm_write_to_fd(w.m, 0x16000 - 8, fd, 0, 16, &done), -EFAULT);
	assert_int_equal(done, 0);
	assert_int_equal(pread(fd, back, 16, 0), 16);
	fill_buf(data, 16, 61);
	assert_memory_equal(data, back, 16);
	close(fd);
	world_free(&w);
}

/*
 * A transfer whose batch is one iovec is one read()/pread()/write()/
 * pwrite() (what /dev/zero serves fastest), several are one readv() and
 * kin: the injected failure names the call each transfer made, and comes
 * back as its errno with nothing moved.
 */
static void fd_io_one_piece_is_a_plain_call(void **state)
{
	unsigned char data[PAGE];
	size_t done = 1;
	struct world w;
	int p[2], fd;

	(void)state;
	world_build(&w, fd_layout, 3);
	make_pipe(p, 0);
	fd = tmp_file(2 * PAGE, 5);
	fill_buf(data, sizeof(data), 7);
	assert_int_equal(write(p[1], data, sizeof(data)), (ssize_t)sizeof(data));

	fi_arm(FI_READ, FI_THIS_THREAD, 1);
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, p[0], -1, 64, &done), -EIO);
	assert_true(fi_disarm());
	assert_string_equal(fi_failed_call(), "read");
	assert_int_equal(done, 0);
	fi_arm(FI_READ, FI_THIS_THREAD, 1);
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, fd, PAGE, 64, &done), -EIO);
	assert_true(fi_disarm());
	assert_string_equal(fi_failed_call(), "pread64");
	fi_arm(FI_WRITE, FI_THIS_THREAD, 1);
	assert_int_equal(gm_write_to_fd(w.m, 0x10000, fd, 0, 64, &done), -EIO);
	assert_true(fi_disarm());
	assert_string_equal(fi_failed_call(), "pwrite64");
	expect_pat(&w, 0x10000, PAGE);

	/* Three pieces: one readv() for all of them. */
	fi_arm(FI_READ, FI_THIS_THREAD, 1);
	assert_int_equal(gm_read_from_fd(w.m, 0x11000 - 200, p[0], -1, 400, &done), -EIO);
	assert_true(fi_disarm());
	assert_string_equal(fi_failed_call(), "readv");
	assert_int_equal(gm_read_from_fd(w.m, 0x11000 - 200, p[0], -1, 400, &done), 0);
	assert_int_equal(done, 400);
	expect_bytes(&w, 0x11000 - 200, data, 400);
	close(fd);
	close_pipe(p);
	world_free(&w);
}

static void fd_io_rejects_bad_arguments(void **state)
{
	size_t done = 0;
	struct world w;
	int fd, closed;

	(void)state;
	world_build(&w, hole_layout, 2);
	fd = tmp_file(64, 67);
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, fd, 0, 16, NULL), -EINVAL);
	assert_int_equal(gm_write_to_fd(w.m, 0x10000, fd, 0, 16, NULL), -EINVAL);
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, -1, 0, 16, &done), -EINVAL);
	assert_int_equal(gm_write_to_fd(w.m, 0x10000, -5, -1, 16, &done), -EINVAL);
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, fd, -2, 16, &done), -EINVAL);
	assert_int_equal(gm_write_to_fd(w.m, 0x10000, fd, INT64_MIN, 16, &done), -EINVAL);
	assert_int_equal(gm_read_from_fd(w.m, 0x10000, fd, INT64_MAX - 4, 16, &done), -EOVERFLOW);
	assert_int_equal(gm_write_to_fd(w.m, 0x10000, fd, INT64_MAX, 1, &done), -EOVERFLOW);
	expect_pat(&w, 0x10000, 16);
	/* an errno from the system call comes back negated */
	closed = dup(fd);
	assert_true(closed >= 0);
	close(closed);
	done = 99;
	assert_int_equal(gm_write_to_fd(w.m, 0x10000, closed, -1, 16, &done), -EBADF);
	assert_int_equal(done, 0);
	close(fd);
	world_free(&w);
}

int memory_io_tests(void)
{
	const struct CMUnitTest memory_io[] = {
	    cmocka_unit_test(host_ptr_inside_one_region),
	    cmocka_unit_test(host_ptr_crossing_regions_is_null),
	    cmocka_unit_test(to_iovec_gives_one_piece_per_separate_mapping),
	    cmocka_unit_test(to_iovec_merges_host_contiguous_neighbours),
	    cmocka_unit_test(to_iovec_keeps_same_mapping_out_of_order_apart),
	    cmocka_unit_test(to_iovec_enobufs_reports_pieces_needed),
	    cmocka_unit_test(to_iovec_faults_and_rejects_null),
	    cmocka_unit_test(write_to_pipe_crossing_regions),
	    cmocka_unit_test(read_from_pipe_crossing_regions),
	    cmocka_unit_test(read_from_pipe_eof_midway),
	    cmocka_unit_test(read_from_nonblocking_pipe_reports_eagain_and_done),
	    cmocka_unit_test(read_from_file_at_offset_keeps_position),
	    cmocka_unit_test(read_from_file_eof_midway),
	    cmocka_unit_test(read_from_fd_at_current_position_advances_it),
	    cmocka_unit_test(write_to_file_at_offset_across_64_regions),
	    cmocka_unit_test(fd_io_faults_before_moving_any_byte),
	    cmocka_unit_test(fd_io_rejects_bad_arguments),
	    cmocka_unit_test(fd_io_one_piece_is_a_plain_call),
	};

	return cmocka_run_group_tests(memory_io, NULL, NULL);
}
