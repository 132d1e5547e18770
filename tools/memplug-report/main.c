// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplug-report: report the guest's memory state to the host once per
 * interval, one line on the virtio-serial port org.memplug.report.0
 * (docs/autosize.md). This file: options, the loop, signals, logging.
 *
 * Errors go to stderr once per condition (a source that cannot be read,
 * the port missing, the host not reading), not once per report; the end
 * of an output problem is logged once too.
 */
#define _GNU_SOURCE /* ppoll() */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "report.h"

#ifndef MEMPLUG_VERSION
#define MEMPLUG_VERSION "unknown"
#endif
#define EXIT_USAGE 64

static volatile sig_atomic_t stop;
static bool once; /* -1: one report, no retries */

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* one line on stderr, in one write (a line of the journal or of /dev/kmsg) */
static void logmsg(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "memplug-report: ");

	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

static const char *why(int err)
{
	return err == SAMPLE_MALFORMED ? "not what the kernel writes" : strerror(err);
}

/* The conditions logged: each source, then the output's. */
enum { LC_OPEN = SRC_NUM, LC_WRITE, LC_DROPPED, LC_NUM };
static int logged[LC_NUM]; /* the error last logged, 0: none */

static bool log_once(int cond, int err)
{
	if (logged[cond] == err)
		return false;
	logged[cond] = err;
	return true;
}

static void log_sample(const struct sample_errors *e)
{
	int s;

	for (s = 0; s < SRC_NUM; s++) {
		if (e->err[s] && log_once(s, e->err[s]))
			logmsg("%s: %s; its keys are left out", e->path[s], why(e->err[s]));
		else if (!e->err[s])
			logged[s] = 0;
	}
}

static void log_output(const struct output *o, enum out_result res, int err)
{
	switch (res) {
	case OUT_OK:
		if (logged[LC_OPEN] || logged[LC_WRITE] || logged[LC_DROPPED])
			logmsg("%s: writing reports again", o->path);
		logged[LC_OPEN] = logged[LC_WRITE] = logged[LC_DROPPED] = 0;
		break;
	case OUT_DROPPED:
		if (log_once(LC_DROPPED, EAGAIN))
			logmsg("%s: not writable (is the host reading?); %s", o->path,
			       once ? "the report was not written" : "reports dropped until it is");
		break;
	case OUT_OPEN_FAILED:
		if (log_once(LC_OPEN, err))
			logmsg("cannot open %s: %s%s", o->path, strerror(err),
			       once ? "" : "; trying again");
		break;
	case OUT_WRITE_FAILED:
		if (log_once(LC_WRITE, err))
			logmsg("writing to %s: %s; opening it again", o->path, strerror(err));
		break;
	case OUT_FATAL:
		logmsg("writing to standard output: %s", strerror(err));
		break;
	case OUT_WAITING:
		break;
	}
}

/* Sleep until t (monotonic ms) or a stop signal, whichever comes first. */
static void sleep_until(long long t, const sigset_t *stopsigs)
{
	sigset_t old;
	long long left;

	/* stop is read with the signals blocked; ppoll() unblocks them */
	sigprocmask(SIG_BLOCK, stopsigs, &old);
	while (!stop && (left = t - now_ms()) > 0) {
		struct timespec ts = { left / 1000, left % 1000 * 1000000 };

		ppoll(NULL, 0, &ts, &old);
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
}

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: memplug-report [-i MS] [-o PATH] [-r ROOT] [-1] [-h]\n"
		"Report the guest's memory state to the host, one line per interval\n"
		"(memplug-report/1, docs/autosize.md). memplug %s.\n"
		"\n"
		"  -i MS    interval in milliseconds, 100..60000 (default 1000)\n"
		"  -o PATH  the port, a FIFO or an existing file; '-' is standard output\n"
		"           (default " DEFAULT_PORT ")\n"
		"  -r ROOT  read ROOT/proc and ROOT/sys instead of /proc and /sys\n"
		"  -1       one report, then exit (1 if it could not be written)\n"
		"  -h       this help\n",
		MEMPLUG_VERSION);
}

int main(int argc, char **argv)
{
	const char *path = DEFAULT_PORT, *root = "", *end;
	char line[REPORT_LINE_MAX + 1];
	struct sigaction sa = { .sa_handler = on_signal };
	struct sample_errors errs;
	struct output out;
	struct report r;
	sigset_t stopsigs;
	uint64_t interval = 1000, seq;
	long long next;
	int c, rc = 0;

	opterr = 0; /* one line of our own instead */
	while ((c = getopt(argc, argv, ":i:o:r:1h")) != -1) {
		switch (c) {
		case 'i':
			if (parse_u64(optarg, &end, &interval) || *end || interval < 100 ||
			    interval > 60000) {
				logmsg("invalid interval '%s' (100..60000 ms)", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'o':
			path = optarg;
			break;
		case 'r':
			root = optarg;
			break;
		case '1':
			once = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			logmsg("option -%c needs an argument (see -h)", optopt);
			return EXIT_USAGE;
		default:
			logmsg("unknown option -%c (see -h)", optopt);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		logmsg("unexpected argument '%s' (see -h)", argv[optind]);
		return EXIT_USAGE;
	}
	if (!*path) {
		logmsg("-o needs a path or '-'");
		return EXIT_USAGE;
	}
	/* no SA_RESTART: a stop signal ends a write or a sleep at once */
	sigemptyset(&stopsigs);
	sigaddset(&stopsigs, SIGTERM);
	sigaddset(&stopsigs, SIGINT);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* a FIFO without reader: EPIPE, not death */

	output_init(&out, path);
	next = now_ms();
	for (seq = 0; !stop; seq++) {
		enum out_result res;
		int len, err;

		sample(root, &r, &errs);
		report_set(&r, RK_SEQ, seq);
		log_sample(&errs);
		len = report_format(&r, line, sizeof(line));
		if (len < 0) { /* cannot happen: the words are ours */
			logmsg("report %llu cannot be formatted", (unsigned long long)seq);
			rc = 1;
			break;
		}
		res = output_write(&out, line, (size_t)len, now_ms(), &err);
		log_output(&out, res, err);
		if (res == OUT_FATAL || once) {
			rc = res != OUT_OK;
			break;
		}
		/* fell behind by more than an interval (suspend): start afresh */
		next += (long long)interval;
		if (next <= now_ms())
			next = now_ms() + (long long)interval;
		sleep_until(next, &stopsigs);
	}
	output_close(&out);
	sample_free();
	return rc;
}
