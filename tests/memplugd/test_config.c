// SPDX-License-Identifier: GPL-2.0-only
/*
 * cmocka unit tests of memplugd's configuration parser
 * (tools/memplugd/config.c): the defaults, every key, and errors that
 * name the file and the line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static struct mpd_config cfg;
static char err[1024];

static int parse(const char *text)
{
	err[0] = '\0';
	return config_parse(text, strlen(text), "t.conf", &cfg, err, sizeof(err));
}

static void assert_ok(const char *text)
{
	if (parse(text))
		fail_msg("rejected: %s", err);
}

/* @text fails with a message that starts with "t.conf:LINE: " and holds @what. */
static void assert_error(const char *text, int line, const char *what)
{
	char prefix[32];

	if (!parse(text))
		fail_msg("accepted:\n%s", text);
	if (line)
		snprintf(prefix, sizeof(prefix), "t.conf:%d: ", line);
	else
		snprintf(prefix, sizeof(prefix), "t.conf: ");
	if (strncmp(err, prefix, strlen(prefix)))
		fail_msg("'%s' does not start with '%s'", err, prefix);
	if (!strstr(err, what))
		fail_msg("'%s' lacks '%s'", err, what);
}

#define VM "[vm web1]\nqmp = /run/web1.qmp\nreport = /run/web1.report\n"

static void test_minimal_defaults(void **state)
{
	struct pol_params p;

	(void)state;
	assert_ok(VM);
	memset(&p, 0, sizeof(p)); /* padding, for the memory comparison */
	pol_defaults(&p);
	assert_int_equal(cfg.nr_vms, 1);
	assert_string_equal(cfg.vms[0].name, "web1");
	assert_string_equal(cfg.vms[0].qmp.path, "/run/web1.qmp");
	assert_string_equal(cfg.vms[0].report, "/run/web1.report");
	assert_int_equal(cfg.vms[0].min, 0);
	assert_int_equal(cfg.vms[0].max, 0);
	assert_int_equal(cfg.vms[0].buffer, 512 * MiB);
	assert_int_equal(cfg.vms[0].weight, 100);
	assert_int_equal(cfg.vms[0].line, 1);
	assert_int_equal(cfg.interval_ms, 1000);
	assert_false(cfg.has_budget);
	assert_false(cfg.has_host_reserve);
	assert_string_equal(cfg.host_meminfo, "/proc/meminfo");
	assert_memory_equal(&cfg.pol, &p, sizeof(p));
	assert_int_equal(p.psi_threshold, 1000);
	assert_int_equal(p.hold_down_ms, 30000);
	assert_int_equal(p.shrink_max_step, GiB);
}

