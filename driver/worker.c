// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - the worker: one pass plugs or unplugs step by step until the plugged
 * size matches the request; retried with backoff while it falls short.
 *
 * Copyright (C) memplug developers
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/workqueue.h>
#include <linux/virtio.h>
#include <linux/spinlock.h>
#include <linux/sched.h>

#include "memplug.h"
#include "compat.h"
#include "memplug_trace.h"

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
void mp_stop_worker(struct mp_dev *d)
{
	unsigned long flags;

	spin_lock_irqsave(&d->kick_lock, flags);
	WRITE_ONCE(d->stopping, true);
	spin_unlock_irqrestore(&d->kick_lock, flags);
	cancel_delayed_work_sync(&d->work);
}

/* Undo mp_stop_worker(): run a pass with a fresh look at the config. */
void mp_start_worker(struct mp_dev *d)
{
	unsigned long flags;

	spin_lock_irqsave(&d->kick_lock, flags);
	WRITE_ONCE(d->stopping, false);
	spin_unlock_irqrestore(&d->kick_lock, flags);
	atomic_set(&d->config_changed, 1);
	mp_kick(d);
}

/*
 * Plug or unplug one step of the mode at a time until the plugged amount
 * matches @wanted, then add plugged units that are not in Linux yet and
 * let the mode finish.  0: done; -EAGAIN: a step failed, a guard said no
 * or the worker must yield, retry later.
 */
static int mp_converge(struct mp_dev *d, u64 wanted)
{
	const struct mp_mode_ops *ops = d->ops;
	enum mp_step step;
	u64 unit;
	int rc = 0;

	for (unit = 0; unit < d->geo.nr_units; unit++)
		d->units[unit].skip = 0;

	while (!rc && d->nr_plugged != wanted) {
		if (mp_worker_should_yield(d)) {
			rc = -EAGAIN;
			break;
		}
		if (d->nr_plugged < wanted) {
			/* pinned before anything is plugged and added */
			step = mp_pin(d) ?
			       ops->plug_step(d, wanted - d->nr_plugged) :
			       MP_STEP_RETRY;
		} else {
			step = ops->unplug_step(d, d->nr_plugged - wanted);
		}
		if (step == MP_STEP_FULL) {
			/* units in transition may free up: retry later */
			if (mp_any_unit_blocked(d)) {
				rc = -EAGAIN;
				break;
			}
			dev_warn_ratelimited(&d->vdev->dev,
					     "requested size 0x%llx does not fit in the usable region\n",
					     d->cfg.requested_size);
			break;
		}
		/* a guard refusal is re-checked with backoff too */
		if (step != MP_STEP_DONE)
			rc = -EAGAIN;
		cond_resched();
	}
	if (!rc && !d->target_zero && d->nr_plugged == wanted &&
	    mp_add_strays(d) != MP_STEP_DONE)
		rc = -EAGAIN;
	if (ops->finish && ops->finish(d) != MP_STEP_DONE)
		rc = -EAGAIN;
	return rc;
}

/*
 * One pass: 0 = converged, -EAGAIN = retry with backoff.  Held sub blocks
 * the device cannot tell about yet (STATE answered BUSY or ERROR, unit in
 * transition) do not stop the rest: they count as plugged and are never
 * picked for plugging or unplugging, so everything else still converges
 * (a shrink request, remove() during a migration); the pass then says
 * "retry" for them.
 */
int mp_pass(struct mp_dev *d)
{
	int rc, held_rc = 0;
	u64 wanted;

	lockdep_assert_held(&d->hp_lock);

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
		mp_growth_guard_clear(d);
	rc = mp_converge(d, wanted);
	mp_unplug_guard_pass_end(d, wanted);
	return rc ? rc : held_rc;
}

void mp_work_fn(struct work_struct *work)
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
