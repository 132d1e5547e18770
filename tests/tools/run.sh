#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# Tests of the host tool memplugctl (tools/memplugctl), KTAP output.
# Run from anywhere:  tests/tools/run.sh
#
#  1. cmocka unit tests of the size/argument helpers (folded into our count)
#  2. command line checks; memplugctl guest against fake sysfs trees
#  3. memplugctl against a real QEMU (TCG, -S: no guest needed) with two
#     virtio-mem devices, a pc-dimm and an unrelated PCI device
#  4. memplugctl against tests/tools/fake_qmp.py, a misbehaving QMP peer:
#     every case must end with a clear error (or success) within a bound
#  5. static checks: man page, clang build, cppcheck; valgrind runs
#
# The last line is "N passed, N failed, N skipped" (scripts/ktap.sh); exit 1
# on any failure.
# Environment: QEMU (default qemu-system-x86_64), KEEP=1 keeps the work dir,
# MEMPLUGCTL=PATH tests that binary instead of tools/memplugctl/memplugctl.
set -u

top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/tests/tools
# shellcheck source=scripts/ktap.sh
. "$top/scripts/ktap.sh"
# MEMPLUGCTL=PATH: check another build (e.g. an older one, to see which
# tests it fails); the suite still builds the tree's own for the rest.
memplugctl=${MEMPLUGCTL:-$top/tools/memplugctl/memplugctl}
qemu=${QEMU:-qemu-system-x86_64}
# Every memplugctl run is bounded: a hang is a failure, not a stuck CI job.
bound=20

pids=()
qemu_pid=

# at exit, before the work dir goes: QEMU and the fake peers
stop_peers() {
	local pid
	[ -n "$qemu_pid" ] && stop_qemu
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
}
ktap_workdir memplugctl-test stop_peers

# Print the captured output of the last run as KTAP diagnostics.
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
		ktap_fail "$name" "timed out after ${bound}s (hang)"
		dump_run
		return 1
	fi
	if [ "$rc" != "$want" ]; then
		ktap_fail "$name" "expected exit status $want"
		dump_run
		return 1
	fi
	if [ -n "$out_re" ] && ! grep -Eq -- "$out_re" "$work/out"; then
		ktap_fail "$name" "stdout does not match: $out_re"
		dump_run
		return 1
	fi
	if [ -n "$err_re" ] && ! grep -Eq -- "$err_re" "$work/err"; then
		ktap_fail "$name" "stderr does not match: $err_re"
		dump_run
		return 1
	fi
	if [ "$want" != 0 ] && [ "$want" != 2 ] &&
	   { [ "$(wc -l <"$work/err")" != 1 ] || ! grep -q '^memplugctl: ' "$work/err"; }; then
		ktap_fail "$name" "error is not one 'memplugctl: ' line"
		dump_run
		return 1
	fi
	ktap_ok "$name"
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

ktap_header

# ---------------------------------------------------------------------------
# Build

if ! make -s -C "$top/tools/memplugctl" memplugctl test_size >"$work/build.log" 2>&1; then
	ktap_fail "build memplugctl and unit tests" "$(tail -n 20 "$work/build.log")"
	ktap_done
	exit 1
fi
ktap_ok "build memplugctl and unit tests (gcc, -Werror)"

# ---------------------------------------------------------------------------
# 1. cmocka unit tests, renumbered into our KTAP stream

ktap_cmocka "unit: " "$top/tools/memplugctl/test_size" "$work/unit.tap"

# ---------------------------------------------------------------------------
# 2. Command line checks that need no QEMU

M=$memplugctl
unset MEMPLUG_QMP
# the one version of driver/dkms.conf, which the Makefile passes to the build
ver=$("$top/scripts/dkms.sh" version)
expect "--version is driver/dkms.conf's version" 0 "^memplugctl ${ver//./\\.}\$" '' -- $M --version
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
expect "hex size: says hexadecimal is not a size format" 64 '' \
	"invalid size '0x10': hexadecimal is not a size format" -- $M -s x resize 0x10
expect "negative size rejected" 64 '' "invalid size '-1G': .*negative" -- $M -s x resize -1G
expect "negative size after -- rejected" 64 '' "negative" -- $M -s x resize -- -1G
expect "bad --timeout rejected" 64 '' 'invalid timeout' -- $M -s x resize 1G --wait --timeout -3
expect "bad --count rejected" 64 '' 'invalid count' -- $M -s x watch --count 0
# libvirt's options (-c URI -D DOMAIN); -n is --count
expect "-n N is --count: bad count rejected" 64 '' 'invalid count' -- $M -s x watch -n 0
expect "-n N is --count: only for watch" 64 '' '--count is only valid for watch' -- $M -s x status -n 3
expect "-c is always the libvirt URI, a number too" 64 '' '-c URI needs -D DOMAIN' -- $M -c 3 status
expect "-c URI without -D: usage error" 64 '' '-c URI needs -D DOMAIN' -- $M -c qemu:///system status
expect "-s with -D: usage error" 64 '' '-s \(QMP\) and -c/-D \(libvirt\) exclude each other' \
	-- $M -s x -D vm1 status
expect "--config with QMP: usage error" 64 '' '--config needs libvirt' -- $M -s x resize 1G --config
expect "--config outside resize: usage error" 64 '' '--config is only valid for resize' \
	-- $M -D vm1 status --config
if "$M" -c x -D y status 2>&1 | grep -q 'built without libvirt support'; then
	ktap_skip "libvirt: no libvirtd at the URI: a clear error" "built without libvirt (libvirt-dev)"
else
	expect "libvirt: no libvirtd at the URI: a clear error" 1 '' \
		"^memplugctl: cannot connect to libvirt at qemu\+unix:///system\?socket=$work/none.sock: " \
		-- $M -c "qemu+unix:///system?socket=$work/none.sock" -D vm1 status
fi
expect "missing socket file" 1 '' 'cannot connect to QMP socket .*No such file' \
	-- $M -s "$work/nonexistent.sock" status
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$work/dead.sock"
expect "connection refused (unix): nothing listens" 1 '' \
	'cannot connect .*Connection refused \(nothing listens on it' -- $M -s "$work/dead.sock" status
