/* SPDX-License-Identifier: MIT */
/*
 * test_virtq.c - split virtqueues (<guestmem/virtq.h>).
 *
 * The test plays the driver: it writes descriptors and ring entries into a
 * guest memory view exactly as a hostile or buggy driver could, and checks
 * what the device side makes of them: exact errnos, which requests are
 * consumed, and that a bad request never stops the good one behind it.
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

#include <guestmem/virtq.h>

#define QSIZE 8u
#define DESC  0x1000ull
#define AVAIL 0x2000ull
#define USED  0x3000ull
#define IND   0x4000ull
#define RAM   0x10000ull /* 64 KiB of RAM at 0 */

#define F_NEXT	   1
#define F_WRITE	   2
#define F_INDIRECT 4

struct fx {
	struct gm_memory *m;
	struct gm_virtq *q;
	uint16_t avail_idx;
	struct gm_virtq_buf bufs[16];
	struct gm_virtq_req req;
};

static int setup(void **state)
{
	struct gm_range r = {0, RAM};
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(gm_memory_new_anon(&r, 1, &f->m), 0);
	assert_int_equal(gm_virtq_new(&f->q), 0);
	assert_int_equal(gm_virtq_set_layout(f->q, QSIZE, DESC, AVAIL, USED), 0);
	gm_virtq_set_base(f->q, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	gm_virtq_free(f->q);
	gm_memory_put(f->m);
	free(f);
	return 0;
}

static void put_desc(struct fx *f, gm_gpa_t table, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	gm_gpa_t d = table + 16ull * i;

	assert_int_equal(gm_write_le64(f->m, d, addr), 0);
	assert_int_equal(gm_write_le32(f->m, d + 8, len), 0);
	assert_int_equal(gm_write_le16(f->m, d + 12, flags), 0);
	assert_int_equal(gm_write_le16(f->m, d + 14, next), 0);
}

/* Make @head available and publish the index. */
static void offer(struct fx *f, uint16_t head)
{
	assert_int_equal(gm_write_le16(f->m, AVAIL + 4 + 2ull * (f->avail_idx % QSIZE), head), 0);
	f->avail_idx++;
	assert_int_equal(gm_write_le16(f->m, AVAIL + 2, f->avail_idx), 0);
}

static uint16_t used_idx(struct fx *f)
{
	uint16_t v;

	assert_int_equal(gm_read_le16(f->m, USED + 2, &v), 0);
	return v;
}

static void empty_ring_gives_eagain(void **state)
{
	struct fx *f = *state;

	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), -EAGAIN);
}

static void chain_is_returned_in_order_and_pushed_back(void **state)
{
	struct fx *f = *state;
	uint32_t id, len;

	put_desc(f, DESC, 3, 0x8000, 16, F_NEXT, 5);
	put_desc(f, DESC, 5, 0x9000, 512, F_NEXT | F_WRITE, 0);
	put_desc(f, DESC, 0, 0x9800, 1, F_WRITE, 0);
	offer(f, 3);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
	assert_int_equal(f->req.head, 3);
	assert_int_equal(f->req.nbufs, 3);
	assert_int_equal(f->bufs[0].gpa, 0x8000);
	assert_int_equal(f->bufs[0].len, 16);
	assert_false(f->bufs[0].writable);
	assert_int_equal(f->bufs[1].gpa, 0x9000);
	assert_true(f->bufs[1].writable);
	assert_int_equal(f->bufs[2].len, 1);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), -EAGAIN);
	assert_int_equal(gm_virtq_push(f->q, f->m, 3, 513), 0);
	assert_int_equal(used_idx(f), 1);
	assert_int_equal(gm_read_le32(f->m, USED + 4, &id), 0);
	assert_int_equal(gm_read_le32(f->m, USED + 8, &len), 0);
	assert_int_equal(id, 3);
	assert_int_equal(len, 513);
	assert_int_equal(gm_virtq_base(f->q), 1);
	assert_int_equal(gm_virtq_push(f->q, f->m, QSIZE, 0), -EINVAL);
}

