/* SPDX-License-Identifier: MIT */
/*
 * stream.c - the pre-copy migration stream over any fd (a socket, a pipe):
 * records with a checksum each (docs/snapshot-format.md), a sender that
 * iterates over the dirty pages, and a receiver that applies them into its
 * own memory after checking every record.
 *
 * Migration stream states (sender): HELLO -> round 1 (every page) ->
 * rounds of dirty pages (gm__view_collect_dirty) -> before_final() ->
 * final round -> END (-> wait for ACK on a socket). The receiver accepts
 * HELLO first, then PAGES/ZERO/ROUND in any number, and returns at END
 * (after answering ACK on a socket); what it accepts of each record type
 * is one row of mig_rules[].
 */
#include "snapshot-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>

/*
 * A record: a 32-byte header, then @len payload bytes. The checksum covers
 * the header's first 24 bytes and the payload (docs/snapshot-format.md).
 */
#define MIG_MAGIC     0x524d4d47u /* "GMMR" little endian */
#define MIG_VERSION   1u
#define MIG_HDR	      32u
#define MIG_MAX_PAGES 256u /* pages in one PAGES record: 1 MiB */
#define MIG_MAX_ZERO  MIG_MAX_PAGES

enum { MIG_HELLO = 1, MIG_PAGES = 2, MIG_ZERO = 3, MIG_ROUND = 4, MIG_END = 5, MIG_ACK = 6 };

/*
 * One end of a migration stream: the fd (its .bytes is the byte count of
 * the stats), the scratch of record checksums, and a record payload buffer.
 */
struct mig_stream {
	struct snap_io io;
	XXH3_state_t *state;
	unsigned char *buf; /* MIG_MAX_PAGES pages */
};

static int mig_stream_open(struct mig_stream *s, int fd)
{
	*s = (struct mig_stream){.io = {.fd = fd, .off = SNAP_STREAM}};
	s->state = XXH3_createState();
	s->buf = malloc(MIG_MAX_PAGES * SNAP_PAGE);
	return s->state && s->buf ? 0 : -ENOMEM;
}

/* Free @s; report @st, with the stream's byte count, to @stats (may be NULL). */
static void mig_stream_close(struct mig_stream *s, struct gm_migrate_stats *st,
			     struct gm_migrate_stats *stats)
{
	st->bytes = s->io.bytes;
	if (stats)
		(void)GM_ABI_COPY_OUT(stats, st); /* its sz was checked on entry */
	if (s->state)
		XXH3_freeState(s->state);
	free(s->buf);
}

/* The checksum of a record: its header's first 24 bytes, then its payload. */
static uint64_t mig_record_sum(XXH3_state_t *state, const unsigned char *h, const void *payload,
			       uint32_t len)
{
	XXH3_64bits_reset(state);
	XXH3_64bits_update(state, h, 24);
	if (len)
		XXH3_64bits_update(state, payload, len);
	return XXH3_64bits_digest(state);
}

static int mig_send_record(struct mig_stream *o, unsigned type, uint32_t count, uint64_t arg,
			   const void *payload, uint32_t len)
{
	unsigned char h[MIG_HDR] = {0};
	int ret;

	put_le32(h, MIG_MAGIC);
	put_le32(h + 4, type);
	put_le32(h + 8, count);
	put_le32(h + 12, len);
	put_le64(h + 16, arg);
	put_le64(h + 24, mig_record_sum(o->state, h, payload, len));
	ret = gm__write_full(&o->io, h, sizeof(h));
	if (ret == 0 && len)
		ret = gm__write_full(&o->io, payload, len);
	return ret;
}

/*
 * Send pages [first, first + n) of region @r (n <= MIG_MAX_PAGES) as
 * ZERO and PAGES records, copying them first so the checksum matches what
 * is sent even while the guest writes.
 */
