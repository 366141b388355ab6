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
 * printing what a KVM binding would be told.
 * Every step is checked: the program exits 1 if guestmem does anything
 * other than what is printed.
 */
#include <guestmem/guestmem.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	struct gm_region_info ri;
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
	static const struct gm_space_listener_ops printer = {.commit = print_changes};
	const int wide = SIZE_MAX > 0xffffffffu; /* a 32-bit VMM gets less RAM */
	const uint64_t low = wide ? 3ull << 30 : 512 * MiB;
	struct serial serial = {.n = 0};
	unsigned timer_calls = 0;
	const struct gm_device_ops serial_ops = {.name = "serial-8250",
						 .read = serial_read,
						 .write = serial_write,
						 .sizes = GM_ACCESS_1};
	const struct gm_device_ops timer_ops = {
	    .name = "demo-timer", .read = timer_read, .write = timer_write, .sizes = GM_ACCESS_4};
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
	printf("\n%s\n", failures ? "tour: some steps did not do what they said"
				  : "tour: every step did what it said");
	return failures ? 1 : 0;
}
