// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplugctl guest - show the memplug driver's state from sysfs, inside the
 * guest.
 *
 * Every virtio device whose driver link points to memplug has a "memplug"
 * attribute group: /sys/bus/virtio/devices/virtioN/memplug/<attr>, one value
 * per file (docs/sysfs-attributes.md).  The attributes we know are printed
 * with a label and in a fixed order; any other file in the group is printed
 * too, under its own name, so attributes added to the driver later show up
 * without a change here.  Nothing from sysfs is trusted: a value that cannot
 * be read or parsed is reported and the rest is still shown.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "guest.h"
#include "size.h"
#include "util.h"

#define DRIVER_NAME "memplug"
#define GROUP_NAME "memplug"
#define BUS_DEVICES "/bus/virtio/devices"
#define BUS_DRIVER "/bus/virtio/drivers/" DRIVER_NAME
/* A sysfs attribute is at most a page; anything longer is not one. */
#define VALUE_MAX 4096
/* More files than this in the group is not memplug's group either. */
#define MAX_ATTRS 256
#define MAX_STATES 16
#define LABEL_WIDTH 24

enum kind {
	K_TEXT, /* a word, e.g. the mode */
	K_SIZE, /* bytes, printed in binary units and in bytes */
	K_ADDR, /* a physical address, printed in hex */
	K_COUNT, /* an unsigned number */
	K_INT, /* a signed number (the node, -1 = none) */
	K_STATES, /* "name count name count ...", e.g. unit_states */
	K_MSEC, /* milliseconds since boot, 0 = never */
};

/* Where a known attribute is printed (human output). */
enum section {
	S_MAIN,
	S_GUARDS, /* "guards:", the growth and unplug guards */
	S_COUNTERS, /* "counters:" */
};

static const char *const section_titles[] = {
	[S_GUARDS] = "guards",
	[S_COUNTERS] = "counters",
};

struct known_attr {
	const char *name;
	const char *label;
	enum kind kind;
	enum section section;
};

/* In the order they are printed; see driver/sysfs.c. */
static const struct known_attr known_attrs[] = {
	{ "mode", "mode", K_TEXT, S_MAIN },
	{ "device_block_size", "device block size", K_SIZE, S_MAIN },
	{ "memory_block_size", "memory block size", K_SIZE, S_MAIN },
	{ "sub_block_size", "sub block size", K_SIZE, S_MAIN },
	{ "unit_size", "unit size", K_SIZE, S_MAIN },
	{ "region_addr", "region address", K_ADDR, S_MAIN },
	{ "region_size", "region size", K_SIZE, S_MAIN },
	{ "usable_region_size", "usable region size", K_SIZE, S_MAIN },
	{ "node", "node", K_INT, S_MAIN },
	{ "units", "units", K_COUNT, S_MAIN },
	{ "units_added", "units added", K_COUNT, S_MAIN },
	{ "unit_states", "unit states", K_STATES, S_MAIN },
	{ "requested_size", "requested size", K_SIZE, S_MAIN },
	{ "plugged_size", "plugged size", K_SIZE, S_MAIN },
	{ "device_plugged_size", "device plugged size", K_SIZE, S_MAIN },
	{ "sub_blocks_plugged", "sub blocks plugged", K_COUNT, S_MAIN },
	{ "sub_blocks_held", "sub blocks held", K_COUNT, S_MAIN },
	{ "memmap_on_memory", "memmap on memory", K_COUNT, S_MAIN },
	{ "worker", "worker", K_TEXT, S_MAIN },
	{ "growth_guard", "growth guard", K_TEXT, S_GUARDS },
	{ "growth_limit_bytes", "growth limit", K_SIZE, S_GUARDS },
	{ "growth_guard_refusals", "growth refusals", K_COUNT, S_GUARDS },
	{ "growth_guard_last_blocked_ms", "growth last blocked", K_MSEC, S_GUARDS },
	{ "unplug_guard", "unplug guard", K_TEXT, S_GUARDS },
	{ "no_room", "unplug refusals", K_COUNT, S_GUARDS },
	{ "unplug_guard_last_blocked_ms", "unplug last blocked", K_MSEC, S_GUARDS },
	{ "plug_requests", "plug requests", K_COUNT, S_COUNTERS },
	{ "unplug_requests", "unplug requests", K_COUNT, S_COUNTERS },
	{ "unplug_all_requests", "unplug all requests", K_COUNT, S_COUNTERS },
	{ "state_requests", "state requests", K_COUNT, S_COUNTERS },
	{ "acks", "acks", K_COUNT, S_COUNTERS },
	{ "nacks", "nacks", K_COUNT, S_COUNTERS },
	{ "busy_answers", "busy answers", K_COUNT, S_COUNTERS },
	{ "error_answers", "error answers", K_COUNT, S_COUNTERS },
	{ "bad_answers", "bad answers", K_COUNT, S_COUNTERS },
	{ "add_failures", "add failures", K_COUNT, S_COUNTERS },
	{ "remove_failures", "remove failures", K_COUNT, S_COUNTERS },
	{ "remove_timeouts", "remove timeouts", K_COUNT, S_COUNTERS },
	{ "contig_failures", "contig failures", K_COUNT, S_COUNTERS },
	{ "fast_unplugs", "fast unplugs", K_COUNT, S_COUNTERS },
	{ "taken_pages", "taken pages", K_COUNT, S_COUNTERS },
	{ "retries", "retries", K_COUNT, S_COUNTERS },
};

