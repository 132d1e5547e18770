// SPDX-License-Identifier: GPL-2.0-only
/*
 * Pure parsing and formatting helpers of memplugctl, see size.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "size.h"

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static char to_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/*
 * Accumulate the leading run of decimal digits of @str into @value.
 * Hand-rolled rather than strtoull(), which silently accepts blanks, a sign
 * (and negates "-1" into a huge number) and "0x" prefixes.
 * Returns the number of digits consumed (0: none), or -ERANGE.
 */
static int parse_digits(const char *str, uint64_t *value)
{
	uint64_t v = 0;
	int n = 0;

	while (is_digit(str[n])) {
		unsigned int d = (unsigned int)(str[n] - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
		n++;
		/* No legitimate number needs more; keeps n far from INT_MAX. */
		if (n > 64)
			return -ERANGE;
	}
	*value = v;
	return n;
}

/* Binary shift for a unit letter, or -1 if @c is not one. */
static int unit_shift(char c)
{
	switch (to_lower(c)) {
	case 'k':
		return 10;
	case 'm':
		return 20;
	case 'g':
		return 30;
	case 't':
		return 40;
	case 'p':
		return 50;
	case 'e':
		return 60;
	default:
		return -1;
	}
}

int parse_size(const char *str, uint64_t *bytes, const char **why)
{
	const char *dummy;
	const char *rest;
	uint64_t value;
	int shift = 0;
	int n;

	if (!why)
		why = &dummy;
	if (!str || !*str) {
		*why = "empty size";
		return -EINVAL;
	}
	if (str[0] == '-') {
		*why = "size must not be negative";
		return -EINVAL;
	}
	if (str[0] == '0' && to_lower(str[1]) == 'x') {
		*why = "hexadecimal is not a size format: give bytes in decimal, or a number "
		       "with a unit (4G, 512M)";
		return -EINVAL;
	}
	n = parse_digits(str, &value);
	if (n == -ERANGE) {
		*why = "size does not fit in 64 bits";
		return -ERANGE;
	}
	if (n == 0) {
		*why = "size must start with a decimal number";
		return -EINVAL;
	}
	rest = str + n;
	if (*rest == '.' || *rest == ',') {
		*why = "fractional sizes are not supported, use a smaller unit";
		return -EINVAL;
	}
	if (*rest) {
		shift = unit_shift(*rest);
		if (shift < 0) {
			if (to_lower(rest[0]) == 'b' && !rest[1]) {
				shift = 0;
				rest += 1;
			} else {
				*why = "unknown unit (use k, M, G, T, P, E or KiB, MiB, ... or B)";
				return -EINVAL;
			}
		} else {
			rest++;
			/* "4GiB" is the same as "4G"; "4GB" (decimal?) is ambiguous. */
			if (to_lower(rest[0]) == 'i' && to_lower(rest[1]) == 'b')
				rest += 2;
		}
		if (*rest) {
			*why = "unknown unit (use k, M, G, T, P, E or KiB, MiB, ... or B)";
			return -EINVAL;
		}
	}
	if (shift && value > (UINT64_MAX >> shift)) {
		*why = "size does not fit in 64 bits";
		return -ERANGE;
	}
	*bytes = value << shift;
	return 0;
}

char *format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	unsigned int idx = 0;
	uint64_t unit = 1;
	uint64_t whole, tenths;

	while (idx + 1 < sizeof(units) / sizeof(units[0]) && bytes >= (unit << 10)) {
		unit <<= 10;
		idx++;
	}
	whole = bytes / unit;
	if (bytes % unit == 0) {
		snprintf(buf, len, "%" PRIu64 " %s", whole, units[idx]);
		return buf;
	}
	/* rem < unit <= 2^60, so rem * 10 cannot overflow 64 bits. */
	tenths = ((bytes % unit) * 10 + unit / 2) / unit;
	if (tenths == 10) {
		whole++;
		tenths = 0;
	}
	snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " %s", whole, tenths, units[idx]);
	return buf;
}

