# SPDX-License-Identifier: GPL-2.0
"""Injected faults: offlining that fails (memory-notifier-error-inject),
memory adds that fail, and a device that answers wrong, late or never,
or whose config is malformed (memplug-fi.ko, memplug built with
MEMPLUG_FAULT_INJECT=1, knobs in debugfs).
"""

import time

from testbed import GiB, MiB, Device, Skip, TestFailure, human, parse_size

from .helpers import (INJECT, MEMMAP_ON, config_errors, driver_of, fi_attr, fi_knobs,
                      guest_follows, hold_still, memplug_attrs, pin_in_device, start_filler,
                      stop_filler_clean, wait_config_error, wait_for, wait_settled)
from .registry import both_modes, scenario


FAULT_KINDS = {1: ("NACK", "nacks"), 2: ("BUSY", "busy_answers"), 3: ("ERROR", "error_answers"),
               4: ("malformed answer", "bad_answers"), 5: ("no answer", "bad_answers")}


# Malformed device config: QEMU always offers a valid one, so memplug-fi
# corrupts one field of the config as the driver reads it: at probe through
# the module parameter fi_bad_config=<field>, at runtime through the debugfs
# knob bad_config (every config read after a config-change interrupt, until
# set back to "none"). Each corruption is one the validator must catch.
BAD_CONFIG_FIELDS = ("block_size", "addr", "region_size", "usable_region_size",
                     "plugged_size", "requested_size")


@scenario("offline_fault", reference_long=True, tags=("fault",), variants=both_modes(sbm={
    "reference_fails": "virtio_mem may leave emptied memory blocks in Linux when offlining "
                       "failed once: with plugged == requested it never retries removing them"}))
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


@scenario("device_answer_faults", memplug_only=True, tags=("fault",), variants=both_modes())
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
        pin = pin_in_device(t, vm, 64)
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


@scenario("pinned_pages_stay_plugged_sbm", memplug_only=True, tags=("fault", "sbm"))
def pinned_pages_stay_plugged_sbm(t):
    """SBM with 2 MiB blocks: the agent pins 8 MiB in the device's memory
    and the host asks for 0. The takes that meet pinned pages fail (a range
    of sub blocks is taken all or nothing: pieces taken before the one
    that failed go back to Linux); the driver unplugs everything else, and
    the guest holds exactly what the device keeps plugged (MemTotal and
    the Movable zone's managed pages agree to the page). Unpinned, the
    device shrinks to 0 and the guest is healthy."""
    with t.vm([Device("vmem0", "8G", "2M")]) as vm:
        vm.baseline()
        vm.resize("vmem0", "1G")
        vm.wait_memory(GiB, "Movable")
        pin = pin_in_device(t, vm, 8)
        contig = fi_attr(vm, "contig_failures")
        vm.request("vmem0", 0)
        wait_for(t, "a take failing on pinned pages",
                 lambda: fi_attr(vm, "contig_failures") > contig, timeout=120)
        kept = wait_settled(t, vm, "vmem0", quiet=10, timeout=180)
        if kept == 0:
            raise TestFailure("device unplugged everything with %d pages pinned in it" %
                              pin["in_range"])
        vm.wait_memory(kept, "Movable")
        t.log("# kept %s plugged around the pinned pages, %d takes failed, guest agrees" %
              (human(kept), fi_attr(vm, "contig_failures") - contig))
        vm.agent("unpin")
        vm.resize("vmem0", 0, timeout=120)
        vm.wait_memory(0)
        vm.wait_blocks_back_to_baseline()
        vm.check_kernel_log()


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
