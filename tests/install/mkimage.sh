#!/usr/bin/env bash
# Build the Debian 12 disk image tests/install/run.sh boots, once, into
# $MEMPLUG_CACHE/install-image/ (kept until deleted: a later run reuses it).
#
#   mkimage.sh RELEASE
#
# RELEASE is the 6.12 kernel the project tests (.cache/kernels/list).
# Steps, each skipped when its product exists:
#   1. rootfs-RELEASE/: debootstrap --variant=minbase bookworm, then
#      linux-image and linux-headers RELEASE (from bookworm-security, like
#      scripts/deps.sh), dkms, build-essential, initramfs-tools,
#      systemd-sysv, udev, kmod and grub-pc, installed in a chroot; the
#      test bed's guest agent (tests/vm/agent) as a systemd service on ttyS1.
#   2. base-RELEASE.raw: an MBR disk with one ext4 partition, filled from
#      the rootfs with mkfs.ext4 -d (no loop device, no mount).
#   3. The disk is booted once under QEMU with the rootfs's own kernel and
#      initramfs (direct boot), and the guest runs grub-install and
#      update-grub on its own /dev/vda, as the Debian installer does; from
#      then on it boots by itself. It also sets MODULES=dep for
#      initramfs-tools (as Debian's cloud images do): an update-initramfs
#      with MODULES=most takes minutes under TCG. base-RELEASE.raw.ok marks
#      it done.
#
# Needs root (debootstrap, chroot), debootstrap (installed with apt-get if
# missing), qemu-system-x86_64 and the mirror of apt's configured sources.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cache=${MEMPLUG_CACHE:-$top/.cache}
rel=${1:?usage: mkimage.sh RELEASE}
dir=$cache/install-image
root=$dir/rootfs-$rel
img=$dir/base-$rel.raw
agent=$top/tests/vm/agent/memplug-agent