/* A bad request is consumed with its head; the next one is served. */
static void expect_bad_then_good(struct fx *f, uint16_t head, int err)
{
	put_desc(f, DESC, 7, 0x8000, 16, 0, 0);
	offer(f, head);
	offer(f, 7);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), err);
	assert_int_equal(f->req.head, head);
	assert_int_equal(f->req.nbufs, 0);
	assert_int_equal(gm_virtq_push(f->q, f->m, head, 0), 0);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
	assert_int_equal(f->req.head, 7);
	assert_false(gm_virtq_broken(f->q));
}

static void looping_chain_fails_only_its_request(void **state)
{
	struct fx *f = *state;

	put_desc(f, DESC, 0, 0x8000, 16, F_NEXT, 1);
	put_desc(f, DESC, 1, 0x8000, 16, F_NEXT, 0);
	expect_bad_then_good(f, 0, -EINVAL);
}

static void next_out_of_range_fails_only_its_request(void **state)
{
	struct fx *f = *state;

	put_desc(f, DESC, 0, 0x8000, 16, F_NEXT, QSIZE);
	expect_bad_then_good(f, 0, -EINVAL);
}

static void readable_after_writable_fails_only_its_request(void **state)
{
	struct fx *f = *state;

	put_desc(f, DESC, 0, 0x8000, 16, F_NEXT | F_WRITE, 1);
	put_desc(f, DESC, 1, 0x8000, 16, 0, 0);
	expect_bad_then_good(f, 0, -EINVAL);
}

static void chain_longer_than_caller_array_is_enobufs(void **state)
{
	struct fx *f = *state;

	put_desc(f, DESC, 0, 0x8000, 16, F_NEXT, 1);
	put_desc(f, DESC, 1, 0x8000, 16, F_NEXT, 2);
	put_desc(f, DESC, 2, 0x8000, 16, 0, 0);
	offer(f, 0);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 2), -ENOBUFS);
	assert_int_equal(f->req.head, 0);
}

static void indirect_table_is_walked(void **state)
{
	struct fx *f = *state;

	assert_int_equal(gm_virtq_set_features(f->q, GM_VIRTQ_F_INDIRECT), 0);
	put_desc(f, IND, 0, 0x8000, 16, F_NEXT, 2);
	put_desc(f, IND, 2, 0x9000, 4096, F_NEXT | F_WRITE, 1);
	put_desc(f, IND, 1, 0x9800, 1, F_WRITE, 0);
	/* The write flag of the descriptor naming the table is ignored. */
	put_desc(f, DESC, 4, IND, 3 * 16, F_INDIRECT | F_WRITE, 0);
	offer(f, 4);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
	assert_int_equal(f->req.head, 4);
	assert_int_equal(f->req.nbufs, 3);
	assert_int_equal(f->bufs[1].gpa, 0x9000);
	assert_int_equal(f->bufs[1].len, 4096);
	assert_true(f->bufs[2].writable);
}

/* An indirect table may have GM_VIRTQ_MAX_SIZE entries, not one more. */
static void indirect_table_of_the_largest_size_is_accepted(void **state)
{
	struct fx *f = *state;

	assert_int_equal(gm_virtq_set_features(f->q, GM_VIRTQ_F_INDIRECT), 0);
	put_desc(f, IND, 0, 0x8000, 16, 0, 0);
	put_desc(f, DESC, 0, IND, 16 * GM_VIRTQ_MAX_SIZE, F_INDIRECT, 0);
	offer(f, 0);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
	assert_int_equal(f->req.nbufs, 1);
	assert_int_equal(f->bufs[0].gpa, 0x8000);
	put_desc(f, DESC, 1, IND, 16 * (GM_VIRTQ_MAX_SIZE + 1), F_INDIRECT, 0);
	expect_bad_then_good(f, 1, -EINVAL);
}

