/* SPDX-License-Identifier: MIT */
/*
 * inspect.c - looking at a space: its windows and view regions
 * (gm_space_windows(), _window_info(), _find(), _regions()), switching
 * dirty tracking of its RAM windows on and off, and the text dump. All of
 * it reads the current layout under space->view_lock.
 */
#include "space-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void fill_info(const struct placement *pl, struct gm_window_info *out)
{
	const struct gm_window *w = pl->w;

	*out = (struct gm_window_info){
	    .window = pl->w,
	    .kind = w->kind,
	    .gpa = pl->gpa,
	    .size = pl->size,
	    .max_size = w->kind == GM_WINDOW_RAM ? w->capacity : pl->size,
	    .prot = pl->parts[0].prot,
	    .flags = region_flags(w->kind, pl->parts[0].prot),
	    .nparts = pl->nparts,
	    .dirty = w->dirty,
	    .name = w->name,
	    .numa_mode = w->numa_mode,
	    .numa_nodes = w->numa_nodes,
	};
	if (pl->block) {
		uint64_t first, end, from = 0;

		out->block_size = pl->block;
		while (next_plugged_run(pl, from, w->capacity, &first, &end)) {
			out->plugged_size += end - first;
			from = end;
		}
	} else if (w->kind == GM_WINDOW_RAM) {
		out->plugged_size = w->capacity;
	}
	if (has_memory(w->kind)) {
		out->mapping = w->mapping;
		out->offset = w->offset;
		out->host = (unsigned char *)gm_mapping_host(w->mapping) + w->offset;
	}
	if (w->kind == GM_WINDOW_MMIO) {
		out->ops = &w->ops;
		out->opaque = w->opaque;
	}
}

/*
 * The caller's array of window infos: element @i of @out, whose elements
 * are @stride bytes apart (the caller's sizeof, its out[0].sz), with its
 * sz set to @stride before the copy-out (abi.h).
 */
static void fill_entry(const struct placement *pl, void *out, size_t stride, size_t i)
{
	struct gm_window_info info;
	unsigned char *dst = (unsigned char *)out + i * stride;

	fill_info(pl, &info);
	memcpy(dst, &stride, sizeof(stride));
	(void)GM_ABI_COPY_OUT(dst, &info); /* @stride was checked */
}

int gm_space_windows(struct gm_space *s, struct gm_window_info *out, size_t max, size_t *n)
{
	const struct layout *l;
	size_t stride = 0;
	size_t i;

	if (!s || !n || (!out && max) || (max && gm__abi_check_out(out)))
		return -EINVAL;
	if (max)
		stride = gm__abi_user_sz(out);
	/* Any real array's stride is; most garbage (a forgotten sz) is not. */
	if (stride % _Alignof(struct gm_window_info) != 0)
		return -EINVAL;
	pthread_mutex_lock(&s->view_lock);
	l = s->current;
	for (i = 0; i < l->nplacements && i < max; i++)
		fill_entry(&l->placements[i], out, stride, i);
	*n = l->nplacements;
	pthread_mutex_unlock(&s->view_lock);
	return *n > max ? -ENOBUFS : 0;
}

int gm_space_window_info(struct gm_space *s, struct gm_window *w, struct gm_window_info *out)
{
	long i;

	if (!s || !w || !out || gm__abi_check_out(out))
		return -EINVAL;
	pthread_mutex_lock(&s->view_lock);
	i = find_placement(s->current, w);
	if (i >= 0)
		fill_entry(&s->current->placements[i], out, gm__abi_user_sz(out), 0);
	pthread_mutex_unlock(&s->view_lock);
	return i >= 0 ? 0 : -ENOENT;
}

int gm_space_find(struct gm_space *s, gm_gpa_t gpa, struct gm_window_info *out)
{
	long i;

	if (!s || !out || gm__abi_check_out(out))
		return -EINVAL;
	pthread_mutex_lock(&s->view_lock);
	i = placement_at(s->current, gpa);
	if (i >= 0)
		fill_entry(&s->current->placements[i], out, gm__abi_user_sz(out), 0);
	pthread_mutex_unlock(&s->view_lock);
	return i >= 0 ? 0 : -EFAULT;
}

int gm_space_regions(struct gm_space *s, struct gm_space_region *out, size_t max, size_t *n)
{
	const struct layout *l;
	size_t i;

	if (!s || !n || (!out && max))
		return -EINVAL;
	pthread_mutex_lock(&s->view_lock);
	l = s->current;
	for (i = 0; i < l->nregions && i < max; i++)
		out[i] = l->regions[i];
	*n = l->nregions;
	pthread_mutex_unlock(&s->view_lock);
	return *n > max ? -ENOBUFS : 0;
}

static void dirty_enable_layout(const struct layout *l, bool enabled)
{
	size_t i;

	for (i = 0; l && i < l->nplacements; i++)
		if (l->placements[i].w->dirty)
			gm_dirty_set_enabled(l->placements[i].w->dirty, enabled);
}

int gm_space_dirty_enable(struct gm_space *s, bool enabled)
{
	bool mine;

	if (!s)
		return -EINVAL;
	mine = owned_by_me(s);
	if (!mine)
		pthread_mutex_lock(&s->lock);
	__atomic_store_n(&s->dirty_enabled, enabled, __ATOMIC_RELAXED);
	dirty_enable_layout(s->current, enabled);
	dirty_enable_layout(s->staging, enabled);
	if (!mine)
		pthread_mutex_unlock(&s->lock);
	return 0;
}

