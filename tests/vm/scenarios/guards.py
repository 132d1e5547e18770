# SPDX-License-Identifier: GPL-2.0
"""The guards: the unplug guard keeps memory in use plugged when the rest
of the guest could not hold it (no OOM kill, no endless migration); the
growth guard stops growth before the memmap of new memory would use up
boot memory. Growing a small guest far: memmap_on_memory in Big Block
Mode, and the guard where the memmap stays in boot memory.
"""

from testbed import GiB, MiB, Device, TestFailure, human, parse_size

from .helpers import (MEMMAP_ON, check_grown, check_unplug_guard_blocked, check_unplug_guard_ok,
                      guard_stops, guest_follows, memplug_attrs, start_filler, stop_filler_clean,
                      wait_settled, zone_delta)
from .registry import scenario


GROW_FAR_REF = ("virtio_mem does not host the memmap in big block mode: boot memory runs "
                "out, adding memory fails (-ENOMEM) and the device is marked broken")


@scenario("hand_offlined_block_bbm_no_room", memplug_only=True, tags=("notifier", "bbm", "oom"))
def hand_offlined_block_bbm_no_room(t):
    """BBM: the admin offlines one memory block of the top big block, and
    a process fills the guest so that the rest of it could not hold what
    lives in that big block. Asked to shrink, the driver must neither
    offline the partly online big block blindly (offlining migrates
    forever under the hotplug locks) nor migrate memory that has nowhere
    to go: it either converges or stops with the room check (no_room),
    the hotplug lock stays free, the process keeps its memory intact, and
    once it is gone everything unplugs."""
    with t.vm([Device("vmem0", "8G", "1G")]) as vm:
        blocks = "ls /sys/devices/system/memory | sed -n 's/^memory//p' | sort -n"
        boot_last = int(vm.sh(blocks + " | tail -n1")["out"])
        vm.baseline()
        vm.resize("vmem0", "2G")
        vm.wait_memory(2 * GiB, "Movable")
        ours = [int(b) for b in vm.sh(blocks)["out"].split() if int(b) > boot_last]
        if len(ours) != 16:
            raise TestFailure("expected 16 hot-plugged memory blocks, found %d" % len(ours))
        # device memory lies above boot memory: the highest block is in the
        # top big block, the cheapest one to unplug
        vm.sh("echo offline > /sys/devices/system/memory/memory%d/state" % ours[-1])
        vm.wait_memory(2 * GiB - 128 * MiB, "Movable")
        start_filler(vm, 2048)
        p = vm.ctl("-d", "vmem0", "resize", "1G", "--wait", "--timeout", "25", timeout=40)
        left = wait_settled(t, vm, "vmem0", quiet=5, timeout=120)
        no_room = int(memplug_attrs(vm)["no_room"])
        t.log("# asked for 1 GiB with little room: %s plugged, no_room %d (memplugctl exit %d)" %
              (human(left), no_room, p.returncode))
        if left == 2 * GiB:
            if not no_room:
                raise TestFailure("stopped at 2 GiB but the room check never refused")
            vm.wait_memory(2 * GiB - 128 * MiB, "Movable")
        elif left == GiB:
            vm.wait_memory(GiB, "Movable")
        else:
            raise TestFailure("%s plugged, neither 1 GiB nor 2 GiB" % human(left))
        # the worker must not sit in offline_pages() holding the device
        # hotplug lock: writing a memory block's state needs that lock
        # (onlining an online block fails with EINVAL once it has it)
        r = vm.sh("timeout 10 sh -c 'echo online > /sys/devices/system/memory/memory%d/state' "
                  "2>/dev/null; echo $?" % ours[0], timeout=30)
        if r["out"].strip() == "124":
            raise TestFailure("device hotplug lock still held after 10 s: offlining stuck")
        stop_filler_clean(t, vm, min_passes=1)
        vm.resize("vmem0", "1G", timeout=240)
        vm.wait_memory(GiB, "Movable")
        vm.resize("vmem0", 0, timeout=240)
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


@scenario("unplug_never_oom_kills", reference_long=True, tags=("oom",),
          reference_fails="virtio_mem migrates in-use memory the rest of the guest cannot "
                          "hold: page allocation failure splats, or the OOM killer kills the "
                          "process")
def no_oom_kill(t):
    """A process holds more memory than the guest would have left after
    unplugging everything. Asked to shrink to 0, the driver must stop short
    (plugged stays above requested: that is how the host learns the guest
    could not shrink) and the process must live, its memory intact.
    memplug must say so in sysfs: unplug_guard reads "blocked: ..." with
    numbers that show the lack of room while it holds the unplug back, and
    "ok" once the process is gone and the request is met."""
    with t.vm([Device("vmem0", "8G", "1G")]) as vm:
        vm.baseline()
        vm.resize("vmem0", "4G")
        vm.wait_memory(4 * GiB, "Movable")
        start_filler(vm, 2560)
        p = vm.ctl("-d", "vmem0", "resize", "0", "--wait", "--timeout", "25", timeout=25)
        left = wait_settled(t, vm, "vmem0", quiet=5, timeout=120)
        t.log("# asked for 0: %s still plugged (memplugctl exit %d)" % (human(left), p.returncode))
        if left < 2 * GiB:
            raise TestFailure("only %s left plugged for a 2.5 GiB process in a 1 GiB guest" %
                              human(left))
        guest_follows(vm, "vmem0", "Movable")
        blocked_at = check_unplug_guard_blocked(t, vm) if t.driver == "memplug" else None
        stop_filler_clean(t, vm, min_passes=1)
        # with the process gone the rest can go too
        vm.resize("vmem0", 0, timeout=240)
        vm.wait_memory(0)
        if t.driver == "memplug":
            check_unplug_guard_ok(t, vm, blocked_at)
        vm.check_kernel_log()


