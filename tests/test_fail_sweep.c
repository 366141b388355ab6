/* SPDX-License-Identifier: MIT */
/*
 * test_fail_sweep.c - every allocation and every system call that can fail
 * for want of a resource fails once, anywhere in a walk of the whole public
 * API (issue 17 item 4).
 *
 * The scenario is a table of steps, each one public call (or one
 * transaction) with the checks of its result: a space with a window of
 * every kind, three listeners (one vetoes on demand) and a KVM VM bound
 * to it, dirty tracking and KVM's dirty log, a transaction, hot-plug,
 * protect and move, a full and a delta save, open, verify and read,
 * restore in every mode and into spaces, pre-copy migration, fd I/O,
 * vhost tables and a virtqueue, then the teardown. The driver runs it for
 * N = 1, 2, ... with the Nth wrapped call of this thread made to fail
 * (fail_inject.h). The step that sees the failure must return a negative
 * errno; then every layer's invariant checker must hold (and the
 * listeners' and KVM's view of the regions must be the space's), what the
 * step's contract keeps must be as before the step (guest memory and
 * dirty bits, the space's windows, regions and generation, KVM's slots,
 * the files in the scratch directory, the vhost table in force), and the
 * step retried without injection must succeed. The rest of the scenario
 * then runs to its end, freeing everything: a leak shows as a descriptor
 * or a memfd or snapshot mapping more than before the run (checked here)
 * or as heap LeakSanitizer reports after the run. A step that returns 0
 * although a call failed inside it ("absorbed") is listed; the scenario's
 * later checks show whether anything was lost. The sweep ends with the
 * first run in which nothing failed.
 *
 * GM_SWEEP_STRIDE=k in the environment sweeps every kth N only (for slow
 * builds); the default is every N.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "scratch_dir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <guestmem/guestmem.h>

#include "dirty-internal.h"
#include "fail_inject.h"
#include "memory/memory-internal.h"
#include "snapshot/snapshot-internal.h"
#include "space/space-internal.h"
#include "vhost-internal.h"

#if defined(__SANITIZE_ADDRESS__)
#define SWEEP_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SWEEP_LSAN 1
#endif
#endif
#ifdef SWEEP_LSAN
#include <sanitizer/lsan_interface.h>
#endif

#define KiB  ((uint64_t)1 << 10)
#define MiB  ((uint64_t)1 << 20)
#define PAGE 4096u

/* Where the windows go. */
#define A_GPA	 0x0u	   /* anonymous RAM, grows 64 -> 96 -> 128 KiB */
#define B_GPA	 (1 * MiB) /* RAM in the memfd, moved to B_GPA2 */
#define B_GPA2	 (2 * MiB)
#define B_SIZE	 (64 * KiB)
#define MF_SIZE	 (256 * KiB) /* the memfd: B at 0, vhost's 2nd region at 64K, ROM at 128K */
#define ROM_GPA	 0xe0000u
#define ROMM_GPA 0xf0000u
#define ROM_SIZE (16 * KiB)
#define DEV_GPA	 0xb0000000u
#define HOLE_GPA 0xc0000000u
#define V2_GPA	 (4 * MiB)	   /* vhost's second region (not in the space) */
#define UADDR	 0x7f0000000000ull /* the "front end's" address of B */
/* The virtqueue, inside B. */
#define Q_DESC	(B_GPA2 + 0x8000)
#define Q_AVAIL (B_GPA2 + 0x8100)
#define Q_USED	(B_GPA2 + 0x8200)
#define Q_BUF	(B_GPA2 + 0x9000)

static char sdir[64];
static bool lazy_ok;
/*
 * A VM, if one can be made and bound here: every run binds it (a run
 * that left a slot behind would make the next one fail).
 */
static int kvm_vm = -1;

/* ---- a listener that keeps its own copy of the regions ---- */

/*
 * It builds the copy a commit would give in prepare, with an allocation
 * (so a failing malloc makes it veto with -ENOMEM, as a real listener
 * would), and adopts it in commit or drops it in rollback. @veto makes the
 * next prepare refuse without looking.
 */
struct mirror {
	struct gm_space_region *r, *next;
	size_t n, nnext;
	bool veto;
};

static int region_by_gpa(const void *a, const void *b)
{
	const struct gm_space_region *x = a, *y = b;

	return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

static int mirror_prepare(void *opaque, struct gm_space *s, const struct gm_space_change *c,
			  size_t n)
{
	struct mirror *l = opaque;
	size_t k = 0;

	(void)s;
	if (l->veto) {
		l->veto = false;
		return -ENOMEM;
	}
	l->next = malloc((l->n + n + 1) * sizeof(*l->next));
	if (!l->next)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++) {
		bool gone = false;

		for (size_t j = 0; j < n; j++)
			gone |= c[j].kind == GM_CHANGE_REMOVE && c[j].region.id == l->r[i].id;
		if (!gone)
			l->next[k++] = l->r[i];
	}
	for (size_t j = 0; j < n; j++) {
		if (c[j].kind == GM_CHANGE_ADD)
			l->next[k++] = c[j].region;
		for (size_t i = 0; c[j].kind == GM_CHANGE_FLAGS && i < k; i++)
			if (l->next[i].id == c[j].region.id)
				l->next[i] = c[j].region;
	}
	qsort(l->next, k, sizeof(*l->next), region_by_gpa);
	l->nnext = k;
	return 0;
}

static void mirror_rollback(void *opaque, struct gm_space *s, const struct gm_space_change *c,
			    size_t n)
{
	struct mirror *l = opaque;

	(void)s, (void)c, (void)n;
	free(l->next);
	l->next = NULL;
}

static void mirror_commit(void *opaque, struct gm_space *s, const struct gm_space_change *c,
			  size_t n)
{
	struct mirror *l = opaque;

	(void)s, (void)c, (void)n;
	free(l->r);
	l->r = l->next;
	l->n = l->nnext;
	l->next = NULL;
}

static const struct gm_space_listener_ops mirror_ops =
    GM_OPTS_INIT(gm_space_listener_ops, .prepare = mirror_prepare, .rollback = mirror_rollback,
		 .commit = mirror_commit);

/* ---- a device: 64 registers of 8 bytes ---- */

struct dev {
	uint64_t reg[64];
	int released;
};

static int dev_read(void *opaque, uint64_t offset, unsigned size, uint64_t *val)
{
	struct dev *d = opaque;

	(void)size;
	*val = d->reg[offset / 8 % 64];
	return 0;
}

static int dev_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	struct dev *d = opaque;

	(void)size;
	d->reg[offset / 8 % 64] = val;
	return 0;
}

static void dev_release(void *opaque)
{
	((struct dev *)opaque)->released++;
}

static const struct gm_device_ops dev_ops =
    GM_OPTS_INIT(gm_device_ops, .name = "regs", .read = dev_read, .write = dev_write,
		 .sizes = GM_ACCESS_8, .release = dev_release);

/* ---- what one run of the scenario holds ---- */

