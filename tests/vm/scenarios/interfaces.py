# SPDX-License-Identifier: GPL-2.0
"""What the driver shows and takes: its sysfs state as memplugctl guest
reads it in the guest, its claim in /proc/iomem, bounded module
parameters, tracepoints; what memplug-report tells the host over the
report channel.
"""

from testbed import GiB, MiB, Device, TestFailure, human

from .helpers import iomem_entries
from .registry import scenario


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


@scenario("report_channel", tags=("report", "bbm"))
def report_channel(t):
    """memplug-report in the guest tells the host, over the virtio-serial
    port org.memplug.report.0 (docs/autosize.md), what it would size the VM
    by: one valid line per interval with seq counting up, total and avail
    as the guest's /proc/meminfo has them, the driver bound to the device,
    plugged and requested following a resize (memplug), and reports again
    after the host reconnects."""
    interval = 500
    with t.vm([Device("vmem0", "4G", "1G")], report=interval) as vm:
        if vm.sh("test -x /bin/memplug-report", check=False)["rc"] != 0:
            raise TestFailure("no /bin/memplug-report in the initramfs (run scripts/build.sh)")
        vm.baseline()
        rep = vm.reports()
        try:
            first = [rep.next() for _ in range(4)]
            t.log("# first report: %r" % first[0])
            seqs = [r["seq"] for r in first]
            if seqs != list(range(seqs[0], seqs[0] + 4)):
                raise TestFailure("seq does not count up by one: %s" % seqs)
            steps = [b["ms"] - a["ms"] for a, b in zip(first, first[1:])]
            if not all(interval // 2 <= d <= 4 * interval for d in steps):
                raise TestFailure("reports %s ms apart, not about %d ms" % (steps, interval))
            want = {"driver": t.driver}
            if t.driver == "memplug":
                want.update(plugged=0, requested=0, growth="ok", unplug="ok")
            r = first[-1]
            bad = ["%s=%r (expected %r)" % (k, r.get(k), v) for k, v in want.items()
                   if r.get(k) != v]
            missing = [k for k in ("ms", "psi_some", "psi_full", "total", "avail", "pswpin",
                                   "pswpout", "give") if k not in r]
            extra = [k for k in ("plugged", "requested", "growth", "unplug")
                     if k in r and t.driver != "memplug"]
            if bad or missing or extra:
                raise TestFailure("report %r: %s" % (r, "; ".join(
                    bad + ["no %s" % k for k in missing] + ["%s with virtio_mem" % k
                                                             for k in extra])))
            # what the guest's own /proc/meminfo says, read between reports
            st = vm.state()
            r = rep.next()
            total, avail = st["memtotal_kb"] * 1024, st["memavailable_kb"] * 1024
            slack = max(64 * MiB, total // 20)
            if r["total"] != total or abs(r["avail"] - avail) > slack:
                raise TestFailure("report total=%d avail=%d, the guest's /proc/meminfo %d and %d"
                                  " (avail within %s)" % (r["total"], r["avail"], total, avail,
                                                          human(slack)))
            base_total = r["total"]
            vm.resize("vmem0", "2G")
            vm.wait_memory(2 * GiB, "Movable")

            def grown(r):
                ok = r["total"] == base_total + 2 * GiB
                if t.driver == "memplug":
                    ok = ok and r.get("plugged") == 2 * GiB and r.get("requested") == 2 * GiB
                return ok
            r = rep.until("with 2 GiB more total (and plugged, requested)", grown, 30)
            t.log("# after the resize: %r" % r)
            vm.resize("vmem0", 0)
            vm.wait_memory(0)
            r = rep.until("with total back and nothing plugged",
                          lambda r: r["total"] == base_total and r.get("plugged", 0) == 0 and
                          r.get("requested", 0) == 0, 30)
            last = r["seq"]
        finally:
            rep.close()
        # the host goes away and comes back: the reports go on
        rep = vm.reports()
        try:
            r = rep.next()
            if r["seq"] <= last:
                raise TestFailure("after reconnecting, seq %d is not after %d" % (r["seq"], last))
        finally:
            rep.close()
        # the agent's own log: only the output episodes (no host before the
        # first connection, and between the two), no source it failed to read
        log = vm.sh("dmesg | grep 'memplug-report: ' || true")["out"].splitlines()
        odd = [ln for ln in log if "not writable (is the host reading?)" not in ln and
               "writing reports again" not in ln]
        if odd:
            raise TestFailure("memplug-report logged: %s" % " | ".join(odd[:5]))
        t.log("# memplug-report logged %d line(s) about the host coming and going" % len(log))
