// SPDX-License-Identifier: GPL-2.0-only
/*
 * cmocka unit tests of the domain XML parser that memplugd's libvirt
 * backend and memplugctl's share (tools/memplugctl/vmem_xml.c): the
 * virtio-mem devices of a live XML as libvirt 9 writes it (requested,
 * current, block, region, alias), units, malformed devices and documents,
 * and the <memory> element given to virDomainUpdateDeviceFlags().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmem_xml.h"

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

/* The live XML of a running domain (libvirt 9.0, trimmed), with a DIMM first. */
static const char live_xml[] =
	"<domain type='kvm' id='3'>\n"
	"  <name>web1</name>\n"
	"  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>\n"
	"  <maxMemory slots='16' unit='KiB'>71303168</maxMemory>\n"
	"  <memory unit='KiB'>5242880</memory>\n"
	"  <devices>\n"
	"    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
	"    <memory model='dimm'>\n"
	"      <target><size unit='KiB'>524288</size><node>0</node></target>\n"
	"      <alias name='dimm0'/>\n"
	"    </memory>\n"
	"    <channel type='unix'>\n"
	"      <source mode='bind' path='/run/memplug/web1.report.sock'/>\n"
	"      <target type='virtio' name='org.memplug.report.0' state='connected'/>\n"
	"      <alias name='channel0'/>\n"
	"    </channel>\n"
	"    <memory model='virtio-mem'>\n"
	"      <target>\n"
	"        <size unit='KiB'>16777216</size>\n"
	"        <node>0</node>\n"
	"        <block unit='KiB'>2048</block>\n"
	"        <requested unit='KiB'>6291456</requested>\n"
	"        <current unit='KiB'>4194304</current>\n"
	"        <address base='0x140000000'/>\n"
	"      </target>\n"
	"      <alias name='ua-vmem0'/>\n"
	"      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>\n"
	"    </memory>\n"
	"    <memory model='virtio-mem'>\n"
	"      <target>\n"
	"        <size unit='GiB'>4</size>\n"
	"        <node>1</node>\n"
	"        <block unit='MiB'>1024</block>\n"
	"        <current unit='bytes'>0</current>\n"
	"      </target>\n"
	"      <alias name='ua-vmem1'/>\n"
	"    </memory>\n"
	"  </devices>\n"
	"</domain>\n";

static void parse(const char *xml, int live, struct vmem_info **devs, size_t *n, int *malformed)
{
	assert_int_equal(vmem_xml_devices(xml, strlen(xml), live, devs, n, malformed), VMEM_XML_OK);
}

static void test_live_xml(void **state)
{
	struct vmem_info *d;
	size_t n;
	int malformed;

	(void)state;
	parse(live_xml, 1, &d, &n, &malformed);
	assert_false(malformed);
	assert_int_equal(n, 2);
	assert_string_equal(d[0].id, "ua-vmem0");
	assert_int_equal(d[0].index, 0);
	assert_int_equal(d[0].node, 0);
	assert_int_equal(d[0].max_size, 16 * GiB);
	assert_int_equal(d[0].block_size, 2 * MiB);
	assert_int_equal(d[0].requested_size, 6 * GiB);
	assert_int_equal(d[0].size, 4 * GiB);
	/* other units; no <requested>: 0, as libvirt starts it */
	assert_string_equal(d[1].id, "ua-vmem1");
	assert_int_equal(d[1].index, 1);
	assert_int_equal(d[1].node, 1);
	assert_int_equal(d[1].max_size, 4 * GiB);
	assert_int_equal(d[1].block_size, GiB);
	assert_int_equal(d[1].requested_size, 0);
	assert_int_equal(d[1].size, 0);
	free(d);
}

static void test_inactive_xml_has_no_plugged_size(void **state)
{
	struct vmem_info *d;
	size_t n;
	int malformed;

	(void)state;
	parse(live_xml, 0, &d, &n, &malformed);
	assert_int_equal(n, 2);
	assert_int_equal(d[0].requested_size, 6 * GiB);
	assert_int_equal(d[0].size, 0);
	free(d);
}

