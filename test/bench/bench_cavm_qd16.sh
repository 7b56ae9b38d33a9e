#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/bench/bench_cavm_qd16.sh - virtio-blk requests per second as a
# guest sees them at queue depth 16: the probe guest
# (test/integration/vblk_probe_guest.c, "vblk=qd16 reqs=N") reads 4 KiB
# (the same, cached, block) with 16 requests in flight, one notification
# per request, completions polled, through cavm's whole disk path
# (ioeventfd, I/O thread, store thread, vblk).
#
# The guest has no clock of its own, so the rate is taken between two
# runs: (N_BIG - N_SMALL) / (time(N_BIG) - time(N_SMALL)), which cancels
# cavm's start and stop.  Best of ROUNDS.
#
#   test/bench/bench_cavm_qd16.sh [BUILDDIR] [ROUNDS]
set -eu

top=${1:-$(pwd)}
rounds=${2:-3}
src=$(cd "$(dirname "$0")/../.." && pwd)
small=10000
big=100000

tmp=$(mktemp -d /tmp/bench-qd16.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
${CC:-cc} -std=gnu11 -ffreestanding -fno-pic -no-pie -nostdlib -static \
	-mno-red-zone -mgeneral-regs-only -fno-stack-protector \
	-fcf-protection=none -O2 -Wl,-Ttext-segment=0x100000 \
	-Wl,-z,max-page-size=4096 -Wl,--build-id=none -Wl,-e,_start \
	-o "$tmp/guest.elf" "$src/test/integration/vblk_probe_guest.c"
"$top/tools/blkctl" init "$tmp/st" >/dev/null
"$top/tools/blkctl" -S "$tmp/st" create d0 64M >/dev/null

run() { # N -> seconds
	local t0 t1
	t0=$(date +%s.%N)
	"$top/hypervisor/cavm" run --kernel "$tmp/guest.elf" \
		--cmdline "vblk=qd16 reqs=$1" --disk "$tmp/st:d0" \
		--serial "$tmp/serial" 2>"$tmp/log" || {
		cat "$tmp/serial" "$tmp/log"
		exit 1
	}
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

best=0
for _ in $(seq "$rounds"); do
	ts=$(run $small)
	tb=$(run $big)
	rate=$(echo "($big - $small) / ($tb - $ts)" | bc -l)
	printf "round: %d reqs %.3f s, %d reqs %.3f s: %.0f req/s\n" \
		$small "$ts" $big "$tb" "$rate"
	if [ "$(echo "$rate > $best" | bc -l)" = 1 ]; then best=$rate; fi
done
printf "virtio-blk QD16 4 KiB cached reads: %.0f requests/s (best of %d)\n" \
	"$best" "$rounds"
