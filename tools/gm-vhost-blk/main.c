/*
 * gm-vhost-blk - a vhost-user block device back end on guestmem.
 *
 *   gm-vhost-blk [-r] [-q N] [--aio=sync|io_uring] -s PATH -i FILE
 *   gm-vhost-blk --help | --version
 *
 * Listens on the Unix socket PATH, serves one front end (QEMU's
 * vhost-user-blk-pci) at a time with the raw image FILE, and after each
 * connection waits for the next. Prints one summary line and one stats
 * line per connection, and a total stats line on SIGTERM or SIGINT.
 * Requests go through io_uring unless --aio=sync or the kernel refuses a
 * ring (a line says so, and the program serves with sync).
 */
#include "blk.h"
#include "vu.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char *prog = "gm-vhost-blk";

#ifndef GM_TOOLS_VERSION
#define GM_TOOLS_VERSION "unknown"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [OPTION]... --socket PATH --image FILE\n"
		"Serve the raw disk image FILE to a vhost-user-blk front end (QEMU)\n"
		"on the Unix socket PATH, one connection after another, until SIGTERM.\n"
		"\n"
		"  -s, --socket PATH  Unix socket to listen on for the front end\n"
		"  -i, --image FILE   raw disk image to serve\n"
		"  -r, --readonly     refuse writes (the device is announced read-only)\n"
		"  -q, --queues N     number of request queues, 1..%u (default 1)\n"
		"      --aio=MODE     how requests reach the image: io_uring (the default;\n"
		"                     sync if the kernel has no io_uring) or sync (blocking\n"
		"                     system calls, one request at a time per queue)\n"
		"  -h, --help         print this help and exit\n"
		"  -V, --version      print the version and exit\n"
		"\n"
		"Exit status: 0 when stopped by SIGTERM or SIGINT, 1 when it cannot\n"
		"start (image, socket), 2 for a usage error.\n",
		prog, VU_MAX_QUEUES);
}

/* A usage error: the message, a hint, exit status 2. */
static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", prog);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", prog);
	return 2;
}

