// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - virtio-mem guest driver: probe/remove, requests, config and
 * the worker.
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

static bool force_bbm;
module_param(force_bbm, bool, 0444);
MODULE_PARM_DESC(force_bbm,
		 "Use big block mode even when the device block size fits in a memory block (default: off)");

static unsigned long bbm_block_size;
module_param(bbm_block_size, ulong, 0444);
MODULE_PARM_DESC(bbm_block_size,
		 "Big block size in bytes for big block mode: a power of two, multiple of device and memory block size; 0 = max(device block, memory block) (default: 0)");

/*
 * 0 would time out every request at once and reset the device over and
 * over; hours would leave the worker stuck behind a dead device.
 */
#define MP_REQ_TIMEOUT_MIN_MS	100
#define MP_REQ_TIMEOUT_MAX_MS	(10 * 60 * 1000)

static unsigned int req_timeout_ms = 30000;

static int mp_set_req_timeout(const char *val, const struct kernel_param *kp)
{
	return param_set_uint_minmax(val, kp, MP_REQ_TIMEOUT_MIN_MS,
				     MP_REQ_TIMEOUT_MAX_MS);
}

static const struct kernel_param_ops mp_req_timeout_ops = {
	.set = mp_set_req_timeout,
	.get = param_get_uint,
};

module_param_cb(req_timeout_ms, &mp_req_timeout_ops, &req_timeout_ms, 0644);
MODULE_PARM_DESC(req_timeout_ms,
		 "How long to wait for the device to answer a request before treating the answer as missing, in ms, 100 .. 600000 (default: 30000)");

/* ------------------------------------------------------------------ */
/* requests                                                            */

/* mp_logic.c decodes answers with its own copy of the spec's values */
static_assert(MP_REQ_PLUG == VIRTIO_MEM_REQ_PLUG);
static_assert(MP_REQ_UNPLUG == VIRTIO_MEM_REQ_UNPLUG);
static_assert(MP_REQ_UNPLUG_ALL == VIRTIO_MEM_REQ_UNPLUG_ALL);
static_assert(MP_REQ_STATE == VIRTIO_MEM_REQ_STATE);
static_assert(MP_RESP_ACK == VIRTIO_MEM_RESP_ACK);
static_assert(MP_RESP_NACK == VIRTIO_MEM_RESP_NACK);
static_assert(MP_RESP_BUSY == VIRTIO_MEM_RESP_BUSY);
static_assert(MP_RESP_ERROR == VIRTIO_MEM_RESP_ERROR);
static_assert(MP_STATE_PLUGGED == VIRTIO_MEM_STATE_PLUGGED);
static_assert(MP_STATE_UNPLUGGED == VIRTIO_MEM_STATE_UNPLUGGED);
static_assert(MP_STATE_MIXED == VIRTIO_MEM_STATE_MIXED);
static_assert(MP_RESP_TYPE_LEN == offsetofend(struct virtio_mem_resp, type));
static_assert(MP_RESP_STATE_LEN ==
	      offsetofend(struct virtio_mem_resp, u.state.state));

static void mp_vq_done(struct virtqueue *vq)
{
	struct mp_dev *d = vq->vdev->priv;

	wake_up(&d->resp_wq);
}

static bool mp_reap(struct mp_dev *d, unsigned int *len)
{
	return !!virtqueue_get_buf(d->vq, len);
}

static const char *mp_req_name(u16 type)
{
	switch (type) {
	case VIRTIO_MEM_REQ_PLUG:
		return "PLUG";
	case VIRTIO_MEM_REQ_UNPLUG:
		return "UNPLUG";
	case VIRTIO_MEM_REQ_UNPLUG_ALL:
		return "UNPLUG_ALL";
	default:
		return "STATE";
	}
}

static void mp_count_req(struct mp_dev *d, u16 type)
{
	switch (type) {
	case VIRTIO_MEM_REQ_PLUG:
		d->stats.plug_reqs++;
		break;
	case VIRTIO_MEM_REQ_UNPLUG:
		d->stats.unplug_reqs++;
		break;
	case VIRTIO_MEM_REQ_UNPLUG_ALL:
		d->stats.unplug_all_reqs++;
		break;
	default:
		d->stats.state_reqs++;
		break;
	}
}

