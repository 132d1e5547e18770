# SPDX-License-Identifier: GPL-2.0
# memplug: virtio-mem guest driver, host tool, test bed and benchmark.
#
#   make demo    build everything, boot a VM, show a Big Block Mode resize
#   make check   every test: unit, host tool, static checks, VM scenarios
#
# Both install their own dependencies (scripts/deps.sh), idempotently.

SHELL := /bin/bash

.PHONY: all deps build driver tools demo check check-unit check-tools check-report check-vm check-libvirt \
	check-ktap check-testbed check-static check-setup check-dkms check-install check-long check-cpus \
	check-random check-checkers check-debug check-memplugd fuzz bench bench-publish bench-autosize \
	bench-autosize-publish \
	dkms-install dkms-uninstall deb clean

all: build

deps:
	@scripts/deps.sh

# memplugctl, the guest agent memplug-report and the host daemon memplugd
tools:
	$(MAKE) -C tools/memplugctl
	$(MAKE) -C tools/memplug-report
	$(MAKE) -C tools/memplugd

# memplug.ko for every test kernel, the guest agent and the initramfs images
build: deps tools
	@scripts/build.sh

driver: deps
	@scripts/build.sh

demo: build
	@scripts/demo.sh

# Everything; ends with one "N passed, N failed, N skipped" line.
check: build
	@scripts/check.sh

# Single suites, for development.
check-ktap:
	@scripts/check.sh ktap
check-testbed:
	@scripts/check.sh testbed
check-unit:
	@scripts/check.sh unit
check-tools: tools
	@scripts/check.sh tools
check-report:
	@scripts/check.sh report
check-static: deps
	@scripts/check.sh static
check-vm: build
	@scripts/check.sh vm
# memplugd against fake QMP peers and fake guests, no VM (under a minute)
check-memplugd: tools
	@scripts/check.sh memplugd

# virtio-mem through Debian's libvirt, with a libvirtd of its own: virsh
# update-memory-device, <current>, the event, --config, memplugctl -c -D
# (tests/vm/libvirt.py, docs/testbed.md)
check-libvirt: build
	@scripts/check.sh libvirt

# make check-vm plus the long scenarios (soak, BBM storm) and the reference
# driver's reliability runs: about 30 minutes more
check-long: build
	@LONG=1 scripts/check.sh vm

# the whole VM suite on the other CPU models of docs/testbed.md ("max,-la57",
# "qemu64"): about 20 minutes each; CPU_MODELS="..." picks others
check-cpus: build
	@scripts/check.sh cpus

# the whole VM suite with the kernel's cheap checkers on in every guest
# (KFENCE, slub_debug=FZPU, init_on_free, page_poison): about 30 minutes
check-checkers: build
	@scripts/check.sh checkers

# memplug's scenarios on a debug kernel (lockdep, KASAN, DEBUG_VM,
# DEBUG_LIST, KFENCE, page_owner) built from linux-source-6.12 once per
# machine, outside the clone (scripts/debug-kernel.sh: about 15 minutes)
check-debug: build
	@scripts/check.sh debug

# randomized differential runs against virtio_mem (tests/vm/randomized.py):
# RANDOM_COUNT sequences per kernel (default 200, hours), from RANDOM_FIRST
check-random: build
	@RANDOM_COUNT=$${RANDOM_COUNT:-200} FILTER='random_sequence' DRIVER=memplug scripts/check.sh vm

# long libFuzzer run of every fuzz target (until stopped)
fuzz:
	$(MAKE) -C tests/unit fuzz & unit=$$!; $(MAKE) -C tests/memplugd fuzz & mpd=$$!; \
	rc=0; wait $$unit || rc=1; wait $$mpd || rc=1; exit $$rc

check-dkms: deps
	@scripts/check.sh dkms

# scripts/deps.sh on an empty cache installs no kernel and leaves /boot as
# it was (tests/setup/run.sh; runs deps.sh itself)
check-setup:
	@scripts/check.sh setup

# README's DKMS install path end to end in a booted Debian 12 VM (as root;
# not part of make check: about 11 minutes warm, 15 cold under TCG,
# docs/install.md)
check-install: deps
	@scripts/check.sh install

# DKMS (docs/install.md); make deb: the Debian packages, build/memplug-dkms_<ver>_all.deb
# (the driver) and build/memplug-report_<ver>_amd64.deb (the guest agent)
dkms-install:
	@scripts/dkms.sh install $(if $(KVER),-k $(KVER))
dkms-uninstall:
	@scripts/dkms.sh uninstall
deb:
	@scripts/deb.sh all

# memplug vs the kernel's virtio_mem, same kernels, same run (not a test).
# Writes only into bench/out/ (not tracked): raw.csv, summary.csv,
# summary.md, one .dat series and PNG plot per scenario and kernel.
bench: build
	@python3 bench/bench.py

# the last make bench into the tracked bench/results/: summary.md and the
# plot README.md shows (docs/performance.md, "Refreshing the numbers")
bench-publish:
	@python3 bench/bench.py --publish

# memplugd's automatic sizing against static sizing at the peak: one
# workload trace, static / memplugd + memplug / memplugd + virtio_mem, per
# kernel (bench/autosize.py, docs/memplugd.md "Real guests"; not a test).
# Writes only into bench/out/autosize/: raw.csv, summary.md, a .dat series
# and a PNG plot per kernel and configuration. About 25 minutes.
bench-autosize: build
	@python3 bench/autosize.py

# the tracked copy of the last bench-autosize: bench/results/autosize.md and
# its plots (README.md shows one)
bench-autosize-publish:
	@python3 bench/autosize.py --publish

clean:
	rm -rf build
	$(MAKE) -C tools/memplugctl clean
	$(MAKE) -C tools/memplug-report clean
	$(MAKE) -C tools/memplugd clean
	$(MAKE) -C tests/memplugd clean
	$(MAKE) -C tests/vm/agent clean
	-$(MAKE) -C driver clean
