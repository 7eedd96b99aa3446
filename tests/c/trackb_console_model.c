/* trackb_console_model.c: a host model of the platform layer and one
 * virtio-console PCI function with MULTIPORT, for tests/test_trackb_console.py.
 *
 * The kernel's PCI, virtio-pci transport, virtqueue and virtio-console code is
 * compiled unchanged against this file (the approach of tests/c/trackb_model.c):
 * platform.h is MMIO dispatch to the model (ECAM config space, BAR 4 with the
 * common configuration, ISR, device configuration and per-queue notify
 * registers), the page allocator hands out aligned heap pages (so ASan sees
 * any access past a buffer), and the timer is CLOCK_MONOTONIC. The model
 * device answers DEVICE_READY/PORT_READY/PORT_OPEN like QEMU's
 * hw/char/virtio-serial-bus.c and can also write anything it likes into the
 * driver's control and data buffers and used rings (the hostile scenarios).
 *
 *   trackb_console_model SCENARIO
 * prints key=value lines; abort() on any access the model does not expect. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agentx_wire.h"
#include "drivers/pci.h"
#include "drivers/virtio_console.h"
#include "drivers/virtio_console_defs.h"
#include "kernel/pmm.h"
#include "kernel/timer.h"
#include "kernel/vm.h"
#include "platform/platform.h"
#include "virtio.h"

#define ECAM_BASE 0xB0000000ULL
#define ECAM_SIZE (256ULL << 20)
#define DEV 3                       /* the model sits at 00:03.0 */
#define BAR4_SIZE 0x4000ULL
#define NOTIFY_BASE 0x3000u
#define NOTIFY_MULT 4u
#define MAXQ 64
#define PROBE_NS 20000000ULL

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
static uint8_t cfg[256];
static uint64_t bar_val[6], bar_mask[6];
static uint32_t dfsel, drfsel;
static uint64_t drv_features;
static uint8_t status;
static uint16_t qsel;
static struct {
    uint16_t size, enable, last_avail;
    uint64_t desc, driver, device;
} q[MAXQ];
static int device_ready_seen, notifies;
static uint8_t host_rx[1 << 20];    /* what the guest sent on the named port */
static size_t host_rx_len;
static int port_ready_fail_id = -1;

