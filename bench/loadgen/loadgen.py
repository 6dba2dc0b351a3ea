#!/usr/bin/python3
"""loadgen.py: keel-bench beside memcaslap against the same memcached.

    loadgen.py PATH/TO/keel-bench        (make bench-loadgen)

Both generators drive one memcached (started here on a free port of
127.0.0.1, stopped by its pid) closed loop with the same load: 32
connections, one request in flight per connection, 90% get / 10% set,
16-byte keys, 100-byte values, each generator on 1 thread (both tools'
default) and on 2 threads. The four take turns, LOADGEN_ROUNDS rounds each
(default 5) of LOADGEN_SECONDS seconds (default 5); every round is printed,
then the medians:
- throughput: the requests per second each generator drove;
- CPU per request: the generator's own user + system time, read from
  /proc/PID/stat once it has exited but before it is reaped (a zombie keeps
  its times), divided by the requests it completed; each round also shows
  the user and system parts (us/req), where the system part holds the
  loopback TCP work each request costs whoever sends it.
Prints `result loadgen_tput_vs_memcaslap` (keel-bench / memcaslap, target
>= 1.0) and `result loadgen_cpu_per_req_vs_memcaslap` (keel-bench /
memcaslap, target <= 0.5) for 1 thread each, and the same with a
`_2threads` suffix. On a 2-core machine that also runs the server, a second
generator thread competes with memcached's two for the cores: every wait
for a reply is then a switch, which is why both figures are shown. The
machine must be quiet for the figures to mean anything. LOADGEN_BACKEND
(auto, uring, epoll) picks keel-bench's I/O backend.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "integration"))
import servers  # noqa: E402

CONNS, KEYS, VALUE = 32, 10000, 100
THREAD_COUNTS = (1, 2)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def run_timed(argv):
    """Run argv to its end; (stdout, stderr, (user, system) CPU seconds it used, status)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, stdout=out, stderr=err)
        os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
        with open("/proc/%d/stat" % p.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK)  # utime, stime (14, 15)
        p.wait()
        out.seek(0)
        err.seek(0)
        return out.read().decode(), err.read().decode(), cpu, p.returncode


def keel_bench(binary, port, seconds, threads):
    out, err, cpu, rc = run_timed([binary, "--server", "127.0.0.1:%d" % port, "--json",
                                   "--connections", str(CONNS), "--threads", str(threads),
                                   "--pipeline", "1", "--mix", "get=90,set=10", "--keys",
                                   str(KEYS), "--key-size", "16", "--value-size", str(VALUE),
                                   "--duration", str(seconds), "--backend",
                                   os.environ.get("LOADGEN_BACKEND", "auto")])
    rep = json.loads(out)
    if rc != 0:
        raise RuntimeError("keel-bench failed (%d): %s" % (rc, rep["first_error"] or err))
    return rep["requests"], rep["requests"] / seconds, cpu


def memcaslap(port, seconds, cfg, threads):
    out, err, cpu, rc = run_timed(["memcaslap", "-s", "127.0.0.1:%d" % port, "-T",
                                   str(threads), "-c", str(CONNS), "-t", "%ds" % seconds,
                                   "-X", str(VALUE), "-F", cfg])
    m = re.search(r"Run time: ([\d.]+)s Ops: (\d+) TPS: (\d+)", out)
    if rc != 0 or not m:
        raise RuntimeError("memcaslap failed (%d): %s" % (rc, (out + err)[-500:]))
    return int(m.group(2)), float(m.group(2)) / float(m.group(1)), cpu


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    binary = sys.argv[1]
    rounds = int(os.environ.get("LOADGEN_ROUNDS", "5"))
    seconds = int(os.environ.get("LOADGEN_SECONDS", "5"))
    with tempfile.NamedTemporaryFile("w", suffix=".cfg") as cfg, \
            servers.memcached(threads=2, memory_mb=256) as srv:
        # memcaslap's workload: 16-byte keys, 100-byte values, set 10%, get 90%
        cfg.write("key\n16 16 1\nvalue\n%d %d 1\ncmd\n0 0.1\n1 0.9\n" % (VALUE, VALUE))
        cfg.flush()
        subprocess.run([binary, "--server", "127.0.0.1:%d" % srv.port, "--load", "--keys",
                        str(KEYS), "--value-size", str(VALUE), "--pipeline", "16"],
                       check=True, capture_output=True)
        print("loadgen: memcached on 127.0.0.1:%d, %d connections, 90/10 get/set, %d B values, "
              "%d rounds of %d s" % (srv.port, CONNS, VALUE, rounds, seconds))
        print("%-6s %-11s %7s %12s %12s %14s %8s %8s" % ("round", "generator", "threads",
                                                          "requests", "req/s", "cpu us/req",
                                                          "user", "sys"))
        sides = [(name, t) for t in THREAD_COUNTS for name in ("keel-bench", "memcaslap")]
        res = {side: [] for side in sides}
        for r in range(rounds):
            for name, threads in sides:
                if name == "keel-bench":
                    n, tput, cpu = keel_bench(binary, srv.port, seconds, threads)
                else:
                    n, tput, cpu = memcaslap(srv.port, seconds, cfg.name, threads)
                usr, sys_ = (x / n * 1e6 if n else float("inf") for x in cpu)
                res[(name, threads)].append((tput, usr + sys_, usr, sys_))
                print("%-6d %-11s %7d %12d %12.0f %14.3f %8.3f %8.3f"
                      % (r + 1, name, threads, n, tput, usr + sys_, usr, sys_))
                sys.stdout.flush()
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(4)) for k, v in res.items()}
    for side in sides:
        print("median  %-11s %d thread(s): %.0f req/s, %.3f cpu us/req (user %.3f, sys %.3f)"
              % (side + med[side]))
    for threads in THREAD_COUNTS:
        kb, mc = med[("keel-bench", threads)], med[("memcaslap", threads)]
        suffix = "" if threads == 1 else "_%dthreads" % threads
        print("result loadgen_keel_bench_tput%s %.0f req/s" % (suffix, kb[0]))
        print("result loadgen_memcaslap_tput%s %.0f req/s" % (suffix, mc[0]))
        print("result loadgen_tput_vs_memcaslap%s %.3f x" % (suffix, kb[0] / mc[0]))
        print("result loadgen_cpu_per_req_vs_memcaslap%s %.3f x" % (suffix, kb[1] / mc[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
