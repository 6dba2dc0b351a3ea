#!/usr/bin/python3
"""keeld_lifecycle.py: keeld as an operator meets it.

    keeld_lifecycle.py PATH/TO/keeld

- the command line: -h and -V exit 0, a bad flag is one line on stderr and
  exit status 2, a port in use is a clear start-up error and exit status 1;
- both I/O backends serve; stats carry memcached's names;
- -vv traces commands and replies on stderr as memcached -vv does (the same
  lines for the same session); `verbosity` changes it and stats settings;
- `stats conns` lists the listening socket and every connection as memcached
  does (the same checks pass against memcached);
- stats carry keel's per-command latency: each command counted once in its
  class, percentiles in order, `stats reset` starts them again;
- `stats reset` zeroes what memcached's zeroes (evictions, total_items,
  total_connections, ...) and keeps the gauges (curr_items); the same checks
  pass against memcached;
- `stats detail on|off|dump` and -D count by key prefix as memcached does
  (the same checks pass against memcached);
- --admin serves /metrics (Prometheus text) and /health;
- SIGHUP reopens the log and keeps serving;
- SIGTERM drains: a request in flight is answered, the process exits 0;
- `shutdown` is refused without -A and stops the server with it.
Prints "N passed, N failed".
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import servers

from servers import check, results, talk  # noqa: E402  (the shared tally)


def command_line(keeld):
    for flag in ("-h", "-V"):
        p = subprocess.run([keeld, flag], capture_output=True, timeout=10)
        check("keeld %s exits 0" % flag, p.returncode == 0 and p.stdout, p)
    p = subprocess.run([keeld, "-Q"], capture_output=True, timeout=10)
    err = p.stderr.decode()
    check("a bad flag: one line, exit 2", p.returncode == 2 and err.count("\n") == 1 and
          "-h" in err, (p.returncode, err))
    p = subprocess.run([keeld, "-m", "8", "-I", "5m"], capture_output=True, timeout=10)
    check("-I over half of -m is refused", p.returncode == 2, p)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run([keeld, "-p", str(port), "--log", "-"], capture_output=True,
                           timeout=10)
        check("a port in use: exit 1 with the reason", p.returncode == 1 and
              b"cannot listen" in p.stderr, p)
    with socket.socket() as taken:  # a holder that allows sharing: still in use
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        p = subprocess.run([keeld, "-p", str(port), "--log", "-"], capture_output=True,
                           timeout=10)
        check("a port another SO_REUSEPORT server holds: exit 1, not shared",
              p.returncode == 1 and b"cannot listen" in p.stderr, p)


def backends(keeld):
    for be in ("io_uring", "epoll"):
        with servers.keeld(keeld, extra=["--backend", be, "--log", "-"]) as s:
            r = talk(s.port, b"set k 0 0 2\r\nhi\r\nget k\r\n", b"END\r\n")
            check("serves on %s" % be, r == b"STORED\r\nVALUE k 0 2\r\nhi\r\nEND\r\n", r)
            # a client that sends and then closes its side (nc -N) gets its
            # replies and then the end of the connection
            with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
                c.sendall(b"get k\r\n")
                c.shutdown(socket.SHUT_WR)
                got, t0 = b"", time.monotonic()
                try:
                    while True:
                        chunk = c.recv(4096)
                        if not chunk:
                            break
                        got += chunk
                except socket.timeout:
                    got += b"<no end>"
            check("half-closed client: replies, then the end (%s)" % be,
                  got == b"VALUE k 0 2\r\nhi\r\nEND\r\n" and time.monotonic() - t0 < 2, got)
            st = talk(s.port, b"stats settings\r\n", b"END\r\n")
            check("stats settings names the backend (%s)" % be,
                  (b"STAT keel_backend %s\r\n" % be.encode()) in st, st[-300:])
            mode = b"handoff" if "--listener=handoff" in os.environ.get("KEELD_ARGS", "") \
                else b"reuseport"
            check("stats settings names the listener mode (%s)" % be,
                  (b"STAT keel_listener %s\r\n" % mode) in st, st[-300:])


def parse_stats_conns(buf):
    """`stats conns` reply -> {fd: {key: value}}."""
    socks = {}
    for line in buf.decode().split("\r\n"):
        if line.startswith("STAT "):
            name, value = line[5:].split(" ", 1)
            fd, key = name.split(":", 1)
            socks.setdefault(fd, {})[key] = value
    return socks


def stats_conns_of(port, idle):
    """`stats conns` with `idle` clients connected (each sent one command):
    {fd: {key: value}}, the asker's local address, the idle ones' addresses.
    A client reads its reply before the server's worker has necessarily moved
    the connection back to reading (memcached sets conn_read on another
    thread after the write), so the asker asks again, on the same connection,
    until every idle client shows as reading or two seconds have passed."""
    clients = []
    try:
        for _ in range(idle):
            c = socket.create_connection(("127.0.0.1", port), timeout=5)
            c.sendall(b"version\r\n")
            c.recv(100)
            clients.append(c)
        others = ["tcp:127.0.0.1:%d" % c.getsockname()[1] for c in clients]
        with socket.create_connection(("127.0.0.1", port), timeout=5) as asker:
            me = "tcp:127.0.0.1:%d" % asker.getsockname()[1]
            deadline = time.monotonic() + 2
            while True:
                asker.sendall(b"stats conns\r\n")
                buf = b""
                while not buf.endswith(b"END\r\n"):
                    chunk = asker.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                socks = parse_stats_conns(buf)
                states = {v.get("addr"): v.get("state") for v in socks.values()}
                if all(states.get(a) == "conn_read" for a in others) or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.02)
    finally:
        for c in clients:
            c.close()
    return socks, me, others


def stats_conns(keeld):
    for name, start in (("memcached", lambda: servers.memcached()),
                        ("keeld", lambda: servers.keeld(keeld, extra=["--log", "-"]))):
        with start() as s:
            socks, me, others = stats_conns_of(s.port, 3)
            here = "tcp:127.0.0.1:%d" % s.port
            by_addr = {v.get("addr"): v for v in socks.values()}
            listening = [v for v in socks.values() if v.get("state") == "conn_listening"]
            check("stats conns lists the listening socket (%s)" % name,
                  listening and all(v.get("addr") == here and "secs_since_last_cmd" in v
                                    for v in listening), socks)
            asker = by_addr.get(me, {})
            check("stats conns lists the asking connection as parsing (%s)" % name,
                  asker.get("listen_addr") == here and asker.get("state") == "conn_parse_cmd" and
                  asker.get("secs_since_last_cmd") == "0", (me, socks))
            idle = [by_addr.get(a, {}) for a in others]
            check("stats conns lists every idle connection as reading (%s)" % name,
                  all(v.get("listen_addr") == here and v.get("state") == "conn_read" and
                      v.get("secs_since_last_cmd", "").isdigit() for v in idle), (others, socks))
            check("stats conns lists nothing else (%s)" % name,
                  len(socks) == len(listening) + 1 + len(others), socks)


VV_SESSION = (b"set a 0 0 1\r\nx\r\nget a b\r\ndelete zz\r\nbogus\r\nincr a 1\r\n"
              b"set n 0 0 1\r\n5\r\nincr n 2\r\n")


def stats_of(port):
    out = talk(port, b"stats\r\n", b"END\r\n").decode()
    return dict(line.split(" ", 2)[1:] for line in out.splitlines() if line.startswith("STAT "))


def latency_stats(keeld):
    with servers.keeld(keeld, extra=["--log", "-"]) as s:
        batch = b"set a 0 0 1\r\nx\r\n" + b"get a\r\n" * 40 + b"gets a b\r\n" + \
            b"delete a\r\nincr n 1\r\nmn\r\n"
        talk(s.port, batch, b"MN\r\n")
        for _ in range(20):  # one by one too
            talk(s.port, b"get a\r\n", b"END\r\n")
        st = stats_of(s.port)
        counts = {c: int(st.get("keel_latency_%s_count" % c, -1))
                  for c in ("get", "set", "delete", "incr_decr", "touch", "meta")}
        check("latency: each command counted once in its class",
              counts == {"get": 61, "set": 1, "delete": 1, "incr_decr": 1, "touch": 0, "meta": 1},
              counts)
        figs = [float(st.get("keel_latency_get_%s_us" % q, -1))
                for q in ("p50", "p90", "p99", "p999", "max")]
        check("latency: get percentiles in order, above zero",
              0 < figs[0] <= figs[1] <= figs[2] <= figs[3] <= figs[4], figs)
        talk(s.port, b"stats reset\r\n", b"RESET\r\n")
        st = stats_of(s.port)
        check("latency: stats reset starts the counts again",
              st.get("keel_latency_get_count") == "0" and
              st.get("keel_latency_get_max_us") == "0.0", st.get("keel_latency_get_count"))


def stats_reset_of(server):
    """Fill a small cache past its size, then `stats reset`: the counters
    memcached zeroes, and the gauges it keeps."""
    name = server.name
    values = b"v" * 200
    sets = b"".join(b"set reset:%d 0 0 200 noreply\r\n%s\r\n" % (i, values)
                    for i in range(60000))
    talk(server.port, sets + b"mn\r\n", b"MN\r\n", seconds=60)
    talk(server.port, b"get reset:1 reset:59999\r\n", b"END\r\n")
    before = stats_of(server.port)
    check("%s: a cache filled past -m 8 evicts and counts" % name,
          int(before["evictions"]) > 0 and int(before["total_items"]) == 60000 and
          int(before["total_connections"]) >= 3, before.get("evictions"))
    reply = talk(server.port, b"stats reset\r\nstats\r\n", b"END\r\n").decode()
    after = dict(line.split(" ", 2)[1:] for line in reply.splitlines() if line.startswith("STAT "))
    zeroed = ("evictions", "evicted_unfetched", "expired_unfetched", "reclaimed", "total_items",
              "total_connections", "cmd_get", "cmd_set", "get_hits", "get_misses", "bytes_read")
    left = {k: after.get(k) for k in zeroed if after.get(k) != "0"}
    check("%s: stats reset zeroes the counters" % name, not left, left)
    check("%s: stats reset keeps the gauges" % name,
          after["curr_items"] == before["curr_items"] and int(after["curr_connections"]) >= 1,
          (before["curr_items"], after["curr_items"], after["curr_connections"]))


def stats_reset(keeld):
    with servers.memcached(memory_mb=8) as m:
        stats_reset_of(m)
    if "disk" in os.environ.get("KEELD_ARGS", ""):
        print("SKIP stats reset on keeld: the disk engine does not evict")
        return
    with servers.keeld(keeld, memory_mb=8, extra=["--log", "-"]) as k:
        stats_reset_of(k)


DETAIL_SESSION = (b"stats detail on please\r\nmg m:1 v\r\nms m:1 1\r\nx\r\nmd m:1\r\n"
                  b"gets g:1 g:2\r\nset g:1 0 0 1\r\ny\r\ngat 0 g:1\r\ntouch g:1 0\r\n"
                  b"incr g:1 1\r\ncas g:1 0 0 1 999\r\nz\r\nadd g:1 0 0 1\r\nz\r\n"
                  b"append g:1 0 0 1\r\nz\r\ndelete nope:1\r\nget ::x :x x: plain\r\n"
                  b"stats detail off\r\nget g:1\r\nstats detail dump\r\n")
DETAIL_WANT = sorted([b"PREFIX  get 2 hit 0 set 0 del 0", b"PREFIX g get 3 hit 1 set 4 del 0",
                      b"PREFIX nope get 0 hit 0 set 0 del 1",
                      b"PREFIX x get 1 hit 0 set 0 del 0"])


def prefixes_of(port, session):
    out = talk(port, session + b"mn\r\n", b"MN\r\n")
    return sorted(ln for ln in out.split(b"\r\n") if ln.startswith(b"PREFIX"))


def stats_detail_of(server, delimiter=None):
    """Per-prefix stats: which commands count (gets, gat and the set family,
    delete; not meta, touch or incr), the prefix before the first delimiter,
    nothing counted once off (the word after on/off/dump is not read);
    `stats reset` clears them; -D sets the delimiter and turns them on."""
    name, port = server.name, server.port
    if delimiter:
        got = prefixes_of(port, b"set a#1 0 0 1\r\nx\r\nget a#1 b:1\r\nstats detail dump\r\n")
        check("%s -D '#': counting from the start, by '#'" % name,
              got == [b"PREFIX a get 1 hit 1 set 1 del 0"], got)
        st = talk(port, b"stats settings\r\n", b"END\r\n")
        check("%s -D '#': stats settings" % name, b"STAT stat_key_prefix #\r\n" in st and
              b"STAT detail_enabled yes\r\n" in st, st)
        return
    st = talk(port, b"stats settings\r\n", b"END\r\n")
    check("%s: detail off at start" % name, b"STAT stat_key_prefix :\r\n" in st and
          b"STAT detail_enabled no\r\n" in st, st)
    got = prefixes_of(port, DETAIL_SESSION)
    check("%s: stats detail dump counts as memcached" % name, got == DETAIL_WANT, got)
    bad = talk(port, b"stats detail\r\nstats detail foo\r\n", b"dump\r\n", seconds=5)
    check("%s: stats detail's usage line" % name,
          bad == b"CLIENT_ERROR usage: stats detail on|off|dump\r\n" * 2, bad)
    talk(port, b"stats reset\r\n", b"RESET\r\n")
    got = talk(port, b"stats detail dump\r\n", b"END\r\n")
    check("%s: stats reset clears the prefixes" % name, got == b"END\r\n", got)


def stats_detail(keeld):
    with servers.memcached() as m:
        stats_detail_of(m)
    with servers.memcached(extra=["-D", "#"]) as m:
        stats_detail_of(m, "#")
    with servers.keeld(keeld, extra=["--log", "-"]) as k:
        stats_detail_of(k)
    with servers.keeld(keeld, extra=["--log", "-", "-D", "#"]) as k:
        stats_detail_of(k, "#")


def vv_lines(server, port):
    """The session's trace lines, fd numbers left out."""
    talk(port, VV_SESSION + b"mn\r\n", b"MN\r\n")
    time.sleep(0.3)
    out = server.output()
    lines = [re.sub(r"^([<>])\d+ ", r"\1 ", ln) for ln in out.splitlines()
             if re.match(r"^[<>]\d+ ", ln)]
    return [ln for ln in lines
            if "connection" not in ln and "listening" not in ln and ln not in ("< mn", "> MN")]


