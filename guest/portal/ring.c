/* SPSC rings. Ordering (see docs/portal.md): the producer writes slots, then
 * store-releases head; the consumer load-acquires head, copies slots out, then
 * store-releases tail; the producer load-acquires tail before reusing a slot. */
#include "portal.h"

static void copy_msg(void *dst, const void *src)
{
    const volatile uint64_t *s = (const volatile uint64_t *)src;
    volatile uint64_t *d = (volatile uint64_t *)dst;
    for (unsigned i = 0; i < PORTAL_SLOT_SIZE / 8; i++) d[i] = s[i];
}

static struct portal_ring *ring_of(struct portal_end *e, unsigned r, int produce)
{
    if (r >= PORTAL_RING_COUNT || e->ring[r].producer != produce) return 0;
    return &e->ring[r];
}

/* Producer: free slots after validating tail, which only moves forward and never passes head. */
static int64_t space(struct portal_ring *r)
{
    uint32_t tail = __atomic_load_n(&r->ctl->tail, __ATOMIC_ACQUIRE);
    if ((uint32_t)(tail - r->peer) > (uint32_t)(r->mine - r->peer)) return PERR(PORTAL_ERR_PROTO);
    r->peer = tail;
    return (int64_t)r->mask + 1 - (uint32_t)(r->mine - tail);
}

/* Consumer: messages ready after validating head, which only moves forward and never laps tail. */
static int64_t pending(struct portal_ring *r)
{
    uint32_t head = __atomic_load_n(&r->ctl->head, __ATOMIC_ACQUIRE);
    uint32_t ahead = head - r->mine;
    if (ahead > r->mask + 1 || ahead < (uint32_t)(r->peer - r->mine)) return PERR(PORTAL_ERR_PROTO);
    r->peer = head;
    return ahead;
}

int64_t portal_space(struct portal_end *e, unsigned ring)
{
    struct portal_ring *r = ring_of(e, ring, 1);
    return r ? space(r) : PERR(PORTAL_ERR_INVAL);
}

int64_t portal_pending(struct portal_end *e, unsigned ring)
{
    struct portal_ring *r = ring_of(e, ring, 0);
    return r ? pending(r) : PERR(PORTAL_ERR_INVAL);
}

int portal_send(struct portal_end *e, unsigned ring, const struct portal_msg *m, unsigned n)
{
    struct portal_ring *r = ring_of(e, ring, 1);
    if (!r) return PERR(PORTAL_ERR_INVAL);
    int64_t free = space(r);
    if (free < 0) return (int)free;
    if (n > free) n = (unsigned)free;
    for (unsigned i = 0; i < n; i++)
        copy_msg(r->slots + (size_t)((r->mine + i) & r->mask) * PORTAL_SLOT_SIZE, &m[i]);
    if (n) {
        r->mine += n;
        __atomic_store_n(&r->ctl->head, r->mine, __ATOMIC_RELEASE);
    }
    return (int)n;
}

int portal_recv(struct portal_end *e, unsigned ring, struct portal_msg *out, unsigned max)
{
    struct portal_ring *r = ring_of(e, ring, 0);
    if (!r) return PERR(PORTAL_ERR_INVAL);
    int64_t ready = pending(r);
    if (ready < 0) return (int)ready;
    unsigned n = ready < max ? (unsigned)ready : max;
    for (unsigned i = 0; i < n; i++)
        copy_msg(&out[i], r->slots + (size_t)((r->mine + i) & r->mask) * PORTAL_SLOT_SIZE);
    /* Every poll re-checks the header (docs/portal.md), after head was loaded with acquire: a
     * header change the peer made before publishing is seen, and nothing is taken off the ring. */
    int rc = portal_check(e);
    if (rc) return rc;
    if (n) {
        r->mine += n;
        __atomic_store_n(&r->ctl->tail, r->mine, __ATOMIC_RELEASE);
    }
    return (int)n;
}

void portal_want_wakeup(struct portal_end *e, unsigned ring, int on)
{
    struct portal_ring *r = ring_of(e, ring, 0);
    if (!r) return;
    __atomic_store_n(&r->ctl->need_wakeup, on ? 1u : 0u, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_SEQ_CST); /* the producer's fence pairs with this one */
}

int portal_peer_wants_wakeup(struct portal_end *e, unsigned ring)
{
    struct portal_ring *r = ring_of(e, ring, 1);
    if (!r) return 0;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    return __atomic_load_n(&r->ctl->need_wakeup, __ATOMIC_RELAXED) != 0;
}
