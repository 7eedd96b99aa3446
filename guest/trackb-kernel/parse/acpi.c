/* acpi.c: RSDP, RSDT/XSDT, MCFG, FADT and the \_S5 package in the DSDT. */
#include "parse/parse.h"
#include "x86boot.h"

static uint8_t sum8(const uint8_t *b, size_t len)
{
    uint8_t s = 0;
    while (len--)
        s += *b++;
    return s;
}

static int eq(const uint8_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (b[i] != (uint8_t)s[i])
            return 0;
    }
    return 1;
}

int acpi_parse_rsdp(const uint8_t *b, size_t len, uint64_t *root_paddr, int *is_xsdt)
{
    if (len < X86BOOT_ACPI_RSDP_V1_SIZE)
        return ERR_TRUNC;
    if (!eq(b + ACPI_RSDP_OFF_SIGNATURE, "RSD PTR ", 8))
        return ERR_MAGIC;
    if (sum8(b, X86BOOT_ACPI_RSDP_V1_SIZE) != 0)
        return ERR_CHECKSUM;
    if (b[ACPI_RSDP_OFF_REVISION] >= 2) {
        if (len < ACPI_RSDP_SIZE)
            return ERR_TRUNC;
        uint32_t full = ld32(b + ACPI_RSDP_OFF_LENGTH);
        if (full < ACPI_RSDP_SIZE || full > len)
            return ERR_RANGE;
        if (sum8(b, full) != 0)
            return ERR_CHECKSUM;
        uint64_t x = ld64(b + ACPI_RSDP_OFF_XSDT_ADDRESS);
        if (x) {
            *root_paddr = x;
            *is_xsdt = 1;
            return 0;
        }
    }
    *root_paddr = ld32(b + ACPI_RSDP_OFF_RSDT_ADDRESS);
    *is_xsdt = 0;
    return *root_paddr ? 0 : ERR_NOENT;
}

long acpi_scan_rsdp(const uint8_t *b, size_t len)
{
    uint64_t root;
    int x;
    for (size_t off = 0; off + X86BOOT_ACPI_RSDP_V1_SIZE <= len; off += 16) {
        if (acpi_parse_rsdp(b + off, len - off, &root, &x) == 0)
            return (long)off;
    }
    return ERR_NOENT;
}

long acpi_check_sdt(const uint8_t *b, size_t len)
{
    if (len < ACPI_SDT_HEADER_SIZE)
        return ERR_TRUNC;
    uint32_t tlen = ld32(b + ACPI_SDT_HEADER_OFF_LENGTH);
    if (tlen < ACPI_SDT_HEADER_SIZE)
        return ERR_RANGE;
    if (tlen > len)
        return ERR_TRUNC;
    if (sum8(b, tlen) != 0)
        return ERR_CHECKSUM;
    return (long)tlen;
}

int acpi_root_entry(const uint8_t *b, size_t len, int is_xsdt, size_t i, uint64_t *paddr)
{
    long tlen = acpi_check_sdt(b, len);
    if (tlen < 0)
        return (int)tlen;
    if (!eq(b, is_xsdt ? "XSDT" : "RSDT", 4))
        return ERR_MAGIC;
    size_t w = is_xsdt ? 8 : 4;
    size_t n = ((size_t)tlen - ACPI_SDT_HEADER_SIZE) / w;
    if (i >= n)
        return ERR_NOENT;
    const uint8_t *e = b + ACPI_SDT_HEADER_SIZE + i * w;
    *paddr = is_xsdt ? ld64(e) : ld32(e);
    return 0;
}

int acpi_parse_mcfg(const uint8_t *b, size_t len, struct ecam_region *out, size_t cap)
{
    long tlen = acpi_check_sdt(b, len);
    if (tlen < 0)
        return (int)tlen;
    if (!eq(b, "MCFG", 4))
        return ERR_MAGIC;
    if ((size_t)tlen < X86BOOT_ACPI_MCFG_ENTRIES_OFFSET)
        return ERR_TRUNC;
    size_t count = ((size_t)tlen - X86BOOT_ACPI_MCFG_ENTRIES_OFFSET) / ACPI_MCFG_ALLOCATION_SIZE;
    size_t n = 0;
    for (size_t i = 0; i < count && n < cap; i++) {
        const uint8_t *e = b + X86BOOT_ACPI_MCFG_ENTRIES_OFFSET + i * ACPI_MCFG_ALLOCATION_SIZE;
        struct ecam_region r = {
            ld64(e + ACPI_MCFG_ALLOCATION_OFF_BASE_ADDRESS), ld16(e + ACPI_MCFG_ALLOCATION_OFF_SEGMENT),
            e[ACPI_MCFG_ALLOCATION_OFF_START_BUS], e[ACPI_MCFG_ALLOCATION_OFF_END_BUS]};
        /* 1 MiB of ECAM per bus: the window must not wrap, nor be empty or backwards. */
        if (r.end_bus < r.start_bus || r.base == 0 || (r.base & 0xFFFFF) ||
            r.base + ((uint64_t)r.end_bus + 1) * 0x100000 < r.base)
            return ERR_RANGE;
        out[n++] = r;
    }
    return (int)n;
}

int acpi_parse_fadt(const uint8_t *b, size_t len, uint32_t *pm1a_cnt, uint64_t *dsdt_paddr)
{
    long tlen = acpi_check_sdt(b, len);
    if (tlen < 0)
        return (int)tlen;
    if (!eq(b, "FACP", 4))
        return ERR_MAGIC;
    if (tlen < X86BOOT_ACPI_FADT_PM1A_CNT_BLK + 4)
        return ERR_TRUNC;
    *pm1a_cnt = ld32(b + X86BOOT_ACPI_FADT_PM1A_CNT_BLK);
    *dsdt_paddr = ld32(b + X86BOOT_ACPI_FADT_DSDT);
    if (tlen >= X86BOOT_ACPI_FADT_X_DSDT + 8 && ld64(b + X86BOOT_ACPI_FADT_X_DSDT))
        *dsdt_paddr = ld64(b + X86BOOT_ACPI_FADT_X_DSDT);
    return 0;
}

/* AML: NameOp(0x08) "_S5_" PackageOp(0x12) PkgLength NumElements, then the first
 * element as BytePrefix(0x0A) n, ZeroOp(0x00) or OneOp(0x01). */
int acpi_find_s5(const uint8_t *b, size_t len, uint8_t *slp_typa)
{
    long tlen = acpi_check_sdt(b, len);
    if (tlen < 0)
        return (int)tlen;
    for (size_t i = ACPI_SDT_HEADER_SIZE; i + 5 <= (size_t)tlen; i++) {
        if (!eq(b + i, "_S5_", 4))
            continue;
        if (i < 1 || (b[i - 1] != 0x08 && !(i >= 2 && b[i - 2] == 0x08 && b[i - 1] == '\\')))
            continue;
        size_t p = i + 4;
        if (p >= (size_t)tlen || b[p] != 0x12)
            continue;
        p++;
        if (p >= (size_t)tlen)
            return ERR_TRUNC;
        p += 1 + (b[p] >> 6);            /* PkgLength: 1 + its extra byte count */
        p += 1;                          /* NumElements */
        if (p >= (size_t)tlen)
            return ERR_TRUNC;
        if (b[p] == 0x0A) {
            if (p + 1 >= (size_t)tlen)
                return ERR_TRUNC;
            *slp_typa = b[p + 1];
        } else if (b[p] == 0x00 || b[p] == 0x01) {
            *slp_typa = b[p];
        } else {
            return ERR_RANGE;
        }
        return 0;
    }
    return ERR_NOENT;
}
