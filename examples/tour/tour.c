/* SPDX-License-Identifier: MIT */
/*
 * tour.c - a first look at guestmem, for a new user.
 *
 * Builds a small guest memory (two adjacent RAM regions, a hole, a
 * read-only region and RAM above 4 GiB), prints its layout, moves a
 * string across a region boundary, translates guest addresses to host
 * pointers and iovecs, and shows what a hostile guest address gets back.
 * Then it builds a PC-like address space (struct gm_space): RAM, a PCI
 * hole, a ROM, device windows and a port-I/O space with a serial port,
 * makes part of RAM read-only and hot-plugs more RAM, with a listener
 * printing what a KVM binding would be told. Last, it saves that kind of
 * guest memory to a snapshot file and an incremental one, restores the
 * chain into a new space, and migrates memory to another space.
 * Every step is checked: the program exits 1 if guestmem does anything
 * other than what is printed.
 */
#include <guestmem/guestmem.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MiB (1024u * 1024u)

static int failures;

/* The errno names the tour meets, as a C programmer writes them. */
static const char *errname(int err)
{
	switch (-err) {
	case 0:
		return "0";
	case EFAULT:
		return "-EFAULT";
	case EACCES:
		return "-EACCES";
	case EINVAL:
		return "-EINVAL";
	case ENOBUFS:
		return "-ENOBUFS";
	case EEXIST:
		return "-EEXIST";
	case EOPNOTSUPP:
		return "-EOPNOTSUPP";
	case EBADMSG:
		return "-EBADMSG";
	default:
		return strerror(-err);
	}
}

/* Print one line of the tour and count a mismatch between expected and got. */
static void expect(const char *what, int got, int want)
{
	printf("  %-52s -> %-9s%s\n", what, errname(got), got == want ? "" : "   << UNEXPECTED");
	if (got != want)
		failures++;
}

static void print_layout(const struct gm_memory *m)
{
	struct gm_region_info ri = GM_OPTS(gm_region_info);
	size_t i;

	printf("  %-4s %-21s %-21s %10s  %s\n", "#", "first gpa", "last gpa", "size", "flags");
	for (i = 0; gm_memory_region(m, i, &ri) == 0; i++)
		printf("  %-4zu 0x%016llx   0x%016llx   %7llu KiB  %s\n", i,
		       (unsigned long long)ri.gpa, (unsigned long long)(ri.gpa + ri.size - 1),
		       (unsigned long long)(ri.size / 1024),
		       ri.flags & GM_REGION_READONLY ? "read-only" : "read-write");
	printf("  %zu regions, %llu KiB of guest memory\n", gm_memory_region_count(m),
	       (unsigned long long)(gm_memory_total_size(m) / 1024));
}

/* ---- the address space (space.h) ---- */

/* A serial port's transmit register (offset 0) and line status (offset 5). */
struct serial {
	char out[64];
	size_t n;
};

static int serial_read(void *opaque, uint64_t offset, unsigned size, uint64_t *val)
{
	(void)opaque;
	(void)size;
	*val = offset == 5 ? 0x60 : 0; /* "transmitter empty" */
	return 0;
}

static int serial_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	struct serial *s = opaque;

	(void)size;
	if (offset == 0 && s->n + 1 < sizeof(s->out))
		s->out[s->n++] = (char)val;
	return 0;
}

/* A device with 32-bit registers that counts the accesses it sees. */
static int timer_read(void *opaque, uint64_t offset, unsigned size, uint64_t *val)
{
	unsigned *calls = opaque;

	(void)size;
	*val = 0x1000 + offset;
	++*calls;
	return 0;
}

static int timer_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	(void)offset;
	(void)size;
	(void)val;
	++*(unsigned *)opaque;
	return 0;
}

/* What a KVM binding would do with each change: print it. */
static void print_changes(void *opaque, struct gm_space *s, const struct gm_space_change *c,
			  size_t n)
{
	static const char *const kinds[] = {"?", "remove", "flags", "add"};
	size_t i;

	(void)opaque;
	(void)s;
	for (i = 0; i < n; i++)
		printf("    listener: %-6s slot %u  0x%010llx %8llu KiB  %s\n", kinds[c[i].kind],
		       c[i].region.slot, (unsigned long long)c[i].region.gpa,
		       (unsigned long long)(c[i].region.size >> 10),
		       c[i].region.flags & GM_REGION_READONLY ? "read-only" : "read-write");
}

