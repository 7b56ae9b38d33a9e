#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/bench/bench_guest.sh - virtio-blk requests per second seen by the
# test guest at queue depth 16: 4 KiB reads of cached data (a 1 MiB range
# the guest has just written), polled from ring 3, through cavm's
# virtio-pci device, its ioeventfd kicks and the store thread.  The peer:
# fio, 4 KiB reads at the same queue depth over the same 1 MiB of the same
# disk, exported by blkstored over NBD (unix socket).  Rounds alternate
# (cavm, then fio) so both see the same background load.
#
#   test/bench/bench_guest.sh [-r ROUNDS] [-s SECS] [-q QD] [-b BLOCKS]
#
# Run from a build directory (or set BUILD=).  Two rates for the guest:
# "guest" counts by the guest's TSC (calibrated on the PIT, or tsc_khz=
# from the host's "tsc: Detected" boot line when dmesg shows it), "host"
# divides the same request count by the host's clock between the guest's
# "bench start" and result lines.  Medians are printed last.  Without fio
# (with its nbd engine) or blkstored, only cavm is measured.
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
peer=1
if ! command -v fio >/dev/null || ! fio --enghelp 2>/dev/null | grep -qw nbd ||
	[ ! -x "$blkstored" ]; then
	echo "peer: left out (needs fio with the nbd engine, and blkstored)"
	peer=0
fi

tmp=$(mktemp -d /tmp/bench-guest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
store=$tmp/store
"$blkctl" init "$store" >/dev/null || exit 1
BLKCTL_STORE=$store "$blkctl" create d 64M || exit 1

tsc=$(dmesg 2>/dev/null | sed -n 's/.*tsc: Detected \([0-9]*\)\.\([0-9]*\) MHz.*/\1\2/p' | head -n 1)
extra=
[ -n "$tsc" ] && extra=" tsc_khz=$tsc"
cmdline="test=write,bench seed=1 start=0 blocks=$blocks qd=$qd secs=$secs$extra"
echo "cavm: cavm run --kernel test/guest/guest.elf --cmdline \"$cmdline\" --mem 256M --disk STORE:d --serial stdio"

python3 - "$cavm" "$guest" "$store" "$cmdline" "$rounds" "$peer" \
	"$blkstored" "$tmp" "$secs" "$qd" "$blocks" <<'PY'
import os, signal, subprocess, sys, time
(cavm, guest, store, cmdline, rounds, peer, blkstored, tmp, secs, qd,
 blocks) = sys.argv[1:12]
sock = os.path.join(tmp, "nbd.sock")
fio = ["fio", "--name=peer", "--ioengine=nbd",
       f"--uri=nbd+unix:///d?socket={sock}", "--rw=read", "--bs=4k",
       f"--size={int(blocks) * 4}k", f"--iodepth={qd}", "--time_based",
       f"--runtime={secs}", "--output-format=terse", "--terse-version=3"]
if peer == "1":
    print("peer: blkstored -S STORE --nbd unix:SOCK -f; " + " ".join(fio))


def cavm_round(r):
    p = subprocess.Popen([cavm, "run", "--kernel", guest, "--cmdline",
                          cmdline, "--mem", "256M", "--disk", store + ":d",
                          "--serial", "stdio"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    t0 = t1 = None
    res = ""
    for raw in p.stdout:
        line = raw.decode(errors="replace").strip()
        if line == "bench start":
            t0 = time.monotonic()
        elif line.startswith("bench reqs_per_s="):
            t1 = time.monotonic()
            res = line
        elif line.startswith("FAIL"):
            print("guest:", line)
    rc = p.wait()
    if rc != 0 or t0 is None or t1 is None:
        sys.exit(f"round {r}: cavm exited {rc}, no bench result")
    kv = dict(x.split("=", 1) for x in res.split()[1:])
    host = int(kv["reqs"]) / (t1 - t0)
    print(f"round {r}: cavm {res}; host clock {host:.0f} reqs/s")
    return int(kv["reqs_per_s"]), host


def serving(path):
    try:
        with open(path, "rb") as f:
            return f.read().count(b": serving ")
    except FileNotFoundError:
        return 0


def fio_round(r):
    path = os.path.join(tmp, "blkstored.log")
    before = serving(path)
    log = open(path, "ab")
    d = subprocess.Popen([blkstored, "-S", store, "--nbd", "unix:" + sock,
                          "-f"], stdin=subprocess.DEVNULL, stdout=log,
                         stderr=log)
    try:
        for _ in range(400):  # blkstored logs ": serving " when it is
            if serving(path) > before:
                break
            time.sleep(0.05)
        out = subprocess.run(fio, capture_output=True, text=True).stdout
        iops = [int(float(l.split(";")[7])) for l in out.splitlines()
                if l.count(";") > 8]
        if not iops:
            sys.exit(f"round {r}: fio gave no result")
        print(f"round {r}: fio over NBD {iops[0]} reqs/s")
        return iops[0]
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait()


g, h, f = [], [], []
for r in range(int(rounds)):
    a, b = cavm_round(r)
    g.append(a)
    h.append(b)
    if peer == "1":
        f.append(fio_round(r))


def med(x):
    return sorted(x)[len(x) // 2]


print(f"cavm guest QD{qd} 4 KiB reads: median {med(g)} reqs/s (guest TSC), "
      f"{med(h):.0f} reqs/s (host clock)")
if f:
    print(f"fio QD{qd} 4 KiB reads over blkstored NBD: median {med(f)} reqs/s")
PY
