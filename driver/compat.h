/* SPDX-License-Identifier: GPL-2.0 */
/*
 * memplug - every kernel version difference, organised by feature.
 *
 * Verified against Debian 6.1 and 6.12.  The .c files never test
 * LINUX_VERSION_CODE themselves: they use the MEMPLUG_HAVE_* switches and
 * the wrappers below.
 *
 * Copyright (C) memplug developers
 */
#ifndef MEMPLUG_COMPAT_H
#define MEMPLUG_COMPAT_H

#include <linux/version.h>
#include <linux/gfp.h>
#include <linux/mm.h>
#include <linux/mmzone.h>
#include <linux/page-flags.h>
#include <linux/page_ref.h>
#include <linux/memory_hotplug.h>
#include <linux/fs.h>
#include <linux/pageblock-flags.h>
#include <linux/virtio_mem.h>

/*
 * Feature: VIRTIO_MEM_F_PERSISTENT_SUSPEND.  Only negotiated when the
 * kernel headers know the bit (6.12 yes, 6.1 no); without it S3 is
 * refused like hibernation.
 */
#ifdef VIRTIO_MEM_F_PERSISTENT_SUSPEND
#define MEMPLUG_HAVE_PERSISTENT_SUSPEND 1
#else
#define MEMPLUG_HAVE_PERSISTENT_SUSPEND 0
#define VIRTIO_MEM_F_PERSISTENT_SUSPEND 2	/* never negotiated */
#endif

/*
 * The kernel version, from the header's own major/patchlevel numbers.
 * Only 6.1 and 6.12 are verified.
 */
#define MEMPLUG_KERNEL KERNEL_VERSION(LINUX_VERSION_MAJOR, \
				      LINUX_VERSION_PATCHLEVEL, 0)

/*
 * Feature: largest buddy order handed to the online page callback.
 * MAX_PAGE_ORDER (6.8+) is inclusive; older kernels have MAX_ORDER, which
 * was exclusive up to 6.3 (inclusive 6.4 - 6.7, where MAX_ORDER - 1 only
 * means smaller chunks).
 */
#ifdef MAX_PAGE_ORDER
#define MEMPLUG_MAX_ORDER	MAX_PAGE_ORDER
#else
#define MEMPLUG_MAX_ORDER	(MAX_ORDER - 1)
#endif

/*
 * Feature: memmap of hot-added memory.
 * Before 6.11 hot-added pages are initialised PageReserved with a
 * refcount of 1, generic_online_page() does not know PageOffline(), and
 * offline_pages() subtracts every page of the block from the managed page
 * count - including PageOffline() pages that were never given to the
 * buddy, so the driver has to add those back.
 * Since 6.11 hot-added pages are initialised PageOffline() with a refcount
 * of 1, generic_online_page() clears PageOffline(), and offline_pages()
 * subtracts only pages that were in the buddy.
 */
#if KERNEL_VERSION(6, 11, 0) <= MEMPLUG_KERNEL
#define MEMPLUG_HAVE_MEMMAP_PAGE_OFFLINE 1
#else
#define MEMPLUG_HAVE_MEMMAP_PAGE_OFFLINE 0
#endif

/* page types have only the non-atomic operations, in every version */
static inline void mp_set_page_offline(struct page *page)
{
	__SetPageOffline(page);
}

static inline void mp_clear_page_offline(struct page *page)
{
	__ClearPageOffline(page);
}

/*
 * Keep one freshly onlined page (refcount 1, not in the buddy) logically
 * offline: it belongs to an unplugged sub block.
 */
static inline void mp_compat_keep_offline(struct page *page)
{
#if !MEMPLUG_HAVE_MEMMAP_PAGE_OFFLINE
	/* PageReserved pages are "unmovable" to page isolation */
	ClearPageReserved(page);
	mp_set_page_offline(page);
#endif
}

/*
 * Give @1 << @order PageOffline() pages with a refcount of 1 that never
 * left the onlining path (kept offline by mp_compat_keep_offline() or, on
 * 6.11+, by not onlining them) to the buddy.  generic_online_page()
 * accounts them as managed.  Never for pages taken with
 * alloc_contig_range(): it resets the refcount, which a speculative
 * reference may still count on; those go back with free_contig_range()
 * (same on 6.1 and 6.12).
 */
static inline void mp_compat_online_pages(struct page *page,
					  unsigned int order)
{
#if !MEMPLUG_HAVE_MEMMAP_PAGE_OFFLINE
	unsigned long i;

	for (i = 0; i < (1UL << order); i++)
		mp_clear_page_offline(page + i);
#endif
	generic_online_page(page, order);
}

