// SPDX-License-Identifier: GPL-2.0-only
/*
 * LD_PRELOAD shim for tests/tools/run.sh: makes malloc() fail for every
 * request of at least $FAILALLOC_MIN bytes (memplugctl's 1 MiB QMP buffer),
 * and reports on stderr when the program closes fd 0, 1 or 2, which
 * memplugctl never does: "failalloc: close(0)".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>

extern void *__libc_malloc(size_t size);

static size_t fail_min(void)
{
	static size_t min;
	const char *env;

	if (!min) {
		env = getenv("FAILALLOC_MIN");
		min = env && *env ? strtoull(env, NULL, 10) : (size_t)-1;
		if (!min)
			min = 1;
	}
	return min;
}

void *malloc(size_t size)
{
	if (size >= fail_min()) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_malloc(size);
}

int close(int fd)
{
	if (fd >= 0 && fd <= 2) {
		char msg[32];
		int n = snprintf(msg, sizeof(msg), "failalloc: close(%d)\n", fd);

		syscall(SYS_write, 2, msg, (size_t)n);
	}
	return (int)syscall(SYS_close, fd);
}
