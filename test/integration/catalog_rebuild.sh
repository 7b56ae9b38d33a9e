#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/catalog_rebuild.sh - the catalogue of disks survives
# the loss of the LMDB index: `blkctl fsck --rebuild` brings every disk,
# snapshot and clone back from the segments alone (their catalogue
# records, docs/cas-format.md), byte for byte.
#
# A store gets disks with known content, snapshots, clones, an import
# (written under a hidden name, then renamed), a disk deleted, a disk
# grown and shrunk, a gc in the middle that compacts (so a checkpoint
# replaces older catalogue records) and more changes after it.  Then, each on a copy of
# that store:
#   A. index/data.mdb deleted;
#   B. index/data.mdb overwritten with garbage (it cannot be read);
#   C. the whole index/ directory gone;
# and each time: fsck --rebuild exits 0 and says the catalogue was
# replayed; `list --json` is identical to before; every disk and snapshot
# exports identical bytes; fsck is clean; the deleted disk stays deleted;
# the resized disk has its last size; gc runs (the recount is complete)
# and the store takes new writes.
#
# Exit 0: pass, 1: fail, 77: skip.
set -eu -o pipefail

blkctl=${abs_top_builddir:-$(pwd)}/tools/blkctl
if [ ! -x "$blkctl" ]; then
	echo "SKIP: $blkctl is not built"
	exit 77
fi

tmp=$(mktemp -d /tmp/catalog-rebuild.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
unset BLKCTL BLKCTL_STORE 2>/dev/null || true
S=$tmp/store

fail() {
	echo "FAIL: $*"
	exit 1
}
blk() { # STORE ARGS...: blkctl that must succeed
	local st=$1
	shift
	"$blkctl" -S "$st" "$@" || fail "blkctl $* exited $?"
}
pattern() { # SEED BYTES: reproducible, partly compressible bytes
	python3 -c '
import random, sys
r = random.Random(int(sys.argv[1])); a = sys.argv[2]
n = int(a[:-1]) * {"K": 1024, "M": 1 << 20}[a[-1]] if a[-1] in "KM" else int(a)
out = bytearray()
while len(out) < n:
    out += (r.randbytes(2048) + bytes(2048)) if r.random() < .5 else (b"line %d\n" % r.randrange(10**6)) * 400
sys.stdout.buffer.write(bytes(out[:n]))' "$1" "$2"
}
if ! command -v python3 >/dev/null; then
	echo "SKIP: python3 (to make test data) is missing"
	exit 77
fi

echo "== a store with disks, snapshots, clones"
blk "$S" init "$S"
blk "$S" create a 8M
pattern 1 3M | blk "$S" write a 0
blk "$S" snapshot a@s1
pattern 2 1M | blk "$S" write a 1M
blk "$S" clone a@s1 b
pattern 3 64K | blk "$S" write b 5M
blk "$S" snapshot b@s2
pattern 4 512K | blk "$S" import imp -
blk "$S" create gone 4M
pattern 5 1M | blk "$S" write gone 0
blk "$S" create r 4M
pattern 6 2M | blk "$S" write r 0
blk "$S" snapshot a@s3
blk "$S" delete a@s3
blk "$S" create junk 32M
pattern 10 24M | blk "$S" write junk 0
blk "$S" delete junk
# Mostly dead now: gc compacts, so it writes a checkpoint of the
# catalogue; later changes are commits after it.
blk "$S" gc --json | grep -q '"segments_compacted":[1-9]' ||
	fail "gc compacted nothing: no checkpoint to test"

blk "$S" delete gone
blk "$S" resize r 16M
blk "$S" resize r 3M --force
pattern 7 4K | blk "$S" write r 1M
blk "$S" clone b c
pattern 8 100K | blk "$S" write c 7M

specs="a a@s1 b b@s2 c imp r"
blk "$S" list --json >"$tmp/list.before"
for sp in $specs; do
	blk "$S" export "$sp" "$tmp/before.$sp"
done
[ "$(blk "$S" info r --json | grep -o '"size":[0-9]*')" = '"size":3145728' ] ||
	fail "r is not 3 MiB before the loss"
blk "$S" fsck >/dev/null

check_case() { # NAME HOW
	local name=$1 how=$2 st=$tmp/$1
	echo "== $name: $how"
	cp -a "$S" "$st"
	case $how in
	deleted) rm -f "$st/index/data.mdb" ;;
	garbage)
		python3 -c '
import os, sys
p = sys.argv[1]; n = os.path.getsize(p)
open(p, "r+b").write(os.urandom(n))' "$st/index/data.mdb"
		;;
	nodir) rm -rf "$st/index" ;;
	esac
	if "$blkctl" -S "$st" list >/dev/null 2>&1; then
		fail "$name: the store opened with its index $how"
	fi
	"$blkctl" -S "$st" fsck --rebuild >"$tmp/$name.out" 2>&1 ||
		fail "$name: fsck --rebuild exited $?: $(cat "$tmp/$name.out")"
	grep -q "catalogue replayed from the segments" "$tmp/$name.out" ||
		fail "$name: rebuild did not replay the catalogue: $(cat "$tmp/$name.out")"
	grep -q "checkpoint [1-9][0-9]*, [1-9][0-9]* commits after it" "$tmp/$name.out" ||
		fail "$name: not replayed from a checkpoint and commits after it"
	echo "   $(grep catalogue "$tmp/$name.out")"
	blk "$st" list --json | cmp -s - "$tmp/list.before" ||
		fail "$name: the catalogue differs after rebuild: $(blk "$st" list)"
	for sp in $specs; do
		blk "$st" export "$sp" "$tmp/after.$sp"
		cmp -s "$tmp/before.$sp" "$tmp/after.$sp" || fail "$name: $sp differs"
	done
	echo "   $specs: identical"
	"$blkctl" -S "$st" info gone >/dev/null 2>&1 && fail "$name: the deleted disk came back"
	[ "$(blk "$st" info r --json | grep -o '"size":[0-9]*')" = '"size":3145728' ] ||
		fail "$name: r lost its last size"
	out=$("$blkctl" -S "$st" fsck 2>&1) || fail "$name: fsck after rebuild: $out"
	echo "   fsck: ${out##*$'\n'}"
	blk "$st" gc >/dev/null
	pattern 9 8K | blk "$st" write a 2M
	blk "$st" delete b@s2
	out=$("$blkctl" -S "$st" fsck 2>&1) || fail "$name: fsck after more writes: $out"
	rm -rf "$st"
}

check_case A deleted
check_case B garbage
check_case C nodir
echo "PASS"
