// SPDX-License-Identifier: GPL-2.0-only
/*
 * memplugd's per-VM sizing rules, pure (see policy.h and, for the rules in
 * prose, docs/memplugd.md).  The budget phase is in budget.c.
 *
 * Every number from a report is untrusted: arithmetic on them saturates,
 * and a decision never leaves [min, max] of the configuration nor the
 * device's region, and always lands on a multiple of the block size.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy.h"

#define say pol_say

void pol_defaults(struct pol_params *p)
{
	p->psi_threshold = 1000; /* 10.00 % */
	p->psi_idle = 100; /* 1.00 % */
	p->psi_step = 256 * MiB;
	p->psi_hold_ms = 10000; /* the avg10 window */
	p->hold_down_ms = 30000;
	p->shrink_interval_ms = 10000;
	p->shrink_ratio = 25;
	p->shrink_max_step = GiB;
	p->hysteresis = 50;
	p->settle_ms = 10000;
	p->retry_ms = 120000;
	p->report_timeout_ms = 5000;
}

void pol_state_init(struct pol_state *st, long long now)
{
	st->last_grow_ms = now;
	st->last_psi_grow_ms = now;
	st->last_shrink_ms = POL_NEVER;
	st->grow_refused_ms = POL_NEVER;
	st->shrink_refused_ms = POL_NEVER;
}

uint64_t pol_align_down(uint64_t v, uint64_t block)
{
	return block ? v - v % block : v;
}

uint64_t pol_align_up(uint64_t v, uint64_t block)
{
	uint64_t down = pol_align_down(v, block);

	if (down == v)
		return v;
	if (down > UINT64_MAX - block)
		return down;
	return down + block;
}