#define NR_KNOWN (sizeof(known_attrs) / sizeof(known_attrs[0]))

struct state_pair {
	char name[32];
	uint64_t count;
};

struct attr {
	char name[NAME_MAX + 1]; /* sanitized */
	const struct known_attr *known; /* NULL: an attribute we do not know */
	enum kind kind;
	char text[VALUE_MAX]; /* the value, trailing newline removed */
	char problem[160]; /* "" when the value is usable */
	int is_num; /* a number: in u, or in s if is_signed */
	int is_signed;
	uint64_t u;
	int64_t s;
	unsigned int nr_states;
	struct state_pair states[MAX_STATES];
};

struct device {
	char name[NAME_MAX + 1];
	struct attr *attrs;
	unsigned int nr_attrs;
	unsigned int nr_problems;
};

static void __attribute__((format(printf, 1, 2))) guest_error(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	va_start(ap, fmt);
	verror_line("", fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Reading and parsing */

/* Strictly decimal digits, no sign, no blanks, fits in 64 bits. */
static int parse_u64(const char *s, uint64_t *v)
{
	uint64_t n = 0;

	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (n > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*v = n;
	return 0;
}

static int parse_s64(const char *s, int64_t *v)
{
	uint64_t n;

	if (*s != '-') {
		if (parse_u64(s, &n) || n > INT64_MAX)
			return -1;
		*v = (int64_t)n;
		return 0;
	}
	if (parse_u64(s + 1, &n) || n > (uint64_t)INT64_MAX + 1)
		return -1;
	*v = n == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)n;
	return 0;
}

/*
 * Read the file @path into @buf (NUL terminated, trailing whitespace
 * removed).  Non-blocking and regular files only, so a FIFO or a device
 * node in a fake tree cannot hang us.  On failure returns -1 with the reason
 * in @why.
 */
static int read_value(const char *path, char *buf, size_t len, char *why, size_t why_len)
{
	struct stat st;
	size_t used = 0;
	int fd;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(why, why_len, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(why, why_len, "not a regular file");
		goto fail;
	}
	for (;;) {
		ssize_t n = read(fd, buf + used, len - 1 - used);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, why_len, "cannot read: %s", strerror(errno));
			goto fail;
		}
		if (!n)
			break;
		used += (size_t)n;
		if (used == len - 1) {
			char c;

			if (read(fd, &c, 1) > 0) {
				snprintf(why, why_len, "longer than %zu bytes", len - 1);
				goto fail;
			}
			break;
		}
	}
	close(fd);
	buf[used] = '\0';
	if (strlen(buf) != used) {
		snprintf(why, why_len, "contains a NUL byte");
		return -1;
	}
	while (used && (buf[used - 1] == '\n' || buf[used - 1] == ' ' || buf[used - 1] == '\t'))
		buf[--used] = '\0';
	return 0;
fail:
	close(fd);
	return -1;
}

