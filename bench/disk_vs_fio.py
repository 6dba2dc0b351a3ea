#!/usr/bin/python3
"""disk_vs_fio.py: keeld's disk engine against the device it reads (fio).

    bench/disk-vs-fio.sh [--rounds N] [--seconds S] [--data-mb MB] [--dir DIR]
                         [--restart-keys N] [--crash-cycles N] [--quick]

On one file system (--dir, default build/disk-bench beside the tree) and one
data size (--data-mb, 4096 by default):
1. fio, 4 KiB random reads, ioengine=io_uring, iodepth=32, direct=1, one job,
   against keeld --engine disk --direct (-t 1 unless --threads) serving random GETs of 4 KiB values
   (a keel-mkdata data set of data-mb / 4 KiB keys) to keel-bench with 32
   requests in flight in all (--connections 4 x --pipeline 8, closed loop:
   `--mix get=100`). The sides alternate (the order flips each round), each
   runs --rounds times (5) for --seconds (10); every round is printed, then
   medians and the ratio. Where the file system refuses O_DIRECT both sides
   read buffered, the page cache is dropped before each side (root), and the
   output says so: the data set must then be well beyond the page cache.
   keeld's side also gives its latency percentiles (keel-bench) and its
   system calls per GET: perf stat -e raw_syscalls:sys_enter on keeld's pid
   for the middle of the run, over the GETs keeld counted (stats cmd_get)
   in that window.
2. Restart (0 skips it): a keel-mkdata data set of --restart-keys keys (10 million, values
   of 64-256 B); the time from starting keeld to its first accepted
   connection (the engine opens before the listeners), after a clean stop
   (SIGTERM) and after a SIGKILL that follows 2 s of overwrites; median of 3
   each. Index memory per key: keeld's `stats` figure for the index
   (keel_disk_index_bytes) over
   curr_items, and, beside it, the RSS of keeld holding the keys minus that
   of keeld on an empty data dir, over the keys.
3. Crash safety (0 skips it): tests/integration/disk_crash.py with --crash-cycles (100).

Prints `result disk_vs_fio X x`, `result disk_syscalls_per_get X calls`,
`result disk_restart_10m_s X s` (the slower of clean and SIGKILL; the name
carries the key count: 10m for 10 million), `result disk_index_bytes_per_key
X B`, `result disk_crash_failed_checks N count`. Until keeld has the disk
engine (keeld -h lists --sync) or keel-mkdata is built, only fio's side runs
and keeld's is reported as SKIP with the reason.
"""
import argparse
import json
import mmap
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests", "integration")
sys.path.insert(0, TESTS)
import diskkit  # noqa: E402
import kbkit  # noqa: E402
import servers  # noqa: E402
from vs_memcached import stats, syscalls_during  # noqa: E402

BS = 4096
DEPTH = 32


def args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keeld", required=True)
    ap.add_argument("--keel-bench", required=True)
    ap.add_argument("--keel-mkdata", required=True)
    ap.add_argument("--dir", required=True, help="where the data sets go (one file system)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--data-mb", type=int, default=4096)
    ap.add_argument("--restart-keys", type=int, default=10000000)
    ap.add_argument("--crash-cycles", type=int, default=100)
    ap.add_argument("--connections", type=int, default=4,
                    help="keel-bench connections; each keeps 32 / N requests in flight")
    ap.add_argument("--threads", type=int, default=1,
                    help="keeld -t (default 1: one ring, as fio's one job; with 2 the 32 "
                    "requests in flight split over two rings, half the batch each)")
    ap.add_argument("--keep", action="store_true", help="keep the data sets in --dir")
    ap.add_argument("--quick", action="store_true",
                    help="a try: 2 rounds of 3 s, 256 MB, 200k keys to restart, 5 crash cycles "
                    "(flags given beside it win)")
    if "--quick" in sys.argv:
        ap.set_defaults(rounds=2, seconds=3, data_mb=256, restart_keys=200000, crash_cycles=5)
    a = ap.parse_args()
    if DEPTH % a.connections:
        ap.error("--connections must divide %d" % DEPTH)
    return a


