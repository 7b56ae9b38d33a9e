# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/safety_nbd.py - what the data-safety tests share: a
# minimal NBD client (raw sockets, simple replies: every byte is ours, so
# the tests know exactly which requests were sent and which answered),
# self-describing sector contents, and a blkstored runner.
#
# Used by kill_rounds.py (kill_fio.sh), enospc_check.py (enospc.sh) and
# damage_check.py (damage.sh).  Not a test itself.
import errno
import hashlib
import os
import signal
import socket
import struct
import subprocess
import time

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x3E889045565A9
REQ_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698
OPT_GO = 7
REP_ACK, REP_INFO = 1, 3
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM = 0, 1, 2, 3, 4
CMD_WRITE_ZEROES = 6
FLAG_FUA = 1
SECTOR = 512


class NBDError(Exception):
    """The server answered a request with an error (errno in .err)."""

    def __init__(self, what, err):
        super().__init__(f"{what}: NBD error {err} "
                         f"({errno.errorcode.get(err, '?')})")
        self.err = err


class Lost(Exception):
    """The connection went away (the server died or dropped us)."""


class Client:
    """One NBD connection to one export, one request at a time."""

    def __init__(self, sock_path, export, timeout=30):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        try:
            self.s.connect(sock_path)
            self._handshake(export)
        except (OSError, Lost):
            self.s.close()
            raise
        self.handle = 0

    def close(self):
        try:
            self.s.sendall(struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_DISC,
                                       0, 0, 0))
        except OSError:
            pass
        self.s.close()

    def _recv(self, n):
        buf = bytearray()
        while len(buf) < n:
            try:
                b = self.s.recv(min(n - len(buf), 1 << 20))
            except ConnectionResetError:
                b = b""
            except socket.timeout:
                raise Lost(f"timed out after {len(buf)} of {n} bytes")
            if not b:
                raise Lost(f"connection closed after {len(buf)} of {n} "
                           "bytes")
            buf += b
        return bytes(buf)

    def _send(self, b):
        try:
            self.s.sendall(b)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise Lost(str(e))

    def _handshake(self, export):
        magic, opt, _ = struct.unpack(">QQH", self._recv(18))
        if magic != NBDMAGIC or opt != IHAVEOPT:
            raise Lost("not an NBD server")
        self._send(struct.pack(">I", 3))  # FIXED_NEWSTYLE | NO_ZEROES
        name = export.encode()
        data = struct.pack(">I", len(name)) + name + struct.pack(">H", 0)
        self._send(struct.pack(">QII", IHAVEOPT, OPT_GO, len(data)) + data)
        self.size = None
        while True:
            m, _, rtype, rlen = struct.unpack(">QIII", self._recv(20))
            if m != REP_MAGIC:
                raise Lost("bad option reply magic")
            d = self._recv(rlen)
            if rtype == REP_INFO and len(d) >= 12 and d[:2] == b"\0\0":
                self.size, self.tflags = struct.unpack(">QH", d[2:12])
            elif rtype == REP_ACK:
                break
            elif rtype & 0x80000000:
                raise NBDError(f"export {export!r}: {d!r}", errno.ENOENT)

    def _req(self, cmd, off, length, flags=0, data=b""):
        self.handle += 1
        self._send(struct.pack(">IHHQQI", REQ_MAGIC, flags, cmd, self.handle,
                               off, length) + data)
        m, err, h = struct.unpack(">IIQ", self._recv(16))
        if m != SIMPLE_MAGIC or h != self.handle:
            raise Lost("bad reply magic or handle")
        return err

    def read(self, off, length):
        err = self._req(CMD_READ, off, length)
        if err:
            raise NBDError(f"read {off}+{length}", err)
        return self._recv(length)

    def write(self, off, data, fua=False):
        err = self._req(CMD_WRITE, off, len(data), FLAG_FUA if fua else 0,
                        data)
        if err:
            raise NBDError(f"write {off}+{len(data)}", err)

    def flush(self):
        err = self._req(CMD_FLUSH, 0, 0)
        if err:
            raise NBDError("flush", err)

    def trim(self, off, length):
        err = self._req(CMD_TRIM, off, length)
        if err:
            raise NBDError(f"trim {off}+{length}", err)

    def write_zeroes(self, off, length):
        err = self._req(CMD_WRITE_ZEROES, off, length)
        if err:
            raise NBDError(f"write_zeroes {off}+{length}", err)


