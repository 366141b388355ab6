/* SPDX-License-Identifier: MIT */
/*
 * fuzz/space_diff_model.c - the reference model of fuzz_space_diff.c and
 * its comparison with the library: a list of windows (kind, place, RAM page
 * protections, own bytes), which byte an access may touch and with which
 * error (space.h for the space, memory.h for its views), and the checks
 * that abort with a message when the library disagrees.
 */
#include "space_diff_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "space/space-internal.h" /* gm__space_invariants_ok() */

/*
 * The committed layout, which accesses see, and the staged one while a
 * transaction is open (depth > 0; doom: its first failing edit's error).
 * A window's bytes belong to the window, not to a layout: slot k of mem.
 */
struct mlayout cur, stg;
unsigned depth;
int doom;
unsigned char mem[MAXSLOT][MAXPAGES * GM_PAGE_SIZE];
bool written[MAXSLOT][MAXPAGES]; /* the model wrote the page (the final check) */

struct gm_space *space;
unsigned op_no; /* the operation being checked, for messages */
const char *op_name;

/* The layout edits change. */
struct mlayout *edited(void)
{
	return depth ? &stg : &cur;
}

void fail(const char *fmt, ...)
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

/* The committed window holding @gpa, or NULL. */
struct mwin *model_find(gm_gpa_t gpa)
{
	size_t i;

	for (i = 0; i < cur.n; i++)
		if (gpa >= cur.w[i].gpa && gpa - cur.w[i].gpa < cur.w[i].size)
			return &cur.w[i];
	return NULL;
}

/* Whether [@gpa, @gpa + @size) overlaps a window being edited other than @skip. */
bool model_overlaps(gm_gpa_t gpa, uint64_t size, const struct mwin *skip)
{
	const struct mlayout *l = edited();
	size_t i;

	for (i = 0; i < l->n; i++)
		if (&l->w[i] != skip && gpa < l->w[i].gpa + l->w[i].size &&
		    l->w[i].gpa < gpa + size)
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
int model_access(gm_gpa_t gpa, size_t len, bool write, bool view)
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

	written[w->slot][(gpa - w->gpa) / PAGE] = true;
	return &mem[w->slot][gpa - w->gpa];
}

void model_read(gm_gpa_t gpa, unsigned char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		const struct mwin *w = model_find(gpa + i);

		buf[i] = mem[w->slot][gpa + i - w->gpa];
	}
}

void model_write(gm_gpa_t gpa, const unsigned char *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		*model_bytep(gpa + i) = buf[i];
}

/* ---- comparing the library with the model ---- */

/* The results an edit may have; a set of them is a mask of their indices. */
static const int results[] = {0, -EINVAL, -EEXIST, -ENOSPC, -ERANGE, -ENOENT, -ECANCELED, -EPERM};

/* The bit of result @err (0 or a negative errno) in a mask; bit 31 for any other. */
unsigned bit(int err)
{
	unsigned i;

	for (i = 0; i < sizeof(results) / sizeof(results[0]); i++)
		if (results[i] == err)
			return 1u << i;
	return 1u << 31;
}

void expect(unsigned mask, int got, gm_gpa_t gpa)
{
	char want[64] = "";
	unsigned i;

	if (mask & bit(got))
		return;
	for (i = 0; i < sizeof(results) / sizeof(results[0]); i++)
		if (mask & (1u << i))
			snprintf(want + strlen(want), sizeof(want) - strlen(want), " %d",
				 results[i]);
	fail("gpa 0x%llx: expected one of%s, got %d", (unsigned long long)gpa, want, got);
}

/*
 * Compare the host bytes of every RAM/ROM window overlapping [@lo, @hi)
 * with the model; with @only_written, only the pages the model wrote (reading
 * every untouched page would fault each one in, for nothing).
 */
void check_bytes(gm_gpa_t lo, gm_gpa_t hi, bool only_written)
{
	size_t i;

	for (i = 0; i < cur.n; i++) {
		const struct mwin *w = &cur.w[i];
		const unsigned char *bytes = mem[w->slot];
		struct gm_window_info info = GM_OPTS(gm_window_info);
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
			if ((only_written && !written[w->slot][k / PAGE]) ||
			    memcmp(host + k, bytes + k, (size_t)(end - k)) == 0)
				continue;
			for (; host[k] == bytes[k]; k++)
				;
			fail("byte at 0x%llx: expected 0x%02x, got 0x%02x",
			     (unsigned long long)(w->gpa + k), bytes[k], host[k]);
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

/* After every edit: invariants, the committed window list and the view's region count. */
void check_layout(void)
{
	struct gm_window_info info[MAXWIN + 1] = {GM_OPTS(gm_window_info)};
	const struct mwin *sorted[MAXWIN];
	struct gm_memory *m;
	size_t n, i, regions = 0;
	int err;

	if (!gm__space_invariants_ok(space))
		fail("gm__space_invariants_ok() is false");
	for (i = 0; i < cur.n; i++)
		sorted[i] = &cur.w[i];
	qsort(sorted, cur.n, sizeof(sorted[0]), cmp_win);
	err = gm_space_windows(space, info, MAXWIN + 1, &n);
	if (err || n != cur.n)
		fail("gm_space_windows: expected %zu windows, got %zu (%d)", cur.n, n, err);
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

/* A free slot of mem, zeroed: one no window of either layout uses. */
static unsigned slot_alloc(void)
{
	bool used[MAXSLOT] = {false};
	unsigned k;
	size_t i;

	for (i = 0; i < cur.n; i++)
		used[cur.w[i].slot] = true;
	for (i = 0; depth && i < stg.n; i++)
		used[stg.w[i].slot] = true;
	for (k = 0; used[k]; k++)
		;
	memset(mem[k], 0, sizeof(mem[k]));
	memset(written[k], 0, sizeof(written[k]));
	return k;
}

/* A window just added with handle @h to the edited layout. */
struct mwin *model_add(struct gm_window *h, enum gm_window_kind kind, gm_gpa_t gpa, uint64_t size,
		       uint64_t cap)
{
	struct mlayout *l = edited();
	struct mwin *w = &l->w[l->n];

	w->h = h;
	w->kind = kind;
	w->gpa = gpa;
	w->size = size;
	w->cap = cap;
	memset(w->prot, GM_PROT_ALL, sizeof(w->prot));
	w->slot = kind == GM_WINDOW_RESERVED ? 0 : slot_alloc();
	l->n++;
	return w;
}

/*
 * Check the result @got of an edit whose own errors are @mask (0: none, it
 * must succeed). In a doomed transaction -ECANCELED is possible too, and
 * success is not (space.h names no order between it and argument errors).
 * A failure dooms an open transaction. Returns whether the edit happened.
 */
bool edit_result(unsigned mask, int got, gm_gpa_t gpa)
{
	if (depth && doom)
		mask |= bit(-ECANCELED);
	expect(mask ? mask : bit(0), got, gpa);
	if (got && depth && !doom)
		doom = got;
	return got == 0;
}

void check_read(gm_gpa_t gpa, const unsigned char *got, size_t len)
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
void after_write(gm_gpa_t gpa, const unsigned char *data, size_t len, int want, int got)
{
	if (got != want)
		fail("write 0x%llx+%zu: expected %d, got %d", (unsigned long long)gpa, len, want,
		     got);
	if (!got)
		model_write(gpa, data, len);
	if (gpa + len >= gpa)
		check_bytes(gpa >= MAXLEN ? gpa - MAXLEN : 0, gpa + len + MAXLEN, false);
}
