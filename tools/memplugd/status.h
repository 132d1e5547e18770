/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The status view.  The daemon writes DIR/status.json every tick,
 * atomically (a temporary file renamed over it), and removes it when it
 * stops; "memplugd --status [--json]" reads it.  A file rather than a
 * control socket: the daemon never parses a request from anybody, readers
 * need no cooperation from a busy loop, and file permissions say who may
 * look (docs/memplugd.md, "Status").
 */
#ifndef MEMPLUGD_STATUS_H
#define MEMPLUGD_STATUS_H

#include <stdint.h>
#include <sys/types.h>

#include "vm.h"

#define STATUS_FILE "status.json"
#define STATUS_MAX_FILE (8 * 1024 * 1024)

struct status_global {
	const char *version;
	pid_t pid;
	long long started_ms; /* wall clock, ms since the epoch */
	unsigned int interval_ms;
	int budget_limited;
	uint64_t budget_bytes; /* this tick's */
	int has_budget;
	uint64_t budget_total; /* configured */
	int has_host_reserve;
	uint64_t host_reserve;
	int host_avail_ok;
	uint64_t host_avail;
	uint64_t in_use; /* sum of max(requested, plugged) */
};

/* Write @dir/status.json for @n VMs at @now (monotonic). 0 or -1 (errno). */
int status_write(const char *dir, const struct status_global *g, const struct vm *vms,
		 unsigned int n, long long now);

/* Remove it (the daemon stops). */
void status_remove(const char *dir);

/*
 * memplugd --status: print @dir/status.json for people or, with @json, as
 * one JSON line with "running" added.  Returns the exit status: 0 running,
 * 1 no status, 3 the daemon is not running (the file is left over).
 */
int status_show(const char *dir, int json);

#endif