# ---- self-describing sector contents ----
#
# A unique sector: 'KSUNIQ01' disk(u32) seq(u64) lba(u64) kind(u8), then
# filler derived from that header (random-looking or compressible).  Any
# sector read back can be decoded into the one write that produced it,
# and checked byte for byte.  A dup sector is one of NDUP fixed 4 KiB
# blocks (the same for every disk: dedup), identified by 'KSDUP001'.

UNIQ = b"KSUNIQ01"
DUP = b"KSDUP001"
HDR = struct.Struct("<8sIQQB")
NDUP = 8
ZERO_SECTOR = bytes(SECTOR)


def uniq_sector(disk, seq, lba, kind):
    h = HDR.pack(UNIQ, disk, seq, lba, kind)
    if kind == 0:  # incompressible
        return h + hashlib.shake_128(h).digest(SECTOR - len(h))
    pat = hashlib.sha256(h).digest()  # compressible: a repeated pattern
    return h + (pat * 16)[: SECTOR - len(h)]


def dup_sector(k, i):
    """Sector i (0..7) of fixed block k."""
    h = HDR.pack(DUP, k, 0, i, 0)
    return h + hashlib.shake_128(h).digest(SECTOR - len(h))


def decode_sector(disk, lba, b):
    """The value a sector holds: 'Z' (zeros), ('d', k) or a seq number;
    or a string starting with '!' saying why it is no known value."""
    if b == ZERO_SECTOR:
        return "Z"
    magic, dsk, seq, slba, kind = HDR.unpack_from(b)
    if magic == UNIQ:
        if dsk != disk or slba != lba:
            return f"!data of disk {dsk} sector {slba} (seq {seq})"
        if kind > 1 or uniq_sector(dsk, seq, slba, kind) != b:
            return f"!damaged sector claiming seq {seq}"
        return seq
    if magic == DUP:
        if dsk >= NDUP or slba != lba % 8 or dup_sector(dsk, slba) != b:
            return "!damaged dup sector"
        return ("d", dsk)
    return "!garbage " + b[:16].hex()


def sector_bytes(disk, lba, value):
    if value == "Z":
        return ZERO_SECTOR
    if isinstance(value, tuple):
        return dup_sector(value[1], lba % 8)
    raise ValueError("unique sectors need their kind")


# ---- blkstored ----

class Daemon:
    """blkstored in the foreground, its stderr appended to a log."""

    def __init__(self, blkstored, store, sock, log, extra=()):
        self.cmd = [blkstored, "-S", store, "--nbd", "unix:" + sock,
                    "-f"] + list(extra)
        self.sock = sock
        self.log = log
        self.p = None

    def _serving(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().count(b": serving ")
        except FileNotFoundError:
            return 0

    def start(self, timeout=20):
        n = self._serving()
        lf = open(self.log, "ab")
        self.p = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                  stdout=lf, stderr=lf)
        lf.close()
        t = time.monotonic() + timeout
        while time.monotonic() < t:
            if self._serving() > n:
                return
            if self.p.poll() is not None:
                raise RuntimeError(f"blkstored exited {self.p.returncode} "
                                   "at start; see " + self.log)
            time.sleep(0.02)
        raise RuntimeError("blkstored did not start in time")

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def kill(self):
        if self.p is not None:
            if self.p.poll() is None:
                self.p.send_signal(signal.SIGKILL)
            self.p.wait()
            self.p = None

    def stop(self, timeout=30):
        """SIGTERM; returns the exit status (None if it had to be
        killed)."""
        if self.p is None:
            return 0
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self.p = None
        return rc

    def pid(self):
        return self.p.pid if self.p else None


def run(cmd, **kw):
    """Run a command; (exit status, stdout, stderr) as text."""
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, **kw)
    return r.returncode, r.stdout, r.stderr
