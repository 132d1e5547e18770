# SPDX-License-Identifier: GPL-2.0
"""Test-bed scenarios. Each runs against one kernel and one driver
(DRIVER=memplug or DRIVER=virtio_mem, the kernel's own, as reference).

A scenario is a function f(t) where t is a Run: t.vm(...) boots a guest,
assertions raise TestFailure, Skip says the scenario does not apply.
"""

import os
import re
import time

import randomized
from testbed import GiB, MiB, Device, Skip, TestFailure, human, parse_size

SCENARIOS = []


def scenario(name, memplug_only=False, tags=(), reference_fails=None, reference_long=False):
    """Register a scenario. memplug_only: skipped for the kernel's driver.
    reference_fails: a known failing of the kernel's own virtio_mem that
    memplug exists to fix; its failure there is reported as TODO, not as a
    failure of the test bed. reference_long: the kernel's driver runs it only
    with LONG=1 (reliability scenarios: they feed the comparison table in
    docs/reliability.md, and keep make check short). Tag "long": only with
    LONG=1."""
    def reg(fn):
        SCENARIOS.append({"name": name, "fn": fn, "memplug_only": memplug_only,
                          "tags": set(tags), "reference_fails": reference_fails,
                          "reference_long": reference_long})
        return fn
    return reg


ZONE_OF_POLICY = {"online_movable": "Movable", "online_kernel": "Normal",
                  "auto-movable": None}


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


# Device block sizes from Sub Block Mode (2 MiB) to Big Block Mode (2 GiB);
# each one with an online policy, so that every policy is covered.
for _bs, _policy in (("2M", "online_movable"), ("4M", "auto-movable"),
                     ("128M", "online_movable"), ("256M", "online_kernel"),
                     ("1G", "online_movable"), ("2G", "online_movable")):
    def _fn(t, bs=_bs, policy=_policy):
        plug_unplug(t, bs, policy)
    scenario("plug_unplug_bs%s_%s" % (_bs, _policy.replace("-", "_")),
             tags=("plug", "bbm" if parse_size(_bs) > 128 * MiB else "sbm"))(_fn)


def guest_has_1g_pages(vm):
    """Does the guest CPU offer 1 GiB pages (pdpe1gb)?"""
    return " pdpe1gb" in vm.sh("grep -m1 '^flags' /proc/cpuinfo")["out"]


def direct_map_1g(vm):
    """kB of the kernel's direct map in 1 GiB pages."""
    m = re.search(r"DirectMap1G:\s+(\d+)", vm.sh("cat /proc/meminfo")["out"])
    return int(m.group(1)) if m else 0


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


for _bs, _steps in (("2M", ("8G", "5250M", "3G", "1100M", "0")),
                    ("128M", ("8G", "4992M", "896M", "0")),
                    ("1G", ("8G", "5G", "2G", "0")),
                    ("2G", ("8G", "4G", "0"))):
    def _fn(t, bs=_bs, steps=_steps):
        unplug_in_steps(t, bs, steps)
    scenario("unplug_in_steps_bs%s" % _bs,
             tags=("plug", "1g-pages", "bbm" if parse_size(_bs) > 128 * MiB else "sbm"))(_fn)


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


for _name, _bs, _steps in (("2M", "2M", ("40M", "0", "300M", "170M", "0")),
                           ("4M", "4M", ("200M", "72M", "0")),
                           ("middle_block_2M", "2M", ("200M", "330M", "150M", "0")),
                           ("128M", "128M", ("384M", "128M", "0"))):
    def _fn(t, bs=_bs, steps=_steps):
        partial_shrink(t, bs, steps)
    scenario("partial_shrink_keeps_reserves_%s" % _name, tags=("plug", "health", "sbm"))(_fn)


@scenario("partial_shrink_keeps_reserves_bbm_taken_pages", tags=("plug", "health", "bbm"))
def partial_shrink_bbm_taken(t):
    """BBM: a filler lives in the plugged big blocks while they go; the
    pages in use are taken before the removal (memplug) and the health
    check follows each step."""
    partial_shrink(t, "1G", ("2G", "1G"), boot_mem="1G", filler=384)


@scenario("plug_unplug_bs1G_auto_movable", tags=("plug", "bbm"))
def bbm_auto_movable(t):
    plug_unplug(t, "1G", "auto-movable", size="2G")


@scenario("resize_while_resizing_sbm", tags=("storm", "sbm"))
def grow_shrink_grow_sbm(t):
    grow_shrink_grow(t, "2M")


@scenario("resize_while_resizing_bbm", tags=("storm", "bbm"))
def grow_shrink_grow_bbm(t):
    grow_shrink_grow(t, "1G")


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


def resize_under_filler(t, block):
    """Unplug while a process holds memory that lives in the plugged range;
    its pattern must survive the migration byte for byte."""
    with t.vm([Device("vmem0", "8G", block)]) as vm:
        vm.baseline()
        vm.resize("vmem0", "3G")
        vm.wait_memory(3 * GiB, "Movable")
        start_filler(vm, 1536, seed=7, timeout=120)
        vm.resize("vmem0", "1G", timeout=240)
        vm.wait_memory(1 * GiB, "Movable")
        vm.resize("vmem0", "3G")
        vm.resize("vmem0", "1G", timeout=240)
        stop_filler_clean(t, vm, timeout=240)
        vm.resize("vmem0", 0, timeout=240)
        vm.wait_memory(0)
        vm.check_kernel_log()


@scenario("resize_under_filler_sbm", tags=("filler", "sbm"))
def filler_sbm(t):
    resize_under_filler(t, "2M")


@scenario("resize_under_filler_bbm", tags=("filler", "bbm"))
def filler_bbm(t):
    resize_under_filler(t, "1G")


@scenario("preplugged_at_boot", tags=("boot",))
def preplugged_at_boot(t):
    """The device asks for memory before the guest even runs; the driver
    plugs it as soon as it binds."""
    devs = [Device("vmem0", "8G", "2M", requested="1G"),
            Device("vmem1", "8G", "1G", requested="2G")]
    with t.vm(devs) as vm:
        # the baseline is boot memory alone: the device starts empty, so use
        # the zone accounting of a guest whose devices have nothing plugged
        deadline = time.time() + 60
        while vm.plugged("vmem0") != GiB or vm.plugged("vmem1") != 2 * GiB:
            if time.time() > deadline:
                raise TestFailure("preplugged sizes not reached: vmem0 %s, vmem1 %s" %
                                  (human(vm.plugged("vmem0")), human(vm.plugged("vmem1"))))
            time.sleep(0.2)
        deadline = time.time() + 60
        while True:
            st = vm.state()
            movable = st["zones"]["Movable"]["managed_pages"] * 4096
            if movable == 3 * GiB:
                break
            if time.time() > deadline:
                raise TestFailure("guest has %s in ZONE_MOVABLE, expected 3 GiB" % human(movable))
            time.sleep(0.2)
        before = st["memtotal_kb"]
        vm.resize("vmem0", 0)
        vm.resize("vmem1", 0)
        st = vm.state()
        if before - st["memtotal_kb"] != 3 * GiB // 1024:
            raise TestFailure("MemTotal fell by %d KiB, expected 3 GiB" %
                              (before - st["memtotal_kb"]))
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


@scenario("rmmod_with_memory_plugged", memplug_only=True, tags=("lifecycle",))
def rmmod_plugged(t):
    """rmmod with memory plugged: either everything is returned and the
    module unloads, or the unload fails cleanly and everything keeps
    working. Never a crash, never memory left in the guest that the
    device no longer backs."""
    with t.vm([Device("vmem0", "8G", "1G")]) as vm:
        vm.baseline()
        vm.resize("vmem0", "2G")
        vm.wait_memory(2 * GiB, "Movable")
        r = vm.sh("rmmod memplug 2>&1", check=False)
        if r["rc"] == 0:
            vm.wait_memory(0)
            if vm.plugged("vmem0") != 0:
                raise TestFailure("module gone but device still has %s plugged" %
                                  human(vm.plugged("vmem0")))
            vm.sh(". /etc/load.sh; load memplug")
            vm.resize("vmem0", "1G")
            vm.wait_memory(GiB, "Movable")
        else:
            t.log("# rmmod refused: %s" % r["out"].strip())
            vm.resize("vmem0", "1G")
            vm.wait_memory(GiB, "Movable")
        vm.resize("vmem0", 0)
        vm.wait_memory(0)
        vm.check_kernel_log()


# ---------------------------------------------------------------------------
# Reliability (issue 6): storms, injected faults, migration, the OOM killer.

def start_filler(vm, mib, seed=11, timeout=180):
    vm.agent("fill %d %d" % (mib, seed))
    deadline = time.time() + timeout
    while not vm.agent("fill-status")["ready"]:
        if time.time() > deadline:
            raise TestFailure("filler did not fill %d MiB in time" % mib)
        time.sleep(0.5)


def stop_filler_clean(t, vm, min_passes=2, timeout=300):
    st = vm.agent("fill-stop", timeout=timeout)
    if st["killed_by_signal"]:
        raise TestFailure("filler was killed by signal %d (OOM killer?)" % st["killed_by_signal"])
    if st["corrupted_bytes"]:
        raise TestFailure("filler saw %d corrupted bytes (first at offset %d)" %
                          (st["corrupted_bytes"], st["first_bad_offset"]))
    if st["passes"] < min_passes:
        raise TestFailure("filler verified only %d passes" % st["passes"])
    t.log("# filler: %d verification passes over %s, 0 corrupted bytes" %
          (st["passes"], human(st["bytes"])))
    return st


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


@scenario("resize_storm_sbm", reference_long=True, tags=("storm", "sbm"))
def storm_sbm(t):
    storm(t, "2M")


