// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplug-report: pure parsers of the kernel's text (no I/O), each over the
 * whole NUL-terminated contents of one file. A value that is not exactly
 * what the kernel prints is "not known" (-1), never a guess.
 */
#include <string.h>

#include "report.h"

static bool at_eol(const char *p)
{
	return *p == '\n' || *p == '\0';
}

static const char *skip_blanks(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* The first line of text that starts with key followed by sep, or NULL. */
static const char *find_line(const char *text, const char *key, char sep)
{
	size_t n = strlen(key);
	const char *p = text;

	while (*p) {
		if (!strncmp(p, key, n) && p[n] == sep)
			return p + n + 1;
		p = strchr(p, '\n');
		if (!p)
			break;
		p++;
	}
	return NULL;
}

/* The decimal number at the start of s: report_parse_u64()'s rules. */
int parse_u64(const char *s, const char **end, uint64_t *v)
{
	size_t n = strspn(s, "0123456789");

	if (report_parse_u64(s, n, v, NULL))
		return -1;
	if (end)
		*end = s + n;
	return 0;
}

/* A sysfs value: decimal, one optional newline, nothing else. */
int parse_sysfs_u64(const char *text, uint64_t *v)
{
	const char *end;

	if (parse_u64(text, &end, v))
		return -1;
	if (*end == '\n')
		end++;
	return *end ? -1 : 0;
}

/* "some avg10=1.23 avg60=... total=..." (kind "some" or "full") -> 123 */
int parse_psi_avg10(const char *text, const char *kind, uint64_t *hundredths)
{
	const char *p = find_line(text, kind, ' ');
	uint64_t whole, frac;

	while (p && !at_eol(p)) {
		p = skip_blanks(p);
		if (!strncmp(p, "avg10=", 6)) {
			p += 6;
			if (parse_u64(p, &p, &whole) || *p != '.')
				return -1;
			if (p[1] < '0' || p[1] > '9' || p[2] < '0' || p[2] > '9')
				return -1;
			frac = (uint64_t)(p[1] - '0') * 10 + (uint64_t)(p[2] - '0');
			if ((p[3] != ' ' && !at_eol(p + 3)) || whole > 100)
				return -1;
			*hundredths = whole * 100 + frac;
			return *hundredths > REPORT_PSI_MAX ? -1 : 0;
		}
		p += strcspn(p, " \n");
	}
	return -1;
}

/* "MemTotal:       16336732 kB" -> bytes */
int parse_meminfo(const char *text, const char *key, uint64_t *bytes)
{
	const char *p = find_line(text, key, ':');
	uint64_t kb;

	if (!p || parse_u64(skip_blanks(p), &p, &kb))
		return -1;
	p = skip_blanks(p);
	if (strncmp(p, "kB", 2) || !at_eol(skip_blanks(p + 2)) || kb > UINT64_MAX / 1024)
		return -1;
	*bytes = kb * 1024;
	return 0;
}

/* "pswpin 42" */
int parse_vmstat(const char *text, const char *key, uint64_t *v)
{
	const char *p = find_line(text, key, ' ');

	if (!p || parse_u64(p, &p, v) || !at_eol(p))
		return -1;
	return 0;
}

/*
 * The sum over all zones of /proc/zoneinfo of (high - min) watermark pages:
 * in each "Node N, zone NAME" section, the lines "min N" and "high N"
 * (not the per-CPU "high:  N" of the pagesets, nor "high_min:").
 */
int parse_zone_watermarks(const char *text, uint64_t *high_min_pages)
{
	uint64_t sum = 0, min = 0, v;
	bool in_zone = false, have_min = false, have_high = false;
	const char *line, *p;

	for (line = text; *line; line = p + (*p == '\n')) {
		p = skip_blanks(line);
		if (!strncmp(line, "Node ", 5)) {
			if (in_zone && !have_high)
				return -1;
			in_zone = true;
			have_min = have_high = false;
		} else if (in_zone && (!strncmp(p, "min ", 4) || !strncmp(p, "high ", 5))) {
			bool is_min = p[0] == 'm';

			p = skip_blanks(p + (is_min ? 4 : 5));
			if (parse_u64(p, &p, &v) || !at_eol(skip_blanks(p)))
				return -1;
			if (is_min) {
				min = v;
				have_min = true;
			} else {
				if (!have_min || have_high || v < min || sum + (v - min) < sum)
					return -1;
				sum += v - min;
				have_high = true;
			}
		}
		p += strcspn(p, "\n");
	}
	if (!in_zone || !have_high)
		return -1;
	*high_min_pages = sum;
	return 0;
}

int parse_guard(const char *text)
{
	if (!strcmp(text, "ok\n") || !strcmp(text, "ok"))
		return 0;
	if (!strncmp(text, "blocked", 7) && (text[7] == ':' || at_eol(text + 7)))
		return 1;
	return -1;
}

/*
 * What the guest could give up without pressure: MemAvailable minus a
 * reserve of the zones' (high - min) watermark distance, at least 8 MiB,
 * rounded down to the page.
 */
uint64_t give_bytes(uint64_t avail, uint64_t high_min_pages, uint64_t page_size)
{
	uint64_t reserve = 8ULL << 20;

	if (high_min_pages > UINT64_MAX / page_size)
		return 0;
	if (high_min_pages * page_size > reserve)
		reserve = high_min_pages * page_size;
	if (avail <= reserve)
		return 0;
	return (avail - reserve) / page_size * page_size;
}