: >"$work/regular-file"
expect "a regular file is not a socket (not 'Connection refused')" 1 '' \
	'cannot connect to QMP socket .*regular-file: not a socket \(it is a regular file' \
	-- $M -s "$work/regular-file" status
expect "a directory is not a socket" 1 '' 'not a socket \(it is a directory' -- $M -s "$work" status
expect "connection refused (tcp)" 1 '' 'cannot connect to QMP at 127.0.0.1:[0-9]+: Connection refused' \
	-- $M -s "127.0.0.1:$(free_tcp_port)" status
# malformed -s and -d are usage errors (64), as the man page says
expect "socket path too long: usage error" 64 '' 'invalid QMP socket address .*too long' \
	-- $M -s "/$(printf 'a%.0s' $(seq 200))" status
expect "malformed MEMPLUG_QMP: usage error naming it" 64 '' \
	"invalid QMP socket address 'tcp:nohost' \(from MEMPLUG_QMP\)" \
	-- env MEMPLUG_QMP=tcp:nohost $M status
expect "invalid device id: usage error" 64 '' "invalid device id '../vmem0'" \
	-- $M -s x -d ../vmem0 status
expect "invalid device id for guest: usage error" 64 '' "invalid device id" \
	-- $M -d 'virtio0;x' guest

# A failed allocation in qmp_connect() must not close fd 0 (stdin): the shim
# fails the 1 MiB receive buffer and reports any close() of fds 0-2.
if cc -Wall -Wextra -Werror -O2 -shared -fPIC -o "$work/failalloc.so" "$here/failalloc.c" \
		2>"$work/failalloc.log"; then
	expect "out of memory in qmp_connect: one error, fd 0 left open" 1 '' \
		'^memplugctl: out of memory$' \
		-- env FAILALLOC_MIN=1048576 LD_PRELOAD="$work/failalloc.so" $M -s "$work/x.sock" status
else
	ktap_fail "out of memory in qmp_connect: build the shim" "$(cat "$work/failalloc.log")"
fi

# ---------------------------------------------------------------------------
# 2b. memplugctl guest against fake sysfs trees (no QMP socket involved)

# fake_sysfs DIR: a guest's sysfs with virtio0 bound to memplug (BBM, 2 GiB
# plugged of 8 GiB, one attribute this memplugctl does not know), virtio1
# bound to virtio_net and virtio2 unbound.
fake_sysfs() {
	local root=$1 g c
	mkdir -p "$root"/bus/virtio/devices "$root"/bus/virtio/drivers/{memplug,virtio_net} \
		"$root"/devices/pci0000:00/{virtio0/memplug,virtio1,virtio2}
	for c in 0 1 2; do
		ln -s "../../../devices/pci0000:00/virtio$c" "$root/bus/virtio/devices/virtio$c"
	done
	ln -s ../../../../bus/virtio/drivers/memplug "$root/devices/pci0000:00/virtio0/driver"
	ln -s ../../../../bus/virtio/drivers/virtio_net "$root/devices/pci0000:00/virtio1/driver"
	g=$root/devices/pci0000:00/virtio0/memplug
	echo bbm >"$g/mode"
	echo 1073741824 >"$g/device_block_size"
	echo 134217728 >"$g/memory_block_size"
	echo 1073741824 >"$g/sub_block_size"
	echo 1073741824 >"$g/unit_size"
	echo 4294967296 >"$g/region_addr"
	echo 8589934592 >"$g/region_size"
	echo 8589934592 >"$g/usable_region_size"
	echo 8 >"$g/units"
	echo 0 >"$g/node"
	echo 2147483648 >"$g/requested_size"
	echo 2147483648 >"$g/plugged_size"
	echo 2147483648 >"$g/device_plugged_size"
	echo 2 >"$g/sub_blocks_plugged"
	echo 0 >"$g/sub_blocks_held"
	echo 2 >"$g/units_added"
	echo "not_added 6 offline 0 online_movable 2 online_kernel 0 busy 0" >"$g/unit_states"
	for c in plug_requests unplug_requests unplug_all_requests state_requests acks nacks \
		busy_answers error_answers bad_answers add_failures remove_failures \
		contig_failures fast_unplugs taken_pages growth_guard_refusals growth_guard_last_blocked_ms; do
		echo 0 >"$g/$c"
	done
	echo 2 >"$g/plug_requests"
	echo 2 >"$g/acks"
	echo 5 >"$g/retries"
	echo 0 >"$g/memmap_on_memory"
	# the unplug guard holds back an unplug, the growth guard never refused
	echo ok >"$g/growth_guard"
	echo 8589934592 >"$g/growth_limit_bytes"
	echo "blocked: unit 1 has 1048576 KiB in use, 524288 KiB available elsewhere, headroom 262144 KiB" \
		>"$g/unplug_guard"
	echo 3 >"$g/no_room"
	echo 83456 >"$g/unplug_guard_last_blocked_ms"
	echo 7 >"$g/future_counter"
	echo 1048576 >"$g/future_thing_size"
}

# json_check PY_EXPR: true if the expression over d (the one JSON object on
# stdout of the last run) holds.
json_check() {
	python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); sys.exit(0 if eval("(" + sys.argv[1] + ")") else 1)' \
		"$1" <<<"$out" 2>/dev/null
}

fs=$work/sysfs
fake_sysfs "$fs"
G="$M guest --sysfs-root"
expect "guest: human output" 0 'plugged size: +2 GiB \(2147483648\)$' '' -- $G "$fs"
if grep -q '^virtio0 (memplug):$' "$work/out" &&
   grep -Eq '^  mode: +bbm \(big block mode\)$' "$work/out" &&
   grep -Eq '^  device block size: +1 GiB \(1073741824\)$' "$work/out" &&
   grep -Eq '^  region: +0x100000000-0x2ffffffff \(8 GiB\)$' "$work/out" &&
   grep -Eq '^  requested size: +2 GiB \(2147483648\)$' "$work/out" &&
   grep -Eq '^  unit states: +not_added 6, offline 0, online_movable 2, online_kernel 0, busy 0$' "$work/out" &&
   grep -Eq '^    plug requests: +2$' "$work/out" &&
   grep -Eq '^    fast unplugs: +0$' "$work/out"; then
	ktap_ok "guest: human fields (mode, block size, region, sizes, unit states, counters)"