log() { printf 'mkimage: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"
[ -x "$agent" ] || die "no $agent (run scripts/build.sh)"
mkdir -p "$dir"

# The Debian mirror apt on this host uses (deb822 or one-line sources).
mirror() {
	local m
	m=$(grep -hsE '^URIs:.*/debian/?$' /etc/apt/sources.list.d/*.sources | head -n1 |
		awk '{print $2}')
	[ -n "$m" ] || m=$(grep -hsE '^deb +(\[[^]]*\] +)?https?://[^ ]*/debian/? +bookworm ' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.list | head -n1 |
		sed -E 's/^deb +(\[[^]]*\] +)?([^ ]+).*/\2/')
	echo "${m:-http://deb.debian.org/debian}"
}

chroot_run() {
	chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 HOME=/root "$@"
}

mounted=()
umount_all() {
	local i
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" || true
	done
	mounted=()
}
trap umount_all EXIT

build_rootfs() {
	local m part
	m=$(mirror)
	command -v debootstrap >/dev/null || {
		log "apt-get install debootstrap"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2
	}
	part=$root.part
	# never rm -rf a tree with the host's /dev bound into it
	! grep -q " $part/" /proc/mounts || die "$part has mounts left; unmount them first"
	rm -rf "$part"
	mkdir -p "$dir/debootstrap-debs"
	log "debootstrap bookworm from $m (a few minutes)"
	debootstrap --variant=minbase --cache-dir="$dir/debootstrap-debs" \
		--include=systemd-sysv,udev,kmod,initramfs-tools,zstd,ca-certificates \
		bookworm "$part" "$m" >&2
	root=$part
	cat >"$root/etc/apt/sources.list" <<-SRC
	deb $m bookworm main
	deb $m bookworm-updates main
	deb ${m%/debian*}/debian-security bookworm-security main
	SRC
	# no service starts inside the chroot
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 0755 "$root/usr/sbin/policy-rc.d"
	mount -t proc proc "$root/proc" && mounted+=("$root/proc")
	mount -t sysfs sys "$root/sys" && mounted+=("$root/sys")
	mount --bind /dev "$root/dev" && mounted+=("$root/dev")
	mount -t devpts -o newinstance devpts "$root/dev/pts" && mounted+=("$root/dev/pts")
	mkdir -p "$dir/apt-archives/partial"
	mount --bind "$dir/apt-archives" "$root/var/cache/apt/archives" &&
		mounted+=("$root/var/cache/apt/archives")
	log "apt-get install linux-image-$rel linux-headers-$rel dkms build-essential grub-pc"
	chroot_run apt-get update -qq >&2
	# grub-pc: installed to the disk later, from inside the guest
	echo "grub-pc grub-pc/install_devices_empty boolean true" |
		chroot_run debconf-set-selections
	chroot_run apt-get install -y -qq --no-install-recommends \
		"linux-image-$rel" "linux-headers-$rel" dkms build-essential \
		initramfs-tools systemd-sysv udev kmod grub-pc e2fsprogs procps >&2
	umount_all
	rm -f "$root/usr/sbin/policy-rc.d"
	chroot_run apt-get clean

	echo memplug-install-test >"$root/etc/hostname"
	printf '/dev/vda1 / ext4 errors=remount-ro 0 1\n' >"$root/etc/fstab"
	chroot_run passwd -d root >/dev/null
	# boot from the serial console, at once, and online hot-plugged memory
	# to ZONE_MOVABLE (README: "Choose where hot-plugged memory goes")
	cat >>"$root/etc/default/grub" <<-GRUB
	GRUB_TIMEOUT=0
	GRUB_TERMINAL=serial
	GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
	GRUB_CMDLINE_LINUX="console=ttyS0,115200 memhp_default_state=online_movable"
	GRUB_DISABLE_OS_PROBER=true
	GRUB
	# the test bed's agent: the host drives the guest through it on ttyS1
	install -m 0755 "$agent" "$root/usr/local/sbin/memplug-agent"
	cat >"$root/etc/systemd/system/memplug-agent.service" <<-UNIT
	[Unit]
	Description=memplug test agent on ttyS1 (tests/install)
	After=local-fs.target systemd-udev-settle.service

	[Service]
	ExecStart=/usr/local/sbin/memplug-agent /dev/ttyS1
	Restart=always

	[Install]
	WantedBy=multi-user.target
	UNIT
	ln -sf /etc/systemd/system/memplug-agent.service \
		"$root/etc/systemd/system/multi-user.target.wants/memplug-agent.service"
	mv "$part" "$dir/rootfs-$rel"
	root=$dir/rootfs-$rel
}

# An MBR with one Linux partition from 1 MiB to the end, marked active.
write_mbr() {
	python3 - "$1" "$2" <<-'PY'
	import struct, sys
	path, sectors = sys.argv[1], int(sys.argv[2])
	start = 2048
	entry = struct.pack("<B3sB3sII", 0x80, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff",
	                    start, sectors - start)
	with open(path, "r+b") as f:
	    f.seek(446)
	    f.write(entry + b"\0" * 48 + b"\x55\xaa")
	PY
}

build_disk() {
	local used size_mb part=$dir/part.tmp
	used=$(du -sm "$root" | cut -f1)
	# room for the DKMS build, new initramfs images and the test's files
	size_mb=$(((used + 2048 + 255) / 256 * 256))
	log "mkfs.ext4 -d ($size_mb MiB)"
	rm -f "$part" "$img.tmp"
	truncate -s "${size_mb}M" "$part"
	mkfs.ext4 -q -F -L memplug-root -d "$root" "$part" >&2
	truncate -s "$((size_mb + 1))M" "$img.tmp"
	write_mbr "$img.tmp" "$(((size_mb + 1) * 2048))"
	dd if="$part" of="$img.tmp" bs=1M seek=1 conv=notrunc,sparse status=none
	rm -f "$part"
	mv "$img.tmp" "$img"
}

[ -f "$root/etc/systemd/system/memplug-agent.service" ] || build_rootfs
[ -f "$img" ] || build_disk
if [ ! -f "$img.ok" ]; then
	log "first boot: grub-install /dev/vda from inside the guest"
	python3 "$top/tests/install/run.py" --prepare "$img" --rootfs "$root" --release "$rel" >&2
	touch "$img.ok"
fi
log "ready: $img"
