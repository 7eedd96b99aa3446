/* virtio_console.c: virtio-console over the modern virtio-pci transport,
 * MULTIPORT, polled.
 *
 * Bring-up (VIRTIO 1.2, 5.3.6): queues for the control pair and ports
 * 0..VCON_MAX_PORTS-1 before DRIVER_OK (the port's number is only known from
 * the device's messages later), control receive buffers posted, DRIVER_OK,
 * DEVICE_READY. The device then sends DEVICE_ADD per port; each gets
 * PORT_READY, after which the device names it (PORT_NAME) and says whether
 * the host side is open (PORT_OPEN). The port with the wanted name gets its
 * receive buffers and our PORT_OPEN 1 (QEMU passes host data only to a port
 * the guest opened). Auxiliary ports (virtio_console_want_aux) are found by
 * name the same way and carry single bytes.
 *
 * The device is not trusted: a used-ring entry must name a buffer we lent
 * (virtqueue.c checks the head), its length must fit that buffer, a control
 * message is copied out of shared memory before it is parsed, and events,
 * port numbers and values outside what we expect are counted and ignored. */
#include "drivers/virtio_console.h"
#include "drivers/virtio_console_defs.h"
#include "kernel/errno.h"
#include "kernel/klib.h"
#include "kernel/pmm.h"
#include "kernel/timer.h"
#include "kernel/vm.h"
#include "platform/platform.h"
#include "virtio.h"

#define CTRL_OUT_OFFSET 2048u                  /* ctrl_in: 16 x 128 bytes, then ctrl_out */
#define CTRL_OUT_STRIDE 16u
#define CTRL_TX_TIMEOUT_NS 20000000ULL         /* the device completes control sends at once */
#define MAX_USED_PER_CALL 64                   /* bound the work a racing used index can cause */

#define AUX_STRIDE 2048u                       /* aux page: port k's rx then tx buffers at k * AUX_STRIDE */
#define AUX_TX_OFFSET 1024u
_Static_assert(VCON_CTRL_BUFS * VCON_CTRL_BUF_SIZE <= CTRL_OUT_OFFSET, "control buffers overlap");
_Static_assert(VCON_AUX_RX_BUFS * VCON_AUX_RX_SIZE <= AUX_TX_OFFSET &&
               AUX_TX_OFFSET + VCON_AUX_TX_BUFS * VCON_AUX_TX_SIZE <= AUX_STRIDE &&
               VCON_AUX_MAX * AUX_STRIDE <= 4096, "aux page overflows");
_Static_assert(CTRL_OUT_OFFSET + VCON_CTRL_TX_SLOTS * CTRL_OUT_STRIDE <= 4096, "control page overflows");
_Static_assert(VIRTIO_CONSOLE_CONTROL_SIZE <= CTRL_OUT_STRIDE, "control message size");
_Static_assert(VCON_POOL_MAX <= 32 && VCON_RX_BUFS <= VCON_POOL_MAX && VCON_TX_BUFS <= VCON_POOL_MAX, "pool size");

/* ---- buffer pools ---- */
static void pool_init(struct vcon_pool *p, uint32_t size)
{
    memset(p, 0, sizeof *p);
    p->size = size;
    memset(p->of_head, -1, sizeof p->of_head);
}

static void pool_add(struct vcon_pool *p, uint8_t *va, uint64_t pa)
{
    p->va[p->n] = va;
    p->pa[p->n] = pa;
    p->free_mask |= 1u << p->n;
    p->n++;
}

/* n buffers of `stride` bytes from offset `off` of the page at (va, pa). */
static void pool_add_page(struct vcon_pool *p, uint8_t *va, uint64_t pa, uint32_t off, unsigned n, uint32_t stride)
{
    for (unsigned i = 0; i < n; i++)
        pool_add(p, va + off + i * stride, pa + off + i * stride);
}

static int pool_take(struct vcon_pool *p)
{
    if (!p->free_mask)
        return -1;
    int i = __builtin_ctz(p->free_mask);
    p->free_mask &= ~(1u << i);
    return i;
}

/* Lend buffer i to vq with len bytes for the device to read (or write). */
static int pool_lend(struct vcon_pool *p, struct virtqueue *vq, int i, uint32_t len, int device_writes)
{
    struct vq_buf b = {p->pa[i], len, device_writes};
    int head = vq_add(vq, &b, 1);
    if (head < 0) {
        p->free_mask |= 1u << i;
        return -1;
    }
    p->of_head[head] = (int8_t)i;
    return 0;
}

