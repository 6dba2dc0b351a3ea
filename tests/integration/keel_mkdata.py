#!/usr/bin/python3
"""keel_mkdata.py: keel-mkdata builds a data set that keeld serves.

    keel_mkdata.py PATH/TO/keel-mkdata PATH/TO/keeld PATH/TO/keel-bench

Cases:
- bad usage (a missing flag, min > max) is exit status 2;
- keel-mkdata writes N keys into a fresh directory and prints its summary
  line (keys, bytes, MB/s);
- keeld --engine disk started on the directory serves every key, named as
  keel-bench names them ("kb" + the index zero-padded to 16 bytes), each
  value "@KEY|..." (cut to its length) of a length within [min, max]; key N
  is missing;
- the same keys pipelined, 100 commands in one write (get, and gets of two
  keys each, the missing key among them): every reply in order (keeld reads
  a run of gets together);
- `stats` gives keel_disk_index_bytes (= hash_bytes), at least 16 bytes a key;
- keel-bench's get-only run over the same key space sees only hits.
Prints "N passed, N failed".
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import servers
from servers import check

KEYS, MIN, MAX = 3000, 10, 700


def get(sock, f, key):
    sock.sendall(b"get %s\r\n" % key)
    line = f.readline()
    if line == b"END\r\n":
        return None
    n = int(line.split()[3])
    value = f.read(n + 2)[:-2]
    f.readline()
    return value


def pipelined(sock, f):
    """Every key once, 100 commands a write; gets alternate with gets of two keys."""
    keys = [b"kb%014d" % k for k in range(KEYS + 1)]  # the last is missing
    cmds, expect, i = [], [], 0
    while i < len(keys):
        if i % 3 == 2 and i + 1 < len(keys):
            cmds.append(b"gets %s %s\r\n" % (keys[i], keys[i + 1]))
            expect.append(keys[i:i + 2])
            i += 2
        else:
            cmds.append(b"get %s\r\n" % keys[i])
            expect.append(keys[i:i + 1])
            i += 1
    for at in range(0, len(cmds), 100):
        sock.sendall(b"".join(cmds[at:at + 100]))
        for want in expect[at:at + 100]:
            got = []
            while True:
                line = f.readline()
                if line == b"END\r\n":
                    break
                if not line.startswith(b"VALUE "):
                    return False
                got.append(line.split()[1])
                f.read(int(line.split()[3]) + 2)
            if got != [k for k in want if k != keys[-1]]:
                return False
    return True


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    mkdata, keeld, bench = sys.argv[1:]
    d = tempfile.mkdtemp(prefix="keel-mkdata-")
    try:
        p = subprocess.run([mkdata, "--dir", d, "--keys", "10"], capture_output=True)
        check("a missing flag is exit status 2", p.returncode == 2, p.stderr)
        p = subprocess.run([mkdata, "--dir", d, "--keys", "10", "--min-size", "9",
                            "--max-size", "8"], capture_output=True)
        check("min above max is exit status 2", p.returncode == 2, p.stderr)
        p = subprocess.run([mkdata, "--dir", d, "--keys", str(KEYS), "--min-size", str(MIN),
                            "--max-size", str(MAX), "--seed", "7"], capture_output=True,
                           timeout=120)
        out = p.stdout.decode()
        check("keel-mkdata succeeds", p.returncode == 0, p.stderr)
        check("its summary names keys, bytes and MB/s",
              ("%d keys" % KEYS) in out and "bytes" in out and "MB/s" in out, out)
        with servers.keeld(keeld, extra=["--engine", "disk", "--data-dir", d]) as s:
            sock = socket.create_connection(("127.0.0.1", s.port))
            f = sock.makefile("rb")
            bad = 0
            for k in range(KEYS):
                key = b"kb%014d" % k
                v = get(sock, f, key)
                head = (b"@" + key + b"|")[:len(v or b"")]
                if v is None or not v.startswith(head) or not MIN <= len(v) <= MAX:
                    bad += 1
            check("keeld serves every key with its value", bad == 0, "%d bad" % bad)
            check("key N is not there", get(sock, f, b"kb%014d" % KEYS) is None)
            check("pipelined gets answer in order", pipelined(sock, f))
            st = servers.talk(s.port, b"stats\r\n", b"END\r\n").decode()
            st = dict(l.split()[1:3] for l in st.splitlines() if l.startswith("STAT "))
            ib = int(st.get("keel_disk_index_bytes", -1))
            check("stats keel_disk_index_bytes is the index (hash_bytes), >= 16 B a key",
                  ib == int(st.get("hash_bytes", -2)) and ib >= 16 * KEYS, st)
            sock.close()
            p = subprocess.run([bench, "--server", "127.0.0.1:%d" % s.port, "--json",
                                "--keys", str(KEYS), "--mix", "get=100", "--duration", "1"],
                               capture_output=True, timeout=60)
            rep = json.loads(p.stdout.decode()) if p.returncode in (0, 1) else {}
            check("keel-bench finds every key it asks for",
                  rep.get("requests", 0) > 0 and rep.get("misses", 1) == 0 and
                  rep.get("errors", {}).get("total", 1) == 0, p.stdout[:300])
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return servers.summary()


if __name__ == "__main__":
    sys.exit(main())
