// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - sub block mode: memory blocks are added when their first sub
 * block is plugged; inside an added memory block, sub blocks are plugged
 * and unplugged individually.  Unplugged sub blocks never reach the buddy
 * (see the online page callback in notifier.c).
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/sizes.h>
#include <linux/page-flags.h>
#include <linux/virtio.h>
#include <linux/virtio_mem.h>

#include "memplug.h"
#include "compat.h"
#include "memplug_trace.h"

/* Most memory plugged, added or removed at once (whole memory blocks). */
#define MP_SBM_BATCH	SZ_1G

static bool mp_sbm_is_plugged(struct mp_dev *d, u64 unit, u32 sb)
{
	return test_bit(mp_sb_index(d, unit, sb), d->plugged);
}

static bool mp_sbm_is_held(struct mp_dev *d, u64 unit, u32 sb)
{
	return test_bit(mp_sb_index(d, unit, sb), d->held);
}

/* PLUG a run of sub blocks; online ones go to Linux at once. */
static enum mp_step mp_sbm_plug_run(struct mp_dev *d, u64 unit, u32 sb,
				    u32 nr)
{
	u32 i;

	if (mp_plug_sbs(d, unit, sb, nr) != MP_OUT_DONE)
		return MP_STEP_RETRY;
	if (mp_unit_online(&d->units[unit]))
		for (i = 0; i < nr; i++)
			mp_sb_give_to_linux(d, unit, sb + i);
	return MP_STEP_DONE;
}

/* UNPLUG @nr whole units from @first, plugged and not in Linux. */
static enum mp_outcome mp_sbm_unplug_units(struct mp_dev *d, u64 first,
					   u64 nr)
{
	return mp_unplug_sbs(d, first, 0, nr * d->geo.sb_per_unit);
}

/* ------------------------------------------------------------------ */
/* plug                                                                */

/* Longest run of sub blocks one request can carry. */
static u32 mp_sbm_max_run(struct mp_dev *d)
{
	return MP_MAX_BLOCKS_PER_REQ / d->geo.dev_blocks_per_sb;
}

/*
 * Plug the lowest run of unplugged sub blocks in an added memory block
 * that is (not) online.
 */
static enum mp_step mp_sbm_fill(struct mp_dev *d, u64 need, bool online)
{
	struct mp_unit *u;
	u64 unit;
	u32 sb, nr;

	for (unit = 0; unit < d->geo.nr_units; unit++) {
		u = &d->units[unit];
		if (!mp_unit_added(u) || u->busy || u->nr_going || u->skip ||
		    u->nr_plugged == d->geo.sb_per_unit ||
		    mp_unit_online(u) != online)
			continue;
		for (sb = 0; sb < d->geo.sb_per_unit; sb++)
			if (!mp_sbm_is_plugged(d, unit, sb) &&
			    mp_sb_usable(&d->geo, &d->cfg, unit, sb))
				break;
		if (sb == d->geo.sb_per_unit)
			continue;
		for (nr = 1; sb + nr < d->geo.sb_per_unit && nr < need; nr++)
			if (mp_sbm_is_plugged(d, unit, sb + nr) ||
			    !mp_sb_usable(&d->geo, &d->cfg, unit, sb + nr))
				break;
		return mp_sbm_plug_run(d, unit, sb, nr);
	}
	return MP_STEP_NONE;
}

/* Can @unit be plugged and added completely, as part of a batch? */
static bool mp_sbm_fresh_full(struct mp_dev *d, u64 unit)
{
	struct mp_unit *u = &d->units[unit];

	return !mp_unit_added(u) && !u->nr_plugged && !u->busy && !u->skip &&
	       !u->nr_going &&
	       mp_sb_usable(&d->geo, &d->cfg, unit, d->geo.sb_per_unit - 1);
}

/*
 * Plug several fresh memory blocks from @first completely with one PLUG
 * request, then add them one by one: memory is removed in the granularity
 * it was added (see memplug.h), and a memory block must be removable
 * alone.  A batch is at most MP_SBM_BATCH bytes (the worker still looks
 * for new requests between batches), what the growth guard lets through
 * and what one request carries.  MP_STEP_NONE: fewer than two memory
 * blocks fit, plug one at a time.
 */
static enum mp_step mp_sbm_plug_fresh_units(struct mp_dev *d, u64 first,
					    u64 need)
{
	u64 max = min_t(u64, MP_SBM_BATCH / d->geo.unit_size,
			MP_MAX_BLOCKS_PER_REQ / d->geo.dev_blocks_per_unit);
	u64 fit = (d->guard_limit - min(d->guard_limit,
					d->nr_plugged * d->geo.sb_size)) /
		  d->geo.unit_size;
	u64 nr, unit;

	max = min3(max, fit, need / d->geo.sb_per_unit);
	for (nr = 0; nr < max && first + nr < d->geo.nr_units; nr++)
		if (!mp_sbm_fresh_full(d, first + nr))
			break;
	if (nr < 2)
		return MP_STEP_NONE;

	if (mp_plug_sbs(d, first, 0, nr * d->geo.sb_per_unit) != MP_OUT_DONE)
		return MP_STEP_RETRY;
	for (unit = first; unit < first + nr; unit++) {
		if (mp_add_unit(d, unit))
			break;
	}
	if (unit == first + nr)
		return MP_STEP_DONE;
	/*
	 * Roll back what is not added; if refused it stays plugged, not
	 * added.  What is added stays: it is plugged and in Linux.
	 */
	mp_sbm_unplug_units(d, unit, first + nr - unit);
	return MP_STEP_RETRY;
}

