#!/usr/bin/env bash
# Self-test of the KTAP helpers every suite prints with: scripts/ktap.sh
# (shell) and tests/vm/ktap.py (Python). Each case runs a helper on fixed
# input and compares its whole output, and exit status, with what
# scripts/check.sh expects to parse. KTAP itself, from scripts/ktap.sh.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
# shellcheck source=scripts/ktap.sh
. scripts/ktap.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# expect NAME WANT_FILE -- CMD...: CMD's stdout and exit status ("rc N" as
# a last line) are WANT_FILE's text
expect() {
	local name=$1 want=$2
	shift 3
	{ "$@"; echo "rc $?"; } >"$work/got" 2>&1
	ktap_result "$(cmp -s "$want" "$work/got"; echo $?)" "$name" \
		"$(diff -u "$want" "$work/got" | tail -n +3)"
}

sh_suite() {
	bash -c '. scripts/ktap.sh
		ktap_header
		ktap_plan 7
		ktap_ok "first"
		ktap_fail "second" "why" "two
lines"
		ktap_skip "third" "not here"
		ktap_result 0 "fourth" "unused"
		ktap_result 3 "fifth" ""
		ktap_todo 0 "sixth" "known"
		ktap_todo 1 "seventh" "known"
		ktap_summary'
}
py_suite() {
	python3 -c 'import sys; sys.path.insert(0, "tests/vm")
import ktap
t = ktap.KTAP(planned=7)
t.ok("first")
t.fail("second", "why\ntwo\nlines")
t.skip("third", "not here")
t.ok("fourth")
t.fail("fifth", "")
t.ok("sixth")
t.todo("seventh", "known")
sys.exit(t.summary())'
}
cat >"$work/suite" <<'OUT'
KTAP version 1
1..7
ok 1 first
not ok 2 second
# why
# two
# lines
ok 3 third # SKIP not here
ok 4 fourth
not ok 5 fifth
ok 6 sixth
not ok 7 seventh # TODO known
3 passed, 2 failed, 2 skipped
rc 1
OUT
ktap_header
ktap_plan 13
expect "shell: results, diagnostics, closing line, exit status" "$work/suite" -- sh_suite
expect "python: the same results print the same lines" "$work/suite" -- py_suite

sh_short() { bash -c '. scripts/ktap.sh; ktap_header; ktap_plan 2; ktap_ok a; ktap_summary'; }
py_short() {
	python3 -c 'import sys; sys.path.insert(0, "tests/vm")
import ktap
t = ktap.KTAP(planned=2)
t.ok("a")
sys.exit(t.summary())'
}
cat >"$work/short" <<'OUT'
KTAP version 1
1..2
ok 1 a
# planned 2 results, printed 1
1 passed, 0 failed, 0 skipped
rc 1
OUT
expect "shell: fewer results than planned is a failure" "$work/short" -- sh_short
expect "python: fewer results than planned is a failure" "$work/short" -- py_short

py_lines() {
	python3 -c 'import sys; sys.path.insert(0, "tests/vm")
from ktap import PASS, FAIL, SKIP, TODO, result_line
print(result_line(PASS, 1, "6.1/memplug/a", "12.3s"))
print(result_line(SKIP, 2, "6.1/virtio_mem/b", "memplug-only feature"))
print(result_line(TODO, 3, "6.1/virtio_mem/c", "known virtio_mem failing (1.0s): why"))
print(result_line(FAIL, 4, "6.1/memplug/d", "2.0s"))'
}
cat >"$work/lines" <<'OUT'
ok 1 6.1/memplug/a # 12.3s
ok 2 6.1/virtio_mem/b # SKIP memplug-only feature
not ok 3 6.1/virtio_mem/c # TODO known virtio_mem failing (1.0s): why
not ok 4 6.1/memplug/d # 2.0s
rc 0
OUT
expect "python: the VM runner's result lines" "$work/lines" -- py_lines

sh_bail() { bash -c '. scripts/ktap.sh; ktap_bail "no kernels"; echo not reached'; }
cat >"$work/bail" <<'OUT'
Bail out! no kernels
0 passed, 1 failed, 0 skipped
rc 1
OUT
expect "shell: bail out ends with a failing closing line" "$work/bail" -- sh_bail

