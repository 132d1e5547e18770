// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplugctl's QMP backend (backend.h): QEMU's virtio-mem devices, run state
 * and events through its QMP socket, with qmp.c.  The requested size is set
 * with qom-set on the device's full QOM path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "qmp.h"
#include "util.h"

/* Where QEMU puts devices created with -device/device_add id=... */
#define PERIPHERAL_PATH "/machine/peripheral/"

struct qmp_backend {
	struct backend b;
	struct qmp_conn *conn;
};

static struct qmp_conn *conn_of(struct backend *b)
{
	return ((struct qmp_backend *)b)->conn;
}

static int get_uint(json_t *data, const char *key, uint64_t *value)
{
	json_t *v = json_object_get(data, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*value = (uint64_t)json_integer_value(v);
	return 0;
}

/* Fill @info from the "data" of a virtio-mem entry; -1 if malformed. */
static int parse_vmem(json_t *data, struct vmem_info *info)
{
	json_t *id = json_object_get(data, "id");
	json_t *memdev = json_object_get(data, "memdev");
	json_t *node = json_object_get(data, "node");

	memset(info, 0, sizeof(*info));
	if (!json_is_object(data))
		return -1;
	if (get_uint(data, "memaddr", &info->memaddr) ||
	    get_uint(data, "block-size", &info->block_size) ||
	    get_uint(data, "max-size", &info->max_size) ||
	    get_uint(data, "requested-size", &info->requested_size) ||
	    get_uint(data, "size", &info->size))
		return -1;
	/* A zero block size would make every size check divide by zero. */
	if (!info->block_size)
		return -1;
	/* The region must fit in the address space. */
	if (info->max_size > UINT64_MAX - info->memaddr)
		return -1;
	if (id) {
		if (!json_is_string(id) || json_string_length(id) >= sizeof(info->id))
			return -1;
		snprintf(info->id, sizeof(info->id), "%s", json_string_value(id));
	}
	if (json_is_string(memdev))
		snprintf(info->memdev, sizeof(info->memdev), "%s", json_string_value(memdev));
	info->node = json_is_integer(node) ? json_integer_value(node) : -1;
	info->known = VMEM_KNOWN_MEMADDR | VMEM_KNOWN_MEMDEV;
	return 0;
}

/*
 * query-memory-devices, checked to be an array of {type, data} objects.
 * BACKEND_TIMEOUT (not reported) when the limit ran out.
 */
static int query_memory_devices(struct qmp_conn *conn, json_t **list)
{
	size_t i;
	json_t *entry;

	int rc = qmp_execute(conn, "query-memory-devices", NULL, list);

	if (rc) {
		/* resize --wait's own deadline: it says so itself */
		if (rc == QMP_ERR_TIMEOUT && qmp_timed_out_at_limit(conn))
			return BACKEND_TIMEOUT;
		error_msg("query-memory-devices failed: %s", qmp_error(conn));
		return -1;
	}
	if (!json_is_array(*list)) {
		error_msg("malformed reply to query-memory-devices: not an array");
		goto bad;
	}
	json_array_foreach(*list, i, entry) {
		if (!json_is_string(json_object_get(entry, "type")) ||
		    !json_is_object(json_object_get(entry, "data"))) {
			error_msg("malformed reply to query-memory-devices: entry %zu", i);
			goto bad;
		}
	}
	return 0;
bad:
	json_decref(*list);
	*list = NULL;
	return -1;
}

static int is_virtio_mem(json_t *entry)
{
	return !strcmp(json_string_value(json_object_get(entry, "type")), "virtio-mem");
}

static const char *entry_id(json_t *entry)
{
	return json_string_value(json_object_get(json_object_get(entry, "data"), "id"));
}

static int entry_to_vmem(json_t *entry, struct vmem_info *info)
{
	if (parse_vmem(json_object_get(entry, "data"), info)) {
		error_msg("malformed virtio-mem entry in reply to query-memory-devices");
		return -1;
	}
	return 0;
}

/*
 * Explain why @id is not usable: it is some other device, or none at all.
 * Only called when @id is not a virtio-mem device in query-memory-devices.
 */
static void explain_not_vmem(struct qmp_conn *conn, const char *id)
{
	char path[sizeof(PERIPHERAL_PATH) + 128];
	char type[128];
	json_t *ret;

	snprintf(path, sizeof(path), PERIPHERAL_PATH "%s", id);
	if (qmp_execute(conn, "qom-get", json_pack("{s:s, s:s}", "path", path, "property", "type"),
			&ret)) {
		if (!strcmp(qmp_error_class(conn), "DeviceNotFound"))
			error_msg("no device with id '%s'", id);
		else
			error_msg("no virtio-mem device with id '%s' (%s)", id, qmp_error(conn));
		return;
	}
	snprintf(type, sizeof(type), "%s", json_is_string(ret) ? json_string_value(ret) : "?");
	sanitize_string(type);
	error_msg("device '%s' is not a virtio-mem device (it is a %s)", id, type);
	json_decref(ret);
}

/* QEMU ids are [A-Za-z][A-Za-z0-9._-]*; anything else could be a QOM path. */
int valid_device_id(const char *id)
{
	size_t i, len = strlen(id);

	if (!len || len >= sizeof(((struct vmem_info *)0)->id))
		return 0;
	for (i = 0; i < len; i++) {
		char c = id[i];
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		int other = (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';

		if (!alpha && (i == 0 || !other))
			return 0;
	}
	return 1;
}

/*
 * Find the virtio-mem device @id, or the only virtio-mem device if @id is
 * NULL.  Prints the error and returns -1 if there is no such (single) device.
 */
static int find_device(struct backend *b, const char *id, struct vmem_info *info)
{
	struct qmp_conn *conn = conn_of(b);
	json_t *list, *entry, *found = NULL;
	unsigned int nr_vmem = 0;
	char names[256] = "";
	int rc;
	size_t i;

	rc = query_memory_devices(conn, &list);
	if (rc)
		return rc;
	rc = -1;
	json_array_foreach(list, i, entry) {
		const char *eid = entry_id(entry);

		if (id) {
			if (!eid || strcmp(eid, id))
				continue;
			if (!is_virtio_mem(entry)) {
				char type[64];

				snprintf(type, sizeof(type), "%s",
					 json_string_value(json_object_get(entry, "type")));
				sanitize_string(type);
				error_msg(
					"device '%s' is not a virtio-mem device (it is a %s memory device)",
					id, type);
				goto out;
			}
			found = entry;
			break;
		}
		if (!is_virtio_mem(entry))
			continue;
		nr_vmem++;
		found = entry;
		if (strlen(names) + 70 < sizeof(names))
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%.64s",
				 nr_vmem > 1 ? ", " : "", eid ? eid : "(no id)");
	}
	if (id && !found) {
		explain_not_vmem(conn, id);
		goto out;
	}
	if (!id && nr_vmem == 0) {
		error_msg("QEMU has no virtio-mem device");
		goto out;
	}
	if (!id && nr_vmem > 1) {
		sanitize_string(names);
		error_msg("QEMU has %u virtio-mem devices (%s): choose one with -d ID", nr_vmem,
			  names);
		goto out;
	}
	if (entry_to_vmem(found, info))
		goto out;
	if (!info->id[0]) {
		error_msg(
			"the virtio-mem device has no id; start it with -device virtio-mem-pci,id=...");
		goto out;
	}
	/* QEMU never reports such ids; refuse rather than print or reuse them. */
	if (!valid_device_id(info->id)) {
		sanitize_string(info->id);
		error_msg("QEMU reported an invalid device id '%s'", info->id);
		goto out;
	}
	rc = 0;
out:
	json_decref(list);
	return rc;
}

#define VIRTIO_S_DRIVER_OK 0x04
#define VIRTIO_S_NEEDS_RESET 0x40
#define VIRTIO_S_FAILED 0x80

/* query-status into @vm.  An error answer leaves it unknown; -1 if QMP broke. */
static int query_vm_state(struct backend *b, struct vm_state *vm)
{
	struct qmp_conn *conn = conn_of(b);
	json_t *ret, *running, *status;
	int rc;

	memset(vm, 0, sizeof(*vm));
	/* the QEMU process answers: it exists */
	vm->active = 1;
	rc = qmp_execute(conn, "query-status", NULL, &ret);
	if (rc == QMP_ERR_COMMAND)
		return 0;
	if (rc) {
		error_msg("query-status failed: %s", qmp_error(conn));
		return -1;
	}
	running = json_object_get(ret, "running");
	status = json_object_get(ret, "status");
	if (json_is_boolean(running)) {
		vm->known = 1;
		vm->running = json_is_true(running);
		snprintf(vm->status, sizeof(vm->status), "%s",
			 json_is_string(status) ? json_string_value(status) :
						  (vm->running ? "running" : "stopped"));
		sanitize_string(vm->status);
	}
	json_decref(ret);
	return 0;
}

/* The virtio status byte of an x-query-virtio-status answer, or -1. */
static int virtio_status_bits(json_t *ret)
{
	json_t *bits = json_object_get(ret, "status-bits");
	json_t *status = json_object_get(ret, "status");
	json_t *list, *entry;
	int value = 0;
	size_t i;

	/* Depending on QEMU's version: a number, or decoded names. */
	if (json_is_integer(bits))
		return (int)(json_integer_value(bits) & 0xff);
	if (json_is_integer(status))
		return (int)(json_integer_value(status) & 0xff);
	list = json_object_get(status, "statuses");
	if (!json_is_array(list))
		return -1;
	json_array_foreach(list, i, entry) {
		const char *name = json_string_value(entry);

		if (!name)
			continue;
		if (!strncmp(name, "VIRTIO_CONFIG_S_DRIVER_OK", 25))
			value |= VIRTIO_S_DRIVER_OK;
		else if (!strncmp(name, "VIRTIO_CONFIG_S_NEEDS_RESET", 27))
			value |= VIRTIO_S_NEEDS_RESET;
		else if (!strncmp(name, "VIRTIO_CONFIG_S_FAILED", 22))
			value |= VIRTIO_S_FAILED;
	}
	return value;
}

/*
 * Has a guest driver set up device @id?  From QEMU's x-query-virtio-status
 * (QEMU 7.2 and later); DRIVER_UNKNOWN when QEMU cannot say.  -1 if QMP broke.
 */
static int query_driver(struct backend *b, const char *id, enum driver_state *driver)
{
	struct qmp_conn *conn = conn_of(b);
	char path[sizeof(PERIPHERAL_PATH) + 128 + 16];
	json_t *ret;
	int rc, bits;

	*driver = DRIVER_UNKNOWN;
	if (!id[0])
		return 0;
	snprintf(path, sizeof(path), PERIPHERAL_PATH "%s/virtio-backend", id);
	rc = qmp_execute(conn, "x-query-virtio-status", json_pack("{s:s}", "path", path), &ret);
	if (rc == QMP_ERR_COMMAND)
		return 0;
	if (rc) {
		error_msg("x-query-virtio-status failed: %s", qmp_error(conn));
		return -1;
	}
	bits = virtio_status_bits(ret);
	if (json_is_true(json_object_get(ret, "broken")) ||
	    (bits >= 0 && (bits & (VIRTIO_S_FAILED | VIRTIO_S_NEEDS_RESET))))
		*driver = DRIVER_FAILED;
	else if (bits >= 0)
		*driver = bits & VIRTIO_S_DRIVER_OK ? DRIVER_READY : DRIVER_NONE;
	json_decref(ret);
	return 0;
}

/* ISO 8601 UTC from the event's {seconds, microseconds}, or from our clock. */
static void event_time(json_t *event, char *buf, size_t len)
{
	json_t *ts = json_object_get(event, "timestamp");
	json_t *sec = json_object_get(ts, "seconds");
	json_t *usec = json_object_get(ts, "microseconds");
	struct timespec now;
	time_t t;
	long ms;

	if (json_is_integer(sec) && json_is_integer(usec) && json_integer_value(sec) >= 0 &&
	    json_integer_value(usec) >= 0 && json_integer_value(usec) < 1000000) {
		t = (time_t)json_integer_value(sec);
		ms = (long)(json_integer_value(usec) / 1000);
	} else {
		clock_gettime(CLOCK_REALTIME, &now);
		t = now.tv_sec;
		ms = now.tv_nsec / 1000000;
	}
	format_utc(t, ms, buf, len);
}

static int list_devices(struct backend *b, struct vmem_info **devs, size_t *n, int *malformed)
{
	json_t *list, *entry;
	size_t i;
	int rc;

	*devs = NULL;
	*n = 0;
	*malformed = 0;
	rc = query_memory_devices(conn_of(b), &list);
	if (rc)
		return rc;
	*devs = calloc(json_array_size(list) + 1, sizeof(**devs));
	if (!*devs) {
		json_decref(list);
		error_msg("out of memory");
		return BACKEND_ERR;
	}
	json_array_foreach(list, i, entry) {
		if (!is_virtio_mem(entry))
			continue;
		if (entry_to_vmem(entry, &(*devs)[*n])) {
			*malformed = 1;
			break;
		}
		(*devs)[*n].index = (int)*n;
		(*n)++;
	}
	json_decref(list);
	return BACKEND_OK;
}

static int count_devices(struct backend *b, size_t *n)
{
	json_t *list, *entry;
	size_t i;

	*n = 0;
	if (query_memory_devices(conn_of(b), &list))
		return BACKEND_ERR;
	json_array_foreach(list, i, entry) {
		if (is_virtio_mem(entry))
			(*n)++;
	}
	json_decref(list);
	return BACKEND_OK;
}

static int set_requested(struct backend *b, const struct vmem_info *dev, uint64_t size,
			 unsigned int flags)
{
	char path[sizeof(PERIPHERAL_PATH) + 128];
	struct qmp_conn *conn = conn_of(b);
	json_t *ret;

	(void)flags; /* QEMU has no persistent configuration: main refuses --config */
	/* The full path: a bare id could be ambiguous with an -object id. */
	snprintf(path, sizeof(path), PERIPHERAL_PATH "%s", dev->id);
	if (qmp_execute(conn, "qom-set",
			json_pack("{s:s, s:s, s:I}", "path", path, "property", "requested-size",
				  "value", (json_int_t)size),
			&ret)) {
		error_msg("setting requested-size of %s failed: %s", dev->id, qmp_error(conn));
		return BACKEND_ERR;
	}
	json_decref(ret);
	return BACKEND_OK;
}

/* Is @event a MEMORY_DEVICE_SIZE_CHANGE with a size?  Fills @ev. */
static int to_size_event(json_t *event, struct size_event *ev)
{
	json_t *data = json_object_get(event, "data");
	const char *id = json_string_value(json_object_get(data, "id"));
	const char *qom_path = json_string_value(json_object_get(data, "qom-path"));

	memset(ev, 0, sizeof(*ev));
	if (strcmp(json_string_value(json_object_get(event, "event")),
		   "MEMORY_DEVICE_SIZE_CHANGE") ||
	    get_uint(data, "size", &ev->size))
		return 0;
	/* an id too long for ev->id is no id memplugctl could have been given */
	if (id && strlen(id) < sizeof(ev->id))
		snprintf(ev->id, sizeof(ev->id), "%s", id);
	else if (id)
		snprintf(ev->id, sizeof(ev->id), "?");
	snprintf(ev->qom_path, sizeof(ev->qom_path), "%s", qom_path ? qom_path : "");
	event_time(event, ev->when, sizeof(ev->when));
	return 1;
}

static int next_event(struct backend *b, int timeout_ms, struct size_event *ev)
{
	long long deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
	int first = 1;

	for (;;) {
		int wait = -1, rc, found;
		json_t *event;

		if (deadline >= 0) {
			long long left = deadline - now_ms();

			wait = left > 0 ? (int)left : 0;
			/* a peer that never stops sending other events does not hold us */
			if (!wait && !first)
				return BACKEND_TIMEOUT;
		}
		first = 0;
		rc = qmp_next_event(conn_of(b), wait, &event);
		if (rc == QMP_ERR_TIMEOUT)
			return BACKEND_TIMEOUT;
		if (rc)
			return BACKEND_ERR;
		found = to_size_event(event, ev);
		json_decref(event);
		if (found)
			return BACKEND_OK;
	}
}

static void set_limit(struct backend *b, long long limit_ms)
{
	qmp_set_limit(conn_of(b), limit_ms);
}

static unsigned long dropped_events(struct backend *b)
{
	return qmp_dropped_events(conn_of(b));
}

static const char *error(struct backend *b)
{
	return qmp_error(conn_of(b));
}

static void close_backend(struct backend *b)
{
	qmp_close(conn_of(b));
	free(b);
}

static const struct backend_ops qmp_ops = {
	.list_devices = list_devices,
	.count_devices = count_devices,
	.find_device = find_device,
	.vm_state = query_vm_state,
	.driver = query_driver,
	.set_requested = set_requested,
	.next_event = next_event,
	.set_limit = set_limit,
	.dropped_events = dropped_events,
	.error = error,
	.close = close_backend,
};

struct backend *qmp_backend_open(const struct qmp_addr *addr, int timeout_ms)
{
	struct qmp_backend *qb = calloc(1, sizeof(*qb));
	char err[512];

	if (!qb) {
		error_msg("out of memory");
		return NULL;
	}
	qb->conn = qmp_connect(addr, timeout_ms, err, sizeof(err));
	if (!qb->conn) {
		error_msg("%s", err);
		free(qb);
		return NULL;
	}
	qb->b.ops = &qmp_ops;
	qb->b.who = "QEMU";
	qb->b.other_client = "another QMP client";
	qb->b.request_stays = "(resize again to change it; QEMU forgets it when it restarts: it "
			      "starts from the requested-size of its command line)";
	qb->b.request_stays_config = qb->b.request_stays;
	return &qb->b;
}
