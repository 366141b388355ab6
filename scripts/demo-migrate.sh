#!/bin/bash
# SPDX-License-Identifier: MIT
# make demo-migrate: Debian's Linux kernel, run by QEMU on a gm-vhost-blk
# disk, is live-migrated (pre-copy) to a second QEMU process on this
# machine while it does disk I/O. Both QEMUs have their guest RAM in a
# shared memfd and a vhost-user-blk-pci disk on the same gm-vhost-blk
# socket: the back end serves both connections at once, logs the pages it
# writes into the source QEMU's dirty log while the migration runs, and the
# destination's rings start where GET_VRING_BASE stopped the source's. The
# guest writes patterns, reads them back direct and through its page cache
# in every round (scripts/guest-init.sh, MODE=migrate) until the host flags
# the migration done, then checks every slot again on the destination, from
# its page cache and from the disk; the host checks the image. The last line says whether every check passed; so does the exit
# status (0 passed, 1 failed, 77 skipped: QEMU or the kernel is missing).
# Before it, figures (printed only, never checked): migration time and
# downtime, the pages the back end newly set in the dirty log (gm), and the
# guest's disk I/O rate before, during and after the migration, from the
# progress lines of the guest's loop (guest time, bytes so far).
#
#   scripts/demo-migrate.sh [--backend gm|qsd] [--gm-vhost-blk PATH]
#                           [--postcopy] [--break-log] [--keep]
#
# --postcopy turns on postcopy-ram on both QEMUs and switches the migration
# to post-copy (migrate-start-postcopy) after POSTCOPY_AFTER seconds
# (default 2) of pre-copy, while the guest still dirties memory: the
# destination runs before all of its RAM arrived, and the back end's
# accesses to pages not yet there wait for QEMU to place them
# (VHOST_USER_PROTOCOL_F_PAGEFAULT, docs/migration.md). gm back end only.
#
# --backend qsd (for comparison) serves the disk with qemu-storage-daemon
# instead: it serves one front end at a time, so the source and the
# destination QEMU get one daemon each on the same image, with image
# locking turned off (file.locking=off), which gm-vhost-blk does not need.
#
# --break-log runs the back end with its dirty log disabled (it acks
# VHOST_F_LOG_ALL and logs nothing: GM_VHOST_BLK_TEST_BREAK_LOG=1), to show
# the checks catch a migration that loses the back end's writes.
# Environment: GM_VHOST_BLK, ACCEL (tcg|kvm), KERNEL_VERSION, MIG_SECS
# (seconds the guest's workload may run if the host never says the
# migration is over, default 120), DEMO_TIMEOUT (seconds each QEMU may
# run, default 240).
set -u
here=$(cd "$(dirname "$0")" && pwd)
. "$here/linux-guest.sh"

GM_VHOST_BLK=${GM_VHOST_BLK:-}
BACKEND=gm
keep=0
break_log=0
postcopy=0
mig_secs=${MIG_SECS:-120}
timeout_s=${DEMO_TIMEOUT:-240}
while [ $# -gt 0 ]; do
	case "$1" in
	--gm-vhost-blk) GM_VHOST_BLK=$2; shift ;;
	--backend) BACKEND=$2; shift ;;
	--break-log) break_log=1 ;;
	--postcopy) postcopy=1 ;;
	--keep) keep=1 ;;
	*) echo "usage: $0 [--backend gm|qsd] [--gm-vhost-blk PATH] [--postcopy] [--break-log] [--keep]" >&2; exit 2 ;;
	esac
	shift
done
lg_need_tools
lg_find_kernel
lg_pick_accel
command -v python3 >/dev/null || lg_skip "python3 not installed (the QMP client)"
case "$BACKEND" in
gm)
	[ -n "$GM_VHOST_BLK" ] || GM_VHOST_BLK=$here/../build/tools/gm-vhost-blk/gm-vhost-blk
	[ -x "$GM_VHOST_BLK" ] || { echo "demo-migrate: no gm-vhost-blk at $GM_VHOST_BLK (build it first)"; echo "demo-migrate: FAIL"; exit 1; }
	;;
qsd)
	command -v qemu-storage-daemon >/dev/null || lg_skip "qemu-storage-daemon not installed (Debian package qemu-system-common)"
	[ $break_log = 0 ] || { echo "demo-migrate: --break-log needs --backend gm" >&2; exit 2; }
	[ $postcopy = 0 ] || { echo "demo-migrate: --postcopy needs --backend gm (qemu-storage-daemon cannot do post-copy)" >&2; exit 2; }
	;;
