/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The guest's report channel, protocol v1 (docs/autosize.md), as both ends
 * share it: the guest agent tools/memplug-report writes the lines and the
 * host daemon tools/memplugd reads them.  One line per report,
 * "memplug-report/1 key=value ...", at most 1024 bytes with its '\n'.
 * Here: the keys, their names and kinds, the limits, and the strict
 * checks of one key or value.  No I/O, no allocation.
 */
#ifndef MEMPLUG_REPORT_PROTO_H
#define MEMPLUG_REPORT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define REPORT_MAGIC "memplug-report/1"
/* the longest line, its final '\n' included */
#define REPORT_LINE_MAX 1024
/* the longest word value (keys are as long as the line lets them be) */
#define REPORT_WORD_MAX 32
/* the most digits of a number value (UINT64_MAX has 20) */
#define REPORT_DIGITS_MAX 20
/* psi_some and psi_full are hundredths of a percent */
#define REPORT_PSI_MAX 10000

/* The keys, in the order the agent writes them. */
enum report_key {
	RK_SEQ,
	RK_MS,
	RK_PSI_SOME,
	RK_PSI_FULL,
	RK_TOTAL,
	RK_AVAIL,
	RK_PSWPIN,
	RK_PSWPOUT,
	RK_DRIVER,
	RK_PLUGGED,
	RK_REQUESTED,
	RK_GROWTH,
	RK_UNPLUG,
	RK_GIVE,
	RK_NUM
};

/* What a key's value is: a number, a psi number (0..REPORT_PSI_MAX), a word. */
enum report_kind { RKIND_NUMBER, RKIND_PSI, RKIND_WORD };

struct report_key_desc {
	const char *name;
	enum report_kind kind;
};

extern const struct report_key_desc report_keys[RK_NUM];

/* The known key named by the @len bytes at @s, or -1. */
int report_key_find(const char *s, size_t len);

/* A key: [a-z][a-z0-9_]*, @len > 0. */
int report_valid_key(const char *s, size_t len);

/* A word value: [a-z_], 1 to REPORT_WORD_MAX characters. */
int report_valid_word(const char *s, size_t len);

/*
 * The @len bytes at @s as a number: 1 to REPORT_DIGITS_MAX decimal digits
 * that fit in 64 bits, no sign, no blank, no other base.  Returns 0 and
 * the value in @v, or -1 (@v untouched) with @why, if not NULL, pointing
 * to a static reason.
 */
int report_parse_u64(const char *s, size_t len, uint64_t *v, const char **why);

/*
 * The value of key @k, the @len bytes at @s, checked as its kind wants:
 * a number (into @v), a psi number at most REPORT_PSI_MAX (into @v), or a
 * word (@v untouched).  Returns 0, or -1 with @why as above.
 */
int report_parse_value(enum report_key k, const char *s, size_t len, uint64_t *v, const char **why);

#endif
