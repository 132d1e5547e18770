/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memplugd's sizing policy, pure: given every VM's device (from QMP), its
 * configuration, its last valid report and when it came, the timers kept
 * between calls and the host budget, it returns each VM's new requested
 * size and a reason.  No I/O, no clock reads, no allocation: time is an
 * input, so that every rule is unit-tested (tests/memplugd/test_policy.c).
 * The rules are written down in docs/memplugd.md.
 */
#ifndef MEMPLUGD_POLICY_H
#define MEMPLUGD_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "report.h"

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

/* "Long ago": timers that never fired, far enough not to overflow. */
#define POL_NEVER (-(1LL << 60))

#define POL_REASON_MAX 256
/* At most this many VMs take part in one decision (the config's limit). */
#define POL_MAX_VMS 128

/* The numbers of the policy; pol_defaults() sets those of the docs. */
struct pol_params {
	unsigned int psi_threshold; /* grow above: psi_some, 1/100 % */
	unsigned int psi_idle; /* shrink only at or below: psi_some, 1/100 % */
	uint64_t psi_step; /* growth per PSI-only decision, bytes */
	long long psi_hold_ms; /* between two PSI-only growths */
	long long hold_down_ms; /* no shrink for this long after a growth */
	long long shrink_interval_ms; /* between two shrinks */
	unsigned int shrink_ratio; /* % of the excess per shrink */
	uint64_t shrink_max_step; /* bytes per shrink (and per reclaim) */
	unsigned int hysteresis; /* % of the buffer the excess must pass */
	long long settle_ms; /* no progress this long: the guest stopped short */
	long long retry_ms; /* after stopping short, no new try that way */
	long long report_timeout_ms; /* older reports: the VM is frozen */
};

void pol_defaults(struct pol_params *p);

/* Kept between calls, per VM; pol_state_init() at start. */
struct pol_state {
	long long last_grow_ms;
	long long last_psi_grow_ms;
	long long last_shrink_ms;
	long long grow_refused_ms; /* the guest stopped short growing */
	long long shrink_refused_ms; /* ... shrinking */
};

/*
 * At daemon start: as if it had just grown the VM, so that a restart
 * shrinks nothing before the hold-down and repeats no PSI growth before
 * the PSI hold (no jolt); growth on a shortage stays immediate.
 */
void pol_state_init(struct pol_state *st, long long now);

struct pol_vm {
	const char *name; /* for reasons ("taken from idle web1") */
	/* configuration; max 0 means the device's region size */
	uint64_t min, max, buffer;
	unsigned int weight; /* 1..10000 */
	/*
	 * Device, from QMP.  dev_ok 0: never known, the VM is left alone and
	 * counts for nothing.  online 0: known but not reachable now (QMP
	 * lost): the VM keeps its size and its last known sizes count in the
	 * budget.
	 */
	int dev_ok;
	int online;
	uint64_t block_size, region_size, requested, plugged;
	long long changed_ms; /* when requested or plugged last changed */
	/* the last valid report, and when it arrived (host time) */
	int have_report;
	struct report rep;
	long long rep_ms;
	struct pol_state st;
};

enum pol_action {
	POL_KEEP, /* requested stays */
	POL_GROW, /* pressure, or below min */
	POL_SHRINK, /* idle, slowly; or above max */
	POL_RECLAIM, /* budget contention: taken for VMs under pressure */
	POL_REALIGN, /* the guest stopped short: requested := plugged */
};

/* What a VM is doing, for the status view and change-only log lines. */
enum pol_vmstate {
	VS_UNKNOWN, /* no device information (QMP not connected) */
	VS_WAITING, /* the guest is plugging or unplugging */
	VS_FROZEN, /* no (fresh) report, or no driver: size held */
	VS_PRESSURE, /* under pressure */
	VS_LIMITED, /* under pressure, held by max or the budget */
	VS_IDLE, /* memory to give, shrinking slowly */
	VS_STEADY, /* inside its band */
	VS_HELD, /* would shrink, but a timer holds it */
};

struct pol_out {
	enum pol_action action;
	enum pol_vmstate state;
	uint64_t from; /* the requested size it was decided from */
	uint64_t to; /* new requested size; == from for POL_KEEP */
	/* why the decision; for POL_KEEP what holds the VM (may be empty) */
	char reason[POL_REASON_MAX];
	/* growth the budget held back (for the status) */
	uint64_t denied;
	/* what the VM could give at once if the budget needs it (0: not idle) */
	uint64_t reclaimable;
	/* a POL_GROW that PSI asked for (it starts the PSI hold) */
	int psi_grow;
};

struct pol_budget {
	int limited; /* 0: no budget, every VM gets what it wants */
	uint64_t bytes; /* sum of max(requested, plugged) over the VMs */
};

/*
 * Decide for @n (at most POL_MAX_VMS) VMs at @now.  @out[i] is VM i's decision.  Updates no
 * state: pol_commit() does, for each decision that was carried out.
 */
void pol_decide(const struct pol_params *p, long long now, const struct pol_vm *vms, size_t n,
		const struct pol_budget *budget, struct pol_out *out);

/*
 * The decision @o of VM @vm was carried out at @now: update its timers
 * (not its sizes: the caller knows what QEMU took).
 */
void pol_commit(struct pol_vm *vm, const struct pol_out *o, long long now);

/*
 * Another QMP client changed the requested size from @from to @to: its
 * direction counts as our own growth or shrink for the timers.
 */
void pol_external_change(struct pol_vm *vm, uint64_t from, uint64_t to, long long now);

const char *pol_action_name(enum pol_action a);
const char *pol_state_name(enum pol_vmstate s);

/* ---- helpers shared with budget.c (saturating, alignment) ---- */
/* Append to @o's reason, truncated, never overflowing. */
void __attribute__((format(printf, 2, 3))) pol_say(struct pol_out *o, const char *fmt, ...);
uint64_t pol_align_down(uint64_t v, uint64_t block);
uint64_t pol_align_up(uint64_t v, uint64_t block); /* saturates to align_down(MAX) */
uint64_t pol_sat_add(uint64_t a, uint64_t b);
uint64_t pol_sat_sub(uint64_t a, uint64_t b); /* 0 if b > a */
/* The bounds of @vm's requested size: [lo, hi], aligned, lo <= hi. */
void pol_bounds(const struct pol_vm *vm, uint64_t *lo, uint64_t *hi);
/* Memory @vm holds or will hold once @requested is plugged. */
uint64_t pol_usage(const struct pol_vm *vm, uint64_t requested);

/*
 * The budget phase (budget.c), after the per-VM rules: under contention
 * takes from idle VMs, shares by weight among VMs under pressure, and
 * reclaims from those above their weighted share.
 */
void pol_apply_budget(const struct pol_params *p, const struct pol_vm *vms, size_t n,
		      const struct pol_budget *budget, struct pol_out *out);

/*
 * Share @total among @n entries in proportion to @weight, none above its
 * @cap (weighted max-min fairness: what a capped entry does not take goes
 * to the others).  @out[i] <= @cap[i], sum of @out <= @total.
 */
void pol_waterfill(size_t n, const unsigned int *weight, const uint64_t *cap, uint64_t total,
		   uint64_t *out);

#endif
