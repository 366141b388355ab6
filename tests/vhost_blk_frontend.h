/* SPDX-License-Identifier: MIT */
/*
 * vhost_blk_frontend.h - the fake vhost-user front end that drives
 * gm-vhost-blk's server and block device in-process, shared by the unit
 * tests (test_vhost_blk*.c) and the multi-queue soak
 * (stress/stress_vhost_blk_mq.c).
 *
 * The front end owns the guest memory (a memfd), sends the vhost-user
 * messages QEMU would over a socketpair, builds split rings and requests in
 * guest memory, kicks, and waits for the call eventfd. The back end is the
 * real server (tools/gm-vhost-blk/vu*.c + blk.c) running vu_serve() in a
 * thread, on a raw image in a temporary file. Every helper fails the
 * current cmocka test on a step that does not go as planned, except the
 * multi-queue workload's, which run on threads of their own and report.
 *
 * A test that connects keeps its struct fe in static storage and runs with
 * fe_teardown() as its cmocka teardown: a failed assertion leaves the test
 * function while the back end's threads still use the struct fe, and the
 * teardown ends the connection and joins them.
 */
#ifndef GM_TESTS_VHOST_BLK_FRONTEND_H
#define GM_TESTS_VHOST_BLK_FRONTEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk.h"
#include "vu.h"

#define MiB	   ((uint64_t)1 << 20)
#define RAM_SIZE   (4 * MiB)
#define UA	   0x7f1200000000ull /* the front end's address of guest byte 0 */
#define IMG_SIZE   (1 * MiB)
#define QSIZE	   64u
#define DATA	   (2 * MiB) /* data buffers: 256 KiB per queue from here */
#define DATA_PER_Q (256 * 1024ull)
#define MAX_Q	   4u

/* vhost-user request codes and flags (vhost-user.rst). */
enum {
	GET_FEATURES = 1,
	SET_FEATURES = 2,
	SET_OWNER = 3,
	RESET_OWNER = 4,
	SET_MEM_TABLE = 5,
	SET_LOG_BASE = 6,
	SET_LOG_FD = 7,
	SET_VRING_NUM = 8,
	SET_VRING_ADDR = 9,
	SET_VRING_BASE = 10,
	GET_VRING_BASE = 11,
	SET_VRING_KICK = 12,
	SET_VRING_CALL = 13,
	SET_VRING_ERR = 14,
	GET_PROTOCOL_FEATURES = 15,
	SET_PROTOCOL_FEATURES = 16,
	GET_QUEUE_NUM = 17,
	SET_VRING_ENABLE = 18,
	GET_CONFIG = 24,
	SET_CONFIG = 25,
	POSTCOPY_ADVISE = 28,
	POSTCOPY_LISTEN = 29,
	POSTCOPY_END = 30,
	GET_INFLIGHT_FD = 31,
	SET_INFLIGHT_FD = 32,
	GET_MAX_MEM_SLOTS = 36,
	ADD_MEM_REG = 37,
	REM_MEM_REG = 38,
};
#define V1	   0x1u
#define NEED_REPLY 0x8u

enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11, T_WRITE_ZEROES = 13 };

struct fe_queue {
	gm_gpa_t desc, avail, used, hdr, status;
	uint16_t avail_idx, used_seen;
	int kick, call;
};

struct fe {
	int sock;		/* front end's end */
	struct gm_mapping *map; /* guest RAM, shared with the back end by its fd */
	struct gm_memory *m;	/* the front end's view of it */
	struct fe_queue q[MAX_Q];
	unsigned nq;
	/* back end */
	struct blk_dev blk;
	struct vu_server *srv;
	int backend_sock; /* the back end's end of the connection, as this process numbers it */
	pthread_t thread;
	int serve_ret;
	struct vu_conn_info info;
	char img_path[64];
};

struct region_msg {
	uint64_t gpa, size, uaddr, off;
};
struct seg {
	gm_gpa_t gpa;
	uint32_t len;
	bool write;
};
struct res {
	uint8_t status;
	uint32_t len;
};
#define SLOT_DESCS 8u

/*
 * One queue's traffic, run by traffic_thread(): it never asserts (a cmocka
 * assertion may not fire on another thread) but counts failed rounds and
 * keeps the first one's text, for traffic_assert_ok() once it is joined.
 */
struct traffic {
	struct fe *f;
	unsigned qi;
	unsigned rounds;
	unsigned failures;
	char first[192];
};

/* How fe_init()'s block device serves requests (default BLK_AIO_SYNC). */
extern enum blk_aio fe_aio;

/* ---- connection ---- */

/* A cmocka teardown: disconnect and free the front end a failed test left. */
int fe_teardown(void **state);

void connect_fe(struct fe *f);

/* Close our end and wait for the back end to finish the connection. */
int disconnect_fe(struct fe *f);

/* Wait for the back end to end the connection by itself (malformed input). */
int wait_backend_closed(struct fe *f);

int count_fds(void);

/* ---- messages ---- */

