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
