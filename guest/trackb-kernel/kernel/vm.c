/* vm.c: the kernel's page tables after boot.
 *
 * vm_init() turns entry.S's read/write/execute identity map into W^X (see
 * kernel/memlayout.h): [0, KERNEL_SPLIT_LIMIT) is split into 4 KiB pages so
 * that .text is R+X, .rodata R+NX and everything else RW+NX; the rest of
 * [0, 4 GiB) keeps its 2 MiB pages and gets NX; the guard page below the boot
 * stack is unmapped. vm_map_identity() adds identity mappings
 * above 4 GiB on demand (the virtio-pmem range under QEMU lives in the
 * device-memory area above RAM), also RW+NX, at most VM_MAP_MAX_LEN each,
 * and leaves the page tables as they were when it fails. */
#include <stddef.h>

#include "kernel/console.h"
#include "kernel/memlayout.h"
#include "kernel/pmm.h"
#include "kernel/timer.h"
#include "kernel/vm.h"
#include "platform/platform.h"

#define MAX_EXTRA 16
#define PT_ENTRIES 512
#define N_SPLIT (KERNEL_SPLIT_LIMIT / LARGE_PAGE_SIZE)       /* PD entries split into 4 KiB pages */
#define N_BOOT_PD (BOOT_MAP_LIMIT / LARGE_PAGE_SIZE)         /* entry.S's 4 PDs of 2 MiB pages */
#define PD_SPAN (1ULL << 30)                                 /* one PD (a PDPT entry) maps 1 GiB */
/* Tables one vm_map_identity() can add: a PD per GiB slot that VM_MAP_MAX_LEN,
 * rounded out to 2 MiB pages (at most 2 MiB more), touches (<= 65) and a PDPT
 * per 512 GiB slot (<= 2). tests/c/trackb_model.c maps that worst case. */
#define MAX_NEW_TABLES (VM_MAP_MAX_LEN / PD_SPAN + 1 + 2)

extern uint64_t boot_pml4[PT_ENTRIES];
extern uint64_t boot_pdpt[PT_ENTRIES];
extern uint64_t boot_pd[N_BOOT_PD];
extern char __text_start[], __text_end[], __rodata_start[], __rodata_end[], __data_start[], _kernel_end[];
extern char boot_stack_guard[];

/* The 4 KiB page tables of [0, KERNEL_SPLIT_LIMIT): in .bss, so they cost no image bytes. */
static uint64_t split_pt[N_SPLIT][PT_ENTRIES] __attribute__((aligned(4096)));
static uint64_t pte_nx;   /* PTE_NX once EFER.NXE is on; 0 on a CPU without NX */
static uint64_t guard_lo, guard_hi;   /* the unmapped stack guard page, once vm_init() ran */

static struct {
    uint64_t base, end;
} extra[MAX_EXTRA];
static int n_extra;

int vm_is_mapped(uint64_t pa, uint64_t len)
{
    uint64_t end = pa + len;
    if (end < pa || (pa < guard_hi && guard_lo < end))
        return 0;
    if (end <= BOOT_MAP_LIMIT)
        return 1;
    for (int i = 0; i < n_extra; i++) {
        if (pa >= extra[i].base && end <= extra[i].end)
            return 1;
    }
    return 0;
}

void *phys_ptr(uint64_t pa, uint64_t len)
{
    if (len == 0 || !vm_is_mapped(pa, len))   /* (vm_is_mapped refuses a wrapping range) */
        return NULL;
    return (void *)(uintptr_t)pa;              /* identity map */
}

/* Leaves of [lo, hi) (page aligned by kernel.ld, below KERNEL_SPLIT_LIMIT). */
static void set_leaves(uint64_t lo, uint64_t hi, uint64_t flags)
{
    uint64_t *pte = &split_pt[0][0];
    for (uint64_t pa = lo; pa < hi; pa += PAGE_SIZE)
        pte[pa / PAGE_SIZE] = pa | flags;
}

/* Drop every translation, global ones too (a 64-bit loader may have run with
 * CR4.PGE and global pages): toggling PGE flushes them, else a CR3 reload. */
static void flush_tlb_all(void)
{
    uint64_t cr4 = cpu_read_cr4();
    if (cr4 & CR4_PGE) {
        cpu_write_cr4(cr4 & ~(uint64_t)CR4_PGE);
        cpu_write_cr4(cr4);
    } else {
        cpu_write_cr3(cpu_read_cr3());
    }
}

