#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/guest_msix.sh - interrupts and moved BARs.
#
#   1. a virtio-blk completion interrupts the guest through MSI-X (table
#      programmed by the guest, KVM GSI routing and irqfd in cavm, the
#      local APIC at 0xFEE00000): the guest's vector 0x40 handler counts
#      it; then the device goes back to polling and still works
#   2. the guest moves both of the device's BARs (bar_base=0xd0000000:
#      sized and placed again, as an OS may do) and everything still
#      works there: the virtio structures, the doorbell (ioeventfd), the
#      MSI-X table
set -u
. "$(dirname "$0")/guest_lib.sh"

blk init "$BLKCTL_STORE"
blk create d 1M

say "1. MSI-X"
run_guest "$tmp/out" "test=msix,write seed=4 start=0 blocks=8" \
	--disk "$BLKCTL_STORE:d"
rc=$?
[ $rc = 0 ] || fail "cavm exited $rc"
expect_ok "$tmp/out" msix write

say "2. BARs moved to 0xd0000000"
run_guest "$tmp/out2" "test=info,verify,msix seed=4 start=0 blocks=8 bar_base=0xd0000000" \
	--disk "$BLKCTL_STORE:d"
rc=$?
[ $rc = 0 ] || fail "cavm exited $rc"
expect_ok "$tmp/out2" info verify msix
grep -aq '^pci: BAR0 placed at 0xd0000000' "$tmp/out2" || fail "BAR0 was not moved"
grep -aq '^virtio: .* common 0xd' "$tmp/out2" || fail "the virtio structures did not move"
echo "PASS"
