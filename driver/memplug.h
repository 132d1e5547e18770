/* SPDX-License-Identifier: GPL-2.0 */
/*
 * memplug - virtio-mem guest driver: shared definitions.
 *
 * Copyright (C) memplug developers
 *
 * Vocabulary
 * ----------
 * device block: the device's plug granularity (config block_size).
 * memory block: Linux' hotplug granularity (memory_block_size_bytes()).
 * unit:         what is added to / removed from Linux at once.
 *               SBM (sub block mode, device block <= memory block): one
 *               memory block.  BBM (big block mode): one big block, a
 *               multiple of device block and memory block size.
 * sub block:    plug granularity inside a unit.  SBM: max(device block,
 *               pageblock), BBM: the whole unit (one sub block per unit).
 *
 * Per sub block state (bitmaps plugged/held, indexed unit * sb_per_unit + sb)
 * ----------------------------------------------------------------------
 *   UNPLUGGED --PLUG ack--> PLUGGED --UNPLUG ack--> UNPLUGGED
 *   any --ambiguous answer (timeout, malformed, ERROR)--> PLUGGED+HELD
 *   PLUGGED+HELD --STATE says unplugged--> UNPLUGGED
 *                --STATE says plugged-->   PLUGGED      ("adoption")
 *                --otherwise: UNPLUG ack--> UNPLUGGED
 * Memory is only given to Linux for PLUGGED sub blocks without HELD.  A
 * HELD sub block is never onlined; its pages stay PageOffline().
 *
 * Per unit state (struct mp_unit)
 * -------------------------------
 *   NOT ADDED --add_memory_driver_managed()--> ADDED --offline_and_remove
 *   _memory()--> NOT ADDED.  A unit is added when it has plugged sub
 *   blocks and more memory is wanted, and removed when no sub block is
 *   plugged any more (SBM) or when the big block is unplugged (BBM).  A
 *   NOT ADDED unit may still have plugged sub blocks (add failed, UNPLUG
 *   refused after removal): the worker later either adds it or unplugs it.
 *   "busy" marks a unit the worker is adding, removing or allocating from
 *   with hp_lock dropped; nobody else changes it meanwhile.
 *   Online state is tracked per memory block by the memory notifier:
 *   nr_online/nr_movable count online memory blocks, nr_going those in
 *   GOING_ONLINE/GOING_OFFLINE.  The worker never touches a unit with
 *   nr_going != 0.
 *
 * Add granule
 * -----------
 * Memory is removed in exactly the pieces it was added in: every
 * offline_and_remove_memory() covers what one add_memory_driver_managed()
 * added, never a part of it.  x86-64 maps hot-added memory with 1 GiB
 * pages where the CPU has them (pdpe1gb: every KVM guest with -cpu host)
 * and a range covers an aligned GiB; removing a part of such a mapping
 * makes remove_pagetable() walk the 1 GiB page as a page table and
 * oops.  So a unit is added with one call and removed with one call,
 * except with per_mb (6.1 with a self-hosted memmap), where each memory
 * block is added alone and may be removed alone.  SBM units are one
 * memory block each.
 *
 * Unplugged pages of an added SBM unit are never in the buddy: the online
 * page callback keeps them PageOffline() with a reference, sub blocks
 * unplugged while online are taken with alloc_contig_range() first.  In
 * MEM_GOING_OFFLINE their reference is dropped so offlining can skip them
 * (restored on MEM_CANCEL_OFFLINE).
 *
 * A unit that goes completely (both modes) is offlined and removed with
 * nothing left to migrate, because offlining retries a page that never
 * moves for as long as nobody interrupts it: the pageblocks holding pages
 * in use are taken with alloc_contig_range() first (bounded, it gives up),
 * the free rest is left to offlining.  Taken pages are ours like unplugged
 * ones (d->contig, per pageblock) until the memory block goes offline or
 * they are given back.
 *
 * Worker: one delayed work item per device.  Each run re-reads the config
 * when the device signalled a change, resolves HELD sub blocks, then plugs
 * or unplugs until the plugged amount matches requested_size (rounded
 * down to the plug granule).  Failures (BUSY, NACK, failed offlining or
 * alloc_contig_range, timeouts) reschedule it with exponential backoff,
 * 5 ms .. 30 s; a config change reschedules it at once.
 *
 * Locking
 * -------
 * mp_cb_lock (global mutex, notifier.c): serialises registration of the
 *   online page callback (first device sets it, last restores it).
 * mp_devices_lock (global mutex, notifier.c): protects mp_devices, the list
 *   of devices (including orphans).  Taken by the online page callback
 *   to find the device, nothing else taken inside; never held around
 *   memory hotplug calls.
 * mp_dev.hp_lock: protects units[], plugged/held bitmaps, the counters
 *   derived from them, cfg and stats.  Taken by the worker and the memory
 *   notifier.  The worker holds it while a request waits for the device,
 *   so nothing that only reads state takes it: sysfs reads single words
 *   (and the guards' numbers under guard_lock), the online page callback
 *   reads the bitmaps of a unit the worker leaves alone (see
 *   mp_online_page_cb()).  Onlining or offlining the device's own memory
 *   does wait (the notifier), for at most req_timeout_ms.  NEVER held while
 *   calling add_memory_driver_managed(), offline_and_remove_memory() or
 *   alloc_contig_range() (those can run the notifier/callback, which take
 *   it); mark the unit busy and drop the lock instead.
 * mp_dev.req_lock: protects the request/response buffers and req_stuck.
 *   Nests inside hp_lock.
 * mp_dev.kick_lock (spinlock, irqsave): stopping and every queueing of
 *   the work item; innermost, taken from any context.  remove() and
 *   freeze() set stopping under it before cancelling the work, so the
 *   notifier cannot queue the work again behind their back.
 * mp_dev.removal_lock (spinlock): the removal handed to the removal
 *   thread; the deadline's SIGKILL is sent, and the thread flushes it,
 *   under it, so a signal never outlives the removal it was meant for.
 *   Only the task's signal lock nests inside.
 * mp_dev.mb_present and mp_unit.nr_present: written only by the worker
 *   with the unit busy, read under hp_lock.
 * Lock order: mp_cb_lock -> (mem hotplug locks) -> hp_lock -> req_lock;
 *   mp_devices_lock nests in any of them and nothing nests in it.
 */
