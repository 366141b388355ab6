#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gen-man.py - section-3 manual pages from the comments of the public headers.

The headers are guestmem's reference: each GM_API prototype has its
contract in the comment right above it, and prototypes that follow each
other with no comment between share the one above them (gm_read_u8() ...
gm_write_le64()). This script turns each such group into one page, named
after its first function, and writes a one-line page `.so man3/<page>.3`
for every other function of the group, so `man <function>` finds each.
Each header also gets an overview page, guestmem_<layer>.3 (the header's
opening comment), and guestmem.3 lists them all.

Sections of a function page: NAME (the functions and the comment's first
sentence), SYNOPSIS (#include and the prototypes), DESCRIPTION (the
comment), RETURN VALUE (the comment's "Returns ..." sentences and those
after it that name an errno), SEE ALSO (every other function the comment
names, and the header's overview page). A comment that starts with
"Common rules" and stands alone above other comments applies to every
group after it up to the next section divider (space.h's add and edit
functions), and is shown in each of their pages.

    gen-man.py --list HEADER...                 print the page file names
    gen-man.py --outdir DIR --version V HEADER...   write the pages
    gen-man.py --functions HEADER...            print the GM_API function names
    gen-man.py --find-headers DIR               print DIR/*.h (the build's header list)

A GM_API prototype with no comment above it gets no page and a warning
(every public function has a contract): test 'man' (scripts/check-man.py)
then fails, while the build goes on.
"""
import argparse
import glob
import os
import re
import sys

TOKEN = re.compile(r'/\*.*?\*/|\bGM_API\b[^;]*;|#[^\n]*(?:\\\n[^\n]*)*|\S', re.S)
ERRNO = re.compile(r'(?<![\w-])-(E[A-Z0-9]+)\b')


class Group:
    def __init__(self, header, comment, common):
        self.header = header
        self.comment = comment  # the comment's lines, " * " stripped
        self.common = common  # lines of a "Common rules" comment, or None
        self.protos = []  # (name, return type, [params]) per prototype


def comment_lines(text):
    """The lines of a /* */ comment without the delimiters and the ' * ' margin."""
    body = text[2:-2]
    lines = body.split('\n')
    out = []
    for line in lines:
        line = line.rstrip()
        m = re.match(r'^\s*\*( ?)(.*)$', line)
        out.append(m.group(2) if m else line.strip())
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


def parse_proto(text):
    """('gm_read', 'int', ['const struct gm_memory *m', ...]) from a GM_API declaration."""
    decl = ' '.join(text[len('GM_API'):].split()).rstrip(';').strip()
    m = re.match(r'^(.*?)\b(gm_\w+)\s*\((.*)\)$', decl)
    if not m:
        sys.exit('gen-man.py: cannot parse the prototype: ' + decl)
    params = [p.strip() for p in split_params(m.group(3))]
    return m.group(2), m.group(1).strip(), params


def split_params(s):
    depth, cur, out = 0, '', []
    for ch in s:
        if ch == ',' and depth == 0:
            out.append(cur)
            cur = ''
            continue
        depth += ch == '('
        depth -= ch == ')'
        cur += ch
    out.append(cur)
    return out


def parse_header(path):
    """(overview comment lines, [Group]) of one header."""
    text = open(path, encoding='utf-8').read()
    elements = []
    for m in TOKEN.finditer(text):
        s = m.group(0)
        kind = 'comment' if s.startswith('/*') else 'proto' if s.startswith('GM_API') else 'code'
        if kind == 'code' and elements and elements[-1][0] == 'code':
            continue
        if kind == 'comment' and 'SPDX-License-Identifier' in s:
            continue  # the licence line every file starts with, not documentation
        elements.append((kind, s))
    overview = comment_lines(elements[0][1]) if elements and elements[0][0] == 'comment' else []
    groups, common = [], None
    for i, (kind, s) in enumerate(elements):
        nxt = elements[i + 1][0] if i + 1 < len(elements) else None
        if kind == 'comment' and nxt == 'comment':
            lines = comment_lines(s)
            if re.fullmatch(r'-+', ''.join(lines).strip()):
                common = None  # a section divider
            elif lines and lines[0].startswith('Common rules'):
                common = lines
        elif kind == 'proto':
            prev = elements[i - 1][0] if i > 0 else 'code'
            if prev == 'comment':
                groups.append(Group(path, comment_lines(elements[i - 1][1]), common))
            elif prev != 'proto':
                # No page: test 'man' then fails on it, and the build goes on.
                print('gen-man.py: warning: %s: %s has no comment above it, so no page' %
                      (path, parse_proto(s)[0]), file=sys.stderr)
                elements[i] = ('code', s)
                continue
            groups[-1].protos.append(parse_proto(s))
    return overview, groups


def header_file(header):
    """The installed name of @header: a Meson template x.h.in installs as x.h."""
    name = os.path.basename(header)
    return name[:-3] if name.endswith('.h.in') else name


def layer_of(header):
    return os.path.splitext(header_file(header))[0]


def overview_page(header):
    return 'guestmem_' + layer_of(header)


# ---------------------------------------------------------------------------
# Comment text to roff


def inline(text):
    """Escape @text for roff and mark parameters, functions and errno names."""
    text = text.replace('\\', '\\e')
    text = re.sub(r'@(\w+)', r'\\fI\1\\fP', text)
    text = re.sub(r'\b(gm_\w+)\(\)', r'\\fB\1\\fP()', text)
    text = ERRNO.sub(r'\\-\1', text)
    text = re.sub(r'(?<![\w\\])-(?=\w)', r'\\-', text)  # options, negative numbers
    if text.startswith(('.', "'")):
        text = '\\&' + text
    return text


ITEM = re.compile(r'^(\s*)(?:(-|\d+\.) (\S.*)|(-E[A-Z0-9]+|-?\d+)\s{2,}(\S.*))$')


def indent_of(line):
    return len(line) - len(line.lstrip(' \t'))


def render(lines, headings=False):
    """roff for comment @lines: paragraphs, lists, errno tables, preformatted blocks."""
    out = []
    i, n = 0, len(lines)
    state = 'start'  # 'text', 'list'
    base = 0  # the indentation of plain text: 0, or that of a heading's body
    table_col = -1  # the indentation of the errno table being rendered
    while i < n:
        line = lines[i]
        if not line.strip():
            state = 'start'
            i += 1
            continue
        ind = indent_of(line)
        m = ITEM.match(line)
        if not m and state == 'list' and ind == table_col:
            # An errno too long for the table's column, followed by one space.
            m = re.match(r'^(\s*)()()()(-E[A-Z0-9]+) (\S.*)$', line)
            m = ITEM.match(line.replace(m.group(5) + ' ', m.group(5) + '  ', 1)) if m else None
        nxt = lines[i + 1] if i + 1 < n else ''
        if (headings and ind == 0 and not m and nxt.strip() and indent_of(nxt) > 0 and
                not re.search(r'[.,;:]$', line) and len(line) < 72):
            out.append('.SS "%s"' % line.strip().replace('"', ''))
            state = 'start'
            base = indent_of(nxt)
            i += 1
            continue
        if headings and ind < base:
            base = ind  # the heading's body ended
        if m:
            col = ind
            table_col = -1
            if m.group(2):
                tag = '\\(bu' if m.group(2) == '-' else m.group(2)
                out.append('.IP %s 4' % tag)
                out.append(inline(m.group(3)))
            else:
                table_col = col
                out.append('.TP 10')
                out.append('.B %s' % inline(m.group(4)))
                out.append(inline(m.group(5)))
            i += 1
            while i < n and lines[i].strip() and indent_of(lines[i]) > col and \
                    not ITEM.match(lines[i]):
                out.append(inline(lines[i].strip()))
                i += 1
            state = 'list'
            continue
        if ind > base and (state == 'start' or out[-1].rstrip().endswith(':')):
            # An indented block on its own or after a line ending in ':' (a
            # table, a diagram): kept as it is.
            out.append('.PP' if state == 'start' else '.sp')
            out.append('.RS 4')
            out.append('.nf')
            while i < n and lines[i].strip() and indent_of(lines[i]) > base:
                out.append(inline(lines[i][base:].rstrip()))
                i += 1
            out.append('.fi')
            out.append('.RE')
            state = 'start'
            continue
        if state in ('start', 'list'):
            out.append('.PP')
        out.append(inline(line.strip()))
        state = 'text'
        i += 1
    while out and out[0] == '.PP':
        out.pop(0)
    return out


# ---------------------------------------------------------------------------
# Pages

SENTENCE_END = re.compile(r'(?<=[.])\s+(?=[A-Z@*(]|-E|gm_|\d+\. )')


def split_returns(lines):
    """(description lines, return-value lines) of a comment."""
    text = '\n'.join(lines)
    m = re.search(r'(^|(?<=[.:])[ \t]+|\n)(?=(Returns|Reads return)\b)', text)
    if not m:
        return lines, []
    start = m.end()
    rest = text[start:]
    sentences = SENTENCE_END.split(rest)
    keep = 1
    while keep < len(sentences) and re.search(r'-E[A-Z]|[Rr]eturns?\b', sentences[keep]):
        keep += 1
    ret_text = rest
    tail = ''
    if keep < len(sentences):
        cut = 0
        for s in sentences[:keep]:
            cut = rest.index(s, cut) + len(s)
        ret_text, tail = rest[:cut], rest[cut:].lstrip()
    desc = text[:start].rstrip(' \t')
    if tail:
        desc = desc + ('\n' if desc.endswith('\n') or not desc else ' ') + tail
    desc_lines = [l for l in desc.split('\n')]
    while desc_lines and not desc_lines[-1].strip():
        desc_lines.pop()
    return desc_lines, ret_text.split('\n')


def first_sentence(lines, stop_at_colon=False):
    """The comment's first sentence ("e.g." and ".." do not end one), @ marks removed."""
    text = ' '.join(l.strip() for l in lines)
    end = r'(?<!e\.g)(?<!i\.e)(?<!\.)\.(?!\.)(\s|$)'
    if stop_at_colon:
        end += r'|:\s'
    text = re.split(end, text, 1)[0]
    return re.sub(r'@(\w+)', r'\1', text)


def name_line(lines):
    """The NAME section's description: the first sentence up to a colon, in lower case."""
    text = first_sentence(lines, stop_at_colon=True)
    if len(text) > 80:
        # whatis(1) shows this line: leave out a parenthesis or a second clause.
        cut = re.search(r' \(|; |, e\.g\.', text[20:])
        if cut:
            text = text[:20 + cut.start()]
    if len(text) > 1 and text[0].isupper() and (text[1].islower() or text[1] == ' '):
        text = text[0].lower() + text[1:]
    return re.sub(r'\\f[BIP]', '', inline(text))


NOUN_START = ('The ', 'Number ', 'Whether ', 'True ', 'Sum ', 'How ', 'Chunks ', 'A ', 'As ')


def fallback_return(g):
    """RETURN VALUE for a comment without a "Returns" sentence."""
    ret = g.protos[0][1]
    names = ', '.join('\\fB%s\\fP()' % p[0] for p in g.protos)
    text = first_sentence(g.comment)
    verb = 'returns' if len(g.protos) == 1 else 'return'
    if all(p[1] == 'void' for p in g.protos):
        return 'None.' if len(g.protos) == 1 else 'These functions return no value.'
    if re.search(r'\band return (it|\w+)$', text):
        return '%s %s the object passed in, which now holds the new reference.' % (names, verb)
    if text.startswith(NOUN_START):
        for start, say in (('As ', 'the same as '), ('Number ', 'the number '),
                           ('Sum ', 'the sum '), ('Chunks ', 'the number of chunks ')):
            if text.startswith(start):
                text = say + text[len(start):]
        return '%s %s %s.' % (names, verb, inline(text[0].lower() + text[1:]))
    if ret == 'int':
        return ('%s %s 0 on success, or a negative errno value: the errors are listed '
                'under DESCRIPTION.' % (names, verb))
    return '%s %s %s.' % (names, verb, inline(text))


def synopsis(proto):
    name, ret, params = proto
    sep = '' if ret.endswith('*') else ' '
    head = ret + sep + name + '('
    parts = []
    for k, p in enumerate(params):
        last = k == len(params) - 1
        tail = ');' if last else ','
        pm = re.match(r'^(.*?[\s*])(\w+)$', p)
        if pm and p not in ('void',) and '(' not in p:
            parts.append((pm.group(1), pm.group(2), tail))
        else:
            parts.append((p + tail, None, ''))
    out = []
    width = len(head)
    pad = ' ' * len(head)
    line = [head]
    linelen = len(head)
    for bold, ital, tail in parts:
        item_len = len(bold) + len(ital or '') + len(tail) + 1
        if linelen + item_len > 78 and len(line) > 1:
            out.append(line)
            line = [pad]
            linelen = width
        line.append((bold, ital, tail))
        linelen += item_len
    out.append(line)
    roff = []
    for ln in out:
        words = [ln[0]]
        for j, (bold, ital, tail) in enumerate(ln[1:]):
            sp = ' ' if j > 0 else ''
            if ital is None:
                words[-1] += sp + bold
            else:
                words[-1] += sp + bold
                words.append(ital)
                words.append(tail)
        # .BI alternates bold and italic, starting with bold.
        if len(words) % 2 == 0:
            words.append('')
        quoted = ' '.join('"%s"' % w.replace('\\', '\\e') for w in words)
        roff.append('.BI ' + quoted)
    return roff


def th(title, section, version):
    return '.TH %s %s "" "guestmem %s" "guestmem Manual"' % (title.upper().replace('_', '\\_'),
                                                           section, version)


def function_page(g, pages_of, version):
    names = [p[0] for p in g.protos]
    include = 'guestmem/' + header_file(g.header)
    desc, ret = split_returns(g.comment)
    out = [
        '.\\" Generated by scripts/gen-man.py from %s: edit the header, not this page.' % include,
        th(names[0], 3, version),
        '.SH NAME',
        '%s \\- %s' % (', '.join(names), name_line(g.comment)),
        '.SH SYNOPSIS',
        '.nf',
        '.B #include <%s>' % include,
        '.PP',
    ]
    for p in g.protos:
        out += synopsis(p)
    out += ['.fi', '.PP', 'Link with', '.IR \\-lguestmem .', '.SH DESCRIPTION']
    out += render(desc)
    if g.common:
        first, body = g.common[0], g.common[1:]
        if ':' in first.rstrip(':'):
            body = [first.split(':', 1)[1].strip()] + body
        out.append('.SS "%s"' % first.split(':', 1)[0].rstrip('.'))
        out += render(body)
    out.append('.SH RETURN VALUE')
    out += render(ret) if ret else [fallback_return(g)]
    see = []
    for fn in re.findall(r'\b(gm_\w+)\(', '\n'.join(g.comment + (g.common or []))):
        if fn not in names and fn in pages_of and fn not in see:
            see.append(fn)
    out.append('.SH SEE ALSO')
    refs = ['.BR %s (3)' % fn for fn in see] + ['.BR %s (3)' % overview_page(g.header)]
    out += [r + ',' for r in refs[:-1]] + refs[-1:]
    return '\n'.join(out) + '\n'


def overview(header, lines, groups, version):
    layer = layer_of(header)
    include = 'guestmem/' + header_file(header)
    para = lines[:lines.index('')] if '' in lines else lines
    title = ' '.join(l.strip() for l in para) or include
    summary = title.split(' - ', 1)[1].rstrip('.') if ' - ' in title else title
    out = [
        '.\\" Generated by scripts/gen-man.py from %s: edit the header, not this page.' % include,
        th(overview_page(header), 3, version),
        '.SH NAME',
        '%s \\- %s' % (overview_page(header), inline(summary)),
        '.SH SYNOPSIS',
        '.nf',
        '.B #include <%s>' % include,
        '.fi',
        '.SH DESCRIPTION',
    ]
    out += render(lines[len(para):], headings=True)
    out.append('.SH FUNCTIONS')
    for g in groups:
        out.append('.TP')
        out.append(', '.join('\\fB%s\\fP()' % p[0] for p in g.protos))
        out.append(inline(first_sentence(g.comment, stop_at_colon=True)) + '.')
    out += ['.SH SEE ALSO', '.BR guestmem (3)']
    return '\n'.join(out) + '\n'


def umbrella(headers, version):
    out = [
        '.\\" Generated by scripts/gen-man.py: edit the script, not this page.',
        th('guestmem', 3, version),
        '.SH NAME',
        'guestmem \\- a safe, fast model of guest memory for virtual machine monitors',
        '.SH SYNOPSIS',
        '.nf',
        '.B #include <guestmem/guestmem.h>',
        '.fi',
        '.PP',
        'Link with',
        '.IR "$(pkg\\-config \\-\\-libs guestmem)" .',
        '.SH DESCRIPTION',
        'guestmem gives a virtual machine monitor one model of its guest\'s physical',
        'memory. Every function returns 0 or a negative errno unless its page says',
        'otherwise; each header, and the page named after it, describes one layer:',
    ]
    for h, lines in headers:
        para = lines[:lines.index('')] if '' in lines else lines
        title = ' '.join(l.strip() for l in para)
        summary = title.split(' - ', 1)[1] if ' - ' in title else ''
        out += ['.TP', '.BR %s (3)' % overview_page(h), inline(summary)]
    out += ['.SH SEE ALSO', '.BR gm\\-vhost\\-blk (1),', '.BR gmsnap (1)']
    return '\n'.join(out) + '\n'


def main():
    ap = argparse.ArgumentParser(description='Manual pages from the guestmem headers.')
    ap.add_argument('--list', action='store_true', help='print the page file names')
    ap.add_argument('--functions', action='store_true', help='print the GM_API functions')
    ap.add_argument('--outdir', help='write the pages here')
    ap.add_argument('--version', default='0')
    ap.add_argument('--find-headers', action='store_true', help='list the headers of a folder')
    ap.add_argument('headers', nargs='+')
    args = ap.parse_args()
    if args.find_headers:
        for d in args.headers:
            # Templates too: version.h is made from version.h.in.
            print('\n'.join(sorted(glob.glob(os.path.join(d, '*.h')) +
                                   glob.glob(os.path.join(d, '*.h.in')))))
        return

    parsed = []
    for h in sorted(args.headers, key=os.path.basename):
        lines, groups = parse_header(h)
        if groups:
            parsed.append((h, lines, groups))
    pages = {}  # file name -> text
    pages_of = {}  # function -> its group's page
    for h, lines, groups in parsed:
        for g in groups:
            for p in g.protos:
                if p[0] in pages_of:
                    sys.exit('gen-man.py: %s is declared twice' % p[0])
                pages_of[p[0]] = g.protos[0][0]
    if args.functions:
        print('\n'.join(sorted(pages_of)))
        return
    for h, lines, groups in parsed:
        pages[overview_page(h) + '.3'] = overview(h, lines, groups, args.version)
        for g in groups:
            first = g.protos[0][0]
            pages[first + '.3'] = function_page(g, pages_of, args.version)
            for p in g.protos[1:]:
                pages[p[0] + '.3'] = '.so man3/%s.3\n' % first
    pages['guestmem.3'] = umbrella([(h, l) for h, l, _ in parsed], args.version)
    if args.list:
        print('\n'.join(sorted(pages)))
        return
    if not args.outdir:
        ap.error('--outdir, --list or --functions')
    os.makedirs(args.outdir, exist_ok=True)
    for name, text in pages.items():
        with open(os.path.join(args.outdir, name), 'w', encoding='utf-8') as f:
            f.write(text)


if __name__ == '__main__':
    main()
