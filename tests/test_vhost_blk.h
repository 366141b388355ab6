/* SPDX-License-Identifier: MIT */
/*
 * tests/test_vhost_blk.h - the cmocka groups of the test_vhost_blk
 * program, one file each, that main() (test_vhost_blk.c) runs: the cases
 * only the protocol sees once, those that serve requests once per
 * --aio mode (fe_aio set by main()), then what only io_uring does. A
 * requests group runs under @name; each returns cmocka's failure count.
 */
#ifndef GM_TESTS_TEST_VHOST_BLK_H
#define GM_TESTS_TEST_VHOST_BLK_H

/* test_vhost_blk.c: normal traffic, hostile requests and messages, the image. */
int vhost_blk_protocol_tests(void);
int vhost_blk_requests_tests(const char *name);

/* test_vhost_blk_fds.c: the fds the front end hands over. */
int vhost_blk_fds_protocol_tests(void);
int vhost_blk_fds_requests_tests(const char *name);

/*
 * test_vhost_blk_memory.c: memory tables replaced, several queues,
 * inflight tracking, RESET_OWNER, memory the front end truncates.
 */
int vhost_blk_memory_protocol_tests(void);
int vhost_blk_memory_requests_tests(const char *name);

/* test_vhost_blk_aio.c: many requests at once, and the io_uring path. */
int vhost_blk_aio_requests_tests(const char *name);
/* With liburing only: ring setup that fails, writes sent to the ring. */
int vhost_blk_aio_uring_only_tests(void);

#endif
