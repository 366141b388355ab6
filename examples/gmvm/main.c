/* SPDX-License-Identifier: MIT */
/*
 * main.c - gmvm's boot path, one step after another.
 *
 * gmvm is a small x86-64 KVM monitor whose guest lives entirely in
 * guestmem (see gmvm.h). main() reads top to bottom as the machine comes
 * up: options, KVM, the guest-physical layout, the port devices, the KVM
 * binding, the payload and boot information (or a snapshot), text
 * protection, the vCPU, dirty logging, the run, and the verdict. Nothing
 * happens before main() or behind its back.
 *
 * Exit status: 0 if the payload ran every step and every check passed
 * (the payload's and gmvm's), 1 if a check failed or the guest stopped
 * early, 2 for a usage error, 3 if KVM cannot be used on this machine.
 */
#include "gmvm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define EXIT_CHECKS_FAILED 1
#define EXIT_USAGE	   2
#define EXIT_NO_KVM	   3

static const uint64_t MIB = 1ull << 20, GIB = 1ull << 30;

int gmvm_fail(int err, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("gmvm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return err;
}

uint64_t gmvm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void gmvm_say(const char *fmt, ...)
{
	va_list ap;

	fputs("gmvm: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void usage(FILE *f)
{
	fputs("usage: gmvm [options]\n"
	      "  --payload FILE      the guest payload (default: gmvm-payload.bin next to gmvm)\n"
	      "  --low-ram SIZE      RAM from address 0, 32M..3G (default 64M)\n"
	      "  --high-ram SIZE     RAM from 4 GiB, at least 2M (default 64M)\n"
	      "  --protect-text      make the payload's code read-only for the guest\n"
	      "  --dirty-stats       print the pages the guest dirtied at each step\n"
	      "  --snapshot-at STEP FILE  save memory and vCPU at payload step STEP, then stop\n"
	      "  --restore FILE      start from a snapshot saved by --snapshot-at\n"
	      "  --restore-mode copy|lazy  how --restore fills guest RAM (default copy)\n"
	      "  --kvm DEVICE        the KVM device (default /dev/kvm)\n"
	      "  --timing            print how long set-up, start and the run took\n"
	      "  --numa              place RAM on the NUMA nodes with memory; print each policy\n"
	      "  --balloon           prefault all RAM; after the run give high RAM back in\n"
	      "                      2 MiB blocks and print the host RSS drop\n"
	      "  --bench-exits N     benchmark: the payload does N port and N MMIO exits only\n"
	      "SIZE takes a K, M or G suffix.\n",
	      f);
}

/* "64M" -> 67108864. Returns 0 or -EINVAL. */
static int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	uint64_t mult = 1, r;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || end == s || s[0] == '-')
		return -EINVAL;
	switch (*end) {
	case 'K':
	case 'k':
		mult = 1ull << 10;
		end++;
		break;
	case 'M':
	case 'm':
		mult = MIB;
		end++;
		break;
	case 'G':
	case 'g':
		mult = GIB;
		end++;
		break;
	}
	if (*end != '\0' || gm_mul_overflow_u64(v, mult, &r))
		return -EINVAL;
	*out = r;
	return 0;
}

/* The default payload sits next to the gmvm executable. */
static const char *default_payload(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
	char *slash;

	if (n <= 0)
		return "gmvm-payload.bin";
	path[n] = '\0';
	slash = strrchr(path, '/');
	strcpy(slash ? slash + 1 : path, "gmvm-payload.bin");
	return path;
}

static int parse_options(int argc, char **argv, struct gmvm_opts *o)
{
	o->payload = NULL;
	o->low_ram = 64 * MIB;
	o->high_ram = 64 * MIB;
	o->kvm_device = "/dev/kvm";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--protect-text") == 0) {
			o->protect_text = true;
		} else if (strcmp(a, "--dirty-stats") == 0) {
			o->dirty_stats = true;
		} else if (strcmp(a, "--timing") == 0) {
			o->timing = true;
		} else if (strcmp(a, "--numa") == 0) {
			o->numa = true;
		} else if (strcmp(a, "--balloon") == 0) {
			o->balloon = true;
		} else if (strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		} else if (v == NULL) {
			return gmvm_fail(-EINVAL, "%s: unknown option or missing value", a);
		} else if (strcmp(a, "--payload") == 0) {
			o->payload = v, i++;
		} else if (strcmp(a, "--low-ram") == 0 || strcmp(a, "--high-ram") == 0) {
			uint64_t *dst = a[2] == 'l' ? &o->low_ram : &o->high_ram;

			if (parse_size(v, dst) < 0)
				return gmvm_fail(-EINVAL, "%s %s: not a size", a, v);
			i++;
		} else if (strcmp(a, "--snapshot-at") == 0) {
			char *end;
			unsigned long step = strtoul(v, &end, 10);

			if (i + 2 >= argc)
				return gmvm_fail(-EINVAL, "--snapshot-at STEP FILE: no FILE");
			if (*end != '\0' || step < GMVM_STEP_HELLO || step >= GMVM_STEP_DONE)
				return gmvm_fail(-EINVAL, "--snapshot-at %s: a step from %d to %d",
						 v, GMVM_STEP_HELLO, GMVM_STEP_DONE - 1);
			o->snapshot_at = (unsigned)step;
			o->snapshot = argv[i + 2];
			i += 2;
		} else if (strcmp(a, "--kvm") == 0) {
			o->kvm_device = v, i++;
		} else if (strcmp(a, "--bench-exits") == 0) {
			if (parse_size(v, &o->bench_exits) < 0 || o->bench_exits == 0)
				return gmvm_fail(-EINVAL, "--bench-exits %s: a count above 0", v);
			i++;
		} else if (strcmp(a, "--restore") == 0) {
			o->restore = v, i++;
		} else if (strcmp(a, "--restore-mode") == 0) {
			if (strcmp(v, "copy") == 0)
				o->restore_lazy = false;
			else if (strcmp(v, "lazy") == 0)
				o->restore_lazy = true;
			else
				return gmvm_fail(-EINVAL, "--restore-mode %s: copy or lazy", v);
			i++;
		} else {
			return gmvm_fail(-EINVAL, "%s: unknown option", a);
		}
	}
	if (o->low_ram < GMVM_LOW_RAM_MIN || o->low_ram > GMVM_LOW_RAM_MAX ||
	    o->low_ram % (2 * MIB) != 0)
		return gmvm_fail(-EINVAL, "--low-ram: a multiple of 2 MiB from 32 MiB to 3 GiB");
	if (o->high_ram < GMVM_HIGH_RAM_MIN || o->high_ram % (2 * MIB) != 0 ||
	    o->high_ram > 64 * GIB)
		return gmvm_fail(-EINVAL, "--high-ram: a multiple of 2 MiB from 2 MiB to 64 GiB");
	if (o->payload == NULL)
		o->payload = default_payload();
	return 0;
}

