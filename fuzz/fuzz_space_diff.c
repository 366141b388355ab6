/* SPDX-License-Identifier: MIT */
/*
 * fuzz/fuzz_space_diff.c - differential libFuzzer target for the space
 * layer: access routing (gm_space_read()/gm_space_write()) and the data
 * path of its views (gm_read(), gm_write(), the fixed-width accessors)
 * against a tiny reference model (space_diff_model.c).
 *
 * The model is a list of windows: kind, guest address, size, capacity
 * (a RAM window's max_size), the guest protection of each RAM page and the
 * window's own bytes. The input is a sequence of operations on a 1 MiB
 * guest range in 4 KiB pages, windows of 1..16 pages, so that collisions
 * and adjacency are common: add RAM, ROM and reserved windows; remove,
 * move, resize (RAM) and protect (RAM page ranges) them, alone or in
 * (nested) transactions that commit or abort; read and write 1..64 bytes
 * through the space or through the current view, at any address. After each operation the library
 * must agree with the model, as space.h and memory.h state the contract: the same success or errno
 * (where a header names no order between two applicable errors, either one), the same bytes read,
 * no byte changed by a failing write, the same window list and region count, and
 * gm__space_invariants_ok() after every edit. A disagreement aborts with a message naming the
 * operation, the address and what was expected and got. MMIO windows are left out (device splitting
 * has its own unit tests). Built only with clang (meson -Dfuzz=enabled).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "space_diff_model.h"

#define MAXOPS 64u

struct in {
	const uint8_t *p;
	size_t n;
};

static uint64_t get(struct in *in, unsigned bytes)
{
	uint64_t v = 0;

	while (bytes-- > 0 && in->n > 0) {
		v = v << 8 | *in->p++;
		in->n--;
	}
	return v;
}

/* ---- decoding ---- */

/*
 * A window address: a page of the 1 MiB range, or (bytes 0xe0..0xff, once
 * windows exist) the page where an existing window starts or the first page
 * after it ends, so that adjacency and collisions are common.
 */
static gm_gpa_t get_page_gpa(struct in *in)
{
	unsigned p = (unsigned)get(in, 1);
	const struct mlayout *l = edited();
	const struct mwin *w;

	if (p < 0xe0 || l->n == 0)
		return p * PAGE;
	w = &l->w[(p & 15) % l->n];
	if (p & 0x10)
		return (w->gpa + w->size + PAGE - 1) / PAGE * PAGE; /* small: no overflow */
	return gm_align_down(w->gpa, PAGE);
}

/*
 * An access address: any byte, biased towards page edges. With a first
 * byte 0xc0..0xff (once windows exist) the page edge is one of a window's:
 * its start, a page inside it (where protection runs meet) or its end.
 */
static gm_gpa_t get_gpa(struct in *in)
{
	unsigned p = (unsigned)get(in, 1);
	gm_gpa_t edge = p * PAGE;
	unsigned b;

	if (p >= 0xc0 && cur.n) {
		const struct mwin *w = &cur.w[p % cur.n];

		edge = w->gpa + (get(in, 1) % (w->size / PAGE + 1)) * PAGE;
	}
	b = (unsigned)get(in, 1);
	switch (b >> 6) {
	case 0:
		return edge + (b & 63);
	case 1:
		return edge >= 64 ? edge - 1 - (b & 63) : edge;
	case 2:
		return edge + get(in, 2) % PAGE;
	default:
		/* Rarely, the top of the 64-bit space: a wrapping range. */
		return (b & 32) ? UINT64_MAX - (b & 31) : edge + PAGE / 2;
	}
}

/*
 * The window an edit names: one of the layout being edited, or (in a
 * transaction, high bit set) a committed one, which the staging may have
 * removed. Sets *@h to its handle (NULL: no window at all) and returns the
 * window in the edited layout, NULL if it is not there (-ENOENT).
 */
static struct mwin *get_win(struct in *in, struct gm_window **h)
{
	unsigned k = (unsigned)get(in, 1);
	struct mlayout *l = depth && (k & 0x80) ? &cur : edited();
	size_t i;

	*h = l->n ? l->w[k % l->n].h : NULL;
	l = edited();
	for (i = 0; *h && i < l->n; i++)
		if (l->w[i].h == *h)
			return &l->w[i];
	return NULL;
}

/* ---- edits ---- */

