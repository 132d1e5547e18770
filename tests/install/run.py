# SPDX-License-Identifier: GPL-2.0
"""The README's DKMS install path, end to end, in a booted Debian 12 VM.

Called by tests/install/run.sh (which builds the disk image with
mkimage.sh and the packages with scripts/deb.sh):

  run.py --image BASE.raw --release REL --deb memplug-dkms_VER_all.deb \
         --report-deb memplug-report_VER_ARCH.deb
  run.py --prepare BASE.raw --rootfs DIR --release REL   (mkimage.sh, once)

The guest boots from its own disk (GRUB, Debian's kernel and initramfs).
The host drives it through the test bed's agent (tests/vm/agent), run by
systemd on ttyS1, and resizes its virtio-mem device with memplugctl over
QMP, as a user would. The packages and memplugctl-static reach the guest on
a second, read-only disk. The guest has the report channel's virtio-serial
port (docs/autosize.md) from its first boot: the memplug-report package,
installed after the driver's, must start its service for it at once, and
systemd again after the reboot; the host reads the reports from the port's
socket. Prints KTAP and "N passed, N failed, N skipped".
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "vm"))

from ktap import KTAP  # noqa: E402
from testbed import GiB, TOP, VM, Device, TestFailure, human  # noqa: E402

# TCG: a Debian boot takes a minute or two, a DKMS build several
BOOT_TIMEOUT = int(os.environ.get("INSTALL_BOOT_TIMEOUT", "900"))
CMD_TIMEOUT = int(os.environ.get("INSTALL_CMD_TIMEOUT", "1800"))


class DiskVM(VM):
    """A guest that boots from a disk image (optionally with a given kernel,
    initramfs and command line: direct boot, used once to install GRUB)."""

    def __init__(self, release, disk, devices, disk_format="qcow2", extra_disks=(),
                 kernel=None, initrd=None, append=None, log=print, report=None):
        # report: the report channel's port (VM(report=MS)); MS only sets
        # the interval of the test bed's initramfs, not used here: the
        # packaged unit runs memplug-report with its default, 1 s
        super().__init__(release, None, devices, boot_mem="1G", log=log,
                         allow_reboot=True, report=report)
        self.disk = disk
        self.disk_format = disk_format
        self.extra_disks = list(extra_disks)
        self.direct = (kernel, initrd, append) if kernel else None

    def boot_args(self):
        args = ["-drive", "file=%s,if=virtio,format=%s" % (self.disk, self.disk_format)]
        for extra in self.extra_disks:
            args += ["-drive", "file=%s,if=virtio,format=raw,readonly=on" % extra]
        if self.direct:
            kernel, initrd, append = self.direct
            args += ["-kernel", kernel, "-initrd", initrd, "-append", append]
        return args

    def reboot_guest(self, timeout=BOOT_TIMEOUT):
        """systemctl reboot, as a user would; wait for the agent to come back."""
        self.reboot(timeout, command="systemctl reboot")

    def poweroff(self, timeout=300):
        try:
            self.sock.sendall(b"sh systemctl poweroff\n")
        except OSError:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def console_tail(self, n=30):
        try:
            with open(self.console, errors="replace") as f:
                return f.read().splitlines()[-n:]
        except OSError:
            return []


def prepare(args):
    """First boot of a fresh image: install GRUB from inside the guest."""
    root = args.rootfs
    vm = DiskVM(args.release, args.prepare, [], disk_format="raw",
                kernel=os.path.join(root, "boot", "vmlinuz-" + args.release),
                initrd=os.path.join(root, "boot", "initrd.img-" + args.release),
                append="root=/dev/vda1 rw console=ttyS0,115200",
                log=lambda s: print(s, file=sys.stderr))
    try:
        vm.start(timeout=BOOT_TIMEOUT)
        # MODULES=dep, as Debian's cloud images have it: the initramfs gets
        # the modules this (virtual) machine needs, not most of them, which
        # makes each update-initramfs minutes faster under TCG. The hook
        # adds memplug either way.
        r = vm.sh("grub-install /dev/vda 2>&1 && update-grub 2>&1 && "
                  "echo MODULES=dep >/etc/initramfs-tools/conf.d/memplug-test.conf && "
                  "update-initramfs -u 2>&1 && sync", timeout=CMD_TIMEOUT)
        print(r["out"], file=sys.stderr)
        vm.poweroff()
    except TestFailure as e:
        print("prepare: %s" % e, file=sys.stderr)
        print("\n".join(vm.console_tail()), file=sys.stderr)
        return 1
    finally:
        vm.stop()
    return 0


def sysfs_attrs(vm):
    """memplug's sysfs attributes of the (one) device bound to it."""
    r = vm.sh("for f in /sys/bus/virtio/devices/virtio*/memplug/*; do "
              "printf '%s=%s\\n' \"${f##*/}\" \"$(cat $f)\"; done", check=False)
    attrs = {}
    for line in r["out"].splitlines():
        k, _, v = line.partition("=")
        attrs[k] = v
    return attrs


