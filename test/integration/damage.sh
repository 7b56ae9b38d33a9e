#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/damage.sh - damaged bytes: flipped bytes in segment
# records, in the LMDB index and in a map node must give errors (EIO over
# NBD, a failing `blkctl read`), never other data; `blkctl scrub` names
# the damaged chunks and the disks and snapshots that reach them;
# `blkctl fsck` explains; `fsck --repair` and `fsck --rebuild` recover
# what can be recovered and say what cannot.  Cases (damage_check.py):
#   a1 a2  a data record's payload (raw, zstd)
#   b1-b5  data.mdb: an item's location, an item's count, the chunk
#          table's top page, a leaf page, the whole file
#   c      the record of a disk's root map node
#
# Exit 0: pass, 1: fail, 77: skip (python3 or the tools missing).
set -eu

build=${abs_top_builddir:-$(pwd)}
case $build in /*) ;; *) build=$(pwd)/$build ;; esac
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
blkstored=$build/tools/blkstored
blkctl=$build/tools/blkctl
for p in "$blkstored" "$blkctl"; do
	if [ ! -x "$p" ]; then
		echo "SKIP: $p is not built"
		exit 77
	fi
done
if ! command -v python3 >/dev/null 2>&1; then
	echo "SKIP: python3 is missing"
	exit 77
fi

tmp=$(mktemp -d /tmp/damage.XXXXXX)
pyrc=1
cleanup() {
	if [ -n "${pypid:-}" ] && kill -0 "$pypid" 2>/dev/null; then
		kill -TERM "$pypid" 2>/dev/null || true
		wait "$pypid" 2>/dev/null || true
	fi
	# A daemon left by an interrupted run names itself in its store's lock.
	for lock in "$tmp"/*/lock; do
		[ -f "$lock" ] || continue
		p=$(sed -n 's/^pid=//p' "$lock" 2>/dev/null || true)
		[ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
	done
	if [ "$pyrc" != 0 ]; then
		for l in "$tmp"/*.log; do
			[ -f "$l" ] || continue
			echo "--- $(basename "$l") (tail) ---"
			tail -n 8 "$l"
		done
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

start=$(date +%s)
python3 "$here/damage_check.py" "$blkstored" "$blkctl" "$tmp" &
pypid=$!
pyrc=0
wait "$pypid" || pyrc=$?
pypid=
echo "== $(($(date +%s) - start)) s"
if [ "$pyrc" -ne 0 ]; then
	echo "FAIL: see the FAIL lines above"
	exit 1
fi
echo "PASS"
exit 0