@scenario("grow_far_memmap_on_memory_bbm", reference_long=True, tags=("grow", "bbm"),
          reference_fails=GROW_FAR_REF)
def grow_far_bbm(t):
    """512 MiB guest, 1 GiB blocks, memmap_on_memory: grow to 128 GiB in
    steps, all of it in ZONE_MOVABLE, and back to 0 (the growth memplug
    promises a small guest, in every make check). With big blocks memplug
    hosts the memmap in the added memory itself, so boot memory does not
    limit the growth."""
    block, steps = "1G", ("16G", "48G", "128G")
    with t.vm([Device("vmem0", "128G", block)], boot_mem="512M", policy="online_movable",
              cmdline=MEMMAP_ON) as vm:
        vm.baseline()
        attrs = memplug_attrs(vm)
        mom = attrs.get("memmap_on_memory") == "1"
        if t.driver == "memplug" and not mom:
            raise TestFailure("memmap_on_memory not in use: %r" % attrs.get("memmap_on_memory"))
        for size in steps:
            vm.resize("vmem0", size, timeout=300 if t.driver == "memplug" else 120)
            check_grown(t, vm, parse_size(size), 2 * MiB if mom else 0)
            t.log("# %s plugged, ZONE_MOVABLE %s present / %s managed" %
                  (size, human(zone_delta(vm)[0]), human(zone_delta(vm)[1])))
        vm.resize("vmem0", 0, timeout=600)
        vm.wait_memory(0, timeout=120)
        vm.wait_blocks_back_to_baseline(timeout=120)
        vm.check_kernel_log()


@scenario("growth_guard_without_memmap_on_memory", reference_long=True,
          tags=("grow", "guard", "bbm"),
          reference_fails="virtio_mem runs the guest out of unmovable memory (panics)")
def guard_bbm(t):
    """memmap_on_memory off, 512 MiB guest, ask for 32 GiB: every GiB
    costs 16 MiB of memmap from boot memory. memplug stops where that would
    endanger the guest and reports it; a lowered request converges; onlining
    one of its blocks to ZONE_NORMAL by hand lets it grow further."""
    with t.vm([Device("vmem0", "32G", "1G")], boot_mem="512M", policy="online_movable") as vm:
        vm.baseline()
        got = guard_stops(t, vm, "32G")
        # lower the request below the limit: converges, guard says ok
        lower = got - 2 * GiB
        vm.resize("vmem0", lower, timeout=300)
        vm.wait_memory(lower, "Movable")
        attrs = memplug_attrs(vm)
        if attrs.get("growth_guard") != "ok":
            raise TestFailure("growth_guard %r after a reachable request" % attrs.get("growth_guard"))
        # back up: stops where it stopped before (same conditions)
        again = guard_stops(t, vm, "32G")
        if abs(again - got) > GiB:
            raise TestFailure("stopped at %s, before at %s" % (human(again), human(got)))
        # the admin moves the last hot-plugged GiB (8 memory blocks) to
        # ZONE_NORMAL: memory for the memmap of many more GiB
        blocks = vm.sh("ls /sys/devices/system/memory | sed -n 's/^memory//p' | sort -n | tail -n8")["out"].split()
        for b in blocks:
            vm.sh("echo offline > /sys/devices/system/memory/memory%s/state && "
                  "echo online_kernel > /sys/devices/system/memory/memory%s/state" % (b, b))
        grown = wait_settled(t, vm, "vmem0")
        t.log("# after onlining 1 GiB to ZONE_NORMAL: %s plugged" % human(grown))
        if grown <= again:
            raise TestFailure("growth did not resume after onlining memory to ZONE_NORMAL")
        vm.sh("true")
        vm.check_kernel_log()
        # most of it goes away again (the ZONE_NORMAL GiB may stay)
        p = vm.ctl("-d", "vmem0", "resize", "0", "--wait", "--timeout", "40", timeout=40)
        left = vm.plugged("vmem0")
        t.log("# resize to 0: %s left plugged (exit %d)" % (human(left), p.returncode))
        if left > GiB:
            raise TestFailure("%s left plugged after resize to 0" % human(left))
        vm.check_kernel_log()


@scenario("grow_far_memmap_on_memory_sbm", reference_long=True,
          tags=("grow", "guard", "sbm"),
          reference_fails="virtio_mem runs the guest out of unmovable memory (panics)")
def guard_sbm(t):
    """Sub block mode (2 MiB blocks) with memmap_on_memory on the command
    line: SBM does not host the memmap (docs/driver.md), so the guard
    limits the growth; shrinking to 0 works."""
    with t.vm([Device("vmem0", "32G", "2M")], boot_mem="512M", policy="online_movable",
              cmdline=MEMMAP_ON) as vm:
        vm.baseline()
        if t.driver == "memplug" and memplug_attrs(vm).get("memmap_on_memory") != "0":
            raise TestFailure("SBM must not use memmap_on_memory")
        guard_stops(t, vm, "32G")
        vm.resize("vmem0", 0, timeout=600)
        vm.wait_memory(0, timeout=120)
        vm.wait_blocks_back_to_baseline(timeout=120)
        vm.check_kernel_log()
