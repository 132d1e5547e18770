// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplugd's configuration parser, see config.h.
 *
 *   # comment (also "; comment"), blank lines ignored
 *   [daemon]
 *   key = value
 *   [vm NAME]
 *   key = value
 *
 * Values run to the end of the line (no inline comments: paths may hold
 * '#'); blanks around keys and values are dropped.  Every key may be set
 * once per section.  Sizes are memplugctl's ("512M", "8G", "4GiB"),
 * durations seconds ("30", "0.5", "2s"), percentages "10", "12.5%".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

enum section { SEC_NONE, SEC_DAEMON, SEC_VM };

enum kind {
	K_MS, /* unsigned int, ms, from seconds */
	K_MS_LL, /* long long, ms, from seconds */
	K_SIZE, /* uint64_t bytes */
	K_PCT, /* unsigned int, 1/100 % */
	K_PCT_WHOLE, /* unsigned int, % */
	K_COUNT, /* unsigned int */
	K_PATH, /* char[], a file or unix socket path */
	K_QMP, /* QMP address */
	K_DEVICE, /* device id */
	K_LIBVIRT, /* libvirt URI */
	K_DOMAIN, /* libvirt domain */
};

struct key {
	const char *name;
	enum section section;
	enum kind kind;
	size_t offset; /* in struct mpd_config, or struct vm_config for SEC_VM */
	size_t size; /* of a K_PATH buffer */
	uint64_t lo, hi; /* bounds in the stored unit */
};

#define D(field) offsetof(struct mpd_config, field)
#define P(field) offsetof(struct mpd_config, pol.field)
#define V(field) offsetof(struct vm_config, field)
#define SZ(t, field) sizeof(((t *)0)->field)
#define TiB (UINT64_C(1) << 40)

static const struct key keys[] = {
	{ "interval", SEC_DAEMON, K_MS, D(interval_ms), 0, 50, 60000 },
	{ "qmp-timeout", SEC_DAEMON, K_MS, D(qmp_timeout_ms), 0, 50, 30000 },
	{ "reconnect-max", SEC_DAEMON, K_MS, D(reconnect_max_ms), 0, 100, 3600000 },
	{ "report-timeout", SEC_DAEMON, K_MS_LL, P(report_timeout_ms), 0, 100, 3600000 },
	{ "report-rate", SEC_DAEMON, K_COUNT, D(report_rate), 0, 1, 1000 },
	{ "budget", SEC_DAEMON, K_SIZE, D(budget), 0, 0, UINT64_MAX },
	{ "host-reserve", SEC_DAEMON, K_SIZE, D(host_reserve), 0, 0, UINT64_MAX },
	{ "host-meminfo", SEC_DAEMON, K_PATH, D(host_meminfo), SZ(struct mpd_config, host_meminfo),
	  0, 0 },
	{ "psi-threshold", SEC_DAEMON, K_PCT, P(psi_threshold), 0, 1, 10000 },
	{ "psi-idle", SEC_DAEMON, K_PCT, P(psi_idle), 0, 0, 10000 },
	{ "psi-step", SEC_DAEMON, K_SIZE, P(psi_step), 0, 1, TiB },
	{ "psi-hold", SEC_DAEMON, K_MS_LL, P(psi_hold_ms), 0, 0, 3600000 },
	{ "hold-down", SEC_DAEMON, K_MS_LL, P(hold_down_ms), 0, 0, 86400000 },
	{ "shrink-interval", SEC_DAEMON, K_MS_LL, P(shrink_interval_ms), 0, 0, 86400000 },
	{ "shrink-ratio", SEC_DAEMON, K_PCT_WHOLE, P(shrink_ratio), 0, 1, 100 },
	{ "shrink-max-step", SEC_DAEMON, K_SIZE, P(shrink_max_step), 0, 1, TiB },
	{ "hysteresis", SEC_DAEMON, K_PCT_WHOLE, P(hysteresis), 0, 0, 1000 },
	{ "settle-time", SEC_DAEMON, K_MS_LL, P(settle_ms), 0, 100, 86400000 },
	{ "retry-after", SEC_DAEMON, K_MS_LL, P(retry_ms), 0, 0, 86400000 },
	{ "buffer", SEC_DAEMON, K_SIZE, D(default_buffer), 0, 1, UINT64_MAX },
	{ "weight", SEC_DAEMON, K_COUNT, D(default_weight), 0, 1, 10000 },
	{ "qmp", SEC_VM, K_QMP, 0, 0, 0, 0 },
	{ "libvirt", SEC_VM, K_LIBVIRT, V(libvirt), SZ(struct vm_config, libvirt), 0, 0 },
	{ "domain", SEC_VM, K_DOMAIN, V(domain), SZ(struct vm_config, domain), 0, 0 },
	{ "report", SEC_VM, K_PATH, V(report), SZ(struct vm_config, report), 0, 0 },
	{ "device", SEC_VM, K_DEVICE, V(device), SZ(struct vm_config, device), 0, 0 },
	{ "alias", SEC_VM, K_DEVICE, V(device), SZ(struct vm_config, device), 0, 0 },
	{ "min", SEC_VM, K_SIZE, V(min), 0, 0, UINT64_MAX },
	{ "max", SEC_VM, K_SIZE, V(max), 0, 1, UINT64_MAX },
	{ "buffer", SEC_VM, K_SIZE, V(buffer), 0, 1, UINT64_MAX },
	{ "weight", SEC_VM, K_COUNT, V(weight), 0, 1, 10000 },
};

