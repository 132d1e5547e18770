#!/usr/bin/env bash
# Install everything memplug's build, tests and demo need, idempotently.
#
#  - host packages from Debian (qemu, busybox, jansson, cmocka, sparse, ...)
#  - the newest Debian 6.1 and 6.12 amd64 kernels: the image is extracted
#    with dpkg-deb into .cache/kernels/<release>/ (never installed to /boot);
#    the headers are installed as packages so Kbuild and DKMS find them.
#
# Writes .cache/kernels/list: one "<release>" per line, 6.1 first.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${MEMPLUG_CACHE:-$top/.cache}
mkdir -p "$cache/kernels" "$cache/debs"

log() { printf 'deps: %s\n' "$*" >&2; }

host_pkgs=(qemu-system-x86 qemu-utils busybox-static libjansson-dev libcmocka-dev
	   build-essential bc kmod cpio gzip xz-utils zstd sparse gnuplot-nox
	   clang libclang-rt-14-dev python3 dkms linux-source-6.12 clang-format cppcheck valgrind lintian libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev libxml2-dev)

missing=()
for p in "${host_pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done

apt_updated=0
apt_update() {
	[ "$apt_updated" = 1 ] && return 0
	log "apt-get update"
	apt-get update -qq >&2
	apt_updated=1
}

if [ "${#missing[@]}" -gt 0 ]; then
	apt_update
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >&2
fi

# Newest release of a kernel series, from the package lists. $1: "6.1" or "6.12".
# Falls back to a pinned version if the lists say nothing (offline mirror).
newest_release() {
	local series=$1 fallback=$2 pat rel
	case $series in
	6.1) pat='^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' ;;
	6.12) pat='^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' ;;
	esac
	rel=$(apt-cache pkgnames linux-image- 2>/dev/null | grep -E "$pat" |
	      sed -e 's/^linux-image-//' -e 's/-unsigned$//' | sort -V | tail -n1)
	if [ -z "$rel" ]; then
		apt_update
		rel=$(apt-cache pkgnames linux-image- 2>/dev/null | grep -E "$pat" |
		      sed -e 's/^linux-image-//' -e 's/-unsigned$//' | sort -V | tail -n1)
	fi
	echo "${rel:-$fallback}"
}

fetch_kernel() {
	local rel=$1 dir deb
	dir=$cache/kernels/$rel
	if [ ! -f "$dir/boot/vmlinuz-$rel" ]; then
		apt_update
		log "fetching linux-image-$rel-unsigned"
		rm -rf "$dir" && mkdir -p "$dir"
		(cd "$cache/debs" && apt-get download -qq "linux-image-$rel-unsigned" >&2)
		deb=$(ls -t "$cache/debs/linux-image-$rel-unsigned"_*.deb | head -n1)
		dpkg-deb -x "$deb" "$dir"
	fi
	if [ ! -e "/lib/modules/$rel/build/Makefile" ]; then
		apt_update
		log "installing linux-headers-$rel"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"linux-headers-$rel" >&2
	fi
}

rel61=$(newest_release 6.1 6.1.0-56-amd64)
rel612=$(newest_release 6.12 6.12.117+deb12-amd64)
fetch_kernel "$rel61"
fetch_kernel "$rel612"
printf '%s\n%s\n' "$rel61" "$rel612" > "$cache/kernels/list"

# checkpatch.pl and its data files, from Debian's kernel source (reading only)
cp_dir=$cache/checkpatch
if [ ! -x "$cp_dir/checkpatch.pl" ]; then
	src=$(ls /usr/src/linux-source-6.12*.tar.* | head -n1)
	log "extracting checkpatch.pl from $src"
	rm -rf "$cp_dir" && mkdir -p "$cp_dir"
	tar -xf "$src" -C "$cp_dir" --strip-components=2 --wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' '*/scripts/const_structs.checkpatch'
fi
log "kernels: $rel61 $rel612"
