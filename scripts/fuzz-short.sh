#!/usr/bin/env bash
# Short libFuzzer runs of every fuzz target in tests/unit (run-fuzz_*), KTAP.
# The long runs: make -C tests/unit fuzz (unbounded).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/ktap.sh
. "$top/scripts/ktap.sh"
cd "$top/tests/unit" || exit 1
runs=${FUZZ_RUNS:-200000}
targets=$(sed -n 's/^\(run-fuzz_[a-z_]*\):.*/\1/p' Makefile)
ktap_header
ktap_plan "$(wc -w <<<"$targets")"
for t in $targets; do
	log=$(mktemp)
	if make -s "$t" >"$log" 2>&1 && "./$t" -runs="$runs" -seed=1 >>"$log" 2>&1; then
		ktap_ok "$t: $(grep -oE 'Done [0-9]+ runs' "$log" | tail -n1)"
	else
		ktap_fail "$t" "$(tail -n 30 "$log")"
	fi
	rm -f "$log"
done
ktap_summary