else
	ktap_fail "guest: human fields (mode, block size, region, sizes, unit states, counters)"; dump_run
fi
# the guards in their own section, before the counters, times readable
if [ "$(grep -nE '^  (guards|counters):$' "$work/out" | cut -d: -f2 | tr '\n' ' ')" = \
	"  guards   counters " ] &&
   grep -Eq '^    growth guard: +ok$' "$work/out" &&
   grep -Eq '^    growth limit: +8 GiB \(8589934592\)$' "$work/out" &&
   grep -Eq '^    growth last blocked: +never$' "$work/out" &&
   grep -Eq '^    unplug guard: +blocked: unit 1 has 1048576 KiB in use, 524288 KiB available elsewhere, headroom 262144 KiB$' "$work/out" &&
   grep -Eq '^    unplug refusals: +3$' "$work/out" &&
   grep -Eq '^    unplug last blocked: +83\.456 s after boot$' "$work/out" &&
   grep -Eq '^    retries: +5$' "$work/out" &&
   ! grep -Eq '^    (no_room|unplug_guard|growth_guard|growth_limit|memmap_on)[a-z_]*:' "$work/out"; then
	ktap_ok "guest: guard states with reasons, refusals, last blocked time; retries"
else
	ktap_fail "guest: guard states with reasons, refusals, last blocked time; retries"; dump_run
fi
if grep -Eq '^    future_counter: +7$' "$work/out" &&
   grep -Eq '^    future_thing_size: +1 MiB \(1048576\)$' "$work/out"; then
	ktap_ok "guest: unknown attributes are shown under their own names"
else
	ktap_fail "guest: unknown attributes are shown under their own names"; dump_run
fi
if ! grep -q 'virtio[12]' "$work/out" && [ "$(grep -c '^virtio' "$work/out")" = 1 ]; then
	ktap_ok "guest: devices of other drivers and unbound ones are not listed"
else
	ktap_fail "guest: devices of other drivers and unbound ones are not listed"; dump_run
fi
expect "guest: --json" 0 '^\{"device":"virtio0","driver":"memplug",' '' -- $G "$fs" --json
if [ "$(wc -l <"$work/out")" = 1 ] &&
   json_check 'd["mode"] == "bbm" and d["plugged_size"] == 2147483648 and
	d["requested_size"] == 2147483648 and d["region_addr"] == 4294967296 and
	d["node"] == 0 and d["units"] == 8 and d["acks"] == 2 and
	d["unit_states"] == {"not_added": 6, "offline": 0, "online_movable": 2,
			     "online_kernel": 0, "busy": 0} and
	d["future_counter"] == 7 and d["future_thing_size"] == 1048576 and
	d["unplug_guard"].startswith("blocked: unit 1 has 1048576 KiB in use") and
	d["growth_guard"] == "ok" and d["no_room"] == 3 and d["retries"] == 5 and
	d["unplug_guard_last_blocked_ms"] == 83456 and
	d["growth_guard_last_blocked_ms"] == 0 and
	"problems" not in d and
	d["attributes"] == {k: v for k, v in d.items() if k not in ("device", "driver", "attributes")}'; then
	ktap_ok "guest: --json has numbers as numbers, unit_states as an object, unknown attributes"
else
	ktap_fail "guest: --json has numbers as numbers, unit_states as an object, unknown attributes"
	dump_run
fi
# Attributes named like the object's own members, and beyond INT64_MAX.
fs=$work/sysfs-names
fake_sysfs "$fs"
gdir=$fs/devices/pci0000:00/virtio0/memplug
echo virtio9 >"$gdir/device"
echo virtio_mem >"$gdir/driver"
echo 5 >"$gdir/problems"
echo 6 >"$gdir/attributes"
echo 18446744073709551615 >"$gdir/acks"
echo "not_added 18446744073709551615 offline 0" >"$gdir/unit_states"
echo 9223372036854775808 >"$gdir/future_big"
expect "guest --json: attributes named device, driver, problems, attributes" 0 '^\{' '' \
	-- $G "$fs" --json
if json_check 'd["device"] == "virtio0" and d["driver"] == "memplug" and
	"problems" not in d and isinstance(d["attributes"], dict) and
	d["attributes"]["device"] == "virtio9" and d["attributes"]["driver"] == "virtio_mem" and
	d["attributes"]["problems"] == 5 and d["attributes"]["attributes"] == 6 and
	d["attributes"]["plugged_size"] == d["plugged_size"] == 2147483648'; then
	ktap_ok "guest --json: no attribute overwrites device, driver or problems (all in attributes)"
else
	ktap_fail "guest --json: no attribute overwrites device, driver or problems (all in attributes)"
	dump_run
fi
if json_check 'd["acks"] == d["attributes"]["acks"] == 18446744073709551615 and
	d["future_big"] == 9223372036854775808 and
	d["unit_states"]["not_added"] == 18446744073709551615' &&
   grep -q '"acks":18446744073709551615,' "$work/out"; then
	ktap_ok "guest --json: values above INT64_MAX are unsigned numbers, not strings"
else
	ktap_fail "guest --json: values above INT64_MAX are unsigned numbers, not strings"; dump_run
fi
echo 12x >"$gdir/units"
expect "guest --json: a broken attribute next to one named problems" 1 '^\{' \
	'memplug/units: not an unsigned' -- $G "$fs" --json
if json_check 'd["attributes"]["units"] is None and d["attributes"]["problems"] == 5 and
	d["problems"] == {"units": "not an unsigned number: '"'12x'"'"}'; then
	ktap_ok "guest --json: problems stays the object of problems"
else
	ktap_fail "guest --json: problems stays the object of problems"; dump_run
fi
fs=$work/sysfs

expect "guest: -d virtio0" 0 '^virtio0 \(memplug\):' '' -- $M -d virtio0 guest --sysfs-root "$fs"
expect "guest: -d of a device of another driver" 1 '' \
	'^memplugctl: virtio1 is not a virtio device bound to memplug$' \
	-- $M -d virtio1 guest --sysfs-root "$fs"
expect "guest: needs no QMP socket even with MEMPLUG_QMP set" 0 '^virtio0' '' \
	-- env MEMPLUG_QMP=/nonexistent $G "$fs"
