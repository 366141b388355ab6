/* SPDX-License-Identifier: MIT */
/*
 * payload.c - gmvm's guest: a freestanding program that exercises, from
 * inside the guest, every part of guestmem a VMM uses.
 *
 * It runs in 64-bit mode at CPL 3 (so natively even where KVM emulates
 * CPL 0), talks to gmvm only through I/O ports, one MMIO window and guest
 * memory, and follows the steps of enum gmvm_step in order. Each step
 * announces itself on GMVM_PORT_STEP, reports on the console, and has gmvm
 * check what the guest saw (GMVM_PORT_CHECK). The return value of
 * payload_main() is the number of failed checks: the exit status.
 *
 * Freestanding: no libc. The few helpers below are all it needs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "gmvm-abi.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* The compiler may emit calls to these for loops and struct copies. */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);

void *memset(void *dst, int c, size_t n)
{
	unsigned char *d = dst;
	while (n--)
		*d++ = (unsigned char)c;
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	while (n--)
		*d++ = *s++;
	return dst;
}

/* ---- Port I/O ------------------------------------------------------------ */

static ALWAYS_INLINE void out32(uint16_t port, uint32_t val)
{
	__asm__ volatile("outl %0, %1" : : "a"(val), "Nd"(port) : "memory");
}

static ALWAYS_INLINE uint32_t in32(uint16_t port)
{
	uint32_t val;
	__asm__ volatile("inl %1, %0" : "=a"(val) : "Nd"(port) : "memory");
	return val;
}

/* ---- Console ------------------------------------------------------------- */

/*
 * A line is built in a struct gmvm_console_buf and handed to gmvm with one
 * port write of its address: one exit per line, where the byte port costs
 * one exit per character.
 */
struct line {
	struct gmvm_console_buf cb;
	size_t len;
};

static void console_write(struct line *l)
{
	l->cb.len = (uint32_t)l->len;
	out32(GMVM_PORT_CONSOLE_BUF, (uint32_t)(uintptr_t)&l->cb);
}

static void line_putc(struct line *l, char c)
{
	if (l->len < sizeof(l->cb.text))
		l->cb.text[l->len++] = c;
}

static void line_puts(struct line *l, const char *s)
{
	while (*s)
		line_putc(l, *s++);
}

static void line_putu(struct line *l, uint64_t v, unsigned base)
{
	char tmp[20];
	size_t n = 0;
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (base == 16)
		line_puts(l, "0x");
	while (n)
		line_putc(l, tmp[--n]);
}

/* printf for the three conversions the payload needs: %s, %u (64-bit), %x (64-bit). */
static void say(const char *fmt, ...)
{
	struct line l;
	va_list ap;

	l.len = 0;
	va_start(ap, fmt);
	for (; *fmt; fmt++) {
		if (*fmt != '%' || !fmt[1]) {
			line_putc(&l, *fmt);
			continue;
		}
		switch (*++fmt) {
		case 's':
			line_puts(&l, va_arg(ap, const char *));
			break;
		case 'u':
			line_putu(&l, va_arg(ap, uint64_t), 10);
			break;
		case 'x':
			line_putu(&l, va_arg(ap, uint64_t), 16);
			break;
		default:
			line_putc(&l, *fmt);
		}
	}
	va_end(ap);
	line_putc(&l, '\n');
	console_write(&l);
}

/* ---- Checks -------------------------------------------------------------- */

static struct gmvm_bootinfo boot;
static unsigned failures;
static struct gmvm_check check_block;

static void expect(int ok, const char *what)
{
	if (!ok)
		failures++;
	say("  %s: %s", what, ok ? "ok" : "FAILED");
}

static ALWAYS_INLINE void step(enum gmvm_step s)
{
	out32(GMVM_PORT_STEP, (uint32_t)s);
}

static uint64_t fill(uint64_t gpa, uint64_t size, uint64_t seed)
{
	for (uint64_t a = gpa; a < gpa + size; a += 8)
		*(volatile uint64_t *)a = gmvm_pattern(a, seed);
	return size;
}

static uint64_t sum(uint64_t gpa, uint64_t size)
{
	uint64_t s = GMVM_SUM_INIT;
	for (uint64_t a = gpa; a < gpa + size; a += 8)
		s = gmvm_sum_word(s, *(volatile const uint64_t *)a);
	return s;
}

/* Ask gmvm to compute the same sum through guestmem; returns its verdict. */
static uint32_t vmm_check(uint32_t kind, uint64_t gpa, uint64_t size, uint64_t seed,
			  uint64_t guest_sum)
{
	check_block.kind = kind;
	check_block.gpa = gpa;
	check_block.size = size;
	check_block.seed = seed;
	check_block.guest_sum = guest_sum;
	out32(GMVM_PORT_CHECK, (uint32_t)(uintptr_t)&check_block);
	return in32(GMVM_PORT_CHECK);
}

