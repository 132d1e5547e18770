/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What memplugctl's libvirt backend (libvirt.c) and memplugd's
 * (tools/memplugd/dev_libvirt.c) both need: libvirt set up without its
 * own reports on stderr, its last error, and finding a domain the way
 * virsh does.
 */
#ifndef MEMPLUG_LV_LOOKUP_H
#define MEMPLUG_LV_LOOKUP_H

#include <libvirt/libvirt.h>

/*
 * virInitialize() and the default event loop implementation, with
 * libvirt's error reports silenced (the callers say what failed, with
 * lv_last_error()).  0, or -1.
 */
int lv_setup(void);

/* The calling thread's last libvirt error (libvirt keeps them per thread). */
const char *lv_last_error(void);

/* @name as a domain name, then as a UUID, then as an id; NULL if none. */
virDomainPtr lv_lookup_domain(virConnectPtr conn, const char *name);

#endif
