/* Gemini guest client: call records in guest-arena spans, CALL on EVENT,
 * REPLY and UPCALL taken from UPCALL (see gemini.h and docs/gemini.md). */
#include "gemini.h"

#define ALIGN8(x) (((x) + 7u) & ~(uint64_t)7u)

static void bytes_copy(volatile unsigned char *dst, const unsigned char *src, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) dst[i] = src[i];
}

static uint32_t str_len(const char *s)
{
    uint32_t n = 0;
    while (s[n] && n <= GEMINI_NAME_MAX) n++;
    return n;
}

int gemini_name_ok(const char *s, uint32_t len)
{
    if (len == 0 || len > GEMINI_NAME_MAX) return 0;
    for (uint32_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-')) return 0;
    }
    return 1;
}

int gemini_client_init(struct gemini_client *c, void *base, uint64_t size)
{
    unsigned char *p = (unsigned char *)c;
    for (size_t i = 0; i < sizeof *c; i++) p[i] = 0;
    int rc = portal_attach(&c->end, base, size, PORTAL_SIDE_GUEST);
    if (rc) return rc;
    portal_arena_init(&c->arena, &c->end, PORTAL_SIDE_GUEST);
    c->next_cookie = 1;
    c->vmin = GEMINI_VERSION_MIN;
    c->vmax = GEMINI_VERSION;
    return 0;
}

int gemini_client_set_versions(struct gemini_client *c, uint16_t lo, uint16_t hi)
{
    if (!lo || lo > hi || c->hello_state != GEMINI_HELLO_NONE) return GERR(GEMINI_ERR_INVAL);
    c->vmin = lo;
    c->vmax = hi;
    return 0;
}

int gemini_version(const struct gemini_client *c)
{
    if (c->hello_state == GEMINI_HELLO_FAILED) return GERR(GEMINI_ERR_PROTONOSUPPORT);
    return c->hello_state == GEMINI_HELLO_DONE ? c->version : 0;
}

void gemini_client_set_deliver(struct gemini_client *c, gemini_deliver_fn fn, void *ctx)
{
    c->deliver = fn;
    c->deliver_ctx = ctx;
}

static int prepare(struct gemini_client *c, struct gemini_call *call, const char *service, const char *method,
                   const void *args, uint32_t args_len, uint32_t reply_cap, uint32_t timeout_ms, uint16_t version)
{
    uint32_t slen = str_len(service), mlen = str_len(method);
    if (!gemini_name_ok(service, slen) || !gemini_name_ok(method, mlen)) return GERR(GEMINI_ERR_INVAL);
    if (args_len > GEMINI_ARGS_MAX || reply_cap > GEMINI_REPLY_MAX) return GERR(GEMINI_ERR_TOOBIG);
    uint64_t reply_off = ALIGN8((uint64_t)sizeof(struct gemini_call_header) + slen + mlen + args_len);
    uint64_t total = reply_off + reply_cap;
    int rc = portal_arena_alloc(&c->arena, total, &call->span);
    if (rc) return rc;
    void *p;
    if ((rc = portal_span_check(&c->end, &call->span, &p))) return rc;
    struct gemini_call_header h = {0};
    h.magic = GEMINI_CALL_MAGIC;
    h.version = version;
    h.service_len = (uint16_t)slen;
    h.method_len = (uint16_t)mlen;
    h.args_len = args_len;
    h.reply_offset = (uint32_t)reply_off;
    h.reply_cap = reply_cap;
    h.timeout_ms = timeout_ms;
    volatile unsigned char *d = (volatile unsigned char *)p;
    bytes_copy(d, (const unsigned char *)&h, sizeof h);
    bytes_copy(d + sizeof h, (const unsigned char *)service, slen);
    bytes_copy(d + sizeof h + slen, (const unsigned char *)method, mlen);
    if (args_len) bytes_copy(d + sizeof h + slen + mlen, (const unsigned char *)args, args_len);
    call->reply_offset = (uint32_t)reply_off;
    call->reply_cap = reply_cap;
    call->version = version;
    call->cookie = 0;
    call->done = 0;
    call->status = 0;
    call->result = call->value = 0;
    return 0;
}

int gemini_call_prepare(struct gemini_client *c, struct gemini_call *call, const char *service, const char *method,
                        const void *args, uint32_t args_len, uint32_t reply_cap, uint32_t timeout_ms)
{
    if (c->hello_state == GEMINI_HELLO_FAILED) return GERR(GEMINI_ERR_PROTONOSUPPORT);
    return prepare(c, call, service, method, args, args_len, reply_cap, timeout_ms,
                   c->hello_state == GEMINI_HELLO_DONE ? c->version : c->vmin);
}

/* "lo\0hi\0" in decimal; its length. */
static uint32_t version_args(char *buf, uint16_t lo, uint16_t hi)
{
    uint32_t n = 0;
    uint16_t v[2] = {lo, hi};
    for (int k = 0; k < 2; k++) {
        char tmp[5];
        int d = 0;
        do tmp[d++] = (char)('0' + v[k] % 10); while ((v[k] /= 10) && d < 5);
        while (d) buf[n++] = tmp[--d];
        buf[n++] = 0;
    }
    return n;
}

