/* SPDX-License-Identifier: MIT */
/*
 * stress_vhost_blk_mq.c - gm-vhost-blk's queue workers soaked: four queues
 * serve write-read-compare traffic in parallel while the front end keeps
 * replacing the memory table under them (SET_MEM_TABLE, ADD_MEM_REG,
 * REM_MEM_REG). The same scenarios as test_vhost_blk_memory.c's
 * multi-queue cases, with more rounds and tables; `make check` also runs
 * it under ThreadSanitizer. Both request paths: --aio=sync, then io_uring where
 * this kernel and build have it. The fake front end is vhost_blk_frontend.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>

#include "vhost_blk_frontend.h"

#define MQ_ROUNDS 150
#define MQ_TABLES 60

static void memory_table_replaced_mid_stream(void **state)
{
	(void)state;
	scenario_memory_table_replaced_mid_stream();
}

static void several_queues_serve_in_parallel(void **state)
{
	(void)state;
	scenario_several_queues_serve_in_parallel(MQ_ROUNDS, MQ_TABLES);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(memory_table_replaced_mid_stream, fe_teardown),
	    cmocka_unit_test_teardown(several_queues_serve_in_parallel, fe_teardown),
	};

	char why_not[128];
	int failed;

	signal(SIGPIPE, SIG_IGN);
	fe_aio = BLK_AIO_SYNC;
	failed = cmocka_run_group_tests_name("aio sync", tests, NULL, NULL);
	if (blk_uring_probe(why_not, sizeof(why_not))) {
		printf("skipped: the io_uring run: %s\n", why_not);
		return failed;
	}
	fe_aio = BLK_AIO_URING;
	return failed | cmocka_run_group_tests_name("aio io_uring", tests, NULL, NULL);
}
