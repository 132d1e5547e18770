// SPDX-License-Identifier: GPL-2.0-only
/*
 * Strict parser of the guest's report lines and the per-connection
 * reader, see report.h; each key and value is checked by the protocol's
 * shared code (tools/common/report_proto.c).  Every loop is bounded by the
 * line length; no allocation.
 */
#include <string.h>

#include "report.h"

/* Where a number key's value goes in struct report (words: not here). */
#define AT(field) offsetof(struct report, field)

static const size_t number_at[RK_NUM] = {
	[RK_SEQ] = AT(seq),	      [RK_MS] = AT(ms),
	[RK_PSI_SOME] = AT(psi_some), [RK_PSI_FULL] = AT(psi_full),
	[RK_TOTAL] = AT(total),	      [RK_AVAIL] = AT(avail),
	[RK_PSWPIN] = AT(pswpin),     [RK_PSWPOUT] = AT(pswpout),
	[RK_PLUGGED] = AT(plugged),   [RK_REQUESTED] = AT(requested),
	[RK_GIVE] = AT(give),
};

static enum report_guard parse_guard(const char *s, size_t len)
{
	if (len == 2 && !memcmp(s, "ok", 2))
		return RG_OK;
	if (len == 7 && !memcmp(s, "blocked", 7))
		return RG_BLOCKED;
	return RG_OTHER;
}

/* One "key=value" field, @len > 0 bytes of printable ASCII without blank. */
static int parse_field(const char *f, size_t len, struct report *r, const char **why)
{
	const char *eq = memchr(f, '=', len);
	const char *val;
	size_t klen, vlen;
	uint64_t num;
	int k;

	if (!eq) {
		*why = "field without '='";
		return -1;
	}
	klen = (size_t)(eq - f);
	val = eq + 1;
	vlen = len - klen - 1;
	if (!report_valid_key(f, klen)) {
		*why = "malformed key";
		return -1;
	}
	if (!vlen) {
		*why = "empty value";
		return -1;
	}
	k = report_key_find(f, klen);
	if (k < 0)
		return 0; /* unknown key: ignored, for forward compatibility */
	if (r->have & RK_BIT(k)) {
		*why = "duplicate key";
		return -1;
	}
	r->have |= RK_BIT(k);
	if (report_parse_value(k, val, vlen, &num, why))
		return -1;
	if (k == RK_DRIVER) {
		memcpy(r->driver, val, vlen);
		r->driver[vlen] = '\0';
	} else if (k == RK_GROWTH) {
		r->growth = parse_guard(val, vlen);
	} else if (k == RK_UNPLUG) {
		r->unplug = parse_guard(val, vlen);
	} else {
		*(uint64_t *)((char *)r + number_at[k]) = num;
	}
	return 0;
}

