#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/guest_ro.sh - a disk attached read-only (STORE:DISK,ro)
# offers VIRTIO_BLK_F_RO, answers every write, discard and write-zeroes
# with IOERR, reads fine (also for a second of the QD16 read benchmark),
# and is unchanged afterwards.
set -u
. "$(dirname "$0")/guest_lib.sh"

size=$((1024 * 1024))
blk init "$BLKCTL_STORE"
python3 "$pattern" make "$tmp/img" --size $size --seed 11 --blocks 256 \
	--ops write || fail "guest_pattern.py make"
blk import d "$tmp/img"

run_guest "$tmp/out" "test=verify,ro,getid,bench seed=11 start=0 blocks=256 serial=d secs=1" \
	--disk "$BLKCTL_STORE:d,ro"
rc=$?
[ $rc = 0 ] || fail "cavm exited $rc"
expect_ok "$tmp/out" verify ro getid bench
grep -aq '^bench reqs_per_s=[1-9][0-9]* qd=16 ' "$tmp/out" || fail "no bench figure"
blk export d "$tmp/back"
cmp -s "$tmp/img" "$tmp/back" || fail "the read-only disk changed"

say "the same disk read-write is not refused (the ro check can fail)"
run_guest "$tmp/out2" "test=ro seed=11 start=0 blocks=1" --disk "$BLKCTL_STORE:d"
rc=$?
[ $rc = 1 ] || fail "cavm exited $rc, not 1"
grep -aq '^FAIL ro: VIRTIO_BLK_F_RO not offered' "$tmp/out2" ||
	fail "a writable disk passed the ro scenario"
fsck_clean "the boots"
echo "PASS"