static void op_add_ram(struct in *in)
{
	gm_gpa_t gpa = get_page_gpa(in);
	unsigned b = (unsigned)get(in, 1);
	uint64_t size = (b & 15) * PAGE + PAGE;
	uint64_t max = size + ((b >> 4) & 7) * PAGE;
	unsigned mask = 0;
	struct gm_window *h = NULL;

	op_name = "add ram";
	if (b & 0x80)
		max = 0; /* means @size */
	if ((b & 0xf0) == 0xf0)
		size = 0; /* -EINVAL */
	else if ((b & 0xf0) == 0xe0)
		max = PAGE * ((b & 15) ? (b & 15) : 1) - PAGE; /* below @size: -EINVAL */
	if (edited()->n == MAXWIN)
		return;
	if (size == 0 || (max && max < size))
		mask |= bit(-EINVAL);
	if (size && model_overlaps(gpa, size, NULL))
		mask |= bit(-EEXIST);
	if (edit_result(mask, gm_space_add_ram(space, gpa, size, max, GM_MAP_NORESERVE, &h), gpa))
		model_add(h, GM_WINDOW_RAM, gpa, size, max ? max : size);
	check_layout();
}

static void op_add_rom(struct in *in)
{
	gm_gpa_t gpa = get_page_gpa(in);
	unsigned b = (unsigned)get(in, 1);
	uint64_t size = (b & 15) * PAGE + PAGE;
	/* "@len bytes followed by zeros": a short @len is as good as a long one. */
	size_t len = (size_t)(get(in, 2) % (size < 2 * PAGE ? size + 1 : 2 * PAGE + 1));
	unsigned char seed = (unsigned char)(b | 1);
	struct gm_window *h = NULL;
	unsigned char data[2 * GM_PAGE_SIZE];
	struct mwin *w;
	size_t i;

	op_name = "add rom";
	if (edited()->n == MAXWIN)
		return;
	for (i = 0; i < len; i++)
		data[i] = (unsigned char)(seed * (i + 1) + (i >> 8));
	if (edit_result(model_overlaps(gpa, size, NULL) ? bit(-EEXIST) : 0,
			gm_space_add_rom(space, gpa, size, data, len, &h), gpa)) {
		w = model_add(h, GM_WINDOW_ROM, gpa, size, size);
		memcpy(mem[w->slot], data, len);
		for (i = 0; i < (len + PAGE - 1) / PAGE; i++)
			written[w->slot][i] = true;
	}
	check_layout();
}

static void op_add_reserved(struct in *in)
{
	unsigned b = (unsigned)get(in, 1);
	/* Any size and alignment: byte-granular edges inside pages. */
	gm_gpa_t gpa = get_page_gpa(in) + ((b & 0x80) ? get(in, 2) % PAGE : 0);
	uint64_t size = (b & 15) * PAGE + ((b & 0x40) ? get(in, 2) % PAGE : PAGE);
	struct gm_window *h = NULL;
	unsigned mask = 0;

	op_name = "add reserved";
	if (edited()->n == MAXWIN)
		return;
	if (size == 0)
		mask |= bit(-EINVAL);
	else if (model_overlaps(gpa, size, NULL))
		mask |= bit(-EEXIST);
	if (edit_result(mask, gm_space_add_reserved(space, gpa, size, "hole", &h), gpa))
		model_add(h, GM_WINDOW_RESERVED, gpa, size, size);
	check_layout();
}

static void op_remove(struct in *in)
{
	struct gm_window *h;
	struct mwin *w = get_win(in, &h);

	op_name = "remove";
	if (!h)
		return;
	if (edit_result(w ? 0 : bit(-ENOENT), gm_space_remove(space, h), w ? w->gpa : 0))
		*w = edited()->w[--edited()->n];
	check_layout();
}

static void op_move(struct in *in)
{
	struct gm_window *h;
	struct mwin *w = get_win(in, &h);
	gm_gpa_t gpa = get_page_gpa(in);
	unsigned b = (unsigned)get(in, 1);
	unsigned mask = 0;

	op_name = "move";
	if (!h)
		return;
	if (b & 1)
		gpa += b >> 1; /* not page aligned: -EINVAL for RAM/ROM, fine for reserved */
	if (!w)
		mask = bit(-ENOENT);
	else if (w->kind != GM_WINDOW_RESERVED && gpa % PAGE)
		mask |= bit(-EINVAL);
	if (w && model_overlaps(gpa, w->size, w))
		mask |= bit(-EEXIST);
	if (edit_result(mask, gm_space_move(space, h, gpa), gpa))
		w->gpa = gpa;
	check_layout();
}

static void op_resize(struct in *in)
{
	struct gm_window *h;
	struct mwin *w = get_win(in, &h);
	uint64_t size = (get(in, 1) % (MAXPAGES + 2)) * PAGE;
	unsigned mask = 0;
	uint64_t p;

	op_name = "resize";
	if (!h)
		return;
	if (!w)
		mask = bit(-ENOENT);
	else if (w->kind != GM_WINDOW_RAM || size < w->size)
		mask |= bit(-EINVAL);
	if (w && size > w->cap)
		mask |= bit(-ENOSPC);
	if (w && size > w->size && model_overlaps(w->gpa + w->size, size - w->size, w))
		mask |= bit(-EEXIST);
	if (edit_result(mask, gm_space_resize(space, h, size), w ? w->gpa : 0)) {
		/* The new part is zeroed, GM_PROT_ALL (space.h). */
		for (p = w->size / PAGE; p < size / PAGE; p++)
			w->prot[p] = GM_PROT_ALL;
		w->size = size;
	}
	check_layout();
}

