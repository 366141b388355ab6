/* SPDX-License-Identifier: MIT */
/*
 * guestmem/space.h - the guest's address space as the VMM edits it.
 *
 * A struct gm_space holds windows of four kinds, each at a guest-physical
 * address: RAM (anonymous memory or a window of a caller's gm_mapping), ROM
 * (contents given by the caller; nobody writes it through the library),
 * MMIO (a device: read/write callbacks) and reserved (a hole that must stay
 * empty, e.g. the x86 PCI hole). From the RAM and ROM windows it builds an
 * immutable gm_memory view (memory.h) and publishes a new one, with RCU, on
 * every commit that changes something. Readers in any thread use the
 * current view without taking a lock; listeners (the KVM binding) are told
 * at each commit which regions of the view were added, removed or changed
 * flags; gm_space_read()/gm_space_write() route an access to RAM, ROM or a
 * device. The same object, created with GM_SPACE_PIO, is an x86 port-I/O
 * space (16-bit addresses, device and reserved windows only).
 *
 * Editing
 *   Every edit (add, remove, move, resize, protect) is part of a
 *   transaction. gm_space_begin() opens one; the edits are staged; a single
 *   gm_space_commit() publishes one new view holding all of them, or none:
 *   an edit that fails inside a transaction (for any reason, a bad argument
 *   included) dooms it, and the commit then discards every staged edit and
 *   returns the first failing edit's error. An edit made
 *   with no transaction open is its own transaction (begin, edit, commit),
 *   and returns the edit's error or the commit's.
 *
 * Regions of the view
 *   Each RAM window becomes one view region per run of pages that share a
 *   guest protection (gm_space_protect() splits and merges them); pages
 *   with no guest access (GM_PROT_NONE) are left out of the view. Each ROM
 *   window is one region flagged GM_REGION_ROM | GM_REGION_READONLY. Guest
 *   protection maps to region flags: no GM_PROT_WRITE -> GM_REGION_READONLY
 *   (writes through the library fail with -EACCES), no GM_PROT_EXEC ->
 *   GM_REGION_NOEXEC. Every region has an id that stays the same as long as
 *   its guest address, size and backing stay the same (only its flags may
 *   change); any other change removes it and adds a region with a new id.
 *
 * Dirty tracking
 *   Every RAM window owns one struct gm_dirty (dirty.h) sized to the
 *   window's capacity (its max_size), created with the window and kept for
 *   its whole life: moving, re-protecting and growing the window keep the
 *   same bitmap, so no dirty bit is ever lost to a layout change. View
 *   regions point into it (gm_region_spec.dirty / dirty_offset, the offset
 *   being the region's offset in its window). ROM, MMIO and reserved
 *   windows have none.
 *
 * RCU: the read side (rcu.h states the rules every reader keeps)
 *   1. A thread that calls gm_rcu_read_lock(), gm_space_memory(),
 *      gm_space_read() or gm_space_write() must first register with
 *      gm_rcu_register_thread() and unregister before it exits.
 *   2. gm_space_memory() returns the current view; it must be called
 *      between gm_rcu_read_lock() and gm_rcu_read_unlock(), and the view and
 *      every host pointer obtained from it are valid until that unlock.
 *      Read sections nest, cost no atomic operation, and must not block for
 *      long: every commit waits for the read sections that started before
 *      it published (see gm_space_commit()).
 *   3. Or take a reference with gm_space_memory_get(): no registration, no
 *      read section; the view (and its mappings) stays valid until
 *      gm_memory_put(). Writes through an old view still reach the same
 *      memory and the same dirty bitmaps, but not a window added since.
 *   A mapping that no view references any more is unmapped only after a
 *   grace period has passed since the last view using it was replaced, so a
 *   reader inside a read section never touches unmapped memory.
 *
 * Locking (lock order, outermost first)
 *   1. space->lock, a mutex: serializes editing. gm_space_begin() takes it
 *      and gm_space_commit()/gm_space_abort() release it, so a thread with
 *      an open transaction keeps other threads' edits waiting until it
 *      commits. Listener callbacks run with it held.
 *   2. space->view_lock, a mutex held only to swap or reference the
 *      current view (gm_space_memory_get(), gm_space_windows(), dump).
 *   The RCU read side takes no lock. Device callbacks run inside a read
 *   section and may edit the space (a PCI BAR being moved by a config-space
 *   write): the commit then defers freeing the old view (see
 *   gm_space_commit()).
 *
 * NULL: every function that returns an errno rejects a NULL @s (and any
 * other NULL pointer its contract does not allow) with -EINVAL; the
 * queries without one (gm_space_flags(), gm_space_generation(),
 * gm_space_dirty_enabled()) return 0 / false for a NULL @s; only
 * gm_space_memory(), on the lock-free read path, has a non-NULL @s as a
 * precondition.
 *
 * Lifetime: single owner, gm_space_new() / gm_space_free(). Window handles
 * (struct gm_window *) are valid from the add that returns them until the
 * commit that removes the window (or, for an add inside a transaction that
 * fails or is aborted, until that commit/abort returns).
 */
#ifndef GUESTMEM_SPACE_H
#define GUESTMEM_SPACE_H

