#!/bin/bash
# SPDX-License-Identifier: MIT
# make demo-linux: Debian's own Linux kernel, run by QEMU, does block I/O on
# a vhost-user-blk disk served by gm-vhost-blk (or, for comparison,
# qemu-storage-daemon). The guest reads the disk and checks its checksum,
# writes a pattern, reads it back and powers off; the host then checks the
# image file. The last line says whether every check passed; so does the
# exit status (0 passed, 1 failed, 77 skipped: the environment cannot run
# the guest).
#
#   scripts/demo-linux.sh [--backend gm|qsd] [--gm-vhost-blk PATH]
#                         [--install] [--size MIB] [--queues N] [--keep]
#
# Environment: BACKEND, GM_VHOST_BLK, ACCEL (tcg|kvm), KERNEL_VERSION,
# DEMO_TIMEOUT (seconds QEMU may run, default 150: a normal run takes 10-30 s).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/linux-guest.sh"

BACKEND=${BACKEND:-gm}
GM_VHOST_BLK=${GM_VHOST_BLK:-}
install=0
size_mib=64
queues=1
keep=0
timeout_s=${DEMO_TIMEOUT:-150}
while [ $# -gt 0 ]; do
	case "$1" in
	--backend) BACKEND=$2; shift ;;
	--gm-vhost-blk) GM_VHOST_BLK=$2; shift ;;
	--install) install=1 ;;
	--size) size_mib=$2; shift ;;
	--queues) queues=$2; shift ;;
	--keep) keep=1 ;;
	*) echo "usage: $0 [--backend gm|qsd] [--gm-vhost-blk PATH] [--install] [--size MIB] [--queues N] [--keep]" >&2; exit 2 ;;
	esac
	shift
done
case "$BACKEND" in
gm) backend_name=gm-vhost-blk ;;
qsd) backend_name=qemu-storage-daemon ;;
*) echo "demo-linux: unknown back end '$BACKEND' (gm or qsd)" >&2; exit 2 ;;
esac

if [ $install = 1 ]; then
	"$here/deps.sh" demo-linux || echo "demo-linux: could not install the demo-linux packages"
fi
lg_need_tools
lg_find_kernel
lg_pick_accel
if [ "$BACKEND" = gm ]; then
	[ -n "$GM_VHOST_BLK" ] || GM_VHOST_BLK=$here/../build/tools/gm-vhost-blk/gm-vhost-blk
	[ -x "$GM_VHOST_BLK" ] || { echo "demo-linux: no gm-vhost-blk at $GM_VHOST_BLK (build it first: ninja -C build)"; echo "demo-linux: FAIL"; exit 1; }
else
	command -v qemu-storage-daemon >/dev/null || lg_skip "qemu-storage-daemon not installed (Debian package qemu-system-common)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gm-demo-linux.XXXXXX")
