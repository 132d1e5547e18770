#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Tests of memplugd (tools/memplugd), host side only, KTAP output.
# Run from anywhere:  tests/memplugd/run.sh   (make check-memplugd)
#
#  1. build memplugd (gcc, -Werror) and its cmocka unit tests
#  2. the unit tests: policy, report parser, config parser (folded in)
#  3. memplugd against fake QMP peers (tests/tools/fake_qmp.py autosize)
#     and fake guests (fake_guest.py), and the real guest agent
#     (tools/memplug-report) through a relay: integration.py, one valgrind run
#  4. clang build, cppcheck, clang-format, the systemd unit
#     (systemd-analyze verify), make install into a DESTDIR
#
# The last line is "N passed, N failed, N skipped" (scripts/ktap.sh); exit 1
# on any failure.  Environment: KEEP=1 keeps the work directories, JOBS=N
# integration scenarios at a time (default 3), VALGRIND=0 skips valgrind.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/tests/memplugd
mpd=$top/tools/memplugd
common=$top/tools/common # the report protocol, shared with the guest agent
# shellcheck source=scripts/ktap.sh
. "$top/scripts/ktap.sh"

ktap_workdir memplugd-test

ktap_header

# ---------------------------------------------------------------------------
# 1. Build

# the guest agent too, for the end-to-end scenario (it skips without it)
make -s -C "$top/tools/memplug-report" memplug-report >"$work/agent-build.log" 2>&1 ||
	ktap_diag "tools/memplug-report does not build: its scenario will be skipped" \
		"$(tail -n 5 "$work/agent-build.log")"
if ! make -s -C "$mpd" memplugd >"$work/build.log" 2>&1 ||
   ! make -s -C "$here" all >>"$work/build.log" 2>&1; then
	ktap_fail "build memplugd and its unit tests" "$(tail -n 30 "$work/build.log")"
	ktap_done
	exit 1
fi
ktap_ok "build memplugd and its unit tests (gcc, -std=gnu11 -Werror)"

# ---------------------------------------------------------------------------
# 2. cmocka unit tests, renumbered into our KTAP stream

for t in policy report config vmem_xml; do
	ktap_cmocka "unit $t: " "$here/run-test_$t" "$work/unit-$t.tap"
done

# the parser against the protocol's reference parser (the report suite's)
if [ -f "$top/tests/report/protocol.py" ]; then
	out=$(python3 "$here/protocol_check.py" "$here/run-report_check" 2>&1)
	ktap_result $? "report parser: the verdicts of tests/report/protocol.py on its lines" "$out"
else
	ktap_skip "report parser: the verdicts of tests/report/protocol.py" "no tests/report/protocol.py"
fi

# ---------------------------------------------------------------------------
# 3. The daemon against fake peers

python3 "$here/integration.py" "$mpd/memplugd" >"$work/integration.tap" 2>&1
ktap_include "" $? "$work/integration.tap"

# ---------------------------------------------------------------------------
# 4. Static checks, the unit, install

ver=$(make -s -C "$mpd" version)
ktap_clang "clang -Wall -Wextra -Werror builds memplugd" -std=gnu11 -I"$top/tools/memplugctl" \
	-I"$common" -DMEMPLUG_VERSION="\"$ver\"" "$mpd"/*.c "$common"/*.c
ktap_cppcheck "cppcheck finds nothing in memplugd" -I "$mpd" -I "$top/tools/memplugctl" \
	-I "$common" "$mpd" "$common"
ktap_clang_format "clang-format: tools/memplugd and its tests keep the tools' style" \
	"$mpd"/*.[ch] "$common"/*.[ch] "$here"/*.c

dest=$work/inst
if make -s -C "$mpd" install DESTDIR="$dest" PREFIX=/usr/local >"$work/install.log" 2>&1 &&
   [ -x "$dest/usr/local/sbin/memplugd" ] &&
   [ -f "$dest/etc/memplugd.conf.example" ] &&
   grep -q '^ExecStart=/usr/local/sbin/memplugd ' "$dest/usr/local/lib/systemd/system/memplugd.service"; then
	ktap_ok "make install: daemon, unit (ExecStart in SBINDIR) and example config"
else
	ktap_fail "make install: daemon, unit and example config" "$(cat "$work/install.log")" \
		"$(find "$dest" 2>&1)"
fi

# the example configuration is valid as it is installed (paths aside)
if out=$("$mpd/memplugd" --check-config -c "$dest/etc/memplugd.conf.example" 2>&1); then
	ktap_ok "the example configuration is valid" "$out"
else
	ktap_fail "the example configuration is valid" "$out"
fi

# systemd-analyze verify: the unit's syntax and its binaries (the installed
# one, pointed at the DESTDIR); security: the hardening's exposure level
if command -v systemd-analyze >/dev/null; then
	unit=$dest/usr/local/lib/systemd/system/memplugd.service
	sed "s|/usr/local/sbin/|$dest/usr/local/sbin/|g" "$unit" >"$work/memplugd.service"
	if out=$(systemd-analyze verify "$work/memplugd.service" 2>&1) && [ -z "$out" ]; then
		ktap_ok "systemd-analyze verify memplugd.service"
	else
		ktap_fail "systemd-analyze verify memplugd.service" "$out"
	fi
	if out=$(systemd-analyze security --offline=true --root="$dest" --threshold=30 "$unit" 2>&1); then
		ktap_ok "systemd-analyze security: $(grep -o 'Overall exposure level.*' <<<"$out" |
			tr -cd ' -~')"
	else
		ktap_fail "systemd-analyze security: exposure above 3.0" "$(tail -n 40 <<<"$out")"
	fi
else
	ktap_skip "systemd-analyze verify memplugd.service" "systemd-analyze not installed"
	ktap_skip "systemd-analyze security" "systemd-analyze not installed"
fi

ktap_done
