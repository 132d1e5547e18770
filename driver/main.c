// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - virtio-mem guest driver: probe, remove and power management.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/slab.h>
#include <linux/delay.h>
#include <linux/mm.h>
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/pageblock-flags.h>
#include <linux/bitmap.h>
#include <linux/scatterlist.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mem.h>
#include <linux/suspend.h>
#include <linux/acpi.h>
#include <linux/numa.h>
#include <linux/crash_dump.h>
#include <linux/timekeeping.h>
#include <linux/ioport.h>

#include "memplug.h"
#include "compat.h"
#include "memplug_trace.h"

static void mp_config_changed(struct virtio_device *vdev)
{
	struct mp_dev *d = vdev->priv;

	if (!d || d->kdump)
		return;
	atomic_set(&d->config_changed, 1);
	mp_kick(d);
}

static int mp_pick_nid(struct mp_dev *d)
{
	int nid = NUMA_NO_NODE;

#if defined(CONFIG_ACPI_NUMA)
	if (virtio_has_feature(d->vdev, VIRTIO_MEM_F_ACPI_PXM))
		nid = pxm_to_node(d->cfg.node_id);
#endif
	if (nid == NUMA_NO_NODE)
		nid = memory_add_physaddr_to_nid(d->cfg.addr);
	return nid;
}

static int mp_init_geometry(struct mp_dev *d)
{
	struct device *dev = &d->vdev->dev;
	enum mp_geo_status gs;
	u64 nr_sb;

	gs = mp_geometry_init(&d->geo, &d->cfg, memory_block_size_bytes(),
			      PAGE_SIZE << pageblock_order,
			      mp_params.force_bbm, mp_params.bbm_block_size);
	if (gs == MP_GEO_BAD_BBM_SIZE) {
		dev_warn(dev, "bbm_block_size=0x%lx unusable, using 0x%llx\n",
			 mp_params.bbm_block_size, d->geo.unit_size);
	} else if (gs != MP_GEO_OK) {
		dev_err(dev, "region 0x%llx+0x%llx (block size 0x%llx) cannot be used: %s\n",
			d->cfg.addr, d->cfg.region_size, d->cfg.block_size,
			gs == MP_GEO_NO_UNITS ? "smaller than one hotplug unit" :
			gs == MP_GEO_TOO_MANY_MBS ?
			"a device block spans more than 65535 memory blocks" :
			"unsupported block geometry");
		return -EINVAL;
	}
	d->region_end = mp_unit_addr(&d->geo, d->geo.nr_units);
	nr_sb = d->geo.nr_units * d->geo.sb_per_unit;
	d->units = kvcalloc(d->geo.nr_units, sizeof(*d->units), GFP_KERNEL);
	d->plugged = bitmap_zalloc(nr_sb, GFP_KERNEL);
	d->held = bitmap_zalloc(nr_sb, GFP_KERNEL);
	if (!d->units || !d->plugged || !d->held)
		return -ENOMEM;
	return 0;
}

static void mp_free_state(struct mp_dev *d)
{
	kfree_const(d->res_name);
	kvfree(d->units);
	bitmap_free(d->plugged);
	bitmap_free(d->held);
}

#ifdef CONFIG_PM_SLEEP
/*
 * Hibernation cannot work: the image would hold plugged memory the device
 * forgets, and the resumed kernel would use it.  Refuse it up front, before
 * the kernel freezes tasks and preallocates the image (freeze() would only
 * see it after all that).
 */
static int mp_pm_notify(struct notifier_block *nb, unsigned long action,
			void *arg)
{
	if (action != PM_HIBERNATION_PREPARE)
		return NOTIFY_OK;
	pr_err("hibernation is not supported with virtio-mem devices: refused\n");
	return NOTIFY_BAD;
}

static void mp_pm_register(struct mp_dev *d)
{
	d->pm_nb.notifier_call = mp_pm_notify;
	d->pm_registered = !register_pm_notifier(&d->pm_nb);
}

static void mp_pm_unregister(struct mp_dev *d)
{
	if (d->pm_registered)
		unregister_pm_notifier(&d->pm_nb);
	d->pm_registered = false;
}
#else
static void mp_pm_register(struct mp_dev *d) { }
static void mp_pm_unregister(struct mp_dev *d) { }
#endif

