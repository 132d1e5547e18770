// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplugd's log lines, see log.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "size.h"

static int journal_prefix;

void log_init(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	journal_prefix = 0;
	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st))
		return;
	journal_prefix = (unsigned long long)st.st_dev == dev &&
			 (unsigned long long)st.st_ino == ino;
}

void log_line(int priority, const char *fmt, ...)
{
	char line[LOG_MAX_LINE];
	size_t len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	sanitize_string(line);
	len = strlen(line);
	line[len++] = '\n';
	if (journal_prefix)
		fprintf(stderr, "<%d>", priority);
	fwrite(line, 1, len, stderr);
	fflush(stderr);
}
