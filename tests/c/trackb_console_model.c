/* trackb_console_model.c: a model virtio-console PCI function with MULTIPORT,
 * for tests/test_trackb_console.py.
 *
 * The kernel's PCI, virtio-pci transport, virtqueue and virtio-console code is
 * compiled unchanged against tests/c/trackb_platform_model.c (platform.h, the
 * page allocator, the timer) and this device. It answers
 * DEVICE_READY/PORT_READY/PORT_OPEN like QEMU's hw/char/virtio-serial-bus.c
 * and can also write anything it likes into the driver's control and data
 * buffers and used rings (the hostile scenarios). The driver is asked for
 * Gemini's SIGNAL and UPCALL ports as aux ports (as kernel/main.c does); the
 * model keeps what it receives on each port apart.
 *
 *   trackb_console_model SCENARIO
 * prints key=value lines; abort() on any access the model does not expect. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentx_wire.h"
#include "gemini_wire.h"
#include "drivers/pci.h"
#include "drivers/virtio_console.h"
#include "drivers/virtio_console_defs.h"
#include "kernel/timer.h"
#include "trackb_platform_model.h"
#include "virtio.h"

#define PROBE_NS 20000000ULL
#define SIG GEMINI_SIGNAL_PORT_NAME
#define UPC GEMINI_UPCALL_PORT_NAME
enum { AUX_SIG, AUX_UPC };                  /* the slots kernel/env.h gives them */

/* ---- scenario knobs ---- */
static int no_multiport, transitional, silent_tx;
static uint32_t max_nr_ports = 31, num_queues = 64;

/* ---- model ports ---- */
struct mport {
    uint32_t id;
    const char *name;
    int nul;                /* QEMU sends a NUL after the name */
    int host_open;
    int guest_open;
    int ready;              /* PORT_READY value seen: 1, 0, or -1 none */
};
static struct mport ports[8];
static int nports_model;

/* ---- device state ---- */
static int device_ready_seen;
static uint8_t host_rx[1 << 20];    /* what the guest sent on the named port */
static size_t host_rx_len;
static uint8_t aux_rx[VCON_MAX_PORTS][64];   /* single bytes the guest sent on any other port */
static size_t aux_rx_len[VCON_MAX_PORTS];
static int port_ready_fail_id = -1;
static struct virtio_console vc;

static uint64_t dev_features(void)
{
    uint64_t f = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_CONSOLE_F_EMERG_WRITE /* offered, not wanted */;
    if (!no_multiport)
        f |= 1ULL << VIRTIO_CONSOLE_F_MULTIPORT;
    return f;
}

static uint16_t queue_max(unsigned n) { return n == 2 || n == 3 ? 32 : 128; }

static uint64_t config_read(uint64_t off, int size)
{
    if (off >= VIRTIO_CONSOLE_CONFIG_SIZE)
        return 0;
    uint8_t c[VIRTIO_CONSOLE_CONFIG_SIZE] = {0};
    model_put32(c + VIRTIO_CONSOLE_CONFIG_OFF_MAX_NR_PORTS, max_nr_ports);
    uint64_t r = 0;
    memcpy(&r, c + off, (size_t)size);
    return r;
}

/* Pop one available single-descriptor buffer; NULL if none. */
static struct virtq_desc *pop(unsigned n, uint16_t *head)
{
    struct virtq_desc *d = model_vq_pop(n, head);
    if (d && (d->flags & VIRTQ_DESC_F_NEXT))
        abort();                                    /* this driver never chains */
    return d;
}

/* A control message into the next control receive buffer: `len` bytes copied
 * (bounded by the buffer), `claimed` written as the used length. 0 if no buffer. */
static int ctrl_send_raw(const void *msg, uint32_t len, uint32_t claimed)
{
    uint16_t head;
    struct virtq_desc *d = pop(VCON_CTRL_RX_QUEUE, &head);
    if (!d)
        return 0;
    if (!(d->flags & VIRTQ_DESC_F_WRITE))
        abort();
    memcpy((void *)(uintptr_t)d->addr, msg, len < d->len ? len : d->len);
    model_vq_push_used(VCON_CTRL_RX_QUEUE, head, claimed);
    return 1;
}

