/* vmbus_ring.c: see vmbus_ring.h. The rules (hyperv-guest-facts.md, "VMBus
 * ring buffers"): never fill a ring completely; publish write_index after the
 * data (barrier); signal only if interrupt_mask is 0 and the ring was empty
 * before the write; a consumer that frees the space a producer asked for in
 * pending_send_sz signals it. */
#include "hv/hv_parse.h"
#include "hv/vmbus_ring.h"
#include "kernel/errno.h"
#include "kernel/klib.h"
#include "kernel/memlayout.h"
#include "platform/platform.h"

#define CTRL32(r, off) (*(volatile uint32_t *)((r)->ctrl + (off)))

int vmbus_ring_init(struct vmbus_ring *r, uint8_t *ctrl, uint8_t *const *pages, unsigned n)
{
    if (n == 0 || n > VMBUS_RING_MAX_PAGES)
        return ERR_RANGE;
    memset(r, 0, sizeof *r);
    r->ctrl = ctrl;
    for (unsigned i = 0; i < n; i++)
        r->page[i] = pages[i];
    r->size = n * (uint32_t)PAGE_SIZE;
    CTRL32(r, HV_RING_BUFFER_OFF_FEATURE_BITS) = VMBUS_RING_FEATURE_PENDING_SEND_SIZE;
    return 0;
}

/* The host's index, or ERR_RANGE (and the ring broken) when it cannot be one. */
static long host_index(struct vmbus_ring *r, uint32_t off)
{
    uint32_t v = CTRL32(r, off);
    if (v >= r->size || v % VMBUS_PACKET_ALIGN) {
        r->broken = 1;
        return ERR_RANGE;
    }
    return v;
}

static void copy_to_ring(struct vmbus_ring *r, uint32_t at, const uint8_t *src, uint32_t len)
{
    while (len) {
        uint32_t in = at % PAGE_SIZE, n = (uint32_t)PAGE_SIZE - in;
        if (n > len)
            n = len;
        memcpy(r->page[at / PAGE_SIZE] + in, src, n);
        src += n, len -= n;
        at = (at + n) % r->size;
    }
}

static void copy_from_ring(struct vmbus_ring *r, uint32_t at, uint8_t *dst, uint32_t len)
{
    while (len) {
        uint32_t in = at % PAGE_SIZE, n = (uint32_t)PAGE_SIZE - in;
        if (n > len)
            n = len;
        memcpy(dst, r->page[at / PAGE_SIZE] + in, n);
        dst += n, len -= n;
        at = (at + n) % r->size;
    }
}

static uint32_t used(const struct vmbus_ring *r, uint32_t w, uint32_t rd) { return w >= rd ? w - rd : r->size - rd + w; }

int vmbus_ring_write(struct vmbus_ring *r, const void *head, uint32_t hlen, const void *body, uint32_t blen,
                     int *signal)
{
    static const uint8_t zeros[VMBUS_PACKET_ALIGN];
    *signal = 0;
    if (r->broken)
        return ERR_RANGE;
    uint32_t plen = (hlen + blen + VMBUS_PACKET_ALIGN - 1) & ~(VMBUS_PACKET_ALIGN - 1);
    uint32_t total = plen + VMBUS_PACKET_TRAILER_SIZE;
    if ((uint64_t)hlen + blen > r->size || total >= r->size)
        return ERR_RANGE;                                   /* could never fit */
    long rd = host_index(r, HV_RING_BUFFER_OFF_READ_INDEX);
    if (rd < 0)
        return (int)rd;
    uint32_t w = r->own;
    if (r->size - used(r, w, (uint32_t)rd) <= total) {      /* never fill completely */
        CTRL32(r, HV_RING_BUFFER_OFF_PENDING_SEND_SZ) = total;
        mb();
        /* look again: the host may have emptied the ring before it could see pending_send_sz, and then
         * no signal comes (a native host drains while the guest writes) */
        rd = host_index(r, HV_RING_BUFFER_OFF_READ_INDEX);
        if (rd < 0)
            return (int)rd;
        if (r->size - used(r, w, (uint32_t)rd) <= total)
            return 0;
    }
    CTRL32(r, HV_RING_BUFFER_OFF_PENDING_SEND_SZ) = 0;
    uint64_t trailer = (uint64_t)w << 32;                   /* upper half: where the packet starts */
    uint32_t at = w;
    copy_to_ring(r, at, head, hlen), at = (at + hlen) % r->size;
    copy_to_ring(r, at, body, blen), at = (at + blen) % r->size;
    copy_to_ring(r, at, zeros, plen - hlen - blen), at = (at + plen - hlen - blen) % r->size;
    copy_to_ring(r, at, (const uint8_t *)&trailer, sizeof trailer), at = (at + sizeof trailer) % r->size;
    wmb();                                                  /* the data before the index */
    r->own = at;
    CTRL32(r, HV_RING_BUFFER_OFF_WRITE_INDEX) = at;
    mb();                                                   /* the index before the mask and read index */
    if (CTRL32(r, HV_RING_BUFFER_OFF_INTERRUPT_MASK) == 0 && CTRL32(r, HV_RING_BUFFER_OFF_READ_INDEX) == w)
        *signal = 1;
    return 1;
}

