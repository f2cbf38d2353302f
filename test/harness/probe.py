# SPDX-License-Identifier: Apache-2.0
"""Small probes for the tests and benchmarks (python3, standard library only), started once per
run so that their own start-up is never timed. Times are CLOCK_MONOTONIC nanoseconds, the clock
Node's process.hrtime uses, so the caller can subtract its own start time.

  probe.py ping          in a network namespace (ip netns exec NS python3 probe.py ping):
                         prints "ready"; then per stdin line "ADDR TIMEOUT_MS" sends an ICMP
                         echo to ADDR every millisecond (send errors such as "network
                         unreachable" are ignored: the route may not exist yet) and prints
                         "ok NS" at the first reply, or "timeout".
  probe.py notify PATH   binds a unix datagram socket at PATH (a NOTIFY_SOCKET for sd_notify),
                         prints "ready", then "NS MESSAGE" per datagram (newlines as spaces).
"""
import os
import select
import socket
import struct
import sys
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def ping():
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.setblocking(False)
    ident = os.getpid() & 0xFFFF
    seq = 0
    print("ready", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 2:
            print("error", flush=True)
            continue
        addr, timeout_ms = parts[0], int(parts[1])
        deadline = time.monotonic() + timeout_ms / 1000
        # drop replies left over from an earlier probe
        try:
            while sock.recv(2048):
                pass
        except (BlockingIOError, OSError):
            pass
        got = None
        while got is None and time.monotonic() < deadline:
            seq = (seq + 1) & 0xFFFF
            hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            pkt = struct.pack("!BBHHH", 8, 0, checksum(hdr + b"nsmbench"), ident, seq) + b"nsmbench"
            try:
                sock.sendto(pkt, (addr, 0))
            except OSError:
                pass
            until = min(deadline, time.monotonic() + 0.001)
            while got is None:
                left = until - time.monotonic()
                if left <= 0:
                    break
                r, _, _ = select.select([sock], [], [], left)
                if not r:
                    break
                try:
                    data, src = sock.recvfrom(2048)
                except OSError:
                    continue
                ihl = (data[0] & 0x0F) * 4
                if len(data) < ihl + 8:
                    continue
                typ, _, _, rid, _ = struct.unpack("!BBHHH", data[ihl : ihl + 8])
                if typ == 0 and rid == ident and src[0] == addr:
                    got = time.monotonic_ns()
        print("ok %d" % got if got is not None else "timeout", flush=True)


def notify(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    sock.bind(path)
    print("ready", flush=True)
    while True:
        data = sock.recv(65536)
        t = time.monotonic_ns()
        print("%d %s" % (t, data.decode("utf-8", "replace").replace("\n", " ")), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["ping"]:
        ping()
    elif sys.argv[1:2] == ["notify"] and len(sys.argv) == 3:
        notify(sys.argv[2])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
