#!/usr/bin/python3
"""disk_full.py: keeld's disk engine on a full disk: clear errors, no crash.

    disk_full.py PATH/TO/keeld PATH/TO/keel-bench [--size-mb N] [--keeld-arg ARG ...]
                 [--no-mount]

keeld runs `--engine disk --sync always` with its data dir on a tmpfs of
--size-mb (default 64) mounted for the test (root only), or, where mount is
refused, on the ordinary file system with keeld's RLIMIT_FSIZE set to that
size (SIGXFSZ ignored, so a write past it fails with EFBIG). keel-bench
stores three times what fits, each key once (`--load --verify --state F`,
4 KiB values), then reads every key back. Checks:
- writes fail once the disk is full, each with `SERVER_ERROR out of space`
  (no other error: no lost connection, no wrong or missing value);
- keeld is still running and answers stats; a get of a stored key works;
- every value stored before is read back intact (the load's read pass, and
  `keel-bench --state F --check`);
- keeld stops cleanly on the full disk (SIGTERM: exit 0), starts again on
  it, and every acknowledged write is there; the same after a SIGKILL.
Without the disk engine in keeld it prints SKIP and exits 77; under the
RLIMIT_FSIZE fallback, if no write ever failed (the engine's files stay under
the limit), it says SKIP for that too. Prints "N passed, N failed".
"""
import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile

import diskkit
import kbkit
import servers
from servers import check

VALUE = 4096
OTHER_ERRORS = ("mismatch", "missing", "protocol", "not_stored", "connection", "timeout", "stale")


def args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("keeld")
    ap.add_argument("keel_bench")
    ap.add_argument("--size-mb", type=int, default=64)
    ap.add_argument("--keeld-arg", action="append", default=[])
    ap.add_argument("--no-mount", action="store_true", help="RLIMIT_FSIZE even where mount works")
    return ap.parse_args()


def mount_tmpfs(path, size_mb):
    """Mount a tmpfs of size_mb on path; None when done, else why not."""
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0700" % size_mb, "tmpfs",
                        path], capture_output=True, text=True)
    return None if p.returncode == 0 else (p.stderr.strip() or "exit %d" % p.returncode)


def file_limit(size):
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit: EFBIG, not death
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return limit


def check_state(a, port, state, what):
    rc, rep, err = kbkit.bench(a.keel_bench, port, "--state", state, "--check",
                               "--connections", 4, "--pipeline", 8, timeout=300)
    check("%s: every acknowledged write there and intact (%s values)" %
          (what, rep["verified"] if rep else "?"),
          rc == 0 and rep is not None and rep["errors"]["total"] == 0,
          (rc, rep and rep["errors"], rep and rep["first_error"], err[-300:]))


def run(a, top):
    mnt, state = os.path.join(top, "mnt"), os.path.join(top, "acked")
    os.makedirs(mnt)
    size = a.size_mb << 20
    why = mount_tmpfs(mnt, a.size_mb) if not a.no_mount else "--no-mount"
    mounted, limit = why is None, None
    if mounted:
        print("data dir on a %d MiB tmpfs" % a.size_mb)
    else:
        limit = file_limit(size)
        print("mount refused (%s): keeld's RLIMIT_FSIZE is %d MiB instead" % (why, a.size_mb))
    data = os.path.join(mnt, "data")
    os.makedirs(data)
    try:
        srv = diskkit.keeld(a.keeld, data, sync="always", extra=a.keeld_arg, preexec_fn=limit)
        try:
            srv.start()
        except RuntimeError as e:
            check("keeld starts on an empty %d MiB data dir" % a.size_mb, False,
                  (e, diskkit.tail(srv)))
            return
        try:
            fill(a, srv, state, size, limit)
        finally:
            srv.stop(signal.SIGKILL)
    finally:
        if mounted:
            subprocess.run(["umount", mnt], check=False)


def fill(a, srv, state, size, limit):
    keys = 3 * size // VALUE
    rc, rep, err = kbkit.bench(a.keel_bench, srv.port, "--load", "--verify", "--state", state,
                               "--keys", keys, "--value-size", VALUE, "--connections", 4,
                               "--pipeline", 8, timeout=600)
    if rep is None:
        check("keel-bench fills the disk and reports", False, (rc, err[-500:]))
        return
    e = rep["errors"]
    if limit and e["server_error"] == 0 and rc == 0:
        print("SKIP disk_full: all %d values stored under RLIMIT_FSIZE %d MiB: the engine's "
              "files stay under the limit, so a full disk cannot be simulated without mount" %
              (keys, a.size_mb))
        sys.stdout.flush()
        sys.exit(diskkit.SKIP_CODE)
    last, _, _ = kbkit.state_records(state)
    stored = len(last)
    check("the disk filled: %d of %d stores refused, %d acknowledged" %
          (e["server_error"], keys, stored),
          e["server_error"] > 0 and 0 < stored < keys, (e, stored, rep["first_error"]))
    check("no error but the refused stores (no lost connection, no wrong value)",
          all(e[k] == 0 for k in OTHER_ERRORS), (e, rep["first_error"]))
    check("the reads after the full disk: every stored value back, intact",
          rep["verified"] == stored, (rep["verified"], stored))
    check("keeld still runs", srv.proc.poll() is None, diskkit.tail(srv))
    reply = servers.talk(srv.port, b"set kbfull 0 0 %d\r\n%s\r\n" % (VALUE, b"x" * VALUE))
    check("a store on the full disk: SERVER_ERROR out of space",
          reply == b"SERVER_ERROR out of space\r\n", reply)
    k = min(last)
    reply = servers.talk(srv.port, b"get " + kbkit.key_name(k) + b"\r\n", b"END\r\n")
    check("a get on the full disk is served", reply.startswith(b"VALUE ") and
          reply.endswith(b"END\r\n") and len(reply) > VALUE, reply[:80])
    st = servers.talk(srv.port, b"stats\r\n", b"END\r\n")
    check("stats on the full disk", st.startswith(b"STAT ") and st.endswith(b"END\r\n"), st[:80])
    check_state(a, srv.port, state, "on the full disk")
    rc = srv.stop(signal.SIGTERM, seconds=60)
    check("keeld stops cleanly on the full disk (SIGTERM: exit 0)", rc == 0,
          (rc, diskkit.tail(srv)))
    for how in ("a clean stop", "a SIGKILL"):
        try:
            srv.start()
        except RuntimeError as ex:
            check("keeld starts again on the full disk after %s" % how, False,
                  (ex, diskkit.tail(srv)))
            return
        check_state(a, srv.port, state, "restarted on the full disk after %s" % how)
        if how == "a clean stop":
            srv.stop(signal.SIGKILL)


def main():
    a = args()
    diskkit.skip_without_disk(a.keeld, "disk_full")
    top = tempfile.mkdtemp(prefix="keel-disk-full-")
    try:
        run(a, top)
    finally:
        shutil.rmtree(top, ignore_errors=True)
    return servers.summary()


if __name__ == "__main__":
    sys.exit(main())