static void fill_and_check(const char *where, uint64_t gpa, uint64_t size, uint64_t seed)
{
	uint64_t s;
	uint32_t verdict;

	fill(gpa, size, seed);
	s = sum(gpa, size);
	verdict = vmm_check(GMVM_CHECK_PATTERN, gpa, size, seed, s);
	say("  filled %x-%x (%s), sum %x, gmvm verdict %u", gpa, gpa + size - 1, where, s,
	    (uint64_t)verdict);
	expect(verdict == GMVM_CHECK_OK, "gmvm agrees");
}

/* ---- Steps --------------------------------------------------------------- */

static void step_hello(void)
{
	uint16_t cs;
	uint64_t rflags;

	step(GMVM_STEP_HELLO);
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	__asm__ volatile("pushfq; popq %0" : "=r"(rflags));
	say("hello from the payload: 64-bit mode, CPL %u, IOPL %u", (uint64_t)(cs & 3),
	    (rflags >> 12) & 3);
	/*
	 * gmvm sets IOPL 3, but KVM's PVM flavour does not keep it (it reads
	 * back as 0): the ports are opened by the TSS I/O bitmap instead.
	 */
	expect((cs & 3) == 3, "running at CPL 3");
}

static void step_rom_read(void)
{
	uint64_t magic, s, want = GMVM_SUM_INIT;

	step(GMVM_STEP_ROM_READ);
	magic = *(volatile const uint64_t *)GMVM_ROM_GPA;
	s = sum(GMVM_ROM_GPA, GMVM_ROM_SIZE);
	for (uint64_t off = 0; off < GMVM_ROM_SIZE; off += 8)
		want = gmvm_sum_word(want, gmvm_rom_word(off));
	say("  ROM at %x: magic %x, sum %x", GMVM_ROM_GPA, magic, s);
	expect(magic == GMVM_ROM_MAGIC && s == want, "ROM contents as built");
	expect(vmm_check(GMVM_CHECK_ROM, GMVM_ROM_GPA, GMVM_ROM_SIZE, 0, s) == GMVM_CHECK_OK,
	       "gmvm agrees");
}

static void step_rom_write(void)
{
	volatile uint64_t *word = (volatile uint64_t *)(GMVM_ROM_GPA + 8);
	uint64_t before, after;
	uint32_t refused;

	step(GMVM_STEP_ROM_WRITE);
	before = *word;
	*word = ~before;
	after = *word;
	refused = in32(GMVM_PORT_ROM_REFUSED);
	say("  wrote %x to ROM at %x: reads back %x, gmvm refused %u write(s)", ~before,
	    (uint64_t)(uintptr_t)word, after, (uint64_t)refused);
	expect(after == before && refused == 1, "ROM unchanged, write refused once");
}

static void step_doorbell(void)
{
	volatile uint64_t *dev = (volatile uint64_t *)GMVM_MMIO_GPA;
	uint64_t gpa = boot.scratch_gpa + 0x200000, size = 0x10000;
	uint64_t s, result, status, rings;

	step(GMVM_STEP_DOORBELL);
	fill(gpa, size, 4);
	s = sum(gpa, size);
	dev[GMVM_DB_ADDR / 8] = gpa;
	dev[GMVM_DB_LEN / 8] = size;
	dev[GMVM_DB_DOORBELL / 8] = 1;
	result = dev[GMVM_DB_RESULT / 8];
	status = dev[GMVM_DB_STATUS / 8];
	rings = dev[GMVM_DB_RINGS / 8];
	say("  doorbell over %x-%x: device sum %x, guest sum %x, status %u, rings %u", gpa,
	    gpa + size - 1, result, s, status, rings);
	expect(status == 0 && result == s && rings == 1, "device and guest agree");
}

static void step_fill_boundary(void)
{
	step(GMVM_STEP_FILL_BOUNDARY);
	fill_and_check("across the 16 MiB region boundary", GMVM_RAM_SPLIT_GPA - 0x100000, 0x200000,
		       5);
}

static void step_fill_high(void)
{
	step(GMVM_STEP_FILL_HIGH);
	fill_and_check("first 1 MiB above 4 GiB", GMVM_HIGH_GPA, 0x100000, 6);
	fill_and_check("last 1 MiB above 4 GiB", GMVM_HIGH_GPA + boot.high_ram_size - 0x100000,
		       0x100000, 6);
}

/*
 * Between the two step() calls the only stores go to the listed pages: the
 * loops are inlined, keep their state in registers and make no calls, so
 * the dirty log for this step must be exactly these pages (gmvm checks).
 */
