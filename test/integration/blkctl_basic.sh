#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/blkctl_basic.sh - blkctl end to end on a fresh store:
# the life of disks, snapshots and clones as an admin sees it.
#
# Phases (fsck must be clean, exit 0, after each one):
#   1. write/read round trip at unaligned offsets and lengths, from a
#      regular file and from a pipe, compared with a reference image built
#      by dd; export and import compared too
#   2. snapshots and clones: diff output exact (human and --json), a
#      snapshot and a clone keep their content while the disk changes
#   3. resize: grow, shrink dropping data refused without --force, allowed
#      with it, and what was dropped reads as zeros after growing again
#   4. delete a snapshot holding the only copy of some data; gc returns
#      space (df stored_bytes decreases)
#   5. export of a mostly-hole disk is sparse (du < apparent size)
#   6. a 2 TiB disk, its snapshot and a clone store no data (df
#      stored_bytes unchanged, segment_bytes grow by the catalogue
#      records only)
#   7. 1000 nested clones (each a clone of the previous one plus one 4 KiB
#      write of its own pattern at its own offset): the last shows all 1000
#   8. fsck --rebuild keeps everything; scrub finds a damaged chunk, names
#      it and its disk, exits 1; deleting that disk and gc clean it up
set -eu

blkctl=${abs_top_builddir:-$(pwd)}/tools/blkctl
if [ ! -x "$blkctl" ]; then
	echo "SKIP: $blkctl is not built"
	exit 77
fi
if ! command -v python3 >/dev/null; then
	echo "SKIP: python3 (to read blkctl's --json output) is missing"
	exit 77
fi

