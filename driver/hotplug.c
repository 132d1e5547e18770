// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - adding memory to Linux and offlining and removing it (in
 * bounded time), a unit at a time or by memory block; the module reference
 * that memory in Linux needs.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/mm.h>
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/bitmap.h>
#include <linux/sizes.h>
#include <linux/virtio.h>
#include <linux/kthread.h>
#include <linux/sched/signal.h>
#include <linux/completion.h>

#include "memplug.h"
#include "compat.h"
#include "memplug_trace.h"

/*
 * Add one unit that mp_unit_wants_adding().  A unit that fails to be
 * added is set aside for the rest of the pass.
 */
enum mp_step mp_add_stray(struct mp_dev *d)
{
	struct mp_unit *u;
	u64 unit;

	lockdep_assert_held(&d->hp_lock);

	for (unit = 0; unit < d->geo.nr_units; unit++) {
		u = &d->units[unit];
		if (!mp_unit_wants_adding(d, u))
			continue;
		if (!mp_growth_guard_allows(d))
			return MP_STEP_GUARD;
		if (mp_add_unit(d, unit)) {
			u->skip = 1;
			return MP_STEP_RETRY;
		}
		return MP_STEP_DONE;
	}
	return MP_STEP_NONE;
}

/*
 * Add every unit that mp_unit_wants_adding(), once no more memory has to
 * be plugged or unplugged.  MP_STEP_RETRY: some are left.
 */
enum mp_step mp_add_strays(struct mp_dev *d)
{
	enum mp_step step, ret = MP_STEP_DONE;

	do {
		step = mp_add_stray(d);
		if (step == MP_STEP_RETRY)
			ret = MP_STEP_RETRY;
	} while (step == MP_STEP_DONE || step == MP_STEP_RETRY);
	return step == MP_STEP_GUARD ? MP_STEP_RETRY : ret;
}

/*
 * Decide at probe whether memory is added with a self-hosted memmap.
 * Only big block mode uses it: in sub block mode the memmap would live in
 * the first sub blocks of a memory block, which would then have to stay
 * plugged while the block exists (see docs/driver.md).
 */
void mp_memmap_init(struct mp_dev *d)
{
	d->memmap_on_memory = d->geo.bbm &&
			      mp_compat_memmap_on_memory(d->geo.mb_size);
	d->memmap_pages = d->memmap_on_memory ?
			  mp_compat_memmap_pages(d->geo.mb_size) : 0;
	d->per_mb = d->memmap_on_memory && mp_mb_per_unit(d) > 1 &&
		    !MEMPLUG_HAVE_MEMMAP_ON_MEMORY_RANGES;
}

static mhp_t mp_mhp_flags(const struct mp_dev *d)
{
	return MEMPLUG_MHP_FLAGS |
	       (d->memmap_on_memory ? MHP_MEMMAP_ON_MEMORY : MHP_NONE);
}

/* add_memory_driver_managed(), unless fault injection makes it fail */
static int mp_add_memory(struct mp_dev *d, u64 addr, u64 size)
{
	int rc = mp_fault_add(d);

	if (rc)
		return rc;
	return add_memory_driver_managed(d->mgid, addr, size, d->res_name,
					 mp_mhp_flags(d));
}

static u64 mp_mb_index(const struct mp_dev *d, u64 addr)
{
	return (addr - d->geo.first_addr) / d->geo.mb_size;
}

/* hp_lock held */
static void mp_set_present(struct mp_dev *d, u64 unit, u16 nr)
{
	struct mp_unit *u = &d->units[unit];

	lockdep_assert_held(&d->hp_lock);

	if (!u->nr_present && nr) {
		if (!d->nr_added++ && d->vdev)
			dev_info(&d->vdev->dev, "memory added: module pinned until the device is resized to 0\n");
	} else if (u->nr_present && !nr) {
		d->nr_added--;
	}
	u->nr_present = nr;
}

static bool mp_mb_pick(const struct mp_dev *d, u64 first, u32 mb,
		       bool present, const unsigned long *mask)
{
	return test_bit(first + mb, d->mb_present) == present &&
	       (!mask || test_bit(mb, mask));
}

/*
 * Next run of memory blocks of @unit, from @mb on, whose present bit is
 * @present and that @mask (indexed by memory block in the unit; NULL:
 * all) selects.  Returns its length (0: none left) and its first memory
 * block in *@start.  One memory block per run with per_mb (see memplug.h).
 */
