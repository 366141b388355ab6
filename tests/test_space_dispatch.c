/* SPDX-License-Identifier: MIT */
/*
 * tests/test_space_dispatch.c - accesses dispatched to devices: splitting
 * by the device's access sizes and by alignment, read-modify-write, device
 * errors, accesses across RAM into a device and into holes, a device
 * callback that edits the space, deferred release; and the port-I/O space.
 * Part of the test_space program (test_space.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include <guestmem/space.h>

#include "space_helpers.h"

static void assert_call(const struct dev *d, size_t i, char op, uint64_t offset, unsigned size,
			uint64_t val)
{
	assert_true(i < d->ncalls);
	assert_int_equal(d->calls[i].op, op);
	assert_int_equal(d->calls[i].offset, offset);
	assert_int_equal(d->calls[i].size, size);
	assert_int_equal(d->calls[i].val, val);
}

/* ---- dispatch ---- */

static void eight_bytes_to_a_four_byte_device_is_two_calls(void **state)
{
	struct gm_space *s = new_space(0);
	struct dev d = {.mem = {1, 2, 3, 4, 5, 6, 7, 8}};
	uint64_t v = 0;

	(void)state;
	add_dev(s, 0x10000, 16, &d, GM_ACCESS_4, 0);
	assert_int_equal(gm_space_read(s, 0x10000, &v, 8), 0);
	assert_int_equal(v, 0x0807060504030201ull);
	assert_int_equal(d.ncalls, 2);
	assert_call(&d, 0, 'r', 0, 4, 0x04030201);
	assert_call(&d, 1, 'r', 4, 4, 0x08070605);
	d.ncalls = 0;
	v = 0x1122334455667788ull;
	assert_int_equal(gm_space_write(s, 0x10008, &v, 8), 0);
	assert_int_equal(d.ncalls, 2);
	assert_call(&d, 0, 'w', 8, 4, 0x55667788);
	assert_call(&d, 1, 'w', 12, 4, 0x11223344);
	gm_space_free(s);
}

static void small_access_to_a_wide_device_is_refused_or_rmw(void **state)
{
	struct gm_space *s = new_space(0);
	struct dev d = {.mem = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}};
	struct dev e = d;
	uint16_t h = 0;

	(void)state;
	add_dev(s, 0x1000, 8, &d, GM_ACCESS_4, 0);
	assert_int_equal(gm_space_read(s, 0x1002, &h, 2), -EOPNOTSUPP);
	assert_int_equal(gm_space_write(s, 0x1002, &h, 2), -EOPNOTSUPP);
	assert_int_equal(d.ncalls, 0);

	add_dev(s, 0x2000, 8, &e, GM_ACCESS_4, GM_DEVICE_RMW);
	assert_int_equal(gm_space_read(s, 0x2002, &h, 2), 0);
	assert_int_equal(h, 0x4433);
	assert_int_equal(e.ncalls, 1);
	assert_call(&e, 0, 'r', 0, 4, 0x44332211);
	e.ncalls = 0;
	h = 0xbbaa;
	assert_int_equal(gm_space_write(s, 0x2002, &h, 2), 0);
	assert_int_equal(e.ncalls, 2);
	assert_call(&e, 0, 'r', 0, 4, 0x44332211);
	assert_call(&e, 1, 'w', 0, 4, 0xbbaa2211);
	/* Straddling two units: two read-modify-writes. */
	e.ncalls = 0;
	h = 0xddcc;
	assert_int_equal(gm_space_write(s, 0x2003, &h, 2), 0);
	assert_int_equal(e.ncalls, 4);
	assert_call(&e, 1, 'w', 0, 4, 0xccaa2211);
	assert_call(&e, 3, 'w', 4, 4, 0x887766dd);
	gm_space_free(s);
}

/*
 * Read-modify-write has limits: a unit reaching past the window's end is
 * -EOPNOTSUPP, and so is a partial write to a device with no read callback,
 * even one starting on a unit boundary. The device sees no call.
 */
