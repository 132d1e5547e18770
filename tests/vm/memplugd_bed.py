# SPDX-License-Identifier: GPL-2.0
"""memplugd on the test bed: the host daemon (tools/memplugd/memplugd)
sizing real guests, the workload that makes them need memory, and what a
user would look at while it runs.

Shared by the autosize scenarios (tests/vm/scenarios/autosize.py) and the
trace benchmark (bench/autosize.py):

  Memplugd   one daemon: its generated configuration (the VMs' own QMP
             monitor and report socket, short timers for TCG), its
             process, its log lines (time-stamped by the host as they
             come), its status file
  Sampler    a thread sampling, per VM, the device (QMP, on a monitor of
             its own), the guest's last report as memplugd got it (the
             status file) and QEMU's resident memory
  Workload   in a guest: a base held by the agent's filler, and data
             written in steps into a tmpfs of its own
  step_growths(), giveback(), held_gib_s(): the metrics of issue 17

Nothing here is mocked: QEMU, the guest kernel and driver, memplug-report
in the guest and memplugd on the host are the real ones.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from testbed import QMP, TOP, GiB, MiB, TestFailure, human, parse_size

MEMPLUGD = os.environ.get("MEMPLUGD", os.path.join(TOP, "tools", "memplugd", "memplugd"))

# The guest agent's interval (VM(report=REPORT_MS)): memplug-report writes
# a line every 500 ms, twice its default pace, so that a tick of 500 ms
# always has a fresh report.
REPORT_MS = 500

# memplugd's timers for guests under TCG: every scenario takes 60-90 s.
# The defaults (docs/memplugd.md) are for production: hold-down 30 s,
# shrink-interval 10 s, ... The rules are the same; only the pace differs.
TCG_DAEMON = {
    "interval": "0.5",          # the tick (default 1 s)
    "report-timeout": "3",      # 6 reports missed: frozen (TCG guests stall at times)
    "qmp-timeout": "2",         # QEMU's main loop shares 2 cores with 2-4 TCG vCPUs
    "reconnect-max": "2",
    "psi-threshold": "10",
    "psi-idle": "1",
    "psi-step": "128M",
    "psi-hold": "5",
    "hold-down": "5",           # no shrink for 5 s after a growth or a start
    "shrink-interval": "1.5",
    "shrink-ratio": "50",       # half the excess per shrink (default 25 %)
    "shrink-max-step": "1G",
    "hysteresis": "50",         # % of buffer
    "settle-time": "5",
    "retry-after": "20",
    "buffer": "512M",
}

# The reference driver unplugs far more slowly (docs/performance.md): P
# moving slowly must not be taken for "stopped short".
TCG_DAEMON_VIRTIO_MEM = {"settle-time": "10"}


def daemon_config(driver, **over):
    """TCG_DAEMON for `driver`, with over's keys (underscores for dashes)."""
    d = dict(TCG_DAEMON)
    if driver == "virtio_mem":
        d.update(TCG_DAEMON_VIRTIO_MEM)
    d.update({k.replace("_", "-"): str(v) for k, v in over.items()})
    return d


def qemu_rss(vm):
    """QEMU's resident memory (VmRSS), bytes, or None: what the host gives
    the VM, the number "memory back to the host" is about."""
    try:
        with open("/proc/%d/status" % vm.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, AttributeError, ValueError):
        pass
    return None


