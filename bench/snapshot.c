/* SPDX-License-Identifier: MIT */
/*
 * snapshot.c - snapshot save/restore and migration, beside the disk and cp.
 *
 * For each RAM size (default 1 and 2 GiB) and share of non-zero pages (0,
 * 10, 100 %): a full save (fsync included), a copy restore into the same
 * memory, a private-mapping restore with every page read, a lazy restore
 * with every page read, each in GiB/s of guest RAM; beside them, in the
 * same run, `cp` of the snapshot file followed by `sync` of the copy, and
 * the disk itself: a 1 GiB sequential write + fsync and an O_DIRECT read of
 * it. Then the time from gm_snapshot_open() to the first guest read after
 * a lazy and a private-mapping restore of a large guest (default 8 GiB,
 * 10 % data; target < 10 ms), and pre-copy migration rounds and bytes over
 * a socketpair with a writer dirtying pages at a fixed rate.
 *
 *   gm-bench-snapshot [--sizes 1,2] [--sparse-sizes 8] [--first-access-gib 8] [--dir DIR]
 *
 * --sparse-sizes runs only the 0 % and 10 % cases (a 100 % guest of that
 * size would need its size in RAM three times over: guest, page cache, cp).
 *
 * Page-cache state: the snapshot was just written, so restores read from
 * the page cache (what a restore right after a save sees); the O_DIRECT
 * read gives the cold-disk figure beside it. Caches are not dropped: the
 * machine is shared.
 */
#include <guestmem/guestmem.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GiB ((uint64_t)1 << 30)
#define MiB ((uint64_t)1 << 20)

