/* console.c: COM1 console (ttyS0 = console.log under QemuMachine) and printf. */
#include <stdint.h>

#include "drivers/uart.h"
#include "drivers/uart16550.h"
#include "kernel/console.h"

static int console_ok, console_quiet;

void console_init(void)
{
    console_ok = uart_init(COM1_BASE) == 0;
}

void console_write(const char *s, size_t len)
{
    if (!console_ok)
        return;
    for (size_t i = 0; i < len; i++) {
        /* Bounded wait: a stuck transmitter must not hang the kernel. */
        for (int spin = 0; spin < 100000 && !uart_tx_ready(COM1_BASE); spin++)
            ;
        if (s[i] == '\n')
            uart_tx(COM1_BASE, '\r');
        uart_tx(COM1_BASE, (uint8_t)s[i]);
    }
}

/* Output sink: the console, or a bounded buffer for ksnprintf. */
struct sink {
    char *buf;
    size_t cap, len;
};

static void put(struct sink *k, const char *s, size_t n)
{
    if (!k->buf) {
        console_write(s, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (k->len + 1 < k->cap)
            k->buf[k->len++] = s[i];
    }
}

static void put_num(struct sink *k, uint64_t v, unsigned base, int neg, int width, char pad)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg)
        tmp[n++] = '-';
    while (n < width && n < (int)sizeof tmp)
        tmp[n++] = pad;
    while (n)
        put(k, &tmp[--n], 1);
}

static void vformat(struct sink *k, const char *fmt, va_list ap)
{
    for (const char *p = fmt; *p; p++) {
        if (*p != '%') {
            const char *q = p;
            while (*q && *q != '%')
                q++;
            put(k, p, (size_t)(q - p));
            p = q - 1;
            continue;
        }
        p++;
        char pad = ' ';
        int width = 0, lng = 0;
        if (*p == '0') {
            pad = '0';
            p++;
        }
        while (*p >= '0' && *p <= '9')
            width = width * 10 + (*p++ - '0');
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
            while (s[n])
                n++;
            put(k, s, n);
            break;
        }
        case 'c': {
            char c = (char)va_arg(ap, int);
            put(k, &c, 1);
            break;
        }
        case 'd': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            put_num(k, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, v < 0, width, pad);
            break;
        }
        case 'u':
            put_num(k, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, 0, width, pad);
            break;
        case 'x':
            put_num(k, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, 0, width, pad);
            break;
        case 'p':
            put(k, "0x", 2);
            put_num(k, (uint64_t)(uintptr_t)va_arg(ap, void *), 16, 0, 16, '0');
            break;
        case '%':
            put(k, "%", 1);
            break;
        default:            /* unknown conversion (or end of string): print it raw */
            put(k, "%", 1);
            if (!*p)
                return;
            put(k, p, 1);
        }
    }
}

void kvprintf(const char *fmt, va_list ap)
{
    struct sink k = {0};
    vformat(&k, fmt, ap);
}

void kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
}

void console_set_quiet(int quiet) { console_quiet = quiet; }

void kdetail(const char *fmt, ...)
{
    va_list ap;
    if (console_quiet)
        return;
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
}

size_t ksnprintf(char *buf, size_t cap, const char *fmt, ...)
{
    struct sink k = {buf, cap, 0};
    va_list ap;
    if (cap == 0)
        return 0;
    va_start(ap, fmt);
    vformat(&k, fmt, ap);
    va_end(ap);
    buf[k.len] = 0;
    return k.len;
}
