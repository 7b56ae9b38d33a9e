#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/cavm_stock_kernel.sh - cavm boots Debian's stock
# kernel (a bzImage with an xz payload, decompressed by cavm on the host)
# to its early console: within a time bound the serial console must show
# the "Linux version" banner, the e820 map cavm gave, exactly, the command
# line cavm passed, and Linux finding cavm's MP table and ACPI tables.
# Then SIGTERM must
# stop cavm cleanly (exit 143).
#
# The kernel: $CAVM_TEST_KERNEL if set, else a readable /boot/vmlinuz-*,
# else Debian's linux-image package for this architecture fetched with
# `apt-get download` (the only network this needs), its vmlinuz unpacked
# with dpkg-deb into $CAVM_TEST_CACHE (default: test/cache in the build tree),
# kept for the next run.  No kernel obtainable => skipped, with the reason.
#
# The second half, booting on to an initramfs shell that lists the
# virtio disk, needs guest kernel mode to run natively; on hosts where
# KVM emulates it (a few MIPS) that takes far too long, so it is reported
# as skipped here unless CAVM_FULL_BOOT=1.  Then: an initramfs
# (cavm_initramfs.py: busybox-static and the kernel's virtio modules,
# both fetched with apt-get download if not on the host) whose /init
# loads the modules, prints the block devices, the disk's size and first
# line, and powers off; cavm must exit 0 with all three printed.
set -eu

cavm=${abs_top_builddir:-$(pwd)}/hypervisor/cavm
cache=${CAVM_TEST_CACHE:-${abs_top_builddir:-$(pwd)}/test/cache}
bound=${CAVM_SMOKE_TIMEOUT:-150}
if [ ! -x "$cavm" ]; then
	echo "SKIP: $cavm is not built"
	exit 77
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "SKIP: /dev/kvm is missing or not accessible to this user"
	exit 77
fi

fail() {
	echo "FAIL: $*"
	exit 1
}
say() { echo "== $*"; }

find_kernel() {
	local k
	if [ -n "${CAVM_TEST_KERNEL:-}" ]; then
		echo "$CAVM_TEST_KERNEL"
		return
	fi
	for k in /boot/vmlinuz-*; do
		[ -r "$k" ] && { echo "$k"; return; }
	done
	for k in "$cache"/kernel/boot/vmlinuz-*; do
		[ -r "$k" ] && { echo "$k"; return; }
	done
	command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null ||
		return 0
	local pkg
	pkg=$(apt-cache depends "linux-image-$(dpkg --print-architecture)" \
		2>/dev/null | awk '/Depends: linux-image-/ { print $2; exit }')
	[ -n "$pkg" ] || return 0
	mkdir -p "$cache/deb" "$cache/kernel"
	(cd "$cache/deb" && apt-get download "$pkg" >/dev/null 2>&1) ||
		return 0
	# only the kernel (dpkg-deb -x would unpack every module too)
	dpkg-deb --fsys-tarfile "$cache"/deb/"$pkg"_*.deb |
		tar -x -C "$cache/kernel" --wildcards './boot/vmlinuz-*' ||
		return 0
	rm -rf "$cache/deb"
	for k in "$cache"/kernel/boot/vmlinuz-*; do
		[ -r "$k" ] && { echo "$k"; return; }
	done
}

kernel=$(find_kernel)
if [ -z "$kernel" ]; then
	echo "SKIP: no stock kernel: no /boot/vmlinuz-*, and apt-get download" \
		"of Debian's linux-image package failed (no archive reachable?)"
	exit 77
fi
say "kernel $kernel"

