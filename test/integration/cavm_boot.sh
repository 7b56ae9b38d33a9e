#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/cavm_boot.sh - cavm's core end to end with the tiny
# guest (cavm_tiny_guest.S, built here with the host compiler): the
# 64-bit ELF entry, zero page (command line, e820), serial output to
# stdout and to a file, serial input, the exit port, i8042 reset, ACPI
# power off, triple fault, signals, several vCPUs, an initrd; then every bad input cavm
# must refuse with a clear message, exit status and no file touched.
#
# Needs /dev/kvm (skipped without it) and a C compiler.
set -eu

cavm=${abs_top_builddir:-$(pwd)}/hypervisor/cavm
src=${abs_top_srcdir:-$(dirname "$0")/../..}/test/integration/cavm_tiny_guest.S
if [ ! -x "$cavm" ]; then
	echo "SKIP: $cavm is not built"
	exit 77
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "SKIP: /dev/kvm is missing or not accessible to this user"
	exit 77
fi
if ! command -v python3 >/dev/null; then
	echo "SKIP: python3 (to build bad kernel images) is missing"
	exit 77
fi
cc=${CC_FOR_GUEST:-cc}

tmp=$(mktemp -d /tmp/cavm-boot.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "FAIL: $*"
	exit 1
}
say() { echo "== $*"; }

guest() { # MODE -> $tmp/MODE.elf
	"$cc" -nostdlib -static -no-pie -Wl,--build-id=none \
		-Wl,-Ttext=0x200000 -DMODE_"$1" -o "$tmp/$1.elf" "$src" ||
		fail "cannot build the tiny guest ($1) with $cc"
}
for m in EXIT ECHO RESET FAULT SPIN POWEROFF; do
	guest $m
done

# run EXPECTED_STATUS ARGS...: cavm's stdout in $tmp/out, stderr in
# $tmp/err; the status must be the expected one.
run() {
	local want=$1 st=0
	shift
	timeout 60 "$cavm" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null || st=$?
	[ "$st" = "$want" ] ||
		fail "cavm $* exited $st, want $want; stderr: $(cat "$tmp/err")"
}
has() { # FILE TEXT
	grep -qF -- "$2" "$1" || fail "$1 lacks '$2': $(cat "$1")"
}

say "exit port, command line, e820"
run 42 run --kernel "$tmp/EXIT.elf" --mem 64M --cmdline "test=abc x=1"
has "$tmp/out" "tiny guest: cmdline=test=abc x=1 e820=3"
[ ! -s "$tmp/err" ] || fail "stderr not empty: $(cat "$tmp/err")"

say "RAM above 4 GiB is a fourth e820 entry"
run 42 run --kernel "$tmp/EXIT.elf" --mem 4G
has "$tmp/out" "cmdline= e820=4"

say "serial to a file, 4 vCPUs"
run 42 run -k "$tmp/EXIT.elf" -n 4 -c hello --serial "$tmp/console.log"
has "$tmp/console.log" "cmdline=hello e820=3"
[ ! -s "$tmp/out" ] || fail "stdout not empty with --serial FILE"

say "serial input reaches the guest"
st=0
printf 'A' | timeout 60 "$cavm" run -k "$tmp/ECHO.elf" >"$tmp/out" \
	2>"$tmp/err" || st=$?
[ "$st" = 65 ] || fail "echo guest exited $st, want 65 ('A'): $(cat "$tmp/err")"

say "i8042 reset ends cavm with 0"
run 0 run -k "$tmp/RESET.elf"
has "$tmp/err" "guest reset (i8042)"

say "ACPI power off (S5) ends cavm with 0; other sleep types do not"
run 0 run -k "$tmp/POWEROFF.elf"
has "$tmp/out" "still here"
has "$tmp/err" "guest powered off (ACPI S5)"

say "a triple fault ends cavm with 1 and registers"
# (where KVM emulates guest kernel mode it may report an emulation error
# for the faulting int3 instead: the same end either way)
run 1 run -k "$tmp/FAULT.elf"
grep -qE "triple fault|KVM internal error" "$tmp/err" ||
	fail "no fault message: $(cat "$tmp/err")"
has "$tmp/err" "rip 0000000000200"

say "SIGTERM stops a busy guest (2 vCPUs): 128+15"
timeout 60 "$cavm" run -k "$tmp/SPIN.elf" -n 2 >"$tmp/out" 2>"$tmp/err" \
	</dev/null &
pid=$!
for _ in $(seq 100); do
	grep -q "e820=" "$tmp/out" && break
	sleep 0.1
done
has "$tmp/out" "e820=3"
kill -TERM $pid
st=0
wait $pid || st=$?
[ "$st" = 143 ] || fail "SIGTERM: cavm exited $st, want 143"

say "an initrd is accepted"
head -c 1000000 /dev/urandom >"$tmp/initrd"
run 42 run -k "$tmp/EXIT.elf" -i "$tmp/initrd" -m 32M

