/*
 * gmsnap - look at guestmem snapshot files (docs/snapshot-format.md).
 *
 *   gmsnap info FILE [--alone]   header, chain and regions (--alone: a delta without its base)
 *   gmsnap verify FILE           check every checksum of FILE and its bases
 *   gmsnap diff A B              which guest pages differ between two saved states
 *
 * Exit status: 0 fine / identical, 1 damaged / different, 2 usage or I/O
 * error, or a FILE (or a base it names) that is not a regular file.
 * Everything goes through the public API of <guestmem/snapshot.h>.
 */
#include <guestmem/guestmem.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void print_id(const uint8_t *id)
{
	for (int i = 0; i < 16; i++)
		printf("%02x", id[i]);
}

/* What a file of mode @mode is, for a message that refuses it. */
static const char *file_kind(mode_t mode)
{
	return S_ISDIR(mode)	? "a directory"
	       : S_ISFIFO(mode) ? "a FIFO"
	       : S_ISCHR(mode)	? "a character device"
	       : S_ISBLK(mode)	? "a block device"
	       : S_ISSOCK(mode) ? "a socket"
				: "a special file";
}

/* @dir_of's directory joined with @name, in a new string (NULL: no memory). */
static char *path_beside(const char *dir_of, const char *name)
{
	const char *slash = strrchr(dir_of, '/');
	int dlen = slash ? (int)(slash - dir_of) + 1 : 0;
	size_t len = (size_t)dlen + strlen(name) + 1;
	char *p = malloc(len);

	if (p != NULL)
		snprintf(p, len, "%.*s%s", dlen, dir_of, name);
	return p;
}

/*
 * gm_snapshot_open(@path, @flags) said -EINVAL: @path or a base it names is
 * not a regular file. Say which file and what it is, found with stat(),
 * which neither opens nor blocks, and by opening each delta alone.
 */
static void complain_not_regular(const char *path, unsigned flags)
{
	char *cur = strdup(path);

	for (unsigned depth = 0; cur != NULL && depth < 64; depth++) {
		struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);
		struct gm_snapshot *s;
		struct stat st;
		char *next;

		if (stat(cur, &st) == 0 && !S_ISREG(st.st_mode)) {
			if (depth == 0)
				fprintf(stderr, "gmsnap: %s is %s, not a regular file\n", path,
					file_kind(st.st_mode));
			else
				fprintf(stderr,
					"gmsnap: %s: its base %s is %s, not a regular file\n", path,
					cur, file_kind(st.st_mode));
			free(cur);
			return;
		}
		if ((depth == 0 && (flags & GM_SNAPSHOT_OPEN_NOBASE)) ||
		    gm_snapshot_open(cur, GM_SNAPSHOT_OPEN_NOBASE, &s) != 0)
			break;
		gm_snapshot_describe(s, &info);
		gm_snapshot_close(s);
		if (!(info.flags & GM_SNAPSHOT_DELTA))
			break;
		next = path_beside(cur, info.base_name);
		free(cur);
		cur = next;
	}
	free(cur);
	fprintf(stderr, "gmsnap: %s: it, or a base it names, is not a regular file\n", path);
}

static int open_or_complain(const char *path, unsigned flags, struct gm_snapshot **s)
{
	int ret = gm_snapshot_open(path, flags, s);

	if (ret == 0)
		return 0;
	if (ret == -EINVAL) {
		complain_not_regular(path, flags);
		return 2;
	}
	fprintf(stderr, "gmsnap: %s: %s\n", path,
		ret == -EBADMSG	  ? "not a guestmem snapshot, or damaged"
		: ret == -ESTALE  ? "its base is not the file it was saved against"
		: ret == -ENOTSUP ? "a format version this gmsnap does not read"
				  : strerror(-ret));
	return ret == -EBADMSG || ret == -ESTALE ? 1 : 2;
}

static int cmd_info(const char *path, unsigned flags)
{
	struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);
	struct gm_snapshot *s;
	time_t secs;
	int ret = open_or_complain(path, flags, &s);

	if (ret)
		return ret;
	gm_snapshot_describe(s, &info);
	secs = (time_t)(info.created_ns / 1000000000u);
	printf("file        %s\n", path);
	printf("kind        %s\n", info.flags & GM_SNAPSHOT_DELTA ? "delta" : "full");
	printf("version     %" PRIu32 ", page size %" PRIu32 "\n", info.version, info.page_size);
	printf("id          ");
	print_id(info.id);
	printf("\ncreated     %s", ctime(&secs));
	if (info.flags & GM_SNAPSHOT_DELTA) {
		printf("base        %s (id ", info.base_name);
		print_id(info.base_id);
		printf(")\n");
	}
	printf("chain       %u file(s)\n", info.chain_length);
	printf("file size   %" PRIu64 " bytes\n", info.file_size);
	printf("RAM         %" PRIu64 " bytes in %" PRIu32 " region(s)\n", info.ram_size,
	       info.nregions);
	printf("pages       %" PRIu64 " defined here, %" PRIu64 " stored (the rest zero%s)\n",
	       info.defined_pages, info.data_pages,
	       info.flags & GM_SNAPSHOT_DELTA ? " or from the base" : "");
	for (uint32_t i = 0; i < info.nregions; i++) {
		struct gm_snapshot_region r = GM_OPTS(gm_snapshot_region);

		gm_snapshot_region(s, i, &r);
		printf("  region %-3" PRIu32 " gpa 0x%016" PRIx64 " size 0x%" PRIx64
		       " at file offset 0x%" PRIx64 ": %" PRIu64 " defined, %" PRIu64 " stored\n",
		       i, r.gpa, r.size, r.file_offset, r.defined_pages, r.data_pages);
	}
	gm_snapshot_close(s);
	return 0;
}