#ifndef MEMPLUG_MEMPLUG_H
#define MEMPLUG_MEMPLUG_H

#include <linux/types.h>
#include <linux/atomic.h>
#include <linux/bitops.h>
#include <linux/minmax.h>
#include <linux/pfn.h>
#include <linux/mmzone.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>
#include <linux/wait.h>
#include <linux/workqueue.h>
#include <linux/notifier.h>
#include <linux/crash_dump.h>
#include <linux/virtio.h>
#include <linux/virtio_mem.h>

#include "mp_logic.h"
#include "fault_inject.h"

#define MP_RESOURCE_NAME "System RAM (virtio_mem)"

enum mp_busy {
	MP_BUSY_NONE = 0,
	MP_BUSY_ADD,		/* add_memory_driver_managed() running */
	MP_BUSY_REMOVE,		/* offline_and_remove_memory() running */
	MP_BUSY_CONTIG,		/* alloc_contig_range() running */
};

/*
 * memory block counters are u16: mp_geometry_init() caps a unit at 65535.
 * All fields under hp_lock; busy units are changed by the worker alone
 * (with hp_lock dropped); sysfs reads single fields with READ_ONCE().
 */
struct mp_removal;

struct mp_unit {
	u8 busy;		/* enum mp_busy */
	u8 skip;		/* worker: failed this pass, try others */
	u16 nr_online;		/* online memory blocks (notifier) */
	u16 nr_movable;		/* ... of which in ZONE_MOVABLE (notifier) */
	u16 nr_going;		/* memory blocks going on/offline (notifier) */
	u16 nr_present;		/* memory blocks added (see per_mb) */
	u32 nr_plugged;		/* plugged sub blocks (incl. held) */
	u32 nr_held;		/* held sub blocks */
};

/* Is any memory block of the unit added to Linux? */
static inline bool mp_unit_added(const struct mp_unit *u)
{
	return u->nr_present;
}

