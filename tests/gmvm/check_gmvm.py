#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run gmvm in one configuration and check its console output and exit status.

usage: check_gmvm.py GMVM CASE [PAYLOAD]

Each case asserts exact lines of gmvm's report and of the guest's console
(the checksums are fixed by the payload's fill pattern and the ROM, so they
are the same on every machine and in the 32-bit build), and the exit
status. When KVM cannot create a VM here the case prints "skipped: <why>"
and exits 77, which Meson reports as skipped.
"""
import errno
import fcntl
import os
import re
import subprocess
import sys
import tempfile

KVM_CREATE_VM = 0xAE01

# The guest's console in a default run, line by line (the IOPL the guest sees
# depends on the hypervisor: KVM's PVM flavour does not keep IOPL 3).
GUEST_DEFAULT = [
    re.compile(r"guest: hello from the payload: 64-bit mode, CPL 3, IOPL [03]$"),
    "guest:   running at CPL 3: ok",
    "guest:   ROM at 0xffff0000: magic 0x4d4f522d4d564d47, sum 0x4ddc83c2cd5a812f",
    "guest:   ROM contents as built: ok",
    "guest:   gmvm agrees: ok",
    "guest:   wrote 0xe44323405fe501a to ROM at 0xffff0008: reads back 0xf1bbcdcbfa01afe5, gmvm refused 1 write(s)",
    "guest:   ROM unchanged, write refused once: ok",
    "guest:   doorbell over 0x1a00000-0x1a0ffff: device sum 0xe91a66dc11382325, guest sum 0xe91a66dc11382325, status 0, rings 1",
    "guest:   device and guest agree: ok",
    "guest:   filled 0xf00000-0x10fffff (across the 16 MiB region boundary), sum 0x2d00af0f52e2325, gmvm verdict 0",
    "guest:   gmvm agrees: ok",
    "guest:   filled 0x100000000-0x1000fffff (first 1 MiB above 4 GiB), sum 0x2a21dc435d322325, gmvm verdict 0",
    "guest:   gmvm agrees: ok",
    "guest:   filled 0x103f00000-0x103ffffff (last 1 MiB above 4 GiB), sum 0xcae47980f7722325, gmvm verdict 0",
    "guest:   gmvm agrees: ok",
    "guest:   wrote 4 pages of low RAM and 2 pages above 4 GiB",
    "guest:   asked gmvm to plug 0x200000 bytes at 0x140000000: status 0",
    "guest:   region plugged: ok",
    "guest:   filled 0x140000000-0x1401fffff (hot-plugged region), sum 0xfa7b881084422325, gmvm verdict 0",
    "guest:   gmvm agrees: ok",
    "guest:   asked gmvm to unplug it: status 0",
    "guest:   region unplugged: ok",
    "guest:   read after unplug: 0xffffffffffffffff",
    "guest:   unplugged memory reads as unassigned: ok",
    re.compile(r"guest:   overwrote own code at 0x1000[0-9a-f]{2}: gmvm refused 0 write\(s\) \(text writable\)$"),
    "guest:   write to writable text allowed: ok",
    "guest: payload done: 0 failed check(s)",
]

VERDICT = [
    "gmvm:   payload exited with status 0                 ok",
    "gmvm:   payload ran every step in order              ok",
    "gmvm:   gmvm's checks of guest memory                ok",
    "gmvm:   one write to ROM refused                     ok",
    "gmvm:   doorbell rung once, ok                       ok",
    "gmvm:   RAM plugged and unplugged                    ok",
    "gmvm: all checks passed",
]

STEPS = ["gmvm: step %d: %s" % (i + 1, n) for i, n in enumerate(
    ["hello", "rom-read", "rom-write", "doorbell", "fill-boundary", "fill-high",
     "dirty-exact", "hotplug", "protect-text", "done"])]


class Failure(Exception):
    pass


class Skip(Exception):
    pass


def kvm_usable():
    """None if a VM can be created here, else why not."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return "KVM is not usable here: /dev/kvm: %s" % e.strerror
    try:
        vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        os.close(vm)
    except OSError as e:
        return "KVM is not usable here: KVM_CREATE_VM: %s" % e.strerror
    finally:
        os.close(fd)
    return None


