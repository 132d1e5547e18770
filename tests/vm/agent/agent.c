// SPDX-License-Identifier: GPL-2.0
/*
 * memplug-agent: the test bed's eyes and hands inside the guest.
 *
 * Runs in the test initramfs, reads one command per line from a serial port
 * (the host's scenario runner is on the other end) and answers each with one
 * JSON object on one line. Static, no libraries: it must work in a busybox
 * initramfs on any kernel the test bed boots.
 *
 * Commands:
 *   ping                      -> {"ok":true,"kernel":"..."}
 *   state                     -> memory state: MemTotal, zones, memory blocks,
 *                                virtio-mem devices and their drivers' sysfs
 *   meminfo                   -> MemTotal and MemFree only (cheap: the
 *                                benchmark polls it while a driver works)
 *   fill MIB SEED             -> start a pattern filler holding MIB MiB
 *   fill-status               -> pid, passes, corrupted bytes, alive/killed
 *   fill-stop                 -> stop the filler, final verification
 *   dmesg                     -> kernel log problems (WARNING, BUG, Oops, ...)
 *   health MIB                -> per-zone sizes, watermarks and reserves, and
 *                                whether a fresh MIB MiB allocation works
 *   pin MIB [LO HI]           -> MIB MiB of anonymous memory whose pages stay
 *                                referenced by pipes (vmsplice): they cannot
 *                                migrate until unpin; counts the pages whose
 *                                physical address is in [LO, HI) (hex)
 *   unpin                     -> close those pipes, free the memory
 *   log N                     -> the last N kernel log lines
 *   splat N                   -> N kernel log lines from just before the
 *                                first problem line (its call trace)
 *   sh COMMAND                -> run a shell command, its status and output
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define OUT_MAX (256 * 1024)

static char out[OUT_MAX];
static size_t out_len;
static int out_fd = 1;

static void put_raw(const char *s, size_t n)
{
	/* Keep one byte for the reply's closing newline; truncate the rest. */
	if (out_len + 1 >= OUT_MAX)
		return;
	if (n > OUT_MAX - 1 - out_len)
		n = OUT_MAX - 1 - out_len;
	memcpy(out + out_len, s, n);
	out_len += n;
}

static void put(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0)
		put_raw(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* A JSON string literal, escaped; non-printable bytes become \u00XX. */
static void put_str(const char *s, size_t n)
{
	size_t i;

	put_raw("\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char c = s[i];

		if (c == '"' || c == '\\') {
			char e[2] = { '\\', c };

			put_raw(e, 2);
		} else if (c == '\n') {
			put_raw("\\n", 2);
		} else if (c < 0x20 || c >= 0x7f) {
			put("\\u%04x", c);
		} else {
			put_raw((const char *)&c, 1);
		}
	}
	put_raw("\"", 1);
}

static void put_cstr(const char *s)
{
	put_str(s, strlen(s));
}

static void flush_reply(void)
{
	size_t off = 0;

	out[out_len++] = '\n';
	while (off < out_len) {
		ssize_t n = write(out_fd, out + off, out_len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += n;
	}
	out_len = 0;
}

static ssize_t read_file(const char *path, char *buf, size_t size)
{
	ssize_t n, total = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	while ((size_t)total < size - 1) {
		n = read(fd, buf + total, size - 1 - total);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		total += n;
	}
	close(fd);
	buf[total] = '\0';
	return total;
}

static long long meminfo_kb(const char *key)
{
	static char buf[8192];
	size_t klen = strlen(key);
	char *p;

	if (read_file("/proc/meminfo", buf, sizeof(buf)) < 0)
		return -1;
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, klen) && p[klen] == ':')
			return atoll(p + klen + 1);
	return -1;
}

/* Per-zone present/managed pages, summed over nodes, from /proc/zoneinfo. */
static void put_zones(void)
{
	static char buf[256 * 1024];
	const char *names[] = { "DMA", "DMA32", "Normal", "Movable", "Device" };
	long long present[5] = { 0 }, managed[5] = { 0 };
	int zone = -1, i, first = 1;
	char *line, *save;

	if (read_file("/proc/zoneinfo", buf, sizeof(buf)) < 0)
		return;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[32];
		long long v;

		if (sscanf(line, "Node %*d, zone %31s", name) == 1) {
			zone = -1;
			for (i = 0; i < 5; i++)
				if (!strcmp(name, names[i]))
					zone = i;
		} else if (zone >= 0 && sscanf(line, " present %lld", &v) == 1) {
			present[zone] += v;
		} else if (zone >= 0 && sscanf(line, " managed %lld", &v) == 1) {
			managed[zone] += v;
		}
	}
	put("\"zones\":{");
	for (i = 0; i < 5; i++) {
		put("%s\"%s\":{\"present_pages\":%lld,\"managed_pages\":%lld}", first ? "" : ",",
		    names[i], present[i], managed[i]);
		first = 0;
	}
	put("}");
}

