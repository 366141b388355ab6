#!/bin/bash
# Benchmark, run by hand (not part of make check): the demo-linux guest
# (Debian's kernel under QEMU) does sequential direct I/O on a vhost-user-blk
# disk, once served by gm-vhost-blk and once by qemu-storage-daemon, same
# image, same workload, one after the other in one run:
#   write then read the whole image with 128 KiB requests (8 passes each),
#   then with 4 KiB requests (1 pass each).
# Reported per phase and back end: guest-observed throughput (the guest
# times its own dd with /proc/uptime) and the back end's CPU time
# (utime+stime of the whole process from /proc/PID/stat, sampled while the
# disk is idle just before and after the phase) per GiB moved, with the
# ratio gm/qsd (below 1: gm-vhost-blk spends less CPU).
#
#   bench/vhost-blk.sh [--gm-vhost-blk PATH] [--size MIB] [--backends "gm qsd"]
#
# Under TCG the guest is slow; the back end's CPU per GiB is the figure
# that matters. Run it on a quiet machine, once.
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../scripts/linux-guest.sh"

GM_VHOST_BLK=${GM_VHOST_BLK:-$here/../build-release/tools/gm-vhost-blk/gm-vhost-blk}
size_mib=256
backends="gm qsd"
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
	*) echo "usage: $0 [--gm-vhost-blk PATH] [--size MIB] [--backends 'gm qsd'] [--phases '...']" >&2; exit 2 ;;
	esac
	shift
done

lg_need_tools
lg_find_kernel
lg_pick_accel
hz=$(getconf CLK_TCK)

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
# Fully allocated (not sparse), so both back ends find the same file.
dd if=/dev/zero of="$img" bs=1M count="$size_mib" status=none
# Write it back now, so the first back end's first phase does not share
# the host with the writeback of the image's creation.
sync "$img"
cat >"$WORK/gm.conf" <<EOF
MODE=bench
DISK_SIZE=$disk_size
BENCH_PHASES="$phases"
EOF
lg_build_initramfs "$WORK/initrd.cpio" "$here/../scripts/guest-init.sh" "$WORK/gm.conf"

echo "vhost-blk bench: kernel $KVER, accel $ACCEL ($ACCEL_WHY), image $size_mib MiB, 1 vCPU, 1 queue"
echo "  host: $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"

# Results: R[backend.phase.{mibs,cpu}].
declare -A R
run_backend() { # run_backend KIND
	local kind=$1
	local log=$WORK/console-$kind.log done=0 n line phase t1 bytes secs rc start_ticks pid
	if ! lg_start_backend "$kind" "$WORK/vhost.sock" "$img" "$WORK/backend-$kind.log" 1; then
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
					echo "  $kind $phase: dd failed in the guest (status $rc)"
					R[$kind.$phase.mibs]=fail
					R[$kind.$phase.cpu]=fail
					continue
				fi
				R[$kind.$phase.mibs]=$(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.1f", (s > 0 ? b / 1048576 / s : 0) }')
				R[$kind.$phase.cpu]=$(awk -v t="$((t1 - T0[$phase]))" -v hz="$hz" -v b="$bytes" \
					'BEGIN { printf "%.3f", t / hz / (b / 1073741824) }')
				R[$kind.$phase.ticks]=$((t1 - T0[$phase]))
				;;
			esac
		done
		[ $alive = 1 ] || break
		sleep 0.05
	done
	wait "$QEMU_PID"
	rc=$?
	QEMU_PID=
	R[$kind.total]=$(($(lg_cpu_ticks "$pid") - start_ticks))
	sleep 0.5
	lg_stop "$pid" 5
	[ $rc = 0 ] || echo "  $kind: QEMU exited $rc"
	grep -aq '^GMDEMO guest-done' "$log" || { echo "  $kind: the guest did not finish"; tail -n 20 "$log"; }
	sed "s/^/  $kind back end: /" "$WORK/backend-$kind.log" | tail -n 5
}

for b in $backends; do
	t=$(date +%s)
	run_backend "$b" || echo "  $b: could not start"
	echo "  $b: guest run took $(($(date +%s) - t)) s wall"
done

name() { case "$1" in gm) echo gm-vhost-blk ;; qsd) echo qemu-storage-daemon ;; *) echo "$1" ;; esac; }
echo
printf '%-14s' "phase"
for b in $backends; do printf ' | %-28s' "$(name "$b")"; done
[ "$backends" = "gm qsd" ] && printf ' | %s' "CPU/GiB gm:qsd"
echo
printf '%-14s' ""
for b in $backends; do printf ' | %10s %17s' "MiB/s" "CPU s/GiB"; done
echo
for p in $phases; do
	label=${p%%-*}
	bs=${p#*-}
	case "$bs" in
	*x*) label="$label $((${bs%x*} / 1024))K x${bs#*x}" ;;
	*) label="$label $((bs / 1024))K" ;;
	esac
	printf '%-14s' "$label"
	for b in $backends; do
		printf ' | %10s %17s' "${R[$b.$p.mibs]:-n/a}" "${R[$b.$p.cpu]:-n/a}"
	done
	if [ "$backends" = "gm qsd" ]; then
		printf ' | %s' "$(awk -v g="${R[gm.$p.cpu]:-x}" -v q="${R[qsd.$p.cpu]:-x}" \
			'BEGIN { if (g + 0 == g && q + 0 == q && q > 0) printf "%.2f", g / q; else print "n/a" }')"
	fi
	echo
done
for b in $backends; do
	echo "$(name "$b"): $(awk -v t="${R[$b.total]:-0}" -v hz="$hz" 'BEGIN { printf "%.2f", t / hz }') s CPU over the whole guest run (boot and idle included)"
done