@scenario("resize_storm_bbm", tags=("storm", "bbm", "long"))
def storm_bbm(t):
    storm(t, "1G")


INJECT = "/sys/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_OFFLINE/error"


def offline_fault(t, block):
    """Offlining fails (memory-notifier-error-inject makes MEM_GOING_OFFLINE
    return -EBUSY): nothing is lost, the device keeps what could not be
    removed, and once the fault is lifted the driver gets there by itself."""
    with t.vm([Device("vmem0", "8G", block)]) as vm:
        vm.sh(". /etc/load.sh; load memory-notifier-error-inject")
        vm.baseline()
        vm.resize("vmem0", "2G")
        vm.wait_memory(2 * GiB, "Movable")
        vm.sh("echo -16 > " + INJECT)
        vm.request("vmem0", 0)
        # SBM keeps unplugging sub blocks for a while (each 128 MiB taken,
        # offlining fails twice): wait until it stops
        left = wait_settled(t, vm, "vmem0", quiet=6, timeout=180)
        # BBM must take whole memory blocks offline; SBM can unplug online
        # sub-blocks without offlining but cannot remove the memory blocks
        st = vm.state()
        if parse_size(block) > 128 * MiB and left != 2 * GiB:
            raise TestFailure("device shrank to %s although no block could go offline" % human(left))
        guest_follows(vm, "vmem0", "Movable")
        t.log("# with offlining failing: %s still plugged, guest consistent" % human(left))
        vm.sh("echo 0 > " + INJECT)
        t0 = time.time()
        vm.resize("vmem0", 0, timeout=240)
        t.log("# fault lifted: reached 0 after %.1fs" % (time.time() - t0))
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline(timeout=60)
        del st
        vm.check_kernel_log()


@scenario("offline_fault_bbm", reference_long=True, tags=("fault", "bbm"))
def offline_fault_bbm(t):
    offline_fault(t, "1G")


@scenario("offline_fault_sbm", reference_long=True, tags=("fault", "sbm"),
          reference_fails="virtio_mem may leave emptied memory blocks in Linux when offlining "
                          "failed once: with plugged == requested it never retries removing them")
def offline_fault_sbm(t):
    offline_fault(t, "2M")


@scenario("add_rollback_keeps_present_blocks", memplug_only=True, tags=("fault", "bbm"))
def add_rollback_keeps_present_blocks(t):
    """6.1 with memmap_on_memory adds a big block one memory block at a
    time. Adding fails half way while offlining is refused too, so the
    rollback cannot remove what it added: the big block stays partly
    added. When the next attempt fails again, its rollback must remove
    only what that attempt added, never the memory blocks that were
    there before (online, maybe in use). Once adding works the driver
    completes the big block, and everything unplugs."""
    if not t.release.startswith("6.1."):
        raise Skip("memory is added one memory block at a time only on 6.1")
    with t.vm([Device("vmem0", "8G", "1G")], cmdline=MEMMAP_ON, module="memplug-fi") as vm:
        knobs = vm.sh("echo /sys/kernel/debug/memplug/virtio*")["out"].strip()
        if vm.sh("test -f %s/add_fail" % knobs, check=False)["rc"] != 0:
            raise TestFailure("no add_fail knob in %s (run scripts/build.sh)" % knobs)
        vm.sh(". /etc/load.sh; load memory-notifier-error-inject")
        if memplug_attrs(vm).get("memmap_on_memory") != "1":
            raise TestFailure("memmap_on_memory not in use")
        vm.baseline()
        base = vm.base["memory_blocks"]["total"]

        def blocks():
            return vm.state()["memory_blocks"]["total"] - base

        def wait_blocks(n, what, timeout=60):
            deadline = time.time() + timeout
            while blocks() != n:
                if time.time() > deadline:
                    raise TestFailure("%s: %d memory blocks added, expected %d" %
                                      (what, blocks(), n))
                time.sleep(0.2)

        vm.resize("vmem0", "1G")
        wait_blocks(8, "1 GiB plugged")
        # the second big block: 4 memory blocks go in, the 5th fails, and
        # the rollback cannot offline the 4 (if it could after all, the
        # driver unplugs the big block and plugs it again: re-arm)
        vm.sh("echo -16 > " + INJECT)
        for attempt in range(4):
            vm.sh("echo 4 > %s/add_pass && echo 1 > %s/add_fail" % (knobs, knobs))
            if not attempt:
                vm.request("vmem0", "2G")
            deadline = time.time() + 15
            while time.time() < deadline:
                partly = vm.sh("dmesg | grep -c 'partly added'", check=False)["out"].strip()
                if partly not in ("", "0") and blocks() == 12:
                    break
                time.sleep(0.5)
            else:
                continue
            break
        else:
            raise TestFailure("could not leave the second big block partly added")
        t.log("# second big block partly added (attempt %d): 4 memory blocks" % (attempt + 1))
        # adding keeps failing; offlining works again: a rollback that
        # removed blocks it did not add would now take the 4 away
        vm.sh("echo 0 > " + INJECT)
        failures = int(memplug_attrs(vm)["add_failures"])
        deadline = time.time() + 60
        while int(memplug_attrs(vm)["add_failures"]) < failures + 1:
            if time.time() > deadline:
                raise TestFailure("the driver did not retry adding")
            time.sleep(0.5)
        if blocks() != 12:
            raise TestFailure("a failed add removed memory blocks it had not added: "
                              "%d left, expected 12" % blocks())
        t.log("# adds failing: the 4 memory blocks added before stay")
        vm.sh("echo 0 > %s/add_fail" % knobs)
        vm.resize("vmem0", "2G", timeout=120)
        wait_blocks(16, "2 GiB plugged")
        vm.resize("vmem0", 0, timeout=120)
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


@scenario("unplug_refused_taken_pages_back_sbm", memplug_only=True, tags=("fault", "sbm"))
def taken_pages_back_sbm(t):
    """SBM with a filler holding memory in the device's range: unplugging
    takes used sub blocks with alloc_contig_range() first. The device
    refuses every UNPLUG (NACK), then loses every answer (ERROR: the
    sub blocks become held, STATE answers are lost too). The taken pages
    go back to Linux (free_contig_range(), not the onlining path) or
    are plugged again later; each time the guest converges with MemTotal
    exact, the filler's data intact and a clean kernel log (no bad page,
    refcount or KASAN reports)."""
    with t.vm([Device("vmem0", "8G", "2M")], module="memplug-fi") as vm:
        knobs = vm.sh("echo /sys/kernel/debug/memplug/virtio*")["out"].strip()
        if vm.sh("test -f %s/fault_every" % knobs, check=False)["rc"] != 0:
            raise TestFailure("no fault injection knobs in %s" % knobs)
        vm.baseline()
        vm.resize("vmem0", "1G")
        vm.wait_memory(GiB, "Movable")
        # 512 MiB: in the plugged (movable) range, so the shrink to 512 MiB
        # must take used sub blocks, and small enough that the boot memory
        # keeps room for the memmap of the regrowth (else the growth guard
        # rightly stops it)
        start_filler(vm, 512, seed=5)
        for kind, what in ((1, "NACK"), (3, "ERROR")):
            injected = int(vm.sh("cat %s/injected" % knobs)["out"])
            vm.sh("echo %d > %s/fault_kind && echo 1 > %s/fault_every" % (kind, knobs, knobs))
            vm.request("vmem0", "512M")
            time.sleep(6)
            vm.sh("echo 0 > %s/fault_every" % knobs)
            hit = int(vm.sh("cat %s/injected" % knobs)["out"]) - injected
            if not hit:
                raise TestFailure("%s: no request was hit" % what)
            t.log("# %s: %d requests hit" % (what, hit))
            vm.resize("vmem0", "512M", timeout=180)
            vm.wait_memory(512 * MiB, "Movable")
            vm.resize("vmem0", "1G", timeout=180)
            vm.wait_memory(GiB, "Movable")
        stop_filler_clean(t, vm, min_passes=1)
        vm.resize("vmem0", 0, timeout=180)
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


def unplug_takes_only_used(t, block):
    """Unplug everything while a small filler lives in the plugged range:
    only the memory blocks in use are taken (migrated) before the units
    are offlined; free memory blocks are offlined and removed first, so
    nothing migrated lands in them. Taking whole big blocks (the kernel's
    driver, memplug before) zeroes every free page and migrates the
    filler from memory block to memory block inside the big block. The
    filler's data survives byte for byte."""
    with t.vm([Device("vmem0", "8G", block)]) as vm:
        vm.baseline()
        vm.resize("vmem0", "2G")
        vm.wait_memory(2 * GiB, "Movable")
        # movable allocations go to ZONE_MOVABLE first: the plugged range
        start_filler(vm, 96, seed=3)
        before = memplug_attrs(vm)
        vm.resize("vmem0", 0, timeout=180)
        vm.wait_memory(0)
        after = memplug_attrs(vm)
        taken = (int(after["taken_pages"]) - int(before["taken_pages"])) * 4096
        t.log("# unplugged 2 GiB with 96 MiB in use: %s taken, fast unplugs %s -> %s" %
              (human(taken), before["fast_unplugs"], after["fast_unplugs"]))
        if taken < 96 * MiB:
            raise TestFailure("only %s taken, but the filler's 96 MiB lived in the "
                              "plugged range: was its memory offlined with migration?"
                              % human(taken))
        if taken >= 512 * MiB:
            raise TestFailure("%s taken to unplug 2 GiB with 96 MiB in use: free "
                              "memory was taken too" % human(taken))
        stop_filler_clean(t, vm, min_passes=1)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


@scenario("unplug_takes_only_memory_in_use_bbm", memplug_only=True, tags=("filler", "bbm"))
def takes_only_used_bbm(t):
    unplug_takes_only_used(t, "1G")


