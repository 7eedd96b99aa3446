/* trackb_platform_model.c: platform.h, entry.S's page tables and the kernel
 * services the drivers use, against one model virtio-pci function (see
 * trackb_platform_model.h). */
#define _GNU_SOURCE   /* MAP_FIXED_NOREPLACE */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#include "drivers/pci.h"
#include "kernel/console.h"
#include "kernel/memlayout.h"
#include "kernel/pmm.h"
#include "kernel/timer.h"
#include "kernel/vm.h"
#include "platform/platform.h"
#include "trackb_platform_model.h"

#define ECAM_SIZE (256ULL << 20)

int model_refuse_features, model_notify_beyond, model_devcfg_beyond_bar;

static const struct model_virtio_dev *dev;
uint8_t model_cfg[256];
uint64_t model_bar[6], model_bar_mask[6];
uint64_t model_drv_features;
uint8_t model_status;
struct model_queue model_q[MODEL_MAXQ];
int model_notifies;
static uint32_t dfsel, drfsel;
static uint16_t qsel;

void model_put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

void model_cap(uint8_t off, uint8_t next, uint8_t len, uint8_t type, uint8_t bar, uint32_t o, uint32_t l)
{
    uint8_t *c = model_cfg + off;
    c[0] = VIRTIO_PCI_CAP_ID_VNDR, c[1] = next, c[2] = len, c[3] = type, c[4] = bar;
    model_put32(c + 8, o);
    model_put32(c + 12, l);
}

static void reset(void)
{
    model_status = 0, model_drv_features = 0;
    memset(model_q, 0, sizeof model_q);
    for (unsigned n = 0; n < dev->num_queues && n < MODEL_MAXQ; n++)
        model_q[n].size = dev->queue_max(n);
}

void model_virtio_init(const struct model_virtio_dev *d)
{
    dev = d;
    model_put32(model_cfg + 0, VIRTIO_PCI_VENDOR_ID | (uint32_t)d->device_id << 16);
    model_cfg[6] = 0x10;                                    /* capability list */
    model_put32(model_cfg + 8, d->class_rev);
    model_cfg[0x34] = 0x40;
    model_cap(0x40, 0x54, 20, VIRTIO_PCI_CAP_NOTIFY_CFG, 4, MODEL_NOTIFY_OFF, 0x1000);
    model_put32(model_cfg + 0x40 + 16, MODEL_NOTIFY_MULT);  /* notify_off_multiplier */
    model_cap(0x54, 0x64, 16, VIRTIO_PCI_CAP_DEVICE_CFG, 4,
              model_devcfg_beyond_bar ? 0x3800 : MODEL_DEVCFG_OFF, 0x1000);   /* 0x3800: ends past BAR 4 */
    model_cap(0x64, MODEL_CAP_LAST, 16, VIRTIO_PCI_CAP_ISR_CFG, 4, 0x1000, 0x1000);
    model_cap(MODEL_CAP_LAST, 0, 16, VIRTIO_PCI_CAP_COMMON_CFG, 4, 0, 0x1000);
    model_bar_mask[4] = ~(MODEL_BAR4_SIZE - 1);
    reset();
}

int model_pci_enumerate(void)
{
    struct ecam_region ecam = {MODEL_ECAM_BASE, 0, 0, 255};
    pci_init(&ecam, 1, 0xC0000000ULL, 0xFEC00000ULL);
    return pci_enumerate();
}

/* ---- config space (ECAM) ---- */
static uint32_t cfg_read(uint64_t off)
{
    if (off >= 0x10 && off < 0x28) {                        /* BARs: 64-bit memory BARs where a mask is set */
        int i = (int)(off - 0x10) / 4, lo = !(i & 1);
        int b = lo ? i : i - 1;
        if (!model_bar_mask[b])
            return 0;
        uint64_t v = model_bar[b];
        return lo ? ((uint32_t)v & ~0xFu) | 0x4 | 0x8 : (uint32_t)(v >> 32);
    }
    uint32_t v;
    memcpy(&v, model_cfg + off, 4);
    return v;
}

static void cfg_write(uint64_t off, uint32_t v)
{
    if (off >= 0x10 && off < 0x28) {
        int i = (int)(off - 0x10) / 4, lo = !(i & 1);
        int b = lo ? i : i - 1;
        if (!model_bar_mask[b])
            return;
        uint64_t cur = model_bar[b];
        cur = lo ? (cur & ~0xFFFFFFFFULL) | (v & ~0xFu) : (cur & 0xFFFFFFFFULL) | (uint64_t)v << 32;
        model_bar[b] = cur & model_bar_mask[b];
        return;
    }
    if (off == 4) {
        memcpy(model_cfg + 4, &v, 2);                       /* command; status is read-only here */
        return;
    }
    fprintf(stderr, "model: config write %llx\n", (unsigned long long)off);
    abort();
}

