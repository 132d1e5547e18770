// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - kdump: hide unplugged device memory from /proc/vmcore.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/crash_dump.h>
#include <linux/virtio.h>
#include <linux/virtio_mem.h>
#include <linux/mutex.h>

#include "memplug.h"
#include "compat.h"
#include "memplug_trace.h"

static bool mp_vmcore_pfn_is_ram(struct vmcore_cb *cb, unsigned long pfn)
{
	struct mp_dev *d = container_of(cb, struct mp_dev, vmcore_cb);
	u64 addr = PFN_PHYS(pfn);
	u64 bs = d->cfg.block_size;
	u64 blk;
	u16 state = VIRTIO_MEM_STATE_PLUGGED;
	bool ram;
	int rc;

	if (addr < d->cfg.addr || addr >= d->cfg.addr + d->cfg.region_size)
		return true;
	blk = addr & ~(bs - 1);
	mutex_lock(&d->hp_lock);
	if (d->vmcore_cache_valid && d->vmcore_cache_addr == blk) {
		ram = d->vmcore_cache_plugged;
	} else {
		rc = mp_request(d, VIRTIO_MEM_REQ_STATE, blk, bs, &state);
		/* cannot tell: say RAM, as the vmcore_cb contract asks */
		ram = rc != VIRTIO_MEM_RESP_ACK ||
		      state != VIRTIO_MEM_STATE_UNPLUGGED;
		d->vmcore_cache_addr = blk;
		d->vmcore_cache_valid = rc == VIRTIO_MEM_RESP_ACK;
		d->vmcore_cache_plugged = ram;
	}
	mutex_unlock(&d->hp_lock);
	return ram;
}

void mp_kdump_init(struct mp_dev *d)
{
	d->vmcore_cb.pfn_is_ram = mp_vmcore_pfn_is_ram;
	register_vmcore_cb(&d->vmcore_cb);
	d->vmcore_registered = true;
}

void mp_kdump_exit(struct mp_dev *d)
{
	if (d->vmcore_registered)
		unregister_vmcore_cb(&d->vmcore_cb);
	d->vmcore_registered = false;
}
