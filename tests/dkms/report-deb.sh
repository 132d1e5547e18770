#!/usr/bin/env bash
# The guest agent's Debian package, memplug-report_<ver>_<arch>.deb
# (scripts/deb.sh report, part of make deb), as KTAP, without a VM:
#
#  - its control fields, Depends against what the program links, its files
#    and their modes and md5sums, the program itself, the unit and the rule
#    as make install writes them; systemd-analyze verify on the unit, in a
#    scratch root with this host's units; lintian
#  - dpkg --root into a scratch root (chrootless maintainer scripts, with
#    the real deb-systemd-helper, which honours DPKG_ROOT): the unit enabled
#    for the port's device, an administrator's disable kept across a
#    reinstall, remove and purge
#  - the maintainer scripts' own logic against logging fakes of
#    deb-systemd-helper, deb-systemd-invoke, systemctl and udevadm, as root
#    in a private mount namespace whose /run says systemd and udev run and
#    whose /dev has the report port or not: started only with the port,
#    restarted on upgrade, nothing at all without systemd
#
# Nothing is installed on this host and nothing runs systemctl or udevadm on
# it. tests/dkms/run.sh includes these results; alone:
# tests/dkms/report-deb.sh. Ends with "N passed, N failed, N skipped".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
# shellcheck source=scripts/ktap.sh
. scripts/ktap.sh

