#!/usr/bin/env bash
# Build everything the test bed boots, for every kernel in .cache/kernels/list:
# memplug.ko (build/<rel>/memplug.ko), the guest agent and the initramfs
# (build/<rel>/initramfs.gz). Extra make arguments (W=1, C=1) go to Kbuild.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${MEMPLUG_CACHE:-$top/.cache}
cd "$top"

make -s -C tests/vm/agent
make -s -C tools/memplugctl static
for rel in $(cat "$cache/kernels/list"); do
	out=build/$rel
	mkdir -p "$out"
	ko=
	if [ -f driver/Makefile ]; then
		# Kbuild writes its objects next to the sources: build a copy per kernel
		rm -rf "$out/driver" && cp -r driver "$out/driver"
		make -s -C "$out/driver" KDIR="/lib/modules/$rel/build" "$@"
		cp "$out/driver/memplug.ko" "$out/memplug.ko"
		ko=$out/memplug.ko
	fi
	tests/vm/mkinitramfs.sh "$rel" "$cache/kernels/$rel" tests/vm/agent/memplug-agent \
		"$out/initramfs.gz" $ko
	echo "build: $rel${ko:+ (memplug.ko)}"
done
