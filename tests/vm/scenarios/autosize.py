# SPDX-License-Identifier: GPL-2.0
"""Sizing VMs automatically (issue 17): memplugd on the host sizes real
guests from what memplug-report in each guest tells it over the report
channel, while a workload makes the guests need memory and let it go.

Every scenario boots its guests with the report port (VM(report=...)) and
two QMP monitors besides the test bed's: "memplugd" for the daemon, which
stays connected, and "probe" for the sampler that watches the device
(QEMU serves one client per monitor; memplugctl keeps the test bed's).
memplugd runs in the foreground with a generated configuration and the
short timers of memplugd_bed.TCG_DAEMON; what is asserted is what a user
would check: the device's sizes over time (QMP) and memplugd's status
file, the guest's own MemAvailable, no OOM kill, the workload's data
intact, memplugd's log lines with their reasons, QEMU's resident memory,
and the health check that ends every scenario.

  autosize_ramp_and_release_*   (a) + (b): grow ahead of a ramp, give back after it
  autosize_budget_two_guests    (c): two guests, a budget below their combined peak
  autosize_hostile_agent        (d): garbage, a flood of lies, absurd numbers, silence
  autosize_daemon_restart       (e): a crash and a restart, picked up without a jolt

make check runs them with memplug's guests on both kernels (the 1 GiB-block
ramp only with LONG=1); the kernel's virtio_mem runs them with LONG=1
(make check-long): the daemon is the same, and the comparison of the two
drivers under memplugd is make bench-autosize's.

The shared machinery (the daemon, the sampler, the workload, the metrics)
is tests/vm/memplugd_bed.py; bench/autosize.py plays a longer trace with
it. Timing constants below are for TCG with two guests of these
scenarios and one of another at once on two cores; the first runs set
them (docs/memplugd.md, "Real guests").
"""

import base64
import contextlib
import statistics
import time

from testbed import GiB, MiB, Device, Skip, TestFailure, human, parse_size

from memplugd_bed import (REPORT_MS, Memplugd, Sampler, Workload, avail_now, boot_all,
                          daemon_config, describe, giveback, oom_kills, step_growths)
from .registry import both_modes, scenario

STEP_MIB = 256          # the workload grows in steps of this much
BASE_MIB = 200          # ... from a base of this much (the filler)
PAUSE_S = 2.5           # between two steps
MONITORS = ("memplugd", "probe")
# pressure onset (the host has a report showing it) to the device grown:
# a report, a tick at most, qom-set, the guest's driver plugging
GROW_MAX_S = 10.0
# the lowest MemAvailable a guest may report while memplugd keeps up
# (buffer 512 MiB, steps of 256 MiB: about 256 MiB when it does)
MIN_AVAIL = 64 * MiB
# the workload let go: the device back down to its bound within (the
# reference driver unplugs 10-70 times more slowly: docs/performance.md)
GIVEBACK_S = {"memplug": 40.0, "virtio_mem": 90.0}
# what the guest's own use may add to the bound on what stays plugged
GIVEBACK_SLACK = 192 * MiB


def spec(region, block="2M", **kw):
    """A guest of these scenarios: 1 GiB of boot memory, one device."""
    kw.setdefault("report", REPORT_MS)
    kw.setdefault("monitors", MONITORS)
    return ([Device("vmem0", region, block)], kw)


def wait_reports(t, mpd, names, n=3, timeout=60):
    """memplugd is connected to every VM and has n valid reports of each."""
    deadline = time.time() + timeout
    while True:
        st = {v["name"]: v for v in mpd.status()["vms"]}
        short = [nm for nm in names
                 if not st.get(nm) or not st[nm]["qmp"]["connected"] or
                 st[nm]["report"]["valid"] < n]
        if not short:
            return st
        mpd.check_alive()
        if time.time() > deadline:
            raise TestFailure("memplugd has no QMP or not %d valid reports of %s after %d s: %s" %
                              (n, ", ".join(short), timeout,
                               " | ".join(mpd.text_lines()[-6:])))
        time.sleep(0.3)


