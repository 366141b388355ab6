/* SPDX-License-Identifier: MIT */
/*
 * tests/test_space_txn.c - transactions and listeners of a space: one
 * view published per transaction, a failed or vetoed transaction leaving
 * the space byte for byte as before (dump, generation, region ids), abort
 * and nesting, listeners' exact event lists, late registration, veto and
 * rollback, and what a listener may not do from its callbacks.
 * Part of the test_space program (test_space.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <guestmem/space.h>

#include "space_helpers.h"

static void assert_log(const struct rec *r, const char *const *want, size_t n)
{
	size_t i;

	for (i = 0; i < n && i < r->n; i++)
		assert_string_equal(r->log[i], want[i]);
	assert_int_equal(r->n, n);
}

/* ---- transactions ---- */

static void transaction_publishes_one_view(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a, *b;
	struct gm_memory *m;

	(void)state;
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 0, 0, &a), 0);
	assert_int_equal(gm_space_add_ram(s, 1 * MiB, PAGE, 0, 0, &b), 0);
	assert_int_equal(gm_space_protect(s, b, 0, PAGE, GM_PROT_READ), 0);
	check(s);
	/* Readers see nothing of it yet. */
	assert_int_equal(gm_space_memory_get(s, &m), 0);
	assert_int_equal(gm_memory_region_count(m), 0);
	gm_memory_put(m);
	assert_int_equal(gm_space_generation(s), 0);
	assert_int_equal(gm_space_commit(s), 0);
	assert_int_equal(gm_space_generation(s), 1);
	assert_int_equal(region_count(s), 2);
	assert_int_equal(region_at(s, 1).flags, GM_REGION_READONLY | GM_REGION_NOEXEC);
	check(s);

	/* A transaction that changes nothing publishes nothing. */
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_commit(s), 0);
	assert_int_equal(gm_space_generation(s), 1);
	assert_int_equal(gm_space_commit(s), -EPERM);
	assert_int_equal(gm_space_abort(s), -EPERM);
	gm_space_free(s);
}

static void failing_edit_in_a_transaction_leaves_the_space_as_before(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a = add_ram(s, 0, 4 * PAGE), *b, *c;
	struct gm_space_region before = region_at(s, 0), after;
	struct dev d = {0};
	char *d0, *d1;
	struct rec r = {0};

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, NULL), 0);
	r.n = 0;
	d0 = dump(s);
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_add_ram(s, 1 * MiB, PAGE, 0, 0, &b), 0);
	assert_int_equal(gm_space_protect(s, a, 0, PAGE, GM_PROT_READ), 0);
	b = NULL;
	c = add_dev(s, 2 * MiB, 8, &d, GM_ACCESS_4, 0);
	assert_int_equal(gm_space_move(s, a, 1 * MiB), -EEXIST); /* dooms it */
	assert_int_equal(gm_space_remove(s, c), -ECANCELED);
	assert_int_equal(gm_space_add_ram(s, 8 * MiB, PAGE, 0, 0, &b), -ECANCELED);
	assert_null(b);
	assert_int_equal(gm_space_commit(s), -EEXIST);
	d1 = dump(s);
	assert_string_equal(d0, d1);
	assert_int_equal(gm_space_generation(s), 1);
	after = region_at(s, 0);
	assert_int_equal(after.id, before.id);
	assert_int_equal(region_count(s), 1);
	assert_int_equal(r.n, 0); /* no listener was bothered */
	/* The device added in the discarded transaction was released. */
	assert_int_equal(d.released, 1);
	check(s);
	free(d0);
	free(d1);
	gm_space_free(s);
}

/* Edits with a bad argument, for bad_argument_dooms_the_open_transaction. */
static int bad_add_zero_size(struct gm_space *s, struct gm_window **w)
{
	return gm_space_add_ram(s, 1 * MiB, 0, 0, 0, w);
}

