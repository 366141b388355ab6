#!/bin/sh
# Fails if the shared library exports any symbol that is not gm_*.
set -eu
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRWV]$/ { print $3 }' | sed 's/@.*//')
[ -n "$syms" ] || { echo "no exported symbols in $lib"; exit 1; }
bad=$(printf '%s\n' "$syms" | grep -v '^gm_' | grep -v '^GUESTMEM_' || true)
if [ -n "$bad" ]; then
	echo "exported symbols outside the gm_ namespace:"
	printf '%s\n' "$bad"
	exit 1
fi
echo "$(printf '%s\n' "$syms" | wc -l) symbols, all gm_*"
