/* SPDX-License-Identifier: MIT */
/*
 * gm-vhost-blk - a vhost-user block device back end on guestmem.
 *
 *   gm-vhost-blk [-r] [-q N] [--aio=sync|io_uring] [--postcopy-timeout=S] -s PATH -i FILE
 *   gm-vhost-blk --help | --version
 *
 * Listens on the Unix socket PATH and serves the raw image FILE to every
 * front end (QEMU's vhost-user-blk-pci) that connects, several at once (up
 * to MAX_CONNS): a live migration's source and destination QEMU both
 * connect, and the destination's rings start only once the source's were
 * stopped (GET_VRING_BASE), so both write the one image, in order. Each
 * connection has its own thread and device state (struct vu_server, its
 * memory table, rings, dirty log); the image, its lock and the request
 * counters are the process's. Prints one summary line and one stats line
 * per connection (the counters since the previous connection ended), and a
 * total stats line on SIGTERM or SIGINT.
 * Requests go through io_uring unless --aio=sync or the kernel refuses a
 * ring (a line says so, and the program serves with sync).
 */
#include "blk.h"
#include "vu.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static const char *prog = "gm-vhost-blk";

#ifndef GM_TOOLS_VERSION
#define GM_TOOLS_VERSION "unknown"
#endif

#define MAX_CONNS 8u /* front ends served at once (a migration needs two) */

/* One connection: its thread, its own server (device state), and how it ended. */
struct conn {
	unsigned id;
	int fd;
	int stop_fd; /* the process's stop eventfd: readable once stopping */
	int done_fd; /* written when the connection ended */
	struct vu_server *srv;
	struct vu_conn_info info;
	int ret;
	bool running;
	int done; /* __atomic: the thread has finished */
	pthread_t thread;
};

