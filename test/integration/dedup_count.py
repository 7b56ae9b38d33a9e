#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/dedup_count.py - how many distinct data chunks a
# perfect dedup of these raw images holds, computed without cavm.
#
#   dedup_count.py [-v] IMAGE...
#
# Cuts every image into 4 KiB blocks (a short last block is padded with
# zeros, as a disk's last block reads), drops the all-zero block (a hole:
# never stored), and prints the number of distinct blocks left across all
# the images: what `blkctl df --json` must report as unique_data_chunks
# for a store holding exactly these images.  With -v, per-image counts go
# to stderr.  Identity is by SHA-256 of the content, like the store's.
import hashlib
import sys

BLOCK = 4096
ZERO = bytes(BLOCK)
READ = 256 * BLOCK


def blocks(path):
    """Yield the image's 4 KiB blocks, the last one zero-padded."""
    with open(path, "rb") as f:
        while True:
            buf = f.read(READ)
            if not buf:
                return
            for off in range(0, len(buf), BLOCK):
                blk = buf[off:off + BLOCK]
                if len(blk) < BLOCK:
                    blk += bytes(BLOCK - len(blk))
                yield blk


def main(argv):
    verbose = argv[:1] == ["-v"]
    paths = argv[1:] if verbose else argv
    if not paths or any(p.startswith("-") for p in paths):
        print("usage: dedup_count.py [-v] IMAGE...", file=sys.stderr)
        return 2
    seen = set()
    for path in paths:
        nonzero = new = 0
        for blk in blocks(path):
            if blk == ZERO:
                continue
            nonzero += 1
            name = hashlib.sha256(blk).digest()
            if name not in seen:
                seen.add(name)
                new += 1
        if verbose:
            print(f"{path}: {nonzero} non-zero blocks, {new} new",
                  file=sys.stderr)
    print(len(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