def verbose_trace(keeld):
    with servers.memcached(extra=["-vv"]) as m:
        want = vv_lines(m, m.port)
    with servers.keeld(keeld, extra=["-vv", "--log", "-"]) as k:
        got = vv_lines(k, k.port)
        check("-vv traces the session as memcached -vv does", got == want and len(want) > 10,
              (got, want))
        r = talk(k.port, b"verbosity 0\r\nstats settings\r\n", b"END\r\n")
        check("verbosity 0 shows in stats settings", b"STAT verbosity 0\r\n" in r, r)
        after = vv_lines(k, k.port)
        check("verbosity 0 stops the trace (the command itself is the last line)",
              after[:len(got)] == got and after[len(got):] == ["< verbosity 0"], after)


def admin_and_signals(keeld):
    admin_port = servers.free_port()
    log = tempfile.NamedTemporaryFile(suffix=".log", delete=False).name
    os.unlink(log)
    with servers.keeld(keeld, extra=["--admin", "127.0.0.1:%d" % admin_port],
                       log_path=log) as s:
        talk(s.port, b"get nothing\r\n", b"END\r\n")
        servers.wait_port(admin_port, s.proc)  # it starts once the workers serve
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin_port,
                                      timeout=5).read().decode()
        check("/metrics has counters in Prometheus form",
              "# TYPE keeld_cmd_get_total counter" in body and "keeld_get_misses_total 1" in body,
              body[:300])
        health = urllib.request.urlopen("http://127.0.0.1:%d/health" % admin_port,
                                        timeout=5).read()
        check("/health", health == b"ok\n", health)
        check("the log file exists", os.path.exists(log))
        for f in (log, log + ".meta"):  # as logrotate would move them away
            os.rename(f, f + ".1")
        s.proc.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        check("SIGHUP reopens the log", os.path.exists(log))
        check("serving after SIGHUP", talk(s.port, b"version\r\n").startswith(b"VERSION "))

        # a request in flight when SIGTERM comes is answered
        slow = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        slow.sendall(b"set big 0 0 10\r\n12345")
        time.sleep(0.2)
        s.proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        slow.sendall(b"67890\r\n")
        reply = slow.recv(100)
        check("SIGTERM lets a request in flight finish", reply == b"STORED\r\n", reply)
        slow.close()
        rc = s.proc.wait(timeout=10)
        check("SIGTERM: exit status 0", rc == 0, rc)
    for f in (log, log + ".meta", log + ".1", log + ".meta.1"):
        if os.path.exists(f):
            os.unlink(f)


def shutdown_command(keeld):
    with servers.keeld(keeld, extra=["--log", "-"]) as s:
        r = talk(s.port, b"shutdown\r\n")
        check("shutdown without -A is refused", r == b"ERROR: shutdown not enabled\r\n", r)
    with servers.keeld(keeld, extra=["-A", "--log", "-"]) as s:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
            c.sendall(b"shutdown graceful\r\n")
            check("shutdown closes the connection", c.recv(100) == b"")
        rc = s.proc.wait(timeout=10)
        check("shutdown with -A stops keeld (exit 0)", rc == 0, rc)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    keeld = sys.argv[1]
    command_line(keeld)
    backends(keeld)
    stats_conns(keeld)
    latency_stats(keeld)
    stats_reset(keeld)
    stats_detail(keeld)
    verbose_trace(keeld)
    admin_and_signals(keeld)
    shutdown_command(keeld)
    return servers.summary()


if __name__ == "__main__":
    sys.exit(main())
