// SPDX-License-Identifier: GPL-2.0
/*
 * memplug - pure logic shared by the kernel module and the userspace unit
 * tests.  See mp_logic.h.
 *
 * Copyright (C) memplug developers
 */
#include "mp_logic.h"

static bool mp_is_pow2(u64 v)
{
	return v && !(v & (v - 1));
}

static bool mp_aligned(u64 v, u64 pow2)
{
	return !(v & (pow2 - 1));
}

static unsigned int mp_log2(u64 pow2)
{
	unsigned int shift = 0;

	while (pow2 > 1) {
		pow2 >>= 1;
		shift++;
	}
	return shift;
}

static u64 mp_max(u64 a, u64 b)
{
	return a > b ? a : b;
}

enum mp_cfg_status mp_config_validate(const struct mp_config *c,
				      u64 page_size, u64 plug_start,
				      u64 plug_end, const char **field,
				      u64 *value)
{
	enum mp_cfg_status st = MP_CFG_OK;
	const char *name = NULL;
	u64 val = 0;
	u64 bs = c->block_size;

	if (!mp_is_pow2(bs) || bs < page_size) {
		st = MP_CFG_BLOCK_SIZE;
		name = "block_size";
		val = bs;
	} else if (!mp_aligned(c->addr, bs)) {
		st = MP_CFG_ADDR;
		name = "addr";
		val = c->addr;
	} else if (!c->region_size || !mp_aligned(c->region_size, bs) ||
		   c->addr + c->region_size < c->addr) {
		st = MP_CFG_REGION_SIZE;
		name = "region_size";
		val = c->region_size;
	} else if (c->addr < plug_start ||
		   c->addr + c->region_size - 1 > plug_end) {
		st = MP_CFG_REGION_RANGE;
		name = "addr";
		val = c->addr;
	} else if (c->usable_region_size > c->region_size ||
		   !mp_aligned(c->usable_region_size, bs)) {
		st = MP_CFG_USABLE_REGION_SIZE;
		name = "usable_region_size";
		val = c->usable_region_size;
	} else if (c->plugged_size > c->usable_region_size ||
		   !mp_aligned(c->plugged_size, bs)) {
		st = MP_CFG_PLUGGED_SIZE;
		name = "plugged_size";
		val = c->plugged_size;
	} else if (!mp_aligned(c->requested_size, bs) ||
		   c->requested_size > c->region_size) {
		st = MP_CFG_REQUESTED_SIZE;
		name = "requested_size";
		val = c->requested_size;
	}

	if (field)
		*field = name;
	if (value)
		*value = val;
	return st;
}

bool mp_config_fixed_changed(const struct mp_config *old,
			     const struct mp_config *new, const char **field,
			     u64 *value)
{
	const char *name = NULL;
	u64 val = 0;

	if (old->block_size != new->block_size) {
		name = "block_size";
		val = new->block_size;
	} else if (old->node_id != new->node_id) {
		name = "node_id";
		val = new->node_id;
	} else if (old->addr != new->addr) {
		name = "addr";
		val = new->addr;
	} else if (old->region_size != new->region_size) {
		name = "region_size";
		val = new->region_size;
	}
	if (field)
		*field = name;
	if (value)
		*value = val;
	return !!name;
}

enum mp_geo_status mp_geometry_init(struct mp_geometry *g,
				    const struct mp_config *c, u64 mb_size,
				    u64 pageblock_size, bool force_bbm,
				    u64 bbm_block_size)
{
	enum mp_geo_status warn = MP_GEO_OK;
	u64 bs = c->block_size;
	u64 end, unit;

	*g = (struct mp_geometry){ 0 };
	if (!mp_is_pow2(mb_size) || !mp_is_pow2(pageblock_size) ||
	    !mp_is_pow2(bs) || pageblock_size > mb_size)
		return MP_GEO_BAD_INPUT;

	g->dev_block_size = bs;
	g->mb_size = mb_size;
	g->bbm = force_bbm || bs > mb_size;

	if (g->bbm) {
		unit = mp_max(bs, mb_size);
		if (bbm_block_size) {
			if (mp_is_pow2(bbm_block_size) &&
			    bbm_block_size >= unit &&
			    (bbm_block_size >> mp_log2(bs)) <=
			    MP_MAX_BLOCKS_PER_REQ &&
			    (bbm_block_size >> mp_log2(mb_size)) <=
			    MP_MAX_MBS_PER_UNIT)
				unit = bbm_block_size;
			else
				warn = MP_GEO_BAD_BBM_SIZE;
		}
		if ((unit >> mp_log2(bs)) > MP_MAX_BLOCKS_PER_REQ)
			return MP_GEO_TOO_MANY_BLOCKS;
		if ((unit >> mp_log2(mb_size)) > MP_MAX_MBS_PER_UNIT)
			return MP_GEO_TOO_MANY_MBS;
		g->sb_size = unit;
		g->sb_per_unit = 1;
	} else {
		unit = mb_size;
		g->sb_size = mp_max(bs, pageblock_size);
		g->sb_per_unit = (u32)(mb_size >> mp_log2(g->sb_size));
		if ((g->sb_size >> mp_log2(bs)) > MP_MAX_BLOCKS_PER_REQ)
			return MP_GEO_TOO_MANY_BLOCKS;
	}
	g->unit_size = unit;
	g->dev_blocks_per_unit = (u32)(unit >> mp_log2(bs));
	g->dev_blocks_per_sb = (u32)(g->sb_size >> mp_log2(bs));

	/* units: naturally aligned and fully inside the region */
	g->first_addr = (c->addr + unit - 1) & ~(unit - 1);
	end = (c->addr + c->region_size) & ~(unit - 1);
	if (g->first_addr < c->addr || end <= g->first_addr)
		return MP_GEO_NO_UNITS;
	g->nr_units = (end - g->first_addr) >> mp_log2(unit);
	return warn;
}

