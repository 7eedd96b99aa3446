/* hv_fuzz.c: mutated VMBus messages, SynIC slots and ring contents thrown at
 * the Track B kernel's hv/ parsers (hv_parse.c), ring code (vmbus_ring.c) and
 * VMBus client state machine (vmbus_client.c, stimer.c: SynIC slots, posts and
 * signals stubbed here) under ASan/UBSan. Every buffer is heap-allocated to
 * exactly the length the parser is given, so one byte read past it aborts.
 * Deterministic (seeded). Run with ASAN_OPTIONS=detect_leaks=0: a GPADL the
 * host never tears down keeps its pages on purpose (the host may still write them).
 *   hv_fuzz ITERATIONS SEED  -> "iterations=N parsed_ok=N rejected=N client_messages=N opens=N" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv/hv_parse.h"
#include "hv/stimer.h"
#include "hv/synic.h"
#include "hv/vmbus_client.h"
#include "hv/vmbus_ring.h"
#include "kernel/irq.h"
#include "kernel/memlayout.h"
#include "kernel/pmm.h"
#include "kernel/timer.h"
#include "kernel/vm.h"

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

/* ---- the client's surroundings: a hostile host behind stubbed SynIC and hypercalls ---- */
#define QUEUE 32
static uint8_t queue[QUEUE][HV_MESSAGE_SIZE];
static int q_head, q_len;
static uint64_t now_ns;
static long client_messages, opens;
int synic_irq_mode;

static void enqueue(const uint8_t *payload, uint8_t size, uint32_t type)
{
    if (q_len == QUEUE)
        return;
    uint8_t *slot = queue[(q_head + q_len++) % QUEUE];
    memset(slot, 0, HV_MESSAGE_SIZE);
    put32(slot, type);
    slot[HV_MESSAGE_HEADER_OFF_PAYLOAD_SIZE] = size;
    memcpy(slot + HV_MESSAGE_OFF_PAYLOAD, payload, size < HV_MESSAGE_PAYLOAD_SIZE ? size : HV_MESSAGE_PAYLOAD_SIZE);
}

int synic_take(unsigned sint, uint8_t out[HV_MESSAGE_SIZE])
{
    if (!q_len || (sint == SYNIC_TIMER_SINT && rnd() % 8))   /* the timer slot gets a share of the junk */
        return 0;
    memcpy(out, queue[q_head], HV_MESSAGE_SIZE);
    q_head = (q_head + 1) % QUEUE, q_len--;
    client_messages++;
    return 1;
}
int synic_event_take(unsigned sint, unsigned bit) { (void)sint, (void)bit; return (int)(rnd() & 1); }
void synic_idle(void) { now_ns += 1000000; }
void synic_set_tick_running(int running) { (void)running; }
int irq_register(unsigned vector, irq_handler h) { (void)vector, (void)h; return 0; }
uint64_t timer_now_ns(void) { return now_ns += 1000; }
uint64_t hv_time_100ns(void) { return now_ns / 100; }
int hv_wrmsr(uint32_t msr, uint64_t v) { (void)msr, (void)v; return 0; }
void kprintf(const char *fmt, ...) { (void)fmt; }
uint32_t hv_signal_event(uint32_t connection_id, uint16_t flag) { (void)connection_id, (void)flag; return 0; }

