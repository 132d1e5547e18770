#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""A misbehaving (or well-behaved) QMP server for memplugctl's tests.

Usage: fake_qmp.py MODE SOCKET_PATH

Listens on a unix socket and serves every connection according to MODE,
until killed.  Misbehaving modes check that memplugctl fails cleanly; the
"good" ones emulate one virtio-mem device (vmem0, 2 MiB blocks, 8 GiB) plus
a pc-dimm, and may garble framing or interleave junk that a correct client
must tolerate.  Python 3 standard library only.

Mode "autosize" (memplugd's tests, tests/memplugd) is a plugging device
like "plug" whose numbers come from the environment: FAKE_VMEM_BLOCK
(block size, bytes), FAKE_VMEM_MAX (region), FAKE_VMEM_REQUESTED and
FAKE_VMEM_SIZE (at start), FAKE_VMEM_STEP (bytes the "guest" plugs or
unplugs per 100 ms), FAKE_VMEM_FLOOR (it unplugs nothing below this: it
stops short).  Like QEMU it refuses a requested-size off the block grid
or beyond the region.
"""
import json
import os
import select
import socket
import sys
import time

GREETING = {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7},
                                "package": "fake"}, "capabilities": []}}
MiB = 1 << 20
GiB = 1 << 30


def send(conn, obj_or_text):
    data = obj_or_text if isinstance(obj_or_text, (bytes, str)) else \
        json.dumps(obj_or_text) + "\r\n"
    if isinstance(data, str):
        data = data.encode()
    try:
        conn.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        raise EOFError


def event(name, data):
    now = time.time()
    return {"timestamp": {"seconds": int(now), "microseconds": int(now % 1 * 1e6)},
            "event": name, "data": data}


class Device:
    def __init__(self, mode="good"):
        self.requested = 0
        self.size = 0
        # "no-vmem": only the pc-dimm; "paused": the VM is stopped;
        # "no-driver": no guest driver set the virtio-mem device up;
        # "old-qemu": neither query-status nor x-query-virtio-status.
        self.vmem = mode != "no-vmem"
        self.running = mode != "paused"
        self.driver_ok = mode != "no-driver"
        self.mode = mode
        self.block = 2 * MiB
        self.max = 8 * GiB
        self.step = 512 * MiB
        self.floor = 0
        if mode == "autosize":
            env = os.environ.get
            self.block = int(env("FAKE_VMEM_BLOCK", self.block))
            self.max = int(env("FAKE_VMEM_MAX", self.max))
            self.requested = int(env("FAKE_VMEM_REQUESTED", 0))
            self.size = int(env("FAKE_VMEM_SIZE", self.requested))
            self.step = int(env("FAKE_VMEM_STEP", self.step))
            self.floor = int(env("FAKE_VMEM_FLOOR", 0))

    def virtio_status(self):
        if self.mode == "no-driver":
            # newer QEMUs: the status byte as a number (ACKNOWLEDGE|DRIVER)
            return {"name": "virtio-mem", "broken": False, "status": 3}
        names = ["VIRTIO_CONFIG_S_ACKNOWLEDGE: Valid virtio device found",
                 "VIRTIO_CONFIG_S_DRIVER: Guest OS compatible with device",
                 "VIRTIO_CONFIG_S_FEATURES_OK: Feature negotiation complete",
                 "VIRTIO_CONFIG_S_DRIVER_OK: Driver setup and ready"]
        return {"name": "virtio-mem", "broken": False, "status": {"statuses": names}}

    def memory_devices(self):
        vmem = [
            {"type": "virtio-mem", "data": {
                "memdev": "/objects/m0", "memaddr": 4 * GiB, "block-size": self.block,
                "size": self.size, "node": 0, "max-size": self.max,
                "requested-size": self.requested, "id": "vmem0"}},
        ]
        # "vanish": the device is gone once something was requested
        if self.mode == "vanish" and self.requested:
            vmem = []
        return (vmem if self.vmem else []) + [
            {"type": "dimm", "data": {
                "memdev": "/objects/m1", "hotplugged": False, "addr": 12 * GiB,
                "hotpluggable": True, "size": 256 * MiB, "slot": 0, "node": 0,
                "id": "dimm0"}},
        ]


class Client:
    """Line reader over a socket with an idle timeout."""

    def __init__(self, conn):
        self.conn = conn
        self.buf = b""

    def read_command(self, timeout=None):
        """Next command object, None on timeout; EOFError on close."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buf:
            wait = None if deadline is None else max(0, deadline - time.monotonic())
            ready, _, _ = select.select([self.conn], [], [], wait)
            if not ready:
                return None
            chunk = self.conn.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def reply_for(dev, cmd):
    name = cmd.get("execute")
    args = cmd.get("arguments", {})
    if name == "qmp_capabilities":
        return {"return": {}}
    if name == "query-memory-devices":
        return {"return": dev.memory_devices()}
    if name in ("query-status", "x-query-virtio-status") and dev.mode == "old-qemu":
        return {"error": {"class": "CommandNotFound", "desc": "no " + name}}
    if name == "query-status":
        return {"return": {"status": "running" if dev.running else "paused",
                           "singlestep": False, "running": dev.running}}
    if name == "x-query-virtio-status" and \
            args.get("path") == "/machine/peripheral/vmem0/virtio-backend":
        return {"return": dev.virtio_status()}
    if name == "qom-set" and args.get("property") == "requested-size":
        value = args["value"]
        if dev.mode == "autosize" and (
                not isinstance(value, int) or value < 0 or value % dev.block or
                value > dev.max or args.get("path") != "/machine/peripheral/vmem0"):
            return {"error": {"class": "GenericError",
                              "desc": "invalid requested-size %r" % (value,)}}
        dev.requested = value
        return {"return": {}}
    if name == "qom-get" and args.get("path", "").endswith("/dimm0"):
        return {"return": "pc-dimm"}
    if name == "qom-get":
        return {"error": {"class": "DeviceNotFound", "desc": "Device not found"}}
    return {"error": {"class": "CommandNotFound", "desc": "no " + str(name)}}


def greet(conn, mode):
    if mode == "pretty":
        # pretty=on output, dribbled a few bytes at a time: split messages.
        text = json.dumps(GREETING, indent=4) + "\r\n"
        for i in range(0, len(text), 7):
            send(conn, text[i:i + 7])
            time.sleep(0.002)
    else:
        send(conn, GREETING)


def answer(conn, mode, dev, cmd):
    reply = reply_for(dev, cmd)
    if "id" in cmd:
        reply["id"] = cmd["id"]
    if mode == "ooo" and cmd.get("execute") != "qmp_capabilities":
        # Junk a careful client must skip: events, unknown ids, a reply
        # without id, a late duplicate of an old id.
        send(conn, event("RTC_CHANGE", {"offset": 1}))
        send(conn, {"return": {}, "id": "not-ours"})
        send(conn, {"return": 42, "id": 999999})
        send(conn, {"return": {}})
        send(conn, event("MEMORY_DEVICE_SIZE_CHANGE",
                         {"id": "other", "size": 4 * MiB, "qom-path": "/x"}))
        # Two messages in one write, the second one split in two writes.
        text = json.dumps(event("STOP", {})) + "\r\n" + json.dumps(reply) + "\r\n"
        cut = len(text) - 10
        send(conn, text[:cut])
        time.sleep(0.01)
        send(conn, text[cut:])
    elif mode == "lying-event" and cmd.get("execute") == "qom-set":
        # An event claiming the new size before anything was plugged (like a
        # stale one queued before the qom-set): the client must not believe it.
        send(conn, event("MEMORY_DEVICE_SIZE_CHANGE",
                         {"id": "vmem0", "size": dev.requested, "qom-path": "/x"}))
        send(conn, reply)
        send(conn, event("MEMORY_DEVICE_SIZE_CHANGE",
                         {"id": "vmem0", "size": dev.requested, "qom-path": "/x"}))
    elif mode == "dribble":
        # One byte per write: every message is split over many reads.
        for ch in json.dumps(reply) + "\r\n":
            send(conn, ch)
            time.sleep(0.0005)
    elif mode == "pretty":
        text = json.dumps(reply, indent=2) + "\r\n"
        for i in range(0, len(text), 50):
            send(conn, text[i:i + 50])
    elif mode == "event-flood" and cmd.get("execute") == "query-memory-devices":
        # Far more events than the client queues: it must stay bounded.
        burst = "".join(json.dumps(event("RTC_CHANGE", {"offset": i})) + "\r\n"
                        for i in range(5000))
        send(conn, burst)
        send(conn, reply)
    else:
        send(conn, reply)


def serve_good(srv, mode):
    """A working fake QEMU shared by all clients, with mode-specific oddities."""
    dev = Device(mode)
    clients = {}
    while True:
        ready, _, _ = select.select([srv] + list(clients), [], [], 0.1)
        for sock in ready:
            if sock is srv:
                conn, _ = srv.accept()
                try:
                    greet(conn, mode)
                    clients[conn] = Client(conn)
                except EOFError:
                    conn.close()
                continue
            try:
                cmd = clients[sock].read_command(timeout=0)
                while cmd is not None:
                    answer(sock, mode, dev, cmd)
                    cmd = clients[sock].read_command(timeout=0)
            except (EOFError, ConnectionResetError, BrokenPipeError, ValueError):
                del clients[sock]
                sock.close()
        # Plugging modes: the "guest" plugs 512 MiB every tick (~100 ms).
        if mode in ("plug", "ooo", "autosize") and dev.size != dev.requested:
            step = dev.step
            old_size = dev.size
            if dev.size < dev.requested:
                dev.size = min(dev.requested, dev.size + step)
            else:
                dev.size = max(dev.requested, dev.floor, dev.size - step)
            if dev.size == old_size:
                continue  # stopped short: nothing changes, no event
            # Like QEMU, events do not come on every change (rate limit).
            if dev.size == dev.requested or dev.size % GiB == 0:
                ev = event("MEMORY_DEVICE_SIZE_CHANGE",
                           {"id": "vmem0", "size": dev.size,
                            "qom-path": "/machine/peripheral/vmem0/virtio-backend"})
                for conn in list(clients):
                    try:
                        send(conn, ev)
                    except EOFError:
                        del clients[conn]
                        conn.close()


def serve_bad(conn, mode):
    client = Client(conn)
    if mode == "silent":
        while client.read_command(timeout=60) is not None:
            pass
        return
    if mode == "close":
        return
    if mode == "nonjson-greeting":
        send(conn, "Welcome to the SSH server\r\n")
    elif mode == "wrong-greeting":
        send(conn, {"hello": "world"})
    elif mode == "greeting-array":
        send(conn, [{"QMP": {}}])
    elif mode == "oversized-greeting":
        try:
            for _ in range(8):
                send(conn, "{\"QMP\": \"" + "a" * MiB)
        except EOFError:
            return
    else:
        send(conn, GREETING)

    if mode == "caps-error":
        cmd = client.read_command(timeout=10)
        send(conn, {"error": {"class": "GenericError",
                              "desc": "Capabilities negotiation is already complete"},
                    "id": cmd.get("id")})
    if mode == "caps-garbage-error":
        cmd = client.read_command(timeout=10)
        send(conn, {"error": "\x1b[31mred", "id": cmd.get("id")})

    # Everything below answers qmp_capabilities properly first.
    cmd = client.read_command(timeout=10)
    if cmd is None:
        return
    send(conn, {"return": {}, "id": cmd.get("id")})
    if mode in ("event-storm", "event-storm-later"):
        # Events without end, faster than the client takes them; the
        # "later" peer first answers one command in peace (the client
        # finds its device and settles down), then replies to commands
        # between two bursts (behind what the socket holds).
        dev = Device()
        if mode == "event-storm-later":
            cmd = client.read_command(timeout=10)
            if cmd is None:
                return
            answer(conn, "good", dev, cmd)
        burst = '{"event":"X"}\n' * 20000
        # A deep socket buffer (root may exceed wmem_max): the client never
        # finds the socket empty, even when this process is not scheduled.
        for opt in (getattr(socket, "SO_SNDBUFFORCE", 32), socket.SO_SNDBUF):
            try:
                conn.setsockopt(socket.SOL_SOCKET, opt, 64 * MiB)
                break
            except OSError:
                pass
        while True:
            send(conn, burst)
            if mode == "event-storm":
                continue
            nxt = client.read_command(timeout=0)
            while nxt is not None:
                answer(conn, "good", dev, nxt)
                nxt = client.read_command(timeout=0)
    cmd = client.read_command(timeout=10)
    if cmd is None:
        return
    cid = cmd.get("id")
    if mode == "truncated":
        send(conn, '{"return": [{"type": "virtio-mem", "da')
        return
    if mode == "oversized":
        chunk = "[" * 0 + "x" * MiB
        try:
            for _ in range(8):
                send(conn, '{"return": "' + chunk if _ == 0 else chunk)
        except EOFError:
            pass
        return
    if mode == "slow-drip":
        # A reply that never ends, one byte every 50 ms.
        send(conn, '{"return": [')
        while True:
            send(conn, " ")
            time.sleep(0.05)
    if mode == "endless-lines":
        # A pretty-printed reply that never ends, a 3-byte line per write.
        send(conn, '{"return": [\n')
        while True:
            send(conn, "0,\n")
    if mode == "huge-lines":
        # A complete 900 KB reply in 3-byte lines, a write each: the client
        # must assemble it in linear time (a re-parse per line took 33 s
        # of CPU and more).
        head = '{"id": %s, "pad": [\n' % json.dumps(cid)
        tail = '0\n], "return": %s}\r\n' % json.dumps(Device().memory_devices())
        send(conn, head)
        for _ in range(300000):
            send(conn, "0,\n")
        send(conn, tail)
    elif mode == "event-bytes":
        # 64 events of 900 KB each before the reply: the queue must be
        # bounded in bytes, not only in number.
        big = json.dumps(event("BIG", {"pad": "x" * (900 * 1024)})) + "\r\n"
        for _ in range(64):
            send(conn, big)
        send(conn, {"return": Device().memory_devices(), "id": cid})
    elif mode == "nonjson-reply":
        send(conn, "this is not json\r\n")
    elif mode == "wrong-type":
        send(conn, {"return": {"virtio-mem": "yes"}, "id": cid})
    elif mode == "bad-field":
        dev = Device().memory_devices()
        dev[0]["data"]["size"] = "lots"
        send(conn, {"return": dev, "id": cid})
    elif mode == "zero-block":
        dev = Device().memory_devices()
        dev[0]["data"]["block-size"] = 0
        send(conn, {"return": dev, "id": cid})
    elif mode == "no-return":
        send(conn, {"id": cid, "result": []})
    elif mode == "stray-flood":
        try:
            for i in range(100000):
                send(conn, {"return": {}, "id": "x%d" % i})
        except EOFError:
            return
    elif mode == "escape":
        send(conn, {"error": {"class": "GenericError",
                              "desc": "evil \x1b]0;pwned\x07 \x1b[2J text"}, "id": cid})
    elif mode == "huge-int":
        send(conn, '{"return": 123456789012345678901234567890, "id": %s}\r\n' % json.dumps(cid))
    # Keep the connection open a while (the client must not wait for close)
    # and answer whatever comes next like a working QEMU: one oddity each.
    dev = Device()
    cmd = client.read_command(timeout=30)
    while cmd is not None:
        answer(conn, "good", dev, cmd)
        cmd = client.read_command(timeout=30)


GOOD_MODES = ("good", "ooo", "plug", "pretty", "event-flood", "dribble",
              "lying-event", "no-vmem", "paused", "no-driver", "old-qemu", "vanish",
              "autosize")


def main():
    mode, path = sys.argv[1], sys.argv[2]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(4)
    if mode in GOOD_MODES:
        serve_good(srv, mode)
    while True:
        conn, _ = srv.accept()
        try:
            serve_bad(conn, mode)
        except (EOFError, ConnectionResetError, BrokenPipeError, ValueError):
            pass
        finally:
            conn.close()


if __name__ == "__main__":
    main()
