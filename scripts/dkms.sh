#!/usr/bin/env bash
# Install memplug like any out-of-tree driver: DKMS, modprobe.d, initramfs.
#
#   scripts/dkms.sh version             print the version (driver/dkms.conf)
#   scripts/dkms.sh src DIR             copy the DKMS source tree to DIR
#   scripts/dkms.sh install [-k REL]... as root: /usr/src/memplug-<ver>/,
#                                       dkms add + install for each REL (default:
#                                       the running kernel), modprobe.d file,
#                                       initramfs hook, update-initramfs
#   scripts/dkms.sh uninstall           as root: undo install (every version)
#   scripts/dkms.sh deb [OUTDIR]        build OUTDIR/memplug-dkms_<ver>_all.deb
#                                       (default OUTDIR: build/)
#
# driver/dkms.conf holds the one version number; everything here reads it.
# MEMPLUG_NO_INITRAMFS=1 skips update-initramfs in install and uninstall.
#
# install is for this machine's own kernels: DKMS builds against their
# installed headers (/lib/modules/REL/build) and installs into
# /lib/modules/REL/updates/dkms. The test kernels' headers in the cache
# (scripts/kdir.sh) are for tests/dkms/run.sh, which builds and installs
# with DKMS in temporary trees and never on the host.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/deb-copyright.sh
. "$top/scripts/deb-copyright.sh"
drv=$top/driver

log() { printf 'dkms.sh: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

version() {
	local v
	v=$(sed -nE 's/^PACKAGE_VERSION="?([^"]*)"?[[:space:]]*$/\1/p' "$drv/dkms.conf")
	[ -n "$v" ] || die "no PACKAGE_VERSION in driver/dkms.conf"
	echo "$v"
}
VER=$(version)
NAME=memplug
# A local install is the administrator's: /etc. The package ships the file in
# /lib/modprobe.d: a conffile in /etc would outlive "apt remove" and keep
# virtio_mem blacklisted with no memplug left to drive the device.
MODPROBE_CONF=/etc/modprobe.d/memplug.conf
MODPROBE_CONF_PKG=/lib/modprobe.d/memplug.conf
# /usr/share, not /etc/initramfs-tools/hooks, for the package and a local
# install alike: mkinitramfs -d CONFDIR (kdump-tools builds the crash kernel's
# initramfs that way) runs CONFDIR/hooks instead of /etc's, /usr/share's always
HOOK=/usr/share/initramfs-tools/hooks/memplug

# The DKMS source tree: the driver's sources, Makefile and dkms.conf only (no
# build products, nothing else from driver/), and not the fault injection of
# the test builds: a release module cannot carry its knobs.
copy_src() {
	local dst=$1 f
	mkdir -p "$dst"
	for f in "$drv"/*.c "$drv"/*.h "$drv/Makefile" "$drv/dkms.conf"; do
		case ${f##*/} in *.mod.c | fault_inject.c) continue ;; esac
		install -m 0644 "$f" "$dst/"
	done
}

need_root() {
	[ "$(id -u)" = 0 ] || die "$1 needs root"
	command -v dkms >/dev/null || die "dkms is not installed (apt-get install dkms)"
}

update_initramfs() {
	[ "${MEMPLUG_NO_INITRAMFS:-0}" = 1 ] && return 0
	command -v update-initramfs >/dev/null || return 0
	local rel
	for rel in "$@"; do
		# only images that exist: never create one for a headers-only kernel
		[ -e "/boot/initrd.img-$rel" ] || continue
		log "update-initramfs -u -k $rel"
		update-initramfs -u -k "$rel" >&2 || log "update-initramfs failed for $rel"
	done
}

# dkms status lines: "memplug/<version>, 6.1.0-56-amd64, x86_64: installed"
added_versions() {
	dkms status -m "$NAME" 2>/dev/null | sed -nE 's|^[^/]+/([^,: ]+)[,:].*|\1|p' | sort -u
}