long long mp_addr_to_unit(const struct mp_geometry *g, u64 addr)
{
	if (!g->unit_size || addr < g->first_addr)
		return -1;
	addr = (addr - g->first_addr) >> mp_log2(g->unit_size);
	if (addr >= g->nr_units)
		return -1;
	return (long long)addr;
}

bool mp_unit_usable(const struct mp_geometry *g, const struct mp_config *c,
		    u64 idx)
{
	if (idx >= g->nr_units)
		return false;
	return mp_unit_addr(g, idx) + g->unit_size <=
	       c->addr + c->usable_region_size;
}

bool mp_sb_usable(const struct mp_geometry *g, const struct mp_config *c,
		  u64 idx, u32 sb)
{
	if (idx >= g->nr_units || sb >= g->sb_per_unit)
		return false;
	return mp_sb_addr(g, idx, sb) + g->sb_size <=
	       c->addr + c->usable_region_size;
}

u64 mp_wanted_granules(const struct mp_geometry *g, u64 requested_size)
{
	u64 granule = g->bbm ? g->unit_size : g->sb_size;

	if (!granule)
		return 0;
	return requested_size >> mp_log2(granule);
}

enum mp_unit_class mp_classify(bool busy, bool added, u32 nr_online,
			       u32 nr_movable)
{
	if (busy)
		return MP_CLASS_BUSY;
	if (!added)
		return MP_CLASS_NOT_ADDED;
	if (!nr_online)
		return MP_CLASS_OFFLINE;
	if (nr_movable >= nr_online)
		return MP_CLASS_MOVABLE;
	return MP_CLASS_KERNEL;
}

bool mp_unplug_before(enum mp_unit_class class_a, u64 idx_a,
		      enum mp_unit_class class_b, u64 idx_b)
{
	if (class_a == MP_CLASS_BUSY)
		return false;
	if (class_b == MP_CLASS_BUSY)
		return true;
	if (class_a != class_b)
		return class_a < class_b;
	return idx_a > idx_b;
}

u32 mp_backoff_next(u32 cur_ms)
{
	if (cur_ms < MP_BACKOFF_MIN_MS)
		return MP_BACKOFF_MIN_MS;
	if (cur_ms >= MP_BACKOFF_MAX_MS / 2)
		return MP_BACKOFF_MAX_MS;
	return cur_ms * 2;
}

bool mp_stuck_reset(u32 tries, u64 stuck_ms, u32 timeout_ms)
{
	return tries >= MP_STUCK_RESET_TRIES && stuck_ms >= timeout_ms;
}

enum mp_resp_kind mp_resp_decode(u16 req_type, u32 len, u16 raw_type,
				 u16 raw_state, struct mp_resp *out)
{
	*out = (struct mp_resp){ .kind = MP_ANS_SHORT };

	/* the device writes the whole answer of the request's type */
	if (len < MP_RESP_TYPE_LEN ||
	    (req_type == MP_REQ_STATE && len < MP_RESP_STATE_LEN))
		return out->kind;

	out->type = raw_type;
	switch (raw_type) {
	case MP_RESP_ACK:
		out->kind = MP_ANS_ACK;
		if (req_type != MP_REQ_STATE)
			break;
		out->state = raw_state;
		if (raw_state > MP_STATE_MIXED)
			out->kind = MP_ANS_UNKNOWN_STATE;
		else
			out->has_state = true;
		break;
	case MP_RESP_NACK:
		out->kind = MP_ANS_NACK;
		break;
	case MP_RESP_BUSY:
		out->kind = MP_ANS_BUSY;
		break;
	case MP_RESP_ERROR:
		out->kind = MP_ANS_ERROR;
		break;
	default:
		out->kind = MP_ANS_UNKNOWN_TYPE;
		break;
	}
	return out->kind;
}

enum mp_outcome mp_req_outcome(int rc)
{
	switch (rc) {
	case MP_RESP_ACK:
		return MP_OUT_DONE;
	case MP_RESP_NACK:
	case MP_RESP_BUSY:
		return MP_OUT_REFUSED;
	}
	return MP_OUT_AMBIGUOUS;
}

enum mp_held_action mp_held_decide(int rc, u16 state, u32 nr, u32 dev_blocks)
{
	if (rc == -EINVAL && nr > 1)
		return MP_HELD_SPLIT;
	if (rc != MP_RESP_ACK)
		return MP_HELD_RETRY;
	switch (state) {
	case MP_STATE_UNPLUGGED:
		return MP_HELD_FORGET;
	case MP_STATE_PLUGGED:
		return MP_HELD_ADOPT;
	}
	if (nr > 1)
		return MP_HELD_SPLIT;
	return dev_blocks > 1 ? MP_HELD_SPLIT_DEVICE : MP_HELD_UNPLUG;
}

bool mp_unplug_fits(u64 used, u64 avail, u64 floor, u64 *headroom)
{
	u64 h = used / 4;

	if (h < MP_UNPLUG_HEADROOM)
		h = MP_UNPLUG_HEADROOM;
	if (h < floor)
		h = floor;
	*headroom = h;
	/* nothing in use moves anywhere: always fits */
	return !used || (used + h >= used && used + h <= avail);
}

u64 mp_growth_units(u64 avail, u64 reserve, u64 cost)
{
	if (!cost || avail <= reserve)
		return 0;
	return (avail - reserve) / cost;
}

bool mp_take_whole(u64 nr_used, u64 nr_pageblocks)
{
	/* nr_used * MP_TAKE_WHOLE_RATIO > nr_pageblocks, without overflow */
	return nr_used > nr_pageblocks / MP_TAKE_WHOLE_RATIO;
}