static void add_stats(struct blk_stats *sum, const struct blk_stats *s)
{
	uint64_t *d = (uint64_t *)sum;
	const uint64_t *x = (const uint64_t *)s;
	size_t i;

	for (i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
		d[i] += x[i];
}

static void print_stats(const char *what, const struct blk_stats *s, size_t regions)
{
	printf("%s: %s: requests in=%" PRIu64 " out=%" PRIu64 " flush=%" PRIu64 " get_id=%" PRIu64
	       " discard=%" PRIu64 " write_zeroes=%" PRIu64 " unsupported=%" PRIu64
	       " failed=%" PRIu64 " malformed=%" PRIu64 " io_uring=%" PRIu64 "; bytes read=%" PRIu64
	       " written=%" PRIu64 "; memory regions=%zu\n",
	       prog, what, s->in, s->out, s->flush, s->get_id, s->discard, s->write_zeroes,
	       s->unsupported, s->failed, s->malformed, s->uring, s->bytes_read, s->bytes_written,
	       regions);
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "%s: socket path too long (%zu bytes, at most %zu): %s\n", prog,
			strlen(path), sizeof(sa.sun_path) - 1, path);
		return -1;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			fprintf(stderr, "%s: %s exists and is not a socket; not replacing it\n",
				prog, path);
			return -1;
		}
		unlink(path); /* a stale socket from an earlier run */
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
		fprintf(stderr, "%s: cannot listen on %s: %s\n", prog, path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"image", required_argument, NULL, 'i'},
	    {"readonly", no_argument, NULL, 'r'},
	    {"queues", required_argument, NULL, 'q'},
	    {"aio", required_argument, NULL, 'A'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *image = NULL;
	bool readonly = false;
	enum blk_aio aio = BLK_AIO_URING;
	unsigned long queues = 1;
	struct blk_stats total = {0}, st;
	struct blk_dev blk;
	struct vu_device dev;
	struct vu_server *srv;
	char err[512], *end;
	sigset_t sigs;
	unsigned conns = 0;
	size_t last_regions = 0;
	int c, lfd, sfd, ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	opterr = 0; /* our own messages: "gm-vhost-blk: ...", not argv[0]'s */
	while ((c = getopt_long(argc, argv, ":s:i:rq:hV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sock = optarg;
			break;
		case 'i':
			image = optarg;
			break;
		case 'r':
			readonly = true;
			break;
		case 'q':
			errno = 0;
			queues = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-' || queues < 1 ||
			    queues > VU_MAX_QUEUES) {
				fprintf(stderr,
					"%s: --queues wants a number from 1 to %u, not '%s'\n"
					"Try '%s --help' for more information.\n",
					prog, VU_MAX_QUEUES, optarg, prog);
				return 2;
			}
			break;
		case 'A':
			if (strcmp(optarg, "sync") == 0) {
				aio = BLK_AIO_SYNC;
			} else if (strcmp(optarg, "io_uring") == 0) {
				aio = BLK_AIO_URING;
			} else {
				fprintf(stderr,
					"%s: --aio wants sync or io_uring, not '%s'\n"
					"Try '%s --help' for more information.\n",
					prog, optarg, prog);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
		case 'V':
			printf("%s (guestmem) %s\n", prog, GM_TOOLS_VERSION);
			return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default: {
			/* optopt: an unknown short option; 0: an unknown long one. */
			char opt[3] = {'-', (char)optopt, 0};

			return usage_error("unknown option '%s'", optopt ? opt : argv[optind - 1]);
		}
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!sock || !image)
		return usage_error("%s is required", !sock ? "--socket PATH" : "--image FILE");
	if (blk_open(&blk, image, readonly, err, sizeof(err))) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return 1;
	}
	/* Signals arrive through a signalfd; workers inherit the blocked mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0 ||
	    (sfd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
		fprintf(stderr, "%s: cannot set up signal handling: %s\n", prog, strerror(errno));
		return 1;
	}
	if (aio == BLK_AIO_URING && blk_uring_probe(err, sizeof(err))) {
		fprintf(stderr, "%s: %s: serving with --aio=sync\n", prog, err);
		aio = BLK_AIO_SYNC;
	}
	blk.aio = aio;
	blk_vu_device(&blk, &dev);
	ret = vu_server_new(&dev, (unsigned)queues, &srv);
	if (ret) {
		fprintf(stderr, "%s: cannot create the server: %s\n", prog, strerror(-ret));
		return 1;
	}
	lfd = listen_on(sock);
	if (lfd < 0)
		return 1;
	printf("%s: serving %s (%" PRIu64 " bytes, %s) on %s with %lu queue%s, aio %s\n", prog,
	       image, blk.size, readonly ? "read-only" : "read-write", sock, queues,
	       queues > 1 ? "s" : "", aio == BLK_AIO_URING ? "io_uring" : "sync");
	for (;;) {
		struct pollfd pfd[2] = {{.fd = lfd, .events = POLLIN},
					{.fd = sfd, .events = POLLIN}};
		struct vu_conn_info info;
		struct signalfd_siginfo si;
		int cfd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: poll: %s\n", prog, strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0) {
			fprintf(stderr, "%s: accept: %s\n", prog, strerror(errno));
			continue;
		}
		conns++;
		printf("%s: connection %u: front end connected\n", prog, conns);
		ret = vu_serve(srv, cfd, sfd, &info);
		blk_stats_take(&blk, &st, true);
		add_stats(&total, &st);
		last_regions = info.regions;
		printf("%s: connection %u: %s%s%s; features 0x%" PRIx64
		       ", protocol features 0x%" PRIx64 ", %u ring start%s, %" PRIu64
		       " messages, %" PRIu64 " memory table%s (at most %zu regions), %" PRIu64
		       " request%s re-served from the inflight buffer\n",
		       prog, conns, info.end_reason ? info.end_reason : "ended",
		       ret && ret != -EPROTO ? ": " : "",
		       ret && ret != -EPROTO ? strerror(-ret) : "", info.features,
		       info.protocol_features, info.queues_started,
		       info.queues_started == 1 ? "" : "s", info.messages, info.tables,
		       info.tables == 1 ? "" : "s", info.max_regions_seen, info.resubmitted,
		       info.resubmitted == 1 ? "" : "s");
		if (info.fds_refused)
			printf("%s: connection %u: refused %u fd%s of the wrong kind (last: %s)\n",
			       prog, conns, info.fds_refused, info.fds_refused == 1 ? "" : "s",
			       info.fd_refusal);
		char what[64];
		snprintf(what, sizeof(what), "connection %u stats", conns);
		print_stats(what, &st, info.regions);
		if (poll(&pfd[1], 1, 0) > 0 && read(sfd, &si, sizeof(si)) > 0) {
			pfd[1].revents = POLLIN;
			break;
		}
	}
	printf("%s: stopping after %u connection%s\n", prog, conns, conns == 1 ? "" : "s");
	print_stats("total stats", &total, last_regions);
	vu_server_free(srv);
	blk_close(&blk);
	close(lfd);
	unlink(sock);
	return 0;
}
