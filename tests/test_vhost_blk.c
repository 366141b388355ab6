/* SPDX-License-Identifier: MIT */
/*
 * test_vhost_blk.c - gm-vhost-blk's protocol server and block device,
 * driven in-process by a fake vhost-user front end (vhost_blk_frontend.c).
 *
 * The front end is this test: it owns the guest memory (a memfd), sends
 * the vhost-user messages QEMU would over a socketpair, builds split rings
 * and requests in guest memory, kicks, and waits for the call eventfd. The
 * back end is the real server (tools/gm-vhost-blk/vu*.c + blk.c) running
 * vu_serve() in a thread, on a raw image in a temporary file.
 *
 * One program, one group per file and kind of case: this file holds
 * normal traffic, hostile requests and messages, the image, and main();
 * test_vhost_blk_fds.c (the fds the front end hands over),
 * test_vhost_blk_memory.c (memory tables, several queues, inflight
 * tracking, RESET_OWNER, truncated memory) and test_vhost_blk_aio.c (many
 * requests at once, the io_uring path) hold the rest (test_vhost_blk.h).
 * main() runs what only the protocol sees once, what serves requests with
 * --aio=sync and again with io_uring, then what only io_uring does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "test_vhost_blk.h"
#include "vhost_blk_frontend.h"

/* ---- tests: normal traffic ---- */

static void read_write_flush_get_id_discard_write_zeroes(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct seg two[2] = {{DATA, 2048, true}, {DATA + 8192, 2048, true}};
	uint8_t *g, buf[8192];
	struct res r;
	struct blk_stats st;
	unsigned i;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	g = gm_host_ptr(f.m, DATA, DATA_PER_Q);
	/* IN: sectors 3..10 into one buffer. */
	r = run1(&f, T_IN, 3, DATA, 4096, true);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.len, 4097);
	for (i = 0; i < 4096; i++)
		assert_int_equal(g[i], img_byte(3 * 512 + i));
	/* IN split over two buffers. */
	r = run(&f, 0, T_IN, 100, two, 2);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.len, 4097);
	assert_int_equal(g[2047], img_byte(100 * 512 + 2047));
	assert_int_equal(g[8192], img_byte(100 * 512 + 2048));
	/* OUT reaches the image. */
	memset(g, 0x5a, 4096);
	r = run1(&f, T_OUT, 20, DATA, 4096, false);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.len, 1);
	image_read(&f, 20 * 512, buf, 4096);
	for (i = 0; i < 4096; i++)
		assert_int_equal(buf[i], 0x5a);
	assert_int_equal(img_byte(20 * 512 - 1), (image_read(&f, 20 * 512 - 1, buf, 1), buf[0]));
	/* FLUSH. */
	r = run1(&f, T_FLUSH, 0, 0, 0, false);
	assert_int_equal(r.status, 0);
	/* GET_ID: the image's file name, 20 bytes at most. */
	memset(g, 0, 64);
	r = run1(&f, T_GET_ID, 0, DATA, 20, true);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.len, 21);
	assert_memory_equal(g, strrchr(f.img_path, '/') + 1, 20); /* the name is 24 bytes long */
	/* WRITE_ZEROES of sectors 40..47, then DISCARD of the same. */
	assert_int_equal(gm_write_le64(f.m, DATA, 40), 0);
	assert_int_equal(gm_write_le32(f.m, DATA + 8, 8), 0);
	assert_int_equal(gm_write_le32(f.m, DATA + 12, 0), 0);
	r = run1(&f, T_WRITE_ZEROES, 0, DATA, 16, false);
	assert_int_equal(r.status, 0);
	image_read(&f, 40 * 512, buf, 4096);
	for (i = 0; i < 4096; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal((image_read(&f, 48 * 512, buf, 1), buf[0]), img_byte(48 * 512));
	r = run1(&f, T_DISCARD, 0, DATA, 16, false);
	assert_int_equal(r.status, 0);
	blk_stats_take(&f.blk, &st, false);
	assert_int_equal(st.in, 2);
	assert_int_equal(st.out, 1);
	assert_int_equal(st.flush, 1);
	assert_int_equal(st.get_id, 1);
	assert_int_equal(st.write_zeroes, 1);
	assert_int_equal(st.discard, 1);
	assert_int_equal(st.bytes_read, 8192);
	assert_int_equal(st.bytes_written, 4096);
	assert_int_equal(st.failed, 0);
	/* Reads, the write and the flush through io_uring; the rest served at once. */
	assert_int_equal(st.uring, fe_aio == BLK_AIO_URING ? 4 : 0);
	fe_stop(&f);
	assert_int_equal(f.info.regions, 1);
	assert_int_equal(f.info.tables, 1);
	fe_fini(&f);
}

