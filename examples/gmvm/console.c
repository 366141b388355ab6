/* SPDX-License-Identifier: MIT */
/*
 * console.c - the guest's console, on two ports.
 *
 * GMVM_PORT_CONSOLE takes one byte per write, like a serial port's
 * transmit register. GMVM_PORT_CONSOLE_BUF takes the guest-physical address
 * of a struct gmvm_console_buf and prints its text, read from guest memory
 * through gm_read(): one exit per line instead of one per byte (KVM's PVM
 * flavour emulates rep outsb one byte per exit). The length is the guest's:
 * it is read once and checked before any text is copied.
 *
 * Bytes are collected into lines and printed as "guest: <line>", so the
 * guest's output and gmvm's report interleave line by line.
 */
#include "gmvm.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>

void gmvm_console_flush(struct gmvm *vm)
{
	struct gmvm_console *c = &vm->console;

	if (c->len == 0)
		return;
	printf("guest: %.*s\n", (int)c->len, c->line);
	fflush(stdout);
	c->len = 0;
}

static void console_putc(struct gmvm *vm, char ch)
{
	struct gmvm_console *c = &vm->console;

	if (ch == '\n') {
		gmvm_console_flush(vm);
		return;
	}
	/* Non-printing bytes from the guest are shown, not passed to the terminal. */
	if ((unsigned char)ch < 0x20 || (unsigned char)ch > 0x7e)
		ch = '?';
	if (c->len == sizeof(c->line))
		gmvm_console_flush(vm);
	c->line[c->len++] = ch;
}

static int console_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	(void)size;
	if (offset == 0) /* the other registers of the UART block ignore writes */
		console_putc(opaque, (char)(val & 0xff));
	return 0;
}

static int console_buf_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	struct gmvm *vm = opaque;
	const struct gm_memory *mem = gm_space_memory(vm->mem_space);
	unsigned char raw[4];
	char text[GMVM_CONSOLE_BUF_MAX];
	uint32_t len;
	int ret;

	(void)offset;
	(void)size;
	ret = gm_read(mem, val, raw, sizeof(raw));
	if (ret < 0)
		return ret;
	len = gmvm_le32(raw);
	if (len > sizeof(text))
		return -EINVAL;
	ret = gm_read(mem, val + offsetof(struct gmvm_console_buf, text), text, len);
	if (ret < 0)
		return ret;
	for (uint32_t i = 0; i < len; i++)
		console_putc(vm, text[i]);
	return 0;
}

/* Reads of the UART block: 0, except "transmitter empty" in the line status register. */
static int console_read(void *opaque, uint64_t offset, unsigned size, uint64_t *val)
{
	(void)opaque;
	(void)size;
	*val = offset == 5 ? 0x60 : 0;
	return 0;
}

int gmvm_console_add(struct gmvm *vm)
{
	static const struct gm_device_ops ops =
	    GM_OPTS_INIT(gm_device_ops, .name = "console", .read = console_read,
			 .write = console_write, .sizes = GM_ACCESS_1, .flags = 0);

	static const struct gm_device_ops buf_ops =
	    GM_OPTS_INIT(gm_device_ops, .name = "console-buf", .write = console_buf_write,
			 .sizes = GM_ACCESS_4, .flags = 0);
	struct gm_window *w; /* the handles are not needed later */
	int ret = gm_space_add_mmio(vm->io_space, GMVM_PORT_CONSOLE, 8, &ops, vm, &w);

	if (ret == 0)
		ret = gm_space_add_mmio(vm->io_space, GMVM_PORT_CONSOLE_BUF, 4, &buf_ops, vm, &w);
	return ret;
}
