#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/bench/bench_nbd.sh - blkstored's NBD export against qemu-nbd (raw
# and a qcow2 clone with a backing file) and nbdkit's file plugin, all
# driven by fio's nbd engine (libnbd, one connection per job) in one run,
# on the same data.
#
# Not a test: it prints a table, the goal ratios and one final JSON line,
# and never asserts a number (exit 77 if a tool is missing, 1 only if a
# command fails).
#
#   data:     DATA.img, ~1 GiB of real files of this machine (/usr/share/doc,
#             python, perl, /usr/bin, /usr/lib), each file starting on a
#             4 KiB boundary as in a file system's data area, with every
#             all-zero 4 KiB block left out: so every block of every
#             target holds data and no random read can land on a hole.
#   targets:  blkstored   blkctl import gold DATA.img; snapshot gold@base;
#                         clone gold@base vm; blkstored --nbd unix:...
#                         serving 'vm' (a deduped clone: it shares every
#                         chunk with gold)
#             qemu-raw    qemu-nbd -f raw -t -e 8 --cache=writeback
#                         --aio=threads on a copy of DATA.img
#             qemu-qcow2  qemu-img convert -O qcow2 DATA.img base.qcow2;
#                         qemu-img create -f qcow2 -b base.qcow2 -F qcow2
#                         clone.qcow2; qemu-nbd (same options) on the clone
#             nbdkit      nbdkit -U SOCK file COPY (default threads, 16)
#   jobs:     randread 4k iodepth 32, randwrite 4k iodepth 32,
#             read 1M iodepth 8, write 1M iodepth 8; time_based, ramp,
#             --size = the data's size.  Repeated REPS times (the target
#             order rotates each repetition); medians are reported.
#   writes:   fio sends no FLUSH (no fsync/fdatasync options), so every
#             peer acknowledges writes from memory: qemu-nbd with
#             cache=writeback and nbdkit file write into the page cache and
#             never sync; blkstored holds them in its chunk store's memory
#             and, past its dirty limit (64 MiB of unflushed blocks per
#             disk), commits and fdatasyncs on its own, which the peers
#             never do.  fio's write buffers are scrambled random bytes:
#             blkstored hashes and tries to compress each block.
#   cache:    every image and the store are freshly written, so all of them
#             are in the page cache: this compares the servers' CPU paths.
#             blkstored also keeps a cache of chunk contents by name (1/16
#             of RAM by default; its size and hit counts are printed): a
#             chunk read or written once is not read, checked and
#             decompressed again.
#
#   bench_nbd.sh [-r REPS] [-t SECONDS] [-q] [-T target,...]
#     -r REPS     repetitions (default 3)
#     -t SECONDS  runtime per job (default 8, plus 2 s ramp)
#     -q          quick: 256 MiB of data, 3 s jobs, 1 rep (development)
#     -T LIST     only these targets (blkstored,qemu-raw,qemu-qcow2,nbdkit)
# Environment: BLKCTL, BLKSTORED (else $abs_top_builddir/tools/..., else
# ./tools/...), TMPDIR (work directory parent), BLKSTORED_OPTS (extra
# options for blkstored, e.g. "--io-engine sync").
set -u

REPS=3
RUNTIME=8
RAMP=2
QUICK=0
TARGETS="blkstored qemu-raw qemu-qcow2 nbdkit"
while getopts "r:t:qT:h" o; do
	case $o in
	r) REPS=$OPTARG ;;
	t) RUNTIME=$OPTARG ;;
	q) QUICK=1 ;;
	T) TARGETS=${OPTARG//,/ } ;;
	*) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
if [ "$QUICK" = 1 ]; then
	DATA_MIB=256
	RUNTIME=3
	RAMP=1
	REPS=1
else
	DATA_MIB=1024
fi
DATA_BYTES=$((DATA_MIB << 20))

# ---- tools ----
tool() { # NAME ENVVAR: the build's program
	local v=${!2:-}
	if [ -n "$v" ]; then
		echo "$v"
	elif [ -n "${abs_top_builddir:-}" ] && [ -x "$abs_top_builddir/tools/$1" ]; then
		echo "$abs_top_builddir/tools/$1"
	else
		echo "./tools/$1"
	fi
}
B=$(tool blkctl BLKCTL)
BD=$(tool blkstored BLKSTORED)
for p in "$B" "$BD"; do
	if [ ! -x "$p" ]; then
		echo "SKIP: $p not found (set BLKCTL/BLKSTORED or abs_top_builddir)"
		exit 77
	fi