static void bad_indirect_tables_fail_only_their_request(void **state)
{
	struct fx *f = *state;

	/* Not negotiated. */
	put_desc(f, DESC, 0, IND, 16, F_INDIRECT, 0);
	expect_bad_then_good(f, 0, -EINVAL);
	assert_int_equal(gm_virtq_set_features(f->q, GM_VIRTQ_F_INDIRECT), 0);
	/* Length not a multiple of 16, and zero. */
	put_desc(f, DESC, 0, IND, 24, F_INDIRECT, 0);
	expect_bad_then_good(f, 0, -EINVAL);
	put_desc(f, DESC, 0, IND, 0, F_INDIRECT, 0);
	expect_bad_then_good(f, 0, -EINVAL);
	/* With NEXT. */
	put_desc(f, DESC, 0, IND, 16, F_INDIRECT | F_NEXT, 1);
	expect_bad_then_good(f, 0, -EINVAL);
	/* Nested. */
	put_desc(f, IND, 0, IND, 16, F_INDIRECT, 0);
	put_desc(f, DESC, 0, IND, 16, F_INDIRECT, 0);
	expect_bad_then_good(f, 0, -EINVAL);
	/* A loop inside the table. */
	put_desc(f, IND, 0, 0x8000, 16, F_NEXT, 1);
	put_desc(f, IND, 1, 0x8000, 16, F_NEXT, 0);
	put_desc(f, DESC, 0, IND, 32, F_INDIRECT, 0);
	expect_bad_then_good(f, 0, -EINVAL);
	/* Table outside RAM. */
	put_desc(f, DESC, 0, RAM, 32, F_INDIRECT, 0);
	expect_bad_then_good(f, 0, -EFAULT);
	/* Table that wraps past 2^64. */
	put_desc(f, DESC, 0, UINT64_MAX - 15, 32, F_INDIRECT, 0);
	expect_bad_then_good(f, 0, -EINVAL);
}

static void avail_index_running_ahead_breaks_the_ring(void **state)
{
	struct fx *f = *state;

	assert_int_equal(gm_write_le16(f->m, AVAIL + 2, QSIZE + 1), 0);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), -EIO);
	assert_true(gm_virtq_broken(f->q));
	/* Stays broken even once the index looks sane again. */
	assert_int_equal(gm_write_le16(f->m, AVAIL + 2, 0), 0);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), -EIO);
	assert_int_equal(gm_virtq_push(f->q, f->m, 0, 0), -EIO);
	/* Nothing else walks a broken ring either, nor tells about it. */
	put_desc(f, DESC, 0, 0x8000, 16, 0, 0);
	assert_int_equal(gm_virtq_pop_head(f->q, f->m, 0, &f->req, f->bufs, 16), -EIO);
	assert_int_equal(gm_virtq_need_notify(f->q, f->m, &(bool){false}), -EIO);
	assert_int_equal(gm_virtq_enable_notify(f->q, f->m, &(bool){false}), -EIO);
	gm_virtq_set_base(f->q, 0);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), -EAGAIN);
	assert_int_equal(gm_virtq_pop_head(f->q, f->m, 0, &f->req, f->bufs, 16), 0);
}

/* Offer @n requests, head i using descriptor i (one buffer at 0x8000 + 0x100 * i). */
static void offer_each_descriptor(struct fx *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		put_desc(f, DESC, i, 0x8000 + 0x100ull * i, 16, 0, 0);
		offer(f, (uint16_t)i);
	}
}

/* Pop @n requests, expecting heads 0 .. @n - 1 in order. */
static void pop_each_descriptor(struct fx *f, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
		assert_int_equal(f->req.head, i);
		assert_int_equal(f->req.nbufs, 1);
		assert_int_equal(f->bufs[0].gpa, 0x8000 + 0x100ull * i);
	}
}

