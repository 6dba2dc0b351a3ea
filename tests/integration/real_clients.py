#!/usr/bin/python3
"""real_clients.py: memcached's own clients against a server, unchanged.

    real_clients.py TARGET      (a path to keeld, or `memcached` to check the test)

- Python's pymemcache (Debian python3-pymemcache) runs every classic command,
  with and without noreply, and checks each answer;
- libmemcached's tools (Debian libmemcached-tools): memccapable's ASCII
  protocol suite, memccp / memccat / memcexist / memcrm / memctouch /
  memcflush / memcstat / memcping, as a user would type them;
- memcached's memcached-tool (dump, keys) over `lru_crawler metadump`, and
  the crawler's other words, answered as memcached answers them.
Each check prints PASS or FAIL; the last line is "N passed, N failed".
"""
import os
import subprocess
import sys
import tempfile
import time

from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError, MemcacheIllegalInputError

import servers

from servers import check, results  # noqa: E402  (the shared tally)


class FlagsSerde:
    """Hands values back with their client flags, untouched."""

    def serialize(self, key, value):
        return value, 0

    def deserialize(self, key, value, flags):
        return value, flags



def raw_exchange(port, request):
    """Send one request on a fresh connection; the reply up to END or a line."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        buf = b""
        while not (buf.endswith(b"END\r\n") or (buf.endswith(b"\r\n") and
                                                 not buf.startswith(b"VALUE"))):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf


def pymemcache_suite(port):
    c = Client(("127.0.0.1", port), connect_timeout=5, timeout=5, default_noreply=False)
    c.flush_all()
    check("set/get", c.set("a", b"alpha") and c.get("a") == b"alpha")
    check("get miss", c.get("nope") is None)
    raw = Client(("127.0.0.1", port), connect_timeout=5, timeout=5, serde=FlagsSerde())
    check("set with 32-bit flags", raw.set("f", b"x", flags=0xDEADBEEF) and
          raw.get("f") == (b"x", 0xDEADBEEF), raw.get("f"))
    raw.close()
    check("add existing is refused", c.add("a", b"other") is False and c.get("a") == b"alpha")
    check("add new", c.add("b", b"beta") is True and c.get("b") == b"beta")
    check("replace missing is refused", c.replace("zz", b"1") is False and c.get("zz") is None)
    check("replace existing", c.replace("b", b"BETA") and c.get("b") == b"BETA")
    check("append", c.append("a", b"-end") and c.get("a") == b"alpha-end")
    check("prepend", c.prepend("a", b"pre-") and c.get("a") == b"pre-alpha-end")
    check("append missing", c.append("missing", b"x") is False)
    v, cas = c.gets("a")
    check("gets", v == b"pre-alpha-end" and isinstance(cas, bytes) and int(cas) > 0, cas)
    check("cas with current token", c.cas("a", b"new", cas) is True and c.get("a") == b"new")
    check("cas with stale token", c.cas("a", b"stale", cas) is False and c.get("a") == b"new")
    check("cas on missing key", c.cas("ghost", b"x", b"1") is None)
    many = {"m%d" % i: ("v%d" % i).encode() for i in range(100)}
    check("set_many", c.set_many(many) == [])
    got = c.get_many(list(many) + ["absent"])
    check("get_many of 101 keys", got == many, len(got))
    check("delete", c.delete("b") is True and c.get("b") is None)
    check("delete missing", c.delete("b") is False)
    check("delete_many", c.delete_many(["m1", "m2"]) and c.get("m1") is None)
    c.set("n", b"10")
    check("incr", c.incr("n", 5) == 15)
    check("decr", c.decr("n", 20) == 0)
    check("incr wraps at 2^64", c.set("w", b"18446744073709551615") and c.incr("w", 2) == 1)
    check("incr missing", c.incr("nothere", 1) is None)
    try:
        c.incr("a", 1)
        check("incr non-numeric is an error", False, "no error")
    except MemcacheClientError as e:
        check("incr non-numeric is an error", "non-numeric" in str(e), e)
    check("touch", c.touch("a", 100) is True)
    check("touch missing", c.touch("ghost", 100) is False)
    # pymemcache 3.5 (Debian 12) has no gat: speak it directly
    check("gat", raw_exchange(port, b"gat 200 a\r\n") == b"VALUE a 0 3\r\nnew\r\nEND\r\n")
    check("expire in the past", c.set("gone", b"x", expire=-1) and c.get("gone") is None)
    big = b"v" * (1024 * 1024 - 512)
    check("value near 1 MiB", c.set("big", big) and c.get("big") == big)
    try:
        c.set("toobig", b"v" * (1024 * 1024 + 1))
        check("value over -I is refused", c.get("toobig") is None)
    except Exception as e:  # pymemcache raises on SERVER_ERROR
        check("value over -I is refused", "too large" in str(e).lower(), e)
    check("connection still in sync after refusal", c.set("after", b"1") and c.get("after") == b"1")
    try:
        c.set("bad key", b"x")
        check("key with a space is refused by the client", False)
    except MemcacheIllegalInputError:
        check("key with a space is refused by the client", True)
    check("noreply set", c.set("q", b"quiet", noreply=True) is True and c.get("q") == b"quiet")
    check("noreply delete", c.delete("q", noreply=True) is True and c.get("q") is None)
    st = c.stats()
    for name in (b"pid", b"uptime", b"curr_connections", b"cmd_get", b"get_hits", b"curr_items"):
        check("stats has %s" % name.decode(), name in st)
    check("stats cmd_get counts", st.get(b"cmd_get", 0) >= 10, st.get(b"cmd_get"))
    check("version", c.version())
    check("flush_all", c.flush_all() and c.get("a") is None)
    c.close()


def run(argv, stdin=None):
    p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    return p.returncode, p.stdout.decode(errors="replace")


def libmemcached_suite(port):
    srv = "--servers=127.0.0.1:%d" % port
    rc, out = run(["memccapable", "-h", "127.0.0.1", "-p", str(port), "-a"])
    check("memccapable -a (ASCII protocol suite)", rc == 0 and "All tests passed" in out, out[-400:])
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "greeting.txt")
        with open(path, "w") as f:
            f.write("hello from a file\n")
        rc, out = run(["memccp", srv, path])
        check("memccp stores a file", rc == 0, out)
        rc, out = run(["memccat", srv, "greeting.txt"])
        check("memccat prints it", rc == 0 and out.startswith("hello from a file\n"), repr(out))
    rc, out = run(["memcexist", srv, "greeting.txt"])
    check("memcexist finds it", rc == 0, out)
    rc, out = run(["memctouch", srv, "--expire=100", "greeting.txt"])
    check("memctouch", rc == 0, out)
    rc, out = run(["memcrm", srv, "greeting.txt"])
    check("memcrm removes it", rc == 0, out)
    rc, out = run(["memcexist", srv, "greeting.txt"])
    check("memcexist misses it", rc != 0, out)
    rc, out = run(["memcstat", srv])
    check("memcstat", rc == 0 and "curr_connections" in out, out[-300:])
    rc, out = run(["memcping", srv])
    check("memcping", rc == 0, out)
    rc, out = run(["memcflush", srv])
    check("memcflush", rc == 0, out)


MEMCACHED_TOOL = "/usr/share/memcached/scripts/memcached-tool"


def store_many(port, items):
    """Store (key bytes, flags, exptime, value bytes) with noreply on one
    connection, then wait for a get's END so they are all in."""
    req = b"".join(b"set %s %d %d %d noreply\r\n%s\r\n" % (k, f, e, len(v), v)
                   for k, f, e, v in items)
    return servers.talk(port, req + b"get __sync__\r\n", until=b"END\r\n",
                        seconds=30).endswith(b"END\r\n")


