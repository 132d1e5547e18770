// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - the sub block, memory block and pageblock state of a device (bitmaps in
 * struct mp_dev) and the questions asked about it.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/bitmap.h>
#include <linux/pageblock-flags.h>

#include "memplug.h"
#include "compat.h"
#include "memplug_trace.h"

void mp_mark_plugged(struct mp_dev *d, u64 unit, u32 sb, u32 nr, bool held)
{
	struct mp_unit *u = &d->units[unit];
	u64 idx;

	lockdep_assert_held(&d->hp_lock);

	for (idx = mp_sb_index(d, unit, sb); nr--; idx++) {
		if (!__test_and_set_bit(idx, d->plugged)) {
			d->nr_plugged++;
			u->nr_plugged++;
		}
		if (held && !__test_and_set_bit(idx, d->held)) {
			d->nr_held++;
			u->nr_held++;
		}
	}
}

void mp_mark_unplugged(struct mp_dev *d, u64 unit, u32 sb, u32 nr)
{
	struct mp_unit *u = &d->units[unit];
	u64 idx;

	lockdep_assert_held(&d->hp_lock);

	for (idx = mp_sb_index(d, unit, sb); nr--; idx++) {
		if (__test_and_clear_bit(idx, d->plugged)) {
			d->nr_plugged--;
			u->nr_plugged--;
		}
		if (__test_and_clear_bit(idx, d->held)) {
			d->nr_held--;
			u->nr_held--;
		}
	}
}

/* Are the pages of this sub block meant to be used by Linux? */
bool mp_sb_in_linux(const struct mp_dev *d, u64 unit, u32 sb)
{
	u64 idx = mp_sb_index(d, unit, sb);

	return test_bit(idx, d->plugged) && !test_bit(idx, d->held);
}

bool mp_unit_online(const struct mp_unit *u)
{
	return mp_unit_added(u) && u->nr_online;
}

enum mp_unit_class mp_unit_class(const struct mp_unit *u)
{
	return mp_classify(u->busy || u->nr_going || u->skip, mp_unit_added(u),
			   u->nr_online, u->nr_movable);
}

/* Is any unit failed this pass, in transition or holding sub blocks? */
bool mp_any_unit_blocked(const struct mp_dev *d)
{
	const struct mp_unit *u;
	u64 unit;

	for (unit = 0; unit < d->geo.nr_units; unit++) {
		u = &d->units[unit];
		if (u->skip || u->busy || u->nr_going || u->nr_held)
			return true;
	}
	return false;
}

/* Is the memory block at @addr online? */
static bool mp_mb_online(const struct mp_dev *d, u64 addr)
{
	return test_bit((addr - d->geo.first_addr) / d->geo.mb_size,
			d->online);
}

bool mp_unit_mb_online(const struct mp_dev *d, u64 unit, u32 mb)
{
	return mp_mb_online(d, mp_mb_addr(d, unit, mb));
}

/*
 * The part of memory block @mb of @unit that pages come and go in: with
 * memmap_on_memory its first memmap_pages hold the memmap and are never
 * online.
 */
unsigned long mp_mb_pfn(const struct mp_dev *d, u64 unit, u32 mb)
{
	return PHYS_PFN(mp_mb_addr(d, unit, mb)) + d->memmap_pages;
}

unsigned long mp_mb_pages(const struct mp_dev *d)
{
	return PHYS_PFN(d->geo.mb_size) - d->memmap_pages;
}

/*
 * Is the pageblock of @pfn meant for Linux: its sub block plugged, not
 * held?  Taken and meant for Linux: taken for a removal (or for an
 * UNPLUG not sent yet), not unplugged after it was taken.
 */
bool mp_pfn_in_linux(const struct mp_dev *d, unsigned long pfn)
{
	long long unit = mp_addr_to_unit(&d->geo, PFN_PHYS(pfn));

	return unit >= 0 &&
	       mp_sb_in_linux(d, unit,
			      (u32)((PFN_PHYS(pfn) -
				     mp_unit_addr(&d->geo, unit)) /
				    d->geo.sb_size));
}

bool mp_pfn_taken_in_linux(const struct mp_dev *d, unsigned long pfn)
{
	return mp_pfn_taken(d, pfn) && mp_pfn_in_linux(d, pfn);
}

/*
 * Plugged sub blocks that Linux should have but does not: after an add
 * failed, an UNPLUG was refused, adoption.  Not while the unit is in
 * transition or was given up on for this pass.
 */
bool mp_unit_wants_adding(const struct mp_dev *d, const struct mp_unit *u)
{
	return !mp_unit_complete(d, u) && u->nr_plugged > u->nr_held &&
	       !u->busy && !u->nr_going && !u->skip;
}

/*
 * The unit to unplug from next, among those with plugged sub blocks that
 * are not held: the cheapest class first (mp_unplug_before()).  False when
 * all of them are in transition.
 */
bool mp_unplug_pick(const struct mp_dev *d, u64 *unit,
		    enum mp_unit_class *class)
{
	enum mp_unit_class best_class = MP_CLASS_BUSY, c;
	const struct mp_unit *u;
	u64 i, best = 0;

	for (i = 0; i < d->geo.nr_units; i++) {
		u = &d->units[i];
		if (u->nr_plugged <= u->nr_held)
			continue;
		c = mp_unit_class(u);
		if (mp_unplug_before(c, i, best_class, best)) {
			best_class = c;
			best = i;
		}
	}
	*unit = best;
	*class = best_class;
	return best_class != MP_CLASS_BUSY;
}
