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
 * The two multi-queue scenarios run here small; the soak
 * stress/stress_vhost_blk_mq.c runs them large (suite stress, under TSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/userfaultfd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "threads.h"
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

/* ---- tests: memory table replaced mid-stream, several queues ---- */

#define MQ_ROUNDS 20
#define MQ_TABLES 6

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

/* ---- tests: inflight tracking (INFLIGHT_SHMFD) ---- */

static void inflight_buffer_is_created_and_kept_in_step(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	uint64_t size, counter;
	uint8_t *r;
	uint16_t v;
	int fd;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	fd = get_inflight(&f, &size);
	assert_int_equal(size, IF_QBYTES);
	r = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(r != MAP_FAILED);
	set_inflight(&f, fd, size);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	assert_int_equal(run1(&f, T_IN, 1, DATA, 512, true).status, 0);
	memcpy(&v, r + 8, 2);
	assert_int_equal(v, 1); /* version */
	memcpy(&v, r + 10, 2);
	assert_int_equal(v, QSIZE); /* desc_num */
	memcpy(&v, r + 14, 2);
	assert_int_equal(v, 2); /* used_idx */
	memcpy(&v, r + 12, 2);
	assert_int_equal(v, SLOT_DESCS); /* last_batch_head: the second request's head */
	assert_int_equal(r[16 + 16 * SLOT_DESCS], 0); /* not in flight any more */
	memcpy(&counter, r + 16 + 16 * SLOT_DESCS + 8, 8);
	assert_int_equal(counter, 2);
	fe_stop(&f);
	munmap(r, size);
	close(fd);
	fe_fini(&f);
}

/*
 * Found by fuzz/fuzz_vhost_user.c: an inflight fd shorter than the buffer
 * (mmap_size is only the front end's claim) mapped, and the first store
 * into it killed the back end with SIGBUS.
 */
static void inflight_fd_shorter_than_the_buffer_is_refused(void **state)
{
	uint64_t p[3] = {1ull << 20, 0, 1 | (uint64_t)QSIZE << 16};
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	int fd, before;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	before = count_fds();
	fd = memfd_create("test-inflight", MFD_CLOEXEC); /* 0 bytes */
	assert_true(fd >= 0);
	assert_int_equal(acked(&f, 32, p, 24, &fd, 1), 1);
	assert_int_equal(ftruncate(fd, IF_QBYTES - 1), 0);
	assert_int_equal(acked(&f, 32, p, 24, &fd, 1), 1);
	close(fd);
	assert_int_equal(count_fds(), before); /* the refused fds were closed */
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	fe_fini(&f);
}

/*
 * A previous back end took two writes of the same sector and died before
 * completing them: they are written again in the order it took them, then
 * the ring goes on with the next request.
 */
struct left_setup {
	uint16_t h0, h1, h2;
	int fd;
	uint8_t *r;
};

/* Before the ring starts: the ring and the inflight buffer as a crash left them. */
static void left_in_flight(struct fe *f, void *arg)
{
	struct left_setup *ls = arg;
	struct fe_queue *q = &f->q[0];
	struct seg w0 = {DATA, 512, false}, w1 = {DATA + 512, 512, false},
		   rd = {DATA + 1024, 512, true};
	uint64_t c0 = 5, c1 = 3;
	uint16_t v = 1;

	ls->h0 = build(f, q, 0, T_OUT, 9, &w0, 1);
	ls->h1 = build(f, q, 1, T_OUT, 9, &w1, 1);
	ls->h2 = build(f, q, 2, T_IN, 9, &rd, 1);
	/* h1 was taken first, then h0; neither completed. */
	memcpy(ls->r + 8, &v, 2);
	ls->r[16 + 16 * ls->h0] = 1;
	memcpy(ls->r + 16 + 16 * ls->h0 + 8, &c0, 8);
	ls->r[16 + 16 * ls->h1] = 1;
	memcpy(ls->r + 16 + 16 * ls->h1 + 8, &c1, 8);
	/* The driver had made both available. */
	assert_int_equal(gm_write_le16(f->m, q->avail + 4, ls->h1), 0);
	assert_int_equal(gm_write_le16(f->m, q->avail + 6, ls->h0), 0);
	q->avail_idx = 2;
	assert_int_equal(gm_atomic_store_u32(f->m, q->avail, 2u << 16, __ATOMIC_RELEASE), 0);
	set_inflight(f, ls->fd, IF_QBYTES);
}

/*
 * A previous back end took two writes of the same sector and died before
 * completing them: they are written again in the order it took them, then
 * the ring goes on with the next request.
 */
static void requests_left_in_flight_are_served_again_in_order(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct left_setup ls;
	struct fe_queue *q = &f.q[0];
	uint32_t id, len;
	uint16_t v;
	uint8_t *g;

	(void)state;
	fe_init(&f, 1, false);
	g = gm_host_ptr(f.m, DATA, 1536);
	memset(g, 0xa0, 512);
	memset(g + 512, 0xa1, 512);
	ls.fd = memfd_create("inflight", MFD_CLOEXEC);
	assert_int_equal(ftruncate(ls.fd, IF_QBYTES), 0);
	ls.r = mmap(NULL, IF_QBYTES, PROT_READ | PROT_WRITE, MAP_SHARED, ls.fd, 0);
	assert_true(ls.r != MAP_FAILED);
	fe_start_with(&f, 0, left_in_flight, &ls);
	offer(&f, q, ls.h2);
	assert_true(wait_used(&f, q, &id, &len, 5000));
	assert_int_equal(id, ls.h1);
	assert_true(wait_used(&f, q, &id, &len, 5000));
	assert_int_equal(id, ls.h0);
	assert_true(wait_used(&f, q, &id, &len, 5000));
	assert_int_equal(id, ls.h2);
	assert_int_equal(len, 513);
	assert_int_equal(g[1024], 0xa0); /* h0's data, written last */
	assert_int_equal(g[1535], 0xa0);
	memcpy(&v, ls.r + 14, 2);
	assert_int_equal(v, 3);
	assert_int_equal(ls.r[16 + 16 * ls.h0] | ls.r[16 + 16 * ls.h1] | ls.r[16 + 16 * ls.h2], 0);
	fe_stop(&f);
	assert_int_equal(f.info.resubmitted, 2);
	munmap(ls.r, IF_QBYTES);
	close(ls.fd);
	fe_fini(&f);
}

/* Before the ring starts: a buffer of garbage with one stray head marked. */
static void garbage_in_flight(struct fe *f, void *arg)
{
	int fd = *(int *)arg, i;
	uint64_t small[3] = {64, 0, 1 | (uint64_t)QSIZE << 16};
	uint8_t *r = mmap(NULL, IF_QBYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	uint16_t v;

	assert_true(r != MAP_FAILED);
	for (i = 0; i < IF_QBYTES; i++)
		r[i] = (uint8_t)(i * 37 + 11);
	v = 1; /* version */
	memcpy(r + 8, &v, 2);
	v = 0xffff; /* last_batch_head out of range, used_idx not the ring's */
	memcpy(r + 12, &v, 2);
	memcpy(r + 14, &v, 2);
	for (i = 0; i < (int)QSIZE; i++)
		r[16 + 16 * i] = 0;
	r[16 + 16 * 3] = 1; /* one stray head, whose chain is all zeros */
	munmap(r, IF_QBYTES);
	/* The stray head came from the ring's first entry. */
	assert_int_equal(gm_write_le16(f->m, f->q[0].avail + 4, 3), 0);
	f->q[0].avail_idx = 1;
	assert_int_equal(gm_atomic_store_u32(f->m, f->q[0].avail, 1u << 16, __ATOMIC_RELEASE), 0);
	/* A buffer too small for the queue is refused. */
	assert_int_equal(acked(f, 32, small, 24, &fd, 1), 1);
	set_inflight(f, fd, IF_QBYTES);
}

static void garbage_inflight_buffer_is_survived(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct seg rd = {DATA, 512, true};
	uint32_t id, len;
	int fd;

	(void)state;
	fe_init(&f, 1, false);
	fd = memfd_create("inflight", MFD_CLOEXEC);
	assert_int_equal(ftruncate(fd, IF_QBYTES), 0);
	fe_start_with(&f, 0, garbage_in_flight, &fd);
	offer(&f, &f.q[0], build(&f, &f.q[0], 1, T_IN, 0, &rd, 1));
	/* The stray request is given back first, with nothing written. */
	assert_true(wait_used(&f, &f.q[0], &id, &len, 5000));
	assert_int_equal(id, 3);
	assert_int_equal(len, 0);
	assert_true(wait_used(&f, &f.q[0], &id, &len, 5000));
	assert_int_equal(id, SLOT_DESCS);
	assert_int_equal(len, 513);
	fe_stop(&f);
	assert_int_equal(f.info.resubmitted, 1);
	close(fd);
	fe_fini(&f);
}

/* ---- tests: the fds the front end hands over ---- */

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/*
 * The fd kinds a front end may hand over where the protocol asks for an
 * eventfd (kick, call, err) or a file (inflight): each test makes one.
 */
enum fd_kind {
	K_PIPE_READ,
	K_PIPE_WRITE_HUNG_UP, /* forever readable and hung up for a poller */
	K_SOCKET,
	K_OWN_CONNECTION,     /* the front end's end of this very connection */
	K_BACKEND_CONNECTION, /* the back end's end of it (same process here) */
	K_EPOLL,
	K_LISTENING,
	K_MEMFD,
	K_KINDS,
};

/* A new fd of @kind for a test on @f; the caller closes it. */
static int fd_of_kind(struct fe *f, enum fd_kind kind)
{
	int p[2], fd = -1;

	switch (kind) {
	case K_PIPE_READ:
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		close(p[1]);
		fd = p[0];
		break;
	case K_PIPE_WRITE_HUNG_UP:
		assert_int_equal(pipe2(p, O_CLOEXEC), 0);
		close(p[0]);
		fd = p[1];
		break;
	case K_SOCKET:
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p), 0);
		close(p[1]);
		fd = p[0];
		break;
	case K_OWN_CONNECTION:
		fd = dup(f->sock);
		break;
	case K_BACKEND_CONNECTION:
		fd = dup(f->backend_sock);
		break;
	case K_EPOLL:
		fd = epoll_create1(EPOLL_CLOEXEC);
		break;
	case K_LISTENING:
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		assert_true(fd >= 0);
		/* A bare family is autobind: a fresh abstract address. */
		assert_int_equal(
		    bind(fd, (struct sockaddr *)&(struct sockaddr_un){.sun_family = AF_UNIX},
			 sizeof(sa_family_t)),
		    0);
		assert_int_equal(listen(fd, 1), 0);
		break;
	case K_MEMFD:
		fd = memfd_create("test-not-an-eventfd", MFD_CLOEXEC);
		break;
	case K_KINDS:
		break;
	}
	assert_true(fd >= 0);
	return fd;
}

