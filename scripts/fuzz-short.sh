#!/usr/bin/env bash
# Short libFuzzer runs of every fuzz target in tests/unit (run-fuzz_*), TAP.
# The long runs: make -C tests/unit fuzz (unbounded).
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top/tests/unit"
runs=${FUZZ_RUNS:-200000}
targets=$(sed -n 's/^\(run-fuzz_[a-z_]*\):.*/\1/p' Makefile)
echo "TAP version 13"
echo "1..$(wc -w <<<"$targets")"
n=0 pass=0 fail=0
for t in $targets; do
	n=$((n + 1))
	log=$(mktemp)
	if make -s "$t" >"$log" 2>&1 && "./$t" -runs="$runs" -seed=1 >>"$log" 2>&1; then
		echo "ok $n - $t: $(grep -oE 'Done [0-9]+ runs' "$log" | tail -n1)"
		pass=$((pass + 1))
	else
		echo "not ok $n - $t"
		tail -n 30 "$log" | sed 's/^/# /'
		fail=$((fail + 1))
	fi
	rm -f "$log"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
