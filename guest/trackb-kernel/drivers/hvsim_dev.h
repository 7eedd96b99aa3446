/* hvsim_dev.h: the ivshmem-doorbell device that carries the hvsim trap
 * channel (QEMU docs/specs/ivshmem-spec.txt: BAR0 registers, BAR1 MSI-X,
 * BAR2 shared memory; PCI Local Bus 3.0 6.8.2 for the MSI-X capability and
 * table; Intel SDM Vol. 3A 10.11 for the message address and data). The
 * block in BAR2 and the register offsets come from build/gen/hvsim.h. */
#ifndef TRACKB_HVSIM_DEV_H
#define TRACKB_HVSIM_DEV_H

#include <stdint.h>

#include "drivers/pci.h"

#define PCI_CAP_ID_MSIX        0x11
#define MSIX_CTRL              2         /* capability + 2: message control */
#define MSIX_CTRL_ENABLE       (1u << 15)
#define MSIX_CTRL_FUNC_MASK    (1u << 14)
#define MSIX_TABLE             4         /* capability + 4: table offset | BIR */
#define MSIX_TABLE_BIR_MASK    0x7u
#define MSIX_ENTRY_SIZE        16        /* address lo, address hi, data, vector control */
#define MSIX_ENTRY_MASKED      1u
#define MSI_ADDRESS_LAPIC      0xFEE00000u   /* destination APIC 0, physical mode */
#define HVSIM_VECTOR_BASE      0x30u     /* kernel/irq.h: 0x30-0x3E are the kernel's */

/* Find the ivshmem device whose shared memory holds the model's block
 * (magic and version), program its MSI-X entries i -> HVSIM_VECTOR_BASE + i,
 * and switch platform.h's hypervisor calls to it. 1 when hvsim is in use,
 * 0 when there is no such device (native instructions stay). */
int hvsim_probe(struct pci_dev *d);

#endif
