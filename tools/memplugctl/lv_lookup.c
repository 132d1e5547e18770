// SPDX-License-Identifier: GPL-2.0-only
/*
 * libvirt helpers of memplugctl and memplugd, see lv_lookup.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/virterror.h>

#include "lv_lookup.h"

/* libvirt's own reporting would print to stderr: the callers say it. */
static void quiet_errors(void *opaque, virErrorPtr err)
{
	(void)opaque;
	(void)err;
}

int lv_setup(void)
{
	virSetErrorFunc(NULL, quiet_errors);
	return virInitialize() < 0 || virEventRegisterDefaultImpl() < 0 ? -1 : 0;
}

const char *lv_last_error(void)
{
	const char *msg = virGetLastErrorMessage();

	return msg && *msg ? msg : "unknown libvirt error";
}

virDomainPtr lv_lookup_domain(virConnectPtr conn, const char *name)
{
	virDomainPtr dom = virDomainLookupByName(conn, name);
	char *end;
	long id;

	if (!dom && strlen(name) == VIR_UUID_STRING_BUFLEN - 1)
		dom = virDomainLookupByUUIDString(conn, name);
	if (!dom && *name >= '0' && *name <= '9') {
		id = strtol(name, &end, 10);
		if (!*end && id >= 0 && id <= INT32_MAX)
			dom = virDomainLookupByID(conn, (int)id);
	}
	return dom;
}
