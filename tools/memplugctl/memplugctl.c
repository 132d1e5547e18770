// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplugctl - inspect and resize QEMU virtio-mem devices over QMP.
 *
 * This is the host side companion of the memplug guest driver: it asks QEMU
 * (not the guest) for the state of a virtio-mem device, changes its
 * requested-size and follows the guest's progress in plugging memory.
 * See docs/memplugctl.1.
 *
 * Every subcommand is one entry of commands[] (near main): its name, usage,
 * help, the options it takes and its handler.  main() parses the options,
 * looks the command up there and runs it; --help and the usage errors are
 * made from the same table.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"
#include "qmp.h"
#include "size.h"
#include "util.h"

/* PACKAGE_VERSION of driver/dkms.conf, passed in by the Makefile. */
#ifndef MEMPLUG_VERSION
#error "MEMPLUG_VERSION is not defined: build with tools/memplugctl/Makefile"
#endif

/* Exit statuses (documented in memplugctl.1). */
#define EXIT_REACHED 0
#define EXIT_ERROR 1
#define EXIT_TIMEOUT 2

#define DEFAULT_WAIT_TIMEOUT_MS (120 * 1000)
#define DEFAULT_QMP_TIMEOUT_MS (5 * 1000)
/* How often --wait polls the size, in case an event was rate limited. */
#define POLL_INTERVAL_MS 200
/* Without a terminal, print at most one progress line per this interval. */
#define PLAIN_PROGRESS_INTERVAL_MS 1000
#define PROGRESS_BAR_WIDTH 30
/* A rate averaged over less than this is noise (or a division by ~0). */
#define MIN_RATE_INTERVAL_MS 300

/* Where QEMU puts devices created with -device/device_add id=... */
#define PERIPHERAL_PATH "/machine/peripheral/"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct options {
	const char *socket;
	const char *device;
	const char *sysfs_root;
	int json;
	int wait;
	int timeout_given;
	unsigned int timeout_ms;
	unsigned int count;
	unsigned int qmp_timeout_ms;
	uint64_t size; /* resize SIZE */
};

/* One virtio-mem device as reported by query-memory-devices. */
struct vmem_info {
	char id[128]; /* "" when the device has no id */
	char memdev[256];
	int64_t node;
	uint64_t memaddr;
	uint64_t block_size;
	uint64_t max_size;
	uint64_t requested_size;
	uint64_t size;
};

/* A progress bar without its final newline is on stderr's current line. */
static volatile sig_atomic_t bar_on_screen;
/* What Ctrl-C during resize --wait says: the request stays in effect. */
static char interrupt_msg[512];
static size_t interrupt_len;

/* Ctrl-C during resize --wait: end the bar's line, say so, die as usual. */
static void on_fatal_signal(int sig)
{
	ssize_t ignored;

	if (bar_on_screen)
		ignored = write(STDERR_FILENO, "\n", 1);
	ignored = write(STDERR_FILENO, interrupt_msg, interrupt_len);
	(void)ignored;
	signal(sig, SIG_DFL);
	raise(sig);
}

static void __attribute__((format(printf, 1, 2))) error_msg(const char *fmt, ...)
{
	va_list ap;

	if (bar_on_screen) {
		fputc('\n', stderr);
		bar_on_screen = 0;
	}
	va_start(ap, fmt);
	verror_line("", fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Usage errors */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verror_line(" (see memplugctl --help)", fmt, ap);
	va_end(ap);
	return EX_USAGE;
}

/* ------------------------------------------------------------------ */
/* Talking to QEMU */

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
	return 0;
}