static void *conn_thread(void *arg)
{
	struct conn *c = arg;
	uint64_t one = 1;

	c->ret = vu_serve(c->srv, c->fd, c->stop_fd, &c->info);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	if (write(c->done_fd, &one, sizeof(one)) < 0) {
		/* A saturated eventfd is still readable: the main loop wakes. */
	}
	return NULL;
}

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
		"      --postcopy-timeout=S  end a post-copy connection whose worker waits\n"
		"                     more than S seconds for a page (default 120); the\n"
		"                     request fails, nothing is written for it\n"
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
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, MAX_CONNS) < 0) {
		fprintf(stderr, "%s: cannot listen on %s: %s\n", prog, path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Join connection @c's thread, print how it ended, and free its server. */
static void reap(struct conn *c, struct blk_dev *blk, struct blk_stats *total, size_t *last_regions)
{
	struct vu_conn_info *info = &c->info;
	struct blk_stats st;
	char what[64];
	int ret;

	pthread_join(c->thread, NULL);
	ret = c->ret;
	blk_stats_take(blk, &st, true);
	add_stats(total, &st);
	*last_regions = info->regions;
	printf("%s: connection %u: %s%s%s; features 0x%" PRIx64 ", protocol features 0x%" PRIx64
	       ", %u ring start%s, %" PRIu64 " messages, %" PRIu64
	       " memory table%s (at most %zu regions), %" PRIu64
	       " request%s re-served from the inflight buffer, %" PRIu64 " dirty log%s, %" PRIu64
	       " log pages newly marked, %" PRIu64 " log pages set at the end\n",
	       prog, c->id, info->end_reason ? info->end_reason : "ended",
	       ret && ret != -EPROTO ? ": " : "", ret && ret != -EPROTO ? strerror(-ret) : "",
	       info->features, info->protocol_features, info->queues_started,
	       info->queues_started == 1 ? "" : "s", info->messages, info->tables,
	       info->tables == 1 ? "" : "s", info->max_regions_seen, info->resubmitted,
	       info->resubmitted == 1 ? "" : "s", info->log_bases, info->log_bases == 1 ? "" : "s",
	       info->log_marked, info->log_pages);
	if (info->uffd_registered)
		printf("%s: connection %u: post-copy: %" PRIu64
		       " region registration%s with the userfaultfd\n",
		       prog, c->id, info->uffd_registered, info->uffd_registered == 1 ? "" : "s");
	if (info->fds_refused)
		printf("%s: connection %u: refused %u fd%s of the wrong kind (last: %s)\n", prog,
		       c->id, info->fds_refused, info->fds_refused == 1 ? "" : "s",
		       info->fd_refusal);
	snprintf(what, sizeof(what), "connection %u stats", c->id);
	print_stats(what, &st, info->regions);
	vu_server_free(c->srv);
	c->srv = NULL;
	c->running = false;
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
	    {"postcopy-timeout", required_argument, NULL, 'P'},
	    {NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *image = NULL;
	bool readonly = false;
	enum blk_aio aio = BLK_AIO_URING;
	unsigned long queues = 1, pc_timeout = VU_POSTCOPY_TIMEOUT_MS / 1000;
	struct blk_stats total = {0};
	struct blk_dev blk;
	struct vu_device dev;
	struct conn conns[MAX_CONNS] = {0};
	char err[512], *end;
	sigset_t sigs;
	unsigned nconns = 0, i;
	size_t last_regions = 0;
	int c, lfd, sfd, stop_fd, done_fd;

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
		case 'P':
			errno = 0;
			pc_timeout = strtoul(optarg, &end, 10);
			if (errno || *end || end == optarg || optarg[0] == '-' || pc_timeout < 1 ||
			    pc_timeout > 86400) {
				fprintf(
				    stderr,
				    "%s: --postcopy-timeout wants seconds from 1 to 86400, not '%s'\n"
				    "Try '%s --help' for more information.\n",
				    prog, optarg, prog);
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
	dev.break_log = getenv("GM_VHOST_BLK_TEST_BREAK_LOG") != NULL &&
			strcmp(getenv("GM_VHOST_BLK_TEST_BREAK_LOG"), "1") == 0;
	if (dev.break_log)
		printf("%s: GM_VHOST_BLK_TEST_BREAK_LOG=1: the dirty log is broken on purpose\n",
		       prog);
	/* Stop: readable for every connection at once (never read). */
	stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (stop_fd < 0 || done_fd < 0) {
		fprintf(stderr, "%s: eventfd: %s\n", prog, strerror(errno));
		return 1;
	}
	lfd = listen_on(sock);
	if (lfd < 0)
		return 1;
	printf("%s: serving %s (%" PRIu64 " bytes, %s) on %s with %lu queue%s, aio %s\n", prog,
	       image, blk.size, readonly ? "read-only" : "read-write", sock, queues,
	       queues > 1 ? "s" : "", aio == BLK_AIO_URING ? "io_uring" : "sync");
	for (;;) {
		struct pollfd pfd[3] = {{.fd = lfd, .events = POLLIN},
					{.fd = sfd, .events = POLLIN},
					{.fd = done_fd, .events = POLLIN}};
		struct conn *cn = NULL;
		uint64_t v;
		int cfd, ret;

		if (poll(pfd, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "%s: poll: %s\n", prog, strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		if (pfd[2].revents) {
			if (read(done_fd, &v, sizeof(v)) < 0) {
			}
			for (i = 0; i < MAX_CONNS; i++)
				if (conns[i].running &&
				    __atomic_load_n(&conns[i].done, __ATOMIC_ACQUIRE))
					reap(&conns[i], &blk, &total, &last_regions);
		}
		if (!pfd[0].revents)
			continue;
		cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (cfd < 0) {
			fprintf(stderr, "%s: accept: %s\n", prog, strerror(errno));
			continue;
		}
		for (i = 0; i < MAX_CONNS && !cn; i++)
			if (!conns[i].running)
				cn = &conns[i];
		nconns++;
		if (!cn) {
			printf("%s: connection %u: refused, %u front ends are served already\n",
			       prog, nconns, MAX_CONNS);
			close(cfd);
			continue;
		}
		memset(cn, 0, sizeof(*cn));
		cn->id = nconns;
		cn->fd = cfd;
		cn->stop_fd = stop_fd;
		cn->done_fd = done_fd;
		ret = vu_server_new(&dev, (unsigned)queues, &cn->srv);
		if (ret == 0)
			vu_server_set_postcopy_timeout(cn->srv, (int)(pc_timeout * 1000));
		if (ret == 0 && pthread_create(&cn->thread, NULL, conn_thread, cn) != 0)
			ret = -EAGAIN;
		if (ret) {
			fprintf(stderr, "%s: connection %u: cannot serve it: %s\n", prog, nconns,
				strerror(-ret));
			vu_server_free(cn->srv);
			close(cfd);
			continue;
		}
		cn->running = true;
		printf("%s: connection %u: front end connected\n", prog, nconns);
	}
	/* Every connection sees the stop at once, also mid-message. */
	if (write(stop_fd, &(uint64_t){1}, sizeof(uint64_t)) < 0) {
	}
	for (i = 0; i < MAX_CONNS; i++)
		if (conns[i].running)
			reap(&conns[i], &blk, &total, &last_regions);
	printf("%s: stopping after %u connection%s\n", prog, nconns, nconns == 1 ? "" : "s");
	print_stats("total stats", &total, last_regions);
	close(stop_fd);
	close(done_fd);
	blk_close(&blk);
	close(lfd);
	unlink(sock);
	return 0;
}
