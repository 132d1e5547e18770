// SPDX-License-Identifier: GPL-2.0-only
/*
 * The status file and memplugd --status, see status.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "size.h"
#include "status.h"
#include "util.h"

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *jsize(uint64_t v)
{
	/* sizes beyond INT64_MAX only come from a lying peer: clamp */
	return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static json_t *last_report(const struct report *r)
{
	json_t *o = json_object();
	static const struct {
		enum report_key k;
		const char *name;
		size_t off;
	} nums[] = {
		{ RK_SEQ, "seq", offsetof(struct report, seq) },
		{ RK_MS, "ms", offsetof(struct report, ms) },
		{ RK_PSI_SOME, "psi-some", offsetof(struct report, psi_some) },
		{ RK_PSI_FULL, "psi-full", offsetof(struct report, psi_full) },
		{ RK_TOTAL, "total", offsetof(struct report, total) },
		{ RK_AVAIL, "avail", offsetof(struct report, avail) },
		{ RK_PSWPIN, "pswpin", offsetof(struct report, pswpin) },
		{ RK_PSWPOUT, "pswpout", offsetof(struct report, pswpout) },
		{ RK_PLUGGED, "plugged", offsetof(struct report, plugged) },
		{ RK_REQUESTED, "requested", offsetof(struct report, requested) },
		{ RK_GIVE, "give", offsetof(struct report, give) },
	};
	static const char *const guard[] = { "unknown", "ok", "blocked", "other" };
	size_t i;

	for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++)
		if (report_has(r, nums[i].k))
			json_object_set_new(
				o, nums[i].name,
				jsize(*(const uint64_t *)((const char *)r + nums[i].off)));
	if (report_has(r, RK_DRIVER))
		json_object_set_new(o, "driver", json_string(r->driver));
	if (report_has(r, RK_GROWTH))
		json_object_set_new(o, "growth", json_string(guard[r->growth]));
	if (report_has(r, RK_UNPLUG))
		json_object_set_new(o, "unplug", json_string(guard[r->unplug]));
	return o;
}

