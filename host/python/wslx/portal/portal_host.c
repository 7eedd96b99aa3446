/* Host fast path of wslx.portal: the guest's Portal core (guest/portal/ sources,
 * compiled unchanged) plus the loops a Python caller cannot run fast enough:
 * bounded spin-waits and the message-rate / round-trip benchmark loops.
 * Built by SCons into build/portal/libportal_host.so, loaded with cffi (ABI mode).
 * Every loop is bounded by a timeout in ns and re-checks the header. */
#define _GNU_SOURCE
#include <time.h>

#include "portal_host.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

size_t portal_end_size(void) { return sizeof(struct portal_end); }
size_t portal_arena_size(void) { return sizeof(struct portal_arena); }
size_t portal_guest_size(void) { return sizeof(struct portal_guest); }

/* Spin until ring has at least one message (then take up to max) or spin_ns pass (0). */
int portal_recv_spin(struct portal_end *e, unsigned ring, struct portal_msg *out, unsigned max, uint64_t spin_ns)
{
    uint64_t deadline = now_ns() + spin_ns;
    unsigned k = 0;
    for (;;) {
        int n = portal_recv(e, ring, out, max);
        if (n) return n;
        if ((++k & 255) == 0) {
            int rc = portal_check(e);
            if (rc) return rc;
            if (now_ns() > deadline) return 0;
        }
        __builtin_ia32_pause();
    }
}

/* n sequential NOP round trips (one in flight). Returns n, or a negative error. */
int64_t portal_pingpong(struct portal_end *e, uint64_t n, uint64_t timeout_ns)
{
    uint64_t deadline = now_ns() + timeout_ns;
    struct portal_msg m = {0}, c;
    for (uint64_t i = 0; i < n; i++) {
        m.cookie = i + 1;
        m.op = PORTAL_OP_NOP;
        int rc = portal_send(e, PORTAL_RING_SUBMIT, &m, 1);
        if (rc < 0) return rc;
        if (rc == 0) return PERR(PORTAL_ERR_PROTO); /* nothing else is in flight: the ring cannot be full */
        unsigned k = 0;
        while ((rc = portal_recv(e, PORTAL_RING_COMPLETE, &c, 1)) == 0) {
            if ((++k & 1023) == 0) {
                if ((rc = portal_check(e))) return rc;
                if (now_ns() > deadline) return PERR(PORTAL_HOST_TIMEOUT);
            }
            __builtin_ia32_pause();
        }
        if (rc < 0) return rc;
        if (c.cookie != m.cookie || c.status) return PERR(PORTAL_ERR_PROTO);
    }
    return (int64_t)n;
}

/* Stream n NOPs through SUBMIT in batches of up to batch, reaping COMPLETE as it goes.
 * Completions must come back in order with status 0. Returns n or a negative error. */
int64_t portal_stream(struct portal_end *e, uint64_t n, unsigned batch, uint64_t timeout_ns)
{
    enum { MAXB = 1024 };
    struct portal_msg out[MAXB], in[MAXB];
    uint64_t sent = 0, done = 0, deadline = now_ns() + timeout_ns;
    unsigned k = 0;
    if (batch == 0 || batch > MAXB) batch = MAXB;
    for (unsigned i = 0; i < batch; i++) {
        struct portal_msg z = {0};
        out[i] = z;
    }
    while (done < n) {
        if (sent < n) {
            unsigned want = n - sent < batch ? (unsigned)(n - sent) : batch;
            for (unsigned i = 0; i < want; i++) out[i].cookie = sent + i + 1;
            int rc = portal_send(e, PORTAL_RING_SUBMIT, out, want);
            if (rc < 0) return rc;
            sent += (unsigned)rc;
        }
        int got = portal_recv(e, PORTAL_RING_COMPLETE, in, MAXB);
        if (got < 0) return got;
        if ((uint64_t)got > sent - done) return PERR(PORTAL_ERR_PROTO); /* completions nobody asked for */
        for (int i = 0; i < got; i++)
            if (in[i].cookie != done + i + 1 || in[i].status) return PERR(PORTAL_ERR_PROTO);
        done += (unsigned)got;
        if (got == 0) {
            if ((++k & 1023) == 0) {
                int rc = portal_check(e);
                if (rc) return rc;
                if (now_ns() > deadline) return PERR(PORTAL_HOST_TIMEOUT);
            }
            __builtin_ia32_pause();
        }
    }
    return (int64_t)n;
}

/* Spin until the u64 at window offset off equals want or timeout_ns pass; returns 0 or the timeout. */
int portal_spin_u64(struct portal_end *e, uint64_t off, uint64_t want, uint64_t timeout_ns)
{
    if (off % 8 || off > e->size || e->size - off < 8) return PERR(PORTAL_ERR_FAULT); /* no off + 8 wrap */
    const volatile uint64_t *p = (const volatile uint64_t *)(e->base + off);
    uint64_t deadline = now_ns() + timeout_ns;
    unsigned k = 0;
    while (*p != want) {
        if ((++k & 1023) == 0 && now_ns() > deadline) return PERR(PORTAL_HOST_TIMEOUT);
        __builtin_ia32_pause();
    }
    return 0;
}
