/* SPDX-License-Identifier: MIT */
/*
 * guestmem/kvm.h - the KVM binding: memory slots that follow a gm_space,
 * the KVM dirty log merged into guestmem's bitmaps, and MMIO / port-I/O
 * exits routed to the space's devices.
 *
 * A struct gm_kvm ties one KVM VM file descriptor to one memory space (and
 * optionally a port-I/O space). It registers as a listener of the memory
 * space and, at every commit, makes KVM's memory slots match the new view:
 *
 *   - one slot per region of the view (RAM and ROM; MMIO and reserved
 *     windows have no slot, so guest accesses there exit as
 *     KVM_EXIT_MMIO);
 *   - a region the library treats as read-only (GM_REGION_READONLY: ROM,
 *     or RAM the VMM write-protected) becomes a KVM_MEM_READONLY slot, so
 *     guest writes there exit as MMIO writes, which gm_kvm_handle_exit()
 *     hands to gm_space_write(), which refuses them (-EACCES);
 *   - a region that moved, was resized or changed its read-only flag is
 *     deleted and re-created, as KVM requires; slot ids freed by a removal
 *     are reused (lowest free id first). The ids are the binding's own
 *     (gm_kvm_slot()), not gm_space_region.slot, so that a lowered slot
 *     limit can be respected;
 *   - at most gm_kvm_slot_limit() slots (KVM_CAP_NR_MEMSLOTS, or less if
 *     the VMM keeps some ids for itself): a commit that needs more fails
 *     with -ENOSPC;
 *   - the change is made in the space's prepare phase: if KVM refuses any
 *     slot change, the slots already changed are put back, the commit is
 *     vetoed with KVM's errno, and the space stays as it was.
 * The VMM never calls KVM_SET_USER_MEMORY_REGION itself for guestmem
 * memory (it may for ids at or above the slot limit it set).
 *
 * Dirty log. State diagram, with the function behind each transition:
 *
 *      gm_kvm_dirty_log_start()          gm_kvm_dirty_log_sync()
 *   OFF ------------------------> LOGGING <-----------------+
 *    ^                               |  \___________________|
 *    +-------------------------------+
 *         gm_kvm_dirty_log_stop()  (syncs first, so nothing is lost)
 *
 * While LOGGING every slot has KVM_MEM_LOG_DIRTY_PAGES (slots created by
 * later commits too). Sync reads each slot's log with KVM_GET_DIRTY_LOG
 * (which also clears it and write-protects the pages again) and ORs it into
 * the dirty bitmap of the region behind the slot (gm_dirty_merge() at the
 * region's page offset), so one gm_dirty tells what guest vCPUs and the
 * library's own writers (devices) dirtied; collect it with
 * gm_dirty_collect(). A slot about to be deleted (region removed, moved or
 * re-protected) is synced first, so a page the guest dirtied just before an
 * unplug is still in the region's bitmap afterwards.
 *
 * Why the dirty log and not the dirty ring (KVM_CAP_DIRTY_LOG_RING): the
 * ring is per vCPU, must be enabled before any vCPU exists, is read
 * through each vCPU's own mapping and fills up (KVM_EXIT_DIRTY_RING_FULL
 * stops the vCPU until the VMM harvests it) - so it needs the vCPUs and
 * the VMM's run loop, which this binding does not own, and with the ring
 * on, KVM_GET_DIRTY_LOG is refused. The log needs only the VM fd, its
 * format is exactly gm_dirty's (one bit per 4 KiB page, 64 pages per
 * word), and its cost is one ioctl per slot plus a pass over a bitmap of
 * guest size / 32768 bytes (64 GiB of RAM: 2 MiB): see bench/dirty.c for
 * the merge cost. The ring wins only for very large guests that dirty few
 * pages; it can be added later behind the same start/stop/sync calls.
 *
 * Exits. gm_kvm_handle_exit() (or the two functions behind it) takes the
 * struct kvm_run of a vCPU that returned from KVM_RUN with KVM_EXIT_MMIO or
 * KVM_EXIT_IO, performs the access through gm_space_read()/gm_space_write() (RAM, ROM
 * or device) and, for reads, stores the result where KVM expects it, so
 * the VMM just calls KVM_RUN again. Every number in the run structure is
 * treated as guest-controlled: sizes and counts are checked and the port
 * I/O data area is bounds-checked against the run mapping's size before
 * any byte moves.
 *
 * Lifetime: single owner: gm_kvm_new() / gm_kvm_free(). The space(s) and
 * the VM fd are borrowed and must outlive the gm_kvm. The binding holds a
 * reference on the mapping behind every slot, so KVM never points at
 * unmapped memory.
 * Threads: the exit handlers are safe from any number of vCPU threads at
 * once; they call gm_space_read()/gm_space_write(), so the calling thread
 * must be registered as an RCU reader (gm_rcu_register_thread(), rule 1 of
 * rcu.h). The other functions are serialized by an internal lock and may be
 * called from any thread, also while the space commits on another thread.
 * Do not call them from inside one of the space's listener callbacks.
 *
 * NULL: every function that returns an errno rejects a NULL @k (and the
 * other NULL pointers its contract names) with -EINVAL; the queries
 * without one return 0 / false for a NULL @k; gm_kvm_free() ignores NULL.
 *
 * Hosts without KVM (32-bit ARM): the library exports the same functions,
 * but gm_kvm_new() fails with -ENOSYS, so no binding can exist and the
 * others only ever see a NULL @k.
 */