static void test_every_key(void **state)
{
	(void)state;
	assert_ok("# memplugd\n"
		  "; another comment\n"
		  "\n"
		  "[daemon]\r\n"
		  "  interval = 0.2\n"
		  "qmp-timeout=0.5s\n"
		  "reconnect-max = 2\n"
		  "report-timeout = 1.5\n"
		  "report-rate = 50\n"
		  "budget = 16G\n"
		  "host-reserve = 2GiB\n"
		  "host-meminfo = /tmp/meminfo\n"
		  "psi-threshold = 12.5%\n"
		  "psi-idle = 0.25\n"
		  "psi-step = 128M\n"
		  "psi-hold = 5\n"
		  "hold-down = 60\n"
		  "shrink-interval = 20\n"
		  "shrink-ratio = 50%\n"
		  "shrink-max-step = 2G\n"
		  "hysteresis = 100\n"
		  "settle-time = 3\n"
		  "retry-after = 300\n"
		  "buffer = 1G\n"
		  "weight = 7\n"
		  "[vm web1]\n"
		  "qmp = unix:/run/web1.qmp\n"
		  "report = /run/web1 #1.report\n"
		  "device = vmem0\n"
		  "min = 1G\n"
		  "max = 8G\n"
		  "buffer = 768M\n"
		  "weight = 300\n"
		  "[ vm   db.2 ]\n"
		  "qmp = 127.0.0.1:4444\n"
		  "report = /run/db2.report\t\n");
	assert_int_equal(cfg.interval_ms, 200);
	assert_int_equal(cfg.qmp_timeout_ms, 500);
	assert_int_equal(cfg.reconnect_max_ms, 2000);
	assert_int_equal(cfg.pol.report_timeout_ms, 1500);
	assert_int_equal(cfg.report_rate, 50);
	assert_true(cfg.has_budget);
	assert_int_equal(cfg.budget, 16 * GiB);
	assert_true(cfg.has_host_reserve);
	assert_int_equal(cfg.host_reserve, 2 * GiB);
	assert_string_equal(cfg.host_meminfo, "/tmp/meminfo");
	assert_int_equal(cfg.pol.psi_threshold, 1250);
	assert_int_equal(cfg.pol.psi_idle, 25);
	assert_int_equal(cfg.pol.psi_step, 128 * MiB);
	assert_int_equal(cfg.pol.psi_hold_ms, 5000);
	assert_int_equal(cfg.pol.hold_down_ms, 60000);
	assert_int_equal(cfg.pol.shrink_interval_ms, 20000);
	assert_int_equal(cfg.pol.shrink_ratio, 50);
	assert_int_equal(cfg.pol.shrink_max_step, 2 * GiB);
	assert_int_equal(cfg.pol.hysteresis, 100);
	assert_int_equal(cfg.pol.settle_ms, 3000);
	assert_int_equal(cfg.pol.retry_ms, 300000);
	assert_int_equal(cfg.nr_vms, 2);
	assert_string_equal(cfg.vms[0].report, "/run/web1 #1.report");
	assert_string_equal(cfg.vms[0].device, "vmem0");
	assert_int_equal(cfg.vms[0].min, GiB);
	assert_int_equal(cfg.vms[0].max, 8 * GiB);
	assert_int_equal(cfg.vms[0].buffer, 768 * MiB);
	assert_int_equal(cfg.vms[0].weight, 300);
	assert_string_equal(cfg.vms[1].name, "db.2");
	assert_int_equal(cfg.vms[1].qmp.kind, QMP_ADDR_TCP);
	assert_string_equal(cfg.vms[1].report, "/run/db2.report");
	/* the [daemon] defaults for buffer and weight */
	assert_int_equal(cfg.vms[1].buffer, GiB);
	assert_int_equal(cfg.vms[1].weight, 7);
}

static void test_errors_with_lines(void **state)
{
	(void)state;
	assert_error("interval = 1\n", 1, "outside a section");
	assert_error(VM "frob = 1\n", 4, "unknown key 'frob' in [vm web1]");
	assert_error("[daemon]\n\n# x\nbudget = lots\n" VM, 4, "budget: invalid size 'lots'");
	assert_error("[daemon]\nbudget = -1G\n" VM, 2, "invalid size");
	assert_error("[daemon]\nbudget = 99999999999999999999\n" VM, 2, "invalid size");
	assert_error("[daemon]\nbudget = 0x10\n" VM, 2, "hexadecimal");
	assert_error(VM "min = 1G\nmin = 2G\n", 5,
		     "'min' set twice in [vm web1] (first on line 4)");
	assert_error(VM VM, 4, "VM 'web1' given twice (first on line 1)");
	assert_error("[daemon]\n[daemon]\n" VM, 2, "[daemon] given twice");
	assert_error("[vm web1]\nreport = /r\n[vm web2]\nqmp = /q\nreport = /r2\n", 1,
		     "[vm web1] has no 'qmp' socket");
	assert_error("[vm web1]\nqmp = /q\n", 1, "has no 'report' socket");
	assert_error(VM "min = 4G\nmax = 2G\n", 1, "min is above max");
	assert_error("[frob]\n" VM, 1, "unknown section [frob]");
	assert_error("[vm]\n", 1, "unknown section [vm]");
	assert_error("[vm -x]\n", 1, "invalid VM name '-x'");
	assert_error("[vm a/b]\n", 1, "invalid VM name");
	assert_error("[vm web1\n", 1, "malformed section header");
	assert_error(VM "just some words\n", 4, "expected 'key = value'");
	assert_error(VM "= 5\n", 4, "missing key");
	assert_error(VM "min =\n", 4, "'min' has no value");
	assert_error(VM "weight = 0\n", 4, "weight: 0 is out of range");
	assert_error(VM "weight = 10001\n", 4, "out of range");
	assert_error(VM "weight = -1\n", 4, "invalid number");
	assert_error(VM "max = 0\n", 4, "max: must not be 0");
	assert_error(VM "report = relative/path\n", 4, "set twice in [vm web1] (first on line 3)");
	assert_error("[vm web1]\nqmp = /q\nreport = relative\n", 3, "not an absolute path");
	assert_error(VM "device = 0bad\n", 4, "invalid device id");
	assert_error("[vm web1]\nqmp = tcp:nohost\nreport = /r\n", 2, "invalid QMP socket address");
	assert_error("[daemon]\ninterval = 0.01\n" VM, 2, "interval: 0.01 is out of range");
	assert_error("[daemon]\ninterval = 1.0001\n" VM, 2, "invalid duration");
	assert_error("[daemon]\ninterval = 5m\n" VM, 2, "invalid duration");
	assert_error("[daemon]\npsi-threshold = 101\n" VM, 2, "out of range");
	assert_error("[daemon]\npsi-threshold = 10.125\n" VM, 2, "invalid percentage");
	assert_error("[daemon]\nshrink-ratio = 12.5\n" VM, 2, "a whole percentage");
	assert_error("[daemon]\npsi-idle = 20\n" VM, 2, "psi-idle (20.00%) must be below");
	assert_error("[daemon]\ninterval = 10\nreport-timeout = 5\n" VM, 3,
		     "report-timeout must be at least the interval");
	assert_error("[daemon]\nqmp = /x\n" VM, 2, "'qmp' does not belong in [daemon]");
	assert_error(VM "interval = 1\n", 4, "'interval' does not belong in [vm web1]");
	assert_error(VM "buffer = 1G\xc3\xa9\n", 4, "byte 0xc3 at column 12");
	assert_error(VM "min = 1\x01G\n", 4, "byte 0x01");
	assert_error("", 0, "no [vm NAME] section");
	assert_error("[daemon]\n", 0, "no [vm NAME] section");
	assert_error(VM "[vm web2]\nqmp = /run/web1.qmp\nreport = /r2\n", 4,
		     "[vm web2] has the QMP socket of [vm web1]");
	assert_error(VM "[vm web2]\nqmp = /q2\nreport = /run/web1.report\n", 4,
		     "has the report socket of [vm web1]");
}

