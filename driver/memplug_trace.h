/* SPDX-License-Identifier: GPL-2.0 */
/*
 * memplug - tracepoints (events/memplug/ in tracefs).  Documented in
 * docs/driver.md, "Tracing".  trace.c defines them (CREATE_TRACE_POINTS).
 *
 * Every event starts with dev, the virtio device index (virtioN), or -1
 * once the device is gone (orphaned memory).  Addresses and sizes are in
 * bytes.
 *
 * Copyright (C) memplug developers
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM memplug

#if !defined(MEMPLUG_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define MEMPLUG_TRACE_H

#include <linux/tracepoint.h>
#include <linux/memory.h>
#include <linux/virtio_mem.h>

#ifndef MEMPLUG_TRACE_ONCE
#define MEMPLUG_TRACE_ONCE

#include "memplug.h"

/* Why an unplug attempt failed (memplug_unplug_failed.reason). */
enum mp_unplug_reason {
	MP_UNPLUG_NACK,		/* device refused the UNPLUG */
	MP_UNPLUG_BUSY,		/* device busy, try again later */
	MP_UNPLUG_ERROR,	/* device answered ERROR (ambiguous) */
	MP_UNPLUG_NO_ANSWER,	/* no answer in time (ambiguous) */
	MP_UNPLUG_MALFORMED,	/* malformed answer (ambiguous) */
	MP_UNPLUG_NOT_SENT,	/* request could not be queued */
	MP_UNPLUG_CONTIG,	/* alloc_contig_range() failed */
	MP_UNPLUG_OFFLINE,	/* offline_and_remove_memory() failed */
	MP_UNPLUG_NO_ROOM,	/* the rest of the guest cannot hold the data */
};

/* Map a mp_request() result (not ACK) to the unplug failure reason. */
static inline enum mp_unplug_reason mp_unplug_reason_of(int rc)
{
	switch (rc) {
	case VIRTIO_MEM_RESP_NACK:
		return MP_UNPLUG_NACK;
	case VIRTIO_MEM_RESP_BUSY:
		return MP_UNPLUG_BUSY;
	case VIRTIO_MEM_RESP_ERROR:
		return MP_UNPLUG_ERROR;
	case -ETIMEDOUT:
		return MP_UNPLUG_NO_ANSWER;
	case -EPROTO:
		return MP_UNPLUG_MALFORMED;
	default:
		return MP_UNPLUG_NOT_SENT;
	}
}

/* the dev field of every event */
static inline int mp_trace_dev(const struct mp_dev *d)
{
	return d->vdev ? (int)d->vdev->index : -1;
}

/* request type names, shared by memplug_request and memplug_answer */
#define mp_show_req_type(type)						\
	__print_symbolic(type,						\
			 { VIRTIO_MEM_REQ_PLUG, "PLUG" },		\
			 { VIRTIO_MEM_REQ_UNPLUG, "UNPLUG" },		\
			 { VIRTIO_MEM_REQ_UNPLUG_ALL, "UNPLUG_ALL" },	\
			 { VIRTIO_MEM_REQ_STATE, "STATE" })
#endif /* MEMPLUG_TRACE_ONCE */

/* let user space tools decode the reasons, too */
TRACE_DEFINE_ENUM(MP_UNPLUG_NACK);
TRACE_DEFINE_ENUM(MP_UNPLUG_BUSY);
TRACE_DEFINE_ENUM(MP_UNPLUG_ERROR);
TRACE_DEFINE_ENUM(MP_UNPLUG_NO_ANSWER);
TRACE_DEFINE_ENUM(MP_UNPLUG_MALFORMED);
TRACE_DEFINE_ENUM(MP_UNPLUG_NOT_SENT);
TRACE_DEFINE_ENUM(MP_UNPLUG_CONTIG);
TRACE_DEFINE_ENUM(MP_UNPLUG_OFFLINE);
TRACE_DEFINE_ENUM(MP_UNPLUG_NO_ROOM);

