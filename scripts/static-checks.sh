#!/usr/bin/env bash
# Static checks, as KTAP: checkpatch --strict on the driver, W=1 and sparse
# (C=2) builds against every test kernel, clang-format on the userspace C,
# no call cycle between the driver's files.
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${MEMPLUG_CACHE:-$top/.cache}
cd "$top" || exit 1
# shellcheck source=scripts/ktap.sh
. scripts/ktap.sh

rels=$(cat "$cache/kernels/list")
tap() {	# tap NAME RC OUTPUT_FILE: ok if the command succeeded with no output
	local rc=$2
	[ -s "$3" ] && rc=1
	ktap_result "$rc" "$1" "$(head -n 40 "$3")"
}

ktap_header
ktap_plan $((3 + 2 * $(wc -l <<<"$rels")))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# checkpatch: the driver's sources, in kernel style. Ignored, on purpose:
#  CAMELCASE          with --no-tree checkpatch cannot tell kernel API names
#                     (__SetPageOffline) from ours
#  LINUX_VERSION_CODE compat.h exists to compare kernel versions (the one
#                     place that does); CONSTANT_COMPARISON follows from it
perl "$cache/checkpatch/checkpatch.pl" --strict --no-tree --quiet --terse --show-types \
	--ignore CAMELCASE,LINUX_VERSION_CODE,CONSTANT_COMPARISON \
	-f driver/*.c driver/*.h 2>&1 | grep -v '^total: ' > "$tmp/out"
tap "checkpatch --strict driver/" 0 "$tmp/out"

# W=1 and sparse, per kernel: no warnings at all
for rel in $rels; do
	b=$tmp/$rel
	cp -r driver "$b"
	# the cached headers (scripts/kdir.sh); a missing tree fails both
	kdir=$(scripts/kdir.sh "$rel" 2>"$tmp/out") || kdir=$tmp/no-kdir
	# Debian's 6.1 headers have no vmlinux, so Kbuild notes it skips BTF: not ours
	make -s -C "$b" KDIR="$kdir" W=1 >> "$tmp/out" 2>&1
	rc=$?
	grep -v 'Skipping BTF generation' "$tmp/out" > "$tmp/out2"
	tap "W=1 build, $rel" $rc "$tmp/out2"
	scripts/kdir.sh "$rel" >/dev/null 2>"$tmp/out"
	make -s -C "$b" KDIR="$kdir" C=2 >> "$tmp/out" 2>&1
	rc=$?
	grep -v 'Skipping BTF generation' "$tmp/out" > "$tmp/out2"
	tap "sparse (C=2), $rel" $rc "$tmp/out2"
	rm -rf "$b"
done

# clang-format: the userspace tools and the agent keep the repo's style
ktap_clang_format "clang-format tools/ tests/vm/agent/ tests/report/ tests/memplugd/" \
	tools/*/*.[ch] tests/vm/agent/*.c tests/report/*.c tests/memplugd/*.c

# the driver's files call each other only downwards (driver/memplug.h)
python3 scripts/callgraph.py driver > "$tmp/out" 2>&1
tap "no call cycle between driver files" $? "$tmp/out"

ktap_summary
