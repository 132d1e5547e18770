// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - the module parameters, and the limits of the writable ones.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/moduleparam.h>

#include "memplug.h"

struct mp_params mp_params = {
	.req_timeout_ms = 30000,
	.remove_timeout_ms = 60000,
	.growth_reserve_mb = 64,
};

/* A writable unsigned int parameter takes values in [min, max] only. */
struct mp_uint_limits {
	const unsigned int *val;
	unsigned int min, max;
};

static const struct mp_uint_limits mp_limits[] = {
	/*
	 * 0 would time out every request at once and reset the device over
	 * and over; hours would leave the worker stuck behind a dead device.
	 */
	{ &mp_params.req_timeout_ms, 100, 10 * 60 * 1000 },
	/* a second at least for a memory block to go offline; an hour at most */
	{ &mp_params.remove_timeout_ms, 1000, 60 * 60 * 1000 },
	/* more than a TiB kept free is a typo, not a policy */
	{ &mp_params.growth_reserve_mb, 0, 1024 * 1024 },
};

static int mp_set_limited(const char *val, const struct kernel_param *kp)
{
	const struct mp_uint_limits *l;

	for (l = mp_limits; l < mp_limits + ARRAY_SIZE(mp_limits); l++)
		if (l->val == kp->arg)
			return param_set_uint_minmax(val, kp, l->min, l->max);
	return -EINVAL;
}

static const struct kernel_param_ops mp_limited_ops = {
	.set = mp_set_limited,
	.get = param_get_uint,
};

module_param_named(force_bbm, mp_params.force_bbm, bool, 0444);
MODULE_PARM_DESC(force_bbm,
		 "Use big block mode even when the device block size fits in a memory block (default: off)");

module_param_named(bbm_block_size, mp_params.bbm_block_size, ulong, 0444);
MODULE_PARM_DESC(bbm_block_size,
		 "Big block size in bytes for big block mode: a power of two, multiple of device and memory block size; 0 = max(device block, memory block) (default: 0)");

module_param_cb(req_timeout_ms, &mp_limited_ops, &mp_params.req_timeout_ms,
		0644);
MODULE_PARM_DESC(req_timeout_ms,
		 "How long to wait for the device to answer a request before treating the answer as missing, in ms, 100 .. 600000 (default: 30000)");

module_param_cb(remove_timeout_ms, &mp_limited_ops,
		&mp_params.remove_timeout_ms, 0644);
MODULE_PARM_DESC(remove_timeout_ms,
		 "How long offlining may go without a memory block going offline before it is interrupted (it fails, the memory stays, the worker tries again later), in ms, 1000 .. 3600000 (default: 60000)");

module_param_cb(growth_reserve_mb, &mp_limited_ops,
		&mp_params.growth_reserve_mb, 0644);
MODULE_PARM_DESC(growth_reserve_mb,
		 "Growth guard: unmovable-capable memory (ZONE_NORMAL/DMA32/DMA, above the watermarks) that must stay free after adding memory, in MiB, 0 .. 1048576 (default: 64)");