*) echo "demo-migrate: unknown back end '$BACKEND' (gm or qsd)" >&2; exit 2 ;;
esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gm-demo-migrate.XXXXXX")
SRC_PID=
DST_PID=
cleanup() {
	local p
	for p in $SRC_PID $DST_PID; do
		kill -TERM "$p" 2>/dev/null || true
	done
	sleep 0.5
	for p in $SRC_PID $DST_PID; do
		pkill -KILL -P "$p" 2>/dev/null || true
		kill -KILL "$p" 2>/dev/null || true
	done
	lg_stop_all 2
	if [ $keep = 1 ]; then echo "demo-migrate: files kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
# Guest RAM: 512 MiB - 8 KiB. QEMU 7.2 under TCG loses guest writes across
# a migration when guest RAM is an exact multiple of 256 KiB (also with its
# own virtio-blk), so not a round size.
MEM=524280K
echo "demo-migrate: kernel $KVER, accel $ACCEL ($ACCEL_WHY), guest RAM $MEM, gm-vhost-blk $GM_VHOST_BLK${break_log:+}"
[ $break_log = 1 ] && echo "demo-migrate: --break-log: the back end acks VHOST_F_LOG_ALL but logs nothing"

img=$WORK/disk.img
disk_size=$((64 * 1024 * 1024))
wr_off=$((16 * 1024 * 1024))
slots=8
flag_off=$((48 * 1024 * 1024))
hold_off=$((40 * 1024 * 1024))
lg_image_pattern "$disk_size" >"$img"
cp "$img" "$WORK/orig.img"
cat >"$WORK/gm.conf" <<EOC
MODE=migrate
DISK_SIZE=$disk_size
MIG_SECS=$mig_secs
SLOTS=$slots
WR_OFF=$wr_off
FLAG_OFF=$flag_off
HOLD_OFF=$hold_off
HOLD_N=8
HOLD_LEN=1048576
HOLD_MS=1000
EOC
lg_build_initramfs "$WORK/initrd.cpio" "$here/guest-init.sh" "$WORK/gm.conf"
# gm-hold (DMA into a long-lived buffer, checked later: catches pages the
# back end wrote that did not reach the destination) needs a static build.
hold=0
if cc -static -O2 -o "$WORK/initramfs/bin/gm-hold" "$here/../tests/linux/gm-hold.c" 2>"$WORK/cc.log"; then
	(cd "$WORK/initramfs" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$WORK/initrd.cpio"
	hold=1
else
	echo "demo-migrate: no static C build here (cc -static): the guest runs without gm-hold"
fi

checks=()
failed=0
record() { # record NAME ok|FAIL DETAIL
	checks+=("$1")
	[ "$2" = ok ] || failed=$((failed + 1))
	printf '  %-18s %-4s %s\n' "$1" "$2" "$3"
}

sock=$WORK/vhost.sock
dst_sock=$sock
if [ "$BACKEND" = gm ]; then
	if [ $break_log = 1 ]; then export GM_VHOST_BLK_TEST_BREAK_LOG=1; fi
	if ! lg_start_backend gm "$sock" "$img" "$WORK/backend.log" 1; then
		echo "demo-migrate: FAIL: the back end did not start"
		exit 1
	fi
	unset GM_VHOST_BLK_TEST_BREAK_LOG
	be_pids=$LG_PID
else
	# One daemon per QEMU (each serves one front end at a time), the image
	# shared with locking off.
	dst_sock=$WORK/vhost-dst.sock
	be_pids=
	for which in src dst; do
		s=$sock
		[ $which = dst ] && s=$dst_sock
		qemu-storage-daemon \
			--blockdev "driver=file,node-name=disk,filename=$img,cache.direct=off,locking=off" \
			--export "type=vhost-user-blk,id=e0,node-name=disk,addr.type=unix,addr.path=$s,writable=on" \
			>"$WORK/backend-$which.log" 2>&1 &
		LG_PIDS="$LG_PIDS $!"
		be_pids="$be_pids $!"
		lg_wait_socket "$s" $! 10 || { echo "demo-migrate: FAIL: qemu-storage-daemon did not start"; exit 1; }
	done
fi

# start_qemu NAME SOCKET EXTRA...: one QEMU of the pair (console NAME.console,
# QMP socket NAME.qmp); sets LAST_PID. The recipe in docs/migration.md.
start_qemu() {
	local name=$1 vsock=$2 cpu=()
	shift 2
	[ "$ACCEL" = kvm ] && cpu=(-cpu host)
	: >"$WORK/$name.console"
	timeout -k 5 "$timeout_s" qemu-system-x86_64 \
		-accel "$ACCEL" -machine pc,memory-backend=mem "${cpu[@]}" -smp 1 -m "$MEM" \
		-object "memory-backend-memfd,id=mem,size=$MEM,share=on" \
		-nodefaults -no-user-config -display none -no-reboot \
		-chardev "file,id=con,path=$WORK/$name.console" -serial chardev:con \
		-chardev "socket,id=vhost0,path=$vsock" \
		-device vhost-user-blk-pci,chardev=vhost0,addr=8 \
		-qmp "unix:$WORK/$name.qmp,server=on,wait=off" \
		-kernel "$KERNEL" -initrd "$WORK/initrd.cpio" \
		-append "console=ttyS0 panic=-1 loglevel=4" \
		"$@" >"$WORK/$name.log" 2>&1 &
	LAST_PID=$!
}

# wait_for FILE PATTERN SECONDS
wait_for() {
	local n=$(($3 * 10))
	while [ $n -gt 0 ]; do
		grep -aq "$2" "$1" 2>/dev/null && return 0
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

start_qemu src "$sock"
SRC_PID=$LAST_PID
start_qemu dst "$dst_sock" -incoming "unix:$WORK/mig.sock"
DST_PID=$LAST_PID
echo "demo-migrate: source QEMU (pid $SRC_PID) and destination QEMU (pid $DST_PID, -incoming) on $sock"
qmp() { python3 "$here/qmp.py" "$@"; }

mig_status=none
mig_total=-1
mig_down=-1
mig_pc=-1
src_off0=
src_off1=
dst_off1=
if ! wait_for "$WORK/src.console" '^GMDEMO migrate-ready' 150; then
	record guest-ready FAIL "the guest's workload did not start within 150 s"
else
	record guest-ready ok "the workload runs on the source"
	sleep 3 # a few rounds on the source first
	# At most MIG_BW bytes/s (default 16 MiB/s): a migration of several
	# seconds, so the back end writes guest RAM after the RAM pass sent it.
	qmp "$WORK/src.qmp" migrate-set-parameters "{\"max-bandwidth\": ${MIG_BW:-16777216}}" >/dev/null
	kind=pre-copy
	if [ $postcopy = 1 ]; then
		kind=post-copy
		caps='{"capabilities": [{"capability": "postcopy-ram", "state": true}]}'
		qmp "$WORK/dst.qmp" migrate-set-capabilities "$caps" >/dev/null &&
			qmp "$WORK/src.qmp" migrate-set-capabilities "$caps" >/dev/null ||
			record postcopy-caps FAIL "postcopy-ram refused (see the QEMU logs)"
	fi
	# Where the source's console stands when the migration starts: the
	# guest's progress lines before it give the rate before the migration.
	src_off0=$(stat -c %s "$WORK/src.console")
	if qmp "$WORK/src.qmp" migrate "{\"uri\": \"unix:$WORK/mig.sock\"}" >/dev/null; then
		if [ $postcopy = 1 ]; then
			sleep "${POSTCOPY_AFTER:-2}"
			qmp "$WORK/src.qmp" migrate-start-postcopy >/dev/null ||
				record postcopy-start FAIL "migrate-start-postcopy refused"
		fi
		read -r mig_status mig_total mig_down mig_pc src_off1 dst_off1 < <(qmp "$WORK/src.qmp" wait-migration 150 "$WORK/src.console" "$WORK/dst.console")
	fi
	if [ "$mig_status" = completed ]; then
		record migration ok "$kind completed: total ${mig_total} ms, downtime ${mig_down} ms"
	else
		record migration FAIL "status ${mig_status:-none}"
	fi
	qmp "$WORK/src.qmp" quit >/dev/null 2>&1
	# A few rounds on the destination, then tell the guest to stop: the
	# slots still hold what was written around the switchover.
	sleep 2
fi
printf MIGRATED | dd of="$img" bs=1 seek="$flag_off" conv=notrunc 2>/dev/null
# The guest goes on on the destination, checks, and powers off.
wait "$DST_PID"
dst_rc=$?
DST_PID=
wait "$SRC_PID" 2>/dev/null
SRC_PID=
sleep 0.5
# The back ends' CPU time (user + system, all threads), then stop them.
be_ticks=0
for p in $be_pids; do
	be_ticks=$((be_ticks + $(lg_cpu_ticks "$p" || echo 0)))
done
be_status=0
for p in $be_pids; do
	lg_stop "$p" 5
	[ "$LG_STATUS" = 0 ] || be_status=$LG_STATUS
done

cat "$WORK/src.console" "$WORK/dst.console" | tr -d '\r' >"$WORK/console.txt"
echo "guest (source, then destination):"
grep -a '^GMDEMO ' "$WORK/console.txt" | grep -av '^GMDEMO progress ' | sed 's/^GMDEMO /  /'
echo "back end:"
cat "$WORK"/backend*.log | sed 's/^/  | /'
echo "host:"
names="rounds cached slots"
[ $hold = 1 ] && names="$names hold"
for name in $names; do
	line=$(grep -a "^GMDEMO check $name " "$WORK/dst.console" | tr -d '\r' | tail -n 1)
	case "$line" in
	*" $name ok"*) record "guest-$name" ok "${line#GMDEMO check $name ok }" ;;
	"") record "guest-$name" FAIL "no result from the guest on the destination" ;;
	*) record "guest-$name" FAIL "${line#GMDEMO check $name FAIL }" ;;
	esac