static void config_space_describes_the_disk(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	uint8_t p[12 + 60] = {0}, out[12 + 60];
	uint32_t size = 60, v32;
	uint64_t cap;
	uint16_t nq;

	(void)state;
	fe_init(&f, 3, false);
	connect_fe(&f);
	set_u64(&f, SET_PROTOCOL_FEATURES, 1ull << VU_PF_CONFIG);
	memcpy(p + 4, &size, 4);
	send_msg(&f, GET_CONFIG, V1, p, sizeof(p), NULL, 0);
	assert_int_equal(recv_reply(&f, GET_CONFIG, out, sizeof(out)), sizeof(out));
	memcpy(&cap, out + 12, 8);
	assert_int_equal(cap, IMG_SIZE / 512);
	memcpy(&v32, out + 12 + 12, 4);
	assert_int_equal(v32, BLK_SEG_MAX);
	memcpy(&v32, out + 12 + 20, 4);
	assert_int_equal(v32, 512);
	memcpy(&nq, out + 12 + 34, 2);
	assert_int_equal(nq, 3);
	assert_int_equal(get_u64(&f, GET_MAX_MEM_SLOTS), 32);
	fe_stop(&f);
	fe_fini(&f);
}

static void get_vring_base_stops_the_ring(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	uint32_t p[2] = {0, 0}, id, len;
	struct fe_queue *q = &f.q[0];

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	assert_int_equal(run1(&f, T_IN, 1, DATA, 512, true).status, 0);
	send_msg(&f, GET_VRING_BASE, V1, p, 8, NULL, 0);
	assert_int_equal(recv_reply(&f, GET_VRING_BASE, p, 8), 8);
	assert_int_equal(p[0], 0);
	assert_int_equal(p[1], 2);
	/* A request offered now is not served: the ring is stopped. */
	put_desc(&f, q, 0, q->hdr, 16, 0, 0);
	offer(&f, q, 0);
	assert_false(wait_used(&f, q, &id, &len, 100));
	fe_stop(&f);
	fe_fini(&f);
}

/* ---- tests: hostile requests ---- */