int report_parse(const char *line, size_t len, struct report *r, const char **why)
{
	const char *dummy;
	size_t i, start;

	if (!why)
		why = &dummy;
	memset(r, 0, sizeof(*r));
	if (len > REPORT_LINE_MAX - 1) {
		*why = "line longer than 1024 bytes";
		return -1;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c > 0x7e) {
			*why = "byte that is not printable ASCII";
			return -1;
		}
	}
	/* Fields: exactly one blank between two, none at either end. */
	for (start = 0, i = 0; i <= len; i++) {
		size_t flen;

		if (i < len && line[i] != ' ')
			continue;
		flen = i - start;
		if (!flen) {
			*why = len ? "empty field (blank at an end, or two blanks)" : "empty line";
			return -1;
		}
		if (!start) {
			if (flen == strlen(REPORT_MAGIC) && !memcmp(line, REPORT_MAGIC, flen)) {
				/* the magic */
			} else if (flen > 15 && !memcmp(line, "memplug-report/", 15)) {
				*why = "unsupported protocol version";
				return -1;
			} else {
				*why = "not a memplug report (bad magic)";
				return -1;
			}
		} else if (parse_field(line + start, flen, r, why)) {
			return -1;
		}
		start = i + 1;
	}
	if (!report_has(r, RK_SEQ)) {
		*why = "missing seq";
		return -1;
	}
	if (report_has(r, RK_AVAIL) && report_has(r, RK_TOTAL) && r->avail > r->total) {
		*why = "avail above total";
		return -1;
	}
	if (report_has(r, RK_GIVE) && report_has(r, RK_AVAIL) && r->give > r->avail) {
		*why = "give above avail";
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Reader */

/* Bytes per second allowed: a full-length line per allowed line. */
static uint64_t byte_rate(const struct report_reader *rd)
{
	return (uint64_t)rd->rate * REPORT_LINE_MAX;
}

static void refill(struct report_reader *rd, long long now)
{
	long long dt = now - rd->refill_ms;
	uint64_t line_cap = (uint64_t)rd->rate * 1000, byte_cap = byte_rate(rd) * 1000;

	if (dt <= 0)
		return;
	if (dt > 10000)
		dt = 10000; /* the buckets are full long before */
	rd->refill_ms = now;
	rd->line_tokens += (uint64_t)dt * rd->rate;
	if (rd->line_tokens > line_cap)
		rd->line_tokens = line_cap;
	rd->byte_tokens += (uint64_t)dt * byte_rate(rd);
	if (rd->byte_tokens > byte_cap)
		rd->byte_tokens = byte_cap;
}

void report_reader_init(struct report_reader *rd, unsigned int rate, long long now)
{
	memset(rd, 0, sizeof(*rd));
	if (rate < 1)
		rate = 1;
	if (rate > 1000)
		rate = 1000;
	rd->rate = rate;
	rd->refill_ms = now;
	rd->line_tokens = (uint64_t)rate * 1000;
	rd->byte_tokens = byte_rate(rd) * 1000;
}

void report_reader_reset_line(struct report_reader *rd)
{
	rd->len = 0;
	rd->discarding = 0;
}

size_t report_reader_allowance(struct report_reader *rd, long long now)
{
	refill(rd, now);
	return (size_t)(rd->byte_tokens / 1000);
}

long long report_reader_wait_ms(const struct report_reader *rd)
{
	uint64_t want = (uint64_t)REPORT_LINE_MAX * 1000;

	if (rd->byte_tokens >= want)
		return 0;
	return (long long)((want - rd->byte_tokens) / byte_rate(rd)) + 1;
}

static void invalid(struct report_reader *rd, const char *why)
{
	rd->invalid++;
	rd->last_error = why;
}

/* A complete line of rd->len bytes (without '\n') is in rd->buf. */
static int take_line(struct report_reader *rd, long long now)
{
	struct report r;
	const char *why;

	if (rd->line_tokens < 1000) {
		rd->rate_limited++;
		return 0;
	}
	rd->line_tokens -= 1000;
	if (report_parse(rd->buf, rd->len, &r, &why)) {
		invalid(rd, why);
		return 0;
	}
	if (rd->have_last) {
		if (r.seq == 0 && rd->last.seq != 0)
			rd->seq_resets++;
		else if (r.seq != rd->last.seq + 1)
			rd->seq_gaps++;
	}
	rd->valid++;
	rd->last = r;
	rd->last_ms = now;
	rd->have_last = 1;
	return 1;
}

unsigned int report_reader_feed(struct report_reader *rd, const char *data, size_t len,
				long long now)
{
	unsigned int lines = 0;

	refill(rd, now);
	rd->bytes += len;
	rd->byte_tokens = rd->byte_tokens > (uint64_t)len * 1000 ? rd->byte_tokens - len * 1000 : 0;
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t chunk = nl ? (size_t)(nl - data) : len;

		if (!rd->discarding) {
			if (rd->len + chunk > REPORT_LINE_MAX - 1) {
				/* too long: counted once, skipped up to its '\n' */
				invalid(rd, "line longer than 1024 bytes");
				rd->discarding = 1;
				rd->len = 0;
			} else {
				memcpy(rd->buf + rd->len, data, chunk);
				rd->len += chunk;
			}
		}
		if (!nl)
			break;
		if (!rd->discarding)
			lines += (unsigned int)take_line(rd, now);
		rd->discarding = 0;
		rd->len = 0;
		data = nl + 1;
		len -= chunk + 1;
	}
	return lines;
}
