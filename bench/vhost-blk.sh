#!/bin/bash
# SPDX-License-Identifier: MIT
# Benchmark, run by hand (not part of make check): the demo-linux guest
# (Debian's kernel under QEMU) does sequential direct I/O on a vhost-user-blk
# disk, served in turn by each back end, same image, same workload:
#   write then read the whole image with 128 KiB requests (8 passes each),
#   then with 4 KiB requests (1 pass each); phases OP-BSqN keep N requests
#   outstanding (N guest dd processes, each over its own part of the disk).
# Back ends: gm-sync and gm-uring (gm-vhost-blk --aio=sync / io_uring; gm
# is its default), qsd (qemu-storage-daemon, aio=threads, its default) and
# qsd-uring (aio=io_uring). With --runs N the back ends take turns N times
# and each figure is the median of its N runs.
# Reported per phase and back end: guest-observed throughput (the guest
# times its own dd with /proc/uptime) and the back end's CPU time
# (utime+stime of the whole process from /proc/PID/stat, sampled while the
# disk is idle just before and after the phase) per GiB moved, and for each
# gm back end its CPU/GiB ratio to qsd's (below 1: gm-vhost-blk spends less).
#
#   bench/vhost-blk.sh [--gm-vhost-blk PATH] [--size MIB] [--runs N]
#                      [--backends "gm-sync gm-uring qsd"] [--phases "..."]
#                      [--queues N]   (N queues and N vCPUs)
#
# Under TCG the guest is slow; the back end's CPU per GiB is the figure
# that matters. Run it on a quiet machine.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/linux-guest.sh"

GM_VHOST_BLK=${GM_VHOST_BLK:-$here/../build-release/tools/gm-vhost-blk/gm-vhost-blk}
size_mib=256
backends="gm-sync gm-uring qsd"
runs=1
queues=1
# 128 KiB phases run 8 passes so their CPU time is well above the 10 ms
# resolution of /proc/PID/stat.
phases="write-131072x8 read-131072x8 write-4096 read-4096"
timeout_s=${BENCH_TIMEOUT:-1200}
while [ $# -gt 0 ]; do
	case "$1" in
	--gm-vhost-blk) GM_VHOST_BLK=$2; shift ;;
	--size) size_mib=$2; shift ;;
	--backends) backends=$2; shift ;;
	--phases) phases=$2; shift ;;
	--runs) runs=$2; shift ;;
	--queues) queues=$2; shift ;;
	*) echo "usage: $0 [--gm-vhost-blk PATH] [--size MIB] [--runs N] [--backends 'gm-sync gm-uring qsd'] [--phases '...'] [--queues N]" >&2; exit 2 ;;
	esac
	shift
done

lg_need_tools
lg_find_kernel
lg_pick_accel
hz=$(getconf CLK_TCK)
export LG_SMP=$queues

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gm-bench-vhost-blk.XXXXXX")
QEMU_PID=
cleanup() {
	lg_kill_qemu
	lg_stop_all 2
	[ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

img=$WORK/disk.img
disk_size=$((size_mib * 1024 * 1024))
# Fully allocated (not sparse), so every back end finds the same file.
dd if=/dev/zero of="$img" bs=1M count="$size_mib" status=none
# Write it back now, so the first back end's first phase does not share
# the host with the writeback of the image's creation.
sync "$img"
cat >"$WORK/gm.conf" <<EOC
MODE=bench
DISK_SIZE=$disk_size
BENCH_PHASES="$phases"
EOC
lg_build_initramfs "$WORK/initrd.cpio" "$here/../scripts/guest-init.sh" "$WORK/gm.conf"

echo "vhost-blk bench: kernel $KVER, accel $ACCEL ($ACCEL_WHY), image $size_mib MiB, $queues vCPU(s), $queues queue(s), $runs run(s)"
echo "  host: $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"

# Results: R[backend.phase.{mibs,cpu}], space-separated, one value per run.
declare -A R
run_backend() { # run_backend NAME
	local name=$1 kind
	local log=$WORK/console-$name.log done=0 n line phase t1 bytes secs rc start_ticks pid
	LG_GM_ARGS= LG_QSD_FILE_OPTS=
	case "$name" in
	gm) kind=gm ;;
	gm-sync) kind=gm LG_GM_ARGS=--aio=sync ;;
	gm-uring) kind=gm LG_GM_ARGS=--aio=io_uring ;;
	qsd) kind=qsd ;;
	qsd-uring) kind=qsd LG_QSD_FILE_OPTS=,aio=io_uring ;;
	*) echo "unknown back end '$name'"; return 1 ;;
	esac
	if ! lg_start_backend "$kind" "$WORK/vhost.sock" "$img" "$WORK/backend-$name.log" "$queues"; then
		return 1
	fi
	pid=$LG_PID
	start_ticks=$(lg_cpu_ticks "$pid")
	lg_start_qemu "$WORK/initrd.cpio" "$log" "$timeout_s" 256 "" "$WORK/vhost.sock"
	# Follow the console: sample the back end's CPU at each begin/end line.
	# The guest pauses 2 s around each phase, so a 50 ms poll is on time.
	declare -A T0
	while :; do
		local alive=1
		kill -0 "$QEMU_PID" 2>/dev/null || alive=0
		n=$(wc -l <"$log")
		while [ "$done" -lt "$n" ]; do
			done=$((done + 1))
			line=$(sed -n "${done}p" "$log")
			line=${line%$'\r'}
			case "$line" in
			"GMDEMO begin "*)
				phase=${line#GMDEMO begin }
				T0[$phase]=$(lg_cpu_ticks "$pid")
				;;
			"GMDEMO end "*)
				t1=$(lg_cpu_ticks "$pid")
				set -- ${line#GMDEMO end }
				phase=$1 rc=${2#rc=} bytes=${3#bytes=} secs=${4#secs=}
				if [ "$rc" != 0 ]; then
					echo "  $name $phase: dd failed in the guest (status $rc)"
					continue
				fi
				R[$name.$phase.mibs]+=" $(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.1f", (s > 0 ? b / 1048576 / s : 0) }')"
				R[$name.$phase.cpu]+=" $(awk -v t="$((t1 - T0[$phase]))" -v hz="$hz" -v b="$bytes" \
					'BEGIN { printf "%.3f", t / hz / (b / 1073741824) }')"
				;;
			esac
		done
		[ $alive = 1 ] || break
		sleep 0.05
	done
	wait "$QEMU_PID"
	rc=$?
	QEMU_PID=
	R[$name.total]+=" $(($(lg_cpu_ticks "$pid") - start_ticks))"
	sleep 0.5
	lg_stop "$pid" 5
	[ $rc = 0 ] || echo "  $name: QEMU exited $rc"
	grep -aq '^GMDEMO guest-done' "$log" || { echo "  $name: the guest did not finish"; tail -n 20 "$log"; }
	sed "s/^/  $name back end: /" "$WORK/backend-$name.log" | tail -n 3
}

