// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplugd built without libvirt (no libvirt-dev or libxml2-dev, or
 * LIBVIRT=0): main.c tells the configuration parser, which refuses
 * 'libvirt =' ("built without libvirt support"); nothing here is reached.
 */
#include <stdio.h>

#include "dev.h"

const int dev_libvirt_supported;

int dev_libvirt_setup(char *err, size_t err_len)
{
	snprintf(err, err_len, "built without libvirt support");
	return -1;
}

int dev_libvirt_teardown(void)
{
	return 0;
}

struct dev *dev_libvirt_open(const struct mpd_config *dcfg, const struct vm_config *cfg,
			     const struct dev_sink *sink, char *err, size_t err_len)
{
	(void)dcfg;
	(void)cfg;
	(void)sink;
	dev_libvirt_setup(err, err_len);
	return NULL;
}
