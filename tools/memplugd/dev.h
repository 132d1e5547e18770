/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A VM's device backend: who holds its virtio-mem device, tells its sizes
 * (block, region, requested, plugged) and sets its requested size.
 *
 *   dev_qmp.c      QEMU's QMP socket, through memplugctl's client, in the
 *                  loop's thread: every call is bounded by qmp-timeout
 *   dev_libvirt.c  a libvirt domain, through libvirt's C API in a worker
 *                  thread of the VM's own: the loop never calls libvirt
 *                  (dev_libvirt_none.c when built without libvirt)
 *
 * The VM (vm.c) asks (connect, refresh, set_requested) and is told the
 * outcome through its struct dev_sink, always in the loop's thread: QMP
 * before its call returns, libvirt when the loop polls the backend's fd.
 */
#ifndef MEMPLUGD_DEV_H
#define MEMPLUGD_DEV_H

#include <stdint.h>

#include "config.h"

/* The device as its holder sees it now. */
struct dev_sizes {
	char id[128]; /* QEMU's device id, or libvirt's alias */
	uint64_t block_size, region_size, requested, size;
};

enum dev_set_result {
	DEV_SET_OK,
	DEV_SET_REFUSED, /* the holder said no (the error says why); still connected */
	DEV_SET_LOST, /* the connection went (down() said so) */
};

struct dev_sink {
	void *vm;
	/*
	 * Connected (again) with the device found: carry on from its sizes.
	 * @where: "" or who holds it ("domain 'web1' at qemu:///system, ").
	 */
	void (*up)(void *vm, const char *where, const struct dev_sizes *d, long long now);
	/* Fresh sizes of the connected device. */
	void (*sizes)(void *vm, const struct dev_sizes *d, long long now);
	/*
	 * Not connected: @what ("no QMP", "lost libvirt", ...) and @err for the
	 * log; @was_up if it was connected.
	 */
	void (*down)(void *vm, const char *what, const char *err, int was_up, long long now);
	/* The outcome of set_requested(); @err says why when refused. */
	void (*set_done)(void *vm, enum dev_set_result r, const char *err, long long now);
};

struct dev;

struct dev_ops {
	const char *kind; /* "qmp", "libvirt" (the status's backend kind) */
	const char *label; /* "QMP", "libvirt" (log lines) */
	/* who else may change the requested size, for the log */
	const char *other_client;
	/* Connect, if not connected and not connecting. */
	void (*connect)(struct dev *d, long long now);
	/* Read the sizes again (connected only). */
	void (*refresh)(struct dev *d, long long now);
	/* Set the requested size (connected only, one at a time: set_done() ends it). */
	void (*set_requested)(struct dev *d, uint64_t size, long long now);
	/* Once a tick: notice a holder that does not answer. */
	void (*maintain)(struct dev *d, long long now);
	/* The fd to poll for input (-1: none now), and what to do when it is ready. */
	int (*fd)(struct dev *d, long long now);
	void (*on_fd)(struct dev *d, short revents, long long now, long long next_tick);
	/* "connected", "connecting", "not answering", "not connected" */
	const char *(*state)(struct dev *d, long long now);
	void (*close)(struct dev *d);
};

struct dev {
	const struct dev_ops *ops;
	struct dev_sink sink;
	const struct vm_config *cfg;
	const struct mpd_config *dcfg;
	int connected;
	int set_pending; /* a set_requested() waits for its set_done() */
	int refresh_due; /* an event says the sizes changed: refresh soon */
	int decide_due; /* fresh sizes after an event: decide soon */
};

/* dev_qmp.c; NULL if out of memory. */
struct dev *dev_qmp_open(const struct mpd_config *dcfg, const struct vm_config *cfg,
			 const struct dev_sink *sink);

/*
 * dev_libvirt.c: the libvirt domain of @cfg, its worker thread started
 * (it connects when asked); NULL with @err set on failure.
 * dev_libvirt_none.c: NULL, "built without libvirt support".
 */
struct dev *dev_libvirt_open(const struct mpd_config *dcfg, const struct vm_config *cfg,
			     const struct dev_sink *sink, char *err, size_t err_len);

/*
 * Before the first dev_libvirt_open(), in the main thread: libvirt and
 * its event loop thread (keepalive, events).  0, or -1 with @err set.
 */
int dev_libvirt_setup(char *err, size_t err_len);

/*
 * After every libvirt device is closed: stop the event loop thread.
 * Returns how many worker threads did not stop in time (blocked in a call
 * to a libvirtd that does not answer): the process must then _exit().
 */
int dev_libvirt_teardown(void);

/* 1 when built with libvirt. */
extern const int dev_libvirt_supported;

#endif
