/*
 * fuzz/fuzz_space_diff.c - differential libFuzzer target for the space
 * layer: access routing (gm_space_read()/gm_space_write()) and the data
 * path of its views (gm_read(), gm_write(), the fixed-width accessors)
 * against a tiny reference model kept by this file.
 *
 * The model is a list of windows: kind, guest address, size, capacity
 * (a RAM window's max_size), the guest protection of each RAM page and the
 * window's own bytes. The input is a sequence of operations on a 1 MiB
 * guest range in 4 KiB pages, windows of 1..16 pages, so that collisions
 * and adjacency are common: add RAM, ROM and reserved windows; remove,
 * move, resize (RAM) and protect (RAM page ranges) them; read and write
 * 1..64 bytes through the space or through the current view, at any
 * address. After each operation the library must agree with the model, as
 * space.h and memory.h state the contract: the same success or errno (where
 * a header names no order between two applicable errors, either one), the
 * same bytes read, no byte changed by a failing write, the same window list
 * and region count, and gm__space_invariants_ok() after every edit. A
 * disagreement aborts with a message naming the operation, the address and
 * what was expected and got. MMIO windows are left out (device splitting
 * has its own unit tests). Built only with clang (meson -Dfuzz=enabled).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <guestmem/guestmem.h>

#include "space/space-internal.h" /* gm__space_invariants_ok() */

#define PAGE	 ((uint64_t)GM_PAGE_SIZE)
#define NPAGES	 256u /* the guest range the input places windows in: 1 MiB */
#define MAXWIN	 16u
#define MAXPAGES 24u /* largest RAM capacity, in pages */
#define MAXOPS	 64u
#define MAXLEN	 64u /* longest access */

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

/* One window of the model. */
struct mwin {
	struct gm_window *h;
	enum gm_window_kind kind;
	gm_gpa_t gpa;
	uint64_t size;
	uint64_t cap;		      /* RAM: max_size; others: size */
	unsigned char prot[MAXPAGES]; /* RAM: guest protection of each page */
	bool written[MAXPAGES];	      /* the model wrote the page (the final check) */
	unsigned char bytes[MAXPAGES * GM_PAGE_SIZE]; /* RAM/ROM: the contents */
};

static struct mwin win[MAXWIN];
static size_t nwin;
static struct gm_space *space;
static unsigned op_no; /* the operation being checked, for messages */
static const char *op_name;

static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_space_diff: op %u (%s): ", op_no, op_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* ---- the model ---- */

static struct mwin *model_find(gm_gpa_t gpa)
{
	size_t i;

	for (i = 0; i < nwin; i++)
		if (gpa >= win[i].gpa && gpa - win[i].gpa < win[i].size)
			return &win[i];
	return NULL;
}

/* Whether [@gpa, @gpa + @size) overlaps a model window other than @skip. */
static bool model_overlaps(gm_gpa_t gpa, uint64_t size, const struct mwin *skip)
{
	size_t i;

	for (i = 0; i < nwin; i++)
		if (&win[i] != skip && gpa < win[i].gpa + win[i].size && win[i].gpa < gpa + size)
			return true;
	return false;
}

/*
 * What an access to the byte at @gpa gives: 0, -EFAULT or -EACCES.
 * @view: through a view (memory.h: a page without access is not in the
 * view, -EFAULT), else through the space (space.h: RAM without the right
 * is -EACCES).
 */
static int model_byte(gm_gpa_t gpa, bool write, bool view)
{
	const struct mwin *w = model_find(gpa);
	unsigned prot;

	if (!w || w->kind == GM_WINDOW_RESERVED)
		return -EFAULT;
	if (w->kind == GM_WINDOW_ROM)
		return write ? -EACCES : 0;
	prot = w->prot[(gpa - w->gpa) / PAGE];
	if (view && prot == GM_PROT_NONE)
		return -EFAULT;
	if (!(prot & (write ? GM_PROT_WRITE : GM_PROT_READ)))
		return -EACCES;
	return 0;
}

/* The first failing byte of [@gpa, @gpa + @len) decides (both headers). */
static int model_access(gm_gpa_t gpa, size_t len, bool write, bool view)
{
	size_t i;

	if (len && gpa + (len - 1) < gpa)
		return -EFAULT;
	for (i = 0; i < len; i++) {
		int err = model_byte(gpa + i, write, view);

		if (err)
			return err;
	}
	return 0;
}

static unsigned char *model_bytep(gm_gpa_t gpa)
{
	struct mwin *w = model_find(gpa);

	w->written[(gpa - w->gpa) / PAGE] = true;
	return &w->bytes[gpa - w->gpa];
}

static void model_read(gm_gpa_t gpa, unsigned char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		const struct mwin *w = model_find(gpa + i);

		buf[i] = w->bytes[gpa + i - w->gpa];
	}
}

