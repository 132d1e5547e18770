// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplug-report: writing report lines without ever blocking.
 *
 * The port is opened O_NONBLOCK: while no host has its end open (or the
 * host does not read), virtio_console answers EAGAIN and the report is
 * dropped; seq shows the gap. Any other error (the port was unplugged:
 * ENODEV; a FIFO lost its reader: EPIPE) closes it, and it is opened again
 * with backoff, as is a port that is not there yet (ENOENT), is held by
 * another process (EBUSY) or is a FIFO without a reader (ENXIO).
 *
 * Standard output ("-", e.g. a port systemd opened for the service) is not
 * ours to make non-blocking: a line goes out only when poll() says it can.
 *
 * A line is one write(), which the port and pipes take whole or not at all.
 * Should a write ever be short, the host drops the line it runs into (the
 * next '\n' ends it) and reads the following ones as usual.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "report.h"

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS 16000

void output_init(struct output *o, const char *path)
{
	memset(o, 0, sizeof(*o));
	o->path = path;
	o->fd = strcmp(path, "-") ? -1 : STDOUT_FILENO;
	o->backoff_ms = BACKOFF_FIRST_MS;
}

void output_close(struct output *o)
{
	if (o->fd > STDOUT_FILENO)
		close(o->fd);
	if (strcmp(o->path, "-"))
		o->fd = -1;
}

static void retry_later(struct output *o, long long now_ms)
{
	o->retry_at_ms = now_ms + o->backoff_ms;
	o->backoff_ms = o->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : o->backoff_ms * 2;
}

enum out_result output_write(struct output *o, const char *line, size_t len, long long now_ms,
			     int *err)
{
	bool own = o->fd != STDOUT_FILENO;
	ssize_t n;

	*err = 0;
	if (o->fd < 0) {
		if (now_ms < o->retry_at_ms)
			return OUT_WAITING;
		/* never O_CREAT: no regular file in place of a missing port */
		o->fd = open(o->path, O_WRONLY | O_APPEND | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (o->fd < 0) {
			*err = errno;
			retry_later(o, now_ms);
			return OUT_OPEN_FAILED;
		}
	}
	if (!own) {
		struct pollfd p = { .fd = o->fd, .events = POLLOUT };

		if (poll(&p, 1, 0) < 0 || (p.revents & POLLNVAL)) {
			*err = p.revents & POLLNVAL ? EBADF : errno;
			return OUT_FATAL;
		}
		if (!(p.revents & (POLLOUT | POLLERR)))
			return OUT_DROPPED;
	}
	n = write(o->fd, line, len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return OUT_DROPPED;
	if (n < 0) {
		*err = errno;
		if (!own)
			return OUT_FATAL;
		output_close(o);
		retry_later(o, now_ms);
		return OUT_WRITE_FAILED;
	}
	if ((size_t)n < len)
		return OUT_DROPPED;
	o->backoff_ms = BACKOFF_FIRST_MS;
	return OUT_OK;
}