#ifndef GUESTMEM_KVM_H
#define GUESTMEM_KVM_H

#include <guestmem/addr.h>

#ifdef __cplusplus
extern "C" {
#endif

struct gm_kvm;
struct gm_space;
struct kvm_run; /* <linux/kvm.h> */

/* One KVM memory slot as the binding set it (gm_kvm_slot(), gm_kvm_slot_find()). */
struct gm_kvm_slot {
	size_t sz;	/* set by the caller (GM_OPTS), then to the bytes filled: abi.h */
	void *host;	/* userspace_addr (beside sz: no padding on any 32-bit ABI) */
	uint32_t slot;	/* KVM slot id */
	uint32_t flags; /* KVM_MEM_READONLY, KVM_MEM_LOG_DIRTY_PAGES as given to KVM */
	gm_gpa_t gpa;	/* guest_phys_addr */
	uint64_t size;	/* memory_size */
};

/*
 * Bind the VM @vm_fd to the memory space @space and (if not NULL) the port
 * I/O space @io: registers a listener on @space and creates a slot for every
 * region of its current view at once.
 * Returns 0 and *@out, or:
 * -EINVAL  @out or @space NULL, @vm_fd < 0;
 * -ENOTSUP the view has a read-only region and KVM lacks
 *          KVM_CAP_READONLY_MEM, a region is not 4 KiB aligned (gpa,
 *          size or host address) as KVM requires, or KVM reports no
 *          memory slots at all;
 * -ENOSPC  the view has more regions than KVM has slots;
 * -EDEADLK called with a transaction open on @space in this thread, or from
 *          inside one of @space's listener callbacks;
 * -ENOMEM;
 * -ENOSYS  the library was built for a host without KVM;
 * another negative errno from KVM (e.g. -EBADF, -ENOTTY: not a VM fd) or
 * from pthread_mutex_init().
 * On failure no slot is left behind. Thread-safe.
 */
GM_API int gm_kvm_new(int vm_fd, struct gm_space *space, struct gm_space *io, struct gm_kvm **out);

/*
 * Unregister from the space, delete every slot the binding created
 * (errors ignored: the VM may be on its way out) and free @k. The VM fd is
 * not closed. NULL is ignored. No exit handler may run on @k any more.
 * Precondition: no transaction open on the space in this thread and not
 * inside one of its listener callbacks (the listener could not be
 * unregistered, and would later be called on freed memory).
 */
GM_API void gm_kvm_free(struct gm_kvm *k);

/*
 * The highest number of slots the binding may use (ids 0 .. limit - 1):
 * KVM_CAP_NR_MEMSLOTS after gm_kvm_new(); 0 for a NULL @k.
 */
GM_API uint32_t gm_kvm_slot_limit(const struct gm_kvm *k);

/*
 * Lower (or raise, up to KVM's) the number of slot ids the binding may
 * use, e.g. to keep ids @limit and above for the VMM's own slots.
 * Returns 0, -EINVAL if @k is NULL or @limit is 0 or above
 * KVM_CAP_NR_MEMSLOTS, -EBUSY if a slot id at or above @limit is in use now.
 */
GM_API int gm_kvm_set_slot_limit(struct gm_kvm *k, uint32_t limit);

/* Number of slots the binding has set in KVM now (0 for a NULL @k). */
GM_API size_t gm_kvm_slot_count(const struct gm_kvm *k);

/*
 * Describe slot @index, slots being sorted by guest address.
 * @out is a sized struct (abi.h): set out->sz (GM_OPTS).
 * Returns 0, -EINVAL (@k or @out NULL, out->sz below sizeof(size_t)),
 * -ENOENT (@index >= count).
 */
GM_API int gm_kvm_slot(const struct gm_kvm *k, size_t index, struct gm_kvm_slot *out);

/*
 * Describe the slot holding @gpa.
 * Returns 0, -EINVAL (as gm_kvm_slot()), -ENOENT (none).
 */
GM_API int gm_kvm_slot_find(const struct gm_kvm *k, gm_gpa_t gpa, struct gm_kvm_slot *out);

/*
 * Set KVM_MEM_LOG_DIRTY_PAGES on every writable slot (OFF -> LOGGING;
 * KVM_MEM_READONLY slots cannot be dirtied by the guest and keep their
 * flags). Already logging: 0, nothing done. On failure the slots already
 * changed are put back and the state stays OFF.
 * This turns on the hypervisor's log only; the library's own writes are
 * marked in the region bitmaps once the space's tracking is on
 * (gm_space_dirty_enable()).
 * Returns 0, -EINVAL (@k NULL), or a negative errno from KVM.
 */
GM_API int gm_kvm_dirty_log_start(struct gm_kvm *k);

/*
 * Sync once more (so nothing logged is lost), then clear
 * KVM_MEM_LOG_DIRTY_PAGES on every writable slot (LOGGING -> OFF). Not
 * logging: 0. Returns 0, -EINVAL (@k NULL), or an error of the sync (see
 * gm_kvm_dirty_log_sync()) or of KVM; either way the state stays LOGGING:
 * after a failed sync the slots whose log could not be read keep it in
 * KVM (the other slots' logs are in the bitmaps), and if KVM refuses a
 * flag change the slots already changed are put back. Call again to stop.
 */
GM_API int gm_kvm_dirty_log_stop(struct gm_kvm *k);

/* Whether the dirty log is on (false for a NULL @k). */
GM_API bool gm_kvm_dirty_log_active(const struct gm_kvm *k);

/*
 * KVM_GET_DIRTY_LOG on every slot, each result ORed into the dirty bitmap
 * of the region behind the slot (slots of regions without a bitmap are read
 * and dropped, so KVM's log does not grow stale). Not logging: 0.
 * Ordering: every guest write that completed before this call is in the
 * region bitmaps when it returns.
 * Returns 0, -EINVAL (@k NULL), or the first error of a slot (the other
 * slots are still synced): a negative errno from KVM, or -ENOMEM /
 * -EOVERFLOW when no buffer for a slot's log could be had.
 */
GM_API int gm_kvm_dirty_log_sync(struct gm_kvm *k);

/*
 * Complete a KVM_EXIT_MMIO: a guest access of run->mmio.len bytes
 * (1..8) at run->mmio.phys_addr, done through gm_space_read()/gm_space_write() on the memory space.
 * A read stores the bytes read in run->mmio.data. If the access fails, a
 * read returns all-ones bytes (what an x86 bus returns for an unclaimed
 * read) and a write is dropped, so the VMM may resume the vCPU either way;
 * the return value tells what happened.
 * Returns 0; -EINVAL for NULL pointers, an exit reason other than
 * KVM_EXIT_MMIO or a length of 0 or above 8; otherwise the access's error:
 * -EACCES (a write to ROM or read-only RAM, or an access the device has
 * no callback for), -EFAULT (no region or device there), -EOPNOTSUPP (the
 * device cannot take an access of that size there), or a device's own
 * error.
 * Thread-safe (any number of vCPU threads).
 */
GM_API int gm_kvm_handle_mmio(struct gm_kvm *k, struct kvm_run *run);

/*
 * Complete a KVM_EXIT_IO: run->io.count accesses of run->io.size bytes
 * (1, 2 or 4) at port run->io.port, through gm_space_read()/gm_space_write() on the port-I/O space,
 * with the data at (char *)run + run->io.data_offset (string and rep I/O
 * give counts above 1: element i is at data_offset + i * size). @run_size
 * is the size of the run mapping (KVM_GET_VCPU_MMAP_SIZE); the data area
 * must lie inside it and after the struct kvm_run header, or nothing is
 * done. Every element is attempted; a failed read element is all-ones.
 * Returns 0; -EINVAL for NULL pointers, another exit reason, a bad size,
 * count 0 or a direction other than in/out; -ERANGE if the data area
 * leaves the run mapping (or overflows); -ENODEV if @k has no port-I/O
 * space; otherwise the first access error (-EFAULT: no device at the
 * port; -EACCES, -EOPNOTSUPP or the device's own, as gm_kvm_handle_mmio()).
 * Thread-safe.
 */
GM_API int gm_kvm_handle_io(struct gm_kvm *k, struct kvm_run *run, size_t run_size);

/*
 * gm_kvm_handle_mmio() or gm_kvm_handle_io() according to
 * run->exit_reason. Returns what they return, or -ENOTSUP for an exit
 * reason that is neither (the VMM handles it itself).
 */
GM_API int gm_kvm_handle_exit(struct gm_kvm *k, struct kvm_run *run, size_t run_size);

#ifdef __cplusplus
}
#endif

#endif /* GUESTMEM_KVM_H */