uint64_t pol_sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t pol_sat_sub(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* @v * @pct / 100 without overflow. */
static uint64_t percent_of(uint64_t v, unsigned int pct)
{
	return (uint64_t)((unsigned __int128)v * pct / 100);
}

void pol_bounds(const struct pol_vm *vm, uint64_t *lo, uint64_t *hi)
{
	uint64_t max = vm->max ? min_u64(vm->max, vm->region_size) : vm->region_size;

	*hi = pol_align_down(max, vm->block_size);
	*lo = pol_align_up(vm->min, vm->block_size);
	if (*lo > *hi)
		*lo = *hi;
}

uint64_t pol_usage(const struct pol_vm *vm, uint64_t requested)
{
	return max_u64(requested, vm->plugged);
}

const char *pol_action_name(enum pol_action a)
{
	switch (a) {
	case POL_KEEP:
		return "keep";
	case POL_GROW:
		return "grow";
	case POL_SHRINK:
		return "shrink";
	case POL_RECLAIM:
		return "reclaim";
	case POL_REALIGN:
		return "realign";
	}
	return "?";
}

const char *pol_state_name(enum pol_vmstate s)
{
	switch (s) {
	case VS_UNKNOWN:
		return "unknown";
	case VS_WAITING:
		return "waiting";
	case VS_FROZEN:
		return "frozen";
	case VS_PRESSURE:
		return "pressure";
	case VS_LIMITED:
		return "limited";
	case VS_IDLE:
		return "idle";
	case VS_STEADY:
		return "steady";
	case VS_HELD:
		return "held";
	}
	return "?";
}

void pol_say(struct pol_out *o, const char *fmt, ...)
{
	size_t used = strlen(o->reason);
	va_list ap;

	if (used >= sizeof(o->reason) - 1)
		return;
	va_start(ap, fmt);
	vsnprintf(o->reason + used, sizeof(o->reason) - used, fmt, ap);
	va_end(ap);
}

/* MiB, rounded down: the unit of every log line. */
static unsigned long long mib(uint64_t bytes)
{
	return (unsigned long long)(bytes >> 20);
}

/* Seconds (one decimal) of a duration in ms, for reasons. */
#define SEC_FMT "%lld.%lld s"
#define SEC_ARG(ms) ((ms) < 0 ? 0 : (ms) / 1000), ((ms) < 0 ? 0 : (ms) % 1000 / 100)

#define PSI_FMT "%llu.%02llu%%"
#define PSI_ARG(v) (unsigned long long)((v) / 100), (unsigned long long)((v) % 100)

/* A threshold in 1/100 %: "10%" or "12.5%". */
static void say_pct(struct pol_out *o, unsigned int v)
{
	if (v % 100 == 0)
		say(o, "%u%%", v / 100);
	else if (v % 10 == 0)
		say(o, "%u.%u%%", v / 100, v % 100 / 10);
	else
		say(o, "%u.%02u%%", v / 100, v % 100);
}

static void keep(struct pol_out *o, enum pol_vmstate state)
{
	o->action = POL_KEEP;
	o->state = state;
}

/* The guest did not reach the requested size for settle_ms. */
static void stopped_short(const struct pol_params *p, const struct pol_vm *vm, struct pol_out *o)
{
	uint64_t r = vm->requested, plugged = vm->plugged;
	const struct report *rep = &vm->rep;
	uint64_t to = plugged;

	/* A plugged size off the block grid or outside the region is a lie. */
	to = pol_align_down(min_u64(to, vm->region_size), vm->block_size);
	keep(o, VS_HELD);
	if (to == r)
		return;
	o->action = POL_REALIGN;
	o->to = to;
	say(o, "guest stopped short %s at %llu MiB", plugged > r ? "shrinking" : "growing",
	    mib(plugged));
	if (vm->have_report) {
		if (plugged > r && rep->unplug == RG_BLOCKED)
			say(o, " (unplug=blocked)");
		else if (plugged < r && rep->growth == RG_BLOCKED)
			say(o, " (growth=blocked)");
		else if (report_has(rep, RK_DRIVER) && !strcmp(rep->driver, "none"))
			say(o, " (driver=none)");
	}
	say(o, ", no progress for " SEC_FMT "; requested set to plugged, no new %s for " SEC_FMT,
	    SEC_ARG(p->settle_ms), plugged > r ? "shrink" : "growth", SEC_ARG(p->retry_ms));
}

static void grow_reason(const struct pol_params *p, const struct pol_vm *vm, int avail_p, int psi_p,
			struct pol_out *o)
{
	if (avail_p)
		say(o, "available %llu MiB < buffer %llu MiB", mib(vm->rep.avail), mib(vm->buffer));
	if (avail_p && psi_p)
		say(o, ", ");
	if (psi_p) {
		say(o, "psi some " PSI_FMT " > ", PSI_ARG(vm->rep.psi_some));
		say_pct(o, p->psi_threshold);
	}
}

static void decide_one(const struct pol_params *p, long long now, const struct pol_vm *vm,
		       struct pol_out *o)
{
	const struct report *rep = &vm->rep;
	uint64_t r = vm->requested, b = vm->block_size, lo, hi;
	int fresh, has_psi, has_avail, psi_p, avail_p;
	uint64_t excess, hyst, amount;

	memset(o, 0, sizeof(*o));
	o->from = r;
	o->to = r;
	if (!vm->dev_ok || !b) {
		keep(o, VS_UNKNOWN);
		say(o, "no device information");
		return;
	}
	if (!vm->online) {
		keep(o, VS_UNKNOWN);
		say(o, "QMP not connected: size held");
		return;
	}
	pol_bounds(vm, &lo, &hi);

	/* 1. A change in progress: wait for the guest, or take its answer. */
	if (r != vm->plugged) {
		if (now - vm->changed_ms < p->settle_ms) {
			keep(o, VS_WAITING);
			say(o, "waiting for the guest: plugged %llu MiB, requested %llu MiB",
			    mib(vm->plugged), mib(r));
			return;
		}
		stopped_short(p, vm, o);
		return;
	}

	/* QEMU keeps sizes on the block grid: a peer that does not is not believed */
	if (r % b) {
		keep(o, VS_UNKNOWN);
		say(o, "QMP reports a size off the block grid: size held");
		return;
	}
	fresh = vm->have_report && now - vm->rep_ms <= p->report_timeout_ms;

	/* 2. The configuration's bounds. */
	if (r < lo) {
		o->action = POL_GROW;
		o->state = VS_PRESSURE;
		o->to = lo;
		say(o, "below min %llu MiB", mib(lo));
		return;
	}
	if (r > hi) {
		if (!fresh) {
			keep(o, VS_FROZEN);
			say(o, "above max %llu MiB, but no fresh report: size held", mib(hi));
			return;
		}
		o->action = POL_SHRINK;
		o->state = VS_IDLE;
		o->to = max_u64(hi, pol_align_down(pol_sat_sub(r, p->shrink_max_step), b));
		/* beyond the region only a lying peer can be: no step from there */
		o->to = min_u64(o->to, pol_align_down(vm->region_size, b));
		say(o, "above max %llu MiB", mib(hi));
		return;
	}

	/* 3. Without fresh data nothing moves. */
	if (!vm->have_report) {
		keep(o, VS_FROZEN);
		say(o, "no report yet: size held");
		return;
	}
	if (!fresh) {
		keep(o, VS_FROZEN);
		say(o, "no report for " SEC_FMT ": size held", SEC_ARG(now - vm->rep_ms));
		return;
	}
	if (report_has(rep, RK_DRIVER) && !strcmp(rep->driver, "none")) {
		keep(o, VS_FROZEN);
		say(o, "no driver in the guest (driver=none): size held");
		return;
	}
	has_psi = report_has(rep, RK_PSI_SOME);
	has_avail = report_has(rep, RK_AVAIL);
	if (!has_psi && !has_avail) {
		keep(o, VS_FROZEN);
		say(o, "reports carry neither psi_some nor avail: size held");
		return;
	}
	if (vm->rep_ms <= vm->changed_ms) {
		keep(o, VS_WAITING);
		say(o, "waiting for a report after the last change");
		return;
	}

	/* 4. Pressure: grow at once. */
	psi_p = has_psi && rep->psi_some > p->psi_threshold;
	avail_p = has_avail && rep->avail < vm->buffer;
	if (psi_p || avail_p) {
		uint64_t step = avail_p ? vm->buffer - rep->avail : 0;
		int psi_due = psi_p && now - vm->st.last_psi_grow_ms >= p->psi_hold_ms;

		keep(o, VS_PRESSURE);
		if (now - vm->st.grow_refused_ms < p->retry_ms) {
			o->state = VS_LIMITED;
			grow_reason(p, vm, avail_p, psi_p, o);
			say(o, ", but the guest stopped short growing: next try in " SEC_FMT,
			    SEC_ARG(vm->st.grow_refused_ms + p->retry_ms - now));
			return;
		}
		if (psi_due) {
			/* PSI lags (avg10): one PSI growth per psi_hold */
			o->psi_grow = 1;
			step = max_u64(step, p->psi_step);
		}
		if (!step) {
			grow_reason(p, vm, 0, 1, o);
			say(o, ": next PSI growth in " SEC_FMT,
			    SEC_ARG(vm->st.last_psi_grow_ms + p->psi_hold_ms - now));
			return;
		}
		step = max_u64(pol_align_up(step, b), b);
		o->to = min_u64(hi, pol_sat_add(r, step));
		if (o->to <= r) {
			o->to = r;
			o->state = VS_LIMITED;
			grow_reason(p, vm, avail_p, psi_p, o);
			say(o, ", but at max %llu MiB", mib(hi));
			return;
		}
		o->action = POL_GROW;
		grow_reason(p, vm, avail_p, psi_p, o);
		return;
	}

	/* 5. Idle: shrink slowly, only what the guest can give. */
	keep(o, VS_STEADY);
	excess = has_avail ? pol_sat_sub(rep->avail, vm->buffer) : 0;
	if (!has_avail || !report_has(rep, RK_GIVE) || rep->unplug == RG_BLOCKED ||
	    (has_psi && rep->psi_some > p->psi_idle) || !excess || r <= lo)
		return;
	amount = pol_align_down(min_u64(min_u64(rep->give, excess), r - lo), b);
	if (now - vm->st.last_grow_ms >= p->hold_down_ms &&
	    now - vm->st.shrink_refused_ms >= p->retry_ms)
		o->reclaimable = amount;
	hyst = percent_of(vm->buffer, p->hysteresis);
	if (excess <= hyst)
		return;
	o->state = VS_HELD;
	if (now - vm->st.last_grow_ms < p->hold_down_ms) {
		say(o,
		    "idle, but in the hold-down: " SEC_FMT " since the last growth (or start), "
		    "hold-down " SEC_FMT,
		    SEC_ARG(now - vm->st.last_grow_ms), SEC_ARG(p->hold_down_ms));
		return;
	}
	if (now - vm->st.shrink_refused_ms < p->retry_ms) {
		say(o, "idle, but the guest stopped short shrinking: next try in " SEC_FMT,
		    SEC_ARG(vm->st.shrink_refused_ms + p->retry_ms - now));
		return;
	}
	o->state = VS_IDLE;
	if (now - vm->st.last_shrink_ms < p->shrink_interval_ms)
		return;
	amount = min_u64(min_u64(percent_of(excess, p->shrink_ratio), p->shrink_max_step),
			 rep->give);
	amount = pol_align_down(amount, b);
	/*
	 * Big blocks: the paced amount rounds down to nothing although a
	 * whole block is spare (1 GiB blocks: any excess below 4 GiB).  Give
	 * one block when the guest keeps its buffer without it and can give
	 * it: the slowest pace the device allows.
	 */
	if (!amount && excess >= b && rep->give >= b)
		amount = b;
	o->to = max_u64(lo, r - min_u64(amount, r));
	if (o->to >= r) {
		o->to = r;
		return;
	}
	o->action = POL_SHRINK;
	say(o,
	    "idle: available %llu MiB > buffer %llu MiB + hysteresis %llu MiB, guest can give %llu MiB",
	    mib(rep->avail), mib(vm->buffer), mib(hyst), mib(rep->give));
	if (has_psi)
		say(o, ", psi some " PSI_FMT, PSI_ARG(rep->psi_some));
}

void pol_decide(const struct pol_params *p, long long now, const struct pol_vm *vms, size_t n,
		const struct pol_budget *budget, struct pol_out *out)
{
	size_t i;

	if (n > POL_MAX_VMS)
		n = POL_MAX_VMS;
	for (i = 0; i < n; i++)
		decide_one(p, now, &vms[i], &out[i]);
	pol_apply_budget(p, vms, n, budget, out);
}

void pol_commit(struct pol_vm *vm, const struct pol_out *o, long long now)
{
	switch (o->action) {
	case POL_KEEP:
		break;
	case POL_GROW:
		vm->st.last_grow_ms = now;
		if (o->psi_grow)
			vm->st.last_psi_grow_ms = now;
		break;
	case POL_SHRINK:
	case POL_RECLAIM:
		vm->st.last_shrink_ms = now;
		break;
	case POL_REALIGN:
		if (o->to > o->from)
			vm->st.shrink_refused_ms = now;
		else
			vm->st.grow_refused_ms = now;
		break;
	}
}

void pol_external_change(struct pol_vm *vm, uint64_t from, uint64_t to, long long now)
{
	if (to > from)
		vm->st.last_grow_ms = now;
	else if (to < from)
		vm->st.last_shrink_ms = now;
}
