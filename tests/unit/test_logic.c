// SPDX-License-Identifier: GPL-2.0
/*
 * cmocka tests of driver/mp_logic.c: config validation, geometry,
 * unplug order, backoff, device answers.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "mp_logic.h"

#define KiB (1024ULL)
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)
#define PAGE (4 * KiB)
#define PLUG_START 0ULL
#define PLUG_END ((1ULL << 46) - 1)

static struct mp_config good(u64 bs)
{
	struct mp_config c = {
		.block_size = bs,
		.node_id = 0,
		.addr = 0x140000000ULL,		/* 5 GiB */
		.region_size = 8 * GiB,
		.usable_region_size = 8 * GiB,
		.plugged_size = 0,
		.requested_size = 2 * GiB,
	};
	return c;
}

static enum mp_cfg_status check(const struct mp_config *c, const char **f,
				u64 *v)
{
	return mp_config_validate(c, PAGE, PLUG_START, PLUG_END, f, v);
}

static void test_valid(void **state)
{
	struct mp_config c = good(2 * MiB);
	const char *f = "x";
	u64 v = 1;

	(void)state;
	assert_int_equal(check(&c, &f, &v), MP_CFG_OK);
	assert_null(f);
	c = good(PAGE);
	assert_int_equal(check(&c, NULL, NULL), MP_CFG_OK);
	c = good(2 * GiB);
	c.addr = 4 * GiB;
	assert_int_equal(check(&c, NULL, NULL), MP_CFG_OK);
}

static void test_block_size(void **state)
{
	struct mp_config c = good(3 * MiB);
	const char *f;
	u64 v;

	(void)state;
	assert_int_equal(check(&c, &f, &v), MP_CFG_BLOCK_SIZE);
	assert_string_equal(f, "block_size");
	assert_true(v == 3 * MiB);
	c.block_size = 0;
	assert_int_equal(check(&c, &f, &v), MP_CFG_BLOCK_SIZE);
	c.block_size = 2 * KiB;
	assert_int_equal(check(&c, &f, &v), MP_CFG_BLOCK_SIZE);
	c.block_size = 1ULL << 63;
	assert_int_equal(check(&c, &f, &v), MP_CFG_ADDR);
}

static void test_addr_region(void **state)
{
	struct mp_config c = good(2 * MiB);
	const char *f;
	u64 v;

	(void)state;
	c.addr += MiB;
	assert_int_equal(check(&c, &f, &v), MP_CFG_ADDR);
	assert_string_equal(f, "addr");

	c = good(2 * MiB);
	c.region_size = 0;
	assert_int_equal(check(&c, &f, &v), MP_CFG_REGION_SIZE);
	assert_string_equal(f, "region_size");
	c.region_size = 3 * MiB;
	assert_int_equal(check(&c, &f, &v), MP_CFG_REGION_SIZE);

	/* wraps around */
	c = good(2 * MiB);
	c.addr = ~0ULL - 2 * MiB + 1;
	c.region_size = 4 * MiB;
	assert_int_equal(check(&c, &f, &v), MP_CFG_REGION_SIZE);

	/* outside the pluggable range */
	c = good(2 * MiB);
	assert_int_equal(mp_config_validate(&c, PAGE, c.addr + 2 * MiB,
					    PLUG_END, &f, &v),
			 MP_CFG_REGION_RANGE);
	assert_string_equal(f, "addr");
	assert_int_equal(mp_config_validate(&c, PAGE, 0,
					    c.addr + c.region_size - 2,
					    &f, &v),
			 MP_CFG_REGION_RANGE);
	assert_int_equal(mp_config_validate(&c, PAGE, c.addr,
					    c.addr + c.region_size - 1,
					    &f, &v),
			 MP_CFG_OK);
}

