# SPDX-License-Identifier: GPL-2.0
"""The memplug test bed: boot a Debian kernel under QEMU with virtio-mem
devices, drive them from the host with memplugctl, and look inside the guest
through memplug-agent (tests/vm/agent).

Everything here talks to real parts: QEMU's virtio-mem-pci device, Debian's
kernels, QMP (through memplugctl). Nothing is mocked.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.environ.get("MEMPLUG_CACHE", os.path.join(TOP, ".cache"))
BUILD = os.path.join(TOP, "build")
MEMPLUGCTL = os.environ.get("MEMPLUGCTL",
                            os.path.join(TOP, "tools", "memplugctl", "memplugctl"))

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


class TestFailure(Exception):
    """An assertion about what the user would see did not hold."""


class Skip(Exception):
    """The scenario does not apply (e.g. a memplug-only feature)."""


def parse_size(s):
    """'2G', '512M', '2M', '4096' -> bytes."""
    m = re.fullmatch(r"(\d+)([KMGT]?)(i?B)?", str(s).strip(), re.I)
    if not m:
        raise ValueError("bad size %r" % s)
    mult = {"": 1, "K": KiB, "M": MiB, "G": GiB, "T": 1 << 40}[m.group(2).upper()]
    return int(m.group(1)) * mult


def human(n):
    for unit, div in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= div and n % div == 0:
            return "%d %s" % (n // div, unit)
    if n >= GiB:
        return "%.2f GiB" % (n / GiB)
    return "%d B" % n


def kernels():
    """Kernel releases fetched by scripts/deps.sh, 6.1 first, or those of
    the list file MEMPLUG_KERNEL_LIST names (scripts/debug-kernel.sh writes
    .cache/kernels/debug-list)."""
    path = os.environ.get("MEMPLUG_KERNEL_LIST") or os.path.join(CACHE, "kernels", "list")
    if not os.path.exists(path):
        raise SystemExit("testbed: no kernels; run scripts/deps.sh (make deps) first")
    with open(path) as f:
        return [l.strip() for l in f if l.strip()]


def kernel_series(rel):
    return ".".join(rel.split("-")[0].split(".")[:2])


# The guest CPU. KVM guests get the host's (-cpu host, as libvirt's
# host-passthrough). Under TCG the default is "max": every feature TCG can
# emulate, like the CPUs users run on: 1 GiB pages (pdpe1gb) above all, with
# which Linux maps hot-added memory in 1 GiB pages. QEMU_CPU picks another
# model ("qemu64": no 1 GiB pages; "max,+la57": 5-level paging); see
# docs/testbed.md for the models the suite covers.
DEFAULT_CPU = "max"


def cpu_model(accel="tcg"):
    return os.environ.get("QEMU_CPU") or ("host" if accel == "kvm" else DEFAULT_CPU)


class QMP:
    """Direct QMP for what memplugctl does not do (migration, quitting).
    Resizing always goes through memplugctl: that is the tool under test."""

    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.f = self.sock.makefile("rw")
        self.events = []
        greeting = json.loads(self.f.readline())
        if "QMP" not in greeting:
            raise TestFailure("no QMP greeting: %r" % greeting)
        self.execute("qmp_capabilities")

    def execute(self, cmd, **args):
        msg = {"execute": cmd}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise TestFailure("QMP connection closed during %s" % cmd)
            r = json.loads(line)
            if "event" in r:
                self.events.append(r)
            elif "error" in r:
                raise TestFailure("QMP %s: %s" % (cmd, r["error"].get("desc")))
            elif "return" in r:
                return r["return"]

    def close(self):
        self.f.close()      # the socket stays open while its file object is
        self.sock.close()


# The report channel (docs/autosize.md): memplug-report in the guest writes
# a line a second to this virtio-serial port; the host reads the socket.
REPORT_PORT = "org.memplug.report.0"


def report_qemu_args(sock):
    """QEMU's half of the report channel, exactly as docs/autosize.md gives
    it: a virtio-serial controller, the port, and a unix socket QEMU listens
    on (a host reader such as memplugd connects to it)."""
    return ["-device", "virtio-serial-pci,id=mpser0",
            "-chardev", "socket,id=mprep0,path=%s,server=on,wait=off" % sock,
            "-device", "virtserialport,bus=mpser0.0,chardev=mprep0,name=" + REPORT_PORT]


class Reports:
    """The host end of the report channel: a client of the VM's report
    socket. next() is the next line, parsed and checked by the protocol's
    strict reference parser (tests/report/protocol.py)."""

    def __init__(self, path, timeout=30):
        sys.path.insert(0, os.path.join(TOP, "tests", "report"))
        import protocol
        self.protocol = protocol
        self.buf = b""
        deadline = time.time() + timeout
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(path)
                break
            except OSError as e:
                self.sock.close()
                if time.time() > deadline:
                    raise TestFailure("cannot connect to the report socket %s: %s" % (path, e))
                time.sleep(0.1)

    def next(self, timeout=15):
        """The next report as a dict (protocol.parse()); a line that is not
        a valid report, or none within timeout, is a TestFailure."""
        deadline = time.time() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise TestFailure("no report from the guest in %d s" % timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                raise TestFailure("the report socket was closed (QEMU gone?)")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        line += b"\n"
        try:
            r = self.protocol.parse(line)
        except self.protocol.Invalid as e:
            raise TestFailure("invalid report (%s): %r" % (e, line[:300]))
        bad = self.protocol.agent_problems(r)
        if bad:
            raise TestFailure("report breaks memplug-report's promises (%s): %r" %
                              ("; ".join(bad), line[:300]))
        return r

    def until(self, what, cond, timeout=60):
        """Reports until one satisfies cond(report); that one."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            last = self.next(max(1, min(15, deadline - time.time())))
            if cond(last):
                return last
        raise TestFailure("no report %s within %d s; the last: %r" % (what, timeout, last))

    def close(self):
        self.sock.close()