/* ---- virtqueues, device side ---- */
int model_vq_ready(unsigned n)
{
    return n < MODEL_MAXQ && model_q[n].enable && (model_status & VIRTIO_STATUS_DRIVER_OK);
}

struct virtq_desc *model_vq_pop(unsigned n, uint16_t *head)
{
    if (!model_vq_ready(n))
        return NULL;
    struct virtq_avail *av = MODEL_AVAIL(n);
    if (model_q[n].last_avail == av->idx)
        return NULL;
    uint16_t *ring = (uint16_t *)(av + 1);
    *head = ring[model_q[n].last_avail % model_q[n].size];
    model_q[n].last_avail++;
    if (*head >= model_q[n].size)
        abort();                                            /* the driver published a bad head */
    return &MODEL_DESC(n)[*head];
}

void model_vq_push_used(unsigned n, uint32_t id, uint32_t len)
{
    struct virtq_used *u = MODEL_USED(n);
    struct virtq_used_elem *ring = (struct virtq_used_elem *)(u + 1);
    ring[u->idx % model_q[n].size] = (struct virtq_used_elem){id, len};
    __atomic_store_n(&u->idx, (uint16_t)(u->idx + 1), __ATOMIC_RELEASE);
}

/* ---- BAR 4 registers ---- */
#define CC(f) VIRTIO_PCI_COMMON_CFG_OFF_##f

static uint64_t bar4_read(uint64_t off, int size)
{
    if (off >= MODEL_DEVCFG_OFF && off < MODEL_NOTIFY_OFF)
        return dev->config_read(off - MODEL_DEVCFG_OFF, size);
    switch (off) {
    case CC(DEVICE_FEATURE): return (uint32_t)(dev->features() >> (32 * dfsel));
    case CC(NUM_QUEUES): return dev->num_queues;
    case CC(DEVICE_STATUS): return model_status;
    case CC(CONFIG_GENERATION): return 0;
    case CC(QUEUE_SIZE): return qsel < dev->num_queues && qsel < MODEL_MAXQ ? model_q[qsel].size : 0;
    case CC(QUEUE_ENABLE): return qsel < MODEL_MAXQ ? model_q[qsel].enable : 0;
    case CC(QUEUE_NOTIFY_OFF): return model_notify_beyond ? 0x400 : qsel;   /* x4: past the 4 KiB notify cap */
    }
    fprintf(stderr, "model: BAR4 read %llx/%d\n", (unsigned long long)off, size);
    abort();
}

static void bar4_write(uint64_t off, uint64_t v, int size)
{
    if (off >= MODEL_NOTIFY_OFF && off < MODEL_NOTIFY_OFF + MODEL_MAXQ * MODEL_NOTIFY_MULT) {
        unsigned n = (unsigned)(off - MODEL_NOTIFY_OFF) / MODEL_NOTIFY_MULT;
        if (size != 2 || v != n || (off - MODEL_NOTIFY_OFF) % MODEL_NOTIFY_MULT || !model_vq_ready(n))
            abort();                                        /* notify of a queue that is not live */
        model_notifies++;
        dev->notify(n);
        return;
    }
    if (qsel >= MODEL_MAXQ && off >= CC(QUEUE_SIZE))
        abort();
    struct model_queue *q = &model_q[qsel];
    switch (off) {
    case CC(DEVICE_FEATURE_SELECT): dfsel = (uint32_t)v; return;
    case CC(DRIVER_FEATURE_SELECT): drfsel = (uint32_t)v; return;
    case CC(DRIVER_FEATURE):
        model_drv_features = (model_drv_features & ~(0xFFFFFFFFULL << (32 * drfsel))) | v << (32 * drfsel);
        return;
    case CC(DEVICE_STATUS):
        if (v == 0) {                                       /* reset: forget every queue */
            reset();
            return;
        }
        if ((v & VIRTIO_STATUS_FEATURES_OK) && (model_refuse_features || (model_drv_features & ~dev->features())))
            v &= ~(uint64_t)VIRTIO_STATUS_FEATURES_OK;
        model_status = (uint8_t)v;
        return;
    case CC(QUEUE_SELECT): qsel = (uint16_t)v; return;
    case CC(QUEUE_SIZE):
        if (qsel >= dev->num_queues || v == 0 || v > dev->queue_max(qsel) || (v & (v - 1)))
            abort();
        q->size = (uint16_t)v;
        return;
    case CC(QUEUE_ENABLE):
        if (v != 1 || qsel >= dev->num_queues)
            abort();
        q->enable = 1;
        return;
    case CC(QUEUE_DESC): q->desc = (q->desc & ~0xFFFFFFFFULL) | v; return;
    case CC(QUEUE_DESC) + 4: q->desc = (q->desc & 0xFFFFFFFFULL) | v << 32; return;
    case CC(QUEUE_DRIVER): q->driver = (q->driver & ~0xFFFFFFFFULL) | v; return;
    case CC(QUEUE_DRIVER) + 4: q->driver = (q->driver & 0xFFFFFFFFULL) | v << 32; return;
    case CC(QUEUE_DEVICE): q->device = (q->device & ~0xFFFFFFFFULL) | v; return;
    case CC(QUEUE_DEVICE) + 4: q->device = (q->device & 0xFFFFFFFFULL) | v << 32; return;
    }
    fprintf(stderr, "model: BAR4 write %llx/%d\n", (unsigned long long)off, size);
    abort();
}

