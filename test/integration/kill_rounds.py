#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/kill_rounds.py - the body of kill_fio.sh: SIGKILL
# blkstored under load, round after round, and check what survives.
#
#   kill_rounds.py BLKSTORED BLKCTL WORKDIR ROUNDS USE_FIO SEED
#
# Each round, with the daemon serving a store over NBD (unix socket):
#   1. fio (ioengine=nbd) writes disk "fio" with a crc32c verify pattern
#      seeded by the round, to completion (end_fsync): all of it flushed;
#   2. two writers of ours (one connection each, disks "kd" and "kd2")
#      send writes of self-describing sectors (unique random-looking,
#      unique compressible, deduplicated fixed blocks), trims, write
#      zeroes, FUA writes, flushes every few requests and reads that must
#      return what was just written; fio runs a flush-every-16 random
#      write load on disk "fios" beside them;
#   3. SIGKILL of blkstored at a random moment;
#   4. offline `blkctl fsck` (the store closed): must be clean;
#   5. restart; every sector of kd and kd2 read back and decoded:
#      - written before the last acknowledged FLUSH (or FUA write), and
#        not written since: exactly that content (a mismatch is a lost
#        flushed write);
#      - written after it: the content at the flush or one of the later
#        writes to it, nothing else (no garbage, no other sector's data);
#      - informative: the state is (or is not) that of a prefix of the
#        write order;
#   6. fio --verify_only of step 1's pattern: flushed fio blocks intact.
# At the end: SIGTERM (exit 0), then offline fsck and scrub, clean.
#
# Exit 0: every round passed; 1: a check failed (each failure printed).
import os
import random
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safety_nbd as sn  # noqa: E402

BLKSTORED, BLKCTL, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
ROUNDS, USE_FIO, SEED = int(sys.argv[4]), sys.argv[5] == "1", int(sys.argv[6])
STORE = os.path.join(WORK, "store")
SOCK = os.path.join(WORK, "nbd.sock")
LOG = os.path.join(WORK, "blkstored.log")
rng = random.Random(SEED)
failures = []


def fail(msg):
    print("FAIL:", msg, flush=True)
    failures.append(msg)


def say(msg):
    print(msg, flush=True)


def uri(export):
    return f"nbd+unix:///{export}?socket={SOCK}"


# ---- the writers ----