int parse_seconds(const char *str, unsigned int *msec)
{
	const uint64_t max_sec = 24 * 60 * 60;
	uint64_t sec, frac = 0;
	int n;

	if (!str)
		return -EINVAL;
	n = parse_digits(str, &sec);
	if (n < 0)
		return n;
	if (n == 0)
		return -EINVAL;
	str += n;
	if (*str == '.') {
		int digits = 0;

		str++;
		while (is_digit(*str)) {
			if (digits == 3)
				return -EINVAL; /* more precision than we honour */
			frac = frac * 10 + (uint64_t)(*str - '0');
			digits++;
			str++;
		}
		if (!digits)
			return -EINVAL;
		for (; digits < 3; digits++)
			frac *= 10;
	}
	if (*str)
		return -EINVAL;
	if (sec > max_sec || (sec == max_sec && frac))
		return -ERANGE;
	*msec = (unsigned int)(sec * 1000 + frac);
	return 0;
}

int parse_count(const char *str, unsigned int *count)
{
	uint64_t v;
	int n;

	if (!str)
		return -EINVAL;
	n = parse_digits(str, &v);
	if (n < 0)
		return n;
	if (n == 0 || str[n])
		return -EINVAL;
	if (v == 0)
		return -EINVAL;
	if (v > 1000000000)
		return -ERANGE;
	*count = (unsigned int)v;
	return 0;
}

/* Copy @len bytes of @src into @dst[@size] with a NUL; false if too long. */
static int copy_bounded(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		return 0;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return 1;
}

/* Port must be all digits, 1..65535. */
static int valid_port(const char *port)
{
	uint64_t v;
	int n = parse_digits(port, &v);

	return n > 0 && !port[n] && v >= 1 && v <= 65535;
}

static int parse_tcp(const char *str, struct qmp_addr *addr, const char **why)
{
	const char *colon;
	const char *host = str;
	size_t host_len;

	if (str[0] == '[') {
		const char *end = strchr(str, ']');

		if (!end || end[1] != ':') {
			*why = "bad IPv6 address, expected [ADDR]:PORT";
			return -EINVAL;
		}
		host = str + 1;
		host_len = (size_t)(end - host);
		colon = end + 1;
	} else {
		colon = strrchr(str, ':');
		if (!colon) {
			*why = "expected HOST:PORT";
			return -EINVAL;
		}
		host_len = (size_t)(colon - str);
	}
	if (!host_len) {
		*why = "empty host name";
		return -EINVAL;
	}
	if (!valid_port(colon + 1)) {
		*why = "port must be a number from 1 to 65535";
		return -EINVAL;
	}
	if (!copy_bounded(addr->host, sizeof(addr->host), host, host_len)) {
		*why = "host name too long";
		return -EINVAL;
	}
	copy_bounded(addr->port, sizeof(addr->port), colon + 1, strlen(colon + 1));
	addr->kind = QMP_ADDR_TCP;
	return 0;
}

int parse_qmp_addr(const char *str, struct qmp_addr *addr, const char **why)
{
	const char *dummy;
	const char *colon;

	if (!why)
		why = &dummy;
	memset(addr, 0, sizeof(*addr));
	if (!str || !*str) {
		*why = "empty socket address";
		return -EINVAL;
	}
	if (!strncmp(str, "tcp:", 4))
		return parse_tcp(str + 4, addr, why);
	if (!strncmp(str, "unix:", 5))
		str += 5;
	else if (!strchr(str, '/') && (colon = strrchr(str, ':')) && valid_port(colon + 1))
		return parse_tcp(str, addr, why);

	if (!*str) {
		*why = "empty socket path";
		return -EINVAL;
	}
	if (!copy_bounded(addr->path, sizeof(addr->path), str, strlen(str))) {
		*why = "socket path too long (max 107 bytes)";
		return -EINVAL;
	}
	addr->kind = QMP_ADDR_UNIX;
	return 0;
}

void sanitize_string(char *str)
{
	for (; *str; str++)
		if ((unsigned char)*str < 0x20 || (unsigned char)*str >= 0x7f)
			*str = '?';
}
