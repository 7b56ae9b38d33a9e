#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/crash/mutants.sh - does the torture still catch what it must?
#
# Copies the tree's cas/, parallax/, blkstore/, common/ and test/crash/
# to a scratch directory (the tree itself is never touched), breaks the
# store's durability in one known way at a time, builds the torture
# against the broken copy and runs three seeds: each mutant must make
# every seed fail.  Run it after changing the simulation (pc_*.c) or the
# checks (check.c); a mutant reported MISSED means the torture has gone
# blind to that bug.  A mutant whose source text has changed is reported
# "not applied" (update its pattern here).
#
#   test/crash/mutants.sh [SCRATCH_DIR]
set -u

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
scratch=${1:-$(mktemp -d "${TMPDIR:-/tmp}/mutants.XXXXXX")}
mkdir -p "$scratch" && cd "$scratch" || exit 1
missed=0

fresh() {
	rm -rf cas parallax blkstore common test
	mkdir -p test
	cp -r "$top"/{cas,parallax,blkstore,common} . && cp -r "$top/test/crash" test/
}

# mutate FILE OLD NEW: replace the first OLD (printf escapes) with NEW.
mutate() {
	python3 - "$@" <<'PY'
import sys
p, old, new = sys.argv[1], sys.argv[2], sys.argv[3]
dec = lambda x: x.encode().decode('unicode_escape')
s = open(p).read()
if dec(old) not in s:
    sys.exit(1)
open(p, 'w').write(s.replace(dec(old), dec(new), 1))
PY
}

build() {
	gcc -std=gnu11 -D_GNU_SOURCE -O2 -w -I. -o torture test/crash/*.c \
		blkstore/{catalog,disk,fsck,import,nameset,store,walk,xfer}.c \
		parallax/*.c cas/*.c \
		-lcrypto -llmdb -lzstd -luring -laio -lpthread -ldl
}

# mutant NAME FILE OLD NEW [GREP] [SEEDS]
mutant() {
	local name=$1 file=$2 old=$3 new=$4 pat=${5:-^FAIL seed} seeds=${6:-1 2 3}
	local s verdict=caught
	fresh
	if ! mutate "$file" "$old" "$new"; then
		printf '%-22s not applied (%s changed)\n' "$name" "$file"
		return
	fi
	if ! build; then
		printf '%-22s does not build\n' "$name"
		missed=$((missed + 1))
		return
	fi
	for s in $seeds; do
		if ! ./torture -s "$s" -n 200 -c 30 -a leaks 2>&1 | grep -q "$pat"; then
			verdict="MISSED (seed $s)"
			missed=$((missed + 1))
		fi
	done
	printf '%-22s %s\n' "$name" "$verdict"
}

mutant "segment fdatasync" cas/cas.c \
	'if (fdatasync(s->fds[s->dirty[i]]))' \
	'if (0 && fdatasync(s->fds[s->dirty[i]]))'
mutant "segments/ fsync" cas/cas.c \
	's->dir_dirty && fsync(s->dirfd)' '0 && fsync(s->dirfd)'
mutant "LMDB MDB_NOSYNC" cas/index.c \
	'MDB_NOTLS | MDB_NORDAHEAD, 0600' \
	'MDB_NOTLS | MDB_NORDAHEAD | MDB_NOSYNC, 0600'
mutant "LMDB MDB_NOMETASYNC" cas/index.c \
	'MDB_NOTLS | MDB_NORDAHEAD, 0600' \
	'MDB_NOTLS | MDB_NORDAHEAD | MDB_NOMETASYNC, 0600'
mutant "flush without sync" blkstore/store.c \
	'\treturn bs_sync(s, rc);\n}\n\nint bs_sync' \
	'\treturn rc;\n}\n\nint bs_sync'
mutant "commit mid-write" blkstore/disk.c \
	'\t\tif (data)\n\t\t\tdata += take;' \
	'\t\tif (!rc)\n\t\t\trc = bs_disk_bound_dirty(d);\n\t\tif (data)\n\t\t\tdata += take;' \
	'torn across commits' '256 257 258'

echo "mutants: $missed missed (scratch copy in $scratch)"
[ "$missed" -eq 0 ]