static int bad_add_null_out(struct gm_space *s, struct gm_window **w)
{
	(void)w;
	return gm_space_add_ram(s, 1 * MiB, PAGE, 0, 0, NULL);
}

static int bad_add_reserved_zero_size(struct gm_space *s, struct gm_window **w)
{
	return gm_space_add_reserved(s, 1 * MiB, 0, "x", w);
}

static int bad_remove_null(struct gm_space *s, struct gm_window **w)
{
	(void)w;
	return gm_space_remove(s, NULL);
}

static int bad_move_null(struct gm_space *s, struct gm_window **w)
{
	(void)w;
	return gm_space_move(s, NULL, 1 * MiB);
}

static int bad_resize_null(struct gm_space *s, struct gm_window **w)
{
	(void)w;
	return gm_space_resize(s, NULL, 2 * PAGE);
}

static int bad_protect_null(struct gm_space *s, struct gm_window **w)
{
	(void)w;
	return gm_space_protect(s, NULL, 0, PAGE, GM_PROT_READ);
}

/*
 * "An edit that fails inside a transaction dooms it" holds for every failure,
 * also an argument rejected before the edit looks at the layout.
 */
static void bad_argument_dooms_the_open_transaction(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a = add_ram(s, 0, PAGE), *w = NULL;
	struct dev d = {0};
	struct gm_device_ops ops = dev_ops(GM_ACCESS_1, 0);
	int (*const bad_edit[])(struct gm_space *, struct gm_window **) = {
	    bad_add_zero_size,
	    bad_add_null_out,
	    bad_remove_null,
	    bad_move_null,
	    bad_resize_null,
	    bad_protect_null,
	    bad_add_reserved_zero_size,
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_edit) / sizeof(bad_edit[0]); i++) {
		char *before = dump(s), *after;

		assert_int_equal(gm_space_begin(s), 0);
		assert_int_equal(gm_space_protect(s, a, 0, PAGE, GM_PROT_READ), 0);
		assert_int_equal(bad_edit[i](s, &w), -EINVAL);
		assert_int_equal(gm_space_add_mmio(s, 0x10000, 4, &ops, &d, &w), -ECANCELED);
		assert_int_equal(gm_space_commit(s), -EINVAL);
		after = dump(s);
		assert_string_equal(before, after);
		assert_int_equal(gm_space_generation(s), 1);
		free(before);
		free(after);
	}
	check(s);
	gm_space_free(s);
}

static void abort_discards_and_nested_transactions_commit_once(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a;

	(void)state;
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 0, 0, &a), 0);
	assert_int_equal(gm_space_abort(s), 0);
	assert_int_equal(region_count(s), 0);
	assert_int_equal(gm_space_remove(s, a), -ENOENT);

	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_add_ram(s, 0, PAGE, 0, 0, &a), 0);
	assert_int_equal(gm_space_commit(s), 0); /* inner */
	assert_int_equal(gm_space_generation(s), 0);
	assert_int_equal(gm_space_add_ram(s, PAGE, PAGE, 0, 0, &a), 0);
	assert_int_equal(gm_space_commit(s), 0); /* outer */
	assert_int_equal(gm_space_generation(s), 1);
	assert_int_equal(region_count(s), 2);

	/* An inner abort dooms the whole transaction. */
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_remove(s, a), 0);
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_abort(s), 0);
	assert_int_equal(gm_space_commit(s), -ECANCELED);
	assert_int_equal(region_count(s), 2);
	check(s);
	gm_space_free(s);
}

/* ---- listeners ---- */