/* Memory blocks: counts per state and, for online ones, per zone. */
static void put_blocks(void)
{
	const char *base = "/sys/devices/system/memory";
	long long online_zone[5] = { 0 }, online = 0, offline = 0, other = 0, total = 0;
	const char *zn[] = { "DMA", "DMA32", "Normal", "Movable", "none" };
	char path[512], buf[256], offl[8192] = "";
	unsigned long long bsize = 0;
	size_t offl_len = 0;
	struct dirent *de;
	DIR *d;
	int i;

	snprintf(path, sizeof(path), "%s/block_size_bytes", base);
	if (read_file(path, buf, sizeof(buf)) > 0)
		bsize = strtoull(buf, NULL, 16);
	d = opendir(base);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "memory", 6) || !isdigit((unsigned char)de->d_name[6]))
			continue;
		total++;
		snprintf(path, sizeof(path), "%s/%s/state", base, de->d_name);
		if (read_file(path, buf, sizeof(buf)) <= 0)
			continue;
		if (!strncmp(buf, "online", 6)) {
			online++;
			/* For an online block, valid_zones names the zone it is in. */
			snprintf(path, sizeof(path), "%s/%s/valid_zones", base, de->d_name);
			if (read_file(path, buf, sizeof(buf)) <= 0)
				continue;
			for (i = 0; i < 4; i++)
				if (!strncmp(buf, zn[i], strlen(zn[i])) &&
				    (buf[strlen(zn[i])] == '\n' || buf[strlen(zn[i])] == ' '))
					break;
			online_zone[i]++;
		} else if (!strncmp(buf, "offline", 7)) {
			offline++;
			if (offl_len + 16 < sizeof(offl))
				offl_len += snprintf(offl + offl_len, sizeof(offl) - offl_len,
						     "%s%s", offl_len ? "," : "", de->d_name + 6);
		} else {
			other++;
		}
	}
	closedir(d);
	put("\"memory_blocks\":{\"block_size\":%llu,\"total\":%lld,\"online\":%lld,"
	    "\"offline\":%lld,\"other\":%lld,\"offline_ids\":[%s],\"online_by_zone\":{",
	    bsize, total, online, offline, other, offl);
	for (i = 0; i < 5; i++)
		put("%s\"%s\":%lld", i ? "," : "", zn[i], online_zone[i]);
	put("}}");
}

/*
 * virtio-mem devices (virtio device id 0x0018): which driver is bound and
 * every readable attribute of the driver's own sysfs group, if it has one.
 */