done
if grep -aq '^GMDEMO guest-done' "$WORK/dst.console"; then
	record guest-done ok "the guest finished on the destination and powered off"
else
	record guest-done FAIL "the guest did not finish on the destination (QEMU status $dst_rc)"
fi
# The image: the original with, in each slot, the last round's pattern.
rounds=$(grep -a '^GMDEMO rounds ' "$WORK/console.txt" | tr -d '\r' | tail -n 1 | cut -d' ' -f3)
if [ -n "$rounds" ]; then
	cp "$WORK/orig.img" "$WORK/expect.img"
	printf MIGRATED | dd of="$WORK/expect.img" bs=1 seek="$flag_off" conv=notrunc 2>/dev/null
	s=0
	while [ $s -lt $slots ] && [ $s -lt "$rounds" ]; do
		last=$(((rounds - 1 - s) / slots * slots + s))
		yes "gm-migrate round $last" | head -c 1048576 |
			dd of="$WORK/expect.img" bs=1048576 seek=$(((wr_off / 1048576) + s)) conv=notrunc 2>/dev/null
		s=$((s + 1))
	done
	want=$(md5sum <"$WORK/expect.img" | cut -d' ' -f1)
	sum=$(md5sum <"$img" | cut -d' ' -f1)
	if [ "$sum" = "$want" ]; then
		record image ok "md5 $sum: every slot holds its last round ($rounds rounds), nothing else changed"
	else
		record image FAIL "md5 $sum, expected $want after $rounds rounds"
	fi
