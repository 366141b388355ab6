#!/bin/busybox sh
# SPDX-License-Identifier: MIT
# shellcheck shell=dash
# /init of the demo-linux guest (busybox sh, PID 1). The host builds the
# initramfs around it (scripts/linux-guest.sh) and reads what it prints on
# the serial console: every line meant for the host starts with "GMDEMO ".
#   GMDEMO check NAME ok|FAIL [detail]   one check of the demo
#   GMDEMO begin PHASE / GMDEMO end PHASE bytes=N secs=S   benchmark phases
#   GMDEMO progress T N bytes            migrate mode: N bytes of disk I/O
#                                         done by guest time T (s, uptime)
#   GMDEMO guest-done                     last line before power-off
# Parameters come from /gm.conf (shell assignments written by the host).

/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev

say() { echo "GMDEMO $*"; }
check() { # check NAME STATUS DETAIL
	if [ "$2" = 0 ]; then say "check $1 ok $3"; else say "check $1 FAIL $3"; fi
}
finish() {
	say guest-done
	sync
	poweroff -f
	sleep 5
	echo o >/proc/sysrq-trigger
}

MODE=demo
. /gm.conf

st=0
for m in $(cat /modules.order); do
	insmod "/lib/modules/$m.ko" || { st=1; bad="$bad $m"; }
done
check modules $st "$(cat /modules.order | tr '\n' ' ')${bad:+failed:$bad}"

n=0
while [ ! -b /dev/vda ] && [ $n -lt 200 ]; do
	sleep 0.1
	n=$((n + 1))
done
if [ ! -b /dev/vda ]; then
	check disk-present 1 "no /dev/vda after 20 s"
	finish
fi
check disk-present 0 "/dev/vda"

size=$(blockdev --getsize64 /dev/vda)
[ "$size" = "$DISK_SIZE" ]; rc=$?
check disk-size $rc "$size bytes (expected $DISK_SIZE)"

# Guest time in 10 ms steps (Debian's busybox dd prints no rate line).
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