static void op_protect(struct in *in)
{
	static const unsigned prots[8] = {
	    GM_PROT_NONE,
	    GM_PROT_READ,
	    GM_PROT_READ | GM_PROT_WRITE,
	    GM_PROT_READ | GM_PROT_EXEC,
	    GM_PROT_ALL,
	    GM_PROT_WRITE,		  /* refused */
	    GM_PROT_WRITE | GM_PROT_EXEC, /* refused */
	    8u,				  /* unknown bit: refused */
	};
	struct gm_window *h;
	struct mwin *w = get_win(in, &h);
	unsigned b = (unsigned)get(in, 1);
	uint64_t off = (get(in, 1) % 20) * PAGE;
	uint64_t size = ((b >> 3) % 20) * PAGE;
	unsigned prot = prots[b & 7];
	unsigned mask = 0;
	uint64_t p;

	op_name = "protect";
	if (!h)
		return;
	if (!w)
		mask = bit(-ENOENT);
	else if (w->kind != GM_WINDOW_RAM || size == 0 || (b & 7) >= 5)
		mask |= bit(-EINVAL);
	if (w && off + size > w->size)
		mask |= bit(-ERANGE);
	if (edit_result(mask, gm_space_protect(space, h, off, size, prot), w ? w->gpa + off : 0))
		for (p = off / PAGE; p < (off + size) / PAGE; p++)
			w->prot[p] = (unsigned char)prot;
	check_layout();
}

/* ---- transactions (space.h "Editing"; nested up to 3 deep) ---- */

static void op_begin(struct in *in)
{
	(void)in;
	op_name = "begin";
	if (depth == 3)
		return;
	expect(bit(0), gm_space_begin(space), 0);
	if (depth++ == 0) {
		stg = cur;
		doom = 0;
	}
}

/* An inner commit returns the doom error and changes nothing; the outermost publishes or discards.
 */
static void op_commit(struct in *in)
{
	int got = gm_space_commit(space);

	(void)in;
	op_name = "commit";
	if (depth == 0) {
		expect(bit(-EPERM), got, 0);
		return;
	}
	expect(bit(doom), got, 0);
	if (--depth == 0 && !doom)
		cur = stg;
	check_layout();
}

/* An inner abort dooms the transaction with -ECANCELED; the outermost discards it. */
static void op_abort(struct in *in)
{
	int got = gm_space_abort(space);

	(void)in;
	op_name = "abort";
	expect(depth ? bit(0) : bit(-EPERM), got, 0);
	if (depth && --depth && !doom)
		doom = -ECANCELED;
	check_layout();
}

/* ---- accesses ---- */

static size_t get_len(struct in *in)
{
	return (size_t)(get(in, 1) % MAXLEN) + 1;
}

static void fill_data(struct in *in, unsigned char *buf, size_t len)
{
	unsigned char seed = (unsigned char)get(in, 1);
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)(seed + 13 * i);
}

static void op_space_write(struct in *in)
{
	gm_gpa_t gpa = get_gpa(in);
	size_t len = get_len(in);
	unsigned char data[MAXLEN];

	op_name = "gm_space_write";
	fill_data(in, data, len);
	after_write(gpa, data, len, model_access(gpa, len, true, false),
		    gm_space_write(space, gpa, data, len));
}

static void op_space_read(struct in *in)
{
	gm_gpa_t gpa = get_gpa(in);
	size_t len = get_len(in);
	unsigned char buf[MAXLEN];
	int want = model_access(gpa, len, false, false);
	int got;

	op_name = "gm_space_read";
	got = gm_space_read(space, gpa, buf, len);
	if (got != want)
		fail("read 0x%llx+%zu: expected %d, got %d", (unsigned long long)gpa, len, want,
		     got);
	if (!got)
		check_read(gpa, buf, len);
}

