#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Mutation testing, one mutant at a time.

Applies one small mutation (flip < and <=, > and >=, == and !=, && and ||,
+ 1 and - 1, drop a logical !) to one line of a C file, rebuilds the given
test programs with ninja, runs them with a timeout and records whether the
mutant was killed (a test failed, crashed or timed out) or survived (every
test passed). A mutant that does not compile is counted apart. The file is
restored after every mutant, even on error or Ctrl-C, and the script checks
at the end that the source tree is clean (git diff --quiet).

Run it in a tree nobody else builds from (a copy is safest), with a build
directory of its own:

  scripts/mutate.py --build build-mut --file src/virtq.c --test test_virtq \
      --max 40 --seed 17 > virtq.tsv

Output: one tab-separated line per mutant (id, line, operator, status, the
mutated line) and a summary on stderr. --ids re-runs chosen mutants.
"""
import argparse
import hashlib
import os
import random
import re
import subprocess
import sys

# (name, pattern, replacement). The patterns avoid ->, <<, >>, #include <...>.
OPERATORS = [
    ("<=to<", re.compile(r"(?<![<>=!])<=(?!=)"), "<"),
    ("<to<=", re.compile(r"(?<![<\-])<(?![<=])"), "<="),
    (">=to>", re.compile(r"(?<![<>=!])>=(?!=)"), ">"),
    (">to>=", re.compile(r"(?<![>\-])>(?![>=])"), ">="),
    ("==to!=", re.compile(r"=="), "!="),
    ("!=to==", re.compile(r"!="), "=="),
    ("&&to||", re.compile(r"&&"), "||"),
    ("||to&&", re.compile(r"\|\|"), "&&"),
    ("+1to-1", re.compile(r"\+ 1\b"), "- 1"),
    ("-1to+1", re.compile(r"(?<=[\w)\]] )- 1\b"), "+ 1"),
    ("drop!", re.compile(r"!(?!=)"), ""),
]


def code_lines(text):
    """Yield (index, line) of lines that are code: no comments, no preprocessor."""
    in_comment = False
    for i, line in enumerate(text.split("\n")):
        s = line.strip()
        if in_comment:
            if "*/" in s:
                in_comment = False
            continue
        if s.startswith("/*"):
            in_comment = "*/" not in s
            continue
        if not s or s.startswith("//") or s.startswith("*") or s.startswith("#"):
            continue
        yield i, line


def strip_tail(line):
    """The part of a line before a trailing comment or a string literal."""
    cut = len(line)
    for tok in ("/*", "//", '"'):
        k = line.find(tok)
        if k >= 0:
            cut = min(cut, k)
    return line[:cut]


def all_mutants(text):
    out = []
    for i, line in code_lines(text):
        code = strip_tail(line)
        for name, pat, rep in OPERATORS:
            for m in pat.finditer(code):
                new = line[: m.start()] + rep + line[m.end():]
                out.append((i, name, new))
    return out


def run(cmd, timeout):
    try:
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=timeout)
        return p.returncode
    except subprocess.TimeoutExpired:
        return "timeout"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="ninja build directory")
    ap.add_argument("--file", required=True, help="the C file to mutate")
    ap.add_argument("--test", action="append", required=True,
                    help="test program (ninja target, path in the build dir); repeatable")
    ap.add_argument("--max", type=int, default=40, help="mutants to sample (0: all)")
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--timeout", type=int, default=60)
    ap.add_argument("--ids", help="comma-separated mutant ids to run (after sampling)")
    ap.add_argument("--list", action="store_true", help="list the sampled mutants only")
    a = ap.parse_args()

    with open(a.file) as f:
        original = f.read()
    digest = hashlib.sha256(original.encode()).hexdigest()
    mutants = all_mutants(original)
    ids = list(range(len(mutants)))
    if a.max and len(ids) > a.max:
        ids = sorted(random.Random(a.seed).sample(ids, a.max))
    if a.ids:
        want = {int(x) for x in a.ids.split(",")}
        ids = [i for i in ids if i in want]
    lines = original.split("\n")
    tests = [os.path.join(a.build, t) for t in a.test]
    stats = {"killed": 0, "survived": 0, "nobuild": 0}

    if a.list:
        for k in ids:
            i, name, new = mutants[k]
            print(f"{k}\t{i + 1}\t{name}\t{new.strip()}")
        return 0
    # The unmutated tree must build and pass, or every mutant looks killed.
    if run(["ninja", "-C", a.build] + list(a.test), 600) != 0:
        sys.exit("mutate.py: the unmutated tree does not build")
    for t in tests:
        if run([t], a.timeout) != 0:
            sys.exit(f"mutate.py: {t} fails without a mutant")
    try:
        for k in ids:
            i, name, new = mutants[k]
            mutated = lines[:i] + [new] + lines[i + 1:]
            try:
                with open(a.file, "w") as f:
                    f.write("\n".join(mutated))
                if run(["ninja", "-C", a.build] + list(a.test), 600) != 0:
                    status = "nobuild"
                else:
                    status = "survived"
                    for t in tests:
                        if run([t], a.timeout) != 0:
                            status = "killed"
                            break
            finally:
                with open(a.file, "w") as f:
                    f.write(original)
            stats[status] += 1
            print(f"{k}\t{i + 1}\t{name}\t{status}\t{new.strip()}", flush=True)
    finally:
        with open(a.file, "w") as f:
            f.write(original)
        # Rebuild the restored file so the build dir matches the source again.
        run(["ninja", "-C", a.build] + list(a.test), 600)
    with open(a.file) as f:
        assert hashlib.sha256(f.read().encode()).hexdigest() == digest
    if subprocess.run(["git", "diff", "--quiet", "--", a.file]).returncode != 0:
        sys.exit(f"mutate.py: {a.file} differs from git after the run")
    live = stats["killed"] + stats["survived"]
    rate = 100.0 * stats["killed"] / live if live else 0.0
    print(f"{a.file}: {len(ids)} mutants of {len(mutants)}, killed {stats['killed']}, "
          f"survived {stats['survived']}, not built {stats['nobuild']}, "
          f"kill rate {rate:.0f}%", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
