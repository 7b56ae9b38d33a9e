# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/guest_lib.sh - what the guest_*.sh tests share (sourced,
# not a test): find cavm, blkctl and the test guest, skip (exit 77) with
# the reason when one is missing or /dev/kvm is not usable, a fresh store
# in a temporary directory, and run_guest to boot the guest once.
#
# run_guest OUTFILE "CMDLINE" --disk SPEC...: cavm runs the guest with
# 256 MiB under a time bound (GUEST_TIMEOUT, default 120 s), its serial
# output in OUTFILE (and on stdout); returns cavm's exit status (the
# guest's failure count, 124 if the bound was hit).

builddir=${abs_top_builddir:-$(pwd)}
srcdir=${abs_top_srcdir:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cavm=$builddir/hypervisor/cavm
blkctl=$builddir/tools/blkctl
guest=$builddir/test/guest/guest.elf
pattern=$srcdir/test/integration/guest_pattern.py

skip() {
	echo "SKIP: $*"
	exit 77
}
fail() {
	echo "FAIL: $*"
	exit 1
}
say() { echo "== $*"; }

[ -x "$blkctl" ] || skip "$blkctl is not built"
[ -x "$cavm" ] || skip "$cavm is not built"
[ -f "$guest" ] || skip "$guest is not built (the test guest needs an x86-64 compiler)"
[ -e /dev/kvm ] || skip "/dev/kvm does not exist (no KVM on this host)"
[ -r /dev/kvm ] && [ -w /dev/kvm ] || skip "/dev/kvm is not readable and writable by $(id -un)"
command -v python3 >/dev/null || skip "python3 (for guest_pattern.py) is missing"

tmp=$(mktemp -d /tmp/cavm-guest.XXXXXX)
cleanup() {
	[ -n "${cavm_pid:-}" ] && kill -9 "$cavm_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
export BLKCTL_STORE=$tmp/store
unset BLKCTL 2>/dev/null || true

blk() {
	"$blkctl" "$@" || fail "blkctl $* exited $?"
}

run_guest() { # OUTFILE CMDLINE CAVM-ARGS...
	local out=$1 cmdline=$2 rc
	shift 2
	echo "   cavm run --kernel guest.elf --cmdline \"$cmdline\" $*"
	timeout "${GUEST_TIMEOUT:-120}" "$cavm" run --kernel "$guest" \
		--cmdline "$cmdline" --mem 256M --serial stdio "$@" \
		</dev/null >"$out" 2>"$out.err"
	rc=$?
	sed -i 's/\r$//' "$out" # the guest ends its lines with CR LF
	sed 's/^/   | /' "$out"
	sed 's/^/   ! /' "$out.err"
	return $rc
}

# every scenario named must have printed "ok NAME", none "FAIL"
expect_ok() { # OUTFILE NAME...
	local out=$1 n
	shift
	! grep -a '^FAIL' "$out" || fail "the guest reported failures"
	for n in "$@"; do
		tr -d '\r' <"$out" | grep -aq "^ok $n\$" ||
			fail "no \"ok $n\" from the guest"
	done
}

fsck_clean() {
	local out
	out=$("$blkctl" fsck 2>&1) || fail "fsck after $1: $out"
	echo "   fsck after $1: ${out##*$'\n'}"
}
