// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - taking pages away from Linux (alloc_contig_range(), bounded) and giving
 * them back; how much of a range is in use.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/page-flags.h>
#include <linux/page_ref.h>
#include <linux/pageblock-flags.h>
#include <linux/bitmap.h>
#include <linux/sizes.h>
#include <linux/sched.h>
#include <linux/virtio.h>

#include "memplug.h"
#include "compat.h"
#include "memplug_trace.h"

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
bool mp_room_for(struct mp_dev *d, u64 unit, unsigned long pfn,
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

/* What mp_give() gives to Linux. */
enum mp_give_what {
	/*
	 * An unplugged sub block being given to Linux, every page in it is
	 * ours: taken pageblocks go back with free_contig_range(), the
	 * others as pages kept offline while onlining.
	 */
	MP_GIVE_ALL,
	/*
	 * After a removal that failed: only the taken pageblocks of sub
	 * blocks meant for Linux; the others are in the buddy already, or
	 * unplugged and must stay ours.
	 */
	MP_GIVE_TAKEN,
};

/* Does the pageblock at @pfn go back to the buddy in mp_give()? */
static bool mp_pageblock_goes_back(const struct mp_dev *d, unsigned long pfn,
				   enum mp_give_what what)
{
	return what == MP_GIVE_ALL ? mp_pfn_taken(d, pfn) :
				     mp_pfn_taken_in_linux(d, pfn);
}

/* Give pages of [pfn, pfn + nr_pages), in one online memory block, to the buddy. */
static void mp_give(struct mp_dev *d, unsigned long pfn,
		    unsigned long nr_pages, enum mp_give_what what)
{
	unsigned long end = pfn + nr_pages, next;
	bool taken;

	while (pfn < end) {
		/* a run of pageblocks that are all given back, or all not */
		taken = mp_pageblock_goes_back(d, pfn, what);
		next = pfn;
		do {
			if (taken)
				__clear_bit(mp_contig_idx(d, next), d->contig);
			next = mp_pageblock_end(next, end);
		} while (next < end &&
			 mp_pageblock_goes_back(d, next, what) == taken);
		if (taken)
			mp_free_taken(pfn, next - pfn);
		else if (what == MP_GIVE_ALL)
			mp_online_fresh(pfn, next - pfn);
		pfn = next;
	}
}

/* Every page of the range is ours: give all of it to Linux. */
static void mp_give_range(struct mp_dev *d, unsigned long pfn,
			  unsigned long nr_pages)
{
	mp_give(d, pfn, nr_pages, MP_GIVE_ALL);
}

/* Give back what a failed removal took in the online range. */
void mp_give_taken(struct mp_dev *d, unsigned long pfn,
		   unsigned long nr_pages)
{
	mp_give(d, pfn, nr_pages, MP_GIVE_TAKEN);
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

	lockdep_assert_held(&d->hp_lock);

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

/*
 * With init_on_alloc (Debian's default) alloc_contig_range() zeroes all it
 * takes in one loop that never reschedules, and no gfp flag avoids that on
 * x86.  On a starved vCPU (TCG on a loaded host) one take of 128 MiB ran
 * for more than 49 s, past the soft lockup watchdog's 20 s; it is 1 s
 * otherwise.  Take at most this much per call, rescheduling in between
 * (mp_contig_take()); each call costs one lru_cache_disable() more.
 */
#define MP_TAKE_MAX_PAGES	PHYS_PFN(SZ_16M)

/* End of the piece of [@pfn, @end) that one mp_contig_take() gets */
static unsigned long mp_take_piece_end(unsigned long pfn, unsigned long end)
{
	return min(end,
		   ALIGN_DOWN(pfn + MP_TAKE_MAX_PAGES, pageblock_nr_pages));
}

/*
 * mp_contig_take() of [@pfn, @end) piece by piece.  On failure *@done is
 * where the piece that failed starts: what lies below it is taken.
 */
static int mp_contig_take_all(struct mp_dev *d, u64 unit, unsigned long pfn,
			      unsigned long end, unsigned long *done)
{
	unsigned long next;
	int rc;

	for (; pfn < end; pfn = next) {
		next = mp_take_piece_end(pfn, end);
		rc = mp_contig_take(d, unit, pfn, next - pfn);
		if (rc) {
			*done = pfn;
			return rc;
		}
	}
	*done = end;
	return 0;
}

/*
 * Take whole sub blocks of @unit, if the unplug guard sees room: all of
 * them or, on failure, none (callers unplug the range as one).
 */
int mp_take_range(struct mp_dev *d, u64 unit, unsigned long pfn,
		  unsigned long nr_pages)
{
	unsigned long used, free_here, done;
	int rc;

	lockdep_assert_held(&d->hp_lock);

	used = mp_range_used(pfn, nr_pages, &free_here);
	if (!mp_room_for(d, unit, pfn, nr_pages, used, free_here))
		return -ENOMEM;
	rc = mp_contig_take_all(d, unit, pfn, pfn + nr_pages, &done);
	if (rc && done > pfn)
		mp_give_taken(d, pfn, done - pfn);
	return rc;
}

/* Does the pageblock of @pfn (up to @end) hold a page in use, not taken? */
static bool mp_pageblock_used(const struct mp_dev *d, unsigned long pfn,
			      unsigned long end)
{
	return !mp_pfn_taken(d, pfn) &&
	       mp_range_used(pfn, mp_pageblock_end(pfn, end) - pfn, NULL);
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
int mp_take_in_use(struct mp_dev *d, u64 unit, unsigned long pfn,
		   unsigned long nr_pages)
{
	unsigned long end = pfn + nr_pages, p, nr_pbs, nr_used = 0, i, run;
	unsigned long done;
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
	if (whole && mp_take_whole(nr_used, nr_pbs)) {
		rc = mp_contig_take_all(d, unit, pfn, end, &done);
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
		rc = mp_contig_take_all(d, unit, run, p, &done);
	}
out:
	bitmap_free(used);
	return rc;
}
