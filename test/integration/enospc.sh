#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/enospc.sh - full disks: a store on a small filesystem
# (tmpfs, size=ENOSPC_FS_MB, default 160; else a loop-mounted ext4 image)
# is filled through NBD with incompressible data until writes fail.
#
#   A1  blkctl df warns of thin overcommit (and only then)
#   A2  the client gets ENOSPC (NBD error 28); whether at WRITE or FLUSH
#       is printed
#   A3  blkstored keeps running
#   A4  other disks and snapshots keep reading back
#   A5  the full disk's flushed data keeps reading back
#   A6  blkctl df works
#   A7  delete a snapshot + gc, online: writes succeed again
#   A8  if not: stop, delete + gc offline, restart: writes succeed again
#   A9  flushed data intact at the end; offline fsck clean
#   B   space coming back by itself (another file removed) after a
#       failed flush must not cost the flushed data (gc, fsck)
# Details: enospc_check.py.  Every check prints ok or FAIL.
#
# Exit 0: pass, 1: fail, 77: skip (not root, no mount allowed, python3
# or the tools missing).
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
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: mounting a small filesystem needs root"
	exit 77
fi

size=${ENOSPC_FS_MB:-160}
tmp=$(mktemp -d /tmp/enospc.XXXXXX)
mnt=$tmp/mnt
mkdir "$mnt"
mounted=
loopimg=
pyrc=1
cleanup() {
	if [ -n "${pypid:-}" ] && kill -0 "$pypid" 2>/dev/null; then
		kill -TERM "$pypid" 2>/dev/null || true
		wait "$pypid" 2>/dev/null || true
	fi
	# enospc_check.py kills its daemons; a daemon left by an interrupted run
	# is found by its store (its pid is in the store's lock file).
	for lock in "$mnt"/*/lock; do
		[ -f "$lock" ] || continue
		p=$(sed -n 's/^pid=//p' "$lock" 2>/dev/null || true)
		[ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true
	done
	if [ "$pyrc" != 0 ]; then
		for l in "$tmp"/*.log; do
			[ -f "$l" ] || continue
			echo "--- $(basename "$l") (tail) ---"
			tail -n 15 "$l"
		done
	fi
	if [ -n "$mounted" ]; then
		umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

if mount -t tmpfs -o "size=${size}M,mode=0700" tmpfs "$mnt" 2>"$tmp/mount.err"; then
	mounted=tmpfs
elif command -v mkfs.ext4 >/dev/null 2>&1; then
	loopimg=$tmp/fs.img
	truncate -s "${size}M" "$loopimg"
	mkfs.ext4 -q -F -m 0 "$loopimg" >/dev/null 2>&1 &&
		mount -o loop "$loopimg" "$mnt" 2>>"$tmp/mount.err" && mounted=ext4
fi
if [ -z "$mounted" ]; then
	echo "SKIP: cannot mount a small filesystem (tmpfs or loop ext4):" \
		"$(cat "$tmp/mount.err")"
	exit 77
fi
echo "== store on a ${size} MiB $mounted"
start=$(date +%s)
python3 "$here/enospc_check.py" "$blkstored" "$blkctl" "$tmp" "$mnt" &
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
