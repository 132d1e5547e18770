// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - the device config: read it, validate it, pick up a new one at run time.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mem.h>
#include <linux/memory_hotplug.h>
#include <linux/range.h>

#include "memplug.h"
#include "compat.h"
#include "memplug_trace.h"

/*
 * Read the device config; @probe: the first read, at probe time (fault
 * injection builds may corrupt it, see fault_inject.h).
 */
void mp_read_config(struct mp_dev *d, struct mp_config *c, bool probe)
{
	struct virtio_device *vdev = d->vdev;

	virtio_cread_le(vdev, struct virtio_mem_config, block_size,
			&c->block_size);
	virtio_cread_le(vdev, struct virtio_mem_config, node_id, &c->node_id);
	virtio_cread_le(vdev, struct virtio_mem_config, addr, &c->addr);
	virtio_cread_le(vdev, struct virtio_mem_config, region_size,
			&c->region_size);
	virtio_cread_le(vdev, struct virtio_mem_config, usable_region_size,
			&c->usable_region_size);
	virtio_cread_le(vdev, struct virtio_mem_config, plugged_size,
			&c->plugged_size);
	virtio_cread_le(vdev, struct virtio_mem_config, requested_size,
			&c->requested_size);
	mp_fault_config(d, c, probe);
}

enum mp_cfg_status mp_validate(const struct mp_config *c, const char **field,
			       u64 *value)
{
	struct range r = mhp_get_pluggable_range(true);

	return mp_config_validate(c, PAGE_SIZE, r.start, r.end, field, value);
}

/*
 * Worker: pick up a new config.  An invalid one (or one that changes a
 * field fixed at probe) is ignored as a whole: the last valid config stays
 * in use, so nothing is plugged or unplugged because of it.  Logged once
 * until a valid config arrives again.  hp_lock held.
 */
void mp_refresh_config(struct mp_dev *d)
{
	const char *why = NULL;
	struct mp_config c;
	const char *field;
	u64 value;

	lockdep_assert_held(&d->hp_lock);

	mp_read_config(d, &c, false);
	if (mp_config_fixed_changed(&d->cfg, &c, &field, &value))
		why = "cannot change at runtime";
	else if (mp_validate(&c, &field, &value) != MP_CFG_OK)
		why = "out of range or unaligned";
	if (why) {
		if (!d->cfg_warned)
			dev_err(&d->vdev->dev,
				"invalid device config: %s=0x%llx (%s); ignoring the new config, keeping requested_size=0x%llx\n",
				field, value, why, d->cfg.requested_size);
		d->cfg_warned = true;
		return;
	}
	if (d->cfg_warned)
		dev_info(&d->vdev->dev, "device config valid again\n");
	d->cfg_warned = false;
	d->cfg = c;
}
