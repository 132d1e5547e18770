// SPDX-License-Identifier: GPL-2.0-only
/*
 * One VM: QMP, device, report channel, see vm.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "vm.h"

#define PERIPHERAL_PATH "/machine/peripheral/"
#define BACKOFF_FIRST_MS 500
/* Events taken per wakeup; more and the QMP socket is ignored until the next tick. */
#define EVENTS_PER_WAKEUP 64
#define INVALID_LOG_INTERVAL_MS 60000
#define LINK_RELOG_MS 60000

/* snprintf() that may truncate, on purpose (messages quoting paths and peers). */
static void __attribute__((format(printf, 3, 4))) msg(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, len, fmt, ap);
	va_end(ap);
}

static unsigned long long mib(uint64_t bytes)
{
	return (unsigned long long)(bytes >> 20);
}

/* A link came up (its caller says so in its own line). */
static void link_up(struct link *l)
{
	l->up = 1;
	l->down_logged = 0;
	l->backoff_ms = 0;
	l->next_try = 0;
}

/* A link is down: log the error (see struct link), back off. */
static void link_down(struct vm *vm, struct link *l, const char *what, const char *err,
		      long long now)
{
	unsigned int max = vm->dcfg->reconnect_max_ms;

	l->up = 0;
	if (strcmp(l->error, err) || now - l->error_logged_ms >= LINK_RELOG_MS) {
		log_line(LOG_WARNING, "vm %s: %s: %s; retrying", vm->cfg->name, what, err);
		snprintf(l->error, sizeof(l->error), "%s", err);
		l->error_logged_ms = now;
		l->down_logged = 1;
	}
	l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : BACKOFF_FIRST_MS;
	if (l->backoff_ms > max)
		l->backoff_ms = max;
	l->next_try = now + l->backoff_ms;
}

void vm_init(struct vm *vm, const struct mpd_config *dcfg, const struct vm_config *cfg,
	     long long now)
{
	memset(vm, 0, sizeof(*vm));
	vm->dcfg = dcfg;
	vm->cfg = cfg;
	vm->rep_fd = -1;
	report_reader_init(&vm->rd, dcfg->report_rate, now);
	vm->invalid_log_ms = POL_NEVER;
	vm->qmp_link.error_logged_ms = POL_NEVER;
	vm->rep_link.error_logged_ms = POL_NEVER;
	vm->pv.name = cfg->name;
	vm->pv.min = cfg->min;
	vm->pv.max = cfg->max;
	vm->pv.buffer = cfg->buffer;
	vm->pv.weight = cfg->weight;
	pol_state_init(&vm->pv.st, now);
	vm->out.to = 0;
	vm->out.state = VS_UNKNOWN;
	snprintf(vm->dev_id, sizeof(vm->dev_id), "%s", cfg->device);
}

/* ------------------------------------------------------------------ */
/* QMP */

static void qmp_lost(struct vm *vm, const char *why, long long now)
{
	char err[sizeof(vm->qmp_link.error)];

	msg(err, sizeof(err), "QMP %s: %s", vm->cfg->qmp_str, why);
	qmp_close(vm->qmp);
	vm->qmp = NULL;
	vm->pv.online = 0;
	vm->qmp_failures++;
	link_down(vm, &vm->qmp_link, "lost QMP", err, now);
}

