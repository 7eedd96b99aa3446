/* trackb_model.c: a host model of the platform layer and one virtio-pmem PCI
 * function, for tests/test_trackb_parsers.py::test_model_*.
 *
 * The kernel's PCI, virtio-pci transport, virtqueue and virtio-pmem code is
 * compiled unchanged against this file, which implements platform.h (MMIO
 * dispatch to the model: ECAM config space, BAR 4 registers), the page
 * allocator, vm.h and the timer. "Physical" addresses are host addresses.
 *
 *   trackb_model SCENARIO
 * prints key=value lines; abort() on any access the model does not expect. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "drivers/pci.h"
#include "drivers/virtio_pmem.h"
#include "kernel/console.h"
#include "kernel/pmm.h"
#include "kernel/timer.h"
#include "kernel/vm.h"
#include "platform/platform.h"
#include "virtio.h"

#define ECAM_BASE 0xB0000000ULL
#define ECAM_SIZE (256ULL << 20)
#define DEV 1                       /* the model sits at 00:01.0 */
#define BAR4_SIZE 0x4000ULL
#define SHM_BAR2_SIZE (32ULL << 20)
#define QEMU_START 0x100000000ULL
#define QEMU_SIZE (16ULL << 20)

/* ---- scenario knobs ---- */
static int openvmm;            /* config 0/0 + shared memory cap on BAR 2 */
static int no_version1, refuse_features, device_error, silent, bad_used_id, max_queue = 128;
static int scribble_next, late, short_len, cap_beyond_bar, notify_beyond, over_ram;

/* ---- device state ---- */
static uint8_t cfg[256];
static uint64_t bar_val[6], bar_mask[6];
static uint32_t dfsel, drfsel, num_queues = 1;
static uint64_t drv_features;
static uint8_t status;
static uint16_t qsel, qsize = 128, qenable;
static uint64_t qdesc, qdriver, qdevice;
static uint16_t last_avail;
static int flushes, notifies;
static uint64_t mapped[8][2];
static int n_mapped;

static uint64_t dev_features(void)
{
    uint64_t f = 1ULL << VIRTIO_PMEM_F_SHMEM_REGION | 1ULL << 33 /* something we do not want */;
    if (!no_version1)
        f |= 1ULL << VIRTIO_F_VERSION_1;
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
    put32(cfg + 0, VIRTIO_PCI_VENDOR_ID | (uint32_t)VIRTIO_PMEM_PCI_DEVICE_ID << 16);
    cfg[6] = 0x10;                                  /* capability list */
    put32(cfg + 8, 0x05800001);                     /* class 05:80 */
    cfg[0x34] = 0x40;
    cap(0x40, 0x54, 20, VIRTIO_PCI_CAP_NOTIFY_CFG, 4, 0x3000, 0x1000);
    put32(cfg + 0x40 + 16, 4);                      /* notify_off_multiplier */
    cap(0x54, 0x64, 16, VIRTIO_PCI_CAP_DEVICE_CFG, 4, cap_beyond_bar ? 0x3800 : 0x2000, 0x1000);  /* 0x3800: ends past BAR 4 */
    cap(0x64, 0x74, 16, VIRTIO_PCI_CAP_ISR_CFG, 4, 0x1000, 0x1000);
    cap(0x74, openvmm ? 0x84 : 0, 16, VIRTIO_PCI_CAP_COMMON_CFG, 4, 0, 0x1000);
    if (openvmm) {
        cap(0x84, 0, 24, VIRTIO_PCI_CAP_SHARED_MEMORY_CFG, 2, 0, (uint32_t)SHM_BAR2_SIZE);
        cfg[0x84 + 5] = VIRTIO_PMEM_SHMEM_REGION_ID;
        bar_mask[2] = ~(SHM_BAR2_SIZE - 1);
    }
    bar_mask[4] = ~(BAR4_SIZE - 1);
}

/* ---- config space (ECAM) ---- */
static uint32_t cfg_read(uint64_t off)
{
    if (off >= 0x10 && off < 0x28) {                /* BARs: 64-bit memory BARs 2 and 4 */
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
        memcpy(cfg + 4, &v, 2);                     /* command; status is read-only here */
        return;
    }
    fprintf(stderr, "model: config write %llx\n", (unsigned long long)off);
    abort();
}

