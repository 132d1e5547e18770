// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - fault injection for testing (see fault_inject.h).  Compiled
 * only with "make MEMPLUG_FAULT_INJECT=1".
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/debugfs.h>
#include <linux/mutex.h>
#include <linux/virtio.h>
#include <linux/virtio_mem.h>

#include "memplug.h"

/* /sys/kernel/debug/memplug/, while any device has its directory */
static DEFINE_MUTEX(mp_fault_lock);
static struct dentry *mp_fault_root;	/* mp_fault_lock */
static unsigned int mp_fault_users;	/* mp_fault_lock */

void mp_fault_dev_init(struct mp_dev *d)
{
	struct mp_fault_inject *fi = &d->fault;

	mutex_lock(&mp_fault_lock);
	if (!mp_fault_users)
		mp_fault_root = debugfs_create_dir(KBUILD_MODNAME, NULL);
	mp_fault_users++;
	fi->dir = debugfs_create_dir(dev_name(&d->vdev->dev), mp_fault_root);
	debugfs_create_u32("fault_every", 0600, fi->dir, &fi->every);
	debugfs_create_u32("fault_kind", 0600, fi->dir, &fi->kind);
	debugfs_create_u32("injected", 0400, fi->dir, &fi->injected);
	mutex_unlock(&mp_fault_lock);
	dev_info(&d->vdev->dev, "fault injection build: knobs in debugfs %s/%s/\n",
		 KBUILD_MODNAME, dev_name(&d->vdev->dev));
}

void mp_fault_dev_exit(struct mp_dev *d)
{
	struct mp_fault_inject *fi = &d->fault;

	mutex_lock(&mp_fault_lock);
	debugfs_remove_recursive(fi->dir);
	if (fi->dir && !--mp_fault_users) {
		debugfs_remove_recursive(mp_fault_root);
		mp_fault_root = NULL;
	}
	fi->dir = NULL;
	mutex_unlock(&mp_fault_lock);
	/* the device's last requests (remove()) go through unharmed */
	WRITE_ONCE(fi->every, 0);
}

/*
 * Is this request hit?  NACK and BUSY answer it without sending it;
 * for the ambiguous kinds the answer is spoiled later.  req_lock held.
 */
int mp_fault_before_send(struct mp_dev *d, u16 type)
{
	struct mp_fault_inject *fi = &d->fault;
	u32 every = READ_ONCE(fi->every);
	u32 kind = READ_ONCE(fi->kind);

	fi->pending = MP_FAULT_NONE;
	if (!every || kind < MP_FAULT_NACK || kind > MP_FAULT_NO_ANSWER)
		return 0;
	if (++fi->count % every)
		return 0;
	fi->injected++;
	switch (kind) {
	case MP_FAULT_NACK:
		d->stats.nacks++;
		return VIRTIO_MEM_RESP_NACK;
	case MP_FAULT_BUSY:
		d->stats.busy++;
		return VIRTIO_MEM_RESP_BUSY;
	}
	fi->pending = kind;
	return 0;
}

/*
 * The device answered the request in flight: replace its answer by an
 * ERROR, a malformed answer or none at all, if this request was hit.
 * The device's own answer is dropped unseen (only logged for debugging).
 * req_lock held.
 */
int mp_fault_answer(struct mp_dev *d, u16 type, u64 addr, u64 size)
{
	struct mp_fault_inject *fi = &d->fault;
	u32 kind = fi->pending;
	int rc;

	fi->pending = MP_FAULT_NONE;
	switch (kind) {
	case MP_FAULT_ERROR:
		d->stats.errors++;
		rc = VIRTIO_MEM_RESP_ERROR;
		break;
	case MP_FAULT_MALFORMED:
		d->stats.bad_resps++;
		rc = -EPROTO;
		break;
	case MP_FAULT_NO_ANSWER:
		d->stats.bad_resps++;
		rc = -ETIMEDOUT;
		break;
	default:
		return 0;
	}
	dev_dbg(&d->vdev->dev, "type %u 0x%llx+0x%llx: device answered %u, injected %d\n",
		type, addr, size, virtio16_to_cpu(d->vdev, d->resp.type), rc);
	return rc;
}
