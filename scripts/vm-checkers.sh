#!/usr/bin/env bash
# make check-checkers: the whole VM suite, both drivers, on Debian's own
# kernels with their cheap checkers switched on in every guest:
#   kfence.sample_interval=100  KFENCE samples allocations (6.12; Debian's
#                               6.1 has no KFENCE and ignores it)
#   slub_debug=FZPU             slab sanity checks, red zones, poisoning,
#                               owner tracking
#   init_on_free=1 page_poison=1  freed pages are wiped and checked
# The health check's kernel log scan fails a scenario on any report.
# init_on_free and page_poison write every page the guest frees, including
# all memory plugged when it goes to the buddy: QEMU then backs all of it.
# The growth scenarios plug 20 to 128 GiB, more than this 24 GiB machine
# has (the host OOM-kills QEMU), so they do not run here.
# dkms_built_module_boots skips when no DKMS build is there (make check
# runs the dkms suite first; make check-dkms alone builds it).
# DRIVER, KERNELS, FILTER and JOBS as for make check-vm.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export GUEST_CMDLINE="kfence.sample_interval=100 slub_debug=FZPU init_on_free=1 page_poison=1 ${GUEST_CMDLINE:-}"
export FILTER="${FILTER:-^(?!.*/(grow_far_memmap_on_memory_bbm|growth_guard_without_memmap_on_memory)\$)}"
export MEMPLUG_DKMS_OPTIONAL=1
exec python3 tests/vm/run.py -j "${JOBS:-2}"