static void model_write(gm_gpa_t gpa, const unsigned char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		*model_bytep(gpa + i) = buf[i];
}

/* ---- comparing the library with the model ---- */

/* The bit of result @err (0 or a negative errno) in an expected-result mask. */
static uint64_t bit(int err)
{
	return (uint64_t)1 << -err;
}

static void expect(uint64_t mask, int got, gm_gpa_t gpa)
{
	if (!(mask & bit(got)))
		fail("gpa 0x%llx: expected result mask 0x%llx, got %d", (unsigned long long)gpa,
		     (unsigned long long)mask, got);
}

/*
 * Compare the host bytes of every RAM/ROM window overlapping [@lo, @hi)
 * with the model; with @written, only the pages the model wrote (reading
 * every untouched page would fault each one in, for nothing).
 */
static void check_bytes(gm_gpa_t lo, gm_gpa_t hi, bool written)
{
	size_t i;

	for (i = 0; i < nwin; i++) {
		const struct mwin *w = &win[i];
		struct gm_window_info info;
		gm_gpa_t a = lo > w->gpa ? lo : w->gpa;
		gm_gpa_t b = hi < w->gpa + w->size ? hi : w->gpa + w->size;
		const unsigned char *host;
		uint64_t k;

		if (w->kind == GM_WINDOW_RESERVED || a >= b)
			continue;
		if (gm_space_window_info(space, w->h, &info) != 0)
			fail("window at 0x%llx: no info", (unsigned long long)w->gpa);
		host = info.host;
		/* Page by page (memcmp), then byte by byte to report a mismatch. */
		for (k = a - w->gpa; k < b - w->gpa; k = (k / PAGE + 1) * PAGE) {
			uint64_t end = (k / PAGE + 1) * PAGE;

			if (end > b - w->gpa)
				end = b - w->gpa;
			if ((written && !w->written[k / PAGE]) ||
			    memcmp(host + k, w->bytes + k, (size_t)(end - k)) == 0)
				continue;
			for (; host[k] == w->bytes[k]; k++)
				;
			fail("byte at 0x%llx: expected 0x%02x, got 0x%02x",
			     (unsigned long long)(w->gpa + k), w->bytes[k], host[k]);
		}
	}
}

