/* Small helpers: console logging, clocks, bounded string copies. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "init.h"

/* One write per line so concurrent console output does not interleave mid-line.
 * fd 2 is /dev/console in PID 1 mode and the caller's stderr in test mode. */
void wlog(const char *fmt, ...)
{
    char line[512];
    int n = snprintf(line, sizeof line, "wslx-init: ");
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0) m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(2, line, len);
    (void)w;
}

uint64_t now_ns(int clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -1;
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int str_copy(char *dst, size_t cap, struct agx_str s)
{
    if ((size_t)s.len + 1 > cap) return -1;
    memcpy(dst, s.ptr, s.len);
    dst[s.len] = 0;
    return 0;
}

void utf8_truncate(char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) n = max;
    /* a cut (here or by snprintf) may split a multi-byte sequence: back off up to 3 bytes */
    for (int k = 0; k < 3 && n > 0 && !agx_utf8_valid((const uint8_t *)s, n); k++) n--;
    s[n] = 0;
}

int mkdir_p(const char *path, mode_t mode)
{
    char buf[AGX_PATH_MAX_LEN + 1];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) { errno = n ? ENAMETOOLONG : ENOENT; return -1; }
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
            buf[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) < 0) return -1;
    if (!S_ISDIR(st.st_mode)) { errno = ENOTDIR; return -1; }
    return 0;
}