done
B=$(cd "$(dirname "$B")" && pwd)/$(basename "$B")
BD=$(cd "$(dirname "$BD")" && pwd)/$(basename "$BD")
for t in fio qemu-nbd qemu-img nbdkit nbdinfo python3 awk; do
	if ! command -v "$t" >/dev/null; then
		echo "SKIP: $t is missing (apt-get install fio qemu-utils nbdkit libnbd-bin)"
		exit 77
	fi
done
if ! fio --enghelp 2>/dev/null | grep -qw nbd; then
	echo "SKIP: this fio has no nbd engine"
	exit 77
fi
if ! nbdkit file --version >/dev/null 2>&1; then
	echo "SKIP: nbdkit's file plugin is missing"
	exit 77
fi

W=$(mktemp -d "${TMPDIR:-/tmp}/bench_nbd_sh.XXXXXX") || exit 1
cd "$W" || exit 1
LOG=$W/cmd.log
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null
	done
	cd / && rm -rf "$W"
}
trap cleanup EXIT

die() {
	echo "bench_nbd.sh: $*" >&2
	[ -s "$LOG" ] && tail -5 "$LOG" >&2
	exit 1
}
run() { "$@" >"$LOG" 2>&1 || die "failed: $*"; }
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END { if (NR % 2) print v[(NR + 1) / 2];
		      else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
secs() { awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }

T_START=$(date +%s%N)
cat <<EOF
bench_nbd.sh: $(date -u '+%Y-%m-%d %H:%M:%S UTC'), reps $REPS, ${RUNTIME}s jobs (+${RAMP}s ramp), data ${DATA_MIB} MiB$([ "$QUICK" = 1 ] && echo ' (quick)')
machine: $(nproc) cores; uptime at start: $(uptime)
blkstored: $BD ${BLKSTORED_OPTS:-}
peers: $(qemu-nbd --version | head -1); $(nbdkit --version); $(fio --version)
work dir: $W (removed at exit)
EOF

# ---- the data: real files, 4K-aligned, no all-zero block ----
python3 - "$DATA_BYTES" >DATA.img <<'PY' || die "building the data failed"
import os, sys
want = int(sys.argv[1])
roots = ["/usr/share/doc", "/usr/lib/python3", "/usr/share/perl", "/usr/bin",
         "/usr/lib/x86_64-linux-gnu", "/usr/share", "/usr/lib"]
out = sys.stdout.buffer
zero = bytes(4096)
done = 0
seen = set()
for root in roots:
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            try:
                if os.path.islink(p) or not os.path.isfile(p):
                    continue
                st = os.stat(p)
                if st.st_ino in seen:
                    continue
                seen.add(st.st_ino)
                with open(p, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            if len(data) % 4096:
                data += bytes(4096 - len(data) % 4096)
            for i in range(0, len(data), 4096):
                b = data[i:i + 4096]
                if b == zero:
                    continue
                out.write(b)
                done += 4096
                if done >= want:
                    sys.exit(0)
sys.exit("not enough file data under " + " ".join(roots))
PY
[ "$(stat -c %s DATA.img)" -eq "$DATA_BYTES" ] || die "DATA.img has the wrong size"

# ---- the targets ----
wait_nbd() { # URI: until it answers
	for _ in $(seq 200); do
		nbdinfo --size "$1" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	die "no NBD server at $1"
}
declare -A URI SPID
t0=$(date +%s%N)
for t in $TARGETS; do
	case $t in
	blkstored)
		run "$B" init S
		run "$B" -S S import gold DATA.img
		run "$B" -S S snapshot gold@base
		run "$B" -S S clone gold@base vm
		# shellcheck disable=SC2086
		"$BD" -S S --nbd "unix:$W/bs.sock" -f ${BLKSTORED_OPTS:-} 2>"$W/blkstored.log" &
		BS_PID=$!
		PIDS+=($!)
		SPID[$t]=$!
		URI[$t]="nbd+unix:///vm?socket=$W/bs.sock"
		;;
	qemu-raw)
		run cp DATA.img raw.img
		qemu-nbd -f raw -t -e 8 --cache=writeback --aio=threads -x raw \
			-k "$W/qr.sock" raw.img 2>"$W/qemu-raw.log" &
		PIDS+=($!)
		SPID[$t]=$!
		URI[$t]="nbd+unix:///raw?socket=$W/qr.sock"
		;;
	qemu-qcow2)
		run qemu-img convert -O qcow2 DATA.img base.qcow2
		run qemu-img create -f qcow2 -b base.qcow2 -F qcow2 clone.qcow2
		qemu-nbd -f qcow2 -t -e 8 --cache=writeback --aio=threads -x clone \
			-k "$W/qq.sock" clone.qcow2 2>"$W/qemu-qcow2.log" &
		PIDS+=($!)
		SPID[$t]=$!
		URI[$t]="nbd+unix:///clone?socket=$W/qq.sock"
		;;
	nbdkit)
		run cp DATA.img nbdkit.img
		nbdkit -f -U "$W/nk.sock" file nbdkit.img 2>"$W/nbdkit.log" &
		PIDS+=($!)
		SPID[$t]=$!
		URI[$t]="nbd+unix:///?socket=$W/nk.sock"
		;;
	*) die "unknown target $t" ;;
	esac