static int mp_init_vq(struct mp_dev *d)
{
	struct virtqueue *vq;

	vq = virtio_find_single_vq(d->vdev, mp_vq_done, "guest-request");
	if (IS_ERR(vq))
		return PTR_ERR(vq);
	d->vq = vq;
	return 0;
}

/*
 * Reset the device and set it up again as probe did (the virtio core's
 * steps: ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queue, DRIVER_OK).
 * The device forgets its queue, and with it a buffer it never returned;
 * plugged memory and the config stay.  req_lock held.
 */
static int mp_reset_device(struct mp_dev *d)
{
	struct virtio_device *vdev = d->vdev;
	int rc;

	virtio_reset_device(vdev);
	vdev->config->del_vqs(vdev);
	d->vq = NULL;
	d->stats.resets++;

	virtio_add_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	virtio_add_status(vdev, VIRTIO_CONFIG_S_DRIVER);
	rc = vdev->config->finalize_features(vdev);
	if (rc)
		return rc;
	if (virtio_has_feature(vdev, VIRTIO_F_VERSION_1)) {
		virtio_add_status(vdev, VIRTIO_CONFIG_S_FEATURES_OK);
		if (!(vdev->config->get_status(vdev) &
		      VIRTIO_CONFIG_S_FEATURES_OK))
			return -ENODEV;
	}
	rc = mp_init_vq(d);
	if (rc)
		return rc;
	virtio_device_ready(vdev);
	/* whatever changed meanwhile: read the config again */
	atomic_set(&d->config_changed, 1);
	return 0;
}

/*
 * A timed out request's buffer is still queued (req_stuck).  Reap it if
 * it came back; otherwise count the attempt and, once mp_stuck_reset()
 * says so, reset the device to get the queue back.  Returns 0 when the
 * queue is usable again, -ETIMEDOUT (still stuck) or the reset's error
 * (tried again next time).  req_lock held.
 */
static int mp_unstick(struct mp_dev *d)
{
	struct device *dev = &d->vdev->dev;
	unsigned int len;
	u32 ms;
	int rc;

	if (d->vq && mp_reap(d, &len)) {
		d->req_stuck = false;
		dev_info(dev, "late answer to a timed out request arrived\n");
		return 0;
	}
	if (d->stuck_tries < U32_MAX)
		d->stuck_tries++;
	ms = jiffies_to_msecs(jiffies - d->stuck_since);
	if (!mp_stuck_reset(d->stuck_tries, ms, req_timeout_ms))
		return -ETIMEDOUT;
	dev_warn(dev, "device kept a request for %u ms after it timed out: resetting the device\n",
		 ms);
	rc = mp_reset_device(d);
	if (rc) {
		dev_err_ratelimited(dev, "device reset failed: %d; trying again later\n",
				    rc);
		return rc;
	}
	d->req_stuck = false;
	dev_info(dev, "device reset, request queue re-created\n");
	return 0;
}

/*
 * Would a request go out now?  False while a timed out request's buffer
 * is still queued (this may reset the device, see mp_unstick()).  Checked
 * before taking used memory for an unplug: no point migrating data when
 * the UNPLUG cannot be sent.
 */
bool mp_request_ready(struct mp_dev *d)
{
	bool ready = true;

	mutex_lock(&d->req_lock);
	if (!d->vdev || d->frozen || (d->req_stuck && mp_unstick(d)))
		ready = false;
	mutex_unlock(&d->req_lock);
	return ready;
}

/*
 * Send one request and wait for the answer.  Returns VIRTIO_MEM_RESP_*,
 * or -ETIMEDOUT (no answer in time; the buffer stays queued and is reaped
 * before the next request), -EPROTO (malformed or unknown answer), or
 * another negative errno when the request could not be queued.  *@state
 * receives the STATE answer.  Stats are updated without hp_lock only in
 * kdump mode, where no worker exists.
 */