def flush():
    sys.stdout.flush()


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def direct_io_works(d):
    """Whether d's file system takes O_DIRECT reads and writes of 4 KiB."""
    path = os.path.join(d, ".odirect-probe")
    buf = mmap.mmap(-1, BS)  # page-aligned
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
        try:
            os.pwritev(fd, [buf], 0)
            os.preadv(fd, [buf], 0)
        finally:
            os.close(fd)
        return True
    except OSError:
        return False
    finally:
        if os.path.exists(path):
            os.unlink(path)


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


# ---- fio ----

def fio_layout(path, size):
    subprocess.run(["fio", "--name=layout", "--filename=" + path, "--size=%d" % size,
                    "--rw=write", "--bs=1m", "--ioengine=psync", "--end_fsync=1",
                    "--output-format=terse"], check=True, stdout=subprocess.DEVNULL)


def fio_round(path, size, seconds, direct):
    p = subprocess.run(["fio", "--name=randread", "--filename=" + path, "--size=%d" % size,
                        "--rw=randread", "--bs=4k", "--ioengine=io_uring",
                        "--iodepth=%d" % DEPTH, "--direct=%d" % direct, "--numjobs=1",
                        "--runtime=%d" % seconds, "--time_based=1", "--ramp_time=1",
                        "--output-format=json"], capture_output=True, text=True,
                       timeout=seconds + 120)
    if p.returncode != 0:
        raise RuntimeError("fio failed: %s" % p.stderr[-500:])
    r = json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]["read"]
    pct = r["clat_ns"].get("percentile", {})
    return {"iops": r["iops"], "p50": pct.get("50.000000", 0) / 1000,
            "p99": pct.get("99.000000", 0) / 1000, "p999": pct.get("99.900000", 0) / 1000}


# ---- keeld ----

def keeld_argv(a, data, direct, port, sync="none"):
    argv = [a.keeld, "-l", "127.0.0.1", "-p", str(port), "-t", str(a.threads), "-c", "4096",
            "--engine", "disk", "--data-dir", data, "--sync", sync]
    return argv + (["--direct"] if direct else [])


def start_timed(argv, port):
    """Start keeld; (process, seconds until it accepted a connection)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    while True:
        if proc.poll() is not None:
            raise RuntimeError("keeld exited (%d): %s" % (proc.returncode,
                                                          proc.stderr.read().decode()[-500:]))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, time.monotonic() - t0
        except OSError:
            time.sleep(0.002)


def stop(proc, sig=signal.SIGTERM, port=None):
    """Stop keeld and, given its port, wait until that port is closed: a
    SIGKILLed keeld's listening socket outlives the process a moment (its
    io_uring lets go of it later), and a restart timed against it would
    measure nothing (servers.Server.stop does the same)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        rc = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    if port is not None:
        servers.wait_port_closed(port, 30)
    return rc


def mkdata(a, d, keys, lo, hi):
    """keel-mkdata's data set of `keys` keys in d (kept if already there)."""
    mark = d + ".dataset"  # beside the data dir: the engine owns what is in it
    want = "%d %d %d\n" % (keys, lo, hi)
    if os.path.exists(mark) and open(mark).read() == want:
        print("  (the data set in %s is there already: %d keys of %d-%d B)" % (d, keys, lo, hi))
        return
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    t0 = time.monotonic()
    subprocess.run([a.keel_mkdata, "--dir", d, "--keys", str(keys), "--min-size", str(lo),
                    "--max-size", str(hi)], check=True)
    print("  keel-mkdata: %d keys of %d-%d B in %.1f s" % (keys, lo, hi, time.monotonic() - t0))
    with open(mark, "w") as f:
        f.write(want)