/* Quote at most 40 bytes of a bad value in a message, made printable. */
static void quote_value(const char *text, char *buf, size_t len)
{
	snprintf(buf, len, "%.40s%s", text, strlen(text) > 40 ? "..." : "");
	sanitize_string(buf);
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcmp(s + a - b, suffix);
}

/* "not_added 6 offline 0 ..." into name/count pairs. */
static int parse_states(struct attr *a)
{
	char copy[VALUE_MAX];
	char *save = NULL, *name, *count;

	snprintf(copy, sizeof(copy), "%s", a->text);
	a->nr_states = 0;
	for (name = strtok_r(copy, " \t\n", &save); name; name = strtok_r(NULL, " \t\n", &save)) {
		struct state_pair *p;

		count = strtok_r(NULL, " \t\n", &save);
		if (!count || a->nr_states == MAX_STATES || strlen(name) >= sizeof(p->name))
			return -1;
		p = &a->states[a->nr_states];
		if (parse_u64(count, &p->count))
			return -1;
		snprintf(p->name, sizeof(p->name), "%s", name);
		sanitize_string(p->name);
		a->nr_states++;
	}
	return a->nr_states ? 0 : -1;
}

/* Decide what the value of @a is; sets a->problem if it is unusable. */
static void parse_attr(struct attr *a)
{
	char q[64];

	quote_value(a->text, q, sizeof(q));
	switch (a->kind) {
	case K_SIZE:
	case K_ADDR:
	case K_COUNT:
	case K_MSEC:
		if (parse_u64(a->text, &a->u)) {
			snprintf(a->problem, sizeof(a->problem), "not an unsigned number: '%s'", q);
			return;
		}
		a->is_num = 1;
		return;
	case K_INT:
		if (parse_s64(a->text, &a->s)) {
			snprintf(a->problem, sizeof(a->problem), "not a number: '%s'", q);
			return;
		}
		a->is_num = a->is_signed = 1;
		return;
	case K_STATES:
		if (parse_states(a))
			snprintf(a->problem, sizeof(a->problem),
				 "not a list of 'state count' pairs: '%s'", q);
		return;
	case K_TEXT:
		if (!a->text[0] && a->known) {
			snprintf(a->problem, sizeof(a->problem), "empty");
			return;
		}
		/* An unknown attribute: a number if it looks like one. */
		if (!a->known && !parse_u64(a->text, &a->u))
			a->is_num = 1;
		else if (!a->known && !parse_s64(a->text, &a->s))
			a->is_num = a->is_signed = 1;
		return;
	}
}

static const struct known_attr *find_known(const char *name)
{
	size_t i;

	for (i = 0; i < NR_KNOWN; i++)
		if (!strcmp(known_attrs[i].name, name))
			return &known_attrs[i];
	return NULL;
}

/* Unknown attributes named like sizes and addresses are shown like them. */
static enum kind guess_kind(const char *name)
{
	if (ends_with(name, "_size"))
		return K_SIZE;
	if (ends_with(name, "_addr"))
		return K_ADDR;
	return K_TEXT;
}

static int not_dot(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Read every file of the group directory @dir into @dev. */
static int read_group(const char *dir, struct device *dev)
{
	struct dirent **list;
	int n, i;

	n = scandir(dir, &list, not_dot, alphasort);
	if (n < 0) {
		guest_error("%s: cannot list %s: %s", dev->name, dir, strerror(errno));
		return -1;
	}
	dev->attrs = calloc(MAX_ATTRS, sizeof(*dev->attrs));
	if (!dev->attrs) {
		guest_error("out of memory");
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct attr *a = &dev->attrs[dev->nr_attrs];
		char path[PATH_MAX];
		struct stat st;

		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name) >=
		    sizeof(path))
			continue;
		/* sysfs groups have no subdirectories; skip any */
		if (!stat(path, &st) && S_ISDIR(st.st_mode))
			continue;
		if (dev->nr_attrs == MAX_ATTRS) {
			guest_error("%s: more than %d files in %s, the rest is ignored", dev->name,
				    MAX_ATTRS, dir);
			dev->nr_problems++;
			break;
		}
		snprintf(a->name, sizeof(a->name), "%s", list[i]->d_name);
		a->known = find_known(a->name);
		sanitize_string(a->name);
		a->kind = a->known ? a->known->kind : guess_kind(a->name);
		if (!read_value(path, a->text, sizeof(a->text), a->problem, sizeof(a->problem)))
			parse_attr(a);
		else
			a->text[0] = '\0';
		if (a->problem[0])
			dev->nr_problems++;
		dev->nr_attrs++;
	}
