#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Tests of the host tool memplugctl (tools/memplugctl), TAP version 13 output.
# Run from anywhere:  tests/tools/run.sh
#
#  1. cmocka unit tests of the size/argument helpers (folded into our count)
#  2. memplugctl against a real QEMU (TCG, -S: no guest needed) with two
#     virtio-mem devices, a pc-dimm and an unrelated PCI device
#  3. memplugctl against tests/tools/fake_qmp.py, a misbehaving QMP peer:
#     every case must end with a clear error (or success) within a bound
#  4. static checks: man page, clang build, cppcheck; valgrind runs
#
# The last line is "N passed, N failed, N skipped"; exit 1 on any failure.
# Environment: QEMU (default qemu-system-x86_64), KEEP=1 keeps the work dir.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/tests/tools
memplugctl=$top/tools/memplugctl/memplugctl
qemu=${QEMU:-qemu-system-x86_64}
# Every memplugctl run is bounded: a hang is a failure, not a stuck CI job.
bound=20

work=$(mktemp -d "${TMPDIR:-/tmp}/memplugctl-test.XXXXXX")
pids=()
qemu_pid=

cleanup() {
	local pid
	[ -n "$qemu_pid" ] && stop_qemu
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if [ "${KEEP:-0}" = 1 ]; then
		echo "# work dir kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

n=0 passed=0 failed=0 skipped=0

ok() {
	n=$((n + 1)) passed=$((passed + 1))
	echo "ok $n - $1"
}

not_ok() {
	n=$((n + 1)) failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	local line
	for line in "$@"; do
		echo "# $line"
	done
}

skip() {
	n=$((n + 1)) skipped=$((skipped + 1))
	echo "ok $n - $1 # SKIP $2"
}

# Print the captured output of the last run as TAP diagnostics.
dump_run() {
	echo "# exit status: $rc"
	sed -n '1,15s/^/#   stdout: /p' "$work/out"
	sed -n '1,15s/^/#   stderr: /p' "$work/err"
}

# run CMD...: run a command with a time bound; sets rc, out, err, elapsed_ms.
run() {
	local start end
	start=$(date +%s%N)
	timeout -k 2 "$bound" "$@" >"$work/out" 2>"$work/err" </dev/null
	rc=$?
	end=$(date +%s%N)
	elapsed_ms=$(((end - start) / 1000000))
	out=$(cat "$work/out")
	err=$(cat "$work/err")
}

# expect NAME RC STDOUT_ERE STDERR_ERE -- CMD...
# Passes when CMD exits with RC and stdout/stderr match the extended regexes
# ("" matches anything).  For a nonzero RC the error must be exactly one
# line "memplugctl: ...", as the tool promises.
expect() {
	local name=$1 want=$2 out_re=$3 err_re=$4
	shift 5
	run "$@"
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		not_ok "$name" "timed out after ${bound}s (hang)"
		dump_run
		return 1
	fi
	if [ "$rc" != "$want" ]; then
		not_ok "$name" "expected exit status $want"
		dump_run
		return 1
	fi
	if [ -n "$out_re" ] && ! grep -Eq -- "$out_re" "$work/out"; then
		not_ok "$name" "stdout does not match: $out_re"
		dump_run
		return 1
	fi
	if [ -n "$err_re" ] && ! grep -Eq -- "$err_re" "$work/err"; then
		not_ok "$name" "stderr does not match: $err_re"
		dump_run
		return 1
	fi
	if [ "$want" != 0 ] && [ "$want" != 2 ] &&
	   { [ "$(wc -l <"$work/err")" != 1 ] || ! grep -q '^memplugctl: ' "$work/err"; }; then
		not_ok "$name" "error is not one 'memplugctl: ' line"
		dump_run
		return 1
	fi
	ok "$name"
}

# json_field FIELD: FIELD of the single JSON object on stdout of the last run.
json_field() {
	python3 -c 'import json,sys; print(json.loads(sys.stdin.read())[sys.argv[1]])' "$1" \
		<<<"$out" 2>/dev/null
}

# Wait until a unix socket at $1 accepts connections (max ~10 s); give up
# early when the process $2 (if given) that should serve it has died.
wait_socket() {
	local i
	for i in $(seq 100); do
		[ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null && return 1
		python3 - "$1" 2>/dev/null <<-'PY' && return 0
		import socket, sys
		s = socket.socket(socket.AF_UNIX)
		s.connect(sys.argv[1])
		PY
		sleep 0.1
	done
	return 1
}

free_tcp_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

echo "TAP version 13"

# ---------------------------------------------------------------------------
# Build

if ! make -s -C "$top/tools/memplugctl" memplugctl test_size >"$work/build.log" 2>&1; then
	not_ok "build memplugctl and unit tests" "$(tail -n 20 "$work/build.log")"
	echo "1..$n"
	echo "$passed passed, $failed failed, $skipped skipped"
	exit 1
fi
ok "build memplugctl and unit tests (gcc, -Werror)"

# ---------------------------------------------------------------------------
# 1. cmocka unit tests, renumbered into our TAP stream

CMOCKA_MESSAGE_OUTPUT=TAP "$top/tools/memplugctl/test_size" >"$work/unit.tap" 2>&1
unit_rc=$?
unit_plan=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' "$work/unit.tap" | head -n1)
unit_seen=0
while IFS= read -r line; do
	case $line in
	"ok "*)
		unit_seen=$((unit_seen + 1))
		ok "unit: ${line#ok * - }" ;;
	"not ok "*)
		unit_seen=$((unit_seen + 1))
		not_ok "unit: ${line#not ok * - }" ;;
	"#"*) echo "$line" ;;
	esac