static json_t *vm_json(const struct vm *vm, long long now)
{
	const struct pol_vm *pv = &vm->pv;
	const struct report_reader *rd = &vm->rd;
	json_t *o = json_object(), *q, *rep, *err;
	const struct dev *d = vm->dev;
	uint64_t lo, hi;

	json_object_set_new(o, "name", json_string(vm->cfg->name));
	json_object_set_new(o, "state", json_string(pol_state_name(vm->out.state)));
	json_object_set_new(o, "note",
			    json_string(vm->out.action == POL_KEEP ? vm->out.reason : ""));

	err = vm->dev_link.up || !vm->dev_link.error[0] ? json_null() :
							  json_string(vm->dev_link.error);
	/* who holds the device: its kind, where, and the connection's state */
	q = json_pack("{s:s, s:s, s:s, s:b, s:I, s:O}", "kind", d->ops->kind, "address",
		      vm->cfg->kind == VM_LIBVIRT ? vm->cfg->libvirt : vm->cfg->qmp_str, "state",
		      d->ops->state(vm->dev, now), "connected", d->connected, "failures",
		      (json_int_t)vm->dev_failures, "error", err);
	json_object_set_new(q, "domain",
			    vm->cfg->kind == VM_LIBVIRT ? json_string(vm->cfg->domain) :
							  json_null());
	json_object_set_new(o, "backend", q);
	/* the QMP link as before the backends (null for a libvirt domain) */
	if (vm->cfg->kind == VM_QMP)
		json_object_set_new(o, "qmp",
				    json_pack("{s:s, s:b, s:I, s:O}", "address", vm->cfg->qmp_str,
					      "connected", d->connected, "failures",
					      (json_int_t)vm->dev_failures, "error", err));
	else
		json_object_set_new(o, "qmp", json_null());
	json_decref(err);

	if (pv->dev_ok) {
		pol_bounds(pv, &lo, &hi);
		json_object_set_new(
			o, "device",
			json_pack("{s:s, s:o, s:o, s:o, s:o}", "id", vm->dev_id, "block-size",
				  jsize(pv->block_size), "region-size", jsize(pv->region_size),
				  "requested-size",
				  jsize(d->set_pending ? vm->pending_from : pv->requested), "size",
				  jsize(pv->plugged)));
		json_object_set_new(o, "min", jsize(lo));
		json_object_set_new(o, "max", jsize(hi));
	} else {
		json_object_set_new(o, "device", json_null());
		json_object_set_new(o, "min", jsize(vm->cfg->min));
		json_object_set_new(o, "max", vm->cfg->max ? jsize(vm->cfg->max) : json_null());
	}
	json_object_set_new(o, "buffer", jsize(vm->cfg->buffer));
	json_object_set_new(o, "weight", json_integer(vm->cfg->weight));

	rep = json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "socket", vm->cfg->report,
			"connected", vm->rep_fd >= 0, "valid", (json_int_t)rd->valid, "invalid",
			(json_int_t)rd->invalid, "rate-limited", (json_int_t)rd->rate_limited,
			"bytes", (json_int_t)rd->bytes, "seq-resets", (json_int_t)rd->seq_resets,
			"seq-gaps", (json_int_t)rd->seq_gaps);
	json_object_set_new(rep, "error",
			    vm->rep_link.up || !vm->rep_link.error[0] ?
				    json_null() :
				    json_string(vm->rep_link.error));
	json_object_set_new(rep, "last-error",
			    rd->last_error ? json_string(rd->last_error) : json_null());
	if (rd->have_last) {
		json_object_set_new(rep, "age-ms", json_integer(now - rd->last_ms));
		json_object_set_new(rep, "last", last_report(&rd->last));
	} else {
		json_object_set_new(rep, "age-ms", json_null());
		json_object_set_new(rep, "last", json_null());
	}
	json_object_set_new(o, "report", rep);
	json_object_set_new(o, "budget-denied", jsize(vm->out.denied));
	json_object_set_new(o, "decisions", json_integer((json_int_t)vm->decisions));
	if (vm->last.valid)
		json_object_set_new(o, "last-decision",
				    json_pack("{s:s, s:o, s:o, s:s, s:I}", "action",
					      pol_action_name(vm->last.action), "from",
					      jsize(vm->last.from), "to", jsize(vm->last.to),
					      "reason", vm->last.reason, "ago-ms",
					      (json_int_t)(now - vm->last.at_ms)));
	else
		json_object_set_new(o, "last-decision", json_null());
	return o;
}

int status_write(const char *dir, const struct status_global *g, const struct vm *vms,
		 unsigned int n, long long now)
{
	char path[4096], tmp[4096 + 8];
	json_t *root, *list, *budget;
	unsigned int i;
	int fd, rc = 0;
	char *text;
	size_t len, off = 0;

	budget = json_pack("{s:b}", "limited", g->budget_limited);
	json_object_set_new(budget, "bytes",
			    g->budget_limited ? jsize(g->budget_bytes) : json_null());
	json_object_set_new(budget, "total", g->has_budget ? jsize(g->budget_total) : json_null());
	json_object_set_new(budget, "host-reserve",
			    g->has_host_reserve ? jsize(g->host_reserve) : json_null());
	json_object_set_new(budget, "host-available",
			    g->host_avail_ok ? jsize(g->host_avail) : json_null());
	json_object_set_new(budget, "in-use", jsize(g->in_use));
	list = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(list, vm_json(&vms[i], now));
	root = json_pack("{s:i, s:s, s:i, s:I, s:I, s:i, s:o, s:o}", "format", 1, "version",
			 g->version, "pid", (int)g->pid, "started-ms", (json_int_t)g->started_ms,
			 "updated-ms", (json_int_t)wall_ms(), "interval-ms", (int)g->interval_ms,
			 "budget", budget, "vms", list);
	text = root ? json_dumps(root, JSON_COMPACT) : NULL;
	json_decref(root);
	if (!text) {
		errno = ENOMEM;
		return -1;
	}
	len = strlen(text);
	snprintf(path, sizeof(path), "%s/" STATUS_FILE, dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		free(text);
		return -1;
	}
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = -1;
			break;
		}
		off += (size_t)w;
	}
	if (!rc && write(fd, "\n", 1) != 1)
		rc = -1;
	free(text);
	if (close(fd))
		rc = -1;
	if (!rc && rename(tmp, path))
		rc = -1;
	if (rc) {
		int err = errno;

		unlink(tmp);
		errno = err;
	}
	return rc;
}

