// SPDX-License-Identifier: GPL-2.0-only
/*
 * libFuzzer target for memplugd's configuration parser
 * (tools/memplugd/config.c): any text is accepted with every value in its
 * range, or rejected with one "f.conf[:LINE]: ..." message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define CHECK(x)                 \
	do {                     \
		if (!(x))        \
			abort(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mpd_config cfg;
	char err[512];
	unsigned int i, j;

	memset(err, 'x', sizeof(err));
	if (config_parse((const char *)data, size, "f.conf", &cfg, err, sizeof(err))) {
		CHECK(memchr(err, '\0', sizeof(err)));
		CHECK(!strncmp(err, "f.conf", 6) && (err[6] == ':'));
		return 0;
	}
	CHECK(cfg.nr_vms >= 1 && cfg.nr_vms <= CFG_MAX_VMS);
	CHECK(cfg.interval_ms >= 50 && cfg.interval_ms <= 60000);
	CHECK(cfg.report_rate >= 1 && cfg.report_rate <= 1000);
	CHECK(cfg.pol.psi_idle < cfg.pol.psi_threshold && cfg.pol.psi_threshold <= 10000);
	CHECK(cfg.pol.shrink_ratio >= 1 && cfg.pol.shrink_ratio <= 100);
	CHECK(cfg.pol.shrink_max_step > 0 && cfg.pol.psi_step > 0);
	CHECK(cfg.pol.report_timeout_ms >= cfg.interval_ms);
	CHECK(cfg.host_meminfo[0] == '/');
	for (i = 0; i < cfg.nr_vms; i++) {
		const struct vm_config *vm = &cfg.vms[i];

		CHECK(vm->name[0] && strlen(vm->name) <= CFG_NAME_MAX);
		CHECK(vm->report[0] == '/');
		if (vm->kind == VM_LIBVIRT)
			CHECK(vm->libvirt[0] && vm->domain[0] && !vm->qmp_str[0]);
		else
			CHECK(vm->kind == VM_QMP && vm->qmp_str[0] && !vm->libvirt[0] &&
			      !vm->domain[0]);
		CHECK(vm->weight >= 1 && vm->weight <= 10000);
		CHECK(vm->buffer > 0);
		CHECK(!vm->max || vm->min <= vm->max);
		for (j = 0; j < i; j++) {
			CHECK(strcmp(vm->name, cfg.vms[j].name));
			CHECK(strcmp(vm->report, cfg.vms[j].report));
			CHECK(vm->kind != VM_LIBVIRT || cfg.vms[j].kind != VM_LIBVIRT ||
			      strcmp(vm->libvirt, cfg.vms[j].libvirt) ||
			      strcmp(vm->domain, cfg.vms[j].domain));
		}
	}
	return 0;
}
