/* pci.h: PCI enumeration over ECAM (ACPI MCFG) or port I/O 0xCF8. */
#ifndef TRACKB_PCI_H
#define TRACKB_PCI_H

#include <stdint.h>

#include "parse/parse.h"

#define PCI_MAX_DEVICES 32

struct pci_dev {
    uint8_t bus, dev, fn;
    uint16_t vendor, device;
    uint8_t class_code, subclass;
    uint64_t bar[6], bar_size[6];   /* memory BARs only; 0 = absent/IO */
};

/* Use ECAM when ecam (segment 0) is given, port I/O otherwise.
 * mmio_lo/mmio_hi: the window for BARs the firmware left unassigned. */
void pci_init(const struct ecam_region *ecam, int n_ecam, uint64_t mmio_lo, uint64_t mmio_hi);
int pci_enumerate(void);          /* scan from bus 0 through bridges; returns the count */
int pci_count(void);
struct pci_dev *pci_get(int i);
struct pci_dev *pci_find(uint16_t vendor, uint16_t device);
const char *pci_access_method(void);

uint32_t pci_read32(const struct pci_dev *d, uint16_t off);
void pci_write32(const struct pci_dev *d, uint16_t off, uint32_t v);
uint16_t pci_read16(const struct pci_dev *d, uint16_t off);
void pci_write16(const struct pci_dev *d, uint16_t off, uint16_t v);
/* Copy config space [0, len) (len <= 256) into buf. */
void pci_read_config(const struct pci_dev *d, uint8_t *buf, unsigned len);
/* Size and, if unassigned, place the memory BARs; enable memory + bus master. */
int pci_enable(struct pci_dev *d);
/* Write the BAR addresses pci_enable recorded back and enable memory + bus master again:
 * after a snapshot restore, a device QEMU migrates no state for (virtio-pmem in 7.2)
 * comes back with its config space reset (BARs 0, decoding off). */
void pci_restore(const struct pci_dev *d);

#endif