struct mp_stats {
	u64 plug_reqs;
	u64 unplug_reqs;
	u64 unplug_all_reqs;
	u64 state_reqs;
	u64 acks;
	u64 nacks;
	u64 busy;
	u64 errors;
	u64 bad_resps;		/* malformed, unknown type, timeout */
	u64 add_failures;
	u64 remove_failures;
	u64 remove_timeouts;	/* offlining interrupted: remove_timeout_ms */
	u64 contig_failures;
	u64 no_room;		/* unplug guard refusals */
	u64 fast_unplugs;	/* free memory unplugged without migration */
	u64 taken_pages;	/* pages taken with alloc_contig_range() */
	u64 growth_refusals;	/* growth guard refusals */
	u64 retries;		/* worker passes rescheduled unfinished */
	u64 resets;		/* device reset: a request was never answered */
};

/* Result of a request: VIRTIO_MEM_RESP_* (>= 0) or a negative errno. */

/*
 * What the worker is doing, for sysfs: a resize is finished only when the
 * worker is idle; a unit being offlined moves no plugged size for seconds.
 */
enum mp_worker_state {
	MP_WORKER_IDLE,		/* last pass reached the request */
	MP_WORKER_RUNNING,	/* a pass is under way */
	MP_WORKER_WAITING,	/* last pass fell short: next one in backoff_ms */
};

struct mp_dev {
	struct virtio_device *vdev;	/* NULL once orphaned (hp_lock) */
	struct virtqueue *vq;		/* req_lock */
	struct list_head list;		/* mp_devices; mp_devices_lock */
	bool orphan;			/* driver unbound, memory left; hp_lock */
	bool kdump;			/* is_kdump_kernel(): no hotplug; fixed */
	bool cb_registered;		/* counted in mp_cb_users; mp_cb_lock */
	bool nb_registered;		/* mp_cb_lock */
	bool sysfs_added;		/* probe and remove only */

	/* request path: req_lock */
	struct mutex req_lock;
	struct virtio_mem_req req;
	struct virtio_mem_resp resp;
	wait_queue_head_t resp_wq;
	bool req_stuck;			/* timed out, buffer still queued */
	bool frozen;			/* suspended: no queue, no requests */
	unsigned long stuck_since;	/* jiffies of the timeout */
	u32 stuck_tries;		/* requests that found it stuck */
#ifdef MEMPLUG_FAULT_INJECT
	struct mp_fault_inject fault;	/* test builds only */
#endif

	/* geometry, fixed after probe */
	struct mp_geometry geo;
	int nid;
	int mgid;
	u64 region_end;			/* geo.first_addr + nr_units * unit */

	/* hp_lock protects everything from here to stats */
	struct mutex hp_lock;
	struct mp_config cfg;		/* last valid config */
	struct mp_unit *units;
	unsigned long *plugged;		/* per sub block */
	unsigned long *held;		/* per sub block */
	unsigned long *movable;		/* per memory block: online movable */
	unsigned long *going;		/* per memory block: GOING_* seen */
	unsigned long *online;		/* per memory block: online */
	/*
	 * Per pageblock: its pages were taken with alloc_contig_range() and
	 * are still ours; they go back with free_contig_range(), not through
	 * the onlining path.  Cleared when given back and on MEM_OFFLINE
	 * (onlining starts them afresh).
	 */
	unsigned long *contig;
	/*
	 * The removal thread (hotplug.c), started on the first removal,
	 * stopped by remove(): written by the worker under hp_lock (the
	 * notifier recognises our own offlining by it); the worker reads it
	 * without.
	 */
	struct task_struct *remover;
	spinlock_t removal_lock;	/* the removal and its SIGKILL */
	/* the removal in the thread's hands, or NULL; removal_lock */
	struct mp_removal *removal;
	wait_queue_head_t removal_wait;	/* the thread waits for a removal */
	/* MEM_OFFLINE events seen: the removal deadline's progress; hp_lock */
	u64 nr_offlined;
	u64 nr_plugged;			/* plugged sub blocks (incl. held) */
	u64 nr_held;
	u64 nr_added;			/* added units (nr_present != 0) */
	unsigned long *mb_present;	/* per memory block: added */
	bool target_zero;		/* remove(): unplug everything */
	bool need_unplug_all;		/* probe found memory plugged */
	bool pinned;			/* holds a module reference */
	const char *res_name;		/* resource name, kstrdup_const() */
	/*
	 * The whole device region, claimed at probe (not busy: the memory
	 * added later nests in it; exclusive: /dev/mem cannot map it).
	 * Released once nothing is added; kept while memory stays.
	 */
	struct resource *region_res;
	struct mp_stats stats;

