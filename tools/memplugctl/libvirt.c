// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplugctl's libvirt backend (backend.h): the virtio-mem devices of a
 * libvirt domain, through libvirt's C API and never behind its back (libvirt
 * owns the domain's QMP monitor):
 *
 *   devices         the domain's XML: the live XML while it runs (<current>
 *                   is the plugged size, kept up to date by libvirt from
 *                   QEMU's events), its configuration when it is shut off
 *   requested size  virDomainUpdateDeviceFlags() with the device's
 *                   <memory model='virtio-mem'> element and a new
 *                   <target><requested>, as virsh update-memory-device does;
 *                   --config adds VIR_DOMAIN_AFFECT_CONFIG
 *   events          VIR_DOMAIN_EVENT_ID_MEMORY_DEVICE_SIZE_CHANGE, on
 *                   libvirt's default event loop, run here only while
 *                   waiting and never past the wait's deadline
 *
 * libvirt cannot tell memaddr, memdev nor whether a guest driver has set the
 * device up: those stay unknown (VMEM_KNOWN_*, DRIVER_UNKNOWN).  A silent
 * libvirtd is given up after about --qmp-timeout through libvirt's
 * keepalive.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>

#include "backend.h"
#include "util.h"
#include "lv_lookup.h"
#include "vmem_xml.h"

const int libvirt_supported = 1;

/* Events kept while nobody reads them; the oldest are dropped. */
#define LV_MAX_QUEUED_EVENTS 256

struct lv_backend {
	struct backend b;
	virConnectPtr conn;
	virDomainPtr dom;
	char who[300];
	int size_cb; /* callback ids, -1 when not registered */
	int life_cb;
	int closed; /* the connection to libvirtd is gone */
	int stopped; /* the domain stopped */
	int waiting; /* set_limit() was called: a resize --wait */
	int timer_fired;
	long long limit_ms;
	struct size_event queue[LV_MAX_QUEUED_EVENTS];
	unsigned int head, count;
	unsigned long dropped;
	char err[512];
};

static struct lv_backend *lv_of(struct backend *b)
{
	return (struct lv_backend *)b;
}

/* ------------------------------------------------------------------ */
/* Events */

static void now_utc(char *buf, size_t len)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	format_utc(ts.tv_sec, ts.tv_nsec / 1000000, buf, len);
}

static void on_size_change(virConnectPtr conn, virDomainPtr dom, const char *alias,
			   unsigned long long size_kib, void *opaque)
{
	struct lv_backend *lb = opaque;
	struct size_event *ev;

	(void)conn;
	(void)dom;
	if (lb->count == LV_MAX_QUEUED_EVENTS) {
		lb->head = (lb->head + 1) % LV_MAX_QUEUED_EVENTS;
		lb->count--;
		lb->dropped++;
	}
	ev = &lb->queue[(lb->head + lb->count) % LV_MAX_QUEUED_EVENTS];
	memset(ev, 0, sizeof(*ev));
	if (alias && strlen(alias) < sizeof(ev->id))
		snprintf(ev->id, sizeof(ev->id), "%s", alias);
	else if (alias)
		snprintf(ev->id, sizeof(ev->id), "?");
	/* libvirt reports KiB */
	ev->size = size_kib > UINT64_MAX / 1024 ? UINT64_MAX : (uint64_t)size_kib * 1024;
	now_utc(ev->when, sizeof(ev->when));
	lb->count++;
}

static void on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	struct lv_backend *lb = opaque;

	(void)conn;
	(void)dom;
	(void)detail;
	if (event == VIR_DOMAIN_EVENT_STOPPED || event == VIR_DOMAIN_EVENT_CRASHED)
		lb->stopped = 1;
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
	struct lv_backend *lb = opaque;

	(void)conn;
	(void)reason;
	lb->closed = 1;
}

static void on_timer(int timer, void *opaque)
{
	struct lv_backend *lb = opaque;

	(void)timer;
	lb->timer_fired = 1;
}

/*
 * Run libvirt's event loop until an event is queued, the domain stops, the
 * connection closes or @deadline (now_ms(), -1: none) passes.
 */
