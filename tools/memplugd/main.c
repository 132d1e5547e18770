// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplugd: sizes every VM's virtio-mem device to what its guest needs
 * (docs/memplugd.md).  One poll() loop: per tick it refreshes every VM's
 * device (QMP, or a libvirt domain through its worker thread: dev.h), runs
 * the pure policy (policy.c, budget.c) and carries out its decisions;
 * guest reports arrive in between and a report that shows pressure brings
 * the next decision forward.
 */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "dev.h"
#include "hostmem.h"
#include "log.h"
#include "policy.h"
#include "status.h"
#include "util.h"
#include "vm.h"

#ifndef MEMPLUG_VERSION
#define MEMPLUG_VERSION "unknown"
#endif

#define DEFAULT_CONFIG "/etc/memplugd.conf"
#define DEFAULT_RUNDIR "/run/memplugd"
/* Decisions brought forward by a report come at most this often. */
#define MIN_DECIDE_GAP_MS 100

static volatile sig_atomic_t stop_signal;
static volatile sig_atomic_t hup_signal;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		hup_signal = 1;
	else
		stop_signal = sig;
}

struct daemon {
	const char *config_path;
	const char *rundir;
	char **argv;
	struct mpd_config *cfg;
	struct vm *vms;
	unsigned int n;
	struct status_global g;
	char host_error[256]; /* logged once until it changes */
	char status_error[256];
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: memplugd [-c FILE] [-s DIR]           run the daemon (in the foreground)\n"
		"       memplugd --check-config [-c FILE]     check the configuration and exit\n"
		"       memplugd --status [--json] [-s DIR]   show what the daemon is doing\n"
		"\n"
		"Sizes every VM's virtio-mem device to what its guest needs, from the guest's\n"
		"reports (docs/memplugd.md).\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE    configuration (default " DEFAULT_CONFIG ")\n"
		"  -s, --runtime-dir DIR  where the status file is (default " DEFAULT_RUNDIR ")\n"
		"  -t, --check-config   parse the configuration, print a summary, exit\n"
		"      --status         print the running daemon's status\n"
		"      --json           with --status: one JSON object\n"
		"  -h, --help           this text\n"
		"  -V, --version        print the version\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop (requested sizes stay as they are); SIGHUP\n"
		"re-reads the configuration by restarting in place if it is valid.\n"
		"Exit status: 0 ok, 1 error, 3 (--status) daemon not running, 64 usage,\n"
		"78 configuration error.\n");
}

static unsigned long long mib(uint64_t bytes)
{
	return (unsigned long long)(bytes >> 20);
}

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* This tick's budget: the configured total, and/or what the host can spare. */
static void compute_budget(struct daemon *d, struct pol_budget *b)
{
	const struct mpd_config *cfg = d->cfg;
	uint64_t in_use = 0, avail = 0;
	const char *why = NULL;
	unsigned int i;

	for (i = 0; i < d->n; i++)
		if (d->vms[i].pv.dev_ok)
			in_use = pol_sat_add(in_use,
					     pol_usage(&d->vms[i].pv, d->vms[i].pv.requested));
	d->g.in_use = in_use;
	b->limited = 0;
	b->bytes = 0;
	if (cfg->has_budget) {
		b->limited = 1;
		b->bytes = cfg->budget;
	}
	if (!cfg->has_host_reserve) {
		d->g.budget_limited = b->limited;
		d->g.budget_bytes = b->bytes;
		return;
	}
	d->g.host_avail_ok = !hostmem_read(cfg->host_meminfo, &avail, &why);
	d->g.host_avail = avail;
	if (d->g.host_avail_ok) {
		uint64_t host = pol_sat_add(in_use, pol_sat_sub(avail, cfg->host_reserve));

		if (d->host_error[0])
			log_line(LOG_NOTICE, "memplugd: host memory readable again (%s)",
				 cfg->host_meminfo);
		d->host_error[0] = '\0';
		b->bytes = b->limited && b->bytes < host ? b->bytes : host;
	} else {
		/* what the host can spare is unknown: nobody grows */
		char err[sizeof(d->host_error)];

		snprintf(err, sizeof(err), "%s", why);
		if (strcmp(err, d->host_error))
			log_line(LOG_ERR,
				 "memplugd: cannot read MemAvailable from %s: %s; no VM grows",
				 cfg->host_meminfo, err);
		memcpy(d->host_error, err, sizeof(err));
		b->bytes = b->limited && b->bytes < in_use ? b->bytes : in_use;
	}
	b->limited = 1;
	d->g.budget_limited = 1;
	d->g.budget_bytes = b->bytes;
}

