#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/enospc_check.py - the body of enospc.sh: a store on a small
# filesystem (MNT, mounted by the caller) filled through NBD until writes
# fail.
#
#   enospc_check.py BLKSTORED BLKCTL WORKDIR MNT
#
# Part A - full disk, then make room by deleting a snapshot:
#   A1  `blkctl df` warns of thin overcommit once the disks' sizes exceed
#       the space left, and not before
#   A2  the client sees ENOSPC (NBD error 28), at a WRITE or at a FLUSH
#       (which one is printed: writes are acknowledged from memory)
#   A3  the daemon is still running
#   A4  other disks and snapshots still read back exactly
#   A5  the full disk's flushed data still reads back (same connection,
#       and a new one)
#   A6  `blkctl df` works (through the daemon)
#   A7  `blkctl delete DISK@SNAP` + `blkctl gc` online succeed, and
#       writes and flushes succeed again
#   A8  (if A7 failed) the fallback: stop the daemon, delete + gc
#       offline (if gc fails: remove a reserve file outside the store and
#       gc again), restart: writes and flushes succeed again
#   A9  the flushed data reads back after all that; offline fsck
# Part B - space comes back by itself (another file on the filesystem
#   is removed) after a flush failed with ENOSPC: gc, then the disk's
#   flushed data must still read back and fsck must find no missing chunk.
#
# Every check prints "ok" or "FAIL"; exit 0 only if all passed.
import errno
import hashlib
import os
import shutil
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safety_nbd as sn  # noqa: E402

BLKSTORED, BLKCTL, WORK, MNT = sys.argv[1:5]
M = 1 << 20
failures = []
daemon = None