#define NR_KEYS (sizeof(keys) / sizeof(keys[0]))

struct parser {
	const char *fname;
	char *err;
	size_t err_len;
	unsigned int line;
	enum section section;
	struct vm_config *vm;
	int daemon_seen;
	/* line where each key was set in the current section, 0: not yet */
	unsigned int set_at[NR_KEYS];
	/* for VMs: which keys were set (defaults applied afterwards) */
	unsigned char vm_set[CFG_MAX_VMS][NR_KEYS];
	unsigned int daemon_set[NR_KEYS];
};

static int __attribute__((format(printf, 3, 4)))
fail_at(struct parser *ps, unsigned int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sanitize_string(msg);
	if (line)
		snprintf(ps->err, ps->err_len, "%s:%u: %s", ps->fname, line, msg);
	else
		snprintf(ps->err, ps->err_len, "%s: %s", ps->fname, msg);
	return -1;
}

#define fail(ps, ...) fail_at(ps, (ps)->line, __VA_ARGS__)

int config_libvirt_support = 1;

void config_defaults(struct mpd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->interval_ms = 1000;
	cfg->qmp_timeout_ms = 1000;
	cfg->reconnect_max_ms = 30000;
	cfg->report_rate = 20;
	snprintf(cfg->host_meminfo, sizeof(cfg->host_meminfo), "/proc/meminfo");
	pol_defaults(&cfg->pol);
	cfg->default_buffer = 512 * MiB;
	cfg->default_weight = 100;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Seconds with up to three decimals, an optional "s": milliseconds. */
static int parse_duration(const char *v, uint64_t *ms)
{
	char buf[32];
	size_t len = strlen(v);
	unsigned int msec;

	if (!len || len >= sizeof(buf))
		return -1;
	memcpy(buf, v, len + 1);
	if (len > 1 && buf[len - 1] == 's' && is_digit(buf[len - 2]))
		buf[len - 1] = '\0';
	if (parse_seconds(buf, &msec))
		return -1;
	*ms = msec;
	return 0;
}

/* "10", "12.5", "12.34%": hundredths of a percent, at most 100000 (1000%). */
static int parse_percent(const char *v, uint64_t *hundredths)
{
	uint64_t whole = 0, frac = 0;
	int digits = 0, fdigits = 0;

	while (is_digit(*v)) {
		if (++digits > 4)
			return -1;
		whole = whole * 10 + (uint64_t)(*v++ - '0');
	}
	if (!digits)
		return -1;
	if (*v == '.') {
		v++;
		while (is_digit(*v)) {
			if (++fdigits > 2)
				return -1;
			frac = frac * 10 + (uint64_t)(*v++ - '0');
		}
		if (!fdigits)
			return -1;
		if (fdigits == 1)
			frac *= 10;
	}
	if (*v == '%')
		v++;
	if (*v || whole > 1000)
		return -1;
	*hundredths = whole * 100 + frac;
	return 0;
}

/* QEMU ids: [A-Za-z][A-Za-z0-9._-]*. */
static int valid_id(const char *s, size_t max)
{
	size_t i, len = strlen(s);

	if (!len || len >= max)
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

		if (!alpha && (i == 0 || !(is_digit(c) || c == '.' || c == '_' || c == '-')))
			return 0;
	}
	return 1;
}

