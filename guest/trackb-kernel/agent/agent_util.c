/* agent_util.c: the few libc-like helpers the agent needs, with names of its
 * own so they never clash with the kernel's memcpy/memset. */
#include "agent_int.h"
#include "../lib/fmt.h"

void ag_memcpy(void *d, const void *s, size_t n)
{
    uint8_t *dp = d;
    const uint8_t *sp = s;
    while (n--) *dp++ = *sp++;
}

void ag_memmove(void *d, const void *s, size_t n)
{
    uint8_t *dp = d;
    const uint8_t *sp = s;
    if (dp == sp || !n) return;
    if (dp < sp) {
        while (n--) *dp++ = *sp++;
    } else {
        dp += n, sp += n;
        while (n--) *--dp = *--sp;
    }
}

void ag_memset(void *d, int c, size_t n)
{
    uint8_t *dp = d;
    while (n--) *dp++ = (uint8_t)c;
}

int ag_memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t ag_strlen(const char *s)
{
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

int ag_streq(const char *a, const char *b)
{
    while (*a && *a == *b) a++, b++;
    return *a == *b;
}

/* ---- formatting: the image's one formatter (lib/fmt.c, freestanding; the kernel's console uses it too) ---- */
size_t ag_vfmt(char *buf, size_t cap, const char *fmt, __builtin_va_list ap)
{
    return fmt_vsnprintf(buf, cap, fmt, ap);
}

size_t ag_fmt(char *buf, size_t cap, const char *fmt, ...)
{
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    size_t n = ag_vfmt(buf, cap, fmt, ap);
    __builtin_va_end(ap);
    return n;
}

void ag_say(agent_out_fn out, void *ctx, int fd, const char *fmt, ...)
{
    char buf[256];
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    size_t n = ag_vfmt(buf, sizeof buf, fmt, ap);
    __builtin_va_end(ap);
    out(ctx, fd, buf, n);
}

void ag_log(const char *fmt, ...)
{
    char line[256];
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    size_t n = ag_fmt(line, sizeof line - 1, "agent: ");
    n += ag_vfmt(line + n, sizeof line - 1 - n, fmt, ap);
    __builtin_va_end(ap);
    line[n++] = '\n';
    env_console_write(line, n);
}

int ag_parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10) return -1;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

int ag_parse_seconds(const char *s, uint64_t *ns)
{
    uint64_t whole = 0, frac = 0, scale = 1000000000ull, mult = 1;
    int digits = 0;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
        if (whole > 1000000000ull) return -1;  /* > ~31 years: refuse rather than overflow */
        whole = whole * 10 + (uint64_t)(*s - '0');
    }
    if (*s == '.') {
        for (s++; *s >= '0' && *s <= '9'; s++, digits++) {
            if (scale >= 10) {
                scale /= 10;
                frac += (uint64_t)(*s - '0') * scale;
            }
        }
    }
    if (!digits) return -1;
    if (*s == 's') s++;
    else if (*s == 'm') mult = 60, s++;
    else if (*s == 'h') mult = 3600, s++;
    if (*s) return -1;
    *ns = (whole * 1000000000ull + frac) * mult;
    return 0;
}

const char *ag_strerror(int e)
{
    switch (e) {
    case AGX_EPERM: return "Operation not permitted";
    case AGX_ENOENT: return "No such file or directory";
    case AGX_ESRCH: return "No such process";
    case AGX_EIO: return "Input/output error";
    case AGX_E2BIG: return "Argument list too long";
    case AGX_EAGAIN: return "Resource temporarily unavailable";
    case AGX_ENOMEM: return "Cannot allocate memory";
    case AGX_ENOTDIR: return "Not a directory";
    case AGX_EISDIR: return "Is a directory";
    case AGX_EINVAL: return "Invalid argument";
    case AGX_ENOSPC: return "No space left on device";
    case AGX_EPIPE: return "Broken pipe";
    case AGX_ENOSYS: return "Function not implemented";
    case AGX_EOPNOTSUPP: return "Operation not supported";
    case AGX_ETIMEDOUT: return "Connection timed out";
    default: return "Unknown error";
    }
}
