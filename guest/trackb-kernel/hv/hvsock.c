/* hvsock.c: see hvsock.h. Packets are copied out of the ring whole
 * (vmbus_ring_read) and parsed from that copy; stream bytes are served from
 * it until used up. */
#include "hv/hvsock.h"
#include "hv/synic.h"
#include "kernel/console.h"
#include "kernel/errno.h"
#include "kernel/klib.h"
#include "kernel/timer.h"
#include "platform/platform.h"

#define CONNECT_TIMEOUT_NS 2000000000ULL   /* the host's offer after TlConnectRequest */
#define OPEN_TIMEOUT_NS 2000000000ULL
#define CLOSE_TIMEOUT_NS 500000000ULL
#define RETRY_MIN_NS 100000000ULL          /* back-off between attempts: 100 ms ... */
#define RETRY_MAX_NS 2000000000ULL         /* ... to 2 s */
#define LOCAL_PORT_BASE 0x80000000u        /* our ephemeral endpoints */
#define SPIN_NS 300000ULL                  /* an idle agent polls its ring this long before it halts ... */
#define SPIN_RECENT_NS 10000000ULL         /* ... when a packet came this recently (else it halts at once) */

static uint32_t next_local_port = LOCAL_PORT_BASE;

void hvsock_port_guid(uint32_t port, uint8_t g[VMBUS_GUID_SIZE])
{
    uint16_t d2 = VMBUS_HVSOCK_GUID_DATA2, d3 = VMBUS_HVSOCK_GUID_DATA3;
    memcpy(g, &port, 4);                                /* data1..3 little-endian */
    memcpy(g + 4, &d2, 2);
    memcpy(g + 6, &d3, 2);
    for (int i = 0; i < 8; i++)                         /* data4: byte 0 first */
        g[8 + i] = (uint8_t)(VMBUS_HVSOCK_GUID_DATA4 >> (56 - 8 * i));
}

static void start_connect(struct hvsock *s)
{
    uint8_t m[VMBUS_CHANNEL_TL_CONNECT_REQUEST_SIZE] = {0};
    uint32_t type = CHANNELMSG_TL_CONNECT_REQUEST;
    s->local_port = next_local_port++;
    memcpy(m, &type, 4);
    hvsock_port_guid(s->local_port, m + VMBUS_CHANNEL_TL_CONNECT_REQUEST_OFF_GUEST_ENDPOINT_ID);
    hvsock_port_guid(s->port, m + VMBUS_CHANNEL_TL_CONNECT_REQUEST_OFF_HOST_SERVICE_ID);
    s->state = HVSOCK_CONNECTING;
    s->connect_started_ns = timer_now_ns();
    if (vmbus_post(m, sizeof m))
        s->connect_started_ns = 0;                      /* treat as timed out: back off and retry */
}

static void back_off(struct hvsock *s)
{
    uint64_t d = RETRY_MIN_NS << (s->failures < 5 ? s->failures : 5);
    s->failures++;
    s->retry_at_ns = timer_now_ns() + (d < RETRY_MAX_NS ? d : RETRY_MAX_NS);
    s->state = HVSOCK_IDLE;
}

static void drop(struct hvsock *s, const char *why)
{
    kprintf("hvsock: port %u stream closed (%s)\n", s->port, why);
    if (s->chan)
        vmbus_close(s->chan, CLOSE_TIMEOUT_NS);
    s->chan = NULL;
    s->rx_off = s->rx_len = 0;
    back_off(s);
}

void hvsock_init(struct hvsock *s, uint32_t port, uint8_t *rx_buf, uint32_t rx_cap)
{
    memset(s, 0, sizeof *s);
    s->port = port;
    s->rx_pkt = rx_buf;
    s->rx_cap = rx_cap;
    s->ring_pages = VMBUS_HVSOCK_RING_PAGES;
    s->state = HVSOCK_IDLE;
}

/* An offer for our service: the answer to our TlConnectRequest (instance =
 * our endpoint), or a host-initiated connection (any instance). */
static struct vmbus_chan *our_offer(struct hvsock *s)
{
    uint8_t service[VMBUS_GUID_SIZE], endpoint[VMBUS_GUID_SIZE];
    hvsock_port_guid(s->port, service);
    struct vmbus_chan *c = NULL;
    if (s->state == HVSOCK_CONNECTING) {
        hvsock_port_guid(s->local_port, endpoint);
        c = vmbus_find_offer(service, endpoint);
    }
    if (!c)
        c = vmbus_find_offer(service, NULL);
    return c && (c->offer.flags & VMBUS_OFFER_TLNPI_PROVIDER_OFFER) ? c : NULL;
}

static void open_offer(struct hvsock *s, struct vmbus_chan *c)
{
    if (vmbus_open(c, s->ring_pages, OPEN_TIMEOUT_NS)) {
        back_off(s);
        return;
    }
    s->chan = c;
    s->state = HVSOCK_OPEN;
    s->failures = 0;
    s->rx_off = s->rx_len = 0;
    s->connects++;
    kprintf("hvsock: port %u open on channel %u (connection %u)\n", s->port, c->offer.relid, s->connects);
}