bool gm_space_dirty_enabled(const struct gm_space *s)
{
	return s && __atomic_load_n(&s->dirty_enabled, __ATOMIC_RELAXED);
}

/* ---- dump ---- */

/* Where dump output goes: a bounded buffer (snprintf rules) or a FILE. */
struct sink {
	char *buf;
	size_t len;
	size_t pos; /* bytes produced so far (may exceed len) */
	FILE *f;
	int err;
};

__attribute__((format(printf, 2, 3))) static void emit(struct sink *k, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	if (k->f) {
		if (vfprintf(k->f, fmt, ap) < 0)
			k->err = -EIO;
	} else {
		char *at = k->pos < k->len ? k->buf + k->pos : NULL;

		n = vsnprintf(at, at ? k->len - k->pos : 0, fmt, ap);
		if (n < 0)
			k->err = -EIO;
		else
			k->pos += (size_t)n;
	}
	va_end(ap);
}

static void format_size(uint64_t size, char *out, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	unsigned u = 0;

	while (u < 6 && size >= 1024 && size % 1024 == 0) {
		size /= 1024;
		u++;
	}
	snprintf(out, len, "%" PRIu64 " %s", size, units[u]);
}

static const char *kind_name(enum gm_window_kind kind)
{
	switch (kind) {
	case GM_WINDOW_RAM:
		return "ram";
	case GM_WINDOW_ROM:
		return "rom";
	case GM_WINDOW_MMIO:
		return "mmio";
	default:
		return "reserved";
	}
}

static const char *backing_name(const struct gm_window *w)
{
	if (w->kind == GM_WINDOW_MMIO)
		return "device";
	if (!has_memory(w->kind))
		return "none";
	return gm_mapping_fd(w->mapping) >= 0 ? "fd" : "anon";
}

static const char *numa_mode_name(unsigned mode)
{
	switch (mode) {
	case GM_NUMA_PREFERRED:
		return "preferred";
	case GM_NUMA_BIND:
		return "bind";
	case GM_NUMA_INTERLEAVE:
		return "interleave";
	default:
		return "default";
	}
}

/*
 * What a RAM window has beyond the columns: " numa=bind:0x3" for a policy,
 * " blocks=2 MiB plugged=5/8" for blocks (and " unplugged=zero" when the
 * unplugged ones read as zeros); "" for neither.
 */
static void format_extra(const struct placement *pl, char *out, size_t len)
{
	const struct gm_window *w = pl->w;
	int n = 0;

	out[0] = '\0';
	if (w->numa_mode != GM_NUMA_DEFAULT)
		n = snprintf(out, len, " numa=%s:0x%" PRIx64, numa_mode_name(w->numa_mode),
			     w->numa_nodes);
	if (pl->block && n >= 0 && (size_t)n < len) {
		uint64_t nblocks = w->capacity / pl->block, plugged = 0;
		char block[32];

		for (uint64_t b = 0; b < nblocks; b++)
			plugged += block_plugged(pl, b);
		format_size(pl->block, block, sizeof(block));
		snprintf(out + n, len - (size_t)n, " blocks=%s plugged=%" PRIu64 "/%" PRIu64 "%s",
			 block, plugged, nblocks, pl->zero ? " unplugged=zero" : "");
	}
}

static void dump_layout(const struct layout *l, struct sink *k)
{
	size_t i, j;

	emit(k, "%-9s %-18s %-18s %-10s %-4s %-8s %s\n", "KIND", "FIRST", "LAST", "SIZE", "PROT",
	     "BACKING", "NAME");
	for (i = 0; i < l->nplacements; i++) {
		const struct placement *pl = &l->placements[i];

		for (j = 0; j < pl->nparts; j++) {
			const struct part *p = &pl->parts[j];
			char size[32], prot[4], numa[128];

			format_size(p->size, size, sizeof(size));
			prot[0] = p->prot & GM_PROT_READ ? 'r' : '-';
			prot[1] = p->prot & GM_PROT_WRITE ? 'w' : '-';
			prot[2] = p->prot & GM_PROT_EXEC ? 'x' : '-';
			prot[3] = '\0';
			format_extra(pl, numa, sizeof(numa));
			/* No trailing blanks when there is no name. */
			emit(k, "%-9s 0x%016" PRIx64 " 0x%016" PRIx64 " %-10s %-4s %-*s%s%s\n",
			     kind_name(pl->w->kind), pl->gpa + p->offset,
			     pl->gpa + p->offset + (p->size - 1), size, prot,
			     pl->w->name[0] || numa[0] ? 9 : 0, backing_name(pl->w), pl->w->name,
			     numa);
		}
	}
}

int gm_space_dump(struct gm_space *s, char *buf, size_t len, size_t *needed)
{
	struct sink k = {.buf = buf, .len = len};

	if (!s || (!buf && len))
		return -EINVAL;
	if (len)
		buf[0] = '\0';
	pthread_mutex_lock(&s->view_lock);
	dump_layout(s->current, &k);
	pthread_mutex_unlock(&s->view_lock);
	if (needed)
		*needed = k.pos;
	if (k.err)
		return k.err;
	return k.pos >= len ? -ENOBUFS : 0;
}

int gm_space_dump_file(struct gm_space *s, FILE *f)
{
	struct sink k = {.f = f};

	if (!s || !f)
		return -EINVAL;
	pthread_mutex_lock(&s->view_lock);
	dump_layout(s->current, &k);
	pthread_mutex_unlock(&s->view_lock);
	return k.err;
}