struct world {
	struct gm_space *s, *s2;
	struct mirror l1, l2, l3;
	struct gm_space_listener *h2, *h3;
	struct gm_window *a, *b, *rom, *romm, *dev, *hole;
	struct dev regs;
	struct gm_mapping *mf;
	struct gm_snapshot *snap;
	struct gm_memory *m, *unfilled; /* lazily restored: filled by lazy_finish / by close */
	int stream;			/* a memfd the migration stream goes through */
	uint64_t expect;		/* ram_hash() of what the delta save saved */
	uint64_t sent;			/* ram_hash() of what migration sent */
	struct gm_vhost_mem *vm;
	struct gm_vhost_table *t;
	struct gm_virtq *q;
	int vm_fd; /* a KVM VM bound to the space (-1: no KVM here) */
	struct gm_kvm *kvm;
	unsigned seed;
	const char *absorbed; /* the failure a step returning nothing absorbed */
};

/*
 * The option structs of the scenario, all here (another change gives them
 * a size field and an initializer: this is the one place to adapt).
 */
static char delta_base[128];
static const struct gm_snapshot_opts *delta_opts(void)
{
	static struct gm_snapshot_opts o;

	o = GM_OPTS(gm_snapshot_opts, .base = delta_base);
	return &o;
}

static const struct gm_migrate_opts *migrate_opts(void)
{
	static struct gm_migrate_opts o;

	o = GM_OPTS(gm_migrate_opts, .max_rounds = 2);
	return &o;
}

static char *spath(const char *name)
{
	static char p[4][400];
	static int next;
	char *r = p[next++ & 3];

	snprintf(r, sizeof(p[0]), "%s/%s", sdir, name);
	return r;
}

/*
 * A hash of the RAM of @m (ROM regions left out), page by page with each
 * page's address, so a view split by protection and its merged snapshot
 * hash the same.
 */
static uint64_t ram_hash(const struct gm_memory *m)
{
	uint64_t h = 0;

	for (size_t i = 0; i < gm_memory_region_count(m); i++) {
		struct gm_region_info ri = GM_OPTS(gm_region_info);

		assert_int_equal(gm_memory_region(m, i, &ri), 0);
		if (ri.flags & GM_REGION_ROM)
			continue;
		for (uint64_t off = 0; off < ri.size; off += PAGE)
			h = XXH3_64bits_withSeed((const char *)ri.host + off, PAGE,
						 h ^ (ri.gpa + off));
	}
	return h;
}

/* ram_hash() of @s's current view. */
static uint64_t space_hash(struct gm_space *s)
{
	struct gm_memory *m;
	uint64_t h;

	assert_int_equal(gm_space_memory_get(s, &m), 0);
	h = ram_hash(m);
	gm_memory_put(m);
	return h;
}

/*
 * Write @n pseudo-random 8-byte words at random places of the RAM windows:
 * A's writable part [16 KiB, 64 KiB) and B's first half (the virtqueue is
 * in the second).
 */
static void scribble(struct world *w, unsigned n)
{
	struct gm_window_info b = GM_OPTS(gm_window_info);
	struct gm_range ram[2] = {{A_GPA + 16 * KiB, 48 * KiB}, {0, B_SIZE / 2}};

	assert_int_equal(gm_space_window_info(w->s, w->b, &b), 0);
	ram[1].gpa = b.gpa;
	for (unsigned i = 0; i < n; i++) {
		const struct gm_range *r = &ram[i % 2];
		uint64_t v;

		w->seed = w->seed * 1103515245u + 12345u;
		v = (uint64_t)w->seed * 0x9e3779b97f4a7c15ull;
		assert_int_equal(gm_space_write(w->s, r->gpa + (v >> 7) % (r->size / 8) * 8, &v, 8),
				 0);
	}
}

/* ---- the steps ---- */

static int st_space_new(struct world *w)
{
	return gm_space_new(GM_SPACE_MEMORY, &w->s);
}

static int st_listener1(struct world *w)
{
	return gm_space_listener_add(w->s, &mirror_ops, &w->l1, NULL);
}

static int st_listener2(struct world *w)
{
	return gm_space_listener_add(w->s, &mirror_ops, &w->l2, &w->h2);
}

/* The KVM binding: one more listener, whose prepare sets memory slots. */
static int st_kvm_new(struct world *w)
{
	return w->vm_fd >= 0 ? gm_kvm_new(w->vm_fd, w->s, NULL, &w->kvm) : 0;
}

static int st_kvm_log_start(struct world *w)
{
	return w->kvm ? gm_kvm_dirty_log_start(w->kvm) : 0;
}

static int st_kvm_log_sync(struct world *w)
{
	return w->kvm ? gm_kvm_dirty_log_sync(w->kvm) : 0;
}

static int st_kvm_log_stop(struct world *w)
{
	return w->kvm ? gm_kvm_dirty_log_stop(w->kvm) : 0;
}

static int st_kvm_free(struct world *w)
{
	gm_kvm_free(w->kvm);
	w->kvm = NULL;
	return 0;
}

static int st_dirty_on(struct world *w)
{
	return gm_space_dirty_enable(w->s, true);
}

static int st_add_ram(struct world *w)
{
	return gm_space_add_ram(w->s, A_GPA, 64 * KiB, 128 * KiB, GM_MAP_NORESERVE, &w->a);
}

static int st_memfd(struct world *w)
{
	return gm_mapping_new_memfd("sweep", MF_SIZE, 0, &w->mf);
}

static int st_add_ram_mapping(struct world *w)
{
	return gm_space_add_ram_mapping(w->s, B_GPA, B_SIZE, w->mf, 0, &w->b);
}

static int st_add_rom(struct world *w)
{
	static const char fw[] = "firmware image of the sweep";

	return gm_space_add_rom(w->s, ROM_GPA, ROM_SIZE, fw, sizeof(fw), &w->rom);
}

static int st_add_rom_mapping(struct world *w)
{
	return gm_space_add_rom_mapping(w->s, ROMM_GPA, ROM_SIZE, w->mf, 128 * KiB, &w->romm);
}

static int st_add_mmio(struct world *w)
{
	return gm_space_add_mmio(w->s, DEV_GPA, 0x1000, &dev_ops, &w->regs, &w->dev);
}

static int st_add_reserved(struct world *w)
{
	return gm_space_add_reserved(w->s, HOLE_GPA, 0x10000000, "pci-hole", &w->hole);
}

/* The data path: no allocation, nothing to fail. */
static int st_fill(struct world *w)
{
	uint64_t v = 0x1122334455667788ull, r = 0;

	scribble(w, 64);
	assert_int_equal(gm_space_write(w->s, DEV_GPA + 16, &v, 8), 0);
	assert_int_equal(gm_space_read(w->s, DEV_GPA + 16, &r, 8), 0);
	assert_true(r == v);
	return 0;
}

/* One transaction of three edits: all are published or none. */
static int st_txn(struct world *w)
{
	int ret = gm_space_begin(w->s), ret2;

	if (ret)
		return ret;
	ret = gm_space_protect(w->s, w->a, 4 * KiB, 4 * KiB, GM_PROT_READ);
	ret2 = gm_space_move(w->s, w->dev, DEV_GPA + 0x1000);
	ret = ret ? ret : ret2;
	ret2 = gm_space_resize(w->s, w->a, 96 * KiB);
	ret = ret ? ret : ret2;
	ret2 = gm_space_commit(w->s);
	return ret ? ret : ret2;
}

