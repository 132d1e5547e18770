#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""A strict reference parser of the memplug report protocol, version 1
(docs/autosize.md), for the tests: every line memplug-report writes must
pass it. It is stricter than a host needs to be: numbers must be canonical
(no leading zeros) and words one the agent knows, and agent_problems()
checks what the agent promises beyond the protocol.

  protocol.py check [FILE]   every line of FILE (default stdin) must be valid
                             (and keep the agent's promises); exit 1 if not
  protocol.py self-test      the parser against lines it must accept or refuse

Used as a module by tests/report/run.sh and the test bed (tests/vm).
"""

import re
import sys

MAGIC = b"memplug-report/1"
MAX_LINE = 1024             # bytes, the final "\n" included
NUMBERS = ("seq", "ms", "psi_some", "psi_full", "total", "avail", "pswpin", "pswpout",
           "plugged", "requested", "give")
WORDS = {"driver": ("memplug", "virtio_mem", "mixed", "none"),
         "growth": ("ok", "blocked"), "unplug": ("ok", "blocked")}
KEY = re.compile(rb"[a-z][a-z0-9_]*\Z")
NUMBER = re.compile(rb"(0|[1-9][0-9]{0,19})\Z")
WORD = re.compile(rb"[a-z_]{1,32}\Z")


class Invalid(ValueError):
    """The line is not a valid report."""


def parse(line):
    """One line (bytes, with its final b"\\n") -> {key: int or str}.
    Unknown keys are kept as bytes (a host ignores them)."""
    if isinstance(line, str):
        line = line.encode()
    if len(line) > MAX_LINE:
        raise Invalid("%d bytes, more than %d" % (len(line), MAX_LINE))
    if not line.endswith(b"\n"):
        raise Invalid("no final newline")
    body = line[:-1]
    bad = [c for c in body if not 0x20 <= c <= 0x7e]
    if bad:
        raise Invalid("byte 0x%02x is not printable ASCII" % bad[0])
    fields = body.split(b" ")
    if fields[0] != MAGIC:
        raise Invalid("does not start with %r" % MAGIC.decode())
    out = {}
    for f in fields[1:]:
        if not f:
            raise Invalid("empty field (two spaces, or a space at the end)")
        key, eq, value = f.partition(b"=")
        if not eq or not KEY.match(key) or not value:
            raise Invalid("field %r is not key=value" % f.decode())
        k = key.decode()
        if k in out:
            raise Invalid("key %s twice" % k)
        if k in NUMBERS:
            if not NUMBER.match(value) or int(value) >= 1 << 64:
                raise Invalid("%s=%s is not a canonical u64" % (k, value.decode()))
            out[k] = int(value)
        elif k in WORDS:
            if not WORD.match(value) or value.decode() not in WORDS[k]:
                raise Invalid("%s=%s is not one of %s" % (k, value.decode(), "|".join(WORDS[k])))
            out[k] = value.decode()
        else:
            out[k] = value
    if "seq" not in out:
        raise Invalid("no seq")
    for k in ("psi_some", "psi_full"):
        if out.get(k, 0) > 10000:
            raise Invalid("%s=%d is above 10000 (100.00%%)" % (k, out[k]))
    return out


def agent_problems(r, page_size=4096):
    """What memplug-report promises beyond the protocol: [problem, ...]."""
    bad = []
    memplug_keys = [k for k in ("plugged", "requested", "growth", "unplug") if k in r]
    if memplug_keys and r.get("driver") != "memplug":
        bad.append("%s without driver=memplug" % ",".join(memplug_keys))
    if "give" in r:
        if "avail" not in r or r["give"] > r["avail"]:
            bad.append("give=%d without avail, or above it" % r["give"])
        if r["give"] % page_size:
            bad.append("give=%d is not a whole number of pages" % r["give"])
        if r.get("unplug") == "blocked" and r["give"]:
            bad.append("give=%d while unplug=blocked" % r["give"])
    if "avail" in r and "total" in r and r["avail"] > r["total"]:
        bad.append("avail above total")
    for k in ("total", "avail"):
        if r.get(k, 0) % 1024:
            bad.append("%s=%d is not whole kB" % (k, r[k]))
    if [k for k in r if isinstance(r[k], bytes)]:
        bad.append("unknown keys %s" % [k for k in r if isinstance(r[k], bytes)])
    return bad


def lines_of(data):
    """Split a byte stream into lines, each with its b"\\n"; a last piece
    without one is returned too (and is invalid)."""
    parts = data.split(b"\n")
    out = [p + b"\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


GOOD = [
    b"memplug-report/1 seq=0\n",
    b"memplug-report/1 seq=18446744073709551615 ms=1 psi_some=10000 psi_full=0 total=4096 "
    b"avail=1024 pswpin=0 pswpout=0 driver=memplug plugged=0 requested=0 growth=ok "
    b"unplug=blocked give=0\n",
    b"memplug-report/1 give=0 seq=3 driver=none\n",            # any order
    b"memplug-report/1 seq=1 future_key=what-ever:1\n",          # unknown keys pass
]
BAD = [
    (b"memplug-report/1 seq=0", "no final newline"),
    (b"memplug-report/2 seq=0\n", "another version"),
    (b"memplug-report/1\n", "no seq"),
    (b"memplug-report/1 seq=1 seq=2\n", "a key twice"),
    (b"memplug-report/1  seq=1\n", "two spaces"),
    (b"memplug-report/1 seq=1 \n", "a space at the end"),
    (b"memplug-report/1 seq=1\r\n", "a carriage return"),
    (b"memplug-report/1 seq=-1\n", "a sign"),
    (b"memplug-report/1 seq=+1\n", "a plus"),
    (b"memplug-report/1 seq=01\n", "a leading zero"),
    (b"memplug-report/1 seq=18446744073709551616\n", "above u64"),
    (b"memplug-report/1 seq=123456789012345678901\n", "21 digits"),
    (b"memplug-report/1 seq=1 total=\n", "an empty value"),
    (b"memplug-report/1 seq=1 total\n", "no ="),
    (b"memplug-report/1 seq=1 Total=1\n", "an upper case key"),
    (b"memplug-report/1 seq=1 psi_some=10001\n", "psi above 100%"),
    (b"memplug-report/1 seq=1 driver=Memplug\n", "an upper case word"),
    (b"memplug-report/1 seq=1 driver=xen\n", "an unknown driver"),
    (b"memplug-report/1 seq=1 growth=maybe\n", "an unknown guard state"),
    (b"memplug-report/1 seq=1 x=\xc3\xa9\n", "not ASCII"),
    (b"memplug-report/1 seq=1 pad=" + b"x" * 1000 + b"\n", "1025 bytes"),
]


def self_test():
    fails = 0
    for line in GOOD:
        try:
            parse(line)
        except Invalid as e:
            print("# refused a valid line (%s): %r" % (e, line))
            fails += 1
    for line, what in BAD:
        try:
            parse(line)
            print("# accepted an invalid line (%s): %r" % (what, line))
            fails += 1
        except Invalid:
            pass
    long_ok = b"memplug-report/1 seq=1 pad=" + b"x" * 996 + b"\n"
    try:
        assert len(long_ok) == MAX_LINE
        parse(long_ok)
    except (Invalid, AssertionError) as e:
        print("# refused a line of exactly %d bytes: %s" % (MAX_LINE, e))
        fails += 1
    print("# %d good and %d bad lines, %d wrong" % (len(GOOD) + 1, len(BAD), fails))
    return 1 if fails else 0


def check(f):
    bad = 0
    lines = lines_of(f.read())
    for i, line in enumerate(lines, 1):
        try:
            problems = agent_problems(parse(line))
        except Invalid as e:
            problems = [str(e)]
        if problems:
            bad += 1
            print("# line %d invalid: %s: %r" % (i, "; ".join(problems), line[:200]))
    if not lines:
        print("# no lines")
        return 1
    return 1 if bad else 0


def main(argv):
    if argv[1:2] == ["self-test"]:
        return self_test()
    if argv[1:2] == ["check"] and len(argv) <= 3:
        if len(argv) == 3:
            with open(argv[2], "rb") as f:
                return check(f)
        return check(sys.stdin.buffer)
    print(__doc__.strip(), file=sys.stderr)
    return 64


if __name__ == "__main__":
    sys.exit(main(sys.argv))