tmp=$(mktemp -d /tmp/blkctl-basic.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
export BLKCTL_STORE=$tmp/store
unset BLKCTL 2>/dev/null || true

fail() {
	echo "FAIL: $*"
	exit 1
}
say() { echo "== $*"; }
# blkctl that must succeed
blk() {
	"$blkctl" "$@" || fail "blkctl $* exited $?"
}
# the value of a key that occurs once in a one-line JSON document
jkey() { sed -n 's/.*"'"$1"'":\("\([^"]*\)"\|\([^,}]*\)\).*/\2\3/p'; }
df_key() { blk df --json | jkey "$1"; }
fsck_clean() {
	local out
	out=$("$blkctl" fsck 2>&1) || fail "fsck after $1: $out"
	echo "   fsck after $1: ${out##*$'\n'}"
}
# dd a file into an image at a byte offset, as a reference
patch_ref() { # IMAGE OFFSET FILE
	dd if="$3" of="$1" bs=64K seek="$2" oflag=seek_bytes conv=notrunc \
		status=none
}
same() { # FILE1 FILE2 WHAT
	cmp -s "$1" "$2" || fail "$3: contents differ ($(cmp "$1" "$2" 2>&1 | head -n 1))"
	echo "   $3: identical"
}

say "init, create, info"
blk init "$BLKCTL_STORE"
blk create d 64M
[ "$(blk info d --json | jkey size)" = 67108864 ] || fail "info: size is not 64 MiB"
[ "$(blk info d --json | jkey allocated_bytes)" = 0 ] || fail "a new disk has allocated bytes"
blk info d --json | jkey created | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' ||
	fail "info: created is not ISO-8601 UTC"
blk info d | grep -q '^size *64.0 MiB' || fail "human info does not show 64.0 MiB"

say "1. write/read round trip at unaligned offsets"
truncate -s 64M "$tmp/ref.img"
i=0
# offset:length pairs: inside one block, across block edges, whole blocks
# at odd offsets, long runs, the first and the last bytes of the disk
for ol in 0:1 1:100 4095:2 4096:4096 5000:4097 8191:10000 1048579:300001 \
	8388608:65536 33554431:4096 67108763:100 67108863:1; do
	off=${ol%%:*} len=${ol##*:}
	i=$((i + 1))
	head -c "$len" /dev/urandom >"$tmp/w$i"
	if [ $((i % 2)) -eq 0 ]; then
		blk write d "$off" <"$tmp/w$i" # stdin a regular file
	else
		cat "$tmp/w$i" | blk write d "$off" # stdin a pipe
	fi
	patch_ref "$tmp/ref.img" "$off" "$tmp/w$i"
	echo "   wrote $len bytes at $off"
done
blk read d 0 64M >"$tmp/out.img"
same "$tmp/out.img" "$tmp/ref.img" "read d 0 64M"
blk read d 4093 10007 >"$tmp/part"
dd if="$tmp/ref.img" bs=64K skip=4093 count=10007 iflag=skip_bytes,count_bytes \
	status=none >"$tmp/part.ref"
same "$tmp/part" "$tmp/part.ref" "read d 4093 10007"
blk read d 1M 8K >"$tmp/part"
dd if="$tmp/ref.img" bs=8K skip=128 count=1 status=none >"$tmp/part.ref"
same "$tmp/part" "$tmp/part.ref" "read d 1M 8K (suffixes)"
blk export d "$tmp/exp.img"
same "$tmp/exp.img" "$tmp/ref.img" "export d FILE"
blk export d - >"$tmp/exp2.img"
same "$tmp/exp2.img" "$tmp/ref.img" "export d - (stdout)"
blk import imp "$tmp/ref.img"
blk export imp "$tmp/imp.img"
same "$tmp/imp.img" "$tmp/ref.img" "import FILE, export"
head -c 1000000 "$tmp/ref.img" | blk import imp2 -
[ "$(blk info imp2 --json | jkey size)" = 1000448 ] ||
	fail "import of 1000000 bytes from a pipe: size is not rounded up to 512"
blk read imp2 0 1000000 | cmp -s - <(head -c 1000000 "$tmp/ref.img") ||
	fail "import - (stdin): contents differ"
echo "   import - (stdin): identical"
fsck_clean "phase 1"

say "2. snapshots, clones, diff"
cp "$tmp/ref.img" "$tmp/ref_s1.img"
blk snapshot d@s1
head -c 12288 /dev/urandom >"$tmp/x"
blk write d $((8388608 + 100)) <"$tmp/x" # blocks 2048..2051
patch_ref "$tmp/ref.img" $((8388608 + 100)) "$tmp/x"
printf X | blk write d $((41943040 + 1)) # block 10240, a hole before
patch_ref "$tmp/ref.img" $((41943040 + 1)) <(printf X)
blk snapshot d@s2
cat >"$tmp/diff.want" <<EOF
8388608 16384
41943040 4096
total 20480 bytes (20.0 KiB) in 2 ranges
EOF
blk diff d@s1 d@s2 >"$tmp/diff.got"
diff -u "$tmp/diff.want" "$tmp/diff.got" || fail "diff d@s1 d@s2 output"
echo "   diff d@s1 d@s2: exact"
want='{"ranges":[{"offset":8388608,"length":16384},{"offset":41943040,"length":4096}],"changed_bytes":20480}'
[ "$(blk diff d@s1 d --json)" = "$want" ] || fail "diff --json: $(blk diff d@s1 d --json)"
echo "   diff d@s1 d --json: exact"
[ "$(blk diff d@s2 d)" = "total 0 bytes (0 B) in 0 ranges" ] ||
	fail "diff of a disk with its latest snapshot is not empty"
blk clone d@s1 c1
blk clone d c2
printf 'clone one' | blk write c1 0
blk export d@s1 "$tmp/s1.img"
same "$tmp/s1.img" "$tmp/ref_s1.img" "d@s1 after d and c1 changed"
blk export d "$tmp/d.img"
same "$tmp/d.img" "$tmp/ref.img" "d after c1 changed"
blk export c2 "$tmp/c2.img"
same "$tmp/c2.img" "$tmp/ref.img" "c2 (a clone of the disk d)"
[ "$(blk read c1 0 9)" = "clone one" ] || fail "c1's own write"
[ "$(blk info c1 --json | jkey origin)" = d@s1 ] || fail "c1's origin"
blk list | awk 'NR > 1 { print $1 }' | tr '\n' ' ' >"$tmp/names"
[ "$(cat "$tmp/names")" = "c1 c2 d d@s1 d@s2 imp imp2 " ] ||
	fail "list order: $(cat "$tmp/names")"
blk list --json | python3 -c 'import json, sys
d = {x["name"]: x for x in json.load(sys.stdin)["disks"]}["d"]
sys.exit([s["name"] for s in d["snapshots"]] != ["d@s1", "d@s2"])' ||
	fail "list --json: d@s1, d@s2 are not d's snapshots"
echo "   list: disks in name order, snapshots under their disk"
fsck_clean "phase 2"

say "3. resize"
blk create r 1M
head -c 10 /dev/urandom >"$tmp/r10"
blk write r 921600 <"$tmp/r10"
blk resize r +1M
[ "$(blk info r --json | jkey size)" = 2097152 ] || fail "resize +1M"
blk read r 921600 10 | cmp -s - "$tmp/r10" || fail "data lost by growing"
[ "$(blk read r 1M 1M | tr -d '\0' | wc -c)" = 0 ] || fail "grown part is not zeros"
if "$blkctl" resize r 512K 2>"$tmp/err"; then
	fail "a shrink dropping written data was accepted without --force"
fi
grep -q '^blkctl: ' "$tmp/err" || fail "refused shrink: no blkctl: line"
[ "$(blk info r --json | jkey size)" = 2097152 ] || fail "a refused shrink changed the size"
echo "   shrink dropping data refused: $(cat "$tmp/err")"
blk resize r -1536K --force
[ "$(blk info r --json | jkey size)" = 524288 ] || fail "resize -1536K --force"
blk resize r 1M
[ "$(blk read r 0 1M | tr -d '\0' | wc -c)" = 0 ] ||
	fail "bytes dropped by a shrink do not read as zeros after growing"
echo "   shrink --force, grow again: dropped bytes read as zeros"
# A shrink inside a block: written bytes past the new end, same block.
printf 'keep' | blk write r 598016
printf 'drop' | blk write r 600000
if "$blkctl" resize r 599552 2>/dev/null; then
	fail "a shrink dropping the tail of a block was accepted without --force"
fi
blk resize r 599552 --force
blk resize r 1M
[ "$(blk read r 598016 4)" = keep ] || fail "bytes before the new end lost"
[ "$(blk read r 599552 8192 | tr -d '\0' | wc -c)" = 0 ] ||
	fail "bytes past an unaligned shrink do not read as zeros"
blk resize r 600K # nothing written past 600K: no --force needed
echo "   unaligned shrink, shrink of holes only: ok"
fsck_clean "phase 3"

say "4. delete a snapshot, gc returns space"
blk create g 8M
head -c 1M /dev/urandom | blk write g 0
blk snapshot g@old
head -c 1M /dev/urandom | blk write g 0 # g@old now has the only copy
before=$(df_key stored_bytes)
blk delete g@old
blk gc
after=$(df_key stored_bytes)
echo "   stored_bytes $before -> $after"
[ "$after" -lt $((before - 1000000)) ] || fail "gc did not return the snapshot's 1 MiB"
if blk list | grep -q '^g@old '; then fail "g@old still listed"; fi
fsck_clean "phase 4"

say "5. sparse export"
blk create sp 256M
printf 'data in a sea of holes' | blk write sp 100M
blk export sp "$tmp/sp.img"
apparent=$(stat -c %s "$tmp/sp.img")
used=$(($(du -k "$tmp/sp.img" | cut -f1) * 1024))
echo "   apparent $apparent bytes, allocated $used bytes"
[ "$apparent" = 268435456 ] || fail "exported file is not 256 MiB"
[ "$used" -lt 1048576 ] || fail "export of a mostly-hole disk is not sparse"
truncate -s 256M "$tmp/sp.ref"
patch_ref "$tmp/sp.ref" 104857600 <(printf 'data in a sea of holes')
same "$tmp/sp.img" "$tmp/sp.ref" "sparse export"
fsck_clean "phase 5"

say "6. 2 TiB disk, snapshot, clone: no data stored"
s0=$(df_key stored_bytes) g0=$(df_key segment_bytes)
blk create big 2T
blk snapshot big@empty
blk clone big@empty big2
s1=$(df_key stored_bytes) g1=$(df_key segment_bytes)
echo "   stored_bytes $s0 -> $s1, segment_bytes $g0 -> $g1"
# Only the three catalogue records (a few hundred bytes) reach the
# segments; no data.
[ "$s0" = "$s1" ] && [ $((g1 - g0)) -lt 1024 ] || fail "2 TiB create/snapshot/clone stored data"
[ "$(blk info big2 --json | jkey size)" = 2199023255552 ] || fail "big2 is not 2 TiB"
printf 'at the far end' | blk write big2 $((2199023255552 - 14))
[ "$(blk read big2 2199023255538 14)" = 'at the far end' ] || fail "write at 2 TiB - 14"
[ "$(blk read big@empty 2199023255538 14 | tr -d '\0')" = '' ] || fail "big@empty changed"
if python3 -c 'import json, sys; d = json.load(sys.stdin)
sys.exit(0 if d["logical_bytes"] > d["stored_bytes"] + d["fs_free_bytes"] else 1)' \
	< <(blk df --json); then
	blk df | grep -q '^warning: thin overcommit: disks total ' ||
		fail "df does not warn of thin overcommit"
	echo "   df warns: $(blk df | grep '^warning:')"
fi
blk delete big2
blk delete big@empty
blk delete big
fsck_clean "phase 6"

say "7. 1000 nested clones"
pattern() { printf '%04096d' "$1"; } # 4 KiB, its own for each clone
blk create n0 8M
: >"$tmp/nested.ref"
for i in $(seq 1 1000); do
	blk clone "n$((i - 1))" "n$i"
	pattern "$i" | blk write "n$i" $((i * 4096))
	pattern "$i" >>"$tmp/nested.ref"
done
blk read n1000 4096 $((1000 * 4096)) >"$tmp/nested.out"
same "$tmp/nested.out" "$tmp/nested.ref" "n1000 holds all 1000 patterns"
[ "$(blk read n1000 0 4096 | tr -d '\0' | wc -c)" = 0 ] || fail "n1000 block 0"
[ "$(blk info n1000 --json | jkey origin)" = n999 ] || fail "n1000's origin"
[ "$(blk info n1000 --json | jkey allocated_bytes)" = 4096000 ] ||
	fail "n1000 allocated bytes"
[ "$(blk read n500 $((501 * 4096)) 4096 | tr -d '\0' | wc -c)" = 0 ] ||
	fail "n500 sees a later clone's write"
fsck_clean "phase 7"

say "8. fsck --rebuild, scrub finds and names damage"
blk list --json >"$tmp/list.before"
"$blkctl" fsck --rebuild >"$tmp/rebuild.out" 2>&1 ||
	fail "fsck --rebuild: $(cat "$tmp/rebuild.out")"
echo "   fsck --rebuild: $(head -n 1 "$tmp/rebuild.out")"
blk list --json | cmp -s - "$tmp/list.before" || fail "fsck --rebuild changed the catalogue"
blk read n1000 4096 $((1000 * 4096)) | cmp -s - "$tmp/nested.ref" ||
	fail "n1000 changed by fsck --rebuild"
blk gc >/dev/null # gc is refused until a rebuild's recount is done
blk scrub >/dev/null
# A block of random bytes is stored raw: find it in the segments and
# flip one byte of it.
head -c 4096 /dev/urandom >"$tmp/victim"
blk create dmg 1M
blk write dmg 8192 <"$tmp/victim"
python3 - "$tmp/victim" "$BLKCTL_STORE"/segments/*.seg <<'PY' || fail "the block was not found in any segment"
import sys
victim = open(sys.argv[1], "rb").read()
for seg in sys.argv[2:]:
    with open(seg, "r+b") as f:
        data = f.read()
        at = data.find(victim)
        if at >= 0:
            f.seek(at + 100)
            f.write(bytes([data[at + 100] ^ 0xFF]))
            sys.exit(0)
sys.exit(1)
PY
name=$(sha256sum "$tmp/victim" | cut -d' ' -f1)
if "$blkctl" scrub >"$tmp/scrub.out" 2>"$tmp/scrub.err"; then
	fail "scrub of a damaged store exited 0"
fi
grep -q "^damaged chunk $name: .*referenced by: dmg\$" "$tmp/scrub.out" ||
	fail "scrub did not name the damaged chunk and its disk: $(cat "$tmp/scrub.out")"
[ "$(wc -l <"$tmp/scrub.err")" = 1 ] && grep -q '^blkctl: scrub' "$tmp/scrub.err" ||
	fail "scrub's verdict is not one blkctl: line: $(cat "$tmp/scrub.err")"
echo "   scrub: $(grep '^damaged' "$tmp/scrub.out" | cut -c1-40)... ($(cat "$tmp/scrub.err"))"
if "$blkctl" read dmg 8192 4096 >/dev/null 2>"$tmp/err"; then
	fail "a damaged block was read without an error"
fi
echo "   read of the damaged block: $(cat "$tmp/err")"
blk delete dmg
blk gc >/dev/null
blk scrub >/dev/null
echo "   deleting the disk and gc leave a clean store"
fsck_clean "phase 8"
echo "PASS"
