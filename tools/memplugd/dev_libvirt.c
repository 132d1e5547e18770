// SPDX-License-Identifier: GPL-2.0-only
/*
 * The libvirt device backend (dev.h): the virtio-mem device of a libvirt
 * domain, through libvirt's C API, never behind libvirt's back (libvirt
 * owns the domain's QMP monitor).  As memplugctl's libvirt backend:
 *
 *   sizes           the live XML (vmem_xml.c): <block>, <size> (the
 *                   region), <requested>, <current> (the plugged size,
 *                   kept up to date by libvirt from QEMU's events)
 *   requested size  virDomainUpdateDeviceFlags(VIR_DOMAIN_AFFECT_LIVE) with
 *                   the device's <memory> element and a new <requested>
 *   events          MEMORY_DEVICE_SIZE_CHANGE brings a refresh forward;
 *                   the domain stopping and the connection closing drop it
 *
 * The loop never calls libvirt: a libvirt call may block for as long as
 * libvirtd does not answer (connecting to a hung libvirtd blocks forever).
 * Each libvirt VM has a worker thread that makes the calls; the loop asks
 * it through a mutex-protected mailbox and hears back through an eventfd it
 * polls.  A call that takes longer than qmp-timeout makes the VM "not
 * answering" (down for the policy: its size is held) until it returns.
 * One thread per daemon runs libvirt's event loop: keepalive (a libvirtd
 * silent for a few seconds has its connection closed, which ends a blocked
 * call) and the domain's events.
 */
#define _GNU_SOURCE /* pthread_timedjoin_np */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "dev.h"
#include "util.h"
#include "lv_lookup.h"
#include "vmem_xml.h"

const int dev_libvirt_supported = 1;

/* Results the worker may have posted before the loop reads them. */
#define LV_RESULTS 16
/* Keepalive: a probe after this many seconds of silence, ... */
#define LV_KEEPALIVE_INTERVAL 1
/* ... and the connection closed after this many unanswered (at least). */
#define LV_KEEPALIVE_COUNT 3
/* How long stopping waits for a worker blocked in a libvirt call. */
#define LV_JOIN_MS 2000

enum lv_result_type { R_UP, R_SIZES, R_DOWN, R_SET };

struct lv_result {
	enum lv_result_type type;
	struct dev_sizes sizes; /* R_UP, R_SIZES */
	unsigned int sets_done; /* R_SIZES: sets done before these sizes were read */
	int from_event; /* R_SIZES: an event asked for them */
	int was_up; /* R_DOWN */
	enum dev_set_result set; /* R_SET */
	char what[32]; /* R_DOWN */
	char where[CFG_URI_MAX + CFG_DOMAIN_MAX + 32]; /* R_UP */
	char err[300];
};

struct lvdev {
	struct dev d;
	pthread_t thread;
	int efd; /* eventfd: the worker posted results */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* under mu: the loop's requests */
	int want_connect, want_refresh, want_set, stop;
	uint64_t set_size;
	unsigned int set_seq; /* sets asked for */
	/* under mu: news from libvirt's event loop thread */
	int ev_size_change, ev_closed, ev_stopped;
	/* under mu: the worker's state and results */
	int busy; /* in a libvirt call since busy_ms, for busy_what */
	long long busy_ms;
	const char *busy_what;
	int connecting;
	struct lv_result results[LV_RESULTS];
	unsigned int head, count;
	int exited; /* the worker returned */

	/* the worker's only */
	virConnectPtr conn;
	virDomainPtr dom;
	int size_cb, life_cb, close_cb;
	struct vmem_info dev; /* the device found at connection */
	unsigned int sets_done;
	char who[CFG_DOMAIN_MAX + 16];

	/* the loop's only */
	long long stuck_ms; /* busy_ms of the call said "not answering", or -1 */
	unsigned int sets_sent;
	struct lvdev *next; /* closed, freed by dev_libvirt_teardown() */
};

/* The event loop thread, and the closed devices it may still call back. */
static pthread_t evloop;
static int evloop_running;
static volatile int evloop_stop;
static struct lvdev *closed_devs;
static int abandoned;