/* ---- the device: process the request queue on notify ---- */
static void process_queue(void)
{
    notifies++;
    if (silent || (late && notifies == 1))      /* late: the first request is answered on the second notify */
        return;
    struct virtq_avail *av = (struct virtq_avail *)(uintptr_t)qdriver;
    uint16_t *ring = (uint16_t *)(av + 1);
    struct virtq_used *used = (struct virtq_used *)(uintptr_t)qdevice;
    struct virtq_used_elem *uring = (struct virtq_used_elem *)(used + 1);
    struct virtq_desc *desc = (struct virtq_desc *)(uintptr_t)qdesc;
    while (last_avail != av->idx) {
        uint16_t head = ring[last_avail % qsize];
        last_avail++;
        struct virtq_desc *rq = &desc[head];
        if (!(rq->flags & VIRTQ_DESC_F_NEXT) || rq->len != 4 || (rq->flags & VIRTQ_DESC_F_WRITE))
            abort();                                /* the driver must send req, then resp */
        struct virtq_desc *rs = &desc[rq->next];
        if (!(rs->flags & VIRTQ_DESC_F_WRITE) || rs->len != 4 || *(uint32_t *)(uintptr_t)rq->addr != 0)
            abort();
        *(uint32_t *)(uintptr_t)rs->addr = device_error ? 1 : 0;
        flushes++;
        uring[used->idx % qsize] = (struct virtq_used_elem){bad_used_id ? 999u : head, short_len ? 0u : 4u};
        __atomic_store_n(&used->idx, (uint16_t)(used->idx + 1), __ATOMIC_RELEASE);
    }
    if (scribble_next)                              /* a hostile device rewrites the descriptor table */
        for (unsigned i = 0; i < qsize; i++)
            desc[i].next = 999;
}

/* ---- BAR 4 registers ---- */
#define CC(f) VIRTIO_PCI_COMMON_CFG_OFF_##f

static uint64_t bar4_read(uint64_t off, int size)
{
    if (off >= 0x2000 && off < 0x2000 + 16) {       /* device config: start, size */
        uint64_t v[2] = {openvmm ? 0 : over_ram ? 0x1000000ULL : QEMU_START, openvmm ? 0 : QEMU_SIZE}, r = 0;
        memcpy(&r, (uint8_t *)v + (off - 0x2000), (size_t)size);
        return r;
    }
    switch (off) {
    case CC(DEVICE_FEATURE): return (uint32_t)(dev_features() >> (32 * dfsel));
    case CC(NUM_QUEUES): return num_queues;
    case CC(DEVICE_STATUS): return status;
    case CC(CONFIG_GENERATION): return 0;
    case CC(QUEUE_SIZE): return qsel == 0 ? qsize : 0;
    case CC(QUEUE_ENABLE): return qenable;
    case CC(QUEUE_NOTIFY_OFF): return notify_beyond ? 0x400 : 0;   /* x4: past the 4 KiB notify cap */
    }
    fprintf(stderr, "model: BAR4 read %llx/%d\n", (unsigned long long)off, size);
    abort();
}

