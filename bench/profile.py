#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Where plug and unplug time goes, per phase, memplug and virtio_mem.

Boots a guest per driver and scenario (1 GiB boot memory, online_movable,
8 GiB device), turns on function_graph inside the guest for the drivers'
worker functions and the mm calls they make (set_ftrace_filter, so only
those functions are traced), plugs 8 GiB and unplugs it again, and sums up
inside the guest, per phase, how often each function ran and how long it
took (its own duration as function_graph measures it, guest clock). The
numbers do not depend on how loaded the host is as much as wall-clock
times taken on the host do, but TCG guests still run slower on a busy
host: compare both drivers from the same run.

  bench/profile.py [--label before] [--kernels "6.12 6.1"] [--drivers "virtio_mem memplug"]
                   [--scenarios "bbm_1G sbm_2M sbm_128M"] [--size-gib 8]
  bench/profile.py --report    # bench/out/profile.md from the stored JSON

Writes bench/out/profile-<label>.json (merged with earlier runs of the same
label) and rebuilds bench/out/profile.md from all labels (bench/out/ is not
tracked by git; BENCH_OUT picks another directory). What earlier profiles
found is in docs/performance.md, "Where the time goes".

Per phase:
  wall      guest time from the config-change callback to the end of the
            worker's last run (function_graph timestamps)
  worker    sum of the worker function's run times (incl. sleeping in
            requests), and how many runs
  cpu       guest system+softirq CPU time over the phase (/proc/stat), all
            CPUs, tracing overhead included
  then every traced function: calls, total and max duration.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "vm"))

from bench import OUT, Probe, guest_cpu_jiffies  # noqa: E402
from testbed import VM, Device, GiB, MiB, kernel_series, kernels  # noqa: E402

QUIET = False       # --quiet-probe
T = "/sys/kernel/tracing"

# The mm calls both drivers make, in the order the report lists them.
MM_FUNCS = [
    "add_memory_driver_managed", "add_memory_resource", "arch_add_memory",
    "create_memory_block_devices", "online_pages", "move_pfn_range_to_zone",
    "generic_online_page", "build_all_zonelists", "setup_per_zone_wmarks",
    "kswapd_run", "offline_and_remove_memory", "offline_pages",
    "slab_memory_callback", "lru_cache_disable", "remove_pfn_range_from_zone",
    "try_remove_memory", "arch_remove_memory", "remove_memory_block_devices",
    "alloc_contig_range_noprof", "alloc_contig_range",
    "__alloc_contig_migrate_range", "start_isolate_page_range",
    "undo_isolate_page_range", "test_pages_isolated", "do_migrate_range",
    "lru_add_drain_all", "drain_all_pages", "__drain_all_pages",
    "zone_pcp_disable", "zone_pcp_enable", "synchronize_rcu",
    "synchronize_rcu_expedited",
]

DRIVER_FUNCS = {
    "memplug": {
        "config": "mp_config_changed",
        "worker": "mp_work_fn",
        "request": "mp_request",
        "funcs": ["mp_config_changed", "mp_work_fn", "mp_request", "mp_add_unit",
                  "mp_remove_unit", "mp_take_range", "mp_range_is_free",
                  "mp_range_used", "mp_online_page_cb", "mp_memory_notifier",
                  "mp_guard_allows", "mp_add_strays", "mp_sbm_remove_empty",
                  "mp_add_unit_per_mb", "mp_remove_unit_per_mb",
                  "mp_remove_units", "mp_add_units"],
    },
    "virtio_mem": {
        "config": "virtio_mem_config_changed",
        "worker": "virtio_mem_run_wq",
        "request": "virtio_mem_send_request",
        "funcs": ["virtio_mem_config_changed", "virtio_mem_run_wq",
                  "virtio_mem_send_request", "virtio_mem_add_memory",
                  "virtio_mem_remove_memory", "virtio_mem_offline_and_remove_memory",
                  "virtio_mem_fake_offline", "virtio_mem_fake_online",
                  "virtio_mem_online_page_cb", "virtio_mem_memory_notifier_cb",
                  "virtio_mem_bbm_plug_and_add_bb", "virtio_mem_sbm_plug_and_add_mb",
                  "virtio_mem_sbm_plug_sb", "virtio_mem_sbm_unplug_sb_online",
                  "virtio_mem_sbm_unplug_any_sb_raw", "virtio_mem_timer_expired"],
    },
}

