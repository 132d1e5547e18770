/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Pure helpers of memplugctl: size and number parsing, size formatting and
 * QMP address parsing.  Nothing here does I/O, so all of it is unit-tested
 * (tests/tools/test_size.c).
 */
#ifndef MEMPLUGCTL_SIZE_H
#define MEMPLUGCTL_SIZE_H

#include <stddef.h>
#include <stdint.h>

/* Longest size string we format, "18446744073709551615 B" plus slack. */
#define SIZE_STR_MAX 32

/*
 * Parse a size: decimal digits followed by an optional binary unit
 * ("k", "M", "G", "T", "P", "E", case-insensitive, optionally followed by
 * "iB", e.g. "4G", "4GiB", "512M", "2048k") or by "B" for bytes.
 * Signs, blanks, fractions, hex ("0x10": with a reason that says so),
 * empty strings and values that do not fit in 64 bits are rejected.
 *
 * Returns 0 and stores the byte count in @bytes, or -EINVAL (garbage) /
 * -ERANGE (overflow); then @why (if not NULL) points to a static reason.
 */
int parse_size(const char *str, uint64_t *bytes, const char **why);

/*
 * Format @bytes with the largest binary unit it reaches: "0 B", "4 GiB",
 * "1.5 GiB" (one rounded decimal when not exact).  Returns @buf.
 */
char *format_size(uint64_t bytes, char *buf, size_t len);

/*
 * Parse a duration in seconds ("2", "0.5", "120"; up to three decimals) into
 * milliseconds.  Zero is allowed; the upper bound is one day because longer
 * waits are certainly a typo.  Returns 0 or -EINVAL / -ERANGE.
 */
int parse_seconds(const char *str, unsigned int *msec);

/* Parse a positive decimal count (1 .. 1000000000).  0 or -EINVAL/-ERANGE. */
int parse_count(const char *str, unsigned int *count);

enum qmp_addr_kind { QMP_ADDR_UNIX, QMP_ADDR_TCP };

struct qmp_addr {
	enum qmp_addr_kind kind;
	char path[108]; /* sizeof(sockaddr_un.sun_path) */
	char host[256];
	char port[6];
};

/*
 * Parse a QMP socket address.  Accepted forms:
 *   unix:PATH          unix socket
 *   tcp:HOST:PORT      TCP ("[v6addr]:PORT" for IPv6)
 *   HOST:PORT          TCP, when PORT is 1..65535 and there is no '/'
 *   anything else      unix socket path
 * Returns 0, or -EINVAL with @why set (empty, path too long, bad port).
 */
int parse_qmp_addr(const char *str, struct qmp_addr *addr, const char **why);

/*
 * Replace every byte that is not printable ASCII by '?', in place.  Text
 * from QEMU (error descriptions, device ids) ends up on the user's terminal;
 * a hostile peer must not be able to send escape sequences there.
 */
void sanitize_string(char *str);

#endif
