#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gm-vhost-blk, the program, against front ends that stall mid-message.

  check_vhost_blk_stop.py GM_VHOST_BLK

1. A front end sends half a message and stalls: the next front end that
   connects is still served. Two front ends connected at once (a
   migration's source and destination) are both served at once.
2. Another front end stalls mid-message and SIGTERM arrives: the program
   exits within a second (three under user-mode emulation, which starts
   slowly), with status 0, its socket file removed, and says it stopped.
   That front end first handed over, as queue 0's call fd, an eventfd at
   its highest count that it then made blocking, and kicked the queue.
   (The race where the worker writes such an fd is forced in
   test_vhost_blk.c; here the program must end as usual around it.)

Runs the program through GM_EXE_WRAPPER (the cross build's emulator), if set.
"""
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

WRAPPER = os.environ.get("GM_EXE_WRAPPER", "").split()
STOP_LIMIT = 3.0 if WRAPPER else 1.0
GET_FEATURES = 1
SET_OWNER = 3
SET_VRING_KICK = 12
SET_VRING_CALL = 13
VERSION = 1


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def connect(path):
    # The socket file appears at bind(), a moment before listen(): a
    # connect() in between is refused, so try again for a while (under
    # qemu-user on a loaded machine that moment is long).
    deadline = time.monotonic() + 10
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except ConnectionRefusedError:
            s.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def header(request, size):
    return struct.pack("=III", request, VERSION, size)


def recv_exactly(s, n, timeout):
    s.settimeout(timeout)
    buf = b""
    while len(buf) < n:
        try:
            chunk = s.recv(n - len(buf))
        except socket.timeout:
            break
        if not chunk:
            break
        buf += chunk
    return buf


def main():
    prog = sys.argv[1]
    with tempfile.TemporaryDirectory() as d:
        image = os.path.join(d, "disk.img")
        sock = os.path.join(d, "vhost.sock")
        with open(image, "wb") as f:
            f.truncate(1 << 20)
        p = subprocess.Popen(WRAPPER + [prog, "--socket", sock, "--image", image],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True)
        try:
            for _ in range(200):
                if os.path.exists(sock):
                    break
                time.sleep(0.05)
            else:
                fail("gm-vhost-blk did not create its socket")

            # 1. A stalled front end does not keep the next one waiting forever.
            stalled = connect(sock)
            stalled.sendall(header(GET_FEATURES, 0)[:6])
            waiting = connect(sock)
            waiting.sendall(header(GET_FEATURES, 0))
            t0 = time.monotonic()
            reply = recv_exactly(waiting, 12 + 8, 15)
            if len(reply) != 20:
                fail("the front end queued behind a stalled one got no reply")
            print("next front end served after %.1f s (stall timeout 5 s)" % (time.monotonic() - t0))
            stalled.close()
            waiting.close()

            # 1b. Two front ends connected at once (a migration's source and
            # destination QEMU) are both served at once: the second does not
            # wait for the first, idle but connected, to go away.
            first = connect(sock)
            second = connect(sock)
            for s_ in (second, first):
                s_.sendall(header(GET_FEATURES, 0))
                if len(recv_exactly(s_, 12 + 8, 2)) != 20:
                    fail("two front ends connected at once: one got no reply within 2 s")
            first.close()
            second.close()
            print("two front ends connected at once were both served")

            # 2. SIGTERM while a front end is stalled mid-message, with a
            #    saturated blocking call eventfd and a kicked queue.
            stalled = connect(sock)
            stalled.sendall(header(SET_OWNER, 0))
            call = os.eventfd(0, os.EFD_NONBLOCK)
            os.eventfd_write(call, 0xfffffffffffffffe)
            kick = os.eventfd(0)
            for req, fd in ((SET_VRING_CALL, call), (SET_VRING_KICK, kick)):
                stalled.sendmsg([header(req, 8) + struct.pack("=Q", 0)],
                                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])
            os.set_blocking(call, True)
            os.eventfd_write(kick, 1)
            stalled.sendall(header(GET_FEATURES, 0)[:6])
            time.sleep(0.5)
            t0 = time.monotonic()
            p.send_signal(signal.SIGTERM)
            try:
                out, _ = p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                fail("gm-vhost-blk did not exit within 10 s of SIGTERM")
            took = time.monotonic() - t0
            stalled.close()
            os.close(call)
            os.close(kick)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        print(out)
        if took > STOP_LIMIT:
            fail("SIGTERM took %.2f s to end gm-vhost-blk (limit %.0f s)" % (took, STOP_LIMIT))
        if p.returncode != 0:
            fail("exit status %d after SIGTERM" % p.returncode)
        if os.path.exists(sock):
            fail("the socket file is still there")
        if "stopped" not in out:
            fail("the stalled connection did not end as 'stopped'")
        print("stopped %.2f s after SIGTERM, status 0, socket removed" % took)


if __name__ == "__main__":
    main()
