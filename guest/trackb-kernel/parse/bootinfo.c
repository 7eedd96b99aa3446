/* bootinfo.c: PVH start_info + memory map, and Linux boot_params e820. */
#include "parse/parse.h"
#include "x86boot.h"

int pvh_parse_start_info(const uint8_t *b, size_t len, struct boot_facts *out)
{
    if (len < HVM_START_INFO_SIZE)
        return ERR_TRUNC;
    if (ld32(b + HVM_START_INFO_OFF_MAGIC) != X86BOOT_HVM_START_MAGIC)
        return ERR_MAGIC;
    if (ld32(b + HVM_START_INFO_OFF_VERSION) < 1)
        return ERR_VERSION;      /* version 0 has no memory map */
    out->cmdline_paddr = ld64(b + HVM_START_INFO_OFF_CMDLINE_PADDR);
    out->rsdp_paddr = ld64(b + HVM_START_INFO_OFF_RSDP_PADDR);
    out->memmap_paddr = ld64(b + HVM_START_INFO_OFF_MEMMAP_PADDR);
    out->memmap_entries = ld32(b + HVM_START_INFO_OFF_MEMMAP_ENTRIES);
    if (out->memmap_paddr == 0 || out->memmap_entries == 0)
        return ERR_NOENT;
    return 0;
}

/* Shared by both formats: one (addr, size, type) triple. */
static int add_region(struct mem_region *out, size_t cap, size_t *n, uint64_t addr, uint64_t size, uint32_t type)
{
    if (addr + size < addr)
        return ERR_RANGE;
    if (size == 0)
        return 0;   /* firmware emits empty entries; skip them */
    if (*n < cap)
        out[(*n)++] = (struct mem_region){addr, size, type};
    return 0;
}

int pvh_parse_memmap(const uint8_t *b, size_t len, uint32_t entries, struct mem_region *out, size_t cap)
{
    size_t n = 0;
    if (entries > len / HVM_MEMMAP_TABLE_ENTRY_SIZE)
        return ERR_TRUNC;
    for (uint32_t i = 0; i < entries; i++) {
        const uint8_t *e = b + (size_t)i * HVM_MEMMAP_TABLE_ENTRY_SIZE;
        int err = add_region(out, cap, &n, ld64(e + HVM_MEMMAP_TABLE_ENTRY_OFF_ADDR),
                             ld64(e + HVM_MEMMAP_TABLE_ENTRY_OFF_SIZE), ld32(e + HVM_MEMMAP_TABLE_ENTRY_OFF_TYPE));
        if (err)
            return err;
    }
    return (int)n;
}

int bootparams_parse(const uint8_t *b, size_t len, struct boot_facts *facts, struct mem_region *out, size_t cap)
{
    size_t n = 0;
    if (len < X86BOOT_BP_SIZE)
        return ERR_TRUNC;
    uint32_t entries = b[X86BOOT_BP_E820_ENTRIES];
    if (entries > X86BOOT_BP_E820_MAX)
        return ERR_RANGE;
    facts->rsdp_paddr = ld64(b + X86BOOT_BP_ACPI_RSDP_ADDR);
    facts->cmdline_paddr = ld32(b + X86BOOT_BP_CMD_LINE_PTR) | (uint64_t)ld32(b + X86BOOT_BP_EXT_CMD_LINE_PTR) << 32;
    facts->memmap_paddr = 0;
    facts->memmap_entries = entries;
    if (entries == 0)
        return ERR_NOENT;
    for (uint32_t i = 0; i < entries; i++) {
        const uint8_t *e = b + X86BOOT_BP_E820_TABLE + (size_t)i * BOOT_E820_ENTRY_SIZE;
        int err = add_region(out, cap, &n, ld64(e + BOOT_E820_ENTRY_OFF_ADDR), ld64(e + BOOT_E820_ENTRY_OFF_SIZE),
                             ld32(e + BOOT_E820_ENTRY_OFF_TYPE));
        if (err)
            return err;
    }
    return (int)n;
}