#include <guestmem/addr.h>
#include <guestmem/dirty.h>
#include <guestmem/mapping.h>
#include <guestmem/memory.h>
#include <guestmem/rcu.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gm_space;
struct gm_window;
struct gm_space_listener;

/* ---------------------------------------------------------------------- */
/* Spaces                                                                 */
/* ---------------------------------------------------------------------- */

/* gm_space_new() flags. */
#define GM_SPACE_MEMORY 0u	  /* a guest-physical address space (64-bit) */
#define GM_SPACE_PIO	(1u << 0) /* an x86 port-I/O space: ports 0..0xffff, MMIO/reserved only */

/* The address limit of a GM_SPACE_PIO space: its last port is GM_PIO_LIMIT - 1. */
#define GM_PIO_LIMIT 0x10000u

/*
 * Create an empty space (an empty current view).
 * Returns 0 and *@out, -EINVAL if @out is NULL or @flags has an unknown
 * bit, -ENOMEM, or an errno from pthread_mutex_init().
 * Thread-safe.
 */
GM_API int gm_space_new(unsigned flags, struct gm_space **out);

/*
 * Free @s: removes every window (without telling listeners), waits for a
 * grace period, frees every view, window and listener, and calls the
 * release callback of every device still present. NULL is ignored.
 * Preconditions: no transaction open, no other thread using @s, and the
 * caller is not inside an RCU read section (it would wait for itself).
 * References taken with gm_space_memory_get() stay valid.
 */
GM_API void gm_space_free(struct gm_space *s);

/* The flags @s was created with (0 for a NULL @s). Thread-safe. */
GM_API unsigned gm_space_flags(const struct gm_space *s);

/*
 * How many views @s has published: 0 for a new space (and a NULL @s), +1
 * per commit that changed something. Thread-safe (an atomic read).
 */
GM_API uint64_t gm_space_generation(const struct gm_space *s);

/* ---------------------------------------------------------------------- */
/* Windows                                                                */
/* ---------------------------------------------------------------------- */

enum gm_window_kind {
	GM_WINDOW_RAM = 1,
	GM_WINDOW_ROM = 2,
	GM_WINDOW_MMIO = 3,
	GM_WINDOW_RESERVED = 4,
};

/* Guest protection of RAM (gm_space_protect()). */
#define GM_PROT_NONE  0u
#define GM_PROT_READ  (1u << 0)
#define GM_PROT_WRITE (1u << 1)
#define GM_PROT_EXEC  (1u << 2)
#define GM_PROT_ALL   0x7u

/* Access sizes a device accepts (struct gm_device_ops.sizes). */
#define GM_ACCESS_1   (1u << 0)
#define GM_ACCESS_2   (1u << 1)
#define GM_ACCESS_4   (1u << 2)
#define GM_ACCESS_8   (1u << 3)
#define GM_ACCESS_ALL 0xfu

/* struct gm_device_ops.flags */
#define GM_DEVICE_UNALIGNED (1u << 0) /* accesses need not be aligned to their size */
#define GM_DEVICE_RMW	    (1u << 1) /* do a smaller-than-accepted access by read-modify-write */
#define GM_DEVICE_ALL_FLAGS 0x3u

/*
 * A device behind an MMIO (or port-I/O) window. The ops are copied at add
 * time; @opaque is passed back to every callback.
 *
 * read/write: one access of @size bytes (1, 2, 4 or 8: one of @sizes) at
 * byte @offset from the window's start. The value is in guest byte order,
 * little-endian: byte i of the access is bits 8i..8i+7 of @val (a read's
 * bits above 8 * @size are ignored). Return 0 or a negative errno, which
 * gm_space_read()/gm_space_write() pass through. Either may be NULL: reads
 * (or writes) of the device then fail with -EACCES. The callbacks run
 * inside an RCU read section of the accessing thread, possibly in several
 * threads at once.
 *
 * Splitting: gm_space_read()/gm_space_write() cut an access into device
 * accesses in ascending address order, each time taking the largest
 * accepted size that fits in what is left and, unless GM_DEVICE_UNALIGNED,
 * is aligned (offset % size == 0): 8 bytes to a device that takes 4 is two
 * calls. When no accepted size fits (2 bytes to a 4-only device, or an
 * unaligned access to an aligned-only device) the access is done by
 * read-modify-write of the aligned accepted unit holding it if the device
 * sets GM_DEVICE_RMW (a read, then for a write the modified write), else
 * the whole access fails with -EOPNOTSUPP before any callback runs.
 *
 * release: if not NULL, called once when the window is gone and no
 * access can be inside the device any more (after the commit that
 * removed it and a grace period, or from gm_space_free()), from whichever
 * thread reclaims it. The device may free @opaque there. An add that
 * returns an error never calls it; an add that returned 0 inside a
 * transaction that is then aborted or fails calls it when the transaction
 * is discarded.
 */
struct gm_device_ops {
	size_t sz;	  /* sizeof(struct gm_device_ops): GM_OPTS(), abi.h */
	const char *name; /* shown by the dump; copied (NULL: "") */
	int (*read)(void *opaque, uint64_t offset, unsigned size, uint64_t *val);
	int (*write)(void *opaque, uint64_t offset, unsigned size, uint64_t val);
	unsigned sizes; /* GM_ACCESS_*: at least one */
	unsigned flags; /* GM_DEVICE_* */
	void (*release)(void *opaque);
};