static int mig_send_pages(struct mig_stream *o, const struct gm_region_info *r, uint64_t first,
			  uint64_t n, struct gm_migrate_stats *st)
{
	unsigned char *buf = o->buf;
	uint64_t p = 0;
	int ret;

	gm__copy_from_guest(buf, (const unsigned char *)r->host + first * SNAP_PAGE,
			    (size_t)(n * SNAP_PAGE));
	while (p < n) {
		bool zero;
		uint64_t q = gm__zero_run(buf, p, n, &zero);

		if (zero)
			ret = mig_send_record(o, MIG_ZERO, (uint32_t)(q - p),
					      r->gpa + (first + p) * SNAP_PAGE, NULL, 0);
		else
			ret = mig_send_record(o, MIG_PAGES, (uint32_t)(q - p),
					      r->gpa + (first + p) * SNAP_PAGE, buf + p * SNAP_PAGE,
					      (uint32_t)((q - p) * SNAP_PAGE));
		if (ret)
			return ret;
		st->pages += q - p;
		if (zero)
			st->zero_pages += q - p;
		p = q;
	}
	return 0;
}

/* One round: every page (@all) or the pages dirty at the last collect. */
static int mig_send_round(struct mig_stream *o, struct view_regions *v, bool all, unsigned round,
			  struct gm_migrate_stats *st, const struct gm_migrate_opts *opts)
{
	struct progress pr = {.fn = opts->progress, .opaque = opts->opaque};
	uint64_t before = st->pages;
	int ret;

	for (size_t i = 0; i < v->n; i++)
		pr.total += v->r[i].size;
	for (size_t i = 0; i < v->n; i++) {
		uint64_t npages = v->r[i].size / SNAP_PAGE, p = 0;

		/* Regions without a bitmap go in the first round only. */
		if (!all && v->dirty_of[i] == SIZE_MAX)
			continue;
		while (p < npages) {
			uint64_t q = p;

			if (!all && !gm__view_page_dirty(v, i, p)) {
				p++;
				continue;
			}
			while (q < npages && q - p < MIG_MAX_PAGES &&
			       (all || gm__view_page_dirty(v, i, q)))
				q++;
			ret = mig_send_pages(o, &v->r[i], p, q - p, st);
			if (ret)
				return ret;
			p = q;
		}
		ret = gm__progress_add(&pr, v->r[i].size);
		if (ret)
			return ret;
	}
	st->rounds++;
	st->final_pages = st->pages - before;
	return mig_send_record(o, MIG_ROUND, 0, round, NULL, 0);
}

/* Pages found dirty at the last collect, in the regions that have a bitmap. */
static uint64_t view_dirty_count(const struct view_regions *v)
{
	uint64_t n = 0;

	for (size_t i = 0; i < v->n; i++) {
		if (v->dirty_of[i] == SIZE_MAX)
			continue;
		for (uint64_t p = 0; p < v->r[i].size / SNAP_PAGE; p++)
			n += gm__view_page_dirty(v, i, p);
	}
	return n;
}

static int mig_check_record(const unsigned char *h, const void *payload, uint32_t len,
			    XXH3_state_t *state)
{
	return mig_record_sum(state, h, payload, len) == get_le64(h + 24) ? 0 : -EBADMSG;
}

/*
 * On a socket the receiver answers END with ACK, so a sender whose stream
 * was cut after its last write still learns that the migration failed.
 */
static int mig_wait_ack(int fd, uint64_t pages)
{
	struct snap_io io = {.fd = fd, .off = SNAP_STREAM};
	unsigned char h[MIG_HDR];
	XXH3_state_t *state;
	int ret;

	ret = gm__read_full(&io, h, sizeof(h));
	if (ret)
		return ret;
	state = XXH3_createState();
	if (state == NULL)
		return -ENOMEM;
	ret = mig_check_record(h, NULL, 0, state);
	XXH3_freeState(state);
	if (ret == 0 &&
	    (get_le32(h) != MIG_MAGIC || get_le32(h + 4) != MIG_ACK || get_le32(h + 8) != 0 ||
	     get_le32(h + 12) != 0 || get_le64(h + 16) != pages))
		ret = -EBADMSG;
	return ret;
}