static uint64_t mmio(uint64_t pa, int size, int write, uint64_t v)
{
    if (pa >= MODEL_ECAM_BASE && pa < MODEL_ECAM_BASE + ECAM_SIZE) {
        uint64_t rel = pa - MODEL_ECAM_BASE, off = rel & 0xFFF;
        unsigned bus = (unsigned)(rel >> 20), slot = (unsigned)(rel >> 15) & 31, fn = (unsigned)(rel >> 12) & 7;
        if (size != 4 || (off & 3))
            abort();
        if (bus != 0 || slot != dev->slot || fn != 0)
            return write ? 0 : 0xFFFFFFFFu;
        if (write)
            cfg_write(off, (uint32_t)v);
        return write ? 0 : cfg_read(off);
    }
    uint64_t bar4 = model_bar[4];
    if (bar4 && pa >= bar4 && pa < bar4 + MODEL_BAR4_SIZE && (model_cfg[4] & 2)) {
        if (write)
            bar4_write(pa - bar4, v, size);
        return write ? 0 : bar4_read(pa - bar4, size);
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
uint64_t virt_to_phys(const void *p) { return (uint64_t)(uintptr_t)p; }
void cpu_relax(void) {}
/* vm.c: vm_map_identity reloads CR3 to flush; vm_init (never run here) is the only other user. */
uint64_t cpu_read_cr3(void) { return 0; }
void cpu_write_cr3(uint64_t v) { (void)v; }
void cpu_cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]) { (void)leaf, (void)subleaf, (void)out; abort(); }
uint64_t cpu_rdmsr(uint32_t msr) { (void)msr; abort(); }
void cpu_wrmsr(uint32_t msr, uint64_t v) { (void)msr, (void)v; abort(); }
uint64_t cpu_read_cr0(void) { abort(); }
void cpu_write_cr0(uint64_t v) { (void)v; abort(); }
uint64_t cpu_read_cr4(void) { abort(); }
void cpu_write_cr4(uint64_t v) { (void)v; abort(); }
void mb(void) { __sync_synchronize(); }
void rmb(void) { __sync_synchronize(); }
void wmb(void) { __sync_synchronize(); }

/* ---- entry.S and kernel.ld symbols vm.c uses ---- */
uint64_t boot_pml4[512] __attribute__((aligned(4096)));
uint64_t boot_pdpt[512] __attribute__((aligned(4096)));
uint64_t boot_pd[2048] __attribute__((aligned(4096)));
char __text_start[1], __text_end[1], __rodata_start[1], __rodata_end[1], _kernel_end[1];   /* vm_init only */
/* (__data_start: the C runtime's own symbol of that name stands in) */
char boot_stack_guard[1];

/* entry.S's tables, built before any C runs: PML4[0] -> PDPT, PDPT[0..3] ->
 * the four boot PDs ([0, 4 GiB) stays model-less: vm_is_mapped() answers for it). */
__attribute__((constructor)) static void boot_tables_init(void)
{
    boot_pml4[0] = (uint64_t)(uintptr_t)boot_pdpt | PTE_P | PTE_W;
    for (int i = 0; i < 4; i++)
        boot_pdpt[i] = (uint64_t)(uintptr_t)&boot_pd[512 * i] | PTE_P | PTE_W;
}

static uint64_t *table_of(uint64_t e) { return (uint64_t *)(uintptr_t)(e & PTE_ADDR); }

