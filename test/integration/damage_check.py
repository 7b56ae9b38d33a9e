#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/damage_check.py - the body of damage.sh: damaged bytes in a
# store, found and reported, never served as data.
#
#   damage_check.py BLKSTORED BLKCTL WORKDIR
#
# A pristine store (disk d; snapshot d@s1; clone c1 of d@s1; d then
# changed), and for each case a copy of it with some bytes flipped:
#   a1  the payload of a data record (uncompressed), shared by d, d@s1, c1
#   a2  the payload of a zstd-compressed data record, shared likewise
#   b1  data.mdb: the location inside one chunk-table item
#   b2  data.mdb: the reference count inside one chunk-table item
#   b3  data.mdb: garbage over the chunk table's top page
#   b4  data.mdb: a chunk-table leaf page zeroed
#   b5  data.mdb deleted (the whole index lost)
#   c   the record of disk d's root map node (name from `blkctl info`)
# Checked, as each case applies: `blkctl read` of an affected block exits
# non-zero and prints no wrong byte; an NBD read of it gets EIO; other
# blocks read back exactly; `blkctl scrub` exits 1 naming the chunk and
# the disks/snapshots that reach it; `blkctl fsck` explains (exit 1) or
# is clean when the counts are right (it checks counts, not contents);
# `fsck --repair` sets wrong counts right and never lowers counts it
# cannot see; `fsck --rebuild` recovers what the segments still hold,
# names what they do not, and says when the disks could not be carried.
#
# Every check prints "ok" or "FAIL"; exit 0 only if all passed.
import hashlib
import os
import shutil
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safety_nbd as sn  # noqa: E402
import storebytes as sb  # noqa: E402

BLKSTORED, BLKCTL, WORK = sys.argv[1:4]
K, M = 1 << 10, 1 << 20
PRISTINE = os.path.join(WORK, "pristine")
failures = []


