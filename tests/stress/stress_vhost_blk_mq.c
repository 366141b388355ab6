/*
 * stress_vhost_blk_mq.c - gm-vhost-blk's queue workers soaked: four queues
 * serve write-read-compare traffic in parallel while the front end keeps
 * replacing the memory table under them (SET_MEM_TABLE, ADD_MEM_REG,
 * REM_MEM_REG). The same scenarios as test_vhost_blk.c's multi-queue
 * cases, with more rounds and tables; `make check` also runs it under
 * ThreadSanitizer. The fake front end is vhost_blk_frontend.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>

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

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
