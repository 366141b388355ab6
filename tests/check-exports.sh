#!/bin/sh
# SPDX-License-Identifier: MIT
# The shared library's exports, its version script and its headers agree.
#   check-exports.sh LIB MAP HEADER_DIR...
# Three lists of names must be the same: the symbols LIB exports (nm -D),
# those the global: sections of MAP (src/libguestmem.map) name, and the
# functions the headers in HEADER_DIRs declare with GM_API. Every export
# must also start with gm_ and carry a version node of MAP. Prints each
# name that is missing from a list, and fails, on any difference.
set -eu
lib=$1 map=$2
shift 2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Defined dynamic symbols, less the version nodes themselves (type A).
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRWViu]$/ { print $3 }' >"$tmp/raw"
[ -s "$tmp/raw" ] || { echo "no exported symbols in $lib"; exit 1; }
sed 's/@.*//' "$tmp/raw" | sort -u >"$tmp/exported"

# Names between "global:" and the next "local:" or "}", comments dropped.
sed 's,/\*.*\*/,,; /^[[:space:]]*\/\*/d; /^[[:space:]]*\*/d' "$map" | awk '
	/global:/ { on = 1; next }
	/local:/ || /}/ { on = 0 }
	on { for (i = 1; i <= NF; i++) { s = $i; sub(/;.*/, "", s); if (s != "") print s } }
' | sort -u >"$tmp/mapped"

# The identifier before the first "(" on each line that starts with GM_API
# (every public prototype names its function on the GM_API line).
for dir in "$@"; do
	cat "$dir"/*.h
done | sed -n 's/^GM_API[^(]*[^A-Za-z0-9_(]\([A-Za-z_][A-Za-z0-9_]*\)[[:space:]]*(.*/\1/p' |
	sort -u >"$tmp/declared"

st=0
differ() {
	# differ A-file B-file what: names in A but not in B
	missing=$(comm -23 "$tmp/$1" "$tmp/$2")
	if [ -n "$missing" ]; then
		echo "$3:"
		printf '  %s\n' $missing
		st=1
	fi
}
differ exported mapped "exported, but not listed in $map"
differ mapped exported "listed in $map, but not exported (a typo, or no GM_API)"
differ declared exported "declared GM_API in a header, but not exported (missing from $map?)"
differ exported declared "exported, but no GM_API prototype in a header"

bad=$(grep -v '^gm_' "$tmp/exported" || true)
if [ -n "$bad" ]; then
	echo "exported symbols outside the gm_ namespace:"
	printf '  %s\n' $bad
	st=1
fi
unversioned=$(grep -v '@' "$tmp/raw" || true)
if [ -n "$unversioned" ]; then
	echo "exported without a version node (is the version script linked?):"
	printf '  %s\n' $unversioned
	st=1
fi
[ $st -eq 0 ] || exit 1
echo "$(wc -l <"$tmp/exported") symbols: exported, listed in $(basename "$map") and declared GM_API alike, all gm_*"
