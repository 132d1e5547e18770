# SPDX-License-Identifier: GPL-2.0
"""Helpers of the test-bed scenarios: every function the scenario modules
use that is not a scenario itself, in one place.
"""

import re
import time

from testbed import MiB, TestFailure, human, parse_size


# ---------------------------------------------------------------------------
# The guest's state

ZONE_OF_POLICY = {"online_movable": "Movable", "online_kernel": "Normal",
                  "auto-movable": None}
MEMMAP_ON = "memory_hotplug.memmap_on_memory=1"


def memplug_attrs(vm):
    devs = vm.state()["virtio_mem"]
    return devs[0]["attrs"] if devs else {}


def driver_of(vm):
    return vm.state()["virtio_mem"][0]["driver"]


def zone_delta(vm, zone="Movable"):
    """(present, managed) bytes of `zone` added since the baseline."""
    st = vm.state()
    z, b = st["zones"][zone], vm.base["zones"][zone]
    return ((z["present_pages"] - b["present_pages"]) * 4096,
            (z["managed_pages"] - b["managed_pages"]) * 4096)


def guest_has_1g_pages(vm):
    """Does the guest CPU offer 1 GiB pages (pdpe1gb)?"""
    return " pdpe1gb" in vm.sh("grep -m1 '^flags' /proc/cpuinfo")["out"]


def direct_map_1g(vm):
    """kB of the kernel's direct map in 1 GiB pages."""
    m = re.search(r"DirectMap1G:\s+(\d+)", vm.sh("cat /proc/meminfo")["out"])
    return int(m.group(1)) if m else 0


def iomem_entries(vm):
    """/proc/iomem as [(depth, start, end, name)]."""
    out = []
    for line in vm.sh("cat /proc/iomem")["out"].splitlines():
        m = re.match(r"^( *)([0-9a-f]+)-([0-9a-f]+) : (.*)$", line)
        if m:
            out.append((len(m.group(1)) // 2, int(m.group(2), 16), int(m.group(3), 16),
                        m.group(4)))
    return out


# ---------------------------------------------------------------------------
# Waiting for the device and the guest

def wait_for(t, what, cond, timeout=60):
    deadline = time.time() + timeout
    while not cond():
        if time.time() > deadline:
            raise TestFailure("timed out waiting for: " + what)
        time.sleep(0.2)


def hold_still(vm, dev_id, size, what, seconds=5):
    """For `seconds`, the device keeps exactly `size` plugged."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        got = vm.plugged(dev_id)
        if got != size:
            raise TestFailure("%s: device has %s plugged, expected it to stay at %s" %
                              (what, human(got), human(size)))
        time.sleep(1)


def guest_follows(vm, dev, zone=None):
    """The guest's memory matches what `dev` has plugged.  A guard that
    stopped may go on later (memory freed meanwhile lets growth or unplug
    resume), so the target is the device's plugged size at each look, not
    one read before."""
    vm.wait_memory(lambda: vm.plugged(dev), zone)


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


# ---------------------------------------------------------------------------
# The agent's verifying filler: memory in use while the device resizes

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


# ---------------------------------------------------------------------------
# Faults: memory-notifier-error-inject, and memplug-fi.ko's debugfs knobs

INJECT = "/sys/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_OFFLINE/error"


# A kprobe on alloc_contig_range() (6.12 renamed it with the allocation
# profiling suffix); x86-64 passes start and end in rdi and rsi.
CONTIG_PROBE = "memplug_test_contig"
CONTIG_SYMBOLS = ("alloc_contig_range_noprof", "alloc_contig_range")
TRACING = "/sys/kernel/tracing"


def trace_contig_takes(vm):
    """Record the range of every alloc_contig_range() call from now on.
    False when the kernel has no kprobe events (the test bed's minimal
    debug kernel; Debian's kernels have them)."""
    if vm.sh("test -e %s/kprobe_events" % TRACING, check=False)["rc"] != 0:
        return False
    for sym in CONTIG_SYMBOLS:
        cmd = ("echo 'p:%s %s start=%%di:u64 end=%%si:u64' >> %s/kprobe_events" %
               (CONTIG_PROBE, sym, TRACING))
        if vm.sh(cmd, check=False)["rc"] == 0:
            break
    else:
        raise TestFailure("cannot put a kprobe on %s" % " or ".join(CONTIG_SYMBOLS))
    vm.sh("echo 0 > %s/trace && echo 1 > %s/events/kprobes/%s/enable" %
          (TRACING, TRACING, CONTIG_PROBE))
    return True


def contig_takes(vm):
    """The sizes in bytes of the alloc_contig_range() calls recorded since
    trace_contig_takes()."""
    out = vm.sh("grep ' %s:' %s/trace || true" % (CONTIG_PROBE, TRACING))["out"]
    sizes = []
    for line in out.splitlines():
        m = re.search(r"start=(\d+) end=(\d+)", line)
        if not m:
            raise TestFailure("unexpected kprobe trace line: %r" % line)
        sizes.append((int(m.group(2)) - int(m.group(1))) * 4096)
    return sizes


def pin_in_device(t, vm, mib):
    """The agent pins `mib` MiB of anonymous memory (pipes, vmsplice);
    at least one page of it must lie in the device's region."""
    attrs = vm.state()["virtio_mem"][0]["attrs"]
    lo = int(attrs["region_addr"])
    hi = lo + int(attrs["region_size"])
    pin = vm.agent("pin %d %x %x" % (mib, lo, hi))
    t.log("# pinned %d pages, %d of them in the device's memory" %
          (pin["pages"], pin["in_range"]))
    if not pin["in_range"]:
        raise TestFailure("no pinned page landed in the device's memory")
    return pin


def fi_knobs(vm):
    """The memplug-fi debugfs directory of the (only) device."""
    knobs = vm.sh("echo /sys/kernel/debug/memplug/virtio*")["out"].strip()
    if vm.sh("test -f %s/fault_types" % knobs, check=False)["rc"] != 0:
        raise TestFailure("no fault injection knobs in %s (memplug-fi.ko missing? "
                          "run scripts/build.sh)" % knobs)
    return knobs


def fi_attr(vm, name):
    return int(vm.state()["virtio_mem"][0]["attrs"][name])


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


# ---------------------------------------------------------------------------
# The unplug guard and the growth guard

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


# ---------------------------------------------------------------------------
# Power management

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
