#!/bin/sh
# SPDX-License-Identifier: MIT
# For each GM_API function of the named public headers, how often tests/
# calls it and which negative errnos the tests assert on a call to it.
#   scripts/api-coverage.sh [layer ...]     (default: every header)
# A function with no calls, or a documented errno missing from its list, is
# a gap to fill in tests/test_<layer>.c. A rough guide, not a proof: a call
# whose result is asserted through a variable is counted but its errno is not.
set -eu
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- $(ls include/guestmem/*.h | sed 's|.*/||; s|\.h$||')
tests=$(ls tests/*.c tests/stress/*.c)
flat=$(cat $tests | tr '\n' ' ')
for layer in "$@"; do
	h=include/guestmem/$layer.h
	[ -f "$h" ] || { echo "api-coverage.sh: no $h" >&2; exit 2; }
	for f in $(grep -A3 GM_API "$h" | grep -o 'gm_[a-z0-9_]*(' | tr -d '(' | sort -u); do
		calls=$(cat $tests | grep -ow "$f" | wc -l)
		codes=$(printf '%s' "$flat" | grep -o "$f([^;]*-E[A-Z]*" | grep -o -- '-E[A-Z]*$' |
			sort | uniq -c | awk '{ printf "%s(%s) ", $2, $1 }')
		printf '%-8s %-28s %4d  %s\n' "$layer" "$f" "$calls" "$codes"
	done
done