static int run_loop(struct lv_backend *lb, long long deadline)
{
	int timer = -1, rc = BACKEND_OK;

	lb->timer_fired = 0;
	while (!lb->count && !lb->stopped && !lb->closed) {
		long long now = now_ms();
		int left;

		if (deadline >= 0 && now >= deadline) {
			rc = BACKEND_TIMEOUT;
			break;
		}
		if (deadline >= 0) {
			left = deadline - now > 0x7fffffff ? 0x7fffffff : (int)(deadline - now);
			if (timer < 0)
				timer = virEventAddTimeout(left, on_timer, lb, NULL);
			else
				virEventUpdateTimeout(timer, left);
			if (timer < 0) {
				snprintf(lb->err, sizeof(lb->err),
					 "cannot set a timer in libvirt's event loop: %s",
					 lv_last_error());
				rc = BACKEND_ERR;
				break;
			}
		}
		if (virEventRunDefaultImpl() < 0) {
			snprintf(lb->err, sizeof(lb->err), "libvirt's event loop failed: %s",
				 lv_last_error());
			rc = BACKEND_ERR;
			break;
		}
	}
	if (timer >= 0)
		virEventRemoveTimeout(timer);
	return rc;
}

static int next_event(struct backend *b, int timeout_ms, struct size_event *ev)
{
	struct lv_backend *lb = lv_of(b);
	long long deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
	int rc = BACKEND_OK;

	if (lb->limit_ms >= 0 && (deadline < 0 || lb->limit_ms < deadline))
		deadline = lb->limit_ms;
	if (!lb->count)
		rc = run_loop(lb, deadline);
	if (lb->count) {
		*ev = lb->queue[lb->head];
		lb->head = (lb->head + 1) % LV_MAX_QUEUED_EVENTS;
		lb->count--;
		return BACKEND_OK;
	}
	if (rc)
		return rc;
	if (lb->closed)
		snprintf(lb->err, sizeof(lb->err), "the connection to libvirt was closed");
	else
		snprintf(lb->err, sizeof(lb->err), "%s stopped", lb->who);
	return BACKEND_ERR;
}

static void set_limit(struct backend *b, long long limit_ms)
{
	lv_of(b)->limit_ms = limit_ms;
	lv_of(b)->waiting = 1;
}

static unsigned long dropped_events(struct backend *b)
{
	return lv_of(b)->dropped;
}

static const char *error(struct backend *b)
{
	return lv_of(b)->err;
}

/* ------------------------------------------------------------------ */
/* The domain's XML */

/*
 * The domain's XML (live while it runs, else its configuration) as a string
 * (free()); *@live says which.  NULL (reported) on failure.
 */
static char *domain_xml(struct lv_backend *lb, int *live)
{
	int active = virDomainIsActive(lb->dom);
	char *xml;

	if (active < 0) {
		error_msg("cannot ask libvirt about %s: %s", lb->who, lv_last_error());
		return NULL;
	}
	*live = active;
	xml = virDomainGetXMLDesc(lb->dom, active ? 0 : VIR_DOMAIN_XML_INACTIVE);
	if (!xml) {
		error_msg("cannot read the XML of %s: %s", lb->who, lv_last_error());
		return NULL;
	}
	if (strlen(xml) > VMEM_XML_MAX) {
		error_msg("the XML of %s is larger than %d MiB", lb->who, VMEM_XML_MAX >> 20);
		free(xml);
		return NULL;
	}
	return xml;
}

static int list_devices(struct backend *b, struct vmem_info **devs, size_t *n, int *malformed)
{
	struct lv_backend *lb = lv_of(b);
	char *xml;
	int live, rc;

	*devs = NULL;
	*n = 0;
	*malformed = 0;
	if (lb->waiting && (lb->stopped || virDomainIsActive(lb->dom) != 1)) {
		error_msg("%s stopped", lb->who);
		return BACKEND_ERR;
	}
	xml = domain_xml(lb, &live);
	if (!xml)
		return BACKEND_ERR;
	rc = vmem_xml_devices(xml, strlen(xml), live, devs, n, malformed);
	free(xml);
	if (rc == VMEM_XML_BAD) {
		error_msg("libvirt sent malformed XML for %s", lb->who);
		return BACKEND_ERR;
	}
	if (rc) {
		error_msg("out of memory");
		return BACKEND_ERR;
	}
	if (*malformed)
		error_msg("malformed virtio-mem device in the XML of %s", lb->who);
	return BACKEND_OK;
}

static int count_devices(struct backend *b, size_t *n)
{
	struct vmem_info *devs;
	int malformed, rc;

	rc = list_devices(b, &devs, n, &malformed);
	free(devs);
	if (!rc && malformed)
		(*n)++;
	return rc;
}

