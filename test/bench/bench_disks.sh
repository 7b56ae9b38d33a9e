#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/bench/bench_disks.sh - blkctl against qemu-img, qcow2 chains and
# cp on a real ext4 image, each peer measured in the same run.
#
# Not a test: it prints tables and one final JSON line, never asserts a
# time or a size (exit 77 if a tool is missing, 1 only if a command
# fails or a verification shows the two sides hold different bytes).
#
#   1. import: a ~1 GiB ext4 image built with mke2fs -d from real files of
#      this machine; blkctl import (durable when it returns) vs qemu-img
#      convert -O qcow2 (default destination cache 'unsafe': no flush),
#      vs qemu-img convert -t writeback (flushes), vs cp --sparse=always
#      (no flush) and cp + sync FILE (flushed).  Median of REPS.
#   2. ten clones each changed by ~3% of the image's allocated size (real
#      /usr/bin bytes, 4K-aligned and unaligned writes): store's stored
#      bytes vs a qcow2 backing chain holding the same 11 images (same
#      writes through qemu-io; one clone verified with qemu-img compare).
#   3. two images built independently (mke2fs -d) from trees A and B =
#      A with ~5% of its files changed or added: store vs a qcow2 chain
#      (b.qcow2 = convert -B a.qcow2) vs the exact-dedup bound
#      (dedup_bound.py).
#
#   bench_disks.sh [-r REPS] [-q]
#     -r REPS  import repetitions (default 3)
#     -q       quick: a small tree and a 256 MiB image, for development
# Environment: BLKCTL (else $abs_top_builddir/tools/blkctl, else
# ./tools/blkctl), TMPDIR (work directory parent).
set -u

REPS=3
QUICK=0
while getopts "r:qh" o; do
	case $o in
	r) REPS=$OPTARG ;;
	q) QUICK=1 ;;
	*) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done

here=$(cd "$(dirname "$0")" && pwd)
DEDUP_BOUND=$here/dedup_bound.py

# ---- tools ----
if [ -n "${BLKCTL:-}" ]; then
	B=$BLKCTL
elif [ -n "${abs_top_builddir:-}" ] && [ -x "$abs_top_builddir/tools/blkctl" ]; then
	B=$abs_top_builddir/tools/blkctl
else
	B=./tools/blkctl
fi
if [ ! -x "$B" ]; then
	echo "SKIP: blkctl not found ($B; set BLKCTL or abs_top_builddir)"
	exit 77
fi
B=$(cd "$(dirname "$B")" && pwd)/$(basename "$B")
MKE2FS=$(command -v mke2fs || command -v /sbin/mke2fs || true)
for t in qemu-img qemu-io python3 cp du stat sync awk; do
	if ! command -v "$t" >/dev/null; then
		echo "SKIP: $t is missing"
		exit 77
	fi
done
if [ -z "$MKE2FS" ]; then
	echo "SKIP: mke2fs is missing"
	exit 77
fi
if [ ! -r "$DEDUP_BOUND" ]; then
	echo "SKIP: $DEDUP_BOUND is missing"
	exit 77
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/bench_disks_sh.XXXXXX") || exit 1
trap 'rm -rf "$W"' EXIT
cd "$W" || exit 1
LOG=$W/cmd.log

# ---- helpers ----
die() {
	echo "bench_disks.sh: $*" >&2
	[ -s "$LOG" ] && tail -5 "$LOG" >&2
	exit 1
}
# Run a command quietly; its output goes to $LOG; die if it fails.
run() {
	"$@" >"$LOG" 2>&1 || die "failed: $*"
}
# Seconds (3 decimals) a command takes; the file system is synced first
# (not timed) so no earlier write-back lands in the measurement.
timed() {
	sync -f "$W"
	local t0 t1
	t0=$(date +%s%N)
	"$@" >"$LOG" 2>&1 || die "failed: $*"
	t1=$(date +%s%N)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'
}
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2];
		      else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# Arithmetic on decimals: calc 'EXPR' (awk syntax).
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
alloc() { du -B1 "$@" | awk '{ s += $1 } END { print s + 0 }'; }
apparent() { stat -c %s "$@" | awk '{ s += $1 } END { print s + 0 }'; }
# A field of blkctl df --json.
df_field() {
	"$B" -S "$1" df --json >"$W/df.json" 2>"$LOG" || die "blkctl df failed"
	python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' \
		"$W/df.json" "$2"
}
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

