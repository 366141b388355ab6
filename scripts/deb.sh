#!/bin/sh
# SPDX-License-Identifier: MIT
# The Debian packages of guestmem (debian/), built, installed and used.
#   deb.sh build    SOURCE_ROOT WORK_DIR   dpkg-buildpackage + lintian
#   deb.sh install  SOURCE_ROOT WORK_DIR   install the .debs (root only)
#   deb.sh consumer SOURCE_ROOT WORK_DIR   tests/deb/consumer.c against them
# Meson's suite 'deb' runs the three in this order (make deb; make check
# runs it as its own configuration). The packages are built in a scratch
# copy of the source, WORK_DIR/src (every file git tracks or would track,
# as they are in the work tree), never in the source tree itself; the
# .debs and logs stay in WORK_DIR. A step that cannot run here exits 77
# (meson's skip) after saying why.
set -eu
step=$1 src=$2 work=$3
debs="libguestmem0 libguestmem-dev guestmem-tools"
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
arch=$(dpkg --print-architecture)

skip() {
	echo "skipped: $*"
	exit 77
}

case "$step" in
build)
	for tool in dpkg-buildpackage dh lintian; do
		command -v $tool >/dev/null || skip "$tool is not installed (scripts/deps.sh package)"
	done
	rm -rf "$work"
	mkdir -p "$work/src"
	if git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
		# Untracked files that are not ignored count too: a new file
		# not yet added is still part of the change being checked; a
		# tracked file deleted from the work tree is not.
		# shellcheck disable=SC2016 # the inner sh expands $f
		git -C "$src" ls-files -z --cached --others --exclude-standard |
			(cd "$src" && xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh) |
			tar -C "$src" --null -T - -cf - | tar -C "$work/src" -xf -
	else
		tar -C "$src" --exclude='./build*' -cf - . | tar -C "$work/src" -xf -
	fi
	start=$(date +%s)
	if ! (cd "$work/src" && dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
		tail -40 "$work/build.log"
		echo "deb: dpkg-buildpackage failed; the whole log is $work/build.log"
		exit 1
	fi
	echo "deb: built in $(($(date +%s) - start)) s:"
	(cd "$work" && ls -- *.deb)
	# Warnings are printed, errors fail.
	rc=0
	lintian --fail-on error "$work/guestmem_${version}_$arch.changes" >"$work/lintian.log" 2>&1 || rc=$?
	grep -v '^running with root privileges' "$work/lintian.log" || true
	[ $rc -eq 0 ] || { echo "deb: lintian reports errors (E: lines above)"; exit 1; }
	echo "deb: lintian: no errors"
	;;
install)
	[ "$(id -u)" = 0 ] || skip "installing the packages needs root (dpkg); not root here"
	files=""
	for p in $debs; do
		f="$work/${p}_${version}_$arch.deb"
		[ -f "$f" ] || { echo "deb: $f is missing: did the build step pass?"; exit 1; }
		files="$files $f"
	done
	# apt-get rather than dpkg -i alone: it waits for the dpkg lock that
	# another install on this machine may hold, and then runs dpkg.
	# shellcheck disable=SC2086 # files is a list of paths without spaces
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends --reinstall \
		--allow-downgrades -o DPkg::Lock::Timeout=600 $files
	for p in $debs; do
		got=$(dpkg-query -W -f='${Version}' "$p")
		[ "$got" = "$version" ] || { echo "deb: $p is at $got, not $version"; exit 1; }
	done
	echo "deb: installed $debs $version"
	;;
consumer)
	for p in $debs; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			skip "package $p is not installed (the install step needs root)"
	done
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	# Outside the source tree, and with pkg-config's own search path only:
	# what the packages install is all there is.
	cp "$src/tests/deb/consumer.c" "$tmp/"
	unset PKG_CONFIG_PATH PKG_CONFIG_LIBDIR CPATH C_INCLUDE_PATH LIBRARY_PATH LD_LIBRARY_PATH
	flags=$(pkg-config --cflags --libs guestmem)
	echo "deb: cc consumer.c $flags"
	# shellcheck disable=SC2086 # flags is pkg-config's list of options
	(cd "$tmp" && cc -std=c11 -Wall -Wextra -Werror -o consumer consumer.c $flags)
	lib=$(ldd "$tmp/consumer" | awk '/libguestmem/ { print $3 }')
	case "$lib" in
	/usr/lib/*|/lib/*) ;;
	*) echo "deb: the consumer loads libguestmem from '$lib', not the package's"; exit 1 ;;
	esac
	"$tmp/consumer"
	# The tools: installed, on PATH, and linked to the packaged library.
	for tool in gm-vhost-blk gmsnap; do
		path=$(command -v $tool) || { echo "deb: $tool is not on PATH"; exit 1; }
		ldd "$path" | grep -q "libguestmem.so.0 => $lib" ||
			{ echo "deb: $path does not load $lib"; exit 1; }
	done
	echo "deb: gm-vhost-blk and gmsnap are installed and use $lib"
	;;
*)
	echo "deb.sh: unknown step $step (build, install or consumer)" >&2
	exit 2
	;;
esac
