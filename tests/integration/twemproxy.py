#!/usr/bin/python3
"""twemproxy.py: scale-out through twemproxy (Debian nutcracker), not home-made.

    twemproxy.py TARGET      (a path to keeld, or `memcached` to check the test)

Three servers behind one nutcracker with ketama hashing: keys written through
the proxy spread over all three and read back through it; then one server is
killed (SIGKILL, by pid) and, with auto_eject_hosts, the proxy keeps serving
every key from the two that remain. Prints "N passed, N failed".
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

from pymemcache.client.base import Client

import servers

from servers import check, results  # noqa: E402  (the shared tally)


def items(port):
    c = Client(("127.0.0.1", port), connect_timeout=2, timeout=2)
    n = int(c.stats()[b"curr_items"])
    c.close()
    return n


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    backends = [servers.target(sys.argv[1]) for _ in range(3)]
    for b in backends:
        b.start()
    proxy_port, stats_port = servers.free_port(), servers.free_port()
    conf = tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False)
    conf.write("keel:\n  listen: 127.0.0.1:%d\n  hash: md5\n  distribution: ketama\n"
               "  timeout: 1000\n  auto_eject_hosts: true\n  server_retry_timeout: 60000\n"
               "  server_failure_limit: 1\n  servers:\n" % proxy_port)
    for i, b in enumerate(backends):
        conf.write("   - 127.0.0.1:%d:1 s%d\n" % (b.port, i))
    conf.close()
    proxy = servers.Server(["nutcracker", "-c", conf.name, "-s", str(stats_port), "-a",
                            "127.0.0.1", "-o", conf.name + ".log"], proxy_port, "nutcracker")
    try:
        proxy.start()
        c = Client(("127.0.0.1", proxy_port), connect_timeout=2, timeout=2, default_noreply=False)
        keys = ["user:%d" % i for i in range(300)]
        for k in keys:
            c.set(k, k.encode())
        counts = [items(b.port) for b in backends]
        check("keys spread over all three servers", all(n > 30 for n in counts) and
              sum(counts) == len(keys), counts)
        got = c.get_many(keys)
        check("every key read back through the proxy", len(got) == len(keys) and
              all(got[k] == k.encode() for k in keys), len(got))

        backends[1].stop(signal.SIGKILL)
        # the first requests that hash to the dead server fail and eject it
        deadline = time.monotonic() + 10
        ok = False
        while time.monotonic() < deadline and not ok:
            try:
                for k in keys:
                    c.set(k, k.encode())
                ok = c.get_many(keys) == {k: k.encode() for k in keys}
            except Exception:
                c.close()
                time.sleep(0.2)
        check("after one server is killed, the proxy serves every key from the others", ok)
        alive = [items(backends[i].port) for i in (0, 2)]
        check("the survivors hold every key", sum(alive) >= len(keys), alive)
        check("the survivors are still running",
              all(backends[i].proc.poll() is None for i in (0, 2)))
        c.close()
    finally:
        proxy.stop()
        for b in backends:
            b.stop()
        for p in (conf.name, conf.name + ".log"):
            if os.path.exists(p):
                os.unlink(p)
    return servers.summary()


if __name__ == "__main__":
    sys.exit(main())