static void test_sizes(void **state)
{
	struct mp_config c = good(2 * MiB);
	const char *f;
	u64 v;

	(void)state;
	c.usable_region_size = c.region_size + 2 * MiB;
	assert_int_equal(check(&c, &f, &v), MP_CFG_USABLE_REGION_SIZE);
	assert_string_equal(f, "usable_region_size");
	c.usable_region_size = MiB;
	assert_int_equal(check(&c, &f, &v), MP_CFG_USABLE_REGION_SIZE);

	c = good(2 * MiB);
	c.usable_region_size = 2 * GiB;
	c.plugged_size = 4 * GiB;
	assert_int_equal(check(&c, &f, &v), MP_CFG_PLUGGED_SIZE);
	assert_string_equal(f, "plugged_size");
	assert_true(v == 4 * GiB);
	c.plugged_size = MiB;
	assert_int_equal(check(&c, &f, &v), MP_CFG_PLUGGED_SIZE);

	c = good(2 * MiB);
	c.requested_size = 3 * MiB;
	assert_int_equal(check(&c, &f, &v), MP_CFG_REQUESTED_SIZE);
	assert_string_equal(f, "requested_size");
	c.requested_size = c.region_size + 2 * MiB;
	assert_int_equal(check(&c, &f, &v), MP_CFG_REQUESTED_SIZE);
}

static void test_fixed_changed(void **state)
{
	struct mp_config a = good(2 * MiB), b = a;
	const char *f = "x";
	u64 v = 1;

	(void)state;
	b.requested_size = 0;
	b.usable_region_size = GiB;
	b.plugged_size = 2 * MiB;
	assert_false(mp_config_fixed_changed(&a, &b, &f, &v));
	assert_null(f);
	assert_true(v == 0);
	b.addr += 2 * MiB;
	assert_true(mp_config_fixed_changed(&a, &b, &f, &v));
	assert_string_equal(f, "addr");
	assert_true(v == a.addr + 2 * MiB);
	b = a;
	b.block_size = 4 * MiB;
	assert_true(mp_config_fixed_changed(&a, &b, &f, &v));
	assert_string_equal(f, "block_size");
	assert_true(v == 4 * MiB);
	b = a;
	b.region_size = 4 * GiB;
	assert_true(mp_config_fixed_changed(&a, &b, NULL, NULL));
	assert_true(mp_config_fixed_changed(&a, &b, &f, &v));
	assert_string_equal(f, "region_size");
	assert_true(v == 4 * GiB);
	b = a;
	b.node_id = 3;
	assert_true(mp_config_fixed_changed(&a, &b, &f, &v));
	assert_string_equal(f, "node_id");
	assert_true(v == 3);
	/* the first changed field in config order is named */
	b.block_size = 4 * MiB;
	assert_true(mp_config_fixed_changed(&a, &b, &f, &v));
	assert_string_equal(f, "block_size");
}

static void test_geo_sbm(void **state)
{
	struct mp_config c = good(2 * MiB);
	struct mp_geometry g;

	(void)state;
	assert_int_equal(mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, false, 0),
			 MP_GEO_OK);
	assert_false(g.bbm);
	assert_true(g.unit_size == 128 * MiB);
	assert_true(g.sb_size == 2 * MiB);
	assert_int_equal(g.sb_per_unit, 64);
	assert_int_equal(g.dev_blocks_per_sb, 1);
	assert_true(g.first_addr == c.addr);
	assert_true(g.nr_units == 64);
	assert_true(mp_sb_addr(&g, 1, 3) == c.addr + 128 * MiB + 6 * MiB);
	assert_true(mp_wanted_granules(&g, 2 * GiB) == 1024);

	c = good(4 * MiB);
	mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, false, 0);
	assert_true(g.sb_size == 4 * MiB);
	assert_int_equal(g.sb_per_unit, 32);

	c = good(128 * MiB);
	mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, false, 0);
	assert_false(g.bbm);
	assert_int_equal(g.sb_per_unit, 1);

	/* device blocks smaller than a pageblock: sub block = pageblock */
	c = good(1 * MiB);
	mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, false, 0);
	assert_true(g.sb_size == 2 * MiB);
	assert_int_equal(g.dev_blocks_per_sb, 2);
	assert_true(mp_wanted_granules(&g, 5 * MiB) == 2);
}

