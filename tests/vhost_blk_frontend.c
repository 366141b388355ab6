/*
 * vhost_blk_frontend.c - the fake vhost-user front end of the gm-vhost-blk
 * tests (see vhost_blk_frontend.h), the multi-queue workload, and the two
 * multi-queue scenarios the unit test and the stress soak share.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vhost_blk_frontend.h"

/* ---- back end thread ---- */

struct serve_arg {
	struct fe *f;
	int fd;
};

static void *serve_thread(void *arg)
{
	struct serve_arg *a = arg;

	a->f->serve_ret = vu_serve(a->f->srv, a->fd, -1, &a->f->info);
	free(a);
	return NULL;
}

void connect_fe(struct fe *f)
{
	int sv[2];
	struct serve_arg *a = malloc(sizeof(*a));

	assert_non_null(a);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->sock = sv[0];
	a->f = f;
	a->fd = sv[1];
	assert_int_equal(pthread_create(&f->thread, NULL, serve_thread, a), 0);
}

/* Close our end and wait for the back end to finish the connection. */
int disconnect_fe(struct fe *f)
{
	unsigned i;

	close(f->sock);
	f->sock = -1;
	pthread_join(f->thread, NULL);
	for (i = 0; i < MAX_Q; i++) {
		if (f->q[i].kick >= 0)
			close(f->q[i].kick);
		if (f->q[i].call >= 0)
			close(f->q[i].call);
		f->q[i].kick = f->q[i].call = -1;
	}
	return f->serve_ret;
}

/* Wait for the back end to end the connection by itself (malformed input). */
int wait_backend_closed(struct fe *f)
{
	struct pollfd p = {.fd = f->sock, .events = POLLIN};
	ssize_t n;
	char c;

	assert_int_equal(poll(&p, 1, 5000), 1);
	/* EOF, or a reset when the back end hung up with our bytes unread. */
	n = recv(f->sock, &c, 1, 0);
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
	return disconnect_fe(f);
}

int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)))
		n++;
	closedir(d);
	return n;
}

/* ---- messages ---- */

