#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/blkctl_errors.sh - blkctl refuses bad input cleanly.
#
# Every case must: exit non-zero (2 for usage errors), print exactly one
# line on stderr starting with "blkctl:", print nothing on stdout, and
# change nothing: the store's `list --json` and df's stored_bytes and
# unique_data_chunks are the same before and after.  Cases: unknown
# disks, bad sizes, DISK@SNAP that does not exist, writes to a snapshot,
# shrinks that would drop data, folders that are not stores, unknown
# commands and options, missing and extra arguments, bad names, names
# that exist, I/O past the end, a store held by another process.
set -eu

blkctl=${abs_top_builddir:-$(pwd)}/tools/blkctl
if [ ! -x "$blkctl" ]; then
	echo "SKIP: $blkctl is not built"
	exit 77
fi

tmp=$(mktemp -d /tmp/blkctl-errors.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
store=$tmp/store
export BLKCTL_STORE=$store
fails=0

fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}
blk() {
	"$blkctl" "$@" || {
		echo "FAIL: setup: blkctl $* exited $?"
		exit 1
	}
}
# What must not change: every record of the catalogue and the data held.
state() {
	"$blkctl" -S "$store" list --json
	"$blkctl" -S "$store" df --json |
		grep -o '"\(stored_bytes\|unique_data_chunks\|node_chunks\)":[0-9]*'
}

# bad WANT DESCRIPTION ARGS...: WANT is 2 (usage error) or "fail" (any
# status but 0, 2 and 77).  stdin comes from $in (default /dev/null);
# with nostore=1 blkctl runs without BLKCTL_STORE; with locked=1 the
# store cannot be read around the command (the caller compares).
bad() {
	local want=$1 what=$2 rc before= after= lines
	shift 2
	[ -n "${locked:-}" ] || before=$(state)
	set +e
	if [ -n "${nostore:-}" ]; then
		env -u BLKCTL_STORE "$blkctl" "$@"
	else
		"$blkctl" "$@"
	fi <"${in:-/dev/null}" >"$tmp/out" 2>"$tmp/err"
	rc=$?
	set -e
	[ -n "${locked:-}" ] || after=$(state)
	lines=$(wc -l <"$tmp/err")
	if [ $rc -eq 0 ]; then
		fail "$what: accepted (exit 0)"
	elif [ "$want" = 2 ] && [ $rc -ne 2 ]; then
		fail "$what: exit $rc, expected 2 (usage error)"
	elif [ "$want" = fail ] && { [ $rc -eq 2 ] || [ $rc -eq 77 ]; }; then
		fail "$what: exit $rc, expected a plain failure (1)"
	elif [ "$lines" -ne 1 ] || ! grep -q '^blkctl: ' "$tmp/err"; then
		fail "$what: stderr is not one 'blkctl:' line: $(cat "$tmp/err")"
	elif [ -s "$tmp/out" ]; then
		fail "$what: printed on stdout: $(head -c 200 "$tmp/out")"
	elif [ "$before" != "$after" ]; then
		fail "$what: the store changed"
	else
		echo "   ok  exit $rc  $what: $(cat "$tmp/err")"
	fi
}

# piped FILE WANT DESCRIPTION ARGS...: bad, with FILE through a pipe
piped() {
	local file=$1 pid
	shift
	rm -f "$tmp/fifo"
	mkfifo "$tmp/fifo"
	cat "$file" >"$tmp/fifo" 2>/dev/null &
	pid=$!
	in=$tmp/fifo bad "$@"
	wait $pid || true # killed by SIGPIPE if blkctl read nothing
}

echo "== setup: a store with disk d (data near its end), d@s, clone c"
blk init "$store"
blk create d 1M
head -c 8192 /dev/urandom >"$tmp/data"
blk write d 1040384 <"$tmp/data" # the last two blocks
blk snapshot d@s
blk clone d@s c
head -c 10000 /dev/urandom >"$tmp/big"
mkdir "$tmp/notastore"
echo precious >"$tmp/notastore/file"

echo "== no store, not a store"
nostore=1 bad 2 "no -S and no BLKCTL_STORE" list
BLKCTL_STORE='' bad 2 "empty BLKCTL_STORE" list
bad fail "a folder that is not a store" -S "$tmp/notastore" list
bad fail "a folder that is not a store (create)" -S "$tmp/notastore" create x 1M
bad fail "fsck --rebuild of a folder that is not a store" \
	-S "$tmp/notastore" fsck --rebuild
[ "$(ls -A "$tmp/notastore")" = file ] &&
	[ "$(cat "$tmp/notastore/file")" = precious ] ||
	fail "a folder that is not a store was changed"
bad fail "a missing folder" -S "$tmp/missing" list
[ ! -e "$tmp/missing" ] || fail "a missing store folder was created"
bad fail "init of a non-empty folder" init "$tmp/notastore"
bad fail "init of an existing store" init "$store"
bad 2 "init without STORE" init

