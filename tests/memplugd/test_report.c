// SPDX-License-Identifier: GPL-2.0-only
/*
 * cmocka unit tests of memplugd's report parser and reader
 * (tools/memplugd/report.c): every malformed line the protocol forbids,
 * line reassembly across reads, the 1024-byte limit, the rate limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "report.h"

#define FULL                                                                           \
	"memplug-report/1 seq=7 ms=123456 psi_some=1234 psi_full=56 total=4294967296 " \
	"avail=1073741824 pswpin=1 pswpout=2 driver=memplug plugged=2147483648 "       \
	"requested=2147483648 growth=ok unplug=blocked give=0"

static int parse(const char *line, struct report *r, const char **why)
{
	return report_parse(line, strlen(line), r, why);
}

static void assert_valid(const char *line)
{
	const char *why = NULL;
	struct report r;

	if (parse(line, &r, &why))
		fail_msg("'%s' rejected: %s", line, why);
}

static void assert_invalid(const char *line, const char *reason)
{
	const char *why = NULL;
	struct report r;

	if (!parse(line, &r, &why))
		fail_msg("'%s' accepted", line);
	assert_non_null(why);
	if (reason && !strstr(why, reason))
		fail_msg("'%s': reason '%s' lacks '%s'", line, why, reason);
}

static void test_full_line(void **state)
{
	const char *why = NULL;
	struct report r;

	(void)state;
	assert_int_equal(parse(FULL, &r, &why), 0);
	assert_int_equal(r.have, (1u << RK_NUM) - 1);
	assert_int_equal(r.seq, 7);
	assert_int_equal(r.ms, 123456);
	assert_int_equal(r.psi_some, 1234);
	assert_int_equal(r.psi_full, 56);
	assert_int_equal(r.total, 4294967296ULL);
	assert_int_equal(r.avail, 1073741824ULL);
	assert_int_equal(r.pswpin, 1);
	assert_int_equal(r.pswpout, 2);
	assert_string_equal(r.driver, "memplug");
	assert_int_equal(r.plugged, 2147483648ULL);
	assert_int_equal(r.requested, 2147483648ULL);
	assert_int_equal(r.growth, RG_OK);
	assert_int_equal(r.unplug, RG_BLOCKED);
	assert_int_equal(r.give, 0);
}

static void test_minimal_and_unknown_keys(void **state)
{
	const char *why = NULL;
	struct report r;

	(void)state;
	assert_int_equal(parse("memplug-report/1 seq=0", &r, &why), 0);
	assert_int_equal(r.have, RK_BIT(RK_SEQ));
	/* unknown keys are ignored, even twice, whatever their value */
	assert_int_equal(
		parse("memplug-report/1 future_key=X-1.5 seq=1 future_key=? zz9=0", &r, &why), 0);
	assert_int_equal(r.have, RK_BIT(RK_SEQ));
	/* a word other than ok/blocked is kept as "other" */
	assert_int_equal(parse("memplug-report/1 seq=1 growth=maybe driver=virtio_mem", &r, &why),
			 0);
	assert_int_equal(r.growth, RG_OTHER);
	assert_string_equal(r.driver, "virtio_mem");
	assert_valid("memplug-report/1 seq=18446744073709551615 total=18446744073709551615");
	assert_valid("memplug-report/1 seq=00000000000000000001");
	assert_valid("memplug-report/1 seq=1 psi_some=10000 psi_full=0");
}

static void test_length(void **state)
{
	char line[2048];
	size_t base;

	(void)state;
	/* 1023 bytes (1024 with its '\n'): the longest valid line */
	strcpy(line, "memplug-report/1 seq=1 pad=");
	base = strlen(line);
	memset(line + base, 'x', 1023 - base);
	line[1023] = '\0';
	assert_valid(line);
	line[1023] = 'x';
	line[1024] = '\0';
	assert_invalid(line, "longer than 1024");
	assert_invalid("", "empty line");
}

static void test_bad_numbers(void **state)
{
	(void)state;
	assert_invalid("memplug-report/1 seq=-1", "not an unsigned decimal");
	assert_invalid("memplug-report/1 seq=+1", "not an unsigned decimal");
	assert_invalid("memplug-report/1 seq=1.5", "not an unsigned decimal");
	assert_invalid("memplug-report/1 seq=0x10", "not an unsigned decimal");
	assert_invalid("memplug-report/1 seq=12a", "not an unsigned decimal");
	assert_invalid("memplug-report/1 seq=1e3", "not an unsigned decimal");
	assert_invalid("memplug-report/1 seq=", "empty value");
	assert_invalid("memplug-report/1 seq=1 avail=", "empty value");
	assert_invalid("memplug-report/1 seq=1 give==1", "not an unsigned decimal");
	/* more than 20 digits, even with leading zeros */
	assert_invalid("memplug-report/1 seq=000000000000000000001", "longer than 20");
	assert_invalid("memplug-report/1 seq=18446744073709551616", "does not fit");
	assert_invalid("memplug-report/1 seq=1 total=99999999999999999999", "does not fit");
	assert_invalid("memplug-report/1 seq=1 psi_some=10001", "psi above 10000");
	assert_invalid("memplug-report/1 seq=1 psi_full=18446744073709551615", "psi above");
}

