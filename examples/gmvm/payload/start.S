/* SPDX-License-Identifier: MIT */
/*
 * start.S - the payload's file header and first instructions.
 *
 * gmvm enters here in 64-bit mode at CPL 3 with IOPL 3, the stack pointer
 * at stack_top_gpa and every general register zero. The header below is
 * what gmvm reads (struct gmvm_payload_header in gmvm-abi.h); its addresses
 * come from the linker script, so header and image cannot disagree.
 */
#include "gmvm-abi.h"

	.section .header, "a"
	.globl gmvm_header
gmvm_header:
	.ascii GMVM_PAYLOAD_MAGIC
	.long GMVM_PAYLOAD_VERSION
	.long gmvm_header_end - gmvm_header
	.quad __load_start
	.quad _start
	.quad __text_end
	.quad __image_end
	.quad __bss_end
	.quad __stack_top
gmvm_header_end:

	.section .text.start, "ax"
	.globl _start
_start:
	xor %ebp, %ebp
	call payload_main
	/* The exit port stops the VM: gmvm never resumes the vCPU after it. */
	mov $GMVM_PORT_EXIT, %dx
	out %eax, %dx
1:	jmp 1b

	.section .note.GNU-stack, "", @progbits