static struct lvdev *lv_of(struct dev *d)
{
	return (struct lvdev *)d;
}

static void __attribute__((format(printf, 3, 4))) msg(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, len, fmt, ap);
	va_end(ap);
	sanitize_string(dst);
}

/* ------------------------------------------------------------------ */
/* libvirt's event loop thread */

static void *evloop_main(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&evloop_stop, __ATOMIC_ACQUIRE))
		if (virEventRunDefaultImpl() < 0)
			usleep(100000);
	return NULL;
}

static void wake_evloop(int timer, void *opaque)
{
	(void)opaque;
	virEventRemoveTimeout(timer);
}

/* Start @fn in a thread that takes no signal (the loop's thread does). */
static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(t, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return rc;
}

int dev_libvirt_setup(char *err, size_t err_len)
{
	int rc;

	if (evloop_running)
		return 0;
	vmem_xml_init();
	if (lv_setup()) {
		msg(err, err_len, "cannot set libvirt up: %s", lv_last_error());
		return -1;
	}
	evloop_stop = 0;
	rc = start_thread(&evloop, evloop_main, NULL);
	if (rc) {
		msg(err, err_len, "cannot start libvirt's event loop thread: %s", strerror(rc));
		return -1;
	}
	evloop_running = 1;
	return 0;
}

