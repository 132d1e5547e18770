/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Small helpers that memplugctl's commands and its QMP client share: the
 * clock, error lines and JSON output lines.
 */
#ifndef MEMPLUGCTL_UTIL_H
#define MEMPLUGCTL_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

/* Every error line starts with this. */
#define ERROR_PREFIX "memplugctl: "

/* Milliseconds of CLOCK_MONOTONIC. */
long long now_ms(void);

/* "2024-01-31T12:34:56.789Z" from seconds and milliseconds since the epoch. */
void format_utc(time_t t, long ms, char *buf, size_t len);

/* One error line on stderr: "memplugctl: " @fmt @suffix "\n". */
void __attribute__((format(printf, 2, 0)))
verror_line(const char *suffix, const char *fmt, va_list ap);

/* Print @obj (may be NULL: nothing) as one compact JSON line; drops @obj. */
void print_json_line(json_t *obj);

#endif