#define LV "[vm lv1]\nlibvirt = qemu:///system\ndomain = web1\nreport = /run/lv1.report\n"

static void test_libvirt_domain(void **state)
{
	(void)state;
	assert_ok(LV);
	assert_int_equal(cfg.nr_vms, 1);
	assert_int_equal(cfg.vms[0].kind, VM_LIBVIRT);
	assert_string_equal(cfg.vms[0].libvirt, "qemu:///system");
	assert_string_equal(cfg.vms[0].domain, "web1");
	assert_string_equal(cfg.vms[0].report, "/run/lv1.report");
	assert_string_equal(cfg.vms[0].device, "");
	assert_string_equal(cfg.vms[0].qmp_str, "");
	assert_int_equal(cfg.vms[0].buffer, 512 * MiB);
	/* with an alias, next to a QMP VM, and other URIs and domains */
	assert_ok(VM LV "alias = ua-vmem0\nmax = 8G\n"
			"[vm lv2]\n"
			"libvirt = qemu+unix:///system?socket=/run/libvirt/virtqemud-sock\n"
			"domain = 4dea22b3-1d52-d8f3-2516-782e98ab3fa0\n"
			"report = /run/lv2.report\n"
			"[vm lv3]\nlibvirt = qemu:///system\ndomain = web 1 (copy)\n"
			"report = /run/lv3.report\n");
	assert_int_equal(cfg.nr_vms, 4);
	assert_int_equal(cfg.vms[0].kind, VM_QMP);
	assert_int_equal(cfg.vms[1].kind, VM_LIBVIRT);
	assert_string_equal(cfg.vms[1].device, "ua-vmem0");
	assert_int_equal(cfg.vms[1].max, 8 * GiB);
	assert_string_equal(cfg.vms[2].libvirt,
			    "qemu+unix:///system?socket=/run/libvirt/virtqemud-sock");
	assert_string_equal(cfg.vms[2].domain, "4dea22b3-1d52-d8f3-2516-782e98ab3fa0");
	assert_string_equal(cfg.vms[3].domain, "web 1 (copy)");
}

