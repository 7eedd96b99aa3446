/* Host fast path of wslx.portal: the guest's Portal core (guest/portal/ sources,
 * compiled unchanged) plus the loops a Python caller cannot run fast enough:
 * bounded spin-waits and the message-rate / round-trip benchmark loops.
 * Built by SCons into build/portal/libportal_host.so, loaded with cffi (ABI mode).
 * Every loop is bounded by a timeout in ns and re-checks the header. */
#define _GNU_SOURCE
#include <time.h>

#include "portal_host.h"

_Static_assert(PORTAL_MSG_OFF_COOKIE % 8 == 0 && PORTAL_MSG_OFF_STATUS % 8 == 4 &&
               PORTAL_MSG_OFF_STATUS / 8 != PORTAL_MSG_OFF_COOKIE / 8,
               "portal_stream reads a cookie word and the status from the top of another word");

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
 * Completions must come back in order with status 0. Returns n or a negative error.
 * Slot to slot, like the guest's service: requests are written straight into SUBMIT and each
 * completion's cookie and status words are loaded once straight from COMPLETE (no staging
 * arrays: 128 KiB of them fell out of L1 every round); both indices are validated and the
 * header re-checked once per batch, each completion is checked on its own. */
int64_t portal_stream(struct portal_end *e, uint64_t n, unsigned batch, uint64_t timeout_ns)
{
    enum { MAXB = 1024 };
    struct portal_ring *sub = &e->ring[PORTAL_RING_SUBMIT], *com = &e->ring[PORTAL_RING_COMPLETE];
    uint64_t sent = 0, done = 0, deadline = now_ns() + timeout_ns;
    unsigned k = 0;
    if (!sub->producer || com->producer) return PERR(PORTAL_ERR_INVAL); /* the host's end only */
    if (batch == 0 || batch > MAXB) batch = MAXB;
    while (done < n) {
        if (sent < n) {
            int64_t room = portal_space(e, PORTAL_RING_SUBMIT);
            if (room < 0) return room;
            uint64_t want = n - sent < batch ? n - sent : batch;
            if (want > (uint64_t)room) want = (uint64_t)room;
            unsigned char *const slots = sub->slots;
            const uint32_t first = sub->mine, mask = sub->mask;
            for (uint32_t i = 0; i < want; i++) {
                volatile uint64_t *d = (volatile uint64_t *)(slots + (size_t)((first + i) & mask) * PORTAL_SLOT_SIZE);
                d[0] = sent + i + 1; /* cookie; the rest of a NOP request is zero */
                for (unsigned w = 1; w < PORTAL_SLOT_SIZE / 8; w++) d[w] = 0;
            }
            portal_advance(e, PORTAL_RING_SUBMIT, (uint32_t)want);
            sent += want;
        }
        int64_t ready = portal_pending(e, PORTAL_RING_COMPLETE);
        if (ready < 0) return ready;
        if (ready) {
            int rc = portal_check(e); /* every receive re-checks the header, as portal_recv does */
            if (rc) return rc;
            uint64_t got = ready < MAXB ? (uint64_t)ready : MAXB;
            if (got > sent - done) return PERR(PORTAL_ERR_PROTO); /* completions nobody asked for */
            const unsigned char *const slots = com->slots;
            const uint32_t first = com->mine, mask = com->mask;
            for (uint32_t i = 0; i < got; i++) {
                const volatile uint64_t *c =
                    (const volatile uint64_t *)(slots + (size_t)((first + i) & mask) * PORTAL_SLOT_SIZE);
                uint64_t cookie = c[PORTAL_MSG_OFF_COOKIE / 8], status = c[PORTAL_MSG_OFF_STATUS / 8];
                if (cookie != done + i + 1 || status >> (PORTAL_MSG_OFF_STATUS % 8 * 8)) return PERR(PORTAL_ERR_PROTO);
            }
            portal_advance(e, PORTAL_RING_COMPLETE, (uint32_t)got);
            done += got;
        } else {
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

/* The RAW_RING baseline (docs/portal.md): one request starts the guest echoing, then n messages
 * go through the bare ring pair in span, written and read like portal_stream's (a 64-byte message
 * per slot, batches of up to batch) but with nothing validated: indices are masked, counts clamped
 * so the loop ends. Returns n, or a negative error (the request failed: its status negated). */
int64_t portal_raw_stream(struct portal_end *e, const struct portal_span *span, uint64_t n, unsigned batch,
                          uint64_t timeout_ns)
{
    uint64_t deadline = now_ns() + timeout_ns;
    void *p;
    int rc = portal_span_check(e, span, &p);
    if (rc) return rc;
    uint32_t slots = portal_raw_slots(span->length);
    if (!slots || n == 0) return PERR(PORTAL_ERR_INVAL);
    if (batch == 0 || batch > slots) batch = slots;
    unsigned char *b = p;
    uint64_t up_off = portal_raw_up_offset(slots);
    struct portal_ring_ctl *down_ctl = (struct portal_ring_ctl *)b, *up_ctl = (struct portal_ring_ctl *)(b + up_off);
    unsigned char *down = b + PORTAL_RING_CTL_SIZE, *up = b + up_off + PORTAL_RING_CTL_SIZE;
    const uint32_t mask = slots - 1;
    __atomic_store_n(&down_ctl->head, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&down_ctl->tail, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&up_ctl->head, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&up_ctl->tail, 0, __ATOMIC_RELEASE);

    /* start it: one ordinary, fully checked request */
    struct portal_msg m = {0}, c;
    m.cookie = 0x52415752494e47ull; /* "RAWRING" */
    m.op = PORTAL_OP_RAW_RING;
    m.span = *span;
    m.arg = n;
    rc = portal_send(e, PORTAL_RING_SUBMIT, &m, 1);
    if (rc <= 0) return rc < 0 ? rc : PERR(PORTAL_ERR_AGAIN);
    unsigned k = 0;
    while ((rc = portal_recv(e, PORTAL_RING_COMPLETE, &c, 1)) == 0) {
        if ((++k & 1023) == 0 && now_ns() > deadline) return PERR(PORTAL_HOST_TIMEOUT);
        __builtin_ia32_pause();
    }
    if (rc < 0) return rc;
    if (c.cookie != m.cookie || c.op != m.op) return PERR(PORTAL_ERR_PROTO);
    if (c.status) return -(int64_t)c.status;

    uint64_t sent = 0, got = 0, sum = 0;
    k = 0;
    while (got < n) {
        int moved = 0;
        uint32_t free = mask + 1 - ((uint32_t)sent - __atomic_load_n(&down_ctl->tail, __ATOMIC_ACQUIRE));
        uint64_t want = n - sent < batch ? n - sent : batch;
        if (want > free) want = free; /* batch <= slots: the masked writes stay in the ring */
        for (uint64_t i = 0; i < want; i++) {
            volatile uint64_t *d = (volatile uint64_t *)(down + (size_t)((sent + i) & mask) * PORTAL_SLOT_SIZE);
            d[0] = sent + i + 1;
            for (unsigned w = 1; w < PORTAL_SLOT_SIZE / 8; w++) d[w] = 0;
        }
        if (want) {
            sent += want;
            __atomic_store_n(&down_ctl->head, (uint32_t)sent, __ATOMIC_RELEASE);
            moved = 1;
        }
        uint32_t ready = __atomic_load_n(&up_ctl->head, __ATOMIC_ACQUIRE) - (uint32_t)got;
        if (ready > mask + 1) ready = mask + 1;
        if (ready > n - got) ready = (uint32_t)(n - got);
        for (uint32_t i = 0; i < ready; i++)
            sum += *(const volatile uint64_t *)(up + (size_t)((got + i) & mask) * PORTAL_SLOT_SIZE);
        if (ready) {
            got += ready;
            __atomic_store_n(&up_ctl->tail, (uint32_t)got, __ATOMIC_RELEASE);
            moved = 1;
        }
        if (!moved) {
            if ((++k & 1023) == 0 && now_ns() > deadline) return PERR(PORTAL_HOST_TIMEOUT);
            __builtin_ia32_pause();
        }
    }
    __asm__ volatile("" : : "r"(sum)); /* the cookies were read, not checked */
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
