/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memplugd's log: one line per event on stderr, which systemd sends to
 * the journal.  Under systemd (JOURNAL_STREAM names our stderr) each line
 * starts with its syslog priority, "<4>", as sd-daemon(3) describes, so
 * that journalctl -p warning finds the problems.  Lines are made printable
 * (they may quote a guest or QEMU) and never longer than LOG_MAX_LINE.
 */
#ifndef MEMPLUGD_LOG_H
#define MEMPLUGD_LOG_H

#include <syslog.h>

#define LOG_MAX_LINE 1024

/* Look at JOURNAL_STREAM once, at start. */
void log_init(void);

void __attribute__((format(printf, 2, 3))) log_line(int priority, const char *fmt, ...);

#endif
