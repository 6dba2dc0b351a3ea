#!/usr/bin/python3
"""disk_crash.py: no acknowledged write is lost when keeld dies by SIGKILL.

    disk_crash.py PATH/TO/keeld PATH/TO/keel-bench [--cycles N] [--seed S]
                  [--keys N] [--value-size A-B] [--dir D] [--keeld-arg ARG ...]

keeld runs the disk engine with `--sync always` (a set is acknowledged once
its record is durable) on one data dir for the whole test. Each cycle starts
keeld on that dir, checks every key against keel-bench's state file
(`keel-bench --state F --check`: each acknowledged write, or a later
attempted one, is there and intact; none corrupt), runs a verified write load
(`--verify --state F`: set, ms, delete and get, 4 connections x 4 in flight)
and SIGKILLs keeld at a random moment of it (sometimes within its first
50 ms). The load must see nothing wrong but lost connections. With
--keeld-arg=--direct it prints SKIP and exits 77 where the data dir's file
system refuses O_DIRECT. After the
last cycle: a check, a clean stop (SIGTERM, exit 0), a restart and a last
check. CI runs 20 cycles (the default), bench/disk-vs-fio.sh 100.

Servers listen on free ports of 127.0.0.1 and are stopped by their pid. The
data dir is a fresh directory under $TMPDIR unless --dir names one (it is
then kept). Without the disk engine in keeld the test prints SKIP and exits
77. Prints a line per check and "N passed, N failed".
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import diskkit
import kbkit
import servers
from servers import check

ALLOWED_IN_LOAD = ("connection", "timeout")  # what a killed server may cause


def args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("keeld")
    ap.add_argument("keel_bench")
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--keys", type=int, default=2000)
    ap.add_argument("--value-size", default="100-1500")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--keeld-arg", action="append", default=[],
                    help="one more keeld flag (e.g. --keeld-arg=--direct); repeat for more")
    return ap.parse_args()


def check_state(a, srv, state, what):
    rc, rep, err = kbkit.bench(a.keel_bench, srv.port, "--state", state, "--check",
                               "--connections", 4, "--pipeline", 8, timeout=300)
    ok = rc == 0 and rep is not None and rep["errors"]["total"] == 0
    check("%s: every acknowledged write there, none corrupt (%s keys held)" %
          (what, rep["hits"] if rep else "?"), ok,
          (rc, rep and rep["errors"], rep and rep["first_error"], err[-400:]))
    return ok


def load(a, port, state, seed):
    argv = [a.keel_bench, "--server", "127.0.0.1:%d" % port, "--json", "--verify", "--state",
            state, "--mix", "set=45,ms=10,delete=10,get=35", "--keys", str(a.keys),
            "--value-size", a.value_size, "--connections", "4", "--pipeline", "4",
            "--duration", "60", "--seed", str(seed)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def cycle(a, i, rng, data, state):
    """One start, check, load, kill; False when the test cannot go on."""
    srv = diskkit.keeld(a.keeld, data, sync="always", extra=a.keeld_arg)
    try:
        srv.start()
    except RuntimeError as e:
        check("cycle %d: keeld starts on the data dir" % i, False, (e, diskkit.tail(srv)))
        return False
    try:
        if i > 0 and not check_state(a, srv, state, "cycle %d, after the kill" % i):
            return False
        writer = load(a, srv.port, state, rng.randrange(1 << 30))
        delay = rng.uniform(0.0, 0.05) if rng.random() < 0.2 else rng.uniform(0.3, 2.0)
        time.sleep(delay)
        srv.proc.send_signal(signal.SIGKILL)
        srv.proc.wait()
        out, err = writer.communicate(timeout=120)
        try:
            rep = json.loads(out.decode())
        except ValueError:
            rep = None
        wrong = {k: v for k, v in (rep["errors"] if rep else {}).items()
                 if k not in ALLOWED_IN_LOAD + ("total",) and v}
        ok = rep is not None and not wrong
        check("cycle %d: load killed after %.0f ms: %d writes acknowledged, nothing wrong "
              "but lost connections" % (i, delay * 1000, rep["state_records"] if rep else -1),
              ok, (writer.returncode, wrong, rep and rep["first_error"], err.decode()[-300:]))
        return ok
    finally:
        srv.stop(signal.SIGKILL)


def main():
    a = args()
    diskkit.skip_without_disk(a.keeld, "disk_crash")
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print("disk_crash: %d cycles, seed %d (--seed %d repeats the kill times)" %
          (a.cycles, seed, seed))
    top = a.dir or tempfile.mkdtemp(prefix="keel-disk-crash-")
    data, state = os.path.join(top, "data"), os.path.join(top, "acked")
    os.makedirs(data, exist_ok=True)
    if "--direct" in a.keeld_arg:
        try:
            diskkit.skip_without_direct(data, "disk_crash --direct")
        except SystemExit:
            if not a.dir:
                shutil.rmtree(top, ignore_errors=True)
            raise
    try:
        for i in range(a.cycles):
            if not cycle(a, i, rng, data, state):
                break
        else:
            last, _, _ = kbkit.state_records(state) if os.path.exists(state) else ({}, 0, 0)
            held = sum(1 for r in last.values() if r[0] == "S")
            check("the cycles acknowledged writes (%d keys' last is a store)" % held, held > 0)
            srv = diskkit.keeld(a.keeld, data, sync="always", extra=a.keeld_arg).start()
            check_state(a, srv, state, "after the last kill")
            rc = srv.stop(signal.SIGTERM, seconds=60)
            check("a clean stop (SIGTERM): exit 0", rc == 0, (rc, diskkit.tail(srv)))
            srv = diskkit.keeld(a.keeld, data, sync="always", extra=a.keeld_arg).start()
            check_state(a, srv, state, "after a clean restart")
            srv.stop(signal.SIGTERM, seconds=60)
            print("  (data dir: %.1f MB)" % (diskkit.data_bytes(data) / 1e6))
    finally:
        if not a.dir:
            shutil.rmtree(top, ignore_errors=True)
    return servers.summary()


if __name__ == "__main__":
    sys.exit(main())
