/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * What memplugctl's commands (status, resize, watch) need from whoever
 * holds the VM: its virtio-mem devices, the VM's run state, a way to set a
 * device's requested size, and size-change events.  Two backends:
 *
 *   backend_qmp.c  QEMU's QMP socket (-s ADDR), through qmp.c
 *   libvirt.c      a libvirt domain (-c URI -D DOMAIN), through libvirt's
 *                  C API: libvirt owns the QMP monitor, so memplugctl goes
 *                  through it and never behind its back
 *                  (libvirt_none.c when built without libvirt)
 *
 * Every function that returns an int returns 0 (BACKEND_OK) or a negative
 * status; an error has been reported on stderr ("memplugctl: ...") unless
 * said otherwise.
 */
#ifndef MEMPLUGCTL_BACKEND_H
#define MEMPLUGCTL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "size.h"

enum backend_status {
	BACKEND_OK = 0,
	BACKEND_ERR = -1,
	/* a wait ended: no event in time, or the limit of set_limit ran out */
	BACKEND_TIMEOUT = -2,
};

/* What a backend may not know about a device: bits of vmem_info.known. */
#define VMEM_KNOWN_MEMADDR (1U << 0)
#define VMEM_KNOWN_MEMDEV (1U << 1)

/* One virtio-mem device. */
struct vmem_info {
	char id[128]; /* QEMU's device id, libvirt's alias; "" when it has none */
	char memdev[256];
	int64_t node;
	uint64_t memaddr;
	uint64_t block_size;
	uint64_t max_size;
	uint64_t requested_size;
	uint64_t size;
	unsigned int known; /* VMEM_KNOWN_* */
	int index; /* the backend's own: its place among the VM's virtio-mem devices */
};

/* The VM's run state. */
struct vm_state {
	int known; /* the backend could tell */
	int running;
	/* a QEMU process exists (for QMP always; libvirt: the domain is active) */
	int active;
	char status[32]; /* QEMU's RunState, or libvirt's domain state */
};

/* A device's guest driver, from its virtio status byte. */
enum driver_state {
	DRIVER_UNKNOWN, /* the backend cannot tell */
	DRIVER_READY, /* DRIVER_OK set: a driver has set the device up */
	DRIVER_NONE, /* DRIVER_OK not set: no driver (yet) */
	DRIVER_FAILED, /* FAILED or NEEDS_RESET set, or QEMU says "broken" */
};

/* One size change of a device (QEMU's MEMORY_DEVICE_SIZE_CHANGE). */
struct size_event {
	char id[128]; /* "" when the event names no device */
	uint64_t size;
	char when[40]; /* ISO 8601 UTC */
	char qom_path[256]; /* "" when not known */
};

/* set_requested() flags */
#define BACKEND_SET_CONFIG (1U << 0) /* also the persistent configuration */

struct backend;

struct backend_ops {
	/*
	 * Every virtio-mem device, in the VM's order, into a new array *@devs
	 * (free()) of *@n.  On a malformed entry, stops there with *@malformed
	 * set (reported) and what it had before it.  BACKEND_TIMEOUT: the limit
	 * of set_limit() ran out (not reported).
	 */
	int (*list_devices)(struct backend *b, struct vmem_info **devs, size_t *n, int *malformed);
	/* How many virtio-mem devices the VM has (however malformed). */
	int (*count_devices)(struct backend *b, size_t *n);
	/*
	 * The virtio-mem device @id, or the only one if @id is NULL.
	 * BACKEND_TIMEOUT as for list_devices.
	 */
	int (*find_device)(struct backend *b, const char *id, struct vmem_info *info);
	int (*vm_state)(struct backend *b, struct vm_state *vm);
	int (*driver)(struct backend *b, const char *id, enum driver_state *driver);
	/* Set the requested size of @dev; BACKEND_SET_* @flags. */
	int (*set_requested)(struct backend *b, const struct vmem_info *dev, uint64_t size,
			     unsigned int flags);
	/*
	 * The next size-change event: a queued one, or wait up to @timeout_ms
	 * (negative: forever, 0: only what is there) for one.  BACKEND_OK,
	 * BACKEND_TIMEOUT, or BACKEND_ERR with the reason in error() (not
	 * reported).
	 */
	int (*next_event)(struct backend *b, int timeout_ms, struct size_event *ev);
	/* No wait goes past @limit_ms (a now_ms() time, -1: none) from now on. */
	void (*set_limit)(struct backend *b, long long limit_ms);
	/* Events dropped so far because nobody read them in time. */
	unsigned long (*dropped_events)(struct backend *b);
	const char *(*error)(struct backend *b);
	void (*close)(struct backend *b);
};

struct backend {
	const struct backend_ops *ops;
	/* who holds the devices, in messages: "QEMU", "domain 'vm1'" */
	const char *who;
	/* who else could have changed a requested size */
	const char *other_client;
	/* what is true of a requested size once set (without / with --config) */
	const char *request_stays;
	const char *request_stays_config;
	/* the backend has a persistent configuration (--config) */
	int has_config;
};

/* memplugctl.c: one error line "memplugctl: ...", after a progress bar's line. */
void error_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* backend_qmp.c: is @id a valid QEMU device id ([A-Za-z][A-Za-z0-9._-]*)? */
int valid_device_id(const char *id);

/* backend_qmp.c: connect to QEMU at @addr; NULL (reported) on failure. */
struct backend *qmp_backend_open(const struct qmp_addr *addr, int timeout_ms);

/*
 * libvirt.c: domain @domain (name, UUID or id) at @uri (NULL: libvirt's
 * default); @timeout_ms: give up on a silent libvirtd after about that
 * long.  NULL (reported) on failure; libvirt_none.c says it was built
 * without libvirt support.
 */
struct backend *libvirt_backend_open(const char *uri, const char *domain, int timeout_ms);

/* libvirt.c: 1, libvirt_none.c: 0 */
extern const int libvirt_supported;

#endif
