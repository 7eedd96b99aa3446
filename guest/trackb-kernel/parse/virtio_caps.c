/* virtio_caps.c: the virtio-pci modern vendor capabilities (VIRTIO 1.2, 4.1.4). */
#include "parse/parse.h"
#include "virtio.h"

static void set_region(struct virtio_region *r, uint8_t bar, uint64_t off, uint64_t len)
{
    if (r->present)
        return;   /* the first capability of a type is the preferred one */
    *r = (struct virtio_region){1, bar, off, len};
}

int virtio_parse_caps(const uint8_t *cfg, size_t len, struct virtio_pci_layout *out)
{
    uint8_t offs[PCI_MAX_CAPS];
    int n = pci_cap_list(cfg, len, offs, PCI_MAX_CAPS);
    if (n < 0)
        return n;
    *out = (struct virtio_pci_layout){0};
    for (int i = 0; i < n; i++) {
        const uint8_t *c = cfg + offs[i];
        size_t room = len - offs[i];
        if (c[VIRTIO_PCI_CAP_OFF_CAP_VNDR] != VIRTIO_PCI_CAP_ID_VNDR)
            continue;
        if (room < VIRTIO_PCI_CAP_SIZE)
            return ERR_TRUNC;
        uint8_t clen = c[VIRTIO_PCI_CAP_OFF_CAP_LEN];
        if (clen < VIRTIO_PCI_CAP_SIZE || clen > room)
            return ERR_RANGE;
        uint8_t type = c[VIRTIO_PCI_CAP_OFF_CFG_TYPE], bar = c[VIRTIO_PCI_CAP_OFF_BAR];
        uint64_t off = ld32(c + VIRTIO_PCI_CAP_OFF_OFFSET), length = ld32(c + VIRTIO_PCI_CAP_OFF_LENGTH);
        if (type == VIRTIO_PCI_CAP_PCI_CFG)
            continue;          /* the config-space window: not used */
        if (bar > 5) {
            /* VIRTIO 1.2 4.1.4: reserved BAR values must be ignored, not trusted. */
            continue;
        }
        switch (type) {
        case VIRTIO_PCI_CAP_COMMON_CFG:
            if (length < VIRTIO_PCI_COMMON_CFG_SIZE)
                return ERR_RANGE;
            set_region(&out->common, bar, off, length);
            break;
        case VIRTIO_PCI_CAP_NOTIFY_CFG:
            if (clen < VIRTIO_PCI_NOTIFY_CAP_SIZE)
                return ERR_RANGE;
            if (!out->notify.present)
                out->notify_off_multiplier = ld32(c + VIRTIO_PCI_NOTIFY_CAP_OFF_NOTIFY_OFF_MULTIPLIER);
            set_region(&out->notify, bar, off, length);
            break;
        case VIRTIO_PCI_CAP_ISR_CFG:
            set_region(&out->isr, bar, off, length);
            break;
        case VIRTIO_PCI_CAP_DEVICE_CFG:
            set_region(&out->device, bar, off, length);
            break;
        case VIRTIO_PCI_CAP_SHARED_MEMORY_CFG:
            if (clen < VIRTIO_PCI_CAP64_SIZE)
                return ERR_RANGE;
            if (c[VIRTIO_PCI_CAP_OFF_ID] != VIRTIO_PMEM_SHMEM_REGION_ID)
                break;
            off |= (uint64_t)ld32(c + VIRTIO_PCI_CAP64_OFF_OFFSET_HI) << 32;
            length |= (uint64_t)ld32(c + VIRTIO_PCI_CAP64_OFF_LENGTH_HI) << 32;
            if (length == 0 || off + length < off)
                return ERR_RANGE;
            set_region(&out->shm, bar, off, length);
            break;
        default:
            break;   /* unknown types are skipped (forward compatible) */
        }
    }
    if (!out->common.present || !out->notify.present || !out->device.present)
        return ERR_NOENT;
    return 0;
}