def wait_for(what, fn, timeout=120):
    deadline = time.time() + timeout
    while True:
        got = fn()
        if got is True:
            return
        if time.time() > deadline:
            raise TestFailure("%s: %s" % (what, got))
        time.sleep(1)


def run(args):
    rel = args.release
    deb = os.path.abspath(args.deb)
    ver = re.sub(r"^memplug-dkms_(.*)_all\.deb$", r"\1", os.path.basename(deb))
    rdeb = os.path.abspath(args.report_deb)
    ctl_static = os.path.join(TOP, "tools", "memplugctl", "memplugctl-static")
    work = tempfile.mkdtemp(prefix="memplug-install-")
    t0 = time.time()
    steps = [
        "guest boots from its disk (GRUB, Debian kernel %s)" % rel,
        "before the install the kernel's virtio_mem drives the device and plugs 1 GiB",
        "apt install ./%s (DKMS builds memplug in the guest)" % os.path.basename(deb),
        "apt install ./%s: memplug-report enabled and active for the port; "
        "the host reads 3 valid reports (driver=virtio_mem)" % os.path.basename(rdeb),
        "dkms status: memplug/%s installed for %s" % (ver, rel),
        "modprobe.d file and initramfs hook installed; the initramfs holds memplug.ko and memplug.conf",
        "the guest reboots with 1 GiB requested",
        "memplug claimed the device at boot, from the initramfs; virtio_mem not loaded",
        "memplug plugged the requested 1 GiB at boot (sysfs and host agree)",
        "after the reboot systemd started memplug-report for the port; "
        "it reports driver=memplug, plugged and requested 1 GiB",
        "memplugctl resize 3G --wait from the host; the guest has 2 GiB more, in ZONE_MOVABLE",
        "memplugctl guest in the guest shows the state",
        "memplugctl resize 0 --wait; sysfs plugged_size 0",
        "without memplug.ko for the kernel (as DKMS leaves one it does not support), "
        "udev binds the kernel's virtio_mem, which plugs 1 GiB",
        "kernel log without problems",
    ]
    tap = KTAP(planned=len(steps))
    vm = None
    try:
        disk = os.path.join(work, "disk.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b",
                        os.path.abspath(args.image), disk], check=True)
        # the files a user would copy into the guest, on a read-only disk
        job = os.path.join(work, "job")
        os.mkdir(job)
        shutil.copy(deb, job)
        shutil.copy(rdeb, job)
        shutil.copy(ctl_static, os.path.join(job, "memplugctl"))
        jobimg = os.path.join(work, "job.img")
        subprocess.run(["truncate", "-s", "64M", jobimg], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "memplug-job", "-d", job, jobimg],
                       check=True)
        vm = DiskVM(rel, disk, [Device("vmem0", "8G", "1G")], extra_disks=[jobimg],
                    log=lambda s: print(s, flush=True), report=1000)

        def step_boot():
            vm.start(timeout=BOOT_TIMEOUT)
            k = vm.agent("ping")["kernel"]
            if k != rel:
                raise TestFailure("booted %s, not %s" % (k, rel))

        def driver_link():
            r = vm.sh("readlink /sys/bus/virtio/devices/virtio*/driver | "
                      "xargs -rn1 basename | grep -E 'memplug|virtio_mem'", check=False)
            return r["out"].strip()

        def step_before():
            vm.resize("vmem0", "1G", timeout=300)
            d = driver_link()
            if d != "virtio_mem":
                raise TestFailure("device driven by %r, expected virtio_mem" % d)

        def step_install():
            vm.sh("mkdir -p /mnt/job && mount -o ro /dev/vdb /mnt/job")
            vm.sh("cp /mnt/job/%s /root/" % os.path.basename(deb))
            # README: memplugctl-static as /usr/local/bin/memplugctl
            vm.sh("install -m 0755 /mnt/job/memplugctl /usr/local/bin/memplugctl")
            # in the background, polled: the host sees how far it got
            vm.sh("cd /root && (DEBIAN_FRONTEND=noninteractive apt install -y ./%s "
                  ">/root/apt.log 2>&1; echo $? >/root/apt.rc) </dev/null >/dev/null 2>&1 &" %
                  os.path.basename(deb))
            deadline, last = time.time() + CMD_TIMEOUT, ""
            while True:
                r = vm.sh("cat /root/apt.rc 2>/dev/null; tail -n 1 /root/apt.log", check=False)
                lines = r["out"].splitlines()
                if lines and lines[0].isdigit():
                    break
                # a new step (DKMS's progress dots do not count)
                if lines and lines[-1].rstrip(".") != last:
                    last = lines[-1].rstrip(".")
                    print("# %4.0fs: %s" % (CMD_TIMEOUT - deadline + time.time(), last[:150]),
                          flush=True)
                if time.time() > deadline:
                    raise TestFailure("apt install still running after %ds: %s" %
                                      (CMD_TIMEOUT, vm.sh("tail -n 20 /root/apt.log")["out"]))
                time.sleep(5)
            if lines[0] != "0":
                raise TestFailure("apt install failed (%s):\n%s" %
                                  (lines[0], vm.sh("tail -n 40 /root/apt.log")["out"]))

        def report_unit(want="active", timeout=120):
            """memplug-report.service reaches `want` (systemctl is-active)."""
            def state():
                st = vm.sh("systemctl is-active memplug-report", check=False)["out"].strip()
                if st == want:
                    return True
                return "%s; %s" % (st, vm.sh("systemctl status --no-pager -n 20 memplug-report "
                                             "2>&1", check=False)["out"])
            wait_for("memplug-report.service %s" % want, state, timeout)

        def read_reports(n=3):
            """n reports from the port, each valid (Reports.next: the strict
            parser and the agent's promises), seq increasing."""
            rep = vm.reports()
            try:
                got = [rep.next(timeout=30) for _ in range(n)]
            finally:
                rep.close()
            seqs = [r["seq"] for r in got]
            if seqs != sorted(set(seqs)):
                raise TestFailure("seq not increasing: %r" % seqs)
            return got

        def step_report():
            name = os.path.basename(rdeb)
            vm.sh("cp /mnt/job/%s /root/" % name)
            r = vm.sh("cd /root && DEBIAN_FRONTEND=noninteractive apt install -y ./%s 2>&1" % name,
                      timeout=600, check=False)
            if r["rc"] != 0:
                raise TestFailure("apt install %s failed (%d):\n%s" % (name, r["rc"], r["out"]))
            # the port is there since boot: the postinst started the service
            report_unit("active")
            en = vm.sh("systemctl is-enabled memplug-report", check=False)["out"].strip()
            if en != "enabled":
                raise TestFailure("systemctl is-enabled memplug-report: %r" % en)
            got = read_reports(3)
            # memplug is built, not loaded: the kernel's driver until the reboot
            bad = [r for r in got if r.get("driver") != "virtio_mem" or not r.get("total")]
            if bad:
                raise TestFailure("reports without driver=virtio_mem and total: %r" % bad)
            return "%s\n%r" % (vm.sh("dpkg -s memplug-report | grep -E '^(Status|Version|Depends):'",
                                      check=False)["out"].strip(), got[-1])

        def step_dkms():
            out = vm.sh("dkms status memplug")["out"].strip()
            if not re.search(r"^memplug/%s, %s, x86_64: installed" % (re.escape(ver), re.escape(rel)),
                             out, re.M):
                raise TestFailure("dkms status: %r" % out)
            mi = vm.sh("modinfo -k %s -F filename memplug" % rel)["out"].strip()
            if "/updates/dkms/memplug.ko" not in mi:
                raise TestFailure("modinfo filename %r" % mi)
            return out

        def step_initramfs():
            vm.sh("test -f /lib/modprobe.d/memplug.conf")
            vm.sh("test -x /usr/share/initramfs-tools/hooks/memplug")
            lst = vm.sh("lsinitramfs /boot/initrd.img-%s" % rel, timeout=600)["out"]
            missing = [f for f in ("updates/dkms/memplug.ko", "modprobe.d/memplug.conf")
                       if f not in lst]
            if missing:
                raise TestFailure("not in the initramfs: %s" % ", ".join(missing))

        def step_reboot():
            vm.reboot_guest()

        def step_claimed():
            d = driver_link()
            if d != "memplug":
                raise TestFailure("device driven by %r, expected memplug" % d)
            mods = vm.sh("cut -d' ' -f1 /proc/modules")["out"].split()
            if "virtio_mem" in mods:
                raise TestFailure("virtio_mem is loaded")
            # initramfs-tools runs no systemd: its first message marks the
            # switch to the real root; memplug must have probed before it
            log = vm.sh("dmesg")["out"].splitlines()
            probe = [i for i, l in enumerate(log) if re.search(r"memplug.*(big|sub) block mode", l)]
            root = [i for i, l in enumerate(log) if "systemd[1]" in l]
            if not probe:
                raise TestFailure("no memplug probe message in dmesg")
            if not root or probe[0] > root[0]:
                raise TestFailure("memplug probed after the switch to the root file system:\n" +
                                  "\n".join([log[probe[0]]] + ([log[root[0]]] if root else [])))
            return "%s\n%s" % (log[probe[0]].strip(), log[root[0]].strip())

        def step_plugged_at_boot():
            def ok():
                a = sysfs_attrs(vm)
                host = vm.plugged("vmem0")
                if a.get("plugged_size") == str(GiB) and host == GiB and \
                        a.get("requested_size") == str(GiB):
                    return True
                return "sysfs plugged %s requested %s, host %s" % (
                    a.get("plugged_size"), a.get("requested_size"), human(host))
            wait_for("after reboot", ok, 300)
            vm.baseline()

        def step_report_after_reboot():
            # udev's rule and the enable link start it for the port at boot
            report_unit("active")

            def memplug_report(r):
                return r.get("driver") == "memplug" and r.get("plugged") == GiB and \
                    r.get("requested") == GiB
            got = read_reports(3)
            if not any(memplug_report(r) for r in got):
                raise TestFailure("no report with driver=memplug, plugged and requested 1 GiB: %r"
                                  % got)
            return repr(got[-1])

        def step_resize():
            vm.resize("vmem0", "3G", timeout=600)
            vm.wait_memory(2 * GiB, "Movable", timeout=300)
            a = sysfs_attrs(vm)
            if a.get("plugged_size") != str(3 * GiB):
                raise TestFailure("sysfs plugged_size %r" % a.get("plugged_size"))

        def step_guest_tool():
            out = vm.sh("memplugctl guest 2>&1")["out"]
            js = json.loads(vm.sh("memplugctl guest --json")["out"].strip().splitlines()[0])
            want = {"mode": "bbm", "plugged_size": 3 * GiB, "requested_size": 3 * GiB,
                    "unplug_guard": "ok", "growth_guard": "ok"}
            bad = ["%s=%r" % (k, js.get(k)) for k, v in want.items() if js.get(k) != v]
            if bad or not re.search(r"plugged size: +3 GiB \(3221225472\)", out):
                raise TestFailure("memplugctl guest: %s\n%s" % (", ".join(bad), out))
            return out

        def step_resize0():
            vm.resize("vmem0", "0", timeout=600)
            wait_for("sysfs after resize 0",
                     lambda: sysfs_attrs(vm).get("plugged_size") == "0" or
                     "plugged_size %r" % sysfs_attrs(vm).get("plugged_size"), 120)

        def step_fallback():
            # what a kernel outside dkms.conf's BUILD_EXCLUSIVE_KERNEL gets:
            # no memplug.ko in its tree; memplug.conf must not leave the
            # device without a driver
            vm.sh("rmmod memplug")
            vm.sh("mkdir -p /root/aside && mv /lib/modules/%s/updates/dkms/memplug.ko* /root/aside/ "
                  "&& depmod %s" % (rel, rel))
            vm.sh("udevadm trigger --action=add --subsystem-match=virtio && udevadm settle",
                  timeout=120)
            d = driver_link()
            if d != "virtio_mem":
                raise TestFailure("device driven by %r, expected virtio_mem" % d)
            vm.resize("vmem0", "1G", timeout=300)
            return vm.sh("dmesg | grep -E 'virtio_mem' | tail -n 3", check=False)["out"]

        def step_log():
            try:
                vm.check_kernel_log()
            except TestFailure as e:
                # the whole report (call trace) and what the guest did then
                ctx = vm.sh("dmesg | grep -B 5 -A 40 -E 'WARNING:|BUG|Oops|soft lockup|"
                            "Call Trace|blocked for more than|page allocation failure' | "
                            "head -n 150", check=False)["out"]
                raise TestFailure("%s\n%s" % (e, ctx))

        fns = [step_boot, step_before, step_install, step_report, step_dkms, step_initramfs,
               step_reboot, step_claimed, step_plugged_at_boot, step_report_after_reboot,
               step_resize, step_guest_tool, step_resize0, step_fallback, step_log]
        broken = None
        for name, fn in zip(steps, fns):
            if broken:
                tap.skip(name, "an earlier step failed: " + broken)
                continue
            t = time.time()
            try:
                diag = fn()
                tap.ok(name, ("%s\n" % diag if diag else "") + "(%.0fs)" % (time.time() - t))
            except (TestFailure, OSError, ValueError, subprocess.CalledProcessError) as e:
                why = str(e)
                if vm and vm.proc and vm.proc.poll() is not None:
                    why += "\nQEMU exited; console:\n" + "\n".join(vm.console_tail())
                tap.fail(name, why, limit=160)
                broken = name
        if vm and vm.sock:
            vm.poweroff()
    finally:
        if vm:
            vm.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("# total %.0fs" % (time.time() - t0))
    return tap.summary()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--release", required=True)
    ap.add_argument("--image")
    ap.add_argument("--deb")
    ap.add_argument("--report-deb")
    ap.add_argument("--prepare")
    ap.add_argument("--rootfs")
    args = ap.parse_args()
    if args.prepare:
        return prepare(args)
    if not (args.image and args.deb and args.report_deb):
        ap.error("--image, --deb and --report-deb are needed")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
