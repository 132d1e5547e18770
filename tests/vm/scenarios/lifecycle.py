# SPDX-License-Identifier: GPL-2.0
"""The driver's life around the memory: memory requested before boot, a
reboot with memory plugged, rmmod and insmod (with memory plugged, under
load, racing the first add, forced), taking a device over from the
kernel's virtio_mem, suspend and hibernation, the module as DKMS builds it.
"""

import os
import time

from testbed import GiB, MiB, Device, Skip, TestFailure, human

from .helpers import (INJECT, driver_of, hold_still, sleep_and_wake, start_filler,
                      stop_filler_clean, wait_for)
from .registry import scenario


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
            if removal_threads(vm) != 0:
                raise TestFailure("module gone but its removal thread is still there")
            vm.sh(". /etc/load.sh; load memplug")
            vm.resize("vmem0", "1G")
            vm.wait_memory(GiB, "Movable")
        else:
            t.log("# rmmod refused: %s" % r["out"].strip())
            vm.resize("vmem0", "1G")
            vm.wait_memory(GiB, "Movable")
        vm.resize("vmem0", 0)
        vm.wait_memory(0)
        # one thread per device for every removal, not one per removal
        if removal_threads(vm) != 1:
            raise TestFailure("%d memplug-remove threads for one device" % removal_threads(vm))
        # nothing added: the module is not pinned and takes its thread along
        vm.sh("rmmod memplug")
        if removal_threads(vm) != 0:
            raise TestFailure("module gone but its removal thread is still there")
        vm.sh(". /etc/load.sh; load memplug")
        vm.check_kernel_log()


def removal_threads(vm):
    """How many memplug-remove kthreads the guest has."""
    out = vm.sh("cat /proc/[0-9]*/comm 2>/dev/null | grep -c '^memplug-remove$'",
                check=False)["out"]
    return int(out.strip() or 0)


@scenario("dkms_built_module_boots", memplug_only=True, tags=("dkms",))
def dkms_module(t):
    """The module as DKMS builds it (tests/dkms/run.sh leaves it in
    build/<kernel>/dkms/) loads in the guest and plugs and unplugs."""
    import subprocess
    import tempfile
    from testbed import BUILD, CACHE, TOP
    ko = os.path.join(BUILD, t.release, "dkms", "memplug.ko")
    if not os.path.exists(ko):
        # make check runs the dkms suite first; the long targets may not
        if os.environ.get("MEMPLUG_DKMS_OPTIONAL") == "1":
            raise Skip("no DKMS-built module at %s (make check-dkms builds it)" % ko)
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