def proc_cpu_s(pid):
    """user + system CPU seconds of a process."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


DECISION_RE = re.compile(r"^vm (\S+): (grow|shrink|reclaim|realign) (\d+) MiB -> (\d+) MiB: (.*)$")


class Decision:
    """One decision line: when the host read it, which VM, what, from, to
    (bytes), and why."""

    def __init__(self, t, vm, action, frm, to, reason):
        self.t, self.vm, self.action, self.frm, self.to, self.reason = t, vm, action, frm, to, reason

    def __repr__(self):
        return "%s %d -> %d MiB (%s)" % (self.action, self.frm // MiB, self.to // MiB,
                                          self.reason)


class Memplugd:
    """memplugd managing test-bed VMs, as a user runs it: a configuration
    file, the daemon in the foreground with its log on stderr, the status
    file in its runtime directory.

    vms: [(name, vm, keys)]: each VM needs VM(report=..., monitors=("memplugd",
    ...)); keys are its [vm] section's extra keys (min, max, buffer, weight).
    daemon: the [daemon] section (daemon_config())."""

    def __init__(self, vms, daemon, log=print):
        if not os.access(MEMPLUGD, os.X_OK):
            raise TestFailure("%s is not built (make tools)" % MEMPLUGD)
        self.vms = vms
        self.daemon = dict(daemon)
        self.say = log
        self.dir = tempfile.mkdtemp(prefix="memplugd-bed-")
        self.rundir = os.path.join(self.dir, "run")
        self.conf = os.path.join(self.dir, "memplugd.conf")
        self.proc = None
        self.lines = []        # (host time, line) of every run, in order
        self.raw_bad = []      # lines with bytes that are not printable ASCII
        self.starts = []       # (host time, index in lines) of each start
        self.exits = []        # exit status of each run
        self.reader = None
        self.lock = threading.Lock()
        self.write_config()

    # -- configuration --------------------------------------------------------

    def config_text(self):
        out = ["# generated by tests/vm/memplugd_bed.py", "[daemon]"]
        out += ["%s = %s" % kv for kv in self.daemon.items()]
        for name, vm, keys in self.vms:
            out += ["", "[vm %s]" % name, "qmp = " + vm.monitor("memplugd"),
                    "report = " + vm.report_sock]
            out += ["%s = %s" % kv for kv in (keys or {}).items()]
        return "\n".join(out) + "\n"

    def write_config(self):
        with open(self.conf, "w") as f:
            f.write(self.config_text())

    def param(self, key, default=None):
        return self.daemon.get(key, default)

    def buffer(self, name):
        for n, _, keys in self.vms:
            if n == name and keys and "buffer" in keys:
                return parse_size(keys["buffer"])
        return parse_size(self.daemon.get("buffer", "512M"))

    # -- the process ----------------------------------------------------------

    def check_config(self):
        r = subprocess.run([MEMPLUGD, "--check-config", "-c", self.conf], capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            raise TestFailure("memplugd --check-config: exit %d: %s" %
                              (r.returncode, (r.stderr or r.stdout).strip()))
        return r.stdout

    def start(self):
        if self.proc and self.proc.poll() is None:
            raise TestFailure("memplugd is already running")
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)     # plain lines, no <N> prefix
        with self.lock:
            self.starts.append((time.time(), len(self.lines)))
        self.proc = subprocess.Popen([MEMPLUGD, "-c", self.conf, "-s", self.rundir],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=env)
        self.reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self.reader.start()
        self.say("# memplugd started (pid %d), configuration %s" % (self.proc.pid, self.conf))
        return self

    def _read(self, proc):
        for raw in iter(proc.stdout.readline, b""):
            line = raw.rstrip(b"\n")
            text = line.decode("ascii", "replace")
            with self.lock:
                self.lines.append((time.time(), text))
                if any(not 32 <= c < 127 for c in line):
                    self.raw_bad.append(text)
        proc.stdout.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self, what=""):
        if not self.running():
            raise TestFailure("memplugd exited (%s)%s; its last lines: %s" % (
                self.proc.returncode if self.proc else "never started",
                " " + what if what else "", " | ".join(self.text_lines()[-8:])))

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stop the daemon with sig; its exit status (SIGKILL: -9)."""
        p = self.proc
        if p is None or p.poll() is not None:
            return p.returncode if p else None
        p.send_signal(sig)
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise TestFailure("memplugd did not stop within %d s of signal %d" % (timeout, sig))
        if self.reader:
            self.reader.join(5)
        self.exits.append(rc)
        return rc

    def stop_clean(self):
        """SIGTERM as systemctl stop does: exit 0, the stop line, sizes left
        as they are (the caller checks the sizes)."""
        since = len(self.lines)
        rc = self.stop()
        if rc != 0:
            raise TestFailure("memplugd exited %s on SIGTERM" % rc)
        if not any("stopping (Terminated); requested sizes stay as they are" in ln
                   for _, ln in self.lines[since:]):
            raise TestFailure("no 'stopping (Terminated); requested sizes stay as they are' line")

    def crash(self):
        """SIGKILL: what a crash or an OOM kill of the daemon leaves."""
        return self.stop(signal.SIGKILL)

    def close(self):
        try:
            self.stop()
        except TestFailure:
            pass
        if os.environ.get("KEEP_MEMPLUGD"):
            self.say("# memplugd's directory kept: %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.say("# memplugd's last log lines:")
            for line in self.text_lines()[-30:]:
                self.say("#   " + line)
        self.close()

    # -- what it says ---------------------------------------------------------

    def text_lines(self, since=0):
        with self.lock:
            return [ln for _, ln in self.lines[since:]]

    def text(self):
        return "\n".join(self.text_lines())

    def since_start(self, k=-1):
        """Index in lines of the k-th start (default: the last)."""
        return self.starts[k][1]

    def decisions(self, vm=None, action=None, since=0, t0=None):
        out = []
        with self.lock:
            lines = list(self.lines[since:])
        for t, ln in lines:
            m = DECISION_RE.match(ln)
            if not m or (vm and m.group(1) != vm) or (action and m.group(2) != action):
                continue
            if t0 is not None and t < t0:
                continue
            out.append(Decision(t, m.group(1), m.group(2), int(m.group(3)) * MiB,
                                int(m.group(4)) * MiB, m.group(5)))
        return out

    def wait_line(self, pattern, timeout, what, since=0):
        """The first line from index since on that matches the regex; its
        (host time, line)."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        while True:
            with self.lock:
                for t, ln in self.lines[since:]:
                    if rx.search(ln):
                        return t, ln
            if time.time() > deadline:
                raise TestFailure("memplugd did not log %s within %d s (/%s/); last lines: %s" % (
                    what, timeout, pattern, " | ".join(self.text_lines()[-6:])))
            if not self.running():
                raise TestFailure("memplugd exited (%s) while waiting for %s" %
                                  (self.proc.returncode, what))
            time.sleep(0.1)

    def status_path(self):
        return os.path.join(self.rundir, "status.json")

    def status(self, timeout=10):
        deadline = time.time() + timeout
        while True:
            st = read_status(self.status_path())
            if st is not None:
                return st
            if time.time() > deadline:
                raise TestFailure("no memplugd status file %s" % self.status_path())
            time.sleep(0.1)

    def vm_status(self, name):
        for v in self.status()["vms"]:
            if v["name"] == name:
                return v
        raise TestFailure("%s is not in memplugd's status file" % name)

    def status_cmd(self, *args):
        """memplugd --status [args]: (exit status, stdout)."""
        r = subprocess.run([MEMPLUGD, "--status", "-s", self.rundir] + list(args),
                           capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout

    def cpu_s(self):
        return proc_cpu_s(self.proc.pid)

    def hwm_kib(self):
        return proc_hwm_kib(self.proc.pid)

    def check_log(self):
        """What every scenario asks of the log: printable ASCII only, and every
        decision line with its reason."""
        if self.raw_bad:
            raise TestFailure("memplugd logged unprintable bytes: %r" % self.raw_bad[:3])
        bare = [ln for ln in self.text_lines()
                if re.match(r"^vm \S+: (grow|shrink|reclaim|realign) ", ln) and
                not DECISION_RE.match(ln) and "failed: QEMU says" not in ln]
        if bare:
            raise TestFailure("decision lines without a reason: %s" % " | ".join(bare[:3]))
        bad = [d for d in self.decisions() if len(d.reason) < 8]
        if bad:
            raise TestFailure("decisions with no real reason: %r" % bad[:3])
        failed = [ln for ln in self.text_lines() if "failed: QEMU says" in ln]
        if failed:
            raise TestFailure("QEMU refused a size memplugd asked for: %s" % failed[0])


def read_status(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------
# Sampling what the user would watch

class Sample:
    """One look at one VM: host time; the device's plugged and requested
    size (QMP); QEMU's RSS; the guest's last report as memplugd got it
    (rep_t: host time it arrived, from the status file's updated-ms and
    age-ms; seq, avail, total, psi: psi_some in %), or None."""
    __slots__ = ("t", "size", "requested", "rss", "rep_t", "seq", "avail", "total", "psi",
                 "state")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


class Sampler(threading.Thread):
    """Samples every VM of vms ([(name, vm)], in that order in each round)
    every `period` seconds: the device over the VM's monitor "probe" (the
    exact sizes, at once), memplugd's status file (the guest's reports),
    QEMU's RSS. The main thread reads samples[name] and may wait_for() a
    condition on them. Never talks to the guest agent: the scenario does."""

    def __init__(self, vms, status_path, period=0.2):
        super().__init__(daemon=True)
        self.vms = list(vms)
        self.status_path = status_path
        self.period = period
        self.samples = {name: [] for name, _ in self.vms}
        self.rounds = []       # [(t, {name: Sample})]
        self.errors = []
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.qmps = {}
        self.t0 = time.time()

    def _device(self, name, vm):
        q = self.qmps.get(name)
        if q is None:
            q = self.qmps[name] = QMP(vm.monitor("probe"), timeout=10)
        for d in q.execute("query-memory-devices"):
            if d.get("type") == "virtio-mem":
                q.events.clear()
                return d["data"]["size"], d["data"]["requested-size"]
        raise TestFailure("no virtio-mem device")

    def run(self):
        while not self.stop_ev.is_set():
            st = read_status(self.status_path)
            vst = {v["name"]: v for v in st["vms"]} if st else {}
            rnd = {}
            for name, vm in self.vms:
                if vm.proc is None or vm.proc.poll() is not None:
                    continue
                t = time.time()
                try:
                    size, req = self._device(name, vm)
                except Exception as e:  # the VM going away at the end
                    self.errors.append("%s: %s" % (name, e))
                    q = self.qmps.pop(name, None)
                    if q:
                        try:
                            q.close()
                        except OSError:
                            pass
                    continue
                s = Sample(t=t, size=size, requested=req, rss=qemu_rss(vm))
                v = vst.get(name)
                if v:
                    s.state = v.get("state")
                    rep = v.get("report") or {}
                    last = rep.get("last")
                    if last and rep.get("age-ms") is not None:
                        s.rep_t = (st["updated-ms"] - rep["age-ms"]) / 1000.0
                        s.seq = last.get("seq")
                        s.avail = last.get("avail")
                        s.total = last.get("total")
                        if last.get("psi-some") is not None:
                            s.psi = last["psi-some"] / 100.0
                rnd[name] = s
                with self.lock:
                    self.samples[name].append(s)
            with self.lock:
                self.rounds.append((time.time(), rnd))
            self.stop_ev.wait(self.period)
        for q in self.qmps.values():
            try:
                q.close()
            except OSError:
                pass

    def stop(self):
        self.stop_ev.set()
        if self.is_alive():
            self.join(15)

    def series(self, name, t0=None, t1=None):
        with self.lock:
            return [s for s in self.samples[name]
                    if (t0 is None or s.t >= t0) and (t1 is None or s.t <= t1)]

    def last(self, name, timeout=10):
        deadline = time.time() + timeout
        while True:
            with self.lock:
                if self.samples[name]:
                    return self.samples[name][-1]
            if time.time() > deadline:
                raise TestFailure("no sample of %s (%s)" % (name, "; ".join(self.errors[-3:])))
            time.sleep(0.05)

    def wait_for(self, name, cond, timeout, what, since=None):
        """The first sample of name taken from `since` (default now) on that
        satisfies cond(sample)."""
        since = time.time() if since is None else since
        deadline = time.time() + timeout
        seen = 0
        while True:
            with self.lock:
                fresh = [s for s in self.samples[name][seen:]]
                seen = len(self.samples[name])
            for s in fresh:
                if s.t >= since and cond(s):
                    return s
            if time.time() > deadline:
                last = self.samples[name][-1] if self.samples[name] else None
                raise TestFailure("%s: no %s within %d s; last seen: %s" % (
                    name, what, timeout, describe(last)))
            time.sleep(0.05)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


def describe(s):
    if s is None:
        return "nothing"
    return "plugged %s, requested %s%s" % (
        human(s.size), human(s.requested),
        ", guest avail %d MiB (report %.1f s old)" % (s.avail // MiB, s.t - s.rep_t)
        if s.avail is not None else "")


# ---------------------------------------------------------------------------
# The workload in a guest

WORKDIR = "/mnt/autosize"


class Workload:
    """What makes a guest need memory: `base_mib` held by the agent's
    filler (filled, then stopped with SIGSTOP: it holds its memory without
    spinning a TCG vCPU; its pattern is verified once more at finish()),
    and data in a tmpfs of its own (mounted with size= the peak: a runaway
    cannot take the whole guest), written in steps with dd, removed with
    rm. tmpfs pages are Shmem: not in MemAvailable, movable (they land in
    the hot-plugged ZONE_MOVABLE and migrate when it shrinks), and without
    swap (the test bed's guests have none) they stay until removed: the
    guest cannot make room but by the OOM killer. The host times every
    step (`steps`: [(start, end, MiB)])."""

    def __init__(self, vm, peak_mib, base_mib=200, log=print):
        self.vm = vm
        self.peak_mib = peak_mib
        self.base_mib = base_mib
        self.say = log
        self.files = []        # [(name, MiB)], oldest first
        self.level = 0         # MiB in the tmpfs
        self.steps = []        # [(host start, host end, MiB)] of each write
        self.releases = []     # [(host start, host end, MiB)] of each removal
        self.filler = 0
        self.serial = 0
        self.oom0 = 0
        self.filler_status = None

    def start(self):
        vm = self.vm
        self.oom0 = oom_kills(vm)
        vm.sh("mkdir -p %s && mount -t tmpfs -o size=%dm autosize %s" %
              (WORKDIR, self.peak_mib + 64, WORKDIR))
        if self.base_mib:
            from scenarios.helpers import start_filler
            start_filler(vm, self.base_mib, seed=17)
            self.filler = vm.agent("fill-status")["pid"]
            if not self.filler:
                raise TestFailure("the filler is not running")
            vm.sh("kill -STOP %d" % self.filler)
        return self

    def step(self, mib, timeout=120):
        """Write mib MiB more (one file); the seconds it took."""
        self.serial += 1
        name = "%s/s%d" % (WORKDIR, self.serial)
        t0 = time.time()
        r = self.vm.sh("dd if=/dev/zero of=%s bs=1048576 count=%d 2>&1" % (name, mib),
                       timeout=timeout, check=False)
        t1 = time.time()
        if r["rc"] != 0:
            raise TestFailure("the workload's step of %d MiB (to %d MiB) failed: exit %d%s: %s" % (
                mib, self.level + mib, r["rc"],
                " (SIGKILL: the OOM killer?)" if r["rc"] == 137 else "", r["out"].strip()[-200:]))
        self.files.append((name, mib))
        self.level += mib
        self.steps.append((t0, t1, mib))
        return t1 - t0

    def release(self, mib=None):
        """Remove the newest files, mib MiB of them (default all)."""
        want = self.level if mib is None else mib
        gone, names = 0, []
        while self.files and gone < want:
            name, m = self.files.pop()
            names.append(name)
            gone += m
        if not names:
            return 0.0
        t0 = time.time()
        self.vm.sh("rm -f " + " ".join(names))
        t1 = time.time()
        self.level -= gone
        self.releases.append((t0, t1, gone))
        return t1 - t0

    def set_level(self, mib, step_mib=256):
        """Go to mib MiB in the tmpfs: write in steps of step_mib, or remove."""
        while self.level < mib:
            self.step(min(step_mib, mib - self.level))
        if self.level > mib:
            self.release(self.level - mib)

    def oom_kills(self):
        return oom_kills(self.vm) - self.oom0

    def finish(self, t, check=True):
        """Remove the data, resume the filler and verify it (0 corrupted
        bytes, not killed), check that nothing was OOM-killed (check=False:
        only count; filler_status is the filler's last fill-status).
        Returns the number of OOM kills since start()."""
        vm = self.vm
        self.release()
        vm.sh("umount %s" % WORKDIR, check=False)
        self.filler_status = None
        if self.filler:
            vm.sh("kill -CONT %d" % self.filler, check=False)
            from scenarios.helpers import stop_filler_clean
            if check:
                self.filler_status = stop_filler_clean(t, vm, min_passes=1)
            else:
                self.filler_status = vm.agent("fill-stop", timeout=300)
            self.filler = 0
        n = self.oom_kills()
        if check and n:
            raise TestFailure("the OOM killer killed %d process(es) in the guest" % n)
        return n


def oom_kills(vm):
    """The guest's oom_kill counter (/proc/vmstat, since boot)."""
    out = vm.sh("sed -n 's/^oom_kill //p' /proc/vmstat")["out"].strip()
    return int(out) if out else 0


def avail_now(vm):
    return vm.state()["memavailable_kb"] * 1024


def boot_all(t, stack, specs):
    """Boot the VMs of specs ([(devices, kwargs)], kwargs of t.vm()) at
    once, one thread each (under TCG a boot is mostly waiting); each is
    registered on the ExitStack for the health check at the end, in
    order. Returns the VMs."""
    vms = [t.vm(devices, **kw) for devices, kw in specs]
    errors = [None] * len(vms)

    def boot(i):
        try:
            vms[i].start()
        except Exception as e:  # raised below, in the main thread
            errors[i] = e
    threads = [threading.Thread(target=boot, args=(i,)) for i in range(len(vms))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for e in errors:
        if e is not None:
            raise e
    for v in vms:
        stack.push(v)       # VM.__exit__: the health check, then stop
    return vms


# ---------------------------------------------------------------------------
# The metrics of issue 17

class Growth:
    """One step of the workload: when it started and ended (host), when the
    host first had a report of pressure in it (onset), when the device
    first grew after that (added) and when it held what memplugd then
    asked for (done); the lowest MemAvailable the guest reported."""

    def __init__(self, **kw):
        self.__dict__.update(kw)

    def __repr__(self):
        return "step@%.1f: onset %s, grow %s s, min avail %s MiB" % (
            self.start, "-" if self.onset is None else "%.1f" % self.onset,
            "-" if self.grow_s is None else "%.2f" % self.grow_s,
            "-" if self.min_avail is None else self.min_avail // MiB)


def step_growths(samples, steps, buffer, psi_threshold=10.0, decisions=()):
    """For each workload step (start, end, MiB): pressure onset = the
    arrival of the first report in the step showing pressure (avail below
    buffer or psi above the threshold), or the first grow decision if that
    came first (a report the sampler missed between two looks); added =
    the first sample whose plugged size is above the size at the step's
    start (even after the next step began); grow_s = added - onset;
    from_step_s = added - start. The onset
    is when the host knew, up to one report interval (REPORT_MS) after
    the guest crossed the line."""
    out = []
    for i, (start, end, _mib) in enumerate(steps):
        nxt = steps[i + 1][0] if i + 1 < len(steps) else float("inf")
        before = [s for s in samples if s.t < start]
        win = [s for s in samples if start <= s.t < nxt]
        if not win:
            continue
        size0 = before[-1].size if before else win[0].size
        onset = None
        for s in win:
            if s.rep_t is not None and s.rep_t >= start and (
                    (s.avail is not None and s.avail < buffer) or
                    (s.psi is not None and s.psi > psi_threshold)):
                onset = s.rep_t
                break
        grows = [d.t for d in decisions if d.action == "grow" and start <= d.t < nxt]
        if grows and (onset is None or grows[0] < onset):
            onset = grows[0]
        # the growth may land after the next step began (a slow guest)
        added = next((s.t for s in samples if s.t >= start and s.size > size0), None)
        done = None
        if added is not None:
            top = max(s.requested for s in win)
            done = next((s.t for s in samples if s.t >= added and s.size >= top), None)
        avails = [s.avail for s in win if s.avail is not None and s.rep_t and s.rep_t >= start]
        out.append(Growth(start=start, end=end, onset=onset, added=added, done=done,
                          size0=size0,
                          grow_s=(max(0.0, added - onset) if added is not None and
                                  onset is not None else None),
                          from_step_s=(added - start) if added is not None else None,
                          min_avail=min(avails) if avails else None))
    return out


def giveback(samples, t_release, t_end):
    """After the workload let go at t_release: (plugged at release, plugged
    at t_end, t90: seconds until 90 % of what went back had gone, or None
    if nothing went back)."""
    before = [s for s in samples if s.t <= t_release]
    after = [s for s in samples if t_release <= s.t <= t_end]
    if not after:
        return None, None, None
    at = before[-1].size if before else after[0].size
    final = after[-1].size
    if final >= at:
        return at, final, None
    limit = final + 0.1 * (at - final)
    t90 = next((s.t - t_release for s in after if s.size <= limit), None)
    return at, final, t90


def held_gib_s(samples, boot_bytes, t0, t1, key="size"):
    """GiB-seconds the VM held between t0 and t1: boot memory plus the
    device's plugged size (key="size"), or QEMU's RSS (key="rss"), each
    sample standing until the next."""
    total = 0.0
    win = [s for s in samples if t0 <= s.t <= t1 and getattr(s, key) is not None]
    for a, b in zip(win, win[1:] + [None]):
        end = b.t if b else t1
        v = getattr(a, key) + (boot_bytes if key == "size" else 0)
        total += v / GiB * max(0.0, end - a.t)
    return total