static void listener_sees_exact_events_in_order(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_window *a, *b;
	struct rec r = {0};
	uint64_t id_a;

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, NULL), 0);
	assert_int_equal(r.n, 0); /* empty space: no replay */

	a = add_ram(s, 1 * MiB, 4 * PAGE);
	{
		static const char *const want[] = {"prepare add 0x100000+0x4000", "prepare end",
						   "commit add 0x100000+0x4000", "commit end"};
		assert_log(&r, want, 4);
	}
	assert_int_equal(r.last[0].region.slot, 0);
	assert_int_equal(r.last[0].region.kind, GM_WINDOW_RAM);
	assert_ptr_equal(r.last[0].region.window, a);
	assert_non_null(r.last[0].region.dirty);
	assert_int_equal(r.view_regions, 1); /* commit ran after publication */
	id_a = r.last[0].region.id;
	assert_int_not_equal(id_a, 0);

	/* Whole-window protection change: the same region, new flags. */
	r.n = 0;
	assert_int_equal(gm_space_protect(s, a, 0, 4 * PAGE, GM_PROT_READ), 0);
	assert_int_equal(r.nlast, 1);
	assert_int_equal(r.last[0].kind, GM_CHANGE_FLAGS);
	assert_int_equal(r.last[0].region.id, id_a);
	assert_int_equal(r.last[0].old_flags, 0);
	assert_int_equal(r.last[0].old_prot, GM_PROT_ALL);
	assert_int_equal(r.last[0].region.flags, GM_REGION_READONLY | GM_REGION_NOEXEC);

	/* A split: remove, then the three runs added with new ids. */
	r.n = 0;
	assert_int_equal(gm_space_protect(s, a, PAGE, PAGE, GM_PROT_ALL), 0);
	{
		static const char *const want[] = {"prepare remove 0x100000+0x4000",
						   "prepare add 0x100000+0x1000",
						   "prepare add 0x101000+0x1000",
						   "prepare add 0x102000+0x2000",
						   "prepare end",
						   "commit remove 0x100000+0x4000",
						   "commit add 0x100000+0x1000",
						   "commit add 0x101000+0x1000",
						   "commit add 0x102000+0x2000",
						   "commit end"};
		assert_log(&r, want, 10);
	}
	/* The freed slot 0 is reused by the first add; ids are new. */
	assert_int_equal(r.last[1].region.slot, 0);
	assert_int_equal(r.last[2].region.slot, 1);
	assert_int_equal(r.last[3].region.slot, 2);
	assert_true(r.last[1].region.id > id_a);
	assert_int_equal(r.last[2].region.dirty_offset, PAGE);

	/* An unrelated add leaves the others' ids alone: only one event. */
	r.n = 0;
	b = add_ram(s, 0, PAGE);
	assert_int_equal(r.nlast, 1);
	assert_int_equal(r.last[0].kind, GM_CHANGE_ADD);
	assert_int_equal(r.last[0].region.slot, 3);

	/* Move: remove + add. MMIO windows produce no events. */
	r.n = 0;
	assert_int_equal(gm_space_move(s, b, 8 * MiB), 0);
	{
		static const char *const want[] = {
		    "prepare remove 0x0+0x1000", "prepare add 0x800000+0x1000", "prepare end",
		    "commit remove 0x0+0x1000",	 "commit add 0x800000+0x1000",	"commit end"};
		assert_log(&r, want, 6);
	}
	r.n = 0;
	{
		struct gm_window *rw;

		assert_int_equal(gm_space_add_reserved(s, 64 * MiB, PAGE, "r", &rw), 0);
	}
	assert_int_equal(r.n, 0);
	check(s);
	gm_space_free(s);
}