static void test_geo_bbm(void **state)
{
	struct mp_config c = good(1 * GiB);
	struct mp_geometry g;

	(void)state;
	assert_int_equal(mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, false, 0),
			 MP_GEO_OK);
	assert_true(g.bbm);
	assert_true(g.unit_size == GiB);
	assert_int_equal(g.dev_blocks_per_unit, 1);
	assert_int_equal(g.sb_per_unit, 1);
	/* 5 GiB start: aligned for 1 GiB */
	assert_true(g.nr_units == 8);

	c = good(2 * GiB);
	c.addr = 4 * GiB;
	mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, false, 0);
	assert_true(g.unit_size == 2 * GiB);
	assert_true(g.nr_units == 4);
	assert_true(mp_wanted_granules(&g, 3 * GiB) == 1);

	/* force_bbm on small blocks: big block = memory block */
	c = good(2 * MiB);
	assert_int_equal(mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, true, 0),
			 MP_GEO_OK);
	assert_true(g.bbm);
	assert_true(g.unit_size == 128 * MiB);
	assert_int_equal(g.dev_blocks_per_unit, 64);

	/* explicit big block size */
	c = good(2 * MiB);
	c.addr = 4 * GiB;
	assert_int_equal(mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, true,
					  GiB), MP_GEO_OK);
	assert_true(g.unit_size == GiB);
	assert_true(g.nr_units == 8);

	/* unusable big block sizes fall back to the automatic one */
	assert_int_equal(mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, true,
					  3 * GiB), MP_GEO_BAD_BBM_SIZE);
	assert_true(g.unit_size == 128 * MiB);
	assert_int_equal(mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, true,
					  64 * MiB), MP_GEO_BAD_BBM_SIZE);
	assert_int_equal(mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, true,
					  256 * GiB), MP_GEO_BAD_BBM_SIZE);
	assert_true(g.unit_size == 128 * MiB);
}

static void test_geo_edges(void **state)
{
	struct mp_config c = good(2 * MiB);
	struct mp_geometry g;

	(void)state;
	/* region start not memory block aligned */
	c.addr = 5 * GiB + 2 * MiB;
	assert_int_equal(mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, false, 0),
			 MP_GEO_OK);
	assert_true(g.first_addr == 5 * GiB + 128 * MiB);
	assert_true(g.nr_units == 63);
	assert_int_equal(mp_addr_to_unit(&g, c.addr), -1);
	assert_int_equal(mp_addr_to_unit(&g, g.first_addr), 0);
	assert_int_equal(mp_addr_to_unit(&g, g.first_addr + 128 * MiB - 1), 0);
	assert_int_equal(mp_addr_to_unit(&g, mp_unit_addr(&g, 62)), 62);
	assert_int_equal(mp_addr_to_unit(&g, mp_unit_addr(&g, 63)), -1);

	/* too small for a single unit */
	c = good(2 * MiB);
	c.region_size = 64 * MiB;
	assert_int_equal(mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, false, 0),
			 MP_GEO_NO_UNITS);

	/* 4 KiB device blocks in 1 GiB big blocks need > 65535 per PLUG */
	c = good(4 * KiB);
	assert_int_equal(mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, true,
					  GiB), MP_GEO_BAD_BBM_SIZE);
	assert_true(g.unit_size == 128 * MiB);
	assert_int_equal(g.dev_blocks_per_unit, 32768);
}

/* struct mp_unit counts memory blocks in 16 bits */
static void test_geo_mbs_per_unit(void **state)
{
	struct mp_config c = good(16 * 1024 * GiB);	/* 16 TiB blocks */
	struct mp_geometry g;

	(void)state;
	c.addr = 16 * 1024 * GiB;
	c.region_size = 16 * 1024 * GiB;
	c.usable_region_size = c.region_size;
	c.requested_size = 0;
	/* 131072 memory blocks of 128 MiB in one device block */
	assert_int_equal(mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, false, 0),
			 MP_GEO_TOO_MANY_MBS);
	/* 65536 of 256 MiB: still one too many */
	assert_int_equal(mp_geometry_init(&g, &c, 256 * MiB, 2 * MiB, false, 0),
			 MP_GEO_TOO_MANY_MBS);
	/* 65535 is not a power of two: 32768 of 512 MiB is fine */
	assert_int_equal(mp_geometry_init(&g, &c, 512 * MiB, 2 * MiB, false, 0),
			 MP_GEO_OK);
	assert_true(g.unit_size / g.mb_size == 32768);

	/* a big block size spanning too many memory blocks is refused */
	c = good(GiB);
	c.addr = 16 * 1024 * GiB;
	c.region_size = 16 * 1024 * GiB;
	c.usable_region_size = c.region_size;
	assert_int_equal(mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, false,
					  16 * 1024 * GiB), MP_GEO_BAD_BBM_SIZE);
	assert_true(g.unit_size == GiB);
	assert_int_equal(mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, false,
					  4 * 1024 * GiB), MP_GEO_OK);
	assert_true(g.unit_size / g.mb_size == 32768);

	assert_int_equal(mp_geometry_init(&g, &c, 100 * MiB, 2 * MiB, false, 0),
			 MP_GEO_BAD_INPUT);
}

