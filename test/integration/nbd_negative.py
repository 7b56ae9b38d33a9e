#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/nbd_negative.py - blkstored's NBD server against
# clients that break the protocol, written with raw sockets so that every
# byte is ours (NetworkBlockDevice/nbd doc/proto.md is the reference).
#
# Each case sends something wrong and checks the protocol's answer: an
# option error reply (NBD_REP_ERR_*), a request error (EINVAL, ENOSPC,
# EPERM) with the connection still usable, or a dropped connection where
# the spec says the stream cannot go on (bad magic, unknown client flags,
# a client that vanishes mid-request).  After EVERY case a fresh,
# well-behaved client must still read the disk's known content, and the
# daemon must still be running: one bad client never hurts the others.
# Finally SIGTERM must stop the daemon with exit status 0 and the disk
# must hold exactly what it held before (every bad write was refused).
#
# Exit 0: pass, 1: fail, 77: skip (blkstored or blkctl not built).
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

NBDMAGIC = 0x4E42444D41474943
IHAVEOPT = 0x49484156454F5054
REP_MAGIC = 0x3E889045565A9
REQ_MAGIC = 0x25609513
SIMPLE_MAGIC = 0x67446698
STRUCT_MAGIC = 0x668E33EF

OPT_EXPORT_NAME, OPT_ABORT, OPT_LIST, OPT_GO = 1, 2, 3, 7
OPT_STRUCTURED, OPT_LIST_META, OPT_SET_META = 8, 9, 10
REP_ACK, REP_SERVER, REP_INFO, REP_META = 1, 2, 3, 4
ERR_UNSUP, ERR_INVALID = 2**31 + 1, 2**31 + 3
ERR_UNKNOWN, ERR_TOO_BIG = 2**31 + 6, 2**31 + 9
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH, CMD_TRIM = 0, 1, 2, 3, 4
CMD_WRITE_ZEROES, CMD_BLOCK_STATUS = 6, 7
FLAG_FUA, FLAG_DF = 1, 4
REPLY_DONE = 1
T_NONE, T_DATA, T_HOLE, T_BS, T_ERROR = 0, 1, 2, 5, 32769
EPERM, EINVAL, ENOSPC = 1, 22, 28

DISK_SIZE = 16 << 20
TIMEOUT = 10

top = os.environ.get("abs_top_builddir") or os.getcwd()
BLKSTORED = os.path.join(top, "tools", "blkstored")
BLKCTL = os.path.join(top, "tools", "blkctl")
for prog in (BLKSTORED, BLKCTL):
    if not os.access(prog, os.X_OK):
        print(f"SKIP: {prog} is not built")
        sys.exit(77)

failures = []


def fail(msg):
    print("FAIL:", msg)
    failures.append(msg)


class Dropped(Exception):
    pass