static void test_libvirt_errors(void **state)
{
	char text[1024];

	(void)state;
	assert_error(VM "libvirt = qemu:///system\ndomain = web1\n", 1,
		     "[vm web1] has both 'qmp' and 'libvirt'");
	assert_error("[vm a]\nreport = /r\n", 1,
		     "[vm a] has no 'qmp' socket (nor 'libvirt' URI and 'domain')");
	assert_error("[vm a]\nlibvirt = qemu:///system\nreport = /r\n", 1,
		     "[vm a] has a 'libvirt' URI but no 'domain'");
	assert_error("[vm a]\ndomain = a\nreport = /r\n", 1, "has no 'qmp' socket");
	assert_error(VM "domain = web1\n", 1, "[vm web1]: 'domain' goes with 'libvirt'");
	assert_error(VM "alias = ua-vmem0\n", 1, "[vm web1]: 'alias' is for libvirt domains");
	assert_error(LV "device = vmem0\n", 1, "[vm lv1]: 'device' is for QMP");
	assert_error(LV "alias = 0bad\n", 5, "alias: invalid device alias '0bad'");
	assert_error(LV "alias = ua-a\nalias = ua-b\n", 6, "'alias' set twice in [vm lv1]");
	assert_error(LV "[vm lv2]\nlibvirt = qemu:///system\ndomain = web1\nreport = /r2\n", 5,
		     "[vm lv2] has the libvirt domain of [vm lv1]");
	assert_error(LV "[vm lv2]\nlibvirt = qemu:///system\ndomain = web2\n"
			"report = /run/lv1.report\n",
		     5, "has the report socket of [vm lv1]");
	assert_error("[daemon]\nlibvirt = qemu:///system\n" LV, 2,
		     "'libvirt' does not belong in [daemon]");
	assert_error("[vm a]\nlibvirt =\n", 2, "'libvirt' has no value");
	static const char *const bad_uris[] = {
		"qemu",
		"qemu:",
		"1qemu:///system",
		"qemu:///sys tem",
		"qe mu:///system",
		"/run/libvirt/libvirt-sock",
		":///system",
		"qemu_x:///system",
	};
	for (size_t i = 0; i < sizeof(bad_uris) / sizeof(bad_uris[0]); i++) {
		snprintf(text, sizeof(text), "[vm a]\nlibvirt = %s\ndomain = a\nreport = /r\n",
			 bad_uris[i]);
		assert_error(text, 2, "libvirt: invalid libvirt URI");
	}
	/* a domain name of 256 bytes */
	snprintf(text, sizeof(text), "[vm a]\nlibvirt = test:///default\ndomain = %0256d\n", 0);
	assert_error(text, 3, "domain: longer than 255 bytes");
	/* other schemes libvirt knows are fine */
	assert_ok("[vm a]\nlibvirt = test:///default\ndomain = test\nreport = /r\n"
		  "[vm b]\nlibvirt = qemu+ssh://root@host.example/system?keyfile=/k\n"
		  "domain = 7\nreport = /r2\n");
}

static void test_built_without_libvirt(void **state)
{
	(void)state;
	config_libvirt_support = 0;
	assert_error(VM LV, 5,
		     "libvirt: memplugd was built without libvirt support (build it with "
		     "libvirt-dev and libxml2-dev installed)");
	/* QMP VMs are as before */
	assert_ok(VM);
	config_libvirt_support = 1;
	assert_ok(VM LV);
}

static void test_limits(void **state)
{
	char *text;
	size_t len = 0, cap = 64 * 1024 * 1024;
	int i;

	(void)state;
	text = malloc(cap);
	assert_non_null(text);
	/* a line longer than 4096 bytes */
	len = (size_t)sprintf(text, VM "# ");
	memset(text + len, 'x', 5000);
	text[len + 5000] = '\0';
	assert_error(text, 4, "line longer than 4096");
	/* VM 129 is one too many */
	len = 0;
	for (i = 0; i < CFG_MAX_VMS + 1; i++)
		len += (size_t)sprintf(text + len, "[vm v%d]\nqmp = /q%d\nreport = /r%d\n", i, i,
				       i);
	assert_error(text, 3 * CFG_MAX_VMS + 1, "more than 128 VMs");
	/* a NUL byte in the file */
	assert_int_equal(config_parse(VM "min = 1G\0\n", sizeof(VM "min = 1G\0\n") - 1, "t.conf",
				      &cfg, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "t.conf:4: byte 0x00"));
	/* a file larger than 1 MiB */
	memset(text, '\n', CFG_MAX_FILE + 1);
	assert_int_equal(config_parse(text, CFG_MAX_FILE + 1, "t.conf", &cfg, err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "larger than"));
	free(text);
	/* a file that does not exist */
	assert_int_equal(config_load("/nonexistent/memplugd.conf", &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "/nonexistent/memplugd.conf: No such file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_errors_with_lines),
		cmocka_unit_test(test_libvirt_domain),
		cmocka_unit_test(test_libvirt_errors),
		cmocka_unit_test(test_built_without_libvirt),
		cmocka_unit_test(test_limits),
	};

	return cmocka_run_group_tests_name("memplugd config", tests, NULL, NULL);
}
