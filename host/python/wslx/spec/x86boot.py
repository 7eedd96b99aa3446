"""x86 boot and firmware tables the Track B kernel parses: PVH start_info and
its memory map, the e820 table in a Linux boot_params page, and the ACPI
RSDP / SDT header / MCFG allocation.

Defined once here; build/gen/x86boot.h is generated from this module
(wslx.codegen.c_structs) for the kernel's parsers, and the host tests build
crafted inputs with these same Structs.

Sources: Xen public/arch-x86/hvm/start_info.h (hvm_start_info v1,
hvm_memmap_table_entry); Linux Documentation/arch/x86/zero-page.rst and
arch/x86/include/uapi/asm/bootparam.h (boot_params offsets, boot_e820_entry);
ACPI 6.5 sections 5.2.5 (RSDP), 5.2.6 (SDT header), 5.2.9 (FADT offsets);
PCI Firmware Spec 3.2 table 4-3 (MCFG).
"""
from __future__ import annotations

import enum

from construct import Bytes, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from .header import Constant, CStruct, HeaderSpec

HVM_START_MAGIC = 0x336EC578
XEN_ELFNOTE_PHYS32_ENTRY = 18

HVM_START_INFO = Struct(
    "magic" / Int32ul * "HVM_START_MAGIC",
    "version" / Int32ul * "0: no memmap fields; 1: memmap_paddr/memmap_entries valid",
    "flags" / Int32ul,
    "nr_modules" / Int32ul,
    "modlist_paddr" / Int64ul,
    "cmdline_paddr" / Int64ul * "NUL-terminated kernel command line, 0 if none",
    "rsdp_paddr" / Int64ul * "ACPI RSDP, 0 if none",
    "memmap_paddr" / Int64ul * "array of hvm_memmap_table_entry (version >= 1)",
    "memmap_entries" / Int32ul,
    "reserved" / Int32ul,
)

HVM_MEMMAP_ENTRY = Struct(
    "addr" / Int64ul,
    "size" / Int64ul,
    "type" / Int32ul * "E820 type",
    "reserved" / Int32ul,
)

BOOT_E820_ENTRY = Struct(
    "addr" / Int64ul,
    "size" / Int64ul,
    "type" / Int32ul * "E820 type",
)


class E820Type(enum.IntEnum):
    """Memory map entry types (ACPI address range types; e820 and PVH share them)."""
    RAM = 1
    RESERVED = 2
    ACPI = 3
    NVS = 4
    UNUSABLE = 5
    PMEM = 7


# Offsets into the 4 KiB Linux boot_params ("zero page").
BP_SIZE = 4096
BP_ACPI_RSDP_ADDR = 0x070
BP_EXT_CMD_LINE_PTR = 0x0C8
BP_E820_ENTRIES = 0x1E8
BP_CMD_LINE_PTR = 0x228
BP_CMDLINE_SIZE = 0x238
BP_E820_TABLE = 0x2D0
BP_E820_MAX = 128

ACPI_RSDP = Struct(
    "signature" / Bytes(8) * '"RSD PTR "',
    "checksum" / Int8ul * "first 20 bytes sum to 0",
    "oem_id" / Bytes(6),
    "revision" / Int8ul * "0: ACPI 1.0 (20 bytes); 2: the fields below are valid",
    "rsdt_address" / Int32ul,
    "length" / Int32ul,
    "xsdt_address" / Int64ul,
    "extended_checksum" / Int8ul * "whole structure sums to 0",
    "reserved" / Bytes(3),
)
ACPI_RSDP_V1_SIZE = 20

ACPI_SDT_HEADER = Struct(
    "signature" / Bytes(4),
    "length" / Int32ul * "whole table including this header",
    "revision" / Int8ul,
    "checksum" / Int8ul * "whole table sums to 0",
    "oem_id" / Bytes(6),
    "oem_table_id" / Bytes(8),
    "oem_revision" / Int32ul,
    "creator_id" / Int32ul,
    "creator_revision" / Int32ul,
)

