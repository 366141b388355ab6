#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check-man.py - the manual covers the API exactly, and every page renders cleanly.

    check-man.py SOURCE_ROOT MAN3_DIR PAGE.1...

Reads the GM_API prototypes of SOURCE_ROOT/include/guestmem/*.h itself
(with its own, simpler pattern than scripts/gen-man.py's parser, and every
header, not only those docs/meson.build lists), then checks, in MAN3_DIR
(where the build wrote the section-3 pages):
  - every GM_API function has a page gm_x.3, and a .so page points at a
    page that exists;
  - no page gm_x.3 names a function the headers do not declare, and no
    overview page guestmem_<layer>.3 a header that does not exist;
  - each page has the sections a man page needs (function pages: NAME,
    SYNOPSIS, DESCRIPTION, RETURN VALUE, SEE ALSO; tool pages: NAME,
    SYNOPSIS, DESCRIPTION, OPTIONS, EXIT STATUS, EXAMPLES), and the
    SYNOPSIS of a function page shows the #include and the function;
  - groff -man -ww renders it without a single warning.
Exit 77 (skipped, with the reason) when groff is missing.
"""
import glob
import os
import re
import shutil
import subprocess
import sys

PROTO = re.compile(r'\bGM_API\b[^;(]*?\b(gm_\w+)\s*\(')
SECTIONS3 = ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'RETURN VALUE', 'SEE ALSO']
SECTIONS1 = ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'OPTIONS', 'EXIT STATUS', 'EXAMPLES']


def sections(text):
    return [s.strip().strip('"') for s in re.findall(r'^\.SH\s+(.*)$', text, re.M)]


def main():
    root, man3 = sys.argv[1], sys.argv[2]
    man1 = sys.argv[3:]
    if shutil.which('groff') is None:
        print('skipped: groff is not installed (apt-get install groff-base)')
        return 77
    errors = []
    functions, headers = {}, set()
    inc = os.path.join(root, 'include/guestmem')
    for h in sorted(glob.glob(os.path.join(inc, '*.h')) + glob.glob(os.path.join(inc, '*.h.in'))):
        name = os.path.basename(h)
        name = name[:-3] if name.endswith('.h.in') else name  # version.h.in installs as version.h
        names = PROTO.findall(open(h, encoding='utf-8').read())
        if names:
            headers.add(os.path.splitext(name)[0])
        for n in names:
            functions[n] = name
    pages = {os.path.basename(p)[:-2]: p for p in glob.glob(os.path.join(man3, '*.3'))}
    for fn in sorted(functions):
        if fn not in pages:
            errors.append('%s (%s) has no manual page' % (fn, functions[fn]))
    for name, path in sorted(pages.items()):
        if name.startswith('gm_') and name not in functions:
            errors.append('%s.3: no such function in include/guestmem/' % name)
        elif name.startswith('guestmem_') and name[len('guestmem_'):] not in headers:
            errors.append('%s.3: no header include/guestmem/%s.h with functions' %
                          (name, name[len('guestmem_'):]))
        elif not name.startswith(('gm_', 'guestmem')):
            errors.append('%s.3: neither a function nor an overview page' % name)
    rendered = 0
    for name, path in sorted(pages.items()) + [(os.path.basename(p), p) for p in man1]:
        text = open(path, encoding='utf-8').read()
        so = re.match(r'^\.so man3/(\S+)\.3\n$', text)
        if so:
            if so.group(1) not in pages:
                errors.append('%s.3: .so to a missing page %s.3' % (name, so.group(1)))
            continue
        want = SECTIONS1 if path.endswith('.1') else SECTIONS3 if name.startswith('gm_') \
            else ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'SEE ALSO']
        have = sections(text)
        missing = [s for s in want if s not in have]
        if missing:
            errors.append('%s: missing section(s) %s' % (name, ', '.join(missing)))
        if name.startswith('gm_'):
            syn = text.split('.SH SYNOPSIS', 1)[-1].split('.SH DESCRIPTION', 1)[0]
            if '#include <guestmem/' not in syn or not re.search(r'\b%s\(' % name, syn):
                errors.append('%s.3: SYNOPSIS lacks the #include or the prototype' % name)
        r = subprocess.run(['groff', '-man', '-ww', '-z', path], capture_output=True,
                           text=True, env=dict(os.environ, LC_ALL='C.UTF-8'))
        if r.returncode != 0 or r.stderr.strip():
            errors.append('%s: groff: %s' % (name, r.stderr.strip() or 'exit %d' % r.returncode))
        rendered += 1
    for e in errors:
        print('FAIL ' + e)
    if any('has no manual page' in e for e in errors):
        print('(a function with no page: does its prototype have a comment above it? '
              'In a new header, configure again: meson setup --reconfigure BUILDDIR)')
    print('%d functions, %d section-3 pages, %d rendered by groff without warnings: %s' %
          (len(functions), len(pages), rendered - len([e for e in errors if 'groff' in e]),
           'ok' if not errors else '%d problem(s)' % len(errors)))
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
