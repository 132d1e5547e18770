// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplug-report: one report as one protocol line (docs/autosize.md):
 * "memplug-report/1" and the known keys as key=value, one space apart.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "report.h"

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
		if (r->word[k] && !report_valid_word(r->word[k], strlen(r->word[k])))
			return -1;
		if (r->word[k])
			w = snprintf(buf + n, room - n, " %s=%s", report_keys[k].name, r->word[k]);
		else
			w = snprintf(buf + n, room - n, " %s=%" PRIu64, report_keys[k].name,
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