/*
 * Common rules of the add functions.
 * - The window [@gpa, @gpa + @size) must not overlap another one: -EEXIST.
 * - @size 0, a NULL @out or @s: -EINVAL; the range wraps past 2^64:
 *   -EOVERFLOW; in a GM_SPACE_PIO space, the range passes GM_PIO_LIMIT:
 *   -ERANGE, and RAM/ROM windows are refused with -EOPNOTSUPP.
 * - RAM and ROM: @gpa and @size must be multiples of GM_PAGE_SIZE (-EINVAL);
 *   a size this process cannot map (4 GiB or more on a 32-bit host) is
 *   -EOVERFLOW. MMIO and reserved windows may have any size and alignment.
 * - Inside a listener callback: -EDEADLK. In a doomed transaction: -ECANCELED.
 * - *@out is set only on success; other errors (-ENOMEM, mmap errors) are
 *   passed through.
 * - Without an open transaction the add is committed before it returns, so
 *   a listener's veto is also a possible error.
 * Thread-safety: any thread; serialized by space->lock (waits while another
 * thread has a transaction open).
 */

/*
 * Add @size bytes of zeroed anonymous RAM at @gpa, guest protection
 * GM_PROT_ALL. @max_size (0 means @size) is the size the window may later
 * grow to with gm_space_resize(): the host mapping and the dirty bitmap
 * are made that large at once (pass GM_MAP_NORESERVE in @map_flags to
 * commit no memory for the part not yet used). @map_flags are those of
 * gm_mapping_new_anon() (GM_MAP_READONLY is refused: -EINVAL).
 * Extra errors: -EINVAL @max_size below @size or not page aligned; those of
 * gm_mapping_new_anon() and gm_dirty_new().
 */
GM_API int gm_space_add_ram(struct gm_space *s, gm_gpa_t gpa, uint64_t size, uint64_t max_size,
			    unsigned map_flags, struct gm_window **out);

/*
 * Add a RAM window of @size bytes at @gpa backed by @mapping's bytes from
 * @offset (a memfd, a file, shared memory: what another process or a
 * vhost-user back end also maps). The window takes its own reference on
 * @mapping. It can grow (gm_space_resize()) up to the end of @mapping.
 * Extra errors: -EINVAL @mapping NULL or @offset not page aligned, or
 * @mapping is GM_MAP_READONLY; -ERANGE [@offset, @offset + @size) leaves
 * @mapping.
 */
GM_API int gm_space_add_ram_mapping(struct gm_space *s, gm_gpa_t gpa, uint64_t size,
				    struct gm_mapping *mapping, size_t offset,
				    struct gm_window **out);

/*
 * Add a ROM of @size bytes at @gpa holding a copy of the @len bytes at
 * @data followed by zeros. The host mapping is made PROT_READ: nobody can
 * write it, through the library or not. Guest protection GM_PROT_READ |
 * GM_PROT_EXEC, region flags GM_REGION_ROM | GM_REGION_READONLY.
 * Extra errors: -EINVAL @len > @size, or @data NULL with @len > 0; those
 * of gm_mapping_new_anon() and gm_mapping_protect().
 */
GM_API int gm_space_add_rom(struct gm_space *s, gm_gpa_t gpa, uint64_t size, const void *data,
			    size_t len, struct gm_window **out);

/*
 * Add a ROM window backed by @mapping's bytes from @offset (a firmware file
 * mapped with gm_mapping_new_fd(), preferably GM_MAP_READONLY). The library
 * never writes it; the host protection is the caller's. The window takes
 * its own reference on @mapping.
 * Extra errors: as gm_space_add_ram_mapping() (a read-only mapping is fine).
 */
GM_API int gm_space_add_rom_mapping(struct gm_space *s, gm_gpa_t gpa, uint64_t size,
				    struct gm_mapping *mapping, size_t offset,
				    struct gm_window **out);

/*
 * Add a device window: accesses to [@gpa, @gpa + @size) call @ops with
 * @opaque (see struct gm_device_ops). The window is not part of the view.
 * @ops is a sized struct (abi.h): make it with GM_OPTS() or GM_OPTS_INIT();
 * fields and callbacks past ops->sz are taken as zero and NULL.
 * Extra errors: -EINVAL @ops NULL, ops->sz below sizeof(size_t), both
 * callbacks NULL, @ops->sizes 0 or with a bit outside GM_ACCESS_ALL,
 * @ops->flags outside GM_DEVICE_ALL_FLAGS; -E2BIG ops->sz is larger than
 * this library's struct and a byte past it is not zero.
 */
GM_API int gm_space_add_mmio(struct gm_space *s, gm_gpa_t gpa, uint64_t size,
			     const struct gm_device_ops *ops, void *opaque, struct gm_window **out);

/*
 * Reserve [@gpa, @gpa + @size): nothing else may be added there, and
 * accesses to it fail with -EFAULT. @name (copied; NULL: "") is shown by
 * the dump.
 */
GM_API int gm_space_add_reserved(struct gm_space *s, gm_gpa_t gpa, uint64_t size, const char *name,
				 struct gm_window **out);

/*
 * Common rules of the edit functions below: -EINVAL if @s or @w is NULL;
 * -ENOENT if @w is not a window of @s (already removed, or staged-removed
 * in the open transaction); -EDEADLK inside a listener callback;
 * -ECANCELED in a doomed transaction; without an open transaction, the
 * errors of the implicit commit (a listener's veto). Thread-safety as the
 * add functions.
 */