done <"$work/unit.tap"
if [ -z "$unit_plan" ] || [ "$unit_seen" != "$unit_plan" ] ||
   { [ "$unit_rc" != 0 ] && [ "$failed" = 0 ]; }; then
	not_ok "unit: test binary completed its plan" "plan ${unit_plan:-none}, saw $unit_seen, exit $unit_rc"
fi

# ---------------------------------------------------------------------------
# 2. Command line checks that need no QEMU

M=$memplugctl
unset MEMPLUG_QMP
expect "--version" 0 '^memplugctl [0-9]' '' -- $M --version
expect "--help lists the commands" 0 'resize SIZE' '' -- $M --help
expect "resize --help is per command" 0 'Usage: memplugctl .*resize SIZE' '' -- $M resize --help
expect "help watch" 0 'Usage: memplugctl .*watch' '' -- $M help watch
expect "no command: usage error" 64 '' '^memplugctl: no command' -- $M
expect "unknown command: usage error" 64 '' 'unknown command' -- $M frobnicate
expect "unknown option: usage error" 64 '' "unknown option '--frob'" -- $M --frob status
expect "--wait outside resize: usage error" 64 '' 'only valid for resize' -- $M -s x status --wait
expect "no socket given: usage error" 64 '' 'no QMP socket given' -- $M status
expect "resize without SIZE: usage error" 64 '' 'needs a SIZE' -- $M -s x resize
for bad in 4X "" 1.5G 4GB 0x10 " 4G" 99999999999999999999 16E abc; do
	expect "garbage size '$bad' rejected before connecting" 64 '' "invalid size" \
		-- $M -s /nonexistent resize "$bad"
done
expect "negative size rejected" 64 '' "invalid size '-1G': .*negative" -- $M -s x resize -1G
expect "negative size after -- rejected" 64 '' "negative" -- $M -s x resize -- -1G
expect "bad --timeout rejected" 64 '' 'invalid timeout' -- $M -s x resize 1G --wait --timeout -3
expect "bad --count rejected" 64 '' 'invalid count' -- $M -s x watch --count 0
expect "missing socket file" 1 '' 'cannot connect to QMP socket .*No such file' \
	-- $M -s "$work/nonexistent.sock" status
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$work/dead.sock"
expect "connection refused (unix)" 1 '' 'cannot connect .*Connection refused' \
	-- $M -s "$work/dead.sock" status