/* Step 1: /dev/kvm, a VM, one vCPU and its kvm_run mapping. */
static int open_kvm(struct gmvm *vm)
{
	int size;

	vm->kvm_fd = open(vm->opts.kvm_device, O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return gmvm_fail(-errno, "KVM is not usable here: %s: %s", vm->opts.kvm_device,
				 strerror(errno));
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return gmvm_fail(-ENOTSUP, "KVM is not usable here: unexpected KVM API version");
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return gmvm_fail(-errno, "KVM is not usable here: KVM_CREATE_VM: %s",
				 strerror(errno));
	vm->vcpu_fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu_fd < 0)
		return gmvm_fail(-errno, "KVM is not usable here: KVM_CREATE_VCPU: %s",
				 strerror(errno));
	size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run))
		return gmvm_fail(-EIO, "KVM is not usable here: bad vCPU mapping size");
	vm->run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu_fd, 0);
	if (vm->run == MAP_FAILED) {
		vm->run = NULL;
		return gmvm_fail(-errno, "KVM is not usable here: mmap of the vCPU: %s",
				 strerror(errno));
	}
	vm->run_size = (size_t)size;
	return 0;
}

/* Add RAM, saying clearly when this process cannot map that much. */
static int add_ram(struct gmvm *vm, gm_gpa_t gpa, uint64_t size, struct gm_window **w)
{
	int ret = gm_space_add_ram(vm->mem_space, gpa, size, 0, GM_MAP_NORESERVE, w);

	if (ret == -EOVERFLOW || ret == -ENOMEM)
		return gmvm_fail(
		    ret,
		    "cannot map %llu MiB of guest RAM at 0x%llx in this %u-bit process "
		    "(%s): use a smaller --low-ram / --high-ram",
		    (unsigned long long)(size / MIB), (unsigned long long)gpa,
		    (unsigned)(sizeof(void *) * 8), strerror(-ret));
	if (ret < 0)
		return gmvm_fail(ret, "RAM at 0x%llx: %s", (unsigned long long)gpa, strerror(-ret));
	return 0;
}