	/* worker */
	struct delayed_work work;
	atomic_t config_changed;
	/*
	 * stopping: written under kick_lock; the work item is only queued
	 * under kick_lock with stopping checked, so once stopping is set
	 * and the work cancelled it cannot come back (mp_kick() runs from
	 * the memory notifier, the growth guard and the config interrupt).
	 */
	spinlock_t kick_lock;
	bool stopping;
	/* written by the worker alone, read by sysfs with READ_ONCE() */
	u32 backoff_ms;
	enum mp_worker_state worker_state;
	const struct mp_mode_ops *ops;	/* the mode, fixed at probe */
	bool cfg_warned;		/* invalid runtime config logged; hp_lock */

	/*
	 * Self-hosted memmap, fixed after probe.  per_mb: add and remove one
	 * memory block per call (6.1 needs it for memmap_on_memory).  Then
	 * mb_present says which memory blocks are added: a big block is
	 * removed in parts (free memory blocks first), and may be partly
	 * added after a failure that could not be rolled back, which the
	 * worker completes or removes later.  Without per_mb a unit is
	 * added or removed whole (see "Add granule").
	 */
	bool memmap_on_memory;
	bool per_mb;
	unsigned long memmap_pages;	/* per memory block, 0 = off */

	/*
	 * growth and unplug guard (guard.c), written under hp_lock; the
	 * numbers shown in sysfs also under guard_lock, which sysfs takes
	 * instead of hp_lock; guard_blocked is also read with READ_ONCE
	 */
	spinlock_t guard_lock;
	bool guard_blocked;		/* last add refused by the guard */
	bool guard_warned;		/* logged for this blocked episode */
	u64 guard_need;			/* bytes the next unit needs */
	u64 guard_avail;		/* unmovable-capable bytes free */
	u64 guard_limit;		/* estimated reachable plugged size */
	u64 guard_last_ms;		/* boot time of the last refusal, 0 = never */

	/* unplug guard: the numbers of its last refusal, shown while blocked */
	bool unplug_blocked;		/* holding back an unplug */
	bool unplug_refused;		/* refused in this worker pass */
	bool unplug_warned;		/* logged for this blocked episode */
	u64 unplug_unit;		/* unit of the refused range */
	u64 unplug_used;		/* bytes in use in the range */
	u64 unplug_avail;		/* bytes available elsewhere */
	u64 unplug_headroom;		/* bytes to keep free on top */
	u64 unplug_last_ms;		/* boot time of the last refusal, 0 = never */

	/* set up at probe, torn down at remove */
	struct notifier_block mem_nb;
	/* refuses hibernation before it starts (main.c) */
	struct notifier_block pm_nb;
	bool pm_registered;
#ifdef CONFIG_PROC_VMCORE
	struct vmcore_cb vmcore_cb;
	bool vmcore_registered;
	/* the last STATE answer, for reading the vmcore; hp_lock */
	u64 vmcore_cache_addr;		/* device block, state cached */
	bool vmcore_cache_valid;
	bool vmcore_cache_plugged;
#endif
};

static inline u64 mp_sb_index(const struct mp_dev *d, u64 unit, u32 sb)
{
	return unit * d->geo.sb_per_unit + sb;
}

/* How a step of the worker went (the modes' steps and their parts). */
enum mp_step {
	MP_STEP_DONE = 0,	/* progress, or a unit set aside for the pass */
	MP_STEP_NONE,		/* nothing of this kind to do: try the next way */
	MP_STEP_RETRY,		/* failed: end the pass, retry with backoff */
	MP_STEP_GUARD,		/* the growth guard said no: retry with backoff */
	MP_STEP_FULL,		/* nothing more fits in the usable region */
};

