/* Kernel modules: /etc/wslx/modules.load lists absolute paths of uncompressed
 * .ko files, dependencies first (written by the initramfs builder). Each is
 * loaded with finit_module(2); EEXIST (built in or already loaded) is fine,
 * other failures are logged and the boot goes on. A missing or empty list
 * means a non-modular kernel. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "init.h"

static void load_one(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        wlog("module %s: %s", path, strerror(errno));
        return;
    }
    if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
        wlog("module %s: %s", path, strerror(errno));
    close(fd);
}

void modules_load(const char *list_path)
{
    FILE *f = fopen(list_path, "re");
    if (!f) return;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char *s = line, *e;
        while (*s == ' ' || *s == '\t') s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) *--e = 0;
        if (!*s || *s == '#') continue;
        load_one(s);
    }
    fclose(f);
}