int mp_request(struct mp_dev *d, u16 type, u64 addr, u64 size, u16 *state)
{
	struct virtio_device *vdev = d->vdev;
	struct scatterlist sg_req, sg_resp, *sgs[2];
	struct mp_resp ans;
	unsigned int len = 0;
	u64 nb = size / d->geo.dev_block_size;
	bool swallow;
	u64 t0;
	int st = -1;
	long left;
	int rc;

	if (!vdev)
		return -ENODEV;
	if (type != VIRTIO_MEM_REQ_UNPLUG_ALL &&
	    (!nb || nb > MP_MAX_BLOCKS_PER_REQ))
		return -EINVAL;

	mutex_lock(&d->req_lock);
	/* suspended: the queue is gone, and resetting the device is no fix */
	if (d->frozen) {
		rc = -ENODEV;
		goto out;
	}
	if (d->req_stuck) {
		rc = mp_unstick(d);
		if (rc)
			goto out;
	}
	if (!d->vq) {
		rc = -ENODEV;
		goto out;
	}

	t0 = ktime_get_ns();
	rc = mp_fault_before_send(d, type);
	swallow = rc == MP_FAULT_SWALLOWED;
	if (swallow) {
		dev_dbg(&vdev->dev, "%s 0x%llx+0x%llx: injected: never answered\n",
			mp_req_name(type), addr, size);
	} else if (rc) {
		dev_dbg(&vdev->dev, "%s 0x%llx+0x%llx: injected %d\n",
			mp_req_name(type), addr, size, rc);
		mp_count_req(d, type);
		trace_memplug_request(mp_trace_dev(d), type, addr, size);
		goto out_answer;
	}

	memset(&d->req, 0, sizeof(d->req));
	memset(&d->resp, 0xff, sizeof(d->resp));
	d->req.type = cpu_to_virtio16(vdev, type);
	/* plug, unplug and state share one layout */
	d->req.u.plug.addr = cpu_to_virtio64(vdev, addr);
	d->req.u.plug.nb_blocks = cpu_to_virtio16(vdev, (u16)nb);

	sg_init_one(&sg_req, &d->req, sizeof(d->req));
	sg_init_one(&sg_resp, &d->resp, sizeof(d->resp));
	sgs[0] = &sg_req;
	sgs[1] = &sg_resp;
	mp_count_req(d, type);
	trace_memplug_request(mp_trace_dev(d), type, addr, size);
	if (!swallow) {
		rc = virtqueue_add_sgs(d->vq, sgs, 1, 1, d, GFP_KERNEL);
		if (rc)
			goto out_answer;
		virtqueue_kick(d->vq);
	}

	left = wait_event_timeout(d->resp_wq, mp_reap(d, &len),
				  msecs_to_jiffies(req_timeout_ms));
	if (!left) {
		d->req_stuck = true;
		d->stuck_since = jiffies;
		d->stuck_tries = 0;
		d->stats.bad_resps++;
		dev_warn_ratelimited(&vdev->dev,
				     "%s 0x%llx+0x%llx: no answer within %u ms\n",
				     mp_req_name(type), addr, size,
				     req_timeout_ms);
		rc = -ETIMEDOUT;
		goto out_answer;
	}

	rc = mp_fault_answer(d, type, addr, size);
	if (rc)
		goto out_answer;
	switch (mp_resp_decode(type, len, virtio16_to_cpu(vdev, d->resp.type),
			       virtio16_to_cpu(vdev, d->resp.u.state.state),
			       &ans)) {
	case MP_ANS_SHORT:
		d->stats.bad_resps++;
		dev_warn_ratelimited(&vdev->dev, "%s: malformed answer (%u bytes)\n",
				     mp_req_name(type), len);
		rc = -EPROTO;
		goto out_answer;
	case MP_ANS_UNKNOWN_TYPE:
		d->stats.bad_resps++;
		dev_warn_ratelimited(&vdev->dev, "%s: unknown answer type %u\n",
				     mp_req_name(type), ans.type);
		rc = -EPROTO;
		goto out_answer;
	case MP_ANS_UNKNOWN_STATE:
		d->stats.acks++;
		d->stats.bad_resps++;
		dev_warn_ratelimited(&vdev->dev, "STATE: unknown state %u\n",
				     ans.state);
		rc = -EPROTO;
		goto out_answer;
	case MP_ANS_ACK:
		d->stats.acks++;
		if (ans.has_state) {
			if (state)
				*state = ans.state;
			st = ans.state;
		}
		break;
	case MP_ANS_NACK:
		d->stats.nacks++;
		break;
	case MP_ANS_BUSY:
		d->stats.busy++;
		break;
	case MP_ANS_ERROR:
		d->stats.errors++;
		dev_warn_ratelimited(&vdev->dev, "%s 0x%llx+0x%llx: device answered ERROR\n",
				     mp_req_name(type), addr, size);
		break;
	}
	rc = ans.type;
	dev_dbg(&vdev->dev, "%s 0x%llx+0x%llx -> %u\n", mp_req_name(type),
		addr, size, ans.type);
out_answer:
	trace_memplug_answer(mp_trace_dev(d), type, addr, size, rc, st,
			     ktime_get_ns() - t0);
out:
	mutex_unlock(&d->req_lock);
	return rc;
}

