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
 * (after answering ACK on a socket).
 */
#include "snapshot-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

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

struct mig_out {
	int fd;
	bool not_socket;
	uint64_t bytes;
	XXH3_state_t *state;
};

static int mig_write(struct mig_out *o, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	while (len > 0) {
		ssize_t n;

		if (!o->not_socket) {
			n = send(o->fd, p, len, MSG_NOSIGNAL);
			if (n < 0 && errno == ENOTSOCK) {
				o->not_socket = true;
				continue;
			}
		} else {
			n = write(o->fd, p, len);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		o->bytes += (uint64_t)n;
	}
	return 0;
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

static int mig_send_record(struct mig_out *o, unsigned type, uint32_t count, uint64_t arg,
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
	ret = mig_write(o, h, sizeof(h));
	if (ret == 0 && len)
		ret = mig_write(o, payload, len);
	return ret;
}

/*
 * Send pages [first, first + n) of region @r (n <= MIG_MAX_PAGES) as
 * ZERO and PAGES records, copying them first so the checksum matches what
 * is sent even while the guest writes.
 */
static int mig_send_pages(struct mig_out *o, const struct gm_region_info *r, uint64_t first,
			  uint64_t n, unsigned char *buf, struct gm_migrate_stats *st)
{
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
static int mig_send_round(struct mig_out *o, struct view_regions *v, bool all, unsigned round,
			  unsigned char *buf, struct gm_migrate_stats *st,
			  const struct gm_migrate_opts *opts)
{
	struct progress pr = {0};
	uint64_t before = st->pages;
	int ret;

	if (opts) {
		pr.fn = opts->progress;
		pr.opaque = opts->opaque;
	}
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
			ret = mig_send_pages(o, &v->r[i], p, q - p, buf, st);
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
	unsigned char h[MIG_HDR];
	XXH3_state_t *state;
	size_t got = 0;
	int ret;

	while (got < sizeof(h)) {
		ssize_t n = recv(fd, h + got, sizeof(h) - got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		got += (size_t)n;
	}
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

	if (opts == NULL || opts->sync_dirty == NULL)
		return 0;
	ret = opts->sync_dirty(opts->opaque);
	return ret < 0 ? ret : ret > 0 ? -ECANCELED : 0;
}

int gm_migrate_send(const struct gm_memory *m, int fd, const struct gm_migrate_opts *opts,
		    struct gm_migrate_stats *stats)
{
	struct gm_migrate_stats st = {0};
	struct mig_out o = {.fd = fd};
	unsigned max_rounds = opts && opts->max_rounds ? opts->max_rounds : 8;
	uint64_t stop = opts && opts->stop_pages ? opts->stop_pages : 64;
	struct view_regions v;
	unsigned char *hello = NULL, *buf = NULL;
	size_t hello_len;
	unsigned round = 1;
	int ret;

	if (m == NULL || fd < 0)
		return -EINVAL;
	ret = gm__view_regions_get(m, &v);
	if (ret)
		return ret;
	o.state = XXH3_createState();
	hello_len = 16 + 16 * v.n;
	hello = calloc(1, hello_len);
	buf = malloc(MIG_MAX_PAGES * SNAP_PAGE);
	if (o.state == NULL || hello == NULL || buf == NULL) {
		ret = -ENOMEM;
		goto out;
	}
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
		ret = mig_send_round(&o, &v, true, round, buf, &st, opts);
	while (ret == 0) {
		ret = mig_sync(opts);
		if (ret == 0)
			ret = gm__view_collect_dirty(&v, false);
		if (ret)
			break;
		if (view_dirty_count(&v) <= stop || round > max_rounds)
			break;
		ret = mig_send_round(&o, &v, false, ++round, buf, &st, opts);
	}
	if (ret)
		goto out;
	/* Final round: writers are stopped, so what is dirty now is all that is left. */
	if (opts && opts->before_final && opts->before_final(opts->opaque)) {
		ret = -ECANCELED;
		goto out;
	}
	/* The pages found dirty by the last check are sent too: merge both collects. */
	ret = mig_sync(opts);
	if (ret == 0)
		ret = gm__view_collect_dirty(&v, true);
	if (ret)
		goto out;
	ret = mig_send_round(&o, &v, false, ++round, buf, &st, opts);
	if (ret == 0)
		ret = mig_send_record(&o, MIG_END, 0, st.pages, NULL, 0);
	if (ret == 0 && !o.not_socket)
		ret = mig_wait_ack(fd, st.pages);
out:
	st.bytes = o.bytes;
	if (stats)
		*stats = st;
	if (o.state)
		XXH3_freeState(o.state);
	free(hello);
	free(buf);
	gm__view_regions_free(&v);
	return ret;
}

struct mig_in {
	int fd;
	uint64_t bytes;
	XXH3_state_t *state;
};

/* Read exactly @len bytes; a stream that ends first is -EPIPE. */
static int mig_read(struct mig_in *in, void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		ssize_t n = read(in->fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
		in->bytes += (uint64_t)n;
	}
	return 0;
}

/*
 * Answer END with ACK on a socket. Other fds have no way back: a pipe's
 * read end cannot be written, and a file opened read-write (a recorded
 * stream) must not be. The sender learns of a failure by the missing ACK,
 * so a failure to send one is not the receiver's error.
 */
static void mig_ack(int fd, uint64_t pages, XXH3_state_t *state)
{
	struct mig_out o = {.fd = fd, .state = state};
	struct stat st;

	if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
		mig_send_record(&o, MIG_ACK, 0, pages, NULL, 0);
}

int gm_migrate_recv(const struct gm_memory *m, int fd, const struct gm_migrate_opts *opts,
		    struct gm_migrate_stats *stats)
{
	struct gm_migrate_stats st = {0};
	struct mig_in in = {.fd = fd};
	struct gm_range *layout = NULL;
	unsigned char *buf = NULL;
	uint32_t nregions = 0;
	bool hello = false;
	int ret;

	(void)opts;
	if (m == NULL || fd < 0)
		return -EINVAL;
	in.state = XXH3_createState();
	buf = malloc(MIG_MAX_PAGES * SNAP_PAGE);
	if (in.state == NULL || buf == NULL) {
		ret = -ENOMEM;
		goto out;
	}
	for (;;) {
		unsigned char h[MIG_HDR];
		uint32_t type, count, len;
		uint64_t arg, size;

		ret = mig_read(&in, h, sizeof(h));
		if (ret)
			goto out;
		type = get_le32(h + 4);
		count = get_le32(h + 8);
		len = get_le32(h + 12);
		arg = get_le64(h + 16);
		/* Check the header before trusting @len to size a read. */
		ret = -EBADMSG;
		if (get_le32(h) != MIG_MAGIC || len > MIG_MAX_PAGES * SNAP_PAGE)
			goto out;
		if ((type == MIG_HELLO) != !hello)
			goto out;
		switch (type) {
		case MIG_HELLO:
			if (len < 16 || (len - 16) % 16 != 0)
				goto out;
			break;
		case MIG_PAGES:
			if (count == 0 || count > MIG_MAX_PAGES || len != count * SNAP_PAGE)
				goto out;
			break;
		case MIG_ZERO:
			if (count == 0 || count > MIG_MAX_ZERO || len != 0)
				goto out;
			break;
		case MIG_ROUND:
		case MIG_END:
			if (count != 0 || len != 0)
				goto out;
			break;
		default:
			goto out;
		}
		ret = mig_read(&in, buf, len);
		if (ret)
			goto out;
		ret = mig_check_record(h, buf, len, in.state);
		if (ret)
			goto out;
		switch (type) {
		case MIG_HELLO:
			ret = -ENOTSUP;
			if (get_le32(buf) != MIG_VERSION || get_le32(buf + 4) != SNAP_PAGE)
				goto out;
			ret = -EBADMSG;
			nregions = get_le32(buf + 8);
			if (nregions == 0 || nregions > SNAP_MAX_REGIONS ||
			    (uint64_t)nregions * 16 + 16 != len || get_le32(buf + 12) != 0)
				goto out;
			layout = calloc(nregions, sizeof(*layout));
			if (layout == NULL) {
				ret = -ENOMEM;
				goto out;
			}
			for (uint32_t i = 0; i < nregions; i++) {
				gm_gpa_t last;

				layout[i].gpa = get_le64(buf + 16 + 16 * i);
				layout[i].size = get_le64(buf + 24 + 16 * i);
				if (!gm_is_aligned(layout[i].gpa, SNAP_PAGE) ||
				    !gm_is_aligned(layout[i].size, SNAP_PAGE) ||
				    gm_range_last(layout[i].gpa, layout[i].size, &last))
					goto out;
			}
			/* Every announced region must land in our RAM, before any page. */
			for (uint32_t i = 0; i < nregions; i++) {
				ret = gm__check_restorable(m, layout[i].gpa, layout[i].size);
				if (ret)
					goto out;
			}
			hello = true;
			break;
		case MIG_PAGES:
		case MIG_ZERO: {
			bool inside = false;

			size = (uint64_t)count * SNAP_PAGE;
			ret = -EBADMSG; /* the payload read above set ret to 0 */
			if (!gm_is_aligned(arg, SNAP_PAGE))
				goto out;
			for (uint32_t i = 0; i < nregions && !inside; i++)
				inside =
				    gm_range_contains(layout[i].gpa, layout[i].size, arg, size);
			if (!inside)
				goto out;
			if (type == MIG_PAGES) {
				ret = gm__restore_bytes(m, arg, buf, len);
			} else {
				size_t zlen;

				ret = gm_u64_to_size(size, &zlen);
				if (ret == 0)
					ret = gm__restore_bytes(m, arg, NULL, zlen);
				st.zero_pages += count;
			}
			if (ret)
				goto out;
			st.pages += count;
			break;
		}
		case MIG_ROUND:
			st.rounds++;
			break;
		case MIG_END:
			ret = arg == st.pages ? 0 : -EBADMSG;
			if (ret == 0)
				mig_ack(fd, arg, in.state);
			goto out;
		}
	}
out:
	st.bytes = in.bytes;
	if (stats)
		*stats = st;
	if (in.state)
		XXH3_freeState(in.state);
	free(layout);
	free(buf);
	return ret;
}
