/* hvrelay.c: the hvsim model's native hv_sock hot path (see hvrelay.h).
 *
 * Layouts come from the generated headers (vmbus.h, hyperv.h, hvsim.h, from wslx.spec); the
 * ring rules are ring.py's (Linux 6.1 drivers/hv/ring_buffer.c is the guest side) and the
 * hv_sock stream rules hvsock.py's; tests hold the two to the same bytes. Guest memory is
 * hostile: indices and lengths are checked against the ring size before any access, and a
 * ring that breaks a rule stops its channel (HVR_NOTE_BROKEN), nothing else. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hvsim.h"
#include "hyperv.h"
#include "vmbus.h"
#include "hvrelay.h"

#define MAX_CHANNELS 64
#define TICK_MS 50                /* a channel stalled this long with data waiting gets a look (a rescue) */

static const char *const errnames[] = {
    [0] = "ok", [1] = "index outside the data area or unaligned", [2] = "not a whole packet",
    [3] = "impossible packet descriptor", [4] = "not hv_sock pipe data", [5] = "pipe data_size beyond the packet",
    [6] = "bad argument", [7] = "out of memory", [8] = "system call failed",
};

const char *hvr_strerror(int code)
{
    if (code > 0)
        return "ok";
    if (-code >= (int)(sizeof errnames / sizeof errnames[0]))
        return "unknown error";
    return errnames[-code];
}

/* ---- rings ------------------------------------------------------------------------------ */

struct hvr_ring {
    uint8_t *ctrl;
    uint8_t **pages;
    uint32_t npages;
    uint32_t size;
};