static u32 mp_mb_run(const struct mp_dev *d, u64 unit, u32 mb, bool present,
		     const unsigned long *mask, u32 *start)
{
	u64 first = mp_mb_index(d, mp_unit_addr(&d->geo, unit));
	u32 nr_mb = mp_mb_per_unit(d), end;

	while (mb < nr_mb && !mp_mb_pick(d, first, mb, present, mask))
		mb++;
	if (mb == nr_mb)
		return 0;
	for (end = mb + 1; end < nr_mb && !d->per_mb &&
	     mp_mb_pick(d, first, end, present, mask); end++)
		;
	*start = mb;
	return end - mb;
}

/*
 * Mark @nr memory blocks of @unit from @mb (not) added; count them in
 * *@nr_present unless it is NULL.
 */
static void mp_mark_mbs(struct mp_dev *d, u64 unit, u32 mb, u32 nr,
			bool present, u16 *nr_present)
{
	u64 idx = mp_mb_index(d, mp_mb_addr(d, unit, mb));

	if (present)
		bitmap_set(d->mb_present, idx, nr);
	else
		bitmap_clear(d->mb_present, idx, nr);
	if (nr_present)
		*nr_present = present ? *nr_present + nr : *nr_present - nr;
}

struct mp_removal {
	u64 addr;
	u64 size;
	int rc;
	struct completion done;
};

/*
 * The removal thread: runs one offline_and_remove_memory() at a time for
 * the worker, for as long as the device is bound.  One thread, not one per
 * call: creating a kthread per memory block made unplugging 8 GiB in sub
 * block mode 40 % slower (64 threads, each one's allocations spreading
 * per-CPU slabs that offlining then flushes).
 */
static int mp_remover_fn(void *arg)
{
	struct mp_dev *d = arg;
	struct mp_removal *r;

	/* the deadline's SIGKILL makes offline_pages() give up (-EINTR) */
	allow_signal(SIGKILL);
	while (!kthread_should_stop()) {
		wait_event_idle(d->removal_wait,
				READ_ONCE(d->removal) || kthread_should_stop());
		r = READ_ONCE(d->removal);
		if (!r)
			continue;
		r->rc = offline_and_remove_memory(r->addr, r->size);
		spin_lock(&d->removal_lock);
		d->removal = NULL;
		/* a SIGKILL too late for this removal must not stop the next */
		flush_signals(current);
		spin_unlock(&d->removal_lock);
		complete(&r->done);
	}
	return 0;
}

static int mp_start_remover(struct mp_dev *d)
{
	struct task_struct *task;

	if (d->remover)
		return 0;
	task = kthread_run(mp_remover_fn, d, "memplug-remove");
	if (IS_ERR(task))
		return PTR_ERR(task);
	/* our own offlining may go through taken pages (the notifier) */
	mutex_lock(&d->hp_lock);
	d->remover = task;
	mutex_unlock(&d->hp_lock);
	return 0;
}

/* Stop the removal thread: the worker removes nothing any more.  May sleep. */
void mp_stop_remover(struct mp_dev *d)
{
	struct task_struct *task = d->remover;

	if (!task)
		return;
	mutex_lock(&d->hp_lock);
	d->remover = NULL;
	mutex_unlock(&d->hp_lock);
	kthread_stop(task);
}

/*
 * offline_pages() retries migrating a page until it moves or a signal is
 * pending.  A page that never moves (pinned, e.g. referenced by a pipe
 * after vmsplice()) would keep it retrying for good, with the kernel's
 * hotplug locks held.  Our own walks keep such pages away from offlining
 * (they are taken with alloc_contig_range(), which gives up, see
 * mp_remove_unit_bounded()), but a walk is a racy snapshot: a page
 * allocated and pinned after it is offlining's to migrate.  So offlining
 * runs in the removal thread, which accepts SIGKILL and gets it when no
 * memory block of the range went offline for remove_timeout_ms.
 *
 * offline_and_remove_memory() of [@addr, @addr + @size) that way: when
 * interrupted it fails with -EINTR and leaves the memory as it was.  hp_lock
 * dropped, the unit busy.
 */