static int ctrl_send(uint32_t id, uint16_t event, uint16_t value, const char *name, int nul)
{
    uint8_t m[256];
    struct virtio_console_control c = {id, event, value};
    uint32_t len = sizeof c;
    memcpy(m, &c, sizeof c);
    if (name) {
        size_t n = strlen(name);
        memcpy(m + len, name, n);
        len += (uint32_t)n;
        if (nul)
            m[len++] = 0;
    }
    return ctrl_send_raw(m, len, len);
}

static struct mport *port_by_id(uint32_t id)
{
    for (int i = 0; i < nports_model; i++)
        if (ports[i].id == id)
            return &ports[i];
    return NULL;
}

/* The driver sent control messages (hw/char/virtio-serial-bus.c handle_control_message). */
static void control_out(void)
{
    uint16_t head;
    struct virtq_desc *d;
    while ((d = pop(VCON_CTRL_TX_QUEUE, &head))) {
        if ((d->flags & VIRTQ_DESC_F_WRITE) || d->len != VIRTIO_CONSOLE_CONTROL_SIZE)
            abort();
        struct virtio_console_control c;
        memcpy(&c, (void *)(uintptr_t)d->addr, sizeof c);
        model_vq_push_used(VCON_CTRL_TX_QUEUE, head, 0);
        struct mport *p = port_by_id(c.id);
        switch (c.event) {
        case VIRTIO_CONSOLE_DEVICE_READY:
            if (c.value != 1)
                abort();
            device_ready_seen++;
            for (int i = 0; i < nports_model; i++)
                ctrl_send(ports[i].id, VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL, 0);
            break;
        case VIRTIO_CONSOLE_PORT_READY:
            if (!p) {
                if (c.value != 0)
                    abort();                        /* ready for a port that does not exist */
                port_ready_fail_id = (int)c.id;
                break;
            }
            p->ready = c.value;
            if (c.value) {
                if (p->name)
                    ctrl_send(p->id, VIRTIO_CONSOLE_PORT_NAME, 1, p->name, p->nul);
                if (p->host_open)
                    ctrl_send(p->id, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
            }
            break;
        case VIRTIO_CONSOLE_PORT_OPEN:
            if (!p)
                abort();
            p->guest_open = c.value;
            break;
        default:
            fprintf(stderr, "model: driver sent event %u\n", c.event);
            abort();
        }
    }
}

/* Data the driver sent on a port's transmitq: the named port's into host_rx, single bytes
 * (nothing else is expected) of an aux port into aux_rx. */
static void data_out(unsigned n)
{
    uint16_t head;
    struct virtq_desc *d;
    uint32_t port = n == 1 ? 0 : (n - 3) / 2;
    if (silent_tx)
        return;
    while ((d = pop(n, &head))) {
        if ((d->flags & VIRTQ_DESC_F_WRITE) || d->len == 0 || d->len > VCON_BUF_SIZE || port >= VCON_MAX_PORTS)
            abort();
        if ((int)port != vc.port) {
            if (d->len != 1 || aux_rx_len[port] == sizeof aux_rx[port])
                abort();
            aux_rx[port][aux_rx_len[port]++] = *(uint8_t *)(uintptr_t)d->addr;
            model_vq_push_used(n, head, 0);
            continue;
        }
        if (host_rx_len + d->len > sizeof host_rx)
            abort();
        memcpy(host_rx + host_rx_len, (void *)(uintptr_t)d->addr, d->len);
        host_rx_len += d->len;
        model_vq_push_used(n, head, 0);
    }
}

/* Host bytes into the port's receive buffers; returns how many fit. */
static size_t host_send(uint32_t port, const uint8_t *b, size_t len)
{
    size_t off = 0;
    uint16_t head;
    struct virtq_desc *d;
    while (off < len && (d = pop(vcon_rx_queue(port), &head))) {
        if (!(d->flags & VIRTQ_DESC_F_WRITE))
            abort();
        uint32_t k = len - off < d->len ? (uint32_t)(len - off) : d->len;
        memcpy((void *)(uintptr_t)d->addr, b + off, k);
        model_vq_push_used(vcon_rx_queue(port), head, k);
        off += k;
    }
    return off;
}

static void notify(unsigned n)
{
    if (n == VCON_CTRL_TX_QUEUE)
        control_out();
    else if (n != VCON_CTRL_RX_QUEUE && (n & 1))
        data_out(n);
}

/* ---- scenarios ---- */

static void report(int rc)
{
    printf("probe=%d\nstatus=%u\nfeatures=%llx\nport=%d\nnports=%u\nhost_connected=%d\nhost_opens=%u\n", rc,
           model_status, (unsigned long long)model_drv_features, vc.port, vc.nports, vc.host_connected, vc.host_opens);
    printf("device_ready=%d\nport_ready_fail=%d\n", device_ready_seen, port_ready_fail_id);
    for (int i = 0; i < nports_model; i++)
        printf("model_port=%u,ready=%d,guest_open=%d\n", ports[i].id, ports[i].ready, ports[i].guest_open);
}

static void counters(void)
{
    printf("bad_used=%u\nbad_len=%u\nbad_ctrl=%u\n", vc.bad_used, vc.bad_len, vc.bad_ctrl);
}

/* Bytes both ways through the named port: the guest's write arrives whole at the
 * host, the host's bytes are read back in order however the buffers split them. */
static int round_trip(size_t to_host, size_t to_guest)
{
    static uint8_t out[300000], in[300000], got[300000];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (uint8_t)(i * 7 + 1), in[i] = (uint8_t)(i * 13 + 5);
    size_t before = host_rx_len;
    long w = virtio_console_write(&vc, out, to_host, 100000000ULL);
    int ok = w == (long)to_host && host_rx_len - before == to_host && memcmp(host_rx + before, out, to_host) == 0;
    size_t sent = 0, have = 0;
    for (int spins = 0; have < to_guest && spins < 100000; spins++) {
        sent += host_send((uint32_t)vc.port, in + sent, to_guest - sent);
        long r = virtio_console_read(&vc, got + have, 1000);    /* small reads: buffers split */
        if (r < 0)
            return 0;
        have += (size_t)r;
    }
    return ok && have == to_guest && memcmp(got, in, to_guest) == 0;
}

static void add_port(uint32_t id, const char *name, int nul, int host_open)
{
    ports[nports_model++] = (struct mport){id, name, nul, host_open, 0, -1};
}

/* Aux ports: bytes each way kept apart per port and from the named port, a host side
 * closed until it opens, more host bytes than the buffers hold at once. */
static void aux_traffic(void)
{
    static uint8_t many[2000];
    printf("aux_ports=%d,%d\n", vc.aux[AUX_SIG].port, vc.aux[AUX_UPC].port);
    int sent = virtio_console_aux_send(&vc, AUX_SIG, 7) + virtio_console_aux_send(&vc, AUX_SIG, 8);
    printf("aux_sent=%d,%d\n", sent, virtio_console_aux_send(&vc, AUX_UPC, 9));
    for (int p = 0; p < VCON_MAX_PORTS; p++)
        for (size_t i = 0; i < aux_rx_len[p]; i++)
            printf("aux_host_rx=%d,%u\n", p, aux_rx[p][i]);
    printf("drain_closed=%ld\n", virtio_console_aux_drain(&vc, AUX_UPC));
    ctrl_send((uint32_t)vc.aux[AUX_UPC].port, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
    virtio_console_poll(&vc);
    printf("drain_open_empty=%ld\n", virtio_console_aux_drain(&vc, AUX_UPC));
    size_t in = host_send((uint32_t)vc.aux[AUX_UPC].port, many, 5);
    in += host_send((uint32_t)vc.aux[AUX_SIG].port, many, 2);
    long up = virtio_console_aux_drain(&vc, AUX_UPC), sig = virtio_console_aux_drain(&vc, AUX_SIG);
    printf("host_sent=%zu\ndrained=%ld,%ld\n", in, sig, up);
    long total = 0;
    size_t off = 0;
    for (int i = 0; i < 100 && total < (long)sizeof many; i++) {   /* the buffers come back after each drain */
        off += host_send((uint32_t)vc.aux[AUX_UPC].port, many + off, sizeof many - off);
        total += virtio_console_aux_drain(&vc, AUX_UPC);
    }
    printf("drained_many=%ld\n", total);
}

/* Removal of the UPCALL port: its bytes end both ways; the same name on a port added again
 * is not taken (the old queue may still hold its receive buffers); SIGNAL is unaffected. */
static void aux_removed(void)
{
    uint32_t id = (uint32_t)vc.aux[AUX_UPC].port;
    ctrl_send(id, VIRTIO_CONSOLE_DEVICE_REMOVE, 1, NULL, 0);
    virtio_console_poll(&vc);
    printf("removed_port=%d\nremoved_drain=%ld\nremoved_send=%d\n", vc.aux[AUX_UPC].port,
           virtio_console_aux_drain(&vc, AUX_UPC), virtio_console_aux_send(&vc, AUX_UPC, 1));
    struct mport *p = port_by_id(id);
    p->guest_open = 0;
    p->ready = -1;
    ctrl_send(id, VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL, 0);          /* back, named UPC again */
    virtio_console_poll(&vc);
    printf("readded_ready=%d\nreadded_guest_open=%d\nreadded_port=%d\n", p->ready, p->guest_open,
           vc.aux[AUX_UPC].port);
    printf("signal_after=%d\n", virtio_console_aux_send(&vc, AUX_SIG, 5));
}

/* Hostile control messages and used rings for the aux ports. */
static void aux_hostile(void)
{
    uint32_t sig = (uint32_t)vc.aux[AUX_SIG].port, upc = 3, our = (uint32_t)vc.port;
    uint32_t ctrl0 = vc.bad_ctrl, len0 = vc.bad_len, used0 = vc.bad_used;
    ctrl_send(our, VIRTIO_CONSOLE_PORT_NAME, 1, UPC, 1);            /* our port renamed UPCALL */
    ctrl_send(sig, VIRTIO_CONSOLE_PORT_NAME, 1, UPC, 1);            /* SIGNAL renamed UPCALL */
    virtio_console_poll(&vc);
    printf("upcall_before=%d\n", vc.aux[AUX_UPC].port);
    ctrl_send(upc, VIRTIO_CONSOLE_PORT_NAME, 1, UPC, 0);            /* the real one, without a NUL */
    ctrl_send(0, VIRTIO_CONSOLE_PORT_NAME, 1, UPC, 1);              /* a second UPCALL */
    ctrl_send(our, VIRTIO_CONSOLE_PORT_NAME, 1, SIG, 1);            /* our port renamed SIGNAL */
    ctrl_send(upc, VIRTIO_CONSOLE_PORT_NAME, 1, AGX_VIRTIO_SERIAL_PORT_NAME, 1);   /* UPCALL renamed ours */
    ctrl_send(upc, VIRTIO_CONSOLE_PORT_OPEN, 5, NULL, 0);           /* bad value */
    ctrl_send(77, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL, 0);            /* no such port */
    virtio_console_poll(&vc);
    printf("hostile_roles=%d,%d,%d\nhostile_connected=%d,%d\nupcall_guest_open=%d\n", vc.port,
           vc.aux[AUX_SIG].port, vc.aux[AUX_UPC].port, vc.aux[AUX_SIG].connected, vc.aux[AUX_UPC].connected,
           port_by_id(upc)->guest_open);
    unsigned rxq = vcon_rx_queue(upc);
    struct virtq_used *u = MODEL_USED(rxq);
    ((struct virtq_used_elem *)(u + 1))[u->idx % model_q[rxq].size] = (struct virtq_used_elem){999, 1};
    u->idx++;                                                        /* an id never lent */
    uint16_t head;
    struct virtq_desc *d = pop(rxq, &head);
    model_vq_push_used(rxq, head, d->len + 1);                       /* longer than the buffer */
    printf("hostile_drain=%ld\n", virtio_console_aux_drain(&vc, AUX_UPC));
    printf("aux_bad=%u,%u,%u\n", vc.bad_ctrl - ctrl0, vc.bad_len - len0, vc.bad_used - used0);
    u->idx = (uint16_t)(u->idx + 5000);                              /* runs far ahead: bounded work */
    long worst = 0;
    for (int i = 0; i < 200; i++) {
        long r = virtio_console_aux_drain(&vc, AUX_UPC);
        worst = r < worst ? r : worst;
    }
    printf("runaway_drain_min=%ld\nrunaway_bad_used=%u\n", worst, vc.bad_used - used0);
}

/* Control messages a hostile device might send: short, oversize claims, unknown
 * events and ids, a duplicate DEVICE_ADD, a port beyond the queues, a bad
 * PORT_OPEN value, a second name for our port, removal of a port never added. */
static void hostile_control(void)
{
    uint8_t junk[200];
    memset(junk, 0x41, sizeof junk);
    struct virtio_console_control c = {1, VIRTIO_CONSOLE_PORT_OPEN, 1};
    memcpy(junk, &c, sizeof c);
    ctrl_send_raw(junk, 4, 4);                                  /* shorter than a header */
    ctrl_send_raw(junk, sizeof junk, 100000);                   /* claims more than the buffer */
    ctrl_send_raw(junk, sizeof junk, VCON_CTRL_BUF_SIZE + 1);
    ctrl_send(1, 99, 1, NULL, 0);                               /* unknown event */
    ctrl_send(1, VIRTIO_CONSOLE_DEVICE_READY, 1, NULL, 0);      /* a driver-to-device event */
    ctrl_send(77, VIRTIO_CONSOLE_PORT_NAME, 1, AGX_VIRTIO_SERIAL_PORT_NAME, 1);   /* never added */
    ctrl_send(0xFFFFFFFFu, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
    ctrl_send(0xFFFFFFFFu, VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL, 0);
    ctrl_send(1, VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL, 0);        /* added twice */
    ctrl_send(6, VIRTIO_CONSOLE_DEVICE_ADD, 1, NULL, 0);        /* a valid id without queues: PORT_READY 0 */
    ctrl_send(1, VIRTIO_CONSOLE_PORT_OPEN, 7, NULL, 0);         /* bad value */
    ctrl_send(2, VIRTIO_CONSOLE_DEVICE_REMOVE, 1, NULL, 0);     /* never added */
    ctrl_send(1, VIRTIO_CONSOLE_PORT_NAME, 1, "x", 0);          /* renamed: the first name stands */
    ctrl_send(1, VIRTIO_CONSOLE_RESIZE, 0, NULL, 0);            /* harmless */
    virtio_console_poll(&vc);
    printf("after_ctrl_port=%d\nafter_ctrl_connected=%d\nport_ready_fail_after=%d\n", vc.port, vc.host_connected,
           port_ready_fail_id);
}

/* Used rings: an id never lent on the control and the data receiveq, a data
 * buffer whose used length runs past its end (dropped, not read). */
static void hostile_used(void)
{
    struct virtq_used *u = MODEL_USED(VCON_CTRL_RX_QUEUE);
    ((struct virtq_used_elem *)(u + 1))[u->idx % model_q[VCON_CTRL_RX_QUEUE].size] = (struct virtq_used_elem){999, 8};
    u->idx++;
    virtio_console_poll(&vc);
    unsigned rxq = vcon_rx_queue((uint32_t)vc.port);
    u = MODEL_USED(rxq);
    ((struct virtq_used_elem *)(u + 1))[u->idx % model_q[rxq].size] = (struct virtq_used_elem){999, 16};
    u->idx++;
    uint8_t buf[64];
    printf("read_bad_id=%ld\n", virtio_console_read(&vc, buf, sizeof buf));
    uint16_t head;
    struct virtq_desc *d = pop(rxq, &head);
    memset((void *)(uintptr_t)d->addr, 0x5A, d->len);
    model_vq_push_used(rxq, head, VCON_BUF_SIZE + 4096);
    printf("read_oversize=%ld\n", virtio_console_read(&vc, buf, sizeof buf));
}

/* The receive used index runs far ahead (stale ring entries): bounded work per call, no fault. */
static void hostile_runaway(void)
{
    unsigned rxq = vcon_rx_queue((uint32_t)vc.port);
    struct virtq_used *u = MODEL_USED(rxq);
    u->idx = (uint16_t)(u->idx + 5000);
    uint8_t buf[64];
    long r, worst = 0;
    for (int i = 0; i < 200; i++)
        if ((r = virtio_console_read(&vc, buf, sizeof buf)) < worst)
            worst = r;
    printf("read_runaway_min=%ld\nrunaway_bad_used=%u\n", worst, vc.bad_used);
}

/* The host side closes and opens: writes vanish while closed, each open is counted once. */
static void host_connects(void)
{
    static const uint8_t x[100] = {1};
    printf("write_closed=%ld\nhost_bytes_closed=%zu\n", virtio_console_write(&vc, x, sizeof x, 1000000ULL),
           host_rx_len);
    ctrl_send(1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
    virtio_console_poll(&vc);
    printf("opens_after_connect=%u\n", vc.host_opens);
    ctrl_send(1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);       /* a repeat is not a new connect */
    ctrl_send(1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL, 0);
    virtio_console_poll(&vc);
    printf("connected_after_close=%d\nopens_after_close=%u\n", vc.host_connected, vc.host_opens);
    printf("write_after_close=%ld\nhost_bytes_after_close=%zu\n", virtio_console_write(&vc, x, sizeof x, 1000000ULL),
           host_rx_len);
    ctrl_send(1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
    virtio_console_poll(&vc);
    printf("opens_after_reconnect=%u\n", vc.host_opens);
}

int main(int argc, char **argv)
{
    const char *s = argc > 1 ? argv[1] : "qemu";
    no_multiport = !strcmp(s, "no_multiport");
    transitional = !strcmp(s, "transitional");
    silent_tx = !strcmp(s, "silent_tx");
    if (!strcmp(s, "zero_ports"))
        max_nr_ports = 0;
    if (!strcmp(s, "huge_ports"))
        max_nr_ports = 0xFFFFFFFFu;
    if (!strcmp(s, "few_queues"))
        num_queues = 6;                             /* control + ports 0 and 1 despite max_nr_ports 31 */

    if (!strcmp(s, "aux")) {                        /* QEMU here: AgentX, SIGNAL, UPCALL (host not there yet) */
        add_port(1, AGX_VIRTIO_SERIAL_PORT_NAME, 1, 1);
        add_port(2, SIG, 1, 1);
        add_port(3, UPC, 1, 0);
    } else if (!strcmp(s, "aux_names")) {           /* near misses; aux names before ours; no NUL */
        add_port(0, UPC "-x", 1, 1);
        add_port(1, SIG, 1, 1);
        add_port(2, AGX_VIRTIO_SERIAL_PORT_NAME, 1, 1);
        add_port(3, NULL, 0, 1);                                   /* named later (aux_hostile) */
        add_port(5, SIG, 1, 1);                                    /* beyond the queues: refused */
    } else if (!strcmp(s, "names")) {               /* near misses first; the real one has no NUL */
        add_port(1, "org.wslx.agentx-evil", 1, 0);
        add_port(2, "org.wslx.agen", 1, 0);
        add_port(3, AGX_VIRTIO_SERIAL_PORT_NAME, 0, 1);
        add_port(5, AGX_VIRTIO_SERIAL_PORT_NAME, 1, 1);  /* beyond the ports with queues */
    } else if (!strcmp(s, "no_port")) {
        add_port(1, "com.example.other", 1, 1);
    } else if (!strcmp(s, "host_late")) {
        add_port(1, AGX_VIRTIO_SERIAL_PORT_NAME, 1, 0);
    } else {
        add_port(1, AGX_VIRTIO_SERIAL_PORT_NAME, 1, 1);   /* QEMU: virtserialports count from 1 */
    }
    struct model_virtio_dev console = {
        .slot = 3, .device_id = transitional ? VIRTIO_CONSOLE_PCI_TRANSITIONAL_ID : VIRTIO_CONSOLE_PCI_DEVICE_ID,
        .class_rev = 0x07800001,                    /* class 07:80, communication */
        .num_queues = num_queues, .features = dev_features, .queue_max = queue_max, .config_read = config_read,
        .notify = notify,
    };
    model_virtio_init(&console);
    printf("devices=%d\n", model_pci_enumerate());
    struct pci_dev *d = pci_find(VIRTIO_PCI_VENDOR_ID, VIRTIO_CONSOLE_PCI_DEVICE_ID);
    if (!d)
        d = pci_find(VIRTIO_PCI_VENDOR_ID, VIRTIO_CONSOLE_PCI_TRANSITIONAL_ID);
    if (!d)
        return 1;
    uint64_t t0 = timer_now_ns();
    virtio_console_want_aux(&vc, AUX_SIG, SIG);
    virtio_console_want_aux(&vc, AUX_UPC, UPC);
    virtio_console_want_aux(&vc, VCON_AUX_MAX, "org.wslx.nowhere");   /* no such slot: ignored */
    int rc = virtio_console_probe(d, &vc, AGX_VIRTIO_SERIAL_PORT_NAME, PROBE_NS);
    printf("probe_ms=%llu\n", (unsigned long long)((timer_now_ns() - t0) / 1000000));
    report(rc);
    if (rc) {
        printf("pages_out=%d\n", model_pages_out);
        return 0;
    }
    if (silent_tx) {                                /* the device never hands transmit buffers back */
        static uint8_t big[200000];
        t0 = timer_now_ns();
        long w = virtio_console_write(&vc, big, sizeof big, 30000000ULL);
        printf("write=%ld\nwrite_ms=%llu\n", w, (unsigned long long)((timer_now_ns() - t0) / 1000000));
        printf("pages_out=%d\n", model_pages_out);
        return 0;
    }
    if (!strcmp(s, "host_late"))
        host_connects();
    if (!strcmp(s, "hostile")) {
        hostile_control();
        hostile_used();
    }
    if (!strcmp(s, "aux")) {
        aux_traffic();
        aux_removed();
    }
    if (!strcmp(s, "aux_names"))
        aux_hostile();
    counters();
    int rt = round_trip(200000, 50000);
    printf("round_trip=%d\nhost_bytes=%zu\nnotifies=%d\n", rt, host_rx_len, model_notifies);
    if (!strcmp(s, "hostile"))
        hostile_runaway();
    if (!strcmp(s, "removed") || !strcmp(s, "hostile")) {
        ctrl_send((uint32_t)vc.port, VIRTIO_CONSOLE_DEVICE_REMOVE, 1, NULL, 0);
        uint8_t b[8];
        printf("read_removed=%ld\n", virtio_console_read(&vc, b, sizeof b));
        printf("write_removed=%ld\n", virtio_console_write(&vc, b, sizeof b, 1000000ULL));
    }
    printf("pages_out=%d\n", model_pages_out);
    return 0;
}