static inline uint32_t ld32(const uint8_t *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE); }
static inline void st32(uint8_t *p, uint32_t v) { __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE); }
static inline void mb(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

struct hvr_ring *hvr_ring_new(uint8_t *base, uint64_t len, const uint64_t *offsets, uint32_t n)
{
    struct hvr_ring *r;

    if (n < 2 || (uint64_t)(n - 1) * HV_PAGE_SIZE > UINT32_MAX / 2)
        return NULL;
    for (uint32_t i = 0; i < n; i++)
        if (offsets[i] > len || len - offsets[i] < HV_PAGE_SIZE)
            return NULL;
    r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->pages = calloc(n - 1, sizeof *r->pages);
    if (!r->pages) {
        free(r);
        return NULL;
    }
    r->ctrl = base + offsets[0];
    for (uint32_t i = 1; i < n; i++)
        r->pages[i - 1] = base + offsets[i];
    r->npages = n - 1;
    r->size = (n - 1) * HV_PAGE_SIZE;
    return r;
}

void hvr_ring_free(struct hvr_ring *r)
{
    if (r)
        free(r->pages);
    free(r);
}

uint32_t hvr_ring_size(const struct hvr_ring *r) { return r->size; }

uint32_t hvr_packet_size(uint32_t payload_len)
{
    return VMPACKET_DESCRIPTOR_SIZE + ((payload_len + VMBUS_PACKET_ALIGN - 1) & ~(VMBUS_PACKET_ALIGN - 1)) +
           VMBUS_PACKET_TRAILER_SIZE;
}

static int indices(const struct hvr_ring *r, uint32_t *w, uint32_t *rd)
{
    *w = ld32(r->ctrl + HV_RING_BUFFER_OFF_WRITE_INDEX);
    *rd = ld32(r->ctrl + HV_RING_BUFFER_OFF_READ_INDEX);
    if (*w >= r->size || *rd >= r->size || (*w | *rd) % VMBUS_PACKET_ALIGN)
        return HVR_E_INDEX;
    return HVR_OK;
}

/* n bytes at ring offset off (< size), wrapping at the end; n <= size */
static void copy_out(const struct hvr_ring *r, uint32_t off, uint8_t *dst, uint32_t n)
{
    while (n) {
        uint32_t page = off / HV_PAGE_SIZE, within = off % HV_PAGE_SIZE;
        uint32_t take = HV_PAGE_SIZE - within < n ? HV_PAGE_SIZE - within : n;
        memcpy(dst, r->pages[page] + within, take);
        dst += take;
        n -= take;
        off = (off + take) % r->size;
    }
}

static uint32_t copy_in(struct hvr_ring *r, uint32_t off, const uint8_t *src, uint32_t n)
{
    while (n) {
        uint32_t page = off / HV_PAGE_SIZE, within = off % HV_PAGE_SIZE;
        uint32_t take = HV_PAGE_SIZE - within < n ? HV_PAGE_SIZE - within : n;
        if (src)
            memcpy(r->pages[page] + within, src, take);
        else
            memset(r->pages[page] + within, 0, take);
        if (src)
            src += take;
        n -= take;
        off = (off + take) % r->size;
    }
    return off;
}

int hvr_ring_peek(struct hvr_ring *r, uint16_t *type, uint16_t *flags, uint64_t *trans_id, uint8_t *payload,
                  uint32_t cap, uint32_t *plen, uint32_t *next_read)
{
    uint8_t d[VMPACKET_DESCRIPTOR_SIZE];
    uint32_t w, rd, avail, off8, len8, total;
    int err = indices(r, &w, &rd);

    if (err)
        return err;
    avail = w >= rd ? w - rd : r->size - rd + w;
    if (avail == 0)
        return 0;
    if (avail < VMPACKET_DESCRIPTOR_SIZE + VMBUS_PACKET_TRAILER_SIZE)
        return HVR_E_PARTIAL;
    copy_out(r, rd, d, sizeof d);
    off8 = d[VMPACKET_DESCRIPTOR_OFF_OFFSET8] | d[VMPACKET_DESCRIPTOR_OFF_OFFSET8 + 1] << 8;
    len8 = d[VMPACKET_DESCRIPTOR_OFF_LEN8] | d[VMPACKET_DESCRIPTOR_OFF_LEN8 + 1] << 8;
    total = len8 * 8;
    if (off8 * 8 < VMPACKET_DESCRIPTOR_SIZE || off8 > len8 || (uint64_t)total + VMBUS_PACKET_TRAILER_SIZE > avail)
        return HVR_E_DESC;
    memcpy(type, d + VMPACKET_DESCRIPTOR_OFF_TYPE, 2);
    memcpy(flags, d + VMPACKET_DESCRIPTOR_OFF_FLAGS, 2);
    memcpy(trans_id, d + VMPACKET_DESCRIPTOR_OFF_TRANS_ID, 8);
    *plen = total - off8 * 8;
    copy_out(r, (rd + off8 * 8) % r->size, payload, *plen < cap ? *plen : cap);
    *next_read = (rd + total + VMBUS_PACKET_TRAILER_SIZE) % r->size;
    return 1;
}

int hvr_ring_commit(struct hvr_ring *r, uint32_t next_read)
{
    uint32_t w, rd, pending, freed, free_before, free_now;
    int err = indices(r, &w, &rd);

    if (err)
        return err;
    freed = next_read >= rd ? next_read - rd : r->size - rd + next_read;
    st32(r->ctrl + HV_RING_BUFFER_OFF_READ_INDEX, next_read);
    mb();                         /* read_index out before pending_send_sz in (ring_buffer.c hv_pkt_iter_close) */
    pending = ld32(r->ctrl + HV_RING_BUFFER_OFF_PENDING_SEND_SZ);
    if (!pending)
        return HVR_OK;
    /* free space from the write index read now (hv_get_bytes_to_write): the guest may have filled the
     * ring and set pending_send_sz since the one above, which would say it was never short of room */
    err = indices(r, &w, &rd);
    if (err)
        return err;
    free_now = r->size - (w >= next_read ? w - next_read : r->size - next_read + w);
    free_before = free_now > freed ? free_now - freed : 0;
    return free_now > pending && pending >= free_before ? HVR_SIGNAL : HVR_OK;
}

int hvr_ring_write(struct hvr_ring *r, uint16_t type, const uint8_t *head, uint32_t head_len, const uint8_t *data,
                   uint32_t data_len, uint64_t trans_id, uint16_t flags)
{
    uint8_t d[VMPACKET_DESCRIPTOR_SIZE];
    uint32_t w, rd, total, len, off;
    uint64_t trailer;
    uint16_t off8 = VMPACKET_DESCRIPTOR_SIZE / 8, len8;
    int err;

    if ((uint64_t)head_len + data_len > r->size)
        return HVR_FULL;
    len = head_len + data_len;
    total = hvr_packet_size(len);
    err = indices(r, &w, &rd);
    if (err)
        return err;
    if (r->size - (w >= rd ? w - rd : r->size - rd + w) <= total)
        return HVR_FULL;          /* never fill the ring completely */
    len8 = (uint16_t)((total - VMBUS_PACKET_TRAILER_SIZE) / 8);
    memcpy(d + VMPACKET_DESCRIPTOR_OFF_TYPE, &type, 2);
    memcpy(d + VMPACKET_DESCRIPTOR_OFF_OFFSET8, &off8, 2);
    memcpy(d + VMPACKET_DESCRIPTOR_OFF_LEN8, &len8, 2);
    memcpy(d + VMPACKET_DESCRIPTOR_OFF_FLAGS, &flags, 2);
    memcpy(d + VMPACKET_DESCRIPTOR_OFF_TRANS_ID, &trans_id, 8);
    off = copy_in(r, w, d, sizeof d);
    off = copy_in(r, off, head, head_len);
    off = copy_in(r, off, data, data_len);
    off = copy_in(r, off, NULL, total - VMBUS_PACKET_TRAILER_SIZE - VMPACKET_DESCRIPTOR_SIZE - len);
    trailer = (uint64_t)w << 32;
    off = copy_in(r, off, (const uint8_t *)&trailer, sizeof trailer);
    st32(r->ctrl + HV_RING_BUFFER_OFF_WRITE_INDEX, off);
    mb();                         /* write_index out before interrupt_mask and read_index in (hv_signal_on_write) */
    return ld32(r->ctrl + HV_RING_BUFFER_OFF_INTERRUPT_MASK) == 0 &&
           ld32(r->ctrl + HV_RING_BUFFER_OFF_READ_INDEX) == w ? HVR_SIGNAL : HVR_OK;
}

void hvr_ring_want_space(struct hvr_ring *r, uint32_t total)
{
    if (ld32(r->ctrl + HV_RING_BUFFER_OFF_FEATURE_BITS) & VMBUS_RING_FEATURE_PENDING_SEND_SIZE)
        st32(r->ctrl + HV_RING_BUFFER_OFF_PENDING_SEND_SZ, total);
    mb();                         /* pending_send_sz out before the caller looks at read_index again */
}

void hvr_ring_clear_want(struct hvr_ring *r)
{
    if (ld32(r->ctrl + HV_RING_BUFFER_OFF_PENDING_SEND_SZ))
        st32(r->ctrl + HV_RING_BUFFER_OFF_PENDING_SEND_SZ, 0);
}

/* ---- the relay -------------------------------------------------------------------------- */

struct chan {
    uint32_t relid, conn_id;
    int sock;
    struct hvr_ring *rx, *tx;     /* guest-to-host, host-to-guest */
    uint8_t *pkt;                 /* one packet's payload (rx size) */
    uint8_t *to_host;             /* guest bytes the socket has not taken */
    uint32_t to_host_len, to_host_limit;
    uint8_t *from_host;
    uint32_t from_host_len, from_host_limit;
    uint32_t chunk;               /* host bytes per packet (hvsock.py packet_chunk) */
    uint64_t moved, moved_at_tick; /* ring bytes both ways; the count at the last tick */
    int guest_closed, host_closed, eof_sent, shut_wr;
    int err;
    char msg[200];
};

struct hvr {
    pthread_mutex_t mu;
    pthread_t thread;
    int started, stop;
    uint8_t *shm, *ram;
    uint64_t shm_size, ram_size;
    int trap_efd, ctl_efd, note_fd;
    int guest_efd[HVSIM_MSIX_VECTORS];
    uint32_t n_guest_efd;
    int64_t sief;                 /* RAM offset of the message SINT's event-flag area, or -1 */
    uint64_t sint_reg;
    int signal_ok;
    uint32_t forwarded;           /* the request seq the Python model owns */
    int forwarding;
    hvr_trap_fn trap_fn;          /* answers a forwarded trap on this thread (no second wake-up), or NULL */
    uint64_t answered, nforwarded, injected, dropped, answer_irqs, to_host, to_guest;
    uint64_t rescues;             /* ticks that moved data no event moved: each one a lost wake-up */
    struct chan *ch[MAX_CHANNELS];
};

static void note(struct hvr *h, uint32_t kind, uint32_t value)
{
    struct hvr_note n = {kind, value};
    ssize_t r;

    do
        r = write(h->note_fd, &n, sizeof n);   /* 8 bytes: atomic on a pipe */
    while (r < 0 && errno == EINTR);
}

static void raise_entry(struct hvr *h, uint32_t i)
{
    uint64_t one = 1;
    ssize_t r;

    r = write(h->guest_efd[i], &one, sizeof one);
    (void)r;
}

/* Model.inject + raise_pending: MSI-X entry (vector - msix_vector_base), then bump irq_seq */
static void inject(struct hvr *h, uint32_t vector)
{
    uint32_t base = ld32(h->shm + HVSIM_BLOCK_OFF_MSIX_VECTOR_BASE);
    uint32_t count = ld32(h->shm + HVSIM_BLOCK_OFF_MSIX_VECTORS);
    uint32_t lim = count < h->n_guest_efd ? count : h->n_guest_efd;

    if (!base || vector < base || vector - base >= lim) {
        h->dropped++;
        return;
    }
    h->injected++;
    raise_entry(h, vector - base);
    __atomic_fetch_add((uint32_t *)(h->shm + HVSIM_BLOCK_OFF_IRQ_SEQ), 1, __ATOMIC_SEQ_CST);
}

/* VmbusHost.signal_guest -> SynIC.signal_event(message SINT, relid) */
static void signal_guest(struct hvr *h, struct chan *c)
{
    if (h->sief < 0 || c->relid >= HV_EVENT_FLAGS_BYTES * 8)
        return;
    __atomic_fetch_or(h->ram + h->sief + c->relid / 8, (uint8_t)(1u << (c->relid % 8)), __ATOMIC_SEQ_CST);
    if (h->sint_reg & (HV_SINT_MASKED | HV_SINT_POLLING))
        return;
    inject(h, (uint32_t)(h->sint_reg & HV_SINT_VECTOR_MASK));
}

static int broken(struct chan *c, int err, const char *what)
{
    if (!c->err) {
        c->err = err;
        snprintf(c->msg, sizeof c->msg, "relid %u %s: %s", c->relid, what, hvr_strerror(err));
    }
    return err;
}

/* HvSockBridge._guest_to_host */
static int guest_to_host(struct hvr *h, struct chan *c)
{
    uint16_t type, flags;
    uint64_t tid;
    uint32_t plen, next, ptype, size;
    int r;

    while (c->to_host_len < c->to_host_limit && !c->guest_closed) {
        r = hvr_ring_peek(c->rx, &type, &flags, &tid, c->pkt, c->rx->size, &plen, &next);
        if (r == 0)
            break;
        if (r < 0)
            return broken(c, r, "guest-to-host ring");
        if (type != VM_PKT_DATA_INBAND || plen < VMPIPE_PROTO_HEADER_SIZE)
            return broken(c, HVR_E_PIPE, "guest-to-host ring");
        memcpy(&ptype, c->pkt + VMPIPE_PROTO_HEADER_OFF_PKT_TYPE, 4);
        memcpy(&size, c->pkt + VMPIPE_PROTO_HEADER_OFF_DATA_SIZE, 4);
        if (ptype != VMBUS_PIPE_MSG_DATA)
            return broken(c, HVR_E_PIPE, "guest-to-host ring");
        if (size > plen - VMPIPE_PROTO_HEADER_SIZE)
            return broken(c, HVR_E_PIPE_SIZE, "guest-to-host ring");
        if (size == 0)
            c->guest_closed = 1;
        memcpy(c->to_host + c->to_host_len, c->pkt + VMPIPE_PROTO_HEADER_SIZE, size);
        c->to_host_len += size;
        c->moved += size;
        h->to_host += size;
        r = hvr_ring_commit(c->rx, next);
        if (r < 0)
            return broken(c, r, "guest-to-host ring");
        if (r == HVR_SIGNAL)
            signal_guest(h, c);
    }
    return 0;
}

/* HvSockBridge._flush_to_host */
static void flush_to_host(struct chan *c)
{
    uint32_t done = 0;

    while (done < c->to_host_len) {
        ssize_t n = send(c->sock, c->to_host + done, c->to_host_len - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) {             /* the host went away: nobody will read this */
            done = c->to_host_len;
            c->host_closed = 1;
            break;
        }
        done += (uint32_t)n;
    }
    if (done) {
        memmove(c->to_host, c->to_host + done, c->to_host_len - done);
        c->to_host_len -= done;
    }
    if (c->guest_closed && !c->to_host_len && !c->shut_wr) {
        shutdown(c->sock, SHUT_WR);
        c->shut_wr = 1;
    }
}

static int wants_read(const struct chan *c)
{
    return !c->err && !c->host_closed && c->from_host_len < c->from_host_limit;
}

/* HvSockBridge._read_host */
static void read_host(struct chan *c)
{
    ssize_t n;

    if (!wants_read(c))
        return;
    do
        n = recv(c->sock, c->from_host + c->from_host_len, c->from_host_limit - c->from_host_len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0)
        c->host_closed = 1;
    else
        c->from_host_len += (uint32_t)n;
}

/* HvSockBridge._send_packet: 1 sent, 0 no room, <0 broken */
static int send_packet(struct hvr *h, struct chan *c, const uint8_t *data, uint32_t len)
{
    uint8_t head[VMPIPE_PROTO_HEADER_SIZE];
    uint32_t t = VMBUS_PIPE_MSG_DATA;
    int r;

    memcpy(head + VMPIPE_PROTO_HEADER_OFF_PKT_TYPE, &t, 4);
    memcpy(head + VMPIPE_PROTO_HEADER_OFF_DATA_SIZE, &len, 4);
    r = hvr_ring_write(c->tx, VM_PKT_DATA_INBAND, head, sizeof head, data, len, 0, 0);
    if (r == HVR_FULL) {
        /* the guest may have drained the ring before it could see pending_send_sz: look again after */
        hvr_ring_want_space(c->tx, hvr_packet_size(sizeof head + len));
        r = hvr_ring_write(c->tx, VM_PKT_DATA_INBAND, head, sizeof head, data, len, 0, 0);
        if (r == HVR_FULL)
            return 0;
    }
    if (r < 0)
        return broken(c, r, "host-to-guest ring");
    hvr_ring_clear_want(c->tx);
    if (r == HVR_SIGNAL)
        signal_guest(h, c);
    return 1;
}

/* HvSockBridge._host_to_guest */
static int host_to_guest(struct hvr *h, struct chan *c)
{
    uint32_t chunk = c->chunk, done = 0;
    int r = 0;

    while (done < c->from_host_len) {
        uint32_t part = c->from_host_len - done < chunk ? c->from_host_len - done : chunk;
        r = send_packet(h, c, c->from_host + done, part);
        if (r <= 0)
            break;
        done += part;
        c->moved += part;
        h->to_guest += part;
    }
    if (done) {
        memmove(c->from_host, c->from_host + done, c->from_host_len - done);
        c->from_host_len -= done;
    }
    if (r < 0)
        return r;
    if (!c->from_host_len && c->host_closed && !c->eof_sent) {
        r = send_packet(h, c, NULL, 0);
        if (r < 0)
            return r;
        c->eof_sent = r;
    }
    return 0;
}

/* HvSockBridge.pump; a broken channel tells the Python model once and moves nothing more */
static void pump(struct hvr *h, struct chan *c)
{
    if (c->err)
        return;
    if (guest_to_host(h, c) < 0)
        goto broken;
    flush_to_host(c);
    read_host(c);
    if (host_to_guest(h, c) < 0)
        goto broken;
    return;
broken:
    note(h, HVR_NOTE_BROKEN, c->relid);
}

/* the fast HvCallSignalEvent to an attached channel's connection id, or NULL: a trap for Python.
 * Partition.hypercall's checks in its order, for the one shape answered here: the exact control word
 * (code, fast, nothing else), RDX only connection id and flag bits, flag within the flags. */
static struct chan *hot_channel(struct hvr *h, uint32_t op, uint64_t control, uint64_t rdx)
{
    uint32_t conn = (uint32_t)(rdx & HV_CONNECTION_ID_MASK);

    if (op != HVSIM_OP_HYPERCALL || !h->signal_ok || control != (HVCALL_SIGNAL_EVENT | HV_HYPERCALL_FAST))
        return NULL;
    if (rdx & ~(uint64_t)(HV_CONNECTION_ID_MASK | HV_SIGNAL_EVENT_FLAG_MASK))
        return NULL;
    if (((rdx & HV_SIGNAL_EVENT_FLAG_MASK) >> HV_SIGNAL_EVENT_FLAG_SHIFT) >= HV_EVENT_FLAGS_BYTES * 8)
        return NULL;
    for (int i = 0; i < MAX_CHANNELS; i++)
        if (h->ch[i] && !h->ch[i]->err && h->ch[i]->conn_id == conn)
            return h->ch[i];
    return NULL;
}

/* Model.answer_traps for the hot trap; anything else goes to Python as it is */
static void answer_traps(struct hvr *h)
{
    for (;;) {
        uint32_t seq = ld32(h->shm + HVSIM_BLOCK_OFF_SEQ), op, zero32 = 0;
        uint64_t control, rdx, zero64 = 0;
        struct chan *c;

        if (h->forwarding && ld32(h->shm + HVSIM_BLOCK_OFF_DONE_SEQ) == h->forwarded)
            h->forwarding = 0;    /* Python answered it */
        if (seq == ld32(h->shm + HVSIM_BLOCK_OFF_DONE_SEQ) || (h->forwarding && seq == h->forwarded))
            return;
        op = ld32(h->shm + HVSIM_BLOCK_OFF_OP);
        memcpy(&control, h->shm + HVSIM_BLOCK_OFF_ARG0, 8);
        memcpy(&rdx, h->shm + HVSIM_BLOCK_OFF_ARG1, 8);
        c = hot_channel(h, op, control, rdx);
        if (!c) {
            h->forwarding = 1;
            h->forwarded = seq;
            h->nforwarded++;
            if (!h->trap_fn) {
                note(h, HVR_NOTE_TRAP, seq);
                return;
            }
            /* the Python model answers it here and may call back in (attach, sync, pump): unlocked */
            pthread_mutex_unlock(&h->mu);
            h->trap_fn(seq);
            pthread_mutex_lock(&h->mu);
            if (h->stop)
                return;
            continue;
        }
        h->answered++;
        memcpy(h->shm + HVSIM_BLOCK_OFF_FAULT, &zero32, 4);
        for (int i = 0; i < 4; i++)  /* result[0] = HV_STATUS_SUCCESS, reps 0 */
            memcpy(h->shm + HVSIM_BLOCK_OFF_RESULT + 8 * i, &zero64, 8);
        st32(h->shm + HVSIM_BLOCK_OFF_DONE_SEQ, seq);  /* last: the guest stops spinning */
        mb();                                           /* done_seq before wait_seq */
        if (ld32(h->shm + HVSIM_BLOCK_OFF_WAIT_SEQ) == seq) {
            uint32_t count = ld32(h->shm + HVSIM_BLOCK_OFF_MSIX_VECTORS);
            if (ld32(h->shm + HVSIM_BLOCK_OFF_MSIX_VECTOR_BASE) && HVSIM_ANSWER_MSIX_ENTRY < count &&
                HVSIM_ANSWER_MSIX_ENTRY < h->n_guest_efd) {
                raise_entry(h, HVSIM_ANSWER_MSIX_ENTRY);
                h->answer_irqs++;
            }
        }
        pump(h, c);
    }
}

static void drain(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof v);   /* non-blocking: QEMU set O_NONBLOCK on the shared file */
    (void)r;
}

