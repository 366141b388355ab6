#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Line and branch coverage per file, from a -Db_coverage=true build.

Usage: coverage.py BUILDDIR [HOLES]

Runs Debian's gcovr over BUILDDIR's gcov data (the tests must have run)
and prints three tables, each with its totals: the library (src/ and
include/guestmem/static/), gm-vhost-blk and gmsnap. tests/, examples/,
bench/ and fuzz/ are left out of the figures. Then the HOLES (15)
functions with the most uncovered lines. The totals are printed beside
the targets of issue 17; they are not enforced. The library's targets
assume a working /dev/kvm: without it the KVM binding cannot run, and the
table says so and adds the library's figures without src/kvm/. Writes BUILDDIR/coverage/index.html (gcovr --html-details)
and the gcovr JSON it read. Exits 1 if gcovr fails.
"""
import json
import os
import subprocess
import sys

# name, gcovr filters (regexes on paths relative to the source root),
# target line %, target branch % (None: no target).
GROUPS = [
    ("library", ["src/", "include/guestmem/static/"], 95, 85),
    ("gm-vhost-blk", ["tools/gm-vhost-blk/"], 90, None),
    ("gmsnap", ["tools/gmsnap/"], None, None),
]
KVM_DIR = "src/kvm/"


def pct(covered, total):
    return 100.0 * covered / total if total else 100.0


def run_gcovr(root, build, out):
    os.makedirs(out, exist_ok=True)
    cmd = ["gcovr", "-r", root, build, "-j", str(os.cpu_count() or 1),
           "--json-summary", f"{out}/summary.json",
           "--json", f"{out}/coverage.json",
           "--html-details", f"{out}/index.html"]
    for _, filters, _, _ in GROUPS:
        for f in filters:
            cmd += ["--filter", f]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        sys.stdout.write(r.stdout)
        sys.exit(f"coverage.py: gcovr failed ({r.returncode})")
    with open(f"{out}/summary.json") as f:
        summary = json.load(f)
    with open(f"{out}/coverage.json") as f:
        detail = json.load(f)
    return summary["files"], detail["files"]


def group_of(path):
    for name, filters, _, _ in GROUPS:
        if any(path.startswith(f) for f in filters):
            return name
    return None


def kvm_usable():
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
        return True
    except OSError:
        return False


def target_note(what, value, target, kvm_needed):
    if target is None:
        return ""
    s = f"{what} {value:.1f} % (target {target} %"
    if kvm_needed and not kvm_usable():
        s += "; KVM was absent here, so the KVM binding could not run"
    return s + ")"


def print_table(name, files, tlines, tbranches):
    print(f"\n== {name}")
    print(f"{'file':44} {'lines':>16} {'branches':>16} {'functions':>11}")
    tot = [0, 0, 0, 0, 0, 0]
    for f in sorted(files, key=lambda f: f["filename"]):
        v = [f["line_covered"], f["line_total"], f["branch_covered"], f["branch_total"],
             f["function_covered"], f["function_total"]]
        tot = [a + b for a, b in zip(tot, v)]
        print(f"{f['filename']:44} {v[0]:5}/{v[1]:<5} {pct(v[0], v[1]):5.1f}%"
              f" {v[2]:5}/{v[3]:<5} {pct(v[2], v[3]):5.1f}% {v[4]:4}/{v[5]:<4}")
    print(f"{'TOTAL':44} {tot[0]:5}/{tot[1]:<5} {pct(tot[0], tot[1]):5.1f}%"
          f" {tot[2]:5}/{tot[3]:<5} {pct(tot[2], tot[3]):5.1f}% {tot[4]:4}/{tot[5]:<4}")
    notes = [target_note(f"{name} lines", pct(tot[0], tot[1]), tlines, name == "library"),
             target_note(f"{name} branches", pct(tot[2], tot[3]), tbranches, name == "library")]
    for n in notes:
        if n:
            print(n)
    if name == "library" and not kvm_usable():
        # What the tests can reach here: all but the KVM binding.
        rest = [f for f in files if not f["filename"].startswith(KVM_DIR)]
        lc, lt = sum(f["line_covered"] for f in rest), sum(f["line_total"] for f in rest)
        bc, bt = sum(f["branch_covered"] for f in rest), sum(f["branch_total"] for f in rest)
        print(f"library without {KVM_DIR} (no KVM here): lines {pct(lc, lt):.1f} %,"
              f" branches {pct(bc, bt):.1f} %")


def ranges(nums):
    out, start, prev = [], None, None
    for n in nums:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = n
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    return ",".join(out)


def holes(detail, count):
    """Uncovered lines per function: a line belongs to the last function
    that starts at or before it (file scope before the first)."""
    per_fn = {}
    for f in detail:
        if group_of(f["file"]) is None:
            continue
        starts = sorted((fn["lineno"], fn["name"]) for fn in f["functions"])
        for ln in f["lines"]:
            if ln["gcovr/noncode"] or ln.get("gcovr/excluded"):
                continue
            fn = "(file scope)"
            for lineno, name in starts:
                if lineno > ln["line_number"]:
                    break
                fn = name
            h = per_fn.setdefault((f["file"], fn), [0, []])
            h[0] += 1
            if ln["count"] == 0:
                h[1].append(ln["line_number"])
    top = sorted(per_fn.items(), key=lambda kv: -len(kv[1][1]))[:count]
    print(f"\n== the {count} biggest holes (uncovered lines by function)")
    for (path, fn), (total, missed) in top:
        if missed:
            print(f"{len(missed):4}/{total:<4} {path}: {fn}  lines {ranges(missed)}")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    build = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) == 3 else 15
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = os.path.join(os.path.abspath(build), "coverage")
    summary, detail = run_gcovr(root, os.path.abspath(build), out)
    for name, _, tlines, tbranches in GROUPS:
        print_table(name, [f for f in summary if group_of(f["filename"]) == name],
                    tlines, tbranches)
    holes(detail, count)
    print(f"\nHTML report: {out}/index.html")


if __name__ == "__main__":
    main()
