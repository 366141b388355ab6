#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fail when a layer of guestmem reaches up, or names liburcu outside rcu.c.

The layer table is the one in docs/design-notes.md ("The layers, checked"):
each row gives a layer and its rank. A file belongs to the layer its name
says: include/guestmem/<layer>.h, include/guestmem/static/<layer>-inline.h,
include/guestmem/<layer>.h.in (a generated header's template),
src/<layer>.c, src/<layer>-<anything>.{c,h} and everything under
src/<layer>/. A file may include headers of its own layer and of layers of
a lower rank; two layers of the same rank are siblings and may not include
each other. guestmem.h (the umbrella) and files outside src/ and
include/guestmem/ are clients of every layer and are not checked.

Second rule: no file under src/, include/, tools/, examples/, tests/,
fuzz/ or bench/ other than src/rcu.c names a liburcu symbol or header.

Usage: check-layers.py [SOURCE_ROOT]. Prints what it checked; exits 1 with
one line per violation.
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
TABLE_DOC = "docs/design-notes.md"
TABLE_HEADING = "## The layers, checked"

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')
URCU = re.compile(r'\b(urcu_\w+|rcu_(read_lock|read_unlock|read_ongoing|register_thread|'
                  r'unregister_thread|dereference|assign_pointer|xchg_pointer|cmpxchg_pointer)|'
                  r'synchronize_rcu|call_rcu|defer_rcu)\b|#\s*include\s*<urcu')


def read_table():
    """Returns {layer: rank} from the table under TABLE_HEADING."""
    path = os.path.join(ROOT, TABLE_DOC)
    ranks = {}
    in_section = False
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("## "):
                in_section = line.strip() == TABLE_HEADING
                continue
            if not in_section or not line.startswith("|"):
                continue
            cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
            if len(cells) < 2 or not cells[1].isdigit():
                continue  # the heading row and the rule under it
            ranks[cells[0]] = int(cells[1])
    if not ranks:
        sys.exit(f"check-layers: no layer table under '{TABLE_HEADING}' in {path}")
    return ranks


def layer_of(rel, ranks):
    """The layer a path (relative to ROOT) belongs to, or None for a client."""
    parts = rel.split("/")
    if parts[0] == "src" and len(parts) > 2:
        return parts[1] if parts[1] in ranks else None
    if parts[0] == "src" or rel.startswith("include/guestmem/"):
        stem = parts[-1].split(".")[0]
        layer = stem.split("-")[0]
        return layer if layer in ranks else None
    return None


def header_path(name, including):
    """Where an included name lives, relative to ROOT, or None if not ours."""
    if name.startswith("guestmem/"):
        return "include/" + name
    local = os.path.normpath(os.path.join(os.path.dirname(including), name))
    if os.path.exists(os.path.join(ROOT, local)):
        return local
    # A private header found through the include path (src/, src/<layer>/).
    for found in sources(["src"], exts=(".h",)):
        if found.endswith("/" + name):
            return found
    return None


def sources(top_dirs, exts=(".c", ".h")):
    for top in top_dirs:
        for dirpath, _, files in os.walk(os.path.join(ROOT, top)):
            for name in sorted(files):
                if name.endswith(exts):
                    full = os.path.join(dirpath, name)
                    yield os.path.relpath(full, ROOT).replace(os.sep, "/")


def main():
    ranks = read_table()
    bad = []
    checked = 0
    for rel in sources(["src", "include/guestmem"], exts=(".c", ".h", ".h.in")):
        mine = layer_of(rel, ranks)
        if mine is None:
            continue
        checked += 1
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                target = header_path(m.group(1), rel)
                theirs = layer_of(target, ranks) if target else None
                if theirs is None or theirs == mine:
                    continue
                if ranks[theirs] >= ranks[mine]:
                    how = "a sibling" if ranks[theirs] == ranks[mine] else "above it"
                    bad.append(f"{rel}:{lineno}: layer {mine} (rank {ranks[mine]}) includes "
                               f"{m.group(1)} of layer {theirs} (rank {ranks[theirs]}), {how}")

    named = 0
    for rel in sources(["src", "include", "tools", "examples", "tests", "fuzz", "bench"]):
        if rel == "src/rcu.c":
            continue
        named += 1
        with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                code = line.split("//")[0]
                if URCU.search(code) and not code.lstrip().startswith("*"):
                    bad.append(f"{rel}:{lineno}: names liburcu outside src/rcu.c: {line.strip()}")

    for line in bad:
        print(line)
    order = " < ".join(f"{k}({v})" for k, v in sorted(ranks.items(), key=lambda kv: kv[1]))
    print(f"check-layers: {checked} files of {len(ranks)} layers [{order}], "
          f"{named} files scanned for liburcu: {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