void send_msg(struct fe *f, uint32_t req, uint32_t flags, const void *p, uint32_t size,
	      const int *fds, size_t nfds)
{
	uint8_t buf[12 + 512];
	union {
		char b[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr a;
	} ctl;
	struct iovec iov = {buf, 12 + size};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	assert_true(size <= 512 && nfds <= 16);
	memset(&ctl, 0, sizeof(ctl)); /* CMSG padding is sent too */
	memcpy(buf, &req, 4);
	memcpy(buf + 4, &flags, 4);
	memcpy(buf + 8, &size, 4);
	if (size)
		memcpy(buf + 12, p, size);
	if (nfds) {
		struct cmsghdr *c;

		mh.msg_control = ctl.b;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	assert_int_equal(sendmsg(f->sock, &mh, MSG_NOSIGNAL), (ssize_t)(12 + size));
}

/* Read a reply to @req; returns its payload size. */
uint32_t recv_reply(struct fe *f, uint32_t req, void *p, uint32_t max)
{
	struct pollfd pfd = {.fd = f->sock, .events = POLLIN};
	uint32_t h[3];

	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(recv(f->sock, h, 12, MSG_WAITALL), 12);
	assert_int_equal(h[0], req);
	assert_int_equal(h[1], V1 | 0x4);
	assert_true(h[2] <= max);
	if (h[2])
		assert_int_equal(recv(f->sock, p, h[2], MSG_WAITALL), (ssize_t)h[2]);
	return h[2];
}

uint64_t get_u64(struct fe *f, uint32_t req)
{
	uint64_t v;

	send_msg(f, req, V1, NULL, 0, NULL, 0);
	assert_int_equal(recv_reply(f, req, &v, 8), 8);
	return v;
}

void set_u64(struct fe *f, uint32_t req, uint64_t v)
{
	send_msg(f, req, V1, &v, 8, NULL, 0);
}

/* Send @req with NEED_REPLY and return the ack (0 success). */
uint64_t acked(struct fe *f, uint32_t req, const void *p, uint32_t size, const int *fds,
	       size_t nfds)
{
	uint64_t v;

	send_msg(f, req, V1 | NEED_REPLY, p, size, fds, nfds);
	assert_int_equal(recv_reply(f, req, &v, 8), 8);
	return v;
}

void vring_state(struct fe *f, uint32_t req, uint32_t idx, uint32_t num)
{
	uint32_t p[2] = {idx, num};

	send_msg(f, req, V1, p, 8, NULL, 0);
}

/* A SET_MEM_TABLE payload for @n regions. */
uint32_t mem_table(uint8_t *p, const struct region_msg *r, uint32_t n)
{
	uint32_t pad = 0;

	memcpy(p, &n, 4);
	memcpy(p + 4, &pad, 4);
	memcpy(p + 8, r, 32 * n);
	return 8 + 32 * n;
}

/* SET_VRING_KICK/CALL/ERR for queue @idx with @fd (-1: the no-fd flag). */
void send_fd_msg(struct fe *f, uint32_t req, uint32_t idx, int fd)
{
	uint64_t v = idx | (fd < 0 ? 0x100u : 0);

	send_msg(f, req, V1, &v, 8, fd < 0 ? NULL : &fd, fd < 0 ? 0 : 1);
}

/* A round trip: every message sent before has been handled. */
void sync_fe(struct fe *f)
{
	assert_int_equal(get_u64(f, GET_QUEUE_NUM), f->nq);
}

/* ---- guest side ---- */

void fe_init(struct fe *f, unsigned nq, bool readonly)
{
	char err[256];
	struct vu_device dev;
	struct gm_region_spec spec = {0};
	uint8_t pat[4096];
	unsigned i;
	int fd;

	memset(f, 0, sizeof(*f));
	f->sock = -1;
	for (i = 0; i < MAX_Q; i++)
		f->q[i].kick = f->q[i].call = -1;
	/* The image: byte i of sector s is (s * 7 + i) & 0xff. */
	snprintf(f->img_path, sizeof(f->img_path), "/tmp/gm-test-vhost-blk.XXXXXX");
	fd = mkstemp(f->img_path);
	assert_true(fd >= 0);
	for (i = 0; i < IMG_SIZE / 4096; i++) {
		unsigned j;

		for (j = 0; j < 4096; j++)
			pat[j] = (uint8_t)(((i * 8 + j / 512) * 7 + j % 512) & 0xff);
		assert_int_equal(pwrite(fd, pat, 4096, (off_t)i * 4096), 4096);
	}
	close(fd);
	assert_int_equal(blk_open(&f->blk, f->img_path, readonly, err, sizeof(err)), 0);
	blk_vu_device(&f->blk, &dev);
	assert_int_equal(vu_server_new(&dev, nq, &f->srv), 0);
	assert_int_equal(gm_mapping_new_memfd("test-guest", RAM_SIZE, 0, &f->map), 0);
	spec.gpa = 0;
	spec.size = RAM_SIZE;
	spec.mapping = f->map;
	assert_int_equal(gm_memory_new(&spec, 1, &f->m), 0);
	f->nq = nq;
	for (i = 0; i < nq; i++) {
		struct fe_queue *q = &f->q[i];
		gm_gpa_t base = 0x10000 * (i + 1);

		q->desc = base;
		q->avail = base + 0x1000;
		q->used = base + 0x2000;
		q->hdr = base + 0x3000;
		q->status = base + 0x3800;
	}
}

void fe_fini(struct fe *f)
{
	vu_server_free(f->srv);
	blk_close(&f->blk);
	unlink(f->img_path);
	gm_memory_put(f->m);
	gm_mapping_put(f->map);
}

uint8_t img_byte(uint64_t off)
{
	return (uint8_t)(((off / 512) * 7 + off % 512) & 0xff);
}

/*
 * Negotiate everything and start @f->nq rings over one memory region;
 * @before_kick (may be NULL) runs when the rings are placed but not started.
 */
void fe_start_with(struct fe *f, uint64_t features_off,
		   void (*before_kick)(struct fe *f, void *arg), void *arg)
{
	struct region_msg r = {0, RAM_SIZE, UA, 0};
	uint8_t p[512];
	uint64_t feat, pf;
	int memfd = gm_mapping_fd(f->map);
	unsigned i;

	connect_fe(f);
	feat = get_u64(f, GET_FEATURES);
	assert_true(feat & (1ull << VU_F_PROTOCOL_FEATURES));
	set_u64(f, SET_FEATURES, feat & ~features_off);
	pf = get_u64(f, GET_PROTOCOL_FEATURES);
	assert_int_equal(pf, (1ull << VU_PF_MQ) | (1ull << VU_PF_REPLY_ACK) |
				 (1ull << VU_PF_CONFIG) | (1ull << VU_PF_CONFIGURE_MEM_SLOTS) |
				 (1ull << VU_PF_INFLIGHT_SHMFD));
	set_u64(f, SET_PROTOCOL_FEATURES, pf);
	assert_int_equal(get_u64(f, GET_QUEUE_NUM), f->nq);
	send_msg(f, SET_OWNER, V1, NULL, 0, NULL, 0);
	assert_int_equal(acked(f, SET_MEM_TABLE, p, mem_table(p, &r, 1), &memfd, 1), 0);
	for (i = 0; i < f->nq; i++) {
		struct fe_queue *q = &f->q[i];
		uint32_t a[10] = {i, 0};
		uint64_t ua[4] = {UA + q->desc, UA + q->used, UA + q->avail, 0};

		memset(gm_host_ptr(f->m, q->desc, 0x3000), 0, 0x3000);
		q->avail_idx = q->used_seen = 0;
		vring_state(f, SET_VRING_NUM, i, QSIZE);
		memcpy(a + 2, ua, sizeof(ua));
		send_msg(f, SET_VRING_ADDR, V1, a, 40, NULL, 0);
		vring_state(f, SET_VRING_BASE, i, 0);
	}
	if (before_kick)
		before_kick(f, arg);
	for (i = 0; i < f->nq; i++) {
		struct fe_queue *q = &f->q[i];

		q->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		q->kick = eventfd(0, EFD_CLOEXEC);
		send_fd_msg(f, SET_VRING_CALL, i, q->call);
		send_fd_msg(f, SET_VRING_KICK, i, q->kick);
		vring_state(f, SET_VRING_ENABLE, i, 1);
	}
	sync_fe(f);
}

void fe_start(struct fe *f, uint64_t features_off)
{
	fe_start_with(f, features_off, NULL, NULL);
}

void put_desc(struct fe *f, struct fe_queue *q, unsigned i, uint64_t addr, uint32_t len,
	      uint16_t flags, uint16_t next)
{
	gm_gpa_t d = q->desc + 16ull * i;

	assert_int_equal(gm_write_le64(f->m, d, addr), 0);
	assert_int_equal(gm_write_le32(f->m, d + 8, len), 0);
	assert_int_equal(gm_write_le16(f->m, d + 12, flags), 0);
	assert_int_equal(gm_write_le16(f->m, d + 14, next), 0);
}

/* Make @head available, publish the index (release) and kick. */
void offer(struct fe *f, struct fe_queue *q, uint16_t head)
{
	uint64_t one = 1;

	assert_int_equal(gm_write_le16(f->m, q->avail + 4 + 2ull * (q->avail_idx % QSIZE), head),
			 0);
	/* Ask for an interrupt on the next used entry (EVENT_IDX). */
	assert_int_equal(gm_write_le16(f->m, q->avail + 4 + 2ull * QSIZE, q->used_seen), 0);
	q->avail_idx++;
	/* avail->flags (0) and avail->idx: one aligned word, published with release. */
	assert_int_equal(
	    gm_atomic_store_u32(f->m, q->avail, (uint32_t)q->avail_idx << 16, __ATOMIC_RELEASE), 0);
	assert_int_equal(write(q->kick, &one, 8), 8);
}

/* Wait up to @ms for the next used entry; returns false on timeout. */
bool wait_used(struct fe *f, struct fe_queue *q, uint32_t *id, uint32_t *len, int ms)
{
	struct pollfd p = {.fd = q->call, .events = POLLIN};
	uint32_t w;
	uint64_t v;

	for (;;) {
		assert_int_equal(gm_atomic_load_u32(f->m, q->used, &w, __ATOMIC_ACQUIRE), 0);
		if ((uint16_t)(w >> 16) != q->used_seen)
			break;
		if (ms <= 0)
			return false;
		/* Poll briefly: the device may have suppressed the interrupt. */
		if (poll(&p, 1, 10) > 0 && read(q->call, &v, 8) < 0) {
		}
		ms -= 10;
	}
	assert_int_equal(gm_read_le32(f->m, q->used + 4 + 8ull * (q->used_seen % QSIZE), id), 0);
	assert_int_equal(gm_read_le32(f->m, q->used + 8 + 8ull * (q->used_seen % QSIZE), len), 0);
	q->used_seen++;
	return true;
}

/* Write request descriptors for @slot; returns the head. The status byte is q->status + slot. */
uint16_t build(struct fe *f, struct fe_queue *q, unsigned slot, uint32_t type, uint64_t sector,
	       const struct seg *segs, size_t n)
{
	unsigned d0 = slot * SLOT_DESCS, i;
	gm_gpa_t hdr = q->hdr + 16ull * slot, st = q->status + slot;

	assert_true(n + 2 <= SLOT_DESCS);
	assert_int_equal(gm_write_le32(f->m, hdr, type), 0);
	assert_int_equal(gm_write_le32(f->m, hdr + 4, 0), 0);
	assert_int_equal(gm_write_le64(f->m, hdr + 8, sector), 0);
	assert_int_equal(gm_write_u8(f->m, st, 0xee), 0);
	put_desc(f, q, d0, hdr, 16, 1, (uint16_t)(d0 + 1));
	for (i = 0; i < n; i++)
		put_desc(f, q, d0 + 1 + i, segs[i].gpa, segs[i].len, 1 | (segs[i].write ? 2 : 0),
			 (uint16_t)(d0 + 2 + i));
	put_desc(f, q, d0 + 1 + (unsigned)n, st, 1, 2, 0);
	return (uint16_t)d0;
}

/* Run one request with @n data segments between header and status. */
struct res run(struct fe *f, unsigned qi, uint32_t type, uint64_t sector, const struct seg *segs,
	       size_t n)
{
	struct fe_queue *q = &f->q[qi];
	unsigned slot = q->avail_idx % (QSIZE / SLOT_DESCS);
	uint16_t d0 = build(f, q, slot, type, sector, segs, n);
	gm_gpa_t st = q->status + slot;
	uint32_t id;
	struct res r;

	offer(f, q, d0);
	assert_true(wait_used(f, q, &id, &r.len, 5000));
	assert_int_equal(id, d0);
	assert_int_equal(gm_read_u8(f->m, st, &r.status), 0);
	return r;
}

struct res run1(struct fe *f, uint32_t type, uint64_t sector, gm_gpa_t gpa, uint32_t len,
		bool write)
{
	struct seg s = {gpa, len, write};

	return run(f, 0, type, sector, &s, len ? 1 : 0);
}

void image_read(struct fe *f, uint64_t off, void *buf, size_t len)
{
	int fd = open(f->img_path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

void fe_stop(struct fe *f)
{
	assert_int_equal(disconnect_fe(f), 0);
}
/* ---- multi-queue workload ---- */

/* Per round: write a pattern to this queue's sectors, read it back, compare. */
void *traffic_thread(void *arg)
{
	struct traffic *t = arg;
	struct fe *f = t->f;
	gm_gpa_t buf = DATA + DATA_PER_Q * t->qi;
	uint64_t sector = 64 + 64 * t->qi;
	uint8_t *g = gm_host_ptr(f->m, buf, 2 * 8192);
	unsigned r, i;

	for (r = 0; r < t->rounds; r++) {
		struct seg w = {buf, 8192, false}, rd = {buf + 8192, 8192, true};

		for (i = 0; i < 8192; i++)
			g[i] = (uint8_t)(i * 31 + r + t->qi);
		if (run(f, t->qi, T_OUT, sector, &w, 1).status != 0 ||
		    run(f, t->qi, T_IN, sector, &rd, 1).status != 0 || memcmp(g, g + 8192, 8192))
			t->failures++;
	}
	return NULL;
}

void replace_tables(struct fe *f, unsigned n)
{
	int memfd = gm_mapping_fd(f->map), fds[2] = {memfd, memfd};
	/* Same bytes, same user addresses, split in two at 2 MiB. */
	struct region_msg whole = {0, RAM_SIZE, UA, 0};
	struct region_msg half[2] = {{0, 2 * MiB, UA, 0},
				     {2 * MiB, 2 * MiB, UA + 2 * MiB, 2 * MiB}};
	struct region_msg extra = {64 * MiB, 4096, UA + 64 * MiB, 0};
	uint8_t p[512] = {0};
	unsigned i;

	for (i = 0; i < n; i++) {
		switch (i % 3) {
		case 0:
			assert_int_equal(acked(f, SET_MEM_TABLE, p, mem_table(p, half, 2), fds, 2),
					 0);
			break;
		case 1:
			/* Add a region no request uses, then remove it again. */
			memcpy(p + 8, &extra, 32);
			assert_int_equal(acked(f, ADD_MEM_REG, p, 40, &memfd, 1), 0);
			assert_int_equal(acked(f, REM_MEM_REG, p, 40, NULL, 0), 0);
			break;
		default:
			assert_int_equal(
			    acked(f, SET_MEM_TABLE, p, mem_table(p, &whole, 1), fds, 1), 0);
			break;
		}
	}
}

/* ---- multi-queue scenarios ---- */

void scenario_memory_table_replaced_mid_stream(void)
{
	struct fe f;
	struct traffic t = {&f, 0, 40, 0};
	pthread_t th;
	uint8_t p[512] = {0};
	struct region_msg half[2] = {{0, 2 * MiB, UA, 0},
				     {2 * MiB, 2 * MiB, UA + 2 * MiB, 2 * MiB}};
	int memfd, fds[2];

	fe_init(&f, 1, false);
	fe_start(&f, 0);
	memfd = fds[0] = fds[1] = gm_mapping_fd(f.map);
	assert_int_equal(pthread_create(&th, NULL, traffic_thread, &t), 0);
	replace_tables(&f, 30);
	pthread_join(th, NULL);
	assert_int_equal(t.failures, 0);
	/* Without the region holding the data, I/O fails; with it back, it works. */
	assert_int_equal(acked(&f, SET_MEM_TABLE, p, mem_table(p, half, 2), fds, 2), 0);
	memcpy(p + 8, &half[1], 32);
	assert_int_equal(acked(&f, REM_MEM_REG, p, 40, NULL, 0), 0);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 1);
	assert_int_equal(acked(&f, ADD_MEM_REG, p, 40, &memfd, 1), 0);
	assert_int_equal(run1(&f, T_IN, 0, DATA, 512, true).status, 0);
	fe_stop(&f);
	assert_true(f.info.tables >= 30);
	assert_int_equal(f.info.max_regions_seen, 3);
	fe_fini(&f);
}

void scenario_several_queues_serve_in_parallel(unsigned rounds, unsigned tables)
{
	struct fe f;
	struct traffic t[MAX_Q];
	pthread_t th[MAX_Q];
	struct blk_stats st;
	unsigned i;

	fe_init(&f, MAX_Q, false);
	fe_start(&f, 0);
	for (i = 0; i < MAX_Q; i++) {
		t[i] = (struct traffic){&f, i, rounds, 0};
		assert_int_equal(pthread_create(&th[i], NULL, traffic_thread, &t[i]), 0);
	}
	replace_tables(&f, tables);
	for (i = 0; i < MAX_Q; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].failures, 0);
	}
	blk_stats_take(&f.blk, &st, false);
	assert_int_equal(st.in, MAX_Q * rounds);
	assert_int_equal(st.out, MAX_Q * rounds);
	assert_int_equal(st.bytes_read, MAX_Q * rounds * 8192ull);
	fe_stop(&f);
	assert_int_equal(f.info.queues_started, MAX_Q);
	fe_fini(&f);
}
