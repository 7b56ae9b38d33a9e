#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# blkctl_online.sh - blkctl against a running blkstored: every command
# works through the owner's control socket and prints exactly what it
# prints offline; stats and clients exist only online; bad control
# requests get an error reply and change nothing.
set -eu

b=${abs_top_builddir:-$(pwd)}
blkctl=$b/tools/blkctl
blkstored=$b/tools/blkstored
for x in "$blkctl" "$blkstored"; do
	[ -x "$x" ] || { echo "SKIP: $x not built"; exit 77; }
done
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
command -v qemu-io >/dev/null || { echo "SKIP: qemu-io missing"; exit 77; }

w=$(mktemp -d "${TMPDIR:-/tmp}/blkctl_online.XXXXXX")
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$w"
}
trap cleanup EXIT
S=$w/store
fail() { echo "FAIL: $*"; exit 1; }

start() {
	"$blkstored" -S "$S" -f --nbd "unix:$w/nbd.sock" 2>"$w/daemon.log" &
	pid=$!
	for _ in $(seq 100); do
		[ -S "$S/control.sock" ] && grep -q control= "$S/lock" 2>/dev/null && return 0
		sleep 0.05
	done
	cat "$w/daemon.log"
	fail "blkstored did not start"
}
stop() {
	kill "$pid"
	wait "$pid" || fail "blkstored did not exit 0 on SIGTERM"
	pid=
}

echo "== setup offline"
"$blkctl" init "$S"
"$blkctl" -S "$S" create vm1 64M
head -c 300000 /dev/urandom >"$w/data"
"$blkctl" -S "$S" write vm1 12345 <"$w/data"
"$blkctl" -S "$S" snapshot vm1@s1

# The same read-only commands, offline and online: identical output.
run_all() {
	"$blkctl" -S "$S" list
	"$blkctl" -S "$S" list --json
	"$blkctl" -S "$S" info vm1 | grep -v '^created'
	"$blkctl" -S "$S" info vm1@s1 --json | sed 's/"created":"[^"]*"//'
	"$blkctl" -S "$S" df --json | sed 's/"fs_free_bytes":[0-9]*//'
	"$blkctl" -S "$S" diff vm1@s1 vm1
	"$blkctl" -S "$S" read vm1 12345 300000 | cmp - "$w/data"
	"$blkctl" -S "$S" scrub
	"$blkctl" -S "$S" info nosuchdisk 2>&1 || echo "exit $?"
}
run_all >"$w/offline.out" 2>&1 || fail "offline run"

echo "== online: the same commands through the control socket"
start
[ "$(stat -c %a "$S/control.sock")" = 600 ] || fail "control socket mode is not 0600"
run_all >"$w/online.out" 2>&1 || fail "online run"
diff -u "$w/offline.out" "$w/online.out" || fail "online output differs from offline"
grep -q "blkctl list" "$w/daemon.log" || fail "the daemon did not run the commands"

echo "== online: changes, imports with relative paths, exports"
(cd "$w" && "$blkctl" -S "$S" import img2 data) || fail "online import (relative path)"
"$blkctl" -S "$S" export img2 "$w/img2.out"
cmp <(head -c 300000 "$w/img2.out") "$w/data" || fail "online export"
"$blkctl" -S "$S" clone vm1@s1 vm2
"$blkctl" -S "$S" resize vm2 +1M
"$blkctl" -S "$S" write vm1@s1 0 </dev/null 2>"$w/err" && fail "write to a snapshot succeeded online"
[ "$(wc -l <"$w/err")" = 1 ] || fail "error is not one line: $(cat "$w/err")"
"$blkctl" -S "$S" fsck >/dev/null || fail "online fsck"
"$blkctl" -S "$S" fsck --rebuild 2>"$w/err" && fail "fsck --rebuild accepted online"
grep -q "stop its owner" "$w/err" || fail "fsck --rebuild online: unclear error"

echo "== online only: stats and clients"
qemu-io -f raw -t writeback -c 'write -P 0x5a 0 1M' -c 'read -P 0x5a 0 1M' \
	"nbd+unix:///vm1?socket=$w/nbd.sock" >/dev/null || fail "qemu-io"
