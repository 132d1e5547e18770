// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - read-only sysfs attributes, in the "memplug" group of the
 * virtio device (/sys/bus/virtio/devices/virtioN/memplug/).  Documented
 * in docs/sysfs-attributes.md.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/sysfs.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mem.h>

#include "memplug.h"

static struct mp_dev *mp_dev_of(struct device *dev)
{
	return dev_to_virtio(dev)->priv;
}

static ssize_t mode_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	return sysfs_emit(buf, "%s\n", mp_dev_of(dev)->geo.bbm ? "bbm" : "sbm");
}
static DEVICE_ATTR_RO(mode);

/* values fixed after probe */
#define MP_GEO_ATTR(_name, _expr)					\
static ssize_t _name##_show(struct device *dev,				\
			    struct device_attribute *attr, char *buf)	\
{									\
	struct mp_dev *d = mp_dev_of(dev);				\
									\
	return sysfs_emit(buf, "%llu\n", (unsigned long long)(_expr));	\
}									\
static DEVICE_ATTR_RO(_name)

MP_GEO_ATTR(device_block_size, d->geo.dev_block_size);
MP_GEO_ATTR(memory_block_size, d->geo.mb_size);
MP_GEO_ATTR(sub_block_size, d->geo.sb_size);
MP_GEO_ATTR(unit_size, d->geo.unit_size);
MP_GEO_ATTR(region_addr, d->cfg.addr);
MP_GEO_ATTR(region_size, d->cfg.region_size);
MP_GEO_ATTR(units, d->geo.nr_units);
MP_GEO_ATTR(memmap_on_memory, d->memmap_on_memory);

static ssize_t node_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	return sysfs_emit(buf, "%d\n", mp_dev_of(dev)->nid);
}
static DEVICE_ATTR_RO(node);

/*
 * Values read without hp_lock: the worker holds it while it waits for the
 * device (up to req_timeout_ms, longer with a device that stopped
 * answering), and reading state must never wait for the device.  Each
 * value is one aligned word, written under hp_lock or req_lock; a reader
 * sees it before or after a change, never torn.
 */
#define MP_SNAPSHOT_ATTR(_name, _expr)					\
static ssize_t _name##_show(struct device *dev,				\
			    struct device_attribute *attr, char *buf)	\
{									\
	const struct mp_dev *d = mp_dev_of(dev);			\
									\
	return sysfs_emit(buf, "%llu\n", (unsigned long long)(_expr));	\
}									\
static DEVICE_ATTR_RO(_name)

MP_SNAPSHOT_ATTR(usable_region_size, READ_ONCE(d->cfg.usable_region_size));
MP_SNAPSHOT_ATTR(requested_size, READ_ONCE(d->cfg.requested_size));
MP_SNAPSHOT_ATTR(plugged_size, READ_ONCE(d->nr_plugged) * d->geo.sb_size);
MP_SNAPSHOT_ATTR(sub_blocks_plugged, READ_ONCE(d->nr_plugged));
MP_SNAPSHOT_ATTR(sub_blocks_held, READ_ONCE(d->nr_held));
MP_SNAPSHOT_ATTR(units_added, READ_ONCE(d->nr_added));
MP_SNAPSHOT_ATTR(plug_requests, READ_ONCE(d->stats.plug_reqs));
MP_SNAPSHOT_ATTR(unplug_requests, READ_ONCE(d->stats.unplug_reqs));
MP_SNAPSHOT_ATTR(unplug_all_requests, READ_ONCE(d->stats.unplug_all_reqs));
MP_SNAPSHOT_ATTR(state_requests, READ_ONCE(d->stats.state_reqs));
MP_SNAPSHOT_ATTR(acks, READ_ONCE(d->stats.acks));
MP_SNAPSHOT_ATTR(nacks, READ_ONCE(d->stats.nacks));
MP_SNAPSHOT_ATTR(busy_answers, READ_ONCE(d->stats.busy));
MP_SNAPSHOT_ATTR(error_answers, READ_ONCE(d->stats.errors));
MP_SNAPSHOT_ATTR(bad_answers, READ_ONCE(d->stats.bad_resps));
MP_SNAPSHOT_ATTR(add_failures, READ_ONCE(d->stats.add_failures));
MP_SNAPSHOT_ATTR(remove_failures, READ_ONCE(d->stats.remove_failures));
MP_SNAPSHOT_ATTR(remove_timeouts, READ_ONCE(d->stats.remove_timeouts));
MP_SNAPSHOT_ATTR(contig_failures, READ_ONCE(d->stats.contig_failures));
MP_SNAPSHOT_ATTR(fast_unplugs, READ_ONCE(d->stats.fast_unplugs));
MP_SNAPSHOT_ATTR(taken_pages, READ_ONCE(d->stats.taken_pages));
MP_SNAPSHOT_ATTR(no_room, READ_ONCE(d->stats.no_room));
MP_SNAPSHOT_ATTR(retries, READ_ONCE(d->stats.retries));
MP_SNAPSHOT_ATTR(device_resets, READ_ONCE(d->stats.resets));

MP_SNAPSHOT_ATTR(growth_limit_bytes, READ_ONCE(d->guard_limit));
MP_SNAPSHOT_ATTR(growth_guard_refusals, READ_ONCE(d->stats.growth_refusals));
MP_SNAPSHOT_ATTR(growth_guard_last_blocked_ms, READ_ONCE(d->guard_last_ms));
MP_SNAPSHOT_ATTR(unplug_guard_last_blocked_ms, READ_ONCE(d->unplug_last_ms));

