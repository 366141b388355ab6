#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""check_tool_cli.py - gm-vhost-blk and gmsnap behave like Unix tools.

    check_tool_cli.py VERSION GM_VHOST_BLK GMSNAP

For each tool: --help and -h print a usage text on standard output, nothing
on standard error, and exit 0; --version and -V print "<tool> (guestmem)
VERSION" and exit 0; an unknown option, a missing option argument or a
missing operand is a usage error: exit 2, nothing on standard output, and
on standard error a message that starts with "<tool>: " and a hint naming
--help. "--" ends the options (a file named "-x" after it is a file). A
failure that is not a usage error exits 1 (gm-vhost-blk: an image that
cannot be opened; gmsnap: a damaged file, as cmp(1), while a file that
cannot be read is trouble, 2). Runs the programs through GM_EXE_WRAPPER
(the cross build's emulator), if set.
"""
import os
import subprocess
import sys
import tempfile

WRAPPER = os.environ.get("GM_EXE_WRAPPER", "").split()
failures = []


def run(argv, cwd=None):
    r = subprocess.run(WRAPPER + argv, capture_output=True, text=True, timeout=30, cwd=cwd)
    return r.returncode, r.stdout, r.stderr


def expect(what, cond, detail=""):
    if not cond:
        failures.append("%s %s" % (what, detail))
    print("%s: %s" % ("ok  " if cond else "FAIL", what))


def check_common(tool, path, version):
    for opt in ("--help", "-h"):
        st, out, err = run([path, opt])
        expect("%s %s exits 0 with usage on stdout" % (tool, opt),
               st == 0 and out.startswith("Usage: ") and "--version" in out and err == "",
               "(exit %d, stderr %r)" % (st, err))
    for opt in ("--version", "-V"):
        st, out, err = run([path, opt])
        expect("%s %s prints '%s (guestmem) %s'" % (tool, opt, tool, version),
               st == 0 and out == "%s (guestmem) %s\n" % (tool, version) and err == "",
               "(exit %d, stdout %r)" % (st, out))
    for bad in (["--no-such-option"], ["-Z"]):
        st, out, err = run([path] + bad)
        expect("%s %s is a usage error (exit 2, '%s: ...' and a hint)" % (tool, bad[0], tool),
               st == 2 and out == "" and err.startswith(tool + ": ") and
               "'%s --help'" % tool in err and bad[0] in err,
               "(exit %d, stderr %r)" % (st, err))


def main():
    version = sys.argv[1]
    vhost_blk, gmsnap = (os.path.abspath(p) for p in sys.argv[2:4])
    check_common("gm-vhost-blk", vhost_blk, version)
    check_common("gmsnap", gmsnap, version)
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "s.sock")
        cases = [
            (["--socket"], 2, "needs an argument"),
            (["--image", "x.img"], 2, "--socket PATH is required"),
            (["-s", sock, "-i", "x.img", "--queues", "0"], 2, "--queues"),
            (["-s", sock, "-i", "x.img", "--aio=posix"], 2, "--aio wants sync or io_uring"),
            (["-s", sock, "-i", "x.img", "--postcopy-timeout=0"], 2,
             "--postcopy-timeout wants seconds"),
            (["-s", sock, "-i", "x.img", "extra"], 2, "unexpected argument 'extra'"),
            (["-s", sock, "-i", os.path.join(d, "missing.img")], 1, "missing.img"),
        ]
        for args, want, words in cases:
            st, out, err = run([vhost_blk] + args)
            expect("gm-vhost-blk %s exits %d" % (" ".join(args), want),
                   st == want and err.startswith("gm-vhost-blk: ") and words in err,
                   "(exit %d, stderr %r)" % (st, err))
        damaged = os.path.join(d, "damaged.snap")
        with open(damaged, "wb") as f:
            f.write(b"not a snapshot" * 512)
        cases = [
            ([], 2, "a command is required"),
            (["frobnicate"], 2, "unknown command 'frobnicate'"),
            (["info"], 2, "info wants one FILE"),
            (["diff", "a"], 2, "diff wants two files"),
            (["verify", "--alone", "x"], 2, "--alone is an option of info"),
            (["info", "--", "-x"], 2, "-x: No such file"),
            (["info", damaged], 1, "damaged"),
            (["verify", "-a", damaged], 2, "--alone is an option of info"),
        ]
        for args, want, words in cases:
            st, out, err = run([gmsnap] + args, cwd=d)
            expect("gmsnap %s exits %d" % (" ".join(args), want),
                   st == want and err.startswith("gmsnap: ") and words in err,
                   "(exit %d, stderr %r)" % (st, err))
    print("%d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
