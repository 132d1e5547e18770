#!/usr/bin/env bash
# Run the test suites and sum their results into one closing line.
#
#   scripts/check.sh [ktap] [testbed] [unit] [fuzz] [tools] [report] [memplugd] [static] [setup] [dkms] [vm] [libvirt]
#                                                         (default: all of them)
#   scripts/check.sh install | cpus | checkers | debug  (only when asked for)
#
# Each suite prints KTAP and ends with "N passed, N failed, N skipped"
# (scripts/ktap.sh, tests/vm/ktap.py); this script echoes them, sums those
# lines and exits non-zero if any test failed or a suite did not report.
# VM scenarios (vm, libvirt) take DRIVER, KERNELS, FILTER.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
# shellcheck source=scripts/ktap.sh
. scripts/ktap.sh

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(ktap testbed unit fuzz tools report memplugd static setup dkms vm libvirt)

declare -A cmd=(
	[ktap]="tests/ktap/run.sh"
	[testbed]="python3 tests/vm/selftest.py"
	[unit]="make -s -C tests/unit check"
	[fuzz]="scripts/fuzz-short.sh"
	[dkms]="tests/dkms/run.sh"
	[tools]="tests/tools/run.sh"
	[report]="tests/report/run.sh"
	[memplugd]="tests/memplugd/run.sh"
	[static]="scripts/static-checks.sh"
	[setup]="tests/setup/run.sh"
	[vm]="python3 tests/vm/run.py -j ${JOBS:-2}"
	[libvirt]="python3 tests/vm/libvirt.py"
	[install]="tests/install/run.sh"
	[cpus]="scripts/vm-cpus.sh"
	[checkers]="scripts/vm-checkers.sh"
	[debug]="scripts/vm-debug.sh"
)

for s in "${suites[@]}"; do
	c=${cmd[$s]:-}
	if [ -z "$c" ]; then
		echo "check.sh: unknown suite '$s'" >&2
		exit 64
	fi
	echo "# ==== suite: $s ($c)"
	log=$(mktemp)
	$c 2>&1 | tee "$log"
	ktap_collect "$s" "${PIPESTATUS[0]}" "$log"
	rm -f "$log"
done
# failed results repeated at the end, where a log's tail shows them
ktap_failed_list
[ ${#KTAP_BAD[@]} -eq 0 ] || echo "# failing suites: ${KTAP_BAD[*]}"
ktap_summary