static void put_virtio_mem(void)
{
	const char *base = "/sys/bus/virtio/devices";
	char path[512], buf[4096], link[256];
	struct dirent *de, *ae;
	int first = 1;
	DIR *d, *a;

	put("\"virtio_mem\":[");
	d = opendir(base);
	while (d && (de = readdir(d))) {
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s/device", base, de->d_name);
		if (read_file(path, buf, sizeof(buf)) <= 0 || strtoul(buf, NULL, 16) != 0x18)
			continue;
		snprintf(path, sizeof(path), "%s/%s/driver", base, de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = '\0';
		put("%s{\"dev\":", first ? "" : ",");
		put_cstr(de->d_name);
		put(",\"driver\":");
		put_cstr(n > 0 ? (strrchr(link, '/') ? strrchr(link, '/') + 1 : link) : "");
		put(",\"attrs\":{");
		snprintf(path, sizeof(path), "%s/%s/memplug", base, de->d_name);
		a = opendir(path);
		if (a) {
			int afirst = 1;

			while ((ae = readdir(a))) {
				char apath[1024];
				ssize_t len;

				if (ae->d_name[0] == '.')
					continue;
				snprintf(apath, sizeof(apath), "%s/%s", path, ae->d_name);
				len = read_file(apath, buf, sizeof(buf));
				if (len < 0)
					continue;
				while (len > 0 && buf[len - 1] == '\n')
					buf[--len] = '\0';
				put("%s", afirst ? "" : ",");
				put_cstr(ae->d_name);
				put(":");
				put_str(buf, len);
				afirst = 0;
			}
			closedir(a);
		}
		put("}}");
		first = 0;
	}
	if (d)
		closedir(d);
	put("]");
}

static void cmd_state(void)
{
	put("{\"ok\":true,\"memtotal_kb\":%lld,\"memfree_kb\":%lld,\"memavailable_kb\":%lld,",
	    meminfo_kb("MemTotal"), meminfo_kb("MemFree"), meminfo_kb("MemAvailable"));
	put_zones();
	put(",");
	put_blocks();
	put(",");
	put_virtio_mem();
	put("}");
}

/*
 * The filler: a child process holding MIB MiB of anonymous memory filled
 * with a pattern derived from the seed and each word's offset. It re-verifies
 * the whole area in a loop (and rewrites it with the next generation's
 * pattern, so every page keeps being touched and migrated pages are checked
 * after their move). Results live in a shared page so the agent can read
 * them even after the child was OOM-killed.
 */
struct fill_stats {
	volatile uint64_t passes;
	volatile uint64_t corrupted_bytes;
	volatile uint64_t bytes;
	volatile uint64_t first_bad_offset;
	volatile int ready;
};

static struct fill_stats *fill_stats;
static pid_t fill_pid;
static int fill_status; /* wait status once reaped */
static int fill_reaped;

static inline uint64_t pattern(uint64_t seed, uint64_t gen, uint64_t off)
{
	uint64_t x = seed ^ (off * 0x9e3779b97f4a7c15ull) ^ (gen << 32);

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 29;
	return x | 1; /* never zero: a zeroed page is always corruption */
}

static volatile sig_atomic_t fill_stop_req;

static void fill_on_term(int sig)
{
	(void)sig;
	fill_stop_req = 1;
}

static void fill_child(uint64_t mib, uint64_t seed)
{
	uint64_t words = mib * 1024 * 1024 / 8, gen = 0, i;
	uint64_t *mem =
		mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (mem == MAP_FAILED)
		_exit(3);
	for (i = 0; i < words; i++)
		mem[i] = pattern(seed, gen, i);
	fill_stats->bytes = mib << 20;
	fill_stats->ready = 1;
	for (;;) {
		int last = fill_stop_req;

		for (i = 0; i < words; i++) {
			uint64_t want = pattern(seed, gen, i), got = mem[i];

			if (got != want) {
				int b;

				for (b = 0; b < 8; b++)
					if (((got ^ want) >> (8 * b)) & 0xff)
						fill_stats->corrupted_bytes++;
				if (!fill_stats->first_bad_offset)
					fill_stats->first_bad_offset = i * 8 + 1;
			}
			mem[i] = pattern(seed, gen + 1, i);
		}
		gen++;
		fill_stats->passes++;
		if (last)
			_exit(0);
	}
}

static void fill_reap(int block)
{
	if (fill_pid > 0 && !fill_reaped &&
	    waitpid(fill_pid, &fill_status, block ? 0 : WNOHANG) == fill_pid)
		fill_reaped = 1;
}

static void put_fill_status(void)
{
	fill_reap(0);
	put("{\"ok\":true,\"pid\":%d,\"running\":%s,\"ready\":%d,\"passes\":%llu,\"bytes\":%llu,"
	    "\"corrupted_bytes\":%llu,\"first_bad_offset\":%lld,\"killed_by_signal\":%d,\"exit_code\":%d}",
	    fill_pid > 0 && !fill_reaped ? (int)fill_pid : 0,
	    fill_pid > 0 && !fill_reaped ? "true" : "false", fill_stats ? fill_stats->ready : 0,
	    (unsigned long long)(fill_stats ? fill_stats->passes : 0),
	    (unsigned long long)(fill_stats ? fill_stats->bytes : 0),
	    (unsigned long long)(fill_stats ? fill_stats->corrupted_bytes : 0),
	    (long long)(fill_stats ? (long long)fill_stats->first_bad_offset - 1 : -1),
	    fill_reaped && WIFSIGNALED(fill_status) ? WTERMSIG(fill_status) : 0,
	    fill_reaped && WIFEXITED(fill_status) ? WEXITSTATUS(fill_status) : -1);
}

static void cmd_fill(const char *args)
{
	unsigned long long mib = 0, seed = 1;

	if (sscanf(args, "%llu %llu", &mib, &seed) < 1 || !mib) {
		put("{\"ok\":false,\"error\":\"usage: fill MIB [SEED]\"}");
		return;
	}
	if (fill_pid > 0 && !fill_reaped) {
		put("{\"ok\":false,\"error\":\"filler already running\"}");
		return;
	}
	if (!fill_stats)
		fill_stats =
			mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memset((void *)fill_stats, 0, sizeof(*fill_stats));
	fill_reaped = 0;
	fill_stop_req = 0;
	signal(SIGTERM, fill_on_term); /* inherited: no window without it */
	fill_pid = fork();
	if (fill_pid == 0)
		fill_child(mib, seed);
	signal(SIGTERM, SIG_DFL);
	put_fill_status();
}

static void cmd_fill_stop(void)
{
	if (fill_pid > 0 && !fill_reaped) {
		/* The child finishes a last full verification pass, then exits. */
		kill(fill_pid, SIGTERM);
		fill_reap(1);
	}
	put_fill_status();
}

/* Kernel log records, from /dev/kmsg (non-blocking read of the whole ring). */
static int kmsg_each(void (*fn)(const char *msg, void *ctx), void *ctx)
{
	char rec[8192];
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, rec, sizeof(rec) - 1);
		char *msg;

		if (n < 0 && errno == EPIPE)
			continue; /* overwritten records: go on */
		if (n <= 0)
			break;
		rec[n] = '\0';
		msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		msg[strcspn(msg, "\n")] = '\0';
		fn(msg, ctx);
	}
	close(fd);
	return 0;
}

