// SPDX-License-Identifier: GPL-2.0-only
/*
 * cmocka unit tests of memplugctl's pure helpers (tools/memplugctl/size.c).
 * Built by "make -C tools/memplugctl test_size"; run by tests/tools/run.sh,
 * which asks for TAP output (CMOCKA_MESSAGE_OUTPUT=TAP).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "size.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)
#define EiB (UINT64_C(1) << 60)

static void assert_size(const char *str, uint64_t expected)
{
	const char *why = NULL;
	uint64_t bytes = 12345;

	if (parse_size(str, &bytes, &why))
		fail_msg("parse_size(\"%s\") failed: %s", str, why);
	assert_int_equal(bytes, expected);
}

static void assert_bad_size(const char *str, int expected_err)
{
	const char *why = NULL;
	uint64_t bytes = 12345;

	assert_int_equal(parse_size(str, &bytes, &why), expected_err);
	assert_non_null(why);
	assert_int_equal(bytes, 12345); /* untouched on error */
}

static void test_parse_size_units(void **state)
{
	(void)state;
	assert_size("0", 0);
	assert_size("1", 1);
	assert_size("4096", 4096);
	assert_size("10B", 10);
	assert_size("2048k", 2048 * KiB);
	assert_size("2048K", 2048 * KiB);
	assert_size("2048KiB", 2048 * KiB);
	assert_size("512M", 512 * MiB);
	assert_size("512m", 512 * MiB);
	assert_size("512MiB", 512 * MiB);
	assert_size("4G", 4 * GiB);
	assert_size("4GiB", 4 * GiB);
	assert_size("4gib", 4 * GiB);
	assert_size("1T", TiB);
	assert_size("2P", UINT64_C(2) << 50);
	assert_size("15E", 15 * EiB);
	assert_size("007", 7);
}

static void test_parse_size_limits(void **state)
{
	(void)state;
	assert_size("18446744073709551615", UINT64_MAX);
	assert_bad_size("18446744073709551616", -ERANGE);
	assert_bad_size("99999999999999999999999999", -ERANGE);
	assert_bad_size("16E", -ERANGE);
	assert_bad_size("17179869184G", -ERANGE);
	assert_size("17179869183G", 17179869183 * GiB);
	/* A very long run of zeros is still a number, but we refuse it. */
	assert_bad_size("0000000000000000000000000000000000000000000000000000000000000000000001",
			-ERANGE);
}

static void test_parse_size_garbage(void **state)
{
	const char *why;
	uint64_t bytes;

	(void)state;
	assert_bad_size("", -EINVAL);
	assert_bad_size("-1", -EINVAL);
	assert_bad_size("-1G", -EINVAL);
	assert_bad_size("+1G", -EINVAL);
	assert_bad_size(" 1G", -EINVAL);
	assert_bad_size("1G ", -EINVAL);
	assert_bad_size("1 G", -EINVAL);
	assert_bad_size("G", -EINVAL);
	assert_bad_size("GiB", -EINVAL);
	assert_bad_size("1.5G", -EINVAL);
	assert_bad_size("0x1000", -EINVAL);
	assert_bad_size("1X", -EINVAL);
	assert_bad_size("4GB", -EINVAL);
	assert_bad_size("4Gi", -EINVAL);
	assert_bad_size("4GiBs", -EINVAL);
	assert_bad_size("4GG", -EINVAL);
	assert_bad_size("1e3", -EINVAL);
	assert_bad_size("four", -EINVAL);
	assert_bad_size("1\n", -EINVAL);
	assert_int_equal(parse_size(NULL, &bytes, &why), -EINVAL);
	assert_int_equal(parse_size("junk", &bytes, NULL), -EINVAL); /* why optional */
}

/* "0x10" is refused as hexadecimal, not as a size with an unknown unit "x10". */
static void test_parse_size_hex_says_hex(void **state)
{
	const char *why = NULL;
	uint64_t bytes;

	(void)state;
	assert_int_equal(parse_size("0x10", &bytes, &why), -EINVAL);
	assert_non_null(strstr(why, "hexadecimal"));
	assert_int_equal(parse_size("0X1000", &bytes, &why), -EINVAL);
	assert_non_null(strstr(why, "hexadecimal"));
	/* a plain 0 and 0 with a unit are still sizes */
	assert_int_equal(parse_size("0", &bytes, &why), 0);
	assert_int_equal(parse_size("0G", &bytes, &why), 0);
}