int dev_libvirt_teardown(void)
{
	struct lvdev *lv, *next;
	int n = abandoned;

	if (evloop_running && !abandoned) {
		__atomic_store_n(&evloop_stop, 1, __ATOMIC_RELEASE);
		/* a timer that fires at once ends the event loop's wait */
		if (virEventAddTimeout(0, wake_evloop, NULL, NULL) >= 0)
			pthread_join(evloop, NULL);
		else
			n++;
		evloop_running = 0;
	}
	if (n)
		return n; /* a worker may still use libvirt: free nothing */
	for (lv = closed_devs; lv; lv = next) {
		next = lv->next;
		pthread_mutex_destroy(&lv->mu);
		pthread_cond_destroy(&lv->cv);
		free(lv);
	}
	closed_devs = NULL;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The worker's side */

/* Post a result (the worker, without mu) and wake the loop. */
static void post(struct lvdev *lv, const struct lv_result *r)
{
	uint64_t one = 1;

	pthread_mutex_lock(&lv->mu);
	/* the loop reads the results every time around: it makes room soon */
	while (lv->count == LV_RESULTS && !lv->stop)
		pthread_cond_wait(&lv->cv, &lv->mu);
	if (lv->count < LV_RESULTS) {
		lv->results[(lv->head + lv->count) % LV_RESULTS] = *r;
		lv->count++;
	}
	pthread_mutex_unlock(&lv->mu);
	if (write(lv->efd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
		/* an eventfd write fails only when its counter is full: it is set */
	}
}

static void post_down(struct lvdev *lv, const char *what, int was_up, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void post_down(struct lvdev *lv, const char *what, int was_up, const char *fmt, ...)
{
	struct lv_result r = { .type = R_DOWN, .was_up = was_up };
	va_list ap;

	snprintf(r.what, sizeof(r.what), "%s", what);
	va_start(ap, fmt);
	vsnprintf(r.err, sizeof(r.err), fmt, ap);
	va_end(ap);
	sanitize_string(r.err);
	post(lv, &r);
}

static void set_busy(struct lvdev *lv, const char *what)
{
	pthread_mutex_lock(&lv->mu);
	lv->busy = 1;
	lv->busy_ms = now_ms();
	lv->busy_what = what;
	pthread_mutex_unlock(&lv->mu);
}

/* Called with mu held. */
static void clear_busy(struct lvdev *lv)
{
	lv->busy = 0;
	lv->connecting = 0;
}

/* Callbacks from libvirt's event loop thread. */
static void on_size_change(virConnectPtr conn, virDomainPtr dom, const char *alias,
			   unsigned long long size_kib, void *opaque)
{
	struct lvdev *lv = opaque;

	(void)conn;
	(void)dom;
	(void)alias;
	(void)size_kib;
	pthread_mutex_lock(&lv->mu);
	lv->ev_size_change = 1;
	pthread_cond_signal(&lv->cv);
	pthread_mutex_unlock(&lv->mu);
}

static void on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
	struct lvdev *lv = opaque;

	(void)conn;
	(void)dom;
	(void)detail;
	if (event != VIR_DOMAIN_EVENT_STOPPED && event != VIR_DOMAIN_EVENT_CRASHED)
		return;
	pthread_mutex_lock(&lv->mu);
	lv->ev_stopped = 1;
	pthread_cond_signal(&lv->cv);
	pthread_mutex_unlock(&lv->mu);
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
	struct lvdev *lv = opaque;

	(void)conn;
	(void)reason;
	pthread_mutex_lock(&lv->mu);
	lv->ev_closed = 1;
	pthread_cond_signal(&lv->cv);
	pthread_mutex_unlock(&lv->mu);
}

static void disconnect(struct lvdev *lv)
{
	if (lv->conn) {
		if (lv->size_cb >= 0)
			virConnectDomainEventDeregisterAny(lv->conn, lv->size_cb);
		if (lv->life_cb >= 0)
			virConnectDomainEventDeregisterAny(lv->conn, lv->life_cb);
		if (lv->close_cb)
			virConnectUnregisterCloseCallback(lv->conn, on_close);
	}
	lv->size_cb = lv->life_cb = -1;
	lv->close_cb = 0;
	if (lv->dom)
		virDomainFree(lv->dom);
	lv->dom = NULL;
	if (lv->conn)
		virConnectClose(lv->conn);
	lv->conn = NULL;
}

/*
 * The domain's live XML, and its virtio-mem devices in it.  0, or -1 with
 * @err set: *@lost says whether the connection or the domain is gone (else
 * the device is not there, or not usable).
 */
static int read_devices(struct lvdev *lv, char **xml, struct vmem_info **devs, size_t *n, int *lost,
			char *err, size_t err_len)
{
	int active = virDomainIsActive(lv->dom), malformed, rc;

	*xml = NULL;
	*devs = NULL;
	*lost = 1;
	if (active < 0) {
		msg(err, err_len, "cannot ask libvirt about %s: %s", lv->who, lv_last_error());
		return -1;
	}
	if (!active) {
		msg(err, err_len, "%s is not running", lv->who);
		return -1;
	}
	*xml = virDomainGetXMLDesc(lv->dom, 0);
	if (!*xml) {
		msg(err, err_len, "cannot read the XML of %s: %s", lv->who, lv_last_error());
		return -1;
	}
	*lost = 0;
	rc = vmem_xml_devices(*xml, strlen(*xml), 1, devs, n, &malformed);
	if (rc == VMEM_XML_BAD) {
		msg(err, err_len, "libvirt sent malformed XML for %s", lv->who);
		return -1;
	}
	if (rc) {
		msg(err, err_len, "out of memory");
		return -1;
	}
	if (malformed) {
		msg(err, err_len, "malformed virtio-mem device in the XML of %s", lv->who);
		return -1;
	}
	return 0;
}

/*
 * Our device among @devs: the configured alias, the one found at
 * connection (@known), or the domain's only one.  Its index, or -1 with
 * @err set.
 */
static int pick(struct lvdev *lv, const struct vmem_info *devs, size_t n, const char *alias,
		char *err, size_t err_len)
{
	char names[256] = "";
	size_t i;
	int found = -1;

	for (i = 0; i < n; i++) {
		if (alias[0] && !strcmp(devs[i].id, alias))
			found = (int)i;
		if (strlen(names) + 70 < sizeof(names))
			snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%.64s",
				 i ? ", " : "", devs[i].id[0] ? devs[i].id : "(no alias)");
	}
	if (!alias[0] && n == 1)
		found = 0;
	if (found >= 0)
		return found;
	if (!n)
		msg(err, err_len, "%s has no virtio-mem device", lv->who);
	else if (alias[0])
		msg(err, err_len, "%s has no virtio-mem device with alias '%s' (it has %s)",
		    lv->who, alias, names);
	else
		msg(err, err_len, "%s has %zu virtio-mem devices (%s): say which with 'alias ='",
		    lv->who, n, names);
	return -1;
}

static void to_sizes(const struct vmem_info *v, struct dev_sizes *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->id, sizeof(s->id), "%s", v->id[0] ? v->id : "(no alias)");
	sanitize_string(s->id);
	s->block_size = v->block_size;
	s->region_size = v->max_size;
	s->requested = v->requested_size;
	s->size = v->size;
}

