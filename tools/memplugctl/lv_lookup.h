/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Finding a libvirt domain the way virsh does, for memplugctl's libvirt
 * backend (libvirt.c) and memplugd's (tools/memplugd/dev_libvirt.c).
 */
#ifndef MEMPLUG_LV_LOOKUP_H
#define MEMPLUG_LV_LOOKUP_H

#include <libvirt/libvirt.h>

/* @name as a domain name, then as a UUID, then as an id; NULL if none. */
virDomainPtr lv_lookup_domain(virConnectPtr conn, const char *name);

#endif