expect "connection refused (tcp)" 1 '' 'cannot connect to QMP at 127.0.0.1:[0-9]+: Connection refused' \
	-- $M -s "127.0.0.1:$(free_tcp_port)" status
expect "socket path too long" 1 '' 'too long' -- $M -s "/$(printf 'a%.0s' $(seq 200))" status
expect "invalid device id" 1 '' "invalid device id" -- $M -s x -d ../vmem0 status

# ---------------------------------------------------------------------------
# 3. Against a real QEMU

qmp_sock=$work/qmp.sock
tcp_port=$(free_tcp_port)

start_qemu() {
	"$qemu" -accel tcg -M q35 -nodefaults -nographic -S \
		-m 512M,slots=2,maxmem=16G \
		-object memory-backend-ram,id=m0,size=8G,reserve=off \
		-device virtio-mem-pci,id=vmem0,memdev=m0,block-size=2M,requested-size=0 \
		-object memory-backend-ram,id=m1,size=256M \
		-device pc-dimm,id=dimm0,memdev=m1 \
		-object memory-backend-ram,id=m2,size=4G,reserve=off \
		-device virtio-mem-pci,id=vmem1,memdev=m2,block-size=1G,requested-size=0 \
		-device pci-testdev,id=testdev0 \
		-qmp "unix:$qmp_sock,server=on,wait=off" \
		-qmp "tcp:127.0.0.1:$tcp_port,server=on,wait=off" \
		>"$work/qemu.log" 2>&1 &
	qemu_pid=$!
	wait_socket "$qmp_sock" "$qemu_pid"
}

stop_qemu() {
	local i
	# Ask politely over QMP, then insist.
	python3 - "$qmp_sock" >/dev/null 2>&1 <<-'PY'
	import socket, sys
	s = socket.socket(socket.AF_UNIX)
	s.settimeout(5)
	s.connect(sys.argv[1])
	f = s.makefile("rw")
	f.readline()
	f.write('{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n')
	f.flush()
	f.readline()
	PY
	for i in $(seq 50); do
		kill -0 "$qemu_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$qemu_pid" 2>/dev/null
	wait "$qemu_pid" 2>/dev/null
	qemu_pid=
}

if ! command -v "$qemu" >/dev/null; then
	skip "qemu: all tests" "$qemu not installed"
elif ! "$qemu" -device help 2>/dev/null | grep -q '"virtio-mem-pci"'; then
	skip "qemu: all tests" "$qemu lacks virtio-mem-pci"
elif ! start_qemu; then
	not_ok "start QEMU" "$(tail -n 20 "$work/qemu.log")"
