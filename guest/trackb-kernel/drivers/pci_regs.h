/* pci_regs.h: PCI configuration space registers.
 * Spec: PCI Local Bus Specification 3.0, 6.1-6.2 (type 0/1 headers, command
 * register, BARs), 6.7 (capability list); PCI Express Base 4.0, 7.2.2 (ECAM:
 * bus << 20 | device << 15 | function << 12 | offset); CF8/CFC mechanism #1. */
#ifndef TRACKB_PCI_REGS_H
#define TRACKB_PCI_REGS_H

#define PCI_CFG_ADDR_PORT 0xCF8
#define PCI_CFG_DATA_PORT 0xCFC
#define PCI_CFG_ENABLE    0x80000000u

#define PCI_VENDOR_ID     0x00
#define PCI_DEVICE_ID     0x02
#define PCI_COMMAND       0x04
#define PCI_STATUS        0x06
#define PCI_CLASS_REV     0x08   /* revision, prog-if, subclass, class */
#define PCI_HEADER_TYPE   0x0E
#define PCI_BAR0          0x10
#define PCI_SECONDARY_BUS 0x19   /* type 1 header */
#define PCI_CAP_PTR       0x34

#define PCI_COMMAND_IO     0x1
#define PCI_COMMAND_MEMORY 0x2
#define PCI_COMMAND_MASTER 0x4

#define PCI_HEADER_TYPE_MASK  0x7F
#define PCI_HEADER_MULTIFUNC  0x80
#define PCI_HEADER_BRIDGE     0x01

#define PCI_BAR_IO          0x1
#define PCI_BAR_MEM_TYPE    0x6
#define PCI_BAR_MEM_64      0x4
#define PCI_BAR_MEM_PREFETCH 0x8
#define PCI_BAR_MEM_MASK    (~0xFULL)

#define PCI_VENDOR_NONE 0xFFFF

#endif
