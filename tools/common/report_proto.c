// SPDX-License-Identifier: GPL-2.0-only
/*
 * The report protocol's keys and the strict checks of one key or value,
 * shared by the guest agent and memplugd, see report_proto.h.  Every loop
 * is bounded by the length it is given.
 */
#include <string.h>

#include "report_proto.h"

const struct report_key_desc report_keys[RK_NUM] = {
	[RK_SEQ] = { "seq", RKIND_NUMBER },
	[RK_MS] = { "ms", RKIND_NUMBER },
	[RK_PSI_SOME] = { "psi_some", RKIND_PSI },
	[RK_PSI_FULL] = { "psi_full", RKIND_PSI },
	[RK_TOTAL] = { "total", RKIND_NUMBER },
	[RK_AVAIL] = { "avail", RKIND_NUMBER },
	[RK_PSWPIN] = { "pswpin", RKIND_NUMBER },
	[RK_PSWPOUT] = { "pswpout", RKIND_NUMBER },
	[RK_DRIVER] = { "driver", RKIND_WORD },
	[RK_PLUGGED] = { "plugged", RKIND_NUMBER },
	[RK_REQUESTED] = { "requested", RKIND_NUMBER },
	[RK_GROWTH] = { "growth", RKIND_WORD },
	[RK_UNPLUG] = { "unplug", RKIND_WORD },
	[RK_GIVE] = { "give", RKIND_NUMBER },
};

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_lower(char c)
{
	return c >= 'a' && c <= 'z';
}

int report_key_find(const char *s, size_t len)
{
	int k;

	for (k = 0; k < RK_NUM; k++)
		if (strlen(report_keys[k].name) == len && !memcmp(report_keys[k].name, s, len))
			return k;
	return -1;
}

int report_valid_key(const char *s, size_t len)
{
	size_t i;

	if (!len || !is_lower(s[0]))
		return 0;
	for (i = 1; i < len; i++)
		if (!is_lower(s[i]) && !is_digit(s[i]) && s[i] != '_')
			return 0;
	return 1;
}

int report_valid_word(const char *s, size_t len)
{
	size_t i;

	if (!len || len > REPORT_WORD_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (!is_lower(s[i]) && s[i] != '_')
			return 0;
	return 1;
}

int report_parse_u64(const char *s, size_t len, uint64_t *v, const char **why)
{
	const char *dummy;
	uint64_t x = 0;
	size_t i;

	if (!why)
		why = &dummy;
	if (!len) {
		*why = "empty value";
		return -1;
	}
	if (len > REPORT_DIGITS_MAX) {
		*why = "number longer than 20 digits";
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned int d;

		if (!is_digit(s[i])) {
			*why = "value is not an unsigned decimal number";
			return -1;
		}
		d = (unsigned int)(s[i] - '0');
		if (x > (UINT64_MAX - d) / 10) {
			*why = "number does not fit in 64 bits";
			return -1;
		}
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

int report_parse_value(enum report_key k, const char *s, size_t len, uint64_t *v, const char **why)
{
	const char *dummy;
	uint64_t x;

	if (!why)
		why = &dummy;
	if (report_keys[k].kind == RKIND_WORD) {
		if (!report_valid_word(s, len)) {
			*why = "malformed word value";
			return -1;
		}
		return 0;
	}
	if (report_parse_u64(s, len, &x, why))
		return -1;
	if (report_keys[k].kind == RKIND_PSI && x > REPORT_PSI_MAX) {
		*why = "psi above 10000 (100.00%)";
		return -1;
	}
	*v = x;
	return 0;
}