/* Let the caller merge a hypervisor's dirty log before a collect. */
static int mig_sync(const struct gm_migrate_opts *opts)
{
	int ret;

	if (opts->sync_dirty == NULL)
		return 0;
	ret = opts->sync_dirty(opts->opaque);
	return ret < 0 ? ret : ret > 0 ? -ECANCELED : 0;
}

int gm_migrate_send(const struct gm_memory *m, int fd, const struct gm_migrate_opts *opts,
		    struct gm_migrate_stats *stats)
{
	struct gm_migrate_stats st = {0};
	struct gm_migrate_opts mo;
	struct mig_stream o;
	unsigned max_rounds;
	uint64_t stop;
	struct view_regions v;
	unsigned char *hello = NULL;
	size_t hello_len;
	unsigned round = 1;
	int ret;

	if (m == NULL || fd < 0 || (stats && gm__abi_check_out(stats)))
		return -EINVAL;
	/* From here on only the library's copy of the options is read. */
	ret = GM_ABI_COPY_IN(&mo, opts);
	if (ret)
		return ret;
	opts = &mo;
	max_rounds = mo.max_rounds ? mo.max_rounds : 8;
	stop = mo.stop_pages ? mo.stop_pages : 64;
	ret = gm__view_regions_get(m, &v);
	if (ret)
		return ret;
	ret = mig_stream_open(&o, fd);
	hello_len = 16 + 16 * v.n;
	hello = calloc(1, hello_len);
	if (ret == 0 && hello == NULL)
		ret = -ENOMEM;
	if (ret)
		goto out;
	put_le32(hello, MIG_VERSION);
	put_le32(hello + 4, SNAP_PAGE);
	put_le32(hello + 8, (uint32_t)v.n);
	for (size_t i = 0; i < v.n; i++) {
		put_le64(hello + 16 + 16 * i, v.r[i].gpa);
		put_le64(hello + 24 + 16 * i, v.r[i].size);
	}
	ret = mig_send_record(&o, MIG_HELLO, 0, 0, hello, (uint32_t)hello_len);
	if (ret)
		goto out;
	/* Track from here on; what the first round sends is the baseline. */
	for (size_t i = 0; i < v.ndirty; i++)
		gm_dirty_set_enabled(v.dirty[i].d, true);
	ret = mig_sync(opts);
	if (ret == 0)
		ret = gm__view_collect_dirty(&v, false);
	if (ret == 0)
		ret = mig_send_round(&o, &v, true, round, &st, opts);
	while (ret == 0) {
		ret = mig_sync(opts);
		if (ret == 0)
			ret = gm__view_collect_dirty(&v, false);
		if (ret)
			break;
		if (view_dirty_count(&v) <= stop || round > max_rounds)
			break;
		ret = mig_send_round(&o, &v, false, ++round, &st, opts);
	}
	if (ret)
		goto out;
	/* Final round: writers are stopped, so what is dirty now is all that is left. */
	if (mo.before_final && mo.before_final(mo.opaque)) {
		ret = -ECANCELED;
		goto out;
	}
	/* The pages found dirty by the last check are sent too: merge both collects. */
	ret = mig_sync(opts);
	if (ret == 0)
		ret = gm__view_collect_dirty(&v, true);
	if (ret)
		goto out;
	ret = mig_send_round(&o, &v, false, ++round, &st, opts);
	if (ret == 0)
		ret = mig_send_record(&o, MIG_END, 0, st.pages, NULL, 0);
	if (ret == 0 && !o.io.not_socket)
		ret = mig_wait_ack(fd, st.pages);
out:
	mig_stream_close(&o, &st, stats);
	free(hello);
	gm__view_regions_free(&v);
	return ret;
}

/*
 * Answer END with ACK on a socket. Other fds have no way back: a pipe's
 * read end cannot be written, and a file opened read-write (a recorded
 * stream) must not be. The sender learns of a failure by the missing ACK,
 * so a failure to send one is not the receiver's error.
 */
static void mig_ack(int fd, uint64_t pages, XXH3_state_t *state)
{
	struct mig_stream o = {.io = {.fd = fd, .off = SNAP_STREAM}, .state = state};
	struct stat st;

	if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
		mig_send_record(&o, MIG_ACK, 0, pages, NULL, 0);
}