static const char *const bad_patterns[] = {
	"WARNING:",
	"BUG:",
	"BUG ",
	"Oops",
	"Kernel panic",
	"general protection fault",
	"possible circular locking",
	"possible recursive locking",
	"inconsistent lock state",
	"KASAN",
	"UBSAN",
	"Call Trace",
	"kernel BUG",
	"soft lockup",
	"hung_task",
	"blocked for more than",
	"Out of memory",
	"oom-kill",
	"page allocation failure",
	"Memory failure",
	"refcount_t",
	"list_add corruption",
	"list_del corruption",
};

static int is_problem(const char *msg)
{
	size_t i;

	for (i = 0; i < sizeof(bad_patterns) / sizeof(bad_patterns[0]); i++)
		if (strstr(msg, bad_patterns[i]))
			return 1;
	return 0;
}

struct scan_ctx {
	int count;
	int first;
	char prev[512]; /* the line before this one */
	char reason[512]; /* the line before the last "CPU: N PID: ..." */
};

static void scan_one(const char *msg, void *vctx)
{
	struct scan_ctx *ctx = vctx;
	char line[1100];

	/*
	 * A stack dump starts with "CPU: N PID: ..."; the line before it says
	 * why (an RCU stall's NMI backtrace, a blocked task, ...). A "Call
	 * Trace:" line names it, so that the report explains itself.
	 */
	if (!strncmp(msg, "CPU: ", 5) && strstr(msg, " PID: "))
		snprintf(ctx->reason, sizeof(ctx->reason), "%s", ctx->prev);
	if (is_problem(msg)) {
		if (ctx->count < 40) {
			put("%s", ctx->first ? "" : ",");
			if (strstr(msg, "Call Trace") && ctx->reason[0])
				snprintf(line, sizeof(line), "%s (after: %s)", msg, ctx->reason);
			else
				snprintf(line, sizeof(line), "%s", msg);
			put_cstr(line);
			ctx->first = 0;
		}
		ctx->count++;
	}
	snprintf(ctx->prev, sizeof(ctx->prev), "%s", msg);
}

static void cmd_dmesg(void)
{
	static struct scan_ctx ctx;

	memset(&ctx, 0, sizeof(ctx));
	ctx.first = 1;

	put("{\"ok\":true,\"problems\":[");
	kmsg_each(scan_one, &ctx);
	put("],\"problem_count\":%d}", ctx.count);
}

struct tail_ctx {
	char (*ring)[512];
	int n, cap;
};

static void tail_one(const char *msg, void *vctx)
{
	struct tail_ctx *ctx = vctx;

	snprintf(ctx->ring[ctx->n % ctx->cap], 512, "%s", msg);
	ctx->n++;
}

