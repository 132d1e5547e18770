/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The virtio-mem devices of a libvirt domain's XML, pure (libxml2, no
 * libvirt, no I/O): memplugctl's libvirt backend (libvirt.c) and memplugd's
 * (tools/memplugd/dev_libvirt.c) read a domain's devices and build the
 * <memory> element of virDomainUpdateDeviceFlags() with it, and
 * tests/memplugd/test_vmem_xml.c tests it on sample XML.
 *
 *   <memory model='virtio-mem'>
 *     <target>
 *       <size unit='KiB'>4194304</size>          region       max_size
 *       <node>0</node>
 *       <block unit='KiB'>2048</block>           block        block_size
 *       <requested unit='KiB'>524288</requested> requested    requested_size
 *       <current unit='KiB'>524288</current>     plugged      size (live XML only)
 *     </target>
 *     <alias name='ua-vmem0'/>                   id
 *   </memory>
 *
 * Sizes are libvirt's scaled integers (unit, KiB by default); a device
 * defined without <requested> has 0, as libvirt starts it.
 */
#ifndef MEMPLUGCTL_VMEM_XML_H
#define MEMPLUGCTL_VMEM_XML_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

enum vmem_xml_status {
	VMEM_XML_OK = 0,
	VMEM_XML_BAD = -1, /* not an XML document with a root element */
	VMEM_XML_NOMEM = -2,
	VMEM_XML_CHANGED = -3, /* vmem_xml_set_requested(): no such device any more */
};

/* Largest domain XML parsed. */
#define VMEM_XML_MAX (16 * 1024 * 1024)

/* Once, in the main thread, before threads parse (libxml2's rule). */
void vmem_xml_init(void);

/*
 * The virtio-mem devices of domain XML @xml (@len bytes), in the order of
 * <devices>, into a new array *@devs (free()) of *@n, each with its index;
 * @live: the live XML of a running domain (<current> is the plugged size;
 * else size is 0).  A malformed device stops the list there with
 * *@malformed set.  VMEM_XML_OK, VMEM_XML_BAD or VMEM_XML_NOMEM (then
 * *@devs is NULL).
 */
int vmem_xml_devices(const char *xml, size_t len, int live, struct vmem_info **devs, size_t *n,
		     int *malformed);

/*
 * The <memory> element of @dev (found by vmem_xml_devices() in an earlier
 * XML: same index, same alias) in @xml, with its <requested> set to @size
 * (in KiB: a multiple of the block size), as a new string *@out (free())
 * for virDomainUpdateDeviceFlags().  VMEM_XML_OK, VMEM_XML_BAD,
 * VMEM_XML_NOMEM, or VMEM_XML_CHANGED when the device is not there any more.
 */
int vmem_xml_set_requested(const char *xml, size_t len, int live, const struct vmem_info *dev,
			   uint64_t size, char **out);

#endif
