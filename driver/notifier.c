// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - what Linux calls back: the online page callback (only plugged
 * sub blocks reach the buddy), the memory notifier (memory blocks going on-
 * and offline), their registration and the list of devices they serve.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/mm.h>
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/bitmap.h>
#include <linux/mutex.h>
#include <linux/list.h>
#include <linux/page_ref.h>
#include <linux/virtio.h>

#include "memplug.h"
#include "compat.h"
#include "memplug_trace.h"

/* see memplug.h, "Locking" */
static DEFINE_MUTEX(mp_cb_lock);
static unsigned int mp_cb_users;	/* mp_cb_lock */
static DEFINE_MUTEX(mp_devices_lock);
static LIST_HEAD(mp_devices);		/* mp_devices_lock */

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

	/*
	 * Any memory coming or going, anywhere, may unblock the growth
	 * guard: let a blocked worker look again.  (Our own worker may hold
	 * hp_lock: mp_kick() only queues.)
	 */
	if ((action == MEM_ONLINE || action == MEM_OFFLINE) &&
	    READ_ONCE(d->guard_blocked))
		mp_kick(d);

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
		mp_hotplug_unregister(d);
		return rc;
	}
	d->nb_registered = true;
	mutex_unlock(&mp_cb_lock);
	return 0;

err_free:
	mp_hotplug_free_bitmaps(d);
	return rc;
}

void mp_hotplug_unregister(struct mp_dev *d)
{
	mutex_lock(&mp_cb_lock);
	if (d->nb_registered)
		unregister_memory_notifier(&d->mem_nb);
	d->nb_registered = false;

	mutex_lock(&mp_devices_lock);
	if (!list_empty(&d->list))
		list_del_init(&d->list);
	mutex_unlock(&mp_devices_lock);

	if (d->cb_registered) {
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
