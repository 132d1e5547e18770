// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - online page callback, memory notifier, add/remove helpers and
 * the sub block state shared by both modes.
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
#include <linux/sched/task.h>
#include <linux/completion.h>

#include "memplug.h"
#include "compat.h"
#include "memplug_trace.h"

/*
 * offline_pages() retries migrating a page until it moves or a signal is
 * pending.  A page that never moves (pinned, e.g. referenced by a pipe
 * after vmsplice()) would keep it retrying for good, with the kernel's
 * hotplug locks held.  Our own walks keep such pages away from offlining
 * (they are taken with alloc_contig_range(), which gives up, see
 * mp_remove_unit_bounded()), but a walk is a racy snapshot: a page
 * allocated and pinned after it is offlining's to migrate.  So offlining
 * runs in a thread that accepts SIGKILL and gets it when no memory block
 * of the range went offline for this long.
 */
#define MP_REMOVE_TIMEOUT_MIN_MS	1000
#define MP_REMOVE_TIMEOUT_MAX_MS	(60 * 60 * 1000)

static unsigned int remove_timeout_ms = 60000;

static int mp_set_remove_timeout(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, MP_REMOVE_TIMEOUT_MIN_MS,
				     MP_REMOVE_TIMEOUT_MAX_MS);
}

static const struct kernel_param_ops mp_remove_timeout_ops = {
	.set = mp_set_remove_timeout,
	.get = param_get_uint,
};

module_param_cb(remove_timeout_ms, &mp_remove_timeout_ops, &remove_timeout_ms,
		0644);
MODULE_PARM_DESC(remove_timeout_ms,
		 "How long offlining may go without a memory block going offline before it is interrupted (it fails, the memory stays, the worker tries again later), in ms, 1000 .. 3600000 (default: 60000)");

/* see memplug.h, "Locking" */
static DEFINE_MUTEX(mp_cb_lock);
static unsigned int mp_cb_users;	/* mp_cb_lock */
static DEFINE_MUTEX(mp_devices_lock);
static LIST_HEAD(mp_devices);		/* mp_devices_lock */

/* ------------------------------------------------------------------ */
/* sub block state (hp_lock held)                                      */