void status_remove(const char *dir)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/" STATUS_FILE, dir);
	unlink(path);
}

/* ------------------------------------------------------------------ */
/* memplugd --status */

static long long jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (long long)json_integer_value(v) : -1;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* A size member, "-" when absent. */
static const char *jsize_str(json_t *o, const char *key, char *buf, size_t len)
{
	long long v = jint(o, key);

	if (v < 0)
		return "-";
	return format_size((uint64_t)v, buf, len);
}

static void print_vm(json_t *vm)
{
	json_t *dev = json_object_get(vm, "device"), *rep = json_object_get(vm, "report");
	json_t *last = json_object_get(rep, "last"), *dec = json_object_get(vm, "last-decision");
	json_t *be = json_object_get(vm, "backend");
	char a[SIZE_STR_MAX], b[SIZE_STR_MAX], c[SIZE_STR_MAX], d[SIZE_STR_MAX];
	char name[80], state[32], bstate[32], note[POL_REASON_MAX + 32],
		reason[POL_REASON_MAX + 32];
	long long psi, age;

	snprintf(name, sizeof(name), "%s", jstr(vm, "name"));
	snprintf(state, sizeof(state), "%s", jstr(vm, "state"));
	snprintf(bstate, sizeof(bstate), "%s", jstr(be, "state"));
	sanitize_string(name);
	sanitize_string(state);
	sanitize_string(bstate);
	printf("vm %s: %s\n", name, state);
	if (json_is_object(dev))
		printf("  size:    requested %s, plugged %s (block %s, region %s)\n",
		       jsize_str(dev, "requested-size", a, sizeof(a)),
		       jsize_str(dev, "size", b, sizeof(b)),
		       jsize_str(dev, "block-size", c, sizeof(c)),
		       jsize_str(dev, "region-size", d, sizeof(d)));
	else
		printf("  size:    unknown (%s)\n", bstate);
	printf("  band:    min %s, max %s, buffer %s, weight %lld\n",
	       jsize_str(vm, "min", a, sizeof(a)), jsize_str(vm, "max", b, sizeof(b)),
	       jsize_str(vm, "buffer", c, sizeof(c)), jint(vm, "weight"));
	age = jint(rep, "age-ms");
	if (json_is_object(last)) {
		psi = jint(last, "psi-some");
		printf("  guest:   available %s, can give %s, psi some ",
		       jsize_str(last, "avail", a, sizeof(a)),
		       jsize_str(last, "give", b, sizeof(b)));
		if (psi >= 0)
			printf("%lld.%02lld%%", psi / 100, psi % 100);
		else
			printf("-");
		printf(", report %lld.%lld s ago\n", age / 1000, age % 1000 / 100);
	} else {
		printf("  guest:   no report yet\n");
	}
	printf("  reports: %s, %lld valid, %lld invalid, %lld over the rate limit\n",
	       json_is_true(json_object_get(rep, "connected")) ? "connected" : "not connected",
	       jint(rep, "valid"), jint(rep, "invalid"), jint(rep, "rate-limited"));
	snprintf(note, sizeof(note), "%s %s", jstr(be, "kind"), jstr(be, "address"));
	if (json_is_string(json_object_get(be, "domain")))
		snprintf(note + strlen(note), sizeof(note) - strlen(note), ", domain %s",
			 jstr(be, "domain"));
	sanitize_string(note);
	printf("  backend: %s: %s, %lld lost\n", note, bstate, jint(be, "failures"));
	if (json_is_string(json_object_get(be, "error"))) {
		snprintf(note, sizeof(note), "%s", jstr(be, "error"));
		sanitize_string(note);
		printf("  down:    %s\n", note);
	}
	if (json_is_string(json_object_get(rep, "error"))) {
		snprintf(note, sizeof(note), "%s", jstr(rep, "error"));
		sanitize_string(note);
		printf("  channel: %s\n", note);
	}
	if (jstr(vm, "note")[0]) {
		snprintf(note, sizeof(note), "%s", jstr(vm, "note"));
		sanitize_string(note);
		printf("  now:     %s\n", note);
	}
	if (json_is_object(dec)) {
		age = jint(dec, "ago-ms");
		snprintf(reason, sizeof(reason), "%s", jstr(dec, "reason"));
		sanitize_string(reason);
		snprintf(note, sizeof(note), "%s", jstr(dec, "action"));
		sanitize_string(note);
		printf("  last:    %s %s -> %s, %lld s ago: %s\n", note,
		       jsize_str(dec, "from", a, sizeof(a)), jsize_str(dec, "to", b, sizeof(b)),
		       age / 1000, reason);
	}
}