/* The next buffer the device gave back on vq: 1 (*idx, *len), 0 none, -1 a bad entry (counted). */
static int pool_reclaim(struct virtio_console *vc, struct vcon_pool *p, struct virtqueue *vq, int *idx, uint32_t *len)
{
    uint16_t head;
    int r = vq_get_used(vq, &head, len);
    if (r < 0)
        vc->bad_used++;
    if (r <= 0)
        return r;
    int i = p->of_head[head];
    p->of_head[head] = -1;
    if (i < 0) {                                /* a head this pool never lent */
        vc->bad_used++;
        return -1;
    }
    *idx = i;
    return 1;
}

/* Take back every transmit buffer the device is done with. */
static void reclaim_sent(struct virtio_console *vc, struct vcon_pool *p, struct virtqueue *vq)
{
    int i;
    uint32_t len;
    for (int budget = MAX_USED_PER_CALL; budget > 0; budget--) {
        int r = pool_reclaim(vc, p, vq, &i, &len);
        if (r == 0)
            return;
        if (r > 0)
            p->free_mask |= 1u << i;            /* len means nothing for a buffer the device read */
    }
}

/* ---- control queue ---- */
static int send_ctrl(struct virtio_console *vc, uint32_t id, uint16_t event, uint16_t value)
{
    uint64_t t0 = timer_now_ns();
    int i;
    for (;;) {
        reclaim_sent(vc, &vc->ctrl_out, &vc->ctrl_tx);
        if ((i = pool_take(&vc->ctrl_out)) >= 0)
            break;
        if (timer_now_ns() - t0 > CTRL_TX_TIMEOUT_NS)
            return ERR_TIMEDOUT;
        cpu_relax();
    }
    struct virtio_console_control *m = (struct virtio_console_control *)vc->ctrl_out.va[i];
    m->id = id;
    m->event = event;
    m->value = value;
    if (pool_lend(&vc->ctrl_out, &vc->ctrl_tx, i, VIRTIO_CONSOLE_CONTROL_SIZE, 0))
        return ERR_IO;
    virtio_pci_notify(&vc->vp, &vc->ctrl_tx);
    return 0;
}

/* A port we took: every free buffer of its pool p to its receiveq, then our PORT_OPEN 1. */
static void open_port(struct virtio_console *vc, struct vcon_pool *p, uint32_t id)
{
    int i, posted = 0;
    while ((i = pool_take(p)) >= 0)
        posted |= pool_lend(p, &vc->rxq[id], i, p->size, 1) == 0;
    if (posted)
        virtio_pci_notify(&vc->vp, &vc->rxq[id]);
    send_ctrl(vc, id, VIRTIO_CONSOLE_PORT_OPEN, VCON_VALUE_OK);
}

static void found_port(struct virtio_console *vc, uint32_t id)
{
    vc->port = (int)id;
    vc->host_connected = (vc->host_open_mask >> id) & 1;   /* a PORT_OPEN may have come first */
    if (vc->host_connected)
        vc->host_opens++;
    open_port(vc, &vc->rx, id);
}

/* The aux port id's entry, or NULL. */
static struct vcon_aux *aux_of(struct virtio_console *vc, uint32_t id)
{
    for (unsigned k = 0; k < VCON_AUX_MAX; k++)
        if (vc->aux[k].port >= 0 && vc->aux[k].port == (int)id)
            return &vc->aux[k];
    return NULL;
}

/* A port name (n bytes): the named port's, or a wanted aux port's. A port already taken
 * keeps its role: a second name must not give one receiveq to two pools. */
static void port_named(struct virtio_console *vc, uint32_t id, const uint8_t *name, uint32_t n)
{
    if ((int)id == vc->port || aux_of(vc, id))
        return;
    if (vc->port < 0 && n == strlen(vc->want_name) && memcmp(name, vc->want_name, n) == 0) {
        found_port(vc, id);
        return;
    }
    for (unsigned k = 0; k < VCON_AUX_MAX && vc->aux_page_pa; k++) {
        struct vcon_aux *a = &vc->aux[k];
        if (a->name && a->port < 0 && n == strlen(a->name) && memcmp(name, a->name, n) == 0) {
            a->port = (int)id;
            a->connected = (vc->host_open_mask >> id) & 1;
            open_port(vc, &a->rx, id);
            return;
        }
    }
}

