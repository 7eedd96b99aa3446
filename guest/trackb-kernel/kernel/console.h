/* console.h: COM1 console and a small printf. */
#ifndef TRACKB_CONSOLE_H
#define TRACKB_CONSOLE_H

#include <stdarg.h>
#include <stddef.h>

void console_init(void);
void console_write(const char *s, size_t len);
/* printf subset (lib/fmt.h): %s %.*s %c %d %i %u %x %p, flags # and 0, a width, modifiers l/ll/z. */
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void kvprintf(const char *fmt, va_list ap);
/* Detail lines (memory map, ACPI tables, PCI functions): printed unless the
 * command line says "quiet", because every console byte is a VM exit. */
void kdetail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void console_set_quiet(int quiet);
/* Format into buf (always NUL terminated); returns the length written. */
size_t ksnprintf(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
