/* SPDX-License-Identifier: MIT */
/*
 * tests/space_helpers.c - what the files of the test_space program share
 * (declared in space_helpers.h): a space and RAM windows that must be
 * made, the regions and the dump of the current view, a device that
 * records its calls, and a listener that records each phase's changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guestmem/space.h>

#include "space/space-internal.h"

#include "space_helpers.h"

struct gm_space *new_space(unsigned flags)
{
	struct gm_space *s = NULL;

	assert_int_equal(gm_space_new(flags, &s), 0);
	assert_non_null(s);
	return s;
}

void check(struct gm_space *s)
{
	assert_true(gm__space_invariants_ok(s));
}

struct gm_window *add_ram(struct gm_space *s, gm_gpa_t gpa, uint64_t size)
{
	struct gm_window *w = NULL;

	assert_int_equal(gm_space_add_ram(s, gpa, size, 0, 0, &w), 0);
	assert_non_null(w);
	return w;
}

size_t region_count(struct gm_space *s)
{
	size_t n = 0;
	int err = gm_space_regions(s, NULL, 0, &n);

	assert_true(err == 0 || err == -ENOBUFS);
	return n;
}

struct gm_space_region region_at(struct gm_space *s, size_t i)
{
	struct gm_space_region r[16];
	size_t n;

	assert_int_equal(gm_space_regions(s, r, 16, &n), 0);
	assert_true(i < n);
	return r[i];
}

/* The dump as a malloc'ed string. */
char *dump(struct gm_space *s)
{
	size_t need = 0;
	char *buf;
	int err = gm_space_dump(s, NULL, 0, &need);

	assert_true(err == -ENOBUFS || err == 0);
	buf = malloc(need + 1);
	assert_non_null(buf);
	assert_int_equal(gm_space_dump(s, buf, need + 1, NULL), 0);
	return buf;
}

static int dev_read(void *opaque, uint64_t offset, unsigned size, uint64_t *val)
{
	struct dev *d = opaque;
	uint64_t v = 0;
	unsigned i;

	if (d->fail)
		return d->fail;
	for (i = 0; i < size; i++)
		v |= (uint64_t)d->mem[offset + i] << (8 * i);
	*val = v;
	d->calls[d->ncalls++] = (struct call){'r', offset, size, v};
	return 0;
}

static int dev_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	struct dev *d = opaque;
	unsigned i;

	if (d->fail)
		return d->fail;
	for (i = 0; i < size; i++)
		d->mem[offset + i] = (unsigned char)(val >> (8 * i));
	d->calls[d->ncalls++] = (struct call){'w', offset, size, val};
	return 0;
}

static void dev_release(void *opaque)
{
	((struct dev *)opaque)->released++;
}

struct gm_device_ops dev_ops(unsigned sizes, unsigned flags)
{
	return GM_OPTS(gm_device_ops, .name = "testdev", .read = dev_read, .write = dev_write,
		       .sizes = sizes, .flags = flags, .release = dev_release);
}

struct gm_window *add_dev(struct gm_space *s, gm_gpa_t gpa, uint64_t size, struct dev *d,
			  unsigned sizes, unsigned flags)
{
	struct gm_device_ops ops = dev_ops(sizes, flags);
	struct gm_window *w = NULL;

	assert_int_equal(gm_space_add_mmio(s, gpa, size, &ops, d, &w), 0);
	return w;
}

static void rec_log(struct rec *r, const char *phase, const struct gm_space_change *c, size_t n)
{
	size_t i;

	for (i = 0; i < n && r->n < 64; i++) {
		static const char *const kinds[] = {"?", "remove", "flags", "add"};

		snprintf(r->log[r->n++], sizeof(r->log[0]), "%s %s 0x%llx+0x%llx", phase,
			 kinds[c[i].kind], (unsigned long long)c[i].region.gpa,
			 (unsigned long long)c[i].region.size);
	}
	if (r->n < 64)
		snprintf(r->log[r->n++], sizeof(r->log[0]), "%s end", phase);
}

static int rec_prepare(void *opaque, struct gm_space *s, const struct gm_space_change *c, size_t n)
{
	struct rec *r = opaque;
	struct gm_window *w;

	rec_log(r, "prepare", c, n);
	memcpy(r->last, c, (n < 16 ? n : 16) * sizeof(*c));
	r->nlast = n;
	if (r->try_edit)
		r->edit_err = gm_space_add_reserved(s, 0xf0000000, PAGE, "x", &w);
	return r->veto;
}

static void rec_rollback(void *opaque, struct gm_space *s, const struct gm_space_change *c,
			 size_t n)
{
	(void)s;
	rec_log(opaque, "rollback", c, n);
}

static void rec_commit(void *opaque, struct gm_space *s, const struct gm_space_change *c, size_t n)
{
	struct rec *r = opaque;
	struct gm_memory *m;

	rec_log(r, "commit", c, n);
	assert_int_equal(gm_space_memory_get(s, &m), 0);
	r->view_regions = gm_memory_region_count(m);
	gm_memory_put(m);
}

const struct gm_space_listener_ops rec_ops = GM_OPTS_INIT(
    gm_space_listener_ops, .prepare = rec_prepare, .rollback = rec_rollback, .commit = rec_commit);