static void cmd_log(const char *args)
{
	static char ring[400][512];
	struct tail_ctx ctx = { ring, 0, 400 };
	int want = atoi(args), i, start;

	if (want <= 0 || want > ctx.cap)
		want = 50;
	kmsg_each(tail_one, &ctx);
	start = ctx.n > want ? ctx.n - want : 0;
	put("{\"ok\":true,\"lines\":[");
	for (i = start; i < ctx.n; i++) {
		put("%s", i == start ? "" : ",");
		put_cstr(ring[i % ctx.cap]);
	}
	put("]}");
}

/* The lines before the first problem give its context (a module's last words). */
#define SPLAT_BEFORE 3

struct splat_ctx {
	char before[SPLAT_BEFORE][512];
	int seen, want, sent;
};

static void splat_one(const char *msg, void *vctx)
{
	struct splat_ctx *ctx = vctx;
	int i, from;

	if (ctx->sent >= ctx->want)
		return;
	if (!ctx->sent && !is_problem(msg)) {
		snprintf(ctx->before[ctx->seen % SPLAT_BEFORE], 512, "%s", msg);
		ctx->seen++;
		return;
	}
	if (!ctx->sent) {
		from = ctx->seen > SPLAT_BEFORE ? ctx->seen - SPLAT_BEFORE : 0;
		for (i = from; i < ctx->seen; i++) {
			put("%s", ctx->sent ? "," : "");
			put_cstr(ctx->before[i % SPLAT_BEFORE]);
			ctx->sent++;
		}
	}
	put("%s", ctx->sent ? "," : "");
	put_cstr(msg);
	ctx->sent++;
}

static void cmd_splat(const char *args)
{
	struct splat_ctx ctx = { .want = atoi(args) };

	if (ctx.want <= 0 || ctx.want > 400)
		ctx.want = 80;
	put("{\"ok\":true,\"lines\":[");
	kmsg_each(splat_one, &ctx);
	put("]}");
}

static void cmd_sh(const char *command)
{
	static char buf[128 * 1024];
	size_t len = 0;
	FILE *p;
	int st;

	p = popen(command, "r");
	if (!p) {
		put("{\"ok\":false,\"error\":\"popen failed\"}");
		return;
	}
	for (;;) {
		size_t n = fread(buf + len, 1, sizeof(buf) - 1 - len, p);

		if (!n)
			break;
		len += n;
		if (len == sizeof(buf) - 1) {
			char sink[4096];

			while (fread(sink, 1, sizeof(sink), p))
				;
			break;
		}
	}
	st = pclose(p);
	put("{\"ok\":true,\"rc\":%d,\"out\":",
	    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	put_str(buf, len);
	put("}");
}

/*
 * Zone numbers for the health check: per node and zone, from /proc/zoneinfo,
 * as the kernel computes them (no sums: a bad reserve hides in one zone).
 */
static void put_zoneinfo(void)
{
	static char buf[256 * 1024];
	char *line, *save, name[32];
	int node, in_zone = 0, first = 1;
	long long v;

	if (read_file("/proc/zoneinfo", buf, sizeof(buf)) < 0)
		return;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (sscanf(line, "Node %d, zone %31s", &node, name) == 2) {
			put("%s{\"node\":%d,\"zone\":", in_zone ? "]}," : (first ? "" : ","), node);
			put_cstr(name);
			in_zone = 1;
			first = 0;
			continue;
		}
		if (!in_zone)
			continue;
		if (sscanf(line, " pages free %lld", &v) == 1) {
			put(",\"free\":%lld", v);
		} else if (strstr(line, "protection: (")) {
			char *p = strchr(line, '(') + 1, *end;
			int n = 0;

			put(",\"protection\":[");
			for (;;) {
				v = strtoll(p, &end, 10);
				if (end == p)
					break;
				put("%s%lld", n++ ? "," : "", v);
				p = end;
				while (*p == ',' || *p == ' ')
					p++;
			}
			/* the array closes with the zone */
			in_zone = 2;
		} else {
			static const char *const keys[] = { "min",     "low",	  "high",
							    "spanned", "present", "managed" };
			char key[16];
			size_t i;

			if (sscanf(line, " %15s %lld", key, &v) != 2 || line[0] != ' ')
				continue;
			/* watermarks and sizes are indented deeper than per-node stats */
			for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
				if (!strcmp(key, keys[i]))
					put(",\"%s\":%lld", key, v);
		}
	}
	if (in_zone == 2)
		put("]}");
	else if (in_zone)
		put(",\"protection\":[]}");
}

