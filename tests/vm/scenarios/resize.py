# SPDX-License-Identifier: GPL-2.0
"""Plugging and unplugging: every block size from Sub Block Mode (2 MiB)
to Big Block Mode (2 GiB), the online policies, shrinking in steps, new
requests while resizing, request storms, two devices, force_bbm, and a
memory block the admin offlined by hand.
"""

import time

from testbed import GiB, MiB, Device, TestFailure, human, parse_size

from .helpers import (ZONE_OF_POLICY, direct_map_1g, guest_follows, guest_has_1g_pages,
                      start_filler, stop_filler_clean, wait_settled)
from .registry import both_modes, scenario


# Device block sizes from Sub Block Mode (2 MiB) to Big Block Mode (2 GiB);
# each one with an online policy, so that every policy is covered, and
# auto-movable in BBM too (it needs the driver's memory group).
@scenario("plug_unplug", tags=("plug",), variants={
    "bs2M_online_movable": {"block": "2M", "policy": "online_movable", "tags": ("sbm",)},
    "bs4M_auto_movable": {"block": "4M", "policy": "auto-movable", "tags": ("sbm",)},
    "bs128M_online_movable": {"block": "128M", "policy": "online_movable", "tags": ("sbm",)},
    "bs256M_online_kernel": {"block": "256M", "policy": "online_kernel", "tags": ("bbm",)},
    "bs1G_online_movable": {"block": "1G", "policy": "online_movable", "tags": ("bbm",)},
    "bs2G_online_movable": {"block": "2G", "policy": "online_movable", "tags": ("bbm",)},
    "bs1G_auto_movable": {"block": "1G", "policy": "auto-movable", "tags": ("bbm",)},
})
def plug_unplug(t, block, policy, region="8G", size="2G"):
    """Plug `size`, check the guest sees all of it in the policy's zone,
    unplug to 0, check every hot-plugged block is gone.

    Memory onlined to ZONE_NORMAL can hold unmovable kernel allocations, so
    no driver can promise to get all of it back: with online_kernel the
    unplug is best effort, and what is asserted is that the guest and the
    device agree on what stayed plugged."""
    zone = ZONE_OF_POLICY[policy]
    with t.vm([Device("vmem0", region, block)], policy=policy) as vm:
        vm.baseline()
        vm.resize("vmem0", size)
        vm.wait_memory(parse_size(size), zone)
        if zone == "Normal":
            p = vm.ctl("-d", "vmem0", "resize", "0", "--wait", "--timeout", "25", timeout=25)
            # the driver may still be at work when memplugctl gives up
            left = wait_settled(t, vm, "vmem0", quiet=5, timeout=120)
            if p.returncode not in (0, 2):
                raise TestFailure("memplugctl resize failed: " + p.stderr.strip())
            t.log("# ZONE_NORMAL: %s of %s could not be unplugged" % (human(left), size))
            guest_follows(vm, "vmem0", zone)
        else:
            vm.resize("vmem0", 0)
            vm.wait_memory(0)
            vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


@scenario("unplug_in_steps", tags=("plug", "1g-pages"), variants={
    "bs2M": {"block": "2M", "steps": ("8G", "5250M", "3G", "1100M", "0"), "tags": ("sbm",)},
    "bs128M": {"block": "128M", "steps": ("8G", "4992M", "896M", "0"), "tags": ("sbm",)},
    "bs1G": {"block": "1G", "steps": ("8G", "5G", "2G", "0"), "tags": ("bbm",)},
    "bs2G": {"block": "2G", "steps": ("8G", "4G", "0"), "tags": ("bbm",)},
})
def unplug_in_steps(t, block, steps, region="12G", boot_mem="1G"):
    """Plug the first size, then go through the others down to 0 with a
    health check after each step. On a CPU with 1 GiB pages the kernel maps
    hot-added memory in 1 GiB pages wherever one add covers an aligned GiB;
    removing a part of such a mapping oopsed in remove_pagetable()."""
    with t.vm([Device("vmem0", region, block)], boot_mem=boot_mem) as vm:
        vm.baseline()
        big = guest_has_1g_pages(vm)
        dm0 = direct_map_1g(vm)
        vm.resize("vmem0", steps[0])
        vm.wait_memory(parse_size(steps[0]), "Movable")
        dm1 = direct_map_1g(vm)
        t.log("# guest CPU 1 GiB pages: %s; DirectMap1G %d -> %d kB" %
              ("yes" if big else "no", dm0, dm1))
        # big blocks are added whole: a 1 GiB one is one 1 GiB page
        if big and parse_size(block) >= GiB and dm1 <= dm0:
            raise TestFailure("the guest has 1 GiB pages but mapped no hot-added memory "
                              "with them: the scenario does not test what it should")
        for size in steps[1:]:
            vm.resize("vmem0", size)
            vm.wait_memory(parse_size(size), "Movable")
            vm.check_health()
        vm.wait_blocks_back_to_baseline()


