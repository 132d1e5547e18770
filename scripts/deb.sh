#!/usr/bin/env bash
# The Debian packages of memplug, built by hand with dpkg-deb (no debhelper,
# no source package): make deb.
#
#   scripts/deb.sh [all] [OUTDIR]   both packages below (make deb)
#   scripts/deb.sh dkms [OUTDIR]    memplug-dkms_<ver>_all.deb: the driver as
#                                   DKMS source (scripts/dkms.sh deb)
#   scripts/deb.sh report [OUTDIR]  memplug-report_<ver>_<arch>.deb: the guest
#                                   agent, its systemd unit and udev rule
#
# OUTDIR defaults to build/; each package's path is printed on stdout.
# <ver> is PACKAGE_VERSION in driver/dkms.conf (scripts/dkms.sh version),
# <arch> this machine's Debian architecture (amd64 where memplug runs).
#
# memplug-report is built from a copy of tools/memplug-report (its objects
# in the tree are left alone) with dpkg-buildflags' hardening flags,
# installed with its Makefile's install target, stripped; Depends comes
# from dpkg-shlibdeps (libc6 only: the agent uses libc alone). The unit is
# enabled with deb-systemd-helper (WantedBy= the port's device unit) and
# started with deb-systemd-invoke only where the port exists: see
# report_postinst below and docs/autosize.md, "Packaging".
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)

log() { printf 'deb.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

VER=$("$top/scripts/dkms.sh" version)
MAINTAINER="memplug developers <memplug-devel@lists.memplug.org>"
UNIT=memplug-report.service
PORT=/dev/virtio-ports/org.memplug.report.0

# deb_copyright FILE: the copyright file both packages carry
# shellcheck source=scripts/deb-copyright.sh
. "$top/scripts/deb-copyright.sh"

# changelog PKG TEXT FILE: a native package's changelog, gzipped (policy 12.7)
changelog() {
	local when
	when=$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}")
	printf '%s (%s) unstable; urgency=medium\n\n  * %s\n\n -- %s  %s\n' \
		"$1" "$VER" "$2" "$MAINTAINER" "$when" | gzip -9n >"$3"
	chmod 0644 "$3"
}

# --- memplug-report -----------------------------------------------------
# The maintainer scripts, as dh_installsystemd (debhelper 13) would write
# them for this unit, plus udev: written out here, as the package is built
# without debhelper. deb-systemd-helper and deb-systemd-invoke are in
# init-system-helpers (Essential in Debian); each call is still guarded, and
# nothing that acts on the running system runs when dpkg installs into
# another root (DPKG_ROOT) or when systemd or udev is not running.

report_postinst() {
	cat <<-EOF
	#!/bin/sh
	# memplug-report postinst: enable the unit (for the report port's device
	# unit), reload systemd and udev, and start the service if the port is
	# there. Without the port nothing is started: the service has nothing to
	# write to (systemd would wait 90 s for the port's device unit, then fail
	# the start), and it starts by itself when the host hot-plugs the port.
	set -e
	UNIT=$UNIT
	PORT=$PORT

	case "\$1" in
	configure|abort-upgrade|abort-deconfigure|abort-remove)
	    if command -v deb-systemd-helper >/dev/null; then
	        # was-enabled is true on a first install, false once the
	        # administrator disabled the unit: that choice is kept
	        if deb-systemd-helper --quiet was-enabled \$UNIT; then
	            deb-systemd-helper enable \$UNIT >/dev/null || true
	        else
	            deb-systemd-helper update-state \$UNIT >/dev/null || true
	        fi
	    fi
	    if [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/udev ] && command -v udevadm >/dev/null; then
	        udevadm control --reload-rules || true
	    fi
	    if [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	        systemctl --system daemon-reload >/dev/null || true
	        if [ -e \$PORT ] && command -v deb-systemd-invoke >/dev/null; then
	            if [ -n "\$2" ]; then
	                action=restart
	            else
	                action=start
	            fi
	            deb-systemd-invoke \$action \$UNIT >/dev/null || true
	        fi
	    fi
	    ;;
	esac
	exit 0
	EOF
}

report_prerm() {
	cat <<-EOF
	#!/bin/sh
	# memplug-report prerm: stop the service on removal (an upgrade restarts
	# it in the new postinst instead).
	set -e
	if [ "\$1" = remove ] && [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ] &&
	    command -v deb-systemd-invoke >/dev/null; then
	    deb-systemd-invoke stop $UNIT >/dev/null || true
	fi
	exit 0
	EOF
}

report_postrm() {
	cat <<-EOF
	#!/bin/sh
	# memplug-report postrm: systemd and udev forget the unit and the rule on
	# removal; purge removes the enable links and deb-systemd-helper's state.
	set -e
	case "\$1" in
	remove)
	    if [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/systemd/system ]; then
	        systemctl --system daemon-reload >/dev/null || true
	    fi
	    if [ -z "\${DPKG_ROOT:-}" ] && [ -d /run/udev ] && command -v udevadm >/dev/null; then
	        udevadm control --reload-rules || true
	    fi
	    ;;
	purge)
	    if command -v deb-systemd-helper >/dev/null; then
	        deb-systemd-helper purge $UNIT >/dev/null || true
	    fi
	    ;;
	esac
	exit 0
	EOF
}

