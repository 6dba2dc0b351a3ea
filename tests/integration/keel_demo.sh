#!/bin/sh
# keel-demo, what `make run` starts: on each backend it must pass its own
# self-check, echo lines and answer "stats" over TCP, dump its fibers on
# SIGHUP, and on SIGTERM stop cleanly: exit 0, the idle connection a client
# keeps open closed by the stop (an idle connection holds no fiber, so no
# fiber is left to cancel), the rest let finish.
# Usage: keel_demo.sh PATH/TO/keel-demo
set -eu
demo=$1
dir=$(mktemp -d)
pid=
trap 'test -n "$pid" && kill -9 $pid 2>/dev/null; rm -rf "$dir"' EXIT

fail() { echo "FAIL: $*"; echo "--- stdout"; cat "$dir/out" || true; echo "--- stderr"; cat "$dir/err" || true; exit 1; }

wait_for() { # file pattern seconds
    i=0
    while ! grep -q "$2" "$1" 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt $(($3 * 10)) ] && return 1
        sleep 0.1
    done
}

for backend in uring epoll; do
    : >"$dir/out"; : >"$dir/err"
    "$demo" --port 0 --backend $backend --grace-ms 300 >"$dir/out" 2>"$dir/err" &
    pid=$!
    wait_for "$dir/out" "serving" 30 || fail "$backend: not serving (self-check?)"
    grep -q "self-check: .* 0 failed" "$dir/out" || fail "$backend: self-check line"
    grep -q "reactor on $(test $backend = uring && echo io_uring || echo epoll)" "$dir/out" ||
        fail "$backend: wrong backend"
    port=$(sed -n 's/.*line echo server on 127.0.0.1:\([0-9]*\).*/\1/p' "$dir/out")

    python3 - "$port" <<'PY' || fail "$backend: echo/stats over TCP"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"hello keel\nstats\n")
buf = b""
while b"END\r\n" not in buf:
    chunk = s.recv(4096)
    if not chunk:
        break
    buf += chunk
assert buf.startswith(b"hello keel\n"), buf
assert b"lines " in buf and b"backend " in buf, buf
s.sendall(b"quit\n")
assert s.recv(10) == b""  # the server closed it
PY

    # an idle connection, kept open across the shutdown; it says when it is
    # served (a fixed sleep was too short on a loaded machine)
    rm -f "$dir/idle"
    python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"x\n"); s.recv(10)
open(sys.argv[2], "w").write("served\n")
time.sleep(10)' "$port" "$dir/idle" &
    idle=$!
    wait_for "$dir/idle" "served" 10 || fail "$backend: idle connection not served"

    kill -HUP $pid
    wait_for "$dir/err" "acceptor" 5 || fail "$backend: no fiber dump on SIGHUP"
    kill -0 $pid || fail "$backend: died on SIGHUP"

    kill -TERM $pid
    rc=0
    i=0
    while kill -0 $pid 2>/dev/null; do
        i=$((i + 1))
        [ $i -gt 50 ] && fail "$backend: still running 5 s after SIGTERM"
        sleep 0.1
    done
    wait $pid || rc=$?
    pid=
    kill $idle 2>/dev/null || true
    [ $rc -eq 0 ] || fail "$backend: exit status $rc after SIGTERM"
    grep -q "Terminated: stopping" "$dir/out" || fail "$backend: SIGTERM not received by its fiber"
    grep -q "stopped: 34 connections, 19203 lines served; 1 closed by the stop .*; 0 fibers cancelled" \
        "$dir/out" || fail "$backend: expected every line served, the idle connection (only) closed"
    echo "PASS $backend"
done
