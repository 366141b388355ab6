#!/bin/sh
# SPDX-License-Identifier: MIT
# Install the Debian packages a target needs, or say which are missing.
#   scripts/deps.sh base|i386|armhf|demo-linux|coverage|package
# As root, missing packages are installed with apt-get; otherwise the one
# apt-get line needed is printed and the script fails.
set -eu
set_pkgs() {
	case "$1" in
	# groff-base: test 'man' renders every manual page (groff -man -ww).
	# liburing-dev: gm-vhost-blk's --aio=io_uring (optional at build time).
	base) echo "meson ninja-build pkg-config gcc g++ clang libcmocka-dev liburcu-dev valgrind libclang-rt-14-dev libxxhash-dev groff-base liburing-dev" ;;
	# qemu-user-static runs the 32-bit programs where the kernel cannot
	# (scripts/i386-mode.sh).
	i386) echo "gcc-multilib g++-multilib libcmocka-dev:i386 liburcu-dev:i386 libxxhash-dev:i386 liburing-dev:i386 qemu-user-static" ;;
	# 32-bit ARM host (cross/armhf.txt): clang as the cross compiler with
	# the cross binutils, libc and libgcc (gcc-arm-linux-gnueabihf itself
	# conflicts with gcc-multilib, which the i386 set needs), the :armhf
	# libraries to link and run against, and qemu-user to run the tests.
	armhf) echo "clang binutils-arm-linux-gnueabihf libc6-dev-armhf-cross libgcc-12-dev-armhf-cross libstdc++-12-dev-armhf-cross qemu-user-static libc6:armhf libstdc++6:armhf libcmocka-dev:armhf liburcu-dev:armhf libxxhash-dev:armhf liburing-dev:armhf" ;;
	demo-linux) echo "qemu-system-x86 qemu-system-common qemu-utils linux-image-amd64 busybox-static cpio kmod" ;;
	# `make coverage`: gcovr reads the gcov data of the -Db_coverage build.
	coverage) echo "gcovr" ;;
	# The ABI check against abi/libguestmem.abi (abidw, abidiff) and
	# `make deb`: building the Debian packages and linting them.
	package) echo "abigail-tools dpkg-dev debhelper lintian" ;;
	*) echo "deps.sh: unknown set $1" >&2; exit 2 ;;
	esac
}
missing=""
native=$(dpkg --print-architecture)
for set in "$@"; do
	for p in $(set_pkgs "$set"); do
		# A name without :arch means the native (or arch: all) package;
		# dpkg-query lists every installed architecture of it.
		case "$p" in *:*) arch='[^ ]+' ;; *) arch="($native|all)" ;; esac
		dpkg-query -W -f='${Status} ${Architecture}\n' "$p" 2>/dev/null |
			grep -Eq "^install ok installed $arch\$" || missing="$missing $p"
	done
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing Debian packages; install them with:" >&2
	case "$missing" in *:i386*) echo "  dpkg --add-architecture i386 && apt-get update" >&2 ;; esac
	case "$missing" in *:armhf*) echo "  dpkg --add-architecture armhf && apt-get update" >&2 ;; esac
	echo "  apt-get install -y$missing" >&2
	exit 1
fi
case "$missing" in *:i386*) dpkg --add-architecture i386 ;; esac
case "$missing" in *:armhf*) dpkg --add-architecture armhf ;; esac
# The i386 (or armhf) index of Debian's security suite sometimes fails to download
# (shared/notes/packages-here.md): apt-get update may exit 100 with every
# index we need in place, so judge by whether the install succeeds.
apt-get update -qq || echo "deps.sh: apt-get update reported errors; trying the install anyway" >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