uint32_t vmbus_ring_avail(struct vmbus_ring *r)
{
    if (r->broken)
        return 0;
    long w = host_index(r, HV_RING_BUFFER_OFF_WRITE_INDEX);
    return w < 0 ? 0 : used(r, (uint32_t)w, r->own);
}

long vmbus_ring_read(struct vmbus_ring *r, uint8_t *buf, uint32_t cap, int *signal)
{
    uint8_t desc[VMPACKET_DESCRIPTOR_SIZE];
    struct vmbus_pkt k;
    *signal = 0;
    if (r->broken)
        return ERR_RANGE;
    long w = host_index(r, HV_RING_BUFFER_OFF_WRITE_INDEX);
    if (w < 0)
        return w;
    uint32_t avail = used(r, (uint32_t)w, r->own);
    if (avail == 0)
        return 0;
    rmb();                                                  /* the index before the data */
    if (avail < VMPACKET_DESCRIPTOR_SIZE + VMBUS_PACKET_TRAILER_SIZE) {
        r->broken = 1;                                      /* published, but not a packet */
        return ERR_RANGE;
    }
    copy_from_ring(r, r->own, desc, sizeof desc);
    if (vmbus_pkt_parse(desc, avail, &k)) {
        r->broken = 1;
        return ERR_RANGE;
    }
    int fits = k.len <= cap;
    if (fits)
        copy_from_ring(r, r->own, buf, k.len);
    uint32_t skip = ((k.len + VMBUS_PACKET_ALIGN - 1) & ~(VMBUS_PACKET_ALIGN - 1)) + VMBUS_PACKET_TRAILER_SIZE;
    if (skip > avail) {                                     /* the padding would run past what was published */
        r->broken = 1;
        return ERR_RANGE;
    }
    mb();                                                   /* done with the data before freeing it */
    r->own = (r->own + skip) % r->size;
    CTRL32(r, HV_RING_BUFFER_OFF_READ_INDEX) = r->own;
    mb();
    uint32_t pending = CTRL32(r, HV_RING_BUFFER_OFF_PENDING_SEND_SZ);
    if (pending) {
        /* ring_buffer.c hv_pkt_iter_close: free space crossed to above pending (the writer needs more free
         * than its packet). Free space from the write index read NOW, not the one this read began with:
         * the host may have filled the ring and set pending_send_sz since, and the stale index said it
         * was never short of room, so nobody signalled and the host waited on an empty ring. */
        w = host_index(r, HV_RING_BUFFER_OFF_WRITE_INDEX);
        if (w < 0)
            return w;
        uint32_t now = r->size - used(r, (uint32_t)w, r->own);
        uint32_t before = now > skip ? now - skip : 0;       /* the host wrote into what we freed: it saw it */
        if (before <= pending && now > pending)
            *signal = 1;
    }
    return fits ? (long)k.len : ERR_RANGE;
}

int vmbus_ring_set_mask(struct vmbus_ring *r, uint32_t mask)
{
    CTRL32(r, HV_RING_BUFFER_OFF_INTERRUPT_MASK) = mask;
    mb();                                                   /* then look again: no lost signal */
    return !mask && vmbus_ring_avail(r) != 0;
}
