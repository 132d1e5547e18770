/* SPDX-License-Identifier: GPL-2.0 */
/*
 * memplug - pure logic shared by the kernel module and the userspace unit
 * tests: config validation, block geometry and "what next" decisions.
 *
 * Nothing in here may touch kernel state: no locks, no allocation, no
 * printing.  Every function is a function of its arguments.
 *
 * Copyright (C) memplug developers
 */
#ifndef MEMPLUG_MP_LOGIC_H
#define MEMPLUG_MP_LOGIC_H

#ifdef __KERNEL__
#include <linux/errno.h>
#include <linux/types.h>
#else
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;
#endif

/* The virtio-mem request carries a 16 bit block count. */
#define MP_MAX_BLOCKS_PER_REQ	0xffffULL

/* Device configuration, in CPU byte order. */
struct mp_config {
	u64 block_size;
	u16 node_id;
	u64 addr;
	u64 region_size;
	u64 usable_region_size;
	u64 plugged_size;
	u64 requested_size;
};

/* Result of mp_config_validate(); MP_CFG_OK is 0. */
enum mp_cfg_status {
	MP_CFG_OK = 0,
	MP_CFG_BLOCK_SIZE,		/* not a power of two or < page size */
	MP_CFG_ADDR,			/* not aligned to the block size */
	MP_CFG_REGION_SIZE,		/* zero, unaligned or wrapping */
	MP_CFG_REGION_RANGE,		/* outside the pluggable range */
	MP_CFG_USABLE_REGION_SIZE,	/* > region_size or unaligned */
	MP_CFG_PLUGGED_SIZE,		/* > usable_region_size or unaligned */
	MP_CFG_REQUESTED_SIZE,		/* unaligned or > region_size */
};

/*
 * Validate a config.  @page_size is the guest page size, [@plug_start,
 * @plug_end] (inclusive end, like struct range) the range memory hotplug
 * accepts.  On failure *@field names the offending config field and
 * *@value holds its value.
 */
enum mp_cfg_status mp_config_validate(const struct mp_config *c,
				      u64 page_size, u64 plug_start,
				      u64 plug_end, const char **field,
				      u64 *value);

/*
 * Only requested_size, usable_region_size and plugged_size may change at
 * runtime; returns true when one of the fixed fields differs.  Then
 * *@field names the first one that does and *@value holds its new value
 * (both optional).
 */
bool mp_config_fixed_changed(const struct mp_config *old,
			     const struct mp_config *new, const char **field,
			     u64 *value);

/* Block geometry of one device. */
struct mp_geometry {
	bool bbm;		/* big block mode, else sub block mode */
	u64 dev_block_size;	/* device block size */
	u64 mb_size;		/* Linux memory block size */
	/*
	 * Unit of hotplug: SBM: one memory block (mb_size), BBM: one big
	 * block.  Units are naturally aligned and lie fully inside the
	 * device region.
	 */
	u64 unit_size;
	u64 first_addr;		/* address of unit 0 */
	u64 nr_units;		/* units that fit in the region */
	/* SBM only: sub block (plug granularity inside a memory block) */
	u64 sb_size;
	u32 sb_per_unit;
	/* blocks per PLUG/UNPLUG of a whole unit (BBM) or sub block (SBM) */
	u32 dev_blocks_per_unit;
	u32 dev_blocks_per_sb;
};

enum mp_geo_status {
	MP_GEO_OK = 0,
	MP_GEO_BAD_BBM_SIZE,	/* bbm_block_size unusable, auto size used */
	MP_GEO_NO_UNITS,	/* region too small/unaligned for one unit */
	MP_GEO_BAD_INPUT,	/* mb/page/pageblock size not a power of two */
	MP_GEO_TOO_MANY_BLOCKS,	/* a unit needs > 65535 device blocks */
	MP_GEO_TOO_MANY_MBS,	/* a unit spans > 65535 memory blocks */
};

/* The per unit memory block counters (struct mp_unit) are 16 bit. */
#define MP_MAX_MBS_PER_UNIT	0xffffULL

/*
 * Compute the geometry.  The config must have passed mp_config_validate().
 * @pageblock_size is the minimum sub block size (alloc_contig_range and
 * page isolation work on pageblocks).  @bbm_block_size 0 means automatic.
 * MP_GEO_BAD_BBM_SIZE is a warning: the geometry is valid (auto size).
 */
