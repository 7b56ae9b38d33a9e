#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/guest_write.sh - what the test guest writes through
# cavm's virtio-blk is what `blkctl export` gives afterwards.
#
# One boot runs write (32 KiB requests of 2 buffers, read back), qd (32
# requests in flight, scrambled order), indirect (indirect tables),
# discard, wzeroes (whole blocks with UNMAP and a partial block), flush,
# getid (serial == disk name), each checked by the guest against its own
# model; then the exported disk must equal guest_pattern.py's image of
# the same scenarios, and fsck must be clean.  A second boot with
# event_idx=0 indirect=0 (plain notifications, direct chains only) and a
# 32-entry queue (its ring positions wrap every 32 requests) writes and
# checks another range, also 8 requests in flight.
set -u
. "$(dirname "$0")/guest_lib.sh"

size=$((4 * 1024 * 1024))
blk init "$BLKCTL_STORE"
blk create d $size

say "1. write, qd, indirect, discard, wzeroes, flush, getid"
ops=write,qd,indirect,discard,wzeroes
run_guest "$tmp/out1" "test=info,$ops,flush,getid seed=7 start=16 blocks=256 qd=32 serial=d" \
	--disk "$BLKCTL_STORE:d"
rc=$?
[ $rc = 0 ] || fail "cavm exited $rc (the guest's failure count)"
expect_ok "$tmp/out1" info write qd indirect discard wzeroes flush getid
grep -aq '^flushed' "$tmp/out1" || fail "no \"flushed\" line"
fsck_clean "the first boot"
blk export d "$tmp/d.img"
python3 "$pattern" check "$tmp/d.img" --size $size --seed 7 --start 16 \
	--blocks 256 --ops $ops || fail "the exported disk differs"

say "2. without EVENT_IDX and INDIRECT_DESC, a 32-entry queue, another range"
run_guest "$tmp/out2" "test=info,write,qd,flush seed=8 start=512 blocks=64 qd=8 qsize=32 event_idx=0 indirect=0" \
	--disk "$BLKCTL_STORE:d"
rc=$?
[ $rc = 0 ] || fail "cavm exited $rc"
expect_ok "$tmp/out2" info write qd flush
grep -aq ' queue 32$' "$tmp/out2" || fail "the queue is not 32 entries"
neg=$(grep -ao 'negotiated 0x[0-9a-f]*' "$tmp/out2" | head -n 1)
neg=${neg#negotiated }
[ -n "$neg" ] || fail "no negotiated features line"
(((neg >> 28) & 3)) && fail "EVENT_IDX or INDIRECT_DESC negotiated: $neg"
(((neg >> 32) & 1)) || fail "VERSION_1 not negotiated: $neg"
blk export d "$tmp/d2.img"
python3 "$pattern" make "$tmp/r2.img" --size $size --seed 8 --start 512 \
	--blocks 64 --ops write
# the first range is unchanged, the second is seed 8's pattern
cmp -s <(head -c $((512 * 4096)) "$tmp/d2.img") <(head -c $((512 * 4096)) "$tmp/d.img") ||
	fail "the second boot changed the first range"
cmp -s <(tail -c +$((512 * 4096 + 1)) "$tmp/d2.img" | head -c $((64 * 4096))) \
	<(tail -c +$((512 * 4096 + 1)) "$tmp/r2.img" | head -c $((64 * 4096))) ||
	fail "the second range is not seed 8's pattern"
fsck_clean "the second boot"
echo "PASS"
