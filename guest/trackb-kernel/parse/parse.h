/* parse.h: pure parsers of raw boot, firmware and device bytes.
 *
 * Every function takes a pointer and a length, never reads outside them, and
 * returns an ERR_* of kernel/errno.h for anything malformed. No hardware
 * access and no kernel state, so tests/test_trackb_parsers.py builds them for the host
 * (under ASan/UBSan) and feeds crafted bytes made with the construct specs
 * the headers are generated from (x86boot.h, virtio.h). */
#ifndef TRACKB_PARSE_H
#define TRACKB_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "kernel/errno.h"

/* Little-endian loads from unaligned bytes. */
static inline uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t ld32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static inline uint64_t ld64(const uint8_t *p) { return ld32(p) | (uint64_t)ld32(p + 4) << 32; }

/* ---- boot information (parse/bootinfo.c) ---- */
struct mem_region {
    uint64_t base, size;
    uint32_t type;         /* X86BOOT_E820_* */
};

struct boot_facts {
    uint64_t cmdline_paddr;   /* 0: none */
    uint64_t rsdp_paddr;      /* 0: unknown, scan the BIOS area */
    uint64_t memmap_paddr;    /* PVH only */
    uint32_t memmap_entries;  /* PVH only */
};

/* PVH hvm_start_info: magic, version >= 1 (the memory map is required). */
int pvh_parse_start_info(const uint8_t *b, size_t len, struct boot_facts *out);
/* `entries` hvm_memmap_table_entry from b; returns the number stored in out
 * (at most cap; extra entries are dropped) or a PARSE_* error. Entries whose
 * addr + size overflows are rejected. */
int pvh_parse_memmap(const uint8_t *b, size_t len, uint32_t entries, struct mem_region *out, size_t cap);
/* Linux boot_params (the whole 4 KiB page): command line, RSDP, e820 table.
 * Returns the number of regions stored in out or a PARSE_* error. */
int bootparams_parse(const uint8_t *b, size_t len, struct boot_facts *facts, struct mem_region *out, size_t cap);

/* ---- ACPI (parse/acpi.c) ---- */
/* Check an RSDP (signature, checksums); sets the root table address and
 * whether it is an XSDT (8-byte entries) or an RSDT (4-byte entries). */
int acpi_parse_rsdp(const uint8_t *b, size_t len, uint64_t *root_paddr, int *is_xsdt);
/* Offset of the first valid RSDP in b (16-byte aligned search) or ERR_NOENT. */
long acpi_scan_rsdp(const uint8_t *b, size_t len);
/* Check an SDT: header fits, length <= len, checksum; returns the table length. */
long acpi_check_sdt(const uint8_t *b, size_t len);
/* Entry i of a checked RSDT/XSDT, or ERR_NOENT past the end. */
int acpi_root_entry(const uint8_t *b, size_t len, int is_xsdt, size_t i, uint64_t *paddr);

struct ecam_region {
    uint64_t base;          /* ECAM address of bus 0 of the segment */
    uint16_t segment;
    uint8_t start_bus, end_bus;
};
/* MCFG allocations from a checked MCFG table; returns the number stored. */
int acpi_parse_mcfg(const uint8_t *b, size_t len, struct ecam_region *out, size_t cap);
/* FADT: PM1a control port and DSDT address. */
int acpi_parse_fadt(const uint8_t *b, size_t len, uint32_t *pm1a_cnt, uint64_t *dsdt_paddr);
/* Find \_S5 in a DSDT's AML and return SLP_TYPa (the usual Name(_S5, Package(){a, b, ...})). */
int acpi_find_s5(const uint8_t *b, size_t len, uint8_t *slp_typa);

/* ---- PCI capability list (parse/pci_caps.c) ---- */
#define PCI_CFG_SPACE_SIZE 256
#define PCI_MAX_CAPS 48        /* (256 - 64) / 4: more than that means a loop */
/* Offsets of the capabilities in a config space snapshot, in list order. */
int pci_cap_list(const uint8_t *cfg, size_t len, uint8_t *offsets, size_t cap);

/* ---- virtio-pci (parse/virtio_caps.c) ---- */
struct virtio_region {
    uint8_t present, bar;
    uint64_t offset, length;   /* within the BAR */
};
struct virtio_pci_layout {
    struct virtio_region common, notify, isr, device, shm;  /* shm: shared memory id 0 */
    uint32_t notify_off_multiplier;
};
/* Collect the vendor capabilities of a modern virtio function (first of each
 * type wins, as the spec asks). Rejects malformed capabilities; ERR_NOENT
 * if common, notify or device configuration is missing. */
int virtio_parse_caps(const uint8_t *cfg, size_t len, struct virtio_pci_layout *out);

/* ---- virtio-pmem (parse/virtio_pmem_cfg.c) ---- */
/* start/size from the device config; ERR_NOENT when both are 0 (OpenVMM),
 * ERR_RANGE if misaligned (not 4 KiB) or wrapping. */
int virtio_pmem_parse_config(const uint8_t *b, size_t len, uint64_t *start, uint64_t *size);

#endif