class Client:
    """A minimal NBD client; every method does exactly what it says."""

    def __init__(self, addr):
        fam = socket.AF_UNIX if isinstance(addr, str) else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_STREAM)
        self.s.settimeout(TIMEOUT)
        self.s.connect(addr)
        self.structured = False

    def close(self):
        self.s.close()

    def send(self, b):
        self.s.sendall(b)

    def recv(self, n):
        buf = b""
        while len(buf) < n:
            try:
                chunk = self.s.recv(n - len(buf))
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Dropped(f"connection closed after {len(buf)} of {n}")
            buf += chunk
        return buf

    def is_dropped(self):
        """True if the server closed the connection (within TIMEOUT)."""
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def greeting(self, cflags=3):
        magic, opt, hflags = struct.unpack(">QQH", self.recv(18))
        assert magic == NBDMAGIC and opt == IHAVEOPT, "bad server magic"
        assert hflags & 1, "server lacks NBD_FLAG_FIXED_NEWSTYLE"
        self.send(struct.pack(">I", cflags))

    def opt_send(self, opt, data=b"", magic=IHAVEOPT):
        self.send(struct.pack(">QII", magic, opt, len(data)) + data)

    def opt_replies(self, opt):
        """Every reply to one option, up to its final one."""
        out = []
        while True:
            magic, ropt, rtype, rlen = struct.unpack(">QIII", self.recv(20))
            assert magic == REP_MAGIC, f"bad option reply magic {magic:x}"
            assert ropt == opt, f"reply to option {ropt}, expected {opt}"
            data = self.recv(rlen)
            out.append((rtype, data))
            if rtype not in (REP_SERVER, REP_INFO, REP_META):
                return out

    def opt(self, opt, data=b""):
        self.opt_send(opt, data)
        return self.opt_replies(opt)

    def go(self, name, structured=True, meta=True):
        if structured:
            assert self.opt(OPT_STRUCTURED)[-1][0] == REP_ACK
            self.structured = True
        if meta:
            n = name.encode()
            q = b"base:allocation"
            data = (struct.pack(">I", len(n)) + n + struct.pack(">I", 1) +
                    struct.pack(">I", len(q)) + q)
            r = self.opt(OPT_SET_META, data)
            assert r[-1][0] == REP_ACK, f"SET_META_CONTEXT: {r}"
        n = name.encode()
        r = self.opt(OPT_GO, struct.pack(">I", len(n)) + n +
                     struct.pack(">H", 0))
        if r[-1][0] != REP_ACK:
            return r[-1][0]
        for rtype, data in r[:-1]:
            if struct.unpack(">H", data[:2])[0] == 0:
                self.size, self.tflags = struct.unpack(">QH", data[2:12])
        return REP_ACK

    def request(self, cmd, off=0, length=0, flags=0, payload=b"", handle=7):
        self.send(struct.pack(">IHHQQI", REQ_MAGIC, flags, cmd, handle, off,
                              length) + payload)

    def reply(self, cmd, length=0, handle=7):
        """(error, data) of one reply, simple or structured."""
        magic = struct.unpack(">I", self.recv(4))[0]
        if magic == SIMPLE_MAGIC:
            err, h = struct.unpack(">IQ", self.recv(12))
            assert h == handle, "reply for another handle"
            data = self.recv(length) if cmd == CMD_READ and not err else b""
            return err, data
        assert magic == STRUCT_MAGIC, f"bad reply magic {magic:x}"
        err, data = 0, bytearray(length)
        while True:
            flags, typ, h, ln = struct.unpack(">HHQI", self.recv(16))
            assert h == handle, "chunk for another handle"
            payload = self.recv(ln)
            if typ == T_ERROR:
                err = struct.unpack(">I", payload[:4])[0]
            elif typ == T_DATA:
                off = struct.unpack(">Q", payload[:8])[0] - self.base
                data[off:off + ln - 8] = payload[8:]
            elif typ == T_HOLE:
                off, n = struct.unpack(">QI", payload)
                data[off - self.base:off - self.base + n] = bytes(n)
            elif typ == T_BS:
                data = payload
            if flags & REPLY_DONE:
                return err, bytes(data)

    def do(self, cmd, off=0, length=0, flags=0, payload=b""):
        self.base = off
        self.request(cmd, off, length, flags, payload)
        return self.reply(cmd, length)


def hexs(err):
    return f"{err} (0x{err:x})"