done
for t in $TARGETS; do
	wait_nbd "${URI[$t]}"
done
rm -f DATA.img
sync -f "$W"
echo "setup (data, import/convert/copy, servers up): $(secs "$t0") s"
if [[ " $TARGETS " == *" blkstored "* ]]; then
	echo "store: $("$B" -S S df 2>/dev/null | tr '\n' ' ' | sed 's/  */ /g')"
fi
echo

# ---- the jobs ----
JOBS="randread randwrite read write"
declare -A BS DEPTH
BS=([randread]=4k [randwrite]=4k [read]=1M [write]=1M)
DEPTH=([randread]=32 [randwrite]=32 [read]=8 [write]=8)
declare -A RES # "target job" -> space-separated values (IOPS or MiB/s)
declare -A CPU # "target job" -> the server's CPU us per request / per MiB

cpu_ticks() { # PID: its user + system CPU so far, in clock ticks
	awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
HZ=$(getconf CLK_TCK)

fio_one() { # target job: prints IOPS (4k) or MiB/s (1M), then the
	# server's CPU time per request (4k) or per MiB (1M), in us
	local t=$1 j=$2 dir=read c0 c1
	case $j in *write) dir=write ;; esac
	fio --name="$j" --ioengine=nbd --uri="${URI[$t]}" --rw="$j" \
		--bs="${BS[$j]}" --iodepth="${DEPTH[$j]}" --size="$DATA_BYTES" \
		--time_based --runtime="$RUNTIME" --ramp_time="$RAMP" \
		--norandommap --randrepeat=0 --output-format=json \
		--output="$W/fio.json" >"$LOG" 2>&1 &
	local fpid=$!
	# The server's CPU over the measured part only (after the ramp).
	sleep "$RAMP"
	c0=$(cpu_ticks "${SPID[$t]}")
	wait "$fpid" || die "fio $j on $t failed"
	c1=$(cpu_ticks "${SPID[$t]}")
	python3 - "$W/fio.json" "$dir" "${BS[$j]}" "$((c1 - c0))" "$HZ" "$RUNTIME" <<'PY' || die "fio output of $j on $t"
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0][sys.argv[2]]
if j.get("io_bytes", 0) == 0 or j.get("runtime", 0) == 0:
    sys.exit("no I/O done")
cpu_us = int(sys.argv[4]) / int(sys.argv[5]) * 1e6
secs = float(sys.argv[6])
if sys.argv[3] == "4k":
    print("%.0f %.2f" % (j["iops"], cpu_us / (j["iops"] * secs)))
else:
    mib = j["bw_bytes"] / 1048576
    print("%.1f %.1f" % (mib, cpu_us / (mib * secs)))
PY
}

read -r -a TL <<<"$TARGETS"
for ((r = 0; r < REPS; r++)); do
	order=("${TL[@]:r%${#TL[@]}}" "${TL[@]:0:r%${#TL[@]}}")
	line="rep $((r + 1)):"
	for t in "${order[@]}"; do
		for j in $JOBS; do
			out=$(fio_one "$t" "$j") || exit 1
			read -r v cpu <<<"$out"
			RES["$t $j"]="${RES["$t $j"]:-} $v"
			CPU["$t $j"]="${CPU["$t $j"]:-} $cpu"
			line="$line $t/$j=$v(cpu $cpu)"
		done
	done
	echo "$line"
	echo "  load: $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo

# ---- results ----
CACHE_LINE=
if [[ " $TARGETS " == *" blkstored "* ]]; then
	kill -TERM "$BS_PID" 2>/dev/null
	wait "$BS_PID" 2>/dev/null
	CACHE_LINE=$(grep 'chunk cache' "$W/blkstored.log" | sed 's/^blkstored: info: //' | paste -sd ';' - | sed 's/;/; /g')
fi
declare -A MED
printf '%-12s %14s %14s %14s %14s\n' "target" "randread IOPS" "randwrite IOPS" "read MiB/s" "write MiB/s"
for t in $TARGETS; do
	row=$(printf '%-12s' "$t")
	for j in $JOBS; do
		# shellcheck disable=SC2086
		MED["$t $j"]=$(median ${RES["$t $j"]})
		row="$row $(printf '%14s' "${MED["$t $j"]}")"
	done
	echo "$row"