# Alternate: each run serves every back end once, in turn.
for run in $(seq 1 "$runs"); do
	for b in $backends; do
		t=$(date +%s)
		run_backend "$b" || echo "  $b: could not start"
		echo "  run $run, $b: guest run took $(($(date +%s) - t)) s wall"
	done
done

# median VALUES...: the median of the numbers given (n/a if none).
median() {
	printf '%s\n' "$@" | awk 'NF { v[n++] = $1 } END {
		if (n == 0) { print "n/a"; exit }
		for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		print (n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) }'
}
# shellcheck disable=SC2086 # the lists split on purpose
med() { median ${R[$1]:-}; }
ratio() { awk -v g="$1" -v q="$2" 'BEGIN { if (g + 0 == g && q + 0 == q && q > 0) printf "%.2f", g / q; else print "n/a" }'; }

gms="" base=""
for b in $backends; do
	case "$b" in gm*) gms="$gms $b" ;; qsd) base=qsd ;; esac
done
[ -n "$base" ] || for b in $backends; do case "$b" in qsd*) base=$b; break ;; esac; done
echo
printf '%-16s' "phase"
for b in $backends; do printf ' | %-22s' "$b"; done
[ -n "$base" ] && for g in $gms; do printf ' | %-14s' "$g:$base"; done
echo
printf '%-16s' ""
for b in $backends; do printf ' | %8s %13s' "MiB/s" "CPU s/GiB"; done
[ -n "$base" ] && for g in $gms; do printf ' | %6s %7s' "CPU" "MiB/s"; done
echo
for p in $phases; do
	label=${p%%-*} bs=${p#*-} depth="" passes=""
	case "$bs" in *q*) depth=" qd${bs#*q}"; bs=${bs%q*} ;; esac
	case "$bs" in *x*) passes=" x${bs#*x}"; bs=${bs%x*} ;; esac
	label="$label $((bs / 1024))K$passes$depth"
	printf '%-16s' "$label"
	for b in $backends; do
		printf ' | %8s %13s' "$(med "$b.$p.mibs")" "$(med "$b.$p.cpu")"
	done
	if [ -n "$base" ]; then
		for g in $gms; do
			printf ' | %6s %7s' "$(ratio "$(med "$g.$p.cpu")" "$(med "$base.$p.cpu")")" \
				"$(ratio "$(med "$g.$p.mibs")" "$(med "$base.$p.mibs")")"
		done
	fi
	echo
done
[ -n "$base" ] && echo "(ratios: gm back end / $base, CPU per GiB and MiB/s; targets CPU <= 0.5, MiB/s >= 1)"
for b in $backends; do
	echo "$b: $(awk -v t="$(med "$b.total")" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }') s CPU over the whole guest run (boot and idle included, median)"
done
