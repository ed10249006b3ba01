#include "link.h"

#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

int link_driver(const char *ifname, char *drv, size_t len)
{
	struct ethtool_drvinfo info = {.cmd = ETHTOOL_GDRVINFO};
	struct ifreq ifr = {0};
	int fd, r = 0;

	if (strlen(ifname) >= IFNAMSIZ)
		return -EINVAL;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
	ifr.ifr_data = (void *)&info;
	if (ioctl(fd, SIOCETHTOOL, &ifr) < 0)
		r = -errno;
	close(fd);
	if (r == 0)
		snprintf(drv, len, "%s", info.driver);
	return r;
}

int sysctl_read_int(const char *relpath, int *out)
{
	char path[256];
	FILE *f;
	int r;

	snprintf(path, sizeof(path), "/proc/sys/%s", relpath);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	r = fscanf(f, "%d", out) == 1 ? 0 : -EINVAL;
	fclose(f);
	return r;
}
