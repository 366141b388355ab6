#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check-snippets.py - every C example in the documentation compiles, and the programs run.

    check-snippets.py --root SRC --lib LIBGUESTMEM.so --cc 'CC ARGS' [--cflags ...]

Reads README.md and docs/*.md under SRC, takes every ```c fence, and
compiles it against SRC/include and the library the build made (with the
build's compiler and flags, so a cross or sanitizer build checks the
examples too). What is done with a fence depends on the HTML comment on the
line just before it (the marker), which readers of the rendered Markdown do
not see:

  (no marker)                    a whole program (it must define main()):
                                 compiled, linked and run; it must exit 0.
  <!-- snippet: compile -->      a whole program that needs what a test
                                 machine may lack (KVM, a front end):
                                 compiled and linked, not run.
  <!-- snippet: toplevel -->     declarations and functions without main():
                                 compiled as a file of its own, after
                                 #include <guestmem/guestmem.h> and the C
                                 headers listed in PRELUDE below.
  <!-- snippet: fragment PARAMS -->
                                 statements: they become the body of
                                 `int fragment(PARAMS)`, after the
                                 same includes, followed by `return 0;`, so
                                 a fragment may `return err;` and use the
                                 names PARAMS declares, e.g.
                                 <!-- snippet: fragment struct gm_memory *m, gm_gpa_t gpa -->

Warnings are errors, as in the build, except unused variables and
parameters in fragments. Exit 1 on any failure; every fence is reported
with its file and line.
"""
import argparse
import glob
import os
import re
import shlex
import subprocess
import sys
import tempfile

PRELUDE = """#include <guestmem/guestmem.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
"""
MARKER = re.compile(r'^<!--\s*snippet:\s*(\w+)\s*(.*?)\s*-->\s*$')


def fences(path):
    """(line number, marker kind, marker argument, code) of every ```c fence in @path."""
    lines = open(path, encoding='utf-8').read().split('\n')
    out = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == '```c':
            start = i + 1
            kind, arg = 'program', ''
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            m = MARKER.match(lines[j].strip()) if j >= 0 else None
            if m:
                kind, arg = m.group(1), m.group(2)
            end = start
            while end < len(lines) and lines[end].strip() != '```':
                end += 1
            out.append((start, kind, arg, '\n'.join(lines[start:end]) + '\n'))
            i = end
        i += 1
    return out


def source_of(kind, arg, code, doc, first_line):
    """The C file for a fence; #line makes the compiler name the Markdown file's lines."""
    line = '#line %d "%s"\n' % (first_line, doc)
    if kind in ('program', 'compile'):
        return line + code
    if kind == 'toplevel':
        return PRELUDE + line + code
    if kind == 'fragment':
        params = arg or 'void'
        return (PRELUDE + 'int fragment(%s);\nint fragment(%s)\n{\n' % (params, params) + line +
                code + 'return 0;\n}\n')
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--root', required=True)
    ap.add_argument('--lib', required=True, help='the shared libguestmem the build made')
    ap.add_argument('--cc', required=True, help='the compiler command, as one string')
    ap.add_argument('--cflags', default='', help='more compiler flags, as one string')
    args = ap.parse_args()

    cc = shlex.split(args.cc)
    cflags = shlex.split(args.cflags)
    lib = os.path.abspath(args.lib)
    libdir = os.path.dirname(lib)
    wrapper = os.environ.get('GM_EXE_WRAPPER', '').split()
    docs = [os.path.join(args.root, 'README.md')] + \
        sorted(glob.glob(os.path.join(args.root, 'docs', '*.md')))
    failures, counts = 0, {}
    with tempfile.TemporaryDirectory(prefix='gm-snippets-') as tmp:
        n = 0
        for doc in docs:
            rel = os.path.relpath(doc, args.root)
            for line, kind, arg, code in fences(doc):
                n += 1
                where = '%s:%d' % (rel, line)
                src = source_of(kind, arg, code, rel, line + 1)
                if src is None:
                    print('FAIL %s: unknown snippet marker "%s"' % (where, kind))
                    failures += 1
                    continue
                if kind in ('program', 'compile') and not re.search(r'\bint\s+main\s*\(', code):
                    print('FAIL %s: a fence without a marker must be a whole program with '
                          'main() (or mark it: see scripts/check-snippets.py)' % where)
                    failures += 1
                    continue
                c_file = os.path.join(tmp, 'snippet%d.c' % n)
                exe = os.path.join(tmp, 'snippet%d' % n)
                with open(c_file, 'w', encoding='utf-8') as f:
                    f.write(src)
                flags = ['-std=c11', '-D_GNU_SOURCE', '-Wall', '-Wextra', '-Werror',
                         '-I', os.path.join(args.root, 'include')] + cflags
                if kind == 'fragment':
                    flags += ['-Wno-unused-variable', '-Wno-unused-but-set-variable',
                              '-Wno-unused-parameter']
                if kind in ('program', 'compile'):
                    cmd = cc + flags + [c_file, '-o', exe, lib, '-Wl,-rpath,' + libdir]
                else:
                    cmd = cc + flags + ['-c', c_file, '-o', exe + '.o']
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    print('FAIL %s (%s): does not compile:\n%s' % (where, kind, r.stderr))
                    failures += 1
                    continue
                if kind == 'program':
                    try:
                        r = subprocess.run(wrapper + [exe], capture_output=True, text=True,
                                           timeout=60, cwd=tmp)
                        status = r.returncode
                    except subprocess.TimeoutExpired:
                        status = 'a timeout'
                    if status != 0:
                        print('FAIL %s: the program exited with %s:\n%s%s' %
                              (where, status, r.stdout, r.stderr))
                        failures += 1
                        continue
                print('ok   %s (%s%s)' % (where, kind, ', ran' if kind == 'program' else ''))
                counts[kind] = counts.get(kind, 0) + 1
    summary = ', '.join('%d %s' % (v, k) for k, v in sorted(counts.items()))
    print('%d snippet(s) checked: %s; %d failure(s)' % (n, summary or 'none', failures))
    if n == 0:
        print('FAIL no ```c fence found: the check checked nothing')
        return 1
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
