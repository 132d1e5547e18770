// SPDX-License-Identifier: GPL-2.0-only
/*
 * Minimal, defensive QMP client, see qmp.h.
 *
 * Framing: a QMP message is a JSON object, so it ends with the '}' that
 * closes its first '{'.  A small scanner follows every byte once, across
 * reads (nesting depth, inside a string, after a backslash), and each
 * complete message is handed to jansson exactly once: a reply of 900 KB
 * that arrives in 3-byte lines costs linear time, not a re-parse per line.
 * Input that does not start with '{' or '[' is not QMP; it is taken up to
 * the end of its line, so that jansson can say what is wrong with it.
 *
 * Deadlines: every call that waits for the peer has one, and it is checked
 * after every message and every read, not only when the socket is idle: a
 * peer that never stops sending (events, a never-ending reply, a drip of
 * bytes) cannot keep us past it.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "qmp.h"
#include "util.h"

/* One queued event and the size of its text, for the byte bound. */
struct queued_event {
	json_t *event;
	size_t bytes;
};

struct qmp_conn {
	int fd;
	int timeout_ms;
	long long limit; /* qmp_set_limit(), -1: none */
	int at_limit; /* the current deadline is that limit */
	int limit_hit; /* the last call timed out at that limit */
	/*
	 * Input: buf[start, len) is not parsed yet; buf[start, scan) of it has
	 * been scanned (the state below) and holds no complete message.
	 * Consumed bytes are only moved out before the next read.
	 */
	char *buf; /* QMP_MAX_MESSAGE bytes */
	size_t start;
	size_t scan;
	size_t len;
	unsigned int depth; /* open '{' and '[' of the current message */
	unsigned char started; /* its first byte was seen */
	unsigned char line_mode; /* it is not an object or array: up to '\n' */
	unsigned char in_string;
	unsigned char escape; /* after a backslash in a string */
	json_int_t next_id;
	/* Ring of queued events: count at most QMP_MAX_QUEUED_EVENTS. */
	struct queued_event events[QMP_MAX_QUEUED_EVENTS];
	unsigned int ev_head;
	unsigned int ev_count;
	size_t ev_bytes;
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

/* @timeout_ms from now (negative: never), but not past the caller's limit. */
static long long deadline_after(struct qmp_conn *conn, int timeout_ms)
{
	long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

	conn->at_limit = conn->limit >= 0 && (deadline < 0 || conn->limit <= deadline);
	return conn->at_limit ? conn->limit : deadline;
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

static int past(long long deadline)
{
	return deadline >= 0 && now_ms() >= deadline;
}

/*
 * poll() one fd for @events until @deadline, retrying on EINTR.  Past the
 * deadline this is a look without waiting, and "ready" is only believed
 * once: the callers check the clock again before they read any further.
 */
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
			/* a peer that reads a byte at a time gets no more time */
			if (len && past(deadline)) {
				set_error(conn, "timed out sending to QMP peer");
				return QMP_ERR_TIMEOUT;
			}
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

/* Forget the scanner state: the next byte starts a new message. */
static void reset_scanner(struct qmp_conn *conn)
{
	conn->scan = conn->start;
	conn->depth = 0;
	conn->started = 0;
	conn->line_mode = 0;
	conn->in_string = 0;
	conn->escape = 0;
}

/*
 * Scan the bytes not scanned yet.  Returns the end (exclusive) of the first
 * complete message in buf[start, len), or 0 if there is none yet.  Every
 * byte is looked at once, whatever the reads were cut like.
 */
static size_t scan_message(struct qmp_conn *conn)
{
	if (!conn->started) {
		/* Skip line ends between messages. */
		while (conn->start < conn->len && is_blank(conn->buf[conn->start]))
			conn->start++;
		conn->scan = conn->start;
		if (conn->start == conn->len)
			return 0;
		conn->started = 1;
		if (conn->buf[conn->start] == '{' || conn->buf[conn->start] == '[')
			conn->depth = 1;
		else
			conn->line_mode = 1;
		conn->scan++;
	}
	for (; conn->scan < conn->len; conn->scan++) {
		char c = conn->buf[conn->scan];

		if (conn->line_mode) {
			if (c == '\n')
				return conn->scan + 1;
		} else if (conn->in_string) {
			if (conn->escape)
				conn->escape = 0;
			else if (c == '\\')
				conn->escape = 1;
			else if (c == '"')
				conn->in_string = 0;
		} else if (c == '"') {
			conn->in_string = 1;
		} else if (c == '{' || c == '[') {
			conn->depth++;
		} else if ((c == '}' || c == ']') && !--conn->depth) {
			return conn->scan + 1;
		}
	}
	return 0;
}

/*
 * Take one complete message from the buffer.  Returns QMP_OK with *@msg
 * set, QMP_OK with *@msg NULL (need more input), or QMP_ERR_PROTOCOL.
 * *@bytes is the length of the message's text.
 */
static int parse_buffered(struct qmp_conn *conn, json_t **msg, size_t *bytes)
{
	size_t end = scan_message(conn);
	json_error_t jerr;
	json_t *json;

	*msg = NULL;
	if (!end)
		return QMP_OK;
	*bytes = end - conn->start;
	json = json_loadb(conn->buf + conn->start, end - conn->start, 0, &jerr);
	conn->start = end;
	reset_scanner(conn);
	if (!json) {
		set_error(conn, "QMP peer sent invalid JSON: %s", jerr.text);
		return QMP_ERR_PROTOCOL;
	}
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
	conn->scan -= conn->start;
	conn->start = 0;
}

/*
 * Read one message (any kind) before @deadline; *@bytes is its length.
 * Past the deadline only what is already buffered, plus one read of what
 * has already arrived, can still make a message: then it is a timeout,
 * however fast the peer keeps sending.
 */
static int read_message(struct qmp_conn *conn, long long deadline, json_t **msg, size_t *bytes)
{
	int last_look = 0;

	for (;;) {
		ssize_t n;
		int rc;

		rc = parse_buffered(conn, msg, bytes);
		if (rc || *msg)
			return rc;
		compact_buffer(conn);
		if (conn->len >= QMP_MAX_MESSAGE) {
			set_error(conn, "QMP reply too large (more than %d bytes in one message)",
				  QMP_MAX_MESSAGE);
			return QMP_ERR_PROTOCOL;
		}
		if (last_look) {
			set_error(conn, "timed out waiting for QMP peer");
			return QMP_ERR_TIMEOUT;
		}
		last_look = past(deadline);
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
			set_error(conn, "QMP peer closed the connection%s",
				  conn->started ? " in the middle of a message" : "");
			return QMP_ERR_IO;
		}
		conn->len += (size_t)n;
	}
}

/* Drop the oldest queued event (and count it). */
static void drop_oldest_event(struct qmp_conn *conn)
{
	struct queued_event *q = &conn->events[conn->ev_head];

	json_decref(q->event);
	conn->ev_bytes -= q->bytes;
	conn->ev_head = (conn->ev_head + 1) % QMP_MAX_QUEUED_EVENTS;
	conn->ev_count--;
	conn->dropped_events++;
}

/*
 * Queue @event (a new reference is taken) of @bytes bytes of text.
 * Bounded in number and in bytes: a peer flooding events must not eat our
 * memory, so the oldest are dropped (and counted) to make room.
 */
static void queue_event(struct qmp_conn *conn, json_t *event, size_t bytes)
{
	struct queued_event *q;

	while (conn->ev_count && (conn->ev_count == QMP_MAX_QUEUED_EVENTS ||
				  conn->ev_bytes + bytes > QMP_MAX_QUEUED_BYTES))
		drop_oldest_event(conn);
	q = &conn->events[(conn->ev_head + conn->ev_count) % QMP_MAX_QUEUED_EVENTS];
	q->event = json_incref(event);
	q->bytes = bytes;
	conn->ev_bytes += bytes;
	conn->ev_count++;
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

/* The timeout error of qmp_execute, saying what came instead of the reply. */
static void reply_timeout(struct qmp_conn *conn, const char *command, unsigned long events,
			  unsigned int strays)
{
	if (events || strays)
		set_error(conn,
			  "timed out waiting for the reply to %s (%lu events and %u other replies "
			  "arrived meanwhile)",
			  command, events, strays);
	else
		set_error(conn, "timed out waiting for the reply to %s", command);
}

static int execute(struct qmp_conn *conn, const char *command, json_t *args, json_t **ret)
{
	json_int_t id = conn->next_id++;
	json_t *request, *msg, *value;
	unsigned long events = 0;
	unsigned int strays = 0;
	long long deadline;
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
	deadline = deadline_after(conn, conn->timeout_ms);
	rc = write_all(conn, text, strlen(text), deadline);
	free(text);
	if (!rc)
		rc = write_all(conn, "\n", 1, deadline);
	if (rc)
		return rc;

	for (;;) {
		json_t *msg_id;
		size_t bytes;

		rc = read_message(conn, deadline, &msg, &bytes);
		if (rc == QMP_ERR_TIMEOUT)
			reply_timeout(conn, command, events, strays);
		if (rc)
			return rc;
		if (is_event(msg)) {
			queue_event(conn, msg, bytes);
			json_decref(msg);
			if (++events > QMP_MAX_EVENTS_PER_REPLY) {
				set_error(conn,
					  "event storm: more than %d events and no reply to %s",
					  QMP_MAX_EVENTS_PER_REPLY, command);
				return QMP_ERR_PROTOCOL;
			}
		} else {
			msg_id = json_object_get(msg, "id");
			if (json_is_integer(msg_id) && json_integer_value(msg_id) == id)
				break;
			/* A late reply to an earlier command, or junk: skip, bounded. */
			json_decref(msg);
			if (++strays > QMP_MAX_STRAY_REPLIES) {
				set_error(conn, "too many QMP replies with unexpected ids");
				return QMP_ERR_PROTOCOL;
			}
		}
		/* Whatever the peer keeps sending, the deadline holds. */
		if (past(deadline)) {
			reply_timeout(conn, command, events, strays);
			return QMP_ERR_TIMEOUT;
		}
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

static int next_event(struct qmp_conn *conn, int timeout_ms, json_t **event)
{
	long long deadline = deadline_after(conn, timeout_ms);
	unsigned int strays = 0;

	*event = NULL;
	for (;;) {
		json_t *msg;
		size_t bytes;
		int rc;

		if (conn->ev_count) {
			struct queued_event *q = &conn->events[conn->ev_head];

			*event = q->event;
			conn->ev_bytes -= q->bytes;
			conn->ev_head = (conn->ev_head + 1) % QMP_MAX_QUEUED_EVENTS;
			conn->ev_count--;
			return QMP_OK;
		}
		rc = read_message(conn, deadline, &msg, &bytes);
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

int qmp_execute(struct qmp_conn *conn, const char *command, json_t *args, json_t **ret)
{
	int rc = execute(conn, command, args, ret);

	conn->limit_hit = rc == QMP_ERR_TIMEOUT && conn->at_limit;
	return rc;
}

int qmp_next_event(struct qmp_conn *conn, int timeout_ms, json_t **event)
{
	int rc = next_event(conn, timeout_ms, event);

	conn->limit_hit = rc == QMP_ERR_TIMEOUT && conn->at_limit;
	return rc;
}

void qmp_set_limit(struct qmp_conn *conn, long long limit_ms)
{
	conn->limit = limit_ms;
}

int qmp_timed_out_at_limit(const struct qmp_conn *conn)
{
	return conn->limit_hit;
}

int qmp_fd(const struct qmp_conn *conn)
{
	return conn->fd;
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

/*
 * connect() to a path that is not a socket says "Connection refused", as
 * for a socket nobody listens on: tell the two apart.
 */
static void explain_unix_error(struct qmp_conn *conn, const char *path, int err)
{
	struct stat st;
	const char *what;

	if (err == EAGAIN) {
		set_error(conn,
			  "cannot connect to QMP socket %s: its queue is full: other clients wait "
			  "for the monitor (QEMU serves one client per QMP socket)",
			  path);
		return;
	}
	if (err != ECONNREFUSED || stat(path, &st)) {
		set_error(conn, "cannot connect to QMP socket %s: %s", path, strerror(err));
		return;
	}
	if (S_ISSOCK(st.st_mode)) {
		set_error(conn,
			  "cannot connect to QMP socket %s: %s (nothing listens on it: QEMU has "
			  "exited, or it is a stale socket file)",
			  path, strerror(err));
		return;
	}
	if (S_ISREG(st.st_mode))
		what = "a regular file";
	else if (S_ISDIR(st.st_mode))
		what = "a directory";
	else
		what = "a special file";
	set_error(conn,
		  "cannot connect to QMP socket %s: not a socket (it is %s; QEMU makes it with "
		  "-qmp unix:PATH,server=on)",
		  path, what);
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
			explain_unix_error(conn, addr->path, errno);
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
	size_t bytes;
	json_t *msg;
	int rc;

	rc = read_message(conn, deadline_after(conn, conn->timeout_ms), &msg, &bytes);
	if (rc == QMP_ERR_TIMEOUT)
		set_error(conn,
			  "no QMP greeting within %d ms: another client probably holds the "
			  "monitor (QEMU serves one client per QMP socket; a VM run by libvirt "
			  "has libvirt's), or this is not a QMP socket",
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
	if (!conn || !(conn->buf = malloc(QMP_MAX_MESSAGE))) {
		snprintf(err, err_len, "out of memory");
		qmp_close(conn);
		return NULL;
	}
	conn->timeout_ms = timeout_ms;
	conn->limit = -1;
	conn->next_id = 1;

	rc = open_socket(conn, addr, deadline_after(conn, timeout_ms));
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
	while (conn->ev_count)
		drop_oldest_event(conn);
	free(conn->buf);
	free(conn);
}
