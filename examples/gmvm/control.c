/* SPDX-License-Identifier: MIT */
/*
 * control.c - the control device: how the payload tells gmvm where it is
 * and asks gmvm to check what it saw.
 *
 * Ports (gmvm-abi.h):
 *   GMVM_PORT_STEP          out: a payload step starts. gmvm prints it,
 *                           and with --dirty-stats the pages dirtied by the
 *                           step before; with --snapshot-at it may stop here.
 *   GMVM_PORT_CHECK         out: guest address of a struct gmvm_check; gmvm
 *                           reads it once, recomputes the checksum through
 *                           gm_read() and the expected one from the pattern
 *                           or the ROM; in: the verdict.
 *   GMVM_PORT_ROM_REFUSED   in: guest writes to ROM refused so far.
 *   GMVM_PORT_TEXT_REFUSED  in: guest writes to protected text refused.
 *   GMVM_PORT_EXIT          out: the payload's exit status; the VM stops.
 */
#include "gmvm.h"

#include <errno.h>

static const char *const step_names[] = {
    [GMVM_STEP_HELLO] = "hello",
    [GMVM_STEP_ROM_READ] = "rom-read",
    [GMVM_STEP_ROM_WRITE] = "rom-write",
    [GMVM_STEP_DOORBELL] = "doorbell",
    [GMVM_STEP_FILL_BOUNDARY] = "fill-boundary",
    [GMVM_STEP_FILL_HIGH] = "fill-high",
    [GMVM_STEP_DIRTY_EXACT] = "dirty-exact",
    [GMVM_STEP_HOTPLUG] = "hotplug",
    [GMVM_STEP_PROTECT_TEXT] = "protect-text",
    [GMVM_STEP_DONE] = "done",
};

const char *gmvm_step_name(unsigned step)
{
	if (step == 0 || step > GMVM_STEP_COUNT)
		return "?";
	return step_names[step];
}

int gmvm_sum_guest(const struct gm_memory *mem, uint64_t gpa, uint64_t size, uint64_t *sum)
{
	unsigned char buf[4096];
	uint64_t s = GMVM_SUM_INIT, done = 0, end;
	int ret;

	if (size % 8 != 0 || gm_add_overflow_u64(gpa, size, &end))
		return -EINVAL;
	while (done < size) {
		size_t n = size - done < sizeof(buf) ? (size_t)(size - done) : sizeof(buf);

		ret = gm_read(mem, gpa + done, buf, n);
		if (ret < 0)
			return ret;
		for (size_t i = 0; i < n; i += 8)
			s = gmvm_sum_word(s, gmvm_le64(buf + i));
		done += n;
	}
	*sum = s;
	return 0;
}

/* The sum the guest should have found, computed from the definition, not from memory. */
static uint64_t expected_sum(const struct gmvm_check *c)
{
	uint64_t s = GMVM_SUM_INIT;

	for (uint64_t off = 0; off < c->size; off += 8)
		s = gmvm_sum_word(s, c->kind == GMVM_CHECK_ROM
					 ? gmvm_rom_word(off)
					 : gmvm_pattern(c->gpa + off, c->seed));
	return s;
}