/* What the receiver has learnt so far: the state every record handler works on. */
struct mig_rx {
	const struct gm_memory *m;
	bool hello;	   /* HELLO applied */
	uint32_t nregions; /* the regions HELLO announced */
	struct gm_range *layout;
	struct gm_migrate_stats st;
};

/* A checked record's header fields and payload, as the handlers see them. */
struct mig_record {
	uint32_t count, len;
	uint64_t arg;
	const unsigned char *payload;
};

static int mig_apply_hello(struct mig_rx *rx, const struct mig_record *rec)
{
	const unsigned char *buf = rec->payload;
	uint32_t n = get_le32(buf + 8);

	if (get_le32(buf) != MIG_VERSION || get_le32(buf + 4) != SNAP_PAGE)
		return -ENOTSUP;
	if (n == 0 || n > SNAP_MAX_REGIONS || (uint64_t)n * 16 + 16 != rec->len ||
	    get_le32(buf + 12) != 0)
		return -EBADMSG;
	rx->layout = calloc(n, sizeof(*rx->layout));
	if (rx->layout == NULL)
		return -ENOMEM;
	rx->nregions = n;
	for (uint32_t i = 0; i < n; i++) {
		struct gm_range *r = &rx->layout[i];
		gm_gpa_t last;

		r->gpa = get_le64(buf + 16 + 16 * i);
		r->size = get_le64(buf + 24 + 16 * i);
		if (!gm_is_aligned(r->gpa, SNAP_PAGE) || !gm_is_aligned(r->size, SNAP_PAGE) ||
		    gm_range_last(r->gpa, r->size, &last))
			return -EBADMSG;
	}
	/* Every announced region must land in our RAM, before any page. */
	for (uint32_t i = 0; i < n; i++) {
		int ret = gm__check_restorable(rx->m, rx->layout[i].gpa, rx->layout[i].size);

		if (ret)
			return ret;
	}
	rx->hello = true;
	return 0;
}

/* Whether the record's pages lie page aligned inside one announced region. */
static bool mig_pages_inside(const struct mig_rx *rx, const struct mig_record *rec)
{
	uint64_t size = (uint64_t)rec->count * SNAP_PAGE;

	if (!gm_is_aligned(rec->arg, SNAP_PAGE))
		return false;
	for (uint32_t i = 0; i < rx->nregions; i++)
		if (gm_range_contains(rx->layout[i].gpa, rx->layout[i].size, rec->arg, size))
			return true;
	return false;
}

static int mig_apply_pages(struct mig_rx *rx, const struct mig_record *rec)
{
	int ret;

	if (!mig_pages_inside(rx, rec))
		return -EBADMSG;
	ret = gm__restore_bytes(rx->m, rec->arg, rec->payload, rec->len);
	if (ret == 0)
		rx->st.pages += rec->count;
	return ret;
}

static int mig_apply_zero(struct mig_rx *rx, const struct mig_record *rec)
{
	size_t zlen;
	int ret;

	if (!mig_pages_inside(rx, rec))
		return -EBADMSG;
	ret = gm_u64_to_size((uint64_t)rec->count * SNAP_PAGE, &zlen);
	if (ret == 0)
		ret = gm__restore_bytes(rx->m, rec->arg, NULL, zlen);
	rx->st.zero_pages += rec->count; /* counted even when applying failed */
	if (ret == 0)
		rx->st.pages += rec->count;
	return ret;
}

static int mig_apply_round(struct mig_rx *rx, const struct mig_record *rec)
{
	(void)rec;
	rx->st.rounds++;
	return 0;
}

/* END carries the sender's page count: a stream that lost records ends -EBADMSG. */
static int mig_apply_end(struct mig_rx *rx, const struct mig_record *rec)
{
	return rec->arg == rx->st.pages ? 0 : -EBADMSG;
}