class Device:
    """One virtio-mem device: its QEMU options and what the test expects of it."""

    def __init__(self, dev_id, region, block_size, requested=0, node=None):
        self.id = dev_id
        self.region = parse_size(region)
        self.block_size = parse_size(block_size)
        self.requested = parse_size(requested)
        self.node = node

    def qemu_args(self):
        memdev = "mem-" + self.id
        dev = "virtio-mem-pci,id=%s,memdev=%s,block-size=%d,requested-size=%d" % (
            self.id, memdev, self.block_size, self.requested)
        if self.node is not None:
            dev += ",node=%d" % self.node
        return ["-object", "memory-backend-ram,id=%s,size=%d,reserve=off" % (memdev, self.region),
                "-device", dev]


class VM:
    """A guest under QEMU with memplug-agent on its second serial port."""

    def __init__(self, release, driver, devices, boot_mem="1G", policy="online_movable",
                 cmdline="", driver_args="", smp=2, log=print, initrd=None,
                 allow_reboot=False, module=None, qemu_args=(), cpu=None, report=None,
                 monitors=()):
        self.release = release
        self.driver = driver
        # the module file the guest loads for the driver: memplug-fi is
        # memplug built with fault injection (module name still memplug)
        self.module = module or driver
        self.devices = devices
        # MEMPLUG_MIN_BOOT_MEM raises every guest's boot memory: the debug
        # kernel's KASAN shadow and page_owner data cost 1/8 and more of
        # all memory onlined, from boot memory (make check-debug)
        self.boot_mem = max(parse_size(boot_mem),
                            parse_size(os.environ.get("MEMPLUG_MIN_BOOT_MEM", "0")))
        self.policy = policy
        self.cmdline = cmdline
        self.driver_args = driver_args
        self.smp = smp
        self.log = log
        self.initrd = initrd
        self.allow_reboot = allow_reboot
        self.qemu_args = list(qemu_args)
        self.cpu = cpu         # QEMU CPU model; None: cpu_model()
        # report=MS: the report channel's port, and memplug-report started
        # by the initramfs' init with -i MS (reports() reads it)
        self.report = report
        # monitors=("memplugd", ...): a QMP monitor of its own for each,
        # besides the test bed's (memplugctl, QMP()): QEMU serves one client
        # per monitor, and a daemon that stays connected needs its own
        # (docs/memplugd.md); monitor(NAME) is its socket
        for m in monitors:
            if not re.fullmatch(r"[a-z][a-z0-9_-]*", m) or m in ("qmp", "agent", "report"):
                raise ValueError("bad monitor name %r" % m)
        self.monitors = tuple(monitors)
        self.dir = tempfile.mkdtemp(prefix="memplug-vm-")
        self.qmp = os.path.join(self.dir, "qmp.sock")
        self.console = os.path.join(self.dir, "console.log")
        self.proc = None
        self.sock = None
        self.buf = b""
        self.base = None
        self.saved_log = None
        # the health check when the scenario leaves the guest: True, or
        # "no-log" for a scenario that expects kernel log lines (an OOM
        # kill it provoked) and checks them itself, or False
        self.health_at_exit = True

    # -- lifecycle ----------------------------------------------------------

    def kernel_cmdline(self):
        args = ["console=ttyS0", "loglevel=5", "panic=-1", "oops=panic",
                "modprobe.blacklist=virtio_mem" if self.driver != "virtio_mem" else ""]
        if self.policy == "auto-movable":
            args += ["memhp_default_state=online", "memory_hotplug.online_policy=auto-movable"]
        elif self.policy in ("online_movable", "online_kernel", "online", "offline"):
            args += ["memhp_default_state=" + self.policy]
        else:
            raise ValueError("unknown online policy " + self.policy)
        if self.driver:
            args.append("memplug_test.driver=" + self.module)
            if self.driver_args:
                args.append("memplug_test.args=" + self.driver_args.replace(" ", ","))
        if self.report:
            args.append("memplug_test.report=%d" % self.report)
        if self.cmdline:
            args.append(self.cmdline)
        # every guest of a run, e.g. the kernel's cheap checkers
        # (make check-checkers) or page_owner=on (make check-debug)
        args.append(os.environ.get("GUEST_CMDLINE", ""))
        return " ".join(a for a in args if a)

    def boot_args(self):
        """QEMU arguments that say what the guest boots: the test kernel and
        initramfs (the install test boots a disk image instead)."""
        kdir = os.path.join(CACHE, "kernels", self.release)
        initrd = self.initrd or os.path.join(BUILD, self.release, "initramfs.gz")
        if not os.path.exists(initrd):
            raise SystemExit("testbed: no %s; run make build" % initrd)
        return ["-kernel", os.path.join(kdir, "boot", "vmlinuz-" + self.release),
                "-initrd", initrd, "-append", self.kernel_cmdline()]

    def qemu_command(self, workdir, incoming=None):
        total = sum(d.region for d in self.devices)
        # device memory must fit the regions even when each is aligned to
        # its block size (up to 2 GiB), so leave that much headroom
        maxmem = self.boot_mem + total + sum(max(d.block_size, GiB) for d in self.devices) + GiB
        accel = os.environ.get("ACCEL", "tcg")
        cmd = ["qemu-system-x86_64", "-accel", accel, "-M", "q35",
               "-cpu", self.cpu or cpu_model(accel), "-smp", str(self.smp),
               "-m", "%dM,maxmem=%dM" % (self.boot_mem // MiB, maxmem // MiB),
               "-nodefaults", "-display", "none"] + ([] if self.allow_reboot else ["-no-reboot"])
        cmd += self.boot_args()
        cmd += ["-serial", "file:" + os.path.join(workdir, "console.log"),
                "-chardev", "socket,id=agent,path=%s,server=on,wait=off" %
                os.path.join(workdir, "agent.sock"),
                "-serial", "chardev:agent",
                "-qmp", "unix:%s,server=on,wait=off" % os.path.join(workdir, "qmp.sock")]
        for m in self.monitors:
            cmd += ["-qmp", "unix:%s,server=on,wait=off" % os.path.join(workdir, m + ".qmp")]
        for d in self.devices:
            cmd += d.qemu_args()
        if self.report:
            cmd += report_qemu_args(os.path.join(workdir, "report.sock"))
        cmd += self.qemu_args
        if incoming:
            cmd += ["-incoming", incoming]
        return cmd

    def _launch(self, workdir, incoming=None):
        cmd = self.qemu_command(workdir, incoming)
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def _connect_agent(self, proc, workdir, deadline):
        path = os.path.join(workdir, "agent.sock")
        while True:
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace")
                raise TestFailure("QEMU exited (%d): %s" % (proc.returncode, out.strip()))
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return s
            except OSError:
                s.close()
                if time.time() > deadline:
                    raise TestFailure("QEMU did not open the agent socket")
                time.sleep(0.05)

    def start(self, timeout=90):
        """Boot the guest and wait for its agent's "ready". How the guest
        is booted, reached and torn down are the hooks _boot(),
        _open_agent() and _abort_boot() (libvirt.Domain boots through
        libvirtd)."""
        for attempt in (1, 2):
            self._boot()
            deadline = time.time() + timeout
            try:
                self.sock = self._open_agent(deadline)
                ev = self._read_reply(deadline)
            except TestFailure:
                if attempt == 2 or not self._died_before_init():
                    raise
                # Seen under TCG with 2 vCPUs, rarely: an int3 Oops while
                # the kernel patches its own text during early boot. It is
                # no test of the drivers (they load from /init), so boot
                # once more; a crash after /init always fails the test.
                self.log("# the kernel oopsed while booting, before any module "
                         "was loaded: booting again (TCG text patching flake)")
                self._keep_console()
                self._abort_boot()
                continue
            first = self._problem_in_start_kernel() if ev.get("event") == "ready" else None
            if first and attempt == 1:
                # Seen with the debug kernel on 5-level paging under TCG: an
                # interrupt while identify_cpu() has cleared the boot CPU's
                # feature bits (LA57 with them) makes KASAN take a direct-map
                # address for a wild one, and the report turns lockdep off.
                self.log("# the kernel reported a problem in start_kernel(), before "
                         "any module was loaded: booting again (%s)" % first)
                self._keep_console()
                self._abort_boot()
                continue
            break
        if ev.get("event") != "ready":
            raise TestFailure("agent did not announce itself: %r" % ev)
        return self

    def _problem_in_start_kernel(self):
        """The first problem line of the kernel log, if its report ran in
        start_kernel(): the boot CPU's own set-up, before /init, which loads
        every module, the drivers under test included."""
        report, in_trace = [], False
        for line in self.agent("splat 120")["lines"]:
            report.append(line)
            in_trace = in_trace or "Call Trace:" in line
            if in_trace and (line.startswith("=====") or "---[ end trace" in line):
                break
        if not any(ln.strip().startswith("start_kernel+") for ln in report):
            return None
        return next((ln for ln in report if ln.startswith(("BUG", "WARNING", "Oops"))),
                    report[0]).strip()

    def _boot(self):
        self.proc = self._launch(self.dir)

    def _open_agent(self, deadline):
        return self._connect_agent(self.proc, self.dir, deadline)

    def _abort_boot(self):
        self._kill()

    def _died_before_init(self):
        """Did the kernel oops before any module was loaded (console log)?
        Every module, the drivers under test included, is loaded by /init,
        so an oops that lists no loaded module happened before it."""
        try:
            with open(self.console, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return False
        mods = [ln.split("Modules linked in:", 1)[1].strip()
                for ln in lines if "Modules linked in:" in ln]
        return bool(mods) and not any(mods)

    def _kill(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()

    def migrate(self, during=None, bandwidth=256 * MiB, timeout=300):
        """Live-migrate the guest to a second QEMU on this machine (over a
        unix socket, bandwidth-limited so that it lasts), call during(vm)
        while it runs, and carry on with the destination. Returns the
        migration's duration."""
        newdir = tempfile.mkdtemp(prefix="memplug-vm-")
        mig = os.path.join(newdir, "migrate.sock")
        dest = self._launch(newdir, incoming="unix:" + mig)
        deadline = time.time() + 60
        while not os.path.exists(mig):
            if dest.poll() is not None or time.time() > deadline:
                raise TestFailure("migration destination did not start")
            time.sleep(0.05)
        src = QMP(self.qmp)
        t0 = time.time()
        try:
            # a guest that keeps dirtying memory (the filler) converges once
            # its working set fits in the downtime at this bandwidth. (CPU
            # throttling, auto-converge, hangs TCG guests here: not used.)
            src.execute("migrate-set-parameters", **{"max-bandwidth": bandwidth,
                                                     "downtime-limit": 3000})
            src.execute("migrate", uri="unix:" + mig)
            # QEMU's monitor serves one client at a time: let memplugctl in
            src.close()
            if during:
                during(self)
            src = QMP(self.qmp)
            self.migration_status_after_during = src.execute("query-migrate").get("status")
            deadline = time.time() + timeout
            while True:
                st = src.execute("query-migrate").get("status")
                if st == "completed":
                    break
                if st in ("failed", "cancelled") or time.time() > deadline:
                    raise TestFailure("migration %s" % (st if st != "active" else "timed out"))
                time.sleep(0.2)
        finally:
            src.close()
        took = time.time() - t0
        # the destination is the guest from now on
        self.sock.close()
        self.sock = None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        self.proc.stdout.close()
        self._keep_console()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.proc, self.dir = dest, newdir
        self.qmp = os.path.join(newdir, "qmp.sock")
        self.console = os.path.join(newdir, "console.log")
        self.buf = b""
        self.sock = self._connect_agent(dest, newdir, time.time() + 30)
        self.agent("ping")
        return took

    def stop(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        self._keep_console()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _keep_console(self):
        """KEEP_CONSOLES=<dir>: copy the guest's whole serial console there
        before its directory goes, for a crash the log tail of a failure
        does not show (a migration's source as well as its destination)."""
        keep = os.environ.get("KEEP_CONSOLES")
        if keep and os.path.exists(self.console):
            os.makedirs(keep, exist_ok=True)
            shutil.copy(self.console, os.path.join(keep, "console-%s-%d.log" %
                                                   (self.release, time.time() * 1000)))

    def __enter__(self):
        return self.start()

    def alive(self):
        """Is the guest's QEMU still running?"""
        return self.proc.poll() is None

    def final_check(self):
        """The health check every scenario ends with (docs/testbed.md)."""
        self.check_health(log_problems=self.health_at_exit != "no-log")

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None and self.health_at_exit:
                if not self.sock or not self.alive():
                    raise TestFailure("the guest is gone at the end of the scenario")
                self.final_check()
        except TestFailure:
            if self.sock:
                self.saved_log = self.failure_log()
            raise
        finally:
            if exc_type is not None and self.sock:
                # keep the evidence: the guest is gone once stopped
                self.saved_log = self.failure_log()
            self.stop()

    # -- the agent ----------------------------------------------------------

    def _read_reply(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise TestFailure("guest agent did not answer in time")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise TestFailure("guest agent did not answer in time")
            if not chunk:
                raise TestFailure("guest agent connection closed (guest died?)")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line.decode(errors="replace"))
        except ValueError:
            raise TestFailure("guest agent sent garbage: %r" % line[:200])

    def agent(self, command, timeout=60):
        self.sock.sendall(command.encode() + b"\n")
        reply = self._read_reply(time.time() + timeout)
        if not reply.get("ok"):
            raise TestFailure("agent %r failed: %r" % (command, reply))
        return reply

    def sh(self, command, timeout=120, check=True):
        r = self.agent("sh " + command, timeout)
        if check and r["rc"] != 0:
            raise TestFailure("guest command %r failed (%d): %s" % (command, r["rc"], r["out"].strip()))
        return r

    def state(self):
        return self.agent("state")

    def reboot(self, timeout=120, command="echo b > /proc/sysrq-trigger"):
        """Reboot the guest with `command` (default: at once, sysrq b) and
        wait for the agent to announce itself again. Needs allow_reboot."""
        self.sock.sendall(("sh %s\n" % command).encode())
        deadline = time.time() + timeout
        while True:
            r = self._read_reply(deadline)
            if r.get("event") == "ready":
                return
            # the shell answered: the command did not reboot the guest
            if r.get("rc"):
                raise TestFailure("reboot: %r failed (%d): %s" %
                                  (command, r["rc"], r.get("out", "").strip()))

    def failure_log(self):
        """What a failure report shows of the guest's kernel log: the first
        problem (a splat's call trace, which the tail has long lost by the
        end of a scenario) and the last lines."""
        tail = self.kernel_log(30)
        try:
            splat = self.agent("splat 80", timeout=10)["lines"]
        except Exception:
            splat = []
        n = len(splat)
        if not splat or any(tail[i:i + n] == splat for i in range(len(tail))):
            return tail
        # where the report runs into the tail, print the lines once
        k = max((k for k in range(1, min(n, len(tail)) + 1) if splat[-k:] == tail[:k]),
                default=0)
        out = ["-- first problem --"] + splat
        return out + ["-- last lines --"] + tail[k:] if tail[k:] else out

    def kernel_log(self, lines=40):
        try:
            return self.agent("log %d" % lines, timeout=10)["lines"]
        except Exception:
            pass
        try:
            with open(self.console, errors="replace") as f:
                return f.read().splitlines()[-lines:]
        except OSError:
            return []

    def monitor(self, name):
        """The socket of the extra QMP monitor `name` (VM(monitors=...))."""
        if name not in self.monitors:
            raise TestFailure("this VM has no QMP monitor %r (VM(monitors=...))" % name)
        return os.path.join(self.dir, name + ".qmp")

    @property
    def report_sock(self):
        """The host end of the report channel (VM(report=MS)): QEMU listens,
        one reader at a time (reports() or memplugd)."""
        if not self.report:
            raise TestFailure("this VM has no report channel (VM(report=MS))")
        return os.path.join(self.dir, "report.sock")

    def reports(self, timeout=30):
        """A reader of the report channel (VM(report=MS)); close() it."""
        if not self.report:
            raise TestFailure("this VM has no report channel (VM(report=MS))")
        return Reports(self.report_sock, timeout)

    # -- the host tool ------------------------------------------------------

    def ctl(self, *args, timeout=60):
        cmd = [MEMPLUGCTL, "-s", self.qmp] + [str(a) for a in args]
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            raise TestFailure("memplugctl hung: %s" % " ".join(cmd))
        return p

    def device_status(self, dev_id):
        p = self.ctl("-d", dev_id, "status", "--json")
        if p.returncode != 0:
            raise TestFailure("memplugctl status failed: " + p.stderr.strip())
        st = json.loads(p.stdout)
        if isinstance(st, list):
            st = [d for d in st if d.get("id") == dev_id][0]
        if "devices" in st:
            st = [d for d in st["devices"] if d.get("id") == dev_id][0]
        return st

    def plugged(self, dev_id):
        st = self.device_status(dev_id)
        for k in ("plugged_size", "size", "plugged"):
            if k in st:
                return int(st[k])
        raise TestFailure("memplugctl status has no plugged size: %r" % st)

    def request(self, dev_id, size):
        """Set requested-size without waiting."""
        p = self.ctl("-d", dev_id, "resize", size)
        if p.returncode != 0:
            raise TestFailure("memplugctl resize %s failed: %s" % (size, p.stderr.strip()))

    def resize(self, dev_id, size, timeout=120):
        """Set requested-size and wait until the device reports it plugged."""
        t0 = time.time()
        p = self.ctl("-d", dev_id, "resize", size, "--wait", "--timeout", timeout,
                     timeout=timeout)
        dt = time.time() - t0
        if p.returncode != 0:
            try:
                got = human(self.plugged(dev_id))
            except Exception as e:
                got = "? (%s)" % e
            raise TestFailure("%s: resize to %s did not complete (exit %d after %.1fs, plugged %s): %s"
                              % (dev_id, human(parse_size(size)), p.returncode, dt, got,
                                 p.stderr.strip().splitlines()[-1:] if p.stderr else ""))
        self.log("# %s resized to %s in %.2fs" % (dev_id, human(parse_size(size)), dt))
        return dt

    # -- assertions ---------------------------------------------------------

    def baseline(self):
        """Remember the guest's memory before anything was plugged."""
        self.base = self.state()
        return self.base

    def wait_memory(self, added, zone=None, timeout=60, total_slack=0):
        """Wait until the guest sees exactly `added` bytes more than at
        baseline (MemTotal and managed pages of the hot-plugged zones), all
        of it in `zone` ("Movable", "Normal", or None for any).
        total_slack: after a reboot boot memory itself may differ by a few
        pages from the baseline; the zone check stays exact.
        `added` may be a function, read again on every look: the guest must
        follow a target that still moves (a guard that lets growth resume)."""
        deadline = time.time() + timeout
        base = self.base
        target = added if callable(added) else (lambda: added)
        while True:
            added = target()
            st = self.state()
            got_total = (st["memtotal_kb"] - base["memtotal_kb"]) * KiB
            zdelta = {z: (st["zones"][z]["managed_pages"] - base["zones"][z]["managed_pages"]) * 4096
                      for z in ("Normal", "Movable")}
            ok = abs(got_total - added) <= total_slack
            if zone:
                ok = ok and zdelta[zone] == added
            else:
                ok = ok and sum(zdelta.values()) == added
            if ok:
                return st
            if time.time() > deadline:
                raise TestFailure("guest memory did not follow: expected +%s%s, MemTotal +%s, "
                                  "Normal +%s, Movable +%s" %
                                  (human(added), " in " + zone if zone else "", human(got_total),
                                   human(zdelta["Normal"]), human(zdelta["Movable"])))
            time.sleep(0.2)

    def wait_blocks_back_to_baseline(self, timeout=30):
        """After unplugging everything no hot-plugged memory block may remain."""
        deadline = time.time() + timeout
        while True:
            st = self.state()
            if st["memory_blocks"]["total"] == self.base["memory_blocks"]["total"]:
                return st
            if time.time() > deadline:
                raise TestFailure("%d memory blocks left after unplug (baseline %d)" %
                                  (st["memory_blocks"]["total"], self.base["memory_blocks"]["total"]))
            time.sleep(0.2)

    def health(self, alloc_mib=None):
        """The agent's health report (zones, MemAvailable, a fresh
        allocation of alloc_mib MiB, default a quarter of boot memory)."""
        if alloc_mib is None:
            alloc_mib = self.boot_mem // MiB // 4
        return self.agent("health %d" % alloc_mib, timeout=180)

    def check_health(self, alloc_mib=None, log_problems=True):
        """Is the guest still a healthy Linux? Per zone the kernel's own
        numbers must hold together: managed <= present <= spanned, free <=
        managed, min <= low <= high <= present (or the floor of an empty zone), and no lowmem reserve
        (protection) above what the node manages in all (each is a share of
        the zones above it). MemAvailable is within (0, MemTotal]; a fresh
        process gets a quarter of boot memory and reads back what it wrote,
        without the OOM killer; and the kernel log shows no splat
        (log_problems=False: a scenario that expects some checks them
        itself)."""
        h = self.health(alloc_mib)
        bad = []
        node_managed = {}
        for z in h["zones"]:
            node_managed[z["node"]] = node_managed.get(z["node"], 0) + z.get("managed", 0)
        for z in h["zones"]:
            name = "node %d %s" % (z["node"], z["zone"])
            need = ("free", "min", "low", "high", "spanned", "present", "managed")
            if any(k not in z for k in need):
                bad.append("%s: /proc/zoneinfo lacks %s" %
                           (name, ", ".join(k for k in need if k not in z)))
                continue
            if not z["managed"] <= z["present"] <= z["spanned"]:
                bad.append("%s: managed %d, present %d, spanned %d" %
                           (name, z["managed"], z["present"], z["spanned"]))
            if not 0 <= z["free"] <= z["managed"]:
                bad.append("%s: %d pages free of %d managed" % (name, z["free"], z["managed"]))
            # Watermarks follow the managed pages only when the kernel
            # recomputes them (on/offlining, sysctl): pages a driver takes
            # like a balloon (unplugged sub blocks, both drivers) leave them
            # as they were, up to what the zone has present. An empty
            # ZONE_MOVABLE keeps the minimum of its kind (up to 128 pages).
            if not 0 <= z["min"] <= z["low"] <= z["high"] <= max(z["present"], 256):
                bad.append("%s: watermarks min %d low %d high %d, managed %d" %
                           (name, z["min"], z["low"], z["high"], z["managed"]))
            limit = node_managed[z["node"]]
            if any(not 0 <= p <= limit for p in z["protection"]):
                bad.append("%s: protection %s, but the node manages %d pages" %
                           (name, z["protection"], limit))
        if not 0 < h["memavailable_kb"] <= h["memtotal_kb"]:
            bad.append("MemAvailable %d kB of MemTotal %d kB" %
                       (h["memavailable_kb"], h["memtotal_kb"]))
        if h["alloc"] != "ok":
            bad.append("a fresh %d MiB allocation: %s%s" %
                       (h["alloc_mib"], h["alloc"],
                        " (OOM killer)" if h["alloc"] == "killed:9" else ""))
        bad += self.region_problems()
        if bad:
            raise TestFailure("guest unhealthy: " + "; ".join(bad))
        if log_problems:
            self.check_kernel_log()
        return h

    def region_problems(self, tries=3):
        """region_problems_now(), looked at again a second later while it
        finds any: a driver may still be at work (a guard that resumed),
        removing a block between the two reads."""
        for i in range(tries):
            bad = self.region_problems_now()
            if not bad:
                return bad
            time.sleep(1)
        return bad

    def region_problems_now(self):
        """Does Linux's view of each device region hold together? The
        memory blocks present in the region are exactly what /proc/iomem
        lists as System RAM (virtio_mem) there, and none is left half way
        on or offline."""
        devs = [d["data"] for d in self.memory_devices() if d.get("type") == "virtio-mem"]
        if not devs:
            return []
        out = self.sh("cat /proc/iomem; echo ==; cd /sys/devices/system/memory && "
                      "cat block_size_bytes && for m in memory[0-9]*; do "
                      "echo ${m#memory} $(cat $m/state); done")["out"]
        iomem, blocks = out.split("\n==\n", 1)
        lines = blocks.split("\n")
        mb = int(lines[0], 16)
        # a block removed between the glob and its read has no state
        state = {int(l.split()[0]) * mb: l.split()[1] for l in lines[1:]
                 if len(l.split()) == 2}
        ram = []
        for line in iomem.splitlines():
            m = re.match(r"^ *([0-9a-f]+)-([0-9a-f]+) : System RAM \(virtio_mem\)$", line)
            if m:
                ram.append((int(m.group(1), 16), int(m.group(2), 16) + 1))
        bad = []
        for d in devs:
            start, end = d["memaddr"], d["memaddr"] + d["max-size"]
            in_iomem = sum(min(e, end) - max(s, start) for s, e in ram if s < end and e > start)
            present = [a for a in state if start <= a < end]
            if in_iomem != len(present) * mb:
                bad.append("region %x-%x: %s of System RAM (virtio_mem) in /proc/iomem, "
                           "but %d memory blocks present" % (start, end - 1, human(in_iomem),
                                                             len(present)))
            odd = [a for a in present if state[a] not in ("online", "offline")]
            if odd:
                bad.append("memory blocks in transition at the end: %s" %
                           ", ".join("%x %s" % (a, state[a]) for a in odd[:4]))
        return bad

    def memory_devices(self):
        """QEMU's query-memory-devices (a libvirt domain asks through
        libvirt: tests/vm/libvirt.py)."""
        q = QMP(self.qmp)
        try:
            return q.execute("query-memory-devices")
        finally:
            q.close()

    def check_kernel_log(self):
        r = self.agent("dmesg")
        if r["problem_count"]:
            raise TestFailure("kernel log shows %d problem line(s): %s" %
                              (r["problem_count"], " | ".join(r["problems"][:5])))