void send_msg(struct fe *f, uint32_t req, uint32_t flags, const void *p, uint32_t size,
	      const int *fds, size_t nfds);

/* Read a reply to @req; returns its payload size. */
uint32_t recv_reply(struct fe *f, uint32_t req, void *p, uint32_t max);

/*
 * Read a reply to @req that may carry one fd; returns its payload size and
 * sets *@fd to the fd (-1: none came).
 */
uint32_t recv_reply_fd(struct fe *f, uint32_t req, void *p, uint32_t max, int *fd);

uint64_t get_u64(struct fe *f, uint32_t req);

void set_u64(struct fe *f, uint32_t req, uint64_t v);

/* Send @req with NEED_REPLY and return the ack (0 success). */
uint64_t acked(struct fe *f, uint32_t req, const void *p, uint32_t size, const int *fds,
	       size_t nfds);

void vring_state(struct fe *f, uint32_t req, uint32_t idx, uint32_t num);

/* A SET_MEM_TABLE payload for @n regions. */
uint32_t mem_table(uint8_t *p, const struct region_msg *r, uint32_t n);

/* SET_VRING_KICK/CALL/ERR for queue @idx with @fd (-1: the no-fd flag). */
void send_fd_msg(struct fe *f, uint32_t req, uint32_t idx, int fd);

/* A round trip: every message sent before has been handled. */
void sync_fe(struct fe *f);

/* ---- inflight tracking (INFLIGHT_SHMFD) ---- */

#define IF_QBYTES 1088 /* one queue of QSIZE: 16 + 16 * 64 bytes, rounded up to 64 */

/*
 * GET_INFLIGHT_FD for one queue of QSIZE entries: returns the buffer's fd
 * (the front end keeps it) and sets *@size to the size the back end gave.
 */
int get_inflight(struct fe *f, uint64_t *size);

/* SET_INFLIGHT_FD for one queue of QSIZE with @size bytes of @fd; asserts the ack is 0. */
void set_inflight(struct fe *f, int fd, uint64_t size);

/* ---- guest side ---- */

void fe_init(struct fe *f, unsigned nq, bool readonly);

void fe_fini(struct fe *f);

uint8_t img_byte(uint64_t off);

/*
 * Negotiate everything and start @f->nq rings over one memory region;
 * @before_kick (may be NULL) runs when the rings are placed but not started.
 */
void fe_start_with(struct fe *f, uint64_t features_off,
		   void (*before_kick)(struct fe *f, void *arg), void *arg);
void fe_start(struct fe *f, uint64_t features_off);
/*
 * Connect again and take the rings over as they are in guest memory from
 * the indices @base[0 .. nq) that GET_VRING_BASE gave (a migration's
 * destination); requests already offered are served once kicked.
 */
void fe_resume(struct fe *f, const uint32_t *base);
/*
 * fe_resume() with @before_kick (may be NULL) run when the rings are
 * placed but not started: where a front end reconnecting to a restarted
 * back end hands it the inflight buffer again (SET_INFLIGHT_FD).
 */
void fe_resume_with(struct fe *f, const uint32_t *base,
		    void (*before_kick)(struct fe *f, void *arg), void *arg);

void put_desc(struct fe *f, struct fe_queue *q, unsigned i, uint64_t addr, uint32_t len,
	      uint16_t flags, uint16_t next);

/* Make @head available, publish the index (release) and kick. */
void offer(struct fe *f, struct fe_queue *q, uint16_t head);

/* Wait up to @ms for the next used entry; returns false on timeout. */
bool wait_used(struct fe *f, struct fe_queue *q, uint32_t *id, uint32_t *len, int ms);

/* Write request descriptors for @slot; returns the head. The status byte is q->status + slot. */
uint16_t build(struct fe *f, struct fe_queue *q, unsigned slot, uint32_t type, uint64_t sector,
	       const struct seg *segs, size_t n);

/* Run one request with @n data segments between header and status. */
struct res run(struct fe *f, unsigned qi, uint32_t type, uint64_t sector, const struct seg *segs,
	       size_t n);

struct res run1(struct fe *f, uint32_t type, uint64_t sector, gm_gpa_t gpa, uint32_t len,
		bool write);

void image_read(struct fe *f, uint64_t off, void *buf, size_t len);

void fe_stop(struct fe *f);

/* ---- multi-queue workload ---- */

/* Per round: write a pattern to this queue's sectors, read it back, compare. */
void *traffic_thread(void *arg);

/* Assert (on the test's thread, after the join) that @t's traffic all went well. */
void traffic_assert_ok(const struct traffic *t);

/*
 * Replace the memory table @n times; returns the first failure's text
 * (NULL: none). It does not assert: traffic threads may be running.
 */
const char *replace_tables(struct fe *f, unsigned n);

/*
 * The multi-queue scenarios: the unit test runs them small, the stress
 * soak (suite stress, under TSan) large.
 */
void scenario_memory_table_replaced_mid_stream(void);
void scenario_several_queues_serve_in_parallel(unsigned rounds, unsigned tables);

#endif
