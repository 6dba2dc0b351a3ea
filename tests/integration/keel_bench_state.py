#!/usr/bin/python3
"""keel_bench_state.py: keel-bench's state file (--state) and --check.

    keel_bench_state.py PATH/TO/keel-bench PATH/TO/keeld

keeld (the seg engine, in memory) is started on a free port of 127.0.0.1 and
stopped by its pid. Cases:
- the flags: --check without --state, --state without --verify, and a file
  that is not a state file are refused (exit 2; the file is left alone);
- two verified write runs (set, ms, delete, get) append their acknowledged
  writes; the file holds a header, one line per run and one per write;
- --check against the same server: every key read once, no error;
- a server tampered with behind the state's back is caught: a key set to an
  older version of its value (stale), to bytes that differ from what the
  value's head names (mismatch), to a run the file does not list (mismatch),
  a key deleted (missing), an acknowledged delete undone (stale); a value
  newer than the acknowledged one (a write the crash left unacknowledged) is
  accepted, and so is a miss after a delete was sent (its `d` record);
- a torn last line (keel-bench killed while writing) is ignored by --check
  and cut by the next run;
- keeld restarted (the seg engine keeps nothing): --check reports exactly the
  keys whose last acknowledged write was a store as missing, exit 1.
Prints "N passed, N failed".
"""
import os
import subprocess
import sys
import tempfile

import kbkit
import servers
from servers import check

KEYS, VSIZE = 3000, (40, 700)


def value_len(k):
    return kbkit.value_len(k, *VSIZE)


def key(k):
    return kbkit.key_name(k)


def store(port, k, data):
    return servers.talk(port, b"set %s 0 0 %d\r\n%s\r\n" % (key(k), len(data), data))


def delete(port, k):
    return servers.talk(port, b"delete %s\r\n" % key(k))


def bench(kb, port, *args):
    return kbkit.bench(kb, port, *args, timeout=120)


def write_run(kb, port, state):
    return bench(kb, port, "--verify", "--state", state, "--mix",
                 "set=40,ms=10,delete=15,get=35", "--keys", KEYS, "--value-size",
                 "%d-%d" % VSIZE, "--connections", 4, "--pipeline", 4, "--duration", 1)


def check_run(kb, port, state):
    return bench(kb, port, "--state", state, "--check", "--connections", 4, "--pipeline", 8)


def flags(kb, tmp):
    for argv, what in ((["--check"], "--check without --state"),
                       (["--state", os.path.join(tmp, "x")], "--state without --verify"),
                       (["--check", "--state", "x", "--load"], "--check with --load")):
        p = subprocess.run([kb] + argv, capture_output=True, timeout=10)
        check("%s: refused, one line, exit 2" % what,
              p.returncode == 2 and p.stderr.decode().count("\n") == 1, p.stderr)
    other = os.path.join(tmp, "notes")
    with open(other, "w") as f:
        f.write("not a state file\n")
    p = subprocess.run([kb, "--verify", "--state", other, "--server", "127.0.0.1:1"],
                       capture_output=True, timeout=10)
    with open(other) as f:
        kept = f.read() == "not a state file\n"
    check("a file that is not a state file: refused (exit 2), left as it was",
          p.returncode == 2 and b"not a keel-bench state file" in p.stderr and kept, p.stderr)


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    kb, keeld = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="kb-state-") as tmp:
        flags(kb, tmp)
        run(kb, keeld, os.path.join(tmp, "state"))
    return servers.summary()


