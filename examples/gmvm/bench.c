/* SPDX-License-Identifier: MIT */
/*
 * bench.c - the bench device (gmvm --bench-exits N): a port and an MMIO
 * window that only count, and a mark port that takes the time.
 *
 * The payload writes N times to each sink between marks, so the time
 * between two marks divided by N is what one exit costs through gmvm's
 * whole path: KVM_RUN returns, gm_kvm_handle_exit() dispatches through
 * the space to this device, the run loop looks for pending work, KVM_RUN
 * again. bench/gmvm_bench.c compares it with a bare KVM loop.
 */
#include "gmvm.h"

static int sink_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	struct gmvm *vm = opaque;

	(void)offset;
	(void)size;
	(void)val;
	vm->bench.count++;
	return 0;
}

static int mark_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	struct gmvm *vm = opaque;
	struct gmvm_bench *b = &vm->bench;

	(void)offset;
	(void)size;
	if (val >= GMVM_BENCH_PIO_START && val <= GMVM_BENCH_END)
		b->mark_ns[val] = gmvm_now_ns();
	if (val == GMVM_BENCH_MMIO_START) {
		b->pio_count = b->count;
		b->count = 0;
	} else if (val == GMVM_BENCH_END) {
		b->mmio_count = b->count;
		b->done = true;
	}
	return 0;
}

int gmvm_bench_add(struct gmvm *vm)
{
	static const struct gm_device_ops sink_ops =
	    GM_OPTS_INIT(gm_device_ops, .name = "bench-sink", .write = sink_write,
			 .sizes = GM_ACCESS_ALL, .flags = 0);
	static const struct gm_device_ops mark_ops =
	    GM_OPTS_INIT(gm_device_ops, .name = "bench-mark", .write = mark_write,
			 .sizes = GM_ACCESS_4, .flags = 0);
	struct gm_window *w; /* the handles are not needed later */
	int ret;

	ret = gm_space_add_mmio(vm->io_space, GMVM_PORT_BENCH, 4, &sink_ops, vm, &w);
	if (ret == 0)
		ret = gm_space_add_mmio(vm->io_space, GMVM_PORT_BENCH_MARK, 4, &mark_ops, vm, &w);
	if (ret == 0)
		ret = gm_space_add_mmio(vm->mem_space, GMVM_BENCH_MMIO_GPA, 0x1000, &sink_ops, vm,
					&w);
	return ret;
}

void gmvm_bench_report(struct gmvm *vm)
{
	const struct gmvm_bench *b = &vm->bench;
	const uint64_t *t = b->mark_ns;

	if (!b->done || b->pio_count == 0 || b->mmio_count == 0) {
		gmvm_say("bench: the payload did not finish its exits");
		return;
	}
	gmvm_say("bench: %llu port I/O exits in %.3f ms: %.0f ns per exit",
		 (unsigned long long)b->pio_count, (t[2] - t[1]) / 1e6,
		 (double)(t[2] - t[1]) / (double)b->pio_count);
	gmvm_say("bench: %llu MMIO exits in %.3f ms: %.0f ns per exit",
		 (unsigned long long)b->mmio_count, (t[3] - t[2]) / 1e6,
		 (double)(t[3] - t[2]) / (double)b->mmio_count);
}