def keeld_round(a, data, keys, direct):
    port = servers.free_port()
    proc, _ = start_timed(keeld_argv(a, data, direct, port), port)
    kb = None
    try:
        window = max(1, a.seconds - 2)
        pipeline = DEPTH // a.connections
        kb = subprocess.Popen([a.keel_bench, "--server", "127.0.0.1:%d" % port, "--json",
                               "--mix", "get=100", "--keys", str(keys), "--value-size", str(BS),
                               "--connections", str(a.connections), "--pipeline", str(pipeline),
                               "--warmup", "1", "--duration", str(a.seconds)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)  # warm-up and the first second
        g0 = int(stats(port).get("cmd_get", 0))
        calls = syscalls_during(proc.pid, window)()
        g1 = int(stats(port).get("cmd_get", 0))
        out, err = kb.communicate(timeout=a.seconds + 120)
        rep = json.loads(out)
    finally:
        if kb and kb.poll() is None:
            kb.kill()
            kb.wait()
        stop(proc)
    if rep["misses"] or rep["errors"]["total"]:
        raise RuntimeError("keel-bench: %d misses, %d errors (%s): the data set is not keel-bench's"
                           " keys of 4 KiB" % (rep["misses"], rep["errors"]["total"],
                                               rep["first_error"]))
    lat = rep["latency_us"]
    return {"iops": rep["throughput"], "p50": lat["p50"], "p99": lat["p99"], "p999": lat["p999"],
            "max": lat["max"], "syscalls": calls / (g1 - g0) if calls and g1 > g0 else float("nan")}


def compare(a, base, direct, disk_why):
    size = a.data_mb << 20
    keys = size // BS
    fio_file = os.path.join(base, "fio.dat")
    data = os.path.join(base, "gets")
    print("\n1. 4 KiB random reads, %d in flight, %d MB on %s (%s I/O), %d rounds x %d s; "
          "fio one job, keeld -t %d" % (DEPTH, a.data_mb, base, "direct" if direct else "buffered",
                                        a.rounds, a.seconds, a.threads))
    if not direct:
        print("  O_DIRECT is refused on this file system: both sides read buffered; the page "
              "cache is %s before each side" % ("dropped" if drop_caches() else
                                                 "NOT dropped (not root)"))
        if size < 2 * mem_total():
            print("  WARNING: %d MB is not well beyond the page cache (%d MB of memory): use "
                  "--data-mb %d or more" % (a.data_mb, mem_total() >> 20,
                                             2 * mem_total() >> 20))
    if not os.path.exists(fio_file) or os.path.getsize(fio_file) != size:
        fio_layout(fio_file, size)
    if not disk_why:
        mkdata(a, data, keys, BS, BS)
    res = {"fio": [], "keeld": []}
    for r in range(a.rounds):
        for side in (("fio", "keeld") if r % 2 == 0 else ("keeld", "fio")):
            if side == "keeld" and disk_why:
                continue
            if not direct:
                drop_caches()
            x = (fio_round(fio_file, size, a.seconds, 1 if direct else 0) if side == "fio"
                 else keeld_round(a, data, keys, direct))
            res[side].append(x)
            print("  round %d %-5s %9.0f reads/s  p50 %7.1f us  p99 %7.1f us  p99.9 %8.1f us%s" %
                  (r + 1, side, x["iops"], x["p50"], x["p99"], x["p999"],
                   "  %.3f syscalls/GET" % x["syscalls"] if side == "keeld" else ""))
            flush()
    return res


def index_figure(port):
    st = stats(port)
    items = int(st.get("curr_items", 0))
    names = ["keel_disk_index_bytes"] + sorted(k for k in st if "index" in k and "bytes" in k)
    for n in names:
        if n in st and items:
            return int(st[n]) / items, "stats %s / curr_items (%d)" % (n, items)
    return None, "no STAT names the index's bytes (looked for keel_disk_index_bytes)"


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def restart(a, base, direct):
    keys = a.restart_keys
    data = os.path.join(base, "restart")
    print("\n2. restart with %d keys (values of 64-256 B)" % keys)
    mkdata(a, data, keys, 64, 256)
    port = servers.free_port()
    argv = keeld_argv(a, data, direct, port, sync="batch")
    proc, first = start_timed(argv, port)
    per_key, how = index_figure(port)
    held = rss(proc.pid)
    stop(proc, port=port)
    empty = os.path.join(base, "empty")
    shutil.rmtree(empty, ignore_errors=True)
    os.makedirs(empty)
    p0, _ = start_timed(keeld_argv(a, empty, direct, port), port)
    rss_per_key = (held - rss(p0.pid)) / keys
    stop(p0, port=port)
    print("  first start after keel-mkdata: %.3f s" % first)
    clean, killed = [], []
    for i in range(3):
        proc, t = start_timed(argv, port)
        clean.append(t)
        kbkit.bench(a.keel_bench, port, "--mix", "set=100", "--keys", keys, "--value-size",
                    "64-256", "--connections", 4, "--pipeline", 8, "--duration", 2, timeout=120)
        stop(proc, signal.SIGKILL, port=port)
        proc, t = start_timed(argv, port)
        killed.append(t)
        name = kbkit.key_name(keys // 2)
        hit = servers.talk(port, b"get " + name + b"\r\n", b"END\r\n").startswith(b"VALUE ")
        stop(proc, port=port)
        print("  restart %d: after a clean stop %.3f s, after SIGKILL %.3f s%s" %
              (i + 1, clean[-1], t, "" if hit else "  (WARNING: key %s missing)" % name.decode()))
        flush()
    print("  index bytes per key: %s (%s); RSS with the keys minus RSS empty, per key: %.1f B" %
          ("%.1f" % per_key if per_key is not None else "?", how, rss_per_key))
    return median(clean), median(killed), per_key if per_key is not None else rss_per_key


def crash(a, direct):
    if a.crash_cycles <= 0:
        print("\n3. crash safety: SKIP (--crash-cycles 0)")
        return 0
    print("\n3. crash safety: %d SIGKILL cycles (tests/integration/disk_crash.py)" %
          a.crash_cycles)
    flush()
    argv = ["/usr/bin/python3", os.path.join(TESTS, "disk_crash.py"), a.keeld, a.keel_bench,
            "--cycles", str(a.crash_cycles)] + (["--keeld-arg=--direct"] if direct else [])
    p = subprocess.run(argv, capture_output=True, text=True)
    lines = p.stdout.splitlines()
    for ln in lines:
        if not ln.startswith("PASS cycle"):
            print("  " + ln)
    return sum(1 for ln in lines if ln.startswith("FAIL"))


def key_count_name(n):
    return "%dm" % (n // 1000000) if n % 1000000 == 0 else "%dk" % (n // 1000) \
        if n % 1000 == 0 else str(n)


def main():
    a = args()
    base = os.path.abspath(a.dir)
    os.makedirs(base, exist_ok=True)
    disk_why = diskkit.disk_missing(a.keeld)
    if not disk_why and not os.access(a.keel_mkdata, os.X_OK):
        disk_why = "no keel-mkdata at %s" % a.keel_mkdata
    direct = direct_io_works(base)
    print("disk vs fio: %s, %d cores, %d MB of memory, data in %s" %
          (subprocess.run(["fio", "--version"], capture_output=True, text=True).stdout.strip(),
           os.cpu_count(), mem_total() >> 20, base))
    try:
        res = compare(a, base, direct, disk_why)
        fio_iops = median([x["iops"] for x in res["fio"]])
        print("\n%-28s %12s %12s" % ("median", "fio", "keeld"))
        ke = {q: median([x[q] for x in res["keeld"]]) for q in ("iops", "p50", "p99", "p999",
                                                                "syscalls")}
        fi = {q: median([x[q] for x in res["fio"]]) for q in ("iops", "p50", "p99", "p999")}
        print("%-28s %12.0f %12.0f" % ("reads/s", fio_iops, ke["iops"]))
        for q in ("p50", "p99", "p999"):
            print("%-28s %12.1f %12.1f" % ("latency %s (us)" % q, fi[q], ke[q]))
        if disk_why:
            print("\nSKIP keeld's side (no result lines): %s" % disk_why)
            return 0
        print("%-28s %12s %12.3f" % ("system calls per GET", "", ke["syscalls"]))
        if a.restart_keys > 0:
            clean, killed, per_key = restart(a, base, direct)
        else:
            print("\n2. restart: SKIP (--restart-keys 0)")
        failed = crash(a, direct)
        print()
        print("result disk_vs_fio %.3f x" % (ke["iops"] / fio_iops if fio_iops else float("nan")))
        print("result disk_syscalls_per_get %.3f calls" % ke["syscalls"])
        if a.restart_keys > 0:
            print("result disk_restart_%s_s %.3f s" % (key_count_name(a.restart_keys),
                                                      max(clean, killed)))
            print("result disk_index_bytes_per_key %.1f B" % per_key)
        if a.crash_cycles > 0:
            print("result disk_crash_failed_checks %d count" % failed)
    finally:
        if not a.keep:
            for sub in ("fio.dat", "gets", "gets.dataset", "restart", "restart.dataset", "empty"):
                p = os.path.join(base, sub)
                if os.path.isdir(p):
                    shutil.rmtree(p, ignore_errors=True)
                elif os.path.exists(p):
                    os.unlink(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
