"""kbkit.py: what keel's tests and benchmarks know of keel-bench.

Running it (bench: --json, the report as a dict), and its documented formats
(keel-bench -h, README "keel-bench"): key names, per-key value sizes, the
bytes of a value, the state file's records. Python twins of
tools/keel-bench/workload.c and state.c, so tests can build the exact values
keel-bench writes and read what it recorded.
"""
import json
import subprocess

M64 = (1 << 64) - 1
GOLD = 0x9E3779B97F4A7C15
VALUE_MAX = 1 << 20


def bench(binary, port, *args, timeout=60):
    """Run keel-bench with --json; (exit status, report dict or None, stderr)."""
    argv = [binary, "--server", "127.0.0.1:%d" % port, "--json"] + [str(a) for a in args]
    p = subprocess.run(argv, capture_output=True, timeout=timeout)
    try:
        rep = json.loads(p.stdout.decode())
    except ValueError:
        rep = None
    return p.returncode, rep, p.stderr.decode()


def splitmix64(x):
    """SplitMix64's first output from state x (key and value sizes)."""
    z = (x + GOLD) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def key_name(i, kmin=16, kmax=16):
    """Key i's name: "kb" and i zero-padded to its length."""
    n = kmin + (splitmix64(i) % (kmax - kmin + 1) if kmax > kmin else 0)
    return b"kb" + str(i).encode().rjust(n - 2, b"0")


def value_len(i, vmin, vmax):
    """Key i's value length for --value-size vmin-vmax (every version)."""
    return vmin + (splitmix64((1 << 32) + i) % (vmax - vmin + 1) if vmax > vmin else 0)


_pattern = None


def pattern():
    """keel-bench's fixed value pattern (workload.c: kb_pattern_init)."""
    global _pattern
    if _pattern is None:
        x, out = 0x6B65656C2D62656E, bytearray(VALUE_MAX + 64)
        for i in range(len(out)):
            x = (x + GOLD) & M64
            z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            out[i] = 97 + (z ^ (z >> 31)) % 26
        _pattern = bytes(out)
    return _pattern


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


def value(k, tag, ver, length):
    """The bytes keel-bench stores as version `ver` of key k in the run `tag`."""
    head = b"@%08x/%08x/%08x|" % (k, tag, ver)
    off = splitmix64(((ver * GOLD) & M64) ^ _rotl(k, 21) ^ _rotl(tag, 42)) % 64
    return head + pattern()[off:off + length - len(head)]


def state_records(path):
    """What a state file says (a torn last line left out): {key: (kind, tag,
    version)} of each key's last acknowledged write (kind "S" a store, "D" a
    delete), the keys that may miss although their last acknowledged write is
    a store (a delete was sent after it: a "d" record), and the run tags in
    order."""
    last, sent_delete, runs = {}, {}, []
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    for line in lines[1:-1]:
        p = line.split()
        if p and p[0] == b"run":
            runs.append(int(p[1], 16))
        elif len(p) == 4:
            k, rec = int(p[2]), (runs.index(int(p[1], 16)), int(p[3]))
            if p[0] == b"d":
                sent_delete[k] = max(sent_delete.get(k, rec), rec)
            else:
                last[k] = (p[0].decode(), int(p[1], 16), int(p[3]), rec)
    may_miss = {k for k, r in last.items() if r[0] == "S" and sent_delete.get(k, (-1,)) > r[3]}
    return {k: r[:3] for k, r in last.items()}, may_miss, runs