/*
 * Claim the device region, as a driver claims its device's I/O memory: a
 * second driver finds it taken, and /dev/mem may not map it (reading
 * unplugged device memory is not allowed).  Marked System RAM but not busy,
 * so that what add_memory_driver_managed() adds nests inside.  Its name
 * lives outside module memory: a forced unload may leave it behind.
 */
static int mp_claim_region(struct mp_dev *d)
{
	struct device *dev = &d->vdev->dev;
	const char *name = kstrdup_const(dev_name(dev), GFP_KERNEL);
	struct resource *res;

	if (!name)
		return -ENOMEM;
	res = __request_mem_region(d->cfg.addr, d->cfg.region_size, name,
				   IORESOURCE_SYSTEM_RAM |
				   IORESOURCE_EXCLUSIVE);
	if (!res) {
		kfree_const(name);
		dev_err(dev, "region 0x%llx+0x%llx is claimed by someone else (see /proc/iomem); not using the device\n",
			d->cfg.addr, d->cfg.region_size);
		return -EBUSY;
	}
	res->flags &= ~IORESOURCE_BUSY;
	d->region_res = res;
	return 0;
}

/* Nothing is added any more: give the region up. */
static void mp_release_region(struct mp_dev *d)
{
	struct resource *res = d->region_res;

	if (!res)
		return;
	d->region_res = NULL;
	if (release_resource(res)) {
		dev_warn(&d->vdev->dev, "device region resource already gone\n");
		return;
	}
	kfree_const(res->name);
	kfree(res);
}

static struct mp_dev *mp_alloc_dev(struct virtio_device *vdev)
{
	struct mp_dev *d = kzalloc(sizeof(*d), GFP_KERNEL);

	if (!d)
		return NULL;
	d->vdev = vdev;
	vdev->priv = d;
	INIT_LIST_HEAD(&d->list);
	mutex_init(&d->req_lock);
	mutex_init(&d->hp_lock);
	spin_lock_init(&d->guard_lock);
	spin_lock_init(&d->kick_lock);
	spin_lock_init(&d->removal_lock);
	init_waitqueue_head(&d->removal_wait);
	init_waitqueue_head(&d->resp_wq);
	INIT_DELAYED_WORK(&d->work, mp_work_fn);
	d->mgid = -1;
	d->kdump = is_kdump_kernel();
	return d;
}

/* Read and check the config, and set up the geometry and state for it. */
static int mp_init_config(struct mp_dev *d)
{
	const char *field;
	u64 value;
	int rc;

	mp_read_config(d, &d->cfg, true);
	if (mp_validate(&d->cfg, &field, &value) != MP_CFG_OK) {
		dev_err(&d->vdev->dev, "invalid device config: %s=0x%llx; not using the device\n",
			field, value);
		return -EINVAL;
	}
	rc = mp_init_geometry(d);
	if (rc)
		return rc;
	d->ops = d->geo.bbm ? &mp_bbm_ops : &mp_sbm_ops;
	/*
	 * The resource keeps a pointer to its name: not into module memory,
	 * which a forced unload frees while memory may stay (mp_remove()).
	 */
	d->res_name = kstrdup_const(MP_RESOURCE_NAME, GFP_KERNEL);
	return d->res_name ? 0 : -ENOMEM;
}

/*
 * Is the device region ours to use?  Not while an earlier binding still
 * has memory in it, nor when another driver added it.  Claims it.
 */
static int mp_init_region(struct mp_dev *d)
{
	struct device *dev = &d->vdev->dev;

	if (mp_find_orphan(d->cfg.addr, d->cfg.addr + d->cfg.region_size)) {
		dev_err(dev, "memory of this region is still added by an earlier binding; not binding again\n");
		return -EBUSY;
	}
	if (d->kdump)
		return 0;
	/*
	 * Memory of the region already in Linux that is not ours: another
	 * driver (virtio_mem, unbound or unloaded with memory added) put
	 * it there.  Our UNPLUG_ALL below would make the host discard RAM
	 * that Linux still uses.
	 */
	if (region_intersects(d->cfg.addr, d->cfg.region_size,
			      IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE) !=
	    REGION_DISJOINT) {
		dev_err(dev, "region 0x%llx+0x%llx is already System RAM, added by another driver; not using the device (reboot to hand it to memplug)\n",
			d->cfg.addr, d->cfg.region_size);
		return -EBUSY;
	}
	return mp_claim_region(d);
}