tmp=$(mktemp -d /tmp/cavm-stock.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

cmdline="console=ttyS0 earlyprintk=serial cavm_smoke=1 reboot=k"
log=$tmp/serial.log
"$cavm" run --kernel "$kernel" --mem 256M --cmdline "$cmdline" \
	--serial "$log" 2>"$tmp/err" </dev/null &
pid=$!

# What Linux must print: its banner, our command line, our e820 map for
# 256 MiB, and that it found our MP table.
want=(
	"Linux version "
	"Command line: $cmdline"
	"BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable"
	"BIOS-e820: [mem 0x000000000009fc00-0x00000000000fffff] reserved"
	"BIOS-e820: [mem 0x0000000000100000-0x000000000fffffff] usable"
	"found SMP MP-table at [mem 0x000f0000-0x000f000f]"
	"ACPI: RSDP 0x00000000000E0000"
)
all_seen() {
	local w
	for w in "${want[@]}"; do
		grep -qF -- "$w" "$log" 2>/dev/null || return 1
	done
}
start=$(date +%s)
while ! all_seen; do
	kill -0 "$pid" 2>/dev/null ||
		fail "cavm ended early: $(cat "$tmp/err"); console: $(cat "$log")"
	[ $(($(date +%s) - start)) -lt "$bound" ] || {
		for w in "${want[@]}"; do
			grep -qF -- "$w" "$log" || echo "missing: $w"
		done
		fail "not all seen within ${bound}s; console: $(cat "$log")"
	}
	sleep 1
done
say "banner, command line, e820, MP table and ACPI after $(($(date +%s) - start))s"
# exactly our three e820 entries, nothing else
n=$(grep -c "BIOS-e820: " "$log")
[ "$n" = 3 ] || fail "$n e820 lines, want 3: $(grep BIOS-e820 "$log")"

kill -TERM "$pid"
st=0
wait "$pid" || st=$?
pid=
[ "$st" = 143 ] || fail "SIGTERM: cavm exited $st, want 143: $(cat "$tmp/err")"

if [ "${CAVM_FULL_BOOT:-0}" != 1 ]; then
	echo "SKIP (second half): booting on to an initramfs shell that lists" \
		"the virtio disk needs guest kernel mode to run natively; this" \
		"host's KVM emulates it (set CAVM_FULL_BOOT=1 on a host with" \
		"hardware virtualization)"
	echo "PASS"
	exit 0
fi

# ---- second half: an initramfs shell that finds the virtio disk ----
blkctl=${abs_top_builddir:-$(pwd)}/tools/blkctl
helper=${abs_top_srcdir:-$(dirname "$0")/../..}/test/integration/cavm_initramfs.py
ver=$(basename "$kernel")
ver=${ver#vmlinuz-}
moddir=
for d in "$cache/kernel/lib/modules/$ver" "/lib/modules/$ver"; do
	[ -e "$d/kernel/drivers/block/virtio_blk.ko" ] && { moddir=$d; break; }
done
if [ -z "$moddir" ]; then
	mkdir -p "$cache/deb-full" "$cache/kernel"
	if (cd "$cache/deb-full" &&
		apt-get download "linux-image-$ver" >/dev/null 2>&1); then
		dpkg-deb --fsys-tarfile "$cache"/deb-full/linux-image-"$ver"_*.deb |
			tar -x -C "$cache/kernel" --wildcards \
				'./lib/modules/*/virtio*.ko' || true
	fi
	rm -rf "$cache/deb-full"
	d=$cache/kernel/lib/modules/$ver
	[ -e "$d/kernel/drivers/block/virtio_blk.ko" ] && moddir=$d
fi
busybox=$cache/busybox/bin/busybox
if [ ! -x "$busybox" ]; then
	mkdir -p "$cache/busybox"
	(cd "$cache/busybox" && apt-get download busybox-static >/dev/null 2>&1 &&
		dpkg-deb --fsys-tarfile busybox-static_*.deb |
		tar -x ./bin/busybox && rm -f busybox-static_*.deb) || true
fi
if [ -z "$moddir" ] || [ ! -x "$busybox" ] || [ ! -x "$blkctl" ]; then
	fail "CAVM_FULL_BOOT=1: need the kernel's virtio modules" \
		"(${moddir:-not found}), busybox-static ($busybox) and $blkctl"
fi
mods=$(find "$moddir/kernel/drivers" \( -name virtio.ko -o \
	-name virtio_ring.ko -o -name 'virtio_pci*.ko' -o \
	-name virtio_blk.ko \))
# shellcheck disable=SC2086
python3 "$helper" "$tmp/initrd.gz" "$busybox" $mods ||
	fail "cannot build the initramfs"
"$blkctl" init "$tmp/store" >/dev/null
"$blkctl" -S "$tmp/store" create d0 16M >/dev/null
echo "hello from the store" | "$blkctl" -S "$tmp/store" write d0 0 >/dev/null
log2=$tmp/serial2.log
st=0
timeout "${CAVM_FULL_BOOT_TIMEOUT:-120}" "$cavm" run --kernel "$kernel" \
	--initrd "$tmp/initrd.gz" --mem 256M --cmdline "console=ttyS0 quiet" \
	--disk "$tmp/store:d0" --serial "$log2" 2>"$tmp/err" </dev/null || st=$?
[ "$st" = 0 ] || fail "full boot: cavm exited $st (want 0: ACPI power" \
	"off); stderr: $(cat "$tmp/err"); console: $(cat "$log2")"
for w in "CAVM-SHELL: vda" "CAVM-SIZE: 32768" \
	"CAVM-DATA: hello from the store"; do
	grep -qF -- "$w" "$log2" || fail "full boot: no '$w'; console: $(cat "$log2")"
done
say "initramfs shell saw the virtio disk, powered off"
echo "PASS"