enum mp_geo_status mp_geometry_init(struct mp_geometry *g,
				    const struct mp_config *c, u64 mb_size,
				    u64 pageblock_size, bool force_bbm,
				    u64 bbm_block_size);

/* Address of unit @idx. */
static inline u64 mp_unit_addr(const struct mp_geometry *g, u64 idx)
{
	return g->first_addr + idx * g->unit_size;
}

/* Address of sub block @sb of unit @idx (SBM). */
static inline u64 mp_sb_addr(const struct mp_geometry *g, u64 idx, u32 sb)
{
	return mp_unit_addr(g, idx) + (u64)sb * g->sb_size;
}

/*
 * Index of the unit containing @addr, or -1 when @addr is outside all
 * units.
 */
long long mp_addr_to_unit(const struct mp_geometry *g, u64 addr);

/* Is unit @idx completely inside the usable part of the region? */
bool mp_unit_usable(const struct mp_geometry *g, const struct mp_config *c,
		    u64 idx);

/* Is sub block @sb of unit @idx inside the usable part of the region? */
bool mp_sb_usable(const struct mp_geometry *g, const struct mp_config *c,
		  u64 idx, u32 sb);

/*
 * How many plug granules (BBM: units, SBM: sub blocks) the device wants
 * plugged: requested_size rounded down to the granule.
 */
u64 mp_wanted_granules(const struct mp_geometry *g, u64 requested_size);

/*
 * Unplug preference.  Lower rank is unplugged first.  Memory that is not
 * in the buddy at all (not added, or added but offline) is the cheapest;
 * then ZONE_MOVABLE, then anything else.  Inside a class, higher
 * addresses go first (keeps plugged memory compact at the start).
 */
enum mp_unit_class {
	MP_CLASS_NOT_ADDED = 0,	/* plugged but not added to Linux */
	MP_CLASS_OFFLINE,	/* added, every memory block offline */
	MP_CLASS_MOVABLE,	/* online, all in ZONE_MOVABLE */
	MP_CLASS_KERNEL,	/* online, some not in ZONE_MOVABLE */
	MP_CLASS_BUSY,		/* in transition: never pick */
};

/*
 * Class of a unit from its state: @busy (worker or notifier transition),
 * @added, @nr_online / @nr_movable online memory blocks (of which in
 * ZONE_MOVABLE).
 */
enum mp_unit_class mp_classify(bool busy, bool added, u32 nr_online,
			       u32 nr_movable);

/* Returns true when (class_a, idx_a) should be unplugged before (b). */
bool mp_unplug_before(enum mp_unit_class class_a, u64 idx_a,
		      enum mp_unit_class class_b, u64 idx_b);

/*
 * Device answers.  The values are the virtio-mem spec's (request.c checks
 * them against <linux/virtio_mem.h> at build time); the layout of an
 * answer is: u16 type at offset 0, u16 state at offset 8 (STATE only).
 */
#define MP_REQ_PLUG		0
#define MP_REQ_UNPLUG		1
#define MP_REQ_UNPLUG_ALL	2
#define MP_REQ_STATE		3

#define MP_RESP_ACK		0
#define MP_RESP_NACK		1
#define MP_RESP_BUSY		2
#define MP_RESP_ERROR		3

#define MP_STATE_PLUGGED	0
#define MP_STATE_UNPLUGGED	1
#define MP_STATE_MIXED		2

#define MP_RESP_TYPE_LEN	2	/* bytes an answer needs for its type */
#define MP_RESP_STATE_LEN	10	/* ... and a STATE answer for the state */

/* What an answer means, from mp_resp_decode(). */
enum mp_resp_kind {
	MP_ANS_ACK = 0,		/* done (STATE: state is valid) */
	MP_ANS_NACK,		/* refused, nothing done */
	MP_ANS_BUSY,		/* not now, nothing done */
	MP_ANS_ERROR,		/* device error: may or may not be done */
	MP_ANS_SHORT,		/* too short for the request's answer */
	MP_ANS_UNKNOWN_TYPE,	/* type not in the spec */
	MP_ANS_UNKNOWN_STATE,	/* STATE ACK with a state not in the spec */
};

