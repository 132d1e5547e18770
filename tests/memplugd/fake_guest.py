#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""A fake guest agent for memplugd's tests: the QEMU side of the report
channel (a virtio-serial port's chardev, server=on), played by a unix
socket server that memplugd connects to, as it connects to QEMU's.

Usage: fake_guest.py REPORT_SOCKET QMP_SOCKET CONTROL_FILE [FIFO]

The guest's memory follows the virtio-mem device of a fake QMP peer
(tests/tools/fake_qmp.py, mode autosize), which it asks for the plugged
size before every report; with QMP_SOCKET "-" (a device that no QMP peer
holds: a libvirt domain) the control file's "plugged" and "requested"
(default 0) are the device's sizes.  CONTROL_FILE (JSON, re-read whenever it
changes; the test rewrites it to change the guest's behaviour) holds:

  mode      "model" (default): honest reports from the memory model
            "silent": accept memplugd, never send a line
            "garbage": a malformed line of each kind in turn, each with a valid one
            "flood": write lines without pause: lying ones (psi 100 %,
                     nothing available), invalid ones, over-long ones
            "absurd": valid lines with the largest numbers there are
  base      boot memory, bytes (default 1 GiB)
  used      memory the guest uses, bytes (default 512 MiB)
  psi       psi_some to report, 1/100 % (default 0)
  interval  seconds between reports (default 0.1)
  driver    the driver= word (default memplug)

Or, with a fourth argument FIFO, a relay: what the real guest agent
(tools/memplug-report -o FIFO) writes into the named pipe goes to memplugd,
as QEMU passes the port's bytes on; while memplugd is not connected the
bytes are dropped, as QEMU drops them.

MemTotal is base + plugged, MemAvailable what is not used, give
MemAvailable less a 64 MiB reserve, and 0 with unplug=blocked while the
device holds more than requested (the guest stopped short).
"""
import json
import os
import select
import socket
import sys
import time

MiB = 1 << 20
GiB = 1 << 30
U64_MAX = (1 << 64) - 1

GARBAGE = [
    b"memplug-report/1 seq=1 seq=2",                  # duplicate key
    b"memplug-report/1 avail=5",                      # no seq
    b"memplug-report/2 seq=1",                        # another version
    b"memplug-report/1 seq=-1",                       # a sign
    b"memplug-report/1 seq=1 psi_some=10001",         # psi above 100 %
    b"memplug-report/1 seq=99999999999999999999999",  # too many digits
    b"memplug-report/1 seq=18446744073709551616",     # 2^64
    b"memplug-report/1 seq=1 driver=m\xc3\xa9mplug",  # not ASCII
    b"memplug-report/1 seq=1\x00 avail=0",            # NUL
    b"memplug-report/1  seq=1",                       # two blanks
    b"memplug-report/1 seq=1 total=1 avail=2",        # avail above total
    b"\x1b[2J\x1b]0;pwned\x07",                       # terminal escapes
    b"",                                              # empty
    b"x" * 5000,                                      # over-long
    b"memplug-report/1 seq=1 avail=" + b"9" * 2000,   # over-long number
]


class Qmp:
    """Just enough QMP to read vmem0's sizes from the fake peer."""

    def __init__(self, path):
        self.path = path
        self.sock = None
        self.buf = b""

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def sizes(self):
        """(plugged, requested) of vmem0, or None if the peer is gone."""
        try:
            if self.sock is None:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.settimeout(2)
                self.sock.connect(self.path)
                self.buf = b""
                self._line()
                self.sock.sendall(b'{"execute":"qmp_capabilities","id":0}\n')
                while "return" not in self._line():
                    pass
            self.sock.sendall(b'{"execute":"query-memory-devices","id":1}\n')
            while True:
                msg = self._line()
                if msg.get("id") == 1:
                    break
            for dev in msg["return"]:
                if dev["type"] == "virtio-mem":
                    return dev["data"]["size"], dev["data"]["requested-size"]
        except (OSError, EOFError, ValueError, KeyError):
            if self.sock:
                self.sock.close()
            self.sock = None
        return None


class Control:
    def __init__(self, path):
        self.path = path
        self.stamp = None
        self.c = {}

    def get(self):
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp != self.stamp:
                with open(self.path) as f:
                    self.c = json.load(f)
                self.stamp = stamp
        except (OSError, ValueError):
            pass
        return self.c


def model_line(seq, c, qmp):
    sizes = (c.get("plugged", 0), c.get("requested", 0)) if qmp is None else qmp.sizes()
    if sizes is None:
        return None
    plugged, requested = sizes
    total = c.get("base", GiB) + plugged
    avail = max(0, total - c.get("used", 512 * MiB))
    blocked = plugged > requested
    give = 0 if blocked else max(0, avail - 64 * MiB)
    return ("memplug-report/1 seq=%d ms=%d psi_some=%d psi_full=0 total=%d avail=%d "
            "pswpin=0 pswpout=0 driver=%s plugged=%d requested=%d growth=ok unplug=%s "
            "give=%d" % (seq, int(time.monotonic() * 1000), c.get("psi", 0), total, avail,
                         c.get("driver", "memplug"), plugged, requested,
                         "blocked" if blocked else "ok", give)).encode()


def flood_chunk(seq):
    lying = b"memplug-report/1 seq=%d psi_some=10000 total=%d avail=0 give=0" % (seq, 8 * GiB)
    return b"\n".join([lying] * 50 + GARBAGE[:12] + [b"y" * 3000]) + b"\n"


def serve(conn, control, qmp):
    seq = 0
    conn.setblocking(True)
    conn.settimeout(5)
    while True:
        c = control.get()
        mode = c.get("mode", "model")
        if mode == "silent":
            time.sleep(0.05)
            continue
        if mode == "flood":
            conn.sendall(flood_chunk(seq))
            seq += 1
            continue
        lines = []
        if mode == "absurd":
            lines.append(b"memplug-report/1 seq=%d psi_some=0 total=%d avail=%d give=%d "
                         b"driver=memplug" % (seq, U64_MAX, U64_MAX, U64_MAX))
        else:
            line = model_line(seq, c, qmp)
            if line:
                lines.append(line)
        if mode == "garbage":
            # one of each kind in turn, after a valid line (a daemon that took
            # it for valid would act on it): 20 lines a second
            lines.append(GARBAGE[seq % len(GARBAGE)])
        seq += 1
        if lines:
            conn.sendall(b"\n".join(lines) + b"\n")
        time.sleep(c.get("interval", 0.1))


def relay(conn, fifo):
    conn.settimeout(5)
    while True:
        select.select([fifo], [], [])
        try:
            data = os.read(fifo, 65536)
        except BlockingIOError:
            continue
        conn.sendall(data)


def drain(fifo):
    while True:
        try:
            if not os.read(fifo, 65536):
                return
        except BlockingIOError:
            return


def main():
    report, qmp_path, control_path = sys.argv[1:4]
    fifo = None
    if len(sys.argv) > 4:
        # read and write: the pipe always has a writer, so no EOF between two
        # of the agent's opens
        fifo = os.open(sys.argv[4], os.O_RDWR | os.O_NONBLOCK)
    try:
        os.unlink(report)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(report)
    srv.listen(1)
    control = Control(control_path)
    qmp = None if qmp_path == "-" else Qmp(qmp_path)
    while True:
        if fifo is not None:
            while not select.select([srv], [], [], 0.05)[0]:
                drain(fifo)
        conn, _ = srv.accept()
        try:
            if fifo is not None:
                relay(conn, fifo)
            serve(conn, control, qmp)
        except (OSError, EOFError):
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    main()
