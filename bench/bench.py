#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench: memplug side by side with the kernel's own virtio_mem.

Same kernel, same run, drivers alternating, every measurement repeated
(BENCH_REPS, default 3) and reported as median and spread. Prints a table of
ratios memplug / virtio_mem, and writes everything it produces into
bench/out/ (not tracked by git): raw.csv (every measurement), summary.csv,
summary.md (medians, ratios, the targets), and per scenario and kernel a
.dat series and a PNG plot of guest memory over time for both drivers
(gnuplot).

  bench/bench.py               measure (make bench)
  bench/bench.py --summarize   redo the plots and the summary from bench/out/
  bench/bench.py --publish     write the tracked bench/results/summary.md from
                               bench/out/raw.csv and copy the plot(s) the
                               README shows (PICTURES) next to it
                               (make bench-publish)

Environment: BENCH_REPS, KERNELS ("6.1 6.12"), BENCH_FILTER (regex on the
scenario name), BENCH_DRIVERS ("virtio_mem memplug"), BENCH_SIZE_GIB (8),
BENCH_OUT (another directory instead of bench/out/).
"""

import csv
import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "vm"))

from testbed import (QMP, VM, Device, GiB, KiB, MiB, TestFailure, cpu_model,  # noqa: E402
                     kernel_series, kernels)

# everything a run writes (ignored by git)
OUT = os.environ.get("BENCH_OUT") or os.path.join(HERE, "out")
# tracked: summary.md and the plot(s) of PICTURES, written by --publish only
PUBLISHED = os.path.join(HERE, "results")
PICTURES = ["6.12-plug_unplug_bbm_1G"]     # README.md shows this one
SETTLE_S = 15          # under load: the device stopped moving this long = done
GUEST_POLL_S = 0.25     # how often the guest is asked while the device moves


class Probe:
    """Samples the device's plugged size (QMP) and the guest's MemTotal
    (agent) as fast as they answer, with timestamps, for the plots."""

    def __init__(self, vm, dev="vmem0"):
        self.vm = vm
        self.dev = dev
        self.qmp = QMP(vm.qmp)
        self.samples = []   # (t, plugged bytes, guest MemTotal bytes)
        self.t0 = time.time()
        self.last_m = None

    def size(self):
        return int(self.qmp.execute("qom-get", path=self.dev, property="size"))

    def memtotal(self):
        # not "state": that also reads every sysfs attribute of the driver
        # (memplug has ~40, virtio_mem none), guest work that would be
        # counted against the driver that has them
        return self.vm.agent("meminfo")["memtotal_kb"] * KiB

    def sample(self, guest=True):
        """One sample; with guest=False the guest's MemTotal is the last
        one read. Asking the guest agent costs the guest work (its
        allocations make every memory block offline flush per-CPU slabs),
        so while the driver works the guest is asked only every
        GUEST_POLL_S; the device, through QMP, costs the guest nothing."""
        s = self.size()
        if guest or self.last_m is None:
            self.last_m = self.memtotal()
        self.samples.append((time.time() - self.t0, s, self.last_m))
        return s, self.last_m

    def request(self, size):
        self.qmp.execute("qom-set", path=self.dev, property="requested-size", value=size)

    def resize(self, size, base_memtotal, timeout=300, settle=None):
        """Request `size`; return (seconds until the device reports it,
        seconds until the guest's MemTotal follows). When the target is
        not reached (the guest refuses), returns None for the missing
        ones after `timeout` or, with settle, once nothing moved for
        `settle` seconds."""
        t0 = time.time()
        self.request(size)
        dev_t = guest_t = None
        last_change, last = t0, None
        last_guest = 0.0
        while time.time() - t0 < timeout:
            # the guest closely only once the device is there
            ask_guest = dev_t is not None or time.time() - last_guest >= GUEST_POLL_S
            if ask_guest:
                last_guest = time.time()
            s, m = self.sample(guest=ask_guest)
            now = time.time()
            if dev_t is None and s == size:
                dev_t = now - t0
            if guest_t is None and dev_t is not None and m - base_memtotal == size:
                guest_t = now - t0
            if dev_t is not None and guest_t is not None:
                break
            if (s, m) != last:
                last, last_change = (s, m), now
            elif settle and now - last_change > settle:
                break
            time.sleep(0.01)
        return dev_t, guest_t

    def close(self):
        self.qmp.close()


def guest_cpu_jiffies(vm):
    """Guest kernel CPU time (system + softirq jiffies, all CPUs): the
    driver's worker runs in kernel threads, and the guest is otherwise idle."""
    line = vm.sh("head -n1 /proc/stat")["out"].split()
    return int(line[3]) + int(line[7])


def boot(rel, driver, block, region):
    return VM(rel, driver, [Device("vmem0", region, block)], boot_mem="1G",
              log=lambda m: None).start()


def sc_plug_unplug(rel, driver, block, size):
    region = max(size, 8 * GiB)
    vm = boot(rel, driver, block, region)
    try:
        base = vm.state()["memtotal_kb"] * KiB
        p = Probe(vm)
        cpu0 = guest_cpu_jiffies(vm)
        plug_dev, plug_guest = p.resize(size, base)
        cpu1 = guest_cpu_jiffies(vm)
        unplug_dev, unplug_guest = p.resize(0, base)
        cpu2 = guest_cpu_jiffies(vm)
        problems = vm.agent("dmesg")["problem_count"]
        p.close()
        return {"plug_device_s": plug_dev, "plug_guest_s": plug_guest,
                "unplug_device_s": unplug_dev, "unplug_guest_s": unplug_guest,
                "plug_cpu_s": (cpu1 - cpu0) / 100.0, "unplug_cpu_s": (cpu2 - cpu1) / 100.0,
                "kernel_problems": problems}, p.samples
    finally:
        vm.stop()


def sc_unplug_under_load(rel, driver, block, size):
    """Half of the plugged memory is held by a pattern-verifying filler."""
    vm = boot(rel, driver, block, max(size, 8 * GiB))
    try:
        base = vm.state()["memtotal_kb"] * KiB
        p = Probe(vm)
        p.resize(size, base)
        vm.agent("fill %d 5" % (size // 2 // MiB))
        deadline = time.time() + 600
        while not vm.agent("fill-status")["ready"]:
            if time.time() > deadline:
                raise TestFailure("filler not ready")
            time.sleep(0.5)
        t0 = time.time() - p.t0
        dev_t, _ = p.resize(0, base, timeout=180, settle=SETTLE_S)
        left = p.size()
        if dev_t is not None:
            took = dev_t
        else:
            # stopped short: the time of the device's last move, without
            # the quiet period that told us it stopped
            moves = [b[0] for a, b in zip(p.samples, p.samples[1:])
                     if b[0] >= t0 and b[1] != a[1]]
            took = (moves[-1] - t0) if moves else 0.0
        st = vm.agent("fill-stop", timeout=600)
        p.close()
        return {"unplug_s": took, "unplugged_gib": (size - left) / GiB,
                "corrupted_bytes": st["corrupted_bytes"],
                "oom_killed": 1 if st["killed_by_signal"] == 9 else 0,
                "kernel_problems": vm.agent("dmesg")["problem_count"]}, p.samples
    finally:
        vm.stop()


def sc_small_steps(rel, driver, block, steps=40, step=256 * MiB):
    """±256 MiB, 40 times, around 2 GiB: latency per step."""
    vm = boot(rel, driver, block, 8 * GiB)
    try:
        base = vm.state()["memtotal_kb"] * KiB
        p = Probe(vm)
        p.resize(2 * GiB, base)
        lat = []
        for i in range(steps):
            target = 2 * GiB + (step if i % 2 == 0 else 0)
            _, g = p.resize(target, base, timeout=120)
            lat.append(g if g is not None else float("nan"))
        p.close()
        return {"step_median_s": statistics.median(lat), "step_max_s": max(lat),
                "kernel_problems": vm.agent("dmesg")["problem_count"]}, p.samples
    finally:
        vm.stop()


SCENARIOS = [
    ("plug_unplug_bbm_1G", lambda r, d, s: sc_plug_unplug(r, d, GiB, s)),
    ("plug_unplug_bbm_2G", lambda r, d, s: sc_plug_unplug(r, d, 2 * GiB, s)),
    ("plug_unplug_sbm_2M", lambda r, d, s: sc_plug_unplug(r, d, 2 * MiB, s)),
    ("plug_unplug_sbm_128M", lambda r, d, s: sc_plug_unplug(r, d, 128 * MiB, s)),
    ("unplug_under_50pct_load_bbm_1G", lambda r, d, s: sc_unplug_under_load(r, d, GiB, s // 2)),
    ("unplug_under_50pct_load_sbm_2M",
     lambda r, d, s: sc_unplug_under_load(r, d, 2 * MiB, s // 2)),
    ("small_steps_sbm_2M", lambda r, d, s: sc_small_steps(r, d, 2 * MiB)),
    ("small_steps_bbm_256M", lambda r, d, s: sc_small_steps(r, d, 256 * MiB)),
]

# Which direction is better for each metric, for the ratio column.
LOWER_IS_BETTER = re.compile(r"_s$|corrupted|oom|problems")


def med_spread(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None, None
    return statistics.median(vals), (max(vals) - min(vals))


def plot(name, series, path_png):
    """series: {label: [(t, plugged, memtotal)]}; one gnuplot PNG."""
    data = path_png[:-4] + ".dat"
    with open(data, "w") as f:
        for label, samples in series.items():
            f.write("# %s\n" % label)
            for t, s, m in samples:
                f.write("%.3f %.4f %.4f\n" % (t, s / GiB, m / GiB))
            f.write("\n\n")
    gnuplot_png(data, list(series), name, path_png)


def gnuplot_png(data, labels, name, path_png):
    plots = []
    for i, label in enumerate(labels):
        plots.append("'%s' index %d using 1:3 with lines lw 2 title '%s: guest MemTotal'" %
                     (data, i, label))
        plots.append("'%s' index %d using 1:2 with lines dt 2 title '%s: device plugged'" %
                     (data, i, label))
    script = ("set terminal pngcairo size 900,500 noenhanced\nset output '%s'\n"
              "set title '%s'\nset xlabel 'seconds'\nset ylabel 'GiB'\nset key outside below\n"
              "set grid\nplot %s\n" % (path_png, name.replace("_", " "), ", ".join(plots)))
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print("# gnuplot failed for %s: %s" % (name, e))


RAW_FIELDS = ["kernel", "scenario", "driver", "rep", "metric", "value", "run"]


def read_raw(path):
    """Rows of raw.csv as dicts; rows of an older layout get run '?'."""
    try:
        with open(path) as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    for r in rows:
        r.setdefault("run", "?")
        if r["run"] is None:
            r["run"] = "?"
    return rows


def write_raw(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RAW_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    os.replace(tmp, path)


def replot():
    for f in sorted(os.listdir(OUT)):
        if f.endswith(".dat"):
            with open(os.path.join(OUT, f)) as df:
                labels = [line[2:].strip() for line in df if line.startswith("# ")]
            ks, name = f[:-4].split("-", 1)
            gnuplot_png(os.path.join(OUT, f), labels, "%s %s" % (ks, name),
                        os.path.join(OUT, f[:-4] + ".png"))


def summarize_raw(path, drivers, dest=None):
    """Build the summary from raw.csv: medians, spreads, ratios, targets.
    summary.csv always goes to OUT; summary.md to dest (default OUT)."""
    vals, runs = {}, {}
    for r in read_raw(path):
        try:
            v = float(r["value"])
        except (TypeError, ValueError):
            continue
        vals.setdefault((r["kernel"], r["scenario"], r["metric"], r["driver"]), []).append(v)
        runs.setdefault(r["kernel"], set()).add(r["run"])
    rows = []
    for (ks, name, m, d), vs in vals.items():
        med, spread = med_spread(vs)
        rows.append((ks, name, m, d, med, spread, len(vs)))
    rows.sort(key=lambda r: (series_key(r[0]), r[1], r[2]))
    write_summary(rows, drivers, runs, dest or OUT)


def series_key(ks):
    return tuple(int(x) for x in ks.split(".") if x.isdigit())


def publish(raw_csv, drivers):
    """The tracked copy: summary.md of the last run and the PICTURES."""
    missing = [p for p in [raw_csv] + [os.path.join(OUT, n + ".png") for n in PICTURES]
               if not os.path.exists(p)]
    if missing:
        sys.exit("bench --publish: %s missing: run make bench first" % ", ".join(missing))
    os.makedirs(PUBLISHED, exist_ok=True)
    for n in PICTURES:
        shutil.copyfile(os.path.join(OUT, n + ".png"), os.path.join(PUBLISHED, n + ".png"))
        print("copied %s" % os.path.join(PUBLISHED, n + ".png"))
    summarize_raw(raw_csv, drivers, dest=PUBLISHED)


def main():
    raw_csv = os.path.join(OUT, "raw.csv")
    drivers = ["virtio_mem", "memplug"]
    if "--summarize" in sys.argv:
        if not os.path.exists(raw_csv):
            sys.exit("bench --summarize: %s missing: run make bench first" % raw_csv)
        replot()
        summarize_raw(raw_csv, drivers)
        return
    if "--publish" in sys.argv:
        publish(raw_csv, drivers)
        return
    reps = int(os.environ.get("BENCH_REPS", "3"))
    size = int(os.environ.get("BENCH_SIZE_GIB", "8")) * GiB
    flt = os.environ.get("BENCH_FILTER", "")
    drivers = os.environ.get("BENCH_DRIVERS", "virtio_mem memplug").split()
    wanted = os.environ.get("KERNELS", "6.1 6.12").split()
    rels = [r for r in kernels() if kernel_series(r) in wanted or "all" in wanted]
    os.makedirs(OUT, exist_ok=True)
    stamp = "%s on %s (%d CPUs), guest -cpu %s" % (
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        platform.node() or "?", os.cpu_count(), cpu_model(os.environ.get("ACCEL", "tcg")))
    # A run replaces the rows of the (kernel, scenario) pairs it measures
    # and keeps the others, so kernels or scenarios can be rerun alone.
    kept = read_raw(raw_csv)
    for rel in rels:
        ks = kernel_series(rel)
        for name, fn in SCENARIOS:
            if flt and not re.search(flt, name):
                continue
            fresh = []
            results = {d: [] for d in drivers}
            traces = {}
            for rep in range(reps):
                for d in (drivers if rep % 2 == 0 else list(reversed(drivers))):
                    t0 = time.time()
                    try:
                        res, samples = fn(rel, d, size)
                    except Exception as e:
                        print("# %s %s %s rep %d failed: %s" % (ks, name, d, rep, e),
                              flush=True)
                        continue
                    results[d].append(res)
                    traces.setdefault(d, samples)
                    for k, v in res.items():
                        fresh.append({"kernel": ks, "scenario": name, "driver": d, "rep": rep,
                                      "metric": k, "value": v, "run": stamp})
                    print("# %s %s %s rep %d (%.0fs): %s" % (
                        ks, name, d, rep, time.time() - t0,
                        " ".join("%s=%s" % (k, "%.3f" % v if isinstance(v, float) else v)
                                 for k, v in res.items())), flush=True)
            kept = [r for r in kept if (r["kernel"], r["scenario"]) != (ks, name)] + fresh
            write_raw(raw_csv, kept)
            plot("%s %s" % (ks, name), traces,
                 os.path.join(OUT, "%s-%s.png" % (ks, name)))
    summarize_raw(raw_csv, drivers)


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.3f" % v
    return str(v)


def targets(table):
    """The targets memplug's plug and unplug were designed to meet, checked
    against the medians: [(kernel, scenario, target, measured, met)]."""
    out = []

    def med(ks, name, m, d):
        return table.get((ks, name, m), {}).get(d, (None,))[0]
    for (ks, name, m) in sorted(table, key=lambda k: (series_key(k[0]), k[1], k[2])):
        if m == "unplug_device_s" and name.startswith("plug_unplug"):
            mp, ref = med(ks, name, m, "memplug"), med(ks, name, m, "virtio_mem")
            if mp and ref:
                out.append((ks, name, "unplug >= 5x faster than virtio_mem",
                            "%.1fx" % (ref / mp), ref / mp >= 5))
            plug = med(ks, name, "plug_device_s", "memplug")
            if mp and plug:
                out.append((ks, name, "unplug <= 2x own plug time",
                            "%.1fx" % (mp / plug), mp / plug <= 2))
        if m == "plug_device_s":
            mp, ref = med(ks, name, m, "memplug"), med(ks, name, m, "virtio_mem")
            if mp and ref:
                out.append((ks, name, "plug <= 1.0x virtio_mem", "%.2fx" % (mp / ref),
                            mp / ref <= 1.0))
        if m == "unplugged_gib":
            mp, ref = med(ks, name, m, "memplug"), med(ks, name, m, "virtio_mem")
            if mp is not None and ref is not None:
                out.append((ks, name, "unplugs at least as much as virtio_mem under load",
                            "%.2f vs %.2f GiB" % (mp, ref), mp >= ref))
        if m == "corrupted_bytes":
            mp = med(ks, name, m, "memplug")
            if mp is not None:
                out.append((ks, name, "0 corrupted bytes", "%d" % mp, mp == 0))
    return out


def write_summary(rows, drivers, runs, dest):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "summary.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["kernel", "scenario", "metric", "driver", "median", "spread", "runs"])
        for r in rows:
            w.writerow(r)
    table = {}
    for ks, name, m, d, med, spread, n in rows:
        table.setdefault((ks, name, m), {})[d] = (med, spread, n)
    lines = ["# memplug benchmark", "",
             "QEMU TCG (the guest CPU model is in each run line), 1 GiB boot memory, "
             "`online_movable`, 8 GiB plugged unless the "
             "scenario says otherwise. Median of the runs, spread = max - min. "
             "ratio = memplug / virtio_mem (for times: below 1 means memplug is faster).", ""]
    for ks in sorted(runs, key=series_key):
        lines.append("- %s: run %s" % (ks, ", ".join(sorted(runs[ks]))))
    lines += ["", "| kernel | scenario | metric | virtio_mem | memplug | ratio |",
              "| --- | --- | --- | --- | --- | --- |"]
    print()
    print("%-5s %-34s %-18s %16s %16s %7s" % ("kern", "scenario", "metric", "virtio_mem",
                                              "memplug", "ratio"))
    for (ks, name, m), byd in table.items():
        vm_ = byd.get("virtio_mem", (None, None, 0))
        mp = byd.get("memplug", (None, None, 0))
        ratio = "-"
        if vm_[0] and mp[0] is not None and vm_[0] != 0:
            ratio = "%.2f" % (mp[0] / vm_[0])

        def cell(x):
            return "%s ±%s" % (fmt(x[0]), fmt(x[1])) if x[0] is not None else "-"
        print("%-5s %-34s %-18s %16s %16s %7s" % (ks, name, m, cell(vm_), cell(mp), ratio))
        lines.append("| %s | %s | %s | %s | %s | %s |" % (ks, name, m, cell(vm_), cell(mp), ratio))
    checks = targets(table)
    if checks:
        lines += ["", "## Targets, from the medians above", "",
                  "What memplug's plug and unplug were designed to meet against "
                  "the kernel's driver.", "",
                  "| kernel | scenario | target | measured | met |", "| --- | --- | --- | --- | --- |"]
        print("\ntargets:")
        for ks, name, what, got, met in checks:
            lines.append("| %s | %s | %s | %s | %s |" % (ks, name, what, got,
                                                      "yes" if met else "**no**"))
            print("%-5s %-34s %-50s %-18s %s" % (ks, name, what, got, "met" if met else "MISSED"))
    lines += ["", "Plots (guest MemTotal and device plugged size over time, both drivers):", ""]
    for f in sorted(os.listdir(dest)):
        if f.endswith(".png"):
            lines.append("- [%s](%s)" % (f[:-4], f))
    if os.path.abspath(dest) != os.path.abspath(OUT):
        lines += ["", "`make bench` writes one plot per scenario and kernel, the "
                  "series behind it, raw.csv and summary.csv into `bench/out/`; "
                  "`make bench-publish` copies this summary and the plot above here. "
                  "What the numbers mean: [docs/performance.md](../../docs/performance.md)."]
    with open(os.path.join(dest, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\nwrote %s" % os.path.join(dest, "summary.md"))


if __name__ == "__main__":
    main()