/* The "host" answers what the client posts: sometimes right, sometimes wrong, sometimes not at all. */
uint32_t hv_post_message(uint32_t connection_id, uint32_t message_type, const void *payload, uint32_t len)
{
    (void)connection_id, (void)message_type;
    uint8_t m[HV_MESSAGE_PAYLOAD_SIZE] = {0};
    const uint8_t *p = payload;
    uint32_t type, relid = 0, id = 0;
    if (len < 8)
        return HV_STATUS_SUCCESS;
    memcpy(&type, p, 4);
    if (type != CHANNELMSG_GPADL_TEARDOWN && rnd() % 8 == 0)   /* no answer (pages the host may hold are */
        return rnd() % 4 ? HV_STATUS_SUCCESS : HV_STATUS_INSUFFICIENT_BUFFERS;   /* never freed: keep that rare) */
    if (len >= 16)
        memcpy(&relid, p + 8, 4), memcpy(&id, p + 12, 4);
    switch (type) {
    case CHANNELMSG_INITIATE_CONTACT:
        put32(m, CHANNELMSG_VERSION_RESPONSE);
        m[8] = (uint8_t)(rnd() % 3 != 0), m[9] = (uint8_t)(rnd() % 8 == 0);
        put32(m + 12, rnd() % 4 ? 1 : rnd());
        enqueue(m, VMBUS_CHANNEL_VERSION_RESPONSE_SIZE, HVMSG_VMBUS);
        break;
    case CHANNELMSG_REQUESTOFFERS:
        for (int i = 0, n = (int)(rnd() % 4); i < n; i++) {
            memset(m, 0, sizeof m);
            put32(m, CHANNELMSG_OFFERCHANNEL);
            put32(m + VMBUS_CHANNEL_OFFER_CHANNEL_OFF_CHILD_RELID, rnd() % 20);
            m[VMBUS_CHANNEL_OFFER_CHANNEL_OFF_CHN_FLAGS + 1] = rnd() % 2 ? 0x20 : 0;
            enqueue(m, VMBUS_CHANNEL_OFFER_CHANNEL_SIZE, HVMSG_VMBUS);
        }
        put32(m, CHANNELMSG_ALLOFFERS_DELIVERED);
        enqueue(m, 8, HVMSG_VMBUS);
        break;
    case CHANNELMSG_GPADL_HEADER:
        put32(m, CHANNELMSG_GPADL_CREATED), put32(m + 8, relid), put32(m + 12, id), put32(m + 16, rnd() % 4 == 0);
        enqueue(m, VMBUS_CHANNEL_GPADL_CREATED_SIZE, HVMSG_VMBUS);
        break;
    case CHANNELMSG_OPENCHANNEL:
        put32(m, CHANNELMSG_OPENCHANNEL_RESULT), put32(m + 8, relid), put32(m + 12, rnd() % 4 ? relid : rnd());
        put32(m + 16, rnd() % 4 == 0);
        enqueue(m, VMBUS_CHANNEL_OPEN_RESULT_SIZE, HVMSG_VMBUS);
        break;
    case CHANNELMSG_GPADL_TEARDOWN:
        put32(m, CHANNELMSG_GPADL_TORNDOWN), put32(m + 8, rnd() % 64 ? id : rnd());
        enqueue(m, VMBUS_CHANNEL_GPADL_TORNDOWN_SIZE, HVMSG_VMBUS);
        break;
    case CHANNELMSG_UNLOAD:
        put32(m, CHANNELMSG_UNLOAD_RESPONSE);
        enqueue(m, 8, HVMSG_VMBUS);
        break;
    }
    return HV_STATUS_SUCCESS;
}

/* Pages: exact 4 KiB heap blocks, so the ring code's page walks are bounds-checked. */
uint64_t pmm_alloc_page(void) { return (uint64_t)(uintptr_t)aligned_alloc(PAGE_SIZE, PAGE_SIZE); }
void pmm_free_page(uint64_t pa) { free((void *)(uintptr_t)pa); }
void *phys_ptr(uint64_t pa, uint64_t len) { return len ? (void *)(uintptr_t)pa : NULL; }

static void fuzz_client(void)
{
    static struct hv_caps caps;
    if (!vmbus.connected) {
        vmbus_connect(&caps, 5000000);
        return;
    }
    uint8_t seed[HV_MESSAGE_PAYLOAD_SIZE];
    for (int i = 0, n = 1 + (int)(rnd() % 6); i < n; i++) {   /* unsolicited, mutated host messages */
        size_t len = seed_message(seed);
        enqueue(seed, rnd() % 8 ? (uint8_t)len : (uint8_t)rnd(),
                rnd() % 8 ? HVMSG_VMBUS : rnd() % 2 ? HVMSG_TIMER_EXPIRED : rnd());
    }
    vmbus_poll();
    for (int i = 0; i < VMBUS_MAX_CHANNELS; i++) {
        struct vmbus_chan *c = &vmbus.chan[i];
        if (c->state == CHAN_OFFERED && !c->claimed && rnd() % 2 && vmbus_open(c, 2 + rnd() % 4, 5000000) == 0) {
            opens++;
            put32((uint8_t *)c->in.ctrl + HV_RING_BUFFER_OFF_WRITE_INDEX, rnd() % 3 ? (rnd() % c->in.size) & ~7u : rnd());
            for (unsigned k = 0; k < 8; k++)                 /* host bytes in the ring */
                c->in.page[rnd() % (c->in.size / PAGE_SIZE)][rnd() % PAGE_SIZE] = (uint8_t)rnd();
            uint8_t buf[512];
            int signal;
            for (int k = 0; k < 8 && vmbus_ring_read(&c->in, buf, sizeof buf, &signal) > 0; k++)
                ;
            vmbus_close(c, 5000000);
        }
    }
    if (rnd() % 64 == 0)
        vmbus_unload(5000000);
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
        fuzz_client();
    }
    printf("iterations=%ld parsed_ok=%ld rejected=%ld client_messages=%ld opens=%ld\n", iterations, ok, rejected,
           client_messages, opens);
    return 0;
}
