// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplug-report: one report as one protocol line (docs/autosize.md):
 * "memplug-report/1" and the known keys as key=value, one space apart.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

const char *const report_key_name[RK_NUM] = {
	[RK_SEQ] = "seq",
	[RK_MS] = "ms",
	[RK_PSI_SOME] = "psi_some",
	[RK_PSI_FULL] = "psi_full",
	[RK_TOTAL] = "total",
	[RK_AVAIL] = "avail",
	[RK_PSWPIN] = "pswpin",
	[RK_PSWPOUT] = "pswpout",
	[RK_DRIVER] = "driver",
	[RK_PLUGGED] = "plugged",
	[RK_REQUESTED] = "requested",
	[RK_GROWTH] = "growth",
	[RK_UNPLUG] = "unplug",
	[RK_GIVE] = "give",
};

void report_set(struct report *r, enum report_key k, uint64_t v)
{
	r->have[k] = true;
	r->num[k] = v;
	r->word[k] = NULL;
}

void report_set_word(struct report *r, enum report_key k, const char *w)
{
	r->have[k] = true;
	r->word[k] = w;
}

/* a word value: [a-z_], 1 to REPORT_WORD_MAX characters */
static bool valid_word(const char *w)
{
	size_t n = strspn(w, "abcdefghijklmnopqrstuvwxyz_");

	return n > 0 && n <= REPORT_WORD_MAX && !w[n];
}

int report_format(const struct report *r, char *buf, size_t size)
{
	size_t n, room;
	int k, w;

	/* the line and its '\n' fit in REPORT_LINE_MAX, the NUL after it */
	room = size < REPORT_LINE_MAX + 1 ? size : REPORT_LINE_MAX + 1;
	if (!r->have[RK_SEQ] || r->word[RK_SEQ] || room < sizeof(REPORT_MAGIC) + 1)
		return -1;
	n = strlen(REPORT_MAGIC);
	memcpy(buf, REPORT_MAGIC, n);
	for (k = 0; k < RK_NUM; k++) {
		if (!r->have[k])
			continue;
		if (r->word[k] && !valid_word(r->word[k]))
			return -1;
		if (r->word[k])
			w = snprintf(buf + n, room - n, " %s=%s", report_key_name[k], r->word[k]);
		else
			w = snprintf(buf + n, room - n, " %s=%" PRIu64, report_key_name[k],
				     r->num[k]);
		/* leave room for the '\n' and the NUL */
		if (w < 0 || (size_t)w + 2 > room - n)
			return -1;
		n += (size_t)w;
	}
	buf[n++] = '\n';
	buf[n] = '\0';
	return (int)n;
}
