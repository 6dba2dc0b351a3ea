"""diskkit.py: keeld's disk engine for the tests and benchmarks that need it.

keeld runs the disk engine with `--engine disk --data-dir DIR [--direct]
[--sync always|batch|none] [--sync-ms N]`. A keeld built without it lists no
`--sync` in `keeld -h` and refuses `--engine disk`: a test then prints SKIP
with that reason and exits with SKIP_CODE (ctest's SKIP_RETURN_CODE), never
passes. Once keeld lists `--sync`, every failure to start is a failure.
"""
import os
import subprocess
import sys
import tempfile

import servers

SKIP_CODE = 77


def disk_missing(keeld):
    """None when keeld has the disk engine, else why not (one line)."""
    h = subprocess.run([keeld, "-h"], capture_output=True, timeout=10)
    if b"--sync" in h.stdout + h.stderr:
        return None
    with tempfile.TemporaryDirectory(prefix="keel-probe-") as d:
        port = servers.free_port()
        p = subprocess.run([keeld, "-l", "127.0.0.1", "-p", str(port), "-t", "1", "--engine",
                            "disk", "--data-dir", d, "--sync", "always"],
                           capture_output=True, timeout=10)
    said = [ln for ln in p.stderr.decode(errors="replace").splitlines()
            if "root without -u" not in ln]
    return "keeld has no disk engine (keeld -h lists no --sync; --engine disk: %s)" % (
        said[-1].strip() if said else "exit %d" % p.returncode)


def skip_without_disk(keeld, test):
    """Exit with SKIP (SKIP_CODE) when keeld has no disk engine."""
    why = disk_missing(keeld)
    if why:
        print("SKIP %s: %s" % (test, why))
        sys.stdout.flush()
        sys.exit(SKIP_CODE)


def skip_without_direct(path, test):
    """Exit with SKIP (SKIP_CODE) when the file system of directory `path`
    refuses O_DIRECT (tmpfs does): keeld --direct could not open its files."""
    probe = os.path.join(path, ".keel-direct-probe-%d" % os.getpid())
    why = None
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o600)
        os.close(fd)
    except OSError as e:
        why = "the file system of %s refuses O_DIRECT (%s)" % (path, e.strerror)
    finally:
        if os.path.exists(probe):
            os.unlink(probe)
    if why:
        print("SKIP %s: %s" % (test, why))
        sys.stdout.flush()
        sys.exit(SKIP_CODE)


class DiskServer(servers.Server):
    """A keeld on the disk engine; preexec_fn (limits) runs in the child."""

    preexec_fn = None

    def start(self, seconds=60.0):
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log, preexec_fn=self.preexec_fn)
        servers.wait_port(self.port, self.proc, seconds)
        return self


def keeld(binary, data_dir, port=None, sync="always", extra=(), threads=2, preexec_fn=None):
    """keeld on the disk engine over data_dir, on a free port (not started)."""
    argv = ["--engine", "disk", "--data-dir", data_dir]
    if sync:
        argv += ["--sync", sync]
    base = servers.keeld(binary, port=port, extra=argv + list(extra), threads=threads)
    srv = DiskServer(base.argv, base.port, "keeld", log=base.log)
    srv.preexec_fn = preexec_fn
    return srv


def tail(srv, n=1500):
    """The end of what the server printed (for a failure's detail)."""
    return srv.output()[-n:]


def data_bytes(path):
    """Bytes of every file under path."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total
