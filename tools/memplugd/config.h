/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memplugd's configuration file: INI-like, one [daemon] section and one
 * [vm NAME] section per VM (docs/memplugd.md, memplugd.conf.example).
 * The parser works on a buffer (no I/O) so that it is unit-tested and
 * fuzzed; every error names the file and the line.
 */
#ifndef MEMPLUGD_CONFIG_H
#define MEMPLUGD_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "size.h"

#define CFG_MAX_VMS POL_MAX_VMS
#define CFG_NAME_MAX 64
#define CFG_MAX_LINE 4096
#define CFG_MAX_FILE (1024 * 1024)
#define CFG_PATH_MAX 108 /* sizeof(sockaddr_un.sun_path) */
#define CFG_URI_MAX 512
#define CFG_DOMAIN_MAX 256

/* Who holds a VM's virtio-mem device: QEMU's QMP, or libvirt. */
enum vm_kind { VM_QMP, VM_LIBVIRT };

struct vm_config {
	char name[CFG_NAME_MAX + 1];
	enum vm_kind kind;
	char qmp_str[CFG_PATH_MAX + 16]; /* as written, for messages */
	struct qmp_addr qmp;
	char libvirt[CFG_URI_MAX]; /* VM_LIBVIRT: the connection URI */
	char domain[CFG_DOMAIN_MAX]; /* VM_LIBVIRT: name, UUID or id */
	char report[CFG_PATH_MAX]; /* unix socket path (QEMU's chardev) */
	/*
	 * The device: its QEMU id ('device', QMP) or libvirt alias ('alias');
	 * "": the VM's only virtio-mem device
	 */
	char device[128];
	uint64_t min, max, buffer; /* max 0: the device's region size */
	unsigned int weight;
	int line; /* of its [vm NAME] line */
};

struct mpd_config {
	unsigned int interval_ms; /* tick */
	unsigned int qmp_timeout_ms; /* per QMP connect and command */
	unsigned int reconnect_max_ms; /* backoff cap */
	unsigned int report_rate; /* lines per second per VM */
	int has_budget;
	uint64_t budget; /* bytes for all devices together */
	int has_host_reserve;
	uint64_t host_reserve; /* leave this much of MemAvailable */
	char host_meminfo[256];
	struct pol_params pol;
	uint64_t default_buffer;
	unsigned int default_weight;
	struct vm_config vms[CFG_MAX_VMS];
	unsigned int nr_vms;
};

/*
 * Whether this memplugd can manage libvirt domains (built with libvirt-dev:
 * main.c sets it from dev_libvirt_supported; 1 unless set).  Without it a
 * 'libvirt =' key is a configuration error.
 */
extern int config_libvirt_support;

/* The defaults of docs/memplugd.md, no VM. */
void config_defaults(struct mpd_config *cfg);

/*
 * Parse @len bytes of @text (need not be NUL-terminated).  @fname names
 * the file in messages.  Returns 0, or -1 with "FILE:LINE: what" in @err.
 */
int config_parse(const char *text, size_t len, const char *fname, struct mpd_config *cfg, char *err,
		 size_t err_len);

/* Read @path (at most CFG_MAX_FILE bytes) and parse it. */
int config_load(const char *path, struct mpd_config *cfg, char *err, size_t err_len);

#endif