void mp_mark_plugged(struct mp_dev *d, u64 unit, u32 sb, u32 nr, bool held)
{
	struct mp_unit *u = &d->units[unit];
	u64 idx;

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

static void mp_clear_held(struct mp_dev *d, u64 unit, u32 sb)
{
	if (__test_and_clear_bit(mp_sb_index(d, unit, sb), d->held)) {
		d->nr_held--;
		d->units[unit].nr_held--;
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
	return u->added && u->nr_online;
}

enum mp_unit_class mp_unit_class(const struct mp_unit *u)
{
	return mp_classify(u->busy || u->nr_going || u->skip, u->added,
			   u->nr_online, u->nr_movable);
}

/* ------------------------------------------------------------------ */
/* free range check (fast unplug)                                      */

/*
 * Racy hint: how many pages of the range are in use, i.e. neither free in
 * the buddy nor logically offline.  *@nr_free gets the free ones.
 */
unsigned long mp_range_used(unsigned long pfn, unsigned long nr_pages,
			    unsigned long *nr_free)
{
	unsigned long end = pfn + nr_pages;
	unsigned long used = 0, free = 0, step;
	struct page *page;

	while (pfn < end) {
		page = pfn_to_page(pfn);
		step = 1;
		if (PageOffline(page)) {
			/* ours, or being onlined: neither used nor free */
		} else if (PageBuddy(page)) {
			step = READ_ONCE(page_private(page));
			step = step > MEMPLUG_MAX_ORDER ? 1 : 1UL << step;
			free += step;
		} else if (is_free_buddy_page(page)) {
			free++;
		} else if (PageHead(page)) {
			step = max_t(unsigned long, compound_nr(page), 1);
			used += step;
		} else {
			used++;
		}
		pfn += min(step, end - pfn);
		if (!(pfn & (PAGES_PER_SECTION - 1)))
			cond_resched();
	}
	if (nr_free)
		*nr_free = free;
	return used;
}

/*
 * Racy hint: true when every page in the range is free in the buddy or
 * logically offline, i.e. offlining will not have to migrate anything.
 */
bool mp_range_is_free(unsigned long pfn, unsigned long nr_pages)
{
	return !mp_range_used(pfn, nr_pages, NULL);
}

/*
 * Is there room elsewhere for @used pages in use in the ranges about to be
 * taken (@free_here free pages in them; @pfn, a page of them in use, says
 * which zone they leave)?  Migrating them when the rest of
 * the guest cannot hold them only ends in allocation failures (6.1 even
 * logs each one) or reclaim storms; the host learns from plugged_size >
 * requested_size that the guest could not shrink further.
 */
static bool mp_room_for(struct mp_dev *d, u64 unit, unsigned long pfn,
			unsigned long nr_pages, unsigned long used,
			unsigned long free_here)
{
	u64 avail = used ? mp_unplug_room(pfn, free_here) : 0;

	/* the unplug guard (guard.c) decides, and says so in sysfs */
	if (mp_unplug_guard_allows(d, unit, PFN_PHYS((u64)used), avail))
		return true;
	trace_memplug_unplug_failed(mp_trace_dev(d), unit, PFN_PHYS(pfn),
				    PFN_PHYS(nr_pages), MP_UNPLUG_NO_ROOM,
				    -ENOMEM);
	return false;
}

/*
 * Add units that have plugged (not held) sub blocks but are not (completely)
 * added: after adoption, or after an add failed or an UNPLUG was refused.
 * Called when no more memory has to be plugged or unplugged.
 */
int mp_add_strays(struct mp_dev *d)
{
	struct mp_unit *u;
	u64 unit;
	int rc = 0;

	for (unit = 0; unit < d->geo.nr_units; unit++) {
		u = &d->units[unit];
		if (mp_unit_complete(d, u) || u->nr_plugged <= u->nr_held ||
		    u->busy || u->nr_going || u->skip)
			continue;
		/* the growth guard applies to strays too */
		if (!mp_guard_allows(d))
			return -EAGAIN;
		if (mp_add_unit(d, unit)) {
			u->skip = 1;
			rc = -EAGAIN;
		}
	}
	return rc;
}

/*
 * One worker pass for either mode: plug or unplug one step at a time until
 * the plugged amount matches @wanted, then add plugged units that are not
 * in Linux yet.  The mode supplies the steps: @plug gets the number of sub
 * blocks missing, @unplug the number in excess.  Returns 0, an error from
 * a step (retry later), or -EINTR when the worker must yield.
 */
int mp_converge(struct mp_dev *d, u64 wanted,
		int (*plug)(struct mp_dev *d, u64 missing),
		int (*unplug)(struct mp_dev *d, u64 excess))
{
	u64 unit;
	int rc = 0;

	for (unit = 0; unit < d->geo.nr_units; unit++)
		d->units[unit].skip = 0;

	while (!rc && d->nr_plugged != wanted) {
		if (mp_worker_should_yield(d))
			return -EINTR;
		if (d->nr_plugged < wanted) {
			/* pinned before anything is plugged and added */
			if (!mp_pin(d)) {
				rc = -EAGAIN;
				break;
			}
			rc = plug(d, wanted - d->nr_plugged);
			if (rc == -ENOMEM) {
				/* growth guard: re-checked with backoff */
				rc = -EAGAIN;
				break;
			}
			if (rc == -ENOSPC) {
				/* blocked units may free up: retry later */
				if (mp_any_unit_blocked(d))
					break;
				dev_warn_ratelimited(&d->vdev->dev,
						     "requested size 0x%llx does not fit in the usable region\n",
						     d->cfg.requested_size);
				rc = 0;
				break;
			}
		} else {
			rc = unplug(d, d->nr_plugged - wanted);
		}
		cond_resched();
	}
	if (!rc && !d->target_zero && d->nr_plugged == wanted)
		rc = mp_add_strays(d);
	return rc;
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

/*
 * Take a range in use as a whole when more than 1/MP_TAKE_WHOLE_RATIO of
 * its pageblocks hold pages in use: zeroing the free rest then costs less
 * than migrating what lands in it twice.
 */
#define MP_TAKE_WHOLE_RATIO	8

/*
 * d->contig has one bit per pageblock, the granule alloc_contig_range()
 * isolates: what is taken is whole sub blocks (SBM) or just the
 * pageblocks in use of a unit about to be removed (both modes).
 */
static u64 mp_contig_idx(const struct mp_dev *d, unsigned long pfn)
{
	return (pfn - PHYS_PFN(d->geo.first_addr)) / pageblock_nr_pages;
}

static bool mp_pfn_taken(const struct mp_dev *d, unsigned long pfn)
{
	return test_bit(mp_contig_idx(d, pfn), d->contig);
}

/* End of the pageblock of @pfn, at most @end. */
static unsigned long mp_pageblock_end(unsigned long pfn, unsigned long end)
{
	return min(ALIGN(pfn + 1, pageblock_nr_pages), end);
}

/* Is the memory block at @addr online? */
bool mp_mb_online(const struct mp_dev *d, u64 addr)
{
	return test_bit((addr - d->geo.first_addr) / d->geo.mb_size,
			d->online);
}

static u64 mp_mb_addr(const struct mp_dev *d, u64 unit, u32 mb)
{
	return mp_unit_addr(&d->geo, unit) + (u64)mb * d->geo.mb_size;
}

static bool mp_unit_mb_online(const struct mp_dev *d, u64 unit, u32 mb)
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
 * Hand pages that never left the onlining path (kept PageOffline with a
 * refcount of 1 by the online page callback) to the buddy, in naturally
 * aligned chunks.
 */
static void mp_online_fresh(unsigned long pfn, unsigned long nr_pages)
{
	unsigned long end = pfn + nr_pages;
	unsigned int order;

	while (pfn < end) {
		order = min_t(unsigned int, MEMPLUG_MAX_ORDER, __ffs(pfn));
		while (pfn + (1UL << order) > end)
			order--;
		mp_compat_online_pages(pfn_to_page(pfn), order);
		pfn += 1UL << order;
	}
}

/*
 * Give back pages we allocated with alloc_contig_range().  Somebody may
 * still hold a speculative reference (compaction, GUP-fast, a page cache
 * lookup that raced with the migration), so the pages are put, not
 * reinitialised: free_contig_range() drops our reference and the last
 * put frees the page.  Undoes the managed count of mp_contig_take().
 */
static void mp_free_taken(unsigned long pfn, unsigned long nr_pages)
{
	unsigned long i;

	/* managed before they are free: never more free than managed */
	adjust_managed_page_count(pfn_to_page(pfn), nr_pages);
	page_offline_begin();
	for (i = 0; i < nr_pages; i++)
		mp_clear_page_offline(pfn_to_page(pfn + i));
	page_offline_end();
	free_contig_range(pfn, nr_pages);
}

/*
 * Is the pageblock of @pfn meant for Linux: its sub block plugged, not
 * held?  Taken and meant for Linux: taken for a removal (or for an
 * UNPLUG not sent yet), not unplugged after it was taken.
 */
static bool mp_pfn_in_linux(const struct mp_dev *d, unsigned long pfn)
{
	long long unit = mp_addr_to_unit(&d->geo, PFN_PHYS(pfn));

	return unit >= 0 &&
	       mp_sb_in_linux(d, unit,
			      (u32)((PFN_PHYS(pfn) -
				     mp_unit_addr(&d->geo, unit)) /
				    d->geo.sb_size));
}

static bool mp_pfn_taken_in_linux(const struct mp_dev *d, unsigned long pfn)
{
	return mp_pfn_taken(d, pfn) && mp_pfn_in_linux(d, pfn);
}

/* Does the pageblock at @pfn go back to the buddy in mp_give()? */
static bool mp_give_back(const struct mp_dev *d, unsigned long pfn, bool all)
{
	return all ? mp_pfn_taken(d, pfn) : mp_pfn_taken_in_linux(d, pfn);
}

/*
 * Give the pages of [pfn, pfn + nr_pages), in one online memory block, to
 * the buddy.  @all: the range is an unplugged sub block being given to
 * Linux, every page in it is ours: taken pageblocks go back with
 * free_contig_range(), the others as pages kept offline while onlining.
 * Else only the taken pageblocks of sub blocks meant for Linux go back
 * (a removal that failed); the others are in the buddy already, or
 * unplugged and must stay ours.
 */
static void mp_give(struct mp_dev *d, unsigned long pfn,
		    unsigned long nr_pages, bool all)
{
	unsigned long end = pfn + nr_pages, next;
	bool taken;

	while (pfn < end) {
		/* a run of pageblocks that are all given back, or all not */
		taken = mp_give_back(d, pfn, all);
		next = pfn;
		do {
			if (taken)
				__clear_bit(mp_contig_idx(d, next), d->contig);
			next = mp_pageblock_end(next, end);
		} while (next < end && mp_give_back(d, next, all) == taken);
		if (taken)
			mp_free_taken(pfn, next - pfn);
		else if (all)
			mp_online_fresh(pfn, next - pfn);
		pfn = next;
	}
}

/* Every page of the range is ours: give all of it to Linux. */
void mp_give_range(struct mp_dev *d, unsigned long pfn,
		   unsigned long nr_pages)
{
	mp_give(d, pfn, nr_pages, true);
}

/* Give back what a failed removal took in the online range. */
void mp_give_taken(struct mp_dev *d, unsigned long pfn,
		   unsigned long nr_pages)
{
	mp_give(d, pfn, nr_pages, false);
}

void mp_sb_give_to_linux(struct mp_dev *d, u64 unit, u32 sb)
{
	mp_give_range(d, PHYS_PFN(mp_sb_addr(&d->geo, unit, sb)),
		      PHYS_PFN(d->geo.sb_size));
}

/*
 * Take an online range of @unit away from Linux with alloc_contig_range()
 * (bounded: it gives up on pages it cannot migrate) and mark the pages
 * PageOffline, owned by us with a refcount of 1; d->contig records them.
 * The range is whole pageblocks of one memory block.  hp_lock is dropped
 * meanwhile; the unit is busy so the notifier refuses offlining it.
 */
static int mp_contig_take(struct mp_dev *d, u64 unit, unsigned long pfn,
			  unsigned long nr_pages)
{
	struct mp_unit *u = &d->units[unit];
	unsigned long i;
	u64 first;
	int rc;

	/*
	 * Callers take range after range, and with init_on_alloc each take
	 * zeroes what it gets: give the CPU up in between, or the worker
	 * trips the soft lockup watchdog.
	 */
	cond_resched();
	/* no migration for an UNPLUG that cannot be sent */
	if (!mp_request_ready(d))
		return -EBUSY;
	u->busy = MP_BUSY_CONTIG;
	mutex_unlock(&d->hp_lock);
	rc = mp_compat_alloc_contig(pfn, nr_pages);
	mutex_lock(&d->hp_lock);
	u->busy = MP_BUSY_NONE;
	if (rc) {
		d->stats.contig_failures++;
		trace_memplug_unplug_failed(mp_trace_dev(d), unit, PFN_PHYS(pfn),
					    PFN_PHYS(nr_pages),
					    MP_UNPLUG_CONTIG, rc);
		return rc;
	}
	page_offline_begin();
	for (i = 0; i < nr_pages; i++)
		mp_set_page_offline(pfn_to_page(pfn + i));
	page_offline_end();
	adjust_managed_page_count(pfn_to_page(pfn), -(long)nr_pages);
	first = mp_contig_idx(d, pfn);
	bitmap_set(d->contig, first,
		   mp_contig_idx(d, pfn + nr_pages - 1) - first + 1);
	d->stats.taken_pages += nr_pages;
	return 0;
}

/* Take whole sub blocks of @unit, if the unplug guard sees room. */
int mp_take_range(struct mp_dev *d, u64 unit, unsigned long pfn,
		  unsigned long nr_pages)
{
	unsigned long used, free_here;

	used = mp_range_used(pfn, nr_pages, &free_here);
	if (!mp_room_for(d, unit, pfn, nr_pages, used, free_here))
		return -ENOMEM;
	return mp_contig_take(d, unit, pfn, nr_pages);
}

/* ------------------------------------------------------------------ */
/* add / remove (hp_lock held on entry and exit, dropped inside)       */

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

	if (!u->nr_present && nr) {
		if (!d->nr_added++ && d->vdev)
			dev_info(&d->vdev->dev, "memory added: module pinned until the device is resized to 0\n");
	} else if (u->nr_present && !nr) {
		d->nr_added--;
	}
	u->nr_present = nr;
	u->added = !!nr;
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

static int mp_removal_fn(void *arg)
{
	struct mp_removal *r = arg;

	/* the deadline's SIGKILL makes offline_pages() give up (-EINTR) */
	allow_signal(SIGKILL);
	r->rc = offline_and_remove_memory(r->addr, r->size);
	complete(&r->done);
	return 0;
}

/*
 * offline_and_remove_memory() of [@addr, @addr + @size), interrupted
 * when no memory block went offline for remove_timeout_ms (see there):
 * it then fails with -EINTR and leaves the memory as it was.  hp_lock
 * dropped, the unit busy.
 */
static int mp_offline_and_remove(struct mp_dev *d, u64 addr, u64 size)
{
	struct mp_removal r = { .addr = addr, .size = size };
	unsigned long timeout = msecs_to_jiffies(READ_ONCE(remove_timeout_ms));
	struct task_struct *task;
	bool interrupted = false;
	u64 seen;

	init_completion(&r.done);
	task = kthread_create(mp_removal_fn, &r, "memplug-remove");
	if (IS_ERR(task))
		return PTR_ERR(task);
	/* the task may exit as soon as it completes: keep it for send_sig() */
	get_task_struct(task);
	/* our own offlining may go through taken pages (the notifier) */
	mutex_lock(&d->hp_lock);
	d->remover = task;
	mutex_unlock(&d->hp_lock);
	seen = READ_ONCE(d->nr_offlined);
	wake_up_process(task);
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
		/* again until it ends: a signal before allow_signal() is lost */
		do
			send_sig(SIGKILL, task, 1);
		while (!wait_for_completion_timeout(&r.done, HZ));
		interrupted = true;
		break;
	}
	put_task_struct(task);
	mutex_lock(&d->hp_lock);
	d->remover = NULL;
	if (interrupted)
		d->stats.remove_timeouts++;
	mutex_unlock(&d->hp_lock);
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
 * Add, or offline and remove, memory blocks of @unit: adding adds all that
 * are missing, removing removes those that @mask selects (NULL: all), each
 * run of them with one call.  Every removal covers whole add granules (see
 * memplug.h, "Add granule"): with per_mb any memory block, otherwise only
 * the whole unit, which is how it was added.  hp_lock held, dropped
 * meanwhile; the unit is busy.
 */
static int mp_hotplug(struct mp_dev *d, u64 unit, bool add,
		      const unsigned long *mask)
{
	struct mp_unit *u = &d->units[unit];
	u64 addr = mp_unit_addr(&d->geo, unit);
	u64 size = d->geo.unit_size;
	u16 nr_present = u->nr_present;
	int rc;

	lockdep_assert_held(&d->hp_lock);
	/* memory in Linux needs the module: no add without the reference */
	if (add && !mp_pin(d))
		return -ENODEV;
	if (!add && mask && !d->per_mb &&
	    !bitmap_full(mask, mp_mb_per_unit(d))) {
		/* never split what one add_memory_driver_managed() added */
		WARN_ON_ONCE(1);
		return -EINVAL;
	}
	u->busy = add ? MP_BUSY_ADD : MP_BUSY_REMOVE;
	mutex_unlock(&d->hp_lock);
	rc = add ? mp_add_mbs(d, unit, &nr_present) :
		   mp_remove_mbs(d, unit, mask, &nr_present);
	mutex_lock(&d->hp_lock);
	u->busy = MP_BUSY_NONE;
	mp_set_present(d, unit, nr_present);
	if (add)
		trace_memplug_unit_add(mp_trace_dev(d), addr, size, rc);
	else
		trace_memplug_unit_remove(mp_trace_dev(d), addr, size, rc);
	if (!rc)
		return 0;
	if (add) {
		d->stats.add_failures++;
		dev_warn_ratelimited(&d->vdev->dev, "adding memory 0x%llx+0x%llx failed: %d%s\n",
				     addr, size, rc,
				     nr_present ? " (partly added, could not roll back)" : "");
		return rc;
	}
	d->stats.remove_failures++;
	trace_memplug_unplug_failed(mp_trace_dev(d), unit, addr, size,
				    MP_UNPLUG_OFFLINE, rc);
	dev_dbg(&d->vdev->dev, "offlining/removing 0x%llx+0x%llx failed: %d\n",
		addr, size, rc);
	return rc;
}

int mp_add_unit(struct mp_dev *d, u64 unit)
{
	return mp_hotplug(d, unit, true, NULL);
}

int mp_remove_unit(struct mp_dev *d, u64 unit)
{
	return mp_hotplug(d, unit, false, NULL);
}

/* Remove the memory blocks of @unit that @mask selects (per_mb only). */
static int mp_remove_unit_mbs(struct mp_dev *d, u64 unit,
			      const unsigned long *mask)
{
	return mp_hotplug(d, unit, false, mask);
}

/* Does the pageblock of @pfn (up to @end) hold a page in use, not taken? */
static bool mp_pageblock_used(const struct mp_dev *d, unsigned long pfn,
			      unsigned long end)
{
	return !mp_pfn_taken(d, pfn) &&
	       mp_range_used(pfn, mp_pageblock_end(pfn, end) - pfn, NULL);
}

/*
 * With init_on_alloc, alloc_contig_range() zeroes everything it takes in
 * one loop that never reschedules: a whole big block at once keeps the
 * worker on the CPU long enough under TCG for the soft lockup watchdog.
 * Take at most this much per call (mp_contig_take() reschedules between).
 */
#define MP_TAKE_MAX_PAGES	PHYS_PFN(SZ_128M)

/* mp_contig_take() of [@pfn, @end) in pieces of at most MP_TAKE_MAX_PAGES */
static int mp_contig_take_all(struct mp_dev *d, u64 unit, unsigned long pfn,
			      unsigned long end)
{
	unsigned long next;
	int rc = 0;

	for (; !rc && pfn < end; pfn = next) {
		next = min(end, ALIGN_DOWN(pfn + MP_TAKE_MAX_PAGES,
					   pageblock_nr_pages));
		rc = mp_contig_take(d, unit, pfn, next - pfn);
	}
	return rc;
}

/*
 * Take the pages in use of an online range that is about to be offlined,
 * so that offlining it has nothing left to migrate.  Mostly free: only the
 * pageblocks in use, run by run, chosen before the first is taken (what
 * migrates lands in free pageblocks of the range at worst, and offlining
 * moves it once more); free pageblocks stay in the buddy, where taking
 * them would zero them (init_on_alloc) for nothing.  Otherwise all of it,
 * MP_TAKE_MAX_PAGES at a time: what migrates out of one piece can land in
 * a later one and move again, a cost bounded by the pieces' free pages.
 * On failure what was taken stays taken: the caller gives it back.
 */
static int mp_take_in_use(struct mp_dev *d, u64 unit, unsigned long pfn,
			  unsigned long nr_pages)
{
	unsigned long end = pfn + nr_pages, p, nr_pbs, nr_used = 0, i, run;
	unsigned long *used;
	bool whole = true;
	int rc = 0;

	nr_pbs = DIV_ROUND_UP(end - ALIGN_DOWN(pfn, pageblock_nr_pages),
			      pageblock_nr_pages);
	used = bitmap_zalloc(nr_pbs, GFP_KERNEL);
	if (!used)
		return -ENOMEM;
	for (p = pfn, i = 0; p < end; p = mp_pageblock_end(p, end), i++) {
		if (mp_pageblock_used(d, p, end)) {
			__set_bit(i, used);
			nr_used++;
		}
		/*
		 * alloc_contig_range() cannot take pages it does not find free
		 * or movable: our PageOffline ones (unplugged sub blocks, taken
		 * pageblocks) make it fail
		 */
		if (!mp_pfn_in_linux(d, p) || mp_pfn_taken(d, p))
			whole = false;
	}
	if (whole && nr_used * MP_TAKE_WHOLE_RATIO > nr_pbs) {
		rc = mp_contig_take_all(d, unit, pfn, end);
		goto out;
	}
	for (p = pfn, i = 0; !rc && p < end;) {
		if (!test_bit(i, used)) {
			p = mp_pageblock_end(p, end);
			i++;
			continue;
		}
		run = p;
		do {
			p = mp_pageblock_end(p, end);
			i++;
		} while (p < end && test_bit(i, used));
		rc = mp_contig_take_all(d, unit, run, p);
	}
out:
	bitmap_free(used);
	return rc;
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

static bool mp_mb_takes(const struct mp_dev *d, u64 unit, u32 mb,
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
		if (!mp_mb_takes(d, unit, mb, mask)) {
			end = mb + 1;
			continue;
		}
		for (end = mb + 1; end < nr_mb && !d->memmap_pages &&
		     mp_mb_takes(d, unit, end, mask) &&
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

/* ------------------------------------------------------------------ */
/* held sub blocks                                                     */

static void mp_adopt(struct mp_dev *d, u64 unit, u32 sb)
{
	mp_clear_held(d, unit, sb);
	if (mp_unit_online(&d->units[unit]))
		mp_sb_give_to_linux(d, unit, sb);
}

/*
 * A held sub block whose device blocks are partly plugged: UNPLUG the
 * plugged ones one by one (the device refuses a range that is not all
 * plugged).  Done when every device block says unplugged.
 */
static int mp_resolve_device_blocks(struct mp_dev *d, u64 unit, u32 sb)
{
	u64 addr = mp_sb_addr(&d->geo, unit, sb);
	u64 bs = d->geo.dev_block_size;
	u16 state;
	u32 i;
	int rc;

	for (i = 0; i < d->geo.dev_blocks_per_sb; i++, addr += bs) {
		state = VIRTIO_MEM_STATE_MIXED;
		rc = mp_request(d, VIRTIO_MEM_REQ_STATE, addr, bs, &state);
		if (rc != VIRTIO_MEM_RESP_ACK)
			return -EAGAIN;
		if (state == VIRTIO_MEM_STATE_UNPLUGGED)
			continue;
		rc = mp_request(d, VIRTIO_MEM_REQ_UNPLUG, addr, bs, NULL);
		if (rc != VIRTIO_MEM_RESP_ACK) {
			trace_memplug_unplug_failed(mp_trace_dev(d), unit, addr,
						    bs, mp_unplug_reason_of(rc),
						    rc);
			return -EAGAIN;
		}
	}
	mp_mark_unplugged(d, unit, sb, 1);
	return 0;
}

static int mp_resolve_one(struct mp_dev *d, u64 unit, u32 sb, u32 nr)
{
	u64 addr = mp_sb_addr(&d->geo, unit, sb);
	u64 size = (u64)nr * d->geo.sb_size;
	u16 state = VIRTIO_MEM_STATE_MIXED;
	u32 i;
	int rc;

	rc = mp_request(d, VIRTIO_MEM_REQ_STATE, addr, size, &state);
	switch (mp_held_decide(rc, state, nr, d->geo.dev_blocks_per_sb)) {
	case MP_HELD_RETRY:
		return -EAGAIN;
	case MP_HELD_FORGET:
		mp_mark_unplugged(d, unit, sb, nr);
		return 0;
	case MP_HELD_ADOPT:
		for (i = 0; i < nr; i++)
			if (test_bit(mp_sb_index(d, unit, sb + i), d->held))
				mp_adopt(d, unit, sb + i);
		return 0;
	case MP_HELD_SPLIT:
		for (i = 0; i < nr; i++) {
			if (!test_bit(mp_sb_index(d, unit, sb + i), d->held))
				continue;
			rc = mp_resolve_one(d, unit, sb + i, 1);
			if (rc)
				return rc;
		}
		return 0;
	case MP_HELD_SPLIT_DEVICE:
		return mp_resolve_device_blocks(d, unit, sb);
	case MP_HELD_UNPLUG:
		break;
	}
	rc = mp_request(d, VIRTIO_MEM_REQ_UNPLUG, addr, size, NULL);
	if (rc != VIRTIO_MEM_RESP_ACK) {
		trace_memplug_unplug_failed(mp_trace_dev(d), unit, addr, size,
					    mp_unplug_reason_of(rc), rc);
		return -EAGAIN;
	}
	mp_mark_unplugged(d, unit, sb, nr);
	return 0;
}

/*
 * Find out what the device really did with held sub blocks: unplugged
 * ones are forgotten, plugged ones adopted, mixed ones unplugged.
 */
int mp_resolve_held(struct mp_dev *d)
{
	u64 unit;
	u32 sb, nr;
	int rc = 0;

	for (unit = 0; unit < d->geo.nr_units && d->nr_held; unit++) {
		struct mp_unit *u = &d->units[unit];

		if (!u->nr_held)
			continue;
		if (u->busy || u->nr_going) {
			rc = -EAGAIN;
			continue;
		}
		if (u->nr_held == d->geo.sb_per_unit) {
			if (mp_resolve_one(d, unit, 0, d->geo.sb_per_unit))
				rc = -EAGAIN;
			continue;
		}
		/* runs of held sub blocks, split further only when mixed */
		for (sb = 0; sb < d->geo.sb_per_unit; sb += nr) {
			nr = 1;
			if (!test_bit(mp_sb_index(d, unit, sb), d->held))
				continue;
			while (sb + nr < d->geo.sb_per_unit &&
			       test_bit(mp_sb_index(d, unit, sb + nr), d->held))
				nr++;
			if (mp_resolve_one(d, unit, sb, nr))
				rc = -EAGAIN;
		}
		if (mp_worker_should_yield(d))
			return -EAGAIN;
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* module pinning                                                      */

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
	if (d->pinned && !d->nr_added && !d->orphan) {
		d->pinned = false;
		module_put(THIS_MODULE);
	}
}

/* ------------------------------------------------------------------ */
/* online page callback                                                */

static struct mp_dev *mp_find_dev(u64 addr)
{
	struct mp_dev *d;

	list_for_each_entry(d, &mp_devices, list)
		if (addr >= d->geo.first_addr && addr < d->region_end)
			return d;
	return NULL;
}

static void mp_keep_offline(struct page *page, unsigned long nr)
{
	while (nr--)
		mp_compat_keep_offline(page++);
}

/* Are all pages of [pfn, pfn + nr) in plugged sub blocks of one unit? */
static bool mp_range_in_linux(const struct mp_dev *d, unsigned long pfn,
			      unsigned long nr)
{
	long long unit = mp_addr_to_unit(&d->geo, PFN_PHYS(pfn));
	u64 off, sb;

	if (unit < 0)
		return false;
	off = PFN_PHYS(pfn) - mp_unit_addr(&d->geo, unit);
	if (off + PFN_PHYS(nr) > d->geo.unit_size)
		return false;
	for (sb = off / d->geo.sb_size;
	     sb * d->geo.sb_size < off + PFN_PHYS(nr); sb++)
		if (!mp_sb_in_linux(d, unit, (u32)sb))
			return false;
	return true;
}

/* Online [pfn, pfn + 2^order) of device @d: only plugged sub blocks. */
static void mp_online_range(struct mp_dev *d, unsigned long pfn,
			    unsigned int order)
{
	unsigned long nr = 1UL << order;
	unsigned long sb_pages = PHYS_PFN(d->geo.sb_size);
	unsigned long part = min(nr, sb_pages);
	unsigned long end = pfn + nr;
	long long unit;
	u64 addr;
	u32 sb;

	/* the common case: a whole chunk of plugged sub blocks, one call */
	if (nr > sb_pages && mp_range_in_linux(d, pfn, nr)) {
		generic_online_page(pfn_to_page(pfn), order);
		return;
	}
	for (; pfn < end; pfn += part) {
		addr = PFN_PHYS(pfn);
		unit = mp_addr_to_unit(&d->geo, addr);
		if (unit < 0) {
			generic_online_page(pfn_to_page(pfn), ilog2(part));
			continue;
		}
		sb = (u32)((addr - mp_unit_addr(&d->geo, unit)) /
			   d->geo.sb_size);
		if (mp_sb_in_linux(d, unit, sb))
			generic_online_page(pfn_to_page(pfn), ilog2(part));
		else
			mp_keep_offline(pfn_to_page(pfn), part);
	}
}

/*
 * Called for every page range onlined in the system, under the kernel's
 * memory hotplug lock.  It takes no lock of the device: the worker holds
 * hp_lock while a request waits for the device, and onlining must not
 * wait for that.  None is needed.  The unit being onlined is either being
 * added by the worker (busy, hp_lock dropped) or counted in nr_going by
 * the notifier's MEM_GOING_ONLINE: the worker changes neither its plugged
 * nor its held bits until it is done.  @d stays valid: it has memory
 * here, which only goes with offline_and_remove_memory(), under the
 * hotplug lock our caller holds.
 */
static void mp_online_page_cb(struct page *page, unsigned int order)
{
	u64 addr = page_to_phys(page);
	struct mp_dev *d;

	mutex_lock(&mp_devices_lock);
	d = mp_find_dev(addr);
	mutex_unlock(&mp_devices_lock);
	/* every page of an added big block is Linux's */
	if (!d || d->geo.bbm)
		generic_online_page(page, order);
	else
		mp_online_range(d, page_to_pfn(page), order);
}

/* ------------------------------------------------------------------ */
/* memory notifier                                                     */

/* Does the memory block at @mb_addr hold pages taken but meant for Linux? */
static bool mp_mb_taken_in_linux(const struct mp_dev *d, u64 mb_addr)
{
	unsigned long pfn = PHYS_PFN(mb_addr) + d->memmap_pages;
	unsigned long end = PHYS_PFN(mb_addr + d->geo.mb_size);

	for (; pfn < end; pfn = mp_pageblock_end(pfn, end))
		if (mp_pfn_taken_in_linux(d, pfn))
			return true;
	return false;
}

/*
 * Adjust the refcount of every page Linux does not own in this block:
 * those of sub blocks not in Linux (SBM) and taken pageblocks.
 */
static unsigned long mp_offline_refs(struct mp_dev *d, u64 unit,
				     u64 mb_addr, int delta)
{
	u64 unit_addr = mp_unit_addr(&d->geo, unit);
	/* the memmap pages at the start are not ours to count */
	unsigned long pfn = PHYS_PFN(mb_addr) + d->memmap_pages;
	unsigned long end = PHYS_PFN(mb_addr + d->geo.mb_size);
	unsigned long count = 0, next, i;
	u32 sb;

	for (; pfn < end; pfn = next) {
		/* a sub block is whole pageblocks */
		next = mp_pageblock_end(pfn, end);
		sb = (u32)((PFN_PHYS(pfn) - unit_addr) / d->geo.sb_size);
		if (mp_sb_in_linux(d, unit, sb) && !mp_pfn_taken(d, pfn))
			continue;
		for (i = pfn; i < next; i++) {
			if (delta < 0)
				page_ref_dec(pfn_to_page(i));
			else if (delta > 0)
				page_ref_inc(pfn_to_page(i));
		}
		count += next - pfn;
	}
	return count;
}

/*
 * Pages of a block going offline that Linux does not manage (@nr, ours:
 * unplugged or taken) but that offline_pages() of this kernel subtracts
 * from the managed count anyway: count them as managed from
 * MEM_GOING_OFFLINE on (@going) and again not on MEM_CANCEL_OFFLINE.
 * Not later, at MEM_OFFLINE: offline_pages() has recomputed the
 * watermarks and lowmem reserves from the managed count by then, and a
 * count that went below zero there leaves them absurdly high.
 */
static void mp_offline_managed(struct page *first_page, unsigned long nr,
			       bool going)
{
	long n = mp_compat_offline_managed_fixup(nr);

	if (n)
		adjust_managed_page_count(first_page, going ? n : -n);
}

static int mp_notify_mb(struct mp_dev *d, unsigned long action, u64 mb_addr)
{
	long long unit = mp_addr_to_unit(&d->geo, mb_addr);
	unsigned long mb_idx, n, start_pfn = PHYS_PFN(mb_addr);
	struct page *first_page;
	struct mp_unit *u;
	bool movable;

	if (unit < 0)
		return NOTIFY_OK;
	u = &d->units[unit];
	mb_idx = (mb_addr - d->geo.first_addr) / d->geo.mb_size;
	/* the first page offlining sees, after a self-hosted memmap */
	first_page = pfn_to_page(start_pfn + d->memmap_pages);

	/*
	 * d->going marks blocks we saw GOING_ONLINE/GOING_OFFLINE for: the
	 * kernel sends CANCEL_* to every notifier, also to those it never
	 * sent GOING_* to because an earlier notifier refused.
	 */
	switch (action) {
	case MEM_GOING_OFFLINE:
		/* alloc_contig_range() on this unit right now: not now */
		if (u->busy == MP_BUSY_CONTIG)
			return NOTIFY_BAD;
		/*
		 * Pages taken for a removal or an UNPLUG in flight: only the
		 * worker's own offlining may take them along, else the worker
		 * would give back pages that went with the block.
		 */
		if (current != d->remover && mp_mb_taken_in_linux(d, mb_addr))
			return NOTIFY_BAD;
		if (__test_and_set_bit(mb_idx, d->going))
			break;
		u->nr_going++;
		n = mp_offline_refs(d, unit, mb_addr, -1);
		mp_offline_managed(first_page, n, true);
		break;
	case MEM_CANCEL_OFFLINE:
		if (!__test_and_clear_bit(mb_idx, d->going))
			break;
		u->nr_going--;
		n = mp_offline_refs(d, unit, mb_addr, 1);
		mp_offline_managed(first_page, n, false);
		break;
	case MEM_OFFLINE:
		d->nr_offlined++;
		if (__test_and_clear_bit(mb_idx, d->going))
			u->nr_going--;
		if (__test_and_clear_bit(mb_idx, d->online))
			u->nr_online--;
		if (__test_and_clear_bit(mb_idx, d->movable))
			u->nr_movable--;
		/* taken pages are gone with the block; onlining starts afresh */
		bitmap_clear(d->contig, mp_contig_idx(d, start_pfn),
			     PHYS_PFN(d->geo.mb_size) / pageblock_nr_pages);
		break;
	case MEM_GOING_ONLINE:
		if (!__test_and_set_bit(mb_idx, d->going))
			u->nr_going++;
		break;
	case MEM_CANCEL_ONLINE:
		if (__test_and_clear_bit(mb_idx, d->going))
			u->nr_going--;
		break;
	case MEM_ONLINE:
		if (__test_and_clear_bit(mb_idx, d->going))
			u->nr_going--;
		if (!__test_and_set_bit(mb_idx, d->online))
			u->nr_online++;
		movable = page_zonenum(pfn_to_page(start_pfn)) == ZONE_MOVABLE;
		if (movable && !__test_and_set_bit(mb_idx, d->movable))
			u->nr_movable++;
		break;
	}
	return NOTIFY_OK;
}

static int mp_memory_notifier(struct notifier_block *nb,
			      unsigned long action, void *arg)
{
	struct mp_dev *d = container_of(nb, struct mp_dev, mem_nb);
	struct memory_notify *mhp = arg;
	u64 start = PFN_PHYS(mhp->start_pfn);
	u64 end = start + PFN_PHYS(mhp->nr_pages);
	u64 addr;
	int rc = NOTIFY_OK;

	/* any memory coming or going may unblock the growth guard */
	if (action == MEM_ONLINE || action == MEM_OFFLINE)
		mp_guard_event(d);

	if (end <= d->geo.first_addr || start >= d->region_end)
		return NOTIFY_OK;

	/* with memmap_on_memory the range starts after the memmap pages */
	start = max(start, d->geo.first_addr);
	start -= (start - d->geo.first_addr) % d->geo.mb_size;

	mutex_lock(&d->hp_lock);
	for (addr = start; addr < end; addr += d->geo.mb_size) {
		rc = mp_notify_mb(d, action, addr);
		if (rc != NOTIFY_OK)
			break;
	}
	trace_memplug_memory_notify(mp_trace_dev(d), action, start,
				    end - start, rc);
	if (rc != NOTIFY_OK) {
		/* undo GOING_OFFLINE for the blocks already handled */
		while (addr > start) {
			addr -= d->geo.mb_size;
			mp_notify_mb(d, MEM_CANCEL_OFFLINE, addr);
		}
	}
	mutex_unlock(&d->hp_lock);
	return rc;
}

/* ------------------------------------------------------------------ */
/* registration                                                        */

static void mp_hotplug_free_bitmaps(struct mp_dev *d)
{
	bitmap_free(d->movable);
	bitmap_free(d->going);
	bitmap_free(d->online);
	bitmap_free(d->contig);
	bitmap_free(d->mb_present);
	d->movable = NULL;
	d->going = NULL;
	d->online = NULL;
	d->contig = NULL;
	d->mb_present = NULL;
}

int mp_hotplug_register(struct mp_dev *d)
{
	u64 nr_mb = d->geo.nr_units * (d->geo.unit_size / d->geo.mb_size);
	u64 nr_contig = nr_mb * (PHYS_PFN(d->geo.mb_size) / pageblock_nr_pages);
	int rc;

	d->movable = bitmap_zalloc(nr_mb, GFP_KERNEL);
	d->going = bitmap_zalloc(nr_mb, GFP_KERNEL);
	d->online = bitmap_zalloc(nr_mb, GFP_KERNEL);
	d->contig = bitmap_zalloc(nr_contig, GFP_KERNEL);
	d->mb_present = bitmap_zalloc(nr_mb, GFP_KERNEL);
	if (!d->movable || !d->going || !d->online || !d->contig ||
	    !d->mb_present) {
		rc = -ENOMEM;
		goto err_free;
	}

	mutex_lock(&mp_cb_lock);
	if (!mp_cb_users) {
		rc = set_online_page_callback(mp_online_page_cb);
		if (rc) {
			mutex_unlock(&mp_cb_lock);
			dev_err(&d->vdev->dev, "cannot install the online page callback (is virtio_mem loaded?): %d\n",
				rc);
			goto err_free;
		}
	}
	mp_cb_users++;
	d->cb_registered = true;

	mutex_lock(&mp_devices_lock);
	list_add_tail(&d->list, &mp_devices);
	mutex_unlock(&mp_devices_lock);

	d->mem_nb.notifier_call = mp_memory_notifier;
	rc = register_memory_notifier(&d->mem_nb);
	if (rc) {
		mutex_unlock(&mp_cb_lock);
		mp_hotplug_unregister(d, false);
		return rc;
	}
	d->nb_registered = true;
	mutex_unlock(&mp_cb_lock);
	return 0;

err_free:
	mp_hotplug_free_bitmaps(d);
	return rc;
}

void mp_hotplug_unregister(struct mp_dev *d, bool keep_callback)
{
	mutex_lock(&mp_cb_lock);
	if (d->nb_registered)
		unregister_memory_notifier(&d->mem_nb);
	d->nb_registered = false;

	mutex_lock(&mp_devices_lock);
	if (!list_empty(&d->list))
		list_del_init(&d->list);
	mutex_unlock(&mp_devices_lock);

	if (d->cb_registered && !keep_callback) {
		d->cb_registered = false;
		if (!--mp_cb_users)
			restore_online_page_callback(mp_online_page_cb);
	}
	mutex_unlock(&mp_cb_lock);
	mp_hotplug_free_bitmaps(d);
}

/* Any orphan (module exit: mp_leak() takes it off the list). */
struct mp_dev *mp_first_orphan(void)
{
	struct mp_dev *d, *found = NULL;

	mutex_lock(&mp_devices_lock);
	list_for_each_entry(d, &mp_devices, list) {
		if (d->orphan) {
			found = d;
			break;
		}
	}
	mutex_unlock(&mp_devices_lock);
	return found;
}

struct mp_dev *mp_find_orphan(u64 start, u64 end)
{
	struct mp_dev *d, *found = NULL;

	mutex_lock(&mp_devices_lock);
	list_for_each_entry(d, &mp_devices, list)
		if (d->orphan && start < d->region_end &&
		    end > d->geo.first_addr)
			found = d;
	mutex_unlock(&mp_devices_lock);
	return found;
}
