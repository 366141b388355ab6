/* SPDX-License-Identifier: MIT */
/*
 * rom.c - the ROM's contents: a magic word, then words derived from their
 * offset (gmvm_rom_word() in gmvm-abi.h), so the guest and gmvm can both
 * check every byte without sharing a file.
 */
#include "gmvm.h"

void gmvm_rom_build(unsigned char *buf)
{
	for (uint64_t off = 0; off < GMVM_ROM_SIZE; off += 8) {
		uint64_t w = gmvm_rom_word(off);

		for (unsigned i = 0; i < 8; i++)
			buf[off + i] = (unsigned char)(w >> (8 * i));
	}
}