static void bad_requests_fail_with_ioerr_and_touch_nothing(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct seg rd = {DATA, 512, false}, hole = {RAM_SIZE - 512, 1024, true};
	uint8_t *g, buf[512];
	struct res r;
	struct blk_stats st;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	g = gm_host_ptr(f.m, DATA, 4096);
	/* Past the end of the image, and the last sector + 1. */
	assert_int_equal(run1(&f, T_IN, IMG_SIZE / 512, DATA, 512, true).status, 1);
	assert_int_equal(run1(&f, T_IN, IMG_SIZE / 512 - 1, DATA, 1024, true).status, 1);
	assert_int_equal(run1(&f, T_OUT, IMG_SIZE / 512 - 1, DATA, 1024, false).status, 1);
	/* sector * 512 wraps past 2^64. */
	assert_int_equal(run1(&f, T_IN, UINT64_MAX / 256, DATA, 512, true).status, 1);
	/* Not a whole number of sectors. */
	assert_int_equal(run1(&f, T_IN, 0, DATA, 100, true).status, 1);
	/* A read whose data buffer is device-readable: never written. */
	memset(g, 0x11, 512);
	r = run(&f, 0, T_IN, 0, &rd, 1);
	assert_int_equal(r.status, 1);
	assert_int_equal(r.len, 1);
	assert_int_equal(g[0], 0x11);
	assert_int_equal(g[511], 0x11);
	/* A data buffer reaching outside guest RAM. */
	r = run(&f, 0, T_IN, 0, &hole, 1);
	assert_int_equal(r.status, 1);
	/* Unknown type; discard with the unmap flag (reserved for discard). */
	assert_int_equal(run1(&f, 77, 0, 0, 0, false).status, 2);
	assert_int_equal(gm_write_le64(f.m, DATA, 0), 0);
	assert_int_equal(gm_write_le32(f.m, DATA + 8, 1), 0);
	assert_int_equal(gm_write_le32(f.m, DATA + 12, 1), 0);
	assert_int_equal(run1(&f, T_DISCARD, 0, DATA, 16, false).status, 2);
	/* A write-zeroes segment past the end. */
	assert_int_equal(gm_write_le64(f.m, DATA, IMG_SIZE / 512 - 1), 0);
	assert_int_equal(gm_write_le32(f.m, DATA + 8, 2), 0);
	assert_int_equal(gm_write_le32(f.m, DATA + 12, 0), 0);
	assert_int_equal(run1(&f, T_WRITE_ZEROES, 0, DATA, 16, false).status, 1);
	/* Segment list not a multiple of 16 bytes. */
	assert_int_equal(run1(&f, T_WRITE_ZEROES, 0, DATA, 12, false).status, 1);
	/* The image is intact. */
	image_read(&f, IMG_SIZE - 512, buf, 512);
	assert_int_equal(buf[0], img_byte(IMG_SIZE - 512));
	assert_int_equal(buf[511], img_byte(IMG_SIZE - 1));
	blk_stats_take(&f.blk, &st, false);
	assert_int_equal(st.failed, 9);
	assert_int_equal(st.unsupported, 2);
	/* And the device still serves good requests. */
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	fe_fini(&f);
}

static void malformed_chains_are_returned_and_the_next_is_served(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct fe_queue *q = &f.q[0];
	uint32_t id, len;
	uint8_t s;
	struct blk_stats st;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	/* A loop: 40 -> 41 -> 40. */
	put_desc(&f, q, 40, q->hdr, 16, 1, 41);
	put_desc(&f, q, 41, q->status, 1, 1 | 2, 40);
	assert_int_equal(gm_write_u8(f.m, q->status, 0xee), 0);
	offer(&f, q, 40);
	assert_true(wait_used(&f, q, &id, &len, 5000));
	assert_int_equal(id, 40);
	assert_int_equal(len, 0);
	assert_int_equal(gm_read_u8(f.m, q->status, &s), 0);
	assert_int_equal(s, 0xee);
	/* next beyond the queue. */
	put_desc(&f, q, 40, q->hdr, 16, 1, QSIZE + 5);
	offer(&f, q, 40);
	assert_true(wait_used(&f, q, &id, &len, 5000));
	assert_int_equal(len, 0);
	/* No writable descriptor at all: nowhere to put a status. */
	put_desc(&f, q, 40, q->hdr, 16, 0, 0);
	offer(&f, q, 40);
	assert_true(wait_used(&f, q, &id, &len, 5000));
	assert_int_equal(len, 0);
	blk_stats_take(&f.blk, &st, false);
	assert_int_equal(st.malformed, 2);
	assert_int_equal(st.failed, 1);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	fe_fini(&f);
}

static void readonly_device_refuses_writes(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	uint8_t buf[512];

	(void)state;
	fe_init(&f, 1, true);
	fe_start(&f, 0);
	memset(gm_host_ptr(f.m, DATA, 512), 0x77, 512);
	assert_int_equal(run1(&f, T_OUT, 0, DATA, 512, false).status, 1);
	assert_int_equal(gm_write_le64(f.m, DATA, 0), 0);
	assert_int_equal(gm_write_le32(f.m, DATA + 8, 1), 0);
	assert_int_equal(gm_write_le32(f.m, DATA + 12, 0), 0);
	assert_int_equal(run1(&f, T_WRITE_ZEROES, 0, DATA, 16, false).status, 1);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	image_read(&f, 0, buf, 512);
	assert_int_equal(buf[5], img_byte(5));
	assert_true(get_u64(&f, GET_FEATURES) & (1ull << 5)); /* VIRTIO_BLK_F_RO */
	fe_stop(&f);
	fe_fini(&f);
}