static int st_hotplug(struct world *w)
{
	return gm_space_resize(w->s, w->a, 128 * KiB);
}

static int st_protect_none(struct world *w)
{
	return gm_space_protect(w->s, w->a, 64 * KiB, 4 * KiB, GM_PROT_NONE);
}

static int st_move_ram(struct world *w)
{
	return gm_space_move(w->s, w->b, B_GPA2);
}

/* The second listener refuses a commit: the first is rolled back, nothing changes. */
static int st_veto(struct world *w)
{
	uint64_t gen = gm_space_generation(w->s);
	int ret;

	w->l2.veto = true;
	ret = gm_space_protect(w->s, w->a, 8 * KiB, 4 * KiB, GM_PROT_READ | GM_PROT_EXEC);
	if (w->l2.veto) { /* failed before the listener was asked */
		w->l2.veto = false;
		return ret < 0 ? ret : -EPROTO;
	}
	assert_int_equal(ret, -ENOMEM);
	assert_true(gm_space_generation(w->s) == gen);
	return 0;
}

/* A listener registered when there are regions: brought up to date at once. */
static int st_listener3(struct world *w)
{
	return gm_space_listener_add(w->s, &mirror_ops, &w->l3, &w->h3);
}

static int st_listener3_remove(struct world *w)
{
	int ret = gm_space_listener_remove(w->s, w->h3);

	if (ret == 0)
		w->h3 = NULL;
	return ret;
}

/* Edits thrown away: nothing changes, the added window's mapping is freed. */
static int st_abort(struct world *w)
{
	struct gm_window *x;
	uint64_t gen = gm_space_generation(w->s);
	int ret = gm_space_begin(w->s), ret2;

	if (ret)
		return ret;
	ret = gm_space_add_ram(w->s, 16 * MiB, 64 * KiB, 0, 0, &x);
	ret2 = gm_space_remove(w->s, w->rom);
	ret = ret ? ret : ret2;
	ret2 = gm_space_abort(w->s);
	assert_true(gm_space_generation(w->s) == gen);
	return ret ? ret : ret2;
}

/* The memory and dirty layers on their own, without a space. */
static int st_view(struct world *w)
{
	static const struct gm_range r[] = {{0, 64 * KiB}, {1 * MiB, 64 * KiB}};
	struct gm_memory *m;
	uint64_t v = 0;
	int ret = gm_memory_new_anon(r, 2, &m);

	(void)w;
	if (ret)
		return ret;
	assert_true(gm__memory_invariants_ok(m));
	assert_int_equal(gm_write_u64(m, 1 * MiB + 8, 42), 0);
	assert_int_equal(gm_read_u64(m, 1 * MiB + 8, &v), 0);
	assert_true(v == 42);
	gm_memory_put(m);
	return 0;
}

static int st_dirty(struct world *w)
{
	uint64_t bits[2] = {0};
	struct gm_dirty *d;
	int ret = gm_dirty_new(128 * PAGE, &d);

	(void)w;
	if (ret)
		return ret;
	gm_dirty_set_enabled(d, true);
	gm_dirty_mark(d, 3 * PAGE, 2 * PAGE);
	assert_int_equal(gm_dirty_collect(d, 0, bits, 2), 0);
	assert_true(bits[0] == 0x18 && gm_dirty_count(d) == 0);
	assert_int_equal(gm_dirty_merge(d, 0, bits, 2), 0);
	assert_true(gm_dirty_count(d) == 2 && gm__dirty_invariants_ok(d));
	gm_dirty_put(d);
	return 0;
}

/*
 * Memory given back to the host (a balloon): anonymous RAM by madvise(),
 * the memfd by punching a hole. It reads as zeros after.
 */
static int discard(struct world *w, gm_gpa_t gpa)
{
	uint64_t freed = 0, v = 1;
	int ret = gm_space_discard(w->s, gpa, 8 * KiB, 0, &freed);

	if (ret == 0) {
		assert_int_equal(gm_space_read(w->s, gpa + 8, &v, 8), 0);
		assert_true(v == 0);
	}
	return ret;
}

static int st_discard_anon(struct world *w)
{
	return discard(w, A_GPA + 16 * KiB);
}

static int st_discard_memfd(struct world *w)
{
	return discard(w, B_GPA2);
}

/* fd I/O without a bounce buffer: A (three regions) out, back into B. */
static int st_fd_io(struct world *w, bool out)
{
	struct gm_memory *m;
	size_t done = 0;
	int ret;

	assert_int_equal(gm_space_memory_get(w->s, &m), 0);
	if (out) {
		fi_suspend();
		assert_int_equal(ftruncate(w->stream, 0), 0);
		fi_resume();
		ret = gm_write_to_fd(m, A_GPA, w->stream, 0, 64 * KiB, &done);
	} else {
		assert_int_equal(lseek(w->stream, 16 * KiB, SEEK_SET), 16 * KiB);
		ret = gm_read_from_fd(m, B_GPA2, w->stream, -1, B_SIZE / 2, &done);
	}
	if (ret == 0)
		assert_int_equal(done, out ? 64 * KiB : B_SIZE / 2);
	gm_memory_put(m);
	return ret;
}

static int st_fd_out(struct world *w)
{
	return st_fd_io(w, true);
}

static int st_fd_in(struct world *w)
{
	return st_fd_io(w, false);
}

static int st_dump(struct world *w)
{
	static char buf[4096];
	size_t need;
	int ret = gm_space_dump(w->s, buf, sizeof(buf), &need);

	if (ret == 0)
		assert_non_null(strstr(buf, "pci-hole"));
	return ret;
}

static int st_save_full(struct world *w)
{
	return gm_snapshot_save_space(w->s, spath("full"), NULL);
}

static int st_write_more(struct world *w)
{
	scribble(w, 16);
	return 0;
}

static int st_save_delta(struct world *w)
{
	int ret;

	snprintf(delta_base, sizeof(delta_base), "%s", spath("full"));
	ret = gm_snapshot_save_space(w->s, spath("delta"), delta_opts());
	w->expect = space_hash(w->s);
	return ret;
}

static int st_open(struct world *w)
{
	return gm_snapshot_open(spath("delta"), 0, &w->snap);
}

static int st_verify(struct world *w)
{
	gm_gpa_t bad = 0;

	return gm_snapshot_verify(w->snap, NULL, &bad);
}

static int st_read(struct world *w)
{
	static unsigned char got[B_SIZE / 2], want[B_SIZE / 2];
	int ret = gm_snapshot_read(w->snap, B_GPA2, got, sizeof(got));

	if (ret == 0) {
		assert_int_equal(gm_space_read(w->s, B_GPA2, want, sizeof(want)), 0);
		assert_memory_equal(got, want, sizeof(got));
	}
	return ret;
}

static int st_scribble(struct world *w)
{
	scribble(w, 32);
	return 0;
}

static int st_restore_space(struct world *w)
{
	int ret = gm_snapshot_restore_space(w->snap, w->s, NULL);

	if (ret == 0)
		assert_true(space_hash(w->s) == w->expect);
	return ret;
}

