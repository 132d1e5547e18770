// SPDX-License-Identifier: GPL-2.0-only
/*
 * cmocka unit tests of memplugd's policy (tools/memplugd/policy.c and
 * budget.c): every rule of docs/memplugd.md, one VM at a time, then
 * several VMs sharing a budget, simulated over many ticks with obedient
 * (and disobedient) guests.  Time is an input: no test sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

#define T0 1000000LL /* "now" at the start of every test, ms */
#define LONG_AGO (T0 - 10000000LL)

static struct pol_params P;

static int setup(void **state)
{
	(void)state;
	pol_defaults(&P);
	return 0;
}

/* A settled VM: R == P, nothing changed for long, no timer running. */
static void vm_setup(struct pol_vm *vm, const char *name, uint64_t size, uint64_t block)
{
	memset(vm, 0, sizeof(*vm));
	vm->name = name;
	vm->buffer = 512 * MiB;
	vm->weight = 100;
	vm->dev_ok = 1;
	vm->online = 1;
	vm->block_size = block;
	vm->region_size = 16 * GiB;
	vm->requested = size;
	vm->plugged = size;
	vm->changed_ms = LONG_AGO;
	vm->st.last_grow_ms = LONG_AGO;
	vm->st.last_psi_grow_ms = LONG_AGO;
	vm->st.last_shrink_ms = LONG_AGO;
	vm->st.grow_refused_ms = POL_NEVER;
	vm->st.shrink_refused_ms = POL_NEVER;
}

/* A fresh report at @now: psi_some (1/100 %), avail and give. */
static void report(struct pol_vm *vm, long long now, uint64_t psi, uint64_t avail, uint64_t give)
{
	memset(&vm->rep, 0, sizeof(vm->rep));
	vm->have_report = 1;
	vm->rep_ms = now;
	vm->rep.have = RK_BIT(RK_SEQ) | RK_BIT(RK_PSI_SOME) | RK_BIT(RK_AVAIL) | RK_BIT(RK_GIVE) |
		       RK_BIT(RK_TOTAL) | RK_BIT(RK_DRIVER) | RK_BIT(RK_UNPLUG) | RK_BIT(RK_GROWTH);
	vm->rep.psi_some = psi;
	vm->rep.avail = avail;
	vm->rep.give = give;
	vm->rep.total = UINT64_MAX;
	vm->rep.unplug = RG_OK;
	vm->rep.growth = RG_OK;
	strcpy(vm->rep.driver, "memplug");
}

static const struct pol_budget no_budget = { 0, 0 };

static struct pol_out decide1(struct pol_vm *vm, long long now)
{
	struct pol_out o;

	pol_decide(&P, now, vm, 1, &no_budget, &o);
	return o;
}

/*
 * Carry out @o as memplugd does (QEMU takes the size, then the timers are
 * updated) and as an obedient guest: plugged follows at once.
 */
static void obey(struct pol_vm *vm, const struct pol_out *o, long long now)
{
	if (o->action == POL_KEEP)
		return;
	vm->requested = o->to;
	vm->plugged = o->to;
	vm->changed_ms = now;
	pol_commit(vm, o, now);
}

#define assert_reason(o, text)                                                  \
	do {                                                                    \
		if (!strstr((o).reason, (text)))                                \
			fail_msg("reason '%s' lacks '%s'", (o).reason, (text)); \
	} while (0)

static void assert_aligned(const struct pol_vm *vm, uint64_t v)
{
	if (v % vm->block_size)
		fail_msg("%llu is not a multiple of the block size %llu", (unsigned long long)v,
			 (unsigned long long)vm->block_size);
}

/* ------------------------------------------------------------------ */
/* Growing */

static void test_grow_on_psi(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	vm_setup(&vm, "web1", 2 * GiB, 2 * MiB);
	report(&vm, T0 - 10, 1234, 2 * GiB, GiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_GROW);
	assert_int_equal(o.to, 2 * GiB + P.psi_step);
	assert_true(o.psi_grow);
	assert_reason(o, "psi some 12.34% > 10%");
	/* at the threshold exactly: no pressure */
	report(&vm, T0 - 10, 1000, 2 * GiB, 0);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
}