/* ---- tests: hostile messages ---- */

/* Each case sends one bad message after a good start of the connection. */
/*
 * Whether recvmsg() reports MSG_CTRUNC when more fds arrive than its
 * control buffer holds (Linux does; qemu-user 7.2 drops the extra fds
 * silently): nine fds sent, room for eight.
 */
static bool recvmsg_reports_ctrunc(void)
{
	union {
		char buf[CMSG_SPACE(9 * sizeof(int))];
		struct cmsghdr align;
	} out, in;
	int sv[2], fds[9], i;
	char byte = 0;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;
	bool ctrunc;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	for (i = 0; i < 9; i++)
		fds[i] = sv[0];
	memset(&out, 0, sizeof(out)); /* the padding after the fds goes out too */
	mh.msg_control = out.buf;
	mh.msg_controllen = CMSG_SPACE(9 * sizeof(int));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(9 * sizeof(int));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	assert_int_equal(sendmsg(sv[0], &mh, 0), 1);
	mh.msg_control = in.buf;
	mh.msg_controllen = CMSG_SPACE(8 * sizeof(int));
	assert_int_equal(recvmsg(sv[1], &mh, MSG_CMSG_CLOEXEC), 1);
	ctrunc = (mh.msg_flags & MSG_CTRUNC) != 0;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

		memcpy(fds, CMSG_DATA(c), n * sizeof(int));
		for (i = 0; i < (int)n; i++)
			close(fds[i]);
	}
	close(sv[0]);
	close(sv[1]);
	return ctrunc;
}