static int restore_new(struct world *w, enum gm_restore_mode mode)
{
	int ret = gm_snapshot_restore_new(w->snap, mode, NULL, &w->m);

	if (ret)
		return ret;
	assert_true(gm__memory_invariants_ok(w->m));
	assert_true(ram_hash(w->m) == w->expect);
	return 0;
}

static int st_restore_copy(struct world *w)
{
	int ret = restore_new(w, GM_RESTORE_COPY);

	gm_memory_put(w->m);
	w->m = NULL;
	return ret;
}

static int st_restore_private(struct world *w)
{
	int ret = restore_new(w, GM_RESTORE_PRIVATE);

	gm_memory_put(w->m);
	w->m = NULL;
	return ret;
}

/* Reads every page in this thread: the handler thread fills them. */
static int st_restore_lazy(struct world *w)
{
	return lazy_ok ? restore_new(w, GM_RESTORE_LAZY) : 0;
}

static int st_lazy_finish(struct world *w)
{
	int ret = lazy_ok ? gm_snapshot_lazy_finish(w->snap, NULL) : 0;

	if (ret == 0) {
		gm_memory_put(w->m);
		w->m = NULL;
	}
	return ret;
}

/* Lazily restored again, never touched: gm_snapshot_close() must fill it. */
static int st_restore_unfilled(struct world *w)
{
	return lazy_ok ? gm_snapshot_restore_new(w->snap, GM_RESTORE_LAZY, NULL, &w->unfilled) : 0;
}

/*
 * Unless gm_snapshot_close() could not read the file or place the pages
 * (which it cannot report: the chunk reads as zero, as a damaged one).
 */
static int st_check_unfilled(struct world *w)
{
	bool unread = w->absorbed &&
		      (strcmp(w->absorbed, "pread64") == 0 || strcmp(w->absorbed, "ioctl") == 0);

	if (w->unfilled && !unread)
		assert_true(ram_hash(w->unfilled) == w->expect);
	gm_memory_put(w->unfilled);
	w->unfilled = NULL;
	return 0;
}

static int st_space2_new(struct world *w)
{
	return gm_space_new(GM_SPACE_MEMORY, &w->s2);
}

static int add_to_space(struct world *w, enum gm_restore_mode mode)
{
	int ret = gm_snapshot_add_to_space(w->snap, w->s2, mode, NULL);

	if (ret == 0)
		assert_true(space_hash(w->s2) == w->expect);
	return ret;
}

static int st_add_to_space(struct world *w)
{
	return add_to_space(w, GM_RESTORE_PRIVATE);
}

static int st_add_to_space_lazy(struct world *w)
{
	return lazy_ok ? add_to_space(w, GM_RESTORE_LAZY) : 0;
}

/* The delta alone: its own facts, no data. */
static int st_open_alone(struct world *w)
{
	struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);
	struct gm_snapshot *s;
	int ret = gm_snapshot_open(spath("delta"), GM_SNAPSHOT_OPEN_NOBASE, &s);

	(void)w;
	if (ret)
		return ret;
	assert_int_equal(gm_snapshot_describe(s, &info), 0);
	assert_true((info.flags & GM_SNAPSHOT_DELTA) && info.chain_length == 1);
	assert_true(gm__snapshot_invariants_ok(s));
	gm_snapshot_close(s);
	return 0;
}

/* One region's backing, mapped privately from the files. */
static int st_map_region(struct world *w)
{
	struct gm_snapshot_region r = GM_OPTS(gm_snapshot_region);
	struct gm_mapping *map;
	static unsigned char want[PAGE];
	int ret = gm_snapshot_map_region(w->snap, 1, GM_RESTORE_PRIVATE, &map);

	if (ret)
		return ret;
	fi_suspend();
	assert_int_equal(gm_snapshot_region(w->snap, 1, &r), 0);
	assert_int_equal(gm_snapshot_read(w->snap, r.gpa, want, PAGE), 0);
	assert_memory_equal(gm_mapping_host(map), want, PAGE);
	fi_resume();
	gm_mapping_put(map);
	return 0;
}

static int st_sync(struct world *w)
{
	return gm_space_synchronize(w->s);
}

static int st_dirty_off(struct world *w)
{
	return gm_space_dirty_enable(w->s, false);
}

static int st_remove_ram(struct world *w)
{
	return gm_space_remove(w->s, w->a);
}

static int st_vhost_clear(struct world *w)
{
	gm_vhost_mem_clear(w->vm);
	return 0;
}

static int st_space2_free(struct world *w)
{
	gm_space_free(w->s2);
	w->s2 = NULL;
	return 0;
}

static int st_close(struct world *w)
{
	gm_snapshot_close(w->snap);
	w->snap = NULL;
	return 0;
}

static int st_migrate_send(struct world *w)
{
	struct gm_migrate_stats st = GM_OPTS(gm_migrate_stats);

	fi_suspend();
	assert_int_equal(ftruncate(w->stream, 0), 0);
	assert_int_equal(lseek(w->stream, 0, SEEK_SET), 0);
	fi_resume();
	w->sent = space_hash(w->s);
	return gm_migrate_send_space(w->s, w->stream, migrate_opts(), &st);
}

/* Into the same space, scribbled on since: it must read as sent again. */
static int st_migrate_recv(struct world *w)
{
	struct gm_migrate_stats st = GM_OPTS(gm_migrate_stats);
	int ret;

	assert_int_equal(lseek(w->stream, 0, SEEK_SET), 0);
	ret = gm_migrate_recv_space(w->s, w->stream, migrate_opts(), &st);
	if (ret == 0)
		assert_true(space_hash(w->s) == w->sent);
	return ret;
}

static struct gm_vhost_region vregion(const struct world *w, int which)
{
	return which == 0 ? (struct gm_vhost_region){.gpa = B_GPA2,
						     .size = B_SIZE,
						     .uaddr = UADDR,
						     .mmap_offset = 0,
						     .fd = gm_mapping_fd(w->mf)}
			  : (struct gm_vhost_region){.gpa = V2_GPA,
						     .size = B_SIZE,
						     .uaddr = UADDR + 16 * MiB,
						     .mmap_offset = B_SIZE,
						     .fd = gm_mapping_fd(w->mf)};
}

static int st_vhost_new(struct world *w)
{
	return gm_vhost_mem_new(8, &w->vm);
}

static int st_vhost_set(struct world *w)
{
	struct gm_vhost_region r = vregion(w, 0);

	return gm_vhost_mem_set(w->vm, &r, 1);
}

static int st_vhost_add(struct world *w)
{
	struct gm_vhost_region r = vregion(w, 1);

	return gm_vhost_mem_add(w->vm, &r);
}

/* The front end's dirty log: a page of the memfd, past everything else in it. */
#define LOG_OFF (192 * KiB)

static int st_vhost_set_log(struct world *w)
{
	return gm_vhost_mem_set_log(w->vm, gm_mapping_fd(w->mf), LOG_OFF, 4096);
}

static int st_vhost_logging(struct world *w)
{
	return gm_vhost_mem_set_logging(w->vm, true);
}