/* query-memory-devices, checked to be an array of {type, data} objects. */
static int query_memory_devices(struct qmp_conn *conn, json_t **list)
{
	size_t i;
	json_t *entry;

	int rc = qmp_execute(conn, "query-memory-devices", NULL, list);

	if (rc) {
		/* resize --wait's own deadline: it says so itself */
		if (rc != QMP_ERR_TIMEOUT || !qmp_timed_out_at_limit(conn))
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
static int valid_device_id(const char *id)
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
static int find_device(struct qmp_conn *conn, const char *id, struct vmem_info *info)
{
	json_t *list, *entry, *found = NULL;
	unsigned int nr_vmem = 0;
	char names[256] = "";
	int rc = -1;
	size_t i;

	if (query_memory_devices(conn, &list))
		return -1;
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

static struct qmp_conn *connect_qmp(const struct options *opts, const struct qmp_addr *addr)
{
	struct qmp_conn *conn;
	char err[512];

	conn = qmp_connect(addr, (int)opts->qmp_timeout_ms, err, sizeof(err));
	if (!conn)
		error_msg("%s", err);
	return conn;
}

/* ------------------------------------------------------------------ */
/* Is anybody acting on a request?  The VM's run state and the driver */

/* What QEMU says about the VM: query-status. */
struct vm_state {
	int known; /* QEMU answered query-status */
	int running;
	char status[32]; /* QEMU's RunState: running, paused, prelaunch, ... */
};

/* A device's guest driver, from its virtio status byte. */
enum driver_state {
	DRIVER_UNKNOWN, /* QEMU has no x-query-virtio-status, or the device no id */
	DRIVER_READY, /* DRIVER_OK set: a driver has set the device up */
	DRIVER_NONE, /* DRIVER_OK not set: no driver (yet) */
	DRIVER_FAILED, /* FAILED or NEEDS_RESET set, or QEMU says "broken" */
};

static const char *const driver_names[] = {
	[DRIVER_UNKNOWN] = "unknown",
	[DRIVER_READY] = "ready",
	[DRIVER_NONE] = "none",
	[DRIVER_FAILED] = "failed",
};

#define VIRTIO_S_DRIVER_OK 0x04
#define VIRTIO_S_NEEDS_RESET 0x40
#define VIRTIO_S_FAILED 0x80

/* query-status into @vm.  An error answer leaves it unknown; -1 if QMP broke. */
static int query_vm_state(struct qmp_conn *conn, struct vm_state *vm)
{
	json_t *ret, *running, *status;
	int rc;

	memset(vm, 0, sizeof(*vm));
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
static int query_driver(struct qmp_conn *conn, const char *id, enum driver_state *driver)
{
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

/*
 * The warnings of status (documented in memplugctl.1):
 *   vm-paused  the VM is not running: no guest can act on a request;
 *   no-driver  requested and plugged size differ and no guest driver has set
 *              the device up (or it failed): nothing acts on the request.
 */
static int warn_paused(const struct vm_state *vm)
{
	return vm->known && !vm->running;
}

static int warn_no_driver(const struct vmem_info *info, enum driver_state driver)
{
	return info->requested_size != info->size &&
	       (driver == DRIVER_NONE || driver == DRIVER_FAILED);
}

/* ------------------------------------------------------------------ */
/* status */

static void print_vmem_json(const struct vmem_info *info, const struct vm_state *vm,
			    enum driver_state driver)
{
	json_t *obj = json_object(), *warnings = json_array();

	/* Same member names as query-memory-devices, so scripts can use either. */
	json_object_set_new(obj, "id", json_string(info->id));
	json_object_set_new(obj, "memdev", json_string(info->memdev));
	json_object_set_new(obj, "node", json_integer(info->node));
	json_object_set_new(obj, "memaddr", json_integer((json_int_t)info->memaddr));
	json_object_set_new(obj, "block-size", json_integer((json_int_t)info->block_size));
	json_object_set_new(obj, "max-size", json_integer((json_int_t)info->max_size));
	json_object_set_new(obj, "requested-size", json_integer((json_int_t)info->requested_size));
	json_object_set_new(obj, "size", json_integer((json_int_t)info->size));
	/* Then what status adds; a member is left out when QEMU cannot say. */
	if (vm->known) {
		json_object_set_new(obj, "vm-status", json_string(vm->status));
		json_object_set_new(obj, "vm-running", json_boolean(vm->running));
	}
	if (driver != DRIVER_UNKNOWN)
		json_object_set_new(obj, "driver", json_string(driver_names[driver]));
	if (warn_paused(vm))
		json_array_append_new(warnings, json_string("vm-paused"));
	if (warn_no_driver(info, driver))
		json_array_append_new(warnings, json_string("no-driver"));
	json_object_set_new(obj, "warnings", warnings);
	print_json_line(obj);
}

static void print_vmem_human(const struct vmem_info *info, const struct vm_state *vm,
			     enum driver_state driver)
{
	char id[sizeof(info->id)], memdev[sizeof(info->memdev)];
	char a[SIZE_STR_MAX], b[SIZE_STR_MAX];
	uint64_t end = info->memaddr + info->max_size - (info->max_size ? 1 : 0);

	snprintf(id, sizeof(id), "%s", info->id[0] ? info->id : "(no id)");
	snprintf(memdev, sizeof(memdev), "%s", info->memdev[0] ? info->memdev : "-");
	sanitize_string(id);
	sanitize_string(memdev);
	printf("%s:\n", id);
	printf("  memdev:          %s\n", memdev);
	printf("  node:            %" PRId64 "\n", info->node);
	printf("  block size:      %s (%" PRIu64 ")\n", format_size(info->block_size, a, sizeof(a)),
	       info->block_size);
	printf("  region:          0x%" PRIx64 "-0x%" PRIx64 " (%s)\n", info->memaddr, end,
	       format_size(info->max_size, a, sizeof(a)));
	printf("  max size:        %s (%" PRIu64 ")\n", format_size(info->max_size, a, sizeof(a)),
	       info->max_size);
	printf("  requested size:  %s (%" PRIu64 ")\n",
	       format_size(info->requested_size, a, sizeof(a)), info->requested_size);
	printf("  plugged size:    %s (%" PRIu64 ")%s\n", format_size(info->size, b, sizeof(b)),
	       info->size,
	       info->size == info->requested_size ? "" : "  (requested size not reached yet)");
	if (driver != DRIVER_UNKNOWN)
		printf("  driver:          %s\n",
		       driver == DRIVER_READY ? "ready (DRIVER_OK)" :
		       driver == DRIVER_NONE  ? "none (no guest driver has set the device up)" :
						"failed (the device is broken or needs a reset)");
	if (vm->known && vm->running)
		printf("  vm:              running\n");
	else if (vm->known)
		printf("  vm:              not running (%s)\n", vm->status);
	if (warn_paused(vm))
		printf("  warning:         the VM is not running (%s): the guest cannot plug or "
		       "unplug memory until it runs\n",
		       vm->status);
	if (warn_no_driver(info, driver))
		printf("  warning:         no guest driver answers: %s requested, %s plugged, and "
		       "nothing acts on it\n",
		       a, b);
}

static int show_device(struct qmp_conn *conn, const struct options *opts,
		       const struct vmem_info *info, const struct vm_state *vm)
{
	enum driver_state driver;

	if (query_driver(conn, info->id, &driver))
		return -1;
	if (opts->json)
		print_vmem_json(info, vm, driver);
	else
		print_vmem_human(info, vm, driver);
	return 0;
}

static int cmd_status(struct qmp_conn *conn, const struct options *opts)
{
	struct vmem_info info;
	struct vm_state vm;
	json_t *list, *entry;
	unsigned int shown = 0;
	int rc = EXIT_SUCCESS;
	size_t i;

	if (opts->device) {
		if (find_device(conn, opts->device, &info) || query_vm_state(conn, &vm) ||
		    show_device(conn, opts, &info, &vm))
			return EXIT_ERROR;
		return EXIT_SUCCESS;
	}
	if (query_memory_devices(conn, &list))
		return EXIT_ERROR;
	if (query_vm_state(conn, &vm)) {
		json_decref(list);
		return EXIT_ERROR;
	}
	json_array_foreach(list, i, entry) {
		if (!is_virtio_mem(entry))
			continue;
		if (entry_to_vmem(entry, &info)) {
			rc = EXIT_ERROR;
			break;
		}
		if (!opts->json && shown)
			putchar('\n');
		if (show_device(conn, opts, &info, &vm)) {
			rc = EXIT_ERROR;
			break;
		}
		shown++;
	}
	json_decref(list);
	if (!rc && !shown) {
		error_msg("QEMU has no virtio-mem device");
		rc = EXIT_ERROR;
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* resize */

struct progress {
	int tty;
	const char *id;
	uint64_t start;
	uint64_t target;
	uint64_t last_size;
	long long t0;
	long long last_print;
};

/* Average rate since the start as "123.4 MiB/s"; "-" until it means something. */
static char *format_rate(const struct progress *p, uint64_t size, char *buf, size_t len)
{
	long long elapsed = now_ms() - p->t0;
	uint64_t moved = size > p->start ? size - p->start : p->start - size;

	if (elapsed < MIN_RATE_INTERVAL_MS)
		snprintf(buf, len, "- MiB/s");
	else
		snprintf(buf, len, "%.1f MiB/s",
			 (double)moved / (1024.0 * 1024.0) / ((double)elapsed / 1000.0));
	return buf;
}

static unsigned int percent_done(const struct progress *p, uint64_t size)
{
	uint64_t total = p->target > p->start ? p->target - p->start : p->start - p->target;
	uint64_t done;

	if (!total)
		return 100;
	if (p->target > p->start)
		done = size > p->start ? size - p->start : 0;
	else
		done = size < p->start ? p->start - size : 0;
	if (done >= total)
		return 100;
	return (unsigned int)((double)done * 100.0 / (double)total);
}

static void show_progress(struct progress *p, uint64_t size, int final)
{
	char cur[SIZE_STR_MAX], tgt[SIZE_STR_MAX], rate[32];
	unsigned int pct = percent_done(p, size);
	long long now = now_ms();

	format_size(size, cur, sizeof(cur));
	format_size(p->target, tgt, sizeof(tgt));
	if (p->tty) {
		char bar[PROGRESS_BAR_WIDTH + 1];
		unsigned int fill = pct * PROGRESS_BAR_WIDTH / 100;

		memset(bar, '#', fill);
		memset(bar + fill, '.', PROGRESS_BAR_WIDTH - fill);
		bar[PROGRESS_BAR_WIDTH] = '\0';
		fprintf(stderr, "\r%s [%s] %3u%%  %s / %s  %s\033[K%s", p->id, bar, pct, cur, tgt,
			format_rate(p, size, rate, sizeof(rate)), final ? "\n" : "");
		bar_on_screen = !final;
	} else if (final ||
		   (size != p->last_size && now - p->last_print >= PLAIN_PROGRESS_INTERVAL_MS)) {
		fprintf(stderr, "%s: plugged %s of %s requested (%u%%, %s)\n", p->id, cur, tgt, pct,
			format_rate(p, size, rate, sizeof(rate)));
		p->last_print = now;
		p->last_size = size;
	}
	fflush(stderr);
}

/* Is @event a MEMORY_DEVICE_SIZE_CHANGE of device @id? */
static int is_size_change_of(json_t *event, const char *id)
{
	json_t *data = json_object_get(event, "data");
	const char *eid = json_string_value(json_object_get(data, "id"));

	return !strcmp(json_string_value(json_object_get(event, "event")),
		       "MEMORY_DEVICE_SIZE_CHANGE") &&
	       eid && !strcmp(eid, id);
}

/* What stays true after resize gives up waiting, said where it gives up. */
#define REQUEST_STAYS                                                                       \
	"(resize again to change it; QEMU forgets it when it restarts: it starts from the " \
	"requested-size of its command line)"

/*
 * resize --wait: until device @dev has @target plugged or --timeout.  @stuck
 * ("" if nothing is known to be wrong) says why the guest may not act; the
 * last plugged size seen ends up in *@final.  Returns the exit status.
 */
static int wait_for_size(struct qmp_conn *conn, const struct options *opts,
			 const struct vmem_info *dev, uint64_t target, const char *stuck,
			 uint64_t *final)
{
	struct progress p = {
		.tty = isatty(STDERR_FILENO),
		.id = dev->id,
		.start = dev->size,
		.target = target,
		.last_size = dev->size,
		.t0 = now_ms(),
	};
	long long deadline = p.t0 + opts->timeout_ms;
	long long next_poll = p.t0;
	uint64_t size = dev->size;
	char a[SIZE_STR_MAX], b[SIZE_STR_MAX];

	snprintf(interrupt_msg, sizeof(interrupt_msg),
		 ERROR_PREFIX "interrupted: the requested size of %s stays %s " REQUEST_STAYS "\n",
		 dev->id, format_size(target, a, sizeof(a)));
	interrupt_len = strlen(interrupt_msg);
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);

	p.last_print = p.t0 - PLAIN_PROGRESS_INTERVAL_MS;
	/* No query may hold us past --timeout, however slow the peer. */
	qmp_set_limit(conn, deadline);
	for (;;) {
		long long now = now_ms();
		long long wake;
		json_t *event;
		int rc;

		if (size != target && now >= next_poll && now < deadline) {
			struct vmem_info cur;

			/* Events are rate limited by QEMU; polling sees every change. */
			if (find_device(conn, dev->id, &cur)) {
				if (qmp_timed_out_at_limit(conn))
					continue; /* the deadline came first */
				return EXIT_ERROR;
			}
			if (cur.requested_size != target) {
				error_msg(
					"requested size of %s was changed to %s by another QMP client",
					dev->id, format_size(cur.requested_size, a, sizeof(a)));
				return EXIT_ERROR;
			}
			size = cur.size;
			next_poll = now_ms() + POLL_INTERVAL_MS;
		}
		*final = size;
		if (size == target) {
			show_progress(&p, size, 1);
			return EXIT_REACHED;
		}
		now = now_ms();
		if (now >= deadline) {
			show_progress(&p, size, 1);
			error_msg("timed out after %u.%01u s: %s has %s plugged, %s requested%s; "
				  "the request stays in effect " REQUEST_STAYS,
				  opts->timeout_ms / 1000, opts->timeout_ms % 1000 / 100, dev->id,
				  format_size(size, a, sizeof(a)),
				  format_size(target, b, sizeof(b)), stuck);
			return EXIT_TIMEOUT;
		}
		show_progress(&p, size, 0);
		wake = next_poll < deadline ? next_poll : deadline;
		rc = qmp_next_event(conn, (int)(wake > now ? wake - now : 0), &event);
		if (rc == QMP_OK) {
			/*
			 * Only a hint to poll now: an event may have been queued
			 * before our qom-set and carry a stale size, so "reached"
			 * is only ever decided on a fresh query.
			 */
			if (is_size_change_of(event, dev->id))
				next_poll = 0;
			json_decref(event);
		} else if (rc != QMP_ERR_TIMEOUT) {
			error_msg("%s", qmp_error(conn));
			return EXIT_ERROR;
		}
	}
}

/* One line of resize --json; @result: requested, reached or timeout. */
static void print_resize_json(const struct vmem_info *dev, uint64_t size, uint64_t plugged,
			      const char *result, json_t *warnings, long long elapsed_ms)
{
	json_t *obj = json_pack("{s:s, s:I, s:I, s:I, s:s}", "id", dev->id, "requested-size",
				(json_int_t)size, "previous-requested-size",
				(json_int_t)dev->requested_size, "size", (json_int_t)plugged,
				"result", result);

	if (obj && warnings)
		json_object_set(obj, "warnings", warnings);
	if (obj && elapsed_ms >= 0)
		json_object_set_new(obj, "elapsed-ms", json_integer(elapsed_ms));
	print_json_line(obj);
	fflush(stdout);
}

static int cmd_resize(struct qmp_conn *conn, const struct options *opts)
{
	char path[sizeof(PERIPHERAL_PATH) + 128];
	char a[SIZE_STR_MAX], b[SIZE_STR_MAX];
	char stuck[160] = "";
	uint64_t size = opts->size, final = 0;
	enum driver_state driver;
	struct vmem_info dev;
	struct vm_state vm;
	json_t *ret, *warnings;
	long long t0;
	int rc;

	if (find_device(conn, opts->device, &dev))
		return EXIT_ERROR;
	/* Check here so the user gets a clear message and QEMU is untouched. */
	if (size % dev.block_size) {
		error_msg("size %s (%" PRIu64 ") is not a multiple of the block size %s of %s",
			  format_size(size, a, sizeof(a)), size,
			  format_size(dev.block_size, b, sizeof(b)), dev.id);
		return EXIT_ERROR;
	}
	if (size > dev.max_size) {
		error_msg("size %s is larger than the region of %s (max %s)",
			  format_size(size, a, sizeof(a)), dev.id,
			  format_size(dev.max_size, b, sizeof(b)));
		return EXIT_ERROR;
	}
	/* Before anything changes: can the guest act on it at all? */
	if (query_vm_state(conn, &vm) || query_driver(conn, dev.id, &driver))
		return EXIT_ERROR;
	/* The full path: a bare id could be ambiguous with an -object id. */
	snprintf(path, sizeof(path), PERIPHERAL_PATH "%s", dev.id);
	if (qmp_execute(conn, "qom-set",
			json_pack("{s:s, s:s, s:I}", "path", path, "property", "requested-size",
				  "value", (json_int_t)size),
			&ret)) {
		error_msg("setting requested-size of %s failed: %s", dev.id, qmp_error(conn));
		return EXIT_ERROR;
	}
	json_decref(ret);

	warnings = json_array();
	if (warn_paused(&vm)) {
		json_array_append_new(warnings, json_string("vm-paused"));
		snprintf(stuck, sizeof(stuck), " (the VM is not running: %s)", vm.status);
	}
	if (size != dev.size && (driver == DRIVER_NONE || driver == DRIVER_FAILED)) {
		json_array_append_new(warnings, json_string("no-driver"));
		if (!stuck[0])
			snprintf(stuck, sizeof(stuck), " (no guest driver has set %s up)", dev.id);
	}
	if (opts->json)
		print_resize_json(&dev, size, dev.size, "requested", warnings, -1);
	else
		printf("%s: requested size %s (%" PRIu64 "), plugged %s\n", dev.id,
		       format_size(size, a, sizeof(a)), size, format_size(dev.size, b, sizeof(b)));
	fflush(stdout);
	if (warn_paused(&vm))
		error_msg("note: the VM is not running (%s): the guest cannot plug or unplug "
			  "memory until it runs; the request stays in effect",
			  vm.status);
	if (size != dev.size && driver == DRIVER_NONE)
		error_msg("note: no guest driver has set %s up (virtio DRIVER_OK not set): "
			  "nothing acts on the request until one does",
			  dev.id);
	if (size != dev.size && driver == DRIVER_FAILED)
		error_msg("note: %s is broken or needs a reset: its driver does not act on the "
			  "request",
			  dev.id);
	if (!opts->wait) {
		json_decref(warnings);
		return EXIT_SUCCESS;
	}
	t0 = now_ms();
	rc = wait_for_size(conn, opts, &dev, size, stuck, &final);
	if (opts->json && rc != EXIT_ERROR)
		print_resize_json(&dev, size, final, rc == EXIT_REACHED ? "reached" : "timeout",
				  warnings, now_ms() - t0);
	json_decref(warnings);
	return rc;
}

/* ------------------------------------------------------------------ */
/* watch */

/* ISO 8601 UTC from the event's {seconds, microseconds}, or from our clock. */
static void event_time(json_t *event, char *buf, size_t len)
{
	json_t *ts = json_object_get(event, "timestamp");
	json_t *sec = json_object_get(ts, "seconds");
	json_t *usec = json_object_get(ts, "microseconds");
	struct timespec now;
	struct tm tm;
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
	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(buf, len, "?");
		return;
	}
	snprintf(buf + strlen(buf), len - strlen(buf), ".%03ldZ", ms);
}

static void print_size_event(json_t *event, const char *id, uint64_t size, int json)
{
	const char *qom_path =
		json_string_value(json_object_get(json_object_get(event, "data"), "qom-path"));
	char when[64];

	event_time(event, when, sizeof(when));
	if (json) {
		print_json_line(json_pack("{s:s, s:s, s:I, s:s}", "timestamp", when, "id", id,
					  "size", (json_int_t)size, "qom-path",
					  qom_path ? qom_path : ""));
	} else {
		char safe_id[128], human[SIZE_STR_MAX];

		snprintf(safe_id, sizeof(safe_id), "%s", id);
		sanitize_string(safe_id);
		printf("%s %s size=%" PRIu64 " (%s)\n", when, safe_id, size,
		       format_size(size, human, sizeof(human)));
	}
	fflush(stdout);
}

/* How many virtio-mem devices QEMU has, in @count; -1 (reported) on error. */
static int count_virtio_mem(struct qmp_conn *conn, unsigned int *count)
{
	json_t *list, *entry;
	size_t i;

	*count = 0;
	if (query_memory_devices(conn, &list))
		return -1;
	json_array_foreach(list, i, entry) {
		if (is_virtio_mem(entry))
			(*count)++;
	}
	json_decref(list);
	return 0;
}

static int cmd_watch(struct qmp_conn *conn, const struct options *opts)
{
	long long deadline = opts->timeout_given ? now_ms() + opts->timeout_ms : -1;
	unsigned long dropped_reported = 0;
	unsigned int seen = 0, nr_vmem = 0;
	struct vmem_info dev;

	/* Fail early on a wrong -d, or no device, instead of waiting forever. */
	if (opts->device && find_device(conn, opts->device, &dev))
		return EXIT_ERROR;
	if (!opts->device) {
		if (count_virtio_mem(conn, &nr_vmem))
			return EXIT_ERROR;
		if (!nr_vmem) {
			error_msg("QEMU has no virtio-mem device: there is nothing to watch");
			return EXIT_ERROR;
		}
	}
	for (;;) {
		json_t *event, *data;
		const char *id;
		uint64_t size;
		int wait = -1;
		int rc;

		if (deadline >= 0) {
			long long left = deadline - now_ms();

			wait = left > 0 ? (int)left : 0;
		}
		/* A peer that never stops sending does not hold us past --timeout. */
		rc = deadline >= 0 && !wait ? QMP_ERR_TIMEOUT : qmp_next_event(conn, wait, &event);
		if (rc == QMP_ERR_TIMEOUT) {
			if (opts->count && seen < opts->count) {
				error_msg("timed out after %u events, %u expected", seen,
					  opts->count);
				return EXIT_TIMEOUT;
			}
			return EXIT_SUCCESS;
		}
		if (rc) {
			error_msg("%s", qmp_error(conn));
			return EXIT_ERROR;
		}
		if (qmp_dropped_events(conn) != dropped_reported) {
			dropped_reported = qmp_dropped_events(conn);
			error_msg("warning: %lu events lost so far", dropped_reported);
		}
		data = json_object_get(event, "data");
		id = json_string_value(json_object_get(data, "id"));
		if (strcmp(json_string_value(json_object_get(event, "event")),
			   "MEMORY_DEVICE_SIZE_CHANGE") ||
		    get_uint(data, "size", &size) ||
		    (opts->device && (!id || strcmp(id, opts->device)))) {
			json_decref(event);
			continue;
		}
		print_size_event(event, id ? id : "-", size, opts->json);
		json_decref(event);
		if (opts->count && ++seen >= opts->count)
			return EXIT_SUCCESS;
	}
}

/* ------------------------------------------------------------------ */
/* guest */

/* Inside the guest: sysfs only, no QMP. */
static int cmd_guest(struct qmp_conn *conn, const struct options *opts)
{
	(void)conn;
	return guest_show(opts->sysfs_root ? opts->sysfs_root : DEFAULT_SYSFS_ROOT, opts->device,
			  opts->json);
}

/* ------------------------------------------------------------------ */
/* The commands */

/*
 * The options that only some commands take, as bits of command.options:
 * bit i is cmd_option_names[i].  A command given an option it does not
 * take is a usage error; the first such option in this order is reported.
 */
enum {
	CMD_OPT_JSON = 1 << 0,
	CMD_OPT_SYSFS_ROOT = 1 << 1,
	CMD_OPT_WAIT = 1 << 2,
	CMD_OPT_COUNT = 1 << 3,
	CMD_OPT_TIMEOUT = 1 << 4,
};

static const char *const cmd_option_names[] = {
	"--json", "--sysfs-root", "--wait", "--count", "--timeout",
};

struct command {
	const char *name;
	/* after the name in the usage lines, e.g. "SIZE [--wait]" */
	const char *args;
	/* the global options it uses, before the name in its usage line */
	const char *globals;
	/* for memplugctl --help; a '\n' continues it on the next line */
	const char *summary;
	/* its own help, after its usage line; NULL: it has none */
	const char *help;
	/* the CMD_OPT_* it takes, and those of them that need --wait too */
	unsigned int options;
	unsigned int options_need_wait;
	/* takes its operands from argv[*next]; 0 or a usage error's status */
	int (*operands)(struct options *opts, int argc, char **argv, int *next);
	/* runs it; conn is NULL unless it talks to QEMU (qmp) */
	int (*run)(struct qmp_conn *conn, const struct options *opts);
	int qmp;
};

static int resize_operands(struct options *opts, int argc, char **argv, int *next)
{
	const char *why;

	if (*next >= argc)
		return usage_error("resize needs a SIZE");
	if (parse_size(argv[*next], &opts->size, &why))
		return usage_error("invalid size '%s': %s", argv[*next], why);
	(*next)++;
	return 0;
}

/* Every command, in the order memplugctl --help lists them. */
static const struct command commands[] = {
	{
		.name = "status",
		.args = "[--json]",
		.globals = "[-s ADDR] [-d ID]",
		.summary = "show the virtio-mem device(s)",
		.help = "Show id, memory backend, NUMA node, block size, region (address and maximum\n"
			"size), requested size and plugged size of the virtio-mem device given with\n"
			"-d, or of all virtio-mem devices; whether a guest driver has set it up\n"
			"and whether the VM runs.  Warnings: the VM is paused (the guest cannot\n"
			"act), or requested and plugged size differ and no guest driver answers.\n"
			"\n"
			"  -j, --json   one JSON object per device and line, with QMP's field names,\n"
			"               vm-status, vm-running, driver and warnings\n",
		.options = CMD_OPT_JSON,
		.run = cmd_status,
		.qmp = 1,
	},
	{
		.name = "resize",
		.args = "SIZE [--wait] [--timeout S] [--json]",
		.globals = "[-s ADDR] [-d ID]",
		.summary = "set the requested size",
		.help = "Set the requested size of the virtio-mem device to SIZE (e.g. 4G, 512MiB,\n"
			"0).  SIZE must be a multiple of the device's block size and at most its\n"
			"maximum size; this is checked before anything is sent to QEMU.\n"
			"The new requested size stays in effect until it is changed again, also\n"
			"after a --wait that timed out or was interrupted; it does not survive a\n"
			"restart of QEMU, which starts from its command line's requested-size.\n"
			"\n"
			"  -w, --wait        wait until the guest has plugged (or unplugged) SIZE,\n"
			"                    showing progress on stderr\n"
			"  -t, --timeout S   with --wait: give up after S seconds (default 120) and\n"
			"                    exit with status 2\n"
			"  -j, --json        a JSON object on stdout when the size is set, and one\n"
			"                    more when --wait ends (result reached or timeout)\n",
		.options = CMD_OPT_WAIT | CMD_OPT_TIMEOUT | CMD_OPT_JSON,
		.options_need_wait = CMD_OPT_TIMEOUT,
		.operands = resize_operands,
		.run = cmd_resize,
		.qmp = 1,
	},
	{
		.name = "watch",
		.args = "[--json] [--count N] [--timeout S]",
		.globals = "[-s ADDR] [-d ID]",
		.summary = "print size changes as they happen",
		.help = "Print a line \"<timestamp> <id> size=<bytes> (<size>)\" for every\n"
			"MEMORY_DEVICE_SIZE_CHANGE event (of device ID if -d is given).\n"
			"QEMU sends at most one such event per second and device.\n"
			"\n"
			"  -j, --json        print JSON objects, one per line\n"
			"  -c, --count N     exit 0 after N events\n"
			"  -t, --timeout S   stop after S seconds: exit 0, or 2 if --count was given\n"
			"                    and fewer than N events arrived\n"
			"Without -d it needs a virtio-mem device to watch: none is an error (exit 1).\n",
		.options = CMD_OPT_JSON | CMD_OPT_COUNT | CMD_OPT_TIMEOUT,
		.run = cmd_watch,
		.qmp = 1,
	},
	{
		.name = "guest",
		.args = "[--json] [--sysfs-root DIR]",
		.globals = "[-d virtioN]",
		.summary = "inside a guest: show memplug's state\n"
			   "from sysfs (no QMP socket needed)",
		.help = "Run inside a guest: show, for every virtio device bound to the memplug\n"
			"driver (or only virtioN), the driver's state from sysfs\n"
			"(/sys/bus/virtio/devices/virtioN/memplug/): mode, block sizes, region,\n"
			"requested and plugged size, units per state and the counters.  Attributes\n"
			"this version does not know are shown under their own names.\n"
			"\n"
			"  -j, --json             one JSON object per device and line, with the\n"
			"                         sysfs attribute names; numbers as numbers\n"
			"      --sysfs-root DIR   read DIR instead of /sys\n",
		.options = CMD_OPT_JSON | CMD_OPT_SYSFS_ROOT,
		.run = cmd_guest,
	},
	{
		/* "memplugctl help COMMAND" is handled before the others. */
		.name = "help",
		.args = "[COMMAND]",
		.summary = "show help (of a command)",
	},
};

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Help, from the table */

static const char usage_head[] =
	"Usage: memplugctl [OPTIONS] COMMAND [ARGS]\n"
	"\n"
	"Inspect and resize QEMU virtio-mem devices through a QMP socket.\n"
	"\n"
	"Commands:\n";

static const char usage_tail[] =
	"\n"
	"Options:\n"
	"  -s, --socket ADDR     QMP socket: unix path, unix:PATH, HOST:PORT or\n"
	"                        tcp:HOST:PORT (default: $MEMPLUG_QMP)\n"
	"  -d, --device ID       virtio-mem device id (default: the only one)\n"
	"      --qmp-timeout S   give up on a silent QEMU after S seconds (default 5)\n"
	"  -h, --help            show this help; with a command: its help\n"
	"  -V, --version         show the version\n"
	"\n"
	"Sizes: bytes, or a number with k, M, G, T (binary units, also KiB, MiB, ...).\n"
	"Exit status: 0 success, 1 error, 2 timeout (resize --wait, watch --count),\n"
	"64 usage error (including a malformed -s or -d).  See memplugctl(1).\n";

/* Where the summaries start in the list of commands. */
#define SUMMARY_COLUMN 40

/* "  resize SIZE [--wait] [--timeout S]    set the requested size" */
static void print_command_summary(const struct command *cmd)
{
	const char *s = cmd->summary, *nl;
	int len;

	len = printf("  %s%s%s", cmd->name, cmd->args[0] ? " " : "", cmd->args);
	if (len < SUMMARY_COLUMN)
		printf("%*s", SUMMARY_COLUMN - len, "");
	else
		printf("\n%*s", SUMMARY_COLUMN, "");
	while ((nl = strchr(s, '\n'))) {
		printf("%.*s\n%*s", (int)(nl - s), s, SUMMARY_COLUMN, "");
		s = nl + 1;
	}
	printf("%s\n", s);
}

static void print_usage(void)
{
	size_t i;

	fputs(usage_head, stdout);
	for (i = 0; i < ARRAY_SIZE(commands); i++)
		print_command_summary(&commands[i]);
	fputs(usage_tail, stdout);
}

/* memplugctl help COMMAND, memplugctl COMMAND --help */
static void print_command_help(const struct command *cmd)
{
	printf("Usage: memplugctl %s %s %s\n\n%s", cmd->globals, cmd->name, cmd->args, cmd->help);
}

/*
 * "--json is only valid for status, watch and guest": the commands that take
 * option @bit, in the table's order.
 */
static int option_misuse(unsigned int bit, const char *name)
{
	const struct command *takers[ARRAY_SIZE(commands)];
	char list[256] = "";
	size_t i, n = 0;

	for (i = 0; i < ARRAY_SIZE(commands); i++)
		if (commands[i].options & bit)
			takers[n++] = &commands[i];
	for (i = 0; i < n; i++) {
		const char *sep = ", ";
		size_t len = strlen(list);

		if (i == 0)
			sep = "";
		else if (i == n - 1)
			sep = " and ";
		snprintf(list + len, sizeof(list) - len, "%s%s%s", sep, takers[i]->name,
			 takers[i]->options_need_wait & bit ? " --wait" : "");
	}
	return usage_error("%s is only valid for %s", name, list);
}

/* Does @cmd take the options in @seen (CMD_OPT_*)?  0 or a usage error. */
static int check_command_options(const struct command *cmd, unsigned int seen)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cmd_option_names); i++) {
		unsigned int bit = 1U << i;

		if (!(seen & bit))
			continue;
		if (!(cmd->options & bit) ||
		    ((cmd->options_need_wait & bit) && !(seen & CMD_OPT_WAIT)))
			return option_misuse(bit, cmd_option_names[i]);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* main */

enum { OPT_QMP_TIMEOUT = 256, OPT_SYSFS_ROOT };

static const struct option long_options[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "device", required_argument, NULL, 'd' },
	{ "json", no_argument, NULL, 'j' },
	{ "wait", no_argument, NULL, 'w' },
	{ "timeout", required_argument, NULL, 't' },
	{ "count", required_argument, NULL, 'c' },
	{ "qmp-timeout", required_argument, NULL, OPT_QMP_TIMEOUT },
	{ "sysfs-root", required_argument, NULL, OPT_SYSFS_ROOT },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

int main(int argc, char **argv)
{
	struct options opts = {
		.timeout_ms = DEFAULT_WAIT_TIMEOUT_MS,
		.qmp_timeout_ms = DEFAULT_QMP_TIMEOUT_MS,
	};
	const char *from_env = "", *why;
	const struct command *cmd;
	struct qmp_conn *conn;
	struct qmp_addr addr;
	const char *command;
	unsigned int seen = 0; /* CMD_OPT_* given */
	int help = 0;
	int rc, opt;

	opterr = 0; /* we print our own, prefixed messages */
	while ((opt = getopt_long(argc, argv, ":s:d:jwt:c:hV", long_options, NULL)) != -1) {
		switch (opt) {
		case 's':
			opts.socket = optarg;
			break;
		case 'd':
			opts.device = optarg;
			break;
		case 'j':
			opts.json = 1;
			seen |= CMD_OPT_JSON;
			break;
		case 'w':
			opts.wait = 1;
			seen |= CMD_OPT_WAIT;
			break;
		case 't':
			if (parse_seconds(optarg, &opts.timeout_ms))
				return usage_error("invalid timeout '%s' (seconds, at most 86400)",
						   optarg);
			opts.timeout_given = 1;
			seen |= CMD_OPT_TIMEOUT;
			break;
		case 'c':
			if (parse_count(optarg, &opts.count))
				return usage_error("invalid count '%s' (a positive number)",
						   optarg);
			seen |= CMD_OPT_COUNT;
			break;
		case OPT_QMP_TIMEOUT:
			if (parse_seconds(optarg, &opts.qmp_timeout_ms) || !opts.qmp_timeout_ms)
				return usage_error(
					"invalid QMP timeout '%s' (seconds, at most 86400)",
					optarg);
			break;
		case OPT_SYSFS_ROOT:
			if (!*optarg)
				return usage_error("--sysfs-root needs a directory");
			opts.sysfs_root = optarg;
			seen |= CMD_OPT_SYSFS_ROOT;
			break;
		case 'h':
			help = 1;
			break;
		case 'V':
			printf("memplugctl %s\n", MEMPLUG_VERSION);
			return EXIT_SUCCESS;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			/*
			 * "resize -1G": getopt sees options, the user meant a size.
			 * Inside a cluster optind has not moved on yet.
			 */
			if (optopt >= '0' && optopt <= '9') {
				const char *arg = argv[optind - 1];

				if (optind < argc && argv[optind][0] == '-' &&
				    argv[optind][1] == optopt)
					arg = argv[optind];
				return usage_error("invalid size '%s': size must not be negative",
						   arg);
			}
			if (optopt)
				return usage_error("unknown option '-%c'", optopt);
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}

	command = optind < argc ? argv[optind++] : NULL;
	if (command && !strcmp(command, "help")) {
		command = optind < argc ? argv[optind++] : NULL;
		help = 1;
	}
	cmd = command ? find_command(command) : NULL;
	if (help) {
		if (!command) {
			print_usage();
			return EXIT_SUCCESS;
		}
		if (!cmd || !cmd->help)
			return usage_error("unknown command '%s'", command);
		print_command_help(cmd);
		return EXIT_SUCCESS;
	}
	if (!command)
		return usage_error("no command given");
	if (!cmd || !cmd->run)
		return usage_error("unknown command '%s'", command);
	rc = check_command_options(cmd, seen);
	if (rc)
		return rc;
	if (cmd->operands) {
		rc = cmd->operands(&opts, argc, argv, &optind);
		if (rc)
			return rc;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (opts.device && !valid_device_id(opts.device))
		return usage_error("invalid device id '%s' (a letter, then letters, digits, "
				   "'.', '_' or '-')",
				   opts.device);
	if (!cmd->qmp)
		return cmd->run(NULL, &opts);

	if (!opts.socket) {
		opts.socket = getenv("MEMPLUG_QMP");
		from_env = " (from MEMPLUG_QMP)";
	}
	if (!opts.socket || !*opts.socket)
		return usage_error("no QMP socket given (use -s ADDR or set MEMPLUG_QMP)");
	if (parse_qmp_addr(opts.socket, &addr, &why))
		return usage_error("invalid QMP socket address '%s'%s: %s", opts.socket, from_env,
				   why);

	conn = connect_qmp(&opts, &addr);
	if (!conn)
		return EXIT_ERROR;
	rc = cmd->run(conn, &opts);
	qmp_close(conn);
	return rc;
}
