#!/usr/bin/env bash
# Build the test bed's debug kernel from Debian's linux-source-6.12, once per
# machine: tinyconfig + tests/vm/debug-kernel/debug.config (lockdep, KASAN,
# DEBUG_VM, DEBUG_LIST, KFENCE, page_owner, memory hotplug).
#
# The build lives outside the clone, in $MEMPLUG_DEBUG_CACHE (default
# /var/cache/memplug/debug-kernel), and is reused while the source package and
# the config fragment are unchanged. It is laid out like an extracted Debian
# kernel image (root/boot/vmlinuz-REL, root/lib/modules/REL with its build
# tree, also linked as root/headers/usr/src/linux-headers-REL, where
# scripts/kdir.sh finds the Kbuild tree of every test kernel), and linked as
# .cache/kernels/REL so the test bed boots it like the others. Writes
# .cache/kernels/debug-list (the release) for make check-debug.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${MEMPLUG_CACHE:-$top/.cache}
dcache=${MEMPLUG_DEBUG_CACHE:-/var/cache/memplug/debug-kernel}
frag=$top/tests/vm/debug-kernel/debug.config
tarball=/usr/src/linux-source-6.12.tar.xz

log() { printf 'debug-kernel: %s\n' "$*" >&2; }

need=(linux-source-6.12 build-essential bc flex bison libelf-dev libssl-dev kmod cpio)
missing=()
for p in "${need[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	log "installing ${missing[*]}"
	apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >&2
fi

srcver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
stamp="$srcver $(sha256sum "$frag" | cut -d' ' -f1)"
src=$dcache/src root=$dcache/root
mkdir -p "$dcache" "$cache/kernels"

if [ -f "$dcache/stamp" ] && [ "$(cat "$dcache/stamp")" = "$stamp" ] &&
   [ -f "$dcache/release" ] && [ -f "$root/boot/vmlinuz-$(cat "$dcache/release")" ]; then
	rel=$(cat "$dcache/release")
	log "$rel is up to date in $dcache"
else
	start=$(date +%s)
	rm -rf "$dcache/stamp" "$root"
	if [ ! -f "$src/.source-$srcver" ]; then
		log "extracting linux-source-6.12 $srcver"
		rm -rf "$src" && mkdir -p "$src"
		tar -xJf "$tarball" -C "$src" --strip-components=1
		touch "$src/.source-$srcver"
	fi
	log "configuring (tinyconfig + $(basename "$frag"))"
	make -s -C "$src" tinyconfig >&2
	"$src/scripts/kconfig/merge_config.sh" -m -O "$src" "$src/.config" "$frag" >/dev/null
	make -s -C "$src" olddefconfig >&2
	# every option of the fragment must have stuck: a silently dropped
	# checker would make "0 splats" mean nothing
	bad=0
	while IFS= read -r line; do
		case $line in CONFIG_*=*) ;; *) continue ;; esac
		grep -qxF "$line" "$src/.config" || { log "not applied: $line"; bad=1; }
	done < "$frag"
	[ "$bad" = 0 ] || { log "the config fragment did not apply; see above"; exit 1; }
	log "building with $(nproc) jobs (tens of minutes on 2 cores)"
	make -s -C "$src" -j"$(nproc)" bzImage modules >&2
	rel=$(make -s -C "$src" kernelrelease)
	mkdir -p "$root/boot"
	make -s -C "$src" modules_install INSTALL_MOD_PATH="$root" INSTALL_MOD_STRIP=1 >&2
	cp "$src/arch/x86/boot/bzImage" "$root/boot/vmlinuz-$rel"
	cp "$src/.config" "$root/boot/config-$rel"
	ln -sfn "$src" "$root/lib/modules/$rel/build"
	echo "$rel" > "$dcache/release"
	echo "$stamp" > "$dcache/stamp"
	log "built $rel in $(( $(date +%s) - start )) s"
fi
# its build tree where scripts/kdir.sh finds every test kernel's Kbuild tree
mkdir -p "$root/headers/usr/src"
ln -sfn "$src" "$root/headers/usr/src/linux-headers-$rel"
ln -sfn "$root" "$cache/kernels/$rel"
echo "$rel" > "$cache/kernels/debug-list"
echo "$rel"