/* The device's write into the request's buffer (st_virtq) is in the log. */
static int st_vhost_logged(struct world *w)
{
	const unsigned char *log = (const unsigned char *)gm_mapping_host(w->mf) + LOG_OFF;
	uint64_t page = Q_BUF / PAGE;

	assert_true(log[page / 8] & (1u << (page % 8)));
	return 0;
}

static int st_vhost_table(struct world *w)
{
	gm_gpa_t gpa;

	w->t = gm_vhost_mem_table(w->vm);
	assert_non_null(w->t);
	assert_int_equal(gm_vhost_table_region_count(w->t), 2);
	assert_int_equal(gm_vhost_uaddr_to_gpa(w->t, UADDR + 8, 8, &gpa), 0);
	assert_true(gpa == B_GPA2 + 8);
	return 0;
}

/*
 * The driver (this test, through the space) posts one request with a
 * writable buffer; the device (through the vhost table) takes it, writes
 * the buffer and gives it back.
 */
static int st_virtq(struct world *w)
{
	const struct gm_memory *vmem = gm_vhost_table_memory(w->t);
	struct gm_virtq_buf bufs[4];
	struct gm_virtq_req req;
	uint16_t used_idx = 0, avail_idx, zero16 = 0;
	uint64_t got = 0, msg = 0x6f6c6c6568ull;
	bool notify;
	int ret = gm_virtq_new(&w->q);
	struct {
		uint64_t addr;
		uint32_t len;
		uint16_t flags, next;
	} desc = {Q_BUF, 64, 2 /* VRING_DESC_F_WRITE */, 0};

	if (ret)
		return ret;
	assert_int_equal(gm_virtq_set_layout(w->q, 16, Q_DESC, Q_AVAIL, Q_USED), 0);
	assert_int_equal(gm_space_write(w->s, Q_DESC, &desc, sizeof(desc)), 0);
	assert_int_equal(gm_space_write(w->s, Q_AVAIL, &zero16, 2), 0);	    /* flags */
	assert_int_equal(gm_space_write(w->s, Q_AVAIL + 4, &zero16, 2), 0); /* ring[0] */
	assert_int_equal(gm_space_read(w->s, Q_AVAIL + 2, &avail_idx, 2), 0);
	avail_idx++;
	assert_int_equal(gm_space_write(w->s, Q_AVAIL + 2, &avail_idx, 2), 0);
	gm_virtq_set_base(w->q, (uint16_t)(avail_idx - 1));
	assert_int_equal(gm_virtq_pop(w->q, vmem, &req, bufs, 4), 0);
	assert_int_equal(req.nbufs, 1);
	assert_true(bufs[0].writable && bufs[0].gpa == Q_BUF);
	assert_int_equal(gm_write(vmem, bufs[0].gpa, &msg, 8), 0);
	assert_int_equal(gm_virtq_push(w->q, vmem, req.head, 8), 0);
	assert_int_equal(gm_virtq_need_notify(w->q, vmem, &notify), 0);
	assert_int_equal(gm_space_read(w->s, Q_USED + 2, &used_idx, 2), 0);
	assert_int_equal(used_idx, avail_idx);
	assert_int_equal(gm_space_read(w->s, Q_BUF, &got, 8), 0);
	assert_true(got == msg);
	return 0;
}

/* A table made alone, not through a gm_vhost_mem. */
static int st_vhost_table_new(struct world *w)
{
	struct gm_vhost_region r[2] = {vregion(w, 0), vregion(w, 1)};
	struct gm_vhost_table *t;
	uint64_t uaddr;
	int ret = gm_vhost_table_new(r, 2, 8, &t);

	if (ret)
		return ret;
	assert_true(gm__vhost_invariants_ok(t));
	assert_int_equal(gm_vhost_gpa_to_uaddr(t, V2_GPA, 8, &uaddr), 0);
	assert_true(uaddr == UADDR + 16 * MiB);
	gm_vhost_table_put(t);
	return 0;
}

static int st_vhost_remove(struct world *w)
{
	struct gm_vhost_region r = vregion(w, 1);

	return gm_vhost_mem_remove(w->vm, &r);
}

static int st_vhost_free(struct world *w)
{
	gm_virtq_free(w->q);
	w->q = NULL;
	gm_vhost_table_put(w->t);
	w->t = NULL;
	gm_vhost_mem_free(w->vm);
	w->vm = NULL;
	return 0;
}

static int st_remove_dev(struct world *w)
{
	int ret = gm_space_remove(w->s, w->dev);

	if (ret == 0)
		assert_int_equal(w->regs.released, 1);
	return ret;
}

static int st_remove_rom(struct world *w)
{
	return gm_space_remove(w->s, w->rom);
}

static int st_listener2_remove(struct world *w)
{
	int ret = gm_space_listener_remove(w->s, w->h2);

	if (ret == 0)
		w->h2 = NULL;
	return ret;
}

static int st_free(struct world *w)
{
	gm_space_free(w->s);
	w->s = NULL;
	gm_mapping_put(w->mf);
	w->mf = NULL;
	return 0;
}

/* What a failing step may change (all else must be as before it). */
#define ST_MEMORY (1u << 0) /* guest memory and dirty bits: a restore stopped half way */
#define ST_DIRTY  (1u << 1) /* dirty bits (the contract does not promise them back) */
#define ST_NOFAIL (1u << 2) /* returns nothing: a failure inside is absorbed or fatal */