/*
 * A libvirt URI: a scheme ([A-Za-z][A-Za-z0-9+.-]*), ':', then no blank
 * ("qemu:///system", "qemu+ssh://host/system", "test:///default").
 */
static int valid_uri(const char *s, size_t max)
{
	size_t i, len = strlen(s);

	if (!len || len >= max || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
		return 0;
	for (i = 1; i < len && s[i] != ':'; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '+' ||
		      c == '.' || c == '-'))
			return 0;
	}
	if (i == len || i + 1 == len)
		return 0;
	for (; i < len; i++)
		if (is_blank(s[i]))
			return 0;
	return 1;
}

/* VM names: [A-Za-z0-9][A-Za-z0-9._-]{0,63}. */
static int valid_name(const char *s, size_t len)
{
	size_t i;

	if (!len || len > CFG_NAME_MAX)
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c);

		if (!alnum && (i == 0 || !(c == '.' || c == '_' || c == '-')))
			return 0;
	}
	return 1;
}

static const char *section_name(struct parser *ps, char *buf, size_t len)
{
	if (ps->section == SEC_DAEMON)
		snprintf(buf, len, "[daemon]");
	else
		snprintf(buf, len, "[vm %s]", ps->vm->name);
	return buf;
}

static int set_value(struct parser *ps, struct mpd_config *cfg, const struct key *k,
		     const char *value)
{
	char *base = k->section == SEC_VM ? (char *)ps->vm : (char *)cfg;
	const char *why = NULL;
	uint64_t v = 0;

	switch (k->kind) {
	case K_MS:
	case K_MS_LL:
		if (parse_duration(value, &v))
			return fail(ps, "%s: invalid duration '%s' (seconds, e.g. 30 or 0.5)",
				    k->name, value);
		break;
	case K_SIZE:
		if (parse_size(value, &v, &why))
			return fail(ps, "%s: invalid size '%s': %s", k->name, value, why);
		break;
	case K_PCT:
	case K_PCT_WHOLE:
		if (parse_percent(value, &v))
			return fail(ps, "%s: invalid percentage '%s' (e.g. 10 or 12.5%%)", k->name,
				    value);
		if (k->kind == K_PCT_WHOLE) {
			if (v % 100)
				return fail(ps, "%s: a whole percentage, not '%s'", k->name, value);
			v /= 100;
		}
		break;
	case K_COUNT: {
		unsigned int c;

		if (!strcmp(value, "0"))
			c = 0; /* parse_count() wants a positive count: say "out of range" */
		else if (parse_count(value, &c))
			return fail(ps, "%s: invalid number '%s'", k->name, value);
		v = c;
		break;
	}
	case K_PATH:
		if (value[0] != '/')
			return fail(ps, "%s: '%s' is not an absolute path", k->name, value);
		if (strlen(value) >= k->size)
			return fail(ps, "%s: path longer than %zu bytes", k->name, k->size - 1);
		snprintf(base + k->offset, k->size, "%s", value);
		return 0;
	case K_DEVICE:
		if (!valid_id(value, k->size))
			return fail(ps, "%s: invalid %s '%s'", k->name,
				    strcmp(k->name, "alias") ? "device id" : "device alias", value);
		snprintf(base + k->offset, k->size, "%s", value);
		return 0;
	case K_LIBVIRT:
		if (!config_libvirt_support)
			return fail(ps, "libvirt: memplugd was built without libvirt support "
					"(build it with libvirt-dev and libxml2-dev installed)");
		if (!valid_uri(value, k->size))
			return fail(ps, "libvirt: invalid libvirt URI '%s' (e.g. qemu:///system)",
				    value);
		snprintf(base + k->offset, k->size, "%s", value);
		return 0;
	case K_DOMAIN:
		if (strlen(value) >= k->size)
			return fail(ps, "domain: longer than %zu bytes", k->size - 1);
		snprintf(base + k->offset, k->size, "%s", value);
		return 0;
	case K_QMP:
		if (parse_qmp_addr(value, &ps->vm->qmp, &why))
			return fail(ps, "qmp: invalid QMP socket address '%s': %s", value, why);
		snprintf(ps->vm->qmp_str, sizeof(ps->vm->qmp_str), "%s", value);
		return 0;
	}
	if (v < k->lo || v > k->hi) {
		if (k->kind == K_MS || k->kind == K_MS_LL)
			return fail(ps, "%s: %s is out of range (%llu.%03llu..%llu s)", k->name,
				    value, (unsigned long long)k->lo / 1000,
				    (unsigned long long)k->lo % 1000,
				    (unsigned long long)k->hi / 1000);
		if (k->kind == K_SIZE && !v)
			return fail(ps, "%s: must not be 0", k->name);
		if (k->kind == K_COUNT)
			return fail(ps, "%s: %s is out of range (%llu..%llu)", k->name, value,
				    (unsigned long long)k->lo, (unsigned long long)k->hi);
		return fail(ps, "%s: %s is out of range", k->name, value);
	}
	switch (k->kind) {
	case K_MS_LL:
		*(long long *)(base + k->offset) = (long long)v;
		break;
	case K_SIZE:
		*(uint64_t *)(base + k->offset) = v;
		break;
	default:
		*(unsigned int *)(base + k->offset) = (unsigned int)v;
		break;
	}
	return 0;
}