/* bytes published in a ring and not yet consumed (0 when its indices are impossible: pump says so) */
static uint32_t ring_used(const struct hvr_ring *r)
{
    uint32_t w, rd;

    if (indices(r, &w, &rd))
        return 0;
    return w >= rd ? w - rd : r->size - rd + w;
}

/* The safety net, after the events: a channel with data waiting that moved nothing for a whole tick
 * gets a look. Every signal the rings call for is sent (hv_pkt_iter_close's rule on both sides, from
 * the write index read after the read index is out), so this should find nothing to move; when it
 * does, a wake-up was lost: counted (hvr_stats rescues) and noted for the model log. */
static void tick(struct hvr *h)
{
    for (int i = 0; i < MAX_CHANNELS; i++) {
        struct chan *c = h->ch[i];
        if (!c || c->err)
            continue;
        if ((c->from_host_len || c->to_host_len || ring_used(c->rx)) && c->moved == c->moved_at_tick) {
            pump(h, c);
            if (c->moved != c->moved_at_tick) {
                h->rescues++;
                note(h, HVR_NOTE_RESCUE, c->relid);
            }
        }
        c->moved_at_tick = c->moved;
    }
}

static void *run(void *arg)
{
    struct hvr *h = arg;
    struct pollfd fds[2 + MAX_CHANNELS];
    struct timespec now, last;

    clock_gettime(CLOCK_MONOTONIC, &last);

    for (;;) {
        int n = 2;

        pthread_mutex_lock(&h->mu);
        if (h->stop) {
            pthread_mutex_unlock(&h->mu);
            return NULL;
        }
        fds[0] = (struct pollfd){.fd = h->trap_efd, .events = POLLIN};
        fds[1] = (struct pollfd){.fd = h->ctl_efd, .events = POLLIN};
        for (int i = 0; i < MAX_CHANNELS; i++) {
            struct chan *c = h->ch[i];
            short ev = 0;
            if (!c || c->err)
                continue;
            if (wants_read(c))
                ev |= POLLIN;
            if (c->to_host_len)
                ev |= POLLOUT;
            if (ev)
                fds[n++] = (struct pollfd){.fd = c->sock, .events = ev};
        }
        pthread_mutex_unlock(&h->mu);
        int ready = poll(fds, n, TICK_MS);
        if (ready < 0 && errno != EINTR)
            return NULL;
        pthread_mutex_lock(&h->mu);
        if (fds[1].revents)
            drain(h->ctl_efd);
        if (fds[0].revents)
            drain(h->trap_efd);
        answer_traps(h);  /* the guest may be spinning on the answer: first */
        for (int i = 2; i < n; i++) {
            if (!fds[i].revents)
                continue;
            for (int j = 0; j < MAX_CHANNELS; j++)
                if (h->ch[j] && h->ch[j]->sock == fds[i].fd)
                    pump(h, h->ch[j]);
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - last.tv_sec > 1 ||
            (now.tv_sec - last.tv_sec) * 1000 + (now.tv_nsec - last.tv_nsec) / 1000000 >= TICK_MS) {
            last = now;
            tick(h);
        }
        pthread_mutex_unlock(&h->mu);
    }
}

