#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The libvirt suite (make check-libvirt): virtio-mem through Debian's
libvirt, end to end, with memplug and with the kernel's virtio_mem.

  tests/vm/libvirt.py [--driver memplug|virtio_mem|both] [--kernel 6.1|6.12|all]
                      [--filter REGEX] [--list]

The suite starts its own libvirtd (libvirt.Libvirtd below): a private mount
namespace in which /etc/libvirt, /run/libvirt, /var/lib/libvirt,
/var/log/libvirt and /var/cache/libvirt are directories of its own, its
sockets in a temporary directory, reached with
qemu+unix:///system?socket=DIR/sock/libvirt-sock. Nothing of the host's
libvirt is used or changed, no systemd is needed, and the daemon, its
domains and its files are gone when the suite ends.

Each scenario defines a TCG domain (1 vCPU, 1 GiB) from XML
(Domain.xml(): the test bed's kernel, initramfs and command line, one NUMA
node, <maxMemory>, a <memory model='virtio-mem'> device with alias ua-vmem0,
the guest agent on the second serial port) and drives it the way a libvirt
user does: virsh update-memory-device, the live XML's <current>, the
memory-device-size-change event (virsh event), --config across a restart,
and memplugctl -c URI -D DOMAIN (status --json, resize --wait [--config],
watch); and memplugd (libvirt = URI, domain = NAME) sizing a domain with
the report channel (a <channel> org.memplug.report.0, memplug-report in
the guest) under a workload, with memplug only. Every scenario ends with the test bed's health check of the guest
(testbed.VM.check_health), as every scenario of tests/vm/run.py does.

Environment: DRIVER, KERNELS, FILTER as for tests/vm/run.py; MEMPLUGCTL,
MEMPLUGD (default tools/memplugd/memplugd, built with libvirt).
KTAP; ends with "N passed, N failed, N skipped"; exit 1 if anything failed.
"""

import argparse
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
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ktap  # noqa: E402
from testbed import (BUILD, CACHE, TOP, GiB, KiB, MEMPLUGCTL, MiB, VM, Device,  # noqa: E402
                     Skip, TestFailure, human, kernel_series, kernels, REPORT_PORT)

# Where a privileged libvirtd keeps its state; the suite's libvirtd gets a
# private directory over each (an empty directory is created on the host
# where there is none, as libvirt-daemon-system would).
LIBVIRT_DIRS = ("/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt",
                "/var/cache/libvirt")

LIBVIRTD_CONF = """\
# the memplug test's own libvirtd (tests/vm/libvirt.py)
unix_sock_dir = "{dir}/sock"
unix_sock_group = "root"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
auth_unix_ro = "none"
auth_unix_rw = "none"
log_outputs = "3:file:{dir}/libvirtd.log"
"""

# user/group root: no libvirt-qemu user to own files; no security driver
# (AppArmor, SELinux, DAC) and no cgroups: a test bed, not a host; QEMU's
# stdout/stderr to a file, not virtlogd
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
security_driver = "none"
cgroup_controllers = [ ]
stdio_handler = "file"
"""

# Run inside the private mount namespace (unshare -m), as root.
START_SH = """\
set -e
for pair in {binds}; do
    mount --bind "${{pair%%=*}}" "${{pair#*=}}"
done
exec libvirtd -f {dir}/etc/libvirtd.conf -p {dir}/libvirtd.pid
"""