static uint32_t run_check(struct gmvm *vm, uint64_t block_gpa)
{
	const struct gm_memory *mem = gm_space_memory(vm->mem_space);
	unsigned char raw[sizeof(struct gmvm_check)];
	struct gmvm_check c;
	uint64_t mine;
	int ret;

	/* Read the guest's block once; everything below uses the copy. */
	if (gm_read(mem, block_gpa, raw, sizeof(raw)) < 0)
		return GMVM_CHECK_BAD_BLOCK;
	c.kind = gmvm_le32(raw);
	c.gpa = gmvm_le64(raw + 8);
	c.size = gmvm_le64(raw + 16);
	c.seed = gmvm_le64(raw + 24);
	c.guest_sum = gmvm_le64(raw + 32);
	if ((c.kind != GMVM_CHECK_PATTERN && c.kind != GMVM_CHECK_ROM) || c.size == 0 ||
	    c.size % 8 != 0 || c.size > (64ull << 20))
		return GMVM_CHECK_BAD_BLOCK;
	if (c.kind == GMVM_CHECK_ROM && (c.gpa != GMVM_ROM_GPA || c.size != GMVM_ROM_SIZE))
		return GMVM_CHECK_BAD_BLOCK;

	ret = gmvm_sum_guest(mem, c.gpa, c.size, &mine);
	gmvm_say("check: 0x%llx-0x%llx: guest sum 0x%016llx, gmvm sum 0x%016llx%s",
		 (unsigned long long)c.gpa, (unsigned long long)(c.gpa + c.size - 1),
		 (unsigned long long)c.guest_sum, (unsigned long long)(ret == 0 ? mine : 0),
		 ret == 0 ? "" : " (not readable)");
	if (ret < 0)
		return GMVM_CHECK_FAULT;
	if (mine != c.guest_sum)
		return GMVM_CHECK_MISMATCH;
	if (expected_sum(&c) != mine)
		return GMVM_CHECK_PATTERN_BAD;
	return GMVM_CHECK_OK;
}

static int control_write(void *opaque, uint64_t offset, unsigned size, uint64_t val)
{
	struct gmvm *vm = opaque;
	struct gmvm_control *c = &vm->control;

	(void)size;
	switch (GMVM_PORT_STEP + offset) {
	case GMVM_PORT_STEP:
		/* Acted on by the run loop once this exit is done (gmvm_control_service()). */
		c->announced = (uint32_t)val;
		c->step_pending = true;
		return 0;
	case GMVM_PORT_CHECK:
		c->verdict = run_check(vm, val);
		c->checks++;
		if (c->verdict != GMVM_CHECK_OK)
			c->checks_failed++;
		gmvm_say("check: verdict %u (%s)", c->verdict,
			 c->verdict == GMVM_CHECK_OK ? "ok" : "FAILED");
		return 0;
	case GMVM_PORT_EXIT:
		c->exited = true;
		c->exit_status = (uint32_t)val;
		return 0;
	default:
		return -EACCES;
	}
}

static int control_read(void *opaque, uint64_t offset, unsigned size, uint64_t *val)
{
	struct gmvm *vm = opaque;

	(void)size;
	switch (GMVM_PORT_STEP + offset) {
	case GMVM_PORT_CHECK:
		*val = vm->control.verdict;
		return 0;
	case GMVM_PORT_ROM_REFUSED:
		*val = vm->rom_refused;
		return 0;
	case GMVM_PORT_TEXT_REFUSED:
		*val = vm->text_refused;
		return 0;
	default:
		return -EACCES;
	}
}

int gmvm_control_add(struct gmvm *vm)
{
	static const struct gm_device_ops ops =
	    GM_OPTS_INIT(gm_device_ops, .name = "control", .read = control_read,
			 .write = control_write, .sizes = GM_ACCESS_4, .flags = 0);
	struct gm_window *w; /* the handle is not needed later */

	vm->control.vm = vm;
	return gm_space_add_mmio(vm->io_space, GMVM_PORT_STEP, GMVM_PORT_EXIT + 4 - GMVM_PORT_STEP,
				 &ops, vm, &w);
}

int gmvm_control_service(struct gmvm *vm)
{
	struct gmvm_control *c = &vm->control;
	unsigned step = c->announced, prev = c->step;
	int ret = 0;

	if (!c->step_pending)
		return 0;
	c->step_pending = false;
	gmvm_console_flush(vm);
	if (vm->opts.dirty_stats && prev != 0)
		ret = gmvm_dirty_report(vm, prev, prev == GMVM_STEP_DIRTY_EXACT);
	if (step == prev + 1)
		c->steps_seen++;
	else
		gmvm_say("step %u announced after step %u: out of order", step, prev);
	c->step = step;
	gmvm_say("step %u: %s", step, gmvm_step_name(step));
	if (ret == 0 && vm->opts.snapshot_at == step)
		ret = gmvm_snapshot_save(vm);
	return ret;
}