int gemini_hello(struct gemini_client *c)
{
    char args[12];
    if (c->hello_state == GEMINI_HELLO_PENDING) return 0;
    /* a record every host parses (one that predates HELLO answers NOSYS) */
    int rc = prepare(c, &c->hello, GEMINI_HELLO_SERVICE, GEMINI_HELLO_METHOD, args, version_args(args, c->vmin, c->vmax),
                     sizeof(struct gemini_hello), 0, GEMINI_HELLO_RECORD_VERSION);
    if (rc) return rc;
    if ((rc = gemini_call_submit(c, &c->hello))) {
        portal_arena_free(&c->arena, &c->hello.span);
        return rc;
    }
    c->hello_state = GEMINI_HELLO_PENDING;
    return 0;
}

/* The HELLO reply came: settle the version. Everything in it is checked (the host is hostile). */
static void hello_done(struct gemini_client *c)
{
    struct gemini_call *h = &c->hello;
    int v = 0;
    c->hello_status = h->status;
    if (h->status == GEMINI_ERR_OK) {
        const volatile unsigned char *p = gemini_call_reply(c, h);
        struct gemini_hello r;
        unsigned char *d = (unsigned char *)&r;
        if (p && h->result == sizeof r) {
            for (size_t i = 0; i < sizeof r; i++) d[i] = p[i];
            if (r.version == h->value && r.host_min <= r.version && r.version <= r.host_max &&
                c->vmin <= r.version && r.version <= c->vmax)
                v = r.version;
        }
        if (!v) { /* a lying answer: keep to the lowest version we speak */
            c->bad_messages++;
            c->hello_status = GEMINI_ERR_INVAL;
            v = c->vmin;
        }
    } else if (h->status == GEMINI_ERR_NOSYS) { /* a host older than HELLO speaks only the hello record's version */
        v = c->vmin <= GEMINI_HELLO_RECORD_VERSION ? GEMINI_HELLO_RECORD_VERSION : 0;
    } else if (h->status != GEMINI_ERR_PROTONOSUPPORT) {
        v = c->vmin; /* the host failed to answer (BUSY, TIMEDOUT, ...): the lowest version is the safe one */
    }
    c->version = (uint16_t)v;
    c->hello_state = v ? GEMINI_HELLO_DONE : GEMINI_HELLO_FAILED;
    portal_arena_free(&c->arena, &h->span);
}

int gemini_call_submit(struct gemini_client *c, struct gemini_call *call)
{
    if (c->npending == GEMINI_PENDING_MAX) return GERR(GEMINI_ERR_BUSY);
    struct portal_msg m = {0};
    m.cookie = c->next_cookie;
    m.op = GEMINI_OP_CALL;
    m.span = call->span;
    int rc = portal_send(&c->end, PORTAL_RING_EVENT, &m, 1);
    if (rc < 0) return rc;
    if (rc == 0) return PERR(PORTAL_ERR_AGAIN);
    if (++c->next_cookie == 0) c->next_cookie = 1;
    call->cookie = m.cookie;
    call->done = 0;
    c->pending[c->npending++] = call;
    c->calls++;
    return 0;
}

static int same_span(const struct portal_span *a, const struct portal_span *b)
{
    return a->portal_id == b->portal_id && a->flags == b->flags && a->offset == b->offset &&
           a->length == b->length && a->generation == b->generation;
}

/* A REPLY: complete the pending call it names; anything else is counted and dropped. */
static void take_reply(struct gemini_client *c, const struct portal_msg *m)
{
    for (unsigned i = 0; i < c->npending; i++) {
        struct gemini_call *call = c->pending[i];
        if (call->cookie != m->cookie) continue;
        if (!same_span(&call->span, &m->span) || m->reserved0[0] || m->reserved0[1]) break;
        /* a length past the reply area is a lie: report it as a protocol error, never read past */
        if (m->status == GEMINI_ERR_OK && m->result > call->reply_cap) {
            call->status = GEMINI_ERR_FAULT;
            call->result = 0;
        } else if (m->status != GEMINI_ERR_OK && m->status != GEMINI_ERR_OVERFLOW && m->result > call->reply_cap) {
            call->status = (int)m->status; /* error text longer than the area: a lie, never read */
            call->result = 0;
        } else {
            call->status = (int)m->status;
            call->result = m->result;
        }
        call->value = m->arg;
        call->done = 1;
        c->pending[i] = c->pending[--c->npending];
        c->replies++;
        return;
    }
    c->bad_messages++;
}

