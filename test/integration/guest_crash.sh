#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/guest_crash.sh - kill -9 of cavm after the test guest's
# FLUSH completed loses nothing flushed (ARCHITECTURE.md, invariant 2).
#
# The guest writes 2 MiB of pattern, flushes (prints "flushed"), then
# writes another seed over the first 64 blocks without a flush and halts
# (hold=1).  cavm is killed with SIGKILL as soon as "holding" appears.
# Afterwards fsck is clean, the flushed blocks past the first 64 are
# exactly the pattern, and each of the first 64 blocks is either seed's
# pattern whole (an unflushed write may be lost, never torn or mixed).
set -u
. "$(dirname "$0")/guest_lib.sh"

size=$((4 * 1024 * 1024))
blk init "$BLKCTL_STORE"
blk create d $size

say "guest: write 512 blocks, flush, rewrite 64 unflushed, hold"
out=$tmp/out
"$cavm" run --kernel "$guest" --mem 256M --serial stdio --disk "$BLKCTL_STORE:d" \
	--cmdline "test=write,flush,rewrite seed=5 seed2=6 rblocks=64 start=0 blocks=512 hold=1" \
	</dev/null >"$out" 2>"$out.err" &
cavm_pid=$!
for _ in $(seq 1 1200); do # 120 s
	grep -aq '^holding' "$out" && break
	kill -0 $cavm_pid 2>/dev/null || break
	sleep 0.1
done
sed 's/^/   | /' "$out"
grep -aq '^holding' "$out" || fail "the guest never reached \"holding\""
grep -aq '^flushed' "$out" || fail "no \"flushed\" before \"holding\""
expect_ok "$out" write flush rewrite
kill -9 $cavm_pid || fail "cavm was not running any more"
wait $cavm_pid 2>/dev/null
cavm_pid=
sed 's/^/   ! /' "$out.err"

say "after kill -9"
fsck_clean "kill -9"
blk export d "$tmp/d.img"
python3 "$pattern" make "$tmp/a.img" --size $size --seed 5 --blocks 512 --ops write
python3 "$pattern" make "$tmp/b.img" --size $size --seed 6 --blocks 64 --ops write
blocks_a=0 blocks_b=0
for b in $(seq 0 63); do
	got=$(dd if="$tmp/d.img" bs=4096 skip=$b count=1 status=none | md5sum)
	a=$(dd if="$tmp/a.img" bs=4096 skip=$b count=1 status=none | md5sum)
	bb=$(dd if="$tmp/b.img" bs=4096 skip=$b count=1 status=none | md5sum)
	if [ "$got" = "$a" ]; then
		blocks_a=$((blocks_a + 1))
	elif [ "$got" = "$bb" ]; then
		blocks_b=$((blocks_b + 1))
	else
		fail "block $b is neither the flushed nor the unflushed data"
	fi
done
echo "   first 64 blocks: $blocks_a flushed data, $blocks_b unflushed rewrite"
cmp -s <(tail -c +$((64 * 4096 + 1)) "$tmp/d.img") <(tail -c +$((64 * 4096 + 1)) "$tmp/a.img") ||
	fail "flushed data past block 64 was lost or changed"
echo "PASS"