else
	export MEMPLUG_QMP=$qmp_sock

	expect "qemu: status lists all virtio-mem devices" 0 '^vmem1:' '' -- $M status
	if grep -q '^vmem0:' "$work/out" && ! grep -q dimm0 "$work/out"; then
		ok "qemu: status shows vmem0 and not the pc-dimm"
	else
		not_ok "qemu: status shows vmem0 and not the pc-dimm"; dump_run
	fi
	expect "qemu: status human block size" 0 'block size: +2 MiB \(2097152\)' '' -- $M -d vmem0 status
	if grep -Eq 'max size: +8 GiB \(8589934592\)' "$work/out" &&
	   grep -Eq 'region: +0x[0-9a-f]+-0x[0-9a-f]+ \(8 GiB\)' "$work/out" &&
	   grep -Eq 'requested size: +0 B \(0\)' "$work/out" &&
	   grep -Eq 'plugged size: +0 B \(0\)' "$work/out" &&
	   grep -Eq 'memdev: +/objects/m0' "$work/out"; then
		ok "qemu: status human fields (region, max, requested, plugged, memdev)"
	else
		not_ok "qemu: status human fields (region, max, requested, plugged, memdev)"; dump_run
	fi
	expect "qemu: status --json" 0 '^\{' '' -- $M -d vmem0 status --json
	if [ "$(json_field id)" = vmem0 ] && [ "$(json_field block-size)" = 2097152 ] &&
	   [ "$(json_field max-size)" = 8589934592 ] && [ "$(json_field requested-size)" = 0 ] &&
	   [ "$(json_field size)" = 0 ] && [ "$(json_field memdev)" = /objects/m0 ] &&
	   [ "$(json_field memaddr)" -gt 0 ] 2>/dev/null; then
		ok "qemu: status --json fields"
	else
		not_ok "qemu: status --json fields"; dump_run
	fi
	expect "qemu: status --json without -d: one line per device" 0 '"id":"vmem1"' '' \
		-- $M status --json
	if [ "$(wc -l <"$work/out")" = 2 ]; then ok "qemu: status --json lists 2 devices"
	else not_ok "qemu: status --json lists 2 devices"; dump_run; fi
	expect "qemu: TCP host:port works" 0 '"block-size":1073741824' '' \
		-- $M -s "127.0.0.1:$tcp_port" -d vmem1 status --json
	expect "qemu: -s overrides MEMPLUG_QMP" 0 '^vmem0:' '' \
		-- env MEMPLUG_QMP=/nonexistent $M -s "$qmp_sock" -d vmem0 status

	expect "qemu: resize 1G accepted" 0 'vmem0: requested size 1 GiB' '' -- $M -d vmem0 resize 1G
	run $M -d vmem0 status --json
	if [ "$(json_field requested-size)" = 1073741824 ]; then ok "qemu: requested-size is now 1 GiB"
	else not_ok "qemu: requested-size is now 1 GiB"; dump_run; fi
	expect "qemu: resize 2048M (MiB units) accepted" 0 '' '' -- $M -d vmem0 resize 2048MiB
	run $M -d vmem0 status --json
	if [ "$(json_field requested-size)" = 2147483648 ]; then ok "qemu: requested-size is now 2 GiB"
	else not_ok "qemu: requested-size is now 2 GiB"; dump_run; fi

	expect "qemu: size not a multiple of the block size" 1 '' \
		'not a multiple of the block size 2 MiB' -- $M -d vmem0 resize 3M
	expect "qemu: 512M is not a multiple of vmem1's 1G blocks" 1 '' \
		'not a multiple of the block size 1 GiB of vmem1' -- $M -d vmem1 resize 512M
	expect "qemu: size above the region" 1 '' 'larger than the region of vmem0 \(max 8 GiB\)' \
		-- $M -d vmem0 resize 9G
	expect "qemu: one block above the region" 1 '' 'larger than the region' \
		-- $M -d vmem0 resize 8194M
	run $M -d vmem0 status --json
	if [ "$(json_field requested-size)" = 2147483648 ]; then
		ok "qemu: rejected resizes left requested-size unchanged"
	else
		not_ok "qemu: rejected resizes left requested-size unchanged"; dump_run
	fi
	expect "qemu: several devices and no -d" 1 '' 'virtio-mem devices \(vmem0, vmem1\): choose one with -d' \
		-- $M resize 1G
	expect "qemu: unknown device id" 1 '' "no device with id 'nope'" -- $M -d nope status
	expect "qemu: pc-dimm is not a virtio-mem device" 1 '' \
		"device 'dimm0' is not a virtio-mem device" -- $M -d dimm0 resize 1G
	expect "qemu: other device is not a virtio-mem device" 1 '' \
		"device 'testdev0' is not a virtio-mem device \(it is a pci-testdev\)" \
		-- $M -d testdev0 status
	expect "qemu: memory backend id is no device" 1 '' "no device with id 'm0'" -- $M -d m0 status

	expect "qemu: resize --wait times out (no guest) with exit 2" 2 '' \
		'timed out after 2.0 s: vmem0 has 0 B plugged, 4 GiB requested' \
		-- $M -d vmem0 resize 4G --wait --timeout 2
	if [ "$elapsed_ms" -ge 1900 ] && [ "$elapsed_ms" -lt 6000 ]; then
		ok "qemu: --timeout 2 honoured (${elapsed_ms} ms)"
	else
		not_ok "qemu: --timeout 2 honoured (${elapsed_ms} ms)"
	fi
	if [ "$(grep -c 'plugged 0 B of 4 GiB' "$work/err")" -le 4 ]; then
		ok "qemu: progress without a tty is at most a line per second"
	else
		not_ok "qemu: progress without a tty is at most a line per second"; dump_run
	fi
	expect "qemu: resize --wait to the plugged size returns at once" 0 '' '' \
		-- $M -d vmem1 resize 0 --wait --timeout 2
	expect "qemu: watch --timeout 1 exits 0" 0 '' '' -- $M -d vmem0 watch --timeout 1
	if [ -z "$out" ]; then ok "qemu: watch printed nothing (no guest, no change)"
	else not_ok "qemu: watch printed nothing (no guest, no change)"; dump_run; fi
	expect "qemu: watch --count 1 --timeout 1 exits 2" 2 '' 'timed out after 0 events' \
		-- $M watch --count 1 --timeout 0.5
	expect "qemu: watch of an unknown device fails early" 1 '' "no device with id 'x'" \
		-- $M -d x watch --timeout 5
	expect "qemu: resize back to 0" 0 'requested size 0 B' '' -- $M -d vmem0 resize 0
	run $M -d vmem0 status --json
	if [ "$(json_field requested-size)" = 0 ]; then ok "qemu: requested-size back to 0"
	else not_ok "qemu: requested-size back to 0"; dump_run; fi

	stop_qemu
	if [ -z "$qemu_pid" ]; then ok "qemu: stopped with quit"; else not_ok "qemu: stopped with quit"; fi
	expect "qemu: QEMU gone: connection refused" 1 '' 'cannot connect' -- $M status
	unset MEMPLUG_QMP