if [ "$QUICK" = 1 ]; then
	IMG_SIZE=256M
	# mke2fs would pick 1 KiB blocks for a "small" file system this size:
	# file data would then not be 4K-aligned, unlike in the full run.
	MKFS_OPTS="-b 4096"
	SOURCES="/usr/share/perl /usr/share/perl5 /usr/lib/python3.11/email /usr/lib/python3.11/json /usr/share/doc/python3*"
else
	IMG_SIZE=1G
	MKFS_OPTS=""
	SOURCES="/usr/share/doc /usr/lib/python3* /usr/share/perl*"
fi
FRACTION=0.03 # of the image's allocated size, written to each clone
NCLONES=10
TREE_CHANGE=0.05 # of tree B's files, changed or added

cat <<EOF
bench_disks.sh: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), reps $REPS, image $IMG_SIZE$([ "$QUICK" = 1 ] && echo ' (quick)')
machine: $(nproc) cores; uptime: $(uptime)
blkctl: $B
qemu: $(qemu-img --version | head -1); $("$MKE2FS" -V 2>&1 | head -1)
work dir: $W (removed at exit)

commands (S = a store directory; every timed command is preceded by an
untimed 'sync -f WORKDIR'):
  tree:     cp -a $SOURCES TREE/
  golden:   mke2fs -q -t ext4 ${MKFS_OPTS:+$MKFS_OPTS }-d TREE golden.img $IMG_SIZE
  import:   blkctl init S; blkctl -S S import gold golden.img     (fresh S each rep)
  peers:    qemu-img convert -O qcow2 golden.img g.qcow2            (cache 'unsafe': no flush)
            qemu-img convert -t writeback -O qcow2 golden.img g.qcow2  (flushes)
            cp --sparse=always golden.img copy.img                    (no flush)
            cp --sparse=always golden.img copy.img && sync copy.img   (flushed)
  clones:   blkctl -S S import gold golden.img; blkctl -S S snapshot gold@base;
            blkctl -S S clone gold@base cN; per write: blkctl -S S write cN OFF < DATA
            qemu-img convert -O qcow2 golden.img base.qcow2;
            qemu-img create -f qcow2 -b base.qcow2 -F qcow2 cN.qcow2;
            qemu-io -f qcow2 -c "write -q -s DATA OFF LEN" ... cN.qcow2   (one run per clone)
            (info: the same with -o cluster_size=4096 for base and overlays)
  verify:   blkctl -S S export c1 c1.raw; qemu-img compare -f raw -F qcow2 c1.raw c1.qcow2
            (and c$NCLONES; and golden.img vs c1.raw must differ)
  sizes:    blkctl -S S df --json (stored_bytes, segment_bytes, index_bytes);
            du -B1 (allocated) and stat -c %s (apparent) of the qcow2 files
  trees:    cp -al TREE TREE_B; change/add ~5% of TREE_B's files;
            mke2fs -q -t ext4 ${MKFS_OPTS:+$MKFS_OPTS }-d TREE_B b.img $IMG_SIZE   (a.img = golden.img)
            blkctl init S3; blkctl -S S3 import a a.img; blkctl -S S3 import b b.img
            qemu-img convert -O qcow2 a.img a.qcow2;
            qemu-img convert -O qcow2 -B a.qcow2 -F qcow2 b.img b.qcow2
            python3 dedup_bound.py --json a.img b.img