expect "guest: --sysfs-root only for guest" 64 '' 'only valid for guest' \
	-- $M -s x status --sysfs-root "$fs"
expect "guest --help" 0 'Usage: memplugctl .*guest' '' -- $M guest --help
expect "guest: no sysfs at all" 1 '' 'cannot list .*/nonexistent/bus/virtio/devices: No such file' \
	-- $G "$work/nonexistent"

fs=$work/sysfs-nodev
fake_sysfs "$fs"
rm "$fs/devices/pci0000:00/virtio0/driver"
expect "guest: no device bound to memplug" 1 '' '^memplugctl: no virtio device is bound to memplug$' \
	-- $G "$fs"
if [ -z "$out" ]; then ktap_ok "guest: nothing on stdout without a device"
else ktap_fail "guest: nothing on stdout without a device"; dump_run; fi
expect "guest: no device, --json" 1 '' 'no virtio device is bound to memplug' -- $G "$fs" --json
rmdir "$fs/bus/virtio/drivers/memplug"
expect "guest: memplug not loaded" 1 '' 'memplug is not loaded' -- $G "$fs"
mkdir "$fs/bus/virtio/drivers/virtio_mem"
ln -s ../../../../bus/virtio/drivers/virtio_mem "$fs/devices/pci0000:00/virtio0/driver"
expect "guest: device bound to virtio_mem is named" 1 '' \
	'no virtio device is bound to memplug \(virtio0 is bound to virtio_mem\)' -- $G "$fs"

# Broken attributes: one message each on stderr, the rest still printed, exit 1.
fs=$work/sysfs-bad
fake_sysfs "$fs"
gdir=$fs/devices/pci0000:00/virtio0/memplug
echo 12x >"$gdir/plugged_size"
expect "guest: garbage attribute" 1 'requested size: +2 GiB' \
	"^memplugctl: virtio0: memplug/plugged_size: not an unsigned number: '12x'$" -- $G "$fs"
if grep -Eq "^  plugged size: +\? \(not an unsigned number: '12x'\)$" "$work/out"; then
	ktap_ok "guest: garbage attribute shown as ? with the reason"
else
	ktap_fail "guest: garbage attribute shown as ? with the reason"; dump_run
fi
expect "guest: garbage attribute, --json" 1 '^\{' 'plugged_size: not an unsigned number' \
	-- $G "$fs" --json
if json_check 'd["plugged_size"] is None and "12x" in d["problems"]["plugged_size"] and
	d["requested_size"] == 2147483648'; then
	ktap_ok "guest: --json gives null and a problems entry for it"
else
	ktap_fail "guest: --json gives null and a problems entry for it"; dump_run
fi
echo 2147483648 >"$gdir/plugged_size"
echo "not_added six" >"$gdir/unit_states"
expect "guest: malformed unit_states" 1 '' "unit_states: not a list of 'state count' pairs" \
	-- $G "$fs"
echo "not_added 6 offline 0 online_movable 2 online_kernel 0 busy 0" >"$gdir/unit_states"
printf '\033]0;pwned\007 7\n' >"$gdir/units"
expect "guest: escape sequences in a value are defused" 1 '' 'not an unsigned number: .\?\]0;pwned\? 7' \
	-- $G "$fs"
echo 8 >"$gdir/units"
rm "$gdir/units_added"
ln -s /proc/self/mem "$gdir/units_added"	# open works, read fails with EIO
expect "guest: unreadable attribute (read error)" 1 'plugged size: +2 GiB' \
	'^memplugctl: virtio0: memplug/units_added: cannot read: Input/output error$' -- $G "$fs"
rm "$gdir/units_added"
ln -s "$work/nonexistent" "$gdir/units_added"
expect "guest: unreadable attribute (dangling link)" 1 '' \
	'units_added: cannot open: No such file or directory' -- $G "$fs"
rm "$gdir/units_added"
mkfifo "$gdir/units_added"
expect "guest: a FIFO does not hang it" 1 '' 'units_added: not a regular file' -- $G "$fs"
rm "$gdir/units_added"
head -c 5000 /dev/zero | tr '\0' 7 >"$gdir/units_added"
expect "guest: over-long value" 1 '' 'units_added: longer than 4095 bytes' -- $G "$fs"

# The static build the test bed puts in the guest's initramfs.
if ! compgen -G '/usr/lib*/libjansson.a' >/dev/null && ! compgen -G '/usr/lib/*/libjansson.a' >/dev/null; then
	ktap_skip "guest: static build" "no libjansson.a (libjansson-dev)"
elif make -s -C "$top/tools/memplugctl" static >"$work/static.log" 2>&1; then
	if LC_ALL=C file "$top/tools/memplugctl/memplugctl-static" | grep -q 'statically linked'; then
		ktap_ok "guest: make static builds a static binary"
	else
		ktap_fail "guest: make static builds a static binary" "$(file "$top/tools/memplugctl/memplugctl-static")"
	fi
	expect "guest: the static binary works" 0 '"plugged_size":2147483648' '' \
		-- "$top/tools/memplugctl/memplugctl-static" guest --sysfs-root "$work/sysfs" --json
	expect "the static binary (built without libvirt): -c says so" 1 '' \
		'^memplugctl: built without libvirt support' \
		-- "$top/tools/memplugctl/memplugctl-static" -c qemu:///system -D vm1 status
else
	ktap_fail "guest: make static builds a static binary" "$(tail -n 20 "$work/static.log")"
fi

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
	ktap_skip "qemu: all tests" "$qemu not installed"
elif ! "$qemu" -device help 2>/dev/null | grep -q '"virtio-mem-pci"'; then
	ktap_skip "qemu: all tests" "$qemu lacks virtio-mem-pci"
elif ! start_qemu; then
	ktap_fail "start QEMU" "$(tail -n 20 "$work/qemu.log")"
