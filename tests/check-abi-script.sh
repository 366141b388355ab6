#!/bin/sh
# SPDX-License-Identifier: MIT
# scripts/abi.sh on a two-function library built here in eight versions.
# Pass: the same one, one with a function added, one whose private struct
# grew. Fail: one whose public struct grew, one whose public struct that
# only inline code in the header reaches grew (the case of
# static/memory-inline.h), one whose function returns another type, one
# that lost a function and one with another soname. (abidiff's own
# "incompatible" verdict covers only the lost function.)
#   check-abi-script.sh ABI_SH
set -eu
abi_sh=$1
command -v abidiff >/dev/null || { echo "skipped: abidiff not installed (scripts/deps.sh package)"; exit 77; }
command -v cc >/dev/null || { echo "skipped: no cc to build the test libraries"; exit 77; }
[ "$(uname -m)" = x86_64 ] || { echo "skipped: abi.sh checks x86-64 libraries; this host is $(uname -m)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/pub"

# build NAME SONAME [-DGROWN] [-DHOT_GROWN] [-DPRIV_GROWN] [-DADDED] [-DLONG] [-DREMOVED]
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
/* Reached by inline code only, never by an exported function. */
struct hot {
	int a;
#ifdef HOT_GROWN
	int inserted;
#endif
	int b;
};
static inline int hot_b(const struct hot *h) { return h->b; }
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
struct priv {
	int x;
#ifdef PRIV_GROWN
	int inserted;
#endif
};
__attribute__((visibility("hidden"))) int internal(struct hot *h, struct priv *p);
int internal(struct hot *h, struct priv *p) { return hot_b(h) + p->x; }
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
build hot libt.so.1 -DHOT_GROWN
build private libt.so.1 -DPRIV_GROWN
build long libt.so.1 -DLONG
build removed libt.so.1 -DREMOVED
build resonamed libt.so.2

expect 0 base
expect 0 added
expect 0 private
expect 1 grown
expect 1 hot
expect 1 long
expect 1 removed
expect 1 resonamed
echo "$((runs - fails)) passed, $fails failed"
[ "$fails" -eq 0 ]
