// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - the two guards: never add memory whose memmap and bookkeeping
 * the guest cannot afford (growth guard), never take memory in use that the
 * rest of the guest cannot hold (unplug guard).
 *
 * Growth guard.
 * Adding memory allocates its memmap (struct pages, 1/64 of it) and
 * bookkeeping (memory block devices, page tables of the direct map and of
 * the memmap) with GFP_KERNEL, i.e. from ZONE_NORMAL/DMA32/DMA.  Memory
 * onlined to ZONE_MOVABLE cannot serve such allocations, so a small guest
 * that grows far runs its kernel zones dry, and the kernel panics ("System
 * is deadlocked on memory") or OOM-kills.  Before adding a unit the guard
 * checks that the node's non-movable zones have what the unit needs free
 * above their high watermarks, plus growth_reserve_mb.  If not, the worker
 * stops growing (plugged stays below requested, which tells the host) and
 * retries with backoff, on memory hotplug events and on a new request.
 *
 * Unplug guard.  Unplugging memory in use means migrating its pages
 * elsewhere first.  When the rest of the guest cannot hold them, that only
 * ends in allocation failures, reclaim storms or the OOM killer.  Before
 * used memory is taken, the guard checks that the memory available
 * elsewhere holds what is in use plus a headroom of a quarter of it, at
 * least MP_UNPLUG_HEADROOM and the kernel's own buffer between its min and
 * high watermarks (mp_watermark_band()).  If not, that range stays plugged (plugged
 * above requested tells the host) and the worker retries with backoff.
 *
 * "Available elsewhere" is what a movable allocation (a migration target)
 * can get without taking any zone below its high watermark plus the
 * reserve it keeps against movable allocations (lowmem_reserve), without
 * the free pages of the range itself, plus the reclaimable page cache and
 * slab estimated the way MemAvailable does (mp_reclaimable_pages()).  It is
 * not MemAvailable:
 * that subtracts every zone's reserve from the total free, so a
 * ZONE_MOVABLE that is already empty (the usual state at the end of an
 * unplug under load, its allocations falling back to DMA32) still costs
 * its high watermark, and the guard would stop tens of MiB early.
 *
 * Both record their last refusal for sysfs (growth_guard, unplug_guard and
 * the attributes next to them).  The growth guard reads "ok" again when it
 * lets a unit through or nothing is left to add, the unplug guard after a
 * worker pass without a refusal or when nothing is left to unplug.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/vmstat.h>
#include <linux/nodemask.h>
#include <linux/virtio.h>
#include <linux/timekeeping.h>
#include <linux/sizes.h>

#include "memplug.h"
#include "compat.h"

/*
 * Bookkeeping per memory block besides the memmap: struct memory_block
 * and its sysfs nodes, page tables of the direct map and of the memmap,
 * resource and memblock entries.  A generous estimate (about 8 KiB are
 * used on x86-64); it is what memmap_on_memory still costs.
 */
#define MP_GUARD_MB_OVERHEAD	(32 * 1024ULL)

/* generic KASAN (the one x86-64 has): one shadow byte per 8 bytes */
#define MP_KASAN_SHADOW_SHIFT	3

/* When a guard refused, for sysfs: milliseconds since boot, never 0. */
static u64 mp_guard_now_ms(void)
{
	return max_t(u64, ktime_to_ms(ktime_get_boottime()), 1);
}

/*
 * Free pages @zone keeps on its per-CPU lists.  NR_FREE_PAGES leaves them
 * out, yet they are free: an allocation that fails drains them, and 6.x
 * kernels hand them back to the buddy lists over the following seconds as
 * the lists' high marks decay.  Without them the growth guard sees memory
 * "come back" by itself and grows a unit at a time, seconds apart, long
 * after it reported where it stops.  A racy sum is fine for an estimate.
 */
static unsigned long mp_zone_pcp_pages(struct zone *zone)
{
	unsigned long sum = 0;
	int cpu;

	for_each_online_cpu(cpu)
		sum += max(READ_ONCE(per_cpu_ptr(zone->per_cpu_pageset, cpu)->count), 0);
	return sum;
}

/*
 * Free pages, those on the per-CPU lists included, above the high watermark
 * in the non-movable zones of @nid.
 */
static u64 mp_node_unmovable_free(int nid, bool *populated)
{
	pg_data_t *pgdat = NODE_DATA(nid);
	unsigned long free, wmark, sum = 0;
	struct zone *zone;
	int z;

	for (z = 0; z < ZONE_MOVABLE; z++) {
		zone = &pgdat->node_zones[z];
		if (!populated_zone(zone))
			continue;
		*populated = true;
		free = zone_page_state(zone, NR_FREE_PAGES) +
		       mp_zone_pcp_pages(zone);
		free -= min(free, zone_page_state(zone, NR_FREE_CMA_PAGES));
		wmark = high_wmark_pages(zone);
		if (free > wmark)
			sum += free - wmark;
	}
	return PFN_PHYS((u64)sum);
}

/*
 * The memmap is allocated on the node of the memory if it can, else
 * anywhere: count the device's node, or every node when it has no
 * non-movable memory.
 */
static u64 mp_unmovable_free(int nid)
{
	bool populated = false;
	u64 sum = 0;
	int n;

	if (nid != NUMA_NO_NODE && node_online(nid)) {
		sum = mp_node_unmovable_free(nid, &populated);
		if (populated)
			return sum;
	}
	for_each_online_node(n)
		sum += mp_node_unmovable_free(n, &populated);
	return sum;
}

/* Unmovable-capable bytes that adding one unit costs. */
static u64 mp_unit_cost(const struct mp_dev *d)
{
	u64 nr_mb = mp_mb_per_unit(d);
	u64 cost = nr_mb * MP_GUARD_MB_OVERHEAD;

	if (!d->memmap_on_memory)
		cost += PHYS_PFN(d->geo.unit_size) * sizeof(struct page);
	/*
	 * a KASAN kernel allocates the shadow of memory going online from
	 * kernel memory, self-hosted memmap or not (kasan_mem_notifier())
	 */
	if (IS_ENABLED(CONFIG_KASAN_GENERIC))
		cost += d->geo.unit_size >> MP_KASAN_SHADOW_SHIFT;
	return cost;
}

/* what would let the guest grow further */
static const char mp_hint_mom[] =
	"online some memory to ZONE_NORMAL (online_kernel, auto-movable)";
static const char mp_hint_no_mom[] =
	"memmap_on_memory=1 with big blocks, or online memory to ZONE_NORMAL/auto-movable";

/*
 * May one more unit be added?  Updates the state shown in sysfs and logs
 * once per blocked episode.  hp_lock held.
 */
bool mp_growth_guard_allows(struct mp_dev *d)
{
	u64 reserve = (u64)READ_ONCE(mp_params.growth_reserve_mb) << 20;
	u64 cost = mp_unit_cost(d);
	u64 avail = mp_unmovable_free(d->nid);
	u64 more = mp_growth_units(avail, reserve, cost);

	lockdep_assert_held(&d->hp_lock);
	if (more && d->guard_blocked && d->vdev)
		dev_info(&d->vdev->dev, "growth guard: enough unmovable memory again, growing\n");
	spin_lock(&d->guard_lock);
	d->guard_need = cost;
	d->guard_avail = avail;
	d->guard_limit = d->nr_plugged * d->geo.sb_size +
			 more * d->geo.unit_size;
	WRITE_ONCE(d->guard_blocked, !more);
	spin_unlock(&d->guard_lock);
	if (more) {
		d->guard_warned = false;
		return true;
	}
	d->stats.growth_refusals++;
	d->guard_last_ms = mp_guard_now_ms();
	if (!d->guard_warned && d->vdev) {
		d->guard_warned = true;
		dev_warn(&d->vdev->dev,
			 "growth guard: stopping at 0x%llx of 0x%llx bytes: adding 0x%llx bytes needs %llu KiB of unmovable memory (ZONE_NORMAL/DMA32), %llu KiB free above the watermarks, growth_reserve_mb=%u; to grow further: %s, more boot memory, or a lower growth_reserve_mb\n",
			 d->nr_plugged * d->geo.sb_size, d->cfg.requested_size,
			 d->geo.unit_size, cost >> 10, avail >> 10,
			 READ_ONCE(mp_params.growth_reserve_mb),
			 d->memmap_on_memory ? mp_hint_mom : mp_hint_no_mom);
	}
	return false;
}

/* Nothing more to add: not blocked.  hp_lock held. */
void mp_growth_guard_clear(struct mp_dev *d)
{
	lockdep_assert_held(&d->hp_lock);

	if (d->guard_blocked && d->vdev)
		dev_dbg(&d->vdev->dev, "growth guard: request reached, unblocked\n");
	spin_lock(&d->guard_lock);
	WRITE_ONCE(d->guard_blocked, false);
	spin_unlock(&d->guard_lock);
	d->guard_warned = false;
}

/*
 * Bytes a movable allocation can get from @zone above its high watermark
 * and its reserve against movable allocations, when @gone of its free
 * pages leave with the range being unplugged.
 */
static unsigned long mp_zone_room(struct zone *zone, unsigned long gone)
{
	unsigned long free = zone_page_state(zone, NR_FREE_PAGES);
	unsigned long keep = high_wmark_pages(zone) +
			     max(zone->lowmem_reserve[ZONE_MOVABLE], 0L);

	free -= min(free, gone);
	return free > keep ? free - keep : 0;
}

/*
 * What reclaim may give back: page cache and reclaimable slab, each halved
 * down to the low watermarks as MemAvailable does; unlike MemAvailable,
 * other reclaimable kernel memory (NR_KERNEL_MISC_RECLAIMABLE) is left out.
 */
static unsigned long mp_reclaimable_pages(unsigned long wmark_low)
{
	unsigned long cache, slab;

	cache = global_node_page_state(NR_ACTIVE_FILE) +
		global_node_page_state(NR_INACTIVE_FILE);
	cache -= min(cache / 2, wmark_low);
	slab = global_node_page_state_pages(NR_SLAB_RECLAIMABLE_B);
	slab -= min(slab / 2, wmark_low);
	return cache + slab;
}

/*
 * Memory the pages in use of the range at @pfn could migrate to, in bytes
 * (see "available elsewhere" above); @free_here free pages of the range
 * leave with it.  Every node counts: migration targets may be anywhere.
 */
u64 mp_unplug_room(unsigned long pfn, unsigned long free_here)
{
	struct zone *home = page_zone(pfn_to_page(pfn));
	unsigned long room = 0, wmark_low = 0, gone;
	struct zone *zone;
	int nid, z;

	for_each_online_node(nid) {
		for (z = 0; z <= ZONE_MOVABLE; z++) {
			zone = &NODE_DATA(nid)->node_zones[z];
			if (!populated_zone(zone))
				continue;
			wmark_low += low_wmark_pages(zone);
			gone = zone == home ? free_here : 0;
			free_here -= gone;
			room += mp_zone_room(zone, gone);
		}
	}
	/* free pages of the range outside its first page's zone */
	room -= min(room, free_here);
	return PFN_PHYS((u64)room + mp_reclaimable_pages(wmark_low));
}

/*
 * The distance between the min and high watermarks of every zone, in
 * bytes: what the kernel itself keeps as its buffer between "kswapd wakes"
 * and "allocations stall" (min_free_kbytes and watermark_scale_factor, so
 * it scales with the guest).  An unplug that leaves less than this
 * available above the high watermarks hands the next allocations of the
 * guest straight to reclaim: with a guest filled by its workload, the
 * kernel's MemAvailable then reads 0 seconds later.
 */
static u64 mp_watermark_band(void)
{
	unsigned long band = 0;
	struct zone *zone;
	int nid, z;

	for_each_online_node(nid) {
		for (z = 0; z <= ZONE_MOVABLE; z++) {
			zone = &NODE_DATA(nid)->node_zones[z];
			if (populated_zone(zone))
				band += high_wmark_pages(zone) -
					min_wmark_pages(zone);
		}
	}
	return PFN_PHYS((u64)band);
}

/*
 * May @used bytes in use in a range of @unit be migrated away to unplug it,
 * with @avail bytes available elsewhere?  A refusal blocks the guard (shown
 * in sysfs with its numbers), counts in no_room and is logged once per
 * blocked episode.  hp_lock held.
 */
bool mp_unplug_guard_allows(struct mp_dev *d, u64 unit, u64 used, u64 avail)
{
	u64 headroom;

	lockdep_assert_held(&d->hp_lock);

	/*
	 * Room is counted above every zone's high watermark and reserve
	 * already; the headroom is for what others allocate while the pages
	 * move and after, and grows with the guest as its watermarks do.
	 */
	if (!used || mp_unplug_fits(used, avail, mp_watermark_band(),
				    &headroom))
		return true;
	spin_lock(&d->guard_lock);
	d->unplug_blocked = true;
	d->unplug_unit = unit;
	d->unplug_used = used;
	d->unplug_avail = avail;
	d->unplug_headroom = headroom;
	spin_unlock(&d->guard_lock);
	d->unplug_refused = true;
	d->unplug_last_ms = mp_guard_now_ms();
	d->stats.no_room++;
	if (!d->unplug_warned && d->vdev) {
		d->unplug_warned = true;
		dev_warn(&d->vdev->dev,
			 "unplug guard: keeping 0x%llx of 0x%llx bytes plugged: unit %llu has %llu KiB in use, %llu KiB available elsewhere, headroom %llu KiB; unplugging resumes when memory is freed\n",
			 d->nr_plugged * d->geo.sb_size, d->cfg.requested_size,
			 unit, used >> 10, avail >> 10, headroom >> 10);
	}
	return false;
}

/*
 * End of a worker pass that aimed at @wanted sub blocks.  The guard stays
 * blocked only while it refused something in the pass and more is to be
 * unplugged: a range it lets through within a unit it refuses elsewhere
 * does not make it "ok".  hp_lock held.
 */
void mp_unplug_guard_pass_end(struct mp_dev *d, u64 wanted)
{
	lockdep_assert_held(&d->hp_lock);

	if (d->unplug_blocked &&
	    (!d->unplug_refused || d->nr_plugged <= wanted)) {
		if (d->vdev)
			dev_info(&d->vdev->dev, "unplug guard: no longer holding memory back\n");
		spin_lock(&d->guard_lock);
		d->unplug_blocked = false;
		spin_unlock(&d->guard_lock);
		d->unplug_warned = false;
	}
	d->unplug_refused = false;
}