/*
 * Allocate @mib MiB in a child, write a pattern into every page and read it
 * back: what a fresh process asking for memory gets. The child's fate says
 * whether the guest can still serve it ("ok", "corrupt", "no-memory",
 * "killed:N" - 9 is the OOM killer's SIGKILL -, "timeout").
 */
static const char *alloc_check(long mib, long *ms)
{
	static char res[32];
	struct timespec t0, t1;
	int st, waited;
	pid_t pid;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = fork();
	if (pid < 0)
		return "fork-failed";
	if (pid == 0) {
		size_t len = (size_t)mib << 20, i;
		unsigned char *m =
			mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (m == MAP_FAILED)
			_exit(3);
		for (i = 0; i < len; i += 4096)
			m[i] = (unsigned char)(i >> 12) ^ 0x5a;
		for (i = 0; i < len; i += 4096)
			if (m[i] != ((unsigned char)(i >> 12) ^ 0x5a))
				_exit(2);
		_exit(0);
	}
	for (waited = 0; waited < 1200; waited++) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			break;
		usleep(100000);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	*ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	if (waited == 1200) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return "timeout";
	}
	if (WIFSIGNALED(st)) {
		snprintf(res, sizeof(res), "killed:%d", WTERMSIG(st));
		return res;
	}
	switch (WEXITSTATUS(st)) {
	case 0:
		return "ok";
	case 2:
		return "corrupt";
	case 3:
		return "no-memory";
	}
	return "failed";
}

/*
 * Pages that do not migrate: vmsplice() makes a pipe hold a reference on
 * each page it maps, and migration gives up on a page with references it
 * does not know. One pipe holds as many pages as it has slots.
 */
#define PIN_MAX_PIPES 1024
static int pin_fds[2 * PIN_MAX_PIPES];
static int pin_nfds;
static char *pin_mem;
static size_t pin_len;

static void unpin(void)
{
	while (pin_nfds)
		close(pin_fds[--pin_nfds]);
	if (pin_mem)
		munmap(pin_mem, pin_len);
	pin_mem = NULL;
	pin_len = 0;
}

/* pages of [mem, mem + len) whose physical address is in [lo, hi) */
static long pages_in_range(const char *mem, size_t len, uint64_t lo, uint64_t hi)
{
	long page = sysconf(_SC_PAGESIZE), n = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	size_t off;
	uint64_t e;

	if (fd < 0)
		return -1;
	for (off = 0; off < len; off += page) {
		if (pread(fd, &e, sizeof(e), (off_t)(((uintptr_t)mem + off) / page * sizeof(e))) !=
		    sizeof(e))
			break;
		if ((e >> 63) & 1) {
			uint64_t addr = (e & ((1ULL << 55) - 1)) * page;

			if (addr >= lo && addr < hi)
				n++;
		}
	}
	close(fd);
	return n;
}

