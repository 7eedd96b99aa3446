/* pmm_zeroed.c: a page of zeroes. Built on pmm_alloc_page alone, so the host builds that bring
 * their own allocator (hv/host/hv_host_main.c, tests/c/trackb_platform_model.c,
 * tests/c/hv_fuzz.c) link this one copy too. */
#include "kernel/memlayout.h"
#include "kernel/pmm.h"

uint64_t pmm_alloc_zeroed(void)
{
    uint64_t pa = pmm_alloc_page();
    if (pa) {
        uint64_t *p = (uint64_t *)(uintptr_t)pa;   /* the direct map (in host builds, a host pointer) */
        for (unsigned i = 0; i < PAGE_SIZE / 8; i++)
            p[i] = 0;
    }
    return pa;
}
