// SPDX-License-Identifier: GPL-2.0-only
/*
 * The QMP device backend (dev.h): QEMU's QMP socket through memplugctl's
 * careful client, in the loop's thread.  Every connect and command has the
 * deadline qmp-timeout whatever QEMU sends; MEMORY_DEVICE_SIZE_CHANGE
 * events bring a refresh forward, and a peer that floods events is not
 * listened to until the next tick.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dev.h"
#include "qmp.h"

#define PERIPHERAL_PATH "/machine/peripheral/"
/* Events taken per wakeup; more and the QMP socket is ignored until the next tick. */
#define EVENTS_PER_WAKEUP 64

struct qdev {
	struct dev d;
	struct qmp_conn *qmp;
	char dev_id[128]; /* the configured id, or the one found */
	long long muted_until; /* an event storm: stop listening until then */
};

static struct qdev *qdev_of(struct dev *d)
{
	return (struct qdev *)d;
}

/* snprintf() that may truncate, on purpose (messages quoting paths and peers). */
static void __attribute__((format(printf, 3, 4))) msg(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, len, fmt, ap);
	va_end(ap);
}

static void lost(struct qdev *q, const char *why, long long now)
{
	char err[256];

	msg(err, sizeof(err), "QMP %s: %s", q->d.cfg->qmp_str, why);
	qmp_close(q->qmp);
	q->qmp = NULL;
	q->d.connected = 0;
	q->d.sink.down(q->d.sink.vm, "lost QMP", err, 1, now);
}

