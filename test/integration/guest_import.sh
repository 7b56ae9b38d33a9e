#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/guest_import.sh - what `blkctl import` put is what the
# test guest reads through cavm's virtio-blk.
#
#   1. guest_pattern.py makes a 4 MiB image (seed 42, every block); blkctl
#      imports it; the guest verifies all 1024 blocks, and GET_ID gives
#      the disk's name
#   2. a new disk reads as zeros
#   3. the guest's wrong expectation fails: verify with another seed must
#      report FAIL and exit status 1 (the check can fail); reading changed
#      nothing
#   4. test=nosuch: "FAIL test: unknown scenario", exit status 1
#   5. no --disk: "virtio: no device", exit status 1
#   6. test=fault: a page fault in ring 3 is reported, exit status 99
set -u
. "$(dirname "$0")/guest_lib.sh"

size=$((4 * 1024 * 1024))
blk init "$BLKCTL_STORE"
python3 "$pattern" make "$tmp/img" --size $size --seed 42 --start 0 \
	--blocks 1024 --ops write || fail "guest_pattern.py make"
blk import img "$tmp/img"
blk create empty $size

say "1. the guest verifies the imported image"
run_guest "$tmp/out1" "test=verify,getid seed=42 start=0 blocks=1024 serial=img" \
	--disk "$BLKCTL_STORE:img"
rc=$?
[ $rc = 0 ] || fail "cavm exited $rc"
expect_ok "$tmp/out1" verify getid

say "2. a new disk reads as zeros"
run_guest "$tmp/out2" "test=zero start=0 blocks=1024" --disk "$BLKCTL_STORE:empty"
rc=$?
[ $rc = 0 ] || fail "cavm exited $rc"
expect_ok "$tmp/out2" zero

say "3. a wrong seed is noticed"
run_guest "$tmp/out3" "test=verify seed=43 start=0 blocks=16" --disk "$BLKCTL_STORE:img"
rc=$?
[ $rc = 1 ] || fail "cavm exited $rc, not 1 (one failed scenario)"
grep -aq '^FAIL verify: sector 0 should read as the pattern' "$tmp/out3" ||
	fail "no FAIL line for the wrong seed"
say "4. an unknown scenario is a failure, named"
run_guest "$tmp/out4" "test=nosuch" --disk "$BLKCTL_STORE:img"
rc=$?
[ $rc = 1 ] || fail "cavm exited $rc, not 1"
grep -aq '^FAIL test: unknown scenario "nosuch"' "$tmp/out4" ||
	fail "no FAIL line for test=nosuch"
say "5. no disk: the guest says so and fails"
run_guest "$tmp/out5" "test=info"
rc=$?
[ $rc = 1 ] || fail "cavm exited $rc, not 1"
grep -aq '^virtio: no device 1af4:1042 on bus 0' "$tmp/out5" ||
	fail "no message about the missing device"
say "6. an exception in the guest is reported and ends it with 99"
run_guest "$tmp/out6" "test=fault" --disk "$BLKCTL_STORE:img"
rc=$?
[ $rc = 99 ] || fail "cavm exited $rc, not 99"
grep -aq '^FAIL exception: vector 14 .* cs 0x23 .* cr2 0x100000000$' "$tmp/out6" ||
	fail "no page fault report from ring 3"
blk export img "$tmp/back"
cmp -s "$tmp/img" "$tmp/back" || fail "reading changed the disk"
fsck_clean "the boots"
echo "PASS"