static void malformed_messages_end_the_connection_and_close_fds(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	uint8_t p[512] = {0};
	struct region_msg r[9];
	int memfd, efd, fds[9], before, i, c;
	bool ctrunc = recvmsg_reports_ctrunc();
	uint32_t u32;

	(void)state;
	fe_init(&f, 1, false);
	memfd = gm_mapping_fd(f.map);
	efd = eventfd(0, EFD_CLOEXEC);
	for (i = 0; i < 9; i++) {
		r[i] = (struct region_msg){(uint64_t)i * 4096, 4096, UA + (uint64_t)i * 4096, 0};
		fds[i] = memfd;
	}
	/* The last case needs MSG_CTRUNC (skipped at the end without it). */
	for (c = 0; c < (ctrunc ? 13 : 12); c++) {
		before = count_fds();
		connect_fe(&f);
		set_u64(&f, SET_PROTOCOL_FEATURES, 1ull << VU_PF_REPLY_ACK);
		switch (c) {
		case 0: /* SET_FEATURES with a 4-byte payload */
			send_msg(&f, SET_FEATURES, V1, p, 4, NULL, 0);
			break;
		case 1: /* nine regions: more than SET_MEM_TABLE can carry */
			send_msg(&f, SET_MEM_TABLE, V1, p, mem_table(p, r, 8), fds, 8);
			u32 = 9;
			memcpy(p, &u32, 4);
			send_msg(&f, SET_MEM_TABLE, V1, p, 8 + 32 * 8, fds, 8);
			break;
		case 2: /* two regions, one fd */
			send_msg(&f, SET_MEM_TABLE, V1, p, mem_table(p, r, 2), fds, 1);
			break;
		case 3: /* one region, two fds */
			send_msg(&f, SET_MEM_TABLE, V1, p, mem_table(p, r, 1), fds, 2);
			break;
		case 4: /* SET_VRING_NUM with a stray fd */
			u32 = 0;
			memcpy(p, &u32, 4);
			send_msg(&f, SET_VRING_NUM, V1, p, 8, &efd, 1);
			break;
		case 5: /* SET_VRING_KICK claiming no fd, but carrying one */
			send_fd_msg(&f, SET_VRING_KICK, 0, -1);
			send_msg(&f, SET_VRING_KICK, V1, (uint64_t[]){0x100}, 8, &efd, 1);
			break;
		case 6: /* a queue index beyond the queues */
			vring_state(&f, SET_VRING_NUM, 5, 64);
			break;
		case 7: /* unknown request, no reply asked */
			send_msg(&f, 99, V1, NULL, 0, NULL, 0);
			break;
		case 8: /* wrong version bits */
			send_msg(&f, GET_FEATURES, 0x2, NULL, 0, NULL, 0);
			break;
		case 9: /* payload larger than any message */
			u32 = 100000;
			send_msg(&f, GET_FEATURES, V1, NULL, 0, NULL, 0);
			assert_int_equal(recv_reply(&f, GET_FEATURES, p, 8), 8);
			memcpy(p, (uint32_t[]){SET_FEATURES, V1, 100000}, 12);
			assert_int_equal(send(f.sock, p, 12, MSG_NOSIGNAL), 12);
			break;
		case 10: /* ADD_MEM_REG without its fd */
			memcpy(p + 8, &r[0], 32);
			send_msg(&f, ADD_MEM_REG, V1, p, 40, NULL, 0);
			break;
		case 11: /* GET_CONFIG asking beyond the config space */
			memcpy(p, (uint32_t[]){250, 10, 0}, 12);
			send_msg(&f, GET_CONFIG, V1, p, 22, NULL, 0);
			break;
		case 12: /* nine fds: more than any message carries (MSG_CTRUNC) */
			send_msg(&f, SET_MEM_TABLE, V1, p, mem_table(p, r, 8), fds, 9);
			break;
		}
		assert_int_equal(wait_backend_closed(&f), -EPROTO);
		assert_string_equal(f.info.end_reason,
				    c == 7 ? "unsupported request" : "malformed message");
		/* Every fd the back end received was closed again. */
		assert_int_equal(count_fds(), before);
	}
	/* The server goes on serving new connections. */
	fe_start(&f, 0);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	close(efd);
	fe_fini(&f);
	if (!ctrunc) {
		print_message("skipped: nine fds in one message: recvmsg() does not report "
			      "MSG_CTRUNC here (qemu-user)\n");
		skip();
	}
}

static void refused_requests_get_a_failed_ack_and_the_connection_goes_on(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	uint8_t p[512] = {0};
	struct region_msg r[2] = {{0, 8192, UA, 0}, {4096, 8192, UA + MiB, 0}};
	int memfd, fds[2];
	uint32_t st[2] = {0, 3};
	uint64_t i;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	memfd = fds[0] = fds[1] = gm_mapping_fd(f.map);
	/* Overlapping guest ranges, then overlapping user ranges. */
	assert_int_equal(acked(&f, SET_MEM_TABLE, p, mem_table(p, r, 2), fds, 2), 1);
	r[1].gpa = MiB;
	r[1].uaddr = UA + 4096;
	assert_int_equal(acked(&f, SET_MEM_TABLE, p, mem_table(p, r, 2), fds, 2), 1);
	/* Zero-sized region; offset + size wrapping. */
	r[0].size = 0;
	assert_int_equal(acked(&f, SET_MEM_TABLE, p, mem_table(p, r, 1), fds, 1), 1);
	r[0] = (struct region_msg){0, 8192, UA, UINT64_MAX - 4096};
	assert_int_equal(acked(&f, SET_MEM_TABLE, p, mem_table(p, r, 1), fds, 1), 1);
	/* A region past the end of its memfd (found by fuzz/fuzz_vhost_user.c: SIGBUS). */
	r[0] = (struct region_msg){0, RAM_SIZE + 4096, UA, 0};
	assert_int_equal(acked(&f, SET_MEM_TABLE, p, mem_table(p, r, 1), fds, 1), 1);
	r[0] = (struct region_msg){0, 4096, UA, RAM_SIZE};
	assert_int_equal(acked(&f, SET_MEM_TABLE, p, mem_table(p, r, 1), fds, 1), 1);
	/* Queue size not a power of two; unknown request; SET_CONFIG. */
	assert_int_equal(acked(&f, SET_VRING_NUM, st, 8, NULL, 0), 1);
	assert_int_equal(acked(&f, 99, NULL, 0, NULL, 0), 1);
	memcpy(p, (uint32_t[]){0, 1, 0}, 12);
	assert_int_equal(acked(&f, SET_CONFIG, p, 13, NULL, 0), 1);
	/* Fill every memory slot with ADD_MEM_REG, then one too many. */
	for (i = 1; i < 32; i++) {
		struct region_msg one = {RAM_SIZE + i * 4096, 4096, UA + RAM_SIZE + i * 4096, 0};

		memcpy(p + 8, &one, 32);
		assert_int_equal(acked(&f, ADD_MEM_REG, p, 40, &memfd, 1), 0);
	}
	memcpy(p + 8, &(struct region_msg){RAM_SIZE + i * 4096, 4096, UA + RAM_SIZE + i * 4096, 0},
	       32);
	assert_int_equal(acked(&f, ADD_MEM_REG, p, 40, &memfd, 1), 1);
	/* Removing a region that is not there. */
	memcpy(p + 8, &(struct region_msg){8 * MiB, 4096, UA, 0}, 32);
	assert_int_equal(acked(&f, REM_MEM_REG, p, 40, NULL, 0), 1);
	/* The original table is still in force: I/O works. */
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	assert_int_equal(f.info.max_regions_seen, 32);
	fe_fini(&f);
}

