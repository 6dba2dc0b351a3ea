#!/usr/bin/python3
"""metadump.py: `lru_crawler metadump all` in keeld beside memcached.

    metadump.py PATH/TO/keeld        (make bench-metadump)

Both servers (started here on free ports of 127.0.0.1 with -m 1024 and 2
threads, stopped by their pids) hold the same METADUMP_KEYS items (default
1,000,000: 12-byte keys, 100-byte values). They take turns, METADUMP_ROUNDS
rounds each (default 5): a client reads a whole dump as fast as it can,
while a second connection sends one get every millisecond. Every round is
printed, then the medians:
- the dump's rate: lines a second, and the lines it listed (every key once
  when nothing changes meanwhile);
- a get's latency during the dump (p50, p99): memcached dumps from its own
  crawler thread; keeld dumps in the connection's fiber, a part of the
  table at a time with a yield between parts, so a get on the same worker
  waits at most one part.
Prints `result metadump_rate_vs_memcached` (keeld / memcached) and
`result metadump_get_p99_vs_memcached` (keeld / memcached). The load
generator and the servers share the machine's cores.
"""
import os
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "integration"))
import servers  # noqa: E402

KEYS = int(os.environ.get("METADUMP_KEYS", "1000000"))
ROUNDS = int(os.environ.get("METADUMP_ROUNDS", "5"))
PROBE_KEY = b"key:00000001"


def load(port):
    """Store the items, 100,000 a batch with noreply, each batch ended by mn."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        for base in range(0, KEYS, 100000):
            req = b"".join(b"set key:%08d 0 0 100 noreply\r\n%s\r\n" % (i, b"v" * 100)
                           for i in range(base, min(KEYS, base + 100000)))
            s.sendall(req + b"mn\r\n")
            buf = b""
            while not buf.endswith(b"MN\r\n"):
                buf += s.recv(1 << 16)


def dump(port):
    """Read one whole metadump: (seconds, item lines)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"lru_crawler metadump all\r\n")
        t0 = time.monotonic()
        lines, tail = 0, b""
        while not tail.endswith(b"END\r\n"):
            b = s.recv(1 << 20)
            if not b:
                raise RuntimeError("the server closed the dump")
            lines += b.count(b"\n")
            tail = (tail + b)[-8:]
        return time.monotonic() - t0, lines - 1  # END's line is not an item


def probe(port, stop, lat):
    """A get a millisecond until stopped; each one's latency (us) into lat."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        while not stop.is_set():
            t = time.monotonic()
            s.sendall(b"get " + PROBE_KEY + b"\r\n")
            buf = b""
            while not buf.endswith(b"END\r\n"):
                buf += s.recv(4096)
            lat.append((time.monotonic() - t) * 1e6)
            time.sleep(0.001)


def one_round(port):
    stop, lat = threading.Event(), []
    th = threading.Thread(target=probe, args=(port, stop, lat))
    th.start()
    try:
        secs, lines = dump(port)
    finally:
        stop.set()
        th.join()
    lat.sort()
    return secs, lines, statistics.median(lat), lat[int(len(lat) * 0.99)], len(lat)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    res = {}
    with servers.memcached(memory_mb=1024) as m, \
            servers.keeld(sys.argv[1], memory_mb=1024, extra=["--log", "-"]) as k:
        for srv in (m, k):
            load(srv.port)
        print("metadump: %d items in each server, %d rounds, the sides alternating" % (KEYS, ROUNDS))
        print("round server      seconds      lines    lines/s   get p50 us   get p99 us   gets")
        for r in range(ROUNDS):
            sides = (("memcached", m), ("keeld", k))
            for name, srv in sides if r % 2 == 0 else sides[::-1]:
                secs, lines, p50, p99, n = one_round(srv.port)
                res.setdefault(name, []).append((lines / secs, lines, p50, p99))
                print("%-5d %-10s %8.3f %10d %10.0f %12.0f %12.0f %6d" %
                      (r + 1, name, secs, lines, lines / secs, p50, p99, n), flush=True)
    med = {name: [statistics.median(x[i] for x in v) for i in range(4)] for name, v in res.items()}
    for name, (rate, lines, p50, p99) in med.items():
        print("median %-10s %.0f lines/s, %d lines, get p50 %.0f us, p99 %.0f us" %
              (name, rate, lines, p50, p99))
    print("result metadump_keeld_lines_per_s %.0f lines/s" % med["keeld"][0])
    print("result metadump_memcached_lines_per_s %.0f lines/s" % med["memcached"][0])
    print("result metadump_rate_vs_memcached %.2f x" % (med["keeld"][0] / med["memcached"][0]))
    print("result metadump_get_p99_vs_memcached %.2f x" % (med["keeld"][3] / med["memcached"][3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