class Libvirtd:
    """A libvirtd of the test's own, isolated from the host's libvirt."""

    def __init__(self, log=print):
        self.log = log
        self.dir = tempfile.mkdtemp(prefix="memplug-libvirt-")
        self.uri = "qemu+unix:///system?socket=%s/sock/libvirt-sock" % self.dir
        self.proc = None

    def start(self, timeout=60):
        if os.geteuid() != 0:
            raise Skip("needs root (a privileged libvirtd)")
        for tool in ("libvirtd", "virsh", "unshare"):
            if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
                raise Skip("%s not installed (scripts/deps.sh installs libvirt)" % tool)
        d = self.dir
        binds = []
        for host in LIBVIRT_DIRS:
            private = os.path.join(d, host.strip("/").replace("/", "-"))
            os.makedirs(private)
            os.makedirs(host, exist_ok=True)
            binds.append("%s=%s" % (private, host))
        etc = os.path.join(d, "etc-libvirt")
        with open(os.path.join(etc, "qemu.conf"), "w") as f:
            f.write(QEMU_CONF)
        os.makedirs(os.path.join(d, "etc"))
        os.makedirs(os.path.join(d, "sock"))
        with open(os.path.join(d, "etc", "libvirtd.conf"), "w") as f:
            f.write(LIBVIRTD_CONF.format(dir=d))
        # Debian's libvirt resolves its built-in QEMU user, libvirt-qemu,
        # before it reads qemu.conf; libvirt-daemon-system creates it. Here
        # the namespace gets a passwd and group that have it (qemu.conf
        # then says root), and the host's stay as they are.
        for name, line in (("passwd", "libvirt-qemu:x:64055:64055:libvirt (memplug test)"
                            ":/var/lib/libvirt:/usr/sbin/nologin\n"),
                           ("group", "libvirt-qemu:x:64055:\n")):
            with open("/etc/" + name) as f:
                text = f.read()
            if not re.search(r"^libvirt-qemu:", text, re.M):
                path = os.path.join(d, name)
                with open(path, "w") as f:
                    f.write(text + ("" if text.endswith("\n") else "\n") + line)
                binds.append("%s=/etc/%s" % (path, name))
        with open(os.path.join(d, "start.sh"), "w") as f:
            f.write(START_SH.format(dir=d, binds=" ".join(binds)))
        env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        self.proc = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                      "sh", os.path.join(d, "start.sh")],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True, env=env)
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode(errors="replace")
                raise TestFailure("libvirtd exited (%d): %s%s" % (
                    self.proc.returncode, out.strip(), self.log_tail()))
            if os.path.exists(os.path.join(d, "sock", "libvirt-sock")):
                p = self.virsh("version", check=False, timeout=30)
                if p.returncode == 0:
                    break
            if time.time() > deadline:
                raise TestFailure("libvirtd did not answer in %ds%s" % (timeout, self.log_tail()))
            time.sleep(0.2)
        return self

    def log_tail(self, n=10):
        try:
            with open(os.path.join(self.dir, "libvirtd.log"), errors="replace") as f:
                lines = [ln.rstrip() for ln in f if " error : " in ln]
        except OSError:
            return ""
        return "".join("\n# libvirtd: " + ln for ln in lines[-n:])

    def virsh(self, *args, check=True, timeout=60):
        cmd = ["virsh", "-q", "-c", self.uri] + [str(a) for a in args]
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("virsh hung: %s" % " ".join(cmd[3:]))
        if check and p.returncode != 0:
            raise TestFailure("virsh %s failed (%d): %s" % (" ".join(cmd[4:]), p.returncode,
                                                           (p.stderr or p.stdout).strip()))
        return p

    def stop(self):
        """Destroy and undefine every domain, stop libvirtd, kill any QEMU it
        left (its pid files), remove everything."""
        if self.proc and self.proc.poll() is None:
            p = self.virsh("list", "--all", "--name", check=False, timeout=30)
            for name in p.stdout.split():
                self.virsh("destroy", name, check=False, timeout=30)
                self.virsh("undefine", name, check=False, timeout=30)
        qemu_run = os.path.join(self.dir, "run-libvirt", "qemu")
        for pidfile in (os.listdir(qemu_run) if os.path.isdir(qemu_run) else []):
            if pidfile.endswith(".pid"):
                try:
                    with open(os.path.join(qemu_run, pidfile)) as f:
                        os.kill(int(f.read().strip()), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        if self.proc:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
            self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class EventListener:
    """virsh event --all --loop on one domain, in the background. ready()
    returns once virsh is known to listen: it has seen the metadata-change
    event of a metadata element set for the purpose."""

    def __init__(self, lv, name):
        self.lv, self.name = lv, name
        self.lines = []
        self.proc = subprocess.Popen(["virsh", "-c", lv.uri, "event", name, "--all", "--loop"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def ready(self, timeout=30):
        deadline = time.time() + timeout
        n = 0
        while True:
            n += 1
            self.lv.virsh("metadata", self.name, "--live", "--uri", "https://memplug.test/",
                          "--key", "memplug", "--set", "<listening n='%d'/>" % n)
            t = time.time() + 1
            while time.time() < t:
                if any("metadata-change" in ln for ln in self.lines):
                    return
                time.sleep(0.05)
            if time.time() > deadline or self.proc.poll() is not None:
                raise TestFailure("virsh event does not report events: %s" %
                                  " | ".join(self.lines[-5:]))

    def size_events(self):
        """[(alias, KiB)] of the memory-device-size-change events so far.
        virsh prints: event 'memory-device-size-change' for domain 'D':
        then 'alias: A' and 'size: N' on lines of their own."""
        out, cur = [], None
        for ln in list(self.lines):
            if "event 'memory-device-size-change'" in ln:
                cur = {}
            elif cur is not None:
                m = re.match(r"\s*(alias|size):\s*(\S+)", ln)
                if m:
                    cur[m.group(1)] = m.group(2)
                if "alias" in cur and "size" in cur:
                    out.append((cur["alias"], int(cur["size"])))
                    cur = None
        return out

    def wait_size(self, alias, size, timeout=30):
        deadline = time.time() + timeout
        while (alias, size // KiB) not in self.size_events():
            if time.time() > deadline:
                raise TestFailure("no memory-device-size-change event for %s with size %s "
                                  "(events: %s)" % (alias, human(size), self.size_events()))
            time.sleep(0.1)

    def stop(self):
        if self.proc.stdout.closed:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(5)
        self.proc.stdout.close()


ALIAS = "ua-vmem0"

# memplugctl's libvirt backend under valgrind, where a scenario asks for it
# (exit 99 on an invalid access or a leak)
VALGRIND = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full",
            "--show-leak-kinds=definite,indirect", "--errors-for-leak-kinds=definite,indirect"]


class Domain(VM):
    """A test-bed guest as a libvirt domain: the same kernel, initramfs,
    command line and guest agent as testbed.VM, started by libvirt."""

    def __init__(self, lv, name, release, driver, block, region, requested=0,
                 boot_mem="1G", log=print, report=None):
        # report=MS: the report channel, as a <channel> (memplug-report -i MS)
        super().__init__(release, driver, [Device(ALIAS, region, block, requested, node=0)],
                         boot_mem=boot_mem, smp=1, log=log, report=report)
        self.lv = lv
        self.name = name
        self.defined = False
        self.t0 = time.time()

    def xml(self):
        """The domain XML; docs/install.md's recipe is its libvirt part."""
        d = self.devices[0]
        kdir = os.path.join(CACHE, "kernels", self.release)
        initrd = self.initrd or os.path.join(BUILD, self.release, "initramfs.gz")
        if not os.path.exists(initrd):
            raise SystemExit("libvirt.py: no %s; run make build" % initrd)
        boot_mib = self.boot_mem // MiB
        # the report channel (docs/memplugd.md, "libvirt domains"): QEMU
        # listens on the socket, memplugd connects to it
        channel = "" if not self.report else """
    <channel type='unix'>
      <source mode='bind' path='{sock}'/>
      <target type='virtio' name='{port}'/>
    </channel>""".format(sock=os.path.join(self.dir, "report.sock"), port=REPORT_PORT)
        # as the test bed's maxmem: room for the region aligned to its block
        max_mib = (self.boot_mem + d.region + max(d.block_size, GiB) + GiB) // MiB
        return """\
<domain type='qemu'>
  <name>{name}</name>
  <maxMemory slots='1' unit='MiB'>{max_mib}</maxMemory>
  <memory unit='MiB'>{boot_mib}</memory>
  <vcpu>{smp}</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <cpu mode='maximum'>
    <numa>
      <cell id='0' cpus='{cpus}' memory='{boot_mib}' unit='MiB'/>
    </numa>
  </cpu>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='{dir}/console.log'/>
      <target port='0'/>
    </serial>
    <serial type='unix'>
      <source mode='bind' path='{dir}/agent.sock'/>
      <target port='1'/>
    </serial>
    <memballoon model='none'/>
    <memory model='virtio-mem'>
      <target>
        <size unit='MiB'>{region_mib}</size>
        <node>0</node>
        <block unit='MiB'>{block_mib}</block>
        <requested unit='MiB'>{requested_mib}</requested>
      </target>
      <alias name='{alias}'/>
    </memory>{channel}
  </devices>
</domain>
""".format(name=self.name, channel=channel, max_mib=max_mib, boot_mib=boot_mib, smp=self.smp,
           cpus="0" if self.smp == 1 else "0-%d" % (self.smp - 1),
           kernel=os.path.join(kdir, "boot", "vmlinuz-" + self.release), initrd=initrd,
           cmdline=self.kernel_cmdline(), dir=self.dir, region_mib=d.region // MiB,
           block_mib=d.block_size // MiB, requested_mib=d.requested // MiB, alias=d.id)

    # -- lifecycle ----------------------------------------------------------

    def define(self):
        if not self.defined:
            path = os.path.join(self.dir, "domain.xml")
            with open(path, "w") as f:
                f.write(self.xml())
            self.lv.virsh("define", path)
            self.defined = True

    def start(self, timeout=120):
        self.define()
        return super().start(timeout)

    # testbed.VM.start()'s hooks: libvirtd starts and destroys the QEMU
    def _boot(self):
        self.lv.virsh("start", self.name)

    def _abort_boot(self):
        self._close()
        self.lv.virsh("destroy", self.name, check=False)

    def _open_agent(self, deadline):
        path = os.path.join(self.dir, "agent.sock")
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                return s
            except OSError:
                s.close()
                if time.time() > deadline or not self.alive():
                    raise TestFailure("the domain did not open the agent socket")
                time.sleep(0.05)

    def _close(self):
        if self.sock:
            self.sock.close()
            self.sock = None
        self.buf = b""

    def alive(self):
        """libvirt owns the QEMU process: ask it."""
        p = self.lv.virsh("domstate", self.name, check=False)
        return p.returncode == 0 and p.stdout.strip() in ("running", "paused")

    def restart(self):
        """virsh destroy, then virsh start: a new QEMU from the domain's
        persistent configuration."""
        self._close()
        self.lv.virsh("destroy", self.name)
        self._keep_console()
        self.start()

    def final_check(self):
        step(self, "health check")
        self.check_health()
        step(self, "healthy")

    def stop(self):
        self._close()
        if self.defined:
            self.lv.virsh("destroy", self.name, check=False)
            self.lv.virsh("undefine", self.name, check=False)
            self.defined = False
        self._keep_console()
        shutil.rmtree(self.dir, ignore_errors=True)

    def memory_devices(self):
        """query-memory-devices through libvirt, which owns the monitor
        (read only; the health check compares it with the guest's view)."""
        p = self.lv.virsh("qemu-monitor-command", self.name,
                          '{"execute":"query-memory-devices"}')
        return json.loads(p.stdout)["return"]

    # -- libvirt's view -----------------------------------------------------

    def vmem_xml(self, inactive=False):
        """{requested, current, size, block} in bytes from the live XML (or
        the persistent one) of the virtio-mem device."""
        p = self.lv.virsh("dumpxml", self.name, *(["--inactive"] if inactive else []))
        root = ET.fromstring(p.stdout)
        for mem in root.findall("./devices/memory[@model='virtio-mem']"):
            alias = mem.find("alias")
            if alias is None or alias.get("name") != ALIAS:
                continue
            out = {}
            for key in ("size", "block", "requested", "current"):
                el = mem.find("target/" + key)
                if el is not None:
                    unit = el.get("unit", "KiB")
                    out[key] = int(el.text) * {"KiB": KiB, "MiB": MiB, "GiB": GiB,
                                                "b": 1, "bytes": 1}[unit]
            return out
        raise TestFailure("no virtio-mem device %s in the %s XML" %
                          (ALIAS, "inactive" if inactive else "live"))

    def wait_current(self, size, timeout=60):
        """Until the live XML's <current> is size."""
        deadline = time.time() + timeout
        while True:
            x = self.vmem_xml()
            if x.get("current") == size:
                return
            if time.time() > deadline:
                raise TestFailure("the live XML's <current> is %s, not %s (requested %s)" %
                                  (human(x.get("current", 0)), human(size),
                                   human(x.get("requested", 0))))
            time.sleep(0.2)

    def check_requested(self, size, inactive=False):
        got = self.vmem_xml(inactive).get("requested", 0)
        if got != size:
            raise TestFailure("the %s XML's <requested> is %s, not %s" %
                              ("persistent" if inactive else "live", human(got), human(size)))

    def update(self, size, *flags):
        """virsh update-memory-device, as a user types it."""
        t0 = time.time()
        self.lv.virsh("update-memory-device", self.name, "--alias", ALIAS,
                      "--requested-size", "%dKiB" % (size // KiB), *flags)
        return t0

    # -- memplugctl through libvirt ----------------------------------------

    def ctl_cmd(self, *args, valgrind=False):
        return ((VALGRIND if valgrind and shutil.which("valgrind") else []) +
                [MEMPLUGCTL, "-c", self.lv.uri, "-D", self.name] + [str(a) for a in args])

    def ctl(self, *args, timeout=60, valgrind=False):
        cmd = self.ctl_cmd(*args, valgrind=valgrind)
        try:
            return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                                  text=True, timeout=timeout + 30)
        except subprocess.TimeoutExpired:
            raise TestFailure("memplugctl hung: %s" % " ".join(cmd))

    def ctl_resize(self, size, *flags, timeout=120, valgrind=False):
        """memplugctl resize SIZE --wait --json [flags]: both JSON lines,
        progress on stderr."""
        t0 = time.time()
        p = self.ctl("-d", ALIAS, "resize", size, "--wait", "--timeout", timeout, "--json",
                     *flags, timeout=timeout, valgrind=valgrind)
        if p.returncode != 0:
            raise TestFailure("memplugctl resize %s failed (%d): %s" %
                              (human(size), p.returncode, p.stderr.strip()))
        lines = [json.loads(ln) for ln in p.stdout.splitlines()]
        if [ln.get("result") for ln in lines] != ["requested", "reached"] or \
                lines[-1].get("size") != size:
            raise TestFailure("memplugctl resize --json: %s" % p.stdout.strip())
        # without a terminal the progress is a line per second, and the last
        if not re.search(r"plugged .* of .* requested \(100%", p.stderr):
            raise TestFailure("memplugctl resize --wait showed no progress: %r" %
                              p.stderr[-300:])
        self.log("# memplugctl resize %s --wait%s: %.2fs" %
                 (human(size), "".join(" " + f for f in flags), time.time() - t0))
        return lines

    def ctl_status(self):
        p = self.ctl("status", "--json")
        if p.returncode != 0:
            raise TestFailure("memplugctl status failed (%d): %s" % (p.returncode,
                                                                    p.stderr.strip()))
        return [json.loads(ln) for ln in p.stdout.splitlines()]


def step(dom, what):
    """Log a step with the time since the scenario began."""
    dom.log("# [%5.1fs] %s" % (time.time() - dom.t0, what))


def scenario_sbm(t):
    """SBM (2 MiB blocks) through libvirt: virsh, <current>, events, memplugctl, --config

    virsh update-memory-device up and down with <current> and the event,
    memplugctl -c -D status, resize --wait, watch, --config across a restart."""
    block = 2 * MiB
    with t.domain(block=block, region=2 * GiB) as dom:
        step(dom, "booted")
        dom.baseline()
        ev = EventListener(t.lv, dom.name)
        t.cleanup.append(ev.stop)
        ev.ready()

        step(dom, "virsh update-memory-device --requested-size 512MiB --live --config")
        dom.update(512 * MiB, "--live", "--config")
        dom.wait_current(512 * MiB)
        dom.wait_memory(512 * MiB, zone="Movable")
        ev.wait_size(ALIAS, 512 * MiB)
        dom.check_requested(512 * MiB, inactive=True)

        step(dom, "virsh update-memory-device --requested-size 0 --live")
        dom.update(0, "--live")
        dom.wait_current(0)
        dom.wait_memory(0, zone="Movable")
        dom.wait_blocks_back_to_baseline()
        ev.wait_size(ALIAS, 0)
        dom.check_requested(512 * MiB, inactive=True)

        step(dom, "memplugctl -c URI -D DOMAIN status --json")
        st = dom.ctl_status()
        want = {"id": ALIAS, "node": 0, "block-size": block, "max-size": 2 * GiB,
                "requested-size": 0, "size": 0, "vm-status": "running", "vm-running": True,
                "warnings": []}
        if len(st) != 1 or any(st[0].get(k) != v for k, v in want.items()):
            raise TestFailure("memplugctl status --json: %r, expected %r" % (st, want))

        step(dom, "memplugctl watch, and resize 256M --wait --config")
        watch = subprocess.Popen(dom.ctl_cmd("-d", ALIAS, "watch", "--json", "--count", "1",
                                             "--timeout", "60"),
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        time.sleep(0.3)
        lines = dom.ctl_resize(256 * MiB, "--config", valgrind=True)
        if not lines[-1].get("config"):
            raise TestFailure("memplugctl resize --config --json lacks config: %r" % lines)
        try:
            out, err = watch.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            watch.kill()
            watch.communicate()
            raise TestFailure("memplugctl watch saw no event")
        evs = [json.loads(ln) for ln in out.splitlines()]
        if watch.returncode != 0 or len(evs) != 1 or evs[0].get("id") != ALIAS or \
                not 0 < evs[0].get("size", 0) <= 256 * MiB:
            raise TestFailure("memplugctl watch: exit %d, %r %s" % (watch.returncode, evs,
                                                                    err.strip()))
        dom.wait_current(256 * MiB)
        dom.wait_memory(256 * MiB, zone="Movable")
        dom.check_requested(256 * MiB, inactive=True)

        step(dom, "virsh destroy, virsh start: the domain starts with the persistent 256 MiB")
        ev.stop()
        dom.restart()
        dom.check_requested(256 * MiB)
        dom.wait_current(256 * MiB)
        # boot memory itself may differ by a few pages from the first boot
        dom.wait_memory(256 * MiB, zone="Movable", total_slack=4 * MiB)

        step(dom, "memplugctl resize 0 --wait (live only): the configuration keeps 256 MiB")
        dom.ctl_resize(0)
        dom.wait_current(0)
        dom.wait_memory(0, zone="Movable", total_slack=4 * MiB)
        dom.wait_blocks_back_to_baseline()
        dom.check_requested(256 * MiB, inactive=True)


def scenario_bbm(t):
    """BBM (1 GiB blocks) through libvirt: virsh and memplugctl, <current>, events

    virsh update-memory-device up with <current> and the event, memplugctl
    resize --wait further up, virsh back to 0 (one unplug: the reference
    takes seconds per GiB)."""
    block = 1 * GiB
    with t.domain(block=block, region=4 * GiB) as dom:
        step(dom, "booted")
        dom.baseline()
        ev = EventListener(t.lv, dom.name)
        t.cleanup.append(ev.stop)
        ev.ready()

        step(dom, "virsh update-memory-device --requested-size 1GiB")
        dom.update(1 * GiB)
        dom.wait_current(1 * GiB)
        dom.wait_memory(1 * GiB, zone="Movable")
        ev.wait_size(ALIAS, 1 * GiB)

        step(dom, "memplugctl -c URI -D DOMAIN status --json, resize 2G --wait")
        st = dom.ctl_status()
        if len(st) != 1 or st[0].get("block-size") != block or st[0].get("size") != 1 * GiB:
            raise TestFailure("memplugctl status --json: %r" % st)
        dom.ctl_resize(2 * GiB)
        dom.wait_current(2 * GiB)
        dom.wait_memory(2 * GiB, zone="Movable")
        ev.wait_size(ALIAS, 2 * GiB)

        step(dom, "virsh update-memory-device --requested-size 0")
        dom.update(0)
        dom.wait_current(0)
        dom.wait_memory(0, zone="Movable")
        dom.wait_blocks_back_to_baseline()
        ev.wait_size(ALIAS, 0)


def expect_ctl(dom, rc, pattern, *args, valgrind=False):
    p = dom.ctl(*args, valgrind=valgrind)
    if p.returncode != rc or not re.search(pattern, p.stdout + p.stderr):
        raise TestFailure("memplugctl %s: exit %d (expected %d), %r" % (
            " ".join(str(a) for a in args), p.returncode, rc, (p.stdout + p.stderr).strip()))
    return p


def scenario_shutoff(t):
    """memplugctl -c -D on a domain that is shut off: its configuration"""
    dom = t.domain(block=2 * MiB, region=1 * GiB)
    dom.define()
    expect_ctl(dom, 0, r"^\{", "status", "--json", valgrind=True)
    st = dom.ctl_status()
    want = {"id": ALIAS, "block-size": 2 * MiB, "max-size": GiB, "requested-size": 0,
            "size": 0, "vm-status": "shutoff", "vm-running": False, "warnings": []}
    if len(st) != 1 or any(st[0].get(k) != v for k, v in want.items()):
        raise TestFailure("memplugctl status --json: %r, expected %r" % (st, want))
    expect_ctl(dom, 1, r"^memplugctl: domain '%s' is not running \(shutoff\): only resize "
               r"--config" % dom.name, "resize", "128M")
    expect_ctl(dom, 1, r"nothing to --wait for", "resize", "128M", "--config", "--wait")
    expect_ctl(dom, 1, r"not a multiple of the block size", "resize", "3M", "--config")
    p = expect_ctl(dom, 0, r'"result":"requested"', "resize", "128M", "--config", "--json",
                   valgrind=True)
    if not json.loads(p.stdout).get("config"):
        raise TestFailure("resize --config --json: %s" % p.stdout)
    dom.check_requested(128 * MiB, inactive=True)
    expect_ctl(dom, 1, r"has no virtio-mem device with alias 'nosuch' \(it has %s\)" % ALIAS,
               "-d", "nosuch", "status")
    p = subprocess.run([MEMPLUGCTL, "-c", t.lv.uri, "-D", "memplug-nosuch", "status"],
                       capture_output=True, text=True, timeout=60)
    if p.returncode != 1 or not p.stderr.startswith("memplugctl: no domain 'memplug-nosuch'"):
        raise TestFailure("memplugctl -D memplug-nosuch: exit %d, %r" % (p.returncode, p.stderr))


MEMPLUGD = os.environ.get("MEMPLUGD", os.path.join(TOP, "tools", "memplugd", "memplugd"))


def scenario_memplugd(t):
    """memplugd sizes the domain through libvirt: a workload pushes the guest, memplugd grows it

    The domain has the report channel (<channel> org.memplug.report.0,
    memplug-report -i 500 in the guest); memplugd (libvirt = URI, domain =
    NAME) connects through libvirt, the agent's filler takes the guest's
    MemAvailable below memplugd's buffer, memplugd logs a growth and the live
    XML's <requested> and <current> follow; --status shows the libvirt backend."""
    if not os.access(MEMPLUGD, os.X_OK):
        raise Skip("no %s (make -C tools/memplugd)" % MEMPLUGD)
    with t.domain(block=2 * MiB, region=2 * GiB, report=500) as dom:
        step(dom, "booted")
        work = tempfile.mkdtemp(prefix="memplug-memplugd-")
        t.cleanup.append(lambda: shutil.rmtree(work, ignore_errors=True))
        conf = os.path.join(work, "memplugd.conf")
        with open(conf, "w") as f:
            # TCG's pace; no shrink during the scenario (hold-down)
            f.write("[daemon]\ninterval = 0.5\nreport-timeout = 3\nqmp-timeout = 2\n"
                    "reconnect-max = 2\nhold-down = 600\nsettle-time = 30\n"
                    "[vm dom]\nlibvirt = %s\ndomain = %s\nreport = %s\nalias = %s\n"
                    "buffer = 256M\nmax = 1G\n" % (t.lv.uri, dom.name,
                                                    os.path.join(dom.dir, "report.sock"), ALIAS))
        p = subprocess.run([MEMPLUGD, "-t", "-c", conf], capture_output=True, text=True)
        if p.returncode == 78 and "built without libvirt support" in p.stderr:
            raise Skip("memplugd built without libvirt (libvirt-dev, libxml2-dev)")
        if p.returncode != 0:
            raise TestFailure("memplugd --check-config: %s" % p.stderr.strip())
        rundir = os.path.join(work, "run")
        logpath = os.path.join(work, "memplugd.log")
        logf = open(logpath, "wb")
        daemon = subprocess.Popen([MEMPLUGD, "-c", conf, "-s", rundir], stdin=subprocess.DEVNULL,
                                  stdout=logf, stderr=subprocess.STDOUT)

        def stop_daemon():
            if daemon.poll() is None:
                daemon.terminate()
                try:
                    daemon.wait(10)
                except subprocess.TimeoutExpired:
                    daemon.kill()
                    daemon.wait()
            logf.close()
        t.cleanup.append(stop_daemon)

        def log():
            with open(logpath, errors="replace") as f:
                return f.read()

        def wait_log(pattern, what, timeout):
            deadline = time.time() + timeout
            while True:
                m = re.search(pattern, log(), re.M)
                if m:
                    return m
                if daemon.poll() is not None or time.time() > deadline:
                    raise TestFailure("memplugd: no %s in %d s (exit %s); its log:\n%s" %
                                      (what, timeout, daemon.poll(), log()[-3000:]))
                time.sleep(0.2)

        step(dom, "memplugd connects through libvirt and to the report channel")
        wait_log(r"^vm dom: libvirt connected: domain '%s' at .*, device %s, block 2 MiB, "
                 r"region 2048 MiB; picked up requested 0 MiB, plugged 0 MiB$" %
                 (re.escape(dom.name), ALIAS), "libvirt connection", 60)
        wait_log(r"^vm dom: report channel .* connected$", "report channel", 60)
        dom.check_requested(0)

        step(dom, "the agent's filler takes MemAvailable below memplugd's buffer (256 MiB)")
        meminfo = dom.sh("cat /proc/meminfo")["out"]
        avail = int(re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.M).group(1)) // 1024
        dom.agent("fill %d 17" % max(64, avail - 100))
        m = wait_log(r"^vm dom: grow (\d+) MiB -> (\d+) MiB: available (\d+) MiB < buffer "
                     r"256 MiB", "growth decision", 90)
        to = int(m.group(2)) * MiB
        step(dom, "memplugd: %s" % m.group(0))
        if int(m.group(1)) != 0 or not 0 < to <= GiB or to % (2 * MiB):
            raise TestFailure("memplugd's growth: %s" % m.group(0))
        # through libvirt: the live XML's <requested>, then the guest plugs it
        # (<current>; memplugd may grow it further meanwhile, up to max)
        deadline = time.time() + 90
        while True:
            x = dom.vmem_xml()
            if x.get("requested", 0) >= to and x.get("current") == x["requested"]:
                break
            if time.time() > deadline:
                raise TestFailure("the live XML after memplugd's growth to %s: requested %s, "
                                  "current %s" % (human(to), human(x.get("requested", 0)),
                                                  human(x.get("current", 0))))
            time.sleep(0.2)
        step(dom, "virsh dumpxml: requested %s, current %s" % (human(x["requested"]),
                                                                human(x["current"])))

        p = subprocess.run([MEMPLUGD, "--status", "--json", "-s", rundir], capture_output=True,
                           text=True, timeout=30)
        st = json.loads(p.stdout)["vms"][0] if p.returncode == 0 else {}
        be = st.get("backend", {})
        if be.get("kind") != "libvirt" or be.get("state") != "connected" or \
                be.get("domain") != dom.name or st.get("decisions", 0) < 1 or \
                (st.get("device") or {}).get("requested-size", 0) < to:
            raise TestFailure("memplugd --status --json: %d %s" % (p.returncode, p.stdout[:2000]))
        st = dom.agent("fill-stop", timeout=300)
        if st["killed_by_signal"] or st["corrupted_bytes"]:
            raise TestFailure("the filler: %r" % st)
        stop_daemon()
        if daemon.returncode != 0 or re.search(r"failed|lost libvirt|not answering", log()):
            raise TestFailure("memplugd: exit %s; its log:\n%s" % (daemon.returncode, log()))
        t.log("# memplugd's log:")
        for line in log().splitlines():
            t.log("#   " + line)


SCENARIOS = [("libvirt_sbm", scenario_sbm), ("libvirt_bbm", scenario_bbm),
             ("memplugd_libvirt", scenario_memplugd)]
# memplug's guests only (memplug-report reports memplug's state)
MEMPLUG_ONLY = {"memplugd_libvirt"}
# once per run, not per kernel and driver: no guest boots
ONCE = [("memplugctl_shutoff_domain", scenario_shutoff)]


class Run:
    """What a scenario gets: t.domain(...) defines the one domain it runs."""

    def __init__(self, lv, release, driver, log, tag):
        self.lv, self.release, self.driver, self.log = lv, release, driver, log
        self.tag = tag
        self.vms = []
        self.cleanup = []

    def domain(self, block, region, **kw):
        name = "memplug-%s-%d" % (self.tag, len(self.vms))
        d = Domain(self.lv, name, self.release, self.driver, block, region, log=self.log, **kw)
        self.vms.append(d)
        return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--driver", default=os.environ.get("DRIVER", "both"),
                    choices=["memplug", "virtio_mem", "both"])
    ap.add_argument("--kernel", default=os.environ.get("KERNELS", "all"))
    ap.add_argument("--filter", default=os.environ.get("FILTER", ""))
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()

    wanted = args.kernel.split()
    rels = [r for r in kernels() if "all" in wanted or kernel_series(r) in wanted]
    drivers = ["virtio_mem", "memplug"] if args.driver == "both" else [args.driver]
    plan = []
    for sname, fn in ONCE:
        name = "libvirt/%s" % sname
        if rels and (not args.filter or re.search(args.filter, name)):
            plan.append((rels[0], drivers[-1], sname, fn, name))
    for rel in rels:
        for drv in drivers:
            for sname, fn in SCENARIOS:
                if sname in MEMPLUG_ONLY and drv != "memplug":
                    continue
                name = "libvirt/%s/%s/%s" % (kernel_series(rel), drv, sname)
                if not args.filter or re.search(args.filter, name):
                    plan.append((rel, drv, sname, fn, name))
    if args.list:
        for p in plan:
            print(p[4])
        return 0

    tap = ktap.KTAP(planned=len(plan))
    # a terminated run still stops its libvirtd and domains (finally below)
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))
    lv = Libvirtd()
    t_all = time.time()
    try:
        try:
            lv.start()
            tap.print("# libvirtd started in %.1fs: %s" % (time.time() - t_all, lv.uri))
            skip = None
        except Skip as e:
            skip = str(e)
        except TestFailure as e:
            skip = None
            for rel, drv, sname, fn, name in plan:
                tap.fail(name, "libvirtd: %s" % e)
            plan = []
        for i, (rel, drv, sname, fn, name) in enumerate(plan):
            if skip:
                tap.skip(name, skip)
                continue
            run_one(tap, lv, rel, drv, sname, fn, name, i)
    finally:
        lv.stop()
    tap.print("# libvirt suite: %.0fs" % (time.time() - t_all))
    return tap.summary()


def run_one(tap, lv, rel, drv, sname, fn, name, i):
    def log(msg):
        tap.print(msg)
    tag = "%s-%s-%d" % (kernel_series(rel).replace(".", ""), drv.replace("_", ""), i)
    t = Run(lv, rel, drv, log, tag)
    t0 = time.time()
    try:
        ko = os.path.join(BUILD, rel, "memplug.ko")
        if drv == "memplug" and not os.path.exists(ko):
            raise TestFailure("memplug.ko not built for %s (%s)" % (rel, ko))
        log("# %s: %s" % (name, " ".join((fn.__doc__ or "").split("\n")[0].split())))
        fn(t)
        tap.ok(name, comment="%.1fs" % (time.time() - t0))
    except Skip as e:
        tap.skip(name, str(e))
    except Exception as e:
        log("# FAIL: %s" % e)
        if not isinstance(e, TestFailure):
            for line in traceback.format_exc().splitlines():
                log("#   " + line)
        for v in t.vms:
            lines = v.saved_log if v.saved_log is not None else []
            if lines:
                log("# guest kernel log (%s):" % v.release)
                for line in lines:
                    log("#   " + line)
        tap.fail(name, comment="%.1fs" % (time.time() - t0))
    finally:
        for c in t.cleanup:
            try:
                c()
            except Exception:
                pass
        for v in t.vms:
            v.stop()


if __name__ == "__main__":
    sys.exit(main())