/*
 * A completely full ring (avail idx - last_avail == queue size) is not
 * running ahead: every entry pops, then the ring is empty. One more than
 * the size ahead breaks it (the header), also across the index wrap.
 */
static void full_ring_pops_every_entry_and_one_more_is_empty(void **state)
{
	struct fx *f = *state;

	offer_each_descriptor(f, QSIZE);
	pop_each_descriptor(f, QSIZE);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), -EAGAIN);
	assert_false(gm_virtq_broken(f->q));
	assert_int_equal(gm_virtq_base(f->q), QSIZE);
	for (unsigned i = 0; i < QSIZE; i++)
		assert_int_equal(gm_virtq_push(f->q, f->m, (uint16_t)i, 0), 0);
	assert_int_equal(used_idx(f), QSIZE);
	/* Full again, from a non-zero last_avail. */
	offer_each_descriptor(f, QSIZE);
	pop_each_descriptor(f, QSIZE);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), -EAGAIN);

	/* Full across the 16-bit wrap: last_avail 65532, avail idx 4. */
	gm_virtq_set_base(f->q, 65532);
	f->avail_idx = 65532;
	offer_each_descriptor(f, QSIZE);
	assert_int_equal(f->avail_idx, 4);
	pop_each_descriptor(f, QSIZE);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), -EAGAIN);
	assert_int_equal(gm_virtq_base(f->q), 4);
	assert_false(gm_virtq_broken(f->q));
	/* Given back in reverse: used element k lands in slot (65532 + k) % size. */
	for (unsigned k = 0; k < QSIZE; k++)
		assert_int_equal(gm_virtq_push(f->q, f->m, (uint16_t)(QSIZE - 1 - k), k), 0);
	assert_int_equal(used_idx(f), 4);
	for (unsigned k = 0; k < QSIZE; k++) {
		uint32_t id, len;

		assert_int_equal(gm_read_le32(f->m, USED + 4 + 8ull * ((65532 + k) % QSIZE), &id),
				 0);
		assert_int_equal(gm_read_le32(f->m, USED + 8 + 8ull * ((65532 + k) % QSIZE), &len),
				 0);
		assert_int_equal(id, QSIZE - 1 - k);
		assert_int_equal(len, k);
	}

	/* One more than the size ahead, across the wrap: broken, nothing consumed. */
	gm_virtq_set_base(f->q, 65532);
	assert_int_equal(gm_write_le16(f->m, AVAIL + 2, 5), 0);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), -EIO);
	assert_true(gm_virtq_broken(f->q));
	assert_int_equal(gm_virtq_base(f->q), 65532);
}

static void head_out_of_range_breaks_the_ring(void **state)
{
	struct fx *f = *state;

	offer(f, QSIZE);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), -EIO);
	assert_int_equal(gm_virtq_base(f->q), 0); /* nothing consumed */
}

static void rings_outside_ram_break_the_queue(void **state)
{
	struct fx *f = *state;

	assert_int_equal(gm_virtq_set_layout(f->q, QSIZE, RAM, AVAIL, USED), 0);
	offer(f, 0);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), -EIO);
	assert_int_equal(gm_virtq_set_layout(f->q, QSIZE, DESC, AVAIL, RAM - 8), 0);
	assert_int_equal(gm_virtq_push(f->q, f->m, 0, 0), -EIO);
	assert_true(gm_virtq_broken(f->q));
}