static enum mp_step mp_sbm_plug_step(struct mp_dev *d, u64 need)
{
	enum mp_step step;
	struct mp_unit *u;
	u64 unit;
	u32 nr;

	lockdep_assert_held(&d->hp_lock);

	need = min_t(u64, need, mp_sbm_max_run(d));

	/* plugged sub blocks whose memory block is not added: add it */
	step = mp_add_stray(d);
	if (step != MP_STEP_NONE)
		return step;

	/* fill memory blocks that are already added, online ones first */
	step = mp_sbm_fill(d, need, true);
	if (step != MP_STEP_NONE)
		return step;
	step = mp_sbm_fill(d, need, false);
	if (step != MP_STEP_NONE)
		return step;

	/* a fresh memory block */
	for (unit = 0; unit < d->geo.nr_units; unit++) {
		u = &d->units[unit];
		if (!mp_unit_added(u) && !u->nr_plugged && !u->busy &&
		    mp_sb_usable(&d->geo, &d->cfg, unit, 0))
			break;
	}
	if (unit == d->geo.nr_units)
		return MP_STEP_FULL;
	if (!mp_growth_guard_allows(d))
		return MP_STEP_GUARD;
	step = mp_sbm_plug_fresh_units(d, unit, need);
	if (step != MP_STEP_NONE)
		return step;
	for (nr = 1; nr < need && nr < d->geo.sb_per_unit; nr++)
		if (!mp_sb_usable(&d->geo, &d->cfg, unit, nr))
			break;
	step = mp_sbm_plug_run(d, unit, 0, nr);
	if (step != MP_STEP_DONE)
		return step;
	if (mp_add_unit(d, unit)) {
		/* roll back; if refused it stays plugged, not added */
		mp_unplug_sbs(d, unit, 0, nr);
		return MP_STEP_RETRY;
	}
	return MP_STEP_DONE;
}

/* ------------------------------------------------------------------ */
/* unplug                                                              */

/* Highest run of plugged, not held sub blocks, at most @need long. */
static u32 mp_sbm_top_run(struct mp_dev *d, u64 unit, u64 need, u32 *first)
{
	int sb;
	u32 nr = 0;

	need = min_t(u64, need, mp_sbm_max_run(d));

	for (sb = d->geo.sb_per_unit - 1; sb >= 0; sb--) {
		bool ok = mp_sbm_is_plugged(d, unit, sb) &&
			  !mp_sbm_is_held(d, unit, sb);

		if (ok) {
			*first = sb;
			if (++nr >= need)
				break;
		} else if (nr) {
			break;
		}
	}
	return nr;
}

/* Taken pages of a run: UNPLUG, or give them back when refused. */
static enum mp_step mp_sbm_unplug_taken(struct mp_dev *d, u64 unit, u32 first,
					u32 nr)
{
	u32 i;

	switch (mp_unplug_sbs(d, unit, first, nr)) {
	case MP_OUT_DONE:
		return MP_STEP_DONE;
	case MP_OUT_REFUSED:
		/* the device said no: give the memory back */
		for (i = 0; i < nr; i++)
			mp_sb_give_to_linux(d, unit, first + i);
		return MP_STEP_RETRY;
	default:
		/* ambiguous: the sub blocks are held, their pages stay offline */
		return MP_STEP_RETRY;
	}
}

/*
 * Unplug sub blocks of an online memory block: take the highest run of
 * plugged sub blocks with one alloc_contig_range(); if that fails, try
 * single sub blocks from the top.
 */
static enum mp_step mp_sbm_unplug_online(struct mp_dev *d, u64 unit,
					 u64 need)
{
	unsigned long sb_pages = PHYS_PFN(d->geo.sb_size);
	u32 first = 0, nr;
	int sb;

	nr = mp_sbm_top_run(d, unit, need, &first);
	if (nr > 1 &&
	    !mp_take_range(d, unit, PHYS_PFN(mp_sb_addr(&d->geo, unit, first)),
			   nr * sb_pages))
		return mp_sbm_unplug_taken(d, unit, first, nr);

	for (sb = d->geo.sb_per_unit - 1; sb >= 0; sb--) {
		if (!mp_sbm_is_plugged(d, unit, sb) ||
		    mp_sbm_is_held(d, unit, sb))
			continue;
		if (mp_take_range(d, unit,
				  PHYS_PFN(mp_sb_addr(&d->geo, unit, sb)),
				  sb_pages))
			continue;
		return mp_sbm_unplug_taken(d, unit, sb, 1);
	}
	d->units[unit].skip = 1;
	return MP_STEP_DONE;
}