/*
 * The records the receiver accepts, one row per type (docs/snapshot-format.md).
 * gm_migrate_recv() checks a header against its row before the record's len
 * sizes a read: count in [min_count, max_count]; len is len_fixed +
 * count * len_per_page, plus any multiple of len_step when that is not 0.
 * A type without a row (ACK included) is -EBADMSG.
 */
struct mig_rule {
	uint32_t type;
	bool first; /* the first record and only that one */
	bool last;  /* the stream ends after it (answered with ACK on a socket) */
	uint32_t min_count, max_count;
	uint32_t len_fixed, len_per_page, len_step;
	int (*apply)(struct mig_rx *rx, const struct mig_record *rec);
};

static const struct mig_rule mig_rules[] = {
    /* type, first, last, min/max count, len fixed/per page/step, apply */
    {MIG_HELLO, true, false, 0, UINT32_MAX, 16, 0, 16, mig_apply_hello}, /* count unchecked */
    {MIG_PAGES, false, false, 1, MIG_MAX_PAGES, 0, SNAP_PAGE, 0, mig_apply_pages},
    {MIG_ZERO, false, false, 1, MIG_MAX_ZERO, 0, 0, 0, mig_apply_zero},
    {MIG_ROUND, false, false, 0, 0, 0, 0, 0, mig_apply_round},
    {MIG_END, false, true, 0, 0, 0, 0, 0, mig_apply_end},
};

/*
 * The row that accepts record header @h, checked against it (magic, len
 * bound, the row's rules; @hello: HELLO was applied), or NULL: -EBADMSG.
 */
static const struct mig_rule *mig_rule_of(const unsigned char *h, bool hello)
{
	uint32_t type = get_le32(h + 4), count = get_le32(h + 8), len = get_le32(h + 12);
	const struct mig_rule *r = NULL;
	uint64_t want;

	if (get_le32(h) != MIG_MAGIC || len > MIG_MAX_PAGES * SNAP_PAGE)
		return NULL;
	for (size_t i = 0; i < sizeof(mig_rules) / sizeof(mig_rules[0]) && r == NULL; i++)
		if (mig_rules[i].type == type)
			r = &mig_rules[i];
	if (r == NULL || r->first == hello || count < r->min_count || count > r->max_count)
		return NULL;
	want = r->len_fixed + (uint64_t)count * r->len_per_page;
	if (r->len_step == 0 ? len != want : (len < want || (len - want) % r->len_step != 0))
		return NULL;
	return r;
}

int gm_migrate_recv(const struct gm_memory *m, int fd, const struct gm_migrate_opts *opts,
		    struct gm_migrate_stats *stats)
{
	struct mig_rx rx = {.m = m};
	struct gm_migrate_opts mo;
	struct mig_stream in;
	int ret;

	if (m == NULL || fd < 0 || (stats && gm__abi_check_out(stats)))
		return -EINVAL;
	ret = GM_ABI_COPY_IN(&mo, opts); /* no option applies to the receiver yet */
	if (ret)
		return ret;
	ret = mig_stream_open(&in, fd);
	while (ret == 0) {
		unsigned char h[MIG_HDR];
		const struct mig_rule *rule;
		struct mig_record rec;

		ret = gm__read_full(&in.io, h, sizeof(h));
		if (ret)
			break;
		/* Check the header before trusting its len to size a read. */
		rule = mig_rule_of(h, rx.hello);
		if (rule == NULL) {
			ret = -EBADMSG;
			break;
		}
		rec = (struct mig_record){
		    .count = get_le32(h + 8),
		    .len = get_le32(h + 12),
		    .arg = get_le64(h + 16),
		    .payload = in.buf,
		};
		ret = gm__read_full(&in.io, in.buf, rec.len);
		if (ret == 0)
			ret = mig_check_record(h, in.buf, rec.len, in.state);
		if (ret == 0)
			ret = rule->apply(&rx, &rec);
		if (ret == 0 && rule->last) {
			mig_ack(fd, rec.arg, in.state);
			break;
		}
	}
	mig_stream_close(&in, &rx.st, stats);
	free(rx.layout);
	return ret;
}