static int mp_offline_and_remove(struct mp_dev *d, u64 addr, u64 size)
{
	struct mp_removal r = { .addr = addr, .size = size };
	unsigned long timeout = msecs_to_jiffies(READ_ONCE(mp_params.remove_timeout_ms));
	u64 seen;
	int rc;

	rc = mp_start_remover(d);
	if (rc)
		return rc;
	init_completion(&r.done);
	seen = READ_ONCE(d->nr_offlined);
	spin_lock(&d->removal_lock);
	d->removal = &r;
	spin_unlock(&d->removal_lock);
	wake_up(&d->removal_wait);
	while (!wait_for_completion_timeout(&r.done, timeout)) {
		u64 now = READ_ONCE(d->nr_offlined);

		/* a memory block offlined meanwhile: progress, wait on */
		if (now != seen) {
			seen = now;
			continue;
		}
		dev_warn(&d->vdev->dev,
			 "offlining 0x%llx+0x%llx: no memory block offlined for %u ms (a page that does not migrate?): interrupted, trying again later\n",
			 addr, size, jiffies_to_msecs(timeout));
		/* only while it is ours: the thread flushes it when done */
		spin_lock(&d->removal_lock);
		if (d->removal == &r)
			send_sig(SIGKILL, d->remover, 1);
		spin_unlock(&d->removal_lock);
		wait_for_completion(&r.done);
		mutex_lock(&d->hp_lock);
		d->stats.remove_timeouts++;
		mutex_unlock(&d->hp_lock);
		break;
	}
	return r.rc;
}

/*
 * Remove the present memory blocks of @unit that @mask selects (NULL:
 * all), a run per offline_and_remove_memory() call.  Stops at the first
 * failure.  hp_lock dropped, the unit busy.
 */
static int mp_remove_mbs(struct mp_dev *d, u64 unit, const unsigned long *mask,
			 u16 *nr_present)
{
	u32 mb = 0, nr;
	int rc;

	while ((nr = mp_mb_run(d, unit, mb, true, mask, &mb))) {
		rc = mp_offline_and_remove(d, mp_mb_addr(d, unit, mb),
					   (u64)nr * d->geo.mb_size);
		if (rc)
			return rc;
		mp_mark_mbs(d, unit, mb, nr, false, nr_present);
		mb += nr;
	}
	return 0;
}

/*
 * Add the memory blocks of @unit that are not added yet, a run per
 * add_memory_driver_managed() call (the whole unit at once when none is).
 * All or nothing for this call: on failure the blocks it added are
 * removed again (blocks that were present before stay: they may be online
 * and in use); a block that cannot be removed leaves the unit partly
 * added.  hp_lock dropped, the unit busy.
 */
static int mp_add_mbs(struct mp_dev *d, u64 unit, u16 *nr_present)
{
	u32 mb = 0, nr, nr_mb = mp_mb_per_unit(d);
	unsigned long *added;
	int rc = 0;

	added = bitmap_zalloc(nr_mb, GFP_KERNEL);
	if (!added)
		return -ENOMEM;
	while ((nr = mp_mb_run(d, unit, mb, false, NULL, &mb))) {
		rc = mp_add_memory(d, mp_mb_addr(d, unit, mb),
				   (u64)nr * d->geo.mb_size);
		if (rc)
			break;
		mp_mark_mbs(d, unit, mb, nr, true, nr_present);
		bitmap_set(added, mb, nr);
		mb += nr;
	}
	if (rc)
		mp_remove_mbs(d, unit, added, nr_present);
	bitmap_free(added);
	return rc;
}

/*
 * The worker works on @unit with hp_lock dropped (adding, removing): the
 * unit is busy meanwhile, nobody else changes it.
 */
static void mp_unit_release(struct mp_dev *d, u64 unit, enum mp_busy why)
{
	lockdep_assert_held(&d->hp_lock);
	d->units[unit].busy = why;
	mutex_unlock(&d->hp_lock);
}

static void mp_unit_reclaim(struct mp_dev *d, u64 unit, u16 nr_present)
{
	mutex_lock(&d->hp_lock);
	d->units[unit].busy = MP_BUSY_NONE;
	mp_set_present(d, unit, nr_present);
}

/* Add the memory blocks of @unit that are missing, a run per call. */
int mp_add_unit(struct mp_dev *d, u64 unit)
{
	u16 nr_present = d->units[unit].nr_present;
	u64 addr = mp_unit_addr(&d->geo, unit);
	int rc;

	lockdep_assert_held(&d->hp_lock);
	/* memory in Linux needs the module: no add without the reference */
	if (!mp_pin(d))
		return -ENODEV;
	mp_unit_release(d, unit, MP_BUSY_ADD);
	rc = mp_add_mbs(d, unit, &nr_present);
	mp_unit_reclaim(d, unit, nr_present);
	trace_memplug_unit_add(mp_trace_dev(d), addr, d->geo.unit_size, rc);
	if (rc) {
		d->stats.add_failures++;
		dev_warn_ratelimited(&d->vdev->dev, "adding memory 0x%llx+0x%llx failed: %d%s\n",
				     addr, d->geo.unit_size, rc,
				     nr_present ? " (partly added, could not roll back)" : "");
	}
	return rc;
}

