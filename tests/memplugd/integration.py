#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""memplugd against fake QMP peers (tests/tools/fake_qmp.py, mode autosize)
and fake guests (fake_guest.py): what a user sees, without a VM.

Usage: integration.py MEMPLUGD [SCENARIO...]   (KTAP on stdout)

Every scenario starts its own peers and daemon in a directory of its own,
with short intervals (a tick of 100 ms, a hold-down of 2 s), and checks
the sizes the fake device was asked for, the daemon's log lines and its
status file.  JOBS scenarios run at a time (default 3); VALGRIND=0 skips
the valgrind scenario; KEEP=1 keeps their directories.
"""
import concurrent.futures
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "vm"))
sys.path.insert(0, HERE)
from ktap import KTAP  # noqa: E402
from fake_guest import Qmp  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
FAKE_QMP = os.path.join(TOP, "tests", "tools", "fake_qmp.py")
FAKE_GUEST = os.path.join(HERE, "fake_guest.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")

FAST = {
    "interval": "0.1",
    "qmp-timeout": "1",
    "reconnect-max": "0.5",
    "report-timeout": "1",
    "psi-hold": "1",
    "hold-down": "2",
    "shrink-interval": "0.5",
    "settle-time": "1",
    "retry-after": "3",
}


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def wait_for(cond, timeout, what, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failed("timed out after %.1f s waiting for: %s" % (timeout, what))
        time.sleep(step)


def wait_socket(path, proc, timeout=10):
    def ready():
        if proc.poll() is not None:
            raise Failed("%s exited (%s) before listening" % (proc.args, proc.returncode))
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            return True
        except OSError:
            return False
        finally:
            s.close()
    wait_for(ready, timeout, "socket " + path)


def mib(v):
    return v // MiB


class Env:
    """One scenario's fake VMs, daemon and files."""

    def __init__(self, memplugd, name):
        self.memplugd = memplugd
        self.dir = tempfile.mkdtemp(prefix="memplugd-%s." % re.sub(r"\W+", "-", name)[:20])
        self.rundir = os.path.join(self.dir, "run")
        self.procs = []
        self.qmps = {}
        self.daemon_proc = None
        self.logs = []
        self.qmp_procs = {}
        self.notes = []

    def path(self, name):
        return os.path.join(self.dir, name)

    def start_qmp(self, vm, requested, block=2 * MiB, region=8 * GiB, size=None, step=512 * MiB,
                  floor=0, mode="autosize"):
        """A fake QEMU (tests/tools/fake_qmp.py) in mode `mode`; only "autosize"
        serves more than one client, so only then does the test watch it."""
        env = dict(os.environ, FAKE_VMEM_BLOCK=str(block), FAKE_VMEM_MAX=str(region),
                   FAKE_VMEM_REQUESTED=str(requested),
                   FAKE_VMEM_SIZE=str(requested if size is None else size),
                   FAKE_VMEM_STEP=str(step), FAKE_VMEM_FLOOR=str(floor))
        p = subprocess.Popen([sys.executable, FAKE_QMP, mode, self.path(vm + ".qmp")],
                             env=env, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        self.qmp_procs[vm] = p
        wait_socket(self.path(vm + ".qmp"), p)
        if mode == "autosize":
            self.qmps[vm] = Qmp(self.path(vm + ".qmp"))

    def kill_qmp(self, vm):
        p = self.qmp_procs.pop(vm)
        p.kill()
        p.wait()

    def start_guest(self, vm, qmp=True, **control):
        """qmp=False: the device's sizes are the control's (a libvirt domain's VM)."""
        self.control(vm, **control)
        p = subprocess.Popen([sys.executable, FAKE_GUEST, self.path(vm + ".rep"),
                              self.path(vm + ".qmp") if qmp else "-", self.path(vm + ".ctl")],
                             stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_socket(self.path(vm + ".rep"), p)

    def control(self, vm, **control):
        tmp = self.path(vm + ".ctl.tmp")
        with open(tmp, "w") as f:
            json.dump(control, f)
        os.rename(tmp, self.path(vm + ".ctl"))

    def config(self, vms, **daemon):
        d = dict(FAST)
        d.update({k.replace("_", "-"): v for k, v in daemon.items()})
        lines = ["[daemon]"] + ["%s = %s" % kv for kv in d.items()]
        for name, keys in vms.items():
            # a libvirt domain ("libvirt" and "domain" in keys) has no QMP socket
            lines += ["", "[vm %s]" % name] + \
                ([] if "libvirt" in keys else ["qmp = " + self.path(name + ".qmp")]) + \
                ["report = " + self.path(name + ".rep")]
            lines += ["%s = %s" % kv for kv in keys.items()]
        with open(self.path("memplugd.conf"), "w") as f:
            f.write("\n".join(lines) + "\n")
        return self.path("memplugd.conf")

    def start_daemon(self, prefix=()):
        log = self.path("daemon%d.log" % len(self.logs))
        self.logs.append(log)
        self.daemon_log_file = open(log, "wb")
        self.daemon_proc = subprocess.Popen(
            list(prefix) + [self.memplugd, "-c", self.path("memplugd.conf"), "-s", self.rundir],
            stdout=self.daemon_log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(self.daemon_proc)
        self.t0 = time.monotonic()
        return self.daemon_proc

    def stop_daemon(self, timeout=10):
        p = self.daemon_proc
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise Failed("memplugd did not stop within %d s of SIGTERM" % timeout)
        self.daemon_log_file.close()
        return rc

    def log(self, index=-1):
        with open(self.logs[index], "rb") as f:
            return f.read().decode("ascii", "replace")

    def alive(self):
        check(self.daemon_proc.poll() is None,
              "memplugd exited (%s)" % self.daemon_proc.returncode)

    def sizes(self, vm):
        s = self.qmps[vm].sizes()
        check(s is not None, "the fake QMP peer of %s does not answer" % vm)
        return s  # (plugged, requested)

    def requested(self, vm):
        return self.sizes(vm)[1]

    def status(self):
        path = os.path.join(self.rundir, "status.json")
        wait_for(lambda: os.path.exists(path), 5, "the status file")
        with open(path) as f:
            return json.load(f)

    def vm_status(self, vm):
        for v in self.status()["vms"]:
            if v["name"] == vm:
                return v
        raise Failed("%s is not in the status file" % vm)

    def run(self, *args):
        return subprocess.run([self.memplugd] + list(args), capture_output=True, text=True,
                              timeout=20)

    def cleanup(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
            p.wait()
        if os.environ.get("KEEP") == "1":
            print("# kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def diag(self):
        out = []
        for log in self.logs:
            try:
                with open(log, "rb") as f:
                    lines = f.read().decode("ascii", "replace").splitlines()
                out.append("%s (last 25 lines):" % os.path.basename(log))
                out += lines[-25:]
            except OSError:
                pass
        return "\n".join(out)


def track(env, vm, until, timeout, what):
    """Sample vm's (plugged, requested) every 50 ms until until(history) or
    timeout; history is a list of (t since daemon start, plugged, requested)."""
    hist = []
    deadline = time.monotonic() + timeout
    while True:
        plugged, requested = env.sizes(vm)
        t = time.monotonic() - env.t0
        if not hist or (plugged, requested) != hist[-1][1:]:
            hist.append((t, plugged, requested))
        if until(hist):
            return hist
        if time.monotonic() > deadline:
            raise Failed("timed out after %.1f s waiting for %s; seen: %s" % (
                timeout, what, [(round(t, 2), mib(p), mib(r)) for t, p, r in hist]))
        time.sleep(0.05)


def changes(hist):
    """(t, from, to) of every change of the requested size."""
    return [(t, a[2], r) for a, (t, p, r) in zip(hist, hist[1:]) if r != a[2]]


def decisions(log, vm, action=None):
    pat = r"^vm %s: (%s) (\d+) MiB -> (\d+) MiB: (.*)$" % (
        re.escape(vm), action or "grow|shrink|reclaim|realign")
    return re.findall(pat, log, re.M)


# ---------------------------------------------------------------------------
# Scenarios: each gets an Env and raises Failed


def s_command_line(env):
    """usage and configuration errors: exit 64 / 78, one line naming the file and line"""
    bad = env.path("bad.conf")
    with open(bad, "w") as f:
        f.write("[daemon]\ninterval = 1\n[vm a]\nqmp = /q\nreport = /r\nfrob = 2\n")
    r = env.run("-c", bad)
    check(r.returncode == 78, "bad config: exit %d, want 78" % r.returncode)
    check(r.stderr == "memplugd: %s:6: unknown key 'frob' in [vm a]\n" % bad,
          "bad config message: %r" % r.stderr)
    r = env.run("--check-config", "-c", bad)
    check(r.returncode == 78, "--check-config of a bad config: exit %d" % r.returncode)
    r = env.run("-c", env.path("missing.conf"))
    check(r.returncode == 78 and "No such file" in r.stderr, "missing config: %r" % r.stderr)
    good = env.config({"a": {"max": "4G", "weight": "3"}}, budget="10G")
    r = env.run("-t", "-c", good)
    check(r.returncode == 0, "--check-config: exit %d %s" % (r.returncode, r.stderr))
    check("valid: 1 VM, budget 10240 MiB, every 100 ms" in r.stdout, r.stdout)
    check("vm a: qmp %s" % env.path("a.qmp") in r.stdout and "max 4096 MiB" in r.stdout
          and "weight 3" in r.stdout, r.stdout)
    for args, msg in ((["--frob"], "unknown option '--frob'"),
                      (["--json"], "--json only goes with --status"),
                      (["-c"], "needs an argument"),
                      (["extra"], "unexpected argument")):
        r = env.run(*args)
        check(r.returncode == 64 and msg in r.stderr, "%s: %d %r" % (args, r.returncode,
                                                                      r.stderr))
    r = env.run("--status", "-s", env.path("nowhere"))
    check(r.returncode == 1 and "memplugd is not running" in r.stderr,
          "--status without a daemon: %d %r" % (r.returncode, r.stderr))
    r = env.run("--version")
    check(r.returncode == 0 and r.stdout.startswith("memplugd "), r.stdout)


def s_pressure(env):
    """pressure: grows at once, in block-aligned steps, up to max; PSI grows once per psi-hold"""
    env.start_qmp("a", 2 * GiB, block=128 * MiB)
    env.start_qmp("b", GiB)
    # a: 200 MiB available (buffer 512 MiB); b: in its band but PSI 20 %
    env.start_guest("a", base=GiB, used=GiB + 2 * GiB - 200 * MiB)
    env.start_guest("b", base=GiB, used=2 * GiB - 612 * MiB, psi=2000)
    env.config({"a": {"max": "3G"}, "b": {"max": "8G"}})
    env.start_daemon()
    hist = track(env, "a", lambda h: h[-1][2] != 2 * GiB, 3, "a to grow")
    check(hist[-1][2] == 2432 * MiB, "a grew to %d MiB, want 2432 (312 MiB short: 3 blocks)"
          % mib(hist[-1][2]))
    check(hist[-1][0] < 3.0, "a grew only after %.2f s" % hist[-1][0])
    wait_for(lambda: decisions(env.log(), "a"), 2, "a's log line")
    check(decisions(env.log(), "a")[0] ==
          ("grow", "2048", "2432", "available 200 MiB < buffer 512 MiB"),
          "a's log line: %s" % (decisions(env.log(), "a"),))
    # much more pressure: up to max, never beyond
    env.control("a", base=GiB, used=6 * GiB)
    hist = track(env, "a", lambda h: h[-1][2] >= 3 * GiB, 3, "a to reach max")
    check(all(r <= 3 * GiB and r % (128 * MiB) == 0 for _, _, r in hist), "a: %s" % hist)
    # b: PSI alone, 256 MiB per psi-hold (1 s)
    hist = track(env, "b", lambda h: len(changes(h)) >= 2, 5, "two PSI growths of b")
    ch = changes(hist)
    check(ch[0][2] - ch[0][1] == 256 * MiB, "PSI step %d MiB" % mib(ch[0][2] - ch[0][1]))
    check(ch[1][0] - ch[0][0] >= 0.75, "PSI growths %.2f s apart (psi-hold 1 s)"
          % (ch[1][0] - ch[0][0]))
    check(decisions(env.log(), "b")[0][3] == "psi some 20.00% > 10%",
          "b's reason: %s" % (decisions(env.log(), "b")[0],))
    env.control("b", base=GiB, used=GiB + ch[1][2] - 612 * MiB, psi=0)
    time.sleep(0.5)
    # steady: no decision, no log line, for a second
    before = env.log()
    rb = env.requested("b")
    time.sleep(1.2)
    check(env.log() == before, "log lines while steady:\n" + env.log()[len(before):])
    check(env.requested("a") == 3 * GiB and env.requested("b") == rb, "sizes moved")
    st = env.vm_status("a")
    check(st["state"] == "limited" and "at max 3072 MiB" in st["note"],
          "a's status: %s %s" % (st["state"], st["note"]))
    env.alive()


def s_idle(env):
    """idle: shrinks slowly after the hold-down, at most 1 GiB a step, never below min"""
    env.start_qmp("a", 6 * GiB)
    env.start_guest("a", base=GiB, used=GiB)
    env.config({"a": {"min": "2G"}}, shrink_interval="1")
    env.start_daemon()
    hist = track(env, "a", lambda h: h[-1][2] == 2 * GiB, 15, "a to shrink to min")
    ch = changes(hist)
    check(ch[0][0] >= 1.9, "first shrink %.2f s after start (hold-down 2 s)" % ch[0][0])
    check(all(f - t <= GiB and t < f for _, f, t in ch), "steps: %s" % ch)
    # seen by polling QMP every 50 ms: a loaded host delays a sighting
    check(all(b[0] - a[0] >= 0.8 for a, b in zip(ch, ch[1:])),
          "shrinks less than 1 s (shrink-interval) apart: %s" % ch)
    check(len(ch) >= 4, "only %d steps: %s" % (len(ch), ch))
    time.sleep(1)
    check(env.requested("a") == 2 * GiB, "below min")
    check(len(decisions(env.log(), "a", "shrink")) == len(ch), "one log line per shrink")
    check(all(r[3].startswith("idle: available") for r in decisions(env.log(), "a")),
          "reasons: %s" % decisions(env.log(), "a"))


def s_silence(env):
    """silence: no reports freeze the size; shrinking stops when the reports do"""
    env.start_qmp("a", 6 * GiB)
    env.start_guest("a", mode="silent", base=GiB, used=GiB)
    env.config({"a": {}})
    env.start_daemon()
    time.sleep(3)
    check(env.requested("a") == 6 * GiB, "moved without reports")
    st = env.vm_status("a")
    check(st["state"] == "frozen" and st["note"] == "no report yet: size held",
          "status: %s / %s" % (st["state"], st["note"]))
    check("vm a: frozen: no report yet: size held" in env.log(), "no 'frozen' log line")
    env.control("a", base=GiB, used=GiB)
    track(env, "a", lambda h: h[-1][2] < 6 * GiB, 3, "a to shrink once reports come")
    env.control("a", mode="silent", base=GiB, used=GiB)
    time.sleep(1.3)  # report-timeout 1 s, and a tick
    frozen_at = env.requested("a")
    time.sleep(1.5)  # three shrink intervals
    check(env.requested("a") == frozen_at, "shrank without fresh reports")
    st = env.vm_status("a")
    check(st["state"] == "frozen" and st["note"].startswith("no report for "),
          "status: %s / %s" % (st["state"], st["note"]))


def s_garbage(env):
    """garbage: malformed lines are counted and ignored, the VM keeps its size"""
    env.start_qmp("a", 2 * GiB)
    env.start_guest("a", mode="garbage", base=GiB, used=3 * GiB - 612 * MiB)
    env.config({"a": {}})
    env.start_daemon()
    wait_for(lambda: env.vm_status("a")["report"]["invalid"] >= 15, 5, "15 invalid lines")
    time.sleep(1)
    st = env.vm_status("a")
    check(st["report"]["valid"] >= 5, "valid lines lost among the garbage: %s" % st["report"])
    check(st["report"]["last-error"], "no last-error")
    check(env.requested("a") == 2 * GiB, "moved: %d MiB" % mib(env.requested("a")))
    log = env.log()
    check(re.search(r"vm a: report channel: \d+ invalid lines \(last: [^)]+\)", log),
          "no 'invalid lines' line")
    check(len(re.findall("invalid lines", log)) == 1, "invalid lines logged more than once a "
          "minute")
    with open(env.logs[-1], "rb") as f:
        raw = f.read()
    check(all(32 <= c < 127 or c == 10 for c in raw), "unprintable bytes in the log")
    env.alive()


def proc_cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def s_flood(env):
    """flood: a guest writing lies as fast as it can costs bounded CPU and memory; the VM stays in [min, max]"""
    env.start_qmp("a", 2 * GiB)
    env.start_guest("a", mode="flood")
    env.config({"a": {"min": "1G", "max": "4G"}})
    pid = env.start_daemon().pid
    time.sleep(0.5)
    cpu0, t0 = proc_cpu(pid), time.monotonic()
    hist = track(env, "a", lambda h: False if time.monotonic() - t0 < 4 else True, 6,
                 "4 s of flood")
    cpu = proc_cpu(pid) - cpu0
    wall = time.monotonic() - t0
    rss = proc_rss_kib(pid)
    st = env.vm_status("a")
    rep = st["report"]
    env.notes.append("flood: %.2f s CPU in %.1f s, peak RSS %d KiB, %d bytes read, %d valid, "
                     "%d invalid, %d over the rate limit" % (
                         cpu, wall, rss, rep["bytes"], rep["valid"], rep["invalid"],
                         rep["rate-limited"]))
    check(cpu <= 0.15 * wall, "%.2f s of CPU in %.1f s" % (cpu, wall))
    check(rss <= 16 * 1024, "peak RSS %d KiB" % rss)
    # the reader takes at most 20 lines of 1024 bytes a second (and a second's burst)
    check(rep["bytes"] <= 20 * 1024 * (time.monotonic() - env.t0 + 1.5),
          "read %d bytes" % rep["bytes"])
    check(rep["rate-limited"] > 0 and rep["invalid"] > 0, "counters: %s" % rep)
    check(all(GiB <= r <= 4 * GiB for _, _, r in hist), "left [min, max]: %s" % hist)
    check(env.requested("a") == 4 * GiB, "the liar did not get its max")
    env.alive()


def s_event_storm(env):
    """event storm: a QEMU that sends events without end costs bounded CPU; the daemon backs off"""
    # The fake answers query-memory-devices, then sends events in bursts
    # of 20000 into a 64 MiB deep socket: a reader that takes everything
    # it is sent spins, a command's reply waits behind the flood.
    env.start_qmp("a", 2 * GiB, mode="event-storm-later")
    # the default tick (between two, only the mute keeps the daemon from
    # reading all the time) and backoff
    env.config({"a": {}}, interval="1", report_timeout="2", reconnect_max="30")
    pid = env.start_daemon().pid
    wait_for(lambda: "vm a: QMP connected" in env.log(), 5, "the first connection")
    cpu0, t0 = proc_cpu(pid), time.monotonic()
    time.sleep(10)
    cpu, wall = proc_cpu(pid) - cpu0, time.monotonic() - t0
    again = env.log().count("QMP connected again")
    env.notes.append("event storm: %.2f s CPU in %.1f s, %d reconnections" % (cpu, wall, again))
    check(cpu <= 0.15 * wall, "%.2f s of CPU in %.1f s" % (cpu, wall))
    check("event storm: more than 10000 events" in env.log(), "no 'event storm' in the log")
    # each query finds the flood and drops the link: 0.5, 1, 2, 4 s apart,
    # not every 0.5 s after a connection that lasted a tick
    check(again <= 4, "%d reconnections in %.0f s: the backoff starts over" % (again, wall))
    env.alive()


def s_absurd(env):
    """absurd numbers: 2^64-1 available and to give shrinks 1 GiB at a time, never below min"""
    env.start_qmp("a", 6 * GiB + 512 * MiB)
    env.start_guest("a", mode="absurd")
    env.config({"a": {"min": "3G"}}, hold_down="0.5")
    env.start_daemon()
    hist = track(env, "a", lambda h: h[-1][2] <= 3 * GiB, 6, "a at min")
    ch = changes(hist)
    check([(f - t) for _, f, t in ch] == [GiB] * 3 + [512 * MiB], "steps: %s" % ch)
    time.sleep(1)
    check(env.requested("a") == 3 * GiB, "below min")
    env.alive()


def s_budget(env):
    """budget: memory goes to the VM under pressure, taken from the idle one; the sum stays within the budget"""
    env.start_qmp("a", 5 * GiB)
    env.start_qmp("b", GiB)
    env.start_guest("a", base=GiB, used=GiB)
    env.start_guest("b", base=GiB, used=GiB + 3584 * MiB)
    env.config({"a": {}, "b": {}}, budget="6G")
    env.start_daemon()

    def sample(h):
        # b first: it only grows, a only shrinks, so reading them one after
        # the other never adds up to more than there was at any moment
        pb, rb = env.sizes("b")
        pa, ra = env.sizes("a")
        check(max(pa, ra) + max(pb, rb) <= 6 * GiB,
              "over the budget: a %d/%d b %d/%d MiB" % (mib(pa), mib(ra), mib(pb), mib(rb)))
        return h[-1][2] >= 4 * GiB
    track(env, "b", sample, 12, "b to get 4 GiB")
    check(env.requested("a") <= 2 * GiB, "a kept %d MiB" % mib(env.requested("a")))
    rec = decisions(env.log(), "a", "reclaim")
    check(rec and "taken for b (under pressure)" in rec[0][3], "reclaim lines: %s" % rec)
    st = env.status()
    check(st["budget"]["limited"] and st["budget"]["bytes"] == 6 * GiB, "budget %s"
          % st["budget"])
    # --status, human and JSON
    r = env.run("--status", "-s", env.rundir)
    check(r.returncode == 0 and "vm a:" in r.stdout and "vm b:" in r.stdout and
          "budget 6 GiB" in r.stdout, "--status: %d %s" % (r.returncode, r.stdout))
    r = env.run("--status", "--json", "-s", env.rundir)
    js = json.loads(r.stdout)
    check(r.returncode == 0 and js["running"] and len(r.stdout.splitlines()) == 1,
          "--status --json: %d" % r.returncode)
    names = [v["name"] for v in js["vms"]]
    check(names == ["a", "b"], "names %s" % names)
    for v in js["vms"]:
        pl, rq = env.sizes(v["name"])
        check(v["device"]["id"] == "vmem0" and v["device"]["block-size"] == 2 * MiB and
              v["report"]["valid"] > 0 and v["qmp"]["connected"], "status of %s: %s"
              % (v["name"], v))
    check(js["vms"][1]["last-decision"]["action"] == "grow", "b's last decision")
    rc = env.stop_daemon()
    check(rc == 0, "memplugd exited %d on SIGTERM" % rc)
    r = env.run("--status", "-s", env.rundir)
    check(r.returncode == 1 and "not running" in r.stderr, "--status after stop: %d %r"
          % (r.returncode, r.stderr))
    check("stopping (Terminated); requested sizes stay as they are" in env.log(),
          "no stop line")


def s_host_reserve(env):
    """host-reserve: growth only from the host's MemAvailable above the reserve; nothing when it cannot be read"""
    meminfo = env.path("meminfo")

    def host_avail(kib):
        with open(meminfo + ".tmp", "w") as f:
            f.write("MemTotal:       16000000 kB\nMemFree:         1000 kB\n"
                    "MemAvailable:   %d kB\nBuffers:          100 kB\n" % kib)
        os.rename(meminfo + ".tmp", meminfo)
    host_avail((GiB + 256 * MiB) // 1024)
    env.start_qmp("a", 2 * GiB)
    env.start_guest("a", base=GiB, used=3 * GiB)  # nothing available: 512 MiB short
    env.config({"a": {}}, host_reserve="1G", host_meminfo=meminfo)
    env.start_daemon()
    hist = track(env, "a", lambda h: h[-1][2] != 2 * GiB, 3, "a to grow")
    check(hist[-1][2] == 2 * GiB + 256 * MiB, "grew to %d MiB, want 2304 (256 MiB above the "
          "reserve)" % mib(hist[-1][2]))
    check("limited by the budget 2304 MiB to +256 of +512 MiB" in decisions(env.log(), "a")[0][3],
          "decision: %s" % (decisions(env.log(), "a"),))
    st = env.status()["budget"]
    check(st["host-reserve"] == GiB and st["host-available"] is not None, "status %s" % st)
    # the host has less than the reserve free: no more growth (this fake
    # host's MemAvailable does not follow the VM: it may have grown once more)
    host_avail((GiB - 100 * MiB) // 1024)
    time.sleep(0.6)
    size = env.requested("a")
    time.sleep(1.5)
    check(env.requested("a") == size, "grew below the reserve")
    wait_for(lambda: "held by the budget" in env.vm_status("a")["note"], 2, "held")
    # MemAvailable unknown: nobody grows, said once
    os.unlink(meminfo)
    time.sleep(1)
    check(env.requested("a") == size, "grew without knowing the host")
    check(env.log().count("cannot read MemAvailable from %s: No such file or directory; no VM "
                          "grows" % meminfo) == 1, "the 'cannot read' line, once")
    check(env.status()["budget"]["host-available"] is None, "status: host-available")
    host_avail((8 * GiB) // 1024)
    track(env, "a", lambda h: h[-1][2] > size, 3, "growth once it is back")


def s_restart(env):
    """restart: after a crash the new daemon picks up the sizes and carries on without a jolt"""
    env.start_qmp("a", 6 * GiB)
    env.start_guest("a", base=GiB, used=GiB)
    env.config({"a": {}})
    first = env.start_daemon()
    hist = track(env, "a", lambda h: h[-1][2] < 6 * GiB, 5, "a first shrink")
    size = hist[-1][2]
    wait_for(lambda: env.sizes("a")[0] == size, 2, "a plugged")
    first.kill()  # a crash: the status file stays behind
    first.wait()
    r = env.run("--status", "-s", env.rundir)
    check(r.returncode == 3 and "NOT RUNNING (status left over)" in r.stdout,
          "--status of a dead daemon: %d %s" % (r.returncode, r.stdout[:200]))
    r = env.run("--status", "--json", "-s", env.rundir)
    check(r.returncode == 3 and json.loads(r.stdout)["running"] is False,
          "--status --json of a dead daemon: %d" % r.returncode)
    env.start_daemon()
    wait_for(lambda: "picked up" in env.log(), 3, "the pick-up line")
    check("picked up requested %d MiB, plugged %d MiB" % (mib(size), mib(size)) in env.log(),
          "pick-up line: %s" % env.log())
    hist = track(env, "a", lambda h: time.monotonic() - env.t0 > 1.7, 3, "1.7 s")
    check(len(hist) == 1 and hist[0][2] == size,
          "changed within the hold-down after restart: %s" % hist)
    track(env, "a", lambda h: h[-1][2] < size, 3, "a to shrink after the hold-down")


def s_stopped_short(env):
    """stopped short: the guest's refusal is an answer: realigned to plugged, no push before retry-after"""
    env.start_qmp("a", 4608 * MiB, floor=4 * GiB)
    env.start_guest("a", base=GiB, used=GiB)
    env.config({"a": {}}, hold_down="0.5")
    env.start_daemon()
    hist = track(env, "a", lambda h: h[-1][2] == 4 * GiB and h[-1][1] == 4 * GiB, 6,
                 "realign to 4 GiB")
    ch = changes(hist)
    check(ch[0][2] < 4 * GiB and ch[-1][2] == 4 * GiB, "changes %s" % ch)
    re_ = decisions(env.log(), "a", "realign")
    check(len(re_) == 1 and re_[0][1:3] == (str(mib(ch[0][2])), "4096") and
          "guest stopped short shrinking at 4096 MiB (unplug=blocked)" in re_[0][3],
          "realign line: %s" % re_)
    check(ch[-1][0] - ch[0][0] >= 0.8, "realigned after %.2f s (settle-time 1 s)"
          % (ch[-1][0] - ch[0][0]))
    shrinks = len(decisions(env.log(), "a", "shrink"))
    time.sleep(2.3)
    check(len(decisions(env.log(), "a", "shrink")) == shrinks and
          env.requested("a") == 4 * GiB, "pushed again before retry-after")
    check(env.vm_status("a")["state"] == "held", "state %s" % env.vm_status("a")["state"])


def s_qmp_lost(env):
    """QMP lost: the VM is left alone, the daemon reconnects and picks the sizes up again"""
    env.start_qmp("a", 3 * GiB)
    env.start_guest("a", base=GiB, used=3 * GiB + 624 * MiB)
    env.config({"a": {}})
    env.start_daemon()
    wait_for(lambda: decisions(env.log(), "a", "grow"), 3, "a grow")
    time.sleep(0.5)
    size = env.requested("a")
    env.kill_qmp("a")
    wait_for(lambda: "vm a: lost QMP" in env.log(), 3, "the 'lost QMP' line")
    wait_for(lambda: not env.vm_status("a")["qmp"]["connected"], 2, "status: not connected")
    check(env.vm_status("a")["state"] == "unknown", "state")
    env.start_qmp("a", size)
    wait_for(lambda: "QMP connected again" in env.log(), 4, "reconnection")
    check(re.search(r"vm a: QMP connected again: .*picked up requested %d MiB" % mib(size),
                    env.log()), "pick-up after reconnection")
    check(env.vm_status("a")["qmp"]["connected"], "status: connected")
    env.alive()


def s_sighup(env):
    """SIGHUP: a valid configuration restarts in place, an invalid one is refused"""
    env.start_qmp("a", 2 * GiB)
    env.start_guest("a", base=GiB, used=3 * GiB - 700 * MiB)
    conf = env.config({"a": {}})
    p = env.start_daemon()
    wait_for(lambda: "picked up" in env.log(), 3, "start")
    with open(conf, "a") as f:
        f.write("frob = 1\n")
    p.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP" in env.log(), 3, "the SIGHUP line")
    check(re.search(r"SIGHUP: .*memplugd.conf:\d+: unknown key 'frob' in \[vm a\]; keeping "
                    "the running configuration", env.log()), "refusal line")
    env.config({"a": {"max": "2G"}})
    p.send_signal(signal.SIGHUP)
    wait_for(lambda: env.log().count("vm a: QMP connected") == 2, 4, "the restart in place")
    check(p.poll() is None, "the daemon exited")
    wait_for(lambda: env.vm_status("a")["max"] == 2 * GiB, 3, "the new max in the status")
    check(env.status()["pid"] == p.pid, "pid changed")
    check(env.stop_daemon() == 0, "exit status")


def fake_root(root, avail_kib, psi="1.23"):
    """/proc and /sys of a 4 GiB guest with memplug bound to one virtio-mem
    device, as tests/report/run.sh makes them for the agent (-r ROOT)."""
    proc = os.path.join(root, "proc")
    os.makedirs(os.path.join(proc, "pressure"), exist_ok=True)

    def write(path, lines):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.rename(tmp, path)
    write(os.path.join(proc, "pressure", "memory"),
          ["some avg10=%s avg60=0.50 avg300=0.10 total=123456" % psi,
           "full avg10=0.45 avg60=0.20 avg300=0.00 total=6543"])
    write(os.path.join(proc, "meminfo"),
          ["MemTotal:        4011880 kB", "MemFree:         3500000 kB",
           "MemAvailable:    %d kB" % avail_kib, "Buffers:           12345 kB"])
    write(os.path.join(proc, "vmstat"), ["nr_free_pages 875000", "pswpin 12", "pswpout 34"])
    zones = []
    for z, mn, hi in (("DMA", 21, 31), ("DMA32", 2116, 3660), ("Normal", 1000, 1500)):
        zones += ["Node 0, zone %8s" % z, "  pages free     3840", "        boost    0",
                  "        min      %d" % mn, "        low      %d" % (mn + 5),
                  "        high     %d" % hi, "        promo    %d" % (hi + 5),
                  "        spanned  4095", "  pagesets", "    cpu: 0",
                  "              count:    512", "              high:     1444",
                  "              batch:    63", "  node_unreclaimable:  0"]
    write(os.path.join(proc, "zoneinfo"), zones)
    dev = os.path.join(root, "sys/devices/pci0000:00/0000:00:04.0/virtio4")
    if os.path.exists(dev):
        return
    os.makedirs(os.path.join(dev, "memplug"))
    os.makedirs(os.path.join(root, "sys/bus/virtio/devices"))
    os.makedirs(os.path.join(root, "sys/bus/virtio/drivers/memplug"))
    with open(os.path.join(dev, "device"), "w") as f:
        f.write("0x0018\n")
    with open(os.path.join(dev, "vendor"), "w") as f:
        f.write("0x1af4\n")
    os.symlink("../../../devices/pci0000:00/0000:00:04.0/virtio4",
               os.path.join(root, "sys/bus/virtio/devices/virtio4"))
    os.symlink("../../../../../bus/virtio/drivers/memplug", os.path.join(dev, "driver"))
    for name, value in (("plugged_size", 2 * GiB), ("requested_size", 2 * GiB),
                        ("device_plugged_size", 2 * GiB), ("growth_guard", "ok"),
                        ("unplug_guard", "ok"), ("mode", "sbm")):
        with open(os.path.join(dev, "memplug", name), "w") as f:
            f.write("%s\n" % value)


def s_agent(env):
    """the real guest agent (tools/memplug-report) through a relay: memplugd takes its lines, and grows the VM when its MemAvailable drops"""
    agent = os.path.join(TOP, "tools", "memplug-report", "memplug-report")
    if not os.access(agent, os.X_OK):
        return "SKIP tools/memplug-report is not built"
    root = env.path("root")
    fake_root(root, 3600000)
    fifo = env.path("port")
    os.mkfifo(fifo)
    env.start_qmp("a", 2 * GiB)
    env.control("a")
    p = subprocess.Popen([sys.executable, FAKE_GUEST, env.path("a.rep"), env.path("a.qmp"),
                          env.path("a.ctl"), fifo], stderr=subprocess.DEVNULL)
    env.procs.append(p)
    wait_socket(env.path("a.rep"), p)
    ag = subprocess.Popen([agent, "-i", "100", "-r", root, "-o", fifo],
                          stderr=open(env.path("agent.log"), "wb"))
    env.procs.append(ag)
    env.config({"a": {}}, hold_down="30")
    env.start_daemon()
    wait_for(lambda: env.vm_status("a")["report"]["valid"] >= 5, 5, "five of the agent's reports")
    rep = env.vm_status("a")["report"]
    last = rep["last"]
    # a reader that connects may catch one line in the middle: at most one
    check(rep["invalid"] <= 1, "invalid lines from the agent: %s" % rep)
    want = {"psi-some": 123, "psi-full": 45, "total": 4011880 * 1024,
            "avail": 3600000 * 1024, "pswpin": 12, "pswpout": 34, "driver": "memplug",
            "plugged": 2 * GiB, "requested": 2 * GiB, "growth": "ok", "unplug": "ok",
            "give": 3600000 * 1024 - 2054 * 4096}
    got = {k: last.get(k) for k in want}
    check(got == want, "the agent's report as memplugd read it: %s" % last)
    check(rep["seq-gaps"] == 0, "gaps: %s" % rep)
    fake_root(root, 200000, psi="0.00")
    hist = track(env, "a", lambda h: h[-1][2] != 2 * GiB, 4, "a to grow")
    check(hist[-1][2] == 2 * GiB + 159 * 2 * MiB, "grew to %d MiB" % mib(hist[-1][2]))
    check(decisions(env.log(), "a")[0][1:] ==
          ("2048", "2366", "available 195 MiB < buffer 512 MiB"),
          "decision: %s" % decisions(env.log(), "a"))


def s_valgrind(env):
    """valgrind: garbage, growth, status and a clean stop, no error, no leak"""
    if os.environ.get("VALGRIND") == "0" or not shutil.which("valgrind"):
        return "SKIP valgrind not wanted or not installed"
    env.start_qmp("a", 2 * GiB)
    env.start_guest("a", mode="garbage", base=GiB, used=3 * GiB - 300 * MiB)
    env.config({"a": {}}, interval="0.2")
    vglog = env.path("valgrind.log")
    env.start_daemon(["valgrind", "-q", "--error-exitcode=1", "--leak-check=full",
                      "--show-leak-kinds=definite,indirect",
                      "--errors-for-leak-kinds=definite,indirect", "--log-file=" + vglog])
    hist = track(env, "a", lambda h: h[-1][2] > 2 * GiB, 20, "a to grow under valgrind")
    check(hist[-1][2] == 2 * GiB + 212 * MiB, "grew to %d MiB" % mib(hist[-1][2]))
    wait_for(lambda: os.path.exists(os.path.join(env.rundir, "status.json")), 5, "status")
    rc = env.stop_daemon(30)
    with open(vglog) as f:
        report = f.read()
    check(rc == 0 and not report.strip(), "valgrind: exit %d\n%s" % (rc, report[:3000]))


# ---------------------------------------------------------------------------
# libvirt domains, without a VM: libvirt's test driver (test:///FILE) holds
# domains with virtio-mem devices in their live XML, but cannot resize them
# (virDomainUpdateDeviceFlags is not supported by that driver); no libvirtd,
# an unknown domain and a libvirtd that never answers are the error paths.

# test:///NODE_XML: two running domains; vm2 has two virtio-mem devices
NODE_XML = """\
<node>
{domains}
</node>
"""

TEST_DOMAIN = """\
<domain type='test'>
  <name>{name}</name>
  <maxMemory slots='4' unit='GiB'>32</maxMemory>
  <memory unit='MiB'>{total_mib}</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <cpu><numa><cell id='0' cpus='0' memory='1024' unit='MiB'/></numa></cpu>
  <devices>
{devices}
  </devices>
</domain>"""

TEST_VMEM = """\
    <memory model='virtio-mem'>
      <target>
        <size unit='MiB'>{region_mib}</size>
        <node>0</node>
        <block unit='MiB'>{block_mib}</block>
        <requested unit='MiB'>{requested_mib}</requested>
      </target>
      <alias name='{alias}'/>
    </memory>"""


def test_node(env, domains):
    """Write test:/// driver's node file: domains is {name: [(alias, region_mib,
    block_mib, requested_mib)]}; its URI."""
    out = []
    for name, devs in domains.items():
        out.append(TEST_DOMAIN.format(
            name=name, total_mib=1024 + sum(d[1] for d in devs),
            devices="\n".join(TEST_VMEM.format(alias=a, region_mib=r, block_mib=b,
                                               requested_mib=q) for a, r, b, q in devs)))
    path = env.path("node.xml")
    with open(path, "w") as f:
        f.write(NODE_XML.format(domains="\n".join(out)))
    return "test://" + path


def without_libvirt(env):
    """The reason to skip if this memplugd was built without libvirt: a
    libvirt section is then a configuration error that says so."""
    conf = env.path("lv-probe.conf")
    with open(conf, "w") as f:
        f.write("[vm a]\nlibvirt = test:///default\ndomain = test\nreport = /r\n")
    r = env.run("-t", "-c", conf)
    if r.returncode == 0:
        return None
    check(r.returncode == 78 and "built without libvirt support" in r.stderr,
          "libvirt section: %d %r" % (r.returncode, r.stderr))
    return "SKIP memplugd built without libvirt (it says so: %s)" % r.stderr.strip()


class SilentServer:
    """A 'libvirtd' that accepts connections and never answers."""

    def __init__(self, path):
        self.path = path
        self.conns = []
        self.srv = socket.socket(socket.AF_UNIX)
        self.srv.bind(path)
        self.srv.listen(16)
        self.srv.settimeout(0.1)
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping:
            try:
                self.conns.append(self.srv.accept()[0])
            except OSError:
                pass

    def stop(self):
        self.stopping = True
        self.thread.join()
        for c in self.conns:
            c.close()
        self.srv.close()
        os.unlink(self.path)


def s_libvirt(env):
    """libvirt domains (libvirt's test driver): sizes from the live XML, the alias picks a device, a refused size is logged once, status, SIGHUP; a QMP VM beside them is served"""
    skip = without_libvirt(env)
    if skip:
        return skip
    uri = test_node(env, {"vm1": [("ua-vmem0", 4096, 2, 0)],
                          "vm2": [("ua-a", 1024, 2, 0), ("ua-b", 2048, 4, 512)]})
    env.start_qmp("q", 2 * GiB)
    env.start_guest("q", base=GiB, used=3 * GiB - 300 * MiB)
    # the guest of vm1 is short: memplugd asks for more, which the test driver refuses
    env.start_guest("lv", qmp=False, base=GiB, used=GiB - 100 * MiB)
    env.config({"q": {}, "lv": {"libvirt": uri, "domain": "vm1"},
                "lv2": {"libvirt": uri, "domain": "vm2", "alias": "ua-b"}})
    r = env.run("-t", "-c", env.path("memplugd.conf"))
    check(r.returncode == 0 and "vm lv: libvirt %s domain vm1, report %s, alias (the only one)"
          % (uri, env.path("lv.rep")) in r.stdout and "alias ua-b" in r.stdout,
          "--check-config: %s %s" % (r.stdout, r.stderr))
    p = env.start_daemon()
    wait_for(lambda: "vm lv: libvirt connected" in env.log() and
             "vm lv2: libvirt connected" in env.log(), 5, "the libvirt connections")
    log = env.log()
    check("vm lv: libvirt connected: domain 'vm1' at %s, device ua-vmem0, block 2 MiB, region "
          "4096 MiB; picked up requested 0 MiB, plugged 0 MiB" % uri in log, "lv's line")
    check("vm lv2: libvirt connected: domain 'vm2' at %s, device ua-b, block 4 MiB, region "
          "2048 MiB; picked up requested 512 MiB, plugged 0 MiB" % uri in log, "lv2's line")
    # the growth memplugd decides for lv is refused: one line, however often it tries
    refused = ("vm lv: grow 0 MiB -> 412 MiB failed: libvirt says: this function is not "
               "supported by the connection driver: virDomainUpdateDeviceFlags")
    wait_for(lambda: refused in env.log(), 5, "the refused growth")
    # lv2's guest never plugs what was requested: realigned (refused as well)
    wait_for(lambda: "vm lv2: realign 512 MiB -> 0 MiB failed: libvirt says: " in env.log(), 5,
             "lv2's realignment")
    hist = track(env, "q", lambda h: h[-1][2] > 2 * GiB, 5, "q to grow")
    check(hist[-1][2] == 2 * GiB + 212 * MiB, "q grew to %d MiB" % mib(hist[-1][2]))
    time.sleep(1.5)
    log = env.log()
    check(log.count("vm lv: grow") == 1 and log.count("vm lv2: realign") == 1,
          "a refusal said more than once:\n%s" % log)
    st = env.vm_status("lv")
    want = {"kind": "libvirt", "address": uri, "domain": "vm1", "state": "connected",
            "connected": True, "failures": 0, "error": None}
    check(st["backend"] == want, "lv's backend: %s" % st["backend"])
    check(st["qmp"] is None and st["decisions"] == 0 and st["last-decision"] is None,
          "lv: %s" % st)
    check(st["device"] == {"id": "ua-vmem0", "block-size": 2 * MiB, "region-size": 4 * GiB,
                           "requested-size": 0, "size": 0}, "lv's device: %s" % st["device"])
    check(st["state"] == "pressure" and st["report"]["connected"], "lv's state: %s" % st)
    st = env.vm_status("lv2")
    check(st["device"]["id"] == "ua-b" and st["device"]["requested-size"] == 512 * MiB,
          "lv2's device: %s" % st["device"])
    check(env.vm_status("q")["backend"]["kind"] == "qmp" and
          env.vm_status("q")["qmp"]["connected"], "q: %s" % env.vm_status("q"))
    r = env.run("--status", "-s", env.rundir)
    check(r.returncode == 0 and "  backend: libvirt %s, domain vm1: connected, 0 lost" % uri
          in r.stdout and "  backend: qmp %s: connected, 0 lost" % env.path("q.qmp")
          in r.stdout, "--status: %s" % r.stdout)
    # SIGHUP restarts in place: the worker threads go, the new image connects again
    p.send_signal(signal.SIGHUP)
    wait_for(lambda: env.log().count("vm lv: libvirt connected") == 2, 5, "the restart in place")
    check(env.status()["pid"] == p.pid, "pid changed")
    check(env.stop_daemon() == 0, "exit status")


def s_libvirt_down(env):
    """libvirt unreachable: no libvirtd, an unknown domain, a libvirtd that never answers: one line each, frozen, in the status; the loop goes on, and stops at once"""
    skip = without_libvirt(env)
    if skip:
        return skip
    silent = SilentServer(env.path("silent.sock"))
    env.notes.append("a libvirtd that never answers: %s" % silent.path)
    try:
        env.start_qmp("q", 2 * GiB)
        env.start_guest("q", base=GiB, used=3 * GiB - 300 * MiB)
        for vm in ("nolv", "nodom", "hung"):
            env.start_guest(vm, qmp=False, base=GiB, used=GiB - 100 * MiB)
        none_uri = "qemu+unix:///system?socket=" + env.path("none.sock")
        hung_uri = "qemu+unix:///system?socket=" + silent.path
        env.config({"q": {}, "nolv": {"libvirt": none_uri, "domain": "a"},
                    "nodom": {"libvirt": "test:///default", "domain": "nosuch"},
                    "hung": {"libvirt": hung_uri, "domain": "b"}})
        env.start_daemon()
        # the loop is not held up: q grows while the hung VM's worker waits
        hist = track(env, "q", lambda h: h[-1][2] > 2 * GiB, 5, "q to grow")
        check(hist[-1][2] == 2 * GiB + 212 * MiB, "q grew to %d MiB" % mib(hist[-1][2]))
        wait_for(lambda: "vm hung: libvirt not answering" in env.log(), 4, "'not answering'")
        time.sleep(2)  # several retries of nolv and nodom (reconnect-max 0.5 s)
        log = env.log()
        lines = {
            "nolv": "vm nolv: no libvirt: libvirt %s: cannot connect: Failed to connect socket "
                    "to '%s': No such file or directory; retrying" % (none_uri,
                                                                    env.path("none.sock")),
            "nodom": "vm nodom: no domain: libvirt test:///default: no domain 'nosuch': Domain "
                     "not found; retrying",
            "hung": "vm hung: libvirt not answering: libvirt %s: no answer for 1.0 s "
                    "(connecting); retrying" % hung_uri,
        }
        for vm, line in lines.items():
            check(log.count("vm %s: " % vm + line.split(": ", 1)[1].split(":")[0]) == 1 and
                  line in log, "%s: want once: %s\nlog:\n%s" % (vm, line, log))
        states = {vm: env.vm_status(vm)["backend"]["state"] for vm in lines}
        check(states == {"nolv": "not connected", "nodom": "not connected",
                         "hung": "not answering"}, "states: %s" % states)
        for vm in lines:
            st = env.vm_status(vm)
            check(st["state"] == "unknown" and st["device"] is None and
                  st["backend"]["error"] and not st["backend"]["connected"], "%s: %s" % (vm, st))
        age = time.time() * 1000 - env.status()["updated-ms"]
        check(age < 1000, "the status is %d ms old" % age)
        # the libvirtd that never answered goes away: its call fails, retried
        silent.stop()
        silent = None
        wait_for(lambda: "vm hung: no libvirt: libvirt %s: cannot connect" % hung_uri
                 in env.log(), 5, "the hung call's end")
        # a libvirtd that never answers again: memplugd stops without waiting for it
        silent = SilentServer(env.path("silent.sock"))
        wait_for(lambda: env.log().count("vm hung: libvirt not answering") == 2, 8,
                 "'not answering' again")
        t0 = time.monotonic()
        check(env.stop_daemon(10) == 0, "exit status")
        took = time.monotonic() - t0
        check(took < 4, "stopping took %.1f s" % took)
        check("memplugd: a libvirt call still blocks (libvirtd does not answer): not waiting "
              "for it" in env.log(), "the stop line")
        env.notes.append("stopped in %.1f s with a call blocked" % took)
    finally:
        if silent:
            silent.stop()


def s_libvirt_valgrind(env):
    """valgrind with libvirt domains: the worker and event loop threads, a refused size, a failed connection, a clean stop, no error, no leak"""
    skip = without_libvirt(env)
    if skip:
        return skip
    if os.environ.get("VALGRIND") == "0" or not shutil.which("valgrind"):
        return "SKIP valgrind not wanted or not installed"
    uri = test_node(env, {"vm1": [("ua-vmem0", 4096, 2, 0)]})
    env.start_guest("lv", qmp=False, base=GiB, used=GiB - 100 * MiB)
    env.start_guest("nolv", qmp=False)
    env.config({"lv": {"libvirt": uri, "domain": "vm1"},
                "nolv": {"libvirt": "qemu+unix:///system?socket=" + env.path("none.sock"),
                         "domain": "a"}}, interval="0.2")
    vglog = env.path("valgrind.log")
    env.start_daemon(["valgrind", "-q", "--error-exitcode=1", "--leak-check=full",
                      "--show-leak-kinds=definite,indirect",
                      "--errors-for-leak-kinds=definite,indirect", "--log-file=" + vglog])
    wait_for(lambda: "vm lv: grow 0 MiB -> 412 MiB failed" in env.log(), 30,
             "the refused growth under valgrind")
    wait_for(lambda: "vm nolv: no libvirt" in env.log(), 10, "the failed connection")
    wait_for(lambda: os.path.exists(os.path.join(env.rundir, "status.json")), 5, "status")
    rc = env.stop_daemon(30)
    with open(vglog) as f:
        report = f.read()
    check(rc == 0 and not report.strip(), "valgrind: exit %d\n%s" % (rc, report[:3000]))


SCENARIOS = [s_command_line, s_pressure, s_idle, s_silence, s_garbage, s_flood, s_event_storm,
             s_absurd,
             s_budget, s_host_reserve, s_restart, s_stopped_short, s_qmp_lost, s_sighup, s_agent, s_valgrind,
             s_libvirt, s_libvirt_down, s_libvirt_valgrind]


def run_one(memplugd, s):
    """Run scenario s: (verdict, comment or reason, diagnostics)."""
    env = Env(memplugd, s.__name__)
    t = time.monotonic()
    try:
        res = s(env)
        if isinstance(res, str) and res.startswith("SKIP"):
            return "skip", res[5:], None
        return "ok", "%.1f s" % (time.monotonic() - t), "\n".join(env.notes)
    except Failed as e:
        return "fail", None, "%s\n%s" % (e, env.diag())
    except Exception:
        return "fail", None, "%s\n%s" % (traceback.format_exc(), env.diag())
    finally:
        env.cleanup()


def main():
    memplugd = os.path.abspath(sys.argv[1])
    wanted = sys.argv[2:]
    todo = [s for s in SCENARIOS if not wanted or s.__name__[2:] in wanted]
    tap = KTAP(planned=len(todo))
    start = time.monotonic()
    # Scenarios mostly wait: a few at a time, results in their order.
    with concurrent.futures.ThreadPoolExecutor(int(os.environ.get("JOBS", "3"))) as pool:
        futures = [pool.submit(run_one, memplugd, s) for s in todo]
        for s, f in zip(todo, futures):
            verdict, comment, diag = f.result()
            name = s.__doc__.strip()
            if verdict == "skip":
                tap.skip(name, comment)
            elif verdict == "ok":
                tap.ok(name, comment=comment, diag=diag)
            else:
                tap.fail(name, diag=diag)
    print("# integration: %.1f s" % (time.monotonic() - start))
    sys.exit(tap.summary())


if __name__ == "__main__":
    main()
