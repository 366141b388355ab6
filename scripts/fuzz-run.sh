#!/bin/sh
# SPDX-License-Identifier: MIT
# Run one libFuzzer target for a bounded time, as a test (fuzz/meson.build,
# suite 'fuzz', run by `make check`):
#   fuzz-run.sh TARGET SEEDS [libFuzzer options...]
# Fuzzes for $GM_FUZZ_TIME seconds (30) from the seed corpus SEEDS into a
# scratch corpus (the seeds are never written), prints the run count, and
# fails on any finding (crash, leak, timeout, sanitizer report), keeping
# the input that found it in the test's working directory and printing it
# as hex so the log alone reproduces it.
set -u
target=$1
seeds=$2
shift 2
time=${GM_FUZZ_TIME:-30}
work=$(mktemp -d "${TMPDIR:-/tmp}/gm-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
name=$(basename "$target")
"$target" -max_total_time="$time" -print_final_stats=1 -artifact_prefix="$work/" \
	"$@" "$work" "$seeds" >"$work/log" 2>&1
st=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
if [ $st -ne 0 ]; then
	tail -n 60 "$work/log"
	for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
		[ -f "$a" ] || continue
		cp "$a" "./$name-$(basename "$a")"
		echo "finding kept as ./$name-$(basename "$a"):"
		od -An -tx1 -v "$a" | head -n 64
	done
	echo "$name: FAILED after ${runs:-?} runs in at most ${time} s (exit $st)"
	exit 1
fi
echo "$name: ${runs:-?} runs in ${time} s, no finding"