static void rmw_past_the_window_end_or_without_read_is_refused(void **state)
{
	struct gm_space *s = new_space(0);
	struct dev d = {0}, e = {0};
	struct gm_device_ops wo = dev_ops(GM_ACCESS_4, GM_DEVICE_RMW);
	struct gm_window *w = NULL;
	uint32_t v = 0x12345678;
	uint8_t b = 0x5a;

	(void)state;
	/* Six bytes: the 4-byte unit at offset 4 would reach past the end. */
	add_dev(s, 0x1000, 6, &d, GM_ACCESS_4, GM_DEVICE_RMW);
	assert_int_equal(gm_space_write(s, 0x1005, &b, 1), -EOPNOTSUPP);
	assert_int_equal(gm_space_read(s, 0x1004, &b, 1), -EOPNOTSUPP);
	assert_int_equal(d.ncalls, 0);
	assert_int_equal(gm_space_write(s, 0x1001, &b, 1), 0); /* the unit at 0 fits */
	assert_int_equal(d.ncalls, 2);
	assert_call(&d, 1, 'w', 0, 4, 0x5a00);

	wo.read = NULL;
	assert_int_equal(gm_space_add_mmio(s, 0x2000, 8, &wo, &e, &w), 0);
	assert_int_equal(gm_space_write(s, 0x2000, &b, 1), -EOPNOTSUPP);
	assert_int_equal(gm_space_write(s, 0x2001, &b, 1), -EOPNOTSUPP);
	assert_int_equal(e.ncalls, 0);
	assert_int_equal(gm_space_write(s, 0x2004, &v, 4), 0); /* a whole unit needs no read */
	assert_int_equal(e.ncalls, 1);
	assert_call(&e, 0, 'w', 4, 4, 0x12345678);
	gm_space_free(s);
}

static void unaligned_access_splits_by_alignment_unless_allowed(void **state)
{
	struct gm_space *s = new_space(0);
	struct dev d = {0}, u = {0};
	uint32_t v = 0x44332211;

	(void)state;
	add_dev(s, 0x1000, 16, &d, GM_ACCESS_1 | GM_ACCESS_2 | GM_ACCESS_4, 0);
	assert_int_equal(gm_space_write(s, 0x1002 + 1, &v, 4), 0);
	/* offset 3: 1 byte, then offset 4: 2 bytes (only 3 left), then offset 6: 1. */
	assert_int_equal(d.ncalls, 3);
	assert_call(&d, 0, 'w', 3, 1, 0x11);
	assert_call(&d, 1, 'w', 4, 2, 0x3322);
	assert_call(&d, 2, 'w', 6, 1, 0x44);

	add_dev(s, 0x2000, 16, &u, GM_ACCESS_4, GM_DEVICE_UNALIGNED);
	assert_int_equal(gm_space_write(s, 0x2003, &v, 4), 0);
	assert_int_equal(u.ncalls, 1);
	assert_call(&u, 0, 'w', 3, 4, 0x44332211);
	gm_space_free(s);
}

static void device_errors_pass_through(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_device_ops wo = dev_ops(GM_ACCESS_1, 0);
	struct dev d = {.fail = -EIO}, w = {0};
	struct gm_window *win;
	uint8_t x;

	(void)state;
	add_dev(s, 0x1000, 4, &d, GM_ACCESS_1, 0);
	assert_int_equal(gm_space_read(s, 0x1000, &x, 1), -EIO);
	assert_int_equal(gm_space_write(s, 0x1000, &x, 1), -EIO);
	wo.read = NULL;
	assert_int_equal(gm_space_add_mmio(s, 0x2000, 4, &wo, &w, &win), 0);
	assert_int_equal(gm_space_read(s, 0x2000, &x, 1), -EACCES);
	assert_int_equal(gm_space_write(s, 0x2000, &x, 1), 0);
	gm_space_free(s);
}