SCENARIOS = {
    "bbm_1G": GiB,
    "bbm_2G": 2 * GiB,
    "sbm_2M": 2 * MiB,
    "sbm_128M": 128 * MiB,
}

# Sums function_graph output (funcgraph-abstime, funcgraph-tail) per
# function: calls, total and max duration in us; plus the first
# config-change callback and the last exit of the worker function.
AWK = r"""
BEGIN { first = ""; last = "" }
{
	ts = $1 + 0;
	if (!match($0, /[0-9]+(\.[0-9]+)? us/)) next;
	d = substr($0, RSTART, RLENGTH - 3) + 0;
	name = "";
	if (match($0, /\/\* [A-Za-z0-9_.]+/)) { name = substr($0, RSTART + 3, RLENGTH - 3) }
	else if (match($0, /[A-Za-z0-9_.]+( \[[a-z_]+\])?\(\);/)) {
		name = substr($0, RSTART, RLENGTH); sub(/ \[.*/, "", name); sub(/\(\);$/, "", name);
	}
	if (name == "") next;
	sub(/\.(isra|constprop|part)\.[0-9]+$/, "", name);
	n[name]++; tot[name] += d; if (d > mx[name]) mx[name] = d;
	if (name == CFG && first == "") first = ts;
	if (name == WRK) last = ts;
}
END {
	for (k in n) printf "F %s %d %.1f %.1f\n", k, n[k], tot[k], mx[k];
	printf "T %s %s\n", first, last;
}
"""


def guest_setup(vm, driver):
    funcs = MM_FUNCS + DRIVER_FUNCS[driver]["funcs"]
    script = ["cd %s" % T, "echo 0 > tracing_on", "echo nop > current_tracer",
              "echo 32768 > buffer_size_kb", ": > set_ftrace_filter"]
    script += ["echo %s >> set_ftrace_filter 2>/dev/null" % f for f in funcs]
    script += ["echo function_graph > current_tracer",
               "echo 1 > options/funcgraph-tail", "echo 1 > options/funcgraph-abstime",
               "echo 1 > tracing_on", "wc -l < set_ftrace_filter"]
    r = vm.sh(" ; ".join(script))
    return int(r["out"].split()[-1])


def guest_phase_stats(vm, driver):
    df = DRIVER_FUNCS[driver]
    # the agent takes one command per line
    awk = " ".join(l.strip() for l in AWK.splitlines() if l.strip())
    cmd = ("echo 0 > %s/tracing_on; awk -v CFG=%s -v WRK=%s '%s' %s/trace; "
           "cat %s/per_cpu/cpu*/stats | grep overrun" %
           (T, df["config"], df["worker"], awk, T, T))
    out = vm.sh(cmd, timeout=600)["out"]
    funcs, first, last, overrun = {}, None, None, 0
    for line in out.splitlines():
        p = line.split()
        if not p:
            continue
        if p[0] == "F" and len(p) == 5:
            funcs[p[1]] = {"calls": int(p[2]), "total_ms": float(p[3]) / 1000,
                           "max_ms": float(p[4]) / 1000}
        elif p[0] == "T":
            first = float(p[1]) if len(p) > 1 and p[1] else None
            last = float(p[2]) if len(p) > 2 and p[2] else None
        elif p[0] == "overrun:":
            overrun += int(p[1])
    vm.sh("echo > %s/trace; echo 1 > %s/tracing_on" % (T, T))
    return funcs, first, last, overrun