static void test_usable(void **state)
{
	struct mp_config c = good(2 * MiB);
	struct mp_geometry g;

	(void)state;
	c.usable_region_size = 130 * MiB;
	mp_geometry_init(&g, &c, 128 * MiB, 2 * MiB, false, 0);
	assert_true(mp_unit_usable(&g, &c, 0));
	assert_false(mp_unit_usable(&g, &c, 1));
	assert_true(mp_sb_usable(&g, &c, 1, 0));
	assert_false(mp_sb_usable(&g, &c, 1, 1));
	assert_false(mp_sb_usable(&g, &c, 0, 64));
	assert_false(mp_unit_usable(&g, &c, 64));
}

static void test_unplug_order(void **state)
{
	(void)state;
	assert_true(mp_unplug_before(MP_CLASS_NOT_ADDED, 0, MP_CLASS_OFFLINE, 5));
	assert_true(mp_unplug_before(MP_CLASS_OFFLINE, 0, MP_CLASS_MOVABLE, 5));
	assert_true(mp_unplug_before(MP_CLASS_MOVABLE, 0, MP_CLASS_KERNEL, 5));
	assert_true(mp_unplug_before(MP_CLASS_MOVABLE, 7, MP_CLASS_MOVABLE, 5));
	assert_false(mp_unplug_before(MP_CLASS_MOVABLE, 5, MP_CLASS_MOVABLE, 7));
	assert_true(mp_unplug_before(MP_CLASS_KERNEL, 0, MP_CLASS_BUSY, 0));
	assert_false(mp_unplug_before(MP_CLASS_BUSY, 9, MP_CLASS_BUSY, 0));
	assert_false(mp_unplug_before(MP_CLASS_BUSY, 9, MP_CLASS_KERNEL, 0));
}

static void test_classify(void **state)
{
	(void)state;
	assert_int_equal(mp_classify(true, true, 1, 1), MP_CLASS_BUSY);
	assert_int_equal(mp_classify(false, false, 0, 0), MP_CLASS_NOT_ADDED);
	assert_int_equal(mp_classify(false, true, 0, 0), MP_CLASS_OFFLINE);
	assert_int_equal(mp_classify(false, true, 8, 8), MP_CLASS_MOVABLE);
	assert_int_equal(mp_classify(false, true, 8, 7), MP_CLASS_KERNEL);
	assert_int_equal(mp_classify(false, true, 1, 0), MP_CLASS_KERNEL);
}

static void test_backoff(void **state)
{
	u32 ms = 0;
	int i;

	(void)state;
	ms = mp_backoff_next(ms);
	assert_int_equal(ms, MP_BACKOFF_MIN_MS);
	assert_int_equal(mp_backoff_next(ms), 10);
	for (i = 0; i < 40; i++)
		ms = mp_backoff_next(ms);
	assert_int_equal(ms, MP_BACKOFF_MAX_MS);
	assert_int_equal(mp_backoff_next(20000), MP_BACKOFF_MAX_MS);
}

static void test_stuck_reset(void **state)
{
	(void)state;
	/* a buffer just found stuck: wait */
	assert_false(mp_stuck_reset(0, 0, 500));
	assert_false(mp_stuck_reset(1, 10000, 500));
	/* enough tries, but not yet another timeout long */
	assert_false(mp_stuck_reset(MP_STUCK_RESET_TRIES, 499, 500));
	assert_false(mp_stuck_reset(100, 29999, 30000));
	/* long enough, but too few tries */
	assert_false(mp_stuck_reset(MP_STUCK_RESET_TRIES - 1, 60000, 500));
	/* both: reset */
	assert_true(mp_stuck_reset(MP_STUCK_RESET_TRIES, 500, 500));
	assert_true(mp_stuck_reset(1000, 1ULL << 40, 30000));
	/* req_timeout_ms=0: tries alone decide */
	assert_true(mp_stuck_reset(MP_STUCK_RESET_TRIES, 0, 0));
}

/* decode and check the invariants every answer must keep */
static enum mp_resp_kind decode(u16 req, u32 len, u16 type, u16 st,
				struct mp_resp *r)
{
	enum mp_resp_kind k = mp_resp_decode(req, len, type, st, r);