static const struct step {
	const char *name;
	int (*run)(struct world *w);
	unsigned flags;
} steps[] = {
    {"gm_space_new", st_space_new, 0},
    {"gm_space_listener_add 1", st_listener1, 0},
    {"gm_kvm_new", st_kvm_new, 0},
    {"gm_space_listener_add 2", st_listener2, 0},
    {"gm_space_dirty_enable", st_dirty_on, 0},
    {"gm_space_add_ram", st_add_ram, 0},
    {"gm_mapping_new_memfd", st_memfd, 0},
    {"gm_space_add_ram_mapping", st_add_ram_mapping, 0},
    {"gm_space_add_rom", st_add_rom, 0},
    {"gm_space_add_rom_mapping", st_add_rom_mapping, 0},
    {"gm_space_add_mmio", st_add_mmio, 0},
    {"gm_space_add_reserved", st_add_reserved, 0},
    {"writes", st_fill, 0},
    {"gm_kvm_dirty_log_start", st_kvm_log_start, 0},
    {"transaction protect+move+resize", st_txn, 0},
    {"gm_space_resize (hot-plug)", st_hotplug, 0},
    {"gm_space_protect NONE", st_protect_none, 0},
    {"gm_space_move RAM", st_move_ram, 0},
    {"listener veto", st_veto, 0},
    {"gm_space_listener_add 3 (late)", st_listener3, 0},
    {"transaction aborted", st_abort, 0},
    {"gm_space_dump", st_dump, 0},
    {"gm_memory_new_anon", st_view, 0},
    {"gm_dirty_new", st_dirty, 0},
    {"gm_kvm_dirty_log_sync", st_kvm_log_sync, ST_DIRTY},
    {"gm_snapshot_save_space full", st_save_full, 0},
    {"writes 2", st_write_more, 0},
    {"gm_snapshot_save_space delta", st_save_delta, 0},
    {"gm_snapshot_open", st_open, 0},
    {"gm_snapshot_open NOBASE", st_open_alone, 0},
    {"gm_snapshot_verify", st_verify, 0},
    {"gm_snapshot_read", st_read, 0},
    {"writes 3", st_scribble, 0},
    {"gm_snapshot_restore_space", st_restore_space, ST_MEMORY},
    {"gm_snapshot_restore_new COPY", st_restore_copy, 0},
    {"gm_snapshot_map_region PRIVATE", st_map_region, 0},
    {"gm_snapshot_restore_new PRIVATE", st_restore_private, 0},
    {"gm_snapshot_restore_new LAZY", st_restore_lazy, 0},
    {"gm_snapshot_lazy_finish", st_lazy_finish, 0},
    {"gm_snapshot_restore_new LAZY untouched", st_restore_unfilled, 0},
    {"gm_space_new 2", st_space2_new, 0},
    {"gm_snapshot_add_to_space", st_add_to_space, 0},
    {"gm_space_free 2", st_space2_free, ST_NOFAIL},
    {"gm_space_new 3", st_space2_new, 0},
    {"gm_snapshot_add_to_space LAZY", st_add_to_space_lazy, 0},
    {"gm_space_free 3", st_space2_free, ST_NOFAIL},
    {"gm_snapshot_close", st_close, ST_NOFAIL},
    {"lazy memory filled by close", st_check_unfilled, 0},
    {"gm_migrate_send_space", st_migrate_send, ST_DIRTY},
    {"writes 4", st_scribble, 0},
    {"gm_migrate_recv_space", st_migrate_recv, ST_MEMORY},
    {"gm_space_discard anonymous", st_discard_anon, 0},
    {"gm_space_discard memfd", st_discard_memfd, 0},
    {"gm_write_to_fd", st_fd_out, 0},
    {"gm_read_from_fd", st_fd_in, ST_MEMORY},
    {"gm_vhost_mem_new", st_vhost_new, 0},
    {"gm_vhost_mem_set", st_vhost_set, 0},
    {"gm_vhost_mem_add", st_vhost_add, 0},
    {"gm_vhost_mem_set_log", st_vhost_set_log, 0},
    {"gm_vhost_mem_set_logging", st_vhost_logging, 0},
    {"gm_vhost_mem_table", st_vhost_table, 0},
    {"virtqueue", st_virtq, 0},
    {"vhost dirty log marked", st_vhost_logged, 0},
    {"gm_vhost_table_new", st_vhost_table_new, 0},
    {"gm_vhost_mem_remove", st_vhost_remove, 0},
    {"gm_vhost_mem_clear", st_vhost_clear, ST_NOFAIL},
    {"vhost teardown", st_vhost_free, ST_NOFAIL},
    {"gm_kvm_dirty_log_stop", st_kvm_log_stop, ST_DIRTY},
    {"gm_space_remove MMIO", st_remove_dev, 0},
    {"gm_space_remove ROM", st_remove_rom, 0},
    {"gm_space_dirty_enable off", st_dirty_off, 0},
    {"gm_space_remove RAM", st_remove_ram, 0},
    {"gm_space_synchronize", st_sync, 0},
    {"gm_space_listener_remove", st_listener2_remove, 0},
    {"gm_space_listener_remove 3", st_listener3_remove, 0},
    {"gm_kvm_free", st_kvm_free, ST_NOFAIL},
    {"gm_space_free", st_free, ST_NOFAIL},
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

/* ---- observable state ---- */

#define MAXW 16
#define MAXF 16

struct state {
	bool space, space2;
	uint64_t gen, gen2;
	size_t nwin, nreg, nwin2, nfiles;
	struct gm_window_info win[MAXW];
	struct gm_space_region reg[2 * MAXW];
	uint64_t dirty[MAXW];
	uint64_t mem;
	struct {
		char name[256];
		struct stat st;
	} files[MAXF];
	bool kvm, logging;
	size_t nslots;
	struct gm_kvm_slot slots[2 * MAXW];
	bool vhost;
	uint64_t vgen;
	size_t vn;
	struct gm_vhost_region vreg[8];
};

static void capture(const struct world *w, struct state *st)
{
	DIR *d;
	struct dirent *e;

	memset(st, 0, sizeof(*st));
	st->space = w->s != NULL;
	if (w->s) {
		st->gen = gm_space_generation(w->s);
		st->win[0].sz = sizeof(st->win[0]);
		assert_int_equal(gm_space_windows(w->s, st->win, MAXW, &st->nwin), 0);
		assert_int_equal(gm_space_regions(w->s, st->reg, 2 * MAXW, &st->nreg), 0);
		for (size_t i = 0; i < st->nwin; i++)
			st->dirty[i] = st->win[i].dirty ? gm_dirty_count(st->win[i].dirty) : 0;
		st->mem = space_hash(w->s);
	}
	st->space2 = w->s2 != NULL;
	if (w->s2) {
		st->gen2 = gm_space_generation(w->s2);
		int ret = gm_space_windows(w->s2, NULL, 0, &st->nwin2);

		assert_true(ret == 0 || ret == -ENOBUFS);
	}
	d = opendir(sdir);
	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		assert_true(st->nfiles < MAXF);
		snprintf(st->files[st->nfiles].name, sizeof(st->files[0].name), "%s", e->d_name);
		assert_int_equal(stat(spath(e->d_name), &st->files[st->nfiles].st), 0);
		st->nfiles++;
	}
	closedir(d);
	st->kvm = w->kvm != NULL;
	if (w->kvm) {
		st->logging = gm_kvm_dirty_log_active(w->kvm);
		st->nslots = gm_kvm_slot_count(w->kvm);
		assert_true(st->nslots <= 2 * MAXW);
		for (size_t i = 0; i < st->nslots; i++) {
			st->slots[i].sz = sizeof(st->slots[i]);
			assert_int_equal(gm_kvm_slot(w->kvm, i, &st->slots[i]), 0);
		}
	}
	st->vhost = w->vm != NULL;
	if (w->vm) {
		struct gm_vhost_table *t = gm_vhost_mem_table(w->vm);

		st->vgen = gm_vhost_mem_generation(w->vm);
		st->vn = t ? gm_vhost_table_region_count(t) : 0;
		for (size_t i = 0; i < st->vn; i++)
			assert_int_equal(gm_vhost_table_region(t, i, &st->vreg[i]), 0);
		gm_vhost_table_put(t);
	}
}

static const struct state *find_file(const struct state *st, const char *name, size_t *at)
{
	for (*at = 0; *at < st->nfiles; (*at)++)
		if (strcmp(st->files[*at].name, name) == 0)
			return st;
	return NULL;
}