# The emulator that runs this build's programs, if any (tests/gmvm/meson.build):
# the 32-bit gmvm under qemu-user where the kernel cannot run it.
WRAPPER = os.environ.get("GM_EXE_WRAPPER", "").split()


def run(gmvm, *args):
    p = subprocess.run(WRAPPER + [gmvm] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120)
    print("$ gmvm " + " ".join(args))
    print(p.stdout, end="")
    print(p.stderr, end="", file=sys.stderr)
    return p.returncode, p.stdout.splitlines(), p.stderr.splitlines()


def matches(want, line):
    return want.match(line) is not None if hasattr(want, "match") else want == line


def expect_status(status, want):
    if status != want:
        raise Failure("exit status %d, expected %d" % (status, want))


def expect_lines(lines, wanted):
    """Each wanted line appears, in this order (other lines may come between)."""
    i = 0
    for want in wanted:
        while i < len(lines) and not matches(want, lines[i]):
            i += 1
        if i == len(lines):
            raise Failure("missing (or out of order): %r" % (getattr(want, "pattern", want),))
        i += 1


def expect_exactly(lines, wanted):
    if len(lines) != len(wanted) or not all(matches(w, l) for w, l in zip(wanted, lines)):
        raise Failure("lines differ:\n  got:  %r\n  want: %r" % (lines, wanted))


def guest_lines(lines):
    return [l for l in lines if l.startswith("guest:")]


def case_default(gmvm, payload):
    status, out, _ = run(gmvm, "--payload", payload)
    expect_status(status, 0)
    expect_exactly(guest_lines(out), GUEST_DEFAULT)
    expect_lines(out, STEPS)
    expect_lines(out, [
        "gmvm: refused a guest write of 8 byte(s) to ROM at 0xffff0008 (1 so far); ROM unchanged",
        "gmvm: doorbell: checksum of 0x1a00000-0x1a0ffff through gm_read: ok 0xe91a66dc11382325",
    ])
    expect_lines(out, VERDICT)


def case_protect_text(gmvm, payload):
    status, out, _ = run(gmvm, "--payload", payload, "--protect-text")
    expect_status(status, 0)
    expect_lines(out, [
        re.compile(r"gmvm: protect-text: 0x100000-0x10[0-9a-f]fff is read-only for the guest$"),
        "gmvm: step 9: protect-text",
        re.compile(r"gmvm: refused a guest write of 1 byte\(s\) to its protected code at 0x1000[0-9a-f]{2} \(1 so far\)$"),
        re.compile(r"guest:   overwrote own code at 0x1000[0-9a-f]{2}: gmvm refused 1 write\(s\) \(text protected\)$"),
        "guest:   write to protected text refused: ok",
        "gmvm:   one write to protected text refused          ok",
        "gmvm: all checks passed",
    ])


def case_dirty_stats(gmvm, payload):
    status, out, _ = run(gmvm, "--payload", payload, "--dirty-stats")
    expect_status(status, 0)
    # The pages the dirty-exact step writes (gmvm-abi.h): scratch pages 0, 3, 4, 9 and
    # pages 1 and 200 of the last MiB of high RAM - exactly these, nothing else.
    expect_lines(out, [
        "gmvm: step 7: dirty-exact",
        "gmvm: dirty: step 7 (dirty-exact) dirtied 6 page(s): 0x1800000-0x1800fff, "
        "0x1803000-0x1804fff, 0x1809000-0x1809fff, 0x103f01000-0x103f01fff, 0x103fc8000-0x103fc8fff",
        "gmvm: dirty: exactly the pages the payload wrote: yes",
        "gmvm: step 8: hotplug",
    ])
    # The fill steps: every page filled is reported (plus the payload's own data and stack).
    expect_lines(out, [
        re.compile(r"gmvm: dirty: step 5 \(fill-boundary\) dirtied 51[0-9] page\(s\): .*0xf00000-0xffffff, 0x1000000-0x10fffff"),
        re.compile(r"gmvm: dirty: step 6 \(fill-high\) dirtied 51[0-9] page\(s\): .*0x100000000-0x1000fffff, 0x103f00000-0x103ffffff$"),
    ])
    expect_lines(out, ["gmvm:   dirty log: exactly the pages written         ok",
                       "gmvm: all checks passed"])