struct mp_resp {
	enum mp_resp_kind kind;
	u16 type;		/* the answer's type; 0 for MP_ANS_SHORT */
	u16 state;		/* STATE ACK or UNKNOWN_STATE only, else 0 */
	bool has_state;		/* kind == MP_ANS_ACK and a STATE request */
};

/*
 * Decode the answer to a request of type @req_type: @len bytes arrived,
 * @raw_type and @raw_state are the type and state fields of the answer
 * buffer in CPU byte order, whatever @len says (they are not looked at
 * when @len does not cover them).  Fills *@out and returns out->kind.
 */
enum mp_resp_kind mp_resp_decode(u16 req_type, u32 len, u16 raw_type,
				 u16 raw_state, struct mp_resp *out);

/*
 * What a PLUG/UNPLUG answer says about the blocks: done, not done, or
 * unknown (ERROR, malformed, missing answer, request not queued...).
 * @rc is mp_request()'s result: MP_RESP_* or a negative errno.
 */
enum mp_outcome {
	MP_OUT_DONE = 0,	/* ACK */
	MP_OUT_REFUSED,		/* NACK, BUSY: the device did nothing */
	MP_OUT_AMBIGUOUS,	/* anything else: ask STATE before reuse */
};

enum mp_outcome mp_req_outcome(int rc);

/*
 * Resolving @nr held sub blocks (plug granules) of @dev_blocks device
 * blocks each with a STATE request: @rc is mp_request()'s result for it
 * (-EINVAL: the run is too large for one request), @state the state it
 * reported (only read on ACK).  A device refuses (ERROR) to UNPLUG a
 * range that is not completely plugged, so a mixed sub block of several
 * device blocks is resolved device block by device block.
 */
enum mp_held_action {
	MP_HELD_RETRY = 0,	/* no usable answer: keep them held, retry */
	MP_HELD_FORGET,		/* unplugged: mark them unplugged */
	MP_HELD_ADOPT,		/* plugged: keep them as plugged */
	MP_HELD_SPLIT,		/* mixed or too large: one sub block each */
	MP_HELD_SPLIT_DEVICE,	/* one mixed sub block: per device block */
	MP_HELD_UNPLUG,		/* one mixed device block (a device bug): UNPLUG */
};

enum mp_held_action mp_held_decide(int rc, u16 state, u32 nr, u32 dev_blocks);

/* Exponential backoff: next delay in ms after @cur_ms (0 = first). */
u32 mp_backoff_next(u32 cur_ms);

#define MP_BACKOFF_MIN_MS	5
#define MP_BACKOFF_MAX_MS	30000

/*
 * A request timed out and the device still holds its buffer: with one
 * request at a time every later request fails until the buffer comes
 * back, maybe never.  Reset the device and re-create the queue once
 * @tries requests found the buffer still queued and @stuck_ms have passed
 * since the timeout, at least one more request timeout (@timeout_ms): a
 * late answer gets a fair chance, a lost one does not stall the device
 * for good.  The request's blocks are held, so STATE finds out later what
 * the device did with it.
 */
#define MP_STUCK_RESET_TRIES	3

bool mp_stuck_reset(u32 tries, u64 stuck_ms, u32 timeout_ms);

/*
 * The unplug guard's rule: @used bytes in use may be migrated away when
 * @avail bytes are available elsewhere for them plus a headroom of a
 * quarter of them, at least MP_UNPLUG_HEADROOM and at least @floor (the
 * kernel's own buffer, guard.c).  *@headroom gets the headroom used.
 */
#define MP_UNPLUG_HEADROOM	(8ULL << 20)

bool mp_unplug_fits(u64 used, u64 avail, u64 floor, u64 *headroom);

/*
 * The growth guard's count: how many more units, costing @cost bytes of
 * unmovable memory each, fit in @avail bytes free above the watermarks
 * while @reserve bytes stay free.
 */
u64 mp_growth_units(u64 avail, u64 reserve, u64 cost);

/*
 * Take a range in use as a whole when more than 1/MP_TAKE_WHOLE_RATIO of
 * its @nr_pageblocks hold pages in use (@nr_used): zeroing the free rest
 * then costs less than migrating what lands in it twice.  Otherwise only
 * the runs of pageblocks in use are taken.
 */
#define MP_TAKE_WHOLE_RATIO	8

bool mp_take_whole(u64 nr_used, u64 nr_pageblocks);

#endif /* MEMPLUG_MP_LOGIC_H */
