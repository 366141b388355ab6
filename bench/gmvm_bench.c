/* SPDX-License-Identifier: MIT */
/*
 * bench/gmvm_bench.c - what gmvm costs, beside what KVM alone costs.
 *
 *   exits   N port-I/O and N MMIO exits through gmvm's whole path (KVM
 *           exit -> gm_kvm_handle_exit() -> gm_space_read()/gm_space_write() -> a
 *           device that counts; `gmvm --bench-exits N`) beside a bare KVM
 *           loop in this program doing the same exits from the same kind
 *           of CPL-3 guest with no library (switch on the exit, count).
 *           Target: gmvm within 1.1x of the bare loop.
 *   start   from spawning gmvm to the payload's first exit (gmvm prints the
 *           CLOCK_MONOTONIC time of that exit with --timing).
 *   memory  gmvm's memory set-up (the layout in a gm_space and the KVM
 *           slots) for 512 MiB, 4 GiB and 64 GiB guests: noreserve,
 *           nothing touched. Target: under 1 ms per GiB.
 *   run     the whole default run, spawn to exit. Target: under 50 ms.
 *
 * The machine is shared: each figure is the median of several rounds, the
 * bare loop and gmvm alternating so both see the same load.
 *
 * usage: gm-bench-gmvm [path/to/gmvm]   (default: ../examples/gmvm/gmvm
 *                                         next to this program)
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

extern char **environ;

#define EXITS	  20000
#define ROUNDS	  5
#define PORT_SINK 0x540
#define PORT_DONE 0x544
#define MMIO_SINK 0xfe001000u
#define GUEST_MEM (4u << 20)
#define CODE_GPA  0x100000u
#define TSS_GPA	  0x3000u
#define TSS_LIMIT (0x68u + 8192u)

/* ---- The bare loop: raw KVM, no library --------------------------------- */

struct bare {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	unsigned char *mem;
};

