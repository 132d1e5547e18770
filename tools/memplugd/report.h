/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The guest's report channel, protocol v1 (docs/memplugd.md), the host's
 * end: one line per report, "memplug-report/1 key=value ...", at most 1024
 * bytes with its '\n' (the keys and limits: tools/common/report_proto.h).
 * Everything here is untrusted input from the guest: the parser is strict
 * and bounded, the reader reassembles lines from a byte stream in a fixed
 * buffer and rate-limits them.  No I/O, no clock: time is an input.
 */
#ifndef MEMPLUGD_REPORT_H
#define MEMPLUGD_REPORT_H

#include <stddef.h>
#include <stdint.h>

/* the keys, limits and value checks both ends share */
#include "report_proto.h"

/* Bits of struct report.have: which keys the line carried. */
#define RK_BIT(k) (1u << (k))

/* growth= and unplug=: a word other than ok/blocked is kept as OTHER. */
enum report_guard { RG_UNKNOWN, RG_OK, RG_BLOCKED, RG_OTHER };

struct report {
	unsigned int have; /* RK_BIT()s */
	uint64_t seq, ms, psi_some, psi_full, total, avail, pswpin, pswpout;
	uint64_t plugged, requested, give;
	char driver[REPORT_WORD_MAX + 1];
	enum report_guard growth, unplug;
};

static inline int report_has(const struct report *r, enum report_key k)
{
	return !!(r->have & RK_BIT(k));
}

/*
 * Parse one line (@len bytes, without its '\n'; it need not be
 * NUL-terminated).  Returns 0 and fills @r, or -1 with @why pointing to a
 * static reason.  A line is invalid when it is longer than
 * REPORT_LINE_MAX - 1 bytes, holds a byte that is not printable ASCII,
 * has an empty field (two blanks, a leading or trailing blank), another
 * magic or version, a field without '=' or with an empty value, a key
 * that is not [a-z][a-z0-9_]*, a known key twice, a malformed known value
 * (numbers: 1..20 digits that fit in 64 bits; words: [a-z_]{1,32}), psi
 * above 10000, or no seq (docs/autosize.md).  Unknown keys are ignored.
 * memplugd also refuses a line that contradicts itself (avail > total,
 * give > avail), which the agent promises never to write.  Leading zeros
 * and words the agent does not write (growth=maybe: RG_OTHER) pass: the
 * reference parser tests/report/protocol.py is stricter than a host.
 */
int report_parse(const char *line, size_t len, struct report *r, const char **why);

/*
 * Per-connection reader: line reassembly in a fixed buffer, counters and
 * rate limits.  Lines beyond the line rate are dropped unparsed; the byte
 * allowance tells the caller how much it may read now, which bounds the
 * CPU a flooding guest can cost (the rest waits in the socket: the guest
 * is slowed down, not us).
 */
struct report_reader {
	char buf[REPORT_LINE_MAX];
	size_t len; /* bytes of the current line so far */
	int discarding; /* the current line is too long: skip to '\n' */
	/* rate limits: token buckets, refilled continuously */
	unsigned int rate; /* lines per second (also the burst) */
	uint64_t line_tokens; /* in 1/1000 of a line */
	uint64_t byte_tokens; /* in 1/1000 of a byte */
	long long refill_ms;
	/* counters since the reader was created */
	unsigned long long bytes, valid, invalid, rate_limited, seq_resets, seq_gaps;
	const char *last_error; /* reason of the last invalid line, or NULL */
	/* the last valid report and when it arrived */
	int have_last;
	struct report last;
	long long last_ms;
};

/* A fresh reader allowing @rate lines (1..1000) per second, at @now. */
void report_reader_init(struct report_reader *rd, unsigned int rate, long long now);

/* Forget the partial line (the connection was lost); keeps the rest. */
void report_reader_reset_line(struct report_reader *rd);

/* Bytes the caller may read now (0: wait until the next refill). */
size_t report_reader_allowance(struct report_reader *rd, long long now);

/* Milliseconds until the allowance is at least one line again. */
long long report_reader_wait_ms(const struct report_reader *rd);

/*
 * Take @len bytes read at @now.  Returns the number of valid lines among
 * them (the newest is in rd->last).
 */
unsigned int report_reader_feed(struct report_reader *rd, const char *data, size_t len,
				long long now);

#endif