def run_phase(vm, probe, driver, size, base, timeout):
    vm.sh("echo > %s/trace" % T)
    cpu0 = guest_cpu_jiffies(vm)
    t0 = time.time()
    if QUIET:
        # only ask QEMU (no agent in the guest while the driver works)
        probe.request(size)
        while probe.size() != size and time.time() - t0 < timeout:
            time.sleep(0.05)
        dev_t, guest_t = time.time() - t0, None
    else:
        dev_t, guest_t = probe.resize(size, base, timeout=timeout)
    # let the worker finish whatever follows convergence
    time.sleep(1.0)
    cpu1 = guest_cpu_jiffies(vm)
    funcs, first, last, overrun = guest_phase_stats(vm, driver)
    df = DRIVER_FUNCS[driver]
    wk = funcs.get(df["worker"], {"calls": 0, "total_ms": 0.0})
    return {
        "host_device_s": dev_t, "host_guest_s": guest_t,
        "host_s": time.time() - t0,
        "wall_ms": (last - first) * 1000 if first is not None and last is not None else None,
        "worker_ms": wk["total_ms"], "worker_runs": wk["calls"],
        "cpu_s": (cpu1 - cpu0) / 100.0, "overrun": overrun,
        "funcs": funcs,
    }


def profile_one(rel, driver, block, size):
    vm = VM(rel, driver, [Device("vmem0", max(size, 8 * GiB), block)], boot_mem="1G",
            log=lambda m: None).start()
    try:
        n = guest_setup(vm, driver)
        base = vm.state()["memtotal_kb"] * 1024
        probe = Probe(vm)
        res = {"traced_functions": n}
        res["plug"] = run_phase(vm, probe, driver, size, base, 300)
        res["unplug"] = run_phase(vm, probe, driver, 0, base, 600)
        res["kernel_problems"] = vm.agent("dmesg")["problem_count"]
        probe.close()
        return res
    finally:
        vm.stop()


def load(label):
    path = os.path.join(OUT, "profile-%s.json" % label)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {}


def fmt_ms(v):
    if v is None:
        return "-"
    return "%.0f" % v if v >= 10 else "%.1f" % v


def cell(ph, key):
    if ph is None:
        return "-"
    if key in ("wall_ms", "worker_ms"):
        s = fmt_ms(ph.get(key))
        if key == "worker_ms":
            s += " (%d runs)" % ph.get("worker_runs", 0)
        return s
    if key == "cpu_s":
        return "%.2f s" % ph["cpu_s"]
    f = ph["funcs"].get(key)
    if not f:
        return "-"
    return "%s ms / %d" % (fmt_ms(f["total_ms"]), f["calls"])


