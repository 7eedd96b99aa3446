/* agent_util.c: the few libc-like helpers the agent needs, with names of its
 * own so they never clash with the kernel's memcpy/memset. */
#include "agent_int.h"

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

/* ---- formatting ---- */
struct fmtbuf {
    char *p;
    size_t cap, len;
};

static void put_c(struct fmtbuf *b, char c)
{
    if (b->len + 1 < b->cap) b->p[b->len] = c;
    b->len++;
}

static void put_num(struct fmtbuf *b, uint64_t v, unsigned base, int neg, int width, char pad)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg) put_c(b, '-'), width--;
    for (int w = n; w < width; w++) put_c(b, pad);
    while (n) put_c(b, tmp[--n]);
}

size_t ag_vfmt(char *buf, size_t cap, const char *fmt, __builtin_va_list ap)
{
    struct fmtbuf b = {buf, cap, 0};
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            put_c(&b, *f);
            continue;
        }
        f++;
        int prec = -1, lng = 0, width = 0, alt = 0;
        char pad = ' ';
        /* flags and width: '#' (0x prefix), '0' (zero padding), a decimal width */
        for (; *f == '#' || *f == '0'; f++) {
            if (*f == '#') alt = 1;
            else pad = '0';
        }
        while (*f >= '0' && *f <= '9' && width < 64) width = width * 10 + (*f++ - '0');
        if (*f == '.' && f[1] == '*') {
            prec = __builtin_va_arg(ap, int);
            f += 2;
        }
        while (*f == 'l') lng++, f++;
        switch (*f) {
        case 's': {
            const char *s = __builtin_va_arg(ap, const char *);
            if (!s) s = "(null)";
            for (int i = 0; s[i] && (prec < 0 || i < prec); i++) put_c(&b, s[i]);
            break;
        }
        case 'c': put_c(&b, (char)__builtin_va_arg(ap, int)); break;
        case 'd': {
            int64_t v = lng ? __builtin_va_arg(ap, long long) : __builtin_va_arg(ap, int);
            put_num(&b, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, 10, v < 0, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            uint64_t v = lng ? __builtin_va_arg(ap, unsigned long long) : __builtin_va_arg(ap, unsigned);
            if (alt && *f == 'x') put_c(&b, '0'), put_c(&b, 'x');
            put_num(&b, v, *f == 'x' ? 16 : 10, 0, width, pad);
            break;
        }
        case '%': put_c(&b, '%'); break;
        case 0: f--; break;
        default: put_c(&b, '%'), put_c(&b, *f); break;
        }
    }
    if (cap) buf[b.len < cap ? b.len : cap - 1] = 0;
    return b.len < cap ? b.len : (cap ? cap - 1 : 0);
}

size_t ag_fmt(char *buf, size_t cap, const char *fmt, ...)
{
    __builtin_va_list ap;
    __builtin_va_start(ap, fmt);
    size_t n = ag_vfmt(buf, cap, fmt, ap);
    __builtin_va_end(ap);
    return n;
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
