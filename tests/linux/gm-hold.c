/*
 * gm-hold - a helper of the demo-migrate guest (scripts/guest-init.sh):
 * reads disk data into one long-lived buffer by DMA and checks it a while
 * later, so a page the vhost-user back end wrote during a live migration
 * and that the dirty log lost shows up as a mismatch on the destination.
 *
 *   gm-hold DEVICE OFF1 OFF2 LEN HOLD_MS STOPFILE
 *
 * At start it reads [OFF1, OFF1 + LEN) and [OFF2, OFF2 + LEN) (O_DIRECT)
 * and keeps copies. Then, until STOPFILE exists: read region k (1, 2, 1,
 * ...) into the one buffer with O_DIRECT (the device writes the guest's
 * RAM; the buffer was allocated and touched at start, so the guest CPU does
 * not write those pages again), wait HOLD_MS, compare the buffer with the
 * copy of region k. Prints "GMDEMO check hold ok|FAIL ..." and exits 0 or 1.
 *
 * Built statically on the host by scripts/demo-migrate.sh and put into the
 * guest's initramfs; not part of the library or its tests.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int read_all(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);

		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	void *buf, *copy[2];
	off_t off[2];
	size_t len;
	long hold_ms;
	unsigned long rounds = 0, bad = 0;
	struct timespec ts;
	int fd, k;

	if (argc != 7) {
		fprintf(stderr, "usage: gm-hold DEVICE OFF1 OFF2 LEN HOLD_MS STOPFILE\n");
		return 2;
	}
	off[0] = (off_t)strtoll(argv[2], NULL, 0);
	off[1] = (off_t)strtoll(argv[3], NULL, 0);
	len = (size_t)strtoull(argv[4], NULL, 0);
	hold_ms = strtol(argv[5], NULL, 0);
	fd = open(argv[1], O_RDONLY | O_DIRECT);
	if (fd < 0 || posix_memalign(&buf, 4096, len) || !(copy[0] = malloc(len)) ||
	    !(copy[1] = malloc(len))) {
		printf("GMDEMO check hold FAIL cannot set up\n");
		return 1;
	}
	for (k = 0; k < 2; k++) {
		if (read_all(fd, buf, len, off[k])) {
			printf("GMDEMO check hold FAIL cannot read region %d\n", k + 1);
			return 1;
		}
		memcpy(copy[k], buf, len);
	}
	if (memcmp(copy[0], copy[1], len) == 0) {
		printf("GMDEMO check hold FAIL the two regions must differ\n");
		return 1;
	}
	ts.tv_sec = hold_ms / 1000;
	ts.tv_nsec = (hold_ms % 1000) * 1000000L;
	for (k = 0; access(argv[6], F_OK) != 0; k ^= 1) {
		if (read_all(fd, buf, len, off[k])) {
			printf("GMDEMO check hold FAIL read failed in round %lu\n", rounds);
			return 1;
		}
		nanosleep(&ts, NULL);
		if (memcmp(buf, copy[k], len) != 0) {
			bad++;
			printf("GMDEMO hold round %lu: region %d read by DMA differs %ld ms later\n",
			       rounds, k + 1, hold_ms);
		}
		rounds++;
	}
	printf("GMDEMO check hold %s %lu rounds of DMA then a %ld ms hold, %lu mismatched\n",
	       bad ? "FAIL" : "ok", rounds, hold_ms, bad);
	fflush(stdout);
	return bad != 0;
}