static void write_status(struct daemon *d, long long now)
{
	char err[sizeof(d->status_error)];

	if (!status_write(d->rundir, &d->g, d->vms, d->n, now)) {
		d->status_error[0] = '\0';
		return;
	}
	snprintf(err, sizeof(err), "%s", strerror(errno));
	if (strcmp(err, d->status_error))
		log_line(LOG_ERR, "memplugd: cannot write the status file in %s: %s", d->rundir,
			 err);
	memcpy(d->status_error, err, sizeof(err));
}

static void decide(struct daemon *d, long long now)
{
	static struct pol_vm pv[CFG_MAX_VMS];
	static struct pol_out out[CFG_MAX_VMS];
	struct pol_budget budget;
	unsigned int i;

	compute_budget(d, &budget);
	for (i = 0; i < d->n; i++)
		pv[i] = d->vms[i].pv;
	pol_decide(&d->cfg->pol, now, pv, d->n, &budget, out);
	for (i = 0; i < d->n; i++) {
		d->vms[i].out = out[i];
		vm_apply(&d->vms[i], now);
		vm_log_state(&d->vms[i]);
	}
	write_status(d, now);
}

/* SIGHUP: if the configuration is valid, start over in place (jolt-free). */
static void reload(struct daemon *d)
{
	struct mpd_config *cfg = malloc(sizeof(*cfg));
	char err[1024];
	unsigned int i;

	if (!cfg) {
		log_line(LOG_ERR, "memplugd: SIGHUP: out of memory; keeping the configuration");
		return;
	}
	if (config_load(d->config_path, cfg, err, sizeof(err))) {
		log_line(LOG_ERR, "memplugd: SIGHUP: %s; keeping the running configuration", err);
		free(cfg);
		return;
	}
	free(cfg);
	log_line(LOG_NOTICE, "memplugd: SIGHUP: configuration valid, restarting in place "
			     "(requested sizes are picked up again)");
	for (i = 0; i < d->n; i++)
		vm_close(&d->vms[i]);
	/* a worker blocked in libvirt goes with the old image */
	execv("/proc/self/exe", d->argv);
	log_line(LOG_ERR, "memplugd: SIGHUP: cannot restart: %s; stopping", strerror(errno));
	stop_signal = SIGTERM;
}

static void describe_budget(const struct mpd_config *cfg, char *buf, size_t len)
{
	if (cfg->has_budget && cfg->has_host_reserve)
		snprintf(buf, len, "budget %llu MiB, and leave %llu MiB of the host free",
			 mib(cfg->budget), mib(cfg->host_reserve));
	else if (cfg->has_budget)
		snprintf(buf, len, "budget %llu MiB", mib(cfg->budget));
	else if (cfg->has_host_reserve)
		snprintf(buf, len, "leave %llu MiB of the host free", mib(cfg->host_reserve));
	else
		snprintf(buf, len, "no budget");
}

/* Close every VM; a libvirt worker blocked in a call ends with the process. */
static void stop(struct daemon *d)
{
	unsigned int i;

	for (i = 0; i < d->n; i++)
		vm_close(&d->vms[i]);
	free(d->vms);
	d->vms = NULL;
	if (dev_libvirt_teardown()) {
		log_line(LOG_WARNING, "memplugd: a libvirt call still blocks (libvirtd does not "
				      "answer): not waiting for it");
		_exit(0);
	}
}

