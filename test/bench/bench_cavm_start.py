#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
#
# test/bench/bench_cavm_start.py - two figures of the cavm VMM, each next
# to QEMU measured the same way in the same run:
#
#   1. start to first guest instruction: wall time from exec to exit of a
#      VMM running cavm_bench_guest.S, whose first instruction ends the VM
#      through port 0xf4 (so it includes teardown: an upper bound).  cavm
#      also reports its own figure with -v ("first guest exit N ms after
#      start", measured from main()).  QEMU boots the same ELF through its
#      PVH note with -M microvm (qboot) and -M pc (SeaBIOS), -accel kvm,
#      isa-debug-exit at 0xf4.  With a stock kernel (--kernel), cavm's
#      setup time (host-side decompression and loading, "setup took")
#      is reported too: the time before that kernel's first instruction.
#   2. the VMM's own memory: RSS minus the RSS of the guest RAM mapping
#      (/proc/PID/smaps), while the guest spins (cavm_bench_guest.S with
#      -DSPIN), with 256 MiB of guest RAM; for cavm also with one virtio
#      disk on an embedded store (blkctl init + create).
#
# Not a test: prints a table and one JSON line; never asserts a figure.
#
#   bench_cavm_start.py [--reps N] [--kernel BZIMAGE] [--builddir DIR]
# Needs /dev/kvm and a C compiler; QEMU rows are left out without
# qemu-system-x86_64.
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))


def build_guest(tmp, spin):
    out = os.path.join(tmp, "spin.elf" if spin else "bench.elf")
    cmd = ["cc", "-nostdlib", "-static", "-no-pie", "-Wl,--build-id=none",
           "-Wl,-Ttext=0x200000", "-o", out,
           os.path.join(here, "cavm_bench_guest.S")]
    if spin:
        cmd.insert(1, "-DSPIN")
    subprocess.run(cmd, check=True)
    return out


def timed(cmd, want):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, text=True)
    dt = (time.perf_counter() - t0) * 1000
    if p.returncode != want:
        sys.exit(f"{cmd[0]} exited {p.returncode}, want {want}: {p.stderr}")
    return dt, p.stderr


def median_ms(cmd, want, reps):
    return statistics.median(timed(cmd, want)[0] for _ in range(reps))


def qemu_cmd(qemu, machine, kernel, mem="64M"):
    return [qemu, "-accel", "kvm", "-M", machine, "-nodefaults",
            "-nographic", "-no-user-config", "-serial", "none", "-m", mem,
            "-kernel", kernel,
            "-device", "isa-debug-exit,iobase=0xf4,iosize=4"]


def smaps_own_kb(pid, guest_bytes):
    """(total RSS, RSS of the guest RAM mapping) in KiB."""
    total = guest = 0
    size = rss = 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                if size * 1024 >= guest_bytes and rss > guest:
                    guest = rss
                size = rss = 0
                continue
            k, _, v = line.partition(":")
            if k == "Size":
                size = int(v.split()[0])
            elif k == "Rss":
                rss = int(v.split()[0])
                total += rss
    if size * 1024 >= guest_bytes and rss > guest:
        guest = rss
    return total, guest


def rss_while_running(cmd, guest_bytes, settle=1.0):
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        if p.poll() is not None:
            sys.exit(f"{cmd[0]} ended early with {p.returncode}")
        return smaps_own_kb(p.pid, guest_bytes)
    finally:
        p.kill()
        p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--kernel", help="a bzImage for cavm's setup time")
    ap.add_argument("--builddir",
                    default=os.environ.get("abs_top_builddir", "."))
    a = ap.parse_args()
    cavm = os.path.join(a.builddir, "hypervisor/cavm")
    blkctl = os.path.join(a.builddir, "tools/blkctl")
    if not os.access("/dev/kvm", os.W_OK) or not os.access(cavm, os.X_OK):
        print(f"SKIP: needs /dev/kvm and {cavm}")
        return 77
    qemu = shutil.which("qemu-system-x86_64")
    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        bench = build_guest(tmp, False)
        spin = build_guest(tmp, True)

        # 1. start to first instruction
        cavm_cmd = [cavm, "run", "-k", bench, "-m", "64M"]
        res["cavm_exec_to_exit_ms"] = median_ms(cavm_cmd, 33, a.reps)
        firsts = []
        for _ in range(a.reps):
            _, err = timed(cavm_cmd + ["-v"], 33)
            m = re.search(r"first guest exit ([0-9.]+) ms", err)
            firsts.append(float(m.group(1)))
        res["cavm_first_exit_ms"] = statistics.median(firsts)
        if qemu:
            res["qemu_microvm_exec_to_exit_ms"] = median_ms(
                qemu_cmd(qemu, "microvm", bench), 67, a.reps)
            res["qemu_pc_exec_to_exit_ms"] = median_ms(
                qemu_cmd(qemu, "pc", bench), 67, max(1, a.reps // 5))
        if a.kernel:
            setups = []
            for _ in range(3):
                p = subprocess.Popen(
                    [cavm, "run", "-k", a.kernel, "-m", "256M", "-v",
                     "-c", "console=ttyS0", "--serial", os.devnull],
                    stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                    text=True)
                for line in p.stderr:
                    m = re.search(r"setup took ([0-9.]+) ms", line)
                    if m:
                        setups.append(float(m.group(1)))
                        break
                p.kill()
                p.wait()
            res["cavm_bzimage_setup_ms"] = statistics.median(setups)

        # 2. own memory
        mem = 256 << 20
        t, g = rss_while_running([cavm, "run", "-k", spin, "-m", "256M"],
                                 mem)
        res["cavm_rss_kb"], res["cavm_guest_rss_kb"] = t, g
        res["cavm_own_kb"] = t - g
        if os.access(blkctl, os.X_OK):
            store = os.path.join(tmp, "store")
            subprocess.run([blkctl, "init", store], check=True,
                           stdout=subprocess.DEVNULL)
            subprocess.run([blkctl, "-S", store, "create", "d0", "1G"],
                           check=True, stdout=subprocess.DEVNULL)
            t, g = rss_while_running(
                [cavm, "run", "-k", spin, "-m", "256M", "--disk",
                 f"{store}:d0"], mem, settle=2.0)
            res["cavm_disk_own_kb"] = t - g
        if qemu:
            t, g = rss_while_running(qemu_cmd(qemu, "microvm", spin, "256M"),
                                     mem)
            res["qemu_microvm_own_kb"] = t - g
            res["qemu_microvm_guest_rss_kb"] = g

    print(f"{'figure':<36} {'value':>10}")
    for k, v in res.items():
        print(f"{k:<36} {v:>10.1f}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
