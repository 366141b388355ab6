/* SPDX-License-Identifier: MIT */
/*
 * open.c - an open snapshot: the chain from the named file down to its
 * full save (invariant 3 of snapshot-internal.h), what it describes, its
 * closing, and the debug check of the layer's invariants.
 */
#include "snapshot-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

char *gm__path_beside(const char *dir_of, const char *name)
{
	const char *slash = strrchr(dir_of, '/');
	size_t dlen = slash ? (size_t)(slash - dir_of) + 1 : 0;
	size_t nlen = strlen(name);
	char *p = malloc(dlen + nlen + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, dir_of, dlen);
	memcpy(p + dlen, name, nlen + 1);
	return p;
}

static bool same_layout(const struct snap_file *a, const struct snap_file *b)
{
	if (a->nregions != b->nregions)
		return false;
	for (uint32_t i = 0; i < a->nregions; i++)
		if (a->regions[i].gpa != b->regions[i].gpa ||
		    a->regions[i].size != b->regions[i].size)
			return false;
	return true;
}

int gm_snapshot_open(const char *path, unsigned flags, struct gm_snapshot **out)
{
	struct snap_file chain[SNAP_MAX_CHAIN];
	struct gm_snapshot *s;
	unsigned n = 0;
	char *cur = NULL;
	int ret;

	if (path == NULL || out == NULL || (flags & ~GM_SNAPSHOT_OPEN_NOBASE))
		return -EINVAL;
	cur = strdup(path);
	if (cur == NULL)
		return -ENOMEM;
	/* Walk from the newest file down to the full save (invariant 3). */
	for (;;) {
		char *next;

		if (n == SNAP_MAX_CHAIN) {
			ret = -ESTALE;
			goto err;
		}
		ret = gm__snap_file_open(cur, &chain[n]);
		if (ret)
			goto err;
		n++;
		if (n > 1 && (memcmp(chain[n - 2].base_id, chain[n - 1].id, 16) != 0 ||
			      !same_layout(&chain[n - 2], &chain[n - 1]))) {
			ret = -ESTALE;
			goto err;
		}
		if (!(chain[n - 1].flags & SNAP_FLAG_DELTA) || (flags & GM_SNAPSHOT_OPEN_NOBASE))
			break;
		next = gm__path_beside(cur, chain[n - 1].base_name);
		if (next == NULL) {
			ret = -ENOMEM;
			goto err;
		}
		free(cur);
		cur = next;
	}
	free(cur);
	cur = NULL;
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		ret = -ENOMEM;
		goto err;
	}
	s->files = calloc(n, sizeof(*s->files));
	if (s->files == NULL) {
		free(s);
		ret = -ENOMEM;
		goto err;
	}
	for (unsigned i = 0; i < n; i++)
		s->files[i] = chain[n - 1 - i];
	s->nfiles = n;
	s->alone = (chain[0].flags & SNAP_FLAG_DELTA) && n == 1;
	s->uffd = -1;
	s->stopfd = -1;
	pthread_mutex_init(&s->lock, NULL);
	*out = s;
	return 0;
err:
	free(cur);
	while (n > 0)
		gm__snap_file_close(&chain[--n]);
	return ret;
}

int gm_snapshot_describe(const struct gm_snapshot *s, struct gm_snapshot_info *out)
{
	struct gm_snapshot_info info = {0};
	const struct snap_file *f;

	if (s == NULL || out == NULL)
		return -EINVAL;
	f = top_file(s);
	info.version = SNAP_VERSION;
	info.page_size = SNAP_PAGE;
	info.nregions = f->nregions;
	info.flags = (f->flags & SNAP_FLAG_DELTA) ? GM_SNAPSHOT_DELTA : 0;
	info.chain_length = s->nfiles;
	memcpy(info.id, f->id, 16);
	memcpy(info.base_id, f->base_id, 16);
	memcpy(info.base_name, f->base_name, sizeof(info.base_name));
	info.file_size = f->file_size;
	info.created_ns = f->created_ns;
	for (uint32_t i = 0; i < f->nregions; i++) {
		info.ram_size += f->regions[i].size;
		info.defined_pages += f->regions[i].defined_pages;
		info.data_pages += f->regions[i].data_pages;
	}
	return GM_ABI_COPY_OUT(out, &info);
}

int gm_snapshot_region(const struct gm_snapshot *s, uint32_t index, struct gm_snapshot_region *out)
{
	struct gm_snapshot_region info;
	const struct snap_region *r;

	if (s == NULL || out == NULL || gm__abi_check_out(out))
		return -EINVAL;
	if (index >= top_file(s)->nregions)
		return -ENOENT;
	r = &top_file(s)->regions[index];
	info = (struct gm_snapshot_region){
	    .gpa = r->gpa,
	    .size = r->size,
	    .flags = r->flags,
	    .file_offset = r->file_offset,
	    .defined_pages = r->defined_pages,
	    .data_pages = r->data_pages,
	};
	return GM_ABI_COPY_OUT(out, &info);
}

uint64_t gm__snapshot_ram_size(const struct gm_snapshot *s)
{
	uint64_t size = 0;

	for (uint32_t i = 0; i < s->files[0].nregions; i++)
		size += s->files[0].regions[i].size;
	return size;
}

void gm_snapshot_close(struct gm_snapshot *s)
{
	if (s == NULL)
		return;
	gm__lazy_stop(s);
	pthread_mutex_destroy(&s->lock);
	for (unsigned i = 0; i < s->nfiles; i++)
		gm__snap_file_close(&s->files[i]);
	free(s->files);
	free(s);
}

bool gm__snapshot_invariants_ok(struct gm_snapshot *s)
{
	bool ok = s->nfiles >= 1 && s->nfiles <= SNAP_MAX_CHAIN;

	for (unsigned i = 0; ok && i < s->nfiles; i++) {
		const struct snap_file *f = &s->files[i];

		/* 3: the oldest file is the full save unless a delta stands alone. */
		if ((i == 0) != !(f->flags & SNAP_FLAG_DELTA) && !s->alone)
			ok = false;
		if (i > 0 && (memcmp(f->base_id, s->files[i - 1].id, 16) != 0 ||
			      !same_layout(f, &s->files[i - 1])))
			ok = false;
		for (uint32_t ri = 0; ok && ri < f->nregions; ri++) {
			const struct snap_region *r = &f->regions[ri];
			uint64_t words = bm_words(r->npages), ndef = 0;

			for (uint64_t w = 0; w < words; w++) {
				if (r->data[w] & ~r->defined[w]) /* 2 */
					ok = false;
				ndef += (uint64_t)__builtin_popcountll(r->defined[w]);
			}
			if (!(f->flags & SNAP_FLAG_DELTA) && ndef != r->npages) /* 2 */
				ok = false;
		}
	}
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; ok && i < s->nareas; i++) {
		const struct lazy_area *a = s->areas[i];
		uint64_t nchunks = s->files[0].regions[a->region].nchunks;

		if (a->mapping == NULL || gm_mapping_host(a->mapping) != (void *)a->host) /* 5 */
			ok = false;
		for (uint64_t c = 0; ok && c < nchunks; c++) /* 4 */
			ok = __atomic_load_n(&a->state[c], __ATOMIC_ACQUIRE) <= 2;
	}
	pthread_mutex_unlock(&s->lock);
	return ok;
}