static void put64(unsigned char *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/* The guest: N x "out dx, eax" to PORT_SINK, a mark, N x "mov [rbx], rcx" to MMIO_SINK, a mark. */
static size_t bare_code(unsigned char *p)
{
	static const unsigned char code[] = {
	    0xb9,
	    EXITS & 0xff,
	    (EXITS >> 8) & 0xff,
	    EXITS >> 16,
	    0, /* mov ecx, EXITS */
	    0x66,
	    0xba,
	    PORT_SINK & 0xff,
	    PORT_SINK >> 8, /* mov dx, PORT_SINK */
	    0xef,	    /* 1: out dx, eax */
	    0xff,
	    0xc9, /* dec ecx */
	    0x75,
	    0xfb, /* jnz 1b */
	    0x66,
	    0xba,
	    PORT_DONE & 0xff,
	    PORT_DONE >> 8, /* mov dx, PORT_DONE */
	    0xef,	    /* out dx, eax */
	    0xbb,
	    0x00,
	    0x10,
	    0x00,
	    0xfe, /* mov ebx, MMIO_SINK */
	    0xb9,
	    EXITS & 0xff,
	    (EXITS >> 8) & 0xff,
	    EXITS >> 16,
	    0, /* mov ecx, EXITS */
	    0x48,
	    0x89,
	    0x0b, /* 2: mov [rbx], rcx */
	    0xff,
	    0xc9, /* dec ecx */
	    0x75,
	    0xf9, /* jnz 2b */
	    0xef, /* out dx, eax */
	    0xeb,
	    0xfe, /* jmp . */
	};
	memcpy(p, code, sizeof(code));
	return sizeof(code);
}

static int bare_setup(struct bare *b)
{
	struct kvm_userspace_memory_region slot;
	struct kvm_segment cs, ds;
	struct kvm_cpuid2 *cpuid;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	int size;

	memset(b, 0, sizeof(*b));
	b->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (b->kvm < 0)
		return -errno;
	b->vm = ioctl(b->kvm, KVM_CREATE_VM, 0);
	if (b->vm < 0)
		return -errno;
	b->mem = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b->mem == MAP_FAILED)
		return -errno;
	slot = (struct kvm_userspace_memory_region){.slot = 0,
						    .guest_phys_addr = 0,
						    .memory_size = GUEST_MEM,
						    .userspace_addr = (uintptr_t)b->mem};
	if (ioctl(b->vm, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return -errno;
	b->vcpu = ioctl(b->vm, KVM_CREATE_VCPU, 0);
	size = ioctl(b->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (b->vcpu < 0 || size <= 0)
		return -EIO;
	b->run = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, b->vcpu, 0);
	if (b->run == MAP_FAILED)
		return -errno;
	cpuid = calloc(1, sizeof(*cpuid) + 256 * sizeof(cpuid->entries[0]));
	cpuid->nent = 256;
	if (ioctl(b->kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0 ||
	    ioctl(b->vcpu, KVM_SET_CPUID2, cpuid) < 0)
		return -errno;
	free(cpuid);

	/* Identity map of 4 GiB in 2 MiB pages (user, writable, accessed, dirty). */
	put64(b->mem + 0x10000, 0x11000 | 0x27);
	for (unsigned g = 0; g < 4; g++) {
		put64(b->mem + 0x11000 + 8 * g, (0x12000 + 0x1000 * g) | 0x27);
		for (unsigned i = 0; i < 512; i++)
			put64(b->mem + 0x12000 + 0x1000 * g + 8 * i,
			      ((uint64_t)g << 30 | (uint64_t)i << 21) | 0xe7);
	}
	put64(b->mem + 0x1000 + 8 * 3, 0x00cff3000000ffffull); /* user data */
	put64(b->mem + 0x1000 + 8 * 4, 0x00affb000000ffffull); /* user code, 64-bit */
	put64(b->mem + 0x1000 + 8 * 5, (TSS_LIMIT & 0xffff) | ((uint64_t)TSS_GPA << 16) |
					   (0x8bull << 40) | ((uint64_t)(TSS_LIMIT >> 16) << 48));
	/* I/O bitmap after the TSS, all ports allowed (PVM drops IOPL), then 0xff. */
	b->mem[TSS_GPA + 0x66] = 0x68;
	b->mem[TSS_GPA + TSS_LIMIT] = 0xff;
	bare_code(b->mem + CODE_GPA);

	if (ioctl(b->vcpu, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	cs = (struct kvm_segment){.limit = 0xffffffff,
				  .selector = 0x23,
				  .type = 11,
				  .present = 1,
				  .dpl = 3,
				  .s = 1,
				  .l = 1,
				  .g = 1};
	ds = (struct kvm_segment){.limit = 0xffffffff,
				  .selector = 0x1b,
				  .type = 3,
				  .present = 1,
				  .dpl = 3,
				  .db = 1,
				  .s = 1,
				  .g = 1};
	sregs.cs = cs;
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = ds;
	sregs.tr = (struct kvm_segment){
	    .base = TSS_GPA, .limit = TSS_LIMIT, .selector = 0x28, .type = 11, .present = 1};
	sregs.ldt = (struct kvm_segment){.unusable = 1};
	sregs.gdt.base = 0x1000;
	sregs.gdt.limit = 7 * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = 0x80050033;
	sregs.cr3 = 0x10000;
	sregs.cr4 = 0x620;
	sregs.efer = 0x500;
	if (ioctl(b->vcpu, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	regs = (struct kvm_regs){.rip = CODE_GPA, .rsp = 0x200000, .rflags = 0x3002};
	if (ioctl(b->vcpu, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

/* Run the bare guest; *pio_ns / *mmio_ns: nanoseconds per exit of each kind. */
static int bare_run(double *pio_ns, double *mmio_ns)
{
	struct bare b = {.kvm = -1};
	double marks[3];
	uint64_t n_pio = 0, n_mmio = 0;
	unsigned nmarks = 0;
	int ret = bare_setup(&b);

	if (ret < 0)
		return ret;
	marks[nmarks++] = now_ns();
	while (nmarks < 3) {
		if (ioctl(b.vcpu, KVM_RUN, 0) < 0)
			return -errno;
		switch (b.run->exit_reason) {
		case KVM_EXIT_IO:
			if (b.run->io.port == PORT_SINK)
				n_pio++;
			else if (b.run->io.port == PORT_DONE)
				marks[nmarks++] = now_ns();
			break;
		case KVM_EXIT_MMIO:
			if (b.run->mmio.phys_addr == MMIO_SINK)
				n_mmio++;
			break;
		default:
			fprintf(stderr, "bare guest: exit reason %u\n", b.run->exit_reason);
			return -EIO;
		}
	}
	*pio_ns = (marks[1] - marks[0]) / (double)n_pio;
	*mmio_ns = (marks[2] - marks[1]) / (double)n_mmio;
	sink = n_pio + n_mmio;
	close(b.vcpu);
	close(b.vm);
	close(b.kvm);
	munmap(b.mem, GUEST_MEM);
	return n_pio == EXITS && n_mmio == EXITS ? 0 : -EIO;
}

/* ---- gmvm, spawned ---------------------------------------------------- */

/* Run gmvm with @args; its stdout goes into @out. Returns its exit status or -errno. */
static int spawn_gmvm(const char *gmvm, const char *const *args, char *out, size_t outlen,
		      double *spawned_ns, double *ended_ns)
{
	char *argv[16];
	int pipefd[2], status;
	posix_spawn_file_actions_t fa;
	size_t n = 0, used = 0;
	ssize_t r;
	pid_t pid;

	argv[n++] = (char *)gmvm;
	for (; *args && n < 15; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	if (pipe(pipefd) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_addclose(&fa, pipefd[0]);
	*spawned_ns = now_ns();
	if (posix_spawn(&pid, gmvm, &fa, NULL, argv, environ) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return -errno;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	while ((r = read(pipefd[0], out + used, outlen - 1 - used)) > 0)
		used += (size_t)r;
	out[used] = '\0';
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	*ended_ns = now_ns();
	return WIFEXITED(status) ? WEXITSTATUS(status) : -EINTR;
}

/* The number after @key in @text, or -1. */
static double find_number(const char *text, const char *key)
{
	const char *p = text ? strstr(text, key) : NULL;

	return p ? strtod(p + strlen(key), NULL) : -1;
}

int main(int argc, char **argv)
{
	static char out[1 << 16];
	char exits_arg[32], self[PATH_MAX], *slash, gmvm_path[PATH_MAX + 32];
	const char *gmvm = argc > 1 ? argv[1] : NULL;
	double bare_pio[ROUNDS], bare_mmio[ROUNDS], vm_pio[ROUNDS], vm_mmio[ROUNDS];
	double start[ROUNDS], run[ROUNDS], t0, t1;
	int ret;

	if (gmvm == NULL) {
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		self[n > 0 ? n : 0] = '\0';
		slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		snprintf(gmvm_path, sizeof(gmvm_path), "%s/../examples/gmvm/gmvm", self);
		gmvm = gmvm_path;
	}
	snprintf(exits_arg, sizeof(exits_arg), "%d", EXITS);

	for (int r = 0; r < ROUNDS; r++) {
		const char *bench_args[] = {"--bench-exits", exits_arg, NULL};
		const char *run_args[] = {"--timing", NULL};

		ret = bare_run(&bare_pio[r], &bare_mmio[r]);
		if (ret < 0) {
			printf("skipped: the bare KVM loop cannot run here: %s\n", strerror(-ret));
			return 0;
		}
		ret = spawn_gmvm(gmvm, bench_args, out, sizeof(out), &t0, &t1);
		if (ret != 0) {
			fprintf(stderr, "%s --bench-exits failed (status %d):\n%s", gmvm, ret, out);
			return 1;
		}
		vm_pio[r] = find_number(strstr(out, "port I/O exits"), "ms: ");
		vm_mmio[r] = find_number(strstr(out, "MMIO exits"), "ms: ");
		ret = spawn_gmvm(gmvm, run_args, out, sizeof(out), &t0, &t1);
		if (ret != 0) {
			fprintf(stderr, "%s failed (status %d):\n%s", gmvm, ret, out);
			return 1;
		}
		run[r] = (t1 - t0) / 1e6;
		start[r] = (find_number(out, "(at monotonic ") - t0) / 1e6;
	}

	printf("gmvm (median of %d rounds; %d exits of each kind per round)\n", ROUNDS, EXITS);
	for (int kind = 0; kind < 2; kind++) {
		double vm = median(kind ? vm_mmio : vm_pio, ROUNDS);
		double bare = median(kind ? bare_mmio : bare_pio, ROUNDS);

		printf(
		    "  %-8s exits/s: gmvm %7.0f (%5.1f us each), bare KVM loop %7.0f (%5.1f us); "
		    "time ratio %.3f (target <= 1.1)\n",
		    kind ? "MMIO" : "port I/O", 1e9 / vm, vm / 1e3, 1e9 / bare, bare / 1e3,
		    vm / bare);
	}
	printf("  spawn to the payload's first exit  %.3f ms\n", median(start, ROUNDS));
	printf("  whole default run, spawn to exit   %.3f ms (target < 50 ms)\n",
	       median(run, ROUNDS));

	printf("  memory set-up (layout in a gm_space + KVM slots; noreserve, untouched):\n");
	static const struct {
		const char *name, *low, *high;
		double gib;
	} sizes[] = {
	    {"512 MiB", "64M", "448M", 0.5},
	    {"4 GiB", "1G", "3G", 4},
	    {"64 GiB", "2G", "62G", 64},
	};
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		const char *args[] = {"--timing",   "--low-ram",   sizes[i].low,
				      "--high-ram", sizes[i].high, NULL};
		double ms[ROUNDS], m;

		for (int r = 0; r < ROUNDS; r++) {
			ret = spawn_gmvm(gmvm, args, out, sizeof(out), &t0, &t1);
			if (ret != 0) {
				printf("    %-8s gmvm failed (status %d)\n", sizes[i].name, ret);
				return 1;
			}
			ms[r] = find_number(out, "KVM slots): ");
		}
		m = median(ms, ROUNDS);
		printf("    %-8s %8.3f ms = %.3f ms per GiB (target < 1 ms per GiB)\n",
		       sizes[i].name, m, m / sizes[i].gib);
	}
	return 0;
}