EOF
echo

# =====================================================================
# 1. golden image and import
# =====================================================================
mkdir -p TREE
t0=$(date +%s%N)
# shellcheck disable=SC2086
cp -a $SOURCES TREE/ 2>"$LOG" || die "copying the tree failed"
TREE_BYTES=$(du -sb TREE | cut -f1)
TREE_FILES=$(find TREE -type f | wc -l)
run "$MKE2FS" -q -t ext4 $MKFS_OPTS -d TREE golden.img "$IMG_SIZE"
GOLD_SIZE=$(apparent golden.img)
GOLD_ALLOC=$(alloc golden.img)
t1=$(date +%s%N)
echo "1. import of a real ext4 image"
echo "   tree: $TREE_FILES files, $(mib "$TREE_BYTES"); golden.img: $(mib "$GOLD_SIZE") apparent, $(mib "$GOLD_ALLOC") allocated (built in $(calc "($t1 - $t0) / 1e9") s)"

declare -a T_BC T_QU T_QW T_CP T_CS
for ((r = 0; r < REPS; r++)); do
	rm -rf S g.qcow2 copy.img
	run "$B" init S
	T_BC[r]=$(timed "$B" -S S import gold golden.img)
	T_QU[r]=$(timed qemu-img convert -O qcow2 golden.img g.qcow2)
	rm -f g.qcow2
	T_QW[r]=$(timed qemu-img convert -t writeback -O qcow2 golden.img g.qcow2)
	T_CP[r]=$(timed cp --sparse=always golden.img copy.img)
	rm -f copy.img
	T_CS[r]=$(timed sh -c 'cp --sparse=always golden.img copy.img && sync copy.img')
done
LEVEL=$(sed -n 's/^compression_level = //p' S/store.conf)
COMPRESSION=$(sed -n 's/^compression = //p' S/store.conf)
IMP_STORED=$(df_field S stored_bytes)
IMP_SEG=$(df_field S segment_bytes)
G_QCOW=$(alloc g.qcow2)
M_BC=$(median "${T_BC[@]}")
M_QU=$(median "${T_QU[@]}")
M_QW=$(median "${T_QW[@]}")
M_CP=$(median "${T_CP[@]}")
M_CS=$(median "${T_CS[@]}")
echo "   store compression: $COMPRESSION, level $LEVEL (store.conf)"
printf '   %-44s %8s %9s %-22s %s\n' "command" "median s" "MiB/s" "all reps, s" "blkctl speed / peer speed"
row() { # label median reps...
	local label=$1 m=$2
	shift 2
	printf '   %-44s %8.3f %9.1f %-22s %s\n' "$label" "$m" \
		"$(calc "$GOLD_ALLOC / 1048576 / $m")" "$*" "$(calc "$m / $M_BC")"
}
row "blkctl import (durable)" "$M_BC" "${T_BC[@]}"
row "qemu-img convert -O qcow2 (unsafe)" "$M_QU" "${T_QU[@]}"
row "qemu-img convert -t writeback -O qcow2" "$M_QW" "${T_QW[@]}"
row "cp --sparse=always (no flush)" "$M_CP" "${T_CP[@]}"
row "cp --sparse=always + sync FILE" "$M_CS" "${T_CS[@]}"
echo "   (MiB/s over the image's allocated $(mib "$GOLD_ALLOC"); ratio > 1: blkctl is faster)"
echo "   result sizes: store stored $(mib "$IMP_STORED") (segments $(mib "$IMP_SEG")), g.qcow2 $(mib "$G_QCOW") allocated"
echo "   load: $(loadavg)"
echo
rm -rf S g.qcow2 copy.img