struct hvr *hvr_new(int shm_fd, uint64_t shm_size, int ram_fd, uint64_t ram_size, int trap_efd,
                    const int *guest_efd, uint32_t n_guest_efd, int note_fd)
{
    struct hvr *h;

    if (shm_size < HVSIM_BLOCK_SIZE || n_guest_efd > HVSIM_MSIX_VECTORS)
        return NULL;
    h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->shm = h->ram = MAP_FAILED;
    h->ctl_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->ctl_efd < 0)
        goto fail;
    h->shm = mmap(NULL, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
    if (h->shm == MAP_FAILED)
        goto fail;
    h->ram = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, ram_fd, 0);
    if (h->ram == MAP_FAILED)
        goto fail;
    pthread_mutex_init(&h->mu, NULL);
    h->shm_size = shm_size;
    h->ram_size = ram_size;
    h->trap_efd = trap_efd;
    h->note_fd = note_fd;
    memcpy(h->guest_efd, guest_efd, n_guest_efd * sizeof *guest_efd);
    h->n_guest_efd = n_guest_efd;
    h->sief = -1;
    return h;
fail:
    if (h->shm != MAP_FAILED)
        munmap(h->shm, shm_size);
    if (h->ctl_efd >= 0)
        close(h->ctl_efd);
    free(h);
    return NULL;
}

