#!/usr/bin/env python3
"""Add up meson's test logs into the closing line CI reads.

Usage: summary.py NAME:BUILDDIR|NAME:LOG.json [...]
Prints one line per build and, last, 'N passed, N failed, N skipped'.
Exits 1 if any test failed or a log is missing.
"""
import json
import sys

total = {"passed": 0, "failed": 0, "skipped": 0}
bad = False
for arg in sys.argv[1:]:
    name, _, build = arg.partition(":")
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    try:
        log = build if build.endswith(".json") else f"{build}/meson-logs/testlog.json"
        with open(log) as f:
            for line in f:
                r = json.loads(line)
                res = r.get("result")
                if res == "OK":
                    counts["passed"] += 1
                elif res == "SKIP":
                    counts["skipped"] += 1
                else:
                    counts["failed"] += 1
    except OSError:
        print(f"{name}: no test log in {build}")
        bad = True
        continue
    print(f"{name}: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    for k in total:
        total[k] += counts[k]
print(f"{total['passed']} passed, {total['failed']} failed, {total['skipped']} skipped")
sys.exit(1 if bad or total["failed"] else 0)