static void test_psi_hold(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	vm_setup(&vm, "web1", 2 * GiB, 2 * MiB);
	report(&vm, T0 - 10, 2000, 2 * GiB, 0);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_GROW);
	obey(&vm, &o, T0);
	/* avg10 still high a second later: no second PSI growth yet */
	report(&vm, T0 + 1000, 2000, 2 * GiB + 256 * MiB, 0);
	o = decide1(&vm, T0 + 1100);
	assert_int_equal(o.action, POL_KEEP);
	assert_int_equal(o.state, VS_PRESSURE);
	assert_reason(o, "next PSI growth in");
	/* ... but a shortage is answered at once */
	report(&vm, T0 + 2000, 2000, 100 * MiB, 0);
	o = decide1(&vm, T0 + 2100);
	assert_int_equal(o.action, POL_GROW);
	assert_int_equal(o.to, vm.requested + 412 * MiB);
	/* after the hold, PSI alone grows again */
	report(&vm, T0 + P.psi_hold_ms, 2000, 2 * GiB, 0);
	o = decide1(&vm, T0 + P.psi_hold_ms + 1);
	assert_int_equal(o.action, POL_GROW);
}

static void test_grow_on_low_avail(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	vm_setup(&vm, "web1", 2 * GiB, 2 * MiB);
	report(&vm, T0 - 10, 0, 300 * MiB, 0);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_GROW);
	assert_int_equal(o.to, 2 * GiB + 212 * MiB);
	assert_false(o.psi_grow);
	assert_reason(o, "available 300 MiB < buffer 512 MiB");
	/* both causes: the bigger step, both named */
	report(&vm, T0 - 10, 5000, 500 * MiB, 0);
	o = decide1(&vm, T0);
	assert_int_equal(o.to, 2 * GiB + P.psi_step);
	assert_reason(o, "available 500 MiB < buffer 512 MiB, psi some 50.00% > 10%");
}

static void test_grow_aligned(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	vm_setup(&vm, "big", 4 * GiB, 128 * MiB);
	/* 1 byte short: still one whole block */
	report(&vm, T0 - 10, 0, 512 * MiB - 1, 0);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_GROW);
	assert_int_equal(o.to, 4 * GiB + 128 * MiB);
	/* 130 MiB short: two blocks */
	report(&vm, T0 - 10, 0, 382 * MiB, 0);
	o = decide1(&vm, T0);
	assert_int_equal(o.to, 4 * GiB + 256 * MiB);
	assert_aligned(&vm, o.to);
	/* 1 GiB blocks (BBM): a 256 MiB PSI step is one block */
	vm_setup(&vm, "bbm", 4 * GiB, GiB);
	report(&vm, T0 - 10, 3000, 4 * GiB, 0);
	o = decide1(&vm, T0);
	assert_int_equal(o.to, 5 * GiB);
}

static void test_grow_max_clamp(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	vm_setup(&vm, "web1", 3 * GiB + 900 * MiB, 2 * MiB);
	vm.max = 4 * GiB;
	report(&vm, T0 - 10, 0, 0, 0);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_GROW);
	assert_int_equal(o.to, 4 * GiB);
	obey(&vm, &o, T0);
	report(&vm, T0 + 10, 9999, 0, 0);
	o = decide1(&vm, T0 + 20);
	assert_int_equal(o.action, POL_KEEP);
	assert_int_equal(o.state, VS_LIMITED);
	assert_reason(o, "at max 4096 MiB");
	/* a max off the block grid, and one above the region */
	vm_setup(&vm, "web2", GiB, 128 * MiB);
	vm.max = GiB + 200 * MiB;
	report(&vm, T0 - 10, 0, 0, 0);
	o = decide1(&vm, T0);
	assert_int_equal(o.to, GiB + 128 * MiB);
	vm_setup(&vm, "web3", 16 * GiB - 2 * MiB, 2 * MiB);
	vm.max = 64 * GiB;
	report(&vm, T0 - 10, 0, 0, 0);
	o = decide1(&vm, T0);
	assert_int_equal(o.to, 16 * GiB); /* the region */
}

static void test_below_min_grows_without_report(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	vm_setup(&vm, "web1", 0, 2 * MiB);
	vm.min = GiB + 1;
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_GROW);
	assert_int_equal(o.to, GiB + 2 * MiB);
	assert_reason(o, "below min");
}