static void kick(struct hvr *h)
{
    uint64_t one = 1;
    ssize_t r = write(h->ctl_efd, &one, sizeof one);
    (void)r;
}

int hvr_start(struct hvr *h)
{
    int err = pthread_create(&h->thread, NULL, run, h);

    if (err)
        return HVR_E_SYS;
    pthread_setname_np(h->thread, "hvrelay");  /* per-thread CPU in /proc names it */
    h->started = 1;
    return HVR_OK;
}

static void chan_free(struct chan *c)
{
    hvr_ring_free(c->rx);
    hvr_ring_free(c->tx);
    free(c->pkt);
    free(c->to_host);
    free(c->from_host);
    free(c);
}

void hvr_stop(struct hvr *h)
{
    if (!h->started)
        return;
    pthread_mutex_lock(&h->mu);
    h->stop = 1;
    pthread_mutex_unlock(&h->mu);
    kick(h);
    pthread_join(h->thread, NULL);
    h->started = 0;
}

void hvr_free(struct hvr *h)
{
    if (!h)
        return;
    hvr_stop(h);
    for (int i = 0; i < MAX_CHANNELS; i++)
        if (h->ch[i])
            chan_free(h->ch[i]);
    pthread_mutex_destroy(&h->mu);
    munmap(h->shm, h->shm_size);
    munmap(h->ram, h->ram_size);
    close(h->ctl_efd);
    free(h);
}