	assert_int_equal(k, r->kind);
	if (!r->has_state)
		assert_true(r->state == 0 || k == MP_ANS_UNKNOWN_STATE);
	return k;
}

static void test_resp_short(void **state)
{
	struct mp_resp r;
	u16 req;

	(void)state;
	for (req = MP_REQ_PLUG; req <= MP_REQ_STATE; req++) {
		assert_int_equal(decode(req, 0, MP_RESP_ACK, 0, &r), MP_ANS_SHORT);
		assert_int_equal(decode(req, 1, MP_RESP_ACK, 0, &r), MP_ANS_SHORT);
		assert_false(r.has_state);
		assert_int_equal(r.type, 0);
	}
	/* two bytes carry the type: enough for PLUG, UNPLUG, UNPLUG_ALL */
	assert_int_equal(decode(MP_REQ_PLUG, 2, MP_RESP_ACK, 0, &r), MP_ANS_ACK);
	assert_int_equal(decode(MP_REQ_UNPLUG, 2, MP_RESP_NACK, 0, &r),
			 MP_ANS_NACK);
	assert_int_equal(decode(MP_REQ_UNPLUG_ALL, 2, MP_RESP_BUSY, 0, &r),
			 MP_ANS_BUSY);
	/* a STATE answer needs the state too, whatever its type */
	assert_int_equal(decode(MP_REQ_STATE, 2, MP_RESP_ACK, 0, &r),
			 MP_ANS_SHORT);
	assert_int_equal(decode(MP_REQ_STATE, 9, MP_RESP_ACK, 0, &r),
			 MP_ANS_SHORT);
	assert_int_equal(decode(MP_REQ_STATE, 9, MP_RESP_NACK, 0, &r),
			 MP_ANS_SHORT);
	assert_int_equal(decode(MP_REQ_STATE, 9, 77, 0, &r), MP_ANS_SHORT);
	assert_false(r.has_state);
	assert_int_equal(decode(MP_REQ_STATE, MP_RESP_STATE_LEN, MP_RESP_ACK,
				MP_STATE_MIXED, &r), MP_ANS_ACK);
	/* a longer answer than needed is fine */
	assert_int_equal(decode(MP_REQ_PLUG, 4096, MP_RESP_ACK, 0, &r),
			 MP_ANS_ACK);
}

static void test_resp_types(void **state)
{
	struct mp_resp r;

	(void)state;
	assert_int_equal(decode(MP_REQ_PLUG, 10, MP_RESP_ACK, 5, &r), MP_ANS_ACK);
	/* only STATE answers carry a state */
	assert_false(r.has_state);
	assert_int_equal(r.state, 0);
	assert_int_equal(r.type, MP_RESP_ACK);
	assert_int_equal(decode(MP_REQ_PLUG, 10, MP_RESP_NACK, 0, &r),
			 MP_ANS_NACK);
	assert_int_equal(r.type, MP_RESP_NACK);
	assert_int_equal(decode(MP_REQ_UNPLUG, 10, MP_RESP_BUSY, 0, &r),
			 MP_ANS_BUSY);
	assert_int_equal(r.type, MP_RESP_BUSY);
	assert_int_equal(decode(MP_REQ_UNPLUG_ALL, 10, MP_RESP_ERROR, 0, &r),
			 MP_ANS_ERROR);
	assert_int_equal(r.type, MP_RESP_ERROR);
	assert_int_equal(decode(MP_REQ_PLUG, 10, 4, 0, &r), MP_ANS_UNKNOWN_TYPE);
	assert_int_equal(r.type, 4);
	assert_int_equal(decode(MP_REQ_STATE, 10, 0xffff, 0, &r),
			 MP_ANS_UNKNOWN_TYPE);
	assert_int_equal(r.type, 0xffff);
	assert_false(r.has_state);
	/* a refused STATE has no state */
	assert_int_equal(decode(MP_REQ_STATE, 10, MP_RESP_NACK, 1, &r),
			 MP_ANS_NACK);
	assert_false(r.has_state);
	assert_int_equal(decode(MP_REQ_STATE, 10, MP_RESP_ERROR, 1, &r),
			 MP_ANS_ERROR);
	assert_false(r.has_state);
}

