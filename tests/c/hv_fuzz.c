/* hv_fuzz.c: mutated VMBus messages, SynIC slots and ring contents thrown at
 * the Track B kernel's hv/ parsers (hv_parse.c) and ring code (vmbus_ring.c)
 * under ASan/UBSan. Every buffer is heap-allocated to exactly the length the
 * parser is given, so one byte read past it aborts. Deterministic (seeded).
 *   hv_fuzz ITERATIONS SEED  -> prints "iterations=N parsed_ok=N rejected=N" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv/hv_parse.h"
#include "hv/vmbus_ring.h"
#include "kernel/memlayout.h"

void mb(void) { __sync_synchronize(); }
void rmb(void) { __sync_synchronize(); }
void wmb(void) { __sync_synchronize(); }

static uint64_t rng;
static uint32_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static const uint32_t host_types[] = {
    CHANNELMSG_VERSION_RESPONSE, CHANNELMSG_OFFERCHANNEL, CHANNELMSG_RESCIND_CHANNELOFFER,
    CHANNELMSG_ALLOFFERS_DELIVERED, CHANNELMSG_OPENCHANNEL_RESULT, CHANNELMSG_GPADL_CREATED,
    CHANNELMSG_GPADL_TORNDOWN, CHANNELMSG_UNLOAD_RESPONSE, CHANNELMSG_TL_CONNECT_RESULT, 99, 0,
};

/* A well-formed host message of a random type (the seed), then mutated. */
static size_t seed_message(uint8_t *m)
{
    uint32_t t = host_types[rnd() % (sizeof host_types / sizeof host_types[0])];
    size_t len = VMBUS_CHANNEL_OFFER_CHANNEL_SIZE;
    memset(m, 0, HV_MESSAGE_PAYLOAD_SIZE);
    put32(m, t);
    if (t == CHANNELMSG_OFFERCHANNEL) {
        put32(m + VMBUS_CHANNEL_OFFER_CHANNEL_OFF_CHILD_RELID, rnd() % 4096);
        put32(m + VMBUS_CHANNEL_OFFER_CHANNEL_OFF_CONNECTION_ID, rnd());
        m[VMBUS_CHANNEL_OFFER_CHANNEL_OFF_CHN_FLAGS + 1] = 0x20;
    } else {
        len = 8 + rnd() % 40;
        put32(m + 8, rnd() % 4096);
    }
    switch (rnd() % 4) {                               /* mutations */
    case 0: m[rnd() % HV_MESSAGE_PAYLOAD_SIZE] ^= (uint8_t)(1u << (rnd() % 8)); break;
    case 1: len = rnd() % (HV_MESSAGE_PAYLOAD_SIZE + 1); break;
    case 2: put32(m + 4 * (rnd() % (HV_MESSAGE_PAYLOAD_SIZE / 4)), rnd()); break;
    default: for (int i = 0; i < 8; i++) m[rnd() % HV_MESSAGE_PAYLOAD_SIZE] = (uint8_t)rnd(); break;
    }
    return len;
}

static long ok, rejected;

static void fuzz_message(void)
{
    uint8_t seed[HV_MESSAGE_PAYLOAD_SIZE];
    size_t len = seed_message(seed);
    /* As a SynIC slot: the header's payload_size may lie. */
    uint8_t *slot = malloc(HV_MESSAGE_SIZE);
    memset(slot, 0, HV_MESSAGE_SIZE);
    put32(slot, rnd() % 3 ? HVMSG_VMBUS : rnd());
    slot[HV_MESSAGE_HEADER_OFF_PAYLOAD_SIZE] = rnd() % 8 ? (uint8_t)len : (uint8_t)rnd();
    slot[HV_MESSAGE_HEADER_OFF_FLAGS] = (uint8_t)rnd();
    memcpy(slot + HV_MESSAGE_OFF_PAYLOAD, seed, HV_MESSAGE_PAYLOAD_SIZE);
    struct hv_msg hm;
    struct vmbus_msg m;
    if (hv_msg_parse(slot, HV_MESSAGE_SIZE, &hm) == 0) {
        /* The payload exactly as long as the header says, in its own allocation. */
        uint8_t *p = malloc(hm.size ? hm.size : 1);
        memcpy(p, hm.payload, hm.size);
        int err = vmbus_msg_parse(p, hm.size, &m);
        err ? rejected++ : ok++;
        if (!err && m.type == CHANNELMSG_OFFERCHANNEL && m.u.offer.relid > VMBUS_MAX_RELID)
            abort();                                   /* a relid beyond the event-flags area got through */
        struct hv_timer_msg t;
        hv_timer_msg_parse(p, hm.size, &t) ? rejected++ : ok++;
        uint32_t size;
        hvsock_payload_parse(p, hm.size, &size) ? rejected++ : ok++;
        free(p);
    } else {
        rejected++;
    }
    free(slot);
}

