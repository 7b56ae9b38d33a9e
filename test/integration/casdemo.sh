#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/casdemo.sh - tools/casdemo end to end, on a small tree
# made here: real files and an exact copy of them (dedup), compressible
# text, zero blocks (holes), a short tail and an empty file.
#
# casdemo must pass all its own checks (clean scrub, nothing new stored
# by the second pass, every sampled block read back equal), remove its
# store unless -k, and refuse bad input without touching anything:
# a store directory that is not empty, a missing tree, bad usage.
set -u

demo=${abs_top_builddir:-$(pwd)}/tools/casdemo
if [ ! -x "$demo" ]; then
	echo "SKIP: $demo is not built"
	exit 77
fi

tmp=$(mktemp -d /tmp/casdemo-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() {
	echo "FAIL: $*"
	fails=$((fails + 1))
}

tree=$tmp/tree
mkdir -p "$tree/a"
find /usr/share/doc -type f -size -64k 2>/dev/null | head -n 100 |
	while IFS= read -r f; do
		cp "$f" "$tree/a/$(printf '%s' "$f" | tr / _)"
	done
seq 1 100000 >"$tree/a/seq.txt"
head -c 20480 /dev/zero >"$tree/a/zeros"
printf 'a short tail' >"$tree/a/tail"
: >"$tree/a/empty"
cp -r "$tree/a" "$tree/b"

out=$tmp/out
echo "== casdemo STORE $tree"
"$demo" "$tmp/store" "$tree" >"$out" 2>&1
rc=$?
cat "$out"
[ $rc -eq 0 ] || fail "casdemo exited $rc"
grep -q '^scrub .*, 0 damaged$' "$out" || fail "scrub did not report 0 damaged"
grep -q '^verify .*, 0 mismatches$' "$out" || fail "verify reported mismatches"
grep -q '^pass 2 *0 new chunks, 0 new bytes' "$out" ||
	fail "the second pass stored something"
awk '/^dedup/ { found = 1; ok = ($2 + 0 >= 2) } END { exit !(found && ok) }' \
	"$out" || fail "dedup ratio below 2 on a tree holding everything twice"
[ ! -e "$tmp/store" ] || fail "the store was not removed (no -k)"

echo "== casdemo -k"
"$demo" -k "$tmp/kept" "$tree/a" >"$out" 2>&1 || fail "casdemo -k exited $?"
[ -d "$tmp/kept" ] || fail "-k did not keep the store"

echo "== bad input"
mkdir "$tmp/full"
echo precious >"$tmp/full/file"
if "$demo" "$tmp/full" "$tree/a" >"$out" 2>&1; then
	fail "casdemo accepted a non-empty store directory"
fi
cat "$out"
[ "$(cat "$tmp/full/file" 2>/dev/null)" = precious ] ||
	fail "casdemo changed a non-empty directory it was given"
if "$demo" "$tmp/kept" "$tree/a" >"$out" 2>&1; then
	fail "casdemo accepted an existing store"
fi
cat "$out"
if "$demo" "$tmp/s2" "$tmp/no-such-tree" >"$out" 2>&1; then
	fail "casdemo accepted a missing tree"
fi
cat "$out"
[ ! -e "$tmp/s2" ] || fail "a store was created for a missing tree"
"$demo" >"$out" 2>&1
rc=$?
[ $rc -eq 2 ] || fail "no arguments: exit $rc, expected 2 (usage)"
"$demo" -x "$tmp/s3" >"$out" 2>&1
rc=$?
[ $rc -eq 2 ] || fail "unknown option: exit $rc, expected 2 (usage)"

[ $fails -eq 0 ] && echo "PASS" || echo "$fails checks failed"
[ $fails -eq 0 ]