/* ------------------------------------------------------------------ */
/* Shrinking */

static void test_shrink_hysteresis(void **state)
{
	struct pol_vm vm;
	struct pol_out o;
	uint64_t hyst = 256 * MiB;

	(void)state;
	vm_setup(&vm, "web1", 4 * GiB, 2 * MiB);
	/* excess exactly the hysteresis: stays */
	report(&vm, T0 - 10, 0, 512 * MiB + hyst, 3 * GiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
	assert_int_equal(o.state, VS_STEADY);
	/* 1 GiB excess: a quarter of it */
	report(&vm, T0 - 10, 0, 512 * MiB + GiB, 3 * GiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_SHRINK);
	assert_int_equal(o.to, 4 * GiB - 256 * MiB);
	assert_reason(o, "idle: available 1536 MiB > buffer 512 MiB + hysteresis 256 MiB");
	/* 8 GiB excess: at most 1 GiB per decision */
	report(&vm, T0 - 10, 0, 512 * MiB + 8 * GiB, 8 * GiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.to, 3 * GiB);
	/* and never more than the guest can give */
	report(&vm, T0 - 10, 0, 512 * MiB + 8 * GiB, 100 * MiB + 1);
	o = decide1(&vm, T0);
	assert_int_equal(o.to, 4 * GiB - 100 * MiB);
	/* psi above psi-idle: not idle */
	report(&vm, T0 - 10, 200, 512 * MiB + 8 * GiB, 8 * GiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
	/* unplug blocked: no */
	report(&vm, T0 - 10, 0, 512 * MiB + 8 * GiB, 8 * GiB);
	vm.rep.unplug = RG_BLOCKED;
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
	/* no give in the report: no */
	report(&vm, T0 - 10, 0, 512 * MiB + 8 * GiB, 8 * GiB);
	vm.rep.have &= ~RK_BIT(RK_GIVE);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
}

/* 1 GiB blocks: a quarter of a 3.5 GiB excess rounds down to nothing */
static void test_shrink_big_blocks(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	vm_setup(&vm, "big", 4 * GiB, GiB);
	report(&vm, T0 - 10, 0, 512 * MiB + 3 * GiB + 512 * MiB, 3 * GiB + 512 * MiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_SHRINK);
	assert_int_equal(o.to, 3 * GiB);
	/* less than a block of excess: the buffer would not stay */
	report(&vm, T0 - 10, 0, 512 * MiB + 900 * MiB, 3 * GiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
	assert_int_equal(o.state, VS_IDLE);
	/* a block of excess, but the guest cannot give a whole block */
	report(&vm, T0 - 10, 0, 512 * MiB + 2 * GiB, GiB - 2 * MiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
	/* 2 GiB blocks, above shrink-max-step: one block at a time */
	vm_setup(&vm, "bigger", 8 * GiB, 2 * GiB);
	report(&vm, T0 - 10, 0, 512 * MiB + 6 * GiB, 6 * GiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_SHRINK);
	assert_int_equal(o.to, 6 * GiB);
}

static void test_shrink_never_below_min(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	vm_setup(&vm, "web1", GiB + 64 * MiB, 2 * MiB);
	vm.min = GiB;
	report(&vm, T0 - 10, 0, 8 * GiB, 8 * GiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_SHRINK);
	assert_int_equal(o.to, GiB);
	obey(&vm, &o, T0);
	report(&vm, T0 + P.shrink_interval_ms + 10, 0, 8 * GiB, 8 * GiB);
	o = decide1(&vm, T0 + P.shrink_interval_ms + 20);
	assert_int_equal(o.action, POL_KEEP);
	assert_int_equal(vm.requested, GiB);
}

static void test_hold_down_and_interval(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	vm_setup(&vm, "web1", 4 * GiB, 2 * MiB);
	vm.st.last_grow_ms = T0 - P.hold_down_ms + 1;
	report(&vm, T0 - 10, 0, 4 * GiB, 3 * GiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
	assert_int_equal(o.state, VS_HELD);
	assert_reason(o, "hold-down 30.0 s");
	o = decide1(&vm, T0 + 1);
	assert_int_equal(o.action, POL_SHRINK);
	obey(&vm, &o, T0 + 1);
	/* the next one waits shrink_interval, and a fresh report */
	report(&vm, T0 + P.shrink_interval_ms - 100, 0, 4 * GiB, 3 * GiB);
	o = decide1(&vm, T0 + P.shrink_interval_ms);
	assert_int_equal(o.action, POL_KEEP);
	o = decide1(&vm, T0 + 1 + P.shrink_interval_ms);
	assert_int_equal(o.action, POL_SHRINK);
}

static void test_restart_no_jolt(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	/* a fresh daemon: hold-down and PSI hold run from its start */
	vm_setup(&vm, "web1", 4 * GiB, 2 * MiB);
	pol_state_init(&vm.st, T0);
	vm.changed_ms = T0;
	report(&vm, T0 + 500, 0, 4 * GiB, 3 * GiB);
	o = decide1(&vm, T0 + 1000);
	assert_int_equal(o.action, POL_KEEP);
	report(&vm, T0 + P.hold_down_ms - 500, 0, 4 * GiB, 3 * GiB);
	o = decide1(&vm, T0 + P.hold_down_ms);
	assert_int_equal(o.action, POL_SHRINK);
	report(&vm, T0 + 500, 2000, 4 * GiB, 0);
	o = decide1(&vm, T0 + 1000);
	assert_int_equal(o.action, POL_KEEP);
	/* a shortage is served at once */
	report(&vm, T0 + 500, 0, 100 * MiB, 0);
	o = decide1(&vm, T0 + 1000);
	assert_int_equal(o.action, POL_GROW);
}

/* ------------------------------------------------------------------ */
/* Missing data */

static void test_no_shrink_on_silence(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	vm_setup(&vm, "web1", 4 * GiB, 2 * MiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
	assert_int_equal(o.state, VS_FROZEN);
	assert_reason(o, "no report yet");
	/* a report that is too old: neither shrink nor grow */
	report(&vm, T0 - P.report_timeout_ms - 1, 0, 8 * GiB, 8 * GiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
	assert_int_equal(o.state, VS_FROZEN);
	assert_reason(o, "no report for 5.0 s");
	report(&vm, T0 - P.report_timeout_ms - 1, 9000, 0, 0);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
	/* at the limit it is still fresh */
	report(&vm, T0 - P.report_timeout_ms, 0, 8 * GiB, 8 * GiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_SHRINK);
	/* no driver in the guest */
	report(&vm, T0 - 10, 0, 8 * GiB, 8 * GiB);
	strcpy(vm.rep.driver, "none");
	o = decide1(&vm, T0);
	assert_int_equal(o.state, VS_FROZEN);
	/* neither psi nor avail */
	report(&vm, T0 - 10, 0, 8 * GiB, 8 * GiB);
	vm.rep.have = RK_BIT(RK_SEQ) | RK_BIT(RK_GIVE);
	o = decide1(&vm, T0);
	assert_int_equal(o.state, VS_FROZEN);
	/* QMP lost: size held */
	report(&vm, T0 - 10, 0, 8 * GiB, 8 * GiB);
	vm.online = 0;
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
	assert_int_equal(o.state, VS_UNKNOWN);
}

static void test_report_older_than_change(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	vm_setup(&vm, "web1", 2 * GiB, 2 * MiB);
	report(&vm, T0 - 10, 0, 100 * MiB, 0);
	vm.changed_ms = T0 - 10; /* plugged changed after the guest sampled */
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
	assert_int_equal(o.state, VS_WAITING);
}

/* ------------------------------------------------------------------ */
/* The guest stopped short */

static void test_stopped_short_shrinking(void **state)
{
	struct pol_vm vm;
	struct pol_out o;
	long long t;

	(void)state;
	vm_setup(&vm, "web1", 4 * GiB, 2 * MiB);
	report(&vm, T0 - 10, 0, 6 * GiB, 6 * GiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_SHRINK);
	vm.requested = o.to; /* the guest unplugs part of it, then stops */
	pol_commit(&vm, &o, T0);
	vm.plugged = 4 * GiB - 512 * MiB;
	vm.changed_ms = T0 + 500;
	report(&vm, T0 + 600, 0, 6 * GiB, 0);
	vm.rep.unplug = RG_BLOCKED;
	o = decide1(&vm, T0 + 600 + P.settle_ms - 200);
	assert_int_equal(o.action, POL_KEEP);
	assert_int_equal(o.state, VS_WAITING);
	/* an answer, not a failure: requested := plugged */
	t = T0 + 500 + P.settle_ms;
	o = decide1(&vm, t);
	assert_int_equal(o.action, POL_REALIGN);
	assert_int_equal(o.to, 4 * GiB - 512 * MiB);
	assert_reason(o, "stopped short shrinking at 3584 MiB (unplug=blocked)");
	obey(&vm, &o, t);
	/* and no new push for retry_ms, whatever it reports */
	report(&vm, t + 100, 0, 6 * GiB, 6 * GiB);
	o = decide1(&vm, t + 200);
	assert_int_equal(o.action, POL_KEEP);
	assert_reason(o, "stopped short shrinking: next try in");
	assert_int_equal(o.reclaimable, 0);
	report(&vm, t + P.retry_ms, 0, 6 * GiB, 6 * GiB);
	o = decide1(&vm, t + P.retry_ms + 1);
	assert_int_equal(o.action, POL_SHRINK);
}

static void test_stopped_short_growing(void **state)
{
	struct pol_vm vm;
	struct pol_out o;
	long long t = T0 + P.settle_ms;

	(void)state;
	vm_setup(&vm, "web1", 4 * GiB, 2 * MiB);
	vm.plugged = 3 * GiB;
	vm.changed_ms = T0;
	report(&vm, T0 + 10, 3000, 0, 0);
	vm.rep.growth = RG_BLOCKED;
	o = decide1(&vm, t);
	assert_int_equal(o.action, POL_REALIGN);
	assert_int_equal(o.to, 3 * GiB);
	assert_reason(o, "(growth=blocked)");
	obey(&vm, &o, t);
	report(&vm, t + 10, 3000, 0, 0);
	o = decide1(&vm, t + 20);
	assert_int_equal(o.action, POL_KEEP);
	assert_int_equal(o.state, VS_LIMITED);
	report(&vm, t + P.retry_ms, 3000, 0, 0);
	o = decide1(&vm, t + P.retry_ms + 1);
	assert_int_equal(o.action, POL_GROW);
}

static void test_external_change(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	vm_setup(&vm, "web1", 4 * GiB, 2 * MiB);
	pol_external_change(&vm, 2 * GiB, 4 * GiB, T0);
	report(&vm, T0 + 10, 0, 6 * GiB, 6 * GiB);
	o = decide1(&vm, T0 + 20);
	assert_int_equal(o.action, POL_KEEP); /* hold-down after someone's growth */
	assert_int_equal(o.state, VS_HELD);
}

/* ------------------------------------------------------------------ */
/* Untrusted numbers */

static void test_absurd_numbers(void **state)
{
	struct pol_vm vm;
	struct pol_out o;

	(void)state;
	vm_setup(&vm, "liar", 4 * GiB, 2 * MiB);
	vm.min = GiB;
	report(&vm, T0 - 10, 0, UINT64_MAX, UINT64_MAX);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_SHRINK);
	assert_int_equal(o.to, 3 * GiB); /* one step, not everything */
	/* near the top of the address space: no overflow */
	vm_setup(&vm, "huge", UINT64_C(1) << 62, GiB);
	vm.region_size = UINT64_MAX;
	report(&vm, T0 - 10, 10000, 0, 0);
	vm.buffer = UINT64_MAX;
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_GROW);
	assert_true(o.to > vm.requested);
	assert_aligned(&vm, o.to);
	vm.requested = vm.plugged = pol_align_down(UINT64_MAX, GiB);
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_KEEP);
	assert_int_equal(o.state, VS_LIMITED);
	/* a QMP peer that reports plugged off the grid and beyond the region */
	vm_setup(&vm, "qemu-liar", 4 * GiB, 2 * MiB);
	vm.plugged = 20 * GiB + 1;
	o = decide1(&vm, T0);
	assert_int_equal(o.action, POL_REALIGN);
	assert_int_equal(o.to, 16 * GiB);
}

/* ------------------------------------------------------------------ */
/* Budget */

static void test_waterfill(void **state)
{
	unsigned int w[3] = { 1, 2, 1 };
	uint64_t cap[3] = { 100, 100, 100 }, out[3];

	(void)state;
	pol_waterfill(3, w, cap, 100, out);
	assert_int_equal(out[0], 25);
	assert_int_equal(out[1], 50);
	assert_int_equal(out[2], 25);
	/* a capped entry leaves the rest to the others */
	cap[1] = 10;
	pol_waterfill(3, w, cap, 100, out);
	assert_int_equal(out[1], 10);
	assert_int_equal(out[0], 45);
	assert_int_equal(out[2], 45);
	/* enough for all */
	pol_waterfill(3, w, cap, 1000, out);
	assert_int_equal(out[0] + out[1] + out[2], 210);
	/* weight 0 or cap 0: nothing */
	w[0] = 0;
	cap[2] = 0;
	pol_waterfill(3, w, cap, 1000, out);
	assert_int_equal(out[0], 0);
	assert_int_equal(out[2], 0);
	assert_int_equal(out[1], 10);
	/* huge numbers do not overflow */
	w[0] = 10000;
	w[1] = 10000;
	cap[0] = UINT64_MAX;
	cap[1] = UINT64_MAX;
	pol_waterfill(2, w, cap, UINT64_MAX, out);
	assert_true(out[0] + (out[1] - 1) <= UINT64_MAX - 1);
	assert_int_equal(out[0], UINT64_MAX / 2);
}

/* Guest model for simulations: memory used by the guest besides the buffer. */
struct guest {
	uint64_t base; /* boot memory */
	uint64_t used;
	int liar; /* reports psi 100 %, avail 0, give 0 whatever happens */
};

static void guest_report(struct pol_vm *vm, const struct guest *g, long long now)
{
	uint64_t total = g->base + vm->plugged;
	uint64_t avail = pol_sat_sub(total, g->used);
	uint64_t give = pol_sat_sub(avail, 64 * MiB);

	if (g->liar)
		report(vm, now, 10000, 0, 0);
	else
		report(vm, now, avail < 256 * MiB ? 4000 : 0, avail, give);
}

/* One tick of @n VMs: decide, obey, report. */
static void tick(struct pol_vm *vms, const struct guest *g, size_t n, const struct pol_budget *b,
		 long long now, struct pol_out *out)
{
	size_t i;

	pol_decide(&P, now, vms, n, b, out);
	for (i = 0; i < n; i++)
		obey(&vms[i], &out[i], now);
	for (i = 0; i < n; i++)
		guest_report(&vms[i], &g[i], now + 10);
}

static uint64_t usage_sum(const struct pol_vm *vms, size_t n)
{
	uint64_t s = 0;
	size_t i;

	for (i = 0; i < n; i++)
		s += pol_usage(&vms[i], vms[i].requested);
	return s;
}

static void test_budget_two_vms(void **state)
{
	struct pol_budget b = { 1, 8 * GiB };
	struct pol_vm vms[2];
	struct pol_out out[2];
	struct guest g[2] = { { GiB, 512 * MiB, 0 }, { GiB, 0, 0 } };
	long long now = T0;
	int i;

	(void)state;
	/* idle web1 holds 6 GiB (needs 0.5), busy web2 has 3 GiB and needs 5.5 */
	vm_setup(&vms[0], "web1", 6 * GiB, 2 * MiB);
	vm_setup(&vms[1], "web2", 3 * GiB, 2 * MiB);
	g[1].used = GiB + 5 * GiB;
	guest_report(&vms[0], &g[0], now - 10);
	guest_report(&vms[1], &g[1], now - 10);
	pol_decide(&P, now, vms, 2, &b, out);
	/* web2 cannot grow before web1 gives memory back; web1 is asked at once */
	assert_int_equal(out[0].action, POL_RECLAIM);
	assert_reason(out[0], "taken for web2 (under pressure)");
	assert_int_equal(out[1].action, POL_KEEP);
	assert_int_equal(out[1].state, VS_LIMITED);
	assert_reason(out[1], "held by the budget 8192 MiB");
	for (i = 0; i < 60; i++) {
		now += 1000;
		tick(vms, g, 2, &b, now, out);
		assert_true(usage_sum(vms, 2) <= 8 * GiB);
	}
	/* web2 got what it needs (its buffer is there), from web1 */
	assert_true(vms[1].requested >= 5 * GiB + 512 * MiB);
	assert_true(vms[0].requested <= 2 * GiB + 512 * MiB);
	/* and web1 kept its own buffer */
	assert_true(GiB + vms[0].plugged - g[0].used >= 512 * MiB);
}

static void test_budget_weights(void **state)
{
	struct pol_budget b = { 1, 8 * GiB };
	struct pol_vm vms[3];
	struct pol_out out[3];
	struct guest g[3] = { { 0, 0, 1 }, { 0, 0, 1 }, { 0, 0, 1 } };
	long long now = T0;
	int i;

	(void)state;
	/* three VMs that all want everything, weights 1:2:1 */
	vm_setup(&vms[0], "a", 0, 2 * MiB);
	vm_setup(&vms[1], "b", 0, 2 * MiB);
	vm_setup(&vms[2], "c", 0, 2 * MiB);
	vms[1].weight = 200;
	for (i = 0; i < 3; i++)
		guest_report(&vms[i], &g[i], now - 10);
	for (i = 0; i < 400; i++) {
		now += 1000;
		tick(vms, g, 3, &b, now, out);
		assert_true(usage_sum(vms, 3) <= 8 * GiB);
	}
	assert_int_equal(vms[0].requested, 2 * GiB);
	assert_int_equal(vms[1].requested, 4 * GiB);
	assert_int_equal(vms[2].requested, 2 * GiB);
}

static void test_budget_three_vms_idle_first(void **state)
{
	struct pol_budget b = { 1, 12 * GiB };
	struct pol_vm vms[3];
	struct pol_out out[3];
	struct guest g[3] = { { GiB, GiB, 0 }, { GiB, 3 * GiB, 0 }, { GiB, 6 * GiB, 0 } };
	long long now = T0;
	int i;

	(void)state;
	/* a: idle with 6 GiB; b: in its band with 3 GiB; c: needs 6, has 3 */
	vm_setup(&vms[0], "a", 6 * GiB, 2 * MiB);
	vm_setup(&vms[1], "b", 3 * GiB - 256 * MiB, 2 * MiB);
	vm_setup(&vms[2], "c", 3 * GiB, 2 * MiB);
	for (i = 0; i < 3; i++)
		guest_report(&vms[i], &g[i], now - 10);
	for (i = 0; i < 60; i++) {
		now += 1000;
		tick(vms, g, 3, &b, now, out);
		assert_true(usage_sum(vms, 3) <= 12 * GiB);
		/* b is neither idle nor under pressure: nobody touches it */
		assert_int_equal(vms[1].requested, 3 * GiB - 256 * MiB);
	}
	assert_true(vms[2].requested >= 5 * GiB + 512 * MiB);
	assert_true(vms[0].requested <= 3 * GiB);
}

static void test_lying_vm(void **state)
{
	struct pol_budget b = { 1, 8 * GiB };
	struct pol_vm vms[2];
	struct pol_out out[2];
	struct guest g[2] = { { 0, 0, 1 }, { GiB, GiB, 0 } };
	long long now = T0;
	int i;

	(void)state;
	vm_setup(&vms[0], "liar", 0, 2 * MiB);
	vm_setup(&vms[1], "honest", GiB, 2 * MiB);
	vms[0].max = 6 * GiB;
	for (i = 0; i < 2; i++)
		guest_report(&vms[i], &g[i], now - 10);
	/* the honest VM needs little: the liar gets no more than its max */
	for (i = 0; i < 100; i++) {
		now += 1000;
		tick(vms, g, 2, &b, now, out);
		assert_true(vms[0].requested <= 6 * GiB);
	}
	assert_int_equal(vms[0].requested, 6 * GiB);
	/* now the honest one needs 6 GiB: the liar is cut to its weighted share */
	g[1].used = GiB + 6 * GiB;
	for (i = 0; i < 200; i++) {
		now += 1000;
		tick(vms, g, 2, &b, now, out);
		assert_true(usage_sum(vms, 2) <= 8 * GiB);
	}
	assert_int_equal(vms[0].requested, 4 * GiB);
	assert_int_equal(vms[1].requested, 4 * GiB);
	/* without a budget, max is the only bound */
	vm_setup(&vms[0], "liar", 0, 2 * MiB);
	vms[0].max = 3 * GiB;
	for (i = 0; i < 100; i++) {
		now += 1000;
		guest_report(&vms[0], &g[0], now - 10);
		pol_decide(&P, now, vms, 1, &no_budget, out);
		obey(&vms[0], &out[0], now);
		assert_true(vms[0].requested <= 3 * GiB);
	}
	assert_int_equal(vms[0].requested, 3 * GiB);
}

static void test_budget_frozen_vm_kept(void **state)
{
	struct pol_budget b = { 1, 8 * GiB };
	struct pol_vm vms[2];
	struct pol_out out[2];

	(void)state;
	/* a silent VM with lots of memory is not taken from; offline neither */
	vm_setup(&vms[0], "silent", 6 * GiB, 2 * MiB);
	vm_setup(&vms[1], "busy", 2 * GiB, 2 * MiB);
	report(&vms[1], T0 - 10, 5000, 0, 0);
	pol_decide(&P, T0, vms, 2, &b, out);
	assert_int_equal(out[0].action, POL_KEEP);
	assert_int_equal(out[0].state, VS_FROZEN);
	assert_int_equal(out[1].action, POL_KEEP);
	assert_int_equal(out[1].state, VS_LIMITED);
	assert_true(out[1].denied > 0);
	/* a budget below what is in use: nothing grows, nothing frozen shrinks */
	b.bytes = 4 * GiB;
	pol_decide(&P, T0, vms, 2, &b, out);
	assert_int_equal(out[0].action, POL_KEEP);
	assert_int_not_equal(out[1].action, POL_GROW);
}

static void test_budget_fits(void **state)
{
	struct pol_budget b = { 1, 8 * GiB };
	struct pol_vm vms[2];
	struct pol_out out[2];

	(void)state;
	vm_setup(&vms[0], "a", 2 * GiB, 2 * MiB);
	vm_setup(&vms[1], "b", 2 * GiB, 2 * MiB);
	report(&vms[0], T0 - 10, 0, 100 * MiB, 0);
	report(&vms[1], T0 - 10, 0, GiB, 0);
	pol_decide(&P, T0, vms, 2, &b, out);
	assert_int_equal(out[0].action, POL_GROW);
	assert_int_equal(out[0].to, 2 * GiB + 412 * MiB);
	/* partly: limited, and says so */
	b.bytes = 4 * GiB + 100 * MiB + 1;
	pol_decide(&P, T0, vms, 2, &b, out);
	assert_int_equal(out[0].action, POL_GROW);
	assert_int_equal(out[0].to, 2 * GiB + 100 * MiB);
	assert_reason(out[0], "limited by the budget 4196 MiB to +100 of +412 MiB");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_grow_on_psi, setup),
		cmocka_unit_test_setup(test_psi_hold, setup),
		cmocka_unit_test_setup(test_grow_on_low_avail, setup),
		cmocka_unit_test_setup(test_grow_aligned, setup),
		cmocka_unit_test_setup(test_grow_max_clamp, setup),
		cmocka_unit_test_setup(test_below_min_grows_without_report, setup),
		cmocka_unit_test_setup(test_shrink_hysteresis, setup),
		cmocka_unit_test_setup(test_shrink_big_blocks, setup),
		cmocka_unit_test_setup(test_shrink_never_below_min, setup),
		cmocka_unit_test_setup(test_hold_down_and_interval, setup),
		cmocka_unit_test_setup(test_restart_no_jolt, setup),
		cmocka_unit_test_setup(test_no_shrink_on_silence, setup),
		cmocka_unit_test_setup(test_report_older_than_change, setup),
		cmocka_unit_test_setup(test_stopped_short_shrinking, setup),
		cmocka_unit_test_setup(test_stopped_short_growing, setup),
		cmocka_unit_test_setup(test_external_change, setup),
		cmocka_unit_test_setup(test_absurd_numbers, setup),
		cmocka_unit_test_setup(test_waterfill, setup),
		cmocka_unit_test_setup(test_budget_two_vms, setup),
		cmocka_unit_test_setup(test_budget_weights, setup),
		cmocka_unit_test_setup(test_budget_three_vms_idle_first, setup),
		cmocka_unit_test_setup(test_lying_vm, setup),
		cmocka_unit_test_setup(test_budget_frozen_vm_kept, setup),
		cmocka_unit_test_setup(test_budget_fits, setup),
	};

	return cmocka_run_group_tests_name("memplugd policy", tests, NULL, NULL);
}