static int show_progress(void *opaque, uint64_t done, uint64_t total)
{
	(void)opaque;
	fprintf(stderr, "\rverifying: %3u%%", total ? (unsigned)(done * 100 / total) : 100);
	return 0;
}

static int cmd_verify(const char *path)
{
	struct gm_snapshot_opts opts = GM_OPTS(gm_snapshot_opts, .progress = show_progress);
	struct gm_snapshot *s;
	gm_gpa_t bad = 0;
	int ret = open_or_complain(path, 0, &s);

	if (ret)
		return ret;
	ret = gm_snapshot_verify(s, &opts, &bad);
	fprintf(stderr, "\n");
	gm_snapshot_close(s);
	if (ret == -EBADMSG) {
		printf("%s: DAMAGED: the 2 MiB chunk at guest 0x%" PRIx64 " fails its checksum\n",
		       path, bad);
		return 1;
	}
	if (ret) {
		fprintf(stderr, "gmsnap: %s: %s\n", path, strerror(-ret));
		return 2;
	}
	printf("%s: OK\n", path);
	return 0;
}

/* Print a run of differing pages [first, end) of guest memory. */
static void print_run(gm_gpa_t first, gm_gpa_t end)
{
	printf("  differ: 0x%016" PRIx64 "..0x%016" PRIx64 " (%" PRIu64 " page(s))\n", first,
	       end - 1, (end - first) / GM_PAGE_SIZE);
}

static int cmd_diff(const char *pa, const char *pb)
{
	const size_t chunk = (size_t)2 << 20;
	struct gm_snapshot_info ia = GM_OPTS(gm_snapshot_info), ib = GM_OPTS(gm_snapshot_info);
	struct gm_snapshot *a, *b;
	unsigned char *xa = malloc(chunk), *xb = malloc(chunk);
	uint64_t differ = 0;
	gm_gpa_t run = 0;
	bool in_run = false;
	int ret;

	if (xa == NULL || xb == NULL) {
		fprintf(stderr, "gmsnap: %s\n", strerror(ENOMEM));
		ret = 2;
		goto out_buffers;
	}
	if ((ret = open_or_complain(pa, 0, &a)) != 0)
		goto out_buffers;
	if ((ret = open_or_complain(pb, 0, &b)) != 0) {
		gm_snapshot_close(a);
		goto out_buffers;
	}
	gm_snapshot_describe(a, &ia);
	gm_snapshot_describe(b, &ib);
	ret = 0;
	for (uint32_t i = 0; i < ia.nregions || i < ib.nregions; i++) {
		struct gm_snapshot_region ra = GM_OPTS(gm_snapshot_region),
					  rb = GM_OPTS(gm_snapshot_region);

		if (gm_snapshot_region(a, i, &ra) || gm_snapshot_region(b, i, &rb) ||
		    ra.gpa != rb.gpa || ra.size != rb.size) {
			printf("layouts differ at region %" PRIu32 "\n", i);
			ret = 1;
			goto out;
		}
	}
	for (uint32_t i = 0; i < ia.nregions; i++) {
		struct gm_snapshot_region r = GM_OPTS(gm_snapshot_region);

		gm_snapshot_region(a, i, &r);
		for (uint64_t off = 0; off < r.size; off += chunk) {
			size_t len = r.size - off < chunk ? (size_t)(r.size - off) : chunk;
			int ea = gm_snapshot_read(a, r.gpa + off, xa, len);
			int eb = gm_snapshot_read(b, r.gpa + off, xb, len);

			if (ea || eb) {
				fprintf(stderr, "gmsnap: reading guest 0x%" PRIx64 ": %s\n",
					r.gpa + off, strerror(-(ea ? ea : eb)));
				ret = ea == -EBADMSG || eb == -EBADMSG ? 1 : 2;
				goto out;
			}
			for (size_t p = 0; p < len; p += GM_PAGE_SIZE) {
				gm_gpa_t gpa = r.gpa + off + p;
				bool same = memcmp(xa + p, xb + p, GM_PAGE_SIZE) == 0;

				if (!same && !in_run) {
					run = gpa;
					in_run = true;
				} else if (same && in_run) {
					print_run(run, gpa);
					in_run = false;
				}
				differ += !same;
			}
		}
		if (in_run) {
			print_run(run, r.gpa + r.size);
			in_run = false;
		}
	}
	printf("%" PRIu64 " of %" PRIu64 " pages differ\n", differ, ia.ram_size / GM_PAGE_SIZE);
	ret = differ ? 1 : 0;
out:
	gm_snapshot_close(a);
	gm_snapshot_close(b);
out_buffers:
	free(xa);
	free(xb);
	return ret;
}

static int usage(void)
{
	fprintf(stderr, "usage: gmsnap info FILE [--alone]\n"
			"       gmsnap verify FILE\n"
			"       gmsnap diff A B\n");
	return 2;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "info"))
		return cmd_info(argv[2], 0);
	if (argc == 4 && !strcmp(argv[1], "info") && !strcmp(argv[3], "--alone"))
		return cmd_info(argv[2], GM_SNAPSHOT_OPEN_NOBASE);
	if (argc == 3 && !strcmp(argv[1], "verify"))
		return cmd_verify(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "diff"))
		return cmd_diff(argv[2], argv[3]);
	return usage();
}
