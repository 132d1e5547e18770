/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The host's MemAvailable, for "host-reserve" (leave this much free).
 */
#ifndef MEMPLUGD_HOSTMEM_H
#define MEMPLUGD_HOSTMEM_H

#include <stddef.h>
#include <stdint.h>

/* "MemAvailable: N kB" in @len bytes of /proc/meminfo text: 0 or -1. */
int hostmem_parse(const char *text, size_t len, uint64_t *avail);

/* Read @path (bounded) and parse it: 0, or -1 with errno-like @why. */
int hostmem_read(const char *path, uint64_t *avail, const char **why);

#endif