/* Found by fuzz/fuzz_virtq.c: the base told to the front end must not count it. */
static void descriptor_table_outside_ram_breaks_without_consuming(void **state)
{
	struct fx *f = *state;

	assert_int_equal(gm_virtq_set_layout(f->q, QSIZE, RAM - 16ull * QSIZE / 2, AVAIL, USED), 0);
	offer(f, QSIZE / 2 - 1); /* the last descriptor still in RAM */
	offer(f, QSIZE / 2);	 /* the first one past its end */
	put_desc(f, RAM - 16ull * QSIZE / 2, QSIZE / 2 - 1, 0x8000, 16, 0, 0);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
	assert_int_equal(f->req.head, QSIZE / 2 - 1);
	assert_int_equal(gm_virtq_base(f->q), 1);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), -EIO);
	assert_true(gm_virtq_broken(f->q));
	assert_int_equal(gm_virtq_base(f->q), 1); /* the unreadable request is not consumed */
}

static void layout_is_checked(void **state)
{
	struct fx *f = *state;

	assert_int_equal(gm_virtq_set_layout(f->q, 3, DESC, AVAIL, USED), -EINVAL);
	assert_int_equal(gm_virtq_set_layout(f->q, 0, DESC, AVAIL, USED), -EINVAL);
	assert_int_equal(gm_virtq_set_layout(f->q, 65536, DESC, AVAIL, USED), -EINVAL);
	assert_int_equal(gm_virtq_set_layout(f->q, QSIZE, DESC + 8, AVAIL, USED), -EINVAL);
	assert_int_equal(gm_virtq_set_layout(f->q, QSIZE, DESC, AVAIL + 1, USED), -EINVAL);
	assert_int_equal(gm_virtq_set_layout(f->q, QSIZE, DESC, AVAIL, USED + 2), -EINVAL);
	assert_int_equal(gm_virtq_set_layout(f->q, QSIZE, UINT64_MAX - 15, AVAIL, USED),
			 -EOVERFLOW);
	assert_int_equal(gm_virtq_set_features(f->q, 1u << 5), -EINVAL);
}

/* The limits themselves: the largest size is accepted, each ring's wrap is refused. */
static void layout_limits_are_exact(void **state)
{
	struct fx *f = *state;

	assert_int_equal(gm_virtq_set_layout(f->q, GM_VIRTQ_MAX_SIZE, DESC, AVAIL, USED), 0);
	assert_int_equal(gm_virtq_set_layout(f->q, 2 * GM_VIRTQ_MAX_SIZE, DESC, AVAIL, USED),
			 -EINVAL);
	/* The available ring (6 + 2 * size bytes) and the used ring (6 + 8 * size) may end at
	 * the last byte, not wrap. */
	assert_int_equal(gm_virtq_set_layout(f->q, QSIZE, DESC, UINT64_MAX - 21, USED), 0);
	assert_int_equal(gm_virtq_set_layout(f->q, QSIZE, DESC, UINT64_MAX - 19, USED), -EOVERFLOW);
	assert_int_equal(gm_virtq_set_layout(f->q, QSIZE, DESC, AVAIL, UINT64_MAX - 71), 0);
	assert_int_equal(gm_virtq_set_layout(f->q, QSIZE, DESC, AVAIL, UINT64_MAX - 67),
			 -EOVERFLOW);
}

static void no_interrupt_flag_suppresses_notification(void **state)
{
	struct fx *f = *state;
	bool notify;

	put_desc(f, DESC, 0, 0x8000, 16, 0, 0);
	offer(f, 0);
	offer(f, 0);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
	assert_int_equal(gm_virtq_push(f->q, f->m, 0, 0), 0);
	assert_int_equal(gm_virtq_need_notify(f->q, f->m, &notify), 0);
	assert_true(notify);
	assert_int_equal(gm_write_le16(f->m, AVAIL, 1), 0);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
	assert_int_equal(gm_virtq_push(f->q, f->m, 0, 0), 0);
	assert_int_equal(gm_virtq_need_notify(f->q, f->m, &notify), 0);
	assert_false(notify);
}

