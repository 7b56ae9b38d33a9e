#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/guest_bad.sh - deliberately bad descriptors leave cavm
# alive and the disk intact.
#
# The guest writes a range, then hands the device eleven broken inputs one
# at a time (buffers outside RAM, wrapping past 2^64, 4 GiB long; a
# looping chain; a head index past the queue; avail->idx jumping; bad
# indirect tables; no status byte; a descriptor table outside RAM).
# Each must be answered IOERR or with DEVICE_NEEDS_RESET; the guest then
# resets the device and reads the first block back correctly.  The guest exits 0 (every case passed, so
# cavm survived all of them), and the disk equals what was written.
set -u
. "$(dirname "$0")/guest_lib.sh"

size=$((1024 * 1024))
blk init "$BLKCTL_STORE"
blk create d $size

run_guest "$tmp/out" "test=write,bad,flush seed=3 start=0 blocks=32" \
	--disk "$BLKCTL_STORE:d"
rc=$?
[ $rc = 0 ] || fail "cavm exited $rc"
expect_ok "$tmp/out" write bad flush
grep -aq '^bad: 11 cases' "$tmp/out" || fail "not all eleven bad cases ran"
fsck_clean "the bad descriptors"
blk export d "$tmp/d.img"
python3 "$pattern" check "$tmp/d.img" --size $size --seed 3 --blocks 32 \
	--ops write || fail "the disk changed"
echo "PASS"