static const char *dir = "/var/tmp";

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static _Noreturn void die(const char *what, int err)
{
	fprintf(stderr, "gm-bench-snapshot: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* Make @percent % of the pages of @m non-zero (spread evenly). */
static void fill(struct gm_memory *m, uint64_t size, unsigned percent)
{
	unsigned char *host = gm_host_ptr(m, 0, (size_t)size);

	for (uint64_t p = 0; p < size / GM_PAGE_SIZE; p++)
		if (p * percent / 100 != (p + 1) * percent / 100)
			memset(host + p * GM_PAGE_SIZE, (int)(p % 251) + 1, GM_PAGE_SIZE);
}

/* Read one word of every page (the work a guest touching all memory does). */
static void touch_all(const struct gm_memory *m, uint64_t size)
{
	volatile uint64_t sink = 0;

	for (uint64_t gpa = 0; gpa < size; gpa += GM_PAGE_SIZE) {
		uint64_t v;

		gm_read_u64(m, gpa, &v);
		sink += v;
	}
	(void)sink;
}

static double run_cmd(const char *cmd)
{
	double t = now_s();

	if (system(cmd) != 0)
		die(cmd, EIO);
	return now_s() - t;
}

/* The disk: 1 GiB sequential write + fsync, then an O_DIRECT read of it. */
static void disk_baseline(double *write_gibs, double *read_gibs)
{
	char path[512];
	size_t blk = 8 * MiB;
	unsigned char *buf;
	double t;
	int fd;

	snprintf(path, sizeof(path), "%s/gm-bench-disk", dir);
	if (posix_memalign((void **)&buf, 4096, blk))
		die("posix_memalign", ENOMEM);
	memset(buf, 0x5a, blk);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die(path, errno);
	t = now_s();
	for (uint64_t done = 0; done < GiB; done += blk)
		if (write(fd, buf, blk) != (ssize_t)blk)
			die("write", errno);
	if (fsync(fd))
		die("fsync", errno);
	*write_gibs = 1.0 / (now_s() - t);
	close(fd);
	fd = open(path, O_RDONLY | O_DIRECT);
	if (fd < 0)
		die(path, errno);
	t = now_s();
	for (uint64_t done = 0; done < GiB; done += blk)
		if (read(fd, buf, blk) != (ssize_t)blk)
			die("read", errno);
	*read_gibs = 1.0 / (now_s() - t);
	close(fd);
	unlink(path);
	free(buf);
}

static void bench_size(uint64_t size, unsigned percent, double disk_w, double disk_r)
{
	const struct gm_range r = {0, size};
	char path[512], copy[512], cmd[1600];
	struct gm_memory *m, *got;
	struct gm_snapshot *s;
	double gib = (double)size / (double)GiB, t, save, cp, rest, priv, lazy;
	struct stat st;
	int ret;

	snprintf(path, sizeof(path), "%s/gm-bench-snap", dir);
	snprintf(copy, sizeof(copy), "%s/gm-bench-snap.cp", dir);
	ret = gm_memory_new_anon(&r, 1, &m);
	if (ret)
		die("gm_memory_new_anon", ret);
	fill(m, size, percent);

	t = now_s();
	ret = gm_snapshot_save(m, path, NULL);
	save = now_s() - t;
	if (ret)
		die("gm_snapshot_save", ret);
	stat(path, &st);

	/* cp of the same (sparse) file, made durable like the save. */
	snprintf(cmd, sizeof(cmd), "cp --sparse=auto '%s' '%s' && sync '%s'", path, copy, copy);
	cp = run_cmd(cmd);
	unlink(copy);

	ret = gm_snapshot_open(path, 0, &s);
	if (ret)
		die("gm_snapshot_open", ret);
	t = now_s();
	ret = gm_snapshot_restore(s, m, NULL);
	rest = now_s() - t;
	if (ret)
		die("gm_snapshot_restore", ret);

	t = now_s();
	ret = gm_snapshot_restore_new(s, GM_RESTORE_PRIVATE, NULL, &got);
	if (ret)
		die("restore private", ret);
	touch_all(got, size);
	priv = now_s() - t;
	gm_memory_put(got);

	lazy = -1;
	if (gm_snapshot_lazy_supported() == 0) {
		t = now_s();
		ret = gm_snapshot_restore_new(s, GM_RESTORE_LAZY, NULL, &got);
		if (ret)
			die("restore lazy", ret);
		touch_all(got, size);
		lazy = now_s() - t;
		gm_memory_put(got);
	}
	gm_snapshot_close(s);
	gm_memory_put(m);
	unlink(path);

	printf("%4.0f GiB %3u%%  file %6.0f MiB on disk | save %6.2f GiB/s  cp+sync %6.2f GiB/s  "
	       "(save/cp %5.2f) | restore: copy %6.2f  private %6.2f  lazy %6.2f GiB/s | "
	       "disk w %.2f r %.2f GiB/s\n",
	       gib, percent, (double)st.st_blocks * 512 / (double)MiB, gib / save, gib / cp,
	       cp / save, gib / rest, gib / priv, lazy > 0 ? gib / lazy : 0.0, disk_w, disk_r);
	fflush(stdout);
}

/* Time from open to the first guest read after a lazy / private restore. */
static void first_access(uint64_t size)
{
	const struct gm_range r = {0, size};
	const enum gm_restore_mode modes[] = {GM_RESTORE_LAZY, GM_RESTORE_PRIVATE};
	const char *names[] = {"lazy (userfaultfd)", "private mapping"};
	struct gm_memory *m, *got;
	char path[512];
	int ret;

	snprintf(path, sizeof(path), "%s/gm-bench-first", dir);
	ret = gm_memory_new_anon(&r, 1, &m);
	if (ret)
		die("gm_memory_new_anon", ret);
	fill(m, size, 10);
	ret = gm_snapshot_save(m, path, NULL);
	if (ret)
		die("gm_snapshot_save", ret);
	gm_memory_put(m);
	for (int i = 0; i < 2; i++) {
		struct gm_snapshot *s;
		double t0, t1, t2;
		uint64_t v;

		if (modes[i] == GM_RESTORE_LAZY && gm_snapshot_lazy_supported() != 0) {
			printf("first access, %s: skipped: userfaultfd unavailable\n", names[i]);
			continue;
		}
		t0 = now_s();
		ret = gm_snapshot_open(path, 0, &s);
		if (ret == 0)
			ret = gm_snapshot_restore_new(s, modes[i], NULL, &got);
		if (ret)
			die("restore", ret);
		t1 = now_s();
		/* A page in the middle that holds data. */
		gm_read_u64(got, size / 2 + 9 * GM_PAGE_SIZE, &v);
		t2 = now_s();
		printf("first access after %s restore of %.0f GiB: %.2f ms (open+map %.2f ms, "
		       "first read %.3f ms; target 10 ms)\n",
		       names[i], (double)size / (double)GiB, (t2 - t0) * 1e3, (t1 - t0) * 1e3,
		       (t2 - t1) * 1e3);
		gm_memory_put(got);
		gm_snapshot_close(s);
	}
	unlink(path);
}

struct dirtier {
	const struct gm_memory *m;
	uint64_t size, rate; /* pages per second */
	int stop;
	pthread_t th;
};

static void *dirty_loop(void *arg)
{
	struct dirtier *d = arg;
	uint64_t x = 88172645463325252ull, n = 0;
	double t0 = now_s();

	while (!__atomic_load_n(&d->stop, __ATOMIC_RELAXED)) {
		/* Stay on schedule: n pages by now * rate. */
		if ((double)n > (now_s() - t0) * (double)d->rate) {
			struct timespec ts = {0, 200000};

			nanosleep(&ts, NULL);
			continue;
		}
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		gm_write_u64(d->m, (x % (d->size / GM_PAGE_SIZE)) * GM_PAGE_SIZE, n++);
	}
	return NULL;
}

static struct dirtier dirtier;

static int stop_dirtier(void *opaque)
{
	(void)opaque;
	__atomic_store_n(&dirtier.stop, 1, __ATOMIC_RELAXED);
	pthread_join(dirtier.th, NULL);
	return 0;
}

struct recv_arg {
	const struct gm_memory *m;
	int fd, ret;
};

static void *recv_main(void *arg)
{
	struct recv_arg *r = arg;

	r->ret = gm_migrate_recv(r->m, r->fd, NULL, NULL);
	return NULL;
}

static void migration(uint64_t size, uint64_t rate)
{
	const struct gm_range r = {0, size};
	struct gm_migrate_opts o = GM_OPTS(gm_migrate_opts, .max_rounds = 20, .stop_pages = 256,
					   .before_final = stop_dirtier);
	struct gm_region_spec spec = {.gpa = 0, .size = size};
	struct gm_migrate_stats st = GM_OPTS(gm_migrate_stats);
	struct gm_memory *src, *dst;
	struct gm_dirty *d;
	struct recv_arg ra;
	pthread_t th;
	double t;
	int sv[2], ret;

	if (gm_mapping_new_anon((size_t)size, 0, &spec.mapping) || gm_dirty_new(size, &d))
		die("mapping", ENOMEM);
	spec.dirty = d;
	if (gm_memory_new(&spec, 1, &src) || gm_memory_new_anon(&r, 1, &dst))
		die("memory", ENOMEM);
	fill(src, size, 50);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		die("socketpair", errno);
	ra = (struct recv_arg){.m = dst, .fd = sv[1]};
	dirtier = (struct dirtier){.m = src, .size = size, .rate = rate};
	pthread_create(&dirtier.th, NULL, dirty_loop, &dirtier);
	pthread_create(&th, NULL, recv_main, &ra);
	t = now_s();
	ret = gm_migrate_send(src, sv[0], &o, &st);
	t = now_s() - t;
	pthread_join(th, NULL);
	if (ret || ra.ret)
		die("migration", ret ? ret : ra.ret);
	printf("migration of %.0f MiB (50%% non-zero) while dirtying %llu pages/s: %u rounds, "
	       "%.1f MiB sent (%.2fx RAM), final round %llu pages, %.2f s\n",
	       (double)size / (double)MiB, (unsigned long long)rate, st.rounds,
	       (double)st.bytes / (double)MiB, (double)st.bytes / (double)size,
	       (unsigned long long)st.final_pages, t);
	close(sv[0]);
	close(sv[1]);
	gm_memory_put(src);
	gm_memory_put(dst);
	gm_mapping_put(spec.mapping);
	gm_dirty_put(d);
}

int main(int argc, char **argv)
{
	uint64_t sizes[8] = {1, 2}, sparse[8] = {0}, first_gib = 8;
	size_t nsizes = 2, nsparse = 0;
	double disk_w, disk_r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
			char *p = argv[++i];

			nsizes = 0;
			while (*p && nsizes < 8) {
				sizes[nsizes++] = strtoull(p, &p, 10);
				if (*p == ',')
					p++;
			}
		} else if (!strcmp(argv[i], "--sparse-sizes") && i + 1 < argc) {
			char *p = argv[++i];

			while (*p && nsparse < 8) {
				sparse[nsparse++] = strtoull(p, &p, 10);
				if (*p == ',')
					p++;
			}
		} else if (!strcmp(argv[i], "--first-access-gib") && i + 1 < argc) {
			first_gib = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			dir = argv[++i];
		} else {
			fprintf(stderr, "usage: gm-bench-snapshot [--sizes 1,2] [--sparse-sizes 8] "
					"[--first-access-gib 8] [--dir DIR]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	disk_baseline(&disk_w, &disk_r);
	printf("disk (%s): write+fsync %.2f GiB/s, O_DIRECT read %.2f GiB/s\n", dir, disk_w,
	       disk_r);
	for (size_t i = 0; i < nsizes; i++) {
		const unsigned pct[] = {0, 10, 100};

		for (int j = 0; j < 3 && sizes[i] > 0; j++)
			bench_size(sizes[i] * GiB, pct[j], disk_w, disk_r);
	}
	for (size_t i = 0; i < nsparse; i++)
		for (int j = 0; j < 2 && sparse[i] > 0; j++)
			bench_size(sparse[i] * GiB, j * 10u, disk_w, disk_r);
	if (first_gib)
		first_access(first_gib * GiB);
	migration(256 * MiB, 2000);
	migration(256 * MiB, 20000);
	return 0;
}
