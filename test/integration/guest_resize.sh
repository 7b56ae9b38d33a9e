#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/guest_resize.sh - a disk grown while the test guest
# runs: `blkctl resize` goes through cavm's control socket (cavm owns the
# store), cavm bumps the config generation and sends the config-change
# MSI-X interrupt, the guest sees the new capacity, and the new space
# reads as zeros and takes writes (the guest's resize scenario).
# Afterwards the disk has the new size and the guest's block at its end.
set -u
. "$(dirname "$0")/guest_lib.sh"

blk init "$BLKCTL_STORE"
blk create d 1M
out=$tmp/out
"$cavm" run --kernel "$guest" --mem 256M --serial stdio \
	--disk "$BLKCTL_STORE:d" --control "$tmp/ctl.sock" \
	--cmdline "test=resize seed=12 resize_to=4096" \
	</dev/null >"$out" 2>"$out.err" &
cavm_pid=$!
for _ in $(seq 1 600); do # 60 s
	grep -aq '^resize: waiting' "$out" && break
	kill -0 $cavm_pid 2>/dev/null || break
	sleep 0.1
done
grep -aq '^resize: waiting' "$out" || {
	sed 's/^/   | /' "$out"
	fail "the guest never waited for the resize"
}
say "blkctl resize d 2M (through cavm)"
"$blkctl" resize d 2M || fail "blkctl resize through cavm exited $?"
for _ in $(seq 1 600); do
	kill -0 $cavm_pid 2>/dev/null || break
	sleep 0.1
done
if kill -0 $cavm_pid 2>/dev/null; then
	sed 's/^/   | /' "$out"
	fail "cavm still runs 60 s after the resize"
fi
wait $cavm_pid
rc=$?
cavm_pid=
sed -i 's/\r$//' "$out"
sed 's/^/   | /' "$out"
sed 's/^/   ! /' "$out.err"
[ $rc = 0 ] || fail "cavm exited $rc"
expect_ok "$out" resize
[ "$("$blkctl" info d --json | sed -n 's/.*"size":\([0-9]*\).*/\1/p')" = 2097152 ] ||
	fail "the disk is not 2 MiB after the resize"
blk export d "$tmp/d.img"
python3 "$pattern" check "$tmp/d.img" --size 2097152 --seed 12 --start 511 \
	--blocks 1 --ops write || fail "the guest's block at the end is not there"
fsck_clean "the resize"
echo "PASS"
