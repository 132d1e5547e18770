// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target for memplugd's policy (tools/memplugd/policy.c,
 * budget.c): up to four VMs with arbitrary device sizes, configurations,
 * reports and timers, with or without a budget.  Whatever the numbers, a
 * decision lands on the block grid, inside [min, max] and the region, in
 * the direction its name says, and growth never takes the VMs' memory
 * above the budget.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

struct input {
	const uint8_t *p;
	size_t left;
};

static uint64_t take(struct input *in, size_t bytes)
{
	uint64_t v = 0;
	size_t n = in->left < bytes ? in->left : bytes;

	memcpy(&v, in->p, n);
	in->p += n;
	in->left -= n;
	return v;
}

/* Sizes: mostly plausible (a multiple of 2 MiB up to 64 GiB), sometimes raw. */
static uint64_t size_of(struct input *in)
{
	uint64_t v = take(in, 8);

	if (v & 1)
		return v;
	return (v >> 8) % (32768) * 2 * MiB;
}

static long long time_of(struct input *in, long long now)
{
	return now - (long long)(take(in, 4) % 400000);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct pol_params p;
	struct pol_vm vms[4];
	struct pol_out out[4];
	struct pol_budget b;
	long long now = 1LL << 40;
	uint64_t after = 0;
	size_t n, i;
	int grew = 0;

	pol_defaults(&p);
	n = 1 + take(&in, 1) % 4;
	b.limited = (int)(take(&in, 1) & 1);
	b.bytes = size_of(&in);
	for (i = 0; i < n; i++) {
		struct pol_vm *vm = &vms[i];
		unsigned int flags = (unsigned int)take(&in, 2);

		memset(vm, 0, sizeof(*vm));
		vm->name = "vm";
		vm->dev_ok = !(flags & 1);
		vm->online = !(flags & 2);
		vm->block_size = (flags & 4) ? size_of(&in) : UINT64_C(1) << (take(&in, 1) % 41);
		vm->region_size = size_of(&in);
		vm->requested = size_of(&in);
		vm->plugged = (flags & 8) ? vm->requested : size_of(&in);
		vm->min = (flags & 16) ? size_of(&in) : 0;
		vm->max = (flags & 32) ? size_of(&in) : 0;
		vm->buffer = size_of(&in);
		vm->weight = 1 + (unsigned int)(take(&in, 2) % 10000);
		vm->changed_ms = time_of(&in, now);
		vm->st.last_grow_ms = time_of(&in, now);
		vm->st.last_psi_grow_ms = time_of(&in, now);
		vm->st.last_shrink_ms = time_of(&in, now);
		vm->st.grow_refused_ms = (flags & 64) ? time_of(&in, now) : POL_NEVER;
		vm->st.shrink_refused_ms = (flags & 128) ? time_of(&in, now) : POL_NEVER;
		vm->have_report = !(flags & 256);
		vm->rep_ms = time_of(&in, now);
		vm->rep.have = (unsigned int)take(&in, 2) | RK_BIT(RK_SEQ);
		vm->rep.psi_some = take(&in, 2) % 10001;
		vm->rep.avail = size_of(&in);
		vm->rep.give = size_of(&in);
		vm->rep.unplug = (enum report_guard)(take(&in, 1) % 4);
		vm->rep.growth = (enum report_guard)(take(&in, 1) % 4);
		strcpy(vm->rep.driver, (flags & 512) ? "none" : "memplug");
	}
	pol_decide(&p, now, vms, n, &b, out);
	for (i = 0; i < n; i++) {
		const struct pol_vm *vm = &vms[i];
		const struct pol_out *o = &out[i];
		uint64_t lo, hi;

		CHECK(memchr(o->reason, '\0', sizeof(o->reason)));
		if (vm->dev_ok)
			after += pol_usage(vm, o->to);
		if (!vm->dev_ok || !vm->block_size || !vm->online) {
			CHECK(o->action == POL_KEEP);
			continue;
		}
		if (o->action == POL_KEEP) {
			CHECK(o->to == vm->requested);
		} else {
			CHECK(o->to % vm->block_size == 0);
			CHECK(o->to <= vm->region_size);
		}
		pol_bounds(vm, &lo, &hi);
		switch (o->action) {
		case POL_KEEP:
			break;
		case POL_GROW:
			CHECK(o->to > vm->requested && o->to <= hi && vm->requested == vm->plugged);
			grew = 1;
			break;
		case POL_SHRINK:
		case POL_RECLAIM:
			CHECK(o->to < vm->requested && o->to >= lo);
			CHECK(vm->requested == vm->plugged);
			break;
		case POL_REALIGN:
			CHECK(vm->requested != vm->plugged);
			CHECK(o->to == pol_align_down(vm->plugged < vm->region_size ?
							      vm->plugged :
							      vm->region_size,
						      vm->block_size));
			break;
		}
	}
	/* growth only from free memory: within the budget */
	if (b.limited && grew)
		CHECK(after <= b.bytes);
	return 0;
}
