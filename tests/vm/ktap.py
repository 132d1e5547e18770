# SPDX-License-Identifier: GPL-2.0
"""KTAP output for the Python test suites (tests/vm/run.py,
tests/install/run.py), in the spirit of the kernel's kselftest KTAP
helpers; its shell twin is scripts/ktap.sh, and tests/ktap/run.sh tests
both.

    tap = KTAP(planned=3)          KTAP version 1, 1..3
    tap.ok("name", diag="...")     ok 1 name, then "# ..." lines
    tap.fail("name", "why")        not ok 2 name
    tap.skip("name", "why")        ok 3 name # SKIP why
    tap.todo("name", "why")        not ok 4 name # TODO why (counted as skipped)
    sys.exit(tap.summary())        N passed, N failed, N skipped

A runner that prints results out of order of their finishing (run.py's
parallel guests) formats each line with result_line() and counts it with
KTAP.record() when it is printed.
"""

import sys

PASS, FAIL, SKIP, TODO = "pass", "fail", "skip", "todo"


def result_line(verdict, n, name, comment=None):
    """One result line. For SKIP and TODO, comment is the reason after the
    directive; for PASS and FAIL a plain comment (a duration, say)."""
    line = ("ok %d %s" if verdict in (PASS, SKIP) else "not ok %d %s") % (n, name)
    if verdict == SKIP:
        return line + " # SKIP " + (comment or "")
    if verdict == TODO:
        return line + " # TODO " + (comment or "")
    return line + (" # " + comment if comment else "")


def diag_lines(text, limit=None):
    """Each line of text as a KTAP comment "# line", at most limit of them."""
    lines = str(text).splitlines() if text else []
    return ["# " + ln for ln in lines[:limit]]


class KTAP:
    """A KTAP stream on out (stdout): numbering and the pass, fail and skip
    counts for the closing line."""

    def __init__(self, planned=None, out=None):
        self.out = out or sys.stdout
        self.n = self.passed = self.failed = self.skipped = 0
        self.planned = None
        self.print("KTAP version 1")
        if planned is not None:
            self.plan(planned)

    def print(self, line):
        self.out.write(line + "\n")
        self.out.flush()

    def plan(self, n):
        self.planned = n
        self.print("1..%d" % n)

    def record(self, verdict):
        """Count one result printed by the caller; returns its number."""
        self.n += 1
        if verdict == PASS:
            self.passed += 1
        elif verdict == FAIL:
            self.failed += 1
        else:
            self.skipped += 1
        return self.n

    def result(self, verdict, name, comment=None, diag=None, limit=None):
        self.print(result_line(verdict, self.record(verdict), name, comment))
        for line in diag_lines(diag, limit):
            self.print(line)

    def ok(self, name, diag=None, comment=None):
        self.result(PASS, name, comment, diag)

    def fail(self, name, diag=None, comment=None, limit=None):
        self.result(FAIL, name, comment, diag, limit)

    def skip(self, name, why):
        self.result(SKIP, name, why)

    def todo(self, name, why, diag=None):
        self.result(TODO, name, why, diag)

    def summary(self):
        """The closing line; returns the exit status (1 on a failure, or
        when the results do not match the plan)."""
        bad = self.planned is not None and self.planned != self.n
        if bad:
            self.print("# planned %d results, printed %d" % (self.planned, self.n))
        self.print("%d passed, %d failed, %d skipped" % (self.passed, self.failed, self.skipped))
        return 1 if self.failed or bad else 0
