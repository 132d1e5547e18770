#!/usr/bin/env bash
# Set-up has no side effects on the host, as KTAP (suite "setup" of make
# check; make check-setup).
#
# scripts/deps.sh runs on a fresh, empty cache, so that the kernels and
# their headers really are unpacked (the .debs are shared with the real
# cache through MEMPLUG_DEBS and downloaded once; checkpatch.pl is copied
# from it), in a private mount
# namespace in which the host's own kernel headers (/usr/src/linux-headers-*,
# /usr/lib/linux-kbuild-*) are hidden, as on a fresh Debian 12, and with
# apt-get and dpkg behind wrappers that record their arguments and refuse to
# install any kernel package (the host is never changed, whatever deps.sh
# tries). Then, one KTAP result each:
#  - deps.sh succeeded;
#  - it asked apt-get and dpkg to install no linux-image, linux-headers or
#    linux-kbuild package (the wrappers' record);
#  - the installed linux-image-*, linux-headers-* and linux-kbuild-*
#    packages (dpkg-query) are the same as before;
#  - /boot (names, sizes, sha256), /vmlinuz, /initrd.img and /lib/modules
#    are the same as before;
#  - the terminal got one short "deps:" line per step, apt's and dpkg's
#    output went to deps.log;
#  - per kernel: scripts/kdir.sh names a tree in the fresh cache that works
#    in place (no host path in its Makefile, every link resolves inside it),
#    and memplug builds against it with W=1, warning-free, while the host's
#    headers are still hidden;
#  - a second run prints at most two lines, calls no apt-get and changes
#    nothing in the cache;
#  - a host package never installed (dpkg-query exits 1 for it) is
#    installed, and only it;
#  - a failed download ends set-up with the log's tail and its path.
#
# DEPS=PATH runs another deps.sh (an older one, say) through the same checks.
# KEEP=1 keeps the temporary directory. Needs root for the mount namespace;
# without it the host's headers stay visible (said in a comment).
# Ends with "N passed, N failed, N skipped" (scripts/ktap.sh).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cache=${MEMPLUG_CACHE:-$top/.cache}
cd "$top" || exit 1
# shellcheck source=scripts/ktap.sh
. scripts/ktap.sh

deps=${DEPS:-$top/scripts/deps.sh}
T=$(mktemp -d /tmp/memplug-setup.XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$T"' EXIT
C=$T/cache

ktap_header
echo "# deps.sh: $deps"
echo "# fresh cache: $C; packages from $cache/debs"
[ -x "$deps" ] || ktap_bail "no $deps"

# --- wrappers around apt-get and dpkg ----------------------------------------
real_apt=$(command -v apt-get) || ktap_bail "no apt-get"
real_dpkg=$(command -v dpkg) || ktap_bail "no dpkg"
real_dpkg_query=$(command -v dpkg-query) || ktap_bail "no dpkg-query"
mkdir -p "$T/bin"
export CALLS=$T/calls
: >"$CALLS"
# a kernel package among the arguments: its name, and status 0
cat >"$T/bin/kernel-pkg" <<-'EOF'
	#!/bin/sh
	for a in "$@"; do
		case ${a##*/} in
		linux-image-* | linux-headers-* | linux-kbuild-* | linux-modules-*)
			echo "${a##*/}"
			exit 0 ;;
		esac
	done
	exit 1
EOF
cat >"$T/bin/apt-get" <<-EOF
	#!/bin/sh
	# records its arguments; refuses to install a kernel package
	echo "apt-get \$*" >>"\$CALLS"
	if [ -n "\${FAKE_APT_FAIL:-}" ]; then
		case " \$* " in
		*" download "* | *" update "*)
			echo "E: apt-get \$*: failure simulated by tests/setup/run.sh" >&2
			exit 100 ;;
		esac
	fi
	case " \$* " in
	*" install "* | *" reinstall "* | *" upgrade "* | *" dist-upgrade "* | *" full-upgrade "*)
		if p=\$("$T/bin/kernel-pkg" "\$@"); then
			echo "REFUSED apt-get \$*" >>"\$CALLS"
			echo "tests/setup: refused apt-get install of \$p" >&2
			exit 100
		fi ;;
	esac
	# FAKE_APT_NOOP: update and install (not simulated) do nothing
	if [ -n "\${FAKE_APT_NOOP:-}" ]; then
		case " \$* " in
		*" -s "*) ;;
		*" update "* | *" install "*) exit 0 ;;
		esac
	fi
	exec "$real_apt" "\$@"