static void test_duplicates(void **state)
{
	(void)state;
	assert_invalid("memplug-report/1 seq=1 seq=1", "duplicate key");
	assert_invalid("memplug-report/1 seq=1 avail=1 total=5 avail=2", "duplicate key");
	assert_invalid("memplug-report/1 seq=1 driver=memplug driver=memplug", "duplicate key");
	assert_invalid("memplug-report/1 seq=1 unplug=ok unplug=blocked", "duplicate key");
}

static void test_bytes(void **state)
{
	const char *why = NULL;
	struct report r;
	static const char nul_line[] = "memplug-report/1 seq=1\0 avail=5";

	(void)state;
	assert_invalid("memplug-report/1 seq=1 driver=m\xc3\xa9mplug", "printable ASCII");
	assert_invalid("memplug-report/1 seq=1\tavail=1", "printable ASCII");
	assert_invalid("memplug-report/1 seq=1\r", "printable ASCII");
	assert_invalid("memplug-report/1 seq=1 \x7f", "printable ASCII");
	assert_invalid("memplug-report/1 seq=1 \x1b[2J", "printable ASCII");
	assert_int_equal(report_parse(nul_line, sizeof(nul_line) - 1, &r, &why), -1);
	assert_non_null(strstr(why, "printable ASCII"));
}