/* ---- tests: the image ---- */

static void blk_open_refuses_what_is_not_an_image_and_says_why(void **state)
{
	char path[] = "/tmp/gm-test-vhost-blk-small.XXXXXX", err[256];
	struct blk_dev b;
	int fd;

	(void)state;
	assert_int_equal(blk_open(&b, "/nonexistent/image", false, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "cannot open image /nonexistent/image read-write"));
	assert_int_equal(b.fd, -1);
	assert_int_equal(blk_open(&b, "/tmp", true, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "image /tmp is a directory, not a regular file"));
	assert_int_equal(b.fd, -1);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	assert_int_equal(blk_open(&b, path, false, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "smaller than one 512-byte sector (10 bytes)"));
	/* A partial last sector is not served: 1000 bytes are one sector. */
	assert_int_equal(ftruncate(fd, 1000), 0);
	assert_int_equal(blk_open(&b, path, true, err, sizeof(err)), 0);
	assert_int_equal(b.size, 512);
	assert_true(b.readonly);
	blk_close(&b);
	assert_int_equal(b.fd, -1);
	close(fd);
	unlink(path);
}

/*
 * WRITE_ZEROES on an image in tmpfs, which has no FALLOC_FL_ZERO_RANGE:
 * the device writes the zeros itself (64 KiB at a time), and with UNMAP
 * punches a hole; either way the range reads zero and its neighbours keep
 * their bytes.
 */
static void write_zeroes_on_tmpfs_writes_the_zeros_itself(void **state)
{
	char err[256], shm[] = "/dev/shm/gm-test-vhost-blk.XXXXXX";
	uint8_t buf[150 * 1024];
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	int from, to;
	ssize_t n;
	size_t i;

	(void)state;
	to = mkstemp(shm);
	if (to < 0)
		skip();
	fe_init(&f, 1, false);
	/* Serve a tmpfs copy of the image instead (the server holds &f.blk). */
	from = open(f.img_path, O_RDONLY | O_CLOEXEC);
	assert_true(from >= 0);
	while ((n = read(from, buf, sizeof(buf))) > 0)
		assert_int_equal(write(to, buf, (size_t)n), n);
	close(from);
	close(to);
	blk_close(&f.blk);
	unlink(f.img_path);
	snprintf(f.img_path, sizeof(f.img_path), "%s", shm);
	assert_int_equal(blk_open(&f.blk, f.img_path, false, err, sizeof(err)), 0);
	fe_start(&f, 0);
	for (uint32_t unmap = 0; unmap < 2; unmap++) {
		uint64_t sector = unmap ? 700 : 100;

		assert_int_equal(gm_write_le64(f.m, DATA, sector), 0);
		assert_int_equal(gm_write_le32(f.m, DATA + 8, 300), 0);
		assert_int_equal(gm_write_le32(f.m, DATA + 12, unmap), 0);
		assert_int_equal(run1(&f, T_WRITE_ZEROES, 0, DATA, 16, false).status, 0);
		image_read(&f, sector * 512, buf, 300 * 512);
		for (i = 0; i < 300 * 512; i++)
			if (buf[i] != 0)
				fail_msg("unmap %u: byte %zu of the range is %#x", unmap, i,
					 buf[i]);
		image_read(&f, sector * 512 - 1, buf, 1);
		assert_int_equal(buf[0], img_byte(sector * 512 - 1));
		image_read(&f, (sector + 300) * 512, buf, 1);
		assert_int_equal(buf[0], img_byte((sector + 300) * 512));
	}
	fe_stop(&f);
	fe_fini(&f);
}

