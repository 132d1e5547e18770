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

/*
 * Plug and add one more big block: BBM works one big block at a time,
 * whatever is @missing.  (A big block is one sub block.)
 */
static enum mp_step mp_bbm_plug_step(struct mp_dev *d, u64 missing)
{
	enum mp_step step;
	struct mp_unit *u;
	u64 unit;

	lockdep_assert_held(&d->hp_lock);

	/* a plugged big block not (completely) added yet costs no request */
	step = mp_add_stray(d);
	if (step != MP_STEP_NONE)
		return step;

	for (unit = 0; unit < d->geo.nr_units; unit++) {
		u = &d->units[unit];
		if (!mp_unit_added(u) && !u->nr_plugged && !u->busy &&
		    mp_unit_usable(&d->geo, &d->cfg, unit))
			break;
	}
	if (unit == d->geo.nr_units)
		return MP_STEP_FULL;
	if (!mp_growth_guard_allows(d))
		return MP_STEP_GUARD;

	if (mp_plug_sbs(d, unit, 0, 1) != MP_OUT_DONE)
		return MP_STEP_RETRY;
	if (mp_add_unit(d, unit)) {
		/* never leave it half done: give the big block back */
		if (!mp_unit_added(&d->units[unit]))
			mp_unplug_sbs(d, unit, 0, 1);
		return MP_STEP_RETRY;
	}
	return MP_STEP_DONE;
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

/* Unplug one big block, the cheapest first, whatever is in @excess. */
static enum mp_step mp_bbm_unplug_step(struct mp_dev *d, u64 excess)
{
	enum mp_unit_class best_class;
	u64 best;

	lockdep_assert_held(&d->hp_lock);

	if (!mp_unplug_pick(d, &best, &best_class))
		return MP_STEP_RETRY;

	if (mp_unit_added(&d->units[best]) &&
	    mp_bbm_remove(d, best, best_class)) {
		d->units[best].skip = 1;
		return MP_STEP_RETRY;
	}
	/*
	 * Removed from Linux.  If the device refuses the UNPLUG the big
	 * block stays plugged but not added: retried later, or simply
	 * re-added when memory is wanted again.
	 */
	if (mp_unplug_sbs(d, best, 0, 1) == MP_OUT_DONE)
		return MP_STEP_DONE;
	if (d->target_zero) {
		/* remove(): get everything out of Linux first */
		d->units[best].skip = 1;
		return MP_STEP_DONE;
	}
	return MP_STEP_RETRY;
}

const struct mp_mode_ops mp_bbm_ops = {
	.name = "bbm",
	.plug_step = mp_bbm_plug_step,
	.unplug_step = mp_bbm_unplug_step,
};
