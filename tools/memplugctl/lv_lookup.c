// SPDX-License-Identifier: GPL-2.0-only
/*
 * Finding a libvirt domain, see lv_lookup.h.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lv_lookup.h"

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