static void event_idx_notifies_when_used_event_is_crossed(void **state)
{
	struct fx *f = *state;
	bool notify, empty;
	uint16_t ev;
	int i;

	assert_int_equal(gm_virtq_set_features(f->q, GM_VIRTQ_F_EVENT_IDX), 0);
	put_desc(f, DESC, 0, 0x8000, 16, 0, 0);
	for (i = 0; i < 4; i++)
		offer(f, 0);
	/* First decision after setup always notifies. */
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
	assert_int_equal(gm_virtq_push(f->q, f->m, 0, 0), 0);
	assert_int_equal(gm_virtq_need_notify(f->q, f->m, &notify), 0);
	assert_true(notify);
	/* Driver wants an interrupt when used idx passes 2 (used_event = 2). */
	assert_int_equal(gm_write_le16(f->m, AVAIL + 4 + 2 * QSIZE, 2), 0);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
	assert_int_equal(gm_virtq_push(f->q, f->m, 0, 0), 0); /* used idx 2 */
	assert_int_equal(gm_virtq_need_notify(f->q, f->m, &notify), 0);
	assert_false(notify);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
	assert_int_equal(gm_virtq_push(f->q, f->m, 0, 0), 0); /* used idx 3: crossed */
	assert_int_equal(gm_virtq_need_notify(f->q, f->m, &notify), 0);
	assert_true(notify);
	/* enable_notify asks for a kick at our next index and sees what is left. */
	assert_int_equal(gm_virtq_enable_notify(f->q, f->m, &empty), 0);
	assert_false(empty);
	assert_int_equal(gm_read_le16(f->m, USED + 4 + 8 * QSIZE, &ev), 0);
	assert_int_equal(ev, 3);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
	assert_int_equal(gm_virtq_enable_notify(f->q, f->m, &empty), 0);
	assert_true(empty);
}

/* One request popped and pushed; then the notification decision. */
static bool push_one_and_decide(struct fx *f)
{
	bool notify = false;

	offer(f, 0);
	assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
	assert_int_equal(gm_virtq_push(f->q, f->m, 0, 0), 0);
	assert_int_equal(gm_virtq_need_notify(f->q, f->m, &notify), 0);
	return notify;
}

static void set_used_event(struct fx *f, uint16_t ev)
{
	assert_int_equal(gm_write_le16(f->m, AVAIL + 4 + 2 * QSIZE, ev), 0);
}

/*
 * vring_need_event(used_event, new, old): notify only if the used index
 * stepped over used_event since the last decision. A used_event the index
 * had already passed at the last decision asks for nothing more; all of
 * it modulo 2^16, across the wrap.
 */
static void event_idx_used_event_already_passed_does_not_notify(void **state)
{
	struct fx *f = *state;

	assert_int_equal(gm_virtq_set_features(f->q, GM_VIRTQ_F_EVENT_IDX), 0);
	put_desc(f, DESC, 0, 0x8000, 16, 0, 0);
	gm_virtq_set_base(f->q, 65533);
	f->avail_idx = 65533;
	set_used_event(f, 0);
	assert_true(push_one_and_decide(f)); /* the first decision; used 65534 */
	/* used_event 65534: crossed when used goes 65534 -> 65535. */
	set_used_event(f, 65534);
	assert_true(push_one_and_decide(f)); /* used 65535 */
	/* Already passed at the last decision: no interrupt, however far we go. */
	assert_false(push_one_and_decide(f)); /* used 0, across the wrap */
	assert_false(push_one_and_decide(f)); /* used 1 */
	/* used_event 0, one behind the index of the last decision (1): passed too. */
	set_used_event(f, 0);
	assert_false(push_one_and_decide(f)); /* used 2 */
	/* used_event 2 = the index now: crossed by the next push (2 -> 3). */
	set_used_event(f, 2);
	assert_true(push_one_and_decide(f)); /* used 3 */
	/* Ahead of the index: not yet. */
	set_used_event(f, 5);
	assert_false(push_one_and_decide(f)); /* used 4 */
	/* Crossed in the middle of a batch of pushes (4 -> 7 steps over 5). */
	offer(f, 0);
	offer(f, 0);
	offer(f, 0);
	for (int i = 0; i < 3; i++) {
		bool notify;

		assert_int_equal(gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 16), 0);
		assert_int_equal(gm_virtq_push(f->q, f->m, 0, 0), 0);
		if (i == 2) {
			assert_int_equal(gm_virtq_need_notify(f->q, f->m, &notify), 0);
			assert_true(notify);
		}
	}
	/* With no push since the last decision, nothing to tell. */
	{
		bool notify = true;

		assert_int_equal(gm_virtq_need_notify(f->q, f->m, &notify), 0);
		assert_false(notify);
	}
}