else
	export MEMPLUG_QMP=$qmp_sock

	expect "qemu: status lists all virtio-mem devices" 0 '^vmem1:' '' -- $M status
	if grep -q '^vmem0:' "$work/out" && ! grep -q dimm0 "$work/out"; then
		ktap_ok "qemu: status shows vmem0 and not the pc-dimm"
	else
		ktap_fail "qemu: status shows vmem0 and not the pc-dimm"; dump_run
	fi
	expect "qemu: status human block size" 0 'block size: +2 MiB \(2097152\)' '' -- $M -d vmem0 status
	if grep -Eq 'max size: +8 GiB \(8589934592\)' "$work/out" &&
	   grep -Eq 'region: +0x[0-9a-f]+-0x[0-9a-f]+ \(8 GiB\)' "$work/out" &&
	   grep -Eq 'requested size: +0 B \(0\)' "$work/out" &&
	   grep -Eq 'plugged size: +0 B \(0\)' "$work/out" &&
	   grep -Eq 'memdev: +/objects/m0' "$work/out"; then
		ktap_ok "qemu: status human fields (region, max, requested, plugged, memdev)"
	else
		ktap_fail "qemu: status human fields (region, max, requested, plugged, memdev)"; dump_run
	fi
	expect "qemu: status --json" 0 '^\{' '' -- $M -d vmem0 status --json
	if [ "$(json_field id)" = vmem0 ] && [ "$(json_field block-size)" = 2097152 ] &&
	   [ "$(json_field max-size)" = 8589934592 ] && [ "$(json_field requested-size)" = 0 ] &&
	   [ "$(json_field size)" = 0 ] && [ "$(json_field memdev)" = /objects/m0 ] &&
	   [ "$(json_field memaddr)" -gt 0 ] 2>/dev/null; then
		ktap_ok "qemu: status --json fields"
	else
		ktap_fail "qemu: status --json fields"; dump_run
	fi
	expect "qemu: status --json without -d: one line per device" 0 '"id":"vmem1"' '' \
		-- $M status --json
	if [ "$(wc -l <"$work/out")" = 2 ]; then ktap_ok "qemu: status --json lists 2 devices"
	else ktap_fail "qemu: status --json lists 2 devices"; dump_run; fi
	expect "qemu: TCP host:port works" 0 '"block-size":1073741824' '' \
		-- $M -s "127.0.0.1:$tcp_port" -d vmem1 status --json
	expect "qemu: -s overrides MEMPLUG_QMP" 0 '^vmem0:' '' \
		-- env MEMPLUG_QMP=/nonexistent $M -s "$qmp_sock" -d vmem0 status

	expect "qemu: status of a VM started with -S: not running, no driver" 0 \
		'^  vm: +not running \(prelaunch\)$' '' -- $M -d vmem0 status
	if grep -Eq '^  driver: +none \(no guest driver has set the device up\)$' "$work/out" &&
	   grep -Eq '^  warning: +the VM is not running \(prelaunch\)' "$work/out"; then
		ktap_ok "qemu: status says no driver and warns of the stopped VM"
	else
		ktap_fail "qemu: status says no driver and warns of the stopped VM"; dump_run
	fi
	expect "qemu: resize 1G accepted" 0 'vmem0: requested size 1 GiB' \
		'note: the VM is not running \(prelaunch\)' -- $M -d vmem0 resize 1G
	expect "qemu: status --json: warnings vm-paused and no-driver" 0 \
		'"vm-status":"prelaunch","vm-running":false,"driver":"none","warnings":\["vm-paused","no-driver"\]' \
		'' -- $M -d vmem0 status --json
	run $M -d vmem0 status --json
	if [ "$(json_field requested-size)" = 1073741824 ]; then ktap_ok "qemu: requested-size is now 1 GiB"
	else ktap_fail "qemu: requested-size is now 1 GiB"; dump_run; fi
	expect "qemu: resize 2048M (MiB units) accepted" 0 '' '' -- $M -d vmem0 resize 2048MiB
	run $M -d vmem0 status --json
	if [ "$(json_field requested-size)" = 2147483648 ]; then ktap_ok "qemu: requested-size is now 2 GiB"
	else ktap_fail "qemu: requested-size is now 2 GiB"; dump_run; fi

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
		ktap_ok "qemu: rejected resizes left requested-size unchanged"
	else
		ktap_fail "qemu: rejected resizes left requested-size unchanged"; dump_run
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
		ktap_ok "qemu: --timeout 2 honoured (${elapsed_ms} ms)"
	else
		ktap_fail "qemu: --timeout 2 honoured (${elapsed_ms} ms)"
	fi
	if [ "$(grep -c 'plugged 0 B of 4 GiB' "$work/err")" -le 4 ]; then
		ktap_ok "qemu: progress without a tty is at most a line per second"
	else
		ktap_fail "qemu: progress without a tty is at most a line per second"; dump_run
	fi
	expect "qemu: resize --wait to the plugged size returns at once" 0 '' '' \
		-- $M -d vmem1 resize 0 --wait --timeout 2
	expect "qemu: watch --timeout 1 exits 0" 0 '' '' -- $M -d vmem0 watch --timeout 1
	if [ -z "$out" ]; then ktap_ok "qemu: watch printed nothing (no guest, no change)"
	else ktap_fail "qemu: watch printed nothing (no guest, no change)"; dump_run; fi
	expect "qemu: watch --count 1 --timeout 1 exits 2" 2 '' 'timed out after 0 events' \
		-- $M watch --count 1 --timeout 0.5
	expect "qemu: watch of an unknown device fails early" 1 '' "no device with id 'x'" \
		-- $M -d x watch --timeout 5
	expect "qemu: resize back to 0" 0 'requested size 0 B' '' -- $M -d vmem0 resize 0
	run $M -d vmem0 status --json
	if [ "$(json_field requested-size)" = 0 ]; then ktap_ok "qemu: requested-size back to 0"
	else ktap_fail "qemu: requested-size back to 0"; dump_run; fi

	# Another client (as libvirt would) holds the monitor: QEMU accepts the
	# connection into its backlog but sends no greeting.
	rm -f "$work/holding"
	python3 - "$qmp_sock" "$work/holding" <<-'PY' &
	import socket, sys, time
	s = socket.socket(socket.AF_UNIX)
	s.connect(sys.argv[1])
	s.recv(4096)
	open(sys.argv[2], "w").close()
	time.sleep(8)
	PY
	holder=$!
	for i in $(seq 100); do
		[ -e "$work/holding" ] && break
		sleep 0.1
	done
	expect "qemu: monitor held by another client: the hint says so" 1 '' \
		'no QMP greeting within 1000 ms: another client probably holds the monitor' \
		-- $M --qmp-timeout 1 status
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	sleep 0.2

	stop_qemu
	if [ -z "$qemu_pid" ]; then ktap_ok "qemu: stopped with quit"; else ktap_fail "qemu: stopped with quit"; fi
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
		ktap_fail "$1" "fake QMP server ($mode) did not start: $(cat "$work/fake-$mode.log")"
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
if grep -q 'another client probably holds the monitor' "$work/err" &&
   grep -q 'or this is not a QMP socket' "$work/err"; then
	ktap_ok "fake silent: the hint names a client holding the monitor, then a wrong socket"