EOF
cat >"$T/bin/dpkg-query" <<-EOF
	#!/bin/sh
	# FAKE_UNINSTALLED=PKG: PKG was never installed, as dpkg-query says it
	# on a fresh machine (a message and exit 1, the others still listed)
	case " \$* " in
	*" \${FAKE_UNINSTALLED:-none} "*) ;;
	*) exec "$real_dpkg_query" "\$@" ;;
	esac
	n=\$#
	for a in "\$@"; do
		[ "\$a" = "\$FAKE_UNINSTALLED" ] || set -- "\$@" "\$a"
	done
	shift "\$n"
	"$real_dpkg_query" "\$@"
	echo "dpkg-query: no packages found matching \$FAKE_UNINSTALLED" >&2
	exit 1
EOF
cat >"$T/bin/dpkg" <<-EOF
	#!/bin/sh
	# records its arguments; refuses to install a kernel package
	echo "dpkg \$*" >>"\$CALLS"
	case " \$* " in
	*" -i "* | *" --install "* | *" --unpack "* | *" -R "* | *" --recursive "*)
		if p=\$("$T/bin/kernel-pkg" "\$@"); then
			echo "REFUSED dpkg \$*" >>"\$CALLS"
			echo "tests/setup: refused dpkg install of \$p" >&2
			exit 2
		fi ;;
	esac
	exec "$real_dpkg" "\$@"
EOF
chmod +x "$T/bin/"*

# --- the host's headers hidden ------------------------------------------------
# hidden CMD...: CMD in a private mount namespace with an empty read-only
# tmpfs over each of the host's kernel header and kbuild trees
hide=0
if [ "$(id -u)" = 0 ] && unshare --mount --propagation private true 2>/dev/null; then
	hide=1
fi
hidden() {
	if [ "$hide" = 1 ]; then
		unshare --mount --propagation private bash -c '
			for d in /usr/src/linux-headers-* /usr/lib/linux-kbuild-*; do
				[ -d "$d" ] || continue
				mount -t tmpfs -o ro,size=4k memplug-hidden "$d" || exit 125
			done
			exec "$@"' hidden "$@"
	else
		"$@"
	fi
}
if [ "$hide" = 1 ]; then
	echo "# hidden in the namespace:" /usr/src/linux-headers-* /usr/lib/linux-kbuild-*
else
	echo "# not root or no unshare: the host's headers stay visible"
fi

# --- the host before -----------------------------------------------------------
pkgs_state() {
	dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\n' \
		'linux-image-*' 'linux-headers-*' 'linux-kbuild-*' 2>/dev/null | grep -v '^un ' | sort
}
boot_state() {
	local f
	find /boot -xdev -printf '%P %y %s %l\n' 2>/dev/null | sort
	find /boot -xdev -type f -exec sha256sum {} + 2>/dev/null | sort
	for f in /vmlinuz /vmlinuz.old /initrd.img /initrd.img.old; do
		[ -e "$f" ] || [ -L "$f" ] && echo "$f -> $(readlink "$f")"
	done
	find /lib/modules -maxdepth 3 -printf '%p %y %l\n' 2>/dev/null | sort
}
pkgs_state >"$T/pkgs.before"
boot_state >"$T/boot.before"

