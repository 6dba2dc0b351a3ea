#!/usr/bin/python3
"""real_clients.py: memcached's own clients against a server, unchanged.

    real_clients.py TARGET      (a path to keeld, or `memcached` to check the test)

- Python's pymemcache (Debian python3-pymemcache) runs every classic command,
  with and without noreply, and checks each answer;
- libmemcached's tools (Debian libmemcached-tools): memccapable's ASCII
  protocol suite, memccp / memccat / memcexist / memcrm / memctouch /
  memcflush / memcstat / memcping, as a user would type them.
Each check prints PASS or FAIL; the last line is "N passed, N failed".
"""
import os
import subprocess
import sys
import tempfile

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


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    with servers.target(sys.argv[1]) as s:
        pymemcache_suite(s.port)
        libmemcached_suite(s.port)
        check("server still running", s.proc.poll() is None)
    return servers.summary()


if __name__ == "__main__":
    sys.exit(main())