def metadump_lines(port, arg=b"all"):
    """`lru_crawler metadump ARG`: its item lines (as dicts) and its last line."""
    out = raw_exchange(port, b"lru_crawler metadump " + arg + b"\r\n")
    lines = out.split(b"\n")
    items = []
    for ln in lines:
        if ln.startswith(b"key="):
            items.append(dict(f.split(b"=", 1) for f in ln.split(b" ")))
    tail = [ln for ln in lines if ln and not ln.startswith(b"key=")]
    return items, (tail[-1] if tail else b"")


def memcached_tool(port, mode):
    """memcached-tool's output in MODE (bytes), or None if it hung (it reads
    until END, so a server that does not dump leaves it waiting)."""
    try:
        return subprocess.run(["perl", MEMCACHED_TOOL, "127.0.0.1:%d" % port, mode],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              timeout=30).stdout
    except subprocess.TimeoutExpired:
        return None


def memcached_tool_suite(port, is_memcached):
    """memcached-tool's dump and keys (lru_crawler metadump) and the crawler's
    other words, as memcached 1.6.18 answers them."""
    run(["memcflush", "--servers=127.0.0.1:%d" % port])
    stored = [(b"plain", 0, 0, b"one"), (b"b%20c", 7, 0, b"two"), (b"k\xc3\xa9", 1, 0, b"three"),
              (b"ttl", 3, 300, b"four"), (b"gone", 0, -1, b"five")]
    check("metadump: keys stored", store_many(port, stored))
    raw_exchange(port, b"get plain\r\n")
    items, last = metadump_lines(port)
    by_key = {i[b"key"]: i for i in items}
    check("metadump: ends with END", last == b"END\r", last)
    check("metadump: every live key, url-encoded, none expired",
          sorted(by_key) == sorted([b"b%2520c", b"k%C3%A9", b"plain", b"ttl"]), sorted(by_key))
    now = int(time.time())
    check("metadump: exp -1 without expiry, a unix time with one",
          by_key.get(b"plain", {}).get(b"exp") == b"-1" and
          now + 250 < int(by_key.get(b"ttl", {}).get(b"exp", 0)) <= now + 301, items)
    check("metadump: fetch yes once read, no before",
          by_key.get(b"plain", {}).get(b"fetch") == b"yes" and
          by_key.get(b"ttl", {}).get(b"fetch") == b"no", items)
    check("metadump: la, cas, cls and size on every line",
          all(abs(int(i[b"la"]) - now) < 60 and int(i[b"cas"]) > 0 and int(i[b"cls"]) >= 1 and
              int(i[b"size"]) > 0 for i in items), items)
    out = memcached_tool(port, "dump")
    check("memcached-tool dump: ends", out is not None)
    dumped, out = {}, (out or b"").split(b"\r\n")
    for i in range(0, len(out) - 1, 2):
        f = out[i].split(b" ")
        if len(f) == 5 and f[0] == b"add":
            dumped[f[1]] = (int(f[2]), int(f[3]), out[i + 1])
    want = {k: (fl, v) for k, fl, e, v in stored if e >= 0}
    check("memcached-tool dump: every key with its flags and value",
          {k: (d[0], d[2]) for k, d in dumped.items()} == want, dumped)
    check("memcached-tool dump: the TTL key's expiry",
          now + 250 < dumped.get(b"ttl", (0, 0))[1] <= now + 301, dumped.get(b"ttl"))
    many = [(b"many:%06d" % i, 0, 0, b"v%d" % i) for i in range(20000)]
    check("metadump: 20,000 more keys stored", store_many(port, many))
    out = memcached_tool(port, "keys") or b""
    listed = [ln.split(b" ")[0] for ln in out.split(b"\n") if ln.startswith(b"key=")]
    check("memcached-tool keys: 20,004 keys, each once", len(listed) == 20004 and
          len(set(listed)) == 20004 and b"key=many%3A019999" in listed, len(listed))
    for arg, want_reply in ((b"lru_crawler metadump", b"ERROR\r\n"),
                            (b"lru_crawler metadump 99", b"BADCLASS invalid class id\r\n"),
                            (b"lru_crawler metadump all extra", b"ERROR\r\n"),
                            (b"lru_crawler crawl all", b"OK\r\n"),
                            (b"lru_crawler sleep 2000000",
                             b"CLIENT_ERROR sleep must be one second or less\r\n"),
                            (b"lru_crawler tocrawl x", b"CLIENT_ERROR bad command line format\r\n"),
                            (b"lru_crawler bogus", b"ERROR\r\n"),
                            (b"lru_crawler enable",  # it runs already
                             b"ERROR failed to start lru crawler thread\r\n")):
        got = raw_exchange(port, arg + b"\r\n")
        check("%s -> %s" % (arg.decode(), want_reply.decode().strip()), got == want_reply, got)
    if is_memcached:
        print("SKIP lru_crawler disable and enable: memcached stops its crawler thread "
              "asynchronously, so its next replies vary from run to run")
        return
    for arg, want_reply in ((b"lru_crawler disable", b"OK\r\n"),
                            (b"lru_crawler metadump all", b"CLIENT_ERROR lru crawler disabled\r\n"),
                            (b"lru_crawler enable", b"OK\r\n")):
        got = raw_exchange(port, arg + b"\r\n")
        check("%s -> %s" % (arg.decode(), want_reply.decode().strip()), got == want_reply, got)
    items, last = metadump_lines(port, b"1,,2")
    check("metadump 1,,2 after enable: lists again", len(items) == 20004 and last == b"END\r",
          (len(items), last))
    slow_reader_dump(port)


