// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplugd's report parser as a filter, for run.sh to hold it against the
 * reference parser tests/report/protocol.py: one verdict per input line,
 * "ok" or "invalid: <reason>", each line read whole (its '\n' removed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	while ((len = getline(&line, &cap, stdin)) >= 0) {
		const char *why = NULL;
		struct report r;

		if (len && line[len - 1] == '\n')
			len--;
		if (report_parse(line, (size_t)len, &r, &why))
			printf("invalid: %s\n", why);
		else
			printf("ok\n");
	}
	free(line);
	return 0;
}
