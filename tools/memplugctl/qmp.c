// SPDX-License-Identifier: GPL-2.0-only
/*
 * Minimal, defensive QMP client, see qmp.h.
 *
 * Framing: QEMU ends every message with "\r\n" and JSON strings cannot hold a
 * raw newline, so a message (even with pretty=on, which only breaks lines
 * between tokens) is complete only once a newline follows it.  We therefore
 * only try to parse the buffer up to its last newline, with
 * JSON_DISABLE_EOF_CHECK so one parse yields one message and tells us how many
 * bytes it used.  "Premature end of input" then means "wait for more", any
 * other parse error means the peer is not speaking JSON.
 */
#define _GNU_SOURCE /* memrchr */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmp.h"
#include "util.h"

struct qmp_conn {
	int fd;
	int timeout_ms;
	/*
	 * Input: buf[start, len) is not parsed yet; buf[start, lines_end) of it
	 * ends with a newline, so it may hold complete messages.  Consumed
	 * bytes are only moved out before the next read: a burst of many small
	 * messages costs linear, not quadratic time.
	 */
	char *buf; /* QMP_MAX_MESSAGE bytes */
	size_t start;
	size_t len;
	size_t lines_end;
	/* Clear once the complete lines were found to hold no complete message. */
	int parse_pending;
	json_int_t next_id;
	json_t *events; /* FIFO of queued event objects */
	unsigned long dropped_events;
	char err[512];
	char err_class[64];
};