def case_hotplug(gmvm, payload):
    status, out, _ = run(gmvm, "--payload", payload, "--high-ram", "1022M")
    expect_status(status, 0)
    # High RAM ends at 0x13fe00000: the hot-plugged region goes at the next GiB.
    expect_lines(out, [
        "gmvm: step 8: hotplug",
        "gmvm: hotplug: plugged 2048 KiB of RAM at 0x140000000: ok",
        "guest:   asked gmvm to plug 0x200000 bytes at 0x140000000: status 0",
        "gmvm: check: 0x140000000-0x1401fffff: guest sum 0xfa7b881084422325, gmvm sum 0xfa7b881084422325",
        "gmvm: hotplug: unplugged the RAM at 0x140000000: ok",
        "guest:   asked gmvm to unplug it: status 0",
        "gmvm: guest read of 8 byte(s) at 0x140000000: nothing there (reads as all ones)",
        "guest:   read after unplug: 0xffffffffffffffff",
        "gmvm:   RAM plugged and unplugged                    ok",
        "gmvm: all checks passed",
    ])


def case_snapshot(gmvm, payload):
    status, full, _ = run(gmvm, "--payload", payload, "--protect-text")
    expect_status(status, 0)
    after = full[full.index("gmvm: step 5: fill-boundary") + 1:]
    with tempfile.TemporaryDirectory() as d:
        snap = os.path.join(d, "snap")
        status, out, _ = run(gmvm, "--payload", payload, "--protect-text", "--snapshot-at", "5", snap)
        expect_status(status, 0)
        expect_lines(out, ["gmvm: step 5: fill-boundary",
                           "gmvm: snapshot: saved at step 5 (fill-boundary): RAM in %s, "
                           "vCPU and devices in %s.vcpu" % (snap, snap)])
        if guest_lines(out) != guest_lines(full[:full.index("gmvm: step 5: fill-boundary")]):
            raise Failure("the run that saved printed other guest lines than the full run")
        for mode in ("copy", "lazy"):
            status, out, err = run(gmvm, "--restore", snap, "--restore-mode", mode)
            if mode == "lazy" and status == 1 and any(
                    ("(lazy)" in l and ("not permitted" in l or "not implemented" in l))
                    for l in err):
                raise Skip("lazy restore: userfaultfd is not available here (%s); copy "
                           "restore passed" % err[0])
            expect_status(status, 0)
            expect_lines(out, ["gmvm: restore: RAM from %s (%s), vCPU and devices at step 5 "
                               "(fill-boundary)" % (snap, "copied" if mode == "copy" else
                                                    "lazily, on first touch")])
            # The same checksums and verdicts as the uninterrupted run.
            expect_exactly(guest_lines(out), guest_lines(after))
            expect_lines(out, VERDICT)


def make_payload(d, name, data):
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def put64(data, off, v):
    data[off:off + 8] = v.to_bytes(8, "little")


def case_bad_payload(gmvm, payload):
    good = bytearray(open(payload, "rb").read())
    load = int.from_bytes(good[16:24], "little")
    with tempfile.TemporaryDirectory() as d:
        bad_magic = bytearray(good)
        bad_magic[0:8] = b"NOTAPAYL"
        bad_entry = bytearray(good)
        put64(bad_entry, 24, 0x400000)  # outside the code
        # 40 MiB of image: larger than 32 MiB of low RAM.
        huge = bytearray(good) + bytes(40 * 1024 * 1024 - len(good))
        end = load + len(huge)
        put64(huge, 40, end)  # image end
        put64(huge, 48, end)  # bss end
        put64(huge, 56, end)  # stack top
        cases = [
            (make_payload(d, "magic", bad_magic), [],
             "malformed: no GMVMPAYL magic (not a gmvm payload)"),
            (make_payload(d, "entry", bad_entry), [],
             "malformed: entry point outside the payload's code"),
            (make_payload(d, "short", good[:20]), [], "shorter than its header"),
            (make_payload(d, "huge", huge), ["--low-ram", "32M"],
             "needs guest RAM 0x100000-0x28fffff, larger than the RAM there"),
            (os.path.join(d, "missing"), [], "No such file or directory"),
        ]
        for path, extra, why in cases:
            status, out, err = run(gmvm, "--payload", path, *extra)
            expect_status(status, 1)
            if len(err) != 1 or not err[0].startswith("gmvm: payload %s: " % path) or why not in err[0]:
                raise Failure("expected one line 'gmvm: payload %s: ...%s', got %r" % (path, why, err))
            if any(l.startswith("guest:") for l in out):
                raise Failure("the guest ran with a bad payload")


