#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Tests of the guest side of the report channel, memplug-report
# (tools/memplug-report, docs/autosize.md), on this host: no VM. KTAP output.
# Run from anywhere:  tests/report/run.sh
#
#  1. cmocka unit tests of the parsers and the line format; the strict
#     reference parser of the protocol (protocol.py) against its own cases
#  2. one report from fake /proc and /sys trees (-r ROOT): memplug devices,
#     virtio_mem, none, a kernel without PSI, malformed and missing files;
#     each exact line, and what goes to stderr
#  3. the loop (stream.py): interval, SIGTERM, and an output that is not
#     there, has no reader, loses it or stops reading: never a spin, never
#     a block, one log line per condition
#  4. every line the agent wrote in 2 and 3 through protocol.py
#  5. static build, clang, cppcheck, valgrind; make install; the systemd
#     unit (systemd-analyze verify and security)
#
# The last line is "N passed, N failed, N skipped" (scripts/ktap.sh); exit 1
# on any failure. KEEP=1 keeps the work dir.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/tests/report
src=$top/tools/memplug-report
common=$top/tools/common # the report protocol, shared with memplugd
agent=$src/memplug-report
# shellcheck source=scripts/ktap.sh
. "$top/scripts/ktap.sh"

ktap_workdir memplug-report-test
lines=$work/all.lines # every line the agent wrote, for section 4
: >"$lines"

ktap_header

# ---------------------------------------------------------------------------
# Build

if ! make -s -C "$src" memplug-report test_report >"$work/build.log" 2>&1; then
	ktap_fail "build memplug-report and its unit tests" "$(tail -n 20 "$work/build.log")"
	ktap_done
	exit 1
fi
ktap_ok "build memplug-report and its unit tests (gcc, -std=gnu11 -Werror)"

# ---------------------------------------------------------------------------
# 1. Unit tests; the reference parser's own cases

ktap_cmocka "unit: " "$src/test_report" "$work/unit.tap"

out=$(python3 "$here/protocol.py" self-test 2>&1)
ktap_result $? "protocol.py accepts the valid lines and refuses each invalid one" "$out"

# ---------------------------------------------------------------------------
# 2. One report from a fake root

# fake_proc ROOT: /proc of a 4 GiB guest: PSI, meminfo, vmstat and zoneinfo
# with four zones, pagesets included (their "high:" is no watermark)
fake_proc() {
	local r=$1/proc
	mkdir -p "$r/pressure"
	printf '%s\n' "some avg10=1.23 avg60=0.50 avg300=0.10 total=123456" \
		"full avg10=0.45 avg60=0.20 avg300=0.00 total=6543" >"$r/pressure/memory"
	printf '%s\n' "MemTotal:        4011880 kB" "MemFree:         3500000 kB" \
		"MemAvailable:    3600000 kB" "Buffers:           12345 kB" \
		"HugePages_Total:       0" >"$r/meminfo"
	printf '%s\n' "nr_free_pages 875000" "pgpgin 100" "pswpin 12" "pswpout 34" \
		"pgfault 99" >"$r/vmstat"
	local z min high
	: >"$r/zoneinfo"
	for z in "DMA 21 31" "DMA32 2116 3660" "Normal 1000 1500" "Movable 0 0"; do
		read -r z min high <<<"$z"
		printf '%s\n' "Node 0, zone $(printf '%8s' "$z")" "  pages free     3840" \
			"        boost    0" "        min      $min" "        low      $((min + 5))" \
			"        high     $high" "        promo    $((high + 5))" \
			"        spanned  4095" "        protection: (0, 2911, 3855, 3855)" \
			"  pagesets" "    cpu: 0" "              count:    512" \
			"              high:     1444" "              batch:    63" \
			"              high_min: 1444" "  node_unreclaimable:  0" >>"$r/zoneinfo"
	done
}
# (high - min) of those zones: 10 + 1544 + 500 + 0 pages, above 8 MiB
give=$((3600000 * 1024 - 2054 * 4096))
proc_keys="psi_some=123 psi_full=45 total=4108165120 avail=3686400000 pswpin=12 pswpout=34"

