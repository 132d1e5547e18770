#!/usr/bin/env bash
# memplug as an installed out-of-tree driver, as KTAP: DKMS builds it for
# every kernel in .cache/kernels/list, the modprobe.d file makes the kernel's
# real module tree pick memplug over virtio_mem, and the Debian package holds
# what it should with working maintainer scripts.
#
# Nothing is installed on this host: DKMS runs on a temporary tree
# (--dkmstree/--sourcetree/--installtree, its own signing key, --no-depmod),
# builds against the headers scripts/deps.sh unpacked into the cache
# (--kernelsourcedir, from scripts/kdir.sh; never /lib/modules/<rel>/build),
# signs with the sign-file of those headers, and module resolution uses a
# temporary root (depmod -b, modprobe -d). The last test checks that
# /lib/modules, /usr/src and /var/lib/dkms are as they were.
#
# The other package of make deb, the guest agent's memplug-report_<ver>_<arch>.deb,
# is tested by tests/dkms/report-deb.sh (also runnable alone), whose
# results are included here, after the DKMS package's.
#
# Products: build/memplug-dkms_<ver>_all.deb, build/memplug-report_<ver>_<arch>.deb,
# and build/<rel>/dkms/memplug.ko, the DKMS-built module (decompressed) for
# the test bed to boot.
#
# Ends with "N passed, N failed, N skipped" (scripts/ktap.sh).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cache=${MEMPLUG_CACHE:-$top/.cache}
cd "$top" || exit 1
# shellcheck source=scripts/ktap.sh
. scripts/ktap.sh

