/* SPDX-License-Identifier: MIT */
/*
 * gmsnap - look at guestmem snapshot files (docs/snapshot-format.md).
 *
 *   gmsnap info [-a] FILE   header, chain and regions (-a, --alone: a delta without its base)
 *   gmsnap verify FILE      check every checksum of FILE and its bases
 *   gmsnap diff A B         which guest pages differ between two saved states
 *   gmsnap --help | --version
 *
 * Exit status, as cmp(1)'s: 0 fine / identical, 1 damaged / different, 2
 * trouble: a usage or I/O error, or a FILE (or a base it names) that is not
 * a regular file (docs/man/gmsnap.1).
 * Everything goes through the public API of <guestmem/snapshot.h>.
 */
#include <guestmem/guestmem.h>

#include <errno.h>
#include <getopt.h>
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

#ifndef GM_TOOLS_VERSION
#define GM_TOOLS_VERSION "unknown"
#endif

static void usage(FILE *f)
{
	fprintf(f, "Usage: gmsnap info [-a] FILE\n"
		   "       gmsnap verify FILE\n"
		   "       gmsnap diff A B\n"
		   "Look at guestmem snapshot files.\n"
		   "\n"
		   "  info      the header, the chain of bases and the regions of FILE\n"
		   "  verify    check every checksum of FILE and of its bases\n"
		   "  diff      list the guest pages that differ between A and B\n"
		   "\n"
		   "  -a, --alone    info: read a delta without its base\n"
		   "  -h, --help     print this help and exit\n"
		   "  -V, --version  print the version and exit\n"
		   "\n"
		   "Exit status: 0 fine or identical, 1 damaged or different, 2 trouble\n"
		   "(a usage or I/O error).\n");
}

/* A usage error: the message, a hint, exit status 2. */
static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "gmsnap: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'gmsnap --help' for more information.\n");
	return 2;
}

static int print_and_exit(void (*print)(FILE *))
{
	print(stdout);
	return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 2;
}

static void version(FILE *f)
{
	fprintf(f, "gmsnap (guestmem) %s\n", GM_TOOLS_VERSION);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"alone", no_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	static const struct {
		const char *name;
		int nfiles;
	} cmds[] = {{"info", 1}, {"verify", 1}, {"diff", 2}};
	unsigned flags = 0;
	const char *cmd = NULL;
	int c, want = 0;

	/*
	 * Options may come before or after the command and its files (GNU
	 * getopt permutes); "--" ends them. The first operand is the command.
	 */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":ahV", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			flags |= GM_SNAPSHOT_OPEN_NOBASE;
			break;
		case 'h':
			return print_and_exit(usage);
		case 'V':
			return print_and_exit(version);
		default: {
			char opt[3] = {'-', (char)optopt, 0};

			return usage_error("unknown option '%s'", optopt ? opt : argv[optind - 1]);
		}
		}
	}
	if (optind == argc)
		return usage_error("%s", "a command is required: info, verify or diff");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (!strcmp(argv[optind], cmds[i].name)) {
			cmd = cmds[i].name;
			want = cmds[i].nfiles;
		}
	}
	if (cmd == NULL)
		return usage_error("unknown command '%s'", argv[optind]);
	optind++;
	if (argc - optind != want)
		return usage_error(want == 1 ? "%s wants one FILE" : "%s wants two files, A and B",
				   cmd);
	if (flags && strcmp(cmd, "info"))
		return usage_error("--alone is an option of info, not of %s", cmd);
	if (!strcmp(cmd, "info"))
		return cmd_info(argv[optind], flags);
	if (!strcmp(cmd, "verify"))
		return cmd_verify(argv[optind]);
	return cmd_diff(argv[optind], argv[optind + 1]);
}