static inline u32 mp_mb_per_unit(const struct mp_dev *d)
{
	return (u32)(d->geo.unit_size / d->geo.mb_size);
}

/* All memory blocks of the unit added? */
static inline bool mp_unit_complete(const struct mp_dev *d,
				    const struct mp_unit *u)
{
	return u->nr_present == mp_mb_per_unit(d);
}

static inline u64 mp_mb_addr(const struct mp_dev *d, u64 unit, u32 mb)
{
	return mp_unit_addr(&d->geo, unit) + (u64)mb * d->geo.mb_size;
}

/*
 * d->contig has one bit per pageblock, the granule alloc_contig_range()
 * isolates: what is taken is whole sub blocks (SBM) or just the
 * pageblocks in use of a unit about to be removed (both modes).
 */
static inline u64 mp_contig_idx(const struct mp_dev *d, unsigned long pfn)
{
	return (pfn - PHYS_PFN(d->geo.first_addr)) / pageblock_nr_pages;
}

static inline bool mp_pfn_taken(const struct mp_dev *d, unsigned long pfn)
{
	return test_bit(mp_contig_idx(d, pfn), d->contig);
}

/* End of the pageblock of @pfn, at most @end. */
static inline unsigned long mp_pageblock_end(unsigned long pfn,
					     unsigned long end)
{
	return min(ALIGN(pfn + 1, pageblock_nr_pages), end);
}

/*
 * Should a long loop of the worker stop and let the worker start over?
 * remove() runs passes itself, with the worker stopped: never.
 */
static inline bool mp_worker_should_yield(const struct mp_dev *d)
{
	if (d->target_zero)
		return false;
	return READ_ONCE(d->stopping) || atomic_read(&d->config_changed);
}

/*
 * Files from the bottom up: each calls only into files listed above it
 * (mp_logic.c, fault_inject.c and compat.h below all), so there is no
 * call cycle.  The modes are reached through d->ops only.
 */

/* params.c: the module parameters (see docs/sysfs-attributes.md) */
struct mp_params {
	bool force_bbm;			/* load time only */
	unsigned long bbm_block_size;	/* load time only */
	unsigned int req_timeout_ms;	/* writable: READ_ONCE() */
	unsigned int remove_timeout_ms;	/* writable: READ_ONCE() */
	unsigned int growth_reserve_mb;	/* writable: READ_ONCE() */
};

extern struct mp_params mp_params;

/* request.c: one request to the device and its answer */
int mp_init_vq(struct mp_dev *d);
void mp_teardown_vq(struct mp_dev *d);
int mp_request(struct mp_dev *d, u16 type, u64 addr, u64 size, u16 *state);
bool mp_request_ready(struct mp_dev *d);
enum mp_outcome mp_plug_sbs(struct mp_dev *d, u64 unit, u32 sb, u64 nr);
enum mp_outcome mp_unplug_sbs(struct mp_dev *d, u64 unit, u32 sb, u64 nr);

/* config.c: the device config */
void mp_read_config(struct mp_dev *d, struct mp_config *c, bool probe);
enum mp_cfg_status mp_validate(const struct mp_config *c, const char **field,
			       u64 *value);
void mp_refresh_config(struct mp_dev *d);

/* state.c: sub block, memory block and pageblock state */
void mp_mark_plugged(struct mp_dev *d, u64 unit, u32 sb, u32 nr, bool held);
void mp_mark_unplugged(struct mp_dev *d, u64 unit, u32 sb, u32 nr);
bool mp_sb_in_linux(const struct mp_dev *d, u64 unit, u32 sb);
bool mp_unit_online(const struct mp_unit *u);
enum mp_unit_class mp_unit_class(const struct mp_unit *u);
bool mp_any_unit_blocked(const struct mp_dev *d);
bool mp_unit_wants_adding(const struct mp_dev *d, const struct mp_unit *u);
bool mp_unplug_pick(const struct mp_dev *d, u64 *unit,
		    enum mp_unit_class *class);