static int section_line(struct parser *ps, struct mpd_config *cfg, char *s, size_t len)
{
	char *name;
	size_t i, nlen;

	if (len < 2 || s[len - 1] != ']')
		return fail(ps, "malformed section header (expected [daemon] or [vm NAME])");
	s[len - 1] = '\0';
	s++;
	while (is_blank(*s))
		s++;
	len = strlen(s);
	while (len && is_blank(s[len - 1]))
		s[--len] = '\0';
	memset(ps->set_at, 0, sizeof(ps->set_at));
	if (!strcmp(s, "daemon")) {
		if (ps->daemon_seen)
			return fail(ps, "[daemon] given twice (first on line %d)", ps->daemon_seen);
		ps->daemon_seen = (int)ps->line;
		ps->section = SEC_DAEMON;
		return 0;
	}
	if (strncmp(s, "vm", 2) || !is_blank(s[2]))
		return fail(ps, "unknown section [%s] (expected [daemon] or [vm NAME])", s);
	name = s + 3;
	while (is_blank(*name))
		name++;
	nlen = strlen(name);
	if (!valid_name(name, nlen))
		return fail(ps,
			    "invalid VM name '%s' (1 to %d of A-Z a-z 0-9 . _ -, not starting "
			    "with . _ -)",
			    name, CFG_NAME_MAX);
	for (i = 0; i < cfg->nr_vms; i++)
		if (!strcmp(cfg->vms[i].name, name))
			return fail(ps, "VM '%s' given twice (first on line %d)", name,
				    cfg->vms[i].line);
	if (cfg->nr_vms >= CFG_MAX_VMS)
		return fail(ps, "more than %d VMs", CFG_MAX_VMS);
	ps->vm = &cfg->vms[cfg->nr_vms++];
	memset(ps->vm, 0, sizeof(*ps->vm));
	memcpy(ps->vm->name, name, nlen + 1);
	ps->vm->line = (int)ps->line;
	ps->section = SEC_VM;
	return 0;
}

static int key_line(struct parser *ps, struct mpd_config *cfg, char *s)
{
	char *eq = strchr(s, '='), *key_end, *value, sec[CFG_NAME_MAX + 8];
	size_t i, vlen;

	if (!eq)
		return fail(ps, "expected 'key = value', '[section]' or a comment");
	key_end = eq;
	while (key_end > s && is_blank(key_end[-1]))
		key_end--;
	*key_end = '\0';
	value = eq + 1;
	while (is_blank(*value))
		value++;
	vlen = strlen(value);
	while (vlen && is_blank(value[vlen - 1]))
		value[--vlen] = '\0';
	if (!*s)
		return fail(ps, "missing key before '='");
	if (ps->section == SEC_NONE)
		return fail(ps, "'%s' outside a section ([daemon] or [vm NAME] first)", s);
	for (i = 0; i < NR_KEYS; i++) {
		if (keys[i].section != ps->section || strcmp(keys[i].name, s))
			continue;
		if (ps->set_at[i])
			return fail(ps, "'%s' set twice in %s (first on line %u)", s,
				    section_name(ps, sec, sizeof(sec)), ps->set_at[i]);
		if (!vlen)
			return fail(ps, "'%s' has no value", s);
		ps->set_at[i] = ps->line;
		if (ps->section == SEC_VM)
			ps->vm_set[ps->vm - cfg->vms][i] = 1;
		else
			ps->daemon_set[i] = ps->line;
		return set_value(ps, cfg, &keys[i], value);
	}
	for (i = 0; i < NR_KEYS; i++)
		if (!strcmp(keys[i].name, s))
			return fail(ps, "'%s' does not belong in %s", s,
				    section_name(ps, sec, sizeof(sec)));
	return fail(ps, "unknown key '%s' in %s", s, section_name(ps, sec, sizeof(sec)));
}