/*
 * Kick, call and err fds must be eventfds: every other kind is refused
 * (a failed REPLY_ACK), closed, and the queue keeps the eventfds it had.
 */
static void kick_call_err_fds_that_are_not_eventfds_are_refused(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	static const uint32_t reqs[] = {SET_VRING_KICK, SET_VRING_CALL, SET_VRING_ERR};
	unsigned k, r;
	int before;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	before = count_fds();
	for (k = 0; k < K_KINDS; k++) {
		for (r = 0; r < 3; r++) {
			uint64_t idx = 0;
			int fd = fd_of_kind(&f, (enum fd_kind)k);

			if (acked(&f, reqs[r], &idx, 8, &fd, 1) == 0)
				fail_msg("fd kind %u accepted by request %u", k, reqs[r]);
			close(fd);
		}
	}
	assert_int_equal(count_fds(), before); /* every refused fd was closed */
	/* The queue still kicks and calls through its eventfds. */
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	assert_int_equal(f.info.fds_refused, 3 * K_KINDS);
	assert_string_equal(f.info.fd_refusal, "err fd is not an eventfd");
	fe_fini(&f);
}

/* Without REPLY_ACK the refusal cannot be told: the connection ends, and says why. */
static void call_fd_that_is_a_pipe_without_reply_ack_ends_the_connection(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	int fd;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	fd = fd_of_kind(&f, K_PIPE_READ);
	send_fd_msg(&f, SET_VRING_CALL, 0, fd);
	close(fd);
	assert_int_equal(wait_backend_closed(&f), -EPROTO);
	assert_string_equal(f.info.end_reason, "call fd is not an eventfd");
	fe_fini(&f);
}