void hvr_set_trap_handler(struct hvr *h, hvr_trap_fn fn)
{
    pthread_mutex_lock(&h->mu);
    h->trap_fn = fn;
    pthread_mutex_unlock(&h->mu);
}

void hvr_set_synic(struct hvr *h, int64_t sief_area_offset, uint64_t sint_reg, int signal_ok)
{
    pthread_mutex_lock(&h->mu);
    if (sief_area_offset < 0 || (uint64_t)sief_area_offset > h->ram_size ||
        h->ram_size - (uint64_t)sief_area_offset < HV_EVENT_FLAGS_BYTES)
        sief_area_offset = -1;
    h->sief = sief_area_offset;
    h->sint_reg = sint_reg;
    h->signal_ok = signal_ok;
    pthread_mutex_unlock(&h->mu);
}

int hvr_attach(struct hvr *h, uint32_t relid, uint32_t connection_id, int sock_fd, const uint64_t *g2h,
               uint32_t n_g2h, const uint64_t *h2g, uint32_t n_h2g, uint32_t to_host_limit,
               uint32_t from_host_limit, uint32_t chunk)
{
    struct chan *c = calloc(1, sizeof *c);
    int slot = -1, err = HVR_E_NOMEM;

    if (!c)
        return HVR_E_NOMEM;
    c->relid = relid;
    c->conn_id = connection_id;
    c->sock = sock_fd;
    c->rx = hvr_ring_new(h->ram, h->ram_size, g2h, n_g2h);
    c->tx = hvr_ring_new(h->ram, h->ram_size, h2g, n_h2g);
    if (!c->rx || !c->tx || !to_host_limit || !from_host_limit || !chunk || chunk > c->tx->size) {
        err = HVR_E_ARG;
        goto fail;
    }
    c->to_host_limit = to_host_limit;
    c->chunk = chunk;
    c->from_host_limit = from_host_limit;
    c->pkt = malloc(c->rx->size);
    c->to_host = malloc((size_t)to_host_limit + c->rx->size);  /* a whole packet past the limit */
    c->from_host = malloc(from_host_limit);
    if (!c->pkt || !c->to_host || !c->from_host)
        goto fail;
    pthread_mutex_lock(&h->mu);
    for (int i = 0; i < MAX_CHANNELS && slot < 0; i++)
        if (!h->ch[i])
            slot = i;
    if (slot >= 0) {
        h->ch[slot] = c;
        pump(h, c);  /* what the guest wrote before the hand-over */
    }
    pthread_mutex_unlock(&h->mu);
    if (slot < 0) {
        err = HVR_E_ARG;
        goto fail;
    }
    kick(h);
    return HVR_OK;
fail:
    chan_free(c);
    return err;
}

