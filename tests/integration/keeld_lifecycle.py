#!/usr/bin/python3
"""keeld_lifecycle.py: keeld as an operator meets it.

    keeld_lifecycle.py PATH/TO/keeld

- the command line: -h and -V exit 0, a bad flag is one line on stderr and
  exit status 2, a port in use is a clear start-up error and exit status 1;
- both I/O backends serve; stats carry memcached's names;
- --admin serves /metrics (Prometheus text) and /health;
- SIGHUP reopens the log and keeps serving;
- SIGTERM drains: a request in flight is answered, the process exits 0;
- `shutdown` is refused without -A and stops the server with it.
Prints "N passed, N failed".
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import servers

from servers import check, results  # noqa: E402  (the shared tally)


def talk(port, data, until=b"\r\n"):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        buf = b""
        while not buf.endswith(until):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf


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
            mode = b"handoff" if "--listener=handoff" in os.environ.get("KEELD_EXTRA", "") \
                else b"reuseport"
            check("stats settings names the listener mode (%s)" % be,
                  (b"STAT keel_listener %s\r\n" % mode) in st, st[-300:])


def admin_and_signals(keeld):
    admin_port = servers.free_port()
    log = tempfile.NamedTemporaryFile(suffix=".log", delete=False).name
    os.unlink(log)
    with servers.keeld(keeld, extra=["--admin", "127.0.0.1:%d" % admin_port],
                       log_path=log) as s:
        talk(s.port, b"get nothing\r\n", b"END\r\n")
        # the admin endpoint starts just after the workers serve: wait for it too
        servers.wait_port(admin_port, s.proc)
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
    admin_and_signals(keeld)
    shutdown_command(keeld)
    return servers.summary()


if __name__ == "__main__":
    sys.exit(main())
