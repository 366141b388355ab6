#!/bin/sh
# scripts/abi.sh on a two-function library built here in five versions:
# the same one and one with a function added pass; one whose public struct
# grew, one whose function returns another type, one that lost a function
# and one with another soname fail. (abidiff alone flags only the lost
# function as incompatible; the others must fail too.)
#   check-abi-script.sh ABI_SH
set -eu
abi_sh=$1
command -v abidiff >/dev/null || { echo "skipped: abidiff not installed (scripts/deps.sh package)"; exit 77; }
command -v cc >/dev/null || { echo "skipped: no cc to build the test libraries"; exit 77; }
[ "$(uname -m)" = x86_64 ] || { echo "skipped: abi.sh checks x86-64 libraries; this host is $(uname -m)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/pub"

# build NAME SONAME [-DGROWN] [-DADDED] [-DLONG] [-DREMOVED]
build() {
	name=$1 soname=$2
	shift 2
	cc -g -O0 -shared -fPIC -fvisibility=hidden "$@" -I"$tmp" -Wl,-soname,"$soname" \
		-o "$tmp/$name.so" "$tmp/lib.c"
}
cat >"$tmp/pub/lib.h" <<'H'
#define API __attribute__((visibility("default")))
struct opts {
	int a;
#ifdef GROWN
	int inserted;
#endif
	int b;
};
#ifdef LONG
API long first(struct opts *o);
#else
API int first(struct opts *o);
#endif
#ifndef REMOVED
API int second(void);
#endif
#ifdef ADDED
API int third(void);
#endif
H
cat >"$tmp/lib.c" <<'C'
#include "pub/lib.h"
#ifdef LONG
long first(struct opts *o) { return o->b; }
#else
int first(struct opts *o) { return o->b; }
#endif
#ifndef REMOVED
int second(void) { return 2; }
#endif
#ifdef ADDED
int third(void) { return 3; }
#endif
C

fails=0 runs=0
expect() {
	want=$1 name=$2
	runs=$((runs + 1))
	rc=0
	"$abi_sh" check "$tmp/$name.so" "$tmp/base.abi" "$tmp/pub" >"$tmp/$name.out" 2>&1 || rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "FAIL: $name: abi.sh check exited $rc, expected $want; it said:"
		sed 's/^/    /' "$tmp/$name.out"
		fails=$((fails + 1))
	else
		echo "ok: $name: exit $rc ($(tail -1 "$tmp/$name.out"))"
	fi
}

build base libt.so.1
"$abi_sh" update "$tmp/base.so" "$tmp/base.abi" "$tmp/pub" >/dev/null
build added libt.so.1 -DADDED
build grown libt.so.1 -DGROWN
build long libt.so.1 -DLONG
build removed libt.so.1 -DREMOVED
build resonamed libt.so.2

expect 0 base
expect 0 added
expect 1 grown
expect 1 long
expect 1 removed
expect 1 resonamed
echo "$((runs - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