/* Milliseconds left until @deadline for poll(); -1 means no deadline. */
static int remaining_ms(long long deadline)
{
	long long left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	if (left < 0)
		return 0;
	return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

static long long deadline_after(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

/* Record an error; the text may quote the peer, so make it printable. */
static void __attribute__((format(printf, 2, 3)))
set_error(struct qmp_conn *conn, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(conn->err, sizeof(conn->err), fmt, ap);
	va_end(ap);
	sanitize_string(conn->err);
	conn->err_class[0] = '\0';
}

/* poll() one fd for @events until @deadline, retrying on EINTR. */
static int wait_fd(struct qmp_conn *conn, short events, long long deadline)
{
	struct pollfd pfd = { .fd = conn->fd, .events = events };

	for (;;) {
		int rc = poll(&pfd, 1, remaining_ms(deadline));
		if (rc > 0)
			return QMP_OK;
		if (rc == 0)
			return QMP_ERR_TIMEOUT;
		if (errno != EINTR) {
			set_error(conn, "poll: %s", strerror(errno));
			return QMP_ERR_IO;
		}
	}
}

static int write_all(struct qmp_conn *conn, const char *data, size_t len, long long deadline)
{
	while (len) {
		/* MSG_NOSIGNAL: a closed peer must give EPIPE, not kill us. */
		ssize_t n = send(conn->fd, data, len, MSG_NOSIGNAL);

		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_fd(conn, POLLOUT, deadline);

			if (rc == QMP_ERR_TIMEOUT)
				set_error(conn, "timed out sending to QMP peer");
			if (rc)
				return rc;
			continue;
		}
		set_error(conn, "sending to QMP peer failed: %s",
			  n < 0 ? strerror(errno) : "short write");
		return QMP_ERR_IO;
	}
	return QMP_OK;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Try to take one complete message from the buffer.
 * Returns QMP_OK with *@msg set, QMP_OK with *@msg NULL (need more input),
 * or QMP_ERR_PROTOCOL.
 */
static int parse_buffered(struct qmp_conn *conn, json_t **msg)
{
	json_error_t jerr;
	json_t *json;

	*msg = NULL;
	/* Skip line ends between messages. */
	while (conn->start < conn->lines_end && is_blank(conn->buf[conn->start]))
		conn->start++;
	if (!conn->parse_pending || conn->start >= conn->lines_end)
		return QMP_OK;
	json = json_loadb(conn->buf + conn->start, conn->lines_end - conn->start,
			  JSON_DISABLE_EOF_CHECK, &jerr);
	if (!json) {
		if (json_error_code(&jerr) == json_error_premature_end_of_input) {
			/* A (pretty-printed) message continues on later lines. */
			conn->parse_pending = 0;
			return QMP_OK;
		}
		set_error(conn, "QMP peer sent invalid JSON: %s", jerr.text);
		return QMP_ERR_PROTOCOL;
	}
	if (jerr.position <= 0 || (size_t)jerr.position > conn->lines_end - conn->start) {
		json_decref(json);
		set_error(conn, "internal error: JSON parser consumed %d of %zu bytes",
			  jerr.position, conn->lines_end - conn->start);
		return QMP_ERR_PROTOCOL;
	}
	conn->start += (size_t)jerr.position;
	if (!json_is_object(json)) {
		json_decref(json);
		set_error(conn, "QMP peer sent a JSON value that is not an object");
		return QMP_ERR_PROTOCOL;
	}
	*msg = json;
	return QMP_OK;
}

/* Move the unparsed input to the front of the buffer to make room. */
static void compact_buffer(struct qmp_conn *conn)
{
	if (!conn->start)
		return;
	memmove(conn->buf, conn->buf + conn->start, conn->len - conn->start);
	conn->len -= conn->start;
	conn->lines_end = conn->lines_end > conn->start ? conn->lines_end - conn->start : 0;
	conn->start = 0;
}

/* Read one message (any kind) before @deadline. */
static int read_message(struct qmp_conn *conn, long long deadline, json_t **msg)
{
	for (;;) {
		const char *nl;
		ssize_t n;
		int rc;

		rc = parse_buffered(conn, msg);
		if (rc || *msg)
			return rc;
		compact_buffer(conn);
		if (conn->len >= QMP_MAX_MESSAGE) {
			set_error(conn, "QMP reply too large (more than %d bytes in one message)",
				  QMP_MAX_MESSAGE);
			return QMP_ERR_PROTOCOL;
		}
		rc = wait_fd(conn, POLLIN, deadline);
		if (rc == QMP_ERR_TIMEOUT)
			set_error(conn, "timed out waiting for QMP peer");
		if (rc)
			return rc;
		n = read(conn->fd, conn->buf + conn->len, QMP_MAX_MESSAGE - conn->len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
				continue;
			set_error(conn, "reading from QMP peer failed: %s", strerror(errno));
			return QMP_ERR_IO;
		}
		if (n == 0) {
			size_t i = conn->start;

			while (i < conn->len && is_blank(conn->buf[i]))
				i++;
			set_error(conn, "QMP peer closed the connection%s",
				  i == conn->len ? "" : " in the middle of a message");
			return QMP_ERR_IO;
		}
		nl = memrchr(conn->buf + conn->len, '\n', (size_t)n);
		conn->len += (size_t)n;
		if (nl) {
			conn->lines_end = (size_t)(nl - conn->buf) + 1;
			conn->parse_pending = 1;
		}
	}
}

static void queue_event(struct qmp_conn *conn, json_t *event)
{
	if (json_array_size(conn->events) >= QMP_MAX_QUEUED_EVENTS) {
		/* Bounded: a peer flooding events must not eat our memory. */
		json_array_remove(conn->events, 0);
		conn->dropped_events++;
	}
	json_array_append(conn->events, event);
}

static int is_event(json_t *msg)
{
	return json_is_string(json_object_get(msg, "event"));
}

static int command_error(struct qmp_conn *conn, const char *command, json_t *error)
{
	const char *class = json_string_value(json_object_get(error, "class"));
	const char *desc = json_string_value(json_object_get(error, "desc"));

	if (!json_is_object(error)) {
		set_error(conn, "malformed reply to %s: neither \"return\" nor \"error\" object",
			  command);
		return QMP_ERR_PROTOCOL;
	}
	set_error(conn, "%s", desc ? desc : "QEMU reported an error without description");
	snprintf(conn->err_class, sizeof(conn->err_class), "%s", class ? class : "");
	sanitize_string(conn->err_class);
	return QMP_ERR_COMMAND;
}

int qmp_execute(struct qmp_conn *conn, const char *command, json_t *args, json_t **ret)
{
	json_int_t id = conn->next_id++;
	unsigned int strays = 0;
	long long deadline;
	json_t *request;
	char *text;
	int rc;

	*ret = NULL;
	request = json_pack("{s:s, s:I}", "execute", command, "id", id);
	if (!request || (args && json_object_set_new(request, "arguments", args))) {
		json_decref(request);
		set_error(conn, "out of memory");
		return QMP_ERR_IO;
	}
	text = json_dumps(request, JSON_COMPACT);
	json_decref(request);
	if (!text) {
		set_error(conn, "out of memory");
		return QMP_ERR_IO;
	}
	deadline = deadline_after(conn->timeout_ms);
	rc = write_all(conn, text, strlen(text), deadline);
	free(text);
	if (!rc)
		rc = write_all(conn, "\n", 1, deadline);
	if (rc)
		return rc;

	for (;;) {
		json_t *msg, *msg_id, *value;

		rc = read_message(conn, deadline, &msg);
		if (rc == QMP_ERR_TIMEOUT)
			set_error(conn, "timed out waiting for the reply to %s", command);
		if (rc)
			return rc;
		if (is_event(msg)) {
			queue_event(conn, msg);
			json_decref(msg);
			continue;
		}
		msg_id = json_object_get(msg, "id");
		if (!json_is_integer(msg_id) || json_integer_value(msg_id) != id) {
			/* A late reply to an earlier command, or junk: skip, bounded. */
			json_decref(msg);
			if (++strays > QMP_MAX_STRAY_REPLIES) {
				set_error(conn, "too many QMP replies with unexpected ids");
				return QMP_ERR_PROTOCOL;
			}
			continue;
		}
		value = json_object_get(msg, "return");
		if (value) {
			*ret = json_incref(value);
			json_decref(msg);
			return QMP_OK;
		}
		rc = command_error(conn, command, json_object_get(msg, "error"));
		json_decref(msg);
		return rc;
	}
}

int qmp_next_event(struct qmp_conn *conn, int timeout_ms, json_t **event)
{
	long long deadline = deadline_after(timeout_ms);
	unsigned int strays = 0;

	*event = NULL;
	for (;;) {
		json_t *msg;
		int rc;

		if (json_array_size(conn->events)) {
			*event = json_incref(json_array_get(conn->events, 0));
			json_array_remove(conn->events, 0);
			return QMP_OK;
		}
		rc = read_message(conn, deadline, &msg);
		if (rc == QMP_ERR_TIMEOUT)
			conn->err[0] = '\0'; /* a quiet peer is normal here */
		if (rc)
			return rc;
		if (is_event(msg)) {
			*event = msg;
			return QMP_OK;
		}
		json_decref(msg);
		if (++strays > QMP_MAX_STRAY_REPLIES) {
			set_error(conn, "too many unsolicited QMP replies");
			return QMP_ERR_PROTOCOL;
		}
	}
}

unsigned long qmp_dropped_events(const struct qmp_conn *conn)
{
	return conn->dropped_events;
}

const char *qmp_error(const struct qmp_conn *conn)
{
	return conn->err;
}

const char *qmp_error_class(const struct qmp_conn *conn)
{
	return conn->err_class;
}

/* Non-blocking connect with a deadline; returns fd or -1 with errno set. */
static int connect_fd(int family, const struct sockaddr *sa, socklen_t sa_len, long long deadline)
{
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct pollfd pfd;
	socklen_t optlen;
	int err;

	if (fd < 0)
		return -1;
	if (connect(fd, sa, sa_len) == 0)
		return fd;
	if (errno != EINPROGRESS && errno != EINTR && errno != EAGAIN)
		goto fail;
	/* EAGAIN on unix sockets means a full backlog: treat like refused. */
	if (errno == EAGAIN && family == AF_UNIX)
		goto fail;
	pfd.fd = fd;
	pfd.events = POLLOUT;
	for (;;) {
		int rc = poll(&pfd, 1, remaining_ms(deadline));

		if (rc > 0)
			break;
		if (rc == 0) {
			errno = ETIMEDOUT;
			goto fail;
		}
		if (errno != EINTR)
			goto fail;
	}
	optlen = sizeof(err);
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &optlen) < 0)
		goto fail;
	if (err) {
		errno = err;
		goto fail;
	}
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

static int open_socket(struct qmp_conn *conn, const struct qmp_addr *addr, long long deadline)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	int rc, err = 0;

	if (addr->kind == QMP_ADDR_UNIX) {
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		memcpy(sun.sun_path, addr->path, sizeof(addr->path));
		conn->fd = connect_fd(AF_UNIX, (struct sockaddr *)&sun, sizeof(sun), deadline);
		if (conn->fd < 0) {
			set_error(conn, "cannot connect to QMP socket %s: %s", addr->path,
				  strerror(errno));
			return QMP_ERR_IO;
		}
		return QMP_OK;
	}
	rc = getaddrinfo(addr->host, addr->port, &hints, &res);
	if (rc) {
		set_error(conn, "cannot resolve %s: %s", addr->host, gai_strerror(rc));
		return QMP_ERR_IO;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		conn->fd = connect_fd(ai->ai_family, ai->ai_addr, ai->ai_addrlen, deadline);
		if (conn->fd >= 0)
			break;
		err = errno;
	}
	freeaddrinfo(res);
	if (conn->fd < 0) {
		set_error(conn, "cannot connect to QMP at %s:%s: %s", addr->host, addr->port,
			  strerror(err));
		return QMP_ERR_IO;
	}
	return QMP_OK;
}

