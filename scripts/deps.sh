#!/usr/bin/env bash
# Set up everything memplug's build, tests and demo need, idempotently.
#
#  - Host tools from Debian, installed with apt-get: qemu, busybox, jansson,
#    cmocka, sparse, dkms, ... and what Debian's kernel headers need to build
#    a module (gcc-12, pahole: read from the headers packages' Depends).
#  - The newest Debian 6.1 and 6.12 amd64 kernels, never installed. For each
#    release REL, apt-get download puts the packages in .cache/debs/ and
#    dpkg-deb -x unpacks them:
#      .cache/kernels/REL/          linux-image-REL-unsigned (boot/, lib/modules/)
#      .cache/kernels/REL/headers/  linux-headers-REL, the -common tree and the
#                                   linux-kbuild package it depends on, fixed up
#                                   to work in place as Kbuild's KDIR
#                                   (scripts/kdir.sh says where)
#    Nothing is written to /boot, /lib/modules or /usr/src, and no
#    linux-image, linux-headers or linux-kbuild package is installed:
#    deps.sh refuses to, even as a dependency of a host tool.
#  - checkpatch.pl and its data files from linux-source-6.12, in
#    .cache/checkpatch/.
#
# The terminal gets one line per step; apt's and dpkg's output goes to
# .cache/deps.log, whose tail is printed if a step fails. A run with nothing
# left to do prints one line and writes nothing.
#
# MEMPLUG_CACHE: the cache (default .cache). MEMPLUG_DEBS: where downloaded
# packages are kept (default $MEMPLUG_CACHE/debs).
# Writes .cache/kernels/list: one "<release>" per line, 6.1 first.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${MEMPLUG_CACHE:-$top/.cache}
debs=${MEMPLUG_DEBS:-$cache/debs}
logf=$cache/deps.log
# shellcheck source=scripts/kdir.sh
. "$top/scripts/kdir.sh"
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$cache/kernels"

say() { printf 'deps: %s\n' "$*" >&2; }

# step TEXT: something is about to change: a line here and in the log
run_line=0	# where this run's part of the log starts
step() {
	say "$*"
	mkdir -p "$cache"
	printf '\n=== %s %s\n' "$(date '+%F %T')" "$*" >>"$logf"
	[ "$run_line" -gt 0 ] || run_line=$(wc -l <"$logf")
}

# fail TEXT: the end, with the last 25 lines this run logged
fail() {
	say "failed: $*"
	if [ "$run_line" -gt 0 ] && [ -s "$logf" ]; then
		tail -n +"$run_line" "$logf" | tail -n 25 | sed 's/^/deps: | /' >&2
	fi
	say "full log: $logf"
	exit 1
}

# logged CMD...: run CMD, its output appended to the log; its status
logged() {
	mkdir -p "$cache"
	printf '$ %s\n' "$*" >>"$logf"
	"$@" >>"$logf" 2>&1 </dev/null
}

# must CMD...: logged; a failure ends set-up with the log's tail
must() { logged "$@" || fail "$*"; }

apt_updated=0
apt_update() {
	[ "$apt_updated" = 1 ] && return 0
	step "apt-get update"
	must apt-get update -q
	apt_updated=1
}

is_kernel_pkg() {
	case $1 in
	linux-image-* | linux-headers-* | linux-kbuild-* | linux-modules-* | linux-signed-*) return 0 ;;
	esac
	return 1
}

