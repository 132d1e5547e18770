// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplug-report: one sample of the guest's memory state from /proc and
 * from the virtio-mem devices in sysfs. A file that cannot be read or that
 * does not hold what the kernel prints leaves its keys out of the report
 * and is named in the sample's errors.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "report.h"

/* more than any /proc file read here; zoneinfo grows with the CPUs */
#define FILE_MAX (16 << 20)
#define PATH_LEN SAMPLE_PATH_LEN

static char *text;
static size_t text_cap;

void sample_free(void)
{
	free(text);
	text = NULL;
	text_cap = 0;
}

/* dst = a followed by b: 0, or ENAMETOOLONG if that does not fit */
static int join(char dst[PATH_LEN], const char *a, const char *b)
{
	int n = snprintf(dst, PATH_LEN, "%s%s", a, b);

	return n >= 0 && n < PATH_LEN ? 0 : ENAMETOOLONG;
}

/* The whole file root+path into text (NUL-terminated): 0 or an errno. */
static int read_text(const char *root, const char *path, char full[PATH_LEN])
{
	size_t len = 0;
	ssize_t n;
	int fd, err = join(full, root, path);

	if (err)
		return err;
	fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	for (;;) {
		if (len + 1 >= text_cap) {
			size_t cap = text_cap ? text_cap * 2 : 16384;
			char *bigger = cap > FILE_MAX ? NULL : realloc(text, cap);

			if (!bigger) {
				err = cap > FILE_MAX ? EFBIG : ENOMEM;
				break;
			}
			text = bigger;
			text_cap = cap;
		}
		n = read(fd, text + len, text_cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? errno : 0;
			break;
		}
		len += (size_t)n;
	}
	close(fd);
	if (!err)
		text[len] = '\0';
	return err;
}

static void fail(struct sample_errors *e, enum report_source s, int err, const char *path)
{
	if (e->err[s])
		return; /* the first problem of a source is the one logged */
	e->err[s] = err;
	memcpy(e->path[s], path, strnlen(path, PATH_LEN - 1));
}

static void sample_proc(const char *root, struct report *r, struct sample_errors *e)
{
	static const struct {
		enum report_source src;
		const char *path, *name;
		enum report_key key;
		int (*parse)(const char *, const char *, uint64_t *);
	} keys[] = {
		{ SRC_PSI, "/proc/pressure/memory", "some", RK_PSI_SOME, parse_psi_avg10 },
		{ SRC_PSI, "/proc/pressure/memory", "full", RK_PSI_FULL, parse_psi_avg10 },
		{ SRC_MEMINFO, "/proc/meminfo", "MemTotal", RK_TOTAL, parse_meminfo },
		{ SRC_MEMINFO, "/proc/meminfo", "MemAvailable", RK_AVAIL, parse_meminfo },
		{ SRC_VMSTAT, "/proc/vmstat", "pswpin", RK_PSWPIN, parse_vmstat },
		{ SRC_VMSTAT, "/proc/vmstat", "pswpout", RK_PSWPOUT, parse_vmstat },
	};
	char path[PATH_LEN];
	uint64_t v, wm;
	uint64_t page_size = (uint64_t)sysconf(_SC_PAGESIZE);
	size_t i;
	int err = 0;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		/* each file once: the keys of one file follow each other */
		if (!i || strcmp(keys[i].path, keys[i - 1].path))
			err = read_text(root, keys[i].path, path);
		if (err)
			fail(e, keys[i].src, err, path);
		else if (keys[i].parse(text, keys[i].name, &v))
			fail(e, keys[i].src, SAMPLE_MALFORMED, path);
		else
			report_set(r, keys[i].key, v);
	}
	err = read_text(root, "/proc/zoneinfo", path);
	if (err || parse_zone_watermarks(text, &wm))
		fail(e, SRC_ZONEINFO, err ? err : SAMPLE_MALFORMED, path);
	else if (r->have[RK_AVAIL])
		report_set(r, RK_GIVE, give_bytes(r->num[RK_AVAIL], wm, page_size));
}

/* memplug's attributes that go into a report, summed over its devices */
static const struct {
	const char *name;
	enum report_key key;
	bool guard; /* "ok" or "blocked...": any device blocked is blocked */
} attrs[] = {
	{ "plugged_size", RK_PLUGGED, false },
	{ "requested_size", RK_REQUESTED, false },
	{ "growth_guard", RK_GROWTH, true },
	{ "unplug_guard", RK_UNPLUG, true },
};
#define NATTRS (sizeof(attrs) / sizeof(attrs[0]))