say "bad usage: exit 2 and a message"
bad_usage() { # TEXT ARGS...
	local text=$1
	shift
	run 2 "$@"
	has "$tmp/err" "$text"
}
bad_usage "usage: cavm run" bogus
bad_usage "--kernel FILE is required" run
bad_usage "--mem '1M'" run -k "$tmp/EXIT.elf" --mem 1M
bad_usage "--mem 'lots'" run -k "$tmp/EXIT.elf" --mem lots
bad_usage "--mem '5000T'" run -k "$tmp/EXIT.elf" --mem 5000T
bad_usage "--cpus '0'" run -k "$tmp/EXIT.elf" --cpus 0
bad_usage "--cpus '256'" run -k "$tmp/EXIT.elf" --cpus 256
bad_usage "--cpus '2x'" run -k "$tmp/EXIT.elf" --cpus 2x
bad_usage "unknown option '--frobnicate'" run -k "$tmp/EXIT.elf" --frobnicate
bad_usage "needs an argument" run -k
bad_usage "want STORE:DISK" run -k "$tmp/EXIT.elf" --disk nocolon
bad_usage "unexpected argument 'extra'" run -k "$tmp/EXIT.elf" extra
run 0 --help
has "$tmp/out" "usage: cavm run"

say "bad kernels: exit 1, a message, the serial file untouched"
bad_kernel() { # TEXT KERNEL [ARGS...]
	local text=$1 k=$2
	shift 2
	echo keep >"$tmp/serial.keep"
	run 1 run -k "$k" --serial "$tmp/serial.keep" "$@"
	has "$tmp/err" "$text"
	[ "$(cat "$tmp/serial.keep")" = keep ] ||
		fail "a failed start changed the serial file"
}
bad_kernel "No such file" "$tmp/missing"
: >"$tmp/empty"
bad_kernel "not a non-empty file" "$tmp/empty"
bad_kernel "not a non-empty file" "$tmp"
echo "just text" >"$tmp/text"
bad_kernel "neither an ELF nor a bzImage" "$tmp/text"
"$cc" -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-Ttext=0x100000 \
	-DMODE_EXIT -o "$tmp/low.elf" "$src"
bad_kernel "not inside guest RAM above 1 MiB" "$tmp/low.elf"
"$cc" -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-Ttext=0x2000000 \
	-DMODE_EXIT -o "$tmp/high.elf" "$src"
bad_kernel "not inside guest RAM above 1 MiB" "$tmp/high.elf" --mem 16M
head -c 100 "$tmp/EXIT.elf" >"$tmp/trunc.elf"
bad_kernel "program headers outside the file" "$tmp/trunc.elf"
python3 - "$tmp" <<'EOF'
import struct, sys
d = sys.argv[1]
def bz(name, version=0x020f, xlf=1, off=0, length=64, payload=b"",
       cmdline_size=255):
    img = bytearray(0x1000)
    img[0x1f1] = 1                         # setup_sects: payload at 1024
    struct.pack_into("<H", img, 0x1fe, 0xAA55)
    img[0x201] = 0x6a                      # header ends at 0x26c
    img[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", img, 0x206, version)
    struct.pack_into("<I", img, 0x22c, 0x7fffffff)
    img[0x236] = xlf
    struct.pack_into("<I", img, 0x238, cmdline_size)
    struct.pack_into("<I", img, 0x248, off)
    struct.pack_into("<I", img, 0x24c, length)
    img[1024:1024 + len(payload)] = payload
    open(f"{d}/{name}", "wb").write(img)
bz("old.bz", version=0x0206)
bz("no64.bz", xlf=0)
bz("outside.bz", off=0x10000)
bz("garbage-xz.bz", payload=b"\xfd7zXZ\x00" + b"\x55" * 58)
bz("garbage-gz.bz", payload=b"\x1f\x8b" + b"\x00" * 62)
bz("bzip2.bz", payload=b"BZh9" + b"\x00" * 60)
bz("unknown.bz", payload=b"\x00" * 64)
EOF
bad_kernel "needs 2.12 and XLF_KERNEL_64" "$tmp/old.bz"
bad_kernel "needs 2.12 and XLF_KERNEL_64" "$tmp/no64.bz"
bad_kernel "payload 0x10400+0x40 is outside the file" "$tmp/outside.bz"
bad_kernel "cannot decompress the xz payload" "$tmp/garbage-xz.bz"
bad_kernel "cannot decompress the gzip payload" "$tmp/garbage-gz.bz"
bad_kernel "cannot decompress the bzip2 payload" "$tmp/bzip2.bz"
bad_kernel "cannot decompress the unknown payload" "$tmp/unknown.bz"
bad_kernel "this kernel takes at most 65535" "$tmp/EXIT.elf" \
	-c "$(head -c 70000 /dev/zero | tr '\0' x)"
bad_kernel "initrd $tmp/missing: No such file" "$tmp/EXIT.elf" \
	-i "$tmp/missing"
head -c 20000000 /dev/zero >"$tmp/big-initrd"
bad_kernel "do not fit" "$tmp/EXIT.elf" -i "$tmp/big-initrd" -m 16M

say "hugepages that are not there: a clear error"
if [ "$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)" = 0 ]; then
	bad_kernel "huge pages" "$tmp/EXIT.elf" --hugepages -m 64M
fi

echo "PASS"