/*
 * Step 3: the guest-physical layout, PC-like, in one transaction:
 *   [0, 16M) and [16M, low end)   RAM (two regions: the payload crosses the boundary)
 *   [3G, 0xfe000000)              reserved hole
 *   [0xfe000000, +4K)             the doorbell device (MMIO)
 *   [0xffff0000, 4G)              ROM
 *   [4G, 4G + high)               RAM above 4 GiB
 */
static int build_memory_space(struct gmvm *vm)
{
	static unsigned char rom[GMVM_ROM_SIZE];
	const uint64_t low = vm->opts.low_ram;
	struct gm_window *hole;
	int ret, err;

	ret = gm_space_new(GM_SPACE_MEMORY, &vm->mem_space);
	if (ret < 0)
		return gmvm_fail(ret, "memory space: %s", strerror(-ret));
	gmvm_rom_build(rom);

	gm_space_begin(vm->mem_space);
	ret = add_ram(vm, 0, GMVM_RAM_SPLIT_GPA, &vm->ram_low0);
	if (ret == 0)
		ret = add_ram(vm, GMVM_RAM_SPLIT_GPA, low - GMVM_RAM_SPLIT_GPA, &vm->ram_low1);
	if (ret == 0) {
		ret = gm_space_add_reserved(vm->mem_space, GMVM_HOLE_GPA,
					    GMVM_HOLE_END - GMVM_HOLE_GPA, "pci-hole", &hole);
		if (ret == 0)
			ret = gmvm_doorbell_add(vm);
		if (ret == 0)
			ret = gm_space_add_rom(vm->mem_space, GMVM_ROM_GPA, GMVM_ROM_SIZE, rom,
					       sizeof(rom), &vm->rom);
		if (ret < 0)
			gmvm_fail(ret, "guest layout: %s", strerror(-ret));
	}
	if (ret == 0)
		ret = add_ram(vm, GMVM_HIGH_GPA, vm->opts.high_ram, &vm->ram_high);
	/*
	 * A failed add (reported above) dooms the transaction: commit then
	 * discards every staged window and returns that error.
	 */
	err = gm_space_commit(vm->mem_space);
	if (ret == 0 && err < 0)
		gmvm_fail(err, "guest layout: %s", strerror(-err));
	if (ret < 0 || err < 0)
		return ret < 0 ? ret : err;
	vm->hotplug.gpa = (GMVM_HIGH_GPA + vm->opts.high_ram + GIB - 1) / GIB * GIB;
	return 0;
}

/* Step 2: the port-I/O space and its devices. */
static int build_io_space(struct gmvm *vm)
{
	int ret = gm_space_new(GM_SPACE_PIO, &vm->io_space);

	if (ret == 0)
		ret = gmvm_console_add(vm);
	if (ret == 0)
		ret = gmvm_control_add(vm);
	if (ret == 0)
		ret = gmvm_hotplug_add(vm);
	if (ret < 0)
		return gmvm_fail(ret, "port devices: %s", strerror(-ret));
	return 0;
}

/* Step 5: what the payload learns about its machine, at GMVM_BOOTINFO_GPA. */
static int write_bootinfo(struct gmvm *vm)
{
	const uint64_t b = GMVM_BOOTINFO_GPA;
	struct gm_memory *mem;
	uint32_t flags = (vm->opts.protect_text ? GMVM_BOOT_PROTECT_TEXT : 0) |
			 (vm->opts.dirty_stats ? GMVM_BOOT_DIRTY_STATS : 0);
	int ret;

	ret = gm_space_memory_get(vm->mem_space, &mem);
	if (ret < 0)
		return ret;
	ret = gm_write_le64(mem, b + offsetof(struct gmvm_bootinfo, low_ram_end), vm->opts.low_ram);
	if (ret == 0)
		ret = gm_write_le64(mem, b + offsetof(struct gmvm_bootinfo, high_ram_size),
				    vm->opts.high_ram);
	if (ret == 0)
		ret = gm_write_le64(mem, b + offsetof(struct gmvm_bootinfo, hotplug_gpa),
				    vm->hotplug.gpa);
	if (ret == 0)
		ret = gm_write_le64(mem, b + offsetof(struct gmvm_bootinfo, scratch_gpa),
				    GMVM_SCRATCH_GPA);
	if (ret == 0)
		ret = gm_write_le32(mem, b + offsetof(struct gmvm_bootinfo, flags), flags);
	if (ret == 0)
		ret = gm_write_le64(mem, b + offsetof(struct gmvm_bootinfo, bench_exits),
				    vm->opts.bench_exits);
	gm_memory_put(mem);
	return ret;
}

