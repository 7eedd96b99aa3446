/* Header validation and span checks. */
#include "portal.h"

/* The header copied out of shared memory exactly once, so a peer changing it
 * mid-check cannot make us validate one value and use another. */
union header_copy {
    struct portal_header h;
    uint64_t w[PORTAL_HEADER_SIZE / 8];
};

#define GEN_WORD (PORTAL_HEADER_OFF_GENERATION / 8)

/* A consistent snapshot of the peer's header, seqlock style: the host stores
 * magic = 0, then the fields, then magic (x86 keeps stores in order). Read
 * generation, then magic, then everything, then magic and generation again: a
 * rewrite that overlapped the copy changed the generation (it is bumped every
 * time), a rewrite in progress left magic 0. -1 if torn. */
static int copy_header(union header_copy *c, const void *src)
{
    const volatile uint64_t *s = (const volatile uint64_t *)src;
    uint64_t gen = s[GEN_WORD];
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint64_t magic = s[0];
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    for (size_t i = 0; i < PORTAL_HEADER_SIZE / 8; i++) c->w[i] = s[i];
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (s[0] != magic || c->w[0] != magic) return -1;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (s[GEN_WORD] != gen || c->w[GEN_WORD] != gen) return -1;
    return 0;
}

/* [off, off + len) lies inside [0, limit) without overflow. */
static int inside(uint64_t off, uint64_t len, uint64_t limit)
{
    return off <= limit && len <= limit - off;
}

static int overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

/* Validate the private header h and attach to the region at base. *e changes only on success,
 * so a failed re-attach leaves the old attachment (and its error state) as it was. */
static int attach(struct portal_end *e, void *base, uint64_t size, int side, const struct portal_header *hp)
{
    uint64_t ext_off[2 + PORTAL_RING_COUNT + 1], ext_len[2 + PORTAL_RING_COUNT + 1];
    unsigned next = 0;
    const struct portal_header h = *hp;
    struct portal_end n;

    if (h.magic != PORTAL_MAGIC || h.version != PORTAL_VERSION) return PERR(PORTAL_ERR_HEADER);
    if (h.header_page != PORTAL_HEADER_PAGE || h.flags != 0 || h.generation == 0) return PERR(PORTAL_ERR_HEADER);
    if (h.window_size < PORTAL_HEADER_PAGE || h.window_size > size) return PERR(PORTAL_ERR_FAULT);
    for (unsigned i = 0; i < sizeof h.reserved; i++)
        if (h.reserved[i]) return PERR(PORTAL_ERR_HEADER);

    ext_off[next] = 0;
    ext_len[next++] = PORTAL_HEADER_PAGE;
    n.base = (unsigned char *)base;
    n.size = h.window_size; /* never touch bytes past the window, even if more is mapped */
    n.side = side;
    n.info.window_size = h.window_size;
    n.info.generation = h.generation;
    n.info.portal_id = h.portal_id;
    n.info.version = h.version;
    n.info.arena_offset[0] = h.host_arena_offset;
    n.info.arena_size[0] = h.host_arena_size;
    n.info.arena_offset[1] = h.guest_arena_offset;
    n.info.arena_size[1] = h.guest_arena_size;
    for (unsigned a = 0; a < 2; a++) {
        uint64_t off = n.info.arena_offset[a], len = n.info.arena_size[a];
        if (off % PORTAL_SPAN_ALIGN || len == 0 || !inside(off, len, h.window_size)) return PERR(PORTAL_ERR_FAULT);
        ext_off[next] = off;
        ext_len[next++] = len;
    }
    for (unsigned r = 0; r < PORTAL_RING_COUNT; r++) {
        struct portal_ring_desc d = h.rings[r];
        uint32_t slots = d.slot_count;
        if (slots < PORTAL_RING_MIN_SLOTS || slots > PORTAL_RING_MAX_SLOTS || (slots & (slots - 1)) ||
            d.slot_size != PORTAL_SLOT_SIZE || d.offset % PORTAL_CACHELINE)
            return PERR(PORTAL_ERR_HEADER);
        uint64_t len = PORTAL_RING_CTL_SIZE + (uint64_t)slots * PORTAL_SLOT_SIZE;
        if (!inside(d.offset, len, h.window_size)) return PERR(PORTAL_ERR_FAULT);
        ext_off[next] = d.offset;
        ext_len[next++] = len;
        n.info.rings[r] = d;
    }
    /* header page, arenas and rings must not overlap: a message must never alias a payload
     * (no overflow: every extent lies inside the window) */
    for (unsigned i = 0; i < next; i++)
        for (unsigned j = i + 1; j < next; j++)
            if (overlap(ext_off[i], ext_len[i], ext_off[j], ext_len[j])) return PERR(PORTAL_ERR_FAULT);

    for (unsigned r = 0; r < PORTAL_RING_COUNT; r++) {
        struct portal_ring *ring = &n.ring[r];
        int host_produces = r == PORTAL_RING_SUBMIT || r == PORTAL_RING_UPCALL;
        ring->ctl = (struct portal_ring_ctl *)(n.base + n.info.rings[r].offset);
        ring->slots = n.base + n.info.rings[r].offset + PORTAL_RING_CTL_SIZE;
        ring->mask = n.info.rings[r].slot_count - 1;
        ring->producer = host_produces == (side == PORTAL_SIDE_HOST);
        /* start from the indices as they are (a re-attach finds work in flight) */
        uint32_t head = __atomic_load_n(&ring->ctl->head, __ATOMIC_ACQUIRE);
        uint32_t tail = __atomic_load_n(&ring->ctl->tail, __ATOMIC_ACQUIRE);
        if ((uint32_t)(head - tail) > ring->mask + 1) return PERR(PORTAL_ERR_PROTO);
        ring->mine = ring->producer ? head : tail;
        ring->peer = ring->producer ? tail : head;
    }
    *e = n;
    return 0;
}