# fake_dev ROOT N DRIVER [PLUGGED REQUESTED GROWTH UNPLUG]: virtioN, a
# virtio-mem device (or virtio-net for DRIVER virtio_net) bound to DRIVER
# ("" for none), with memplug's sysfs group if PLUGGED is given
fake_dev() {
	local root=$1/sys n=$2 drv=$3 dev id=0x0018
	dev=$root/devices/pci0000:00/0000:00:0$n.0/virtio$n
	[ "$drv" = virtio_net ] && id=0x0001
	mkdir -p "$dev" "$root/bus/virtio/devices"
	echo "$id" >"$dev/device"
	echo 0x1af4 >"$dev/vendor"
	ln -s "../../../devices/pci0000:00/0000:00:0$n.0/virtio$n" "$root/bus/virtio/devices/virtio$n"
	if [ -n "$drv" ]; then
		mkdir -p "$root/bus/virtio/drivers/$drv"
		ln -s "../../../../../bus/virtio/drivers/$drv" "$dev/driver"
		ln -s "../../../../devices/pci0000:00/0000:00:0$n.0/virtio$n" \
			"$root/bus/virtio/drivers/$drv/virtio$n"
	fi
	[ $# -ge 4 ] || return 0
	mkdir -p "$dev/memplug"
	echo "$4" >"$dev/memplug/plugged_size"
	echo "$5" >"$dev/memplug/requested_size"
	echo "$4" >"$dev/memplug/device_plugged_size"
	echo "$6" >"$dev/memplug/growth_guard"
	echo "$7" >"$dev/memplug/unplug_guard"
	echo bbm >"$dev/memplug/mode"
}
G=$((1 << 30))
growth_blocked="blocked: next unit needs 16384 KiB of unmovable memory, 8192 KiB free above watermarks, reserve 64 MiB"
unplug_blocked="blocked: unit 1 has 1048576 KiB in use, 524288 KiB available elsewhere, headroom 262144 KiB"

# report NAME ROOT WANT [STDERR_ERE...]: one report from ROOT is exactly
# WANT (its ms= replaced by ms=MS, after checking it against /proc/uptime);
# stderr is empty, or has one line matching each STDERR_ERE and no other.
report() {
	local name=$1 root=$2 want=$3 got ms up rc n
	shift 3
	timeout 10 "$agent" -r "$root" -o - -1 >"$work/out" 2>"$work/err"
	rc=$?
	up=$(cut -d' ' -f1 /proc/uptime | tr -d .)0
	cat "$work/out" >>"$lines"
	got=$(cat "$work/out")
	ms=$(sed -n 's/.* ms=\([0-9]*\).*/\1/p' <<<"$got")
	got=$(sed -E 's/ ms=[0-9]+( |$)/ ms=MS\1/' <<<"$got")
	if [ "$rc" != 0 ] || [ "$(wc -l <"$work/out")" != 1 ] || [ "$got" != "$want" ]; then
		ktap_fail "$name" "exit $rc" "want: $want" "got:  $got" "$(cat "$work/err")"
		return
	fi
	if [ -z "$ms" ] || [ $((ms - up)) -gt 2000 ] || [ $((up - ms)) -gt 2000 ]; then
		ktap_fail "$name" "ms=$ms is not CLOCK_BOOTTIME (uptime ${up} ms)"
		return
	fi
	n=0
	for re in "$@"; do
		if [ "$(grep -cE -- "$re" "$work/err")" != 1 ]; then
			ktap_fail "$name" "stderr has not one line matching: $re" "$(cat "$work/err")"
			return
		fi
		n=$((n + 1))
	done
	if [ "$(wc -l <"$work/err")" != "$n" ]; then
		ktap_fail "$name" "stderr: expected $n line(s)" "$(cat "$work/err")"
		return
	fi
	ktap_ok "$name"
}

M=memplug-report/1
r=$work/one
fake_proc "$r"
fake_dev "$r" 0 memplug $((2 * G)) $((2 * G)) ok ok
fake_dev "$r" 1 virtio_net
report "memplug device (plus a virtio-net one): every key" "$r" \
	"$M seq=0 ms=MS $proc_keys driver=memplug plugged=$((2 * G)) requested=$((2 * G)) growth=ok unplug=ok give=$give"

r=$work/two
fake_proc "$r"
fake_dev "$r" 0 memplug $((2 * G)) $((2 * G)) ok ok
fake_dev "$r" 3 memplug $G $((3 * G)) "$growth_blocked" ok
report "two memplug devices: sizes summed, one growth guard blocked is blocked" "$r" \
	"$M seq=0 ms=MS $proc_keys driver=memplug plugged=$((3 * G)) requested=$((5 * G)) growth=blocked unplug=ok give=$give"

r=$work/unplug-blocked
fake_proc "$r"
fake_dev "$r" 0 memplug $((2 * G)) $G ok "$unplug_blocked"
fake_dev "$r" 1 memplug 0 0 ok ok
report "unplug guard blocked: give=0" "$r" \
	"$M seq=0 ms=MS $proc_keys driver=memplug plugged=$((2 * G)) requested=$G growth=ok unplug=blocked give=0"

r=$work/virtio-mem
fake_proc "$r"
fake_dev "$r" 0 virtio_mem
fake_dev "$r" 1 virtio_net
report "device bound to virtio_mem: driver=virtio_mem, no memplug keys" "$r" \
	"$M seq=0 ms=MS $proc_keys driver=virtio_mem give=$give"

r=$work/none
fake_proc "$r"
fake_dev "$r" 1 virtio_net
report "no virtio-mem device: driver=none" "$r" "$M seq=0 ms=MS $proc_keys driver=none give=$give"

r=$work/unbound
fake_proc "$r"
fake_dev "$r" 0 ""
report "virtio-mem device no driver drives: driver=none" "$r" \
	"$M seq=0 ms=MS $proc_keys driver=none give=$give"

r=$work/mixed
fake_proc "$r"
fake_dev "$r" 0 memplug $G $G ok ok
fake_dev "$r" 1 virtio_mem
report "one device on memplug, one on virtio_mem: driver=mixed, no memplug keys" "$r" \
	"$M seq=0 ms=MS $proc_keys driver=mixed give=$give"

r=$work/no-psi
fake_proc "$r"
rm -r "$r/proc/pressure"
fake_dev "$r" 0 virtio_mem
report "kernel without PSI: no psi keys, one line on stderr" "$r" \
	"$M seq=0 ms=MS total=4108165120 avail=3686400000 pswpin=12 pswpout=34 driver=virtio_mem give=$give" \
	'^memplug-report: .*/proc/pressure/memory: No such file or directory; its keys are left out$'

r=$work/malformed-proc
fake_proc "$r"
sed -i 's/^some avg10=1.23/some avg10=1.2x/' "$r/proc/pressure/memory"
sed -i 's/^MemAvailable: .*/MemAvailable:    3515 MB/' "$r/proc/meminfo"
sed -i '/^pswpout/d' "$r/proc/vmstat"
fake_dev "$r" 0 virtio_mem
report "malformed psi some, MemAvailable in MB, no pswpout: those keys (and give) left out" "$r" \
	"$M seq=0 ms=MS psi_full=45 total=4108165120 pswpin=12 driver=virtio_mem" \
	'/proc/pressure/memory: not what the kernel writes; its keys are left out$' \
	'/proc/meminfo: not what the kernel writes' '/proc/vmstat: not what the kernel writes'

r=$work/malformed-zoneinfo
fake_proc "$r"
sed -i '0,/^        high /{/^        high /d}' "$r/proc/zoneinfo"
fake_dev "$r" 0 virtio_mem
report "a zone without its high watermark: no give" "$r" \
	"$M seq=0 ms=MS $proc_keys driver=virtio_mem" '/proc/zoneinfo: not what the kernel writes'

r=$work/malformed-sysfs
fake_proc "$r"
fake_dev "$r" 0 memplug $G $G ok ok
fake_dev "$r" 1 memplug -1 $G maybe ok
report "memplug attributes malformed (plugged_size -1, growth_guard 'maybe'): those keys left out" "$r" \
	"$M seq=0 ms=MS $proc_keys driver=memplug requested=$((2 * G)) unplug=ok give=$give" \
	'virtio1/memplug/plugged_size: not what the kernel writes'

r=$work/no-group
fake_proc "$r"
fake_dev "$r" 0 memplug
report "memplug device without its sysfs group: driver=memplug only" "$r" \
	"$M seq=0 ms=MS $proc_keys driver=memplug give=$give" \
	'virtio0/memplug/plugged_size: No such file or directory'

r=$work/overflow
fake_proc "$r"
fake_dev "$r" 0 memplug 18446744073709551615 0 ok ok
fake_dev "$r" 1 memplug 1 0 ok ok
sed -i 's/^MemTotal: .*/MemTotal: 18014398509481984 kB/' "$r/proc/meminfo"
report "sums and kB values beyond u64 are left out, not wrapped" "$r" \
	"$M seq=0 ms=MS psi_some=123 psi_full=45 avail=3686400000 pswpin=12 pswpout=34 driver=memplug requested=0 growth=ok unplug=ok give=$give" \
	'/proc/meminfo: not what the kernel writes'

mkdir -p "$work/empty"
report "an empty root: seq and ms only, each source named once on stderr" "$work/empty" \
	"$M seq=0 ms=MS" '/proc/pressure/memory: No such file' '/proc/meminfo: No such file' \
	'/proc/vmstat: No such file' '/proc/zoneinfo: No such file' \
	'/sys/bus/virtio/devices/: No such file'

# against this machine's own /proc and /sys: whatever it has, a valid line
timeout 10 "$agent" -o - -1 >"$work/out" 2>"$work/err"
rc=$?
cat "$work/out" >>"$lines"
if [ "$rc" = 0 ] && grep -Eq "^$M seq=0 ms=[0-9]+ .*total=[0-9]+ avail=[0-9]+ .*driver=[a-z_]+" "$work/out"; then
	ktap_ok "this host's /proc and /sys: a report with total, avail and driver"
else
	ktap_fail "this host's /proc and /sys: a report with total, avail and driver" \
		"exit $rc" "$(cat "$work/out" "$work/err")"
fi

# ---------------------------------------------------------------------------
# Options

# opt NAME RC STDERR_ERE ARGS...: one line on stderr, exit RC
opt() {
	local name=$1 want=$2 re=$3
	shift 3
	timeout 10 "$agent" "$@" >"$work/out" 2>"$work/err"
	local rc=$?
	if [ "$rc" = "$want" ] && [ "$(wc -l <"$work/err")" = 1 ] && grep -Eq -- "$re" "$work/err"; then
		ktap_ok "$name"
	else
		ktap_fail "$name" "exit $rc (want $want)" "$(cat "$work/err")"
	fi
}
for i in 99 60001 abc 1e3 -5 ""; do
	opt "-i '$i' is refused (100..60000)" 64 "^memplug-report: invalid interval '$i'" -i "$i"
done
opt "an unknown option: usage error" 64 '^memplug-report: unknown option -x' -x
opt "-o without a path: usage error" 64 '^memplug-report: option -o needs an argument' -o
opt "an argument: usage error" 64 "^memplug-report: unexpected argument 'foo'" foo
opt "-1 to a port that is not there: exit 1, one line, no file created" 1 \
	"^memplug-report: cannot open $work/noport: No such file or directory$" \
	-r "$work/one" -1 -o "$work/noport"
[ ! -e "$work/noport" ] || ktap_fail "the missing port was created as a file"
if "$agent" -h >"$work/out" 2>&1 && grep -q '^Usage: memplug-report \[-i MS\]' "$work/out" &&
	grep -q "memplug $("$top/scripts/dkms.sh" version)\." "$work/out"; then
	ktap_ok "-h: usage and the version of driver/dkms.conf"
else
	ktap_fail "-h: usage and the version of driver/dkms.conf" "$(cat "$work/out")"
fi
echo "an earlier line" >"$work/file.out"
if timeout 10 "$agent" -r "$work/one" -1 -o "$work/file.out" 2>"$work/err" &&
	[ ! -s "$work/err" ] && [ "$(head -n 1 "$work/file.out")" = "an earlier line" ] &&
	[ "$(sed -n '2s/ .*//p' "$work/file.out")" = "$M" ] && [ "$(wc -l <"$work/file.out")" = 2 ]; then
	ktap_ok "-o an existing file: the report is appended"
else
	ktap_fail "-o an existing file: the report is appended" "$(cat "$work/err" "$work/file.out")"
fi

# ---------------------------------------------------------------------------
# 3. The loop and its output, over time

python3 "$here/stream.py" "$agent" "$work/one" "$work/stream" "$lines" >"$work/stream.tap" 2>&1
ktap_include "stream: " $? "$work/stream.tap"

# ---------------------------------------------------------------------------
# 4. Every line written above, through the strict parser

n=$(wc -l <"$lines")
out=$(python3 "$here/protocol.py" check "$lines" 2>&1)
ktap_result $? "protocol.py: all $n lines the agent wrote are valid reports" "$out"

# ---------------------------------------------------------------------------
# 5. Builds, static checks, valgrind, install, the systemd unit

ver=$("$top/scripts/dkms.sh" version)
if make -s -C "$src" static >"$work/static.log" 2>&1 &&
	file "$src/memplug-report-static" | grep -q 'statically linked' &&
	"$src/memplug-report-static" -r "$work/one" -o - -1 | grep -q "^$M seq=0 .*driver=memplug"; then
	ktap_ok "static build (for the busybox initramfs) runs"
else
	ktap_fail "static build (for the busybox initramfs) runs" "$(tail -n 10 "$work/static.log")"
fi

ktap_clang "clang -Wall -Wextra -Werror" -std=gnu11 -I "$common" -DMEMPLUG_VERSION="\"$ver\"" \
	"$src"/*.c "$common"/*.c
ktap_cppcheck "cppcheck finds nothing" -I "$src" -I "$common" "$src" "$common"
ktap_clang_format "clang-format: tools/memplug-report, tests/report" \
	"$src"/*.[ch] "$common"/*.[ch] "$here"/*.c

# valgrind: a build of its own (ktap_vg_build)
if ktap_vg_build "$work/memplug-report-vg" -std=gnu11 -I "$common" \
	-DMEMPLUG_VERSION="\"$ver\"" "$src"/*.c "$common"/*.c; then
	vg="valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all"
	rc=0
	for r in one two malformed-proc malformed-sysfs empty; do
		$vg --log-file="$work/vg.log" "$work/memplug-report-vg" -r "$work/$r" -o - -1 \
			>/dev/null 2>&1
		[ "$?" = 99 ] || [ -s "$work/vg.log" ] && rc=1 && break
	done
	ktap_result $rc "valgrind: one report from each fake root" "$(head -n 30 "$work/vg.log")"
	# the loop with its output: a FIFO without reader, then one, then gone
	rm -f "$work/vg.fifo" && mkfifo "$work/vg.fifo"
	$vg --log-file="$work/vg-loop.log" "$work/memplug-report-vg" -r "$work/two" -i 100 \
		-o "$work/vg.fifo" 2>/dev/null &
	pid=$!
	sleep 1.5
	timeout 10 head -n 3 "$work/vg.fifo" >/dev/null
	sleep 1.2
	kill -TERM "$pid"
	wait "$pid"
	rc=$?
	if [ "$rc" = 0 ] && [ ! -s "$work/vg-loop.log" ]; then
		ktap_ok "valgrind: the loop (no reader, a reader, reader gone, SIGTERM)"
	else
		ktap_fail "valgrind: the loop (no reader, a reader, reader gone, SIGTERM)" \
			"exit $rc" "$(head -n 30 "$work/vg-loop.log")"
	fi
fi

# make install into a scratch tree, with the unit's ExecStart pointing at
# the installed binary so that systemd-analyze can check it
inst=$work/inst
if make -s -C "$src" install SBINDIR="$inst/sbin" UNITDIR="$inst/unit" \
	UDEVRULESDIR="$inst/udev" >"$work/install.log" 2>&1 &&
	[ "$(stat -c %a "$inst/sbin/memplug-report")" = 755 ] &&
	[ "$(stat -c %a "$inst/unit/memplug-report.service")" = 644 ] &&
	[ "$(stat -c %a "$inst/udev/60-memplug-report.rules")" = 644 ] &&
	grep -qx "ExecStart=$inst/sbin/memplug-report -o -" "$inst/unit/memplug-report.service"; then
	ktap_ok "make install: the program, the unit (ExecStart in SBINDIR), the udev rule"
else
	ktap_fail "make install: the program, the unit (ExecStart in SBINDIR), the udev rule" \
		"$(cat "$work/install.log")" "$(ls -lR "$inst" 2>&1)"
fi
unit=$inst/unit/memplug-report.service
if command -v systemd-analyze >/dev/null; then
	out=$(systemd-analyze verify "$unit" 2>&1)
	ktap_result $? "systemd-analyze verify memplug-report.service" "$out"
	out=$(systemd-analyze security --offline=yes --threshold=10 "$unit" 2>&1)
	level=$(sed -n 's/.*Overall exposure level for memplug-report.service: \([0-9.]*\).*/\1/p' <<<"$out")
	[ -n "$level" ] && [ "${level%.*}" = 0 ]
	ktap_result $? "systemd-analyze security: exposure below 1.0 (${level:-?})" \
		"$(grep -v '✓' <<<"$out" | head -n 20)"
else
	ktap_skip "systemd-analyze verify memplug-report.service" "no systemd-analyze"
	ktap_skip "systemd-analyze security" "no systemd-analyze"
fi
# what the unit cannot do without: the port as standard output, and the
# logs NOT there (StandardError would inherit it), a user of its own
bad=
for l in 'StandardOutput=file:/dev/virtio-ports/org.memplug.report.0' 'StandardError=journal' \
	'DynamicUser=yes' 'Restart=always' 'ConditionPathExists=/dev/virtio-ports/org.memplug.report.0' \
	'BindsTo=dev-virtio\x2dports-org.memplug.report.0.device'; do
	grep -qxF -- "$l" "$unit" || bad+="$l "
done
rule=$(grep -v '^#' "$src/60-memplug-report.rules")
grep -q 'SUBSYSTEM=="virtio-ports", ATTR{name}=="org.memplug.report.0",.*ENV{SYSTEMD_WANTS}+="memplug-report.service"' \
	<<<"$rule" || bad+="udev rule"
[ -z "$bad" ]
ktap_result $? "the unit writes the port and logs to the journal; udev starts it for the port" \
	"missing: $bad"

ktap_done