T=$(mktemp -d /tmp/memplug-report-deb.XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$T"' EXIT

# ok RC NAME [DIAG]: a result; a failure shows the last 40 lines of DIAG
ok() { ktap_result "$1" "$2" "$(tail -n 40 <<<"${3:-}")"; }

PKG=memplug-report
UNIT=memplug-report.service
PORT=/dev/virtio-ports/org.memplug.report.0
DEV='dev-virtio\x2dports-org.memplug.report.0.device'
N_MAINT=8

ktap_header
ktap_plan $((14 + N_MAINT))
VER=$(scripts/dkms.sh version) || ktap_bail "no version in driver/dkms.conf"
ARCH=$(dpkg --print-architecture) || ktap_bail "no dpkg"
echo "# memplug-report $VER, $ARCH"

deb=$(scripts/deb.sh report "$top/build" 2>"$T/deb.log")
rc=$?
[ "$deb" = "$top/build/${PKG}_${VER}_${ARCH}.deb" ] && [ -f "$deb" ] || rc=1
ok $rc "deb.sh report builds build/${PKG}_${VER}_${ARCH}.deb" "$(cat "$T/deb.log")"
if [ $rc -ne 0 ]; then
	for ((i = 1; i < 14 + N_MAINT; i++)); do ktap_skip "report deb: test $i" "no package"; done
	ktap_summary
	exit
fi
echo "# package: $deb"

x=$T/x
dpkg-deb -x "$deb" "$x" && dpkg-deb -e "$deb" "$x/DEBIAN"
bin=$x/usr/sbin/memplug-report

# --- what the package holds ------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
want_arch=$ARCH
[ "$(uname -m)" = x86_64 ] && want_arch=amd64
[ "$(field Package)" = $PKG ] && [ "$(field Version)" = "$VER" ] &&
	[ "$(field Architecture)" = "$want_arch" ] && [ -n "$(field Maintainer)" ] &&
	[ "$(field Section)" = admin ] && [ "$(field Priority)" = optional ] &&
	[ "$(field Installed-Size)" -gt 0 ] && [ -n "$(field Description)" ] &&
	grep -Eqx 'libc6 \(>= [0-9.]+\)' <<<"$(field Depends)"
ok $? "control: $PKG $VER $want_arch, Depends: $(field Depends)" "$(dpkg-deb --info "$deb" 2>&1)"

# Depends is what the program needs: a dynamic program linking libc alone
# (the agent uses libc only), hardened as Debian builds programs
needed=$(objdump -p "$bin" 2>&1 | awk '$1 == "NEEDED" {print $2}')
ftype=$(file -b "$bin")
dyn=$(readelf -d "$bin" 2>&1)
[ "$needed" = libc.so.6 ] && grep -q 'dynamically linked' <<<"$ftype" &&
	grep -q 'x86-64' <<<"$ftype" && grep -q ', stripped' <<<"$ftype" &&
	grep -q 'pie executable' <<<"$ftype" && grep -q 'BIND_NOW' <<<"$dyn" &&
	readelf -lW "$bin" | grep -q GNU_RELRO
ok $? "/usr/sbin/memplug-report: x86-64 PIE, stripped, relro and bind-now, needs libc.so.6 only" \
	"file: $ftype"$'\n'"NEEDED: $needed"$'\n'"$dyn"

# the files, their owners and modes; nothing in /etc, no conffile
contents=$(dpkg-deb --contents "$deb")
files=$(awk '$1 !~ /^d/ {print $1, $2, $6}' <<<"$contents" | sort)
want=$(sort <<-EOF
	-rw-r--r-- root/root ./lib/systemd/system/$UNIT
	-rw-r--r-- root/root ./lib/udev/rules.d/60-memplug-report.rules
	-rw-r--r-- root/root ./usr/share/doc/$PKG/autosize.md.gz
	-rw-r--r-- root/root ./usr/share/doc/$PKG/changelog.gz
	-rw-r--r-- root/root ./usr/share/doc/$PKG/copyright
	-rw-r--r-- root/root ./usr/share/lintian/overrides/$PKG
	-rwxr-xr-x root/root ./usr/sbin/memplug-report
	EOF
)
baddirs=$(awk '$1 ~ /^d/ && ($1 != "drwxr-xr-x" || $2 != "root/root")' <<<"$contents")
[ "$files" = "$want" ] && [ -z "$baddirs" ] && [ ! -e "$x/etc" ] && [ ! -s "$x/DEBIAN/conffiles" ]
ok $? "contents: program 755, unit, udev rule, copyright, changelog, autosize.md (644), root/root, nothing in /etc" \
	"$(diff <(echo "$want") <(echo "$files"))"$'\n'"directories: $baddirs"

out=$(cd "$x" && md5sum -c --quiet DEBIAN/md5sums 2>&1) &&
	[ "$(wc -l <"$x/DEBIAN/md5sums")" = "$(grep -c . <<<"$want")" ] &&
	grep -q '^Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/' \
		"$x/usr/share/doc/$PKG/copyright" &&
	grep -q '^License: GPL-2$' "$x/usr/share/doc/$PKG/copyright" &&
	zcat "$x/usr/share/doc/$PKG/changelog.gz" | head -n1 | grep -qx "$PKG ($VER) unstable; urgency=medium"
rc=$?
ok $rc "md5sums of every file; DEP-5 copyright (GPL-2); changelog for $VER" "$out"

# the packaged program: its version, and a valid report from this host
out=$("$bin" -h 2>&1)
rep=$(timeout 10 "$bin" -o - -1 2>"$T/err")
rc=$?
grep -q "memplug $VER\." <<<"$out" && [ $rc = 0 ] &&
	python3 tests/report/protocol.py check <<<"$rep" >"$T/proto" 2>&1
ok $? "the packaged program: -h says memplug $VER; one valid report from this host" \
	"$out"$'\n'"$rep"$'\n'"$(cat "$T/err" "$T/proto")"

# the unit and the rule exactly as make install writes them for /usr/sbin
u=$x/lib/systemd/system/$UNIT
bad=
sed 's|@SBINDIR@|/usr/sbin|g' tools/memplug-report/memplug-report.service.in | cmp -s - "$u" ||
	bad+="unit differs from memplug-report.service.in; "
cmp -s tools/memplug-report/60-memplug-report.rules "$x/lib/udev/rules.d/60-memplug-report.rules" ||
	bad+="udev rule differs; "
for l in "ExecStart=/usr/sbin/memplug-report -o -" "ConditionPathExists=$PORT" \
	"BindsTo=$DEV" "After=$DEV" "WantedBy=$DEV"; do
	grep -qxF -- "$l" "$u" || bad+="no $l; "
done
# started by the port only: no target wants it
! grep -E '^(WantedBy|RequiredBy)=' "$u" | grep -vqxF "WantedBy=$DEV" || bad+="another WantedBy; "
[ -z "$bad" ]
ok $? "unit (ExecStart /usr/sbin, the port's condition, BindsTo, WantedBy the port's device) and rule as make install writes them" \
	"$bad"

if command -v systemd-analyze >/dev/null; then
	# in a scratch root that has this host's units too (sysinit.target ...)
	v=$T/verify
	cp -a "$x" "$v" && cp -rn /lib/systemd/system/. "$v/lib/systemd/system/"
	out=$(systemd-analyze verify --root="$v" "$UNIT" 2>&1)
	rc=$?
	[ -z "$out" ] || rc=1
	ok $rc "systemd-analyze verify $UNIT (no warning)" "$out"
	if [ -e "$PORT" ]; then
		ktap_skip "a guest without the port: the unit's condition fails" "this host has $PORT"
	else
		out=$(systemd-analyze condition --root="$x" --unit="$UNIT" 2>&1)
		rc=$?
		[ $rc -ne 0 ] && grep -q "ConditionPathExists=$PORT failed" <<<"$out"
		ok $? "a guest without the port: the unit's condition fails (systemd-analyze condition)" \
			"rc $rc"$'\n'"$out"
	fi
else
	ktap_skip "systemd-analyze verify $UNIT" "no systemd-analyze"
	ktap_skip "a guest without the port: the unit's condition fails" "no systemd-analyze"
fi

rc=0 out=
for s in postinst prerm postrm; do
	[ -x "$x/DEBIAN/$s" ] || { rc=1; out+="$s not executable"$'\n'; }
	head -n1 "$x/DEBIAN/$s" | grep -qx '#!/bin/sh' || { rc=1; out+="$s: not #!/bin/sh"$'\n'; }
	out+=$(sh -n "$x/DEBIAN/$s" 2>&1) || rc=1
	if command -v shellcheck >/dev/null; then
		out+=$(shellcheck -s sh "$x/DEBIAN/$s" 2>&1) || rc=1
	fi
done
ok $rc "maintainer scripts: executable, sh -n$(command -v shellcheck >/dev/null && echo ', shellcheck')" "$out"

# --- dpkg --root: install, disable, reinstall, remove, purge ----------------
# The scripts run chrootless with DPKG_ROOT set: the real deb-systemd-helper
# writes into the scratch root; systemctl, udevadm and deb-systemd-invoke are
# loggers, and must not be called at all.
mkdir -p "$T/sysfake"
for f in systemctl udevadm deb-systemd-invoke; do
	printf '#!/bin/sh\necho "%s $*" >>"%s"\n' "$f" "$T/sys.calls" >"$T/sysfake/$f"
	chmod +x "$T/sysfake/$f"
done
: >"$T/sys.calls"
R=$T/root
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates"
: >"$R/var/lib/dpkg/status"
dp() { env -u DPKG_ROOT PATH="$T/sysfake:$PATH" dpkg --root="$R" --force-script-chrootless \
	--force-depends --log=/dev/null "$@" 2>&1; }
link="$R/etc/systemd/system/$DEV.wants/$UNIT"
state=$R/var/lib/systemd/deb-systemd-helper-enabled
out=$(dp -i "$deb")
rc=$?
[ $rc -eq 0 ] && [ -x "$R/usr/sbin/memplug-report" ] && [ -f "$R/lib/systemd/system/$UNIT" ] &&
	[ -f "$R/lib/udev/rules.d/60-memplug-report.rules" ] &&
	[ "$(readlink "$link")" = "/lib/systemd/system/$UNIT" ] && [ -e "$state/$UNIT.dsh-also" ] &&
	[ ! -s "$T/sys.calls" ]
ok $? "dpkg --root -i: files in place, the unit enabled for the port's device, nothing run on this host" \
	"rc $rc"$'\n'"$out"$'\n'"link: $(readlink "$link")"$'\n'"calls: $(cat "$T/sys.calls")"$'\n'"$(find "$R" -path "$R/var/lib/dpkg" -prune -o -print)"

out=$(systemctl --root="$R" disable "$UNIT" 2>&1)
out+=$'\n'$(dp -i "$deb")
rc=$?
[ $rc -eq 0 ] && [ ! -e "$link" ] && [ ! -L "$link" ] && [ -x "$R/usr/sbin/memplug-report" ]
ok $? "an administrator's systemctl disable outlasts a reinstall" "rc $rc"$'\n'"$out"

systemctl --root="$R" enable "$UNIT" >/dev/null 2>&1
out=$(dp -r $PKG)
rc=$?
left=$(cd "$R" && find lib usr -type f 2>/dev/null)
[ $rc -eq 0 ] && [ -z "$left" ] && [ -L "$link" ]
rc1=$?
out+=$'\n'$(dp -P $PKG)
rc=$?
[ $rc1 -eq 0 ] && [ $rc -eq 0 ] && [ ! -L "$link" ] && [ ! -e "$state/$UNIT.dsh-also" ] &&
	[ -z "$(find "$R" -path "$R/var/lib/dpkg" -prune -o ! -type d -print)" ] && [ ! -s "$T/sys.calls" ]
ok $? "dpkg --root -r removes the files (the enable link stays, as Debian's); -P leaves nothing" \
	"rc $rc"$'\n'"$out"$'\n'"left after -r: $left"$'\n'"$(find "$R" -path "$R/var/lib/dpkg" -prune -o -print)"

# --- the maintainer scripts against fakes ------------------------------------
mkdir -p "$T/fake"
for f in deb-systemd-helper deb-systemd-invoke systemctl udevadm; do
	cat >"$T/fake/$f" <<-EOF
	#!/bin/sh
	echo "$f \$*" >>"$T/calls"
	[ -e "$T/fail" ] && exit 1
	case "\$*" in *was-enabled*) [ -e "$T/disabled" ] && exit 1 ;; esac
	exit 0
	EOF
	chmod +x "$T/fake/$f"