/* Fails the test with what differs between @a (before the step) and @b. */
static void compare(const struct state *a, const struct state *b, unsigned flags, int ret,
		    const char *what)
{
	if (a->space != b->space || a->space2 != b->space2 || a->vhost != b->vhost)
		fail_msg("%s: an object appeared or went", what);
	if (a->gen != b->gen || a->gen2 != b->gen2)
		fail_msg("%s: the space published a new view", what);
	if (a->nwin != b->nwin || a->nreg != b->nreg || a->nwin2 != b->nwin2)
		fail_msg("%s: windows %zu -> %zu, regions %zu -> %zu", what, a->nwin, b->nwin,
			 a->nreg, b->nreg);
	for (size_t i = 0; i < a->nwin; i++) {
		const struct gm_window_info *x = &a->win[i], *y = &b->win[i];

		if (x->window != y->window || x->gpa != y->gpa || x->size != y->size ||
		    x->max_size != y->max_size || x->host != y->host || x->prot != y->prot ||
		    x->nparts != y->nparts || x->flags != y->flags)
			fail_msg("%s: window %zu changed", what, i);
		if (!(flags & (ST_MEMORY | ST_DIRTY)) && a->dirty[i] != b->dirty[i])
			fail_msg("%s: window %zu has %llu dirty pages, not %llu", what, i,
				 (unsigned long long)b->dirty[i], (unsigned long long)a->dirty[i]);
	}
	for (size_t i = 0; i < a->nreg; i++)
		if (a->reg[i].id != b->reg[i].id || a->reg[i].slot != b->reg[i].slot ||
		    a->reg[i].flags != b->reg[i].flags)
			fail_msg("%s: region %zu changed", what, i);
	if (!(flags & ST_MEMORY) && a->mem != b->mem)
		fail_msg("%s: guest memory changed", what);
	/* A save whose only failure was the directory's fsync has renamed its file. */
	for (size_t i = 0; i < b->nfiles; i++) {
		size_t j;

		if (strstr(b->files[i].name, ".tmp"))
			fail_msg("%s: stray file %s", what, b->files[i].name);
		if (ret == -EINPROGRESS)
			continue;
		if (!find_file(a, b->files[i].name, &j))
			fail_msg("%s: new file %s", what, b->files[i].name);
		if (a->files[j].st.st_ino != b->files[i].st.st_ino ||
		    a->files[j].st.st_size != b->files[i].st.st_size ||
		    a->files[j].st.st_mtim.tv_sec != b->files[i].st.st_mtim.tv_sec ||
		    a->files[j].st.st_mtim.tv_nsec != b->files[i].st.st_mtim.tv_nsec)
			fail_msg("%s: file %s changed", what, b->files[i].name);
	}
	if (a->nfiles != b->nfiles && ret != -EINPROGRESS)
		fail_msg("%s: %zu files, not %zu", what, b->nfiles, a->nfiles);
	if (a->kvm != b->kvm || a->nslots != b->nslots || a->logging != b->logging)
		fail_msg("%s: the KVM binding changed (%zu slots, not %zu)", what, b->nslots,
			 a->nslots);
	for (size_t i = 0; i < a->nslots; i++)
		if (a->slots[i].slot != b->slots[i].slot ||
		    a->slots[i].flags != b->slots[i].flags || a->slots[i].gpa != b->slots[i].gpa ||
		    a->slots[i].size != b->slots[i].size || a->slots[i].host != b->slots[i].host)
			fail_msg("%s: KVM slot %zu changed: id %u -> %u, flags %#x -> %#x, gpa "
				 "%#llx -> %#llx, logging %d -> %d",
				 what, i, a->slots[i].slot, b->slots[i].slot, a->slots[i].flags,
				 b->slots[i].flags, (unsigned long long)a->slots[i].gpa,
				 (unsigned long long)b->slots[i].gpa, a->logging, b->logging);
	if (a->vgen != b->vgen || a->vn != b->vn)
		fail_msg("%s: the vhost table in force changed", what);
	for (size_t i = 0; i < a->vn; i++)
		if (a->vreg[i].gpa != b->vreg[i].gpa || a->vreg[i].size != b->vreg[i].size ||
		    a->vreg[i].uaddr != b->vreg[i].uaddr ||
		    a->vreg[i].mmap_offset != b->vreg[i].mmap_offset ||
		    a->vreg[i].fd != b->vreg[i].fd)
			fail_msg("%s: vhost region %zu changed", what, i);
}

/* The listeners' copies of the regions are the space's regions. */
static void check_mirror(struct gm_space *s, const struct mirror *l, const char *what)
{
	struct gm_space_region r[2 * MAXW];
	size_t n;

	assert_int_equal(gm_space_regions(s, r, 2 * MAXW, &n), 0);
	if (n != l->n)
		fail_msg("%s: a listener knows %zu regions, the space has %zu", what, l->n, n);
	for (size_t i = 0; i < n; i++)
		if (r[i].id != l->r[i].id || r[i].gpa != l->r[i].gpa || r[i].size != l->r[i].size ||
		    r[i].flags != l->r[i].flags || r[i].slot != l->r[i].slot)
			fail_msg("%s: a listener's region %zu is not the space's", what, i);
	assert_null(l->next);
}

/* KVM has one slot per region of the view, where the region is. */
static void check_kvm(struct gm_space *s, const struct gm_kvm *k, const char *what)
{
	struct gm_space_region r[2 * MAXW];
	size_t n;

	assert_int_equal(gm_space_regions(s, r, 2 * MAXW, &n), 0);
	if (gm_kvm_slot_count(k) != n)
		fail_msg("%s: KVM has %zu slots for %zu regions", what, gm_kvm_slot_count(k), n);
	for (size_t i = 0; i < n; i++) {
		struct gm_kvm_slot sl = GM_OPTS(gm_kvm_slot);

		assert_int_equal(gm_kvm_slot_find(k, r[i].gpa, &sl), 0);
		if (sl.gpa != r[i].gpa || sl.size != r[i].size || sl.host != r[i].host ||
		    sl.slot != r[i].slot)
			fail_msg("%s: KVM slot %u is not region %zu", what, sl.slot, i);
	}
}

/* Every layer's invariant checker, on everything the run holds. */
static void check_invariants(const struct world *w, const char *what)
{
	struct gm_space *sp[2] = {w->s, w->s2};

	for (int k = 0; k < 2; k++) {
		struct gm_window_info win[MAXW];
		struct gm_memory *m;
		size_t n;

		if (!sp[k])
			continue;
		if (!gm__space_invariants_ok(sp[k]))
			fail_msg("%s: space invariants broken", what);
		assert_int_equal(gm_space_memory_get(sp[k], &m), 0);
		if (!gm__memory_invariants_ok(m))
			fail_msg("%s: view invariants broken", what);
		gm_memory_put(m);
		win[0].sz = sizeof(win[0]);
		assert_int_equal(gm_space_windows(sp[k], win, MAXW, &n), 0);
		for (size_t i = 0; i < n; i++)
			if (win[i].dirty && !gm__dirty_invariants_ok(win[i].dirty))
				fail_msg("%s: dirty bitmap invariants broken", what);
	}
	if (w->kvm)
		check_kvm(w->s, w->kvm, what);
	if (w->s) {
		check_mirror(w->s, &w->l1, what);
		if (w->h2)
			check_mirror(w->s, &w->l2, what);
		if (w->h3)
			check_mirror(w->s, &w->l3, what);
	}
	if (w->unfilled && !gm__memory_invariants_ok(w->unfilled))
		fail_msg("%s: restored view invariants broken", what);
	if (w->m && !gm__memory_invariants_ok(w->m))
		fail_msg("%s: restored view invariants broken", what);
	if (w->snap && !gm__snapshot_invariants_ok(w->snap))
		fail_msg("%s: snapshot invariants broken", what);
	if (w->vm && !gm__vhost_mem_invariants_ok(w->vm))
		fail_msg("%s: vhost invariants broken", what);
}