# =====================================================================
# 2. ten clones, each changed by ~3%
# =====================================================================
echo "2. $NCLONES clones of golden, each changed by ~$(awk -v f="$FRACTION" 'BEGIN { printf "%g", f * 100 }')% of its allocated size"
mkdir -p wd
# The write plan: per clone, lines "OFF LEN DATAFILE"; data are pieces of
# /usr/bin files at random (unaligned) source offsets.
python3 - "$GOLD_SIZE" "$GOLD_ALLOC" "$FRACTION" "$NCLONES" <<'PY' >plan.txt || die "write plan failed"
import os, random, sys
size, alloc, frac, n = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(1234)
src = []
for e in os.scandir("/usr/bin"):
    try:
        if e.is_file(follow_symlinks=False) and e.stat().st_size >= 300 << 10:
            src.append(e.path)
    except OSError:
        pass
src.sort()
target = int(alloc * frac)
for c in range(1, n + 1):
    done = k = 0
    while done < target:
        if rnd.random() < 0.8:  # 4K-aligned offset and length
            ln = 4096 * rnd.choice([1, 1, 2, 4, 8, 16, 32, 64])
            off = rnd.randrange(0, (size - ln) // 4096) * 4096
        else:                   # any byte offset and length
            ln = rnd.randrange(1, 96 << 10)
            off = rnd.randrange(0, size - ln)
        f = rnd.choice(src)
        fsz = os.path.getsize(f)
        if fsz < ln:
            continue
        so = rnd.randrange(0, fsz - ln + 1)
        with open(f, "rb") as fh:
            fh.seek(so)
            data = fh.read(ln)
        name = "wd/c%d_%d.bin" % (c, k)
        with open(name, "wb") as out:
            out.write(data)
        print(c, off, ln, name)
        done += ln
        k += 1
PY
NWRITES=$(wc -l <plan.txt)
WBYTES=$(awk '{ s += $3 } END { print s }' plan.txt)
ALIGNED=$(awk '$2 % 4096 == 0 && $3 % 4096 == 0' plan.txt | wc -l)
echo "   plan: $NWRITES writes ($ALIGNED 4K-aligned), $(mib "$WBYTES") in all, ~$(mib $((WBYTES / NCLONES))) per clone"

# Store side.
run "$B" init S
run "$B" -S S import gold golden.img
BASE_STORED=$(df_field S stored_bytes)
run "$B" -S S snapshot gold@base
t0=$(date +%s%N)
for ((c = 1; c <= NCLONES; c++)); do
	run "$B" -S S clone gold@base "c$c"
done
t1=$(date +%s%N)
while read -r c off len file; do
	"$B" -S S write "c$c" "$off" <"$file" >"$LOG" 2>&1 || die "blkctl write c$c $off failed"
done <plan.txt
t2=$(date +%s%N)
ST_STORED=$(df_field S stored_bytes)
ST_DATA=$(df_field S data_stored_bytes)
ST_SEG=$(df_field S segment_bytes)
ST_INDEX=$(df_field S index_bytes)
ST_DU=$(du -sB1 S | cut -f1)

# qcow2 side: the default 64K clusters, and 4K clusters (info).
qcow_chain() { # prefix [create options]
	local p=$1 o=${2:-}
	run qemu-img convert -O qcow2 ${o:+-o "$o"} golden.img "${p}base.qcow2"
	for ((c = 1; c <= NCLONES; c++)); do
		run qemu-img create -f qcow2 ${o:+-o "$o"} -b "${p}base.qcow2" -F qcow2 "${p}c$c.qcow2"
		local args=()
		while read -r cc off len file; do
			[ "$cc" = "$c" ] && args+=(-c "write -q -s $file $off $len")
		done <plan.txt
		run qemu-io -f qcow2 "${args[@]}" "${p}c$c.qcow2"
	done
}
t3=$(date +%s%N)
qcow_chain ""
t4=$(date +%s%N)
qcow_chain "k4" "cluster_size=4096"
CH_FILES=(base.qcow2); for ((c = 1; c <= NCLONES; c++)); do CH_FILES+=("c$c.qcow2"); done
K4_FILES=(k4base.qcow2); for ((c = 1; c <= NCLONES; c++)); do K4_FILES+=("k4c$c.qcow2"); done
CH_ALLOC=$(alloc "${CH_FILES[@]}")
CH_APP=$(apparent "${CH_FILES[@]}")
CH_OVL=$(alloc "${CH_FILES[@]:1}")
K4_ALLOC=$(alloc "${K4_FILES[@]}")
K4_APP=$(apparent "${K4_FILES[@]}")

# Verify: the store's clones hold what the qcow2 clones hold.
VERIFY=ok
for c in 1 "$NCLONES"; do
	run "$B" -S S export "c$c" "c$c.raw"
	qemu-img compare -q -f raw -F qcow2 "c$c.raw" "c$c.qcow2" >"$LOG" 2>&1 || { VERIFY="c$c differs"; }
	qemu-img compare -q -f raw -F qcow2 "c$c.raw" "k4c$c.qcow2" >"$LOG" 2>&1 || { VERIFY="c$c differs (4K chain)"; }
	rm -f "c$c.raw"
done
run "$B" -S S export c1 c1.raw
if qemu-img compare -q -f raw -F raw golden.img c1.raw >/dev/null 2>&1; then
	VERIFY="c1 equals golden: the writes did not land"
fi
rm -f c1.raw
[ "$VERIFY" = ok ] || die "verification: $VERIFY"

printf '   %-46s %12s %12s\n' "" "bytes" "MiB"
srow() { printf '   %-46s %12s %12s\n' "$1" "$2" "$(awk -v b="$2" 'BEGIN { printf "%.1f", b / 1048576 }')"; }
srow "store: stored_bytes (live records)" "$ST_STORED"
srow "store: data_stored_bytes" "$ST_DATA"
srow "store: segment_bytes (files)" "$ST_SEG"
srow "store: index_bytes" "$ST_INDEX"
srow "store: du -B1 of the store directory" "$ST_DU"
srow "store: stored growth from the clones" "$((ST_STORED - BASE_STORED))"
srow "qcow2 chain (64K clusters): allocated" "$CH_ALLOC"
srow "qcow2 chain (64K clusters): apparent" "$CH_APP"
srow "qcow2 chain: the $NCLONES overlays, allocated" "$CH_OVL"
srow "qcow2 chain (4K clusters, info): allocated" "$K4_ALLOC"
srow "qcow2 chain (4K clusters, info): apparent" "$K4_APP"
echo "   stored / chain allocated: $(calc "$ST_STORED / $CH_ALLOC"); segment files / chain: $(calc "$ST_SEG / $CH_ALLOC"); clone growth / overlays: $(calc "($ST_STORED - $BASE_STORED) / $CH_OVL")"
G2=$(awk -v s="$ST_STORED" -v c="$CH_ALLOC" 'BEGIN { print (s <= c / 2) ? "MET" : "NOT MET" }')
echo "   goal stored <= half the chain: $G2 (stored $(mib "$ST_STORED") vs half chain $(mib $((CH_ALLOC / 2))))"
echo "   verified: c1 and c$NCLONES exported by blkctl = qemu-img compare identical to both qcow2 chains; c1 != golden"
echo "   info: $NCLONES blkctl clone runs $(calc "($t1 - $t0) / 1e9") s; $NWRITES blkctl write runs (one process + durable flush each) $(calc "($t2 - $t1) / 1e9") s;"
echo "         qcow2 chain build (convert + $NCLONES x create + qemu-io) $(calc "($t4 - $t3) / 1e9") s"
echo "   load: $(loadavg)"
echo
rm -rf S ./*.qcow2 wd plan.txt

# =====================================================================
# 3. two images built independently from similar trees
# =====================================================================
echo "3. images built independently from similar trees (B = A with ~$(awk -v f="$TREE_CHANGE" 'BEGIN { printf "%g", f * 100 }')% of files changed or added)"
run cp -al TREE TREE_B
python3 - TREE_B "$TREE_CHANGE" <<'PY' >tree_b.txt || die "tree B failed"
import os, random, sys
root, frac = sys.argv[1], float(sys.argv[2])
rnd = random.Random(99)
files, dirs = [], []
for d, ds, fs in os.walk(root):
    dirs.append(d)
    for f in fs:
        p = os.path.join(d, f)
        if os.path.isfile(p) and not os.path.islink(p):
            files.append(p)
files.sort(); dirs.sort()
total = sum(os.path.getsize(p) for p in files)
nchange = int(len(files) * frac * 0.6)
nadd = int(len(files) * frac * 0.4)
changed_bytes = 0
for p in rnd.sample(files, nchange):
    # A new version: a few bytes inserted at a random point (what follows
    # shifts), and a small edit elsewhere.  The link to tree A is broken
    # first so A stays as it was.
    with open(p, "rb") as f:
        data = f.read()
    os.unlink(p)
    at = rnd.randrange(0, len(data) + 1)
    data = data[:at] + os.urandom(rnd.randrange(1, 64)) + data[at:]
    if len(data) > 100:
        e = rnd.randrange(0, len(data) - 16)
        data = data[:e] + os.urandom(16) + data[e + 16:]
    with open(p, "wb") as f:
        f.write(data)
    changed_bytes += len(data)
# Added files: real files from elsewhere on this machine, capped at ~3% of
# the tree's bytes.
pool = []
for top in ("/usr/include", "/usr/share/man", "/usr/bin", "/usr/lib/x86_64-linux-gnu"):
    for d, ds, fs in os.walk(top):
        for f in fs:
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p) and 0 < os.path.getsize(p) <= 4 << 20:
                pool.append(p)
pool.sort()
rnd.shuffle(pool)
added = added_bytes = 0
for src in pool:
    if added >= nadd:
        break
    sz = os.path.getsize(src)
    if added_bytes + sz > total * 0.03:
        continue
    dst = os.path.join(rnd.choice(dirs), "new_%d_%s" % (added, os.path.basename(src)))
    with open(src, "rb") as f, open(dst, "wb") as g:
        g.write(f.read())
    added += 1
    added_bytes += sz
print(len(files), total, nchange, changed_bytes, added, added_bytes)
PY
read -r NF TB NCH CHB NADD ADB <tree_b.txt
echo "   tree A: $NF files, $(mib "$TB"); B: $NCH files changed ($(mib "$CHB")), $NADD added ($(mib "$ADB"))"
ln golden.img a.img
run "$MKE2FS" -q -t ext4 $MKFS_OPTS -d TREE_B b.img "$IMG_SIZE"
echo "   a.img: $(mib "$(alloc a.img)") allocated; b.img: $(mib "$(alloc b.img)") allocated (both $IMG_SIZE)"
run "$B" init S3
run "$B" -S S3 import a a.img
A_STORED=$(df_field S3 stored_bytes)
run "$B" -S S3 import b b.img
T3_STORED=$(df_field S3 stored_bytes)
T3_DATA=$(df_field S3 data_stored_bytes)
T3_SEG=$(df_field S3 segment_bytes)
T3_UNIQUE=$(df_field S3 unique_data_chunks)
run qemu-img convert -O qcow2 a.img a.qcow2
run qemu-img convert -O qcow2 -B a.qcow2 -F qcow2 b.img b.qcow2
run qemu-img compare -q -f raw -F qcow2 b.img b.qcow2
Q3_ALLOC=$(alloc a.qcow2 b.qcow2)
Q3_APP=$(apparent a.qcow2 b.qcow2)
Q3_B=$(alloc b.qcow2)
python3 "$DEDUP_BOUND" --json a.img b.img >bound.json 2>"$LOG" || die "dedup_bound.py failed"
read -r BOUND DISTINCT NONZERO A_NEW B_NEW < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["bound_bytes"], d["distinct_blocks"], d["nonzero_blocks"],
      d["images"][0]["new_distinct_blocks"], d["images"][1]["new_distinct_blocks"])' bound.json)
srow "store: stored_bytes (a and b)" "$T3_STORED"
srow "store: data_stored_bytes" "$T3_DATA"
srow "store: segment_bytes" "$T3_SEG"
srow "store: stored growth from importing b" "$((T3_STORED - A_STORED))"
srow "qcow2 chain a.qcow2 + b.qcow2 (-B a): alloc." "$Q3_ALLOC"
srow "qcow2 chain: apparent" "$Q3_APP"
srow "qcow2: b.qcow2 alone, allocated" "$Q3_B"
srow "exact-dedup bound (distinct non-zero x 4K)" "$BOUND"
echo "   blocks: $NONZERO non-zero, $DISTINCT distinct ($A_NEW in a, $B_NEW new in b); store unique data chunks: $T3_UNIQUE"
echo "   stored / qcow2 chain: $(calc "$T3_STORED / $Q3_ALLOC"); stored / dedup bound: $(calc "$T3_STORED / $BOUND"); b's growth: store $(mib $((T3_STORED - A_STORED))) vs b.qcow2 $(mib "$Q3_B") vs bound $(mib $((B_NEW * 4096)))"
G3=$(awk -v s="$T3_STORED" -v b="$BOUND" 'BEGIN { print (s <= b) ? "MET" : "NOT MET" }')
echo "   goal stored <= exact-dedup bound: $G3"
echo "   load: $(loadavg)"
echo
echo "uptime at end: $(uptime)"
printf '{"bench":"disks_sh","quick":%s,"reps":%s,"image_size":"%s","golden_allocated":%s,"compression":"%s","compression_level":%s,' \
	"$([ "$QUICK" = 1 ] && echo true || echo false)" "$REPS" "$IMG_SIZE" "$GOLD_ALLOC" "$COMPRESSION" "${LEVEL:-null}"
printf '"import_s":{"blkctl":%s,"qemu_img_unsafe":%s,"qemu_img_writeback":%s,"cp":%s,"cp_sync":%s},' \
	"$M_BC" "$M_QU" "$M_QW" "$M_CP" "$M_CS"
printf '"import_speed_ratio":{"qemu_img_unsafe":%s,"qemu_img_writeback":%s,"cp":%s,"cp_sync":%s},' \
	"$(calc "$M_QU / $M_BC")" "$(calc "$M_QW / $M_BC")" "$(calc "$M_CP / $M_BC")" "$(calc "$M_CS / $M_BC")"
printf '"clones":{"n":%s,"writes":%s,"written_bytes":%s,"stored_bytes":%s,"segment_bytes":%s,"chain_allocated":%s,"chain_apparent":%s,"chain4k_allocated":%s,"ratio":%s,"goal_met":%s},' \
	"$NCLONES" "$NWRITES" "$WBYTES" "$ST_STORED" "$ST_SEG" "$CH_ALLOC" "$CH_APP" "$K4_ALLOC" "$(calc "$ST_STORED / $CH_ALLOC")" "$([ "$G2" = MET ] && echo true || echo false)"
printf '"trees":{"stored_bytes":%s,"segment_bytes":%s,"chain_allocated":%s,"dedup_bound":%s,"ratio_chain":%s,"ratio_bound":%s,"goal_met":%s},' \
	"$T3_STORED" "$T3_SEG" "$Q3_ALLOC" "$BOUND" "$(calc "$T3_STORED / $Q3_ALLOC")" "$(calc "$T3_STORED / $BOUND")" "$([ "$G3" = MET ] && echo true || echo false)"
printf '"loadavg_end":"%s"}\n' "$(loadavg)"