/*
 * Remove window @w. Its view regions disappear at the commit; its mapping
 * is unmapped after a grace period once no view uses it; a device's
 * release callback runs then too.
 */
GM_API int gm_space_remove(struct gm_space *s, struct gm_window *w);

/*
 * Move window @w to @new_gpa (a PCI BAR being reprogrammed), keeping its
 * contents, protection, dirty bitmap and device. Moving to where it is is
 * a no-op returning 0.
 * Extra errors: -EEXIST the new range overlaps another window; -EOVERFLOW
 * it wraps; -EINVAL RAM/ROM to an address not page aligned; -ERANGE beyond
 * GM_PIO_LIMIT in a port-I/O space.
 */
GM_API int gm_space_move(struct gm_space *s, struct gm_window *w, gm_gpa_t new_gpa);

/*
 * Grow RAM window @w to @new_size bytes (memory hot-plug). The new part
 * is zeroed memory (the backing's bytes for a caller mapping) with guest
 * protection GM_PROT_ALL. The window's host address and dirty bitmap stay
 * the same. @new_size equal to the current size is a no-op returning 0.
 * Extra errors: -EINVAL @w is not RAM, @new_size smaller than the current
 * size or not page aligned; -ENOSPC beyond the window's max_size (the
 * end of its mapping); -EEXIST the grown range overlaps another window;
 * -EOVERFLOW it wraps.
 */
GM_API int gm_space_resize(struct gm_space *s, struct gm_window *w, uint64_t new_size);

/*
 * Set the guest protection of bytes [@offset, @offset + @size) of RAM window
 * @w to @prot: GM_PROT_NONE, GM_PROT_READ, GM_PROT_READ | GM_PROT_WRITE,
 * GM_PROT_READ | GM_PROT_EXEC or GM_PROT_ALL (write or execute without
 * read is refused). The window's view regions are split and merged so each
 * is a maximal run of one protection. The host mapping is not mprotect()ed:
 * the library checks the region flags, KVM the slot flags.
 * Extra errors: -EINVAL @w is not RAM, @offset or @size not page aligned,
 * @size 0, @prot not one of the values above; -ERANGE the range leaves the
 * window.
 */
GM_API int gm_space_protect(struct gm_space *s, struct gm_window *w, uint64_t offset, uint64_t size,
			    unsigned prot);

/* ---------------------------------------------------------------------- */
/* Transactions                                                           */
/* ---------------------------------------------------------------------- */

/*
 * Open a transaction on @s (takes space->lock; waits while another thread
 * has one open). Transactions nest in one thread: an inner begin/commit
 * pair only counts; the outermost commit publishes.
 * Returns 0, -EINVAL @s NULL, -EDEADLK inside a listener callback, -ENOMEM
 * (copying the layout to stage edits on; nothing is open then).
 */
GM_API int gm_space_begin(struct gm_space *s);

/*
 * Commit the open transaction (the outermost one: an inner commit returns
 * the doom error, if any, or 0, and changes nothing yet).
 *
 * If the transaction is doomed (an edit in it failed), every staged edit is
 * discarded and the first failing edit's error returned. Otherwise, if the
 * staged layout differs from the current one, the changes are computed
 * (struct gm_space_change) and the listeners run in two phases:
 *   1. prepare, each listener in registration order. A listener may veto
 *      by returning a negative errno: then the listeners already prepared
 *      get rollback, in reverse order, every staged edit is discarded, and
 *      commit returns the veto. The space is exactly as before begin.
 *   2. The new view is published (readers see it from now on), then every
 *      listener's commit callback runs ("commit done"), in registration
 *      order.
 * Then, if the calling thread is not inside an RCU read section, commit
 * waits for a grace period and frees the old view (unmapping mappings no
 * view uses any more, releasing removed devices); inside a read section
 * (a device callback editing the space) that is deferred to the next
 * commit made outside one, gm_space_synchronize() or gm_space_free().
 * A commit that changes nothing publishes nothing and calls no listener.
 * Either way the transaction is closed and space->lock released.
 *
 * Returns 0; the doom error; a listener's veto; -ENOMEM building the view
 * (the transaction is then discarded too); -EINVAL @s NULL; -EPERM the
 * calling thread has no transaction open on @s, or calls from inside a
 * listener callback (the commit in progress is not the caller's).
 */
GM_API int gm_space_commit(struct gm_space *s);

/*
 * Discard the open transaction's staged edits (an inner abort dooms the
 * whole transaction with -ECANCELED and returns 0). Handles returned by
 * adds in it become invalid. Returns 0, -EINVAL, or -EPERM as commit.
 */
GM_API int gm_space_abort(struct gm_space *s);

/*
 * Wait for a grace period and free what earlier commits deferred.
 * Returns 0, -EINVAL @s NULL, -EDEADLK if called inside an RCU read section
 * or a listener callback. Thread-safety: any thread; takes space->lock.
 */
GM_API int gm_space_synchronize(struct gm_space *s);

/* ---------------------------------------------------------------------- */
/* The current view                                                       */
/* ---------------------------------------------------------------------- */