/* Read our device's sizes; on failure the connection is dropped (posted). */
static int refresh(struct lvdev *lv, struct lv_result *r)
{
	struct vmem_info *devs;
	char *xml, err[300];
	size_t n;
	int lost, i;

	set_busy(lv, "reading the domain's XML");
	i = read_devices(lv, &xml, &devs, &n, &lost, err, sizeof(err));
	if (!i)
		i = pick(lv, devs, n, lv->dev.id, err, sizeof(err));
	if (i >= 0) {
		lv->dev = devs[i];
		to_sizes(&devs[i], &r->sizes);
	}
	free(devs);
	free(xml);
	if (i < 0) {
		disconnect(lv);
		post_down(lv, lost ? "lost libvirt" : "no device", 1, "libvirt %s: %s",
			  lv->d.cfg->libvirt, err);
		return -1;
	}
	return 0;
}

static void do_connect(struct lvdev *lv)
{
	const struct vm_config *cfg = lv->d.cfg;
	struct lv_result r = { .type = R_UP };
	struct vmem_info *devs;
	char *xml, err[300];
	size_t n;
	int i, lost, count = (int)(lv->d.dcfg->qmp_timeout_ms / 1000);

	disconnect(lv);
	pthread_mutex_lock(&lv->mu);
	lv->ev_closed = lv->ev_stopped = lv->ev_size_change = 0;
	pthread_mutex_unlock(&lv->mu);
	set_busy(lv, "connecting");
	lv->conn = virConnectOpenAuth(cfg->libvirt, virConnectAuthPtrDefault, 0);
	if (!lv->conn) {
		post_down(lv, "no libvirt", 0, "libvirt %s: cannot connect: %s", cfg->libvirt,
			  lv_last_error());
		return;
	}
	/*
	 * A libvirtd that stops answering has its connection closed after a
	 * few seconds (a blocked call then fails).  Drivers without keepalive
	 * (test:///, local ones) say so: nothing to do.
	 */
	virConnectSetKeepAlive(lv->conn, LV_KEEPALIVE_INTERVAL,
			       (unsigned int)(count > LV_KEEPALIVE_COUNT ? count :
									   LV_KEEPALIVE_COUNT));
	if (!virConnectRegisterCloseCallback(lv->conn, on_close, lv, NULL))
		lv->close_cb = 1;
	lv->dom = lv_lookup_domain(lv->conn, cfg->domain);
	if (!lv->dom) {
		post_down(lv, "no domain", 0, "libvirt %s: no domain '%s': %s", cfg->libvirt,
			  cfg->domain, lv_last_error());
		disconnect(lv);
		return;
	}
	msg(lv->who, sizeof(lv->who), "domain '%s'", virDomainGetName(lv->dom));
	lv->size_cb = virConnectDomainEventRegisterAny(
		lv->conn, lv->dom, VIR_DOMAIN_EVENT_ID_MEMORY_DEVICE_SIZE_CHANGE,
		VIR_DOMAIN_EVENT_CALLBACK(on_size_change), lv, NULL);
	lv->life_cb =
		virConnectDomainEventRegisterAny(lv->conn, lv->dom, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
						 VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), lv, NULL);
	if (lv->size_cb < 0 || lv->life_cb < 0) {
		post_down(lv, "no libvirt", 0, "libvirt %s: no events of %s: %s", cfg->libvirt,
			  lv->who, lv_last_error());
		disconnect(lv);
		return;
	}
	i = read_devices(lv, &xml, &devs, &n, &lost, err, sizeof(err));
	if (!i)
		i = pick(lv, devs, n, cfg->device, err, sizeof(err));
	if (i >= 0) {
		lv->dev = devs[i];
		to_sizes(&devs[i], &r.sizes);
	}
	free(devs);
	free(xml);
	if (i < 0) {
		post_down(lv, lost ? "no domain" : "no device", 0, "libvirt %s: %s", cfg->libvirt,
			  err);
		disconnect(lv);
		return;
	}
	msg(r.where, sizeof(r.where), "%s at %s, ", lv->who, cfg->libvirt);
	post(lv, &r);
}