/* One device with @target's content; its parse result. */
static int one(const char *target, struct vmem_info *out)
{
	char xml[2048];
	struct vmem_info *d;
	size_t n;
	int malformed;

	snprintf(xml, sizeof(xml),
		 "<domain><devices><memory model='virtio-mem'><target>%s</target>"
		 "<alias name='a'/></memory></devices></domain>",
		 target);
	parse(xml, 1, &d, &n, &malformed);
	if (!malformed) {
		assert_int_equal(n, 1);
		*out = d[0];
	} else {
		assert_int_equal(n, 0);
	}
	free(d);
	return malformed ? -1 : 0;
}

static void test_units_and_malformed_devices(void **state)
{
	struct vmem_info v;

	(void)state;
	/* KiB when no unit is given, as libvirt's scaled integers */
	assert_int_equal(one("<size>1048576</size><block>2048</block>"
			     "<requested>4096</requested><current>2048</current>",
			     &v),
			 0);
	assert_int_equal(v.max_size, GiB);
	assert_int_equal(v.block_size, 2 * MiB);
	assert_int_equal(v.requested_size, 4 * MiB);
	assert_int_equal(v.size, 2 * MiB);
	assert_int_equal(v.node, -1);
	assert_int_equal(one("<size unit='b'>1073741824</size><block unit='M'>2</block>"
			     "<requested unit='G'>1</requested>",
			     &v),
			 0);
	assert_int_equal(v.max_size, GiB);
	assert_int_equal(v.requested_size, GiB);
	assert_int_equal(one("<size unit='MB'>1000</size><block unit='KB'>2048</block>", &v), 0);
	assert_int_equal(v.max_size, 1000000000);
	assert_int_equal(v.block_size, 2048000);
	/* what is malformed */
	assert_int_equal(one("<block>2048</block>", &v), -1); /* no size */
	assert_int_equal(one("<size>1048576</size>", &v), -1); /* no block */
	assert_int_equal(one("<size>1048576</size><block>0</block>", &v), -1);
	assert_int_equal(one("<size unit='furlong'>1</size><block>2048</block>", &v), -1);
	assert_int_equal(one("<size>-1</size><block>2048</block>", &v), -1);
	assert_int_equal(one("<size>0x10</size><block>2048</block>", &v), -1);
	assert_int_equal(one("<size>1 G</size><block>2048</block>", &v), -1);
	assert_int_equal(one("<size></size><block>2048</block>", &v), -1);
	assert_int_equal(one("<size unit='TiB'>99999999</size><block>2048</block>", &v), -1);
	assert_int_equal(one("<size>99999999999999999999999</size><block>2048</block>", &v), -1);
	assert_int_equal(one("<size>1048576</size><block>2048</block><requested>x</requested>", &v),
			 -1);
	assert_int_equal(one("<size>1048576</size><block>2048</block><current>-5</current>", &v),
			 -1);
	assert_int_equal(one("<size>1048576</size><block>2048</block><node>x</node>", &v), -1);
}

static void test_malformed_device_ends_the_list(void **state)
{
	static const char xml[] =
		"<domain><devices>"
		"<memory model='virtio-mem'><target><size>1048576</size><block>2048</block>"
		"</target><alias name='good'/></memory>"
		"<memory model='virtio-mem'><target><size>1048576</size></target>"
		"<alias name='bad'/></memory>"
		"<memory model='virtio-mem'><target><size>1048576</size><block>2048</block>"
		"</target><alias name='after'/></memory>"
		"</devices></domain>";
	struct vmem_info *d;
	size_t n;
	int malformed;

	(void)state;
	parse(xml, 1, &d, &n, &malformed);
	assert_true(malformed);
	assert_int_equal(n, 1);
	assert_string_equal(d[0].id, "good");
	free(d);
}