if [ "$MODE" = bench ]; then
	# Sequential direct I/O over the whole disk, one phase per block size
	# and direction; the host samples the back end's CPU time between the
	# begin and end lines, so pause around them while the disk is idle.
	# A phase is OP-BS[xPASSES][qDEPTH], e.g. read-131072x4: PASSES times
	# over the disk; read-4096q16: 16 dd processes at once, each over its
	# own sixteenth of the disk, so up to 16 requests are outstanding.
	for phase in $BENCH_PHASES; do
		op=${phase%%-*}
		bs=${phase#*-}
		passes=1
		depth=1
		case "$bs" in *q*) depth=${bs#*q}; bs=${bs%q*} ;; esac
		case "$bs" in *x*) passes=${bs#*x}; bs=${bs%x*} ;; esac
		count=$((DISK_SIZE / bs / depth))
		say "begin $phase"
		sleep 2
		t=$(now)
		rc=0
		i=0
		while [ $i -lt "$passes" ] && [ $rc = 0 ]; do
			pids=""
			j=0
			while [ $j -lt "$depth" ]; do
				if [ "$op" = write ]; then
					dd if=/dev/zero of=/dev/vda bs="$bs" count="$count" seek=$((j * count)) oflag=direct 2>/tmp/dd.err &
				else
					dd if=/dev/vda of=/dev/null bs="$bs" count="$count" skip=$((j * count)) iflag=direct 2>/tmp/dd.err &
				fi
				pids="$pids $!"
				j=$((j + 1))
			done
			for pid in $pids; do
				wait "$pid" || rc=$?
			done
			i=$((i + 1))
		done
		secs=$(since "$t")
		say "end $phase rc=$rc bytes=$((count * depth * bs * passes)) secs=$secs"
		sleep 2
	done
	finish
fi

if [ "$MODE" = migrate ]; then
	# scripts/demo-migrate.sh moves this guest to another QEMU while this
	# loop runs. Each round writes a pattern of its own to one of SLOTS
	# 1 MiB slots (direct, then fsync: a FLUSH), reads it back direct, and
	# reads it once more through the page cache: that read has the back end
	# write guest RAM (page cache pages), which then stay there. The loop
	# ends when the host has written MIGRATED at FLAG_OFF on the disk
	# (after the migration) or after MIG_SECS seconds. Then every slot is
	# read again from the page cache, then past it: a page the back end
	# wrote during the migration that did not reach the destination (a
	# dirty log that lost it) shows as a wrong checksum.
	# After each round a progress line gives the guest's time and the bytes
	# the loop has read and written so far (3 MiB and the flag's 4 KiB per
	# round), from which the host computes the I/O rate before, during and
	# after the migration.
	# gm-hold (tests/linux/gm-hold.c), if the host built it: DMA into one
	# long-lived buffer, checked HOLD_MS later, cycling HOLD_N regions.
	hold_pid=
	if [ -x /bin/gm-hold ]; then
		/bin/gm-hold /dev/vda "$HOLD_OFF" "$HOLD_N" "$HOLD_LEN" "$HOLD_MS" /tmp/hold-stop &
		hold_pid=$!
	fi
	say "migrate-ready"
	ended=
	t0=$(now)
	i=0
	bad=0
	bytes=0
	say "progress $t0 0 bytes"
	while awk -v a="$t0" -v b="$(now)" -v d="$MIG_SECS" 'BEGIN { exit !(b - a < d) }'; do
		flag=$(dd if=/dev/vda bs=4096 skip=$((FLAG_OFF / 4096)) count=1 iflag=direct 2>/dev/null | head -c 8)
		[ "$flag" = MIGRATED ] && { ended=", ended by the host's flag"; break; }
		slot=$((i % SLOTS))
		off=$((WR_OFF + slot * 1048576))
		yes "gm-migrate round $i" | head -c 1048576 >/tmp/p
		want=$(md5sum /tmp/p | cut -d' ' -f1)
		dd if=/tmp/p of=/dev/vda bs=65536 seek=$((off / 65536)) oflag=direct conv=notrunc,fsync 2>/dev/null || bad=$((bad + 1))
		sum=$(dd if=/dev/vda bs=4096 skip=$((off / 4096)) count=256 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
		[ "$sum" = "$want" ] || { bad=$((bad + 1)); say "round $i: slot $slot read back md5 $sum, wrote $want"; }
		sum=$(dd if=/dev/vda bs=65536 skip=$((off / 65536)) count=16 2>/dev/null | md5sum | cut -d' ' -f1)
		[ "$sum" = "$want" ] || { bad=$((bad + 1)); say "round $i: slot $slot through the page cache md5 $sum, wrote $want"; }
		i=$((i + 1))
		bytes=$((bytes + 3 * 1048576 + 4096))
		say "progress $(now) $bytes bytes"
	done
	check rounds $bad "$i rounds in $(since "$t0") s, $bad failed${ended:-}"
	if [ -n "$hold_pid" ]; then
		: >/tmp/hold-stop
		wait "$hold_pid"
	fi
	say "rounds $i"
	# Every slot again: from the page cache (what the back end wrote into
	# guest RAM, possibly on the source), then from the disk.
	for how in cached slots; do
		bad=0
		slot=0
		while [ $slot -lt $SLOTS ] && [ $slot -lt $i ]; do
			last=$(((i - 1 - slot) / SLOTS * SLOTS + slot))
			want=$(yes "gm-migrate round $last" | head -c 1048576 | md5sum | cut -d' ' -f1)
			off=$((WR_OFF + slot * 1048576))
			if [ $how = cached ]; then
				sum=$(dd if=/dev/vda bs=65536 skip=$((off / 65536)) count=16 2>/dev/null | md5sum | cut -d' ' -f1)
			else
				sum=$(dd if=/dev/vda bs=65536 skip=$((off / 65536)) count=16 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
			fi
			[ "$sum" = "$want" ] || { bad=$((bad + 1)); say "slot $slot ($how): md5 $sum, expected round $last's $want"; }
			slot=$((slot + 1))
		done
		check $how $bad "$slot slots hold their last round's pattern ($how)"
	done
	finish
fi

# 1. Read the whole disk (direct, 1 MiB requests) and check its checksum.
t=$(now)
sum=$(dd if=/dev/vda bs=1M iflag=direct 2>/tmp/dd.err | md5sum | cut -d' ' -f1)
[ "$sum" = "$DISK_MD5" ]; rc=$?
check read-checksum $rc "md5 $sum of $size bytes in $(since "$t") s"

# 2. Write a pattern to a region (direct, 64 KiB requests), flush it.
yes 'guestmem demo-linux: written by the guest through virtio-blk' | head -c "$WR_LEN" >/tmp/pattern
sum=$(md5sum /tmp/pattern | cut -d' ' -f1)
[ "$sum" = "$WR_MD5" ]; rc=$?
check pattern $rc "guest-made pattern md5 $sum"
dd if=/tmp/pattern of=/dev/vda bs=65536 seek=$((WR_OFF / 65536)) oflag=direct conv=notrunc 2>/tmp/dd.err; rc=$?
check write $rc "$WR_LEN bytes at offset $WR_OFF"
# fsync on the block device sends a FLUSH when the device offers one.
dd if=/dev/null of=/dev/vda conv=notrunc,fsync 2>/tmp/dd.err && blockdev --flushbufs /dev/vda; rc=$?
check flush $rc "fsync (FLUSH request: $(cat /sys/block/vda/queue/write_cache 2>/dev/null))"

# 3. Read the region back past the page cache, then the whole disk again.
echo 3 >/proc/sys/vm/drop_caches
sum=$(dd if=/dev/vda bs=4096 skip=$((WR_OFF / 4096)) count=$((WR_LEN / 4096)) iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
[ "$sum" = "$WR_MD5" ]; rc=$?
check read-back $rc "md5 $sum of the region, 4 KiB requests"

# 4. Discard a region. Its contents afterwards may stay or read as zeros
# (both are allowed); anything else, or a failure, is an error.
dmax=$(cat /sys/block/vda/queue/discard_max_bytes 2>/dev/null || echo 0)
if [ "$dmax" = 0 ]; then
	check discard 0 "not offered by the device (discard_max_bytes 0)"
	DISK_MD5_AFTER_Z=$DISK_MD5_AFTER
else
	blkdiscard -o "$DISC_OFF" -l "$DISC_LEN" /dev/vda; rc=$?
	sum=$(dd if=/dev/vda bs=65536 skip=$((DISC_OFF / 65536)) count=$((DISC_LEN / 65536)) iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
	if [ $rc != 0 ]; then
		check discard 1 "blkdiscard of $DISC_LEN bytes at $DISC_OFF failed"
	elif [ "$sum" = "$DISC_MD5_KEEP" ]; then
		check discard 0 "$DISC_LEN bytes at $DISC_OFF: contents kept"
	elif [ "$sum" = "$DISC_MD5_ZERO" ]; then
		check discard 0 "$DISC_LEN bytes at $DISC_OFF: now reads as zeros"
	else
		check discard 1 "$DISC_LEN bytes at $DISC_OFF: md5 $sum is neither the old contents nor zeros"
	fi
fi

sum=$(dd if=/dev/vda bs=1M iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
[ "$sum" = "$DISK_MD5_AFTER" ] || [ "$sum" = "$DISK_MD5_AFTER_Z" ]; rc=$?
check read-after-write $rc "md5 $sum of the whole disk"

# 5. The second disk, exported read-only: the driver must see the flag,
# reads must match, a write must be refused.
if [ -n "${RO_SIZE:-}" ]; then
	n=0
	while [ ! -b /dev/vdb ] && [ $n -lt 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	if [ ! -b /dev/vdb ]; then
		check ro-disk 1 "no /dev/vdb after 10 s"
	else
		ro=$(cat /sys/block/vdb/ro)
		size=$(blockdev --getsize64 /dev/vdb)
		[ "$ro" = 1 ] && [ "$size" = "$RO_SIZE" ]; rc=$?
		check ro-disk $rc "/dev/vdb: $size bytes (expected $RO_SIZE), read-only flag $ro"
		sum=$(dd if=/dev/vdb bs=1M iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1)
		[ "$sum" = "$RO_MD5" ]; rc=$?
		check ro-checksum $rc "md5 $sum"
		if dd if=/dev/zero of=/dev/vdb bs=4096 count=1 oflag=direct conv=notrunc 2>/tmp/dd.err; then
			check ro-write-refused 1 "a write to the read-only disk succeeded"
		else
			check ro-write-refused 0 "$(head -n 1 /tmp/dd.err)"
		fi
	fi
fi

finish
