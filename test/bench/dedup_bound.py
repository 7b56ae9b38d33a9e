#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""dedup_bound.py - the exact-dedup bound of a set of raw images.

    dedup_bound.py [--json] IMAGE...

Splits every image into 4 KiB blocks (the last one padded with zeros),
drops the all-zero blocks, and counts the distinct ones across all images
by SHA-256.  distinct * 4096 is what a store that keeps each distinct
non-zero block once, uncompressed and without metadata, would hold: the
bound that compression must beat.  Holes of sparse files are skipped
(SEEK_DATA/SEEK_HOLE), which changes nothing in the count.

Prints one line per image and a total; with --json, one JSON line.
"""
import hashlib
import json
import os
import sys

BLOCK = 4096
ZERO = bytes(BLOCK)
READ = 4 << 20


def data_ranges(fd, size):
    """(start, end) ranges that may hold data, block-aligned."""
    pos = 0
    while pos < size:
        try:
            data = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole remains
            return
        try:
            hole = os.lseek(fd, data, os.SEEK_HOLE)
        except OSError:
            hole = size
        data -= data % BLOCK
        hole = min(size, -(-hole // BLOCK) * BLOCK)
        yield data, hole
        pos = hole


def scan(path, seen):
    """Add path's non-zero block digests to seen; return (blocks, nonzero,
    new distinct)."""
    size = os.path.getsize(path)
    nonzero = new = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        for start, end in data_ranges(fd, size):
            pos = start
            while pos < end:
                buf = os.pread(fd, min(READ, end - pos), pos)
                if not buf:
                    break
                for i in range(0, len(buf), BLOCK):
                    b = buf[i:i + BLOCK]
                    if len(b) < BLOCK:
                        b = b + bytes(BLOCK - len(b))
                    if b == ZERO:
                        continue
                    nonzero += 1
                    d = hashlib.sha256(b).digest()
                    if d not in seen:
                        seen.add(d)
                        new += 1
                pos += len(buf)
    finally:
        os.close(fd)
    return -(-size // BLOCK), nonzero, new


def main(argv):
    as_json = "--json" in argv
    paths = [a for a in argv if a != "--json"]
    if not paths:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    seen = set()
    images = []
    for p in paths:
        blocks, nonzero, new = scan(p, seen)
        images.append({"image": p, "blocks": blocks, "nonzero_blocks": nonzero,
                       "new_distinct_blocks": new})
    total_nonzero = sum(i["nonzero_blocks"] for i in images)
    out = {"images": images, "nonzero_blocks": total_nonzero,
           "distinct_blocks": len(seen),
           "bound_bytes": len(seen) * BLOCK,
           "nonzero_bytes": total_nonzero * BLOCK}
    if as_json:
        print(json.dumps(out, separators=(",", ":")))
    else:
        for i in images:
            print("%-40s %10d blocks %10d non-zero %10d new distinct"
                  % (i["image"], i["blocks"], i["nonzero_blocks"],
                     i["new_distinct_blocks"]))
        print("distinct non-zero 4 KiB blocks: %d -> bound %d bytes "
              "(%.1f MiB); non-zero total %.1f MiB"
              % (len(seen), out["bound_bytes"], out["bound_bytes"] / 2**20,
                 out["nonzero_bytes"] / 2**20))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