QEMU_PID=
cleanup() {
	lg_kill_qemu
	lg_stop_all 2
	if [ $keep = 1 ]; then echo "demo-linux: files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
echo "demo-linux: kernel $KVER, accel $ACCEL ($ACCEL_WHY), back end $backend_name${GM_VHOST_BLK:+ ($GM_VHOST_BLK)}"

# The disk: a deterministic pattern of known checksum; the guest writes
# WR_LEN bytes of its own pattern at WR_OFF and discards DISC_LEN bytes at
# DISC_OFF (which then hold either their old contents or zeros).
img=$WORK/disk.img
disk_size=$((size_mib * 1024 * 1024))
wr_off=$((disk_size / 4))
wr_len=$((4 * 1024 * 1024))
disc_off=$((disk_size / 2))
disc_len=$((1024 * 1024))
lg_image_pattern "$disk_size" >"$img"
disk_md5=$(md5sum <"$img" | cut -d' ' -f1)
wr_md5=$(lg_write_pattern "$wr_len" | md5sum | cut -d' ' -f1)
# image_after ZEROED: the image as the guest should leave it.
image_after() {
	head -c "$wr_off" "$img"
	lg_write_pattern "$wr_len"
	if [ "$1" = 1 ]; then
		tail -c +$((wr_off + wr_len + 1)) "$img" | head -c $((disc_off - wr_off - wr_len))
		head -c "$disc_len" /dev/zero
		tail -c +$((disc_off + disc_len + 1)) "$img"
	else
		tail -c +$((wr_off + wr_len + 1)) "$img"
	fi
}
after_md5=$(image_after 0 | md5sum | cut -d' ' -f1)
after_z_md5=$(image_after 1 | md5sum | cut -d' ' -f1)
disc_keep_md5=$(tail -c +$((disc_off + 1)) "$img" | head -c "$disc_len" | md5sum | cut -d' ' -f1)
disc_zero_md5=$(head -c "$disc_len" /dev/zero | md5sum | cut -d' ' -f1)
echo "demo-linux: image $size_mib MiB, md5 $disk_md5; the guest will write $wr_len bytes at $wr_off and discard $disc_len at $disc_off"

# A second, read-only disk: 16 MiB of the same kind of pattern, shifted so
# it differs from the first disk's start.
ro_img=$WORK/ro.img
ro_size=$((16 * 1024 * 1024))
seq -w 50000000 99999999 | head -c "$ro_size" >"$ro_img"
ro_md5=$(md5sum <"$ro_img" | cut -d' ' -f1)
echo "demo-linux: read-only image 16 MiB, md5 $ro_md5"

cat >"$WORK/gm.conf" <<EOF
MODE=demo
DISK_SIZE=$disk_size
DISK_MD5=$disk_md5
WR_OFF=$wr_off
WR_LEN=$wr_len
WR_MD5=$wr_md5
DISK_MD5_AFTER=$after_md5
DISK_MD5_AFTER_Z=$after_z_md5
DISC_OFF=$disc_off
DISC_LEN=$disc_len
DISC_MD5_KEEP=$disc_keep_md5
DISC_MD5_ZERO=$disc_zero_md5
RO_SIZE=$ro_size
RO_MD5=$ro_md5
EOF
lg_build_initramfs "$WORK/initrd.cpio" "$here/guest-init.sh" "$WORK/gm.conf"
echo "demo-linux: initramfs $(($(stat -c %s "$WORK/initrd.cpio") / 1024)) KiB: static busybox, modules $LG_MODULES"

# Results: NAME -> ok|FAIL, in order.
checks=()
failed=0
record() { # record NAME ok|FAIL DETAIL
	checks+=("$1")
	[ "$2" = ok ] || failed=$((failed + 1))
	printf '  %-18s %-4s %s\n' "$1" "$2" "$3"
}

sock=$WORK/vhost.sock
ro_sock=$WORK/vhost-ro.sock
if ! lg_start_backend "$BACKEND" "$sock" "$img" "$WORK/backend.log" "$queues"; then
	echo "demo-linux: FAIL: the back end did not start"
	exit 1
fi
rw_pid=$LG_PID
if ! lg_start_backend "$BACKEND" "$ro_sock" "$ro_img" "$WORK/backend-ro.log" 1 ro; then
	echo "demo-linux: FAIL: the read-only back end did not start"
	exit 1
fi
ro_pid=$LG_PID
echo "demo-linux: $backend_name serving the disk on $sock (pid $rw_pid), the read-only one on $ro_sock (pid $ro_pid); booting the guest"
lg_start_qemu "$WORK/initrd.cpio" "$WORK/console.log" "$timeout_s" 256 "" "$sock" "$ro_sock"
wait "$QEMU_PID"
qemu_rc=$?
QEMU_PID=
# Give the back ends a moment to notice the disconnect, then stop them
# (gm-vhost-blk prints its total stats on SIGTERM).
sleep 0.5
lg_stop "$rw_pid" 5
rw_status=$LG_STATUS
lg_stop "$ro_pid" 5
ro_status=$LG_STATUS

# The serial console ends lines with CR LF.
tr -d '\r' <"$WORK/console.log" >"$WORK/console.txt"
echo "guest:"
grep -a '^GMDEMO check ' "$WORK/console.txt" | while read -r _ _ name st detail; do
	printf '  %-18s %-4s %s\n' "$name" "$st" "$detail"
done
expected="modules disk-present disk-size read-checksum pattern write flush read-back discard read-after-write ro-disk ro-checksum ro-write-refused"
for name in $expected; do
	line=$(grep -a "^GMDEMO check $name " "$WORK/console.txt" | tail -n 1)
	checks+=("$name")
	case "$line" in
	*" $name ok"*) ;;
	"") failed=$((failed + 1)); printf '  %-18s %-4s %s\n' "$name" FAIL "no result from the guest" ;;
	*) failed=$((failed + 1)) ;;
	esac
done

for log in backend backend-ro; do
	case $log in
	backend) echo "back end ($backend_name, the read-write disk):" ;;
	*) echo "back end ($backend_name, the read-only disk):" ;;
	esac
	if [ -s "$WORK/$log.log" ]; then
		sed 's/^/  | /' "$WORK/$log.log"
	else
		# qemu-storage-daemon's vhost-user-blk export keeps no I/O
		# counters (its QMP query-blockstats stays at zero for it).
		echo "  (printed nothing)"
	fi
done

echo "host:"
if [ $qemu_rc = 0 ]; then
	record qemu-exit ok "QEMU exited 0"
elif [ $qemu_rc = 124 ] || [ $qemu_rc = 137 ]; then
	record qemu-exit FAIL "QEMU killed after ${timeout_s} s"
else
	record qemu-exit FAIL "QEMU exited $qemu_rc"
fi
if grep -aq '^GMDEMO guest-done' "$WORK/console.txt"; then
	record guest-done ok "the guest finished and powered off"
else
	record guest-done FAIL "the guest did not finish"
fi
sz=$(stat -c %s "$img")
if [ "$sz" = "$disk_size" ]; then
	record image-size ok "$sz bytes"
else
	record image-size FAIL "$sz bytes, expected $disk_size"