static int find_device(struct backend *b, const char *id, struct vmem_info *info)
{
	struct lv_backend *lb = lv_of(b);
	struct vmem_info *devs;
	char names[256] = "";
	size_t i, n, found = (size_t)-1;
	int malformed, rc = BACKEND_ERR;

	if (list_devices(b, &devs, &n, &malformed))
		return BACKEND_ERR;
	if (malformed)
		goto out;
	for (i = 0; i < n; i++) {
		if (id && !strcmp(devs[i].id, id))
			found = i;
		if (strlen(names) + 70 < sizeof(names))
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%.64s",
				 i ? ", " : "", devs[i].id[0] ? devs[i].id : "(no alias)");
	}
	sanitize_string(names);
	if (!id && n == 1)
		found = 0;
	if (found != (size_t)-1) {
		*info = devs[found];
		rc = BACKEND_OK;
	} else if (!n) {
		error_msg("%s has no virtio-mem device", lb->who);
	} else if (id) {
		error_msg("%s has no virtio-mem device with alias '%s' (it has %s)", lb->who, id,
			  names);
	} else {
		error_msg("%s has %zu virtio-mem devices (%s): choose one with -d ALIAS", lb->who,
			  n, names);
	}
out:
	free(devs);
	return rc;
}

static int vm_state(struct backend *b, struct vm_state *vm)
{
	static const char *const names[] = {
		[VIR_DOMAIN_NOSTATE] = "nostate",   [VIR_DOMAIN_RUNNING] = "running",
		[VIR_DOMAIN_BLOCKED] = "blocked",   [VIR_DOMAIN_PAUSED] = "paused",
		[VIR_DOMAIN_SHUTDOWN] = "shutdown", [VIR_DOMAIN_SHUTOFF] = "shutoff",
		[VIR_DOMAIN_CRASHED] = "crashed",   [VIR_DOMAIN_PMSUSPENDED] = "pmsuspended",
	};
	struct lv_backend *lb = lv_of(b);
	int state, reason, active;

	memset(vm, 0, sizeof(*vm));
	if (virDomainGetState(lb->dom, &state, &reason, 0) < 0 ||
	    (active = virDomainIsActive(lb->dom)) < 0) {
		error_msg("cannot ask libvirt about the state of %s: %s", lb->who, lv_last_error());
		return BACKEND_ERR;
	}
	vm->known = 1;
	vm->active = active;
	/* blocked: running, waiting for a host resource */
	vm->running = state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_BLOCKED;
	snprintf(vm->status, sizeof(vm->status), "%s",
		 state >= 0 && state < (int)(sizeof(names) / sizeof(names[0])) && names[state] ?
			 names[state] :
			 "unknown");
	return BACKEND_OK;
}

/* libvirt does not expose the device's virtio status. */
static int driver(struct backend *b, const char *id, enum driver_state *state)
{
	(void)b;
	(void)id;
	*state = DRIVER_UNKNOWN;
	return BACKEND_OK;
}