/* An UPCALL: hand it to deliver (or drop it with NOENT) and say so with UPCALL_DONE. */
static void take_upcall(struct gemini_client *c, const struct portal_msg *m, struct portal_msg *done)
{
    int verdict = GERR(GEMINI_ERR_NOENT);
    void *p;
    struct gemini_upcall_header h;
    done->cookie = m->cookie;
    done->op = GEMINI_OP_UPCALL_DONE;
    done->span = m->span;
    if (m->span.flags & PORTAL_SPAN_GUEST_ARENA || portal_span_check(&c->end, &m->span, &p) ||
        m->span.length < sizeof h) {
        done->status = GEMINI_ERR_FAULT;
        c->bad_messages++;
        return;
    }
    unsigned char *d = (unsigned char *)&h;
    const volatile unsigned char *s = (const volatile unsigned char *)p;
    for (size_t i = 0; i < sizeof h; i++) d[i] = s[i];
    if (h.magic != GEMINI_UPCALL_MAGIC || h.flags || h.topic_len == 0 || h.topic_len > GEMINI_NAME_MAX ||
        h.data_len > GEMINI_UPCALL_DATA_MAX || (uint64_t)sizeof h + h.topic_len + h.data_len > m->span.length) {
        done->status = GEMINI_ERR_INVAL;
        c->bad_messages++;
        return;
    }
    char topic[GEMINI_NAME_MAX];
    for (uint32_t i = 0; i < h.topic_len; i++) topic[i] = (char)s[sizeof h + i];
    if (!gemini_name_ok(topic, h.topic_len)) {
        done->status = GEMINI_ERR_INVAL;
        c->bad_messages++;
        return;
    }
    if (c->deliver)
        verdict = c->deliver(c->deliver_ctx, topic, h.topic_len, (const unsigned char *)p + sizeof h + h.topic_len,
                             h.data_len);
    c->upcalls++;
    if (verdict == GERR(GEMINI_ERR_NOSPC)) c->upcalls_dropped++;
    done->status = verdict == 0 ? GEMINI_ERR_OK
                 : verdict == GERR(GEMINI_ERR_NOSPC) ? GEMINI_ERR_NOSPC : GEMINI_ERR_NOENT;
}

int gemini_poll(struct gemini_client *c)
{
    struct portal_msg batch[16];
    int handled = 0, rc;

    if ((rc = portal_check(&c->end))) return rc;
    if (c->has_deferred) {
        rc = portal_send(&c->end, PORTAL_RING_EVENT, &c->deferred_done, 1);
        if (rc < 0) return rc;
        if (rc == 0) return 0; /* EVENT still full: take nothing more (an upcall needs room for its DONE) */
        c->has_deferred = 0;
    }
    for (;;) {
        int n = portal_recv(&c->end, PORTAL_RING_UPCALL, batch, 1);
        if (n < 0) return n;
        if (n == 0) break;
        struct portal_msg *m = &batch[0];
        handled++;
        if (m->op == GEMINI_OP_REPLY) {
            take_reply(c, m);
        } else if (m->op == GEMINI_OP_UPCALL) {
            struct portal_msg done = {0};
            take_upcall(c, m, &done);
            rc = portal_send(&c->end, PORTAL_RING_EVENT, &done, 1);
            if (rc < 0) return rc;
            if (rc == 0) { /* keep it; no further upcall is taken until it is sent */
                c->deferred_done = done;
                c->has_deferred = 1;
                break;
            }
        } else {
            c->bad_messages++;
        }
    }
    if (c->hello_state == GEMINI_HELLO_PENDING && c->hello.done) hello_done(c);
    return handled;
}

const void *gemini_call_reply(const struct gemini_client *c, const struct gemini_call *call)
{
    void *p;
    if (!call->done || call->status != GEMINI_ERR_OK || call->result > call->reply_cap) return 0;
    if (portal_span_check(&c->end, &call->span, &p)) return 0;
    return (const unsigned char *)p + call->reply_offset;
}

const char *gemini_call_error_text(const struct gemini_client *c, const struct gemini_call *call, uint32_t *len)
{
    void *p;
    if (!call->done || call->status == GEMINI_ERR_OK || call->status == GEMINI_ERR_OVERFLOW ||
        call->version < GEMINI_ERROR_TEXT_VERSION || call->result == 0 || call->result > call->reply_cap)
        return 0;
    if (portal_span_check(&c->end, &call->span, &p)) return 0;
    *len = (uint32_t)call->result;
    return (const char *)p + call->reply_offset;
}

int gemini_call_release(struct gemini_client *c, struct gemini_call *call)
{
    for (unsigned i = 0; i < c->npending; i++)
        if (c->pending[i] == call) return GERR(GEMINI_ERR_BUSY);
    return portal_arena_free(&c->arena, &call->span);
}

void gemini_want_wakeup(struct gemini_client *c, int on)
{
    portal_want_wakeup(&c->end, PORTAL_RING_UPCALL, on);
}

int gemini_host_wants_wakeup(struct gemini_client *c)
{
    return portal_peer_wants_wakeup(&c->end, PORTAL_RING_EVENT);
}
