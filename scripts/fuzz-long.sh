#!/bin/bash
# SPDX-License-Identifier: MIT
# A long fuzzing run counted in executions (`make fuzz-long`):
#   fuzz-long.sh [RUNS [TARGET...]]
# Runs every libFuzzer target (or the ones named: memory space_diff
# snapshot virtq vhost_user) for RUNS executions (10000000) from its seeds,
# in $GM_FUZZ_JOBS targets at a time (the number of CPUs), then replays
# every input the run kept through the ASan+UBSan build, so a memory error
# the fast build could not see is still found. Prints one line per target:
# executions, seconds, executions per second, inputs kept, findings.
#
# Why two builds: the sanitizer-free build (meson -Dfuzz_sanitize=none,
# release) runs 3-30 times faster on these machines, where ASan's large
# allocations and every system call are expensive; coverage guidance is the
# same. The replay gives each kept input the checks of `make check`'s
# fuzz suite. Inputs are written to $TMPDIR (a tmpfs, /dev/shm, when there
# is one) so the snapshot target does not wait for the disk.
#
# Corpora and findings stay in build-fuzzlong/: corpus-TARGET/, and
# findings-TARGET/ (crash-*, leak-*, timeout-*, oom-*); logs in log-TARGET.
# $GM_FUZZ_MAX_TIME (seconds) caps each target's run where the machine
# cannot give it RUNS executions; the line then says how many it got.
# Exit status 0 if nothing was found, 1 otherwise.
set -u
runs=${1:-10000000}
[ $# -gt 0 ] && shift
targets=${*:-"vhost_user memory space_diff snapshot virtq"}
jobs=${GM_FUZZ_JOBS:-$(nproc)}
cap=${GM_FUZZ_MAX_TIME:+-max_total_time=$GM_FUZZ_MAX_TIME}
top=$(cd "$(dirname "$0")/.." && pwd)
fast=$top/build-fuzzlong
asan=$top/build-fuzz

case $runs in
'' | *[!0-9]*)
	echo "fuzz-long.sh: RUNS must be a number of executions, not '$runs'" >&2
	exit 2
	;;
esac
if [ ! -f "$fast/build.ninja" ]; then
	CC=clang meson setup "$fast" -Dfuzz=enabled -Dtests=disabled -Dbuildtype=release \
		-Dfuzz_sanitize=none >/dev/null || exit 1
fi
if [ ! -f "$asan/build.ninja" ]; then
	CC=clang meson setup "$asan" -Dfuzz=enabled -Dtests=disabled >/dev/null || exit 1
fi
ninja -C "$fast" >/dev/null && ninja -C "$asan" >/dev/null || exit 1

if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
	TMPDIR=/dev/shm
	export TMPDIR
fi
# Keep freed memory in the process: a view's slot tables are allocated and
# freed on every input, and giving them back to the kernel each time costs
# more than the input.
GLIBC_TUNABLES=glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=268435456
export GLIBC_TUNABLES

# Each target's own options, as fuzz/meson.build gives them to `make check`.
opts() {
	case $1 in
	virtq) echo "-max_len=28780" ;;
	vhost_user) echo "-max_len=16384 -timeout=10" ;;
	esac
}

one() {
	t=$1
	seeds=$top/fuzz/corpus/$(echo "$t" | tr _ -)
	mkdir -p "$fast/corpus-$t" "$fast/findings-$t"
	start=$(date +%s)
	"$fast/fuzz/fuzz_$t" $(opts "$t") -runs="$runs" $cap -print_final_stats=1 -artifact_prefix="$fast/findings-$t/" \
		"$fast/corpus-$t" "$seeds" >"$fast/log-$t" 2>&1
	st=$?
	secs=$(($(date +%s) - start))
	done_runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$fast/log-$t" | tail -n 1)
	# The replay: each kept input once, under ASan+UBSan.
	"$asan/fuzz/fuzz_$t" $(opts "$t") -runs=0 -artifact_prefix="$fast/findings-$t/asan-" \
		"$fast/corpus-$t" >"$fast/log-$t-replay" 2>&1
	rst=$?
	kept=$(find "$fast/corpus-$t" -type f | wc -l)
	found=$(find "$fast/findings-$t" -type f | wc -l)
	rate=$((${done_runs:-0} / (secs > 0 ? secs : 1)))
	echo "$t: ${done_runs:-?} executions in ${secs} s (${rate}/s), $kept inputs kept," \
		"fuzz exit $st, ASan replay exit $rst, $found findings"
}

status=0
running=0
for t in $targets; do
	if [ ! -x "$fast/fuzz/fuzz_$t" ]; then
		echo "fuzz-long.sh: no target '$t'" >&2
		exit 2
	fi
	one "$t" >"$fast/result-$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n 2>/dev/null || wait
		running=$((running - 1))
	fi
done
wait
for t in $targets; do
	cat "$fast/result-$t"
	grep -q ', fuzz exit 0, ASan replay exit 0, 0 findings$' "$fast/result-$t" || status=1
done
exit $status