done
echo "(4k: IOPS, iodepth 32; 1M: MiB/s, iodepth 8; medians of $REPS; one fio connection per job)"
[ -n "$CACHE_LINE" ] && echo "blkstored $CACHE_LINE"
echo
echo "the server's own CPU time (user + system, after the ramp), medians:"
printf '%-12s %14s %14s %14s %14s\n' "target" "us/randread" "us/randwrite" "us/MiB read" "us/MiB write"
declare -A CMED
for t in $TARGETS; do
	row=$(printf '%-12s' "$t")
	for j in $JOBS; do
		# shellcheck disable=SC2086
		CMED["$t $j"]=$(median ${CPU["$t $j"]})
		row="$row $(printf '%14s' "${CMED["$t $j"]}")"
	done
	echo "$row"
done
echo "(on a shared machine the client, fio, competes for the same cores: CPU per"
echo " request is the figure load disturbs least)"
echo "all reps:"
for t in $TARGETS; do
	for j in $JOBS; do
		echo "  $t $j:${RES["$t $j"]}"
	done
done
echo

ratio_in() { # ARRAY job A B: ARRAY["A job"] / ARRAY["B job"], or "-"
	local -n arr=$1
	local a=${arr["$3 $2"]:-} b=${arr["$4 $2"]:-}
	if [ -z "$a" ] || [ -z "$b" ] || [ "$b" = 0 ]; then
		echo "-"
	else
		calc "$a / $b"
	fi
}
ratio() { ratio_in MED "$1" blkstored "$2"; }  # speed: blkstored / peer
cratio() { ratio_in CMED "$1" "$2" blkstored; } # CPU: peer / blkstored
peer_table() { # FN title: one row per peer, FN job peer in each cell
	echo "$2"
	printf '  %-12s %10s %10s %10s %10s\n' "peer" randread randwrite read write
	for t in $TARGETS; do
		[ "$t" = blkstored ] && continue
		printf '  %-12s %10s %10s %10s %10s\n' "$t" "$($1 randread "$t")" \
			"$($1 randwrite "$t")" "$($1 read "$t")" "$($1 write "$t")"
	done
	echo
}
JSON="{\"bench\":\"bench_nbd\",\"reps\":$REPS,\"runtime_s\":$RUNTIME,\"data_mib\":$DATA_MIB"
if [[ " $TARGETS " == *" blkstored "* ]]; then
	peer_table ratio "blkstored / peer (> 1: blkstored is faster):"
	peer_table cratio "peer's CPU per request / blkstored's (> 1: blkstored spends less):"
	goal() { # label value min
		local v=$2
		if [ "$v" = "-" ]; then
			printf '  %-44s %6s  (goal >= %s)  n/a\n' "$1" "$v" "$3"
		else
			printf '  %-44s %6s  (goal >= %s)  %s\n' "$1" "$v" "$3" \
				"$(awk -v v="$v" -v g="$3" 'BEGIN { print (v >= g ? "met" : "NOT met") }')"
		fi
	}
	echo "goals:"
	goal "4k randread  blkstored / nbdkit" "$(ratio randread nbdkit)" 1.2
	goal "4k randwrite blkstored / nbdkit" "$(ratio randwrite nbdkit)" 1.0
	goal "4k randwrite blkstored / qemu-qcow2" "$(ratio randwrite qemu-qcow2)" 1.5
	goal "1M read      blkstored / nbdkit" "$(ratio read nbdkit)" 1.2
	goal "1M write     blkstored / nbdkit" "$(ratio write nbdkit)" 1.0
	goal "1M write     blkstored / qemu-qcow2" "$(ratio write qemu-qcow2)" 1.5
	echo "  (writes: no peer flushes, fio sends no FLUSH; blkstored acknowledges"
	echo "   from memory like a page cache, and commits + fdatasyncs on its own"
	echo "   every 64 MiB of unflushed blocks, which the peers never do)"
	if grep -q 'error' "$W/blkstored.log"; then
		echo "blkstored logged errors:"
		grep 'error' "$W/blkstored.log" | head -5
	fi
	for j in $JOBS; do
		for t in $TARGETS; do
			[ "$t" = blkstored ] && continue
			JSON="$JSON,\"ratio_${j}_${t//-/_}\":$(ratio "$j" "$t" | sed 's/^-$/null/')"
		done
	done
fi
for t in $TARGETS; do
	for j in $JOBS; do
		JSON="$JSON,\"${t//-/_}_${j}\":${MED["$t $j"]}"
	done
done
echo
echo "uptime at end: $(uptime); total $(secs "$T_START") s"
echo "$JSON}"
