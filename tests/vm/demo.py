#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make demo: boot a guest with memplug and a virtio-mem device with 1 GiB
blocks (Big Block Mode), grow it to 4 GiB and back to 0 with memplugctl, and
show what the guest sees after each step."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from testbed import MEMPLUGCTL, VM, Device, GiB, KiB, kernels  # noqa: E402


def mib(n):
    return "%.0f MiB" % (n / (1 << 20)) if n < GiB else "%.2f GiB" % (n / GiB)


def show_guest(vm, title):
    st = vm.state()
    z = st["zones"]
    blocks = st["memory_blocks"]
    print("  guest %-22s MemTotal %-10s ZONE_MOVABLE %-9s memory blocks online: %d" %
          (title + ":", mib(st["memtotal_kb"] * KiB),
           mib(z["Movable"]["managed_pages"] * 4096), blocks["online"]))
    for d in st["virtio_mem"]:
        a = d["attrs"]
        if a:
            print("  %s driver %s: mode %s, plugged %s" %
                  (d["dev"], d["driver"], a.get("mode", "?"),
                   mib(int(a["plugged_size"])) if a.get("plugged_size", "").isdigit() else "?"))


def ctl(vm, *args):
    """memplugctl with the terminal: its progress bar goes to our stderr."""
    cmd = [MEMPLUGCTL, "-s", vm.qmp] + list(args)
    print("$ memplugctl " + " ".join(args), flush=True)
    return subprocess.call(cmd)


def main():
    rel = os.environ.get("KERNEL") or kernels()[-1]
    rel = [r for r in kernels() if r.startswith(rel)][0]
    driver = os.environ.get("DRIVER", "memplug")
    print("memplug demo: Debian kernel %s, driver %s, QEMU virtio-mem-pci with 1 GiB blocks"
          % (rel, driver))
    with VM(rel, driver, [Device("vmem0", "8G", "1G")], boot_mem="1G",
            log=lambda m: None) as vm:
        ctl(vm, "status")
        show_guest(vm, "at boot")
        for size in ("4G", "2G", "0"):
            t0 = time.time()
            rc = ctl(vm, "resize", size, "--wait", "--timeout", "120")
            if rc != 0:
                print("demo: resize to %s failed (exit %d)" % (size, rc))
                for line in vm.kernel_log(20):
                    print("  | " + line)
                return 1
            print("  device reached %s in %.2f s" % (size, time.time() - t0))
            # the guest onlines what the device plugged: wait for it to follow
            deadline = time.time() + 30
            while time.time() < deadline:
                st = vm.state()
                if abs(st["zones"]["Movable"]["managed_pages"] * 4096 -
                       int(size.rstrip("G") or 0) * GiB) == 0:
                    break
                time.sleep(0.2)
            show_guest(vm, "after %s" % size)
        problems = vm.agent("dmesg")["problem_count"]
        print("  guest kernel log: %s" % ("clean" if not problems else "%d problems" % problems))
    return 0


if __name__ == "__main__":
    sys.exit(main())