void vm_init(void)
{
    uint32_t r[4];
    uint64_t t0 = timer_now_ns();

    cpu_cpuid(0x80000000, 0, r);                          /* NX is CPUID 0x80000001 EDX bit 20 */
    if (r[0] >= CPUID_EXT_FEATURES) {
        cpu_cpuid(CPUID_EXT_FEATURES, 0, r);
        if (r[3] & CPUID_EXT_NX)
            pte_nx = PTE_NX;
    }
    if (pte_nx)                                           /* before any entry has bit 63 (reserved until then) */
        cpu_wrmsr(MSR_EFER, cpu_rdmsr(MSR_EFER) | EFER_NXE);
    cpu_write_cr0(cpu_read_cr0() | CR0_WP);               /* read-only pages bind the kernel too */
    set_leaves(0, KERNEL_SPLIT_LIMIT, PTE_P | PTE_W | pte_nx);            /* low memory, the image, RAM: RW */
    set_leaves((uintptr_t)__text_start, (uintptr_t)__text_end, PTE_P);   /* .text: R+X */
    set_leaves((uintptr_t)__rodata_start, (uintptr_t)__rodata_end, PTE_P | pte_nx);   /* .rodata: R */
    guard_lo = (uintptr_t)boot_stack_guard;               /* stack guard: not present */
    guard_hi = guard_lo + STACK_GUARD_SIZE;
    set_leaves(guard_lo, guard_hi, 0);
    for (uint64_t i = 0; i < N_SPLIT; i++)                /* the image's 2 MiB pages become 4 KiB pages */
        boot_pd[i] = virt_to_phys(split_pt[i]) | PTE_P | PTE_W;   /* (leaves decide) */
    for (uint64_t i = N_SPLIT; i < PT_ENTRIES; i++)       /* the rest of the first GiB: NX */
        boot_pd[i] |= pte_nx;
    for (uint64_t i = 1; i < N_BOOT_PD / PT_ENTRIES; i++) /* [1 GiB, 4 GiB) with the PCI hole: NX */
        boot_pdpt[i] |= pte_nx;                           /* (NX in a PDPT entry covers its 1 GiB) */
    flush_tlb_all();
    kdetail("vm: text %lx-%lx r-x, rodata %lx-%lx r--, data %lx-%lx rw-, stack guard %lx-%lx ---, "
            "rest of memory rw-, NX %s, in %lu us\n",
            (uint64_t)(uintptr_t)__text_start, (uint64_t)(uintptr_t)__text_end, (uint64_t)(uintptr_t)__rodata_start,
            (uint64_t)(uintptr_t)__rodata_end, (uint64_t)(uintptr_t)__data_start, (uint64_t)(uintptr_t)_kernel_end,
            guard_lo, guard_hi, pte_nx ? "on" : "unavailable (data stays executable)", (timer_now_ns() - t0) / 1000);
}

/* The next-level table of entry e, allocated (zeroed) when absent; a new one
 * is noted in added[] so that a failed mapping can give it back. */
static uint64_t *next_table(uint64_t *e, uint64_t **added, int *n_added)
{
    if (!(*e & PTE_P)) {
        if (*n_added == MAX_NEW_TABLES)
            return NULL;                                  /* cannot happen within VM_MAP_MAX_LEN */
        uint64_t pa = pmm_alloc_zeroed();
        if (!pa)
            return NULL;
        *e = pa | PTE_P | PTE_W;
        added[(*n_added)++] = e;
    }
    return (uint64_t *)(uintptr_t)(*e & PTE_ADDR);
}

int vm_map_identity(uint64_t pa, uint64_t len, int uncached)
{
    uint64_t *added[MAX_NEW_TABLES];
    int n_added = 0;

    /* lower half of the canonical address space only, and a bounded size: the
     * length may come from a device (virtio-pmem config, a BAR) */
    if (len == 0 || len > VM_MAP_MAX_LEN || pa + len < pa || pa + len > (1ULL << 47))
        return -1;
    uint64_t start = pa & ~(LARGE_PAGE_SIZE - 1);
    uint64_t end = (pa + len + LARGE_PAGE_SIZE - 1) & ~(LARGE_PAGE_SIZE - 1);
    if (vm_is_mapped(pa, len))
        return 0;
    if (n_extra == MAX_EXTRA)
        return -1;
    uint64_t lo = start < BOOT_MAP_LIMIT ? BOOT_MAP_LIMIT : start;   /* the boot map has the rest */
    /* 1. Every PDPT and PD the range needs, before any leaf: on failure give
     * back what this call added (newest first: a PD's entry lives in a PDPT
     * that may be new too), so the tables are exactly as they were. */
    for (uint64_t va = lo; va < end; va = (va & ~(PD_SPAN - 1)) + PD_SPAN) {
        uint64_t *pdpt = next_table(&boot_pml4[(va >> 39) & 511], added, &n_added);
        if (!pdpt || !next_table(&pdpt[(va >> 30) & 511], added, &n_added)) {
            while (n_added > 0) {
                uint64_t *e = added[--n_added], table = *e & PTE_ADDR;
                *e = 0;
                pmm_free_page(table);
            }
            return -1;
        }
    }
    /* 2. The 2 MiB leaves; cannot fail. pmem and MMIO hold data only: NX (set
     * once vm_init ran, which kmain does first). */
    for (uint64_t va = lo; va < end; va += LARGE_PAGE_SIZE) {
        uint64_t *pdpt = (uint64_t *)(uintptr_t)(boot_pml4[(va >> 39) & 511] & PTE_ADDR);
        uint64_t *pd = (uint64_t *)(uintptr_t)(pdpt[(va >> 30) & 511] & PTE_ADDR);
        pd[(va >> 21) & 511] = va | PTE_P | PTE_W | PTE_PS | pte_nx | (uncached ? PTE_PCD | PTE_PWT : 0);
    }
    extra[n_extra].base = start;
    extra[n_extra].end = end;
    n_extra++;
    cpu_write_cr3(cpu_read_cr3());   /* flush the TLB: new entries only, but be plain */
    return 0;
}
