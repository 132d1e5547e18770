#!/usr/bin/env bash
# Run the test suites and sum their results into one closing line.
#
#   scripts/check.sh [unit] [tools] [static] [vm]     (default: all of them)
#   scripts/check.sh install | cpus | checkers | debug  (only when asked for)
#
# Each suite prints KTAP/TAP and ends with "N passed, N failed[, N skipped]";
# this script echoes them, sums those lines and exits non-zero if any test
# failed or a suite did not report. VM scenarios take DRIVER, KERNELS, FILTER.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(unit fuzz tools static dkms vm)

declare -A cmd=(
	[unit]="make -s -C tests/unit check"
	[fuzz]="scripts/fuzz-short.sh"
	[dkms]="tests/dkms/run.sh"
	[tools]="tests/tools/run.sh"
	[static]="scripts/static-checks.sh"
	[vm]="python3 tests/vm/run.py -j ${JOBS:-2}"
	[install]="tests/install/run.sh"
	[cpus]="scripts/vm-cpus.sh"
	[checkers]="scripts/vm-checkers.sh"
	[debug]="scripts/vm-debug.sh"
)

P=0 F=0 S=0
bad_suites=()
failed_tests=()
for s in "${suites[@]}"; do
	c=${cmd[$s]:-}
	if [ -z "$c" ]; then
		echo "check.sh: unknown suite '$s'" >&2
		exit 64
	fi
	echo "# ==== suite: $s ($c)"
	log=$(mktemp)
	$c 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)
	if [ -z "$line" ] && grep -qE '^(not )?ok [0-9]+' "$log"; then
		# plain TAP without a closing line (cmocka): count its results
		line="$(grep -cE '^ok [0-9]+' "$log") passed, $(grep -cE '^not ok [0-9]+' "$log") failed"
	fi
	# failed results (not TODO/SKIP), repeated at the end where a log's
	# tail shows them
	while IFS= read -r t; do
		failed_tests+=("$s: $t")
	done < <(grep -E '^ *not ok [0-9]+' "$log" | grep -vE '# (TODO|SKIP)')
	rm -f "$log"
	if [ -z "$line" ]; then
		echo "# suite $s did not report a result (exit $rc)"
		F=$((F + 1)); bad_suites+=("$s")
		continue
	fi
	p=$(sed -E 's/.*\b([0-9]+) passed.*/\1/' <<<"$line")
	f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
	sk=$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$line")
	P=$((P + p)); F=$((F + f)); S=$((S + ${sk:-0}))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "# suite $s exited $rc with no failed test"
		F=$((F + 1)); bad_suites+=("$s")
	elif [ "$f" -ne 0 ]; then
		bad_suites+=("$s")
	fi
done
for t in "${failed_tests[@]}"; do
	echo "# failed: $t"
done
[ ${#bad_suites[@]} -eq 0 ] || echo "# failing suites: ${bad_suites[*]}"
echo "$P passed, $F failed, $S skipped"
[ "$F" -eq 0 ]