else
	ktap_fail "fake silent: the hint names a client holding the monitor, then a wrong socket"
	dump_run
fi
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

# Every wait has a deadline, whatever the peer sends: a flood of events, a
# drip of bytes, a reply that never ends.  took NAME MAX_MS checks the time
# of the last run.
took() {
	if [ "$elapsed_ms" -lt "$2" ]; then
		ktap_ok "$1 (${elapsed_ms} ms)"
	else
		ktap_fail "$1 (${elapsed_ms} ms, limit $2 ms)"
	fi
}
fake event-storm "events without end and no reply: given up after 10000 events" 1 '' \
	'event storm: more than 10000 events and no reply to query-memory-devices' \
	-- $M --qmp-timeout 2 status
took "fake event-storm: status gave up within the 2 s QMP timeout" 4500
fake event-storm-later "events without end: watch --timeout 2 stops" 0 '' '' \
	-- $M watch --timeout 2
took "fake event-storm-later: watch stopped after its 2 s" 4500
fake event-storm-later "events without end: watch --count 1 --timeout 2 exits 2" 2 '' \
	'timed out after 0 events' -- $M watch --count 1 --timeout 2
took "fake event-storm-later: watch --count stopped after its 2 s" 4500
fake slow-drip "a byte every 50 ms, never a message: --qmp-timeout 2 holds" 1 '' \
	'timed out waiting for the reply to query-memory-devices' -- $M --qmp-timeout 2 status
took "fake slow-drip: status gave up after the 2 s QMP timeout" 4500
fake endless-lines "a reply in 3-byte lines that never ends: --qmp-timeout 2 holds" 1 '' \
	'timed out waiting for the reply|reply too large' -- $M --qmp-timeout 2 status
took "fake endless-lines: status gave up after the 2 s QMP timeout" 4500

