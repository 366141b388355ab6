#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check-spdx.py SRCDIR - every source, header, script and build file of the
tree names its licence with an SPDX-License-Identifier line near its top
(issue 19; LICENSE holds the text). Walks the folders that hold code and
the build files at the top; data (fuzz corpora, the ABI baseline), Markdown
and Debian's packaging metadata (covered by debian/copyright) are not code.
Prints every file without the line and exits 1 if there is one."""
import os
import sys

TAG = 'SPDX-License-Identifier: MIT'
CODE_DIRS = ['src', 'include', 'tests', 'tools', 'examples', 'bench', 'fuzz', 'scripts',
             'cross', 'docs', '.ci']
TOP_FILES = ['meson.build', 'meson_options.txt', 'Makefile', 'debian/rules']
SKIP_DIRS = {'corpus', '__pycache__'}
CODE_SUFFIXES = ('.c', '.h', '.S', '.ld', '.map', '.in', '.py', '.sh', '.txt', '.build')


def wants_tag(path):
    name = os.path.basename(path)
    if name.endswith('.md') or name.endswith('.bin'):
        return False
    if name.endswith(CODE_SUFFIXES) or name in ('run', 'Makefile', 'meson.build'):
        return True
    with open(path, 'rb') as f:
        return f.read(2) == b'#!'  # any other script


def main():
    root = sys.argv[1]
    paths = [os.path.join(root, p) for p in TOP_FILES]
    for d in CODE_DIRS:
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, d)):
            dirnames[:] = [x for x in dirnames if x not in SKIP_DIRS]
            paths += [os.path.join(dirpath, n) for n in filenames]
    missing, checked = [], 0
    for p in sorted(paths):
        if not os.path.isfile(p) or not wants_tag(p):
            continue
        checked += 1
        with open(p, 'rb') as f:
            head = f.read(400)
        if TAG.encode() not in head:
            missing.append(os.path.relpath(p, root))
    for m in missing:
        print('no "%s" line at the top: %s' % (TAG, m))
    print('check-spdx: %d files checked, %d without the line' % (checked, len(missing)))
    return 1 if missing else 0


if __name__ == '__main__':
    sys.exit(main())
