/* Host side of Gemini in C: see gemini_host.h. Built with guest/gemini and guest/portal into
 * build/gemini/libgemini.so. Every byte of the guest's record is copied out before it is
 * looked at, and every offset is checked against the span, which the Portal core checks
 * against the host's private copy of the arena bounds. */
#define _GNU_SOURCE
#include <sched.h>
#include <time.h>

#include "gemini_host.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void copy_out(void *dst, const void *src, uint64_t n)
{
    const volatile unsigned char *s = src;
    unsigned char *d = dst;
    for (uint64_t i = 0; i < n; i++) d[i] = s[i];
}

int gemini_host_check_call(const struct portal_end *e, const struct portal_msg *m, uint32_t versions,
                           struct gemini_host_call *out)
{
    void *p;
    if (m->reserved0[0] || m->reserved0[1] || m->status || m->arg || m->result) return GERR(GEMINI_ERR_INVAL);
    if (!(m->span.flags & PORTAL_SPAN_GUEST_ARENA)) return GERR(GEMINI_ERR_FAULT);
    int rc = portal_span_check(e, &m->span, &p);
    if (rc) return rc == PERR(PORTAL_ERR_XDEV) ? GERR(GEMINI_ERR_XDEV)
                 : rc == PERR(PORTAL_ERR_STALE) ? GERR(GEMINI_ERR_STALE) : GERR(GEMINI_ERR_FAULT);
    uint64_t len = m->span.length;
    if (len < sizeof out->h) return GERR(GEMINI_ERR_FAULT);
    copy_out(&out->h, p, sizeof out->h);
    const struct gemini_call_header *h = &out->h;
    int reserved = 0;
    for (unsigned i = 0; i < sizeof h->reserved; i++) reserved |= h->reserved[i];
    if (h->magic != GEMINI_CALL_MAGIC) return GERR(GEMINI_ERR_INVAL);
    /* a record of a version this host does not speak: typed, so the guest can fall back */
    if (h->version < (versions & ((1u << GEMINI_VERSION_RANGE_SHIFT) - 1)) || h->version > versions >> GEMINI_VERSION_RANGE_SHIFT)
        return GERR(GEMINI_ERR_PROTONOSUPPORT);
    if (h->flags || reserved) return GERR(GEMINI_ERR_INVAL);
    if (h->service_len < 1 || h->service_len > GEMINI_NAME_MAX || h->method_len < 1 || h->method_len > GEMINI_NAME_MAX)
        return GERR(GEMINI_ERR_TOOBIG);
    if (h->args_len > GEMINI_ARGS_MAX || h->reply_cap > GEMINI_REPLY_MAX) return GERR(GEMINI_ERR_TOOBIG);
    uint64_t args_end = sizeof *h + (uint64_t)h->service_len + h->method_len + h->args_len;
    if (h->reply_offset % 8 || h->reply_offset < args_end || (uint64_t)h->reply_offset + h->reply_cap > len)
        return GERR(GEMINI_ERR_FAULT);
    const unsigned char *rec = p;
    copy_out(out->service, rec + sizeof *h, h->service_len);
    copy_out(out->method, rec + sizeof *h + h->service_len, h->method_len);
    if (!gemini_name_ok(out->service, h->service_len) || !gemini_name_ok(out->method, h->method_len))
        return GERR(GEMINI_ERR_INVAL);
    out->args_offset = m->span.offset + sizeof *h + h->service_len + h->method_len;
    out->reply_offset = m->span.offset + h->reply_offset;
    return 0;
}

static int is_null_call(const struct gemini_host_call *c)
{
    return c->h.service_len == 4 && c->h.method_len == 4 && !__builtin_memcmp(c->service, "null", 4) &&
           !__builtin_memcmp(c->method, "call", 4) && c->h.args_len == 0;
}

int gemini_host_serve(struct portal_end *e, struct portal_msg *defer, unsigned max, uint64_t spin_ns,
                      uint32_t versions, unsigned *answered)
{
    struct portal_msg in[64], out[64];
    uint64_t start = now_ns(), deadline = start + spin_ns, hard = start + 8 * spin_ns;
    unsigned deferred = 0, k = 0;
    *answered = 0;
    for (;;) {
        int64_t room = portal_space(e, PORTAL_RING_UPCALL);
        if (room < 0) return (int)room;
        unsigned want = max - deferred < 64 ? max - deferred : 64;
        if (want > room) want = (unsigned)room;
        int n = want ? portal_recv(e, PORTAL_RING_EVENT, in, want) : 0;
        if (n < 0) return n;
        if (n == 0) {
            if (deferred) return (int)deferred;
            if (*answered) { /* a burst: keep answering until it pauses for spin_ns (never past `hard`) */
                uint64_t now = now_ns();
                if (now > deadline || now > hard) return 0;
                sched_yield(); /* the guest's vCPU may need this core to make the next call */
                continue;
            }
            if ((++k & 255) == 0) {
                int rc = portal_check(e);
                if (rc) return rc;
                if (now_ns() > deadline) return 0;
            }
            __builtin_ia32_pause();
            continue;
        }
        unsigned replies = 0;
        for (int i = 0; i < n; i++) {
            struct gemini_host_call c;
            if (in[i].op == GEMINI_OP_CALL && gemini_host_check_call(e, &in[i], versions, &c) == 0 && is_null_call(&c)) {
                struct portal_msg *r = &out[replies++];
                *r = in[i];
                r->op = GEMINI_OP_REPLY;
                r->status = 0;
                r->arg = r->result = 0;
            } else {
                defer[deferred++] = in[i];   /* Python answers it (or its error) */
            }
        }
        if (replies) {
            int sent = portal_send(e, PORTAL_RING_UPCALL, out, replies);
            if (sent != (int)replies) return sent < 0 ? sent : PERR(PORTAL_ERR_PROTO);
            *answered += replies;
            deadline = now_ns() + spin_ns;
            /* a guest that sleeps on UPCALL needs the doorbell, which the caller rings */
            if (portal_peer_wants_wakeup(e, PORTAL_RING_UPCALL)) return (int)deferred;
        }
        if (deferred == max || want < 64) return (int)deferred;
    }
}
