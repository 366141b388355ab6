# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# shellcheck disable=SC2034 # variables set here are read by the callers
# Shared by scripts/demo-linux.sh and bench/vhost-blk.sh (sourced, not run):
# finding Debian's kernel and QEMU, building a busybox initramfs with the
# virtio modules, starting a vhost-user-blk back end (gm-vhost-blk or
# qemu-storage-daemon) and a QEMU guest that uses it.
#
# Every wait here is bounded; nothing can hang a CI run.
#
# modinfo lives in /sbin, not always on a user's PATH.
PATH=$PATH:/usr/sbin:/sbin

# Callers set: WORK (a private scratch directory). They read: KVER, KERNEL,
# ACCEL, LG_PID, LG_STATUS, QEMU_PID.

# lg_skip REASON: the environment cannot run a Linux guest. Exit 77 is
# meson's "skipped"; never report such a run as passed.
lg_skip() {
	echo "skipped: $*"
	exit 77
}

lg_log() { printf '%s\n' "$*"; }

# Pick the kernel: $KERNEL_VERSION if set, else the newest version with
# both /boot/vmlinuz-V and /lib/modules/V.
lg_find_kernel() {
	local v best=""
	if [ -n "${KERNEL_VERSION:-}" ]; then
		best=$KERNEL_VERSION
	else
		for v in $(ls /lib/modules 2>/dev/null | sort -V); do
			[ -r "/boot/vmlinuz-$v" ] && [ -d "/lib/modules/$v/kernel" ] && best=$v
		done
	fi
	[ -n "$best" ] || lg_skip "no Linux kernel with modules (/boot/vmlinuz-*, /lib/modules/*) to boot; install linux-image-amd64"
	[ -r "/boot/vmlinuz-$best" ] || lg_skip "cannot read /boot/vmlinuz-$best"
	KVER=$best
	KERNEL=/boot/vmlinuz-$best
}

lg_need_tools() {
	local t
	command -v qemu-system-x86_64 >/dev/null || lg_skip "qemu-system-x86_64 not installed (Debian package qemu-system-x86)"
	for t in cpio modinfo md5sum timeout seq; do
		command -v "$t" >/dev/null || lg_skip "$t not installed"
	done
	BUSYBOX=$(command -v busybox || true)
	# The guest needs a statically linked busybox (busybox-static).
	if [ -z "$BUSYBOX" ] || ! file_is_static "$BUSYBOX"; then
		lg_skip "no statically linked busybox (Debian package busybox-static)"
	fi
}

# True if ELF file $1 has no program interpreter (statically linked).
file_is_static() {
	# Look for a PT_INTERP path; a static binary has none.
	! LC_ALL=C grep -aq '/lib64/ld-linux-x86-64.so' "$1" 2>/dev/null &&
		! LC_ALL=C grep -aq '/lib/ld-linux.so' "$1" 2>/dev/null
}

# Choose the accelerator: KVM only where it can run a stock kernel. KVM's
# PVM flavour (module kvm_pvm, no vmx/svm in /proc/cpuinfo) cannot: CPL-0
# code is emulated and Debian's kernel stops with an internal error
# (shared/notes/kvm-here.md). $ACCEL overrides.
lg_pick_accel() {
	if [ -n "${ACCEL:-}" ]; then
		ACCEL_WHY="set by ACCEL"
		return
	fi
	ACCEL=tcg
	if [ ! -w /dev/kvm ]; then
		ACCEL_WHY="no usable /dev/kvm"
	elif grep -qw kvm_pvm /proc/modules 2>/dev/null; then
		ACCEL_WHY="/dev/kvm is KVM's PVM flavour, which cannot run a stock kernel"
	elif ! grep -Eqw 'vmx|svm' /proc/cpuinfo; then
		ACCEL_WHY="no vmx/svm in /proc/cpuinfo"
	else
		ACCEL=kvm
		ACCEL_WHY="hardware virtualization available"
	fi
}