# install_pkgs PKG...: install the host tools among PKG that are missing.
# Never a kernel package, asked for or pulled in by a dependency.
install_pkgs() {
	local p missing=() sim bad installed
	[ $# -gt 0 ] || return 0
	# installed: the second letter of dpkg's status abbreviation is "i"
	# dpkg-query exits 1 when a package was never installed: that is
	# the answer we want here, not a failure
	installed=" $({ dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null || true; } |
		      awk '$2 ~ /^.i/ { printf "%s ", $1 }') "
	for p in "$@"; do
		is_kernel_pkg "$p" && fail "refusing to install the kernel package $p"
		[[ $installed == *" $p "* ]] || missing+=("$p")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	apt_update
	# what apt would install with them: no kernel may be among it
	printf '$ apt-get install -s --no-install-recommends %s\n' "${missing[*]}" >>"$logf"
	sim=$(apt-get install -s --no-install-recommends "${missing[@]}" 2>>"$logf") ||
		fail "apt-get install -s ${missing[*]}"
	bad=$(sed -nE 's/^Inst (linux-(image|headers|kbuild|modules|signed)-[^ ]*).*/\1/p' <<<"$sim" |
	      paste -sd ' ')
	[ -z "$bad" ] || fail "installing ${missing[*]} would install kernel packages: $bad"
	if [ ${#missing[@]} -le 4 ]; then
		step "installing ${missing[*]}"
	else
		step "installing ${#missing[@]} host packages (${missing[*]:0:3} ...)"
	fi
	must apt-get install -y -q --no-install-recommends "${missing[@]}"
}

host_pkgs=(qemu-system-x86 qemu-utils busybox-static libjansson-dev libcmocka-dev
	   build-essential bc kmod cpio gzip xz-utils zstd sparse gnuplot-nox
	   clang libclang-rt-14-dev python3 dkms linux-source-6.12 clang-format cppcheck valgrind lintian libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev libxml2-dev)
install_pkgs "${host_pkgs[@]}"

# newest_release VAR SERIES FALLBACK: the newest release of a kernel series
# ("6.1" or "6.12") in the package lists, or the pinned FALLBACK if the
# lists know none (an offline mirror).
newest_release() {
	local pat rel
	case $2 in
	6.1) pat='^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' ;;
	6.12) pat='^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' ;;
	esac
	rel=$(apt-cache pkgnames linux-image- 2>/dev/null | grep -E "$pat" |
	      sed -e 's/^linux-image-//' -e 's/-unsigned$//' | sort -V | tail -n1) || true
	if [ -z "$rel" ]; then
		apt_update
		rel=$(apt-cache pkgnames linux-image- 2>/dev/null | grep -E "$pat" |
		      sed -e 's/^linux-image-//' -e 's/-unsigned$//' | sort -V | tail -n1) || true
	fi
	printf -v "$1" '%s' "${rel:-$3}"
}

# find_deb NAME [VERSION]: DEB= the newest cached .deb of NAME (at VERSION)
find_deb() {
	local f v best=
	DEB=
	for f in "$debs/$1"_*.deb; do
		[ -f "$f" ] || continue
		[ "$(dpkg-deb -f "$f" Package 2>/dev/null)" = "$1" ] || continue
		v=$(dpkg-deb -f "$f" Version 2>/dev/null) || continue
		[ -z "${2:-}" ] || [ "$v" = "$2" ] || continue
		if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then
			best=$v DEB=$f
		fi
	done
	[ -n "$DEB" ]
}

# fetch_deb NAME [VERSION]: DEB= the package's .deb, downloaded with
# apt-get download into $debs unless it is there already
fetch_deb() {
	local spec=$1${2:+=$2}
	find_deb "$@" && return 0
	mkdir -p "$debs"
	step "fetching $spec"
	if ! (cd "$debs" && logged apt-get download -q "$spec"); then
		apt_update	# lists older than the mirror
		(cd "$debs" && must apt-get download -q "$spec")
	fi
	find_deb "$@" || fail "apt-get download $spec left no $debs/${1}_*.deb"
}

# The kernel itself: boot/vmlinuz-REL and lib/modules/REL, for the test bed.
fetch_image() {
	local rel=$1 dir=$cache/kernels/$1
	[ -f "$dir/boot/vmlinuz-$rel" ] && return 0
	fetch_deb "linux-image-$rel-unsigned"
	step "unpacking linux-image-$rel-unsigned"
	rm -rf "$dir" "$dir.part"
	must dpkg-deb -x "$DEB" "$dir.part"
	mv "$dir.part" "$dir"
}

