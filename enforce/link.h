/* Small questions to the kernel about the node's links. */
#ifndef NETFENCE_LINK_H
#define NETFENCE_LINK_H

#include <stddef.h>

/* Fills drv with the link's driver name ("veth", "bridge", ...) via the
 * ethtool ioctl. Returns 0, or -errno (-ENODEV when the link is gone). */
int link_driver(const char *ifname, char *drv, size_t len);

/* Reads an integer sysctl below /proc/sys (path relative to it). -errno on error. */
int sysctl_read_int(const char *relpath, int *out);

#endif
