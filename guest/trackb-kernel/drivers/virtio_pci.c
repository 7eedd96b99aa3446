/* virtio_pci.c: virtio-pci modern transport. Polled: no MSI-X, no INTx. */
#include "drivers/virtio_pci.h"
#include "kernel/errno.h"
#include "kernel/timer.h"
#include "kernel/vm.h"
#include "platform/platform.h"
#include "virtio.h"

#define RESET_TIMEOUT_NS 100000000ULL   /* 100 ms */
#define CC(field) (vp->common + VIRTIO_PCI_COMMON_CFG_OFF_##field)

/* A capability's region inside its BAR, as a physical address; registers
 * (uncached) are mapped here, memory regions (shm) by the device driver. */
static int locate(struct pci_dev *d, const struct virtio_region *r, uint64_t *pa, int map_registers)
{
    if (!r->present || d->bar[r->bar] == 0)
        return -1;
    if (r->offset + r->length < r->offset || r->offset + r->length > d->bar_size[r->bar])
        return -1;
    *pa = d->bar[r->bar] + r->offset;
    if (map_registers && vm_map_identity(*pa, r->length, 1))
        return -1;
    return 0;
}

int virtio_pci_open(struct pci_dev *d, struct virtio_pci *vp)
{
    uint8_t cfg[PCI_CFG_SPACE_SIZE];
    *vp = (struct virtio_pci){.pci = d};
    pci_read_config(d, cfg, sizeof cfg);
    int err = virtio_parse_caps(cfg, sizeof cfg, &vp->layout);
    if (err)
        return err;
    if (locate(d, &vp->layout.common, &vp->common, 1) || locate(d, &vp->layout.notify, &vp->notify, 1) ||
        locate(d, &vp->layout.device, &vp->device, 1))
        return ERR_RANGE;
    vp->device_len = vp->layout.device.length;
    if (vp->layout.shm.present && locate(d, &vp->layout.shm, &vp->shm_base, 0) == 0)
        vp->shm_len = vp->layout.shm.length;
    return 0;
}

void virtio_pci_reset(struct virtio_pci *vp)
{
    mmio_write8(CC(DEVICE_STATUS), 0);
    /* The device acknowledges the reset by reading back 0. */
    uint64_t t0 = timer_now_ns();
    while (mmio_read8(CC(DEVICE_STATUS)) != 0 && timer_now_ns() - t0 < RESET_TIMEOUT_NS)
        cpu_relax();
}

/* 64-bit fields as two 32-bit halves (VIRTIO 1.2 4.1.3.1 allows it; some
 * devices support nothing wider). */
static void write64(uint64_t pa, uint64_t v)
{
    mmio_write32(pa, (uint32_t)v);
    mmio_write32(pa + 4, (uint32_t)(v >> 32));
}

static void add_status(struct virtio_pci *vp, uint8_t bits)
{
    mmio_write8(CC(DEVICE_STATUS), (uint8_t)(mmio_read8(CC(DEVICE_STATUS)) | bits));
}

int virtio_pci_negotiate(struct virtio_pci *vp, uint64_t wanted)
{
    virtio_pci_reset(vp);
    add_status(vp, VIRTIO_STATUS_ACKNOWLEDGE);
    add_status(vp, VIRTIO_STATUS_DRIVER);
    mmio_write32(CC(DEVICE_FEATURE_SELECT), 0);
    uint64_t dev = mmio_read32(CC(DEVICE_FEATURE));
    mmio_write32(CC(DEVICE_FEATURE_SELECT), 1);
    dev |= (uint64_t)mmio_read32(CC(DEVICE_FEATURE)) << 32;
    uint64_t version1 = 1ULL << VIRTIO_F_VERSION_1;
    if (!(dev & version1))
        return ERR_NOTSUP;        /* legacy-only device */
    vp->features = dev & (wanted | version1);
    mmio_write32(CC(DRIVER_FEATURE_SELECT), 0);
    mmio_write32(CC(DRIVER_FEATURE), (uint32_t)vp->features);
    mmio_write32(CC(DRIVER_FEATURE_SELECT), 1);
    mmio_write32(CC(DRIVER_FEATURE), (uint32_t)(vp->features >> 32));
    add_status(vp, VIRTIO_STATUS_FEATURES_OK);
    if (!(mmio_read8(CC(DEVICE_STATUS)) & VIRTIO_STATUS_FEATURES_OK))
        return ERR_NOTSUP;        /* the device refused our subset */
    return 0;
}

int virtio_pci_setup_queue(struct virtio_pci *vp, uint16_t index, struct virtqueue *vq, void *page, uint64_t page_pa)
{
    if (index >= mmio_read16(CC(NUM_QUEUES)))
        return ERR_IO;
    mmio_write16(CC(QUEUE_SELECT), index);
    uint16_t max = mmio_read16(CC(QUEUE_SIZE));
    if (max == 0 || mmio_read16(CC(QUEUE_ENABLE)))
        return ERR_IO;
    uint16_t size = VQ_MAX_SIZE;
    while (size > max)
        size >>= 1;
    if (vq_init(vq, index, size, page, page_pa))
        return ERR_IO;
    mmio_write16(CC(QUEUE_SIZE), size);
    write64(CC(QUEUE_DESC), vq->desc_pa);
    write64(CC(QUEUE_DRIVER), vq->avail_pa);
    write64(CC(QUEUE_DEVICE), vq->used_pa);
    uint64_t off = (uint64_t)mmio_read16(CC(QUEUE_NOTIFY_OFF)) * vp->layout.notify_off_multiplier;
    if (off + 2 > vp->layout.notify.length)
        return ERR_IO;
    vq->notify_addr = vp->notify + off;
    mmio_write16(CC(QUEUE_ENABLE), 1);
    return 0;
}

uint8_t virtio_pci_status(struct virtio_pci *vp) { return mmio_read8(CC(DEVICE_STATUS)); }
void virtio_pci_driver_ok(struct virtio_pci *vp) { add_status(vp, VIRTIO_STATUS_DRIVER_OK); }
void virtio_pci_fail(struct virtio_pci *vp) { add_status(vp, VIRTIO_STATUS_FAILED); }
void virtio_pci_notify(struct virtio_pci *vp, struct virtqueue *vq)
{
    (void)vp;
    mmio_write16(vq->notify_addr, vq->index);
}

int virtio_pci_read_config(struct virtio_pci *vp, uint8_t *buf, unsigned len)
{
    if (len > vp->device_len || (len & 3))
        return ERR_RANGE;
    for (int tries = 0; tries < 16; tries++) {
        uint8_t gen = mmio_read8(CC(CONFIG_GENERATION));
        /* 32-bit reads: the natural width of every field we read (64-bit ones in halves). */
        for (unsigned i = 0; i < len; i += 4) {
            uint32_t w = mmio_read32(vp->device + i);
            buf[i] = (uint8_t)w;
            buf[i + 1] = (uint8_t)(w >> 8);
            buf[i + 2] = (uint8_t)(w >> 16);
            buf[i + 3] = (uint8_t)(w >> 24);
        }
        if (mmio_read8(CC(CONFIG_GENERATION)) == gen)
            return 0;
    }
    return ERR_TIMEDOUT;
}
