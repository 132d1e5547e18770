// SPDX-License-Identifier: GPL-2.0-only
/*
 * The budget phase of memplugd's policy, pure (see policy.h,
 * docs/memplugd.md "Budget").
 *
 * Two ways of counting a VM's memory:
 *  - its target: the requested size decided for it, what it will hold once
 *    the guest has done as asked; the shares are computed on targets;
 *  - its usage: max(requested, plugged), what it may hold before the guest
 *    has answered.  Growth is granted only while the sum of usages stays
 *    within the budget, so memplugd never asks for memory that is not
 *    free yet: memory taken from one VM goes to another once the first
 *    guest has unplugged it (a tick later).
 */
#include <stdio.h>
#include <string.h>

#include "policy.h"

void pol_waterfill(size_t n, const unsigned int *weight, const uint64_t *cap, uint64_t total,
		   uint64_t *out)
{
	unsigned char active[POL_MAX_VMS], capped[POL_MAX_VMS];
	uint64_t remaining = total;
	size_t i;

	if (n > POL_MAX_VMS)
		n = POL_MAX_VMS;
	for (i = 0; i < n; i++) {
		out[i] = 0;
		active[i] = cap[i] > 0 && weight[i] > 0;
	}
	for (;;) {
		unsigned long long w = 0;
		int any = 0;

		for (i = 0; i < n; i++)
			if (active[i])
				w += weight[i];
		if (!w || !remaining)
			return;
		/* Entries whose share covers their cap take only their cap... */
		for (i = 0; i < n; i++) {
			capped[i] = 0;
			if (active[i] &&
			    cap[i] - out[i] <=
				    (uint64_t)((unsigned __int128)remaining * weight[i] / w)) {
				capped[i] = 1;
				any = 1;
			}
		}
		if (any) {
			for (i = 0; i < n; i++) {
				if (!capped[i])
					continue;
				remaining -= cap[i] - out[i];
				out[i] = cap[i];
				active[i] = 0;
			}
			continue; /* ... and the others share the rest */
		}
		for (i = 0; i < n; i++) {
			uint64_t share;

			if (!active[i])
				continue;
			share = (uint64_t)((unsigned __int128)remaining * weight[i] / w);
			out[i] += share;
		}
		return;
	}
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static unsigned long long mib(uint64_t bytes)
{
	return (unsigned long long)(bytes >> 20);
}

/* Does VM @i claim pressure (growing, or held while under pressure)? */
static int claims_pressure(const struct pol_out *o)
{
	return (o->action == POL_GROW || o->action == POL_KEEP) &&
	       (o->state == VS_PRESSURE || o->state == VS_LIMITED);
}

/* "web2" or "web2 and 3 more": the VMs under pressure, for reasons. */
static void name_growers(const struct pol_vm *vms, const struct pol_out *out, size_t n, char *buf,
			 size_t len)
{
	size_t i, count = 0;
	const char *first = NULL;

	for (i = 0; i < n; i++) {
		if (!vms[i].dev_ok || !claims_pressure(&out[i]))
			continue;
		if (!first)
			first = vms[i].name ? vms[i].name : "?";
		count++;
	}
	if (!first)
		snprintf(buf, len, "nobody");
	else if (count == 1)
		snprintf(buf, len, "%s", first);
	else
		snprintf(buf, len, "%s and %zu more", first, count - 1);
}

/*
 * Take from idle VMs (largest reclaimable first) until the targets fit in
 * the budget, or nothing idle is left.
 */
static void reclaim_idle(const struct pol_vm *vms, struct pol_out *out, size_t n, uint64_t over,
			 const struct pol_budget *budget)
{
	char who[96];

	name_growers(vms, out, n, who, sizeof(who));
	while (over) {
		uint64_t best_extra = 0, take;
		size_t i, best = n;

		for (i = 0; i < n; i++) {
			const struct pol_vm *vm = &vms[i];
			uint64_t floor, extra;

			if (!vm->dev_ok || !vm->online || !out[i].reclaimable ||
			    (out[i].action != POL_KEEP && out[i].action != POL_SHRINK))
				continue;
			floor = pol_sat_sub(vm->requested, out[i].reclaimable);
			extra = pol_sat_sub(out[i].to, floor);
			if (extra > best_extra) {
				best_extra = extra;
				best = i;
			}
		}
		if (best == n)
			return;
		take = min_u64(best_extra, pol_align_up(over, vms[best].block_size));
		take = pol_align_down(take, vms[best].block_size);
		if (!take)
			take = best_extra;
		out[best].action = POL_RECLAIM;
		out[best].state = VS_IDLE;
		out[best].to -= take;
		out[best].reason[0] = '\0';
		pol_say(&out[best],
			"budget %llu MiB: taken for %s (under pressure) from idle VM that can give "
			"%llu MiB",
			mib(budget->bytes), who, mib(vms[best].rep.give));
		out[best].reclaimable = 0; /* taken once per decision */
		over = pol_sat_sub(over, take);
	}
}

void pol_apply_budget(const struct pol_params *p, const struct pol_vm *vms, size_t n,
		      const struct pol_budget *budget, struct pol_out *out)
{
	unsigned int weight[POL_MAX_VMS];
	uint64_t cap[POL_MAX_VMS], alloc[POL_MAX_VMS], grant[POL_MAX_VMS];
	uint64_t usage = 0, target = 0, others_target = 0, used = 0, slack, granted = 0;
	size_t i;

	if (!budget->limited)
		return;
	if (n > POL_MAX_VMS)
		n = POL_MAX_VMS;
	for (i = 0; i < n; i++) {
		if (!vms[i].dev_ok)
			continue;
		usage = pol_sat_add(usage, pol_usage(&vms[i], out[i].to));
		target = pol_sat_add(target, out[i].to);
	}
	if (usage <= budget->bytes)
		return; /* everybody's wish fits */

	/* 1. Take from idle VMs what the targets need beyond the budget. */
	reclaim_idle(vms, out, n, pol_sat_sub(target, budget->bytes), budget);

	/* 2. Share what the others leave among the VMs under pressure. */
	for (i = 0; i < n; i++) {
		weight[i] = 0;
		cap[i] = 0;
		if (!vms[i].dev_ok)
			continue;
		if (vms[i].online && claims_pressure(&out[i])) {
			weight[i] = vms[i].weight ? vms[i].weight : 1;
			cap[i] = max_u64(out[i].to, vms[i].requested);
		} else {
			others_target = pol_sat_add(others_target, out[i].to);
		}
	}
	pol_waterfill(n, weight, cap, pol_sat_sub(budget->bytes, others_target), alloc);

	/* Above its weighted share: no growth, and give some back. */
	for (i = 0; i < n; i++) {
		const struct pol_vm *vm = &vms[i];
		uint64_t b = vm->block_size, r = vm->requested, lo, hi, to;

		grant[i] = 0;
		if (!weight[i])
			continue;
		pol_bounds(vm, &lo, &hi);
		if (alloc[i] >= r) {
			cap[i] = pol_sat_sub(min_u64(out[i].to, pol_align_down(alloc[i], b)), r);
			continue;
		}
		cap[i] = 0;
		to = max_u64(max_u64(lo, pol_align_up(alloc[i], b)),
			     pol_align_down(pol_sat_sub(r, p->shrink_max_step), b));
		if (to >= r)
			continue; /* within a block of its share: only no growth */
		out[i].action = POL_RECLAIM;
		out[i].state = VS_LIMITED;
		out[i].psi_grow = 0;
		out[i].to = to;
		out[i].reason[0] = '\0';
		pol_say(&out[i],
			"budget %llu MiB: above its weighted share %llu MiB under contention",
			mib(budget->bytes), mib(alloc[i]));
	}

	/* 3. Grant growth only from memory that is free now (usages). */
	for (i = 0; i < n; i++) {
		if (!vms[i].dev_ok)
			continue;
		if (weight[i] && out[i].action != POL_RECLAIM)
			used = pol_sat_add(used, pol_usage(&vms[i], vms[i].requested));
		else
			used = pol_sat_add(used, pol_usage(&vms[i], out[i].to));
	}
	slack = pol_sat_sub(budget->bytes, used);
	pol_waterfill(n, weight, cap, slack, grant);
	for (i = 0; i < n; i++) {
		grant[i] = pol_align_down(grant[i], vms[i].block_size);
		granted += grant[i];
	}
	/*
	 * What rounding left over, in whole blocks, in order; one step each: a
	 * 1-byte block beside a 1 GiB one must not mean a billion rounds.
	 */
	for (i = 0; i < n; i++) {
		uint64_t b = vms[i].block_size, add;

		if (!weight[i] || !b)
			continue;
		add = pol_align_down(min_u64(slack - granted, pol_sat_sub(cap[i], grant[i])), b);
		grant[i] += add;
		granted += add;
	}
	for (i = 0; i < n; i++) {
		const struct pol_vm *vm = &vms[i];
		uint64_t want, r = vm->requested;
		char orig[POL_REASON_MAX];

		if (!weight[i] || out[i].action != POL_GROW)
			continue;
		want = out[i].to - r;
		if (grant[i] >= want)
			continue;
		out[i].denied = want - grant[i];
		out[i].state = VS_LIMITED;
		memcpy(orig, out[i].reason, sizeof(orig));
		if (!grant[i]) {
			out[i].action = POL_KEEP;
			out[i].psi_grow = 0;
			out[i].to = r;
			out[i].reason[0] = '\0';
			pol_say(&out[i], "held by the budget %llu MiB (%llu MiB in use): %s",
				mib(budget->bytes), mib(used), orig);
			continue;
		}
		out[i].to = r + grant[i];
		out[i].reason[0] = '\0';
		pol_say(&out[i], "%s; limited by the budget %llu MiB to +%llu of +%llu MiB", orig,
			mib(budget->bytes), mib(grant[i]), mib(want));
	}
}
