// SPDX-License-Identifier: GPL-2.0-only
/*
 * One VM: device backend, report channel, see vm.h.
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

#define BACKOFF_FIRST_MS 500
#define INVALID_LOG_INTERVAL_MS 60000
#define LINK_RELOG_MS 60000
/* a link that fails sooner after coming up keeps backing off (a flapping peer) */
#define LINK_STABLE_MS 10000

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
static void link_up(struct link *l, long long now)
{
	l->up = 1;
	l->up_since = now;
	l->down_logged = 0;
	l->next_try = 0;
}

/* A link is down: log the error (see struct link), back off. */
static void link_down(struct vm *vm, struct link *l, const char *what, const char *err,
		      long long now)
{
	unsigned int max = vm->dcfg->reconnect_max_ms;

	if (l->up && now - l->up_since >= LINK_STABLE_MS)
		l->backoff_ms = 0;
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

/* ------------------------------------------------------------------ */
/* The device backend's news (struct dev_sink), in the loop's thread */

/* Take the device's sizes into the policy's view. */
static void update_device(struct vm *vm, const struct dev_sizes *d, long long now)
{
	struct pol_vm *pv = &vm->pv;

	pv->block_size = d->block_size;
	pv->region_size = d->region_size;
	if (d->requested != pv->requested || d->size != pv->plugged)
		pv->changed_ms = now;
	if (pv->dev_ok && d->requested != vm->known_requested) {
		log_line(LOG_NOTICE, "vm %s: %s: %llu MiB -> %llu MiB", vm->cfg->name,
			 vm->dev->ops->other_client, mib(vm->known_requested), mib(d->requested));
		pol_external_change(pv, vm->known_requested, d->requested, now);
	}
	vm->known_requested = d->requested;
	pv->requested = d->requested;
	pv->plugged = d->size;
	pv->dev_ok = 1;
	pv->online = 1;
}

static void on_dev_up(void *p, const char *where, const struct dev_sizes *d, long long now)
{
	struct vm *vm = p;
	int was_known = vm->pv.dev_ok;

	link_up(&vm->dev_link, now);
	snprintf(vm->dev_id, sizeof(vm->dev_id), "%s", d->id);
	/* (re)connected: carry on from the device's sizes, as after a restart */
	vm->pv.dev_ok = 0;
	vm->pv.requested = d->requested;
	vm->pv.plugged = d->size;
	vm->known_requested = d->requested;
	update_device(vm, d, now);
	vm->pv.changed_ms = now;
	pol_state_init(&vm->pv.st, now);
	log_line(LOG_NOTICE,
		 "vm %s: %s connected%s: %sdevice %s, block %llu MiB, region %llu MiB; picked up "
		 "requested %llu MiB, plugged %llu MiB",
		 vm->cfg->name, vm->dev->ops->label, was_known ? " again" : "", where, d->id,
		 mib(d->block_size), mib(d->region_size), mib(d->requested), mib(d->size));
}

static void on_dev_sizes(void *p, const struct dev_sizes *d, long long now)
{
	update_device(p, d, now);
}

static void on_dev_down(void *p, const char *what, const char *err, int was_up, long long now)
{
	struct vm *vm = p;

	vm->pv.online = 0;
	if (was_up)
		vm->dev_failures++;
	link_down(vm, &vm->dev_link, what, err, now);
}

static void on_dev_set_done(void *p, enum dev_set_result r, const char *err, long long now)
{
	struct vm *vm = p;
	const struct pol_out *o = &vm->pending;
	uint64_t from = vm->pending_from;

	if (r != DEV_SET_OK) {
		/* the device keeps what it had: the next refresh says what that is */
		vm->pv.requested = from;
		vm->known_requested = from;
		if (r == DEV_SET_REFUSED) {
			char line[sizeof(vm->refused)];

			/* the same refusal again: said at most once a minute */
			snprintf(line, sizeof(line), "%s %llu %s", pol_action_name(o->action),
				 mib(o->to), err);
			if (strcmp(line, vm->refused) || now - vm->refused_ms >= LINK_RELOG_MS) {
				log_line(LOG_ERR, "vm %s: %s %llu MiB -> %llu MiB failed: %s",
					 vm->cfg->name, pol_action_name(o->action), mib(from),
					 mib(o->to), err);
				memcpy(vm->refused, line, sizeof(line));
				vm->refused_ms = now;
			}
		}
		return;
	}
	vm->refused[0] = '\0';
	vm->pv.requested = o->to;
	vm->known_requested = o->to;
	vm->pv.changed_ms = vm->pending_ms;
	pol_commit(&vm->pv, o, vm->pending_ms);
	log_line(LOG_NOTICE, "vm %s: %s %llu MiB -> %llu MiB: %s", vm->cfg->name,
		 pol_action_name(o->action), mib(from), mib(o->to), o->reason);
	vm->last.valid = 1;
	vm->last.action = o->action;
	vm->last.from = from;
	vm->last.to = o->to;
	vm->last.at_ms = vm->pending_ms;
	memcpy(vm->last.reason, o->reason, sizeof(vm->last.reason));
	vm->decisions++;
	(void)now;
}

int vm_init(struct vm *vm, const struct mpd_config *dcfg, const struct vm_config *cfg,
	    long long now, char *err, size_t err_len)
{
	struct dev_sink sink = {
		.vm = vm,
		.up = on_dev_up,
		.sizes = on_dev_sizes,
		.down = on_dev_down,
		.set_done = on_dev_set_done,
	};

	memset(vm, 0, sizeof(*vm));
	vm->dcfg = dcfg;
	vm->cfg = cfg;
	vm->rep_fd = -1;
	report_reader_init(&vm->rd, dcfg->report_rate, now);
	vm->invalid_log_ms = POL_NEVER;
	vm->dev_link.error_logged_ms = POL_NEVER;
	vm->rep_link.error_logged_ms = POL_NEVER;
	vm->refused_ms = POL_NEVER;
	vm->pv.name = cfg->name;
	vm->pv.min = cfg->min;
	vm->pv.max = cfg->max;
	vm->pv.buffer = cfg->buffer;
	vm->pv.weight = cfg->weight;
	pol_state_init(&vm->pv.st, now);
	vm->out.to = 0;
	vm->out.state = VS_UNKNOWN;
	snprintf(vm->dev_id, sizeof(vm->dev_id), "%s", cfg->device);
	if (cfg->kind == VM_LIBVIRT) {
		vm->dev = dev_libvirt_open(dcfg, cfg, &sink, err, err_len);
	} else {
		vm->dev = dev_qmp_open(dcfg, cfg, &sink);
		if (!vm->dev)
			snprintf(err, err_len, "out of memory");
	}
	return vm->dev ? 0 : -1;
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
	link_up(&vm->rep_link, now);
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
	struct dev *d = vm->dev;

	d->ops->maintain(d, now);
	if (!d->connected && now >= vm->dev_link.next_try)
		d->ops->connect(d, now);
	else if (d->connected)
		d->ops->refresh(d, now);
	if (vm->rep_fd < 0 && now >= vm->rep_link.next_try)
		rep_up(vm, now);
	log_invalid(vm, now);
}

int vm_refresh_if_due(struct vm *vm, long long now)
{
	struct dev *d = vm->dev;

	d->decide_due = 0;
	if (!d->refresh_due || !d->connected)
		return 0;
	d->ops->refresh(d, now);
	return 1;
}

int vm_wants_decision(const struct vm *vm)
{
	return vm->dev->refresh_due || vm->dev->decide_due;
}

int vm_pollfds(struct vm *vm, long long now, struct pollfd *pfd, int base, int *dev_slot,
	       int *rep_slot)
{
	int k = 0, fd = vm->dev->ops->fd(vm->dev, now);

	*dev_slot = *rep_slot = -1;
	if (fd >= 0) {
		pfd[k].fd = fd;
		pfd[k].events = POLLIN;
		pfd[k].revents = 0;
		*dev_slot = base + k++;
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

void vm_on_dev(struct vm *vm, short revents, long long now, long long next_tick)
{
	if (!(revents & (POLLIN | POLLHUP | POLLERR)))
		return;
	vm->dev->ops->on_fd(vm->dev, revents, now, next_tick);
}

void vm_apply(struct vm *vm, long long now)
{
	const struct pol_out *o = &vm->out;
	struct dev *d = vm->dev;
	uint64_t from = vm->pv.requested;

	if (o->action == POL_KEEP || !d->connected || !vm->pv.online || o->to == from ||
	    d->set_pending)
		return;
	if (o->to > (uint64_t)INT64_MAX)
		return; /* no QEMU has such a region: the peer lied */
	vm->pending = *o;
	vm->pending_from = from;
	vm->pending_ms = now;
	/*
	 * Counted at once (the budget of the next decisions, and a refresh
	 * that overtakes the set is not taken for another client's change);
	 * set_done() confirms it or takes it back.
	 */
	vm->pv.requested = o->to;
	vm->known_requested = o->to;
	d->ops->set_requested(d, o->to, now);
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
	if (vm->dev)
		vm->dev->ops->close(vm->dev);
	vm->dev = NULL;
	rep_close(vm);
}