/* A request is sent to the device (or answered by fault injection). */
TRACE_EVENT(memplug_request,
	    TP_PROTO(int dev, u16 type, u64 addr, u64 size),
	    TP_ARGS(dev, type, addr, size),
	    TP_STRUCT__entry(__field(int, dev)
			     __field(u16, type)
			     __field(u64, addr)
			     __field(u64, size)),
	    TP_fast_assign(__entry->dev = dev;
			   __entry->type = type;
			   __entry->addr = addr;
			   __entry->size = size;),
	    TP_printk("dev=%d type=%s addr=0x%llx size=0x%llx", __entry->dev,
		      mp_show_req_type(__entry->type),
		      __entry->addr, __entry->size)
);

/*
 * The outcome of a request: resp is VIRTIO_MEM_RESP_* (0 ACK, 1 NACK,
 * 2 BUSY, 3 ERROR) or a negative errno (-ETIMEDOUT no answer, -EPROTO
 * malformed); state is the STATE answer (0 plugged, 1 unplugged, 2 mixed)
 * or -1; latency from sending to the answer.
 */
TRACE_EVENT(memplug_answer,
	    TP_PROTO(int dev, u16 type, u64 addr, u64 size, int resp,
		     int state, u64 latency_ns),
	    TP_ARGS(dev, type, addr, size, resp, state, latency_ns),
	    TP_STRUCT__entry(__field(int, dev)
			     __field(u16, type)
			     __field(u64, addr)
			     __field(u64, size)
			     __field(int, resp)
			     __field(int, state)
			     __field(u64, latency_ns)),
	    TP_fast_assign(__entry->dev = dev;
			   __entry->type = type;
			   __entry->addr = addr;
			   __entry->size = size;
			   __entry->resp = resp;
			   __entry->state = state;
			   __entry->latency_ns = latency_ns;),
	    TP_printk("dev=%d type=%s addr=0x%llx size=0x%llx resp=%d state=%d latency_ns=%llu",
		      __entry->dev,
		      mp_show_req_type(__entry->type),
		      __entry->addr, __entry->size, __entry->resp,
		      __entry->state, __entry->latency_ns)
);

DECLARE_EVENT_CLASS(memplug_unit,
		    TP_PROTO(int dev, u64 addr, u64 size, int rc),
		    TP_ARGS(dev, addr, size, rc),
		    TP_STRUCT__entry(__field(int, dev)
				     __field(u64, addr)
				     __field(u64, size)
				     __field(int, rc)),
		    TP_fast_assign(__entry->dev = dev;
				   __entry->addr = addr;
				   __entry->size = size;
				   __entry->rc = rc;),
		    TP_printk("dev=%d addr=0x%llx size=0x%llx rc=%d",
			      __entry->dev, __entry->addr, __entry->size,
			      __entry->rc)
);

/* add_memory_driver_managed() of one unit returned rc */
DEFINE_EVENT(memplug_unit, memplug_unit_add,
	     TP_PROTO(int dev, u64 addr, u64 size, int rc),
	     TP_ARGS(dev, addr, size, rc)
);

/* offline_and_remove_memory() of one unit returned rc */
DEFINE_EVENT(memplug_unit, memplug_unit_remove,
	     TP_PROTO(int dev, u64 addr, u64 size, int rc),
	     TP_ARGS(dev, addr, size, rc)
);