# Print the modules to load for $@ (module names), dependencies first, one
# path per line, each once.
lg_module_order() {
	local seen=" " out=""
	_lg_visit() {
		local m=$1 d deps
		m=${m//-/_}
		case "$seen" in *" $m "*) return 0 ;; esac
		seen="$seen$m "
		deps=$(modinfo -k "$KVER" -F depends "$m" 2>/dev/null) || return 1
		for d in ${deps//,/ }; do
			_lg_visit "$d" || return 1
		done
		out="$out$(modinfo -k "$KVER" -n "$m")"$'\n'
	}
	for m in "$@"; do
		# Built into the kernel: nothing to load.
		if grep -qE "/${m//_/[-_]}\.ko" "/lib/modules/$KVER/modules.builtin" 2>/dev/null; then
			continue
		fi
		_lg_visit "$m" || return 1
	done
	printf '%s' "$out"
}

# lg_build_initramfs OUT INIT_SCRIPT [CONF_FILE]: a newc cpio with static
# busybox, the virtio-blk modules in load order (/modules.order), /init and
# /gm.conf.
lg_build_initramfs() {
	local out=$1 init=$2 conf=${3:-} root="$WORK/initramfs" mods p base
	rm -rf "$root"
	mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/lib/modules"
	cp "$BUSYBOX" "$root/bin/busybox"
	mods=$(lg_module_order virtio_pci virtio_blk) || lg_skip "cannot resolve the virtio modules of kernel $KVER (modinfo)"
	[ -n "$mods" ] || lg_skip "no virtio modules found for kernel $KVER"
	: >"$root/modules.order"
	while IFS= read -r p; do
		[ -n "$p" ] || continue
		base=$(basename "$p")
		case "$p" in
		*.ko) cp "$p" "$root/lib/modules/$base" ;;
		*.ko.xz) xz -dc "$p" >"$root/lib/modules/${base%.xz}"; base=${base%.xz} ;;
		*.ko.zst) zstd -qdc "$p" >"$root/lib/modules/${base%.zst}"; base=${base%.zst} ;;
		*.ko.gz) gzip -dc "$p" >"$root/lib/modules/${base%.gz}"; base=${base%.gz} ;;
		*) lg_skip "unknown module format: $p" ;;
		esac
		echo "${base%.ko}" >>"$root/modules.order"
	done <<<"$mods"
	cp "$init" "$root/init"
	chmod 755 "$root/init"
	[ -z "$conf" ] || cp "$conf" "$root/gm.conf"
	(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >"$out"
	LG_MODULES=$(tr '\n' ' ' <"$root/modules.order")
}

# The deterministic disk contents: lines "00000000\n", "00000001\n", ...
# cut to $1 bytes. Every 9-byte line differs, so a block read from or
# written to the wrong place changes the checksum.
lg_image_pattern() {
	seq -w 0 99999999 | head -c "$1"
}

# The guest's write pattern, $1 bytes; the init script generates the same.
lg_write_pattern() {
	yes 'guestmem demo-linux: written by the guest through virtio-blk' | head -c "$1"
}

# lg_wait_socket PATH PID SECONDS: wait until the back end listens.
lg_wait_socket() {
	local sock=$1 pid=$2 n=$(($3 * 10))
	while [ $n -gt 0 ]; do
		[ -S "$sock" ] && return 0
		kill -0 "$pid" 2>/dev/null || return 1
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# lg_start_backend KIND SOCK IMAGE LOG [QUEUES [ro]]: KIND gm
# (gm-vhost-blk at $GM_VHOST_BLK) or qsd (qemu-storage-daemon); "ro"
# exports the image read-only. LG_GM_ARGS (e.g. --aio=sync) is added to
# gm-vhost-blk's options, LG_QSD_FILE_OPTS (e.g. ,aio=io_uring) to qsd's
# file node. Sets LG_PID and adds it to LG_PIDS (what lg_stop_all stops).
LG_PIDS=""
lg_start_backend() {
	local kind=$1 sock=$2 img=$3 log=$4 queues=${5:-1} ro=${6:-}
	local gm_ro=() qsd_ro=",discard=unmap" qsd_wr=on
	[ "$ro" = ro ] && { gm_ro=(--readonly); qsd_ro=",read-only=on"; qsd_wr=off; }
	rm -f "$sock"
	case "$kind" in
	gm)
		[ -x "${GM_VHOST_BLK:-}" ] || { echo "gm-vhost-blk not found at '${GM_VHOST_BLK:-}'"; return 1; }
		# shellcheck disable=SC2086 # LG_GM_ARGS: words on purpose
		"$GM_VHOST_BLK" --socket "$sock" --image "$img" --queues "$queues" "${gm_ro[@]}" \
			${LG_GM_ARGS:-} >"$log" 2>&1 &
		;;
	qsd)
		command -v qemu-storage-daemon >/dev/null || { echo "qemu-storage-daemon not installed"; return 1; }
		qemu-storage-daemon \
			--blockdev "driver=file,node-name=disk,filename=$img,cache.direct=off${LG_QSD_FILE_OPTS:-}$qsd_ro" \
			--export "type=vhost-user-blk,id=e0,node-name=disk,addr.type=unix,addr.path=$sock,writable=$qsd_wr,num-queues=$queues" \
			>"$log" 2>&1 &
		;;
	*)
		echo "unknown back end '$kind' (gm or qsd)"
		return 1
		;;
	esac
	LG_PID=$!
	LG_PIDS="$LG_PIDS $LG_PID"
	if ! lg_wait_socket "$sock" "$LG_PID" 10; then
		echo "back end $kind did not listen on $sock within 10 s:"
		sed 's/^/  | /' "$log"
		return 1
	fi
}