static uint64_t dev_features(void)
{
    uint64_t f = 1ULL << VIRTIO_F_VERSION_1 | 1ULL << VIRTIO_CONSOLE_F_EMERG_WRITE /* offered, not wanted */;
    if (!no_multiport)
        f |= 1ULL << VIRTIO_CONSOLE_F_MULTIPORT;
    return f;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static void cap(uint8_t off, uint8_t next, uint8_t len, uint8_t type, uint8_t bar, uint32_t o, uint32_t l)
{
    uint8_t *c = cfg + off;
    c[0] = VIRTIO_PCI_CAP_ID_VNDR, c[1] = next, c[2] = len, c[3] = type, c[4] = bar;
    put32(c + 8, o);
    put32(c + 12, l);
}

static void build_config_space(void)
{
    uint16_t id = transitional ? VIRTIO_CONSOLE_PCI_TRANSITIONAL_ID : VIRTIO_CONSOLE_PCI_DEVICE_ID;
    put32(cfg + 0, VIRTIO_PCI_VENDOR_ID | (uint32_t)id << 16);
    cfg[6] = 0x10;
    put32(cfg + 8, 0x07800001);                     /* class 07:80, communication */
    cfg[0x34] = 0x40;
    cap(0x40, 0x54, 20, VIRTIO_PCI_CAP_NOTIFY_CFG, 4, NOTIFY_BASE, 0x1000);
    put32(cfg + 0x40 + 16, NOTIFY_MULT);
    cap(0x54, 0x64, 16, VIRTIO_PCI_CAP_DEVICE_CFG, 4, 0x2000, 0x1000);
    cap(0x64, 0x74, 16, VIRTIO_PCI_CAP_ISR_CFG, 4, 0x1000, 0x1000);
    cap(0x74, 0, 16, VIRTIO_PCI_CAP_COMMON_CFG, 4, 0, 0x1000);
    bar_mask[4] = ~(BAR4_SIZE - 1);
}

/* ---- config space (ECAM) ---- */
static uint32_t cfg_read(uint64_t off)
{
    if (off >= 0x10 && off < 0x28) {
        int i = (int)(off - 0x10) / 4, lo = !(i & 1);
        int b = lo ? i : i - 1;
        if (!bar_mask[b])
            return 0;
        uint64_t v = bar_val[b];
        return lo ? ((uint32_t)v & ~0xFu) | 0x4 | 0x8 : (uint32_t)(v >> 32);
    }
    uint32_t v;
    memcpy(&v, cfg + off, 4);
    return v;
}

static void cfg_write(uint64_t off, uint32_t v)
{
    if (off >= 0x10 && off < 0x28) {
        int i = (int)(off - 0x10) / 4, lo = !(i & 1);
        int b = lo ? i : i - 1;
        if (!bar_mask[b])
            return;
        uint64_t cur = bar_val[b];
        cur = lo ? (cur & ~0xFFFFFFFFULL) | (v & ~0xFu) : (cur & 0xFFFFFFFFULL) | (uint64_t)v << 32;
        bar_val[b] = cur & bar_mask[b];
        return;
    }
    if (off == 4) {
        memcpy(cfg + 4, &v, 2);
        return;
    }
    fprintf(stderr, "model: config write %llx\n", (unsigned long long)off);
    abort();
}

/* ---- virtqueues, device side ---- */
#define AVAIL(n) ((struct virtq_avail *)(uintptr_t)q[n].driver)
#define USED(n) ((struct virtq_used *)(uintptr_t)q[n].device)
#define DESC(n) ((struct virtq_desc *)(uintptr_t)q[n].desc)

static int ready(unsigned n) { return n < MAXQ && q[n].enable && (status & VIRTIO_STATUS_DRIVER_OK); }

/* Pop one available single-descriptor buffer; NULL if none. */
static struct virtq_desc *pop(unsigned n, uint16_t *head)
{
    if (!ready(n))
        return NULL;
    struct virtq_avail *av = AVAIL(n);
    if (q[n].last_avail == av->idx)
        return NULL;
    uint16_t *ring = (uint16_t *)(av + 1);
    *head = ring[q[n].last_avail % q[n].size];
    q[n].last_avail++;
    if (*head >= q[n].size)
        abort();                                    /* the driver published a bad head */
    struct virtq_desc *d = &DESC(n)[*head];
    if (d->flags & VIRTQ_DESC_F_NEXT)
        abort();                                    /* this driver never chains */
    return d;
}

static void push_used(unsigned n, uint32_t id, uint32_t len)
{
    struct virtq_used *u = USED(n);
    struct virtq_used_elem *ring = (struct virtq_used_elem *)(u + 1);
    ring[u->idx % q[n].size] = (struct virtq_used_elem){id, len};
    __atomic_store_n(&u->idx, (uint16_t)(u->idx + 1), __ATOMIC_RELEASE);
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
    push_used(VCON_CTRL_RX_QUEUE, head, claimed);
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
        push_used(VCON_CTRL_TX_QUEUE, head, 0);
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

/* Data the driver sent on a port's transmitq. */
static void data_out(unsigned n)
{
    uint16_t head;
    struct virtq_desc *d;
    if (silent_tx)
        return;
    while ((d = pop(n, &head))) {
        if ((d->flags & VIRTQ_DESC_F_WRITE) || d->len == 0 || d->len > VCON_BUF_SIZE)
            abort();
        if (host_rx_len + d->len > sizeof host_rx)
            abort();
        memcpy(host_rx + host_rx_len, (void *)(uintptr_t)d->addr, d->len);
        host_rx_len += d->len;
        push_used(n, head, 0);
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
        push_used(vcon_rx_queue(port), head, k);
        off += k;
    }
    return off;
}

/* ---- BAR 4 registers ---- */
#define CC(f) VIRTIO_PCI_COMMON_CFG_OFF_##f

static uint64_t bar4_read(uint64_t off, int size)
{
    if (off >= 0x2000 && off < 0x2000 + VIRTIO_CONSOLE_CONFIG_SIZE) {
        uint8_t c[VIRTIO_CONSOLE_CONFIG_SIZE] = {0};
        put32(c + VIRTIO_CONSOLE_CONFIG_OFF_MAX_NR_PORTS, max_nr_ports);
        uint64_t r = 0;
        memcpy(&r, c + (off - 0x2000), (size_t)size);
        return r;
    }
    if (off >= 0x2000 && off < 0x3000)
        return 0;
    switch (off) {
    case CC(DEVICE_FEATURE): return (uint32_t)(dev_features() >> (32 * dfsel));
    case CC(NUM_QUEUES): return num_queues;
    case CC(DEVICE_STATUS): return status;
    case CC(CONFIG_GENERATION): return 0;
    case CC(QUEUE_SIZE): return qsel < num_queues ? (qsel == 2 || qsel == 3 ? 32 : 128) : 0;
    case CC(QUEUE_ENABLE): return qsel < MAXQ ? q[qsel].enable : 0;
    case CC(QUEUE_NOTIFY_OFF): return qsel;
    }
    fprintf(stderr, "model: BAR4 read %llx/%d\n", (unsigned long long)off, size);
    abort();
}

static void bar4_write(uint64_t off, uint64_t v, int size)
{
    if (off >= NOTIFY_BASE && off < NOTIFY_BASE + MAXQ * NOTIFY_MULT) {
        unsigned n = (unsigned)(off - NOTIFY_BASE) / NOTIFY_MULT;
        if (size != 2 || v != n || !ready(n))
            abort();                                /* notify of a queue that is not live */
        notifies++;
        if (n == VCON_CTRL_TX_QUEUE)
            control_out();
        else if (n != VCON_CTRL_RX_QUEUE && (n & 1))
            data_out(n);
        return;
    }
    if (qsel >= MAXQ && off >= CC(QUEUE_SIZE))
        abort();
    switch (off) {
    case CC(DEVICE_FEATURE_SELECT): dfsel = (uint32_t)v; return;
    case CC(DRIVER_FEATURE_SELECT): drfsel = (uint32_t)v; return;
    case CC(DRIVER_FEATURE):
        drv_features = (drv_features & ~(0xFFFFFFFFULL << (32 * drfsel))) | v << (32 * drfsel);
        return;
    case CC(DEVICE_STATUS):
        if (v == 0) {                               /* reset: forget every queue */
            status = 0, drv_features = 0;
            memset(q, 0, sizeof q);
            return;
        }
        if ((v & VIRTIO_STATUS_FEATURES_OK) && (drv_features & ~dev_features()))
            v &= ~(uint64_t)VIRTIO_STATUS_FEATURES_OK;
        status = (uint8_t)v;
        return;
    case CC(QUEUE_SELECT): qsel = (uint16_t)v; return;
    case CC(QUEUE_SIZE):
        if (v == 0 || v > 128 || (v & (v - 1)))
            abort();
        q[qsel].size = (uint16_t)v;
        return;
    case CC(QUEUE_ENABLE):
        if (v != 1 || qsel >= num_queues)
            abort();
        q[qsel].enable = 1;
        return;
    case CC(QUEUE_DESC): q[qsel].desc = (q[qsel].desc & ~0xFFFFFFFFULL) | v; return;
    case CC(QUEUE_DESC) + 4: q[qsel].desc = (q[qsel].desc & 0xFFFFFFFFULL) | v << 32; return;
    case CC(QUEUE_DRIVER): q[qsel].driver = (q[qsel].driver & ~0xFFFFFFFFULL) | v; return;
    case CC(QUEUE_DRIVER) + 4: q[qsel].driver = (q[qsel].driver & 0xFFFFFFFFULL) | v << 32; return;
    case CC(QUEUE_DEVICE): q[qsel].device = (q[qsel].device & ~0xFFFFFFFFULL) | v; return;
    case CC(QUEUE_DEVICE) + 4: q[qsel].device = (q[qsel].device & 0xFFFFFFFFULL) | v << 32; return;
    }
    fprintf(stderr, "model: BAR4 write %llx/%d\n", (unsigned long long)off, size);
    abort();
}

static uint64_t mmio(uint64_t pa, int size, int write, uint64_t v)
{
    if (pa >= ECAM_BASE && pa < ECAM_BASE + ECAM_SIZE) {
        uint64_t rel = pa - ECAM_BASE, off = rel & 0xFFF;
        unsigned bus = (unsigned)(rel >> 20), dev = (unsigned)(rel >> 15) & 31, fn = (unsigned)(rel >> 12) & 7;
        if (size != 4 || (off & 3))
            abort();
        if (bus != 0 || dev != DEV || fn != 0)
            return write ? 0 : 0xFFFFFFFFu;
        if (write)
            cfg_write(off, (uint32_t)v);
        return write ? 0 : cfg_read(off);
    }
    if (bar_val[4] && pa >= bar_val[4] && pa < bar_val[4] + BAR4_SIZE && (cfg[4] & 2)) {
        if (write)
            bar4_write(pa - bar_val[4], v, size);
        return write ? 0 : bar4_read(pa - bar_val[4], size);
    }
    fprintf(stderr, "model: unexpected MMIO %s %llx/%d\n", write ? "write" : "read", (unsigned long long)pa, size);
    abort();
}

/* ---- platform.h ---- */
uint8_t pio_in8(uint16_t port) { (void)port; abort(); }
uint16_t pio_in16(uint16_t port) { (void)port; abort(); }
uint32_t pio_in32(uint16_t port) { (void)port; abort(); }
void pio_out8(uint16_t port, uint8_t v) { (void)port, (void)v; abort(); }
void pio_out16(uint16_t port, uint16_t v) { (void)port, (void)v; abort(); }
void pio_out32(uint16_t port, uint32_t v) { (void)port, (void)v; abort(); }
uint8_t mmio_read8(uint64_t pa) { return (uint8_t)mmio(pa, 1, 0, 0); }
uint16_t mmio_read16(uint64_t pa) { return (uint16_t)mmio(pa, 2, 0, 0); }
uint32_t mmio_read32(uint64_t pa) { return (uint32_t)mmio(pa, 4, 0, 0); }
uint64_t mmio_read64(uint64_t pa) { (void)pa; abort(); }
void mmio_write8(uint64_t pa, uint8_t v) { mmio(pa, 1, 1, v); }
void mmio_write16(uint64_t pa, uint16_t v) { mmio(pa, 2, 1, v); }
void mmio_write32(uint64_t pa, uint32_t v) { mmio(pa, 4, 1, v); }
void mmio_write64(uint64_t pa, uint64_t v) { (void)pa, (void)v; abort(); }
void *phys_ptr(uint64_t pa, uint64_t len) { return len ? (void *)(uintptr_t)pa : NULL; }
uint64_t virt_to_phys(const void *p) { return (uint64_t)(uintptr_t)p; }
void cpu_relax(void) {}
void mb(void) { __sync_synchronize(); }
void rmb(void) { __sync_synchronize(); }
void wmb(void) { __sync_synchronize(); }

/* ---- kernel services the drivers use ---- */
static int pages_out;
uint64_t pmm_alloc_page(void)
{
    void *p = aligned_alloc(4096, 4096);
    memset(p, 0xA5, 4096);                          /* not zeroed: the driver must not rely on it */
    pages_out++;
    return (uint64_t)(uintptr_t)p;
}
uint64_t pmm_alloc_zeroed(void)
{
    uint64_t pa = pmm_alloc_page();
    memset((void *)(uintptr_t)pa, 0, 4096);
    return pa;
}
void pmm_free_page(uint64_t pa)
{
    free((void *)(uintptr_t)pa);
    pages_out--;
}
int vm_map_identity(uint64_t pa, uint64_t len, int uncached)
{
    (void)pa, (void)len, (void)uncached;
    return 0;
}
uint64_t timer_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}
void kprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}
void kdetail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

