#!/usr/bin/env bash
# make check-debug: the VM suite's memplug scenarios on the debug kernel
# (scripts/debug-kernel.sh: lockdep, KASAN, DEBUG_VM, DEBUG_LIST, KFENCE,
# page_owner), built once per machine and cached outside the clone. Every
# scenario ends with the health check, whose kernel log scan fails it on
# any splat. DRIVER (default memplug), FILTER and JOBS as for make check-vm.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
cache=${MEMPLUG_CACHE:-$top/.cache}

start=$(date +%s)
scripts/debug-kernel.sh >/dev/null
echo "# debug kernel ready after $(( $(date +%s) - start )) s"
export MEMPLUG_KERNEL_LIST=$cache/kernels/debug-list
scripts/build.sh >/dev/null
export GUEST_CMDLINE="page_owner=on ${GUEST_CMDLINE:-}"
# Onlined memory costs a debug kernel more boot memory than Debian's: 1/8
# for the KASAN shadow, page_owner's data, besides the memmap. Every guest
# boots with at least 4 GiB, and the scenarios whose sizes are set by a
# production kernel's costs do not run (they check the growth guard's and
# the unplug guard's limits: the guards count KASAN's shadow, so the limits
# move), nor the one that needs a DKMS build for this kernel, nor memplugd's
# autosize_* (they size workloads from 1 GiB of boot memory and time the
# guest's reports; they test the host daemon, whose guest side the other
# scenarios cover), nor report_channel (no virtio console in this kernel).
sized='grow_far_memmap_on_memory_bbm|growth_guard_without_memmap_on_memory|unplug_never_oom_kills'
export FILTER="${FILTER:-^(?!.*/($sized|dkms_built_module_boots|autosize_.*|report_channel)\$)}"
export MEMPLUG_MIN_BOOT_MEM=${MEMPLUG_MIN_BOOT_MEM:-4G}
exec python3 tests/vm/run.py --driver "${DRIVER:-memplug}" -j "${JOBS:-2}"