static void port_open_event(struct virtio_console *vc, uint32_t id, uint16_t value)
{
    if (value > 1) {
        vc->bad_ctrl++;
        return;
    }
    vc->host_open_mask = (vc->host_open_mask & ~(1u << id)) | (uint32_t)value << id;
    struct vcon_aux *a = aux_of(vc, id);
    if (a)
        a->connected = value;
    if ((int)id != vc->port)
        return;                                 /* another port's host side: not ours */
    if (value && !vc->host_connected)
        vc->host_opens++;
    vc->host_connected = value;
}

/* One control message, already copied out of shared memory (len checked). */
static void handle_ctrl(struct virtio_console *vc, const uint8_t *b, uint32_t len)
{
    uint32_t id = ld32(b + VIRTIO_CONSOLE_CONTROL_OFF_ID);
    uint16_t event = ld16(b + VIRTIO_CONSOLE_CONTROL_OFF_EVENT);
    uint16_t value = ld16(b + VIRTIO_CONSOLE_CONTROL_OFF_VALUE);
    int known = id < vc->nports && (vc->added & (1u << id));

    switch (event) {
    case VIRTIO_CONSOLE_DEVICE_ADD:
        if (id >= vc->max_nr_ports || known) {
            vc->bad_ctrl++;                     /* no such port, or added twice */
        } else if (id >= vc->nports) {
            send_ctrl(vc, id, VIRTIO_CONSOLE_PORT_READY, VCON_VALUE_FAIL);   /* no queues for it */
        } else {
            vc->added |= 1u << id;
            send_ctrl(vc, id, VIRTIO_CONSOLE_PORT_READY, VCON_VALUE_OK);
        }
        break;
    case VIRTIO_CONSOLE_DEVICE_REMOVE: {
        if (!known) {
            vc->bad_ctrl++;
            break;
        }
        vc->added &= ~(1u << id);
        if ((int)id == vc->port) {
            vc->gone = 1;
            vc->host_connected = 0;
        }
        struct vcon_aux *a = aux_of(vc, id);
        if (a) {                                /* its lent rx buffers stay with the old queue, so the */
            a->port = -1;                       /* port is not taken again: its bytes end, both sides poll */
            a->connected = 0;
            a->name = NULL;
        }
        break;
    }
    case VIRTIO_CONSOLE_PORT_NAME: {
        if (!known) {
            vc->bad_ctrl++;
            break;
        }
        /* The name follows the header; QEMU adds a NUL, the spec does not promise one. */
        const uint8_t *name = b + VIRTIO_CONSOLE_CONTROL_SIZE;
        uint32_t n = 0, max = len - VIRTIO_CONSOLE_CONTROL_SIZE;
        while (n < max && name[n])
            n++;
        port_named(vc, id, name, n);
        break;
    }
    case VIRTIO_CONSOLE_PORT_OPEN:
        if (!known) {
            vc->bad_ctrl++;
            break;
        }
        port_open_event(vc, id, value);
        break;
    case VIRTIO_CONSOLE_CONSOLE_PORT:       /* a console port: we use none as a console */
    case VIRTIO_CONSOLE_RESIZE:
        break;
    default:                                /* DEVICE_READY/PORT_READY go the other way; others unknown */
        vc->bad_ctrl++;
        break;
    }
}

void virtio_console_poll(struct virtio_console *vc)
{
    uint8_t msg[VCON_CTRL_BUF_SIZE];
    int i, relent = 0;
    uint32_t len;

    reclaim_sent(vc, &vc->ctrl_out, &vc->ctrl_tx);
    for (int budget = MAX_USED_PER_CALL; budget > 0; budget--) {
        int r = pool_reclaim(vc, &vc->ctrl_in, &vc->ctrl_rx, &i, &len);
        if (r == 0)
            break;
        if (r < 0)
            continue;
        int ok = len >= VIRTIO_CONSOLE_CONTROL_SIZE && len <= vc->ctrl_in.size;
        if (ok)
            memcpy(msg, vc->ctrl_in.va[i], len);   /* the device may rewrite the buffer meanwhile */
        else
            vc->bad_len++;
        if (pool_lend(&vc->ctrl_in, &vc->ctrl_rx, i, vc->ctrl_in.size, 1) == 0)
            relent = 1;
        if (ok)
            handle_ctrl(vc, msg, len);
    }
    if (relent)
        virtio_pci_notify(&vc->vp, &vc->ctrl_rx);
}

