/* console.c: COM1 console (ttyS0 = console.log under QemuMachine) and printf
 * (the formatter is lib/fmt.c, which the agent uses too). */
#include <stdint.h>

#include "drivers/uart.h"
#include "drivers/uart16550.h"
#include "kernel/console.h"
#include "lib/fmt.h"

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

static void put_console(void *ctx, const char *s, size_t n)
{
    (void)ctx;
    console_write(s, n);
}

void kvprintf(const char *fmt, va_list ap)
{
    fmt_vformat(put_console, NULL, fmt, ap);
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
    va_list ap;
    va_start(ap, fmt);
    size_t n = fmt_vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    return n;
}
