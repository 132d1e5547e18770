/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * memplugctl guest: runs inside a guest and shows the state of the memplug
 * driver from sysfs (docs/sysfs-attributes.md).  No QMP involved.
 */
#ifndef MEMPLUGCTL_GUEST_H
#define MEMPLUGCTL_GUEST_H

#define DEFAULT_SYSFS_ROOT "/sys"

/*
 * Print every virtio device bound to memplug under @sysfs_root (or only
 * @device, e.g. "virtio0", if not NULL), readable or as one JSON object per
 * device and line.  Returns the exit status: 0, or 1 when there is no such
 * device or an attribute could not be read or parsed (the rest is printed).
 */
int guest_show(const char *sysfs_root, const char *device, int json);

#endif