/* ------------------------------------------------------------------ */
/* config                                                              */

/*
 * Read the device config; @probe: the first read, at probe time (fault
 * injection builds may corrupt it, see fault_inject.h).
 */
static void mp_read_config(struct mp_dev *d, struct mp_config *c, bool probe)
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

static enum mp_cfg_status mp_validate(const struct mp_config *c,
				      const char **field, u64 *value)
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
static void mp_refresh_config(struct mp_dev *d)
{
	const char *why = NULL;
	struct mp_config c;
	const char *field;
	u64 value;

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

/* ------------------------------------------------------------------ */
/* worker                                                              */

bool mp_worker_should_yield(struct mp_dev *d)
{
	/* remove() runs passes itself, with the worker stopped */
	if (d->target_zero)
		return false;
	return READ_ONCE(d->stopping) || atomic_read(&d->config_changed);
}

/*
 * (Re)queue the work item in @delay jiffies, unless the worker is being
 * stopped.  @mod: move an already queued item (a kick), else leave it.
 * The check and the queueing are one step under kick_lock, so nothing is
 * queued after mp_stop_worker().  Any context (config interrupt).
 */
static void mp_queue(struct mp_dev *d, unsigned long delay, bool mod)
{
	unsigned long flags;

	spin_lock_irqsave(&d->kick_lock, flags);
	if (!d->stopping) {
		if (mod)
			mod_delayed_work(system_freezable_wq, &d->work, delay);
		else
			queue_delayed_work(system_freezable_wq, &d->work,
					   delay);
	}
	spin_unlock_irqrestore(&d->kick_lock, flags);
}

void mp_kick(struct mp_dev *d)
{
	if (READ_ONCE(d->stopping))
		return;
	mp_queue(d, 0, true);
}

/* Stop the worker for good (PM restore starts it again).  May sleep. */
static void mp_stop_worker(struct mp_dev *d)
{
	unsigned long flags;

	spin_lock_irqsave(&d->kick_lock, flags);
	WRITE_ONCE(d->stopping, true);
	spin_unlock_irqrestore(&d->kick_lock, flags);
	cancel_delayed_work_sync(&d->work);
}

/* Undo mp_stop_worker(): run a pass with a fresh look at the config. */
static void mp_start_worker(struct mp_dev *d)
{
	unsigned long flags;

	spin_lock_irqsave(&d->kick_lock, flags);
	WRITE_ONCE(d->stopping, false);
	spin_unlock_irqrestore(&d->kick_lock, flags);
	atomic_set(&d->config_changed, 1);
	mp_kick(d);
}

static int mp_unplug_all(struct mp_dev *d)
{
	int rc = mp_request(d, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL);
	u64 unit;
	u32 sb;

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

/*
 * One pass: 0 = converged, -EAGAIN = retry with backoff.  Held sub blocks
 * the device cannot tell about yet (STATE answered BUSY or ERROR, unit in
 * transition) do not stop the rest: they count as plugged and are never
 * picked for plugging or unplugging, so everything else still converges
 * (a shrink request, remove() during a migration); the pass then says
 * "retry" for them.
 */
static int mp_pass(struct mp_dev *d)
{
	int rc, held_rc = 0;
	u64 wanted;

	if (d->need_unplug_all) {
		rc = mp_unplug_all(d);
		if (rc)
			return rc;
	}
	if (d->nr_held)
		held_rc = mp_resolve_held(d);
	wanted = d->target_zero ? 0 :
		 mp_wanted_granules(&d->geo, d->cfg.requested_size);
	if (wanted <= d->nr_plugged)
		mp_guard_clear(d);
	rc = d->geo.bbm ? mp_bbm_run(d, wanted) : mp_sbm_run(d, wanted);
	mp_unplug_guard_pass_end(d, wanted);
	return rc ? rc : held_rc;
}

static void mp_work_fn(struct work_struct *work)
{
	struct mp_dev *d = container_of(to_delayed_work(work), struct mp_dev,
					work);
	bool progress;
	u64 before, wanted, plugged, held;
	int rc;

	if (READ_ONCE(d->stopping))
		return;

	mutex_lock(&d->hp_lock);
	WRITE_ONCE(d->worker_state, MP_WORKER_RUNNING);
	if (atomic_xchg(&d->config_changed, 0))
		mp_refresh_config(d);
	before = d->nr_plugged - d->nr_held;
	rc = mp_pass(d);
	if (rc)
		d->stats.retries++;
	progress = d->nr_plugged - d->nr_held != before;
	mp_update_pin(d);
	wanted = mp_wanted_granules(&d->geo, d->cfg.requested_size) *
		 d->geo.sb_size;
	plugged = d->nr_plugged * d->geo.sb_size;
	held = d->nr_held * d->geo.sb_size;
	mutex_unlock(&d->hp_lock);

	if (READ_ONCE(d->stopping))
		return;
	if (atomic_read(&d->config_changed)) {
		WRITE_ONCE(d->backoff_ms, 0);
		mp_queue(d, 0, true);
	} else if (rc) {
		/* back off exponentially only while nothing moves */
		WRITE_ONCE(d->backoff_ms, progress ? MP_BACKOFF_MIN_MS :
			   mp_backoff_next(d->backoff_ms));
		WRITE_ONCE(d->worker_state, MP_WORKER_WAITING);
		dev_dbg(&d->vdev->dev, "retrying in %u ms\n", d->backoff_ms);
		mp_queue(d, msecs_to_jiffies(d->backoff_ms), false);
	} else {
		WRITE_ONCE(d->backoff_ms, 0);
		WRITE_ONCE(d->worker_state, MP_WORKER_IDLE);
	}
	trace_memplug_worker_pass(mp_trace_dev(d), wanted, plugged, held, rc,
				  rc ? d->backoff_ms : 0);
}

static void mp_config_changed(struct virtio_device *vdev)
{
	struct mp_dev *d = vdev->priv;

	if (!d || d->kdump)
		return;
	atomic_set(&d->config_changed, 1);
	mp_kick(d);
}

/* ------------------------------------------------------------------ */
/* kdump                                                               */

#ifdef CONFIG_PROC_VMCORE
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

static void mp_kdump_init(struct mp_dev *d)
{
	d->vmcore_cb.pfn_is_ram = mp_vmcore_pfn_is_ram;
	register_vmcore_cb(&d->vmcore_cb);
	d->vmcore_registered = true;
}

static void mp_kdump_exit(struct mp_dev *d)
{
	if (d->vmcore_registered)
		unregister_vmcore_cb(&d->vmcore_cb);
	d->vmcore_registered = false;
}
#else
static void mp_kdump_init(struct mp_dev *d) { }
static void mp_kdump_exit(struct mp_dev *d) { }
#endif

/* ------------------------------------------------------------------ */
/* probe / remove                                                      */

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
			      PAGE_SIZE << pageblock_order, force_bbm,
			      bbm_block_size);
	if (gs == MP_GEO_BAD_BBM_SIZE) {
		dev_warn(dev, "bbm_block_size=0x%lx unusable, using 0x%llx\n",
			 bbm_block_size, d->geo.unit_size);
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

static void mp_teardown_vq(struct mp_dev *d)
{
	virtio_reset_device(d->vdev);
	d->vdev->config->del_vqs(d->vdev);
	d->vq = NULL;
	d->req_stuck = false;
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

static int mp_probe(struct virtio_device *vdev)
{
	struct device *dev = &vdev->dev;
	const char *field;
	struct mp_dev *d;
	u64 value;
	int rc;

	if (!vdev->config->get) {
		dev_err(dev, "config space not accessible\n");
		return -EINVAL;
	}

	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	d->vdev = vdev;
	vdev->priv = d;
	INIT_LIST_HEAD(&d->list);
	mutex_init(&d->req_lock);
	mutex_init(&d->hp_lock);
	spin_lock_init(&d->guard_lock);
	spin_lock_init(&d->kick_lock);
	init_waitqueue_head(&d->resp_wq);
	INIT_DELAYED_WORK(&d->work, mp_work_fn);
	d->mgid = -1;
	d->kdump = is_kdump_kernel();

	mp_read_config(d, &d->cfg, true);
	if (mp_validate(&d->cfg, &field, &value) != MP_CFG_OK) {
		dev_err(dev, "invalid device config: %s=0x%llx; not using the device\n",
			field, value);
		rc = -EINVAL;
		goto err_free;
	}
	rc = mp_init_geometry(d);
	if (rc)
		goto err_free;
	/*
	 * The resource keeps a pointer to its name: not into module memory,
	 * which a forced unload frees while memory may stay (mp_remove()).
	 */
	d->res_name = kstrdup_const(MP_RESOURCE_NAME, GFP_KERNEL);
	if (!d->res_name) {
		rc = -ENOMEM;
		goto err_free;
	}
	if (mp_find_orphan(d->cfg.addr, d->cfg.addr + d->cfg.region_size)) {
		dev_err(dev, "memory of this region is still added by an earlier binding; not binding again\n");
		rc = -EBUSY;
		goto err_free;
	}
	/*
	 * Memory of the region already in Linux that is not ours: another
	 * driver (virtio_mem, unbound or unloaded with memory added) put
	 * it there.  Our UNPLUG_ALL below would make the host discard RAM
	 * that Linux still uses.
	 */
	if (!d->kdump &&
	    region_intersects(d->cfg.addr, d->cfg.region_size,
			      IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE) !=
	    REGION_DISJOINT) {
		dev_err(dev, "region 0x%llx+0x%llx is already System RAM, added by another driver; not using the device (reboot to hand it to memplug)\n",
			d->cfg.addr, d->cfg.region_size);
		rc = -EBUSY;
		goto err_free;
	}
	if (!d->kdump) {
		rc = mp_claim_region(d);
		if (rc)
			goto err_free;
	}
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

	/* the kernel wants at least one memory block as group unit */
	rc = memory_group_register_dynamic(d->nid,
					   PHYS_PFN(d->geo.unit_size));
	if (rc < 0) {
		dev_err(dev, "cannot register memory group: %d\n", rc);
		goto err_vq;
	}
	d->mgid = rc;

	mp_memmap_init(d);
	if (d->memmap_on_memory)
		dev_info(dev, "memmap_on_memory: each memory block hosts its own memmap (%lu pages)%s\n",
			 d->memmap_pages,
			 d->per_mb ? ", added one memory block at a time" : "");

	rc = mp_hotplug_register(d);
	if (rc)
		goto err_group;
	mp_pm_register(d);

	rc = device_add_group(dev, &mp_attr_group);
	if (rc)
		dev_warn(dev, "sysfs attributes not available: %d\n", rc);
	else
		d->sysfs_added = true;

	virtio_device_ready(vdev);

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
	return 0;

err_group:
	memory_group_unregister(d->mgid);
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
		if (!u->added)
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
	mp_hotplug_unregister(d, false);
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
	mp_hotplug_unregister(d, false);
	/* nothing can queue it any more (stopping), make sure of it */
	cancel_delayed_work_sync(&d->work);
	memory_group_unregister(d->mgid);
	mp_release_region(d);
	mp_update_pin(d);
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

/* ------------------------------------------------------------------ */
/* power management                                                    */

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