/* ---- data on the named port ---- */
long virtio_console_read(struct virtio_console *vc, void *buf, size_t cap)
{
    uint8_t *out = buf;
    size_t n = 0;
    int relent = 0;

    virtio_console_poll(vc);
    if (vc->gone)
        return -1;
    if (vc->port < 0)
        return 0;
    struct virtqueue *q = &vc->rxq[vc->port];
    for (int budget = MAX_USED_PER_CALL; n < cap;) {
        if (vc->rx_cur < 0) {
            int i;
            uint32_t len;
            if (budget-- <= 0)
                break;
            int r = pool_reclaim(vc, &vc->rx, q, &i, &len);
            if (r == 0)
                break;
            if (r < 0)
                continue;
            if (len > vc->rx.size || len == 0) {
                if (len)
                    vc->bad_len++;              /* more than the buffer holds: drop it */
                relent |= pool_lend(&vc->rx, q, i, vc->rx.size, 1) == 0;
                continue;
            }
            vc->rx_cur = i;
            vc->rx_off = 0;
            vc->rx_len = len;
        }
        size_t k = vc->rx_len - vc->rx_off;
        if (k > cap - n)
            k = cap - n;
        memcpy(out + n, vc->rx.va[vc->rx_cur] + vc->rx_off, k);
        n += k;
        vc->rx_off += (uint32_t)k;
        if (vc->rx_off == vc->rx_len) {
            relent |= pool_lend(&vc->rx, q, vc->rx_cur, vc->rx.size, 1) == 0;
            vc->rx_cur = -1;
        }
    }
    /* QEMU stops reading the host socket when the port has no buffers; the kick restarts it. */
    if (relent)
        virtio_pci_notify(&vc->vp, q);
    return (long)n;
}

long virtio_console_write(struct virtio_console *vc, const void *buf, size_t len, uint64_t timeout_ns)
{
    const uint8_t *in = buf;
    size_t off = 0;
    int pending = 0;
    uint64_t t0 = timer_now_ns();

    virtio_console_poll(vc);
    if (vc->port < 0 || vc->gone)
        return -1;
    struct virtqueue *q = &vc->txq[vc->port];
    while (off < len) {
        if (!vc->host_connected)
            break;                              /* nobody listens: the bytes wait for the next host */
        reclaim_sent(vc, &vc->tx, q);
        int i = pool_take(&vc->tx);
        if (i < 0) {
            if (pending) {                      /* let the device drain what is queued */
                virtio_pci_notify(&vc->vp, q);
                pending = 0;
                continue;
            }
            if (timer_now_ns() - t0 >= timeout_ns)
                break;                          /* the host is not reading: the caller keeps the rest */
            cpu_relax();
            virtio_console_poll(vc);            /* a host that went away frees us from waiting */
            continue;
        }
        uint32_t k = len - off > vc->tx.size ? vc->tx.size : (uint32_t)(len - off);
        memcpy(vc->tx.va[i], in + off, k);
        if (pool_lend(&vc->tx, q, i, k, 0))
            break;                              /* pool_lend gave the buffer back: not taken */
        off += k;
        pending = 1;
    }
    if (pending)
        virtio_pci_notify(&vc->vp, q);
    return (long)off;
}

/* ---- auxiliary ports ---- */
void virtio_console_want_aux(struct virtio_console *vc, unsigned slot, const char *name)
{
    if (slot < VCON_AUX_MAX)
        vc->aux[slot].name = name;
}

/* The found aux port `slot`, or NULL. */
static struct vcon_aux *aux_slot(struct virtio_console *vc, unsigned slot)
{
    return slot < VCON_AUX_MAX && vc->aux[slot].port >= 0 ? &vc->aux[slot] : NULL;
}

int virtio_console_aux_send(struct virtio_console *vc, unsigned slot, uint8_t b)
{
    virtio_console_poll(vc);
    struct vcon_aux *a = aux_slot(vc, slot);
    if (!a || !a->connected)
        return -1;
    struct virtqueue *q = &vc->txq[a->port];
    reclaim_sent(vc, &a->tx, q);
    int i = pool_take(&a->tx);
    if (i < 0)
        return 0;                               /* doorbells are hints: the host polls anyway */
    a->tx.va[i][0] = b;
    if (pool_lend(&a->tx, q, i, 1, 0))
        return 0;
    virtio_pci_notify(&vc->vp, q);
    return 1;
}

