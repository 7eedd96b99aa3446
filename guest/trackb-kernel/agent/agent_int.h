/* agent_int.h: helpers shared by the Track B agent's files (not an interface
 * to the kernel; that is agent_env.h). The files' own interfaces are proc.h
 * (agent.c -> proc.c) and builtins.h (proc.c -> builtins.c). Freestanding: no libc. */
#ifndef WSLX_TRACKB_AGENT_INT_H
#define WSLX_TRACKB_AGENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "agentx_wire.h"
#include "agent_env.h"
#include "../../agentx/agentx_rx.h"

#define AGENT_NAME "wslx-trackb-agent 0.1"
#define WRITE_TIMEOUT_MS 5000u   /* how long a reply waits for room in the frame queue (then it is dropped, logged) */

/* ---- agent_util.c: tiny string/memory helpers (unique names: the kernel may define memcpy) ---- */
void ag_memcpy(void *d, const void *s, size_t n);
void ag_memmove(void *d, const void *s, size_t n);
void ag_memset(void *d, int c, size_t n);
int ag_memcmp(const void *a, const void *b, size_t n);
size_t ag_strlen(const char *s);
int ag_streq(const char *a, const char *b);
/* snprintf subset (../lib/fmt.h): %s %.*s %c %d %i %u %x %p %%, flags '#' and '0', a width,
 * modifiers l/ll/z; always NUL-terminates. */
size_t ag_fmt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
size_t ag_vfmt(char *buf, size_t cap, const char *fmt, __builtin_va_list ap);
/* Decimal u64; 0 ok, -1 on junk or overflow. */
int ag_parse_u64(const char *s, uint64_t *out);
/* "N", "N.F" seconds (optional s/m/h suffix) to nanoseconds; -1 on junk. */
int ag_parse_seconds(const char *s, uint64_t *ns);
void ag_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* console line */
const char *ag_strerror(int e);

/* ---- portal hook: helper P's freestanding Portal service registers here ---- */
/* The `portal` built-in runs these as a cooperative program: start once, then step until it
 * is done; stop when SIGNAL (or SHUTDOWN) ends it. out() writes to its stdout (fd 1) or stderr
 * (fd 2). Without a registered service `portal` says so and exits 1. */
typedef void (*agent_out_fn)(void *out_ctx, int fd, const void *data, size_t len);
struct agent_portal_ops {
    /* 0, or a positive exit status to end at once; state: the service's own per-run pointer */
    int (*start)(void **state, int argc, char *const *argv, void *pmem, uint64_t pmem_size,
                 agent_out_fn out, void *out_ctx);
    /* bounded work; 1 while running, 0 when done with *status set */
    int (*step)(void *state, int *status, agent_out_fn out, void *out_ctx);
    void (*stop)(void *state, int signo);
};
void agent_register_portal(const struct agent_portal_ops *ops);   /* builtins.c keeps it */
/* printf to a service's output (agent_util.c): one line of up to 255 bytes */
void ag_say(agent_out_fn out, void *ctx, int fd, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void agent_register_gemini(const struct agent_portal_ops *ops);   /* the `gemini` built-in (gemini_svc.c) */

#endif
