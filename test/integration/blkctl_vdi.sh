#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/blkctl_vdi.sh - the VDI case on real data: one golden
# ext4 image, ten clones, each changed differently; every disk must read
# back exactly as an image built independently with cp and dd, and the
# store must hold exactly one copy of every distinct block.
#
#   1. a tree of this machine's files (/usr/share/doc, /usr/share/man,
#      at most 64 MiB) -> mke2fs -d -> golden.img; blkctl import
#   2. snapshot golden@base, clone it ten times, write real files (from
#      /usr/bin and /usr/lib) into each clone at 4K-aligned and unaligned
#      offsets; the same bytes go into expected images with dd
#   3. export every disk and snapshot, cmp with its expected image
#   4. dedup exactness: df's unique_data_chunks equals the distinct
#      non-zero 4 KiB blocks of all expected images (dedup_count.py)
#   5. a snapshot holding a clone's only copy of some blocks: delete it,
#      gc, stored_bytes decreases and the count is exact again
#   6. delete everything, gc: no data chunk is left
# fsck must be clean (exit 0) after every step.
set -eu

blkctl=${abs_top_builddir:-$(pwd)}/tools/blkctl
srcdir=${abs_top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
dedup_count=$srcdir/test/integration/dedup_count.py
if [ ! -x "$blkctl" ]; then
	echo "SKIP: $blkctl is not built"
	exit 77
fi
mke2fs=$(command -v mke2fs || command -v /sbin/mke2fs || true)
if [ -z "$mke2fs" ]; then
	echo "SKIP: mke2fs is missing (apt-get install e2fsprogs)"
	exit 77
fi
if ! command -v python3 >/dev/null; then
	echo "SKIP: python3 (for dedup_count.py) is missing"
	exit 77
fi

tmp=$(mktemp -d /tmp/blkctl-vdi.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export BLKCTL_STORE=$tmp/store
NCLONES=10

fail() {
	echo "FAIL: $*"
	exit 1
}
say() { echo "== $*"; }
blk() {
	"$blkctl" "$@" || fail "blkctl $* exited $?"
}
jkey() { sed -n 's/.*"'"$1"'":\("\([^"]*\)"\|\([^,}]*\)\).*/\2\3/p'; }
df_key() { blk df --json | jkey "$1"; }
fsck_clean() {
	local out
	out=$("$blkctl" fsck 2>&1) || fail "fsck after $1: $out"
	echo "   fsck after $1: ${out##*$'\n'}"
}
# The images the store must hold now: disk or snapshot -> expected file.
declare -A expect
check_exports() {
	local spec
	for spec in $(printf '%s\n' "${!expect[@]}" | sort); do
		blk export "$spec" "$tmp/export.img"
		cmp -s "$tmp/export.img" "${expect[$spec]}" ||
			fail "export $spec differs from its expected image: $(cmp "$tmp/export.img" "${expect[$spec]}" 2>&1 | head -n 1)"
		rm -f "$tmp/export.img"
	done
	echo "   ${#expect[@]} disks and snapshots exported, each identical to its expected image"
}
check_dedup() {
	local want got
	# Each expected image once, however many specs share it.
	want=$(printf '%s\n' "${expect[@]}" | sort -u | tr '\n' '\0' |
		xargs -0 python3 "$dedup_count")
	got=$(df_key unique_data_chunks)
	echo "   unique_data_chunks: store $got, distinct non-zero blocks $want"
	[ "$got" = "$want" ] || fail "dedup is not exact: store $got, images $want"
}

say "1. golden ext4 image from this machine's files"
tree=$tmp/tree
mkdir "$tree"
find /usr/share/doc /usr/share/man -type f -readable -printf '%s\t%p\n' 2>/dev/null |
	LC_ALL=C sort -t "$(printf '\t')" -k2 |
	awk -F'\t' -v cap=$((64 << 20)) '$1 + t <= cap { t += $1; print $2 }' \
		>"$tmp/files"
tar -cf - --files-from="$tmp/files" 2>/dev/null | tar -xf - -C "$tree"
nfiles=$(find "$tree" -type f | wc -l)
kib=$(du -sk "$tree" | cut -f1)
[ "$nfiles" -gt 100 ] || fail "only $nfiles files copied from /usr/share"
mib=$((kib * 3 / 2 / 1024 + 32))
"$mke2fs" -q -F -t ext4 -N $((nfiles * 2 + 4096)) -d "$tree" \
	"$tmp/golden.img" "${mib}M" >/dev/null || fail "mke2fs -d failed"
rm -rf "$tree"
size=$(stat -c %s "$tmp/golden.img")
echo "   $nfiles files, $kib KiB -> golden.img of $mib MiB"
blk init "$BLKCTL_STORE"
blk import golden "$tmp/golden.img"
[ "$(blk info golden --json | jkey size)" = "$size" ] || fail "imported size"
expect[golden]=$tmp/golden.img
check_exports
check_dedup
fsck_clean "import"

say "2. snapshot, $NCLONES clones, each changed with real files"
blk snapshot golden@base
expect[golden@base]=$tmp/golden.img
# Real files, the same on every run of this machine: binaries of 16 KiB
# to 1 MiB, by name.
find /usr/bin /usr/lib/x86_64-linux-gnu -maxdepth 1 -type f -readable \
	-size +16k -size -1024k 2>/dev/null | LC_ALL=C sort >"$tmp/bins"
[ "$(wc -l <"$tmp/bins")" -ge 40 ] || fail "fewer than 40 files in /usr/bin and /usr/lib"
mapfile -t bins <"$tmp/bins"
mib_b=1048576
# put CLONE OFFSET FILE: the same bytes into the disk and its expected image
put() {
	blk write "$1" "$2" <"$3"
	dd if="$3" of="${expect[$1]}" bs=64K seek="$2" oflag=seek_bytes \
		conv=notrunc status=none
	echo "   $1: $(basename "$3") ($(stat -c %s "$3") bytes) at $2"
}
for i in $(seq 1 $NCLONES); do
	c=$(printf 'vm%02d' "$i")
	blk clone golden@base "$c"
	cp --sparse=always "$tmp/golden.img" "$tmp/$c.img"
	expect[$c]=$tmp/$c.img
	# 4K-aligned, unaligned, and near the end of the image.
	put "$c" $((i * 3 * mib_b)) "${bins[$((i * 3))]}"
	put "$c" $((i * 3 * mib_b + 1536 * 1024 + 4097 * i + 1)) "${bins[$((i * 3 + 1))]}"
	end_file=${bins[$((i * 3 + 2))]}
	put "$c" $((size - $(stat -c %s "$end_file") - 333 * i)) "$end_file"
done
# The same file at the same offset in two clones: stored once.
put vm09 $((40 * mib_b)) "${bins[1]}"
put vm10 $((40 * mib_b)) "${bins[1]}"
[ "$(blk info vm10 --json | jkey origin)" = golden@base ] || fail "vm10's origin"
fsck_clean "clones"

say "3. every disk reads back as its expected image"
check_exports
fsck_clean "exports"

say "4. dedup exactness"
check_dedup
blk df
fsck_clean "dedup check"

say "5. a snapshot's own blocks: delete it, gc returns space"
blk snapshot vm01@before
expect[vm01@before]=$tmp/vm01.before.img
cp --sparse=always "$tmp/vm01.img" "$tmp/vm01.before.img"
# Overwrite vm01's first change: vm01@before now holds its only copy.
put vm01 $((3 * mib_b)) "${bins[$((NCLONES * 3 + 3))]}"
check_exports
check_dedup
before=$(df_key stored_bytes)
blk delete vm01@before
unset 'expect[vm01@before]'
blk gc
after=$(df_key stored_bytes)
echo "   stored_bytes $before -> $after"
[ "$after" -lt "$before" ] || fail "deleting vm01@before and gc freed nothing"
check_dedup
check_exports
fsck_clean "snapshot delete and gc"

say "6. delete everything, gc"
for i in $(seq 1 $NCLONES); do
	blk delete "$(printf 'vm%02d' "$i")"
done
blk delete golden@base
blk delete golden
blk gc
[ "$(df_key unique_data_chunks)" = 0 ] || fail "data chunks left after deleting everything"
[ "$(df_key disks)" = 0 ] || fail "disks left"
echo "   stored_bytes $(df_key stored_bytes) after deleting everything"
fsck_clean "deleting everything"
blk scrub
echo "PASS"