echo "== unknown commands, options, arguments"
bad 2 "no command" -S "$store"
bad 2 "unknown command" frob
bad 2 "unknown global option" -x list
bad 2 "-S without STORE" -S
bad 2 "unknown command option" list --bogus
bad 2 "option of another command" create x 1M --force
bad 2 "--json where there is none" snapshot d@t --json
bad 2 "extra argument" info d extra
bad 2 "missing arguments: create" create
bad 2 "missing SIZE" create x
bad 2 "missing NEWDISK" clone d@s
bad 2 "missing LENGTH" read d 0
bad 2 "missing OFFSET" write d
bad 2 "missing second spec" diff d@s
bad 2 "missing spec" delete
bad 2 "missing SIZE for resize" resize d
bad 2 "snapshot without @SNAP" snapshot d

echo "== bad sizes"
for size in 12Q -1 1.5G '' ' 1M' 1MB 0x1000 K 1K2 99999999999999999999 \
	16777216T; do
	bad 2 "create x '$size'" create x "$size"
done
bad fail "create x 0" create x 0
bad fail "create x 1000 (not a multiple of 512)" create x 1000
bad fail "resize d 1000" resize d 1000
bad fail "resize d -2M (below zero)" resize d -2M
bad fail "resize d -1M (to zero)" resize d -1M
bad fail "resize d +16777215T (too big)" resize d +16777215T
bad 2 "resize d +-1M" resize d +-1M
bad 2 "read d 0 12Q" read d 0 12Q
bad 2 "write d at -1" write d -1

echo "== unknown disks and snapshots"
bad fail "info of an unknown disk" info nope
bad fail "info of an unknown snapshot" info d@nope
bad fail "read an unknown disk" read nope 0 1
bad fail "read an unknown snapshot" read d@nope 0 1
in=$tmp/data bad fail "write an unknown disk" write nope 0
bad fail "export an unknown disk" export nope "$tmp/nope.img"
bad fail "export an unknown snapshot" export d@nope "$tmp/nope.img"
[ ! -e "$tmp/nope.img" ] || fail "export of an unknown disk created its file"
bad fail "clone an unknown disk" clone nope x
bad fail "clone an unknown snapshot" clone d@nope x
bad fail "snapshot an unknown disk" snapshot nope@s
bad fail "delete an unknown disk" delete nope
bad fail "delete an unknown snapshot" delete d@nope
bad fail "resize an unknown disk" resize nope 2M
bad fail "diff with an unknown snapshot" diff d@nope d
bad fail "diff with an unknown disk" diff d@s nope

echo "== snapshots are read-only, shrinks keep data"
in=$tmp/data bad fail "write to a snapshot (stdin a file)" write d@s 0
piped "$tmp/data" fail "write to a snapshot (stdin a pipe)" write d@s 4096
bad fail "resize a snapshot" resize d@s 2M
bad fail "shrink dropping written blocks" resize d 512K
bad fail "shrink dropping the tail of a block" resize d 1048064
bad fail "shrink by a delta dropping data" resize d -4K

echo "== names"
bad fail "create a bad name" create 'bad name' 1M
bad fail "create a name starting with ." create .hidden 1M
bad fail "create a name starting with -" create -- -dash 1M
bad fail "create a name that is too long" create "$(printf 'n%.0s' $(seq 65))" 1M
bad fail "clone to a bad name" clone d@s 'a/b'
bad fail "snapshot with a bad name" snapshot 'd@a b'
bad fail "create an existing disk" create d 1M
bad fail "snapshot that exists" snapshot d@s
bad fail "clone onto an existing disk" clone d@s c
bad fail "import onto an existing disk" import d "$tmp/data"
bad fail "delete a disk that has snapshots" delete d

echo "== files and I/O past the end"
bad fail "import a missing file" import x "$tmp/no-such-file"
bad fail "import a directory" import x "$tmp/notastore"
bad fail "export into a missing folder" export d "$tmp/no/such/dir.img"
bad fail "read past the end" read d 1048575 2
bad fail "read at an offset past the end" read d 2M 0
in=$tmp/big bad fail "write past the end (stdin a file)" write d 1040384
piped "$tmp/big" fail "write past the end (stdin a pipe)" write d 1040384
in=$tmp/data bad fail "write at an offset past the end" write d 2M

if command -v flock >/dev/null; then
	echo "== a store held by another process"
	before=$(state)
	exec 9>"$store/lock"
	flock -x 9
	locked=1 bad fail "list while the store is locked" list
	locked=1 bad fail "create while the store is locked" create x 1M
	locked=1 bad fail "fsck --rebuild while the store is locked" fsck --rebuild
	exec 9>&-
	[ "$before" = "$(state)" ] || fail "the locked store changed"
fi

echo "== the store is intact"
blk read d 1040384 8192 | cmp -s - "$tmp/data" || fail "d's data changed"
blk read d@s 1040384 8192 | cmp -s - "$tmp/data" || fail "d@s's data changed"
"$blkctl" fsck >/dev/null || fail "fsck is not clean at the end"

if [ $fails -eq 0 ]; then
	echo "PASS"
	exit 0
fi
echo "$fails checks failed"
exit 1
