#!/usr/bin/env bash
# Build everything the test bed boots, for every kernel in .cache/kernels/list:
# memplug.ko (build/<rel>/memplug.ko), its fault injection build
# (MEMPLUG_FAULT_INJECT=1, build/<rel>/memplug-fi.ko), the guest agent, the
# static memplugctl and memplug-report and the initramfs
# (build/<rel>/initramfs.gz). Extra make arguments (W=1, C=1) go to
# Kbuild.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${MEMPLUG_CACHE:-$top/.cache}
cd "$top"

make -s -C tests/vm/agent
make -s -C tools/memplugctl static
make -s -C tools/memplug-report static
# MEMPLUG_KERNEL_LIST: another list of releases (make check-debug)
for rel in $(cat "${MEMPLUG_KERNEL_LIST:-$cache/kernels/list}"); do
	out=build/$rel
	mkdir -p "$out"
	ko= fiko=
	# the headers scripts/deps.sh unpacked into the cache, or the debug
	# kernel's build tree (scripts/debug-kernel.sh)
	kdir=$(scripts/kdir.sh "$rel")
	if [ -f driver/Makefile ]; then
		# Kbuild writes its objects next to the sources: build a copy per kernel
		rm -rf "$out/driver" && cp -r driver "$out/driver"
		make -s -C "$out/driver" KDIR="$kdir" "$@"
		cp "$out/driver/memplug.ko" "$out/memplug.ko"
		ko=$out/memplug.ko
		# the test build with fault injection, in its own copy
		rm -rf "$out/driver-fi" && cp -r driver "$out/driver-fi"
		make -s -C "$out/driver-fi" KDIR="$kdir" MEMPLUG_FAULT_INJECT=1 "$@"
		cp "$out/driver-fi/memplug.ko" "$out/memplug-fi.ko"
		fiko=$out/memplug-fi.ko
	fi
	tests/vm/mkinitramfs.sh "$rel" "$cache/kernels/$rel" tests/vm/agent/memplug-agent \
		"$out/initramfs.gz" $ko $fiko
	echo "build: $rel${ko:+ (memplug.ko, memplug-fi.ko)}"
done