def report():
    if not os.path.isdir(OUT):
        sys.exit("no profiles in %s: run bench/profile.py first" % OUT)
    labels = sorted(f[8:-5] for f in os.listdir(OUT)
                    if f.startswith("profile-") and f.endswith(".json"))
    data = {l: load(l) for l in labels}
    lines = ["# memplug profile: where plug and unplug time goes", "",
             "Written by `bench/profile.py` (rerun: `python3 bench/profile.py --label NAME`). "
             "Per phase, inside the guest: function_graph restricted to the drivers' "
             "worker functions and the mm calls they make. `wall`: guest time from the "
             "config-change callback to the end of the worker's last run; `worker`: sum "
             "of the worker function's runs (includes waiting for requests); `cpu`: guest "
             "system+softirq time over the phase (all CPUs, tracing included); per "
             "function: total time / calls (nested calls are included in their "
             "callers' time). 8 GiB, 1 GiB boot memory, online_movable, TCG, 2 vCPUs.", ""]
    for label in labels:
        for key, runs in sorted(data[label].items()):
            lines.append("## %s: %s" % (label, key))
            meta = runs.get("_meta", {})
            if meta:
                lines.append("")
                lines.append("Run %s; %s" % (meta.get("date", "?"), meta.get("note", "")))
            lines.append("")
            drivers = [d for d in ("virtio_mem", "memplug") if d in runs]
            lines.append("| phase | metric | " + " | ".join(drivers) + " |")
            lines.append("| --- | --- | " + " | ".join("---" for _ in drivers) + " |")
            for phase in ("plug", "unplug"):
                keys = ["wall_ms", "worker_ms", "cpu_s"]
                seen = set()
                for d in drivers:
                    seen |= set(runs[d][phase]["funcs"])
                req = {d: DRIVER_FUNCS[d]["request"] for d in drivers}
                fkeys = [k for k in MM_FUNCS if k in seen]
                rows = [(k, {d: cell(runs[d][phase], k) for d in drivers}) for k in keys]
                rows.append(("request (one virtqueue round trip)",
                             {d: cell(runs[d][phase], req[d]) for d in drivers}))
                rows += [(k, {d: cell(runs[d][phase], k) for d in drivers}) for k in fkeys]
                for d in drivers:
                    for k in sorted(runs[d][phase]["funcs"]):
                        if k in MM_FUNCS or k in (DRIVER_FUNCS[d]["worker"], req[d]):
                            continue
                        rows.append((k, {dd: cell(runs[dd][phase], k) if dd == d else ""
                                         for dd in drivers}))
                for name, vals in rows:
                    shown = {"wall_ms": "wall (ms)", "worker_ms": "worker (ms)",
                             "cpu_s": "cpu"}.get(name, name)
                    lines.append("| %s | %s | %s |" % (phase, shown,
                                                       " | ".join(vals[d] for d in drivers)))
            lines.append("")
    lines += ["What earlier profiles found, and how to read them: docs/performance.md, "
              "\"Where the time goes\"."]
    with open(os.path.join(OUT, "profile.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s" % os.path.join(OUT, "profile.md"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--label", default="current")
    ap.add_argument("--note", default="")
    ap.add_argument("--kernels", default=os.environ.get("KERNELS", "6.12"))
    ap.add_argument("--drivers", default="virtio_mem memplug")
    ap.add_argument("--scenarios", default="bbm_1G sbm_2M sbm_128M")
    ap.add_argument("--size-gib", type=int, default=8)
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--quiet-probe", action="store_true",
                    help="wait for the device size through QMP only: the agent polling the "
                         "guest meanwhile makes offlining dearer (slab flushes on its CPU)")
    args = ap.parse_args()
    global QUIET
    QUIET = args.quiet_probe
    if args.report:
        report()
        return
    os.makedirs(OUT, exist_ok=True)
    wanted = args.kernels.split()
    rels = [r for r in kernels() if kernel_series(r) in wanted]
    data = load(args.label)
    path = os.path.join(OUT, "profile-%s.json" % args.label)
    for rel in rels:
        for sc in args.scenarios.split():
            key = "%s %s" % (kernel_series(rel), sc)
            entry = data.setdefault(key, {})
            entry["_meta"] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                              "note": args.note}
            for drv in args.drivers.split():
                t0 = time.time()
                res = profile_one(rel, drv, SCENARIOS[sc], args.size_gib * GiB)
                entry[drv] = res
                print("# %s %s %s (%.0fs): plug wall %s ms worker %.0f ms | unplug wall %s ms "
                      "worker %.0f ms" % (args.label, key, drv, time.time() - t0,
                                          fmt_ms(res["plug"]["wall_ms"]),
                                          res["plug"]["worker_ms"],
                                          fmt_ms(res["unplug"]["wall_ms"]),
                                          res["unplug"]["worker_ms"]), flush=True)
                with open(path, "w") as f:
                    json.dump(data, f, indent=1, sort_keys=True)
    report()


if __name__ == "__main__":
    main()
