#!/bin/sh
# Install the Debian packages a target needs, or say which are missing.
#   scripts/deps.sh base|i386|demo-linux
# As root, missing packages are installed with apt-get; otherwise the one
# apt-get line needed is printed and the script fails.
set -eu
set_pkgs() {
	case "$1" in
	base) echo "meson ninja-build pkg-config gcc g++ clang libcmocka-dev liburcu-dev valgrind libclang-rt-14-dev libxxhash-dev" ;;
	i386) echo "gcc-multilib g++-multilib libcmocka-dev:i386 liburcu-dev:i386 libxxhash-dev:i386" ;;
	demo-linux) echo "qemu-system-x86 qemu-system-common qemu-utils linux-image-amd64 busybox-static cpio kmod" ;;
	*) echo "deps.sh: unknown set $1" >&2; exit 2 ;;
	esac
}
missing=""
for set in "$@"; do
	for p in $(set_pkgs "$set"); do
		st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
		[ "$st" = "install ok installed" ] || missing="$missing $p"
	done
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "missing Debian packages; install them with:" >&2
	case "$missing" in *:i386*) echo "  dpkg --add-architecture i386 && apt-get update" >&2 ;; esac
	echo "  apt-get install -y$missing" >&2
	exit 1
fi
case "$missing" in
*:i386*) dpkg --add-architecture i386 ;;
esac
# The i386 index of Debian's security suite sometimes fails to download
# (shared/notes/packages-here.md): apt-get update may exit 100 with every
# index we need in place, so judge by whether the install succeeds.
apt-get update -qq || echo "deps.sh: apt-get update reported errors; trying the install anyway" >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
