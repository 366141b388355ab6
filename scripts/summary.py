#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Add up meson's test logs into the closing line CI reads.

Usage: summary.py NAME:BUILDDIR|NAME:TESTLOG.json [...]

Counts cmocka test cases, not just test programs: a program's cmocka
summary lines ("[  PASSED  ] N test(s).", "[  SKIPPED ] N test(s)",
"[  FAILED  ] N test(s)") are read from its output, so a case skipped
inside a passing program is reported as skipped. A program without such
lines counts once by meson's verdict. Prints one line per build and, last,
'N passed, N failed, N skipped'. Exits 1 if any test failed, a log is
missing, or a build ran no test at all.
"""
import json
import re
import sys

CM = {
    "passed": re.compile(r"^\[  PASSED  \] (\d+) test", re.M),
    "failed": re.compile(r"^\[  FAILED  \] (\d+) test", re.M),
    "skipped": re.compile(r"^\[  SKIPPED \] (\d+) test", re.M),
}

total = {"passed": 0, "failed": 0, "skipped": 0}
bad = False
for arg in sys.argv[1:]:
    name, _, path = arg.partition(":")
    if not path.endswith(".json"):
        path = f"{path}/meson-logs/testlog.json"
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    try:
        with open(path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
    except OSError:
        print(f"{name}: FAILED: no test log at {path} (its build or set-up failed: see above)")
        bad = True
        continue
    for r in lines:
        res = r.get("result")
        out = (r.get("stdout") or "") + "\n" + (r.get("stderr") or "")
        found = {k: sum(int(n) for n in rx.findall(out)) for k, rx in CM.items()}
        if any(found.values()) and res in ("OK", "FAIL", "SKIP"):
            for k in counts:
                counts[k] += found[k]
            # A program that failed without a cmocka failure line (crash,
            # sanitizer report at exit, timeout) still counts as one failure.
            if res == "FAIL" and found["failed"] == 0:
                counts["failed"] += 1
        elif res == "OK":
            counts["passed"] += 1
        elif res == "SKIP":
            counts["skipped"] += 1
        else:
            counts["failed"] += 1
    print(f"{name}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    # A configuration that ran nothing proved nothing: never let it pass as
    # "0 failed" (a 32-bit suite whose programs could not even start did).
    if counts["passed"] + counts["failed"] == 0:
        why = ("its test log is empty: meson test ran no program (see its output above)"
               if not lines else "every test was skipped")
        print(f"{name}: FAILED: ran no test: {why}")
        bad = True
    for k in total:
        total[k] += counts[k]
print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
sys.exit(1 if bad or total["failed"] else 0)
