#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""memplug-report over time, as TAP for tests/report/run.sh: the interval,
SIGTERM, and an output that is not there yet, has no reader, loses it, or
stops reading. The agent must never spin, never block, and log each
condition once.

  stream.py AGENT ROOT WORKDIR LINES

ROOT is a fake root for -r; every line the agent writes is appended to
LINES (run.sh checks them all with protocol.py).
"""

import fcntl
import os
import re
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protocol  # noqa: E402

AGENT, ROOT, WORK, LINES = sys.argv[1:5]
F_SETPIPE_SZ = 1031
TICK = os.sysconf("SC_CLK_TCK")
results = []


def result(ok, name, *diag):
    """A TAP result; the diagnostics only for a failure."""
    ok = bool(ok)
    results.append(ok)
    print("%s %d - %s" % ("ok" if ok else "not ok", len(results), name))
    for d in diag if not ok else ():
        for line in str(d).splitlines()[:20]:
            print("# " + line)
    sys.stdout.flush()


def start(*args, stdout=subprocess.DEVNULL):
    start.n += 1
    err = open(os.path.join(WORK, "err-%d" % start.n), "w+")
    p = subprocess.Popen([AGENT, "-r", ROOT] + list(args), stdout=stdout, stderr=err,
                         stdin=subprocess.DEVNULL)
    p.errfile = err
    return p


def stderr_of(p):
    p.errfile.seek(0)
    return p.errfile.read().splitlines()


def cpu_seconds(p):
    """User and system time the agent used so far."""
    with open("/proc/%d/stat" % p.pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def stop(p, sig=signal.SIGTERM, bound=2.0):
    """Signal p; its exit status and how long it took to exit."""
    t0 = time.time()
    p.send_signal(sig)
    try:
        rc = p.wait(bound)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        rc = None
    return rc, time.time() - t0


def keep(lines):
    with open(LINES, "ab") as f:
        for line in lines:
            f.write(line)


def read_lines(fd, count, timeout):
    """Up to count lines from fd within timeout (bytes, each with its \\n)."""
    buf, deadline = b"", time.time() + timeout
    while buf.count(b"\n") < count and time.time() < deadline:
        r, _, _ = select.select([fd], [], [], max(0, deadline - time.time()))
        if not r:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    lines = protocol.lines_of(buf)
    keep(lines)
    return lines


def seqs(lines):
    out = []
    for line in lines:
        try:
            out.append(protocol.parse(line)["seq"])
        except protocol.Invalid:
            out.append(None)
    return out


def matching(lines, rx):
    return [ln for ln in lines if re.search(rx, ln)]


def open_reader(path):
    """The FIFO's read end, at once (non-blocking): the agent finds a reader
    at its next try; read_lines() waits for what it writes."""
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


start.n = 0
os.makedirs(WORK, exist_ok=True)

# 1. the interval: consecutive seq from 0, ms about the interval apart
r, w = os.pipe()
p = start("-i", "100", "-o", "-", stdout=w)
os.close(w)
lines = read_lines(r, 1000, 1.5)
rc, took = stop(p)
lines += read_lines(r, 1000, 0.5)
os.close(r)
s = seqs(lines)
ms = [protocol.parse(x)["ms"] for x in lines if None not in s]
gaps = sorted(b - a for a, b in zip(ms, ms[1:]))
result(rc == 0 and took < 1 and 8 <= len(lines) <= 20 and s == list(range(len(lines))) and
       gaps and 60 <= gaps[len(gaps) // 2] <= 200,
       "-i 100 for 1.5 s: seq 0, 1, 2... every 100 ms (median %s ms); SIGTERM: exit %s in %.2f s"
       % (gaps[len(gaps) // 2] if gaps else "?", rc, took), "seq: %s" % s, stderr_of(p))

# 2. SIGTERM and SIGINT while the agent sleeps a long interval
for sig in (signal.SIGTERM, signal.SIGINT):
    r, w = os.pipe()
    p = start("-i", "60000", "-o", "-", stdout=w)
    os.close(w)
    first = read_lines(r, 1, 5)
    rc, took = stop(p, sig)
    os.close(r)
    result(len(first) == 1 and rc == 0 and took < 0.5 and not stderr_of(p),
           "%s during a 60 s sleep: exit 0 at once (%.2f s)" % (sig.name, took),
           "exit %s" % rc, stderr_of(p))

# 3. -o a port that appears later: ENOENT logged once, then lines flow
path = os.path.join(WORK, "late.fifo")
p = start("-i", "100", "-o", path)
time.sleep(1.5)
os.mkfifo(path)
fd = open_reader(path)
lines = read_lines(fd, 3, 20)
err = stderr_of(p)
result(len(lines) == 3 and p.poll() is None and
       len(matching(err, r"cannot open .*late\.fifo: No such file or directory; trying again$")) == 1,
       "-o a path that appears later (port hotplug): opened with backoff, one log line",
       "lines: %r" % lines, err)
os.close(fd)
stop(p)

# 4-7. a FIFO: no reader, a reader, the reader gone, a new reader
path = os.path.join(WORK, "port.fifo")
os.mkfifo(path)
p = start("-i", "100", "-o", path)
time.sleep(2.5)
cpu = cpu_seconds(p)
err = stderr_of(p)
result(p.poll() is None and cpu < 0.5 and len(err) == 1 and
       re.search(r"cannot open .*port\.fifo: No such device or address; trying again$", err[0]),
       "FIFO without reader (ENXIO) for 2.5 s: running, %.2f s of CPU, one log line" % cpu, err)

fd = open_reader(path)
lines = read_lines(fd, 3, 20)
s = seqs(lines)
err = stderr_of(p)
result(len(lines) == 3 and None not in s and s[0] > 0 and s == list(range(s[0], s[0] + 3)) and
       len(matching(err, r"port\.fifo: writing reports again$")) == 1,
       "a reader comes: reports flow (seq from %s: the ones before were dropped)" %
       (s[0] if s else "?"), "seq: %s" % s, err)
last = s[-1] if s and s[-1] is not None else 0

os.close(fd)
time.sleep(0.5)
err = stderr_of(p)
result(p.poll() is None and
       len(matching(err, r"writing to .*port\.fifo: Broken pipe; opening it again$")) == 1,
       "the reader goes (EPIPE): no SIGPIPE death, one log line", err)

time.sleep(1.0)
fd = open_reader(path)
lines = read_lines(fd, 2, 20)
s = seqs(lines)
result(len(lines) == 2 and None not in s and s[0] > last and s[1] == s[0] + 1 and
       p.poll() is None,
       "a new reader: reports again, seq goes on (%s after %s)" % (s[0] if s else "?", last),
       "seq: %s" % s, stderr_of(p))
os.close(fd)
rc, took = stop(p)
result(rc == 0 and took < 1, "SIGTERM: exit 0 in %.2f s" % took, "exit %s" % rc)

# 8. a reader that stops reading: the pipe fills (4 KiB), reports are
# dropped (EAGAIN) without blocking; whole lines only, seq shows the gap
path = os.path.join(WORK, "slow.fifo")
os.mkfifo(path)
fd = open_reader(path)
fcntl.fcntl(fd, F_SETPIPE_SZ, 4096)
p = start("-i", "100", "-o", path)
time.sleep(4)
cpu = cpu_seconds(p)
err_full = stderr_of(p)
lines = read_lines(fd, 1000, 0.5)
lines += read_lines(fd, 1000, 1.5)
err = stderr_of(p)
s = seqs(lines)
gap = [b - a for a, b in zip(s, s[1:]) if None not in (a, b) and b - a != 1]
result(None not in s and len(gap) >= 1 and all(g > 1 for g in gap) and cpu < 0.5 and
       p.poll() is None and len(err_full) == 1 and
       re.search(r"slow\.fifo: not writable \(is the host reading\?\); reports dropped", err_full[0]) and
       len(matching(err, r"slow\.fifo: writing reports again$")) == 1,
       "a reader that stops reading: reports dropped, not queued; one log line; whole lines "
       "after (%d, seq gaps %s)" % (len(lines), gap), "seq: %s" % s, err,
       "cpu %.2f s" % cpu)
rc, took = stop(p)
os.close(fd)
result(rc == 0 and took < 1, "SIGTERM with a full pipe: exit 0 in %.2f s" % took, "exit %s" % rc)

# 9. -o - (systemd's port) on a pipe nobody reads: poll() first, never a
# blocking write; SIGTERM still ends it
r, w = os.pipe()
fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
p = start("-i", "100", "-o", "-", stdout=w)
os.close(w)
time.sleep(4)
err = stderr_of(p)
alive = p.poll() is None
rc, took = stop(p)
result(alive and rc == 0 and took < 1 and len(err) == 1 and
       re.search(r"-: not writable \(is the host reading\?\)", err[0]),
       "-o - with a full pipe: no blocking write; SIGTERM: exit 0 in %.2f s" % took,
       "exit %s" % rc, err)
read_lines(r, 1000, 0.5)
os.close(r)

# 10. -o - whose reader goes: exit 1 (nothing to reopen), one line
r, w = os.pipe()
p = start("-i", "100", "-o", "-", stdout=w)
os.close(w)
read_lines(r, 2, 5)
os.close(r)
try:
    rc = p.wait(5)
except subprocess.TimeoutExpired:
    p.kill()
    rc = None
err = stderr_of(p)
result(rc == 1 and err == ["memplug-report: writing to standard output: Broken pipe"],
       "-o - whose reader goes: exit 1 with one line (systemd restarts it)", "exit %s" % rc, err)

print("1..%d" % len(results))
sys.exit(0 if all(results) else 1)
