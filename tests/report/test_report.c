// SPDX-License-Identifier: GPL-2.0-only
/*
 * cmocka unit tests of memplug-report's pure parts: the parsers of the
 * kernel's text (tools/memplug-report/parse.c) and the line format
 * (format.c). Built by "make -C tools/memplug-report test_report"; run by
 * tests/report/run.sh with CMOCKA_MESSAGE_OUTPUT=TAP.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "report.h"

#define MiB (UINT64_C(1) << 20)

/* the value a parser that had to succeed left in *v */
static uint64_t ok_u64(int rc, const uint64_t *v)
{
	assert_int_equal(rc, 0);
	return *v;
}

static void test_parse_u64(void **state)
{
	uint64_t v = 7;
	const char *end;

	(void)state;
	assert_int_equal(ok_u64(parse_u64("0", &end, &v), &v), 0);
	assert_int_equal(ok_u64(parse_u64("18446744073709551615", &end, &v), &v), UINT64_MAX);
	assert_string_equal(end, "");
	assert_int_equal(ok_u64(parse_u64("42 kB", &end, &v), &v), 42);
	assert_string_equal(end, " kB");
	assert_int_equal(parse_u64("18446744073709551616", &end, &v), -1);
	/* the protocol's rule (tools/common): at most 20 digits, leading zeros too */
	assert_int_equal(ok_u64(parse_u64("00000000000000000001", &end, &v), &v), 1);
	assert_int_equal(parse_u64("000000000000000000001", &end, &v), -1);
	assert_int_equal(parse_u64("", &end, &v), -1);
	assert_int_equal(parse_u64("-1", &end, &v), -1);
	assert_int_equal(parse_u64("+1", &end, &v), -1);
	assert_int_equal(parse_u64(" 1", &end, &v), -1);
}

static void test_parse_sysfs_u64(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(ok_u64(parse_sysfs_u64("2147483648\n", &v), &v), 2147483648u);
	assert_int_equal(ok_u64(parse_sysfs_u64("0", &v), &v), 0);
	assert_int_equal(parse_sysfs_u64("-1\n", &v), -1);
	assert_int_equal(parse_sysfs_u64("0x10\n", &v), -1);
	assert_int_equal(parse_sysfs_u64("12 3\n", &v), -1);
	assert_int_equal(parse_sysfs_u64("12\n\n", &v), -1);
	assert_int_equal(parse_sysfs_u64("\n", &v), -1);
	assert_int_equal(parse_sysfs_u64("", &v), -1);
	assert_int_equal(parse_sysfs_u64("99999999999999999999\n", &v), -1);
}

static const char psi[] = "some avg10=1.23 avg60=0.50 avg300=0.10 total=123456\n"
			  "full avg10=0.45 avg60=0.20 avg300=0.00 total=6543\n";

static void test_psi(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(ok_u64(parse_psi_avg10(psi, "some", &v), &v), 123);
	assert_int_equal(ok_u64(parse_psi_avg10(psi, "full", &v), &v), 45);
	assert_int_equal(ok_u64(parse_psi_avg10("some avg10=100.00 avg60=0.00\n", "some", &v), &v),
			 10000);
	assert_int_equal(ok_u64(parse_psi_avg10("some avg10=0.00", "some", &v), &v), 0);
	/* only "full" missing: the kernel of a cgroup without it */
	assert_int_equal(parse_psi_avg10("some avg10=1.00 total=1\n", "full", &v), -1);
	assert_int_equal(parse_psi_avg10("some avg10=100.01 total=1\n", "some", &v), -1);
	assert_int_equal(parse_psi_avg10("some avg10=1.5 total=1\n", "some", &v), -1);
	assert_int_equal(parse_psi_avg10("some avg10=1.234 total=1\n", "some", &v), -1);
	assert_int_equal(parse_psi_avg10("some avg10=abc total=1\n", "some", &v), -1);
	assert_int_equal(parse_psi_avg10("some avg60=1.00 total=1\n", "some", &v), -1);
	assert_int_equal(parse_psi_avg10("somewhere avg10=1.00\n", "some", &v), -1);
	assert_int_equal(parse_psi_avg10("", "some", &v), -1);
}

static const char meminfo[] = "MemTotal:        4011880 kB\n"
			      "MemFree:         3500000 kB\n"
			      "MemAvailable:    3600000 kB\n"
			      "Buffers:           12345 kB\n"
			      "HugePages_Total:       0\n";