static int run(struct daemon *d)
{
	static struct pollfd pfd[2 * CFG_MAX_VMS];
	static int dslot[CFG_MAX_VMS], rslot[CFG_MAX_VMS];
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block, orig;
	long long now = now_ms(), next_tick = now, last_decide = POL_NEVER;
	int decide_soon = 0;
	char desc[160], err[512];
	unsigned int i;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &orig);
	sigdelset(&orig, SIGTERM);
	sigdelset(&orig, SIGINT);
	sigdelset(&orig, SIGHUP);

	if (mkdir(d->rundir, 0755) && errno != EEXIST) {
		log_line(LOG_ERR, "memplugd: cannot create %s: %s", d->rundir, strerror(errno));
		return 1;
	}
	d->vms = calloc(d->cfg->nr_vms, sizeof(*d->vms));
	if (!d->vms) {
		log_line(LOG_ERR, "memplugd: out of memory");
		return 1;
	}
	for (i = 0; i < d->cfg->nr_vms; i++) {
		if (vm_init(&d->vms[i], d->cfg, &d->cfg->vms[i], now, err, sizeof(err))) {
			log_line(LOG_ERR, "vm %s: %s", d->cfg->vms[i].name, err);
			stop(d);
			return 1;
		}
		d->n++;
	}
	d->g.version = MEMPLUG_VERSION;
	d->g.pid = getpid();
	d->g.started_ms = wall_ms();
	d->g.interval_ms = d->cfg->interval_ms;
	d->g.has_budget = d->cfg->has_budget;
	d->g.budget_total = d->cfg->budget;
	d->g.has_host_reserve = d->cfg->has_host_reserve;
	d->g.host_reserve = d->cfg->host_reserve;
	describe_budget(d->cfg, desc, sizeof(desc));
	log_line(LOG_NOTICE, "memplugd %s: %u VM%s, %s, every %u ms; status in %s/" STATUS_FILE,
		 MEMPLUG_VERSION, d->n, d->n == 1 ? "" : "s", desc, d->cfg->interval_ms, d->rundir);

	while (!stop_signal) {
		struct timespec ts;
		long long timeout;
		int nfds = 0, rc;

		if (hup_signal) {
			hup_signal = 0;
			reload(d);
			continue;
		}
		now = now_ms();
		if (now >= next_tick) {
			for (i = 0; i < d->n; i++)
				vm_maintain(&d->vms[i], now);
			decide(d, now);
			last_decide = now;
			decide_soon = 0;
			next_tick += d->cfg->interval_ms;
			if (next_tick <= now)
				next_tick = now + d->cfg->interval_ms;
		} else if (decide_soon && now - last_decide >= MIN_DECIDE_GAP_MS) {
			for (i = 0; i < d->n; i++)
				vm_refresh_if_due(&d->vms[i], now);
			decide(d, now);
			last_decide = now;
			decide_soon = 0;
		}

		timeout = next_tick - now;
		if (decide_soon && last_decide + MIN_DECIDE_GAP_MS - now < timeout)
			timeout = last_decide + MIN_DECIDE_GAP_MS - now;
		for (i = 0; i < d->n; i++) {
			long long due = vm_next_due(&d->vms[i], now) - now;

			nfds += vm_pollfds(&d->vms[i], now, pfd + nfds, nfds, &dslot[i], &rslot[i]);
			if (due < timeout)
				timeout = due;
		}
		if (timeout < 0)
			timeout = 0;
		ts.tv_sec = timeout / 1000;
		ts.tv_nsec = timeout % 1000 * 1000000;
		rc = ppoll(pfd, (nfds_t)nfds, &ts, &orig);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			log_line(LOG_ERR, "memplugd: poll: %s", strerror(errno));
			return 1;
		}
		now = now_ms();
		for (i = 0; i < d->n && rc > 0; i++) {
			if (dslot[i] >= 0)
				vm_on_dev(&d->vms[i], pfd[dslot[i]].revents, now, next_tick);
			if (rslot[i] >= 0 && vm_on_report(&d->vms[i], pfd[rslot[i]].revents, now))
				decide_soon = 1;
			if (vm_wants_decision(&d->vms[i]))
				decide_soon = 1;
		}
	}
	log_line(LOG_NOTICE, "memplugd: stopping (%s); requested sizes stay as they are",
		 strsignal(stop_signal));
	status_remove(d->rundir);
	stop(d);
	return 0;
}

