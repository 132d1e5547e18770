// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - big block mode: a big block is plugged with one PLUG request
 * and added with one add_memory_driver_managed(); it is offlined and
 * removed as a whole before it is unplugged.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/virtio.h>
#include <linux/virtio_mem.h>

#include "memplug.h"
#include "compat.h"
#include "memplug_trace.h"

/* A big block is one sub block. */
static int mp_bbm_unplug_req(struct mp_dev *d, u64 unit)
{
	return mp_unplug_sbs(d, unit, 0, 1) == MP_OUT_DONE ? 0 : -EAGAIN;
}

/* Plug and add one more big block. */
static int mp_bbm_plug_one(struct mp_dev *d)
{
	struct mp_unit *u;
	u64 unit;
	int rc;

	lockdep_assert_held(&d->hp_lock);

	/* a plugged big block not (completely) added yet costs no request */
	rc = mp_add_stray(d);
	if (rc != -ENOENT)
		return rc;

	for (unit = 0; unit < d->geo.nr_units; unit++) {
		u = &d->units[unit];
		if (!mp_unit_added(u) && !u->nr_plugged && !u->busy &&
		    mp_unit_usable(&d->geo, &d->cfg, unit))
			break;
	}
	if (unit == d->geo.nr_units)
		return -ENOSPC;
	if (!mp_growth_guard_allows(d))
		return -ENOMEM;

	if (mp_plug_sbs(d, unit, 0, 1) != MP_OUT_DONE)
		return -EAGAIN;
	if (mp_add_unit(d, unit)) {
		/* never leave it half done: give the big block back */
		if (!mp_unit_added(&d->units[unit]))
			mp_bbm_unplug_req(d, unit);
		return -EAGAIN;
	}
	return 0;
}

/*
 * Offline and remove an added big block in bounded time (see
 * mp_remove_unit_bounded()).  A partly online big block (a memory block
 * offlined by hand, or not onlined yet) is handled the same way: only its
 * online memory blocks can hold pages in use.
 */
static int mp_bbm_remove(struct mp_dev *d, u64 unit,
			 enum mp_unit_class class)
{
	struct mp_unit *u = &d->units[unit];
	int rc;

	if (class == MP_CLASS_OFFLINE)
		rc = mp_remove_unit(d, unit);
	else
		rc = mp_remove_unit_bounded(d, unit);
	/*
	 * Removed per memory block and failed half way: never leave it half
	 * done, add the removed memory blocks back.
	 */
	if (rc && mp_unit_added(u) && !mp_unit_complete(d, u))
		mp_add_unit(d, unit);
	return rc;
}

/* Unplug one big block, the cheapest first. */
static int mp_bbm_unplug_one(struct mp_dev *d)
{
	enum mp_unit_class best_class;
	u64 best;
	int rc;

	lockdep_assert_held(&d->hp_lock);

	if (!mp_unplug_pick(d, &best, &best_class))
		return -EAGAIN;

	if (mp_unit_added(&d->units[best])) {
		rc = mp_bbm_remove(d, best, best_class);
		if (rc) {
			d->units[best].skip = 1;
			return -EAGAIN;
		}
	}
	/*
	 * Removed from Linux.  If the device refuses the UNPLUG the big
	 * block stays plugged but not added: retried later, or simply
	 * re-added when memory is wanted again.
	 */
	rc = mp_bbm_unplug_req(d, best);
	if (rc && d->target_zero) {
		/* remove(): get everything out of Linux first */
		d->units[best].skip = 1;
		return 0;
	}
	return rc;
}

/* BBM works one big block at a time, whatever the distance to the target */
static int mp_bbm_plug_step(struct mp_dev *d, u64 missing)
{
	return mp_bbm_plug_one(d);
}

static int mp_bbm_unplug_step(struct mp_dev *d, u64 excess)
{
	return mp_bbm_unplug_one(d);
}

const struct mp_mode_ops mp_bbm_ops = {
	.name = "bbm",
	.plug_step = mp_bbm_plug_step,
	.unplug_step = mp_bbm_unplug_step,
};
