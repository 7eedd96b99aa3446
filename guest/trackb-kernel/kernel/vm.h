/* vm.h: W^X for the boot page tables, identity mappings beyond them. */
#ifndef TRACKB_VM_H
#define TRACKB_VM_H

#include <stdint.h>

/* W^X on entry.S's identity map (layout in memlayout.h): .text R+X, .rodata
 * R, everything else RW; NX where the CPU has it (EFER.NXE), CR0.WP on. */
void vm_init(void);
/* 1 if [pa, pa+len) is mapped (the boot 4 GiB less the stack guard page, or a range added below). */
int vm_is_mapped(uint64_t pa, uint64_t len);
/* Physical memory: a pointer through the identity map, or NULL when len is 0
 * or [pa, pa+len) is not mapped. Parsers then get (pointer, length) and never
 * read past it. */
void *phys_ptr(uint64_t pa, uint64_t len);
/* Identity-map [pa, pa+len) with 2 MiB pages, RW+NX (uncached for MMIO). 0 or -1
 * (len 0 or above VM_MAP_MAX_LEN, non-canonical address, too many ranges, no
 * page-table memory: then the tables this call added are freed again). */
int vm_map_identity(uint64_t pa, uint64_t len, int uncached);

#endif