def check(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what +
          (f": {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        failures.append(what)
    return ok


def note(msg):
    print("     " + msg, flush=True)


def blkctl(store, *args):
    return sn.run([BLKCTL, "-S", store] + list(args), timeout=300)


def digest(b):
    return hashlib.sha256(b).hexdigest()


class Filler:
    """Writes incompressible data from an offset on, flushing every
    'every' bytes, until the store refuses; remembers what was flushed."""

    def __init__(self, c, start, wsize=256 << 10, every=4 * M):
        self.c, self.off, self.wsize, self.every = c, start, wsize, every
        self.start = start
        self.written = {}  # offset -> digest (acknowledged)
        self.flushed_to = start  # [start, flushed_to) is durable
        self.error = None  # the first one: (op, errno, offset)
        self.write_error = None

    def run(self, limit, to_write_error=False):
        """Stop at the first error; with to_write_error, go on writing
        past failed flushes until a WRITE fails too."""
        since = 0
        while self.off < limit:
            data = os.urandom(self.wsize)
            try:
                self.c.write(self.off, data)
            except sn.NBDError as e:
                self.error = self.error or ("WRITE", e.err, self.off)
                self.write_error = e.err
                return
            self.written[self.off] = digest(data)
            self.off += self.wsize
            since += self.wsize
            if since >= self.every:
                try:
                    self.c.flush()
                except sn.NBDError as e:
                    self.error = self.error or ("FLUSH", e.err, self.off)
                    if not to_write_error:
                        return
                    continue
                if not self.error:
                    self.flushed_to = self.off
                since = 0

    def check_flushed(self, c):
        """Read [start, flushed_to) back; returns (good, bad, error)."""
        good = bad = 0
        for off in range(self.start, self.flushed_to, self.wsize):
            try:
                got = c.read(off, self.wsize)
            except sn.NBDError as e:
                return good, bad, str(e)
            if digest(got) == self.written[off]:
                good += 1
            else:
                bad += 1
        return good, bad, None


def read_ok(sock, export, off, want):
    try:
        c = sn.Client(sock, export)
        got = c.read(off, len(want))
        c.close()
    except (sn.NBDError, sn.Lost, OSError) as e:
        return False, str(e)
    return got == want, "content differs"


def ctl_ok(store, what, *args):
    rc, out, err = blkctl(store, *args)
    check(rc == 0, what, f"exit {rc}: {(err or out).strip()[-300:]}")
    return rc == 0, out


def part_a():
    global daemon
    print("== A: fill a thin disk until the filesystem is full", flush=True)
    store = os.path.join(MNT, "a")
    sock = os.path.join(WORK, "a.sock")
    daemon = sn.Daemon(BLKSTORED, store, sock, os.path.join(WORK, "a.log"))
    rc, out, err = sn.run([BLKCTL, "init", store])
    if not check(rc == 0, "blkctl init on the small filesystem", err):
        return
    fs_size = shutil.disk_usage(MNT).total
    # Space an admin can give back: a reserve file outside the store.
    reserve = os.path.join(MNT, "reserve")
    with open(reserve, "wb") as fr:
        fr.write(os.urandom(8 * M))
    blkctl(store, "create", "other", "8M")
    rc, out, _ = blkctl(store, "df")
    check("thin overcommit" not in out,
          "A1 df: no overcommit warning while the disks fit", out)
    blkctl(store, "create", "d", "1G")
    rc, out, _ = blkctl(store, "df")
    warn = [ln for ln in out.splitlines() if "thin overcommit" in ln]
    check(rc == 0 and len(warn) == 1 and warn[0].startswith(
        "warning: thin overcommit: disks total 1.0 GiB but only ") and
        warn[0].endswith(" free"),
        "A1 df warns: disks (1 GiB + 8 MiB) exceed the space left", out)
    if warn:
        note(warn[0])

    daemon.start()
    c = sn.Client(sock, "d")
    # The snapshot alone holds 'old': written first (so that it fills
    # whole segment files, which gc can then drop without copying
    # anything), flushed, snapshotted, then trimmed from the disk.
    old_size = (fs_size // 2) // M * M
    old = os.urandom(old_size)
    for off in range(0, old_size, 4 * M):
        c.write(off, old[off:off + 4 * M])
    c.flush()
    ok, _ = ctl_ok(store, "snapshot d@old (online)", "snapshot", "d@old")
    c.trim(0, old_size)
    c.flush()
    o = sn.Client(sock, "other")
    other = os.urandom(8 * M)
    o.write(0, other)
    o.flush()
    o.close()
    f = Filler(c, old_size)
    t = time.monotonic()
    f.run(1 << 30)
    note(f"filled {(f.off - old_size) // M} MiB in "
         f"{time.monotonic() - t:.1f}s; flushed through "
         f"{(f.flushed_to - old_size) // M} MiB; "
         f"filesystem free {shutil.disk_usage(MNT).free // 1024} KiB")
    if not check(f.error is not None, "A2 the filesystem filled up"):
        return
    op, err, at = f.error
    note(f"first error: {op} at {at // M} MiB: errno {err} "
         f"({errno.errorcode.get(err, '?')})")
    check(err == errno.ENOSPC, f"A2 the failing {op} reports ENOSPC",
          f"errno {err}")
    if op == "WRITE":
        try:
            c.flush()
            note("a FLUSH right after the failed WRITE: succeeded")
        except sn.NBDError as e:
            note(f"a FLUSH right after the failed WRITE: errno {e.err}")
    check(daemon.alive(), "A3 blkstored is still running")
    ok, why = read_ok(sock, "other", 0, other)
    check(ok, "A4 another disk reads back", why)
    ok, why = read_ok(sock, "d@old", 0, old[:8 * M])
    check(ok, "A4 the snapshot reads back", why)
    good, bad, e = f.check_flushed(c)
    check(e is None and bad == 0,
          "A5 the full disk's flushed data reads back (same connection)",
          e or f"{bad} mismatches")
    try:
        c2 = sn.Client(sock, "d")
        good, bad, e = f.check_flushed(c2)
        c2.close()
    except (sn.NBDError, sn.Lost) as x:
        e = str(x)
    check(e is None and bad == 0,
          "A5 the full disk's flushed data reads back (new connection)",
          e or f"{bad} mismatches")
    ctl_ok(store, "A6 blkctl df works on the full store", "df")

    # Make room online, as an admin would.
    okd, _ = ctl_ok(store, "A7 blkctl delete d@old (online)", "delete",
                    "d@old")
    okg, out = ctl_ok(store, "A7 blkctl gc (online)", "gc")
    if okg:
        note(out.strip())
    rc, out, _ = blkctl(store, "list")
    note("after it, list shows d@old: " + str("d@old" in out))
    more = Filler(c, f.off - f.off % (256 << 10) + (256 << 10))
    more.run(more.start + 8 * M)
    recovered = check(more.error is None,
                      "A7 after delete + gc, 8 MiB of writes and flushes "
                      "succeed (same connection)",
                      str(more.error))
    c.s.close()
    if not recovered:
        print("== A8: the fallback: stop, delete + gc offline, restart",
              flush=True)
        rc = daemon.stop()
        note(f"blkstored exit status after SIGTERM: {rc}")
        rc, out, err = blkctl(store, "fsck")
        note(f"offline fsck: exit {rc}: " +
             (out.strip().splitlines() or [""])[-1])
        rc, out, _ = blkctl(store, "list")
        if "d@old" in out:
            ctl_ok(store, "A8 blkctl delete d@old (offline)", "delete",
                   "d@old")
        okg, out = ctl_ok(store, "A8 blkctl gc (offline, filesystem full)",
                          "gc")
        if not okg:
            os.unlink(reserve)
            note(f"reserve file removed: filesystem free "
                 f"{shutil.disk_usage(MNT).free // 1024} KiB")
            okg, out = ctl_ok(store, "A8 blkctl gc (offline, after "
                              "removing a reserve file)", "gc")
        if okg:
            note(out.strip())
        note(f"filesystem free {shutil.disk_usage(MNT).free // 1024} KiB")
        try:
            daemon.start()
            check(True, "A8 blkstored restarts")
        except RuntimeError as x:
            with open(daemon.log) as lf:
                last = lf.read().strip().splitlines()[-1]
            check(False, "A8 blkstored restarts", f"{x}: {last}")
            note("retrying with --control outside the store")
            daemon = sn.Daemon(BLKSTORED, store, sock, daemon.log,
                               ["--control", os.path.join(WORK, "ctl")])
            daemon.start()
        c = sn.Client(sock, "d")
        more = Filler(c, f.off - f.off % (256 << 10) + (256 << 10))
        more.run(more.start + 8 * M)
        check(more.error is None,
              "A8 after an offline delete + gc, writes and flushes succeed",
              str(more.error))
        c.close()
    c = sn.Client(sock, "d")
    good, bad, e = f.check_flushed(c)
    c.close()
    check(e is None and bad == 0 and good > 0,
          f"A9 all {good} flushed writes of the fill read back",
          e or f"{bad} mismatches")
    ok, why = read_ok(sock, "other", 0, other)
    check(ok, "A9 the other disk reads back", why)
    rc = daemon.stop()
    note(f"blkstored exit status after SIGTERM: {rc}")
    rc, out, err = blkctl(store, "fsck")
    lines = out.strip().splitlines()
    check(rc == 0, "A9 offline fsck is clean",
          f"exit {rc}: {len(lines)} lines, last: " +
          (lines[-1] if lines else err.strip()))
    shutil.rmtree(store, ignore_errors=True)


def part_b():
    print("== B: space comes back after a flush failed with ENOSPC",
          flush=True)
    store = os.path.join(MNT, "b")
    sock = os.path.join(WORK, "b.sock")
    global daemon
    daemon = sn.Daemon(BLKSTORED, store, sock, os.path.join(WORK, "b.log"))
    ballast = os.path.join(MNT, "ballast")
    free = shutil.disk_usage(MNT).free
    with open(ballast, "wb") as fb:
        fb.write(bytes(free // 4))  # given back later
    sn.run([BLKCTL, "init", store])
    blkctl(store, "create", "d", "1G")
    daemon.start()
    c = sn.Client(sock, "d")
    keep = os.urandom(8 * M)
    c.write(0, keep)
    c.flush()
    f = Filler(c, 8 * M)
    f.run(1 << 30, to_write_error=True)
    if not check(f.error is not None, "B the filesystem filled up"):
        return
    op, err, at = f.error
    note(f"first error: {op} at {at // M} MiB: errno {err} "
         f"({errno.errorcode.get(err, '?')}); then a WRITE: errno "
         f"{f.write_error}")
    check(err == errno.ENOSPC, f"B the failing {op} reports ENOSPC",
          f"errno {err}: {os.strerror(err)}")
    # The client gives up on its unflushed writes and disconnects.
    for _ in range(2):
        try:
            c.flush()
        except sn.NBDError as e:
            note(f"flush: errno {e.err}")
    c.close()
    time.sleep(0.3)
    os.unlink(ballast)
    note(f"ballast removed: filesystem free "
         f"{shutil.disk_usage(MNT).free // M} MiB")
    rc, out, err = blkctl(store, "gc")
    note(f"gc: exit {rc}: {(out or err).strip()}")
    ok, why = read_ok(sock, "d", 0, keep)
    check(ok, "B the 8 MiB flushed before the disk filled read back", why)
    try:
        c = sn.Client(sock, "d")
        good, bad, e = f.check_flushed(c)
        c.close()
    except (sn.NBDError, sn.Lost) as x:
        good, bad, e = 0, 0, str(x)
    check(e is None and bad == 0, f"B the fill's {good} flushed writes "
          "read back", e or f"{bad} mismatches")
    rc, out, err = blkctl(store, "fsck")
    missing = [ln for ln in out.splitlines() if "missing" in ln or
               "cannot be read" in ln]
    check(not missing, "B fsck finds no chunk missing",
          "; ".join(missing[:3]))
    lines = out.strip().splitlines()
    note(f"fsck: exit {rc}: {lines[-1] if lines else err.strip()}")
    daemon.stop()
    shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    try:
        part_a()
        if daemon:
            daemon.kill()
        part_b()
    except Exception as e:  # noqa: BLE001 - report, do not hide
        import traceback
        traceback.print_exc()
        check(False, f"unexpected error: {e}")
    finally:
        if daemon:
            daemon.kill()
    print(f"== {len(failures)} check(s) failed" if failures else
          "== all checks passed", flush=True)
    sys.exit(1 if failures else 0)