static void print_layout(struct gmvm *vm)
{
	gmvm_say("guest layout (every window in guestmem's space):");
	fflush(stdout);
	gm_space_dump_file(vm->mem_space, stdout);
	gm_space_dump_file(vm->io_space, stdout);
}

/* The verdict: every step seen, every check passed, the counters as the steps expect. */
static int verdict(struct gmvm *vm)
{
	const struct gmvm_control *c = &vm->control;
	unsigned bad = 0;

#define EXPECT(cond, what)                                           \
	do {                                                         \
		bool ok_ = (cond);                                   \
		bad += !ok_;                                         \
		gmvm_say("  %-44s %s", what, ok_ ? "ok" : "FAILED"); \
	} while (0)

	gmvm_say("result after %llu exits:", (unsigned long long)vm->exits);
	EXPECT(c->exited && c->exit_status == 0, "payload exited with status 0");
	EXPECT(c->steps_seen == GMVM_STEP_COUNT, "payload ran every step in order");
	EXPECT(c->checks > 0 && c->checks_failed == 0, "gmvm's checks of guest memory");
	EXPECT(vm->rom_refused == 1, "one write to ROM refused");
	EXPECT(vm->text_refused == (vm->opts.protect_text ? 1u : 0u),
	       vm->opts.protect_text ? "one write to protected text refused"
				     : "no text write refused (not protected)");
	EXPECT(vm->doorbell.rings == 1 && vm->doorbell.status == 0, "doorbell rung once, ok");
	EXPECT(vm->hotplug.plugs == 1 && vm->hotplug.unplugs == 1, "RAM plugged and unplugged");
	if (vm->opts.dirty_stats)
		EXPECT(c->dirty_exact_checked && c->dirty_exact_ok,
		       "dirty log: exactly the pages written");
#undef EXPECT
	gmvm_say("%s", bad == 0 ? "all checks passed" : "SOME CHECKS FAILED");
	return bad == 0 ? 0 : EXIT_CHECKS_FAILED;
}