long virtio_console_aux_drain(struct virtio_console *vc, unsigned slot)
{
    long n = 0;
    int i, relent = 0;
    uint32_t len;
    struct vcon_aux *a = aux_slot(vc, slot);
    if (!a)
        return -1;
    struct virtqueue *q = &vc->rxq[a->port];
    for (int budget = MAX_USED_PER_CALL; budget > 0; budget--) {
        int r = pool_reclaim(vc, &a->rx, q, &i, &len);
        if (r == 0)
            break;
        if (r < 0)
            continue;
        if (len <= a->rx.size)
            n += len;
        else
            vc->bad_len++;
        relent |= pool_lend(&a->rx, q, i, a->rx.size, 1) == 0;
    }
    if (relent)
        virtio_pci_notify(&vc->vp, q);
    return n || a->connected ? n : -1;
}

static int aux_send_op(void *vc, unsigned slot, uint8_t b) { return virtio_console_aux_send(vc, slot, b); }
static long aux_drain_op(void *vc, unsigned slot) { return virtio_console_aux_drain(vc, slot); }
const struct aux_port_ops virtio_console_aux_ops = { aux_send_op, aux_drain_op, NULL };

/* ---- bring-up ---- */
static int setup_queue(struct virtio_console *vc, unsigned slot, uint16_t index, struct virtqueue *vq)
{
    uint64_t pa = pmm_alloc_zeroed();
    if (!pa)
        return ERR_NOMEM;
    vc->ring_pa[slot] = pa;
    return virtio_pci_setup_queue(&vc->vp, index, vq, phys_ptr(pa, 4096), pa) ? ERR_IO : 0;
}

static int setup_queues(struct virtio_console *vc)
{
    int err;
    if ((err = setup_queue(vc, 0, VCON_CTRL_RX_QUEUE, &vc->ctrl_rx)) ||
        (err = setup_queue(vc, 1, VCON_CTRL_TX_QUEUE, &vc->ctrl_tx)))
        return err;
    for (uint32_t p = 0; p < vc->nports; p++) {
        if ((err = setup_queue(vc, 2 + 2 * p, (uint16_t)vcon_rx_queue(p), &vc->rxq[p])) ||
            (err = setup_queue(vc, 3 + 2 * p, (uint16_t)vcon_tx_queue(p), &vc->txq[p]))) {
            if (err != ERR_IO || p == 0)
                return err;
            for (unsigned k = 2 + 2 * p; k < 4 + 2 * p; k++) {
                if (vc->ring_pa[k])
                    pmm_free_page(vc->ring_pa[k]);
                vc->ring_pa[k] = 0;
            }
            vc->nports = p;                     /* fewer queues than max_nr_ports claims */
            break;
        }
    }
    return 0;
}

static int alloc_buffers(struct virtio_console *vc)
{
    vc->ctrl_page_pa = pmm_alloc_zeroed();
    if (!vc->ctrl_page_pa)
        return ERR_NOMEM;
    uint8_t *page = phys_ptr(vc->ctrl_page_pa, 4096);
    pool_init(&vc->ctrl_in, VCON_CTRL_BUF_SIZE);
    pool_init(&vc->ctrl_out, VIRTIO_CONSOLE_CONTROL_SIZE);
    pool_add_page(&vc->ctrl_in, page, vc->ctrl_page_pa, 0, VCON_CTRL_BUFS, VCON_CTRL_BUF_SIZE);
    pool_add_page(&vc->ctrl_out, page, vc->ctrl_page_pa, CTRL_OUT_OFFSET, VCON_CTRL_TX_SLOTS, CTRL_OUT_STRIDE);
    if (!(vc->aux_page_pa = pmm_alloc_zeroed()))
        return ERR_NOMEM;
    uint8_t *ap = phys_ptr(vc->aux_page_pa, 4096);
    for (unsigned k = 0; k < VCON_AUX_MAX; k++) {
        struct vcon_aux *a = &vc->aux[k];
        pool_init(&a->rx, VCON_AUX_RX_SIZE);
        pool_init(&a->tx, VCON_AUX_TX_SIZE);
        pool_add_page(&a->rx, ap, vc->aux_page_pa, k * AUX_STRIDE, VCON_AUX_RX_BUFS, VCON_AUX_RX_SIZE);
        pool_add_page(&a->tx, ap, vc->aux_page_pa, k * AUX_STRIDE + AUX_TX_OFFSET, VCON_AUX_TX_BUFS,
                      VCON_AUX_TX_SIZE);
    }
    pool_init(&vc->rx, VCON_BUF_SIZE);
    pool_init(&vc->tx, VCON_BUF_SIZE);
    for (unsigned i = 0; i < VCON_RX_BUFS + VCON_TX_BUFS; i++) {
        uint64_t pa = pmm_alloc_page();         /* contents are overwritten before use */
        if (!pa)
            return ERR_NOMEM;
        vc->data_pa[i] = pa;
        pool_add(i < VCON_RX_BUFS ? &vc->rx : &vc->tx, phys_ptr(pa, VCON_BUF_SIZE), pa);
    }
    return 0;
}

