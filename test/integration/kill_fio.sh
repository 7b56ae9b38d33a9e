#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/kill_fio.sh - real process kills: blkstored is
# SIGKILLed at random moments while it serves writes over NBD, and what
# was flushed must survive exactly (ARCHITECTURE.md invariant 2).
#
# Each of KILL_ROUNDS rounds (default 20; kill_rounds.py has the details):
#   fio write     fio's nbd engine writes disk "fio" with a crc32c verify
#                 pattern (new seed each round), to completion, flushed
#   load          two NBD clients of ours write self-describing sectors
#                 (unique, compressible, dedup blocks), trim, write zeroes,
#                 FUA-write, flush every few requests and read back; fio
#                 writes another disk with a FLUSH every 16 writes
#   kill -9       blkstored at a random moment (0.2-2 s into the load)
#   fsck          offline `blkctl fsck` between the two daemon runs: clean
#   verify        after a restart, every sector of both disks: writes
#                 before the last acknowledged FLUSH/FUA read back exactly;
#                 later ones hold their old or a newer written content,
#                 never anything else; fio --verify_only on disk "fio"
# Finally: SIGTERM exits 0; offline fsck and scrub are clean.
#
# Environment: KILL_ROUNDS (20), KILL_SEED (random; printed, so a failing
# run can be repeated), abs_top_builddir (where tools/ are built).
# Exit 0: pass, 1: fail, 77: skip (python3 missing, tools not built).
# Without fio (or a fio without the nbd engine) the fio parts are left
# out and said so; the kill checks still run.
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
use_fio=1
if ! command -v fio >/dev/null 2>&1; then
	echo "note: fio is missing: its write/--verify_only passes are left out"
	use_fio=0
elif ! fio --enghelp 2>/dev/null | grep -qw nbd; then
	echo "note: this fio has no nbd engine: its passes are left out"
	use_fio=0
fi

rounds=${KILL_ROUNDS:-20}
seed=${KILL_SEED:-$RANDOM$RANDOM}
tmp=$(mktemp -d /tmp/kill-fio.XXXXXX)
pyrc=
cleanup() {
	# kill_rounds.py kills its own daemon; this is for an interrupted run.
	if [ -n "${pypid:-}" ] && kill -0 "$pypid" 2>/dev/null; then
		kill -TERM "$pypid" 2>/dev/null || true
		wait "$pypid" 2>/dev/null || true
	fi
	if [ "${pyrc:-1}" != 0 ] && [ -f "$tmp/blkstored.log" ]; then
		echo "--- blkstored log (tail) ---"
		tail -n 30 "$tmp/blkstored.log"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "== kill -9 of blkstored under NBD load: $rounds rounds, seed $seed" \
	"(KILL_SEED=$seed repeats it)"
start=$(date +%s)
python3 "$here/kill_rounds.py" "$blkstored" "$blkctl" "$tmp" "$rounds" \
	"$use_fio" "$seed" &
pypid=$!
pyrc=0
wait "$pypid" || pyrc=$?
pypid=
echo "== $(($(date +%s) - start)) s"
if [ "$pyrc" -ne 0 ]; then
	echo "FAIL: kill rounds (seed $seed)"
	exit 1
fi
echo "PASS"
exit 0