static int get_u64(json_t *data, const char *key, uint64_t *value)
{
	json_t *v = json_object_get(data, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*value = (uint64_t)json_integer_value(v);
	return 0;
}

struct dev_info {
	char id[128];
	uint64_t block_size, region_size, requested, size;
};

/*
 * Our virtio-mem device in query-memory-devices: the configured id, the
 * one found before, or the VM's only one.  0, or -1 with @err set.
 */
static int query_device(struct vm *vm, struct dev_info *info, char *err, size_t err_len)
{
	json_t *list, *entry, *found = NULL, *data, *id;
	unsigned int nr_vmem = 0;
	size_t i;
	int rc;

	rc = qmp_execute(vm->qmp, "query-memory-devices", NULL, &list);
	if (rc) {
		msg(err, err_len, "query-memory-devices failed: %s", qmp_error(vm->qmp));
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
		if (vm->dev_id[0] ? (eid && !strcmp(eid, vm->dev_id)) : !found)
			found = entry;
	}
	if (!found || (!vm->dev_id[0] && nr_vmem > 1)) {
		if (vm->dev_id[0])
			snprintf(err, err_len, "no virtio-mem device '%s'", vm->dev_id);
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
static int is_our_size_change(struct vm *vm, json_t *ev)
{
	const char *name = json_string_value(json_object_get(ev, "event"));
	const char *id = json_string_value(json_object_get(json_object_get(ev, "data"), "id"));

	return name && !strcmp(name, "MEMORY_DEVICE_SIZE_CHANGE") && id && vm->dev_id[0] &&
	       !strcmp(id, vm->dev_id);
}

/* Take up to @max events; 1 if more may be waiting, 0 if none, -1 if lost. */
static int drain_events(struct vm *vm, int max, long long now)
{
	int i;

	for (i = 0; i < max; i++) {
		json_t *ev;
		int rc = qmp_next_event(vm->qmp, 0, &ev);

		if (rc == QMP_ERR_TIMEOUT)
			return 0;
		if (rc) {
			qmp_lost(vm, qmp_error(vm->qmp), now);
			return -1;
		}
		if (is_our_size_change(vm, ev))
			vm->refresh_due = 1;
		json_decref(ev);
	}
	return 1;
}

/* Take the device's sizes into the policy's view. */
static void update_device(struct vm *vm, const struct dev_info *d, long long now)
{
	struct pol_vm *pv = &vm->pv;

	pv->block_size = d->block_size;
	pv->region_size = d->region_size;
	if (d->requested != pv->requested || d->size != pv->plugged)
		pv->changed_ms = now;
	if (pv->dev_ok && d->requested != vm->known_requested) {
		log_line(
			LOG_NOTICE,
			"vm %s: requested-size changed by another QMP client: %llu MiB -> %llu MiB",
			vm->cfg->name, mib(vm->known_requested), mib(d->requested));
		pol_external_change(pv, vm->known_requested, d->requested, now);
	}
	vm->known_requested = d->requested;
	pv->requested = d->requested;
	pv->plugged = d->size;
	pv->dev_ok = 1;
	pv->online = 1;
}

/* Query the device; on failure the connection is dropped. */
static void refresh(struct vm *vm, long long now)
{
	struct dev_info d;
	char err[256];
	int rc;

	vm->refresh_due = 0;
	rc = query_device(vm, &d, err, sizeof(err));
	if (rc) {
		if (vm->qmp)
			qmp_lost(vm, err, now);
		return;
	}
	update_device(vm, &d, now);
	drain_events(vm, EVENTS_PER_WAKEUP, now);
}

static void qmp_up(struct vm *vm, long long now)
{
	char err[256], what[300];
	struct dev_info d;
	int was_known = vm->pv.dev_ok;

	vm->qmp = qmp_connect(&vm->cfg->qmp, (int)vm->dcfg->qmp_timeout_ms, err, sizeof(err));
	if (!vm->qmp) {
		msg(what, sizeof(what), "QMP %s: %s", vm->cfg->qmp_str, err);
		link_down(vm, &vm->qmp_link, "no QMP", what, now);
		return;
	}
	if (query_device(vm, &d, err, sizeof(err))) {
		msg(what, sizeof(what), "QMP %s: %s", vm->cfg->qmp_str, err);
		qmp_close(vm->qmp);
		vm->qmp = NULL;
		link_down(vm, &vm->qmp_link, "no device", what, now);
		return;
	}
	link_up(&vm->qmp_link);
	snprintf(vm->dev_id, sizeof(vm->dev_id), "%s", d.id);
	/* (re)connected: carry on from the device's sizes, as after a restart */
	vm->pv.dev_ok = 0;
	vm->pv.requested = d.requested;
	vm->pv.plugged = d.size;
	vm->known_requested = d.requested;
	update_device(vm, &d, now);
	vm->pv.changed_ms = now;
	pol_state_init(&vm->pv.st, now);
	log_line(LOG_NOTICE,
		 "vm %s: QMP connected%s: device %s, block %llu MiB, region %llu MiB; picked up "
		 "requested %llu MiB, plugged %llu MiB",
		 vm->cfg->name, was_known ? " again" : "", d.id, mib(d.block_size),
		 mib(d.region_size), mib(d.requested), mib(d.size));
	drain_events(vm, EVENTS_PER_WAKEUP, now);
}

/* ------------------------------------------------------------------ */
/* Report channel */

static void rep_close(struct vm *vm)
{
	if (vm->rep_fd >= 0)
		close(vm->rep_fd);
	vm->rep_fd = -1;
	report_reader_reset_line(&vm->rd);
}

static void rep_lost(struct vm *vm, const char *why, long long now)
{
	char err[sizeof(vm->rep_link.error)];

	msg(err, sizeof(err), "%s: %s", vm->cfg->report, why);
	rep_close(vm);
	link_down(vm, &vm->rep_link, "report channel", err, now);
}

static void rep_up(struct vm *vm, long long now)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	char err[256];

	if (fd < 0) {
		snprintf(err, sizeof(err), "socket: %s", strerror(errno));
		link_down(vm, &vm->rep_link, "report channel", err, now);
		return;
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", vm->cfg->report);
	/* A unix socket connects at once or not at all (EAGAIN: backlog full). */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		msg(err, sizeof(err), "%s: cannot connect: %s", vm->cfg->report, strerror(errno));
		close(fd);
		link_down(vm, &vm->rep_link, "report channel", err, now);
		return;
	}
	vm->rep_fd = fd;
	vm->rep_connects++;
	if (vm->rep_link.down_logged || vm->rep_connects == 1)
		log_line(LOG_NOTICE, "vm %s: report channel %s connected", vm->cfg->name,
			 vm->cfg->report);
	link_up(&vm->rep_link);
	report_reader_reset_line(&vm->rd);
}

static void log_invalid(struct vm *vm, long long now)
{
	const struct report_reader *rd = &vm->rd;
	unsigned long long inv = rd->invalid - vm->logged_invalid;
	unsigned long long lim = rd->rate_limited - vm->logged_limited;

	if ((!inv && !lim) || now - vm->invalid_log_ms < INVALID_LOG_INTERVAL_MS)
		return;
	log_line(LOG_WARNING,
		 "vm %s: report channel: %llu invalid lines (last: %s), %llu over the rate limit "
		 "of %u/s; ignored (said at most once a minute)",
		 vm->cfg->name, inv, rd->last_error ? rd->last_error : "-", lim, rd->rate);
	vm->logged_invalid = rd->invalid;
	vm->logged_limited = rd->rate_limited;
	vm->invalid_log_ms = now;
}

static int shows_pressure(const struct vm *vm)
{
	const struct report *r = &vm->rd.last;

	return (report_has(r, RK_PSI_SOME) && r->psi_some > vm->dcfg->pol.psi_threshold) ||
	       (report_has(r, RK_AVAIL) && r->avail < vm->cfg->buffer);
}

int vm_on_report(struct vm *vm, short revents, long long now)
{
	char buf[4096];
	size_t allow;
	ssize_t n;
	int pressure = 0;

	if (vm->rep_fd < 0 || !(revents & (POLLIN | POLLHUP | POLLERR)))
		return 0;
	allow = report_reader_allowance(&vm->rd, now);
	if (!allow)
		return 0;
	n = read(vm->rep_fd, buf, allow < sizeof(buf) ? allow : sizeof(buf));
	if (n > 0) {
		unsigned int lines = report_reader_feed(&vm->rd, buf, (size_t)n, now);

		if (lines) {
			vm->pv.have_report = 1;
			vm->pv.rep = vm->rd.last;
			vm->pv.rep_ms = vm->rd.last_ms;
			pressure = shows_pressure(vm);
		}
		log_invalid(vm, now);
		return pressure;
	}
	if (n == 0)
		rep_lost(vm, "closed by the peer (QEMU exited, or the chardev was removed)", now);
	else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		rep_lost(vm, strerror(errno), now);
	return 0;
}

/* ------------------------------------------------------------------ */

void vm_maintain(struct vm *vm, long long now)
{
	if (!vm->qmp && now >= vm->qmp_link.next_try)
		qmp_up(vm, now);
	else if (vm->qmp)
		refresh(vm, now);
	if (vm->rep_fd < 0 && now >= vm->rep_link.next_try)
		rep_up(vm, now);
	vm->qmp_muted_until = 0;
	log_invalid(vm, now);
}

int vm_refresh_if_due(struct vm *vm, long long now)
{
	if (!vm->refresh_due || !vm->qmp)
		return 0;
	refresh(vm, now);
	return 1;
}

int vm_pollfds(struct vm *vm, long long now, struct pollfd *pfd, int base, int *qmp_slot,
	       int *rep_slot)
{
	int k = 0;

	*qmp_slot = *rep_slot = -1;
	if (vm->qmp && now >= vm->qmp_muted_until) {
		pfd[k].fd = qmp_fd(vm->qmp);
		pfd[k].events = POLLIN;
		pfd[k].revents = 0;
		*qmp_slot = base + k++;
	}
	if (vm->rep_fd >= 0 && report_reader_allowance(&vm->rd, now) >= REPORT_LINE_MAX) {
		pfd[k].fd = vm->rep_fd;
		pfd[k].events = POLLIN;
		pfd[k].revents = 0;
		*rep_slot = base + k++;
	}
	return k;
}

long long vm_next_due(const struct vm *vm, long long now)
{
	long long due = now + 3600000;

	if (vm->rep_fd >= 0 && report_reader_wait_ms(&vm->rd) > 0)
		due = now + report_reader_wait_ms(&vm->rd);
	return due;
}

void vm_on_qmp(struct vm *vm, short revents, long long now, long long next_tick)
{
	if (!vm->qmp || !(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	/* a peer that never stops talking is heard again at the next tick */
	if (drain_events(vm, EVENTS_PER_WAKEUP, now) > 0)
		vm->qmp_muted_until = next_tick;
}

void vm_apply(struct vm *vm, long long now)
{
	const struct pol_out *o = &vm->out;
	char path[sizeof(PERIPHERAL_PATH) + sizeof(vm->dev_id)];
	uint64_t from = vm->pv.requested;
	json_t *ret = NULL;
	int rc;

	if (o->action == POL_KEEP || !vm->qmp || !vm->pv.online || o->to == from)
		return;
	if (o->to > (uint64_t)INT64_MAX)
		return; /* no QEMU has such a region: the peer lied */
	snprintf(path, sizeof(path), PERIPHERAL_PATH "%s", vm->dev_id);
	rc = qmp_execute(vm->qmp, "qom-set",
			 json_pack("{s:s, s:s, s:I}", "path", path, "property", "requested-size",
				   "value", (json_int_t)o->to),
			 &ret);
	json_decref(ret);
	if (rc == QMP_ERR_COMMAND) {
		log_line(LOG_ERR, "vm %s: %s %llu MiB -> %llu MiB failed: QEMU says: %s",
			 vm->cfg->name, pol_action_name(o->action), mib(from), mib(o->to),
			 qmp_error(vm->qmp));
		return;
	}
	if (rc) {
		qmp_lost(vm, qmp_error(vm->qmp), now);
		return;
	}
	vm->pv.requested = o->to;
	vm->known_requested = o->to;
	vm->pv.changed_ms = now;
	pol_commit(&vm->pv, o, now);
	log_line(LOG_NOTICE, "vm %s: %s %llu MiB -> %llu MiB: %s", vm->cfg->name,
		 pol_action_name(o->action), mib(from), mib(o->to), o->reason);
	vm->last.valid = 1;
	vm->last.action = o->action;
	vm->last.from = from;
	vm->last.to = o->to;
	vm->last.at_ms = now;
	memcpy(vm->last.reason, o->reason, sizeof(vm->last.reason));
	vm->decisions++;
	drain_events(vm, EVENTS_PER_WAKEUP, now);
}

static int notable(enum pol_vmstate s)
{
	return s == VS_FROZEN || s == VS_LIMITED;
}

void vm_log_state(struct vm *vm)
{
	enum pol_vmstate s = vm->out.state;

	if (vm->out.action == POL_KEEP && notable(s)) {
		if (!vm->shown || vm->shown_state != s)
			log_line(LOG_INFO, "vm %s: %s: %s", vm->cfg->name, pol_state_name(s),
				 vm->out.reason);
		vm->shown = 1;
		vm->shown_state = s;
		return;
	}
	/* a decision line, or a state of no note, ends it */
	if (vm->shown && vm->shown_state == VS_FROZEN && s != VS_FROZEN)
		log_line(LOG_INFO, "vm %s: no longer frozen (%s)", vm->cfg->name,
			 pol_state_name(s));
	vm->shown = 0;
}

void vm_close(struct vm *vm)
{
	qmp_close(vm->qmp);
	vm->qmp = NULL;
	rep_close(vm);
}