/* The memory notifier saw action for memory of our region. */
TRACE_EVENT(memplug_memory_notify,
	    TP_PROTO(int dev, unsigned long action, u64 addr, u64 size,
		     int rc),
	    TP_ARGS(dev, action, addr, size, rc),
	    TP_STRUCT__entry(__field(int, dev)
			     __field(unsigned long, action)
			     __field(u64, addr)
			     __field(u64, size)
			     __field(int, rc)),
	    TP_fast_assign(__entry->dev = dev;
			   __entry->action = action;
			   __entry->addr = addr;
			   __entry->size = size;
			   __entry->rc = rc;),
	    TP_printk("dev=%d action=%s addr=0x%llx size=0x%llx rc=%s",
		      __entry->dev,
		      __print_symbolic(__entry->action,
				       { MEM_GOING_ONLINE, "GOING_ONLINE" },
				       { MEM_CANCEL_ONLINE, "CANCEL_ONLINE" },
				       { MEM_ONLINE, "ONLINE" },
				       { MEM_GOING_OFFLINE, "GOING_OFFLINE" },
				       { MEM_CANCEL_OFFLINE, "CANCEL_OFFLINE" },
				       { MEM_OFFLINE, "OFFLINE" }),
		      __entry->addr, __entry->size,
		      __entry->rc == NOTIFY_OK ? "ok" : "refused")
);

/* An unplug attempt of (part of) a unit failed. */
TRACE_EVENT(memplug_unplug_failed,
	    TP_PROTO(int dev, u64 unit, u64 addr, u64 size, int reason,
		     int rc),
	    TP_ARGS(dev, unit, addr, size, reason, rc),
	    TP_STRUCT__entry(__field(int, dev)
			     __field(u64, unit)
			     __field(u64, addr)
			     __field(u64, size)
			     __field(int, reason)
			     __field(int, rc)),
	    TP_fast_assign(__entry->dev = dev;
			   __entry->unit = unit;
			   __entry->addr = addr;
			   __entry->size = size;
			   __entry->reason = reason;
			   __entry->rc = rc;),
	    TP_printk("dev=%d unit=%llu addr=0x%llx size=0x%llx reason=%s rc=%d",
		      __entry->dev, __entry->unit, __entry->addr,
		      __entry->size,
		      __print_symbolic(__entry->reason,
				       { MP_UNPLUG_NACK, "nack" },
				       { MP_UNPLUG_BUSY, "busy" },
				       { MP_UNPLUG_ERROR, "error" },
				       { MP_UNPLUG_NO_ANSWER, "no_answer" },
				       { MP_UNPLUG_MALFORMED, "malformed" },
				       { MP_UNPLUG_NOT_SENT, "not_sent" },
				       { MP_UNPLUG_CONTIG, "contig_failed" },
				       { MP_UNPLUG_OFFLINE, "offline_failed" },
				       { MP_UNPLUG_NO_ROOM, "no_room" }),
		      __entry->rc)
);

/*
 * One worker pass: wanted and plugged in bytes (plugged includes held
 * blocks, held counts them apart), result 0 (converged) or -EAGAIN, and
 * the delay until the next pass (0: none scheduled, or at once).
 */
TRACE_EVENT(memplug_worker_pass,
	    TP_PROTO(int dev, u64 wanted, u64 plugged, u64 held, int result,
		     u32 backoff_ms),
	    TP_ARGS(dev, wanted, plugged, held, result, backoff_ms),
	    TP_STRUCT__entry(__field(int, dev)
			     __field(u64, wanted)
			     __field(u64, plugged)
			     __field(u64, held)
			     __field(int, result)
			     __field(u32, backoff_ms)),
	    TP_fast_assign(__entry->dev = dev;
			   __entry->wanted = wanted;
			   __entry->plugged = plugged;
			   __entry->held = held;
			   __entry->result = result;
			   __entry->backoff_ms = backoff_ms;),
	    TP_printk("dev=%d wanted=0x%llx plugged=0x%llx held=0x%llx result=%d backoff_ms=%u",
		      __entry->dev, __entry->wanted, __entry->plugged,
		      __entry->held, __entry->result, __entry->backoff_ms)
);

#endif /* MEMPLUG_TRACE_H */

/* out of tree: define_trace.h finds this file through -I$(src) */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE memplug_trace
#include <trace/define_trace.h>
