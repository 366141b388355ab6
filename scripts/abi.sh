#!/bin/sh
# SPDX-License-Identifier: MIT
# libguestmem's ABI against the baseline committed in abi/libguestmem.abi.
#   abi.sh check  LIB BASELINE HEADER_DIR...   meson test 'abi' (make check)
#   abi.sh update LIB BASELINE HEADER_DIR...   make abi-update
# The baseline is abidw's description of the shared library of the normal
# x86-64 build (debug info needed). Only the types declared in the public
# headers in HEADER_DIRs (include/guestmem and the build tree's, for the
# generated version.h) are compared, whether an exported function reaches
# them or only inline code does: a private struct may change freely.
#
# check fails on an incompatible change (a removed function, a changed
# signature or public struct: anything abidiff reports but an addition)
# and on a soname that is not the baseline's; it passes on compatible ones (added functions) and
# prints them. It skips (exit 77) on other hosts than x86-64, without
# abidiff, or on a library without debug info.
#
# update writes a new baseline. An incompatible change under the same
# soname is refused once a release is tagged (git tag v*): raise soversion
# in meson.build first; GM_ABI_BREAK=1 overrides. Before the first release
# nothing has shipped, so it only warns.
set -eu
mode=$1 lib=$2 baseline=$3
shift 3
hd="" public=""
for d in "$@"; do
	hd="$hd --hd $d"
	public="$public|(^|/)$(basename "$d")/"
done
public=${public#|}

skip() {
	echo "skipped: $*"
	exit 77
}
refuse() {
	echo "abi: $*" >&2
	exit 1
}

machine=$(readelf -h "$lib" | sed -n 's/^ *Machine: *//p')
class=$(readelf -h "$lib" | sed -n 's/^ *Class: *//p')
why_not=""
[ "$class $machine" = "ELF64 Advanced Micro Devices X86-64" ] ||
	why_not="the ABI baseline is of the x86-64 library; $(basename "$lib") is $class $machine"
command -v abidiff >/dev/null && command -v abidw >/dev/null ||
	why_not="${why_not:-abidw/abidiff not installed (abigail-tools: scripts/deps.sh package)}"
readelf -S "$lib" | grep -q '\.debug_info' ||
	why_not="${why_not:-$(basename "$lib") has no debug info (abidw needs it: a debug or debugoptimized build)}"
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
old_soname=""
[ -f "$baseline" ] && old_soname=$(sed -n "1s/.* soname='\([^']*\)'.*/\1/p" "$baseline")

# The library's ABI as abixml: every type of its debug info, reachable
# from an exported function or not (the heads of static/memory-inline.h
# are reached only by inline code). Private types are in it too; compare()
# leaves them out.
dump() {
	# shellcheck disable=SC2086 # hd is a list of options
	abidw --no-corpus-path --no-comp-dir-path --drop-private-types --load-all-types \
		--type-id-style hash $hd "$lib" >"$1"
}

# abidiff's exit status is a bit set: 1 error, 2 usage, 4 ABI change,
# 8 incompatible ABI change. But bit 8 means a removed function or
# variable only: a public struct that grew, or a changed return type, is
# bit 4 alone. So compare() sets breaks=1 when abidiff counts any function,
# variable or type as removed or changed; only additions are compatible.
# Types declared outside the public headers (the library's own, liburcu's,
# the kernel's) are not compared: the suppression drops them.
compare() {
	rc=0
	cur=$(mktemp) out=$(mktemp) suppr=$(mktemp)
	dump "$cur"
	printf '[suppress_type]\n  source_location_not_regexp = %s\n' "$public" >"$suppr"
	abidiff --non-reachable-types --suppressions "$suppr" "$baseline" "$cur" >"$out" 2>&1 || rc=$?
	cat "$out"
	breaks=0
	[ $((rc & 8)) -eq 0 ] || breaks=1
	grep -Eq 'summary: .*[1-9][0-9]* ([Rr]emoved|[Cc]hanged)' "$out" && breaks=1
	rm -f "$cur" "$out" "$suppr"
}

case "$mode" in
check)
	[ -z "$why_not" ] || skip "$why_not"
	[ -f "$baseline" ] || refuse "no baseline at $baseline: make abi-update"
	if [ "$soname" != "$old_soname" ]; then
		refuse "the soname is $soname, the baseline's $old_soname: after raising soversion, make abi-update records the new baseline"
	fi
	compare
	if [ $((rc & 3)) -ne 0 ]; then
		refuse "abidiff failed (exit $rc)"
	elif [ "$breaks" = 1 ]; then
		refuse "incompatible ABI change under $soname (above). Undo it, or raise soversion in meson.build and run make abi-update (CONTRIBUTING.md)"
	elif [ $((rc & 4)) -ne 0 ]; then
		echo "abi: compatible changes (above) are not in the baseline yet: make abi-update records them"
	fi
	echo "abi: $soname is compatible with $(basename "$baseline")"
	;;
update)
	[ -z "$why_not" ] || refuse "cannot take a baseline: $why_not"
	if [ -f "$baseline" ] && [ "$soname" = "$old_soname" ]; then
		compare
		[ $((rc & 3)) -eq 0 ] || refuse "abidiff failed (exit $rc)"
		if [ "$breaks" = 1 ]; then
			released=$(git -C "$(dirname "$baseline")" tag -l 'v[0-9]*' 2>/dev/null | tail -1)
			if [ -n "$released" ] && [ "${GM_ABI_BREAK:-0}" != 1 ]; then
				refuse "incompatible change under $soname, which $released shipped: raise soversion in meson.build (GM_ABI_BREAK=1 overrides)"
			fi
			echo "abi: warning: incompatible change under $soname, allowed because no release is tagged yet${released:+ (overridden: $released)}"
		fi
	fi
	dump "$baseline.tmp"
	mv "$baseline.tmp" "$baseline"
	echo "abi: $baseline is now the ABI of $soname ($(grep -c '<elf-symbol ' "$baseline") symbols)"
	;;
*)
	refuse "unknown mode $mode (check or update)"
	;;
esac
