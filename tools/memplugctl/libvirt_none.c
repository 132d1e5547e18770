// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplugctl built without libvirt (no libvirt-dev, LIBVIRT=0, or the
 * static build for guests): -c and -D say so.
 */
#include <stddef.h>

#include "backend.h"

const int libvirt_supported;

struct backend *libvirt_backend_open(const char *uri, const char *domain, int timeout_ms)
{
	(void)uri;
	(void)domain;
	(void)timeout_ms;
	error_msg("built without libvirt support: -c and -D need memplugctl built with "
		  "libvirt-dev and libxml2-dev installed");
	return NULL;
}