fi
sum=$(md5sum <"$img" | cut -d' ' -f1)
if [ "$sum" = "$after_md5" ]; then
	record image-checksum ok "md5 $sum: the guest's write landed, nothing else changed"
elif [ "$sum" = "$after_z_md5" ]; then
	record image-checksum ok "md5 $sum: the guest's write landed, the discarded range is zeros, nothing else changed"
else
	record image-checksum FAIL "md5 $sum, expected $after_md5 (or $after_z_md5 with the discarded range zeroed)"
fi
sum=$(md5sum <"$ro_img" | cut -d' ' -f1)
if [ "$sum" = "$ro_md5" ]; then
	record ro-image ok "md5 $sum: unchanged"
else
	record ro-image FAIL "md5 $sum, expected $ro_md5 (the read-only image changed)"
fi

# gm-vhost-blk's closing stats line: KEY=N pairs (bstat LOG KEY).
bstat() {
	grep -a 'total stats:' "$1" | tail -n 1 | tr ' ;' '\n\n' | sed -n "s/^$2=\([0-9]*\)$/\1/p" | head -n 1
}
if [ "$BACKEND" = gm ]; then
	# The guest wrote exactly wr_len bytes, read the whole disk twice,
	# flushed and (if offered) discarded once; no request may have failed.
	log=$WORK/backend.log
	if ! grep -aq 'total stats:' "$log"; then
		record backend-stats FAIL "no 'total stats:' line from gm-vhost-blk"
	else
		why=""
		[ "$(bstat "$log" failed)" = 0 ] || why="$why failed=$(bstat "$log" failed)"
		[ "$(bstat "$log" malformed)" = 0 ] || why="$why malformed=$(bstat "$log" malformed)"
		[ "$(bstat "$log" written)" = "$wr_len" ] || why="$why written=$(bstat "$log" written) (expected $wr_len)"
		[ "$(bstat "$log" read)" -ge $((2 * disk_size)) ] 2>/dev/null ||
			why="$why read=$(bstat "$log" read) (expected at least $((2 * disk_size)))"
		[ "$(bstat "$log" flush)" -ge 1 ] 2>/dev/null || why="$why flush=$(bstat "$log" flush)"
		if ! grep -aq '^GMDEMO check discard ok not offered' "$WORK/console.txt"; then
			[ "$(bstat "$log" discard)" -ge 1 ] 2>/dev/null || why="$why discard=$(bstat "$log" discard)"
		fi
		summary="$(bstat "$log" in) reads, $(bstat "$log" out) writes, $(bstat "$log" flush) flushes,"
		summary="$summary $(bstat "$log" discard) discards; $(bstat "$log" read) bytes read,"
		summary="$summary $(bstat "$log" written) written; $(bstat "$log" regions) memory region(s)"
		if [ -z "$why" ]; then
			record backend-stats ok "$summary"
		else
			record backend-stats FAIL "$summary; wrong:$why"
		fi
	fi
	# The read-only disk: read whole at least once, nothing written.
	log=$WORK/backend-ro.log
	if ! grep -aq 'total stats:' "$log"; then
		record ro-stats FAIL "no 'total stats:' line from the read-only gm-vhost-blk"
	else
		why=""
		[ "$(bstat "$log" failed)" = 0 ] || why="$why failed=$(bstat "$log" failed)"
		[ "$(bstat "$log" malformed)" = 0 ] || why="$why malformed=$(bstat "$log" malformed)"
		[ "$(bstat "$log" written)" = 0 ] || why="$why written=$(bstat "$log" written)"
		[ "$(bstat "$log" read)" -ge "$ro_size" ] 2>/dev/null || why="$why read=$(bstat "$log" read)"
		summary="$(bstat "$log" in) reads, $(bstat "$log" out) writes; $(bstat "$log" read) bytes read, $(bstat "$log" written) written"
		if [ -z "$why" ]; then
			record ro-stats ok "$summary"
		else
			record ro-stats FAIL "$summary; wrong:$why"
		fi
	fi
fi
for which in rw ro; do
	if [ $which = rw ]; then st=$rw_status; else st=$ro_status; fi
	if [ "$st" = 0 ]; then
		record backend-exit-$which ok "$backend_name ($which) exited 0 on SIGTERM"
	else
		record backend-exit-$which FAIL "$backend_name ($which) exited with status $st"
	fi
done

if [ $failed != 0 ]; then
	echo "guest console (last 40 lines):"
	tail -n 40 "$WORK/console.txt" | sed 's/^/  | /'
	[ -s "$WORK/console.log.qemu" ] && sed 's/^/  qemu: /' "$WORK/console.log.qemu"
fi
total=${#checks[@]}
secs=$(($(date +%s) - t0))
if [ $failed = 0 ]; then
	echo "demo-linux: PASS: all $total checks passed ($backend_name, $ACCEL, ${secs} s)"
	exit 0
fi
echo "demo-linux: FAIL: $failed of $total checks failed ($backend_name, $ACCEL, ${secs} s)"
exit 1
