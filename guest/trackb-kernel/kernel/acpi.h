/* acpi.h: the ACPI facts the kernel uses (ECAM windows, S5 power-off). */
#ifndef TRACKB_ACPI_H
#define TRACKB_ACPI_H

#include <stdint.h>

#include "parse/parse.h"

#define ACPI_MAX_ECAM 4

struct acpi_facts {
    uint64_t rsdp;
    struct ecam_region ecam[ACPI_MAX_ECAM];
    int n_ecam;
    uint32_t pm1a_cnt;      /* 0: unknown */
    int have_s5;
    uint8_t slp_typa;
};

/* rsdp_hint: from start_info/boot_params, 0 = scan the EBDA and BIOS area. */
void acpi_init(uint64_t rsdp_hint, struct acpi_facts *out);

#endif