static void assert_format(uint64_t bytes, const char *expected)
{
	char buf[SIZE_STR_MAX];

	assert_string_equal(format_size(bytes, buf, sizeof(buf)), expected);
}

static void test_format_size(void **state)
{
	(void)state;
	assert_format(0, "0 B");
	assert_format(1, "1 B");
	assert_format(1023, "1023 B");
	assert_format(KiB, "1 KiB");
	assert_format(1536, "1.5 KiB");
	assert_format(2 * MiB, "2 MiB");
	assert_format(4 * GiB, "4 GiB");
	assert_format(GiB + GiB / 2, "1.5 GiB");
	assert_format(GiB + 1, "1.0 GiB");
	assert_format(2 * GiB - 1, "2.0 GiB"); /* rounds, never "1.10" */
	assert_format(8 * GiB, "8 GiB");
	assert_format(TiB, "1 TiB");
	assert_format(EiB, "1 EiB");
	assert_format(UINT64_MAX, "16.0 EiB");
}

static void test_format_size_truncates(void **state)
{
	char buf[4];

	(void)state;
	format_size(4 * GiB, buf, sizeof(buf));
	assert_string_equal(buf, "4 G");
}

static void test_format_parse_roundtrip(void **state)
{
	static const uint64_t sizes[] = { 0, 1, KiB, 2 * MiB, 512 * MiB, 4 * GiB, 3 * TiB, 8 * EiB };
	char buf[SIZE_STR_MAX];
	unsigned int i;

	(void)state;
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint64_t back;
		char *space;

		/* "4 GiB" -> "4GiB", which parse_size accepts. */
		format_size(sizes[i], buf, sizeof(buf));
		space = strchr(buf, ' ');
		assert_non_null(space);
		memmove(space, space + 1, strlen(space));
		assert_int_equal(parse_size(buf, &back, NULL), 0);
		assert_int_equal(back, sizes[i]);
	}
}

