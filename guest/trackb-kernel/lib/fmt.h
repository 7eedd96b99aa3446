/* fmt.h: the one printf-style formatter of the Track B image, used by the
 * kernel's console (kernel/console.c) and by the agent (agent/agent_util.c).
 * Freestanding (only compiler headers) and depending on neither, so the agent's
 * host harness links it too.
 *
 * Conversions: %s %.*s %c %d %i %u %x %p %%; flags '#' (0x before %x) and '0';
 * a width; modifiers l, ll, z. Anything else is printed as is. */
#ifndef TRACKB_FMT_H
#define TRACKB_FMT_H

#include <stdarg.h>
#include <stddef.h>

/* Where formatted text goes, a run of n bytes at a time. */
typedef void fmt_put_fn(void *ctx, const char *s, size_t n);

void fmt_vformat(fmt_put_fn *put, void *ctx, const char *fmt, va_list ap);

/* Into buf: always NUL-terminated (when cap > 0); returns the length written (cut at cap - 1). */
size_t fmt_vsnprintf(char *buf, size_t cap, const char *fmt, va_list ap);

#endif
