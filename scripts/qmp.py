#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A small QMP client for scripts/demo-migrate.sh (QEMU's JSON monitor).

  qmp.py SOCKET COMMAND [JSON-ARGUMENTS]   run one command, print its "return"
  qmp.py SOCKET wait-migration SECONDS [FILE...]
                                           poll query-migrate until it ends;
                                           print "status total_ms downtime_ms
                                           postcopy_requests" (the last -1 if
                                           the migration never ran post-copy),
                                           then the size in bytes of each
                                           FILE when the end was seen (-1 if
                                           missing): where the guests'
                                           consoles stood at the end

Connects to a QMP Unix socket, leaves capabilities negotiation mode, and
runs the command. Exit status 0 on success, 1 on a QMP error or timeout.
"""
import json
import os
import socket
import sys
import time


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)
        self.buf = b""
        self.read()  # the greeting
        self.cmd("qmp_capabilities")

    def read(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def cmd(self, name, args=None):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self.read()
            if "event" in r:
                continue  # asynchronous events are not replies
            if "error" in r:
                raise RuntimeError("%s: %s" % (name, r["error"].get("desc", r["error"])))
            return r.get("return")


def file_size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return -1


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        q = Qmp(sys.argv[1])
        if sys.argv[2] == "wait-migration":
            deadline = time.monotonic() + float(sys.argv[3])
            postcopy = False
            while True:
                r = q.cmd("query-migrate")
                st = r.get("status", "none")
                postcopy = postcopy or st == "postcopy-active"
                if st in ("completed", "failed", "cancelled"):
                    sizes = [file_size(f) for f in sys.argv[4:]]
                    pc = r.get("ram", {}).get("postcopy-requests", 0) if postcopy else -1
                    print(st, r.get("total-time", -1), r.get("downtime", -1), pc, *sizes)
                    return 0 if st == "completed" else 1
                if time.monotonic() > deadline:
                    print("timeout", -1, -1, -1, *[-1 for _ in sys.argv[4:]])
                    return 1
                time.sleep(0.1)
        args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
        print(json.dumps(q.cmd(sys.argv[2], args)))
        return 0
    except (OSError, EOFError, RuntimeError, ValueError) as e:
        print("qmp: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
