#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/guest_msix.sh - a virtio-blk completion interrupts the
# guest through MSI-X (table programmed by the guest, KVM GSI routing and
# irqfd in cavm, the local APIC at 0xFEE00000): the guest's vector 0x40
# handler counts it.  Then the device goes back to polling and still
# works.
set -u
. "$(dirname "$0")/guest_lib.sh"

blk init "$BLKCTL_STORE"
blk create d 1M
run_guest "$tmp/out" "test=msix,write seed=4 start=0 blocks=8" \
	--disk "$BLKCTL_STORE:d"
rc=$?
[ $rc = 0 ] || fail "cavm exited $rc"
expect_ok "$tmp/out" msix write
echo "PASS"
