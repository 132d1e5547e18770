// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the config validator and the geometry built on a
 * config it accepted: nothing may overflow, and every unit must lie
 * inside the region, aligned, addressable with 16 bit block counts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mp_logic.h"

static u64 take64(const uint8_t **p, size_t *left)
{
	u64 v = 0;
	size_t n = *left < 8 ? *left : 8;

	memcpy(&v, *p, n);
	*p += n;
	*left -= n;
	return v;
}

#define CHECK(x) do { if (!(x)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data;
	size_t left = size;
	struct mp_config c;
	struct mp_geometry g;
	enum mp_geo_status gs;
	const char *field;
	u64 value, plug_start, plug_end, mb, bbm, i;
	u8 knobs;

	c.block_size = take64(&p, &left);
	c.node_id = (u16)take64(&p, &left);
	c.addr = take64(&p, &left);
	c.region_size = take64(&p, &left);
	c.usable_region_size = take64(&p, &left);
	c.plugged_size = take64(&p, &left);
	c.requested_size = take64(&p, &left);
	plug_start = take64(&p, &left) & ((1ULL << 52) - 1);
	plug_end = take64(&p, &left);
	knobs = (u8)take64(&p, &left);
	bbm = take64(&p, &left);

	/* small inputs: make block sizes likely powers of two */
	if (knobs & 0x80)
		c.block_size = 1ULL << (c.block_size % 64);

	if (mp_config_validate(&c, 4096, plug_start, plug_end, &field,
			       &value) != MP_CFG_OK) {
		CHECK(field);
		return 0;
	}
	CHECK(!field);
	CHECK(c.block_size >= 4096 && !(c.block_size & (c.block_size - 1)));
	CHECK(c.addr >= plug_start);
	CHECK(c.addr + c.region_size - 1 <= plug_end);
	CHECK(c.addr + c.region_size > c.addr);
	CHECK(c.usable_region_size <= c.region_size);
	CHECK(c.plugged_size <= c.usable_region_size);

	mb = 1ULL << (21 + (knobs & 0x7));		/* 2 MiB .. 256 MiB */
	gs = mp_geometry_init(&g, &c, mb, 2ULL << 20, knobs & 0x8,
			      (knobs & 0x10) ? bbm : 0);
	if (gs != MP_GEO_OK && gs != MP_GEO_BAD_BBM_SIZE)
		return 0;

	CHECK(g.unit_size && !(g.unit_size & (g.unit_size - 1)));
	CHECK(g.sb_size && g.sb_per_unit);
	CHECK((u64)g.sb_per_unit * g.sb_size == g.unit_size);
	CHECK(g.dev_blocks_per_sb <= MP_MAX_BLOCKS_PER_REQ);
	CHECK(g.dev_blocks_per_unit <= MP_MAX_BLOCKS_PER_REQ || !g.bbm);
	CHECK(g.unit_size / mb <= MP_MAX_MBS_PER_UNIT);
	CHECK(!(g.first_addr & (g.unit_size - 1)));
	CHECK(g.nr_units >= 1);
	CHECK(g.first_addr >= c.addr);
	CHECK(mp_unit_addr(&g, g.nr_units) <= c.addr + c.region_size);
	CHECK(mp_unit_addr(&g, g.nr_units) > g.first_addr);
	if (g.bbm)
		CHECK(g.unit_size >= c.block_size && g.unit_size >= mb);
	else
		CHECK(g.sb_size >= c.block_size && g.unit_size == mb);

	for (i = 0; i < g.nr_units && i < 4; i++) {
		CHECK(mp_addr_to_unit(&g, mp_unit_addr(&g, i)) == (long long)i);
		CHECK(mp_addr_to_unit(&g, mp_unit_addr(&g, g.nr_units - 1 - i)) ==
		      (long long)(g.nr_units - 1 - i));
	}
	CHECK(mp_addr_to_unit(&g, mp_unit_addr(&g, g.nr_units)) == -1);
	if (g.first_addr)
		CHECK(mp_addr_to_unit(&g, g.first_addr - 1) == -1);
	CHECK(mp_wanted_granules(&g, c.requested_size) *
	      (g.bbm ? g.unit_size : g.sb_size) <= c.region_size);
	return 0;
}