/*
 * Pages that stay PageOffline() in a block being offlined: how many of
 * them offline_pages() will subtract from the managed page count although
 * they were never counted there (before 6.11 it subtracts every page of
 * the block; since, only what it finds in the buddy).
 */
static inline long mp_compat_offline_managed_fixup(unsigned long nr_offline)
{
#if MEMPLUG_HAVE_MEMMAP_PAGE_OFFLINE
	return 0;
#else
	return nr_offline;
#endif
}

/*
 * Feature: alloc_contig_range() became a macro around
 * alloc_contig_range_noprof() (memory allocation profiling, 6.10).
 * The macro form is used transparently; same arguments on 6.1 and 6.12.
 */
static inline int mp_compat_alloc_contig(unsigned long start_pfn,
					 unsigned long nr_pages)
{
	return alloc_contig_range(start_pfn, start_pfn + nr_pages,
				  MIGRATE_MOVABLE,
				  GFP_KERNEL | __GFP_NOWARN | __GFP_RETRY_MAYFAIL);
}

/* Feature: add_memory_driver_managed() flags (same on 6.1 and 6.12). */
#define MEMPLUG_MHP_FLAGS	(MHP_MERGE_RESOURCE | MHP_NID_IS_MGID)

/*
 * Feature: self-hosted memmap (MHP_MEMMAP_ON_MEMORY), enabled by the
 * admin with memory_hotplug.memmap_on_memory=1 (read-only at runtime).
 *
 * 6.12 (since 6.7): mhp_supports_memmap_on_memory(void) is exported and
 * add_memory_driver_managed() accepts ranges of several memory blocks:
 * the kernel puts an altmap at the start of each memory block and
 * offline_and_remove_memory() removes such ranges block by block itself.
 *
 * 6.1: the check is static in mm/memory_hotplug.c.  The flag is silently
 * ignored unless exactly one memory block is added and the memmap of a
 * memory block spans whole PMDs and leaves whole pageblocks;
 * try_remove_memory() refuses (-EINVAL) ranges of several memory blocks
 * that carry a memmap.  So 6.1 adds and removes one memory block at a
 * time, and the module parameter is read from sysfs (the variable is not
 * exported).
 *
 * Both: online_pages()/offline_pages() and the memory notifier only see
 * a memory block minus its first memmap pages; those pages are present
 * in the zone but never managed.
 */
#if KERNEL_VERSION(6, 7, 0) <= MEMPLUG_KERNEL
#define MEMPLUG_HAVE_MEMMAP_ON_MEMORY_RANGES 1

static inline bool mp_compat_memmap_on_memory(u64 mb_size)
{
	return mhp_supports_memmap_on_memory();
}
#else
#define MEMPLUG_HAVE_MEMMAP_ON_MEMORY_RANGES 0

static inline bool mp_compat_memmap_param(void)
{
	static const char path[] =
		"/sys/module/memory_hotplug/parameters/memmap_on_memory";
	char buf[4] = { 0 };
	struct file *f;
	loff_t pos = 0;
	ssize_t n;

	f = filp_open(path, O_RDONLY, 0);
	if (IS_ERR(f))
		return false;	/* CONFIG_MHP_MEMMAP_ON_MEMORY=n, no sysfs */
	n = kernel_read(f, buf, sizeof(buf) - 1, &pos);
	filp_close(f, NULL);
	return n > 0 && (buf[0] == 'Y' || buf[0] == 'y' || buf[0] == '1');
}

static inline bool mp_compat_memmap_on_memory(u64 mb_size)
{
	u64 memmap = PHYS_PFN(mb_size) * sizeof(struct page);

	return IS_ALIGNED(memmap, PMD_SIZE) &&
	       IS_ALIGNED(mb_size - memmap, PAGE_SIZE << pageblock_order) &&
	       mp_compat_memmap_param();
}
#endif

/*
 * Pages at the start of each memory block that hold its memmap.  In the
 * "force" mode of 6.12 the kernel rounds them up to whole pageblocks; in
 * every other mode they are pageblock aligned already.
 */
static inline unsigned long mp_compat_memmap_pages(u64 mb_size)
{
	unsigned long nr = PFN_UP(PHYS_PFN(mb_size) * sizeof(struct page));

	return ALIGN(nr, pageblock_nr_pages);
}

#endif /* MEMPLUG_COMPAT_H */