/* Without EVENT_IDX there is no avail_event field: enable_notify writes nothing there. */
static void enable_notify_without_event_idx_writes_no_avail_event(void **state)
{
	struct fx *f = *state;
	uint16_t ev;
	bool empty;

	assert_int_equal(gm_write_le16(f->m, USED + 4 + 8 * QSIZE, 0xbeef), 0);
	offer(f, 0);
	assert_int_equal(gm_virtq_enable_notify(f->q, f->m, &empty), 0);
	assert_false(empty);
	assert_int_equal(gm_read_le16(f->m, USED + 4 + 8 * QSIZE, &ev), 0);
	assert_int_equal(ev, 0xbeef);
}

static void pop_head_walks_a_chain_without_consuming(void **state)
{
	struct fx *f = *state;
	uint16_t v;

	put_desc(f, DESC, 2, 0x8000, 16, F_NEXT, 6);
	put_desc(f, DESC, 6, 0x9000, 1, F_WRITE, 0);
	gm_virtq_set_indices(f->q, 5, 3);
	assert_int_equal(gm_virtq_base(f->q), 5);
	assert_int_equal(gm_virtq_used_index(f->q), 3);
	assert_int_equal(gm_virtq_pop_head(f->q, f->m, 2, &f->req, f->bufs, 16), 0);
	assert_int_equal(f->req.head, 2);
	assert_int_equal(f->req.nbufs, 2);
	assert_int_equal(f->bufs[1].gpa, 0x9000);
	assert_int_equal(gm_virtq_base(f->q), 5); /* nothing taken from the ring */
	assert_int_equal(gm_virtq_pop_head(f->q, f->m, QSIZE, &f->req, f->bufs, 16), -EINVAL);
	put_desc(f, DESC, 2, 0x8000, 16, F_NEXT, 2);
	assert_int_equal(gm_virtq_pop_head(f->q, f->m, 2, &f->req, f->bufs, 16), -EINVAL);
	assert_int_equal(gm_virtq_push(f->q, f->m, 2, 1), 0);
	assert_int_equal(gm_read_le16(f->m, USED + 2, &v), 0);
	assert_int_equal(v, 4);
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

/*
 * Garbage rings: random descriptors (biased towards plausible flags,
 * indices and addresses), random avail entries and index. The device side
 * must only ever answer with a documented errno, never hand out more
 * buffers than asked, and never crash (ASan/UBSan builds check the rest).
 */
static void random_rings_give_only_documented_answers(void **state)
{
	struct fx *f = *state;
	unsigned round, i, served = 0, refused = 0, broke = 0;

	for (round = 0; round < 1000; round++) {
		gm_virtq_set_base(f->q, (uint16_t)rnd());
		assert_int_equal(gm_virtq_set_features(f->q, (unsigned)rnd() & 3), 0);
		for (i = 0; i < QSIZE; i++) {
			uint64_t r = rnd();
			uint64_t addr = (r & 1)	  ? IND + 16 * (r >> 8 & 7)
					: (r & 2) ? rnd()
						  : r >> 48;

			put_desc(f, DESC, i, addr, (uint32_t)(r >> 20) & 0x7f,
				 (uint16_t)(r >> 32) & 7, (uint16_t)(r >> 40) & 15);
			put_desc(f, IND, i, rnd() & 0xffff, (uint32_t)rnd() & 0xff,
				 (uint16_t)rnd() & 7, (uint16_t)rnd() & 15);
			/* Heads in range, but now and then one that is not. */
			r = rnd();
			assert_int_equal(
			    gm_write_le16(f->m, AVAIL + 4 + 2 * i,
					  (uint16_t)((r & 0xf0) ? r & 7 : 8 + (r & 7))),
			    0);
		}
		assert_int_equal(
		    gm_write_le16(f->m, AVAIL + 2,
				  (uint16_t)(gm_virtq_base(f->q) + (rnd() & 0x1f) % 10)),
		    0);
		for (i = 0; i < 2 * QSIZE; i++) {
			int ret = gm_virtq_pop(f->q, f->m, &f->req, f->bufs, 4);

			broke += ret == -EIO;
			if (ret == -EAGAIN || ret == -EIO)
				break;
			served += ret == 0;
			refused += ret != 0;
			assert_true(ret == 0 || ret == -EINVAL || ret == -EFAULT ||
				    ret == -ENOBUFS);
			assert_true(f->req.head < QSIZE);
			assert_true(f->req.nbufs <= 4);
			assert_true(ret == 0 || f->req.nbufs == 0);
			ret = gm_virtq_push(f->q, f->m, f->req.head, 0);
			assert_int_equal(ret, 0);
		}
	}
	/* The generator reaches every outcome (else this test proves little). */
	printf("random rings: %u served, %u refused, %u broken\n", served, refused, broke);
	assert_true(served > 100 && refused > 100 && broke > 10);
}

static void unset_queue_refuses_everything(void **state)
{
	struct gm_virtq *q;
	struct gm_virtq_req req;
	struct gm_virtq_buf b;
	bool x;

	(void)state;
	assert_int_equal(gm_virtq_new(&q), 0);
	assert_true(gm_virtq_broken(q));
	assert_int_equal(gm_virtq_pop(q, NULL, &req, &b, 1), -EIO);
	assert_int_equal(gm_virtq_pop_head(q, NULL, 0, &req, &b, 1), -EIO);
	assert_int_equal(gm_virtq_push(q, NULL, 0, 0), -EIO);
	assert_int_equal(gm_virtq_need_notify(q, NULL, &x), -EIO);
	assert_int_equal(gm_virtq_enable_notify(q, NULL, &x), -EIO);
	assert_int_equal(gm_virtq_new(NULL), -EINVAL);
	gm_virtq_free(q);
	gm_virtq_free(NULL);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(empty_ring_gives_eagain),
	    T(chain_is_returned_in_order_and_pushed_back),
	    T(looping_chain_fails_only_its_request),
	    T(next_out_of_range_fails_only_its_request),
	    T(readable_after_writable_fails_only_its_request),
	    T(chain_longer_than_caller_array_is_enobufs),
	    T(indirect_table_is_walked),
	    T(indirect_table_of_the_largest_size_is_accepted),
	    T(bad_indirect_tables_fail_only_their_request),
	    T(avail_index_running_ahead_breaks_the_ring),
	    T(full_ring_pops_every_entry_and_one_more_is_empty),
	    T(head_out_of_range_breaks_the_ring),
	    T(rings_outside_ram_break_the_queue),
	    T(descriptor_table_outside_ram_breaks_without_consuming),
	    T(layout_is_checked),
	    T(layout_limits_are_exact),
	    T(no_interrupt_flag_suppresses_notification),
	    T(event_idx_notifies_when_used_event_is_crossed),
	    T(event_idx_used_event_already_passed_does_not_notify),
	    T(enable_notify_without_event_idx_writes_no_avail_event),
	    T(random_rings_give_only_documented_answers),
	    T(pop_head_walks_a_chain_without_consuming),
	    cmocka_unit_test(unset_queue_refuses_everything),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