"$blkctl" -S "$S" stats --json >"$w/stats.json"
python3 - "$w/stats.json" <<'EOF' || fail "stats"
import json, sys
s = json.load(open(sys.argv[1]))
d = {x["disk"]: x for x in s["disks"]}
assert d["vm1"]["writes"] >= 1 and d["vm1"]["reads"] >= 1, d
assert d["vm1"]["write_bytes"] >= 1 << 20, d
assert d["vm1"]["lat_p99_us"] >= d["vm1"]["lat_p50_us"] >= 0
EOF
"$blkctl" -S "$S" stats vm1 | grep -q '^vm1 ' || fail "stats vm1 (table)"
"$blkctl" -S "$S" stats nosuchdisk 2>/dev/null && fail "stats of an unknown disk succeeded"
"$blkctl" -S "$S" clients --json | python3 -c 'import json,sys; json.load(sys.stdin)["clients"]' \
	|| fail "clients --json"

echo "== a snapshot of a disk being written is crash-consistent"
# One client writes block i with byte i%250+1, each write acknowledged
# before the next is sent; a snapshot taken meanwhile must hold a prefix
# of that sequence: every write before it, none after, no gap.
"$blkctl" -S "$S" create seq 8M
cmds=()
for i in $(seq 0 1999); do
	cmds+=(-c "write -q -P $((i % 250 + 1)) $((i * 4096)) 4k")
	[ $((i % 4)) = 3 ] && cmds+=(-c "sleep 1") # ~0.5 s in all: the snapshot lands inside
done
qemu-io -f raw -t writeback "${cmds[@]}" "nbd+unix:///seq?socket=$w/nbd.sock" &
qpid=$!
sleep 0.3
"$blkctl" -S "$S" snapshot seq@mid
wait $qpid || fail "sequential writer"
"$blkctl" -S "$S" export seq@mid "$w/mid.img"
"$blkctl" -S "$S" export seq "$w/seq.img"
python3 - "$w/mid.img" "$w/seq.img" <<'EOF' || fail "snapshot is not a prefix of the acknowledged writes"
import sys
mid, full = open(sys.argv[1], "rb").read(), open(sys.argv[2], "rb").read()
want = lambda i: bytes([i % 250 + 1]) * 4096
n = 0
while n < 2000 and mid[n*4096:(n+1)*4096] == want(n):
    n += 1
assert all(b == 0 for b in mid[n*4096:]), "a write after the cut, or a torn one"
assert all(full[i*4096:(i+1)*4096] == want(i) for i in range(2000))
print(f"snapshot holds the first {n} of 2000 writes")
EOF

echo "== bad control requests: an error reply, the server keeps serving"
python3 - "$S/control.sock" <<'EOF' || fail "bad requests"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rwb")
def ask(line):
    f.write(line + b"\n"); f.flush(); return json.loads(f.readline())
r = ask(b"this is not json");                        assert "error" in r, r
r = ask(b'{"v":99,"id":1,"cmd":"hello"}');           assert "version" in r["error"], r
r = ask(b'{"v":1,"id":2}');                          assert "error" in r and r["id"] == 2, r
r = ask(b'{"v":1,"id":3,"cmd":"frobnicate"}');       assert r["error"] == "unknown command", r
r = ask(b'{"v":1,"id":4,"cmd":"blkctl","argv":["list"]}')   # no descriptors passed
assert "error" in r, r
r = ask(b'{"v":1,"id":5,"cmd":"hello"}');            assert r["server"] == "blkstored" and r["id"] == 5, r
EOF
"$blkctl" -S "$S" list >/dev/null || fail "server stopped answering after bad requests"

echo "== after the owner stops, blkctl opens the store itself again"
stop
"$blkctl" -S "$S" stats 2>"$w/err" && fail "stats without an owner succeeded"
grep -q "no running owner" "$w/err" || fail "stats without owner: unclear error"
"$blkctl" -S "$S" fsck >/dev/null || fail "fsck offline after the daemon"
echo "PASS"