static int get_u64(json_t *data, const char *key, uint64_t *value)
{
	json_t *v = json_object_get(data, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*value = (uint64_t)json_integer_value(v);
	return 0;
}

/*
 * Our virtio-mem device in query-memory-devices: the configured id, the
 * one found before, or the VM's only one.  0, -1 (no such device, @err set)
 * or -2 (the connection failed, @err set).
 */
static int query_device(struct qdev *q, struct dev_sizes *info, char *err, size_t err_len)
{
	json_t *list, *entry, *found = NULL, *data, *id;
	unsigned int nr_vmem = 0;
	size_t i;
	int rc;

	rc = qmp_execute(q->qmp, "query-memory-devices", NULL, &list);
	if (rc) {
		msg(err, err_len, "query-memory-devices failed: %s", qmp_error(q->qmp));
		return rc == QMP_ERR_COMMAND ? -1 : -2;
	}
	if (!json_is_array(list)) {
		snprintf(err, err_len, "malformed reply to query-memory-devices");
		json_decref(list);
		return -2;
	}
	json_array_foreach(list, i, entry) {
		const char *type = json_string_value(json_object_get(entry, "type"));
		const char *eid;

		if (!type || strcmp(type, "virtio-mem"))
			continue;
		nr_vmem++;
		eid = json_string_value(json_object_get(json_object_get(entry, "data"), "id"));
		if (q->dev_id[0] ? (eid && !strcmp(eid, q->dev_id)) : !found)
			found = entry;
	}
	if (!found || (!q->dev_id[0] && nr_vmem > 1)) {
		if (q->dev_id[0])
			snprintf(err, err_len, "no virtio-mem device '%s'", q->dev_id);
		else if (!nr_vmem)
			snprintf(err, err_len, "the VM has no virtio-mem device");
		else
			snprintf(err, err_len,
				 "the VM has %u virtio-mem devices: say which with 'device ='",
				 nr_vmem);
		json_decref(list);
		return -1;
	}
	data = json_object_get(found, "data");
	id = json_object_get(data, "id");
	if (!json_is_string(id) || !json_string_length(id) ||
	    json_string_length(id) >= sizeof(info->id)) {
		snprintf(err, err_len,
			 "the virtio-mem device has no usable id (give it one: -device "
			 "virtio-mem-pci,id=...)");
		json_decref(list);
		return -1;
	}
	snprintf(info->id, sizeof(info->id), "%s", json_string_value(id));
	sanitize_string(info->id);
	if (get_u64(data, "block-size", &info->block_size) || !info->block_size ||
	    get_u64(data, "max-size", &info->region_size) ||
	    get_u64(data, "requested-size", &info->requested) ||
	    get_u64(data, "size", &info->size)) {
		snprintf(err, err_len, "malformed virtio-mem entry in query-memory-devices");
		json_decref(list);
		return -1;
	}
	json_decref(list);
	return 0;
}

/* Is @ev a MEMORY_DEVICE_SIZE_CHANGE of our device? */
static int is_our_size_change(struct qdev *q, json_t *ev)
{
	const char *name = json_string_value(json_object_get(ev, "event"));
	const char *id = json_string_value(json_object_get(json_object_get(ev, "data"), "id"));

	return name && !strcmp(name, "MEMORY_DEVICE_SIZE_CHANGE") && id && q->dev_id[0] &&
	       !strcmp(id, q->dev_id);
}

/* Take up to @max events; 1 if more may be waiting, 0 if none, -1 if lost. */
static int drain_events(struct qdev *q, int max, long long now)
{
	int i;

	for (i = 0; i < max && q->qmp; i++) {
		json_t *ev;
		int rc = qmp_next_event(q->qmp, 0, &ev);

		if (rc == QMP_ERR_TIMEOUT)
			return 0;
		if (rc) {
			lost(q, qmp_error(q->qmp), now);
			return -1;
		}
		if (is_our_size_change(q, ev))
			q->d.refresh_due = 1;
		json_decref(ev);
	}
	return q->qmp ? 1 : -1;
}

static void q_connect(struct dev *d, long long now)
{
	struct qdev *q = qdev_of(d);
	char err[256], what[300];
	struct dev_sizes s;

	if (q->qmp)
		return;
	q->qmp = qmp_connect(&d->cfg->qmp, (int)d->dcfg->qmp_timeout_ms, err, sizeof(err));
	if (!q->qmp) {
		msg(what, sizeof(what), "QMP %s: %s", d->cfg->qmp_str, err);
		d->sink.down(d->sink.vm, "no QMP", what, 0, now);
		return;
	}
	if (query_device(q, &s, err, sizeof(err))) {
		msg(what, sizeof(what), "QMP %s: %s", d->cfg->qmp_str, err);
		qmp_close(q->qmp);
		q->qmp = NULL;
		d->sink.down(d->sink.vm, "no device", what, 0, now);
		return;
	}
	snprintf(q->dev_id, sizeof(q->dev_id), "%s", s.id);
	d->connected = 1;
	d->sink.up(d->sink.vm, "", &s, now);
	drain_events(q, EVENTS_PER_WAKEUP, now);
}

/* Query the device; on failure the connection is dropped. */
static void q_refresh(struct dev *d, long long now)
{
	struct qdev *q = qdev_of(d);
	struct dev_sizes s;
	char err[256];

	d->refresh_due = 0;
	if (!q->qmp)
		return;
	if (query_device(q, &s, err, sizeof(err))) {
		lost(q, err, now);
		return;
	}
	d->sink.sizes(d->sink.vm, &s, now);
	drain_events(q, EVENTS_PER_WAKEUP, now);
}

static void q_set_requested(struct dev *d, uint64_t size, long long now)
{
	struct qdev *q = qdev_of(d);
	char path[sizeof(PERIPHERAL_PATH) + sizeof(q->dev_id)], err[300];
	json_t *ret = NULL;
	int rc;

	if (!q->qmp) {
		d->sink.set_done(d->sink.vm, DEV_SET_LOST, "not connected", now);
		return;
	}
	d->set_pending = 1;
	snprintf(path, sizeof(path), PERIPHERAL_PATH "%s", q->dev_id);
	rc = qmp_execute(q->qmp, "qom-set",
			 json_pack("{s:s, s:s, s:I}", "path", path, "property", "requested-size",
				   "value", (json_int_t)size),
			 &ret);
	json_decref(ret);
	d->set_pending = 0;
	if (rc == QMP_ERR_COMMAND) {
		msg(err, sizeof(err), "QEMU says: %s", qmp_error(q->qmp));
		d->sink.set_done(d->sink.vm, DEV_SET_REFUSED, err, now);
		return;
	}
	if (rc) {
		lost(q, qmp_error(q->qmp), now);
		d->sink.set_done(d->sink.vm, DEV_SET_LOST, "lost QMP", now);
		return;
	}
	d->sink.set_done(d->sink.vm, DEV_SET_OK, "", now);
	drain_events(q, EVENTS_PER_WAKEUP, now);
}

static void q_maintain(struct dev *d, long long now)
{
	(void)now;
	qdev_of(d)->muted_until = 0;
}

static int q_fd(struct dev *d, long long now)
{
	struct qdev *q = qdev_of(d);

	return q->qmp && now >= q->muted_until ? qmp_fd(q->qmp) : -1;
}

static void q_on_fd(struct dev *d, short revents, long long now, long long next_tick)
{
	struct qdev *q = qdev_of(d);

	(void)revents;
	if (!q->qmp)
		return;
	/* a peer that never stops talking is heard again at the next tick */
	if (drain_events(q, EVENTS_PER_WAKEUP, now) > 0)
		q->muted_until = next_tick;
}

static const char *q_state(struct dev *d, long long now)
{
	(void)now;
	return d->connected ? "connected" : "not connected";
}

static void q_close(struct dev *d)
{
	struct qdev *q = qdev_of(d);

	qmp_close(q->qmp);
	free(q);
}

static const struct dev_ops qmp_ops = {
	.kind = "qmp",
	.label = "QMP",
	.other_client = "requested-size changed by another QMP client",
	.connect = q_connect,
	.refresh = q_refresh,
	.set_requested = q_set_requested,
	.maintain = q_maintain,
	.fd = q_fd,
	.on_fd = q_on_fd,
	.state = q_state,
	.close = q_close,
};

struct dev *dev_qmp_open(const struct mpd_config *dcfg, const struct vm_config *cfg,
			 const struct dev_sink *sink)
{
	struct qdev *q = calloc(1, sizeof(*q));

	if (!q)
		return NULL;
	q->d.ops = &qmp_ops;
	q->d.sink = *sink;
	q->d.cfg = cfg;
	q->d.dcfg = dcfg;
	snprintf(q->dev_id, sizeof(q->dev_id), "%s", cfg->device);
	return &q->d;
}
