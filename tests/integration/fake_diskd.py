#!/usr/bin/python3
"""fake_diskd.py: a stand-in for keeld's disk engine, to test the tests.

    fake_diskd.py -l 127.0.0.1 -p PORT --engine disk --data-dir DIR
                  [--sync always|batch|none] [--lossy] [other keeld flags, ignored]
    fake_diskd.py [mkdata] --dir DIR --keys N --min-size A --max-size B

A small persistent memcached-protocol server (get, set, ms, mg, delete,
stats, version): every write is appended to DIR/log as a framed record
before it is acknowledged, and the log is replayed at start-up (a torn last
record is cut off). `--sync always` fdatasyncs each record before the reply.
A write the file system refuses (ENOSPC, EFBIG) is cut back off the log and
answered `SERVER_ERROR out of space`; reads go on. `--lossy` is the broken
server the crash test must catch: it acknowledges writes it keeps in its own
memory and writes them out only every 2 s, so a SIGKILL loses acknowledged
writes. disk_crash.py and disk_full.py run against it in the
disk_*_fake ctests; they run against keeld itself once keeld has the disk
engine. `mkdata` writes a data set as keel-mkdata does (keel-bench's keys,
each of its per-key size), so bench/disk_vs_fio.py can be tried with it.
"""
import errno
import os
import signal
import socket
import struct
import sys
import threading
import time

HDR = struct.Struct("<cII")  # kind (S or D), key length, value length


class Store:
    def __init__(self, data_dir, sync, lossy):
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, "log")
        self.sync, self.lossy = sync, lossy
        self.items, self.lock, self.pending, self.gets = {}, threading.Lock(), [], 0
        self.replay()
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if lossy:
            threading.Thread(target=self.flusher, daemon=True).start()

    def replay(self):
        good = 0
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        off = 0
        while off + HDR.size <= len(data):
            kind, kl, vl = HDR.unpack_from(data, off)
            end = off + HDR.size + kl + vl
            if kind not in (b"S", b"D") or end > len(data):
                break
            key = data[off + HDR.size:off + HDR.size + kl]
            if kind == b"S":
                self.items[key] = data[off + HDR.size + kl:end]
            else:
                self.items.pop(key, None)
            off = good = end
        if good < len(data):
            os.truncate(self.path, good)

    def flusher(self):
        while True:
            time.sleep(2)
            with self.lock:
                batch, self.pending = self.pending, []
            if batch:
                os.write(self.fd, b"".join(batch))

    def write(self, kind, key, value=b""):
        """Append a record; None when durable as asked, else an error reply."""
        rec = HDR.pack(kind, len(key), len(value)) + key + value
        with self.lock:
            if self.lossy:
                self.pending.append(rec)
            else:
                before = os.lseek(self.fd, 0, os.SEEK_END)
                try:
                    n = os.write(self.fd, rec)
                    if n != len(rec):
                        raise OSError(errno.ENOSPC, "short write")
                    if self.sync == "always":
                        os.fdatasync(self.fd)
                except OSError as e:
                    os.ftruncate(self.fd, before)
                    if e.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                        return b"SERVER_ERROR out of space\r\n"
                    return b"SERVER_ERROR " + str(e).encode() + b"\r\n"
            if kind == b"S":
                self.items[key] = value
            else:
                self.items.pop(key, None)
        return None


def one(buf, store):
    """Answer the first command in buf: (reply, bytes used), or None if incomplete."""
    end = buf.find(b"\r\n")
    if end < 0:
        return None
    p, used = buf[:end].split(), end + 2
    if not p:
        return b"ERROR\r\n", used
    if p[0] in (b"set", b"ms"):
        n = int(p[4] if p[0] == b"set" else p[2])
        if len(buf) < used + n + 2:
            return None
        err = store.write(b"S", p[1], buf[used:used + n])
        return err or (b"STORED\r\n" if p[0] == b"set" else b"HD\r\n"), used + n + 2
    if p[0] == b"get":
        store.gets += len(p) - 1
        out = []
        for k in p[1:]:
            v = store.items.get(k)
            if v is not None:
                out.append(b"VALUE %s 0 %d\r\n%s\r\n" % (k, len(v), v))
        return b"".join(out) + b"END\r\n", used
    if p[0] == b"mg":
        v = store.items.get(p[1])
        return (b"EN\r\n" if v is None else b"VA %d\r\n%s\r\n" % (len(v), v)), used
    if p[0] == b"delete":
        there = p[1] in store.items
        err = store.write(b"D", p[1]) if there else None
        return err or (b"DELETED\r\n" if there else b"NOT_FOUND\r\n"), used
    if p[0] == b"stats":
        return b"STAT cmd_get %d\r\nSTAT curr_items %d\r\nEND\r\n" % (
            store.gets, len(store.items)), used
    if p[0] == b"version":
        return b"VERSION fake_diskd\r\n", used
    return b"ERROR\r\n", used


def serve(conn, store):
    buf = b""
    try:
        while True:
            data = conn.recv(1 << 20)
            if not data:
                return
            buf += data
            out = []
            while True:
                r = one(buf, store)
                if r is None:
                    break
                out.append(r[0])
                buf = buf[r[1]:]
            if out:
                conn.sendall(b"".join(out))
    except (OSError, ValueError, IndexError):
        return
    finally:
        conn.close()


def mkdata(argv):
    """keel-mkdata's stand-in: --dir --keys --min-size --max-size."""
    o = dict(zip(argv[::2], argv[1::2]))
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import kbkit
    keys, lo, hi = int(o["--keys"]), int(o["--min-size"]), int(o["--max-size"])
    os.makedirs(o["--dir"], exist_ok=True)
    with open(os.path.join(o["--dir"], "log"), "wb") as f:
        for k in range(keys):
            key, n = kbkit.key_name(k), kbkit.value_len(k, lo, hi)
            f.write(HDR.pack(b"S", len(key), n) + key + kbkit.value(k, 1, 2, n))
    print("fake mkdata: %d keys" % keys)
    return 0


def main():
    if sys.argv[1:2] == ["mkdata"]:
        return mkdata(sys.argv[2:])
    if "--dir" in sys.argv and "--data-dir" not in sys.argv:  # called as keel-mkdata
        return mkdata(sys.argv[1:])
    argv, opts, i = sys.argv[1:], {"sync": "always"}, 0
    if "-h" in argv:
        print("fake_diskd: --engine disk --data-dir DIR --sync always|batch|none --lossy")
        return 0
    flags = {"-l": "host", "-p": "port", "--data-dir": "dir", "--sync": "sync"}
    while i < len(argv):
        if argv[i] in flags:
            opts[flags[argv[i]]] = argv[i + 1]
            i += 2
        elif argv[i] == "--lossy":
            opts["lossy"] = True
            i += 1
        elif argv[i] in ("-t", "-m", "--engine", "--sync-ms", "-c", "--log"):
            i += 2
        else:
            i += 1
    store = Store(opts["dir"], opts["sync"], opts.get("lossy", False))
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((opts.get("host", "127.0.0.1"), int(opts["port"])))
    ls.listen(128)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        c, _ = ls.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(c, store), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
