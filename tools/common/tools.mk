# SPDX-License-Identifier: GPL-2.0-only
# What the tools' Makefiles (memplugctl, memplugd, memplug-report) share:
# the compiler's flags, libraries from pkg-config, where the tree's top is
# and memplug's version.  Each Makefile includes it first.

CC ?= cc
CFLAGS ?= -O2 -g
WARNINGS := -Wall -Wextra -Werror
PKG_CONFIG ?= pkg-config
DESTDIR ?=
PREFIX ?= /usr/local

TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)
COMMON := $(TOP)/tools/common

JANSSON_CFLAGS := $(shell $(PKG_CONFIG) --cflags jansson 2>/dev/null)
JANSSON_LIBS := $(shell $(PKG_CONFIG) --libs jansson 2>/dev/null || echo -ljansson)
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

# libvirt domains when libvirt-dev and libxml2-dev are installed; LIBVIRT=0
# builds without them, LIBVIRT=1 insists.  A Makefile that links a libvirt
# backend relinks when LIBVIRT changes (its .libvirt-$(LIBVIRT) stamp).
LIBVIRT ?= $(shell $(PKG_CONFIG) --exists libvirt libxml-2.0 2>/dev/null && echo 1 || echo 0)
ifeq ($(LIBVIRT),1)
LIBVIRT_CFLAGS := $(shell $(PKG_CONFIG) --cflags libvirt libxml-2.0)
LIBVIRT_LIBS := $(shell $(PKG_CONFIG) --libs libvirt libxml-2.0)
endif

# The version is PACKAGE_VERSION of driver/dkms.conf, the single source of
# memplug's version (as for the module and the Debian packages): it reaches
# the programs as MEMPLUG_VERSION.
VERSION_FILE := $(TOP)/driver/dkms.conf
MEMPLUG_VERSION := $(shell sed -nE 's/^PACKAGE_VERSION="?([^"]*)"?[[:space:]]*$$/\1/p' $(VERSION_FILE))
ifeq ($(MEMPLUG_VERSION),)
ifneq ($(MAKECMDGOALS),clean)
$(error no PACKAGE_VERSION in $(VERSION_FILE))
endif
endif
VERSION_CFLAGS := -DMEMPLUG_VERSION='"$(MEMPLUG_VERSION)"'