@scenario("unplug_takes_only_memory_in_use_sbm", memplug_only=True, tags=("filler", "sbm"))
def takes_only_used_sbm(t):
    unplug_takes_only_used(t, "2M")


@scenario("resize_during_migration", reference_long=True, tags=("migration",))
def migration(t):
    """Resize while QEMU live-migrates the VM (the device answers BUSY
    meanwhile), then again on the destination: the driver waits BUSY out
    and converges, and a verifying workload sees no corruption."""
    with t.vm([Device("vmem0", "8G", "1G")]) as vm:
        vm.baseline()
        vm.resize("vmem0", "2G")
        vm.wait_memory(2 * GiB, "Movable")
        start_filler(vm, 256)
        # The filler is stopped while QEMU migrates and resumed after: its
        # pattern is verified on the destination, but it does not rewrite
        # memory during the migration.  QEMU 7.2 (TCG) migrating a guest
        # that rewrites 256 MiB in a loop hands the destination corrupted
        # kernel data in about 1 run of 7 (timer and run-queue lists in the
        # per-CPU areas, panics within a second), with either driver and
        # both kernels, and never with the guest at rest (docs/testbed.md).
        filler = vm.agent("fill-status")["pid"]
        if not filler:
            # kill 0 would stop the agent's whole process group
            raise TestFailure("filler not running before the migration")
        vm.sh("kill -STOP %d" % filler)

        def during(v):
            time.sleep(0.5)
            v.request("vmem0", "3G")
        took = vm.migrate(during, bandwidth=256 * MiB)
        vm.sh("kill -CONT %d" % filler)
        if vm.migration_status_after_during not in ("active", "device", "completed"):
            raise TestFailure("migration was %s when the resize was requested" %
                              vm.migration_status_after_during)
        t.log("# migration took %.1fs (status after the resize request: %s)" %
              (took, vm.migration_status_after_during))
        vm.resize("vmem0", "3G", timeout=180)
        vm.wait_memory(3 * GiB, "Movable")
        vm.resize("vmem0", "1G", timeout=180)
        vm.wait_memory(1 * GiB, "Movable")
        stop_filler_clean(t, vm)
        vm.resize("vmem0", 0, timeout=180)
        vm.wait_memory(0)
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


UNPLUG_GUARD_RE = re.compile(r"blocked: unit (\d+) has (\d+) KiB in use, (\d+) KiB available "
                             r"elsewhere, headroom (\d+) KiB")


