/* SPDX-License-Identifier: MIT */
/*
 * fuzz/fuzz_snapshot.c - libFuzzer target for what the snapshot layer reads
 * from outside: snapshot files and migration streams.
 *
 * The first input byte picks the target. Even: the rest is a snapshot file
 * (with bit 1 set, its two checksums are recomputed first, so the fuzzer
 * reaches the structural checks behind them);
 * gm_snapshot_open() (a delta alone) must accept or refuse it without a
 * crash, and an accepted file is described, verified, read and restored by
 * copy and by private mapping (its RAM is at most the input's size: the
 * header must match the file's length). Odd: the rest is a migration stream
 * fed to gm_migrate_recv() on a small two-region guest. Built only with
 * clang (meson -Dfuzz=enabled); run with `make fuzz`.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <guestmem/guestmem.h>
#include <xxhash.h>

#define CHECK(c)                 \
	do {                     \
		if (!(c))        \
			abort(); \
	} while (0)

static char path[4096];
static struct gm_memory *guest;

/* The file each input is written to, in $TMPDIR (a tmpfs for long runs). */
static void setup(void)
{
	static const struct gm_range ram[] = {{0, 256 * 1024}, {1 << 20, 256 * 1024}};
	const char *tmp = getenv("TMPDIR");
	char dir[4000];
	int n =
	    snprintf(dir, sizeof(dir), "%s/gm-fuzz-snapshot-XXXXXX", tmp && *tmp ? tmp : "/tmp");

	CHECK(n > 0 && (size_t)n < sizeof(dir));
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/f", dir);
	CHECK(gm_memory_new_anon(ram, 2, &guest) == 0);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Make the header's checksums match whatever the input holds. */
static void fix_checksums(uint8_t *d, size_t size)
{
	uint64_t meta = 0;

	if (size < 4096)
		return;
	for (int i = 7; i >= 0; i--)
		meta = (meta << 8) | d[48 + i];
	if (meta <= size - 4096)
		put_le64(d + 360, XXH3_64bits(d + 4096, (size_t)meta));
	memset(d + 368, 0, 8);
	put_le64(d + 368, XXH3_64bits(d, 4096));
}

static void fuzz_file(const uint8_t *data, size_t size, bool fix)
{
	struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);
	struct gm_snapshot *s;
	struct gm_memory *m;
	FILE *f = fopen(path, "wb");
	unsigned char page[4096];
	int ret;

	uint8_t *copy = malloc(size ? size : 1);

	CHECK(f != NULL && copy != NULL);
	memcpy(copy, data, size);
	if (fix)
		fix_checksums(copy, size);
	CHECK(fwrite(copy, 1, size, f) == size);
	free(copy);
	CHECK(fclose(f) == 0);
	ret = gm_snapshot_open(path, GM_SNAPSHOT_OPEN_NOBASE, &s);
	CHECK(ret == 0 || ret == -EBADMSG || ret == -ENOTSUP);
	if (ret)
		return;
	CHECK(gm_snapshot_describe(s, &info) == 0);
	CHECK(info.file_size == size && info.ram_size <= size);
	ret = gm_snapshot_verify(s, NULL, NULL);
	CHECK(ret == 0 || ret == -EBADMSG);
	if (!(info.flags & GM_SNAPSHOT_DELTA)) {
		struct gm_snapshot_region r = GM_OPTS(gm_snapshot_region);

		CHECK(gm_snapshot_region(s, 0, &r) == 0);
		ret = gm_snapshot_read(s, r.gpa, page, sizeof(page));
		CHECK(ret == 0 || ret == -EBADMSG);
		ret = gm_snapshot_restore_new(s, GM_RESTORE_COPY, NULL, &m);
		CHECK(ret == 0 || ret == -EBADMSG);
		gm_memory_put(ret == 0 ? m : NULL);
		ret = gm_snapshot_restore_new(s, GM_RESTORE_PRIVATE, NULL, &m);
		CHECK(ret == 0);
		gm_memory_put(m);
	}
	gm_snapshot_close(s);
}

static void fuzz_stream(const uint8_t *data, size_t size)
{
	int fd = memfd_create("stream", MFD_CLOEXEC), ret;

	CHECK(fd >= 0);
	CHECK(write(fd, data, size) == (ssize_t)size);
	CHECK(lseek(fd, 0, SEEK_SET) == 0);
	ret = gm_migrate_recv(guest, fd, NULL, NULL);
	CHECK(ret == 0 || ret == -EPIPE || ret == -EBADMSG || ret == -ENOTSUP || ret == -EFAULT ||
	      ret == -ENOMEM);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (guest == NULL)
		setup();
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_stream(data + 1, size - 1);
	else
		fuzz_file(data + 1, size - 1, data[0] & 2);
	return 0;
}