static int set_requested(struct backend *b, const struct vmem_info *dev, uint64_t size,
			 unsigned int flags)
{
	struct lv_backend *lb = lv_of(b);
	unsigned int uflags = 0;
	char *xml, *mem = NULL;
	int live, rc = BACKEND_ERR;

	xml = domain_xml(lb, &live);
	if (!xml)
		return BACKEND_ERR;
	if (live)
		uflags |= VIR_DOMAIN_AFFECT_LIVE;
	if (flags & BACKEND_SET_CONFIG) {
		int persistent = virDomainIsPersistent(lb->dom);

		if (persistent < 0) {
			error_msg("cannot ask libvirt about %s: %s", lb->who, lv_last_error());
			goto out;
		}
		if (!persistent) {
			error_msg("%s is transient: it has no configuration for --config", lb->who);
			goto out;
		}
		uflags |= VIR_DOMAIN_AFFECT_CONFIG;
	}
	if (!uflags) {
		error_msg("%s is not running: only --config can change it", lb->who);
		goto out;
	}
	switch (vmem_xml_set_requested(xml, strlen(xml), live, dev, size, &mem)) {
	case VMEM_XML_OK:
		break;
	case VMEM_XML_BAD:
		error_msg("libvirt sent malformed XML for %s", lb->who);
		goto out;
	case VMEM_XML_CHANGED:
		error_msg("%s changed while memplugctl looked at it: try again", lb->who);
		goto out;
	default:
		error_msg("out of memory");
		goto out;
	}
	if (virDomainUpdateDeviceFlags(lb->dom, mem, uflags) < 0) {
		error_msg("setting the requested size of %s failed: %s",
			  dev->id[0] ? dev->id : "the virtio-mem device", lv_last_error());
		goto out;
	}
	rc = BACKEND_OK;
out:
	free(mem);
	free(xml);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Connecting */

static void close_backend(struct backend *b)
{
	struct lv_backend *lb = lv_of(b);

	if (lb->size_cb >= 0)
		virConnectDomainEventDeregisterAny(lb->conn, lb->size_cb);
	if (lb->life_cb >= 0)
		virConnectDomainEventDeregisterAny(lb->conn, lb->life_cb);
	if (lb->dom)
		virDomainFree(lb->dom);
	if (lb->conn) {
		virConnectUnregisterCloseCallback(lb->conn, on_close);
		virConnectClose(lb->conn);
	}
	xmlCleanupParser();
	free(lb);
}

static const struct backend_ops libvirt_ops = {
	.list_devices = list_devices,
	.count_devices = count_devices,
	.find_device = find_device,
	.vm_state = vm_state,
	.driver = driver,
	.set_requested = set_requested,
	.next_event = next_event,
	.set_limit = set_limit,
	.dropped_events = dropped_events,
	.error = error,
	.close = close_backend,
};

struct backend *libvirt_backend_open(const char *uri, const char *domain, int timeout_ms)
{
	struct lv_backend *lb = calloc(1, sizeof(*lb));
	char safe[256];
	int count;

	if (!lb) {
		error_msg("out of memory");
		return NULL;
	}
	lb->size_cb = lb->life_cb = -1;
	lb->limit_ms = -1;
	if (lv_setup()) {
		error_msg("cannot set libvirt up: %s", lv_last_error());
		goto fail;
	}
	lb->conn = virConnectOpenAuth(uri, virConnectAuthPtrDefault, 0);
	if (!lb->conn) {
		snprintf(safe, sizeof(safe), "%s", uri ? uri : "");
		sanitize_string(safe);
		error_msg("cannot connect to libvirt%s%s: %s", uri ? " at " : "", safe,
			  lv_last_error());
		goto fail;
	}
	/*
	 * A libvirtd silent for about timeout_ms is given up on: a keepalive
	 * every second, and the connection closed after this many unanswered.
	 * Local drivers without keepalive simply say no (1): nothing to do.
	 */
	count = timeout_ms / 1000 - 1;
	virConnectSetKeepAlive(lb->conn, 1, count > 0 ? (unsigned int)count : 1);
	virConnectRegisterCloseCallback(lb->conn, on_close, lb, NULL);
	lb->dom = lv_lookup_domain(lb->conn, domain);
	if (!lb->dom) {
		snprintf(safe, sizeof(safe), "%s", domain);
		sanitize_string(safe);
		error_msg("no domain '%s': %s", safe, lv_last_error());
		goto fail;
	}
	snprintf(safe, sizeof(safe), "%s", virDomainGetName(lb->dom));
	sanitize_string(safe);
	snprintf(lb->who, sizeof(lb->who), "domain '%s'", safe);
	lb->size_cb = virConnectDomainEventRegisterAny(
		lb->conn, lb->dom, VIR_DOMAIN_EVENT_ID_MEMORY_DEVICE_SIZE_CHANGE,
		VIR_DOMAIN_EVENT_CALLBACK(on_size_change), lb, NULL);
	lb->life_cb =
		virConnectDomainEventRegisterAny(lb->conn, lb->dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
						 VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), lb, NULL);
	if (lb->size_cb < 0 || lb->life_cb < 0) {
		error_msg("libvirt cannot send the events of %s: %s", lb->who, lv_last_error());
		goto fail;
	}
	lb->b.ops = &libvirt_ops;
	lb->b.who = lb->who;
	lb->b.other_client = "another libvirt client (virsh update-memory-device, ...)";
	lb->b.request_stays = "(resize again to change it; the domain forgets it when it "
			      "restarts unless it was set with --config)";
	lb->b.request_stays_config = "(resize again to change it; it is in the domain's "
				     "configuration too: the domain starts with it)";
	lb->b.has_config = 1;
	return &lb->b;
fail:
	close_backend(&lb->b);
	return NULL;
}
