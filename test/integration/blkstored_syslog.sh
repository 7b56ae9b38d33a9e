#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# blkstored_syslog.sh - `blkstored --log syslog`: once ready, its lines
# reach syslog (facility daemon, ident blkstored[PID], the right
# priorities) and not stderr; a failure to start is still told on
# stderr; a bad --log value is refused.
#
# syslog(3) always writes to /dev/log, so the check runs in a private
# mount namespace with its own /dev (a tmpfs holding /dev/null, zero,
# random and urandom bound from the real one, and our listener's
# /dev/log): nothing outside the namespace is touched.  Needs root and
# unshare(1); otherwise it is skipped.
set -eu

b=${abs_top_builddir:-$(pwd)}
blkctl=$b/tools/blkctl
blkstored=$b/tools/blkstored
for x in "$blkctl" "$blkstored"; do
	[ -x "$x" ] || { echo "SKIP: $x not built"; exit 77; }
done
command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
if [ "$(id -u)" != 0 ] || ! unshare -m --propagation private true 2>/dev/null; then
	echo "SKIP: needs root and mount namespaces (unshare -m)"
	exit 77
fi

w=$(mktemp -d "${TMPDIR:-/tmp}/blkstored_syslog.XXXXXX")
trap 'rm -rf "$w"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# A bad value: exit 2, said on stderr.
if "$blkstored" -S "$w/none" -f --log journal 2>"$w/err"; then
	fail "--log journal was accepted"
fi
grep -q -- "--log: stderr or syslog" "$w/err" || fail "no message for a bad --log: $(cat "$w/err")"

"$blkctl" init "$w/store" >/dev/null

cat >"$w/listen.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
open(sys.argv[1] + ".ready", "w").close()
with open(sys.argv[1], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536) + b"\n")
PY

cat >"$w/inner.sh" <<'SH'
set -eu
w=$1 blkstored=$2 blkctl=$3
mkdir "$w/olddev"
mount --bind /dev "$w/olddev"
mount -t tmpfs -o mode=755 cavmdev /dev
for n in null zero random urandom; do
	touch "/dev/$n"
	mount --bind "$w/olddev/$n" "/dev/$n"
done
python3 "$w/listen.py" "$w/syslog.txt" &
lpid=$!
for _ in $(seq 100); do [ -e "$w/syslog.txt.ready" ] && break; sleep 0.05; done
# A store nobody can open: the failure is on stderr even with --log syslog.
if "$blkstored" -S "$w/missing" -f --log syslog 2>"$w/fail.err"; then
	echo "FAIL: a missing store started"; exit 1
fi
"$blkstored" -S "$w/store" -f --log syslog --nbd "unix:$w/nbd.sock" \
	2>"$w/daemon.err" &
pid=$!
for _ in $(seq 100); do
	grep -q control= "$w/store/lock" 2>/dev/null && break
	sleep 0.05
done
"$blkctl" -S "$w/store" create d 1M
kill -TERM "$pid"
wait "$pid"
sleep 0.2
kill "$lpid"
echo "$pid" >"$w/pid"
SH
unshare -m --propagation private bash "$w/inner.sh" "$w" "$blkstored" "$blkctl" ||
	fail "the run in the namespace failed"

pid=$(cat "$w/pid")
grep -q "cannot open store" "$w/fail.err" || fail "startup failure not on stderr: $(cat "$w/fail.err")"
grep -q "logging to syslog from now on" "$w/daemon.err" || fail "no hand-over line on stderr"
if grep -q "serving\|stopped cleanly" "$w/daemon.err"; then
	fail "lines after the hand-over still on stderr: $(cat "$w/daemon.err")"
fi
# <30> = facility daemon (3) * 8 + info (6)
grep -q "^<30>.*blkstored\[$pid\]: info: serving $w/store" "$w/syslog.txt" ||
	fail "no 'serving' line at daemon.info in syslog: $(cat "$w/syslog.txt")"
grep -q "^<30>.*blkstored\[$pid\]: info: stopped by signal 15" "$w/syslog.txt" ||
	fail "no shutdown line in syslog: $(cat "$w/syslog.txt")"
echo "ok: $(wc -l <"$w/syslog.txt") syslog lines, startup failure on stderr"
