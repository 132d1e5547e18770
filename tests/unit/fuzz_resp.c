// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the decoding of device answers and what the driver
 * makes of them (mp_resp_decode(), mp_req_outcome(), mp_held_decide()).
 *
 * Input: request type, answer length, then the answer buffer as the
 * device wrote it (little endian, type at offset 0, state at offset 8).
 * Invariants: a short answer is never an ACK (nor any other type), a
 * state is only reported for a complete STATE ACK and then within the
 * spec's range, bytes beyond the answer's length never change the result,
 * and only an ACK counts as done; a held sub block is never adopted or
 * forgotten without a complete STATE ACK.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mp_logic.h"

#define CHECK(x) do { if (!(x)) abort(); } while (0)

#define BUF_LEN 16

static u16 le16(const u8 *p)
{
	return (u16)(p[0] | p[1] << 8);
}

static bool same(const struct mp_resp *a, const struct mp_resp *b)
{
	return a->kind == b->kind && a->type == b->type &&
	       a->state == b->state && a->has_state == b->has_state;
}

/* the answer as mp_request() hands it over: fields read whatever len is */
static enum mp_resp_kind decode(u16 req, u32 len, const u8 *buf,
				struct mp_resp *r)
{
	return mp_resp_decode(req, len, le16(buf), le16(buf + 8), r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	u8 buf[BUF_LEN], other[BUF_LEN];
	struct mp_resp r, r2;
	enum mp_resp_kind k;
	enum mp_outcome out;
	enum mp_held_action act;
	u16 req;
	u32 len, nr, dev_blocks, i;
	int rc;

	if (size < 3)
		return 0;
	req = data[0] & 7;		/* the four types and some unknown ones */
	len = data[1] & 0x80 ? data[1] : data[1] % (BUF_LEN + 1);
	nr = data[2] & 0x7f ? data[2] & 0x7f : 65536;
	dev_blocks = data[2] & 0x80 ? 2 : 1;
	data += 3;
	size -= 3;
	memset(buf, 0xff, sizeof(buf));	/* what main.c fills in before sending */
	memcpy(buf, data, size < BUF_LEN ? size : BUF_LEN);

	k = decode(req, len, buf, &r);
	CHECK(k == r.kind);
	CHECK(k <= MP_ANS_UNKNOWN_STATE);

	/* a function of the bytes: the same answer decodes the same */
	decode(req, len, buf, &r2);
	CHECK(same(&r, &r2));

	/* ... and of the bytes that arrived only */
	memcpy(other, buf, sizeof(other));
	for (i = len; i < BUF_LEN; i++)
		other[i] = (u8)~other[i];
	decode(req, len, other, &r2);
	CHECK(same(&r, &r2));

	/* short: nothing decoded at all */
	if (len < MP_RESP_TYPE_LEN ||
	    (req == MP_REQ_STATE && len < MP_RESP_STATE_LEN)) {
		CHECK(k == MP_ANS_SHORT);
		CHECK(!r.type && !r.state && !r.has_state);
	} else {
		CHECK(k != MP_ANS_SHORT);
		CHECK(r.type == le16(buf));
		CHECK((k == MP_ANS_UNKNOWN_TYPE) == (r.type > MP_RESP_ERROR));
		if (k <= MP_ANS_ERROR)
			CHECK((u16)k == r.type);
	}

	/* a state only for a STATE ACK, and then a known one */
	CHECK(!r.has_state || (req == MP_REQ_STATE && k == MP_ANS_ACK));
	if (r.has_state)
		CHECK(r.state <= MP_STATE_MIXED && r.state == le16(buf + 8));
	if (req == MP_REQ_STATE && k == MP_ANS_ACK)
		CHECK(r.has_state);
	CHECK((k == MP_ANS_UNKNOWN_STATE) ==
	      (req == MP_REQ_STATE && len >= MP_RESP_STATE_LEN &&
	       le16(buf) == MP_RESP_ACK && le16(buf + 8) > MP_STATE_MIXED));
	if (!r.has_state && k != MP_ANS_UNKNOWN_STATE)
		CHECK(!r.state);

	/* mp_request()'s result for this answer, as main.c maps it */
	rc = k <= MP_ANS_ERROR ? r.type : -EPROTO;
	out = mp_req_outcome(rc);
	CHECK((out == MP_OUT_DONE) == (k == MP_ANS_ACK));
	CHECK((out == MP_OUT_REFUSED) == (k == MP_ANS_NACK || k == MP_ANS_BUSY));

	/* resolving held sub blocks with this answer to a STATE request */
	if (req == MP_REQ_STATE) {
		act = mp_held_decide(rc, r.has_state ? r.state : MP_STATE_MIXED,
				     nr, dev_blocks);
		if (act == MP_HELD_FORGET || act == MP_HELD_ADOPT)
			CHECK(r.has_state);
		if (act == MP_HELD_FORGET)
			CHECK(r.state == MP_STATE_UNPLUGGED);
		if (act == MP_HELD_ADOPT)
			CHECK(r.state == MP_STATE_PLUGGED);
		if (act == MP_HELD_UNPLUG)
			CHECK(nr == 1 && dev_blocks == 1 && r.state == MP_STATE_MIXED);
		if (act == MP_HELD_SPLIT_DEVICE)
			CHECK(nr == 1 && dev_blocks > 1 && r.state == MP_STATE_MIXED);
		if (act == MP_HELD_SPLIT)
			CHECK(nr > 1);
		if (k != MP_ANS_ACK)
			CHECK(act == MP_HELD_RETRY);
	}
	return 0;
}
