# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/storebytes.py - read a store's bytes the way
# docs/cas-format.md describes them, to find what damage.py damages:
#   records(store)     every record of every segment file, self-described
#   chunk_items(store) every live item of the index's "chunks" table:
#                      where in data.mdb it lives and what it says
# Read-only; no store code is used (an independent reading of the format).
# Not a test itself.
import glob
import os
import struct

REC_MAGIC = 0x52534143
REC_HDR = 48
SEG_HDR = 64
F_ZSTD, F_NODE = 1, 2


def records(store):
    """[{seg, off, flags, stored, name (hex), payload (file offset)}]"""
    out = []
    for path in sorted(glob.glob(os.path.join(store, "segments", "*.seg"))):
        with open(path, "rb") as f:
            b = f.read()
        off = SEG_HDR
        while off + REC_HDR <= len(b):
            magic, ver, flags, stored = struct.unpack_from("<IBBH", b, off)
            if magic != REC_MAGIC or ver != 1:
                off += 16
                continue
            n = stored or 4096
            out.append(dict(seg=path, off=off, flags=flags, stored=n,
                            name=b[off + 8:off + 40].hex(),
                            payload=off + REC_HDR))
            off += (REC_HDR + n + 15) & ~15
    return out


# ---- LMDB (0.9, 64-bit little-endian) ----
P_BRANCH, P_LEAF, P_META, P_LEAF2, P_SUBP = 0x01, 0x02, 0x08, 0x20, 0x40
F_BIGDATA, F_SUBDATA, F_DUPDATA = 0x01, 0x02, 0x04
PAGEHDR = 16
DB = struct.Struct("<IHHQQQQQ")  # MDB_db: pad, flags, depth, ..., root


class Lmdb:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.b = f.read()
        metas = []
        for pg in (0, 1):
            # psize is not known yet: meta pages sit at 0 and psize; try
            # 4096 (what LMDB uses on this platform) and check the magic.
            o = pg * 4096
            magic, ver = struct.unpack_from("<II", self.b, o + PAGEHDR)
            if magic != 0xBEEFC0DE:
                continue
            free_db = DB.unpack_from(self.b, o + PAGEHDR + 24)
            main_db = DB.unpack_from(self.b, o + PAGEHDR + 72)
            txnid = struct.unpack_from("<Q", self.b, o + PAGEHDR + 128)[0]
            metas.append((txnid, free_db[0], main_db))
        if not metas:
            raise ValueError("no LMDB meta page")
        _, self.psize, self.main = max(metas)

    def page(self, pgno):
        return pgno * self.psize

    def nodes(self, po):
        """(node offset, flags, key, data offset, data size) of a page."""
        lower = struct.unpack_from("<H", self.b, po + 12)[0]
        for i in range((lower - PAGEHDR) >> 1):
            no = po + struct.unpack_from("<H", self.b, po + PAGEHDR + 2 * i)[0]
            lo, hi, fl, ks = struct.unpack_from("<HHHH", self.b, no)
            key = self.b[no + 8:no + 8 + ks]
            yield no, lo, hi, fl, key, no + 8 + ks

    def leaves(self, root):
        """Every leaf node of the tree at root: (flags, key, doff, dsize)."""
        stack = [root]
        while stack:
            po = self.page(stack.pop())
            pflags = struct.unpack_from("<H", self.b, po + 10)[0]
            for no, lo, hi, fl, key, doff in self.nodes(po):
                if pflags & P_BRANCH:
                    stack.append(lo | hi << 16 | fl << 32)
                else:
                    yield fl, key, doff, lo | hi << 16

    def subdb(self, name):
        for fl, key, doff, dsize in self.leaves(self.main[-1]):
            if key == name.encode() and fl & F_SUBDATA:
                return DB.unpack_from(self.b, doff)
        raise KeyError(name)

    def leaf2_items(self, po):
        """(item offset, item bytes) of a LEAF2 page or sub-page."""
        ks, _, lower = struct.unpack_from("<HHH", self.b, po + 8)
        for i in range((lower - PAGEHDR) >> 1):
            o = po + PAGEHDR + i * ks
            yield o, self.b[o:o + ks]

    def dup_items(self, fl, doff):
        if fl & F_SUBDATA:  # a sub-database of its own
            root = DB.unpack_from(self.b, doff)[-1]
            stack = [root]
            while stack:
                po = self.page(stack.pop())
                pflags = struct.unpack_from("<H", self.b, po + 10)[0]
                if pflags & P_BRANCH:
                    for no, lo, hi, f2, key, _ in self.nodes(po):
                        stack.append(lo | hi << 16 | f2 << 32)
                else:
                    yield from self.leaf2_items(po)
        else:  # a sub-page inside the node
            yield from self.leaf2_items(doff)


def chunk_items(store):
    """Live items of the chunks table: [{off, name (hex), loc, refs}].
    'off' is the item's offset in data.mdb: name bytes 1..31 (31), the
    location (7), the count (4)."""
    db = Lmdb(os.path.join(store, "index", "data.mdb"))
    out = []
    root = db.subdb("chunks")[-1]
    for fl, key, doff, dsize in db.leaves(root):
        if not fl & F_DUPDATA:
            continue
        for o, item in db.dup_items(fl, doff):
            name = key + item[:31]
            loc = int.from_bytes(item[31:38], "little")
            refs = int.from_bytes(item[38:42], "little")
            out.append(dict(off=o, name=name.hex(), loc=loc, refs=refs))
    return out


def flip(path, off, mask=0x5A):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ mask]))