/* Semaphore eventfds are eventfds: they work as kick and call fds. */
static void semaphore_eventfds_work_as_kick_and_call(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct fe_queue *q = &f.q[0];

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	close(q->kick);
	close(q->call);
	q->kick = eventfd(0, EFD_CLOEXEC | EFD_SEMAPHORE);
	q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | EFD_SEMAPHORE);
	assert_true(q->kick >= 0 && q->call >= 0);
	assert_int_equal(acked(&f, SET_VRING_CALL, &(uint64_t){0}, 8, &q->call, 1), 0);
	assert_int_equal(acked(&f, SET_VRING_KICK, &(uint64_t){0}, 8, &q->kick, 1), 0);
	assert_int_equal(run1(&f, T_IN, 1, DATA, 512, true).status, 0);
	assert_int_equal(run1(&f, T_IN, 2, DATA, 512, true).status, 0);
	fe_stop(&f);
	assert_int_equal(f.info.fds_refused, 0);
	fe_fini(&f);
}

/* The inflight buffer must be a file (a memfd is one): no pipe, socket, epoll fd. */
static void inflight_fd_that_is_not_a_file_is_refused(void **state)
{
	static const enum fd_kind kinds[] = {K_PIPE_READ, K_SOCKET, K_OWN_CONNECTION, K_EPOLL,
					     K_LISTENING};
	uint64_t p[3] = {IF_QBYTES, 0, 1 | (uint64_t)QSIZE << 16};
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	unsigned i;
	int before;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	before = count_fds();
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		int fd = fd_of_kind(&f, kinds[i]);

		assert_int_equal(acked(&f, 32, p, 24, &fd, 1), 1);
		close(fd);
	}
	assert_int_equal(count_fds(), before);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	assert_int_equal(f.info.fds_refused, sizeof(kinds) / sizeof(kinds[0]));
	assert_string_equal(f.info.fd_refusal, "inflight fd is not a regular file or memfd");
	fe_fini(&f);
}

/*
 * The peer that fills its eventfd between the worker's poll() and write():
 * while lie_pollout is set, a poll() of one fd for POLLOUT that does not
 * wait (the worker's check before it signals) says the fd is writable.
 */
int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
static volatile int lie_pollout;

int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
	if (__atomic_load_n(&lie_pollout, __ATOMIC_ACQUIRE) && n == 1 && timeout == 0 &&
	    fds[0].events == POLLOUT) {
		fds[0].revents = POLLOUT;
		return 1;
	}
	return __real_poll(fds, n, timeout);
}

/*
 * Queue 0's call fd is a blocking eventfd at its highest count, and the
 * worker is told it is writable: its write would block for good. It is cut
 * short, so the worker goes on serving, the protocol thread gets the
 * queue's lock (GET_VRING_BASE), queue 1 is served, the connection ends at
 * once, and the next one is served.
 */
static void saturated_blocking_call_eventfd_does_not_hold_the_worker(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	uint64_t full = 0xfffffffffffffffeull, v = 0;
	uint32_t base[2] = {0, 0}, id, len;
	struct pollfd p;
	bool answered, served;
	struct res other;
	double t0;
	int call;

	(void)state;
	if (getenv("GM_EMULATOR") && *getenv("GM_EMULATOR")) {
		/*
		 * Under qemu-i386 7.2 a worker's liburcu registration is found
		 * lost (urcu's "registered" assertion aborts the program) after
		 * the write-bounding timer signal interrupts this test's blocked
		 * write; small programs doing the same alone do not show it, and
		 * native i386 and x86_64 runs pass. Not diagnosed further.
		 */
		printf("skipped: under qemu-user the timer signal that interrupts the worker's "
		       "blocked write leaves its liburcu thread state lost (urcu aborts)\n");
		skip();
	}
	fe_init(&f, 2, false);
	fe_start(&f, 0);
	call = eventfd(0, EFD_CLOEXEC); /* blocking */
	assert_true(call >= 0);
	assert_int_equal(write(call, &full, 8), 8);
	assert_int_equal(acked(&f, SET_VRING_CALL, &(uint64_t){0}, 8, &call, 1), 0);
	__atomic_store_n(&lie_pollout, 1, __ATOMIC_RELEASE);
	/* Completions are in the used ring whatever the interrupt does. */
	assert_int_equal(run1(&f, T_IN, 1, DATA, 512, true).status, 0);
	/* Nothing may assert until a stuck worker is freed: the teardown joins it. */
	offer(&f, &f.q[0], build(&f, &f.q[0], 1, T_IN, 2, &(struct seg){DATA, 512, true}, 1));
	served = wait_used(&f, &f.q[0], &id, &len, 2000);
	other = run(&f, 1, T_IN, 3, &(struct seg){DATA + DATA_PER_Q, 512, true}, 1);
	/* GET_VRING_BASE takes queue 0's lock. */
	send_msg(&f, GET_VRING_BASE, V1, base, 8, NULL, 0);
	p = (struct pollfd){.fd = f.sock, .events = POLLIN};
	answered = poll(&p, 1, 2000) == 1;
	__atomic_store_n(&lie_pollout, 0, __ATOMIC_RELEASE);
	if (!answered && read(call, &v, 8) == 8) {
		/* Free the stuck worker so that the teardown can join it. */
	}
	assert_true(served);
	assert_int_equal(other.status, 0);
	assert_true(answered);
	assert_int_equal(recv_reply(&f, GET_VRING_BASE, base, 8), 8);
	t0 = now_s();
	fe_stop(&f);
	assert_true(now_s() - t0 < 1.0);
	/* The count is still full: no write went through. */
	assert_int_equal(read(call, &v, 8), 8);
	assert_int_equal(v, full);
	close(call);
	/* The next connection is served as usual. */
	fe_start(&f, 0);
	assert_int_equal(run1(&f, T_IN, 4, DATA, 512, true).status, 0);
	fe_stop(&f);
	fe_fini(&f);
}