/*
 * The current view (RAM and ROM regions). Call inside gm_rcu_read_lock();
 * the view is valid until the matching unlock (RCU rule 2). Never NULL for
 * a live space (an empty space has an empty view). Lock-free; any
 * registered thread. @s may not be NULL (a precondition, not checked).
 */
GM_API struct gm_memory *gm_space_memory(struct gm_space *s);

/*
 * Take a reference on the current view: *@out stays valid until
 * gm_memory_put() (RCU rule 3). No registration or read section needed.
 * Returns 0, -EINVAL if @s or @out is NULL. Thread-safe (takes
 * space->view_lock briefly).
 */
GM_API int gm_space_memory_get(struct gm_space *s, struct gm_memory **out);

/* ---------------------------------------------------------------------- */
/* Access routing                                                         */
/* ---------------------------------------------------------------------- */

/*
 * Read (write) @len bytes at @gpa of the space: RAM and ROM by copy (the
 * bytes the current view maps), device windows by calling the device (split
 * as struct gm_device_ops says). The range may cross windows. The whole range is
 * checked first, against one view, before any byte moves or any callback
 * runs: the first failing byte, in address order, decides the error:
 *   -EFAULT   a hole, a reserved window, beyond a port-I/O space's limit,
 *             or the range wraps;
 *   -EACCES   a write to ROM, to RAM without GM_PROT_WRITE, a read of RAM
 *             without GM_PROT_READ, or an access the device has no
 *             callback for;
 *   -EOPNOTSUPP a device access that cannot be split (see above).
 * Then the bytes move in ascending order; a device callback's error stops
 * the access there and is returned (earlier device side effects stay).
 * Also -EINVAL if @s is NULL, or @buf NULL with @len > 0. @len 0 is 0.
 * Writes to RAM mark dirty pages (when tracking is enabled).
 * Thread-safety: any registered RCU thread (rule 1), any number at once;
 * nests inside a caller's read section. (bench/space.c measures it as
 * "gm_space_read 8 B".)
 */
GM_API int gm_space_read(struct gm_space *s, gm_gpa_t gpa, void *buf, size_t len);
GM_API int gm_space_write(struct gm_space *s, gm_gpa_t gpa, const void *buf, size_t len);

/* ---------------------------------------------------------------------- */
/* Listeners                                                              */
/* ---------------------------------------------------------------------- */

/* A region of the view, as listeners and gm_space_regions() see it. */
struct gm_space_region {
	uint64_t id;   /* stable (see "Regions of the view"); never reused in a space */
	uint32_t slot; /* smallest integer no other live region uses: a KVM slot number */
	gm_gpa_t gpa;  /* first byte */
	uint64_t size; /* bytes; multiple of GM_PAGE_SIZE */
	void *host;    /* host address of @gpa */
	struct gm_mapping *mapping; /* borrowed */
	size_t offset;		    /* of @host in @mapping */
	unsigned flags;		    /* GM_REGION_* */
	unsigned prot;		    /* GM_PROT_* (never GM_PROT_NONE) */
	struct gm_dirty *dirty;	    /* borrowed; NULL for ROM */
	uint64_t dirty_offset;	    /* byte offset of @gpa in @dirty's window */
	struct gm_window *window;   /* the window the region belongs to */
	enum gm_window_kind kind;   /* GM_WINDOW_RAM or GM_WINDOW_ROM */
};

enum gm_change_kind {
	GM_CHANGE_REMOVE = 1, /* @region (as it was) leaves the view */
	GM_CHANGE_FLAGS = 2, /* @region keeps id, place and backing; flags go @old_flags -> flags */
	GM_CHANGE_ADD = 3,   /* @region (new id) enters the view */
};

/*
 * One change of a commit. A commit's changes come as one array, in this
 * deterministic order: every REMOVE (ascending gpa), then every FLAGS
 * (ascending gpa), then every ADD (ascending gpa); a slot freed by a
 * REMOVE may be reused by an ADD of the same commit, so apply in order.
 */
struct gm_space_change {
	enum gm_change_kind kind;
	unsigned old_flags; /* GM_CHANGE_FLAGS only: the flags before */
	unsigned old_prot;  /* GM_CHANGE_FLAGS only: the protection before */
	struct gm_space_region region;
};

/*
 * Listener callbacks; @changes is valid only during the call. They run with
 * space->lock held, in the committing thread: they must not edit the
 * space (-EDEADLK) but may read it (gm_space_memory_get(), gm_space_read()).
 *
 * prepare: may refuse the commit by returning a negative errno. It may
 *   apply the changes already (KVM: set the memory slots) if it can undo
 *   them in rollback; if it fails, it must itself undo what it applied
 *   before returning. The current view is still the old one. May be NULL.
 * rollback: a later listener vetoed: undo what prepare did, returning to
 *   the state before this commit. Called only for listeners whose prepare
 *   succeeded, last prepared first. Cannot fail. May be NULL.
 * commit: the new view is published ("commit done"). The changes are the
 *   same array as prepare saw. Cannot fail. May be NULL.
 */
struct gm_space_listener_ops {
	size_t sz; /* sizeof(struct gm_space_listener_ops): GM_OPTS(), abi.h */
	int (*prepare)(void *opaque, struct gm_space *s, const struct gm_space_change *changes,
		       size_t n);
	void (*rollback)(void *opaque, struct gm_space *s, const struct gm_space_change *changes,
			 size_t n);
	void (*commit)(void *opaque, struct gm_space *s, const struct gm_space_change *changes,
		       size_t n);
};