/* The memory group, the memmap decision, the notifier and callback. */
static int mp_init_hotplug(struct mp_dev *d)
{
	struct device *dev = &d->vdev->dev;
	int rc;

	/* the kernel wants at least one memory block as group unit */
	rc = memory_group_register_dynamic(d->nid,
					   PHYS_PFN(d->geo.unit_size));
	if (rc < 0) {
		dev_err(dev, "cannot register memory group: %d\n", rc);
		return rc;
	}
	d->mgid = rc;

	mp_memmap_init(d);
	if (d->memmap_on_memory)
		dev_info(dev, "memmap_on_memory: each memory block hosts its own memmap (%lu pages)%s\n",
			 d->memmap_pages,
			 d->per_mb ? ", added one memory block at a time" : "");

	rc = mp_hotplug_register(d);
	if (rc) {
		memory_group_unregister(d->mgid);
		return rc;
	}
	mp_pm_register(d);
	return 0;
}

/* The device is ready: start the worker. */
static void mp_start(struct mp_dev *d)
{
	struct device *dev = &d->vdev->dev;
	int rc;

	rc = device_add_group(dev, &mp_attr_group);
	if (rc)
		dev_warn(dev, "sysfs attributes not available: %d\n", rc);
	else
		d->sysfs_added = true;

	virtio_device_ready(d->vdev);

	if (d->cfg.plugged_size) {
		/*
		 * Memory plugged before we bound (reboot without device
		 * reset, module reload): we know nothing about it, so hand
		 * it all back first and start from zero.
		 */
		dev_info(dev, "device reports 0x%llx bytes plugged; unplugging all first\n",
			 d->cfg.plugged_size);
		d->need_unplug_all = true;
	}
	atomic_set(&d->config_changed, 1);
	mp_kick(d);
}

static int mp_probe(struct virtio_device *vdev)
{
	struct device *dev = &vdev->dev;
	struct mp_dev *d;
	int rc;

	if (!vdev->config->get) {
		dev_err(dev, "config space not accessible\n");
		return -EINVAL;
	}
	d = mp_alloc_dev(vdev);
	if (!d)
		return -ENOMEM;
	rc = mp_init_config(d);
	if (rc)
		goto err_free;
	rc = mp_init_region(d);
	if (rc)
		goto err_free;
	d->nid = mp_pick_nid(d);
	rc = mp_init_vq(d);
	if (rc)
		goto err_region;
	mp_fault_dev_init(d);

	dev_info(dev, "%s: region 0x%llx+0x%llx, device block 0x%llx, %s 0x%llx, %llu units, node %d\n",
		 d->geo.bbm ? "big block mode" : "sub block mode",
		 d->cfg.addr, d->cfg.region_size, d->cfg.block_size,
		 d->geo.bbm ? "big block" : "sub block", d->geo.sb_size,
		 d->geo.nr_units, d->nid);

	if (d->kdump) {
		virtio_device_ready(vdev);
		mp_kdump_init(d);
		dev_info(dev, "kdump kernel: no hotplug, unplugged memory hidden from /proc/vmcore\n");
		return 0;
	}
	rc = mp_init_hotplug(d);
	if (rc)
		goto err_vq;
	mp_start(d);
	return 0;

err_vq:
	mp_fault_dev_exit(d);
	mp_teardown_vq(d);
err_region:
	mp_release_region(d);
err_free:
	mp_free_state(d);
	vdev->priv = NULL;
	kfree(d);
	return rc;
}

/*
 * The module is being unloaded (rmmod -f: a forced unload ignores our
 * reference) and memory could not be removed.  The module's code goes
 * away, so the notifier and the online page callback must go too: the
 * memory stays in Linux without a driver.  Say loudly what is left and
 * what that means; keep (leak) what Linux still points to: the resource
 * name and the memory group.
 */