static struct chan **find(struct hvr *h, uint32_t relid)
{
    for (int i = 0; i < MAX_CHANNELS; i++)
        if (h->ch[i] && h->ch[i]->relid == relid)
            return &h->ch[i];
    return NULL;
}

void hvr_detach(struct hvr *h, uint32_t relid)
{
    struct chan **pc, *c = NULL;

    pthread_mutex_lock(&h->mu);
    pc = find(h, relid);
    if (pc) {
        c = *pc;
        *pc = NULL;
        if (!c->err && guest_to_host(h, c) == 0)  /* what the guest already wrote still reaches the host */
            flush_to_host(c);
    }
    pthread_mutex_unlock(&h->mu);
    if (c) {
        chan_free(c);
        kick(h);
    }
}

int hvr_pump(struct hvr *h, uint32_t relid, char *msg, uint32_t cap)
{
    struct chan **pc;
    int err = 0;

    pthread_mutex_lock(&h->mu);
    pc = find(h, relid);
    if (pc) {
        pump(h, *pc);
        err = (*pc)->err;
        if (err)
            snprintf(msg, cap, "%s", (*pc)->msg);
    }
    pthread_mutex_unlock(&h->mu);
    return err;
}

void hvr_stats(struct hvr *h, uint64_t *out)
{
    pthread_mutex_lock(&h->mu);
    out[0] = h->answered;
    out[1] = h->nforwarded;
    out[2] = h->injected;
    out[3] = h->dropped;
    out[4] = h->answer_irqs;
    out[5] = h->to_host;
    out[6] = h->to_guest;
    out[7] = h->rescues;
    pthread_mutex_unlock(&h->mu);
}