static void test_structure(void **state)
{
	(void)state;
	assert_invalid("memplug-report/1", "missing seq");
	assert_invalid("memplug-report/1 avail=1", "missing seq");
	assert_invalid("memplug-report/2 seq=1", "unsupported protocol version");
	assert_invalid("memplug-report/10 seq=1", "unsupported protocol version");
	assert_invalid("memplug-reporT/1 seq=1", "bad magic");
	assert_invalid("memplug-report/ seq=1", "bad magic");
	assert_invalid("seq=1 memplug-report/1", "bad magic");
	assert_invalid("hello", "bad magic");
	assert_invalid(" memplug-report/1 seq=1", "empty field");
	assert_invalid("memplug-report/1 seq=1 ", "empty field");
	assert_invalid("memplug-report/1  seq=1", "empty field");
	assert_invalid("memplug-report/1 seq=1 avail", "without '='");
	assert_invalid("memplug-report/1 seq=1 =5", "malformed key");
	assert_invalid("memplug-report/1 Seq=1", "malformed key");
	assert_invalid("memplug-report/1 seq=1 a-b=1", "malformed key");
	assert_invalid("memplug-report/1 seq=1 9ab=1", "malformed key");
	/* keys have no length limit of their own (a later version's) */
	assert_valid("memplug-report/1 seq=1 "
		     "a_key_of_a_later_version_longer_than_thirty_two_bytes=1");
	assert_invalid("memplug-report/1 seq=1 x=\xc3\xa9", "printable ASCII");
	assert_invalid("memplug-report/1 seq=1 driver=Memplug", "malformed word");
	assert_invalid("memplug-report/1 seq=1 driver=virtio-mem", "malformed word");
	assert_invalid("memplug-report/1 seq=1 growth=0", "malformed word");
	assert_invalid("memplug-report/1 seq=1 driver=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		       "malformed word");
	assert_valid("memplug-report/1 seq=1 driver=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
}

static void test_contradictions(void **state)
{
	(void)state;
	assert_invalid("memplug-report/1 seq=1 total=100 avail=101", "avail above total");
	assert_invalid("memplug-report/1 seq=1 avail=100 give=101", "give above avail");
	assert_valid("memplug-report/1 seq=1 total=100 avail=100 give=100");
	/* without the other key nothing can be compared */
	assert_valid("memplug-report/1 seq=1 give=101");
}

/* ------------------------------------------------------------------ */
/* Reader */

static void test_reassembly(void **state)
{
	static struct report_reader rd;
	const char *text = "memplug-report/1 seq=1 avail=5\nmemplug-report/1 seq=2 avail=6\n";
	size_t i;
	unsigned int lines = 0;

	(void)state;
	report_reader_init(&rd, 20, 0);
	for (i = 0; i < strlen(text); i++)
		lines += report_reader_feed(&rd, text + i, 1, 10);
	assert_int_equal(lines, 2);
	assert_int_equal(rd.valid, 2);
	assert_int_equal(rd.invalid, 0);
	assert_int_equal(rd.last.seq, 2);
	assert_int_equal(rd.last.avail, 6);
	assert_int_equal(rd.last_ms, 10);
	/* a partial line is forgotten when the connection is lost */
	report_reader_feed(&rd, "memplug-report/1 se", 19, 20);
	report_reader_reset_line(&rd);
	assert_int_equal(report_reader_feed(&rd, "memplug-report/1 seq=3\n", 23, 30), 1);
	assert_int_equal(rd.invalid, 0);
	/* two in one read */
	assert_int_equal(report_reader_feed(&rd, "memplug-report/1 seq=4\nmemplug-report/1 seq=5\n",
					    46, 40),
			 2);
	assert_int_equal(rd.seq_gaps, 0);
	assert_int_equal(report_reader_feed(&rd, "memplug-report/1 seq=0\n", 23, 50), 1);
	assert_int_equal(rd.seq_resets, 1);
	assert_int_equal(report_reader_feed(&rd, "memplug-report/1 seq=9\n", 23, 60), 1);
	assert_int_equal(rd.seq_gaps, 1);
}

static void test_too_long_discarded(void **state)
{
	static struct report_reader rd;
	char chunk[700];
	int i;

	(void)state;
	report_reader_init(&rd, 1000, 0);
	memset(chunk, 'x', sizeof(chunk));
	/* 7000 bytes without '\n', in pieces: one invalid line, memory fixed */
	for (i = 0; i < 10; i++)
		assert_int_equal(report_reader_feed(&rd, chunk, sizeof(chunk), 1), 0);
	assert_int_equal(rd.invalid, 1);
	assert_true(rd.len <= REPORT_LINE_MAX);
	/* the rest of it up to '\n' is skipped; the next line counts */
	assert_int_equal(report_reader_feed(&rd, "xx seq=1\nmemplug-report/1 seq=2\n", 32, 2), 1);
	assert_int_equal(rd.invalid, 1);
	assert_int_equal(rd.last.seq, 2);
	assert_string_equal(rd.last_error, "line longer than 1024 bytes");
	/* exactly 1024 bytes with '\n' is fine, 1025 is not */
	memset(chunk, 'x', sizeof(chunk));
	{
		char line[1100];
		size_t base;

		strcpy(line, "memplug-report/1 seq=3 pad=");
		base = strlen(line);
		memset(line + base, 'x', 1023 - base);
		line[1023] = '\n';
		assert_int_equal(report_reader_feed(&rd, line, 1024, 3), 1);
		memset(line + base, 'x', 1024 - base);
		line[1024] = '\n';
		assert_int_equal(report_reader_feed(&rd, line, 1025, 4), 0);
		assert_int_equal(rd.invalid, 2);
	}
	/* invalid lines do not replace the last valid report */
	assert_int_equal(report_reader_feed(&rd, "memplug-report/1 seq=4 seq=4\n", 29, 5), 0);
	assert_int_equal(rd.last.seq, 3);
	assert_string_equal(rd.last_error, "duplicate key");
}

static void test_rate_limit(void **state)
{
	static struct report_reader rd;
	const char *line = "memplug-report/1 seq=1\n";
	int i;

	(void)state;
	report_reader_init(&rd, 20, 0);
	for (i = 0; i < 25; i++)
		report_reader_feed(&rd, line, strlen(line), 0);
	assert_int_equal(rd.valid, 20);
	assert_int_equal(rd.rate_limited, 5);
	/* 100 ms later: two more */
	for (i = 0; i < 5; i++)
		report_reader_feed(&rd, line, strlen(line), 100);
	assert_int_equal(rd.valid, 22);
	assert_int_equal(rd.rate_limited, 8);
	/* the bucket holds at most one second's worth */
	for (i = 0; i < 40; i++)
		report_reader_feed(&rd, line, strlen(line), 100000);
	assert_int_equal(rd.valid, 42);
}

static void test_byte_allowance(void **state)
{
	static struct report_reader rd;
	char junk[4096];
	int i;

	(void)state;
	memset(junk, 'j', sizeof(junk));
	report_reader_init(&rd, 20, 0);
	assert_int_equal(report_reader_allowance(&rd, 0), 20 * REPORT_LINE_MAX);
	for (i = 0; i < 5; i++)
		report_reader_feed(&rd, junk, sizeof(junk), 0);
	assert_int_equal(report_reader_allowance(&rd, 0), 0);
	assert_true(report_reader_wait_ms(&rd) > 0);
	assert_true(report_reader_wait_ms(&rd) <= 51);
	assert_int_equal(report_reader_allowance(&rd, 500), 10 * REPORT_LINE_MAX);
	assert_int_equal(report_reader_allowance(&rd, 5000), 20 * REPORT_LINE_MAX);
	assert_int_equal(report_reader_wait_ms(&rd), 0);
	/* clock going backwards changes nothing */
	assert_int_equal(report_reader_allowance(&rd, 10), 20 * REPORT_LINE_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_line),  cmocka_unit_test(test_minimal_and_unknown_keys),
		cmocka_unit_test(test_length),	   cmocka_unit_test(test_bad_numbers),
		cmocka_unit_test(test_duplicates), cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_structure),  cmocka_unit_test(test_contradictions),
		cmocka_unit_test(test_reassembly), cmocka_unit_test(test_too_long_discarded),
		cmocka_unit_test(test_rate_limit), cmocka_unit_test(test_byte_allowance),
	};

	return cmocka_run_group_tests_name("memplugd report", tests, NULL, NULL);
}