/*
 * Whole units that go completely, several at a time: @last (the unit the
 * unplug order picked) and the units right below it of the same class.
 * Free online movable memory blocks are offlined and removed one by one,
 * as they were added, from the top; units not added are unplugged with
 * one request.  MP_STEP_NONE: no batch of two or more, go unit by unit.
 */
static enum mp_step mp_sbm_unplug_batch(struct mp_dev *d, u64 last,
					enum mp_unit_class class, u64 need)
{
	u64 max = min_t(u64, MP_SBM_BATCH / d->geo.unit_size,
			MP_MAX_BLOCKS_PER_REQ / d->geo.dev_blocks_per_unit);
	u64 nr, first, removed;
	struct mp_unit *u;

	max = min(max, need / d->geo.sb_per_unit);
	for (nr = 1; nr < max && nr <= last; nr++) {
		u = &d->units[last - nr];
		if (u->nr_plugged != d->geo.sb_per_unit || u->nr_held ||
		    mp_unit_class(u) != class)
			break;
	}
	if (nr < 2)
		return MP_STEP_NONE;
	first = last + 1 - nr;

	if (class == MP_CLASS_NOT_ADDED) {
		if (mp_sbm_unplug_units(d, first, nr) == MP_OUT_DONE)
			return MP_STEP_DONE;
		if (d->target_zero) {
			/* remove(): get everything out of Linux first */
			d->units[last].skip = 1;
			return MP_STEP_DONE;
		}
		return MP_STEP_RETRY;
	}
	/* racy hint as for one unit: offlining migrates what came since */
	if (!mp_range_is_free(PHYS_PFN(mp_unit_addr(&d->geo, first)),
			      PHYS_PFN(nr * d->geo.unit_size)))
		return MP_STEP_NONE;
	for (removed = 0; removed < nr; removed++) {
		u = &d->units[last - removed];
		if (u->busy || u->nr_going || mp_remove_unit(d, last - removed))
			break;
		d->stats.fast_unplugs++;
	}
	/* none removed: go unit by unit; else the next step unplugs them */
	return removed ? MP_STEP_DONE : MP_STEP_NONE;
}

static enum mp_step mp_sbm_unplug_step(struct mp_dev *d, u64 need)
{
	enum mp_unit_class best_class;
	enum mp_step step;
	struct mp_unit *u;
	u32 first = 0, nr;
	u64 best;

	lockdep_assert_held(&d->hp_lock);

	if (!mp_unplug_pick(d, &best, &best_class))
		return MP_STEP_RETRY;
	u = &d->units[best];

	if (u->nr_plugged == d->geo.sb_per_unit && !u->nr_held &&
	    (best_class == MP_CLASS_NOT_ADDED ||
	     best_class == MP_CLASS_MOVABLE)) {
		step = mp_sbm_unplug_batch(d, best, best_class, need);
		if (step != MP_STEP_NONE)
			return step;
	}

	if (best_class != MP_CLASS_NOT_ADDED && u->nr_plugged <= need &&
	    !u->nr_held) {
		/*
		 * All of it goes: offline and remove the memory block, the
		 * next step unplugs its sub blocks.  Pages in use are taken
		 * first (bounded in time, where offlining is not).  If that
		 * fails (a page that never moves, no room for all of it),
		 * sub blocks are taken and unplugged a run at a time below:
		 * what can go still goes.
		 */
		if (best_class == MP_CLASS_OFFLINE) {
			if (mp_remove_unit(d, best))
				u->skip = 1;
			return MP_STEP_DONE;
		}
		if (!mp_remove_unit_bounded(d, best))
			return MP_STEP_DONE;
	}

	if (best_class == MP_CLASS_NOT_ADDED ||
	    best_class == MP_CLASS_OFFLINE) {
		/* Linux does not use these pages: just unplug */
		nr = mp_sbm_top_run(d, best, need, &first);
		if (!nr) {
			u->skip = 1;
			return MP_STEP_DONE;
		}
		if (mp_unplug_sbs(d, best, first, nr) == MP_OUT_DONE)
			return MP_STEP_DONE;
		if (d->target_zero) {
			/* remove(): get everything out of Linux first */
			u->skip = 1;
			return MP_STEP_DONE;
		}
		return MP_STEP_RETRY;
	}
	return mp_sbm_unplug_online(d, best, need);
}

/* Memory blocks without plugged sub blocks go away. */
static enum mp_step mp_sbm_remove_empty(struct mp_dev *d)
{
	enum mp_step step = MP_STEP_DONE;
	struct mp_unit *u;
	u64 unit;

	for (unit = 0; unit < d->geo.nr_units; unit++) {
		u = &d->units[unit];
		if (!mp_unit_added(u) || u->nr_plugged || u->busy || u->nr_going)
			continue;
		if (mp_remove_unit(d, unit))
			step = MP_STEP_RETRY;
	}
	return step;
}

const struct mp_mode_ops mp_sbm_ops = {
	.name = "sbm",
	.plug_step = mp_sbm_plug_step,
	.unplug_step = mp_sbm_unplug_step,
	.finish = mp_sbm_remove_empty,
};