static void mp_leak(struct mp_dev *d)
{
	struct mp_unit *u;
	u64 unit;

	/* an orphan has no device any more: name the region */
	pr_crit("module unloaded by force with %llu hotplug units of the device region 0x%llx-0x%llx still added: they stay in Linux WITHOUT a driver\n",
		d->nr_added, d->geo.first_addr, d->region_end - 1);
	mutex_lock(&d->hp_lock);
	for (unit = 0; unit < d->geo.nr_units; unit++) {
		u = &d->units[unit];
		if (!mp_unit_added(u))
			continue;
		pr_crit("leaked: 0x%llx-0x%llx, %u of %u memory blocks online, %llu of %u sub blocks plugged%s\n",
			mp_unit_addr(&d->geo, unit),
			mp_unit_addr(&d->geo, unit + 1) - 1, u->nr_online,
			mp_mb_per_unit(d), (u64)u->nr_plugged - u->nr_held,
			d->geo.sb_per_unit,
			u->nr_plugged - u->nr_held < d->geo.sb_per_unit ?
			" (never offline and online it again: its unplugged part would be used)" :
			"");
	}
	mutex_unlock(&d->hp_lock);
	mp_pm_unregister(d);
	mp_hotplug_unregister(d);
	cancel_delayed_work_sync(&d->work);
	/*
	 * the memory group still has memory blocks, the resources their
	 * names; the region stays claimed around what is left
	 */
	d->res_name = NULL;
	d->region_res = NULL;
	if (d->pinned) {
		d->pinned = false;
		module_put(THIS_MODULE);
	}
	mp_free_state(d);
	kfree(d);
}

static void mp_remove(struct virtio_device *vdev)
{
	struct mp_dev *d = vdev->priv;
	struct device *dev = &vdev->dev;
	u64 left;
	int tries;

	mp_stop_worker(d);
	mp_fault_dev_exit(d);

	if (d->kdump) {
		mp_kdump_exit(d);
		goto out_free;
	}
	if (d->sysfs_added)
		device_remove_group(dev, &mp_attr_group);

	/* give back what we can */
	mutex_lock(&d->hp_lock);
	d->target_zero = true;
	for (tries = 0; tries < 5; tries++) {
		if (!mp_pass(d) && !d->nr_added)
			break;
		mutex_unlock(&d->hp_lock);
		msleep(20 << tries);
		mutex_lock(&d->hp_lock);
	}
	left = d->nr_added;
	if (!left && d->nr_plugged &&
	    mp_request(d, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL) ==
	    VIRTIO_MEM_RESP_ACK) {
		bitmap_zero(d->plugged, d->geo.nr_units * d->geo.sb_per_unit);
		d->nr_plugged = 0;
	}
	if (!left && d->nr_plugged)
		dev_warn(dev, "device keeps 0x%llx bytes plugged that the guest does not use\n",
			 d->nr_plugged * d->geo.sb_size);
	mutex_unlock(&d->hp_lock);
	mp_stop_remover(d);

	mp_teardown_vq(d);
	if (left && !module_is_live(THIS_MODULE)) {
		mp_leak(d);
		vdev->priv = NULL;
		return;
	}
	if (left) {
		/*
		 * Memory that cannot be offlined stays with the guest.  Keep
		 * the state, notifier and online page callback alive for it
		 * (the module stays pinned: d->pinned), forget the device.
		 */
		dev_err(dev, "%llu hotplug units could not be offlined and removed; they stay added and the module stays loaded\n",
			left);
		mutex_lock(&d->hp_lock);
		d->orphan = true;
		d->vdev = NULL;
		mutex_unlock(&d->hp_lock);
		vdev->priv = NULL;
		return;
	}
	mp_pm_unregister(d);
	mp_hotplug_unregister(d);
	/* nothing can queue it any more (stopping), make sure of it */
	cancel_delayed_work_sync(&d->work);
	memory_group_unregister(d->mgid);
	mp_release_region(d);
	mutex_lock(&d->hp_lock);
	mp_update_pin(d);
	mutex_unlock(&d->hp_lock);
	mp_free_state(d);
	vdev->priv = NULL;
	kfree(d);
	return;

out_free:
	mp_teardown_vq(d);
	mp_free_state(d);
	vdev->priv = NULL;
	kfree(d);
}

#ifdef CONFIG_PM_SLEEP
static bool mp_holds_memory(struct mp_dev *d)
{
	bool plugged;

	mutex_lock(&d->hp_lock);
	plugged = d->nr_plugged || d->need_unplug_all;
	mutex_unlock(&d->hp_lock);
	return plugged;
}

