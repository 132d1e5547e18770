# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
# KTAP output for the shell test suites, sourced, in the spirit of the
# kernel's tools/testing/selftests/kselftest/ktap_helpers.sh. Its Python
# twin is tests/vm/ktap.py; tests/ktap/run.sh tests both.
#
#   . "$top/scripts/ktap.sh"
#   ktap_header                     KTAP version 1
#   ktap_plan N                     1..N (before the results, or after them)
#   ktap_ok NAME [DIAG...]          ok N NAME
#   ktap_fail NAME [DIAG...]        not ok N NAME
#   ktap_result RC NAME [DIAG...]   ktap_ok if RC is 0, else ktap_fail
#   ktap_skip NAME REASON           ok N NAME # SKIP REASON
#   ktap_todo RC NAME REASON        ok, or not ok N NAME # TODO REASON
#   ktap_diag [TEXT...]             each line of TEXT as "# line"
#   ktap_include PREFIX RC FILE     a TAP stream's results (cmocka's) renumbered into this one
#   ktap_bail REASON                Bail out!, closing line, exit 1
#   ktap_summary                    N passed, N failed, N skipped; returns 1 on a failure
#   ktap_done                       1..N (the results printed), then ktap_summary
#
# What the suites of the C tools (tests/tools, tests/report, tests/memplugd)
# share, each one result:
#   ktap_workdir NAME [HOOK]        $work: a new directory, removed at exit after HOOK
#   ktap_cmocka PREFIX BIN TAPFILE  a cmocka binary's results, through ktap_include
#   ktap_checker NAME TOOL ARGS...  TOOL ARGS succeeds; skipped without TOOL
#   ktap_clang NAME ARGS...         clang -Wall -Wextra -Werror -O2 -fsyntax-only ARGS
#   ktap_cppcheck NAME ARGS...      cppcheck with the tools' checks on ARGS
#   ktap_clang_format NAME FILE...  each FILE as clang-format formats it (tools/.clang-format)
#   ktap_vg_build BIN CC_ARGS...    BIN built for valgrind, or a skipped result "valgrind"
#
# Every suite ends with the closing line "N passed, N failed, N skipped",
# which scripts/check.sh sums. A TODO result that fails counts as skipped.
# DIAG arguments are diagnostics: each line of each non-empty one is
# printed as "# line" after a result.
#
# For a script that runs suites and sums them (scripts/check.sh,
# scripts/vm-cpus.sh):
#   ktap_collect KEY RC LOG         add the closing line in LOG to the counts
#   ktap_failed_list                "# failed: KEY: <result>" for each failed result collected

KTAP_N=0 KTAP_PASS=0 KTAP_FAIL=0 KTAP_SKIP=0 KTAP_PLAN=
KTAP_FAILED=() KTAP_BAD=()

ktap_header() {
	echo "KTAP version 1"
}

ktap_plan() {
	KTAP_PLAN=$1
	echo "1..$1"
}

ktap_diag() {
	local d l
	for d in "$@"; do
		[ -n "$d" ] || continue
		while IFS= read -r l; do
			echo "# $l"
		done <<<"$d"
	done
}

ktap_ok() {
	KTAP_N=$((KTAP_N + 1)) KTAP_PASS=$((KTAP_PASS + 1))
	echo "ok $KTAP_N $1"
	shift
	ktap_diag "$@"
}

ktap_fail() {
	KTAP_N=$((KTAP_N + 1)) KTAP_FAIL=$((KTAP_FAIL + 1))
	echo "not ok $KTAP_N $1"
	shift
	ktap_diag "$@"
}

ktap_result() {
	local rc=$1
	shift
	if [ "$rc" = 0 ]; then
		ktap_ok "$1"
	else
		ktap_fail "$@"
	fi
}

ktap_skip() {
	KTAP_N=$((KTAP_N + 1)) KTAP_SKIP=$((KTAP_SKIP + 1))
	echo "ok $KTAP_N $1 # SKIP $2"
}

