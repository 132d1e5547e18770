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

#include "backend.h"
#include "guest.h"
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

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct options {
	const char *socket;
	const char *uri; /* -c: libvirt's connection URI */
	const char *domain; /* -D: libvirt domain */
	const char *device;
	const char *sysfs_root;
	int json;
	int wait;
	int config; /* resize --config */
	int timeout_given;
	unsigned int timeout_ms;
	unsigned int count;
	unsigned int qmp_timeout_ms;
	uint64_t size; /* resize SIZE */
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

void error_msg(const char *fmt, ...)
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
/* Is anybody acting on a request?  The VM's run state and the driver */

static const char *const driver_names[] = {
	[DRIVER_UNKNOWN] = "unknown",
	[DRIVER_READY] = "ready",
	[DRIVER_NONE] = "none",
	[DRIVER_FAILED] = "failed",
};

/*
 * The warnings of status (documented in memplugctl.1):
 *   vm-paused  the VM is not running: no guest can act on a request;
 *   no-driver  requested and plugged size differ and no guest driver has set
 *              the device up (or it failed): nothing acts on the request.
 */
static int warn_paused(const struct vm_state *vm)
{
	return vm->known && vm->active && !vm->running;
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

	/*
	 * Same member names as query-memory-devices, so scripts can use either;
	 * memdev and memaddr are left out when the backend cannot say (libvirt).
	 */
	json_object_set_new(obj, "id", json_string(info->id));
	if (info->known & VMEM_KNOWN_MEMDEV)
		json_object_set_new(obj, "memdev", json_string(info->memdev));
	json_object_set_new(obj, "node", json_integer(info->node));
	if (info->known & VMEM_KNOWN_MEMADDR)
		json_object_set_new(obj, "memaddr", json_integer((json_int_t)info->memaddr));
	json_object_set_new(obj, "block-size", json_integer((json_int_t)info->block_size));
	json_object_set_new(obj, "max-size", json_integer((json_int_t)info->max_size));
	json_object_set_new(obj, "requested-size", json_integer((json_int_t)info->requested_size));
	json_object_set_new(obj, "size", json_integer((json_int_t)info->size));
	/* Then what status adds; a member is left out when the backend cannot say. */
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
	if (info->known & VMEM_KNOWN_MEMDEV)
		printf("  memdev:          %s\n", memdev);
	printf("  node:            %" PRId64 "\n", info->node);
	printf("  block size:      %s (%" PRIu64 ")\n", format_size(info->block_size, a, sizeof(a)),
	       info->block_size);
	if (info->known & VMEM_KNOWN_MEMADDR)
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

static int show_device(struct backend *b, const struct options *opts, const struct vmem_info *info,
		       const struct vm_state *vm)
{
	enum driver_state driver;

	if (b->ops->driver(b, info->id, &driver))
		return -1;
	if (opts->json)
		print_vmem_json(info, vm, driver);
	else
		print_vmem_human(info, vm, driver);
	return 0;
}

static int cmd_status(struct backend *b, const struct options *opts)
{
	struct vmem_info info, *devs;
	struct vm_state vm;
	unsigned int shown = 0;
	int rc = EXIT_SUCCESS;
	int malformed;
	size_t i, n;

	if (opts->device) {
		if (b->ops->find_device(b, opts->device, &info) || b->ops->vm_state(b, &vm) ||
		    show_device(b, opts, &info, &vm))
			return EXIT_ERROR;
		return EXIT_SUCCESS;
	}
	if (b->ops->list_devices(b, &devs, &n, &malformed))
		return EXIT_ERROR;
	if (b->ops->vm_state(b, &vm)) {
		free(devs);
		return EXIT_ERROR;
	}
	for (i = 0; i < n; i++) {
		if (!opts->json && shown)
			putchar('\n');
		if (show_device(b, opts, &devs[i], &vm)) {
			rc = EXIT_ERROR;
			break;
		}
		shown++;
	}
	free(devs);
	if (malformed)
		rc = EXIT_ERROR;
	if (!rc && !shown) {
		error_msg("%s has no virtio-mem device", b->who);
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

/*
 * resize --wait: until device @dev has @target plugged or --timeout.  @stuck
 * ("" if nothing is known to be wrong) says why the guest may not act; the
 * last plugged size seen ends up in *@final.  Returns the exit status.
 */
static int wait_for_size(struct backend *be, const struct options *opts,
			 const struct vmem_info *dev, uint64_t target, const char *stuck,
			 uint64_t *final)
{
	const char *stays = opts->config ? be->request_stays_config : be->request_stays;
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
		 ERROR_PREFIX "interrupted: the requested size of %s stays %s %s\n", dev->id,
		 format_size(target, a, sizeof(a)), stays);
	interrupt_len = strlen(interrupt_msg);
	signal(SIGINT, on_fatal_signal);
	signal(SIGTERM, on_fatal_signal);

	p.last_print = p.t0 - PLAIN_PROGRESS_INTERVAL_MS;
	/* No query may hold us past --timeout, however slow the peer. */
	be->ops->set_limit(be, deadline);
	for (;;) {
		long long now = now_ms();
		struct size_event event;
		long long wake;
		int rc;

		if (size != target && now >= next_poll && now < deadline) {
			struct vmem_info cur;

			/* Events are rate limited by QEMU; polling sees every change. */
			rc = be->ops->find_device(be, dev->id, &cur);
			if (rc == BACKEND_TIMEOUT)
				continue; /* the deadline came first */
			if (rc)
				return EXIT_ERROR;
			if (cur.requested_size != target) {
				error_msg("requested size of %s was changed to %s by %s", dev->id,
					  format_size(cur.requested_size, a, sizeof(a)),
					  be->other_client);
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
				  "the request stays in effect %s",
				  opts->timeout_ms / 1000, opts->timeout_ms % 1000 / 100, dev->id,
				  format_size(size, a, sizeof(a)),
				  format_size(target, b, sizeof(b)), stuck, stays);
			return EXIT_TIMEOUT;
		}
		show_progress(&p, size, 0);
		wake = next_poll < deadline ? next_poll : deadline;
		rc = be->ops->next_event(be, (int)(wake > now ? wake - now : 0), &event);
		if (rc == BACKEND_OK) {
			/*
			 * Only a hint to poll now: an event may have been queued
			 * before our request and carry a stale size, so "reached"
			 * is only ever decided on a fresh query.
			 */
			if (!strcmp(event.id, dev->id))
				next_poll = 0;
		} else if (rc != BACKEND_TIMEOUT) {
			error_msg("%s", be->ops->error(be));
			return EXIT_ERROR;
		}
	}
}

/* One line of resize --json; @result: requested, reached or timeout. */
static void print_resize_json(const struct vmem_info *dev, uint64_t size, uint64_t plugged,
			      const char *result, json_t *warnings, long long elapsed_ms,
			      int config)
{
	json_t *obj = json_pack("{s:s, s:I, s:I, s:I, s:s}", "id", dev->id, "requested-size",
				(json_int_t)size, "previous-requested-size",
				(json_int_t)dev->requested_size, "size", (json_int_t)plugged,
				"result", result);

	if (obj && warnings)
		json_object_set(obj, "warnings", warnings);
	if (obj && elapsed_ms >= 0)
		json_object_set_new(obj, "elapsed-ms", json_integer(elapsed_ms));
	if (obj && config)
		json_object_set_new(obj, "config", json_true());
	print_json_line(obj);
	fflush(stdout);
}

static int cmd_resize(struct backend *be, const struct options *opts)
{
	char a[SIZE_STR_MAX], b[SIZE_STR_MAX];
	char stuck[160] = "";
	uint64_t size = opts->size, final = 0;
	enum driver_state driver;
	struct vmem_info dev;
	struct vm_state vm;
	json_t *warnings;
	long long t0;
	int rc;

	if (be->ops->find_device(be, opts->device, &dev))
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
	if (be->ops->vm_state(be, &vm) || be->ops->driver(be, dev.id, &driver))
		return EXIT_ERROR;
	/* A libvirt domain that is shut off has only its configuration. */
	if (vm.known && !vm.active && !opts->config) {
		error_msg("%s is not running (%s): only resize --config can change the size it "
			  "starts with",
			  be->who, vm.status);
		return EXIT_ERROR;
	}
	if (vm.known && !vm.active && opts->wait) {
		error_msg("%s is not running (%s): there is nothing to --wait for", be->who,
			  vm.status);
		return EXIT_ERROR;
	}
	if (be->ops->set_requested(be, &dev, size, opts->config ? BACKEND_SET_CONFIG : 0))
		return EXIT_ERROR;

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
		print_resize_json(&dev, size, dev.size, "requested", warnings, -1, opts->config);
	else
		printf("%s: requested size %s (%" PRIu64 "), plugged %s%s\n", dev.id,
		       format_size(size, a, sizeof(a)), size, format_size(dev.size, b, sizeof(b)),
		       !opts->config ? "" :
		       vm.active     ? "; also in the domain's configuration" :
				       "; in the domain's configuration");
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
	rc = wait_for_size(be, opts, &dev, size, stuck, &final);
	if (opts->json && rc != EXIT_ERROR)
		print_resize_json(&dev, size, final, rc == EXIT_REACHED ? "reached" : "timeout",
				  warnings, now_ms() - t0, opts->config);
	json_decref(warnings);
	return rc;
}

/* ------------------------------------------------------------------ */
/* watch */

static void print_size_event(const struct size_event *ev, int json)
{
	const char *id = ev->id[0] ? ev->id : "-";

	if (json) {
		print_json_line(json_pack("{s:s, s:s, s:I, s:s}", "timestamp", ev->when, "id", id,
					  "size", (json_int_t)ev->size, "qom-path", ev->qom_path));
	} else {
		char safe_id[128], human[SIZE_STR_MAX];

		snprintf(safe_id, sizeof(safe_id), "%s", id);
		sanitize_string(safe_id);
		printf("%s %s size=%" PRIu64 " (%s)\n", ev->when, safe_id, ev->size,
		       format_size(ev->size, human, sizeof(human)));
	}
	fflush(stdout);
}

static int cmd_watch(struct backend *be, const struct options *opts)
{
	long long deadline = opts->timeout_given ? now_ms() + opts->timeout_ms : -1;
	unsigned long dropped_reported = 0;
	unsigned int seen = 0;
	struct vmem_info dev;
	size_t nr_vmem;

	/* Fail early on a wrong -d, or no device, instead of waiting forever. */
	if (opts->device && be->ops->find_device(be, opts->device, &dev))
		return EXIT_ERROR;
	if (!opts->device) {
		if (be->ops->count_devices(be, &nr_vmem))
			return EXIT_ERROR;
		if (!nr_vmem) {
			error_msg("%s has no virtio-mem device: there is nothing to watch",
				  be->who);
			return EXIT_ERROR;
		}
	}
	for (;;) {
		struct size_event ev;
		int wait = -1;
		int rc;

		if (deadline >= 0) {
			long long left = deadline - now_ms();

			wait = left > 0 ? (int)left : 0;
		}
		/* A peer that never stops sending does not hold us past --timeout. */
		rc = deadline >= 0 && !wait ? BACKEND_TIMEOUT : be->ops->next_event(be, wait, &ev);
		/* events lost while other events flooded in: said before the end, too */
		if (rc != BACKEND_ERR && be->ops->dropped_events(be) != dropped_reported) {
			dropped_reported = be->ops->dropped_events(be);
			error_msg("warning: %lu events lost so far", dropped_reported);
		}
		if (rc == BACKEND_TIMEOUT) {
			if (opts->count && seen < opts->count) {
				error_msg("timed out after %u events, %u expected", seen,
					  opts->count);
				return EXIT_TIMEOUT;
			}
			return EXIT_SUCCESS;
		}
		if (rc) {
			error_msg("%s", be->ops->error(be));
			return EXIT_ERROR;
		}
		if (opts->device && strcmp(ev.id, opts->device))
			continue;
		print_size_event(&ev, opts->json);
		if (opts->count && ++seen >= opts->count)
			return EXIT_SUCCESS;
	}
}

/* ------------------------------------------------------------------ */
/* guest */

/* Inside the guest: sysfs only, no QMP. */
static int cmd_guest(struct backend *be, const struct options *opts)
{
	(void)be;
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
	CMD_OPT_CONFIG = 1 << 5,
};

static const char *const cmd_option_names[] = {
	"--json", "--sysfs-root", "--wait", "--count", "--timeout", "--config",
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
	/* runs it; be is NULL unless it talks to the VM's holder (vm) */
	int (*run)(struct backend *be, const struct options *opts);
	int vm;
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
		.globals = "[-s ADDR | -c URI -D DOMAIN] [-d ID]",
		.summary = "show the virtio-mem device(s)",
		.help = "Show id, memory backend, NUMA node, block size, region (address and maximum\n"
			"size), requested size and plugged size of the virtio-mem device given with\n"
			"-d, or of all virtio-mem devices; whether a guest driver has set it up\n"
			"and whether the VM runs.  Warnings: the VM is paused (the guest cannot\n"
			"act), or requested and plugged size differ and no guest driver answers.\n"
			"\n"
			"  -j, --json   one JSON object per device and line, with QMP's field names,\n"
			"               vm-status, vm-running, driver and warnings\n"
			"With libvirt (-c/-D): from the domain's live XML, or its configuration\n"
			"when it is shut off; memdev, memaddr and driver are not known there.\n",
		.options = CMD_OPT_JSON,
		.run = cmd_status,
		.vm = 1,
	},
	{
		.name = "resize",
		.args = "SIZE [--wait] [--timeout S] [--config] [--json]",
		.globals = "[-s ADDR | -c URI -D DOMAIN] [-d ID]",
		.summary = "set the requested size",
		.help = "Set the requested size of the virtio-mem device to SIZE (e.g. 4G, 512MiB,\n"
			"0).  SIZE must be a multiple of the device's block size and at most its\n"
			"maximum size; this is checked before anything is sent to QEMU.\n"
			"The new requested size stays in effect until it is changed again, also\n"
			"after a --wait that timed out or was interrupted; it does not survive a\n"
			"restart of QEMU, which starts from its command line's requested-size\n"
			"(with libvirt: of the domain's configuration, which --config changes).\n"
			"\n"
			"  -w, --wait        wait until the guest has plugged (or unplugged) SIZE,\n"
			"                    showing progress on stderr\n"
			"  -t, --timeout S   with --wait: give up after S seconds (default 120) and\n"
			"                    exit with status 2\n"
			"      --config      libvirt only: also set it in the domain's persistent\n"
			"                    configuration, so that it starts with SIZE (a domain\n"
			"                    that is shut off: only there)\n"
			"  -j, --json        a JSON object on stdout when the size is set, and one\n"
			"                    more when --wait ends (result reached or timeout)\n",
		.options = CMD_OPT_WAIT | CMD_OPT_TIMEOUT | CMD_OPT_CONFIG | CMD_OPT_JSON,
		.options_need_wait = CMD_OPT_TIMEOUT,
		.operands = resize_operands,
		.run = cmd_resize,
		.vm = 1,
	},
	{
		.name = "watch",
		.args = "[--json] [--count N] [--timeout S]",
		.globals = "[-s ADDR | -c URI -D DOMAIN] [-d ID]",
		.summary = "print size changes as they happen",
		.help = "Print a line \"<timestamp> <id> size=<bytes> (<size>)\" for every\n"
			"MEMORY_DEVICE_SIZE_CHANGE event (of device ID if -d is given).\n"
			"QEMU sends at most one such event per second and device.\n"
			"\n"
			"  -j, --json        print JSON objects, one per line\n"
			"  -n, --count N     exit 0 after N events\n"
			"  -t, --timeout S   stop after S seconds: exit 0, or 2 if --count was given\n"
			"                    and fewer than N events arrived\n"
			"Without -d it needs a virtio-mem device to watch: none is an error (exit 1).\n",
		.options = CMD_OPT_JSON | CMD_OPT_COUNT | CMD_OPT_TIMEOUT,
		.run = cmd_watch,
		.vm = 1,
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
	"Inspect and resize QEMU virtio-mem devices through a QMP socket or libvirt.\n"
	"\n"
	"Commands:\n";

static const char usage_tail[] =
	"\n"
	"Options:\n"
	"  -s, --socket ADDR     QMP socket: unix path, unix:PATH, HOST:PORT or\n"
	"                        tcp:HOST:PORT (default: $MEMPLUG_QMP)\n"
	"  -d, --device ID       virtio-mem device id (default: the only one)\n"
	"  -c, --connect URI     libvirt connection URI (default: libvirt's own, e.g.\n"
	"                        $LIBVIRT_DEFAULT_URI)\n"
	"  -D, --domain DOMAIN   the libvirt domain (name, UUID or id): through\n"
	"                        libvirt instead of QMP; -d ID is then the alias\n"
	"      --qmp-timeout S   give up on a silent QEMU (or libvirtd) after S seconds\n"
	"                        (default 5)\n"
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

enum { OPT_QMP_TIMEOUT = 256, OPT_SYSFS_ROOT, OPT_CONNECT, OPT_CONFIG, OPT_COUNT };

static const struct option long_options[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "device", required_argument, NULL, 'd' },
	{ "json", no_argument, NULL, 'j' },
	{ "wait", no_argument, NULL, 'w' },
	{ "timeout", required_argument, NULL, 't' },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "connect", required_argument, NULL, OPT_CONNECT },
	{ "domain", required_argument, NULL, 'D' },
	{ "config", no_argument, NULL, OPT_CONFIG },
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
	struct backend *be;
	struct qmp_addr addr;
	const char *command;
	unsigned int seen = 0; /* CMD_OPT_* given */
	int help = 0;
	int rc, opt;

	opterr = 0; /* we print our own, prefixed messages */
	while ((opt = getopt_long(argc, argv, ":s:d:D:jwt:c:n:hV", long_options, NULL)) != -1) {
		/* -c is virsh's: the connection URI; -n counts, as in head -n */
		if (opt == 'c')
			opt = OPT_CONNECT;
		else if (opt == 'n')
			opt = OPT_COUNT;
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
		case OPT_CONNECT:
			if (!*optarg)
				return usage_error("-c/--connect needs a libvirt URI");
			opts.uri = optarg;
			break;
		case 'D':
			if (!*optarg)
				return usage_error("-D/--domain needs a libvirt domain");
			opts.domain = optarg;
			break;
		case OPT_CONFIG:
			opts.config = 1;
			seen |= CMD_OPT_CONFIG;
			break;
		case OPT_COUNT:
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
	if (!cmd->vm)
		return cmd->run(NULL, &opts);

	if (opts.uri || opts.domain) {
		if (opts.socket)
			return usage_error("-s (QMP) and -c/-D (libvirt) exclude each other");
		if (!opts.domain)
			return usage_error("-c URI needs -D DOMAIN");
		be = libvirt_backend_open(opts.uri, opts.domain, (int)opts.qmp_timeout_ms);
	} else {
		if (opts.config)
			return usage_error("--config needs libvirt (-c URI -D DOMAIN): QEMU itself "
					   "keeps no configuration");
		if (!opts.socket) {
			opts.socket = getenv("MEMPLUG_QMP");
			from_env = " (from MEMPLUG_QMP)";
		}
		if (!opts.socket || !*opts.socket)
			return usage_error("no QMP socket given (use -s ADDR or set MEMPLUG_QMP)");
		if (parse_qmp_addr(opts.socket, &addr, &why))
			return usage_error("invalid QMP socket address '%s'%s: %s", opts.socket,
					   from_env, why);
		be = qmp_backend_open(&addr, (int)opts.qmp_timeout_ms);
	}
	if (!be)
		return EXIT_ERROR;
	rc = cmd->run(be, &opts);
	be->ops->close(be);
	return rc;
}