static void test_resp_state(void **state)
{
	struct mp_resp r;

	(void)state;
	assert_int_equal(decode(MP_REQ_STATE, 10, MP_RESP_ACK, MP_STATE_PLUGGED,
				&r), MP_ANS_ACK);
	assert_true(r.has_state);
	assert_int_equal(r.state, MP_STATE_PLUGGED);
	assert_int_equal(decode(MP_REQ_STATE, 10, MP_RESP_ACK,
				MP_STATE_UNPLUGGED, &r), MP_ANS_ACK);
	assert_true(r.has_state);
	assert_int_equal(r.state, MP_STATE_UNPLUGGED);
	assert_int_equal(decode(MP_REQ_STATE, 10, MP_RESP_ACK, MP_STATE_MIXED,
				&r), MP_ANS_ACK);
	assert_true(r.has_state);
	assert_int_equal(r.state, MP_STATE_MIXED);
	assert_int_equal(decode(MP_REQ_STATE, 10, MP_RESP_ACK, 3, &r),
			 MP_ANS_UNKNOWN_STATE);
	assert_false(r.has_state);
	assert_int_equal(r.state, 3);
	assert_int_equal(decode(MP_REQ_STATE, 10, MP_RESP_ACK, 0xffff, &r),
			 MP_ANS_UNKNOWN_STATE);
	assert_int_equal(r.state, 0xffff);
}

static void test_req_outcome(void **state)
{
	(void)state;
	assert_int_equal(mp_req_outcome(MP_RESP_ACK), MP_OUT_DONE);
	assert_int_equal(mp_req_outcome(MP_RESP_NACK), MP_OUT_REFUSED);
	assert_int_equal(mp_req_outcome(MP_RESP_BUSY), MP_OUT_REFUSED);
	/* the device may have done it anyway */
	assert_int_equal(mp_req_outcome(MP_RESP_ERROR), MP_OUT_AMBIGUOUS);
	assert_int_equal(mp_req_outcome(-EPROTO), MP_OUT_AMBIGUOUS);
	assert_int_equal(mp_req_outcome(-ETIMEDOUT), MP_OUT_AMBIGUOUS);
	assert_int_equal(mp_req_outcome(-ENOMEM), MP_OUT_AMBIGUOUS);
	assert_int_equal(mp_req_outcome(4), MP_OUT_AMBIGUOUS);
}

static void test_held_decide(void **state)
{
	(void)state;
	assert_int_equal(mp_held_decide(MP_RESP_ACK, MP_STATE_UNPLUGGED, 1, 1),
			 MP_HELD_FORGET);
	assert_int_equal(mp_held_decide(MP_RESP_ACK, MP_STATE_UNPLUGGED, 64, 1),
			 MP_HELD_FORGET);
	assert_int_equal(mp_held_decide(MP_RESP_ACK, MP_STATE_PLUGGED, 1, 1),
			 MP_HELD_ADOPT);
	assert_int_equal(mp_held_decide(MP_RESP_ACK, MP_STATE_PLUGGED, 64, 1),
			 MP_HELD_ADOPT);
	assert_int_equal(mp_held_decide(MP_RESP_ACK, MP_STATE_MIXED, 64, 1),
			 MP_HELD_SPLIT);
	assert_int_equal(mp_held_decide(MP_RESP_ACK, MP_STATE_MIXED, 1, 1),
			 MP_HELD_UNPLUG);
	/*
	 * a mixed sub block of several device blocks (1 MiB device blocks,
	 * 2 MiB pageblocks; a forced big block): per device block, since
	 * the device answers ERROR to an UNPLUG of a partly plugged range
	 */
	assert_int_equal(mp_held_decide(MP_RESP_ACK, MP_STATE_MIXED, 1, 2),
			 MP_HELD_SPLIT_DEVICE);
	assert_int_equal(mp_held_decide(MP_RESP_ACK, MP_STATE_MIXED, 4, 2),
			 MP_HELD_SPLIT);
	assert_int_equal(mp_held_decide(MP_RESP_ACK, MP_STATE_PLUGGED, 1, 64),
			 MP_HELD_ADOPT);
	/* too large for one request: ask per sub block */
	assert_int_equal(mp_held_decide(-EINVAL, 0, 64, 1), MP_HELD_SPLIT);
	assert_int_equal(mp_held_decide(-EINVAL, 0, 1, 1), MP_HELD_RETRY);
	/* no usable answer: the state is not even looked at */
	assert_int_equal(mp_held_decide(MP_RESP_NACK, MP_STATE_UNPLUGGED, 1, 1),
			 MP_HELD_RETRY);
	assert_int_equal(mp_held_decide(MP_RESP_BUSY, MP_STATE_PLUGGED, 8, 1),
			 MP_HELD_RETRY);
	assert_int_equal(mp_held_decide(MP_RESP_ERROR, MP_STATE_UNPLUGGED, 1, 1),
			 MP_HELD_RETRY);
	assert_int_equal(mp_held_decide(-EPROTO, MP_STATE_UNPLUGGED, 1, 1),
			 MP_HELD_RETRY);
	assert_int_equal(mp_held_decide(-ETIMEDOUT, MP_STATE_PLUGGED, 1, 1),
			 MP_HELD_RETRY);
}