/* A fixed-width read of @n bytes: *out untouched on error (memory.h). */
static int view_read_fixed(struct gm_memory *m, unsigned kind, gm_gpa_t gpa, unsigned char *buf)
{
	const uint64_t poison = 0xa5a5a5a5a5a5a5a5ull;
	uint8_t v8 = (uint8_t)poison;
	uint16_t v16 = (uint16_t)poison;
	uint32_t v32 = (uint32_t)poison;
	uint64_t v64 = poison, v;
	unsigned n;
	int err;

	switch (kind) {
	case 0:
		err = gm_read_u8(m, gpa, &v8), v = v8, n = 1;
		break;
	case 1:
		err = gm_read_u16(m, gpa, &v16), v = v16, n = 2;
		break;
	case 2:
		err = gm_read_u32(m, gpa, &v32), v = v32, n = 4;
		break;
	case 3:
		err = gm_read_u64(m, gpa, &v64), v = v64, n = 8;
		break;
	case 4:
		err = gm_read_le16(m, gpa, &v16), v = v16, n = 2;
		break;
	case 5:
		err = gm_read_le32(m, gpa, &v32), v = v32, n = 4;
		break;
	default:
		err = gm_read_le64(m, gpa, &v64), v = v64, n = 8;
		break;
	}
	if (err && v != (poison & (n == 8 ? UINT64_MAX : (((uint64_t)1 << (8 * n)) - 1))))
		fail("fixed read of %u at 0x%llx failed (%d) but wrote *out", n,
		     (unsigned long long)gpa, err);
	/* Host order and little-endian agree on the hosts this target runs on. */
	for (unsigned i = 0; i < n; i++)
		buf[i] = (unsigned char)(v >> (8 * i));
	return err;
}

static int view_write_fixed(struct gm_memory *m, unsigned kind, gm_gpa_t gpa,
			    const unsigned char *buf)
{
	uint64_t v = 0;
	unsigned i;

	for (i = 0; i < 8; i++)
		v |= (uint64_t)buf[i] << (8 * i);
	switch (kind) {
	case 0:
		return gm_write_u8(m, gpa, (uint8_t)v);
	case 1:
		return gm_write_u16(m, gpa, (uint16_t)v);
	case 2:
		return gm_write_u32(m, gpa, (uint32_t)v);
	case 3:
		return gm_write_u64(m, gpa, v);
	case 4:
		return gm_write_le16(m, gpa, (uint16_t)v);
	case 5:
		return gm_write_le32(m, gpa, (uint32_t)v);
	default:
		return gm_write_le64(m, gpa, v);
	}
}

static const unsigned fixed_len[7] = {1, 2, 4, 8, 2, 4, 8};

static void op_view(struct in *in)
{
	unsigned b = (unsigned)get(in, 1);
	gm_gpa_t gpa = get_gpa(in);
	unsigned kind = (b >> 2) % 7;
	size_t len = (b & 3) < 2 ? get_len(in) : fixed_len[kind];
	unsigned char buf[MAXLEN];
	struct gm_memory *m;
	int want, got;

	if (gm_space_memory_get(space, &m) != 0)
		fail("gm_space_memory_get failed");
	switch (b & 3) {
	case 0:
		op_name = "gm_read";
		want = model_access(gpa, len, false, true);
		got = gm_read(m, gpa, buf, len);
		break;
	case 1:
		op_name = "gm_write";
		fill_data(in, buf, len);
		after_write(gpa, buf, len, model_access(gpa, len, true, true),
			    gm_write(m, gpa, buf, len));
		gm_memory_put(m);
		return;
	case 2:
		op_name = "gm_read_<fixed>";
		want = model_access(gpa, len, false, true);
		got = view_read_fixed(m, kind, gpa, buf);
		break;
	default:
		op_name = "gm_write_<fixed>";
		fill_data(in, buf, 8);
		after_write(gpa, buf, len, model_access(gpa, len, true, true),
			    view_write_fixed(m, kind, gpa, buf));
		gm_memory_put(m);
		return;
	}
	gm_memory_put(m);
	if (got != want)
		fail("%s 0x%llx+%zu: expected %d, got %d", op_name, (unsigned long long)gpa, len,
		     want, got);
	if (!got)
		check_read(gpa, buf, len);
}

/* The operations an input byte selects; view accesses get two bytes in fourteen. */
static void (*const ops[])(struct in *) = {
    op_add_ram,	    op_add_rom,	   op_add_reserved, op_remove, op_move,	 op_resize, op_protect,
    op_space_write, op_space_read, op_view,	    op_view,   op_begin, op_commit, op_abort,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool registered;
	struct in in = {data, size};

	if (!registered) {
		gm_rcu_register_thread();
		registered = true;
	}
	if (gm_space_new(GM_SPACE_MEMORY, &space) != 0)
		abort();
	cur.n = 0;
	depth = 0;
	for (op_no = 0; op_no < MAXOPS && in.n > 0; op_no++)
		ops[get(&in, 1) % (sizeof(ops) / sizeof(ops[0]))](&in);
	op_name = "end";
	while (depth)
		op_abort(&in);
	check_bytes(0, UINT64_MAX, true);
	gm_space_free(space);
	space = NULL;
	return 0;
}