cmd_report() {
	local out=${1:-$top/build} arch pkg=memplug-report tmp root src doc deps size deb
	for t in dpkg-deb dpkg-shlibdeps dpkg-buildflags make cc strip; do
		command -v "$t" >/dev/null || die "$t not found (apt-get install build-essential)"
	done
	arch=$(dpkg --print-architecture)
	mkdir -p "$out"
	out=$(cd "$out" && pwd)
	tmp=$(mktemp -d "$out/.deb-report.XXXXXX")
	# shellcheck disable=SC2064 # expand now: tmp is local
	trap "rm -rf '$tmp'" EXIT
	umask 022

	# a copy of the sources (with the protocol code they share with memplugd
	# in tools/common, and the version file their Makefile reads)
	src=$tmp/tools/memplug-report
	mkdir -p "$src" "$tmp/tools/common" "$tmp/driver"
	cp "$top"/tools/memplug-report/{*.c,*.h,Makefile,memplug-report.service.in,60-memplug-report.rules} "$src/"
	cp "$top"/tools/common/{*.[ch],tools.mk} "$tmp/tools/common/"
	cp "$top/driver/dkms.conf" "$tmp/driver/"

	# debian/control for dpkg-shlibdeps, and debian/<pkg> as the package
	# root, as a source package would have them
	mkdir -p "$tmp/debian"
	printf 'Source: memplug\nMaintainer: %s\n\nPackage: %s\nArchitecture: any\nDescription: x\n' \
		"$MAINTAINER" "$pkg" >"$tmp/debian/control"
	root=$tmp/debian/$pkg

	local cflags cppflags ldflags
	cflags=$(cd "$tmp" && DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS)
	cppflags=$(cd "$tmp" && DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS)
	ldflags=$(cd "$tmp" && DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)
	make -s -C "$src" install DESTDIR="$root" PREFIX=/usr \
		UNITDIR=/lib/systemd/system UDEVRULESDIR=/lib/udev/rules.d \
		CFLAGS="$cflags $cppflags" LDFLAGS="$ldflags" >&2
	# as dh_strip does for a program
	strip --remove-section=.comment --remove-section=.note "$root/usr/sbin/memplug-report"

	doc=$root/usr/share/doc/$pkg
	install -d "$doc"
	deb_copyright "$doc/copyright"
	changelog "$pkg" "Release $VER of memplug-report, the memplug guest report agent." \
		"$doc/changelog.gz"
	gzip -9nc "$top/docs/autosize.md" >"$doc/autosize.md.gz"
	chmod 0644 "$doc/autosize.md.gz"
	# WantedBy= a device unit, not a target: on purpose. (lintian 2.116
	# reads its name without the backslash of "\x2d": a wildcard there.)
	install -d "$root/usr/share/lintian/overrides"
	printf '%s: systemd-service-file-refers-to-unusual-wantedby-target %s [lib/systemd/system/%s]\n' \
		"$pkg" 'dev-virtio*ports-org.memplug.report.0.device' "$UNIT" \
		>"$root/usr/share/lintian/overrides/$pkg"
	chmod 0644 "$root/usr/share/lintian/overrides/$pkg"

	deps=$(cd "$tmp" && dpkg-shlibdeps -O "-e$root/usr/sbin/memplug-report" 2>/dev/null |
		sed -n 's/^shlibs:Depends=//p')
	[ -n "$deps" ] || die "dpkg-shlibdeps found no dependency for memplug-report"

	install -d "$root/DEBIAN"
	size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
	cat >"$root/DEBIAN/control" <<-EOF
	Package: $pkg
	Version: $VER
	Architecture: $arch
	Maintainer: $MAINTAINER
	Section: admin
	Priority: optional
	Installed-Size: $size
	Depends: $deps
	Description: memplug guest report agent (memory state to the host)
	 memplug-report runs in a virtual machine and writes, once a second, one
	 line of the guest's memory state (pressure stall information, available
	 memory, swap activity, the virtio-mem driver and its sizes) to the
	 virtio-serial port org.memplug.report.0, for a host daemon such as
	 memplugd to size the VM by.
	 .
	 systemd starts it, without privileges, when the port appears (a udev
	 rule, and the unit enabled for the port's device); a VM without the
	 port never runs it.
	EOF
	report_postinst >"$root/DEBIAN/postinst"
	report_prerm >"$root/DEBIAN/prerm"
	report_postrm >"$root/DEBIAN/postrm"
	chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
	(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
		xargs -0 md5sum) >"$root/DEBIAN/md5sums"
	chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"
	find "$root" -type d -exec chmod 0755 {} +

	deb=$out/${pkg}_${VER}_${arch}.deb
	dpkg-deb --build --root-owner-group "$root" "$deb" >&2
	rm -rf "$tmp"
	trap - EXIT
	echo "$deb"
}

case ${1:-all} in
all)
	[ $# -eq 0 ] || shift
	"$top/scripts/dkms.sh" deb "$@"
	cmd_report "$@"
	;;
dkms) shift; "$top/scripts/dkms.sh" deb "$@" ;;
report) shift; cmd_report "$@" ;;
-*) sed -n '2,21s/^# \{0,1\}//p' "$0" >&2; exit 64 ;;
*) "$0" all "$@" ;;
esac