/* ---- scenarios ---- */
static struct virtio_console vc;

static void report(int rc)
{
    printf("probe=%d\nstatus=%u\nfeatures=%llx\nport=%d\nnports=%u\nhost_connected=%d\nhost_opens=%u\n", rc,
           status, (unsigned long long)drv_features, vc.port, vc.nports, vc.host_connected, vc.host_opens);
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
    int w = virtio_console_write(&vc, out, to_host, 100000000ULL);
    int ok = w == 0 && host_rx_len - before == to_host && memcmp(host_rx + before, out, to_host) == 0;
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
    struct virtq_used *u = USED(VCON_CTRL_RX_QUEUE);
    ((struct virtq_used_elem *)(u + 1))[u->idx % q[VCON_CTRL_RX_QUEUE].size] = (struct virtq_used_elem){999, 8};
    u->idx++;
    virtio_console_poll(&vc);
    unsigned rxq = vcon_rx_queue((uint32_t)vc.port);
    u = USED(rxq);
    ((struct virtq_used_elem *)(u + 1))[u->idx % q[rxq].size] = (struct virtq_used_elem){999, 16};
    u->idx++;
    uint8_t buf[64];
    printf("read_bad_id=%ld\n", virtio_console_read(&vc, buf, sizeof buf));
    uint16_t head;
    struct virtq_desc *d = pop(rxq, &head);
    memset((void *)(uintptr_t)d->addr, 0x5A, d->len);
    push_used(rxq, head, VCON_BUF_SIZE + 4096);
    printf("read_oversize=%ld\n", virtio_console_read(&vc, buf, sizeof buf));
}