/* A ring of n data pages in separate allocations, with packets a host wrote
 * (well-formed, then mutated: descriptors, indices, padding, lengths). */
static void fuzz_ring(void)
{
    unsigned n = 1 + rnd() % 3;
    uint8_t *ctrl = calloc(1, PAGE_SIZE), *pages[VMBUS_RING_MAX_PAGES];
    for (unsigned i = 0; i < n; i++)
        pages[i] = malloc(PAGE_SIZE), memset(pages[i], (int)rnd(), PAGE_SIZE);
    struct vmbus_ring host, guest;
    vmbus_ring_init(&host, ctrl, pages, n);          /* the host's producer view of the same pages */
    int signal;
    for (int k = 0, c = (int)(rnd() % 6); k < c; k++) {
        uint8_t head[24] = {0}, body[300];
        uint32_t blen = rnd() % sizeof body;
        uint16_t type = VM_PKT_DATA_INBAND, off8 = 2, len8 = (uint16_t)((24 + blen + 7) / 8);
        memcpy(head, &type, 2), memcpy(head + 2, &off8, 2), memcpy(head + 4, &len8, 2);
        put32(head + 16, VMBUS_PIPE_MSG_DATA), put32(head + 20, blen);
        memset(body, (int)rnd(), sizeof body);
        put32(ctrl + HV_RING_BUFFER_OFF_READ_INDEX, 0);
        if (vmbus_ring_write(&host, head, sizeof head, body, blen, &signal) <= 0)
            break;
    }
    uint32_t w = host.own;
    /* Mutate what the host published. */
    switch (rnd() % 5) {
    case 0: put32(ctrl + HV_RING_BUFFER_OFF_WRITE_INDEX, rnd()); break;
    case 1: put32(ctrl + HV_RING_BUFFER_OFF_WRITE_INDEX, (rnd() % (n * PAGE_SIZE)) & ~7u); break;
    case 2: pages[0][rnd() % 16] = (uint8_t)rnd(); put32(ctrl, w); break;
    case 3: for (int i = 0; i < 16; i++) pages[rnd() % n][rnd() % PAGE_SIZE] = (uint8_t)rnd(); put32(ctrl, w); break;
    default: put32(ctrl, w); break;
    }
    put32(ctrl + HV_RING_BUFFER_OFF_READ_INDEX, 0);
    put32(ctrl + HV_RING_BUFFER_OFF_PENDING_SEND_SZ, rnd() % 2 ? rnd() : 0);
    memset(&guest, 0, sizeof guest);
    guest.ctrl = ctrl, guest.size = n * (uint32_t)PAGE_SIZE;
    for (unsigned i = 0; i < n; i++)
        guest.page[i] = pages[i];
    for (int k = 0; k < 16; k++) {                   /* read until empty or broken, boundedly */
        uint32_t cap = 16 + rnd() % 400;
        uint8_t *buf = malloc(cap);
        long r = vmbus_ring_read(&guest, buf, cap, &signal);
        if (r > 0) {
            struct vmbus_pkt pk;
            uint32_t size;
            if (vmbus_pkt_parse(buf, (uint32_t)r + VMBUS_PACKET_TRAILER_SIZE, &pk) == 0 &&
                hvsock_payload_parse(buf + pk.payload_off, pk.payload_len, &size) == 0)
                ok++;
            else
                rejected++;
        } else if (r < 0) {
            rejected++;
        }
        free(buf);
        if (r == 0 || guest.broken)
            break;
        if (guest.own >= guest.size)
            abort();                                   /* our own index left the ring */
    }
    /* The guest as producer against a hostile read index. */
    put32(ctrl + HV_RING_BUFFER_OFF_READ_INDEX, rnd() % 3 ? rnd() : 0);
    guest.broken = 0;
    uint8_t body[64] = {0};
    vmbus_ring_write(&guest, body, 16, body, rnd() % sizeof body, &signal);
    if (guest.own >= guest.size)
        abort();
    for (unsigned i = 0; i < n; i++)
        free(pages[i]);
    free(ctrl);
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? atol(argv[1]) : 100000;
    rng = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x9E3779B97F4A7C15ULL;
    if (!rng)
        rng = 1;
    for (long i = 0; i < iterations; i++) {
        fuzz_message();
        fuzz_ring();
    }
    printf("iterations=%ld parsed_ok=%ld rejected=%ld\n", iterations, ok, rejected);
    return 0;
}
