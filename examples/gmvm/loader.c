/* SPDX-License-Identifier: MIT */
/*
 * loader.c - check the payload file and copy it into guest RAM.
 *
 * The payload is a flat binary whose first bytes are a struct
 * gmvm_payload_header (gmvm-abi.h). Every field is treated as hostile: the
 * header is read once into a local, each address is checked with
 * overflow-safe arithmetic against the file size and against guest RAM
 * before a byte is written, and every failure says what is wrong.
 */
#include "gmvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Parse the little-endian header in @raw into @h. */
static void decode_header(const unsigned char *raw, struct gmvm_payload_header *h)
{
	uint64_t *fields[] = {&h->load_gpa,	 &h->entry_gpa,	  &h->text_end_gpa,
			      &h->image_end_gpa, &h->bss_end_gpa, &h->stack_top_gpa};

	memcpy(h->magic, raw, sizeof(h->magic));
	h->version = gmvm_le32(raw + 8);
	h->header_size = gmvm_le32(raw + 12);
	for (unsigned i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		*fields[i] = gmvm_le64(raw + 16 + 8 * i);
}

/* Fail a check: say which in *@why. */
static int bad(const char **why, const char *what)
{
	*why = what;
	return -EINVAL;
}

/* The checks, in the order a reader would ask them; @why says which one failed. */
static int validate(const struct gmvm_payload_header *h, uint64_t file_size, const char **why)
{
	uint64_t file_end;

	if (memcmp(h->magic, GMVM_PAYLOAD_MAGIC, sizeof(h->magic)) != 0)
		return bad(why, "no GMVMPAYL magic (not a gmvm payload)");
	if (h->version != GMVM_PAYLOAD_VERSION)
		return bad(why, "unknown header version");
	if (h->header_size != sizeof(struct gmvm_payload_header))
		return bad(why, "header size does not match");
	if (h->load_gpa != GMVM_LOAD_GPA)
		return bad(why, "load address is not 0x100000");
	if (gm_add_overflow_u64(h->load_gpa, file_size, &file_end) || h->image_end_gpa != file_end)
		return bad(why, "image end does not match the file size");
	if (h->text_end_gpa < h->load_gpa + h->header_size || h->text_end_gpa > h->image_end_gpa ||
	    h->text_end_gpa % GM_PAGE_SIZE != 0)
		return bad(why, "text end outside the image or not page aligned");
	if (h->entry_gpa < h->load_gpa + h->header_size || h->entry_gpa >= h->text_end_gpa)
		return bad(why, "entry point outside the payload's code");
	if (h->bss_end_gpa < h->image_end_gpa)
		return bad(why, "bss ends before the image");
	if (h->stack_top_gpa < h->image_end_gpa || h->stack_top_gpa > h->bss_end_gpa ||
	    h->stack_top_gpa % 16 != 0)
		return bad(why, "stack top outside bss or misaligned");
	return 0;
}

/* Is all of [@gpa, @gpa + @size) guest RAM (regions may follow one another)? */
static bool ram_covers(const struct gm_memory *mem, uint64_t gpa, uint64_t size)
{
	struct gm_region_info r = GM_OPTS(gm_region_info);
	uint64_t end;

	if (gm_add_overflow_u64(gpa, size, &end))
		return false;
	while (gpa < end) {
		if (gm_memory_find(mem, gpa, &r) < 0 || (r.flags & GM_REGION_READONLY))
			return false;
		if (r.size > end - r.gpa)
			return true;
		gpa = r.gpa + r.size;
	}
	return true;
}

int gmvm_payload_load(struct gmvm *vm, const char *path)
{
	struct gm_memory *mem = NULL;
	struct gmvm_payload_header h;
	unsigned char raw[sizeof(h)];
	const char *why = NULL;
	size_t len, bss_len, done;
	struct stat st;
	ssize_t n;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gmvm_fail(-errno, "payload %s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0) {
		ret = gmvm_fail(-errno, "payload %s: %s", path, strerror(errno));
		goto err_close;
	}
	if (st.st_size < (off_t)sizeof(raw)) {
		ret = gmvm_fail(-EINVAL, "payload %s: %lld bytes, shorter than its header", path,
				(long long)st.st_size);
		goto err_close;
	}
	n = pread(fd, raw, sizeof(raw), 0);
	if (n != (ssize_t)sizeof(raw)) {
		ret = gmvm_fail(n < 0 ? -errno : -EIO, "payload %s: cannot read header", path);
		goto err_close;
	}
	decode_header(raw, &h);
	ret = validate(&h, (uint64_t)st.st_size, &why);
	if (ret < 0) {
		gmvm_fail(ret, "payload %s: malformed: %s", path, why);
		goto err_close;
	}
	/* Everything from load_gpa to bss_end must be RAM the guest can use. */
	ret = gm_space_memory_get(vm->mem_space, &mem);
	if (ret < 0) {
		gmvm_fail(ret, "payload %s: %s", path, strerror(-ret));
		goto err_close;
	}
	if (!ram_covers(mem, h.load_gpa, h.bss_end_gpa - h.load_gpa)) {
		ret = gmvm_fail(
		    -E2BIG, "payload %s: needs guest RAM 0x%llx-0x%llx, larger than the RAM there",
		    path, (unsigned long long)h.load_gpa, (unsigned long long)h.bss_end_gpa - 1);
		goto err_close;
	}

	/* Straight from the file into guest memory, no bounce buffer. */
	ret = gm_u64_to_size((uint64_t)st.st_size, &len);
	if (ret == 0)
		ret = gm_u64_to_size(h.bss_end_gpa - h.image_end_gpa, &bss_len);
	if (ret == 0)
		ret = gm_read_from_fd(mem, h.load_gpa, fd, 0, len, &done);
	if (ret == 0 && done != len)
		ret = -EIO;
	if (ret == 0)
		ret = gm_fill(mem, h.image_end_gpa, 0, bss_len);
	if (ret < 0) {
		gmvm_fail(ret, "payload %s: copy into guest RAM failed: %s", path, strerror(-ret));
		goto err_close;
	}
	vm->payload = h;
	vm->payload_size = (uint64_t)st.st_size;
	gm_memory_put(mem);
	close(fd);
	return 0;

err_close:
	gm_memory_put(mem);
	close(fd);
	return ret;
}