static int key_index(const char *name, enum section section)
{
	size_t i;

	for (i = 0; i < NR_KEYS; i++)
		if (keys[i].section == section && !strcmp(keys[i].name, name))
			return (int)i;
	return -1;
}

/* Defaults, then checks across keys and VMs. */
static int finish(struct parser *ps, struct mpd_config *cfg)
{
	int kbuf = key_index("buffer", SEC_VM), kweight = key_index("weight", SEC_VM);
	int kqmp = key_index("qmp", SEC_VM), krep = key_index("report", SEC_VM);
	int klv = key_index("libvirt", SEC_VM), kdom = key_index("domain", SEC_VM);
	int kdev = key_index("device", SEC_VM), kalias = key_index("alias", SEC_VM);
	int kmax = key_index("max", SEC_VM);
	struct pol_params *p = &cfg->pol;
	unsigned int i, j;

	if (!cfg->nr_vms)
		return fail_at(ps, 0, "no [vm NAME] section: nothing to manage");
	cfg->has_budget = ps->daemon_set[key_index("budget", SEC_DAEMON)] != 0;
	cfg->has_host_reserve = ps->daemon_set[key_index("host-reserve", SEC_DAEMON)] != 0;
	if (p->psi_idle >= p->psi_threshold)
		return fail_at(ps, ps->daemon_set[key_index("psi-idle", SEC_DAEMON)],
			       "psi-idle (%u.%02u%%) must be below psi-threshold (%u.%02u%%)",
			       p->psi_idle / 100, p->psi_idle % 100, p->psi_threshold / 100,
			       p->psi_threshold % 100);
	if (p->report_timeout_ms < (long long)cfg->interval_ms)
		return fail_at(ps, ps->daemon_set[key_index("report-timeout", SEC_DAEMON)],
			       "report-timeout must be at least the interval");
	for (i = 0; i < cfg->nr_vms; i++) {
		struct vm_config *vm = &cfg->vms[i];

		unsigned int line = (unsigned int)vm->line;

		if (ps->vm_set[i][kqmp] && ps->vm_set[i][klv])
			return fail_at(
				ps, line,
				"[vm %s] has both 'qmp' and 'libvirt': a VM is either QEMU's "
				"(qmp) or a libvirt domain's (libvirt, domain)",
				vm->name);
		if (!ps->vm_set[i][kqmp] && !ps->vm_set[i][klv])
			return fail_at(
				ps, line,
				"[vm %s] has no 'qmp' socket (nor 'libvirt' URI and 'domain')",
				vm->name);
		vm->kind = ps->vm_set[i][klv] ? VM_LIBVIRT : VM_QMP;
		if (vm->kind == VM_LIBVIRT && !ps->vm_set[i][kdom])
			return fail_at(ps, line, "[vm %s] has a 'libvirt' URI but no 'domain'",
				       vm->name);
		if (vm->kind == VM_QMP && ps->vm_set[i][kdom])
			return fail_at(ps, line, "[vm %s]: 'domain' goes with 'libvirt', not 'qmp'",
				       vm->name);
		if (vm->kind == VM_QMP && ps->vm_set[i][kalias])
			return fail_at(ps, line,
				       "[vm %s]: 'alias' is for libvirt domains; with 'qmp' the "
				       "device is 'device = ID'",
				       vm->name);
		if (vm->kind == VM_LIBVIRT && ps->vm_set[i][kdev])
			return fail_at(ps, line,
				       "[vm %s]: 'device' is for QMP; a libvirt domain's device is "
				       "'alias = ALIAS'",
				       vm->name);
		if (ps->vm_set[i][kdev] && ps->vm_set[i][kalias])
			return fail_at(ps, line, "[vm %s]: both 'device' and 'alias'", vm->name);
		if (!ps->vm_set[i][krep])
			return fail_at(
				ps, (unsigned int)vm->line,
				"[vm %s] has no 'report' socket (the guest's report channel)",
				vm->name);
		if (!ps->vm_set[i][kbuf])
			vm->buffer = cfg->default_buffer;
		if (!ps->vm_set[i][kweight])
			vm->weight = cfg->default_weight;
		if (ps->vm_set[i][kmax] && vm->min > vm->max)
			return fail_at(ps, (unsigned int)vm->line, "[vm %s]: min is above max",
				       vm->name);
		for (j = 0; j < i; j++) {
			const struct vm_config *o = &cfg->vms[j];

			if (vm->kind == VM_LIBVIRT && o->kind == VM_LIBVIRT &&
			    !strcmp(vm->libvirt, o->libvirt) && !strcmp(vm->domain, o->domain))
				return fail_at(ps, (unsigned int)vm->line,
					       "[vm %s] has the libvirt domain of [vm %s]",
					       vm->name, o->name);
			if (vm->kind == VM_QMP && o->kind == VM_QMP &&
			    vm->qmp.kind == o->qmp.kind && !strcmp(vm->qmp.path, o->qmp.path) &&
			    !strcmp(vm->qmp.host, o->qmp.host) &&
			    !strcmp(vm->qmp.port, o->qmp.port))
				return fail_at(ps, (unsigned int)vm->line,
					       "[vm %s] has the QMP socket of [vm %s]", vm->name,
					       o->name);
			if (!strcmp(vm->report, o->report))
				return fail_at(ps, (unsigned int)vm->line,
					       "[vm %s] has the report socket of [vm %s]", vm->name,
					       o->name);
		}
	}
	return 0;
}

