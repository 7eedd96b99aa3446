/* The guest's Portal service: SUBMIT -> COMPLETE, payloads in arena spans,
 * processed in place (no copies). Runs as a Linux process (guest/init
 * portal_linux.c) or inside the Track B kernel; both call the step function
 * from their own loop with their own backoff. */
#include "portal.h"

#define WORDS (PORTAL_SLOT_SIZE / 8)
/* A message field inside the little-endian u64 word of its slot that holds it (offsets generated). */
#define OPS_WORD (PORTAL_MSG_OFF_OP / 8)
#define RESULT_WORD (PORTAL_MSG_OFF_RESULT / 8)
#define FIELD(word, off, bits) (((word) >> ((off) % 8 * 8)) & (uint64_t)((1ull << ((bits) - 1) << 1) - 1))
_Static_assert(PORTAL_MSG_OFF_RESERVED0 / 8 == OPS_WORD && PORTAL_MSG_OFF_STATUS / 8 == OPS_WORD &&
               PORTAL_MSG_OFF_RESULT % 8 == 0 && OPS_WORD != RESULT_WORD,
               "serve_slot reads op, reserved0 and status from one word and writes result as one word");

static struct portal_guest_status *status(struct portal_guest *g)
{
    return (struct portal_guest_status *)(g->end.base + PORTAL_GUEST_STATUS_OFFSET);
}

int portal_guest_init(struct portal_guest *g, void *base, uint64_t size)
{
    g->served = 0;
    g->heartbeat = 0;
    g->raw.left = 0; /* a (re-)attach ends any RAW_RING */
    g->error = portal_attach(&g->end, base, size, PORTAL_SIDE_GUEST);
    if (g->error) return g->error;
    volatile struct portal_guest_status *st = status(g);
    st->error = 0;
    st->served = 0;
    st->generation = g->end.info.generation;
    __atomic_store_n(&status(g)->state, PORTAL_GUEST_SERVING, __ATOMIC_RELEASE);
    return 0;
}

static int fail(struct portal_guest *g, int err)
{
    volatile struct portal_guest_status *st = status(g);
    g->error = err;
    st->error = (uint32_t)-err;
    __atomic_store_n(&status(g)->state, PORTAL_GUEST_FAILED, __ATOMIC_RELEASE);
    return err;
}

static int raw_start(struct portal_guest *g, const struct portal_msg *m);

/* Turn a request (already copied out of the ring) into its completion. */
static void handle(struct portal_guest *g, struct portal_msg *m)
{
    void *p = 0;
    int rc = 0;
    m->result = 0;
    if (m->reserved0[0] || m->reserved0[1] || m->status) {
        rc = PERR(PORTAL_ERR_INVAL);
    } else if (m->op == PORTAL_OP_NOP) {
        /* nothing */
    } else if (m->op == PORTAL_OP_RAW_RING) {
        rc = raw_start(g, m);
    } else if (m->op > PORTAL_OP_RAW_RING) {
        rc = PERR(PORTAL_ERR_NOSYS);
    } else if (m->span.length && (rc = portal_span_check(&g->end, &m->span, &p)) == 0) {
        if (m->op == PORTAL_OP_CHECKSUM) m->result = portal_sum64(p, m->span.length);
        else if (m->op == PORTAL_OP_TRANSFORM) portal_xor64(p, m->span.length, m->arg);
    }
    if (!rc && m->op == PORTAL_OP_ECHO) m->result = m->arg;
    m->status = (uint32_t)-rc;
}

/* The general case of serve_slot, out of line so the NOP loop keeps its registers. */
static __attribute__((noinline)) void serve_private(struct portal_guest *g, volatile uint64_t *d,
                                                     const volatile uint64_t *s, uint64_t ops)
{
    union { struct portal_msg m; uint64_t w[WORDS]; } u;
#pragma GCC unroll 8
    for (unsigned i = 0; i < WORDS; i++) u.w[i] = i == OPS_WORD ? ops : s[i];
    handle(g, &u.m);
#pragma GCC unroll 8
    for (unsigned i = 0; i < WORDS; i++) d[i] = u.w[i];
}

/* One request, slot to slot, each word of the slot loaded exactly once (that is the copy out of
 * shared memory: nothing checked can change after its check). The word holding op, reserved0 and
 * status comes first; NOP (the message-rate case) then streams the other words straight to the
 * completion, result 0, with no private copy. Any other op goes through handle() on a private struct. */
static inline void serve_slot(struct portal_guest *g, unsigned char *dst, const unsigned char *src)
{
    const volatile uint64_t *s = (const volatile uint64_t *)src;
    volatile uint64_t *d = (volatile uint64_t *)dst;
    const uint64_t ops = s[OPS_WORD];
    if (FIELD(ops, PORTAL_MSG_OFF_OP, 16) == PORTAL_OP_NOP && FIELD(ops, PORTAL_MSG_OFF_RESERVED0, 16) == 0 &&
        FIELD(ops, PORTAL_MSG_OFF_STATUS, 32) == 0) {
#pragma GCC unroll 8
        for (unsigned i = 0; i < WORDS; i++) d[i] = i == OPS_WORD ? ops : i == RESULT_WORD ? 0 : s[i];
        return;
    }
    serve_private(g, d, s, ops);
}