/* The arguments every attach needs; the base must be cache-line aligned (atomics, volatile u64 loads). */
static int attach_args_ok(const struct portal_end *e, const void *base, uint64_t size, int side)
{
    return e && base && (uintptr_t)base % PORTAL_CACHELINE == 0 && size >= PORTAL_HEADER_PAGE &&
           (side == PORTAL_SIDE_HOST || side == PORTAL_SIDE_GUEST);
}

int portal_attach(struct portal_end *e, void *base, uint64_t size, int side)
{
    union header_copy copy;
    if (!attach_args_ok(e, base, size, side)) return PERR(PORTAL_ERR_INVAL);
    if (copy_header(&copy, base)) return PERR(PORTAL_ERR_HEADER); /* torn: the host is rewriting it */
    return attach(e, base, size, side, &copy.h);
}

int portal_attach_header(struct portal_end *e, void *base, uint64_t size, int side, const struct portal_header *h)
{
    if (!h || !attach_args_ok(e, base, size, side)) return PERR(PORTAL_ERR_INVAL);
    return attach(e, base, size, side, h);
}

int portal_check(const struct portal_end *e)
{
    const volatile struct portal_header *h = (const volatile struct portal_header *)e->base;
    if (h->magic != PORTAL_MAGIC || h->version != e->info.version || h->generation != e->info.generation ||
        h->portal_id != e->info.portal_id)
        return PERR(PORTAL_ERR_HEADER);
    return 0;
}

int portal_span_check(const struct portal_end *e, const struct portal_span *s, void **ptr)
{
    if (s->portal_id != e->info.portal_id) return PERR(PORTAL_ERR_XDEV);
    if (s->flags & ~(uint32_t)PORTAL_SPAN_GUEST_ARENA) return PERR(PORTAL_ERR_INVAL);
    if ((uint32_t)(s->generation >> 32) != (uint32_t)e->info.generation) return PERR(PORTAL_ERR_STALE);
    unsigned a = (s->flags & PORTAL_SPAN_GUEST_ARENA) ? 1 : 0;
    uint64_t lo = e->info.arena_offset[a], size = e->info.arena_size[a];
    if (s->offset < lo || !inside(s->offset - lo, s->length, size)) return PERR(PORTAL_ERR_FAULT);
    if (ptr) *ptr = e->base + s->offset;
    return 0;
}

uint64_t portal_raw_up_offset(uint32_t slots)
{
    uint64_t ring = PORTAL_RING_CTL_SIZE + (uint64_t)slots * PORTAL_SLOT_SIZE;
    return (ring + PORTAL_HEADER_PAGE - 1) / PORTAL_HEADER_PAGE * PORTAL_HEADER_PAGE;
}

uint32_t portal_raw_slots(uint64_t length)
{
    for (uint64_t s = PORTAL_RING_MIN_SLOTS; s <= PORTAL_RING_MAX_SLOTS; s *= 2)
        if (portal_raw_up_offset((uint32_t)s) + PORTAL_RING_CTL_SIZE + s * PORTAL_SLOT_SIZE == length)
            return (uint32_t)s;
    return 0;
}
