// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target for memplugd's report parser and reader
 * (tools/memplugd/report.c): the input is one line for the parser, then a
 * byte stream cut into reads for the reader.  Whatever a guest sends,
 * nothing may crash or leak, an accepted line obeys the protocol's
 * bounds, and the reader's memory stays fixed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"

#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

static void check_report(const struct report *r)
{
	CHECK(report_has(r, RK_SEQ));
	CHECK(!report_has(r, RK_PSI_SOME) || r->psi_some <= REPORT_PSI_MAX);
	CHECK(!report_has(r, RK_PSI_FULL) || r->psi_full <= REPORT_PSI_MAX);
	CHECK(!(report_has(r, RK_AVAIL) && report_has(r, RK_TOTAL)) || r->avail <= r->total);
	CHECK(!(report_has(r, RK_GIVE) && report_has(r, RK_AVAIL)) || r->give <= r->avail);
	CHECK(strlen(r->driver) <= REPORT_WORD_MAX);
	CHECK(r->growth <= RG_OTHER && r->unplug <= RG_OTHER);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct report_reader rd;
	const char *why = NULL;
	struct report r;
	size_t pos = 0, newlines = 0, i;
	long long now = 0;
	unsigned int valid = 0;

	if (!report_parse((const char *)data, size, &r, &why)) {
		check_report(&r);
		CHECK(size < REPORT_LINE_MAX);
		for (i = 0; i < size; i++)
			CHECK(data[i] >= 0x20 && data[i] <= 0x7e);
	} else {
		CHECK(why && *why);
	}

	report_reader_init(&rd, 1 + (size ? data[0] % 50 : 0), 0);
	for (i = 0; i < size; i++)
		newlines += data[i] == '\n';
	while (pos < size) {
		/* read sizes from the data itself: 1..64 bytes */
		size_t chunk = 1 + data[pos] % 64;

		if (chunk > size - pos)
			chunk = size - pos;
		valid += report_reader_feed(&rd, (const char *)data + pos, chunk, now);
		now += data[pos] % 7;
		pos += chunk;
		CHECK(rd.len <= REPORT_LINE_MAX - 1);
		CHECK(report_reader_allowance(&rd, now) <= (size_t)rd.rate * REPORT_LINE_MAX);
	}
	CHECK(valid == rd.valid);
	CHECK(rd.valid + rd.rate_limited <= newlines);
	CHECK(rd.bytes == size);
	if (rd.have_last)
		check_report(&rd.last);
	return 0;
}
