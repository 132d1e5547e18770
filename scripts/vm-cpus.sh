#!/usr/bin/env bash
# The whole VM suite on the CPU models beyond the default (docs/testbed.md,
# "CPU models"): make check-cpus. CPU_MODELS overrides the list; DRIVER,
# KERNELS and FILTER narrow it as for make check-vm. Each model's run is
# KTAP with its own closing line; the last line sums them.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

models=${CPU_MODELS:-"max,-la57 qemu64"}
P=0 F=0 S=0
failed=()
for m in $models; do
	echo "# ==== CPU model: $m"
	log=$(mktemp)
	QEMU_CPU=$m python3 tests/vm/run.py -j "${JOBS:-2}" 2>&1 | tee "$log"
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)
	if [ -z "$line" ]; then
		echo "# CPU model $m: the suite did not report a result"
		F=$((F + 1)); failed+=("$m: no result")
	else
		read -r p f s < <(sed -E 's/^([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?.*/\1 \2 \4/' <<<"$line")
		P=$((P + p)); F=$((F + f)); S=$((S + ${s:-0}))
	fi
	while IFS= read -r t; do
		failed+=("$m: $t")
	done < <(grep -E '^not ok [0-9]+' "$log" | grep -vE '# (TODO|SKIP)')
	rm -f "$log"
done
for t in "${failed[@]}"; do
	echo "# failed: $t"
done
echo "$P passed, $F failed, $S skipped"
[ "$F" -eq 0 ]
