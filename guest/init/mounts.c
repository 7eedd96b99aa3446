/* Filesystems: the early mounts of PID 1 and the MOUNT / UNMOUNT requests. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "init.h"

struct early_mount {
    const char *source, *target, *fstype, *options;
    unsigned long flags;
    int optional;
};

static const struct early_mount early[] = {
    {"proc", "/proc", "proc", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC, 0},
    {"sysfs", "/sys", "sysfs", NULL, MS_NOSUID | MS_NODEV | MS_NOEXEC, 0},
    {"devtmpfs", "/dev", "devtmpfs", "mode=0755", MS_NOSUID, 0},
    {"devpts", "/dev/pts", "devpts", "gid=5,mode=620,ptmxmode=666", MS_NOSUID | MS_NOEXEC, 1},
    {"tmpfs", "/dev/shm", "tmpfs", "mode=1777", MS_NOSUID | MS_NODEV, 1},
    {"tmpfs", "/run", "tmpfs", "mode=0755", MS_NOSUID | MS_NODEV, 0},
    {"tmpfs", "/tmp", "tmpfs", "mode=1777", MS_NOSUID | MS_NODEV, 0},
};

void mounts_early(void)
{
    for (size_t i = 0; i < sizeof early / sizeof early[0]; i++) {
        const struct early_mount *m = &early[i];
        if (mkdir_p(m->target, 0755) < 0 && !m->optional) wlog("mkdir %s: %s", m->target, strerror(errno));
        if (mount(m->source, m->target, m->fstype, m->flags, m->options) < 0 && errno != EBUSY && !m->optional)
            wlog("mount %s on %s: %s", m->fstype, m->target, strerror(errno));
    }
}

void mounts_handle_mount(uint32_t rid, const struct agx_mount *m)
{
    static char fstype[AGX_MOUNT_FSTYPE_MAX_LEN + 1], source[AGX_MOUNT_SOURCE_MAX_LEN + 1],
        target[AGX_MOUNT_TARGET_MAX_LEN + 1], options[AGX_MOUNT_OPTIONS_MAX_LEN + 1];
    str_copy(fstype, sizeof fstype, m->fstype);
    str_copy(source, sizeof source, m->source);
    str_copy(target, sizeof target, m->target);
    str_copy(options, sizeof options, m->options);
    if (!target[0] || target[0] != '/') {
        send_error(rid, AGX_MSG_MOUNT, AGX_EINVAL, "mount target must be an absolute path, not '%s'", target);
        return;
    }
    if (m->flags & ~(uint32_t)AGX_MOUNT_RDONLY) {
        send_error(rid, AGX_MSG_MOUNT, AGX_EINVAL, "unknown MOUNT flag bits 0x%x", (unsigned)m->flags);
        return;
    }
    if (mkdir_p(target, 0755) < 0) {
        int e = errno;
        send_error(rid, AGX_MSG_MOUNT, e, "mkdir %s: %s", target, strerror(e));
        return;
    }
    unsigned long fl = (m->flags & AGX_MOUNT_RDONLY) ? MS_RDONLY : 0;
    if (mount(source[0] ? source : "none", target, fstype[0] ? fstype : NULL, fl, options[0] ? options : NULL) < 0) {
        int e = errno;
        send_error(rid, AGX_MSG_MOUNT, e, "mount %s on %s (%s): %s", source, target, fstype, strerror(e));
        return;
    }
    send_ok(rid);
}

void mounts_handle_unmount(uint32_t rid, const struct agx_unmount *m)
{
    static char target[AGX_UNMOUNT_TARGET_MAX_LEN + 1];
    str_copy(target, sizeof target, m->target);
    if (m->flags & ~(uint32_t)AGX_UNMOUNT_DETACH) {
        send_error(rid, AGX_MSG_UNMOUNT, AGX_EINVAL, "unknown UNMOUNT flag bits 0x%x", (unsigned)m->flags);
        return;
    }
    if (umount2(target, (m->flags & AGX_UNMOUNT_DETACH) ? MNT_DETACH : 0) < 0) {
        int e = errno;
        send_error(rid, AGX_MSG_UNMOUNT, e, "umount %s: %s", target, strerror(e));
        return;
    }
    send_ok(rid);
}
