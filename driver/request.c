// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - requests to the device: send one, wait for the answer with a deadline,
 * decode it; a device that keeps a buffer is reset.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/virtio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mem.h>
#include <linux/scatterlist.h>
#include <linux/wait.h>
#include <linux/jiffies.h>
#include <linux/timekeeping.h>

#include "memplug.h"
#include "compat.h"
#include "memplug_trace.h"

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

int mp_init_vq(struct mp_dev *d)
{
	struct virtqueue *vq;

	vq = virtio_find_single_vq(d->vdev, mp_vq_done, "guest-request");
	if (IS_ERR(vq))
		return PTR_ERR(vq);
	d->vq = vq;
	return 0;
}

/* Reset the device and delete its queue (remove, freeze). */
void mp_teardown_vq(struct mp_dev *d)
{
	virtio_reset_device(d->vdev);
	d->vdev->config->del_vqs(d->vdev);
	d->vq = NULL;
	d->req_stuck = false;
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

	lockdep_assert_held(&d->req_lock);

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

	lockdep_assert_held(&d->req_lock);

	if (d->vq && mp_reap(d, &len)) {
		d->req_stuck = false;
		dev_info(dev, "late answer to a timed out request arrived\n");
		return 0;
	}
	if (d->stuck_tries < U32_MAX)
		d->stuck_tries++;
	ms = jiffies_to_msecs(jiffies - d->stuck_since);
	if (!mp_stuck_reset(d->stuck_tries, ms,
			    READ_ONCE(mp_params.req_timeout_ms)))
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

/* Queue the request in d->req (filled in) and notify the device. */
static int mp_send(struct mp_dev *d)
{
	struct scatterlist sg_req, sg_resp, *sgs[2];
	int rc;

	sg_init_one(&sg_req, &d->req, sizeof(d->req));
	sg_init_one(&sg_resp, &d->resp, sizeof(d->resp));
	sgs[0] = &sg_req;
	sgs[1] = &sg_resp;
	rc = virtqueue_add_sgs(d->vq, sgs, 1, 1, d, GFP_KERNEL);
	if (!rc)
		virtqueue_kick(d->vq);
	return rc;
}

/*
 * Make sense of the answer in d->resp, @len bytes: VIRTIO_MEM_RESP_* or
 * -EPROTO, counted in the stats; *@state gets a STATE answer.
 */
static int mp_decode(struct mp_dev *d, u16 type, u64 addr, u64 size,
		     unsigned int len, int *state)
{
	struct virtio_device *vdev = d->vdev;
	struct mp_resp ans;

	switch (mp_resp_decode(type, len, virtio16_to_cpu(vdev, d->resp.type),
			       virtio16_to_cpu(vdev, d->resp.u.state.state),
			       &ans)) {
	case MP_ANS_SHORT:
		d->stats.bad_resps++;
		dev_warn_ratelimited(&vdev->dev, "%s: malformed answer (%u bytes)\n",
				     mp_req_name(type), len);
		return -EPROTO;
	case MP_ANS_UNKNOWN_TYPE:
		d->stats.bad_resps++;
		dev_warn_ratelimited(&vdev->dev, "%s: unknown answer type %u\n",
				     mp_req_name(type), ans.type);
		return -EPROTO;
	case MP_ANS_UNKNOWN_STATE:
		d->stats.acks++;
		d->stats.bad_resps++;
		dev_warn_ratelimited(&vdev->dev, "STATE: unknown state %u\n",
				     ans.state);
		return -EPROTO;
	case MP_ANS_ACK:
		d->stats.acks++;
		if (ans.has_state)
			*state = ans.state;
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
	dev_dbg(&vdev->dev, "%s 0x%llx+0x%llx -> %u\n", mp_req_name(type),
		addr, size, ans.type);
	return ans.type;
}

/*
 * The request queue is usable, or why not: -ENODEV (suspended, or no
 * queue) or mp_unstick()'s answer.  req_lock held.
 */
static int mp_queue_usable(struct mp_dev *d)
{
	int rc;

	lockdep_assert_held(&d->req_lock);
	/* suspended: the queue is gone, and resetting the device is no fix */
	if (d->frozen)
		return -ENODEV;
	if (d->req_stuck) {
		rc = mp_unstick(d);
		if (rc)
			return rc;
	}
	return d->vq ? 0 : -ENODEV;
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
	unsigned int len = 0;
	u64 nb = size / d->geo.dev_block_size;
	bool swallow;
	int st = -1;
	long left;
	u64 t0;
	int rc;

	if (!vdev)
		return -ENODEV;
	if (type != VIRTIO_MEM_REQ_UNPLUG_ALL &&
	    (!nb || nb > MP_MAX_BLOCKS_PER_REQ))
		return -EINVAL;

	mutex_lock(&d->req_lock);
	rc = mp_queue_usable(d);
	if (rc)
		goto out;

	t0 = ktime_get_ns();
	mp_count_req(d, type);
	trace_memplug_request(mp_trace_dev(d), type, addr, size);
	rc = mp_fault_before_send(d, type);
	swallow = rc == MP_FAULT_SWALLOWED;
	if (rc && !swallow) {
		dev_dbg(&vdev->dev, "%s 0x%llx+0x%llx: injected %d\n",
			mp_req_name(type), addr, size, rc);
		goto out_answer;
	}

	memset(&d->req, 0, sizeof(d->req));
	memset(&d->resp, 0xff, sizeof(d->resp));
	d->req.type = cpu_to_virtio16(vdev, type);
	/* plug, unplug and state share one layout */
	d->req.u.plug.addr = cpu_to_virtio64(vdev, addr);
	d->req.u.plug.nb_blocks = cpu_to_virtio16(vdev, (u16)nb);
	if (swallow) {
		dev_dbg(&vdev->dev, "%s 0x%llx+0x%llx: injected: never answered\n",
			mp_req_name(type), addr, size);
	} else {
		rc = mp_send(d);
		if (rc)
			goto out_answer;
	}

	left = wait_event_timeout(d->resp_wq, mp_reap(d, &len),
				  msecs_to_jiffies(READ_ONCE(mp_params.req_timeout_ms)));
	if (!left) {
		d->req_stuck = true;
		d->stuck_since = jiffies;
		d->stuck_tries = 0;
		d->stats.bad_resps++;
		dev_warn_ratelimited(&vdev->dev,
				     "%s 0x%llx+0x%llx: no answer within %u ms\n",
				     mp_req_name(type), addr, size,
				     READ_ONCE(mp_params.req_timeout_ms));
		rc = -ETIMEDOUT;
		goto out_answer;
	}

	rc = mp_fault_answer(d, type, addr, size);
	if (!rc)
		rc = mp_decode(d, type, addr, size, len, &st);
	if (rc == VIRTIO_MEM_RESP_ACK && st >= 0 && state)
		*state = st;
out_answer:
	trace_memplug_answer(mp_trace_dev(d), type, addr, size, rc, st,
			     ktime_get_ns() - t0);
out:
	mutex_unlock(&d->req_lock);
	return rc;
}

/* Record an answer for @nr sub blocks from @sb of @unit on (into the next units). */
static void mp_mark_answer(struct mp_dev *d, u16 type, enum mp_outcome out,
			   u64 unit, u32 sb, u64 nr)
{
	u32 n;

	for (; nr; nr -= n, unit++, sb = 0) {
		n = min_t(u64, nr, d->geo.sb_per_unit - sb);
		if (out == MP_OUT_AMBIGUOUS || type == VIRTIO_MEM_REQ_PLUG)
			mp_mark_plugged(d, unit, sb, n,
					out == MP_OUT_AMBIGUOUS);
		else
			mp_mark_unplugged(d, unit, sb, n);
	}
}

/*
 * PLUG or UNPLUG @nr sub blocks from sub block @sb of @unit on with one
 * request (a run past the end of the unit goes on into the next ones:
 * whole units), and record the answer in the sub block state: done,
 * refused (nothing changes) or ambiguous (plugged and held until STATE
 * tells).  A failed UNPLUG is traced with its reason.
 */
static enum mp_outcome mp_request_sbs(struct mp_dev *d, u16 type, u64 unit,
				      u32 sb, u64 nr)
{
	u64 addr = mp_sb_addr(&d->geo, unit, sb);
	u64 size = nr * d->geo.sb_size;
	enum mp_outcome out;
	int rc;

	lockdep_assert_held(&d->hp_lock);
	rc = mp_request(d, type, addr, size, NULL);
	out = mp_req_outcome(rc);
	if (out != MP_OUT_DONE && type == VIRTIO_MEM_REQ_UNPLUG)
		trace_memplug_unplug_failed(mp_trace_dev(d), unit, addr, size,
					    mp_unplug_reason_of(rc), rc);
	if (out != MP_OUT_REFUSED)
		mp_mark_answer(d, type, out, unit, sb, nr);
	return out;
}

enum mp_outcome mp_plug_sbs(struct mp_dev *d, u64 unit, u32 sb, u64 nr)
{
	return mp_request_sbs(d, VIRTIO_MEM_REQ_PLUG, unit, sb, nr);
}

enum mp_outcome mp_unplug_sbs(struct mp_dev *d, u64 unit, u32 sb, u64 nr)
{
	return mp_request_sbs(d, VIRTIO_MEM_REQ_UNPLUG, unit, sb, nr);
}
