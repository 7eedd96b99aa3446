/* pmm.c: physical page allocator.
 *
 * Free memory is a short list of ranges that pages are carved from (so
 * initialisation touches no page: a few hundred MiB would cost milliseconds
 * under TCG), plus a free list threaded through freed pages. */
#include "kernel/memlayout.h"
#include "kernel/pmm.h"
#include "x86boot.h"

#define MAX_RANGES 32

static struct {
    uint64_t lo, next, end;
} ranges[MAX_RANGES];
static uint64_t kernel_lo, kernel_hi;
static int n_ranges;
static uint64_t free_list;     /* physical address of the first freed page, 0 = empty */
static uint64_t total_pages, free_pages;

static void add_range(uint64_t lo, uint64_t hi)
{
    lo = (lo + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
    hi &= ~(PAGE_SIZE - 1);
    if (hi <= lo || n_ranges == MAX_RANGES)
        return;
    ranges[n_ranges].lo = lo;
    ranges[n_ranges].next = lo;
    ranges[n_ranges].end = hi;
    n_ranges++;
    total_pages += (hi - lo) / PAGE_SIZE;
    free_pages += (hi - lo) / PAGE_SIZE;
}

void pmm_init(const struct mem_region *map, size_t n, uint64_t reserved_lo, uint64_t reserved_hi)
{
    kernel_lo = reserved_lo;
    kernel_hi = reserved_hi;
    for (size_t i = 0; i < n; i++) {
        if (map[i].type != X86BOOT_E820_RAM)
            continue;
        uint64_t lo = map[i].base, hi = map[i].base + map[i].size;
        if (lo < LOW_MEM_LIMIT)
            lo = LOW_MEM_LIMIT;
        if (hi > BOOT_MAP_LIMIT)
            hi = BOOT_MAP_LIMIT;
        if (hi <= lo)
            continue;
        /* Cut the kernel image out of the region. */
        if (reserved_hi > lo && reserved_lo < hi) {
            add_range(lo, reserved_lo);
            add_range(reserved_hi, hi);
        } else {
            add_range(lo, hi);
        }
    }
}

uint64_t pmm_alloc_page(void)
{
    if (free_list) {
        uint64_t pa = free_list;
        free_list = *(uint64_t *)(uintptr_t)pa;
        free_pages--;
        return pa;
    }
    for (int i = 0; i < n_ranges; i++) {
        if (ranges[i].next < ranges[i].end) {
            uint64_t pa = ranges[i].next;
            ranges[i].next += PAGE_SIZE;
            free_pages--;
            return pa;
        }
    }
    return 0;
}

void pmm_free_page(uint64_t pa)
{
    if (!pa || (pa & (PAGE_SIZE - 1)))
        return;
    *(uint64_t *)(uintptr_t)pa = free_list;
    free_list = pa;
    free_pages++;
}

int pmm_overlaps(uint64_t base, uint64_t size)
{
    uint64_t end = base + size;
    if (end < base || base < LOW_MEM_LIMIT || (base < kernel_hi && kernel_lo < end))
        return 1;
    for (int i = 0; i < n_ranges; i++)
        if (base < ranges[i].end && ranges[i].lo < end)
            return 1;
    return 0;
}

uint64_t pmm_total_bytes(void) { return total_pages * PAGE_SIZE; }
uint64_t pmm_free_bytes(void) { return free_pages * PAGE_SIZE; }
