/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * One VM as memplugd sees it: its device backend (dev.h: QEMU's QMP, or a
 * libvirt domain), its virtio-mem device, its report channel (memplugd is
 * the client of QEMU's chardev socket) and what the policy keeps about it.
 * Nothing here blocks for longer than the QMP timeout (libvirt is called
 * in a worker thread only); lost connections come back with exponential
 * backoff.
 */
#ifndef MEMPLUGD_VM_H
#define MEMPLUGD_VM_H

#include <poll.h>

#include "config.h"
#include "dev.h"
#include "policy.h"
#include "report.h"

/*
 * A connection that comes back after a backoff.  Its errors are logged
 * when they change, and the same one again at most once a minute: a link
 * that flaps does not flood the journal.
 */
struct link {
	int up;
	long long next_try; /* now_ms() of the next attempt */
	unsigned int backoff_ms;
	long long up_since; /* now_ms() when it last came up */
	char error[256]; /* the last error */
	long long error_logged_ms;
	int down_logged; /* an error was logged since the link was last up */
};

struct decision {
	int valid;
	enum pol_action action;
	uint64_t from, to;
	long long at_ms;
	char reason[POL_REASON_MAX];
};

struct vm {
	const struct mpd_config *dcfg;
	const struct vm_config *cfg;

	struct dev *dev; /* the device backend */
	struct link dev_link;
	char dev_id[128]; /* the device's id (QEMU) or alias (libvirt), once found */
	unsigned long long dev_failures; /* connections lost */
	uint64_t known_requested; /* the last requested size we saw or set */
	/* a set_requested() under way: the decision it carries out */
	struct pol_out pending;
	uint64_t pending_from;
	long long pending_ms;
	/* the last refused size: logged again only when it changes, or after a minute */
	char refused[256];
	long long refused_ms;

	int rep_fd;
	struct link rep_link;
	struct report_reader rd;
	unsigned long long rep_connects;
	/* invalid / rate-limited lines: logged at most once a minute */
	unsigned long long logged_invalid, logged_limited;
	long long invalid_log_ms;

	/* the policy's view and its last output */
	struct pol_vm pv;
	struct pol_out out;
	int shown; /* a "frozen" or "limited" line is the last word on the VM */
	enum pol_vmstate shown_state;
	struct decision last;
	unsigned long long decisions;
};

/* 0, or -1 with @err set (the backend could not be set up). */
int vm_init(struct vm *vm, const struct mpd_config *dcfg, const struct vm_config *cfg,
	    long long now, char *err, size_t err_len);
void vm_close(struct vm *vm);

/*
 * Reconnect what is down and due, refresh the device's sizes (one QMP
 * query, or a request to the libvirt worker), take pending events.  Called
 * once per tick.
 */
void vm_maintain(struct vm *vm, long long now);

/* Query the device again if an event asked for it; 1 if it did. */
int vm_refresh_if_due(struct vm *vm, long long now);

/* An event changed the device: decide soon. */
int vm_wants_decision(const struct vm *vm);

/*
 * Add this VM's fds to @pfd (room for 2); returns how many.  *@dev_slot
 * and *@rep_slot get their indices in @pfd, or -1.
 */
int vm_pollfds(struct vm *vm, long long now, struct pollfd *pfd, int base, int *dev_slot,
	       int *rep_slot);

/* The earliest time something of this VM is due (reconnect, refill). */
long long vm_next_due(const struct vm *vm, long long now);

/* The backend's fd (QMP events, libvirt results) is ready. */
void vm_on_dev(struct vm *vm, short revents, long long now, long long next_tick);
/* Returns 1 if a valid report came that shows pressure (decide soon). */
int vm_on_report(struct vm *vm, short revents, long long now);

/* Carry out the policy's decision vm->out; logs one line. */
void vm_apply(struct vm *vm, long long now);

/*
 * Log why the VM is held when it becomes frozen or limited (once, until
 * something else happened), and when it is no longer frozen.
 */
void vm_log_state(struct vm *vm);

#endif