/*
 * Offline and remove the memory blocks of @unit that @mask selects (NULL:
 * all), a run per call.  Every removal covers whole add granules (see
 * memplug.h, "Add granule"): with per_mb any memory block, otherwise only
 * the whole unit, which is how it was added.
 */
static int mp_remove_unit_mbs(struct mp_dev *d, u64 unit,
			      const unsigned long *mask)
{
	u16 nr_present = d->units[unit].nr_present;
	u64 addr = mp_unit_addr(&d->geo, unit);
	u64 size = d->geo.unit_size;
	int rc;

	lockdep_assert_held(&d->hp_lock);
	if (mask && !d->per_mb && !bitmap_full(mask, mp_mb_per_unit(d))) {
		/* never split what one add_memory_driver_managed() added */
		WARN_ON_ONCE(1);
		return -EINVAL;
	}
	mp_unit_release(d, unit, MP_BUSY_REMOVE);
	rc = mp_remove_mbs(d, unit, mask, &nr_present);
	mp_unit_reclaim(d, unit, nr_present);
	trace_memplug_unit_remove(mp_trace_dev(d), addr, size, rc);
	if (rc) {
		d->stats.remove_failures++;
		trace_memplug_unplug_failed(mp_trace_dev(d), unit, addr, size,
					    MP_UNPLUG_OFFLINE, rc);
		dev_dbg(&d->vdev->dev, "offlining/removing 0x%llx+0x%llx failed: %d\n",
			addr, size, rc);
	}
	return rc;
}

int mp_remove_unit(struct mp_dev *d, u64 unit)
{
	return mp_remove_unit_mbs(d, unit, NULL);
}

/* Give back what was taken in the online memory blocks of @unit. */
static void mp_unit_give_taken(struct mp_dev *d, u64 unit)
{
	u32 mb;

	for (mb = 0; mb < mp_mb_per_unit(d); mb++)
		if (mp_unit_mb_online(d, unit, mb))
			mp_give_taken(d, mp_mb_pfn(d, unit, mb),
				      mp_mb_pages(d));
}

/* Is memory block @mb of @unit online and not selected by @mask? */
static bool mp_mb_to_take(const struct mp_dev *d, u64 unit, u32 mb,
			  const unsigned long *mask)
{
	return !test_bit(mb, mask) && mp_unit_mb_online(d, unit, mb);
}

/* alloc_contig_range() works in one zone: a run must not leave it */
static bool mp_mb_same_zone(const struct mp_dev *d, u64 unit, u32 a, u32 b)
{
	u64 first = mp_mb_index(d, mp_unit_addr(&d->geo, unit));

	return test_bit(first + a, d->movable) == test_bit(first + b, d->movable);
}

/*
 * Take what is in use in the online memory blocks of @unit that @mask
 * does not select: runs of consecutive ones in one zone at once (without
 * a memmap in between), so that mp_take_in_use() decides for the whole
 * run what to take, before anything migrates.
 */
static int mp_unit_take_in_use(struct mp_dev *d, u64 unit,
			       const unsigned long *mask)
{
	u32 mb, end, nr_mb = mp_mb_per_unit(d);
	int rc = 0;

	for (mb = 0; !rc && mb < nr_mb; mb = end) {
		if (!mp_mb_to_take(d, unit, mb, mask)) {
			end = mb + 1;
			continue;
		}
		for (end = mb + 1; end < nr_mb && !d->memmap_pages &&
		     mp_mb_to_take(d, unit, end, mask) &&
		     mp_mb_same_zone(d, unit, mb, end); end++)
			;
		rc = mp_take_in_use(d, unit, mp_mb_pfn(d, unit, mb),
				    (end - mb - 1) * PHYS_PFN(d->geo.mb_size) +
				    mp_mb_pages(d));
	}
	return rc;
}