class Writer:
    """One connection, one disk; remembers every write it sent."""

    def __init__(self, disk_id, export, size):
        self.id = disk_id
        self.export = export
        self.nsect = size // sn.SECTOR
        self.base = {}  # lba -> value at the start of the round
        self.kinds = {}  # seq -> kind of its unique sectors

    def start_round(self, rnd):
        self.rnd = rnd
        self.seq0 = rnd * 10_000_000
        self.next = self.seq0 + 1
        self.hist = {}  # lba -> [(seq, value)] this round, seq order
        self.flushed = self.seq0  # every seq <= this is durable
        self.acked = self.seq0
        self.issued = self.seq0
        self.counts = dict(write=0, fua=0, trim=0, zero=0, flush=0, read=0)
        self.err = None
        self.stop = threading.Event()
        self.connected = threading.Event()  # handshake done (or failed)

    def current(self, lba):
        h = self.hist.get(lba)
        return h[-1][1] if h else self.base.get(lba, "Z")

    def expected_bytes(self, lba, value):
        if isinstance(value, int):
            return sn.uniq_sector(self.id, value, lba, self.kinds[value])
        return sn.sector_bytes(self.id, lba, value)

    def _record(self, seq, lba0, values):
        for i, v in enumerate(values):
            self.hist.setdefault(lba0 + i, []).append((seq, v))

    def _op(self, c):
        r = rng.random()
        if r < 0.06:  # flush
            before = self.acked
            c.flush()
            self.flushed = before
            self.counts["flush"] += 1
            return
        if r < 0.14:  # read back something and compare with memory
            n = rng.choice((1, 8, 8, 64))
            lba = rng.randrange(0, self.nsect - n + 1)
            data = c.read(lba * sn.SECTOR, n * sn.SECTOR)
            for i in range(n):
                want = self.expected_bytes(lba + i, self.current(lba + i))
                got = data[i * sn.SECTOR:(i + 1) * sn.SECTOR]
                if got != want:
                    fail(f"{self.export}: live read of sector {lba + i} "
                         f"gave {sn.decode_sector(self.id, lba + i, got)}, "
                         f"expected {self.current(lba + i)}")
                    break
            self.counts["read"] += 1
            return
        seq = self.next
        self.next += 1
        if r < 0.20:  # trim or write zeroes: the range reads as zeros
            n = rng.choice((1, 8, 8, 32, 256))
            lba = rng.randrange(0, self.nsect - n + 1)
            self._record(seq, lba, ["Z"] * n)
            self.issued = seq
            if r < 0.17:
                c.trim(lba * sn.SECTOR, n * sn.SECTOR)
                self.counts["trim"] += 1
            else:
                c.write_zeroes(lba * sn.SECTOR, n * sn.SECTOR)
                self.counts["zero"] += 1
            self.acked = seq
            return
        fua = r > 0.97
        if rng.random() < 0.2:  # whole dedup blocks, 4 KiB aligned
            nb = rng.choice((1, 1, 2, 4))
            blk = rng.randrange(0, self.nsect // 8 - nb + 1)
            lba = blk * 8
            values = []
            for _ in range(nb):
                k = rng.randrange(sn.NDUP)
                values += [("d", k)] * 8
        else:  # unique sectors, any alignment
            n = rng.choice((1, 3, 8, 8, 8, 16, 24, 64, 128))
            lba = rng.randrange(0, self.nsect - n + 1)
            if rng.random() < 0.5:
                lba -= lba % 8  # often block aligned
            self.kinds[seq] = 0 if rng.random() < 0.6 else 1
            values = [seq] * len(range(n))
        data = b"".join(self.expected_bytes(lba + i, v)
                        for i, v in enumerate(values))
        self._record(seq, lba, values)
        self.issued = seq
        c.write(lba * sn.SECTOR, data, fua=fua)
        self.acked = seq
        if fua:
            self.flushed = seq  # a FUA write is a flush (invariant 2)
            self.counts["fua"] += 1
        else:
            self.counts["write"] += 1

    def run(self):
        try:
            c = sn.Client(SOCK, self.export)
        except (OSError, sn.Lost) as e:
            self.err = f"connect: {e}"
            return
        finally:
            self.connected.set()
        try:
            while not self.stop.is_set():
                self._op(c)
        except sn.Lost:
            pass  # the daemon was killed: expected
        except sn.NBDError as e:
            fail(f"{self.export}: {e}")
        except OSError as e:
            self.err = str(e)
        finally:
            c.s.close()

    # ---- after the restart ----

    def verify(self):
        """Read the whole disk; check each sector; returns a summary."""
        c = sn.Client(SOCK, self.export)
        step = 4 << 20
        size = self.nsect * sn.SECTOR
        data = bytearray()
        for off in range(0, size, step):
            data += c.read(off, min(step, size - off))
        c.close()
        bad_flushed = bad_other = changed = 0
        observed = {}
        touched = set(self.hist) | set(self.base)
        # Sectors nobody ever wrote must be zeros.
        zero = bytes(len(data))
        if len(touched) < self.nsect:
            for lba in range(0, self.nsect):
                if lba in touched:
                    continue
                s = lba * sn.SECTOR
                if data[s:s + sn.SECTOR] != zero[:sn.SECTOR]:
                    bad_other += 1
                    if bad_other <= 5:
                        fail(f"{self.export}: never written sector {lba} "
                             "is not zero: " + str(sn.decode_sector(
                                 self.id, lba, bytes(
                                     data[s:s + sn.SECTOR]))))
        cuts = [(self.flushed, self.issued)]  # feasible prefix cuts
        for lba in sorted(touched):
            s = lba * sn.SECTOR
            got = bytes(data[s:s + sn.SECTOR])
            obs = sn.decode_sector(self.id, lba, got)
            observed[lba] = obs
            base = self.base.get(lba, "Z")
            h = self.hist.get(lba, [])
            at_flush = base
            later = []
            for seq, v in h:
                if seq <= self.flushed:
                    at_flush = v
                else:
                    later.append((seq, v))
            if isinstance(obs, str) and obs.startswith("!"):
                ok = False
            elif not later:
                ok = obs == at_flush
            else:
                ok = obs == at_flush or any(v == obs for _, v in later)
            if ok and isinstance(obs, int):
                # decode_sector checked the bytes against the header;
                # make sure that write exists and is this disk's.
                ok = obs in self.kinds or obs in {v for _, v in h}
            if not ok:
                if not later:
                    bad_flushed += 1
                    what = "FLUSHED sector lost or changed"
                else:
                    bad_other += 1
                    what = "unflushed sector holds neither old nor new data"
                if bad_flushed + bad_other <= 10:
                    fail(f"{self.export} round {self.rnd}: {what}: sector "
                         f"{lba}: read {obs}, at last flush {at_flush}, "
                         f"later writes {[v for _, v in later][:6]}")
                continue
            if obs != at_flush:
                changed += 1
            # Which prefix cuts t (flushed <= t <= issued) give obs here?
            seg = []
            cur_v, cur_from = at_flush, self.flushed
            for seq, v in later:
                if cur_v == obs:
                    seg.append((cur_from, seq - 1))
                cur_v, cur_from = v, seq
            if cur_v == obs:
                seg.append((cur_from, self.issued))
            new = []
            for a, b in cuts:
                for x, y in seg:
                    lo, hi = max(a, x), min(b, y)
                    if lo <= hi:
                        new.append((lo, hi))
            cuts = new
        self.base = {lba: v for lba, v in observed.items() if v != "Z"}
        return dict(bad_flushed=bad_flushed, bad_other=bad_other,
                    changed=changed, prefix=cuts[0] if cuts else None)


# ---- the daemon, fio, blkctl ----

daemon = sn.Daemon(BLKSTORED, STORE, SOCK, LOG)


def blkctl(*args):
    return sn.run([BLKCTL, "-S", STORE] + list(args))


def fio_base(export, seed):
    return ["fio", "--name=kf", "--ioengine=nbd", "--uri=" + uri(export),
            "--rw=randwrite", "--bs=4k", "--size=8M", "--iodepth=8",
            "--verify=crc32c", f"--randseed={seed}",
            "--verify_state_save=0", "--output-format=terse"]


def fio_check(args, what):
    rc, out, err = sn.run(args, cwd=WORK, timeout=120)
    if rc != 0:
        fail(f"{what}: fio exited {rc}: {(out + err).strip()[-600:]}")
        return False
    return True


def fsck_offline(what):
    rc, out, err = blkctl("fsck")
    if rc != 0:
        fail(f"{what}: blkctl fsck exited {rc}:\n{out}{err}")
    return out.strip().splitlines()[-1] if out.strip() else ""


def main():
    rc, out, err = sn.run([BLKCTL, "init", STORE])
    if rc:
        fail("blkctl init: " + err)
        return
    for d, size in (("kd", "64M"), ("kd2", "16M"), ("fio", "8M"),
                    ("fios", "32M")):
        rc, out, err = blkctl("create", d, size)
        if rc:
            fail(f"blkctl create {d}: {err}")
            return
    writers = [Writer(1, "kd", 64 << 20), Writer(2, "kd2", 16 << 20)]
    daemon.start()
    totals = dict(bad_flushed=0, bad_other=0, nonprefix=0)
    for rnd in range(1, ROUNDS + 1):
        t0 = time.monotonic()
        if USE_FIO and not fio_check(
                fio_base("fio", 1000 + rnd) + ["--do_verify=0",
                                               "--end_fsync=1"],
                f"round {rnd}: fio write"):
            break
        for w in writers:
            w.start_round(rnd)
        threads = [threading.Thread(target=w.run) for w in writers]
        for t in threads:
            t.start()
        stress = None
        if USE_FIO:
            stress = subprocess.Popen(
                ["fio", "--name=stress", "--ioengine=nbd",
                 "--uri=" + uri("fios"), "--rw=randwrite",
                 "--bsrange=4k-64k", "--iodepth=4", "--size=32M",
                 "--time_based", "--runtime=60", "--fsync=16",
                 "--buffer_compress_percentage=50",
                 f"--randseed={rnd}"], cwd=WORK,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        # The kill must find every writer past its handshake (a slow,
        # sanitized build may take longer than the shortest delay to
        # connect): a refused connection is a test failure, not a kill.
        for w in writers:
            if not w.connected.wait(30):
                fail(f"round {rnd}: {w.export}: no handshake in 30 s")
        delay = rng.uniform(0.2, 2.0)
        time.sleep(delay)
        daemon.kill()  # SIGKILL, mid-flight
        for w in writers:
            w.stop.set()
        for t in threads:
            t.join(30)
            if t.is_alive():
                fail(f"round {rnd}: a writer hung after the kill")
                return totals
        if stress:
            try:
                stress.wait(30)
            except subprocess.TimeoutExpired:
                stress.kill()
                stress.wait()
                fail(f"round {rnd}: fio hung after the daemon died")
        for w in writers:
            if w.err:
                fail(f"round {rnd}: {w.export}: {w.err}")
        summary = fsck_offline(f"round {rnd}: fsck after SIGKILL")
        daemon.start()
        res = []
        for w in writers:
            try:
                v = w.verify()
            except (sn.NBDError, sn.Lost, OSError) as e:
                fail(f"round {rnd}: reading {w.export} back: {e}")
                return totals
            totals["bad_flushed"] += v["bad_flushed"]
            totals["bad_other"] += v["bad_other"]
            if v["prefix"] is None:
                totals["nonprefix"] += 1
                pre = "NOT a prefix of the write order"
            else:
                pre = f"prefix cut at +{v['prefix'][0] - w.seq0}"
            c = w.counts
            res.append(f"{w.export}: {w.issued - w.seq0} writes "
                       f"({c['fua']} FUA, {c['trim']} trim, {c['zero']} "
                       f"zeroes) {c['flush']} flushes, {c['read']} reads; "
                       f"flushed through +{w.flushed - w.seq0}; "
                       f"{v['changed']} sectors changed since; {pre}; "
                       f"{v['bad_flushed']} flushed mismatches")
        if USE_FIO:
            fio_check(fio_base("fio", 1000 + rnd) + ["--verify_only"],
                      f"round {rnd}: fio --verify_only (flushed blocks)")
        say(f"round {rnd}: killed after {delay:.2f}s; fsck: {summary}; "
            f"{time.monotonic() - t0:.1f}s")
        for r in res:
            say("    " + r)
        if failures:
            break
    rc = daemon.stop()
    if rc != 0:
        fail(f"blkstored exited {rc} after SIGTERM")
    fsck_offline("final fsck")
    rc, out, err = blkctl("scrub")
    if rc != 0:
        fail(f"final scrub exited {rc}: {out}{err}")
    else:
        say("final " + out.strip())
    return totals


if __name__ == "__main__":
    totals = {}
    try:
        totals = main() or {}
    except Exception as e:  # noqa: BLE001 - report, do not hide
        import traceback
        traceback.print_exc()
        fail(f"unexpected error: {e}")
    finally:
        daemon.kill()
    if totals:
        say(f"totals: {totals['bad_flushed']} flushed sectors lost, "
            f"{totals['bad_other']} sectors with wrong data, "
            f"{totals['nonprefix']} non-prefix states")
    sys.exit(1 if failures else 0)