static ssize_t growth_guard_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	struct mp_dev *d = mp_dev_of(dev);
	unsigned long long need, avail;
	bool blocked;

	/* one consistent refusal, without waiting for the worker */
	spin_lock(&d->guard_lock);
	blocked = d->guard_blocked;
	need = d->guard_need;
	avail = d->guard_avail;
	spin_unlock(&d->guard_lock);
	if (!blocked)
		return sysfs_emit(buf, "ok\n");
	return sysfs_emit(buf,
			  "blocked: next unit needs %llu KiB of unmovable memory, %llu KiB free above watermarks, reserve %u MiB\n",
			  need >> 10, avail >> 10, READ_ONCE(mp_params.growth_reserve_mb));
}
static DEVICE_ATTR_RO(growth_guard);

static ssize_t unplug_guard_show(struct device *dev,
				 struct device_attribute *attr, char *buf)
{
	struct mp_dev *d = mp_dev_of(dev);
	unsigned long long unit, used, avail, headroom;
	bool blocked;

	spin_lock(&d->guard_lock);
	blocked = d->unplug_blocked;
	unit = d->unplug_unit;
	used = d->unplug_used;
	avail = d->unplug_avail;
	headroom = d->unplug_headroom;
	spin_unlock(&d->guard_lock);
	if (!blocked)
		return sysfs_emit(buf, "ok\n");
	return sysfs_emit(buf,
			  "blocked: unit %llu has %llu KiB in use, %llu KiB available elsewhere, headroom %llu KiB\n",
			  unit, used >> 10, avail >> 10, headroom >> 10);
}
static DEVICE_ATTR_RO(unplug_guard);

static ssize_t worker_show(struct device *dev, struct device_attribute *attr,
			   char *buf)
{
	const struct mp_dev *d = mp_dev_of(dev);

	switch (READ_ONCE(d->worker_state)) {
	case MP_WORKER_RUNNING:
		return sysfs_emit(buf, "running\n");
	case MP_WORKER_WAITING:
		return sysfs_emit(buf, "waiting %u ms\n",
				  READ_ONCE(d->backoff_ms));
	default:
		return sysfs_emit(buf, "idle\n");
	}
}
static DEVICE_ATTR_RO(worker);

static ssize_t device_plugged_size_show(struct device *dev,
					struct device_attribute *attr,
					char *buf)
{
	u64 v;

	virtio_cread_le(dev_to_virtio(dev), struct virtio_mem_config,
			plugged_size, &v);
	return sysfs_emit(buf, "%llu\n", v);
}
static DEVICE_ATTR_RO(device_plugged_size);

/* units per state: not_added offline online_movable online_kernel busy */
static ssize_t unit_states_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	struct mp_dev *d = mp_dev_of(dev);
	/* indexed by enum mp_unit_class, in the order printed */
	unsigned long long n[MP_CLASS_BUSY + 1] = { 0 };
	u64 unit;

	/* a snapshot per unit, not of the device: no hp_lock (see above) */
	for (unit = 0; unit < d->geo.nr_units; unit++) {
		const struct mp_unit *u = &d->units[unit];

		n[mp_classify(READ_ONCE(u->busy) || READ_ONCE(u->nr_going),
			      READ_ONCE(u->nr_present) != 0, READ_ONCE(u->nr_online),
			      READ_ONCE(u->nr_movable))]++;
	}
	return sysfs_emit(buf,
			  "not_added %llu offline %llu online_movable %llu online_kernel %llu busy %llu\n",
			  n[0], n[1], n[2], n[3], n[4]);
}
static DEVICE_ATTR_RO(unit_states);

static struct attribute *mp_attrs[] = {
	&dev_attr_mode.attr,
	&dev_attr_device_block_size.attr,
	&dev_attr_memory_block_size.attr,
	&dev_attr_sub_block_size.attr,
	&dev_attr_unit_size.attr,
	&dev_attr_region_addr.attr,
	&dev_attr_region_size.attr,
	&dev_attr_units.attr,
	&dev_attr_node.attr,
	&dev_attr_usable_region_size.attr,
	&dev_attr_requested_size.attr,
	&dev_attr_plugged_size.attr,
	&dev_attr_device_plugged_size.attr,
	&dev_attr_sub_blocks_plugged.attr,
	&dev_attr_sub_blocks_held.attr,
	&dev_attr_units_added.attr,
	&dev_attr_unit_states.attr,
	&dev_attr_plug_requests.attr,
	&dev_attr_unplug_requests.attr,
	&dev_attr_unplug_all_requests.attr,
	&dev_attr_state_requests.attr,
	&dev_attr_acks.attr,
	&dev_attr_nacks.attr,
	&dev_attr_busy_answers.attr,
	&dev_attr_error_answers.attr,
	&dev_attr_bad_answers.attr,
	&dev_attr_add_failures.attr,
	&dev_attr_remove_failures.attr,
	&dev_attr_remove_timeouts.attr,
	&dev_attr_contig_failures.attr,
	&dev_attr_fast_unplugs.attr,
	&dev_attr_taken_pages.attr,
	&dev_attr_no_room.attr,
	&dev_attr_retries.attr,
	&dev_attr_device_resets.attr,
	&dev_attr_memmap_on_memory.attr,
	&dev_attr_growth_guard.attr,
	&dev_attr_growth_limit_bytes.attr,
	&dev_attr_growth_guard_refusals.attr,
	&dev_attr_growth_guard_last_blocked_ms.attr,
	&dev_attr_unplug_guard.attr,
	&dev_attr_unplug_guard_last_blocked_ms.attr,
	&dev_attr_worker.attr,
	NULL,
};

const struct attribute_group mp_attr_group = {
	.name = "memplug",
	.attrs = mp_attrs,
};