# cmocka's TAP (CMOCKA_MESSAGE_OUTPUT=TAP), renumbered after one result
cat >"$work/cmocka.tap" <<'OUT'
1..3
ok 1 - t_ok
not ok 2 - t_fail
# 0x1 != 0x2
not ok 3 # SKIP t_skip
# not ok - grp
OUT
sh_include() {
	bash -c '. scripts/ktap.sh; ktap_header; ktap_ok before
		ktap_include "unit: " 1 "$1"; ktap_plan $KTAP_N; ktap_summary' _ "$1"
}
cat >"$work/include" <<'OUT'
KTAP version 1
ok 1 before
ok 2 unit: t_ok
not ok 3 unit: t_fail
# 0x1 != 0x2
ok 4 unit: t_skip # SKIP skipped
# not ok - grp
1..4
2 passed, 1 failed, 1 skipped
rc 1
OUT
expect "shell: a cmocka TAP stream folded in" "$work/include" -- sh_include "$work/cmocka.tap"
head -n 2 "$work/cmocka.tap" >"$work/cut.tap"
cat >"$work/cut" <<'OUT'
KTAP version 1
ok 1 before
ok 2 unit: t_ok
not ok 3 unit: test binary completed its plan
# plan 3, saw 1, exit 1
1..3
2 passed, 1 failed, 0 skipped
rc 1
OUT
expect "shell: a cmocka stream cut short is a failure" "$work/cut" -- sh_include "$work/cut.tap"

# scripts/check.sh's sum over suites
printf '%s\n' "KTAP version 1" "ok 1 a" "not ok 2 b" "not ok 3 c # TODO later" \
	"1 passed, 1 failed, 1 skipped" >"$work/s1"
printf '%s\n' "KTAP version 1" "  not ok 1 nested # SKIP x" "4 passed, 0 failed" >"$work/s2"
printf '%s\n' "KTAP version 1" "ok 1 a" >"$work/s3"
printf '%s\n' "0 passed, 0 failed, 2 skipped" >"$work/s4"
sh_collect() {
	bash -c '. scripts/ktap.sh
		ktap_collect one 1 "$1/s1"; ktap_collect two 0 "$1/s2"
		ktap_collect three 0 "$1/s3"; ktap_collect four 2 "$1/s4"
		ktap_failed_list; echo "bad: ${KTAP_BAD[*]}"; ktap_summary' _ "$1"
}
cat >"$work/collect" <<'OUT'
# three: did not report a result (exit 0)
# four: exited 2 with no failed result
# failed: one: not ok 2 b
bad: one three four
5 passed, 3 failed, 3 skipped
rc 1
OUT
expect "shell: closing lines summed, a silent or failing suite counted" "$work/collect" -- sh_collect "$work"

py_pipe() { py_suite >"$work/py.log"; bash -c '. scripts/ktap.sh; ktap_collect py 1 "$1"; ktap_summary' _ "$work/py.log"; }
cat >"$work/pipe" <<'OUT'
3 passed, 2 failed, 2 skipped
rc 1
OUT
expect "python's closing line sums as the shell's" "$work/pipe" -- py_pipe

# the C tools' suites: their work dir, a checker that is not installed,
# clang-format
sh_workdir() {
	TMPDIR=$1 bash -c '. scripts/ktap.sh
		hook() { [ -d "$work" ] && echo "hook: the work dir is still there"; }
		ktap_workdir ktap-test hook
		ktap_header; ktap_ok a; ktap_done' _
	ls "$1"
}
cat >"$work/workdir" <<'OUT'
KTAP version 1
ok 1 a
1..1
1 passed, 0 failed, 0 skipped
hook: the work dir is still there
rc 0
OUT
mkdir "$work/tmp"
expect "shell: ktap_workdir's hook runs, then the work dir goes; ktap_done" "$work/workdir" \
	-- sh_workdir "$work/tmp"

sh_missing() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	PATH=/nonexistent "$BASH" -c '. scripts/ktap.sh
		ktap_clang c x.c; ktap_cppcheck p .; ktap_vg_build "$1/vg" x.c || echo "no build"
		ktap_done' _ "$1"
}
cat >"$work/missing" <<'OUT'
ok 1 c # SKIP clang not installed
ok 2 p # SKIP cppcheck not installed
ok 3 valgrind # SKIP valgrind not installed (or the build for it failed)
no build
1..3
0 passed, 0 failed, 3 skipped
rc 0
OUT
expect "shell: clang, cppcheck, valgrind not installed: skipped" "$work/missing" \
	-- sh_missing "$work"

printf 'int main(void)\n{\n\treturn 0;\n}\n' >"$work/good.c"
printf 'int main(void) { return 0; }\n' >"$work/bad.c"
sh_format() {
	bash -c '. scripts/ktap.sh
		ktap_clang_format good "$1/good.c" "$1/none-*.c"; ktap_clang_format bad "$1/bad.c"
		ktap_done' _ "$1" | grep -v '^#'
}
cat >"$work/format" <<'OUT'
ok 1 good
not ok 2 bad
1..2
1 passed, 1 failed, 0 skipped
rc 1
OUT
expect "shell: ktap_clang_format passes the tools' style, fails another" "$work/format" \
	-- sh_format "$work"

ktap_summary
