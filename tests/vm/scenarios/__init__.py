# SPDX-License-Identifier: GPL-2.0
"""Test-bed scenarios. Each runs against one kernel and one driver
(DRIVER=memplug or DRIVER=virtio_mem, the kernel's own, as reference).

A scenario is a function f(t) where t is a Run (tests/vm/run.py): t.vm(...)
boots a guest, assertions raise TestFailure, Skip says the scenario does
not apply. @scenario (registry.py) registers it, once or, with variants=,
once per variant (both_modes(): an SBM and a BBM run of one function).

By theme (docs/testbed.md, "Scenarios"):

  resize.py      plugging and unplugging: block sizes, policies, steps, storms
  workload.py    memory in use while resizing: filler, migration, soak
  guards.py      the unplug guard and the growth guard, growing a small guest far
  faults.py      injected faults: offlining, adding, device answers, config
  lifecycle.py   boot, reboot, rmmod/insmod, takeover, suspend, DKMS
  interfaces.py  sysfs through memplugctl guest, /proc/iomem, parameters, tracepoints
  autosize.py    memplugd sizing real guests from their reports (issue 17)
  random_runs.py randomized differential runs (tests/vm/randomized.py)
  helpers.py     every function the scenarios share that is not a scenario
  registry.py    @scenario, both_modes(), SCENARIOS

SCENARIOS is the list run.py runs: a dict per scenario with name, fn,
memplug_only, tags, reference_fails, reference_long.
"""

from . import resize, workload, guards, faults, lifecycle, interfaces, autosize, random_runs
from .registry import SCENARIOS

# imported for their @scenario registrations
THEMES = (resize, workload, guards, faults, lifecycle, interfaces, autosize, random_runs)

# run.py starts the longest scenarios first (tests/vm/durations.txt) and
# keeps this order among those of equal estimates: the order in which they
# were declared when they were all in one file. A scenario not named here
# comes after these, in the order of the imports above.
ORDER = (
    "plug_unplug_bs2M_online_movable", "plug_unplug_bs4M_auto_movable",
    "plug_unplug_bs128M_online_movable", "plug_unplug_bs256M_online_kernel",
    "plug_unplug_bs1G_online_movable", "plug_unplug_bs2G_online_movable", "unplug_in_steps_bs2M",
    "unplug_in_steps_bs128M", "unplug_in_steps_bs1G", "unplug_in_steps_bs2G",
    "partial_shrink_keeps_reserves_2M", "partial_shrink_keeps_reserves_4M",
    "partial_shrink_keeps_reserves_middle_block_2M", "partial_shrink_keeps_reserves_128M",
    "partial_shrink_keeps_reserves_bbm_taken_pages", "plug_unplug_bs1G_auto_movable",
    "resize_while_resizing_sbm", "resize_while_resizing_bbm", "resize_under_filler_sbm",
    "resize_under_filler_bbm", "preplugged_at_boot", "two_devices", "hand_offlined_block",
    "hand_offlined_block_bbm_no_room", "force_bbm_small_blocks", "rmmod_with_memory_plugged",
    "resize_storm_sbm", "resize_storm_bbm", "offline_fault_bbm", "offline_fault_sbm",
    "add_rollback_keeps_present_blocks", "unplug_refused_taken_pages_back_sbm",
    "unplug_takes_only_memory_in_use_bbm", "unplug_takes_only_memory_in_use_sbm",
    "resize_during_migration", "unplug_never_oom_kills", "integrity_soak",
    "dkms_built_module_boots", "guest_tool_reports_sysfs_state", "reboot_with_memory_plugged",
    "rmmod_insmod_loop_under_load", "device_answer_faults_sbm", "device_answer_faults_bbm",
    "held_block_does_not_stop_shrink", "device_never_answers", "state_reads_while_device_is_stuck",
    "pinned_page_does_not_hang_offlining", "rmmod_races_first_add", "region_claimed_in_iomem",
    "suspend_and_hibernate", "forced_unload_leaves_no_dangling_hooks", "module_params_are_bounded",
    "bad_config_at_probe", "bad_config_at_runtime", "tracepoints_report_requests",
    "grow_far_memmap_on_memory_bbm", "growth_guard_without_memmap_on_memory",
    "grow_far_memmap_on_memory_sbm", "takeover_refused_while_virtio_mem_memory_in_use",
)


def _in_order():
    unknown = set(ORDER) - {sc["name"] for sc in SCENARIOS}
    if unknown:
        raise SystemExit("scenarios: ORDER names no scenario: %s" % ", ".join(sorted(unknown)))
    rank = {name: i for i, name in enumerate(ORDER)}
    ranked = sorted(enumerate(SCENARIOS), key=lambda p: (rank.get(p[1]["name"], len(ORDER)), p[0]))
    SCENARIOS[:] = [sc for _, sc in ranked]


_in_order()