/* The receive used index runs far ahead (stale ring entries): bounded work per call, no fault. */
static void hostile_runaway(void)
{
    unsigned rxq = vcon_rx_queue((uint32_t)vc.port);
    struct virtq_used *u = USED(rxq);
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
    printf("write_closed=%d\nhost_bytes_closed=%zu\n", virtio_console_write(&vc, x, sizeof x, 1000000ULL),
           host_rx_len);
    ctrl_send(1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);
    virtio_console_poll(&vc);
    printf("opens_after_connect=%u\n", vc.host_opens);
    ctrl_send(1, VIRTIO_CONSOLE_PORT_OPEN, 1, NULL, 0);       /* a repeat is not a new connect */
    ctrl_send(1, VIRTIO_CONSOLE_PORT_OPEN, 0, NULL, 0);
    virtio_console_poll(&vc);
    printf("connected_after_close=%d\nopens_after_close=%u\n", vc.host_connected, vc.host_opens);
    printf("write_after_close=%d\nhost_bytes_after_close=%zu\n", virtio_console_write(&vc, x, sizeof x, 1000000ULL),
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

    if (!strcmp(s, "names")) {                      /* near misses first; the real one has no NUL */
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
    build_config_space();

    struct ecam_region ecam = {ECAM_BASE, 0, 0, 255};
    pci_init(&ecam, 1, 0xC0000000ULL, 0xFEC00000ULL);
    printf("devices=%d\n", pci_enumerate());
    struct pci_dev *d = pci_find(VIRTIO_PCI_VENDOR_ID, VIRTIO_CONSOLE_PCI_DEVICE_ID);
    if (!d)
        d = pci_find(VIRTIO_PCI_VENDOR_ID, VIRTIO_CONSOLE_PCI_TRANSITIONAL_ID);
    if (!d)
        return 1;
    uint64_t t0 = timer_now_ns();
    int rc = virtio_console_probe(d, &vc, AGX_VIRTIO_SERIAL_PORT_NAME, PROBE_NS);
    printf("probe_ms=%llu\n", (unsigned long long)((timer_now_ns() - t0) / 1000000));
    report(rc);
    if (rc) {
        printf("pages_out=%d\n", pages_out);
        return 0;
    }
    if (silent_tx) {                                /* the device never hands transmit buffers back */
        static uint8_t big[200000];
        t0 = timer_now_ns();
        int w = virtio_console_write(&vc, big, sizeof big, 30000000ULL);
        printf("write=%d\nwrite_ms=%llu\n", w, (unsigned long long)((timer_now_ns() - t0) / 1000000));
        printf("pages_out=%d\n", pages_out);
        return 0;
    }
    if (!strcmp(s, "host_late"))
        host_connects();
    if (!strcmp(s, "hostile")) {
        hostile_control();
        hostile_used();
    }
    counters();
    int rt = round_trip(200000, 50000);
    printf("round_trip=%d\nhost_bytes=%zu\nnotifies=%d\n", rt, host_rx_len, notifies);
    if (!strcmp(s, "hostile"))
        hostile_runaway();
    if (!strcmp(s, "removed") || !strcmp(s, "hostile")) {
        ctrl_send((uint32_t)vc.port, VIRTIO_CONSOLE_DEVICE_REMOVE, 1, NULL, 0);
        uint8_t b[8];
        printf("read_removed=%ld\n", virtio_console_read(&vc, b, sizeof b));
        printf("write_removed=%d\n", virtio_console_write(&vc, b, sizeof b, 1000000ULL));
    }
    printf("pages_out=%d\n", pages_out);
    return 0;
}
