#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/cavm_devices.sh - cavm's disk path end to end: a tiny
# freestanding guest (vblk_probe_guest.c, built here with the host
# compiler) finds the virtio-blk device on cavm's PCI bus, drives the
# modern virtio-pci transport by polling, and ends through the exit port.
#
# Phases:
#   1. what the guest writes (and flushes) is what `blkctl export` gives;
#      what `blkctl import` put is what the guest reads; GET_ID is the
#      disk's name
#   1b. completion interrupts through MSI-X (masking, PBA) and INTx
#   2. ",ro": VIRTIO_BLK_F_RO offered, writes refused, disk unchanged
#   3. bad descriptors (a buffer outside guest RAM: IOERR; a looping
#      chain: DEVICE_NEEDS_RESET) leave cavm alive, with a log line
#   4. kill -9 after the guest's flush loses nothing flushed
#   5. the control socket: hello, status, pause/resume, disks, stats,
#      errors for bad requests, `blkctl` through cavm (list, stats of the
#      guest's requests, and a resize the running guest is told of),
#      stop => exit 0, store unlocked
#   6. bad --disk arguments and an owned store: clear error, exit != 0
set -eu

top=${abs_top_builddir:-$(pwd)}
src=${abs_top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
cavm=$top/hypervisor/cavm
blkctl=$top/tools/blkctl
blkstored=$top/tools/blkstored
ctl="python3 $src/test/integration/cavm_ctl.py"
cc=${CC:-cc}

for p in "$cavm" "$blkctl" "$blkstored"; do
	if [ ! -x "$p" ]; then
		echo "SKIP: $p is not built"
		exit 77
	fi
done
if [ ! -c /dev/kvm ] || ! : 2>/dev/null </dev/kvm; then
	echo "SKIP: /dev/kvm is missing or not usable by $(id -un)"
	exit 77
fi
if ! command -v python3 >/dev/null; then
	echo "SKIP: python3 (control socket client) is missing"
	exit 77
fi

tmp=$(mktemp -d /tmp/cavm-devices.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	for f in "$tmp"/*.log; do
		[ -f "$f" ] && { echo "--- $f"; tail -20 "$f"; }
	done
	exit 1
}

guest=$tmp/guest.elf
if ! $cc -std=gnu11 -Wall -Wextra -Werror -ffreestanding -fno-pic -no-pie \
	-nostdlib -static -mno-red-zone -mgeneral-regs-only \
	-fno-stack-protector -fcf-protection=none -O2 \
	-Wl,-Ttext-segment=0x100000 -Wl,-z,max-page-size=4096 \
	-Wl,--build-id=none -Wl,-e,_start -o "$guest" \
	"$src/test/integration/vblk_probe_guest.c" 2>"$tmp/cc.err"; then
	cat "$tmp/cc.err"
	echo "SKIP: $cc cannot build a freestanding x86-64 guest here"
	exit 77
fi

st=$tmp/store
"$blkctl" init "$st" >/dev/null
"$blkctl" -S "$st" create d0 64M >/dev/null

# run MODE DISKSPEC...: the guest's exit status; serial and log kept
run() {
	local mode=$1
	shift
	local args=()
	for d in "$@"; do args+=(--disk "$d"); done
	set +e
	timeout 60 "$cavm" run --kernel "$guest" --cmdline "vblk=$mode" \
		"${args[@]}" --serial "$tmp/$mode.serial" 2>"$tmp/$mode.log"
	local rc=$?
	set -e
	return $rc
}

# pattern OFFSET: the guest's 8 sectors at sector 8 ((i*7+3) & 0xff)
check_pattern() {
	python3 - "$1" <<'EOF'
import sys
d = open(sys.argv[1], 'rb').read()
want = bytes((i * 7 + 3) & 0xff for i in range(4096))
sys.exit(0 if d[4096:8192] == want and d[:4096] == bytes(4096) else 1)
EOF
}

echo "1. write, export, import, read, GET_ID"
run write "$st:d0" || fail "guest write: exit $?"
grep -q "vblk-probe: PASS" "$tmp/write.serial" || fail "no PASS on serial"
"$blkctl" -S "$st" export d0 "$tmp/d0.img"
check_pattern "$tmp/d0.img" || fail "export differs from what the guest wrote"
python3 -c "
import sys
d = bytearray(64 << 20)
d[4096:8192] = bytes((i * 7 + 3) & 0xff for i in range(4096))
open(sys.argv[1], 'wb').write(d)" "$tmp/in.img"
"$blkctl" -S "$st" import d1 "$tmp/in.img" >/dev/null
"$blkctl" -S "$st" create d2 64M >/dev/null
run read "$st:d1" || fail "guest read of imported data: exit $?"
if run read "$st:d2"; then fail "guest read a pattern from an empty disk"; fi
run getid "$st:d0" || fail "GET_ID: exit $?"

echo "1b. completion interrupts: MSI-X (masked: PBA) and INTx"
run msix "$st:d0" || fail "MSI-X: exit $?"
run intx "$st:d0" || fail "INTx: exit $?"

echo "2. read-only attachment"
"$blkctl" -S "$st" export d1 "$tmp/d1.before"
run protected "$st:d1,ro" || fail "ro: exit $?"
if run protected "$st:d1"; then fail "RO offered on a writable attachment"; fi
"$blkctl" -S "$st" export d1 "$tmp/d1.after"
cmp -s "$tmp/d1.before" "$tmp/d1.after" || fail "a ro disk changed"

echo "3. bad descriptors"
run bad "$st:d2" || fail "bad descriptors: exit $?"
grep -q "device needs reset" "$tmp/bad.log" || fail "no log line for the broken ring"

echo "4. kill -9 after the guest's flush"
"$blkctl" -S "$st" create d3 64M >/dev/null
"$cavm" run --kernel "$guest" --cmdline vblk=hold --disk "$st:d3" \
	--serial "$tmp/hold.serial" 2>"$tmp/hold.log" &
pid=$!
pids+=("$pid")
for _ in $(seq 600); do
	grep -q flushed "$tmp/hold.serial" 2>/dev/null && break
	sleep 0.1
done
grep -q flushed "$tmp/hold.serial" || fail "guest never flushed"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
"$blkctl" -S "$st" export d3 "$tmp/d3.img"
check_pattern "$tmp/d3.img" || fail "flushed data lost after kill -9"

echo "5. control socket"
sock=$tmp/cavm.sock
st2=$tmp/store2 # a second store: one server each, one socket for both
"$blkctl" init "$st2" >/dev/null
"$blkctl" -S "$st2" create e0 1M >/dev/null
"$cavm" run --kernel "$guest" --cmdline vblk=hold --disk "$st:d3" \
	--disk "$st:d1,ro" --disk "$st2:e0" --control "$sock" \
	--serial "$tmp/ctl.serial" 2>"$tmp/ctl.log" &
pid=$!
pids+=("$pid")
for _ in $(seq 600); do
	grep -q flushed "$tmp/ctl.serial" 2>/dev/null && break
	sleep 0.1
done
grep -q flushed "$tmp/ctl.serial" || fail "guest never flushed"
out=$($ctl "$sock" hello status pause status resume disks stats \
	'{"v":1,"id":9,"cmd":"reboot"}' '{"v":2,"cmd":"status"}' 'raw:nonsense')
echo "$out" >"$tmp/ctl.replies"
python3 - "$tmp/ctl.replies" "$st" "$st2" <<'EOF' || fail "control replies wrong"
import json, os, sys
rep = [json.loads(l.split(' ', 1)[1]) for l in open(sys.argv[1])]
hello, s1, pause, s2, resume, disks, stats, unk, ver, raw = rep
st = os.path.realpath(sys.argv[2])
st2 = os.path.realpath(sys.argv[3])
assert hello["server"] == "cavm", hello
assert sorted(hello["stores"]) == sorted([st, st2]), hello
assert s1["state"] == "running" and s1["cpus"] == 1, s1
assert pause["state"] == "paused" and s2["state"] == "paused", (pause, s2)
assert resume["state"] == "running", resume
d = {x["disk"]: x for x in disks["disks"]}
assert d["d3"]["size"] == 64 << 20 and not d["d3"]["readonly"], d
assert d["d1"]["readonly"] and d["d3"]["virtio_status"] == 15, d
s = {x["disk"]: x for x in stats["disks"]}
assert s["d3"]["requests"] == 2 and s["d3"]["errors"] == 0, s
assert s["d3"]["notifications"] >= 1, s
assert unk["error"] == "unknown command" and unk["id"] == 9, unk
assert "version" in ver["error"], ver
assert raw["error"] == "not a JSON object", raw
EOF
# blkctl finds cavm through the store's lock and works through it.
"$blkctl" -S "$st" list >"$tmp/list.out" 2>&1 || fail "blkctl list via cavm"
grep -q "^d3 " "$tmp/list.out" || fail "blkctl list via cavm: $(cat "$tmp/list.out")"
grep -q "blkctl list" "$tmp/ctl.log" || fail "blkctl did not go through cavm"
# The second store's lock names the same socket; its commands run there.
"$blkctl" -S "$st2" list >"$tmp/list2.out" 2>&1 || fail "blkctl list of store2"
grep -q "^e0 " "$tmp/list2.out" && ! grep -q "^d3 " "$tmp/list2.out" ||
	fail "blkctl list of store2 via cavm: $(cat "$tmp/list2.out")"
[ "$(grep -c "blkctl list" "$tmp/ctl.log")" = 2 ] ||
	fail "store2's blkctl did not go through cavm"
# Per-disk I/O statistics of the guest's requests, as blkstored keeps them.
"$blkctl" -S "$st" stats d3 --json >"$tmp/stats.json" || fail "blkctl stats via cavm"
python3 - "$tmp/stats.json" <<'EOF' || fail "blkctl stats: $(cat "$tmp/stats.json")"
import json, sys
d = json.load(open(sys.argv[1]))["disks"][0]
assert d["disk"] == "d3" and d["writes"] == 1 and d["flushes"] == 1, d
assert d["write_bytes"] == 4096 and d["reads"] == 0 and d["errors"] == 0, d
EOF
# A resize while the guest runs: cavm tells the guest (config change).
"$blkctl" -S "$st" resize d3 128M >/dev/null || fail "resize via cavm"
$ctl "$sock" disks >"$tmp/disks2"
grep -q '"disk":"d3","size":134217728' "$tmp/disks2" ||
	fail "capacity not updated: $(cat "$tmp/disks2")"
grep -q "d3: capacity changed" "$tmp/ctl.log" || fail "no config change"
if "$blkctl" -S "$st" delete d3 >/dev/null 2>&1; then
	fail "deleted a disk cavm has open"
fi
$ctl "$sock" stop | grep -q '"state":"stopping"' || fail "stop reply"
set +e
wait "$pid"
rc=$?
set -e
[ $rc -eq 0 ] || fail "cavm exit $rc after stop"
[ ! -e "$sock" ] || fail "control socket left behind"
"$blkctl" -S "$st" info d3 >/dev/null || fail "store still locked after stop"
"$blkctl" -S "$st2" info e0 >/dev/null || fail "store2 still locked after stop"
"$blkctl" -S "$st" fsck >/dev/null || fail "fsck after the runs"

echo "6. bad arguments"
expect_err() {
	local want=$1
	shift
	set +e
	timeout 60 "$cavm" run --kernel "$guest" "$@" --serial "$tmp/err.serial" \
		2>"$tmp/err.log"
	local rc=$?
	set -e
	[ $rc -ne 0 ] || fail "cavm accepted $*"
	grep -q -- "$want" "$tmp/err.log" || fail "no '$want' for $*: $(cat "$tmp/err.log")"
	[ ! -s "$tmp/err.serial" ] || fail "guest ran for $*"
}
expect_err "no such disk" --disk "$st:nope"
expect_err "unknown option" --disk "$st:d0,rw"
expect_err "attached already" --disk "$st:d0" --disk "$st:d0"
expect_err "not a disk name" --disk "$st:bad/name"
expect_err "No such file" --disk "$tmp/nostore:d0"
expect_err "needs a --disk" --control "$tmp/x.sock"
"$blkstored" -S "$st" -f 2>/dev/null &
bpid=$!
pids+=("$bpid")
for _ in $(seq 100); do
	[ -S "$st/control.sock" ] && break
	sleep 0.1
done
expect_err "another blkstored or cavm owns it" --disk "$st:d0"
kill "$bpid"
wait "$bpid" 2>/dev/null || true
echo PASS