static void dispatch_crosses_ram_into_a_device_and_refuses_holes(void **state)
{
	struct gm_space *s = new_space(0);
	struct dev d = {.mem = {0xaa, 0xbb}};
	struct gm_window *r;
	unsigned char buf[4] = {0};

	(void)state;
	add_ram(s, 0, PAGE);
	add_dev(s, PAGE, 2, &d, GM_ACCESS_1, 0);
	assert_int_equal(gm_space_write(s, PAGE - 2, "\x01\x02", 2), 0);
	assert_int_equal(gm_space_read(s, PAGE - 2, buf, 4), 0);
	assert_memory_equal(buf, "\x01\x02\xaa\xbb", 4);
	/* One byte past the device: a hole; nothing is called or copied. */
	d.ncalls = 0;
	assert_int_equal(gm_space_write(s, PAGE - 2, "zzzzz", 5), -EFAULT);
	assert_int_equal(d.ncalls, 0);
	assert_int_equal(gm_space_read(s, PAGE - 2, buf, 2), 0);
	assert_memory_equal(buf, "\x01\x02", 2);
	/* Reserved windows, wrapping ranges, NULL buffers. */
	assert_int_equal(gm_space_add_reserved(s, 1 * MiB, PAGE, "pci-hole", &r), 0);
	assert_int_equal(gm_space_read(s, 1 * MiB, buf, 1), -EFAULT);
	assert_int_equal(gm_space_read(s, UINT64_MAX, buf, 2), -EFAULT);
	assert_int_equal(gm_space_read(s, 0, NULL, 1), -EINVAL);
	assert_int_equal(gm_space_read(s, 0, NULL, 0), 0);
	assert_int_equal(gm_space_read(NULL, 0, buf, 1), -EINVAL);
	gm_space_free(s);
}

/* A device whose write moves its own window: an edit from inside a read section. */
struct mover {
	struct gm_space *s;
	struct gm_window *w;
	int err;
};

static int mover_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	struct mover *m = opaque;

	(void)offset;
	(void)size;
	m->err = gm_space_move(m->s, m->w, val);
	return 0;
}

static void device_callback_may_edit_the_space(void **state)
{
	struct gm_space *s = new_space(0);
	struct mover mv = {.s = s};
	struct gm_device_ops ops =
	    GM_OPTS(gm_device_ops, .name = "bar", .write = mover_write, .sizes = GM_ACCESS_8);
	uint64_t to = 0x200000;
	struct gm_window_info wi = GM_OPTS(gm_window_info);

	(void)state;
	assert_int_equal(gm_space_add_mmio(s, 0x100000, 8, &ops, &mv, &mv.w), 0);
	assert_int_equal(gm_space_write(s, 0x100000, &to, 8), 0);
	assert_int_equal(mv.err, 0);
	assert_int_equal(gm_space_window_info(s, mv.w, &wi), 0);
	assert_int_equal(wi.gpa, 0x200000);
	assert_int_equal(gm_space_synchronize(s), 0);
	gm_rcu_read_lock();
	assert_int_equal(gm_space_synchronize(s), -EDEADLK);
	gm_rcu_read_unlock();
	check(s);
	gm_space_free(s);
}

/* Invariant 5: a layout replaced inside a read section is freed only later. */
static void commit_inside_a_read_section_defers_the_release(void **state)
{
	struct gm_space *s = new_space(0);
	struct dev d = {0};
	struct gm_window *w = add_dev(s, 0x1000, 4, &d, GM_ACCESS_1, 0);
	struct rec r = {0};
	uint8_t x;

	(void)state;
	gm_rcu_read_lock();
	assert_int_equal(gm_space_remove(s, w), 0);
	/* This reader could still be inside the device. */
	assert_int_equal(d.released, 0);
	assert_int_equal(gm_space_read(s, 0x1000, &x, 1), -EFAULT);
	gm_rcu_read_unlock();
	assert_int_equal(gm_space_synchronize(s), 0);
	assert_int_equal(d.released, 1);
	assert_int_equal(gm_space_synchronize(NULL), -EINVAL);

	/* Registering a listener with a transaction open in this thread. */
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, NULL), -EDEADLK);
	assert_int_equal(gm_space_abort(s), 0);
	check(s);
	gm_space_free(s);
}