/* The greeting must be {"QMP": {...}}; anything else is not QEMU's QMP. */
static int read_greeting(struct qmp_conn *conn)
{
	json_t *msg;
	int rc;

	rc = read_message(conn, deadline_after(conn->timeout_ms), &msg);
	if (rc == QMP_ERR_TIMEOUT)
		set_error(conn, "no QMP greeting within %d ms (is this a QMP socket?)",
			  conn->timeout_ms);
	if (rc) {
		char why[sizeof(conn->err)];

		if (rc == QMP_ERR_TIMEOUT)
			return rc;
		memcpy(why, conn->err, sizeof(why));
		set_error(conn, "QMP greeting failed: %s", why);
		return rc;
	}
	if (!json_is_object(json_object_get(msg, "QMP"))) {
		json_decref(msg);
		set_error(conn,
			  "QMP greeting failed: peer did not send a {\"QMP\": {...}} greeting");
		return QMP_ERR_PROTOCOL;
	}
	json_decref(msg);
	return QMP_OK;
}

struct qmp_conn *qmp_connect(const struct qmp_addr *addr, int timeout_ms, char *err, size_t err_len)
{
	struct qmp_conn *conn = calloc(1, sizeof(*conn));
	json_t *ret = NULL;
	int rc;

	/* Before anything can fail: qmp_close() must not close fd 0. */
	if (conn)
		conn->fd = -1;
	if (!conn || !(conn->buf = malloc(QMP_MAX_MESSAGE)) || !(conn->events = json_array())) {
		snprintf(err, err_len, "out of memory");
		qmp_close(conn);
		return NULL;
	}
	conn->timeout_ms = timeout_ms;
	conn->next_id = 1;

	rc = open_socket(conn, addr, deadline_after(timeout_ms));
	if (!rc)
		rc = read_greeting(conn);
	if (!rc) {
		rc = qmp_execute(conn, "qmp_capabilities", NULL, &ret);
		if (rc) {
			char why[sizeof(conn->err)];

			memcpy(why, conn->err, sizeof(why));
			set_error(conn, "QMP capabilities negotiation failed: %s", why);
		} else if (!json_is_object(ret)) {
			set_error(conn, "QMP capabilities negotiation failed: unexpected reply");
			rc = QMP_ERR_PROTOCOL;
		}
		json_decref(ret);
	}
	if (rc) {
		snprintf(err, err_len, "%s", conn->err);
		qmp_close(conn);
		return NULL;
	}
	return conn;
}

void qmp_close(struct qmp_conn *conn)
{
	if (!conn)
		return;
	if (conn->fd >= 0)
		close(conn->fd);
	json_decref(conn->events);
	free(conn->buf);
	free(conn);
}