done
# maint MODE SCRIPT ARGS...: DEBIAN/SCRIPT ARGS with the fakes first on PATH,
# in a private mount namespace: MODE systemd (systemd and udev run: /run has
# systemd/system and udev), port (that, and /dev has the port), none
# (neither runs). Its output; the calls in $T/calls.
maint() {
	local mode=$1 n=$T/ns
	shift
	rm -rf "$n" && mkdir -p "$n/run" "$n/dev/virtio-ports" && : >"$n/dev/null"
	case $mode in
	port) : >"$n/dev/virtio-ports/org.memplug.report.0" ;;&
	port | systemd) mkdir -p "$n/run/systemd/system" "$n/run/udev" ;;
	esac
	: >"$T/calls"
	# shellcheck disable=SC2016 # the inner shell expands them
	env -u DPKG_ROOT PATH="$T/fake:$PATH" unshare --mount --propagation private sh -c '
		n=$1 && shift && mount --bind /dev/null "$n/dev/null" && mount --rbind "$n/dev" /dev &&
		mount --bind "$n/run" /run && exec sh "$@"' maint "$n" "$x/DEBIAN/$1" "${@:2}" 2>&1
}
# check NAME MODE "ARGS" EXPECTED: the script exits 0 and makes exactly
# the EXPECTED calls
check() {
	local name=$1 mode=$2 args=$3 exp=$4 out rc
	# shellcheck disable=SC2086 # ARGS are words
	out=$(maint "$mode" $args)
	rc=$?
	[ $rc -eq 0 ] && [ "$(cat "$T/calls")" = "$exp" ]
	ok $? "$name" "rc $rc"$'\n'"$out"$'\n'"expected:"$'\n'"$exp"$'\n'"got:"$'\n'"$(cat "$T/calls")"
}
was="deb-systemd-helper --quiet was-enabled $UNIT"
enable=$was$'\n'"deb-systemd-helper enable $UNIT"
update=$was$'\n'"deb-systemd-helper update-state $UNIT"
reload="udevadm control --reload-rules"$'\n'"systemctl --system daemon-reload"