static void do_set(struct lvdev *lv, uint64_t size)
{
	struct lv_result r = { .type = R_SET, .set = DEV_SET_REFUSED };
	char *xml, *mem = NULL;

	set_busy(lv, "setting the requested size");
	xml = virDomainGetXMLDesc(lv->dom, 0);
	if (!xml) {
		msg(r.err, sizeof(r.err), "cannot read the XML of %s: %s", lv->who,
		    lv_last_error());
		r.set = virConnectIsAlive(lv->conn) == 1 ? DEV_SET_REFUSED : DEV_SET_LOST;
	} else {
		switch (vmem_xml_set_requested(xml, strlen(xml), 1, &lv->dev, size, &mem)) {
		case VMEM_XML_OK:
			if (virDomainUpdateDeviceFlags(lv->dom, mem, VIR_DOMAIN_AFFECT_LIVE) < 0) {
				msg(r.err, sizeof(r.err), "libvirt says: %s", lv_last_error());
				if (virConnectIsAlive(lv->conn) != 1)
					r.set = DEV_SET_LOST;
			} else {
				r.set = DEV_SET_OK;
			}
			break;
		case VMEM_XML_CHANGED:
			msg(r.err, sizeof(r.err), "the device is no longer in the XML of %s",
			    lv->who);
			break;
		case VMEM_XML_BAD:
			msg(r.err, sizeof(r.err), "libvirt sent malformed XML for %s", lv->who);
			break;
		default:
			msg(r.err, sizeof(r.err), "out of memory");
			break;
		}
	}
	free(mem);
	free(xml);
	lv->sets_done++;
	if (r.set == DEV_SET_LOST) {
		disconnect(lv);
		post_down(lv, "lost libvirt", 1, "libvirt %s: %s", lv->d.cfg->libvirt, r.err);
	}
	post(lv, &r);
}

