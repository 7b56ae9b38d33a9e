#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/guest_pattern.py - the host side of the test guest's
# data pattern (test/guest/pattern.c) and of the scenarios' effect on a
# disk (test/guest/scen_io.c), so a script can build the image a guest
# run must leave, or one for the guest to verify.
#
#   guest_pattern.py make OUT  --size BYTES --seed S --start B --blocks N
#                              --ops write[,discard,wzeroes,...]
#   guest_pattern.py check IMG (same options): IMG must equal that image;
#                              exit 1 naming the first differing sector
#
# Word i (0..63, little-endian) of 512-byte sector s is
# mix64(mix64(seed) ^ (s * 64 + i)), mix64 being splitmix64's finalizer.
# The range is --blocks 4 KiB blocks from block --start; q is a quarter of
# it in whole blocks.  Scenario effects, in --ops order, on a zero image:
#   write, qd, indirect, verify   the range := pattern
#   discard                       sectors [q, 2q) of the range := zeros
#   wzeroes                       [2q, 3q) and [3q + 3, 3q + 6) := zeros
#   rewrite                       the first --rblocks blocks := the
#                                 pattern of --seed2
#   anything else                 nothing (flush, getid, bad, bench, ...)
import argparse
import struct
import sys

M64 = (1 << 64) - 1
SECTOR = 512


def mix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def sector_pattern(seed, s):
    k = mix64(seed)
    base = s * 64
    return struct.pack("<64Q", *(mix64(k ^ (base + i)) for i in range(64)))


def build(size, seed, start, blocks, ops, seed2=None, rblocks=1):
    img = bytearray(size)
    sec0, nsec = start * 8, blocks * 8
    if (sec0 + nsec) * SECTOR > size:
        sys.exit("guest_pattern: the range does not fit in --size")
    q = nsec // 8 // 4 * 8

    def zero(first, n):
        img[first * SECTOR:(first + n) * SECTOR] = bytes(n * SECTOR)

    for op in ops:
        if op in ("write", "qd", "indirect", "verify"):
            for s in range(sec0, sec0 + nsec):
                img[s * SECTOR:(s + 1) * SECTOR] = sector_pattern(seed, s)
        elif op == "rewrite":
            for s in range(sec0, sec0 + rblocks * 8):
                img[s * SECTOR:(s + 1) * SECTOR] = sector_pattern(seed2, s)
        elif op == "discard":
            zero(sec0 + q, q)
        elif op == "wzeroes":
            zero(sec0 + 2 * q, q)
            zero(sec0 + 3 * q + 3, 3)
    return img


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("mode", choices=("make", "check"))
    ap.add_argument("file")
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--blocks", type=int, default=64)
    ap.add_argument("--ops", default="write")
    ap.add_argument("--seed2", type=int)
    ap.add_argument("--rblocks", type=int, default=1)
    a = ap.parse_args()
    seed2 = a.seed + 1 if a.seed2 is None else a.seed2
    img = build(a.size, a.seed, a.start, a.blocks, a.ops.split(","), seed2,
                a.rblocks)
    if a.mode == "make":
        with open(a.file, "wb") as f:
            f.write(img)
        return 0
    with open(a.file, "rb") as f:
        got = f.read()
    if len(got) != len(img):
        print(f"{a.file}: {len(got)} bytes, expected {len(img)}")
        return 1
    if got == img:
        print(f"{a.file}: equals the expected image ({a.ops})")
        return 0
    for s in range(len(img) // SECTOR):
        sl = slice(s * SECTOR, (s + 1) * SECTOR)
        if got[sl] != img[sl]:
            want = "zeros" if img[sl] == bytes(SECTOR) else "the pattern"
            have = "zeros" if got[sl] == bytes(SECTOR) else "other data"
            print(f"{a.file}: sector {s} should be {want}, has {have}")
            return 1
    return 1


if __name__ == "__main__":
    sys.exit(main())