else
	record image FAIL "the guest did not say how many rounds it ran"
fi
regs=
marked=
if [ "$BACKEND" = gm ]; then
# The source's connection is the one that attached a log (the two QEMUs
# connect in either order).
logs=$(sed -n 's/.* \([0-9]*\) dirty logs\{0,1\},.*/\1/p' "$WORK/backend.log" | sort -n | tail -n 1)
pages=$(sed -n 's/.* \([0-9]*\) log pages set at the end.*/\1/p' "$WORK/backend.log" | sort -n | tail -n 1)
# Pages the back end newly set in the logs (0 -> 1), summed over connections
# (only the source's has a log).
marked=$(sed -n 's/.* \([0-9]*\) log pages newly marked.*/\1/p' "$WORK/backend.log" | awk '{ n += $1 } END { print n + 0 }')
if [ "${logs:-0}" -ge 1 ] 2>/dev/null; then
	record dirty-log ok "the source's connection attached $logs dirty log(s), newly set $marked page bit(s) in them; $pages left set at its end"
else
	record dirty-log FAIL "the source's connection attached no dirty log"
fi
if [ $postcopy = 1 ]; then
	# The destination's connection registered its table after POSTCOPY_LISTEN,
	# and QEMU ran the migration's end in post-copy.
	regs=$(sed -n 's/.*post-copy: \([0-9]*\) region registration.*/\1/p' "$WORK/backend.log" | sort -n | tail -n 1)
	if [ "${regs:-0}" -ge 1 ] 2>/dev/null && [ "${mig_pc:--1}" -ge 0 ] 2>/dev/null; then
		record postcopy ok "ran post-copy ($mig_pc pages requested by the destination); the destination's connection registered $regs region(s) with the userfaultfd"
	else
		record postcopy FAIL "post-copy not run (QEMU postcopy requests ${mig_pc:--1}, back-end registrations ${regs:-0})"
	fi