void hvsock_poll(struct hvsock *s)
{
    vmbus_poll();
    if (!vmbus.connected)
        return;
    if (s->state == HVSOCK_OPEN) {
        if (s->chan->rescinded)
            drop(s, "rescinded");
        else if (s->chan->in.broken || s->chan->out.broken)
            drop(s, "impossible ring index or packet");
        else
            vmbus_event_take(s->chan);                  /* the ring itself says whether there is data */
        return;
    }
    struct vmbus_chan *c = our_offer(s);
    if (c) {
        open_offer(s, c);
        return;
    }
    uint64_t now = timer_now_ns();
    uint8_t endpoint[VMBUS_GUID_SIZE];
    hvsock_port_guid(s->local_port, endpoint);
    if (s->state == HVSOCK_CONNECTING && vmbus.tl_refusals != s->refusals_seen) {
        s->refusals_seen = vmbus.tl_refusals;
        if (!memcmp(vmbus.tl_refused_endpoint, endpoint, VMBUS_GUID_SIZE))
            back_off(s);                                /* nobody listens there (yet) */
    } else if (s->state == HVSOCK_CONNECTING && now - s->connect_started_ns > CONNECT_TIMEOUT_NS)
        back_off(s);                                    /* no offer came */
    else if (s->state == HVSOCK_IDLE && now >= s->retry_at_ns)
        start_connect(s);
}

int hvsock_wait_open(struct hvsock *s, uint64_t timeout_ns)
{
    uint64_t deadline = timer_now_ns() + timeout_ns;
    for (;;) {
        hvsock_poll(s);
        if (s->state == HVSOCK_OPEN)
            return 0;
        if (timer_now_ns() >= deadline)
            return ERR_TIMEDOUT;
        synic_idle();
    }
}

/* The next data packet into rx_pkt; 1 if there are stream bytes, 0 if none. */
static int next_packet(struct hvsock *s)
{
    struct vmbus_chan *c = s->chan;
    for (int budget = 0; budget < 64; budget++) {       /* skip what is not stream data, boundedly */
        int signal;
        long n = vmbus_ring_read(&c->in, s->rx_pkt, s->rx_cap, &signal);
        if (signal)
            vmbus_signal(c);
        if (n == 0)
            return 0;
        if (n < 0) {
            s->bad_packets++;
            if (c->in.broken)
                return 0;                               /* hvsock_poll drops the stream */
            continue;                                   /* too long: skipped */
        }
        struct vmbus_pkt k;
        uint32_t size;
        if (vmbus_pkt_parse(s->rx_pkt, (uint32_t)n + VMBUS_PACKET_TRAILER_SIZE, &k) || k.type != VM_PKT_DATA_INBAND ||
            hvsock_payload_parse(s->rx_pkt + k.payload_off, k.payload_len, &size)) {
            s->bad_packets++;
            continue;
        }
        if (size == 0) {                                /* the host closed its end */
            drop(s, "peer closed");
            return 0;
        }
        s->rx_off = k.payload_off + VMPIPE_PROTO_HEADER_SIZE;
        s->rx_len = size;
        return 1;
    }
    return 0;
}

long hvsock_read(struct hvsock *s, void *buf, size_t cap)
{
    hvsock_poll(s);
    if (s->state != HVSOCK_OPEN)
        return 0;
    if (!s->rx_len && !next_packet(s))
        return 0;
    s->last_rx_ns = timer_now_ns();
    size_t n = s->rx_len < cap ? s->rx_len : cap;
    memcpy(buf, s->rx_pkt + s->rx_off, n);
    s->rx_off += (uint32_t)n, s->rx_len -= (uint32_t)n;
    return (long)n;
}

/* As Linux's hv_sock polls before it sleeps: while the host is talking, spin
 * on the ring with interrupt_mask set, so the host's packets arrive without an
 * interrupt (the host skips the signal). Before halting, unmask and look once
 * more: a packet written before the host saw the mask 0 is not missed. */
void hvsock_idle(struct hvsock *s)
{
    struct vmbus_ring *in = s->state == HVSOCK_OPEN && synic_irq_mode ? &s->chan->in : NULL;
    if (in && timer_now_ns() - s->last_rx_ns < SPIN_RECENT_NS) {
        vmbus_ring_set_mask(in, 1);
        for (uint64_t t0 = timer_now_ns(); timer_now_ns() - t0 < SPIN_NS;) {
            if (vmbus_ring_avail(in) || in->broken)
                return;                                 /* still masked: the caller reads it */
            cpu_relax();
        }
    }
    if (in && vmbus_ring_set_mask(in, 0))
        return;                                         /* arrived while we unmasked */
    vmbus_wait();
}

