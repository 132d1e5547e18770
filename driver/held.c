// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - sub blocks the driver cannot vouch for (held): ask the device with STATE
 * and adopt, forget or unplug them; memory plugged before the driver bound.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/mm.h>
#include <linux/virtio.h>
#include <linux/virtio_mem.h>
#include <linux/bitmap.h>

#include "memplug.h"
#include "compat.h"
#include "memplug_trace.h"

int mp_unplug_all(struct mp_dev *d)
{
	int rc = mp_request(d, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL);
	u64 unit;
	u32 sb;

	lockdep_assert_held(&d->hp_lock);

	if (rc == VIRTIO_MEM_RESP_ACK) {
		dev_info(&d->vdev->dev, "unplugged all memory left plugged before the driver bound\n");
		d->need_unplug_all = false;
		return 0;
	}
	dev_warn_ratelimited(&d->vdev->dev,
			     "UNPLUG_ALL failed (%d), asking the device block by block\n",
			     rc);
	if (rc == VIRTIO_MEM_RESP_BUSY || rc == -ETIMEDOUT)
		return -EAGAIN;
	/*
	 * Refused: fall back to adoption.  Mark every sub block plugged and
	 * held; mp_resolve_held() asks STATE per unit and adopts or unplugs.
	 */
	d->need_unplug_all = false;
	for (unit = 0; unit < d->geo.nr_units; unit++)
		for (sb = 0; sb < d->geo.sb_per_unit; sb++)
			if (mp_sb_usable(&d->geo, &d->cfg, unit, sb))
				mp_mark_plugged(d, unit, sb, 1, true);
	return -EAGAIN;
}

static void mp_clear_held(struct mp_dev *d, u64 unit, u32 sb)
{
	if (__test_and_clear_bit(mp_sb_index(d, unit, sb), d->held)) {
		d->nr_held--;
		d->units[unit].nr_held--;
	}
}

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
	/* ambiguous: they stay held, as they are */
	return mp_unplug_sbs(d, unit, sb, nr) == MP_OUT_DONE ? 0 : -EAGAIN;
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

	lockdep_assert_held(&d->hp_lock);

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