/* The 2 MiB leaf that maps va (above 4 GiB), or 0. */
static uint64_t leaf_of(uint64_t va)
{
    uint64_t e = boot_pml4[(va >> 39) & 511];
    if (!(e & PTE_P))
        return 0;
    e = table_of(e)[(va >> 30) & 511];
    if (!(e & PTE_P))
        return 0;
    return table_of(e)[(va >> 21) & 511];
}

int model_identity_mapped(uint64_t pa, uint64_t len, int uncached)
{
    if (!vm_is_mapped(pa, len))
        return 0;
    uint64_t want = PTE_P | PTE_W | PTE_PS | (uncached ? PTE_PCD | PTE_PWT : 0);
    for (uint64_t va = pa & ~(LARGE_PAGE_SIZE - 1); va < pa + len; va += LARGE_PAGE_SIZE) {
        uint64_t l = va < BOOT_MAP_LIMIT ? va | want : leaf_of(va);   /* the boot map below 4 GiB */
        if (l != (va | want))
            return 0;
    }
    return 1;
}

/* The PDs beyond the boot four and the PDPTs beyond boot_pdpt. */
int model_page_table_pages(int free_them)
{
    int n = 0;
    for (int i = 0; i < 512; i++) {
        if (!(boot_pml4[i] & PTE_P))
            continue;
        uint64_t *pdpt = table_of(boot_pml4[i]);
        for (int j = pdpt == boot_pdpt ? 4 : 0; j < 512; j++) {
            if (!(pdpt[j] & PTE_P))
                continue;
            n++;
            if (free_them)
                pmm_free_page(pdpt[j] & PTE_ADDR), pdpt[j] = 0;
        }
        if (pdpt != boot_pdpt) {
            n++;
            if (free_them)
                pmm_free_page(boot_pml4[i] & PTE_ADDR), boot_pml4[i] = 0;
        }
    }
    return n;
}

/* ---- kernel services the drivers use ---- */
long model_page_budget = -1;
int model_pages_out;

/* The model's RAM pages: below 4 GiB like the kernel's, so that kernel/vm.c's
 * phys_ptr() finds them in the boot map; each is followed by a guard page and
 * a free page goes back to being poisoned, so ASan sees any access past a page
 * or after its free. */
#define POOL_BASE 0x10000000ULL   /* 256 MiB: inside the model's RAM (pmm_overlaps) */
#define POOL_SLOTS 4096
#define SLOT_SIZE (2 * PAGE_SIZE)
static uint8_t *pool;
static int pool_used, free_slots[POOL_SLOTS], n_free;
static uint8_t in_use[POOL_SLOTS];

static uint8_t *pool_page(void)
{
    if (!pool) {
        pool = mmap((void *)(uintptr_t)POOL_BASE, POOL_SLOTS * SLOT_SIZE, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (pool != (void *)(uintptr_t)POOL_BASE) {
            fprintf(stderr, "model: cannot map the page pool at %llx\n", POOL_BASE);
            abort();
        }
        POISON(pool, POOL_SLOTS * SLOT_SIZE);
    }
    int slot = n_free ? free_slots[--n_free] : pool_used++;
    if (slot == POOL_SLOTS) {
        fprintf(stderr, "model: page pool exhausted\n");
        abort();
    }
    uint8_t *p = pool + (uint64_t)slot * SLOT_SIZE;
    in_use[slot] = 1;
    UNPOISON(p, PAGE_SIZE);
    return p;
}

uint64_t pmm_alloc_page(void)
{
    if (model_page_budget == 0)
        return 0;
    if (model_page_budget > 0)
        model_page_budget--;
    uint8_t *p = pool_page();
    memset(p, 0xA5, PAGE_SIZE);                             /* not zeroed: the driver must not rely on it */
    model_pages_out++;
    return (uint64_t)(uintptr_t)p;
}
void pmm_free_page(uint64_t pa)
{
    uint8_t *p = (uint8_t *)(uintptr_t)pa;
    if (!pool || p < pool || (uint64_t)(p - pool) % SLOT_SIZE || p >= pool + (uint64_t)pool_used * SLOT_SIZE
        || !in_use[(p - pool) / SLOT_SIZE]) {
        fprintf(stderr, "model: free of a page not allocated %llx\n", (unsigned long long)pa);
        abort();
    }
    int slot = (int)((p - pool) / SLOT_SIZE);
    in_use[slot] = 0;
    POISON(p, PAGE_SIZE);
    free_slots[n_free++] = slot;
    model_pages_out--;
}
/* The model's "RAM": [1 MiB, 1 GiB) (a device region there must be refused). */
int pmm_overlaps(uint64_t base, uint64_t size)
{
    return base < (1ULL << 30) && base + size > 0x100000ULL;
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