static int cmp_win(const void *a, const void *b)
{
	const struct mwin *x = *(const struct mwin *const *)a, *y = *(const struct mwin *const *)b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/* Runs of one protection in RAM window @w (space.h: view regions split and merge). */
static size_t model_parts(const struct mwin *w, bool skip_none)
{
	size_t runs = 0;
	uint64_t p;

	if (w->kind != GM_WINDOW_RAM)
		return 1;
	for (p = 0; p < w->size / PAGE; p++)
		if ((p == 0 || w->prot[p] != w->prot[p - 1]) &&
		    !(skip_none && w->prot[p] == GM_PROT_NONE))
			runs++;
	return runs;
}

static unsigned model_prot0(const struct mwin *w)
{
	switch (w->kind) {
	case GM_WINDOW_RAM:
		return w->prot[0];
	case GM_WINDOW_ROM:
		return GM_PROT_READ | GM_PROT_EXEC;
	default:
		return GM_PROT_NONE;
	}
}

/* After every edit: invariants, the window list and the view's region count. */
static void check_layout(void)
{
	struct gm_window_info info[MAXWIN + 1];
	const struct mwin *sorted[MAXWIN];
	struct gm_memory *m;
	size_t n, i, regions = 0;
	int err;

	if (!gm__space_invariants_ok(space))
		fail("gm__space_invariants_ok() is false");
	for (i = 0; i < nwin; i++)
		sorted[i] = &win[i];
	qsort(sorted, nwin, sizeof(sorted[0]), cmp_win);
	err = gm_space_windows(space, info, MAXWIN + 1, &n);
	if (err || n != nwin)
		fail("gm_space_windows: expected %zu windows, got %zu (%d)", nwin, n, err);
	for (i = 0; i < n; i++) {
		const struct mwin *w = sorted[i];

		if (info[i].window != w->h || info[i].kind != w->kind || info[i].gpa != w->gpa ||
		    info[i].size != w->size || info[i].max_size != w->cap ||
		    info[i].prot != model_prot0(w) || info[i].nparts != model_parts(w, false))
			fail(
			    "window %zu: expected kind %d [0x%llx +0x%llx] max 0x%llx prot %u "
			    "nparts %zu, got kind %d [0x%llx +0x%llx] max 0x%llx prot %u nparts %zu",
			    i, w->kind, (unsigned long long)w->gpa, (unsigned long long)w->size,
			    (unsigned long long)w->cap, model_prot0(w), model_parts(w, false),
			    info[i].kind, (unsigned long long)info[i].gpa,
			    (unsigned long long)info[i].size, (unsigned long long)info[i].max_size,
			    info[i].prot, info[i].nparts);
		if (w->kind != GM_WINDOW_RESERVED)
			regions += model_parts(w, true);
	}
	if (gm_space_memory_get(space, &m) != 0)
		fail("gm_space_memory_get failed");
	if (gm_memory_region_count(m) != regions)
		fail("view: expected %zu regions, got %zu", regions, gm_memory_region_count(m));
	gm_memory_put(m);
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
	const struct mwin *w;

	if (p < 0xe0 || nwin == 0)
		return p * PAGE;
	w = &win[(p & 15) % nwin];
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

	if (p >= 0xc0 && nwin) {
		const struct mwin *w = &win[p % nwin];

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

static struct mwin *get_win(struct in *in)
{
	unsigned k = (unsigned)get(in, 1);

	return nwin ? &win[k % nwin] : NULL;
}

/* A model window just added with handle @h. */
static struct mwin *model_add(struct gm_window *h, enum gm_window_kind kind, gm_gpa_t gpa,
			      uint64_t size, uint64_t cap)
{
	struct mwin *w = &win[nwin++];

	w->h = h;
	w->kind = kind;
	w->gpa = gpa;
	w->size = size;
	w->cap = cap;
	memset(w->prot, GM_PROT_ALL, sizeof(w->prot));
	memset(w->written, 0, sizeof(w->written));
	if (kind != GM_WINDOW_RESERVED)
		memset(w->bytes, 0, (size_t)cap);
	return w;
}

/* ---- edits ---- */

static void op_add_ram(struct in *in)
{
	gm_gpa_t gpa = get_page_gpa(in);
	unsigned b = (unsigned)get(in, 1);
	uint64_t size = (b & 15) * PAGE + PAGE;
	uint64_t max = size + ((b >> 4) & 7) * PAGE;
	uint64_t mask = 0;
	struct gm_window *h = NULL;
	int err;

	op_name = "add ram";
	if (b & 0x80)
		max = 0; /* means @size */
	if ((b & 0xf0) == 0xf0)
		size = 0; /* -EINVAL */
	else if ((b & 0xf0) == 0xe0)
		max = PAGE * ((b & 15) ? (b & 15) : 1) - PAGE; /* below @size: -EINVAL */
	if (nwin == MAXWIN)
		return;
	if (size == 0 || (max && max < size))
		mask |= bit(-EINVAL);
	if (size && model_overlaps(gpa, size, NULL))
		mask |= bit(-EEXIST);
	err = gm_space_add_ram(space, gpa, size, max, GM_MAP_NORESERVE, &h);
	expect(mask ? mask : bit(0), err, gpa);
	if (!err)
		model_add(h, GM_WINDOW_RAM, gpa, size, max ? max : size);
	check_layout();
}

static void model_write_rom(struct mwin *w, const unsigned char *data, size_t len)
{
	size_t p;

	memcpy(w->bytes, data, len);
	for (p = 0; p < (len + PAGE - 1) / PAGE; p++)
		w->written[p] = true;
}

static void op_add_rom(struct in *in)
{
	gm_gpa_t gpa = get_page_gpa(in);
	unsigned b = (unsigned)get(in, 1);
	uint64_t size = (b & 15) * PAGE + PAGE;
	size_t len = (size_t)(get(in, 2) % (size + 1));
	unsigned char seed = (unsigned char)(b | 1);
	struct gm_window *h = NULL;
	unsigned char data[16 * GM_PAGE_SIZE];
	size_t i;
	int err;

	op_name = "add rom";
	if (nwin == MAXWIN)
		return;
	for (i = 0; i < len; i++)
		data[i] = (unsigned char)(seed * (i + 1) + (i >> 8));
	err = gm_space_add_rom(space, gpa, size, data, len, &h);
	expect(model_overlaps(gpa, size, NULL) ? bit(-EEXIST) : bit(0), err, gpa);
	if (!err)
		model_write_rom(model_add(h, GM_WINDOW_ROM, gpa, size, size), data, len);
	check_layout();
}

static void op_add_reserved(struct in *in)
{
	unsigned b = (unsigned)get(in, 1);
	/* Any size and alignment: byte-granular edges inside pages. */
	gm_gpa_t gpa = get_page_gpa(in) + ((b & 0x80) ? get(in, 2) % PAGE : 0);
	uint64_t size = (b & 15) * PAGE + ((b & 0x40) ? get(in, 2) % PAGE : PAGE);
	struct gm_window *h = NULL;
	uint64_t mask = 0;
	int err;

	op_name = "add reserved";
	if (nwin == MAXWIN)
		return;
	if (size == 0)
		mask |= bit(-EINVAL);
	else if (model_overlaps(gpa, size, NULL))
		mask |= bit(-EEXIST);
	err = gm_space_add_reserved(space, gpa, size, "hole", &h);
	expect(mask ? mask : bit(0), err, gpa);
	if (!err)
		model_add(h, GM_WINDOW_RESERVED, gpa, size, size);
	check_layout();
}

static void op_remove(struct in *in)
{
	struct mwin *w = get_win(in);
	int err;

	op_name = "remove";
	if (!w)
		return;
	err = gm_space_remove(space, w->h);
	expect(bit(0), err, w->gpa);
	*w = win[--nwin];
	check_layout();
}

static void op_move(struct in *in)
{
	struct mwin *w = get_win(in);
	gm_gpa_t gpa = get_page_gpa(in);
	unsigned b = (unsigned)get(in, 1);
	uint64_t mask = 0;
	int err;

	op_name = "move";
	if (!w)
		return;
	if (b & 1)
		gpa += b >> 1; /* not page aligned: -EINVAL for RAM/ROM, fine for reserved */
	if (w->kind != GM_WINDOW_RESERVED && gpa % PAGE)
		mask |= bit(-EINVAL);
	if (model_overlaps(gpa, w->size, w))
		mask |= bit(-EEXIST);
	err = gm_space_move(space, w->h, gpa);
	expect(mask ? mask : bit(0), err, gpa);
	if (!err)
		w->gpa = gpa;
	check_layout();
}

static void op_resize(struct in *in)
{
	struct mwin *w = get_win(in);
	uint64_t size = (get(in, 1) % (MAXPAGES + 2)) * PAGE;
	uint64_t mask = 0;
	uint64_t p;
	int err;

	op_name = "resize";
	if (!w)
		return;
	if (w->kind != GM_WINDOW_RAM || size < w->size)
		mask |= bit(-EINVAL);
	if (size > w->cap)
		mask |= bit(-ENOSPC);
	if (size > w->size && model_overlaps(w->gpa + w->size, size - w->size, w))
		mask |= bit(-EEXIST);
	err = gm_space_resize(space, w->h, size);
	expect(mask ? mask : bit(0), err, w->gpa);
	if (!err) {
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
	struct mwin *w = get_win(in);
	unsigned b = (unsigned)get(in, 1);
	uint64_t off = (get(in, 1) % 20) * PAGE;
	uint64_t size = ((b >> 3) % 20) * PAGE;
	unsigned prot = prots[b & 7];
	uint64_t mask = 0;
	uint64_t p;
	int err;

	op_name = "protect";
	if (!w)
		return;
	if (w->kind != GM_WINDOW_RAM || size == 0 || (b & 7) >= 5)
		mask |= bit(-EINVAL);
	if (off + size > w->size)
		mask |= bit(-ERANGE);
	err = gm_space_protect(space, w->h, off, size, prot);
	expect(mask ? mask : bit(0), err, w->gpa + off);
	if (!err)
		for (p = off / PAGE; p < (off + size) / PAGE; p++)
			w->prot[p] = (unsigned char)prot;
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

static void check_read(gm_gpa_t gpa, const unsigned char *got, size_t len)
{
	unsigned char want[MAXLEN];
	size_t i;

	model_read(gpa, want, len);
	for (i = 0; i < len; i++)
		if (got[i] != want[i])
			fail("read 0x%llx+%zu: byte %zu expected 0x%02x, got 0x%02x",
			     (unsigned long long)gpa, len, i, want[i], got[i]);
}

/* Writes: same result, the model follows a success, and no byte elsewhere changed. */
static void after_write(gm_gpa_t gpa, const unsigned char *data, size_t len, int want, int got)
{
	if (got != want)
		fail("write 0x%llx+%zu: expected %d, got %d", (unsigned long long)gpa, len, want,
		     got);
	if (!got)
		model_write(gpa, data, len);
	if (gpa + len >= gpa)
		check_bytes(gpa >= MAXLEN ? gpa - MAXLEN : 0, gpa + len + MAXLEN, false);
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

/* The operations an input byte selects; view accesses get two bytes in eleven. */
static void (*const ops[])(struct in *) = {
    op_add_ram, op_add_rom,	op_add_reserved, op_remove, op_move, op_resize,
    op_protect, op_space_write, op_space_read,	 op_view,   op_view,
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
	nwin = 0;
	for (op_no = 0; op_no < MAXOPS && in.n > 0; op_no++)
		ops[get(&in, 1) % (sizeof(ops) / sizeof(ops[0]))](&in);
	op_name = "end";
	check_bytes(0, UINT64_MAX, true);
	gm_space_free(space);
	space = NULL;
	return 0;
}