static void space_tour(void)
{
	static const struct gm_space_listener_ops printer =
	    GM_OPTS_INIT(gm_space_listener_ops, .commit = print_changes);
	const int wide = SIZE_MAX > 0xffffffffu; /* a 32-bit VMM gets less RAM */
	const uint64_t low = wide ? 3ull << 30 : 512 * MiB;
	struct serial serial = {.n = 0};
	unsigned timer_calls = 0;
	const struct gm_device_ops serial_ops =
	    GM_OPTS(gm_device_ops, .name = "serial-8250", .read = serial_read,
		    .write = serial_write, .sizes = GM_ACCESS_1);
	const struct gm_device_ops timer_ops =
	    GM_OPTS(gm_device_ops, .name = "demo-timer", .read = timer_read, .write = timer_write,
		    .sizes = GM_ACCESS_4);
	struct gm_window *ram, *high, *hole, *rom, *timer, *uart, *plug;
	struct gm_space *mem, *pio;
	struct gm_memory *view;
	uint64_t word = 0;
	uint8_t lsr = 0;
	int err;

	printf("\n5. An address space: a PC-like layout built in one transaction\n");
	err = gm_space_new(GM_SPACE_MEMORY, &mem);
	err = err ? err : gm_space_new(GM_SPACE_PIO, &pio);
	if (err) {
		expect("gm_space_new", err, 0);
		return;
	}
	gm_rcu_register_thread();
	expect("gm_space_begin", gm_space_begin(mem), 0);
	expect("RAM at 0 (NORESERVE: pages come on first touch)",
	       gm_space_add_ram(mem, 0, low, 0, GM_MAP_NORESERVE, &ram), 0);
	expect("reserved 0xc0000000..0xfebfffff: the PCI hole",
	       gm_space_add_reserved(mem, 0xc0000000, 0xfec00000 - 0xc0000000, "pci-hole", &hole),
	       0);
	expect("MMIO 0xfee00000 (4 KiB): a device with 32-bit registers",
	       gm_space_add_mmio(mem, 0xfee00000, 0x1000, &timer_ops, &timer_calls, &timer), 0);
	expect("ROM 0xffff0000 (64 KiB) at the top of 4 GiB",
	       gm_space_add_rom(mem, 0xffff0000, 64 * 1024, "BIOS v1", 7, &rom), 0);
	expect("RAM at 4 GiB (1 GiB)",
	       gm_space_add_ram(mem, 0x100000000ull, 1024 * MiB, 0, GM_MAP_NORESERVE, &high), 0);
	expect("a RAM window overlapping the ROM is refused",
	       gm_space_add_ram(mem, 0xfffff000, 0x2000, 0, 0, &plug), -EEXIST);
	expect("... which dooms the transaction: commit", gm_space_commit(mem), -EEXIST);
	printf("  the space is still empty: %llu views published\n",
	       (unsigned long long)gm_space_generation(mem));
	expect("again, without the mistake: gm_space_begin", gm_space_begin(mem), 0);
	gm_space_add_ram(mem, 0, low, 0, GM_MAP_NORESERVE, &ram);
	gm_space_add_reserved(mem, 0xc0000000, 0xfec00000 - 0xc0000000, "pci-hole", &hole);
	gm_space_add_mmio(mem, 0xfee00000, 0x1000, &timer_ops, &timer_calls, &timer);
	gm_space_add_rom(mem, 0xffff0000, 64 * 1024, "BIOS v1", 7, &rom);
	gm_space_add_ram(mem, 0x100000000ull, 1024 * MiB, 0, GM_MAP_NORESERVE, &high);
	expect("gm_space_commit: one new view", gm_space_commit(mem), 0);
	expect("port I/O: the serial port at 0x3f8",
	       gm_space_add_mmio(pio, 0x3f8, 8, &serial_ops, &serial, &uart), 0);
	expect("port I/O: RAM has no place there", gm_space_add_ram(pio, 0, 4096, 0, 0, &plug),
	       -EOPNOTSUPP);
	printf("\n  memory space (gm_space_dump_file):\n");
	gm_space_dump_file(mem, stdout);
	printf("\n  port-I/O space:\n");
	gm_space_dump_file(pio, stdout);

	printf("\n6. Dispatch: what a VMM calls on an MMIO or port-I/O exit\n");
	expect("out 0x3f8 'h', 'i', '!'", gm_space_write(pio, 0x3f8, "h", 1), 0);
	gm_space_write(pio, 0x3f8, "i", 1);
	gm_space_write(pio, 0x3f8, "!", 1);
	expect("in 0x3fd (line status)", gm_space_read(pio, 0x3fd, &lsr, 1), 0);
	printf("  the serial port printed \"%s\", line status 0x%02x\n", serial.out, lsr);
	expect("8-byte read of the 4-byte device at 0xfee00010",
	       gm_space_read(mem, 0xfee00010, &word, 8), 0);
	printf("  0x%016llx in %u device calls\n", (unsigned long long)word, timer_calls);
	expect("2-byte read of the 4-byte-only device", gm_space_read(mem, 0xfee00010, &word, 2),
	       -EOPNOTSUPP);
	expect("read in the PCI hole", gm_space_read(mem, 0xd0000000, &word, 8), -EFAULT);
	expect("write to the ROM", gm_space_write(mem, 0xffff0000, "x", 1), -EACCES);
	expect("read of the ROM", gm_space_read(mem, 0xffff0000, &word, 7), 0);
	printf("  ROM says \"%.7s\"\n", (const char *)&word);

	printf("\n7. Part of RAM made read-only (a guest kernel's text at 16 MiB, 8 MiB)\n");
	expect("gm_space_listener_add (told of the current regions)",
	       gm_space_listener_add(mem, &printer, NULL, NULL), 0);
	expect("gm_space_protect(ram, 16 MiB, 8 MiB, read+exec)",
	       gm_space_protect(mem, ram, 16 * MiB, 8 * MiB, GM_PROT_READ | GM_PROT_EXEC), 0);
	expect("write by dispatch into it", gm_space_write(mem, 20 * MiB, "x", 1), -EACCES);
	gm_rcu_read_lock();
	view = gm_space_memory(mem);
	expect("gm_write_u32 through the current view into it",
	       gm_write_u32(view, 20 * MiB, 0xdeadbeef), -EACCES);
	expect("gm_write_u32 just below it", gm_write_u32(view, 16 * MiB - 4, 0xdeadbeef), 0);
	gm_rcu_read_unlock();

	printf("\n8. Hot-plug 512 MiB of RAM at 5 GiB; readers see a new view\n");
	expect("gm_space_add_ram(5 GiB, 512 MiB)",
	       gm_space_add_ram(mem, 0x140000000ull, 512 * MiB, 0, GM_MAP_NORESERVE, &plug), 0);
	expect("gm_space_memory_get", gm_space_memory_get(mem, &view), 0);
	print_layout(view);
	gm_memory_put(view);
	printf("  %llu views published in all\n", (unsigned long long)gm_space_generation(mem));

	gm_space_free(pio);
	gm_space_free(mem);
	gm_rcu_unregister_thread();
}