static void test_documents(void **state)
{
	struct vmem_info *d = (void *)1;
	size_t n = 7;
	int malformed = 7;
	char alias[300];

	(void)state;
	/* not XML, no root, truncated, too large */
	assert_int_equal(vmem_xml_devices("", 0, 1, &d, &n, &malformed), VMEM_XML_BAD);
	assert_null(d);
	assert_int_equal(n, 0);
	assert_int_equal(vmem_xml_devices("<domain>", 8, 1, &d, &n, &malformed), VMEM_XML_BAD);
	assert_int_equal(vmem_xml_devices("not xml", 7, 1, &d, &n, &malformed), VMEM_XML_BAD);
	assert_int_equal(vmem_xml_devices(live_xml, VMEM_XML_MAX + 1, 1, &d, &n, &malformed),
			 VMEM_XML_BAD);
	/* no devices, or no virtio-mem among them */
	parse("<domain/>", 1, &d, &n, &malformed);
	assert_int_equal(n, 0);
	assert_false(malformed);
	free(d);
	parse("<domain><devices><memory model='dimm'/><memory/></devices></domain>", 1, &d, &n,
	      &malformed);
	assert_int_equal(n, 0);
	free(d);
	/* no alias: "" (libvirt gives every device of a running domain one) */
	parse("<domain><devices><memory model='virtio-mem'><target><size>2048</size>"
	      "<block>2048</block></target></memory></devices></domain>",
	      1, &d, &n, &malformed);
	assert_int_equal(n, 1);
	assert_string_equal(d[0].id, "");
	free(d);
	/* an alias longer than an id may be */
	memset(alias, 'a', sizeof(alias) - 1);
	alias[sizeof(alias) - 1] = '\0';
	{
		char xml[1024];

		snprintf(xml, sizeof(xml),
			 "<domain><devices><memory model='virtio-mem'><target><size>2048</size>"
			 "<block>2048</block></target><alias name='%s'/></memory></devices>"
			 "</domain>",
			 alias);
		parse(xml, 1, &d, &n, &malformed);
		assert_true(malformed);
		assert_int_equal(n, 0);
		free(d);
	}
}

static void test_set_requested(void **state)
{
	struct vmem_info *d, *again;
	size_t n;
	int malformed;
	char *out;

	(void)state;
	parse(live_xml, 1, &d, &n, &malformed);
	assert_int_equal(vmem_xml_set_requested(live_xml, strlen(live_xml), 1, &d[0], 8 * GiB,
						&out),
			 VMEM_XML_OK);
	/* the device's element alone, <requested> in KiB, the rest as it was */
	assert_true(!strncmp(out, "<memory model=\"virtio-mem\">", 27));
	assert_non_null(strstr(out, "<requested unit=\"KiB\">8388608</requested>"));
	assert_non_null(strstr(out, "<size unit=\"KiB\">16777216</size>"));
	assert_non_null(strstr(out, "<alias name=\"ua-vmem0\"/>"));
	assert_null(strstr(out, "dimm"));
	assert_null(strstr(out, "ua-vmem1"));
	/* and it parses back to the same device with the new size */
	{
		char doc[4096];

		snprintf(doc, sizeof(doc), "<domain><devices>%s</devices></domain>", out);
		parse(doc, 1, &again, &n, &malformed);
		assert_int_equal(n, 1);
		assert_int_equal(again[0].requested_size, 8 * GiB);
		assert_int_equal(again[0].block_size, 2 * MiB);
		free(again);
	}
	free(out);
	/* a device defined without <requested> gets one */
	assert_int_equal(vmem_xml_set_requested(live_xml, strlen(live_xml), 1, &d[1], 2 * GiB,
						&out),
			 VMEM_XML_OK);
	assert_non_null(strstr(out, "<requested unit=\"KiB\">2097152</requested>"));
	assert_non_null(strstr(out, "ua-vmem1"));
	free(out);
	/* the device is not where it was: another alias, or gone */
	snprintf(d[0].id, sizeof(d[0].id), "ua-other");
	assert_int_equal(vmem_xml_set_requested(live_xml, strlen(live_xml), 1, &d[0], GiB, &out),
			 VMEM_XML_CHANGED);
	assert_null(out);
	d[1].index = 5;
	assert_int_equal(vmem_xml_set_requested(live_xml, strlen(live_xml), 1, &d[1], GiB, &out),
			 VMEM_XML_CHANGED);
	assert_int_equal(vmem_xml_set_requested("<x", 2, 1, &d[1], GiB, &out), VMEM_XML_BAD);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_live_xml),
		cmocka_unit_test(test_inactive_xml_has_no_plugged_size),
		cmocka_unit_test(test_units_and_malformed_devices),
		cmocka_unit_test(test_malformed_device_ends_the_list),
		cmocka_unit_test(test_documents),
		cmocka_unit_test(test_set_requested),
	};

	vmem_xml_init();
	return cmocka_run_group_tests_name("vmem_xml (libvirt domain XML)", tests, NULL, NULL);
}
