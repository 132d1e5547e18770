/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memplug-report: the guest side of the report channel (docs/autosize.md).
 *
 * Once per interval it samples the guest's memory state (sample.c), formats
 * one protocol line (format.c, with the pure text parsers of parse.c) and
 * writes it to the virtio-serial port (output.c). main.c holds the loop.
 * The protocol's keys and checks are tools/common/report_proto.h's.
 */
#ifndef MEMPLUG_REPORT_H
#define MEMPLUG_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* the keys, limits and value checks both ends share */
#include "report_proto.h"

#define DEFAULT_PORT "/dev/virtio-ports/org.memplug.report.0"

/* One report: a key not in have[] is left out of the line ("not known"). */
struct report {
	bool have[RK_NUM];
	uint64_t num[RK_NUM];
	const char *word[RK_NUM]; /* driver, growth, unplug: a static string */
};

/* Where the values come from; a sample says which of them failed. */
enum report_source { SRC_PSI, SRC_MEMINFO, SRC_VMSTAT, SRC_ZONEINFO, SRC_VIRTIO, SRC_NUM };

/* err: 0, an errno of open/read, or SAMPLE_MALFORMED; path: the file. */
#define SAMPLE_MALFORMED (-1)
#define SAMPLE_PATH_LEN 1024
struct sample_errors {
	int err[SRC_NUM];
	char path[SRC_NUM][SAMPLE_PATH_LEN];
};

/* format.c */
void report_set(struct report *r, enum report_key k, uint64_t v);
void report_set_word(struct report *r, enum report_key k, const char *w);
/* The line with its '\n' (and a NUL after it) into buf; its length, or -1
 * if it cannot be a valid line (no seq, a bad word, buf too small). */
int report_format(const struct report *r, char *buf, size_t size);

/* parse.c: 0 and the value, or -1 (missing or malformed) */
int parse_u64(const char *s, const char **end, uint64_t *v);
int parse_sysfs_u64(const char *text, uint64_t *v);
int parse_psi_avg10(const char *text, const char *kind, uint64_t *hundredths);
int parse_meminfo(const char *text, const char *key, uint64_t *bytes);
int parse_vmstat(const char *text, const char *key, uint64_t *v);
int parse_zone_watermarks(const char *text, uint64_t *high_min_pages);
/* growth_guard/unplug_guard: 0 "ok", 1 "blocked...", -1 anything else */
int parse_guard(const char *text);
uint64_t give_bytes(uint64_t avail, uint64_t high_min_pages, uint64_t page_size);

/* sample.c: everything but seq; root prefixes /proc and /sys */
void sample(const char *root, struct report *r, struct sample_errors *e);
void sample_free(void);

/* output.c */
enum out_result {
	OUT_OK, /* written */
	OUT_DROPPED, /* not writable now (the host does not read): dropped */
	OUT_WAITING, /* closed, waiting to open it again */
	OUT_OPEN_FAILED, /* err */
	OUT_WRITE_FAILED, /* err; closed, opened again later */
	OUT_FATAL /* err; stdout failed, nothing to reopen */
};
struct output {
	const char *path; /* "-": standard output */
	int fd;
	long long retry_at_ms, backoff_ms;
};
void output_init(struct output *o, const char *path);
enum out_result output_write(struct output *o, const char *line, size_t len, long long now_ms,
			     int *err);
void output_close(struct output *o);

#endif