static void test_meminfo(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(ok_u64(parse_meminfo(meminfo, "MemTotal", &v), &v), 4011880ull * 1024);
	assert_int_equal(ok_u64(parse_meminfo(meminfo, "MemAvailable", &v), &v), 3600000ull * 1024);
	assert_int_equal(parse_meminfo(meminfo, "Mem", &v), -1);
	assert_int_equal(parse_meminfo(meminfo, "HugePages_Total", &v), -1); /* no kB */
	assert_int_equal(parse_meminfo("MemTotal: 12 MB\n", "MemTotal", &v), -1);
	assert_int_equal(parse_meminfo("MemTotal: kB\n", "MemTotal", &v), -1);
	assert_int_equal(parse_meminfo("MemTotal: 12 kB junk\n", "MemTotal", &v), -1);
	assert_int_equal(parse_meminfo("MemTotal: 18014398509481984 kB\n", "MemTotal", &v), -1);
	assert_int_equal(ok_u64(parse_meminfo("MemTotal: 18014398509481983 kB", "MemTotal", &v),
				&v),
			 18014398509481983ull * 1024);
}

static void test_vmstat(void **state)
{
	const char *vmstat = "nr_free_pages 100\npswpin_x 9\npswpin 5\npswpout 77\n";
	uint64_t v = 0;

	(void)state;
	assert_int_equal(ok_u64(parse_vmstat(vmstat, "pswpin", &v), &v), 5);
	assert_int_equal(ok_u64(parse_vmstat(vmstat, "pswpout", &v), &v), 77);
	assert_int_equal(parse_vmstat(vmstat, "pgfault", &v), -1);
	assert_int_equal(parse_vmstat("pswpin -5\n", "pswpin", &v), -1);
	assert_int_equal(parse_vmstat("pswpin 5 6\n", "pswpin", &v), -1);
}

/* Two zones as Linux 6.x prints them, pagesets and all. */
static const char zoneinfo[] = "Node 0, zone      DMA\n"
			       "  per-node stats\n"
			       "      nr_inactive_anon 391894\n"
			       "  pages free     3840\n"
			       "        boost    0\n"
			       "        min      21\n"
			       "        low      26\n"
			       "        high     31\n"
			       "        promo    36\n"
			       "        spanned  4095\n"
			       "        protection: (0, 2911, 3855, 3855, 3855)\n"
			       "  pagesets\n"
			       "    cpu: 0\n"
			       "              count:    512\n"
			       "              high:     1444\n"
			       "              high_min: 1444\n"
			       "  node_unreclaimable:  0\n"
			       "Node 0, zone   Normal\n"
			       "  pages free     771824\n"
			       "        boost    0\n"
			       "        min      2116\n"
			       "        low      2888\n"
			       "        high     3660\n"
			       "  pagesets\n"
			       "              high:     99999\n";

static void test_zoneinfo(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(ok_u64(parse_zone_watermarks(zoneinfo, &v), &v),
			 (31 - 21) + (3660 - 2116));
	/* an empty zone has watermarks too */
	assert_int_equal(parse_zone_watermarks("Node 0, zone Movable\n        min      0\n"
					       "        high     0\n",
					       &v),
			 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_zone_watermarks("", &v), -1);
	/* a zone without its high watermark */
	assert_int_equal(
		parse_zone_watermarks("Node 0, zone DMA\n        min 1\n"
				      "Node 0, zone Normal\n        min 1\n        high 2\n",
				      &v),
		-1);
	assert_int_equal(
		parse_zone_watermarks("Node 0, zone DMA\n        min 5\n        high 4\n", &v), -1);
	assert_int_equal(
		parse_zone_watermarks("Node 0, zone DMA\n        min x\n        high 4\n", &v), -1);
	assert_int_equal(parse_zone_watermarks("Node 0, zone DMA\n        high 4\n", &v), -1);
}

static void test_guard(void **state)
{
	(void)state;
	assert_int_equal(parse_guard("ok\n"), 0);
	assert_int_equal(parse_guard("ok"), 0);
	assert_int_equal(parse_guard("blocked: unit 1 has 1048576 KiB in use, 524288 KiB "
				     "available elsewhere, headroom 262144 KiB\n"),
			 1);
	assert_int_equal(parse_guard("blocked\n"), 1);
	assert_int_equal(parse_guard("okay\n"), -1);
	assert_int_equal(parse_guard("blockedx\n"), -1);
	assert_int_equal(parse_guard(""), -1);
}