struct receiver {
	struct gm_space *space;
	int fd, ret;
	struct gm_migrate_stats st;
};

static void *receive(void *arg)
{
	struct receiver *r = arg;

	r->ret = gm_migrate_recv_space(r->space, r->fd, NULL, &r->st);
	return NULL;
}

/* A space, with 16 MiB of RAM at 0 and 16 MiB at 4 GiB (tracking dirty pages) or empty. */
static struct gm_space *small_machine(bool with_ram)
{
	struct gm_window *w;
	struct gm_space *s;

	if (gm_space_new(GM_SPACE_MEMORY, &s))
		exit(1);
	if (with_ram && (gm_space_add_ram(s, 0, 16 * MiB, 0, 0, &w) ||
			 gm_space_add_ram(s, 0x100000000ull, 16 * MiB, 0, 0, &w) ||
			 gm_space_dirty_enable(s, true))) {
		printf("  cannot build a small machine   << UNEXPECTED\n");
		failures++;
	}
	return s;
}

/* Copy the first @len bytes of @from into a new file @to. */
static int copy_head(const char *from, const char *to, size_t len)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	char buf[4096];
	size_t n;
	int ok = in && out;

	while (ok && len > 0 &&
	       (n = fread(buf, 1, len < sizeof(buf) ? len : sizeof(buf), in)) > 0) {
		ok = fwrite(buf, 1, n, out) == n;
		len -= n;
	}
	if (in)
		fclose(in);
	if (out)
		ok = fclose(out) == 0 && ok;
	return ok ? 0 : -1;
}