cmd_install() {
	local rels=() rel v
	while [ $# -gt 0 ]; do
		case $1 in
		-k) [ $# -ge 2 ] || die "-k needs a kernel release"; rels+=("$2"); shift 2 ;;
		-k*) rels+=("${1#-k}"); shift ;;
		*) die "install: unknown argument '$1'" ;;
		esac
	done
	[ ${#rels[@]} -gt 0 ] || rels=("$(uname -r)")
	need_root install

	# one version at a time: drop whatever an earlier install left
	for v in $(added_versions); do
		log "dkms remove $NAME/$v --all"
		dkms remove "$NAME/$v" --all >&2 || true
	done
	rm -rf "/usr/src/$NAME-$VER"
	copy_src "/usr/src/$NAME-$VER"
	dkms add -m "$NAME" -v "$VER" >&2

	local failed=0
	for rel in "${rels[@]}"; do
		if [ ! -e "/lib/modules/$rel/build/Makefile" ]; then
			log "no headers for $rel (apt-get install linux-headers-$rel); skipped"
			failed=1
			continue
		fi
		# install builds first when needed; 77: not a kernel memplug is
		# built for (BUILD_EXCLUSIVE_* in dkms.conf), virtio_mem stays
		local rc=0
		dkms install -m "$NAME" -v "$VER" -k "$rel" >&2 || rc=$?
		case $rc in
		0) ;;
		77) log "$rel: not a kernel memplug is verified on (dkms.conf); virtio_mem drives the device there" ;;
		*) failed=1 ;;
		esac
	done

	install -D -m 0644 "$drv/memplug-modprobe.conf" "$MODPROBE_CONF"
	if [ -d /usr/share/initramfs-tools ]; then
		install -D -m 0755 "$drv/memplug-initramfs-hook" "$HOOK"
	fi
	update_initramfs "${rels[@]}"
	[ "$failed" = 0 ] || die "memplug $VER not installed for every kernel asked"
	log "memplug $VER installed for ${rels[*]}"
}

