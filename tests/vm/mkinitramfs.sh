#!/usr/bin/env bash
# Build the test bed's guest initramfs for one kernel.
#
#   mkinitramfs.sh RELEASE KERNEL_ROOT AGENT OUT [MEMPLUG_KO [MEMPLUG_FI_KO]]
#
# RELEASE      kernel release, e.g. 6.12.117+deb12-amd64
# KERNEL_ROOT  the extracted linux-image package (has lib/modules/RELEASE)
# AGENT        the static memplug-agent binary
# OUT          the initramfs to write (gzip'd newc cpio)
# MEMPLUG_KO   memplug.ko built for RELEASE (optional: without it only the
#              kernel's own virtio_mem can be tested)
# MEMPLUG_FI_KO memplug built with MEMPLUG_FAULT_INJECT=1 (optional), as
#              /modules/memplug-fi.ko: "memplug_test.driver=memplug-fi" loads it
#
# The image holds busybox, the agent, the virtio transport modules, the
# kernel's virtio_mem and memory-notifier-error-inject, virtio_console (each
# decompressed, with a load list in dependency order: /modules/<name>.load),
# memplug.ko, and the static builds of memplugctl and memplug-report if
# scripts/build.sh made them. memplug_test.report=MS on the kernel command
# line starts memplug-report -i MS on the port org.memplug.report.0.
set -euo pipefail

rel=$1 kroot=$2 agent=$3 out=$4 memplug_ko=${5:-} memplug_fi_ko=${6:-}
moddir=$kroot/lib/modules/$rel
[ -d "$moddir" ] || { echo "mkinitramfs: no modules for $rel in $kroot" >&2; exit 1; }
[ -f "$moddir/modules.dep" ] || depmod -b "$kroot" "$rel"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,dev,proc,sys,tmp,run,modules,etc}
cp /bin/busybox "$stage/bin/busybox"
for app in $("$stage/bin/busybox" --list); do
	[ "$app" = busybox ] || ln -sf busybox "$stage/bin/$app"
done
install -m 0755 "$agent" "$stage/bin/memplug-agent"
# memplugctl guest, if its static build exists (scripts/build.sh makes it)
ctl=$(dirname "$0")/../../tools/memplugctl/memplugctl-static
[ ! -f "$ctl" ] || install -m 0755 "$ctl" "$stage/bin/memplugctl"
# memplug-report, the guest side of the report channel (docs/autosize.md)
rep=$(dirname "$0")/../../tools/memplug-report/memplug-report-static
[ ! -f "$rep" ] || install -m 0755 "$rep" "$stage/bin/memplug-report"

# dependency-ordered list of module files for $1 (a module name)
mod_closure() {
	local name=$1 line path deps d
	line=$(grep -E "(^|/)${name}\.ko(\.xz|\.zst|\.gz)?:" "$moddir/modules.dep" | head -n1) || true
	[ -n "$line" ] || return 0	# built in: nothing to load
	path=${line%%:*}
	deps=${line#*:}
	for d in $deps; do
		d=$(basename "$d"); d=${d%%.ko*}
		mod_closure "$d"
	done
	echo "$path"
}

add_module() {
	local name=$1 list=$stage/modules/$1.load p base
	: > "$list"
	for p in $(mod_closure "$name" | awk '!seen[$0]++'); do
		base=$(basename "$p"); base=${base%.xz}; base=${base%.zst}; base=${base%.gz}
		if [ ! -f "$stage/modules/$base" ]; then
			case $p in
			*.xz) xz -dc "$moddir/$p" > "$stage/modules/$base" ;;
			*.zst) zstd -qdc "$moddir/$p" > "$stage/modules/$base" ;;
			*.gz) gzip -dc "$moddir/$p" > "$stage/modules/$base" ;;
			*) cp "$moddir/$p" "$stage/modules/$base" ;;
			esac
		fi
		echo "/modules/$base" >> "$list"
	done
}

for m in virtio_pci virtio_mem memory-notifier-error-inject virtio_console; do
	add_module "$m"
done
if [ -n "$memplug_ko" ] && [ -f "$memplug_ko" ]; then
	cp "$memplug_ko" "$stage/modules/memplug.ko"
	# memplug needs the virtio transport, like virtio_mem
	grep -v virtio_mem "$stage/modules/virtio_mem.load" > "$stage/modules/memplug.load" || true
	echo /modules/memplug.ko >> "$stage/modules/memplug.load"
fi
if [ -n "$memplug_fi_ko" ] && [ -f "$memplug_fi_ko" ]; then
	# the same module (its name is memplug), with fault injection
	cp "$memplug_fi_ko" "$stage/modules/memplug-fi.ko"
	grep -v virtio_mem "$stage/modules/virtio_mem.load" > "$stage/modules/memplug-fi.load" || true
	echo /modules/memplug-fi.ko >> "$stage/modules/memplug-fi.load"
fi

cat > "$stage/init" <<'INIT'
#!/bin/sh
# memplug test bed guest: mount, load the virtio transport, hand over to the agent.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
# load NAME [PARAMS...]: insmod a module and its dependencies
load() {
	name=$1; shift
	[ -f /modules/$name.load ] || { echo "no module $name" >&2; return 1; }
	for m in $(cat /modules/$name.load); do
		case $m in
		*/$name.ko) insmod $m "$@" || return 1 ;;
		*) grep -q "^$(basename $m .ko | tr - _) " /proc/modules || insmod $m || return 1 ;;
		esac
	done
}
# the transport for every virtio device (built in on some kernels)
for m in $(cat /modules/virtio_pci.load 2>/dev/null); do insmod $m 2>/dev/null; done
drv=$(sed -n 's/.*memplug_test.driver=\([^ ]*\).*/\1/p' /proc/cmdline)
args=$(sed -n 's/.*memplug_test.args=\([^ ]*\).*/\1/p' /proc/cmdline | tr , ' ')
if [ -n "$drv" ]; then
	load "$drv" $args && echo "memplug-test: loaded $drv $args" > /dev/kmsg
fi
# The report channel (docs/autosize.md): memplug_test.report=MS starts
# memplug-report -i MS once the port org.memplug.report.0 is there (its
# errors in the kernel log). No udev here: link the port's name like it.
rep=$(sed -n 's/.*memplug_test.report=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "$rep" ] && [ -x /bin/memplug-report ]; then
	for m in $(cat /modules/virtio_console.load 2>/dev/null); do insmod $m 2>/dev/null; done
	(
		for i in $(seq 100); do
			for p in /sys/class/virtio-ports/vport*; do
				[ "$(cat $p/name 2>/dev/null)" = org.memplug.report.0 ] || continue
				mkdir -p /dev/virtio-ports
				ln -sf ../${p##*/} /dev/virtio-ports/org.memplug.report.0
				exec /bin/memplug-report -i $rep 2>/dev/kmsg
			done
			sleep 0.1
		done
		echo "memplug-test: no port org.memplug.report.0 for memplug-report" > /dev/kmsg
	) &
fi
echo "memplug-test: guest ready" > /dev/kmsg
while true; do
	/bin/memplug-agent /dev/ttyS1
	sleep 1
done
INIT
chmod 0755 "$stage/init"
# the load() helper is useful to the runner's "sh" commands too
sed -n '/^load() {/,/^}/p' "$stage/init" > "$stage/etc/load.sh"

mkdir -p "$(dirname "$out")"
(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) > "$out.tmp"
mv "$out.tmp" "$out"