static int mp_freeze(struct virtio_device *vdev)
{
	struct mp_dev *d = vdev->priv;
	bool persistent = MEMPLUG_HAVE_PERSISTENT_SUSPEND &&
		virtio_has_feature(vdev, VIRTIO_MEM_F_PERSISTENT_SUSPEND);

	/*
	 * virtio calls freeze for suspend and hibernation alike.  The PM
	 * notifier refused hibernation already; this is its backstop.
	 */
	if (pm_suspend_target_state == PM_SUSPEND_ON) {
		dev_err(&vdev->dev, "hibernation is not supported with virtio-mem devices\n");
		return -EPERM;
	}
	/*
	 * Suspend to idle keeps the device and memory as they are; a device
	 * without VIRTIO_MEM_F_PERSISTENT_SUSPEND may lose plugged memory
	 * in suspend to RAM, which matters only if there is any.
	 */
	mp_stop_worker(d);
	if (pm_suspend_target_state != PM_SUSPEND_TO_IDLE && !persistent &&
	    !d->kdump && mp_holds_memory(d)) {
		dev_err(&vdev->dev, "suspend to RAM with memory plugged needs VIRTIO_MEM_F_PERSISTENT_SUSPEND, which the device does not offer (resize it to 0 first)\n");
		mp_start_worker(d);
		return -EPERM;
	}
	/* a vmcore read (kdump) may be inside mp_request() */
	mutex_lock(&d->req_lock);
	d->frozen = true;
	mp_teardown_vq(d);
	mutex_unlock(&d->req_lock);
	return 0;
}

static int mp_restore(struct virtio_device *vdev)
{
	struct mp_dev *d = vdev->priv;

	u64 plugged;
	int rc;

	mutex_lock(&d->req_lock);
	rc = mp_init_vq(d);
	if (!rc)
		d->frozen = false;
	mutex_unlock(&d->req_lock);
	if (rc)
		return rc;
	virtio_device_ready(vdev);
	/* kdump: no worker, nothing plugged by us */
	if (d->kdump)
		return 0;
	virtio_cread_le(vdev, struct virtio_mem_config, plugged_size, &plugged);
	if (plugged != d->nr_plugged * d->geo.sb_size)
		dev_err(&vdev->dev, "device lost plugged memory over suspend: 0x%llx plugged, 0x%llx expected\n",
			plugged, d->nr_plugged * d->geo.sb_size);
	mp_start_worker(d);
	return 0;
}
#endif

static unsigned int mp_features[] = {
#if defined(CONFIG_NUMA) && defined(CONFIG_ACPI_NUMA)
	VIRTIO_MEM_F_ACPI_PXM,
#endif
	VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE,
#if MEMPLUG_HAVE_PERSISTENT_SUSPEND
	VIRTIO_MEM_F_PERSISTENT_SUSPEND,
#endif
};

static const struct virtio_device_id mp_id_table[] = {
	{ VIRTIO_ID_MEM, VIRTIO_DEV_ANY_ID },
	{ 0 },
};

static struct virtio_driver mp_driver = {
	.feature_table = mp_features,
	.feature_table_size = ARRAY_SIZE(mp_features),
	.driver.name = KBUILD_MODNAME,
	.id_table = mp_id_table,
	.probe = mp_probe,
	.remove = mp_remove,
	.config_changed = mp_config_changed,
#ifdef CONFIG_PM_SLEEP
	.freeze = mp_freeze,
	.restore = mp_restore,
#endif
};

static int __init mp_init(void)
{
	return register_virtio_driver(&mp_driver);
}
module_init(mp_init);

/*
 * Orphans (unbound with memory left) pin the module, so only a forced
 * unload (rmmod -f) gets here with any: their memory notifier and the
 * online page callback point into this module's text, which is about to
 * go.  Unhook them; the memory stays in Linux without a driver.
 */
static void __exit mp_exit(void)
{
	struct mp_dev *d;

	unregister_virtio_driver(&mp_driver);
	while ((d = mp_first_orphan()))
		mp_leak(d);
}
module_exit(mp_exit);
MODULE_DEVICE_TABLE(virtio, mp_id_table);
MODULE_AUTHOR("memplug developers");
MODULE_DESCRIPTION("virtio-mem paravirtualized memory hot(un)plug driver");
MODULE_LICENSE("GPL");
MODULE_VERSION(MEMPLUG_VERSION);
