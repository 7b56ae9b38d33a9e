#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/integration/cavm_initramfs.py - builds the initramfs of the
# stock-kernel test's second half (cavm_stock_kernel.sh, CAVM_FULL_BOOT=1):
# a gzip'd newc cpio with a static busybox, the virtio modules of the
# kernel under test, and an /init that loads them, prints the block
# devices the kernel found ("CAVM-SHELL: vda ..."), the first disk's size
# in sectors and the first line of its contents, then powers the machine
# off (ACPI S5: cavm exits 0).  No cpio tool needed; the modules are put
# in load order from their own "depends=" lists.
#
#   cavm_initramfs.py OUT BUSYBOX MODULE.ko...
import gzip
import os
import sys

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in %s; do
	insmod /lib/$m.ko || echo "CAVM-SHELL: insmod $m failed"
done
sleep 1
echo "CAVM-SHELL: $(ls /sys/block | tr '\\n' ' ')"
echo "CAVM-SIZE: $(cat /sys/block/vda/size)"
echo "CAVM-DATA: $(head -c 64 /dev/vda | head -n 1)"
poweroff -f
"""


def entry(name, mode, data=b"", ino=[1]):
    ino[0] += 1
    hdr = "070701" + "".join(f"{v:08x}" for v in (
        ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0,
        len(name) + 1, 0))
    out = hdr.encode() + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def depends(path):
    data = open(path, "rb").read()
    i = data.find(b"\0depends=")
    if i < 0:
        return []
    v = data[i + 9:data.index(b"\0", i + 1)].decode()
    return [d for d in v.split(",") if d]


def load_order(mods):
    by_name = {os.path.basename(m)[:-3]: m for m in mods}
    done, order = set(), []

    def visit(n, stack=()):
        if n in done:
            return
        if n in stack or n not in by_name:
            sys.exit(f"module {n}: dependency cycle or not given")
        for d in depends(by_name[n]):
            visit(d, stack + (n,))
        done.add(n)
        order.append(by_name[n])

    for n in sorted(by_name):
        visit(n)
    return order


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: cavm_initramfs.py OUT BUSYBOX MODULE.ko...")
    out, busybox = sys.argv[1], sys.argv[2]
    mods = load_order(sys.argv[3:])
    names = [os.path.basename(m)[:-3] for m in mods]
    blob = b""
    for d in ("bin", "dev", "lib", "proc", "sys"):
        blob += entry(d, 0o040755)
    blob += entry("bin/busybox", 0o100755, open(busybox, "rb").read())
    blob += entry("init", 0o100755, (INIT % " ".join(names)).encode())
    for m, n in zip(mods, names):
        blob += entry(f"lib/{n}.ko", 0o100644, open(m, "rb").read())
    blob += entry("TRAILER!!!", 0)
    with gzip.open(out, "wb") as f:
        f.write(blob)


if __name__ == "__main__":
    main()
