#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench-autosize: memplugd's automatic sizing against static sizing.

One workload trace (TRACE: a base of 200 MiB, a ramp to 3.2 GiB in 256 MiB
steps, the end of it, a second smaller burst, the end of that), played in
a fresh guest per configuration, the same on each kernel:

  static               memplug, the device pinned at the trace's peak need
                       (memplugd with min = max: how a user pins a VM; it
                       plugs that at its start and never moves)
  memplugd-memplug     memplugd sizing the guest, memplug in the guest
  memplugd-virtio_mem  memplugd sizing the guest, the kernel's virtio_mem

and reports per run: memory-seconds held (boot memory + plugged, GiB·s,
and QEMU's resident memory, GiB·s), the peak held, OOM kills, the
filler's corrupted bytes, time-to-grow (pressure onset to memory added,
median and max over the steps), time-to-give-back (t90 after each end of
the workload, median and max), the lowest MemAvailable the guest
reported, the guest's kernel log problems, memplugd's decisions. Not a
test: nothing fails, the numbers are what they are.

Writes into bench/out/autosize/ (not tracked): raw.csv (every number),
summary.md, and per kernel and configuration a .dat series and a PNG plot
(gnuplot) of the device's plugged and requested size, the guest's
MemAvailable, the workload and QEMU's RSS over time; per kernel one PNG of
the memory each configuration held.

  bench/autosize.py               measure (make bench-autosize)
  bench/autosize.py --summarize   redo the plots and the summary from bench/out/autosize/
  bench/autosize.py --publish     copy the summary and the memplugd-memplug and
                                  memory-held plots into bench/results/ (tracked)

Environment: KERNELS ("6.1 6.12"), AUTOSIZE_CONFIGS ("static
memplugd-memplug memplugd-virtio_mem"), AUTOSIZE_BLOCK (the device's
block size, 2M), BENCH_REPS (1), BENCH_OUT (the bench/out/ to write
autosize/ into), ACCEL.

Written before its first run: TRACE, BENCH_DAEMON and END_S are first
guesses for TCG on 2 cores (docs/memplugd.md, "Real guests").
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

from testbed import (VM, Device, GiB, MiB, cpu_model, kernel_series,  # noqa: E402
                     kernels, parse_size)
from memplugd_bed import (REPORT_MS, Memplugd, Sampler, Workload, avail_now,  # noqa: E402
                          daemon_config, giveback, held_gib_s, step_growths)

OUT = os.path.join(os.environ.get("BENCH_OUT") or os.path.join(HERE, "out"), "autosize")
# --publish: the tracked copy in bench/results/ (README.md shows a plot)
PUBLISHED = os.path.join(HERE, "results")
PUBLISHED_PLOTS = ("held", "memplugd-memplug")

BOOT_MEM = GiB
REGION = "6G"
# AUTOSIZE_BLOCK=1G: big blocks, where the drivers' unplug differs most
BLOCK = os.environ.get("AUTOSIZE_BLOCK", "2M")
BASE_MIB = 200
STEP_MIB = 256

# The trace: (seconds from the start, workload MiB in the tmpfs on top of
# the 200 MiB base). A level above the last is written in 256 MiB steps
# at once, a level below it removed at once.
TRACE = ([(0, 0)] +
         [(10 + 4 * i, STEP_MIB * (i + 1)) for i in range(12)] +   # ramp to 3 GiB by 54 s
         [(80, 0)] +                                                # the workload ends
         [(140, 512), (146, 1024)] +                                # a second, smaller burst
         [(170, 0)])                                                # ends too
END_S = 230                                                         # idle after it

# memplugd for the bench: the test bed's TCG timers, with the shrinking
# pace of production (25 % of the excess) and a longer hold-down: the
# trace is long enough to see the slow give-back memplugd is meant to do.
BENCH_DAEMON = {"hold-down": "10", "shrink-interval": "3", "shrink-ratio": "25"}

CONFIGS = {
    "static": "memplug",
    "memplugd-memplug": "memplug",
    "memplugd-virtio_mem": "virtio_mem",
}

RAW_FIELDS = ["kernel", "config", "rep", "metric", "value", "run"]
# for the summary: (metric, what, lower is better)
METRICS = [
    ("held_gib_s", "memory held (boot + plugged), GiB·s", True),
    ("rss_gib_s", "QEMU resident memory, GiB·s", True),
    ("held_peak_gib", "peak held (boot + plugged), GiB", True),
    ("oom_kills", "OOM kills in the guest", True),
    ("corrupted_bytes", "filler's corrupted bytes", True),
    ("grow_median_s", "time-to-grow, median (s)", True),
    ("grow_max_s", "time-to-grow, max (s)", True),
    ("giveback_t90_median_s", "time-to-give-back t90, median (s)", True),
    ("giveback_t90_max_s", "time-to-give-back t90, max (s)", True),
    ("given_back_gib", "given back after the workload ended, GiB", False),
    ("min_avail_mib", "lowest MemAvailable reported, MiB", False),
    ("decisions", "memplugd's decisions", True),
    ("kernel_problems", "guest kernel log problems", True),
]