int vhost_blk_protocol_tests(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(config_space_describes_the_disk, fe_teardown),
	    cmocka_unit_test_teardown(malformed_messages_end_the_connection_and_close_fds,
				      fe_teardown),
	    cmocka_unit_test_teardown(refused_requests_get_a_failed_ack_and_the_connection_goes_on,
				      fe_teardown),
	    cmocka_unit_test(blk_open_refuses_what_is_not_an_image_and_says_why),
	};

	return cmocka_run_group_tests_name("protocol", tests, NULL, NULL);
}

int vhost_blk_requests_tests(const char *name)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(read_write_flush_get_id_discard_write_zeroes, fe_teardown),
	    cmocka_unit_test_teardown(get_vring_base_stops_the_ring, fe_teardown),
	    cmocka_unit_test_teardown(bad_requests_fail_with_ioerr_and_touch_nothing, fe_teardown),
	    cmocka_unit_test_teardown(malformed_chains_are_returned_and_the_next_is_served,
				      fe_teardown),
	    cmocka_unit_test_teardown(readonly_device_refuses_writes, fe_teardown),
	    cmocka_unit_test_teardown(write_zeroes_on_tmpfs_writes_the_zeros_itself, fe_teardown),
	};

	return _cmocka_run_group_tests(name, tests, sizeof(tests) / sizeof(tests[0]), NULL, NULL);
}

static void io_uring_unavailable(void **state)
{
	(void)state;
	skip(); /* main() printed why */
}

/* Run every file's requests group with the device serving them through @aio. */
static int run_requests(const char *name, enum blk_aio aio)
{
	int failed = 0;

	fe_aio = aio;
	failed |= vhost_blk_requests_tests(name);
	failed |= vhost_blk_fds_requests_tests(name);
	failed |= vhost_blk_memory_requests_tests(name);
	failed |= vhost_blk_aio_requests_tests(name);
	return failed;
}

int main(void)
{
	const struct CMUnitTest unavailable[] = {cmocka_unit_test(io_uring_unavailable)};
	char why_not[128];
	int failed = 0;

	signal(SIGPIPE, SIG_IGN);
	/* What only the protocol sees: run once. */
	failed |= vhost_blk_protocol_tests();
	failed |= vhost_blk_fds_protocol_tests();
	failed |= vhost_blk_memory_protocol_tests();
	/* What serves requests: run with --aio=sync and again with io_uring. */
	failed |= run_requests("requests, aio sync", BLK_AIO_SYNC);
	if (blk_uring_probe(why_not, sizeof(why_not))) {
		printf("skipped: the io_uring runs: %s\n", why_not);
		return failed | cmocka_run_group_tests_name("io_uring", unavailable, NULL, NULL);
	}
	failed |= run_requests("requests, aio io_uring", BLK_AIO_URING);
#ifdef GM_HAVE_LIBURING
	fe_aio = BLK_AIO_URING;
	failed |= vhost_blk_aio_uring_only_tests();
#endif
	return failed;
}