ktap_todo() {
	if [ "$1" = 0 ]; then
		ktap_ok "$2"
	else
		KTAP_N=$((KTAP_N + 1)) KTAP_SKIP=$((KTAP_SKIP + 1))
		echo "not ok $KTAP_N $2 # TODO $3"
	fi
}

# ktap_include PREFIX RC FILE: the results of the TAP stream in FILE (as
# cmocka prints it with CMOCKA_MESSAGE_OUTPUT=TAP: "ok 3 - name", a skipped
# test "not ok 4 # SKIP name"), from a program that exited RC, as results of
# this stream, names prefixed with PREFIX; its comments pass through. One
# more failure if it did not complete its plan, or exited non-zero without
# a failed result.
ktap_include() {
	local prefix=$1 rc=$2 file=$3 line rest plan seen=0 failed=0
	plan=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' "$file" | head -n1)
	while IFS= read -r line; do
		case $line in
		"ok "* | "not ok "*)
			seen=$((seen + 1))
			rest=${line#not }
			rest=${rest#ok }
			rest=${rest#"${rest%% *}"}
			rest=${rest# }
			rest=${rest#- }
			case $rest in
			"# SKIP"*)
				rest=${rest#"# SKIP"}
				ktap_skip "$prefix${rest# }" "skipped" ;;
			*" # SKIP"*) ktap_skip "$prefix${rest%% # SKIP*}" "${rest#* # SKIP }" ;;
			*)
				if [ "${line#ok }" != "$line" ]; then
					ktap_ok "$prefix$rest"
				else
					ktap_fail "$prefix$rest"
					failed=$((failed + 1))
				fi
				;;
			esac
			;;
		"#"*) echo "$line" ;;
		esac
	done <"$file"
	if [ -z "$plan" ] || [ "$seen" != "$plan" ] || { [ "$rc" != 0 ] && [ "$failed" = 0 ]; }; then
		ktap_fail "${prefix}test binary completed its plan" "plan ${plan:-none}, saw $seen, exit $rc"
	fi
}

ktap_summary() {
	local rc=0
	if [ -n "$KTAP_PLAN" ] && [ "$KTAP_PLAN" != "$KTAP_N" ]; then
		echo "# planned $KTAP_PLAN results, printed $KTAP_N"
		rc=1
	fi
	echo "$KTAP_PASS passed, $KTAP_FAIL failed, $KTAP_SKIP skipped"
	[ "$KTAP_FAIL" = 0 ] && return $rc
	return 1
}

ktap_done() {
	ktap_plan "$KTAP_N"
	ktap_summary
}

ktap_bail() {
	echo "Bail out! $*"
	KTAP_FAIL=$((KTAP_FAIL + 1)) KTAP_PLAN=
	ktap_summary
	exit 1
}

# ktap_collect KEY RC LOG: LOG holds the output of a suite that exited RC.
# Its closing line's counts go into KTAP_PASS/FAIL/SKIP; a suite without
# one, or one that exited non-zero without a failed result, counts as one
# failure. Failed results (not SKIP, not TODO) are kept for
# ktap_failed_list; KEY goes into KTAP_BAD if anything failed.
ktap_collect() {
	local key=$1 rc=$2 log=$3 line p f s t
	while IFS= read -r t; do
		KTAP_FAILED+=("$key: $t")
	done < <(grep -E '^ *not ok [0-9]+' "$log" | grep -vE '# (TODO|SKIP)')
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n1)
	if [ -z "$line" ]; then
		echo "# $key: did not report a result (exit $rc)"
		KTAP_FAIL=$((KTAP_FAIL + 1)) KTAP_BAD+=("$key")
		return
	fi
	read -r p f s < <(sed -E 's/^([0-9]+) passed, ([0-9]+) failed(, ([0-9]+) skipped)?.*/\1 \2 \4/' <<<"$line")
	KTAP_PASS=$((KTAP_PASS + p)) KTAP_FAIL=$((KTAP_FAIL + f)) KTAP_SKIP=$((KTAP_SKIP + ${s:-0}))
	if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
		echo "# $key: exited $rc with no failed result"
		KTAP_FAIL=$((KTAP_FAIL + 1)) KTAP_BAD+=("$key")
	elif [ "$f" != 0 ]; then
		KTAP_BAD+=("$key")
	fi
}