out:
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
	return dev->attrs ? 0 : -1;
}

static struct attr *get_attr(struct device *dev, const char *name)
{
	unsigned int i;

	for (i = 0; i < dev->nr_attrs; i++)
		if (!strcmp(dev->attrs[i].name, name))
			return &dev->attrs[i];
	return NULL;
}

/* A usable unsigned value of attribute @name, or -1. */
static int get_u64(struct device *dev, const char *name, uint64_t *v)
{
	struct attr *a = get_attr(dev, name);

	if (!a || a->problem[0] || !a->is_num || a->is_signed)
		return -1;
	*v = a->u;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Output */

static void print_label(int indent, const char *label)
{
	char l[NAME_MAX + 2];

	snprintf(l, sizeof(l), "%s:", label);
	printf("%*s%-*s ", indent, "", LABEL_WIDTH - indent, l);
}

/* The value of @a as humans read it, without a newline. */
static void print_value(const struct attr *a)
{
	char h[SIZE_STR_MAX], text[VALUE_MAX];
	unsigned int i;

	if (a->problem[0]) {
		printf("? (%s)", a->problem);
		return;
	}
	if (a->is_num && a->is_signed) {
		printf("%" PRId64, a->s);
		return;
	}
	if (a->is_num) {
		switch (a->kind) {
		case K_SIZE:
			printf("%s (%" PRIu64 ")", format_size(a->u, h, sizeof(h)), a->u);
			return;
		case K_ADDR:
			printf("0x%" PRIx64, a->u);
			return;
		case K_MSEC:
			if (!a->u)
				printf("never");
			else
				printf("%" PRIu64 ".%03" PRIu64 " s after boot", a->u / 1000,
				       a->u % 1000);
			return;
		default:
			printf("%" PRIu64, a->u);
			return;
		}
	}
	if (a->kind == K_STATES) {
		for (i = 0; i < a->nr_states; i++)
			printf("%s%s %" PRIu64, i ? ", " : "", a->states[i].name,
			       a->states[i].count);
		return;
	}
	snprintf(text, sizeof(text), "%s", a->text);
	for (i = 0; text[i]; i++)
		if (text[i] == '\n' || text[i] == '\t')
			text[i] = ' ';
	sanitize_string(text);
	if (a->known && !strcmp(a->name, "mode") && !strcmp(text, "bbm"))
		printf("bbm (big block mode)");
	else if (a->known && !strcmp(a->name, "mode") && !strcmp(text, "sbm"))
		printf("sbm (sub block mode)");
	else
		printf("%s", text);
}

static void print_device_human(struct device *dev)
{
	uint64_t addr, size, requested, plugged;
	int region = !get_u64(dev, "region_addr", &addr) && !get_u64(dev, "region_size", &size);
	enum section in = S_MAIN;
	int others = 0;
	char h[SIZE_STR_MAX];
	unsigned int i;
	size_t k;

	printf("%s (%s):\n", dev->name, DRIVER_NAME);
	for (k = 0; k < NR_KNOWN; k++) {
		const struct known_attr *known = &known_attrs[k];
		struct attr *a = get_attr(dev, known->name);

		/* an older driver may not have it */
		if (!a)
			continue;
		if (known->section != in) {
			printf("  %s:\n", section_titles[known->section]);
			in = known->section;
		}
		if (region && !strcmp(known->name, "region_size"))
			continue;
		if (region && !strcmp(known->name, "region_addr")) {
			print_label(2, "region");
			printf("0x%" PRIx64 "-0x%" PRIx64 " (%s)\n", addr,
			       addr + size - (size ? 1 : 0), format_size(size, h, sizeof(h)));
			continue;
		}
		print_label(in != S_MAIN ? 4 : 2, known->label);
		print_value(a);
		if (!strcmp(known->name, "plugged_size") &&
		    !get_u64(dev, "plugged_size", &plugged) &&
		    !get_u64(dev, "requested_size", &requested) && plugged != requested)
			printf("  (requested size not reached yet)");
		putchar('\n');
	}
	for (i = 0; i < dev->nr_attrs; i++) {
		struct attr *a = &dev->attrs[i];

		if (a->known)
			continue;
		if (!others++)
			printf("  other attributes:\n");
		print_label(4, a->name);
		print_value(a);
		putchar('\n');
	}
}

/*
 * json_int_t stops at INT64_MAX, sysfs counters do not: a larger value is
 * put in as a string that starts with U64_MARK, and print_json_u64_line()
 * prints it as the bare number.  No other string here can hold the mark:
 * everything from sysfs is sanitized to printable ASCII first.
 */
#define U64_MARK "\001u64:"
#define U64_MARK_DUMPED "\"\\u0001u64:"

static json_t *json_u64(uint64_t v)
{
	char buf[32];

	if (v <= INT64_MAX)
		return json_integer((json_int_t)v);
	snprintf(buf, sizeof(buf), U64_MARK "%" PRIu64, v);
	return json_string(buf);
}

/* Print @obj as one compact line, json_u64()'s marked strings as numbers. */
static void print_json_u64_line(json_t *obj)
{
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	const char *p = text, *q;

	json_decref(obj);
	if (!text)
		return;
	while ((q = strstr(p, U64_MARK_DUMPED))) {
		fwrite(p, 1, (size_t)(q - p), stdout);
		q += strlen(U64_MARK_DUMPED);
		while (*q >= '0' && *q <= '9')
			putchar(*q++);
		p = *q == '"' ? q + 1 : q;
	}
	printf("%s\n", p);
	free(text);
}

static json_t *attr_json(const struct attr *a)
{
	char text[VALUE_MAX];
	json_t *obj;
	unsigned int i;

	if (a->problem[0])
		return json_null();
	if (a->is_num && a->is_signed)
		return json_integer((json_int_t)a->s);
	if (a->is_num)
		return json_u64(a->u);
	if (a->kind == K_STATES) {
		obj = json_object();
		for (i = 0; obj && i < a->nr_states; i++)
			json_object_set_new(obj, a->states[i].name, json_u64(a->states[i].count));
		return obj;
	}
	/* jansson wants UTF-8: printable ASCII always is */
	snprintf(text, sizeof(text), "%s", a->text);
	sanitize_string(text);
	return json_string(text);
}

/* Members of the device object that are not attributes. */
static int reserved_member(const char *name)
{
	return !strcmp(name, "device") || !strcmp(name, "driver") || !strcmp(name, "attributes") ||
	       !strcmp(name, "problems");
}

/*
 * {"device":..., "driver":"memplug", <attributes>, "attributes":{...},
 *  "problems":{...}}: every attribute is in "attributes", under its sysfs
 * name; for the scripts written before that object existed each one is
 * also a member of its own, unless its name is one of the four above.
 */
static void print_device_json(struct device *dev)
{
	json_t *obj = json_object(), *attrs = json_object(), *problems = json_object();
	const char *name;
	json_t *value;
	unsigned int i;
	size_t k;

	json_object_set_new(obj, "device", json_string(dev->name));
	json_object_set_new(obj, "driver", json_string(DRIVER_NAME));
	/* the known ones in their order, then the others alphabetically */
	for (k = 0; k < NR_KNOWN; k++) {
		struct attr *a = get_attr(dev, known_attrs[k].name);

		if (a)
			json_object_set_new(attrs, a->name, attr_json(a));
	}
	for (i = 0; i < dev->nr_attrs; i++) {
		struct attr *a = &dev->attrs[i];

		if (!a->known)
			json_object_set_new(attrs, a->name, attr_json(a));
		if (a->problem[0])
			json_object_set_new(problems, a->name, json_string(a->problem));
	}
	json_object_foreach(attrs, name, value) {
		if (!reserved_member(name))
			json_object_set(obj, name, value);
	}
	json_object_set_new(obj, "attributes", attrs);
	if (json_object_size(problems))
		json_object_set(obj, "problems", problems);
	json_decref(problems);
	print_json_u64_line(obj);
}

/* ------------------------------------------------------------------ */
/* Devices */

/* virtio2 before virtio10 */
static int by_number(const struct dirent **a, const struct dirent **b)
{
	const char *x = (*a)->d_name, *y = (*b)->d_name;
	size_t lx = strlen(x), ly = strlen(y);

	if (!strncmp(x, "virtio", 6) && !strncmp(y, "virtio", 6) && lx != ly)
		return lx < ly ? -1 : 1;
	return strcmp(x, y);
}

static int is_virtio_name(const struct dirent *d)
{
	return !strncmp(d->d_name, "virtio", 6);
}

/* The name of the driver @dev_dir is bound to, in @buf; -1 if unbound. */
static int bound_driver(const char *dev_dir, char *buf, size_t len)
{
	char path[PATH_MAX], target[PATH_MAX];
	const char *base;
	ssize_t n;

	if ((size_t)snprintf(path, sizeof(path), "%s/driver", dev_dir) >= sizeof(path))
		return -1;
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return -1;
	target[n] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= len)
		return -1;
	memcpy(buf, base, strlen(base) + 1);
	return 0;
}