bool mp_unit_mb_online(const struct mp_dev *d, u64 unit, u32 mb);
unsigned long mp_mb_pfn(const struct mp_dev *d, u64 unit, u32 mb);
unsigned long mp_mb_pages(const struct mp_dev *d);
bool mp_pfn_in_linux(const struct mp_dev *d, unsigned long pfn);
bool mp_pfn_taken_in_linux(const struct mp_dev *d, unsigned long pfn);

/* guard.c: may the guest afford adding a unit, or migrating pages away? */
bool mp_growth_guard_allows(struct mp_dev *d);
void mp_growth_guard_clear(struct mp_dev *d);
u64 mp_unplug_room(unsigned long pfn, unsigned long free_here);
bool mp_unplug_guard_allows(struct mp_dev *d, u64 unit, u64 used, u64 avail);
void mp_unplug_guard_pass_end(struct mp_dev *d, u64 wanted);

/* pages.c: taking pages from Linux and giving them back */
unsigned long mp_range_used(unsigned long pfn, unsigned long nr_pages,
			    unsigned long *nr_free);
bool mp_range_is_free(unsigned long pfn, unsigned long nr_pages);
bool mp_room_for(struct mp_dev *d, u64 unit, unsigned long pfn,
		 unsigned long nr_pages, unsigned long used,
		 unsigned long free_here);
void mp_give_taken(struct mp_dev *d, unsigned long pfn,
		   unsigned long nr_pages);
void mp_sb_give_to_linux(struct mp_dev *d, u64 unit, u32 sb);
int mp_take_range(struct mp_dev *d, u64 unit, unsigned long pfn,
		  unsigned long nr_pages);
int mp_take_in_use(struct mp_dev *d, u64 unit, unsigned long pfn,
		   unsigned long nr_pages);

/* hotplug.c: adding memory to Linux, offlining and removing it */
void mp_memmap_init(struct mp_dev *d);
bool mp_pin(struct mp_dev *d);
void mp_update_pin(struct mp_dev *d);
int mp_add_unit(struct mp_dev *d, u64 unit);
int mp_remove_unit(struct mp_dev *d, u64 unit);
int mp_remove_unit_bounded(struct mp_dev *d, u64 unit);
enum mp_step mp_add_stray(struct mp_dev *d);
enum mp_step mp_add_strays(struct mp_dev *d);
void mp_stop_remover(struct mp_dev *d);

/* held.c: sub blocks the device has to tell about */
int mp_unplug_all(struct mp_dev *d);
int mp_resolve_held(struct mp_dev *d);

/*
 * bbm.c, sbm.c: the mode, chosen once at probe (d->ops).  A step plugs or
 * unplugs some of what is @missing or in @excess (sub blocks) and says
 * how it went.  @finish (may be NULL) runs at the end of every pass.
 */
struct mp_mode_ops {
	const char *name;
	enum mp_step (*plug_step)(struct mp_dev *d, u64 missing);
	enum mp_step (*unplug_step)(struct mp_dev *d, u64 excess);
	enum mp_step (*finish)(struct mp_dev *d);
};

extern const struct mp_mode_ops mp_bbm_ops;
extern const struct mp_mode_ops mp_sbm_ops;

/* worker.c: the worker and its passes */
void mp_work_fn(struct work_struct *work);
void mp_kick(struct mp_dev *d);
void mp_stop_worker(struct mp_dev *d);
void mp_start_worker(struct mp_dev *d);
int mp_pass(struct mp_dev *d);

/* notifier.c: the online page callback and the memory notifier */
int mp_hotplug_register(struct mp_dev *d);
void mp_hotplug_unregister(struct mp_dev *d);
struct mp_dev *mp_find_orphan(u64 start, u64 end);
struct mp_dev *mp_first_orphan(void);

/* kdump.c: /proc/vmcore without unplugged memory */
#ifdef CONFIG_PROC_VMCORE
void mp_kdump_init(struct mp_dev *d);
void mp_kdump_exit(struct mp_dev *d);
#else
static inline void mp_kdump_init(struct mp_dev *d) { }
static inline void mp_kdump_exit(struct mp_dev *d) { }
#endif

/* sysfs.c */
extern const struct attribute_group mp_attr_group;

#endif /* MEMPLUG_MEMPLUG_H */
