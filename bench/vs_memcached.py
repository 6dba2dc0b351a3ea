#!/usr/bin/python3
"""vs_memcached.py: keeld against memcached (Debian's), side by side, in one run.

    bench/vs-memcached.sh [--rounds N] [--seconds S] [--hit-warmup S] [--quick] [--only 3,4]

Both servers run with the same threads (-t 2) and memory on this machine, and
the load generators (keel-bench, memcaslap) run on the same 2 cores: the
figures compare the two servers under identical conditions, they are not what
either does on a machine of its own. Every workload alternates the two
servers (the order flips each round), runs at least 5 rounds each, prints
every round and compares medians:

1. closed-loop throughput, 90% get / 10% set, 100 B values, 100k keys (loaded
   first), 32 connections: once with keel-bench, once with memcaslap;
2. open loop at half of memcached's median maximum from (1): p50, p99, p99.9;
3. resident memory (VmRSS) after loading 1M items of 100 B with -m 1024;
4. hit ratio at -m 64, zipf(0.99) over a key space about four times what fits,
   values of 100-1000 B: the whole key space is stored first (both caches
   full and evicting), then 90/10 get/set at 20,000 req/s, the same request
   count for both (closed loop, the ratio would follow each one's speed),
   measured at steady state (--hit-warmup, default 480 s);
5. system calls per request during (1), from perf (raw_syscalls:sys_enter on
   the server's pid) over the server's own request count.

Each ratio keeld/memcached is printed as `result vs_memcached_<name> <ratio> x`.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import servers  # noqa: E402

THREADS = 2


def start(kind, keeld, memory_mb):
    extra = ["-c", "4096"]
    if kind == "memcached":
        return servers.memcached(extra=extra, threads=THREADS, memory_mb=memory_mb).start()
    return servers.keeld(keeld, extra=extra + ["--log", "-"], threads=THREADS,
                         memory_mb=memory_mb).start()


def stats(port):
    out = {}
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"stats\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            buf += s.recv(65536)
    for line in buf.decode().split("\r\n"):
        p = line.split(" ")
        if len(p) == 3 and p[0] == "STAT":
            out[p[1]] = p[2]
    return out


def keel_bench(kb, port, args):
    p = subprocess.run([kb, "--server", "127.0.0.1:%d" % port, "--json"] + args,
                       capture_output=True, text=True, timeout=600)
    if p.returncode not in (0, 1) or not p.stdout.strip():
        raise RuntimeError("keel-bench failed: %s" % p.stderr[-500:])
    return json.loads(p.stdout)


def load(kb, port, keys, size):
    keel_bench(kb, port, ["--load", "--keys", str(keys), "--value-size", size,
                          "--connections", "8"])


def syscalls_during(pid, seconds):
    """Start perf on pid for `seconds`; returns a function that waits and gives the count."""
    p = subprocess.Popen(["perf", "stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p",
                          str(pid), "--", "sleep", str(seconds)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def finish():
        _, err = p.communicate(timeout=seconds + 30)
        for line in err.splitlines():
            if "raw_syscalls:sys_enter" in line:
                try:
                    return int(line.split(",")[0])
                except ValueError:
                    return None
        return None
    return finish


def requests_done(port):
    st = stats(port)
    return int(st.get("cmd_get", 0)) + int(st.get("cmd_set", 0))


def rounds_of(n):
    """Alternate: memcached first in even rounds, keeld first in odd ones."""
    for r in range(n):
        yield r, (("memcached", "keeld") if r % 2 == 0 else ("keeld", "memcached"))


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def throughput(a, kb):
    """Workload 1 (and 5): closed loop, both generators, syscalls on the server."""
    res = {k: {"keelbench": [], "memcaslap": [], "syscalls": []}
           for k in ("memcached", "keeld")}
    for r, order in rounds_of(a.rounds):
        for kind in order:
            srv = start(kind, a.keeld, 1024)
            try:
                load(kb, srv.port, 100000, "100")
                before = requests_done(srv.port)
                perf = syscalls_during(srv.proc.pid, max(1, a.seconds - 2))
                time.sleep(0.5)
                j = keel_bench(kb, srv.port, ["--connections", "32", "--keys", "100000",
                                               "--value-size", "100", "--mix", "get=90,set=10",
                                               "--duration", str(a.seconds)])
                calls = perf()
                after = requests_done(srv.port)
                # perf saw seconds-2 of the run's seconds (+ load's tail): scale the requests
                window = max(1, a.seconds - 2) / (a.seconds + 0.5)
                per_req = calls / ((after - before) * window) if calls else float("nan")
                res[kind]["keelbench"].append(j["throughput"])
                res[kind]["syscalls"].append(per_req)
                m = subprocess.run(["memcaslap", "-s", "127.0.0.1:%d" % srv.port, "-T", "2",
                                    "-c", "32", "-X", "100", "-w", "3k",
                                    "-t", "%ds" % a.seconds], capture_output=True, text=True,
                                   timeout=a.seconds + 60)
                tps = re.search(r"TPS: (\d+)", m.stdout)
                res[kind]["memcaslap"].append(int(tps.group(1)) if tps else float("nan"))
            finally:
                srv.stop()
            print("  round %d %-9s keel-bench %9.0f req/s  memcaslap %9.0f req/s  "
                  "%.3f syscalls/req" % (r + 1, kind, res[kind]["keelbench"][-1],
                                         res[kind]["memcaslap"][-1], res[kind]["syscalls"][-1]))
            sys.stdout.flush()
    return res


def open_loop(a, kb, rate):
    res = {k: [] for k in ("memcached", "keeld")}
    for r, order in rounds_of(a.rounds):
        for kind in order:
            srv = start(kind, a.keeld, 1024)
            try:
                load(kb, srv.port, 100000, "100")
                j = keel_bench(kb, srv.port, ["--connections", "32", "--keys", "100000",
                                               "--value-size", "100", "--mix", "get=90,set=10",
                                               "--rate", str(int(rate)), "--warmup", "1",
                                               "--duration", str(a.seconds)])
            finally:
                srv.stop()
            lat = j["latency_us"]
            res[kind].append(lat)
            print("  round %d %-9s %7.0f req/s  p50 %7.1f us  p99 %7.1f us  p99.9 %8.1f us" %
                  (r + 1, kind, j["throughput"], lat["p50"], lat["p99"], lat["p999"]))
            sys.stdout.flush()
    return res


def rss(a, kb):
    res = {k: [] for k in ("memcached", "keeld")}
    keys = 100000 if a.quick else 1000000
    for r, order in rounds_of(a.rounds):
        for kind in order:
            srv = start(kind, a.keeld, 1024)
            try:
                load(kb, srv.port, keys, "100")
                time.sleep(0.5)
                res[kind].append(srv.rss_bytes())
                items = stats(srv.port).get("curr_items")
            finally:
                srv.stop()
            print("  round %d %-9s %7.1f MB resident, %s items" %
                  (r + 1, kind, res[kind][-1] / 1e6, items))
            sys.stdout.flush()
    return res


def hit_ratio(a, kb):
    res = {k: [] for k in ("memcached", "keeld")}
    for r, order in rounds_of(a.rounds):
        for kind in order:
            srv = start(kind, a.keeld, 64)
            try:
                # the whole key space is stored first (about four times what
                # fits: both caches are full and evicting), then the same
                # number of requests goes to each, at a fixed rate
                load(kb, srv.port, 450000, "100-1000")
                j = keel_bench(kb, srv.port, ["--connections", "8", "--keys", "450000",
                                               "--value-size", "100-1000", "--dist", "zipf:0.99",
                                               "--mix", "get=90,set=10", "--seed", str(r + 1),
                                               "--rate", "20000", "--warmup", str(a.hit_warmup),
                                               "--duration", str(a.hit_seconds)])
                # whether the cache filled: with no evictions, every miss is a
                # key never stored yet, and the ratio follows the sets done
                st = stats(srv.port)
            finally:
                srv.stop()
            res[kind].append(j["hit_ratio"])
            print("  round %d %-9s hit ratio %.4f (miss %.4f)  %8.0f req/s  %s items, "
                  "%s evictions" % (r + 1, kind, j["hit_ratio"], 1 - j["hit_ratio"],
                                    j["throughput"], st.get("curr_items"), st.get("evictions")))
            sys.stdout.flush()
    return res


def result(name, keel, mc, unit="x"):
    ratio = keel / mc if mc else float("nan")
    print("result vs_memcached_%s %.3f %s" % (name, ratio, unit))
    return ratio


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keeld", required=True)
    ap.add_argument("--keel-bench", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    # workload 4 is measured at steady state: after the load, the miss ratio
    # per 10 s falls for minutes on both sides (the hot keys' sets replace
    # the cold keys the load left; memcached 0.44, 0.34, ... 0.16 by 400 s,
    # 0.15-0.16 from 480 s on; keeld's seg engine flat from about 450 s), so
    # a 10 s warm-up compared two caches still filling with the keys the sets
    # bring, not their policies
    ap.add_argument("--hit-warmup", type=int, default=480,
                    help="workload 4: seconds of requests before measuring (default 480)")
    ap.add_argument("--hit-seconds", type=int, default=60,
                    help="workload 4: seconds measured (default 60)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 round, 3 s, 100k items")
    ap.add_argument("--only", default="1,2,3,4",
                    help="workloads to run, e.g. 3,4 (5 comes with 1; 2 needs 1)")
    a = ap.parse_args()
    only = {int(w) for w in a.only.split(",") if w.strip()}
    if 2 in only and 1 not in only:
        ap.error("workload 2 runs at half of (1)'s throughput: select 1 too")
    if a.quick:
        a.rounds, a.seconds, a.hit_warmup, a.hit_seconds = 1, 3, 3, 3
    kb = a.keel_bench
    print("keeld vs memcached %s: -t %d each, load generator on the same %d cores "
          "(nproc), %d rounds x %d s" % (subprocess.run(["memcached", "-V"], capture_output=True,
                                                        text=True).stdout.strip(), THREADS,
                                         os.cpu_count(), a.rounds, a.seconds))

    t = o = m = h = None
    if 1 in only:
        print("\n1. closed loop, 90/10 get/set, 100 B, 100k keys, 32 connections")
        t = throughput(a, kb)
    if 2 in only:
        print("\n2. open loop at half of memcached's median keel-bench throughput")
        rate = median(t["memcached"]["keelbench"]) / 2
        o = open_loop(a, kb, rate)
    if 3 in only:
        print("\n3. resident memory after loading %s items of 100 B (-m 1024)" %
              ("100k" if a.quick else "1M"))
        m = rss(a, kb)
    if 4 in only:
        print("\n4. hit ratio at -m 64, zipf 0.99, 450k keys of 100-1000 B, %d s after %d s of "
              "warm-up" % (a.hit_seconds, a.hit_warmup))
        h = hit_ratio(a, kb)

    print("\n%-34s %14s %14s %8s" % ("median", "memcached", "keeld", "ratio"))

    def row(label, mc, ke, fmt="%14.1f"):
        print("%-34s %s %s %8.3f" % (label, fmt % mc, fmt % ke, ke / mc if mc else float("nan")))
    if t:
        kb_mc, kb_k = median(t["memcached"]["keelbench"]), median(t["keeld"]["keelbench"])
        ms_mc, ms_k = median(t["memcached"]["memcaslap"]), median(t["keeld"]["memcaslap"])
        row("throughput, keel-bench (req/s)", kb_mc, kb_k)
        row("throughput, memcaslap (req/s)", ms_mc, ms_k)
    if o:
        p = {k: {q: median([x[q] for x in o[k]]) for q in ("p50", "p99", "p999")} for k in o}
        for q in ("p50", "p99", "p999"):
            row("open loop %s (us)" % q, p["memcached"][q], p["keeld"][q])
    if m:
        rss_mc, rss_k = median(m["memcached"]), median(m["keeld"])
        row("resident memory (MB)", rss_mc / 1e6, rss_k / 1e6)
    if h:
        miss_mc, miss_k = 1 - median(h["memcached"]), 1 - median(h["keeld"])
        row("miss ratio", miss_mc, miss_k, "%14.4f")
    if t:
        sc_mc, sc_k = median(t["memcached"]["syscalls"]), median(t["keeld"]["syscalls"])
        row("system calls per request", sc_mc, sc_k, "%14.3f")
    print()
    if t:
        result("tput_keelbench", kb_k, kb_mc)
        result("tput_memcaslap", ms_k, ms_mc)
    if o:
        result("p999", p["keeld"]["p999"], p["memcached"]["p999"])
    if m:
        result("rss", rss_k, rss_mc)
    if h:
        result("missratio", miss_k, miss_mc)
    if t:
        result("syscalls", sc_k, sc_mc)

if __name__ == "__main__":
    main()