# --- set-up on an empty cache -----------------------------------------------------
# but for checkpatch.pl (no kernel: 40 s of unxz of linux-source), if the
# real cache has it
if [ -x "$cache/checkpatch/checkpatch.pl" ]; then
	mkdir -p "$C" && cp -r "$cache/checkpatch" "$C/checkpatch"
	echo "# checkpatch.pl copied from $cache/checkpatch"
fi
run_deps() {	# run_deps CACHE DEBS OUT: deps.sh, wrapped and hidden
	hidden env MEMPLUG_CACHE="$1" MEMPLUG_DEBS="$2" PATH="$T/bin:$PATH" \
		"$deps" >"$3" 2>&1 </dev/null
}
start=$(date +%s)
run_deps "$C" "$cache/debs" "$T/out1"
rc=$?
echo "# first run: $(($(date +%s) - start)) s, exit $rc"
ktap_result $rc "deps.sh on an empty cache, the host's headers hidden" \
	"$(tail -n 30 "$T/out1")"

refused=$(grep '^REFUSED' "$CALLS")
[ -z "$refused" ]
ktap_result $? "no apt-get or dpkg install of a kernel package" "$refused" \
	"apt-get and dpkg calls:"$'\n'"$(grep -v '^dpkg --compare-versions' "$CALLS" | head -n 40)"

pkgs_state >"$T/pkgs.after"
diff -u "$T/pkgs.before" "$T/pkgs.after" >"$T/pkgs.diff"
ktap_result $? "installed linux-image, linux-headers, linux-kbuild packages unchanged" \
	"$(cat "$T/pkgs.diff")"

boot_state >"$T/boot.after"
diff -u "$T/boot.before" "$T/boot.after" >"$T/boot.diff"
ktap_result $? "/boot (names, sizes, sha256), /vmlinuz, /initrd.img, /lib/modules unchanged" \
	"$(head -n 40 "$T/boot.diff")"

# the terminal: "deps: ..." lines, short, none of apt's or dpkg's chatter
long=$(grep -v -x 'deps: .\{1,110\}' "$T/out1" | head -n 10)
chatter=$(grep -E 'Get:|Fetched|Reading package|Unpacking|Selecting|dpkg-deb|W: |E: ' "$T/out1" | head -n 5)
steps=$(grep -c '^deps: ' "$T/out1")
[ -z "$long" ] && [ -z "$chatter" ] && [ "$steps" -ge 3 ] && [ -s "$C/deps.log" ] &&
	grep -q '^\$ dpkg-deb -x ' "$C/deps.log"
ktap_result $? "one short line per step on the terminal ($steps), apt and dpkg output in deps.log" \
	"not a short deps: line:"$'\n'"$long" "apt or dpkg output:"$'\n'"$chatter" \
	"deps.log: $(wc -l 2>/dev/null <"$C/deps.log" || echo none) lines"