def check(ok, what, detail=""):
    print(("ok   " if ok else "FAIL ") + what +
          (f": {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        failures.append(what)
    return ok


def note(msg):
    print("     " + msg, flush=True)


def blkctl(store, *args, data=None):
    import subprocess
    r = subprocess.run([BLKCTL, "-S", store] + list(args), input=data,
                       capture_output=True, timeout=300)
    return r.returncode, r.stdout, r.stderr.decode(errors="replace")


def text(b):
    return b.decode(errors="replace").strip()


def last(s):
    lines = s.strip().splitlines()
    return lines[-1] if lines else ""


# ---- the pristine store and what it holds ----

def build():
    rnd = os.urandom(4 * M)  # d, d@s1, c1 [0, 4M): incompressible
    # [4M, 6M): text-like, zstd saves more than 128 bytes per block
    txt = hashlib.shake_256(b"damage").digest(1536 * K).hex().encode()
    txt = b"\n".join(txt[i:i + 75] for i in range(0, len(txt), 75))[:2 * M]
    only_d = os.urandom(2 * M)  # [6M, 8M): written after the snapshot
    head = os.urandom(64 * K)  # d [0, 64K) rewritten after the snapshot
    steps = [("create", "d", "16M"), ("write", "d", "0", rnd),
             ("write", "d", "4M", txt), ("snapshot", "d@s1"),
             ("clone", "d@s1", "c1"), ("write", "d", "6M", only_d),
             ("write", "d", "0", head)]
    rc, _, err = sn.run([BLKCTL, "init", PRISTINE])
    for s in steps:
        data = s[-1] if isinstance(s[-1], bytes) else None
        args = s[:-1] if data is not None else s
        rc, _, err = blkctl(PRISTINE, *args, data=data)
        if rc:
            raise RuntimeError(f"blkctl {' '.join(args)}: {err}")
    s1 = rnd + txt + bytes(10 * M)
    d = head + rnd[64 * K:] + txt + only_d + bytes(8 * M)
    return {"d": d, "d@s1": s1, "c1": s1}


def name_of(block):
    return hashlib.sha256(block).hexdigest()


def fresh(case):
    path = os.path.join(WORK, case)
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(PRISTINE, path)
    return path


def root_of(store, spec):
    rc, out, _ = blkctl(store, "info", spec)
    for ln in text(out).splitlines():
        if ln.startswith("root"):
            return ln.split()[1]
    raise RuntimeError(f"no root in blkctl info {spec}")


def refs_of(store, name):
    for it in sb.chunk_items(store):
        if it["name"] == name:
            return it["refs"]
    return None


# ---- checks shared by the cases ----

def read_fails(store, spec, off, length, truth, why):
    """blkctl read must fail, and whatever it printed must be a prefix
    of the true bytes (no wrong byte ever reaches stdout)."""
    rc, out, err = blkctl(store, "read", spec, str(off), str(length))
    good = truth[off:off + len(out)] == out
    check(rc != 0 and good,
          f"blkctl read {spec} {off // K}K+{length // K}K fails ({why})",
          f"exit {rc}, {len(out)} bytes, "
          f"{'a prefix of the truth' if good else 'WRONG BYTES'}")
    if rc:
        note(last(err))


def reads_back(store, spec, off, length, truth, what=""):
    rc, out, err = blkctl(store, "read", spec, str(off), str(length))
    check(rc == 0 and out == truth[off:off + length],
          f"blkctl read {spec} {off // M}M+{length // M}M reads back"
          f"{what}", f"exit {rc}: {last(err)}")


def nbd_eio(store, spec, off, case):
    sock = os.path.join(WORK, case + ".sock")
    d = sn.Daemon(BLKSTORED, store, sock, os.path.join(WORK, case + ".log"))
    try:
        d.start()
        c = sn.Client(sock, spec)
        try:
            c.read(off, 4096)
            got = "data"
        except sn.NBDError as e:
            got = e.err
        c.close()
    except (RuntimeError, sn.Lost, sn.NBDError, OSError) as e:
        got = f"({e})"
    finally:
        rc = d.stop()
    check(got == 5, f"NBD read of {spec} at {off // K}K gets EIO",
          f"got {got}")
    check(rc == 0, "blkstored stops cleanly after serving the damaged store",
          f"exit {rc}")


def scrub_names(store, name, specs):
    rc, out, err = blkctl(store, "scrub")
    lines = [ln for ln in text(out).splitlines() if name in ln]
    want = "referenced by: " + ",".join(sorted(specs))
    check(rc == 1 and len(lines) == 1 and lines[0].startswith(
        "damaged chunk " + name) and lines[0].endswith(want),
        f"scrub exits 1 naming the chunk and {','.join(sorted(specs))}",
        f"exit {rc}: {text(out)[-300:]} {last(err)}")
    if lines:
        note(lines[0][:100] + "...")
    note(last(text(out)))


def rebuild(store, expect_problems):
    rc, out, err = blkctl(store, "fsck", "--rebuild")
    o = text(out)
    check((rc != 0) == expect_problems and rc in (0, 1),
          f"fsck --rebuild exits {1 if expect_problems else 0}",
          f"exit {rc}: {o[-400:]} {last(err)}")
    for ln in o.splitlines():
        if "rebuilt" in ln or "recounted" in ln:
            note(ln)
    return rc, o


def lists_all(store):
    rc, out, _ = blkctl(store, "list")
    names = [ln.split()[0] for ln in text(out).splitlines()[1:]]
    check(sorted(names) == ["c1", "d", "d@s1"],
          "the catalogue still lists d, d@s1 and c1", f"list: {names}")


# ---- the cases ----

def case_record(case, truth, off, compressed):
    print(f"== {case}: a flipped byte in the payload of a "
          f"{'zstd-compressed' if compressed else 'raw'} data record "
          f"(block at {off // K}K of d, d@s1, c1)", flush=True)
    store = fresh(case)
    name = name_of(truth["d"][off:off + 4096])
    rec = [r for r in sb.records(store) if r["name"] == name][0]
    check(bool(rec["flags"] & sb.F_ZSTD) == compressed,
          f"the record is {'compressed' if compressed else 'raw'} "
          f"({rec['stored']} bytes stored)")
    sb.flip(rec["seg"], rec["payload"] + rec["stored"] // 2)
    for spec in ("d", "d@s1", "c1"):
        read_fails(store, spec, off, 4096, truth[spec], "the damaged block")
    read_fails(store, "d", off - 64 * K, 256 * K, truth["d"],
               "a range over it")
    reads_back(store, "d", 6 * M, 2 * M, truth["d"], " (undamaged)")
    reads_back(store, "d@s1", 2 * M, 2 * M, truth["d@s1"], " (undamaged)")
    nbd_eio(store, "c1", off, case)
    scrub_names(store, name, ["c1", "d", "d@s1"])
    rc, out, _ = blkctl(store, "fsck")
    check(rc == 0, "fsck is clean: the counts are right (fsck checks "
          "counts; scrub checks contents)", f"exit {rc}: {text(out)}")
    rc, o = rebuild(store, True)
    check("1 bad record skipped" in o and
          f"chunk {name} is referenced but no segment holds it" in o,
          "rebuild names the bad record and the chunk no segment holds",
          o[-300:])
    lists_all(store)
    for spec in ("d", "c1"):
        read_fails(store, spec, off, 4096, truth[spec],
                   "lost: not zeros, not other data")
    mb = off - off % M  # the MiB holding the lost block: around it
    reads_back(store, "d", 0, mb, truth["d"], " after rebuild")
    reads_back(store, "d", mb + M, 8 * M - mb - M, truth["d"],
               " after rebuild")
    rc, out, _ = blkctl(store, "fsck")
    check(rc == 1 and f"chunk {name} is referenced" in text(out),
          "fsck after the rebuild still names the lost chunk",
          f"exit {rc}: {text(out)[-300:]}")
    rc, out, _ = blkctl(store, "scrub")
    note(f"scrub after the rebuild: exit {rc}: {last(text(out))} "
         "(the lost chunk is no longer indexed: only fsck names it)")


def case_item(case, truth, what):
    off = 1 * M
    name = name_of(truth["d"][off:off + 4096])
    store = fresh(case)
    it = [i for i in sb.chunk_items(store) if i["name"] == name][0]
    mdb = os.path.join(store, "index", "data.mdb")
    if what == "location":
        print(f"== {case}: data.mdb: a flipped byte in the location of the "
              f"chunk-table item of the block at {off // K}K (offset "
              f"{it['off'] + 33} of data.mdb, page {it['off'] // 4096})",
              flush=True)
        sb.flip(mdb, it["off"] + 31 + 2)  # offset bits of the location
        read_fails(store, "d@s1", off, 4096, truth["d@s1"],
                   "the index points at the wrong bytes")
        reads_back(store, "d", 6 * M, 2 * M, truth["d"], " (undamaged)")
        nbd_eio(store, "d", off, case)
        scrub_names(store, name, ["c1", "d", "d@s1"])
        rc, out, _ = blkctl(store, "fsck")
        check(rc == 0, "fsck is clean (counts right; scrub found the "
              "damage)", f"exit {rc}: {text(out)}")
        rebuild(store, False)
        lists_all(store)
        for spec in ("d", "d@s1", "c1"):
            reads_back(store, spec, 0, 16 * M, truth[spec],
                       " whole, after rebuild")
        rc, out, _ = blkctl(store, "scrub")
        check(rc == 0, "scrub is clean after the rebuild", text(out))
    else:
        print(f"== {case}: data.mdb: a flipped bit in the reference count "
              f"of the chunk-table item of the block at {off // K}K "
              f"(count {it['refs']})", flush=True)
        sb.flip(mdb, it["off"] + 38, 0x04)
        rc, out, _ = blkctl(store, "fsck")
        want = f"chunk {name}: index count {it['refs'] ^ 4}, roots reach " \
               f"it {it['refs']} time"
        check(rc == 1 and want in text(out), "fsck exits 1 naming the count",
              f"exit {rc}: {text(out)[-300:]}")
        note([ln for ln in text(out).splitlines() if name in ln][0][:110])
        rc, out, err = blkctl(store, "fsck", "--repair")
        check(rc == 1 and "(counts repaired)" in err,
              "fsck --repair exits 1 saying the counts were repaired",
              f"exit {rc}: {last(err)}")
        rc, out, _ = blkctl(store, "fsck")
        check(rc == 0 and refs_of(store, name) == it["refs"],
              "fsck is clean afterwards, count restored", text(out))
        for spec in ("d", "d@s1"):
            reads_back(store, spec, 0, 16 * M, truth[spec], " whole")


def case_pages(case, truth, how):
    store = fresh(case)
    mdb = os.path.join(store, "index", "data.mdb")
    db = sb.Lmdb(mdb)
    if how == "top":
        pg = db.subdb("chunks")[-1]
        print(f"== {case}: data.mdb: garbage over the chunk table's top page "
              f"(page {pg})", flush=True)
        with open(mdb, "r+b") as f:
            f.seek(pg * db.psize + 16)
            f.write(hashlib.shake_128(b"garbage").digest(256))
    else:
        items = sb.chunk_items(store)
        pg = items[len(items) // 2]["off"] // db.psize
        print(f"== {case}: data.mdb: a chunk-table leaf page zeroed "
              f"(page {pg})", flush=True)
        with open(mdb, "r+b") as f:
            f.seek(pg * db.psize)
            f.write(bytes(db.psize))
    rc, out, err = blkctl(store, "read", "d", "0", str(8 * M))
    good = truth["d"][:len(out)] == out
    check(good, "blkctl read prints no wrong byte",
          f"exit {rc}, {len(out)} bytes")
    note(f"blkctl read d: exit {rc}, {len(out)} bytes: {last(err)}")
    rc, out, err = blkctl(store, "scrub")
    check(rc == 1, "scrub exits 1 (the index is damaged)",
          f"exit {rc}: {last(text(out))} {last(err)}")
    rc, out, err = blkctl(store, "fsck")
    check(rc == 1, "fsck exits 1 with its findings",
          f"exit {rc}: {last(text(out))} {last(err)}")
    note(f"fsck: exit {rc}: {last(text(out)) or last(err)}")
    rebuild(store, False)
    lists_all(store)
    for spec in ("d", "d@s1", "c1"):
        reads_back(store, spec, 0, 16 * M, truth[spec], " whole, after "
                   "rebuild")
    rc, out, _ = blkctl(store, "scrub")
    check(rc == 0, "scrub is clean after the rebuild", text(out))


def case_lost_index(case, truth):
    print(f"== {case}: data.mdb deleted: the whole index lost", flush=True)
    store = fresh(case)
    os.unlink(os.path.join(store, "index", "data.mdb"))
    rc, out, err = blkctl(store, "list")
    note(f"blkctl list: exit {rc}: {last(err)}")
    rc, o = blkctl(store, "fsck", "--rebuild")[:2]
    o = text(o)
    for ln in o.splitlines():
        note("rebuild: " + ln)
    rc2, out, _ = blkctl(store, "list")
    lost = len(text(out).splitlines()) <= 1
    said = any(w in o.lower() for w in ("catalogue", "catalog", "no disk",
                                        "disks lost", "not carried"))
    if lost:
        check(rc != 0 and said, "fsck --rebuild says that the disks could "
              "not be carried over (exit 1)", f"exit {rc}, output: {o!r}")
        rc3, out3, _ = blkctl(store, "gc")
        note(f"gc right after it: {text(out3) or '(failed)'}")
    else:
        lists_all(store)


def case_node(case, truth):
    store = fresh(case)
    root = root_of(store, "d")
    print(f"== {case}: a flipped byte in disk d's root map node record "
          f"({root[:16]}...)", flush=True)
    rec = [r for r in sb.records(store) if r["name"] == root][0]
    check(bool(rec["flags"] & sb.F_NODE), "the record is a map node")
    sb.flip(rec["seg"], rec["payload"] + rec["stored"] // 2)
    only_d = name_of(truth["d"][7 * M:7 * M + 4096])  # held by d alone
    refs0 = refs_of(store, only_d)
    for off in (0, 1 * M, 7 * M):
        read_fails(store, "d", off, 4096, truth["d"], "under the node")
    for spec in ("d@s1", "c1"):
        reads_back(store, spec, 0, 16 * M, truth[spec], " (own roots)")
    nbd_eio(store, "d", 7 * M, case)
    scrub_names(store, root, ["d"])
    rc, out, _ = blkctl(store, "fsck")
    o = text(out)
    check(rc == 1 and f"map node {root} cannot be read" in o,
          "fsck exits 1: 'map node ... cannot be read'", f"exit {rc}")
    note(f"fsck: {len(o.splitlines())} lines; last: {last(o)}")
    # fsck --repair cannot see below the damaged node: it must not take
    # that for 'nothing references these chunks' (gc would delete them).
    rep = os.path.join(WORK, case + "-repair")
    shutil.rmtree(rep, ignore_errors=True)
    shutil.copytree(store, rep)
    blkctl(rep, "fsck", "--repair")
    after = refs_of(rep, only_d)
    check(after == refs0, "fsck --repair keeps the counts of chunks under "
          "the unreadable node", f"count of a block held only by d: "
          f"{refs0} -> {after}; `blkctl gc` would now delete it")
    rc, out, _ = blkctl(rep, "gc")
    note(f"gc after that repair: {text(out)}")
    shutil.rmtree(rep, ignore_errors=True)
    rc, o = rebuild(store, True)
    check(f"map node {root} cannot be read" in o and
          f"chunk {root} is referenced but no segment holds it" in o,
          "rebuild names the lost node", o[-300:])
    lists_all(store)
    read_fails(store, "d", 7 * M, 4096, truth["d"],
               "after rebuild: still an error, never zeros")
    for spec in ("d@s1", "c1"):
        reads_back(store, spec, 0, 16 * M, truth[spec], " after rebuild")


def main():
    truth = build()
    rc, out, _ = blkctl(PRISTINE, "scrub")
    check(rc == 0, "the pristine store scrubs clean", text(out))
    case_record("a1", truth, 1 * M, False)
    case_record("a2", truth, 4 * M + 8 * K, True)
    case_item("b1", truth, "location")
    case_item("b2", truth, "count")
    case_pages("b3", truth, "top")
    case_pages("b4", truth, "leaf")
    case_lost_index("b5", truth)
    case_node("c", truth)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report, do not hide
        import traceback
        traceback.print_exc()
        check(False, f"unexpected error: {e}")
    print(f"== {len(failures)} check(s) failed" if failures else
          "== all checks passed", flush=True)
    sys.exit(1 if failures else 0)
