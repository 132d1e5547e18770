// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - fault injection for testing (see fault_inject.h).  Compiled
 * only with "make MEMPLUG_FAULT_INJECT=1".
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bits.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/virtio.h>
#include <linux/virtio_mem.h>

#include "memplug.h"

/* /sys/kernel/debug/memplug/, while any device has its directory */
static DEFINE_MUTEX(mp_fault_lock);
static struct dentry *mp_fault_root;	/* mp_fault_lock */
static unsigned int mp_fault_users;	/* mp_fault_lock */

static const char * const mp_fault_fields[] = {
	[MP_FAULT_FIELD_NONE] = "none",
	[MP_FAULT_FIELD_BLOCK_SIZE] = "block_size",
	[MP_FAULT_FIELD_ADDR] = "addr",
	[MP_FAULT_FIELD_REGION_SIZE] = "region_size",
	[MP_FAULT_FIELD_USABLE_REGION_SIZE] = "usable_region_size",
	[MP_FAULT_FIELD_PLUGGED_SIZE] = "plugged_size",
	[MP_FAULT_FIELD_REQUESTED_SIZE] = "requested_size",
};

static char *fi_bad_config;
module_param(fi_bad_config, charp, 0444);
MODULE_PARM_DESC(fi_bad_config,
		 "Test builds only: corrupt this config field (block_size, addr, region_size, usable_region_size, plugged_size, requested_size) in the config read at probe (default: none)");

static ssize_t mp_fault_bad_config_read(struct file *file, char __user *ubuf,
					size_t count, loff_t *ppos)
{
	struct mp_dev *d = file->private_data;
	u32 field = READ_ONCE(d->fault.bad_config);
	char buf[32];
	int n;

	if (field >= ARRAY_SIZE(mp_fault_fields))
		field = MP_FAULT_FIELD_NONE;
	n = scnprintf(buf, sizeof(buf), "%s\n", mp_fault_fields[field]);
	return simple_read_from_buffer(ubuf, count, ppos, buf, n);
}

static ssize_t mp_fault_bad_config_write(struct file *file,
					 const char __user *ubuf,
					 size_t count, loff_t *ppos)
{
	struct mp_dev *d = file->private_data;
	char buf[32];
	int field;

	if (*ppos || !count || count >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, count))
		return -EFAULT;
	buf[count] = '\0';
	field = sysfs_match_string(mp_fault_fields, buf);
	if (field < 0)
		return field;
	WRITE_ONCE(d->fault.bad_config, field);
	return count;
}

static const struct file_operations mp_fault_bad_config_fops = {
	.owner = THIS_MODULE,
	.open = simple_open,
	.read = mp_fault_bad_config_read,
	.write = mp_fault_bad_config_write,
	.llseek = default_llseek,
};

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
	fi->types = BIT(VIRTIO_MEM_REQ_PLUG) | BIT(VIRTIO_MEM_REQ_UNPLUG) |
		    BIT(VIRTIO_MEM_REQ_UNPLUG_ALL) | BIT(VIRTIO_MEM_REQ_STATE);
	debugfs_create_u32("fault_types", 0600, fi->dir, &fi->types);
	debugfs_create_u32("injected", 0400, fi->dir, &fi->injected);
	debugfs_create_file("bad_config", 0600, fi->dir, d,
			    &mp_fault_bad_config_fops);
	debugfs_create_u32("config_injected", 0400, fi->dir,
			   &fi->config_injected);
	debugfs_create_u32("add_fail", 0600, fi->dir, &fi->add_fail);
	debugfs_create_u32("add_pass", 0600, fi->dir, &fi->add_pass);
	debugfs_create_u32("blind_walk", 0600, fi->dir, &fi->blind_walk);
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
	WRITE_ONCE(fi->bad_config, MP_FAULT_FIELD_NONE);
	WRITE_ONCE(fi->add_fail, 0);
}

/*
 * Should this add_memory_driver_managed() call fail?  Only the worker
 * adds memory; the knobs are plain debugfs u32s.
 */
int mp_fault_add(struct mp_dev *d)
{
	struct mp_fault_inject *fi = &d->fault;
	u32 pass;

	if (!READ_ONCE(fi->add_fail))
		return 0;
	pass = READ_ONCE(fi->add_pass);
	if (pass) {
		WRITE_ONCE(fi->add_pass, pass - 1);
		return 0;
	}
	return -ENOMEM;
}

bool mp_fault_blind_walk(struct mp_dev *d)
{
	return READ_ONCE(d->fault.blind_walk);
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

	lockdep_assert_held(&d->req_lock);

	fi->pending = MP_FAULT_NONE;
	if (!every || kind < MP_FAULT_NACK || kind > MP_FAULT_SWALLOW)
		return 0;
	if (type >= 32 || !(READ_ONCE(fi->types) & BIT(type)))
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
	case MP_FAULT_SWALLOW:
		return MP_FAULT_SWALLOWED;
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

	lockdep_assert_held(&d->req_lock);

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

/*
 * Make @field of @c invalid, in a way the device could plausibly get
 * wrong: a block size that is not a power of two, an address or region
 * size that is not block aligned, sizes beyond the region.
 */
static void mp_fault_corrupt(struct mp_config *c, u32 field)
{
	switch (field) {
	case MP_FAULT_FIELD_BLOCK_SIZE:
		c->block_size *= 3;
		break;
	case MP_FAULT_FIELD_ADDR:
		c->addr += c->block_size / 2;
		break;
	case MP_FAULT_FIELD_REGION_SIZE:
		c->region_size += c->block_size / 2;
		break;
	case MP_FAULT_FIELD_USABLE_REGION_SIZE:
		c->usable_region_size = c->region_size + c->block_size;
		break;
	case MP_FAULT_FIELD_PLUGGED_SIZE:
		c->plugged_size = c->usable_region_size + c->block_size;
		break;
	case MP_FAULT_FIELD_REQUESTED_SIZE:
		c->requested_size = c->region_size + c->block_size;
		break;
	}
}

/*
 * The config was just read: at probe corrupt the field fi_bad_config
 * names, at runtime the one the bad_config knob names.  Runtime reads
 * happen with hp_lock held.
 */
void mp_fault_config(struct mp_dev *d, struct mp_config *c, bool probe)
{
	struct mp_fault_inject *fi = &d->fault;
	int field;

	if (probe) {
		if (!fi_bad_config || !*fi_bad_config)
			return;
		field = sysfs_match_string(mp_fault_fields, fi_bad_config);
		if (field < 0) {
			dev_warn(&d->vdev->dev, "fi_bad_config=%s: no such config field\n",
				 fi_bad_config);
			return;
		}
	} else {
		field = READ_ONCE(fi->bad_config);
	}
	if (field == MP_FAULT_FIELD_NONE ||
	    field >= ARRAY_SIZE(mp_fault_fields))
		return;
	if (!probe)
		fi->config_injected++;
	mp_fault_corrupt(c, field);
	dev_dbg(&d->vdev->dev, "%s: config field %s corrupted\n",
		probe ? "probe" : "config change", mp_fault_fields[field]);
}