def run(kb, keeld, state):
    port = servers.free_port()
    with servers.keeld(keeld, port=port, threads=2) as srv:
        rc1, rep1, err1 = write_run(kb, port, state)
        rc2, rep2, err2 = write_run(kb, port, state)
        ok = rc1 == 0 and rc2 == 0 and rep1 and rep2 and rep1["errors"]["total"] == 0
        check("two verified write runs with --state: no error", ok, (rc1, rc2, err1[-300:],
                                                                     err2[-300:]))
        with open(state, "rb") as f:
            lines = f.read().split(b"\n")
        recs = rep1["state_records"] + rep2["state_records"] if ok else -1
        check("the file: header, a line per run, a line per acknowledged write",
              lines[0] == b"keel-bench-state 1" and lines[-1] == b"" and
              sum(1 for ln in lines if ln.startswith(b"run ")) == 2 and
              len(lines) - 4 == recs and recs > 1000, (lines[:3], len(lines), recs))
        last, may_miss, runs = kbkit.state_records(state)
        kinds = {r[0] for r in last.values()}
        check("stores and deletes recorded", kinds == {"S", "D"}, kinds)

        rc, rep, err = check_run(kb, port, state)
        check("--check against the same server: every key read, no error",
              rc == 0 and rep and rep["errors"]["total"] == 0 and rep["mode"] == "check" and
              rep["hits"] + rep["misses"] == KEYS and rep["verified"] == rep["hits"] > 0,
              (rc, rep, err[-300:]))

        stored = sorted(k for k, r in last.items() if r[0] == "S" and r[2] > 2 and
                        k not in may_miss)
        deleted = sorted(k for k, r in last.items() if r[0] == "D")
        ks, kc, ku, kd, kn, kz = stored[:6]
        _, tag, ver = last[ks]
        store(port, ks, kbkit.value(ks, tag, ver - 1, value_len(ks)))
        bad = bytearray(kbkit.value(kc, last[kc][1], last[kc][2], value_len(kc)))
        bad[-3] ^= 1
        store(port, kc, bytes(bad))
        unknown = 0xDEADBEEF if 0xDEADBEEF not in runs else 0xDEADBEEE
        store(port, ku, kbkit.value(ku, unknown, 7, value_len(ku)))
        delete(port, kd)
        _, tag, ver = last[kn]
        # a later write, whose acknowledgement a crash could have swallowed
        store(port, kn, kbkit.value(kn, tag, ver + 5, value_len(kn)))
        kx = deleted[0]
        _, tag, ver = last[kx]
        store(port, kx, kbkit.value(kx, tag, ver - 1, value_len(kx)))
        rc, rep, err = check_run(kb, port, state)
        e = rep["errors"] if rep else {}
        check("tampered keys caught: 2 stale, 2 mismatch, 1 missing, nothing else, exit 1",
              rc == 1 and e.get("stale") == 2 and e.get("mismatch") == 2 and
              e.get("missing") == 1 and e.get("total") == 5, (rc, e, err[-300:]))
        # put the tampered keys back as they were acknowledged
        for k in (ks, kc, ku, kd):
            store(port, k, kbkit.value(k, last[k][1], last[k][2], value_len(k)))
        delete(port, kx)
        rc, rep, err = check_run(kb, port, state)
        check("a value newer than the acknowledged one is accepted (the rest restored)",
              rc == 0 and rep and rep["errors"]["total"] == 0, (rc, rep and rep["errors"]))
        # a delete sent after the acknowledged store (whose reply a crash swallowed)
        with open(state, "ab") as f:
            f.write(b"d %08x %d %d\n" % (last[kz][1], kz, last[kz][2] + 1))
        delete(port, kz)
        rc, rep, err = check_run(kb, port, state)
        check("a miss after a delete was sent (a d record) is accepted",
              rc == 0 and rep and rep["errors"]["total"] == 0, (rc, rep and rep["errors"]))

        with open(state, "ab") as f:
            f.write(b"S %08x 12" % runs[-1])
        rc, rep, err = check_run(kb, port, state)
        check("a torn last line is ignored", rc == 0 and rep and rep["errors"]["total"] == 0,
              (rc, err[-300:]))
        rc3, rep3, err3 = write_run(kb, port, state)
        with open(state, "rb") as f:
            text = f.read()
        check("the next run cuts the torn line and appends after it",
              rc3 == 0 and b"12run " not in text and text.count(b"\nrun ") == 3,
              (rc3, err3[-300:]))
        srv.stop()
        srv.start()  # the seg engine forgets everything
        last, may_miss, _ = kbkit.state_records(state)
        want = sum(1 for k, r in last.items() if r[0] == "S" and k not in may_miss)
        rc, rep, err = check_run(kb, port, state)
        e = rep["errors"] if rep else {}
        check("after keeld's restart: every acknowledged store reported missing (%d), exit 1"
              % want, rc == 1 and e.get("missing") == want == e.get("total") and want > 100,
              (rc, e, want))
        print("  (%s)" % (rep["first_error"] if rep else err.strip()))


if __name__ == "__main__":
    sys.exit(main())
