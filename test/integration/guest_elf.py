#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/guest_elf.py - the test guest is an ELF that a VMM can
# load like a Linux vmlinux: ELF64, little-endian, x86-64, ET_EXEC; only
# PT_LOAD segments (no interpreter, nothing dynamic), each at its physical
# address (p_paddr == p_vaddr, from 1 MiB, below 16 MiB so 64 MiB of RAM
# holds it), p_filesz <= p_memsz, inside the file; the entry point inside
# an executable segment; and no writable segment executable.  Runs
# without KVM: it only reads the file.  Also pins guest_pattern.py to the
# values test/unit/test_guest_pattern.c pins for the guest's pattern.c.
import os
import struct
import sys

PT_LOAD, PT_DYNAMIC, PT_INTERP, PT_GNU_STACK = 1, 2, 3, 0x6474E551
PF_X, PF_W = 1, 2


def pattern_pins():
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    import guest_pattern as gp
    w = struct.unpack("<64Q", gp.sector_pattern(1, 0))
    w2 = struct.unpack("<64Q", gp.sector_pattern(7, 12345))
    return [what for ok, what in (
        (gp.mix64(0) == 0xE220A8397B1DCDAF, "mix64(0)"),
        (w[0] == 0x5E41AB087439611E, "seed 1 sector 0 word 0"),
        (w2[63] == 0x6EA2CD56BC277409, "seed 7 sector 12345 word 63"),
    ) if not ok]


def main():
    bad = pattern_pins()
    for what in bad:
        print(f"FAIL: guest_pattern.py: {what} is not the pinned value")
    if bad:
        return 1
    top = os.environ.get("abs_top_builddir", os.getcwd())
    path = os.path.join(top, "test", "guest", "guest.elf")
    if not os.path.exists(path):
        print(f"SKIP: {path} is not built (the test guest needs an x86-64 compiler)")
        return 77
    data = open(path, "rb").read()
    fails = []

    def check(cond, what):
        if not cond:
            fails.append(what)

    check(data[:4] == b"\x7fELF", "no ELF magic")
    check(data[4] == 2, "not ELF64")
    check(data[5] == 1, "not little-endian")
    (e_type, e_machine, _, e_entry, e_phoff, _, _, _, e_phentsize,
     e_phnum) = struct.unpack_from("<HHIQQQIHHH", data, 16)
    check(e_type == 2, f"e_type {e_type}, not ET_EXEC")
    check(e_machine == 62, f"e_machine {e_machine}, not x86-64")
    check(e_phentsize == 56, f"e_phentsize {e_phentsize}")
    check(1 <= e_phnum <= 8, f"{e_phnum} program headers")
    entry_ok = False
    loads = 0
    for i in range(e_phnum):
        (p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz,
         _) = struct.unpack_from("<IIQQQQQQ", data, e_phoff + i * e_phentsize)
        if p_type in (PT_INTERP, PT_DYNAMIC):
            fails.append(f"segment {i}: type {p_type} (interpreter/dynamic)")
        if p_type != PT_LOAD:
            continue
        loads += 1
        print(f"PT_LOAD paddr {p_paddr:#x} filesz {p_filesz:#x} "
              f"memsz {p_memsz:#x} flags {p_flags:#x}")
        check(p_paddr == p_vaddr, f"segment {i}: paddr != vaddr")
        check(p_paddr >= 0x100000, f"segment {i}: below 1 MiB")
        check(p_paddr + p_memsz <= 16 << 20, f"segment {i}: past 16 MiB")
        check(p_filesz <= p_memsz, f"segment {i}: filesz > memsz")
        check(p_offset + p_filesz <= len(data), f"segment {i}: past the file")
        check(not (p_flags & PF_W and p_flags & PF_X),
              f"segment {i}: writable and executable")
        if p_flags & PF_X and p_paddr <= e_entry < p_paddr + p_filesz:
            entry_ok = True
    check(loads >= 1, "no PT_LOAD")
    check(entry_ok, f"entry {e_entry:#x} is not in an executable segment")
    print(f"entry {e_entry:#x}")
    for f in fails:
        print(f"FAIL: {f}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