int config_parse(const char *text, size_t len, const char *fname, struct mpd_config *cfg, char *err,
		 size_t err_len)
{
	struct parser *ps = calloc(1, sizeof(*ps));
	char line[CFG_MAX_LINE + 1];
	size_t pos = 0;
	int rc = 0;

	config_defaults(cfg);
	if (!ps) {
		snprintf(err, err_len, "%s: out of memory", fname);
		return -1;
	}
	ps->fname = fname;
	ps->err = err;
	ps->err_len = err_len;
	if (len > CFG_MAX_FILE) {
		rc = fail_at(ps, 0, "larger than %d bytes", CFG_MAX_FILE);
		goto out;
	}
	while (pos < len && !rc) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t llen = nl ? (size_t)(nl - (text + pos)) : len - pos;
		char *s = line;
		size_t i, slen;

		ps->line++;
		if (llen > CFG_MAX_LINE) {
			rc = fail(ps, "line longer than %d bytes", CFG_MAX_LINE);
			break;
		}
		memcpy(line, text + pos, llen);
		line[llen] = '\0';
		pos += llen + (nl ? 1 : 0);
		if (llen && line[llen - 1] == '\r')
			line[--llen] = '\0';
		for (i = 0; i < llen; i++) {
			unsigned char c = (unsigned char)line[i];

			if ((c < 0x20 && c != '\t') || c > 0x7e) {
				rc = fail(ps, "byte 0x%02x at column %zu: only printable ASCII", c,
					  i + 1);
				break;
			}
		}
		if (rc)
			break;
		while (is_blank(*s))
			s++;
		slen = strlen(s);
		while (slen && is_blank(s[slen - 1]))
			s[--slen] = '\0';
		if (!slen || s[0] == '#' || s[0] == ';')
			continue;
		if (s[0] == '[')
			rc = section_line(ps, cfg, s, slen);
		else
			rc = key_line(ps, cfg, s);
	}
	if (!rc)
		rc = finish(ps, cfg);
out:
	free(ps);
	return rc;
}

int config_load(const char *path, struct mpd_config *cfg, char *err, size_t err_len)
{
	char *text = malloc(CFG_MAX_FILE + 1);
	size_t len = 0;
	int fd, rc;

	if (!text) {
		snprintf(err, err_len, "%s: out of memory", path);
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(err, err_len, "%s: %s", path, strerror(errno));
		free(text);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, text + len, CFG_MAX_FILE + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, err_len, "%s: %s", path, strerror(errno));
			close(fd);
			free(text);
			return -1;
		}
		if (n == 0 || (len += (size_t)n) > CFG_MAX_FILE)
			break;
	}
	close(fd);
	rc = config_parse(text, len, path, cfg, err, err_len);
	free(text);
	return rc;
}