static void features_without_event_idx_and_indirect_still_work(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, (1ull << VU_F_EVENT_IDX) | (1ull << VU_F_INDIRECT_DESC));
	assert_int_equal(run1(&f, T_IN, 7, DATA, 512, true).status, 0);
	assert_int_equal(((uint8_t *)gm_host_ptr(f.m, DATA, 1))[0], img_byte(7 * 512));
	fe_stop(&f);
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

/* ---- tests: RESET_OWNER ---- */

/*
 * Give @f's rings their addresses, sizes and fds again on the open
 * connection, as fe_start_with() does, but with neither SET_VRING_BASE
 * (RESET_OWNER put every ring back at index 0) nor a memory table.
 */
static void place_rings_again(struct fe *f)
{
	unsigned i;

	for (i = 0; i < f->nq; i++) {
		struct fe_queue *q = &f->q[i];
		uint32_t a[10] = {i, 0};
		uint64_t ua[4] = {UA + q->desc, UA + q->used, UA + q->avail, 0};

		memset(gm_host_ptr(f->m, q->desc, 0x3000), 0, 0x3000);
		q->avail_idx = q->used_seen = 0;
		vring_state(f, SET_VRING_NUM, i, QSIZE);
		memcpy(a + 2, ua, sizeof(ua));
		send_msg(f, SET_VRING_ADDR, V1, a, 40, NULL, 0);
		close(q->call);
		close(q->kick);
		q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		q->kick = eventfd(0, EFD_CLOEXEC);
		send_fd_msg(f, SET_VRING_CALL, i, q->call);
		send_fd_msg(f, SET_VRING_KICK, i, q->kick);
		vring_state(f, SET_VRING_ENABLE, i, 1);
	}
	sync_fe(f);
}

/*
 * RESET_OWNER (QEMU's device reset without RESET_DEVICE) stops every
 * ring, closes its fds, forgets the memory table and puts the rings back
 * at index 0; the same connection can then set the device up again.
 */
static void reset_owner_stops_the_rings_and_forgets_the_memory_table(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct region_msg r = {0, RAM_SIZE, UA, 0};
	uint8_t p[512];
	uint32_t id, len;
	uint64_t one = 1;
	uint8_t status;
	int memfd, fds;
	unsigned i;

	(void)state;
	fe_init(&f, 2, false);
	fe_start(&f, 0);
	memfd = gm_mapping_fd(f.map);
	for (i = 0; i < 2; i++)
		assert_int_equal(run(&f, i, T_IN, 5, &(struct seg){DATA, 512, true}, 1).status, 0);
	fds = count_fds();
	assert_int_equal(acked(&f, RESET_OWNER, NULL, 0, NULL, 0), 0);
	/*
	 * The back end closed its copy of each ring's kick and call fds; a
	 * call fd its worker was still signalling the last completion on is
	 * closed by the worker right after (vu-internal.h, invariant 3).
	 */
	for (i = 0; i < 100 && count_fds() > fds - 2 * 2; i++)
		usleep(10000);
	assert_true(count_fds() <= fds - 2 * 2);
	/* A request offered now is not served: the ring is stopped. */
	build(&f, &f.q[0], 0, T_IN, 6, &(struct seg){DATA, 512, true}, 1);
	offer(&f, &f.q[0], 0);
	assert_false(wait_used(&f, &f.q[0], &id, &len, 100));
	/* Set up again (features, owner, rings) but without a memory table. */
	set_u64(&f, SET_FEATURES, get_u64(&f, GET_FEATURES) & ~(1ull << VU_F_LOG_ALL));
	send_msg(&f, SET_OWNER, V1, NULL, 0, NULL, 0);
	place_rings_again(&f);
	/* The old table is gone: a request waits for the next one. */
	memset(gm_host_ptr(f.m, DATA, 512), 0, 512);
	offer(&f, &f.q[1], build(&f, &f.q[1], 0, T_IN, 9, &(struct seg){DATA, 512, true}, 1));
	assert_false(wait_used(&f, &f.q[1], &id, &len, 100));
	assert_int_equal(acked(&f, SET_MEM_TABLE, p, mem_table(p, &r, 1), &memfd, 1), 0);
	assert_int_equal(write(f.q[1].kick, &one, 8), 8);
	/* Served from index 0 of the ring (no SET_VRING_BASE was sent). */
	assert_true(wait_used(&f, &f.q[1], &id, &len, 2000));
	assert_int_equal(id, 0);
	assert_int_equal(len, 513);
	assert_int_equal(gm_read_u8(f.m, f.q[1].status, &status), 0);
	assert_int_equal(status, 0);
	assert_int_equal(((uint8_t *)gm_host_ptr(f.m, DATA, 1))[0], img_byte(9 * 512));
	assert_int_equal(run(&f, 0, T_IN, 7, &(struct seg){DATA, 512, true}, 1).status, 0);
	fe_stop(&f);
	fe_fini(&f);
}

/* ---- tests: memory the front end truncates (issue 17) ---- */

#define SET_VRING_ERR 14

/* Make @head available without a kick: the worker does not look until the next one. */
static void publish_quietly(struct fe *f, struct fe_queue *q, uint16_t head)
{
	assert_int_equal(gm_write_le16(f->m, q->avail + 4 + 2ull * (q->avail_idx % QSIZE), head),
			 0);
	q->avail_idx++;
	assert_int_equal(
	    gm_atomic_store_u32(f->m, q->avail, (uint32_t)q->avail_idx << 16, __ATOMIC_RELEASE), 0);
}

static bool signalled(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 1;
}

/*
 * The front end shrinks the guest's memfd to nothing after SET_MEM_TABLE
 * and kicks: the worker's first ring access faults. The ring breaks (err
 * fd), the back end answers the next message, and a new device is served.
 */
/*
 * Under qemu-user (the armhf run) a SIGBUS of a page past the end of a
 * file is the emulator's own: it does not reach the library's handler as
 * the kernel's does (qemu-user 7.2 dies of "uncaught target signal 7").
 */
