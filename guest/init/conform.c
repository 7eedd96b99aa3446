/* The conformance program (AgentX capability PROGRAMS) as an applet of
 * wslx-init: EXEC of argv[0] "wslx-conform" execs /proc/self/exe (proc.c), and
 * main() lands here. Steps are checked by the shared parser
 * (guest/agentx/agentx_program.c) and run with plain system calls. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "init.h"
#include "../agentx/agentx_program.h"

#define CHUNK 65536

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n, len -= (size_t)n;
    }
    return 0;
}

static int write_line(const char *s)
{
    return write_all(1, s, strlen(s)) || write_all(1, "\n", 1) ? -1 : 0;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static int copy_fd(int from)
{
    static char buf[CHUNK];
    for (;;) {
        ssize_t n = read(from, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        if (n == 0) return 0;
        if (write_all(1, buf, (size_t)n)) return -1;
    }
}

/* /proc/self/mounts escapes blanks and backslashes in paths as \ooo */
static void unescape(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
            *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *o++ = *s;
        }
    }
    *o = 0;
}

static int mounted(const char *path, int *yes)
{
    char want[PATH_MAX], line[2 * PATH_MAX];
    if (!realpath(path, want)) snprintf(want, sizeof want, "%s", path);   /* gone: compare as given */
    FILE *f = fopen("/proc/self/mounts", "re");
    if (!f) return -1;
    *yes = 0;
    while (!*yes && fgets(line, sizeof line, f)) {
        char *dir = strchr(line, ' ');
        if (!dir) continue;
        char *end = strchr(++dir, ' ');
        if (end) *end = 0;
        unescape(dir);
        *yes = !strcmp(dir, want);
    }
    fclose(f);
    return 0;
}

static int step_run(const struct agx_step *s)
{
    switch (s->kind) {
    case AGX_STEP_OUT: return write_all(1, s->arg[0], strlen(s->arg[0]));
    case AGX_STEP_ERR: return write_all(2, s->arg[0], strlen(s->arg[0]));
    case AGX_STEP_SLEEP: sleep_ms(s->num); return 0;
    case AGX_STEP_GETENV: {
        const char *v = getenv(s->arg[0]);
        return write_line(v ? v : "");
    }
    case AGX_STEP_CWD: {
        char cwd[PATH_MAX];
        return getcwd(cwd, sizeof cwd) ? write_line(cwd) : -1;
    }
    case AGX_STEP_HOSTNAME: {
        struct utsname u;
        return uname(&u) < 0 ? -1 : write_line(u.nodename);
    }
    case AGX_STEP_CAT: return copy_fd(0);
    case AGX_STEP_CLOSE_STDIN: close(0); return 0;
    case AGX_STEP_ZEROS: {
        static const char zeros[CHUNK];
        for (uint64_t left = s->num; left;) {
            size_t n = left < CHUNK ? (size_t)left : CHUNK;
            if (write_all(1, zeros, n)) return -1;
            left -= n;
        }
        return 0;
    }
    case AGX_STEP_BG: {
        pid_t pid = fork();
        if (pid < 0) return -1;
        if (pid == 0) {   /* the child holds stdout and stderr while it sleeps */
            sleep_ms(s->num);
            _exit(write_all(1, s->arg[1], strlen(s->arg[1])) ? 1 : 0);
        }
        return 0;
    }
    case AGX_STEP_WRITE_FILE: {
        int fd = open(s->arg[0], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return -1;
        int rc = write_all(fd, s->arg[1], strlen(s->arg[1]));
        int e = errno;
        if (close(fd) < 0 && !rc) return -1;
        errno = e;
        return rc;
    }
    case AGX_STEP_READ_FILE: {
        int fd = open(s->arg[0], O_RDONLY | O_CLOEXEC);
        if (fd < 0) return -1;
        int rc = copy_fd(fd);
        int e = errno;
        close(fd);
        errno = e;
        return rc;
    }
    case AGX_STEP_MOUNTED: {
        int yes;
        return mounted(s->arg[0], &yes) ? -1 : write_line(yes ? "yes" : "no");
    }
    }
    errno = ENOSYS;
    return -1;
}

int conform_main(int argc, char **argv)
{
    static struct agx_program prog;
    char err[256];
    if (agx_program_parse(argc, argv, &prog, err, sizeof err)) {
        dprintf(2, "%s: %s\n", AGX_PROGRAM_NAME, err);
        return AGX_USAGE_STATUS;
    }
    for (size_t i = 0; i < prog.n; i++) {
        const struct agx_step *s = &prog.step[i];
        if (s->kind == AGX_STEP_EXIT) return (int)s->num;
        if (step_run(s)) {
            dprintf(2, "%s: %s: %s\n", AGX_PROGRAM_NAME, agx_program_step_word(s->kind), strerror(errno));
            return AGX_FAILED_STATUS;
        }
    }
    return 0;
}
