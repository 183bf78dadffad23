#!/usr/bin/env python3
"""qmp.py - a QMP client for the benchmark's QEMU peer.

    qmp.py SOCKET COMMAND [JSON-ARGUMENTS]   run one command, print its "return" as JSON
    qmp.py SOCKET --wait-migration TIMEOUT_S poll query-migrate until it completes; print its
                                             figures as one JSON line (exit 1 if it fails)

Waits for the socket to appear (QEMU creates it as it starts), at most 30 s.
"""
import json
import os
import socket
import sys
import time


def connect(path):
    deadline = time.monotonic() + 30
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"qmp: no QEMU monitor at {path}")
            time.sleep(0.05)
    f = s.makefile("rw")
    json.loads(f.readline())  # the greeting
    call(f, "qmp_capabilities")
    return f


def call(f, cmd, args=None):
    msg = {"execute": cmd}
    if args:
        msg["arguments"] = args
    f.write(json.dumps(msg) + "\n")
    f.flush()
    while True:
        line = f.readline()
        if not line:
            sys.exit(f"qmp: QEMU closed the monitor during {cmd}")
        r = json.loads(line)
        if "event" in r:
            continue
        if "error" in r:
            sys.exit(f"qmp: {cmd}: {r['error'].get('desc', r['error'])}")
        return r.get("return")


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    f = connect(sys.argv[1])
    if sys.argv[2] == "--wait-migration":
        deadline = time.monotonic() + float(sys.argv[3])
        while time.monotonic() < deadline:
            r = call(f, "query-migrate")
            status = r.get("status")
            if status == "completed":
                ram = r.get("ram", {})
                xb = r.get("xbzrle-cache", {})
                print(json.dumps({
                    "total_time_ms": r.get("total-time"),
                    "downtime_ms": r.get("downtime"),
                    "setup_time_ms": r.get("setup-time"),
                    "transferred_bytes": ram.get("transferred"),
                    "normal_pages": ram.get("normal"),
                    "duplicate_pages": ram.get("duplicate"),
                    "dirty_sync_count": ram.get("dirty-sync-count"),
                    "xbzrle_pages": xb.get("pages"),
                    "xbzrle_bytes": xb.get("bytes"),
                }))
                return
            if status in ("failed", "cancelled"):
                sys.exit(f"qmp: migration {status}: {r.get('error-desc', '')}")
            time.sleep(0.05)
        sys.exit("qmp: migration did not complete in time")
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    print(json.dumps(call(f, sys.argv[2], args)))


if __name__ == "__main__":
    main()