int status_show(const char *dir, int json)
{
	char path[4096], a[SIZE_STR_MAX], b[SIZE_STR_MAX], ver[64];
	json_error_t jerr;
	json_t *root, *vms, *vm, *budget;
	long long pid, updated, interval, age;
	struct stat st;
	int running;
	size_t i;

	snprintf(path, sizeof(path), "%s/" STATUS_FILE, dir);
	if (!stat(path, &st) && st.st_size > STATUS_MAX_FILE) {
		fprintf(stderr, "memplugd: %s is larger than %d bytes: not a status file\n", path,
			STATUS_MAX_FILE);
		return 1;
	}
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		if (access(path, F_OK))
			fprintf(stderr,
				"memplugd: no status in %s: memplugd is not running (or uses "
				"another runtime directory: -s DIR)\n",
				dir);
		else
			fprintf(stderr, "memplugd: cannot read %s: %s\n", path, jerr.text);
		return 1;
	}
	vms = json_object_get(root, "vms");
	pid = jint(root, "pid");
	updated = jint(root, "updated-ms");
	interval = jint(root, "interval-ms");
	if (!json_is_object(root) || !json_is_array(vms) || pid <= 0 || updated < 0 ||
	    interval <= 0) {
		fprintf(stderr, "memplugd: %s is not a memplugd status file\n", path);
		json_decref(root);
		return 1;
	}
	age = wall_ms() - updated;
	running = (kill((pid_t)pid, 0) == 0 || errno == EPERM) &&
		  age <= (interval * 3 > 5000 ? interval * 3 : 5000);
	if (json) {
		json_object_set_new(root, "running", json_boolean(running));
		print_json_line(root);
		return running ? 0 : 3;
	}
	snprintf(ver, sizeof(ver), "%s", jstr(root, "version"));
	sanitize_string(ver);
	budget = json_object_get(root, "budget");
	printf("memplugd %s, pid %lld, %s, updated %lld.%lld s ago\n", ver, pid,
	       running ? "running" : "NOT RUNNING (status left over)", age / 1000,
	       age % 1000 / 100);
	if (json_is_true(json_object_get(budget, "limited")))
		printf("budget %s, in use %s\n", jsize_str(budget, "bytes", a, sizeof(a)),
		       jsize_str(budget, "in-use", b, sizeof(b)));
	else
		printf("no budget, in use %s\n", jsize_str(budget, "in-use", b, sizeof(b)));
	json_array_foreach(vms, i, vm) {
		if (json_is_object(vm))
			print_vm(vm);
	}
	json_decref(root);
	return running ? 0 : 3;
}
