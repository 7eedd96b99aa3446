/* trackb_model.c: a model virtio-pmem PCI function, for
 * tests/test_trackb_parsers.py::test_model_*.
 *
 * The kernel's PCI, virtio-pci transport, virtqueue, virtio-pmem and page
 * table (kernel/vm.c: vm_map_identity) code is compiled unchanged against
 * tests/c/trackb_platform_model.c (platform.h, entry.S's boot page tables,
 * a page allocator with a page budget, the timer) and this device: its
 * configuration (a region at 4 GiB, or OpenVMM's shared memory capability on
 * BAR 2) and a request queue that answers flushes. The page tables are walked
 * there, never loaded.
 *
 *   trackb_model SCENARIO
 * prints key=value lines; abort() on any access the model does not expect. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drivers/pci.h"
#include "drivers/virtio_pmem.h"
#include "kernel/memlayout.h"
#include "kernel/pmm.h"
#include "kernel/vm.h"
#include "platform/platform.h"
#include "trackb_platform_model.h"
#include "virtio.h"

#define SHM_BAR2_SIZE (32ULL << 20)
#define QEMU_START 0x100000000ULL
#define QEMU_SIZE (16ULL << 20)
#define GIB (1ULL << 30)

/* ---- scenario knobs ---- */
static int openvmm;            /* config 0/0 + shared memory cap on BAR 2 */
static int no_version1, device_error, silent, bad_used_id, max_queue = 128;
static int scribble_next, late, short_len, over_ram;
static uint64_t cfg_size = QEMU_SIZE;  /* huge, max_size, tables_exhausted: what the config claims */

static int flushes;

static uint64_t dev_features(void)
{
    uint64_t f = 1ULL << VIRTIO_PMEM_F_SHMEM_REGION | 1ULL << 33 /* something we do not want */;
    if (!no_version1)
        f |= 1ULL << VIRTIO_F_VERSION_1;
    return f;
}

static uint16_t queue_max(unsigned n) { (void)n; return (uint16_t)max_queue; }

/* struct virtio_pmem_config: start, size */
static uint64_t config_read(uint64_t off, int size)
{
    if (off >= 16) {
        fprintf(stderr, "model: pmem config read %llx/%d\n", (unsigned long long)off, size);
        abort();
    }
    uint64_t v[2] = {openvmm ? 0 : over_ram ? 0x1000000ULL : QEMU_START, openvmm ? 0 : cfg_size}, r = 0;
    memcpy(&r, (uint8_t *)v + off, (size_t)size);
    return r;
}

/* The request queue: each request is req (4 bytes, type 0: flush), then resp. */
static void notify(unsigned n)
{
    if (n != 0)
        abort();
    if (silent || (late && model_notifies == 1))    /* late: the first request is answered on the second notify */
        return;
    uint16_t head;
    struct virtq_desc *rq, *desc = MODEL_DESC(0);
    while ((rq = model_vq_pop(0, &head))) {
        if (!(rq->flags & VIRTQ_DESC_F_NEXT) || rq->len != 4 || (rq->flags & VIRTQ_DESC_F_WRITE))
            abort();                                /* the driver must send req, then resp */
        struct virtq_desc *rs = &desc[rq->next];
        if (!(rs->flags & VIRTQ_DESC_F_WRITE) || rs->len != 4 || *(uint32_t *)(uintptr_t)rq->addr != 0)
            abort();
        *(uint32_t *)(uintptr_t)rs->addr = device_error ? 1 : 0;
        flushes++;
        model_vq_push_used(0, bad_used_id ? 999u : head, short_len ? 0u : 4u);
    }
    if (scribble_next)                              /* a hostile device rewrites the descriptor table */
        for (unsigned i = 0; i < model_q[0].size; i++)
            desc[i].next = 999;
}

/* vm_map_identity on its own: the size bound, and a mapping that runs out of
 * page-table pages part way gives back every table it added (here a PD in
 * boot_pdpt, a new PDPT, and the PD inside it) and leaves older mappings. */