def settled(sam, name, buffer, timeout, what):
    """Wait until the device holds what was asked and the guest's last
    report (after that) shows at least 3/4 of its buffer available."""
    return sam.wait_for(name, lambda s: s.size == s.requested and s.avail is not None and
                        s.avail >= buffer * 3 // 4, timeout, what)


def ramp(t, wl, steps, pause=PAUSE_S):
    for i in range(steps):
        took = wl.step(STEP_MIB)
        t.log("# step %d: +%d MiB in %.1f s (workload %d MiB + %d MiB base)" %
              (i + 1, STEP_MIB, took, wl.level, wl.base_mib))
        time.sleep(pause)


def check_growths(t, name, sam, mpd, wl, buffer, grow_max=GROW_MAX_S, least=None):
    """Every step the host saw pressure in got memory within grow_max; at
    least `least` steps (default all but two) did; MemAvailable never fell
    below MIN_AVAIL. Returns the Growth list."""
    g = step_growths(sam.series(name), wl.steps, buffer,
                     float(mpd.param("psi-threshold", 10)), mpd.decisions(name))
    for i, x in enumerate(g):
        t.log("# %s step %d: onset %s, memory added %s later (%s after the step began), "
              "lowest MemAvailable %s" % (
                  name, i + 1, "-" if x.onset is None else "%+.1f s" % (x.onset - x.start),
                  "-" if x.grow_s is None else "%.2f s" % x.grow_s,
                  "-" if x.from_step_s is None else "%.2f s" % x.from_step_s,
                  mb(x.min_avail)))
    timed = [x.grow_s for x in g if x.grow_s is not None]
    late = [(i + 1, x.grow_s) for i, x in enumerate(g) if x.grow_s is not None and
            x.grow_s > grow_max]
    missed = [i + 1 for i, x in enumerate(g) if x.onset is not None and x.added is None]
    need = len(wl.steps) - 2 if least is None else least
    if missed:
        raise TestFailure("%s: pressure in step(s) %s, and the device never grew in them" %
                          (name, missed))
    if late:
        raise TestFailure("%s: memory added more than %.0f s after the pressure onset: %s" %
                          (name, grow_max, ", ".join("step %d %.1f s" % s for s in late)))
    if len(timed) < need:
        raise TestFailure("%s: only %d of %d steps grew the device (want %d)" %
                          (name, len(timed), len(g), need))
    low = [x.min_avail for x in g if x.min_avail is not None]
    if low and min(low) < MIN_AVAIL:
        raise TestFailure("%s: the guest reported only %s available during the ramp "
                          "(memplugd fell behind)" % (name, human(min(low))))
    if timed:
        t.log("# %s: pressure onset to memory added: median %.2f s, max %.2f s over %d steps" %
              (name, statistics.median(timed), max(timed), len(timed)))
    return g


def check_in_bounds(sam, name, lo, hi, t0=None):
    for s in sam.series(name, t0):
        for what, v in (("requested", s.requested), ("plugged", s.size)):
            if not lo <= v <= hi:
                raise TestFailure("%s: %s %s at %.1f s, outside [%s, %s]" % (
                    name, what, human(v), s.t - sam.t0, human(lo), human(hi)))


def check_held(sam, name, seconds, what):
    """For `seconds` from now the device neither moves nor is asked to."""
    t0 = time.time()
    first = sam.last(name)
    time.sleep(seconds)
    for s in sam.series(name, t0):
        if (s.size, s.requested) != (first.size, first.requested):
            raise TestFailure("%s: %s: moved from %s/%s to %s/%s (plugged/requested)" % (
                name, what, human(first.size), human(first.requested), human(s.size),
                human(s.requested)))
    return first


def wait_quiet(sam, name, quiet, timeout, what):
    """Wait until the device's sizes have not changed for `quiet` seconds
    (and plugged == requested); the last sample."""
    deadline = time.time() + timeout
    since, last = time.time(), None
    while True:
        s = sam.last(name)
        if last is None or (s.size, s.requested) != (last.size, last.requested):
            since, last = time.time(), s
        elif s.size == s.requested and time.time() - since >= quiet:
            return s
        if time.time() > deadline:
            raise TestFailure("%s: still moving after %d s (%s): %s" % (name, timeout, what,
                                                                      describe(s)))
        time.sleep(0.2)


def mb(n):
    return "-" if n is None else "%d MiB" % (n // MiB)


def agree(sam, mpd, name, timeout=5):
    """memplugd's status file (at most a tick old) and the device say the
    same sizes."""
    deadline = time.time() + timeout
    while True:
        s = sam.last(name)
        d = mpd.vm_status(name)["device"]
        if d is not None and (d["requested-size"], d["size"]) == (s.requested, s.size):
            return
        if time.time() > deadline:
            raise TestFailure("%s: memplugd's status says %s, the device %s/%s" % (
                name, d, human(s.requested), human(s.size)))
        time.sleep(0.3)


# ---------------------------------------------------------------------------
# (a) + (b)

@scenario("autosize_ramp_and_release", tags=("autosize", "memplugd", "report"),
          reference_long=True, variants=both_modes(bbm={"tags": ("long",)}))
def ramp_and_release(t, block, steps=8):
    """A workload ramps from 200 MiB to 2.2 GiB in 256 MiB steps: memplugd
    grows the guest ahead of it (no OOM kill, MemAvailable never near 0,
    pressure onset to memory added measured); when it lets go the memory
    goes back to the host within a bounded time (the device shrinks, QEMU's
    RSS falls), and the guest keeps its buffer and its data."""
    bs = parse_size(block)
    cfg = daemon_config(t.driver)
    buffer = parse_size(cfg["buffer"])
    with contextlib.ExitStack() as stack:
        vm, = boot_all(t, stack, [spec("4G", block)])
        wl = Workload(vm, steps * STEP_MIB, BASE_MIB, log=t.log).start()
        a0 = avail_now(vm)
        t.log("# before the ramp: %s available with the %d MiB base" % (mb(a0), BASE_MIB))
        mpd = stack.enter_context(Memplugd([("ramp", vm, {})], cfg, log=t.log))
        sam = stack.enter_context(Sampler([("ramp", vm)], mpd.status_path()))
        wait_reports(t, mpd, ["ramp"])
        mpd.check_config()

        # (a) the ramp
        t_ramp = time.time()
        ramp(t, wl, steps)
        peak = settled(sam, "ramp", buffer, GROW_MAX_S * 2, "device settled with the "
                       "buffer restored after the last step")
        t_peak = time.time()
        # every step but two grows a 2 MiB-block device; 1 GiB blocks grow
        # once for several steps
        check_growths(t, "ramp", sam, mpd, wl, buffer,
                      least=max(1, min(steps - 2, steps * STEP_MIB * MiB // bs - 1)))
        if wl.oom_kills():
            raise TestFailure("the OOM killer ran during the ramp")
        shrunk = mpd.decisions("ramp", "shrink", t0=t_ramp)
        if shrunk:
            raise TestFailure("memplugd shrank the guest during the ramp: %r" % shrunk[:3])
        grows = mpd.decisions("ramp", "grow", t0=t_ramp)
        if not all(("available" in d.reason or "psi" in d.reason) and d.to % bs == 0
                   for d in grows):
            raise TestFailure("grow decisions off the grid or without a pressure reason: %r" %
                              grows)
        rss_peak = sam.last("ramp").rss
        t.log("# at the peak: %s plugged for %d MiB of workload, %d decisions to grow, QEMU RSS %s"
              % (human(peak.size), wl.level + BASE_MIB, len(grows), mb(rss_peak)))

        # (b) the workload lets go
        wl.release()
        t_rel = time.time()
        hyst = buffer * int(cfg["hysteresis"]) // 100
        ratio = int(cfg["shrink-ratio"])
        # where the idle rule stops: the excess (avail - buffer) below the
        # hysteresis, or too small for a block at shrink-ratio %
        bound = max(0, buffer + max(hyst, bs * 100 // ratio) - a0) + bs + GIVEBACK_SLACK
        bound = min(bound, peak.size - bs)
        back = sam.wait_for("ramp", lambda s: s.size <= bound and s.size == s.requested,
                            GIVEBACK_S[t.driver], "give-back to %s or less" % human(bound),
                            since=t_rel)
        quiet = wait_quiet(sam, "ramp", 2 * float(cfg["shrink-interval"]) + 2,
                           GIVEBACK_S[t.driver], "settling after the give-back")
        if quiet.size > bound:
            raise TestFailure("the device went back up to %s after the give-back" %
                              human(quiet.size))
        at, final, t90 = giveback(sam.series("ramp"), t_rel, time.time())
        t.log("# give-back: %s -> %s in %.1f s (90 %% in %s), bound %s" % (
            human(at), human(final), back.t - t_rel,
            "-" if t90 is None else "%.1f s" % t90, human(bound)))
        if quiet.avail is None or quiet.avail < buffer * 3 // 4:
            raise TestFailure("after the give-back the guest reports %s available, below "
                              "3/4 of its buffer %s" % (mb(quiet.avail), human(buffer)))
        shrinks = mpd.decisions("ramp", "shrink", t0=t_rel)
        big = [d for d in shrinks if d.frm - d.to > parse_size(cfg["shrink-max-step"])]
        if not shrinks or big or not all(d.reason.startswith("idle: available") for d in shrinks):
            raise TestFailure("shrink decisions after the release: %r" % shrinks)
        rss = sam.last("ramp").rss
        if rss_peak and rss is not None:
            t.log("# QEMU RSS %s -> %s" % (mb(rss_peak), mb(rss)))
            if rss_peak - rss < (peak.size - final) // 2:
                raise TestFailure("QEMU's RSS fell by %s only, %s were unplugged: the memory "
                                  "did not go back to the host" % (
                                      mb(max(0, rss_peak - rss)), human(peak.size - final)))
        agree(sam, mpd, "ramp")
        t.log("# peak reached %.1f s after the ramp began" % (t_peak - t_ramp))
        wl.finish(t)
        mpd.check_log()
        mpd.stop_clean()
        check_held(sam, "ramp", 2, "after memplugd stopped")


# ---------------------------------------------------------------------------
# (c)

@scenario("autosize_budget_two_guests", tags=("autosize", "memplugd", "report", "budget", "sbm"),
          reference_long=True, newest_kernel=True)
def budget_two_guests(t, busy_steps=6, idle_steps=4):
    """Two guests under a budget smaller than their combined peak: one
    ramps and goes idle, then the other ramps: memplugd takes memory from
    the idle one for the one under pressure (reclaim lines naming it), the
    devices never hold more than the budget together, the idle one keeps
    its buffer, nobody is OOM-killed."""
    # hysteresis 300 % of the buffer: an idle guest never shrinks by itself
    # here, so whatever it loses, the budget took
    cfg = daemon_config(t.driver, hysteresis="300")
    buffer = parse_size(cfg["buffer"])
    bs = 2 * MiB
    grow_max = GROW_MAX_S * (2 if t.driver == "memplug" else 4)
    with contextlib.ExitStack() as stack:
        busy, idle = boot_all(t, stack, [spec("3G"), spec("3G")])
        wl_b = Workload(busy, busy_steps * STEP_MIB, BASE_MIB, log=t.log).start()
        wl_i = Workload(idle, idle_steps * STEP_MIB, BASE_MIB, log=t.log).start()
        need = {}
        for name, vm, wl in (("busy", busy, wl_b), ("idle", idle, wl_i)):
            a0 = avail_now(vm)
            need[name] = -(-(wl.peak_mib * MiB + buffer - a0) // bs) * bs
            t.log("# %s: %s available before, about %s of device memory at its peak" %
                  (name, mb(a0), human(need[name])))
        # enough for the busy guest once the idle one gave, not for both peaks
        budget = need["busy"] + 192 * MiB
        if budget >= need["busy"] + need["idle"] - 256 * MiB:
            raise TestFailure("the guests need less than expected: %r" % need)
        cfg["budget"] = "%dM" % (budget // MiB)
        t.log("# budget %s, combined peak about %s" % (human(budget),
                                                       human(need["busy"] + need["idle"])))
        mpd = stack.enter_context(Memplugd([("busy", busy, {}), ("idle", idle, {})], cfg,
                                           log=t.log))
        # the one that grows first in each round: a sum read so is never
        # above the true sum (memplugd's budget: max(requested, plugged))
        sam = stack.enter_context(Sampler([("busy", busy), ("idle", idle)], mpd.status_path()))
        wait_reports(t, mpd, ["busy", "idle"])

        # the idle-to-be guest ramps, then lets go
        ramp(t, wl_i, idle_steps, pause=2.0)
        settled(sam, "idle", buffer, grow_max, "idle's ramp met")
        wl_i.release()
        held = sam.last("idle").size
        time.sleep(float(cfg["hold-down"]) + 1)
        t.log("# idle holds %s, past its hold-down" % human(held))

        # the busy one ramps past what the budget leaves it
        t_busy = time.time()
        ramp(t, wl_b, busy_steps, pause=3.0)
        settled(sam, "busy", buffer, grow_max * 2, "busy's ramp met within the budget")
        check_growths(t, "busy", sam, mpd, wl_b, buffer, grow_max)

        over = []
        for tr, rnd in sam.rounds:
            if "busy" in rnd and "idle" in rnd:
                use = sum(max(s.size, s.requested) for s in rnd.values())
                if use > budget:
                    over.append((tr - sam.t0, use))
        if over:
            raise TestFailure("above the budget %s: %s" % (human(budget), ", ".join(
                "%s at %.1f s" % (human(u), tt) for tt, u in over[:5])))
        rec = mpd.decisions("idle", "reclaim", t0=t_busy)
        took = [d for d in rec if "taken for busy (under pressure)" in d.reason]
        if not took:
            raise TestFailure("no reclaim from the idle guest for the busy one: %r; idle's "
                              "decisions: %r" % (rec, mpd.decisions("idle")))
        if mpd.decisions("idle", "shrink"):
            raise TestFailure("the idle guest shrank by itself: %r" % mpd.decisions("idle",
                                                                                  "shrink"))
        now_idle = sam.last("idle")
        t.log("# idle: %s -> %s in %d reclaim(s): %s" % (human(held), human(now_idle.size),
                                                         len(took), took[0]))
        if now_idle.size >= held:
            raise TestFailure("the idle guest still holds %s" % human(now_idle.size))
        if now_idle.avail is not None and now_idle.avail < buffer * 9 // 10:
            raise TestFailure("reclaim left the idle guest %s available, below its buffer" %
                              mb(now_idle.avail))
        st = mpd.status()
        if not st["budget"]["limited"] or st["budget"]["bytes"] != budget or \
                st["budget"]["in-use"] > budget:
            raise TestFailure("status budget: %r" % st["budget"])
        agree(sam, mpd, "busy")
        agree(sam, mpd, "idle")
        wl_b.finish(t)
        wl_i.finish(t)
        mpd.check_log()
        mpd.stop_clean()


# ---------------------------------------------------------------------------
# (d)

# The hostile agent: what a compromised guest can write to its report port
# (the port is the guest's: anything root in it can). `hostile.sh PHASE
# SECONDS` runs PHASE for SECONDS under `timeout -s KILL`, then writes its
# exit status to /tmp/hostile.done; /tmp/hostile.opened says the port was
# opened (the real agent must be stopped first: a port has one opener).
HOSTILE_SH = r"""# the hostile guest agent of autosize_hostile_agent (tests/vm/scenarios/autosize.py)
P=/dev/virtio-ports/org.memplug.report.0
M=18446744073709551615
case $1 in
_*) ;;
*)
	rm -f /tmp/hostile.done /tmp/hostile.opened
	timeout -s KILL "$2" sh "$0" "_$1"
	echo $? > /tmp/hostile.done
	exit 0 ;;
esac
n=0
until true 3>"$P" 2>/dev/null; do
	n=$((n + 1))
	[ $n -lt 100 ] || exit 3
	sleep 0.1
done
exec 3>"$P"
echo "$1" > /tmp/hostile.opened
s=0
case $1 in
_garbage)
	# a plausible line (give=0: nothing to take) and one bad one, 4 a second
	while :; do
		awk -v s=$s '/^MemTotal:/ { t = $2 * 1024 } /^MemAvailable:/ { a = $2 * 1024 }
			END { printf "memplug-report/1 seq=%d psi_some=0 total=%.0f avail=%.0f give=0 driver=memplug\n", s, t, a }' /proc/meminfo
		case $((s % 9)) in
		0) printf 'memplug-report/1 seq=1 seq=2\n' ;;
		1) printf 'memplug-report/2 seq=%d\n' $s ;;
		2) printf 'memplug-report/1 seq=%d psi_some=10001\n' $s ;;
		3) printf 'memplug-report/1 seq=18446744073709551616\n' ;;
		4) printf '\033[2J\033]0;pwned\007memplug-report/1 seq=%d\n' $s ;;
		5) head -c 512 /dev/urandom; echo ;;
		6) printf 'memplug-report/1 seq=%d total=1 avail=2\n' $s ;;
		7) head -c 3000 /dev/zero | tr '\0' x; echo ;;
		8) printf 'memplug-report/1  seq=%d\n' $s ;;
		esac
		s=$((s + 1))
		sleep 0.25
	done >&3 ;;
_flood)
	# as fast as the port takes it, shell builtins only (nothing left
	# holding the port when timeout kills the shell)
	c=$(cat /tmp/hostile.flood)
	while :; do printf '%s\n' "$c"; done >&3 ;;
_absurd)
	# valid lines with the largest numbers there are
	while :; do
		printf 'memplug-report/1 seq=%d psi_some=0 total=%s avail=%s give=%s driver=memplug\n' $s $M $M $M
		s=$((s + 1))
		sleep 0.5
	done >&3 ;;
esac
"""


def flood_chunk():
    """50 lies (psi 100 %, nothing available: grow me), then bad lines and
    an over-long one; no NUL (a shell variable holds it)."""
    lie = "memplug-report/1 seq=%d psi_some=10000 psi_full=10000 total=%d avail=0 give=0 " \
          "driver=memplug"
    lines = [lie % (i, 8 * GiB) for i in range(50)]
    lines += ["memplug-report/1 seq=1 seq=2", "memplug-report/1 avail=5",
              "memplug-report/2 seq=1", "memplug-report/1 seq=-1",
              "memplug-report/1 seq=1 psi_some=10001", "memplug-report/1 seq=99999999999999999999999",
              "memplug-report/1 seq=1 driver=m\xe9mplug", "\x1b[2J\x1b]0;pwned\x07",
              "memplug-report/1 seq=1 avail=" + "9" * 2000, "y" * 3000]
    return "\n".join(lines).encode("latin-1")


def put_file(vm, path, data):
    """Write bytes into a guest file through the agent (base64, 3000-byte
    pieces: the agent takes lines of up to 8 KiB)."""
    vm.sh(": > %s" % path)
    for i in range(0, len(data), 3000):
        vm.sh("echo %s | base64 -d >> %s" % (base64.b64encode(data[i:i + 3000]).decode(), path))


def hostile_phase(vm, phase, seconds):
    vm.sh("setsid sh /tmp/hostile.sh %s %d < /dev/null > /dev/null 2>&1 &" % (phase, seconds))


def hostile_wait(vm, phase, seconds):
    deadline = time.time() + seconds + 20
    while vm.sh("test -f /tmp/hostile.done", check=False)["rc"] != 0:
        if time.time() > deadline:
            raise TestFailure("the hostile %s phase did not end" % phase)
        time.sleep(0.5)
    if vm.sh("grep -qx _%s /tmp/hostile.opened" % phase, check=False)["rc"] != 0:
        raise TestFailure("the hostile %s phase could not open the port (exit %s)" % (
            phase, vm.sh("cat /tmp/hostile.done")["out"].strip()))


def report_counts(mpd, name):
    return mpd.vm_status(name)["report"]


@scenario("autosize_hostile_agent", tags=("autosize", "memplugd", "report", "hostile", "sbm"),
          reference_long=True, newest_kernel=True)
def hostile_agent(t):
    """A hostile agent in one guest writes garbage, a flood of lies, absurd
    numbers, then nothing to its report port: memplugd stays up with
    bounded CPU and memory, keeps that VM within its min and max (the
    liar gets its max, absurd numbers shrink it a step at a time to its
    min, silence freezes it), serves the honest guest next to it as
    usual, and takes the real agent back."""
    if t.driver != "memplug":
        raise Skip("memplugd's own scenario: the guest driver plays no part in it "
                   "(runs with memplug)")
    lo, hi, step = 256 * MiB, GiB, 256 * MiB
    cfg = daemon_config(t.driver, shrink_max_step="256M")
    buffer = parse_size(cfg["buffer"])
    with contextlib.ExitStack() as stack:
        bad, good = boot_all(t, stack, [spec("2G"), spec("3G")])
        put_file(bad, "/tmp/hostile.sh", HOSTILE_SH.encode())
        put_file(bad, "/tmp/hostile.flood", flood_chunk())
        wl = Workload(good, 4 * STEP_MIB, 0, log=t.log).start()
        mpd = stack.enter_context(Memplugd(
            [("hostile", bad, {"min": "256M", "max": "1G"}), ("honest", good, {})], cfg,
            log=t.log))
        sam = stack.enter_context(Sampler([("hostile", bad), ("honest", good)],
                                          mpd.status_path()))
        wait_reports(t, mpd, ["hostile", "honest"])
        t_min = sam.wait_for("hostile", lambda s: s.size == lo, 30,
                             "the hostile VM at its min", since=0).t
        if not any(d.reason == "below min 256 MiB" for d in mpd.decisions("hostile", "grow")):
            raise TestFailure("no 'below min' growth: %r" % mpd.decisions("hostile"))

        bad.sh("kill $(pidof memplug-report)", check=False)
        time.sleep(0.5)
        if bad.sh("pidof memplug-report", check=False)["out"].strip():
            raise TestFailure("memplug-report still runs in the hostile guest")

        # garbage: counted, ignored, said once
        r0, size0 = report_counts(mpd, "hostile"), sam.last("hostile").size
        hostile_phase(bad, "garbage", 6)
        hostile_wait(bad, "garbage", 6)
        r1 = report_counts(mpd, "hostile")
        t.log("# garbage: %d valid, %d invalid lines (last error: %s)" % (
            r1["valid"] - r0["valid"], r1["invalid"] - r0["invalid"], r1["last-error"]))
        if r1["invalid"] - r0["invalid"] < 10 or r1["valid"] - r0["valid"] < 5:
            raise TestFailure("garbage phase: %r -> %r" % (r0, r1))
        mpd.wait_line(r"^vm hostile: report channel: \d+ invalid lines \(last: ", 5,
                      "the invalid-lines line")
        if sam.last("hostile").size != size0:
            raise TestFailure("the garbage moved the hostile VM")
        mpd.check_alive("after the garbage")

        # a flood of lies, while the honest guest's workload ramps
        cpu0, t_f = mpd.cpu_s(), time.time()
        hostile_phase(bad, "flood", 14)
        time.sleep(1)
        ramp(t, wl, 4, pause=1.5)
        hostile_wait(bad, "flood", 14)
        cpu, wall = mpd.cpu_s() - cpu0, time.time() - t_f
        hwm = mpd.hwm_kib()
        r2 = report_counts(mpd, "hostile")
        t.log("# flood: memplugd %.2f s CPU in %.1f s, peak RSS %d KiB; %d bytes read, "
              "%d invalid, %d over the rate limit" % (
                  cpu, wall, hwm, r2["bytes"] - r1["bytes"], r2["invalid"] - r1["invalid"],
                  r2["rate-limited"] - r1["rate-limited"]))
        if cpu > 0.15 * wall or hwm > 16 * 1024:
            raise TestFailure("memplugd under the flood: %.2f s CPU in %.1f s, peak RSS %d KiB" %
                              (cpu, wall, hwm))
        if r2["rate-limited"] <= r1["rate-limited"]:
            raise TestFailure("the flood was not rate-limited: %r" % r2)
        check_in_bounds(sam, "hostile", lo, hi, t_min)
        if sam.last("hostile").requested != hi:
            raise TestFailure("the liar did not get its max (%s), nor more: %s" % (
                human(hi), human(sam.last("hostile").requested)))
        check_growths(t, "honest", sam, mpd, wl, buffer)
        # what the flood left in the sockets drains at the rate limit
        t_d, last = time.time(), None
        while True:
            b = report_counts(mpd, "hostile")["bytes"]
            if b == last:
                break
            if time.time() - t_d > 60:
                raise TestFailure("memplugd still reads the flood's backlog after 60 s")
            last = b
            time.sleep(2)
        t.log("# the flood's backlog drained in %.1f s" % (time.time() - t_d))

        # absurd numbers: a step at a time, down to min, never below
        t_a = time.time()
        hostile_phase(bad, "absurd", 14)
        sam.wait_for("hostile", lambda s: s.size == lo and s.requested == lo, 25,
                     "the hostile VM back at its min", since=t_a)
        # (a "frozen" line of the gap before this phase is behind us)
        n_abs = len(mpd.lines)
        hostile_wait(bad, "absurd", 14)
        shr = mpd.decisions("hostile", "shrink", t0=t_a)
        if not shr or any(d.frm - d.to > step or d.to < lo for d in shr):
            raise TestFailure("absurd numbers: shrinks %r (at most %s each, not below %s)" %
                              (shr, human(step), human(lo)))
        t.log("# absurd numbers: %s" % ", ".join("%d -> %d MiB" % (d.frm // MiB, d.to // MiB)
                                                   for d in shr))
        check_in_bounds(sam, "hostile", lo, hi, t_min)

        # silence: frozen, size held
        t_s = time.time()
        mpd.wait_line(r"^vm hostile: frozen: no report for ", 10, "the frozen line",
                      since=n_abs)
        check_held(sam, "hostile", 3, "while the guest is silent")
        v = mpd.vm_status("hostile")
        if v["state"] != "frozen" or not v["note"].startswith("no report for "):
            raise TestFailure("silent VM's status: %s / %s" % (v["state"], v["note"]))
        t.log("# silence: frozen %.1f s after the last line" % (time.time() - t_s))

        # the real agent again
        n, resets = len(mpd.lines), report_counts(mpd, "hostile")["seq-resets"]
        bad.sh("setsid /bin/memplug-report -i %d < /dev/null > /dev/null 2> /dev/kmsg &" %
               REPORT_MS)
        mpd.wait_line(r"^vm hostile: no longer frozen", 15, "'no longer frozen'", since=n)
        r3 = report_counts(mpd, "hostile")
        if r3["seq-resets"] <= resets:
            raise TestFailure("the agent's restart is not counted as a seq reset: %r" % r3)

        mpd.check_alive("at the end")
        invalid_lines = [ln for ln in mpd.text_lines() if "invalid lines" in ln]
        if len(invalid_lines) > 2:
            raise TestFailure("invalid lines logged %d times in under two minutes" %
                              len(invalid_lines))
        if oom_kills(bad):
            raise TestFailure("the OOM killer ran in the hostile guest")
        agree(sam, mpd, "honest")
        wl.finish(t)
        mpd.check_log()
        mpd.stop_clean()


# ---------------------------------------------------------------------------
# (e)

@scenario("autosize_daemon_restart", tags=("autosize", "memplugd", "report", "sbm"),
          reference_long=True, newest_kernel=True)
def daemon_restart(t):
    """memplugd crashes and is started again, then is stopped and started:
    each time it picks up the device's sizes as they are, moves nothing in
    its hold-down, carries on from the size it found (the next shrink
    starts there), and serves a shortage at once even in its hold-down."""
    # a hold-down long enough that the first daemon cannot shrink between
    # the release and its crash (its last growth is a few seconds before)
    cfg = daemon_config(t.driver, hold_down="10")
    buffer = parse_size(cfg["buffer"])
    hold = float(cfg["hold-down"])
    with contextlib.ExitStack() as stack:
        vm, = boot_all(t, stack, [spec("3G")])
        wl = Workload(vm, 6 * STEP_MIB, BASE_MIB, log=t.log).start()
        mpd = stack.enter_context(Memplugd([("vm1", vm, {})], cfg, log=t.log))
        sam = stack.enter_context(Sampler([("vm1", vm)], mpd.status_path()))
        wait_reports(t, mpd, ["vm1"])
        ramp(t, wl, 4, pause=2.0)
        settled(sam, "vm1", buffer, GROW_MAX_S * 2, "the ramp met")
        # most of it goes: the guest has memory to give (two shrinks' worth
        # at shrink-ratio 50 %), and the daemon is in its hold-down
        wl.release(3 * STEP_MIB)

        def restart(how):
            sam.wait_for("vm1", lambda s: s.size == s.requested, 30,
                         "no change in progress before the %s" % how)
            if how == "crash":
                mpd.crash()
                rc, out = mpd.status_cmd()
                if rc != 3 or "NOT RUNNING (status left over)" not in out:
                    raise TestFailure("--status after a crash: exit %d: %s" % (rc, out[:200]))
            else:
                mpd.stop_clean()
            held = check_held(sam, "vm1", 2, "while memplugd is down (%s)" % how)
            t0 = time.time()
            mpd.start()
            _, line = mpd.wait_line(r"^vm vm1: QMP connected: .*picked up", 15,
                                    "the pick-up line", since=mpd.since_start())
            want = "picked up requested %d MiB, plugged %d MiB" % (held.requested // MiB,
                                                                   held.size // MiB)
            if want not in line:
                raise TestFailure("after the %s: %r, the device has %s" % (how, line, want))
            t.log("# %s: %s" % (how, line))
            return t0, held

        # a crash, then nothing moves in the hold-down, then it carries on
        t0, held = restart("crash")
        time.sleep(max(0.0, hold - 1.5 - (time.time() - t0)))
        for s in sam.series("vm1", t0):
            if s.requested != held.requested:
                raise TestFailure("requested %s -> %s %.1f s after the restart, in its "
                                  "hold-down of %.0f s" % (human(held.requested),
                                                           human(s.requested), s.t - t0, hold))
        d = None
        deadline = time.time() + 15
        while not d:
            if time.time() > deadline:
                raise TestFailure("no shrink after the hold-down: %s" %
                                  mpd.vm_status("vm1")["note"])
            d = mpd.decisions("vm1", "shrink", since=mpd.since_start())
            time.sleep(0.3)
        d = d[0]
        if d.frm != held.requested or d.t - t0 < hold - 0.5 or \
                not d.reason.startswith("idle: available"):
            raise TestFailure("first decision after the crash: %r at %.1f s, from %s expected "
                              "after %.0f s" % (d, d.t - t0, human(held.requested), hold))
        t.log("# first shrink %.1f s after the restart: %r" % (d.t - t0, d))
        # shrinking done: in its band, nothing in progress
        deadline = time.time() + 30
        while mpd.vm_status("vm1")["state"] != "steady" or \
                sam.last("vm1").size != sam.last("vm1").requested:
            if time.time() > deadline:
                raise TestFailure("not back in its band after the shrinks: %s" %
                                  mpd.vm_status("vm1")["note"])
            time.sleep(0.3)

        # a clean stop and start, then a shortage in the hold-down
        t0, held = restart("stop")
        n = len(mpd.lines)
        steps0 = len(wl.steps)
        wl.step(STEP_MIB)
        wl.step(STEP_MIB)
        g = sam.wait_for("vm1", lambda s: s.size > held.size, GROW_MAX_S * 2,
                         "growth in the hold-down", since=t0)
        grows = mpd.decisions("vm1", "grow", since=n)
        if not grows or grows[0].frm != held.requested or "available" not in grows[0].reason:
            raise TestFailure("first growth after the restart: %r (from %s expected)" % (
                grows[:1], human(held.requested)))
        t.log("# grew %.1f s after the restart (%.1f s after the step began), from %s" % (
            g.t - t0, g.t - wl.steps[steps0][0], human(held.size)))
        if mpd.decisions("vm1", "shrink", since=n):
            raise TestFailure("shrank in the hold-down after the restart")
        settled(sam, "vm1", buffer, GROW_MAX_S * 2, "the shortage met")
        agree(sam, mpd, "vm1")
        wl.finish(t)
        mpd.check_log()
        mpd.stop_clean()