static void free_pages(struct virtio_console *vc)
{
    for (unsigned i = 0; i < sizeof vc->ring_pa / sizeof vc->ring_pa[0]; i++)
        if (vc->ring_pa[i])
            pmm_free_page(vc->ring_pa[i]);
    for (unsigned i = 0; i < VCON_RX_BUFS + VCON_TX_BUFS; i++)
        if (vc->data_pa[i])
            pmm_free_page(vc->data_pa[i]);
    if (vc->ctrl_page_pa)
        pmm_free_page(vc->ctrl_page_pa);
    if (vc->aux_page_pa)
        pmm_free_page(vc->aux_page_pa);
    vc->aux_page_pa = 0;
    for (unsigned k = 0; k < VCON_AUX_MAX; k++)
        vc->aux[k].port = -1;
    memset(vc->ring_pa, 0, sizeof vc->ring_pa);
    memset(vc->data_pa, 0, sizeof vc->data_pa);
    vc->ctrl_page_pa = 0;
    vc->port = -1;
}

int virtio_console_probe(struct pci_dev *d, struct virtio_console *vc, const char *name, uint64_t timeout_ns)
{
    uint8_t cfg[VIRTIO_CONSOLE_CONFIG_OFF_EMERG_WR];   /* cols, rows, max_nr_ports */
    int err;

    const char *aux_name[VCON_AUX_MAX];         /* virtio_console_want_aux comes first */
    for (unsigned k = 0; k < VCON_AUX_MAX; k++)
        aux_name[k] = vc->aux[k].name;
    memset(vc, 0, sizeof *vc);
    vc->port = -1;
    for (unsigned k = 0; k < VCON_AUX_MAX; k++) {
        vc->aux[k].name = aux_name[k];
        vc->aux[k].port = -1;
    }
    vc->rx_cur = -1;
    vc->want_name = name;
    if (pci_enable(d) || virtio_pci_open(d, &vc->vp))
        return ERR_NODEV;
    if (virtio_pci_negotiate(&vc->vp, 1ULL << VIRTIO_CONSOLE_F_MULTIPORT)) {
        err = ERR_NODEV;
        goto fail;
    }
    if (!(vc->vp.features & (1ULL << VIRTIO_CONSOLE_F_MULTIPORT))) {
        err = ERR_NOTSUP;
        goto fail;
    }
    if (virtio_pci_read_config(&vc->vp, cfg, sizeof cfg)) {
        err = ERR_IO;
        goto fail;
    }
    vc->max_nr_ports = ld32(cfg + VIRTIO_CONSOLE_CONFIG_OFF_MAX_NR_PORTS);
    if (vc->max_nr_ports == 0) {
        err = ERR_IO;
        goto fail;
    }
    vc->nports = vc->max_nr_ports < VCON_MAX_PORTS ? vc->max_nr_ports : VCON_MAX_PORTS;
    if ((err = setup_queues(vc)) || (err = alloc_buffers(vc)))
        goto fail_pages;
    for (int i = pool_take(&vc->ctrl_in); i >= 0; i = pool_take(&vc->ctrl_in)) {
        if (pool_lend(&vc->ctrl_in, &vc->ctrl_rx, i, vc->ctrl_in.size, 1)) {
            err = ERR_IO;
            goto fail_pages;
        }
    }
    virtio_pci_driver_ok(&vc->vp);
    virtio_pci_notify(&vc->vp, &vc->ctrl_rx);
    if ((err = send_ctrl(vc, 0, VIRTIO_CONSOLE_DEVICE_READY, VCON_VALUE_OK)))
        goto fail_pages;
    /* QEMU answers in the notify itself; a slower device gets until timeout_ns. */
    for (uint64_t t0 = timer_now_ns(); vc->port < 0; cpu_relax()) {
        virtio_console_poll(vc);
        if (vc->port < 0 && timer_now_ns() - t0 > timeout_ns) {
            err = ERR_NOENT;
            goto fail_pages;
        }
    }
    return 0;

fail_pages:
    virtio_pci_reset(&vc->vp);     /* the device must forget the queues before the pages are reused */
    free_pages(vc);
fail:
    virtio_pci_fail(&vc->vp);
    return err;
}