static void skip_under_emulator_for_sigbus(void)
{
	const char *emu = getenv("GM_EMULATOR");

	if (emu != NULL && emu[0] != 0) {
		print_message("skipped: under qemu-user a SIGBUS past a file's end is the "
			      "emulator's, not the library's to contain\n");
		skip();
	}
}

static void guest_memory_truncated_by_the_front_end_breaks_the_ring_not_the_backend(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	int err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), memfd;
	uint64_t one = 1;

	(void)state;
	skip_under_emulator_for_sigbus();
	assert_true(err >= 0);
	fe_init(&f, 2, false);
	fe_start(&f, 0);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	send_fd_msg(&f, SET_VRING_ERR, 0, err);
	sync_fe(&f);
	publish_quietly(&f, &f.q[0],
			build(&f, &f.q[0], 0, T_IN, 3, &(struct seg){DATA, 512, true}, 1));
	/* From here the test touches none of the guest's memory: it is gone. */
	memfd = gm_mapping_fd(f.map);
	assert_int_equal(ftruncate(memfd, 0), 0);
	assert_int_equal(write(f.q[0].kick, &one, 8), 8);
	assert_true(signalled(err, 5000));
	assert_int_equal(get_u64(&f, GET_QUEUE_NUM), 2); /* the back end still answers */
	/* Zeros again for the front end's own mapping, then hang up. */
	assert_int_equal(ftruncate(memfd, RAM_SIZE), 0);
	fe_stop(&f);
	fe_fini(&f);
	close(err);

	fe_init(&f, 1, false);
	fe_start(&f, 0);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	fe_fini(&f);
}

/*
 * The same with the inflight buffer: the next request's bookkeeping
 * stores past the end of the shrunk file. That request completes (its
 * ring and data are whole), then the ring breaks and serves nothing more.
 */
static void inflight_buffer_truncated_by_the_front_end_breaks_the_ring_not_the_backend(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	int err = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), fd;
	uint32_t id, len;
	uint64_t size;

	(void)state;
	skip_under_emulator_for_sigbus();
	assert_true(err >= 0);
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	fd = get_inflight(&f, &size);
	set_inflight(&f, fd, size);
	send_fd_msg(&f, SET_VRING_ERR, 0, err);
	sync_fe(&f); /* the err fd is in place before the worker can need it */
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	assert_false(signalled(err, 0));
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(run1(&f, T_IN, 1, DATA, 512, true).status, 0);
	assert_true(signalled(err, 5000));
	offer(&f, &f.q[0], build(&f, &f.q[0], 0, T_IN, 2, &(struct seg){DATA, 512, true}, 1));
	assert_false(wait_used(&f, &f.q[0], &id, &len, 200));
	assert_int_equal(get_u64(&f, GET_QUEUE_NUM), 1);
	fe_stop(&f);
	fe_fini(&f);
	close(fd);
	close(err);
}

/* ---- tests: many requests at once, and the io_uring path (issue 21) ---- */

#ifdef GM_HAVE_LIBURING
#include <liburing.h>

/*
 * Ring setup fails while fail_ring_setup is set (a kernel without
 * io_uring); every submission records how many SQEs it carried.
 */
int __real_io_uring_queue_init_params(unsigned entries, struct io_uring *ring,
				      struct io_uring_params *p);
int __real_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr);
static int fail_ring_setup, ring_setups_failed;
static unsigned largest_submission;

int __wrap_io_uring_queue_init_params(unsigned entries, struct io_uring *ring,
				      struct io_uring_params *p)
{
	if (__atomic_load_n(&fail_ring_setup, __ATOMIC_ACQUIRE)) {
		__atomic_fetch_add(&ring_setups_failed, 1, __ATOMIC_RELAXED);
		return -ENOSYS;
	}
	return __real_io_uring_queue_init_params(entries, ring, p);
}

int __wrap_io_uring_submit_and_wait(struct io_uring *ring, unsigned wait_nr)
{
	unsigned n = io_uring_sq_ready(ring);

	if (n > __atomic_load_n(&largest_submission, __ATOMIC_RELAXED))
		__atomic_store_n(&largest_submission, n, __ATOMIC_RELAXED);
	return __real_io_uring_submit_and_wait(ring, wait_nr);
}
#endif

#define MANY 21u /* three descriptors each: 63 of the 64 */

/*
 * One kick offers MANY requests: 4 KiB reads, with a GET_ID every fourth.
 * Each comes back once, with its own length, status and data. With
 * io_uring the reads go to the kernel in one submission and the GET_IDs,
 * served at once, overtake them: the used ring is in completion order,
 * not in the order the requests were offered.
 */