long hvsock_write(struct hvsock *s, const void *buf, size_t len, uint64_t timeout_ns)
{
    const uint8_t *p = buf;
    uint64_t deadline = timer_now_ns() + timeout_ns;
    while (len) {
        if (s->state != HVSOCK_OPEN)
            return p == buf ? -1 : (long)(p - (const uint8_t *)buf);
        uint32_t n = len < VMBUS_HVSOCK_MTU ? (uint32_t)len : VMBUS_HVSOCK_MTU;
        uint8_t head[VMPACKET_DESCRIPTOR_SIZE + VMPIPE_PROTO_HEADER_SIZE] = {0};
        uint16_t type = VM_PKT_DATA_INBAND, off8 = VMPACKET_DESCRIPTOR_SIZE / 8;
        uint16_t len8 = (uint16_t)((sizeof head + n + 7) / 8);
        uint32_t pipe_type = VMBUS_PIPE_MSG_DATA;
        memcpy(head + VMPACKET_DESCRIPTOR_OFF_TYPE, &type, 2);
        memcpy(head + VMPACKET_DESCRIPTOR_OFF_OFFSET8, &off8, 2);
        memcpy(head + VMPACKET_DESCRIPTOR_OFF_LEN8, &len8, 2);
        memcpy(head + VMPACKET_DESCRIPTOR_SIZE + VMPIPE_PROTO_HEADER_OFF_PKT_TYPE, &pipe_type, 4);
        memcpy(head + VMPACKET_DESCRIPTOR_SIZE + VMPIPE_PROTO_HEADER_OFF_DATA_SIZE, &n, 4);
        int signal;
        int r = vmbus_ring_write(&s->chan->out, head, sizeof head, p, n, &signal);
        if (r < 0) {
            drop(s, "impossible ring index");
            return p == buf ? -1 : (long)(p - (const uint8_t *)buf);
        }
        if (r == 0) {                                   /* full: the host signals when there is room */
            if (timer_now_ns() >= deadline)
                return (long)(p - (const uint8_t *)buf);   /* the caller keeps the rest */
            vmbus_wait();
            hvsock_poll(s);
            continue;
        }
        if (signal)
            vmbus_signal(s->chan);
        p += n, len -= n;
    }
    return (long)(p - (const uint8_t *)buf);
}

/* ---- doorbell streams (aux ports) ---- */
void hvsock_aux_init(struct hvsock_aux *a, const uint32_t *ports, unsigned n)
{
    memset(a, 0, sizeof *a);
    a->n = n < HVSOCK_AUX_MAX ? n : HVSOCK_AUX_MAX;
    for (unsigned k = 0; k < a->n; k++) {
        hvsock_init(&a->s[k], ports[k], a->rx[k], HVSOCK_AUX_PKT_MAX);
        a->s[k].ring_pages = HVSOCK_AUX_RING_PAGES;
        hvsock_poll(&a->s[k]);                      /* the TlConnectRequest goes now */
    }
}

/* Read and count what waits on slot k (boundedly): the count, or -1 when closed and none held. */
static long aux_take(struct hvsock_aux *a, unsigned k)
{
    uint8_t b[64];
    long n;
    for (int budget = 0; budget < 64 && (n = hvsock_read(&a->s[k], b, sizeof b)) > 0; budget++)
        a->held[k] += (uint32_t)n;
    return a->held[k] || a->s[k].state == HVSOCK_OPEN ? (long)a->held[k] : -1;
}

static int aux_send(void *dev, unsigned k, uint8_t b)
{
    struct hvsock_aux *a = dev;
    if (k >= a->n || a->s[k].state != HVSOCK_OPEN)
        return -1;
    long n = hvsock_write(&a->s[k], &b, 1, 0);      /* a full ring: dropped (doorbells are hints) */
    return n < 0 ? -1 : (int)n;
}

static long aux_drain(void *dev, unsigned k)
{
    struct hvsock_aux *a = dev;
    if (k >= a->n)
        return -1;
    long n = aux_take(a, k);
    a->held[k] = 0;
    return n;
}

/* Open streams with news are read now (a host's close is noticed, and the stream redialled,
 * without a reader); the others take their next connection step. */
static void aux_idle(void *dev)
{
    struct hvsock_aux *a = dev;
    for (unsigned k = 0; k < a->n; k++) {
        struct hvsock *s = &a->s[k];
        if (s->state == HVSOCK_IDLE && timer_now_ns() < s->retry_at_ns)
            continue;                               /* backing off (nobody listens): nothing to do yet */
        if (s->state != HVSOCK_OPEN)
            hvsock_poll(s);
        else if (s->rx_len || vmbus_ring_avail(&s->chan->in) || s->chan->rescinded || s->chan->in.broken)
            aux_take(a, k);
    }
}

const struct aux_port_ops hvsock_aux_ops = { aux_send, aux_drain, aux_idle };