fi
failed_reqs=$(grep -a 'total stats:' "$WORK/backend.log" | tail -n 1 | tr ' ;' '\n\n' | sed -n 's/^failed=\([0-9]*\)$/\1/p')
if [ "$be_status" = 0 ] && [ "${failed_reqs:-x}" = 0 ]; then
	record backend ok "gm-vhost-blk exited 0 on SIGTERM, no request failed"
else
	record backend FAIL "gm-vhost-blk exit status $be_status, failed requests ${failed_reqs:-?}"
fi
else
	if [ "$be_status" = 0 ]; then
		record backend ok "both qemu-storage-daemons exited 0 on SIGTERM"
	else
		record backend FAIL "a qemu-storage-daemon exited with status $be_status"
	fi
fi

if [ $failed != 0 ]; then
	for n in src dst; do
		[ -s "$WORK/$n.log" ] && sed "s/^/  qemu $n: /" "$WORK/$n.log"
	done
	echo "destination console (last 20 lines):"
	tr -d '\r' <"$WORK/dst.console" | tail -n 20 | sed 's/^/  | /'
fi
# The guest's I/O rate (figures only, no check): its progress lines (guest
# time, bytes so far) on the source's console before the migration started,
# on both consoles up to where they stood when the host saw it complete, and
# on the destination's after. Each rate runs from the last line of the
# phase before (the first line, for "before") to the last line of its own.
progress() { # FILE FROM TO TAG: the progress lines in bytes [FROM, TO) of FILE
	[ "$3" -gt "$2" ] 2>/dev/null || return 0
	tail -c +$(($2 + 1)) "$1" | head -c $(($3 - $2)) | tr -d '\r' |
		sed -n "s/^GMDEMO progress \([0-9.]*\) \([0-9]*\) bytes\$/$4 \1 \2/p"
}
io_rates="not measured (the migration did not complete)"
if [ "$mig_status" = completed ] && [ -n "$src_off0" ] && [ "${dst_off1:--1}" -ge 0 ] 2>/dev/null; then
	{
		progress "$WORK/src.console" 0 "$src_off0" B
		progress "$WORK/src.console" "$src_off0" "$src_off1" M
		progress "$WORK/dst.console" 0 "$dst_off1" M
		progress "$WORK/dst.console" "$dst_off1" "$(stat -c %s "$WORK/dst.console")" A
	} >"$WORK/progress.txt"
	io_rates=$(awk '
		function rate(name, t0, b0, t1, b1) {
			if (t1 == "" || t0 == "" || t1 - t0 <= 0)
				return name " n/a"
			return sprintf("%s %.2f MiB/s (%.1f s)", name, (b1 - b0) / 1048576 / (t1 - t0), t1 - t0)
		}
		$1 == "B" && tb0 == "" { tb0 = $2; bb0 = $3 }
		{ t[$1] = $2; b[$1] = $3 }
		END {
			print rate("before", tb0, bb0, t["B"], b["B"]) ", " \
			      rate("during the migration", t["B"], b["B"], t["M"], b["M"]) ", " \
			      rate("after", t["M"], b["M"], t["A"], b["A"])
		}' "$WORK/progress.txt")
fi
total=${#checks[@]}
secs=$(($(date +%s) - t0))
hz=$(getconf CLK_TCK 2>/dev/null || echo 100)
rline=$(grep -a '^GMDEMO check rounds ' "$WORK/console.txt" | tail -n 1)
echo "demo-migrate: $BACKEND: migration time ${mig_total} ms, downtime ${mig_down} ms, guest rounds: $(echo "$rline" | cut -d' ' -f5-8) s, back-end CPU $(awk -v t="$be_ticks" -v h="$hz" 'BEGIN { printf "%.2f", t / h }') s${logs:+, dirty logs $logs}${marked:+, pages newly logged by the back end $marked}${regs:+, post-copy page requests $mig_pc}"
echo "demo-migrate: $BACKEND: guest disk I/O: $io_rates"
if [ $failed = 0 ]; then
	echo "demo-migrate: PASS: all $total checks passed ($BACKEND, $ACCEL, ${secs} s)"
	exit 0
fi
echo "demo-migrate: FAIL: $failed of $total checks failed ($BACKEND, $ACCEL, ${secs} s)"
exit 1
