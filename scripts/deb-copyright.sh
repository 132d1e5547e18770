# shellcheck shell=bash
# Sourced by scripts/dkms.sh and scripts/deb.sh: the machine-readable
# copyright file both Debian packages carry.

# deb_copyright FILE
deb_copyright() {
	cat >"$1" <<-EOF
	Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
	Upstream-Name: memplug
	Source: memplug source tree

	Files: *
	Copyright: 2026 memplug developers
	License: GPL-2
	 On Debian systems, the full text of the GNU General Public License
	 version 2 can be found in the file '/usr/share/common-licenses/GPL-2'.
	EOF
	chmod 0644 "$1"
}
