/* acpi.c: find the RSDP, walk the RSDT/XSDT, keep MCFG and FADT/\_S5.
 * Tables are read through phys_ptr() with their checked length only. */
#include "kernel/acpi.h"
#include "kernel/console.h"
#include "kernel/errno.h"
#include "kernel/klib.h"
#include "kernel/vm.h"
#include "platform/platform.h"
#include "x86boot.h"

#define MAX_TABLE_LEN (1u << 20)
#define BIOS_AREA 0xE0000
#define BIOS_AREA_LEN 0x20000
#define EBDA_PTR 0x40E

/* A whole checked SDT at pa, or NULL. */
static const uint8_t *map_sdt(uint64_t pa, long *len)
{
    const uint8_t *h = phys_ptr(pa, ACPI_SDT_HEADER_SIZE);
    if (!h)
        return NULL;
    uint32_t tlen = ld32(h + ACPI_SDT_HEADER_OFF_LENGTH);
    if (tlen > MAX_TABLE_LEN)
        return NULL;
    const uint8_t *t = phys_ptr(pa, tlen);
    if (!t || (*len = acpi_check_sdt(t, tlen)) < 0)
        return NULL;
    return t;
}

static uint64_t find_rsdp(uint64_t hint)
{
    if (hint) {
        const uint8_t *p = phys_ptr(hint, ACPI_RSDP_SIZE);
        uint64_t root;
        int x;
        if (p && acpi_parse_rsdp(p, ACPI_RSDP_SIZE, &root, &x) == 0)
            return hint;
    }
    const uint8_t *ebda_ptr = phys_ptr(EBDA_PTR, 2);
    uint64_t ebda = ebda_ptr ? (uint64_t)ld16(ebda_ptr) << 4 : 0;
    if (ebda >= 0x80000 && ebda < 0xA0000) {
        const uint8_t *area = phys_ptr(ebda, 1024);
        long off = area ? acpi_scan_rsdp(area, 1024) : ERR_NOENT;
        if (off >= 0)
            return ebda + (uint64_t)off;
    }
    const uint8_t *bios = phys_ptr(BIOS_AREA, BIOS_AREA_LEN);
    long off = bios ? acpi_scan_rsdp(bios, BIOS_AREA_LEN) : ERR_NOENT;
    return off >= 0 ? BIOS_AREA + (uint64_t)off : 0;
}

void acpi_init(uint64_t rsdp_hint, struct acpi_facts *out)
{
    uint64_t root_pa;
    int is_xsdt;
    long rlen;

    *out = (struct acpi_facts){0};
    out->rsdp = find_rsdp(rsdp_hint);
    if (!out->rsdp) {
        kprintf("acpi: no RSDP\n");
        return;
    }
    const uint8_t *rsdp = phys_ptr(out->rsdp, ACPI_RSDP_SIZE);
    int err = acpi_parse_rsdp(rsdp, ACPI_RSDP_SIZE, &root_pa, &is_xsdt);
    const uint8_t *root = err ? NULL : map_sdt(root_pa, &rlen);
    if (!root) {
        kdetail("acpi: RSDP at %lx: unusable root table (%s)\n", out->rsdp, err_str(err));
        return;
    }
    kdetail("acpi: RSDP at %lx, %s at %lx\n", out->rsdp, is_xsdt ? "XSDT" : "RSDT", root_pa);
    uint64_t pa;
    for (size_t i = 0; acpi_root_entry(root, (size_t)rlen, is_xsdt, i, &pa) == 0; i++) {
        long tlen;
        const uint8_t *t = map_sdt(pa, &tlen);
        if (!t)
            continue;
        if (!memcmp(t, "MCFG", 4)) {
            int n = acpi_parse_mcfg(t, (size_t)tlen, out->ecam, ACPI_MAX_ECAM);
            out->n_ecam = n > 0 ? n : 0;
        } else if (!memcmp(t, "FACP", 4)) {
            uint64_t dsdt_pa;
            long dlen;
            if (acpi_parse_fadt(t, (size_t)tlen, &out->pm1a_cnt, &dsdt_pa) == 0) {
                const uint8_t *dsdt = map_sdt(dsdt_pa, &dlen);
                if (dsdt && acpi_find_s5(dsdt, (size_t)dlen, &out->slp_typa) == 0)
                    out->have_s5 = 1;
            }
        }
    }
    for (int i = 0; i < out->n_ecam; i++)
        kdetail("acpi: MCFG segment %u buses %u-%u ECAM at %lx\n", out->ecam[i].segment, out->ecam[i].start_bus,
                out->ecam[i].end_bus, out->ecam[i].base);
    if (out->pm1a_cnt)
        kdetail("acpi: PM1a_CNT port %x, S5 %s\n", out->pm1a_cnt, out->have_s5 ? "found" : "not found");
}
