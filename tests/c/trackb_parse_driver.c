/* trackb_parse_driver.c: runs one Track B parser (guest/trackb-kernel/parse)
 * on the bytes given on stdin, for tests/test_trackb_parsers.py.
 *
 *   trackb_parse_driver KIND [ARG] < bytes
 *
 * The input is copied into a buffer of exactly its size, so under
 * -fsanitize=address any read past the end aborts the run. Output: "rc=N"
 * then key=value lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse/parse.h"

static uint8_t *read_all(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    uint8_t *tmp = malloc(cap);
    size_t r;
    while ((r = fread(tmp + n, 1, cap - n, stdin)) > 0) {
        n += r;
        if (n == cap)
            tmp = realloc(tmp, cap *= 2);
    }
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, tmp, n);
    free(tmp);
    *len = n;
    return exact;
}

static void regions(int rc, const struct mem_region *r)
{
    for (int i = 0; i < rc; i++)
        printf("region=%llx,%llx,%u\n", (unsigned long long)r[i].base, (unsigned long long)r[i].size, r[i].type);
}

static void region(const char *name, const struct virtio_region *r)
{
    if (r->present)
        printf("%s=%u,%llx,%llx\n", name, r->bar, (unsigned long long)r->offset, (unsigned long long)r->length);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s KIND [ARG] < bytes\n", argv[0]);
        return 2;
    }
    const char *kind = argv[1];
    unsigned long arg = argc > 2 ? strtoul(argv[2], NULL, 0) : 0;
    size_t len;
    uint8_t *b = read_all(&len);
    struct mem_region r[8];
    struct boot_facts f = {0};
    long rc;

    if (!strcmp(kind, "pvh")) {
        rc = pvh_parse_start_info(b, len, &f);
        printf("rc=%ld\ncmdline=%llx\nrsdp=%llx\nmemmap=%llx\nentries=%u\n", rc, (unsigned long long)f.cmdline_paddr,
               (unsigned long long)f.rsdp_paddr, (unsigned long long)f.memmap_paddr, f.memmap_entries);
    } else if (!strcmp(kind, "pvh_memmap")) {
        rc = pvh_parse_memmap(b, len, (uint32_t)arg, r, 8);
        printf("rc=%ld\n", rc);
        regions((int)rc, r);
    } else if (!strcmp(kind, "bootparams")) {
        rc = bootparams_parse(b, len, &f, r, 8);
        printf("rc=%ld\ncmdline=%llx\nrsdp=%llx\n", rc, (unsigned long long)f.cmdline_paddr,
               (unsigned long long)f.rsdp_paddr);
        regions((int)rc, r);
    } else if (!strcmp(kind, "rsdp")) {
        uint64_t root = 0;
        int x = -1;
        rc = acpi_parse_rsdp(b, len, &root, &x);
        printf("rc=%ld\nroot=%llx\nxsdt=%d\n", rc, (unsigned long long)root, x);
    } else if (!strcmp(kind, "rsdp_scan")) {
        rc = acpi_scan_rsdp(b, len);
        printf("rc=%ld\n", rc);
    } else if (!strcmp(kind, "root")) {   /* ARG: 1 = XSDT */
        uint64_t pa;
        size_t i = 0;
        while ((rc = acpi_root_entry(b, len, (int)arg, i, &pa)) == 0) {
            printf("entry=%llx\n", (unsigned long long)pa);
            i++;
        }
        printf("rc=%ld\ncount=%zu\n", rc, i);
    } else if (!strcmp(kind, "mcfg")) {
        struct ecam_region e[4];
        rc = acpi_parse_mcfg(b, len, e, 4);
        printf("rc=%ld\n", rc);
        for (long i = 0; i < rc; i++)
            printf("ecam=%llx,%u,%u,%u\n", (unsigned long long)e[i].base, e[i].segment, e[i].start_bus, e[i].end_bus);
    } else if (!strcmp(kind, "fadt")) {
        uint32_t pm1a = 0;
        uint64_t dsdt = 0;
        rc = acpi_parse_fadt(b, len, &pm1a, &dsdt);
        printf("rc=%ld\npm1a=%x\ndsdt=%llx\n", rc, pm1a, (unsigned long long)dsdt);
    } else if (!strcmp(kind, "s5")) {
        uint8_t typ = 0xEE;
        rc = acpi_find_s5(b, len, &typ);
        printf("rc=%ld\nslp_typa=%u\n", rc, typ);
    } else if (!strcmp(kind, "caps")) {
        uint8_t offs[PCI_MAX_CAPS];
        rc = pci_cap_list(b, len, offs, PCI_MAX_CAPS);
        printf("rc=%ld\n", rc);
        for (long i = 0; i < rc; i++)
            printf("cap=%x\n", offs[i]);
    } else if (!strcmp(kind, "virtio_caps")) {
        struct virtio_pci_layout l;
        rc = virtio_parse_caps(b, len, &l);
        printf("rc=%ld\n", rc);
        if (rc == 0) {
            region("common", &l.common);
            region("notify", &l.notify);
            region("isr", &l.isr);
            region("device", &l.device);
            region("shm", &l.shm);
            printf("notify_mult=%u\n", l.notify_off_multiplier);
        }
    } else if (!strcmp(kind, "pmem_cfg")) {
        uint64_t start = 0, size = 0;
        rc = virtio_pmem_parse_config(b, len, &start, &size);
        printf("rc=%ld\nstart=%llx\nsize=%llx\n", rc, (unsigned long long)start, (unsigned long long)size);
    } else {
        fprintf(stderr, "unknown kind %s\n", kind);
        return 2;
    }
    printf("strerror=%s\n", err_str((int)(rc < 0 ? rc : 0)));
    free(b);
    return 0;
}