struct memplug_sum {
	uint64_t v[NATTRS]; /* a sum, or for a guard 1 if blocked */
	bool unknown[NATTRS]; /* a device did not say */
};

/* A value of the device's sysfs group dir: 0, or -1 and the problem in e. */
static int read_attr(const char *dir, size_t i, uint64_t *v, struct sample_errors *e)
{
	char path[PATH_LEN], buf[256];
	ssize_t n = -1;
	int fd, err = join(path, dir, attrs[i].name), g;

	fd = err ? -1 : open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0 && !err)
		err = errno;
	if (fd >= 0)
		close(fd);
	if (n < 0) {
		fail(e, SRC_VIRTIO, err, path);
		return -1;
	}
	buf[n] = '\0';
	g = attrs[i].guard ? parse_guard(buf) : parse_sysfs_u64(buf, v);
	if (g < 0) {
		fail(e, SRC_VIRTIO, SAMPLE_MALFORMED, path);
		return -1;
	}
	if (attrs[i].guard)
		*v = (uint64_t)g;
	return 0;
}

static void add_memplug(const char *dev, struct memplug_sum *s, struct sample_errors *e)
{
	char dir[PATH_LEN];
	uint64_t v;
	size_t i;

	for (i = 0; i < NATTRS; i++) {
		if (join(dir, dev, "/memplug/") || read_attr(dir, i, &v, e))
			s->unknown[i] = true;
		else if (attrs[i].guard)
			s->v[i] |= v;
		else if (s->v[i] + v < s->v[i])
			s->unknown[i] = true; /* does not fit in a u64 */
		else
			s->v[i] += v;
	}
}

/* driver, and for memplug what its devices' sysfs groups say */
static void sample_devices(const char *root, struct report *r, struct sample_errors *e)
{
	struct memplug_sum s = { { 0 }, { false } };
	int memplug = 0, virtio_mem = 0;
	char base[PATH_LEN], dev[PATH_LEN], path[PATH_LEN], link[256];
	struct dirent *de;
	size_t i;
	int err;
	DIR *d;

	err = join(base, root, "/sys/bus/virtio/devices/");
	d = err ? NULL : opendir(base);
	if (!d) {
		fail(e, SRC_VIRTIO, err ? err : errno, base);
		return;
	}
	/* the driver each device is bound to; a device without one counts for none */
	while ((de = readdir(d))) {
		ssize_t n = -1;
		const char *drv;

		if (de->d_name[0] == '.')
			continue;
		if (!join(dev, base, de->d_name) && !join(path, dev, "/driver"))
			n = readlink(path, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
		drv = strrchr(link, '/') ? strrchr(link, '/') + 1 : link;
		if (!strcmp(drv, "memplug")) {
			memplug++;
			add_memplug(dev, &s, e);
		} else if (!strcmp(drv, "virtio_mem")) {
			virtio_mem++;
		}
	}
	closedir(d);
	if (memplug && virtio_mem) {
		report_set_word(r, RK_DRIVER, "mixed");
		return;
	}
	report_set_word(r, RK_DRIVER, memplug ? "memplug" : (virtio_mem ? "virtio_mem" : "none"));
	for (i = 0; memplug && i < NATTRS; i++) {
		if (attrs[i].guard && (s.v[i] || !s.unknown[i]))
			report_set_word(r, attrs[i].key, s.v[i] ? "blocked" : "ok");
		else if (!s.unknown[i])
			report_set(r, attrs[i].key, s.v[i]);
	}
	/* memory the unplug guard holds back cannot be given */
	if (r->have[RK_UNPLUG] && !strcmp(r->word[RK_UNPLUG], "blocked") && r->have[RK_GIVE])
		report_set(r, RK_GIVE, 0);
}

void sample(const char *root, struct report *r, struct sample_errors *e)
{
	struct timespec ts;

	memset(r, 0, sizeof(*r));
	memset(e, 0, sizeof(*e));
	if (!clock_gettime(CLOCK_BOOTTIME, &ts))
		report_set(r, RK_MS, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
	sample_proc(root, r, e);
	sample_devices(root, r, e);
}