static void many_requests_in_one_kick_complete_each_as_it_finishes(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct fe_queue *q = &f.q[0];
	bool seen[MANY] = {false}, in_order = true;
	struct blk_stats st;
	uint64_t one = 1;
	uint8_t *g;
	unsigned i, j;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
#ifdef GM_HAVE_LIBURING
	__atomic_store_n(&largest_submission, 0, __ATOMIC_RELAXED);
#endif
	g = gm_host_ptr(f.m, DATA, MANY * 4096);
	memset(g, 0xcc, MANY * 4096);
	for (i = 0; i < MANY; i++) {
		bool get_id = i % 4 == 3;
		gm_gpa_t hdr = q->hdr + 16ull * i;

		assert_int_equal(gm_write_le32(f.m, hdr, get_id ? T_GET_ID : T_IN), 0);
		assert_int_equal(gm_write_le32(f.m, hdr + 4, 0), 0);
		assert_int_equal(gm_write_le64(f.m, hdr + 8, 8ull * i), 0);
		assert_int_equal(gm_write_u8(f.m, q->status + i, 0xee), 0);
		put_desc(&f, q, 3 * i, hdr, 16, 1, (uint16_t)(3 * i + 1));
		put_desc(&f, q, 3 * i + 1, DATA + 4096ull * i, get_id ? 20 : 4096, 1 | 2,
			 (uint16_t)(3 * i + 2));
		put_desc(&f, q, 3 * i + 2, q->status + i, 1, 2, 0);
		assert_int_equal(gm_write_le16(f.m, q->avail + 4 + 2ull * i, (uint16_t)(3 * i)), 0);
	}
	/* All at once: one index store, one kick. */
	assert_int_equal(gm_write_le16(f.m, q->avail + 4 + 2ull * QSIZE, 0), 0);
	q->avail_idx = MANY;
	assert_int_equal(gm_atomic_store_u32(f.m, q->avail, MANY << 16, __ATOMIC_RELEASE), 0);
	assert_int_equal(write(q->kick, &one, 8), 8);
	for (j = 0; j < MANY; j++) {
		uint32_t id, len;
		uint8_t s;

		assert_true(wait_used(&f, q, &id, &len, 5000));
		assert_int_equal(id % 3, 0);
		i = id / 3;
		assert_true(i < MANY);
		assert_false(seen[i]);
		seen[i] = true;
		in_order &= i == j;
		assert_int_equal(gm_read_u8(f.m, q->status + i, &s), 0);
		assert_int_equal(s, 0);
		if (i % 4 == 3) {
			assert_int_equal(len, 21);
			assert_memory_equal(g + 4096 * i, strrchr(f.img_path, '/') + 1, 20);
		} else {
			assert_int_equal(len, 4097);
			assert_int_equal(g[4096 * i], img_byte(8 * 512 * i));
			assert_int_equal(g[4096 * i + 4095], img_byte(8 * 512 * i + 4095));
		}
	}
	blk_stats_take(&f.blk, &st, false);
	assert_int_equal(st.in, MANY - MANY / 4);
	assert_int_equal(st.get_id, MANY / 4);
	assert_int_equal(st.failed, 0);
	if (fe_aio == BLK_AIO_URING) {
		assert_int_equal(st.uring, MANY - MANY / 4);
		assert_false(in_order);
#ifdef GM_HAVE_LIBURING
		assert_int_equal(__atomic_load_n(&largest_submission, __ATOMIC_RELAXED),
				 MANY - MANY / 4);
#endif
	} else {
		assert_int_equal(st.uring, 0);
		assert_true(in_order);
	}
	fe_stop(&f);
	fe_fini(&f);
}

struct ended {
	uint16_t head;
	uint32_t used;
	unsigned n;
};

static void record_end(void *arg, uint16_t head, uint32_t used)
{
	struct ended *e = arg;

	e->head = head;
	e->used = used;
	e->n++;
}

/*
 * The device alone, on a view whose region tracks dirty pages: a read
 * marks the two guest pages it filled, and no other (the status byte's
 * page aside). The io_uring path marks them once the completion came, as
 * gm_read_from_fd() does on the synchronous path.
 */
static void reads_mark_the_guest_pages_they_fill_dirty(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	const gm_gpa_t hdr = 0x10000, status = 0x11000, data = DATA;
	const struct gm_virtq_buf bufs[3] = {
	    {hdr, 16, false}, {data, 8192, true}, {status, 1, true}};
	struct gm_region_spec spec = {0};
	struct gm_memory *m;
	struct gm_dirty *d;
	struct vu_device dev;
	struct ended e = {0, 0, 0};
	uint64_t bits[RAM_SIZE / 4096 / 64];
	uint32_t used = 0;
	uint8_t s;

	(void)state;
	fe_init(&f, 1, false);
	assert_int_equal(gm_dirty_new(RAM_SIZE, &d), 0);
	gm_dirty_set_enabled(d, true);
	spec.size = RAM_SIZE;
	spec.mapping = f.map;
	spec.dirty = d;
	assert_int_equal(gm_memory_new(&spec, 1, &m), 0);
	assert_int_equal(gm_write_le32(m, hdr, T_IN), 0);
	assert_int_equal(gm_write_le32(m, hdr + 4, 0), 0);
	assert_int_equal(gm_write_le64(m, hdr + 8, 16), 0);
	assert_int_equal(gm_dirty_collect(d, 0, bits, sizeof(bits) / sizeof(bits[0])), 0);
	assert_int_equal(gm_dirty_count(d), 0);
	blk_vu_device(&f.blk, &dev);
	if (fe_aio == BLK_AIO_URING) {
		void *ctx = dev.batch.open(dev.opaque, 0);

		assert_non_null(ctx);
		assert_int_equal(dev.batch.start(ctx, m, 7, bufs, 3, &used), 1);
		assert_int_equal(gm_dirty_count(d), 0); /* nothing arrived yet */
		dev.batch.finish(ctx, m, record_end, &e);
		dev.batch.close(ctx);
		assert_int_equal(e.n, 1);
		assert_int_equal(e.head, 7);
		used = e.used;
	} else {
		used = dev.handle(dev.opaque, 0, m, bufs, 3);
	}
	assert_int_equal(used, 8193);
	assert_int_equal(gm_read_u8(m, status, &s), 0);
	assert_int_equal(s, 0);
	assert_int_equal(((uint8_t *)gm_host_ptr(m, data + 8191, 1))[0], img_byte(16 * 512 + 8191));
	assert_true(gm_dirty_test(d, data / 4096));
	assert_true(gm_dirty_test(d, data / 4096 + 1));
	assert_true(gm_dirty_test(d, status / 4096));
	assert_int_equal(gm_dirty_count(d), 3);
	gm_memory_put(m);
	gm_dirty_put(d);
	fe_fini(&f);
}

#ifdef GM_HAVE_LIBURING
/*
 * pwritev2() as the file system would answer a non-blocking write
 * (RWF_NOWAIT): as it does (PW_REAL), "cannot" (PW_NOWAIT_UNSUPPORTED:
 * ext4), "would block" (PW_WOULD_BLOCK), or with only the first 512
 * bytes (PW_SHORT). Blocking calls always go through. With 64-bit off_t
 * (the whole project: -D_FILE_OFFSET_BITS=64) glibc names it pwritev64v2.
 */
enum { PW_REAL, PW_NOWAIT_UNSUPPORTED, PW_WOULD_BLOCK, PW_SHORT };
ssize_t __real_pwritev64v2(int fd, const struct iovec *iov, int n, off_t off, int flags);
static int pwritev2_mode;
static unsigned pwritev2_nowait_calls, pwritev2_blocking_calls;