static void test_parse_seconds(void **state)
{
	unsigned int ms = 7;

	(void)state;
	assert_int_equal(parse_seconds("2", &ms), 0);
	assert_int_equal(ms, 2000);
	assert_int_equal(parse_seconds("0", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(parse_seconds("0.5", &ms), 0);
	assert_int_equal(ms, 500);
	assert_int_equal(parse_seconds("1.25", &ms), 0);
	assert_int_equal(ms, 1250);
	assert_int_equal(parse_seconds("120.001", &ms), 0);
	assert_int_equal(ms, 120001);
	assert_int_equal(parse_seconds("86400", &ms), 0);
	assert_int_equal(ms, 86400000);
	ms = 7;
	assert_int_equal(parse_seconds("86400.001", &ms), -ERANGE);
	assert_int_equal(parse_seconds("86401", &ms), -ERANGE);
	assert_int_equal(parse_seconds("99999999999999999999999", &ms), -ERANGE);
	assert_int_equal(parse_seconds("", &ms), -EINVAL);
	assert_int_equal(parse_seconds("-1", &ms), -EINVAL);
	assert_int_equal(parse_seconds("1.", &ms), -EINVAL);
	assert_int_equal(parse_seconds(".5", &ms), -EINVAL);
	assert_int_equal(parse_seconds("1.2345", &ms), -EINVAL);
	assert_int_equal(parse_seconds("2s", &ms), -EINVAL);
	assert_int_equal(parse_seconds("abc", &ms), -EINVAL);
	assert_int_equal(parse_seconds(NULL, &ms), -EINVAL);
	assert_int_equal(ms, 7);
}

static void test_parse_count(void **state)
{
	unsigned int n = 7;

	(void)state;
	assert_int_equal(parse_count("1", &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(parse_count("1000000000", &n), 0);
	assert_int_equal(n, 1000000000);
	n = 7;
	assert_int_equal(parse_count("0", &n), -EINVAL);
	assert_int_equal(parse_count("-3", &n), -EINVAL);
	assert_int_equal(parse_count("3x", &n), -EINVAL);
	assert_int_equal(parse_count("", &n), -EINVAL);
	assert_int_equal(parse_count("1000000001", &n), -ERANGE);
	assert_int_equal(parse_count("99999999999999999999999", &n), -ERANGE);
	assert_int_equal(n, 7);
}

static void test_parse_qmp_addr_unix(void **state)
{
	struct qmp_addr a;
	char long_path[200];

	(void)state;
	assert_int_equal(parse_qmp_addr("/run/qemu/qmp.sock", &a, NULL), 0);
	assert_int_equal(a.kind, QMP_ADDR_UNIX);
	assert_string_equal(a.path, "/run/qemu/qmp.sock");
	assert_int_equal(parse_qmp_addr("qmp.sock", &a, NULL), 0);
	assert_int_equal(a.kind, QMP_ADDR_UNIX);
	assert_string_equal(a.path, "qmp.sock");
	assert_int_equal(parse_qmp_addr("unix:/tmp/x:4444", &a, NULL), 0);
	assert_int_equal(a.kind, QMP_ADDR_UNIX);
	assert_string_equal(a.path, "/tmp/x:4444");
	/* A '/' makes it a path even if it ends in ":port". */
	assert_int_equal(parse_qmp_addr("./dir/sock:4444", &a, NULL), 0);
	assert_int_equal(a.kind, QMP_ADDR_UNIX);
	/* Not a valid port: a file name with a colon. */
	assert_int_equal(parse_qmp_addr("sock:abc", &a, NULL), 0);
	assert_int_equal(a.kind, QMP_ADDR_UNIX);

	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	long_path[sizeof(long_path) - 1] = '\0';
	assert_int_equal(parse_qmp_addr(long_path, &a, NULL), -EINVAL);
	long_path[107] = '\0'; /* 107 bytes + NUL fit sun_path */
	assert_int_equal(parse_qmp_addr(long_path, &a, NULL), 0);
	long_path[107] = 'a';
	long_path[108] = '\0';
	assert_int_equal(parse_qmp_addr(long_path, &a, NULL), -EINVAL);
}

static void test_parse_qmp_addr_tcp(void **state)
{
	const char *why;
	struct qmp_addr a;

	(void)state;
	assert_int_equal(parse_qmp_addr("localhost:4444", &a, NULL), 0);
	assert_int_equal(a.kind, QMP_ADDR_TCP);
	assert_string_equal(a.host, "localhost");
	assert_string_equal(a.port, "4444");
	assert_int_equal(parse_qmp_addr("tcp:10.0.0.1:65535", &a, NULL), 0);
	assert_int_equal(a.kind, QMP_ADDR_TCP);
	assert_string_equal(a.host, "10.0.0.1");
	assert_string_equal(a.port, "65535");
	assert_int_equal(parse_qmp_addr("[::1]:4444", &a, NULL), 0);
	assert_int_equal(a.kind, QMP_ADDR_TCP);
	assert_string_equal(a.host, "::1");
	assert_int_equal(parse_qmp_addr("tcp:[::1]:1", &a, NULL), 0);
	assert_string_equal(a.host, "::1");
	assert_string_equal(a.port, "1");

	assert_int_equal(parse_qmp_addr("tcp:host:0", &a, &why), -EINVAL);
	assert_int_equal(parse_qmp_addr("tcp:host:65536", &a, &why), -EINVAL);
	assert_int_equal(parse_qmp_addr("tcp:host", &a, &why), -EINVAL);
	assert_int_equal(parse_qmp_addr("tcp::4444", &a, &why), -EINVAL);
	assert_int_equal(parse_qmp_addr("tcp:[::1]4444", &a, &why), -EINVAL);
	assert_int_equal(parse_qmp_addr("", &a, &why), -EINVAL);
	assert_int_equal(parse_qmp_addr("unix:", &a, &why), -EINVAL);
	assert_int_equal(parse_qmp_addr(NULL, &a, &why), -EINVAL);
}

static void test_sanitize_string(void **state)
{
	char s[] = "ok \x1b[31mred\x7f\n\xc2\x9b end";

	(void)state;
	sanitize_string(s);
	assert_string_equal(s, "ok ?[31mred???? end");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_size_units),
		cmocka_unit_test(test_parse_size_limits),
		cmocka_unit_test(test_parse_size_garbage),
		cmocka_unit_test(test_parse_size_hex_says_hex),
		cmocka_unit_test(test_format_size),
		cmocka_unit_test(test_format_size_truncates),
		cmocka_unit_test(test_format_parse_roundtrip),
		cmocka_unit_test(test_parse_seconds),
		cmocka_unit_test(test_parse_count),
		cmocka_unit_test(test_parse_qmp_addr_unix),
		cmocka_unit_test(test_parse_qmp_addr_tcp),
		cmocka_unit_test(test_sanitize_string),
	};

	return cmocka_run_group_tests_name("memplugctl_size", tests, NULL, NULL);
}