static void listener_added_late_gets_the_current_regions(void **state)
{
	struct gm_space *s = new_space(0);
	struct rec r = {0}, v = {.veto = -ENOSPC};
	struct gm_space_listener *l = NULL;
	struct gm_window *rom;

	(void)state;
	add_ram(s, 0, PAGE);
	assert_int_equal(gm_space_add_rom(s, 1 * MiB, PAGE, "x", 1, &rom), 0);
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, &l), 0);
	{
		static const char *const want[] = {
		    "prepare add 0x0+0x1000", "prepare add 0x100000+0x1000", "prepare end",
		    "commit add 0x0+0x1000",  "commit add 0x100000+0x1000",  "commit end"};
		assert_log(&r, want, 6);
	}
	assert_int_equal(r.last[1].region.kind, GM_WINDOW_ROM);
	assert_null(r.last[1].region.dirty);
	assert_int_equal(r.last[1].region.flags, GM_REGION_ROM | GM_REGION_READONLY);
	/* A veto at registration: not registered, no rollback. */
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &v, NULL), -ENOSPC);
	assert_int_equal(v.n, 3);
	r.n = 0;
	add_ram(s, 2 * MiB, PAGE);
	assert_int_equal(v.n, 3);
	assert_int_equal(r.n, 4);
	assert_int_equal(gm_space_listener_remove(s, l), 0);
	assert_int_equal(gm_space_listener_remove(s, l), -ENOENT);
	r.n = 0;
	add_ram(s, 3 * MiB, PAGE);
	assert_int_equal(r.n, 0);
	gm_space_free(s);
}

static void listener_veto_rolls_back_and_leaves_the_space_as_before(void **state)
{
	struct gm_space *s = new_space(0);
	struct rec a = {0}, b = {0}, c = {0};
	struct gm_window *w = add_ram(s, 0, 4 * PAGE), *x = NULL;
	struct gm_space_region before = region_at(s, 0);
	char *d0, *d1;

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &a, NULL), 0);
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &b, NULL), 0);
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &c, NULL), 0);
	a.n = b.n = c.n = 0;
	b.veto = -EBUSY;
	d0 = dump(s);
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_protect(s, w, 0, PAGE, GM_PROT_READ), 0);
	assert_int_equal(gm_space_add_ram(s, 1 * MiB, PAGE, 0, 0, &x), 0);
	assert_int_equal(gm_space_commit(s), -EBUSY);
	{
		static const char *const want_a[] = {"prepare remove 0x0+0x4000",
						     "prepare add 0x0+0x1000",
						     "prepare add 0x1000+0x3000",
						     "prepare add 0x100000+0x1000",
						     "prepare end",
						     "rollback remove 0x0+0x4000",
						     "rollback add 0x0+0x1000",
						     "rollback add 0x1000+0x3000",
						     "rollback add 0x100000+0x1000",
						     "rollback end"};
		assert_log(&a, want_a, 10);
	}
	assert_int_equal(b.n, 5); /* prepared, vetoed, not rolled back */
	assert_int_equal(c.n, 0); /* never asked */
	d1 = dump(s);
	assert_string_equal(d0, d1);
	assert_int_equal(gm_space_generation(s), 1);
	assert_int_equal(region_at(s, 0).id, before.id);
	check(s);

	/* The ids the failed commit handed out are not skipped. */
	b.veto = 0;
	assert_int_equal(gm_space_protect(s, w, 0, PAGE, GM_PROT_READ), 0);
	assert_int_equal(region_at(s, 0).id, before.id + 1);
	free(d0);
	free(d1);
	gm_space_free(s);
}

/* A device add that returned 0 is released once, when its transaction is discarded. */
static void vetoed_transaction_releases_its_devices_once(void **state)
{
	struct gm_space *s = new_space(0);
	struct rec v = {0};
	struct dev d = {0}, e = {0};
	struct gm_device_ops ops = dev_ops(GM_ACCESS_1, 0);
	struct gm_window *w = NULL;

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &v, NULL), 0);
	v.veto = -EPERM;
	/* A device changes no region of the view: no listener is asked. */
	assert_int_equal(gm_space_add_mmio(s, 0x10000, 4, &ops, &d, &w), 0);
	assert_non_null(w);
	assert_int_equal(v.n, 0);
	/* A device and RAM in one transaction, vetoed at commit. */
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_add_mmio(s, 0x20000, 4, &ops, &e, &w), 0);
	assert_int_equal(gm_space_add_ram(s, 1 * MiB, PAGE, 0, 0, &w), 0);
	assert_int_equal(gm_space_commit(s), -EPERM);
	assert_int_equal(e.released, 1);
	assert_int_equal(d.released, 0);
	assert_int_equal(gm_space_find(s, 0x20000, &GM_OPTS(gm_window_info)), -EFAULT);
	check(s);
	gm_space_free(s);
	assert_int_equal(d.released, 1);
	assert_int_equal(e.released, 1);
}