ssize_t __wrap_pwritev64v2(int fd, const struct iovec *iov, int n, off_t off, int flags)
{
	int mode = __atomic_load_n(&pwritev2_mode, __ATOMIC_ACQUIRE);

	if (!(flags & RWF_NOWAIT)) {
		__atomic_fetch_add(&pwritev2_blocking_calls, 1, __ATOMIC_RELAXED);
		return __real_pwritev64v2(fd, iov, n, off, flags);
	}
	__atomic_fetch_add(&pwritev2_nowait_calls, 1, __ATOMIC_RELAXED);
	if (mode == PW_NOWAIT_UNSUPPORTED || mode == PW_WOULD_BLOCK) {
		errno = mode == PW_WOULD_BLOCK ? EAGAIN : EOPNOTSUPP;
		return -1;
	}
	if (mode == PW_SHORT && n > 0 && iov[0].iov_len > 512) {
		struct iovec first = {iov[0].iov_base, 512};

		/* Without RWF_NOWAIT: this file system (ext4) may not take it. */
		return __real_pwritev64v2(fd, &first, 1, off, flags & ~RWF_NOWAIT);
	}
	return __real_pwritev64v2(fd, iov, n, off, flags);
}

/* A counter the worker bumps; it finished the request we waited for. */
static unsigned counted(const unsigned *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Write 8 KiB over two buffers at sector @sector with pattern @fill; check it in the image. */
static void write_two_and_check(struct fe *f, uint64_t sector, uint8_t fill)
{
	struct seg two[2] = {{DATA, 4096, false}, {DATA + 3 * 4096, 4096, false}};
	uint8_t buf[8192];
	unsigned i;

	memset(gm_host_ptr(f->m, DATA, 4096), fill, 4096);
	memset(gm_host_ptr(f->m, DATA + 3 * 4096, 4096), fill + 1, 4096);
	__atomic_store_n(&largest_submission, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pwritev2_nowait_calls, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pwritev2_blocking_calls, 0, __ATOMIC_RELAXED);
	assert_int_equal(run(f, 0, T_OUT, sector, two, 2).status, 0);
	image_read(f, sector * 512, buf, sizeof(buf));
	for (i = 0; i < 8192; i++)
		assert_int_equal(buf[i], i < 4096 ? fill : fill + 1);
}

/*
 * A write is done at once in the worker when that cannot punt it to a
 * kernel thread: without blocking if the file system can (RWF_NOWAIT);
 * what would block goes to the ring, the rest of a short one too; and
 * once the file system said it cannot write without blocking, every
 * write is one blocking pwritev2() in the worker.
 */
static void writes_go_to_the_ring_only_when_they_would_block(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct blk_stats st;

	(void)state;
	fe_init(&f, 1, false);
	fe_start(&f, 0);
	__atomic_store_n(&pwritev2_mode, PW_WOULD_BLOCK, __ATOMIC_RELEASE);
	write_two_and_check(&f, 50, 0x41);
	assert_int_equal(counted(&pwritev2_nowait_calls), 1);
	assert_int_equal(counted(&largest_submission), 1);
	__atomic_store_n(&pwritev2_mode, PW_SHORT, __ATOMIC_RELEASE);
	write_two_and_check(&f, 60, 0x51);
	assert_int_equal(counted(&pwritev2_nowait_calls), 1);
	assert_int_equal(counted(&largest_submission), 1); /* the 7.5 KiB left */
	__atomic_store_n(&pwritev2_mode, PW_NOWAIT_UNSUPPORTED, __ATOMIC_RELEASE);
	write_two_and_check(&f, 70, 0x61);
	assert_int_equal(counted(&pwritev2_nowait_calls), 1);
	assert_int_equal(counted(&pwritev2_blocking_calls), 1);
	assert_int_equal(counted(&largest_submission), 0);
	write_two_and_check(&f, 80, 0x71); /* remembered: no second try */
	assert_int_equal(counted(&pwritev2_nowait_calls), 0);
	assert_int_equal(counted(&pwritev2_blocking_calls), 1);
	assert_int_equal(counted(&largest_submission), 0);
	fe_stop(&f);
	blk_stats_take(&f.blk, &st, false);
	assert_int_equal(st.out, 4);
	assert_int_equal(st.uring, 4);
	assert_int_equal(st.bytes_written, 4 * 8192);
	assert_int_equal(st.failed, 0);
	fe_fini(&f);
}

static int teardown_pwritev2(void **state)
{
	__atomic_store_n(&pwritev2_mode, PW_REAL, __ATOMIC_RELEASE);
	return fe_teardown(state);
}
#endif

#ifdef GM_HAVE_LIBURING
static int teardown_ring_setup(void **state)
{
	__atomic_store_n(&fail_ring_setup, 0, __ATOMIC_RELEASE);
	return fe_teardown(state);
}

/*
 * A kernel without io_uring (ring setup fails with ENOSYS): each queue's
 * worker says so and serves its requests synchronously, all of them.
 */
static void io_uring_setup_failure_falls_back_to_sync(void **state)
{
	static struct fe f; /* outlives a failed test: see fe_teardown() */
	struct blk_stats st;
	uint8_t *g, buf[4096];
	unsigned i;

	(void)state;
	__atomic_store_n(&ring_setups_failed, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&fail_ring_setup, 1, __ATOMIC_RELEASE);
	fe_init(&f, 2, false);
	fe_start(&f, 0);
	g = gm_host_ptr(f.m, DATA, 4096);
	memset(g, 0x3c, 4096);
	assert_int_equal(run1(&f, T_OUT, 30, DATA, 4096, false).status, 0);
	assert_int_equal(run1(&f, T_FLUSH, 0, 0, 0, false).status, 0);
	memset(g, 0, 4096);
	assert_int_equal(run1(&f, T_IN, 30, DATA, 4096, true).len, 4097);
	for (i = 0; i < 4096; i++)
		assert_int_equal(g[i], 0x3c);
	assert_int_equal(run(&f, 1, T_IN, 2, &(struct seg){DATA + DATA_PER_Q, 512, true}, 1).status,
			 0);
	image_read(&f, 30 * 512, buf, sizeof(buf));
	assert_int_equal(buf[4095], 0x3c);
	fe_stop(&f);
	blk_stats_take(&f.blk, &st, false);
	assert_int_equal(st.uring, 0);
	assert_int_equal(st.in, 2);
	assert_int_equal(st.failed, 0);
	assert_int_equal(__atomic_load_n(&ring_setups_failed, __ATOMIC_RELAXED), 2);
	/* And the probe main.c runs says the same. */
	{
		char why_not[128];

		assert_int_equal(blk_uring_probe(why_not, sizeof(why_not)), -ENOSYS);
		assert_non_null(strstr(why_not, "io_uring setup failed"));
	}
	fe_fini(&f);
}
#endif

static void io_uring_unavailable(void **state)
{
	(void)state;
	skip(); /* main() printed why */
}

/* Run @tests with the device serving requests through @aio. */
static int run_requests(const char *name, const struct CMUnitTest *tests, size_t n,
			enum blk_aio aio)
{
	fe_aio = aio;
	return _cmocka_run_group_tests(name, tests, n, NULL, NULL);
}

int main(void)
{
	/* What only the protocol sees: run once. */
	const struct CMUnitTest protocol[] = {
	    cmocka_unit_test_teardown(config_space_describes_the_disk, fe_teardown),
	    cmocka_unit_test_teardown(malformed_messages_end_the_connection_and_close_fds,
				      fe_teardown),
	    cmocka_unit_test_teardown(refused_requests_get_a_failed_ack_and_the_connection_goes_on,
				      fe_teardown),
	    cmocka_unit_test_teardown(kick_call_err_fds_that_are_not_eventfds_are_refused,
				      fe_teardown),
	    cmocka_unit_test_teardown(call_fd_that_is_a_pipe_without_reply_ack_ends_the_connection,
				      fe_teardown),
	    cmocka_unit_test_teardown(inflight_fd_that_is_not_a_file_is_refused, fe_teardown),
	    cmocka_unit_test_teardown(inflight_fd_shorter_than_the_buffer_is_refused, fe_teardown),
	    cmocka_unit_test(blk_open_refuses_what_is_not_an_image_and_says_why),
	};
	/* What serves requests: run with --aio=sync and again with io_uring. */
	const struct CMUnitTest requests[] = {
	    cmocka_unit_test_teardown(read_write_flush_get_id_discard_write_zeroes, fe_teardown),
	    cmocka_unit_test_teardown(get_vring_base_stops_the_ring, fe_teardown),
	    cmocka_unit_test_teardown(bad_requests_fail_with_ioerr_and_touch_nothing, fe_teardown),
	    cmocka_unit_test_teardown(malformed_chains_are_returned_and_the_next_is_served,
				      fe_teardown),
	    cmocka_unit_test_teardown(readonly_device_refuses_writes, fe_teardown),
	    cmocka_unit_test_teardown(features_without_event_idx_and_indirect_still_work,
				      fe_teardown),
	    cmocka_unit_test_teardown(semaphore_eventfds_work_as_kick_and_call, fe_teardown),
	    cmocka_unit_test_teardown(saturated_blocking_call_eventfd_does_not_hold_the_worker,
				      fe_teardown),
	    cmocka_unit_test_teardown(inflight_buffer_is_created_and_kept_in_step, fe_teardown),
	    cmocka_unit_test_teardown(requests_left_in_flight_are_served_again_in_order,
				      fe_teardown),
	    cmocka_unit_test_teardown(garbage_inflight_buffer_is_survived, fe_teardown),
	    cmocka_unit_test_teardown(memory_table_replaced_mid_stream, fe_teardown),
	    cmocka_unit_test_teardown(several_queues_serve_in_parallel, fe_teardown),
	    cmocka_unit_test_teardown(reset_owner_stops_the_rings_and_forgets_the_memory_table,
				      fe_teardown),
	    cmocka_unit_test_teardown(write_zeroes_on_tmpfs_writes_the_zeros_itself, fe_teardown),
	    cmocka_unit_test_teardown(
		guest_memory_truncated_by_the_front_end_breaks_the_ring_not_the_backend,
		fe_teardown),
	    cmocka_unit_test_teardown(
		inflight_buffer_truncated_by_the_front_end_breaks_the_ring_not_the_backend,
		fe_teardown),
	    cmocka_unit_test_teardown(many_requests_in_one_kick_complete_each_as_it_finishes,
				      fe_teardown),
	    cmocka_unit_test_teardown(reads_mark_the_guest_pages_they_fill_dirty, fe_teardown),
	};
#ifdef GM_HAVE_LIBURING
	const struct CMUnitTest uring_only[] = {
	    cmocka_unit_test_teardown(io_uring_setup_failure_falls_back_to_sync,
				      teardown_ring_setup),
	    cmocka_unit_test_teardown(writes_go_to_the_ring_only_when_they_would_block,
				      teardown_pwritev2),
	};
#endif
	const struct CMUnitTest unavailable[] = {cmocka_unit_test(io_uring_unavailable)};
	char why_not[128];
	int failed = 0;

	signal(SIGPIPE, SIG_IGN);
	failed |= cmocka_run_group_tests_name("protocol", protocol, NULL, NULL);
	failed |= run_requests("requests, aio sync", requests,
			       sizeof(requests) / sizeof(requests[0]), BLK_AIO_SYNC);
	if (blk_uring_probe(why_not, sizeof(why_not))) {
		printf("skipped: the io_uring runs: %s\n", why_not);
		return failed | cmocka_run_group_tests_name("io_uring", unavailable, NULL, NULL);
	}
	failed |= run_requests("requests, aio io_uring", requests,
			       sizeof(requests) / sizeof(requests[0]), BLK_AIO_URING);
#ifdef GM_HAVE_LIBURING
	failed |= run_requests("io_uring", uring_only, sizeof(uring_only) / sizeof(uring_only[0]),
			       BLK_AIO_URING);
#endif
	return failed;
}