static void *worker(void *arg)
{
	struct lvdev *lv = arg;

	pthread_mutex_lock(&lv->mu);
	while (!lv->stop) {
		if (lv->conn && (lv->ev_closed || lv->ev_stopped)) {
			int closed = lv->ev_closed;

			lv->ev_closed = lv->ev_stopped = 0;
			pthread_mutex_unlock(&lv->mu);
			disconnect(lv);
			post_down(lv, "lost libvirt", 1, "libvirt %s: %s", lv->d.cfg->libvirt,
				  closed ? "the connection was closed (libvirtd stopped, or did "
					   "not answer)" :
					   "the domain stopped");
			pthread_mutex_lock(&lv->mu);
		} else if (lv->want_connect) {
			lv->want_connect = 0;
			lv->connecting = 1;
			pthread_mutex_unlock(&lv->mu);
			do_connect(lv);
			pthread_mutex_lock(&lv->mu);
		} else if (lv->want_set) {
			uint64_t size = lv->set_size;

			lv->want_set = 0;
			pthread_mutex_unlock(&lv->mu);
			if (lv->conn) {
				struct lv_result r = { .type = R_SIZES };

				do_set(lv, size);
				r.sets_done = lv->sets_done;
				if (lv->conn && !refresh(lv, &r))
					post(lv, &r);
			} else {
				struct lv_result r = { .type = R_SET, .set = DEV_SET_LOST };

				lv->sets_done++;
				snprintf(r.err, sizeof(r.err), "not connected");
				post(lv, &r);
			}
			pthread_mutex_lock(&lv->mu);
		} else if (lv->conn && (lv->want_refresh || lv->ev_size_change)) {
			struct lv_result r = { .type = R_SIZES };

			r.from_event = lv->ev_size_change && !lv->want_refresh;
			lv->want_refresh = lv->ev_size_change = 0;
			pthread_mutex_unlock(&lv->mu);
			r.sets_done = lv->sets_done;
			if (!refresh(lv, &r))
				post(lv, &r);
			pthread_mutex_lock(&lv->mu);
		} else {
			lv->want_refresh = 0; /* not connected: nothing to refresh */
			pthread_cond_wait(&lv->cv, &lv->mu);
			continue;
		}
		clear_busy(lv);
	}
	pthread_mutex_unlock(&lv->mu);
	set_busy(lv, "disconnecting");
	disconnect(lv);
	pthread_mutex_lock(&lv->mu);
	clear_busy(lv);
	lv->exited = 1;
	pthread_mutex_unlock(&lv->mu);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The loop's side */

static void ask(struct lvdev *lv, int *flag)
{
	pthread_mutex_lock(&lv->mu);
	*flag = 1;
	pthread_cond_signal(&lv->cv);
	pthread_mutex_unlock(&lv->mu);
}

static void l_connect(struct dev *d, long long now)
{
	struct lvdev *lv = lv_of(d);
	int busy;

	(void)now;
	pthread_mutex_lock(&lv->mu);
	busy = lv->busy || lv->want_connect;
	pthread_mutex_unlock(&lv->mu);
	/* a call that does not return (not answering): its end is awaited */
	if (!busy)
		ask(lv, &lv->want_connect);
}

static void l_refresh(struct dev *d, long long now)
{
	(void)now;
	d->refresh_due = 0;
	ask(lv_of(d), &lv_of(d)->want_refresh);
}

static void l_set_requested(struct dev *d, uint64_t size, long long now)
{
	struct lvdev *lv = lv_of(d);

	(void)now;
	d->set_pending = 1;
	lv->sets_sent++;
	pthread_mutex_lock(&lv->mu);
	lv->set_size = size;
	lv->want_set = 1;
	pthread_cond_signal(&lv->cv);
	pthread_mutex_unlock(&lv->mu);
}

static void l_maintain(struct dev *d, long long now)
{
	struct lvdev *lv = lv_of(d);
	char err[300];
	int stuck = 0;

	pthread_mutex_lock(&lv->mu);
	if (lv->busy && lv->busy_ms != lv->stuck_ms &&
	    now - lv->busy_ms >= (long long)d->dcfg->qmp_timeout_ms) {
		msg(err, sizeof(err), "libvirt %s: no answer for %lld.%lld s (%s)", d->cfg->libvirt,
		    (now - lv->busy_ms) / 1000, (now - lv->busy_ms) % 1000 / 100, lv->busy_what);
		lv->stuck_ms = lv->busy_ms;
		stuck = 1;
	}
	pthread_mutex_unlock(&lv->mu);
	if (stuck) {
		int was_up = d->connected;

		d->connected = 0;
		d->sink.down(d->sink.vm, "libvirt not answering", err, was_up, now);
	}
}

static int l_fd(struct dev *d, long long now)
{
	(void)now;
	return lv_of(d)->efd;
}

/* Hand one result to the VM. */
static void deliver(struct lvdev *lv, const struct lv_result *r, long long now)
{
	struct dev *d = &lv->d;

	switch (r->type) {
	case R_UP:
		d->connected = 1;
		d->sink.up(d->sink.vm, r->where, &r->sizes, now);
		break;
	case R_SIZES:
		/* read before the last set was carried out: its news is to come */
		if (r->sets_done != lv->sets_sent)
			break;
		if (!d->connected) {
			/* it answers again after "not answering" */
			d->connected = 1;
			d->sink.up(d->sink.vm, "", &r->sizes, now);
			break;
		}
		d->sink.sizes(d->sink.vm, &r->sizes, now);
		if (r->from_event)
			d->decide_due = 1;
		break;
	case R_DOWN:
		d->connected = 0;
		d->sink.down(d->sink.vm, r->what, r->err, r->was_up, now);
		break;
	case R_SET:
		d->set_pending = 0;
		d->sink.set_done(d->sink.vm, r->set, r->err, now);
		break;
	}
}

static void l_on_fd(struct dev *d, short revents, long long now, long long next_tick)
{
	struct lvdev *lv = lv_of(d);
	struct lv_result got[LV_RESULTS];
	unsigned int i, n;
	uint64_t v;

	(void)revents;
	(void)next_tick;
	if (read(lv->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&lv->mu);
	n = lv->count;
	for (i = 0; i < n; i++)
		got[i] = lv->results[(lv->head + i) % LV_RESULTS];
	lv->head = (lv->head + n) % LV_RESULTS;
	lv->count = 0;
	pthread_cond_broadcast(&lv->cv);
	pthread_mutex_unlock(&lv->mu);
	for (i = 0; i < n; i++)
		deliver(lv, &got[i], now);
}

static const char *l_state(struct dev *d, long long now)
{
	struct lvdev *lv = lv_of(d);
	const char *s;

	pthread_mutex_lock(&lv->mu);
	if (lv->busy && now - lv->busy_ms >= (long long)d->dcfg->qmp_timeout_ms)
		s = "not answering";
	else if (d->connected)
		s = "connected";
	else if (lv->connecting || lv->want_connect)
		s = "connecting";
	else
		s = "not connected";
	pthread_mutex_unlock(&lv->mu);
	return s;
}

static void l_close(struct dev *d)
{
	struct lvdev *lv = lv_of(d);
	struct timespec ts;
	int rc;

	pthread_mutex_lock(&lv->mu);
	lv->stop = 1;
	pthread_cond_broadcast(&lv->cv);
	pthread_mutex_unlock(&lv->mu);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += LV_JOIN_MS / 1000;
	rc = pthread_timedjoin_np(lv->thread, NULL, &ts);
	if (rc) {
		/* blocked in libvirt: left to the process's end (dev_libvirt_teardown) */
		abandoned++;
		return;
	}
	close(lv->efd);
	/* libvirt's event loop may still hold a callback of ours: freed after it */
	lv->next = closed_devs;
	closed_devs = lv;
}

static const struct dev_ops libvirt_ops = {
	.kind = "libvirt",
	.label = "libvirt",
	.other_client = "requested size changed by another libvirt client",
	.connect = l_connect,
	.refresh = l_refresh,
	.set_requested = l_set_requested,
	.maintain = l_maintain,
	.fd = l_fd,
	.on_fd = l_on_fd,
	.state = l_state,
	.close = l_close,
};

struct dev *dev_libvirt_open(const struct mpd_config *dcfg, const struct vm_config *cfg,
			     const struct dev_sink *sink, char *err, size_t err_len)
{
	struct lvdev *lv;
	int rc;

	if (dev_libvirt_setup(err, err_len))
		return NULL;
	lv = calloc(1, sizeof(*lv));
	if (!lv) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	lv->d.ops = &libvirt_ops;
	lv->d.sink = *sink;
	lv->d.cfg = cfg;
	lv->d.dcfg = dcfg;
	lv->size_cb = lv->life_cb = -1;
	lv->stuck_ms = -1;
	snprintf(lv->who, sizeof(lv->who), "domain '%s'", cfg->domain);
	sanitize_string(lv->who);
	lv->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (lv->efd < 0) {
		snprintf(err, err_len, "eventfd: %s", strerror(errno));
		free(lv);
		return NULL;
	}
	pthread_mutex_init(&lv->mu, NULL);
	pthread_cond_init(&lv->cv, NULL);
	rc = start_thread(&lv->thread, worker, lv);
	if (rc) {
		snprintf(err, err_len, "cannot start a thread: %s", strerror(rc));
		close(lv->efd);
		pthread_mutex_destroy(&lv->mu);
		pthread_cond_destroy(&lv->cv);
		free(lv);
		return NULL;
	}
	return &lv->d;
}
