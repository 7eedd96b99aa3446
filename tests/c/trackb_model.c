/* trackb_model.c: a host model of the platform layer and one virtio-pmem PCI
 * function, for tests/test_trackb_parsers.py::test_model_*.
 *
 * The kernel's PCI, virtio-pci transport, virtqueue, virtio-pmem and page
 * table (kernel/vm.c: vm_map_identity) code is compiled unchanged against
 * this file, which implements platform.h (MMIO dispatch to the model: ECAM
 * config space, BAR 4 registers), the page allocator (with a page budget),
 * entry.S's boot page tables and the timer. "Physical" addresses are host
 * addresses; the page tables are walked here, never loaded.
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
#include "kernel/memlayout.h"
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
#define GIB (1ULL << 30)

/* ---- scenario knobs ---- */
static int openvmm;            /* config 0/0 + shared memory cap on BAR 2 */
static int no_version1, refuse_features, device_error, silent, bad_used_id, max_queue = 128;
static int scribble_next, late, short_len, cap_beyond_bar, notify_beyond, over_ram;
static uint64_t cfg_size = QEMU_SIZE;  /* huge, max_size, tables_exhausted: what the config claims */
static long page_budget = -1;          /* pages pmm_alloc_zeroed may still hand out; -1: no limit */

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
        uint64_t v[2] = {openvmm ? 0 : over_ram ? 0x1000000ULL : QEMU_START, openvmm ? 0 : cfg_size}, r = 0;
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
/* vm.c: vm_map_identity reloads CR3 to flush; vm_init (never run here) is the only other user. */
static int cr3_reloads;
uint64_t cpu_read_cr3(void) { return 0; }
void cpu_write_cr3(uint64_t v) { (void)v, cr3_reloads++; }
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

/* entry.S's tables: PML4[0] -> PDPT, PDPT[0..3] -> the four boot PDs ([0, 4 GiB) stays model-less). */
static void boot_tables_init(void)
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

/* 1 if [pa, pa+len) is identity mapped with 2 MiB RW pages (the boot map below 4 GiB). */
static int identity_mapped(uint64_t pa, uint64_t len, int uncached)
{
    if (!vm_is_mapped(pa, len))
        return 0;
    uint64_t want = PTE_P | PTE_W | PTE_PS | (uncached ? PTE_PCD | PTE_PWT : 0);
    for (uint64_t va = pa & ~(LARGE_PAGE_SIZE - 1); va < pa + len; va += LARGE_PAGE_SIZE) {
        uint64_t l = va < BOOT_MAP_LIMIT ? va | want : leaf_of(va);
        if (l != (va | want))
            return 0;
    }
    return 1;
}

/* Page-table pages added after boot (PDs beyond the boot four, PDPTs beyond
 * boot_pdpt); with free_them, give them back and clear their entries. */
static int page_table_pages(int free_them)
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
static int pages_out;
uint64_t pmm_alloc_zeroed(void)
{
    if (page_budget == 0)
        return 0;
    if (page_budget > 0)
        page_budget--;
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

/* vm_map_identity on its own: the size bound, and a mapping that runs out of
 * page-table pages part way gives back every table it added (here a PD in
 * boot_pdpt, a new PDPT, and the PD inside it) and leaves older mappings. */
static int vm_scenario(void)
{
    printf("canonical=%d\n", vm_map_identity((1ULL << 47) - LARGE_PAGE_SIZE, 2 * LARGE_PAGE_SIZE, 0));
    printf("over_limit=%d\n", vm_map_identity(8 * GIB, VM_MAP_MAX_LEN + 4096, 0));
    printf("wraps=%d\n", vm_map_identity(~0ULL - 4095, 8192, 0));
    printf("pages_after_refused=%d\n", pages_out);
    printf("first=%d\n", vm_map_identity(4 * GIB, LARGE_PAGE_SIZE, 1));
    printf("first_pages=%d\n", pages_out);
    page_budget = 2;      /* PD for 511 GiB, PDPT for PML4[1]; the PD for 512 GiB fails */
    printf("exhausted=%d\n", vm_map_identity(511 * GIB, 8 * GIB, 0));
    printf("pages_after_exhausted=%d\npml4_1=%llx\npdpt_511=%llx\n", pages_out, (unsigned long long)boot_pml4[1],
           (unsigned long long)boot_pdpt[511]);
    printf("exhausted_mapped=%d\nfirst_still_mapped=%d\n", vm_is_mapped(511 * GIB, 8 * GIB),
           identity_mapped(4 * GIB, LARGE_PAGE_SIZE, 1));
    page_budget = -1;
    printf("retry=%d\n", vm_map_identity(511 * GIB, 8 * GIB, 0));
    printf("retry_pages=%d\nretry_mapped=%d\n", page_table_pages(0), identity_mapped(511 * GIB, 8 * GIB, 0));
    /* the worst case: the longest range, 4 KiB into the last 2 MiB of a 512 GiB slot:
     * 65 PDs and 2 PDPTs, all new (vm.c's MAX_NEW_TABLES) */
    uint64_t worst = 2048 * GIB - LARGE_PAGE_SIZE + 4096;
    printf("max=%d\n", vm_map_identity(worst, VM_MAP_MAX_LEN, 0));
    printf("max_pages=%d\nmax_mapped=%d\n", page_table_pages(0), identity_mapped(worst, VM_MAP_MAX_LEN, 0));
    page_table_pages(1);
    printf("pages_out=%d\n", pages_out);
    return 0;
}

int main(int argc, char **argv)
{
    const char *s = argc > 1 ? argv[1] : "qemu";
    boot_tables_init();
    if (!strcmp(s, "vm"))
        return vm_scenario();
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
    if (!strcmp(s, "huge"))                         /* 64 TiB: within 2^47, far beyond the limit */
        cfg_size = 1ULL << 46;
    if (!strcmp(s, "max_size"))                     /* exactly PMEM_MAX_SIZE: accepted */
        cfg_size = PMEM_MAX_SIZE;
    if (!strcmp(s, "tables_exhausted"))             /* 32 GiB (32 PDs) but the queue page + 5 pages left */
        cfg_size = 32 * GIB, page_budget = 6;
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
        if (identity_mapped(pm.start, pm.size, 0))    /* walked in the tables vm_map_identity built */
            printf("mapped=%llx,%llx\n", (unsigned long long)pm.start, (unsigned long long)pm.size);
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
    printf("pt_pages=%d\n", page_table_pages(1));
    printf("pages_out=%d\n", pages_out);
    return 0;
}