# fix_tree REL ROOT: make the headers unpacked in ROOT work where they are.
# Prints what is wrong, if anything, and returns 1 then.
fix_tree() {
	local rel=$1 root mk l t bad=0
	root=$(cd "$2" && pwd -P)
	mk=$root/usr/src/linux-headers-$rel/Makefile
	[ -f "$mk" ] || { echo "no $mk"; return 1; }
	# The flavour's Makefile is one line, "include
	# /usr/src/linux-headers-<ver>-common/Makefile": the host's tree, which
	# is not there. Include the unpacked one, next to this Makefile.
	sed -i -E 's|^include /usr/src/(linux-headers-[^/ ]+)/Makefile$|include $(dir $(lastword $(MAKEFILE_LIST)))../\1/Makefile|' "$mk"
	if grep -n '/usr/src\|/usr/lib' "$mk"; then
		echo "$mk still names a host path"
		bad=1
	fi
	# lib/modules/REL/{build,source} point into /usr/src: point them into
	# this tree instead
	for l in build source; do
		t=$(readlink "$root/lib/modules/$rel/$l" 2>/dev/null) || continue
		case $t in /*) ln -sfn "../../..$t" "$root/lib/modules/$rel/$l" ;; esac
	done
	# every link (scripts and tools -> ../../lib/linux-kbuild-<ver>/...,
	# the -common tree's dt-bindings) must resolve inside this tree
	while IFS= read -r -d '' l; do
		t=$(readlink -f "$l") || t=
		if [ -z "$t" ] || [ ! -e "$t" ] || [[ $t != "$root"/* ]]; then
			echo "${l#"$root"/} -> $(readlink "$l") does not resolve inside the tree"
			bad=1
		fi
	done < <(find "$root" -type l -print0)
	return $bad
}

# Kbuild's tree for REL: the headers, their -common tree and their kbuild
# package as the headers package's Depends names them, unpacked into
# kernels/REL/headers/. Their other dependencies that are tools (gcc-12,
# pahole) are installed; linux-image (in the cache already) and linux-base
# (for installing kernels) are not.
fetch_headers() {
	local rel=$1 dir=$cache/kernels/$1/headers
	local hdeb cdeb kdeb item name ver common='' commonver='' kbuild='' kbuildver='' tools=() out
	[ -f "$dir/.memplug-headers" ] && memplug_kdir "$rel" >/dev/null 2>&1 && return 0
	fetch_deb "linux-headers-$rel"
	hdeb=$DEB
	while IFS= read -r item; do
		item=${item%%|*}	# the first alternative
		read -r name ver <<<"$item" || true
		# "(= 6.1.192-3)" names the one version that fits
		case $ver in "(= "*) ver=${ver#(= }; ver=${ver%)} ;; *) ver= ;; esac
		case $name in
		"") ;;
		linux-headers-*-common) common=$name commonver=$ver ;;
		linux-kbuild-*) kbuild=$name kbuildver=$ver ;;
		linux-image-* | linux-base) ;;
		*) tools+=("$name") ;;
		esac
	done < <(dpkg-deb -f "$hdeb" Depends | tr ',' '\n')
	[ -n "$common" ] && [ -n "$kbuild" ] ||
		fail "linux-headers-$rel depends on no -common or linux-kbuild package: $(dpkg-deb -f "$hdeb" Depends)"
	fetch_deb "$common" "$commonver"
	cdeb=$DEB
	fetch_deb "$kbuild" "$kbuildver"
	kdeb=$DEB
	while IFS= read -r item; do
		read -r name _ <<<"${item%%|*}" || true
		[ -z "$name" ] || tools+=("$name")
	done < <(dpkg-deb -f "$kdeb" Depends | tr ',' '\n')
	install_pkgs "${tools[@]}"

	step "unpacking linux-headers-$rel, $common, $kbuild"
	rm -rf "$dir.part"
	for item in "$hdeb" "$cdeb" "$kdeb"; do
		must dpkg-deb -x "$item" "$dir.part"
	done
	if ! out=$(fix_tree "$rel" "$dir.part"); then
		printf '%s\n' "$out" >>"$logf"
		fail "the headers of $rel do not work in place"
	fi
	printf '%s\n' "${hdeb##*/}" "${cdeb##*/}" "${kdeb##*/}" >"$dir.part/.memplug-headers"
	rm -rf "$dir"
	mv "$dir.part" "$dir"
	memplug_kdir "$rel" >/dev/null 2>>"$logf" || fail "no Kbuild tree for $rel after unpacking"
}

rel61='' rel612=''
newest_release rel61 6.1 6.1.0-56-amd64
newest_release rel612 6.12 6.12.117+deb12-amd64
for rel in "$rel61" "$rel612"; do
	fetch_image "$rel"
	fetch_headers "$rel"
done
list=$cache/kernels/list
if [ "$(cat "$list" 2>/dev/null)" != "$(printf '%s\n%s' "$rel61" "$rel612")" ]; then
	printf '%s\n%s\n' "$rel61" "$rel612" >"$list.part"
	mv "$list.part" "$list"
fi

# checkpatch.pl and its data files, from Debian's kernel source (reading only)
cp_dir=$cache/checkpatch
if [ ! -x "$cp_dir/checkpatch.pl" ]; then
	src=$(ls /usr/src/linux-source-6.12*.tar.* | head -n1)
	step "extracting checkpatch.pl from $src"
	rm -rf "$cp_dir" "$cp_dir.part" && mkdir -p "$cp_dir.part"
	must tar -xf "$src" -C "$cp_dir.part" --strip-components=2 --wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' '*/scripts/const_structs.checkpatch'
	mv "$cp_dir.part" "$cp_dir"
fi
say "kernels $rel61 $rel612 (in $cache/kernels)"