static ALWAYS_INLINE void step_dirty_exact(void)
{
	static const uint64_t low[] = GMVM_DIRTY_LOW_PAGES;
	static const uint64_t high[] = GMVM_DIRTY_HIGH_PAGES;
	uint64_t low_base = boot.scratch_gpa;
	uint64_t high_base = GMVM_DIRTY_HIGH_BASE(boot.high_ram_size);

	step(GMVM_STEP_DIRTY_EXACT);
	for (size_t i = 0; i < sizeof(low) / sizeof(low[0]); i++)
		*(volatile uint64_t *)(low_base + low[i] * 4096 + 64) = i + 1;
	for (size_t i = 0; i < sizeof(high) / sizeof(high[0]); i++)
		*(volatile uint64_t *)(high_base + high[i] * 4096 + 128) = i + 1;
	step(GMVM_STEP_HOTPLUG);
	say("  wrote %u pages of low RAM and %u pages above 4 GiB",
	    (uint64_t)(sizeof(low) / sizeof(low[0])), (uint64_t)(sizeof(high) / sizeof(high[0])));
}

static void step_hotplug(void)
{
	uint64_t gpa = boot.hotplug_gpa;
	uint32_t st;

	/* step(GMVM_STEP_HOTPLUG) was announced by step_dirty_exact(). */
	out32(GMVM_PORT_HOTPLUG, GMVM_HOTPLUG_PLUG);
	st = in32(GMVM_PORT_HOTPLUG);
	say("  asked gmvm to plug %x bytes at %x: status %u", GMVM_HOTPLUG_SIZE, gpa, (uint64_t)st);
	expect(st == 0, "region plugged");
	if (st == 0)
		fill_and_check("hot-plugged region", gpa, GMVM_HOTPLUG_SIZE, 8);

	out32(GMVM_PORT_HOTPLUG, GMVM_HOTPLUG_UNPLUG);
	st = in32(GMVM_PORT_HOTPLUG);
	say("  asked gmvm to unplug it: status %u", (uint64_t)st);
	expect(st == 0, "region unplugged");
	/* Nothing backs it now: the read exits to gmvm, which answers all ones. */
	uint64_t after = *(volatile uint64_t *)gpa;
	say("  read after unplug: %x", after);
	expect(after == ~(uint64_t)0, "unplugged memory reads as unassigned");
}

static void step_protect_text(void)
{
	extern const char gmvm_header[];
	volatile unsigned char *code = (volatile unsigned char *)(gmvm_header + 0x40);
	int protect = (boot.flags & GMVM_BOOT_PROTECT_TEXT) != 0;
	unsigned char b;
	uint32_t refused;

	step(GMVM_STEP_PROTECT_TEXT);
	/* Write back the byte that is there: harmless if the write is allowed. */
	b = *code;
	*code = b;
	refused = in32(GMVM_PORT_TEXT_REFUSED);
	say("  overwrote own code at %x: gmvm refused %u write(s) (text %s)",
	    (uint64_t)(uintptr_t)code, (uint64_t)refused, protect ? "protected" : "writable");
	expect(refused == (protect ? 1u : 0u),
	       protect ? "write to protected text refused" : "write to writable text allowed");
}

/* gmvm --bench-exits: nothing but exits, port I/O then MMIO, between time marks. */
static void bench(uint64_t n)
{
	volatile uint64_t *sink = (volatile uint64_t *)GMVM_BENCH_MMIO_GPA;

	out32(GMVM_PORT_BENCH_MARK, GMVM_BENCH_PIO_START);
	for (uint64_t i = 0; i < n; i++)
		out32(GMVM_PORT_BENCH, (uint32_t)i);
	out32(GMVM_PORT_BENCH_MARK, GMVM_BENCH_MMIO_START);
	for (uint64_t i = 0; i < n; i++)
		*sink = i;
	out32(GMVM_PORT_BENCH_MARK, GMVM_BENCH_END);
}

int payload_main(void);
int payload_main(void)
{
	volatile const struct gmvm_bootinfo *bi =
	    (volatile const void *)(uintptr_t)GMVM_BOOTINFO_GPA;

	/* Read the boot information once; the copy is what every step uses. */
	boot.low_ram_end = bi->low_ram_end;
	boot.high_ram_size = bi->high_ram_size;
	boot.hotplug_gpa = bi->hotplug_gpa;
	boot.scratch_gpa = bi->scratch_gpa;
	boot.flags = bi->flags;
	boot.bench_exits = bi->bench_exits;
	if (boot.bench_exits != 0) {
		bench(boot.bench_exits);
		return 0;
	}

	step_hello();
	step_rom_read();
	step_rom_write();
	step_doorbell();
	step_fill_boundary();
	step_fill_high();
	step_dirty_exact();
	step_hotplug();
	step_protect_text();

	step(GMVM_STEP_DONE);
	say("payload done: %u failed check(s)", (uint64_t)failures);
	return (int)failures;
}
