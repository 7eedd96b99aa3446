/* fmt.c: the Track B printf subset (see fmt.h). */
#include <stdint.h>

#include "fmt.h"

static void put_num(fmt_put_fn *put, void *ctx, uint64_t v, unsigned base, int neg, int width, char pad)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg)
        width--;
    if (neg && pad == '0')      /* -0042 */
        put(ctx, "-", 1);
    for (int w = n; w < width; w++)
        put(ctx, &pad, 1);
    if (neg && pad != '0')      /*   -42 */
        put(ctx, "-", 1);
    while (n) {
        n--;
        put(ctx, &tmp[n], 1);
    }
}

void fmt_vformat(fmt_put_fn *put, void *ctx, const char *fmt, va_list ap)
{
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            const char *q = p;
            while (*q && *q != '%')
                q++;
            put(ctx, p, (size_t)(q - p));
            p = q - 1;
            continue;
        }
        p++;
        char pad = ' ';
        int width = 0, prec = -1, lng = 0, alt = 0;
        for (; *p == '#' || *p == '0'; p++) {
            if (*p == '#')
                alt = 1;
            else
                pad = '0';
        }
        while (*p >= '0' && *p <= '9' && width < 64)
            width = width * 10 + (*p++ - '0');
        if (*p == '.' && p[1] == '*') {
            prec = va_arg(ap, int);
            p += 2;
        }
        while (*p == 'l' || *p == 'z') {
            lng++;
            p++;
        }
        switch (*p) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s)
                s = "(null)";
            size_t n = 0;
            while (s[n] && (prec < 0 || n < (size_t)prec))
                n++;
            put(ctx, s, n);
            break;
        }
        case 'c': {
            char c = (char)va_arg(ap, int);
            put(ctx, &c, 1);
            break;
        }
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, long long) : va_arg(ap, int);
            put_num(put, ctx, v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, 10, v < 0, width, pad);
            break;
        }
        case 'u':
        case 'x': {
            uint64_t v = lng ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned);
            if (alt && *p == 'x')
                put(ctx, "0x", 2);
            put_num(put, ctx, v, *p == 'x' ? 16 : 10, 0, width, pad);
            break;
        }
        case 'p':
            put(ctx, "0x", 2);
            put_num(put, ctx, (uint64_t)(uintptr_t)va_arg(ap, void *), 16, 0, 16, '0');
            break;
        case '%':
            put(ctx, "%", 1);
            break;
        default:            /* unknown conversion (or end of string): print it raw */
            put(ctx, "%", 1);
            if (!*p)
                return;
            put(ctx, p, 1);
        }
    }
}

struct buf {
    char *p;
    size_t cap, len;
};

static void put_buf(void *ctx, const char *s, size_t n)
{
    struct buf *b = ctx;
    for (size_t i = 0; i < n && b->len + 1 < b->cap; i++)
        b->p[b->len++] = s[i];
}

size_t fmt_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap)
{
    struct buf b = {buf, cap, 0};
    if (cap == 0)
        return 0;
    fmt_vformat(put_buf, &b, fmt, ap);
    buf[b.len] = 0;
    return b.len;
}
