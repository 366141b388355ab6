/* SPDX-License-Identifier: MIT */
/*
 * test_kvm_stub.c - the KVM layer on a host where test_kvm.c cannot run:
 * its guest is x86 code, so on other hosts the KVM tests are skipped with
 * that reason. Where the library has no KVM at all (GM_KVM_STUB: built
 * with src/kvm/stub.c) the binding must still refuse cleanly.
 */
#include <guestmem/guestmem.h>
#include <guestmem/kvm.h>
#include <guestmem/space.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

static void kvm_tests_need_an_x86_host(void **state)
{
	(void)state;
	print_message("skipped: KVM tests need an x86 host\n");
	skip();
}

static void binding_without_kvm_fails_enosys_and_null_gets_einval(void **state)
{
	struct gm_kvm *k = (struct gm_kvm *)&k;
	struct gm_space *mem;
	struct gm_kvm_slot slot = GM_OPTS(gm_kvm_slot);

	(void)state;
#ifndef GM_KVM_STUB
	print_message("skipped: this library has the KVM binding\n");
	skip();
#endif
	assert_int_equal(gm_space_new(GM_SPACE_MEMORY, &mem), 0);
	assert_int_equal(gm_kvm_new(3, mem, NULL, &k), -ENOSYS);
	assert_ptr_equal(k, (struct gm_kvm *)&k);
	assert_int_equal(gm_kvm_new(-1, mem, NULL, &k), -EINVAL);
	assert_int_equal(gm_kvm_new(3, NULL, NULL, &k), -EINVAL);
	assert_int_equal(gm_kvm_new(3, mem, NULL, NULL), -EINVAL);
	/* The only binding there can be is NULL: what kvm.h says for it. */
	assert_int_equal(gm_kvm_slot_limit(NULL), 0);
	assert_int_equal(gm_kvm_slot_count(NULL), 0);
	assert_false(gm_kvm_dirty_log_active(NULL));
	assert_int_equal(gm_kvm_set_slot_limit(NULL, 1), -EINVAL);
	assert_int_equal(gm_kvm_slot(NULL, 0, &slot), -EINVAL);
	assert_int_equal(gm_kvm_slot_find(NULL, 0, &slot), -EINVAL);
	assert_int_equal(gm_kvm_dirty_log_start(NULL), -EINVAL);
	assert_int_equal(gm_kvm_dirty_log_stop(NULL), -EINVAL);
	assert_int_equal(gm_kvm_dirty_log_sync(NULL), -EINVAL);
	assert_int_equal(gm_kvm_handle_exit(NULL, NULL, 0), -EINVAL);
	gm_kvm_free(NULL);
	gm_space_free(mem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(kvm_tests_need_an_x86_host),
	    cmocka_unit_test(binding_without_kvm_fails_enosys_and_null_gets_einval),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