def main():
    work = tempfile.mkdtemp(prefix="nbd-negative.")
    store = os.path.join(work, "store")
    sock = os.path.join(work, "nbd.sock")
    logpath = os.path.join(work, "blkstored.log")
    daemon = None
    try:
        # A disk with known content and a snapshot of it.
        content = os.urandom(1 << 20)
        subprocess.run([BLKCTL, "init", store], check=True)
        subprocess.run([BLKCTL, "-S", store, "create", "d", str(DISK_SIZE)],
                       check=True)
        subprocess.run([BLKCTL, "-S", store, "write", "d", "0"],
                       input=content, check=True)
        subprocess.run([BLKCTL, "-S", store, "snapshot", "d@s"], check=True)

        log = open(logpath, "w")
        daemon = subprocess.Popen(
            [BLKSTORED, "-S", store, "--nbd", "unix:" + sock, "--nbd",
             "tcp:127.0.0.1:0", "-f", "-v"], stderr=log)
        port = None
        for _ in range(200):
            with open(logpath) as f:
                for line in f:
                    if "listening on tcp:127.0.0.1:" in line:
                        port = int(line.rsplit(":", 1)[1])
            if os.path.exists(sock) and port:
                break
            if daemon.poll() is not None:
                raise RuntimeError("blkstored exited at start")
            time.sleep(0.05)
        else:
            raise RuntimeError("blkstored did not start listening")

        def healthy(case):
            """A fresh, well-behaved client still gets the right bytes."""
            if daemon.poll() is not None:
                fail(f"{case}: blkstored died (status {daemon.returncode})")
                return
            for addr in (sock, ("127.0.0.1", port)):
                c = Client(addr)
                try:
                    c.greeting()
                    if c.go("d") != REP_ACK:
                        fail(f"{case}: well-behaved GO refused")
                        continue
                    err, data = c.do(CMD_READ, 4096, 65536)
                    if err or data != content[4096:4096 + 65536]:
                        fail(f"{case}: well-behaved read got error "
                             f"{err} or wrong data")
                    c.request(CMD_DISC)
                except (Dropped, AssertionError, OSError) as e:
                    fail(f"{case}: well-behaved client failed: {e}")
                finally:
                    c.close()

        def case(name, fn):
            print("==", name)
            c = Client(sock)
            try:
                fn(c)
            except (Dropped, AssertionError, OSError) as e:
                fail(f"{name}: {e!r}")
            finally:
                c.close()
            healthy(name)

        def expect(name, got, want):
            if got != want:
                fail(f"{name}: got {hexs(got)}, expected {hexs(want)}")

        # ---- handshake ----
        def bad_opt_magic(c):
            c.greeting()
            c.opt_send(OPT_LIST, magic=0x4241444D41474943)  # "BADMAGIC"
            if not c.is_dropped():
                fail("bad option magic: connection not dropped")
        case("handshake: bad option magic", bad_opt_magic)

        def bad_client_flags(c):
            c.greeting(cflags=0x80000003)
            if not c.is_dropped():
                fail("unknown client flags: connection not dropped")
        case("handshake: unknown client flags", bad_client_flags)

        def garbage(c):
            c.recv(18)
            c.send(b"GET / HTTP/1.0\r\n\r\n" * 4)
            if not c.is_dropped():
                fail("garbage instead of a handshake: not dropped")
        case("handshake: garbage", garbage)

        def bad_options(c):
            c.greeting()
            expect("unknown option", c.opt(99, b"xyz")[-1][0], ERR_UNSUP)
            expect("STARTTLS", c.opt(5)[-1][0], ERR_UNSUP)
            expect("LIST with data", c.opt(OPT_LIST, b"x")[-1][0],
                   ERR_INVALID)
            expect("GO, name longer than the option",
                   c.opt(OPT_GO, struct.pack(">I", 100) + b"d\0\0")[-1][0],
                   ERR_INVALID)
            expect("GO, short option", c.opt(OPT_GO, b"\0\0")[-1][0],
                   ERR_INVALID)
            expect("GO, request count wrong",
                   c.opt(OPT_GO, struct.pack(">I", 1) + b"d" +
                         struct.pack(">H", 3))[-1][0], ERR_INVALID)
            expect("GO, unknown export",
                   c.opt(OPT_GO, struct.pack(">I", 4) + b"nope" +
                         struct.pack(">H", 0))[-1][0], ERR_UNKNOWN)
            expect("GO, bad name",
                   c.opt(OPT_GO, struct.pack(">I", 3) + b"../" +
                         struct.pack(">H", 0))[-1][0], ERR_UNKNOWN)
            expect("GO, default export (none configured)",
                   c.opt(OPT_GO, struct.pack(">IH", 0, 0))[-1][0],
                   ERR_UNKNOWN)
            expect("SET_META_CONTEXT before structured replies",
                   c.opt(OPT_SET_META, struct.pack(">II", 1, 0)[:4] +
                         b"d" + struct.pack(">I", 0))[-1][0], ERR_INVALID)
            expect("option data too long", c.opt(99, bytes(100 << 10))[-1][0],
                   ERR_TOO_BIG)
            lst = c.opt(OPT_LIST)
            names = sorted(d[4:].decode() for t, d in lst if t == REP_SERVER)
            if lst[-1][0] != REP_ACK or names != ["d", "d@s"]:
                fail(f"LIST after errors: {lst}")
            # ... and the same connection can still go on and work.
            if c.go("d") != REP_ACK:
                fail("GO after option errors refused")
            err, data = c.do(CMD_READ, 0, 4096)
            if err or data != content[:4096]:
                fail("read after option errors")
        case("handshake: bad and unknown options", bad_options)

        def export_name_unknown(c):
            c.greeting()
            c.opt_send(OPT_EXPORT_NAME, b"nope")
            if not c.is_dropped():
                fail("EXPORT_NAME of an unknown export: not dropped")
        case("handshake: NBD_OPT_EXPORT_NAME unknown", export_name_unknown)

        def abort(c):
            c.greeting()
            expect("ABORT", c.opt(OPT_ABORT)[-1][0], REP_ACK)
            if not c.is_dropped():
                fail("ABORT: connection not closed")
        case("handshake: NBD_OPT_ABORT", abort)

        def gone_in_handshake(c):
            c.greeting()
            c.send(struct.pack(">QI", IHAVEOPT, OPT_GO))  # header cut short
        case("handshake: client vanishes mid-option", gone_in_handshake)

        # ---- transmission ----
        def oversized(c):
            c.greeting()
            c.go("d")
            expect("READ 64 MiB", c.do(CMD_READ, 0, 64 << 20)[0], EINVAL)
            big = 33 << 20
            expect("WRITE 33 MiB (payload sent)",
                   c.do(CMD_WRITE, 0, big, payload=bytes(big))[0], EINVAL)
            err, data = c.do(CMD_READ, 0, 4096)
            if err or data != content[:4096]:
                fail("oversized: stream out of step afterwards")
        case("transmission: oversized requests", oversized)

        def out_of_range(c):
            c.greeting()
            c.go("d")
            expect("READ at the end", c.do(CMD_READ, DISK_SIZE, 512)[0],
                   EINVAL)
            expect("READ across the end",
                   c.do(CMD_READ, DISK_SIZE - 512, 1024)[0], EINVAL)
            expect("READ offset overflow",
                   c.do(CMD_READ, 2**64 - 4096, 8192)[0], EINVAL)
            expect("WRITE across the end",
                   c.do(CMD_WRITE, DISK_SIZE - 512, 1024,
                        payload=b"x" * 1024)[0], ENOSPC)
            expect("WRITE_ZEROES past the end",
                   c.do(CMD_WRITE_ZEROES, DISK_SIZE, 4096)[0], ENOSPC)
            expect("TRIM past the end", c.do(CMD_TRIM, DISK_SIZE, 4096)[0],
                   EINVAL)
            expect("BLOCK_STATUS past the end",
                   c.do(CMD_BLOCK_STATUS, DISK_SIZE, 4096)[0], EINVAL)
            expect("READ the last byte", c.do(CMD_READ, DISK_SIZE - 1, 1)[0],
                   0)
        case("transmission: out-of-range offsets", out_of_range)

        def read_only(c):
            c.greeting()
            c.go("d@s")
            if not c.tflags & 2:
                fail("snapshot export lacks NBD_FLAG_READ_ONLY")
            expect("WRITE to a snapshot",
                   c.do(CMD_WRITE, 0, 4096, payload=b"y" * 4096)[0], EPERM)
            expect("TRIM of a snapshot", c.do(CMD_TRIM, 0, 4096)[0], EPERM)
            expect("WRITE_ZEROES to a snapshot",
                   c.do(CMD_WRITE_ZEROES, 0, 4096)[0], EPERM)
            err, data = c.do(CMD_READ, 0, 4096)
            if err or data != content[:4096]:
                fail("snapshot changed or unreadable after refused writes")
        case("transmission: writes to a read-only export", read_only)

        def unknown_command(c):
            c.greeting()
            c.go("d")
            expect("command 42", c.do(42, 0, 0)[0], EINVAL)
            expect("command 5 with a bogus flag", c.do(5, 0, 512, 0x40)[0],
                   EINVAL)
            expect("READ with NO_HOLE", c.do(CMD_READ, 0, 512, 2)[0], EINVAL)
            expect("FLUSH with an offset", c.do(CMD_FLUSH, 4096, 0)[0],
                   EINVAL)
            err, data = c.do(CMD_READ, 0, 4096)
            if err or data != content[:4096]:
                fail("unknown command: stream out of step afterwards")
        case("transmission: unknown command and bad flags", unknown_command)

        def simple_mode(c):
            c.greeting()
            if c.go("d", structured=False, meta=False) != REP_ACK:
                raise AssertionError("GO without structured replies")
            expect("READ past the end (simple)",
                   c.do(CMD_READ, DISK_SIZE, 4096)[0], EINVAL)
            expect("DF without structured replies",
                   c.do(CMD_READ, 0, 4096, FLAG_DF)[0], EINVAL)
            expect("BLOCK_STATUS without a context",
                   c.do(CMD_BLOCK_STATUS, 0, 4096)[0], EINVAL)
            err, data = c.do(CMD_READ, 0, 4096)
            if err or data != content[:4096]:
                fail("simple replies: read after errors")
        case("transmission: simple replies", simple_mode)

        def bad_request_magic(c):
            c.greeting()
            c.go("d")
            c.send(struct.pack(">IHHQQI", 0x12345678, 0, CMD_READ, 1, 0,
                               4096))
            if not c.is_dropped():
                fail("bad request magic: connection not dropped")
        case("transmission: bad request magic", bad_request_magic)

        def truncated_header(c):
            c.greeting()
            c.go("d")
            c.send(struct.pack(">IHHQQI", REQ_MAGIC, 0, CMD_READ, 1, 0,
                               4096)[:10])
        case("transmission: truncated request header", truncated_header)

        def truncated_payload(c):
            c.greeting()
            c.go("d")
            c.request(CMD_WRITE, 0, 65536, payload=b"z" * 1024)
        case("transmission: truncated write payload", truncated_payload)

        def gone_mid_request(c):
            c.greeting()
            c.go("d")
            c.request(CMD_READ, 0, 16 << 20)  # never read the reply
            c.s.shutdown(socket.SHUT_RDWR)
        case("transmission: disconnect mid-request", gone_mid_request)

        # Nothing above may have changed the disk.
        print("== SIGTERM")
        daemon.send_signal(signal.SIGTERM)
        try:
            rc = daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("blkstored did not stop within 30 s of SIGTERM")
            rc = None
        if rc not in (0, None):
            fail(f"blkstored exited {rc} after SIGTERM")
        daemon = None
        if os.path.exists(sock):
            fail("the unix socket was not removed at exit")
        out = subprocess.run([BLKCTL, "-S", store, "read", "d", "0",
                              str(1 << 20)], capture_output=True, check=True)
        if out.stdout != content:
            fail("the disk changed although every write was refused")
    finally:
        if daemon is not None:
            daemon.kill()
            daemon.wait()
        if failures:
            print("--- blkstored log ---")
            with open(logpath) as f:
                sys.stdout.write(f.read()[-6000:])
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failure(s)")
        return 1
    print("all cases passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