static void cmd_pin(const char *args)
{
	unsigned long long mib = 0, lo = 0, hi = 0;
	size_t off = 0;
	long pinned = 0, page = sysconf(_SC_PAGESIZE);

	if (sscanf(args, "%llu %llx %llx", &mib, &lo, &hi) < 1 || !mib) {
		put("{\"ok\":false,\"error\":\"usage: pin MIB [LO HI]\"}");
		return;
	}
	if (pin_mem) {
		put("{\"ok\":false,\"error\":\"already pinned: unpin first\"}");
		return;
	}
	pin_len = (size_t)mib << 20;
	pin_mem = mmap(NULL, pin_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (pin_mem == MAP_FAILED) {
		pin_mem = NULL;
		put("{\"ok\":false,\"error\":\"mmap: %s\"}", strerror(errno));
		return;
	}
	for (off = 0; off < pin_len; off += page)
		pin_mem[off] = 1;
	off = 0;
	while (off < pin_len && pin_nfds < 2 * PIN_MAX_PIPES) {
		int p[2];
		ssize_t n;

		if (pipe2(p, O_CLOEXEC) < 0)
			break;
		pin_fds[pin_nfds++] = p[0];
		pin_fds[pin_nfds++] = p[1];
		fcntl(p[1], F_SETPIPE_SZ, 1 << 20); /* as many slots as it lets us */
		for (;;) {
			struct iovec iov = { pin_mem + off, pin_len - off };

			n = vmsplice(p[1], &iov, 1, SPLICE_F_NONBLOCK);
			if (n <= 0)
				break;
			off += n;
			pinned += n / page;
			if (off >= pin_len)
				break;
		}
	}
	if (off < pin_len) {
		put("{\"ok\":false,\"error\":\"pinned only %zu of %zu bytes: %s\"}", off, pin_len,
		    strerror(errno));
		unpin();
		return;
	}
	put("{\"ok\":true,\"pages\":%ld,\"in_range\":%ld}", pinned,
	    hi > lo ? pages_in_range(pin_mem, pin_len, lo, hi) : 0L);
}

static void cmd_health(const char *args)
{
	long mib = atol(args), ms = 0;
	const char *alloc = "skipped";

	if (mib > 0)
		alloc = alloc_check(mib, &ms);
	put("{\"ok\":true,\"memtotal_kb\":%lld,\"memfree_kb\":%lld,\"memavailable_kb\":%lld,"
	    "\"alloc_mib\":%ld,\"alloc\":\"%s\",\"alloc_ms\":%ld,\"zones\":[",
	    meminfo_kb("MemTotal"), meminfo_kb("MemFree"), meminfo_kb("MemAvailable"), mib, alloc,
	    ms);
	put_zoneinfo();
	put("]}");
}

static void handle(char *line)
{
	char *arg;
	struct utsname u;

	line[strcspn(line, "\r\n")] = '\0';
	arg = strchr(line, ' ');
	if (arg)
		*arg++ = '\0';
	else
		arg = line + strlen(line);

	if (!strcmp(line, "ping")) {
		uname(&u);
		put("{\"ok\":true,\"kernel\":");
		put_cstr(u.release);
		put("}");
	} else if (!strcmp(line, "meminfo")) {
		put("{\"ok\":true,\"memtotal_kb\":%lld,\"memfree_kb\":%lld}",
		    meminfo_kb("MemTotal"), meminfo_kb("MemFree"));
	} else if (!strcmp(line, "state")) {
		cmd_state();
	} else if (!strcmp(line, "fill")) {
		cmd_fill(arg);
	} else if (!strcmp(line, "fill-status")) {
		put_fill_status();
	} else if (!strcmp(line, "fill-stop")) {
		cmd_fill_stop();
	} else if (!strcmp(line, "dmesg")) {
		cmd_dmesg();
	} else if (!strcmp(line, "health")) {
		cmd_health(arg);
	} else if (!strcmp(line, "pin")) {
		cmd_pin(arg);
	} else if (!strcmp(line, "unpin")) {
		unpin();
		put("{\"ok\":true}");
	} else if (!strcmp(line, "log")) {
		cmd_log(arg);
	} else if (!strcmp(line, "splat")) {
		cmd_splat(arg);
	} else if (!strcmp(line, "sh")) {
		cmd_sh(arg);
	} else if (!line[0]) {
		return; /* empty line: nothing to answer */
	} else {
		put("{\"ok\":false,\"error\":\"unknown command\",\"command\":");
		put_cstr(line);
		put("}");
	}
	flush_reply();
}

int main(int argc, char **argv)
{
	static char line[8192];
	size_t len = 0;
	int fd = 0;

	if (argc > 1) {
		struct termios t;

		fd = open(argv[1], O_RDWR | O_NOCTTY);
		if (fd < 0) {
			perror(argv[1]);
			return 1;
		}
		if (!tcgetattr(fd, &t)) {
			cfmakeraw(&t);
			cfsetspeed(&t, B115200);
			tcsetattr(fd, TCSANOW, &t);
		}
	}
	out_fd = argc > 1 ? fd : 1;
	signal(SIGPIPE, SIG_IGN);
	/* Announce ourselves so the host knows the guest is up. */
	put("{\"ok\":true,\"event\":\"ready\"}");
	flush_reply();
	for (;;) {
		ssize_t n = read(fd, line + len, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (argc > 1) {
				usleep(100000);
				continue;
			}
			return 0;
		}
		if (line[len] == '\n' || len == sizeof(line) - 2) {
			line[len + 1] = '\0';
			handle(line);
			len = 0;
		} else {
			len++;
		}
	}
}