static void bar4_write(uint64_t off, uint64_t v, int size)
{
    switch (off) {
    case CC(DEVICE_FEATURE_SELECT): dfsel = (uint32_t)v; return;
    case CC(DRIVER_FEATURE_SELECT): drfsel = (uint32_t)v; return;
    case CC(DRIVER_FEATURE):
        drv_features = (drv_features & ~(0xFFFFFFFFULL << (32 * drfsel))) | v << (32 * drfsel);
        return;
    case CC(DEVICE_STATUS):
        if (v == 0) {                               /* reset */
            status = 0, qenable = 0, last_avail = 0, drv_features = 0, qsize = (uint16_t)max_queue;
            return;
        }
        if ((v & VIRTIO_STATUS_FEATURES_OK) && (refuse_features || (drv_features & ~dev_features())))
            v &= ~(uint64_t)VIRTIO_STATUS_FEATURES_OK;
        status = (uint8_t)v;
        return;
    case CC(QUEUE_SELECT): qsel = (uint16_t)v; return;
    case CC(QUEUE_SIZE):
        if (v == 0 || v > (uint64_t)max_queue || (v & (v - 1)))
            abort();
        qsize = (uint16_t)v;
        return;
    case CC(QUEUE_ENABLE): qenable = (uint16_t)v; return;
    case CC(QUEUE_DESC): qdesc = (qdesc & ~0xFFFFFFFFULL) | v; return;
    case CC(QUEUE_DESC) + 4: qdesc = (qdesc & 0xFFFFFFFFULL) | v << 32; return;
    case CC(QUEUE_DRIVER): qdriver = (qdriver & ~0xFFFFFFFFULL) | v; return;
    case CC(QUEUE_DRIVER) + 4: qdriver = (qdriver & 0xFFFFFFFFULL) | v << 32; return;
    case CC(QUEUE_DEVICE): qdevice = (qdevice & ~0xFFFFFFFFULL) | v; return;
    case CC(QUEUE_DEVICE) + 4: qdevice = (qdevice & 0xFFFFFFFFULL) | v << 32; return;
    case 0x3000:                                    /* queue 0 notify */
        if (size != 2 || v != 0 || !(status & VIRTIO_STATUS_DRIVER_OK) || !qenable)
            abort();
        process_queue();
        return;
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
uint64_t mmio_read64(uint64_t pa) { (void)pa; abort(); }   /* the drivers never do 64-bit MMIO */
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
uint64_t pmm_alloc_zeroed(void)
{
    void *p = aligned_alloc(4096, 4096);
    memset(p, 0, 4096);
    pages_out++;
    return (uint64_t)(uintptr_t)p;
}
void pmm_free_page(uint64_t pa)
{
    free((void *)(uintptr_t)pa);
    pages_out--;
}
/* The model's "RAM": [1 MiB, 1 GiB), where over_ram puts the device's region. */
int pmm_overlaps(uint64_t base, uint64_t size)
{
    return base < (1ULL << 30) && base + size > 0x100000ULL;
}
int vm_map_identity(uint64_t pa, uint64_t len, int uncached)
{
    (void)uncached;
    if (n_mapped < 8)
        mapped[n_mapped][0] = pa, mapped[n_mapped][1] = len, n_mapped++;
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

int main(int argc, char **argv)
{
    const char *s = argc > 1 ? argv[1] : "qemu";
    openvmm = !strcmp(s, "openvmm");
    no_version1 = !strcmp(s, "no_version1");
    refuse_features = !strcmp(s, "refuse_features");
    device_error = !strcmp(s, "device_error");
    silent = !strcmp(s, "silent");
    bad_used_id = !strcmp(s, "bad_used_id");
    scribble_next = !strcmp(s, "scribble_next");
    late = !strcmp(s, "late");
    short_len = !strcmp(s, "short_len");
    cap_beyond_bar = !strcmp(s, "cap_beyond_bar");
    notify_beyond = !strcmp(s, "notify_beyond");
    over_ram = !strcmp(s, "over_ram");
    if (!strcmp(s, "small_queue"))
        max_queue = 8;
    qsize = (uint16_t)max_queue;
    build_config_space();

    struct ecam_region ecam = {ECAM_BASE, 0, 0, 255};
    pci_init(&ecam, 1, 0xC0000000ULL, 0xFEC00000ULL);
    printf("devices=%d\n", pci_enumerate());
    struct pci_dev *d = pci_find(VIRTIO_PCI_VENDOR_ID, VIRTIO_PMEM_PCI_DEVICE_ID);
    if (!d)
        return 1;
    static struct virtio_pmem pm;
    int rc = virtio_pmem_probe(d, &pm);
    printf("probe=%d\nstatus=%u\nfeatures=%llx\nbar4=%llx\nbar2=%llx\n", rc, status,
           (unsigned long long)drv_features, (unsigned long long)bar_val[4], (unsigned long long)bar_val[2]);
    if (rc == 0) {
        printf("start=%llx\nsize=%llx\nsource=%s\nqsize=%u\n", (unsigned long long)pm.start,
               (unsigned long long)pm.size, pm.region_source, pm.vq.size);
        for (int i = 0; i < n_mapped; i++)
            printf("mapped=%llx,%llx\n", (unsigned long long)mapped[i][0], (unsigned long long)mapped[i][1]);
        int n = !strcmp(s, "many") || scribble_next ? 300 : late ? 2 : 1;
        for (int i = 0; i < n; i++) {
            if (late && i == 0) {                   /* times out; its late answer must not fail the next */
                printf("flush_first=%d\n", virtio_pmem_flush(&pm, 20000000ULL));
                continue;
            }
            rc = virtio_pmem_flush(&pm, 50000000ULL);
            if (rc)
                break;
        }
        printf("flush=%d\nflushes=%d\nnotifies=%d\n", rc, flushes, notifies);
        free(pm.page);
        pages_out--;
    }
    printf("pages_out=%d\n", pages_out);
    return 0;
}