/* ---- the driver ---- */

/* Descriptors, and mappings of memfds and of files of the scratch directory. */
static void count_resources(unsigned *fds, unsigned *maps)
{
	char line[512];
	DIR *d = opendir("/proc/self/fd");
	FILE *f;

	assert_non_null(d);
	*fds = 0;
	while (readdir(d))
		(*fds)++;
	closedir(d);
	f = fopen("/proc/self/maps", "r");
	assert_non_null(f);
	*maps = 0;
	while (fgets(line, sizeof(line), f))
		*maps +=
		    strstr(line, "memfd:") || strstr(line, sdir) || strstr(line, "userfaultfd");
	fclose(f);
}

/* Remove the files the last run left in the scratch directory. */
static void clear_dir(void)
{
	DIR *d = opendir(sdir);
	struct dirent *e;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			assert_int_equal(unlink(spath(e->d_name)), 0);
	closedir(d);
}

struct tally {
	const char *call;
	unsigned long points;
	unsigned long absorbed;
};

static struct tally tallies[32];

static struct tally *tally_of(const char *call)
{
	size_t i;

	for (i = 0; i < 32 && tallies[i].call; i++)
		if (strcmp(tallies[i].call, call) == 0)
			return &tallies[i];
	assert_true(i < 32);
	tallies[i].call = call;
	return &tallies[i];
}

/*
 * Run the scenario with the @nth counted call failing (0: none). Returns
 * whether a failure was injected.
 */
static bool run(unsigned long nth)
{
	struct world w = {.stream = -1, .vm_fd = kvm_vm, .seed = 1};
	unsigned fds0, maps0, fds1, maps1;
	bool hit = false;
	char what[160];

	clear_dir();
	count_resources(&fds0, &maps0);
	w.stream = memfd_create("sweep-stream", MFD_CLOEXEC);
	assert_true(w.stream >= 0);
	if (nth)
		fi_arm(FI_ALL, FI_THIS_THREAD, nth);
	fi_suspend();
	for (size_t i = 0; i < NSTEPS; i++) {
		const struct step *st = &steps[i];
		struct state before, after;
		int ret;

		if (nth && !hit)
			capture(&w, &before);
		fi_resume();
		ret = st->run(&w);
		fi_suspend();
		snprintf(what, sizeof(what), "N=%lu, step \"%s\", failing %s", nth, st->name,
			 fi_failed_call());
		if (nth && !hit && strcmp(fi_failed_call(), "none") != 0) {
			struct tally *t = tally_of(fi_failed_call());

			hit = true;
			t->points++;
			if (ret == 0) {
				/* A close of a descriptor only read from, or a step without a
				 * result. */
				t->absorbed++;
				w.absorbed = fi_failed_call();
				if (strcmp(fi_failed_call(), "close") != 0)
					print_message("absorbed: %s\n", what);
				check_invariants(&w, what);
				continue;
			}
			if (ret > 0)
				fail_msg("%s: returned %d", what, ret);
			check_invariants(&w, what);
			capture(&w, &after);
			compare(&before, &after, st->flags, ret, what);
			ret = st->run(&w);
			if (ret != 0)
				fail_msg("%s: the retry returned %d (%s)", what, ret,
					 strerror(-ret));
		} else if (ret != 0) {
			fail_msg("%s: returned %d (%s) with nothing injected", what, ret,
				 strerror(-ret));
		}
		check_invariants(&w, what);
	}
	fi_disarm();
	free(w.l1.r);
	free(w.l2.r);
	free(w.l3.r);
	close(w.stream);
	count_resources(&fds1, &maps1);
	if (fds1 != fds0 || maps1 != maps0)
		fail_msg(
		    "N=%lu: %u descriptors and %u memfd/file mappings after the run, %u and %u "
		    "before",
		    nth, fds1, maps1, fds0, maps0);
#ifdef SWEEP_LSAN
	if (__lsan_do_recoverable_leak_check() != 0)
		fail_msg("N=%lu: the run leaked (LeakSanitizer's report above)", nth);
#endif
	return hit;
}

/* Makes kvm_vm if a VM can be made and bound to a space here. */
static void kvm_open(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	struct gm_space *s;
	struct gm_kvm *k;

	if (kvm < 0)
		return;
	kvm_vm = ioctl(kvm, KVM_CREATE_VM, 0);
	close(kvm);
	if (kvm_vm < 0)
		return;
	assert_int_equal(gm_space_new(GM_SPACE_MEMORY, &s), 0);
	if (gm_kvm_new(kvm_vm, s, NULL, &k) == 0) {
		gm_kvm_free(k);
	} else {
		close(kvm_vm);
		kvm_vm = -1;
	}
	gm_space_free(s);
}

static void every_failure_anywhere_in_the_api_is_clean(void **state)
{
	const char *env = getenv("GM_SWEEP_STRIDE");
	unsigned long stride = env ? strtoul(env, NULL, 10) : 1, n, runs = 0, points = 0;

	(void)state;
	if (stride == 0)
		stride = 1;
	lazy_ok = gm_snapshot_lazy_supported() == 0;
	if (!lazy_ok)
		print_message("note: lazy restore cannot run here, its steps do nothing\n");
	/*
	 * Valgrind runs one thread at a time: a thread stopped in a
	 * userfaultfd fault keeps the handler thread from ever running, so the
	 * first lazy step would hang (test_snapshot's lazy_testable() skips the same way).
	 */
	const char *pre = getenv("LD_PRELOAD");
	if (lazy_ok && pre != NULL && strstr(pre, "vgpreload") != NULL) {
		lazy_ok = false;
		print_message("skipped: the lazy restore steps, under valgrind, which serializes "
			      "threads\n");
	}
	kvm_open();
	if (kvm_vm < 0)
		print_message("note: no KVM VM can be bound here, the KVM steps do nothing\n");
	assert_false(run(0));
	for (n = 1; run(n); n += stride)
		runs++;
	print_message("swept N = 1..%lu (stride %lu): %lu runs with a failure\n", n - 1, stride,
		      runs);
	for (size_t i = 0; i < 32 && tallies[i].call; i++) {
		print_message("  %-16s %5lu failure points (%lu absorbed)\n", tallies[i].call,
			      tallies[i].points, tallies[i].absorbed);
		points += tallies[i].points;
	}
	assert_true(points == runs);
	assert_true(n > 100);
	if (kvm_vm >= 0)
		close(kvm_vm);
}

static int setup(void **state)
{
	(void)state;
	gm_rcu_register_thread();
	return scratch_dir_make(sdir, sizeof(sdir), "sweep");
}

static int teardown(void **state)
{
	(void)state;
	gm_rcu_unregister_thread();
	return scratch_dir_remove(sdir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(every_failure_anywhere_in_the_api_is_clean),
	};

	return cmocka_run_group_tests_name("fail_sweep", tests, setup, teardown);
}