static void snapshot_tour(void)
{
	char dir[] = "/tmp/gm-tour-XXXXXX", base[64], delta[64], cut[128];
	struct gm_space *vm, *back, *there;
	struct gm_snapshot_info info = GM_OPTS(gm_snapshot_info);
	struct gm_snapshot *snap;
	struct receiver r;
	pthread_t th;
	uint64_t word = 0;
	int sv[2];

	printf("\n6. Snapshots and migration of guest memory\n");
	if (mkdtemp(dir) == NULL) {
		failures++;
		return;
	}
	snprintf(base, sizeof(base), "%s/base", dir);
	snprintf(delta, sizeof(delta), "%s/delta", dir);
	gm_rcu_register_thread();
	vm = small_machine(true);
	printf("  a machine: 16 MiB of RAM at 0 and 16 MiB at 4 GiB, dirty tracking on\n");
	expect("gm_space_write(0x1000, \"hello\")", gm_space_write(vm, 0x1000, "hello", 6), 0);
	expect("gm_snapshot_save_space(base): every page", gm_snapshot_save_space(vm, base, NULL),
	       0);
	expect("gm_space_write(4 GiB + 8, \"later\")",
	       gm_space_write(vm, 0x100000008ull, "later", 6), 0);
	{
		struct gm_snapshot_opts o = GM_OPTS(gm_snapshot_opts, .base = base);

		expect("gm_snapshot_save_space(delta): dirty pages only",
		       gm_snapshot_save_space(vm, delta, &o), 0);
	}
	expect("gm_snapshot_open(delta): opens its base too", gm_snapshot_open(delta, 0, &snap), 0);
	gm_snapshot_describe(snap, &info);
	printf("  delta: %llu of %llu pages defined, chain of %u files, file %llu bytes (sparse)\n",
	       (unsigned long long)info.defined_pages,
	       (unsigned long long)(info.ram_size / GM_PAGE_SIZE), info.chain_length,
	       (unsigned long long)info.file_size);
	back = small_machine(false);
	/* Lazy (pages read on first touch) where userfaultfd is allowed, else mapped. */
	expect("gm_snapshot_add_to_space(new space)",
	       gm_snapshot_add_to_space(
		   snap, back,
		   gm_snapshot_lazy_supported() == 0 ? GM_RESTORE_LAZY : GM_RESTORE_PRIVATE, NULL),
	       0);
	expect("gm_space_read(0x1000) in the restored space", gm_space_read(back, 0x1000, cut, 6),
	       0);
	expect("gm_space_read(4 GiB + 8) in the restored space",
	       gm_space_read(back, 0x100000008ull, cut + 6, 6), 0);
	printf("  restored: \"%s\" and \"%s\"\n", cut, cut + 6);
	failures += strcmp(cut, "hello") != 0 || strcmp(cut + 6, "later") != 0;
	gm_snapshot_close(snap);
	snprintf(cut, sizeof(cut), "%s/cut", dir);
	if (copy_head(base, cut, 5 * 4096) == 0)
		expect("gm_snapshot_open(the base cut after 5 pages)",
		       gm_snapshot_open(cut, GM_SNAPSHOT_OPEN_NOBASE, &snap), -EBADMSG);

	there = small_machine(true);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
		r = (struct receiver){.space = there, .fd = sv[1], .st = GM_OPTS(gm_migrate_stats)};
		pthread_create(&th, NULL, receive, &r);
		{
			struct gm_migrate_stats st = GM_OPTS(gm_migrate_stats);

			expect("gm_migrate_send_space over a socketpair",
			       gm_migrate_send_space(vm, sv[0], NULL, &st), 0);
			pthread_join(th, NULL);
			expect("gm_migrate_recv_space on the other side", r.ret, 0);
			printf(
			    "  %u rounds, %llu pages (%llu of them zero), %llu bytes on the wire\n",
			    st.rounds, (unsigned long long)st.pages,
			    (unsigned long long)st.zero_pages, (unsigned long long)st.bytes);
		}
		close(sv[0]);
		close(sv[1]);
	}
	expect("gm_space_read(4 GiB + 8) on the destination",
	       gm_space_read(there, 0x100000008ull, &word, 6), 0);
	printf("  destination says \"%.5s\"\n", (const char *)&word);
	gm_space_free(there);
	gm_space_free(back);
	gm_space_free(vm);
	gm_rcu_unregister_thread();
	unlink(base);
	unlink(delta);
	unlink(cut);
	rmdir(dir);
}

