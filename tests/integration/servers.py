"""servers.py: start and stop the servers that keel's integration tests talk to.

Every server listens on a free port of 127.0.0.1 and is stopped by its pid,
never by name (other tests' servers may run at the same time). A test names
the server under test with a command line; the reference is Debian's
memcached (which as root needs `-u root`).
"""
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, seconds=10.0):
    """Wait until something accepts on 127.0.0.1:port; fail if proc died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited with status %s before listening" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on 127.0.0.1:%d after %.0f s" % (port, seconds))


def talk(port, data, until=b"\r\n", seconds=10):
    """Send data on a new connection to 127.0.0.1:port; the reply, read until
    it ends with `until` (or the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as s:
        s.sendall(data)
        buf = b""
        while not buf.endswith(until):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf


def wait_port_closed(port, seconds=10.0):
    """Wait until nothing accepts connections on 127.0.0.1:port (see
    Server.stop for why a stopped server's port may still be open)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            return
        time.sleep(0.02)


class Server:
    """A server process on 127.0.0.1:port; use as a context manager."""

    def __init__(self, argv, port, name, log=None):
        self.argv, self.port, self.name = argv, port, name
        self.log = log if log is not None else tempfile.TemporaryFile()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        wait_port(self.port, self.proc)
        return self

    def output(self):
        """What the server printed (stdout and stderr)."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self, sig=signal.SIGTERM, seconds=10.0):
        """Signal the process by pid and reap it; SIGKILL if it lingers. Then
        wait until its port is closed: a killed process's io_uring releases
        the files its requests hold (a listening socket with its multishot
        accept) after the process is reaped, and until then that socket
        still takes connections, which a restart on the same port would
        mistake for its own."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        wait_port_closed(self.port, seconds)
        return rc

    def rss_bytes(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        rc = self.stop()
        # keeld must stop cleanly: under a sanitizer a report makes it exit
        # non-zero, and that fails the test that ran it
        if self.name == "keeld" and rc not in (0, None, -signal.SIGKILL):
            raise RuntimeError("keeld exited with status %s:\n%s" % (rc, self.output()[-4000:]))


def memcached(port=None, extra=(), threads=2, memory_mb=64):
    """Debian's memcached, the reference."""
    port = port or free_port()
    argv = ["memcached", "-U", "0", "-l", "127.0.0.1", "-p", str(port), "-t", str(threads),
            "-m", str(memory_mb)] + list(extra)
    if os.geteuid() == 0:
        argv += ["-u", "root"]
    return Server(argv, port, "memcached")


def keeld(binary, port=None, extra=(), threads=2, memory_mb=64, log_path=None):
    """keeld from the build tree, logging to a private file; the flags of
    $KEELD_ARGS are added to every command line (ctest runs some tests again
    with the disk engine, or with --listener=handoff)."""
    port = port or free_port()
    argv = [binary, "-l", "127.0.0.1", "-p", str(port), "-t", str(threads), "-m",
            str(memory_mb)] + list(extra) + keeld_env_args()
    if log_path:
        argv += ["--log", log_path]
    return Server(argv, port, "keeld")


def keeld_env_args():
    """keeld's extra flags from $KEELD_ARGS (the disk variants of the tests set
    it); "--data-dir auto" becomes a fresh temporary directory, removed at exit."""
    args = os.environ.get("KEELD_ARGS", "").split()
    for i, a in enumerate(args):
        if a == "auto" and i > 0 and args[i - 1] == "--data-dir":
            d = tempfile.mkdtemp(prefix="keeld-data-")
            atexit.register(shutil.rmtree, d, True)
            args[i] = d
    return args


def target(spec, **kw):
    """A server named on a test's command line: 'memcached', or a path to keeld."""
    if spec == "memcached":
        return memcached(**kw)
    return keeld(spec, **kw)


# ---- the tests' tally: one PASS/FAIL line per check, "N passed, N failed" last

results = []


def check(name, cond, detail=""):
    """Record one check and print its line (with the detail when it failed)."""
    results.append(bool(cond))
    print("%s %s%s" % ("PASS" if cond else "FAIL", name, "" if cond else "  " + str(detail)))
    sys.stdout.flush()


def summary():
    """Print the closing line; the exit status: 0 when every check held."""
    failed = results.count(False)
    print("%d passed, %d failed" % (len(results) - failed, failed))
    return 1 if failed else 0