ACPI_MCFG_ALLOCATION = Struct(
    "base_address" / Int64ul * "ECAM base for bus 0 of this segment",
    "segment" / Int16ul,
    "start_bus" / Int8ul,
    "end_bus" / Int8ul,
    "reserved" / Int32ul,
)
# MCFG: SDT header, 8 reserved bytes, then the allocations.
ACPI_MCFG_ENTRIES_OFFSET = 44
# FADT fields the kernel reads for ACPI S5 power-off.
ACPI_FADT_DSDT = 40
ACPI_FADT_PM1A_CNT_BLK = 64
ACPI_FADT_X_DSDT = 140
ACPI_SLP_EN = 1 << 13
ACPI_SLP_TYP_SHIFT = 10

C_HEADER = HeaderSpec(
    name="x86boot", source="host/python/wslx/spec/x86boot.py", prefix="X86BOOT",
    assembler=True,  # pvh_note.h and the OpenVMM-entry test shim use the note type and offsets
    title="x86 boot information and ACPI tables parsed by the Track B kernel",
    doc="PVH start_info, Linux boot_params e820, ACPI RSDP/SDT/MCFG. All little-endian. "
        "Parsers take raw bytes plus a length and validate every count and offset.",
    constants=[
        Constant("HVM_START_MAGIC", HVM_START_MAGIC, "hvm_start_info.magic"),
        Constant("XEN_ELFNOTE_PHYS32_ENTRY", XEN_ELFNOTE_PHYS32_ENTRY, "PVH entry ELF note type"),
        Constant("BP_SIZE", BP_SIZE, "boot_params page size"),
        Constant("BP_ACPI_RSDP_ADDR", BP_ACPI_RSDP_ADDR, "u64 RSDP physical address"),
        Constant("BP_EXT_CMD_LINE_PTR", BP_EXT_CMD_LINE_PTR, "u32 upper half of the command line address"),
        Constant("BP_E820_ENTRIES", BP_E820_ENTRIES, "u8 number of e820 entries"),
        Constant("BP_CMD_LINE_PTR", BP_CMD_LINE_PTR, "u32 command line address (setup header)"),
        Constant("BP_CMDLINE_SIZE", BP_CMDLINE_SIZE, "u32 maximum command line size (setup header)"),
        Constant("BP_E820_TABLE", BP_E820_TABLE, "boot_e820_entry[BP_E820_MAX]"),
        Constant("BP_E820_MAX", BP_E820_MAX, "capacity of the e820 table"),
        Constant("ACPI_RSDP_V1_SIZE", ACPI_RSDP_V1_SIZE, "bytes covered by the ACPI 1.0 checksum"),
        Constant("ACPI_MCFG_ENTRIES_OFFSET", ACPI_MCFG_ENTRIES_OFFSET, "first MCFG allocation"),
        Constant("ACPI_FADT_DSDT", ACPI_FADT_DSDT, "u32 DSDT address in the FADT"),
        Constant("ACPI_FADT_PM1A_CNT_BLK", ACPI_FADT_PM1A_CNT_BLK, "u32 PM1a control port in the FADT"),
        Constant("ACPI_FADT_X_DSDT", ACPI_FADT_X_DSDT, "u64 DSDT address in the FADT (ACPI 2.0+)"),
        Constant("ACPI_SLP_EN", ACPI_SLP_EN, "PM1 control: sleep enable"),
        Constant("ACPI_SLP_TYP_SHIFT", ACPI_SLP_TYP_SHIFT, "PM1 control: SLP_TYP field position"),
    ],
    enums=[("X86BOOT_E820", E820Type)],
    structs=[
        CStruct("hvm_start_info", HVM_START_INFO, "PVH start_info (EBX at the 32-bit PVH entry)"),
        CStruct("hvm_memmap_table_entry", HVM_MEMMAP_ENTRY, "PVH memory map entry"),
        CStruct("boot_e820_entry", BOOT_E820_ENTRY, "e820 entry in boot_params (20 bytes, packed)", packed=True),
        CStruct("acpi_rsdp", ACPI_RSDP, "ACPI Root System Description Pointer", packed=True),
        CStruct("acpi_sdt_header", ACPI_SDT_HEADER, "ACPI System Description Table header", packed=True),
        CStruct("acpi_mcfg_allocation", ACPI_MCFG_ALLOCATION, "MCFG: one ECAM range", packed=True),
    ],
)