static int show_one(const char *dev_dir, const char *name, int json, unsigned int shown)
{
	struct device dev = { .nr_attrs = 0 };
	char group[PATH_MAX];
	unsigned int i;
	int rc = 0;

	snprintf(dev.name, sizeof(dev.name), "%s", name);
	sanitize_string(dev.name);
	if ((size_t)snprintf(group, sizeof(group), "%s/%s", dev_dir, GROUP_NAME) >= sizeof(group)) {
		guest_error("%s: path too long", dev.name);
		return -1;
	}
	if (read_group(group, &dev)) {
		free(dev.attrs);
		return -1;
	}
	if (json) {
		print_device_json(&dev);
	} else {
		if (shown)
			putchar('\n');
		print_device_human(&dev);
	}
	for (i = 0; i < dev.nr_attrs; i++) {
		if (dev.attrs[i].problem[0]) {
			guest_error("%s: %s/%s: %s", dev.name, GROUP_NAME, dev.attrs[i].name,
				    dev.attrs[i].problem);
			rc = -1;
		}
	}
	if (dev.nr_problems)
		rc = -1;
	free(dev.attrs);
	return rc;
}

int guest_show(const char *sysfs_root, const char *device, int json)
{
	char bus[PATH_MAX], path[PATH_MAX], drv[NAME_MAX + 1], other[NAME_MAX + 1] = "";
	unsigned int shown = 0, errors = 0;
	struct dirent **list;
	struct stat st;
	int n, i;

	if ((size_t)snprintf(bus, sizeof(bus), "%s" BUS_DEVICES, sysfs_root) >= sizeof(bus)) {
		guest_error("sysfs root '%s' is too long", sysfs_root);
		return 1;
	}
	n = scandir(bus, &list, is_virtio_name, by_number);
	if (n < 0) {
		guest_error("cannot list %s: %s (not a guest with virtio, or no sysfs?)", bus,
			    strerror(errno));
		return 1;
	}
	for (i = 0; i < n; i++) {
		const char *name = list[i]->d_name;

		if (device && strcmp(device, name))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", bus, name) >= sizeof(path))
			continue;
		if (bound_driver(path, drv, sizeof(drv)))
			continue;
		if (strcmp(drv, DRIVER_NAME)) {
			if (!other[0] && !strcmp(drv, "virtio_mem"))
				snprintf(other, sizeof(other), "%s", name);
			continue;
		}
		fflush(stdout);
		if (show_one(path, name, json, shown))
			errors++;
		shown++;
	}
	for (i = 0; i < n; i++)
		free(list[i]);
	free(list);
	fflush(stdout);
	if (shown)
		return errors ? 1 : 0;
	if (other[0]) {
		sanitize_string(other);
		guest_error("no virtio device is bound to memplug (%s is bound to virtio_mem)",
			    other);
	} else if (device) {
		char safe[NAME_MAX + 1];

		snprintf(safe, sizeof(safe), "%s", device);
		sanitize_string(safe);
		guest_error("%s is not a virtio device bound to memplug", safe);
	} else if ((size_t)snprintf(path, sizeof(path), "%s" BUS_DRIVER, sysfs_root) <
			   sizeof(path) &&
		   stat(path, &st)) {
		guest_error("memplug is not loaded (no %s)", path);
	} else {
		guest_error("no virtio device is bound to memplug");
	}
	return 1;
}