static void teardown(struct gmvm *vm)
{
	gm_kvm_free(vm->kvm);
	gmvm_snapshot_close(vm);
	gm_space_free(vm->mem_space);
	gm_space_free(vm->io_space);
	if (vm->run != NULL)
		munmap(vm->run, vm->run_size);
	if (vm->vcpu_fd >= 0)
		close(vm->vcpu_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
}

int main(int argc, char **argv)
{
	static struct gmvm vm = {.kvm_fd = -1, .vm_fd = -1, .vcpu_fd = -1};
	const uint64_t t_start = gmvm_now_ns();
	uint64_t t_layout = 0, t_end;
	int ret, status = EXIT_CHECKS_FAILED;

	/* 0. Options; with --restore, the snapshot says how the machine looked. */
	if (parse_options(argc, argv, &vm.opts) < 0) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (vm.opts.restore != NULL && gmvm_snapshot_read_vcpu(&vm, vm.opts.restore) < 0)
		return EXIT_CHECKS_FAILED;
	gm_rcu_register_thread(); /* the exit handlers dispatch under RCU */

	/* 1. KVM: a VM with one vCPU. If KVM cannot be used here, say so and stop. */
	if (open_kvm(&vm) < 0) {
		status = EXIT_NO_KVM;
		goto out;
	}
	gmvm_say("a KVM VM with one vCPU (%s); its memory, ROM, MMIO and ports are all guestmem's",
		 vm.opts.kvm_device);

	/* 2. The port devices, then 3. the guest-physical layout. */
	if (build_io_space(&vm) < 0)
		goto out;
	t_layout = gmvm_now_ns();
	if (build_memory_space(&vm) < 0)
		goto out;
	/* --bench-exits: a port and an MMIO window that only count (bench.c). */
	if (vm.opts.bench_exits != 0 && (ret = gmvm_bench_add(&vm)) < 0) {
		gmvm_fail(ret, "bench device: %s", strerror(-ret));
		goto out;
	}

	/* 4. Bind KVM: from here on every commit of the space updates the slots. */
	ret = gm_kvm_new(vm.vm_fd, vm.mem_space, vm.io_space, &vm.kvm);
	if (ret < 0) {
		gmvm_fail(ret, "KVM memory slots: %s", strerror(-ret));
		goto out;
	}
	t_layout = gmvm_now_ns() - t_layout;

	/* 4b. --numa, --balloon: placement and blocks before anything touches the RAM. */
	if (gmvm_density_setup(&vm) < 0)
		goto out;

	/* 5. Guest memory contents: the payload and boot information, or a snapshot. */
	if (vm.opts.restore != NULL) {
		if (gmvm_snapshot_restore(&vm) < 0)
			goto out;
	} else {
		if (gmvm_payload_load(&vm, vm.opts.payload) < 0)
			goto out;
		ret = write_bootinfo(&vm);
		if (ret < 0) {
			gmvm_fail(ret, "boot information: %s", strerror(-ret));
			goto out;
		}
		gmvm_say("payload: %llu bytes at 0x%llx, entry 0x%llx, code 0x%llx-0x%llx, "
			 "stack top 0x%llx",
			 (unsigned long long)vm.payload_size,
			 (unsigned long long)vm.payload.load_gpa,
			 (unsigned long long)vm.payload.entry_gpa,
			 (unsigned long long)vm.payload.load_gpa,
			 (unsigned long long)vm.payload.text_end_gpa - 1,
			 (unsigned long long)vm.payload.stack_top_gpa);
	}

	/* 6. --protect-text: the payload's code becomes read-only (a read-only KVM slot). */
	if (vm.opts.protect_text) {
		ret = gm_space_protect(vm.mem_space, vm.ram_low0, vm.payload.load_gpa,
				       vm.payload.text_end_gpa - vm.payload.load_gpa,
				       GM_PROT_READ | GM_PROT_EXEC);
		if (ret < 0) {
			gmvm_fail(ret, "--protect-text: %s", strerror(-ret));
			goto out;
		}
		gmvm_say("protect-text: 0x%llx-0x%llx is read-only for the guest",
			 (unsigned long long)vm.payload.load_gpa,
			 (unsigned long long)vm.payload.text_end_gpa - 1);
	}

	/* 7. The vCPU: 64-bit mode at CPL 3, page tables covering everything up to hot-plug RAM. */
	if (vm.opts.restore == NULL) {
		ret = gmvm_cpu_setup(&vm, vm.hotplug.gpa + GMVM_HOTPLUG_SIZE);
		if (ret < 0) {
			gmvm_fail(ret, "vCPU set-up: %s", strerror(-ret));
			goto out;
		}
		gmvm_say(
		    "vCPU: 64-bit mode, CPL 3, IOPL 3, identity map of 0-0x%llx in 2 MiB pages",
		    (unsigned long long)(vm.hotplug.gpa + GIB - 1));
	}

	/* 8. --dirty-stats: KVM's dirty log merged into guestmem's bitmaps. */
	if (vm.opts.dirty_stats && (ret = gmvm_dirty_start(&vm)) < 0) {
		gmvm_fail(ret, "--dirty-stats: %s", strerror(-ret));
		goto out;
	}

	/* 9. Run until the payload exits (or --snapshot-at stops it). */
	print_layout(&vm);
	gmvm_say("entering the payload");
	fflush(stdout);
	if (gmvm_run(&vm) < 0)
		goto out;
	gmvm_console_flush(&vm);

	/* 10. The verdict. */
	if (vm.opts.bench_exits != 0) {
		gmvm_bench_report(&vm);
		status = vm.bench.done ? 0 : EXIT_CHECKS_FAILED;
	} else {
		status = vm.control.snapshot_taken ? 0 : verdict(&vm);
	}
	/* 11. --balloon: the guest is done with its high RAM; the host takes it back. */
	if (vm.opts.balloon && gmvm_balloon_step(&vm) < 0)
		status = EXIT_CHECKS_FAILED;
	t_end = gmvm_now_ns();
	if (vm.opts.timing) {
		gmvm_say("timing: memory set-up (layout, %llu MiB of RAM, KVM slots): %.3f ms",
			 (unsigned long long)((vm.opts.low_ram + vm.opts.high_ram) / MIB),
			 t_layout / 1e6);
		gmvm_say(
		    "timing: main() to the payload's first exit: %.3f ms (at monotonic %llu ns)",
		    (vm.first_exit_ns - t_start) / 1e6, (unsigned long long)vm.first_exit_ns);
		gmvm_say("timing: main() to the end of the run: %.3f ms", (t_end - t_start) / 1e6);
	}
out:
	fflush(stdout);
	teardown(&vm);
	gm_rcu_unregister_thread();
	return status;
}