class Log:
    """What Workload and the filler helpers log through (a Run's t.log)."""

    def log(self, msg):
        print(msg, flush=True)


def run_one(rel, config, rep, log):
    driver = CONFIGS[config]
    vm = VM(rel, driver, [Device("vmem0", REGION, BLOCK)], boot_mem="%dM" % (BOOT_MEM // MiB),
            log=lambda m: None, report=REPORT_MS, monitors=("memplugd", "probe"))
    vm.start()
    mpd = sam = None
    try:
        peak_level = max(level for _, level in TRACE)
        wl = Workload(vm, peak_level, BASE_MIB, log=log.log).start()
        a0 = avail_now(vm)
        cfg = daemon_config(driver, **{k.replace("-", "_"): v for k, v in BENCH_DAEMON.items()})
        buffer = parse_size(cfg["buffer"])
        bs = parse_size(BLOCK)
        keys = {}
        if config == "static":
            pinned = -(-(peak_level * MiB + buffer - a0) // bs) * bs
            keys = {"min": "%dM" % (pinned // MiB), "max": "%dM" % (pinned // MiB)}
        mpd = Memplugd([("vm", vm, keys)], cfg, log=log.log).start()
        sam = Sampler([("vm", vm)], mpd.status_path(), period=0.25)
        sam.start()
        deadline = time.time() + 120
        while True:
            v = mpd.vm_status("vm")
            s = sam.series("vm")
            ok = v["report"]["valid"] >= 3 and s and s[-1].size == s[-1].requested
            if config == "static":
                ok = ok and s[-1].size == pinned
            if ok:
                break
            if time.time() > deadline:
                raise RuntimeError("not ready after 120 s: %s" % v["note"])
            time.sleep(0.5)
        t0 = time.time()
        levels = [(t0, 0)]
        late = 0.0
        for ts, level in TRACE:
            wait = t0 + ts - time.time()
            if wait > 0:
                time.sleep(wait)
            else:
                late = max(late, -wait)
            wl.set_level(level, STEP_MIB)
            levels.append((time.time(), wl.level))
        time.sleep(max(0.0, t0 + END_S - time.time()))
        t_end = time.time()
        sam.stop()
        samples = sam.series("vm")
        oom = wl.finish(log, check=False)
        fs = wl.filler_status or {}
        problems = vm.agent("dmesg")["problem_count"]
        decisions = mpd.decisions("vm")
        mpd.stop()

        growths = step_growths([s for s in samples if s.t >= t0], wl.steps, buffer,
                               float(cfg["psi-threshold"]), decisions)
        grow = [g.grow_s for g in growths if g.grow_s is not None]
        t90s, given = [], 0
        for _, r_end, _ in wl.releases:
            nxt = [s0 for s0, _, _ in wl.steps if s0 > r_end]
            at, final, t90 = giveback(samples, r_end, min(nxt) if nxt else t_end)
            if t90 is not None:
                t90s.append(t90)
            if at is not None and final is not None and final < at:
                given += at - final
        avails = [s.avail for s in samples if s.avail is not None and s.rep_t and s.rep_t >= t0]
        res = {
            "held_gib_s": held_gib_s(samples, BOOT_MEM, t0, t_end),
            "rss_gib_s": held_gib_s(samples, 0, t0, t_end, key="rss"),
            "held_peak_gib": (BOOT_MEM + max(s.size for s in samples if s.t >= t0)) / GiB,
            "oom_kills": oom + (1 if fs.get("killed_by_signal") == 9 else 0),
            "corrupted_bytes": fs.get("corrupted_bytes", 0),
            "grow_median_s": statistics.median(grow) if grow else None,
            "grow_max_s": max(grow) if grow else None,
            "giveback_t90_median_s": statistics.median(t90s) if t90s else None,
            "giveback_t90_max_s": max(t90s) if t90s else None,
            "given_back_gib": given / GiB,
            "min_avail_mib": min(avails) / MiB if avails else None,
            "decisions": len(decisions),
            "kernel_problems": problems,
            "trace_late_s": late,
        }
        series = []
        li = 0
        for s in samples:
            while li + 1 < len(levels) and levels[li + 1][0] <= s.t:
                li += 1
            series.append((s.t - t0, s.size, s.requested, s.avail, s.total,
                           (levels[li][1] + BASE_MIB) * MiB, s.rss))
        return res, series
    finally:
        if sam:
            sam.stop()
        if mpd:
            mpd.close()
        vm.stop()


# ---------------------------------------------------------------------------
# Output

def write_dat(path, series):
    with open(path, "w") as f:
        f.write("# t_s plugged_gib requested_gib avail_gib total_gib workload_gib rss_gib\n")
        for row in series:
            f.write("%.2f %s\n" % (row[0], " ".join(
                "%.4f" % (v / GiB) if v is not None else "?" for v in row[1:])))


def plot_run(dat, title, png):
    script = (
        "set terminal pngcairo size 1000,520 noenhanced\nset output '%s'\n"
        "set title '%s'\nset xlabel 'seconds'\nset ylabel 'GiB'\nset key outside below\n"
        "set grid\nset datafile missing '?'\n"
        "plot '%s' using 1:2 with lines lw 2 title 'device plugged', "
        "'%s' using 1:3 with lines dt 2 title 'device requested', "
        "'%s' using 1:4 with lines lw 2 title 'guest MemAvailable', "
        "'%s' using 1:6 with steps lw 2 title 'workload (base + tmpfs)', "
        "'%s' using 1:7 with lines lw 1 lc rgb 'gray40' title 'QEMU RSS'\n" %
        (png, title, dat, dat, dat, dat, dat))
    gnuplot(script, png)


def plot_held(ks, dats, png):
    """Boot memory + plugged of every configuration, and the workload."""
    plots = []
    for config, dat in dats:
        plots.append("'%s' using 1:($2 + %.4f) with lines lw 2 title '%s: held'" %
                     (dat, BOOT_MEM / GiB, config))
    if dats:
        plots.append("'%s' using 1:6 with steps dt 2 title 'workload'" % dats[0][1])
    script = ("set terminal pngcairo size 1000,520 noenhanced\nset output '%s'\n"
              "set title '%s: memory held by the VM (boot + plugged)'\nset xlabel 'seconds'\n"
              "set ylabel 'GiB'\nset key outside below\nset grid\nset datafile missing '?'\n"
              "plot %s\n" % (png, ks, ", ".join(plots)))
    gnuplot(script, png)


def gnuplot(script, png):
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        print("# gnuplot failed for %s: %s" % (os.path.basename(png), e))


def read_raw(path):
    try:
        with open(path) as f:
            return list(csv.DictReader(f))
    except OSError:
        return []


def write_raw(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=RAW_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    os.replace(tmp, path)


def series_key(ks):
    return tuple(int(x) for x in ks.split(".") if x.isdigit())


def summarize(configs):
    rows = read_raw(os.path.join(OUT, "raw.csv"))
    vals, runs = {}, {}
    for r in rows:
        runs.setdefault(r["kernel"], set()).add(r["run"])
        try:
            v = float(r["value"])
        except (TypeError, ValueError):
            continue
        vals.setdefault((r["kernel"], r["metric"], r["config"]), []).append(v)
    lines = ["# memplugd: automatic sizing against static sizing", "",
             "One workload trace per configuration (bench/autosize.py: a 200 MiB base, a ramp "
             "to 3.2 GiB in 256 MiB steps, its end, a burst to 1.2 GiB, its end), QEMU TCG, "
             "1 GiB of boot memory, a %s region in %s blocks. Median of the runs "
             "(BENCH_REPS). \"vs static\": the configuration's memory-seconds as a share of "
             "static sizing's." % (REGION, BLOCK), ""]
    print()
    for ks in sorted(runs, key=series_key):
        lines.append("## %s" % ks)
        lines.append("")
        lines.append("- run %s" % ", ".join(sorted(runs[ks])))
        lines.append("")
        lines.append("| metric | %s |" % " | ".join(configs))
        lines.append("| --- |%s" % (" --- |" * len(configs)))
        print("%s:" % ks)
        for m, what, _ in METRICS:
            cells = []
            for c in configs:
                v = vals.get((ks, m, c))
                cells.append("-" if not v else fmt(statistics.median(v)))
            lines.append("| %s | %s |" % (what, " | ".join(cells)))
            print("  %-45s %s" % (what, "  ".join("%14s" % x for x in cells)))
        base = vals.get((ks, "held_gib_s", "static"))
        if base:
            share = []
            for c in configs:
                v = vals.get((ks, "held_gib_s", c))
                share.append("%.0f %%" % (100 * statistics.median(v) / statistics.median(base))
                             if v else "-")
            lines.append("| memory-seconds vs static | %s |" % " | ".join(share))
        lines += ["", "![%s](%s-held.png)" % (ks, ks), ""]
        for c in configs:
            if os.path.exists(os.path.join(OUT, "%s-%s.png" % (ks, c))):
                lines.append("- [%s %s](%s-%s.png)" % (ks, c, ks, c))
        lines.append("")
    with open(os.path.join(OUT, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\nwrote %s" % os.path.join(OUT, "summary.md"))


def fmt(v):
    if v is None:
        return "-"
    if float(v).is_integer():
        return "%d" % v
    return "%.2f" % v


def replot(configs):
    by_ks = {}
    for f in sorted(os.listdir(OUT)):
        m = re.fullmatch(r"(\d+\.\d+)-(.+)\.dat", f)
        if m and m.group(2) in configs:
            dat = os.path.join(OUT, f)
            plot_run(dat, "%s %s" % (m.group(1), m.group(2)), dat[:-4] + ".png")
            by_ks.setdefault(m.group(1), []).append((m.group(2), dat))
    for ks, dats in by_ks.items():
        plot_held(ks, dats, os.path.join(OUT, "%s-held.png" % ks))


def publish():
    """Copy summary.md (as autosize.md) and, per kernel, the plots named in
    PUBLISHED_PLOTS into bench/results/, with the links made to match;
    links to the plots left out are dropped."""
    src = os.path.join(OUT, "summary.md")
    if not os.path.exists(src):
        sys.exit("bench/autosize.py --publish: %s missing: run make bench-autosize first" % src)
    copied = set()
    os.makedirs(PUBLISHED, exist_ok=True)
    for f in sorted(os.listdir(OUT)):
        m = re.fullmatch(r"(\d+\.\d+)-(.+)\.png", f)
        if m and m.group(2) in PUBLISHED_PLOTS:
            shutil.copyfile(os.path.join(OUT, f), os.path.join(PUBLISHED, "autosize-" + f))
            print("copied %s" % os.path.join(PUBLISHED, "autosize-" + f))
            copied.add(f)
    lines = []
    with open(src) as fh:
        for line in fh.read().splitlines():
            m = re.search(r"\]\(([^)/]+\.png)\)", line)
            if m:
                if m.group(1) not in copied:
                    continue
                line = line.replace("](%s)" % m.group(1), "](autosize-%s)" % m.group(1))
            lines.append(line)
    dest = os.path.join(PUBLISHED, "autosize.md")
    with open(dest, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print("wrote %s" % dest)


def main():
    if "--publish" in sys.argv:
        publish()
        return
    configs = os.environ.get("AUTOSIZE_CONFIGS", " ".join(CONFIGS)).split()
    bad = [c for c in configs if c not in CONFIGS]
    if bad:
        sys.exit("bench/autosize.py: unknown configuration(s) %s (have %s)" %
                 (" ".join(bad), " ".join(CONFIGS)))
    os.makedirs(OUT, exist_ok=True)
    if "--summarize" in sys.argv:
        replot(configs)
        summarize(configs)
        return
    reps = int(os.environ.get("BENCH_REPS", "1"))
    wanted = os.environ.get("KERNELS", "6.1 6.12").split()
    rels = [r for r in kernels() if kernel_series(r) in wanted or "all" in wanted]
    stamp = "%s on %s (%d CPUs), guest -cpu %s" % (
        datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        platform.node() or "?", os.cpu_count(), cpu_model(os.environ.get("ACCEL", "tcg")))
    raw = os.path.join(OUT, "raw.csv")
    kept = read_raw(raw)
    log = Log()
    for rel in rels:
        ks = kernel_series(rel)
        for config in configs:
            fresh = []
            for rep in range(reps):
                t0 = time.time()
                try:
                    res, series = run_one(rel, config, rep, log)
                except Exception as e:
                    print("# %s %s rep %d failed: %s" % (ks, config, rep, e), flush=True)
                    continue
                for k, v in res.items():
                    fresh.append({"kernel": ks, "config": config, "rep": rep, "metric": k,
                                  "value": "" if v is None else v, "run": stamp})
                print("# %s %s rep %d (%.0f s): %s" % (
                    ks, config, rep, time.time() - t0, " ".join(
                        "%s=%s" % (k, fmt(v)) for k, v in res.items())), flush=True)
                if rep == 0:
                    dat = os.path.join(OUT, "%s-%s.dat" % (ks, config))
                    write_dat(dat, series)
            if fresh:
                kept = [r for r in kept if (r["kernel"], r["config"]) != (ks, config)] + fresh
                write_raw(raw, kept)
    replot(configs)
    summarize(configs)


if __name__ == "__main__":
    main()
