/* vm.h: identity mappings beyond the boot page tables. */
#ifndef TRACKB_VM_H
#define TRACKB_VM_H

#include <stdint.h>

/* 1 if [pa, pa+len) is mapped (the boot 4 GiB, or a range added below). */
int vm_is_mapped(uint64_t pa, uint64_t len);
/* Identity-map [pa, pa+len) with 2 MiB pages (uncached for MMIO). 0 or -1
 * (no page-table memory, non-canonical address, too many ranges). */
int vm_map_identity(uint64_t pa, uint64_t len, int uncached);

#endif