# --- per kernel: the tree works in place, memplug builds against it ------------
mapfile -t rels < <(grep -v '^[[:space:]]*$' "$C/kernels/list" 2>/dev/null)
[ ${#rels[@]} -gt 0 ] ||
	mapfile -t rels < <(grep -v '^[[:space:]]*$' "$cache/kernels/list" 2>/dev/null)
[ ${#rels[@]} -gt 0 ] || rels=(6.1 6.12)
for rel in "${rels[@]}"; do
	if ! kdir=$(MEMPLUG_CACHE=$C scripts/kdir.sh "$rel" 2>&1); then
		ktap_fail "$rel: scripts/kdir.sh names a tree in the fresh cache that works in place" "$kdir"
		ktap_fail "$rel: memplug builds against it with W=1, the host's headers hidden" "no KDIR"
		continue
	fi
	h=$C/kernels/$rel/headers
	bad=
	[[ $kdir == "$h"/* ]] || bad+="KDIR $kdir is not in $h"$'\n'
	bad+=$(grep -Hn '/usr/src\|/usr/lib' "$kdir/Makefile")
	while IFS= read -r -d '' l; do
		t=$(readlink -f "$l")
		[ -e "$t" ] && [[ $t == "$(cd "$h" && pwd -P)"/* ]] ||
			bad+=$'\n'"${l#"$h"/} -> $(readlink "$l") does not resolve inside $h"
	done < <(find "$h" -type l -print0)
	[ -z "$bad" ]
	ktap_result $? "$rel: scripts/kdir.sh names a tree in the fresh cache that works in place" \
		"KDIR: $kdir" "$bad"

	b=$T/driver-$rel
	cp -r driver "$b"
	start=$(date +%s)
	hidden make -s -j"$(nproc)" -C "$b" KDIR="$kdir" W=1 >"$T/build.out" 2>&1
	rc=$?
	# Debian's 6.1 headers have no vmlinux, so Kbuild notes it skips BTF: not ours
	grep -v 'Skipping BTF generation' "$T/build.out" >"$T/build.warn"
	[ -s "$T/build.warn" ] && rc=1
	vm=$(modinfo -F vermagic "$b/memplug.ko" 2>&1)
	[ "${vm%% *}" = "$rel" ] || rc=1
	ktap_result $rc "$rel: memplug builds against it with W=1, the host's headers hidden" \
		"$(tail -n 30 "$T/build.warn")" "vermagic: $vm" "KDIR: $kdir"
	echo "# $rel: W=1 build in $(($(date +%s) - start)) s"
	rm -rf "$b"
done

# --- idempotent: a second run ----------------------------------------------------
snap() { find "$C" -printf '%p %y %s %T@ %l\n' 2>/dev/null | sort; }
snap >"$T/cache.before"
: >"$CALLS"
run_deps "$C" "$cache/debs" "$T/out2"
rc=$?
snap >"$T/cache.after"
lines=$(wc -l <"$T/out2")
apt=$(grep '^apt-get ' "$CALLS")
changed=$(diff "$T/cache.before" "$T/cache.after" | head -n 20)
[ $rc -eq 0 ] && [ "$lines" -le 2 ] && [ -z "$apt" ] && [ -z "$changed" ]
ktap_result $? "a second run: at most two lines, no apt-get call, nothing changed in the cache" \
	"exit $rc, $lines lines:"$'\n'"$(head -n 10 "$T/out2")" "apt-get calls:"$'\n'"$apt" \
	"changed in the cache:"$'\n'"$changed"

# --- a host package never installed ------------------------------------------------
# dpkg-query exits 1 for it on a fresh machine; deps.sh must install it, not
# stop (it did: set -e and pipefail)
: >"$CALLS"
FAKE_UNINSTALLED=gnuplot-nox FAKE_APT_NOOP=1 run_deps "$C" "$cache/debs" "$T/out4"
rc=$?
apt=$(grep '^apt-get ' "$CALLS")
[ $rc -eq 0 ] && grep -Eq '^apt-get install -y .*gnuplot-nox' <<<"$apt" &&
	! grep -Eq '^apt-get install -y .*qemu-system-x86' <<<"$apt"
ktap_result $? "a host package never installed: installed, and only it" \
	"exit $rc:"$'\n'"$(tail -n 10 "$T/out4")" "apt-get calls:"$'\n'"$apt"

# --- a failed download -------------------------------------------------------------
F=$T/fail-cache
FAKE_APT_FAIL=1 run_deps "$F" "$T/fail-debs" "$T/out3"
rc=$?
[ $rc -ne 0 ] && grep -qF "$F/deps.log" "$T/out3" && grep -q 'failure simulated' "$T/out3"
ktap_result $? "a failed download: exit non-zero, the log's tail and its path printed" \
	"exit $rc:"$'\n'"$(tail -n 20 "$T/out3")"

# five results, two per kernel, three more
ktap_plan $((5 + 2 * ${#rels[@]} + 3))
ktap_summary
