/* virtio_pmem.c: virtio-pmem over the modern virtio-pci transport.
 *
 * The region comes from the shared-memory capability (id 0) when the device
 * has one (OpenVMM leaves the config at 0) and from config start/size
 * otherwise (QEMU). The request queue carries flushes only. A region larger
 * than PMEM_MAX_SIZE is refused before anything is allocated: the size is
 * the device's word, and mapping 2^47 bytes would take 512 MiB of page tables. */
#include "drivers/virtio_pmem.h"
#include "kernel/errno.h"
#include "kernel/klib.h"
#include "kernel/pmm.h"
#include "kernel/timer.h"
#include "kernel/vm.h"
#include "platform/platform.h"
#include "virtio.h"

#define IO_OFFSET 3072   /* request and response after the rings in the queue page */

int virtio_pmem_probe(struct pci_dev *d, struct virtio_pmem *pm)
{
    uint8_t cfg[VIRTIO_PMEM_CONFIG_SIZE];
    int err;

    memset(pm, 0, sizeof *pm);
    if (pci_enable(d) || virtio_pci_open(d, &pm->vp))
        return ERR_NODEV;
    err = virtio_pci_negotiate(&pm->vp, 1ULL << VIRTIO_PMEM_F_SHMEM_REGION);
    if (err)
        goto fail;
    if (pm->vp.shm_len) {
        pm->start = pm->vp.shm_base;
        pm->size = pm->vp.shm_len;
        pm->region_source = "shared memory cap";
    } else {
        err = virtio_pci_read_config(&pm->vp, cfg, sizeof cfg);
        if (err == 0 && virtio_pmem_parse_config(cfg, sizeof cfg, &pm->start, &pm->size) != 0)
            err = ERR_IO;
        if (err)
            goto fail;
        pm->region_source = "device config";
    }
    if (pm->size > PMEM_MAX_SIZE || pmm_overlaps(pm->start, pm->size)) {   /* no page-table flood, not our RAM */
        err = ERR_RANGE;
        goto fail;
    }
    pm->page_pa = pmm_alloc_zeroed();
    if (!pm->page_pa) {
        err = ERR_NOMEM;
        goto fail;
    }
    pm->page = phys_ptr(pm->page_pa, 4096);
    pm->io_pa = pm->page_pa + IO_OFFSET;
    err = virtio_pci_setup_queue(&pm->vp, 0, &pm->vq, pm->page, pm->page_pa);
    if (err)
        goto fail_page;
    if ((uint64_t)pm->vq.used_pa + VIRTQ_USED_SIZE + pm->vq.size * VIRTQ_USED_ELEM_SIZE + 2 > pm->io_pa) {
        err = ERR_NOMEM;
        goto fail_page;
    }
    if (vm_map_identity(pm->start, pm->size, 0)) {
        err = ERR_NOMEM;
        goto fail_page;
    }
    pm->base = phys_ptr(pm->start, pm->size);
    virtio_pci_driver_ok(&pm->vp);
    return 0;

fail_page:
    virtio_pci_reset(&pm->vp);     /* the device must forget the queue before the page is reused */
    pmm_free_page(pm->page_pa);
    pm->page = NULL;
fail:
    virtio_pci_fail(&pm->vp);
    pm->size = 0;
    return err;
}

int virtio_pmem_revive(struct virtio_pmem *pm)
{
    int err;

    if (virtio_pci_status(&pm->vp) & VIRTIO_STATUS_DRIVER_OK)
        return 0;
    pci_restore(pm->vp.pci);          /* QEMU reset its config space too: BARs and decoding */
    err = virtio_pci_negotiate(&pm->vp, 1ULL << VIRTIO_PMEM_F_SHMEM_REGION);
    if (err)
        goto fail;
    memset(pm->page, 0, IO_OFFSET);   /* fresh rings: the device starts at index 0 */
    err = virtio_pci_setup_queue(&pm->vp, 0, &pm->vq, pm->page, pm->page_pa);
    if (err)
        goto fail;
    virtio_pci_driver_ok(&pm->vp);
    pm->revived++;
    return 0;

fail:
    virtio_pci_fail(&pm->vp);
    return ERR_IO;
}

int virtio_pmem_flush(struct virtio_pmem *pm, uint64_t timeout_ns)
{
    uint8_t *req = pm->page + IO_OFFSET, *resp = req + VIRTIO_PMEM_REQ_SIZE;
    struct vq_buf bufs[2] = {
        {pm->io_pa, VIRTIO_PMEM_REQ_SIZE, 0},
        {pm->io_pa + VIRTIO_PMEM_REQ_SIZE, VIRTIO_PMEM_RESP_SIZE, 1},
    };
    uint16_t head;
    uint32_t len;

    memset(req, 0, VIRTIO_PMEM_REQ_SIZE);   /* le32 type = VIRTIO_PMEM_REQ_TYPE_FLUSH (0) */
    memset(resp, 0xFF, VIRTIO_PMEM_RESP_SIZE);
    int h = vq_add(&pm->vq, bufs, 2);
    if (h < 0)
        return ERR_IO;
    virtio_pci_notify(&pm->vp, &pm->vq);
    uint64_t t0 = timer_now_ns();
    for (;;) {
        int r = vq_get_used(&pm->vq, &head, &len);
        if (r < 0)
            return ERR_IO;
        if (r > 0 && head == h)
            break;
        /* r > 0, another head: an earlier flush that timed out, answered late (freed now) */
        if (timer_now_ns() - t0 > timeout_ns)
            return ERR_TIMEDOUT;   /* the chain stays owned by the device */
        cpu_relax();
    }
    if (len < VIRTIO_PMEM_RESP_SIZE)
        return ERR_IO;
    return ld32(resp) == 0 ? 0 : ERR_IO;
}