fi

# ---------------------------------------------------------------------------
# 4. Against the fake QMP server

# fake MODE NAME RC STDOUT_ERE STDERR_ERE -- memplugctl ARGS...
fake() {
	local mode=$1 sock=$work/fake-$1.sock pid
	shift
	python3 "$here/fake_qmp.py" "$mode" "$sock" 2>"$work/fake-$mode.log" &
	pid=$!
	pids+=("$pid")
	if ! wait_socket "$sock"; then
		not_ok "$1" "fake QMP server ($mode) did not start: $(cat "$work/fake-$mode.log")"
		return
	fi
	local name=$1 want=$2 o=$3 e=$4
	shift 5
	expect "fake $mode: $name" "$want" "$o" "$e" -- "$@" -s "$sock"
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

QT="--qmp-timeout 3"
fake silent "no greeting: times out" 1 '' 'no QMP greeting within 3000 ms' -- $M $QT status
fake close "peer closes at once" 1 '' 'greeting failed: QMP peer closed the connection' -- $M status
fake nonjson-greeting "non-JSON greeting" 1 '' 'greeting failed: .*invalid JSON' -- $M status
fake wrong-greeting "wrong greeting object" 1 '' 'did not send a \{"QMP"' -- $M status
fake greeting-array "greeting not an object" 1 '' 'greeting failed: .*not an object' -- $M status
fake oversized-greeting "8 MiB greeting" 1 '' 'reply too large' -- $M status
fake caps-error "qmp_capabilities error" 1 '' 'capabilities negotiation failed: Capabilities' \
	-- $M status
fake caps-garbage-error "malformed capabilities error" 1 '' 'capabilities negotiation failed' \
	-- $M status
fake truncated "truncated reply, then close" 1 '' 'closed the connection in the middle of a message' \
	-- $M status
fake oversized "8 MiB reply without newline" 1 '' 'reply too large' -- $M status
fake nonjson-reply "non-JSON reply" 1 '' 'invalid JSON' -- $M status
fake wrong-type "reply of the wrong type" 1 '' 'malformed reply to query-memory-devices' -- $M status
fake bad-field "virtio-mem field of the wrong type" 1 '' 'malformed virtio-mem entry' -- $M status
fake zero-block "block-size 0" 1 '' 'malformed virtio-mem entry' -- $M resize 2M
fake no-return "reply without return or error" 1 '' 'neither "return" nor "error"' -- $M status
fake stray-flood "endless replies with unknown ids" 1 '' 'too many QMP replies with unexpected ids' \
	-- $M status
fake escape "escape sequences in errors are defused" 1 '' 'evil \?\]0;pwned\? \?\[2J text' \
	-- $M status
fake huge-int "integer beyond 64 bits" 1 '' 'invalid JSON' -- $M status
fake good "well-behaved peer" 0 '^vmem0:' '' -- $M status
fake pretty "pretty-printed messages split over reads" 0 '"requested-size":0' '' \
	-- $M status --json
fake ooo "out-of-order/unknown ids and interleaved events" 0 'requested size 8 GiB' '' \
	-- $M resize 8G
fake dribble "replies written one byte at a time" 0 '"size":0' '' -- $M status --json
fake event-flood "5000 events before a reply" 0 '^vmem0:' '' -- $M status
fake plug "resize --wait reaches the size (exit 0)" 0 'requested size 4 GiB' \
	'plugged 4 GiB of 4 GiB requested \(100%' -- $M resize 4G --wait --timeout 15
fake ooo "resize --wait with junk between replies" 0 '' 'plugged 2 GiB of 2 GiB' \
	-- $M resize 2G --wait --timeout 15
fake lying-event "resize --wait trusts the size query, not events" 2 '' 'timed out after 1.0 s' \
	-- $M resize 2G --wait --timeout 1
fake good "dimm0 is not a virtio-mem device" 1 '' "'dimm0' is not a virtio-mem device" \
	-- $M -d dimm0 resize 2M

# watch needs a second client to cause the size changes.
sock=$work/fake-watch.sock
python3 "$here/fake_qmp.py" plug "$sock" 2>"$work/fake-watch.log" &
pids+=("$!")
if wait_socket "$sock"; then
	(sleep 0.5; "$M" -s "$sock" resize 2G >/dev/null 2>&1) &
	resizer=$!
	expect "fake plug: watch --count 2 prints the size changes" 0 \
		'^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z vmem0 size=1073741824 \(1 GiB\)$' '' \
		-- $M -s "$sock" watch --count 2 --timeout 10
	if grep -q 'size=2147483648 (2 GiB)' "$work/out" && [ "$(wc -l <"$work/out")" = 2 ]; then
		ok "fake plug: watch stopped after 2 events"
	else
		not_ok "fake plug: watch stopped after 2 events"; dump_run
	fi
	wait "$resizer"
	(sleep 0.5; "$M" -s "$sock" resize 0 >/dev/null 2>&1) &
	resizer=$!
	expect "fake plug: watch --json" 0 '^\{"timestamp":"[^"]+","id":"vmem0","size":1073741824,' '' \
		-- $M -s "$sock" -d vmem0 watch --json --count 2 --timeout 10
	wait "$resizer"
else
	not_ok "fake plug: watch" "fake server did not start"
fi

# On a terminal, --wait draws a progress bar (script(1) provides the pty).
sock=$work/fake-tty.sock
python3 "$here/fake_qmp.py" plug "$sock" 2>"$work/fake-tty.log" &
pids+=("$!")
if ! command -v script >/dev/null; then
	skip "fake plug: progress bar on a tty" "script(1) not installed"
elif wait_socket "$sock"; then
	run script -qec "$M -s $sock resize 3G --wait --timeout 15" /dev/null
	if [ "$rc" = 0 ] && grep -q $'\r''vmem0 \[#*\.*\] ' "$work/out" &&
	   grep -q 'vmem0 \[##############################\] 100%  3 GiB / 3 GiB' "$work/out"; then
		ok "fake plug: progress bar on a tty"
	else
		not_ok "fake plug: progress bar on a tty"; dump_run
	fi
else
	not_ok "fake plug: progress bar on a tty" "fake server did not start"
fi

# ---------------------------------------------------------------------------
# 5. Static checks and valgrind

man_warnings=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$top/docs/memplugctl.1" 2>&1)
if [ -f "$top/docs/memplugctl.1" ] && [ -z "$man_warnings" ]; then
	ok "man page renders without groff warnings"
else
	not_ok "man page renders without groff warnings" "$man_warnings"
fi
if command -v man >/dev/null && MANWIDTH=80 man -l "$top/docs/memplugctl.1" 2>&1 | grep -q 'resize'; then
	ok "man -l docs/memplugctl.1"
else
	not_ok "man -l docs/memplugctl.1"
fi

if command -v clang >/dev/null; then
	if clang_log=$(clang -Wall -Wextra -Werror -O2 -fsyntax-only \
			"$top"/tools/memplugctl/*.c 2>&1); then
		ok "clang -Wall -Wextra -Werror builds"
	else
		not_ok "clang -Wall -Wextra -Werror builds" "$clang_log"
	fi
else
	skip "clang -Wall -Wextra -Werror builds" "clang not installed"
fi

if command -v cppcheck >/dev/null; then
	if cpp_log=$(cppcheck -q --enable=warning,portability,performance --error-exitcode=1 \
			--inline-suppr -I "$top/tools/memplugctl" "$top/tools/memplugctl" 2>&1); then
		ok "cppcheck finds nothing"
	else
		not_ok "cppcheck finds nothing" "$cpp_log"
	fi
else
	skip "cppcheck finds nothing" "cppcheck not installed"
fi

# valgrind: no invalid accesses, no leaks, memory bounded by the 1 MiB message
# limit even when the peer sends 8 MiB.
vg() {
	local mode=$1 name=$2 sock=$work/vg-$1.sock pid
	shift 2
	python3 "$here/fake_qmp.py" "$mode" "$sock" 2>/dev/null &
	pid=$!
	pids+=("$pid")
	wait_socket "$sock"
	run valgrind -q --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
		--errors-for-leak-kinds=definite,indirect --log-file="$work/vg.log" \
		"$work/memplugctl-vg" -s "$sock" "$@"
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	if [ "$rc" = 99 ] || [ "$rc" = 124 ] || [ -s "$work/vg.log" ]; then
		not_ok "valgrind: $name" "exit $rc" "$(head -n 30 "$work/vg.log")"
	else
		ok "valgrind: $name"
	fi
}
# A build of its own: DWARF 4, which Debian 12's valgrind reads whatever
# compiler built the main binary.
if command -v valgrind >/dev/null &&
   cc -O1 -g -gdwarf-4 -o "$work/memplugctl-vg" "$top"/tools/memplugctl/*.c -ljansson \
	   2>"$work/vg-build.log"; then
	vg oversized "8 MiB reply" status
	vg ooo "resize --wait with junk and events" resize 4G --wait --timeout 15
	vg event-flood "event flood" status
	# Heap stays bounded: total allocated well under the 8 MiB sent.
	sock=$work/vg-heap.sock
	python3 "$here/fake_qmp.py" oversized "$sock" 2>/dev/null &
	pid=$!
	pids+=("$pid")
	wait_socket "$sock"
	run valgrind --log-file="$work/vg-heap.log" "$work/memplugctl-vg" -s "$sock" status
	kill "$pid" 2>/dev/null
	heap=$(sed -n 's/.* frees, \([0-9,]*\) bytes allocated.*/\1/p' "$work/vg-heap.log" | tr -d ,)
	if [ -n "$heap" ] && [ "$heap" -lt $((3 * 1024 * 1024)) ]; then
		ok "valgrind: 8 MiB reply costs $heap bytes of heap"
	else
		not_ok "valgrind: heap bounded for 8 MiB reply" "allocated: ${heap:-?}"
	fi
else
	skip "valgrind" "valgrind not installed (or the build for it failed)"
fi

echo "1..$n"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