def case_no_kvm(gmvm, payload):
    status, out, err = run(gmvm, "--payload", payload, "--kvm", "/nonexistent/kvm")
    expect_status(status, 3)
    expect_exactly(err, ["gmvm: KVM is not usable here: /nonexistent/kvm: No such file or directory"])


def case_too_big(gmvm, payload):
    """A 32-bit gmvm cannot map 4 GiB of guest RAM: it must say so, not crash."""
    status, out, err = run(gmvm, "--payload", payload, "--high-ram", "4G")
    expect_status(status, 1)
    expect_exactly(err, ["gmvm: cannot map 4096 MiB of guest RAM at 0x100000000 in this 32-bit "
                         "process (Value too large for defined data type): use a smaller "
                         "--low-ram / --high-ram"])


def case_balloon(gmvm, payload):
    status, out, _ = run(gmvm, "--payload", payload, "--numa", "--balloon")
    expect_status(status, 0)
    expect_lines(out, [
        re.compile(r"gmvm: numa: RAM 0x0-0xffffff \(16 MiB\): (bind|interleave) over nodes 0x[0-9a-f]+$"),
        re.compile(r"gmvm: numa: RAM 0x100000000-0x103ffffff \(64 MiB\): (bind|interleave) over nodes 0x[0-9a-f]+$"),
        re.compile(r"gmvm: balloon: high RAM in 32 blocks of 2 MiB; all RAM faulted in by every CPU in [0-9.]+ ms"),
        re.compile(r"ram +0x0000000100000000 0x0000000103ffffff 64 MiB +rwx  anon +numa=\w+:0x[0-9a-f]+ blocks=2 MiB plugged=32/32$"),
        "gmvm: all checks passed",
    ])
    # The guest ran as in a default run; then 62 MiB went back to the host.
    expect_exactly(guest_lines(out), GUEST_DEFAULT)
    drop = [l for l in out if l.startswith("gmvm: balloon: the guest gave back")]
    if len(drop) != 1:
        raise Failure("no balloon step")
    m = re.search(r"31 blocks of 2 MiB above 4 GiB: host RSS (\d+) -> (\d+) MiB \(-(\d+) MiB\)", drop[0])
    if not m or int(m.group(3)) < 60:
        raise Failure("the host got less than 60 MiB back: %r" % drop[0])


CASES = {
    "balloon": case_balloon,
    "default": case_default,
    "protect-text": case_protect_text,
    "dirty-stats": case_dirty_stats,
    "hotplug": case_hotplug,
    "snapshot": case_snapshot,
    "bad-payload": case_bad_payload,
    "no-kvm": case_no_kvm,
    "too-big": case_too_big,
}


def main():
    gmvm, case, payload = sys.argv[1], sys.argv[2], sys.argv[3]
    if case != "no-kvm":
        why = kvm_usable()
        if not why and WRAPPER:
            why = "gmvm runs under %s here, which cannot drive KVM" % os.path.basename(WRAPPER[0])
        if why:
            print("skipped: " + why)
            return 77
    try:
        CASES[case](gmvm, payload)
    except Failure as e:
        print("FAILED: %s: %s" % (case, e))
        return 1
    except Skip as e:
        print("skipped: %s" % e)
        return 77
    print("passed: " + case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
