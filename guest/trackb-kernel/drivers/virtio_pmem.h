/* virtio_pmem.h: virtio-pmem driver (VIRTIO 1.2, 5.19; Linux drivers/nvdimm/virtio_pmem.c). */
#ifndef TRACKB_VIRTIO_PMEM_H
#define TRACKB_VIRTIO_PMEM_H

#include <stdint.h>

#include "drivers/virtio_pci.h"
#include "kernel/memlayout.h"

struct virtio_pmem {
    struct virtio_pci vp;
    struct virtqueue vq;
    uint64_t start, size;       /* guest-physical region */
    const char *region_source;  /* "shared memory cap" or "device config" */
    void *base;                 /* mapped region */
    uint8_t *page;              /* virtqueue + request/response */
    uint64_t page_pa, io_pa;
    uint32_t revived;           /* times the device was found reset and set up again */
};

/* Largest region the driver maps: 64 GiB = vm_map_identity's VM_MAP_MAX_LEN
 * (at most 67 page-table pages, 268 KiB); larger is ERR_RANGE. */
#define PMEM_MAX_SIZE VM_MAP_MAX_LEN

/* Bring up the device at d: transport, features, region, queue, mapping.
 * Errors (kernel/errno.h): ERR_NODEV, the transport's (virtio_pci.h), ERR_IO
 * (bad configuration), ERR_RANGE (region too large or over RAM), ERR_NOMEM. */
int virtio_pmem_probe(struct pci_dev *d, struct virtio_pmem *pm);
/* A snapshot restore resets the device (QEMU 7.2 migrates no virtio-pmem state): its
 * registers read 0 and a flush would never complete. If so, negotiate and set the queue up
 * again on the same page; the region and its mapping stay as they are. 0 when the device
 * runs (again), ERR_IO if it refuses. The config space was reset as well: the BARs are
 * written back first (pci_restore). */
int virtio_pmem_revive(struct virtio_pmem *pm);
/* One flush request; 0, ERR_IO (device said no / bad reply), ERR_TIMEDOUT. */
int virtio_pmem_flush(struct virtio_pmem *pm, uint64_t timeout_ns);

#endif