def slow_reader_dump(port):
    """A metadump to a client that does not read holds the one dump (others
    get BUSY) but not the server: other connections are served, and once
    that client goes, dumps work again. (memcached 1.6.18 stops answering
    every connection in this case, so it is not run against it.)"""
    import socket
    many = [(b"slow:%06d" % i, 0, 0, b"v") for i in range(200000)]
    check("slow dump: 200,000 more keys stored", store_many(port, many))
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", port))
    slow.sendall(b"lru_crawler metadump all\r\n")
    time.sleep(0.5)
    got = raw_exchange(port, b"lru_crawler metadump all\r\n")
    check("slow dump: a second metadump gets BUSY",
          got == b"BUSY currently processing crawler request\r\n", got[:80])
    t0 = time.monotonic()
    got = raw_exchange(port, b"get slow:000001\r\n")
    check("slow dump: another connection is served at once",
          got == b"VALUE slow:000001 0 1\r\nv\r\nEND\r\n" and time.monotonic() - t0 < 2, got)
    slow.close()
    deadline = time.monotonic() + 15
    while True:
        items, last = metadump_lines(port)
        if last != b"BUSY currently processing crawler request\r" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    check("slow dump: once its client is gone, a dump lists every key",
          len(items) == 220004 and last == b"END\r", (len(items), last))


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    with servers.target(sys.argv[1]) as s:
        pymemcache_suite(s.port)
        libmemcached_suite(s.port)
        memcached_tool_suite(s.port, sys.argv[1] == "memcached")
        check("server still running", s.proc.poll() is None)
    return servers.summary()


if __name__ == "__main__":
    sys.exit(main())