# Linear framing and bounded memory, measured on the client alone (peak RSS
# and CPU time; wall time is mostly the peer writing 3 bytes at a time).
RUSAGE=(python3 -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%d %d\n" % (r.ru_maxrss, (r.ru_utime + r.ru_stime) * 1000))
sys.exit(rc)' "$work/usage")
# usage NAME MAX_CPU_MS MAX_RSS_KB: the last run through RUSAGE stayed within both
usage() {
	local rss=0 cpu=0
	read -r rss cpu <"$work/usage" 2>/dev/null
	if [ "$cpu" -lt "$2" ] && [ "$rss" -lt "$3" ] && [ "$rss" -gt 0 ]; then
		ktap_ok "$1 (${cpu} ms CPU, ${rss} KiB peak RSS)"
	else
		ktap_fail "$1 (${cpu} ms CPU, limit $2; ${rss} KiB peak RSS, limit $3)"
	fi
}
: >"$work/usage"
fake huge-lines "a 900 KB reply in 3-byte lines" 0 '^vmem0:' '' \
	-- "${RUSAGE[@]}" $M --qmp-timeout 60 status
usage "fake huge-lines: assembled in linear time and bounded memory" 5000 $((40 * 1024))
: >"$work/usage"
fake event-bytes "64 events of 900 KB before the reply" 0 '^vmem0:' '' \
	-- "${RUSAGE[@]}" $M status
usage "fake event-bytes: queued events bounded in bytes (4 MiB)" 10000 $((24 * 1024))

# status flags what keeps a request from being acted upon.
fake good "status --json: driver ready, VM running, no warnings" 0 \
	'"vm-status":"running","vm-running":true,"driver":"ready","warnings":\[\]\}$' '' \
	-- $M status --json
fake paused "status of a paused VM: a warning" 0 \
	'^  warning: +the VM is not running \(paused\): the guest cannot plug or unplug memory' '' \
	-- $M status
fake paused "status --json of a paused VM: warnings [vm-paused]" 0 \
	'"vm-status":"paused","vm-running":false,"driver":"ready","warnings":\["vm-paused"\]' '' \
	-- $M status --json
sock=$work/fake-nodrv.sock
python3 "$here/fake_qmp.py" no-driver "$sock" 2>/dev/null &
pids+=("$!")
if wait_socket "$sock"; then
	expect "fake no-driver: status --json, nothing requested: driver none, no warning" 0 \
		'"driver":"none","warnings":\[\]\}$' '' -- $M -s "$sock" status --json
	"$M" -s "$sock" resize 6M >/dev/null 2>&1
	expect "fake no-driver: status --json, requested != plugged: warnings [no-driver]" 0 \
		'"requested-size":6291456,"size":0,.*"driver":"none","warnings":\["no-driver"\]' '' \
		-- $M -s "$sock" -d vmem0 status --json
	expect "fake no-driver: status says no guest driver answers" 0 \
		'^  warning: +no guest driver answers: 6 MiB requested, 0 B plugged' '' -- $M -s "$sock" status
else
	ktap_fail "fake no-driver: status" "fake server did not start"
fi
# A QEMU without these queries (CommandNotFound): no flags, no failure.
fake old-qemu "status of a QEMU that answers neither query-status nor x-query-virtio-status" 0 \
	'"size":0,"warnings":\[\]\}$' '' -- $M status --json

# watch on a VM without virtio-mem: an error, not a silent wait forever.
fake no-vmem "watch without a virtio-mem device says so (exit 1)" 1 '' \
	'^memplugctl: QEMU has no virtio-mem device: there is nothing to watch$' -- $M watch
fake no-vmem "watch --timeout without a virtio-mem device: exit 1 at once" 1 '' \
	'nothing to watch' -- $M watch --timeout 10
took "fake no-vmem: watch did not wait for its timeout" 4000

# resize --json: a line when the size is set, one more when --wait ends.
fake plug "resize --wait --json" 0 '"result":"reached"' '' -- $M resize 2G --wait --json --timeout 15
if [ "$(wc -l <"$work/out")" = 2 ] &&
   python3 - "$work/out" <<-'PY'
	import json, sys
	a, b = [json.loads(l) for l in open(sys.argv[1])]
	assert a == {"id": "vmem0", "requested-size": 2 << 30, "previous-requested-size": 0,
	             "size": 0, "result": "requested", "warnings": []}, a
	assert b["result"] == "reached" and b["size"] == 2 << 30 and b["warnings"] == []
	assert isinstance(b["elapsed-ms"], int) and b["elapsed-ms"] >= 0
	PY
then
	ktap_ok "fake plug: resize --json lines: requested, then reached with elapsed-ms"
else
	ktap_fail "fake plug: resize --json lines: requested, then reached with elapsed-ms"; dump_run
fi
fake good "resize --json without --wait: one line" 0 \
	'^\{"id":"vmem0","requested-size":4194304,"previous-requested-size":0,"size":0,"result":"requested","warnings":\[\]\}$' \
	'' -- $M resize 4M --json
fake good "resize --wait --json timeout: exit 2, result timeout" 2 '"result":"timeout"' \
	'timed out after 1.0 s' -- $M resize 4M --wait --json --timeout 1

# What stays after a resize: the request outlives a --wait that gives up or
# is interrupted, not a QEMU restart; the messages say so.
fake good "resize --wait timeout: says the request stays, and not across a restart" 2 '' \
	'timed out after 1\.0 s: .*; the request stays in effect \(resize again to change it; QEMU forgets it when it restarts' \
	-- $M resize 4M --wait --timeout 1
if "$M" help resize | grep -q 'stays in effect until it is changed again' &&
   "$M" help resize | grep -q 'does not survive a' ; then
	ktap_ok "resize --help says the request stays in effect and does not survive a QEMU restart"
else
	ktap_fail "resize --help says the request stays in effect and does not survive a QEMU restart"
fi
sock=$work/fake-int.sock
python3 "$here/fake_qmp.py" good "$sock" 2>/dev/null &
pids+=("$!")
if wait_socket "$sock"; then
	timeout -s INT 1.5 "$M" -s "$sock" resize 6M --wait --timeout 30 \
		>"$work/out" 2>"$work/err" </dev/null
	rc=$?
	if [ "$rc" = 124 ] &&
	   grep -q "^memplugctl: interrupted: the requested size of vmem0 stays 6 MiB (resize again" "$work/err"; then
		ktap_ok "fake good: Ctrl-C during resize --wait says the request stays"
	else
		ktap_fail "fake good: Ctrl-C during resize --wait says the request stays"; dump_run
	fi
else
	ktap_fail "fake good: Ctrl-C during resize --wait" "fake server did not start"
fi

# An error during --wait is exit 1 at once, not a wait for --timeout.
fake vanish "resize --wait: the device vanishes: exit 1 at once" 1 '' \
	"^memplugctl: no device with id 'vmem0'$" -- $M resize 4M --wait --timeout 3
took "fake vanish: resize --wait did not wait for its timeout" 2500

# resize says when nothing will act on the request, and why a wait fails.
fake paused "resize on a paused VM: a note, exit 0" 0 'requested size 4 MiB' \
	'^memplugctl: note: the VM is not running \(paused\): the guest cannot plug or unplug memory' \
	-- $M resize 4M
fake paused "resize --wait on a paused VM: the timeout names it" 2 '' \
	'4 MiB requested \(the VM is not running: paused\); the request stays in effect' \
	-- $M resize 4M --wait --timeout 1
fake no-driver "resize without a guest driver: a note" 0 '' \
	'^memplugctl: note: no guest driver has set vmem0 up \(virtio DRIVER_OK not set\)' \
	-- $M resize 4M

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
		ktap_ok "fake plug: watch stopped after 2 events"
	else
		ktap_fail "fake plug: watch stopped after 2 events"; dump_run
	fi
	wait "$resizer"
	(sleep 0.5; "$M" -s "$sock" resize 0 >/dev/null 2>&1) &
	resizer=$!
	expect "fake plug: watch --json" 0 '^\{"timestamp":"[^"]+","id":"vmem0","size":1073741824,' '' \
		-- $M -s "$sock" -d vmem0 watch --json --count 2 --timeout 10
	wait "$resizer"
else
	ktap_fail "fake plug: watch" "fake server did not start"
fi

# On a terminal, --wait draws a progress bar (script(1) provides the pty).
sock=$work/fake-tty.sock
python3 "$here/fake_qmp.py" plug "$sock" 2>"$work/fake-tty.log" &
pids+=("$!")
if ! command -v script >/dev/null; then
	ktap_skip "fake plug: progress bar on a tty" "script(1) not installed"
elif wait_socket "$sock"; then
	run script -qec "$M -s $sock resize 3G --wait --timeout 15" /dev/null
	if [ "$rc" = 0 ] && grep -q $'\r''vmem0 \[#*\.*\] ' "$work/out" &&
	   grep -q 'vmem0 \[##############################\] 100%  3 GiB / 3 GiB' "$work/out"; then
		ktap_ok "fake plug: progress bar on a tty"
	else
		ktap_fail "fake plug: progress bar on a tty"; dump_run
	fi
else
	ktap_fail "fake plug: progress bar on a tty" "fake server did not start"
fi

# ---------------------------------------------------------------------------
# 5. Static checks and valgrind

man_warnings=$(LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$top/docs/memplugctl.1" 2>&1)
if [ -f "$top/docs/memplugctl.1" ] && [ -z "$man_warnings" ]; then
	ktap_ok "man page renders without groff warnings"
else
	ktap_fail "man page renders without groff warnings" "$man_warnings"
fi
if command -v man >/dev/null && MANWIDTH=80 man -l "$top/docs/memplugctl.1" 2>&1 | grep -q 'resize'; then
	ktap_ok "man -l docs/memplugctl.1"
else
	ktap_fail "man -l docs/memplugctl.1"
fi
if make -s -C "$top/tools/memplugctl" install DESTDIR="$work/inst" PREFIX=/usr \
		>"$work/install.log" 2>&1 &&
   grep -q "^\.TH MEMPLUGCTL 1 \"[^\"]*\" \"memplug ${ver//./\\.}\" " "$work/inst/usr/share/man/man1/memplugctl.1" &&
   [ "$(stat -c %a "$work/inst/usr/share/man/man1/memplugctl.1")" = 644 ] &&
   [ "$("$work/inst/usr/bin/memplugctl" --version)" = "memplugctl $ver" ]; then
	ktap_ok "make install: binary and man page (footer 'memplug $ver')"
else
	ktap_fail "make install: binary and man page (footer 'memplug $ver')" \
		"$(tail -n 5 "$work/install.log")" \
		"$(grep '^\.TH' "$work/inst/usr/share/man/man1/memplugctl.1" 2>&1)"
fi

# The bash completion that make install puts where bash-completion looks.
comp=$work/inst/usr/share/bash-completion/completions/memplugctl
# completes WORD...: what the completion offers for the last WORD, sorted
completes() {
	bash --norc --noprofile -c 'source "$1" || exit 1; shift
		COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
		COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_memplugctl memplugctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$@" | sed '/^$/d' | sort | tr '\n' ' '
}
if [ -f "$comp" ] && [ "$(stat -c %a "$comp")" = 644 ] &&
   [ "$(bash --norc --noprofile -c 'source "$1" && complete -p memplugctl' _ "$comp" 2>&1)" = \
	"complete -F _memplugctl memplugctl" ]; then
	ktap_ok "make install: bash completion installed; it loads in bash"
else
	ktap_fail "make install: bash completion installed; it loads in bash" "$(ls -l "$comp" 2>&1)"
fi
# the commands of --help, in order of the table, then sorted like completes()
help_cmds=$("$M" --help | sed -n '/^Commands:/,/^$/s/^  \([a-z]\+\).*/\1/p' | sort | tr '\n' ' ')
if [ -n "$help_cmds" ] && [ "$(completes memplugctl '')" = "$help_cmds" ] &&
   [ "$(completes memplugctl re)" = "resize " ]; then
	ktap_ok "bash completion: completes the commands of --help ($help_cmds)"
else
	ktap_fail "bash completion: completes the commands of --help" \
		"--help: $help_cmds" "completion: $(completes memplugctl '')"
fi
bad_opts=
for c in status resize watch guest; do
	got=" $(completes memplugctl "$c" --)"
	for o in $("$M" help "$c" | head -n 1 | grep -o -- '--[a-z-]*'); do
		case $got in *" $o "*) ;; *) bad_opts="$bad_opts $c:$o" ;; esac
	done