@scenario("partial_shrink_keeps_reserves", tags=("plug", "health", "sbm"), variants={
    "2M": {"block": "2M", "steps": ("40M", "0", "300M", "170M", "0")},
    "4M": {"block": "4M", "steps": ("200M", "72M", "0")},
    "middle_block_2M": {"block": "2M", "steps": ("200M", "330M", "150M", "0")},
    "128M": {"block": "128M", "steps": ("384M", "128M", "0")},
})
def partial_shrink(t, block, steps, boot_mem="512M", region="4G", filler=0):
    """A small guest plugs a little and shrinks back in steps, leaving
    memory blocks partly plugged (SBM) or pages taken before a removal
    (filler, BBM) on the way. After every step the zones' reserves and
    watermarks must be sane and a fresh allocation must work: on 6.1
    offlining a block with unplugged or taken pages made the managed count
    go negative for a moment, and the reserves computed from it then
    (~7e16 pages) made every allocation fail."""
    with t.vm([Device("vmem0", region, block)], boot_mem=boot_mem) as vm:
        vm.baseline()
        for i, size in enumerate(steps):
            vm.resize("vmem0", size, timeout=180)
            vm.wait_memory(parse_size(size), "Movable")
            if filler and i == 0:
                start_filler(vm, filler, seed=5)
            vm.check_health()
        if filler:
            stop_filler_clean(t, vm, min_passes=1)
        vm.resize("vmem0", 0, timeout=180)
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()


@scenario("partial_shrink_keeps_reserves_bbm_taken_pages", tags=("plug", "health", "bbm"))
def partial_shrink_bbm_taken(t):
    """BBM: a filler lives in the plugged big blocks while they go; the
    pages in use are taken before the removal (memplug) and the health
    check follows each step."""
    partial_shrink(t, "1G", ("2G", "1G"), boot_mem="1G", filler=384)


@scenario("resize_while_resizing", tags=("storm",), variants=both_modes())
def grow_shrink_grow(t, block):
    """A new requested size arrives while the driver is still working on
    the last one: it must converge on the newest request."""
    with t.vm([Device("vmem0", "8G", block)]) as vm:
        vm.baseline()
        vm.request("vmem0", "4G")
        time.sleep(0.3)
        vm.request("vmem0", "1G")
        time.sleep(0.3)
        vm.request("vmem0", "3G")
        vm.resize("vmem0", "3G")
        vm.wait_memory(3 * GiB, "Movable")
        vm.request("vmem0", "0")
        time.sleep(0.2)
        vm.resize("vmem0", "2G")
        vm.wait_memory(2 * GiB, "Movable")
        vm.resize("vmem0", 0)
        vm.wait_memory(0)
        vm.check_kernel_log()


@scenario("two_devices", tags=("multi",))
def two_devices(t):
    """Two devices, one in each mode, resized independently."""
    devs = [Device("vmem0", "4G", "2M"), Device("vmem1", "4G", "1G")]
    with t.vm(devs) as vm:
        vm.baseline()
        vm.resize("vmem0", "1G")
        vm.resize("vmem1", "2G")
        vm.wait_memory(3 * GiB, "Movable")
        vm.resize("vmem0", "256M")
        vm.wait_memory(2 * GiB + 256 * MiB, "Movable")
        if vm.plugged("vmem1") != 2 * GiB:
            raise TestFailure("resizing vmem0 changed vmem1")
        vm.resize("vmem1", 0)
        vm.resize("vmem0", 0)
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


@scenario("hand_offlined_block", tags=("notifier",))
def hand_offlined_block(t):
    """The admin offlines one of the driver's memory blocks through sysfs;
    the driver copes: the guest loses exactly that block, unplug still
    reaches 0 and nothing is left behind."""
    with t.vm([Device("vmem0", "8G", "2M")]) as vm:
        last_block = "ls /sys/devices/system/memory | sed -n 's/^memory//p' | sort -n | tail -n1"
        boot_last = int(vm.sh(last_block)["out"])
        vm.baseline()
        vm.resize("vmem0", "1G")
        vm.wait_memory(GiB, "Movable")
        # device memory lies above boot memory: the highest block is ours
        block = int(vm.sh(last_block)["out"])
        if block <= boot_last:
            raise TestFailure("no hot-plugged memory block found")
        vm.sh("echo offline > /sys/devices/system/memory/memory%d/state" % block)
        vm.wait_memory(GiB - 128 * MiB, "Movable")
        vm.resize("vmem0", "512M")
        vm.resize("vmem0", 0)
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


@scenario("force_bbm_small_blocks", tags=("bbm",))
def force_bbm(t):
    """force_bbm=1 makes even 2 MiB device blocks go in big blocks."""
    with t.vm([Device("vmem0", "8G", "2M")], driver_args="force_bbm=1") as vm:
        vm.baseline()
        vm.resize("vmem0", "1G")
        vm.wait_memory(GiB, "Movable")
        vm.resize("vmem0", 0)
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


@scenario("resize_storm", tags=("storm",),
          variants=both_modes(sbm={"reference_long": True}, bbm={"tags": ("long",)}))
def storm(t, block, changes=100, seconds=60, top="4G"):
    """Many requested-size changes in a short time; the driver converges on
    the last one exactly."""
    import random
    rnd = random.Random(1234)
    bs = parse_size(block)
    top = parse_size(top)
    with t.vm([Device("vmem0", "8G", block)]) as vm:
        vm.baseline()
        last = 0
        t0 = time.time()
        for i in range(changes):
            last = rnd.randrange(0, top // bs + 1) * bs
            vm.request("vmem0", last)
            pause = t0 + (i + 1) * seconds / changes - time.time()
            if pause > 0:
                time.sleep(pause)
        t.log("# %d requested sizes in %.1fs, last %s" % (changes, time.time() - t0, human(last)))
        vm.resize("vmem0", last, timeout=240)
        vm.wait_memory(last, "Movable")
        vm.resize("vmem0", 0, timeout=240)
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()