/*
 * Register a listener (ops copied). @ops is a sized struct (abi.h):
 * callbacks past ops->sz are NULL. It is brought up to date at once: if
 * the view has regions, its prepare is called with one GM_CHANGE_ADD per
 * region, then its commit; a veto there fails the registration (nothing
 * registered, rollback not called). Later commits call it after the
 * listeners registered before it.
 * Returns 0 and *@out (may be NULL if the caller never removes it), or
 * -EINVAL (@s or @ops NULL, ops->sz below sizeof(size_t)), -E2BIG (ops->sz
 * larger than this library's struct with a non-zero byte past it),
 * -EDEADLK (inside a listener callback or with a transaction open in this
 * thread), the veto, -ENOMEM.
 * Thread-safety: any thread; takes space->lock.
 */
GM_API int gm_space_listener_add(struct gm_space *s, const struct gm_space_listener_ops *ops,
				 void *opaque, struct gm_space_listener **out);

/*
 * Unregister @l. No callback is made (the listener tears down its own
 * state). After it returns no callback of @l runs any more.
 * Returns 0, -EINVAL (NULL), -ENOENT (@l not registered on @s), -EDEADLK
 * (inside a listener callback or with a transaction open in this thread).
 * Thread-safety: any thread; takes space->lock.
 */
GM_API int gm_space_listener_remove(struct gm_space *s, struct gm_space_listener *l);

/* ---------------------------------------------------------------------- */
/* Inspection and dirty tracking                                          */
/* ---------------------------------------------------------------------- */

/* What gm_space_windows() and gm_space_window_info() report. */
struct gm_window_info {
	size_t sz; /* set by the caller (GM_OPTS), then to the bytes filled: abi.h */
	struct gm_window *window;
	enum gm_window_kind kind;
	gm_gpa_t gpa;
	uint64_t size;
	uint64_t max_size;	    /* RAM: the size it may grow to; others: @size */
	void *host;		    /* RAM/ROM: host address of @gpa; else NULL */
	struct gm_mapping *mapping; /* RAM/ROM: borrowed; else NULL */
	size_t offset;		    /* of @host in @mapping */
	unsigned prot;		    /* GM_PROT_* of the first page (MMIO: R|W, reserved: NONE) */
	unsigned flags;		    /* GM_REGION_* matching @prot (ROM: ROM|READONLY) */
	size_t nparts;		    /* runs of distinct protection (1: uniform) */
	struct gm_dirty *dirty;	    /* RAM: borrowed, covers max_size; else NULL */
	const char *name;	    /* device / reserved name, "" if none; borrowed */
	const struct gm_device_ops *ops; /* MMIO: the window's copy; else NULL */
	void *opaque;			 /* MMIO: the device's opaque */
	unsigned numa_mode;		 /* RAM: GM_NUMA_* of gm_space_set_policy(); else 0 */
	uint64_t numa_nodes;		 /* RAM: its node mask; else 0 */
	uint64_t block_size;		 /* RAM: gm_space_set_blocks()'s, or 0 (no blocks) */
	uint64_t plugged_size;		 /* RAM: plugged bytes of max_size (all without blocks) */
};

/*
 * Describe the windows of the current (committed) layout in ascending
 * address order: fills at most @max entries of @out and sets *@n to the
 * number of windows. Borrowed pointers in the entries stay valid until the
 * window is removed (take references to keep them longer).
 * The entries are sized structs (abi.h): out[0].sz, set by the caller
 * (GM_OPTS), is the size of one entry as the caller was compiled, and
 * entries are that many bytes apart; each entry filled gets at most that
 * many bytes and its sz set to the number written.
 * Returns 0; -ENOBUFS if there are more than @max windows (*@n is set,
 * @out holds the first @max); -EINVAL @s or @n NULL, @out NULL with
 * @max > 0, or out[0].sz below sizeof(size_t) or not a multiple of the
 * struct's alignment with @max > 0.
 * Thread-safety: any thread (takes space->view_lock).
 */
GM_API int gm_space_windows(struct gm_space *s, struct gm_window_info *out, size_t max, size_t *n);

/*
 * Describe window @w as committed, into the sized struct *@out (abi.h:
 * set out->sz). Returns 0, -EINVAL (NULL argument, out->sz too small),
 * -ENOENT (@w is not a committed window of @s: another space's, or added
 * in a transaction not yet committed). Thread-safety: as
 * gm_space_windows().
 */
GM_API int gm_space_window_info(struct gm_space *s, struct gm_window *w,
				struct gm_window_info *out);

/*
 * The window holding @gpa in the committed layout (reserved windows
 * included), as gm_space_window_info(). Returns 0, -EINVAL (@s or @out
 * NULL, out->sz too small), -EFAULT (a hole).
 * Thread-safety: as gm_space_windows().
 */
GM_API int gm_space_find(struct gm_space *s, gm_gpa_t gpa, struct gm_window_info *out);

/*
 * The regions of the current view with their ids and slots, ascending:
 * same conventions as gm_space_windows() (-ENOBUFS, *@n).
 */