ktap_failed_list() {
	local t
	for t in "${KTAP_FAILED[@]}"; do
		echo "# failed: $t"
	done
}

# ---------------------------------------------------------------------------
# The C tools' suites

# the clang-format style of the C tools, beside this file's folder
KTAP_STYLE=${BASH_SOURCE[0]%/*}
[ "$KTAP_STYLE" != "${BASH_SOURCE[0]}" ] || KTAP_STYLE=.
KTAP_STYLE=$(cd "$KTAP_STYLE/.." && pwd)/tools/.clang-format

# ktap_workdir NAME [HOOK]: a new directory $TMPDIR/NAME.XXXXXX as $work.
# At exit the function HOOK runs (a suite stops what it started), then the
# directory goes, or stays with KEEP=1 ("# work dir kept: DIR"); SIGINT and
# SIGTERM exit 130, through the same.
ktap_workdir() {
	work=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX") || ktap_bail "no work directory"
	KTAP_WORK_HOOK=${2:-}
	trap ktap_workdir_cleanup EXIT
	trap 'exit 130' INT TERM
}

ktap_workdir_cleanup() {
	[ -z "$KTAP_WORK_HOOK" ] || "$KTAP_WORK_HOOK"
	if [ "${KEEP:-0}" = 1 ]; then
		echo "# work dir kept: $work"
	else
		rm -rf "$work"
	fi
}

# ktap_cmocka PREFIX BIN TAPFILE: run the cmocka test binary BIN with its
# TAP output into TAPFILE, and fold its results in (ktap_include PREFIX).
ktap_cmocka() {
	CMOCKA_MESSAGE_OUTPUT=TAP "$2" >"$3" 2>&1
	ktap_include "$1" $? "$3"
}

# ktap_checker NAME TOOL ARGS...: ok if TOOL ARGS exits 0 (its output, the
# diagnostics of a failure); skipped when TOOL is not installed.
ktap_checker() {
	local name=$1 tool=$2 out
	shift 2
	if ! command -v "$tool" >/dev/null; then
		ktap_skip "$name" "$tool not installed"
		return
	fi
	out=$("$tool" "$@" 2>&1)
	ktap_result $? "$name" "$out"
}

# ktap_clang NAME ARGS...: ok if clang compiles ARGS (sources and flags)
# without a warning.
ktap_clang() {
	local name=$1
	shift
	ktap_checker "$name" clang -Wall -Wextra -Werror -O2 -fsyntax-only "$@"
}

# ktap_cppcheck NAME ARGS...: ok if cppcheck finds nothing in ARGS
# (directories, files, -I).
ktap_cppcheck() {
	local name=$1
	shift
	ktap_checker "$name" cppcheck -q --enable=warning,portability,performance \
		--error-exitcode=1 --inline-suppr "$@"
}

# ktap_clang_format NAME FILE...: ok if clang-format leaves every FILE as
# it is (the diffs, cut, are the diagnostics); a FILE that is not there,
# an unmatched glob, is passed over.
ktap_clang_format() {
	local name=$1 f out=
	shift
	for f in "$@"; do
		[ -f "$f" ] || continue
		out+=$(clang-format --style=file:"$KTAP_STYLE" "$f" | diff -u "$f" - 2>&1)
	done
	[ -z "$out" ]
	ktap_result $? "$name" "$(head -n 40 <<<"$out")"
}

# ktap_vg_build BIN CC_ARGS...: build BIN for valgrind (-O1 -g, DWARF 4,
# which Debian 12's valgrind reads whatever compiler built the main
# binary; the compiler's output in BIN-build.log). Fails, with a skipped
# result "valgrind", when valgrind is not installed or the build fails.
ktap_vg_build() {
	local bin=$1
	shift
	if command -v valgrind >/dev/null &&
		cc -O1 -g -gdwarf-4 -o "$bin" "$@" 2>"$bin-build.log"; then
		return 0
	fi
	ktap_skip "valgrind" "valgrind not installed (or the build for it failed)"
	return 1
}