static void regions_reports_enobufs_with_the_count(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_space_region r[1];
	size_t n = 0;

	(void)state;
	add_ram(s, 0, PAGE);
	add_ram(s, 2 * PAGE, PAGE);
	assert_int_equal(gm_space_regions(s, r, 1, &n), -ENOBUFS);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].gpa, 0);
	assert_int_not_equal(r[0].slot, 2);
	assert_int_equal(gm_space_regions(s, NULL, 1, &n), -EINVAL);
	gm_space_free(s);
}

/* ---- port I/O ---- */

static void port_io_space_takes_devices_below_64k(void **state)
{
	struct gm_space *s = new_space(GM_SPACE_PIO);
	struct dev serial = {.mem = {'A'}};
	struct gm_device_ops ops = dev_ops(GM_ACCESS_1, 0);
	struct gm_mapping *m;
	struct gm_window *w;
	uint8_t x = 0;

	(void)state;
	assert_int_equal(gm_space_flags(s), GM_SPACE_PIO);
	assert_int_equal(gm_space_add_mmio(s, 0x3f8, 8, &ops, &serial, &w), 0);
	assert_int_equal(gm_space_read(s, 0x3f8, &x, 1), 0);
	assert_int_equal(x, 'A');
	assert_int_equal(gm_space_write(s, 0x3f9, "B", 1), 0);
	assert_int_equal(serial.mem[1], 'B');
	assert_int_equal(gm_space_read(s, 0x3f0, &x, 1), -EFAULT);
	assert_int_equal(gm_space_read(s, 0x10000, &x, 1), -EFAULT);
	assert_int_equal(gm_space_add_mmio(s, 0xfffc, 8, &ops, &serial, &w), -ERANGE);
	assert_int_equal(gm_space_add_mmio(s, 0xfff8, 8, &ops, &serial, &w), 0);
	assert_int_equal(gm_space_add_reserved(s, 0x10000, 1, "x", &w), -ERANGE);
	assert_int_equal(gm_space_move(s, w, 0xfffc), -ERANGE);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 0, 0, &w), -EOPNOTSUPP);
	assert_int_equal(gm_space_add_rom(s, 0, PAGE, NULL, 0, &w), -EOPNOTSUPP);
	assert_int_equal(gm_mapping_new_anon(PAGE, 0, &m), 0);
	assert_int_equal(gm_space_add_ram_mapping(s, 0, PAGE, m, 0, &w), -EOPNOTSUPP);
	gm_mapping_put(m);
	check(s);
	gm_space_free(s);
}

int space_dispatch_tests(void)
{
	const struct CMUnitTest space_dispatch[] = {
	    cmocka_unit_test(eight_bytes_to_a_four_byte_device_is_two_calls),
	    cmocka_unit_test(small_access_to_a_wide_device_is_refused_or_rmw),
	    cmocka_unit_test(rmw_past_the_window_end_or_without_read_is_refused),
	    cmocka_unit_test(unaligned_access_splits_by_alignment_unless_allowed),
	    cmocka_unit_test(device_errors_pass_through),
	    cmocka_unit_test(dispatch_crosses_ram_into_a_device_and_refuses_holes),
	    cmocka_unit_test(device_callback_may_edit_the_space),
	    cmocka_unit_test(commit_inside_a_read_section_defers_the_release),
	    cmocka_unit_test(regions_reports_enobufs_with_the_count),
	    cmocka_unit_test(port_io_space_takes_devices_below_64k),
	};

	return cmocka_run_group_tests(space_dispatch, NULL, NULL);
}