cmd_uninstall() {
	need_root uninstall
	local v rels=() f
	for v in $(added_versions); do
		log "dkms remove $NAME/$v --all"
		dkms remove "$NAME/$v" --all >&2 || true
	done
	# only a local install's sources; a package's are dpkg's to remove
	for f in /usr/src/"$NAME"-*; do
		[ -d "$f" ] || continue
		dpkg -S "$f" >/dev/null 2>&1 && continue
		rm -rf "$f"
	done
	for f in "$MODPROBE_CONF" "$HOOK"; do
		dpkg -S "$f" >/dev/null 2>&1 || rm -f "$f"
	done
	for f in /boot/initrd.img-*; do
		[ -e "$f" ] && rels+=("${f#/boot/initrd.img-}")
	done
	[ ${#rels[@]} -eq 0 ] || update_initramfs "${rels[@]}"
	log "memplug uninstalled"
}

cmd_deb() {
	local out=${1:-$top/build}
	local pkg=$NAME-dkms root deb
	command -v dpkg-deb >/dev/null || die "dpkg-deb not found"
	mkdir -p "$out"
	out=$(cd "$out" && pwd)
	root=$(mktemp -d "$out/.deb.XXXXXX")
	trap 'rm -rf "$root"' EXIT
	chmod 0755 "$root"

	copy_src "$root/usr/src/$NAME-$VER"
	install -D -m 0644 "$drv/memplug-modprobe.conf" "$root$MODPROBE_CONF_PKG"
	install -D -m 0755 "$drv/memplug-initramfs-hook" "$root$HOOK"
	install -d -m 0755 "$root/usr/share/doc/$pkg"
	deb_copyright "$root/usr/share/doc/$pkg/copyright"
	[ -f "$top/docs/install.md" ] && install -m 0644 "$top/docs/install.md" "$root/usr/share/doc/$pkg/"
	# a native package's changelog, as Debian policy wants it
	cat <<-EOF | gzip -9n > "$root/usr/share/doc/$pkg/changelog.gz"
	$pkg ($VER) unstable; urgency=medium

	  * Release $VER of the memplug virtio-mem guest driver, as DKMS source.

	 -- memplug developers <memplug-devel@lists.memplug.org>  $(date -R -d @"${SOURCE_DATE_EPOCH:-$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)}")
	EOF
	chmod 0644 "$root/usr/share/doc/$pkg/changelog.gz"

	install -d -m 0755 "$root/DEBIAN"
	local size
	size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
	cat > "$root/DEBIAN/control" <<-EOF
	Package: $pkg
	Version: $VER
	Architecture: all
	Maintainer: memplug developers <memplug-devel@lists.memplug.org>
	Section: kernel
	Priority: optional
	Installed-Size: $size
	Depends: dkms
	Description: memplug virtio-mem guest driver (DKMS source)
	 memplug is a Linux guest driver for virtio-mem, the paravirtualized
	 memory device that lets a hypervisor grow and shrink a VM's memory
	 while it runs. It replaces the kernel's virtio_mem driver.
	 .
	 This package builds memplug.ko with DKMS for every x86-64 6.1 and 6.12
	 kernel whose headers are installed, makes memplug the driver of
	 virtio-mem devices there (/lib/modprobe.d/memplug.conf; other kernels
	 keep virtio_mem) and adds memplug to the initramfs.
	EOF
	# rebuild the initramfs (hook and modprobe.d file) on install and removal
	echo "activate-noawait update-initramfs" > "$root/DEBIAN/triggers"

	cat > "$root/DEBIAN/postinst" <<-EOF
	#!/bin/sh
	# memplug-dkms postinst: add the source to DKMS, build and install
	# memplug.ko for every kernel that has its headers. A kernel without
	# headers, or a failed build, is reported and does not fail the package:
	# DKMS (AUTOINSTALL=yes) builds for kernels installed later.
	set -e
	NAME=$NAME
	VERSION=$VER

	case "\$1" in
	configure)
	    if [ -f /etc/dkms/no-autoinstall ]; then
	        echo "memplug: DKMS autoinstall is disabled (/etc/dkms/no-autoinstall)"
	        exit 0
	    fi
	    # a reinstall of the same version starts from a clean DKMS state
	    if [ -n "\$(dkms status -m \$NAME -v \$VERSION 2>/dev/null)" ]; then
	        dkms remove -m \$NAME -v \$VERSION --all >/dev/null || true
	    fi
	    dkms add -m \$NAME -v \$VERSION
	    for dir in /lib/modules/*/; do
	        [ -d "\$dir" ] || continue
	        kver=\$(basename "\$dir")
	        if [ ! -e "\$dir/build/Makefile" ]; then
	            echo "memplug: no headers for \$kver, not built (install linux-headers-\$kver)"
	            continue
	        fi
	        rc=0
	        dkms install -m \$NAME -v \$VERSION -k "\$kver" || rc=\$?
	        case \$rc in
	        0) ;;
	        77) echo "memplug: \$kver is not a kernel memplug is verified on; the kernel's virtio_mem drives the device there" ;;
	        *) echo "memplug: build for \$kver failed, see /var/lib/dkms/\$NAME/\$VERSION/build/make.log" >&2 ;;
	        esac
	    done
	    ;;
	esac
	exit 0
	EOF
	cat > "$root/DEBIAN/prerm" <<-EOF
	#!/bin/sh
	# memplug-dkms prerm: take memplug.ko out of every kernel and out of DKMS.
	set -e
	case "\$1" in
	remove|upgrade|deconfigure)
	    if command -v dkms >/dev/null; then
	        dkms remove -m $NAME -v $VER --all || true
	    fi
	    ;;
	esac
	exit 0
	EOF
	chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm"
	chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/triggers"

	deb=$out/${pkg}_${VER}_all.deb
	dpkg-deb --build --root-owner-group "$root" "$deb" >&2
	rm -rf "$root"
	trap - EXIT
	echo "$deb"
}

case ${1:-} in
version) version ;;
src) [ $# -eq 2 ] || die "usage: $0 src DIR"; copy_src "$2" ;;
install) shift; cmd_install "$@" ;;
uninstall) cmd_uninstall ;;
deb) shift; cmd_deb "$@" ;;
*) sed -n '2,15s/^# \{0,1\}//p' "$0" >&2; exit 64 ;;
esac