if [ "$(id -u)" = 0 ] && maint none postinst configure >/dev/null; then
	check "postinst configure, no port: enabled, udev and systemd reloaded, not started" \
		systemd "postinst configure" "$enable"$'\n'"$reload"
	check "postinst configure with the port: deb-systemd-invoke start" \
		port "postinst configure" "$enable"$'\n'"$reload"$'\n'"deb-systemd-invoke start $UNIT"
	check "postinst configure OLD-VERSION (upgrade) with the port: deb-systemd-invoke restart" \
		port "postinst configure 0.0.9" "$enable"$'\n'"$reload"$'\n'"deb-systemd-invoke restart $UNIT"
	touch "$T/disabled"
	check "postinst, the unit disabled by the administrator: update-state, not enable" \
		port "postinst configure 0.0.9" "$update"$'\n'"$reload"$'\n'"deb-systemd-invoke restart $UNIT"
	rm -f "$T/disabled"
	touch "$T/fail"
	check "postinst with every helper failing still succeeds" \
		port "postinst configure" "$update"$'\n'"$reload"$'\n'"deb-systemd-invoke start $UNIT"
	rm -f "$T/fail"
	check "postinst without systemd and udev running (a chroot): enable only" \
		none "postinst configure" "$enable"
	# two calls of a script each: the calls of both, one result
	both() {
		local out1 out2 rc1 rc2 got1
		out1=$(maint port "$2" "$3")
		rc1=$?
		got1=$(cat "$T/calls")
		out2=$(maint port "$2" "$5")
		rc2=$?
		[ $rc1 -eq 0 ] && [ $rc2 -eq 0 ] && [ "$got1" = "$4" ] && [ "$(cat "$T/calls")" = "$6" ]
		ok $? "$1" "$2 $3: rc $rc1"$'\n'"$out1"$'\n'"$got1"$'\n'"$2 $5: rc $rc2"$'\n'"$out2"$'\n'"$(cat "$T/calls")"
	}
	both "prerm upgrade: nothing (the new postinst restarts); prerm remove: deb-systemd-invoke stop" \
		prerm upgrade "" remove "deb-systemd-invoke stop $UNIT"
	both "postrm remove: systemd and udev reloaded; postrm purge: deb-systemd-helper purge" \
		postrm remove "systemctl --system daemon-reload"$'\n'"udevadm control --reload-rules" purge "deb-systemd-helper purge $UNIT"
else
	for ((i = 0; i < N_MAINT; i++)); do
		ktap_skip "maintainer scripts against fakes ($((i + 1)))" "needs root and unshare --mount"
	done
fi

if command -v lintian >/dev/null; then
	out=$(lintian --fail-on error,warning --suppress-tags no-manual-page "$deb" 2>&1)
	ok $? "lintian: no error, no warning (but no-manual-page)" "$out"
else
	ktap_skip "lintian" "lintian not installed"
fi

ktap_summary