static void print_config(const struct mpd_config *cfg, const char *path)
{
	char desc[160];
	unsigned int i;

	describe_budget(cfg, desc, sizeof(desc));
	printf("%s: valid: %u VM%s, %s, every %u ms\n", path, cfg->nr_vms,
	       cfg->nr_vms == 1 ? "" : "s", desc, cfg->interval_ms);
	for (i = 0; i < cfg->nr_vms; i++) {
		const struct vm_config *vm = &cfg->vms[i];

		if (vm->kind == VM_LIBVIRT)
			printf("vm %s: libvirt %s domain %s, report %s, alias %s, min %llu MiB, max ",
			       vm->name, vm->libvirt, vm->domain, vm->report,
			       vm->device[0] ? vm->device : "(the only one)", mib(vm->min));
		else
			printf("vm %s: qmp %s, report %s, device %s, min %llu MiB, max ", vm->name,
			       vm->qmp_str, vm->report,
			       vm->device[0] ? vm->device : "(the only one)", mib(vm->min));
		if (vm->max)
			printf("%llu MiB", mib(vm->max));
		else
			printf("(region)");
		printf(", buffer %llu MiB, weight %u\n", mib(vm->buffer), vm->weight);
	}
}

int main(int argc, char **argv)
{
	enum { OPT_STATUS = 256, OPT_JSON };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "runtime-dir", required_argument, NULL, 's' },
		{ "check-config", no_argument, NULL, 't' },
		{ "status", no_argument, NULL, OPT_STATUS },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon d = { .config_path = DEFAULT_CONFIG, .rundir = DEFAULT_RUNDIR, .argv = argv };
	int check = 0, status = 0, json = 0, c, rc;
	char err[1024];

	log_init();
	config_libvirt_support = dev_libvirt_supported;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:s:thV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			d.config_path = optarg;
			break;
		case 's':
			d.rundir = optarg;
			break;
		case 't':
			check = 1;
			break;
		case OPT_STATUS:
			status = 1;
			break;
		case OPT_JSON:
			json = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("memplugd %s\n", MEMPLUG_VERSION);
			return 0;
		case ':':
			fprintf(stderr, "memplugd: option '%s' needs an argument (see --help)\n",
				argv[optind - 1]);
			return EX_USAGE;
		default:
			fprintf(stderr, "memplugd: unknown option '%s' (see --help)\n",
				argv[optind - 1]);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "memplugd: unexpected argument '%s' (see --help)\n", argv[optind]);
		return EX_USAGE;
	}
	if (json && !status) {
		fprintf(stderr, "memplugd: --json only goes with --status (see --help)\n");
		return EX_USAGE;
	}
	if (status && check) {
		fprintf(stderr, "memplugd: --status and --check-config exclude each other\n");
		return EX_USAGE;
	}
	if (!d.rundir[0] || strlen(d.rundir) > 3000) {
		fprintf(stderr, "memplugd: invalid runtime directory\n");
		return EX_USAGE;
	}
	if (status)
		return status_show(d.rundir, json);

	d.cfg = malloc(sizeof(*d.cfg));
	if (!d.cfg) {
		fprintf(stderr, "memplugd: out of memory\n");
		return 1;
	}
	if (config_load(d.config_path, d.cfg, err, sizeof(err))) {
		fprintf(stderr, "memplugd: %s\n", err);
		free(d.cfg);
		return EX_CONFIG;
	}
	if (check) {
		print_config(d.cfg, d.config_path);
		free(d.cfg);
		return 0;
	}
	rc = run(&d);
	free(d.cfg);
	return rc;
}
