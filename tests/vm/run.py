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
import io
import os
import re
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ktap  # noqa: E402
from testbed import VM, Skip, TestFailure, kernel_series, kernels  # noqa: E402
from scenarios import SCENARIOS  # noqa: E402


class Run:
    """What a scenario gets: a way to boot a VM for this kernel and driver."""

    def __init__(self, release, driver, log, smp=2):
        self.release = release
        self.driver = driver
        self.log = log
        self.smp = smp
        self.vms = []

    def vm(self, devices, **kw):
        kw.setdefault("smp", self.smp)
        v = VM(self.release, self.driver, devices, log=self.log, **kw)
        self.vms.append(v)
        return v


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--driver", default=os.environ.get("DRIVER", "both"),
                    choices=["memplug", "virtio_mem", "both"])
    ap.add_argument("--kernel", default=os.environ.get("KERNELS", "all"),
                    help="kernel series: 6.1, 6.12, or all (space separated list ok)")
    ap.add_argument("--filter", default=os.environ.get("FILTER", ""),
                    help="regex on '<kernel>/<driver>/<scenario>'")
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    ap.add_argument("-j", "--jobs", type=int, default=int(os.environ.get("JOBS", "1")),
                    help="guests at once (each then gets one vCPU); JOBS=")
    ap.add_argument("--long", action="store_true", default=os.environ.get("LONG") == "1",
                    help="also run the long scenarios (soak, ...); LONG=1")
    ap.add_argument("--save-durations", metavar="FILE",
                    help="write each scenario's run time to FILE (see durations.txt)")
    args = ap.parse_args()
    global LONG
    LONG = args.long

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
                if "long" in sc["tags"] and not args.long:
                    continue
                plan.append((rel, drv, sc, name))
    # Longest first: with two guest slots, a 150 s scenario started last
    # would leave one slot idle for most of its run.  The sort is stable,
    # so equal estimates keep declaration order.
    est = load_durations(DURATIONS)
    plan.sort(key=lambda p: -est.get(p[3], DEFAULT_DURATION))
    if args.list:
        for p in plan:
            print(p[3])
        return 0

    tap = ktap.KTAP(planned=len(plan))
    jobs = max(1, args.jobs)
    results = {}
    lock = threading.Lock()
    printed = [0]

    def flush_in_order():
        # KTAP wants results in plan order: print each as soon as all
        # earlier ones are out
        while printed[0] + 1 in results:
            printed[0] += 1
            tap.record(results[printed[0]][0])
            sys.stdout.write(results[printed[0]][1])
            sys.stdout.flush()

    def worker(queue):
        while True:
            with lock:
                if not queue:
                    return
                i, item = queue.pop(0)
            out = io.StringIO()
            t0 = time.time()
            verdict = run_one(i, item, out, smp=1 if jobs > 1 else 2)
            with lock:
                results[i] = (verdict, out.getvalue(), time.time() - t0)
                flush_in_order()

    queue = list(enumerate(plan, 1))
    threads = [threading.Thread(target=worker, args=(queue,)) for _ in range(jobs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if args.save_durations:
        save_durations(args.save_durations, est,
                       {plan[i - 1][3]: r[2] for i, r in results.items() if r[0] != ktap.SKIP})
    todo = sum(1 for r in results.values() if r[0] == ktap.TODO)
    if todo:
        print("# %d known failing(s) of the reference driver (TODO), counted as skipped" % todo)
    # A CI log is often read from its tail only: name what failed, and why,
    # next to the counts.
    for i in sorted(results):
        verdict, text, _ = results[i]
        if verdict == ktap.FAIL:
            why = [ln[len("# FAIL: "):] for ln in text.splitlines() if ln.startswith("# FAIL: ")]
            print("# failed: %s: %s" % (plan[i - 1][3], why[0] if why else "?"))
    return tap.summary()


LONG = False
DURATIONS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "durations.txt")
DEFAULT_DURATION = 20.0


def load_durations(path):
    """{'<series>/<driver>/<scenario>': seconds} from a durations file."""
    est = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and not line.startswith("#"):
                    est[parts[0]] = float(parts[1])
    except OSError:
        pass
    return est


def save_durations(path, old, new):
    merged = dict(old)
    merged.update(new)
    with open(path, "w") as f:
        f.write("# Scenario run times (seconds) from a make check run; run.py starts the\n"
                "# longest first so the two guest slots finish together. Regenerate with\n"
                "# tests/vm/run.py --save-durations tests/vm/durations.txt\n")
        for name in sorted(merged):
            f.write("%s %.0f\n" % (name, merged[name]))


def run_one(i, item, out, smp):
    """Run one scenario; its KTAP lines go to out. Returns the verdict
    (ktap.PASS, FAIL, SKIP or TODO)."""
    rel, drv, sc, name = item

    def log(msg):
        out.write(msg + "\n")
    t = Run(rel, drv, log, smp)
    t0 = time.time()
    try:
        if sc["memplug_only"] and drv != "memplug":
            raise Skip("memplug-only feature")
        if sc.get("reference_long") and drv != "memplug" and not LONG:
            raise Skip("reliability scenario: the reference driver runs it with LONG=1")
        if sc.get("newest_kernel") and not LONG:
            newest = max(kernels(), key=lambda r: [int(x) for x in kernel_series(r).split(".")])
            if rel != newest:
                raise Skip("host-side scenario: on %s only; every kernel with LONG=1"
                           % kernel_series(newest))
        ko = os.path.join(os.path.dirname(__file__), "..", "..", "build", rel, "memplug.ko")
        if drv == "memplug" and not os.path.exists(ko):
            raise TestFailure("memplug.ko not built for %s (%s)" % (rel, ko))
        log("# %s: %s" % (name, (sc["fn"].__doc__ or "").strip().split("\n")[0]))
        sc["fn"](t)
        log(ktap.result_line(ktap.PASS, i, name, "%.1fs" % (time.time() - t0)))
        return ktap.PASS
    except Skip as e:
        log(ktap.result_line(ktap.SKIP, i, name, str(e)))
        return ktap.SKIP
    except Exception as e:  # TestFailure, or a bug in the scenario
        log("# FAIL: %s" % e)
        if not isinstance(e, TestFailure):
            for line in traceback.format_exc().splitlines():
                log("#   " + line)
        for v in t.vms:
            lines = v.saved_log if v.saved_log is not None else (
                v.failure_log() if v.sock else [])
            if lines:
                log("# guest kernel log (%s):" % v.release)
                for line in lines:
                    log("#   " + line)
        if drv == "virtio_mem" and sc["reference_fails"]:
            log(ktap.result_line(ktap.TODO, i, name, "known virtio_mem failing (%.1fs): %s" %
                                 (time.time() - t0, sc["reference_fails"])))
            return ktap.TODO
        log(ktap.result_line(ktap.FAIL, i, name, "%.1fs" % (time.time() - t0)))
        return ktap.FAIL
    finally:
        for v in t.vms:
            v.stop()


if __name__ == "__main__":
    sys.exit(main())
