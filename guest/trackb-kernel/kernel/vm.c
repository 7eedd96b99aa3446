/* vm.c: identity mappings above the boot page tables' 4 GiB (the virtio-pmem
 * range under QEMU lives in the device-memory area above RAM). */
#include <stddef.h>

#include "kernel/memlayout.h"
#include "kernel/pmm.h"
#include "kernel/vm.h"
#include "platform/platform.h"

#define PTE_P 0x001ULL
#define PTE_W 0x002ULL
#define PTE_PWT 0x008ULL
#define PTE_PCD 0x010ULL
#define PTE_PS 0x080ULL
#define PTE_ADDR 0x000FFFFFFFFFF000ULL
#define MAX_EXTRA 16

extern uint64_t boot_pml4[512];

static struct {
    uint64_t base, end;
} extra[MAX_EXTRA];
static int n_extra;

int vm_is_mapped(uint64_t pa, uint64_t len)
{
    uint64_t end = pa + len;
    if (end < pa)
        return 0;
    if (end <= BOOT_MAP_LIMIT)
        return 1;
    for (int i = 0; i < n_extra; i++) {
        if (pa >= extra[i].base && end <= extra[i].end)
            return 1;
    }
    return 0;
}

/* The next-level table of entry e, allocated (zeroed) when absent. */
static uint64_t *next_table(uint64_t *e)
{
    if (!(*e & PTE_P)) {
        uint64_t pa = pmm_alloc_zeroed();
        if (!pa)
            return NULL;
        *e = pa | PTE_P | PTE_W;
    }
    return (uint64_t *)(uintptr_t)(*e & PTE_ADDR);
}

int vm_map_identity(uint64_t pa, uint64_t len, int uncached)
{
    uint64_t start = pa & ~(LARGE_PAGE_SIZE - 1);
    uint64_t end = (pa + len + LARGE_PAGE_SIZE - 1) & ~(LARGE_PAGE_SIZE - 1);
    if (len == 0 || end < pa || end > (1ULL << 47))
        return -1;   /* lower half of the canonical address space only */
    if (vm_is_mapped(pa, len))
        return 0;
    if (n_extra == MAX_EXTRA)
        return -1;
    for (uint64_t va = start; va < end; va += LARGE_PAGE_SIZE) {
        if (va < BOOT_MAP_LIMIT)
            continue;
        uint64_t *pdpt = next_table(&boot_pml4[(va >> 39) & 511]);
        uint64_t *pd = pdpt ? next_table(&pdpt[(va >> 30) & 511]) : NULL;
        if (!pd)
            return -1;
        pd[(va >> 21) & 511] = va | PTE_P | PTE_W | PTE_PS | (uncached ? PTE_PCD | PTE_PWT : 0);
    }
    extra[n_extra].base = start;
    extra[n_extra].end = end;
    n_extra++;
    cpu_write_cr3(cpu_read_cr3());   /* flush the TLB: new entries only, but be plain */
    return 0;
}