GM_API int gm_space_regions(struct gm_space *s, struct gm_space_region *out, size_t max, size_t *n);

/*
 * Turn dirty tracking of every RAM window's bitmap on or off, now and for
 * RAM windows added later (gm_dirty_set_enabled()). Not transactional.
 * Returns 0, -EINVAL @s NULL. Thread-safety: any thread; takes space->lock
 * (or joins the calling thread's open transaction).
 */
GM_API int gm_space_dirty_enable(struct gm_space *s, bool enabled);

/* Whether gm_space_dirty_enable() last turned tracking on (false for NULL). Thread-safe. */
GM_API bool gm_space_dirty_enabled(const struct gm_space *s);

/*
 * Give the host memory behind guest RAM [@gpa, @gpa + @len) back to the
 * host (a balloon inflating, memory the guest unplugged): each RAM
 * window's part of the range goes through gm_mapping_discard() with
 * @flags (GM_DISCARD_LAZY: private anonymous RAM only), so it frees what
 * really backs it and then reads as zeros, for the guest, the data path
 * and any other process mapping the same memfd. Where the window's dirty
 * tracking is on, the discarded pages are marked dirty (their contents
 * changed to zeros), so an incremental save or a migration carries that;
 * those of unplugged blocks are not (they have no dirty pages:
 * gm_space_set_blocks()).
 * The committed layout is what counts; KVM slots and views stay as they
 * are (they map the same, now empty, memory).
 * *@freed (may be NULL): the bytes of host memory released, summed over
 * the windows (see gm_mapping_discard()).
 * Returns 0, or:
 * -EINVAL   @s NULL, @len 0, the range wraps, a byte of it is not RAM (a
 *           hole, ROM, MMIO, reserved), a window's part of it is not
 *           aligned to that window's backing page size (the huge page
 *           size for hugetlb memory), or an unknown flag;
 * those of gm_mapping_discard() (-EOPNOTSUPP for RAM backed by a private
 * mapping of a file, -EACCES, -ENOMEM, errno of madvise()/fallocate()).
 * The range is checked whole before anything is discarded; a backing that
 * refuses, or a system call that fails, stops the walk with the windows
 * before it already discarded.
 * Thread-safety: any thread; takes space->lock (or runs inside the calling
 * thread's open transaction, on the committed layout). Accesses to the
 * range while it is discarded read old data or zeros.
 */
GM_API int gm_space_discard(struct gm_space *s, gm_gpa_t gpa, uint64_t len, unsigned flags,
			    uint64_t *freed);

/*
 * Fault in the host memory of every RAM window of the committed layout
 * (each window's current size, whatever its guest protection, but no
 * unplugged block: gm_space_set_blocks()), as
 * gm_mapping_prefault() does for one mapping: @opts->threads threads (0:
 * one per CPU of the caller's affinity mask) share the work across all
 * windows, @opts->progress counts bytes of all of them. Typically called
 * once after the RAM is added and before the vCPUs start.
 * Returns 0, or -EINVAL (@s NULL), the errors of gm_mapping_prefault()
 * (-ECANCELED, -EFAULT, -ENOMEM, ...). On an error, windows may be partly
 * faulted in.
 * Thread-safety: any thread; holds space->lock only to list the windows
 * (each mapping is referenced while it is faulted in), so edits may run
 * meanwhile: a window removed meanwhile is still faulted in (its memory
 * lives until the prefault drops it), one added meanwhile is not.
 */
GM_API int gm_space_prefault(struct gm_space *s, const struct gm_prefault_opts *opts);

/*
 * Place RAM window @w's host memory on NUMA nodes: @policy (mapping.h:
 * bind, preferred or interleave over a node mask; GM_NUMA_DEFAULT with
 * nodes 0 removes it) is applied with gm_mapping_set_policy() to the
 * window's whole capacity (max_size), so it holds for memory a later
 * gm_space_resize() brings into use, and it stays with the window while
 * other windows are added, moved or removed. Pages are placed when first
 * faulted in: set it right after the add, before the guest or
 * gm_space_prefault() touches the memory (pages already present stay
 * where they are). The policy shows in gm_window_info (numa_mode,
 * numa_nodes) and in the dump (" numa=bind:0x1" after the name). For RAM
 * on a shared fd the policy is the file's, for every process mapping it.
 * Not an edit: no transaction, no listener is told (KVM slots map the
 * same memory).
 * Returns 0, or -EINVAL (NULL, @w not RAM, a bad policy: see
 * gm_mapping_set_policy()), -ENOENT (@w is neither a committed window of
 * @s nor one of the calling thread's open transaction), the sized-struct
 * errors of abi.h, those of gm_mapping_set_policy() (-ENOSYS without NUMA
 * in the kernel, -EINVAL for a node that does not exist).
 * Thread-safety: any thread; takes space->lock (or runs in the calling
 * thread's transaction).
 */
GM_API int gm_space_set_policy(struct gm_space *s, struct gm_window *w,
			       const struct gm_numa_policy *policy);

/* gm_space_set_blocks() flags. */
#define GM_BLOCKS_PLUGGED (1u << 0) /* every block starts plugged */
#define GM_BLOCKS_ZERO	  (1u << 1) /* unplugged blocks read as zeros (writes refused) */