# lg_stop PID SECONDS: SIGTERM, then SIGKILL after SECONDS. Sets LG_STATUS
# (the exit status; 128+N for a signal).
lg_stop() {
	local pid=$1 n=$((${2:-5} * 10)) p rest=""
	LG_STATUS=0
	kill -TERM "$pid" 2>/dev/null || true
	while [ $n -gt 0 ] && kill -0 "$pid" 2>/dev/null; do
		sleep 0.1
		n=$((n - 1))
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || LG_STATUS=$?
	for p in $LG_PIDS; do [ "$p" = "$pid" ] || rest="$rest $p"; done
	LG_PIDS=$rest
}

# lg_stop_all SECONDS: stop every back end still running (for traps).
lg_stop_all() {
	local p
	for p in $LG_PIDS; do lg_stop "$p" "$1"; done
}

# lg_start_qemu INITRD CONSOLE_LOG TIMEOUT MEM_MIB APPEND SOCK...: boot the
# kernel with guest RAM in a shared memfd (the back ends map it) and one
# vhost-user-blk disk per socket (/dev/vda, /dev/vdb, ... in that order).
# Runs in the background; sets QEMU_PID. LG_SMP: vCPUs (default 1).
lg_start_qemu() {
	local initrd=$1 log=$2 tmo=$3 mem=$4 append=$5 i=0 sock
	shift 5
	local cpu=() disks=()
	[ "$ACCEL" = kvm ] && cpu=(-cpu host)
	for sock in "$@"; do
		disks+=(-chardev "socket,id=vhost$i,path=$sock"
			-device "vhost-user-blk-pci,chardev=vhost$i,addr=$((8 + i))")
		i=$((i + 1))
	done
	: >"$log"
	timeout -k 5 "$tmo" qemu-system-x86_64 \
		-accel "$ACCEL" -machine pc,memory-backend=mem "${cpu[@]}" -smp "${LG_SMP:-1}" -m "${mem}M" \
		-object "memory-backend-memfd,id=mem,size=${mem}M,share=on" \
		-nodefaults -no-user-config -display none -no-reboot \
		-chardev "file,id=con,path=$log" -serial chardev:con \
		"${disks[@]}" \
		-kernel "$KERNEL" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 loglevel=4 $append" \
		>"$log.qemu" 2>&1 &
	QEMU_PID=$!
}

# lg_kill_qemu: stop a QEMU started by lg_start_qemu (for traps). SIGTERM
# first: QEMU_PID is timeout(1), which passes it on to QEMU; a SIGKILL
# to timeout alone would leave QEMU running.
lg_kill_qemu() {
	local n=20
	[ -n "${QEMU_PID:-}" ] || return 0
	kill -TERM "$QEMU_PID" 2>/dev/null || true
	while [ $n -gt 0 ] && kill -0 "$QEMU_PID" 2>/dev/null; do
		sleep 0.1
		n=$((n - 1))
	done
	pkill -KILL -P "$QEMU_PID" 2>/dev/null || true
	kill -KILL "$QEMU_PID" 2>/dev/null || true
	QEMU_PID=
}

# lg_cpu_ticks PID: utime+stime of the whole process (all its threads,
# also those that exited), in clock ticks.
lg_cpu_ticks() {
	# Field 2 (comm) may contain spaces; cut after the last ')'.
	local s
	s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	s=${s##*) }
	# Now field 3 is the first; utime and stime are fields 14 and 15.
	set -- $s
	echo $((${12} + ${13}))
}
