/* pmm.h: physical page allocator. */
#ifndef TRACKB_PMM_H
#define TRACKB_PMM_H

#include <stddef.h>
#include <stdint.h>

#include "parse/parse.h"

/* Usable RAM = RAM regions of the boot memory map within [1 MiB, 4 GiB)
 * (the direct map), minus [reserved_lo, reserved_hi) (the kernel image). */
void pmm_init(const struct mem_region *map, size_t n, uint64_t reserved_lo, uint64_t reserved_hi);
uint64_t pmm_alloc_page(void);      /* 4 KiB page, physical address; 0 when out of memory */
uint64_t pmm_alloc_zeroed(void);
void pmm_free_page(uint64_t pa);
/* 1 if [base, base+size) touches low memory, the kernel image or RAM the allocator hands out
 * (a device claiming such a range as its own, e.g. a hostile virtio-pmem config, is refused). */
int pmm_overlaps(uint64_t base, uint64_t size);
uint64_t pmm_total_bytes(void);
uint64_t pmm_free_bytes(void);

#endif
