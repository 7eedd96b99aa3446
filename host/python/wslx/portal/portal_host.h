/* Host fast path of wslx.portal (portal_host.c): the loops a Python caller cannot
 * run fast enough. wslx.portal.native reads this file, portal.h and the generated
 * portal_layout.h for its cffi declarations: what is declared here is what Python
 * calls. Timeouts are in ns; a passed deadline returns PERR(PORTAL_HOST_TIMEOUT). */
#ifndef WSLX_PORTAL_HOST_H
#define WSLX_PORTAL_HOST_H

#include "portal.h"

/* sizeof the core's private structs, so the host checks its declarations against the build. */
size_t portal_end_size(void);
size_t portal_arena_size(void);
size_t portal_guest_size(void);
/* Spin until ring has at least one message (then take up to max) or spin_ns pass (0). */
int portal_recv_spin(struct portal_end *e, unsigned ring, struct portal_msg *out, unsigned max, uint64_t spin_ns);
/* n sequential NOP round trips (one in flight): n or a negative error. */
int64_t portal_pingpong(struct portal_end *e, uint64_t n, uint64_t timeout_ns);
/* n NOPs streamed through SUBMIT in batches of up to batch, in-order completions: n or a negative error. */
int64_t portal_stream(struct portal_end *e, uint64_t n, unsigned batch, uint64_t timeout_ns);
/* The RAW_RING baseline: n messages through the bare ring pair in span (docs/portal.md), unvalidated:
 * n or a negative error. */
int64_t portal_raw_stream(struct portal_end *e, const struct portal_span *span, uint64_t n, unsigned batch,
                          uint64_t timeout_ns);
/* Spin until the u64 at window offset off equals want: 0 or a negative error. */
int portal_spin_u64(struct portal_end *e, uint64_t off, uint64_t want, uint64_t timeout_ns);

#endif
