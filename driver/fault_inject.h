/* SPDX-License-Identifier: GPL-2.0 */
/*
 * memplug - fault injection for testing, only in builds made with
 * "make MEMPLUG_FAULT_INJECT=1" (fault_inject.c); release builds get the
 * empty stubs below and contain none of it.
 *
 * Knobs per device in debugfs, /sys/kernel/debug/memplug/virtioN/:
 *   fault_every  every Nth request (counted per device) is hit; 0 = off
 *   fault_kind   what happens to it (enum mp_fault_kind)
 *   fault_types  which request types can be hit: bit (1 << type), PLUG 1,
 *                UNPLUG 2, UNPLUG_ALL 4, STATE 8; default 15 (all); only
 *                requests of these types count for fault_every
 *   injected     (read only) how many requests were hit so far
 *   bad_config   a config field name (enum mp_fault_field) or "none":
 *                that field is corrupted in every config read at runtime
 *                (config-changed interrupt) until set back to "none"
 *   config_injected (read only) config reads corrupted so far
 *   add_fail     1: add_memory_driver_managed() calls fail with -ENOMEM
 *                (not called) once add_pass more have gone through;
 *                0 = off
 *   add_pass     adds still let through while add_fail is 1 (counts down)
 *   blind_walk   1: the walk before removing a unit sees no page in use,
 *                as if every page in use had been allocated after it;
 *                offlining gets pages to migrate.  0 = off
 * NACK and BUSY answer without sending the request, 6 (swallow) neither
 * sends nor answers it: the request times out and every later one finds
 * the "buffer" still out until the driver resets the device.  ERROR, a malformed
 * answer and no answer send the request (the device may really carry it
 * out) and then replace or drop the device's answer, so the driver has to
 * find out what happened, as with a real ambiguous answer.
 *
 * The module parameter fi_bad_config=<field> corrupts that field in the
 * config read at probe, for every device bound while it is set.  Each
 * corruption makes the config invalid in a way mp_config_validate() must
 * catch (see mp_fault_corrupt()).
 *
 * Copyright (C) memplug developers
 */
#ifndef MEMPLUG_FAULT_INJECT_H
#define MEMPLUG_FAULT_INJECT_H

#include <linux/errno.h>
#include <linux/types.h>

struct mp_dev;
struct dentry;

enum mp_fault_kind {
	MP_FAULT_NONE = 0,
	MP_FAULT_NACK = 1,
	MP_FAULT_BUSY = 2,
	MP_FAULT_ERROR = 3,
	MP_FAULT_MALFORMED = 4,
	MP_FAULT_NO_ANSWER = 5,
	MP_FAULT_SWALLOW = 6,
};

/*
 * mp_fault_before_send(): swallow the request, the device never sees it;
 * mp_request() waits for an answer that never comes, as if the device
 * kept the buffer for good (only a device reset gets the queue back).
 */
#define MP_FAULT_SWALLOWED	(-ENOMSG)

/* config fields fi_bad_config and bad_config can corrupt */
enum mp_fault_field {
	MP_FAULT_FIELD_NONE = 0,
	MP_FAULT_FIELD_BLOCK_SIZE,
	MP_FAULT_FIELD_ADDR,
	MP_FAULT_FIELD_REGION_SIZE,
	MP_FAULT_FIELD_USABLE_REGION_SIZE,
	MP_FAULT_FIELD_PLUGGED_SIZE,
	MP_FAULT_FIELD_REQUESTED_SIZE,
};

struct mp_config;

#ifdef MEMPLUG_FAULT_INJECT

/* per device state, in struct mp_dev; the counters under req_lock */
struct mp_fault_inject {
	struct dentry *dir;
	u32 every;		/* debugfs */
	u32 kind;		/* debugfs */
	u32 types;		/* debugfs: request types hit, 1 << type */
	u32 injected;		/* debugfs, read only */
	u32 count;		/* requests seen */
	u32 pending;		/* kind for the answer of the request in flight */
	u32 bad_config;		/* debugfs: enum mp_fault_field */
	u32 config_injected;	/* debugfs, read only; hp_lock */
	u32 add_fail;		/* debugfs */
	u32 add_pass;		/* debugfs; counts down */
	u32 blind_walk;		/* debugfs */
};

void mp_fault_dev_init(struct mp_dev *d);
void mp_fault_dev_exit(struct mp_dev *d);
int mp_fault_before_send(struct mp_dev *d, u16 type);
int mp_fault_answer(struct mp_dev *d, u16 type, u64 addr, u64 size);
void mp_fault_config(struct mp_dev *d, struct mp_config *c, bool probe);
int mp_fault_add(struct mp_dev *d);
bool mp_fault_blind_walk(struct mp_dev *d);

#else

static inline void mp_fault_dev_init(struct mp_dev *d) { }
static inline void mp_fault_dev_exit(struct mp_dev *d) { }

/* An answer instead of sending the request, or 0 (send it). */
static inline int mp_fault_before_send(struct mp_dev *d, u16 type)
{
	return 0;
}

/* An answer replacing the device's, or 0 (use the device's answer). */
static inline int mp_fault_answer(struct mp_dev *d, u16 type, u64 addr,
				  u64 size)
{
	return 0;
}

/* Corrupt the config just read from the device (probe or runtime). */
static inline void mp_fault_config(struct mp_dev *d, struct mp_config *c,
				   bool probe)
{
}

/* An error instead of adding memory, or 0 (add it). */
static inline int mp_fault_add(struct mp_dev *d)
{
	return 0;
}

/* Should the walk before a removal see no page in use? */
static inline bool mp_fault_blind_walk(struct mp_dev *d)
{
	return false;
}

#endif /* MEMPLUG_FAULT_INJECT */

#endif /* MEMPLUG_FAULT_INJECT_H */
