#!/usr/bin/env bash
# Short libFuzzer runs of every fuzz target (run-fuzz_*) in tests/unit (the
# driver's logic) and tests/memplugd (memplugd's parsers and policy), KTAP.
# The long runs: make fuzz (unbounded).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/ktap.sh
. "$top/scripts/ktap.sh"
runs=${FUZZ_RUNS:-200000}
dirs=(tests/unit tests/memplugd)
ktap_header
n=0
for d in "${dirs[@]}"; do
	n=$((n + $(sed -n 's/^\(run-fuzz_[a-z_]*\):.*/\1/p' "$top/$d/Makefile" | wc -l)))
done
ktap_plan "$n"
for d in "${dirs[@]}"; do
	cd "$top/$d" || exit 1
	targets=$(sed -n 's/^\(run-fuzz_[a-z_]*\):.*/\1/p' Makefile)
	for t in $targets; do
		log=$(mktemp)
		if make -s "$t" >"$log" 2>&1 && "./$t" -runs="$runs" -seed=1 >>"$log" 2>&1; then
			ktap_ok "$t: $(grep -oE 'Done [0-9]+ runs' "$log" | tail -n1)"
		else
			ktap_fail "$t" "$(tail -n 30 "$log")"
		fi
		rm -f "$log"
	done
done
ktap_summary