static int vm_scenario(void)
{
    extern uint64_t boot_pml4[512], boot_pdpt[512];
    printf("canonical=%d\n", vm_map_identity((1ULL << 47) - LARGE_PAGE_SIZE, 2 * LARGE_PAGE_SIZE, 0));
    printf("over_limit=%d\n", vm_map_identity(8 * GIB, VM_MAP_MAX_LEN + 4096, 0));
    printf("wraps=%d\n", vm_map_identity(~0ULL - 4095, 8192, 0));
    printf("pages_after_refused=%d\n", model_pages_out);
    printf("first=%d\n", vm_map_identity(4 * GIB, LARGE_PAGE_SIZE, 1));
    printf("first_pages=%d\n", model_pages_out);
    model_page_budget = 2;    /* PD for 511 GiB, PDPT for PML4[1]; the PD for 512 GiB fails */
    printf("exhausted=%d\n", vm_map_identity(511 * GIB, 8 * GIB, 0));
    printf("pages_after_exhausted=%d\npml4_1=%llx\npdpt_511=%llx\n", model_pages_out,
           (unsigned long long)boot_pml4[1], (unsigned long long)boot_pdpt[511]);
    printf("exhausted_mapped=%d\nfirst_still_mapped=%d\n", vm_is_mapped(511 * GIB, 8 * GIB),
           model_identity_mapped(4 * GIB, LARGE_PAGE_SIZE, 1));
    model_page_budget = -1;
    printf("retry=%d\n", vm_map_identity(511 * GIB, 8 * GIB, 0));
    printf("retry_pages=%d\nretry_mapped=%d\n", model_page_table_pages(0),
           model_identity_mapped(511 * GIB, 8 * GIB, 0));
    /* the worst case: the longest range, 4 KiB into the last 2 MiB of a 512 GiB slot:
     * 65 PDs and 2 PDPTs, all new (vm.c's MAX_NEW_TABLES) */
    uint64_t worst = 2048 * GIB - LARGE_PAGE_SIZE + 4096;
    printf("max=%d\n", vm_map_identity(worst, VM_MAP_MAX_LEN, 0));
    printf("max_pages=%d\nmax_mapped=%d\n", model_page_table_pages(0), model_identity_mapped(worst, VM_MAP_MAX_LEN, 0));
    model_page_table_pages(1);
    printf("pages_out=%d\n", model_pages_out);
    return 0;
}

int main(int argc, char **argv)
{
    const char *s = argc > 1 ? argv[1] : "qemu";
    if (!strcmp(s, "vm"))
        return vm_scenario();
    openvmm = !strcmp(s, "openvmm");
    no_version1 = !strcmp(s, "no_version1");
    model_refuse_features = !strcmp(s, "refuse_features");
    device_error = !strcmp(s, "device_error");
    silent = !strcmp(s, "silent");
    bad_used_id = !strcmp(s, "bad_used_id");
    scribble_next = !strcmp(s, "scribble_next");
    late = !strcmp(s, "late");
    short_len = !strcmp(s, "short_len");
    model_devcfg_beyond_bar = !strcmp(s, "cap_beyond_bar");
    model_notify_beyond = !strcmp(s, "notify_beyond");
    over_ram = !strcmp(s, "over_ram");
    if (!strcmp(s, "small_queue"))
        max_queue = 8;
    if (!strcmp(s, "huge"))                         /* 64 TiB: within 2^47, far beyond the limit */
        cfg_size = 1ULL << 46;
    if (!strcmp(s, "max_size"))                     /* exactly PMEM_MAX_SIZE: accepted */
        cfg_size = PMEM_MAX_SIZE;
    if (!strcmp(s, "tables_exhausted"))             /* 32 GiB (32 PDs) but the queue page + 5 pages left */
        cfg_size = 32 * GIB, model_page_budget = 6;

    static const struct model_virtio_dev pmem = {
        .slot = 1, .device_id = VIRTIO_PMEM_PCI_DEVICE_ID, .class_rev = 0x05800001,   /* class 05:80 */
        .num_queues = 1, .features = dev_features, .queue_max = queue_max, .config_read = config_read,
        .notify = notify,
    };
    model_virtio_init(&pmem);
    if (openvmm) {                                  /* a shared memory capability after the common one */
        model_cfg[MODEL_CAP_LAST + 1] = MODEL_CAP_FREE;
        model_cap(MODEL_CAP_FREE, 0, 24, VIRTIO_PCI_CAP_SHARED_MEMORY_CFG, 2, 0, (uint32_t)SHM_BAR2_SIZE);
        model_cfg[MODEL_CAP_FREE + 5] = VIRTIO_PMEM_SHMEM_REGION_ID;
        model_bar_mask[2] = ~(SHM_BAR2_SIZE - 1);
    }

    printf("devices=%d\n", model_pci_enumerate());
    struct pci_dev *d = pci_find(VIRTIO_PCI_VENDOR_ID, VIRTIO_PMEM_PCI_DEVICE_ID);
    if (!d)
        return 1;
    static struct virtio_pmem pm;
    int rc = virtio_pmem_probe(d, &pm);
    printf("probe=%d\nstatus=%u\nfeatures=%llx\nbar4=%llx\nbar2=%llx\n", rc, model_status,
           (unsigned long long)model_drv_features, (unsigned long long)model_bar[4], (unsigned long long)model_bar[2]);
    if (rc == 0) {
        printf("start=%llx\nsize=%llx\nsource=%s\nqsize=%u\n", (unsigned long long)pm.start,
               (unsigned long long)pm.size, pm.region_source, pm.vq.size);
        if (model_identity_mapped(pm.start, pm.size, 0))  /* walked in the tables vm_map_identity built */
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
        printf("flush=%d\nflushes=%d\nnotifies=%d\n", rc, flushes, model_notifies);
        pmm_free_page(pm.page_pa);
    }
    printf("pt_pages=%d\n", model_page_table_pages(1));
    printf("pages_out=%d\n", model_pages_out);
    return 0;
}
