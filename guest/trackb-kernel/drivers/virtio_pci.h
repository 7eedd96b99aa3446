/* virtio_pci.h: virtio-pci modern transport (VIRTIO 1.2, 4.1). Device
 * drivers use these calls and never touch PCI capabilities or BARs. */
#ifndef TRACKB_VIRTIO_PCI_H
#define TRACKB_VIRTIO_PCI_H

#include <stdint.h>

#include "drivers/pci.h"
#include "drivers/virtqueue.h"
#include "parse/parse.h"

struct virtio_pci {
    struct pci_dev *pci;
    struct virtio_pci_layout layout;
    uint64_t common, notify, device;   /* physical addresses of the structures */
    uint64_t device_len;
    uint64_t shm_base, shm_len;        /* shared memory id 0, 0 if absent */
    uint64_t features;                 /* negotiated */
};

/* Errors are kernel/errno.h's (via parse/parse.h). */

/* Parse the capabilities and locate them in the (enabled) BARs: a parser's
 * error, or ERR_RANGE for a structure outside its BAR (or not mappable). */
int virtio_pci_open(struct pci_dev *d, struct virtio_pci *vp);
/* Reset, ACKNOWLEDGE|DRIVER, offer `wanted` & device features (VERSION_1 is
 * required), FEATURES_OK and check the device kept it; else ERR_NOTSUP. */
int virtio_pci_negotiate(struct virtio_pci *vp, uint64_t wanted);
/* Program queue `index` onto vq (laid out in a fresh page) and enable it;
 * ERR_IO for a queue the device does not offer or cannot take. */
int virtio_pci_setup_queue(struct virtio_pci *vp, uint16_t index, struct virtqueue *vq, void *page, uint64_t page_pa);
void virtio_pci_driver_ok(struct virtio_pci *vp);
void virtio_pci_fail(struct virtio_pci *vp);    /* FAILED status: the driver gave up */
void virtio_pci_reset(struct virtio_pci *vp);
/* The device status register as the device reports it now (0 after a reset). */
uint8_t virtio_pci_status(struct virtio_pci *vp);
void virtio_pci_notify(struct virtio_pci *vp, struct virtqueue *vq);
/* Copy device configuration [0, len) into buf, consistent across
 * config_generation: ERR_RANGE (len), ERR_TIMEDOUT (the generation never settled). */
int virtio_pci_read_config(struct virtio_pci *vp, uint8_t *buf, unsigned len);

#endif
