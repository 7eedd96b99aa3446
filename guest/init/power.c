/* Quiesce (pmem flush) and power off. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>

#include "init.h"

/* A snapshot restore resets virtio-pmem (QEMU 7.2 migrates no state for it): the device
 * status reads 0 and a flush request would never complete. The region's memory still
 * works, and the host msyncs its backing file while the VM is stopped, so such a region
 * is skipped instead of hanging PID 1. region: "regionN"; its device is two levels up
 * (.../virtioN/ndbusM/regionN). Not a virtio region (no status file): not reset. */
static int region_device_reset(const char *region)
{
    char path[PATH_MAX + 16], real[PATH_MAX], buf[32];
    snprintf(path, sizeof path, "/sys/bus/nd/devices/%s", region);
    if (!realpath(path, real)) return 0;
    for (int up = 0; up < 2; up++) {
        char *slash = strrchr(real, '/');
        if (!slash) return 0;
        *slash = 0;
    }
    snprintf(path, sizeof path, "%s/status", real);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    return (strtoul(buf, NULL, 16) & 0x4) == 0; /* VIRTIO_CONFIG_S_DRIVER_OK gone: reset */
}

/* Flush persistent memory so a snapshot sees it: every nd region with a
 * deep_flush attribute gets "1" (unless a restore reset its device, see above);
 * without any, each /dev/pmem* is fsync'ed and its buffers flushed. Returns how
 * many regions/devices were flushed. */
uint32_t power_flush_pmem(void)
{
    uint32_t n = 0, reset = 0;
    DIR *d = opendir("/sys/bus/nd/devices");
    struct dirent *e;
    if (d) {
        while ((e = readdir(d))) {
            if (strncmp(e->d_name, "region", 6)) continue;
            if (region_device_reset(e->d_name)) {
                wlog("%s: device reset by a snapshot restore; not flushed (the host syncs its file)", e->d_name);
                reset++;
                continue;
            }
            char path[300];
            snprintf(path, sizeof path, "/sys/bus/nd/devices/%s/deep_flush", e->d_name);
            int fd = open(path, O_WRONLY | O_CLOEXEC);
            if (fd < 0) continue;
            if (write(fd, "1", 1) == 1) n++;
            else wlog("%s: %s", path, strerror(errno));
            close(fd);
        }
        closedir(d);
    }
    if (n || reset) return n; /* an fsync of a reset device's /dev/pmem would hang as well */
    if (!(d = opendir("/dev"))) return 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "pmem", 4)) continue;
        char path[300];
        snprintf(path, sizeof path, "/dev/%s", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        int ok = fsync(fd) == 0;
        ioctl(fd, BLKFLSBUF, 0);
        if (ok) n++;
        close(fd);
    }
    closedir(d);
    return n;
}

void power_off(uint32_t mode)
{
    sync();
    for (;;) {
        reboot(mode == AGX_SHUTDOWN_REBOOT ? RB_AUTOBOOT : RB_POWER_OFF);
        wlog("reboot: %s", strerror(errno));
        sleep(5);
    }
}