static void test_unplug_fits(void **state)
{
	const u64 mib = 1ULL << 20;
	u64 h;

	(void)state;
	/* nothing in use: always, whatever is available */
	assert_true(mp_unplug_fits(0, 0, 0, &h));
	/* a quarter of what moves, at least 8 MiB */
	assert_true(mp_unplug_fits(100 * mib, 125 * mib, 0, &h));
	assert_int_equal(h, 25 * mib);
	assert_false(mp_unplug_fits(100 * mib, 125 * mib - 1, 0, &h));
	assert_true(mp_unplug_fits(4 * mib, 12 * mib, 0, &h));
	assert_int_equal(h, MP_UNPLUG_HEADROOM);
	assert_false(mp_unplug_fits(4 * mib, 12 * mib - 1, 0, &h));
	/* the kernel's min-to-high band raises the floor (seed 1) */
	assert_false(mp_unplug_fits(4 * mib, 12 * mib, 22 * mib, &h));
	assert_int_equal(h, 22 * mib);
	assert_true(mp_unplug_fits(4 * mib, 26 * mib, 22 * mib, &h));
	/* but not above a quarter of a large range */
	assert_true(mp_unplug_fits(1024 * mib, 1280 * mib, 22 * mib, &h));
	assert_int_equal(h, 256 * mib);
	/* no wrap-around for absurd numbers */
	assert_false(mp_unplug_fits(~0ULL - 1, ~0ULL, 0, &h));
}

static void test_growth_units(void **state)
{
	const u64 mib = 1ULL << 20;

	(void)state;
	assert_int_equal(mp_growth_units(0, 0, 2 * mib), 0);
	assert_int_equal(mp_growth_units(64 * mib, 64 * mib, 2 * mib), 0);
	assert_int_equal(mp_growth_units(64 * mib, 32 * mib, 2 * mib), 16);
	assert_int_equal(mp_growth_units(65 * mib, 32 * mib, 2 * mib), 16);
	assert_int_equal(mp_growth_units(32 * mib, 64 * mib, 2 * mib), 0);
	/* a cost of 0 would divide by zero: nothing fits */
	assert_int_equal(mp_growth_units(64 * mib, 0, 0), 0);
}

static void test_take_whole(void **state)
{
	(void)state;
	/* 1/8 or less in use: only the runs in use */
	assert_false(mp_take_whole(0, 64));
	assert_false(mp_take_whole(8, 64));
	assert_true(mp_take_whole(9, 64));
	assert_false(mp_take_whole(1, 15));
	assert_true(mp_take_whole(2, 15));
	assert_true(mp_take_whole(1, 7));
	/* the same rule as nr_used * 8 > nr_pageblocks, without overflow */
	assert_true(mp_take_whole(~0ULL / 4, ~0ULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_block_size),
		cmocka_unit_test(test_addr_region),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_fixed_changed),
		cmocka_unit_test(test_geo_sbm),
		cmocka_unit_test(test_geo_bbm),
		cmocka_unit_test(test_geo_edges),
		cmocka_unit_test(test_geo_mbs_per_unit),
		cmocka_unit_test(test_usable),
		cmocka_unit_test(test_unplug_order),
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_stuck_reset),
		cmocka_unit_test(test_resp_short),
		cmocka_unit_test(test_resp_types),
		cmocka_unit_test(test_resp_state),
		cmocka_unit_test(test_req_outcome),
		cmocka_unit_test(test_held_decide),
		cmocka_unit_test(test_unplug_fits),
		cmocka_unit_test(test_growth_units),
		cmocka_unit_test(test_take_whole),
	};

	return cmocka_run_group_tests_name("mp_logic", tests, NULL, NULL);
}
