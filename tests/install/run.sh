#!/usr/bin/env bash
# The README's DKMS install path, end to end, in a booted Debian 12 VM
# (make check-install; docs/install.md, "Tested end to end").
#
# 1. tests/install/mkimage.sh: a Debian bookworm disk image with the 6.12
#    kernel the project tests (its linux-image and linux-headers), dkms,
#    build-essential and GRUB, built once into $MEMPLUG_CACHE/install-image/.
# 2. scripts/deb.sh (make deb): the memplug-dkms and memplug-report
#    packages of this tree.
# 3. tests/install/run.py: boot the image (a throwaway qcow2 overlay) under
#    QEMU with a virtio-mem-pci device and the report channel's
#    virtio-serial port, and in the guest do what README says: apt install
#    the packages (memplug-report must start at once and report to the
#    host), reboot with memory requested, check that memplug claimed the
#    device from the initramfs and that memplug-report runs again, resize
#    from the host with memplugctl, read the state in sysfs and with
#    memplugctl guest.
#
# Needs root (debootstrap and chroot for the image). KTAP on stdout, ending
# with "N passed, N failed, N skipped". ACCEL=kvm where KVM works (default
# TCG, like the test bed).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
export MEMPLUG_CACHE=${MEMPLUG_CACHE:-$top/.cache}
cd "$top" || exit 1
# shellcheck source=scripts/ktap.sh
. scripts/ktap.sh

t0=$(date +%s)
rel=$(grep -E '^6\.12\.' "$MEMPLUG_CACHE/kernels/list" 2>/dev/null | head -n1)
[ -n "$rel" ] || ktap_bail "no 6.12 kernel in $MEMPLUG_CACHE/kernels/list (run scripts/deps.sh)"
[ "$(id -u)" = 0 ] || ktap_bail "needs root (debootstrap, chroot)"

T=$(mktemp -d /tmp/memplug-install.XXXXXX)
trap 'rm -rf "$T"' EXIT

# the guest agent and the static memplugctl the guest runs
if ! { make -s -C tests/vm/agent && make -s -C tools/memplugctl all static; } \
	>"$T/build.log" 2>&1; then
	ktap_bail "build of the agent or memplugctl failed: $(tail -n 5 "$T/build.log")"
fi
deb=$(scripts/deb.sh dkms "$T" 2>"$T/deb.log") || ktap_bail "make deb failed: $(tail -n 5 "$T/deb.log")"
rdeb=$(scripts/deb.sh report "$T" 2>"$T/deb.log") ||
	ktap_bail "scripts/deb.sh report failed: $(tail -n 5 "$T/deb.log")"

echo "# image: $MEMPLUG_CACHE/install-image/base-$rel.raw (built on the first run, about 6 minutes)"
tests/install/mkimage.sh "$rel" >"$T/mkimage.log" 2>&1 ||
	ktap_bail "building the image failed: $(tail -n 20 "$T/mkimage.log")"
t1=$(date +%s)
echo "# image ready in $((t1 - t0))s"

python3 tests/install/run.py --image "$MEMPLUG_CACHE/install-image/base-$rel.raw" \
	--release "$rel" --deb "$deb" --report-deb "$rdeb"
rc=$?
echo "# check-install took $(($(date +%s) - t0))s (image $((t1 - t0))s)"
exit $rc
