/* Quiesce (pmem flush) and power off. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <unistd.h>

#include "init.h"

/* Flush persistent memory so a snapshot sees it: every nd region with a
 * deep_flush attribute gets "1"; without any, each /dev/pmem* is fsync'ed and
 * its buffers flushed. Returns how many regions/devices were flushed. */
uint32_t power_flush_pmem(void)
{
    uint32_t n = 0;
    DIR *d = opendir("/sys/bus/nd/devices");
    struct dirent *e;
    if (d) {
        while ((e = readdir(d))) {
            if (strncmp(e->d_name, "region", 6)) continue;
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
    if (n) return n;
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
