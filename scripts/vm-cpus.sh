#!/usr/bin/env bash
# The whole VM suite on the CPU models beyond the default (docs/testbed.md,
# "CPU models"): make check-cpus. CPU_MODELS overrides the list; DRIVER,
# KERNELS and FILTER narrow it as for make check-vm. Each model's run is
# KTAP with its own closing line; the last line sums them (scripts/ktap.sh).
# dkms_built_module_boots skips when no DKMS build is there (make check
# runs the dkms suite first; make check-dkms alone builds it).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
# shellcheck source=scripts/ktap.sh
. scripts/ktap.sh

export MEMPLUG_DKMS_OPTIONAL=1
models=${CPU_MODELS:-"max,-la57 qemu64"}
for m in $models; do
	echo "# ==== CPU model: $m"
	log=$(mktemp)
	QEMU_CPU=$m python3 tests/vm/run.py -j "${JOBS:-2}" 2>&1 | tee "$log"
	ktap_collect "$m" "${PIPESTATUS[0]}" "$log"
	rm -f "$log"
done
ktap_failed_list
ktap_summary