static void test_give(void **state)
{
	(void)state;
	/* the reserve is at least 8 MiB */
	assert_int_equal(give_bytes(1024 * MiB, 1000, 4096), 1016 * MiB);
	/* else the zones' watermark distance */
	assert_int_equal(give_bytes(1024 * MiB, 10000, 4096), 1024 * MiB - 10000 * 4096);
	/* rounded down to the page */
	assert_int_equal(give_bytes(1024 * MiB + 100, 0, 4096), 1016 * MiB);
	assert_int_equal(give_bytes(8 * MiB, 0, 4096), 0);
	assert_int_equal(give_bytes(0, 0, 4096), 0);
	assert_int_equal(give_bytes(UINT64_MAX, UINT64_MAX, 4096), 0);
}

static void test_format(void **state)
{
	char buf[REPORT_LINE_MAX + 1];
	struct report r;

	(void)state;
	memset(&r, 0, sizeof(r));
	assert_int_equal(report_format(&r, buf, sizeof(buf)), -1); /* no seq */
	report_set(&r, RK_SEQ, 0);
	assert_int_equal(report_format(&r, buf, sizeof(buf)), 23);
	assert_string_equal(buf, "memplug-report/1 seq=0\n");
	report_set_word(&r, RK_DRIVER, "virtio_mem");
	report_set(&r, RK_TOTAL, 4096);
	report_set(&r, RK_SEQ, 17);
	assert_true(report_format(&r, buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "memplug-report/1 seq=17 total=4096 driver=virtio_mem\n");
	/* too small a buffer: no line at all */
	assert_int_equal(report_format(&r, buf, 20), -1);
	assert_int_equal(report_format(&r, buf, 53), -1); /* 53 bytes and the NUL */
	assert_int_equal(report_format(&r, buf, 54), 53);
}

static void test_format_bad_words(void **state)
{
	static const char *const bad[] = { "",	  "Memplug",
					   "a b", "virtio-mem",
					   "x\n", "abcdefghijklmnopqrstuvwxyzabcdefg" };
	char buf[REPORT_LINE_MAX + 1];
	struct report r;
	size_t i;

	(void)state;
	memset(&r, 0, sizeof(r));
	report_set(&r, RK_SEQ, 1);
	report_set_word(&r, RK_GROWTH, "abcdefghijklmnopqrstuvwxyzabcdef"); /* 32: fine */
	assert_true(report_format(&r, buf, sizeof(buf)) > 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		report_set_word(&r, RK_GROWTH, bad[i]);
		assert_int_equal(report_format(&r, buf, sizeof(buf)), -1);
	}
}

/* Every key at its longest still fits in a line. */
static void test_format_longest(void **state)
{
	char buf[REPORT_LINE_MAX + 1], want[REPORT_LINE_MAX + 1];
	struct report r;
	size_t n = 0;
	int k, len;

	(void)state;
	memset(&r, 0, sizeof(r));
	n += (size_t)snprintf(want, sizeof(want), "%s", REPORT_MAGIC);
	for (k = 0; k < RK_NUM; k++) {
		if (k == RK_DRIVER || k == RK_GROWTH || k == RK_UNPLUG) {
			report_set_word(&r, k, "abcdefghijklmnopqrstuvwxyzabcdef");
			n += (size_t)snprintf(want + n, sizeof(want) - n, " %s=%s",
					      report_keys[k].name,
					      "abcdefghijklmnopqrstuvwxyzabcdef");
		} else {
			report_set(&r, k, UINT64_MAX);
			n += (size_t)snprintf(want + n, sizeof(want) - n, " %s=%s",
					      report_keys[k].name, "18446744073709551615");
		}
	}
	want[n++] = '\n';
	want[n] = '\0';
	len = report_format(&r, buf, sizeof(buf));
	assert_int_equal(len, n);
	assert_true(len <= REPORT_LINE_MAX);
	assert_string_equal(buf, want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_u64),
		cmocka_unit_test(test_parse_sysfs_u64),
		cmocka_unit_test(test_psi),
		cmocka_unit_test(test_meminfo),
		cmocka_unit_test(test_vmstat),
		cmocka_unit_test(test_zoneinfo),
		cmocka_unit_test(test_guard),
		cmocka_unit_test(test_give),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_bad_words),
		cmocka_unit_test(test_format_longest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
