/* SPDX-License-Identifier: MIT */
/*
 * gm-hold - a helper of the demo-migrate guest (scripts/guest-init.sh):
 * reads disk data into one long-lived buffer by DMA and checks it a while
 * later, so a page the vhost-user back end wrote during a live migration
 * and that the dirty log lost shows up as a mismatch on the destination.
 *
 *   gm-hold DEVICE BASE COUNT LEN HOLD_MS STOPFILE
 *
 * Region i is [BASE + i * LEN, BASE + (i + 1) * LEN) of DEVICE, i < COUNT;
 * the regions must differ. At start it reads each (O_DIRECT) and keeps
 * copies. Then, until STOPFILE exists: read region k (0, 1, ..., COUNT - 1,
 * 0, ...) into the one buffer with O_DIRECT (the device writes the guest's
 * RAM; the buffer was allocated and touched at start, so the guest CPU
 * does not write those pages again), wait HOLD_MS, compare the buffer with
 * the copy of region k. A buffer page the migration sent before the last
 * DMA and never again (a lost log bit) holds another region's bytes on the
 * destination: a mismatch, unless it happened to hold region k then too
 * (1 in COUNT). Prints "GMDEMO check hold ok|FAIL ..." and exits 0 or 1.
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
	void *buf, **copy;
	off_t base;
	size_t len, count, i;
	long hold_ms;
	unsigned long rounds = 0, bad = 0;
	struct timespec ts;
	int fd;
	size_t k;

	if (argc != 7) {
		fprintf(stderr, "usage: gm-hold DEVICE BASE COUNT LEN HOLD_MS STOPFILE\n");
		return 2;
	}
	base = (off_t)strtoll(argv[2], NULL, 0);
	count = (size_t)strtoull(argv[3], NULL, 0);
	len = (size_t)strtoull(argv[4], NULL, 0);
	hold_ms = strtol(argv[5], NULL, 0);
	fd = open(argv[1], O_RDONLY | O_DIRECT);
	copy = calloc(count ? count : 1, sizeof(*copy));
	if (fd < 0 || count < 2 || !copy || posix_memalign(&buf, 4096, len)) {
		printf("GMDEMO check hold FAIL cannot set up\n");
		return 1;
	}
	for (i = 0; i < count; i++) {
		copy[i] = malloc(len);
		if (!copy[i] || read_all(fd, buf, len, base + (off_t)(i * len))) {
			printf("GMDEMO check hold FAIL cannot read region %zu\n", i);
			return 1;
		}
		memcpy(copy[i], buf, len);
		if (i > 0 && memcmp(copy[i], copy[i - 1], len) == 0) {
			printf("GMDEMO check hold FAIL regions %zu and %zu are the same\n", i - 1,
			       i);
			return 1;
		}
	}
	ts.tv_sec = hold_ms / 1000;
	ts.tv_nsec = (hold_ms % 1000) * 1000000L;
	for (k = 0; access(argv[6], F_OK) != 0; k = (k + 1) % count) {
		if (read_all(fd, buf, len, base + (off_t)(k * len))) {
			printf("GMDEMO check hold FAIL read failed in round %lu\n", rounds);
			return 1;
		}
		nanosleep(&ts, NULL);
		if (memcmp(buf, copy[k], len) != 0) {
			bad++;
			printf(
			    "GMDEMO hold round %lu: region %zu read by DMA differs %ld ms later\n",
			    rounds, k, hold_ms);
		}
		rounds++;
	}
	printf("GMDEMO check hold %s %lu rounds of DMA then a %ld ms hold, %lu mismatched\n",
	       bad ? "FAIL" : "ok", rounds, hold_ms, bad);
	fflush(stdout);
	return bad != 0;
}