/*
 * Offline and remove all of @unit in bounded time.  Offlining retries the
 * migration of a page that will never move for as long as it is not
 * interrupted, so it only gets memory with nothing to migrate:
 * - where each memory block was added alone (per_mb), online memory
 *   blocks that are free go first, removed right away: nothing migrated
 *   later can land in them (offline ones cannot receive anything either:
 *   they go with the rest, so that a failure leaves them offline, as the
 *   admin may have left them);
 * - in the others, pages in use are taken with alloc_contig_range(),
 *   which gives up on what cannot move (see mp_take_in_use());
 * - the rest is removed; taken pages are PageOffline, offlining skips
 *   them (the notifier drops our reference).
 * A free unit thus costs about what adding it did.  On failure what was
 * taken goes back to Linux; memory blocks already removed stay removed
 * (the caller adds them again).
 */
int mp_remove_unit_bounded(struct mp_dev *d, u64 unit)
{
	unsigned long used = 0, free_here = 0, mb_used, mb_free, home = 0;
	u32 mb, nr_mb = mp_mb_per_unit(d);
	unsigned long *quick;
	int rc;

	lockdep_assert_held(&d->hp_lock);

	quick = bitmap_zalloc(nr_mb, GFP_KERNEL);
	if (!quick)
		return -ENOMEM;
	for (mb = 0; mb < nr_mb; mb++) {
		if (!mp_unit_mb_online(d, unit, mb))
			continue;
		mb_free = 0;
		mb_used = mp_range_used(mp_mb_pfn(d, unit, mb),
					mp_mb_pages(d), &mb_free);
		if (!mb_used)
			__set_bit(mb, quick);
		/*
		 * The unplug guard looks at the zone of a page in use: one of
		 * an online memory block (the unit's first page may be a
		 * memmap, or in a memory block removed already, per_mb)
		 */
		else if (!home)
			home = mp_mb_pfn(d, unit, mb);
		used += mb_used;
		free_here += mb_free;
	}
	if (!used || mp_fault_blind_walk(d)) {
		/*
		 * racy hint: a page allocated since is migrated by offlining,
		 * which gives up after remove_timeout_ms
		 */
		rc = mp_remove_unit(d, unit);
		if (!rc)
			d->stats.fast_unplugs++;
		goto out;
	}
	/* no migration for an UNPLUG that cannot be sent */
	rc = -EBUSY;
	if (!mp_request_ready(d))
		goto out;
	rc = -ENOMEM;
	if (!mp_room_for(d, unit, home, PHYS_PFN(d->geo.unit_size), used,
			 free_here))
		goto out;
	/*
	 * Free memory blocks first, where each was added alone; otherwise
	 * the unit goes as a whole, as it was added, and what is in use is
	 * taken from all of its online memory blocks.
	 */
	if (!d->per_mb)
		bitmap_zero(quick, nr_mb);
	rc = bitmap_empty(quick, nr_mb) ? 0 : mp_remove_unit_mbs(d, unit, quick);
	if (!rc)
		rc = mp_unit_take_in_use(d, unit, quick);
	/* a memory block on its way: not now */
	if (!rc && d->units[unit].nr_going)
		rc = -EAGAIN;
	if (!rc)
		rc = mp_remove_unit(d, unit);
	if (rc)
		mp_unit_give_taken(d, unit);
out:
	bitmap_free(quick);
	return rc;
}

/*
 * Memory in Linux runs our memory notifier and online page callback, so
 * the module must stay loaded while any of it is added.  The reference is
 * taken before a unit is plugged and added, never after: rmmod either
 * sees it and fails, or wins the race, and then try_module_get() fails
 * and nothing is added (the module is going; remove() follows).  Returns
 * false then.  hp_lock held.
 */
bool mp_pin(struct mp_dev *d)
{
	lockdep_assert_held(&d->hp_lock);

	if (d->pinned)
		return true;
	if (!try_module_get(THIS_MODULE)) {
		if (d->vdev)
			dev_dbg(&d->vdev->dev, "module going away: not adding memory\n");
		return false;
	}
	d->pinned = true;
	return true;
}

/*
 * End of a worker pass (nothing is being added): drop the reference once
 * no memory is added.  Plugged memory that is not added needs no module
 * code; remove() hands it back.  hp_lock held.
 */
void mp_update_pin(struct mp_dev *d)
{
	lockdep_assert_held(&d->hp_lock);

	if (d->pinned && !d->nr_added && !d->orphan) {
		d->pinned = false;
		module_put(THIS_MODULE);
	}
}
