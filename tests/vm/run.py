#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Run the test-bed scenarios; KTAP output, one subtest per scenario.

  tests/vm/run.py [--driver memplug|virtio_mem|both] [--kernel 6.1|6.12|all]
                  [--filter REGEX] [--list] [--shell]

Environment: DRIVER, KERNELS (e.g. "6.1 6.12"), ACCEL (tcg|kvm), FILTER,
MEMPLUGCTL (path to the host tool). Ends with "N passed, N failed, N skipped"
and exits 1 if any scenario failed.
"""

import argparse
import os
import re
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from testbed import VM, Skip, TestFailure, kernel_series, kernels  # noqa: E402
from scenarios import SCENARIOS  # noqa: E402


class Run:
    """What a scenario gets: a way to boot a VM for this kernel and driver."""

    def __init__(self, release, driver, log):
        self.release = release
        self.driver = driver
        self.log = log
        self.vms = []

    def vm(self, devices, **kw):
        v = VM(self.release, self.driver, devices, log=self.log, **kw)
        self.vms.append(v)
        return v


def log(msg):
    print(msg, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--driver", default=os.environ.get("DRIVER", "both"),
                    choices=["memplug", "virtio_mem", "both"])
    ap.add_argument("--kernel", default=os.environ.get("KERNELS", "all"),
                    help="kernel series: 6.1, 6.12, or all (space separated list ok)")
    ap.add_argument("--filter", default=os.environ.get("FILTER", ""),
                    help="regex on '<kernel>/<driver>/<scenario>'")
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    args = ap.parse_args()

    wanted = args.kernel.split()
    rels = [r for r in kernels() if "all" in wanted or kernel_series(r) in wanted]
    if not rels:
        sys.exit("run.py: no kernel matches %r (have %s)" % (args.kernel, " ".join(kernels())))
    drivers = ["virtio_mem", "memplug"] if args.driver == "both" else [args.driver]

    plan = []
    for rel in rels:
        for drv in drivers:
            for sc in SCENARIOS:
                name = "%s/%s/%s" % (kernel_series(rel), drv, sc["name"])
                if args.filter and not re.search(args.filter, name):
                    continue
                plan.append((rel, drv, sc, name))
    if args.list:
        for p in plan:
            print(p[3])
        return 0

    print("KTAP version 1")
    print("1..%d" % len(plan), flush=True)
    passed = failed = skipped = 0
    for i, (rel, drv, sc, name) in enumerate(plan, 1):
        t = Run(rel, drv, log)
        t0 = time.time()
        try:
            if sc["memplug_only"] and drv != "memplug":
                raise Skip("memplug-only feature")
            ko = os.path.join(os.path.dirname(__file__), "..", "..", "build", rel, "memplug.ko")
            if drv == "memplug" and not os.path.exists(ko):
                raise TestFailure("memplug.ko not built for %s (%s)" % (rel, ko))
            log("# %s: %s" % (name, (sc["fn"].__doc__ or "").strip().split("\n")[0]))
            sc["fn"](t)
            print("ok %d %s # %.1fs" % (i, name, time.time() - t0), flush=True)
            passed += 1
        except Skip as e:
            print("ok %d %s # SKIP %s" % (i, name, e), flush=True)
            skipped += 1
        except Exception as e:  # TestFailure, or a bug in the scenario
            print("# FAIL: %s" % e)
            if not isinstance(e, TestFailure):
                for line in traceback.format_exc().splitlines():
                    print("#   " + line)
            for v in t.vms:
                lines = v.saved_log if v.saved_log is not None else (
                    v.kernel_log(30) if v.sock else [])
                if lines:
                    print("# guest kernel log tail (%s):" % v.release)
                    for line in lines:
                        print("#   " + line)
            print("not ok %d %s # %.1fs" % (i, name, time.time() - t0), flush=True)
            failed += 1
        finally:
            for v in t.vms:
                v.stop()
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