int main(void)
{
	struct gm_mapping *low, *high, *rom, *top;
	struct gm_memory *m;
	const char msg[] = "guest bytes that straddle a region boundary";
	char back[sizeof(msg)];
	struct iovec iov[4];
	uint64_t word;
	size_t n, done;
	int err;

	printf("guestmem tour\n\n1. Build guest memory from host mappings\n");
	err = gm_mapping_new_anon(1 * MiB, 0, &low);
	err = err ? err : gm_mapping_new_anon(2 * MiB, GM_MAP_GUARD, &high);
	err = err ? err : gm_mapping_new_anon(64 * 1024, 0, &rom);
	err = err ? err : gm_mapping_new_anon(1 * MiB, GM_MAP_NORESERVE, &top);
	if (err) {
		fprintf(stderr, "tour: cannot map host memory: %s\n", strerror(-err));
		return 1;
	}
	/* A "firmware" image, written before the region is made read-only. */
	memcpy(gm_mapping_host(rom), "ROM v1.0", 8);
	{
		const struct gm_region_spec specs[] = {
		    {.gpa = 0x100000, .size = 2 * MiB, .mapping = high},
		    {.gpa = 0, .size = 1 * MiB, .mapping = low},
		    /* 0x300000 .. 0x3fffff is a hole: no region. */
		    {.gpa = 0x400000,
		     .size = 64 * 1024,
		     .mapping = rom,
		     .flags = GM_REGION_READONLY},
		    {.gpa = 0x100000000ull, .size = 1 * MiB, .mapping = top},
		};

		err = gm_memory_new(specs, sizeof(specs) / sizeof(specs[0]), &m);
	}
	/* The view holds its own references; the tour's are no longer needed. */
	gm_mapping_put(low);
	gm_mapping_put(high);
	gm_mapping_put(rom);
	gm_mapping_put(top);
	if (err) {
		fprintf(stderr, "tour: gm_memory_new: %s\n", strerror(-err));
		return 1;
	}
	print_layout(m);

	printf("\n2. A string written across the boundary at 0x100000, read back\n");
	expect("gm_write(0x0fffec, 44 bytes)", gm_write(m, 0x100000 - 20, msg, sizeof(msg)), 0);
	expect("gm_read(0x0fffec, 44 bytes)", gm_read(m, 0x100000 - 20, back, sizeof(back)), 0);
	printf("  read back: \"%s\"%s\n", back, strcmp(back, msg) ? "   << UNEXPECTED" : "");
	failures += strcmp(back, msg) != 0;
	expect("gm_write_le64(0x100000008, ...) above 4 GiB",
	       gm_write_le64(m, 0x100000008ull, 0x1122334455667788ull), 0);
	expect("gm_read_le64(0x100000008)", gm_read_le64(m, 0x100000008ull, &word), 0);
	printf("  value: 0x%016llx\n", (unsigned long long)word);

	printf("\n3. Translation to host memory (zero-copy I/O)\n");
	printf("  gm_host_ptr(0x1000, 16)            = %s\n",
	       gm_host_ptr(m, 0x1000, 16) ? "a host pointer" : "NULL");
	printf("  gm_host_ptr(0x0fffec, 44)          = %s (crosses two regions)\n",
	       gm_host_ptr(m, 0x100000 - 20, sizeof(msg)) ? "a host pointer" : "NULL");
	expect("gm_to_iovec(0x0fffec, 44, max 4)",
	       gm_to_iovec(m, 0x100000 - 20, sizeof(msg), iov, 4, &n), 0);
	for (size_t i = 0; i < n; i++)
		printf("    iov[%zu]: %zu bytes\n", i, iov[i].iov_len);
	expect("gm_to_iovec(0x0fffec, 44, max 1)",
	       gm_to_iovec(m, 0x100000 - 20, sizeof(msg), iov, 1, &n), -ENOBUFS);

	printf("\n4. What a hostile guest address gets\n");
	expect("gm_read(0x300000, 8): a hole", gm_read(m, 0x300000, &word, 8), -EFAULT);
	expect("gm_read(0x2ffffc, 8): runs into the hole", gm_read(m, 0x2ffffc, &word, 8), -EFAULT);
	expect("gm_read(0xfffffffffffffff8, 16): wraps 2^64",
	       gm_read(m, 0xfffffffffffffff8ull, back, 16), -EFAULT);
	expect("gm_write(0x400000, 8): read-only region", gm_write(m, 0x400000, msg, 8), -EACCES);
	expect("gm_atomic_load_u64(0x1004): misaligned",
	       gm_atomic_load_u64(m, 0x1004, &word, __ATOMIC_ACQUIRE), -EINVAL);
	expect("gm_read_partial(0x2ffff0, 32)", gm_read_partial(m, 0x2ffff0, back, 32, &done),
	       -EFAULT);
	printf("  ... copied %zu bytes before the hole\n", done);
	expect("gm_read(0x400000, 8): reading the ROM is fine", gm_read(m, 0x400000, back, 8), 0);
	printf("  ROM says \"%.8s\"\n", back);

	gm_memory_put(m);
	space_tour();
	snapshot_tour();
	printf("\n%s\n", failures ? "tour: some steps did not do what they said"
				  : "tour: every step did what it said");
	return failures ? 1 : 0;
}
