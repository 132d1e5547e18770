/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A small QMP client that does not trust its peer (modelled on Xen's
 * tools/libs/light/libxl_qmp.c): every read has a deadline, messages are
 * bounded in size, replies are matched by id, asynchronous events that arrive
 * while waiting for a reply are queued (bounded) instead of being dropped,
 * and every kind of malformed input ends in an error message, never a hang
 * or a crash.
 */
#ifndef MEMPLUGCTL_QMP_H
#define MEMPLUGCTL_QMP_H

#include <jansson.h>

#include "size.h"

/* Largest single message we accept from the peer. */
#define QMP_MAX_MESSAGE (1024 * 1024)
/*
 * Events kept while nobody consumes them, at most this many and this many
 * bytes (of their JSON text); the oldest are dropped to make room and
 * counted in qmp_dropped_events().
 */
#define QMP_MAX_QUEUED_EVENTS 1024
#define QMP_MAX_QUEUED_BYTES (4 * 1024 * 1024)
/* Replies with an unknown id tolerated while waiting for one reply. */
#define QMP_MAX_STRAY_REPLIES 64
/*
 * Events tolerated while waiting for one reply.  QEMU rate-limits its
 * chatty events (MEMORY_DEVICE_SIZE_CHANGE: one a second per device) and
 * answers a command in milliseconds; a peer that sends this many first is
 * storming, and reading on until the timeout would only burn CPU.
 */
#define QMP_MAX_EVENTS_PER_REPLY 10000

enum qmp_status {
	QMP_OK = 0,
	QMP_ERR_IO = -1, /* connect/read/write failed or peer closed */
	QMP_ERR_TIMEOUT = -2, /* no (complete) message before the deadline */
	QMP_ERR_PROTOCOL = -3, /* peer sent something that is not QMP */
	QMP_ERR_COMMAND = -4, /* QEMU answered the command with an error */
};

struct qmp_conn;

/*
 * Connect to @addr, read the greeting and negotiate capabilities.
 * @timeout_ms bounds each step (connect, greeting, each command from sending
 * it to its reply) as a whole, whatever the peer sends meanwhile.  On
 * failure returns NULL and writes a message to @err.
 */
struct qmp_conn *qmp_connect(const struct qmp_addr *addr, int timeout_ms, char *err,
			     size_t err_len);

void qmp_close(struct qmp_conn *conn);

/*
 * Execute @command with @args (a JSON object or NULL; the reference is
 * stolen).  On QMP_OK, *@ret holds a new reference to the "return" value.
 * Otherwise see qmp_error(); for QMP_ERR_COMMAND also qmp_error_class().
 */
int qmp_execute(struct qmp_conn *conn, const char *command, json_t *args, json_t **ret);

/*
 * Return the next event: a queued one, or wait up to @timeout_ms (negative:
 * forever; 0: only what has already arrived) for one.  *@event is a new reference to the whole event object,
 * already checked to have a string "event" member.  Returns QMP_OK,
 * QMP_ERR_TIMEOUT or an error.
 */
int qmp_next_event(struct qmp_conn *conn, int timeout_ms, json_t **event);

/*
 * Let no wait go past @limit_ms (a now_ms() time; -1: no limit) from now
 * on, whatever the timeouts say: resize --wait gives its own deadline to
 * the queries it makes.  After a QMP_ERR_TIMEOUT, qmp_timed_out_at_limit()
 * tells whether that limit, rather than the QMP timeout, ran out.
 */
void qmp_set_limit(struct qmp_conn *conn, long long limit_ms);
int qmp_timed_out_at_limit(const struct qmp_conn *conn);

/*
 * The connection's socket, for a caller's own poll() loop (memplugd):
 * readable means the peer sent something, to be taken with
 * qmp_next_event(conn, 0, ...).  Events that qmp_execute() already read
 * are queued and do not make it readable: take them after each command.
 */
int qmp_fd(const struct qmp_conn *conn);

/* Events dropped so far because the queue was full. */
unsigned long qmp_dropped_events(const struct qmp_conn *conn);

/* Human-readable description of the last error. */
const char *qmp_error(const struct qmp_conn *conn);

/* QMP error class of the last QMP_ERR_COMMAND ("GenericError", ...), or "". */
const char *qmp_error_class(const struct qmp_conn *conn);

#endif
