#!/bin/sh
# SPDX-License-Identifier: MIT
# How this host runs 32-bit x86 programs: prints "native" or "qemu-user".
#
# Some machines of ours run on a kernel without 32-bit compatibility mode: a
# `gcc -m32` program fails there with "Exec format error". The i386 suite
# then runs under user-mode emulation (qemu-i386-static), the way the armhf
# suite runs under qemu-arm-static. Decided once, by building and running a
# tiny -m32 program. GM_I386_MODE=native|qemu-user forces the answer (to try
# the emulated path on a machine that could run the programs natively).
set -eu
case "${GM_I386_MODE:-}" in
native|qemu-user) echo "$GM_I386_MODE"; exit 0 ;;
"") ;;
*) echo "i386-mode.sh: GM_I386_MODE must be native or qemu-user, not '$GM_I386_MODE'" >&2; exit 2 ;;
esac
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
printf 'int main(void) { return sizeof(void *) == 4 ? 42 : 1; }\n' > "$dir/probe.c"
if ! ${CC:-gcc} -m32 "$dir/probe.c" -o "$dir/probe" 2>"$dir/err"; then
	echo "i386-mode.sh: cannot build a -m32 program:" >&2
	cat "$dir/err" >&2
	exit 1
fi
st=0
"$dir/probe" 2>/dev/null || st=$?
if [ "$st" -eq 42 ]; then echo native; else echo qemu-user; fi