def check_unplug_guard_blocked(t, vm):
    """While the unplug guard holds memory in use plugged, sysfs says so,
    with numbers that add up to a refusal, and counts it. Returns
    unplug_guard_last_blocked_ms."""
    a = memplug_attrs(vm)
    t.log("# unplug_guard: %s; no_room %s, retries %s, last blocked at %s ms" %
          (a.get("unplug_guard"), a.get("no_room"), a.get("retries"),
           a.get("unplug_guard_last_blocked_ms")))
    m = UNPLUG_GUARD_RE.fullmatch(a.get("unplug_guard", ""))
    if not m:
        raise TestFailure("unplug_guard reads %r while the unplug is held back" %
                          a.get("unplug_guard"))
    unit, used, avail, headroom = (int(x) for x in m.groups())
    if unit >= int(a["units"]) or not used or used + headroom <= avail or \
            headroom < max(used // 4, 8 * 1024):  # KiB: at least MP_UNPLUG_HEADROOM, 8 MiB
        raise TestFailure("unplug_guard numbers do not explain a refusal: %r" % a["unplug_guard"])
    if int(a["no_room"]) < 1 or int(a["retries"]) < 1:
        raise TestFailure("blocked, but no_room %s, retries %s" % (a["no_room"], a["retries"]))
    uptime_ms = float(vm.sh("cut -d' ' -f1 /proc/uptime")["out"]) * 1000
    last = int(a["unplug_guard_last_blocked_ms"])
    # it retries with backoff, at least every 30 s
    if not uptime_ms - 40000 < last <= uptime_ms + 1000:
        raise TestFailure("unplug_guard_last_blocked_ms %d, but uptime is %d ms" %
                          (last, uptime_ms))
    return last


def check_unplug_guard_ok(t, vm, blocked_at):
    """Request met: the guard holds nothing back any more, and remembers
    when it last did."""
    a = memplug_attrs(vm)
    t.log("# after the process left: unplug_guard %s, no_room %s, last blocked at %s ms" %
          (a.get("unplug_guard"), a.get("no_room"), a.get("unplug_guard_last_blocked_ms")))
    if a.get("unplug_guard") != "ok":
        raise TestFailure("unplug_guard reads %r with the request met" % a.get("unplug_guard"))
    if int(a.get("unplug_guard_last_blocked_ms", 0)) < blocked_at:
        raise TestFailure("unplug_guard_last_blocked_ms went back from %d to %s" %
                          (blocked_at, a.get("unplug_guard_last_blocked_ms")))


@scenario("integrity_soak", tags=("soak", "long"))
def soak(t):
    """Long: 200 random resize cycles in SBM and BBM with a verifying filler
    running throughout; 0 corrupted bytes, final size exactly the last
    request."""
    import random
    rnd = random.Random(99)
    for block in ("2M", "1G"):
        bs = parse_size(block)
        with t.vm([Device("vmem0", "8G", block)]) as vm:
            vm.baseline()
            vm.resize("vmem0", "2G")
            start_filler(vm, 1024)
            for _ in range(int(os.environ.get("SOAK_CYCLES", "200")) // 2):
                target = rnd.randrange(2 * GiB // bs, 5 * GiB // bs + 1) * bs
                vm.resize("vmem0", target, timeout=240)
            vm.wait_memory(target, "Movable")
            stop_filler_clean(t, vm)
            vm.resize("vmem0", 0, timeout=240)
            vm.wait_memory(0)
            vm.check_kernel_log()


@scenario("dkms_built_module_boots", memplug_only=True, tags=("dkms",))
def dkms_module(t):
    """The module as DKMS builds it (tests/dkms/run.sh leaves it in
    build/<kernel>/dkms/) loads in the guest and plugs and unplugs."""
    import subprocess
    import tempfile
    from testbed import BUILD, CACHE, TOP
    ko = os.path.join(BUILD, t.release, "dkms", "memplug.ko")
    if not os.path.exists(ko):
        raise TestFailure("no DKMS-built module at %s (run tests/dkms/run.sh first)" % ko)
    with tempfile.TemporaryDirectory() as d:
        initrd = os.path.join(d, "initramfs.gz")
        subprocess.run([os.path.join(TOP, "tests", "vm", "mkinitramfs.sh"), t.release,
                        os.path.join(CACHE, "kernels", t.release),
                        os.path.join(TOP, "tests", "vm", "agent", "memplug-agent"), initrd, ko],
                       check=True)
        with t.vm([Device("vmem0", "8G", "1G")], initrd=initrd) as vm:
            info = vm.sh("grep -c '^memplug ' /proc/modules")
            if info["out"].strip() != "1":
                raise TestFailure("memplug is not loaded")
            vm.baseline()
            vm.resize("vmem0", "2G")
            vm.wait_memory(2 * GiB, "Movable")
            vm.resize("vmem0", 0)
            vm.wait_memory(0)
            # the throwaway DKMS signing key taints the kernel: expected, and
            # not one of the problems check_kernel_log looks for
            vm.check_kernel_log()


@scenario("guest_tool_reports_sysfs_state", memplug_only=True, tags=("tool", "bbm"))
def guest_tool(t):
    """memplugctl guest, the static build scripts/build.sh puts in the
    initramfs as /bin/memplugctl, reads memplug's sysfs attributes inside the
    guest: after a resize to 2 GiB in big block mode it reports mode bbm,
    2 GiB requested and plugged, the same as the host sees over QMP."""
    import json
    import re
    with t.vm([Device("vmem0", "8G", "1G")]) as vm:
        if vm.sh("test -x /bin/memplugctl", check=False)["rc"] != 0:
            raise TestFailure("no /bin/memplugctl in the initramfs (run scripts/build.sh)")
        vm.baseline()
        vm.resize("vmem0", "2G")
        vm.wait_memory(2 * GiB, "Movable")
        r = vm.sh("memplugctl guest --json 2>/tmp/guest.err", check=False)
        err = vm.sh("cat /tmp/guest.err", check=False)["out"].strip()
        if r["rc"] != 0:
            raise TestFailure("memplugctl guest --json failed (%d): %s" % (r["rc"], err))
        lines = r["out"].strip().splitlines()
        if len(lines) != 1:
            raise TestFailure("expected one JSON line (one device), got %r" % r["out"][:500])
        st = json.loads(lines[0])
        t.log("# guest: %s" % lines[0][:300])
        host = vm.plugged("vmem0")
        want = {"driver": "memplug", "mode": "bbm", "requested_size": 2 * GiB,
                "plugged_size": 2 * GiB, "device_plugged_size": 2 * GiB,
                "device_block_size": GiB, "region_size": 8 * GiB, "units_added": 2}
        bad = ["%s=%r (expected %r)" % (k, st.get(k), v) for k, v in want.items()
               if st.get(k) != v]
        if st.get("plugged_size") != host:
            bad.append("plugged_size=%r but the host says %d" % (st.get("plugged_size"), host))
        states = st.get("unit_states")
        if not isinstance(states, dict) or sum(states.values()) != st.get("units"):
            bad.append("unit_states %r do not add up to units=%r" % (states, st.get("units")))
        if "problems" in st or err:
            bad.append("problems reported: %r %s" % (st.get("problems"), err))
        if bad:
            raise TestFailure("memplugctl guest --json: " + "; ".join(bad))
        human = vm.sh("memplugctl guest 2>&1")["out"]
        if not re.search(r"plugged size: +2 GiB \(2147483648\)\n", human) or \
                "bbm (big block mode)" not in human:
            raise TestFailure("memplugctl guest output lacks mode/plugged size: %r" % human[:800])
        vm.check_kernel_log()


@scenario("reboot_with_memory_plugged", reference_long=True, tags=("lifecycle",))
def reboot_plugged(t):
    """The guest reboots with memory plugged (QEMU resets the device to
    nothing plugged): after the reboot the driver plugs the requested size
    again and the guest has exactly that."""
    with t.vm([Device("vmem0", "8G", "1G"), Device("vmem1", "4G", "2M")],
              allow_reboot=True) as vm:
        vm.baseline()
        vm.resize("vmem0", "2G")
        vm.resize("vmem1", "512M")
        vm.wait_memory(2 * GiB + 512 * MiB, "Movable")
        vm.reboot()
        deadline = time.time() + 60
        while vm.plugged("vmem0") != 2 * GiB or vm.plugged("vmem1") != 512 * MiB:
            if time.time() > deadline:
                raise TestFailure("after reboot: vmem0 %s, vmem1 %s plugged" %
                                  (human(vm.plugged("vmem0")), human(vm.plugged("vmem1"))))
            time.sleep(0.2)
        # a second boot may reserve a few pages more or less of boot memory
        vm.wait_memory(2 * GiB + 512 * MiB, "Movable", total_slack=MiB)
        vm.resize("vmem0", 0)
        vm.resize("vmem1", 0)
        vm.wait_memory(0, total_slack=MiB)
        vm.check_kernel_log()


@scenario("rmmod_insmod_loop_under_load", memplug_only=True, tags=("lifecycle",))
def rmmod_loop(t):
    """rmmod/insmod five times with memory plugged and a verifying filler
    running: each unload either completes (all memory returned) or is
    refused cleanly; after each reload the driver converges again; the
    filler never sees a corrupted byte."""
    with t.vm([Device("vmem0", "8G", "1G")]) as vm:
        vm.baseline()
        vm.resize("vmem0", "2G")
        vm.wait_memory(2 * GiB, "Movable")
        start_filler(vm, 768)
        unloaded = refused = 0
        for i in range(5):
            r = vm.sh("rmmod memplug 2>&1", check=False)
            if r["rc"] == 0:
                unloaded += 1
                if vm.plugged("vmem0") != 0:
                    raise TestFailure("unloaded with %s still plugged" %
                                      human(vm.plugged("vmem0")))
                vm.wait_memory(0)
                vm.sh(". /etc/load.sh; load memplug")
            else:
                refused += 1
            vm.resize("vmem0", "2G" if i % 2 else "1G", timeout=180)
            vm.wait_memory((2 if i % 2 else 1) * GiB, "Movable")
        t.log("# rmmod: %d unloads, %d clean refusals" % (unloaded, refused))
        stop_filler_clean(t, vm)
        vm.resize("vmem0", 0, timeout=180)
        vm.wait_memory(0)
        vm.check_kernel_log()


FAULT_KINDS = {1: ("NACK", "nacks"), 2: ("BUSY", "busy_answers"), 3: ("ERROR", "error_answers"),
               4: ("malformed answer", "bad_answers"), 5: ("no answer", "bad_answers")}


def device_fault_cycle(t, block):
    """The device's answers go wrong: memplug's test-only fault injection
    (memplug-fi.ko, built with MEMPLUG_FAULT_INJECT=1; knobs in debugfs)
    turns every third request into NACK, BUSY, ERROR, a malformed answer
    or no answer. NACK and BUSY are answered without sending the request;
    ERROR, malformed and missing answers replace the answer of a request
    the device did carry out, so the driver has to find out what really
    happened. For each kind the driver still converges, both ways, the
    guest holds exactly what the device has plugged, the device holds
    exactly the requested size (nothing plugged leaks, nothing is used
    that the device did not plug), and the fault shows in the driver's
    counters."""
    big = parse_size(block) >= GiB
    with t.vm([Device("vmem0", "8G", block)], driver_args="req_timeout_ms=500",
              module="memplug-fi") as vm:
        knobs = vm.sh("echo /sys/kernel/debug/memplug/virtio*")["out"].strip()
        if vm.sh("test -f %s/fault_every" % knobs, check=False)["rc"] != 0:
            raise TestFailure("no fault injection knobs in %s (memplug-fi.ko missing? "
                              "run scripts/build.sh)" % knobs)

        def attr(name):
            return int(vm.state()["virtio_mem"][0]["attrs"][name])

        def knob(name):
            return int(vm.sh("cat %s/%s" % (knobs, name))["out"].strip())

        def converged(size, zone):
            vm.wait_memory(size, zone)
            plugged = vm.plugged("vmem0")
            if plugged != size:
                raise TestFailure("device has %s plugged, %s requested" %
                                  (human(plugged), human(size)))
            deadline = time.time() + 30
            while attr("plugged_size") != size or attr("sub_blocks_held"):
                if time.time() > deadline:
                    raise TestFailure("driver: plugged_size %s, %d sub blocks held, %s requested" %
                                      (human(attr("plugged_size")), attr("sub_blocks_held"),
                                       human(size)))
                time.sleep(0.2)

        def steps(a, b):
            if big:
                return [b]
            n = 4 if b > a else 3
            return [a + (b - a) * i // n for i in range(1, n + 1)]

        vm.baseline()
        hi, lo = (3 * GiB, GiB) if big else (GiB, 256 * MiB)
        for kind, (what, counter) in FAULT_KINDS.items():
            before = attr(counter)
            states = attr("state_requests")
            injected = knob("injected")
            # every third, not every second: a driver that resolves an
            # ambiguous answer with STATE before retrying would otherwise
            # have its every retry hit, by parity alone
            vm.sh("echo %d > %s/fault_kind && echo 3 > %s/fault_every" % (kind, knobs, knobs))
            # SBM plugs and unplugs up to 1 GiB with one request: go in
            # steps, so that some requests are hit in each direction
            for size in steps(0, hi):
                vm.resize("vmem0", size, timeout=180)
            converged(hi, "Movable")
            for size in steps(hi, lo):
                vm.resize("vmem0", size, timeout=180)
            converged(lo, "Movable")
            vm.sh("echo 0 > %s/fault_every" % knobs)
            vm.resize("vmem0", 0, timeout=180)
            converged(0, None)
            after = attr(counter)
            if after <= before:
                raise TestFailure("%s injected but %s did not grow (%d)" % (what, counter, after))
            if knob("injected") <= injected:
                raise TestFailure("%s: no request was hit" % what)
            if kind >= 3 and attr("state_requests") <= states:
                raise TestFailure("%s: ambiguous answers but no STATE request resolved them" % what)
            t.log("# %s: converged both ways, nothing leaked, %s %d -> %d, %d injected" %
                  (what, counter, before, after, knob("injected") - injected))
        vm.check_kernel_log()


@scenario("device_answer_faults_sbm", memplug_only=True, tags=("fault", "sbm"))
def device_faults_sbm(t):
    device_fault_cycle(t, "2M")


@scenario("device_answer_faults_bbm", memplug_only=True, tags=("fault", "bbm"))
def device_faults_bbm(t):
    device_fault_cycle(t, "1G")


def fi_knobs(vm):
    """The memplug-fi debugfs directory of the (only) device."""
    knobs = vm.sh("echo /sys/kernel/debug/memplug/virtio*")["out"].strip()
    if vm.sh("test -f %s/fault_types" % knobs, check=False)["rc"] != 0:
        raise TestFailure("no fault injection knobs in %s (memplug-fi.ko missing? "
                          "run scripts/build.sh)" % knobs)
    return knobs


def fi_attr(vm, name):
    return int(vm.state()["virtio_mem"][0]["attrs"][name])


def wait_for(t, what, cond, timeout=60):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise TestFailure("timed out waiting for: " + what)
        time.sleep(0.2)


@scenario("held_block_does_not_stop_shrink", memplug_only=True, tags=("fault", "bbm"))
def held_block_does_not_stop_shrink(t):
    """A held big block the device cannot tell about (its STATE request is
    answered BUSY, as during a migration, or ERROR) must not stop the
    rest: memplug-fi answers a PLUG with ERROR after the device did plug
    it (the block is held) and every STATE with ERROR, then only STATE
    with BUSY; a shrink to 0 still removes and unplugs every other big
    block, so the device keeps exactly the held one. Once the fault is
    lifted the held block is resolved and unplugged too."""
    with t.vm([Device("vmem0", "8G", "1G")], driver_args="req_timeout_ms=500",
              module="memplug-fi") as vm:
        knobs = fi_knobs(vm)
        vm.baseline()
        vm.resize("vmem0", "2G")
        vm.wait_memory(2 * GiB, "Movable")
        # PLUG (bit 0) and STATE (bit 3) answered ERROR: the next big block
        # is plugged on the device but held, and stays held
        vm.sh("echo 9 > %s/fault_types && echo 3 > %s/fault_kind && echo 1 > %s/fault_every"
              % (knobs, knobs, knobs))
        vm.request("vmem0", "3G")
        wait_for(t, "one held big block, 3 GiB plugged on the device",
                 lambda: fi_attr(vm, "sub_blocks_held") == 1 and vm.plugged("vmem0") == 3 * GiB)
        errors = fi_attr(vm, "error_answers")
        # now only STATE fails, with BUSY
        vm.sh("echo 8 > %s/fault_types && echo 2 > %s/fault_kind" % (knobs, knobs))
        busy = fi_attr(vm, "busy_answers")
        vm.request("vmem0", 0)
        wait_for(t, "device down to the held big block (1 GiB)",
                 lambda: vm.plugged("vmem0") == GiB)
        vm.wait_memory(0)
        hold_still(vm, "vmem0", GiB, "STATE answered BUSY", seconds=3)
        if fi_attr(vm, "sub_blocks_held") != 1:
            raise TestFailure("held block resolved although STATE failed")
        if fi_attr(vm, "busy_answers") <= busy:
            raise TestFailure("no STATE request was answered BUSY")
        t.log("# STATE failing (%d ERROR, then BUSY): shrank to the held big block only"
              % (fi_attr(vm, "error_answers") - errors + 1))
        vm.sh("echo 0 > %s/fault_every" % knobs)
        t0 = time.time()
        wait_for(t, "held block resolved and unplugged after the fault was lifted",
                 lambda: vm.plugged("vmem0") == 0 and fi_attr(vm, "sub_blocks_held") == 0,
                 timeout=90)
        t.log("# fault lifted: device at 0 after %.1fs" % (time.time() - t0))
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


@scenario("device_never_answers", memplug_only=True, tags=("fault", "bbm"))
def device_never_answers(t):
    """The device never gives a request's buffer back: memplug-fi swallows
    every third request before the device sees it (so QEMU is not
    confused), the driver times out and every later request finds the
    buffer still out. After a few tries and one more timeout the driver
    resets the device, re-creates the queue and resolves the held blocks
    with STATE: it converges both ways, the device holds exactly the
    requested size, and the resets show in device_resets."""
    with t.vm([Device("vmem0", "8G", "1G")], driver_args="req_timeout_ms=500",
              module="memplug-fi") as vm:
        knobs = fi_knobs(vm)

        def converged(size):
            vm.wait_memory(size, "Movable" if size else None)
            if vm.plugged("vmem0") != size:
                raise TestFailure("device has %s plugged, %s requested" %
                                  (human(vm.plugged("vmem0")), human(size)))
            wait_for(t, "driver at %s, nothing held" % human(size),
                     lambda: fi_attr(vm, "plugged_size") == size and
                     not fi_attr(vm, "sub_blocks_held"), timeout=30)

        def injected():
            return int(vm.sh("cat %s/injected" % knobs)["out"].strip())

        vm.baseline()
        vm.sh("echo 6 > %s/fault_kind" % knobs)
        # a fixed "every Nth" can lock step with the driver's retry cycle
        # (swallow, reset, the same request again): swallow for a while in
        # each direction, then let it converge
        for size, every in ((3 * GiB, 3), (GiB, 1), (2 * GiB, 1), (0, 1)):
            inj, resets = injected(), fi_attr(vm, "device_resets")
            vm.sh("echo %d > %s/fault_every" % (every, knobs))
            vm.request("vmem0", size)
            wait_for(t, "a swallowed request and a device reset",
                     lambda: injected() > inj and fi_attr(vm, "device_resets") > resets,
                     timeout=60)
            vm.sh("echo 0 > %s/fault_every" % knobs)
            vm.resize("vmem0", size, timeout=120)
            converged(size)
            t.log("# to %s: %d requests never answered, %d device resets, converged" %
                  (human(size), injected() - inj, fi_attr(vm, "device_resets") - resets))
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


@scenario("state_reads_while_device_is_stuck", memplug_only=True, tags=("fault", "sbm", "sysfs"))
def state_reads_while_device_is_stuck(t):
    """Reading the driver's state never waits for the device. With
    req_timeout_ms=20000 memplug-fi swallows a PLUG: the worker waits 20 s
    for an answer that never comes. Meanwhile every file of the device's
    memplug sysfs directory reads at once (a plain cat, as any user may),
    before the request times out. Then the fault is lifted and the driver
    converges to the requested size."""
    timeout_s = 20
    with t.vm([Device("vmem0", "4G", "2M")], driver_args="req_timeout_ms=%d" % (timeout_s * 1000),
              module="memplug-fi") as vm:
        knobs = fi_knobs(vm)
        attrs = vm.sh("echo /sys/bus/virtio/drivers/memplug/virtio*/memplug")["out"].strip()
        vm.baseline()
        vm.resize("vmem0", "256M")
        vm.wait_memory(256 * MiB, "Movable")
        injected = lambda: int(vm.sh("cat %s/injected" % knobs)["out"].strip())
        # PLUG requests (bit 0) are swallowed: never answered
        vm.sh("echo 1 > %s/fault_types && echo 6 > %s/fault_kind && echo 1 > %s/fault_every"
              % (knobs, knobs, knobs))
        bad = int(vm.sh("cat %s/bad_answers" % attrs)["out"].strip())
        vm.request("vmem0", "512M")
        wait_for(t, "a swallowed PLUG", lambda: injected() > 0, timeout=30)
        t0 = time.time()
        out = vm.sh("for f in %s/*; do echo \"$f $(cat $f)\"; done" % attrs, timeout=60)["out"]
        took = time.time() - t0
        t.log("# %d sysfs files read in %.2f s during a %d s device wait" %
              (len(out.splitlines()), took, timeout_s))
        if int(vm.sh("cat %s/bad_answers" % attrs)["out"].strip()) != bad:
            raise TestFailure("the swallowed PLUG timed out before the reads ended: "
                              "they waited for the device")
        if took > timeout_s / 4:
            raise TestFailure("reading sysfs took %.1f s while a request waited for the device"
                              % took)
        if len(out.splitlines()) < 30:
            raise TestFailure("only %d sysfs files in %s" % (len(out.splitlines()), attrs))
        vm.sh("echo 0 > %s/fault_every" % knobs)
        vm.resize("vmem0", "512M", timeout=timeout_s * 3 + 60)
        vm.wait_memory(512 * MiB, "Movable")
        vm.resize("vmem0", 0)
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


@scenario("pinned_page_does_not_hang_offlining", memplug_only=True, tags=("fault", "bbm"))
def pinned_page_does_not_hang_offlining(t):
    """Offlining retries a page that does not migrate until it is
    interrupted. memplug's walk keeps pages in use away from offlining
    (they are taken first, which gives up), but the walk is a snapshot: a
    page pinned after it is offlining's. memplug-fi's blind_walk makes the
    walk see nothing in use while the agent holds 64 MiB of the device's
    memory referenced by pipes (vmsplice): with remove_timeout_ms=3000 the
    offlining is interrupted and fails, the memory stays, and the driver
    tries again; memory hotplug in the guest is not stuck. With the real
    walk the pinned pages are taken (and fail) instead; once they are
    released the device shrinks to 0."""
    with t.vm([Device("vmem0", "8G", "1G")], driver_args="remove_timeout_ms=3000",
              module="memplug-fi") as vm:
        knobs = fi_knobs(vm)
        vm.baseline()
        vm.resize("vmem0", "1G")
        vm.wait_memory(GiB, "Movable")
        attrs = vm.state()["virtio_mem"][0]["attrs"]
        lo = int(attrs["region_addr"])
        hi = lo + int(attrs["region_size"])
        pin = vm.agent("pin 64 %x %x" % (lo, hi))
        t.log("# pinned %d pages, %d of them in the device's memory" %
              (pin["pages"], pin["in_range"]))
        if not pin["in_range"]:
            raise TestFailure("no pinned page landed in the device's memory")
        vm.sh("echo 1 > %s/blind_walk" % knobs)
        vm.request("vmem0", 0)
        wait_for(t, "an offlining given up after remove_timeout_ms",
                 lambda: fi_attr(vm, "remove_failures") >= 1, timeout=60)
        if fi_attr(vm, "remove_timeouts") < 1:
            raise TestFailure("offlining failed, but not by remove_timeout_ms")
        # the guest's memory hotplug is not stuck behind it
        blocks = vm.sh("cat /sys/devices/system/memory/memory*/state | sort | uniq -c",
                       timeout=30)["out"]
        t.log("# memory block states after the interruption: %s" % " ".join(blocks.split()))
        if vm.plugged("vmem0") != GiB:
            raise TestFailure("device has %s plugged with pinned pages in it" %
                              human(vm.plugged("vmem0")))
        vm.sh("echo 0 > %s/blind_walk" % knobs)
        contig = fi_attr(vm, "contig_failures")
        wait_for(t, "the real walk taking the pinned pages and failing",
                 lambda: fi_attr(vm, "contig_failures") > contig, timeout=60)
        hold_still(vm, "vmem0", GiB, "pages pinned", seconds=3)
        t.log("# %d offlinings interrupted, %d takes failed on pinned pages" %
              (fi_attr(vm, "remove_timeouts"), fi_attr(vm, "contig_failures")))
        vm.agent("unpin")
        vm.resize("vmem0", 0, timeout=120)
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


@scenario("rmmod_races_first_add", memplug_only=True, tags=("lifecycle", "fault"))
def rmmod_races_first_add(t):
    """rmmod right while the first memory is being added, with offlining
    failing (memory-notifier-error-inject: MEM_GOING_OFFLINE -EBUSY): the
    driver takes its module reference before plugging, so rmmod either
    fails (memory added, module pinned) or wins and nothing is added; the
    module never goes away leaving memory whose notifier and online page
    callback were in it. Afterwards a block is offlined and onlined by
    hand: no oops."""
    with t.vm([Device("vmem0", "8G", "1G")]) as vm:
        vm.sh(". /etc/load.sh; load memory-notifier-error-inject")
        vm.baseline()
        unloaded = refused = 0
        for i in range(6):
            vm.sh("echo -16 > " + INJECT)
            # rmmod as soon as the worker has picked up the new size, i.e.
            # while it plugs and adds the first big block
            vm.sh("rm -f /tmp/rr; (f=/sys/bus/virtio/devices/virtio0/memplug/requested_size; "
                  "while [ \"$(cat $f 2>/dev/null)\" = 0 ]; do :; done; "
                  "for i in $(seq 300); do rmmod memplug 2>/dev/null && "
                  "{ echo unloaded >> /tmp/rr; break; }; done; echo done >> /tmp/rr) "
                  ">/dev/null 2>&1 &")
            vm.request("vmem0", "2G")
            wait_for(t, "the rmmod loop", lambda: "done" in
                     vm.sh("cat /tmp/rr 2>/dev/null; true")["out"], timeout=60)
            r = vm.sh("cat /tmp/rr")
            vm.sh("echo 0 > " + INJECT)
            gone = "unloaded" in r["out"]
            if gone:
                unloaded += 1
                blocks = vm.state()["memory_blocks"]["total"]
                if blocks != vm.base["memory_blocks"]["total"]:
                    raise TestFailure("module unloaded with %d memory blocks left in Linux" %
                                      (blocks - vm.base["memory_blocks"]["total"]))
                vm.sh(". /etc/load.sh; load memplug")
            else:
                refused += 1
            vm.resize("vmem0", "2G", timeout=120)
            vm.wait_memory(2 * GiB, "Movable")
            # offline and online one of our blocks by hand: runs the notifier
            first = int(vm.state()["virtio_mem"][0]["attrs"]["region_addr"]) // (128 * MiB)
            r = vm.sh("for b in /sys/devices/system/memory/memory*; do "
                      "n=${b##*memory}; [ $n -ge %d ] && " % first +
                      "[ \"$(cat $b/state)\" = online ] && "
                      "echo offline > $b/state && echo online_movable > $b/state && "
                      "{ echo $n; break; }; done; true")
            vm.resize("vmem0", 0, timeout=120)
            vm.wait_memory(0)
        t.log("# rmmod racing the first add: %d unloads, %d clean refusals" % (unloaded, refused))
        vm.check_kernel_log()


# Malformed device config: QEMU always offers a valid one, so memplug-fi
# corrupts one field of the config as the driver reads it: at probe through
# the module parameter fi_bad_config=<field>, at runtime through the debugfs
# knob bad_config (every config read after a config-change interrupt, until
# set back to "none"). Each corruption is one the validator must catch.
BAD_CONFIG_FIELDS = ("block_size", "addr", "region_size", "usable_region_size",
                     "plugged_size", "requested_size")


def config_errors(vm, field):
    """The driver's "invalid device config: <field>=0x..." lines so far."""
    out = vm.sh("dmesg")["out"]
    return [ln for ln in out.splitlines() if "invalid device config: %s=0x" % field in ln]


def wait_config_error(t, vm, field, before, timeout=30):
    """Wait for one more such line than `before`; exactly one more."""
    deadline = time.time() + timeout
    while len(config_errors(vm, field)) == before:
        if time.time() > deadline:
            raise TestFailure("no \"invalid device config: %s=...\" message within %ds" %
                              (field, timeout))
        time.sleep(0.5)
    time.sleep(3)       # a second message would show by now
    lines = config_errors(vm, field)
    if len(lines) != before + 1:
        raise TestFailure("%d \"invalid device config: %s=\" messages, expected one: %s" %
                          (len(lines) - before, field, " | ".join(lines[before:])))
    t.log("# %s: %s" % (field, lines[-1].strip()))


def driver_of(vm):
    return vm.state()["virtio_mem"][0]["driver"]


def hold_still(vm, dev_id, size, what, seconds=5):
    """For `seconds`, the device keeps exactly `size` plugged."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        got = vm.plugged(dev_id)
        if got != size:
            raise TestFailure("%s: device has %s plugged, expected it to stay at %s" %
                              (what, human(got), human(size)))
        time.sleep(1)


def iomem_entries(vm):
    """/proc/iomem as [(depth, start, end, name)]."""
    out = []
    for line in vm.sh("cat /proc/iomem")["out"].splitlines():
        m = re.match(r"^( *)([0-9a-f]+)-([0-9a-f]+) : (.*)$", line)
        if m:
            out.append((len(m.group(1)) // 2, int(m.group(2), 16), int(m.group(3), 16),
                        m.group(4)))
    return out


@scenario("region_claimed_in_iomem", tags=("resource", "bbm"))
def region_claimed(t):
    """The driver claims the whole device region in /proc/iomem, as a
    driver claims its device's memory (the kernel's does too): a second
    driver finds it taken, /dev/mem may not map it. The memory it adds
    nests inside that claim, and the claim is given up at unbind."""
    from testbed import QMP
    with t.vm([Device("vmem0", "4G", "1G")]) as vm:
        vm.baseline()
        q = QMP(vm.qmp)
        try:
            dev = [d["data"] for d in q.execute("query-memory-devices")
                   if d.get("type") == "virtio-mem"][0]
        finally:
            q.close()
        start, end = dev["memaddr"], dev["memaddr"] + dev["max-size"] - 1

        def claim():
            return [e for e in iomem_entries(vm) if e[1] == start and e[2] == end]
        c = claim()
        if not c:
            raise TestFailure("no /proc/iomem entry claims the region %x-%x" % (start, end))
        t.log("# region claimed as %r" % c[0][3])
        vm.resize("vmem0", "2G")
        vm.wait_memory(2 * GiB, "Movable")
        inside = [e for e in iomem_entries(vm)
                  if e[0] == c[0][0] + 1 and start <= e[1] <= e[2] <= end and
                  e[3] == "System RAM (virtio_mem)"]
        if sum(e[2] - e[1] + 1 for e in inside) != 2 * GiB:
            raise TestFailure("the 2 GiB added do not nest in the claim: %r" % inside)
        vm.resize("vmem0", 0)
        vm.wait_memory(0)
        if t.driver == "memplug":
            vm.sh("echo virtio0 > /sys/bus/virtio/drivers/memplug/unbind")
            if claim():
                raise TestFailure("the region is still claimed after unbind")
            vm.sh("echo virtio0 > /sys/bus/virtio/drivers/memplug/bind")
            if not claim():
                raise TestFailure("the region is not claimed again after bind")


def sleep_and_wake(vm, state, wake_after=3.0, timeout=60):
    """echo `state` > /sys/power/state in the guest; if it sleeps, wake it
    over QMP (system_wakeup) after wake_after seconds. Returns the shell's
    exit status and output (immediate when the kernel refused)."""
    from testbed import QMP
    vm.sock.sendall(("sh echo %s > /sys/power/state 2>&1\n" % state).encode())
    deadline = time.time() + wake_after
    while time.time() < deadline:
        vm.sock.settimeout(0.2)
        try:
            chunk = vm.sock.recv(65536)
            if chunk:
                vm.buf += chunk
        except OSError:
            pass
        if b"\n" in vm.buf:
            break
    if b"\n" not in vm.buf:
        q = QMP(vm.qmp)
        try:
            st = q.execute("query-status")["status"]
            if st == "suspended":
                q.execute("system_wakeup")
        finally:
            q.close()
    r = vm._read_reply(time.time() + timeout)
    return r["rc"], r["out"].strip()


@scenario("suspend_and_hibernate", tags=("pm", "bbm"))
def suspend_hibernate(t):
    """Power management with a virtio-mem device. Hibernation is refused
    (the device forgets plugged memory the image would hold), for memplug
    before the kernel freezes anything or preallocates the image. Suspend
    to RAM with memory plugged is refused (QEMU 7.2 does not offer
    VIRTIO_MEM_F_PERSISTENT_SUSPEND); with nothing plugged it sleeps, wakes
    up, and the driver resizes afterwards as before (the kernel's driver on
    6.1 refuses that too: logged, not failed)."""
    with t.vm([Device("vmem0", "4G", "1G")], qemu_args=["-global", "ICH9-LPC.disable_s3=0"],
              cmdline="mem_sleep_default=deep") as vm:
        vm.baseline()
        vm.resize("vmem0", "1G")
        vm.wait_memory(GiB, "Movable")
        rc, out = sleep_and_wake(vm, "disk")
        log = "\n".join(vm.kernel_log(200))
        t.log("# hibernation: exit %d %r" % (rc, out))
        if rc == 0:
            raise TestFailure("hibernation with a virtio-mem device was not refused")
        if t.driver == "memplug":
            if "hibernation is not supported with virtio-mem devices: refused" not in log:
                raise TestFailure("memplug did not refuse hibernation up front")
            if "Preallocating image memory" in log:
                raise TestFailure("hibernation got as far as preallocating the image")
        vm.wait_memory(GiB, "Movable")
        if "deep" not in vm.sh("cat /sys/power/mem_sleep")["out"]:
            raise Skip("no suspend to RAM in this guest (mem_sleep: %s)" %
                       vm.sh("cat /sys/power/mem_sleep")["out"].strip())
        rc, out = sleep_and_wake(vm, "mem")
        t.log("# suspend to RAM with 1 GiB plugged: exit %d %r" % (rc, out))
        if rc == 0 and vm.plugged("vmem0") != GiB:
            raise TestFailure("suspended with memory plugged and lost it")
        if t.driver == "memplug" and rc == 0:
            raise TestFailure("suspend to RAM with memory plugged was not refused")
        vm.resize("vmem0", 0)
        vm.wait_memory(0)
        rc, out = sleep_and_wake(vm, "mem")
        t.log("# suspend to RAM with nothing plugged: exit %d %r" % (rc, out))
        if rc != 0 and t.driver == "memplug":
            raise TestFailure("suspend to RAM with nothing plugged failed: %s" % out)
        vm.resize("vmem0", "2G")
        vm.wait_memory(2 * GiB, "Movable")
        vm.resize("vmem0", 0)
        vm.wait_memory(0)


@scenario("forced_unload_leaves_no_dangling_hooks", memplug_only=True, tags=("lifecycle", "bbm"))
def forced_unload_orphan(t):
    """Unbinding while offlining fails leaves an orphan: the memory stays
    added, the module pinned. rmmod -f (Debian kernels allow it) unloads
    anyway; the orphan's memory notifier and the online page callback must
    not be left pointing into the freed module: offlining and onlining
    that memory by hand afterwards works, and the guest stays healthy."""
    with t.vm([Device("vmem0", "4G", "1G")]) as vm:
        vm.sh(". /etc/load.sh; load memory-notifier-error-inject")
        vm.baseline()
        vm.resize("vmem0", "1G")
        vm.wait_memory(GiB, "Movable")
        vm.sh("echo -16 > " + INJECT)
        vm.sh("echo virtio0 > /sys/bus/virtio/drivers/memplug/unbind", timeout=60)
        if "stay added and the module stays loaded" not in vm.sh("dmesg")["out"]:
            raise TestFailure("unbinding with offlining failing left no orphan")
        r = vm.sh("rmmod -f memplug", check=False)
        if r["rc"] != 0:
            raise Skip("rmmod -f refused (no forced unload in this kernel): %s" % r["out"])
        vm.sh("echo 0 > " + INJECT)
        blocks = vm.sh("grep -l online /sys/devices/system/memory/memory*/state | "
                       "sed -n 's,.*/memory\\([0-9]*\\)/state,\\1,p' | sort -n | tail -n2")["out"].split()
        for b in blocks:
            vm.sh("echo offline > /sys/devices/system/memory/memory%s/state" % b)
            vm.sh("echo online_movable > /sys/devices/system/memory/memory%s/state" % b)
        t.log("# memory blocks %s offlined and onlined after the forced unload" % blocks)
        log = vm.sh("dmesg")["out"]
        if "module unloaded by force" not in log:
            raise TestFailure("the forced unload did not report the memory it left")
        vm.wait_memory(GiB, "Movable")
        # the forced unload taints the kernel and logs that; nothing else
        vm.health_at_exit = "no-log"
        problems = [p for p in vm.agent("dmesg")["problems"]]
        if problems:
            raise TestFailure("kernel log: %s" % " | ".join(problems[:5]))


@scenario("module_params_are_bounded", memplug_only=True, tags=("params", "bbm"))
def params_bounded(t):
    """Writable module parameters refuse values that would break the
    driver (req_timeout_ms=0 timed out every request at once) with EINVAL
    and keep their value; values inside the bounds are taken, and the
    driver still resizes."""
    par = "/sys/module/memplug/parameters/"
    with t.vm([Device("vmem0", "4G", "1G")]) as vm:
        vm.baseline()
        for name, bad, good in (("req_timeout_ms", ("0", "99", "600001", "-1", "x"), "5000"),
                                ("growth_reserve_mb", ("1048577", "-1", "x"), "32"),
                                ("remove_timeout_ms", ("0", "999", "3600001", "-1", "x"),
                                 "30000")):
            before = vm.sh("cat " + par + name)["out"].strip()
            for v in bad:
                r = vm.sh("echo %s > %s%s" % (v, par, name), check=False)
                now = vm.sh("cat " + par + name)["out"].strip()
                if r["rc"] == 0 or now != before:
                    raise TestFailure("%s=%s: write exit %d, value %s (was %s)" %
                                      (name, v, r["rc"], now, before))
            vm.sh("echo %s > %s%s" % (good, par, name))
            if vm.sh("cat " + par + name)["out"].strip() != good:
                raise TestFailure("%s=%s was not taken" % (name, good))
        vm.resize("vmem0", "2G")
        vm.wait_memory(2 * GiB, "Movable")
        vm.resize("vmem0", 0)
        vm.wait_memory(0)


@scenario("bad_config_at_probe", memplug_only=True, tags=("fault", "sbm"))
def bad_config_at_probe(t):
    """Every validated config field corrupted in turn at probe (memplug-fi
    loaded with fi_bad_config=<field>; the device asks for 1 GiB from
    boot on): exactly one error naming the field and its value, the device
    left without a driver, nothing ever plugged, the guest alive. After
    rmmod and insmod without the parameter the device works: the driver
    never gives up on it for good."""
    dev = Device("vmem0", "8G", "2M", requested="1G")
    with t.vm([dev], module="memplug-fi",
              driver_args="fi_bad_config=" + BAD_CONFIG_FIELDS[0]) as vm:
        vm.baseline()
        for i, field in enumerate(BAD_CONFIG_FIELDS):
            if i:
                vm.sh("rmmod memplug")
                before = len(config_errors(vm, field))
                vm.sh(". /etc/load.sh; load memplug-fi fi_bad_config=%s" % field)
            else:
                before = 0
            wait_config_error(t, vm, field, before)
            if field == "block_size" and \
                    not config_errors(vm, field)[-1].split("block_size=")[1].startswith("0x600000;"):
                raise TestFailure("block_size: the message does not carry the value read (0x600000)")
            if driver_of(vm):
                raise TestFailure("%s corrupted: device bound to %r anyway" % (field, driver_of(vm)))
            hold_still(vm, "vmem0", 0, field + " corrupted at probe")
            vm.wait_memory(0, timeout=5)
        vm.sh("rmmod memplug")
        vm.sh(". /etc/load.sh; load memplug-fi")
        vm.wait_memory(GiB, "Movable", timeout=120)
        if vm.plugged("vmem0") != GiB:
            raise TestFailure("after reload: device has %s plugged, 1 GiB requested" %
                              human(vm.plugged("vmem0")))
        vm.resize("vmem0", 0)
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


@scenario("bad_config_at_runtime", memplug_only=True, tags=("fault", "sbm"))
def bad_config_at_runtime(t):
    """The config read after a config-change interrupt is corrupted
    (debugfs bad_config): first requested_size (out of range), then a field
    fixed at probe (block_size, region_size). Each time: exactly one error
    naming the field, even when the host resizes again meanwhile; nothing
    plugged or unplugged, the guest keeps what it had. Once the knob is
    cleared and the host resizes again (to a size it did not ask for while
    the config was corrupted) the driver converges."""
    with t.vm([Device("vmem0", "8G", "2M")], module="memplug-fi") as vm:
        knobs = vm.sh("echo /sys/kernel/debug/memplug/virtio*")["out"].strip()
        if vm.sh("test -f %s/bad_config" % knobs, check=False)["rc"] != 0:
            raise TestFailure("no bad_config knob in %s (memplug-fi.ko missing? "
                              "run scripts/build.sh)" % knobs)
        vm.baseline()
        have = GiB
        vm.resize("vmem0", have)
        vm.wait_memory(have, "Movable")
        for field, asks, then in (("requested_size", ("2G", "3G"), 2 * GiB),
                                  ("block_size", ("512M", "3G"), 512 * MiB),
                                  ("region_size", ("1G",), 1536 * MiB)):
            before = len(config_errors(vm, field))
            injected = int(vm.sh("cat %s/config_injected" % knobs)["out"])
            vm.sh("echo %s > %s/bad_config" % (field, knobs))
            vm.request("vmem0", asks[0])
            wait_config_error(t, vm, field, before)
            for ask in asks[1:]:
                # the host changes its mind: still ignored, still one message
                vm.request("vmem0", ask)
            hold_still(vm, "vmem0", have, field + " corrupted at runtime")
            vm.wait_memory(have, "Movable", timeout=5)
            if len(config_errors(vm, field)) != before + 1:
                raise TestFailure("%s: logged again on the next config change" % field)
            hit = int(vm.sh("cat %s/config_injected" % knobs)["out"]) - injected
            if hit < len(asks):
                raise TestFailure("%s: config_injected did not count every read" % field)
            vm.sh("echo none > %s/bad_config" % knobs)
            vm.resize("vmem0", then, timeout=180)
            vm.wait_memory(then, "Movable")
            have = then
            t.log("# %s: %d config reads corrupted and ignored, converged on %s once cleared" %
                  (field, hit, human(then)))
        vm.resize("vmem0", 0)
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


@scenario("tracepoints_report_requests", memplug_only=True, tags=("trace", "bbm"))
def tracepoints(t):
    """memplug's tracepoints (events/memplug/ in tracefs) report what a
    resize did: PLUG and UNPLUG requests and their ACKs with the big block's
    size, the unit added and removed, its memory blocks going online and
    offline, and worker passes that converge to the requested size."""
    import re
    ev = "/sys/kernel/tracing/events/memplug"
    with t.vm([Device("vmem0", "8G", "1G")]) as vm:
        if vm.sh("test -f %s/enable" % ev, check=False)["rc"] != 0:
            raise TestFailure("no %s (tracefs not mounted, or no tracepoints)" % ev)
        vm.baseline()
        vm.sh("echo 0 > /sys/kernel/tracing/trace && echo 1 > %s/enable" % ev)
        vm.resize("vmem0", "1G")
        vm.wait_memory(GiB, "Movable")
        vm.resize("vmem0", 0)
        vm.wait_memory(0)
        vm.sh("echo 0 > %s/enable" % ev)
        out = vm.sh("grep -v memplug_worker_pass /sys/kernel/tracing/trace | grep memplug_")["out"]
        passes = vm.sh("grep memplug_worker_pass /sys/kernel/tracing/trace")["out"]
        t.log("# %d events, %d worker passes" % (len(out.splitlines()), len(passes.splitlines())))
        size = "size=0x%x" % GiB
        want = {
            "PLUG request": r"memplug_request: dev=\d+ type=PLUG addr=0x[0-9a-f]+ %s" % size,
            "PLUG ACK": r"memplug_answer: dev=\d+ type=PLUG addr=0x[0-9a-f]+ %s resp=0 "
                        r"state=-1 latency_ns=\d+" % size,
            "unit added": r"memplug_unit_add: dev=\d+ addr=0x[0-9a-f]+ %s rc=0" % size,
            "memory online": r"memplug_memory_notify: dev=\d+ action=ONLINE addr=0x[0-9a-f]+ "
                             r"size=0x[0-9a-f]+ rc=ok",
            "memory offline": r"memplug_memory_notify: dev=\d+ action=OFFLINE addr=0x[0-9a-f]+ "
                              r"size=0x[0-9a-f]+ rc=ok",
            "unit removed": r"memplug_unit_remove: dev=\d+ addr=0x[0-9a-f]+ %s rc=0" % size,
            "UNPLUG request": r"memplug_request: dev=\d+ type=UNPLUG addr=0x[0-9a-f]+ %s" % size,
            "UNPLUG ACK": r"memplug_answer: dev=\d+ type=UNPLUG addr=0x[0-9a-f]+ %s resp=0" % size,
        }
        missing = [k for k, rx in want.items() if not re.search(rx, out)]
        if missing:
            raise TestFailure("trace lacks %s: %r" % (", ".join(missing), out[-3000:]))
        # the unit added is the unit removed, and PLUG/UNPLUG were for it
        added = re.search(r"memplug_unit_add: dev=\d+ addr=(0x[0-9a-f]+)", out).group(1)
        for rx in (r"memplug_unit_remove: dev=\d+ addr=%s ",
                   r"memplug_request: dev=\d+ type=PLUG addr=%s ",
                   r"memplug_request: dev=\d+ type=UNPLUG addr=%s "):
            if not re.search(rx % added, out):
                raise TestFailure("no %r in the trace" % (rx % added))
        for wanted in (GiB, 0):
            if not re.search(r"memplug_worker_pass: dev=\d+ wanted=0x%x plugged=0x%x held=0x0 "
                             r"result=0 backoff_ms=0" % (wanted, wanted), passes):
                raise TestFailure("no converged worker pass for %s: %r" %
                                  (human(wanted), passes[-2000:]))
        if "memplug_unplug_failed" in out:
            t.log("# unplug failures traced: %s" %
                  [ln for ln in out.splitlines() if "unplug_failed" in ln][:3])


# ---------------------------------------------------------------------------
# Growing a small guest far (issue 4): memmap_on_memory and the growth guard.

MEMMAP_ON = "memory_hotplug.memmap_on_memory=1"


def memplug_attrs(vm):
    devs = vm.state()["virtio_mem"]
    return devs[0]["attrs"] if devs else {}


def zone_delta(vm, zone="Movable"):
    """(present, managed) bytes of `zone` added since the baseline."""
    st = vm.state()
    z, b = st["zones"][zone], vm.base["zones"][zone]
    return ((z["present_pages"] - b["present_pages"]) * 4096,
            (z["managed_pages"] - b["managed_pages"]) * 4096)


def check_grown(t, vm, added, memmap_per_block, timeout=120):
    """Every added byte is present in ZONE_MOVABLE. With memmap_on_memory
    the first pages of each 128 MiB memory block hold its memmap: present
    in the zone but never managed (not in the buddy, not in MemTotal), so
    managed must be exactly `added` minus that per block; without it,
    managed == added. Both are exact, so a block put elsewhere or a memmap
    taken from the wrong place shows."""
    blocks = added // (128 * MiB)
    want_managed = added - blocks * memmap_per_block
    deadline = time.time() + timeout
    while True:
        present, managed = zone_delta(vm)
        if present == added and managed == want_managed:
            return
        if time.time() > deadline:
            raise TestFailure("ZONE_MOVABLE +%s present, +%s managed; expected +%s present, +%s managed"
                              % (human(present), human(managed), human(added), human(want_managed)))
        time.sleep(0.5)


def grow_far(t, block, steps):
    """512 MiB guest, memmap_on_memory, online_movable: grow in steps, all
    of it in ZONE_MOVABLE, then shrink to 0. With big blocks memplug
    hosts the memmap in the added memory itself, so boot memory does not
    limit the growth."""
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


GROW_FAR_REF = ("virtio_mem does not host the memmap in big block mode: boot memory runs "
                "out, adding memory fails (-ENOMEM) and the device is marked broken")


@scenario("grow_far_memmap_on_memory_bbm", reference_long=True, tags=("grow", "bbm"),
          reference_fails=GROW_FAR_REF)
def grow_far_bbm(t):
    """512 MiB guest, 1 GiB blocks, memmap_on_memory: grow to 128 GiB in
    steps, all of it in ZONE_MOVABLE, and back to 0 (issue 4's target, in
    every make check)."""
    grow_far(t, "1G", ("16G", "48G", "128G"))


def guest_died(t, vm, last):
    """The guest is gone or going (panic=-1, -no-reboot: QEMU exits): a
    TestFailure with the reason from the console."""
    try:
        vm.proc.wait(15)
    except Exception:
        pass
    try:
        with open(vm.console, errors="replace") as f:
            lines = [l.strip() for l in f.read().splitlines()
                     if "panic" in l.lower() or "out of memory" in l.lower()]
    except OSError:
        lines = []
    t.log("# guest died with %s plugged" % human(max(last, 0)))
    return TestFailure("guest died with %s plugged: %s" %
                       (human(max(last, 0)), " | ".join(lines[-3:]) or "QEMU exited"))


def guest_follows(vm, dev, zone=None):
    """The guest's memory matches what `dev` has plugged.  A guard that
    stopped may go on later (memory freed meanwhile lets growth or unplug
    resume), so the target is the device's plugged size at each look, not
    one read before."""
    vm.wait_memory(lambda: vm.plugged(dev), zone)


def wait_settled(t, vm, dev, quiet=10, timeout=300):
    """Wait until the plugged size stops moving for `quiet` seconds (the
    driver stopped growing) and return it. A guest that dies meanwhile
    (QEMU exits: panic=-1 and -no-reboot) is a failure, with the reason
    from the console."""
    last, since = -1, time.time()
    deadline = time.time() + timeout
    while True:
        if vm.proc.poll() is not None:
            raise guest_died(t, vm, last)
        try:
            now = vm.plugged(dev)
        except TestFailure:
            if vm.proc.poll() is not None:
                continue
            raise
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= quiet:
            return now
        if time.time() > deadline:
            raise TestFailure("plugged size still moving after %ds (%s)" % (timeout, human(now)))
        time.sleep(1)


def guard_stops(t, vm, request):
    """Ask for `request`; the guest must stay alive, stop below it, and
    (memplug) say why in sysfs. Returns where it stopped."""
    vm.request("vmem0", request)
    got = wait_settled(t, vm, "vmem0")
    try:
        vm.sh("true")
        attrs = memplug_attrs(vm)
    except TestFailure:
        raise guest_died(t, vm, got)
    t.log("# asked for %s, stopped at %s; growth_guard: %s; growth_limit_bytes: %s; "
          "add_failures: %s" % (request, human(got), attrs.get("growth_guard"),
                                attrs.get("growth_limit_bytes"), attrs.get("add_failures")))
    if got >= parse_size(request):
        raise TestFailure("grew to the full %s: the guard did not stop it" % request)
    if t.driver == "memplug":
        if not attrs.get("growth_guard", "").startswith("blocked"):
            raise TestFailure("growth_guard says %r while plugged < requested" %
                              attrs.get("growth_guard"))
        if int(attrs["growth_limit_bytes"]) < got:
            raise TestFailure("growth_limit_bytes %s, but grew to %s" %
                              (attrs["growth_limit_bytes"], human(got)))
    guest_follows(vm, "vmem0", "Movable")
    vm.check_kernel_log()
    return got


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


@scenario("takeover_refused_while_virtio_mem_memory_in_use", memplug_only=True,
          tags=("lifecycle", "bbm"))
def takeover_refused(t):
    """The kernel's virtio_mem plugged 2 GiB and a process holds memory
    there; then virtio_mem is unbound (it leaves its memory in Linux) and
    memplug is loaded. memplug must not bind: its UNPLUG_ALL would make the
    host discard RAM the guest still uses. One clear message, the device
    keeps 2 GiB plugged, the process's pattern intact."""
    with t.vm([Device("vmem0", "8G", "1G")], module="virtio_mem") as vm:
        vm.baseline()
        vm.resize("vmem0", "2G")
        vm.wait_memory(2 * GiB, "Movable")
        start_filler(vm, 1536, seed=5)
        name = vm.state()["virtio_mem"][0]["dev"]
        vm.sh("echo %s > /sys/bus/virtio/drivers/virtio_mem/unbind" % name)
        if driver_of(vm):
            raise TestFailure("virtio_mem still bound after unbind")
        vm.sh(". /etc/load.sh; load memplug")
        deadline = time.time() + 20
        msg = "is already System RAM, added by another driver"
        while msg not in vm.sh("dmesg")["out"]:
            if time.time() > deadline:
                raise TestFailure("memplug gave no 'already System RAM' refusal")
            time.sleep(0.5)
        if driver_of(vm):
            raise TestFailure("memplug bound to a region virtio_mem still has in Linux")
        hold_still(vm, "vmem0", 2 * GiB, "memplug loaded over virtio_mem's memory")
        stop_filler_clean(t, vm, min_passes=1)
        vm.check_kernel_log()


# ---------------------------------------------------------------------------
# Randomized differential runs (tests/vm/randomized.py): each one plays a
# seeded sequence against virtio_mem, then memplug, on the same kernel.

for _seed in randomized.seeds():
    def _fn(t, seed=_seed):
        randomized.random_sequence(t, seed)
    _fn.__doc__ = randomized.random_sequence.__doc__
    scenario("random_sequence_%d" % _seed, memplug_only=True, tags=("random",))(_fn)
