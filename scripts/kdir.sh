#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The Kbuild tree (KDIR) of a test kernel: the one place that says where it is.
#
#   scripts/kdir.sh REL        print the KDIR of release REL; exit 1 with a
#                              message on stderr if it is not there
#   . scripts/kdir.sh          (sourced) defines memplug_kdir REL, which
#                              does the same
#
# It is $MEMPLUG_CACHE/kernels/REL/headers/usr/src/linux-headers-REL
# (MEMPLUG_CACHE defaults to .cache): Debian's linux-headers-REL, its
# -common tree and its linux-kbuild package, unpacked there by
# scripts/deps.sh and made to work in place; for the debug kernel
# (scripts/debug-kernel.sh), a link to its build tree. Never
# /lib/modules/REL/build: the test kernels are not installed on the host,
# and headers the host happens to have are not what set-up prepared.

memplug_kdir() {
	local rel=${1:?usage: memplug_kdir RELEASE} top cache kdir
	top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
	cache=${MEMPLUG_CACHE:-$top/.cache}
	kdir=$cache/kernels/$rel/headers/usr/src/linux-headers-$rel
	# the flavour's Makefile, its include/, and the kbuild scripts it links
	if [ ! -f "$kdir/Makefile" ] || [ ! -d "$kdir/include" ] ||
	   [ ! -f "$kdir/scripts/Makefile.build" ]; then
		printf 'kdir: no Kbuild tree for %s at %s (run scripts/deps.sh)\n' \
			"$rel" "$kdir" >&2
		return 1
	fi
	echo "$kdir"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	[ $# -eq 1 ] || { echo "usage: $0 RELEASE" >&2; exit 64; }
	memplug_kdir "$1"
fi
