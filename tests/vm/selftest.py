#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-only
"""Self-tests of the test bed's own judgement, without a guest: which
kernel report happened before any module was loaded (a boot to retry),
and what a failed scenario prints of the kernel log.  The guest's answers
are played from fixtures/ (a real console excerpt); KTAP output.

Usage: python3 tests/vm/selftest.py   (scripts/check.sh testbed)
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ktap  # noqa: E402
import testbed  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read().splitlines()


class PlayedVM(testbed.VM):
    """A VM whose agent answers from canned kernel log lines."""

    def __init__(self, log, problems):
        self.log_lines = log
        self.problems = problems

    def agent(self, command, timeout=None):
        verb, _, arg = command.partition(" ")
        if verb == "dmesg":
            return {"problem_count": len(self.problems), "problems": self.problems}
        if verb == "log":
            return {"lines": self.log_lines[-int(arg):]}
        if verb == "splat":
            # what the agent's "splat N" answers: 3 lines before the first
            # problem line, then on
            first = next((i for i, ln in enumerate(self.log_lines)
                          if any(p in ln for p in self.problems)), None)
            if first is None:
                return {"lines": []}
            return {"lines": self.log_lines[max(0, first - 3):first - 3 + int(arg)]}
        raise AssertionError("unexpected agent command %r" % command)


KASAN_BOOT = fixture("kasan-early-boot.log")
KASAN_PROBLEMS = ["BUG: KASAN: wild-memory-access", "Call Trace:"]


def case_boot_report_is_retried():
    got = PlayedVM(KASAN_BOOT, KASAN_PROBLEMS)._problem_in_start_kernel()
    want = "BUG: KASAN: wild-memory-access in do_raw_spin_lock+0x112/0x250"
    return got == want, "got %r" % got


def case_report_after_init_is_not_retried():
    # the same report, but in a worker thread of the driver: a real failure
    log = [ln.replace("start_kernel+", "mp_worker_fn+") for ln in KASAN_BOOT]
    got = PlayedVM(log, KASAN_PROBLEMS)._problem_in_start_kernel()
    return got is None, "got %r" % got


def case_report_ends_at_its_closing_line():
    # start_kernel in a later report does not make the first one a boot's
    head = [ln for ln in KASAN_BOOT if "start_kernel+" not in ln]
    log = head + ["WARNING: CPU: 0 PID: 1 at somewhere", "Call Trace:",
                  " start_kernel+0x1/0x2", "---[ end trace ]---"]
    got = PlayedVM(log, KASAN_PROBLEMS + ["WARNING:"])._problem_in_start_kernel()
    return got is None, "got %r" % got


def case_clean_log_is_not_retried():
    got = PlayedVM(KASAN_BOOT[:3], [])._problem_in_start_kernel()
    return got is None, "got %r" % got


def case_failure_log_shows_an_old_report():
    log = KASAN_BOOT + ["line %d" % i for i in range(100)]
    got = PlayedVM(log, KASAN_PROBLEMS).failure_log()
    ok = (got[0] == "-- first problem --" and "Call Trace:" in got
          and got.index("-- last lines --") < got.index("line 99") and got[-1] == "line 99"
          and len(got) == 1 + 80 + 1 + 30)
    return ok, "\n".join(got)


def case_failure_log_prints_lines_once():
    # the report runs into the tail: each line once, in the log's order
    log = KASAN_BOOT + ["line %d" % i for i in range(20)]
    got = PlayedVM(log, KASAN_PROBLEMS).failure_log()
    body = got[1:]
    return got[0] == "-- first problem --" and body == log[-len(body):], "\n".join(got)


def case_failure_log_is_the_tail_when_it_holds_the_report():
    log = ["before %d" % i for i in range(40)] + [
        "BUG: KASAN: test", "Call Trace:", " foo+0x1/0x2"] + ["after %d" % i for i in range(10)]
    got = PlayedVM(log, KASAN_PROBLEMS[:1]).failure_log()
    return got == log[-30:], "\n".join(got)


CASES = [case_boot_report_is_retried, case_report_after_init_is_not_retried,
         case_report_ends_at_its_closing_line, case_clean_log_is_not_retried,
         case_failure_log_shows_an_old_report, case_failure_log_prints_lines_once,
         case_failure_log_is_the_tail_when_it_holds_the_report]


def main():
    tap = ktap.KTAP(planned=len(CASES))
    for case in CASES:
        name = case.__name__[5:].replace("_", " ")
        try:
            ok, why = case()
        except Exception as e:  # a bug in the test bed is a failure too
            ok, why = False, "%s: %s" % (type(e).__name__, e)
        if ok:
            tap.ok(name)
        else:
            tap.fail(name, diag=why)
    return tap.summary()


if __name__ == "__main__":
    sys.exit(main())