/* Start (arg > 0) or stop (arg 0) the RAW_RING baseline: check the span once, then keep raw pointers. */
static int raw_start(struct portal_guest *g, const struct portal_msg *m)
{
    void *p = 0;
    g->raw.left = 0;
    if (!m->arg) return 0;
    int rc = portal_span_check(&g->end, &m->span, &p);
    if (rc) return rc;
    uint32_t slots = portal_raw_slots(m->span.length);
    if (!slots || (uintptr_t)p % PORTAL_CACHELINE) return PERR(PORTAL_ERR_INVAL);
    unsigned char *b = p;
    uint64_t up = portal_raw_up_offset(slots);
    g->raw.down_ctl = (struct portal_ring_ctl *)b;
    g->raw.down = b + PORTAL_RING_CTL_SIZE;
    g->raw.up_ctl = (struct portal_ring_ctl *)(b + up);
    g->raw.up = b + up + PORTAL_RING_CTL_SIZE;
    g->raw.mask = slots - 1;
    g->raw.down_tail = __atomic_load_n(&g->raw.down_ctl->tail, __ATOMIC_RELAXED);
    g->raw.up_head = __atomic_load_n(&g->raw.up_ctl->head, __ATOMIC_RELAXED);
    g->raw.left = m->arg;
    return 0;
}

/* The bare ring: copy up to budget slots down -> up with the same slot copy as serve_slot and
 * nothing validated (indices are masked into the span, the count clamped so the loop ends). */
static unsigned raw_step(struct portal_raw *r, unsigned budget)
{
    uint32_t ready = __atomic_load_n(&r->down_ctl->head, __ATOMIC_ACQUIRE) - r->down_tail;
    uint32_t room = r->mask + 1 - (r->up_head - __atomic_load_n(&r->up_ctl->tail, __ATOMIC_ACQUIRE));
    uint32_t n = ready < room ? ready : room;
    if (n > budget) n = budget;
    if (n > r->left) n = (uint32_t)r->left;
    /* ring state in locals, as in the service loop: the slot stores must not force reloads */
    const unsigned char *const down = r->down;
    unsigned char *const up = r->up;
    const uint32_t mask = r->mask, t = r->down_tail, h = r->up_head;
    for (uint32_t i = 0; i < n; i++) {
        const volatile uint64_t *s = (const volatile uint64_t *)(down + (size_t)((t + i) & mask) * PORTAL_SLOT_SIZE);
        volatile uint64_t *d = (volatile uint64_t *)(up + (size_t)((h + i) & mask) * PORTAL_SLOT_SIZE);
#pragma GCC unroll 8
        for (unsigned k = 0; k < WORDS; k++) d[k] = s[k];
    }
    if (n) {
        r->down_tail += n;
        r->up_head += n;
        r->left -= n;
        __atomic_store_n(&r->down_ctl->tail, r->down_tail, __ATOMIC_RELEASE);
        __atomic_store_n(&r->up_ctl->head, r->up_head, __ATOMIC_RELEASE);
    }
    return n;
}

/* Requests go slot to slot, SUBMIT -> COMPLETE, in batches: both indices are validated and the
 * header re-checked once per batch (docs/portal.md: validated on every load, and every load
 * serves a batch), each message is checked on its own (serve_slot / handle). */
int portal_service_step(struct portal_guest *g, unsigned budget)
{
    struct portal_end *e = &g->end;
    struct portal_ring *in = &e->ring[PORTAL_RING_SUBMIT], *out = &e->ring[PORTAL_RING_COMPLETE];
    unsigned done = 0, raw = 0;
    int rc;

    if (g->error) return g->error;
    if ((rc = portal_check(e))) return fail(g, rc);
    __atomic_store_n(&status(g)->heartbeat, ++g->heartbeat, __ATOMIC_RELAXED);
    while (done < budget) {
        int64_t room = portal_space(e, PORTAL_RING_COMPLETE);
        if (room < 0) return fail(g, (int)room);
        if (room == 0) break; /* the host has not drained COMPLETE: leave SUBMIT alone */
        int64_t ready = portal_pending(e, PORTAL_RING_SUBMIT);
        if (ready < 0) return fail(g, (int)ready);
        if (ready == 0) break;
        if ((rc = portal_check(e))) return fail(g, rc); /* after head's acquire: a header change made
                                                           before publishing is seen, nothing taken */
        unsigned n = budget - done;
        if (n > room) n = (unsigned)room;
        if (n > ready) n = (unsigned)ready;
        /* ring state in locals: the slot stores must not make the compiler reload it per message */
        unsigned char *const src = in->slots, *const dst = out->slots;
        const uint32_t si = in->mine, di = out->mine, smask = in->mask, dmask = out->mask;
        for (unsigned i = 0; i < n; i++)
            serve_slot(g, dst + (size_t)((di + i) & dmask) * PORTAL_SLOT_SIZE,
                       src + (size_t)((si + i) & smask) * PORTAL_SLOT_SIZE);
        portal_advance(e, PORTAL_RING_SUBMIT, n);   /* the slots are ours until this */
        portal_advance(e, PORTAL_RING_COMPLETE, n); /* and the completions the host's from this */
        done += n;
    }
    if (g->raw.left) raw = raw_step(&g->raw, budget);
    if (done) {
        g->served += done;
        __atomic_store_n(&status(g)->served, g->served, __ATOMIC_RELEASE);
    }
    return (int)(done + raw);
}

int portal_guest_host_wants_wakeup(struct portal_guest *g)
{
    return portal_peer_wants_wakeup(&g->end, PORTAL_RING_COMPLETE);
}