done
if [ -z "$bad_opts" ] && [ "$(completes memplugctl -s x status --)" = \
	"--connect --device --domain --help --json --qmp-timeout --socket --version " ]; then
	ktap_ok "bash completion: each command's options, as its usage line has them"
else
	ktap_fail "bash completion: each command's options, as its usage line has them" \
		"missing:$bad_opts" "status: $(completes memplugctl -s x status --)"
fi
mkdir -p "$work/compdir/sub"
if [ "$(completes memplugctl guest --sysfs-root "$work/compd")" = "$work/compdir " ] &&
   [ "$(completes memplugctl help w)" = "watch " ]; then
	ktap_ok "bash completion: --sysfs-root completes directories, help a command"
else
	ktap_fail "bash completion: --sysfs-root completes directories, help a command" \
		"$(completes memplugctl guest --sysfs-root "$work/compd")"
fi
sock=$work/fake-comp.sock
python3 "$here/fake_qmp.py" good "$sock" 2>/dev/null &
pids+=("$!")
if wait_socket "$sock" &&
   [ "$(PATH="$work/inst/usr/bin:$PATH" completes memplugctl -s "$sock" -d '')" = "vmem0 " ]; then
	ktap_ok "bash completion: -d completes the VM's virtio-mem ids (fake QMP)"
else
	ktap_fail "bash completion: -d completes the VM's virtio-mem ids (fake QMP)" \
		"$(PATH="$work/inst/usr/bin:$PATH" completes memplugctl -s "$sock" -d '')"
fi

# The sources of the build with libvirt (libvirt.c) when libvirt-dev is
# there, else of the one without (libvirt_none.c), as the Makefile picks.
if pkg-config --exists libvirt libxml-2.0 2>/dev/null; then
	lv_cflags=$(pkg-config --cflags libvirt libxml-2.0)
	lv_libs=$(pkg-config --libs libvirt libxml-2.0)
	ctl_srcs=$(ls "$top"/tools/memplugctl/*.c | grep -v '/libvirt_none\.c$')
else
	lv_cflags= lv_libs=
	ctl_srcs=$(ls "$top"/tools/memplugctl/*.c | grep -v '/libvirt\.c$')
fi
# shellcheck disable=SC2086
ktap_clang "clang -Wall -Wextra -Werror builds" $lv_cflags -DMEMPLUG_VERSION="\"$ver\"" $ctl_srcs
ktap_cppcheck "cppcheck finds nothing" -I "$top/tools/memplugctl" "$top/tools/memplugctl"

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
		ktap_fail "valgrind: $name" "exit $rc" "$(head -n 30 "$work/vg.log")"
	else
		ktap_ok "valgrind: $name"
	fi
}
# A build of its own (ktap_vg_build)
# shellcheck disable=SC2086
if ktap_vg_build "$work/memplugctl-vg" -DMEMPLUG_VERSION="\"$ver\"" $lv_cflags $ctl_srcs \
	-ljansson $lv_libs; then
	vg oversized "8 MiB reply" status
	vg ooo "resize --wait with junk and events" resize 4G --wait --timeout 15
	vg event-flood "event flood" status
	vg event-storm "endless events until the storm limit" --qmp-timeout 2 status
	vg plug "resize --wait --json" resize 2G --wait --json --timeout 15
	vg paused "status --json with a warning" status --json
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
		ktap_ok "valgrind: 8 MiB reply costs $heap bytes of heap"
	else
		ktap_fail "valgrind: heap bounded for 8 MiB reply" "allocated: ${heap:-?}"
	fi
fi

ktap_done