/*
 * Blocks of RAM plugged in and out (what virtio-mem does): a RAM window's
 * capacity (max_size) is cut into blocks, and each block is plugged (guest
 * RAM like any other) or unplugged: a hole (or zeros, GM_BLOCKS_ZERO
 * below). An unplugged block is left out
 * of the view as a part with no protection is (gm_read()/gm_write() and
 * gm_space_read()/write() say -EFAULT there), its host memory is given
 * back (gm_mapping_discard()), it has no dirty pages, a snapshot stores
 * nothing for it, and a listener (the KVM binding) sees the region that
 * held it removed and the plugged pieces around it added. Plugging a block
 * back makes it RAM again that reads zeros (marked dirty where tracking is
 * on). The three functions below are edits: inside a transaction they are
 * staged and published by its commit; alone each commits itself. The host
 * memory is discarded by the commit, after the grace period that ends the
 * last access through the old view.
 *
 * gm_space_set_blocks() gives RAM window @w blocks of @block_size bytes, all
 * plugged (@flags has GM_BLOCKS_PLUGGED) or all unplugged. @block_size: a
 * power of two, at least GM_PAGE_SIZE, a multiple of the backing's page
 * size (the huge page size for hugetlb), dividing max_size; the window must
 * start on a page of its backing. Once per window.
 * GM_BLOCKS_ZERO: the window's unplugged blocks read as zeros instead of
 * being holes (a virtio-mem device without
 * VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE, whose guest may still read them).
 * Each run of them (within a part the guest may access) is a view region
 * flagged GM_REGION_READONLY | GM_REGION_ZERO, with no dirty bitmap,
 * backed by one anonymous PROT_READ mapping of the window's capacity that
 * is never written (reads find the kernel's shared zero page: no host
 * memory is spent, on kernels that have one for such reads; a kernel seen
 * on a PVM guest gives each read page its own, which costs that page), so: gm_read() and
 * gm_space_read() give zeros; gm_write() and gm_space_write() are refused with -EACCES; the KVM
 * binding makes it a KVM_MEM_READONLY slot, where a guest's write exits as for a ROM
 * (gm_kvm_handle_mmio() refuses it); a save stores nothing for it and a
 * restore never writes it (-EACCES if the file has data there). The
 * window's own memory for the block stays discarded; plugging the block
 * gives it back to the view, zeroed and writable.
 * Returns 0, or -EINVAL (NULL, not RAM, a bad block size, an unknown flag),
 * -ENOENT (@w not in the space), -EBUSY (it has blocks already),
 * -EOPNOTSUPP (RAM on a private mapping of a file: a discard would read
 * back as the file), -ENOMEM (also: no address space for the zero
 * mapping), and the errors common to edits (-EDEADLK, -ECANCELED, a veto).
 */
GM_API int gm_space_set_blocks(struct gm_space *s, struct gm_window *w, uint64_t block_size,
			       unsigned flags);

/*
 * Plug (gm_space_plug()) or unplug (gm_space_unplug()) the blocks of RAM
 * window @w that cover bytes [@offset, @offset + @size) of its capacity
 * (blocks already in that state stay so). A block past the window's
 * current size may be plugged: it becomes RAM when a resize reaches it.
 * Returns 0, or -EINVAL (NULL, @w without blocks, @size 0, @offset or
 * @size not a multiple of the block size, the range leaves max_size),
 * -ENOENT, and the errors common to edits.
 */
GM_API int gm_space_plug(struct gm_space *s, struct gm_window *w, uint64_t offset, uint64_t size);
GM_API int gm_space_unplug(struct gm_space *s, struct gm_window *w, uint64_t offset, uint64_t size);

/*
 * Whether the block holding byte @offset of RAM window @w's capacity is
 * plugged in the committed layout: 1 or 0 (a window without blocks: 1).
 * Returns -EINVAL (NULL, not RAM, @offset past max_size) or -ENOENT.
 * Thread-safe.
 */
GM_API int gm_space_plugged(struct gm_space *s, struct gm_window *w, uint64_t offset);

/*
 * Write a human-readable table of the committed layout: a header line, then
 * one line per window, or per protection run of a RAM window, in ascending
 * address order:
 *   KIND      FIRST              LAST               SIZE       PROT BACKING  NAME
 *   ram       0x0000000000000000 0x00000000bfffffff 3 GiB      rwx  anon
 * kind is ram/rom/mmio/reserved; prot is r/w/x or '-' per bit; backing is
 * anon (memory of its own), fd (a mapping of a file or memfd), device or
 * none; the name column is left out when the window has no name.
 *
 * gm_space_dump() writes into @buf like snprintf(): at most @len bytes
 * including the terminating NUL, and *@needed (if not NULL) gets the full
 * length without the NUL. Returns 0, -ENOBUFS if it was cut short, -EINVAL
 * @s NULL or @buf NULL with @len > 0.
 * gm_space_dump_file() writes to @f: returns 0, -EINVAL (@s or @f NULL),
 * or -EIO if a write to @f failed (part of the table may have been written).
 * Thread-safety: any thread (takes space->view_lock).
 */
GM_API int gm_space_dump(struct gm_space *s, char *buf, size_t len, size_t *needed);
GM_API int gm_space_dump_file(struct gm_space *s, FILE *f);

#ifdef __cplusplus
}
#endif

#endif /* GUESTMEM_SPACE_H */
