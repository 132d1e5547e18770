#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""memplugd's report parser against the reference parser of the protocol
(tests/report/protocol.py, the report channel's own suite): every line of
its good and bad lists must get the same verdict from both, but for the
differences docs/memplugd.md names (the reference is stricter than a
host: leading zeros, words the agent does not write).

Usage: protocol_check.py REPORT_CHECK   (prints the differences; exit 1 if any)
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "report"))
import protocol  # noqa: E402

# What memplugd takes although the reference refuses it, on purpose.
LENIENT = {b"memplug-report/1 seq=01\n", b"memplug-report/1 seq=1 driver=xen\n",
           b"memplug-report/1 seq=1 growth=maybe\n"}


def main():
    lines = [(line, True) for line in protocol.GOOD]
    lines += [(line, False) for line, _ in protocol.BAD if line.endswith(b"\n")]
    lines.append((b"memplug-report/1 seq=1 pad=" + b"x" * 996 + b"\n", True))
    data = b"".join(line for line, _ in lines)
    out = subprocess.run([sys.argv[1]], input=data, capture_output=True, check=True).stdout
    verdicts = out.decode().splitlines()
    bad = 0
    for (line, good), verdict in zip(lines, verdicts):
        ours = verdict == "ok"
        if ours != good and not (ours and line in LENIENT):
            print("# %r: reference %s, memplugd %s" % (line[:80], "ok" if good else "invalid",
                                                        verdict))
            bad += 1
    if len(verdicts) != len(lines):
        print("# %d verdicts for %d lines" % (len(verdicts), len(lines)))
        bad += 1
    print("# %d lines, %d differences (%d lenient on purpose)" % (len(lines), bad,
                                                                  len(LENIENT)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
