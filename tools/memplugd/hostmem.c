// SPDX-License-Identifier: GPL-2.0-only
/*
 * The host's MemAvailable, see hostmem.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "hostmem.h"

#define KEY "MemAvailable:"

int hostmem_parse(const char *text, size_t len, uint64_t *avail)
{
	size_t pos = 0, klen = strlen(KEY);

	while (pos < len) {
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - line) : len - pos;

		pos += llen + 1;
		if (llen > klen && !memcmp(line, KEY, klen)) {
			uint64_t v = 0;
			size_t i = klen, digits = 0;

			while (i < llen && line[i] == ' ')
				i++;
			for (; i < llen && line[i] >= '0' && line[i] <= '9'; i++, digits++) {
				if (v > (UINT64_MAX / 1024 - 9) / 10)
					return -1;
				v = v * 10 + (uint64_t)(line[i] - '0');
			}
			if (!digits || llen - i != 3 || memcmp(line + i, " kB", 3))
				return -1;
			*avail = v * 1024;
			return 0;
		}
	}
	return -1;
}

int hostmem_read(const char *path, uint64_t *avail, const char **why)
{
	char buf[16384];
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		*why = strerror(errno);
		return -1;
	}
	while (len < sizeof(buf)) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (hostmem_parse(buf, len, avail)) {
		*why = "no 'MemAvailable: N kB' line";
		return -1;
	}
	return 0;
}