T=$(mktemp -d /tmp/memplug-dkms.XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$T"' EXIT

# ok RC NAME [DIAG]: a result; a failure shows the last 30 lines of DIAG
ok() { ktap_result "$1" "$2" "$(tail -n 30 <<<"${3:-}")"; }

ktap_header
VER=$(scripts/dkms.sh version) || ktap_bail "no version in driver/dkms.conf"
mapfile -t rels < <(grep -v '^[[:space:]]*$' "$cache/kernels/list" 2>/dev/null)
[ ${#rels[@]} -gt 0 ] || ktap_bail "no kernels in $cache/kernels/list (run scripts/deps.sh)"

# the agent's package first, for the number of its results (its plan)
tests/dkms/report-deb.sh >"$T/report-deb.tap" 2>&1
report_rc=$?
report_n=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' "$T/report-deb.tap" | head -n1)

per_kernel=7
ktap_plan $((4 + per_kernel * ${#rels[@]} + 10 + ${report_n:-1}))
echo "# memplug $VER, kernels: ${rels[*]}"

# what the host has where DKMS installs, for the last test
host_state() {
	{ find /lib/modules -maxdepth 4 -printf '%p %y %l\n'
	  find /usr/src /var/lib/dkms -maxdepth 2 -printf '%p %y %l\n'; } 2>/dev/null | sort
}
host_state > "$T/host.before"

# --- DKMS on a private tree ------------------------------------------------
# dkms takes the signing key from the environment before /var/lib/dkms
export mok_signing_key=$T/mok.key mok_certificate=$T/mok.pub
D=(--dkmstree "$T/dkms" --sourcetree "$T/src" --installtree "$T/inst")
mkdir -p "$T/dkms" "$T/inst"
scripts/dkms.sh src "$T/src/memplug-$VER"
out=$(dkms add -m memplug -v "$VER" "${D[@]}" 2>&1)
ok $? "dkms add memplug/$VER" "$out"
[ ! -e "$T/src/memplug-$VER/fault_inject.c" ]
ok $? "the DKMS source tree has no fault injection" "$(ls "$T/src/memplug-$VER")"
# an admin's shell that exports the test builds' switch changes nothing
export MEMPLUG_FAULT_INJECT=1

conf=$top/driver/memplug-modprobe.conf
alias=virtio:d00000018v00001AF4          # the virtio-mem device, as udev asks
for rel in "${rels[@]}"; do
	echo "# ---- $rel"
	mkdir -p "$T/inst/$rel"
	# the cached headers, and their sign-file (dkms would look in the
	# host's /usr/lib/linux-kbuild-* and /lib/modules/<rel>/build)
	if kdir=$(scripts/kdir.sh "$rel" 2>&1); then
		export sign_file=$kdir/scripts/sign-file
		echo "# KDIR: $kdir"
		out=$(dkms build -m memplug -v "$VER" -k "$rel" --kernelsourcedir "$kdir" "${D[@]}" 2>&1)
		rc=$?
	else
		out=$kdir rc=1 kdir=$T/no-kdir
	fi
	ko=$(ls "$T/dkms/memplug/$VER/$rel"/*/module/memplug.ko* 2>/dev/null | head -n1)
	[ $rc -ne 0 ] && out+=$'\n'$(cat "$T/dkms/memplug/$VER/build/make.log" 2>/dev/null)
	[ -n "$ko" ] || rc=1
	ok $rc "$rel: dkms build" "$out"
	if [ -z "$ko" ]; then
		for t in "vermagic" "version" "no fault injection" "dkms install" "modalias loads memplug" "build/$rel/dkms/memplug.ko"; do
			ktap_skip "$rel: $t" "dkms build failed"
		done
		continue
	fi

	vm=$(modinfo -F vermagic "$ko" 2>&1)
	[ "${vm%% *}" = "$rel" ]
	ok $? "$rel: vermagic is $rel" "vermagic: $vm"

	v=$(modinfo -F version "$ko" 2>/dev/null)
	[ "$v" = "$VER" ]
	ok $? "$rel: module version is $VER" "modinfo version: ${v:-none}, dkms.conf: $VER"

	parms=$(modinfo -F parm "$ko" 2>&1)
	! grep -q '^fi_' <<<"$parms"
	ok $? "$rel: no fault injection in the release module (MEMPLUG_FAULT_INJECT=1 exported)" "$parms"

	out=$(dkms install -m memplug -v "$VER" -k "$rel" --kernelsourcedir "$kdir" --no-depmod "${D[@]}" 2>&1)
	rc=$?
	inst=$(ls "$T/inst/$rel/updates/dkms/memplug.ko"* 2>/dev/null | head -n1)
	[ -n "$inst" ] || rc=1
	ok $rc "$rel: dkms install puts memplug in updates/dkms" "$out"

	# Module resolution with the kernel's real modules, in a root with
	# memplug (DKMS built it) and one without (a kernel DKMS skips): with our
	# modprobe.d file a load of virtio_mem, by udev's modalias or by name,
	# runs the install command, which loads memplug where it exists and the
	# kernel's virtio_mem where it does not; never both.
	mods=$cache/kernels/$rel/lib/modules/$rel
	if [ -n "$inst" ] && [ -d "$mods/kernel/drivers/virtio" ]; then
		out=
		for variant in with without; do
			root=$T/root-$rel-$variant
			m=$root/lib/modules/$rel
			mkdir -p "$m/kernel/drivers" "$m/updates/dkms"
			cp -r "$mods/kernel/drivers/virtio" "$m/kernel/drivers/"
			cp "$mods"/modules.builtin* "$mods/modules.order" "$m/" 2>/dev/null
			[ $variant = with ] && cp "$inst" "$m/updates/dkms/"
			out+=$(depmod -b "$root" "$rel" 2>&1)
		done
		: > "$T/empty.conf"
		mp() { local v=$1; shift; modprobe -d "$T/root-$rel-$v" -S "$rel" "$@" 2>&1; }
		cmd='^install /sbin/modprobe --quiet memplug \|\| /sbin/modprobe --ignore-install virtio_mem'
		with=$(mp with -C "$conf" --show-depends "$alias")
		byname=$(mp with -C "$conf" --show-depends virtio_mem)
		plain=$(mp with -C "$T/empty.conf" --show-depends "$alias")
		skipped=$(mp without -C "$conf" --show-depends "$alias")
		fallback=$(mp without -C "$conf" --show-depends --ignore-install virtio_mem)
		grep -q '/memplug\.ko' <<<"$with" && ! grep -q '/virtio_mem\.ko' <<<"$with" &&
			grep -Eq "$cmd" <<<"$with" && grep -Eq "$cmd" <<<"$byname" &&
			grep -q '/virtio_mem\.ko' <<<"$plain" && grep -q '/memplug\.ko' <<<"$plain" &&
			grep -Eq "$cmd" <<<"$skipped" && ! grep -Eq '/(memplug|virtio_mem)\.ko' <<<"$skipped" &&
			! mp without -C "$conf" --show-depends --quiet memplug >/dev/null &&
			grep -q '/virtio_mem\.ko' <<<"$fallback"
		ok $? "$rel: modalias loads memplug, or virtio_mem where memplug is not built" \
			"$out"$'\n'"with memplug.conf:"$'\n'"$with"$'\n'"modprobe virtio_mem:"$'\n'"$byname"$'\n'"without memplug.conf:"$'\n'"$plain"$'\n'"no memplug.ko:"$'\n'"$skipped"$'\n'"fallback:"$'\n'"$fallback"
	else
		ktap_skip "$rel: modalias loads memplug" "no module tree in $mods"
	fi

	# for the test bed: the module exactly as DKMS built (and signed) it
	dst=build/$rel/dkms/memplug.ko
	mkdir -p "build/$rel/dkms"
	case $ko in
	*.xz) xz -dc "$ko" > "$dst" ;;
	*.gz) gzip -dc "$ko" > "$dst" ;;
	*.zst) zstd -qdc "$ko" > "$dst" ;;
	*) cp "$ko" "$dst" ;;
	esac
	vm=$(modinfo -F vermagic "$dst" 2>&1)
	[ "${vm%% *}" = "$rel" ]
	ok $? "$rel: $dst" "vermagic: $vm"
	echo "# dkms module: $top/$dst"
done

# A kernel memplug is not verified on (dkms.conf BUILD_EXCLUSIVE_*): DKMS
# skips it with exit 77, builds nothing, and the package says so.
other=6.6.0-99-amd64
out=$(dkms build -m memplug -v "$VER" -k "$other" --kernelsourcedir "$(scripts/kdir.sh "${rels[-1]}")" \
	"${D[@]}" 2>&1)
rc=$?
left=$(find "$T/dkms/memplug/$VER/$other" -name 'memplug.ko*' 2>/dev/null)
[ $rc -eq 77 ] && [ -z "$left" ] && grep -q 'BUILD_EXCLUSIVE' <<<"$out"
ok $? "dkms skips a kernel outside 6.1 and 6.12 (exit 77, no module)" "rc $rc"$'\n'"$out"

out=$(dkms remove -m memplug -v "$VER" --all --no-depmod "${D[@]}" 2>&1)
left=$(find "$T/inst" "$T/dkms" -name 'memplug.ko*' 2>/dev/null)
[ -z "$left" ]
ok $? "dkms remove --all leaves no module" "$out"$'\n'"$left"

# --- the Debian package ----------------------------------------------------
echo "# ---- memplug-dkms_${VER}_all.deb"
deb=$(scripts/dkms.sh deb "$top/build" 2>"$T/deb.log")
rc=$?
[ "$deb" = "$top/build/memplug-dkms_${VER}_all.deb" ] && [ -f "$deb" ] || rc=1
ok $rc "dkms.sh deb builds build/memplug-dkms_${VER}_all.deb" "$(cat "$T/deb.log")"
if [ $rc -ne 0 ]; then
	for t in control contents modes scripts postinst postinst-77 prerm lintian; do ktap_skip "deb: $t" "no package"; done
else
	# control fields
	field() { dpkg-deb -f "$deb" "$1"; }
	info=$(dpkg-deb --info "$deb" 2>&1)
	[ "$(field Package)" = memplug-dkms ] && [ "$(field Version)" = "$VER" ] &&
		[ "$(field Architecture)" = all ] && grep -qw dkms <<<"$(field Depends)" &&
		[ -n "$(field Description)" ] && [ -n "$(field Maintainer)" ]
	ok $? "deb: control (memplug-dkms $VER all, Depends: dkms)" "$info"

	# contents: the DKMS source, modprobe.d, the initramfs hook; all root's
	contents=$(dpkg-deb --contents "$deb")
	want=(./lib/modprobe.d/memplug.conf ./usr/share/initramfs-tools/hooks/memplug
	      "./usr/src/memplug-$VER/dkms.conf" "./usr/src/memplug-$VER/Makefile")
	for f in driver/*.c driver/*.h; do
		# the test builds' fault injection stays out of a release
		[ "$f" = driver/fault_inject.c ] || want+=("./usr/src/memplug-$VER/${f#driver/}")
	done
	missing=()
	for f in "${want[@]}"; do
		awk '{print $6}' <<<"$contents" | grep -qxF "$f" || missing+=("$f")
	done
	extra=$(awk '{print $6}' <<<"$contents" | grep -F '/fault_inject.c')
	notroot=$(awk '$2 != "root/root"' <<<"$contents")
	[ ${#missing[@]} -eq 0 ] && [ -z "$notroot" ] && [ -z "$extra" ]
	ok $? "deb: contents (${#want[@]} files, root/root, no fault injection)" \
		"missing: ${missing[*]}"$'\n'"not root/root:"$'\n'"$notroot"$'\n'"unwanted: $extra"

	# file modes, the packaged dkms.conf, no conffile (an /etc/modprobe.d
	# conffile would outlive "apt remove"), the initramfs trigger
	x=$T/x
	dpkg-deb -x "$deb" "$x" && dpkg-deb -e "$deb" "$x/DEBIAN"
	bad=$(cd "$x" && find . -path ./DEBIAN -prune -o \( -type f -printf '%m %p\n' \) |
	      awk '($2 ~ /initramfs-tools\/hooks\// && $1 != "755") ||
		   ($2 !~ /initramfs-tools\/hooks\// && $1 != "644")')
	cmp -s "$x/usr/src/memplug-$VER/dkms.conf" driver/dkms.conf &&
		[ -z "$bad" ] && [ ! -s "$x/DEBIAN/conffiles" ] && [ ! -e "$x/etc" ] &&
		grep -q 'update-initramfs' "$x/DEBIAN/triggers"
	ok $? "deb: modes 644/755, dkms.conf, nothing in /etc, initramfs trigger" "bad modes:"$'\n'"$bad"

	rc=0 out=
	for s in postinst prerm; do
		[ -x "$x/DEBIAN/$s" ] || { rc=1; out+="$s not executable"$'\n'; }
		out+=$(sh -n "$x/DEBIAN/$s" 2>&1) || rc=1
	done
	out+=$(sh -n "$x/usr/share/initramfs-tools/hooks/memplug" 2>&1) || rc=1
	ok $rc "deb: maintainer scripts and hook are executable sh" "$out"

	# The maintainer scripts' own logic, against a dkms that only logs.
	mkdir -p "$T/bin"
	cat > "$T/bin/dkms" <<-EOF
	#!/bin/sh
	echo "\$*" >> "$T/dkms.calls"
	EOF
	chmod +x "$T/bin/dkms"
	# The kernels they see: as root, in a private mount namespace, a
	# /lib/modules of the test kernels with headers (build/Makefile) and
	# one without, whatever this host has installed (set-up installs no
	# headers); else the host's.
	mods=/lib/modules
	if [ "$(id -u)" = 0 ] && unshare --mount --propagation private true 2>/dev/null; then
		mods=$T/lib-modules
		for r in "${rels[@]}"; do
			mkdir -p "$mods/$r/build" && : > "$mods/$r/build/Makefile"
		done
		mkdir -p "$mods/6.1.0-0-noheaders-amd64/kernel"
	fi
	echo "# the maintainer scripts see $mods as /lib/modules"
	maint() {	# maint SCRIPT ARG: DEBIAN/SCRIPT ARG with the logging dkms
		if [ "$mods" = /lib/modules ]; then
			PATH=$T/bin:$PATH sh "$x/DEBIAN/$1" "$2"
		else
			PATH=$T/bin:$PATH unshare --mount --propagation private \
				sh -c 'mount --bind "$1" /lib/modules && exec sh "$2" "$3"' \
				maint "$mods" "$x/DEBIAN/$1" "$2"
		fi
	}
	: > "$T/dkms.calls"
	out=$(maint postinst configure 2>&1)
	rc=$?
	exp="add -m memplug -v $VER"
	for d in "$mods"/*/; do
		[ -e "$d/build/Makefile" ] && exp+=$'\n'"install -m memplug -v $VER -k $(basename "$d")"
	done
	got=$(grep -v '^status ' "$T/dkms.calls")
	[ $rc -eq 0 ] && [ "$got" = "$exp" ]
	ok $? "deb: postinst configure: dkms add, install for each kernel with headers" \
		"rc $rc"$'\n'"$out"$'\n'"expected:"$'\n'"$exp"$'\n'"got:"$'\n'"$got"

	# a kernel DKMS skips (exit 77) is reported as such, not as a failure
	cat > "$T/bin/dkms" <<-EOF
	#!/bin/sh
	case "\$1" in install) exit 77 ;; esac
	EOF
	out=$(maint postinst configure 2>&1)
	rc=$?
	n=$(grep -c "is not a kernel memplug is verified on; the kernel's virtio_mem drives" <<<"$out")
	heads=$(for d in "$mods"/*/; do [ -e "$d/build/Makefile" ] && echo x; done | wc -l)
	if [ "$heads" -eq 0 ]; then
		ktap_skip "deb: postinst: a kernel DKMS skips keeps virtio_mem" "no kernel with headers in $mods"
	else
		[ $rc -eq 0 ] && [ "$n" -eq "$heads" ] && ! grep -q 'failed' <<<"$out"
		ok $? "deb: postinst: a kernel DKMS skips keeps virtio_mem, not a failure" \
			"rc $rc, $n messages for $heads kernels with headers"$'\n'"$out"
	fi
	cat > "$T/bin/dkms" <<-EOF
	#!/bin/sh
	echo "\$*" >> "$T/dkms.calls"
	EOF

	: > "$T/dkms.calls"
	out=$(maint prerm remove 2>&1)
	rc=$?
	[ $rc -eq 0 ] && [ "$(cat "$T/dkms.calls")" = "remove -m memplug -v $VER --all" ]
	ok $? "deb: prerm remove: dkms remove --all" "rc $rc"$'\n'"$out"$'\n'"$(cat "$T/dkms.calls")"

	if command -v lintian >/dev/null; then
		out=$(lintian --fail-on error "$deb" 2>&1)
		ok $? "deb: lintian (errors)" "$out"
	else
		ktap_skip "deb: lintian" "lintian not installed"
	fi
fi

echo "# ---- memplug-report_${VER}_*.deb (tests/dkms/report-deb.sh)"
ktap_include "report deb: " "$report_rc" "$T/report-deb.tap"

# DKMS built and installed in its private trees only
host_state > "$T/host.after"
diff -u "$T/host.before" "$T/host.after" > "$T/host.diff"
ok $? "nothing changed in /lib/modules, /usr/src, /var/lib/dkms" "$(cat "$T/host.diff")"

ktap_summary
