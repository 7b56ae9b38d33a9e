#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/nbd_peers.sh - blkstored's NBD exports driven by real
# peers: qemu-img, qemu-io, nbdinfo, nbdcopy, fio's nbd engine (and
# libnbd's python binding, where installed).  No mocks.
#
#   info/convert out    qemu-img info; convert -O raw equals the source
#   convert in          a qcow2 image through the export into a disk
#                       (convert -n), then qemu-img compare
#   map                 qemu-img map / nbdinfo --map report the holes
#   patterns            qemu-io writes, FUA, zeroes, discards, reads back
#   list                nbdinfo --list names every disk and snapshot
#   nbdcopy             both ways, byte for byte
#   fio                 random writes with crc32c verification
#   parallel            several clients on several exports at once
#   multi-conn          two clients write, a FLUSH on one commits both:
#                       proven by SIGKILL right after it and a restart
#   read-only           a snapshot export refuses writes (EPERM)
#   restart             SIGTERM exits 0, removes the socket; flushed data
#                       and fio's blocks survive; daemon mode, pid file
#   ownership           a second daemon on the store fails clearly
#
# Exit 0: pass, 1: fail, 77: skip (a tool is missing, or blkstored or
# blkctl not built).
set -eu

build=${abs_top_builddir:-$(pwd)}
case $build in /*) ;; *) build=$(pwd)/$build ;; esac # we cd later
blkstored=$build/tools/blkstored
blkctl=$build/tools/blkctl
for p in "$blkstored" "$blkctl"; do
	if [ ! -x "$p" ]; then
		echo "SKIP: $p is not built"
		exit 77
	fi
done
missing=
for t in qemu-img qemu-io nbdinfo nbdcopy fio python3 cmp stdbuf; do
	command -v "$t" >/dev/null 2>&1 || missing="$missing $t"
done
if [ -n "$missing" ]; then
	echo "SKIP: missing tools:$missing (qemu-utils, libnbd-bin, fio)"
	exit 77
fi
if ! fio --enghelp 2>/dev/null | grep -qw nbd; then
	echo "SKIP: this fio has no nbd engine"
	exit 77
fi
# libnbd's python binding, for checks that need a client that does not
# second-guess the server (optional).
nbdpy=
for py in python3 /usr/bin/python3; do
	if "$py" -c 'import nbd' 2>/dev/null; then
		nbdpy=$py
		break
	fi
done

tmp=$(mktemp -d /tmp/nbd-peers.XXXXXX)
cd "$tmp" # fio leaves files in the current directory
store=$tmp/store
sock=$tmp/nbd.sock
log=$tmp/blkstored.log
pid=
fails=0

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	if [ -f "$tmp/daemon.pid" ]; then
		kill -KILL "$(cat "$tmp/daemon.pid")" 2>/dev/null || true
	fi
	jobs -p | xargs -r kill -KILL 2>/dev/null || true
	if [ "$fails" -ne 0 ] && [ -f "$log" ]; then
		echo "--- blkstored log (tail) ---"
		tail -n 40 "$log"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
uri() { echo "nbd+unix:///$1?socket=$sock"; }

start() { # start the daemon in the foreground mode, in the background
	local n
	n=$(grep -c ': serving ' "$log" 2>/dev/null) || true
	"$blkstored" -S "$store" --nbd "unix:$sock" --nbd tcp:127.0.0.1:0 \
		-f -v 2>>"$log" &
	pid=$!
	for _ in $(seq 200); do # until it says it is ready
		[ "$(grep -c ': serving ' "$log")" -gt "${n:-0}" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "blkstored did not start:"
	cat "$log"
	exit 1
}
stop() { # SIGTERM; the daemon must exit 0 and remove its socket
	kill -TERM "$pid"
	local rc=0
	wait "$pid" || rc=$?
	pid=
	[ "$rc" -eq 0 ] || fail "blkstored exited $rc after SIGTERM"
	[ ! -e "$sock" ] || fail "the unix socket was not removed at exit"
}
tcp_port() {
	sed -n 's/.*listening on tcp:127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" |
		tail -n 1
}

# ---- a store with known content, made before the daemon owns it ----
M=1048576
src=$tmp/src.raw
head -c $((32 * M)) /dev/zero >"$src"
head -c $M /dev/urandom | dd of="$src" conv=notrunc status=none
head -c $((2 * M)) /dev/urandom |
	dd of="$src" bs=$M seek=8 conv=notrunc status=none
head -c 4096 /dev/urandom |
	dd of="$src" bs=4096 seek=$((32 * M / 4096 - 1)) conv=notrunc status=none
"$blkctl" init "$store" >/dev/null
"$blkctl" -S "$store" import src "$src" >/dev/null
"$blkctl" -S "$store" snapshot src@snap1 >/dev/null
for d in dst:32M io:64M copy:32M fiod:16M mc:16M keep:8M; do
	"$blkctl" -S "$store" create "${d%%:*}" "${d#*:}" >/dev/null
done
qcow=$tmp/in.qcow2
qemu-img create -q -f qcow2 "$qcow" 32M
qemu-io -f qcow2 -c 'write -P 0x5a 2M 3M' -c 'write -P 0x11 20M 64k' \
	-c 'write -P 0x77 31M 1M' "$qcow" >/dev/null

start

echo "== qemu-img info"
out=$(qemu-img info "$(uri src)")
echo "$out" | grep -q "virtual size: .*($((32 * M)) bytes)" ||
	fail "qemu-img info: wrong size: $out"
out=$(qemu-img info "nbd://127.0.0.1:$(tcp_port)/src") ||
	fail "qemu-img info over TCP failed"

echo "== qemu-img convert out"
qemu-img convert -f raw -O raw "$(uri src)" "$tmp/out.raw" ||
	fail "qemu-img convert out failed"
cmp "$src" "$tmp/out.raw" || fail "convert out differs from the source"
qemu-img convert -f raw -O raw "$(uri src@snap1)" "$tmp/snap.raw" ||
	fail "qemu-img convert of the snapshot failed"
cmp "$src" "$tmp/snap.raw" || fail "snapshot export differs from the source"

echo "== qemu-img convert -n in (qcow2 -> disk)"
qemu-img convert -n -f qcow2 -O raw "$qcow" "$(uri dst)" ||
	fail "qemu-img convert -n into the export failed"
qemu-img compare -q -f qcow2 -F raw "$qcow" "$(uri dst)" ||
	fail "qcow2 imported through NBD differs (qemu-img compare)"

echo "== qemu-img map"
qemu-img map -f raw --output=json "$(uri src)" >"$tmp/map.json" ||
	fail "qemu-img map failed"
python3 - "$tmp/map.json" <<'EOF' || fail "qemu-img map does not show the holes"
import json, sys
M = 1 << 20
m = json.load(open(sys.argv[1]))
def at(off):
    return next(e for e in m if e["start"] <= off < e["start"] + e["length"])
want = {0: True, 2 * M: False, 9 * M: True, 20 * M: False,
        32 * M - 1: True}
for off, data in want.items():
    e = at(off)
    if e["data"] != data or e["zero"] == data:
        sys.exit(f"at {off}: {e}, expected data={data}, zero={not data}")
EOF

echo "== nbdinfo --map and --list"
nbdinfo --map "$(uri src)" >"$tmp/nbdmap.txt" || fail "nbdinfo --map failed"
grep -Eq "^ *$((M)) +$((7 * M)) +3 +hole,zero" "$tmp/nbdmap.txt" ||
	fail "nbdinfo --map: no hole,zero extent at 1M+7M: $(cat "$tmp/nbdmap.txt")"
grep -Eq "^ *0 +$M +0 +data" "$tmp/nbdmap.txt" ||
	fail "nbdinfo --map: no data extent at 0+1M"
nbdinfo --list "$(uri '')" >"$tmp/list.txt" || fail "nbdinfo --list failed"
for e in src src@snap1 dst io copy fiod mc keep; do
	grep -q "^export=\"$e\":" "$tmp/list.txt" || fail "nbdinfo --list lacks $e"
done
grep -A8 '^export="src@snap1":' "$tmp/list.txt" |
	grep -q 'is_read_only: true' || fail "snapshot not listed read-only"
grep -A20 '^export="src":' "$tmp/list.txt" |
	grep -q 'can_multi_conn: true' || fail "no multi-conn on a disk"

echo "== qemu-io patterns"
qemu-io -t writeback -f raw -c 'write -P 0xab 0 1M' -c 'read -P 0xab 0 1M' \
	-c 'write -f -P 0xcd 1M 64k' -c 'read -P 0xcd 1M 64k' \
	-c 'write -z 0 64k' -c 'read -P 0 0 64k' -c 'read -P 0xab 64k 960k' \
	-c 'discard 512k 512k' -c 'read -P 0 512k 512k' \
	-c 'write -P 0x3c 4095 3' -c 'read -P 0x3c 4095 3' \
	-c 'read -P 0 4098 2046' -c 'flush' "$(uri io)" >"$tmp/qio.txt" 2>&1 ||
	fail "qemu-io failed: $(cat "$tmp/qio.txt")"
! grep -qi 'fail\|error' "$tmp/qio.txt" ||
	fail "qemu-io pattern check: $(cat "$tmp/qio.txt")"

echo "== nbdcopy both ways"
nbdcopy "$(uri src)" "$tmp/nbdcopy.raw" || fail "nbdcopy out failed"
cmp "$src" "$tmp/nbdcopy.raw" || fail "nbdcopy out differs"
nbdcopy "$src" "$(uri copy)" || fail "nbdcopy in failed"
nbdcopy "$(uri copy)" "$tmp/nbdcopy2.raw" || fail "nbdcopy out failed"
cmp "$src" "$tmp/nbdcopy2.raw" || fail "nbdcopy in then out differs"

echo "== fio (nbd engine, random writes, crc32c verify)"
fio_job() { # extra fio options...
	fio --name=nbdverify --ioengine=nbd --uri="$(uri fiod)" \
		--rw=randwrite --bs=4k --size=16M --iodepth=8 \
		--verify=crc32c --randseed=4242 --verify_state_save=0 "$@" \
		>"$tmp/fio.txt" 2>&1
}
fio_job || fail "fio write+verify: $(grep -i 'err\|verify' "$tmp/fio.txt")"

echo "== parallel clients on several exports"
nbdcopy "$(uri src)" "$tmp/par1.raw" &
p1=$!
qemu-img convert -f raw -O raw "$(uri src@snap1)" "$tmp/par2.raw" &
p2=$!
fio --name=par --ioengine=nbd --uri="$(uri io)" --rw=randrw --bs=16k \
	--size=32M --iodepth=4 --verify=crc32c --randseed=7 \
	--verify_state_save=0 \
	--output="$tmp/par-fio.txt" &
p3=$!
nbdcopy "$src" "$(uri dst)" &
p4=$!
for p in $p1 $p2 $p3 $p4; do
	wait "$p" || fail "parallel client $p failed"
done
cmp "$src" "$tmp/par1.raw" || fail "parallel nbdcopy out differs"
cmp "$src" "$tmp/par2.raw" || fail "parallel convert of the snapshot differs"
qemu-img compare -q -f raw -F raw "$src" "$(uri dst)" ||
	fail "parallel nbdcopy into dst differs"

echo "== multi-conn: two writers, one FLUSH commits both"
# A and B write different regions of one disk at once; each reads the
# other's.  Only A flushes (and A's close flushes again); B stays
# connected and never flushes.  The daemon is then SIGKILLed: whatever
# survives was committed by A's flush, B's writes included.
# (-t writeback: qemu-io's default, writethrough, flushes every write.)
qemu-io -t writeback -f raw -c 'write -P 0xa1 0 4M' -c 'sleep 1500' \
	-c 'flush' \
	-c 'read -P 0xb2 4M 4M' "$(uri mc)" >"$tmp/mcA.txt" 2>&1 &
pa=$!
stdbuf -oL qemu-io -t writeback -f raw -c 'write -P 0xb2 4M 4M' \
	-c 'sleep 700' \
	-c 'read -P 0xa1 0 4M' -c 'sleep 60000' "$(uri mc)" \
	>"$tmp/mcB.txt" 2>&1 &
pb=$!
wait "$pa" || fail "multi-conn writer A failed"
for _ in $(seq 100); do
	grep -q '^read ' "$tmp/mcB.txt" && break
	sleep 0.1
done
grep -q '^read 4194304/4194304 bytes at offset 4194304' "$tmp/mcA.txt" ||
	fail "A did not see B's writes: $(cat "$tmp/mcA.txt")"
grep -q '^read 4194304/4194304 bytes at offset 0' "$tmp/mcB.txt" ||
	fail "B did not see A's writes: $(cat "$tmp/mcB.txt")"
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
pid=
kill -KILL "$pb" 2>/dev/null || true
wait "$pb" 2>/dev/null || true
start # over the stale socket the killed daemon left
if ! qemu-io -f raw -r -c 'read -P 0xa1 0 4M' -c 'read -P 0xb2 4M 4M' \
	"$(uri mc)" >"$tmp/mc.txt" 2>&1 ||
	grep -qi 'fail\|error' "$tmp/mc.txt"; then
	fail "after SIGKILL, A's flush had not committed both writers:" \
		"$(cat "$tmp/mc.txt")"
fi

echo "== read-only snapshot export"
if qemu-io -f raw -c 'write 0 4k' "$(uri src@snap1)" >"$tmp/ro.txt" 2>&1; then
	fail "qemu-io opened a snapshot export for writing"
fi
if [ -n "$nbdpy" ]; then
	# Strict mode off: the write reaches the server, which must refuse.
	"$nbdpy" - "$(uri src@snap1)" <<'EOF' || fail "no EPERM from a snapshot"
import errno, sys, nbd
h = nbd.NBD()
h.set_strict_mode(0)
h.connect_uri(sys.argv[1])
assert h.is_read_only()
for op in (lambda: h.pwrite(b"x" * 4096, 0), lambda: h.trim(4096, 0),
           lambda: h.zero(4096, 0)):
    try:
        op()
        sys.exit("a write to a snapshot succeeded")
    except nbd.Error as e:
        if e.errno not in (errno.EPERM, "EPERM"):  # a name in libnbd
            sys.exit(f"expected EPERM, got {e}")
h.shutdown()
EOF
else
	echo "   (libnbd python binding absent: server-side EPERM is" \
		"covered by nbd_negative.py)"
fi
qemu-img compare -q -f raw -F raw "$src" "$(uri src@snap1)" ||
	fail "the snapshot changed"

echo "== ownership: a second daemon on the same store"
if "$blkstored" -S "$store" --nbd "unix:$tmp/other.sock" -f \
	>"$tmp/second.txt" 2>&1; then
	fail "a second blkstored started on an owned store"
fi
grep -q 'in use' "$tmp/second.txt" ||
	fail "second daemon: unclear error: $(cat "$tmp/second.txt")"

echo "== SIGTERM, restart: flushed data survives"
qemu-io -t writeback -f raw -c 'write -P 0x6e 1M 2M' -c 'flush' \
	-c 'sleep 100' "$(uri keep)" >/dev/null || fail "writing keep failed"
stop
# Daemon mode this time: the parent returns once the daemon is ready.
"$blkstored" -S "$store" --nbd "unix:$sock" -p "$tmp/daemon.pid" 2>>"$log" ||
	fail "blkstored (daemon mode) failed to start"
[ -S "$sock" ] || fail "daemon mode returned before its socket existed"
pid=$(cat "$tmp/daemon.pid")
if ! qemu-io -f raw -r -c 'read -P 0x6e 1M 2M' -c 'read -P 0 0 1M' \
	"$(uri keep)" >"$tmp/keep.txt" 2>&1 ||
	grep -qi 'fail\|error' "$tmp/keep.txt"; then
	fail "flushed data lost across a restart: $(cat "$tmp/keep.txt")"
fi
fio_job --verify_only || fail "fio's blocks did not survive the restart"
kill -TERM "$pid"
for _ in $(seq 200); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.05
done
kill -0 "$pid" 2>/dev/null && fail "daemon did not stop on SIGTERM"
pid=
[ ! -e "$tmp/daemon.pid" ] || fail "pid file left behind"
[ ! -e "$sock" ] || fail "socket left behind by the daemon"
"$blkctl" -S "$store" read src 0 $M | cmp - <(head -c $M "$src") ||
	fail "store unreadable by blkctl after the daemon stopped"

grep -E 'blkstored: (error|warn):' "$log" >"$tmp/bad.txt" || true
if [ -s "$tmp/bad.txt" ]; then
	fail "blkstored logged errors or warnings: $(cat "$tmp/bad.txt")"
fi

if [ "$fails" -ne 0 ]; then
	echo "$fails failure(s)"
	exit 1
fi
echo "all NBD peer checks passed"