static void listener_cannot_edit_the_space(void **state)
{
	struct gm_space *s = new_space(0);
	struct rec r = {.try_edit = true};

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, NULL), 0);
	add_ram(s, 0, PAGE);
	assert_int_equal(r.edit_err, -EDEADLK);
	assert_int_equal(region_count(s), 1);
	check(s);
	gm_space_free(s);
}

/* A listener that tries to run transactions from inside its prepare. */
struct txn_try {
	int begin_err, commit_err, abort_err, remove_err;
	struct gm_space_listener *self;
};

static int txn_try_prepare(void *opaque, struct gm_space *s, const struct gm_space_change *c,
			   size_t n)
{
	struct txn_try *t = opaque;

	(void)c;
	(void)n;
	t->begin_err = gm_space_begin(s);
	t->commit_err = gm_space_commit(s);
	t->abort_err = gm_space_abort(s);
	t->remove_err = gm_space_listener_remove(s, t->self);
	return 0;
}

static void listener_cannot_begin_commit_abort_or_unregister(void **state)
{
	static const struct gm_space_listener_ops ops =
	    GM_OPTS_INIT(gm_space_listener_ops, .prepare = txn_try_prepare);
	struct gm_space *s = new_space(0);
	struct txn_try t = {0};

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &ops, &t, &t.self), 0);
	add_ram(s, 0, PAGE);
	assert_int_equal(t.begin_err, -EDEADLK);
	assert_int_equal(t.commit_err, -EPERM);
	assert_int_equal(t.abort_err, -EPERM);
	assert_int_equal(t.remove_err, -EDEADLK);
	assert_int_equal(region_count(s), 1);
	assert_int_equal(gm_space_generation(s), 1);
	check(s);
	gm_space_free(s);
}

static void listener_add_and_remove_refuse_an_open_transaction(void **state)
{
	struct gm_space *s = new_space(0);
	struct gm_space_listener *l = NULL;
	struct rec r = {0};

	(void)state;
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, &l), 0);
	assert_int_equal(gm_space_begin(s), 0);
	assert_int_equal(gm_space_listener_remove(s, l), -EDEADLK);
	assert_int_equal(gm_space_listener_add(s, &rec_ops, &r, NULL), -EDEADLK);
	assert_int_equal(gm_space_commit(s), 0);
	assert_int_equal(gm_space_listener_remove(s, l), 0);
	assert_int_equal(gm_space_listener_remove(s, l), -ENOENT);
	assert_int_equal(r.n, 0);
	gm_space_free(s);
}

int space_txn_tests(void)
{
	const struct CMUnitTest space_txn[] = {
	    cmocka_unit_test(transaction_publishes_one_view),
	    cmocka_unit_test(failing_edit_in_a_transaction_leaves_the_space_as_before),
	    cmocka_unit_test(bad_argument_dooms_the_open_transaction),
	    cmocka_unit_test(abort_discards_and_nested_transactions_commit_once),
	    cmocka_unit_test(listener_sees_exact_events_in_order),
	    cmocka_unit_test(listener_added_late_gets_the_current_regions),
	    cmocka_unit_test(listener_veto_rolls_back_and_leaves_the_space_as_before),
	    cmocka_unit_test(vetoed_transaction_releases_its_devices_once),
	    cmocka_unit_test(listener_cannot_edit_the_space),
	    cmocka_unit_test(listener_cannot_begin_commit_abort_or_unregister),
	    cmocka_unit_test(listener_add_and_remove_refuse_an_open_transaction),
	};

	return cmocka_run_group_tests(space_txn, NULL, NULL);
}
