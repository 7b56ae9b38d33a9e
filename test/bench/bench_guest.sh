#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/bench/bench_guest.sh - virtio-blk requests per second seen by the
# test guest at queue depth 16: 4 KiB reads of cached data (a 1 MiB range
# the guest has just written), polled from ring 3, through cavm's
# virtio-pci device, its ioeventfd kicks and the store thread.  The peer,
# in the same run: fio, 4 KiB reads at the same queue depth over the same
# 1 MiB of the same disk, exported by blkstored over NBD (unix socket).
#
#   test/bench/bench_guest.sh [-r ROUNDS] [-s SECS] [-q QD] [-b BLOCKS]
#
# Run from a build directory (or set BUILD=).  Two rates for the guest:
# "guest" counts by the guest's TSC (calibrated on the PIT, or tsc_khz=
# from the host's "tsc: Detected" boot line when dmesg shows it), "host"
# divides the same request count by the host's clock between the guest's
# "bench start" and result lines.  The median round of each is printed.
set -u

rounds=3 secs=5 qd=16 blocks=256
while getopts r:s:q:b: o; do
	case $o in
	r) rounds=$OPTARG ;;
	s) secs=$OPTARG ;;
	q) qd=$OPTARG ;;
	b) blocks=$OPTARG ;;
	*) echo "usage: $0 [-r ROUNDS] [-s SECS] [-q QD] [-b BLOCKS]" >&2; exit 2 ;;
	esac
done
build=${BUILD:-$(pwd)}
cavm=$build/hypervisor/cavm blkctl=$build/tools/blkctl
blkstored=$build/tools/blkstored guest=$build/test/guest/guest.elf
for f in "$cavm" "$blkctl" "$guest"; do
	[ -e "$f" ] || { echo "bench_guest: $f is not built (run from the build directory)" >&2; exit 1; }
done
[ -r /dev/kvm ] && [ -w /dev/kvm ] || { echo "bench_guest: /dev/kvm is not usable" >&2; exit 1; }

tmp=$(mktemp -d /tmp/bench-guest.XXXXXX)
trap 'kill "${nbd_pid:-}" 2>/dev/null; rm -rf "$tmp"' EXIT
store=$tmp/store
"$blkctl" init "$store" >/dev/null || exit 1
BLKCTL_STORE=$store "$blkctl" create d 64M || exit 1

tsc=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Detected \([0-9]*\)\.\([0-9]*\) MHz.*/\1\2/p' | head -n 1)
extra=
[ -n "$tsc" ] && extra="tsc_khz=$tsc"
cmdline="test=write,bench seed=1 start=0 blocks=$blocks qd=$qd secs=$secs $extra"
echo "cavm run --kernel test/guest/guest.elf --cmdline \"$cmdline\" --mem 256M --disk STORE:d --serial stdio"

python3 - "$cavm" "$guest" "$store" "$cmdline" "$rounds" <<'PY'
import subprocess, sys, time
cavm, guest, store, cmdline, rounds = sys.argv[1:6]
g, h = [], []
for r in range(int(rounds)):
    p = subprocess.Popen([cavm, "run", "--kernel", guest, "--cmdline", cmdline,
                          "--mem", "256M", "--disk", store + ":d",
                          "--serial", "stdio"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    t0 = t1 = None
    line_res = ""
    for raw in p.stdout:
        line = raw.decode(errors="replace").strip()
        if line == "bench start":
            t0 = time.monotonic()
        elif line.startswith("bench reqs_per_s="):
            t1 = time.monotonic()
            line_res = line
        elif line.startswith("FAIL"):
            print("guest:", line)
    rc = p.wait()
    if rc != 0 or t0 is None or t1 is None:
        sys.exit(f"round {r}: cavm exited {rc}, no bench result")
    kv = dict(x.split("=", 1) for x in line_res.split()[1:])
    reqs = int(kv["reqs"])
    g.append(int(kv["reqs_per_s"]))
    h.append(reqs / (t1 - t0))
    print(f"round {r}: {line_res}; host clock {reqs / (t1 - t0):.0f} reqs/s")
g.sort(); h.sort()
print(f"cavm guest QD{kv['qd']} 4 KiB reads: median {g[len(g) // 2]} reqs/s "
      f"(guest TSC), {h[len(h) // 2]:.0f} reqs/s (host clock)")
PY
[ $? = 0 ] || exit 1

if ! command -v fio >/dev/null || ! fio --enghelp 2>/dev/null | grep -qw nbd ||
	[ ! -x "$blkstored" ]; then
	echo "peer: skipped (needs fio with the nbd engine and blkstored)"
	exit 0
fi
sock=$tmp/nbd.sock
"$blkstored" -S "$store" --nbd "unix:$sock" -f >"$tmp/blkstored.log" 2>&1 &
nbd_pid=$!
for _ in $(seq 100); do
	grep -q ': serving ' "$tmp/blkstored.log" && break
	sleep 0.1
done
fiocmd=(fio --name=peer --ioengine=nbd "--uri=nbd+unix:///d?socket=$sock"
	--rw=read --bs=4k --size=$((blocks * 4))k --iodepth=$qd --time_based
	--runtime=$secs --output-format=terse --terse-version=3)
echo "${fiocmd[*]}"
for r in $(seq 1 "$rounds"); do
	# terse v3: field 8 is the read IOPS
	iops=$("${fiocmd[@]}" 2>/dev/null | awk -F';' 'NF > 8 {print $8}' | head -n 1)
	echo "round $((r - 1)): fio over NBD $iops reqs/s"
	echo "$iops" >>"$tmp/fio"
done
echo "peer fio QD$qd 4 KiB reads over NBD: median $(sort -n "$tmp/fio" | sed -n "$(((rounds + 1) / 2))p") reqs/s"
